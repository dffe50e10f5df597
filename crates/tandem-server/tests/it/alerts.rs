//! Alerts and monitoring on every backend: the alert lifecycle (raise, refresh, acknowledge,
//! resolve, clear) with its audit and tenant isolation; routing by the hour through the scope
//! agreement; the evaluation pass over facts from real signed check-ins, with policies,
//! overrides and exclusions; the evaluation lease.

use crate::common::call;
use crate::common::{bearer, run, Cred, Resp, TestApp};
use ed25519_dalek::SigningKey;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_agent_protocol::CHECKIN_PATH;
use tandem_app::{principal_of, Actor, CheckPolicyInput, Error, PassReport, RaiseAlert};
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;
use tandem_domain::monitoring::policy::PolicyTarget;
use tandem_domain::monitoring::{AlertState, Check, Severity};
use tandem_domain::scope::Party;
use tandem_domain::{ClientId, EndpointId, Side};
use tandem_store::monitoring::AlertFilter;
use tandem_store::Page;

fn person(u: &User) -> Actor {
    Actor::person(principal_of(u), None)
}

fn raise(client: ClientId, key: &str, domain: &str) -> RaiseAlert {
    RaiseAlert {
        client_id: client,
        dedup_key: key.into(),
        grouping_key: None,
        source: "test".into(),
        endpoint_id: None,
        check_key: None,
        domain: domain.into(),
        severity: Severity::Critical,
        title: "Disk almost full on fs01".into(),
        summary: "/srv has 2 GiB free".into(),
        renotify_minutes: Some(15),
        ticket: Default::default(),
    }
}

