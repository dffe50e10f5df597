//! The scope agreement: who owns what, hour by hour.
//!
//! For each client, an agreement assigns every IT domain to the two sides of the
//! arrangement — the client's internal IT and the provider — with a RACI matrix, a
//! business-hours owner and an after-hours owner, named contacts and escalation chains. Each
//! side has a calendar (time zone, weekly hours with split shifts, holidays). The client's
//! calendar defines "business hours" for routing; each side's own calendar says when that side
//! is at its desks, which the coverage lint uses.
//!
//! [`route`] answers "who owns this domain at this instant, and why" for a compiled agreement.
//! [`lint`] finds what makes an agreement fail in practice: no one accountable, hours nobody
//! covers, a responsible side with nobody able to act, an after-hours owner with no way to be
//! reached.

use crate::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

pub mod exchange;

/// One of the two sides of a co-managed arrangement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The client's own IT.
    Internal,
    /// The managed service provider.
    Provider,
}

impl Party {
    /// Both parties, internal first.
    pub const BOTH: [Party; 2] = [Party::Internal, Party::Provider];

    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Party::Internal => "internal",
            Party::Provider => "provider",
        }
    }

    /// Name shown to people.
    pub fn label(&self) -> &'static str {
        match self {
            Party::Internal => "Internal IT",
            Party::Provider => "Provider",
        }
    }

    /// The other side.
    pub fn other(&self) -> Party {
        match self {
            Party::Internal => Party::Provider,
            Party::Provider => Party::Internal,
        }
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IT domain of the provider-wide catalog, such as patch management.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItDomain {
    /// Stable key, such as `patching`.
    pub key: String,
    /// Name shown to people.
    pub name: String,
    /// What the domain covers.
    pub description: String,
    /// When it was retired; retired domains keep their history but take no new assignments.
    pub retired_at: Option<Timestamp>,
}

/// The domains every provider starts with: (key, name, description).
pub const SEED_DOMAINS: &[(&str, &str, &str)] = &[
    (
        "helpdesk",
        "Helpdesk and user support",
        "Password resets, how-to questions, printers, new starters and leavers.",
    ),
    (
        "security_monitoring",
        "Security monitoring and endpoint detection",
        "EDR, alert triage, suspicious sign-ins, threat hunting.",
    ),
    (
        "patching",
        "Patch management",
        "Operating system and third-party updates, maintenance windows, reboots.",
    ),
    (
        "backup",
        "Backup and recovery verification",
        "Backup jobs, test restores, recovery evidence.",
    ),
    (
        "after_hours_monitoring",
        "After-hours monitoring",
        "Watching alerts outside business hours and paging who is on call.",
    ),
    (
        "compliance",
        "Compliance documentation and audit preparation",
        "Policies, evidence, control ownership, auditor requests.",
    ),
    (
        "cloud_m365",
        "Cloud and Microsoft 365 administration",
        "Tenants, licences, mailboxes, conditional access, SharePoint.",
    ),
    (
        "onsite_hardware",
        "On-site hardware and physical infrastructure",
        "Desks, printers, cabling, racks, hands on keyboards.",
    ),
    (
        "network",
        "Network",
        "Firewalls, switches, Wi-Fi, VPN, the ISP circuit.",
    ),
    (
        "vendors",
        "Vendor relationships",
        "Line-of-business software vendors, ISP, hardware suppliers, renewals.",
    ),
    (
        "vcio",
        "vCIO and strategic planning",
        "Roadmaps, budgets, vendor evaluations, quarterly reviews.",
    ),
    (
        "incident_response",
        "Incident response",
        "Ransomware, compromised accounts, lost devices: leading the response.",
    ),
];

/// A RACI assignment of the two parties for one domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Raci {
    /// Who does the work (one or both).
    pub responsible: BTreeSet<Party>,
    /// Who answers for it (exactly one).
    pub accountable: BTreeSet<Party>,
    /// Who is asked before decisions.
    #[serde(default)]
    pub consulted: BTreeSet<Party>,
    /// Who is told afterwards.
    #[serde(default)]
    pub informed: BTreeSet<Party>,
}

