//! Alerts open and update tickets according to policy (issue #6), on every backend: a firing
//! alert under an `open` rule opens a ticket owned by the side the agreement names for the
//! alert's domain; the same key firing again (still open, or anew while the ticket is being
//! worked) updates that ticket; a resolution is noted on it and, under `open_and_resolve`,
//! resolves it (automatically or by hand); `none` opens nothing; a check policy's rule reaches
//! the evaluation pass; an integration token's rule reaches ingested alerts; another tenant
//! sees neither the link nor the ticket; the ticket shows its alerts and the alert its ticket,
//! in the API and on the pages.

use crate::common::call;
use crate::common::{bearer, round_the_clock_agreement, run, Cred, TestApp};
use ed25519_dalek::SigningKey;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_agent_protocol::CHECKIN_PATH;
use tandem_app::{principal_of, Actor, CheckPolicyInput, RaiseAlert};
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;
use tandem_domain::helpdesk::{Impact, Priority, Status, Ticket, Urgency};
use tandem_domain::monitoring::policy::PolicyTarget;
use tandem_domain::monitoring::{Alert, AlertTicketRule, Severity, TicketMode};
use tandem_domain::scope::Party;
use tandem_domain::{ClientId, EndpointId, TicketId};
use tandem_store::tickets::TicketFilter;
use tandem_store::Page;

fn person(u: &User) -> Actor {
    Actor::person(principal_of(u), None)
}

fn raise(client: ClientId, key: &str, domain: &str, mode: TicketMode) -> RaiseAlert {
    RaiseAlert {
        client_id: client,
        dedup_key: key.into(),
        grouping_key: None,
        source: "test".into(),
        endpoint_id: None,
        check_key: None,
        domain: domain.into(),
        severity: Severity::Critical,
        title: format!("Trouble on {key}"),
        summary: "/srv has 2 GiB free".into(),
        renotify_minutes: None,
        ticket: AlertTicketRule::new(mode),
    }
}

/// Client A's agreement: on-site hardware is internal IT's, patching the provider's, around
/// the clock.
async fn agree(t: &TestApp) {
    let caps = [
        Capability::ScopeRead,
        Capability::ScopeWrite,
        Capability::ClientsRead,
    ];
    let provider = bearer(t, &t.w.padmin, &caps).await;
    let internal = bearer(t, &t.w.it_a, &caps).await;
    t.accept_agreement(
        t.w.client_a.id,
        round_the_clock_agreement(&[("onsite_hardware", "internal"), ("patching", "provider")]),
        &provider,
        &internal,
    )
    .await;
}

/// A ticket as the provider's admin sees it (internal notes included).
async fn ticket(t: &TestApp, id: TicketId) -> tandem_app::TicketView {
    t.app
        .get_ticket(&person(&t.w.padmin), id)
        .await
        .expect("ticket")
}

async fn tickets_of(t: &TestApp, client: ClientId) -> Vec<Ticket> {
    let f = TicketFilter {
        client: Some(client),
        ..Default::default()
    };
    t.app
        .list_tickets(&Actor::system(), &f, Page::new(0, 100))
        .await
        .expect("tickets")
        .items
}

async fn alert(t: &TestApp, a: &Alert) -> tandem_app::AlertView {
    t.app
        .get_alert(&Actor::system(), a.id)
        .await
        .expect("alert")
}