/// Signs `client`'s agreement: on-site hardware is internal's in business hours and the
/// provider's after hours; patching and security monitoring are the provider's. The internal
/// calendar is open all week when `always_open`, else never (so every instant is after hours).
async fn agree(t: &TestApp, client: ClientId, internal_admin: &User, always_open: bool) {
    let all = json!([[{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}]]);
    let none = json!([[], [], [], [], [], [], []]);
    let row = |domain: &str, business: &str, after: &str| {
        json!({
            "domain": domain,
            "raci": {"responsible": [business], "accountable": [business], "consulted": [], "informed": []},
            "business_hours_owner": business, "after_hours_owner": after,
            "internal_contact": "Internal IT", "provider_contact": "Provider desk",
            "internal_escalation": ["Internal IT"], "provider_escalation": ["On-call"], "notes": ""
        })
    };
    let content = json!({
        "internal_calendar": {"time_zone": "America/New_York", "week": if always_open { all.clone() } else { none }, "holidays": []},
        "provider_calendar": {"time_zone": "America/New_York", "week": all, "holidays": []},
        "assignments": [row("onsite_hardware", "internal", "provider"), row("patching", "provider", "provider"),
                        row("security_monitoring", "provider", "provider")]
    });
    let caps = [
        Capability::ScopeRead,
        Capability::ScopeWrite,
        Capability::ClientsRead,
    ];
    let provider = bearer(t, &t.w.padmin, &caps).await;
    let internal = bearer(t, internal_admin, &caps).await;
    t.accept_agreement(client, content, &provider, &internal)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_is_raised_deduplicated_acknowledged_resolved_and_audited() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        let mon = Actor::monitoring();
        let first = t
            .app
            .raise_alert(&mon, raise(a, "disk:fs01", "onsite_hardware"))
            .await
            .expect("raise");
        assert!(first.new);
        assert_eq!(first.alert.state, AlertState::Firing);
        // Without an agreement in force, the client's own IT owns it, and says why.
        assert_eq!(first.alert.owner, Party::Internal);
        assert!(
            first.alert.route_reason.contains("no scope agreement"),
            "{}",
            first.alert.route_reason
        );
        // The same key while open: the same alert, refreshed.
        let mut again = raise(a, "disk:fs01", "onsite_hardware");
        again.summary = "/srv has 1 GiB free".into();
        let second = t.app.raise_alert(&mon, again).await.expect("raise again");
        assert!(!second.new);
        assert_eq!(second.alert.id, first.alert.id);
        assert_eq!(second.alert.summary, "/srv has 1 GiB free");

        // Bad input says what to fix.
        let mut bad = raise(a, "", "no_such_domain");
        bad.title = String::new();
        match t.app.raise_alert(&mon, bad).await {
            Err(Error::Invalid(v)) => {
                let fields: Vec<_> = v.iter().map(|i| i.field).collect();
                assert!(
                    fields.contains(&"dedup_key")
                        && fields.contains(&"domain")
                        && fields.contains(&"title"),
                    "{fields:?}"
                );
            }
            other => panic!("expected invalid, got {other:?}"),
        }

        // Client A's people see it; client B's do not, and cannot touch it.
        let it_a = person(&w.it_a);
        let it_b = person(&w.it_b);
        let list = t
            .app
            .list_alerts(&it_a, &AlertFilter::default(), Page::new(0, 50))
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1);
        let list = t
            .app
            .list_alerts(&it_b, &AlertFilter::default(), Page::new(0, 50))
            .await
            .unwrap();
        assert!(list.items.is_empty());
        assert!(matches!(
            t.app.get_alert(&it_b, first.alert.id).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            t.app.acknowledge_alert(&it_b, first.alert.id, "").await,
            Err(Error::NotFound(_))
        ));
        // A client's people cannot raise alerts for the other client.
        assert!(matches!(
            t.app.raise_alert(&it_b, raise(a, "x", "patching")).await,
            Err(Error::NotFound(_))
        ));
        // Viewers read but do not acknowledge; end users see nothing.
        assert!(t
            .app
            .get_alert(&person(&w.viewer_a), first.alert.id)
            .await
            .is_ok());
        assert!(matches!(
            t.app
                .acknowledge_alert(&person(&w.viewer_a), first.alert.id, "")
                .await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            t.app
                .list_alerts(&person(&w.end_a), &AlertFilter::default(), Page::new(0, 5))
                .await,
            Err(Error::Forbidden(_))
        ));

        // Acknowledged by internal IT: who and which side.
        let acked = t
            .app
            .acknowledge_alert(&it_a, first.alert.id, "looking at it")
            .await
            .expect("ack");
        assert_eq!(acked.state, AlertState::Acknowledged);
        assert_eq!(acked.acknowledged_side, Some(Side::Client));
        assert_eq!(acked.acknowledged_by, Some(w.it_a.id));
        assert!(matches!(
            t.app.acknowledge_alert(&it_a, first.alert.id, "").await,
            Err(Error::Conflict(_))
        ));
        // Resolving by hand needs a note.
        assert!(matches!(
            t.app.resolve_alert(&it_a, first.alert.id, "  ").await,
            Err(Error::Invalid(_))
        ));
        let done = t
            .app
            .resolve_alert(&it_a, first.alert.id, "moved old CAD exports to the NAS")
            .await
            .expect("resolve");
        assert_eq!(done.state, AlertState::Resolved);
        assert!(matches!(
            t.app.resolve_alert(&it_a, first.alert.id, "again").await,
            Err(Error::Conflict(_))
        ));

        // The timeline: fired (notify), updated, acknowledged (notify), resolved (notify).
        let view = t.app.get_alert(&it_a, first.alert.id).await.unwrap();
        let kinds: Vec<(&str, bool)> = view
            .events
            .iter()
            .map(|e| (e.kind.as_str(), e.notify))
            .collect();
        assert_eq!(
            kinds,
            [
                ("fired", true),
                ("updated", false),
                ("acknowledged", true),
                ("resolved", true)
            ]
        );
        assert_eq!(view.events[0].actor_label, "Tandem monitoring");

        // Once resolved the key is free: a new alert; clearing it resolves it automatically.
        let third = t
            .app
            .raise_alert(&mon, raise(a, "disk:fs01", "onsite_hardware"))
            .await
            .unwrap();
        assert!(third.new);
        assert_ne!(third.alert.id, first.alert.id);
        let cleared = t
            .app
            .clear_alert(&mon, a, "disk:fs01", "space freed")
            .await
            .unwrap()
            .expect("was open");
        assert_eq!(cleared.state, AlertState::Resolved);
        assert!(cleared.resolution.unwrap().contains("space freed"));
        assert!(t
            .app
            .clear_alert(&mon, a, "disk:fs01", "again")
            .await
            .unwrap()
            .is_none());

        let actions: Vec<String> = t
            .audit_all()
            .await
            .into_iter()
            .map(|r| r.entry.action)
            .filter(|a| a.starts_with("alert."))
            .collect();
        for want in [
            "alert.fired",
            "alert.acknowledged",
            "alert.resolved",
            "alert.cleared",
        ] {
            assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
        }
        // Filters: by state and by owner.
        let f = AlertFilter {
            states: vec![AlertState::Resolved],
            owner: Some(Party::Internal),
            ..Default::default()
        };
        assert_eq!(
            t.app
                .list_alerts(&it_a, &f, Page::new(0, 50))
                .await
                .unwrap()
                .items
                .len(),
            2
        );
        let f = AlertFilter {
            states: vec![AlertState::Firing],
            ..Default::default()
        };
        assert!(t
            .app
            .list_alerts(&it_a, &f, Page::new(0, 50))
            .await
            .unwrap()
            .items
            .is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fired_alert_is_owned_by_the_side_the_agreement_names_for_that_hour() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        // Client A: internal IT's hours cover every instant; client B: none do.
        agree(&t, w.client_a.id, &w.it_a, true).await;
        agree(&t, w.client_b.id, &w.it_b, false).await;
        let mon = Actor::monitoring();
        let business = t
            .app
            .raise_alert(&mon, raise(w.client_a.id, "disk", "onsite_hardware"))
            .await
            .unwrap()
            .alert;
        assert_eq!(business.owner, Party::Internal);
        assert_eq!(
            business.window,
            Some(tandem_domain::scope::Window::BusinessHours)
        );
        assert!(business.owner_on_shift);
        let after = t
            .app
            .raise_alert(&mon, raise(w.client_b.id, "disk", "onsite_hardware"))
            .await
            .unwrap()
            .alert;
        assert_eq!(after.owner, Party::Provider);
        assert_eq!(after.window, Some(tandem_domain::scope::Window::AfterHours));
        assert!(
            after.owner_on_shift,
            "the provider's own hours cover every instant here"
        );
        // Patching is the provider's at any hour.
        let patch = t
            .app
            .raise_alert(&mon, raise(w.client_a.id, "patch", "patching"))
            .await
            .unwrap()
            .alert;
        assert_eq!(patch.owner, Party::Provider);
        let view = t.app.get_alert(&person(&w.padmin), after.id).await.unwrap();
        assert!(
            view.events[0].body.contains("Routed to Provider"),
            "{}",
            view.events[0].body
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fired_alert_pages_the_owning_side_and_its_page_follows_the_alert() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        // Client B: internal IT's hours cover no instant, so on-site hardware is the
        // provider's now; client A: always internal IT's.
        agree(&t, w.client_a.id, &w.it_a, true).await;
        agree(&t, w.client_b.id, &w.it_b, false).await;
        let mon = Actor::monitoring();
        let night = t
            .app
            .raise_alert(&mon, raise(w.client_b.id, "disk:fs01", "onsite_hardware"))
            .await
            .unwrap()
            .alert;
        let day = t
            .app
            .raise_alert(&mon, raise(w.client_a.id, "disk:fs01", "onsite_hardware"))
            .await
            .unwrap()
            .alert;
        // Nothing is paged until the hand-over runs; then each fired alert once.
        assert!(t.pages_of_alert(&night).await.is_empty());
        assert_eq!(t.app.page_alert_events(100).await.unwrap(), 2);
        assert_eq!(
            t.app.page_alert_events(100).await.unwrap(),
            0,
            "handed over once"
        );
        let pages = t.pages_of_alert(&night).await;
        assert_eq!(pages.len(), 1, "{pages:?}");
        assert_eq!(pages[0].side, Party::Provider);
        assert_eq!(pages[0].status, tandem_domain::oncall::PageStatus::Open);
        assert_eq!(
            pages[0].link.as_deref(),
            Some(format!("/alerts/{}", night.id).as_str())
        );
        let pages = t.pages_of_alert(&day).await;
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].side, Party::Internal);
        // Raising the same problem again refreshes the alert and does not page again.
        t.app
            .raise_alert(&mon, raise(w.client_b.id, "disk:fs01", "onsite_hardware"))
            .await
            .unwrap();
        t.app.page_alert_events(100).await.unwrap();
        assert_eq!(t.pages_of_alert(&night).await.len(), 1);
        // Acknowledging the alert acknowledges its page; resolving it resolves the page.
        t.app
            .acknowledge_alert(&person(&w.padmin), night.id, "on it")
            .await
            .unwrap();
        assert_eq!(t.app.page_alert_events(100).await.unwrap(), 1);
        let p = &t.pages_of_alert(&night).await[0];
        assert_eq!(p.status, tandem_domain::oncall::PageStatus::Acknowledged);
        t.app
            .resolve_alert(&person(&w.padmin), night.id, "disk cleaned up")
            .await
            .unwrap();
        t.app.page_alert_events(100).await.unwrap();
        let p = &t.pages_of_alert(&night).await[0];
        assert_eq!(p.status, tandem_domain::oncall::PageStatus::Resolved);
        // The other client's page is untouched.
        assert_eq!(
            t.pages_of_alert(&day).await[0].status,
            tandem_domain::oncall::PageStatus::Open
        );
    })
    .await;
}

