//! Maintenance windows in iCalendar (RFC 5545): reading VEVENTs into schedules, each event
//! with the problems that keep it from becoming a window (never silently dropped), and
//! writing windows as a calendar. Escaping and folding are the on-call feed's
//! ([`crate::oncall::ical_escape`], [`crate::oncall::ical_fold`]).

use super::rrule::{ical_local, parse_ical_datetime, Rule};
use super::{MaintenanceWindow, Schedule};
use crate::oncall::{ical_escape, ical_fold};
use crate::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Serialize;

/// The most events one import reads.
pub const MAX_EVENTS: usize = 500;

/// One VEVENT as read.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportedEvent {
    /// Its position in the file, from 1.
    pub index: usize,
    /// Its UID, if it had one.
    pub uid: Option<String>,
    /// Its SUMMARY (the window's name).
    pub summary: String,
    /// Its DESCRIPTION (the window's reason).
    pub description: String,
    /// The schedule, when the event could be read.
    pub schedule: Option<Schedule>,
    /// Why it cannot become a window (empty: it can).
    pub problems: Vec<String>,
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Unfolds content lines (RFC 5545 §3.1).
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix(' ').or_else(|| raw.strip_prefix('\t')) {
            if let Some(last) = lines.last_mut() {
                last.push_str(rest);
                continue;
            }
        }
        if !raw.is_empty() {
            lines.push(raw.to_string());
        }
    }
    lines
}

/// A content line's parameters: upper-cased names, unquoted values.
type Params = Vec<(String, String)>;

/// A content line: name, parameters, value.
fn split_line(line: &str) -> Option<(String, Params, String)> {
    // The value starts at the first ':' outside double quotes.
    let mut in_quotes = false;
    let mut colon = None;
    for (i, ch) in line.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes => {
                colon = Some(i);
                break;
            }
            _ => {}
        }
    }
    let colon = colon?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut parts = head.split(';');
    let name = parts.next()?.trim().to_ascii_uppercase();
    let params = parts
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_uppercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect();
    Some((name, params, value.to_string()))
}

/// An iCalendar DURATION (`PT2H`, `P1DT30M`, `P1W`) in minutes; nominal days are 24 h.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let s = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    let mut minutes: i64 = 0;
    let mut num = String::new();
    let mut in_time = false;
    let mut any = false;
    for c in s.chars() {
        match c.to_ascii_uppercase() {
            'T' => in_time = true,
            d if d.is_ascii_digit() => num.push(d),
            u => {
                let n: i64 = num.parse().ok()?;
                num.clear();
                any = true;
                minutes = minutes.checked_add(match (u, in_time) {
                    ('W', false) => n.checked_mul(7 * 1440)?,
                    ('D', false) => n.checked_mul(1440)?,
                    ('H', true) => n.checked_mul(60)?,
                    ('M', true) => n,
                    // Seconds round down to the minute.
                    ('S', true) => n / 60,
                    _ => return None,
                })?;
            }
        }
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(if neg { -minutes } else { minutes })
}

/// A DTSTART/DTEND as read: the zone it was in and its local date-time.
#[derive(Clone, Debug)]
struct When {
    zone: String,
    tz: TimeZone,
    local: DateTime,
}

fn read_when(
    prop: &str,
    params: &[(String, String)],
    value: &str,
    default_tz: &str,
    problems: &mut Vec<String>,
) -> Option<When> {
    if params
        .iter()
        .any(|(k, v)| k == "VALUE" && v.eq_ignore_ascii_case("DATE"))
    {
        problems.push(format!(
            "{prop} is a date without a time (an all-day event); give a start and end time"
        ));
        return None;
    }
    let Some((local, utc, date_only)) = parse_ical_datetime(value) else {
        problems.push(format!(
            "{prop} {value:?} is not a date-time such as 20261206T020000"
        ));
        return None;
    };
    if date_only {
        problems.push(format!(
            "{prop} is a date without a time (an all-day event); give a start and end time"
        ));
        return None;
    }
    let zone = if utc {
        "UTC".to_string()
    } else if let Some((_, z)) = params.iter().find(|(k, _)| k == "TZID") {
        z.trim_start_matches('/').to_string()
    } else {
        default_tz.to_string()
    };
    match TimeZone::get(&zone) {
        Ok(tz) => Some(When { zone, tz, local }),
        Err(_) => {
            problems.push(format!(
                "{prop}: the time zone {zone:?} is not an IANA zone name (such as Europe/Berlin)"
            ));
            None
        }
    }
}

