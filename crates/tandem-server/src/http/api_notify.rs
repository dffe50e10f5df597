//! Notification channels in the JSON API (issue #6): a side's channels (e-mail, signed
//! webhook, Slack, Teams, PagerDuty), a test button, and the deliveries outbox with its
//! failures and re-sending. The webhook body and signature are documented in
//! docs/NOTIFICATIONS.md.

use crate::http::api::{List, PageParams};
use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tandem_app::{ChannelPatch, ChannelSaved, NewChannel};
use tandem_domain::notify::{Channel, Delivery, DeliveryStatus};
use tandem_domain::{ChannelId, ClientId, DeliveryId};
use tandem_store::notify::DeliveryFilter;

type ApiResult<T> = Result<T, ApiError>;

fn bad_query(detail: &str) -> ApiError {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_query", detail).into()
}

/// `client_id`: a client's id, `provider` for provider-wide channels, or absent for all.
fn client_param(v: Option<&str>) -> ApiResult<Option<Option<ClientId>>> {
    match v {
        None | Some("") => Ok(None),
        Some("provider") => Ok(Some(None)),
        Some(s) => s
            .parse()
            .map(|c| Some(Some(c)))
            .map_err(|_| bad_query("client_id must be a client's id or provider.")),
    }
}

/// Channel list parameters.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChannelListParams {
    /// A client's id, or `provider` for the provider-wide channels; absent: all yours.
    pub client_id: Option<String>,
}

/// Your side's notification channels (never their secrets).
#[utoipa::path(get, path = "/api/v1/notification-channels", tag = "notifications",
    params(ChannelListParams),
    responses((status = 200, body = List<Channel>), (status = 403, body = Problem)))]
pub async fn list_channels(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ChannelListParams>,
) -> ApiResult<Json<List<Channel>>> {
    let client = client_param(q.client_id.as_deref())?;
    let items = st.app.list_channels(&ctx.actor, client).await?;
    Ok(Json(List {
        items,
        next_cursor: None,
    }))
}

/// Makes a channel on your side. A webhook's signing secret is in the answer, only now.
#[utoipa::path(post, path = "/api/v1/notification-channels", tag = "notifications",
    request_body = NewChannel,
    responses((status = 201, body = ChannelSaved), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_channel(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewChannel>,
) -> ApiResult<Response> {
    let saved = st.app.create_channel(&ctx.actor, body).await?;
    Ok((StatusCode::CREATED, Json(saved)).into_response())
}

/// One channel of your side.
#[utoipa::path(get, path = "/api/v1/notification-channels/{channel_id}", tag = "notifications",
    params(("channel_id" = String, Path, description = "The channel's id")),
    responses((status = 200, body = Channel), (status = 404, body = Problem)))]
