//! Tickets in the JSON API.

use crate::http::api::PageParams;
use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tandem_app::{NewTicket, TicketView};
use tandem_domain::helpdesk::{Impact, Status, Ticket, Urgency};
use tandem_domain::scope::Party;
use tandem_domain::{ClientId, EndpointId, TicketId, UserId};
use tandem_store::tickets::TicketFilter;
use utoipa::{IntoParams, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

fn bad_query(detail: String) -> ApiError {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_query", detail).into()
}

/// Queue filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketParams {
    /// One client's tickets.
    pub client_id: Option<ClientId>,
    /// Statuses, comma-separated (`new,open`); `active` for everything not resolved or closed.
    pub status: Option<String>,
    /// `internal` or `provider`: the side that owns them.
    pub owner: Option<String>,
    /// Assigned to this person (`me` for the caller).
    pub assignee: Option<String>,
    /// `P1` … `P4`.
    pub priority: Option<String>,
    /// Full-text search: tickets whose subject, description, public replies or (IT sides
    /// only) internal notes hold every word, best match first, each with a `snippet`.
    pub q: Option<String>,
    /// tickets2: carrying this tag.
    pub tag: Option<String>,
    /// tickets2: `breached` (a target was breached) or `at_risk` (warned, not breached, still open).
    pub sla: Option<String>,
    /// Linked to this endpoint (issue #5); not for end users, for whom it is ignored. Narrows
    /// the queue list, a search (`q`) and a built-in view alike (as `tag` and `sla` do).
    pub endpoint_id: Option<EndpointId>,
    /// `json` (default, a page), `csv` or `json-export` (every match, up to 100,000, as a
    /// file).
    pub format: Option<String>,
    /// A built-in view: `provider_after_hours` (provider-owned active tickets of clients
    /// whose internal IT is closed now) or `breaching_soon` (an SLA deadline within two
    /// hours); combines with the other filters but not with `q`.
    pub view: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
}

impl TicketParams {
    /// The built-in view asked for, checked; `q` and a view do not combine.
    pub fn builtin_view(&self) -> ApiResult<Option<tandem_app::BuiltinView>> {
        match self.view.as_deref().filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => {
                let view = tandem_app::BuiltinView::parse(v).ok_or_else(|| {
                    bad_query(format!(
                        "view must be provider_after_hours or breaching_soon, not {v:?}"
                    ))
                })?;
                if self.q.as_deref().is_some_and(|q| !q.trim().is_empty()) {
                    return Err(bad_query("a view and a search (q) do not combine".into()));
                }
                Ok(Some(view))
            }
        }
    }

    /// The store filter these parameters ask for, checked.
    pub fn filter(&self, me: Option<UserId>) -> ApiResult<TicketFilter> {
        let statuses = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => Vec::new(),
            Some("active") => tandem_app::ACTIVE_STATUSES.map(String::from).to_vec(),
            Some(list) => list
                .split(',')
                .map(|s| s.trim().parse::<Status>().map(|s| s.as_str().to_string()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad_query(format!("status: {e}")))?,
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
        let assignee = match self.assignee.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some("me") => me,
            Some(a) => Some(
                a.parse()
                    .map_err(|_| bad_query("assignee must be a user id or 'me'".into()))?,
            ),
        };
        let priority = match self.priority.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(p) => Some(
                p.parse::<tandem_domain::helpdesk::Priority>()
                    .map_err(|e| bad_query(format!("priority: {e}")))?
                    .as_str()
                    .to_string(),
            ),
        };
        // tickets2: tag and SLA filters.
        let tag = match self.tag.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(t) => Some(
                tandem_domain::ticket_data::normalize_tag(t)
                    .map_err(|e| bad_query(format!("tag: {}", e.message)))?,
            ),
        };
        let sla = match self.sla.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some("breached") => Some(tandem_store::tickets::SlaFilter::Breached),
            Some("at_risk") => Some(tandem_store::tickets::SlaFilter::AtRisk),
            Some(o) => {
                return Err(bad_query(format!(
                    "sla must be breached or at_risk, not {o:?}"
                )))
            }
        };
        Ok(TicketFilter {
            tag,
            sla,
            endpoint: self.endpoint_id,
            client: self.client_id,
            statuses,
            owner,
            assignee,
            requester: None,
            priority,
            // search (issue #5): `q` is a full-text search (see `queue_page`), not a filter.
            text: None,
        })
    }
}

