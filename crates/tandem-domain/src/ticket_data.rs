//! Ticket data beyond the core workflow, free of I/O: tag names, the merge rule, SLA
//! policies per client and priority, and which SLA warning/breach events are due.
//!
//! A ticket's SLA targets come from its client's policy for its priority, or from
//! [`Priority::default_targets`] when the client has none. The sweeper asks [`due_sla_events`]
//! which events a ticket has reached; each is recorded once per ticket and clock.

use crate::helpdesk::{elapsed_seconds, Calendars, ClockSegment, Priority};
use crate::time::Timestamp;
use crate::validate::Invalid;
use serde::{Deserialize, Serialize};

/// Longest tag, in characters.
pub const TAG_MAX: usize = 40;

/// A tag in its one stored form: lower case, words joined by `-`, letters, digits, `-` and
/// `.` only. `" VPN  Outage "` and `"vpn_outage"` are both `vpn-outage`.
pub fn normalize_tag(raw: &str) -> Result<String, Invalid> {
    let mut out = String::new();
    let mut dash = false;
    for ch in raw.trim().chars().flat_map(char::to_lowercase) {
        if ch.is_alphanumeric() || ch == '.' {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(ch);
        } else if ch.is_whitespace() || ch == '-' || ch == '_' {
            dash = true;
        } else {
            return Err(Invalid::new(
                "tag",
                format!("use letters, digits, '-' and '.' only (not {ch:?})"),
            ));
        }
    }
    if out.is_empty() || out.chars().count() > TAG_MAX {
        return Err(Invalid::new(
            "tag",
            format!("write a tag of 1 to {TAG_MAX} characters"),
        ));
    }
    Ok(out)
}

/// What is known about two tickets when one is to be merged into the other.
#[derive(Clone, Copy, Debug)]
pub struct MergeCase {
    /// The two are the same ticket.
    pub same_ticket: bool,
    /// They belong to the same client.
    pub same_client: bool,
    /// The source was already merged into some ticket.
    pub source_merged: bool,
    /// The target was itself merged into another ticket.
    pub target_merged: bool,
    /// Other tickets were merged into the source.
    pub source_has_merged_in: bool,
}

/// Why a merge is refused, if it is: merges never cross clients, never merge a ticket into
/// itself, never merge twice, and never build a chain (a merged ticket is never a target,
/// and a ticket others were merged into is never merged away).
pub fn merge_refusal(c: MergeCase) -> Option<&'static str> {
    if c.same_ticket {
        Some("a ticket cannot be merged into itself")
    } else if !c.same_client {
        Some("tickets of different clients cannot be merged")
    } else if c.source_merged {
        Some("this ticket was already merged")
    } else if c.target_merged {
        Some("the target was itself merged; merge into the ticket it was merged into")
    } else if c.source_has_merged_in {
        Some("other tickets were merged into this one; merge those into the target instead")
    } else {
        None
    }
}

/// A client's targets for one priority, in business minutes of the owning side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlaPolicy {
    /// The priority it applies to.
    pub priority: Priority,
    /// First response within this many business minutes.
    pub response_minutes: i64,
    /// Resolution within this many business minutes.
    pub resolution_minutes: i64,
    /// Warn once this share of a target (1–99 %) is used.
    pub warn_percent: i64,
}

/// The warning threshold when a client has not set one.
pub const DEFAULT_WARN_PERCENT: i64 = 75;

/// Longest target: a year of business minutes.
const MAX_MINUTES: i64 = 525_600;

impl SlaPolicy {
    /// Today's defaults for a priority.
    pub fn default_for(priority: Priority) -> SlaPolicy {
        let (response_minutes, resolution_minutes) = priority.default_targets();
        SlaPolicy {
            priority,
            response_minutes,
            resolution_minutes,
            warn_percent: DEFAULT_WARN_PERCENT,
        }
    }

    /// The defaults for every priority, P1 first.
    pub fn defaults() -> Vec<SlaPolicy> {
        [Priority::P1, Priority::P2, Priority::P3, Priority::P4]
            .into_iter()
            .map(SlaPolicy::default_for)
            .collect()
    }

    /// The targets as `(response, resolution)` minutes, as `sla_state` takes them.
    pub fn targets(&self) -> (i64, i64) {
        (self.response_minutes, self.resolution_minutes)
    }

