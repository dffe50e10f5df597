//! Flows a person would notice: sign-in lockout, the second factor, API tokens, who sees
//! which client, and the audit trail of every change.

use crate::common;

use crate::common::{Browser, Cred, Resp, TestApp, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use tandem_domain::authz::Capability;
use tandem_domain::Timestamp;

fn ids(list: &Value) -> BTreeSet<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|x| x["id"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn json_ok(t: &TestApp, rb: reqwest::RequestBuilder) -> Value {
    let r = t.send(rb).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text);
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_the_account_and_the_lock_is_audited() {
    common::run(|t: Arc<TestApp>| async move {
        let who = &t.w.end_a;
        let b = Browser::new(&t.base);
        for i in 1..=5 {
            let r = b
                .password_step(&who.username, "not the password at all")
                .await;
            assert_eq!(r.status, 401, "attempt {i}: {}", r.text);
            assert!(
                r.text.contains("not right"),
                "attempt {i} says why: {}",
                r.text
            );
        }
        // Now even the right password is refused, with a 429 that says why.
        let r = b.password_step(&who.username, PASSWORD).await;
        assert_eq!(r.status, 429, "{}", r.text);
        assert!(r.text.contains("Too many failed attempts"), "{}", r.text);
        assert!(
            b.cookie("tandem_session").is_none(),
            "a locked account got a session"
        );

        let all = t.audit_all().await;
        let locks: Vec<_> = all
            .iter()
            .filter(|e| e.entry.action == "auth.locked_out")
            .collect();
        assert_eq!(locks.len(), 1, "exactly one lock entry");
        assert_eq!(locks[0].entry.client_id, Some(t.w.client_a.id));
        assert_eq!(locks[0].entry.actor_id, Some(who.id));
        assert_eq!(
            locks[0].entry.target_id,
            format!("account:{}", who.username)
        );
        let failures = all
            .iter()
            .filter(|e| e.entry.action == "auth.sign_in_failed" && e.entry.actor_id == Some(who.id))
            .count();
        assert_eq!(failures, 5);

        // The client's IT admin sees it in the trail; another person still signs in.
        let it = t.sign_in(&t.w.it_a).await.cred();
        let r = json_ok(
            &t,
            t.api(Method::GET, "/api/v1/audit?action=auth.locked_out", &it),
        )
        .await;
        assert_eq!(r["items"].as_array().map(Vec::len), Some(1), "{r}");
        t.sign_in(&t.w.viewer_a).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_code_is_refused_and_each_recovery_code_works_once() {
    common::run(|t: Arc<TestApp>| async move {
        let u = &t.w.it_a;
        let first = t.sign_in(u).await;
        let used = first.enrol_code.clone().expect("enrolment code");
        assert_eq!(first.recovery.len(), 10);

        // Replaying the code that enrolment just used is refused.
        let b = Browser::new(&t.base);
        let r = b.password_step(&u.username, PASSWORD).await;
        assert_eq!(r.location(), Some("/mfa"));
        let v = b.verify(&used).await;
        assert_eq!(
            v.status,
            401,
            "replayed TOTP code accepted: {} {:?}",
            v.status,
            v.location()
        );
        assert!(v.text.contains("already used"), "{}", v.text);
        let home = b.get("/").await;
        assert_eq!(
            home.location(),
            Some("/mfa"),
            "the session is still half signed in"
        );

        // A recovery code completes it, once.
        let v = b.verify(&first.recovery[0]).await;
        assert_eq!(
            (v.status.as_u16(), v.location()),
            (303, Some("/")),
            "{}",
            v.text
        );
        assert_eq!(b.get("/").await.status, 200);
        let b2 = Browser::new(&t.base);
        b2.password_step(&u.username, PASSWORD).await;
        let v = b2.verify(&first.recovery[0]).await;
        assert_eq!(v.status, 401, "a recovery code worked twice");
        // Another one works, however it is typed.
        let typed = format!("  {}  ", first.recovery[1].to_uppercase().replace('-', " "));
        let v = b2.verify(&typed).await;
        assert_eq!(
            (v.status.as_u16(), v.location()),
            (303, Some("/")),
            "{}",
            v.text
        );
        let account = b2.get("/account").await;
        assert!(
            account.text.contains("8 recovery codes left"),
            "{}",
            account.text
        );

        let all = t.audit_all().await;
        let mine = |a: &str| {
            all.iter()
                .filter(|e| e.entry.action == a && e.entry.actor_id == Some(u.id))
                .count()
        };
        assert_eq!(mine("auth.mfa_failed"), 2);
        assert_eq!(mine("auth.mfa_passed"), 2);
        assert_eq!(mine("auth.mfa_enrolled"), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_shown_once_stored_hashed_and_never_reach_further_than_their_maker() {
    common::run(|t: Arc<TestApp>| async move {
        let (a, b) = (t.w.client_a.id, t.w.client_b.id);
        let admin = t.sign_in(&t.w.padmin).await.cred();

        let r = t.send(t.api(Method::POST, "/api/v1/tokens", &admin).json(&json!({"name": "PSA sync", "capabilities": ["clients:read", "audit:read"], "expires_in_days": 30}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let made = r.json();
        let secret = made["secret"].as_str().expect("secret").to_string();
        let id = made["token"]["id"].as_str().expect("id").to_string();
        assert!(secret.starts_with("tdm_") && secret.len() > 40, "{secret}");
        assert!(secret.starts_with(made["token"]["prefix"].as_str().unwrap_or("?")));
        assert!(!made["token"].to_string().contains(&secret), "the token record carries its secret");

        // Listing never shows it, nor does the tokens page.
        let list = t.send(t.api(Method::GET, "/api/v1/tokens", &admin)).await;
        assert!(list.text.contains(&id) && !list.text.contains(&secret), "{}", list.text);
        let page = t.send(t.req(Method::GET, "/tokens", &admin)).await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("PSA sync") && !page.text.contains(&secret));
        // Stored as its SHA-256, nowhere in clear.
        let hash = tandem_app::sha256_hex(&secret);
        assert_eq!(t.sql(&format!("UPDATE api_tokens SET name = name WHERE id = '{id}' AND token_hash = '{hash}'")).await, 1);
        let clear = format!(
            "UPDATE api_tokens SET name = name WHERE token_hash = '{secret}' OR name = '{secret}' OR prefix = '{secret}' OR capabilities LIKE '%{secret}%'"
        );
        assert_eq!(t.sql(&clear).await, 0, "the secret is stored in clear");
        assert!(!t.audit_all().await.iter().any(|e| serde_json::to_string(&e.entry).unwrap_or_default().contains(&secret)), "the secret is in the audit trail");

        // It works for what it carries, and nothing else.
        let tok = Cred::Bearer(secret.clone());
        let me = json_ok(&t, t.api(Method::GET, "/api/v1/me", &tok)).await;
        assert_eq!((me["via_token"].as_bool(), me["user"]["id"].as_str()), (Some(true), Some(t.w.padmin.id.to_string().as_str())));
        assert_eq!(t.send(t.api(Method::GET, "/api/v1/audit", &tok)).await.status, 200);
        t.send(t.api(Method::POST, "/api/v1/clients", &tok).json(&json!({"name": "Token Co"}))).await.assert_problem(403, "forbidden");
        t.send(t.api(Method::GET, "/api/v1/users", &tok)).await.assert_problem(403, "forbidden");
        // Tokens cannot manage tokens.
        t.send(t.api(Method::GET, "/api/v1/tokens", &tok)).await.assert_problem(403, "forbidden");
        t.send(t.api(Method::POST, "/api/v1/tokens", &tok).json(&json!({"name": "child", "capabilities": ["clients:read"], "expires_in_days": 1}))).await.assert_problem(403, "forbidden");
        // Tokens never work on pages.
        for path in ["/", "/clients", "/tokens", "/account", "/audit"] {
            let r = t.send(t.req(Method::GET, path, &tok)).await;
            assert_eq!(r.status, 303, "{path}");
            assert!(r.location().unwrap_or("").starts_with("/login"), "{path}: {:?}", r.location());
            assert!(!r.text.contains(common::CLIENT_A_NAME));
        }
        let r = t.send(t.req(Method::POST, "/clients", &tok).form(&[("name", "Via token")])).await;
        assert!(r.location().unwrap_or("").starts_with("/login"), "POST /clients with a token: {} {:?}", r.status, r.location());

        // A capability the maker lacks is refused.
        let viewer = t.sign_in(&t.w.viewer_a).await.cred();
        let r = t.send(t.api(Method::POST, "/api/v1/tokens", &viewer).json(&json!({"name": "x", "capabilities": ["clients:write"], "expires_in_days": 5}))).await;
        let p = r.assert_problem(422, "validation_failed");
        assert_eq!(p["errors"][0]["field"], "capabilities");
        let tech = t.sign_in(&t.w.tech).await.cred();
        t.send(t.api(Method::POST, "/api/v1/tokens", &tech).json(&json!({"name": "x", "capabilities": ["users:write"], "expires_in_days": 5}))).await.assert_problem(422, "validation_failed");
        // Nor a client the maker cannot reach.
        t.send(t.api(Method::POST, "/api/v1/tokens", &tech).json(&json!({"name": "x", "capabilities": ["clients:read"], "client_id": b, "expires_in_days": 5}))).await.assert_problem(404, "not_found");

        // A token limited to client A cannot read client B, even for a provider admin.
        let r = t.send(t.api(Method::POST, "/api/v1/tokens", &admin).json(&json!({"name": "A only", "capabilities": ["clients:read", "users:read"], "client_id": a, "expires_in_days": 5}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let scoped = Cred::Bearer(r.json()["secret"].as_str().expect("secret").to_string());
        assert_eq!(ids(&json_ok(&t, t.api(Method::GET, "/api/v1/clients", &scoped)).await), BTreeSet::from([a.to_string()]));
        assert_eq!(t.send(t.api(Method::GET, &format!("/api/v1/clients/{a}"), &scoped)).await.status, 200);
        t.send(t.api(Method::GET, &format!("/api/v1/clients/{b}"), &scoped)).await.assert_problem(404, "not_found");
        t.send(t.api(Method::GET, &format!("/api/v1/users/{}", t.w.it_b.id), &scoped)).await.assert_problem(404, "not_found");
        let users = json_ok(&t, t.api(Method::GET, "/api/v1/users?limit=500", &scoped)).await;
        for u in users["items"].as_array().expect("items") {
            assert_eq!(u["client_id"], json!(a), "a client-A token listed {u}");
        }

        // Revoked: refused at once. Someone else's token cannot be revoked.
        let r = t.send(t.api(Method::DELETE, &format!("/api/v1/tokens/{id}"), &admin)).await;
        assert_eq!(r.status, 204, "{}", r.text);
        t.send(t.api(Method::GET, "/api/v1/me", &tok)).await.assert_problem(401, "unauthenticated");
        let listed = json_ok(&t, t.api(Method::GET, "/api/v1/tokens", &admin)).await;
        let revoked = listed.as_array().expect("list").iter().find(|x| x["id"] == json!(id)).expect("still listed");
        assert!(revoked["revoked_at"].is_string(), "{revoked}");
        let (other_id, other) = t.token_for(&t.w.it_a, &[Capability::ClientsRead], None).await;
        t.send(t.api(Method::DELETE, &format!("/api/v1/tokens/{other_id}"), &admin)).await.assert_problem(404, "not_found");
        assert_eq!(t.send(t.api(Method::GET, "/api/v1/me", &Cred::Bearer(other))).await.status, 200);

        // Through the page: the secret is shown once, then never again.
        let it = t.sign_in(&t.w.it_a).await;
        let r = t.send(t.req(Method::POST, "/tokens", &it.cred()).form(&[("csrf", it.csrf.as_str()), ("name", "Page made"), ("capability", "users:read"), ("expires_in_days", "7")])).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let shown = r.text.split("id=\"new-token\"").nth(1).and_then(|s| s.split('>').nth(1)).and_then(|s| s.split('<').next()).expect("the new secret is shown").to_string();
        assert!(shown.starts_with("tdm_"), "{shown}");
        assert_eq!(t.send(t.api(Method::GET, "/api/v1/users", &Cred::Bearer(shown.clone()))).await.status, 200);
        let again = t.send(t.req(Method::GET, "/tokens", &it.cred())).await;
        assert!(again.text.contains("Page made") && !again.text.contains(&shown), "the secret was shown again");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_it_admin_manages_only_their_own_company() {
    common::run(|t: Arc<TestApp>| async move {
        let (a, b) = (t.w.client_a.id, t.w.client_b.id);
        let it = t.sign_in(&t.w.it_a).await;
        let cred = it.cred();
        let head = t.audit_head().await;
        let user = |client: Option<tandem_domain::ClientId>, role: &str, name: &str| {
            json!({"client_id": client, "username": name, "email": format!("{name}@example.test"), "display_name": name, "role": role, "password": PASSWORD})
        };
        for (body, what) in [
            (user(None, "provider_admin", "sneaky.admin"), "a provider admin"),
            (user(None, "provider_technician", "sneaky.tech"), "a provider technician"),
            (user(Some(a), "provider_admin", "sneaky.admin2"), "a provider role in their company"),
            (user(Some(b), "end_user", "sneaky.other"), "a user in another client"),
            (user(Some(b), "client_it_admin", "sneaky.other2"), "an admin in another client"),
        ] {
            let r = t.send(t.api(Method::POST, "/api/v1/users", &cred).json(&body)).await;
            r.assert_problem(403, "forbidden");
            assert!(!r.text.contains(common::CLIENT_B_NAME), "{what}: {}", r.text);
        }
        // The same through the page.
        let r = t
            .send(t.req(Method::POST, "/users/new", &cred).form(&[
                ("csrf", it.csrf.as_str()),
                ("username", "sneaky.page"),
                ("email", "sneaky.page@example.test"),
                ("display_name", "Sneaky"),
                ("role", "provider_admin"),
                ("client_id", ""),
                ("password", PASSWORD),
            ]))
            .await;
        assert_eq!(r.status, 303);
        assert!(!r.flash().1.is_empty(), "the page says why");
        // Nor promote someone, nor touch B's people.
        let viewer = t.w.viewer_a.id;
        t.send(t.api(Method::PATCH, &format!("/api/v1/users/{viewer}"), &cred).json(&json!({"role": "provider_admin"}))).await.assert_problem(403, "forbidden");
        t.send(t.api(Method::PATCH, &format!("/api/v1/users/{}", t.w.it_b.id), &cred).json(&json!({"disabled": true}))).await.assert_problem(404, "not_found");
        t.send(t.api(Method::POST, &format!("/api/v1/users/{}/reset-mfa", t.w.padmin.id), &cred)).await.assert_problem(404, "not_found");
        assert_eq!(t.audit_head().await, head, "a refused change was written");
        let all = t.app.all_users_console().await.expect("users");
        assert!(all.iter().all(|u| !u.username.starts_with("sneaky")), "a refused user exists");

        // What they may do, they can.
        let r = t.send(t.api(Method::POST, "/api/v1/users", &cred).json(&user(Some(a), "client_viewer", "new.viewer"))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.json()["client_id"], json!(a));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_technician_sees_only_the_clients_they_are_allowed() {
    common::run(|t: Arc<TestApp>| async move {
        let (a, b) = (t.w.client_a.id, t.w.client_b.id);
        let tech = t.sign_in(&t.w.tech).await.cred();
        assert_eq!(
            ids(&json_ok(&t, t.api(Method::GET, "/api/v1/clients", &tech)).await),
            BTreeSet::from([a.to_string()])
        );
        for path in [
            format!("/api/v1/clients/{b}"),
            format!("/api/v1/clients/{b}/sites"),
            format!("/api/v1/users/{}", t.w.it_b.id),
            format!("/api/v1/audit?client_id={b}"),
        ] {
            t.send(t.api(Method::GET, &path, &tech))
                .await
                .assert_problem(404, "not_found");
        }
        let users = json_ok(&t, t.api(Method::GET, "/api/v1/users?limit=500", &tech)).await;
        assert!(
            users["items"]
                .as_array()
                .expect("items")
                .iter()
                .all(|u| u["client_id"] != json!(b)),
            "{users}"
        );
        assert!(users["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|u| u["client_id"] == json!(a)));
        let audit = json_ok(&t, t.api(Method::GET, "/api/v1/audit?limit=500", &tech)).await;
        assert!(
            audit["items"]
                .as_array()
                .expect("items")
                .iter()
                .all(|e| e["client_id"] == json!(a)),
            "{audit}"
        );
        let page = t.send(t.req(Method::GET, "/clients", &tech)).await;
        assert!(
            page.text.contains(common::CLIENT_A_NAME) && !page.text.contains(common::CLIENT_B_NAME)
        );
        assert_eq!(
            t.send(t.req(Method::GET, &format!("/clients/{b}"), &tech))
                .await
                .status,
            404
        );

        // A change of access applies to the very next request of the same session.
        let admin = t.sign_in(&t.w.padmin).await.cred();
        let r = t
            .send(
                t.api(
                    Method::PATCH,
                    &format!("/api/v1/users/{}", t.w.tech.id),
                    &admin,
                )
                .json(&json!({"technician": {"all_clients": true, "allow": [], "deny": [a]}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            ids(&json_ok(&t, t.api(Method::GET, "/api/v1/clients", &tech)).await),
            BTreeSet::from([b.to_string()])
        );
        t.send(t.api(Method::GET, &format!("/api/v1/clients/{a}"), &tech))
            .await
            .assert_problem(404, "not_found");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_whose_access_ended_is_refused() {
    common::run(|t: Arc<TestApp>| async move {
        let live = t.sign_in(&t.w.auditor_a).await.cred();
        assert_eq!(
            t.send(t.api(Method::GET, "/api/v1/audit", &live))
                .await
                .status,
            200
        );
        let ended = t.sign_in(&t.w.expired).await.cred();
        for path in [
            "/api/v1/audit",
            "/api/v1/clients",
            "/api/v1/users",
            "/api/v1/audit/export",
        ] {
            let r = t.send(t.api(Method::GET, path, &ended)).await;
            let p = r.assert_problem(403, "forbidden");
            assert!(
                p["detail"].as_str().unwrap_or("").contains("expired"),
                "{path}: {p}"
            );
            assert!(!r.text.contains(common::CLIENT_A_NAME));
        }
        for path in ["/audit", "/clients", "/users"] {
            let r = t.send(t.req(Method::GET, path, &ended)).await;
            assert_eq!(r.status, 403, "{path}");
            assert!(!r.text.contains(&t.w.end_a.username), "{path} shows data");
        }
        // Their own account still shows, so they know why.
        assert_eq!(
            t.send(t.req(Method::GET, "/account", &ended)).await.status,
            200
        );
        // Read-only even while live.
        t.send(
            t.api(
                Method::POST,
                &format!("/api/v1/clients/{}/sites", t.w.client_a.id),
                &live,
            )
            .json(&json!({"name": "Audit site", "time_zone": "UTC"})),
        )
        .await
        .assert_problem(403, "forbidden");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_of_a_client_share_its_audit_trail_and_no_one_else_sees_it() {
    common::run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let end_a_created = |items: &Value| {
            items["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|e| e["action"] == "user.created" && e["target_id"] == json!(t.w.end_a.id))
        };
        for u in [
            &t.w.it_a,
            &t.w.viewer_a,
            &t.w.auditor_a,
            &t.w.padmin,
            &t.w.tech,
        ] {
            let s = t.sign_in(u).await.cred();
            let r = json_ok(
                &t,
                t.api(
                    Method::GET,
                    &format!("/api/v1/audit?client_id={a}&limit=500"),
                    &s,
                ),
            )
            .await;
            assert!(end_a_created(&r), "{} does not see A's trail", u.username);
            assert!(
                r["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .all(|e| e["client_id"] == json!(a)),
                "{}: {r}",
                u.username
            );
            let page = t
                .send(t.req(Method::GET, &format!("/audit?client_id={a}"), &s))
                .await;
            assert_eq!(page.status, 200, "{}", u.username);
        }
        // The auditor's sign-in is stamped as outside, the admin's as client.
        let all = t.audit_all().await;
        let side_of = |id| {
            all.iter()
                .find(|e| e.entry.action == "auth.signed_in" && e.entry.actor_id == Some(id))
                .map(|e| e.entry.actor_side.as_str())
        };
        assert_eq!(side_of(t.w.auditor_a.id), Some("outside"));
        assert_eq!(side_of(t.w.it_a.id), Some("client"));
        assert_eq!(side_of(t.w.padmin.id), Some("provider"));

        let other = t.sign_in(&t.w.it_b).await.cred();
        t.send(t.api(Method::GET, &format!("/api/v1/audit?client_id={a}"), &other))
            .await
            .assert_problem(404, "not_found");
        t.send(t.api(
            Method::GET,
            &format!("/api/v1/audit/export?client_id={a}"),
            &other,
        ))
        .await
        .assert_problem(404, "not_found");
        let mine = t
            .send(t.api(Method::GET, "/api/v1/audit?limit=500", &other))
            .await;
        assert_eq!(mine.status, 200);
        let items = mine.json()["items"].as_array().cloned().unwrap_or_default();
        assert!(
            !items.is_empty()
                && items
                    .iter()
                    .all(|e| e["client_id"] == json!(t.w.client_b.id)),
            "{}",
            mine.text
        );
        for m in t.w.a_markers() {
            assert!(!mine.text.contains(&m), "B's admin sees {m:?}");
        }
        let export = t
            .send(t.api(Method::GET, "/api/v1/audit/export", &other))
            .await;
        assert_eq!(export.status, 200);
        for m in t.w.a_markers() {
            assert!(!export.text.contains(&m), "B's export holds {m:?}");
        }
        assert_eq!(
            t.send(t.req(Method::GET, &format!("/audit?client_id={a}"), &other))
                .await
                .status,
            404
        );
        let end = t.sign_in(&t.w.end_a).await.cred();
        t.send(t.api(Method::GET, "/api/v1/audit", &end))
            .await
            .assert_problem(403, "forbidden");
    })
    .await;
}

/// Parses CSV with quoted cells.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if cell.is_empty() => quoted = true,
            (',', false) => row.push(std::mem::take(&mut cell)),
            ('\n', false) => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => cell.push(c),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_exports_as_csv_and_json_with_filters() {
    common::run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let admin = t.sign_in(&t.w.padmin).await.cred();
        // A name a spreadsheet would run as a formula.
        let r = t.send(t.api(Method::PATCH, &format!("/api/v1/users/{}", t.w.viewer_a.id), &admin).json(&json!({"display_name": "=HYPERLINK(\"http://x.test\")"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        t.sign_in(&t.w.viewer_a).await;

        let expected: Vec<_> = t
            .audit_all()
            .await
            .into_iter()
            .filter(|e| e.entry.client_id == Some(a) && e.entry.action.starts_with("user."))
            .collect();
        assert!(expected.len() >= 8, "the seed made A's people: {}", expected.len());

        let r = t.send(t.api(Method::GET, &format!("/api/v1/audit/export?format=json&client_id={a}&action=user."), &admin)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.content_type().starts_with("application/json"));
        assert!(r.headers.get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or("").contains("tandem-audit.json"));
        let items = r.json().as_array().cloned().expect("array");
        assert_eq!(items.len(), expected.len());
        for (got, want) in items.iter().zip(&expected) {
            assert_eq!(got["seq"], want.seq, "newest first, same entries");
            assert_eq!(got["client_id"], json!(a));
            assert!(got["action"].as_str().unwrap_or("").starts_with("user."));
            assert_eq!(got["hash"], want.hash);
        }

        let r = t.send(t.api(Method::GET, &format!("/api/v1/audit/export?client_id={a}&action=user."), &admin)).await;
        assert_eq!(r.status, 200);
        assert!(r.content_type().starts_with("text/csv"), "{}", r.content_type());
        let rows = parse_csv(&r.text);
        assert_eq!(rows[0].join(","), "seq,at,client_id,actor_id,actor,side,action,target_kind,target_id,before,after,request_id,reference,hash");
        assert_eq!(rows.len() - 1, expected.len(), "one row per entry");
        for (row, want) in rows[1..].iter().zip(&expected) {
            assert_eq!(row.len(), 14, "{row:?}");
            assert_eq!(row[0], want.seq.to_string());
            assert_eq!(row[2], a.to_string());
            assert!(row[6].starts_with("user."));
            assert_eq!(row[13], want.hash);
        }

        // Formula cells are defused in the CSV.
        let r = t.send(t.api(Method::GET, &format!("/api/v1/audit/export?actor_id={}", t.w.viewer_a.id), &admin)).await;
        let rows = parse_csv(&r.text);
        assert!(rows.len() >= 2, "the viewer's sign-in is exported");
        for row in &rows[1..] {
            assert!(row[4].starts_with("'="), "actor cell not defused: {:?}", row[4]);
            assert_eq!(row[3], t.w.viewer_a.id.to_string());
        }

        // Time filters.
        let future = Timestamp::now().plus_seconds(3600).to_rfc3339();
        let r = t.send(t.api(Method::GET, &format!("/api/v1/audit/export?format=json&from={future}"), &admin)).await;
        assert_eq!(r.json(), json!([]));
        let past = Timestamp::now().plus_seconds(-86_400).to_rfc3339();
        let r = t.send(t.api(Method::GET, &format!("/api/v1/audit/export?format=json&to={past}"), &admin)).await;
        assert_eq!(r.json(), json!([]));
        let r = t.send(t.api(Method::GET, &format!("/api/v1/audit/export?format=json&from={past}&to={future}&action=client."), &admin)).await;
        let items = r.json();
        assert_eq!(items.as_array().map(Vec::len), Some(2), "both clients were created: {items}");
    })
    .await;
}

/// The one audit entry a request wrote, checked for actor, side and request id.
fn one_entry(
    all: &[tandem_domain::audit::AuditRecord],
    r: &Resp,
    action: &str,
    actor: tandem_domain::UserId,
    side: &str,
) {
    let rid = r.request_id();
    assert!(!rid.is_empty());
    let entries = common::entries_of_request(all, &rid);
    assert_eq!(
        entries.len(),
        1,
        "{action}: entries for request {rid}: {entries:?}"
    );
    let e = &entries[0].entry;
    assert_eq!(e.action, action);
    assert_eq!(e.actor_id, Some(actor), "{action}: actor");
    assert_eq!(e.actor_side.as_str(), side, "{action}: side");
    assert_eq!(e.request_id.as_deref(), Some(rid.as_str()));
    assert!(!e.actor_label.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_leaves_exactly_one_audit_entry_with_its_request_id() {
    common::run(|t: Arc<TestApp>| async move {
        let a = t.w.client_a.id;
        let admin_session = t.sign_in(&t.w.padmin).await;
        let admin = admin_session.cred();
        let it = t.sign_in(&t.w.it_a).await.cred();
        let (_, secret) = t.token_for(&t.w.padmin, &Capability::ALL, None).await;
        let tok = Cred::Bearer(secret);
        let (p, i) = (t.w.padmin.id, t.w.it_a.id);
        let start = t.audit_head().await;
        let mut done = Vec::new();

        let r = t.send(t.api(Method::POST, "/api/v1/clients", &admin).json(&json!({"name": "Cedar Veterinary"}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        done.push((r, "client.created", p, "provider"));
        let r = t.send(t.api(Method::POST, "/api/v1/clients", &tok).json(&json!({"name": "Token Made Co"}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        done.push((r, "client.created", p, "provider"));
        let r = t.send(t.req(Method::POST, "/clients", &admin).form(&[("csrf", admin_session.csrf.as_str()), ("name", "Page Made Co")])).await;
        assert_eq!(r.status, 303, "{}", r.text);
        done.push((r, "client.created", p, "provider"));
        let r = t.send(t.api(Method::POST, &format!("/api/v1/clients/{a}/sites"), &it).json(&json!({"name": "Annex", "time_zone": "America/Chicago"}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        done.push((r, "site.created", i, "client"));
        let body = json!({"client_id": a, "username": "new.person", "email": "new.person@example.test", "display_name": "New Person", "role": "end_user", "password": PASSWORD});
        let r = t.send(t.api(Method::POST, "/api/v1/users", &it).json(&body)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let new_id = r.json()["id"].as_str().expect("id").to_string();
        done.push((r, "user.created", i, "client"));
        let r = t.send(t.api(Method::PATCH, &format!("/api/v1/users/{new_id}"), &it).json(&json!({"display_name": "Renamed Person", "disabled": true}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        done.push((r, "user.updated", i, "client"));
        let r = t.send(t.api(Method::POST, "/api/v1/tokens", &it).json(&json!({"name": "IT script", "capabilities": ["users:read"], "expires_in_days": 9}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let tid = r.json()["token"]["id"].as_str().expect("id").to_string();
        done.push((r, "token.created", i, "client"));
        let r = t.send(t.api(Method::DELETE, &format!("/api/v1/tokens/{tid}"), &it)).await;
        assert_eq!(r.status, 204, "{}", r.text);
        done.push((r, "token.revoked", i, "client"));
        let r = t.send(t.api(Method::POST, &format!("/api/v1/users/{i}/reset-mfa"), &admin)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        done.push((r, "user.mfa_reset", p, "provider"));

        let all = t.audit_all().await;
        for (r, action, actor, side) in &done {
            one_entry(&all, r, action, *actor, side);
        }
        assert_eq!(t.audit_head().await - start, done.len() as i64, "changes wrote entries nobody asked for");
        // Resetting MFA ended the IT admin's session.
        t.send(t.api(Method::GET, "/api/v1/me", &it)).await.assert_problem(401, "unauthenticated");
        // The chain is intact.
        let v = json_ok(&t, t.api(Method::GET, "/api/v1/audit/verify", &admin)).await;
        assert_eq!((v["ok"].as_bool(), v["checked"].as_i64()), (Some(true), Some(t.audit_head().await)), "{v}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_or_disabled_maker_is_refused_at_once_here_and_within_the_poll_elsewhere() {
    common::run(|t: Arc<TestApp>| async move {
        use tandem_app::{principal_of, Actor, App, Policy};
        let me = "/api/v1/me";

        // Same server: the token's answer is remembered, and a revocation clears it at once.
        let (id, secret) = t
            .token_for(&t.w.padmin, &[Capability::UsersRead], None)
            .await;
        let tok = Cred::Bearer(secret);
        for _ in 0..3 {
            assert_eq!(t.send(t.api(Method::GET, me, &tok)).await.status, 200);
        }
        let admin = t.sign_in(&t.w.padmin).await.cred();
        let r = t
            .send(t.api(Method::DELETE, &format!("/api/v1/tokens/{id}"), &tok))
            .await;
        assert_eq!(r.status, 403, "tokens cannot manage tokens: {}", r.text);
        t.app
            .revoke_token(&Actor::person(principal_of(&t.w.padmin), None), id)
            .await
            .expect("revoke");
        t.send(t.api(Method::GET, me, &tok))
            .await
            .assert_problem(401, "unauthenticated");

        // Same server: disabling the maker refuses their token on the next request.
        let (_, tech_secret) = t
            .token_for(&t.w.tech, &[Capability::ClientsRead], None)
            .await;
        let tech_tok = Cred::Bearer(tech_secret);
        assert_eq!(t.send(t.api(Method::GET, me, &tech_tok)).await.status, 200);
        let r = t
            .send(
                t.api(
                    Method::PATCH,
                    &format!("/api/v1/users/{}", t.w.tech.id),
                    &admin,
                )
                .json(&json!({"disabled": true})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        t.send(t.api(Method::GET, me, &tech_tok))
            .await
            .assert_problem(401, "unauthenticated");

        // Another server on the same database revokes: this one learns of it from the auth
        // epoch on its first request after the poll interval.
        let (id2, secret2) = t
            .token_for(&t.w.padmin, &[Capability::UsersRead], None)
            .await;
        let tok2 = Cred::Bearer(secret2);
        assert_eq!(t.send(t.api(Method::GET, me, &tok2)).await.status, 200);
        let other_store =
            tandem_store::Store::open(&t.db_url, tandem_store::OpenOptions::default())
                .await
                .expect("second handle");
        let other = App::new(other_store.clone(), Policy::default());
        other
            .revoke_token(&Actor::person(principal_of(&t.w.padmin), None), id2)
            .await
            .expect("revoke elsewhere");
        tokio::time::sleep(tandem_app::AUTH_EPOCH_POLL + std::time::Duration::from_millis(200))
            .await;
        t.send(t.api(Method::GET, me, &tok2))
            .await
            .assert_problem(401, "unauthenticated");
        other_store.close().await;
    })
    .await;
}
