use super::facts::{inventory_facts, InventoryFacts, SummaryFacts};
use super::policy::{MonitoringPolicy, Placement, PolicySet, PolicyTarget};
use super::*;
use crate::{ClientId, EndpointGroupId, EndpointId, MonitoringPolicyId, SiteId, Timestamp};
use std::collections::HashMap;

const MIN: i64 = 60 * Timestamp::SECOND;
const DAY: i64 = 86_400 * Timestamp::SECOND;

fn check(key: &str, kind: CheckKind) -> Check {
    Check {
        key: key.into(),
        kind,
        domain: None,
        severity: Severity::Warning,
        flap: FlapRule::default(),
        renotify_minutes: None,
        ticket: Default::default(),
    }
}

fn policy(target: PolicyTarget, checks: Vec<Check>, exclusions: &[&str]) -> MonitoringPolicy {
    MonitoringPolicy {
        id: MonitoringPolicyId::new(),
        client_id: None,
        target,
        checks,
        exclusions: exclusions.iter().map(|s| s.to_string()).collect(),
    }
}

fn facts() -> EndpointFacts {
    EndpointFacts {
        endpoint_id: EndpointId::new(),
        client_id: ClientId::new(),
        site_id: SiteId::new(),
        hostname: "fs01".into(),
        ..Default::default()
    }
}

/// Runs passes of one check over one endpoint, feeding the state back.
struct Runner {
    set: PolicySet,
    state: HashMap<StateKey, CheckState>,
}

impl Runner {
    fn new(c: Check) -> Self {
        Runner {
            set: PolicySet::new([policy(PolicyTarget::Provider, vec![c], &[])]),
            state: HashMap::new(),
        }
    }
    fn pass(&mut self, f: &EndpointFacts, now: Timestamp) -> Vec<TransitionKind> {
        let ev = evaluate(
            &self.set,
            &HashMap::new(),
            std::slice::from_ref(f),
            &self.state,
            now,
        );
        for (k, s) in ev.changed {
            self.state.insert(k, s);
        }
        for k in ev.dropped {
            self.state.remove(&k);
        }
        ev.transitions.into_iter().map(|t| t.kind).collect()
    }
}

fn fired(t: &[TransitionKind]) -> bool {
    matches!(t, [TransitionKind::Fire(_)])
}
fn cleared(t: &[TransitionKind]) -> bool {
    matches!(t, [TransitionKind::Clear(_)])
}

/// Each kind: bad facts fire once, stay quiet while still bad, and clear when good again.
fn fires_and_clears(kind: CheckKind, good: EndpointFacts, bad: EndpointFacts, t0: Timestamp) {
    let name = kind.name();
    let mut r = Runner::new(check("c", kind));
    assert!(
        r.pass(&good, t0).is_empty(),
        "{name}: good facts fire nothing"
    );
    assert!(fired(&r.pass(&bad, Timestamp(t0.0 + MIN))), "{name}: fires");
    assert!(
        r.pass(&bad, Timestamp(t0.0 + 2 * MIN)).is_empty(),
        "{name}: fires once"
    );
    assert!(
        cleared(&r.pass(&good, Timestamp(t0.0 + 3 * MIN))),
        "{name}: clears"
    );
    assert!(r.state.is_empty() || r.state.values().all(|s| !s.alerting));
}

#[test]
fn offline_fires_after_n_minutes_of_silence_and_clears_on_check_in() {
    let t0 = Timestamp(1_000 * DAY);
    let mut good = facts();
    good.last_seen_at = Some(t0);
    let mut bad = good.clone();
    bad.last_seen_at = Some(Timestamp(t0.0 - 20 * MIN));
    let mut good2 = good.clone();
    good2.last_seen_at = Some(Timestamp(t0.0 + 3 * MIN));
    let mut r = Runner::new(check("off", CheckKind::Offline { minutes: 10 }));
    assert!(r.pass(&good, t0).is_empty());
    assert!(fired(&r.pass(&bad, Timestamp(t0.0 + MIN))));
    assert!(cleared(&r.pass(&good2, Timestamp(t0.0 + 3 * MIN))));
    // Never seen is not "offline".
    let mut never = facts();
    never.last_seen_at = None;
    assert!(
        Runner::new(check("off", CheckKind::Offline { minutes: 10 }))
            .pass(&never, t0)
            .is_empty()
    );
}