/// How one domain is shared between the sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The domain's key.
    pub domain: String,
    /// The RACI matrix.
    pub raci: Raci,
    /// Who owns the work during the client's business hours.
    pub business_hours_owner: Party,
    /// Who owns the work outside them (nights, weekends, holidays).
    pub after_hours_owner: Party,
    /// The team or person on the internal side to assign, if named.
    #[serde(default)]
    pub internal_contact: Option<String>,
    /// The team or person on the provider side to assign, if named.
    #[serde(default)]
    pub provider_contact: Option<String>,
    /// Internal escalation chain, first to last.
    #[serde(default)]
    pub internal_escalation: Vec<String>,
    /// Provider escalation chain, first to last (its on-call rotation comes first, when there is one).
    #[serde(default)]
    pub provider_escalation: Vec<String>,
    /// Free text: what the internal person is confident about, where they are stretched.
    #[serde(default)]
    pub notes: String,
}

impl Assignment {
    /// The named contact of a party.
    pub fn contact(&self, p: Party) -> Option<&str> {
        match p {
            Party::Internal => self.internal_contact.as_deref(),
            Party::Provider => self.provider_contact.as_deref(),
        }
        .filter(|s| !s.trim().is_empty())
    }

    /// The escalation chain of a party.
    pub fn escalation(&self, p: Party) -> &[String] {
        match p {
            Party::Internal => &self.internal_escalation,
            Party::Provider => &self.provider_escalation,
        }
    }
}

/// A span of minutes within a day, `[start, end)`, from local midnight (0..=1440).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Span {
    /// First minute.
    pub start: u16,
    /// Minute after the last.
    pub end: u16,
}

/// A named day off.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    /// The local date, `YYYY-MM-DD`.
    pub date: String,
    /// Its name.
    pub name: String,
}

/// When a side works: a time zone, weekly hours (split shifts allowed) and holidays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// IANA time zone.
    pub time_zone: String,
    /// Hours per weekday, Monday first (seven entries).
    pub week: Vec<Vec<Span>>,
    /// Days off.
    #[serde(default)]
    pub holidays: Vec<Holiday>,
}

impl Calendar {
    /// Monday to Friday, `start`–`end` (minutes), in `tz`.
    pub fn weekdays(tz: &str, start: u16, end: u16) -> Self {
        let day = vec![Span { start, end }];
        Calendar {
            time_zone: tz.to_string(),
            week: vec![
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                vec![],
                vec![],
            ],
            holidays: Vec::new(),
        }
    }
}

/// The content of one version of a client's agreement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    /// The client's business hours (the internal side's working week).
    pub internal_calendar: Calendar,
    /// The provider's staffed hours for this client.
    pub provider_calendar: Calendar,
    /// One entry per domain.
    pub assignments: Vec<Assignment>,
}

impl Agreement {
    /// The assignment of a domain.
    pub fn assignment(&self, domain: &str) -> Option<&Assignment> {
        self.assignments.iter().find(|a| a.domain == domain)
    }

    /// A side's calendar.
    pub fn calendar(&self, p: Party) -> &Calendar {
        match p {
            Party::Internal => &self.internal_calendar,
            Party::Provider => &self.provider_calendar,
        }
    }
}

// ---- compiled form and routing ----------------------------------------------------------

/// A problem that keeps an agreement from being compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadAgreement(pub String);

/// A calendar made ready for fast questions.
#[derive(Clone, Debug)]
pub struct CompiledCalendar {
    tz: TimeZone,
    week: [Vec<(u16, u16)>; 7],
    holidays: HashSet<Date>,
}

impl CompiledCalendar {
    /// Checks and compiles a calendar.
    pub fn new(c: &Calendar) -> Result<Self, BadAgreement> {
        let tz = TimeZone::get(&c.time_zone)
            .map_err(|_| BadAgreement(format!("unknown time zone {:?}", c.time_zone)))?;
        if c.week.len() != 7 {
            return Err(BadAgreement("a week has seven days, Monday first".into()));
        }
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        for (i, day) in c.week.iter().enumerate() {
            let mut spans: Vec<(u16, u16)> = day.iter().map(|s| (s.start, s.end)).collect();
            spans.sort();
            for (j, (s, e)) in spans.iter().enumerate() {
                if s >= e || *e > 1440 {
                    return Err(BadAgreement(format!(
                        "{}: {} is not a valid span of hours",
                        weekday_name(i),
                        span_label(*s, *e)
                    )));
                }
                if j > 0 && spans[j - 1].1 > *s {
                    return Err(BadAgreement(format!("{}: hours overlap", weekday_name(i))));
                }
            }
            week[i] = spans;
        }
        let mut holidays = HashSet::new();
        for h in &c.holidays {
            let d: Date = h.date.parse().map_err(|_| {
                BadAgreement(format!("holiday {:?}: dates look like 2026-12-25", h.date))
            })?;
            holidays.insert(d);
        }
        Ok(CompiledCalendar { tz, week, holidays })
    }

