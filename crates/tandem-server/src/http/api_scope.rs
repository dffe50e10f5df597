//! The scope agreement in the JSON API: the domain catalog, versions and their sign-off,
//! lint, diff, import and export, and routing.

use crate::http::api::ExportFormat;
use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_app::{DomainPatch, NewDomain, RouteAnswer};
use tandem_domain::scope::{
    exchange, Agreement, AgreementVersion, Change, Finding, ItDomain, Party,
};
use tandem_domain::{ClientId, Timestamp};
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

fn bad_query(detail: impl Into<String>) -> ApiError {
    ApiError::from(Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        detail,
    ))
}

fn instant(s: Option<&str>) -> ApiResult<Timestamp> {
    match s.filter(|s| !s.is_empty()) {
        None => Ok(Timestamp::now()),
        Some(s) => Timestamp::parse_rfc3339(s).ok_or_else(|| {
            bad_query("at must be an RFC 3339 instant such as 2026-03-01T02:00:00-05:00")
        }),
    }
}

// ---- catalog --------------------------------------------------------------------------

/// Catalog parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DomainParams {
    /// Include retired domains.
    pub include_retired: Option<bool>,
}

/// The provider-wide catalog of IT domains.
#[utoipa::path(get, path = "/api/v1/domains", tag = "scope", params(DomainParams),
    responses((status = 200, body = Vec<ItDomain>), (status = 403, body = Problem)))]
pub async fn list_domains(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<DomainParams>,
) -> ApiResult<Json<Vec<ItDomain>>> {
    Ok(Json(
        st.app
            .list_domains(&ctx.actor, q.include_retired.unwrap_or(false))
            .await?,
    ))
}

/// Adds a domain to the catalog (provider admins).
#[utoipa::path(post, path = "/api/v1/domains", tag = "scope", request_body = NewDomain,
    responses((status = 201, body = ItDomain), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_domain(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewDomain>,
) -> ApiResult<Response> {
    Ok((
        StatusCode::CREATED,
        Json(st.app.create_domain(&ctx.actor, body).await?),
    )
        .into_response())
}

/// Renames, re-describes, retires or restores a domain (provider admins).
#[utoipa::path(patch, path = "/api/v1/domains/{key}", tag = "scope", request_body = DomainPatch,
    params(("key" = String, Path, description = "The domain's key")),
    responses((status = 200, body = ItDomain), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn update_domain(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<DomainPatch>,
) -> ApiResult<Json<ItDomain>> {
    Ok(Json(st.app.update_domain(&ctx.actor, &key, body).await?))
}

// ---- versions -------------------------------------------------------------------------

/// Every version of a client's agreement, newest first.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/scope/versions", tag = "scope",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 200, body = Vec<AgreementVersion>), (status = 404, body = Problem)))]
pub async fn list_versions(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
) -> ApiResult<Json<Vec<AgreementVersion>>> {
    Ok(Json(st.app.list_versions(&ctx.actor, client).await?))
}

/// Starts a draft from the version in force (one open draft or proposal per client).
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/scope/versions", tag = "scope",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 201, body = AgreementVersion), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn start_draft(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
) -> ApiResult<Response> {
    Ok((
        StatusCode::CREATED,
        Json(st.app.start_draft(&ctx.actor, client).await?),
    )
        .into_response())
}

/// One version.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/scope/versions/{number}", tag = "scope",
    params(("client_id" = String, Path, description = "The client's id"), ("number" = i64, Path, description = "Version number")),
    responses((status = 200, body = AgreementVersion), (status = 404, body = Problem)))]
pub async fn get_version(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, number)): ApiPath<(ClientId, i64)>,
) -> ApiResult<Json<AgreementVersion>> {
    Ok(Json(st.app.get_version(&ctx.actor, client, number).await?))
}

/// A saved draft and what the lint says of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SavedDraft {
    /// The draft.
    pub version: AgreementVersion,
    /// Errors (which block a proposal) and warnings.
    pub findings: Vec<Finding>,
}