#[test]
fn disk_free_by_percent_by_bytes_and_by_mount() {
    let t0 = Timestamp(1_000 * DAY);
    let disk = |mount: &str, free: u64| DiskFact {
        mount: mount.into(),
        total_bytes: 1000 * 1024 * 1024 * 1024,
        free_bytes: free * 1024 * 1024 * 1024,
    };
    let mut good = facts();
    good.disks = vec![disk("/", 500), disk("/srv", 400)];
    let mut bad = good.clone();
    bad.disks[1] = disk("/srv", 30);
    fires_and_clears(
        CheckKind::DiskFree {
            mount: None,
            min_percent: Some(10.0),
            min_bytes: None,
        },
        good.clone(),
        bad.clone(),
        t0,
    );
    fires_and_clears(
        CheckKind::DiskFree {
            mount: None,
            min_percent: None,
            min_bytes: Some(50 * 1024 * 1024 * 1024),
        },
        good.clone(),
        bad.clone(),
        t0,
    );
    // Watching only "/": the full /srv does not count.
    let mut r = Runner::new(check(
        "root",
        CheckKind::DiskFree {
            mount: Some("/".into()),
            min_percent: Some(10.0),
            min_bytes: None,
        },
    ));
    assert!(r.pass(&bad, t0).is_empty());
}

#[test]
fn cpu_and_memory_fire_only_after_their_duration() {
    let t0 = Timestamp(1_000 * DAY);
    for kind in [
        CheckKind::CpuHigh {
            percent: 90.0,
            minutes: 10,
        },
        CheckKind::MemoryHigh {
            percent: 90.0,
            minutes: 10,
        },
    ] {
        let mut good = facts();
        good.cpu_percent = Some(20.0);
        good.memory_percent = Some(40.0);
        let mut bad = good.clone();
        bad.cpu_percent = Some(97.0);
        bad.memory_percent = Some(96.0);
        let mut r = Runner::new(check("hot", kind));
        assert!(r.pass(&bad, t0).is_empty(), "not yet: just started");
        assert!(
            r.pass(&bad, Timestamp(t0.0 + 5 * MIN)).is_empty(),
            "not yet: 5 min"
        );
        // A dip resets the clock.
        assert!(r.pass(&good, Timestamp(t0.0 + 6 * MIN)).is_empty());
        assert!(r.pass(&bad, Timestamp(t0.0 + 7 * MIN)).is_empty());
        assert!(
            r.pass(&bad, Timestamp(t0.0 + 16 * MIN)).is_empty(),
            "9 min since the dip"
        );
        assert!(fired(&r.pass(&bad, Timestamp(t0.0 + 17 * MIN))), "10 min");
        assert!(cleared(&r.pass(&good, Timestamp(t0.0 + 18 * MIN))));
    }
}

#[test]
fn service_down_fires_when_unit_inactive_or_missing_and_never_when_unknown() {
    let t0 = Timestamp(1_000 * DAY);
    let mut good = facts();
    good.active_units = Some(vec!["smbd.service".into(), "sshd.service".into()]);
    let mut bad = good.clone();
    bad.active_units = Some(vec!["sshd.service".into()]);
    fires_and_clears(
        CheckKind::ServiceDown {
            unit: "smbd.service".into(),
        },
        good.clone(),
        bad.clone(),
        t0,
    );
    fires_and_clears(
        CheckKind::ServiceDown {
            unit: "smbd".into(),
        },
        good,
        bad,
        t0,
    );
    let unknown = facts();
    assert!(Runner::new(check(
        "svc",
        CheckKind::ServiceDown {
            unit: "smbd".into()
        }
    ))
    .pass(&unknown, t0)
    .is_empty());
}

#[test]
fn security_updates_and_reboot_fire_after_n_days_pending() {
    let t0 = Timestamp(1_000 * DAY);
    let mut good = facts();
    good.security_updates = Some(0);
    good.reboot_required = Some(false);
    let mut recent = good.clone();
    recent.security_updates = Some(3);
    recent.security_pending_since = Some(Timestamp(t0.0 - 2 * DAY));
    recent.reboot_required = Some(true);
    recent.reboot_pending_since = Some(Timestamp(t0.0 - 2 * DAY));
    let mut old = recent.clone();
    old.security_pending_since = Some(Timestamp(t0.0 - 9 * DAY));
    old.reboot_pending_since = Some(Timestamp(t0.0 - 9 * DAY));
    for kind in [
        CheckKind::SecurityUpdates { days: 7 },
        CheckKind::RebootPending { days: 7 },
    ] {
        let mut r = Runner::new(check("p", kind.clone()));
        assert!(r.pass(&recent, t0).is_empty(), "2 days is not yet 7");
        fires_and_clears(kind, good.clone(), old.clone(), t0);
    }
}

