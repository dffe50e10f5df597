//! Views of the ticket queue in the JSON API and the web UI (issue #5): the built-in views
//! and each person's saved ones. A saved view's query is checked against the queue's own
//! parameters before it is stored, so every saved view opens.

use crate::http::api::List;
use crate::http::api_tickets::TicketParams;
use crate::http::context::Ctx;
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::pages::{back_with, redirect_with, FormFields};
use crate::http::problem::{ApiError, Problem};
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tandem_app::{Error, TicketViewItem};
use tandem_domain::validate::Invalid;
use utoipa::ToSchema;

type ApiResult<T> = Result<T, ApiError>;

/// The keys a saved view may hold.
const KEYS: [&str; 7] = [
    "status",
    "owner",
    "assignee",
    "priority",
    "q",
    "client_id",
    "view",
];

/// Checks a saved view's query against the queue's parameters; the query, normalised
/// (a leading `?` dropped, empty values left out).
pub fn checked_query(query: &str) -> Result<String, Error> {
    let bad = |m: String| Error::Invalid(vec![Invalid::new("query", m)]);
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.trim().trim_start_matches('?'))
            .map_err(|_| bad("write the filter as a query string, like status=active".into()))?;
    let pairs: Vec<(String, String)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !KEYS.contains(&k.as_str())) {
        return Err(bad(format!(
            "{k:?} cannot be saved; use {}",
            KEYS.join(", ")
        )));
    }
    let normal = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    let params: TicketParams = serde_urlencoded::from_str(&normal)
        .map_err(|e| bad(format!("not a filter of the queue: {e}")))?;
    params
        .filter(None)
        .map_err(|_| bad("one of the filters has a value the queue does not know".into()))?;
    if let Some(v) = params.view.as_deref() {
        if tandem_app::BuiltinView::parse(v).is_none() {
            return Err(bad(format!("there is no built-in view {v:?}")));
        }
    }
    Ok(normal)
}

/// A view to save.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicketView {
    /// Its name (1 to 80 characters, unique among the caller's views).
    pub name: String,
    /// The queue's filter as a query string (`status=active&owner=provider&q=vpn`); keys:
    /// status, owner, assignee, priority, q, client_id, view.
    pub query: String,
}

/// The built-in views and the caller's saved views.
#[utoipa::path(get, path = "/api/v1/ticket-views", tag = "helpdesk",
    responses((status = 200, body = List<TicketViewItem>), (status = 403, body = Problem)))]
pub async fn list_views(
    State(st): State<AppState>,
    ctx: Ctx,
) -> ApiResult<Json<List<TicketViewItem>>> {
    Ok(Json(List {
        items: st.app.ticket_views(&ctx.actor).await?,
        next_cursor: None,
    }))
}

/// Saves a view of the queue for the caller.
#[utoipa::path(post, path = "/api/v1/ticket-views", tag = "helpdesk", request_body = NewTicketView,
    responses((status = 201, body = TicketViewItem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_view(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiJson(body): ApiJson<NewTicketView>,
) -> ApiResult<Response> {
    st.app.ticket_views(&ctx.actor).await?;
    let query = checked_query(&body.query)?;
    let v = st
        .app
        .save_ticket_view(&ctx.actor, &body.name, &query)
        .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// Deletes one of the caller's saved views.
#[utoipa::path(delete, path = "/api/v1/ticket-views/{view_id}", tag = "helpdesk",
    params(("view_id" = String, Path, description = "The saved view's id")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_view(
    State(st): State<AppState>,
    ctx: Ctx,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_ticket_view(&ctx.actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /tickets/views — saves the queue's current filter under a name.
pub async fn save_page(
    State(st): State<AppState>,
    ctx: Ctx,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let query = f.get("query").unwrap_or("").to_string();
    let back = format!("/tickets?{query}");
    let saved = match checked_query(&query) {
        Ok(q) => {
            st.app
                .save_ticket_view(&ctx.actor, f.get("name").unwrap_or(""), &q)
                .await
        }
        Err(e) => {
            // Still ask for the grant, so a refusal reads as one.
            match st.app.ticket_views(&ctx.actor).await {
                Ok(_) => Err(e),
                Err(denied) => Err(denied),
            }
        }
    };
    match saved {
        Ok(v) => redirect_with(
            &format!("/tickets?{}", v.query),
            Some(&format!("View \u{201c}{}\u{201d} saved.", v.name)),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, &back, e),
    }
}

/// POST /tickets/views/{view_id}/delete
pub async fn delete_page(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    match st.app.delete_ticket_view(&ctx.actor, &id).await {
        Ok(()) => redirect_with(
            "/tickets",
            Some("View deleted."),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/tickets", e),
    }
}