    /// Whether the side works at `t`.
    pub fn is_open(&self, t: Timestamp) -> bool {
        let z = t.to_jiff().to_zoned(self.tz.clone());
        self.is_open_local(z.date(), z.time())
    }

    fn is_open_local(&self, date: Date, time: Time) -> bool {
        if self.holidays.contains(&date) {
            return false;
        }
        let minute = time.hour() as u16 * 60 + time.minute() as u16;
        self.week[date.weekday().to_monday_zero_offset() as usize]
            .iter()
            .any(|(s, e)| *s <= minute && minute < *e)
    }

    /// The first instant after `t` (within `horizon_days`) at which `is_open` changes.
    ///
    /// `is_open` can change only where the local wall clock crosses a span's edge or midnight,
    /// or where the zone's offset itself changes (hours skipped in spring can open or close
    /// the side at the very instant of the change). Every such instant is a candidate: both
    /// readings of a wall-clock time that happens twice in autumn, and the zone's transitions.
    /// The first candidate whose answer differs from now is the first change: an extra
    /// candidate never wins, because none before the first change can differ.
    pub fn next_change(&self, t: Timestamp, horizon_days: i64) -> Option<Timestamp> {
        let now = self.is_open(t);
        let differs = |at: Timestamp| at > t && self.is_open(at) != now;
        let start = t.to_jiff().to_zoned(self.tz.clone()).date();
        let mut best: Option<Timestamp> = None;
        let mut last_day = start;
        for offset in 0..=horizon_days {
            let Ok(day) = start.checked_add(jiff::Span::new().days(offset)) else {
                break;
            };
            last_day = day;
            let mut edges: Vec<u16> = self.week[day.weekday().to_monday_zero_offset() as usize]
                .iter()
                .flat_map(|(s, e)| [*s, *e])
                .collect();
            edges.push(0); // midnight: a holiday starting or ending
            edges.sort_unstable();
            for m in edges {
                for at in local_instants(day, m, &self.tz).into_iter().flatten() {
                    if differs(at) && best.is_none_or(|b| at < b) {
                        best = Some(at);
                    }
                }
            }
            if best.is_some() {
                break;
            }
        }
        // Offset changes up to the best edge found, or to the end of the last day looked at.
        let limit = best.or_else(|| local_instants(last_day, 1440, &self.tz)[1])?;
        for tr in self.tz.following(t.to_jiff()) {
            let at = Timestamp(tr.timestamp().as_microsecond());
            if at >= limit {
                break;
            }
            if differs(at) {
                return Some(at);
            }
        }
        best
    }
}

/// Both readings of the wall-clock time `minute` after local midnight on `day` in `tz` (1440
/// is the next midnight): the same instant twice for an ordinary time, the first and second
/// occurrence of a time repeated when clocks go back, and for a time skipped when clocks go
/// forward, the instant it would be on either side of the gap.
fn local_instants(day: Date, minute: u16, tz: &TimeZone) -> [Option<Timestamp>; 2] {
    let Some(dt) = wall_clock(day, minute) else {
        return [None, None];
    };
    let a = tz.to_ambiguous_timestamp(dt);
    let micro =
        |r: Result<jiff::Timestamp, jiff::Error>| r.ok().map(|ts| Timestamp(ts.as_microsecond()));
    [micro(a.earlier()), micro(a.later())]
}

fn wall_clock(day: Date, minute: u16) -> Option<jiff::civil::DateTime> {
    let (day, minute) = if minute >= 1440 {
        (day.tomorrow().ok()?, 0)
    } else {
        (day, minute)
    };
    Some(day.to_datetime(Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?))
}

