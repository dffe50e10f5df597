//! Mail in the JSON API (issue #5): the outbox for provider admins, each client's support
//! address, and the caller's own mail preferences.

use crate::http::api::{List, PageParams};
use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_app::{MailPreference, OutboxEntry};
use tandem_domain::ClientId;
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

/// Outbox filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxParams {
    /// `pending`, `sent` or `failed`.
    pub status: Option<String>,
    /// `json` (default) or `csv` (every match, up to 100,000, as a file).
    pub format: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// The outbox as CSV (formula-safe cells).
pub fn outbox_csv(items: &[OutboxEntry]) -> String {
    let mut out = String::from(
        "id,client_id,ticket_id,event,to,subject,status,attempts,last_error,created_at,sent_at\n",
    );
    for m in items {
        let cells = [
            m.id.clone(),
            m.client_id.map(|c| c.to_string()).unwrap_or_default(),
            m.ticket_id.map(|c| c.to_string()).unwrap_or_default(),
            m.event.clone(),
            m.to.clone(),
            m.subject.clone(),
            m.status.clone(),
            m.attempts.to_string(),
            m.last_error.clone().unwrap_or_default(),
            m.created_at.to_rfc3339(),
            m.sent_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ];
        let row: Vec<String> = cells
            .iter()
            .map(|c| crate::http::api::csv_cell(c))
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// The mail outbox, newest first: what was sent, what waits, what failed (provider admins).
#[utoipa::path(get, path = "/api/v1/mail/outbox", tag = "mail", params(OutboxParams),
    responses((status = 200, body = List<OutboxEntry>, description = "A page, or with format=csv every match as CSV"),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list_outbox(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<OutboxParams>,
) -> ApiResult<Response> {
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    if q.format.as_deref() == Some("csv") {
        let all = st
            .app
            .list_outbox(&ctx.actor, status, tandem_store::Page::new(0, 100_000))
            .await?;
        return Ok((
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"tandem-mail-outbox.csv\"",
                ),
            ],
            outbox_csv(&all.items),
        )
            .into_response());
    }
    let page = PageParams {
        cursor: q.cursor.clone(),
        limit: q.limit,
    }
    .page()?;
    let r = st.app.list_outbox(&ctx.actor, status, page).await?;
    Ok(Json(List {
        next_cursor: r.has_more.then(|| (page.offset + page.limit).to_string()),
        items: r.items,
    })
    .into_response())
}

/// Queues a failed message again (provider admins; audited).
#[utoipa::path(post, path = "/api/v1/mail/outbox/{mail_id}/resend", tag = "mail",
    params(("mail_id" = String, Path, description = "The message's id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resend(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> ApiResult<StatusCode> {
    st.app.resend_mail(&ctx.actor, &id.to_string()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A client's support address: mail to it opens a ticket for the client.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SupportAddress {
    /// The address, or null for none.
    pub address: Option<String>,
}

/// A client's support address.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/support-address", tag = "mail",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 200, body = SupportAddress), (status = 404, body = Problem)))]
pub async fn get_support_address(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
) -> ApiResult<Json<SupportAddress>> {
    Ok(Json(SupportAddress {
        address: st.app.support_address(&ctx.actor, client).await?,
    }))
}

/// Sets or clears a client's support address (provider admins and the client's IT admins;
/// audited).
#[utoipa::path(put, path = "/api/v1/clients/{client_id}/support-address", tag = "mail",
    params(("client_id" = String, Path, description = "The client's id")), request_body = SupportAddress,
    responses((status = 200, body = SupportAddress), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_support_address(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiJson(body): ApiJson<SupportAddress>,
) -> ApiResult<Json<SupportAddress>> {
    let address = st
        .app
        .set_support_address(&ctx.actor, client, body.address.as_deref())
        .await?;
    Ok(Json(SupportAddress { address }))
}

/// The caller's mail preferences.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailPreferences {
    /// One entry per event; events left out keep their setting.
    pub preferences: Vec<MailPreference>,
}

/// Which ticket events mail the caller.
#[utoipa::path(get, path = "/api/v1/me/mail-preferences", tag = "mail",
    responses((status = 200, body = MailPreferences), (status = 401, body = Problem)))]
pub async fn get_preferences(
    State(st): State<AppState>,
    ctx: Ctx,
) -> ApiResult<Json<MailPreferences>> {
    Ok(Json(MailPreferences {
        preferences: st.app.mail_preferences(&ctx.actor).await?,
    }))
}

/// Changes which ticket events mail the caller (audited).
#[utoipa::path(put, path = "/api/v1/me/mail-preferences", tag = "mail", request_body = MailPreferences,
    responses((status = 200, body = MailPreferences), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn set_preferences(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<MailPreferences>,
) -> ApiResult<Json<MailPreferences>> {
    Ok(Json(MailPreferences {
        preferences: st
            .app
            .set_mail_preferences(&ctx.actor, &body.preferences)
            .await?,
    }))
}
