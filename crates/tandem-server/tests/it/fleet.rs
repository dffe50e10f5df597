//! Endpoints over real HTTP: enrollment tokens, enrollment, signed check-ins (idempotent,
//! acknowledged after commit), the fleet list with its filters and CSV, the change
//! timeline, and who sees what. Runs on every backend.

use crate::common::{run, Cred, Resp, TestApp};
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tandem_agent_protocol::{session_mac, signing_payload, CHECKIN_PATH, SESSION_PATH};
use tandem_domain::authz::Capability;
use tandem_domain::EndpointId;

fn now_secs() -> i64 {
    tandem_domain::Timestamp::now().0 / tandem_domain::Timestamp::SECOND
}

/// Sends a check-in body signed by `key` (at `ts`, default now).
async fn checkin(
    t: &TestApp,
    id: EndpointId,
    key: &SigningKey,
    body: &Value,
    ts: Option<i64>,
) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap();
    t.send(t.signed_agent_req(CHECKIN_PATH, id, key, bytes, ts))
        .await
}

fn inventory(packages: &[(&str, &str)], firewall: bool, security: u32, admins: &[&str]) -> Value {
    json!({
        "system": {"os_family": "linux", "distribution_id": "debian", "distribution": "Debian GNU/Linux 12 (bookworm)",
                   "distribution_version": "12", "kernel": "6.1.0-26-amd64", "arch": "x86_64", "hostname": "hp-cad-07",
                   "reboot_required": security > 0, "reboot_required_packages": [], "time_synchronized": true},
        "packages": {"packages": packages.iter().map(|(n, v)| json!({"name": n, "version": v, "arch": "amd64", "manager": "dpkg"})).collect::<Vec<_>>()},
        "updates": {"manager": "apt", "pending": (0..security).map(|i| json!({"name": format!("libsec{i}"), "current_version": "1", "candidate_version": "2", "security": true})).collect::<Vec<_>>(),
                    "security_count": security, "checked_at": "2026-11-28T10:00:00Z"},
        "users": {"users": [{"name": "dana", "uid": 1000, "shell": "/bin/bash", "home": "/home/dana"}],
                  "admin_groups": {"sudo": admins}},
        "firewall": {"enabled": firewall},
        "not_collected": [{"field": "hardware", "reason": "permission denied reading /sys/class/dmi/id/product_serial"}]
    })
}

fn message(seq: u64, body: Value) -> Value {
    let mut m = json!({"seq": seq, "collected_at": "2026-11-28T10:00:00Z"});
    m["body"] = body;
    m
}

fn heartbeat() -> Value {
    json!({"kind": "heartbeat", "uptime_seconds": 3600, "cpu_percent": 12.5, "memory_total_bytes": 8_000_000_000u64,
           "memory_available_bytes": 6_000_000_000u64, "swap_total_bytes": 0, "swap_free_bytes": 0,
           "load1": 0.5, "load5": 0.4, "load15": 0.3,
           "disks": [{"mount": "/", "filesystem": "ext4", "total_bytes": 100_000_000_000u64, "free_bytes": 40_000_000_000u64}]})
}

fn full(inv: Value) -> Value {
    json!({"kind": "inventory", "full": true, "sections": inv})
}

