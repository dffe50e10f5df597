//! On-call: schedules of layered rotations with overrides, who is on call at an instant, the
//! shift list of a range, escalation policies and the iCalendar feed of shifts.
//!
//! A schedule belongs to one side (the provider's is provider-wide; the client's own IT has
//! one per client). Its layers are rotations of people; a later layer wins over an earlier
//! one wherever it is active, and an override wins over every layer. Daily and weekly
//! rotations hand over at a wall-clock time in the schedule's time zone, so a 08:00 handoff
//! stays at 08:00 across daylight-saving changes; `N hours` rotations count elapsed time.

use crate::scope::Party;
use crate::validate::Invalid;
use crate::{ClientId, HandoffId, PageId, PolicyId, ScheduleId, Timestamp, UserId};
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// How long one person's turn in a rotation lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TurnLength {
    /// One calendar day, handing over at the same wall-clock time.
    Daily,
    /// Seven calendar days, handing over at the same wall-clock time.
    Weekly,
    /// A fixed number of elapsed hours.
    Hours {
        /// Hours per turn (1 to 8784).
        hours: u32,
    },
}

/// Hours of the week a layer covers (in the schedule's time zone). A window whose end is not
/// after its start runs past midnight into the next day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Restriction {
    /// Weekdays the window starts on, 0 = Monday … 6 = Sunday.
    pub days: Vec<u8>,
    /// Start, minutes after midnight (0–1439).
    pub start_minute: u16,
    /// End, minutes after midnight (0–1439).
    pub end_minute: u16,
}

impl Restriction {
    fn covers(&self, date: Date, minute: u16) -> bool {
        let wd = date.weekday().to_monday_zero_offset() as u8;
        let prev = (wd + 6) % 7;
        if self.start_minute < self.end_minute {
            self.days.contains(&wd) && self.start_minute <= minute && minute < self.end_minute
        } else {
            (self.days.contains(&wd) && minute >= self.start_minute)
                || (self.days.contains(&prev) && minute < self.end_minute)
        }
    }
}

/// One rotation of people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// A name ("Nights and weekends").
    pub name: String,
    /// The people, in turn order.
    pub users: Vec<UserId>,
    /// The first handoff, as wall-clock time in the schedule's zone (`2026-11-02T18:00`).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub start: DateTime,
    /// How long a turn lasts.
    pub turn: TurnLength,
    /// Only these hours, if given.
    #[serde(default)]
    pub restriction: Option<Restriction>,
}

/// Someone standing in from one instant to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Who is on call instead.
    pub user: UserId,
    /// From (inclusive).
    pub from: Timestamp,
    /// Until (exclusive).
    pub to: Timestamp,
}

/// What a schedule says, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleRules {
    /// IANA time zone of handoffs and restrictions.
    pub time_zone: String,
    /// Layers, lowest first; a later layer wins where it is active.
    pub layers: Vec<Layer>,
    /// Overrides; a later one wins where two overlap.
    #[serde(default)]
    pub overrides: Vec<Override>,
}

/// Why a person is on call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// Their turn in a layer.
    Layer {
        /// The layer's position (0 = lowest).
        index: usize,
    },
    /// An override.
    Override,
}

/// One continuous stretch of one person on call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Shift {
    /// Who.
    pub user: UserId,
    /// From (inclusive).
    pub from: Timestamp,
    /// Until (exclusive).
    pub to: Timestamp,
    /// Why.
    pub source: Source,
}

/// A schedule checked and ready to answer questions.
#[derive(Clone, Debug)]
pub struct Compiled {
    tz: TimeZone,
    rules: ScheduleRules,
}

fn to_ts(z: &jiff::Zoned) -> Timestamp {
    Timestamp(z.timestamp().as_microsecond())
}

fn local(t: Timestamp, tz: &TimeZone) -> jiff::Zoned {
    t.to_jiff().to_zoned(tz.clone())
}

fn at_local(dt: DateTime, tz: &TimeZone) -> Option<Timestamp> {
    tz.to_ambiguous_zoned(dt)
        .compatible()
        .ok()
        .map(|z| to_ts(&z))
}

const MAX_USERS: usize = 100;
const MAX_LAYERS: usize = 10;
const MAX_OVERRIDES: usize = 500;

