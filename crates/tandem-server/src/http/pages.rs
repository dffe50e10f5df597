//! The web UI: server-rendered pages over the same use cases as the JSON API.

use crate::http::context::{cookie, set_cookie, Ctx, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::http::problem::problem_for;
use crate::http::AppState;
use askama::Template;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::net::SocketAddr;
use tandem_app::{AuditQuery, Error, NewClient, NewSite, NewToken, NewUser, SignInNext, UserPatch};
use tandem_domain::audit::AuditRecord;
use tandem_domain::authz::{authorize, Action, Capability, TechnicianAccess};
use tandem_domain::directory::User;
use tandem_domain::{ClientId, Role, Tenant, Timestamp, TokenId, UserId};
use tandem_store::directory::UserFilter;
use tandem_store::Page;

const FLASH_COOKIE: &str = "tandem_flash";

/// Time zones offered in pickers (any IANA name is accepted).
pub(crate) const ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Toronto",
    "Europe/London",
    "Europe/Berlin",
    "UTC",
];

pub(crate) type PageResult = Result<Response, Response>;

pub(crate) fn fail(e: Error) -> Response {
    let p = problem_for(&e);
    error_page(p.status(), &p.detail)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    demo: bool,
    title: String,
    detail: String,
}

/// A plain error page with a way back.
pub fn error_page(status: StatusCode, detail: &str) -> Response {
    let title = match status {
        StatusCode::NOT_FOUND => "Not found".to_string(),
        StatusCode::FORBIDDEN => "Not allowed".to_string(),
        StatusCode::UNAUTHORIZED => "Sign-in needed".to_string(),
        s => s.canonical_reason().unwrap_or("Error").to_string(),
    };
    let body = ErrorPage {
        demo: false,
        title,
        detail: detail.to_string(),
    }
    .render()
    .unwrap_or_else(|_| detail.to_string());
    (status, Html(body)).into_response()
}

pub(crate) fn render(t: &impl Template, clear_flash: bool) -> Response {
    match t.render() {
        Ok(html) => {
            let mut r = Html(html).into_response();
            if clear_flash {
                r.headers_mut()
                    .append(header::SET_COOKIE, set_cookie(FLASH_COOKIE, "", 0, false));
            }
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "This page could not be drawn. It has been logged.",
            )
        }
    }
}

/// Redirects with a one-time message shown on the next page.
pub(crate) fn redirect_with(
    to: &str,
    notice: Option<&str>,
    error: Option<&str>,
    secure: bool,
) -> Response {
    let mut r = Redirect::to(to).into_response();
    let v = serde_urlencoded::to_string([("n", notice.unwrap_or("")), ("e", error.unwrap_or(""))])
        .unwrap_or_default();
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(FLASH_COOKIE, &v, 60, secure));
    r
}

/// Redirects back to a form with the use case's complaint, or shows an error page for
/// failures that are not about the input.
pub(crate) fn back_with(st: &AppState, to: &str, e: Error) -> Response {
    match &e {
        Error::Invalid(_) | Error::Conflict(_) | Error::Forbidden(_) => {
            let p = problem_for(&e);
            redirect_with(to, None, Some(&p.detail), st.cfg.secure_cookies)
        }
        _ => fail(e),
    }
}

// ---- chrome ---------------------------------------------------------------------------

pub(crate) struct NavItem {
    pub(crate) href: String,
    pub(crate) label: &'static str,
    pub(crate) active: bool,
}

pub(crate) struct Chrome {
    pub(crate) user_name: String,
    pub(crate) role_label: &'static str,
    pub(crate) side: &'static str,
    pub(crate) provider_name: String,
    pub(crate) demo: bool,
    pub(crate) csrf: String,
    pub(crate) time_zone: String,
    pub(crate) version: &'static str,
    pub(crate) nav: Vec<NavItem>,
    /// (id, name, selected)
    pub(crate) switcher: Vec<(String, String, bool)>,
    pub(crate) notice: Option<String>,
    pub(crate) errors: Vec<String>,
    pub(crate) clear_flash: bool,
}

