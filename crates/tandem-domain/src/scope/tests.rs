use super::*;
use proptest::prelude::*;

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn set(p: &[Party]) -> BTreeSet<Party> {
    p.iter().copied().collect()
}

fn assignment(domain: &str, business: Party, after: Party, accountable: Party) -> Assignment {
    Assignment {
        domain: domain.into(),
        raci: Raci {
            responsible: set(&[business, after]),
            accountable: set(&[accountable]),
            ..Default::default()
        },
        business_hours_owner: business,
        after_hours_owner: after,
        internal_contact: Some("Dana Whitfield".into()),
        provider_contact: Some("Crestline NOC".into()),
        internal_escalation: vec!["Dana Whitfield".into(), "Robert Harlan".into()],
        provider_escalation: vec!["On-call technician".into(), "Morgan Reyes".into()],
        notes: String::new(),
    }
}

/// Harbor Point, as in the demo story: internal owns helpdesk in business hours, the provider
/// owns patching and everything urgent after 17:00 and at weekends.
fn harbor_point() -> Agreement {
    Agreement {
        internal_calendar: Calendar::weekdays("America/New_York", 7 * 60 + 30, 17 * 60),
        provider_calendar: Calendar::weekdays("America/New_York", 8 * 60, 18 * 60),
        assignments: vec![
            assignment(
                "helpdesk",
                Party::Internal,
                Party::Provider,
                Party::Internal,
            ),
            assignment(
                "patching",
                Party::Provider,
                Party::Provider,
                Party::Provider,
            ),
        ],
    }
}

#[test]
fn who_owns_patching_at_two_on_sunday_and_helpdesk_on_tuesday() {
    let a = CompiledAgreement::new(&harbor_point()).unwrap();
    // Sunday 2026-03-01 02:00 EST = 07:00Z.
    let d = route(&a, "patching", at("2026-03-01T07:00:00Z")).unwrap();
    assert_eq!(
        (d.owner, d.window, d.owner_on_shift),
        (Party::Provider, Window::AfterHours, false)
    );
    assert_eq!(d.escalation[0], "On-call technician");
    assert!(d.reason.contains("escalation path"), "{}", d.reason);
    // Tuesday 10:00 EST = 15:00Z: internal helpdesk.
    let d = route(&a, "helpdesk", at("2026-03-03T15:00:00Z")).unwrap();
    assert_eq!(
        (d.owner, d.window),
        (Party::Internal, Window::BusinessHours)
    );
    assert_eq!(d.assignee.as_deref(), Some("Dana Whitfield"));
    // Tuesday 20:00 EST: after hours, the provider.
    let d = route(&a, "helpdesk", at("2026-03-04T01:00:00Z")).unwrap();
    assert_eq!(d.owner, Party::Provider);
    assert!(matches!(
        route(&a, "network", at("2026-03-04T01:00:00Z")),
        Err(RouteError::UnassignedDomain(_))
    ));
}

#[test]
fn business_hours_follow_local_time_across_daylight_saving() {
    let a = CompiledAgreement::new(&harbor_point()).unwrap();
    // 08:00 in New York on the Monday after each DST change is business hours,
    // although the UTC instant differs by an hour.
    assert_eq!(
        route(&a, "helpdesk", at("2026-03-09T12:00:00Z"))
            .unwrap()
            .window,
        Window::BusinessHours
    ); // EDT
    assert_eq!(
        route(&a, "helpdesk", at("2026-11-02T13:00:00Z"))
            .unwrap()
            .window,
        Window::BusinessHours
    ); // EST
       // 07:00 local on those days is before opening.
    assert_eq!(
        route(&a, "helpdesk", at("2026-03-09T11:00:00Z"))
            .unwrap()
            .window,
        Window::AfterHours
    );
    assert_eq!(
        route(&a, "helpdesk", at("2026-11-02T12:00:00Z"))
            .unwrap()
            .window,
        Window::AfterHours
    );
}

#[test]
fn phoenix_keeps_its_hours_without_daylight_saving() {
    let mut ag = harbor_point();
    ag.internal_calendar = Calendar::weekdays("America/Phoenix", 8 * 60, 17 * 60);
    let a = CompiledAgreement::new(&ag).unwrap();
    // 08:30 MST is 15:30Z in winter and summer alike.
    assert_eq!(
        route(&a, "helpdesk", at("2026-01-13T15:30:00Z"))
            .unwrap()
            .window,
        Window::BusinessHours
    );
    assert_eq!(
        route(&a, "helpdesk", at("2026-07-14T15:30:00Z"))
            .unwrap()
            .window,
        Window::BusinessHours
    );
}