    /// Checks the numbers; every problem is named.
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut e = Vec::new();
        if !(1..=MAX_MINUTES).contains(&self.response_minutes) {
            e.push(Invalid::new(
                "response_minutes",
                "give 1 to 525600 business minutes",
            ));
        }
        if !(1..=MAX_MINUTES).contains(&self.resolution_minutes) {
            e.push(Invalid::new(
                "resolution_minutes",
                "give 1 to 525600 business minutes",
            ));
        } else if self.resolution_minutes < self.response_minutes {
            e.push(Invalid::new(
                "resolution_minutes",
                "resolution cannot be due before the first response",
            ));
        }
        if !(1..=99).contains(&self.warn_percent) {
            e.push(Invalid::new("warn_percent", "give a share of 1 to 99 %"));
        }
        if e.is_empty() {
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// The policy in force for a priority: the client's own, else the default.
pub fn policy_for(policies: &[SlaPolicy], priority: Priority) -> SlaPolicy {
    policies
        .iter()
        .find(|p| p.priority == priority)
        .copied()
        .unwrap_or_else(|| SlaPolicy::default_for(priority))
}

/// Which of a ticket's two targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SlaClock {
    /// Time to the owning side's first public reply.
    FirstResponse,
    /// Time to resolution.
    Resolution,
}

/// Warning (the threshold share of a target is used) or breach (the target is passed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SlaEventKind {
    /// `sla_warning`: the clock is at or past the warning threshold, target not yet met.
    SlaWarning,
    /// `sla_breach`: the target was passed.
    SlaBreach,
}

impl SlaClock {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            SlaClock::FirstResponse => "first_response",
            SlaClock::Resolution => "resolution",
        }
    }
    /// Words for people.
    pub fn label(&self) -> &'static str {
        match self {
            SlaClock::FirstResponse => "first response",
            SlaClock::Resolution => "resolution",
        }
    }
}

impl SlaEventKind {
    /// Stable name (also the ticket event's kind).
    pub fn as_str(&self) -> &'static str {
        match self {
            SlaEventKind::SlaWarning => "sla_warning",
            SlaEventKind::SlaBreach => "sla_breach",
        }
    }
}

impl std::str::FromStr for SlaClock {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "first_response" => Ok(SlaClock::FirstResponse),
            "resolution" => Ok(SlaClock::Resolution),
            o => Err(format!("{o:?} is not first_response or resolution")),
        }
    }
}

impl std::str::FromStr for SlaEventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sla_warning" => Ok(SlaEventKind::SlaWarning),
            "sla_breach" => Ok(SlaEventKind::SlaBreach),
            o => Err(format!("{o:?} is not sla_warning or sla_breach")),
        }
    }
}

/// One recorded SLA warning or breach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlaEvent {
    /// Position in commit order; pass the last one seen as the next cursor.
    pub seq: i64,
    /// The ticket.
    pub ticket_id: crate::TicketId,
    /// Its client.
    pub client_id: crate::ClientId,
    /// Which target.
    pub clock: SlaClock,
    /// Warning or breach.
    pub kind: SlaEventKind,
    /// When the sweeper recorded it.
    pub at: Timestamp,
}

