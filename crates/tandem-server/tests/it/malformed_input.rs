//! Malformed input gets a clear 4xx problem with a stable code and the request id, never a
//! 500.

use crate::common;

use crate::common::{Cred, Resp, TestApp};
use reqwest::header::{CONTENT_TYPE, COOKIE};
use reqwest::Method;
use serde_json::json;
use std::sync::Arc;
use tandem_domain::authz::Capability;

fn check(r: &Resp, status: u16, code: &str, what: &str) {
    assert!(r.status.as_u16() < 500, "{what}: server error {}", r.text);
    assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text);
    r.assert_problem(status, code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_with_problems() {
    common::run(|t: Arc<TestApp>| async move {
        let (_, secret) = t.token_for(&t.w.padmin, &Capability::ALL, None).await;
        let tok = Cred::Bearer(secret);
        let session = t.sign_in(&t.w.padmin).await.cred();
        let end = t.w.end_a.id;
        let raw = |m: Method, path: &str, cred: &Cred, ct: &str, body: Vec<u8>| t.api(m, path, cred).header(CONTENT_TYPE, ct.to_string()).body(body);
        let head = t.audit_head().await;

        for cred in [&tok, &session] {
            let j = "application/json";
            let r = t.send(raw(Method::POST, "/api/v1/clients", cred, j, b"{\"name\": ".to_vec())).await;
            check(&r, 400, "malformed_json", "truncated JSON");
            let r = t.send(raw(Method::POST, "/api/v1/clients", cred, j, b"{\"name\": \"x\"}{}".to_vec())).await;
            check(&r, 400, "malformed_json", "trailing data");
            let r = t.send(t.api(Method::POST, "/api/v1/clients", cred).json(&json!({"name": 5}))).await;
            check(&r, 422, "invalid_body", "wrong type");
            let r = t.send(t.api(Method::POST, "/api/v1/clients", cred).json(&json!({}))).await;
            check(&r, 422, "invalid_body", "missing field");
            let r = t.send(t.api(Method::POST, "/api/v1/clients", cred).json(&json!("Just A Name"))).await;
            check(&r, 422, "invalid_body", "string instead of object");
            let r = t.send(t.api(Method::POST, "/api/v1/clients", cred).json(&json!(null))).await;
            check(&r, 422, "invalid_body", "null instead of object");
            // Unknown fields, for every type that refuses them.
            let r = t.send(t.api(Method::POST, "/api/v1/clients", cred).json(&json!({"name": "Extra Co", "is_demo": true}))).await;
            check(&r, 422, "invalid_body", "NewClient with an unknown field");
            assert!(r.json()["detail"].as_str().unwrap_or("").contains("is_demo"), "the problem names the unknown field: {}", r.text);
            let user = json!({"client_id": t.w.client_a.id, "username": "extra.field", "email": "e@example.test", "display_name": "E",
                              "role": "end_user", "password": common::PASSWORD, "admin": true});
            let r = t.send(t.api(Method::POST, "/api/v1/users", cred).json(&user)).await;
            check(&r, 422, "invalid_body", "NewUser with an unknown field");
            let r = t.send(t.api(Method::PATCH, &format!("/api/v1/users/{end}"), cred).json(&json!({"password": "sneaky-new-password"}))).await;
            check(&r, 422, "invalid_body", "UserPatch with an unknown field");
            let r = t.send(t.api(Method::PATCH, &format!("/api/v1/users/{end}"), cred).json(&json!({"role": "root"}))).await;
            check(&r, 422, "invalid_body", "UserPatch with an unknown role");
            // Wrong content type.
            let r = t.send(raw(Method::POST, "/api/v1/clients", cred, "text/plain", b"{\"name\": \"Plain\"}".to_vec())).await;
            check(&r, 415, "unsupported_media_type", "text/plain body");
            let r = t.send(t.api(Method::POST, "/api/v1/clients", cred).form(&[("name", "Form Co")])).await;
            check(&r, 415, "unsupported_media_type", "form body to the API");
            let r = t.send(t.api(Method::POST, "/api/v1/clients", cred)).await;
            check(&r, 415, "unsupported_media_type", "no body at all");
            // Invalid UTF-8 inside a JSON string.
            let r = t.send(raw(Method::POST, "/api/v1/clients", cred, j, b"{\"name\": \"Bad \xff\xfe name\"}".to_vec())).await;
            check(&r, 400, "malformed_json", "invalid UTF-8");
            // Too large: over 256 KiB.
            let big = format!("{{\"name\": \"{}\"}}", "x".repeat(300 * 1024));
            // The server answers before reading the rest of the body and then drops the
            // connection: do not let the client reuse it for the next request.
            let r = t
                .send(raw(Method::POST, "/api/v1/clients", cred, j, big.into_bytes()).header("connection", "close"))
                .await;
            check(&r, 413, "body_too_large", "300 KiB body");
        }
        // NewToken refuses unknown fields too (tokens are made with a session).
        let r = t.send(t.api(Method::POST, "/api/v1/tokens", &session).json(&json!({"name": "x", "capabilities": ["clients:read"], "expires_in_days": 3, "owner": "someone"}))).await;
        check(&r, 422, "invalid_body", "NewToken with an unknown field");
        let r = t.send(t.api(Method::POST, "/api/v1/tokens", &session).json(&json!({"name": "x", "capabilities": ["root"], "expires_in_days": 3}))).await;
        check(&r, 422, "invalid_body", "NewToken with an unknown capability");
        // Valid JSON, invalid values: field-level errors.
        let r = t.send(t.api(Method::POST, "/api/v1/clients", &tok).json(&json!({"name": "   "}))).await;
        let p = r.assert_problem(422, "validation_failed");
        assert_eq!(p["errors"][0]["field"], "name", "{}", r.text);

        assert_eq!(t.audit_head().await, head, "a refused body changed something");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_queries_and_cursors_are_refused_with_problems() {
    common::run(|t: Arc<TestApp>| async move {
        let (_, secret) = t.token_for(&t.w.padmin, &Capability::ALL, None).await;
        let tok = Cred::Bearer(secret);
        let session = t.sign_in(&t.w.it_a).await.cred();
        for path in [
            "/api/v1/clients/not-a-uuid",
            "/api/v1/clients/123/sites",
            "/api/v1/users/%00",
            "/api/v1/users/00000000-0000-0000-0000-00000000000g",
        ] {
            let r = t.send(t.api(Method::GET, path, &tok)).await;
            check(&r, 404, "not_found", path);
        }
        let r = t
            .send(
                t.api(Method::PATCH, "/api/v1/users/nope", &tok)
                    .json(&json!({"display_name": "x"})),
            )
            .await;
        check(&r, 404, "not_found", "PATCH a bad user id");
        let r = t
            .send(t.api(Method::DELETE, "/api/v1/tokens/nope", &session))
            .await;
        check(&r, 404, "not_found", "DELETE a bad token id");
        // A well-formed id that names nothing.
        let r = t
            .send(t.api(
                Method::GET,
                &format!("/api/v1/clients/{}", uuid::Uuid::now_v7()),
                &tok,
            ))
            .await;
        check(&r, 404, "not_found", "unknown client");

        for q in [
            "/api/v1/clients?limit=lots",
            "/api/v1/clients?limit=-1",
            "/api/v1/users?role=wizard",
            "/api/v1/users?client_id=acme",
            "/api/v1/audit?from=yesterday",
            "/api/v1/audit?to=2026-13-45T00:00:00Z",
            "/api/v1/audit?client_id=not-a-uuid",
            "/api/v1/audit?actor_id=42",
            "/api/v1/audit/export?format=xlsx",
            "/api/v1/audit/export?from=soon",
        ] {
            let r = t.send(t.api(Method::GET, q, &tok)).await;
            check(&r, 400, "invalid_query", q);
        }
        for q in [
            "/api/v1/clients?cursor=abc",
            "/api/v1/users?cursor=-5",
            "/api/v1/audit?cursor=later",
            "/api/v1/clients/{A}/sites?cursor=x",
        ] {
            let q = q.replace("{A}", &t.w.client_a.id.to_string());
            let r = t.send(t.api(Method::GET, &q, &tok)).await;
            check(&r, 400, "invalid_cursor", &q);
        }
        // A cursor the API gave out works.
        let r = t
            .send(t.api(Method::GET, "/api/v1/clients?limit=1", &tok))
            .await;
        assert_eq!(r.status, 200);
        let next = r.json()["next_cursor"]
            .as_str()
            .expect("two clients: a next page")
            .to_string();
        let r = t
            .send(t.api(
                Method::GET,
                &format!("/api/v1/clients?limit=1&cursor={next}"),
                &tok,
            ))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(1));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_unknown_routes_and_wrong_methods_get_problems() {
    common::run(|t: Arc<TestApp>| async move {
        let (expired_id, expired) = t
            .token_for(&t.w.padmin, &[Capability::ClientsRead], None)
            .await;
        t.sql(&format!(
            "UPDATE api_tokens SET expires_at = {} WHERE id = '{expired_id}'",
            tandem_domain::Timestamp::now().plus_seconds(-60).0
        ))
        .await;
        let (revoked_id, revoked) = t
            .token_for(&t.w.padmin, &[Capability::ClientsRead], None)
            .await;
        let s = t.sign_in(&t.w.padmin).await;
        let r = t
            .send(t.api(
                Method::DELETE,
                &format!("/api/v1/tokens/{revoked_id}"),
                &s.cred(),
            ))
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        let (_, live) = t
            .token_for(&t.w.padmin, &[Capability::ClientsRead], None)
            .await;
        let forged = format!(
            "{}{}",
            &live[..live.len() - 4],
            if live.ends_with("0000") {
                "1111"
            } else {
                "0000"
            }
        );
        for (what, tok) in [
            ("expired token", expired),
            ("revoked token", revoked),
            ("forged token", forged),
            ("random token", format!("tdm_{}", "ab".repeat(24))),
            ("not a token", "hello".to_string()),
        ] {
            let r = t
                .send(t.api(Method::GET, "/api/v1/me", &Cred::Bearer(tok)))
                .await;
            check(&r, 401, "unauthenticated", what);
        }
        let r = t
            .send(t.api(Method::GET, "/api/v1/me", &Cred::Bearer(live.clone())))
            .await;
        assert_eq!(r.status, 200, "the live token works: {}", r.text);

        for cookie in [
            "tandem_session=garbage",
            "tandem_session=",
            "tandem_session",
            "tandem_session=%%%; other=1",
            "=;;;=",
        ] {
            let r = t
                .send(
                    t.req(Method::GET, "/api/v1/me", &Cred::None)
                        .header(COOKIE, cookie),
                )
                .await;
            check(&r, 401, "unauthenticated", cookie);
            let r = t
                .send(t.req(Method::GET, "/", &Cred::None).header(COOKIE, cookie))
                .await;
            assert_eq!(r.status, 303, "page with cookie {cookie:?}");
            assert!(
                r.location().unwrap_or("").starts_with("/login"),
                "{:?}",
                r.location()
            );
        }
        let r = t
            .send(
                t.req(Method::GET, "/api/v1/me", &Cred::None)
                    .header("authorization", "Basic dXNlcjpwYXNz"),
            )
            .await;
        check(&r, 401, "unauthenticated", "basic auth");

        for path in [
            "/api/v1/nothing",
            "/api/v2/clients",
            "/api/v1/clients/x/y/z",
            "/api/",
        ] {
            let r = t
                .send(t.api(Method::GET, path, &Cred::Bearer(live.clone())))
                .await;
            check(&r, 404, "not_found", path);
        }
        let r = t
            .send(t.req(Method::GET, "/no-such-page", &Cred::None))
            .await;
        assert_eq!(r.status, 404);
        assert!(
            r.content_type().starts_with("text/html"),
            "unknown pages answer HTML: {}",
            r.content_type()
        );

        for (m, path) in [
            (Method::PUT, "/api/v1/clients"),
            (Method::DELETE, "/api/v1/me"),
            (Method::POST, "/api/v1/audit"),
            (Method::PATCH, "/api/v1/tokens"),
            (Method::DELETE, "/healthz"),
        ] {
            let r = t
                .send(t.api(m.clone(), path, &Cred::Bearer(live.clone())))
                .await;
            check(&r, 405, "method_not_allowed", &format!("{m} {path}"));
            assert!(
                r.headers.get("allow").is_some(),
                "405 for {m} {path} names the allowed methods"
            );
        }
    })
    .await;
}
