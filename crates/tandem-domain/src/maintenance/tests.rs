use super::ical::{parse_duration, parse_ics, windows_ics};
use super::rrule::Rule;
use super::*;
use proptest::prelude::*;

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("instant")
}

fn recurring(tz: &str, start: &str, minutes: u32, rule: &str) -> Compiled {
    Schedule::Recurring {
        time_zone: tz.into(),
        start: start.into(),
        duration_minutes: minutes,
        rrule: rule.into(),
    }
    .compile()
    .expect("valid schedule")
}

fn starts(c: &Compiled, from: &str, n: usize) -> Vec<String> {
    c.next(at(from), n)
        .iter()
        .map(|o| o.start.to_rfc3339())
        .collect()
}

#[test]
fn weekly_sunday_patch_window_in_new_york() {
    let c = recurring(
        "America/New_York",
        "2026-11-01T02:00",
        120,
        "FREQ=WEEKLY;BYDAY=SU",
    );
    // 1 Nov 2026 is the fall-back day: 02:00 EST exists once.
    assert_eq!(
        starts(&c, "2026-10-30T00:00:00Z", 3),
        vec![
            "2026-11-01T07:00:00Z",
            "2026-11-08T07:00:00Z",
            "2026-11-15T07:00:00Z"
        ]
    );
    // Inside: Sunday 03:30 local; outside: 04:00 local (end is exclusive).
    assert!(c.active_at(at("2026-11-08T08:30:00Z")).is_some());
    assert!(c.active_at(at("2026-11-08T09:00:00Z")).is_none());
    assert!(c.active_at(at("2026-11-08T06:59:59Z")).is_none());
}

#[test]
fn spring_forward_day_keeps_the_wall_clock_end() {
    // 8 March 2026: 02:00 EST jumps to 03:00 EDT in New York.
    let c = recurring(
        "America/New_York",
        "2026-03-01T02:00",
        120,
        "FREQ=WEEKLY;BYDAY=SU",
    );
    let o = c.next(at("2026-03-07T00:00:00Z"), 1)[0];
    // 02:00 does not exist: moved forward by the gap to 03:00 EDT (07:00Z); the end stays at
    // 04:00 EDT (08:00Z): one real hour.
    assert_eq!(o.start, at("2026-03-08T07:00:00Z"));
    assert_eq!(o.end, at("2026-03-08T08:00:00Z"));
    // The week before and after: two real hours.
    let before = c.next(at("2026-03-01T00:00:00Z"), 1)[0];
    assert_eq!(before.end.0 - before.start.0, 7200 * Timestamp::SECOND);
    let after = c.next(at("2026-03-14T00:00:00Z"), 1)[0];
    assert_eq!(after.start, at("2026-03-15T06:00:00Z"));
    assert_eq!(after.end, at("2026-03-15T08:00:00Z"));
}

#[test]
fn fall_back_day_covers_the_repeated_hour() {
    // 1 Nov 2026: 01:00–03:00 local starts at the first 01:00 (EDT) and ends 03:00 EST.
    let c = recurring("America/New_York", "2026-10-25T01:00", 120, "FREQ=DAILY");
    let o = c.next(at("2026-11-01T04:00:00Z"), 1)[0];
    assert_eq!(o.start, at("2026-11-01T05:00:00Z"));
    assert_eq!(o.end, at("2026-11-01T08:00:00Z"));
}

#[test]
fn monthly_ordinals_and_month_days() {
    let first_mon = recurring(
        "Europe/Berlin",
        "2026-01-01T22:00",
        60,
        "FREQ=MONTHLY;BYDAY=1MO",
    );
    assert_eq!(
        starts(&first_mon, "2026-01-01T00:00:00Z", 3),
        vec![
            "2026-01-05T21:00:00Z",
            "2026-02-02T21:00:00Z",
            "2026-03-02T21:00:00Z"
        ]
    );
    let last_fri = recurring(
        "UTC",
        "2026-01-01T18:00",
        60,
        "FREQ=MONTHLY;BYDAY=-1FR;COUNT=2",
    );
    assert_eq!(
        starts(&last_fri, "2026-01-01T00:00:00Z", 5),
        vec!["2026-01-30T18:00:00Z", "2026-02-27T18:00:00Z"]
    );
    // The 31st: months without one are skipped.
    let thirty_first = recurring("UTC", "2026-01-31T00:00", 30, "FREQ=MONTHLY");
    assert_eq!(
        starts(&thirty_first, "2026-01-01T00:00:00Z", 3),
        vec![
            "2026-01-31T00:00:00Z",
            "2026-03-31T00:00:00Z",
            "2026-05-31T00:00:00Z"
        ]
    );
    let last_day = recurring("UTC", "2026-01-01T00:00", 30, "FREQ=MONTHLY;BYMONTHDAY=-1");
    assert_eq!(
        starts(&last_day, "2026-02-01T00:00:00Z", 1),
        vec!["2026-02-28T00:00:00Z"]
    );
}

