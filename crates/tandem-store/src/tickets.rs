//! Tickets and their history. Every read is scoped by a grant; end users are narrowed to
//! the tickets they requested by the caller passing `requester`.

use crate::query::{int, opt_int, opt_parsed, opt_text, parsed, text, ts, Sql};
use crate::{Page, Paged, Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::Grant;
use tandem_domain::helpdesk::{Status, Ticket, TicketEvent};
use tandem_domain::scope::Party;
use tandem_domain::{ClientId, EndpointId, Side, TicketId, Timestamp, UserId};

/// What the ticket queue can be narrowed to.
#[derive(Clone, Debug, Default)]
pub struct TicketFilter {
    /// One client's tickets.
    pub client: Option<ClientId>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<String>,
    /// Only tickets the given side owns.
    pub owner: Option<Party>,
    /// Only tickets assigned to this person.
    pub assignee: Option<UserId>,
    /// Only tickets this person requested (always set for end users).
    pub requester: Option<UserId>,
    /// Only this priority (`P1`…).
    pub priority: Option<String>,
    /// Subject or description contains this.
    pub text: Option<String>,
    // tickets2: tag and SLA filters.
    /// Only tickets carrying this (normalised) tag.
    pub tag: Option<String>,
    /// Only tickets in this SLA situation.
    pub sla: Option<SlaFilter>,
    /// Only tickets linked to this endpoint.
    pub endpoint: Option<EndpointId>,
}

/// The SLA situations the queue can be narrowed to (from the recorded SLA events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlaFilter {
    /// A target was breached.
    Breached,
    /// Warned about and not (yet) breached, still being worked.
    AtRisk,
}

/// The next ticket number of a client (inside the write that inserts it; concurrent writers
/// take turns, see [`crate::query::lock_numbering`]).
pub async fn next_number(c: &mut AnyConnection, client: ClientId) -> Result<i64> {
    crate::query::lock_numbering(c, &format!("tickets:{client}")).await?;
    let r = Sql::new("SELECT COALESCE(MAX(number), 0) + 1 AS n FROM tickets WHERE client_id = ")
        .text(client.to_string())
        .fetch_optional(c)
        .await?;
    r.as_ref().map_or(Ok(1), |r| int(r, "n"))
}