pub(crate) async fn chrome(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    active: &str,
    selected: Option<ClientId>,
) -> Result<Chrome, Response> {
    let user = ctx.user().ok_or_else(|| fail(Error::Unauthenticated))?;
    let p = ctx
        .actor
        .principal
        .as_ref()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let can = |a| authorize(p, a, Timestamp::now()).is_ok();
    let mut nav = vec![NavItem {
        href: "/".into(),
        label: "Overview",
        active: active == "home",
    }];
    if can(Action::ClientsRead) {
        match user.client_id {
            None => nav.push(NavItem {
                href: "/clients".into(),
                label: "Clients",
                active: active == "clients",
            }),
            Some(c) => nav.push(NavItem {
                href: format!("/clients/{c}"),
                label: "Our company",
                active: active == "clients",
            }),
        }
    }
    if can(Action::TicketsRead) {
        nav.push(NavItem {
            href: "/tickets".into(),
            label: if user.role == tandem_domain::Role::EndUser {
                "My tickets"
            } else {
                "Tickets"
            },
            active: active == "tickets",
        });
    }
    if can(Action::EndpointsRead) {
        nav.push(NavItem {
            href: "/endpoints".into(),
            label: "Endpoints",
            active: active == "endpoints",
        });
    }
    // alerts (issue #6)
    if can(Action::AlertsRead) {
        nav.push(NavItem {
            href: "/alerts".into(),
            label: "Alerts",
            active: active == "alerts",
        });
    }
    if let (Some(c), true) = (user.client_id, can(Action::ScopeRead)) {
        nav.push(NavItem {
            href: format!("/clients/{c}/scope"),
            label: "Scope agreement",
            active: active == "scope",
        });
    }
    // on-call (issue #6)
    if can(Action::ScopeRead) {
        nav.push(NavItem {
            href: "/oncall".into(),
            label: "On-call",
            active: active == "oncall",
        });
    }
    if can(Action::DomainsManage) {
        nav.push(NavItem {
            href: "/scope/domains".into(),
            label: "Domains",
            active: active == "domains",
        });
    }
    if can(Action::UsersRead) {
        nav.push(NavItem {
            href: "/users".into(),
            label: "People",
            active: active == "users",
        });
    }
    if can(Action::AuditRead) {
        nav.push(NavItem {
            href: "/audit".into(),
            label: "Audit trail",
            active: active == "audit",
        });
    }
    if can(Action::TokensManage) {
        nav.push(NavItem {
            href: "/tokens".into(),
            label: "API tokens",
            active: active == "tokens",
        });
    }
    // Mail (issue #5): the outbox, for provider admins.
    if user.role == tandem_domain::Role::ProviderAdmin {
        nav.push(NavItem {
            href: "/mail/outbox".into(),
            label: "Mail outbox",
            active: active == "mail",
        });
    }
    nav.push(NavItem {
        href: "/account".into(),
        label: "Your account",
        active: active == "account",
    });
    let switcher = if can(Action::ClientsRead) {
        st.app
            .list_clients(&ctx.actor, Page::new(0, 500))
            .await
            .map_err(fail)?
            .items
            .into_iter()
            .map(|c| (c.id.to_string(), c.name, Some(c.id) == selected))
            .collect()
    } else {
        Vec::new()
    };
    let flash = cookie(headers, FLASH_COOKIE).unwrap_or_default();
    let flash: Vec<(String, String)> = serde_urlencoded::from_str(&flash).unwrap_or_default();
    let get = |k: &str| {
        flash
            .iter()
            .find(|(key, v)| key == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    Ok(Chrome {
        user_name: user.display_name.clone(),
        role_label: user.role.label(),
        side: user.role.side().as_str(),
        provider_name: st.app.provider_name().await.map_err(fail)?,
        demo: st.app.is_demo().await.map_err(fail)?,
        csrf: ctx.csrf(),
        time_zone: user.time_zone.clone(),
        version: env!("CARGO_PKG_VERSION"),
        nav,
        switcher,
        notice: get("n"),
        errors: get("e").into_iter().collect(),
        clear_flash: !flash.is_empty(),
    })
}

pub(crate) fn ts(t: Timestamp, tz: &str) -> String {
    t.display_in(tz)
}

// ---- sign-in --------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    demo: bool,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct NextParam {
    next: Option<String>,
}

fn safe_next(n: Option<&str>) -> String {
    match n {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

async fn login_page(
    st: &AppState,
    headers: &HeaderMap,
    next: &str,
    username: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let csrf = cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|c| c.len() == 48)
        .unwrap_or_else(|| tandem_app::new_secret(24));
    let page = LoginPage {
        demo: st.app.is_demo().await.unwrap_or(false),
        csrf: csrf.clone(),
        next: next.to_string(),
        username: username.to_string(),
        error,
    };
    let mut r = render(&page, false);
    *r.status_mut() = status;
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, &csrf, 3600, st.cfg.secure_cookies),
    );
    r
}

/// GET /login
pub async fn login_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextParam>,
) -> Response {
    login_page(
        &st,
        &headers,
        &safe_next(q.next.as_deref()),
        "",
        None,
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[allow(dead_code)]
    csrf: String,
    username: String,
    password: String,
    next: Option<String>,
}

/// The caller's network address, for sign-in throttling ("unknown" when not served over TCP).
pub struct ClientIp(pub(crate) String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

/// POST /login
pub async fn login_submit(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    axum::Form(f): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    match st
        .app
        .sign_in(&ctx.actor, &f.username, &f.password, &ip)
        .await
    {
        Ok(s) => {
            let to = match s.next {
                SignInNext::Done => next,
                SignInNext::VerifyMfa => "/mfa".to_string(),
                SignInNext::EnrollMfa => "/mfa/setup".to_string(),
            };
            let mut r = Redirect::to(&to).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    &s.session_secret,
                    st.app.policy().session_ttl_secs,
                    st.cfg.secure_cookies,
                ),
            );
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(LOGIN_CSRF_COOKIE, "", 0, st.cfg.secure_cookies),
            );
            r
        }
        Err(e) => {
            let p = problem_for(&e);
            let status = p.status();
            login_page(&st, &headers, &next, &f.username, Some(p.detail), status).await
        }
    }
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage {
    demo: bool,
    csrf: String,
    error: Option<String>,
}

/// GET /mfa
pub async fn mfa_form(State(st): State<AppState>, ctx: Ctx) -> Response {
    ctx.actor.note_self_service();
    match ctx.session().and_then(|s| s.pending) {
        None => Redirect::to("/").into_response(),
        Some(SignInNext::EnrollMfa) => Redirect::to("/mfa/setup").into_response(),
        Some(_) => render(
            &MfaPage {
                demo: st.app.is_demo().await.unwrap_or(false),
                csrf: ctx.csrf(),
                error: None,
            },
            false,
        ),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[allow(dead_code)]
    csrf: String,
    code: String,
}

/// POST /mfa
pub async fn mfa_submit(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<CodeForm>,
) -> Response {
    let Some(info) = ctx.session() else {
        return fail(Error::Unauthenticated);
    };
    match st.app.verify_mfa(&ctx.actor, info, &f.code).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => {
            let p = problem_for(&e);
            let status = p.status();
            let mut r = render(
                &MfaPage {
                    demo: st.app.is_demo().await.unwrap_or(false),
                    csrf: ctx.csrf(),
                    error: Some(p.detail),
                },
                false,
            );
            *r.status_mut() = status;
            r
        }
    }
}

