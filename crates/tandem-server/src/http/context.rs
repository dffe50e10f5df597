//! Who is calling, and the gate every route passes through.
//!
//! Each route in the route table names its [`Access`]. The gate resolves the caller from the
//! session cookie or the `Authorization: Bearer` token, refuses what the access kind does not
//! allow (deny by default), checks CSRF on every state-changing request made with a cookie,
//! and afterwards refuses to send a success for a request whose handler never asked for an
//! authorization decision: a forgotten check fails closed.

use crate::http::problem::{problem_response, Problem};
use crate::http::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http_body_util::BodyExt;
use std::sync::Arc;
use tandem_app::{Actor, Error, SessionInfo, SignInNext};
use tandem_domain::authz::Principal;
use tandem_domain::directory::User;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tandem_session";
/// The pre-sign-in CSRF cookie's name (double-submit on the sign-in form).
pub const LOGIN_CSRF_COOKIE: &str = "tandem_login_csrf";
/// The header API clients using a session cookie echo the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest form body accepted.
pub const FORM_LIMIT: usize = 64 * 1024;
/// The largest multipart form (a ticket import's file and its few fields).
pub const UPLOAD_LIMIT: usize = tandem_domain::ticket_import::MAX_BYTES + 64 * 1024;

/// What a route lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, metrics, the sign-in page, static files, the API description.
    Public,
    /// The sign-in form: anyone, with the pre-sign-in CSRF cookie echoed.
    SignIn,
    /// A session that may still owe its second factor: the MFA pages and sign-out.
    HalfSession,
    /// A fully signed-in browser session: the web UI. API tokens are refused.
    Page,
    /// The JSON API: a fully signed-in session or an API token.
    Api,
    /// Endpoint agents: no session, no API token; the handler checks the agent's
    /// enrollment token or request signature.
    Agent,
    /// Machine alert senders (ingest): no session, no API token, no agent signature; the
    /// handler checks the client's integration token in `Authorization: Bearer`.
    Ingest,
}

/// How the caller proved who they are.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Nobody.
    Anonymous,
    /// A browser session (possibly owing its second factor).
    Session(Arc<SessionInfo>),
    /// An API token.
    Token(Arc<Principal>),
}

/// The request context handlers receive.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// Who acts, for the use cases.
    pub actor: Actor,
    /// How they signed in.
    pub auth: Auth,
    /// This request's id.
    pub request_id: String,
}

impl Ctx {
    /// The signed-in person of a browser session.
    pub fn user(&self) -> Option<&User> {
        match &self.auth {
            Auth::Session(s) => Some(&s.user),
            _ => None,
        }
    }
    /// The session, if the caller has one.
    pub fn session(&self) -> Option<&SessionInfo> {
        match &self.auth {
            Auth::Session(s) => Some(s),
            _ => None,
        }
    }
    /// The session's CSRF token, for forms.
    pub fn csrf(&self) -> String {
        self.session()
            .map(|s| s.session.csrf_token.clone())
            .unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts.extensions.get::<Ctx>().cloned().ok_or_else(|| {
            tracing::error!("a handler asked for the request context outside the gate");
            problem_response(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Access was not checked.",
            ))
        })
    }
}

