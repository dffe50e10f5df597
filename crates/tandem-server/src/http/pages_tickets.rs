//! Tickets in the web UI: the queue (with saved views), one ticket with its history and the
//! actions both sides take on it, and the form to open one. End users see the same pages,
//! narrowed to their own tickets and without internal notes or the IT actions.

use crate::http::api_tickets::TicketParams;
use crate::http::context::Ctx;
use crate::http::pages::{
    back_with, chrome, fail, redirect_with, render, Chrome, FormFields, PageResult,
};
use crate::http::AppState;
use askama::Template;
use axum::extract::{FromRequest, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use tandem_app::{Error, NewTicket};
use tandem_domain::authz::{authorize, Action};
use tandem_domain::helpdesk::{Impact, Status, Ticket, Urgency};
use tandem_domain::scope::Party;
use tandem_domain::{Role, TicketId, Timestamp};
use tandem_store::Page;

/// One row of the queue.
pub(crate) struct Row {
    id: String,
    number: String,
    subject: String,
    client: String,
    owner: &'static str,
    owner_class: &'static str,
    priority: &'static str,
    status: &'static str,
    updated: String,
    /// With a search: where the ticket matched.
    snippet: Option<String>,
}

#[derive(Template)]
#[template(path = "tickets.html")]
struct QueuePage {
    chrome: Chrome,
    rows: Vec<Row>,
    /// (href, label, active)
    views: Vec<(String, &'static str, bool)>,
    f_q: String,
    /// The current view's query, for the export link.
    query: String,
    /// The person's saved views: (id, name, href, active).
    saved: Vec<(String, String, String, bool)>,
    can_open: bool,
    next_href: Option<String>,
    /// A search matched more tickets than it ranks: how many it ranked.
    capped: Option<u32>,
}

fn owner_class(p: Party) -> &'static str {
    match p {
        Party::Internal => "side-client",
        Party::Provider => "side-provider",
    }
}

fn status_label(s: Status) -> &'static str {
    match s {
        Status::New => "new",
        Status::Open => "open",
        Status::WaitingOnRequester => "waiting on requester",
        Status::WaitingOnVendor => "waiting on vendor",
        Status::Resolved => "resolved",
        Status::Closed => "closed",
    }
}

/// The saved views of the queue: (query, label).
const VIEWS: [(&str, &str); 9] = [
    ("status=active", "Open tickets"),
    ("status=active&assignee=me", "My queue"),
    ("status=active&owner=provider", "Provider queue"),
    ("status=active&owner=internal", "Internal IT queue"),
    ("status=resolved,closed", "Done"),
    // tickets2: from the SLA events the sweeper records.
    ("status=active&sla=at_risk", "At risk"),
    ("status=active&sla=breached", "Breached"),
    // search (issue #5): the built-in views computed by tandem_app::ticket_views.
    (
        "status=active&view=provider_after_hours",
        "Provider queue, after hours",
    ),
    (
        "status=active&view=breaching_soon",
        "Breaching within 2 hours",
    ),
];

