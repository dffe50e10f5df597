//! On-call in the JSON API: schedules, escalation policies, pages, calendar feeds; and the
//! public calendar feed URL (its token is the credential).

use crate::http::api::{csv_cell, List, PageParams};
use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tandem_app::{
    FeedCreated, NewFeed, NewPage, NewSchedule, PageOpened, PageView, PolicyInput, SchedulePatch,
    ScheduleView,
};
use tandem_domain::oncall::{Feed, Handoff, Override, Page, PageStatus, Policy, Schedule, Shift};
use tandem_domain::scope::Party;
use tandem_domain::{ClientId, HandoffId, PageId, ScheduleId, Timestamp};
use tandem_store::oncall::{HandoffFilter, PageFilter};
use utoipa::IntoParams;

type ApiResult<T> = Result<T, ApiError>;

fn bad_query(detail: String) -> ApiError {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_query", detail).into()
}

fn instant(name: &str, v: Option<&str>, default: Timestamp) -> ApiResult<Timestamp> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => Timestamp::parse_rfc3339(s)
            .ok_or_else(|| bad_query(format!("{name} must be an RFC 3339 instant"))),
    }
}

/// Schedule list parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScheduleParams {
    /// One client's schedules (with the provider's).
    pub client_id: Option<ClientId>,
    /// The instant for "on call now" (RFC 3339); default now.
    pub at: Option<String>,
}

/// Schedules the caller may see, with who is on call at the instant.
#[utoipa::path(get, path = "/api/v1/oncall/schedules", tag = "on-call", params(ScheduleParams),
    responses((status = 200, body = Vec<ScheduleView>), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_schedules(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<ScheduleParams>,
) -> ApiResult<Json<Vec<ScheduleView>>> {
    let at = instant("at", q.at.as_deref(), Timestamp::now())?;
    Ok(Json(
        st.app.list_schedules(&ctx.actor, q.client_id, at).await?,
    ))
}

/// Creates a schedule: provider-wide without `client_id`, the client's own IT's with it.
#[utoipa::path(post, path = "/api/v1/oncall/schedules", tag = "on-call", request_body = NewSchedule,
    responses((status = 201, body = Schedule), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_schedule(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewSchedule>,
) -> ApiResult<Response> {
    let s = st.app.create_schedule(&ctx.actor, body).await?;
    Ok((StatusCode::CREATED, Json(s)).into_response())
}

/// Instant parameter.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtParams {
    /// The instant (RFC 3339); default now.
    pub at: Option<String>,
}

/// One schedule, with who is on call at the instant.
#[utoipa::path(get, path = "/api/v1/oncall/schedules/{schedule_id}", tag = "on-call",
    params(("schedule_id" = String, Path, description = "The schedule's id"), AtParams),
    responses((status = 200, body = ScheduleView), (status = 404, body = Problem)))]
pub async fn get_schedule(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ScheduleId>,
    ApiQuery(q): ApiQuery<AtParams>,
) -> ApiResult<Json<ScheduleView>> {
    let at = instant("at", q.at.as_deref(), Timestamp::now())?;
    Ok(Json(st.app.get_schedule(&ctx.actor, id, at).await?))
}