/// Reads one cookie from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure when served over TLS.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let mut c = cookie::Cookie::new(name.to_string(), value.to_string());
    c.set_http_only(true);
    c.set_same_site(cookie::SameSite::Lax);
    c.set_path("/");
    c.set_secure(secure);
    c.set_max_age(cookie::time::Duration::seconds(max_age_secs));
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn unsafe_method(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refusal in the form the route speaks: problem JSON for the API, a redirect for pages.
fn refuse(access: Access, status: StatusCode, code: &str, detail: &str, path: &str) -> Response {
    if matches!(access, Access::Page | Access::HalfSession) && status == StatusCode::UNAUTHORIZED {
        if code == "mfa_required" {
            return Redirect::to("/mfa").into_response();
        }
        let next = if path.starts_with('/') && !path.starts_with("//") {
            path
        } else {
            "/"
        };
        let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
        return Redirect::to(&format!("/login?{q}")).into_response();
    }
    if matches!(access, Access::Page | Access::HalfSession | Access::SignIn) {
        return crate::http::pages::error_page(status, detail);
    }
    problem_response(Problem::new(status, code, detail))
}

/// The gate. See the module documentation.
pub async fn gate(
    State((st, access)): State<(AppState, Access)>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let rid = request_id(&parts.headers);
    let path = parts.uri.path().to_string();
    let actor_for = |p: Option<Principal>| match p {
        Some(p) => Actor::person(p, Some(rid.clone())),
        None => Actor::anonymous(Some(rid.clone())),
    };

    // Who is it?
    // Public routes take no credentials: a bearer token there is not an API token (for
    // /metrics it is the metrics token, which the handler checks), so it is not refused.
    let token = if matches!(access, Access::Public | Access::Agent | Access::Ingest) {
        None
    } else {
        bearer(&parts.headers).map(str::to_string)
    };
    // Agent routes never look at human credentials, and human routes never at agent ones.
    let session_secret = if matches!(access, Access::Agent | Access::Ingest) {
        None
    } else {
        cookie(&parts.headers, SESSION_COOKIE)
    };
    let auth = if let Some(t) = token {
        if access != Access::Api {
            return refuse(
                access,
                StatusCode::UNAUTHORIZED,
                "token_not_allowed",
                "API tokens work only on /api/v1 routes.",
                &path,
            );
        }
        match st.app.token_principal(&t).await {
            Ok(p) => Auth::Token(Arc::new(p)),
            Err(Error::Unauthenticated) => {
                return refuse(
                    access,
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "The API token is not valid, has expired or was revoked.",
                    &path,
                )
            }
            Err(e) => return crate::http::problem::ApiError::from(e).into_response(),
        }
    } else if let Some(s) = session_secret {
        match st.app.session(&s).await {
            Ok(info) => Auth::Session(Arc::new(info)),
            Err(Error::Unauthenticated) => Auth::Anonymous,
            Err(e) => return crate::http::problem::ApiError::from(e).into_response(),
        }
    } else {
        Auth::Anonymous
    };

    // May they come in?
    let principal = match (&auth, access) {
        (_, Access::Public | Access::SignIn | Access::Agent | Access::Ingest) => None,
        (Auth::Anonymous, _) => {
            return refuse(
                access,
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Sign in, or send a valid API token.",
                &path,
            )
        }
        (Auth::Token(p), Access::Api) => Some((**p).clone()),
        (Auth::Token(_), _) => {
            return refuse(
                access,
                StatusCode::UNAUTHORIZED,
                "token_not_allowed",
                "API tokens work only on /api/v1 routes.",
                &path,
            )
        }
        (Auth::Session(s), Access::HalfSession) => Some(tandem_app::principal_of(&s.user)),
        (Auth::Session(s), Access::Page | Access::Api) => {
            if let Some(pending) = s.pending {
                let detail = match pending {
                    SignInNext::EnrollMfa => "Set up your authenticator app first.",
                    _ => "Complete the second sign-in step first.",
                };
                return refuse(
                    access,
                    StatusCode::UNAUTHORIZED,
                    "mfa_required",
                    detail,
                    &path,
                );
            }
            Some(tandem_app::principal_of(&s.user))
        }
    };
    // CSRF: every state-changing request carried by a cookie must echo a token.
    let mut body = Some(body);
    if unsafe_method(&parts.method) {
        let expected = match (&auth, access) {
            (_, Access::SignIn) => cookie(&parts.headers, LOGIN_CSRF_COOKIE),
            (Auth::Session(s), _) => Some(s.session.csrf_token.clone()),
            _ => None,
        };
        let needs_check = matches!(access, Access::SignIn) || matches!(auth, Auth::Session(_));
        if needs_check {
            let header_token = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let presented = match header_token {
                Some(t) => Some(t),
                None if access != Access::Api => {
                    // ticket import: the one upload form posts multipart/form-data, with
                    // its token in a `csrf` part; nowhere else is a multipart body read.
                    let multipart = parts
                        .headers
                        .get(axum::http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .filter(|_| parts.uri.path().ends_with("/ticket-import"))
                        .and_then(crate::http::multipart::boundary);
                    let limit = if multipart.is_some() {
                        UPLOAD_LIMIT
                    } else {
                        FORM_LIMIT
                    };
                    let bytes = match read_limited(body.take().unwrap_or_default(), limit).await {
                        Ok(b) => b,
                        Err(r) => return r,
                    };
                    let token = match &multipart {
                        Some(b) => crate::http::multipart::parse(&bytes, b)
                            .ok()
                            .and_then(|ps| ps.into_iter().find(|p| p.name == "csrf"))
                            .and_then(|p| String::from_utf8(p.data).ok()),
                        None => serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                            .ok()
                            .and_then(|f| f.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v)),
                    };
                    body = Some(Body::from(bytes));
                    token
                }
                None => None,
            };
            let ok = matches!((&expected, &presented), (Some(e), Some(p)) if !e.is_empty() && tandem_app_same(e, p));
            if !ok {
                let detail = "This form has expired or did not come from Tandem. Reload the page and try again.";
                return if access == Access::Api {
                    problem_response(Problem::new(
                        StatusCode::FORBIDDEN,
                        "csrf_failed",
                        "Requests made with a session cookie must send the X-CSRF-Token header.",
                    ))
                } else {
                    crate::http::pages::error_page(StatusCode::FORBIDDEN, detail)
                };
            }
        }
    }

    let actor = actor_for(principal);
    let decided = actor.decision_flag();
    let ctx = Ctx {
        actor,
        auth,
        request_id: rid,
    };
    parts.extensions.insert(ctx);
    let req = Request::from_parts(parts, body.unwrap_or_default());
    let resp = next.run(req).await;

    // Fail closed: a protected route whose handler never asked for a decision gets no success.
    let protected = matches!(access, Access::Page | Access::Api | Access::HalfSession);
    let ok_status = resp.status().is_success() || resp.status().is_redirection();
    if protected && ok_status && !decided.load(std::sync::atomic::Ordering::SeqCst) {
        tracing::error!(
            path,
            "handler answered without an authorization decision; refusing"
        );
        return refuse(
            access,
            StatusCode::FORBIDDEN,
            "authorization_not_checked",
            "This request was refused because its access was not checked.",
            &path,
        );
    }
    resp
}

fn tandem_app_same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn read_limited(body: Body, limit: usize) -> Result<Bytes, Response> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(crate::http::pages::error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is larger than Tandem accepts.",
        )),
    }
}