/// GET /tickets
pub async fn queue(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(raw): Query<HashMap<String, String>>,
) -> PageResult {
    let chrome = chrome(&st, &ctx, &headers, "tickets", None).await?;
    let q = TicketParams {
        client_id: raw.get("client_id").and_then(|c| c.parse().ok()),
        status: raw.get("status").cloned().or_else(|| Some("active".into())),
        owner: raw.get("owner").cloned(),
        assignee: raw.get("assignee").cloned(),
        priority: raw.get("priority").cloned(),
        q: raw.get("q").cloned(),
        // tickets2
        tag: raw.get("tag").cloned(),
        sla: raw.get("sla").cloned(),
        // Issue #5: the tickets of one endpoint.
        endpoint_id: raw.get("endpoint_id").and_then(|e| e.parse().ok()),
        view: raw.get("view").cloned(),
        format: None,
        cursor: None,
        limit: None,
    };
    let me = ctx.actor.principal.as_ref().map(|p| p.user_id);
    let filter = q.filter(me).map_err(|e| e.into_response())?;
    let view = q.builtin_view().map_err(|e| e.into_response())?;
    // search (issue #5): `q` searches the text; exports carry every match as CSV or JSON.
    let search = raw.get("q").map(String::as_str);
    if let Some(format @ ("csv" | "json-export")) = raw.get("format").map(String::as_str) {
        let all = crate::http::api_tickets::queue_all(&st, &ctx.actor, &filter, search, view)
            .await
            .map_err(fail)?;
        if let Some(file) = crate::http::api_tickets::export_file(Some(format), all) {
            return Ok(file);
        }
    }
    let offset = raw.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let page = Page::new(offset, 100);
    let crate::http::api_tickets::QueueSlice {
        items,
        has_more,
        capped,
    } = crate::http::api_tickets::queue_page(
        &st,
        &ctx.actor,
        &filter,
        search,
        view,
        page,
        Some(tandem_app::SEARCH_CANDIDATES),
    )
    .await
    .map_err(fail)?;
    let clients: HashMap<String, String> = chrome
        .switcher
        .iter()
        .map(|(id, name, _)| (id.clone(), name.clone()))
        .collect();
    let tz = chrome.time_zone.clone();
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let end_user = p.role == Role::EndUser;
    let current: String = {
        let mut parts = vec![format!(
            "status={}",
            raw.get("status").map_or("active", String::as_str)
        )];
        for k in ["assignee", "owner", "sla", "tag", "view", "endpoint_id"] {
            if let Some(v) = raw.get(k).filter(|v| !v.is_empty()) {
                parts.push(format!("{k}={v}"));
            }
        }
        parts.join("&")
    };
    // search (issue #5): pages and exports keep the words searched for.
    let with_q = match search.filter(|q| !q.trim().is_empty()) {
        Some(q) => format!(
            "{current}&{}",
            serde_urlencoded::to_string([("q", q)]).unwrap_or_default()
        ),
        None => current.clone(),
    };
    let views = VIEWS
        .iter()
        .filter(|(q, _)| {
            !end_user
                || !(q.contains("assignee")
                    || q.contains("owner")
                    || q.contains("sla")
                    || q.contains("view"))
        })
        .map(|(q, label)| (format!("/tickets?{q}"), *label, current == *q))
        .collect();
    // search (issue #5): the person's own saved views, beside the built-in ones.
    let saved: Vec<(String, String, String, bool)> = st
        .app
        .ticket_views(&ctx.actor)
        .await
        .map_err(fail)?
        .into_iter()
        .filter(|v| !v.builtin)
        .map(|v| {
            let active = v.query == with_q || format!("status=active&{}", v.query) == with_q;
            (v.id, v.name, format!("/tickets?{}", v.query), active)
        })
        .collect();
    let rows = items
        .iter()
        .map(|i| (&i.ticket, i.snippet.clone()))
        .map(|(t, snippet)| Row {
            id: t.id.to_string(),
            number: format!("#{}", t.number),
            subject: t.subject.clone(),
            client: clients
                .get(&t.client_id.to_string())
                .cloned()
                .unwrap_or_default(),
            owner: t.owner.label(),
            owner_class: owner_class(t.owner),
            priority: t.priority.as_str(),
            status: status_label(t.status),
            updated: t.updated_at.display_in(&tz),
            snippet,
        })
        .collect();
    let clear = chrome.clear_flash;
    Ok(render(
        &QueuePage {
            rows,
            views,
            f_q: raw.get("q").cloned().unwrap_or_default(),
            query: with_q.clone(),
            saved,
            can_open: authorize(&p, Action::TicketsCreate, Timestamp::now()).is_ok(),
            next_href: has_more.then(|| format!("/tickets?{with_q}&cursor={}", offset + 100)),
            capped: (capped == Some(true)).then_some(tandem_app::SEARCH_CANDIDATES),
            chrome,
        },
        clear,
    ))
}

#[derive(Template)]
#[template(path = "ticket_new.html")]
struct NewPage {
    chrome: Chrome,
    /// Whether the person picks the client (provider staff).
    pick_client: bool,
    /// (key, name)
    domains: Vec<(String, String)>,
    /// Endpoints the ticket can be about, by client: (client name, [(id, host name,
    /// selected)]). Empty for people who may not read endpoints.
    endpoints: Vec<EndpointGroup>,
    /// More endpoints exist than the list shows.
    endpoints_more: bool,
    /// The client of the endpoint the page was opened for (`?endpoint_id=`).
    preselect_client: Option<String>,
}

