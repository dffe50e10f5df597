//! Helpdesk rules, free of I/O: ticket priority from impact and urgency, the status
//! workflow, and the SLA clock that counts business time in the *owning* side's calendar.
//!
//! The clock is the heart of it. A ticket's life is a sequence of [`ClockSegment`]s: from an
//! instant on, one side owns it (a handoff starts a new segment with the other side) and the
//! clock runs or is paused (waiting on the requester). Business time is counted only while the
//! clock runs *and* the owning side's calendar is open, so an SLA target follows whoever owns
//! the ticket, through split shifts, holidays and daylight-saving changes.

use crate::ids::{ClientId, SiteId, TicketId, UserId};
use crate::scope::{CompiledCalendar, Party};
use crate::tenancy::Side;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// How widely a problem is felt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Impact {
    /// The whole organisation or a whole site.
    Organisation,
    /// A team or a department.
    Department,
    /// One person.
    Person,
}

/// How soon it hurts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Urgency {
    /// Work has stopped.
    Critical,
    /// Work is badly slowed.
    High,
    /// A workaround exists.
    Normal,
    /// A request or an annoyance.
    Low,
}

/// A ticket's priority, P1 (most urgent) to P4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Priority {
    /// Everyone drops everything.
    P1,
    /// Today.
    P2,
    /// This week.
    P3,
    /// When there is time.
    P4,
}

impl Priority {
    /// The priority the impact × urgency matrix gives:
    ///
    /// | impact \ urgency | critical | high | normal | low |
    /// |---|---|---|---|---|
    /// | organisation | P1 | P1 | P2 | P3 |
    /// | department | P1 | P2 | P3 | P4 |
    /// | person | P2 | P3 | P3 | P4 |
    pub fn from_matrix(impact: Impact, urgency: Urgency) -> Priority {
        use Impact::*;
        use Priority::*;
        use Urgency::*;
        match (impact, urgency) {
            (Organisation, Critical | High) | (Department, Critical) => P1,
            (Organisation, Normal) | (Department, High) | (Person, Critical) => P2,
            (Organisation, Low) | (Department, Normal) | (Person, High | Normal) => P3,
            (Department | Person, Low) => P4,
        }
    }
}

/// Where a ticket is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Status {
    /// Just arrived; nobody has looked yet.
    New,
    /// Being worked.
    Open,
    /// Waiting for the requester to answer (the SLA clock is paused).
    WaitingOnRequester,
    /// Waiting for a vendor (the clock runs: the owner chose to depend on the vendor).
    WaitingOnVendor,
    /// Fixed; the requester may still object.
    Resolved,
    /// Done for good.
    Closed,
}

impl Status {
    /// Whether the SLA clock runs in this status.
    pub fn clock_runs(&self) -> bool {
        matches!(self, Status::New | Status::Open | Status::WaitingOnVendor)
    }

    /// Whether moving from this status to `to` is allowed. Resolved tickets can be reopened;
    /// closed ones cannot (open a new ticket and link it).
    pub fn may_become(&self, to: Status) -> bool {
        use Status::*;
        if *self == to {
            return false;
        }
        match self {
            New | Open | WaitingOnRequester | WaitingOnVendor => to != New,
            Resolved => matches!(to, Open | Closed),
            Closed => false,
        }
    }
}

/// From `from` on (until the next segment), `owner` owns the ticket and the clock runs unless
/// `paused`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClockSegment {
    /// When this segment starts.
    pub from: Timestamp,
    /// The side that owns the ticket.
    pub owner: Party,
    /// Whether the clock is stopped (waiting on the requester).
    pub paused: bool,
}

/// The calendars the clock counts in, one per side.
pub struct Calendars<'a> {
    /// The client's own IT's working week.
    pub internal: &'a CompiledCalendar,
    /// The provider's.
    pub provider: &'a CompiledCalendar,
}

impl Calendars<'_> {
    fn of(&self, p: Party) -> &CompiledCalendar {
        match p {
            Party::Internal => self.internal,
            Party::Provider => self.provider,
        }
    }
}