fn alert_notes(v: &tandem_app::TicketView) -> Vec<String> {
    v.events
        .iter()
        .filter(|e| e.kind == "alert")
        .map(|e| e.body.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_opens_a_ticket_for_the_owning_side_and_the_same_key_updates_it() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let a = t.w.client_a.id;
        let mon = Actor::monitoring();
        let before = tickets_of(&t, a).await.len();

        // Patching is the provider's: the alert's ticket is the provider's, opened by Tandem.
        let patch = t
            .app
            .raise_alert(&mon, raise(a, "patch:fs01", "patching", TicketMode::Open))
            .await
            .expect("raise")
            .alert;
        let tid = patch.ticket_id.expect("the alert opened a ticket");
        assert!(!patch.ticket_auto_resolve);
        let v = ticket(&t, tid).await;
        assert_eq!(v.ticket.owner, Party::Provider);
        assert_eq!(v.ticket.owner, patch.owner);
        assert_eq!(v.ticket.domain, "patching");
        assert_eq!(v.ticket.subject, patch.title);
        assert_eq!(v.ticket.created_by, None, "no human opened it");
        assert_eq!(v.ticket.requester_id, None);
        assert_eq!(v.ticket.status, Status::New);
        assert_eq!(
            v.ticket.priority,
            Priority::P2,
            "critical: a department, high"
        );
        assert_eq!(v.ticket.assignee_hint.as_deref(), Some("Provider desk"));
        let opened = v
            .events
            .iter()
            .find(|e| e.kind == "opened")
            .expect("opened");
        assert_eq!(opened.actor_label, "Tandem monitoring");
        assert!(
            opened.body.contains("routed to Provider"),
            "{}",
            opened.body
        );
        // The ticket shows its alert; the alert its ticket and a timeline entry.
        assert_eq!(
            v.alerts.iter().map(|x| x.id).collect::<Vec<_>>(),
            [patch.id]
        );
        let av = alert(&t, &patch).await;
        assert_eq!(av.ticket.as_ref().map(|x| x.id), Some(tid));
        assert!(
            av.events.iter().any(|e| e.kind == "ticket"
                && e.body
                    .starts_with(&format!("Opened ticket #{}", v.ticket.number))),
            "{:?}",
            av.events
        );

        // On-site hardware is internal IT's: that alert's ticket is theirs.
        let hw = t
            .app
            .raise_alert(&mon, raise(a, "ups:1", "onsite_hardware", TicketMode::Open))
            .await
            .expect("raise")
            .alert;
        let hw_ticket = ticket(&t, hw.ticket_id.expect("ticket")).await.ticket;
        assert_eq!(hw_ticket.owner, Party::Internal);
        assert_ne!(hw_ticket.id, tid);

        // Still firing with something new to say: the same alert, the same ticket, a note.
        let mut again = raise(a, "patch:fs01", "patching", TicketMode::Open);
        again.summary = "/srv has 1 GiB free".into();
        let refreshed = t.app.raise_alert(&mon, again).await.expect("refresh");
        assert!(!refreshed.new);
        assert_eq!(refreshed.alert.ticket_id, Some(tid));
        let notes = alert_notes(&ticket(&t, tid).await);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("still firing") && n.contains("1 GiB")),
            "{notes:?}"
        );
        // The same report again adds nothing.
        let mut same = raise(a, "patch:fs01", "patching", TicketMode::Open);
        same.summary = "/srv has 1 GiB free".into();
        t.app.raise_alert(&mon, same).await.expect("same");
        assert_eq!(alert_notes(&ticket(&t, tid).await).len(), notes.len());

        // It clears: the ticket hears of it, and stays open (the rule is `open`).
        t.app
            .clear_alert(&mon, a, "patch:fs01", "patched")
            .await
            .expect("clear")
            .expect("was open");
        let v = ticket(&t, tid).await;
        assert_eq!(v.ticket.status, Status::New);
        assert!(
            alert_notes(&v)
                .iter()
                .any(|n| n.contains("resolved") && n.contains("patched")),
            "{:?}",
            alert_notes(&v)
        );

        // It fires again while the ticket is being worked: a new alert, the same ticket.
        let refired = t
            .app
            .raise_alert(&mon, raise(a, "patch:fs01", "patching", TicketMode::Open))
            .await
            .expect("refire");
        assert!(refired.new);
        assert_ne!(refired.alert.id, patch.id);
        assert_eq!(refired.alert.ticket_id, Some(tid));
        let v = ticket(&t, tid).await;
        assert!(
            alert_notes(&v)
                .iter()
                .any(|n| n.starts_with("Alert fired again")),
            "{:?}",
            alert_notes(&v)
        );
        assert_eq!(v.alerts.len(), 2, "the ticket shows both alerts");
        assert_eq!(
            tickets_of(&t, a).await.len(),
            before + 2,
            "two alerts keys, two tickets"
        );

        // Once people resolve the ticket, the next firing opens a new one.
        t.app
            .set_ticket_status(&person(&t.w.padmin), tid, Status::Resolved)
            .await
            .expect("resolve ticket");
        t.app
            .clear_alert(&mon, a, "patch:fs01", "patched again")
            .await
            .expect("clear");
        let third = t
            .app
            .raise_alert(&mon, raise(a, "patch:fs01", "patching", TicketMode::Open))
            .await
            .expect("third")
            .alert;
        assert_ne!(third.ticket_id, Some(tid));
        assert!(third.ticket_id.is_some());

        // Each ticket change is audited as Tandem monitoring.
        let audit = t.audit_all().await;
        let opened: Vec<_> = audit
            .iter()
            .filter(|e| {
                e.entry.action == "ticket.opened" && e.entry.actor_label == "Tandem monitoring"
            })
            .collect();
        assert_eq!(opened.len(), 3, "three tickets opened by monitoring");
        assert!(audit.iter().any(|e| e.entry.action == "ticket.alert_noted"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_and_resolve_resolves_the_ticket_with_its_alert_automatically_or_by_hand() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let a = t.w.client_a.id;
        let mon = Actor::monitoring();
        let mut r = raise(
            a,
            "disk:fs01",
            "onsite_hardware",
            TicketMode::OpenAndResolve,
        );
        r.ticket.impact = Some(Impact::Organisation);
        r.ticket.urgency = Some(Urgency::Critical);
        let fired = t.app.raise_alert(&mon, r).await.expect("raise").alert;
        assert!(fired.ticket_auto_resolve);
        let tid = fired.ticket_id.expect("ticket");
        let v = ticket(&t, tid).await;
        assert_eq!(
            v.ticket.priority,
            Priority::P1,
            "the rule's impact and urgency"
        );
        assert_eq!(v.ticket.owner, Party::Internal);

        // Cleared automatically: the ticket is resolved with it.
        t.app
            .clear_alert(&mon, a, "disk:fs01", "space freed")
            .await
            .expect("clear");
        let v = ticket(&t, tid).await;
        assert_eq!(v.ticket.status, Status::Resolved);
        assert!(v.ticket.resolved_at.is_some());
        let status = v
            .events
            .iter()
            .rev()
            .find(|e| e.kind == "status")
            .expect("status entry");
        assert!(
            status.body.contains("its alert resolved"),
            "{}",
            status.body
        );
        let av = alert(&t, &fired).await;
        assert!(
            av.events
                .iter()
                .any(|e| e.kind == "ticket" && e.body.starts_with("Resolved ticket")),
            "{:?}",
            av.events
        );

        // It fires again: the ticket was resolved, so a new one is opened; a technician
        // resolves that alert by hand and its ticket follows.
        let again = t
            .app
            .raise_alert(
                &mon,
                raise(
                    a,
                    "disk:fs01",
                    "onsite_hardware",
                    TicketMode::OpenAndResolve,
                ),
            )
            .await
            .expect("raise")
            .alert;
        let tid2 = again.ticket_id.expect("ticket");
        assert_ne!(tid2, tid);
        t.app
            .resolve_alert(&person(&t.w.tech), again.id, "replaced the disk")
            .await
            .expect("resolve");
        let v = ticket(&t, tid2).await;
        assert_eq!(v.ticket.status, Status::Resolved);
        assert!(
            alert_notes(&v)
                .iter()
                .any(|n| n.contains("resolved by Terry Tech")),
            "{:?}",
            alert_notes(&v)
        );
        let audit = t.audit_all().await;
        let changed: Vec<_> = audit
            .iter()
            .filter(|e| e.entry.action == "ticket.status_changed")
            .map(|e| (&e.entry.target_id, &e.entry.actor_label))
            .collect();
        assert!(
            changed.contains(&(&tid2.to_string(), &"Terry Tech (terry.tech)".to_string())),
            "{changed:?}"
        );

        // A ticket people resolved already is left as it is.
        let third = t
            .app
            .raise_alert(
                &mon,
                raise(
                    a,
                    "disk:fs01",
                    "onsite_hardware",
                    TicketMode::OpenAndResolve,
                ),
            )
            .await
            .expect("raise")
            .alert;
        let tid3 = third.ticket_id.expect("ticket");
        t.app
            .set_ticket_status(&person(&t.w.it_a), tid3, Status::Closed)
            .await
            .expect("close");
        t.app
            .clear_alert(&mon, a, "disk:fs01", "fine")
            .await
            .expect("clear");
        assert_eq!(ticket(&t, tid3).await.ticket.status, Status::Closed);
        let av = alert(&t, &third).await;
        assert!(
            av.events
                .iter()
                .any(|e| e.kind == "ticket" && e.body.contains("already closed")),
            "{:?}",
            av.events
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_none_opens_no_ticket_and_another_tenant_sees_no_link() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let a = t.w.client_a.id;
        let mon = Actor::monitoring();
        let before = tickets_of(&t, a).await.len();
        let quiet = t
            .app
            .raise_alert(&mon, raise(a, "fan:1", "onsite_hardware", TicketMode::None))
            .await
            .expect("raise")
            .alert;
        assert_eq!(quiet.ticket_id, None);
        t.app
            .clear_alert(&mon, a, "fan:1", "fine")
            .await
            .expect("clear");
        assert_eq!(
            tickets_of(&t, a).await.len(),
            before,
            "no ticket for `none`"
        );

        let loud = t
            .app
            .raise_alert(&mon, raise(a, "fan:2", "onsite_hardware", TicketMode::Open))
            .await
            .expect("raise")
            .alert;
        let tid = loud.ticket_id.expect("ticket");
        let caps = [Capability::EndpointsRead, Capability::TicketsRead];
        let it_a = bearer(&t, &t.w.it_a, &caps).await;
        let it_b = bearer(&t, &t.w.it_b, &caps).await;
        // Client A's admin sees the link both ways in the JSON API.
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/alerts/{}", loud.id),
            &it_a,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["ticket"]["id"], json!(tid.to_string()));
        assert_eq!(r.json()["alert"]["ticket_id"], json!(tid.to_string()));
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/tickets/{tid}"),
            &it_a,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["alerts"][0]["id"], json!(loud.id.to_string()));
        assert_eq!(r.json()["ticket"]["created_by"], Value::Null);
        // Client B's admin finds neither.
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/alerts/{}", loud.id),
            &it_b,
            None,
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.text);
        let r = call(
            &t,
            Method::GET,
            &format!("/api/v1/tickets/{tid}"),
            &it_b,
            None,
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.text);
        // End users do not see alerts on a ticket (and do not see this one at all).
        let end = t.app.get_ticket(&person(&t.w.end_a), tid).await;
        assert!(end.is_err());

        // The pages: the alert links its ticket, the ticket lists its alert.
        let s = t.sign_in(&t.w.it_a).await;
        let page = t
            .send(t.req(Method::GET, &format!("/alerts/{}", loud.id), &s.cred()))
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.text.contains(&format!("href=\"/tickets/{tid}\"")),
            "{}",
            page.text
        );
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{tid}"), &s.cred()))
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.text.contains(&format!("href=\"/alerts/{}\"", loud.id)),
            "{}",
            page.text
        );
        assert!(page.text.contains("by Tandem monitoring"), "{}", page.text);
        // The alerts list shows each alert's ticket, and its CSV export carries the id.
        let page = t
            .send(t.req(
                Method::GET,
                "/alerts?state=firing,acknowledged,resolved",
                &s.cred(),
            ))
            .await;
        assert_eq!(page.status, 200);
        assert!(
            page.text.contains(&format!("href=\"/tickets/{tid}\"")),
            "{}",
            page.text
        );
        let csv = t
            .send(t.req(
                Method::GET,
                "/alerts?state=firing,acknowledged,resolved&format=csv",
                &s.cred(),
            ))
            .await;
        assert!(csv
            .text
            .lines()
            .next()
            .unwrap_or("")
            .ends_with(",ticket_id"));
        assert!(csv.text.contains(&tid.to_string()), "{}", csv.text);
        let s = t.sign_in(&t.w.it_b).await;
        let page = t
            .send(t.req(Method::GET, &format!("/tickets/{tid}"), &s.cred()))
            .await;
        assert_eq!(page.status, 404);
    })
    .await;
}