/// An endpoint the new-ticket form offers: (id, host name, selected).
type EndpointOption = (String, String, bool);
/// A client's endpoints on the new-ticket form: (client name, its endpoints).
type EndpointGroup = (String, Vec<EndpointOption>);

/// The most endpoints the new-ticket form lists.
const FORM_ENDPOINTS: u32 = 500;

/// GET /tickets/new (`?endpoint_id=` preselects that endpoint and its client)
pub async fn new_form(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let chrome = chrome(&st, &ctx, &headers, "tickets", None).await?;
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let domains = st
        .app
        .ticket_domains(&ctx.actor)
        .await
        .map_err(fail)?
        .into_iter()
        .map(|d| (d.key, d.name))
        .collect();
    // The endpoints it may be about, for those who may read them (others get no list).
    let wanted = q.get("endpoint_id").map(String::as_str).unwrap_or("");
    let mut endpoints: Vec<EndpointGroup> = Vec::new();
    let (mut endpoints_more, mut preselect_client) = (false, None);
    let listed = match st
        .app
        .list_endpoints(
            &ctx.actor,
            &tandem_domain::fleet::FleetFilter::default(),
            Page::new(0, FORM_ENDPOINTS),
        )
        .await
    {
        Ok(page) => Some(page),
        // End users may not read endpoints: the form has no list for them.
        Err(Error::Forbidden(_)) => None,
        Err(e) => return Err(fail(e)),
    };
    if let Some(page) = listed {
        endpoints_more = page.has_more;
        let name_of = |c: &str| {
            chrome
                .switcher
                .iter()
                .find(|s| s.0 == c)
                .map_or_else(|| "This company".to_string(), |s| s.1.clone())
        };
        let mut by_client: std::collections::BTreeMap<String, Vec<EndpointOption>> =
            std::collections::BTreeMap::new();
        for e in page.items {
            let id = e.id.to_string();
            let selected = id == wanted;
            if selected {
                preselect_client = Some(e.client_id.to_string());
            }
            by_client
                .entry(name_of(&e.client_id.to_string()))
                .or_default()
                .push((id, e.hostname, selected));
        }
        endpoints = by_client.into_iter().collect();
    }
    let clear = chrome.clear_flash;
    Ok(render(
        &NewPage {
            pick_client: p.tenant.client().is_none(),
            domains,
            endpoints,
            endpoints_more,
            preselect_client,
            chrome,
        },
        clear,
    ))
}