/// How far ahead to look for a calendar's next change: a calendar closed for longer than
/// this (say, nothing but holidays) never reaches a target.
const HORIZON_DAYS: i64 = 400;

/// Business time (microseconds) counted in `cal` between `a` and `b`.
fn open_time(cal: &CompiledCalendar, a: Timestamp, b: Timestamp) -> i64 {
    let mut total = 0;
    let mut t = a;
    while t < b {
        let open = cal.is_open(t);
        let next = cal
            .next_change(t, HORIZON_DAYS)
            .map_or(b, |n| if n < b { n } else { b });
        if open {
            total += next.0 - t.0;
        }
        t = next;
    }
    total
}

/// The segments as `[start, end)` intervals, the last one ending at `until`.
fn intervals(
    segments: &[ClockSegment],
    until: Timestamp,
) -> impl Iterator<Item = (ClockSegment, Timestamp)> + '_ {
    segments.iter().enumerate().filter_map(move |(i, s)| {
        let end = segments.get(i + 1).map_or(until, |n| n.from);
        let end = if end < until { end } else { until };
        (s.from < end).then_some((*s, end))
    })
}

/// Business time on the clock from the first segment until `until`, in seconds: running
/// segments count the owning side's open hours; paused ones count nothing.
pub fn elapsed_seconds(segments: &[ClockSegment], until: Timestamp, cals: &Calendars<'_>) -> i64 {
    intervals(segments, until)
        .filter(|(s, _)| !s.paused)
        .map(|(s, end)| open_time(cals.of(s.owner), s.from, end))
        .sum::<i64>()
        / Timestamp::SECOND
}

/// When the clock reaches `target_seconds` of business time, if the ticket stays as the last
/// segment leaves it; `None` while it is paused, or if the owner's calendar never opens again
/// within the horizon.
pub fn deadline(
    segments: &[ClockSegment],
    target_seconds: i64,
    cals: &Calendars<'_>,
) -> Option<Timestamp> {
    let mut left = target_seconds.max(0) * Timestamp::SECOND;
    let last = segments.last()?;
    // Spend the target on the segments before the last one.
    for (s, end) in intervals(segments, last.from) {
        if s.paused {
            continue;
        }
        let used = open_time(cals.of(s.owner), s.from, end);
        if used >= left {
            return walk(cals.of(s.owner), s.from, left);
        }
        left -= used;
    }
    if last.paused {
        return None;
    }
    walk(cals.of(last.owner), last.from, left)
}

/// The instant at which `amount` microseconds of open time in `cal` have passed since `from`.
fn walk(cal: &CompiledCalendar, from: Timestamp, amount: i64) -> Option<Timestamp> {
    let mut left = amount;
    let mut t = from;
    loop {
        let open = cal.is_open(t);
        if open && left == 0 {
            return Some(t);
        }
        let next = cal.next_change(t, HORIZON_DAYS);
        if open {
            let room = next.map_or(i64::MAX, |n| n.0 - t.0);
            if room >= left {
                return Some(Timestamp(t.0 + left));
            }
            left -= room;
        } else if left == 0 {
            // Reached exactly at the end of an open stretch.
            return Some(t);
        }
        t = next?;
    }
}

impl Impact {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Impact::Organisation => "organisation",
            Impact::Department => "department",
            Impact::Person => "person",
        }
    }
}

impl Urgency {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Urgency::Critical => "critical",
            Urgency::High => "high",
            Urgency::Normal => "normal",
            Urgency::Low => "low",
        }
    }
}

impl Priority {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
        }
    }

    /// The default targets, in business minutes of the owning side: (first response,
    /// resolution). P1 1 h / 4 h, P2 4 h / 2 days, P3 1 day / 5 days, P4 2 days / 10 days
    /// (a business day is taken as 8 h).
    pub fn default_targets(&self) -> (i64, i64) {
        match self {
            Priority::P1 => (60, 240),
            Priority::P2 => (240, 960),
            Priority::P3 => (480, 2400),
            Priority::P4 => (960, 4800),
        }
    }
}