impl Compiled {
    /// Checks a schedule: a known zone, 1–10 layers of 1–100 people, sane turns and hours,
    /// overrides that end after they start.
    pub fn new(rules: &ScheduleRules) -> Result<Self, Vec<Invalid>> {
        let mut errors = Vec::new();
        let tz = match TimeZone::get(&rules.time_zone) {
            Ok(tz) => tz,
            Err(_) => {
                errors.push(Invalid::new(
                    "time_zone",
                    "name an IANA time zone such as America/New_York",
                ));
                TimeZone::UTC
            }
        };
        if rules.layers.is_empty() || rules.layers.len() > MAX_LAYERS {
            errors.push(Invalid::new("layers", "give 1 to 10 layers"));
        }
        for (i, l) in rules.layers.iter().enumerate() {
            if l.name.trim().is_empty() || l.name.chars().count() > 100 {
                errors.push(Invalid::new(
                    "layers",
                    format!("layer {}: name it (1 to 100 characters)", i + 1),
                ));
            }
            if l.users.is_empty() || l.users.len() > MAX_USERS {
                errors.push(Invalid::new(
                    "layers",
                    format!("layer {}: list 1 to 100 people", i + 1),
                ));
            }
            if let TurnLength::Hours { hours } = l.turn {
                if !(1..=8784).contains(&hours) {
                    errors.push(Invalid::new(
                        "layers",
                        format!("layer {}: a turn lasts 1 to 8784 hours", i + 1),
                    ));
                }
            }
            if let Some(r) = &l.restriction {
                if r.days.is_empty()
                    || r.days.iter().any(|d| *d > 6)
                    || r.start_minute > 1439
                    || r.end_minute > 1439
                {
                    errors.push(Invalid::new(
                        "layers",
                        format!(
                            "layer {}: restrict to weekdays 0–6 and minutes 0–1439",
                            i + 1
                        ),
                    ));
                }
            }
        }
        if rules.overrides.len() > MAX_OVERRIDES {
            errors.push(Invalid::new("overrides", "keep at most 500 overrides"));
        }
        if rules.overrides.iter().any(|o| o.to <= o.from) {
            errors.push(Invalid::new(
                "overrides",
                "an override must end after it starts",
            ));
        }
        if errors.is_empty() {
            Ok(Compiled {
                tz,
                rules: rules.clone(),
            })
        } else {
            Err(errors)
        }
    }

    /// The rules it was made from.
    pub fn rules(&self) -> &ScheduleRules {
        &self.rules
    }

    /// The instant turn `k` of layer `l` begins (turn 0 at the layer's start).
    fn handoff(&self, l: &Layer, k: i64) -> Option<Timestamp> {
        match l.turn {
            TurnLength::Daily | TurnLength::Weekly => {
                let days = if l.turn == TurnLength::Daily {
                    k
                } else {
                    k * 7
                };
                let dt = l.start.checked_add(jiff::Span::new().days(days)).ok()?;
                at_local(dt, &self.tz)
            }
            TurnLength::Hours { hours } => {
                let t0 = at_local(l.start, &self.tz)?;
                Some(t0.plus_seconds(k.checked_mul(i64::from(hours) * 3600)?))
            }
        }
    }

    fn nominal_turn_seconds(l: &Layer) -> i64 {
        match l.turn {
            TurnLength::Daily => 86_400,
            TurnLength::Weekly => 7 * 86_400,
            TurnLength::Hours { hours } => i64::from(hours) * 3600,
        }
    }

    /// The turn of layer `l` that contains `t`, if the layer has started.
    fn turn_at(&self, l: &Layer, t: Timestamp) -> Option<i64> {
        let t0 = self.handoff(l, 0)?;
        if t < t0 {
            return None;
        }
        let mut k = (t.0 - t0.0) / (Self::nominal_turn_seconds(l) * Timestamp::SECOND);
        // Wall-clock turns differ from the nominal length by at most a DST shift.
        while k > 0 && self.handoff(l, k)? > t {
            k -= 1;
        }
        while self.handoff(l, k + 1)? <= t {
            k += 1;
        }
        Some(k)
    }

    fn layer_user(&self, l: &Layer, t: Timestamp) -> Option<UserId> {
        if let Some(r) = &l.restriction {
            let z = local(t, &self.tz);
            let minute = z.time().hour() as u16 * 60 + z.time().minute() as u16;
            if !r.covers(z.date(), minute) {
                return None;
            }
        }
        let k = self.turn_at(l, t)?;
        let n = l.users.len() as i64;
        l.users.get(k.rem_euclid(n) as usize).copied()
    }