/// Renames a schedule or replaces its layers and overrides.
#[utoipa::path(patch, path = "/api/v1/oncall/schedules/{schedule_id}", tag = "on-call",
    params(("schedule_id" = String, Path, description = "The schedule's id")), request_body = SchedulePatch,
    responses((status = 200, body = Schedule), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_schedule(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ScheduleId>,
    ApiJson(body): ApiJson<SchedulePatch>,
) -> ApiResult<Json<Schedule>> {
    Ok(Json(st.app.update_schedule(&ctx.actor, id, body).await?))
}

/// Adds an override (someone stands in from one instant to another).
#[utoipa::path(post, path = "/api/v1/oncall/schedules/{schedule_id}/overrides", tag = "on-call",
    params(("schedule_id" = String, Path, description = "The schedule's id")), request_body = Override,
    responses((status = 200, body = Schedule), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_override(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ScheduleId>,
    ApiJson(body): ApiJson<Override>,
) -> ApiResult<Json<Schedule>> {
    Ok(Json(st.app.add_override(&ctx.actor, id, body).await?))
}

/// Range parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeParams {
    /// From (RFC 3339); default now.
    pub from: Option<String>,
    /// Until (RFC 3339); default seven days after `from`. At most 92 days.
    pub to: Option<String>,
}

/// A schedule's shifts in a range.
#[utoipa::path(get, path = "/api/v1/oncall/schedules/{schedule_id}/shifts", tag = "on-call",
    params(("schedule_id" = String, Path, description = "The schedule's id"), RangeParams),
    responses((status = 200, body = Vec<Shift>), (status = 400, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn shifts(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<ScheduleId>,
    ApiQuery(q): ApiQuery<RangeParams>,
) -> ApiResult<Json<Vec<Shift>>> {
    let from = instant("from", q.from.as_deref(), Timestamp::now())?;
    let to = instant("to", q.to.as_deref(), from.plus_seconds(7 * 86_400))?;
    Ok(Json(
        st.app.schedule_shifts(&ctx.actor, id, from, to).await?,
    ))
}

/// Escalation policies the caller may see.
#[utoipa::path(get, path = "/api/v1/oncall/policies", tag = "on-call",
    responses((status = 200, body = Vec<Policy>), (status = 403, body = Problem)))]
pub async fn list_policies(State(st): State<AppState>, ctx: Ctx) -> ApiResult<Json<Vec<Policy>>> {
    Ok(Json(st.app.list_policies(&ctx.actor).await?))
}

/// Sets a side's escalation policy: the provider's without `client_id`, the client's own IT's
/// with it. Creates it the first time, replaces it after.
#[utoipa::path(put, path = "/api/v1/oncall/policies", tag = "on-call", request_body = PolicyInput,
    responses((status = 200, body = Policy), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_policy(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<PolicyInput>,
) -> ApiResult<Json<Policy>> {
    Ok(Json(st.app.put_policy(&ctx.actor, body).await?))
}

/// Page list filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageListParams {
    /// One client's pages.
    pub client_id: Option<ClientId>,
    /// Statuses, comma-separated (`open,acknowledged,resolved`); `active` for not resolved.
    pub status: Option<String>,
    /// `internal` or `provider`: the side being paged.
    pub side: Option<String>,
    /// `json` (default) or `csv` (every match, up to 100,000, as a file).
    pub format: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

impl PageListParams {
    /// The store filter these parameters ask for, checked.
    pub fn filter(&self) -> ApiResult<PageFilter> {
        let statuses = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => Vec::new(),
            Some("active") => vec!["open".to_string(), "acknowledged".to_string()],
            Some(list) => list
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<PageStatus>()
                        .map(|s| s.as_str().to_string())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad_query(format!("status: {e}")))?,
        };
        let side = match self.side.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some("internal") => Some(Party::Internal),
            Some("provider") => Some(Party::Provider),
            Some(o) => {
                return Err(bad_query(format!(
                    "side must be internal or provider, not {o:?}"
                )))
            }
        };
        Ok(PageFilter {
            client: self.client_id,
            statuses,
            side,
        })
    }
}

/// Pages as CSV (formula-safe cells).
pub fn pages_csv(items: &[Page]) -> String {
    let mut out = String::from("id,client_id,domain,dedup_key,summary,severity,side,status,opened_at,acknowledged_at,resolved_at\n");
    let ts = |t: Option<Timestamp>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for p in items {
        let cells = [
            p.id.to_string(),
            p.client_id.to_string(),
            p.domain.clone(),
            p.dedup_key.clone(),
            p.summary.clone(),
            p.severity.as_str().to_string(),
            p.side.as_str().to_string(),
            p.status.as_str().to_string(),
            p.opened_at.to_rfc3339(),
            ts(p.acknowledged_at),
            ts(p.resolved_at),
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// Pages the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/oncall/pages", tag = "on-call", params(PageListParams),
    responses((status = 200, body = List<Page>, description = "A page of pages, or with format=csv every match as CSV"),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_pages(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<PageListParams>,
) -> ApiResult<Response> {
    let filter = q.filter()?;
    if q.format.as_deref() == Some("csv") {
        let all = st
            .app
            .list_pages(&ctx.actor, &filter, tandem_store::Page::new(0, 100_000))
            .await?;
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"tandem-pages.csv\"",
                ),
            ],
            pages_csv(&all.items),
        )
            .into_response());
    }
    let page = PageParams {
        cursor: q.cursor.clone(),
        limit: q.limit,
    }
    .page()?;
    let r = st.app.list_pages(&ctx.actor, &filter, page).await?;
    Ok(Json(List {
        next_cursor: r.has_more.then(|| (page.offset + page.limit).to_string()),
        items: r.items,
    })
    .into_response())
}