#[test]
fn interval_until_and_count() {
    let c = recurring(
        "UTC",
        "2026-01-05T00:00",
        60,
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20260125T000000Z",
    );
    assert_eq!(
        starts(&c, "2026-01-01T00:00:00Z", 10),
        vec![
            "2026-01-05T00:00:00Z",
            "2026-01-08T00:00:00Z",
            "2026-01-19T00:00:00Z",
            "2026-01-22T00:00:00Z"
        ]
    );
    let d = recurring("UTC", "2026-01-01T12:00", 60, "FREQ=DAILY;COUNT=3");
    assert_eq!(d.next(at("2026-01-01T00:00:00Z"), 10).len(), 3);
    assert!(d.active_at(at("2026-01-04T12:30:00Z")).is_none());
    assert_eq!(
        d.bounds(),
        (
            Some(at("2026-01-01T12:00:00Z")),
            Some(at("2026-01-03T13:00:00Z"))
        )
    );
}

#[test]
fn unsupported_rule_parts_are_refused_by_name() {
    for (rule, word) in [
        ("FREQ=YEARLY", "YEARLY"),
        ("FREQ=WEEKLY;BYSETPOS=1", "BYSETPOS"),
        ("FREQ=MONTHLY;BYMONTH=1", "BYMONTH"),
        ("FREQ=WEEKLY;BYDAY=1MO", "MONTHLY"),
        ("FREQ=DAILY;COUNT=2;UNTIL=20270101", "not both"),
        ("BYDAY=MO", "FREQ is missing"),
        ("FREQ=WEEKLY;WKST=SU", "WKST"),
        ("FREQ=WEEKLY;BYDAY=XX", "weekday"),
    ] {
        let e = Rule::parse(rule).expect_err(rule);
        assert!(e.contains(word), "{rule}: {e}");
    }
    let r = Rule::parse("RRULE:freq=monthly;byday=-1fr").unwrap();
    assert_eq!(r.to_string(), "FREQ=MONTHLY;BYDAY=-1FR");
    assert_eq!(r.describe(), "every month on the last Friday");
}

#[test]
fn schedules_are_checked() {
    let bad = Schedule::Recurring {
        time_zone: "Mars/Olympus".into(),
        start: "tomorrow".into(),
        duration_minutes: 0,
        rrule: "FREQ=HOURLY".into(),
    }
    .compile()
    .unwrap_err();
    let fields: Vec<&str> = bad.iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        vec!["time_zone", "start", "duration_minutes", "rrule"]
    );
    assert!(Schedule::OneOff {
        start: at("2026-01-02T00:00:00Z"),
        end: at("2026-01-01T00:00:00Z")
    }
    .compile()
    .is_err());
}

fn window(target: PolicyTarget, filter: WindowFilter, schedule: Schedule) -> MaintenanceWindow {
    MaintenanceWindow {
        id: MaintenanceWindowId::new(),
        client_id: None,
        name: "Patch night".into(),
        reason: "Monthly patches, reboots expected".into(),
        target,
        filter,
        schedule,
        created_by: None,
        created_label: "Pat".into(),
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    }
}

