//! Alerts and monitoring in the JSON API: the alert list (filters, CSV), one alert with its
//! timeline, acknowledge and resolve; monitoring policies per level; the checks in force on an
//! endpoint and why; endpoint groups; accepting an endpoint's local administrators.

use crate::http::api::{List, PageParams};
use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tandem_app::{AlertView, CheckPolicyInput};
use tandem_domain::monitoring::policy::{Effective, EndpointGroup, MonitoringPolicy, PolicyTarget};
use tandem_domain::monitoring::{Alert, AlertState, Check, Severity};
use tandem_domain::scope::Party;
use tandem_domain::{AlertId, ClientId, EndpointGroupId, EndpointId};
use tandem_store::monitoring::{AlertFilter, SilenceFilter};
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

fn bad_query(detail: String) -> ApiError {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_query", detail).into()
}

/// Alert list filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// One client's alerts.
    pub client_id: Option<ClientId>,
    /// States, comma-separated (`firing,acknowledged`); `open` for both.
    pub state: Option<String>,
    /// `internal` or `provider`: the side that owned it when it fired.
    pub owner: Option<String>,
    /// `info`, `warning` or `critical`.
    pub severity: Option<String>,
    /// A check's key.
    pub check: Option<String>,
    /// One endpoint's alerts.
    pub endpoint_id: Option<EndpointId>,
    /// Maintenance: `now` (silenced by a window at the moment), `ever` (silenced by a window
    /// at some point) or `never`.
    pub silenced: Option<String>,
    /// `json` (default) or `csv` (every match, up to 100,000, as a file).
    pub format: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

impl AlertParams {
    /// The store filter these parameters ask for, checked.
    pub fn filter(&self) -> ApiResult<AlertFilter> {
        let states = match self.state.as_deref().filter(|s| !s.is_empty()) {
            None => Vec::new(),
            Some("open") => vec![AlertState::Firing, AlertState::Acknowledged],
            Some(list) => list
                .split(',')
                .map(|s| s.trim().parse::<AlertState>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad_query(format!("state: {e}")))?,
        };
        let owner = match self.owner.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some("internal") => Some(Party::Internal),
            Some("provider") => Some(Party::Provider),
            Some(o) => {
                return Err(bad_query(format!(
                    "owner must be internal or provider, not {o:?}"
                )))
            }
        };
        let severity = match self.severity.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.parse::<Severity>()
                    .map_err(|e| bad_query(format!("severity: {e}")))?
                    .as_str()
                    .to_string(),
            ),
        };
        let silenced = match self.silenced.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some("now") => Some(SilenceFilter::Now),
            Some("ever") => Some(SilenceFilter::Ever),
            Some("never") => Some(SilenceFilter::Never),
            Some(o) => {
                return Err(bad_query(format!(
                    "silenced must be now, ever or never, not {o:?}"
                )))
            }
        };
        Ok(AlertFilter {
            silenced,
            client: self.client_id,
            states,
            owner,
            severity,
            check: self.check.clone().filter(|c| !c.is_empty()),
            endpoint: self.endpoint_id,
            group: None,
        })
    }
}

/// Alerts as CSV (formula-safe cells).
pub fn alerts_csv(items: &[Alert]) -> String {
    let mut out = String::from("id,client_id,endpoint_id,source,check_key,dedup_key,domain,severity,state,owner,owner_on_shift,title,summary,fired_at,acknowledged_at,acknowledged_by,resolved_at,resolution,silenced_by,silenced_window,silenced_until,ticket_id\n");
    let ts = |t: Option<tandem_domain::Timestamp>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for a in items {
        let cells = [
            a.id.to_string(),
            a.client_id.to_string(),
            a.endpoint_id.map(|e| e.to_string()).unwrap_or_default(),
            a.source.clone(),
            a.check_key.clone().unwrap_or_default(),
            a.dedup_key.clone(),
            a.domain.clone(),
            a.severity.as_str().to_string(),
            a.state.as_str().to_string(),
            a.owner.as_str().to_string(),
            a.owner_on_shift.to_string(),
            a.title.clone(),
            a.summary.clone(),
            a.fired_at.to_rfc3339(),
            ts(a.acknowledged_at),
            a.acknowledged_label.clone().unwrap_or_default(),
            ts(a.resolved_at),
            a.resolution.clone().unwrap_or_default(),
            a.silenced_by.map(|w| w.to_string()).unwrap_or_default(),
            a.silenced_window.clone().unwrap_or_default(),
            ts(a.silenced_until),
            a.ticket_id.map(|t| t.to_string()).unwrap_or_default(),
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

/// The CSV download answer.
pub fn csv_response(body: String) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"tandem-alerts.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}

/// Alerts the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertParams),
    responses((status = 200, body = List<Alert>, description = "A page, or with format=csv every match as CSV"),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_alerts(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<AlertParams>,
) -> ApiResult<Response> {
    let filter = q.filter()?;
    if q.format.as_deref() == Some("csv") {
        let all = st
            .app
            .list_alerts(&ctx.actor, &filter, tandem_store::Page::new(0, 100_000))
            .await?;
        return Ok(csv_response(alerts_csv(&all.items)));
    }
    let page = PageParams {
        cursor: q.cursor.clone(),
        limit: q.limit,
    }
    .page()?;
    let r = st.app.list_alerts(&ctx.actor, &filter, page).await?;
    Ok(Json(List {
        next_cursor: r.has_more.then(|| (page.offset + page.limit).to_string()),
        items: r.items,
    })
    .into_response())
}

/// One alert with its timeline.
#[utoipa::path(get, path = "/api/v1/alerts/{alert_id}", tag = "alerts",
    params(("alert_id" = String, Path, description = "The alert's id")),
    responses((status = 200, body = AlertView), (status = 404, body = Problem)))]
pub async fn get_alert(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<AlertId>,
) -> ApiResult<Json<AlertView>> {
    Ok(Json(st.app.get_alert(&ctx.actor, id).await?))
}

/// A note on an acknowledgement or resolution.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertNote {
    /// Optional on acknowledgement; required on resolution (how it was resolved).
    #[serde(default)]
    pub note: String,
}

/// Acknowledges a firing alert (records who and which side; stops re-notification).
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/acknowledge", tag = "alerts",
    params(("alert_id" = String, Path, description = "The alert's id")), request_body = AlertNote,
    responses((status = 200, body = Alert), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn acknowledge(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<AlertId>,
    ApiJson(body): ApiJson<AlertNote>,
) -> ApiResult<Json<Alert>> {
    Ok(Json(
        st.app.acknowledge_alert(&ctx.actor, id, &body.note).await?,
    ))
}

/// Resolves an open alert by hand, with a note.
#[utoipa::path(post, path = "/api/v1/alerts/{alert_id}/resolve", tag = "alerts",
    params(("alert_id" = String, Path, description = "The alert's id")), request_body = AlertNote,
    responses((status = 200, body = Alert), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn resolve(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<AlertId>,
    ApiJson(body): ApiJson<AlertNote>,
) -> ApiResult<Json<Alert>> {
    Ok(Json(
        st.app.resolve_alert(&ctx.actor, id, &body.note).await?,
    ))
}

/// Which policies to list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PolicyParams {
    /// One client's policies (with the provider-wide ones that apply to it).
    pub client_id: Option<ClientId>,
}

/// Monitoring policies the caller may see.
#[utoipa::path(get, path = "/api/v1/monitoring/policies", tag = "alerts", params(PolicyParams),
    responses((status = 200, body = Vec<MonitoringPolicy>), (status = 403, body = Problem)))]
