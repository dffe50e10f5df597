//! The gate: a handler that forgets to ask for authorization fails closed, and public
//! routes stay public.

use crate::common;

use crate::common::{Cred, TestApp};
use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use reqwest::Method;
use std::sync::Arc;
use tandem_domain::authz::{Action, Capability};
use tandem_server::http::context::{Access, Ctx};
use tandem_server::http::{routes, AppState, HttpConfig, RouteSpec};

const SECRET_OUTPUT: &str = "handler output that must never be sent";

/// The real routes plus handlers that take `Ctx` but never ask for a decision, and one
/// control that does ask.
fn table_with_forgetful_handlers() -> Vec<RouteSpec> {
    let mut t = routes();
    t.push(RouteSpec::new(
        Method::GET,
        "/api/v1/forgetful",
        Access::Api,
        get(|_ctx: Ctx| async { SECRET_OUTPUT }),
    ));
    t.push(RouteSpec::new(
        Method::POST,
        "/api/v1/forgetful",
        Access::Api,
        post(|_ctx: Ctx| async { (AxumStatus::CREATED, SECRET_OUTPUT) }),
    ));
    t.push(RouteSpec::new(
        Method::GET,
        "/forgetful",
        Access::Page,
        get(|_ctx: Ctx| async { SECRET_OUTPUT }),
    ));
    t.push(RouteSpec::new(
        Method::GET,
        "/forgetful-redirect",
        Access::Page,
        get(|_ctx: Ctx| async { Redirect::to("/secret-place").into_response() }),
    ));
    t.push(RouteSpec::new(
        Method::GET,
        "/forgetful-half",
        Access::HalfSession,
        get(|_ctx: Ctx| async { SECRET_OUTPUT }),
    ));
    t.push(RouteSpec::new(
        Method::GET,
        "/api/v1/careful",
        Access::Api,
        get(|State(st): State<AppState>, ctx: Ctx| async move {
            match st.app.grant(&ctx.actor, Action::ClientsRead) {
                Ok(_) => (AxumStatus::OK, "asked and allowed").into_response(),
                Err(_) => (AxumStatus::FORBIDDEN, "asked and refused").into_response(),
            }
        }),
    ));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_never_asks_for_authorization_fails_closed() {
    common::run_with(
        HttpConfig::default(),
        table_with_forgetful_handlers,
        |t: Arc<TestApp>| async move {
            let (_, secret) = t.token_for(&t.w.padmin, &Capability::ALL, None).await;
            let token = Cred::Bearer(secret);
            let session = t.sign_in(&t.w.viewer_a).await.cred();

            // The control: a handler that asks gets its answer through.
            let ok = t.send(t.api(Method::GET, "/api/v1/careful", &token)).await;
            assert_eq!(ok.status, 200, "{}", ok.text);
            assert_eq!(ok.text, "asked and allowed");

            for cred in [&token, &session] {
                let r = t.send(t.api(Method::GET, "/api/v1/forgetful", cred)).await;
                r.assert_problem(403, "authorization_not_checked");
                assert!(!r.text.contains(SECRET_OUTPUT));
                let r = t.send(t.api(Method::POST, "/api/v1/forgetful", cred)).await;
                r.assert_problem(403, "authorization_not_checked");
                assert!(!r.text.contains(SECRET_OUTPUT));
            }
            for path in ["/forgetful", "/forgetful-redirect", "/forgetful-half"] {
                let r = t.send(t.req(Method::GET, path, &session)).await;
                assert_eq!(r.status, 403, "{path}: {} {:?}", r.status, r.location());
                assert!(r.location().is_none(), "{path} redirected anyway");
                assert!(
                    !r.text.contains(SECRET_OUTPUT),
                    "{path} sent the handler's output"
                );
            }
            // Nobody at all is stopped before the handler runs.
            let r = t
                .send(t.api(Method::GET, "/api/v1/forgetful", &Cred::None))
                .await;
            r.assert_problem(401, "unauthenticated");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_their_own_bearer_token() {
    let cfg = HttpConfig {
        secure_cookies: false,
        metrics_token: Some("metrics-s3cret-value".into()),
        ..HttpConfig::default()
    };
    common::run_with(cfg, routes, |t: Arc<TestApp>| async move {
        let r = t.send(t.req(Method::GET, "/metrics", &Cred::None)).await;
        assert_eq!(r.status, 401, "metrics without the token: {}", r.text);
        let r = t
            .send(t.req(Method::GET, "/metrics", &Cred::Bearer("wrong".into())))
            .await;
        assert_eq!(r.status, 401, "metrics with a wrong token");
        let r = t
            .send(t.req(
                Method::GET,
                "/metrics",
                &Cred::Bearer("metrics-s3cret-value".into()),
            ))
            .await;
        assert_eq!(
            r.status, 200,
            "metrics with the configured token: {}",
            r.text
        );
        assert!(r.text.contains("tandem_http_requests"), "{}", r.text);
        // An API token is not the metrics token.
        let (_, api) = t.token_for(&t.w.padmin, &Capability::ALL, None).await;
        let r = t
            .send(t.req(Method::GET, "/metrics", &Cred::Bearer(api)))
            .await;
        assert_eq!(r.status, 401);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    common::run(|t: Arc<TestApp>| async move {
        let s = t.sign_in(&t.w.it_a).await.cred();
        for (path, cred) in [
            ("/", &s),
            ("/login", &Cred::None),
            ("/api/v1/me", &s),
            ("/api/v1/nothing-here", &Cred::None),
            ("/clients", &Cred::None),
        ] {
            let r = t.send(t.req(Method::GET, path, cred)).await;
            let h = |k: &str| {
                r.headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
            assert_eq!(h("x-frame-options"), "DENY", "{path}");
            assert!(
                h("content-security-policy").contains("frame-ancestors 'none'"),
                "{path}"
            );
            assert!(!h("x-request-id").is_empty(), "{path} has no request id");
        }
        let page = t.send(t.req(Method::GET, "/", &s)).await;
        assert_eq!(
            page.headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "signed-in pages are not cached"
        );
    })
    .await;
}