// ---- evaluation over real check-ins ----------------------------------------------------------

fn now_secs() -> i64 {
    tandem_domain::Timestamp::now().0 / tandem_domain::Timestamp::SECOND
}

async fn checkin(t: &TestApp, id: EndpointId, key: &SigningKey, body: &Value) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap();
    t.send(t.signed_agent_req(CHECKIN_PATH, id, key, bytes, None))
        .await
}

fn heartbeat(free_gb: u64) -> Value {
    json!({"kind": "heartbeat", "uptime_seconds": 3600, "cpu_percent": 12.5, "memory_total_bytes": 8_000_000_000u64,
           "memory_available_bytes": 6_000_000_000u64, "swap_total_bytes": 0, "swap_free_bytes": 0,
           "load1": 0.5, "load5": 0.4, "load15": 0.3,
           "disks": [{"mount": "/srv", "filesystem": "ext4", "total_bytes": 100_000_000_000u64, "free_bytes": free_gb * 1_000_000_000}]})
}

fn inventory(firewall: bool, admins: &[&str], smbd_active: bool) -> Value {
    json!({"kind": "inventory", "full": true, "sections": {
        "system": {"os_family": "linux", "distribution": "Debian GNU/Linux 12 (bookworm)", "hostname": "hp-fs01", "reboot_required": false, "reboot_required_packages": []},
        "users": {"users": [], "admin_groups": {"sudo": admins}},
        "services": {"units": [{"name": "smbd.service", "load_state": "loaded", "active_state": if smbd_active { "active" } else { "failed" }, "sub_state": "x"}]},
        "firewall": {"enabled": firewall}
    }})
}

/// Adds `tls_certificates` to the stored inventory, as the agent reports a certificate it
/// found served on port 443.
async fn with_certificate(t: &TestApp, id: EndpointId, cert_days: i64) {
    let stored = {
        let mut r = t.app.store().read().await.unwrap();
        tandem_store::monitoring::inventory_for_facts(&mut r, id)
            .await
            .unwrap()
            .expect("inventory")
    };
    let mut inv: Value = serde_json::from_str(&stored).unwrap();
    inv["tls_certificates"] = json!([{"source": "tcp:443", "subject": "CN=hp-fs01.harbor.test", "issuer": "CN=Harbor CA",
        "not_after": now_secs() + cert_days * 86400, "dns_names": ["hp-fs01.harbor.test"]}]);
    let text = inv.to_string().replace('\'', "''");
    assert_eq!(
        t.sql(&format!(
            "UPDATE endpoint_inventories SET inventory = '{text}' WHERE endpoint_id = '{id}'"
        ))
        .await,
        1
    );
}

