//! Moving agreements in and out: the matrix as CSV, the whole agreement as JSON, holidays
//! as iCalendar (RFC 5545 all-day events).

use super::{Agreement, Assignment, Calendar, Holiday, Party, Raci};
use std::collections::BTreeSet;

/// The CSV header of an agreement's matrix.
pub const CSV_HEADER: [&str; 12] = [
    "domain",
    "responsible",
    "accountable",
    "consulted",
    "informed",
    "business_hours_owner",
    "after_hours_owner",
    "internal_contact",
    "provider_contact",
    "internal_escalation",
    "provider_escalation",
    "notes",
];

fn parties_cell(s: &BTreeSet<Party>) -> String {
    s.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("+")
}

/// The matrix as CSV: one row per domain; sides as `internal`, `provider` or
/// `internal+provider`; escalation chains joined with ` > `.
pub fn to_csv(a: &Agreement) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(CSV_HEADER);
    for asg in &a.assignments {
        let _ = w.write_record([
            asg.domain.clone(),
            parties_cell(&asg.raci.responsible),
            parties_cell(&asg.raci.accountable),
            parties_cell(&asg.raci.consulted),
            parties_cell(&asg.raci.informed),
            asg.business_hours_owner.as_str().to_string(),
            asg.after_hours_owner.as_str().to_string(),
            asg.internal_contact.clone().unwrap_or_default(),
            asg.provider_contact.clone().unwrap_or_default(),
            asg.internal_escalation.join(" > "),
            asg.provider_escalation.join(" > "),
            asg.notes.clone(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A row of an import that could not be read, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImportError {
    /// The line (1 is the header).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

fn party(s: &str, line: u64, col: &str) -> Result<Party, ImportError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "internal" | "client" => Ok(Party::Internal),
        "provider" | "msp" => Ok(Party::Provider),
        other => Err(ImportError {
            line,
            message: format!("{col}: {other:?} is not internal or provider"),
        }),
    }
}

fn parties(s: &str, line: u64, col: &str) -> Result<BTreeSet<Party>, ImportError> {
    s.split(['+', ',', '/'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| party(x, line, col))
        .collect()
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn chain(s: &str) -> Vec<String> {
    s.split('>')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads a matrix from CSV onto the calendars of `base`. Every bad row is reported; nothing
/// is returned unless every row is good.
pub fn from_csv(text: &str, base: &Agreement) -> Result<Agreement, Vec<ImportError>> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let mut errors = Vec::new();
    let headers = match r.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return Err(vec![ImportError {
                line: 1,
                message: format!("not CSV: {e}"),
            }])
        }
    };
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let mut idx = Vec::new();
    for name in CSV_HEADER {
        match col(name) {
            Some(i) => idx.push(i),
            None => errors.push(ImportError {
                line: 1,
                message: format!("missing column {name:?}"),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut assignments = Vec::new();
    for (n, rec) in r.records().enumerate() {
        let line = n as u64 + 2;
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                errors.push(ImportError {
                    line,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let get = |i: usize| rec.get(idx[i]).unwrap_or("");
        let row = (|| -> Result<Assignment, ImportError> {
            let domain = get(0).trim().to_string();
            if domain.is_empty() {
                return Err(ImportError {
                    line,
                    message: "domain is empty".into(),
                });
            }
            Ok(Assignment {
                domain,
                raci: Raci {
                    responsible: parties(get(1), line, "responsible")?,
                    accountable: parties(get(2), line, "accountable")?,
                    consulted: parties(get(3), line, "consulted")?,
                    informed: parties(get(4), line, "informed")?,
                },
                business_hours_owner: party(get(5), line, "business_hours_owner")?,
                after_hours_owner: party(get(6), line, "after_hours_owner")?,
                internal_contact: opt(get(7)),
                provider_contact: opt(get(8)),
                internal_escalation: chain(get(9)),
                provider_escalation: chain(get(10)),
                notes: get(11).trim().to_string(),
            })
        })();
        match row {
            Ok(a)
                if assignments
                    .iter()
                    .any(|x: &Assignment| x.domain == a.domain) =>
            {
                errors.push(ImportError {
                    line,
                    message: format!("domain {:?} appears twice", a.domain),
                })
            }
            Ok(a) => assignments.push(a),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(Agreement {
            assignments,
            ..base.clone()
        })
    } else {
        Err(errors)
    }
}

fn ics_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}

/// A calendar's holidays as an iCalendar file of all-day events.
pub fn holidays_to_ics(cal: &Calendar, name: &str, uid_domain: &str) -> String {
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tandem//Scope agreement//EN\r\nCALSCALE:GREGORIAN\r\n");
    out.push_str(&format!(
        "X-WR-CALNAME:{}\r\nX-WR-TIMEZONE:{}\r\n",
        ics_escape(name),
        cal.time_zone
    ));
    for h in &cal.holidays {
        let d = h.date.replace('-', "");
        let next = h
            .date
            .parse::<jiff::civil::Date>()
            .ok()
            .and_then(|x| x.tomorrow().ok())
            .map(|x| x.to_string().replace('-', ""))
            .unwrap_or_else(|| d.clone());
        out.push_str("BEGIN:VEVENT\r\n");
        out.push_str(&format!(
            "UID:{d}-{}@{uid_domain}\r\nDTSTAMP:{d}T000000Z\r\n",
            ics_escape(&h.name).replace(' ', "-")
        ));
        out.push_str(&format!("DTSTART;VALUE=DATE:{d}\r\nDTEND;VALUE=DATE:{next}\r\nSUMMARY:{}\r\nTRANSP:TRANSPARENT\r\n", ics_escape(&h.name)));
        out.push_str("END:VEVENT\r\n");
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

/// Reads the all-day events of an iCalendar file as holidays. Timed events are refused (a
/// holiday is a whole local day); multi-day events become one holiday per day.
pub fn holidays_from_ics(text: &str) -> Result<Vec<Holiday>, String> {
    // Unfold continuation lines (RFC 5545 §3.1).
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.trim_end_matches('\r');
        if (raw.starts_with(' ') || raw.starts_with('\t')) && !lines.is_empty() {
            let last = lines.len() - 1;
            lines[last].push_str(&raw[1..]);
        } else {
            lines.push(raw.to_string());
        }
    }
    if !lines.iter().any(|l| l.trim() == "BEGIN:VCALENDAR") {
        return Err("not an iCalendar file (no BEGIN:VCALENDAR)".into());
    }
    let mut out = Vec::new();
    let mut in_event = false;
    let (mut start, mut end, mut summary) = (None::<String>, None::<String>, String::new());
    for l in &lines {
        let (key, value) = match l.split_once(':') {
            Some(kv) => kv,
            None => continue,
        };
        let name = key.split(';').next().unwrap_or("").to_ascii_uppercase();
        match name.as_str() {
            "BEGIN" if value.trim() == "VEVENT" => {
                in_event = true;
                start = None;
                end = None;
                summary.clear();
            }
            "DTSTART" if in_event => start = Some(value.trim().to_string()),
            "DTEND" if in_event => end = Some(value.trim().to_string()),
            "SUMMARY" if in_event => {
                summary = value
                    .replace("\\,", ",")
                    .replace("\\;", ";")
                    .replace("\\n", " ")
                    .replace("\\\\", "\\")
            }
            "END" if value.trim() == "VEVENT" && in_event => {
                in_event = false;
                let s = start.take().ok_or("an event has no DTSTART")?;
                if s.len() != 8 || !s.chars().all(|c| c.is_ascii_digit()) {
                    return Err(format!(
                        "event {summary:?} has a time ({s}); holidays must be all-day dates"
                    ));
                }
                let parse = |d: &str| {
                    format!("{}-{}-{}", &d[0..4], &d[4..6], &d[6..8])
                        .parse::<jiff::civil::Date>()
                        .map_err(|_| format!("bad date {d}"))
                };
                let first = parse(&s)?;
                let last = match end.take() {
                    Some(e) if e.len() == 8 => parse(&e)?.yesterday().map_err(|e| e.to_string())?,
                    _ => first,
                };
                let mut d = first;
                let mut days = 0;
                while d <= last && days < 60 {
                    out.push(Holiday {
                        date: d.to_string(),
                        name: if summary.is_empty() {
                            "Holiday".into()
                        } else {
                            summary.trim().to_string()
                        },
                    });
                    d = d.tomorrow().map_err(|e| e.to_string())?;
                    days += 1;
                }
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.date == b.date);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Agreement {
        let mut a = Agreement {
            internal_calendar: Calendar::weekdays("America/New_York", 450, 1020),
            provider_calendar: Calendar::weekdays("America/New_York", 480, 1080),
            assignments: vec![Assignment {
                domain: "patching".into(),
                raci: Raci {
                    responsible: [Party::Provider].into(),
                    accountable: [Party::Provider].into(),
                    consulted: [Party::Internal].into(),
                    informed: BTreeSet::new(),
                },
                business_hours_owner: Party::Provider,
                after_hours_owner: Party::Provider,
                internal_contact: Some("Dana, \"IT\"".into()),
                provider_contact: None,
                internal_escalation: vec!["Dana".into(), "Robert".into()],
                provider_escalation: vec!["On-call".into()],
                notes: "multi\\nline, with commas".into(),
            }],
        };
        a.internal_calendar.holidays.push(Holiday {
            date: "2026-12-25".into(),
            name: "Christmas Day, observed".into(),
        });
        a
    }

    #[test]
    fn csv_round_trips_and_reports_every_bad_row() {
        let a = sample();
        let back = from_csv(&to_csv(&a), &a).unwrap();
        assert_eq!(back, a);
        let bad = "domain,responsible,accountable,consulted,informed,business_hours_owner,after_hours_owner,internal_contact,provider_contact,internal_escalation,provider_escalation,notes\n\
                   patching,provider,provider,,,provider,nobody,,,,,\n\
                   ,provider,provider,,,provider,provider,,,,,\n";
        let errs = from_csv(bad, &a).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 3]);
        assert!(from_csv("domain,notes\nx,y\n", &a).unwrap_err()[0]
            .message
            .contains("missing column"));
    }

    #[test]
    fn holidays_round_trip_through_icalendar() {
        let a = sample();
        let ics = holidays_to_ics(&a.internal_calendar, "Harbor Point", "tandem.test");
        assert!(ics.contains("DTSTART;VALUE=DATE:20261225"));
        assert_eq!(
            holidays_from_ics(&ics).unwrap(),
            a.internal_calendar.holidays
        );
        let timed = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20261225T090000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert!(holidays_from_ics(timed).is_err());
        let multi = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20261224\nDTEND;VALUE=DATE:20261227\nSUMMARY:Winter\n  break\nEND:VEVENT\nEND:VCALENDAR\n";
        let h = holidays_from_ics(multi).unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].name, "Winter break");
        assert!(holidays_from_ics("hello").is_err());
    }
}
