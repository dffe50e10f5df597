//! Full-text search over tickets (issue #5): one function, two SQL dialects. SQLite matches
//! with FTS5 (`ticket_fts`, ranked by bm25); PostgreSQL with weighted tsvectors and GIN
//! indexes (ranked by `ts_rank`). Both see the same text, kept by the write path in
//! `ticket_search`: subject, description, public replies and, in a column end users never
//! match, internal notes. The caller's words arrive as plain terms (letters and digits only,
//! see [`tandem_domain::search::terms`]), so nothing the user types is read as query syntax.
//!
//! **Bounded ranking.** A common word is in thousands of tickets (5 % of a million is 50,000);
//! ranking every match costs time in proportion to the matches. So a search finds the
//! [`CANDIDATES`] most recently opened tickets that match and that the caller may see (with
//! the queue's filters applied), ranks those, and says so: [`SearchPage::capped`] is true when
//! more tickets matched than were ranked. The answer is then "the best of the newest
//! [`CANDIDATES`] matches", never a ticket the caller may not see. Finding the newest matches
//! is cheap on both backends: FTS5 walks a match in descending rowid order (`doc` grows with
//! each ticket indexed); PostgreSQL reads the GIN index's matches from narrow heap rows and
//! only the candidates' tsvectors are read for `ts_rank`. An export asks for every match
//! (`candidates: None`), ranked as a whole.
//!
//! **The tenant inside the index** (migration 0019). `ticket_search` holds each ticket's client
//! and requester, and the SQL tenant filter is on those columns (no join to `tickets` unless a
//! queue filter needs one). On SQLite the FTS5 document also holds the words `c<client>` and
//! `r<requester>` (ids in hex) in a fifth column, `scope_words`; a search ANDs the caller's
//! words for it ([`fts5_scope`]) into the expression, so FTS5 intersects the lists and a
//! client's newest matches are found without walking the other clients'. The caller's terms are
//! always limited to the text columns, so typing such a word matches nothing more, and the SQL
//! tenant filter applies regardless: the words can only narrow a search, never widen it. On
//! PostgreSQL the GIN indexes hold `client_id` (btree_gin) for the same purpose.

use crate::query::{is_postgres, text, Sql};
use crate::tickets::{ticket_row, TicketFilter};
use crate::{Page, Paged, Result};
use sqlx::AnyConnection;
use sqlx::Row;
use std::collections::HashMap;
use tandem_domain::authz::{ClientScope, Grant};
use tandem_domain::helpdesk::{Ticket, TicketEvent};
use tandem_domain::search::snippet;

/// How many of the most recently opened matches an interactive search ranks.
pub const CANDIDATES: u32 = 1_000;

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

/// A page of search hits, and whether the ranking was bounded.
#[derive(Clone, Debug)]
pub struct SearchPage {
    /// The hits, best first.
    pub hits: Paged<SearchHit>,
    /// More tickets matched than were ranked: the hits are the best of the most recently
    /// opened `candidates` matches the caller may see, not of all of them.
    pub capped: bool,
}

/// The word for a client or a requester in `scope_words` (SQLite): the letter and the id's
/// hex digits, which FTS5's tokenizer keeps as one token.
fn scope_word(kind: char, id: &str) -> String {
    format!("{kind}{}", id.replace('-', ""))
}

/// The `scope_words` text of a ticket.
fn scope_words(t: &Ticket) -> String {
    let mut s = scope_word('c', &t.client_id.to_string());
    if let Some(r) = t.requester_id {
        s.push(' ');
        s.push_str(&scope_word('r', &r.to_string()));
    }
    s
}