async fn send_state(
    t: &TestApp,
    id: EndpointId,
    key: &SigningKey,
    seq: &mut u64,
    hb: Value,
    inv: Option<Value>,
) {
    // Each report is collected at a distinct instant, as an agent's are.
    let at = |s: u64| {
        tandem_domain::Timestamp::now()
            .plus_seconds(s as i64 - 1_000)
            .to_rfc3339()
    };
    let mut messages = vec![json!({"seq": *seq, "collected_at": at(*seq), "body": hb})];
    *seq += 1;
    if let Some(inv) = inv {
        messages.push(json!({"seq": *seq, "collected_at": at(*seq), "body": inv}));
        *seq += 1;
    }
    let r = checkin(t, id, key, &json!({"protocol": 1, "messages": messages})).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// One monitoring pass, now.
async fn pass_now(app: &tandem_app::App) -> PassReport {
    app.evaluation_pass(tandem_domain::Timestamp::now())
        .await
        .expect("pass")
}

fn check(v: Value) -> Check {
    serde_json::from_value(v).expect("check")
}

/// Sets the provider-wide checks, as the provider's admin.
async fn provider_checks(t: &TestApp, checks: Vec<Check>) {
    let input = CheckPolicyInput {
        checks,
        exclusions: vec![],
    };
    t.app
        .put_check_policy(&person(&t.w.padmin), PolicyTarget::Provider, input)
        .await
        .expect("provider checks");
}

/// The five checks a file server that goes wrong (see [`inventory`], [`with_certificate`])
/// fails: disk, firewall, smbd, a new admin, an expiring certificate.
fn file_server_checks() -> Vec<Check> {
    vec![
        check(
            json!({"key": "disk", "kind": "disk_free", "min_percent": 10, "severity": "critical"}),
        ),
        check(json!({"key": "firewall", "kind": "firewall_disabled"})),
        check(json!({"key": "smbd", "kind": "service_down", "unit": "smbd.service"})),
        check(json!({"key": "admins", "kind": "new_local_admin"})),
        check(json!({"key": "tls", "kind": "tls_expiring", "days": 14})),
    ]
}

async fn open_keys(t: &TestApp) -> Vec<String> {
    let f = AlertFilter {
        states: vec![AlertState::Firing, AlertState::Acknowledged],
        ..Default::default()
    };
    let mut keys: Vec<String> = t
        .app
        .list_alerts(&Actor::system(), &f, Page::new(0, 100))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| a.check_key.unwrap_or_default())
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_raises_every_fire_once_when_its_fires_fill_more_than_one_write() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let (a, a_key) = t.enrolled_agent(&w.site_a, "hp-fs01").await;
        let (b, b_key) = t.enrolled_agent(&w.site_b, "bw-fs01").await;
        let (mut a_seq, mut b_seq) = (1, 1);
        provider_checks(&t, file_server_checks()).await;
        send_state(
            &t,
            a,
            &a_key,
            &mut a_seq,
            heartbeat(50),
            Some(inventory(true, &["dana"], true)),
        )
        .await;
        send_state(
            &t,
            b,
            &b_key,
            &mut b_seq,
            heartbeat(50),
            Some(inventory(true, &["lee"], true)),
        )
        .await;
        with_certificate(&t, a, 200).await;
        with_certificate(&t, b, 200).await;
        assert_eq!(pass_now(&t.app).await.fired, 0);

        // Both go wrong at once: ten fires in one pass, more than one write's worth.
        send_state(
            &t,
            a,
            &a_key,
            &mut a_seq,
            heartbeat(3),
            Some(inventory(false, &["dana", "mallory"], false)),
        )
        .await;
        send_state(
            &t,
            b,
            &b_key,
            &mut b_seq,
            heartbeat(3),
            Some(inventory(false, &["lee", "eve"], false)),
        )
        .await;
        with_certificate(&t, a, 5).await;
        with_certificate(&t, b, 5).await;
        let r = pass_now(&t.app).await;
        assert_eq!((r.fired, r.cleared), (10, 0), "{r:?}");
        let each = ["admins", "disk", "firewall", "smbd", "tls"];
        let both: Vec<&str> = each.iter().flat_map(|k| [*k, *k]).collect();
        assert_eq!(open_keys(&t).await, both);
        // Each side sees the five of its own endpoint.
        for (who, id) in [(&w.it_a, a), (&w.it_b, b)] {
            let list = t
                .app
                .list_alerts(&person(who), &AlertFilter::default(), Page::new(0, 50))
                .await
                .unwrap();
            assert_eq!(list.items.len(), 5);
            assert!(list.items.iter().all(|x| x.endpoint_id == Some(id)));
        }
        // Nothing fires twice.
        let r = pass_now(&t.app).await;
        assert_eq!(r.fired, 0, "{r:?}");
        assert_eq!(open_keys(&t).await.len(), 10);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_fire_from_check_ins_and_clear_when_the_condition_clears() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let (id, key) = t.enrolled_agent(&w.site_a, "hp-fs01").await;
        let (other_id, other_key) = t.enrolled_agent(&w.site_b, "bw-fs01").await;
        let mut seq = 1;
        let mut other_seq = 1;
        // Provider-wide checks, set by the provider's admin.
        let padmin = person(&w.padmin);
        let mut checks = file_server_checks();
        checks.push(check(
            json!({"key": "offline", "kind": "offline", "minutes": 15}),
        ));
        let provider_checks = CheckPolicyInput {
            checks,
            exclusions: vec![],
        };
        // Only the provider's admins set provider-wide checks.
        assert!(matches!(
            t.app
                .put_check_policy(
                    &person(&w.it_a),
                    PolicyTarget::Provider,
                    provider_checks.clone()
                )
                .await,
            Err(Error::Forbidden(_))
        ));
        t.app
            .put_check_policy(&padmin, PolicyTarget::Provider, provider_checks)
            .await
            .expect("provider policy");

        // All well: nothing fires.
        send_state(
            &t,
            id,
            &key,
            &mut seq,
            heartbeat(50),
            Some(inventory(true, &["dana"], true)),
        )
        .await;
        with_certificate(&t, id, 200).await;
        send_state(
            &t,
            other_id,
            &other_key,
            &mut other_seq,
            heartbeat(50),
            Some(inventory(true, &["lee"], true)),
        )
        .await;
        with_certificate(&t, other_id, 200).await;
        let r = pass_now(&t.app).await;
        assert_eq!(r.endpoints, 2);
        assert_eq!(r.checks, 12);
        assert_eq!(r.fired, 0);
        assert!(open_keys(&t).await.is_empty());

        // Everything goes wrong on A's file server.
        send_state(
            &t,
            id,
            &key,
            &mut seq,
            heartbeat(3),
            Some(inventory(false, &["dana", "mallory"], false)),
        )
        .await;
        with_certificate(&t, id, 5).await;
        let r = pass_now(&t.app).await;
        assert_eq!(r.fired, 5, "{r:?}");
        assert_eq!(
            open_keys(&t).await,
            ["admins", "disk", "firewall", "smbd", "tls"]
        );
        // A heartbeat alone writes no facts (each pass reads it from the endpoint's row), and
        // nothing fires twice.
        send_state(&t, id, &key, &mut seq, heartbeat(3), None).await;
        let r = pass_now(&t.app).await;
        assert_eq!((r.refreshed, r.fired, r.cleared), (0, 0, 0));
        // B's people see none of A's alerts; A's see all five, with the host in the title.
        let list = t
            .app
            .list_alerts(&person(&w.it_b), &AlertFilter::default(), Page::new(0, 50))
            .await
            .unwrap();
        assert!(list.items.is_empty());
        let list = t
            .app
            .list_alerts(&person(&w.it_a), &AlertFilter::default(), Page::new(0, 50))
            .await
            .unwrap();
        assert_eq!(list.items.len(), 5);
        let disk = list
            .items
            .iter()
            .find(|a| a.check_key.as_deref() == Some("disk"))
            .unwrap();
        assert_eq!(disk.severity, Severity::Critical);
        assert!(disk.title.starts_with("hp-fs01"), "{}", disk.title);
        assert!(disk.summary.contains("/srv"), "{}", disk.summary);
        assert_eq!(disk.endpoint_id, Some(id));
        let tls = list
            .items
            .iter()
            .find(|a| a.check_key.as_deref() == Some("tls"))
            .unwrap();
        assert!(
            tls.summary
                .contains("CN=hp-fs01.harbor.test (tcp:443) expires in"),
            "{}",
            tls.summary
        );
        // The endpoint page lists the certificate where it was found.
        let s = t.sign_in(&w.it_a).await;
        let cookie = Cred::Session {
            cookie: s.cookie,
            csrf: s.csrf,
        };
        let page = t
            .send(t.req(
                Method::GET,
                &format!("/endpoints/{id}?tab=security"),
                &cookie,
            ))
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.text.contains("TLS certificates") && page.text.contains("served on TCP port 443"),
            "{}",
            page.text
        );

        // A client-level override lowers the disk threshold below what is left: it clears.
        t.app
            .put_check_policy(
                &person(&w.it_a),
                PolicyTarget::Client(w.client_a.id),
                CheckPolicyInput {
                    checks: vec![check(
                        json!({"key": "disk", "kind": "disk_free", "min_percent": 2}),
                    )],
                    exclusions: vec![],
                },
            )
            .await
            .expect("client policy");
        // The endpoint excludes the firewall check: it clears too.
        t.app
            .put_check_policy(
                &person(&w.it_a),
                PolicyTarget::Endpoint(id),
                CheckPolicyInput {
                    checks: vec![],
                    exclusions: vec!["firewall".into()],
                },
            )
            .await
            .expect("endpoint policy");
        // Client B's admin cannot set policies on A's endpoint.
        assert!(matches!(
            t.app
                .put_check_policy(
                    &person(&w.it_b),
                    PolicyTarget::Endpoint(id),
                    CheckPolicyInput::default()
                )
                .await,
            Err(Error::NotFound(_))
        ));
        let why = t.app.effective_checks(&person(&w.it_a), id).await.unwrap();
        let disk = why.checks.iter().find(|c| c.check.key == "disk").unwrap();
        assert_eq!(disk.set_at, PolicyTarget::Provider);
        assert_eq!(disk.overridden_at, [PolicyTarget::Client(w.client_a.id)]);
        assert_eq!(why.excluded[0].key, "firewall");
        assert_eq!(why.excluded[0].excluded_at, PolicyTarget::Endpoint(id));
        assert!(matches!(
            t.app.effective_checks(&person(&w.it_b), id).await,
            Err(Error::NotFound(_))
        ));
        let r = pass_now(&t.app).await;
        assert_eq!(r.cleared, 2, "{r:?}");
        assert_eq!(open_keys(&t).await, ["admins", "smbd", "tls"]);

        // Accepting the new administrator as the baseline clears that alert.
        assert!(matches!(
            t.app.accept_admin_baseline(&person(&w.viewer_a), id).await,
            Err(Error::Forbidden(_))
        ));
        let base = t
            .app
            .accept_admin_baseline(&person(&w.it_a), id)
            .await
            .expect("accept");
        assert_eq!(base, ["dana", "mallory"]);
        // The service comes back and the certificate is renewed: all clear.
        send_state(
            &t,
            id,
            &key,
            &mut seq,
            heartbeat(3),
            Some(inventory(false, &["dana", "mallory"], true)),
        )
        .await;
        with_certificate(&t, id, 300).await;
        let r = pass_now(&t.app).await;
        assert_eq!(r.cleared, 3, "{r:?}");
        assert!(open_keys(&t).await.is_empty());
        let all = t
            .app
            .list_alerts(&person(&w.it_a), &AlertFilter::default(), Page::new(0, 50))
            .await
            .unwrap();
        assert!(all.items.iter().all(|a| a.state == AlertState::Resolved
            && a.resolution
                .as_deref()
                .unwrap_or("")
                .starts_with("Cleared automatically")));

        // Groups: B's admin groups B's file server and excludes the service check for the group.
        let g = t
            .app
            .create_endpoint_group(&person(&w.it_b), w.client_b.id, "File servers")
            .await
            .expect("group");
        assert!(matches!(
            t.app
                .set_group_member(&person(&w.it_b), g.id, id, true)
                .await,
            Err(Error::Invalid(_))
        ));
        t.app
            .set_group_member(&person(&w.it_b), g.id, other_id, true)
            .await
            .expect("member");
        t.app
            .put_check_policy(
                &person(&w.it_b),
                PolicyTarget::Group(g.id),
                CheckPolicyInput {
                    checks: vec![],
                    exclusions: vec!["smbd".into()],
                },
            )
            .await
            .expect("group policy");
        send_state(
            &t,
            other_id,
            &other_key,
            &mut other_seq,
            heartbeat(50),
            Some(inventory(true, &["lee"], false)),
        )
        .await;
        with_certificate(&t, other_id, 200).await;
        let r = pass_now(&t.app).await;
        assert_eq!(r.fired, 0, "the group excludes the service check: {r:?}");
        let why = t
            .app
            .effective_checks(&person(&w.it_b), other_id)
            .await
            .unwrap();
        assert_eq!(why.excluded[0].excluded_at, PolicyTarget::Group(g.id));
        assert!(matches!(
            t.app
                .create_endpoint_group(&person(&w.it_b), w.client_b.id, "File servers")
                .await,
            Err(Error::Conflict(_))
        ));

        // A heartbeat alone is read by the next pass: B's disk fills up (5 % free, under the
        // provider's 10 %) with no new inventory, and the alert fires from it; room clears it.
        send_state(&t, other_id, &other_key, &mut other_seq, heartbeat(5), None).await;
        let r = pass_now(&t.app).await;
        assert_eq!((r.refreshed, r.fired), (0, 1), "{r:?}");
        assert_eq!(open_keys(&t).await, ["disk"]);
        let facts = t
            .app
            .endpoint_facts(&person(&w.it_b), other_id)
            .await
            .unwrap()
            .expect("facts");
        assert_eq!(
            facts.disks[0].free_bytes, 5_000_000_000,
            "what people see of the facts has the heartbeat too"
        );
        assert!(
            t.app
                .endpoint_facts(&person(&w.it_a), other_id)
                .await
                .unwrap()
                .is_none(),
            "not another client's"
        );
        send_state(
            &t,
            other_id,
            &other_key,
            &mut other_seq,
            heartbeat(50),
            None,
        )
        .await;
        let r = pass_now(&t.app).await;
        assert_eq!((r.refreshed, r.cleared), (0, 1), "{r:?}");
        assert!(open_keys(&t).await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_at_a_time_holds_the_evaluation_lease() {
    run(|t: Arc<TestApp>| async move {
        let first = t.app.run_evaluation("server-a", 60).await.expect("a");
        assert!(first.ran);
        let second = t.app.run_evaluation("server-b", 60).await.expect("b");
        assert!(!second.ran, "the lease is server-a's for a minute");
        let again = t.app.run_evaluation("server-a", 60).await.expect("a again");
        assert!(again.ran, "the holder renews its own lease");
        // An expired lease is free for the taking.
        t.sql("UPDATE monitoring_leases SET expires_at = 1").await;
        assert!(t.app.run_evaluation("server-b", 60).await.expect("b").ran);
    })
    .await;
}

// ---- over HTTP: the API and the pages -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_over_http_filter_export_acknowledge_resolve_and_pages() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let mon = Actor::monitoring();
        let disk = t.app.raise_alert(&mon, raise(w.client_a.id, "disk:fs01", "onsite_hardware")).await.unwrap().alert;
        let mut patch = raise(w.client_a.id, "patch:fs01", "patching");
        patch.severity = Severity::Warning;
        patch.title = "Security updates pending on fs01".into();
        t.app.raise_alert(&mon, patch).await.unwrap();
        let caps = [Capability::EndpointsRead, Capability::EndpointsWrite];
        let it_a = bearer(&t, &w.it_a, &caps).await;
        let it_b = bearer(&t, &w.it_b, &caps).await;

        // The list, filtered; the other tenant sees nothing and cannot open it.
        let r = call(&t, Method::GET, "/api/v1/alerts?state=open&severity=critical", &it_a, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let items = r.json()["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], json!(disk.id));
        let r = call(&t, Method::GET, "/api/v1/alerts", &it_b, None).await;
        assert!(r.json()["items"].as_array().unwrap().is_empty());
        let r = call(&t, Method::GET, &format!("/api/v1/alerts/{}", disk.id), &it_b, None).await;
        r.assert_problem(404, "not_found");
        // Bad filters are a clear problem.
        let r = call(&t, Method::GET, "/api/v1/alerts?state=burning", &it_a, None).await;
        r.assert_problem(400, "invalid_query");
        // CSV export of every match.
        let r = call(&t, Method::GET, "/api/v1/alerts?format=csv", &it_a, None).await;
        assert_eq!(r.status, 200);
        assert!(r.content_type().starts_with("text/csv"));
        assert_eq!(r.text.lines().count(), 3, "{}", r.text);
        assert!(r.text.contains("Security updates pending on fs01"));

        // Acknowledge, then again (a conflict), resolve without a note (what to fix), resolve.
        let ack = format!("/api/v1/alerts/{}/acknowledge", disk.id);
        let r = call(&t, Method::POST, &ack, &it_a, Some(json!({"note": "on my way"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["state"], "acknowledged");
        assert_eq!(r.json()["acknowledged_side"], "client");
        call(&t, Method::POST, &ack, &it_a, Some(json!({}))).await.assert_problem(409, "conflict");
        call(&t, Method::POST, &ack, &it_a, Some(json!({"nope": 1}))).await.assert_problem(422, "invalid_body");
        let res = format!("/api/v1/alerts/{}/resolve", disk.id);
        let r = call(&t, Method::POST, &res, &it_a, Some(json!({"note": ""}))).await;
        assert_eq!(r.status, 422, "{}", r.text);
        let r = call(&t, Method::POST, &res, &it_a, Some(json!({"note": "cleaned up old exports"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = call(&t, Method::GET, &format!("/api/v1/alerts/{}", disk.id), &it_a, None).await;
        let kinds: Vec<String> = r.json()["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
        assert_eq!(kinds, ["fired", "acknowledged", "resolved"]);

        // Policies through the API: a bad check says which field to fix.
        let r = call(&t, Method::PUT, "/api/v1/monitoring/policies", &it_a,
            Some(json!({"target": {"level": "client", "id": w.client_a.id}, "checks": [{"key": "cpu", "kind": "cpu_high", "percent": 300, "minutes": 5}]}))).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(r.text.contains("percent"), "{}", r.text);
        let r = call(&t, Method::PUT, "/api/v1/monitoring/policies", &it_a,
            Some(json!({"target": {"level": "client", "id": w.client_a.id}, "checks": [{"key": "cpu", "kind": "cpu_high", "percent": 95, "minutes": 5}]}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = call(&t, Method::GET, &format!("/api/v1/monitoring/policies?client_id={}", w.client_a.id), &it_b, None).await;
        r.assert_problem(404, "not_found");

        // The pages, in the viewer's session.
        let s = t.sign_in(&w.it_a).await;
        let page = Cred::Session { cookie: s.cookie.clone(), csrf: s.csrf.clone() };
        let r = t.send(t.req(Method::GET, "/alerts", &page)).await;
        assert_eq!(r.status, 200);
        assert!(r.text.contains("Security updates pending on fs01"), "open alerts listed");
        assert!(!r.text.contains("Disk almost full"), "resolved ones are not open");
        let r = t.send(t.req(Method::GET, &format!("/alerts/{}", disk.id), &page)).await;
        assert_eq!(r.status, 200);
        assert!(r.text.contains("Timeline") && r.text.contains("cleaned up old exports"));
        let r = t.send(t.req(Method::GET, "/alerts?format=csv&state=resolved", &page)).await;
        assert!(r.text.contains("Disk almost full on fs01"));
        let r = t.send(t.req(Method::GET, "/monitoring", &page)).await;
        assert_eq!(r.status, 200);
        assert!(r.text.contains("CPU above 95% for 5 min"), "{}", r.text);
        // A policy form with broken JSON comes back with what to fix.
        let r = t.send(t.req(Method::POST, "/monitoring/policy", &page).form(&[
            ("csrf", s.csrf.as_str()), ("target", &format!("client:{}", w.client_a.id)), ("checks", "[{not json"), ("exclusions", ""),
        ])).await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert!(r.flash().1.contains("not a valid JSON"), "{:?}", r.flash());
        // Acknowledging on the page.
        let open = t.app.list_alerts(&Actor::system(), &AlertFilter { states: vec![AlertState::Firing], ..Default::default() }, Page::new(0, 5)).await.unwrap();
        let id = open.items[0].id;
        let r = t.send(t.req(Method::POST, &format!("/alerts/{id}/acknowledge"), &page).form(&[("csrf", s.csrf.as_str()), ("note", "")])).await;
        assert_eq!(r.status, 303);
        assert_eq!(r.flash().0, "Acknowledged.");
        let v = t.app.get_alert(&Actor::system(), id).await.unwrap();
        assert_eq!(v.alert.acknowledged_by, Some(w.it_a.id));
    })
    .await;
}

// ---- the demo's chapter ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_file_server_alert_is_routed_by_the_agreement_in_force_when_it_fired() {
    for db in tandem_store::testing::all().await {
        let app = tandem_app::App::new(db.store.clone(), tandem_app::Policy::default());
        app.seed_demo().await.expect("demo");
        let sys = Actor::system();
        let all = app
            .list_alerts(&sys, &AlertFilter::default(), Page::new(0, 50))
            .await
            .unwrap();
        // The checks' alert (the ingest chapter adds an Alertmanager one beside it; the
        // maintenance chapter one a window silenced, resolved inside that window).
        let checks: Vec<_> = all
            .items
            .iter()
            .filter(|a| a.source == "check" && a.silenced_by.is_none())
            .collect();
        assert_eq!(checks.len(), 1, "{:?}", all.items);
        let a = checks[0];
        assert!(a.title.starts_with("hp-fs-01"), "{}", a.title);
        // Harbor Point's on-site hardware: Dana's in its hours, the provider's after them.
        let route = app
            .route(&sys, a.client_id, "onsite_hardware", a.fired_at)
            .await
            .expect("route");
        assert_eq!(a.owner, route.decision.owner, "{}", a.route_reason);
        assert_eq!(a.window, Some(route.decision.window));
        let expected = match route.decision.window {
            tandem_domain::scope::Window::AfterHours => Party::Provider,
            tandem_domain::scope::Window::BusinessHours => Party::Internal,
        };
        assert_eq!(a.owner, expected);
        // Harbor Point's servers open a ticket for a full disk (issue #6): the alert's ticket,
        // owned by the same side, resolved with it, showing the alert.
        let tid = a
            .ticket_id
            .expect("the file server's disk alert opened a ticket");
        assert!(a.ticket_auto_resolve);
        let ticket = app.get_ticket(&sys, tid).await.expect("ticket");
        assert_eq!(ticket.ticket.owner, a.owner);
        assert_eq!(ticket.ticket.created_by, None);
        assert_eq!(ticket.ticket.domain, "onsite_hardware");
        assert_eq!(
            ticket.alerts.iter().map(|x| x.id).collect::<Vec<_>>(),
            [a.id]
        );
        // The loop's first pass sees the full disk and keeps the same alert.
        let r = pass_now(&app).await;
        assert!(r.endpoints >= 170, "{r:?}");
        let disk = AlertFilter {
            check: Some("disk".into()),
            ..Default::default()
        };
        let disk = app
            .list_alerts(&sys, &disk, Page::new(0, 50))
            .await
            .unwrap();
        assert_eq!(
            disk.items.len(),
            1,
            "still one disk alert: {:?}",
            disk.items
        );
        assert_eq!(disk.items[0].id, a.id);
        assert_eq!(disk.items[0].ticket_id, Some(tid), "and the same ticket");
        // The group's service check applies to the file server, and says why.
        let why = app
            .effective_checks(&sys, a.endpoint_id.unwrap())
            .await
            .unwrap();
        assert!(why
            .checks
            .iter()
            .any(|c| c.check.key == "ssh" && matches!(c.set_at, PolicyTarget::Group(_))));
        db.cleanup().await;
    }
}

/// The pass keeps every endpoint's facts from one pass to the next and reads stored facts again
/// only where they were written since: an accepted baseline alone, a new inventory, a heartbeat
/// (laid over the kept facts), a retired endpoint each show in the next pass of the same server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pass_keeps_facts_between_passes_and_follows_every_write() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let (id, key) = t.enrolled_agent(&w.site_a, "hp-fs01").await;
        let (other, other_key) = t.enrolled_agent(&w.site_a, "hp-fs02").await;
        let (mut seq, mut other_seq) = (1, 1);
        let checks = vec![
            check(json!({"key": "disk", "kind": "disk_free", "min_percent": 10})),
            check(json!({"key": "admins", "kind": "new_local_admin"})),
            check(json!({"key": "firewall", "kind": "firewall_disabled"})),
        ];
        provider_checks(&t, checks).await;
        let inv = |firewall, admins: &[&str]| Some(inventory(firewall, admins, true));
        send_state(&t, id, &key, &mut seq, heartbeat(50), inv(true, &["dana"])).await;
        send_state(
            &t,
            other,
            &other_key,
            &mut other_seq,
            heartbeat(50),
            inv(true, &["lee"]),
        )
        .await;
        let r = pass_now(&t.app).await;
        assert_eq!((r.endpoints, r.fired), (2, 0), "{r:?}");

        // A new inventory: its facts are stored again (a new revision) and read again.
        send_state(
            &t,
            id,
            &key,
            &mut seq,
            heartbeat(50),
            inv(false, &["dana", "mallory"]),
        )
        .await;
        let r = pass_now(&t.app).await;
        assert_eq!(r.fired, 2, "{r:?}");
        assert_eq!(open_keys(&t).await, ["admins", "firewall"]);

        // The baseline accepted, and nothing else written: the next pass reads it.
        t.app
            .accept_admin_baseline(&person(&w.it_a), id)
            .await
            .expect("accept");
        let r = pass_now(&t.app).await;
        assert_eq!((r.fired, r.cleared), (0, 1), "{r:?}");
        assert_eq!(open_keys(&t).await, ["firewall"]);

        // Heartbeats only: no facts are written, the kept facts take the latest one.
        send_state(&t, id, &key, &mut seq, heartbeat(3), None).await;
        let r = pass_now(&t.app).await;
        assert_eq!(r.fired, 1, "{r:?}");
        assert_eq!(open_keys(&t).await, ["disk", "firewall"]);
        send_state(&t, id, &key, &mut seq, heartbeat(60), None).await;
        let r = pass_now(&t.app).await;
        assert_eq!(r.cleared, 1, "{r:?}");
        assert_eq!(open_keys(&t).await, ["firewall"]);

        // A retired endpoint leaves the pass.
        assert_eq!(
            t.sql(&format!(
                "UPDATE endpoints SET retired_at = 1 WHERE id = '{other}'"
            ))
            .await,
            1
        );
        let r = pass_now(&t.app).await;
        assert_eq!(r.endpoints, 1, "{r:?}");
    })
    .await;
}
