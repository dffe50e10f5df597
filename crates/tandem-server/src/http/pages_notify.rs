//! Notification channel pages (issue #6): a client's channels for the viewer's side (and the
//! provider-wide ones at `/notifications`) — make, edit, disable, test, delete — and the
//! deliveries list with its filters, failures, re-sending and CSV export.

use crate::http::context::Ctx;
use crate::http::pages::{
    back_with, chrome, fail, redirect_with, render, Chrome, FormFields, PageResult,
};
use crate::http::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use std::collections::HashMap;
use tandem_app::{ChannelPatch, Error, NewChannel};
use tandem_domain::monitoring::Severity;
use tandem_domain::notify::{ChannelKind, EventKind, Subscription};
use tandem_domain::{ChannelId, ClientId, DeliveryId};
use tandem_store::Page;

struct ChannelRow {
    id: String,
    name: String,
    kind: &'static str,
    kind_key: &'static str,
    destination: String,
    filter: String,
    enabled: bool,
    url: String,
    addresses: String,
    /// (event kind key, label, checked)
    kinds: Vec<(&'static str, &'static str, bool)>,
    min_severity: &'static str,
}

struct DeliveryRow {
    id: String,
    created: String,
    channel: String,
    event: &'static str,
    key: String,
    status: &'static str,
    attempts: i64,
    last: String,
    delivered: String,
    failed: bool,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    chrome: Chrome,
    /// The client's id, or empty for provider-wide.
    client_id: String,
    title: String,
    base: String,
    side: &'static str,
    channels: Vec<ChannelRow>,
    deliveries: Vec<DeliveryRow>,
    /// (key, label)
    channel_kinds: Vec<(&'static str, &'static str)>,
    event_kinds: Vec<(&'static str, &'static str)>,
    new_secret: Option<String>,
    status: String,
    channel_filter: String,
    csv_url: String,
}