#[test]
fn holidays_are_after_hours_and_split_shifts_work() {
    let mut ag = harbor_point();
    ag.internal_calendar.holidays.push(Holiday {
        date: "2026-12-25".into(),
        name: "Christmas Day".into(),
    });
    ag.internal_calendar.week[0] = vec![
        Span {
            start: 8 * 60,
            end: 12 * 60,
        },
        Span {
            start: 13 * 60,
            end: 17 * 60,
        },
    ];
    let a = CompiledAgreement::new(&ag).unwrap();
    assert_eq!(
        route(&a, "helpdesk", at("2026-12-25T15:00:00Z"))
            .unwrap()
            .window,
        Window::AfterHours
    ); // Friday, holiday
    assert_eq!(
        route(&a, "helpdesk", at("2026-12-21T17:30:00Z"))
            .unwrap()
            .window,
        Window::AfterHours
    ); // Monday 12:30 lunch
    assert_eq!(
        route(&a, "helpdesk", at("2026-12-21T18:30:00Z"))
            .unwrap()
            .window,
        Window::BusinessHours
    ); // Monday 13:30
}

#[test]
fn next_handover_is_the_next_opening_or_closing() {
    let a = CompiledAgreement::new(&harbor_point()).unwrap();
    // Friday 16:00 EST → handover at 17:00 EST (22:00Z).
    assert_eq!(
        next_handover(&a, "helpdesk", at("2026-03-06T21:00:00Z")),
        Some(at("2026-03-06T22:00:00Z"))
    );
    // Friday 18:00 → Monday 07:30 EDT (DST began on Sunday 8 March) = 11:30Z.
    assert_eq!(
        next_handover(&a, "helpdesk", at("2026-03-06T23:00:00Z")),
        Some(at("2026-03-09T11:30:00Z"))
    );
    // Patching never changes hands.
    assert_eq!(
        next_handover(&a, "patching", at("2026-03-06T21:00:00Z")),
        None
    );
}

/// Around every offset change of 2026 in zones that skip or repeat an hour (or half an hour,
/// at Lord Howe Island), with hours whose edges fall inside the skipped or repeated time,
/// `next_change` agrees with a minute-by-minute walk. Found by the property test below: hours
/// of 01:01–02:01 on the Sunday British clocks go forward open at the very instant of the
/// change (02:00 BST), which no edge of the week names.
#[test]
fn next_change_sees_hours_opened_or_repeated_by_a_clock_change() {
    let days: &[&[(u16, u16)]] = &[
        &[(61, 121), (131, 161)],
        &[(70, 80)],
        &[(0, 90)],
        &[(90, 150)],
        &[(120, 180)],
        &[(30, 60), (150, 200)],
        &[(100, 110), (115, 125)],
    ];
    for zone in ["Europe/London", "America/New_York", "Australia/Lord_Howe"] {
        let tz = jiff::tz::TimeZone::get(zone).unwrap();
        let changes: Vec<Timestamp> = tz
            .following(at("2026-01-01T00:00:00Z").to_jiff())
            .take_while(|tr| tr.timestamp() < at("2027-01-01T00:00:00Z").to_jiff())
            .map(|tr| Timestamp(tr.timestamp().as_microsecond()))
            .collect();
        assert_eq!(changes.len(), 2, "{zone}");
        for spans in days {
            let day: Vec<Span> = spans
                .iter()
                .map(|&(start, end)| Span { start, end })
                .collect();
            let cal = Calendar {
                time_zone: zone.into(),
                week: vec![day; 7],
                holidays: vec![],
            };
            let c = CompiledCalendar::new(&cal).unwrap();
            for change in &changes {
                for k in 0..60 {
                    let t = change.plus_seconds((k * 7 - 180) * 60);
                    let now = c.is_open(t);
                    let walked = (1..3 * 1440)
                        .map(|m| t.plus_seconds(m * 60))
                        .find(|s| c.is_open(*s) != now);
                    assert_eq!(c.next_change(t, 2), walked, "{zone} {spans:?} from {t:?}");
                }
            }
        }
    }
}

fn clean_ctx() -> LintContext {
    LintContext {
        active_domains: vec!["helpdesk".into(), "patching".into()],
        internal_staff: 1,
        provider_staff: 2,
        week_start: week_start(at("2026-03-04T12:00:00Z"), "America/New_York"),
    }
}