#[test]
fn firewall_admin_and_tls_checks_fire_and_clear() {
    let t0 = Timestamp(1_000 * DAY);
    let mut on = facts();
    on.firewall_enabled = Some(true);
    let mut off = on.clone();
    off.firewall_enabled = Some(false);
    fires_and_clears(CheckKind::FirewallDisabled, on, off, t0);

    let mut base = facts();
    base.admins = Some(vec!["dana".into()]);
    base.admin_baseline = Some(vec!["dana".into()]);
    let mut added = base.clone();
    added.admins = Some(vec!["dana".into(), "mallory".into()]);
    fires_and_clears(CheckKind::NewLocalAdmin, base.clone(), added.clone(), t0);
    // Once a person accepts the new set as the baseline, it clears.
    let mut accepted = added.clone();
    accepted.admin_baseline = accepted.admins.clone();
    let mut r = Runner::new(check("adm", CheckKind::NewLocalAdmin));
    assert!(fired(&r.pass(&added, t0)));
    assert!(cleared(&r.pass(&accepted, Timestamp(t0.0 + MIN))));

    let cert = |days: i64| TlsFact {
        source: "tcp:443".into(),
        subject: "CN=files.harbor.test".into(),
        not_after: Timestamp(t0.0 + days * DAY),
    };
    let mut fresh = facts();
    fresh.tls = vec![cert(200)];
    let mut expiring = fresh.clone();
    expiring.tls = vec![cert(200), cert(5)];
    fires_and_clears(CheckKind::TlsExpiring { days: 14 }, fresh, expiring, t0);
}

#[test]
fn overrides_change_parameters_lower_down_and_exclusions_remove_checks() {
    let client = ClientId::new();
    let site = SiteId::new();
    let group = EndpointGroupId::new();
    let ep = EndpointId::new();
    let other = EndpointId::new();
    let disk = |pct: f64| {
        check(
            "disk",
            CheckKind::DiskFree {
                mount: None,
                min_percent: Some(pct),
                min_bytes: None,
            },
        )
    };
    let set = PolicySet::new([
        policy(
            PolicyTarget::Provider,
            vec![disk(10.0), check("fw", CheckKind::FirewallDisabled)],
            &[],
        ),
        policy(PolicyTarget::Client(client), vec![disk(15.0)], &[]),
        policy(PolicyTarget::Group(group), vec![], &["fw"]),
        policy(PolicyTarget::Endpoint(ep), vec![disk(5.0)], &[]),
    ]);
    let at = |endpoint_id, groups: Vec<EndpointGroupId>| Placement {
        client_id: client,
        site_id: site,
        groups,
        endpoint_id,
    };
    let e = set.effective(&at(ep, vec![group]));
    assert_eq!(e.checks.len(), 1);
    assert_eq!(e.checks[0].check, disk(5.0));
    assert_eq!(e.checks[0].set_at, PolicyTarget::Provider);
    assert_eq!(
        e.checks[0].overridden_at,
        vec![PolicyTarget::Client(client), PolicyTarget::Endpoint(ep)]
    );
    assert_eq!(e.excluded.len(), 1);
    assert_eq!(e.excluded[0].excluded_at, PolicyTarget::Group(group));
    // Outside the group, the firewall check applies with the client's disk threshold.
    let e = set.effective(&at(other, vec![]));
    let keys: Vec<_> = e.checks.iter().map(|c| c.check.key.as_str()).collect();
    assert_eq!(keys, ["disk", "fw"]);
    assert_eq!(e.checks[0].check, disk(15.0));
    // Another client gets the provider-wide threshold.
    let e = set.effective(&Placement {
        client_id: ClientId::new(),
        ..at(other, vec![])
    });
    assert_eq!(e.checks[0].check, disk(10.0));
    assert!(e.checks[0].overridden_at.is_empty());
}

#[test]
fn evaluation_uses_the_effective_policy_and_clears_alerts_of_excluded_checks() {
    let t0 = Timestamp(1_000 * DAY);
    let mut f = facts();
    f.firewall_enabled = Some(false);
    let fw = check("fw", CheckKind::FirewallDisabled);
    let mut r = Runner::new(fw.clone());
    assert!(fired(&r.pass(&f, t0)));
    r.set = PolicySet::new([
        policy(PolicyTarget::Provider, vec![fw], &[]),
        policy(PolicyTarget::Endpoint(f.endpoint_id), vec![], &["fw"]),
    ]);
    let t = r.pass(&f, Timestamp(t0.0 + MIN));
    assert!(cleared(&t), "{t:?}");
    assert!(r.state.is_empty());
}

