//! Monthly helpdesk reports, free of I/O: the SLA report per side of one client (the
//! accountability the agreement promises) and the handoff report (what each side hands to
//! the other, and how fast the receiving side picks it up).
//!
//! Attribution: a ticket counts for the side that owns it now (after its last handoff);
//! met/breached and the business minutes come from [`sla_state`] and [`elapsed_seconds`]
//! with the client's policy, in each side's own calendar. A ticket's month is the month it
//! was opened in; a handoff's month is the month it happened in.

use crate::helpdesk::{elapsed_seconds, sla_state, Calendars, Ticket};
use crate::scope::Party;
use crate::tenancy::Side;
use crate::ticket_data::SlaPolicy;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The instants a calendar month starts and ends at in a time zone, from `YYYY-MM`.
pub fn month_bounds(month: &str, time_zone: &str) -> Result<(Timestamp, Timestamp), String> {
    let bad = || format!("month must look like 2026-11, not {month:?}");
    let (y, m) = month.trim().split_once('-').ok_or_else(bad)?;
    let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(2000..=2100).contains(&y) || !(1..=12).contains(&m) {
        return Err(bad());
    }
    let tz = jiff::tz::TimeZone::get(time_zone)
        .map_err(|_| format!("unknown time zone {time_zone:?}"))?;
    let start = jiff::civil::date(y, m, 1);
    let end = if m == 12 {
        jiff::civil::date(y + 1, 1, 1)
    } else {
        jiff::civil::date(y, m + 1, 1)
    };
    let at = |d: jiff::civil::Date| {
        d.to_zoned(tz.clone())
            .map(|z| Timestamp(z.timestamp().as_microsecond()))
            .map_err(|e| e.to_string())
    };
    Ok((at(start)?, at(end)?))
}

/// The median of some numbers (the lower middle for an even count); `None` when empty.
pub fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[(v.len() - 1) / 2])
}

/// One side's month for one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlaReportRow {
    /// The side.
    pub side: Party,
    /// Tickets opened in the month that this side owns.
    pub tickets: i64,
    /// Of those answered or past their first-response target: the share answered in time (%).
    pub first_response_met_percent: Option<i64>,
    /// Of those resolved or past their resolution target: the share resolved in time (%).
    pub resolution_met_percent: Option<i64>,
    /// Targets breached (first response and resolution counted separately).
    pub breaches: i64,
    /// Median business minutes to the first response, of those answered.
    pub median_first_response_minutes: Option<i64>,
    /// Median business minutes to resolution, of those resolved.
    pub median_resolution_minutes: Option<i64>,
}

fn percent(met: i64, of: i64) -> Option<i64> {
    (of > 0).then(|| (met * 100 + of / 2) / of)
}

/// The SLA report rows (internal first) for tickets opened in the month, at `now`.
pub fn sla_report(
    tickets: &[Ticket],
    policy: impl Fn(&Ticket) -> SlaPolicy,
    cals: &Calendars<'_>,
    now: Timestamp,
) -> Vec<SlaReportRow> {
    [Party::Internal, Party::Provider]
        .into_iter()
        .map(|side| {
            let mine: Vec<&Ticket> = tickets.iter().filter(|t| t.owner == side).collect();
            let (mut r_met, mut r_of, mut s_met, mut s_of, mut breaches) = (0, 0, 0, 0, 0);
            let (mut to_response, mut to_resolution) = (Vec::new(), Vec::new());
            for t in &mine {
                let p = policy(t);
                let s = sla_state(
                    &t.clock,
                    t.first_response_at,
                    t.resolved_at,
                    p.targets(),
                    now,
                    cals,
                );
                if t.first_response_at.is_some() || s.response_breached {
                    r_of += 1;
                    r_met += i64::from(!s.response_breached);
                }
                if t.resolved_at.is_some() || s.resolution_breached {
                    s_of += 1;
                    s_met += i64::from(!s.resolution_breached);
                }
                breaches += i64::from(s.response_breached) + i64::from(s.resolution_breached);
                if let Some(at) = t.first_response_at {
                    to_response.push(elapsed_seconds(&t.clock, at, cals) / 60);
                }
                if let Some(at) = t.resolved_at {
                    to_resolution.push(elapsed_seconds(&t.clock, at, cals) / 60);
                }
            }
            SlaReportRow {
                side,
                tickets: mine.len() as i64,
                first_response_met_percent: percent(r_met, r_of),
                resolution_met_percent: percent(s_met, s_of),
                breaches,
                median_first_response_minutes: median(to_response),
                median_resolution_minutes: median(to_resolution),
            }
        })
        .collect()
}