/// A worse severity raises its ticket's priority to that severity's; a milder one never
/// lowers it.
#[tokio::test]
async fn a_worse_severity_raises_the_tickets_priority_and_a_milder_one_does_not_lower_it() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let a = t.w.client_a.id;
        let mon = Actor::monitoring();
        // A worse severity raises its ticket's priority; a milder one never lowers it.
        let sev = |s: Severity| {
            let mut r = raise(a, "disk:fs02", "patching", TicketMode::Open);
            r.severity = s;
            r.summary = format!("now {}", s.as_str());
            r
        };
        let warned = t
            .app
            .raise_alert(&mon, sev(Severity::Warning))
            .await
            .expect("warning")
            .alert;
        let wt = warned.ticket_id.expect("ticket");
        assert_eq!(ticket(&t, wt).await.ticket.priority, Priority::P3);
        t.app
            .raise_alert(&mon, sev(Severity::Critical))
            .await
            .expect("critical");
        let v = ticket(&t, wt).await;
        assert_eq!(v.ticket.priority, Priority::P2);
        assert!(
            v.events
                .iter()
                .any(|e| e.kind == "priority" && e.body.contains("P3 → P2")),
            "{:?}",
            v.events
        );
        t.app
            .raise_alert(&mon, sev(Severity::Info))
            .await
            .expect("info");
        assert_eq!(
            ticket(&t, wt).await.ticket.priority,
            Priority::P2,
            "never lowered"
        );
    })
    .await;
}