/// The instant at `minute` after local midnight on `day` in `tz` (1440 is the next midnight).
/// Wall-clock times skipped by a DST change resolve to the first instant after the gap.
fn local_instant(day: Date, minute: u16, tz: &TimeZone) -> Option<Timestamp> {
    let z = tz
        .to_ambiguous_zoned(wall_clock(day, minute)?)
        .compatible()
        .ok()?;
    Some(Timestamp(z.timestamp().as_microsecond()))
}

fn weekday_name(i: usize) -> &'static str {
    [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ][i % 7]
}

/// "07:30–17:00".
pub fn span_label(start: u16, end: u16) -> String {
    format!(
        "{:02}:{:02}–{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    )
}

/// An agreement made ready for routing: calendars compiled, domains indexed.
#[derive(Clone, Debug)]
pub struct CompiledAgreement {
    internal: CompiledCalendar,
    provider: CompiledCalendar,
    assignments: BTreeMap<String, Assignment>,
}

impl CompiledAgreement {
    /// Checks and compiles an agreement.
    pub fn new(a: &Agreement) -> Result<Self, BadAgreement> {
        let mut assignments = BTreeMap::new();
        for asg in &a.assignments {
            if assignments
                .insert(asg.domain.clone(), asg.clone())
                .is_some()
            {
                return Err(BadAgreement(format!(
                    "domain {:?} is assigned twice",
                    asg.domain
                )));
            }
        }
        Ok(CompiledAgreement {
            internal: CompiledCalendar::new(&a.internal_calendar)?,
            provider: CompiledCalendar::new(&a.provider_calendar)?,
            assignments,
        })
    }

    /// A side's compiled calendar.
    pub fn calendar(&self, p: Party) -> &CompiledCalendar {
        match p {
            Party::Internal => &self.internal,
            Party::Provider => &self.provider,
        }
    }

    /// The assignment of a domain.
    pub fn assignment(&self, domain: &str) -> Option<&Assignment> {
        self.assignments.get(domain)
    }
}

/// Whether an instant falls in the client's business hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Within the client's business hours.
    BusinessHours,
    /// Outside them, or on a holiday.
    AfterHours,
}

/// The answer to "who owns this domain at this instant?".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RouteDecision {
    /// The domain.
    pub domain: String,
    /// The side that owns the work at this instant (business-hours or after-hours owner).
    pub owner: Party,
    /// The side accountable for the domain overall (the RACI "A").
    pub accountable: Party,
    /// The sides that do the work (the RACI "R").
    pub responsible: Vec<Party>,
    /// The team or person to assign on the owning side, if named.
    pub assignee: Option<String>,
    /// The owning side's escalation chain.
    pub escalation: Vec<String>,
    /// Business hours or after hours.
    pub window: Window,
    /// Whether the owning side is at its desks now (else: its on-call/escalation path).
    pub owner_on_shift: bool,
    /// Why, in words.
    pub reason: String,
}

/// Why routing could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The agreement does not assign this domain.
    #[error("the agreement does not assign the domain {0:?}")]
    UnassignedDomain(String),
    /// The domain has no single accountable side (the agreement does not lint clean).
    #[error("the domain {0:?} has no single accountable side")]
    NoSingleAccountable(String),
}

/// Decides who owns `domain` at instant `t` under agreement `a`.
pub fn route(
    a: &CompiledAgreement,
    domain: &str,
    t: Timestamp,
) -> Result<RouteDecision, RouteError> {
    let asg = a
        .assignments
        .get(domain)
        .ok_or_else(|| RouteError::UnassignedDomain(domain.to_string()))?;
    let mut acc = asg.raci.accountable.iter();
    let (Some(accountable), None) = (acc.next().copied(), acc.next()) else {
        return Err(RouteError::NoSingleAccountable(domain.to_string()));
    };
    let business = a.internal.is_open(t);
    let (window, owner) = if business {
        (Window::BusinessHours, asg.business_hours_owner)
    } else {
        (Window::AfterHours, asg.after_hours_owner)
    };
    let owner_on_shift = a.calendar(owner).is_open(t);
    let assignee = asg.contact(owner).map(str::to_string);
    let escalation = asg.escalation(owner).to_vec();
    let reason = format!(
        "{} at this instant: {} owns {} {}; {} is accountable overall{}",
        match window {
            Window::BusinessHours => "within the client's business hours",
            Window::AfterHours => "outside the client's business hours",
        },
        owner.label(),
        domain,
        match window {
            Window::BusinessHours => "during business hours",
            Window::AfterHours => "after hours",
        },
        accountable.label(),
        if owner_on_shift {
            String::new()
        } else if escalation.is_empty() {
            format!(
                "; {} is off shift and has no escalation path",
                owner.label()
            )
        } else {
            format!(
                "; {} is off shift, so its escalation path applies (first: {})",
                owner.label(),
                escalation[0]
            )
        },
    );
    Ok(RouteDecision {
        domain: domain.to_string(),
        owner,
        accountable,
        responsible: asg.raci.responsible.iter().copied().collect(),
        assignee,
        escalation,
        window,
        owner_on_shift,
        reason,
    })
}