/// The tickets as CSV (formula-safe cells).
pub fn tickets_csv(items: &[Ticket]) -> String {
    let mut out = String::from("id,client_id,number,subject,domain,owner,priority,status,requester_id,assignee_id,created_at,updated_at,first_response_at,resolved_at\n");
    let ts = |t: Option<tandem_domain::Timestamp>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for t in items {
        let cells = [
            t.id.to_string(),
            t.client_id.to_string(),
            t.number.to_string(),
            t.subject.clone(),
            t.domain.clone(),
            t.owner.as_str().to_string(),
            t.priority.as_str().to_string(),
            t.status.as_str().to_string(),
            t.requester_id.map(|u| u.to_string()).unwrap_or_default(),
            t.assignee_id.map(|u| u.to_string()).unwrap_or_default(),
            t.created_at.to_rfc3339(),
            t.updated_at.to_rfc3339(),
            ts(t.first_response_at),
            ts(t.resolved_at),
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

/// One ticket of the queue; a search adds how well and where it matched.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketItem {
    /// The ticket.
    #[serde(flatten)]
    pub ticket: Ticket,
    /// With `q`: relevance, higher is better (comparable within one search only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// With `q`: a passage around the first matching word, from text the caller may see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

impl TicketItem {
    fn plain(ticket: Ticket) -> Self {
        TicketItem {
            ticket,
            score: None,
            snippet: None,
        }
    }
}

/// A page of the ticket queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketList {
    /// The tickets: with `q`, best match first; else most recently changed first.
    pub items: Vec<TicketItem>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// With `q`: `true` when more tickets matched than a search ranks (1,000), so the items
    /// are the best of the 1,000 most recently opened matches, not of all of them; a more
    /// precise query, a filter, or an export (`format=json-export`, which ranks every match)
    /// reaches the rest. Absent without `q`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped: Option<bool>,
}

/// The most a file export holds.
pub const EXPORT_MAX: u32 = 100_000;

/// A page of the queue, as [`queue_page`] gives it.
pub struct QueueSlice {
    /// The tickets (with score and snippet when searching).
    pub items: Vec<TicketItem>,
    /// Whether another page follows.
    pub has_more: bool,
    /// With a search: whether more tickets matched than were ranked (see [`TicketList`]).
    pub capped: Option<bool>,
}

/// A page of the queue: ranked search hits when `q` holds a word, else by last change. A
/// search ranks at most `candidates` of the most recently opened matches (`None`: all).
pub async fn queue_page(
    st: &AppState,
    actor: &tandem_app::Actor,
    filter: &TicketFilter,
    q: Option<&str>,
    view: Option<tandem_app::BuiltinView>,
    page: tandem_store::Page,
    candidates: Option<u32>,
) -> Result<QueueSlice, tandem_app::Error> {
    if let Some(v) = view {
        let r = st.app.builtin_view(actor, v, filter, page).await?;
        return Ok(QueueSlice {
            items: r.page.items.into_iter().map(TicketItem::plain).collect(),
            has_more: r.page.has_more,
            capped: None,
        });
    }
    match q.filter(|q| !q.trim().is_empty()) {
        Some(q) => {
            let r = st
                .app
                .search_tickets_within(actor, filter, q, page, candidates)
                .await?;
            Ok(QueueSlice {
                items: r
                    .hits
                    .items
                    .into_iter()
                    .map(|h| TicketItem {
                        ticket: h.ticket,
                        score: Some(h.score),
                        snippet: Some(h.snippet),
                    })
                    .collect(),
                has_more: r.hits.has_more,
                capped: Some(r.capped),
            })
        }
        None => {
            let r = st.app.list_tickets(actor, filter, page).await?;
            Ok(QueueSlice {
                items: r.items.into_iter().map(TicketItem::plain).collect(),
                has_more: r.has_more,
                capped: None,
            })
        }
    }
}

/// Every match of the queue, page by page, up to [`EXPORT_MAX`]; a search's export ranks
/// every match (it is never capped).
pub async fn queue_all(
    st: &AppState,
    actor: &tandem_app::Actor,
    filter: &TicketFilter,
    q: Option<&str>,
    view: Option<tandem_app::BuiltinView>,
) -> Result<Vec<TicketItem>, tandem_app::Error> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = tandem_store::Page::new(offset, tandem_store::Page::MAX_LIMIT);
        let s = queue_page(st, actor, filter, q, view, page, None).await?;
        offset += s.items.len() as u32;
        out.extend(s.items);
        if !s.has_more || offset >= EXPORT_MAX {
            out.truncate(EXPORT_MAX as usize);
            return Ok(out);
        }
    }
}

/// The queue as a file download: `csv` or `json-export`; `None` for any other format.
pub fn export_file(format: Option<&str>, items: Vec<TicketItem>) -> Option<Response> {
    let (kind, name, body) = match format? {
        "csv" => {
            let tickets: Vec<Ticket> = items.into_iter().map(|i| i.ticket).collect();
            (
                "text/csv; charset=utf-8",
                "attachment; filename=\"tandem-tickets.csv\"",
                tickets_csv(&tickets),
            )
        }
        "json-export" => (
            "application/json",
            "attachment; filename=\"tandem-tickets.json\"",
            serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into()),
        ),
        _ => return None,
    };
    Some(
        (
            [
                (axum::http::header::CONTENT_TYPE, kind),
                (axum::http::header::CONTENT_DISPOSITION, name),
            ],
            body,
        )
            .into_response(),
    )
}