pub async fn list_check_policies(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<PolicyParams>,
) -> ApiResult<Json<Vec<MonitoringPolicy>>> {
    Ok(Json(
        st.app.list_check_policies(&ctx.actor, q.client_id).await?,
    ))
}

/// The checks to set at one level.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// Where: `{"level": "provider"}`, `{"level": "client", "id": …}`, `site`, `group`, `endpoint`.
    pub target: PolicyTarget,
    /// Checks added or overridden here.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Keys of checks set above that do not apply here.
    #[serde(default)]
    pub exclusions: Vec<String>,
}

/// Sets the checks and exclusions at one level (replacing what was there).
#[utoipa::path(put, path = "/api/v1/monitoring/policies", tag = "alerts", request_body = PolicyBody,
    responses((status = 200, body = MonitoringPolicy), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_check_policy(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<PolicyBody>,
) -> ApiResult<Json<MonitoringPolicy>> {
    Ok(Json(
        st.app
            .put_check_policy(
                &ctx.actor,
                body.target,
                CheckPolicyInput {
                    checks: body.checks,
                    exclusions: body.exclusions,
                },
            )
            .await?,
    ))
}

/// The checks in force on an endpoint, and which level set, overrode or excluded each.
#[utoipa::path(get, path = "/api/v1/endpoints/{endpoint_id}/checks", tag = "alerts",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, body = Effective), (status = 404, body = Problem)))]
pub async fn effective_checks(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<EndpointId>,
) -> ApiResult<Json<Effective>> {
    Ok(Json(st.app.effective_checks(&ctx.actor, id).await?))
}

/// Accepts the endpoint's current local administrators as its baseline.
#[utoipa::path(post, path = "/api/v1/endpoints/{endpoint_id}/admin-baseline", tag = "alerts",
    params(("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, body = Vec<String>, description = "The accepted administrators"),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn accept_baseline(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<EndpointId>,
) -> ApiResult<Json<Vec<String>>> {
    Ok(Json(st.app.accept_admin_baseline(&ctx.actor, id).await?))
}

/// Endpoint groups the caller may see.
#[utoipa::path(get, path = "/api/v1/endpoint-groups", tag = "alerts", params(PolicyParams),
    responses((status = 200, body = Vec<EndpointGroup>), (status = 403, body = Problem)))]
pub async fn list_groups(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<PolicyParams>,
) -> ApiResult<Json<Vec<EndpointGroup>>> {
    Ok(Json(
        st.app.list_endpoint_groups(&ctx.actor, q.client_id).await?,
    ))
}

/// A group to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// Its name (unique per client).
    pub name: String,
}

/// Creates a named group of the client's endpoints.
#[utoipa::path(post, path = "/api/v1/clients/{client_id}/endpoint-groups", tag = "alerts",
    params(("client_id" = String, Path, description = "The client's id")), request_body = NewGroup,
    responses((status = 201, body = EndpointGroup), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_group(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiJson(body): ApiJson<NewGroup>,
) -> ApiResult<Response> {
    let g = st
        .app
        .create_endpoint_group(&ctx.actor, client, &body.name)
        .await?;
    Ok((StatusCode::CREATED, Json(g)).into_response())
}

/// A membership change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// The endpoint (of the group's client).
    pub endpoint_id: EndpointId,
    /// `true` to add it, `false` to remove it.
    pub member: bool,
}

/// Adds an endpoint to a group or removes it.
#[utoipa::path(post, path = "/api/v1/endpoint-groups/{group_id}/members", tag = "alerts",
    params(("group_id" = String, Path, description = "The group's id")), request_body = Membership,
    responses((status = 204), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_member(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<EndpointGroupId>,
    ApiJson(body): ApiJson<Membership>,
) -> ApiResult<StatusCode> {
    st.app
        .set_group_member(&ctx.actor, id, body.endpoint_id, body.member)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
