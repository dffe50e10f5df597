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
                // A multipart form (files, issue #5): the token is its first field, read
                // without collecting the rest of the body (which streams on to the handler).
                None if access != Access::Api
                    && crate::http::api_attachments::is_multipart(&parts.headers) =>
                {
                    let boundary = match crate::http::api_attachments::boundary(&parts.headers) {
                        Ok(b) => b,
                        Err(p) => return crate::http::pages::error_page(p.status(), &p.detail),
                    };
                    let (token, rest) =
                        first_part_csrf(body.take().unwrap_or_default(), &boundary).await;
                    body = Some(rest);
                    token
                }
                None if access != Access::Api => {
                    let bytes =
                        match read_limited(body.take().unwrap_or_default(), FORM_LIMIT).await {
                            Ok(b) => b,
                            Err(r) => return r,
                        };
                    let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                        .ok()
                        .and_then(|f| f.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v));
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

/// Longest first part of a multipart form the gate reads to find the CSRF token.
const CSRF_PART_LIMIT: usize = 16 * 1024;

/// Reads a multipart body only as far as its first part, and returns that part's value if it
/// is the `csrf` field, with a body that replays what was read and then streams the rest.
async fn first_part_csrf(body: Body, boundary: &str) -> (Option<String>, Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut head: Vec<u8> = Vec::new();
    let mut token = None;
    while head.len() < CSRF_PART_LIMIT {
        match stream.next().await {
            Some(Ok(b)) => head.extend_from_slice(&b),
            _ => break,
        }
        match csrf_in_first_part(&head, boundary) {
            FirstPart::Csrf(t) => {
                token = Some(t);
                break;
            }
            FirstPart::Other => break,
            FirstPart::Incomplete => {}
        }
    }
    let replay =
        futures_util::stream::once(async move { Ok::<Bytes, axum::Error>(Bytes::from(head)) });
    (token, Body::from_stream(replay.chain(stream)))
}

/// What the start of a multipart body says about its first part.
#[derive(Debug, PartialEq, Eq)]
enum FirstPart {
    /// The first part is the `csrf` field, with this value.
    Csrf(String),
    /// The first part is something else (or the body is not multipart as expected).
    Other,
    /// More bytes are needed to tell.
    Incomplete,
}

fn csrf_in_first_part(head: &[u8], boundary: &str) -> FirstPart {
    let open = format!("--{boundary}\r\n");
    if head.len() < open.len() {
        return if open.as_bytes().starts_with(head) {
            FirstPart::Incomplete
        } else {
            FirstPart::Other
        };
    }
    if !head.starts_with(open.as_bytes()) {
        return FirstPart::Other;
    }
    let rest = &head[open.len()..];
    let Some(end_headers) = find(rest, b"\r\n\r\n") else {
        return FirstPart::Incomplete;
    };
    let headers = String::from_utf8_lossy(&rest[..end_headers]).to_ascii_lowercase();
    let is_csrf = headers.lines().any(|l| {
        l.starts_with("content-disposition:")
            && l.contains("form-data")
            && l.contains("name=\"csrf\"")
            && !l.contains("filename")
    });
    if !is_csrf {
        return FirstPart::Other;
    }
    let value = &rest[end_headers + 4..];
    let close = format!("\r\n--{boundary}");
    match find(value, close.as_bytes()) {
        Some(n) => match std::str::from_utf8(&value[..n]) {
            Ok(v) => FirstPart::Csrf(v.to_string()),
            Err(_) => FirstPart::Other,
        },
        None => FirstPart::Incomplete,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_read_from_the_first_part() {
        let b = "XyZ";
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok123\r\n--XyZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n\r\nhello\r\n--XyZ--\r\n";
        assert_eq!(
            csrf_in_first_part(body.as_bytes(), b),
            FirstPart::Csrf("tok123".into())
        );
        assert_eq!(
            csrf_in_first_part(&body.as_bytes()[..20], b),
            FirstPart::Incomplete
        );
        assert_eq!(
            csrf_in_first_part(&body.as_bytes()[..60], b),
            FirstPart::Incomplete
        );
        let other = "--XyZ\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nhi\r\n--XyZ--";
        assert_eq!(csrf_in_first_part(other.as_bytes(), b), FirstPart::Other);
        assert_eq!(csrf_in_first_part(b"garbage", b), FirstPart::Other);
    }
}
