//! Ticket data in the JSON API (issue #5, part 2): watchers, tags, related links, merges,
//! SLA policies per client and priority, and the SLA event feed.

use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_app::{SlaEventPage, SlaPolicyRow, TicketData, TicketEndpoint};
use tandem_domain::helpdesk::{Priority, Ticket};
use tandem_domain::ticket_data::{SlaPolicy, DEFAULT_WARN_PERCENT};
use tandem_domain::{ClientId, EndpointId, TicketId, UserId};
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

fn yes() -> bool {
    true
}

/// Who starts or stops watching.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchChange {
    /// The person (default: the caller).
    #[serde(default)]
    pub user_id: Option<UserId>,
    /// `true` (default) to watch, `false` to stop.
    #[serde(default = "yes")]
    pub watching: bool,
}

/// Starts or stops someone watching a ticket; answers the ticket's watchers, tags and links.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/watchers", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")), request_body = WatchChange,
    responses((status = 200, body = TicketData), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn watch(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    ApiJson(body): ApiJson<WatchChange>,
) -> ApiResult<Json<TicketData>> {
    Ok(Json(
        st.app
            .watch_ticket(&ctx.actor, id, body.user_id, body.watching)
            .await?,
    ))
}

/// Tags to add and remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagChange {
    /// Tags to add (normalised: `VPN outage` becomes `vpn-outage`).
    #[serde(default)]
    pub add: Vec<String>,
    /// Tags to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A ticket's tags.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tags {
    /// Normalised, alphabetically.
    pub tags: Vec<String>,
}

/// Adds and removes a ticket's tags.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/tags", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")), request_body = TagChange,
    responses((status = 200, body = Tags), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn tag(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    ApiJson(body): ApiJson<TagChange>,
) -> ApiResult<Json<Tags>> {
    let tags = st
        .app
        .tag_ticket(&ctx.actor, id, &body.add, &body.remove)
        .await?;
    Ok(Json(Tags { tags }))
}

/// A tag in use.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagCount {
    /// The tag.
    pub tag: String,
    /// How many tickets the caller may see carry it.
    pub tickets: i64,
}

/// The tags in use on the tickets the caller may see.
#[utoipa::path(get, path = "/api/v1/ticket-tags", tag = "helpdesk",
    responses((status = 200, body = Vec<TagCount>), (status = 403, body = Problem)))]
pub async fn tags_in_use(State(st): State<AppState>, ctx: Ctx) -> ApiResult<Json<Vec<TagCount>>> {
    Ok(Json(
        st.app
            .ticket_tags(&ctx.actor)
            .await?
            .into_iter()
            .map(|(tag, tickets)| TagCount { tag, tickets })
            .collect(),
    ))
}

/// A related ticket to link or unlink.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkChange {
    /// The other ticket (same client).
    pub ticket_id: TicketId,
    /// `true` (default) to link, `false` to unlink.
    #[serde(default = "yes")]
    pub linked: bool,
}

/// Links a related ticket (shown on both) or unlinks it.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/links", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")), request_body = LinkChange,
    responses((status = 200, body = TicketData), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn link(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    ApiJson(body): ApiJson<LinkChange>,
) -> ApiResult<Json<TicketData>> {
    Ok(Json(
        st.app
            .link_tickets(&ctx.actor, id, body.ticket_id, body.linked)
            .await?,
    ))
}

/// An endpoint to link to a ticket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointLink {
    /// An endpoint of the ticket's client, in service.
    pub endpoint_id: EndpointId,
}