pub async fn get_channel(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<Json<Channel>> {
    Ok(Json(st.app.get_channel(&ctx.actor, id).await?))
}

/// Changes a channel: name, enabled, URL, addresses, routing key, filters, or a new secret.
#[utoipa::path(patch, path = "/api/v1/notification-channels/{channel_id}", tag = "notifications",
    params(("channel_id" = String, Path, description = "The channel's id")),
    request_body = ChannelPatch,
    responses((status = 200, body = ChannelSaved), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_channel(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ChannelId>,
    ApiJson(body): ApiJson<ChannelPatch>,
) -> ApiResult<Json<ChannelSaved>> {
    Ok(Json(st.app.update_channel(&ctx.actor, id, body).await?))
}

/// Deletes a channel; its pending deliveries fail, its history stays.
#[utoipa::path(delete, path = "/api/v1/notification-channels/{channel_id}", tag = "notifications",
    params(("channel_id" = String, Path, description = "The channel's id")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_channel(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<StatusCode> {
    st.app.delete_channel(&ctx.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a test notification to the channel; the answer is its delivery.
#[utoipa::path(post, path = "/api/v1/notification-channels/{channel_id}/test", tag = "notifications",
    params(("channel_id" = String, Path, description = "The channel's id")),
    responses((status = 202, body = Delivery), (status = 404, body = Problem)))]
pub async fn test_channel(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<Response> {
    let d = st.app.test_channel(&ctx.actor, id).await?;
    Ok((StatusCode::ACCEPTED, Json(d)).into_response())
}

/// Delivery list parameters.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListParams {
    /// A client's id, or `provider` for the provider-wide channels'.
    pub client_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    /// One channel's.
    pub channel_id: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// The filter a delivery list asks for.
pub(crate) fn delivery_filter(
    client: Option<&str>,
    status: Option<&str>,
    channel: Option<&str>,
) -> ApiResult<DeliveryFilter> {
    Ok(DeliveryFilter {
        side: None,
        client: client_param(client)?,
        status: match status {
            None | Some("") => None,
            Some(s) => Some(
                s.parse::<DeliveryStatus>()
                    .map_err(|_| bad_query("status must be pending, delivered or failed."))?,
            ),
        },
        channel: match channel {
            None | Some("") => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|_| bad_query("channel_id must be a channel's id."))?,
            ),
        },
    })
}

/// Your side's deliveries, newest first (also as CSV with `format=csv`).
#[utoipa::path(get, path = "/api/v1/notification-deliveries", tag = "notifications",
    params(DeliveryListParams),
    responses((status = 200, body = List<Delivery>), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_deliveries(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<DeliveryListParams>,
) -> ApiResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(bad_query("format must be json or csv.")),
    };
    let f = delivery_filter(
        q.client_id.as_deref(),
        q.status.as_deref(),
        q.channel_id.as_deref(),
    )?;
    let page = if csv {
        tandem_store::Page::new(0, 10_000)
    } else {
        PageParams {
            cursor: q.cursor.clone(),
            limit: q.limit,
        }
        .page()?
    };
    let r = st.app.list_deliveries(&ctx.actor, f, page).await?;
    if csv {
        return Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static(
                        "attachment; filename=\"notification-deliveries.csv\"",
                    ),
                ),
            ],
            deliveries_csv(&r.items),
        )
            .into_response());
    }
    Ok(Json(List {
        next_cursor: r.has_more.then(|| (page.offset + page.limit).to_string()),
        items: r.items,
    })
    .into_response())
}

/// Deliveries as CSV (times in UTC, RFC 3339).
pub fn deliveries_csv(items: &[Delivery]) -> String {
    let mut out = String::from(
        "id,channel_id,client_id,side,event_kind,event_key,severity,status,attempts,last_status,last_error,created_at,delivered_at\r\n",
    );
    for d in items {
        let row = [
            d.id.to_string(),
            d.channel_id.to_string(),
            d.client_id.map(|c| c.to_string()).unwrap_or_default(),
            d.side.as_str().to_string(),
            d.event_kind.as_str().to_string(),
            d.event_key.clone(),
            d.severity.as_str().to_string(),
            d.status.as_str().to_string(),
            d.attempts.to_string(),
            d.last_status.map(|s| s.to_string()).unwrap_or_default(),
            d.last_error.clone().unwrap_or_default(),
            d.created_at.to_rfc3339(),
            d.delivered_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ];
        out.push_str(
            &row.iter()
                .map(|c| crate::http::api::csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

/// Puts a failed delivery back in the queue.
#[utoipa::path(post, path = "/api/v1/notification-deliveries/{delivery_id}/resend", tag = "notifications",
    params(("delivery_id" = String, Path, description = "The delivery's id")),
    responses((status = 202, body = Delivery), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resend_delivery(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<DeliveryId>,
) -> ApiResult<Response> {
    let d = st.app.resend_delivery(&ctx.actor, id).await?;
    Ok((StatusCode::ACCEPTED, Json(d)).into_response())
}