/// Replaces a draft's content (its author's side only).
#[utoipa::path(put, path = "/api/v1/clients/{client_id}/scope/versions/{number}/content", tag = "scope", request_body = Agreement,
    params(("client_id" = String, Path, description = "The client's id"), ("number" = i64, Path, description = "Version number")),
    responses((status = 200, body = SavedDraft), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn save_draft(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, number)): ApiPath<(ClientId, i64)>,
    ApiJson(body): ApiJson<Agreement>,
) -> ApiResult<Json<SavedDraft>> {
    let (version, findings) = st.app.save_draft(&ctx.actor, client, number, body).await?;
    Ok(Json(SavedDraft { version, findings }))
}

/// What the lint says of a version.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/scope/versions/{number}/lint", tag = "scope",
    params(("client_id" = String, Path, description = "The client's id"), ("number" = i64, Path, description = "Version number")),
    responses((status = 200, body = Vec<Finding>), (status = 404, body = Problem)))]
pub async fn lint_version(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, number)): ApiPath<(ClientId, i64)>,
) -> ApiResult<Json<Vec<Finding>>> {
    let v = st.app.get_version(&ctx.actor, client, number).await?;
    Ok(Json(
        st.app
            .lint_agreement(&ctx.actor, client, &v.content)
            .await?,
    ))
}

/// A proposal.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// From when it should be in force (default: on acceptance).
    #[serde(default)]
    pub effective_from: Option<Timestamp>,
    /// Keys of warnings the proposer acknowledges (`code:domain`).
    #[serde(default)]
    pub acknowledge: Vec<String>,
}

/// Proposes a draft to the other side. Lint errors block it.
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/scope/versions/{number}/propose", tag = "scope", request_body = Proposal,
    params(("client_id" = String, Path, description = "The client's id"), ("number" = i64, Path, description = "Version number")),
    responses((status = 200, body = AgreementVersion), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn propose(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, number)): ApiPath<(ClientId, i64)>,
    ApiJson(body): ApiJson<Proposal>,
) -> ApiResult<Json<AgreementVersion>> {
    Ok(Json(
        st.app
            .propose(
                &ctx.actor,
                client,
                number,
                body.effective_from,
                &body.acknowledge,
            )
            .await?,
    ))
}

/// A decision's comment.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why (required to reject).
    #[serde(default)]
    pub comment: Option<String>,
}

/// Accepts a proposal (the other side only).
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/scope/versions/{number}/accept", tag = "scope", request_body = Decision,
    params(("client_id" = String, Path, description = "The client's id"), ("number" = i64, Path, description = "Version number")),
    responses((status = 200, body = AgreementVersion), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn accept(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, number)): ApiPath<(ClientId, i64)>,
    ApiJson(body): ApiJson<Decision>,
) -> ApiResult<Json<AgreementVersion>> {
    Ok(Json(
        st.app
            .decide(&ctx.actor, client, number, true, body.comment)
            .await?,
    ))
}

/// Rejects a proposal with a comment (the other side only).
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/scope/versions/{number}/reject", tag = "scope", request_body = Decision,
    params(("client_id" = String, Path, description = "The client's id"), ("number" = i64, Path, description = "Version number")),
    responses((status = 200, body = AgreementVersion), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reject(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, number)): ApiPath<(ClientId, i64)>,
    ApiJson(body): ApiJson<Decision>,
) -> ApiResult<Json<AgreementVersion>> {
    Ok(Json(
        st.app
            .decide(&ctx.actor, client, number, false, body.comment)
            .await?,
    ))
}

/// Withdraws one's own side's draft or proposal.
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/scope/versions/{number}/withdraw", tag = "scope",
    params(("client_id" = String, Path, description = "The client's id"), ("number" = i64, Path, description = "Version number")),
    responses((status = 200, body = AgreementVersion), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn withdraw(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, number)): ApiPath<(ClientId, i64)>,
) -> ApiResult<Json<AgreementVersion>> {
    Ok(Json(st.app.withdraw(&ctx.actor, client, number).await?))
}