/// The ticket queue the caller may see (end users: their own tickets).
#[utoipa::path(get, path = "/api/v1/tickets", tag = "helpdesk", params(TicketParams),
    responses((status = 200, body = TicketList, description = "A page, or with format=csv or json-export every match as a file"),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn list_tickets(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiQuery(q): ApiQuery<TicketParams>,
) -> ApiResult<Response> {
    let me = ctx.actor.principal.as_ref().map(|p| p.user_id);
    let filter = q.filter(me)?;
    let view = q.builtin_view()?;
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "csv" | "json-export") {
        return Err(bad_query(format!(
            "format must be json, csv or json-export, not {format:?}"
        )));
    }
    if format != "json" {
        let all = queue_all(&st, &ctx.actor, &filter, q.q.as_deref(), view).await?;
        if let Some(file) = export_file(Some(format), all) {
            return Ok(file);
        }
    }
    let page = PageParams {
        cursor: q.cursor.clone(),
        limit: q.limit,
    }
    .page()?;
    let s = queue_page(
        &st,
        &ctx.actor,
        &filter,
        q.q.as_deref(),
        view,
        page,
        Some(tandem_app::SEARCH_CANDIDATES),
    )
    .await?;
    Ok(Json(TicketList {
        next_cursor: s.has_more.then(|| (page.offset + page.limit).to_string()),
        items: s.items,
        capped: s.capped,
    })
    .into_response())
}

/// Opens a ticket; the scope agreement in force decides which side owns it.
#[utoipa::path(post, path = "/api/v1/tickets", tag = "helpdesk", request_body = NewTicket,
    responses((status = 201, body = Ticket), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_ticket(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewTicket>,
) -> ApiResult<Response> {
    let t = st.app.create_ticket(&ctx.actor, body).await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

/// A ticket with its history and SLA state.
#[utoipa::path(get, path = "/api/v1/tickets/{ticket_id}", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")),
    responses((status = 200, body = TicketView), (status = 404, body = Problem)))]
pub async fn get_ticket(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(st.app.get_ticket(&ctx.actor, id).await?))
}

/// A reply or an internal note.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReply {
    /// The text.
    pub body: String,
    /// An internal note for the two IT sides only (the requester never sees it).
    #[serde(default)]
    pub internal: bool,
}

/// Adds a public reply or an internal note.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/replies", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")), request_body = NewReply,
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reply(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    ApiJson(body): ApiJson<NewReply>,
) -> ApiResult<StatusCode> {
    st.app
        .reply(&ctx.actor, id, &body.body, body.internal)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A status to move to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `open`, `waiting_on_requester`, `waiting_on_vendor`, `resolved` or `closed`.
    pub status: Status,
}

/// Moves a ticket through the workflow.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/status", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")), request_body = StatusChange,
    responses((status = 200, body = Ticket), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn set_status(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    ApiJson(body): ApiJson<StatusChange>,
) -> ApiResult<Json<Ticket>> {
    Ok(Json(
        st.app
            .set_ticket_status(&ctx.actor, id, body.status)
            .await?,
    ))
}

/// A new impact and urgency for a ticket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityChange {
    /// `organisation`, `department` or `person`.
    pub impact: Impact,
    /// `critical`, `high`, `normal` or `low`.
    pub urgency: Urgency,
    /// Why (optional, up to 500 characters; in the ticket's internal history).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Re-rates a ticket; the priority (and the SLA targets) follow from the matrix.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/priority", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")), request_body = PriorityChange,
    responses((status = 200, body = Ticket), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_priority(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    ApiJson(body): ApiJson<PriorityChange>,
) -> ApiResult<Json<Ticket>> {
    Ok(Json(
        st.app
            .set_ticket_priority(
                &ctx.actor,
                id,
                body.impact,
                body.urgency,
                body.reason.as_deref(),
            )
            .await?,
    ))
}

/// A handoff to the other side.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Handoff {
    /// `provider` (hand to the provider) or `internal` (hand back to the client's IT).
    pub to: Party,
    /// Why; both sides see it, and handoff reasons are reported on.
    pub reason: String,
}

/// Hands a ticket to the other side; the SLA clock follows it.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/handoff", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")), request_body = Handoff,
    responses((status = 200, body = Ticket), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn hand_off(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    ApiJson(body): ApiJson<Handoff>,
) -> ApiResult<Json<Ticket>> {
    Ok(Json(
        st.app
            .hand_off(&ctx.actor, id, body.to, &body.reason)
            .await?,
    ))
}

/// Whom to assign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// A person of the owning side, or null to unassign.
    pub assignee_id: Option<UserId>,
}

/// Assigns a ticket.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/assign", tag = "helpdesk",
    params(("ticket_id" = String, Path, description = "The ticket's id")), request_body = Assignment,
    responses((status = 200, body = Ticket), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn assign(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<TicketId>,
    ApiJson(body): ApiJson<Assignment>,
) -> ApiResult<Json<Ticket>> {
    Ok(Json(
        st.app
            .assign_ticket(&ctx.actor, id, body.assignee_id)
            .await?,
    ))
}