#[derive(Template)]
#[template(path = "mfa_setup.html")]
struct MfaSetupPage {
    demo: bool,
    csrf: String,
    qr_svg: String,
    secret: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "recovery.html")]
struct RecoveryPage {
    demo: bool,
    codes: Vec<String>,
}

fn qr_svg(data: &str) -> String {
    match qrcode::QrCode::new(data.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

async fn mfa_setup_page(
    st: &AppState,
    ctx: &Ctx,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let Some(info) = ctx.session() else {
        return fail(Error::Unauthenticated);
    };
    match st.app.begin_mfa_enrollment(&ctx.actor, info).await {
        Ok(en) => {
            let mut r = render(
                &MfaSetupPage {
                    demo: st.app.is_demo().await.unwrap_or(false),
                    csrf: ctx.csrf(),
                    qr_svg: qr_svg(&en.otpauth_url),
                    secret: en.secret_base32,
                    error,
                },
                false,
            );
            *r.status_mut() = status;
            r
        }
        Err(Error::MfaRequired) => Redirect::to("/mfa").into_response(),
        Err(e) => fail(e),
    }
}

/// GET /mfa/setup
pub async fn mfa_setup_form(State(st): State<AppState>, ctx: Ctx) -> Response {
    mfa_setup_page(&st, &ctx, None, StatusCode::OK).await
}

/// POST /mfa/setup
pub async fn mfa_setup_submit(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<CodeForm>,
) -> Response {
    let Some(info) = ctx.session() else {
        return fail(Error::Unauthenticated);
    };
    match st
        .app
        .confirm_mfa_enrollment(&ctx.actor, info, &f.code)
        .await
    {
        Ok(codes) => render(
            &RecoveryPage {
                demo: st.app.is_demo().await.unwrap_or(false),
                codes,
            },
            false,
        ),
        Err(e) => {
            let p = problem_for(&e);
            let status = p.status();
            mfa_setup_page(&st, &ctx, Some(p.detail), status).await
        }
    }
}

/// POST /logout
pub async fn logout(State(st): State<AppState>, ctx: Ctx) -> Response {
    if let Some(info) = ctx.session() {
        if let Err(e) = st.app.sign_out(&ctx.actor, info).await {
            return fail(e);
        }
    }
    ctx.actor.note_self_service();
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, st.cfg.secure_cookies),
    );
    r
}

// ---- overview -------------------------------------------------------------------------

struct AuditRow {
    seq: i64,
    at: String,
    actor: String,
    side: &'static str,
    action: String,
    detail: String,
    target: String,
    client: String,
}

