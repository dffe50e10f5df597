//! The fleet in the JSON API: endpoints, their timelines, and enrollment tokens.

use crate::http::api::{csv_cell, List, PageParams};
use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_app::{EndpointDetail, NewEnrollmentToken};
use tandem_domain::fleet::{Endpoint, EndpointEvent, EnrollmentToken, FleetFilter};
use tandem_domain::{ClientId, EndpointId, EnrollmentTokenId};
use tandem_store::{Page, Paged};
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

/// The most endpoints one CSV export holds.
pub const EXPORT_LIMIT: u32 = 100_000;

fn paged<T>(p: Paged<T>, page: Page) -> List<T> {
    List {
        next_cursor: p.has_more.then(|| (page.offset + page.limit).to_string()),
        items: p.items,
    }
}

/// Fleet list parameters: the filters, paging, and the format.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FleetParams {
    /// Only this client's endpoints.
    pub client_id: Option<ClientId>,
    /// Only this site's.
    pub site_id: Option<tandem_domain::SiteId>,
    /// Operating system contains this text, such as `debian`.
    pub os: Option<String>,
    /// Host name contains this text.
    pub q: Option<String>,
    /// `online`, `offline` or `never`.
    pub presence: Option<String>,
    /// Only endpoints with pending security updates.
    #[serde(default)]
    pub security_updates: bool,
    /// Only endpoints waiting for a reboot.
    #[serde(default)]
    pub reboot_required: bool,
    /// Only endpoints whose firewall is off.
    #[serde(default)]
    pub firewall_off: bool,
    /// `hostname` (default), `last_seen`, `security_updates` or `os`.
    pub sort: Option<String>,
    /// `json` (default) or `csv` (every match, up to 100,000, as a file).
    pub format: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

impl FleetParams {
    /// The filter these parameters ask for, checked.
    pub fn filter(&self) -> ApiResult<FleetFilter> {
        let bad = |detail: &str| {
            ApiError::from(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                detail.to_string(),
            ))
        };
        if let Some(p) = self.presence.as_deref().filter(|p| !p.is_empty()) {
            if !["online", "offline", "never"].contains(&p) {
                return Err(bad("presence must be online, offline or never."));
            }
        }
        if let Some(s) = self.sort.as_deref().filter(|s| !s.is_empty()) {
            if !["hostname", "last_seen", "security_updates", "os"].contains(&s) {
                return Err(bad(
                    "sort must be hostname, last_seen, security_updates or os.",
                ));
            }
        }
        Ok(FleetFilter {
            client: self.client_id,
            site: self.site_id,
            os: self.os.clone(),
            q: self.q.clone(),
            presence: self.presence.clone().filter(|p| !p.is_empty()),
            security_updates: self.security_updates,
            reboot_required: self.reboot_required,
            firewall_off: self.firewall_off,
            sort: self.sort.clone().filter(|s| !s.is_empty()),
        })
    }
}

/// Endpoints the caller may see. Both sides of a client see the same fleet.
#[utoipa::path(get, path = "/api/v1/endpoints", tag = "fleet", params(FleetParams),
    responses((status = 200, body = List<Endpoint>, description = "A page, or with format=csv every match as CSV"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_endpoints(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<FleetParams>,
) -> ApiResult<Response> {
    let filter = q.filter()?;
    if q.format.as_deref() == Some("csv") {
        let all = st
            .app
            .list_endpoints(&ctx.actor, &filter, Page::new(0, EXPORT_LIMIT))
            .await?;
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"tandem-endpoints.csv\"",
                ),
            ],
            fleet_csv(&all.items),
        )
            .into_response());
    }
    let page = PageParams {
        cursor: q.cursor.clone(),
        limit: q.limit,
    }
    .page()?;
    let r = st.app.list_endpoints(&ctx.actor, &filter, page).await?;
    Ok(Json(paged(r, page)).into_response())
}