impl Status {
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::WaitingOnRequester => "waiting_on_requester",
            Status::WaitingOnVendor => "waiting_on_vendor",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// Whether work on it is finished (resolved or closed).
    pub fn is_done(&self) -> bool {
        matches!(self, Status::Resolved | Status::Closed)
    }
}

/// Lists the stable names above (`ALL`) and parses them (`"p1"` or `"P1"` for priorities).
macro_rules! parse_names {
    ($t:ty, [$($v:expr),*]) => {
        impl $t {
            /// Every value, in the order forms list them.
            pub const ALL: &'static [$t] = &[$($v),*];
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v: &$t| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| format!("{s:?} is not one of: {}", [$($v.as_str()),*].join(", ")))
            }
        }
    };
}
parse_names!(
    Impact,
    [Impact::Organisation, Impact::Department, Impact::Person]
);
parse_names!(
    Urgency,
    [
        Urgency::Critical,
        Urgency::High,
        Urgency::Normal,
        Urgency::Low
    ]
);
parse_names!(
    Priority,
    [Priority::P1, Priority::P2, Priority::P3, Priority::P4]
);
parse_names!(
    Status,
    [
        Status::New,
        Status::Open,
        Status::WaitingOnRequester,
        Status::WaitingOnVendor,
        Status::Resolved,
        Status::Closed
    ]
);

/// Where a ticket stands against its targets at one instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlaState {
    /// Business minutes on the clock so far.
    pub elapsed_minutes: i64,
    /// The first-response target, in business minutes.
    pub response_target_minutes: i64,
    /// The resolution target, in business minutes.
    pub resolution_target_minutes: i64,
    /// When the first response is due (absent once responded, or while paused).
    pub response_due: Option<Timestamp>,
    /// When resolution is due (absent once resolved, or while paused).
    pub resolution_due: Option<Timestamp>,
    /// The first response came (or is still missing) after its target.
    pub response_breached: bool,
    /// Resolution came (or is still missing) after its target.
    pub resolution_breached: bool,
}

/// The SLA state of a ticket at `now`, given its clock, when it was first answered and
/// resolved, and its targets (business minutes).
pub fn sla_state(
    segments: &[ClockSegment],
    responded_at: Option<Timestamp>,
    resolved_at: Option<Timestamp>,
    targets: (i64, i64),
    now: Timestamp,
    cals: &Calendars<'_>,
) -> SlaState {
    let (response, resolution) = targets;
    let at_response = elapsed_seconds(segments, responded_at.unwrap_or(now), cals);
    let at_resolution = elapsed_seconds(segments, resolved_at.unwrap_or(now), cals);
    SlaState {
        elapsed_minutes: elapsed_seconds(segments, now, cals) / 60,
        response_target_minutes: response,
        resolution_target_minutes: resolution,
        response_due: responded_at
            .is_none()
            .then(|| deadline(segments, response * 60, cals))
            .flatten(),
        resolution_due: resolved_at
            .is_none()
            .then(|| deadline(segments, resolution * 60, cals))
            .flatten(),
        response_breached: at_response > response * 60,
        resolution_breached: at_resolution > resolution * 60,
    }
}