fn audit_rows(items: &[AuditRecord], tz: &str, names: &[(String, String, bool)]) -> Vec<AuditRow> {
    items
        .iter()
        .map(|r| {
            let e = &r.entry;
            let client = e
                .client_id
                .map(|c| {
                    let id = c.to_string();
                    names
                        .iter()
                        .find(|n| n.0 == id)
                        .map(|n| n.1.clone())
                        .unwrap_or_else(|| "—".into())
                })
                .unwrap_or_else(|| "provider".into());
            let detail = e
                .after
                .as_ref()
                .and_then(|v| v.as_object())
                .map(|o| {
                    o.iter()
                        .filter(|(k, v)| {
                            !k.ends_with("_id")
                                && !v.is_null()
                                && !v.is_object()
                                && !v.is_array()
                                && v.as_bool() != Some(false)
                        })
                        .take(3)
                        .map(|(k, v)| {
                            format!(
                                "{k}: {}",
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string())
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" · ")
                })
                .unwrap_or_default();
            AuditRow {
                seq: r.seq,
                at: ts(r.at, tz),
                actor: e.actor_label.clone(),
                side: e.actor_side.as_str(),
                action: e.action.clone(),
                detail,
                target: format!("{} {}", e.target_kind, short(&e.target_id)),
                client,
            }
        })
        .collect()
}

fn short(id: &str) -> String {
    if id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4 {
        format!("…{}", &id[30..])
    } else {
        id.to_string()
    }
}

struct ClientCard {
    id: String,
    name: String,
    demo: bool,
    sites: usize,
    local_times: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    first_name: String,
    intro: String,
    clients: Vec<ClientCard>,
    site_count: usize,
    people_count: usize,
    recent: Vec<AuditRow>,
    notifications: Vec<crate::http::pages_scope::NoteRow>,
}

/// GET /
pub async fn home(State(st): State<AppState>, ctx: Ctx, headers: HeaderMap) -> PageResult {
    let chrome = chrome(&st, &ctx, &headers, "home", None).await?;
    let user = ctx
        .user()
        .cloned()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    st.app.whoami(&ctx.actor).await.map_err(fail)?;
    let p = ctx
        .actor
        .principal
        .as_ref()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let can = |a| authorize(p, a, Timestamp::now()).is_ok();
    let mut clients = Vec::new();
    let mut site_count = 0;
    if can(Action::ClientsRead) {
        let cs = st
            .app
            .list_clients(&ctx.actor, Page::new(0, 500))
            .await
            .map_err(fail)?
            .items;
        let sites = st
            .app
            .list_sites(&ctx.actor, None, Page::new(0, 500))
            .await
            .map_err(fail)?
            .items;
        site_count = sites.len();
        for c in cs {
            let mine: Vec<_> = sites.iter().filter(|s| s.client_id == c.id).collect();
            let mut zones: Vec<&str> = mine.iter().map(|s| s.time_zone.as_str()).collect();
            zones.dedup();
            let now = Timestamp::now();
            let local_times = zones
                .iter()
                .map(|z| {
                    now.to_jiff()
                        .to_zoned(jiff::tz::TimeZone::get(z).unwrap_or(jiff::tz::TimeZone::UTC))
                        .strftime("%a %H:%M %Z")
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(" · ");
            clients.push(ClientCard {
                id: c.id.to_string(),
                name: c.name,
                demo: c.is_demo,
                sites: mine.len(),
                local_times,
            });
        }
    }
    let people_count = if can(Action::UsersRead) {
        st.app
            .list_users(&ctx.actor, &UserFilter::default(), Page::new(0, 500))
            .await
            .map_err(fail)?
            .items
            .len()
    } else {
        0
    };
    let recent = if can(Action::AuditRead) {
        let items = st
            .app
            .list_audit(&ctx.actor, &AuditQuery::default(), 10)
            .await
            .map_err(fail)?;
        audit_rows(&items, &user.time_zone, &chrome.switcher)
    } else {
        Vec::new()
    };
    let intro = match user.role {
        Role::ProviderAdmin => "You run the provider side: every client, its people and its trail.".to_string(),
        Role::ProviderTechnician => "These are the clients you work on.".to_string(),
        Role::ClientItAdmin => "You are the internal IT person: everything about your company, shared with your provider.".to_string(),
        Role::ClientViewer => "A read-only view of your company's IT, shared by your IT person and your provider.".to_string(),
        Role::Auditor => format!(
            "Read-only access for your review{}.",
            user.access_expires_at.map(|t| format!(", until {}", ts(t, &user.time_zone))).unwrap_or_default()
        ),
        Role::EndUser => "You are signed in. Your IT team manages this system; your account details are under “Your account”.".to_string(),
    };
    let first_name = user
        .display_name
        .split_whitespace()
        .find(|w| !w.ends_with('.'))
        .unwrap_or(&user.display_name)
        .to_string();
    let notifications = crate::http::pages_scope::note_rows(&st, &ctx, &user.time_zone).await?;
    let clear = chrome.clear_flash;
    Ok(render(
        &HomePage {
            chrome,
            first_name,
            intro,
            clients,
            site_count,
            people_count,
            recent,
            notifications,
        },
        clear,
    ))
}

#[derive(Deserialize)]
pub struct GoParams {
    client: Option<String>,
}

/// GET /go — the client switcher.
pub async fn go(ctx: Ctx, Query(q): Query<GoParams>) -> Response {
    ctx.actor.note_self_service();
    match q.client.as_deref().and_then(|c| c.parse::<ClientId>().ok()) {
        Some(c) => Redirect::to(&format!("/clients/{c}")).into_response(),
        None => Redirect::to("/clients").into_response(),
    }
}

// ---- clients --------------------------------------------------------------------------

struct ClientRow {
    id: String,
    name: String,
    slug: String,
    demo: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "clients.html")]
struct ClientsPage {
    chrome: Chrome,
    clients: Vec<ClientRow>,
    can_create: bool,
}

/// GET /clients
pub async fn clients(State(st): State<AppState>, ctx: Ctx, headers: HeaderMap) -> PageResult {
    let chrome = chrome(&st, &ctx, &headers, "clients", None).await?;
    let tz = chrome.time_zone.clone();
    let list = st
        .app
        .list_clients(&ctx.actor, Page::new(0, 500))
        .await
        .map_err(fail)?
        .items;
    let p = ctx
        .actor
        .principal
        .as_ref()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let can_create = authorize(p, Action::ClientsWrite, Timestamp::now()).is_ok();
    let clients = list
        .into_iter()
        .map(|c| ClientRow {
            id: c.id.to_string(),
            name: c.name,
            slug: c.slug,
            demo: c.is_demo,
            created: ts(c.created_at, &tz),
        })
        .collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &ClientsPage {
            chrome,
            clients,
            can_create,
        },
        clear,
    ))
}

/// GET /clients.csv
pub async fn clients_csv(State(st): State<AppState>, ctx: Ctx) -> PageResult {
    let list = st
        .app
        .list_clients(&ctx.actor, Page::new(0, 500))
        .await
        .map_err(fail)?
        .items;
    let mut out = String::from("id,name,slug,demo,created_at\n");
    for c in list {
        out.push_str(&csv_row(&[
            c.id.to_string(),
            c.name,
            c.slug,
            c.is_demo.to_string(),
            c.created_at.to_rfc3339(),
        ]));
    }
    Ok(csv_response("tandem-clients.csv", out))
}