/// POST /tickets/new — with files when the form is multipart (the page's form is): the text
/// fields come first, the ticket is opened, then the files are streamed onto it.
pub async fn create(State(st): State<AppState>, ctx: Ctx, req: axum::extract::Request) -> Response {
    use crate::http::api_attachments as att;
    if att::is_multipart(req.headers()) {
        let b = match att::boundary(req.headers()) {
            Ok(b) => b,
            Err(p) => return crate::http::pages::error_page(p.status(), &p.detail),
        };
        let mut mp = att::form(b, req.into_body());
        let mut fields = Vec::new();
        let mut first_file = None;
        loop {
            match att::next_part(&mut mp).await {
                Ok(Some(f)) if f.file_name().is_some_and(|n| !n.is_empty()) => {
                    first_file = Some(f);
                    break;
                }
                Ok(Some(mut f)) => {
                    let name = f.name().unwrap_or("").to_string();
                    match att::part_text(&mut f).await {
                        Ok(v) if f.file_name().is_none() => fields.push((name, v)),
                        Ok(_) => {}
                        Err(e) => {
                            let p = e.problem();
                            return crate::http::pages::error_page(p.status(), &p.detail);
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let p = e.problem();
                    return crate::http::pages::error_page(p.status(), &p.detail);
                }
            }
        }
        let t = match st
            .app
            .create_ticket(&ctx.actor, new_ticket(&FormFields(fields)))
            .await
        {
            Ok(t) => t,
            Err(e) => return back_with(&st, "/tickets/new", e),
        };
        let back = format!("/tickets/{}", t.id);
        let opened = format!("Ticket #{} opened; {} owns it.", t.number, t.owner.label());
        if first_file.is_none() {
            return redirect_with(&back, Some(&opened), None, st.cfg.secure_cookies);
        }
        let stored = async {
            let mut up = st.app.begin_upload(&ctx.actor, t.id, "web").await?;
            let mut target = tandem_app::AttachTarget::default();
            att::receive_into(&mut up, &mut mp, first_file, &mut target).await?;
            Ok::<_, att::UploadError>(up.commit(target).await?)
        }
        .await;
        return match stored {
            Ok(files) => redirect_with(
                &back,
                Some(&format!("{opened} {} file(s) attached.", files.len())),
                None,
                st.cfg.secure_cookies,
            ),
            Err(e) => {
                let p = e.problem();
                redirect_with(
                    &back,
                    Some(&opened),
                    Some(&format!("The files were not attached: {}", p.detail)),
                    st.cfg.secure_cookies,
                )
            }
        };
    }
    let f = match axum::Form::<Vec<(String, String)>>::from_request(req, &()).await {
        Ok(axum::Form(f)) => FormFields(f),
        Err(_) => {
            return crate::http::pages::error_page(
                axum::http::StatusCode::BAD_REQUEST,
                "The form could not be read. Reload the page and try again.",
            )
        }
    };
    let new = new_ticket(&f);
    match st.app.create_ticket(&ctx.actor, new).await {
        Ok(t) => redirect_with(
            &format!("/tickets/{}", t.id),
            Some(&format!(
                "Ticket #{} opened; {} owns it.",
                t.number,
                t.owner.label()
            )),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => back_with(&st, "/tickets/new", e),
    }
}

fn new_ticket(f: &FormFields) -> NewTicket {
    let parse_or_none = |k: &str| f.get(k).filter(|s| !s.is_empty());
    NewTicket {
        client_id: parse_or_none("client_id").and_then(|c| c.parse().ok()),
        site_id: None,
        requester_id: None,
        subject: f.text("subject"),
        description: f.text("description"),
        domain: parse_or_none("domain").map(str::to_string),
        impact: parse_or_none("impact").and_then(|s| s.parse::<Impact>().ok()),
        urgency: parse_or_none("urgency").and_then(|s| s.parse::<Urgency>().ok()),
        // Unreadable ids are left out; the use case refuses endpoints of another client.
        endpoint_ids: f
            .all("endpoint_ids")
            .filter_map(|e| e.parse().ok())
            .collect(),
    }
}

/// One entry of the history, for the page.
pub(crate) struct EventRow {
    at: String,
    who: String,
    side: &'static str,
    kind: String,
    body: String,
    internal: bool,
    /// Files that came with it (issue #5).
    files: Vec<FileRow>,
}

/// One attached file on the ticket page (issue #5).
#[derive(Clone)]
pub(crate) struct FileRow {
    id: String,
    name: String,
    size: String,
    content_type: String,
    who: String,
    at: String,
    internal: bool,
    /// An image the browser may show (opened inline in a new page, never embedded).
    image: bool,
    event_id: Option<String>,
}

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    chrome: Chrome,
    t: Ticket,
    client: String,
    owner: &'static str,
    owner_class: &'static str,
    other_side: &'static str,
    other_label: &'static str,
    status: &'static str,
    events: Vec<EventRow>,
    /// (label, value, warn)
    sla: Vec<(&'static str, String, bool)>,
    it_side: bool,
    /// (status key, label) the ticket may move to.
    next_statuses: Vec<(&'static str, &'static str)>,
    created: String,
    /// tickets2: watchers, tags, links, merges.
    data: tandem_app::TicketData,
    /// tickets2: whether the caller watches it.
    watching: bool,
    /// tickets2: whether the caller may watch (everyone but end users).
    can_watch: bool,
    /// tickets2: people who could be made watchers: (user id, name).
    watcher_choices: Vec<(String, String)>,
    /// Attachments (issue #5): every file of the ticket the viewer may see.
    files: Vec<FileRow>,
    /// Whether the viewer may delete files.
    can_delete_files: bool,
    /// "up to 10 files of 25 MiB each".
    file_limits: String,
    /// Alerts that opened or updated it (issue #6): (id, title, state, severity, fired).
    alerts: Vec<(String, String, &'static str, &'static str, String)>,
    /// Who opened it: a person's name, or "Tandem monitoring" for a ticket Tandem opened.
    opened_by: String,
    /// Linked endpoints (issue #5): whether the box shows (those who may read the client's
    /// endpoints; never end users).
    show_endpoints: bool,
    /// Endpoints the caller could link: (endpoint id, host name).
    endpoint_choices: Vec<(String, String)>,
}

/// GET /tickets/{id}
pub async fn ticket(
    State(st): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let id: TicketId = id.parse().map_err(|_| fail(Error::NotFound("ticket")))?;
    let v = st.app.get_ticket(&ctx.actor, id).await.map_err(fail)?;
    let chrome = chrome(&st, &ctx, &headers, "tickets", Some(v.ticket.client_id)).await?;
    let tz = chrome.time_zone.clone();
    let p = ctx
        .actor
        .principal
        .clone()
        .ok_or_else(|| fail(Error::Unauthenticated))?;
    let it_side = authorize(&p, Action::TicketsWrite, Timestamp::now()).is_ok();
    let t = v.ticket;
    let mut sla = Vec::new();
    match &v.sla {
        Some(s) => {
            let due = |d: Option<Timestamp>, met: Option<Timestamp>| match (d, met) {
                (_, Some(m)) => format!("met at {}", m.display_in(&tz)),
                (Some(d), None) => format!("due {}", d.display_in(&tz)),
                (None, None) => "paused".to_string(),
            };
            sla.push((
                "First response",
                due(s.response_due, t.first_response_at),
                s.response_breached,
            ));
            sla.push((
                "Resolution",
                due(s.resolution_due, t.resolved_at),
                s.resolution_breached,
            ));
            sla.push((
                "Business time on the clock",
                format!(
                    "{} h {:02} min",
                    s.elapsed_minutes / 60,
                    s.elapsed_minutes % 60
                ),
                false,
            ));
        }
        None => sla.push((
            "SLA",
            "no scope agreement in force, so no business hours to count in".into(),
            false,
        )),
    }
    let files: Vec<FileRow> = v
        .attachments
        .iter()
        .map(|a| FileRow {
            id: a.id.to_string(),
            name: a.file_name.clone(),
            size: tandem_domain::attachments::human_size(a.size_bytes),
            content_type: a.content_type.clone(),
            who: a.uploaded_label.clone(),
            at: a.created_at.display_in(&tz),
            internal: !a.public,
            image: tandem_domain::attachments::Kind::inline_safe(&a.content_type),
            event_id: a.event_id.map(|e| e.to_string()),
        })
        .collect();
    let can_delete_files = authorize(&p, Action::AttachmentsDelete, Timestamp::now())
        .is_ok_and(|g| g.check_client(t.client_id).is_ok());
    let limits = st.app.attachment_limits();
    let file_limits = format!(
        "up to {} files of {} MiB each; images, PDF, Office, text, CSV, logs, JSON, .eml or zip",
        limits.max_files,
        limits.max_bytes.div_ceil(1024 * 1024)
    );
    let events = v
        .events
        .iter()
        .map(|e| EventRow {
            files: files
                .iter()
                .filter(|f| f.event_id.as_deref() == Some(e.id.to_string().as_str()))
                .cloned()
                .collect(),
            at: e.at.display_in(&tz),
            who: e.actor_label.clone(),
            side: e.actor_side.as_str(),
            kind: match e.kind.as_str() {
                "opened" => "opened the ticket".into(),
                "reply" => "replied".into(),
                "note" => "added an internal note".into(),
                "status" => "changed the status".into(),
                "handoff" => "handed it over".into(),
                "assigned" => "changed the assignee".into(),
                // tickets2
                "link" => "changed the related tickets".into(),
                "merged" => "merged a duplicate".into(),
                "sla_warning" => "SLA warning".into(),
                "sla_breach" => "SLA breach".into(),
                // attachments (issue #5)
                "attachments" => "attached files".into(),
                "attachment_deleted" => "deleted a file".into(),
                // alerts open and update tickets (issue #6)
                "alert" => "reported on its alert".into(),
                k => k.to_string(),
            },
            body: e.body.clone(),
            internal: !e.public,
        })
        .collect();
    let next_statuses = [
        Status::Open,
        Status::WaitingOnRequester,
        Status::WaitingOnVendor,
        Status::Resolved,
        Status::Closed,
    ]
    .into_iter()
    .filter(|s| t.status.may_become(*s))
    .map(|s| (s.as_str(), status_label(s)))
    .collect();
    let watching = v.data.watchers.iter().any(|w| w.user_id == p.user_id);
    let watcher_choices = if it_side {
        crate::http::pages_ticket_data::watcher_choices(&st, &ctx, &t, &v.data).await
    } else {
        Vec::new()
    };
    let show_endpoints = p.role != Role::EndUser
        && authorize(&p, Action::EndpointsRead, Timestamp::now())
            .is_ok_and(|g| g.check_client(t.client_id).is_ok());
    let endpoint_choices = if it_side && show_endpoints {
        crate::http::pages_ticket_data::endpoint_choices(&st, &ctx, &t, &v.data).await
    } else {
        Vec::new()
    };
    let alerts = v
        .alerts
        .iter()
        .map(|a| {
            (
                a.id.to_string(),
                a.title.clone(),
                a.state.as_str(),
                a.severity.as_str(),
                a.fired_at.display_in(&tz),
            )
        })
        .collect();
    // A ticket Tandem opened has no human creator; its "opened" entry names the part of
    // Tandem (monitoring, an integration).
    let opened_by = v
        .events
        .iter()
        .find(|e| e.kind == "opened")
        .map(|e| e.actor_label.clone())
        .or_else(|| t.created_by.is_none().then(|| "Tandem monitoring".into()))
        .unwrap_or_default();
    let clear = chrome.clear_flash;
    Ok(render(
        &TicketPage {
            alerts,
            opened_by,
            show_endpoints,
            endpoint_choices,
            data: v.data,
            watching,
            can_watch: !matches!(p.role, Role::EndUser | Role::Auditor),
            watcher_choices,
            files,
            can_delete_files,
            file_limits,
            client: chrome
                .switcher
                .iter()
                .find(|(id, _, _)| *id == t.client_id.to_string())
                .map(|(_, n, _)| n.clone())
                .unwrap_or_default(),
            owner: t.owner.label(),
            owner_class: owner_class(t.owner),
            other_side: t.owner.other().as_str(),
            other_label: t.owner.other().label(),
            status: status_label(t.status),
            created: t.created_at.display_in(&tz),
            events,
            sla,
            it_side,
            next_statuses,
            t,
            chrome,
        },
        clear,
    ))
}

/// What every ticket action does around its use case: find the ticket's id in the path, then
/// go back to the ticket with a notice, or with the use case's complaint.
async fn act<T, F>(
    st: &AppState,
    id: &str,
    action: impl FnOnce(TicketId) -> F,
    notice: impl FnOnce(&T) -> String,
) -> Response
where
    F: std::future::Future<Output = tandem_app::Result<T>>,
{
    let back = format!("/tickets/{id}");
    let Ok(id) = id.parse::<TicketId>() else {
        return fail(Error::NotFound("ticket"));
    };
    match action(id).await {
        Ok(v) => redirect_with(&back, Some(&notice(&v)), None, st.cfg.secure_cookies),
        Err(e) => back_with(st, &back, e),
    }
}

/// POST /tickets/{id}/reply — a reply or note, with files when the form is multipart (the
/// ticket page's form is; `csrf` must be its first field).
pub async fn reply(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> Response {
    use crate::http::api_attachments as att;
    if att::is_multipart(req.headers()) {
        let back = format!("/tickets/{id}");
        let Ok(tid) = id.parse::<TicketId>() else {
            return fail(Error::NotFound("ticket"));
        };
        let b = match att::boundary(req.headers()) {
            Ok(b) => b,
            Err(p) => return crate::http::pages::error_page(p.status(), &p.detail),
        };
        return match att::receive(&st, &ctx, tid, "web", b, req.into_body(), false).await {
            Ok(files) => {
                let n = files.len();
                let msg = match n {
                    0 => "Reply sent.".to_string(),
                    1 => "Sent, with 1 file.".to_string(),
                    n => format!("Sent, with {n} files."),
                };
                redirect_with(&back, Some(&msg), None, st.cfg.secure_cookies)
            }
            Err(att::UploadError::App(
                e @ (Error::Attachment(_) | Error::Invalid(_) | Error::Conflict(_)),
            )) => {
                let p = crate::http::problem::problem_for(&e);
                redirect_with(
                    &back,
                    None,
                    Some(&format!("Nothing was sent: {}", p.detail)),
                    st.cfg.secure_cookies,
                )
            }
            Err(att::UploadError::App(e)) => fail(e),
            Err(e) => {
                let p = e.problem();
                crate::http::pages::error_page(p.status(), &p.detail)
            }
        };
    }
    let f = match axum::Form::<Vec<(String, String)>>::from_request(req, &()).await {
        Ok(axum::Form(f)) => FormFields(f),
        Err(_) => {
            return crate::http::pages::error_page(
                axum::http::StatusCode::BAD_REQUEST,
                "The form could not be read. Reload the page and try again.",
            )
        }
    };
    let internal = f.get("internal") == Some("on");
    let body = f.text("body");
    act(
        &st,
        &id,
        |id| st.app.reply(&ctx.actor, id, &body, internal),
        |_| {
            if internal {
                "Note added."
            } else {
                "Reply sent."
            }
            .to_string()
        },
    )
    .await
}

/// Query of an attachment download page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AttachmentQuery {
    /// `inline`: show an image in the browser.
    #[serde(default)]
    pub disposition: Option<String>,
}

/// GET /attachments/{id} — downloads a file (images inline on request).
pub async fn attachment(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<AttachmentQuery>,
) -> Response {
    let Ok(id) = id.parse::<tandem_domain::AttachmentId>() else {
        return fail(Error::NotFound("attachment"));
    };
    let inline = q.disposition.as_deref() == Some("inline");
    match crate::http::api_attachments::download(&st, &ctx, id, inline).await {
        Ok(r) => r,
        Err(e) => fail(e),
    }
}

/// POST /attachments/{id}/delete — erases a file (provider admins; the client's IT admin).
pub async fn delete_attachment(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<tandem_domain::AttachmentId>() else {
        return fail(Error::NotFound("attachment"));
    };
    match st.app.delete_attachment(&ctx.actor, id).await {
        Ok(a) => redirect_with(
            &format!("/tickets/{}", a.ticket_id),
            Some(&format!("Deleted {}.", a.file_name)),
            None,
            st.cfg.secure_cookies,
        ),
        Err(e) => fail(e),
    }
}

/// POST /tickets/{id}/status
pub async fn status(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let to = FormFields(f).text("status").parse::<Status>();
    let (app, actor) = (&st.app, &ctx.actor);
    act(
        &st,
        &id,
        |id| async move {
            let to = to.map_err(|_| {
                Error::Invalid(vec![tandem_domain::validate::Invalid::new(
                    "status",
                    "choose a status",
                )])
            })?;
            app.set_ticket_status(actor, id, to).await
        },
        |_| "Status changed.".to_string(),
    )
    .await
}

/// POST /tickets/{id}/priority
pub async fn priority(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let impact = f.text("impact").parse::<Impact>();
    let urgency = f.text("urgency").parse::<Urgency>();
    let reason = f.text("reason");
    let (app, actor) = (&st.app, &ctx.actor);
    act(
        &st,
        &id,
        |id| async move {
            let mut bad = Vec::new();
            if impact.is_err() {
                bad.push(tandem_domain::validate::Invalid::new(
                    "impact",
                    "choose an impact",
                ));
            }
            if urgency.is_err() {
                bad.push(tandem_domain::validate::Invalid::new(
                    "urgency",
                    "choose an urgency",
                ));
            }
            let (Ok(impact), Ok(urgency)) = (impact, urgency) else {
                return Err(Error::Invalid(bad));
            };
            app.set_ticket_priority(actor, id, impact, urgency, Some(&reason))
                .await
        },
        |t| format!("Priority is {}.", t.priority.as_str()),
    )
    .await
}

/// POST /tickets/{id}/handoff
pub async fn handoff(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<Vec<(String, String)>>,
) -> Response {
    let f = FormFields(f);
    let to = match f.get("to") {
        Some("provider") => Party::Provider,
        _ => Party::Internal,
    };
    let reason = f.text("reason");
    act(
        &st,
        &id,
        |id| st.app.hand_off(&ctx.actor, id, to, &reason),
        |t: &Ticket| format!("Handed to {}.", t.owner.label()),
    )
    .await
}

/// POST /tickets/{id}/take — assign to oneself.
pub async fn take(State(st): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    let me = ctx.actor.principal.as_ref().map(|p| p.user_id);
    act(
        &st,
        &id,
        |id| st.app.assign_ticket(&ctx.actor, id, me),
        |_| "Assigned to you.".to_string(),
    )
    .await
}
