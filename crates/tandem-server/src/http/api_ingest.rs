//! Ingest in HTTP (issue #6): the routes machine senders post alerts to, and the JSON API
//! for the integration tokens they present. Described in docs/INGEST.md.
//!
//! `POST /api/v1/ingest/alertmanager` and `POST /api/v1/ingest/webhook` have their own
//! access class ([`Access::Ingest`](crate::http::context::Access::Ingest)): the gate reads no
//! cookie and no API token for them, and the handler accepts only a live integration token
//! in `Authorization: Bearer`. The token decides the client. They are not in the OpenAPI
//! document (which describes the API people and their tokens call); docs/INGEST.md is their
//! reference.

use crate::http::api::{List, PageParams};
use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{problem_for, ApiError, Problem};
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tandem_app::{Error, IngestReport, NewIntegrationToken};
use tandem_domain::ingest::IntegrationToken;
use tandem_domain::monitoring::AlertTicketRule;
use tandem_domain::{ClientId, IntegrationTokenId};
use utoipa::ToSchema;

type ApiResult<T> = Result<T, ApiError>;

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

/// The integration token of a sender's request, or 401.
async fn sender(st: &AppState, headers: &HeaderMap) -> ApiResult<IntegrationToken> {
    let refused = || {
        ApiError::from(Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_integration_token",
            "Send a live integration token of the client: Authorization: Bearer tdi_… (made on the client's Integrations page). Session cookies, API tokens and agent credentials do not work here.",
        ))
    };
    let Some(secret) = bearer(headers) else {
        return Err(refused());
    };
    match st.app.authenticate_integration(secret).await {
        Ok(t) => Ok(t),
        Err(Error::Unauthenticated) => Err(refused()),
        Err(e) => Err(e.into()),
    }
}

/// A malformed sender body is a 400 naming what is wrong; other failures map as usual.
fn ingest_error(e: Error) -> ApiError {
    match e {
        Error::Invalid(fields) => {
            let detail = fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            Problem::new(StatusCode::BAD_REQUEST, "invalid_payload", detail)
                .with_fields(&fields)
                .into()
        }
        other => ApiError(Box::new(problem_for(&other))),
    }
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "The body is larger than Tandem accepts (256 KiB); send fewer alerts per request (max_alerts).",
            )
        } else {
            Problem::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
        }
        .into()
    })
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// POST /api/v1/ingest/alertmanager: Prometheus Alertmanager's webhook (payload version 4).
pub async fn alertmanager(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<IngestReport>> {
    let token = sender(&st, &headers).await?;
    let body = body_bytes(body)?;
    let report = st
        .app
        .ingest_alertmanager(&token, request_id(&headers), &body)
        .await
        .map_err(ingest_error)?;
    Ok(Json(report))
}

/// POST /api/v1/ingest/webhook: Tandem's generic JSON webhook (one alert per request).
pub async fn webhook(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<IngestReport>> {
    let token = sender(&st, &headers).await?;
    let body = body_bytes(body)?;
    let report = st
        .app
        .ingest_webhook(&token, request_id(&headers), &body)
        .await
        .map_err(ingest_error)?;
    Ok(Json(report))
}

// ---- integration tokens (people) --------------------------------------------------------

/// A client's integration tokens, newest first (also as CSV with `format=csv`).
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/integration-tokens", tag = "ingest",
    params(("client_id" = String, Path, description = "The client's id"), IntegrationListParams),
    responses((status = 200, body = List<IntegrationToken>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_tokens(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiQuery(q): ApiQuery<IntegrationListParams>,
) -> ApiResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "format must be json or csv.",
            )
            .into())
        }
    };
    let page = if csv {
        tandem_store::Page::new(0, 10_000)
    } else {
        PageParams {
            cursor: q.cursor.clone(),
            limit: q.limit,
        }
        .page()?
    };
    let r = st
        .app
        .list_integration_tokens(&ctx.actor, Some(client), page)
        .await?;
    if csv {
        return Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_static("attachment; filename=\"integration-tokens.csv\""),
                ),
            ],
            tokens_csv(&r.items),
        )
            .into_response());
    }
    Ok(Json(List {
        next_cursor: r.has_more.then(|| (page.offset + page.limit).to_string()),
        items: r.items,
    })
    .into_response())
}

/// The tokens as CSV (times in UTC, RFC 3339).
pub fn tokens_csv(items: &[IntegrationToken]) -> String {
    let mut out =
        String::from("id,label,prefix,default_domain,ticket_mode,ticket_impact,ticket_urgency,created_at,last_used_at,revoked_at\r\n");
    let t = |x: Option<tandem_domain::Timestamp>| x.map(|v| v.to_rfc3339()).unwrap_or_default();
    for i in items {
        let row = [
            i.id.to_string(),
            i.label.clone(),
            i.prefix.clone(),
            i.default_domain.clone(),
            i.ticket.mode.as_str().to_string(),
            i.ticket
                .impact
                .map(|x| x.as_str())
                .unwrap_or("")
                .to_string(),
            i.ticket
                .urgency
                .map(|x| x.as_str())
                .unwrap_or("")
                .to_string(),
            i.created_at.to_rfc3339(),
            t(i.last_used_at),
            t(i.revoked_at),
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

/// List parameters for integration tokens.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IntegrationListParams {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// A new integration token with its secret, shown only now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedIntegrationToken {
    /// The token.
    pub token: IntegrationToken,
    /// The secret the sender presents as `Authorization: Bearer <secret>`. Not retrievable later.
    pub secret: String,
    /// Where Alertmanager posts (its `webhook_configs` url).
    pub alertmanager_url: String,
    /// Where the generic JSON webhook posts.
    pub webhook_url: String,
}

/// Makes an integration token for a client's machine sender (Alertmanager, a webhook).
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/integration-tokens", tag = "ingest",
    params(("client_id" = String, Path, description = "The client's id")),
    request_body = NewIntegrationToken,
    responses((status = 201, body = CreatedIntegrationToken), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_token(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiJson(body): ApiJson<NewIntegrationToken>,
) -> ApiResult<Response> {
    let (token, secret) = st
        .app
        .create_integration_token(&ctx.actor, client, body)
        .await?;
    let base = st.cfg.public_url.trim_end_matches('/');
    Ok((
        StatusCode::CREATED,
        Json(CreatedIntegrationToken {
            token,
            secret,
            alertmanager_url: format!("{base}/api/v1/ingest/alertmanager"),
            webhook_url: format!("{base}/api/v1/ingest/webhook"),
        }),
    )
        .into_response())
}

/// Revokes an integration token: its sender is refused from now on.
#[utoipa::path(delete, path = "/api/v1/integration-tokens/{integration_token_id}", tag = "ingest",
    params(("integration_token_id" = String, Path, description = "The integration token's id")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn revoke_token(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<IntegrationTokenId>,
) -> ApiResult<StatusCode> {
    st.app.revoke_integration_token(&ctx.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets whether the alerts a token's sender posts open (and resolve) tickets (issue #6).
/// Alerts already open keep the rule they fired under.
#[utoipa::path(put, path = "/api/v1/integration-tokens/{integration_token_id}/ticket", tag = "ingest",
    params(("integration_token_id" = String, Path, description = "The integration token's id")),
    request_body = AlertTicketRule,
    responses((status = 200, body = IntegrationToken), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_ticket_rule(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<IntegrationTokenId>,
    ApiJson(body): ApiJson<AlertTicketRule>,
) -> ApiResult<Json<IntegrationToken>> {
    Ok(Json(
        st.app
            .set_integration_ticket_rule(&ctx.actor, id, body)
            .await?,
    ))
}