/// Diff parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffParams {
    /// The older version.
    pub from: i64,
    /// The newer version.
    pub to: i64,
}

/// What changed between two versions.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/scope/diff", tag = "scope",
    params(("client_id" = String, Path, description = "The client's id"), DiffParams),
    responses((status = 200, body = Vec<Change>), (status = 404, body = Problem)))]
pub async fn diff(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiQuery(q): ApiQuery<DiffParams>,
) -> ApiResult<Json<Vec<Change>>> {
    let a = st.app.get_version(&ctx.actor, client, q.from).await?;
    let b = st.app.get_version(&ctx.actor, client, q.to).await?;
    Ok(Json(tandem_domain::scope::diff(&a.content, &b.content)))
}

/// Export parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgreementExportParams {
    /// `json` (the whole agreement, default) or `csv` (the matrix).
    pub format: Option<ExportFormat>,
}

/// Exports a version: the whole agreement as JSON, or the matrix as CSV.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/scope/versions/{number}/export", tag = "scope",
    params(("client_id" = String, Path, description = "The client's id"), ("number" = i64, Path, description = "Version number"), AgreementExportParams),
    responses((status = 200, body = Agreement), (status = 404, body = Problem)))]
pub async fn export(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, number)): ApiPath<(ClientId, i64)>,
    ApiQuery(q): ApiQuery<AgreementExportParams>,
) -> ApiResult<Response> {
    let v = st.app.get_version(&ctx.actor, client, number).await?;
    let name = format!("scope-agreement-v{number}");
    Ok(match q.format.unwrap_or(ExportFormat::Json) {
        ExportFormat::Json => (
            [(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.json\""),
            )],
            Json(v.content),
        )
            .into_response(),
        ExportFormat::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}.csv\""),
                ),
            ],
            exchange::to_csv(&v.content),
        )
            .into_response(),
    })
}

/// Largest agreement import accepted.
pub const IMPORT_LIMIT: usize = 256 * 1024;

/// Imports into an open draft: JSON (a whole agreement; `Content-Type: application/json`)
/// or CSV (the matrix onto the draft's calendars; `Content-Type: text/csv`). Everything is
/// validated and linted; nothing is saved unless every row is good.
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/scope/versions/{number}/import", tag = "scope",
    request_body(content = String, description = "An agreement as JSON, or its matrix as CSV", content_type = "text/csv"),
    params(("client_id" = String, Path, description = "The client's id"), ("number" = i64, Path, description = "Version number of an open draft")),
    responses((status = 200, body = SavedDraft), (status = 409, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn import(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    ApiPath((client, number)): ApiPath<(ClientId, i64)>,
    body: Bytes,
) -> ApiResult<Json<SavedDraft>> {
    let draft = st.app.get_version(&ctx.actor, client, number).await?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::from(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_encoding",
            "The file must be UTF-8 text.",
        ))
    })?;
    let content = import_content(&ct, text, &draft.content)?;
    let (version, findings) = st
        .app
        .save_draft(&ctx.actor, client, number, content)
        .await?;
    Ok(Json(SavedDraft { version, findings }))
}

/// Reads an uploaded agreement of the given content type onto `base` (shared with the UI).
pub fn import_content(content_type: &str, text: &str, base: &Agreement) -> ApiResult<Agreement> {
    if content_type.starts_with("application/json") {
        serde_json::from_str::<Agreement>(text).map_err(|e| {
            ApiError::from(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                format!("The JSON is not an agreement: {e}"),
            ))
        })
    } else if content_type.starts_with("text/csv") || content_type.starts_with("text/plain") {
        exchange::from_csv(text, base).map_err(|errs| {
            let fields: Vec<tandem_domain::validate::Invalid> = errs
                .iter()
                .map(|e| {
                    tandem_domain::validate::Invalid::new(
                        "csv",
                        format!("line {}: {}", e.line, e.message),
                    )
                })
                .collect();
            ApiError::from(tandem_app::Error::Invalid(fields))
        })
    } else {
        Err(ApiError::from(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send application/json (a whole agreement) or text/csv (the matrix).",
        )))
    }
}