/// A ticket both sides work from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ticket {
    /// Its id.
    pub id: TicketId,
    /// The client it belongs to.
    pub client_id: ClientId,
    /// Its number within the client (#1, #2, …).
    pub number: i64,
    /// The site concerned, if any.
    pub site_id: Option<SiteId>,
    /// Who asked (an end user or another person of the client), if a person of Tandem.
    pub requester_id: Option<UserId>,
    /// One line.
    pub subject: String,
    /// What the requester wrote.
    pub description: String,
    /// The scope agreement's domain, such as `helpdesk` or `security_monitoring`.
    pub domain: String,
    /// The side that owns it now.
    pub owner: Party,
    /// The person working it.
    pub assignee_id: Option<UserId>,
    /// Whom the agreement names to assign on the owning side, when opened.
    pub assignee_hint: Option<String>,
    /// How widely it is felt.
    pub impact: Impact,
    /// How soon it hurts.
    pub urgency: Urgency,
    /// From impact × urgency.
    pub priority: Priority,
    /// Where it is.
    pub status: Status,
    /// Who opened it; absent for a ticket Tandem opened itself (an alert's, by policy — its
    /// "opened" history entry names the part of Tandem, such as "Tandem monitoring").
    pub created_by: Option<UserId>,
    /// When.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
    /// The owning side's first public reply.
    pub first_response_at: Option<Timestamp>,
    /// When it was (last) resolved.
    pub resolved_at: Option<Timestamp>,
    /// When it was closed.
    pub closed_at: Option<Timestamp>,
    /// The SLA clock: owner and pause changes over its life.
    pub clock: Vec<ClockSegment>,
}