    /// Who is on call at `t`, and why; `None` when nobody is.
    pub fn on_call_at(&self, t: Timestamp) -> Option<(UserId, Source)> {
        if let Some(o) = self
            .rules
            .overrides
            .iter()
            .rev()
            .find(|o| o.from <= t && t < o.to)
        {
            return Some((o.user, Source::Override));
        }
        self.rules
            .layers
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, l)| {
                self.layer_user(l, t)
                    .map(|u| (u, Source::Layer { index: i }))
            })
    }

    /// Every instant in `[from, to)` at which the answer of `on_call_at` may change.
    fn boundaries(&self, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let mut b = vec![from];
        for l in &self.rules.layers {
            let mut k = self.turn_at(l, from).unwrap_or(0);
            while let Some(h) = self.handoff(l, k) {
                if h >= to {
                    break;
                }
                if h > from {
                    b.push(h);
                }
                k += 1;
            }
            if let Some(r) = &l.restriction {
                let mut day = local(from, &self.tz)
                    .date()
                    .yesterday()
                    .unwrap_or(Date::MIN);
                loop {
                    let mut past = false;
                    for m in [r.start_minute, r.end_minute] {
                        let Ok(tm) = Time::new((m / 60) as i8, (m % 60) as i8, 0, 0) else {
                            continue;
                        };
                        // In a repeated hour the edge happens twice; in a skipped one, at the
                        // transition (added below).
                        let amb = self.tz.to_ambiguous_zoned(day.to_datetime(tm));
                        for z in [amb.clone().earlier(), amb.later()].into_iter().flatten() {
                            let at = to_ts(&z);
                            if at >= to {
                                past = true;
                            } else if at > from {
                                b.push(at);
                            }
                        }
                    }
                    if past {
                        break;
                    }
                    let Ok(next) = day.tomorrow() else { break };
                    day = next;
                }
            }
        }
        if self.rules.layers.iter().any(|l| l.restriction.is_some()) {
            for tr in self.tz.following(from.to_jiff()) {
                let at = Timestamp(tr.timestamp().as_microsecond());
                if at >= to {
                    break;
                }
                b.push(at);
            }
        }
        for o in &self.rules.overrides {
            for x in [o.from, o.to] {
                if x > from && x < to {
                    b.push(x);
                }
            }
        }
        b.sort_unstable();
        b.dedup();
        b
    }

    /// The shifts in `[from, to)`, clipped to the range, in order; adjacent stretches of the
    /// same person for the same reason are one shift.
    pub fn shifts(&self, from: Timestamp, to: Timestamp) -> Vec<Shift> {
        let mut out: Vec<Shift> = Vec::new();
        if to <= from {
            return out;
        }
        let b = self.boundaries(from, to);
        for (i, start) in b.iter().enumerate() {
            let end = b.get(i + 1).copied().unwrap_or(to);
            let Some((user, source)) = self.on_call_at(*start) else {
                continue;
            };
            match out.last_mut() {
                Some(last) if last.to == *start && last.user == user && last.source == source => {
                    last.to = end;
                }
                _ => out.push(Shift {
                    user,
                    from: *start,
                    to: end,
                    source,
                }),
            }
        }
        out
    }
}

// ---- escalation ------------------------------------------------------------------------

/// Whom one level of a policy notifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Target {
    /// Whoever a schedule has on call at that instant.
    Schedule {
        /// The schedule.
        schedule_id: ScheduleId,
    },
    /// One named person.
    User {
        /// The person.
        user_id: UserId,
    },
    /// Everyone who works on a side for the client.
    Side {
        /// The side.
        side: Party,
    },
}

/// One level: notify these, then wait.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// Whom to notify.
    pub targets: Vec<Target>,
    /// Minutes to wait for an acknowledgement before the next level (1–1440).
    pub wait_minutes: u32,
}

/// What an escalation policy says, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    /// Levels, first to last.
    pub levels: Vec<Level>,
    /// How many more times to walk all levels when nobody acknowledges (0–9).
    #[serde(default)]
    pub repeat: u32,
    /// After the last level, page the other side — only where the agreement gives the
    /// other side a part (responsible or accountable) in the page's domain.
    #[serde(default)]
    pub then_other_side: bool,
}