/// Indexes a ticket just opened (inside the write that inserts it).
pub async fn index_ticket(c: &mut AnyConnection, t: &Ticket) -> Result<()> {
    let postgres = is_postgres(c);
    let mut q = Sql::new(if postgres {
        "INSERT INTO ticket_search (ticket_id, client_id, requester_id, subject, description, public_text, internal_text) VALUES ("
    } else {
        "INSERT INTO ticket_search (ticket_id, client_id, requester_id, subject, description, public_text, internal_text, scope_words) VALUES ("
    });
    q.text(t.id.to_string())
        .push(", ")
        .text(t.client_id.to_string())
        .push(", ")
        .opt_text(t.requester_id.map(|r| r.to_string()))
        .push(", ")
        .text(t.subject.clone())
        .push(", ")
        .text(t.description.clone())
        .push(", '', ''");
    if !postgres {
        q.push(", ").text(scope_words(t));
    }
    q.push(")").execute(c).await?;
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

/// The FTS5 match expression for plain terms: every term, each a quoted string, limited to
/// the public text columns, or to all four text columns `with_internal` (never to
/// `scope_words`); then, if given, the caller's scope words ([`fts5_scope`]).
pub fn fts5_expression(terms: &[String], with_internal: bool, scope: Option<&str>) -> String {
    let quoted: Vec<String> = terms.iter().map(|t| quote(t)).collect();
    let all = quoted.join(" ");
    let columns = if with_internal {
        "{subject description public_text internal_text}"
    } else {
        "{subject description public_text}"
    };
    match scope {
        Some(scope) => format!("{columns} : ({all}) AND {scope}"),
        None => format!("{columns} : ({all})"),
    }
}

fn quote(t: &str) -> String {
    format!("\"{}\"", t.replace('"', "\"\""))
}

/// The part of an FTS5 expression that keeps a search inside what the caller may see, from
/// the grant and the filter: the client (one of the grant's clients, or the filter's), and
/// the requester (end users, or the filter's). `None` when the grant reaches every client and
/// the filter names none. Only a narrowing: the SQL tenant filter applies as well.
pub fn fts5_scope(grant: &Grant, f: &TicketFilter) -> Option<String> {
    let mut parts = Vec::new();
    let clients: Vec<String> = match (f.client, grant.clients()) {
        (Some(c), _) => vec![c.to_string()],
        (None, ClientScope::Only(allow)) if !allow.is_empty() => {
            allow.iter().map(|c| c.to_string()).collect()
        }
        _ => Vec::new(),
    };
    if !clients.is_empty() {
        let words: Vec<String> = clients.iter().map(|c| quote(&scope_word('c', c))).collect();
        parts.push(format!("scope_words : ({})", words.join(" OR ")));
    }
    if let Some(r) = f.requester {
        parts.push(format!(
            "scope_words : ({})",
            quote(&scope_word('r', &r.to_string()))
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// Tickets the grant reaches whose text holds every term, best match first, with the
/// queue's other filters applied. `with_internal` lets internal notes match (IT sides only).
/// With `candidates`, only that many of the most recently opened matches are ranked (see the
/// module's documentation); with `None`, every match is.
pub async fn search_tickets(
    c: &mut AnyConnection,
    grant: &Grant,
    f: &TicketFilter,
    terms: &[String],
    with_internal: bool,
    page: Page,
    candidates: Option<u32>,
) -> Result<SearchPage> {
    if terms.is_empty() {
        return Ok(SearchPage {
            hits: Paged {
                items: Vec::new(),
                has_more: false,
            },
            capped: false,
        });
    }
    let postgres = is_postgres(c);
    // 1. The ranked documents of this page: (doc, score), best first.
    let (ranked, has_more, capped) = match candidates {
        Some(k) => {
            let mut found = if postgres {
                newest_postgres(c, grant, f, terms, with_internal, k).await?
            } else {
                let q = matches(false, grant, f, terms, with_internal, Some(k));
                doc_scores(&q.fetch_all(c).await?)?
            };
            let capped = found.len() > k as usize;
            found.truncate(k as usize);
            found.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
            let mut rest = found.into_iter().skip(page.offset as usize);
            let ranked: Vec<(i64, f64)> = rest.by_ref().take(page.limit as usize).collect();
            (ranked, rest.next().is_some(), capped)
        }
        None => {
            let mut q = matches(postgres, grant, f, terms, with_internal, None);
            q.push(" ORDER BY s_score DESC, s_doc DESC")
                .page(&page.probe());
            let mut found = doc_scores(&q.fetch_all(c).await?)?;
            let has_more = found.len() > page.limit as usize;
            found.truncate(page.limit as usize);
            (found, has_more, false)
        }
    };
    // 2. Those tickets, still within the grant and the filter.
    let mut items = Vec::with_capacity(ranked.len());
    if !ranked.is_empty() {
        let mut q = Sql::new(
            "SELECT t.*, s.doc AS s_doc, s.public_text AS s_public, s.internal_text AS s_internal \
             FROM ticket_search s JOIN tickets t ON t.id = s.ticket_id WHERE s.doc IN (",
        );
        for (i, (doc, _)) in ranked.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.int(*doc);
        }
        q.push(") AND ");
        q.scope("t.client_id", grant);
        push_filters(&mut q, f, "t");
        let mut rows: HashMap<i64, sqlx::any::AnyRow> = HashMap::new();
        for r in q.fetch_all(c).await? {
            rows.insert(r.try_get("s_doc")?, r);
        }
        for (doc, score) in &ranked {
            let Some(r) = rows.get(doc) else { continue };
            let ticket = ticket_row(r)?;
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
                score: *score,
                snippet,
            });
        }
    }
    Ok(SearchPage {
        hits: Paged { items, has_more },
        capped,
    })
}

fn doc_scores(rows: &[sqlx::any::AnyRow]) -> Result<Vec<(i64, f64)>> {
    rows.iter()
        .map(|r| Ok((r.try_get("s_doc")?, r.try_get("s_score")?)))
        .collect()
}

/// The matches the caller may see as `(s_doc, s_score)`: with `newest`, the first `newest + 1`
/// in descending `doc` order, else all of them (for the caller to order).
fn matches(
    postgres: bool,
    grant: &Grant,
    f: &TicketFilter,
    terms: &[String],
    with_internal: bool,
    newest: Option<u32>,
) -> Sql {
    let join = if needs_tickets(f) {
        " JOIN tickets t ON t.id = s.ticket_id"
    } else {
        ""
    };
    let mut q;
    if postgres {
        let doc = if with_internal {
            "doc_all"
        } else {
            "doc_public"
        };
        let words = terms.join(" ");
        let tsquery = "plainto_tsquery('simple'::regconfig, ";
        q = Sql::new(&format!(
            "SELECT s.doc AS s_doc, CAST(ts_rank(s.{doc}, {tsquery}"
        ));
        q.text(words.clone());
        q.push(&format!(
            ")) AS DOUBLE PRECISION) AS s_score FROM ticket_search s{join} WHERE s.{doc} @@ {tsquery}"
        ));
        q.text(words).push(")");
    } else {
        let weights = if with_internal {
            "10.0, 4.0, 2.0, 1.0, 0.0"
        } else {
            "10.0, 4.0, 2.0, 0.0, 0.0"
        };
        // bm25 is lower for better matches; negated so that higher is better on both.
        q = Sql::new(&format!(
            "SELECT ticket_fts.rowid AS s_doc, -bm25(ticket_fts, {weights}) AS s_score FROM ticket_fts \
             JOIN ticket_search s ON s.doc = ticket_fts.rowid{join} WHERE ticket_fts MATCH "
        ));
        q.text(fts5_expression(
            terms,
            with_internal,
            fts5_scope(grant, f).as_deref(),
        ));
    }
    q.push(" AND ");
    q.scope("s.client_id", grant);
    push_filters(&mut q, f, "s");
    if let Some(k) = newest {
        q.push(" ORDER BY ticket_fts.rowid DESC LIMIT ")
            .int(i64::from(k) + 1);
    }
    q
}

/// `ticket_search.doc_block` on PostgreSQL: `doc / DOC_BLOCK` (migration 0019).
const DOC_BLOCK: i64 = 1024;
/// The first slice of documents a PostgreSQL search looks at, in blocks.
const FIRST_BLOCKS: i64 = 32;
/// The widest slice: a range of blocks is gathered into one bitmap inside the index, which
/// must stay small enough to be exact.
const MAX_BLOCKS: i64 = 256;
/// When the older documents are expected to hold at most this many matches, they are read in
/// one query without a block range.
const REST_AT_ONCE: i64 = 3_000;

/// PostgreSQL: the `k + 1` newest matches the caller may see, with their `ts_rank`. A GIN
/// index can answer "which rows match" but not "the newest ones", and reading every match's
/// row to find the newest costs as much as ranking them all (a common word's 50,000 rows). So
/// the index also holds each row's block of documents (`doc_block`, btree_gin), and matches
/// are taken a slice of blocks at a time, newest first: each slice is intersected inside the
/// index and only its matches' rows are read. From the density of matches seen so far, the
/// next slice is sized to hold what is still wanted, or, when the older documents should hold
/// few matches (a rare word, or one client's share of a common one), they are read at once.
/// Then only the candidates' tsvectors are read, for `ts_rank`.
async fn newest_postgres(
    c: &mut AnyConnection,
    grant: &Grant,
    f: &TicketFilter,
    terms: &[String],
    with_internal: bool,
    k: u32,
) -> Result<Vec<(i64, f64)>> {
    let doc = if with_internal {
        "doc_all"
    } else {
        "doc_public"
    };
    let words = terms.join(" ");
    let want = k as usize + 1;
    let top = match Sql::new("SELECT MAX(doc) AS top FROM ticket_search")
        .fetch_optional(c)
        .await?
    {
        Some(r) => r.try_get::<Option<i64>, _>("top")?,
        None => None,
    };
    let Some(top) = top else {
        return Ok(Vec::new());
    };
    let join = if needs_tickets(f) {
        " JOIN tickets t ON t.id = s.ticket_id"
    } else {
        ""
    };
    let mut docs: Vec<i64> = Vec::new();
    // Blocks not looked at yet: 0..=hi.
    let mut hi = top / DOC_BLOCK;
    let mut width = FIRST_BLOCKS;
    let (mut seen_blocks, mut seen_matches) = (0i64, 0i64);
    while docs.len() < want && hi >= 0 {
        let still = (want - docs.len()) as i64;
        // Matches expected in the blocks left, at the density seen so far.
        let expected = if seen_blocks == 0 {
            i64::MAX
        } else {
            seen_matches.saturating_mul(hi + 1) / seen_blocks
        };
        let rest = expected <= REST_AT_ONCE.max(still);
        let lo = if rest { 0 } else { (hi - width + 1).max(0) };
        let mut q = Sql::new(&format!(
            "SELECT s.doc AS s_doc FROM ticket_search s{join} WHERE s.{doc} @@ plainto_tsquery('simple'::regconfig, "
        ));
        q.text(words.clone()).push(")");
        if rest {
            // No block range (which the index would gather into one large bitmap): the
            // term's matches, older than the blocks already read.
            if hi < top / DOC_BLOCK {
                q.push(" AND s.doc < ").int((hi + 1) * DOC_BLOCK);
            }
        } else {
            // Compared as BIGINT on both sides, or the index cannot use it. Only the lower
            // bound is the index's: each bound would be a range scan of its own inside the
            // index, and "up to this block" covers nearly everything. So the blocks already
            // read are read again (at most the matches found so far) and left out by `doc`.
            q.push(" AND s.doc_block >= ").int(lo);
            if hi < top / DOC_BLOCK {
                q.push(" AND s.doc < ").int((hi + 1) * DOC_BLOCK);
            }
        }
        q.push(" AND ");
        q.scope("s.client_id", grant);
        push_filters(&mut q, f, "s");
        // `+ 0`: never walk the primary key backwards testing each row's tsvector.
        q.push(" ORDER BY s.doc + 0 DESC LIMIT ").int(still);
        let rows = q.fetch_all(c).await?;
        for r in &rows {
            docs.push(r.try_get("s_doc")?);
        }
        seen_blocks += hi - lo + 1;
        seen_matches += rows.len() as i64;
        if rest {
            break;
        }
        let still = (want - docs.len().min(want)) as i64;
        width = if seen_matches == 0 {
            width * 16
        } else {
            (seen_blocks * still * 3 / 2 / seen_matches).clamp(width * 2, width * 16)
        }
        .min(MAX_BLOCKS);
        hi = lo - 1;
    }
    if docs.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Sql::new(&format!(
        "SELECT doc AS s_doc, CAST(ts_rank({doc}, plainto_tsquery('simple'::regconfig, "
    ));
    q.text(words)
        .push(")) AS DOUBLE PRECISION) AS s_score FROM ticket_search WHERE doc IN (");
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.int(*d);
    }
    q.push(")");
    let mut ranked = doc_scores(&q.fetch_all(c).await?)?;
    ranked.sort_by_key(|d| std::cmp::Reverse(d.0));
    Ok(ranked)
}

/// Whether the filter needs columns only `tickets` has (its status, owner, assignee or
/// priority; an SLA filter asks the status).
fn needs_tickets(f: &TicketFilter) -> bool {
    !f.statuses.is_empty()
        || f.owner.is_some()
        || f.assignee.is_some()
        || f.priority.is_some()
        || f.sla.is_some()
}

/// The queue's filters (the same meaning as in `tickets::list_tickets`): the requester and
/// the client on `alias` (`s`, `ticket_search`, holds copies of both; or `t`), the others on
/// `tickets t`.
fn push_filters(q: &mut Sql, f: &TicketFilter, alias: &str) {
    if let Some(r) = f.requester {
        q.push(&format!(" AND {alias}.requester_id = "))
            .text(r.to_string());
    }
    if let Some(cid) = f.client {
        q.push(&format!(" AND {alias}.client_id = "))
            .text(cid.to_string());
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
    let id = if alias == "t" { "t.id" } else { "s.ticket_id" };
    crate::tickets::push_linked_filters(q, f, id, "t.status");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expression_quotes_every_term_and_limits_columns_for_end_users() {
        let terms = vec!["printer".to_string(), "near".to_string()];
        assert_eq!(
            fts5_expression(&terms, true, None),
            "{subject description public_text internal_text} : (\"printer\" \"near\")"
        );
        assert_eq!(
            fts5_expression(&terms, false, None),
            "{subject description public_text} : (\"printer\" \"near\")"
        );
        assert_eq!(
            fts5_expression(&["a\"b".to_string()], true, Some("scope_words : (\"c1\")")),
            "{subject description public_text internal_text} : (\"a\"\"b\") AND scope_words : (\"c1\")"
        );
    }

    #[test]
    fn scope_words_are_one_token_per_id() {
        assert_eq!(
            scope_word('c', "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            "c0190a1b2c3d47e5f8a9b0c1d2e3f4a5b"
        );
    }
}
