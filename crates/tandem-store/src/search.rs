//! Full-text search over tickets (issue #5): one function, two SQL dialects. SQLite matches
//! with FTS5 (`ticket_fts`, ranked by bm25); PostgreSQL with weighted tsvectors and GIN
//! indexes (ranked by `ts_rank`). Both see the same text, kept by the write path in
//! `ticket_search`: subject, description, public replies and, in a column end users never
//! match, internal notes. The caller's words arrive as plain terms (letters and digits only,
//! see [`tandem_domain::search::terms`]), so nothing the user types is read as query syntax.

use crate::query::{text, Sql};
use crate::tickets::{ticket_row, TicketFilter};
use crate::{Page, Paged, Result};
use sqlx::AnyConnection;
use sqlx::Row;
use tandem_domain::authz::Grant;
use tandem_domain::helpdesk::{Ticket, TicketEvent};
use tandem_domain::search::snippet;

/// One ticket a search found, with how well it matched and where.
#[derive(Clone, Debug)]
pub struct SearchHit {
    /// The ticket.
    pub ticket: Ticket,
    /// Relevance, higher is better (comparable only within one search).
    pub score: f64,
    /// A short passage around the first matching word, from text the caller may see.
    pub snippet: String,
}

/// Indexes a ticket just opened (inside the write that inserts it).
pub async fn index_ticket(c: &mut AnyConnection, t: &Ticket) -> Result<()> {
    Sql::new("INSERT INTO ticket_search (ticket_id, subject, description, public_text, internal_text) VALUES (")
        .text(t.id.to_string())
        .push(", ")
        .text(t.subject.clone())
        .push(", ")
        .text(t.description.clone())
        .push(", '', '')")
        .execute(c)
        .await?;
    Ok(())
}

/// Adds a reply (public) or a note (internal) to a ticket's searchable text.
pub async fn index_event(c: &mut AnyConnection, t: &Ticket, e: &TicketEvent) -> Result<()> {
    let column = match (e.kind.as_str(), e.public) {
        ("reply", true) => "public_text",
        ("note", false) => "internal_text",
        _ => return Ok(()),
    };
    Sql::new(&format!("UPDATE ticket_search SET {column} = {column} || "))
        .text(format!("{}\n", e.body))
        .push(" WHERE ticket_id = ")
        .text(t.id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// The FTS5 match expression for plain terms: every term, each a quoted string; limited
/// to the public columns unless `with_internal`.
pub fn fts5_expression(terms: &[String], with_internal: bool) -> String {
    let quoted: Vec<String> = terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    let all = quoted.join(" ");
    if with_internal {
        all
    } else {
        format!("{{subject description public_text}} : ({all})")
    }
}

fn is_postgres(c: &AnyConnection) -> bool {
    c.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Tickets the grant reaches whose text holds every term, best match first, with the
/// queue's other filters applied. `with_internal` lets internal notes match (IT sides only).
pub async fn search_tickets(
    c: &mut AnyConnection,
    grant: &Grant,
    f: &TicketFilter,
    terms: &[String],
    with_internal: bool,
    page: Page,
) -> Result<Paged<SearchHit>> {
    if terms.is_empty() {
        return Ok(Paged {
            items: Vec::new(),
            has_more: false,
        });
    }
    let mut q;
    if is_postgres(c) {
        let doc = if with_internal {
            "doc_all"
        } else {
            "doc_public"
        };
        q = Sql::new(&format!(
            "SELECT t.*, s.public_text AS s_public, s.internal_text AS s_internal, \
             CAST(ts_rank(s.{doc}, plainto_tsquery('simple'::regconfig, "
        ));
        q.text(terms.join(" "));
        q.push(&format!(
            ")) AS DOUBLE PRECISION) AS s_score FROM ticket_search s JOIN tickets t ON t.id = s.ticket_id \
             WHERE s.{doc} @@ plainto_tsquery('simple'::regconfig, "
        ));
        q.text(terms.join(" ")).push(")");
    } else {
        let weights = if with_internal {
            "10.0, 4.0, 2.0, 1.0"
        } else {
            "10.0, 4.0, 2.0, 0.0"
        };
        // bm25 is lower for better matches; negated so that higher is better on both.
        q = Sql::new(&format!(
            "SELECT t.*, s.public_text AS s_public, s.internal_text AS s_internal, \
             -bm25(ticket_fts, {weights}) AS s_score FROM ticket_fts \
             JOIN ticket_search s ON s.doc = ticket_fts.rowid JOIN tickets t ON t.id = s.ticket_id \
             WHERE ticket_fts MATCH "
        ));
        q.text(fts5_expression(terms, with_internal));
    }
    q.push(" AND ");
    q.scope("t.client_id", grant);
    push_filters(&mut q, f);
    q.push(" ORDER BY s_score DESC, t.updated_at DESC, t.id DESC")
        .page(&page.probe());
    let rows = q.fetch_all(c).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let ticket = ticket_row(r)?;
        let score: f64 = r.try_get("s_score")?;
        let public = text(r, "s_public")?;
        let mut texts = vec![
            ticket.subject.as_str(),
            ticket.description.as_str(),
            public.as_str(),
        ];
        let internal;
        if with_internal {
            internal = text(r, "s_internal")?;
            texts.push(internal.as_str());
        }
        let snippet = snippet(&texts, terms, 160);
        items.push(SearchHit {
            ticket,
            score,
            snippet,
        });
    }
    Ok(Paged::from_probe(items, &page))
}

/// The queue's filters on `tickets t` (the same meaning as in `tickets::list_tickets`).
fn push_filters(q: &mut Sql, f: &TicketFilter) {
    if let Some(r) = f.requester {
        q.push(" AND t.requester_id = ").text(r.to_string());
    }
    if let Some(cid) = f.client {
        q.push(" AND t.client_id = ").text(cid.to_string());
    }
    if !f.statuses.is_empty() {
        q.push(" AND t.status IN (");
        for (i, s) in f.statuses.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.text(s.clone());
        }
        q.push(")");
    }
    if let Some(o) = f.owner {
        q.push(" AND t.owner_side = ").text(o.as_str());
    }
    if let Some(a) = f.assignee {
        q.push(" AND t.assignee_id = ").text(a.to_string());
    }
    if let Some(p) = &f.priority {
        q.push(" AND t.priority = ").text(p.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expression_quotes_every_term_and_limits_columns_for_end_users() {
        let terms = vec!["printer".to_string(), "near".to_string()];
        assert_eq!(fts5_expression(&terms, true), "\"printer\" \"near\"");
        assert_eq!(
            fts5_expression(&terms, false),
            "{subject description public_text} : (\"printer\" \"near\")"
        );
        assert_eq!(fts5_expression(&["a\"b".to_string()], true), "\"a\"\"b\"");
    }
}
