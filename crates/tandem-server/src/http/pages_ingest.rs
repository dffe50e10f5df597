//! Ingest pages (issue #6): a client's integration tokens — make one (its secret shown once,
//! with the Alertmanager configuration to paste), see when each was last used, revoke.

use crate::http::context::Ctx;
use crate::http::pages::{
    back_with, chrome, fail, redirect_with, render, Chrome, FormFields, PageResult,
};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;

use tandem_app::{Actor, Error, NewIntegrationToken};
use tandem_domain::helpdesk::{Impact, Urgency};
use tandem_domain::monitoring::{AlertTicketRule, TicketMode};
use tandem_domain::{ClientId, IntegrationTokenId};
use tandem_store::Page;

struct IntegrationRow {
    id: String,
    label: String,
    prefix: String,
    default_domain: String,
    created: String,
    last_used: String,
    live: bool,
    state: &'static str,
    /// The ticket rule in words, and its form values (issue #6).
    ticket: String,
    ticket_mode: String,
    ticket_impact: String,
    ticket_urgency: String,
}

/// The ticket rule from a form's `ticket_mode`, `ticket_impact` and `ticket_urgency` (empty
/// impact or urgency: by the alert's severity).
pub(crate) fn ticket_rule_from_form(f: &FormFields) -> Result<AlertTicketRule, Error> {
    let bad = |field: &'static str, m: String| {
        Error::Invalid(vec![tandem_domain::validate::Invalid::new(field, m)])
    };
    let mode = match f.text("ticket_mode").trim() {
        "" => TicketMode::None,
        m => m.parse().map_err(|e| bad("ticket_mode", e))?,
    };
    let impact = match f.text("ticket_impact").trim() {
        "" => None,
        i => Some(i.parse().map_err(|e| bad("ticket_impact", e))?),
    };
    let urgency = match f.text("ticket_urgency").trim() {
        "" => None,
        u => Some(u.parse().map_err(|e| bad("ticket_urgency", e))?),
    };
    Ok(AlertTicketRule {
        mode,
        impact,
        urgency,
    })
}

/// The ticket rule in words, for lists.
pub(crate) fn ticket_rule_words(r: &AlertTicketRule) -> String {
    if r.is_none() {
        return "no ticket".into();
    }
    let mut s = r.mode.label().to_string();
    match (r.impact, r.urgency) {
        (None, None) => s.push_str(" (priority by severity)"),
        (i, u) => s.push_str(&format!(
            " (impact {}, urgency {})",
            i.map_or("by severity", |i| i.as_str()),
            u.map_or("by severity", |u| u.as_str())
        )),
    }
    s
}