async fn reader(t: &TestApp, u: &tandem_domain::directory::User) -> Cred {
    Cred::Bearer(
        t.token_for(
            u,
            &[
                Capability::EndpointsRead,
                Capability::EndpointsWrite,
                Capability::ClientsRead,
            ],
            None,
        )
        .await
        .1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrolls_checks_in_and_both_sides_see_the_same_endpoint() {
    run(|t: Arc<TestApp>| async move {
        let w = &t.w;
        // The client's IT admin makes a single-use token through the API.
        let it_a = reader(&t, &w.it_a).await;
        let r = t
            .send(t.api(Method::POST, &format!("/api/v1/clients/{}/enrollment-tokens", w.client_a.id), &it_a).json(&json!({
                "site_id": w.site_a.id, "label": "CAD workstation", "max_uses": 1, "expires_in_hours": 24
            })))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let created = r.json();
        let secret = created["secret"].as_str().unwrap().to_string();
        assert!(secret.starts_with("tde_"));
        assert!(created["enroll_command"].as_str().unwrap().contains(&secret));

        // The agent enrolls with its own key.
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let enroll_body = |token: &str, key: &SigningKey| json!({
            "protocol": 1, "token": token,
            "public_key": base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()),
            "hostname": "hp-cad-07", "os": "linux", "arch": "x86_64", "agent_version": "0.1.0"
        });
        let r = t.send(t.api(Method::POST, "/agent/v1/enroll", &Cred::None).json(&enroll_body(&secret, &key))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id: EndpointId = r.json()["agent_id"].as_str().unwrap().parse().unwrap();
        // Single use: a second machine is refused, and so is a made-up token.
        let other = SigningKey::from_bytes(&[8u8; 32]);
        for token in [secret.as_str(), "tde_made_up"] {
            let r = t.send(t.api(Method::POST, "/agent/v1/enroll", &Cred::None).json(&enroll_body(token, &other))).await;
            r.assert_problem(401, "invalid_enrollment_token");
        }

        // Never seen yet.
        let r = t.send(t.api(Method::GET, "/api/v1/endpoints?presence=never", &it_a)).await;
        assert_eq!(r.json()["items"].as_array().unwrap().len(), 1, "{}", r.text);

        // First check-in: a heartbeat and the full inventory.
        let batch = json!({"protocol": 1, "messages": [
            message(1, heartbeat()),
            message(2, full(inventory(&[("openssl", "3.0.11"), ("curl", "7.88")], true, 2, &["dana"]))),
        ]});
        let r = checkin(&t, id, &key, &batch, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["acked_through"], 2);
        assert_eq!(r.json()["want_full_inventory"], false);
        // Sent again (the answer was lost): acknowledged, nothing applied twice.
        let r = checkin(&t, id, &key, &batch, None).await;
        assert_eq!(r.json()["acked_through"], 2);

        // Both sides see the same endpoint, with the facts the agent reported.
        let padmin = reader(&t, &w.padmin).await;
        for who in [&it_a, &padmin] {
            let r = t.send(t.api(Method::GET, &format!("/api/v1/endpoints?client_id={}&security_updates=true", w.client_a.id), who)).await;
            let items = r.json()["items"].as_array().unwrap().clone();
            assert_eq!(items.len(), 1, "{}", r.text);
            let e = &items[0];
            assert_eq!(e["hostname"], "hp-cad-07");
            assert_eq!(e["presence"], "online");
            assert_eq!(e["summary"]["os"], "Debian GNU/Linux 12 (bookworm)");
            assert_eq!(e["summary"]["security_updates"], 2);
            assert_eq!(e["summary"]["firewall_enabled"], true);
            assert_eq!(e["summary"]["disk_encrypted"], Value::Null, "not collected stays unknown");
        }
        let r = t.send(t.api(Method::GET, "/api/v1/endpoints?firewall_off=true", &it_a)).await;
        assert!(r.json()["items"].as_array().unwrap().is_empty());
        let r = t.send(t.api(Method::GET, &format!("/api/v1/endpoints/{id}"), &it_a)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let d = r.json();
        assert_eq!(d["heartbeat"]["cpu_percent"], 12.5);
        assert_eq!(d["inventory"]["not_collected"][0]["field"], "hardware");
        assert_eq!(d["endpoint"]["summary"]["admins"], json!(["dana"]));

        // A change report: the firewall goes off, a package is updated and one installed,
        // someone joins sudo. The timeline says so; the list filters find it.
        let changed = json!({"protocol": 1, "messages": [message(3, json!({"kind": "inventory", "full": false, "sections": {
            "packages": {"packages": [{"name": "openssl", "version": "3.0.13", "arch": "amd64", "manager": "dpkg"},
                                      {"name": "curl", "version": "7.88", "arch": "amd64", "manager": "dpkg"},
                                      {"name": "netcat", "version": "1.10", "arch": "amd64", "manager": "dpkg"}]},
            "firewall": {"enabled": false},
            "users": {"users": [{"name": "dana", "uid": 1000, "shell": "/bin/bash", "home": "/home/dana"}],
                      "admin_groups": {"sudo": ["dana", "mallory"]}}
        }}))]});
        let r = checkin(&t, id, &key, &changed, None).await;
        assert_eq!(r.json()["acked_through"], 3, "{}", r.text);
        checkin(&t, id, &key, &changed, None).await; // a duplicate again
        let r = t.send(t.api(Method::GET, &format!("/api/v1/endpoints/{id}/events"), &it_a)).await;
        let kinds: Vec<String> = r.json()["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
        let mut sorted = kinds.clone();
        sorted.sort();
        assert_eq!(sorted, ["admin_added", "firewall_disabled", "software_installed", "software_updated"], "{}", r.text);
        let r = t.send(t.api(Method::GET, "/api/v1/endpoints?firewall_off=true", &it_a)).await;
        assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
        // The sections the report left out are kept.
        let r = t.send(t.api(Method::GET, &format!("/api/v1/endpoints/{id}"), &it_a)).await;
        assert_eq!(r.json()["endpoint"]["summary"]["security_updates"], 2);

        // CSV export, formula-safe.
        let r = t.send(t.api(Method::GET, "/api/v1/endpoints?format=csv", &it_a)).await;
        assert_eq!(r.status, 200);
        assert!(r.text.starts_with("id,client_id,site_id,hostname,presence"), "{}", r.text);
        assert!(r.text.contains("hp-cad-07,online"), "{}", r.text);

        // The other tenant sees nothing of it.
        let it_b = reader(&t, &w.it_b).await;
        let r = t.send(t.api(Method::GET, "/api/v1/endpoints", &it_b)).await;
        assert!(r.json()["items"].as_array().unwrap().is_empty(), "{}", r.text);
        t.send(t.api(Method::GET, &format!("/api/v1/endpoints/{id}"), &it_b)).await.assert_problem(404, "not_found");
        t.send(t.api(Method::GET, &format!("/api/v1/endpoints/{id}/events"), &it_b)).await.assert_problem(404, "not_found");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_human_credentials_do_not_cross() {
    run(|t: Arc<TestApp>| async move {
        let (id, key) = t.enrolled_agent(&t.w.site_a, "a-desk-02").await;
        let empty = json!({"protocol": 1, "messages": []});
        assert_eq!(checkin(&t, id, &key, &empty, None).await.status, 200);
        // Wrong key, stale or future timestamp, unknown agent, tampered body: refused. (A
        // minute beyond the window: a second passing before the server reads its clock must
        // not bring a future timestamp back inside it.)
        let stranger = SigningKey::from_bytes(&[9u8; 32]);
        checkin(&t, id, &stranger, &empty, None).await.assert_problem(401, "invalid_signature");
        checkin(&t, id, &key, &empty, Some(now_secs() - 360)).await.assert_problem(401, "clock_skew");
        checkin(&t, id, &key, &empty, Some(now_secs() + 360)).await.assert_problem(401, "clock_skew");
        // A stranger's stale signature learns nothing about the clock.
        checkin(&t, id, &stranger, &empty, Some(now_secs() - 360)).await.assert_problem(401, "invalid_signature");
        checkin(&t, EndpointId::new(), &key, &empty, None).await.assert_problem(401, "unknown_agent");
        let bytes = serde_json::to_vec(&empty).unwrap();
        let ts = now_secs();
        let sig = key.sign(&signing_payload("POST", CHECKIN_PATH, ts, &bytes));
        let r = t
            .send(
                t.req(Method::POST, CHECKIN_PATH, &Cred::None)
                    .header("Tandem-Agent", id.to_string())
                    .header("Tandem-Timestamp", ts.to_string())
                    .header("Tandem-Signature", base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()))
                    .body(r#"{"protocol":1,"messages":[ ]}"#),
            )
            .await;
        r.assert_problem(401, "invalid_signature");
        // A person's API token is no agent credential.
        let human = Cred::Bearer(t.token_for(&t.w.padmin, &Capability::ALL, None).await.1);
        t.send(t.api(Method::POST, CHECKIN_PATH, &human).json(&empty)).await.assert_problem(401, "invalid_signature");
        // And an agent's signature opens no human route.
        let sig = key.sign(&signing_payload("GET", "/api/v1/endpoints", ts, b""));
        let r = t
            .send(
                t.req(Method::GET, "/api/v1/endpoints", &Cred::None)
                    .header("Tandem-Agent", id.to_string())
                    .header("Tandem-Timestamp", ts.to_string())
                    .header("Tandem-Signature", base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())),
            )
            .await;
        r.assert_problem(401, "unauthenticated");
        // Malformed check-ins from a genuine agent get a clear problem, not a crash.
        let bad = json!({"protocol": 1, "messages": [{"seq": 1, "collected_at": "yesterday", "body": heartbeat()}]});
        checkin(&t, id, &key, &bad, None).await.assert_problem(422, "validation_failed");
        let bad = json!({"protocol": 1, "messages": [{"seq": "one"}]});
        checkin(&t, id, &key, &bad, None).await.assert_problem(400, "malformed_request");
        let bad = json!({"protocol": 2, "messages": []});
        checkin(&t, id, &key, &bad, None).await.assert_problem(400, "unsupported_protocol");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_tokens_enroll_nothing() {
    run(|t: Arc<TestApp>| async move {
        let it_a = reader(&t, &t.w.it_a).await;
        let (tid, secret) = t.enrollment_token(&t.w.it_a, &t.w.site_a, None).await;
        let r = t.send(t.api(Method::DELETE, &format!("/api/v1/enrollment-tokens/{tid}"), &it_a)).await;
        assert_eq!(r.status, 204, "{}", r.text);
        t.send(t.api(Method::DELETE, &format!("/api/v1/enrollment-tokens/{tid}"), &it_a)).await.assert_problem(409, "conflict");
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let body = json!({"protocol": 1, "token": secret,
            "public_key": base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()),
            "hostname": "late", "os": "linux", "arch": "x86_64", "agent_version": "0.1.0"});
        t.send(t.api(Method::POST, "/agent/v1/enroll", &Cred::None).json(&body)).await.assert_problem(401, "invalid_enrollment_token");
        // Bad input to token creation names the field.
        let r = t
            .send(t.api(Method::POST, &format!("/api/v1/clients/{}/enrollment-tokens", t.w.client_a.id), &it_a).json(&json!({
                "site_id": t.w.site_b.id, "label": "", "expires_in_hours": 100000, "max_uses": 0
            })))
            .await;
        r.assert_problem(422, "validation_failed");
        for field in ["site_id", "label", "expires_in_hours", "max_uses"] {
            assert!(r.text.contains(field), "{field} in {}", r.text);
        }
        // The token list shows the revoked token as such.
        let r = t.send(t.api(Method::GET, "/api/v1/enrollment-tokens", &it_a)).await;
        assert!(r.json()["items"][0]["revoked_at"].is_string(), "{}", r.text);
        // The audit trail recorded making and revoking it.
        let r = t.send(t.api(Method::GET, "/api/v1/audit?action=enrollment_token", &Cred::Bearer(t.token_for(&t.w.padmin, &[Capability::AuditRead], None).await.1))).await;
        let actions: Vec<String> = r.json()["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap_or_default().to_string()).collect();
        assert!(actions.contains(&"enrollment_token.revoked".to_string()), "{actions:?} {}", r.text);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_check_ins_are_committed_together_and_each_once() {
    run(|t: Arc<TestApp>| async move {
        // Thirty agents check in at once: every one is acknowledged and stored.
        let mut agents = Vec::new();
        for i in 0..30 {
            agents.push(t.enrolled_agent(&t.w.site_a, &format!("burst-{i:02}")).await);
        }
        let sends = agents.iter().map(|(id, key)| {
            let t = t.clone();
            let key = key.clone();
            let id = *id;
            async move {
                let body = json!({"protocol": 1, "messages": [message(1, heartbeat()), message(2, full(inventory(&[("curl", "7.88")], true, 0, &[])))]});
                checkin(&t, id, &key, &body, None).await
            }
        });
        for r in futures_join_all(sends).await {
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.json()["acked_through"], 2);
        }
        let reader = Cred::Bearer(t.token_for(&t.w.padmin, &[Capability::EndpointsRead], None).await.1);
        let r = t.send(t.api(Method::GET, "/api/v1/endpoints?presence=online&limit=100", &reader)).await;
        assert_eq!(r.json()["items"].as_array().unwrap().len(), 30, "{}", r.text);

        // One agent sending the same batch twice at once: one is applied, the other is told
        // to retry, and retrying is harmless.
        let (id, key) = &agents[0];
        let body = json!({"protocol": 1, "messages": [message(3, heartbeat())]});
        let (a, b) = tokio::join!(checkin(&t, *id, key, &body, None), checkin(&t, *id, key, &body, None));
        for r in [&a, &b] {
            assert!(r.status == 200 || r.status == 503, "{} {}", r.status, r.text);
            if r.status == 503 {
                r.assert_problem(503, "unavailable");
            }
        }
        assert!(a.status == 200 || b.status == 200, "at least one was applied");
        let again = checkin(&t, *id, key, &body, None).await;
        assert_eq!(again.json()["acked_through"], 3, "{}", again.text);
    })
    .await;
}

/// Awaits every future concurrently (the tests need no futures crate for this).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    fs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// Sends a signed `POST /agent/v1/session`, with one more header if given.
async fn open_session(
    t: &TestApp,
    id: EndpointId,
    key: &SigningKey,
    extra: Option<(&str, &str)>,
) -> Resp {
    let mut rb = t.signed_agent_req(SESSION_PATH, id, key, br#"{"protocol":1}"#.to_vec(), None);
    if let Some((name, value)) = extra {
        rb = rb.header(name, value);
    }
    t.send(rb).await
}

/// Sends a check-in in a session: `Tandem-Session`, and the MAC under `key` at `ts`.
async fn checkin_in_session(
    t: &TestApp,
    session: &str,
    key: &[u8],
    body: &Value,
    ts: Option<i64>,
) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap();
    let ts = ts.unwrap_or_else(now_secs);
    let mac = session_mac(key, &signing_payload("POST", CHECKIN_PATH, ts, &bytes));
    t.send(
        t.req(Method::POST, CHECKIN_PATH, &Cred::None)
            .header("content-type", "application/json")
            .header("Tandem-Session", session)
            .header("Tandem-Timestamp", ts.to_string())
            .header("Tandem-Mac", mac)
            .body(bytes),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_bought_with_a_signature_carries_check_ins_until_the_endpoint_is_retired() {
    run(|t: Arc<TestApp>| async move {
        let (id, key) = t.enrolled_agent(&t.w.site_a, "sess-desk-01").await;
        let r = open_session(&t, id, &key, None).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let s = r.json();
        let session = s["session"].as_str().unwrap().to_string();
        let session_key = base64::engine::general_purpose::STANDARD
            .decode(s["key"].as_str().unwrap())
            .unwrap();
        assert_eq!(session_key.len(), 32);
        assert_eq!(s["expires_in"], 3600);
        // Two sessions of one agent are different sessions.
        let other = open_session(&t, id, &key, None).await.json();
        assert_ne!(other["session"], s["session"]);
        assert_ne!(other["key"], s["key"]);

        // Check-ins in the session are taken, idempotently, and land like signed ones.
        let beat = json!({"protocol": 1, "messages": [message(5, heartbeat())]});
        let r = checkin_in_session(&t, &session, &session_key, &beat, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["acked_through"], 5);
        assert_eq!(r.json()["want_full_inventory"], true, "no inventory yet: {}", r.text);
        // Sent again: nothing new (written without a read first, the duplicate is caught by
        // the write and answered the usual way).
        let again = checkin_in_session(&t, &session, &session_key, &beat, None).await;
        assert_eq!(again.json()["acked_through"], 5, "{}", again.text);
        // Sent again in part: only message 6 is new, and it is the one kept.
        let mut newer = heartbeat();
        newer["uptime_seconds"] = json!(7200);
        let partly = json!({"protocol": 1, "messages": [message(4, heartbeat()), message(6, newer), message(5, heartbeat())]});
        let r = checkin_in_session(&t, &session, &session_key, &partly, None).await;
        assert_eq!(r.json()["acked_through"], 6, "{}", r.text);
        let it_a = reader(&t, &t.w.it_a).await;
        let r = t.send(t.api(Method::GET, &format!("/api/v1/endpoints/{id}"), &it_a)).await;
        assert_eq!(r.json()["heartbeat"]["uptime_seconds"], 7200, "{}", r.text);
        // An inventory in a session: the endpoint has one now, and heartbeats say so.
        let inv = json!({"protocol": 1, "messages": [message(7, full(inventory(&[("bash", "5.2")], true, 0, &["dana"])))]});
        let r = checkin_in_session(&t, &session, &session_key, &inv, None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["acked_through"], 7);
        let beat = json!({"protocol": 1, "messages": [message(8, heartbeat())]});
        let r = checkin_in_session(&t, &session, &session_key, &beat, None).await;
        assert_eq!(r.json()["acked_through"], 8, "{}", r.text);
        assert_eq!(r.json()["want_full_inventory"], false, "{}", r.text);

        // Wrong key, a token changed by one character, another agent's key, no MAC, no
        // timestamp: all the same refusal, so the agent opens a new session.
        let empty = json!({"protocol": 1, "messages": []});
        let mut wrong = session_key.clone();
        wrong[0] ^= 1;
        checkin_in_session(&t, &session, &wrong, &empty, None)
            .await
            .assert_problem(401, "invalid_session");
        let mut forged = session.clone().into_bytes();
        forged[3] = if forged[3] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        checkin_in_session(&t, &forged, &session_key, &empty, None)
            .await
            .assert_problem(401, "invalid_session");
        let other_key = base64::engine::general_purpose::STANDARD
            .decode(other["key"].as_str().unwrap())
            .unwrap();
        checkin_in_session(&t, &session, &other_key, &empty, None)
            .await
            .assert_problem(401, "invalid_session");
        for (name, value) in [("Tandem-Mac", ""), ("Tandem-Timestamp", "")] {
            let r = t
                .send(
                    t.req(Method::POST, CHECKIN_PATH, &Cred::None)
                        .header("Tandem-Session", session.as_str())
                        .header("Tandem-Timestamp", now_secs().to_string())
                        .header("Tandem-Mac", "AAAA")
                        .header(name, value)
                        .body(serde_json::to_vec(&empty).unwrap()),
                )
                .await;
            r.assert_problem(401, "invalid_session");
        }
        // A genuine MAC outside the clock window says so.
        checkin_in_session(&t, &session, &session_key, &empty, Some(now_secs() - 360))
            .await
            .assert_problem(401, "clock_skew");
        // A session cannot buy another session, and a session opens no human route.
        open_session(&t, id, &key, Some(("Tandem-Session", &session)))
            .await
            .assert_problem(401, "invalid_signature");
        let r = t
            .send(
                t.req(Method::GET, "/api/v1/endpoints", &Cred::None)
                    .header("Tandem-Session", session.as_str())
                    .header("Tandem-Timestamp", now_secs().to_string())
                    .header(
                        "Tandem-Mac",
                        session_mac(
                            &session_key,
                            &signing_payload("GET", "/api/v1/endpoints", now_secs(), b""),
                        ),
                    ),
            )
            .await;
        r.assert_problem(401, "unauthenticated");

        // Another server on the same database (a fresh application: its own memory, the
        // same stored secret) takes the session as well.
        let store = tandem_store::Store::open(&t.db_url, Default::default())
            .await
            .unwrap();
        let second = tandem_app::App::new(store, Default::default());
        let bytes = serde_json::to_vec(&empty).unwrap();
        let ts = now_secs();
        let mac = session_mac(
            &session_key,
            &signing_payload("POST", CHECKIN_PATH, ts, &bytes),
        );
        let ts = ts.to_string();
        let req = tandem_app::AgentRequest {
            session: &session,
            mac: &mac,
            timestamp: &ts,
            method: "POST",
            path: CHECKIN_PATH,
            body: &bytes,
            ..Default::default()
        };
        let agent = second
            .authenticate_agent(&req)
            .await
            .unwrap()
            .map_err(|_| "refused")
            .unwrap();
        assert_eq!(agent.id, id);

        // Retired: refused at once, session or not.
        t.sql(&format!(
            "UPDATE endpoints SET retired_at = 1 WHERE id = '{id}'"
        ))
        .await;
        checkin_in_session(&t, &session, &session_key, &empty, None)
            .await
            .assert_problem(403, "agent_revoked");
        open_session(&t, id, &key, None)
            .await
            .assert_problem(403, "agent_revoked");
    })
    .await;
}

/// The value of the series `name` (with its labels) in a Prometheus text scrape.
fn series(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_who_holds_sqlites_one_writer_lock() {
    run(|t: Arc<TestApp>| async move {
        let (id, key) = t.enrolled_agent(&t.w.site_a, "ws-lock").await;
        let batch = json!({"protocol": 1, "messages": [message(1, heartbeat())]});
        assert_eq!(checkin(&t, id, &key, &batch, None).await.status, 200);
        let r = t.send(t.req(Method::GET, "/metrics", &Cred::None)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if t.backend == tandem_store::Backend::Postgres {
            // PostgreSQL's writers do not queue on one lock: nothing to show.
            assert!(!r.text.contains("tandem_store_write_lock"), "{}", r.text);
            return;
        }
        // The check-in went through the check-in writer; the world was seeded (and the
        // agent enrolled) by writes outside any background job, counted as requests.
        let taken = |holder: &str| {
            series(
                &r.text,
                &format!("tandem_store_write_lock_taken_total{{holder=\"{holder}\"}}"),
            )
        };
        assert!(taken("check-ins").is_some_and(|n| n >= 1.0), "{}", r.text);
        assert!(taken("requests").is_some_and(|n| n >= 1.0), "{}", r.text);
        let held = series(
            &r.text,
            "tandem_store_write_lock_held_seconds_total{holder=\"check-ins\"}",
        );
        assert!(held.is_some_and(|s| s > 0.0), "{}", r.text);
        let longest = series(
            &r.text,
            "tandem_store_write_lock_longest_hold_seconds{holder=\"check-ins\"}",
        );
        assert!(
            longest.is_some_and(|s| s > 0.0 && s <= held.unwrap_or(0.0)),
            "{}",
            r.text
        );
    })
    .await;
}