fn instant(w: &When) -> Option<Timestamp> {
    w.tz.to_ambiguous_zoned(w.local)
        .compatible()
        .ok()
        .map(|z| Timestamp(z.timestamp().as_microsecond()))
}

#[derive(Default)]
struct Raw {
    uid: Option<String>,
    summary: String,
    description: String,
    start: Option<When>,
    end: Option<When>,
    duration: Option<i64>,
    rrule: Option<String>,
    problems: Vec<String>,
}

/// Reads the VEVENTs of a calendar. Floating times (no TZID, no `Z`) are read in `default_tz`.
/// Fails only when the text is not a calendar at all; each event carries its own problems.
pub fn parse_ics(text: &str, default_tz: &str) -> Result<Vec<ImportedEvent>, String> {
    let lines = unfold(text);
    if !lines
        .iter()
        .any(|l| l.trim().eq_ignore_ascii_case("BEGIN:VCALENDAR"))
    {
        return Err("this is not an iCalendar file (no BEGIN:VCALENDAR)".into());
    }
    let mut events = Vec::new();
    let mut cur: Option<Raw> = None;
    // Components nested in an event (VALARM) are skipped.
    let mut nested = 0usize;
    for line in &lines {
        let Some((name, params, value)) = split_line(line) else {
            if let Some(r) = cur.as_mut() {
                r.problems
                    .push(format!("a line could not be read: {:?}", truncate(line)));
            }
            continue;
        };
        match (name.as_str(), cur.is_some()) {
            ("BEGIN", false) if value.eq_ignore_ascii_case("VEVENT") => {
                cur = Some(Raw::default());
                nested = 0;
            }
            ("BEGIN", true) => nested += 1,
            ("END", true) if nested > 0 => nested -= 1,
            ("END", true) if value.eq_ignore_ascii_case("VEVENT") => {
                if events.len() >= MAX_EVENTS {
                    return Err(format!(
                        "the file has more than {MAX_EVENTS} events; split it"
                    ));
                }
                let r = cur.take().unwrap_or_default();
                events.push(finish(events.len() + 1, r));
            }
            (_, true) if nested > 0 => {}
            (prop, true) => {
                let r = cur.as_mut().expect("inside an event");
                match prop {
                    "UID" => r.uid = Some(unescape(&value)),
                    "SUMMARY" => r.summary = unescape(&value),
                    "DESCRIPTION" => r.description = unescape(&value),
                    "DTSTART" => {
                        r.start = read_when("DTSTART", &params, &value, default_tz, &mut r.problems)
                    }
                    "DTEND" => {
                        r.end = read_when("DTEND", &params, &value, default_tz, &mut r.problems)
                    }
                    "DURATION" => match parse_duration(&value) {
                        Some(m) => r.duration = Some(m),
                        None => r.problems.push(format!(
                            "DURATION {value:?} is not a duration such as PT2H"
                        )),
                    },
                    "RRULE" => {
                        if r.rrule.is_some() {
                            r.problems.push("the event has more than one RRULE".into());
                        }
                        r.rrule = Some(value.clone());
                    }
                    "EXDATE" | "RDATE" | "EXRULE" | "RECURRENCE-ID" => r.problems.push(format!(
                        "{prop} is not supported: the window would not match the calendar's occurrences"
                    )),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if cur.is_some() {
        let r = cur.take().unwrap_or_default();
        let mut e = finish(events.len() + 1, r);
        e.problems
            .push("the event is not closed (END:VEVENT is missing)".into());
        e.schedule = None;
        events.push(e);
    }
    Ok(events)
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn finish(index: usize, mut r: Raw) -> ImportedEvent {
    let mut schedule = None;
    if r.summary.trim().is_empty() {
        r.summary = format!("Imported window {index}");
    }
    match (&r.start, &r.end, r.duration) {
        (None, _, _) if !r.problems.iter().any(|p| p.starts_with("DTSTART")) => {
            r.problems.push("DTSTART is missing".into())
        }
        (Some(_), None, None) if !r.problems.iter().any(|p| p.starts_with("DTEND")) => r
            .problems
            .push("give DTEND or DURATION: a maintenance window needs an end".into()),
        (Some(_), Some(_), Some(_)) => r.problems.push("give DTEND or DURATION, not both".into()),
        (Some(start), end, duration) if r.problems.is_empty() => {
            let minutes = match (end, duration) {
                (Some(e), _) if e.zone == start.zone => start
                    .local
                    .until((jiff::Unit::Minute, e.local))
                    .ok()
                    .map(|s| s.get_minutes()),
                (Some(e), _) => match (instant(start), instant(e)) {
                    (Some(a), Some(b)) => Some((b.0 - a.0) / (60 * Timestamp::SECOND)),
                    _ => None,
                },
                (None, d) => d,
            };
            match minutes {
                Some(m) if m > 0 => match &r.rrule {
                    Some(rule) => match Rule::parse(rule) {
                        Ok(rule) => {
                            schedule = Some(Schedule::Recurring {
                                time_zone: start.zone.clone(),
                                start: start.local.strftime("%Y-%m-%dT%H:%M").to_string(),
                                duration_minutes: u32::try_from(m).unwrap_or(u32::MAX),
                                rrule: rule.to_string(),
                            })
                        }
                        Err(e) => r.problems.push(format!("RRULE: {e}")),
                    },
                    None => match instant(start) {
                        Some(a) => {
                            schedule = Some(Schedule::OneOff {
                                start: a,
                                end: a.plus_seconds(m * 60),
                            })
                        }
                        None => r.problems.push("DTSTART cannot be placed in time".into()),
                    },
                },
                _ => r
                    .problems
                    .push("the event ends before it starts, or lasts less than a minute".into()),
            }
        }
        _ => {}
    }
    if let Some(s) = &schedule {
        if let Err(errs) = s.compile() {
            r.problems.extend(
                errs.into_iter()
                    .map(|e| format!("{}: {}", e.field, e.message)),
            );
            schedule = None;
        }
    }
    if !r.problems.is_empty() {
        schedule = None;
    }
    ImportedEvent {
        index,
        uid: r.uid,
        summary: r.summary.trim().chars().take(120).collect(),
        description: r.description.trim().chars().take(2000).collect(),
        schedule,
        problems: r.problems,
    }
}

fn utc(t: Timestamp) -> String {
    t.to_jiff().strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// Writes windows as a calendar: one-off windows in UTC, recurring ones in their own zone
/// with their rule, so the file reads back into the same schedules.
pub fn windows_ics(name: &str, stamp: Timestamp, windows: &[MaintenanceWindow]) -> String {
    let mut s = String::new();
    for l in [
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//Tandem//Maintenance windows//EN".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:PUBLISH".to_string(),
        format!("X-WR-CALNAME:{}", ical_escape(name)),
    ] {
        s.push_str(&ical_fold(&l));
    }
    for w in windows {
        let mut lines = vec![
            "BEGIN:VEVENT".to_string(),
            format!("UID:{}", ical_escape(&format!("{}@tandem", w.id))),
            format!("DTSTAMP:{}", utc(stamp)),
        ];
        match &w.schedule {
            Schedule::OneOff { start, end } => {
                lines.push(format!("DTSTART:{}", utc(*start)));
                lines.push(format!("DTEND:{}", utc(*end)));
            }
            Schedule::Recurring {
                time_zone,
                start,
                duration_minutes,
                rrule,
            } => {
                let local = super::parse_local(start)
                    .map(ical_local)
                    .unwrap_or_else(|| start.clone());
                if time_zone == "UTC" {
                    lines.push(format!("DTSTART:{local}Z"));
                } else {
                    lines.push(format!("DTSTART;TZID={time_zone}:{local}"));
                }
                lines.push(format!("DURATION:PT{duration_minutes}M"));
                let rule = Rule::parse(rrule)
                    .map(|r| r.to_string())
                    .unwrap_or_else(|_| rrule.clone());
                lines.push(format!("RRULE:{rule}"));
            }
        }
        lines.push(format!("SUMMARY:{}", ical_escape(&w.name)));
        if !w.reason.is_empty() {
            lines.push(format!("DESCRIPTION:{}", ical_escape(&w.reason)));
        }
        lines.push("TRANSP:TRANSPARENT".into());
        lines.push("END:VEVENT".into());
        for l in lines {
            s.push_str(&ical_fold(&l));
        }
    }
    s.push_str(&ical_fold("END:VCALENDAR"));
    s
}
