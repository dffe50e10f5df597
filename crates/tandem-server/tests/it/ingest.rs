//! Ingest on every backend: integration tokens (made, shown once, listed, exported, revoked,
//! audited, tenant-isolated); the Alertmanager webhook and the generic JSON webhook raising,
//! routing (by the agreement, with the domain label or the token's default) and clearing
//! alerts, matched to endpoints; malformed bodies as 400 problems; only integration tokens
//! open the ingest routes; and Debian's real `prometheus-alertmanager` delivering a firing
//! and then a resolved alert to Tandem over loopback.

use crate::common::call;
use crate::common::{bearer, run, Cred, Resp, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tandem_app::Actor;
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;
use tandem_domain::monitoring::{Alert, AlertState, Severity};
use tandem_domain::scope::Party;
use tandem_domain::ClientId;
use tandem_store::monitoring::AlertFilter;
use tandem_store::Page;

/// Posts a raw body to an ingest route with an integration token.
async fn post(t: &TestApp, path: &str, secret: &str, body: &[u8]) -> Resp {
    t.send(
        t.req(Method::POST, path, &Cred::Bearer(secret.to_string()))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec()),
    )
    .await
}

/// Signs `client`'s agreement: on-site hardware is internal's around the clock, patching and
/// network the provider's around the clock (so routing does not depend on the hour).
async fn agree(t: &TestApp, client: ClientId, internal_admin: &User) {
    let all = json!([[{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}], [{"start": 0, "end": 1440}]]);
    let row = |domain: &str, owner: &str| {
        json!({
            "domain": domain,
            "raci": {"responsible": [owner], "accountable": [owner], "consulted": [], "informed": []},
            "business_hours_owner": owner, "after_hours_owner": owner,
            "internal_contact": "Internal IT", "provider_contact": "Provider desk",
            "internal_escalation": ["Internal IT"], "provider_escalation": ["On-call"], "notes": ""
        })
    };
    let content = json!({
        "internal_calendar": {"time_zone": "America/New_York", "week": all.clone(), "holidays": []},
        "provider_calendar": {"time_zone": "America/New_York", "week": all, "holidays": []},
        "assignments": [row("onsite_hardware", "internal"), row("patching", "provider"), row("network", "provider")]
    });
    let caps = [
        Capability::ScopeRead,
        Capability::ScopeWrite,
        Capability::ClientsRead,
    ];
    let provider = bearer(t, &t.w.padmin, &caps).await;
    let internal = bearer(t, internal_admin, &caps).await;
    let v = format!("/api/v1/clients/{client}/scope/versions");
    let r = call(t, Method::POST, &v, &provider, None).await;
    let n = r.json()["number"].as_i64().expect("draft");
    let r = call(
        t,
        Method::PUT,
        &format!("{v}/{n}/content"),
        &provider,
        Some(content),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ack: Vec<String> = r.json()["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| match f["domain"].as_str() {
            Some(d) => format!("{}:{d}", f["code"].as_str().unwrap_or("")),
            None => f["code"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    let r = call(
        t,
        Method::POST,
        &format!("{v}/{n}/propose"),
        &provider,
        Some(json!({"acknowledge": ack})),
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = call(
        t,
        Method::POST,
        &format!("{v}/{n}/accept"),
        &internal,
        Some(json!({"comment": "agreed"})),
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text);
}

/// Makes an integration token of `client` through the API as `cred`; returns (id, secret).
async fn integration(t: &TestApp, cred: &Cred, client: ClientId, domain: &str) -> (String, String) {
    let r = call(
        t,
        Method::POST,
        &format!("/api/v1/clients/{client}/integration-tokens"),
        cred,
        Some(json!({"label": "Prometheus, Norfolk office", "default_domain": domain})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    (
        v["token"]["id"].as_str().expect("id").to_string(),
        v["secret"].as_str().expect("secret").to_string(),
    )
}

async fn alerts_of(t: &TestApp, client: ClientId) -> Vec<Alert> {
    alerts_of_app(&t.app, client).await
}

fn am_payload(alerts: Value) -> Vec<u8> {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "tandem", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093", "alerts": alerts
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_tokens_are_shown_once_listed_exported_revoked_and_audited() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        let caps = [Capability::EndpointsWrite, Capability::ClientsRead];
        let padmin = bearer(&t, &w.padmin, &caps).await;
        let it_a = bearer(&t, &w.it_a, &caps).await;
        let it_b = bearer(&t, &w.it_b, &caps).await;
        let (id, secret) = integration(&t, &it_a, a, "patching").await;
        assert!(secret.starts_with("tdi_"), "{secret}");

        // Listed without its secret; the other tenant sees nothing of it.
        let list_path = format!("/api/v1/clients/{a}/integration-tokens");
        let r = call(&t, Method::GET, &list_path, &padmin, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(!r.text.contains(&secret), "the secret is shown again");
        let items = r.json()["items"].as_array().expect("items").clone();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["default_domain"], "patching");
        assert!(items[0]["last_used_at"].is_null());
        call(&t, Method::GET, &list_path, &it_b, None)
            .await
            .assert_problem(404, "not_found");
        let r = call(
            &t,
            Method::DELETE,
            &format!("/api/v1/integration-tokens/{id}"),
            &it_b,
            None,
        )
        .await;
        r.assert_problem(404, "not_found");
        // A technician works alerts but does not hand out integration tokens.
        let tech = bearer(&t, &w.tech, &[Capability::EndpointsWrite]).await;
        call(&t, Method::GET, &list_path, &tech, None)
            .await
            .assert_problem(403, "forbidden");

        // Bad input says what to fix.
        let r = call(
            &t,
            Method::POST,
            &list_path,
            &it_a,
            Some(json!({"label": " ", "default_domain": "astrology"})),
        )
        .await;
        let p = r.assert_problem(422, "validation_failed");
        let fields: Vec<_> = p["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(fields, ["label", "default_domain"]);

        // The token works on the webhook, which notes its use.
        let r = post(
            &t,
            "/api/v1/ingest/webhook",
            &secret,
            br#"{"dedup_key":"ups-1","status":"firing","title":"UPS on battery"}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = call(
            &t,
            Method::GET,
            &format!("{list_path}?format=csv"),
            &padmin,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.content_type().starts_with("text/csv"));
        let mut lines = r.text.lines();
        assert_eq!(
            lines.next(),
            Some("id,label,prefix,default_domain,ticket_mode,ticket_impact,ticket_urgency,created_at,last_used_at,revoked_at")
        );
        let row = lines.next().expect("a row");
        assert!(row.starts_with(&id), "{row}");
        assert!(row.contains(",none,,,"), "the ticket rule (none by default): {row}");
        assert!(row.contains("\"Prometheus, Norfolk office\""), "{row}");
        assert!(!r.text.contains(&secret));
        let r = call(&t, Method::GET, &list_path, &padmin, None).await;
        assert!(
            r.json()["items"][0]["last_used_at"].is_string(),
            "last use not recorded: {}",
            r.text
        );

        // Revoked: the sender is refused; revoking twice is a conflict.
        let r = call(
            &t,
            Method::DELETE,
            &format!("/api/v1/integration-tokens/{id}"),
            &it_a,
            None,
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.text);
        call(
            &t,
            Method::DELETE,
            &format!("/api/v1/integration-tokens/{id}"),
            &it_a,
            None,
        )
        .await
        .assert_problem(409, "conflict");
        post(
            &t,
            "/api/v1/ingest/webhook",
            &secret,
            br#"{"dedup_key":"ups-1","status":"resolved"}"#,
        )
        .await
        .assert_problem(401, "invalid_integration_token");

        // Audited, without the secret.
        let audit = t.audit_all().await;
        let actions: Vec<_> = audit
            .iter()
            .filter(|r| r.entry.target_id == id)
            .map(|r| r.entry.action.as_str())
            .collect();
        assert_eq!(
            actions,
            ["integration_token.revoked", "integration_token.created"]
        );
        for r in &audit {
            let s = serde_json::to_string(&r.entry).expect("entry");
            assert!(!s.contains(&secret), "the secret is in the audit trail");
        }
        // The alert the webhook raised names the integration as its actor.
        let fired = audit
            .iter()
            .find(|r| r.entry.action == "alert.fired")
            .expect("alert.fired");
        assert!(
            fired
                .entry
                .actor_label
                .contains("Prometheus, Norfolk office"),
            "{}",
            fired.entry.actor_label
        );
        assert_eq!(fired.entry.client_id, Some(a));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_tokens_are_managed_on_the_clients_page() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        let s = t.sign_in(&w.it_a).await;
        let cred = s.cred();
        let r = t
            .send(t.req(Method::GET, &format!("/clients/{a}"), &cred))
            .await;
        assert!(
            r.text.contains(&format!("/clients/{a}/integrations")),
            "no link on the client's page"
        );
        let r = t
            .send(
                t.req(Method::POST, &format!("/clients/{a}/integrations"), &cred)
                    .form(&[
                        ("csrf", s.csrf.as_str()),
                        ("label", "Zabbix bridge"),
                        ("default_domain", "network"),
                    ]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let secret = r
            .text
            .split("<code id=\"new-token\" class=\"secret\">")
            .nth(1)
            .and_then(|x| x.split('<').next())
            .expect("the secret is shown")
            .to_string();
        assert!(secret.starts_with("tdi_"));
        assert!(
            r.text.contains("webhook_configs"),
            "no Alertmanager snippet"
        );
        // Shown once: the page does not show it again.
        let r = t
            .send(t.req(Method::GET, &format!("/clients/{a}/integrations"), &cred))
            .await;
        assert_eq!(r.status, 200);
        assert!(!r.text.contains(&secret));
        assert!(r.text.contains("Zabbix bridge"));
        let tokens = t
            .app
            .list_integration_tokens(&Actor::system(), Some(a), Page::new(0, 10))
            .await
            .expect("tokens")
            .items;
        assert_eq!(tokens.len(), 1);
        // Another client's admin cannot see or revoke it.
        let b = t.sign_in(&w.it_b).await;
        let r = t
            .send(t.req(
                Method::GET,
                &format!("/clients/{a}/integrations"),
                &b.cred(),
            ))
            .await;
        assert_eq!(r.status, 404);
        assert!(!r.text.contains("Zabbix bridge"));
        // Revoke on the page.
        let r = t
            .send(
                t.req(
                    Method::POST,
                    &format!("/clients/{a}/integrations/{}/revoke", tokens[0].id),
                    &cred,
                )
                .form(&[("csrf", s.csrf.as_str())]),
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.text);
        let (notice, error) = r.flash();
        assert!(error.is_empty(), "{error}");
        assert!(notice.contains("revoked"), "{notice}");
        let r = post(
            &t,
            "/api/v1/ingest/webhook",
            &secret,
            br#"{"dedup_key":"x","status":"firing","title":"t"}"#,
        )
        .await;
        r.assert_problem(401, "invalid_integration_token");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_alerts_are_routed_matched_refreshed_and_cleared() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        agree(&t, a, &w.it_a).await;
        let (nas, _) = t.enrolled_agent(&w.site_a, "nas-01.alderbrook.lan").await;
        let padmin = bearer(&t, &w.padmin, &[Capability::EndpointsWrite]).await;
        let (_, secret) = integration(&t, &padmin, a, "patching").await;

        let fire = am_payload(json!([
            {"status": "firing",
             "labels": {"alertname": "DiskFull", "instance": "nas-01:9100", "severity": "critical", "tandem_domain": "onsite_hardware"},
             "annotations": {"summary": "Disk almost full on nas-01", "description": "/srv is 97% full"},
             "startsAt": "2026-11-28T18:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "1111aaaa2222bbbb"},
            {"status": "firing",
             "labels": {"alertname": "UpdatesPending", "instance": "10.0.0.9:9100", "severity": "sev-x"},
             "annotations": {},
             "startsAt": "2026-11-28T18:00:00Z", "fingerprint": "3333cccc4444dddd"},
            {"status": "firing",
             "labels": {"alertname": "Odd", "tandem_domain": "astrology"},
             "startsAt": "2026-11-28T18:00:00Z", "fingerprint": "5555eeee6666ffff"}
        ]));
        let r = post(&t, "/api/v1/ingest/alertmanager", &secret, &fire).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let report = r.json();
        let results = report["results"].as_array().expect("results");
        assert_eq!(report["client_id"], a.to_string());
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|x| x["outcome"] == "raised"), "{report}");
        assert_eq!(results[0]["endpoint_id"], nas.to_string());
        assert_eq!(results[0]["domain"], "onsite_hardware");
        assert_eq!(results[1]["domain"], "patching");
        assert!(results[1]["endpoint_id"].is_null());
        assert_eq!(results[2]["domain"], "patching");
        let notes = |i: usize| results[i]["notes"].to_string();
        assert!(notes(1).contains("10.0.0.9"), "{}", notes(1));
        assert!(notes(1).contains("sev-x"), "{}", notes(1));
        assert!(notes(2).contains("astrology"), "{}", notes(2));

        let alerts = alerts_of(&t, a).await;
        assert_eq!(alerts.len(), 3);
        let disk = alerts
            .iter()
            .find(|x| x.dedup_key == "alertmanager:1111aaaa2222bbbb")
            .expect("disk alert");
        // The agreement gives on-site hardware to internal IT, patching to the provider.
        assert_eq!(disk.owner, Party::Internal);
        assert_eq!(disk.source, "alertmanager");
        assert_eq!(disk.endpoint_id, Some(nas));
        assert_eq!(disk.severity, Severity::Critical);
        assert_eq!(disk.title, "Disk almost full on nas-01");
        assert!(disk.summary.contains("/srv is 97% full"));
        assert_eq!(disk.grouping_key, "alertmanager:DiskFull");
        let updates = alerts
            .iter()
            .find(|x| x.dedup_key == "alertmanager:3333cccc4444dddd")
            .expect("updates alert");
        assert_eq!(updates.owner, Party::Provider);
        assert_eq!(updates.severity, Severity::Warning);
        assert_eq!(updates.title, "UpdatesPending");

        // Sent again (Alertmanager repeats): refreshed, not duplicated.
        let r = post(&t, "/api/v1/ingest/alertmanager", &secret, &fire).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.json()["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|x| x["outcome"] == "refreshed"));
        assert_eq!(alerts_of(&t, a).await.len(), 3);

        // Resolved: cleared; resolving what is not open says so.
        let resolve = am_payload(json!([
            {"status": "resolved", "labels": {"alertname": "DiskFull", "instance": "nas-01:9100"},
             "startsAt": "2026-11-28T18:00:00Z", "endsAt": "2026-11-28T18:05:00Z", "fingerprint": "1111aaaa2222bbbb"},
            {"status": "resolved", "labels": {"alertname": "Never"}, "fingerprint": "9999"}
        ]));
        let r = post(&t, "/api/v1/ingest/alertmanager", &secret, &resolve).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert_eq!(v["results"][0]["outcome"], "resolved");
        assert_eq!(v["results"][1]["outcome"], "not_open");
        let disk = alerts_of(&t, a)
            .await
            .into_iter()
            .find(|x| x.dedup_key == "alertmanager:1111aaaa2222bbbb")
            .expect("disk alert");
        assert_eq!(disk.state, AlertState::Resolved);

        // The token decides the client: B's token with the same fingerprint touches only B.
        let b_admin = bearer(&t, &w.it_b, &[Capability::EndpointsWrite]).await;
        let (_, b_secret) = integration(&t, &b_admin, w.client_b.id, "patching").await;
        let r = post(&t, "/api/v1/ingest/alertmanager", &b_secret, &fire).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["client_id"], w.client_b.id.to_string());
        let b_alerts = alerts_of(&t, w.client_b.id).await;
        assert_eq!(b_alerts.len(), 3);
        assert!(b_alerts.iter().all(|x| x.endpoint_id.is_none()), "B's alert matched A's endpoint");
        // No agreement in force for B: the client's own IT owns them, and says why.
        assert!(b_alerts.iter().all(|x| x.owner == Party::Internal));
        let a_open = alerts_of(&t, a)
            .await
            .into_iter()
            .filter(|x| x.state.is_open())
            .count();
        assert_eq!(a_open, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generic_webhook_raises_and_resolves() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        agree(&t, a, &w.it_a).await;
        let (sw, _) = t.enrolled_agent(&w.site_a, "core-switch").await;
        let admin = bearer(&t, &w.it_a, &[Capability::EndpointsWrite]).await;
        let (_, secret) = integration(&t, &admin, a, "onsite_hardware").await;
        let body = json!({"dedup_key": "switch-psu", "status": "firing", "title": "Switch PSU 2 failed",
                          "summary": "Redundant supply lost", "severity": "critical", "domain": "network",
                          "endpoint": "CORE-SWITCH:161"});
        let r = post(&t, "/api/v1/ingest/webhook", &secret, body.to_string().as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert_eq!(v["results"][0]["outcome"], "raised");
        assert_eq!(v["results"][0]["endpoint_id"], sw.to_string());
        let alert = alerts_of(&t, a).await.pop().expect("alert");
        assert_eq!(alert.dedup_key, "webhook:switch-psu");
        assert_eq!(alert.source, "webhook");
        assert_eq!(alert.owner, Party::Provider);
        assert_eq!(alert.severity, Severity::Critical);
        // A domain the agreement does not assign is refused, saying what to do.
        let bad = json!({"dedup_key": "x", "status": "firing", "title": "t", "domain": "astrology"});
        let p = post(&t, "/api/v1/ingest/webhook", &secret, bad.to_string().as_bytes())
            .await
            .assert_problem(400, "invalid_payload");
        assert_eq!(p["errors"][0]["field"], "domain");
        let r = post(
            &t,
            "/api/v1/ingest/webhook",
            &secret,
            br#"{"dedup_key":"switch-psu","status":"resolved"}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["results"][0]["outcome"], "resolved");
        assert_eq!(
            alerts_of(&t, a).await.pop().expect("alert").state,
            AlertState::Resolved
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_other_credentials_get_clear_problems() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        let admin = bearer(&t, &w.padmin, &Capability::ALL).await;
        let (_, secret) = integration(&t, &admin, a, "patching").await;
        let am = "/api/v1/ingest/alertmanager";
        let wh = "/api/v1/ingest/webhook";
        let cases: &[(&str, &[u8], &str)] = &[
            (am, b"", "body"),
            (am, b"not json at all", "body"),
            (am, b"[1,2,3]", "body"),
            (am, br#"{"version":"3","alerts":[]}"#, "version"),
            (am, br#"{"version":"4","alerts":[{"status":"pending","labels":{}}]}"#, "alerts.status"),
            (am, br#"{"version":"4","alerts":[{"status":"firing","labels":{},"startsAt":"yesterday"}]}"#, "alerts.startsAt"),
            (am, br#"{"version":"4","alerts":[{"status":"firing","labels":{"a":1}}]}"#, "body"),
            (wh, b"{", "body"),
            (wh, br#"{"status":"firing","title":"t"}"#, "body"),
            (wh, br#"{"dedup_key":"k","status":"firing"}"#, "title"),
            (wh, br#"{"dedup_key":"k","status":"firing","title":"t","severity":"apocalyptic"}"#, "severity"),
            (wh, br#"{"dedup_key":"k","status":"firing","title":"t","colour":"red"}"#, "body"),
        ];
        for (path, body, field) in cases {
            let r = post(&t, path, &secret, body).await;
            let p = r.assert_problem(400, "invalid_payload");
            assert_eq!(
                p["errors"][0]["field"], *field,
                "{path} {:?}: {}",
                String::from_utf8_lossy(body),
                r.text
            );
        }
        assert!(alerts_of(&t, a).await.is_empty(), "a malformed body raised an alert");

        // Too large: a problem, not a bare text error.
        let huge = vec![b' '; 300 * 1024];
        post(&t, am, &secret, &huge)
            .await
            .assert_problem(413, "body_too_large");

        // Only an integration token opens these routes.
        let good = am_payload(json!([{"status": "firing", "labels": {"alertname": "X"}}]));
        let session = t.sign_in(&w.padmin).await;
        let (_, enroll) = t.enrollment_token(&w.padmin, &w.site_a, None).await;
        for cred in [
            Cred::None,
            admin.clone(),
            session.cred(),
            Cred::Bearer(enroll),
            Cred::Bearer("tdi_not_a_token".into()),
        ] {
            let r = t
                .send(
                    t.api(Method::POST, am, &cred)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(good.clone()),
                )
                .await;
            r.assert_problem(401, "invalid_integration_token");
        }
        assert!(alerts_of(&t, a).await.is_empty());
        // And an integration token opens nothing else.
        let r = t
            .send(t.req(Method::GET, "/api/v1/me", &Cred::Bearer(secret.clone())))
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
        let r = t
            .send(t.req(Method::GET, &format!("/clients/{a}"), &Cred::Bearer(secret.clone())))
            .await;
        assert!(r.status == 401 || r.status.is_redirection(), "{}", r.status);
    })
    .await;
}

// ---- Debian's real Alertmanager ---------------------------------------------------------

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Kills the Alertmanager process when the test ends, also when it fails.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `probe` every 200 ms until it answers `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting ({}s) for {what}",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_alertmanager_delivers_firing_and_resolved_alerts() {
    if !std::path::Path::new(ALERTMANAGER).exists() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        panic!(
            "{ALERTMANAGER} is missing{}: install the Debian package prometheus-alertmanager (apt-get install prometheus-alertmanager); this test drives the real Alertmanager and is not skipped",
            if ci { " in CI" } else { "" }
        );
    }
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        let a = w.client_a.id;
        agree(&t, a, &w.it_a).await;
        let (nas, _) = t.enrolled_agent(&w.site_a, "nas-01").await;
        let admin = bearer(&t, &w.it_a, &[Capability::EndpointsWrite]).await;
        let (_, secret) = integration(&t, &admin, a, "patching").await;

        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = format!(
            "route:\n  receiver: tandem\n  group_by: ['alertname', 'instance']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: tandem\n    webhook_configs:\n      - url: {}/api/v1/ingest/alertmanager\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials: {secret}\n",
            t.base
        );
        let cfg_path = dir.path().join("alertmanager.yml");
        std::fs::write(&cfg_path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log");
        let child = std::process::Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start alertmanager");
        let mut running = Running(Some(child));
        let am = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let log_path = dir.path().join("alertmanager.log");
        let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();

        eventually(Duration::from_secs(60), "Alertmanager to be ready", || {
            let http = http.clone();
            let am = am.clone();
            async move {
                let r = http.get(format!("{am}/-/ready")).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;

        // Fire: on-site hardware, owned by internal IT around the clock.
        let started = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
        let labels = json!({"alertname": "DiskFull", "instance": "nas-01:9100", "severity": "critical", "tandem_domain": "onsite_hardware"});
        let annotations = json!({"summary": "Disk almost full on nas-01", "description": "/srv is 97% full"});
        let r = http
            .post(format!("{am}/api/v2/alerts"))
            .json(&json!([{"labels": labels, "annotations": annotations, "startsAt": started.to_string()}]))
            .send()
            .await
            .expect("post to alertmanager");
        assert!(r.status().is_success(), "alertmanager: {}", r.status());

        let alert = eventually(Duration::from_secs(90), "Tandem to hold the firing alert", || {
            let t = t.clone();
            async move {
                alerts_of(&t, a)
                    .await
                    .into_iter()
                    .find(|x| x.source == "alertmanager" && x.state.is_open())
            }
        })
        .await;
        assert_eq!(alert.owner, Party::Internal, "routed to the side the agreement names");
        assert_eq!(alert.domain, "onsite_hardware");
        assert_eq!(alert.endpoint_id, Some(nas));
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.title, "Disk almost full on nas-01");
        assert!(alert.dedup_key.starts_with("alertmanager:"));

        // Resolve: the same alert with endsAt in the past.
        let ended = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
        let r = http
            .post(format!("{am}/api/v2/alerts"))
            .json(&json!([{"labels": labels, "annotations": annotations, "startsAt": started.to_string(), "endsAt": ended.to_string()}]))
            .send()
            .await
            .expect("post to alertmanager");
        assert!(r.status().is_success(), "alertmanager: {}", r.status());
        let id = alert.id;
        let resolved = eventually(Duration::from_secs(90), "Tandem to resolve the alert", || {
            let t = t.clone();
            async move {
                alerts_of(&t, a)
                    .await
                    .into_iter()
                    .find(|x| x.id == id && x.state == AlertState::Resolved)
            }
        })
        .await;
        assert!(
            resolved
                .resolution
                .as_deref()
                .is_some_and(|r| r.contains("alertmanager reports it resolved")),
            "{:?}",
            resolved.resolution
        );
        assert_eq!(alerts_of(&t, a).await.len(), 1, "one alert, deduplicated; log:\n{}", log_text());

        // Stop it, waiting off the async threads.
        let mut child = running.0.take().expect("child");
        child.kill().expect("kill alertmanager");
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait for alertmanager");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_story_has_harbor_points_alertmanager() {
    for db in tandem_store::testing::all().await {
        let backend = db.backend().name();
        let app = tandem_app::App::new(db.store.clone(), tandem_app::Policy::default());
        app.seed_demo().await.expect("demo");
        let sys = Actor::system();
        let clients = app
            .list_clients(&sys, Page::new(0, 50))
            .await
            .expect("clients")
            .items;
        let hp = clients
            .iter()
            .find(|c| c.name == "Harbor Point Engineering")
            .expect("Harbor Point");
        let tokens = app
            .list_integration_tokens(&sys, Some(hp.id), Page::new(0, 10))
            .await
            .expect("tokens")
            .items;
        assert_eq!(tokens.len(), 1, "{backend}");
        assert!(tokens[0].label.contains("(demo)"));
        let alert = alerts_of_app(&app, hp.id)
            .await
            .into_iter()
            .find(|a| a.source == "alertmanager")
            .expect("the demo's Alertmanager alert");
        // Backup is the provider's around the clock in Harbor Point's agreement.
        assert_eq!(alert.owner, Party::Provider, "{backend}");
        assert_eq!(alert.domain, "backup");
        assert!(
            alert.endpoint_id.is_some(),
            "hp-nas-01 not matched on {backend}"
        );
        assert!(alert.summary.contains("(demo)"));
        db.cleanup().await;
    }
}

async fn alerts_of_app(app: &tandem_app::App, client: ClientId) -> Vec<Alert> {
    app.list_alerts(
        &Actor::system(),
        &AlertFilter {
            client: Some(client),
            ..Default::default()
        },
        Page::new(0, 500),
    )
    .await
    .expect("alerts")
    .items
}