/// Opens a page (201), or answers the page already open for the client and dedup key (200).
#[utoipa::path(post, path = "/api/v1/oncall/pages", tag = "on-call", request_body = NewPage,
    responses((status = 201, body = PageOpened), (status = 200, body = PageOpened), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn open_page(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewPage>,
) -> ApiResult<Response> {
    let r = st.app.open_page(&ctx.actor, body).await?;
    let status = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(r)).into_response())
}

/// One page with its history.
#[utoipa::path(get, path = "/api/v1/oncall/pages/{page_id}", tag = "on-call",
    params(("page_id" = String, Path, description = "The page's id")),
    responses((status = 200, body = PageView), (status = 404, body = Problem)))]
pub async fn get_page(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<PageId>,
) -> ApiResult<Json<PageView>> {
    Ok(Json(st.app.get_page(&ctx.actor, id).await?))
}

/// Acknowledges a page: escalation stops. Acknowledging again changes nothing.
#[utoipa::path(post, path = "/api/v1/oncall/pages/{page_id}/acknowledge", tag = "on-call",
    params(("page_id" = String, Path, description = "The page's id")),
    responses((status = 200, body = Page), (status = 404, body = Problem)))]
pub async fn acknowledge_page(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<PageId>,
) -> ApiResult<Json<Page>> {
    Ok(Json(st.app.acknowledge_page(&ctx.actor, id).await?))
}

/// Resolves a page; its dedup key is free again. Resolving again changes nothing.
#[utoipa::path(post, path = "/api/v1/oncall/pages/{page_id}/resolve", tag = "on-call",
    params(("page_id" = String, Path, description = "The page's id")),
    responses((status = 200, body = Page), (status = 404, body = Problem)))]
pub async fn resolve_page(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<PageId>,
) -> ApiResult<Json<Page>> {
    Ok(Json(st.app.resolve_page(&ctx.actor, id).await?))
}

/// The caller's calendar feeds.
#[utoipa::path(get, path = "/api/v1/oncall/feeds", tag = "on-call",
    responses((status = 200, body = Vec<Feed>), (status = 403, body = Problem)))]
pub async fn list_feeds(State(st): State<AppState>, ctx: Ctx) -> ApiResult<Json<Vec<Feed>>> {
    Ok(Json(st.app.list_feeds(&ctx.actor).await?))
}

/// Makes a calendar feed (a schedule's, or the caller's own shifts); the token is shown once.
#[utoipa::path(post, path = "/api/v1/oncall/feeds", tag = "on-call", request_body = NewFeed,
    responses((status = 201, body = FeedCreated), (status = 404, body = Problem)))]
pub async fn create_feed(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewFeed>,
) -> ApiResult<Response> {
    let f = st.app.create_feed(&ctx.actor, body).await?;
    Ok((StatusCode::CREATED, Json(f)).into_response())
}