/// The fleet as CSV (formula-safe cells). Unknown values are empty.
pub fn fleet_csv(items: &[Endpoint]) -> String {
    let mut out = String::from("id,client_id,site_id,hostname,presence,last_seen_at,os,kernel,arch,pending_updates,security_updates,reboot_required,firewall_enabled,disk_encrypted,packages,agent_version\n");
    let opt = |v: Option<String>| v.unwrap_or_default();
    let yes_no = |v: Option<bool>| {
        v.map(|b| if b { "yes" } else { "no" }.to_string())
            .unwrap_or_default()
    };
    for e in items {
        let s = &e.summary;
        let cells = [
            e.id.to_string(),
            e.client_id.to_string(),
            e.site_id.to_string(),
            e.hostname.clone(),
            e.presence.as_str().to_string(),
            opt(e.last_seen_at.map(|t| t.to_rfc3339())),
            opt(s.os.clone()),
            opt(s.kernel.clone()),
            e.arch.clone(),
            opt(s.pending_updates.map(|n| n.to_string())),
            opt(s.security_updates.map(|n| n.to_string())),
            yes_no(s.reboot_required),
            yes_no(s.firewall_enabled),
            yes_no(s.disk_encrypted),
            opt(s.packages.map(|n| n.to_string())),
            e.agent_version.clone(),
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// One endpoint with its current inventory and latest heartbeat.
#[utoipa::path(get, path = "/api/v1/endpoints/{endpoint_id}", tag = "fleet",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, body = EndpointDetail), (status = 404, body = Problem)))]
pub async fn get_endpoint(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<EndpointId>,
) -> ApiResult<Json<EndpointDetail>> {
    Ok(Json(st.app.get_endpoint(&ctx.actor, id).await?))
}

/// An endpoint's change timeline, newest first.
#[utoipa::path(get, path = "/api/v1/endpoints/{endpoint_id}/events", tag = "fleet",
    params(("endpoint_id" = String, Path, description = "The endpoint's id"), PageParams),
    responses((status = 200, body = List<EndpointEvent>), (status = 404, body = Problem)))]
pub async fn endpoint_events(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<EndpointId>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<Json<List<EndpointEvent>>> {
    let page = q.page()?;
    Ok(Json(paged(
        st.app.endpoint_events(&ctx.actor, id, page).await?,
        page,
    )))
}

/// Which client's tokens to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenListParams {
    /// Only this client's tokens.
    pub client_id: Option<ClientId>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// Enrollment tokens the caller may manage, newest first.
#[utoipa::path(get, path = "/api/v1/enrollment-tokens", tag = "fleet", params(TokenListParams),
    responses((status = 200, body = List<EnrollmentToken>), (status = 403, body = Problem)))]
pub async fn list_enrollment_tokens(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<TokenListParams>,
) -> ApiResult<Json<List<EnrollmentToken>>> {
    let page = PageParams {
        cursor: q.cursor.clone(),
        limit: q.limit,
    }
    .page()?;
    let r = st
        .app
        .list_enrollment_tokens(&ctx.actor, q.client_id, page)
        .await?;
    Ok(Json(paged(r, page)))
}

/// A new enrollment token, with its secret (shown only now) and the commands to run.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEnrollmentToken {
    /// The token.
    pub token: EnrollmentToken,
    /// The secret agents enroll with. Not retrievable later.
    pub secret: String,
    /// The command that enrolls a Linux endpoint (run as root). When the server has its own
    /// CA, the command pins it by its fingerprint.
    pub enroll_command: String,
    /// The SHA-256 fingerprint of the CA agents pin (lower-case hex of its DER), when the
    /// server has one; the CA itself is at `/agent/v1/ca.pem`.
    pub ca_sha256: Option<String>,
}

/// The shell command that enrolls and installs an agent with this secret, pinning the CA
/// with this fingerprint when there is one.
pub fn enroll_command(server_url: &str, secret: &str, ca_sha256: Option<&str>) -> String {
    let pin = ca_sha256
        .map(|fp| format!(" --ca-sha256 {fp}"))
        .unwrap_or_default();
    format!(
        "sudo tandem-agent enroll --server {server_url} --token {secret}{pin} && sudo tandem-agent install"
    )
}

/// Makes an enrollment token for one of the client's sites.
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/enrollment-tokens", tag = "fleet",
    params(("client_id" = String, Path, description = "The client's id")),
    request_body = NewEnrollmentToken,
    responses((status = 201, body = CreatedEnrollmentToken), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_enrollment_token(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiJson(body): ApiJson<NewEnrollmentToken>,
) -> ApiResult<Response> {
    let (token, secret) = st
        .app
        .create_enrollment_token(&ctx.actor, client, body)
        .await?;
    let ca_sha256 = st.cfg.agent_ca.as_ref().map(|ca| ca.sha256.clone());
    let enroll_command = enroll_command(&st.cfg.public_url, &secret, ca_sha256.as_deref());
    Ok((
        StatusCode::CREATED,
        Json(CreatedEnrollmentToken {
            token,
            secret,
            enroll_command,
            ca_sha256,
        }),
    )
        .into_response())
}

/// Revokes an enrollment token; endpoints already enrolled with it stay.
#[utoipa::path(delete, path = "/api/v1/enrollment-tokens/{enrollment_token_id}", tag = "fleet",
    params(("enrollment_token_id" = String, Path, description = "The enrollment token's id")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn revoke_enrollment_token(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<EnrollmentTokenId>,
) -> ApiResult<StatusCode> {
    st.app.revoke_enrollment_token(&ctx.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