/// When the owner of `domain` next changes after `t` (looking up to a year ahead).
pub fn next_handover(a: &CompiledAgreement, domain: &str, t: Timestamp) -> Option<Timestamp> {
    let asg = a.assignments.get(domain)?;
    if asg.business_hours_owner == asg.after_hours_owner {
        return None;
    }
    a.internal.next_change(t, 366)
}

// ---- lint -------------------------------------------------------------------------------

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Blocks a proposal.
    Error,
    /// Shown; can be acknowledged, and the acknowledgement is recorded.
    Warning,
}

/// One thing the lint found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code, such as `no_accountable`.
    pub code: String,
    /// The domain concerned, if any.
    pub domain: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Finding {
    /// A stable key for acknowledging this warning: `code` or `code:domain`.
    pub fn key(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}:{d}", self.code),
            None => self.code.clone(),
        }
    }
}

/// What the lint needs to know besides the agreement.
#[derive(Clone, Debug, Default)]
pub struct LintContext {
    /// Keys of the catalog's active (not retired) domains.
    pub active_domains: Vec<String>,
    /// How many people on the internal side can act (IT admins).
    pub internal_staff: usize,
    /// How many people on the provider side can act for this client.
    pub provider_staff: usize,
    /// A Monday 00:00 in the client's zone from which the coverage week is checked.
    pub week_start: Timestamp,
}

/// Minutes per coverage slot.
pub const SLOT_MINUTES: i64 = 15;

/// Who covers a domain in one slot of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Cover {
    /// The owner is on shift.
    OnShift(Party, Window),
    /// The owner is off shift but reachable through its escalation chain.
    OnCall(Party, Window),
    /// The owner is off shift with no escalation chain: nobody covers.
    Nobody(Party, Window),
}

/// Whether each side is on shift in each 15-minute slot of the week from `week_start`.
/// Computed once per agreement; every domain's coverage is read off it.
#[derive(Clone, Debug)]
pub struct WeekStates {
    internal: Vec<bool>,
    provider: Vec<bool>,
}

impl WeekStates {
    /// Samples both calendars at the start of every slot.
    pub fn new(a: &CompiledAgreement, week_start: Timestamp) -> Self {
        let slots = 7 * 24 * 60 / SLOT_MINUTES;
        let at = |i: i64| week_start.plus_seconds(i * SLOT_MINUTES * 60);
        WeekStates {
            internal: (0..slots).map(|i| a.internal.is_open(at(i))).collect(),
            provider: (0..slots).map(|i| a.provider.is_open(at(i))).collect(),
        }
    }

    /// The coverage of one assignment, slot by slot.
    pub fn coverage(&self, asg: &Assignment) -> Vec<Cover> {
        self.internal
            .iter()
            .zip(&self.provider)
            .map(|(&client_open, &provider_open)| {
                let (owner, window) = if client_open {
                    (asg.business_hours_owner, Window::BusinessHours)
                } else {
                    (asg.after_hours_owner, Window::AfterHours)
                };
                let on_shift = match owner {
                    Party::Internal => client_open,
                    Party::Provider => provider_open,
                };
                if on_shift {
                    Cover::OnShift(owner, window)
                } else if !asg.escalation(owner).is_empty() {
                    Cover::OnCall(owner, window)
                } else {
                    Cover::Nobody(owner, window)
                }
            })
            .collect()
    }
}

