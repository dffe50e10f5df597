//! Maintenance windows: spans of time in which alerts on the endpoints they cover are still
//! recorded but marked silenced, and page nobody.
//!
//! A window targets what a monitoring policy targets ([`PolicyTarget`]: provider-wide, a
//! client, a site, an endpoint group, one endpoint), may be limited to some check kinds and IT
//! domains ([`WindowFilter`]), and happens once ([`Schedule::OneOff`]) or repeats in an IANA
//! time zone by a subset of RFC 5545 recurrence rules ([`Schedule::Recurring`], [`rrule`]).
//!
//! **Daylight saving.** A recurring window is wall-clock time: it starts at DTSTART's local
//! time on each occurrence day and ends at the local time `duration_minutes` later. A local
//! time that does not exist (the spring-forward gap) is moved forward by the gap's length
//! (RFC 5545's rule, jiff's "compatible"), and an ambiguous one (the fall-back fold) is the
//! earlier instant. So a 02:00–04:00 window on the spring-forward day in New York runs
//! 03:00–04:00 EDT (one real hour, ending when people expect it to), and a 01:00–03:00
//! window on the fall-back day runs three real hours. Both ends are resolved this way; if
//! the end would not be after the start, the window lasts its duration in real time.

pub mod ical;
pub mod rrule;

use crate::monitoring::policy::PolicyTarget;
use crate::validate::Invalid;
use crate::{
    ClientId, EndpointGroupId, EndpointId, MaintenanceWindowId, SiteId, Timestamp, UserId,
};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use rrule::Rule;
use serde::{Deserialize, Serialize};

/// Which alerts a window silences, beyond its target: empty lists mean "all".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WindowFilter {
    /// Only alerts from checks of these kinds (`offline`, `disk_free`, …). Alerts from
    /// external sources have no check kind and are not matched when this is set.
    #[serde(default)]
    pub check_kinds: Vec<String>,
    /// Only alerts routed by these IT domains (`patching`, …).
    #[serde(default)]
    pub domains: Vec<String>,
}

impl WindowFilter {
    /// Whether an alert of this check kind and domain passes the filter.
    pub fn matches(&self, check_kind: Option<&str>, domain: &str) -> bool {
        (self.check_kinds.is_empty()
            || check_kind.is_some_and(|k| self.check_kinds.iter().any(|x| x == k)))
            && (self.domains.is_empty() || self.domains.iter().any(|d| d == domain))
    }

    /// In words, for lists.
    pub fn describe(&self) -> String {
        match (self.check_kinds.is_empty(), self.domains.is_empty()) {
            (true, true) => "all alerts".into(),
            (false, true) => format!("checks: {}", self.check_kinds.join(", ")),
            (true, false) => format!("domains: {}", self.domains.join(", ")),
            (false, false) => format!(
                "checks: {}; domains: {}",
                self.check_kinds.join(", "),
                self.domains.join(", ")
            ),
        }
    }
}

/// When a window happens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Schedule {
    /// Once, from `start` to `end`.
    OneOff {
        /// Start (inclusive).
        start: Timestamp,
        /// End (exclusive).
        end: Timestamp,
    },
    /// Repeating by a recurrence rule, in wall-clock time of an IANA zone.
    Recurring {
        /// The IANA time zone, e.g. `America/New_York`.
        time_zone: String,
        /// The first occurrence's local start, `YYYY-MM-DDTHH:MM` (DTSTART).
        start: String,
        /// How long each occurrence lasts, in minutes (1 to 10080), wall-clock.
        duration_minutes: u32,
        /// The RFC 5545 rule, e.g. `FREQ=WEEKLY;BYDAY=SU`.
        rrule: String,
    },
}

/// One occurrence of a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Occurrence {
    /// Start (inclusive).
    pub start: Timestamp,
    /// End (exclusive).
    pub end: Timestamp,
}

/// A schedule checked and ready to evaluate.
#[derive(Clone, Debug)]
pub enum Compiled {
    /// Once.
    OneOff(Occurrence),
    /// Repeating.
    Recurring {
        /// The zone.
        tz: TimeZone,
        /// DTSTART, local.
        start: DateTime,
        /// Wall-clock minutes.
        minutes: u32,
        /// The rule.
        rule: Rule,
    },
}