/// One recorded step of a ticket's history, as the handoff report needs it.
#[derive(Clone, Debug)]
pub struct Step {
    /// When.
    pub at: Timestamp,
    /// The event's kind (`handoff`, `reply`, …).
    pub kind: String,
    /// Its text (for a handoff: `Handed from A to B: reason`).
    pub body: String,
    /// The side of whoever did it.
    pub side: Side,
}

/// One line of the handoff report: a direction and a reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HandoffReportRow {
    /// The side that handed over.
    pub from: Party,
    /// The side that received it.
    pub to: Party,
    /// The reason given (grouped case-insensitively; the first spelling is shown).
    pub reason: String,
    /// How many handoffs in the month.
    pub count: i64,
    /// Of those picked up: median wall-clock minutes from the handoff to the receiving
    /// side's first action on the ticket.
    pub median_pickup_minutes: Option<i64>,
    /// Handoffs the receiving side has not acted on yet.
    pub not_picked_up: i64,
}

fn side_of(p: Party) -> Side {
    match p {
        Party::Internal => Side::Client,
        Party::Provider => Side::Provider,
    }
}

/// The handoff report for handoffs in `[from, to)`: per ticket, its clock (where each
/// handoff starts a segment with the new owner) and its history, oldest first.
pub fn handoff_report(
    tickets: &[(Ticket, Vec<Step>)],
    from: Timestamp,
    to: Timestamp,
) -> Vec<HandoffReportRow> {
    let mut rows: Vec<(HandoffReportRow, Vec<i64>)> = Vec::new();
    for (t, steps) in tickets {
        for pair in t.clock.windows(2) {
            let (before, seg) = (pair[0], pair[1]);
            if before.owner == seg.owner || seg.from < from || seg.from >= to {
                continue;
            }
            let reason = steps
                .iter()
                .find(|s| s.kind == "handoff" && s.at == seg.from)
                .and_then(|s| s.body.split_once(": ").map(|(_, r)| r.trim().to_string()))
                .unwrap_or_else(|| "(no reason recorded)".into());
            let pickup = steps
                .iter()
                .find(|s| s.at > seg.from && s.side == side_of(seg.owner))
                .map(|s| (s.at.0 - seg.from.0) / (60 * Timestamp::SECOND));
            let i = match rows.iter().position(|(r, _)| {
                r.from == before.owner
                    && r.to == seg.owner
                    && r.reason.to_lowercase() == reason.to_lowercase()
            }) {
                Some(i) => i,
                None => {
                    rows.push((
                        HandoffReportRow {
                            from: before.owner,
                            to: seg.owner,
                            reason,
                            count: 0,
                            median_pickup_minutes: None,
                            not_picked_up: 0,
                        },
                        Vec::new(),
                    ));
                    rows.len() - 1
                }
            };
            rows[i].0.count += 1;
            match pickup {
                Some(m) => rows[i].1.push(m),
                None => rows[i].0.not_picked_up += 1,
            }
        }
    }
    let mut out: Vec<HandoffReportRow> = rows
        .into_iter()
        .map(|(mut r, times)| {
            r.median_pickup_minutes = median(times);
            r
        })
        .collect();
    out.sort_by(|a, b| {
        (a.from.as_str(), std::cmp::Reverse(a.count), &a.reason).cmp(&(
            b.from.as_str(),
            std::cmp::Reverse(b.count),
            &b.reason,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helpdesk::{ClockSegment, Impact, Priority, Status, Urgency};
    use crate::scope::{Calendar, CompiledCalendar};

    fn always() -> CompiledCalendar {
        let c: Calendar = serde_json::from_value(serde_json::json!({
            "time_zone": "UTC", "week": [[{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}],
              [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}]],
            "holidays": []
        }))
        .unwrap();
        CompiledCalendar::new(&c).unwrap()
    }

    fn m(minutes: i64) -> Timestamp {
        Timestamp(1_800_000_000 * Timestamp::SECOND + minutes * 60 * Timestamp::SECOND)
    }

    fn ticket(
        owner: Party,
        clock: Vec<ClockSegment>,
        responded: Option<i64>,
        resolved: Option<i64>,
    ) -> Ticket {
        Ticket {
            id: crate::TicketId::new(),
            client_id: crate::ClientId::new(),
            number: 1,
            site_id: None,
            requester_id: None,
            subject: "s".into(),
            description: String::new(),
            domain: "helpdesk".into(),
            owner,
            assignee_id: None,
            assignee_hint: None,
            impact: Impact::Person,
            urgency: Urgency::Normal,
            priority: Priority::P3,
            status: if resolved.is_some() {
                Status::Resolved
            } else {
                Status::Open
            },
            created_by: Some(crate::UserId::new()),
            created_at: m(0),
            updated_at: m(0),
            first_response_at: responded.map(m),
            resolved_at: resolved.map(m),
            closed_at: None,
            clock,
        }
    }

    fn seg(at: i64, owner: Party) -> ClockSegment {
        ClockSegment {
            from: m(at),
            owner,
            paused: false,
        }
    }

    #[test]
    fn months_start_at_local_midnight() {
        let (a, b) = month_bounds("2026-11", "America/New_York").unwrap();
        assert_eq!(a.to_rfc3339(), "2026-11-01T04:00:00Z");
        assert_eq!(b.to_rfc3339(), "2026-12-01T05:00:00Z");
        let (_, b) = month_bounds("2026-12", "UTC").unwrap();
        assert_eq!(b.to_rfc3339(), "2027-01-01T00:00:00Z");
        assert!(month_bounds("2026-13", "UTC").is_err());
        assert!(month_bounds("November", "UTC").is_err());
        assert!(month_bounds("2026-11", "Mars/Olympus").is_err());
    }

    #[test]
    fn medians_take_the_lower_middle() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5, 1, 3]), Some(3));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2));
    }

    #[test]
    fn the_sla_report_counts_each_side_in_its_own_rows() {
        let a = always();
        let cals = Calendars {
            internal: &a,
            provider: &a,
        };
        let p = SlaPolicy {
            priority: Priority::P3,
            response_minutes: 60,
            resolution_minutes: 600,
            warn_percent: 75,
        };
        let ts = vec![
            ticket(
                Party::Internal,
                vec![seg(0, Party::Internal)],
                Some(30),
                Some(300),
            ),
            ticket(
                Party::Internal,
                vec![seg(0, Party::Internal)],
                Some(90),
                None,
            ),
            ticket(
                Party::Provider,
                vec![seg(0, Party::Internal), seg(10, Party::Provider)],
                None,
                None,
            ),
        ];
        let rows = sla_report(&ts, |_| p, &cals, m(120));
        assert_eq!(rows[0].side, Party::Internal);
        assert_eq!(rows[0].tickets, 2);
        assert_eq!(rows[0].first_response_met_percent, Some(50));
        assert_eq!(rows[0].resolution_met_percent, Some(100));
        assert_eq!(rows[0].breaches, 1);
        assert_eq!(rows[0].median_first_response_minutes, Some(30));
        assert_eq!(rows[0].median_resolution_minutes, Some(300));
        assert_eq!(rows[1].tickets, 1);
        assert_eq!(
            rows[1].first_response_met_percent,
            Some(0),
            "120 minutes unanswered"
        );
        assert_eq!(rows[1].resolution_met_percent, None);
    }

    #[test]
    fn handoffs_group_by_direction_and_reason_with_the_pickup_time() {
        let step = |at: i64, kind: &str, body: &str, side| Step {
            at: m(at),
            kind: kind.into(),
            body: body.into(),
            side,
        };
        let t1 = ticket(
            Party::Provider,
            vec![seg(0, Party::Internal), seg(10, Party::Provider)],
            None,
            None,
        );
        let s1 = vec![
            step(
                10,
                "handoff",
                "Handed from Internal IT to Provider: Needs admin rights",
                Side::Client,
            ),
            step(40, "reply", "on it", Side::Provider),
        ];
        let t2 = ticket(
            Party::Internal,
            vec![
                seg(0, Party::Internal),
                seg(5, Party::Provider),
                seg(50, Party::Internal),
            ],
            None,
            None,
        );
        let s2 = vec![
            step(
                5,
                "handoff",
                "Handed from Internal IT to Provider: needs admin rights",
                Side::Client,
            ),
            step(25, "note", "looking", Side::Provider),
            step(
                50,
                "handoff",
                "Handed from Provider to Internal IT: Onsite hardware",
                Side::Provider,
            ),
        ];
        let rows = handoff_report(&[(t1, s1), (t2, s2)], m(0), m(1000));
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].from, rows[0].to, rows[0].count),
            (Party::Internal, Party::Provider, 2)
        );
        assert_eq!(rows[0].reason, "Needs admin rights");
        assert_eq!(rows[0].median_pickup_minutes, Some(20));
        assert_eq!(
            (
                rows[1].from,
                rows[1].not_picked_up,
                rows[1].median_pickup_minutes
            ),
            (Party::Provider, 1, None)
        );
        // Outside the month: nothing.
        assert!(handoff_report(&[], m(0), m(1)).is_empty());
    }
}