/// One CSV line, each cell quoted and defused the same way as the API's exports.
fn csv_row(cells: &[String]) -> String {
    let mut row = cells
        .iter()
        .map(|c| crate::http::api::csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    row.push('\n');
    row
}

fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct NameForm {
    #[allow(dead_code)]
    csrf: String,
    name: String,
}

/// POST /clients
pub async fn create_client(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<NameForm>,
) -> Response {
    match st
        .app
        .create_client(&ctx.actor, NewClient { name: f.name }, false)
        .await
    {
        Ok(c) => redirect_with(
            &format!("/clients/{}", c.id),
            Some("Client added. Next: add its sites and people."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/clients", e),
    }
}

struct SiteRow {
    name: String,
    time_zone: String,
    local_now: String,
    address: String,
}

struct UserRow {
    id: String,
    name: String,
    username: String,
    org: String,
    role: &'static str,
    side: &'static str,
    mfa_enrolled: bool,
    mfa_required: bool,
    disabled: bool,
    status: String,
}

fn user_rows(
    users: &[User],
    switcher: &[(String, String, bool)],
    provider: &str,
    tz: &str,
) -> Vec<UserRow> {
    users
        .iter()
        .map(|u| user_row(u, switcher, provider, tz))
        .collect()
}

fn user_row(u: &User, switcher: &[(String, String, bool)], provider: &str, tz: &str) -> UserRow {
    let org = match u.client_id {
        None => provider.to_string(),
        Some(c) => {
            let id = c.to_string();
            switcher
                .iter()
                .find(|s| s.0 == id)
                .map(|s| s.1.clone())
                .unwrap_or_else(|| "a client".into())
        }
    };
    let status = match u.access_expires_at {
        Some(t) if t <= Timestamp::now() => "access ended".to_string(),
        Some(t) => format!("until {}", ts(t, tz)),
        None => "active".to_string(),
    };
    UserRow {
        id: u.id.to_string(),
        name: u.display_name.clone(),
        username: u.username.clone(),
        org,
        role: u.role.label(),
        side: u.role.side().as_str(),
        mfa_enrolled: u.mfa_enrolled,
        mfa_required: u.mfa_required || u.role.mfa_required_by_default(),
        disabled: u.disabled,
        status,
    }
}

#[derive(Template)]
#[template(path = "client.html")]
struct ClientPage {
    chrome: Chrome,
    id: String,
    name: String,
    demo: bool,
    sites: Vec<SiteRow>,
    users: Vec<UserRow>,
    recent: Vec<AuditRow>,
    can_add_site: bool,
    can_add_user: bool,
    zones: &'static [&'static str],
    /// ingest: may manage the client's integration tokens.
    can_integrations: bool,
    /// CSV ticket import (issue #5): may import the client's tickets.
    can_import: bool,
}

/// GET /clients/{id}
pub async fn client(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id: ClientId = id.parse().map_err(|_| fail(Error::NotFound("client")))?;
    let c = st.app.get_client(&ctx.actor, id).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "clients", Some(id)).await?;
    let tz = chrome.time_zone.clone();
    let now = Timestamp::now();
    let sites = st
        .app
        .list_sites(&ctx.actor, Some(id), Page::new(0, 500))
        .await
        .map_err(fail)?
        .items
        .into_iter()
        .map(|s| SiteRow {
            local_now: ts(now, &s.time_zone),
            name: s.name,
            time_zone: s.time_zone,
            address: s.address,
        })
        .collect();
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let can = |a| authorize(&p, a, Timestamp::now()).is_ok_and(|g| g.check_client(id).is_ok());
    let users = if can(Action::UsersRead) {
        let f = UserFilter {
            tenant: Some(Tenant::Client(id)),
            ..Default::default()
        };
        let list = st
            .app
            .list_users(&ctx.actor, &f, Page::new(0, 500))
            .await
            .map_err(fail)?
            .items;
        user_rows(&list, &chrome.switcher, &chrome.provider_name, &tz)
    } else {
        Vec::new()
    };
    let recent = if can(Action::AuditRead) {
        let q = AuditQuery {
            client_id: Some(id),
            ..Default::default()
        };
        audit_rows(
            &st.app.list_audit(&ctx.actor, &q, 10).await.map_err(fail)?,
            &tz,
            &chrome.switcher,
        )
    } else {
        Vec::new()
    };
    let clear = chrome.clear_flash;
    Ok(render(
        &ClientPage {
            can_add_site: can(Action::SitesWrite),
            can_add_user: can(Action::UsersWrite),
            can_integrations: can(Action::IntegrationsManage), // ingest
            can_import: can(Action::TicketsImport),            // CSV ticket import (issue #5)
            chrome,
            id: id.to_string(),
            name: c.name,
            demo: c.is_demo,
            sites,
            users,
            recent,
            zones: ZONES,
        },
        clear,
    ))
}

#[derive(Deserialize)]
pub struct SiteForm {
    #[allow(dead_code)]
    csrf: String,
    name: String,
    time_zone: String,
    #[serde(default)]
    address: String,
}

/// POST /clients/{id}/sites
pub async fn create_site(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<SiteForm>,
) -> Response {
    let Ok(id) = id.parse::<ClientId>() else {
        return fail(Error::NotFound("client"));
    };
    let back = format!("/clients/{id}");
    match st
        .app
        .create_site(
            &ctx.actor,
            id,
            NewSite {
                name: f.name,
                time_zone: f.time_zone,
                address: f.address,
            },
        )
        .await
    {
        Ok(_) => redirect_with(&back, Some("Site added."), None, st.cfg.secure_cookies),
        Err(e) => back_with(&st, &back, e),
    }
}

// ---- users ----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct UsersQuery {
    client_id: Option<String>,
    role: Option<String>,
    q: Option<String>,
    cursor: Option<u32>,
}

impl UsersQuery {
    // The error is the page to answer with; axum's Response is just over clippy's size limit.
    #[allow(clippy::result_large_err)]
    fn filter(&self) -> Result<UserFilter, Response> {
        let tenant = match self.client_id.as_deref() {
            None | Some("") => None,
            Some("provider") => Some(Tenant::Provider),
            Some(s) => Some(Tenant::Client(
                s.parse().map_err(|_| fail(Error::NotFound("client")))?,
            )),
        };
        let role =
            match self.role.as_deref() {
                None | Some("") => None,
                Some(r) => Some(r.parse::<Role>().map_err(|_| {
                    error_page(StatusCode::BAD_REQUEST, "Unknown role in the filter.")
                })?),
            };
        Ok(UserFilter {
            tenant,
            role,
            text: self.q.clone(),
        })
    }
}

fn role_options(
    p: &tandem_domain::authz::Principal,
    tenant_is_provider: Option<bool>,
) -> Vec<(String, String)> {
    Role::ALL
        .into_iter()
        .filter(|r| p.role == Role::ProviderAdmin || !r.is_provider())
        .filter(|r| tenant_is_provider.is_none_or(|prov| r.is_provider() == prov))
        .map(|r| (r.as_str().to_string(), r.label().to_string()))
        .collect()
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<UserRow>,
    roles: Vec<(String, String)>,
    filter_client: String,
    filter_role: String,
    filter_q: String,
    query: String,
    next_href: Option<String>,
    can_add_user: bool,
    show_provider_option: bool,
}