/// The longest one-off window: a year.
pub const MAX_ONE_OFF_SECONDS: i64 = 366 * 86_400;
/// The longest occurrence of a recurring window: a week.
pub const MAX_DURATION_MINUTES: u32 = 7 * 24 * 60;

fn ts(t: jiff::Timestamp) -> Timestamp {
    Timestamp(t.as_microsecond())
}

/// Parses a local date-time as a form or the API gives it (`2026-12-06T02:00`, with or without
/// seconds, a space instead of `T` allowed).
pub fn parse_local(s: &str) -> Option<DateTime> {
    let s = s.trim().replace(' ', "T");
    s.parse::<DateTime>().ok()
}

fn resolve(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    tz.to_ambiguous_zoned(dt)
        .compatible()
        .ok()
        .map(|z| ts(z.timestamp()))
}

impl Schedule {
    /// Checks the schedule; every problem names its field.
    pub fn compile(&self) -> Result<Compiled, Vec<Invalid>> {
        match self {
            Schedule::OneOff { start, end } => {
                if end <= start {
                    return Err(vec![Invalid::new("end", "end the window after it starts")]);
                }
                if end.0 - start.0 > MAX_ONE_OFF_SECONDS * Timestamp::SECOND {
                    return Err(vec![Invalid::new(
                        "end",
                        "a one-off window lasts at most a year",
                    )]);
                }
                Ok(Compiled::OneOff(Occurrence {
                    start: *start,
                    end: *end,
                }))
            }
            Schedule::Recurring {
                time_zone,
                start,
                duration_minutes,
                rrule,
            } => {
                let mut errors = Vec::new();
                let tz = TimeZone::get(time_zone.trim()).map_err(|_| {
                    errors.push(Invalid::new(
                        "time_zone",
                        format!("{time_zone:?} is not an IANA time zone such as America/New_York"),
                    ))
                });
                let dt = parse_local(start).ok_or_else(|| {
                    errors.push(Invalid::new(
                        "start",
                        "give the first local start as YYYY-MM-DDTHH:MM",
                    ))
                });
                if *duration_minutes == 0 || *duration_minutes > MAX_DURATION_MINUTES {
                    errors.push(Invalid::new(
                        "duration_minutes",
                        "each occurrence lasts 1 minute to 7 days",
                    ));
                }
                let rule = Rule::parse(rrule).map_err(|e| {
                    errors.push(Invalid::new("rrule", e));
                });
                match (tz, dt, rule) {
                    (Ok(tz), Ok(dt), Ok(rule)) if errors.is_empty() => Ok(Compiled::Recurring {
                        tz,
                        start: dt,
                        minutes: *duration_minutes,
                        rule,
                    }),
                    _ => Err(errors),
                }
            }
        }
    }
}

impl Compiled {
    fn occurrence_at_local(&self, local: DateTime) -> Option<Occurrence> {
        let Compiled::Recurring { tz, minutes, .. } = self else {
            return None;
        };
        let start = resolve(tz, local)?;
        let end_local = local
            .checked_add(jiff::Span::new().minutes(i64::from(*minutes)))
            .ok()?;
        let mut end = resolve(tz, end_local)?;
        if end <= start {
            end = start.plus_seconds(i64::from(*minutes) * 60);
        }
        Some(Occurrence { start, end })
    }

    /// Occurrences that end after `from`, in order, at most `n`.
    pub fn next(&self, from: Timestamp, n: usize) -> Vec<Occurrence> {
        let mut out = Vec::new();
        if n == 0 {
            return out;
        }
        match self {
            Compiled::OneOff(o) => {
                if o.end > from {
                    out.push(*o);
                }
            }
            Compiled::Recurring {
                tz,
                start,
                minutes,
                rule,
            } => {
                // Start a little early: an occurrence that began before `from` may still run.
                let back = i64::from(*minutes) * 60 + 2 * 86_400;
                let from_date = from
                    .plus_seconds(-back)
                    .to_jiff()
                    .to_zoned(tz.clone())
                    .date();
                rule.expand(*start, tz, Some(from_date), |local| {
                    if let Some(o) = self.occurrence_at_local(local) {
                        if o.end > from {
                            out.push(o);
                        }
                    }
                    out.len() < n
                });
            }
        }
        out
    }

