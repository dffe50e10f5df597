//! Mail in the web UI (issue #5): "Email me a sign-in link" and the link's own page, the
//! outbox for provider admins, a client's support address, and the account's mail
//! preferences.

use crate::http::context::{cookie, set_cookie, Ctx, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::http::pages::{
    back_with, chrome, fail, redirect_with, render, Chrome, ClientIp, FormFields, PageResult,
};
use crate::http::problem::problem_for;
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::HashMap;
use tandem_app::{Error, MailPreference, SignInNext};
use tandem_domain::authz::{authorize, Action};
use tandem_domain::mail::MailEvent;
use tandem_domain::{ClientId, Timestamp};
use tandem_store::Page;

// ---- sign-in links --------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login_link.html")]
struct LinkPage {
    demo: bool,
    csrf: String,
    /// The link's secret, when showing the "sign in" button.
    token: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

async fn link_page(
    st: &AppState,
    headers: &HeaderMap,
    token: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let csrf = cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|c| c.len() == 48)
        .unwrap_or_else(|| tandem_app::new_secret(24));
    let page = LinkPage {
        demo: st.app.is_demo().await.unwrap_or(false),
        csrf: csrf.clone(),
        token,
        notice,
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

/// GET /login/link — the form to ask for a sign-in link.
pub async fn link_form(State(st): State<AppState>, headers: HeaderMap) -> Response {
    link_page(&st, &headers, None, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct LinkRequestForm {
    #[allow(dead_code)]
    csrf: String,
    who: String,
}

/// POST /login/link — mails a sign-in link; says the same whether or not the person exists.
pub async fn request_link(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    axum::Form(f): axum::Form<LinkRequestForm>,
) -> Response {
    if f.who.trim().is_empty() || f.who.len() > 254 {
        return link_page(
            &st,
            &headers,
            None,
            None,
            Some("Write your username or e-mail address.".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    match st.app.request_signin_link(&ctx.actor, &f.who, &ip).await {
        Ok(()) => {
            link_page(
                &st,
                &headers,
                None,
                // The input is not echoed: the answer is the same for anyone.
                Some(format!(
                    "If that belongs to someone here, a sign-in link is on its way to their e-mail address. It works once, within {} minutes.",
                    tandem_app::SIGNIN_LINK_SECONDS / 60
                )),
                None,
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            let p = problem_for(&e);
            let status = p.status();
            link_page(&st, &headers, None, None, Some(p.detail), status).await
        }
    }
}

/// GET /login/link/{link_token} — the page a sign-in mail links to. It only shows a button:
/// mail scanners that open links must not use up the link.
pub async fn link_landing(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let ok = token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit());
    if !ok {
        return link_page(
            &st,
            &headers,
            None,
            None,
            Some("This is not a sign-in link. Ask for a new one.".into()),
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    link_page(&st, &headers, Some(token), None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct LinkUseForm {
    #[allow(dead_code)]
    csrf: String,
    token: String,
}

/// POST /login/link/use — signs in with the link (once). People who must use a second
/// factor still owe it: the session goes to /mfa first.
pub async fn use_link(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    axum::Form(f): axum::Form<LinkUseForm>,
) -> Response {
    match st
        .app
        .use_signin_link(&ctx.actor, f.token.trim(), &ip)
        .await
    {
        Ok(s) => {
            let to = match s.next {
                SignInNext::Done => "/",
                SignInNext::VerifyMfa => "/mfa",
                SignInNext::EnrollMfa => "/mfa/setup",
            };
            let mut r = Redirect::to(to).into_response();
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
        Err(Error::BadCode) => {
            link_page(
                &st,
                &headers,
                None,
                None,
                Some("This sign-in link is not valid: it was already used or has expired. Ask for a new one below.".into()),
                StatusCode::UNAUTHORIZED,
            )
            .await
        }
        Err(e) => {
            let p = problem_for(&e);
            let status = p.status();
            link_page(&st, &headers, None, None, Some(p.detail), status).await
        }
    }
}

// ---- outbox ---------------------------------------------------------------------------

struct OutboxRow {
    id: String,
    created: String,
    to: String,
    subject: String,
    event: String,
    status: String,
    attempts: i64,
    error: String,
    ticket: Option<String>,
}

#[derive(Template)]
#[template(path = "mail_outbox.html")]
struct OutboxPage {
    chrome: Chrome,
    rows: Vec<OutboxRow>,
    status: String,
    mail_on: bool,
}

/// GET /mail/outbox — provider admins: what was sent, what waits, what failed.
pub async fn outbox(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let status = q.get("status").cloned().filter(|s| !s.is_empty());
    let items = st
        .app
        .list_outbox(&ctx.actor, status.as_deref(), Page::new(0, 200))
        .await
        .map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "mail", None).await?;
    let tz = chrome.time_zone.clone();
    let rows = items
        .items
        .into_iter()
        .map(|m| OutboxRow {
            created: m.created_at.display_in(&tz),
            ticket: m.ticket_id.map(|t| t.to_string()),
            id: m.id,
            to: m.to,
            subject: m.subject,
            event: m.event.replace('_', " "),
            status: m.status,
            attempts: m.attempts,
            error: m.last_error.unwrap_or_default(),
        })
        .collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &OutboxPage {
            chrome,
            rows,
            status: status.unwrap_or_default(),
            mail_on: st.app.mail_settings().is_some(),
        },
        clear,
    ))
}

/// GET /mail/outbox.csv
pub async fn outbox_csv(
    State(st): State<AppState>,
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let status = q.get("status").cloned().filter(|s| !s.is_empty());
    let all = st
        .app
        .list_outbox(&ctx.actor, status.as_deref(), Page::new(0, 100_000))
        .await
        .map_err(fail)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"tandem-mail-outbox.csv\"",
            ),
        ],
        crate::http::api_mail::outbox_csv(&all.items),
    )
        .into_response())
}

/// POST /mail/outbox/{mail_id}/resend
pub async fn resend(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let to = "/mail/outbox?status=failed";
    if id.parse::<uuid::Uuid>().is_err() {
        return fail(Error::NotFound("message"));
    }
    match st.app.resend_mail(&ctx.actor, &id).await {
        Ok(()) => redirect_with(
            to,
            Some("Queued again; it goes out within a few seconds."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, to, e),
    }
}

// ---- support address ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "mail_support_address.html")]
struct SupportPage {
    chrome: Chrome,
    client_id: String,
    client_name: String,
    address: String,
    can_edit: bool,
}

/// GET /clients/{client_id}/support-address
pub async fn support_address(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(client): Path<ClientId>,
) -> PageResult {
    let c = st.app.get_client(&ctx.actor, client).await.map_err(fail)?;
    let address = st
        .app
        .support_address(&ctx.actor, client)
        .await
        .map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "clients", Some(client)).await?;
    let can_edit = ctx.actor.principal.as_ref().is_some_and(|p| {
        authorize(p, Action::SitesWrite, Timestamp::now())
            .is_ok_and(|g| g.check_client(client).is_ok())
    });
    let clear = chrome.clear_flash;
    Ok(render(
        &SupportPage {
            chrome,
            client_id: client.to_string(),
            client_name: c.name,
            address: address.unwrap_or_default(),
            can_edit,
        },
        clear,
    ))
}

/// POST /clients/{client_id}/support-address
pub async fn set_support_address(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(client): Path<ClientId>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let to = format!("/clients/{client}/support-address");
    let address = f.text("address");
    match st
        .app
        .set_support_address(&ctx.actor, client, Some(address.as_str()))
        .await
    {
        Ok(Some(a)) => redirect_with(
            &to,
            Some(&format!("Mail to {a} now opens tickets for this client.")),
            None,
            st.cfg.secure_cookies,
        ),
        Ok(None) => redirect_with(
            &to,
            Some("The support address is removed."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, &to, e),
    }
}

// ---- preferences ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "mail_preferences.html")]
struct PreferencesPage {
    chrome: Chrome,
    prefs: Vec<MailPreference>,
    email: String,
}

/// GET /account/mail
pub async fn preferences(State(st): State<AppState>, ctx: Ctx, headers: HeaderMap) -> PageResult {
    let prefs = st.app.mail_preferences(&ctx.actor).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "account", None).await?;
    let email = ctx.user().map(|u| u.email.clone()).unwrap_or_default();
    let clear = chrome.clear_flash;
    Ok(render(
        &PreferencesPage {
            chrome,
            prefs,
            email,
        },
        clear,
    ))
}

/// POST /account/mail — ticked boxes are the events that mail the caller.
pub async fn set_preferences(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let on: Vec<&str> = f.all("event").collect();
    let prefs: Vec<MailPreference> = MailEvent::ALL
        .into_iter()
        .map(|e| MailPreference {
            event: e,
            enabled: on.contains(&e.as_str()),
            label: String::new(),
        })
        .collect();
    match st.app.set_mail_preferences(&ctx.actor, &prefs).await {
        Ok(_) => redirect_with("/account/mail", Some("Saved."), None, st.cfg.secure_cookies),
        Err(e) => back_with(&st, "/account/mail", e),
    }
}