#[test]
fn flapping_holds_notifications_until_it_settles() {
    let t0 = Timestamp(1_000 * DAY);
    let mut c = check("fw", CheckKind::FirewallDisabled);
    c.flap = FlapRule {
        changes: 4,
        window_minutes: 30,
    };
    let mut on = facts();
    on.firewall_enabled = Some(true);
    let mut off = on.clone();
    off.firewall_enabled = Some(false);
    let mut r = Runner::new(c);
    let at = |m: i64| Timestamp(t0.0 + m * MIN);
    assert!(fired(&r.pass(&off, at(0))));
    assert!(cleared(&r.pass(&on, at(1))));
    assert!(fired(&r.pass(&off, at(2))));
    // The fourth change within 30 minutes: held, no clear sent.
    assert_eq!(r.pass(&on, at(3)), vec![TransitionKind::FlapHeld]);
    assert!(r.pass(&off, at(4)).is_empty());
    assert!(r.pass(&on, at(5)).is_empty());
    // Quiet for a window: it settles, and the alert follows the state at that point.
    let t = r.pass(&on, at(40));
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[0], TransitionKind::FlapSettled);
    assert!(matches!(t[1], TransitionKind::Clear(_)));
}

#[test]
fn renotify_is_due_only_while_firing_after_the_interval() {
    let t0 = Timestamp(1_000 * DAY);
    let a = Alert {
        id: crate::AlertId::new(),
        client_id: ClientId::new(),
        endpoint_id: None,
        source: "check".into(),
        check_key: None,
        dedup_key: "k".into(),
        grouping_key: "g".into(),
        domain: "monitoring".into(),
        severity: Severity::Critical,
        title: "t".into(),
        summary: "s".into(),
        state: AlertState::Firing,
        owner: crate::scope::Party::Provider,
        window: None,
        owner_on_shift: false,
        route_reason: String::new(),
        fired_at: t0,
        last_seen_at: t0,
        acknowledged_at: None,
        acknowledged_by: None,
        acknowledged_label: None,
        acknowledged_side: None,
        resolved_at: None,
        resolution: None,
        notified_at: t0,
        renotify_minutes: Some(30),
        flapping: false,
        ticket_id: None,
        ticket_auto_resolve: false,
        check_kind: None,
        silenced_by: None,
        silenced_window: None,
        silenced_until: None,
    };
    assert!(!a.renotify_due(Timestamp(t0.0 + 29 * MIN)));
    // A silenced alert (maintenance window) does not re-notify.
    let silenced = Alert {
        silenced_until: Some(Timestamp(t0.0 + 600 * MIN)),
        ..a.clone()
    };
    assert!(!silenced.renotify_due(Timestamp(t0.0 + 90 * MIN)));
    assert!(a.renotify_due(Timestamp(t0.0 + 30 * MIN)));
    let acked = Alert {
        state: AlertState::Acknowledged,
        ..a.clone()
    };
    assert!(!acked.renotify_due(Timestamp(t0.0 + 90 * MIN)));
    let none = Alert {
        renotify_minutes: None,
        ..a
    };
    assert!(!none.renotify_due(Timestamp(t0.0 + 90 * MIN)));
}

#[test]
fn inventory_facts_skip_what_the_checks_do_not_read_and_survive_odd_shapes() {
    // The package list is skipped, not read; sections of an unexpected type are unknown; a
    // skeleton the typed read refuses (a section that is not an object, a duplicate key) is
    // read whole, and gives the same answer for the sections that are there.
    let with_packages = r#"{"packages": {"items": [{"name": "a", "version": "1"}, {"name": "b"}]},
        "users": {"admin_groups": {"sudo": ["lee", "dana"]}}, "hardware": null}"#;
    let i = inventory_facts(with_packages);
    assert_eq!(i.admins, Some(vec!["dana".to_string(), "lee".to_string()]));
    assert!(i.disks.is_empty() && i.active_units.is_none() && i.tls.is_empty());
    let hardware_not_an_object = r#"{"hardware": "none",
        "users": {"admin_groups": {"wheel": ["root"]}}, "services": {"units": 7}}"#;
    let i = inventory_facts(hardware_not_an_object);
    assert_eq!(i.admins, Some(vec!["root".to_string()]));
    assert_eq!(i.active_units, None, "units of the wrong type are unknown");
    let duplicate = r#"{"users": {"admin_groups": {"sudo": ["a"]}},
        "users": {"admin_groups": {"sudo": ["b"]}}}"#;
    assert_eq!(
        inventory_facts(duplicate).admins,
        Some(vec!["b".to_string()])
    );
    assert_eq!(inventory_facts("not json"), InventoryFacts::default());
    assert_eq!(inventory_facts("[1, 2]"), InventoryFacts::default());
}