#[test]
fn the_demo_agreement_lints_clean() {
    let errors: Vec<_> = lint(&harbor_point(), &clean_ctx())
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn lint_finds_what_makes_an_agreement_fail() {
    let mut ag = harbor_point();
    ag.assignments[0].raci.accountable = set(&[Party::Internal, Party::Provider]);
    ag.assignments[1].raci.accountable.clear();
    ag.assignments[1].provider_escalation.clear(); // after-hours owner with nobody to call
    let codes: Vec<String> = lint(&ag, &clean_ctx()).iter().map(|f| f.key()).collect();
    for want in [
        "two_accountable:helpdesk",
        "no_accountable:patching",
        "after_hours_no_escalation:patching",
        "uncovered_hours:patching",
    ] {
        assert!(
            codes.iter().any(|c| c == want),
            "missing {want} in {codes:?}"
        );
    }
    let mut ctx = clean_ctx();
    ctx.provider_staff = 0;
    ctx.active_domains.push("network".into());
    let mut ag = harbor_point();
    ag.assignments[1].provider_contact = None;
    let codes: Vec<String> = lint(&ag, &ctx).iter().map(|f| f.key()).collect();
    assert!(
        codes.contains(&"responsible_cannot_act:patching".to_string()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"unassigned_domain:network".to_string()),
        "{codes:?}"
    );
}

#[test]
fn the_version_in_force_is_the_latest_accepted_effective_one() {
    let v = vec![
        (1, VersionStatus::Accepted, Some(Timestamp(100))),
        (2, VersionStatus::Rejected, Some(Timestamp(150))),
        (3, VersionStatus::Accepted, Some(Timestamp(200))),
        (4, VersionStatus::Proposed, Some(Timestamp(120))),
    ];
    assert_eq!(in_force_at(&v, Timestamp(50)), None);
    assert_eq!(in_force_at(&v, Timestamp(199)), Some(1));
    assert_eq!(in_force_at(&v, Timestamp(200)), Some(3));
}

#[test]
fn diff_names_what_moved() {
    let old = harbor_point();
    let mut new = old.clone();
    new.assignments[0].business_hours_owner = Party::Provider;
    let d = diff(&old, &new);
    assert_eq!(d.len(), 1);
    assert_eq!(
        (
            d[0].subject.as_str(),
            d[0].field.as_str(),
            d[0].after.as_str()
        ),
        ("helpdesk", "business_hours_owner", "Provider")
    );
    assert_eq!(
        week_label(&old.internal_calendar.week),
        "Mon–Fri 07:30–17:00"
    );
}

// ---- properties -------------------------------------------------------------------------

const ZONES: &[&str] = &[
    "America/New_York",
    "America/Phoenix",
    "Europe/London",
    "Australia/Sydney",
    "America/Los_Angeles",
];

fn any_day() -> impl Strategy<Value = Vec<Span>> {
    prop_oneof![
        Just(vec![]),
        (0u16..700, 60u16..600).prop_map(|(s, len)| vec![Span {
            start: s,
            end: (s + len).min(1440)
        }]),
        (0u16..500, 30u16..200, 10u16..200, 30u16..400).prop_map(|(s, a, gap, b)| {
            let e1 = s + a;
            let s2 = e1 + gap;
            vec![
                Span { start: s, end: e1 },
                Span {
                    start: s2,
                    end: (s2 + b).min(1440),
                },
            ]
        }),
    ]
}

fn any_calendar() -> impl Strategy<Value = Calendar> {
    (
        prop::sample::select(ZONES),
        prop::collection::vec(any_day(), 7),
        prop::collection::vec(0u32..365, 0..5),
    )
        .prop_map(|(tz, week, hol)| Calendar {
            time_zone: tz.to_string(),
            week,
            holidays: hol
                .into_iter()
                .map(|d| Holiday {
                    date: Date::new(2026, 1, 1)
                        .unwrap()
                        .checked_add(jiff::Span::new().days(d as i64))
                        .unwrap()
                        .to_string(),
                    name: "day off".into(),
                })
                .collect(),
        })
}

fn any_party() -> impl Strategy<Value = Party> {
    prop::sample::select(vec![Party::Internal, Party::Provider])
}

fn any_agreement() -> impl Strategy<Value = Agreement> {
    (
        any_calendar(),
        any_calendar(),
        prop::collection::vec((any_party(), any_party(), any_party()), 1..6),
    )
        .prop_map(|(ic, pc, owners)| Agreement {
            internal_calendar: ic,
            provider_calendar: pc,
            assignments: owners
                .into_iter()
                .enumerate()
                .map(|(i, (b, a, acc))| assignment(&format!("d{i}"), b, a, acc))
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// For an agreement that lints clean, every instant of a year — across DST changes in
    /// several zones — resolves to exactly one owner: the business-hours owner when the
    /// client is open, the after-hours owner otherwise, and never an uncovered hour.
    #[test]
    fn every_instant_of_a_year_has_exactly_one_owner(ag in any_agreement()) {
        let ctx = LintContext {
            active_domains: vec![],
            internal_staff: 1,
            provider_staff: 1,
            week_start: week_start(at("2026-03-02T12:00:00Z"), &ag.internal_calendar.time_zone),
        };
        prop_assume!(lint(&ag, &ctx).iter().all(|f| f.severity != Severity::Error));
        let c = CompiledAgreement::new(&ag).unwrap();
        let start = at("2026-01-01T00:00:00Z");
        for step in 0..(365 * 24 * 4 / 7) {
            // Every 105 minutes for a year: walks every slot of the week and both DST changes.
            let t = start.plus_seconds(step * 105 * 60);
            for asg in &ag.assignments {
                let d = route(&c, &asg.domain, t).unwrap();
                let open = c.calendar(Party::Internal).is_open(t);
                let want = if open { asg.business_hours_owner } else { asg.after_hours_owner };
                prop_assert_eq!(d.owner, want);
                prop_assert_eq!(d.accountable, *asg.raci.accountable.iter().next().unwrap());
                prop_assert!(d.owner_on_shift || !d.escalation.is_empty(), "an uncovered instant passed the lint");
            }
        }
    }

    /// The next change of a calendar really is the next change: nothing changes before it,
    /// and something changes at it.
    #[test]
    fn next_change_is_the_first_change(cal in any_calendar(), start_min in 0i64..(365 * 24 * 60)) {
        let c = CompiledCalendar::new(&cal).unwrap();
        let t = at("2026-01-01T00:00:00Z").plus_seconds(start_min * 60);
        let now = c.is_open(t);
        match c.next_change(t, 40) {
            Some(n) => {
                prop_assert!(n > t);
                prop_assert_ne!(c.is_open(n), now);
                let mut s = t;
                while s < n.plus_seconds(-60) {
                    prop_assert_eq!(c.is_open(s), now, "changed before the reported change");
                    s = s.plus_seconds(15 * 60).min(n.plus_seconds(-60));
                    if s == n.plus_seconds(-60) { prop_assert_eq!(c.is_open(s), now); break; }
                }
            }
            None => {
                for h in 0..(40 * 24) {
                    prop_assert_eq!(c.is_open(t.plus_seconds(h * 3600)), now);
                }
            }
        }
    }

    /// Routing at an instant uses the version in force then: the latest accepted version whose
    /// effective instant is not after it.
    #[test]
    fn the_version_in_force_is_never_a_later_or_unaccepted_one(
        versions in prop::collection::vec((prop::sample::select(vec![VersionStatus::Accepted, VersionStatus::Rejected, VersionStatus::Proposed, VersionStatus::Draft]), prop::option::of(0i64..1000)), 0..12),
        t in 0i64..1000,
    ) {
        let v: Vec<(i64, VersionStatus, Option<Timestamp>)> = versions.iter().enumerate().map(|(i, (s, e))| (i as i64 + 1, *s, e.map(Timestamp))).collect();
        match in_force_at(&v, Timestamp(t)) {
            Some(n) => {
                let (_, s, e) = v[(n - 1) as usize];
                prop_assert_eq!(s, VersionStatus::Accepted);
                let e = e.unwrap();
                prop_assert!(e <= Timestamp(t));
                for (m, s2, e2) in &v {
                    if *s2 == VersionStatus::Accepted && e2.is_some_and(|x| x <= Timestamp(t)) {
                        prop_assert!((e2.unwrap(), *m) <= (e, n));
                    }
                }
            }
            None => prop_assert!(v.iter().all(|(_, s, e)| *s != VersionStatus::Accepted || e.is_none_or(|x| x > Timestamp(t)))),
        }
    }
}

#[test]
fn coverage_from_week_states_agrees_with_routing_slot_by_slot() {
    let mut ag = harbor_point();
    ag.assignments[0].internal_escalation.clear();
    ag.assignments[0].after_hours_owner = Party::Internal; // nights: internal, nobody to call
    let c = CompiledAgreement::new(&ag).unwrap();
    let start = week_start(at("2026-03-04T12:00:00Z"), "America/New_York");
    for asg in &ag.assignments {
        let cover = coverage(&c, &asg.domain, start);
        for (i, slot) in cover.iter().enumerate() {
            let d = route(
                &c,
                &asg.domain,
                start.plus_seconds(i as i64 * SLOT_MINUTES * 60),
            )
            .unwrap();
            let want = if d.owner_on_shift {
                Cover::OnShift(d.owner, d.window)
            } else if d.escalation.is_empty() {
                Cover::Nobody(d.owner, d.window)
            } else {
                Cover::OnCall(d.owner, d.window)
            };
            assert_eq!(*slot, want, "{} slot {i}", asg.domain);
        }
    }
    assert!(coverage(&c, "helpdesk", start)
        .iter()
        .any(|s| matches!(s, Cover::Nobody(Party::Internal, Window::AfterHours))));
}