/// GET /users
pub async fn users(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<UsersQuery>,
) -> PageResult {
    let chrome = chrome(&st, &ctx, &headers, "users", None).await?;
    let f = q.filter()?;
    let page = Page::new(q.cursor.unwrap_or(0), 100);
    let r = st
        .app
        .list_users(&ctx.actor, &f, page)
        .await
        .map_err(fail)?;
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let query = serde_urlencoded::to_string([
        ("client_id", q.client_id.clone().unwrap_or_default()),
        ("role", q.role.clone().unwrap_or_default()),
        ("q", q.q.clone().unwrap_or_default()),
    ])
    .unwrap_or_default();
    let tz = chrome.time_zone.clone();
    let users = user_rows(&r.items, &chrome.switcher, &chrome.provider_name, &tz);
    let clear = chrome.clear_flash;
    Ok(render(
        &UsersPage {
            next_href: r
                .has_more
                .then(|| format!("/users?{query}&cursor={}", page.offset + page.limit)),
            users,
            roles: role_options(&p, None),
            filter_client: q.client_id.unwrap_or_default(),
            filter_role: q.role.unwrap_or_default(),
            filter_q: q.q.unwrap_or_default(),
            query,
            can_add_user: authorize(&p, Action::UsersWrite, Timestamp::now()).is_ok(),
            show_provider_option: p.tenant == Tenant::Provider,
            chrome,
        },
        clear,
    ))
}

/// GET /users.csv
pub async fn users_csv(
    State(st): State<AppState>,
    ctx: Ctx,
    Query(q): Query<UsersQuery>,
) -> PageResult {
    let f = q.filter()?;
    let r = st
        .app
        .list_users(&ctx.actor, &f, Page::new(0, Page::MAX_LIMIT))
        .await
        .map_err(fail)?;
    let mut out = String::from("id,username,display_name,email,role,client_id,disabled,mfa_enrolled,access_expires_at,created_at\n");
    for u in r.items {
        out.push_str(&csv_row(&[
            u.id.to_string(),
            u.username,
            u.display_name,
            u.email,
            u.role.as_str().to_string(),
            u.client_id.map(|c| c.to_string()).unwrap_or_default(),
            u.disabled.to_string(),
            u.mfa_enrolled.to_string(),
            u.access_expires_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            u.created_at.to_rfc3339(),
        ]));
    }
    Ok(csv_response("tandem-people.csv", out))
}

#[derive(Template)]
#[template(path = "user_new.html")]
struct NewUserPage {
    chrome: Chrome,
    roles: Vec<(String, String)>,
    preselect: String,
    show_provider_option: bool,
    zones: &'static [&'static str],
}

/// GET /users/new
pub async fn new_user_form(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<UsersQuery>,
) -> PageResult {
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    st.app.grant(&ctx.actor, Action::UsersWrite).map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "users", None).await?;
    let clear = chrome.clear_flash;
    Ok(render(
        &NewUserPage {
            roles: role_options(&p, None),
            preselect: q.client_id.unwrap_or_default(),
            show_provider_option: p.role == Role::ProviderAdmin,
            zones: ZONES,
            chrome,
        },
        clear,
    ))
}

/// A form's fields, repeated names kept (checkbox groups).
pub struct FormFields(pub(crate) Vec<(String, String)>);

impl FormFields {
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn text(&self, k: &str) -> String {
        self.get(k).unwrap_or("").to_string()
    }
}

fn date_end_of_day(s: &str, tz: &str) -> Option<Timestamp> {
    let d: jiff::civil::Date = s.parse().ok()?;
    let zoned = d
        .at(23, 59, 59, 0)
        .to_zoned(jiff::tz::TimeZone::get(tz).ok()?)
        .ok()?;
    Some(Timestamp(zoned.timestamp().as_microsecond()))
}

/// POST /users/new
pub async fn create_user(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let tz = ctx
        .user()
        .map(|u| u.time_zone.clone())
        .unwrap_or_else(|| "UTC".into());
    let role = match f.get("role").unwrap_or("").parse::<Role>() {
        Ok(r) => r,
        Err(_) => {
            return back_with(
                &st,
                "/users/new",
                Error::Invalid(vec![tandem_domain::validate::Invalid::new(
                    "role",
                    "choose a role",
                )]),
            )
        }
    };
    let client_id = match f.get("client_id").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse() {
            Ok(c) => Some(c),
            Err(_) => return fail(Error::NotFound("client")),
        },
    };
    let new = NewUser {
        client_id,
        username: f.text("username"),
        email: f.text("email"),
        display_name: f.text("display_name"),
        role,
        password: f.text("password"),
        time_zone: f
            .get("time_zone")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        technician: None,
        access_expires_at: f
            .get("access_expires_on")
            .filter(|s| !s.is_empty())
            .and_then(|d| date_end_of_day(d, &tz)),
    };
    match st.app.create_user(&ctx.actor, new).await {
        Ok(u) => redirect_with(&format!("/users/{}", u.id), Some("Person added. Give them their username and initial password through a channel you trust."), None, st.cfg.secure_cookies),
        Err(e) => back_with(&st, "/users/new", e),
    }
}

struct TechRow {
    id: String,
    name: String,
    allow: bool,
    deny: bool,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    chrome: Chrome,
    u: UserRow,
    email: String,
    time_zone: String,
    expires: Option<String>,
    created: String,
    tech_summary: String,
    can_edit: bool,
    roles: Vec<(String, String)>,
    role_key: String,
    is_technician: bool,
    all_clients: bool,
    tech_rows: Vec<TechRow>,
}