// ---- a check policy's rule, through the evaluation pass ------------------------------------

async fn send_heartbeat(
    t: &TestApp,
    id: EndpointId,
    key: &SigningKey,
    seq: &mut u64,
    free_gb: u64,
) {
    let hb = json!({"kind": "heartbeat", "uptime_seconds": 3600, "cpu_percent": 12.5, "memory_total_bytes": 8_000_000_000u64,
           "memory_available_bytes": 6_000_000_000u64, "swap_total_bytes": 0, "swap_free_bytes": 0,
           "load1": 0.5, "load5": 0.4, "load15": 0.3,
           "disks": [{"mount": "/srv", "filesystem": "ext4", "total_bytes": 100_000_000_000u64, "free_bytes": free_gb * 1_000_000_000}]});
    let inv = json!({"kind": "inventory", "full": true, "sections": {
        "system": {"os_family": "linux", "distribution": "Debian GNU/Linux 12 (bookworm)", "hostname": "hp-fs01", "reboot_required": false, "reboot_required_packages": []}
    }});
    let at = |s: u64| {
        tandem_domain::Timestamp::now()
            .plus_seconds(s as i64 - 1_000)
            .to_rfc3339()
    };
    let messages = json!([{"seq": *seq, "collected_at": at(*seq), "body": hb}, {"seq": *seq + 1, "collected_at": at(*seq + 1), "body": inv}]);
    *seq += 2;
    let bytes = serde_json::to_vec(&json!({"protocol": 1, "messages": messages})).unwrap();
    let r = t
        .send(t.signed_agent_req(CHECKIN_PATH, id, key, bytes, None))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_policys_ticket_rule_opens_and_resolves_the_ticket_through_evaluation() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let w = &t.w;
        let (id, key) = t.enrolled_agent(&w.site_a, "hp-fs01").await;
        let mut seq = 1;
        // Provider-wide: a full disk alerts, no ticket. Client A's level overrides the check by
        // its key over the API: its full disks open a ticket, resolved with the alert.
        let padmin = person(&w.padmin);
        let disk: tandem_domain::monitoring::Check = serde_json::from_value(json!({"key": "disk", "kind": "disk_free", "min_percent": 10, "severity": "warning"})).unwrap();
        t.app.put_check_policy(&padmin, PolicyTarget::Provider, CheckPolicyInput { checks: vec![disk], exclusions: vec![] }).await.expect("provider policy");
        let caps = [Capability::EndpointsRead, Capability::EndpointsWrite];
        let it_a = bearer(&t, &w.it_a, &caps).await;
        let target = json!({"level": "client", "id": w.client_a.id});
        let body = json!({"target": target, "checks": [{"key": "disk", "kind": "disk_free", "min_percent": 10, "severity": "warning", "ticket": {"mode": "open_and_resolve", "urgency": "high"}}], "exclusions": []});
        let r = call(&t, Method::PUT, "/api/v1/monitoring/policies", &it_a, Some(body)).await;
        assert!(r.status.is_success(), "{}", r.text);
        assert_eq!(r.json()["checks"][0]["ticket"]["mode"], "open_and_resolve", "{}", r.text);
        // A rule that does not parse is refused.
        let bad = json!({"target": target, "checks": [{"key": "disk", "kind": "disk_free", "min_percent": 10, "ticket": {"mode": "sometimes"}}], "exclusions": []});
        let r = call(&t, Method::PUT, "/api/v1/monitoring/policies", &it_a, Some(bad)).await;
        assert!(r.status.is_client_error(), "{}", r.text);

        send_heartbeat(&t, id, &key, &mut seq, 3).await;
        let r = t.app.evaluation_pass(tandem_domain::Timestamp::now()).await.expect("pass");
        assert_eq!(r.fired, 1, "{r:?}");
        let alerts = t.app.list_alerts(&Actor::system(), &Default::default(), Page::new(0, 10)).await.unwrap().items;
        let fired = alerts.iter().find(|x| x.check_key.as_deref() == Some("disk")).expect("disk alert");
        let tid = fired.ticket_id.expect("the check's rule opened a ticket");
        let v = ticket(&t, tid).await;
        assert_eq!(v.ticket.owner, Party::Internal, "on-site hardware is internal IT's");
        assert_eq!(v.ticket.priority, Priority::P2, "a department (warning), high (the rule)");
        assert_eq!(v.ticket.site_id, Some(w.site_a.id), "the endpoint's site");
        // Issue #5: the ticket is linked to the alert's endpoint, with an internal entry.
        let linked: Vec<_> = v.data.endpoints.iter().map(|e| (e.id, e.hostname.as_str())).collect();
        assert_eq!(linked, vec![(id, "hp-fs01")]);
        assert!(v.events.iter().any(|e| e.kind == "endpoint" && !e.public && e.body == "Linked endpoint hp-fs01"));

        send_heartbeat(&t, id, &key, &mut seq, 50).await;
        let r = t.app.evaluation_pass(tandem_domain::Timestamp::now()).await.expect("pass");
        assert_eq!(r.cleared, 1, "{r:?}");
        assert_eq!(ticket(&t, tid).await.ticket.status, Status::Resolved);
    })
    .await;
}