/// The coverage of one domain over the week from `week_start`, in 15-minute slots.
pub fn coverage(a: &CompiledAgreement, domain: &str, week_start: Timestamp) -> Vec<Cover> {
    match a.assignment(domain) {
        Some(asg) => WeekStates::new(a, week_start).coverage(asg),
        None => vec![
            Cover::Nobody(Party::Internal, Window::AfterHours);
            (7 * 24 * 60 / SLOT_MINUTES) as usize
        ],
    }
}

/// Checks an agreement. Errors block a proposal; warnings can be acknowledged.
pub fn lint(a: &Agreement, ctx: &LintContext) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |severity, code: &str, domain: Option<&str>, message: String| {
        out.push(Finding {
            severity,
            code: code.to_string(),
            domain: domain.map(str::to_string),
            message,
        })
    };
    let compiled = match CompiledAgreement::new(a) {
        Ok(c) => Some(c),
        Err(e) => {
            push(Severity::Error, "invalid", None, e.0);
            None
        }
    };
    let states = compiled
        .as_ref()
        .map(|c| WeekStates::new(c, ctx.week_start));
    for (p, cal) in [
        (Party::Internal, &a.internal_calendar),
        (Party::Provider, &a.provider_calendar),
    ] {
        if cal.week.iter().all(|d| d.is_empty()) {
            push(
                Severity::Warning,
                "no_hours",
                None,
                format!(
                    "{} has no working hours in its calendar: every hour is after hours",
                    p.label()
                ),
            );
        }
    }
    for key in &ctx.active_domains {
        if a.assignment(key).is_none() {
            push(Severity::Warning, "unassigned_domain", Some(key), format!("{key}: nobody is assigned; add it to the agreement or agree it is out of scope"));
        }
    }
    for asg in &a.assignments {
        let d = asg.domain.as_str();
        match asg.raci.accountable.len() {
            0 => push(
                Severity::Error,
                "no_accountable",
                Some(d),
                format!("{d}: no side is accountable; choose exactly one"),
            ),
            1 => {}
            _ => push(
                Severity::Error,
                "two_accountable",
                Some(d),
                format!("{d}: both sides are accountable; choose exactly one"),
            ),
        }
        if asg.raci.responsible.is_empty() {
            push(
                Severity::Error,
                "no_responsible",
                Some(d),
                format!("{d}: no side is responsible for doing the work"),
            );
        }
        for p in &asg.raci.responsible {
            let staff = match p {
                Party::Internal => ctx.internal_staff,
                Party::Provider => ctx.provider_staff,
            };
            if staff == 0 && asg.contact(*p).is_none() {
                push(Severity::Error, "responsible_cannot_act", Some(d), format!("{d}: {} is responsible but has nobody who can act; add a person or name a contact", p.label()));
            }
        }
        for owner in [asg.business_hours_owner, asg.after_hours_owner] {
            if !asg.raci.responsible.contains(&owner) && !asg.raci.accountable.contains(&owner) {
                push(Severity::Warning, "owner_not_in_raci", Some(d), format!("{d}: {} owns the work at some hours but is neither responsible nor accountable", owner.label()));
            }
        }
        if asg.escalation(asg.after_hours_owner).is_empty() {
            push(
                Severity::Error,
                "after_hours_no_escalation",
                Some(d),
                format!(
                    "{d}: {} owns it after hours but has no escalation path; add who to call",
                    asg.after_hours_owner.label()
                ),
            );
        }
        if asg.raci.responsible.len() == 2
            && asg.internal_contact.is_none()
            && asg.provider_contact.is_none()
        {
            push(
                Severity::Warning,
                "overlap",
                Some(d),
                format!(
                    "{d}: both sides are responsible and nobody is named on either; say who leads"
                ),
            );
        }
        if let Some(states) = &states {
            let cover = states.coverage(asg);
            if let Some(first) = cover.iter().position(|x| matches!(x, Cover::Nobody(..))) {
                let count = cover
                    .iter()
                    .filter(|x| matches!(x, Cover::Nobody(..)))
                    .count();
                let hours = count as f64 * SLOT_MINUTES as f64 / 60.0;
                let day = weekday_name(first / (24 * 60 / SLOT_MINUTES as usize));
                let minute = (first % (24 * 60 / SLOT_MINUTES as usize)) as i64 * SLOT_MINUTES;
                push(
                    Severity::Error,
                    "uncovered_hours",
                    Some(d),
                    format!("{d}: {hours} hours a week nobody covers, starting {day} {:02}:{:02}; give the owner an escalation path or change the owner", minute / 60, minute % 60),
                );
            }
        }
    }
    out.sort_by(|x, y| (x.severity, &x.domain, &x.code).cmp(&(y.severity, &y.domain, &y.code)));
    out
}

