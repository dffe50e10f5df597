//! Maintenance windows in the JSON API (issue #6): list (filters; CSV and iCalendar export),
//! the windows active at an instant, create, read, replace, delete, and the iCalendar import
//! (with a dry run).

use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_app::{ImportInput, WindowImportReport, WindowInput, WindowStatus, WindowView};
use tandem_domain::{ClientId, MaintenanceWindowId, Timestamp};
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

fn bad_query(detail: String) -> ApiError {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_query", detail).into()
}

/// Maintenance window list filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowParams {
    /// One client's windows (with the provider-wide ones, which cover it too).
    pub client_id: Option<ClientId>,
    /// `active`, `upcoming` or `past` (at `at`).
    pub status: Option<String>,
    /// The instant the status is judged at (RFC 3339; default now).
    pub at: Option<String>,
    /// `json` (default), `csv` or `ics` (an iCalendar file of the windows).
    pub format: Option<String>,
}

impl WindowParams {
    /// The status and instant asked for, checked.
    pub fn parsed(&self) -> ApiResult<(Option<WindowStatus>, Timestamp)> {
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.parse::<WindowStatus>()
                    .map_err(|e| bad_query(format!("status: {e}")))?,
            ),
        };
        let at = match self.at.as_deref().filter(|s| !s.is_empty()) {
            None => Timestamp::now(),
            Some(s) => Timestamp::parse_rfc3339(s).ok_or_else(|| {
                bad_query(format!(
                    "at: {s:?} is not an RFC 3339 instant such as 2026-12-06T07:30:00Z"
                ))
            })?,
        };
        Ok((status, at))
    }
}

/// Maintenance windows in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowList {
    /// The windows, newest first.
    pub items: Vec<WindowView>,
}

/// Windows as CSV (formula-safe cells).
pub fn windows_csv(items: &[WindowView]) -> String {
    let mut out = String::from(
        "id,client_id,name,reason,level,target_id,filter,schedule,status,next_start,next_end,created_by,created_at\n",
    );
    for v in items {
        let w = &v.window;
        let next = v.next.first();
        let cells = [
            w.id.to_string(),
            w.client_id.map(|c| c.to_string()).unwrap_or_default(),
            w.name.clone(),
            w.reason.clone(),
            w.target.level().to_string(),
            w.target.target_id(),
            w.filter.describe(),
            v.schedule_text.clone(),
            v.status.as_str().to_string(),
            next.map(|o| o.start.to_rfc3339()).unwrap_or_default(),
            next.map(|o| o.end.to_rfc3339()).unwrap_or_default(),
            w.created_label.clone(),
            w.created_at.to_rfc3339(),
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

/// A download.
pub fn file_response(content_type: &'static str, name: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response()
}

/// The iCalendar download of windows.
pub fn ics_response(body: String) -> Response {
    file_response(
        "text/calendar; charset=utf-8",
        "attachment; filename=\"tandem-maintenance.ics\"",
        body,
    )
}

/// The CSV download of windows.
pub fn csv_response(body: String) -> Response {
    file_response(
        "text/csv; charset=utf-8",
        "attachment; filename=\"tandem-maintenance.csv\"",
        body,
    )
}

/// Maintenance windows the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/maintenance-windows", tag = "maintenance", params(WindowParams),
    responses((status = 200, body = WindowList, description = "The windows; with format=csv or format=ics a file"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_windows(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<WindowParams>,
) -> ApiResult<Response> {
    let (status, at) = q.parsed()?;
    match q.format.as_deref().unwrap_or("json") {
        "ics" => Ok(ics_response(
            st.app.export_windows(&ctx.actor, q.client_id).await?,
        )),
        "csv" => {
            let items = st
                .app
                .list_windows(&ctx.actor, q.client_id, status, at)
                .await?;
            Ok(csv_response(windows_csv(&items)))
        }
        "json" | "" => {
            let items = st
                .app
                .list_windows(&ctx.actor, q.client_id, status, at)
                .await?;
            Ok(Json(WindowList { items }).into_response())
        }
        other => Err(bad_query(format!(
            "format must be json, csv or ics, not {other:?}"
        ))),
    }
}

/// Parameters of the active-windows question.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActiveParams {
    /// The instant (RFC 3339; default now).
    pub at: Option<String>,
    /// One client's windows (with the provider-wide ones).
    pub client_id: Option<ClientId>,
}

/// The windows running at an instant (default now), each with the occurrence running then.
#[utoipa::path(get, path = "/api/v1/maintenance-windows/active", tag = "maintenance", params(ActiveParams),
    responses((status = 200, body = WindowList), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn active_windows(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ActiveParams>,
) -> ApiResult<Json<WindowList>> {
    let (_, at) = WindowParams {
        at: q.at.clone(),
        ..Default::default()
    }
    .parsed()?;
    let items = st
        .app
        .list_windows(&ctx.actor, q.client_id, Some(WindowStatus::Active), at)
        .await?;
    Ok(Json(WindowList { items }))
}

/// Creates a maintenance window.
#[utoipa::path(post, path = "/api/v1/maintenance-windows", tag = "maintenance", request_body = WindowInput,
    responses((status = 201, body = WindowView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create_window(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<WindowInput>,
) -> ApiResult<Response> {
    let v = st.app.create_window(&ctx.actor, body).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// One window, where it stands now, and its next five occurrences.
#[utoipa::path(get, path = "/api/v1/maintenance-windows/{window_id}", tag = "maintenance",
    params(("window_id" = String, Path, description = "The window's id")),
    responses((status = 200, body = WindowView), (status = 404, body = Problem)))]
pub async fn get_window(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<MaintenanceWindowId>,
) -> ApiResult<Json<WindowView>> {
    Ok(Json(st.app.get_window(&ctx.actor, id).await?))
}

/// Replaces a window's name, reason, target, filter and schedule. Alerts it silences are
/// looked at again at once.
#[utoipa::path(put, path = "/api/v1/maintenance-windows/{window_id}", tag = "maintenance",
    params(("window_id" = String, Path, description = "The window's id")), request_body = WindowInput,
    responses((status = 200, body = WindowView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_window(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<MaintenanceWindowId>,
    ApiJson(body): ApiJson<WindowInput>,
) -> ApiResult<Json<WindowView>> {
    Ok(Json(st.app.update_window(&ctx.actor, id, body).await?))
}

/// Deletes a window. Alerts it silences notify at once if still firing.
#[utoipa::path(delete, path = "/api/v1/maintenance-windows/{window_id}", tag = "maintenance",
    params(("window_id" = String, Path, description = "The window's id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_window(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<MaintenanceWindowId>,
) -> ApiResult<StatusCode> {
    st.app.delete_window(&ctx.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Imports an iCalendar file: every VEVENT is reported with what keeps it from becoming a
/// window; the others become windows (none with `dry_run`).
#[utoipa::path(post, path = "/api/v1/maintenance-windows/import", tag = "maintenance", request_body = ImportInput,
    responses((status = 200, body = WindowImportReport), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn import_windows(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<ImportInput>,
) -> ApiResult<Json<WindowImportReport>> {
    Ok(Json(st.app.import_windows(&ctx.actor, body).await?))
}