/// GET /users/{id}
pub async fn user(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id: UserId = id.parse().map_err(|_| fail(Error::NotFound("user")))?;
    let u = st.app.get_user(&ctx.actor, id).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "users", u.client_id).await?;
    let tz = chrome.time_zone.clone();
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let can_edit = authorize(&p, Action::UsersWrite, Timestamp::now())
        .is_ok_and(|g| tandem_domain::authz::may_assign_role(&g, u.role, u.tenant()).is_ok());
    let name_of = |c: &ClientId| {
        let id = c.to_string();
        chrome
            .switcher
            .iter()
            .find(|s| s.0 == id)
            .map(|s| s.1.clone())
            .unwrap_or_else(|| "a client".into())
    };
    let t = &u.technician;
    let tech_summary = if u.role != Role::ProviderTechnician {
        String::new()
    } else if t.all_clients {
        if t.deny.is_empty() {
            "every client".into()
        } else {
            format!(
                "every client except {}",
                t.deny.iter().map(name_of).collect::<Vec<_>>().join(", ")
            )
        }
    } else if t.allow.is_empty() {
        "no client yet".into()
    } else {
        t.allow
            .difference(&t.deny)
            .map(name_of)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tech_rows = chrome
        .switcher
        .iter()
        .map(|(cid, name, _)| TechRow {
            allow: t.allow.iter().any(|c| &c.to_string() == cid),
            deny: t.deny.iter().any(|c| &c.to_string() == cid),
            id: cid.clone(),
            name: name.clone(),
        })
        .collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &UserPage {
            u: user_row(&u, &chrome.switcher, &chrome.provider_name, &tz),
            email: u.email.clone(),
            time_zone: u.time_zone.clone(),
            expires: u.access_expires_at.map(|t| ts(t, &tz)),
            created: ts(u.created_at, &tz),
            tech_summary,
            can_edit,
            roles: role_options(&p, Some(u.role.is_provider())),
            role_key: u.role.as_str().to_string(),
            is_technician: u.role == Role::ProviderTechnician,
            all_clients: t.all_clients,
            tech_rows,
            chrome,
        },
        clear,
    ))
}

/// POST /users/{id}
pub async fn update_user(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let Ok(id) = id.parse::<UserId>() else {
        return fail(Error::NotFound("user"));
    };
    let f = FormFields(f);
    let back = format!("/users/{id}");
    let parse_ids = |k: &str| {
        f.all(k)
            .filter_map(|s| s.parse::<ClientId>().ok())
            .collect()
    };
    let role = f.get("role").and_then(|r| r.parse::<Role>().ok());
    let patch = UserPatch {
        email: f.get("email").map(str::to_string),
        display_name: f.get("display_name").map(str::to_string),
        role,
        time_zone: f
            .get("time_zone")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        disabled: f.get("disabled").map(|v| v == "true"),
        technician: (role == Some(Role::ProviderTechnician)).then(|| TechnicianAccess {
            all_clients: f.get("all_clients") == Some("true"),
            allow: parse_ids("allow"),
            deny: parse_ids("deny"),
        }),
        ..Default::default()
    };
    match st.app.update_user(&ctx.actor, id, patch).await {
        Ok(_) => redirect_with(&back, Some("Changes saved."), None, st.cfg.secure_cookies),
        Err(e) => back_with(&st, &back, e),
    }
}

/// POST /users/{id}/reset-mfa
pub async fn reset_mfa(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<UserId>() else {
        return fail(Error::NotFound("user"));
    };
    let back = format!("/users/{id}");
    match st.app.reset_mfa(&ctx.actor, id).await {
        Ok(_) => redirect_with(
            &back,
            Some("Two-step sign-in was reset; they will set it up again at next sign-in."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, &back, e),
    }
}

// ---- tokens ---------------------------------------------------------------------------

struct TokenRow {
    id: String,
    name: String,
    prefix: String,
    caps: String,
    client: String,
    expires: String,
    last_used: String,
    state: &'static str,
    live: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    tokens: Vec<TokenRow>,
    caps: Vec<&'static str>,
    new_secret: Option<String>,
}

async fn tokens_page(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    new_secret: Option<String>,
) -> PageResult {
    let chrome = chrome(st, ctx, headers, "tokens", None).await?;
    let tz = chrome.time_zone.clone();
    let now = Timestamp::now();
    let list = st.app.list_tokens(&ctx.actor).await.map_err(fail)?;
    let tokens = list
        .into_iter()
        .map(|t| {
            let (state, live) = if t.revoked_at.is_some() {
                ("revoked", false)
            } else if t.expires_at <= now {
                ("expired", false)
            } else {
                ("active", true)
            };
            TokenRow {
                id: t.id.to_string(),
                name: t.name,
                prefix: t.prefix,
                caps: t
                    .capabilities
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                client: t
                    .client_id
                    .map(|c| {
                        let id = c.to_string();
                        chrome
                            .switcher
                            .iter()
                            .find(|s| s.0 == id)
                            .map(|s| s.1.clone())
                            .unwrap_or_else(|| "a client".into())
                    })
                    .unwrap_or_else(|| "—".into()),
                expires: ts(t.expires_at, &tz),
                last_used: t
                    .last_used_at
                    .map(|x| ts(x, &tz))
                    .unwrap_or_else(|| "never".into()),
                state,
                live,
            }
        })
        .collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &TokensPage {
            chrome,
            tokens,
            caps: Capability::ALL.iter().map(|c| c.as_str()).collect(),
            new_secret,
        },
        clear,
    ))
}

/// GET /tokens
pub async fn tokens(State(st): State<AppState>, ctx: Ctx, headers: HeaderMap) -> PageResult {
    tokens_page(&st, &ctx, &headers, None).await
}