/// The SLA events a ticket has reached at `now`. For each clock: a breach once business
/// time to its stop (or to `now`, while it runs) passes the target; otherwise a warning
/// once the warning share is used while the target is still unmet. A met target is never
/// warned about afterwards.
pub fn due_sla_events(
    segments: &[ClockSegment],
    responded_at: Option<Timestamp>,
    resolved_at: Option<Timestamp>,
    policy: &SlaPolicy,
    now: Timestamp,
    cals: &Calendars<'_>,
) -> Vec<(SlaClock, SlaEventKind)> {
    let mut out = Vec::new();
    for (clock, met, target) in [
        (
            SlaClock::FirstResponse,
            responded_at,
            policy.response_minutes,
        ),
        (SlaClock::Resolution, resolved_at, policy.resolution_minutes),
    ] {
        let elapsed = elapsed_seconds(segments, met.unwrap_or(now).min(now), cals);
        let target = target * 60;
        if elapsed > target {
            out.push((clock, SlaEventKind::SlaBreach));
        } else if met.is_none() && elapsed * 100 >= target * policy.warn_percent {
            out.push((clock, SlaEventKind::SlaWarning));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{Calendar, CompiledCalendar, Party};
    use proptest::prelude::*;

    fn always() -> CompiledCalendar {
        let c: Calendar = serde_json::from_value(serde_json::json!({
            "time_zone": "UTC",
            "week": [[{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}],
                     [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}],
                     [{"start": 0, "end": 1440}]],
            "holidays": []
        }))
        .expect("calendar");
        CompiledCalendar::new(&c).expect("compiles")
    }

    #[test]
    fn tags_have_one_form() {
        assert_eq!(normalize_tag(" VPN  Outage ").unwrap(), "vpn-outage");
        assert_eq!(normalize_tag("vpn_outage").unwrap(), "vpn-outage");
        assert_eq!(normalize_tag("--Office.365--").unwrap(), "office.365");
        assert!(normalize_tag("  ").is_err());
        assert!(normalize_tag("a/b").is_err());
        assert!(normalize_tag(&"x".repeat(41)).is_err());
    }

    #[test]
    fn merges_refuse_what_the_rule_names() {
        let ok = MergeCase {
            same_ticket: false,
            same_client: true,
            source_merged: false,
            target_merged: false,
            source_has_merged_in: false,
        };
        assert_eq!(merge_refusal(ok), None);
        assert!(merge_refusal(MergeCase {
            same_ticket: true,
            ..ok
        })
        .is_some());
        assert!(merge_refusal(MergeCase {
            same_client: false,
            ..ok
        })
        .is_some());
        assert!(merge_refusal(MergeCase {
            source_merged: true,
            ..ok
        })
        .is_some());
        assert!(merge_refusal(MergeCase {
            target_merged: true,
            ..ok
        })
        .is_some());
        assert!(merge_refusal(MergeCase {
            source_has_merged_in: true,
            ..ok
        })
        .is_some());
    }

    #[test]
    fn policies_are_checked() {
        let p = SlaPolicy::default_for(Priority::P2);
        assert_eq!(p.targets(), Priority::P2.default_targets());
        assert!(p.validate().is_ok());
        let bad = SlaPolicy {
            response_minutes: 0,
            resolution_minutes: -1,
            warn_percent: 100,
            ..p
        };
        assert_eq!(bad.validate().unwrap_err().len(), 3);
        let inverted = SlaPolicy {
            response_minutes: 100,
            resolution_minutes: 50,
            ..p
        };
        assert!(inverted.validate().is_err());
        let own = SlaPolicy {
            response_minutes: 30,
            ..p
        };
        assert_eq!(policy_for(&[own], Priority::P2), own);
        assert_eq!(
            policy_for(&[own], Priority::P4),
            SlaPolicy::default_for(Priority::P4)
        );
    }

    fn seg(at: i64) -> Vec<ClockSegment> {
        vec![ClockSegment {
            from: Timestamp(at * Timestamp::SECOND),
            owner: Party::Internal,
            paused: false,
        }]
    }

    #[test]
    fn warning_then_breach_and_a_met_target_is_quiet() {
        let a = always();
        let cals = Calendars {
            internal: &a,
            provider: &a,
        };
        let p = SlaPolicy {
            priority: Priority::P1,
            response_minutes: 60,
            resolution_minutes: 240,
            warn_percent: 75,
        };
        let s = seg(0);
        let at = |m: i64| Timestamp(m * 60 * Timestamp::SECOND);
        assert!(due_sla_events(&s, None, None, &p, at(44), &cals).is_empty());
        assert_eq!(
            due_sla_events(&s, None, None, &p, at(45), &cals),
            vec![(SlaClock::FirstResponse, SlaEventKind::SlaWarning)]
        );
        assert_eq!(
            due_sla_events(&s, None, None, &p, at(61), &cals),
            vec![(SlaClock::FirstResponse, SlaEventKind::SlaBreach)]
        );
        // Answered in time: nothing more for the first response, ever.
        let e = due_sla_events(&s, Some(at(10)), None, &p, at(200), &cals);
        assert_eq!(e, vec![(SlaClock::Resolution, SlaEventKind::SlaWarning)]);
        // Answered late: the breach stands even if the sweeper comes by afterwards.
        let e = due_sla_events(&s, Some(at(70)), Some(at(100)), &p, at(300), &cals);
        assert_eq!(e, vec![(SlaClock::FirstResponse, SlaEventKind::SlaBreach)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn a_breach_is_never_followed_by_quiet(target in 1i64..600, warn in 1i64..100, m1 in 0i64..2000, m2 in 0i64..2000) {
            let a = always();
            let cals = Calendars { internal: &a, provider: &a };
            let p = SlaPolicy { priority: Priority::P3, response_minutes: target, resolution_minutes: target, warn_percent: warn };
            let s = seg(0);
            let (lo, hi) = (m1.min(m2), m1.max(m2));
            let at = |m: i64| Timestamp(m * 60 * Timestamp::SECOND);
            let early = due_sla_events(&s, None, None, &p, at(lo), &cals);
            let late = due_sla_events(&s, None, None, &p, at(hi), &cals);
            // Once an event is due it stays due or becomes a breach as time passes.
            for (clock, kind) in early {
                prop_assert!(late.iter().any(|(c, k)| *c == clock && *k >= kind));
            }
        }

        #[test]
        fn any_text_normalizes_to_a_fixed_point_or_is_refused(s in "\\PC{0,50}") {
            if let Ok(t) = normalize_tag(&s) {
                prop_assert_eq!(normalize_tag(&t).unwrap(), t.clone());
                prop_assert!(!t.is_empty() && t.chars().count() <= TAG_MAX);
            }
        }
    }
}