#[test]
fn targets_and_filters_decide_what_is_covered() {
    let client = ClientId::new();
    let site = SiteId::new();
    let endpoint = EndpointId::new();
    let group = EndpointGroupId::new();
    let s = Subject {
        client_id: Some(client),
        site_id: Some(site),
        groups: vec![group],
        endpoint_id: Some(endpoint),
        check_kind: Some("offline".into()),
        domain: "onsite_hardware".into(),
    };
    let sched = Schedule::OneOff {
        start: at("2026-01-01T00:00:00Z"),
        end: at("2026-01-01T02:00:00Z"),
    };
    let all = WindowFilter::default();
    for t in [
        PolicyTarget::Provider,
        PolicyTarget::Client(client),
        PolicyTarget::Site(site),
        PolicyTarget::Group(group),
        PolicyTarget::Endpoint(endpoint),
    ] {
        assert!(
            window(t, all.clone(), sched.clone()).applies_to(&s),
            "{t:?}"
        );
    }
    assert!(!window(
        PolicyTarget::Client(ClientId::new()),
        all.clone(),
        sched.clone()
    )
    .applies_to(&s));
    assert!(!window(
        PolicyTarget::Endpoint(EndpointId::new()),
        all,
        sched.clone()
    )
    .applies_to(&s));
    let patching = WindowFilter {
        check_kinds: vec![],
        domains: vec!["patching".into()],
    };
    assert!(!window(PolicyTarget::Provider, patching, sched.clone()).applies_to(&s));
    let offline = WindowFilter {
        check_kinds: vec!["offline".into()],
        domains: vec![],
    };
    let w = window(PolicyTarget::Provider, offline, sched.clone());
    assert!(w.applies_to(&s));
    let external = Subject {
        check_kind: None,
        ..s.clone()
    };
    assert!(
        !w.applies_to(&external),
        "external alerts have no check kind"
    );
    // Two covering windows: the silence lasts until the later end.
    let long = window(
        PolicyTarget::Client(client),
        WindowFilter::default(),
        Schedule::OneOff {
            start: at("2026-01-01T01:00:00Z"),
            end: at("2026-01-01T05:00:00Z"),
        },
    );
    let ws: Vec<(MaintenanceWindow, Compiled)> = [w, long]
        .into_iter()
        .map(|w| {
            let c = w.schedule.compile().unwrap();
            (w, c)
        })
        .collect();
    let (hit, o) = silencing(&ws, &s, at("2026-01-01T01:30:00Z")).unwrap();
    assert_eq!(hit.id, ws[1].0.id);
    assert_eq!(o.end, at("2026-01-01T05:00:00Z"));
    assert!(silencing(&ws, &s, at("2026-01-01T05:00:00Z")).is_none());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("PT2H"), Some(120));
    assert_eq!(parse_duration("PT1H30M"), Some(90));
    assert_eq!(parse_duration("P1DT2H"), Some(1560));
    assert_eq!(parse_duration("P1W"), Some(10080));
    assert_eq!(parse_duration("2H"), None);
    assert_eq!(parse_duration("PT"), None);
}

const ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//EN\r\n\
BEGIN:VEVENT\r\nUID:patch-1\r\nSUMMARY:Harbor Point patching\\, weekly\r\n\
DESCRIPTION:Windows updates\\nreboots expected\r\n\
DTSTART;TZID=America/New_York:20261206T020000\r\nDTEND;TZID=America/New_York:20261206T040000\r\n\
RRULE:FREQ=WEEKLY;BYDAY=SU\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:move\r\nSUMMARY:Server move\r\nDTSTART:20261212T230000Z\r\nDURATION:PT3H\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:yearly\r\nSUMMARY:Audit\r\nDTSTART:20261212T230000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:allday\r\nSUMMARY:Holiday\r\nDTSTART;VALUE=DATE:20261225\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:ex\r\nSUMMARY:With exceptions\r\nDTSTART:20261212T230000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY\r\nEXDATE:20261213T230000Z\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:floating\r\nSUMMARY:Floating\r\nDTSTART:20261212T010000\r\nDTEND:20261212T020000\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

#[test]
fn ics_import_reads_supported_events_and_reports_the_rest() {
    let ev = parse_ics(ICS, "Europe/Berlin").unwrap();
    assert_eq!(ev.len(), 6);
    assert_eq!(ev[0].summary, "Harbor Point patching, weekly");
    assert_eq!(ev[0].description, "Windows updates\nreboots expected");
    assert_eq!(
        ev[0].schedule,
        Some(Schedule::Recurring {
            time_zone: "America/New_York".into(),
            start: "2026-12-06T02:00".into(),
            duration_minutes: 120,
            rrule: "FREQ=WEEKLY;BYDAY=SU".into()
        })
    );
    assert!(ev[0].problems.is_empty());
    assert_eq!(
        ev[1].schedule,
        Some(Schedule::OneOff {
            start: at("2026-12-12T23:00:00Z"),
            end: at("2026-12-13T02:00:00Z")
        })
    );
    assert!(
        ev[2].schedule.is_none() && ev[2].problems[0].contains("YEARLY"),
        "{:?}",
        ev[2]
    );
    assert!(ev[3].problems[0].contains("all-day"), "{:?}", ev[3]);
    assert!(
        ev[4].problems.iter().any(|p| p.contains("EXDATE")),
        "{:?}",
        ev[4]
    );
    // Floating times are read in the importer's zone.
    assert_eq!(
        ev[5].schedule,
        Some(Schedule::OneOff {
            start: at("2026-12-12T00:00:00Z"),
            end: at("2026-12-12T01:00:00Z")
        })
    );
    assert!(parse_ics("hello", "UTC").is_err());
}