#[test]
fn facts_come_from_heartbeat_summary_and_inventory_including_tls_certificates() {
    let inv = r#"{
      "hardware": {"filesystems": [{"mount": "/", "fs_type": "ext4", "device": "/dev/sda1", "size_bytes": 1000, "free_bytes": 10}]},
      "services": {"units": [
        {"name": "smbd.service", "load_state": "loaded", "active_state": "active", "sub_state": "running"},
        {"name": "cups.service", "load_state": "loaded", "active_state": "failed", "sub_state": "failed"}]},
      "users": {"users": [], "admin_groups": {"sudo": ["dana", "lee"], "wheel": ["dana"]}},
      "tls_certificates": [{"source": "tcp:443", "subject": "CN=fs01", "issuer": "CN=CA", "not_after": 1900000000, "dns_names": ["fs01.test"]}]
    }"#;
    let i = inventory_facts(inv);
    assert_eq!(i.active_units, Some(vec!["smbd.service".to_string()]));
    assert_eq!(i.admins, Some(vec!["dana".to_string(), "lee".to_string()]));
    assert_eq!(i.tls.len(), 1);
    assert_eq!(
        i.tls[0].not_after,
        Timestamp(1_900_000_000 * Timestamp::SECOND)
    );
    let hb = r#"{"uptime_seconds": 5, "cpu_percent": 42.0, "memory_total_bytes": 1000,
        "memory_available_bytes": 250, "swap_total_bytes": 0, "swap_free_bytes": 0,
        "load1": 0, "load5": 0, "load15": 0,
        "disks": [{"mount": "/", "filesystem": "ext4", "total_bytes": 1000, "free_bytes": 400}]}"#;
    let t0 = Timestamp(1_000 * DAY);
    let mut f = facts();
    let pending = SummaryFacts {
        security_updates: Some(2),
        reboot_required: Some(true),
        firewall_enabled: Some(true),
    };
    f.refresh(Some(t0), Some(hb), pending, Some((i, t0)));
    assert_eq!(f.cpu_percent, Some(42.0));
    assert_eq!(f.memory_percent, Some(75.0));
    assert_eq!(
        f.disks[0].free_bytes, 400,
        "the heartbeat's disks are newer"
    );
    assert_eq!(f.security_pending_since, Some(t0));
    // A later refresh keeps "pending since"; once installed it is cleared.
    f.refresh(Some(Timestamp(t0.0 + DAY)), None, pending, None);
    assert_eq!(f.security_pending_since, Some(t0));
    f.refresh(
        Some(Timestamp(t0.0 + 2 * DAY)),
        None,
        SummaryFacts {
            security_updates: Some(0),
            ..pending
        },
        None,
    );
    assert_eq!(f.security_pending_since, None);
    assert_eq!(f.reboot_pending_since, Some(t0));
    // Stored facts round-trip through JSON (the baseline is not part of them).
    let json = serde_json::to_string(&f).unwrap();
    let back: EndpointFacts = serde_json::from_str(&json).unwrap();
    assert_eq!(back, f);
}

#[test]
fn checks_validate_their_parameters() {
    assert!(check("ok", CheckKind::Offline { minutes: 5 })
        .validate()
        .is_empty());
    assert!(!check("Bad Key", CheckKind::FirewallDisabled)
        .validate()
        .is_empty());
    assert!(!check(
        "d",
        CheckKind::DiskFree {
            mount: None,
            min_percent: None,
            min_bytes: None
        }
    )
    .validate()
    .is_empty());
    assert!(!check(
        "c",
        CheckKind::CpuHigh {
            percent: 150.0,
            minutes: 5
        }
    )
    .validate()
    .is_empty());
    let parsed: Check = serde_json::from_str(
        r#"{"key": "disk", "kind": "disk_free", "min_percent": 10, "severity": "critical"}"#,
    )
    .unwrap();
    assert_eq!(parsed.severity, Severity::Critical);
    assert_eq!(parsed.domain(), "onsite_hardware");
}