/// One entry of a ticket's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketEvent {
    /// The entry's id (attachments name the reply or note they came with by it).
    pub id: crate::EventId,
    /// When.
    pub at: Timestamp,
    /// Who, if a person.
    pub actor_id: Option<UserId>,
    /// How they are named.
    pub actor_label: String,
    /// Their side.
    pub actor_side: Side,
    /// `opened`, `reply`, `note`, `status`, `handoff` or `assigned`.
    pub kind: String,
    /// The text (a reply, a note, a handoff's reason) or a summary of the change.
    pub body: String,
    /// Whether the requester sees it (replies and the ticket's own events); internal notes
    /// are for the two IT sides only.
    pub public: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::{Calendar, Holiday, Span};
    use proptest::prelude::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn compiled(c: &Calendar) -> CompiledCalendar {
        CompiledCalendar::new(c).unwrap()
    }

    /// Harbor Point's internal IT: Mon–Fri 07:30–17:00, New York, Christmas off.
    fn internal() -> CompiledCalendar {
        let mut c = Calendar::weekdays("America/New_York", 450, 1020);
        c.holidays.push(Holiday {
            date: "2026-12-25".into(),
            name: "Christmas Day".into(),
        });
        compiled(&c)
    }

    /// The provider: a split shift, 08:00–12:00 and 13:00–18:00, Mon–Fri, New York.
    fn provider() -> CompiledCalendar {
        let day = vec![
            Span {
                start: 480,
                end: 720,
            },
            Span {
                start: 780,
                end: 1080,
            },
        ];
        compiled(&Calendar {
            time_zone: "America/New_York".into(),
            week: vec![
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                vec![],
                vec![],
            ],
            holidays: vec![],
        })
    }

    fn always() -> CompiledCalendar {
        let day = vec![Span {
            start: 0,
            end: 1440,
        }];
        compiled(&Calendar {
            time_zone: "UTC".into(),
            week: vec![day; 7],
            holidays: vec![],
        })
    }

    fn seg(from: &str, owner: Party, paused: bool) -> ClockSegment {
        ClockSegment {
            from: at(from),
            owner,
            paused,
        }
    }

    #[test]
    fn the_matrix_gives_the_priorities() {
        assert_eq!(
            Priority::from_matrix(Impact::Organisation, Urgency::Critical),
            Priority::P1
        );
        assert_eq!(
            Priority::from_matrix(Impact::Person, Urgency::Critical),
            Priority::P2
        );
        assert_eq!(
            Priority::from_matrix(Impact::Department, Urgency::Normal),
            Priority::P3
        );
        assert_eq!(
            Priority::from_matrix(Impact::Person, Urgency::Low),
            Priority::P4
        );
    }

    #[test]
    fn the_workflow_allows_reopening_resolved_but_not_closed_tickets() {
        assert!(Status::New.may_become(Status::Open));
        assert!(Status::Open.may_become(Status::WaitingOnRequester));
        assert!(Status::Resolved.may_become(Status::Open));
        assert!(!Status::Closed.may_become(Status::Open));
        assert!(!Status::Open.may_become(Status::New));
        assert!(!Status::WaitingOnRequester.clock_runs());
        assert!(Status::WaitingOnVendor.clock_runs());
    }

    #[test]
    fn business_hours_count_and_nights_do_not() {
        let (i, p) = (internal(), provider());
        let cals = Calendars {
            internal: &i,
            provider: &p,
        };
        // Opened Monday 16:00 New York (21:00 UTC), owned by internal: one hour on Monday,
        // then Tuesday from 07:30.
        let s = [seg("2026-11-23T21:00:00Z", Party::Internal, false)];
        assert_eq!(
            elapsed_seconds(&s, at("2026-11-24T13:30:00Z"), &cals),
            3600 + 3600
        );
        // A four-hour target: 1 h Monday, 3 h Tuesday → Tuesday 10:30 New York.
        assert_eq!(
            deadline(&s, 4 * 3600, &cals),
            Some(at("2026-11-24T15:30:00Z"))
        );
    }

    #[test]
    fn split_shifts_skip_the_lunch_break() {
        let (i, p) = (internal(), provider());
        let cals = Calendars {
            internal: &i,
            provider: &p,
        };
        // Provider-owned from Wednesday 11:00 New York: 1 h until 12:00, then from 13:00.
        let s = [seg("2026-11-25T16:00:00Z", Party::Provider, false)];
        assert_eq!(
            deadline(&s, 2 * 3600, &cals),
            Some(at("2026-11-25T19:00:00Z"))
        );
        assert_eq!(
            elapsed_seconds(&s, at("2026-11-25T18:30:00Z"), &cals),
            3600 + 1800
        );
    }

    #[test]
    fn holidays_and_weekends_stop_the_clock() {
        let (i, p) = (internal(), provider());
        let cals = Calendars {
            internal: &i,
            provider: &p,
        };
        // Thursday 24 Dec 2026 16:00: 1 h, then Christmas (Friday) and the weekend are off.
        let s = [seg("2026-12-24T21:00:00Z", Party::Internal, false)];
        assert_eq!(elapsed_seconds(&s, at("2026-12-28T12:30:00Z"), &cals), 3600);
        assert_eq!(
            deadline(&s, 2 * 3600, &cals),
            Some(at("2026-12-28T13:30:00Z"))
        );
    }

    #[test]
    fn a_business_day_is_nine_and_a_half_hours_on_daylight_saving_days_too() {
        let i = internal();
        let p = provider();
        let cals = Calendars {
            internal: &i,
            provider: &p,
        };
        // 2026-03-09 (Monday after clocks went forward) and 2026-11-02 (after they went back).
        for (from, to) in [
            ("2026-03-09T04:00:00Z", "2026-03-10T04:00:00Z"),
            ("2026-11-02T05:00:00Z", "2026-11-03T05:00:00Z"),
        ] {
            let s = [seg(from, Party::Internal, false)];
            assert_eq!(
                elapsed_seconds(&s, at(to), &cals),
                9 * 3600 + 1800,
                "{from}"
            );
        }
    }

    #[test]
    fn a_handoff_mid_clock_counts_each_side_in_its_own_hours() {
        let (i, p) = (internal(), provider());
        let cals = Calendars {
            internal: &i,
            provider: &p,
        };
        // Internal from Monday 07:30 to 11:00 (3.5 h), then handed to the provider, whose
        // hours start at 08:00 but break for lunch: 11:00–12:00 and 13:00–14:00 = 2 h by 14:00.
        let s = [
            seg("2026-11-23T12:30:00Z", Party::Internal, false),
            seg("2026-11-23T16:00:00Z", Party::Provider, false),
        ];
        assert_eq!(
            elapsed_seconds(&s, at("2026-11-23T19:00:00Z"), &cals),
            3 * 3600 + 1800 + 2 * 3600
        );
    }

    #[test]
    fn waiting_on_the_requester_pauses_the_clock() {
        let (i, p) = (internal(), provider());
        let cals = Calendars {
            internal: &i,
            provider: &p,
        };
        let s = [
            seg("2026-11-23T14:00:00Z", Party::Internal, false),
            seg("2026-11-23T15:00:00Z", Party::Internal, true),
            seg("2026-11-23T18:00:00Z", Party::Internal, false),
        ];
        assert_eq!(
            elapsed_seconds(&s, at("2026-11-23T19:00:00Z"), &cals),
            2 * 3600
        );
        assert_eq!(
            deadline(&s[..2], 4 * 3600, &cals),
            None,
            "no deadline while paused"
        );
        assert_eq!(
            deadline(&s, 3 * 3600, &cals),
            Some(at("2026-11-23T20:00:00Z"))
        );
    }

    fn arb_segments() -> impl Strategy<Value = Vec<ClockSegment>> {
        let start = 1_795_000_000i64; // November 2026
        prop::collection::vec((0i64..5 * 86_400, any::<bool>(), any::<bool>()), 1..6).prop_map(
            move |parts| {
                let mut t = start;
                parts
                    .into_iter()
                    .map(|(gap, provider, paused)| {
                        t += gap;
                        ClockSegment {
                            from: Timestamp(t * Timestamp::SECOND),
                            owner: if provider {
                                Party::Provider
                            } else {
                                Party::Internal
                            },
                            paused,
                        }
                    })
                    .collect()
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn elapsed_never_decreases_and_never_exceeds_the_wall_clock(segs in arb_segments(), a in 0i64..20 * 86_400, b in 0i64..20 * 86_400) {
            let (i, p) = (internal(), provider());
            let cals = Calendars { internal: &i, provider: &p };
            let (lo, hi) = (a.min(b), a.max(b));
            let t0 = segs[0].from;
            let e_lo = elapsed_seconds(&segs, t0.plus_seconds(lo), &cals);
            let e_hi = elapsed_seconds(&segs, t0.plus_seconds(hi), &cals);
            prop_assert!(e_lo <= e_hi);
            prop_assert!(e_hi <= hi);
        }

        #[test]
        fn the_deadline_is_where_the_clock_reaches_the_target(segs in arb_segments(), target in 1i64..40 * 3600) {
            let (i, p) = (internal(), provider());
            let cals = Calendars { internal: &i, provider: &p };
            match deadline(&segs, target, &cals) {
                Some(d) => {
                    prop_assert_eq!(elapsed_seconds(&segs, d, &cals), target);
                    prop_assert!(elapsed_seconds(&segs, d.plus_seconds(-1), &cals) < target);
                }
                None => prop_assert!(segs.last().unwrap().paused),
            }
        }

        #[test]
        fn splitting_a_segment_changes_nothing(segs in arb_segments(), cut in 0i64..5 * 86_400, until in 0i64..30 * 86_400) {
            let (i, p) = (internal(), provider());
            let cals = Calendars { internal: &i, provider: &p };
            let t0 = segs[0].from;
            let last = *segs.last().unwrap();
            let mut split = segs.clone();
            split.push(ClockSegment { from: last.from.plus_seconds(cut), ..last });
            let until = t0.plus_seconds(until);
            prop_assert_eq!(elapsed_seconds(&segs, until, &cals), elapsed_seconds(&split, until, &cals));
        }

        #[test]
        fn round_the_clock_calendars_count_wall_time_minus_pauses(segs in arb_segments(), until in 0i64..30 * 86_400) {
            let a = always();
            let cals = Calendars { internal: &a, provider: &a };
            let until = segs[0].from.plus_seconds(until);
            let running: i64 = intervals(&segs, until).filter(|(s, _)| !s.paused).map(|(s, e)| e.0 - s.from.0).sum();
            prop_assert_eq!(elapsed_seconds(&segs, until, &cals), running / Timestamp::SECOND);
        }
    }
}