#[test]
fn ics_export_reads_back_into_the_same_schedules() {
    let ev = parse_ics(ICS, "UTC").unwrap();
    let windows: Vec<MaintenanceWindow> = ev
        .iter()
        .filter_map(|e| {
            let mut w = window(
                PolicyTarget::Provider,
                WindowFilter::default(),
                e.schedule.clone()?,
            );
            w.name = e.summary.clone();
            w.reason = e.description.clone();
            Some(w)
        })
        .collect();
    assert_eq!(windows.len(), 3);
    let text = windows_ics("Maintenance; windows", at("2026-12-01T00:00:00Z"), &windows);
    assert!(text.contains("X-WR-CALNAME:Maintenance\\; windows\r\n"));
    let back = parse_ics(&text, "UTC").unwrap();
    assert_eq!(back.len(), 3);
    for (w, e) in windows.iter().zip(&back) {
        assert_eq!(Some(&w.schedule), e.schedule.as_ref());
        assert_eq!(w.name, e.summary);
        assert_eq!(w.reason, e.description);
        assert!(e.problems.is_empty());
    }
}

proptest! {
    #[test]
    fn inside_means_within_an_occurrence_the_listing_gives(
        day in 1i8..=28,
        hour in 0i8..24,
        minutes in 1u32..=600,
        offset_h in 0i64..(24 * 120),
        kind in 0usize..5,
        interval in 1u32..4,
        zone in prop::sample::select(vec!["America/New_York", "Europe/Berlin", "Australia/Sydney", "UTC", "Asia/Kolkata"]),
    ) {
        let rule = match kind {
            0 => format!("FREQ=DAILY;INTERVAL={interval}"),
            1 => format!("FREQ=WEEKLY;INTERVAL={interval};BYDAY=SU,WE"),
            2 => format!("FREQ=MONTHLY;INTERVAL={interval};BYDAY=-1FR,1MO"),
            3 => format!("FREQ=MONTHLY;INTERVAL={interval};BYMONTHDAY=15,-1"),
            _ => "FREQ=DAILY;COUNT=20".to_string(),
        };
        let c = recurring(zone, &format!("2026-01-{day:02}T{hour:02}:30"), minutes, &rule);
        let t = at("2026-01-01T00:00:00Z").plus_seconds(offset_h * 3600 + 17);
        // Everything overlapping a broad span around t, by brute force from the beginning.
        let all = c.between(at("2025-12-01T00:00:00Z"), t.plus_seconds(86_400 * 40), 100_000);
        let inside = all.iter().any(|o| o.start <= t && t < o.end);
        prop_assert_eq!(c.active_at(t).is_some(), inside);
        if let Some(o) = c.active_at(t) {
            prop_assert!(o.start <= t && t < o.end);
        }
        // Occurrences are ordered, each starts before it ends and lasts at most its duration
        // plus a DST shift.
        for w in all.windows(2) {
            prop_assert!(w[0].start < w[1].start);
        }
        for o in &all {
            prop_assert!(o.start < o.end);
            prop_assert!(o.end.0 - o.start.0 <= (i64::from(minutes) * 60 + 3600) * Timestamp::SECOND);
        }
    }

    #[test]
    fn next_occurrences_are_the_listing_after_an_instant(
        hour in 0i8..24,
        offset_h in 0i64..(24 * 60),
        n in 1usize..6,
    ) {
        let c = recurring("America/New_York", &format!("2026-02-01T{hour:02}:00"), 120, "FREQ=WEEKLY;BYDAY=SU,TU");
        let from = at("2026-02-01T00:00:00Z").plus_seconds(offset_h * 3600);
        let next = c.next(from, n);
        let all: Vec<Occurrence> = c
            .between(at("2026-01-01T00:00:00Z"), from.plus_seconds(86_400 * 30), 1000)
            .into_iter()
            .filter(|o| o.end > from)
            .take(n)
            .collect();
        prop_assert_eq!(next, all);
    }

    #[test]
    fn rules_print_and_parse_back(
        kind in 0usize..3,
        interval in 1u32..10,
        count in prop::option::of(1u32..50),
        days in prop::collection::vec(0usize..7, 0..3),
    ) {
        let codes = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];
        let mut s = format!("FREQ={};INTERVAL={interval}", ["DAILY", "WEEKLY", "MONTHLY"][kind]);
        if !days.is_empty() {
            let d: Vec<&str> = days.iter().map(|i| codes[*i]).collect();
            s.push_str(&format!(";BYDAY={}", d.join(",")));
        }
        if let Some(c) = count {
            s.push_str(&format!(";COUNT={c}"));
        }
        let r = Rule::parse(&s).unwrap();
        prop_assert_eq!(Rule::parse(&r.to_string()).unwrap(), r);
    }
}