fn clock_json(t: &Ticket) -> Result<String> {
    serde_json::to_string(&t.clock).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Stores a new ticket.
pub async fn insert_ticket(c: &mut AnyConnection, t: &Ticket) -> Result<()> {
    let mut q = Sql::new(
        "INSERT INTO tickets (id, client_id, number, site_id, requester_id, subject, description, \
         domain, owner_side, assignee_id, assignee_hint, impact, urgency, priority, status, \
         created_by, created_at, updated_at, first_response_at, resolved_at, closed_at, clock) VALUES (",
    );
    q.text(t.id.to_string())
        .push(", ")
        .text(t.client_id.to_string())
        .push(", ")
        .int(t.number)
        .push(", ")
        .opt_text(t.site_id.map(|s| s.to_string()))
        .push(", ")
        .opt_text(t.requester_id.map(|s| s.to_string()))
        .push(", ")
        .text(t.subject.clone())
        .push(", ")
        .text(t.description.clone())
        .push(", ")
        .text(t.domain.clone())
        .push(", ")
        .text(t.owner.as_str())
        .push(", ")
        .opt_text(t.assignee_id.map(|s| s.to_string()))
        .push(", ")
        .opt_text(t.assignee_hint.clone())
        .push(", ")
        .text(t.impact.as_str())
        .push(", ")
        .text(t.urgency.as_str())
        .push(", ")
        .text(t.priority.as_str())
        .push(", ")
        .text(t.status.as_str())
        .push(", ")
        .opt_text(t.created_by.map(|u| u.to_string()))
        .push(", ")
        .int(t.created_at.0)
        .push(", ")
        .int(t.updated_at.0)
        .push(", ")
        .opt_int(t.first_response_at.map(|x| x.0))
        .push(", ")
        .opt_int(t.resolved_at.map(|x| x.0))
        .push(", ")
        .opt_int(t.closed_at.map(|x| x.0))
        .push(", ")
        .text(clock_json(t)?)
        .push(")");
    q.execute(c).await?;
    // search (issue #5): the ticket's text becomes searchable in the same write.
    crate::search::index_ticket(c, t).await?;
    Ok(())
}

/// Writes a ticket's changeable fields back.
pub async fn update_ticket(c: &mut AnyConnection, t: &Ticket) -> Result<()> {
    Sql::new("UPDATE tickets SET owner_side = ")
        .text(t.owner.as_str())
        .push(", assignee_id = ")
        .opt_text(t.assignee_id.map(|s| s.to_string()))
        .push(", status = ")
        .text(t.status.as_str())
        .push(", impact = ")
        .text(t.impact.as_str())
        .push(", urgency = ")
        .text(t.urgency.as_str())
        .push(", priority = ")
        .text(t.priority.as_str())
        .push(", updated_at = ")
        .int(t.updated_at.0)
        .push(", first_response_at = ")
        .opt_int(t.first_response_at.map(|x| x.0))
        .push(", resolved_at = ")
        .opt_int(t.resolved_at.map(|x| x.0))
        .push(", closed_at = ")
        .opt_int(t.closed_at.map(|x| x.0))
        .push(", clock = ")
        .text(clock_json(t)?)
        .push(" WHERE id = ")
        .text(t.id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Appends to a ticket's history.
pub async fn insert_event(c: &mut AnyConnection, t: &Ticket, e: &TicketEvent) -> Result<()> {
    Sql::new("INSERT INTO ticket_events (id, ticket_id, client_id, at, actor_id, actor_label, actor_side, kind, body, public) VALUES (")
        .text(e.id.to_string())
        .push(", ")
        .text(t.id.to_string())
        .push(", ")
        .text(t.client_id.to_string())
        .push(", ")
        .int(e.at.0)
        .push(", ")
        .opt_text(e.actor_id.map(|a| a.to_string()))
        .push(", ")
        .text(e.actor_label.clone())
        .push(", ")
        .text(e.actor_side.as_str())
        .push(", ")
        .text(e.kind.clone())
        .push(", ")
        .text(e.body.clone())
        .push(", ")
        .int(i64::from(e.public))
        .push(")")
        .execute(c)
        .await?;
    // search (issue #5): replies and notes become searchable in the same write.
    crate::search::index_event(c, t, e).await?;
    Ok(())
}

fn narrowed(q: &mut Sql, grant: &Grant, requester: Option<UserId>) {
    q.scope("client_id", grant);
    if let Some(r) = requester {
        // tickets2: an end user also sees the tickets they were made a watcher of (a
        // duplicate of theirs merged into another ticket carries them over).
        q.push(" AND (requester_id = ")
            .text(r.to_string())
            .push(" OR id IN (SELECT ticket_id FROM ticket_watchers WHERE user_id = ")
            .text(r.to_string())
            .push("))");
    }
}

/// ` AND status IN (…)`. Known statuses are written as literals, in the order of
/// `Status::ALL`, so that the query for the active ones reads exactly as the predicate of the
/// partial index `tickets_active` (migration 0020): both planners can then prove the index
/// applies (PostgreSQL also for a subset; SQLite only for the same list), and a client's
/// active queue is read newest first from the index instead of sorted. The literals come from
/// the domain's own names, never from the caller; anything else is bound (and matches nothing).
fn statuses_in(q: &mut Sql, wanted: &[String]) {
    let names: Vec<&'static str> = Status::ALL
        .iter()
        .map(|s| s.as_str())
        .filter(|name| wanted.iter().any(|w| w == name))
        .collect();
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|w| !names.contains(&w.as_str()))
        .collect();
    q.push(" AND status IN (");
    let mut first = true;
    for name in names {
        if !first {
            q.push(", ");
        }
        first = false;
        q.push(&format!("'{name}'"));
    }
    for w in unknown {
        if !first {
            q.push(", ");
        }
        first = false;
        q.text(w.clone());
    }
    q.push(")");
}

/// The filters on what hangs off a ticket — its tags, its linked endpoints, its SLA events —
/// with the ticket's id in column `id` and its status in `status`: one meaning in the queue,
/// in a search and in the built-in views.
pub(crate) fn push_linked_filters(q: &mut Sql, f: &TicketFilter, id: &str, status: &str) {
    if let Some(tag) = &f.tag {
        q.push(&format!(
            " AND {id} IN (SELECT ticket_id FROM ticket_tags WHERE tag = "
        ))
        .text(tag.clone())
        .push(")");
    }
    if let Some(e) = f.endpoint {
        q.push(&format!(
            " AND {id} IN (SELECT ticket_id FROM ticket_endpoints WHERE endpoint_id = "
        ))
        .text(e.to_string())
        .push(")");
    }
    match f.sla {
        Some(SlaFilter::Breached) => {
            q.push(&format!(
                " AND {id} IN (SELECT ticket_id FROM sla_events WHERE kind = 'sla_breach')"
            ));
        }
        Some(SlaFilter::AtRisk) => {
            q.push(&format!(
                " AND {status} IN ('new', 'open', 'waiting_on_requester', 'waiting_on_vendor') \
                 AND {id} IN (SELECT ticket_id FROM sla_events WHERE kind = 'sla_warning') \
                 AND {id} NOT IN (SELECT ticket_id FROM sla_events WHERE kind = 'sla_breach')"
            ));
        }
        None => {}
    }
}

/// Tickets the grant reaches, most recently changed first.
pub async fn list_tickets(
    c: &mut crate::Read,
    grant: &Grant,
    f: &TicketFilter,
    page: Page,
) -> Result<Paged<Ticket>> {
    let mut q = Sql::new("SELECT ");
    q.push(&TICKET_COLUMN_NAMES.join(", "))
        .push(" FROM tickets WHERE ");
    narrowed(&mut q, grant, f.requester);
    if let Some(cid) = f.client {
        q.push(" AND client_id = ").text(cid.to_string());
    }
    if !f.statuses.is_empty() {
        statuses_in(&mut q, &f.statuses);
    }
    if let Some(o) = f.owner {
        q.push(" AND owner_side = ").text(o.as_str());
    }
    if let Some(a) = f.assignee {
        q.push(" AND assignee_id = ").text(a.to_string());
    }
    if let Some(p) = &f.priority {
        q.push(" AND priority = ").text(p.clone());
    }
    if let Some(t) = f.text.as_deref().filter(|t| !t.trim().is_empty()) {
        q.push(" AND (")
            .contains("subject", t.trim())
            .push(" OR ")
            .contains("description", t.trim())
            .push(")");
    }
    push_linked_filters(&mut q, f, "id", "status");
    q.push(" ORDER BY updated_at DESC, id DESC")
        .page(&page.probe());
    let items = q
        .fetch_rows(c, ticket_cols)
        .await?
        .into_iter()
        .map(ticket_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

/// One ticket, if the grant (and, for end users, `requester`) reaches it.
pub async fn get_ticket(
    c: &mut AnyConnection,
    grant: &Grant,
    requester: Option<UserId>,
    id: TicketId,
) -> Result<Option<Ticket>> {
    let mut q = Sql::new("SELECT * FROM tickets WHERE id = ");
    q.text(id.to_string()).push(" AND ");
    narrowed(&mut q, grant, requester);
    q.fetch_optional(c).await?.as_ref().map(ticket).transpose()
}

/// The tickets among `ids` that the grant (and, for end users, `requester`) reaches: for
/// lists that show each row's ticket, such as the alerts list.
pub async fn tickets_by_ids(
    c: &mut AnyConnection,
    grant: &Grant,
    requester: Option<UserId>,
    ids: &[TicketId],
) -> Result<Vec<Ticket>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Sql::new("SELECT * FROM tickets WHERE id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.text(id.to_string());
    }
    q.push(") AND ");
    narrowed(&mut q, grant, requester);
    q.fetch_all(c).await?.iter().map(ticket).collect()
}

/// A ticket's history, oldest first; internal notes only when `with_internal`.
pub async fn events(
    c: &mut AnyConnection,
    t: &Ticket,
    with_internal: bool,
) -> Result<Vec<TicketEvent>> {
    let mut q = Sql::new("SELECT * FROM ticket_events WHERE ticket_id = ");
    q.text(t.id.to_string());
    if !with_internal {
        q.push(" AND public = 1");
    }
    q.push(" ORDER BY at, id");
    q.fetch_all(c).await?.iter().map(event).collect()
}

fn party(s: &str) -> Result<Party> {
    match s {
        "internal" => Ok(Party::Internal),
        "provider" => Ok(Party::Provider),
        other => Err(StoreError::Corrupt(format!("side {other:?}"))),
    }
}

/// Decodes a `tickets` row (for the other ticket modules of this crate).
pub(crate) fn ticket_row(r: &AnyRow) -> Result<Ticket> {
    ticket(r)
}

/// The columns of `tickets`, in the order [`TicketCols`] reads them.
const TICKET_COLUMN_NAMES: [&str; 22] = [
    "id",
    "client_id",
    "number",
    "site_id",
    "requester_id",
    "subject",
    "description",
    "domain",
    "owner_side",
    "assignee_id",
    "assignee_hint",
    "impact",
    "urgency",
    "priority",
    "status",
    "created_by",
    "created_at",
    "updated_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
    "clock",
];

/// The values of [`TICKET_COLUMN_NAMES`], in order, as read (decoded by position).
#[derive(serde::Deserialize)]
struct TicketCols {
    id: String,
    client_id: String,
    number: i64,
    site_id: Option<String>,
    requester_id: Option<String>,
    subject: String,
    description: String,
    domain: String,
    owner_side: String,
    assignee_id: Option<String>,
    assignee_hint: Option<String>,
    impact: String,
    urgency: String,
    priority: String,
    status: String,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    first_response_at: Option<i64>,
    resolved_at: Option<i64>,
    closed_at: Option<i64>,
    clock: String,
}

fn ticket(r: &AnyRow) -> Result<Ticket> {
    ticket_from(ticket_cols(r)?)
}

/// A `tickets` row's values, read by column name.
fn ticket_cols(r: &AnyRow) -> Result<TicketCols> {
    Ok(TicketCols {
        id: text(r, "id")?,
        client_id: text(r, "client_id")?,
        number: int(r, "number")?,
        site_id: opt_text(r, "site_id")?,
        requester_id: opt_text(r, "requester_id")?,
        subject: text(r, "subject")?,
        description: text(r, "description")?,
        domain: text(r, "domain")?,
        owner_side: text(r, "owner_side")?,
        assignee_id: opt_text(r, "assignee_id")?,
        assignee_hint: opt_text(r, "assignee_hint")?,
        impact: text(r, "impact")?,
        urgency: text(r, "urgency")?,
        priority: text(r, "priority")?,
        status: text(r, "status")?,
        created_by: opt_text(r, "created_by")?,
        created_at: int(r, "created_at")?,
        updated_at: int(r, "updated_at")?,
        first_response_at: opt_int(r, "first_response_at")?,
        resolved_at: opt_int(r, "resolved_at")?,
        closed_at: opt_int(r, "closed_at")?,
        clock: text(r, "clock")?,
    })
}

/// A ticket from its column values.
fn ticket_from(c: TicketCols) -> Result<Ticket> {
    use crate::query::{parse_opt_value as opt_id, parse_value as id};
    let corrupt = |col: &str, e: String| StoreError::Corrupt(format!("{col}: {e}"));
    Ok(Ticket {
        id: id("id", &c.id)?,
        client_id: id("client_id", &c.client_id)?,
        number: c.number,
        site_id: opt_id("site_id", c.site_id.as_deref())?,
        requester_id: opt_id("requester_id", c.requester_id.as_deref())?,
        subject: c.subject,
        description: c.description,
        domain: c.domain,
        owner: party(&c.owner_side)?,
        assignee_id: opt_id("assignee_id", c.assignee_id.as_deref())?,
        assignee_hint: c.assignee_hint,
        impact: c.impact.parse().map_err(|e| corrupt("impact", e))?,
        urgency: c.urgency.parse().map_err(|e| corrupt("urgency", e))?,
        priority: c.priority.parse().map_err(|e| corrupt("priority", e))?,
        status: c.status.parse().map_err(|e| corrupt("status", e))?,
        created_by: opt_id("created_by", c.created_by.as_deref())?,
        created_at: Timestamp(c.created_at),
        updated_at: Timestamp(c.updated_at),
        first_response_at: c.first_response_at.map(Timestamp),
        resolved_at: c.resolved_at.map(Timestamp),
        closed_at: c.closed_at.map(Timestamp),
        clock: serde_json::from_str(&c.clock).map_err(|e| corrupt("clock", e.to_string()))?,
    })
}

fn event(r: &AnyRow) -> Result<TicketEvent> {
    Ok(TicketEvent {
        id: parsed(r, "id")?,
        at: ts(r, "at")?,
        actor_id: opt_parsed(r, "actor_id")?,
        actor_label: text(r, "actor_label")?,
        actor_side: match text(r, "actor_side")?.as_str() {
            "provider" => Side::Provider,
            "client" => Side::Client,
            "outside" => Side::Outside,
            "system" => Side::System,
            other => return Err(StoreError::Corrupt(format!("actor_side {other:?}"))),
        },
        kind: text(r, "kind")?,
        body: text(r, "body")?,
        public: opt_int(r, "public")?.unwrap_or(0) != 0,
    })
}