/// Links an endpoint of the ticket's client to the ticket (nothing changes if it already
/// is); answers the ticket's endpoints.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/endpoints", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")), request_body = EndpointLink,
    responses((status = 200, body = Vec<TicketEndpoint>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn link_endpoint(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    ApiJson(body): ApiJson<EndpointLink>,
) -> ApiResult<Json<Vec<TicketEndpoint>>> {
    Ok(Json(
        st.app
            .link_ticket_endpoint(&ctx.actor, id, body.endpoint_id, true)
            .await?,
    ))
}

/// Unlinks an endpoint from the ticket (nothing changes if it was not linked); answers the
/// ticket's endpoints.
#[utoipa::path(delete, path = "/api/v1/tickets/{ticket_id}/endpoints/{endpoint_id}", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id"), ("endpoint_id" = String, Path, description = "The endpoint's id")),
    responses((status = 200, body = Vec<TicketEndpoint>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unlink_endpoint(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((id, endpoint)): ApiPath<(TicketId, EndpointId)>,
) -> ApiResult<Json<Vec<TicketEndpoint>>> {
    Ok(Json(
        st.app
            .link_ticket_endpoint(&ctx.actor, id, endpoint, false)
            .await?,
    ))
}

/// Where to merge a duplicate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeInto {
    /// The ticket that stays (same client, not itself merged).
    pub into: TicketId,
}

/// Merges this ticket, a duplicate, into another: this one is closed as merged; its
/// requester and watchers watch the other. Answers the merged (closed) ticket.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/merge", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The duplicate's id")), request_body = MergeInto,
    responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn merge(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    ApiJson(body): ApiJson<MergeInto>,
) -> ApiResult<Json<Ticket>> {
    Ok(Json(st.app.merge_ticket(&ctx.actor, id, body.into).await?))
}

/// A client's SLA policy: one row per priority, the client's own targets or the defaults.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/sla-policy", tag = "helpdesk",
    params(("client_id" = String, Path, description = "The client's id")),
    responses((status = 200, body = Vec<SlaPolicyRow>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn sla_policy(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
) -> ApiResult<Json<Vec<SlaPolicyRow>>> {
    Ok(Json(st.app.sla_policies(&ctx.actor, client).await?))
}

/// Targets for one priority, in business minutes of the owning side.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaTargets {
    /// First response within this many business minutes (1–525600).
    pub response_minutes: i64,
    /// Resolution within this many business minutes (not less than the first response).
    pub resolution_minutes: i64,
    /// Warn once this share of a target is used, 1–99 (default 75).
    #[serde(default)]
    pub warn_percent: Option<i64>,
}

fn priority(p: &str) -> ApiResult<Priority> {
    p.parse::<Priority>().map_err(|e| {
        Problem::new(StatusCode::NOT_FOUND, "not_found", format!("priority: {e}")).into()
    })
}

/// Sets a client's targets for one priority (provider admins and the client's IT admins).
#[utoipa::path(put, path = "/api/v1/clients/{client_id}/sla-policy/{priority}", tag = "helpdesk",
    params(("client_id" = String, Path, description = "The client's id"), ("priority" = String, Path, description = "P1 to P4")),
    request_body = SlaTargets,
    responses((status = 200, body = Vec<SlaPolicyRow>), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_sla_policy(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, p)): ApiPath<(ClientId, String)>,
    ApiJson(body): ApiJson<SlaTargets>,
) -> ApiResult<Json<Vec<SlaPolicyRow>>> {
    let policy = SlaPolicy {
        priority: priority(&p)?,
        response_minutes: body.response_minutes,
        resolution_minutes: body.resolution_minutes,
        warn_percent: body.warn_percent.unwrap_or(DEFAULT_WARN_PERCENT),
    };
    Ok(Json(
        st.app.set_sla_policy(&ctx.actor, client, policy).await?,
    ))
}

/// Drops a client's own targets for one priority; the defaults apply again.
#[utoipa::path(delete, path = "/api/v1/clients/{client_id}/sla-policy/{priority}", tag = "helpdesk",
    params(("client_id" = String, Path, description = "The client's id"), ("priority" = String, Path, description = "P1 to P4")),
    responses((status = 200, body = Vec<SlaPolicyRow>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn reset_sla_policy(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath((client, p)): ApiPath<(ClientId, String)>,
) -> ApiResult<Json<Vec<SlaPolicyRow>>> {
    let p = priority(&p)?;
    Ok(Json(st.app.reset_sla_policy(&ctx.actor, client, p).await?))
}

/// Where to continue the SLA event feed.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlaEventParams {
    /// The `next_after` of the previous call (default 0: from the start).
    pub after: Option<i64>,
    /// At most this many, 1 to 1000 (default 100).
    pub limit: Option<u32>,
}

/// SLA warnings and breaches recorded after a cursor, in commit order — the feed for
/// notifications. Keep `next_after` and pass it as `after` next time.
#[utoipa::path(get, path = "/api/v1/sla-events", tag = "helpdesk", params(SlaEventParams),
    responses((status = 200, body = SlaEventPage), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn sla_events(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<SlaEventParams>,
) -> ApiResult<Json<SlaEventPage>> {
    Ok(Json(
        st.app
            .sla_events_since(&ctx.actor, q.after.unwrap_or(0), q.limit.unwrap_or(100))
            .await?,
    ))
}

// ---- reports --------------------------------------------------------------------------

/// Which month, where, and in which format.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// `YYYY-MM` (default: the current month in `time_zone`).
    pub month: Option<String>,
    /// IANA time zone the month is taken in (default UTC).
    pub time_zone: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

impl ReportParams {
    /// The month and time zone asked for, with the defaults.
    pub fn month_tz(&self, default_tz: &str) -> (String, String) {
        let tz = self
            .time_zone
            .clone()
            .filter(|z| !z.is_empty())
            .unwrap_or_else(|| default_tz.to_string());
        let month = self
            .month
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| current_month(&tz));
        (month, tz)
    }
}

/// `YYYY-MM` now in a time zone (UTC if the zone is unknown; the use case then says so).
pub fn current_month(tz: &str) -> String {
    let z = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let d = jiff::Timestamp::now().to_zoned(z).date();
    format!("{:04}-{:02}", d.year(), d.month())
}

fn opt(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn csv(header: &str, rows: Vec<Vec<String>>) -> String {
    let mut out = format!("{header}\n");
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| crate::http::api::csv_cell(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// The SLA report as CSV.
pub fn sla_report_csv(r: &tandem_app::SlaReport) -> String {
    csv(
        "month,side,tickets,first_response_met_percent,resolution_met_percent,breaches,median_first_response_minutes,median_resolution_minutes",
        r.rows
            .iter()
            .map(|x| {
                vec![
                    r.month.clone(),
                    x.side.as_str().to_string(),
                    x.tickets.to_string(),
                    opt(x.first_response_met_percent),
                    opt(x.resolution_met_percent),
                    x.breaches.to_string(),
                    opt(x.median_first_response_minutes),
                    opt(x.median_resolution_minutes),
                ]
            })
            .collect(),
    )
}

/// The handoff report as CSV.
pub fn handoff_report_csv(r: &tandem_app::HandoffReport) -> String {
    csv(
        "month,from,to,reason,count,median_pickup_minutes,not_picked_up",
        r.rows
            .iter()
            .map(|x| {
                vec![
                    r.month.clone(),
                    x.from.as_str().to_string(),
                    x.to.as_str().to_string(),
                    x.reason.clone(),
                    x.count.to_string(),
                    opt(x.median_pickup_minutes),
                    x.not_picked_up.to_string(),
                ]
            })
            .collect(),
    )
}

/// A CSV download.
pub fn csv_file(name: &str, body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A client's monthly SLA report per side.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/reports/sla", tag = "helpdesk",
    params(("client_id" = String, Path, description = "The client's id"), ReportParams),
    responses((status = 200, body = tandem_app::SlaReport, description = "The report, or with format=csv as CSV"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn sla_report(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let (month, tz) = q.month_tz("UTC");
    let r = st.app.sla_report(&ctx.actor, client, &month, &tz).await?;
    Ok(if q.format.as_deref() == Some("csv") {
        csv_file(&format!("tandem-sla-{month}.csv"), sla_report_csv(&r))
    } else {
        Json(r).into_response()
    })
}

/// A client's monthly handoff report: reasons by direction, and how fast they are picked up.
#[utoipa::path(get, path = "/api/v1/clients/{client_id}/reports/handoffs", tag = "helpdesk",
    params(("client_id" = String, Path, description = "The client's id"), ReportParams),
    responses((status = 200, body = tandem_app::HandoffReport, description = "The report, or with format=csv as CSV"),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn handoff_report(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(client): ApiPath<ClientId>,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let (month, tz) = q.month_tz("UTC");
    let r = st
        .app
        .handoff_report(&ctx.actor, client, &month, &tz)
        .await?;
    Ok(if q.format.as_deref() == Some("csv") {
        csv_file(
            &format!("tandem-handoffs-{month}.csv"),
            handoff_report_csv(&r),
        )
    } else {
        Json(r).into_response()
    })
}