/// The Monday 00:00 at or before `t` in time zone `tz`.
pub fn week_start(t: Timestamp, tz: &str) -> Timestamp {
    let zone = TimeZone::get(tz).unwrap_or(TimeZone::UTC);
    let date = t.to_jiff().to_zoned(zone.clone()).date();
    let back = date.weekday().to_monday_zero_offset() as i64;
    let monday = date
        .checked_sub(jiff::Span::new().days(back))
        .unwrap_or(date);
    local_instant(monday, 0, &zone).unwrap_or(t)
}

/// The weekday of a date, Monday = 0.
pub fn weekday_index(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

// ---- versions -------------------------------------------------------------------------

/// Where a version is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    /// Being edited by the side that started it.
    Draft,
    /// Proposed to the other side.
    Proposed,
    /// Accepted by the other side: in force from its effective instant.
    Accepted,
    /// Rejected by the other side, with a comment.
    Rejected,
    /// Withdrawn by its author before a decision.
    Withdrawn,
}

impl VersionStatus {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            VersionStatus::Draft => "draft",
            VersionStatus::Proposed => "proposed",
            VersionStatus::Accepted => "accepted",
            VersionStatus::Rejected => "rejected",
            VersionStatus::Withdrawn => "withdrawn",
        }
    }
}

impl std::str::FromStr for VersionStatus {
    type Err = BadAgreement;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "draft" => VersionStatus::Draft,
            "proposed" => VersionStatus::Proposed,
            "accepted" => VersionStatus::Accepted,
            "rejected" => VersionStatus::Rejected,
            "withdrawn" => VersionStatus::Withdrawn,
            other => return Err(BadAgreement(format!("unknown version status {other:?}"))),
        })
    }
}

/// Picks the version in force at `t` from `(number, status, effective_from)` triples: the
/// accepted version with the latest effective instant not after `t` (the higher number wins a tie).
pub fn in_force_at(
    versions: &[(i64, VersionStatus, Option<Timestamp>)],
    t: Timestamp,
) -> Option<i64> {
    versions
        .iter()
        .filter(|(_, s, eff)| *s == VersionStatus::Accepted && eff.is_some_and(|e| e <= t))
        .max_by_key(|(n, _, eff)| (*eff, *n))
        .map(|(n, _, _)| *n)
}

/// One difference between two versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// The domain, or `calendar:internal` / `calendar:provider`.
    pub subject: String,
    /// The field that changed.
    pub field: String,
    /// Before, in words.
    pub before: String,
    /// After, in words.
    pub after: String,
}

fn parties(s: &BTreeSet<Party>) -> String {
    if s.is_empty() {
        "—".into()
    } else {
        s.iter().map(|p| p.label()).collect::<Vec<_>>().join(" + ")
    }
}