#[derive(Template)]
#[template(path = "integrations.html")]
struct IntegrationsPage {
    chrome: Chrome,
    client_id: String,
    client_name: String,
    tokens: Vec<IntegrationRow>,
    /// (key, name)
    domains: Vec<(String, String)>,
    new_secret: Option<String>,
    /// (value, words) of the ticket modes; impacts and urgencies (issue #6).
    ticket_modes: Vec<(String, &'static str)>,
    impacts: Vec<String>,
    urgencies: Vec<String>,
    alertmanager_url: String,
    webhook_url: String,
}

async fn view(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    client: ClientId,
    new_secret: Option<String>,
) -> PageResult {
    // Only those who may manage integrations see the page (others get the refusal page).
    let list = st
        .app
        .list_integration_tokens(&ctx.actor, Some(client), Page::new(0, 500))
        .await
        .map_err(fail)?;
    let c = st.app.get_client(&ctx.actor, client).await.map_err(fail)?;
    let chrome = chrome(st, ctx, headers, "clients", Some(client)).await?;
    let tz = chrome.time_zone.clone();
    let domains = st
        .app
        .list_domains(&Actor::system(), false)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|d| (d.key, d.name))
        .collect();
    let tokens = list
        .items
        .into_iter()
        .map(|t| IntegrationRow {
            id: t.id.to_string(),
            label: t.label,
            prefix: t.prefix,
            default_domain: t.default_domain,
            created: t.created_at.display_in(&tz),
            last_used: t
                .last_used_at
                .map(|x| x.display_in(&tz))
                .unwrap_or_else(|| "never".into()),
            live: t.revoked_at.is_none(),
            state: if t.revoked_at.is_some() {
                "revoked"
            } else {
                "live"
            },
            ticket: ticket_rule_words(&t.ticket),
            ticket_mode: t.ticket.mode.as_str().to_string(),
            ticket_impact: t.ticket.impact.map_or("", |i| i.as_str()).to_string(),
            ticket_urgency: t.ticket.urgency.map_or("", |u| u.as_str()).to_string(),
        })
        .collect();
    let base = st.cfg.public_url.trim_end_matches('/').to_string();
    let clear = chrome.clear_flash;
    let mut r = render(
        &IntegrationsPage {
            chrome,
            client_id: client.to_string(),
            client_name: c.name,
            tokens,
            domains,
            new_secret,
            ticket_modes: TicketMode::ALL
                .iter()
                .map(|m| (m.as_str().to_string(), m.label()))
                .collect(),
            impacts: Impact::ALL.iter().map(|i| i.as_str().to_string()).collect(),
            urgencies: Urgency::ALL
                .iter()
                .map(|u| u.as_str().to_string())
                .collect(),
            alertmanager_url: format!("{base}/api/v1/ingest/alertmanager"),
            webhook_url: format!("{base}/api/v1/ingest/webhook"),
        },
        clear,
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The client an address names; a malformed id is "not found", like an unknown one.
fn client_of(id: &str) -> Result<ClientId, Box<Response>> {
    id.parse()
        .map_err(|_| Box::new(fail(Error::NotFound("client"))))
}

/// GET /clients/{client_id}/integrations
pub async fn page(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let client = client_of(&id).map_err(|e| *e)?;
    view(&st, &ctx, &headers, client, None).await
}

/// POST /clients/{client_id}/integrations
pub async fn create(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let client = client_of(&id).map_err(|e| *e)?;
    let f = FormFields(f);
    let back = format!("/clients/{client}/integrations");
    let ticket = match ticket_rule_from_form(&f) {
        Ok(r) => r,
        Err(e) => return Ok(back_with(&st, &back, e)),
    };
    let new = NewIntegrationToken {
        label: f.text("label"),
        default_domain: f.text("default_domain"),
        ticket,
    };
    match st
        .app
        .create_integration_token(&ctx.actor, client, new)
        .await
    {
        Ok((_, secret)) => view(&st, &ctx, &headers, client, Some(secret)).await,
        Err(e) => Ok(back_with(
            &st,
            &format!("/clients/{client}/integrations"),
            e,
        )),
    }
}

/// POST /clients/{client_id}/integrations/{integration_token_id}/revoke
pub async fn revoke(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, token)): Path<(String, String)>,
) -> PageResult {
    let client = client_of(&id).map_err(|e| *e)?;
    let Ok(token) = token.parse::<IntegrationTokenId>() else {
        return Err(fail(Error::NotFound("integration token")));
    };
    let back = format!("/clients/{client}/integrations");
    token_of_client(&st, &ctx.actor, client, token).await?;
    match st.app.revoke_integration_token(&ctx.actor, token).await {
        Ok(_) => Ok(redirect_with(
            &back,
            Some("The integration token was revoked: its sender is refused from now on."),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e) => Ok(back_with(&st, &back, e)),
    }
}

/// POST /clients/{client_id}/integrations/{integration_token_id}/ticket
pub async fn set_ticket_rule(
    State(st): State<AppState>,
    ctx: Ctx,
    Path((id, token)): Path<(String, String)>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let client = client_of(&id).map_err(|e| *e)?;
    let Ok(token) = token.parse::<IntegrationTokenId>() else {
        return Err(fail(Error::NotFound("integration token")));
    };
    let back = format!("/clients/{client}/integrations");
    token_of_client(&st, &ctx.actor, client, token).await?;
    let rule = match ticket_rule_from_form(&FormFields(f)) {
        Ok(r) => r,
        Err(e) => return Ok(back_with(&st, &back, e)),
    };
    match st
        .app
        .set_integration_ticket_rule(&ctx.actor, token, rule)
        .await
    {
        Ok(t) => Ok(redirect_with(
            &back,
            Some(&format!(
                "“{}”: its alerts now {}.",
                t.label,
                ticket_rule_words(&t.ticket)
            )),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e) => Ok(back_with(&st, &back, e)),
    }
}

/// Refuses (404) a token that is not one of this client's: the address names the client.
async fn token_of_client(
    st: &AppState,
    actor: &Actor,
    client: ClientId,
    token: IntegrationTokenId,
) -> Result<(), Response> {
    let of_client = st
        .app
        .list_integration_tokens(actor, Some(client), Page::new(0, 500))
        .await
        .map_err(fail)?;
    if !of_client.items.iter().any(|t| t.id == token) {
        return Err(fail(Error::NotFound("integration token")));
    }
    Ok(())
}
