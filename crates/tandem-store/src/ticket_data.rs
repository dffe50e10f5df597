//! Ticket data beyond the core workflow (issue #5, part 2): watchers, tags, related links,
//! merges, SLA policies per client and priority, and the SLA warning/breach events.
//!
//! Functions that take a [`Ticket`] expect the caller to have read it through a grant
//! ([`crate::tickets::get_ticket`]); lists across tickets take the grant themselves.

use crate::query::{int, opt_int, opt_ts, parsed, text, ts, Sql};
use crate::{Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::Grant;
use tandem_domain::helpdesk::{Priority, Ticket};
use tandem_domain::ticket_data::{SlaClock, SlaEvent, SlaEventKind, SlaPolicy};
use tandem_domain::{ClientId, EndpointId, TicketId, Timestamp, UserId};

// ---- watchers --------------------------------------------------------------------------

/// The people watching a ticket, in the order they started.
pub async fn watchers(c: &mut AnyConnection, t: TicketId) -> Result<Vec<UserId>> {
    Sql::new("SELECT user_id FROM ticket_watchers WHERE ticket_id = ")
        .text(t.to_string())
        .push(" ORDER BY added_at, user_id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| parsed(r, "user_id"))
        .collect()
}

/// Starts `user` watching; false if they already were.
pub async fn add_watcher(
    c: &mut AnyConnection,
    t: &Ticket,
    user: UserId,
    at: Timestamp,
) -> Result<bool> {
    let n =
        Sql::new("INSERT INTO ticket_watchers (ticket_id, user_id, client_id, added_at) VALUES (")
            .text(t.id.to_string())
            .push(", ")
            .text(user.to_string())
            .push(", ")
            .text(t.client_id.to_string())
            .push(", ")
            .int(at.0)
            .push(") ON CONFLICT (ticket_id, user_id) DO NOTHING")
            .execute(c)
            .await?;
    Ok(n == 1)
}

/// Stops `user` watching; false if they were not.
pub async fn remove_watcher(c: &mut AnyConnection, t: TicketId, user: UserId) -> Result<bool> {
    let n = Sql::new("DELETE FROM ticket_watchers WHERE ticket_id = ")
        .text(t.to_string())
        .push(" AND user_id = ")
        .text(user.to_string())
        .execute(c)
        .await?;
    Ok(n == 1)
}

// ---- tags ------------------------------------------------------------------------------

/// A ticket's tags, alphabetically.
pub async fn tags(c: &mut AnyConnection, t: TicketId) -> Result<Vec<String>> {
    Sql::new("SELECT tag FROM ticket_tags WHERE ticket_id = ")
        .text(t.to_string())
        .push(" ORDER BY tag")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| text(r, "tag"))
        .collect()
}

/// Adds a (normalised) tag; false if it was there.
pub async fn add_tag(c: &mut AnyConnection, t: &Ticket, tag: &str) -> Result<bool> {
    let n = Sql::new("INSERT INTO ticket_tags (ticket_id, tag, client_id) VALUES (")
        .text(t.id.to_string())
        .push(", ")
        .text(tag)
        .push(", ")
        .text(t.client_id.to_string())
        .push(") ON CONFLICT (ticket_id, tag) DO NOTHING")
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// Removes a tag; false if it was not there.
pub async fn remove_tag(c: &mut AnyConnection, t: TicketId, tag: &str) -> Result<bool> {
    let n = Sql::new("DELETE FROM ticket_tags WHERE ticket_id = ")
        .text(t.to_string())
        .push(" AND tag = ")
        .text(tag)
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// The tags in use among the tickets a grant reaches, with how many tickets carry each.
pub async fn tags_in_use(c: &mut AnyConnection, grant: &Grant) -> Result<Vec<(String, i64)>> {
    let mut q = Sql::new("SELECT tag, COUNT(*) AS n FROM ticket_tags WHERE ");
    q.scope("client_id", grant)
        .push(" GROUP BY tag ORDER BY tag LIMIT 500");
    q.fetch_all(c)
        .await?
        .iter()
        .map(|r| Ok((text(r, "tag")?, int(r, "n")?)))
        .collect()
}

// ---- links and merges ------------------------------------------------------------------

/// The tickets linked to this one (either direction), oldest link first.
pub async fn links(c: &mut AnyConnection, t: TicketId) -> Result<Vec<TicketId>> {
    Sql::new("SELECT other_id FROM ticket_links WHERE ticket_id = ")
        .text(t.to_string())
        .push(" ORDER BY created_at, other_id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| parsed(r, "other_id"))
        .collect()
}

/// Links two tickets of one client (both directions); false if they already were.
pub async fn add_link(
    c: &mut AnyConnection,
    a: &Ticket,
    b: &Ticket,
    at: Timestamp,
) -> Result<bool> {
    let mut added = false;
    for (x, y) in [(a, b), (b, a)] {
        let n = Sql::new(
            "INSERT INTO ticket_links (ticket_id, other_id, client_id, created_at) VALUES (",
        )
        .text(x.id.to_string())
        .push(", ")
        .text(y.id.to_string())
        .push(", ")
        .text(x.client_id.to_string())
        .push(", ")
        .int(at.0)
        .push(") ON CONFLICT (ticket_id, other_id) DO NOTHING")
        .execute(c)
        .await?;
        added |= n == 1;
    }
    Ok(added)
}

/// Unlinks two tickets (both directions); false if they were not linked.
pub async fn remove_link(c: &mut AnyConnection, a: TicketId, b: TicketId) -> Result<bool> {
    let n = Sql::new("DELETE FROM ticket_links WHERE (ticket_id = ")
        .text(a.to_string())
        .push(" AND other_id = ")
        .text(b.to_string())
        .push(") OR (ticket_id = ")
        .text(b.to_string())
        .push(" AND other_id = ")
        .text(a.to_string())
        .push(")")
        .execute(c)
        .await?;
    Ok(n > 0)
}

/// The ticket this one was merged into, if any.
pub async fn merged_into(c: &mut AnyConnection, t: TicketId) -> Result<Option<TicketId>> {
    Sql::new("SELECT target_id FROM ticket_merges WHERE source_id = ")
        .text(t.to_string())
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(|r| parsed(r, "target_id"))
        .transpose()
}

/// The tickets merged into this one, in merge order.
pub async fn merged_from(c: &mut AnyConnection, t: TicketId) -> Result<Vec<TicketId>> {
    Sql::new("SELECT source_id FROM ticket_merges WHERE target_id = ")
        .text(t.to_string())
        .push(" ORDER BY merged_at, source_id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| parsed(r, "source_id"))
        .collect()
}

/// Records a merge. The primary key on the source refuses a second merge of it, even one
/// racing this one from another server.
pub async fn insert_merge(
    c: &mut AnyConnection,
    source: &Ticket,
    target: &Ticket,
    at: Timestamp,
) -> Result<bool> {
    let n =
        Sql::new("INSERT INTO ticket_merges (source_id, target_id, client_id, merged_at) VALUES (")
            .text(source.id.to_string())
            .push(", ")
            .text(target.id.to_string())
            .push(", ")
            .text(source.client_id.to_string())
            .push(", ")
            .int(at.0)
            .push(") ON CONFLICT (source_id) DO NOTHING")
            .execute(c)
            .await?;
    Ok(n == 1)
}

// ---- linked endpoints ------------------------------------------------------------------

/// An endpoint linked to a ticket, as the ticket shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedEndpoint {
    /// The endpoint.
    pub id: EndpointId,
    /// Its host name.
    pub hostname: String,
    /// When the server last heard from it.
    pub last_seen_at: Option<Timestamp>,
    /// Whether it was retired since it was linked.
    pub retired: bool,
}

/// The endpoint `id` if it belongs to `client`, with its host name and whether it was
/// retired. The caller has authorized `client` (through the ticket it read with a grant).
pub async fn endpoint_of_client(
    c: &mut AnyConnection,
    client: ClientId,
    id: EndpointId,
) -> Result<Option<(String, bool)>> {
    match Sql::new("SELECT hostname, retired_at FROM endpoints WHERE id = ")
        .text(id.to_string())
        .push(" AND client_id = ")
        .text(client.to_string())
        .fetch_optional(c)
        .await?
    {
        Some(r) => Ok(Some((
            text(&r, "hostname")?,
            opt_int(&r, "retired_at")?.is_some(),
        ))),
        None => Ok(None),
    }
}

/// The endpoints linked to a ticket, by host name.
pub async fn ticket_endpoints(c: &mut AnyConnection, t: &Ticket) -> Result<Vec<LinkedEndpoint>> {
    Sql::new(
        "SELECT e.id, e.hostname, e.last_seen_at, e.retired_at FROM ticket_endpoints te \
         JOIN endpoints e ON e.id = te.endpoint_id WHERE te.ticket_id = ",
    )
    .text(t.id.to_string())
    .push(" AND e.client_id = ")
    .text(t.client_id.to_string())
    .push(" ORDER BY e.hostname, e.id")
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| {
        Ok(LinkedEndpoint {
            id: parsed(r, "id")?,
            hostname: text(r, "hostname")?,
            last_seen_at: opt_ts(r, "last_seen_at")?,
            retired: opt_int(r, "retired_at")?.is_some(),
        })
    })
    .collect()
}

/// Links an endpoint (of the ticket's client, checked by the caller) to a ticket; false if
/// it already was.
pub async fn add_ticket_endpoint(
    c: &mut AnyConnection,
    t: &Ticket,
    endpoint: EndpointId,
    by: Option<UserId>,
    at: Timestamp,
) -> Result<bool> {
    let n = Sql::new(
        "INSERT INTO ticket_endpoints (ticket_id, endpoint_id, client_id, linked_at, linked_by) VALUES (",
    )
    .text(t.id.to_string())
    .push(", ")
    .text(endpoint.to_string())
    .push(", ")
    .text(t.client_id.to_string())
    .push(", ")
    .int(at.0)
    .push(", ")
    .opt_text(by.map(|u| u.to_string()))
    .push(") ON CONFLICT (ticket_id, endpoint_id) DO NOTHING")
    .execute(c)
    .await?;
    Ok(n == 1)
}

/// Unlinks an endpoint from a ticket; false if it was not linked.
pub async fn remove_ticket_endpoint(
    c: &mut AnyConnection,
    t: TicketId,
    endpoint: EndpointId,
) -> Result<bool> {
    let n = Sql::new("DELETE FROM ticket_endpoints WHERE ticket_id = ")
        .text(t.to_string())
        .push(" AND endpoint_id = ")
        .text(endpoint.to_string())
        .execute(c)
        .await?;
    Ok(n == 1)
}

// ---- SLA policies ----------------------------------------------------------------------

/// A client's own policies (priorities without one use the defaults), P1 first.
pub async fn sla_policies(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
) -> Result<Vec<SlaPolicy>> {
    let mut q = Sql::new("SELECT * FROM sla_policies WHERE client_id = ");
    q.text(client.to_string()).push(" AND ");
    q.scope("client_id", grant).push(" ORDER BY priority");
    q.fetch_all(c).await?.iter().map(policy).collect()
}

/// Sets a client's policy for one priority.
pub async fn upsert_sla_policy(
    c: &mut AnyConnection,
    client: ClientId,
    p: &SlaPolicy,
    by: Option<UserId>,
    at: Timestamp,
) -> Result<()> {
    Sql::new("INSERT INTO sla_policies (client_id, priority, response_minutes, resolution_minutes, warn_percent, updated_at, updated_by) VALUES (")
        .text(client.to_string())
        .push(", ")
        .text(p.priority.as_str())
        .push(", ")
        .int(p.response_minutes)
        .push(", ")
        .int(p.resolution_minutes)
        .push(", ")
        .int(p.warn_percent)
        .push(", ")
        .int(at.0)
        .push(", ")
        .opt_text(by.map(|u| u.to_string()))
        .push(") ON CONFLICT (client_id, priority) DO UPDATE SET response_minutes = excluded.response_minutes, \
               resolution_minutes = excluded.resolution_minutes, warn_percent = excluded.warn_percent, \
               updated_at = excluded.updated_at, updated_by = excluded.updated_by")
        .execute(c)
        .await?;
    Ok(())
}

/// Drops a client's policy for one priority (the default applies again); false if none.
pub async fn delete_sla_policy(
    c: &mut AnyConnection,
    client: ClientId,
    priority: Priority,
) -> Result<bool> {
    let n = Sql::new("DELETE FROM sla_policies WHERE client_id = ")
        .text(client.to_string())
        .push(" AND priority = ")
        .text(priority.as_str())
        .execute(c)
        .await?;
    Ok(n == 1)
}

fn policy(r: &AnyRow) -> Result<SlaPolicy> {
    Ok(SlaPolicy {
        priority: parsed(r, "priority")?,
        response_minutes: int(r, "response_minutes")?,
        resolution_minutes: int(r, "resolution_minutes")?,
        warn_percent: int(r, "warn_percent")?,
    })
}

// ---- SLA events ------------------------------------------------------------------------

/// Tickets the sweeper should look at, in id order after `after`: every ticket still being
/// worked, and those changed since `changed_since` (a target can be missed just before
/// resolution), except those whose two targets are both already recorded as breached.
pub async fn sweep_candidates(
    c: &mut AnyConnection,
    changed_since: Timestamp,
    after: Option<TicketId>,
    limit: u32,
) -> Result<Vec<Ticket>> {
    let mut q = Sql::new(
        "SELECT * FROM tickets WHERE (status IN ('new', 'open', 'waiting_on_requester', 'waiting_on_vendor') OR updated_at >= ",
    );
    q.int(changed_since.0).push(
        ") AND (SELECT COUNT(*) FROM sla_events e WHERE e.ticket_id = tickets.id AND e.kind = 'sla_breach') < 2",
    );
    if let Some(a) = after {
        q.push(" AND id > ").text(a.to_string());
    }
    q.push(" ORDER BY id LIMIT ").int(i64::from(limit));
    q.fetch_all(c)
        .await?
        .iter()
        .map(crate::tickets::ticket_row)
        .collect()
}

/// Every client's policies, for the sweeper (Tandem's own read).
pub async fn all_sla_policies(c: &mut AnyConnection) -> Result<Vec<(ClientId, SlaPolicy)>> {
    Sql::new("SELECT * FROM sla_policies")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| Ok((parsed(r, "client_id")?, policy(r)?)))
        .collect()
}

/// What is already recorded for a ticket.
pub async fn recorded(c: &mut AnyConnection, t: TicketId) -> Result<Vec<(SlaClock, SlaEventKind)>> {
    Sql::new("SELECT clock, kind FROM sla_events WHERE ticket_id = ")
        .text(t.to_string())
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| Ok((parsed(r, "clock")?, parsed(r, "kind")?)))
        .collect()
}

/// Claims one event for a ticket inside the caller's write. Returns its sequence number, or
/// `None` when it was already claimed (by this server or another). The sequence counter is
/// a single row updated in the same transaction, so numbers are handed out in commit order.
pub async fn claim_sla_event(
    c: &mut AnyConnection,
    t: &Ticket,
    clock: SlaClock,
    kind: SlaEventKind,
    at: Timestamp,
) -> Result<Option<i64>> {
    let n =
        Sql::new("INSERT INTO sla_events (ticket_id, clock, kind, client_id, at, seq) VALUES (")
            .text(t.id.to_string())
            .push(", ")
            .text(clock.as_str())
            .push(", ")
            .text(kind.as_str())
            .push(", ")
            .text(t.client_id.to_string())
            .push(", ")
            .int(at.0)
            .push(", 0) ON CONFLICT (ticket_id, clock, kind) DO NOTHING")
            .execute(c)
            .await?;
    if n != 1 {
        return Ok(None);
    }
    let row = Sql::new("UPDATE sla_event_seq SET n = n + 1 WHERE id = 1 RETURNING n")
        .fetch_optional(c)
        .await?
        .ok_or_else(|| StoreError::Corrupt("sla_event_seq has no row".into()))?;
    let seq = int(&row, "n")?;
    Sql::new("UPDATE sla_events SET seq = ")
        .int(seq)
        .push(" WHERE ticket_id = ")
        .text(t.id.to_string())
        .push(" AND clock = ")
        .text(clock.as_str())
        .push(" AND kind = ")
        .text(kind.as_str())
        .execute(c)
        .await?;
    Ok(Some(seq))
}

/// SLA events the grant reaches with a sequence number above `after`, oldest first.
pub async fn sla_events_since(
    c: &mut AnyConnection,
    grant: &Grant,
    after: i64,
    limit: u32,
) -> Result<Vec<SlaEvent>> {
    let mut q = Sql::new("SELECT * FROM sla_events WHERE seq > ");
    q.int(after).push(" AND ");
    q.scope("client_id", grant)
        .push(" ORDER BY seq LIMIT ")
        .int(i64::from(limit.clamp(1, 1000)));
    q.fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok(SlaEvent {
                seq: int(r, "seq")?,
                ticket_id: parsed(r, "ticket_id")?,
                client_id: parsed(r, "client_id")?,
                clock: parsed(r, "clock")?,
                kind: parsed(r, "kind")?,
                at: ts(r, "at")?,
            })
        })
        .collect()
}