/// What changed from `old` to `new`.
pub fn diff(old: &Agreement, new: &Agreement) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |subject: &str, field: &str, before: String, after: String| {
        if before != after {
            out.push(Change {
                subject: subject.into(),
                field: field.into(),
                before,
                after,
            });
        }
    };
    for (p, o, n) in [
        (
            Party::Internal,
            &old.internal_calendar,
            &new.internal_calendar,
        ),
        (
            Party::Provider,
            &old.provider_calendar,
            &new.provider_calendar,
        ),
    ] {
        let subject = format!("calendar:{p}");
        push(
            &subject,
            "time_zone",
            o.time_zone.clone(),
            n.time_zone.clone(),
        );
        push(&subject, "hours", week_label(&o.week), week_label(&n.week));
        push(
            &subject,
            "holidays",
            o.holidays
                .iter()
                .map(|h| h.date.clone())
                .collect::<Vec<_>>()
                .join(", "),
            n.holidays
                .iter()
                .map(|h| h.date.clone())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let keys: BTreeSet<&str> = old
        .assignments
        .iter()
        .chain(&new.assignments)
        .map(|a| a.domain.as_str())
        .collect();
    for k in keys {
        match (old.assignment(k), new.assignment(k)) {
            (Some(_), None) => push(k, "assignment", "assigned".into(), "removed".into()),
            (None, Some(_)) => push(k, "assignment", "not assigned".into(), "assigned".into()),
            (Some(o), Some(n)) => {
                push(
                    k,
                    "accountable",
                    parties(&o.raci.accountable),
                    parties(&n.raci.accountable),
                );
                push(
                    k,
                    "responsible",
                    parties(&o.raci.responsible),
                    parties(&n.raci.responsible),
                );
                push(
                    k,
                    "consulted",
                    parties(&o.raci.consulted),
                    parties(&n.raci.consulted),
                );
                push(
                    k,
                    "informed",
                    parties(&o.raci.informed),
                    parties(&n.raci.informed),
                );
                push(
                    k,
                    "business_hours_owner",
                    o.business_hours_owner.label().into(),
                    n.business_hours_owner.label().into(),
                );
                push(
                    k,
                    "after_hours_owner",
                    o.after_hours_owner.label().into(),
                    n.after_hours_owner.label().into(),
                );
                push(
                    k,
                    "internal_contact",
                    o.internal_contact.clone().unwrap_or_default(),
                    n.internal_contact.clone().unwrap_or_default(),
                );
                push(
                    k,
                    "provider_contact",
                    o.provider_contact.clone().unwrap_or_default(),
                    n.provider_contact.clone().unwrap_or_default(),
                );
                push(
                    k,
                    "internal_escalation",
                    o.internal_escalation.join(" → "),
                    n.internal_escalation.join(" → "),
                );
                push(
                    k,
                    "provider_escalation",
                    o.provider_escalation.join(" → "),
                    n.provider_escalation.join(" → "),
                );
                push(k, "notes", o.notes.clone(), n.notes.clone());
            }
            (None, None) => {}
        }
    }
    out
}

/// "Mon–Fri 07:30–17:00" style summary of a week.
pub fn week_label(week: &[Vec<Span>]) -> String {
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < week.len().min(7) {
        let mut j = i;
        while j + 1 < week.len().min(7) && week[j + 1] == week[i] {
            j += 1;
        }
        if !week[i].is_empty() {
            let hours = week[i]
                .iter()
                .map(|s| span_label(s.start, s.end))
                .collect::<Vec<_>>()
                .join(", ");
            let range = if i == j {
                days[i].to_string()
            } else {
                format!("{}–{}", days[i], days[j])
            };
            parts.push(format!("{range} {hours}"));
        }
        i = j + 1;
    }
    if parts.is_empty() {
        "no hours".into()
    } else {
        parts.join("; ")
    }
}

/// A warning someone acknowledged before proposing, and who.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Acknowledgement {
    /// The finding's key (`code:domain`).
    pub key: String,
    /// Who acknowledged it.
    pub by: String,
    /// When.
    pub at: Timestamp,
}

/// One version of a client's scope agreement, with its history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgreementVersion {
    /// The client.
    pub client_id: crate::ClientId,
    /// Version number, from 1.
    pub number: i64,
    /// Where it is in its life.
    pub status: VersionStatus,
    /// The agreement itself.
    pub content: Agreement,
    /// The version this one was started from.
    pub based_on: Option<i64>,
    /// The side that wrote it.
    pub author_side: Party,
    /// Who wrote it.
    pub author: String,
    /// When it was started.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
    /// Who proposed it, and when.
    pub proposed_by: Option<String>,
    /// When it was proposed.
    pub proposed_at: Option<Timestamp>,
    /// Who accepted or rejected it.
    pub decided_by: Option<String>,
    /// The side that decided.
    pub decided_side: Option<Party>,
    /// When it was decided.
    pub decided_at: Option<Timestamp>,
    /// The decider's comment (required for a rejection).
    pub decision_comment: Option<String>,
    /// From when it is in force (once accepted).
    pub effective_from: Option<Timestamp>,
    /// Warnings acknowledged before proposing.
    pub acknowledgements: Vec<Acknowledgement>,
}

#[cfg(test)]
mod tests;