    /// The occurrence running at `t`, if any (the one ending last, if several overlap).
    pub fn active_at(&self, t: Timestamp) -> Option<Occurrence> {
        match self {
            Compiled::OneOff(o) => (o.start <= t && t < o.end).then_some(*o),
            Compiled::Recurring { .. } => {
                // Occurrences are in start order; any that has started by `t` and not ended
                // covers it. Stop at the first that starts after `t`.
                let mut best: Option<Occurrence> = None;
                let mut seen = 0;
                let Compiled::Recurring {
                    tz,
                    start,
                    minutes,
                    rule,
                } = self
                else {
                    return None;
                };
                let back = i64::from(*minutes) * 60 + 2 * 86_400;
                let from_date = t.plus_seconds(-back).to_jiff().to_zoned(tz.clone()).date();
                rule.expand(*start, tz, Some(from_date), |local| {
                    seen += 1;
                    match self.occurrence_at_local(local) {
                        Some(o) if o.start > t => false,
                        Some(o) => {
                            if t < o.end && best.is_none_or(|b| o.end > b.end) {
                                best = Some(o);
                            }
                            seen < 100_000
                        }
                        None => seen < 100_000,
                    }
                });
                best
            }
        }
    }

    /// Occurrences overlapping `[from, to)`, in order, at most `limit`.
    pub fn between(&self, from: Timestamp, to: Timestamp, limit: usize) -> Vec<Occurrence> {
        let mut out = Vec::new();
        match self {
            Compiled::OneOff(o) => {
                if o.end > from && o.start < to {
                    out.push(*o);
                }
            }
            Compiled::Recurring {
                tz,
                start,
                minutes,
                rule,
            } => {
                let back = i64::from(*minutes) * 60 + 2 * 86_400;
                let from_date = from
                    .plus_seconds(-back)
                    .to_jiff()
                    .to_zoned(tz.clone())
                    .date();
                rule.expand(*start, tz, Some(from_date), |local| {
                    match self.occurrence_at_local(local) {
                        Some(o) if o.start >= to => return false,
                        Some(o) if o.end > from => out.push(o),
                        _ => {}
                    }
                    out.len() < limit
                });
            }
        }
        out
    }

    /// The start of the first occurrence and the end of the last, when the schedule ends
    /// (`None` for the end of an open-ended rule).
    pub fn bounds(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        match self {
            Compiled::OneOff(o) => (Some(o.start), Some(o.end)),
            Compiled::Recurring { rule, .. } => {
                let first = self
                    .next(Timestamp(i64::MIN / 2), 1)
                    .first()
                    .map(|o| o.start);
                if rule.count.is_none() && rule.until.is_none() {
                    return (first, None);
                }
                let mut last = None;
                let Compiled::Recurring { tz, start, .. } = self else {
                    return (first, None);
                };
                rule.expand(*start, tz, None, |local| {
                    last = self.occurrence_at_local(local).map(|o| o.end);
                    true
                });
                (first, last)
            }
        }
    }
}

/// What an alert is about, for deciding whether a window covers it.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    /// The alert's client.
    pub client_id: Option<ClientId>,
    /// Its endpoint's site, if it concerns an endpoint.
    pub site_id: Option<SiteId>,
    /// Its endpoint's groups.
    pub groups: Vec<EndpointGroupId>,
    /// Its endpoint.
    pub endpoint_id: Option<EndpointId>,
    /// The kind of the check that raised it (`None` for external sources).
    pub check_kind: Option<String>,
    /// Its IT domain.
    pub domain: String,
}