/// Calendar parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SideParams {
    /// `internal` (the client's business hours) or `provider`.
    pub side: Party,
}

/// A side's holidays in a version, as iCalendar all-day events.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/scope/versions/{number}/holidays.ics", tag = "scope",
    params(("client_id" = String, Path, description = "The client's id"), ("number" = i64, Path, description = "Version number"), SideParams),
    responses((status = 200, content_type = "text/calendar", body = String), (status = 404, body = Problem)))]
pub async fn holidays_ics(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, number)): ApiPath<(ClientId, i64)>,
    ApiQuery(q): ApiQuery<SideParams>,
) -> ApiResult<Response> {
    let v = st.app.get_version(&ctx.actor, client, number).await?;
    let c = st.app.get_client(&ctx.actor, client).await?;
    let ics = exchange::holidays_to_ics(
        v.content.calendar(q.side),
        &format!("{} — {} holidays", c.name, q.side.label()),
        "tandem.invalid",
    );
    Ok((
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        ics,
    )
        .into_response())
}

// ---- in force and routing -------------------------------------------------------------

/// Instant parameter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtParams {
    /// The instant (RFC 3339); default now.
    pub at: Option<String>,
}

/// The version in force at an instant ("who owned patching on 3 March?").
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/scope/in-force", tag = "scope",
    params(("client_id" = String, Path, description = "The client's id"), AtParams),
    responses((status = 200, body = AgreementVersion), (status = 404, body = Problem)))]
pub async fn in_force(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiQuery(q): ApiQuery<AtParams>,
) -> ApiResult<Json<AgreementVersion>> {
    let at = instant(q.at.as_deref())?;
    st.app
        .version_in_force(&ctx.actor, client, at)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::from(tandem_app::Error::NotFound(
                "agreement in force at that instant",
            ))
        })
}

/// Routing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RouteParams {
    /// The domain's key, such as `patching`.
    pub domain: String,
    /// The instant (RFC 3339); default now.
    pub at: Option<String>,
}

/// Who owns a domain at a client at an instant, and why.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/route", tag = "scope",
    params(("client_id" = String, Path, description = "The client's id"), RouteParams),
    responses((status = 200, body = RouteAnswer), (status = 404, body = Problem)))]
pub async fn route(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiQuery(q): ApiQuery<RouteParams>,
) -> ApiResult<Json<RouteAnswer>> {
    let at = instant(q.at.as_deref())?;
    Ok(Json(st.app.route(&ctx.actor, client, &q.domain, at).await?))
}

// ---- notifications --------------------------------------------------------------------

/// A message for the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// What happened.
    pub message: String,
    /// Where to look.
    pub link: String,
    /// The client it concerns.
    pub client_id: Option<ClientId>,
    /// When.
    pub created_at: Timestamp,
    /// Whether it was read.
    pub read: bool,
}

/// The caller's newest notifications (proposals and decisions on scope agreements).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "identity",
    responses((status = 200, body = Vec<NotificationView>), (status = 401, body = Problem)))]
pub async fn notifications(
    State(st): State<AppState>,
    ctx: Ctx,
) -> ApiResult<Json<Vec<NotificationView>>> {
    let list = st.app.notifications(&ctx.actor, 50).await?;
    Ok(Json(
        list.into_iter()
            .map(|n| NotificationView {
                message: n.message,
                link: n.link,
                client_id: n.client_id,
                created_at: n.created_at,
                read: n.read_at.is_some(),
            })
            .collect(),
    ))
}

/// Marks the caller's notifications read.
#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "identity",
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn mark_read(State(st): State<AppState>, ctx: Ctx) -> ApiResult<StatusCode> {
    st.app.mark_notifications_read(&ctx.actor).await?;
    Ok(StatusCode::NO_CONTENT)
}
