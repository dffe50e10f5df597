//! Saved views of the ticket queue (issue #5): per person, a name and the queue's filter as
//! a query string; and the reads the built-in views need (a queue limited to some clients,
//! the active tickets to check against their SLA).

use crate::query::{int, text, ts, Sql};
use crate::tickets::{ticket_row, TicketFilter};
use crate::{Page, Paged, Result};
use sqlx::AnyConnection;
use tandem_domain::authz::Grant;
use tandem_domain::helpdesk::Ticket;
use tandem_domain::{ClientId, Timestamp, UserId};

/// A person's saved view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedView {
    /// Its id (UUIDv7).
    pub id: String,
    /// Whose it is.
    pub user_id: UserId,
    /// The name shown on the queue's tabs.
    pub name: String,
    /// The queue's filter (`status=active&owner=provider`…).
    pub query: String,
    /// When it was saved.
    pub created_at: Timestamp,
}

/// Saves a view; a name the person already uses is a conflict.
pub async fn insert_view(c: &mut AnyConnection, v: &SavedView) -> Result<()> {
    Sql::new("INSERT INTO ticket_views (id, user_id, name, query, created_at) VALUES (")
        .text(v.id.clone())
        .push(", ")
        .text(v.user_id.to_string())
        .push(", ")
        .text(v.name.clone())
        .push(", ")
        .text(v.query.clone())
        .push(", ")
        .int(v.created_at.0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// A person's views, by name.
pub async fn list_views(c: &mut AnyConnection, user: UserId) -> Result<Vec<SavedView>> {
    Sql::new("SELECT * FROM ticket_views WHERE user_id = ")
        .text(user.to_string())
        .push(" ORDER BY name, id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok(SavedView {
                id: text(r, "id")?,
                user_id: crate::query::parsed(r, "user_id")?,
                name: text(r, "name")?,
                query: text(r, "query")?,
                created_at: ts(r, "created_at")?,
            })
        })
        .collect()
}

/// Deletes one of the person's views; the view, if there was one.
pub async fn delete_view(
    c: &mut AnyConnection,
    user: UserId,
    id: &str,
) -> Result<Option<SavedView>> {
    let found = list_views(c, user).await?.into_iter().find(|v| v.id == id);
    if found.is_some() {
        Sql::new("DELETE FROM ticket_views WHERE user_id = ")
            .text(user.to_string())
            .push(" AND id = ")
            .text(id.to_string())
            .execute(c)
            .await?;
    }
    Ok(found)
}

fn filtered(q: &mut Sql, grant: &Grant, f: &TicketFilter, clients: Option<&[ClientId]>) {
    q.scope("client_id", grant);
    if let Some(r) = f.requester {
        q.push(" AND requester_id = ").text(r.to_string());
    }
    if let Some(cid) = f.client {
        q.push(" AND client_id = ").text(cid.to_string());
    }
    if let Some(list) = clients {
        q.push(" AND client_id IN (");
        if list.is_empty() {
            q.push("NULL");
        }
        for (i, c) in list.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.text(c.to_string());
        }
        q.push(")");
    }
    if !f.statuses.is_empty() {
        q.push(" AND status IN (");
        for (i, s) in f.statuses.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.text(s.clone());
        }
        q.push(")");
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
    crate::tickets::push_linked_filters(q, f, "id", "status");
}

/// The queue limited to `clients` (besides the grant and the filter), most recently changed
/// first.
pub async fn list_in_clients(
    c: &mut AnyConnection,
    grant: &Grant,
    f: &TicketFilter,
    clients: &[ClientId],
    page: Page,
) -> Result<Paged<Ticket>> {
    let mut q = Sql::new("SELECT * FROM tickets WHERE ");
    filtered(&mut q, grant, f, Some(clients));
    q.push(" ORDER BY updated_at DESC, id DESC")
        .page(&page.probe());
    let items = q
        .fetch_all(c)
        .await?
        .iter()
        .map(ticket_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

/// Up to `limit` tickets matching the filter, most recently changed first, and how many
/// match in all (to say when the limit cut some off).
pub async fn first_matching(
    c: &mut AnyConnection,
    grant: &Grant,
    f: &TicketFilter,
    limit: u32,
) -> Result<(Vec<Ticket>, i64)> {
    let mut q = Sql::new("SELECT * FROM tickets WHERE ");
    filtered(&mut q, grant, f, None);
    q.push(" ORDER BY updated_at DESC, id DESC LIMIT ")
        .int(i64::from(limit));
    let items = q
        .fetch_all(c)
        .await?
        .iter()
        .map(ticket_row)
        .collect::<Result<Vec<_>>>()?;
    let mut n = Sql::new("SELECT COUNT(*) AS n FROM tickets WHERE ");
    filtered(&mut n, grant, f, None);
    let total = match n.fetch_optional(c).await? {
        Some(r) => int(&r, "n")?,
        None => 0,
    };
    Ok((items, total))
}