impl PolicyRules {
    /// Checks a policy.
    pub fn check(&self) -> Result<(), Vec<Invalid>> {
        let mut errors = Vec::new();
        if self.levels.is_empty() || self.levels.len() > 20 {
            errors.push(Invalid::new("levels", "give 1 to 20 levels"));
        }
        for (i, l) in self.levels.iter().enumerate() {
            if l.targets.is_empty() || l.targets.len() > 20 {
                errors.push(Invalid::new(
                    "levels",
                    format!("level {}: name 1 to 20 targets", i + 1),
                ));
            }
            if !(1..=1440).contains(&l.wait_minutes) {
                errors.push(Invalid::new(
                    "levels",
                    format!("level {}: wait 1 to 1440 minutes", i + 1),
                ));
            }
        }
        if self.repeat > 9 {
            errors.push(Invalid::new("repeat", "repeat 0 to 9 times"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// How many steps walking the policy takes (levels × rounds), not counting the other side.
    pub fn steps(&self) -> u32 {
        self.levels.len() as u32 * (self.repeat + 1)
    }

    /// What step `n` (0-based) does, or `None` when the policy is exhausted.
    /// `other_side_allowed` is the agreement's answer for the page's domain.
    pub fn step(&self, n: u32, other_side_allowed: bool) -> Option<Step> {
        if self.levels.is_empty() {
            return None;
        }
        if n < self.steps() {
            let level = (n as usize) % self.levels.len();
            return Some(Step::Level {
                level,
                round: n / self.levels.len() as u32,
                wait_minutes: self.levels[level].wait_minutes,
            });
        }
        (n == self.steps() && self.then_other_side && other_side_allowed).then_some(Step::OtherSide)
    }
}

/// One step of walking a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Step {
    /// Notify a level's targets and wait.
    Level {
        /// Which level (0-based).
        level: usize,
        /// Which pass over the levels (0-based).
        round: u32,
        /// Minutes to wait after it.
        wait_minutes: u32,
    },
    /// Hand the page to the other side's policy.
    OtherSide,
}

// ---- records ---------------------------------------------------------------------------

/// A stored schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    /// Id.
    pub id: ScheduleId,
    /// The client, for the client's own IT; absent for the provider's (provider-wide) ones.
    pub client_id: Option<ClientId>,
    /// Whose schedule it is.
    pub side: Party,
    /// Name.
    pub name: String,
    /// Layers and overrides.
    pub rules: ScheduleRules,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// A stored escalation policy (one per side: the provider's, and each client's own IT's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    /// Id.
    pub id: PolicyId,
    /// The client, for the client's own IT; absent for the provider's.
    pub client_id: Option<ClientId>,
    /// Whose policy it is.
    pub side: Party,
    /// Name.
    pub name: String,
    /// Levels and repeats.
    pub rules: PolicyRules,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// How bad a paged problem is (the PagerDuty Events v2 severities).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Down or about to be.
    Critical,
    /// Broken.
    Error,
    /// Degrading.
    Warning,
    /// For information.
    Info,
}

impl Severity {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "critical" => Severity::Critical,
            "error" => Severity::Error,
            "warning" => Severity::Warning,
            "info" => Severity::Info,
            other => return Err(format!("unknown severity {other:?}")),
        })
    }
}

/// Where a page stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PageStatus {
    /// Escalating until someone acknowledges it.
    Open,
    /// Someone has it; escalation stopped.
    Acknowledged,
    /// Over.
    Resolved,
}

impl PageStatus {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            PageStatus::Open => "open",
            PageStatus::Acknowledged => "acknowledged",
            PageStatus::Resolved => "resolved",
        }
    }
}

impl std::str::FromStr for PageStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "open" => PageStatus::Open,
            "acknowledged" => PageStatus::Acknowledged,
            "resolved" => PageStatus::Resolved,
            other => return Err(format!("unknown page status {other:?}")),
        })
    }
}

/// A problem being escalated until someone acknowledges it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page {
    /// Id.
    pub id: PageId,
    /// The client.
    pub client_id: ClientId,
    /// The scope agreement's domain.
    pub domain: String,
    /// The caller's key for the problem; one open page per client and key.
    pub dedup_key: String,
    /// One line.
    pub summary: String,
    /// How bad.
    pub severity: Severity,
    /// Where to look (a URL or path), if given.
    pub link: Option<String>,
    /// The side being paged now.
    pub side: Party,
    /// The policy being walked, if that side has one.
    pub policy_id: Option<PolicyId>,
    /// Whether the agreement lets the page go on to the other side.
    pub other_side_ok: bool,
    /// Where it stands.
    pub status: PageStatus,
    /// The next step of the policy to take.
    pub step: i64,
    /// When that step is due (absent: nothing more to do).
    pub next_step_at: Option<Timestamp>,
    /// Opened.
    pub opened_at: Timestamp,
    /// Acknowledged.
    pub acknowledged_at: Option<Timestamp>,
    /// By whom.
    pub acknowledged_by: Option<UserId>,
    /// Resolved.
    pub resolved_at: Option<Timestamp>,
    /// By whom (absent: by the caller that opened it, or Tandem).
    pub resolved_by: Option<UserId>,
}

