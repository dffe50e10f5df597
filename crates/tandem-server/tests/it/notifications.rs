//! Notification channels end to end (issue #6), on every backend: a real HTTP receiver on
//! loopback checks the webhook's HMAC signature and the bodies of the webhook, Slack, Teams and
//! PagerDuty (trigger then resolve with the same dedup key) channels; events go to the side
//! that owns the alert; a receiver answering 500 then 200 gets the delivery retried and
//! accepted once; an always-500 receiver makes it fail, visible and re-sendable; an e-mail
//! channel sends through the real SMTP path; the other tenant and the other side are refused;
//! the SSRF rule refuses private destinations unless the operator allows them.

use crate::common;
use crate::common::call;

use crate::common::{bearer, run, Cred, TestApp};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_app::{Actor, MailSettings, NotifySettings, RaiseAlert};
use tandem_domain::authz::Capability;
use tandem_domain::directory::User;
use tandem_domain::monitoring::Severity;
use tandem_domain::notify::{verify_signature, RetryPolicy};
use tandem_domain::ClientId;

// ---- a webhook receiver on loopback ------------------------------------------------------

#[derive(Clone, Debug)]
struct Got {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    answered: u16,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    /// Deliveries `/flaky` has refused once.
    refused_once: Arc<Mutex<HashSet<String>>>,
    /// Whether `/down` is down.
    down: Arc<AtomicBool>,
}