// ---- an integration token's rule, for ingested alerts --------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integrations_ticket_rule_opens_and_resolves_tickets_for_its_alerts() {
    run(|t: Arc<TestApp>| async move {
        agree(&t).await;
        let a = t.w.client_a.id;
        let caps = [Capability::EndpointsWrite, Capability::ClientsRead];
        let it_a = bearer(&t, &t.w.it_a, &caps).await;
        let it_b = bearer(&t, &t.w.it_b, &caps).await;
        let r = call(&t, Method::POST, &format!("/api/v1/clients/{a}/integration-tokens"), &it_a,
            Some(json!({"label": "UPS monitor", "default_domain": "onsite_hardware", "ticket": {"mode": "open"}}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.json()["token"]["ticket"]["mode"], "open");
        let token_id = r.json()["token"]["id"].as_str().unwrap().to_string();
        let secret = r.json()["secret"].as_str().unwrap().to_string();
        let post = |body: Value| {
            let t = t.clone();
            let secret = secret.clone();
            async move {
                t.send(
                    t.req(Method::POST, "/api/v1/ingest/webhook", &Cred::Bearer(secret))
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.to_string()),
                )
                .await
            }
        };
        let r = post(json!({"dedup_key": "ups-1", "status": "firing", "title": "UPS on battery", "severity": "warning"})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let alert_id: tandem_domain::AlertId = r.json()["results"][0]["alert_id"].as_str().unwrap().parse().unwrap();
        let v = t.app.get_alert(&Actor::system(), alert_id).await.unwrap();
        let tid = v.alert.ticket_id.expect("the integration's rule opened a ticket");
        let tv = ticket(&t, tid).await;
        assert_eq!(tv.ticket.owner, Party::Internal);
        assert_eq!(tv.ticket.priority, Priority::P3);
        assert!(tv.events[0].actor_label.starts_with("Integration “UPS monitor”"), "{}", tv.events[0].actor_label);

        // Another client's admin cannot change this token's rule; A's admin makes it resolve.
        let path = format!("/api/v1/integration-tokens/{token_id}/ticket");
        let r = call(&t, Method::PUT, &path, &it_b, Some(json!({"mode": "none"}))).await;
        assert_eq!(r.status, 404, "{}", r.text);
        let r = call(&t, Method::PUT, &path, &it_a, Some(json!({"mode": "open_and_resolve"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["ticket"]["mode"], "open_and_resolve");
        let r = call(&t, Method::PUT, &path, &it_a, Some(json!({"mode": "always"}))).await;
        assert!(r.status.is_client_error(), "{}", r.text);
        assert!(t.audit_all().await.iter().any(|e| e.entry.action == "integration_token.ticket_rule_set"));

        // The alert already open keeps the rule it fired under: its ticket stays open.
        let r = post(json!({"dedup_key": "ups-1", "status": "resolved", "title": "UPS on battery"})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(ticket(&t, tid).await.ticket.status, Status::New);
        // A new alert follows the new rule.
        post(json!({"dedup_key": "ups-2", "status": "firing", "title": "UPS 2 on battery", "severity": "critical"})).await;
        let r = post(json!({"dedup_key": "ups-2", "status": "resolved", "title": "UPS 2 on battery"})).await;
        let id2: tandem_domain::AlertId = r.json()["results"][0]["alert_id"].as_str().unwrap().parse().unwrap();
        let v2 = t.app.get_alert(&Actor::system(), id2).await.unwrap();
        let t2 = ticket(&t, v2.alert.ticket_id.expect("ticket")).await;
        assert_eq!(t2.ticket.status, Status::Resolved);

        // The page shows the rule and changes it.
        let s = t.sign_in(&t.w.it_a).await;
        let page = t.send(t.req(Method::GET, &format!("/clients/{a}/integrations"), &s.cred())).await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("open a ticket, resolve it with the alert"), "{}", page.text);
        let r = t
            .send(t.req(Method::POST, &format!("/clients/{a}/integrations/{token_id}/ticket"), &s.cred()).form(&[
                ("csrf", s.csrf.as_str()),
                ("ticket_mode", "open"),
                ("ticket_impact", "person"),
                ("ticket_urgency", ""),
            ]))
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        let list = t.app.list_integration_tokens(&Actor::system(), Some(a), Page::new(0, 10)).await.unwrap();
        let tok = list.items.iter().find(|x| x.id.to_string() == token_id).unwrap();
        assert_eq!(tok.ticket, AlertTicketRule { mode: TicketMode::Open, impact: Some(Impact::Person), urgency: None });
    })
    .await;
}