/// One thing that happened to a page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PageEvent {
    /// When.
    pub at: Timestamp,
    /// `opened`, `notified`, `escalated`, `other_side`, `exhausted`, `acknowledged`, `resolved`.
    pub kind: String,
    /// The person concerned.
    pub user_id: Option<UserId>,
    /// In words.
    pub body: String,
}

/// A calendar feed (its token is never stored, only its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Feed {
    /// Id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: uuid::Uuid,
    /// The schedule, for a schedule's feed.
    pub schedule_id: Option<ScheduleId>,
    /// The person, for a person's feed.
    pub user_id: Option<UserId>,
    /// The client the schedule belongs to, if any.
    pub client_id: Option<ClientId>,
    /// Who made it.
    pub created_by: UserId,
    /// When.
    pub created_at: Timestamp,
    /// Revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

// ---- shift handoffs ----------------------------------------------------------------------

/// A change of the side that owns a client's work: at the end of the client's business hours
/// the after-hours owner takes over, at their start the business-hours owner takes it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    /// When.
    pub at: Timestamp,
    /// The side handing over.
    pub from: Party,
    /// The side taking over.
    pub to: Party,
}

/// The handovers in `(after, until]` under an agreement. None when no domain changes owner
/// between business hours and after hours. The sides are those of the domains that do change
/// (the first such domain of the agreement, in its order).
pub fn handovers(
    agreement: &crate::scope::Agreement,
    compiled: &crate::scope::CompiledAgreement,
    after: Timestamp,
    until: Timestamp,
) -> Vec<Handover> {
    let Some(changing) = agreement
        .assignments
        .iter()
        .find(|a| a.business_hours_owner != a.after_hours_owner)
    else {
        return Vec::new();
    };
    let internal = compiled.calendar(Party::Internal);
    let mut out = Vec::new();
    let mut t = after;
    while let Some(at) = internal.next_change(t, 8) {
        if at > until {
            break;
        }
        let (from, to) = if internal.is_open(at) {
            (changing.after_hours_owner, changing.business_hours_owner)
        } else {
            (changing.business_hours_owner, changing.after_hours_owner)
        };
        out.push(Handover { at, from, to });
        t = at;
    }
    out
}

/// One open thing listed on a handoff record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoffItem {
    /// `page` or `ticket` (other modules add their own kinds).
    pub kind: String,
    /// Its id.
    pub id: String,
    /// One line.
    pub label: String,
    /// Where to look.
    pub link: String,
}

/// A note the outgoing side left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoffNote {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub author_id: Option<UserId>,
    /// How they are named.
    pub author_label: String,
    /// The text.
    pub body: String,
}

/// The record of a shift handoff between the sides of a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Handoff {
    /// Id.
    pub id: HandoffId,
    /// The client.
    pub client_id: ClientId,
    /// When the owning side changed.
    pub at: Timestamp,
    /// The side handing over.
    pub from_side: Party,
    /// The side taking over (it acknowledges).
    pub to_side: Party,
    /// What was open at the handoff.
    pub items: Vec<HandoffItem>,
    /// Notes of the outgoing side, oldest first.
    pub notes: Vec<HandoffNote>,
    /// When the receiving side acknowledged it.
    pub acknowledged_at: Option<Timestamp>,
    /// Who did.
    pub acknowledged_by: Option<UserId>,
    /// The page opened because nobody acknowledged in time.
    pub page_id: Option<PageId>,
}

// ---- iCalendar -------------------------------------------------------------------------

/// Escapes a TEXT value (RFC 5545 §3.3.11).
pub fn ical_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Folds a content line at 75 octets without splitting a character (RFC 5545 §3.1), and
/// ends each physical line with CRLF.
pub fn ical_fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut width = 0;
    for ch in line.chars() {
        let n = ch.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(ch);
        width += n;
    }
    out.push_str("\r\n");
    out
}