async fn receive(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap) {
    let path = uri.path().to_string();
    let mut out = HeaderMap::new();
    let status = if path.starts_with("/flaky") {
        let id = headers
            .get("tandem-delivery-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if r.refused_once.lock().unwrap().insert(id) {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    } else if path.starts_with("/down") && r.down.load(Ordering::SeqCst) {
        out.insert("retry-after", "0".parse().unwrap());
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    r.got.lock().unwrap().push(Got {
        path,
        headers,
        body: body.to_vec(),
        answered: status.as_u16(),
    });
    (status, out)
}

async fn receiver() -> (String, Receiver) {
    let r = Receiver::default();
    r.down.store(true, Ordering::SeqCst);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = l.local_addr().expect("receiver addr");
    let app = axum::Router::new().fallback(receive).with_state(r.clone());
    tokio::spawn(async move {
        axum::serve(l, app).await.expect("receiver");
    });
    (format!("http://{addr}"), r)
}

impl Receiver {
    /// Waits (up to 30 s) until `pred` holds for what arrived at `path`; answers those.
    async fn wait(&self, path: &str, pred: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        for _ in 0..300 {
            let at: Vec<Got> = self
                .got
                .lock()
                .unwrap()
                .iter()
                .filter(|g| g.path == path)
                .cloned()
                .collect();
            if pred(&at) {
                return at;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen: Vec<(String, String)> = self
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g.path.clone(),
                    String::from_utf8_lossy(&g.body).chars().take(120).collect(),
                )
            })
            .collect();
        panic!("nothing as expected at {path}; the receiver has {seen:?}");
    }
    fn at(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }
}

// ---- Tandem's side -------------------------------------------------------------------------

/// Notification settings for tests (private destinations allowed: the receiver is on
/// loopback; quick retries) and a running sender.
fn notify_on(t: &TestApp) -> tokio::task::JoinHandle<()> {
    t.app.set_notify(NotifySettings {
        public_url: t.base.clone(),
        allow_private: true,
        retry: RetryPolicy {
            base_ms: 100,
            max_ms: 400,
            max_attempts: 3,
        },
    });
    tokio::spawn(tandem_server::notify::run(
        t.app.clone(),
        tandem_server::notify::Sender::new(true).expect("sender"),
        "test-notify".into(),
        Duration::from_millis(30),
    ))
}

async fn manager(t: &TestApp, u: &User) -> Cred {
    bearer(
        t,
        u,
        &[
            Capability::EndpointsWrite,
            Capability::EndpointsRead,
            Capability::ClientsRead,
        ],
    )
    .await
}

async fn channel(t: &TestApp, cred: &Cred, body: Value) -> Value {
    let r = call(
        t,
        Method::POST,
        "/api/v1/notification-channels",
        cred,
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

fn raise(client: ClientId, key: &str, domain: &str, title: &str) -> RaiseAlert {
    RaiseAlert {
        client_id: client,
        dedup_key: key.into(),
        grouping_key: None,
        source: "test".into(),
        endpoint_id: None,
        check_key: None,
        domain: domain.into(),
        severity: Severity::Critical,
        title: title.into(),
        summary: "/srv has 2 GiB free".into(),
        renotify_minutes: None,
        ticket: Default::default(),
    }
}

/// Signs `client`'s agreement: patching is the provider's; on-site hardware is the client's
/// own IT's (its calendar open all week).
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
        "assignments": [row("onsite_hardware", "internal"), row("patching", "provider")]
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
async fn channels_of_the_owning_side_get_signed_webhooks_slack_teams_and_pagerduty() {
    run(|t: Arc<TestApp>| async move {
        let sender = notify_on(&t);
        let (rx, got) = receiver().await;
        let a = t.w.client_a.id;
        agree(&t, a, &t.w.it_a).await;
        let padmin = manager(&t, &t.w.padmin).await;
        let it_a = manager(&t, &t.w.it_a).await;
        let it_b = manager(&t, &t.w.it_b).await;

        // The provider's channels for client A, and the client's own IT's webhook.
        let hook = channel(&t, &padmin, json!({"client_id": a, "kind": "webhook", "name": "Provider hook", "url": format!("{rx}/p/webhook")})).await;
        let secret = hook["secret"].as_str().expect("the signing secret, once").to_string();
        assert!(secret.starts_with("tdwh_"));
        assert_eq!(hook["channel"]["side"], "provider");
        assert_eq!(hook["channel"]["has_secret"], true);
        let slack = channel(&t, &padmin, json!({"client_id": a, "kind": "slack", "name": "NOC Slack", "url": format!("{rx}/p/slack/T000/B000/XXXX")})).await;
        assert_eq!(slack["channel"]["url"], "http://127.0.0.1/…", "a Slack URL is a secret: shown only to its host");
        assert!(slack["secret"].is_null());
        channel(&t, &padmin, json!({"client_id": a, "kind": "teams", "name": "NOC Teams", "url": format!("{rx}/p/teams")})).await;
        let pd = channel(&t, &padmin, json!({"client_id": a, "kind": "pagerduty", "name": "PagerDuty", "url": format!("{rx}/p/pd"), "routing_key": "R0UTINGKEY0123456789abcdef012345",
            "subscription": {"kinds": ["alert.fired", "alert.acknowledged", "alert.resolved"], "min_severity": "warning"}})).await;
        assert!(!pd.to_string().contains("R0UTINGKEY"), "the routing key is never shown");
        let internal = channel(&t, &it_a, json!({"client_id": a, "kind": "webhook", "name": "Internal hook", "url": format!("{rx}/i/webhook")})).await;
        assert_eq!(internal["channel"]["side"], "internal");
        let internal_id = internal["channel"]["id"].as_str().unwrap().to_string();

        // Each side sees only its own channels; the other tenant sees none of them.
        let r = call(&t, Method::GET, &format!("/api/v1/notification-channels?client_id={a}"), &it_a, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
        let r = call(&t, Method::GET, &format!("/api/v1/notification-channels?client_id={a}"), &padmin, None).await;
        assert_eq!(r.json()["items"].as_array().unwrap().len(), 4);
        let hook_id = hook["channel"]["id"].as_str().unwrap().to_string();
        call(&t, Method::GET, &format!("/api/v1/notification-channels/{hook_id}"), &it_a, None).await.assert_problem(404, "not_found");
        call(&t, Method::GET, &format!("/api/v1/notification-channels/{internal_id}"), &it_b, None).await.assert_problem(404, "not_found");
        call(&t, Method::PATCH, &format!("/api/v1/notification-channels/{internal_id}"), &it_b, Some(json!({"enabled": false}))).await.assert_problem(404, "not_found");
        call(&t, Method::POST, &format!("/api/v1/notification-channels/{internal_id}/test"), &it_b, None).await.assert_problem(404, "not_found");
        call(&t, Method::DELETE, &format!("/api/v1/notification-channels/{internal_id}"), &it_b, None).await.assert_problem(404, "not_found");
        let r = call(&t, Method::GET, &format!("/api/v1/notification-channels?client_id={a}"), &it_b, None).await;
        assert_eq!(r.status, 404, "{}", r.text);
        let r = call(&t, Method::POST, "/api/v1/notification-channels", &it_b, Some(json!({"client_id": a, "kind": "webhook", "name": "Sneaky", "url": format!("{rx}/b")}))).await;
        assert_eq!(r.status, 404, "{}", r.text);
        let r = call(&t, Method::GET, "/api/v1/notification-deliveries", &it_b, None).await;
        assert_eq!(r.status, 200);
        assert!(r.json()["items"].as_array().unwrap().is_empty());

        // A patching alert is the provider's: its four channels hear of it, the internal one does not.
        let mon = Actor::monitoring();
        let fired = t.app.raise_alert(&mon, raise(a, "patch:fs01", "patching", "Patches overdue on fs01")).await.expect("raise");
        let key = format!("alert:{}", fired.alert.id);
        let w = got.wait("/p/webhook", |g| !g.is_empty()).await;
        let g = &w[0];
        let sig = g.header("tandem-signature");
        let now = tandem_domain::Timestamp::now().0 / 1_000_000;
        assert!(verify_signature(secret.as_bytes(), &sig, &g.body, now, 300), "signature {sig} verifies");
        assert!(!verify_signature(b"wrong", &sig, &g.body, now, 300));
        let body = g.json();
        assert_eq!(body["schema"], "tandem.notification/1");
        assert_eq!(body["kind"], "alert.fired");
        assert_eq!(body["key"], key);
        assert_eq!(body["side"], "provider");
        assert_eq!(body["severity"], "critical");
        assert_eq!(body["client_name"], common::CLIENT_A_NAME);
        assert_eq!(body["alert"]["domain"], "patching");
        assert_eq!(body["link"], format!("{}/alerts/{}", t.base, fired.alert.id));
        assert_eq!(g.header("tandem-event-kind"), "alert.fired");
        assert_eq!(g.header("content-type"), "application/json");

        let s = got.wait("/p/slack/T000/B000/XXXX", |g| !g.is_empty()).await[0].json();
        assert!(s["text"].as_str().unwrap().contains("Patches overdue on fs01"));
        assert_eq!(s["blocks"][0]["type"], "header");
        assert!(s["blocks"].as_array().unwrap().iter().any(|b| b["type"] == "actions"));
        let m = got.wait("/p/teams", |g| !g.is_empty()).await[0].json();
        assert_eq!(m["@type"], "MessageCard");
        assert_eq!(m["@context"], "https://schema.org/extensions");
        assert!(m["sections"][0]["facts"].as_array().unwrap().iter().any(|f| f["name"] == "Owning side" && f["value"] == "Provider"));
        let p = got.wait("/p/pd", |g| !g.is_empty()).await[0].json();
        assert_eq!(p["event_action"], "trigger");
        assert_eq!(p["routing_key"], "R0UTINGKEY0123456789abcdef012345");
        assert_eq!(p["dedup_key"], key);
        assert_eq!(p["payload"]["severity"], "critical");
        assert!(p["payload"]["summary"].as_str().unwrap().contains("Patches overdue"));
        assert!(p["payload"]["source"].is_string());

        // Resolving it resolves the PagerDuty incident with the same dedup key.
        t.app.clear_alert(&mon, a, "patch:fs01", "patched").await.expect("clear");
        let p = got.wait("/p/pd", |g| g.len() >= 2).await;
        let resolve = p[1].json();
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(resolve["dedup_key"], key);
        assert!(resolve.get("payload").is_none());
        assert_eq!(got.wait("/p/webhook", |g| g.len() >= 2).await[1].json()["kind"], "alert.resolved");

        // An on-site hardware alert is the client's own IT's.
        t.app.raise_alert(&mon, raise(a, "hw:fs01", "onsite_hardware", "Fan failed on fs01")).await.expect("raise");
        let i = got.wait("/i/webhook", |g| !g.is_empty()).await;
        assert_eq!(i[0].json()["side"], "internal");
        assert!(i.iter().all(|g| g.json()["alert"]["domain"] == "onsite_hardware"), "the internal channel never heard of patching");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(got.at("/p/webhook").iter().all(|g| g.json()["alert"]["domain"] == "patching"), "the provider's channels never heard of on-site hardware");

        // Deliveries are listed per side, filterable and exportable.
        let r = call(&t, Method::GET, &format!("/api/v1/notification-deliveries?client_id={a}&status=delivered"), &padmin, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let items = r.json()["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 8, "four channels × fired and resolved: {items:?}");
        assert!(items.iter().all(|d| d["side"] == "provider" && d["attempts"] == 1 && d["last_status"] == 200));
        let r = call(&t, Method::GET, &format!("/api/v1/notification-deliveries?format=csv&channel_id={hook_id}"), &padmin, None).await;
        assert!(r.content_type().starts_with("text/csv"));
        assert_eq!(r.text.lines().count(), 3, "{}", r.text);
        call(&t, Method::GET, "/api/v1/notification-deliveries?status=lost", &padmin, None).await.assert_problem(400, "invalid_query");

        // The web page shows the viewer's side's channels; the other tenant is refused.
        let s = t.sign_in(&t.w.it_a).await;
        let r = t.send(t.req(Method::GET, &format!("/clients/{a}/notifications"), &s.cred())).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.text.contains("Internal hook"), "{}", r.text);
        assert!(!r.text.contains("Provider hook"), "{}", r.text);
        assert!(!r.text.contains(&secret), "the secret is never shown again");
        let sb = t.sign_in(&t.w.it_b).await;
        let r = t.send(t.req(Method::GET, &format!("/clients/{a}/notifications"), &sb.cred())).await;
        assert_eq!(r.status, 404);

        // Nothing secret in the audit trail.
        let audit = t.audit_all().await;
        assert!(audit.iter().any(|e| e.entry.action == "notification_channel.created"));
        let dump = format!("{audit:?}");
        assert!(!dump.contains(&secret) && !dump.contains("R0UTINGKEY") && !dump.contains("B000/XXXX"));
        sender.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_receiver_is_retried_a_dead_one_fails_visibly_and_is_resent() {
    run(|t: Arc<TestApp>| async move {
        let sender = notify_on(&t);
        let (rx, got) = receiver().await;
        let a = t.w.client_a.id;
        let it_a = manager(&t, &t.w.it_a).await;
        let flaky = channel(&t, &it_a, json!({"client_id": a, "kind": "webhook", "name": "Flaky", "url": format!("{rx}/flaky")})).await;
        let flaky_id = flaky["channel"]["id"].as_str().unwrap().to_string();
        let down = channel(&t, &it_a, json!({"client_id": a, "kind": "webhook", "name": "Down", "url": format!("{rx}/down")})).await;
        let down_id = down["channel"]["id"].as_str().unwrap().to_string();

        // No agreement: the client's own IT owns the alert, so both its channels hear of it.
        t.app.raise_alert(&Actor::monitoring(), raise(a, "ups:1", "onsite_hardware", "UPS on battery")).await.expect("raise");
        let f = got.wait("/flaky", |g| g.iter().any(|x| x.answered == 200)).await;
        assert_eq!(f.iter().map(|g| g.answered).collect::<Vec<_>>(), vec![500, 200], "retried after the 500, accepted once");
        assert_eq!(f[0].header("tandem-delivery-id"), f[1].header("tandem-delivery-id"));
        assert_eq!(f[0].header("tandem-event-id"), f[1].header("tandem-event-id"));
        let r = call(&t, Method::GET, &format!("/api/v1/notification-deliveries?channel_id={flaky_id}"), &it_a, None).await;
        let d = &r.json()["items"][0];
        assert_eq!(d["status"], "delivered");
        assert_eq!(d["attempts"], 2);

        // Always 500: three attempts, then failed with the last answer shown.
        got.wait("/down", |g| g.len() >= 3).await;
        let mut failed = Value::Null;
        for _ in 0..100 {
            let r = call(&t, Method::GET, &format!("/api/v1/notification-deliveries?channel_id={down_id}&status=failed"), &it_a, None).await;
            if let Some(d) = r.json()["items"].as_array().and_then(|i| i.first().cloned()) {
                failed = d;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(failed["attempts"], 3, "{failed}");
        assert_eq!(failed["last_status"], 500);
        assert!(failed["last_error"].as_str().unwrap().starts_with("HTTP 500"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(got.at("/down").len(), 3, "no attempt after giving up");
        // Visible on the page too.
        let s = t.sign_in(&t.w.it_a).await;
        let r = t.send(t.req(Method::GET, &format!("/clients/{a}/notifications?status=failed"), &s.cred())).await;
        assert_eq!(r.status, 200);
        assert!(r.text.contains("HTTP 500") && r.text.contains("Send again"));

        // Only a failed delivery is re-sent; the other tenant cannot.
        let id = failed["id"].as_str().unwrap().to_string();
        let it_b = manager(&t, &t.w.it_b).await;
        call(&t, Method::POST, &format!("/api/v1/notification-deliveries/{id}/resend"), &it_b, None).await.assert_problem(404, "not_found");
        got.down.store(false, Ordering::SeqCst);
        let r = call(&t, Method::POST, &format!("/api/v1/notification-deliveries/{id}/resend"), &it_a, None).await;
        assert_eq!(r.status, 202, "{}", r.text);
        assert_eq!(r.json()["status"], "pending");
        got.wait("/down", |g| g.iter().any(|x| x.answered == 200)).await;
        for _ in 0..100 {
            let r = call(&t, Method::GET, &format!("/api/v1/notification-deliveries?channel_id={down_id}"), &it_a, None).await;
            if r.json()["items"][0]["status"] == "delivered" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = call(&t, Method::GET, &format!("/api/v1/notification-deliveries?channel_id={down_id}"), &it_a, None).await;
        assert_eq!(r.json()["items"][0]["status"], "delivered");
        let r = call(&t, Method::POST, &format!("/api/v1/notification-deliveries/{id}/resend"), &it_a, None).await;
        r.assert_problem(409, "conflict");
        assert!(t.audit_all().await.iter().any(|e| e.entry.action == "notification_delivery.resent"));

        // Disabled channels hear nothing; the test button still reaches them.
        let r = call(&t, Method::PATCH, &format!("/api/v1/notification-channels/{flaky_id}"), &it_a, Some(json!({"enabled": false}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["channel"]["enabled"], false);
        let before = got.at("/flaky").len();
        t.app.raise_alert(&Actor::monitoring(), raise(a, "ups:2", "onsite_hardware", "UPS 2 on battery")).await.expect("raise");
        got.wait("/down", |g| g.iter().filter(|x| x.json()["title"] == "UPS 2 on battery").count() == 1).await;
        assert_eq!(got.at("/flaky").len(), before);
        let r = call(&t, Method::POST, &format!("/api/v1/notification-channels/{flaky_id}/test"), &it_a, None).await;
        assert_eq!(r.status, 202, "{}", r.text);
        let f = got.wait("/flaky", |g| g.iter().filter(|x| x.json()["kind"] == "test").any(|x| x.answered == 200)).await;
        assert!(f.iter().any(|x| x.json()["kind"] == "test"));

        // Deleting a channel keeps its history.
        let r = call(&t, Method::DELETE, &format!("/api/v1/notification-channels/{flaky_id}"), &it_a, None).await;
        assert_eq!(r.status, 204);
        call(&t, Method::GET, &format!("/api/v1/notification-channels/{flaky_id}"), &it_a, None).await.assert_problem(404, "not_found");
        let r = call(&t, Method::GET, &format!("/api/v1/notification-deliveries?channel_id={flaky_id}"), &it_a, None).await;
        assert!(!r.json()["items"].as_array().unwrap().is_empty());
        sender.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_unless_the_operator_allows_them() {
    run(|t: Arc<TestApp>| async move {
        // No settings: the default refuses private, loopback and link-local destinations.
        let a = t.w.client_a.id;
        let it_a = manager(&t, &t.w.it_a).await;
        for url in ["http://127.0.0.1:9/x", "https://169.254.169.254/latest/meta-data", "https://[::1]/x", "https://localhost/x", "http://hooks.example.test/x", "ftp://hooks.example.test/x"] {
            let r = call(&t, Method::POST, "/api/v1/notification-channels", &it_a, Some(json!({"client_id": a, "kind": "webhook", "name": "Inside", "url": url}))).await;
            assert_eq!(r.status, 422, "{url}: {}", r.text);
        }
        let r = call(&t, Method::POST, "/api/v1/notification-channels", &it_a, Some(json!({"client_id": a, "kind": "email", "name": "Mail", "addresses": "not-an-address"}))).await;
        assert_eq!(r.status, 422, "{}", r.text);
        let r = call(&t, Method::POST, "/api/v1/notification-channels", &it_a, Some(json!({"client_id": a, "kind": "pagerduty", "name": "PD"}))).await;
        assert_eq!(r.status, 422, "a PagerDuty channel needs its routing key: {}", r.text);
        let r = call(&t, Method::POST, "/api/v1/notification-channels", &it_a, Some(json!({"kind": "webhook", "name": "Everyone", "url": "https://hooks.example.test/x"}))).await;
        assert_eq!(r.status, 403, "only provider admins make provider-wide channels: {}", r.text);
        // A public https URL is fine; PagerDuty defaults to the Events API v2.
        let pd = channel(&t, &it_a, json!({"client_id": a, "kind": "pagerduty", "name": "PD", "routing_key": "abc123"})).await;
        assert_eq!(pd["channel"]["url"], "https://events.pagerduty.com/v2/enqueue");
        // The sender refuses a private destination at send time too (a channel saved while
        // the operator allowed it, or a name that resolves inside).
        // This machine's own name resolves to a loopback or private address on every host
        // the tests run on; it is not caught by the URL check, only by the resolver.
        let inside = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_string();
        let resolves_inside = !inside.is_empty()
            && tokio::net::lookup_host((inside.as_str(), 0))
                .await
                .map(|mut a| a.any(|a| !tandem_domain::notify::ip_allowed(a.ip(), false)))
                .unwrap_or(false);
        assert!(resolves_inside, "this host's name {inside:?} should resolve to a private address");
        let s = tandem_server::notify::Sender::new(false).expect("sender");
        let mut e = tandem_domain::notify::Event::new(tandem_domain::notify::EventKind::Test, tandem_domain::Timestamp::now(), tandem_domain::scope::Party::Internal, Severity::Info, "t", "k");
        e.client_id = Some(a);
        let o = tandem_app::Outgoing {
            delivery: tandem_domain::notify::Delivery {
                id: tandem_domain::DeliveryId::new(),
                channel_id: tandem_domain::ChannelId::new(),
                client_id: Some(a),
                side: tandem_domain::scope::Party::Internal,
                event_id: e.id.clone(),
                event_kind: e.kind,
                event_key: "k".into(),
                severity: Severity::Info,
                status: tandem_domain::notify::DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: tandem_domain::Timestamp::now(),
                last_error: None,
                last_status: None,
                created_at: tandem_domain::Timestamp::now(),
                delivered_at: None,
            },
            kind: tandem_domain::notify::ChannelKind::Webhook,
            url: format!("https://{inside}:1/x"),
            secret: Some("s".into()),
            event: e,
            claim: "c".into(),
        };
        match s.post(&o).await {
            tandem_app::Outcome::Failed { error, .. } => assert!(error.contains("private") || error.contains("resolve"), "{error}"),
            other => panic!("posted to a private address: {other:?}"),
        }
    })
    .await;
}

// ---- e-mail through the real SMTP path ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_channel_mails_through_the_outbox_and_smtp() {
    run(|t: Arc<TestApp>| async move {
        let notifier = notify_on(&t);
        let sink = common::smtp::sink().await;
        let addr = sink.addr;
        const FROM: &str = "Tandem <help@help.example.test>";
        t.app.set_mail(MailSettings::new(FROM, Some("help.example.test"), &t.base).expect("mail settings"));
        let out = tandem_server::mail::sender::Outbound::new(&format!("smtp://{addr}"), FROM).expect("outbound");
        let mailer = tokio::spawn(tandem_server::mail::sender::run(t.app.clone(), out, "test-mail".into(), Duration::from_millis(50)));
        let a = t.w.client_a.id;
        let it_a = manager(&t, &t.w.it_a).await;
        let ch = channel(&t, &it_a, json!({"client_id": a, "kind": "email", "name": "Ops mail", "addresses": "Ops@Example.test, noc@example.test",
            "subscription": {"kinds": [], "min_severity": "critical"}})).await;
        assert_eq!(ch["channel"]["addresses"], json!(["ops@example.test", "noc@example.test"]));
        // A warning is below the channel's filter; a critical alert is mailed to both.
        let mut warn = raise(a, "disk:warn", "onsite_hardware", "Disk at 80% on fs02");
        warn.severity = Severity::Warning;
        t.app.raise_alert(&Actor::monitoring(), warn).await.expect("raise");
        t.app.raise_alert(&Actor::monitoring(), raise(a, "disk:crit", "onsite_hardware", "Disk full on fs02")).await.expect("raise");
        let ops = sink.wait_for("ops@example.test", "Disk full on fs02").await;
        sink.wait_for("noc@example.test", "Disk full on fs02").await;
        assert!(ops.body().contains(&format!("{}/alerts/", t.base)), "the link is absolute");
        assert!(ops.body().contains("Owning side: Internal IT"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(sink.all().len(), 2, "the warning is below the channel's filter");
        assert!(sink.all().iter().all(|m| !m.subject().contains("Disk at 80%")));
        // The test button mails too.
        let id = ch["channel"]["id"].as_str().unwrap();
        let r = call(&t, Method::POST, &format!("/api/v1/notification-channels/{id}/test"), &it_a, None).await;
        assert_eq!(r.status, 202, "{}", r.text);
        let m = sink.wait_for("ops@example.test", "Test notification").await;
        assert!(m.body().contains("the channel works"));
        notifier.abort();
        mailer.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_warnings_and_breaches_reach_the_owning_sides_channels_once_each() {
    run(|t: Arc<TestApp>| async move {
        let sender = notify_on(&t);
        let (rx, got) = receiver().await;
        let a = t.w.client_a.id;
        agree(&t, a, &t.w.it_a).await;
        let padmin = manager(&t, &t.w.padmin).await;
        let it_a = manager(&t, &t.w.it_a).await;
        channel(&t, &padmin, json!({"client_id": a, "kind": "webhook", "name": "Provider hook", "url": format!("{rx}/p/webhook")})).await;
        channel(&t, &it_a, json!({"client_id": a, "kind": "webhook", "name": "Internal hook", "url": format!("{rx}/i/webhook")})).await;

        // A tight P3 policy, and a ticket in a domain the client's own IT owns.
        let desk = bearer(&t, &t.w.it_a, &[Capability::TicketsRead, Capability::TicketsWrite, Capability::ClientsRead, Capability::ScopeRead, Capability::ScopeWrite, Capability::UsersRead]).await;
        let r = call(&t, Method::PUT, &format!("/api/v1/clients/{a}/sla-policy/P3"), &desk,
            Some(json!({"response_minutes": 10, "resolution_minutes": 100, "warn_percent": 50}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = call(&t, Method::POST, "/api/v1/tickets", &desk,
            Some(json!({"subject": "Badge reader dead", "client_id": a, "requester_id": t.w.end_a.id, "domain": "onsite_hardware"}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let ticket = r.json();
        let id = ticket["id"].as_str().unwrap().to_string();

        // Halfway to the response target: one warning, to the internal side's channel.
        let start = tandem_domain::Timestamp::now();
        assert_eq!(t.app.sweep_sla(start.plus_seconds(6 * 60)).await.unwrap(), 1);
        let w = got.wait("/i/webhook", |g| !g.is_empty()).await;
        let body = w[0].json();
        assert_eq!(body["kind"], "ticket.sla_warning", "{body}");
        assert_eq!(body["side"], "internal");
        assert_eq!(body["severity"], "warning");
        assert_eq!(body["ticket"]["id"], id.as_str());
        assert_eq!(body["key"], format!("ticket:{id}:first_response"));
        assert_eq!(body["link"], format!("{}/tickets/{id}", t.base));

        // An hour on: the response breach and the resolution warning, each once even when
        // the sweep runs again.
        assert_eq!(t.app.sweep_sla(start.plus_seconds(60 * 60)).await.unwrap(), 2);
        assert_eq!(t.app.sweep_sla(start.plus_seconds(60 * 60)).await.unwrap(), 0);
        let w = got.wait("/i/webhook", |g| g.len() >= 3).await;
        let mut kinds: Vec<String> = w.iter().map(|g| g.json()["kind"].as_str().unwrap_or("").to_string()).collect();
        kinds.sort();
        assert_eq!(kinds, ["ticket.sla_breach", "ticket.sla_warning", "ticket.sla_warning"]);
        let breach = w.iter().map(|g| g.json()).find(|b| b["kind"] == "ticket.sla_breach").unwrap();
        assert_eq!(breach["severity"], "critical");
        assert_eq!(breach["key"], format!("ticket:{id}:first_response"));

        // The provider does not own this ticket: its channel heard nothing.
        assert!(got.at("/p/webhook").is_empty(), "the provider's channel heard of the internal side's ticket");
        sender.abort();
    })
    .await;
}