/// Revokes one of the caller's calendar feeds.
#[utoipa::path(delete, path = "/api/v1/oncall/feeds/{feed_id}", tag = "on-call",
    params(("feed_id" = String, Path, description = "The feed's id")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_feed(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> ApiResult<StatusCode> {
    st.app.revoke_feed(&ctx.actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET /oncall/feeds/{token} (public: the unguessable token is the credential; `.ics` may
/// end it). Unknown or revoked tokens answer 404.
pub async fn feed_ics(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let token = token.strip_suffix(".ics").unwrap_or(&token);
    match st.app.feed_ics(&ctx.actor, token, Timestamp::now()).await? {
        Some(ics) => Ok((
            [
                (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            ics,
        )
            .into_response()),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "No calendar feed has this address (it may have been revoked).",
        )
        .into()),
    }
}

// ---- shift handoffs -------------------------------------------------------------------

/// Handoff list filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HandoffParams {
    /// One client's handoffs.
    pub client_id: Option<ClientId>,
    /// `true` only acknowledged ones, `false` only those waiting for acknowledgement.
    pub acknowledged: Option<bool>,
    /// `json` (default) or `csv` (every match, up to 100,000, as a file).
    pub format: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// Handoff records as CSV (formula-safe cells).
pub fn handoffs_csv(items: &[Handoff]) -> String {
    let mut out =
        String::from("id,client_id,at,from_side,to_side,open_items,acknowledged_at,page_id\n");
    for h in items {
        let cells = [
            h.id.to_string(),
            h.client_id.to_string(),
            h.at.to_rfc3339(),
            h.from_side.as_str().to_string(),
            h.to_side.as_str().to_string(),
            h.items.len().to_string(),
            h.acknowledged_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            h.page_id.map(|p| p.to_string()).unwrap_or_default(),
        ];
        let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// Shift handoff records the caller may see, newest first.
#[utoipa::path(get, path = "/api/v1/oncall/handoffs", tag = "on-call", params(HandoffParams),
    responses((status = 200, body = List<Handoff>, description = "A page, or with format=csv every match as CSV"),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_handoffs(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<HandoffParams>,
) -> ApiResult<Response> {
    let filter = HandoffFilter {
        client: q.client_id,
        acknowledged: q.acknowledged,
    };
    if q.format.as_deref() == Some("csv") {
        let all = st
            .app
            .list_handoffs(&ctx.actor, &filter, tandem_store::Page::new(0, 100_000))
            .await?;
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"tandem-handoffs.csv\"",
                ),
            ],
            handoffs_csv(&all.items),
        )
            .into_response());
    }
    let page = PageParams {
        cursor: q.cursor.clone(),
        limit: q.limit,
    }
    .page()?;
    let r = st.app.list_handoffs(&ctx.actor, &filter, page).await?;
    Ok(Json(List {
        next_cursor: r.has_more.then(|| (page.offset + page.limit).to_string()),
        items: r.items,
    })
    .into_response())
}

/// One handoff record with what was open and the outgoing side's notes.
#[utoipa::path(get, path = "/api/v1/oncall/handoffs/{handoff_id}", tag = "on-call",
    params(("handoff_id" = String, Path, description = "The handoff's id")),
    responses((status = 200, body = Handoff), (status = 404, body = Problem)))]
pub async fn get_handoff(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<HandoffId>,
) -> ApiResult<Json<Handoff>> {
    Ok(Json(st.app.get_handoff(&ctx.actor, id).await?))
}

/// A note.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// The text (1 to 8000 characters).
    pub body: String,
}

/// The outgoing side adds a note to a handoff, until it is acknowledged.
#[utoipa::path(post, path = "/api/v1/oncall/handoffs/{handoff_id}/notes", tag = "on-call",
    params(("handoff_id" = String, Path, description = "The handoff's id")), request_body = NewNote,
    responses((status = 200, body = Handoff), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_handoff_note(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<HandoffId>,
    ApiJson(body): ApiJson<NewNote>,
) -> ApiResult<Json<Handoff>> {
    Ok(Json(
        st.app.add_handoff_note(&ctx.actor, id, &body.body).await?,
    ))
}

/// The receiving side acknowledges a handoff. Acknowledging again changes nothing.
#[utoipa::path(post, path = "/api/v1/oncall/handoffs/{handoff_id}/acknowledge", tag = "on-call",
    params(("handoff_id" = String, Path, description = "The handoff's id")),
    responses((status = 200, body = Handoff), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn acknowledge_handoff(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<HandoffId>,
) -> ApiResult<Json<Handoff>> {
    Ok(Json(st.app.acknowledge_handoff(&ctx.actor, id).await?))
}