fn ical_time(t: Timestamp) -> String {
    t.to_jiff().strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// One event of a feed.
#[derive(Clone, Debug)]
pub struct FeedEvent {
    /// A stable unique id.
    pub uid: String,
    /// Title.
    pub summary: String,
    /// Start.
    pub from: Timestamp,
    /// End.
    pub to: Timestamp,
}

/// A calendar of events (RFC 5545), times in UTC.
pub fn ical_feed(name: &str, stamp: Timestamp, events: &[FeedEvent]) -> String {
    let mut s = String::new();
    for l in [
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//Tandem//On-call//EN".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:PUBLISH".to_string(),
        format!("X-WR-CALNAME:{}", ical_escape(name)),
    ] {
        s.push_str(&ical_fold(&l));
    }
    for e in events {
        for l in [
            "BEGIN:VEVENT".to_string(),
            format!("UID:{}", ical_escape(&e.uid)),
            format!("DTSTAMP:{}", ical_time(stamp)),
            format!("DTSTART:{}", ical_time(e.from)),
            format!("DTEND:{}", ical_time(e.to)),
            format!("SUMMARY:{}", ical_escape(&e.summary)),
            "TRANSP:OPAQUE".to_string(),
            "END:VEVENT".to_string(),
        ] {
            s.push_str(&ical_fold(&l));
        }
    }
    s.push_str(&ical_fold("END:VCALENDAR"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn users(n: usize) -> Vec<UserId> {
        (0..n).map(|_| UserId::new()).collect()
    }

    fn daily(us: &[UserId], start: &str) -> Layer {
        Layer {
            name: "Daily".into(),
            users: us.to_vec(),
            start: start.parse().unwrap(),
            turn: TurnLength::Daily,
            restriction: None,
        }
    }

    fn sched(layers: Vec<Layer>) -> Compiled {
        Compiled::new(&ScheduleRules {
            time_zone: "America/New_York".into(),
            layers,
            overrides: vec![],
        })
        .unwrap()
    }

    #[test]
    fn daily_handoff_keeps_wall_clock_across_dst() {
        let u = users(2);
        let s = sched(vec![daily(&u, "2026-10-30T08:00")]);
        // DST ends in New York on 2026-11-01 at 02:00.
        let shifts = s.shifts(ts("2026-10-30T12:00:00Z"), ts("2026-11-04T12:00:00Z"));
        let tz = TimeZone::get("America/New_York").unwrap();
        for sh in &shifts[1..] {
            let z = sh.from.to_jiff().to_zoned(tz.clone());
            assert_eq!((z.hour(), z.minute()), (8, 0), "{z}");
        }
        // The turn across the change is 25 hours long.
        let long = shifts
            .iter()
            .find(|sh| sh.from == ts("2026-10-31T12:00:00Z"))
            .unwrap();
        assert_eq!(long.to, ts("2026-11-01T13:00:00Z"));
        assert_eq!(long.user, u[1]);
    }

    #[test]
    fn nobody_before_the_start_and_turns_alternate() {
        let u = users(2);
        let s = sched(vec![daily(&u, "2026-11-02T08:00")]);
        assert_eq!(s.on_call_at(ts("2026-11-02T12:00:00Z")), None);
        assert_eq!(s.on_call_at(ts("2026-11-02T13:00:00Z")).unwrap().0, u[0]);
        assert_eq!(s.on_call_at(ts("2026-11-03T13:00:00Z")).unwrap().0, u[1]);
        assert_eq!(s.on_call_at(ts("2026-11-04T12:59:59Z")).unwrap().0, u[1]);
        assert_eq!(s.on_call_at(ts("2026-11-04T13:00:00Z")).unwrap().0, u[0]);
    }

    #[test]
    fn higher_layer_and_override_win() {
        let u = users(3);
        let mut night = daily(&u[1..2], "2026-11-01T00:00");
        night.restriction = Some(Restriction {
            days: (0..7).collect(),
            start_minute: 18 * 60,
            end_minute: 8 * 60,
        });
        let mut s = sched(vec![daily(&u[0..1], "2026-11-01T00:00"), night]);
        assert_eq!(s.on_call_at(ts("2026-11-03T17:00:00Z")).unwrap().0, u[0]); // 12:00
        assert_eq!(
            s.on_call_at(ts("2026-11-04T07:10:00Z")).unwrap(),
            (u[1], Source::Layer { index: 1 })
        ); // 02:10
        s.rules.overrides.push(Override {
            user: u[2],
            from: ts("2026-11-04T05:00:00Z"),
            to: ts("2026-11-04T09:00:00Z"),
        });
        assert_eq!(
            s.on_call_at(ts("2026-11-04T07:10:00Z")).unwrap(),
            (u[2], Source::Override)
        );
    }

    #[test]
    fn bad_schedules_are_refused_with_fields() {
        let e = Compiled::new(&ScheduleRules {
            time_zone: "Mars/Olympus".into(),
            layers: vec![],
            overrides: vec![Override {
                user: UserId::new(),
                from: ts("2026-11-04T09:00:00Z"),
                to: ts("2026-11-04T05:00:00Z"),
            }],
        })
        .unwrap_err();
        let fields: Vec<_> = e.iter().map(|i| i.field).collect();
        assert_eq!(fields, ["time_zone", "layers", "overrides"]);
    }

    #[test]
    fn policy_steps_repeat_then_other_side() {
        let p = PolicyRules {
            levels: vec![
                Level {
                    targets: vec![Target::Side {
                        side: Party::Provider,
                    }],
                    wait_minutes: 5,
                },
                Level {
                    targets: vec![Target::User {
                        user_id: UserId::new(),
                    }],
                    wait_minutes: 10,
                },
            ],
            repeat: 1,
            then_other_side: true,
        };
        assert!(p.check().is_ok());
        assert_eq!(p.steps(), 4);
        assert_eq!(
            p.step(3, true),
            Some(Step::Level {
                level: 1,
                round: 1,
                wait_minutes: 10
            })
        );
        assert_eq!(p.step(4, true), Some(Step::OtherSide));
        assert_eq!(p.step(4, false), None);
        assert_eq!(p.step(5, true), None);
    }

    #[test]
    fn ical_escapes_and_folds() {
        assert_eq!(ical_escape("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
        let long = format!("SUMMARY:{}", "é".repeat(60));
        let folded = ical_fold(&long);
        for l in folded.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets", l.len());
        }
        assert_eq!(folded.replace("\r\n ", "").trim_end(), long);
        let feed = ical_feed(
            "Provider on call",
            ts("2026-11-01T00:00:00Z"),
            &[FeedEvent {
                uid: "x@tandem".into(),
                summary: "On call: Dana, Lee".into(),
                from: ts("2026-11-02T13:00:00Z"),
                to: ts("2026-11-03T13:00:00Z"),
            }],
        );
        assert!(feed.starts_with("BEGIN:VCALENDAR\r\n"));
        assert!(feed.contains("DTSTART:20261102T130000Z\r\n"));
        assert!(feed.contains("SUMMARY:On call: Dana\\, Lee\r\n"));
        assert!(feed.ends_with("END:VCALENDAR\r\n"));
    }

    #[test]
    fn handovers_follow_the_client_business_hours() {
        use crate::scope::{Agreement, CompiledAgreement};
        let json = serde_json::json!({
            "internal_calendar": {"time_zone": "America/New_York", "week": [[{"start": 450, "end": 1080}], [{"start": 450, "end": 1080}], [{"start": 450, "end": 1080}], [{"start": 450, "end": 1080}], [{"start": 450, "end": 1080}], [], []], "holidays": []},
            "provider_calendar": {"time_zone": "America/New_York", "week": [[{"start": 480, "end": 1080}], [{"start": 480, "end": 1080}], [{"start": 480, "end": 1080}], [{"start": 480, "end": 1080}], [{"start": 480, "end": 1080}], [], []], "holidays": []},
            "assignments": [{"domain": "monitoring", "raci": {"responsible": ["provider"], "accountable": ["provider"], "consulted": [], "informed": []},
                "business_hours_owner": "internal", "after_hours_owner": "provider", "internal_contact": "", "provider_contact": "",
                "internal_escalation": [], "provider_escalation": [], "notes": ""}]
        });
        let a: Agreement = serde_json::from_value(json).unwrap();
        let c = CompiledAgreement::new(&a).unwrap();
        // Monday 2026-11-30 in New York: 07:30 back to internal, 18:00 to the provider.
        let h = handovers(
            &a,
            &c,
            ts("2026-11-30T05:00:00Z"),
            ts("2026-12-01T05:00:00Z"),
        );
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(
            (h[0].at, h[0].from, h[0].to),
            (ts("2026-11-30T12:30:00Z"), Party::Provider, Party::Internal)
        );
        assert_eq!(
            (h[1].at, h[1].from, h[1].to),
            (ts("2026-11-30T23:00:00Z"), Party::Internal, Party::Provider)
        );
        // Nothing to hand over when every domain has one owner around the clock.
        let mut same = a.clone();
        same.assignments[0].after_hours_owner = Party::Internal;
        assert!(handovers(
            &same,
            &c,
            ts("2026-11-30T05:00:00Z"),
            ts("2026-12-01T05:00:00Z")
        )
        .is_empty());
    }

    fn zones() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("America/New_York"),
            Just("Europe/Berlin"),
            Just("Australia/Lord_Howe"),
            Just("UTC")
        ]
    }

    fn turns() -> impl Strategy<Value = TurnLength> {
        prop_oneof![
            Just(TurnLength::Daily),
            Just(TurnLength::Weekly),
            (1u32..72).prop_map(|hours| TurnLength::Hours { hours })
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The shift list tiles the range without overlap, each shift agrees with
        /// `on_call_at` at every probe inside it, and gaps are exactly where nobody is.
        #[test]
        fn shifts_agree_with_on_call_at(
            tz in zones(),
            n in 1usize..4,
            turn in turns(),
            hour in 0i8..24,
            restrict in proptest::option::of((0u16..1440, 0u16..1440)),
            day_offset in 0i64..400,
            probes in proptest::collection::vec(0i64..(14 * 86_400), 1..20),
            ov in proptest::option::of((0i64..(14 * 86_400), 1i64..86_400)),
        ) {
            let u = users(n);
            let start = Date::new(2026, 1, 1).unwrap()
                .checked_add(jiff::Span::new().days(day_offset)).unwrap()
                .to_datetime(Time::new(hour, 0, 0, 0).unwrap());
            let base = Layer { name: "A".into(), users: u.clone(), start, turn, restriction: None };
            let mut top = base.clone();
            top.users.reverse();
            top.restriction = restrict.map(|(s, e)| Restriction { days: vec![0, 2, 4, 5], start_minute: s, end_minute: e });
            let from = at_local(start, &TimeZone::get(tz).unwrap()).unwrap().plus_seconds(-86_400);
            let to = from.plus_seconds(14 * 86_400);
            let overrides = ov.map(|(o, len)| Override { user: UserId::new(), from: from.plus_seconds(o), to: from.plus_seconds(o + len) }).into_iter().collect();
            let s = Compiled::new(&ScheduleRules { time_zone: tz.into(), layers: vec![base, top], overrides }).unwrap();
            let shifts = s.shifts(from, to);
            for w in shifts.windows(2) {
                prop_assert!(w[0].to <= w[1].from);
                prop_assert!(!(w[0].to == w[1].from && w[0].user == w[1].user && w[0].source == w[1].source));
            }
            for sh in &shifts {
                prop_assert!(sh.from < sh.to);
                prop_assert_eq!(s.on_call_at(sh.from), Some((sh.user, sh.source.clone())));
                prop_assert_eq!(s.on_call_at(Timestamp(sh.to.0 - 1)), Some((sh.user, sh.source.clone())));
            }
            for p in probes {
                let t = from.plus_seconds(p);
                let inside = shifts.iter().find(|sh| sh.from <= t && t < sh.to);
                prop_assert_eq!(inside.map(|sh| (sh.user, sh.source.clone())), s.on_call_at(t));
            }
        }

        /// Over n full weekly turns each of n people is on call exactly one turn.
        #[test]
        fn weekly_rotation_is_fair(tz in zones(), n in 1usize..6, hour in 0i8..24) {
            let u = users(n);
            let start: DateTime = Date::new(2026, 3, 2).unwrap().to_datetime(Time::new(hour, 0, 0, 0).unwrap());
            let l = Layer { name: "W".into(), users: u.clone(), start, turn: TurnLength::Weekly, restriction: None };
            let s = Compiled::new(&ScheduleRules { time_zone: tz.into(), layers: vec![l.clone()], overrides: vec![] }).unwrap();
            let t0 = s.handoff(&l, 0).unwrap();
            let t1 = s.handoff(&l, n as i64).unwrap();
            let shifts = s.shifts(t0, t1);
            prop_assert_eq!(shifts.len(), n);
            for (i, sh) in shifts.iter().enumerate() {
                prop_assert_eq!(sh.user, u[i]);
            }
        }

        /// Folded lines never exceed 75 octets and unfold to the original.
        #[test]
        fn folding_round_trips(s in "\\PC{0,300}") {
            let line = format!("SUMMARY:{}", ical_escape(&s));
            let f = ical_fold(&line);
            for l in f.split("\r\n") {
                prop_assert!(l.len() <= 75);
            }
            let unfolded = f.replace("\r\n ", "");
            prop_assert_eq!(unfolded.trim_end_matches("\r\n"), line.as_str());
        }
    }
}