fn subscription_words(s: &Subscription) -> String {
    let kinds = if s.kinds.is_empty() {
        "every event".to_string()
    } else {
        s.kinds
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("{kinds}; {} and worse", s.min_severity.as_str())
}

async fn view(
    st: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    client: Option<ClientId>,
    q: &HashMap<String, String>,
    new_secret: Option<String>,
) -> PageResult {
    let channels = st
        .app
        .list_channels(&ctx.actor, Some(client))
        .await
        .map_err(fail)?;
    let title = match client {
        Some(c) => st.app.get_client(&ctx.actor, c).await.map_err(fail)?.name,
        None => "Provider-wide".to_string(),
    };
    let status = q.get("status").cloned().unwrap_or_default();
    let channel_filter = q.get("channel_id").cloned().unwrap_or_default();
    let client_key = client
        .map(|c| c.to_string())
        .unwrap_or_else(|| "provider".into());
    let f = crate::http::api_notify::delivery_filter(
        Some(&client_key),
        Some(&status),
        Some(&channel_filter),
    )
    .unwrap_or(tandem_store::notify::DeliveryFilter {
        client: Some(client),
        ..Default::default()
    });
    let deliveries = st
        .app
        .list_deliveries(&ctx.actor, f, Page::new(0, 200))
        .await
        .map_err(fail)?;
    let chrome = chrome(st, ctx, headers, "clients", client).await?;
    let tz = chrome.time_zone.clone();
    let side = match ctx.actor.principal.as_ref().map(|p| p.side()) {
        Some(tandem_domain::Side::Client) => "your internal IT",
        _ => "the provider",
    };
    let names: HashMap<ChannelId, String> =
        channels.iter().map(|c| (c.id, c.name.clone())).collect();
    let channels = channels
        .into_iter()
        .map(|c| ChannelRow {
            id: c.id.to_string(),
            destination: match c.kind {
                ChannelKind::Email => c.addresses.join(", "),
                _ => c.url.clone().unwrap_or_default(),
            },
            filter: subscription_words(&c.subscription),
            kinds: EventKind::ALL
                .into_iter()
                .filter(|k| *k != EventKind::Test)
                .map(|k| (k.as_str(), k.label(), c.subscription.kinds.contains(&k)))
                .collect(),
            min_severity: c.subscription.min_severity.as_str(),
            url: match c.kind {
                ChannelKind::Webhook | ChannelKind::Pagerduty => c.url.clone().unwrap_or_default(),
                _ => String::new(),
            },
            addresses: c.addresses.join(", "),
            name: c.name,
            kind: c.kind.label(),
            kind_key: c.kind.as_str(),
            enabled: c.enabled,
        })
        .collect();
    let deliveries = deliveries
        .items
        .into_iter()
        .map(|d| DeliveryRow {
            id: d.id.to_string(),
            created: d.created_at.display_in(&tz),
            channel: names
                .get(&d.channel_id)
                .cloned()
                .unwrap_or_else(|| "(deleted channel)".into()),
            event: d.event_kind.label(),
            key: d.event_key,
            status: d.status.as_str(),
            attempts: d.attempts,
            last: match (d.last_status, d.last_error) {
                (Some(s), Some(e)) if !e.starts_with("HTTP") => format!("HTTP {s}: {e}"),
                (_, Some(e)) => e,
                (Some(s), None) => format!("HTTP {s}"),
                (None, None) => String::new(),
            },
            delivered: d
                .delivered_at
                .map(|t| t.display_in(&tz))
                .unwrap_or_default(),
            failed: d.status == tandem_domain::notify::DeliveryStatus::Failed,
        })
        .collect();
    let base = match client {
        Some(c) => format!("/clients/{c}/notifications"),
        None => "/notifications".into(),
    };
    let mut csv_url = format!("/api/v1/notification-deliveries?format=csv&client_id={client_key}");
    if !status.is_empty() {
        csv_url.push_str(&format!("&status={status}"));
    }
    if !channel_filter.is_empty() {
        csv_url.push_str(&format!("&channel_id={channel_filter}"));
    }
    let clear = chrome.clear_flash;
    let mut r = render(
        &NotificationsPage {
            chrome,
            client_id: client.map(|c| c.to_string()).unwrap_or_default(),
            title,
            base,
            side,
            channels,
            deliveries,
            channel_kinds: ChannelKind::ALL
                .into_iter()
                .map(|k| (k.as_str(), k.label()))
                .collect(),
            event_kinds: EventKind::ALL
                .into_iter()
                .filter(|k| *k != EventKind::Test)
                .map(|k| (k.as_str(), k.label()))
                .collect(),
            new_secret,
            status,
            channel_filter,
            csv_url,
        },
        clear,
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

fn client_of(id: &str) -> Result<ClientId, Box<Response>> {
    id.parse()
        .map_err(|_| Box::new(fail(Error::NotFound("client"))))
}

/// GET /clients/{client_id}/notifications
pub async fn client_page(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let client = client_of(&id).map_err(|e| *e)?;
    view(&st, &ctx, &headers, Some(client), &q, None).await
}

/// GET /notifications — the provider-wide channels.
pub async fn provider_page(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    view(&st, &ctx, &headers, None, &q, None).await
}

fn subscription_of(f: &FormFields) -> Subscription {
    Subscription {
        kinds: f
            .all("event_kind")
            .filter_map(|k| k.parse::<EventKind>().ok())
            .collect(),
        min_severity: f
            .get("min_severity")
            .and_then(|s| s.parse::<Severity>().ok())
            .unwrap_or(Severity::Info),
    }
}

fn opt(f: &FormFields, k: &str) -> Option<String> {
    f.get(k)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn back_of(client: Option<ClientId>) -> String {
    match client {
        Some(c) => format!("/clients/{c}/notifications"),
        None => "/notifications".into(),
    }
}

/// POST /notifications/channels
pub async fn create(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormFields(f);
    let client = match opt(&f, "client_id") {
        Some(c) => Some(client_of(&c).map_err(|e| *e)?),
        None => None,
    };
    let back = back_of(client);
    let Ok(kind) = f.text("kind").parse::<ChannelKind>() else {
        return Ok(back_with(
            &st,
            &back,
            Error::Invalid(vec![tandem_domain::validate::Invalid::new(
                "kind",
                "choose a kind of channel",
            )]),
        ));
    };
    let new = NewChannel {
        client_id: client,
        kind,
        name: f.text("name"),
        url: opt(&f, "url"),
        addresses: opt(&f, "addresses"),
        routing_key: opt(&f, "routing_key"),
        subscription: Some(subscription_of(&f)),
        enabled: Some(true),
    };
    match st.app.create_channel(&ctx.actor, new).await {
        Ok(saved) => match saved.secret {
            Some(s) => view(&st, &ctx, &headers, client, &HashMap::new(), Some(s)).await,
            None => Ok(redirect_with(
                &back,
                Some("The channel was made. Send it a test notification to check it."),
                None,
                st.cfg.secure_cookies,
            )),
        },
        Err(e) => Ok(back_with(&st, &back, e)),
    }
}

async fn channel_back(
    st: &AppState,
    ctx: &Ctx,
    id: &str,
) -> Result<(ChannelId, String), Box<Response>> {
    let id: ChannelId = id
        .parse()
        .map_err(|_| Box::new(fail(Error::NotFound("notification channel"))))?;
    let c = st
        .app
        .get_channel(&ctx.actor, id)
        .await
        .map_err(|e| Box::new(fail(e)))?;
    Ok((id, back_of(c.client_id)))
}

/// POST /notifications/channels/{channel_id} — edit (or enable/disable with `enabled` only).
pub async fn update(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let (id, back) = channel_back(&st, &ctx, &id).await.map_err(|e| *e)?;
    let f = FormFields(f);
    let only_toggle = f.get("toggle").is_some();
    let patch = if only_toggle {
        ChannelPatch {
            enabled: Some(f.get("enabled") == Some("true")),
            ..Default::default()
        }
    } else {
        ChannelPatch {
            name: opt(&f, "name"),
            enabled: Some(f.get("enabled").is_some()),
            url: opt(&f, "url"),
            addresses: opt(&f, "addresses"),
            routing_key: opt(&f, "routing_key"),
            subscription: Some(subscription_of(&f)),
            rotate_secret: f.get("rotate_secret").is_some(),
        }
    };
    match st.app.update_channel(&ctx.actor, id, patch).await {
        Ok(saved) => match saved.secret {
            Some(s) => {
                let headers = HeaderMap::new();
                let client = saved.channel.client_id;
                view(&st, &ctx, &headers, client, &HashMap::new(), Some(s)).await
            }
            None => Ok(redirect_with(
                &back,
                Some("The channel was saved."),
                None,
                st.cfg.secure_cookies,
            )),
        },
        Err(e) => Ok(back_with(&st, &back, e)),
    }
}

/// POST /notifications/channels/{channel_id}/test
pub async fn test(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> PageResult {
    let (id, back) = channel_back(&st, &ctx, &id).await.map_err(|e| *e)?;
    match st.app.test_channel(&ctx.actor, id).await {
        Ok(_) => Ok(redirect_with(
            &back,
            Some("A test notification is on its way; see its delivery below."),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e) => Ok(back_with(&st, &back, e)),
    }
}

/// POST /notifications/channels/{channel_id}/delete
pub async fn delete(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> PageResult {
    let (id, back) = channel_back(&st, &ctx, &id).await.map_err(|e| *e)?;
    match st.app.delete_channel(&ctx.actor, id).await {
        Ok(()) => Ok(redirect_with(
            &back,
            Some("The channel was deleted."),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e) => Ok(back_with(&st, &back, e)),
    }
}

/// POST /notifications/deliveries/{delivery_id}/resend
pub async fn resend(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> PageResult {
    let Ok(id) = id.parse::<DeliveryId>() else {
        return Err(fail(Error::NotFound("delivery")));
    };
    match st.app.resend_delivery(&ctx.actor, id).await {
        Ok(d) => Ok(redirect_with(
            &back_of(d.client_id),
            Some("The delivery was queued again."),
            None,
            st.cfg.secure_cookies,
        )),
        Err(e) => Ok(back_with(&st, "/notifications", e)),
    }
}