/// POST /tokens
pub async fn create_token(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormFields(f);
    let capabilities = f
        .all("capability")
        .filter_map(|c| c.parse::<Capability>().ok())
        .collect();
    let client_id = match f.get("client_id").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse().map_err(|_| fail(Error::NotFound("client")))?),
    };
    let new = NewToken {
        name: f.text("name"),
        capabilities,
        client_id,
        expires_in_days: f
            .get("expires_in_days")
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
    };
    match st.app.create_token(&ctx.actor, new).await {
        Ok((_, secret)) => {
            let mut r = tokens_page(&st, &ctx, &headers, Some(secret)).await?;
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(r)
        }
        Err(e) => Ok(back_with(&st, "/tokens", e)),
    }
}

/// POST /tokens/{id}/revoke
pub async fn revoke_token(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<TokenId>() else {
        return fail(Error::NotFound("token"));
    };
    match st.app.revoke_token(&ctx.actor, id).await {
        Ok(()) => redirect_with(
            "/tokens",
            Some("Token revoked. Anything using it stops working now."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/tokens", e),
    }
}

// ---- audit ----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct AuditPageQuery {
    client_id: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<i64>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    recent: Vec<AuditRow>,
    filter_client: String,
    filter_action: String,
    filter_from: String,
    filter_to: String,
    query: String,
    older_href: Option<String>,
}

/// GET /audit
#[allow(clippy::result_large_err)] // the closure below answers with the error page itself
pub async fn audit(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<AuditPageQuery>,
) -> PageResult {
    let client_id = match q.client_id.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<ClientId>()
                .map_err(|_| fail(Error::NotFound("client")))?,
        ),
    };
    let chrome = chrome(&st, &ctx, &headers, "audit", client_id).await?;
    let tz = chrome.time_zone.clone();
    let day = |d: &Option<String>, end: bool| -> Result<Option<Timestamp>, Response> {
        match d.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => {
                let date: jiff::civil::Date = s.parse().map_err(|_| {
                    error_page(StatusCode::BAD_REQUEST, "Dates must look like 2026-11-28.")
                })?;
                let date = if end {
                    date.tomorrow().unwrap_or(date)
                } else {
                    date
                };
                let z = date
                    .to_zoned(jiff::tz::TimeZone::get(&tz).unwrap_or(jiff::tz::TimeZone::UTC))
                    .map_err(|_| {
                        error_page(StatusCode::BAD_REQUEST, "That date is out of range.")
                    })?;
                Ok(Some(Timestamp(z.timestamp().as_microsecond())))
            }
        }
    };
    let query = AuditQuery {
        client_id,
        actor_id: None,
        action_prefix: q.action.clone().filter(|s| !s.is_empty()),
        from: day(&q.from, false)?,
        to: day(&q.to, true)?,
        before_seq: q.cursor,
    };
    let limit = 100;
    let items = st
        .app
        .list_audit(&ctx.actor, &query, limit)
        .await
        .map_err(fail)?;
    let mut api_query = Vec::new();
    if let Some(c) = client_id {
        api_query.push(("client_id", c.to_string()));
    }
    if let Some(a) = &query.action_prefix {
        api_query.push(("action", a.clone()));
    }
    if let Some(t) = query.from {
        api_query.push(("from", t.to_rfc3339()));
    }
    if let Some(t) = query.to {
        api_query.push(("to", t.to_rfc3339()));
    }
    let page_query = serde_urlencoded::to_string([
        ("client_id", q.client_id.clone().unwrap_or_default()),
        ("action", q.action.clone().unwrap_or_default()),
        ("from", q.from.clone().unwrap_or_default()),
        ("to", q.to.clone().unwrap_or_default()),
    ])
    .unwrap_or_default();
    let older_href = (items.len() == limit as usize)
        .then(|| {
            items
                .last()
                .map(|r| format!("/audit?{page_query}&cursor={}", r.seq))
        })
        .flatten();
    let recent = audit_rows(&items, &tz, &chrome.switcher);
    let clear = chrome.clear_flash;
    Ok(render(
        &AuditPage {
            recent,
            filter_client: q.client_id.unwrap_or_default(),
            filter_action: q.action.unwrap_or_default(),
            filter_from: q.from.unwrap_or_default(),
            filter_to: q.to.unwrap_or_default(),
            query: serde_urlencoded::to_string(&api_query).unwrap_or_default(),
            older_href,
            chrome,
        },
        clear,
    ))
}

// ---- account --------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    name: String,
    username: String,
    role: &'static str,
    org: String,
    time_zone: String,
    mfa_enrolled: bool,
    recovery_left: i64,
}

/// GET /account
pub async fn account(State(st): State<AppState>, ctx: Ctx, headers: HeaderMap) -> PageResult {
    let u = st.app.whoami(&ctx.actor).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "account", None).await?;
    let recovery_left = st.app.recovery_codes_left(&ctx.actor).await.map_err(fail)?;
    let org = user_row(
        &u,
        &chrome.switcher,
        &chrome.provider_name,
        &chrome.time_zone,
    )
    .org;
    let clear = chrome.clear_flash;
    Ok(render(
        &AccountPage {
            chrome,
            name: u.display_name,
            username: u.username,
            role: u.role.label(),
            org,
            time_zone: u.time_zone,
            mfa_enrolled: u.mfa_enrolled,
            recovery_left,
        },
        clear,
    ))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[allow(dead_code)]
    csrf: String,
    current_password: String,
    password: String,
}

/// POST /account/password
pub async fn change_password(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<PasswordForm>,
) -> Response {
    match st
        .app
        .change_own_password(&ctx.actor, &f.current_password, &f.password)
        .await
    {
        Ok(()) => redirect_with(
            "/account",
            Some("Password changed."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/account", e),
    }
}