/// A maintenance window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaintenanceWindow {
    /// Its id.
    pub id: MaintenanceWindowId,
    /// The client it belongs to (`None`: provider-wide).
    pub client_id: Option<ClientId>,
    /// A short name.
    pub name: String,
    /// Why (shown on silenced alerts).
    pub reason: String,
    /// What it covers.
    pub target: PolicyTarget,
    /// Which alerts it silences.
    pub filter: WindowFilter,
    /// When.
    pub schedule: Schedule,
    /// Who created it.
    pub created_by: Option<UserId>,
    /// Their name, as shown.
    pub created_label: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl MaintenanceWindow {
    /// Whether the window's target and filter cover the subject (ignoring time).
    pub fn applies_to(&self, s: &Subject) -> bool {
        let target = match self.target {
            PolicyTarget::Provider => true,
            PolicyTarget::Client(c) => s.client_id == Some(c),
            PolicyTarget::Site(x) => s.site_id == Some(x),
            PolicyTarget::Group(g) => s.groups.contains(&g),
            PolicyTarget::Endpoint(e) => s.endpoint_id == Some(e),
        };
        target && self.filter.matches(s.check_kind.as_deref(), &s.domain)
    }

    /// The schedule in words: "2026-12-06 02:00–04:00 UTC" or "every week on Sunday,
    /// 02:00 for 120 min (America/New_York)".
    pub fn describe_schedule(&self, viewer_tz: &str) -> String {
        match &self.schedule {
            Schedule::OneOff { start, end } => {
                format!(
                    "once, {} → {}",
                    start.display_in(viewer_tz),
                    end.display_in(viewer_tz)
                )
            }
            Schedule::Recurring {
                time_zone,
                start,
                duration_minutes,
                rrule,
            } => {
                let rule = Rule::parse(rrule)
                    .map(|r| r.describe())
                    .unwrap_or_else(|_| rrule.clone());
                let at = parse_local(start)
                    .map(|d| d.strftime("%H:%M").to_string())
                    .unwrap_or_default();
                let dur = if duration_minutes % 60 == 0 {
                    format!("{} h", duration_minutes / 60)
                } else {
                    format!("{duration_minutes} min")
                };
                format!(
                    "{rule}, {at} for {dur} ({time_zone}), from {}",
                    start.replace('T', " ")
                )
            }
        }
    }
}

/// The silence a set of windows puts on a subject at `t`: the covering window whose current
/// occurrence ends last, with that end.
pub fn silencing<'a>(
    windows: impl IntoIterator<Item = &'a (MaintenanceWindow, Compiled)>,
    s: &Subject,
    t: Timestamp,
) -> Option<(&'a MaintenanceWindow, Occurrence)> {
    let mut best: Option<(&MaintenanceWindow, Occurrence)> = None;
    for (w, c) in windows {
        if !w.applies_to(s) {
            continue;
        }
        if let Some(o) = c.active_at(t) {
            if best.is_none_or(|(_, b)| o.end > b.end) {
                best = Some((w, o));
            }
        }
    }
    best
}

/// The check kinds a filter may name (as [`crate::monitoring::CheckKind::name`] gives them).
pub const CHECK_KINDS: [&str; 10] = [
    "offline",
    "disk_free",
    "cpu_high",
    "memory_high",
    "service_down",
    "security_updates",
    "reboot_pending",
    "firewall_disabled",
    "new_local_admin",
    "tls_expiring",
];

/// Checks a window's name, reason and filter (the schedule is checked by [`Schedule::compile`]).
pub fn validate_text(name: &str, reason: &str, filter: &WindowFilter) -> Vec<Invalid> {
    let mut out = Vec::new();
    let n = name.trim().chars().count();
    if n == 0 || n > 120 {
        out.push(Invalid::new(
            "name",
            "name the window in 1 to 120 characters",
        ));
    }
    if reason.len() > 2000 {
        out.push(Invalid::new(
            "reason",
            "write the reason in up to 2000 characters",
        ));
    }
    if filter.check_kinds.len() > 20 || filter.domains.len() > 50 {
        out.push(Invalid::new(
            "filter",
            "list at most 20 check kinds and 50 domains",
        ));
    }
    for k in &filter.check_kinds {
        if !CHECK_KINDS.contains(&k.as_str()) {
            out.push(Invalid::new(
                "check_kinds",
                format!("{k:?} is not a check kind; use {}", CHECK_KINDS.join(", ")),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