/// A client's ticket by its number, if the grant (and, for end users, `requester`) reaches it.
pub async fn ticket_by_number(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
    number: i64,
) -> Result<Option<Ticket>> {
    let mut q = Sql::new("SELECT * FROM tickets WHERE client_id = ");
    q.text(client.to_string())
        .push(" AND number = ")
        .int(number)
        .push(" AND ");
    q.scope("client_id", grant);
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map(crate::tickets::ticket_row)
        .transpose()
}

/// Demo seeding only: moves a just-opened ticket's history `seconds` into the past (its
/// opening, its clock segments as given in `t`, and its events), so the demo story can
/// contain a ticket opened days ago. The caller audits it.
pub async fn demo_shift_back(c: &mut AnyConnection, t: &Ticket, seconds: i64) -> Result<()> {
    let d = seconds * Timestamp::SECOND;
    crate::tickets::update_ticket(c, t).await?;
    Sql::new("UPDATE tickets SET created_at = created_at - ")
        .int(d)
        .push(" WHERE id = ")
        .text(t.id.to_string())
        .execute(c)
        .await?;
    Sql::new("UPDATE ticket_events SET at = at - ")
        .int(d)
        .push(" WHERE ticket_id = ")
        .text(t.id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// A client's tickets opened in `[from, to)`, if the grant reaches the client (reports),
/// except those that came from a CSV import ([`imported_opened_between`] counts them).
pub async fn tickets_opened_between(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Ticket>> {
    let mut q = Sql::new("SELECT * FROM tickets WHERE ");
    opened_between(&mut q, grant, client, from, to, false).push(" ORDER BY created_at, id");
    q.fetch_all(c)
        .await?
        .iter()
        .map(crate::tickets::ticket_row)
        .collect()
}

/// How many of a client's tickets opened in `[from, to)` came from a CSV import (issue #5):
/// they were opened under another system, so the SLA report leaves them out and says so.
pub async fn imported_opened_between(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
    from: Timestamp,
    to: Timestamp,
) -> Result<i64> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM tickets WHERE ");
    opened_between(&mut q, grant, client, from, to, true);
    match q.fetch_optional(c).await? {
        Some(r) => crate::query::int(&r, "n"),
        None => Ok(0),
    }
}

/// The condition "a ticket of `client` opened in `[from, to)` that the grant reaches, and
/// came from a CSV import (`imported`) or not".
fn opened_between<'q>(
    q: &'q mut Sql,
    grant: &Grant,
    client: ClientId,
    from: Timestamp,
    to: Timestamp,
    imported: bool,
) -> &'q mut Sql {
    q.push("client_id = ")
        .text(client.to_string())
        .push(" AND created_at >= ")
        .int(from.0)
        .push(" AND created_at < ")
        .int(to.0)
        .push(" AND ");
    q.scope("client_id", grant)
        .push(if imported {
            " AND id IN"
        } else {
            " AND id NOT IN"
        })
        .push(" (SELECT ticket_id FROM ticket_import_keys WHERE client_id = ")
        .text(client.to_string())
        .push(")")
}

/// A client's tickets with a handoff in `[from, to)`, if the grant reaches the client.
pub async fn tickets_handed_off_between(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Ticket>> {
    let mut q = Sql::new("SELECT * FROM tickets WHERE client_id = ");
    q.text(client.to_string())
        .push(" AND id IN (SELECT ticket_id FROM ticket_events WHERE kind = 'handoff' AND at >= ")
        .int(from.0)
        .push(" AND at < ")
        .int(to.0)
        .push(") AND ");
    q.scope("client_id", grant).push(" ORDER BY created_at, id");
    q.fetch_all(c)
        .await?
        .iter()
        .map(crate::tickets::ticket_row)
        .collect()
}
