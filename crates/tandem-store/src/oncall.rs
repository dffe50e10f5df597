//! On-call records: schedules, escalation policies, pages with their history, calendar feed
//! tokens. Provider-side schedules and policies have no client; reads of client records are
//! scoped by the grant, and provider-side ones are reached only when the caller says the
//! principal belongs to the provider.

use crate::query::{flag, int, opt_parsed, opt_text, opt_ts, parsed, text, ts, Sql};
use crate::{Page as Paging, Paged, Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::Grant;
use tandem_domain::oncall::{Page, PageEvent, Policy, Schedule};
use tandem_domain::scope::Party;
use tandem_domain::{ClientId, PageId, PolicyId, ScheduleId, Timestamp, UserId};

fn party(s: &str) -> Result<Party> {
    match s {
        "internal" => Ok(Party::Internal),
        "provider" => Ok(Party::Provider),
        other => Err(StoreError::Corrupt(format!("side {other:?}"))),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(r: &AnyRow, col: &str) -> Result<T> {
    serde_json::from_str(&text(r, col)?).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// Rows the grant reaches, plus provider-side rows (no client) when `provider_side`.
fn visible(q: &mut Sql, grant: &Grant, provider_side: bool) {
    q.push("(");
    if provider_side {
        q.push("client_id IS NULL OR ");
    }
    q.scope("client_id", grant).push(")");
}

// ---- schedules ------------------------------------------------------------------------

/// Stores a new schedule.
pub async fn insert_schedule(c: &mut AnyConnection, s: &Schedule) -> Result<()> {
    Sql::new("INSERT INTO oncall_schedules (id, client_id, side, name, rules, created_at, updated_at) VALUES (")
        .text(s.id.to_string())
        .push(", ")
        .opt_text(s.client_id.map(|c| c.to_string()))
        .push(", ")
        .text(s.side.as_str())
        .push(", ")
        .text(s.name.clone())
        .push(", ")
        .text(json(&s.rules)?)
        .push(", ")
        .int(s.created_at.0)
        .push(", ")
        .int(s.updated_at.0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// Writes a schedule's name and rules back.
pub async fn update_schedule(c: &mut AnyConnection, s: &Schedule) -> Result<u64> {
    Sql::new("UPDATE oncall_schedules SET name = ")
        .text(s.name.clone())
        .push(", rules = ")
        .text(json(&s.rules)?)
        .push(", updated_at = ")
        .int(s.updated_at.0)
        .push(" WHERE id = ")
        .text(s.id.to_string())
        .execute(c)
        .await
}

/// Schedules visible to the caller, optionally one client's (with the provider's).
pub async fn list_schedules(
    c: &mut AnyConnection,
    grant: &Grant,
    provider_side: bool,
    client: Option<ClientId>,
) -> Result<Vec<Schedule>> {
    let mut q = Sql::new("SELECT * FROM oncall_schedules WHERE ");
    visible(&mut q, grant, provider_side);
    if let Some(cid) = client {
        q.push(" AND (client_id IS NULL OR client_id = ")
            .text(cid.to_string())
            .push(")");
    }
    q.push(" ORDER BY side DESC, name, id");
    q.fetch_all(c).await?.iter().map(schedule).collect()
}

/// One schedule, if visible.
pub async fn get_schedule(
    c: &mut AnyConnection,
    grant: &Grant,
    provider_side: bool,
    id: ScheduleId,
) -> Result<Option<Schedule>> {
    let mut q = Sql::new("SELECT * FROM oncall_schedules WHERE id = ");
    q.text(id.to_string()).push(" AND ");
    visible(&mut q, grant, provider_side);
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map(schedule)
        .transpose()
}

/// One schedule, for Tandem's own work (paging, feeds).
pub async fn get_schedule_unscoped(
    c: &mut AnyConnection,
    id: ScheduleId,
) -> Result<Option<Schedule>> {
    Sql::new("SELECT * FROM oncall_schedules WHERE id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(schedule)
        .transpose()
}

/// Every schedule (for a person's feed across schedules).
pub async fn all_schedules_unscoped(c: &mut AnyConnection) -> Result<Vec<Schedule>> {
    Sql::new("SELECT * FROM oncall_schedules ORDER BY name, id")
        .fetch_all(c)
        .await?
        .iter()
        .map(schedule)
        .collect()
}

fn schedule(r: &AnyRow) -> Result<Schedule> {
    Ok(Schedule {
        id: parsed(r, "id")?,
        client_id: opt_parsed(r, "client_id")?,
        side: party(&text(r, "side")?)?,
        name: text(r, "name")?,
        rules: from_json(r, "rules")?,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

// ---- policies -------------------------------------------------------------------------

/// The key that makes a policy the one of its side: `provider` or `internal:<client>`.
pub fn policy_scope_key(side: Party, client: Option<ClientId>) -> String {
    match (side, client) {
        (Party::Provider, _) => "provider".to_string(),
        (Party::Internal, Some(c)) => format!("internal:{c}"),
        (Party::Internal, None) => "internal:".to_string(),
    }
}

/// Stores a new policy (a second one for the same side answers `Conflict`).
pub async fn insert_policy(c: &mut AnyConnection, p: &Policy) -> Result<()> {
    Sql::new("INSERT INTO oncall_policies (id, client_id, side, scope_key, name, rules, created_at, updated_at) VALUES (")
        .text(p.id.to_string())
        .push(", ")
        .opt_text(p.client_id.map(|c| c.to_string()))
        .push(", ")
        .text(p.side.as_str())
        .push(", ")
        .text(policy_scope_key(p.side, p.client_id))
        .push(", ")
        .text(p.name.clone())
        .push(", ")
        .text(json(&p.rules)?)
        .push(", ")
        .int(p.created_at.0)
        .push(", ")
        .int(p.updated_at.0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// Writes a policy's name and rules back.
pub async fn update_policy(c: &mut AnyConnection, p: &Policy) -> Result<u64> {
    Sql::new("UPDATE oncall_policies SET name = ")
        .text(p.name.clone())
        .push(", rules = ")
        .text(json(&p.rules)?)
        .push(", updated_at = ")
        .int(p.updated_at.0)
        .push(" WHERE id = ")
        .text(p.id.to_string())
        .execute(c)
        .await
}

/// Policies visible to the caller.
pub async fn list_policies(
    c: &mut AnyConnection,
    grant: &Grant,
    provider_side: bool,
) -> Result<Vec<Policy>> {
    let mut q = Sql::new("SELECT * FROM oncall_policies WHERE ");
    visible(&mut q, grant, provider_side);
    q.push(" ORDER BY side DESC, name, id");
    q.fetch_all(c).await?.iter().map(policy).collect()
}

/// One policy, if visible.
pub async fn get_policy(
    c: &mut AnyConnection,
    grant: &Grant,
    provider_side: bool,
    id: PolicyId,
) -> Result<Option<Policy>> {
    let mut q = Sql::new("SELECT * FROM oncall_policies WHERE id = ");
    q.text(id.to_string()).push(" AND ");
    visible(&mut q, grant, provider_side);
    q.fetch_optional(c).await?.as_ref().map(policy).transpose()
}

/// The policy of a side for a client (Tandem's own read, for paging).
pub async fn policy_of_side(
    c: &mut AnyConnection,
    side: Party,
    client: Option<ClientId>,
) -> Result<Option<Policy>> {
    Sql::new("SELECT * FROM oncall_policies WHERE scope_key = ")
        .text(policy_scope_key(side, client))
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(policy)
        .transpose()
}

/// One policy by id (Tandem's own read, for paging).
pub async fn get_policy_unscoped(c: &mut AnyConnection, id: PolicyId) -> Result<Option<Policy>> {
    Sql::new("SELECT * FROM oncall_policies WHERE id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(policy)
        .transpose()
}

fn policy(r: &AnyRow) -> Result<Policy> {
    Ok(Policy {
        id: parsed(r, "id")?,
        client_id: opt_parsed(r, "client_id")?,
        side: party(&text(r, "side")?)?,
        name: text(r, "name")?,
        rules: from_json(r, "rules")?,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

// ---- pages ----------------------------------------------------------------------------

fn open_key(client: ClientId, dedup: &str) -> String {
    format!("{client}|{dedup}")
}

/// Stores a new page (a second open page with the same client and key answers `Conflict`).
pub async fn insert_page(c: &mut AnyConnection, p: &Page) -> Result<()> {
    Sql::new("INSERT INTO oncall_pages (id, client_id, domain, dedup_key, open_key, summary, severity, link, side, policy_id, other_side_ok, status, step, next_step_at, opened_at) VALUES (")
        .text(p.id.to_string())
        .push(", ")
        .text(p.client_id.to_string())
        .push(", ")
        .text(p.domain.clone())
        .push(", ")
        .text(p.dedup_key.clone())
        .push(", ")
        .text(open_key(p.client_id, &p.dedup_key))
        .push(", ")
        .text(p.summary.clone())
        .push(", ")
        .text(p.severity.as_str())
        .push(", ")
        .opt_text(p.link.clone())
        .push(", ")
        .text(p.side.as_str())
        .push(", ")
        .opt_text(p.policy_id.map(|x| x.to_string()))
        .push(", ")
        .int(i64::from(p.other_side_ok))
        .push(", ")
        .text(p.status.as_str())
        .push(", ")
        .int(p.step)
        .push(", ")
        .opt_int(p.next_step_at.map(|t| t.0))
        .push(", ")
        .int(p.opened_at.0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// The page open (not resolved) for a client and key, if any.
pub async fn open_page_by_key(
    c: &mut AnyConnection,
    client: ClientId,
    dedup: &str,
) -> Result<Option<Page>> {
    Sql::new("SELECT * FROM oncall_pages WHERE open_key = ")
        .text(open_key(client, dedup))
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(page)
        .transpose()
}

/// Takes the escalation step `from_step` of a page on `from_side`, moving it to the given
/// state — only if no one else took it first (the claim that makes several workers safe).
/// Returns whether this caller took it.
#[allow(clippy::too_many_arguments)]
pub async fn claim_step(
    c: &mut AnyConnection,
    id: PageId,
    from_side: Party,
    from_step: i64,
    side: Party,
    policy: Option<PolicyId>,
    step: i64,
    next_step_at: Option<Timestamp>,
) -> Result<bool> {
    let n = Sql::new("UPDATE oncall_pages SET side = ")
        .text(side.as_str())
        .push(", policy_id = ")
        .opt_text(policy.map(|p| p.to_string()))
        .push(", step = ")
        .int(step)
        .push(", next_step_at = ")
        .opt_int(next_step_at.map(|t| t.0))
        .push(" WHERE id = ")
        .text(id.to_string())
        .push(" AND status = 'open' AND side = ")
        .text(from_side.as_str())
        .push(" AND step = ")
        .int(from_step)
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// Marks a page acknowledged (only if it is open); returns whether it changed.
pub async fn acknowledge(
    c: &mut AnyConnection,
    id: PageId,
    by: Option<UserId>,
    at: Timestamp,
) -> Result<bool> {
    let n = Sql::new(
        "UPDATE oncall_pages SET status = 'acknowledged', next_step_at = NULL, acknowledged_at = ",
    )
    .int(at.0)
    .push(", acknowledged_by = ")
    .opt_text(by.map(|u| u.to_string()))
    .push(" WHERE id = ")
    .text(id.to_string())
    .push(" AND status = 'open'")
    .execute(c)
    .await?;
    Ok(n == 1)
}

/// Marks a page resolved and frees its key (only if not resolved); returns whether it changed.
pub async fn resolve(
    c: &mut AnyConnection,
    id: PageId,
    by: Option<UserId>,
    at: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE oncall_pages SET status = 'resolved', next_step_at = NULL, open_key = NULL, resolved_at = ")
        .int(at.0)
        .push(", resolved_by = ")
        .opt_text(by.map(|u| u.to_string()))
        .push(" WHERE id = ")
        .text(id.to_string())
        .push(" AND status <> 'resolved'")
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// What the page list can be narrowed to.
#[derive(Clone, Debug, Default)]
pub struct PageFilter {
    /// One client's.
    pub client: Option<ClientId>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<String>,
    /// Only pages on this side.
    pub side: Option<Party>,
}

/// Pages the grant reaches, newest first.
pub async fn list_pages(
    c: &mut AnyConnection,
    grant: &Grant,
    f: &PageFilter,
    paging: Paging,
) -> Result<Paged<Page>> {
    let mut q = Sql::new("SELECT * FROM oncall_pages WHERE ");
    q.scope("client_id", grant);
    if let Some(cid) = f.client {
        q.push(" AND client_id = ").text(cid.to_string());
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
    if let Some(s) = f.side {
        q.push(" AND side = ").text(s.as_str());
    }
    q.push(" ORDER BY opened_at DESC, id DESC")
        .page(&paging.probe());
    let items = q
        .fetch_all(c)
        .await?
        .iter()
        .map(page)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &paging))
}

/// One page, if the grant reaches it.
pub async fn get_page(c: &mut AnyConnection, grant: &Grant, id: PageId) -> Result<Option<Page>> {
    let mut q = Sql::new("SELECT * FROM oncall_pages WHERE id = ");
    q.text(id.to_string()).push(" AND ");
    q.scope("client_id", grant);
    q.fetch_optional(c).await?.as_ref().map(page).transpose()
}

/// One page (Tandem's own read).
pub async fn get_page_unscoped(c: &mut AnyConnection, id: PageId) -> Result<Option<Page>> {
    Sql::new("SELECT * FROM oncall_pages WHERE id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(page)
        .transpose()
}

/// Pages whose next step is due at `now`, oldest due first.
pub async fn due_pages(c: &mut AnyConnection, now: Timestamp, limit: i64) -> Result<Vec<Page>> {
    Sql::new("SELECT * FROM oncall_pages WHERE status = 'open' AND next_step_at IS NOT NULL AND next_step_at <= ")
        .int(now.0)
        .push(" ORDER BY next_step_at, id LIMIT ")
        .int(limit)
        .fetch_all(c)
        .await?
        .iter()
        .map(page)
        .collect()
}

/// Pages of a client not yet resolved (for handoff records).
pub async fn unresolved_pages_of(c: &mut AnyConnection, client: ClientId) -> Result<Vec<Page>> {
    Sql::new("SELECT * FROM oncall_pages WHERE status <> 'resolved' AND client_id = ")
        .text(client.to_string())
        .push(" ORDER BY opened_at, id")
        .fetch_all(c)
        .await?
        .iter()
        .map(page)
        .collect()
}

/// Appends to a page's history.
pub async fn insert_page_event(c: &mut AnyConnection, p: &Page, e: &PageEvent) -> Result<()> {
    Sql::new(
        "INSERT INTO oncall_page_events (id, page_id, client_id, at, kind, user_id, body) VALUES (",
    )
    .text(uuid::Uuid::now_v7().to_string())
    .push(", ")
    .text(p.id.to_string())
    .push(", ")
    .text(p.client_id.to_string())
    .push(", ")
    .int(e.at.0)
    .push(", ")
    .text(e.kind.clone())
    .push(", ")
    .opt_text(e.user_id.map(|u| u.to_string()))
    .push(", ")
    .text(e.body.clone())
    .push(")")
    .execute(c)
    .await?;
    Ok(())
}

/// A page's history, oldest first.
pub async fn page_events(c: &mut AnyConnection, id: PageId) -> Result<Vec<PageEvent>> {
    Sql::new("SELECT * FROM oncall_page_events WHERE page_id = ")
        .text(id.to_string())
        .push(" ORDER BY at, id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok(PageEvent {
                at: ts(r, "at")?,
                kind: text(r, "kind")?,
                user_id: opt_parsed(r, "user_id")?,
                body: text(r, "body")?,
            })
        })
        .collect()
}

fn page(r: &AnyRow) -> Result<Page> {
    let corrupt = |col: &str, e: String| StoreError::Corrupt(format!("{col}: {e}"));
    Ok(Page {
        id: parsed(r, "id")?,
        client_id: parsed(r, "client_id")?,
        domain: text(r, "domain")?,
        dedup_key: text(r, "dedup_key")?,
        summary: text(r, "summary")?,
        severity: text(r, "severity")?
            .parse()
            .map_err(|e| corrupt("severity", e))?,
        link: opt_text(r, "link")?,
        side: party(&text(r, "side")?)?,
        policy_id: opt_parsed(r, "policy_id")?,
        other_side_ok: flag(r, "other_side_ok")?,
        status: text(r, "status")?
            .parse()
            .map_err(|e| corrupt("status", e))?,
        step: int(r, "step")?,
        next_step_at: opt_ts(r, "next_step_at")?,
        opened_at: ts(r, "opened_at")?,
        acknowledged_at: opt_ts(r, "acknowledged_at")?,
        acknowledged_by: opt_parsed(r, "acknowledged_by")?,
        resolved_at: opt_ts(r, "resolved_at")?,
        resolved_by: opt_parsed(r, "resolved_by")?,
    })
}

// ---- calendar feeds -------------------------------------------------------------------

pub use tandem_domain::oncall::Feed;

/// Stores a feed with the hash of its token.
pub async fn insert_feed(c: &mut AnyConnection, f: &Feed, token_hash: &str) -> Result<()> {
    Sql::new("INSERT INTO oncall_feeds (id, token_hash, schedule_id, user_id, client_id, created_by, created_at) VALUES (")
        .text(f.id.to_string())
        .push(", ")
        .text(token_hash)
        .push(", ")
        .opt_text(f.schedule_id.map(|x| x.to_string()))
        .push(", ")
        .opt_text(f.user_id.map(|x| x.to_string()))
        .push(", ")
        .opt_text(f.client_id.map(|x| x.to_string()))
        .push(", ")
        .text(f.created_by.to_string())
        .push(", ")
        .int(f.created_at.0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// The live feed with this token hash.
pub async fn feed_by_hash(c: &mut AnyConnection, token_hash: &str) -> Result<Option<Feed>> {
    Sql::new("SELECT * FROM oncall_feeds WHERE revoked_at IS NULL AND token_hash = ")
        .text(token_hash)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(feed)
        .transpose()
}

/// Feeds a person made.
pub async fn feeds_of(c: &mut AnyConnection, maker: UserId) -> Result<Vec<Feed>> {
    Sql::new("SELECT * FROM oncall_feeds WHERE created_by = ")
        .text(maker.to_string())
        .push(" ORDER BY created_at DESC, id")
        .fetch_all(c)
        .await?
        .iter()
        .map(feed)
        .collect()
}

/// Revokes a feed its maker owns; returns whether it changed.
pub async fn revoke_feed(
    c: &mut AnyConnection,
    id: uuid::Uuid,
    maker: UserId,
    at: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE oncall_feeds SET revoked_at = ")
        .int(at.0)
        .push(" WHERE revoked_at IS NULL AND id = ")
        .text(id.to_string())
        .push(" AND created_by = ")
        .text(maker.to_string())
        .execute(c)
        .await?;
    Ok(n == 1)
}

fn feed(r: &AnyRow) -> Result<Feed> {
    Ok(Feed {
        id: parsed(r, "id")?,
        schedule_id: opt_parsed(r, "schedule_id")?,
        user_id: opt_parsed(r, "user_id")?,
        client_id: opt_parsed(r, "client_id")?,
        created_by: parsed(r, "created_by")?,
        created_at: ts(r, "created_at")?,
        revoked_at: opt_ts(r, "revoked_at")?,
    })
}

// ---- shift handoffs -------------------------------------------------------------------

use tandem_domain::oncall::{Handoff, HandoffNote};
use tandem_domain::HandoffId;

/// Stores a handoff record unless one exists for its client and instant; returns whether
/// this call stored it.
pub async fn insert_handoff(c: &mut AnyConnection, h: &Handoff, now: Timestamp) -> Result<bool> {
    let n = Sql::new("INSERT INTO oncall_handoffs (id, client_id, at, from_side, to_side, items, created_at) VALUES (")
        .text(h.id.to_string())
        .push(", ")
        .text(h.client_id.to_string())
        .push(", ")
        .int(h.at.0)
        .push(", ")
        .text(h.from_side.as_str())
        .push(", ")
        .text(h.to_side.as_str())
        .push(", ")
        .text(json(&h.items)?)
        .push(", ")
        .int(now.0)
        .push(") ON CONFLICT (client_id, at) DO NOTHING")
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// Whether a handoff record exists for a client and instant.
pub async fn handoff_exists(
    c: &mut AnyConnection,
    client: ClientId,
    at: Timestamp,
) -> Result<bool> {
    Ok(
        Sql::new("SELECT id FROM oncall_handoffs WHERE client_id = ")
            .text(client.to_string())
            .push(" AND at = ")
            .int(at.0)
            .fetch_optional(c)
            .await?
            .is_some(),
    )
}

/// What the handoff list can be narrowed to.
#[derive(Clone, Debug, Default)]
pub struct HandoffFilter {
    /// One client's.
    pub client: Option<ClientId>,
    /// Only those not yet acknowledged (`Some(false)`) or only acknowledged (`Some(true)`).
    pub acknowledged: Option<bool>,
}

/// Handoff records the grant reaches, newest first (without notes).
pub async fn list_handoffs(
    c: &mut AnyConnection,
    grant: &Grant,
    f: &HandoffFilter,
    paging: Paging,
) -> Result<Paged<Handoff>> {
    let mut q = Sql::new("SELECT * FROM oncall_handoffs WHERE ");
    q.scope("client_id", grant);
    if let Some(cid) = f.client {
        q.push(" AND client_id = ").text(cid.to_string());
    }
    match f.acknowledged {
        Some(true) => {
            q.push(" AND acknowledged_at IS NOT NULL");
        }
        Some(false) => {
            q.push(" AND acknowledged_at IS NULL");
        }
        None => {}
    }
    q.push(" ORDER BY at DESC, id DESC").page(&paging.probe());
    let items = q
        .fetch_all(c)
        .await?
        .iter()
        .map(handoff)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &paging))
}

/// One handoff record with its notes, if the grant reaches it (`None` grant: Tandem's own).
pub async fn get_handoff(
    c: &mut AnyConnection,
    grant: Option<&Grant>,
    id: HandoffId,
) -> Result<Option<Handoff>> {
    let mut q = Sql::new("SELECT * FROM oncall_handoffs WHERE id = ");
    q.text(id.to_string());
    if let Some(g) = grant {
        q.push(" AND ").scope("client_id", g);
    }
    let Some(mut h) = q
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(handoff)
        .transpose()?
    else {
        return Ok(None);
    };
    h.notes = Sql::new("SELECT * FROM oncall_handoff_notes WHERE handoff_id = ")
        .text(id.to_string())
        .push(" ORDER BY at, id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok(HandoffNote {
                at: ts(r, "at")?,
                author_id: opt_parsed(r, "author_id")?,
                author_label: text(r, "author_label")?,
                body: text(r, "body")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(h))
}

/// Adds a note to a handoff record.
pub async fn insert_handoff_note(
    c: &mut AnyConnection,
    id: HandoffId,
    n: &HandoffNote,
) -> Result<()> {
    Sql::new("INSERT INTO oncall_handoff_notes (id, handoff_id, at, author_id, author_label, body) VALUES (")
        .text(uuid::Uuid::now_v7().to_string())
        .push(", ")
        .text(id.to_string())
        .push(", ")
        .int(n.at.0)
        .push(", ")
        .opt_text(n.author_id.map(|u| u.to_string()))
        .push(", ")
        .text(n.author_label.clone())
        .push(", ")
        .text(n.body.clone())
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// Marks a handoff acknowledged (only once); returns whether it changed.
pub async fn acknowledge_handoff(
    c: &mut AnyConnection,
    id: HandoffId,
    by: Option<UserId>,
    at: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE oncall_handoffs SET acknowledged_at = ")
        .int(at.0)
        .push(", acknowledged_by = ")
        .opt_text(by.map(|u| u.to_string()))
        .push(" WHERE acknowledged_at IS NULL AND id = ")
        .text(id.to_string())
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// Handoffs (and their records) older than `cutoff`, not acknowledged, not yet paged about.
pub async fn unacknowledged_handoffs(
    c: &mut AnyConnection,
    cutoff: Timestamp,
) -> Result<Vec<Handoff>> {
    Sql::new("SELECT * FROM oncall_handoffs WHERE acknowledged_at IS NULL AND page_id IS NULL AND at <= ")
        .int(cutoff.0)
        .push(" AND created_at <= ")
        .int(cutoff.0)
        .push(" ORDER BY at, id LIMIT 200")
        .fetch_all(c)
        .await?
        .iter()
        .map(handoff)
        .collect()
}

/// Records the page opened about a handoff (only the first time); returns whether it did.
pub async fn set_handoff_page(c: &mut AnyConnection, id: HandoffId, page: PageId) -> Result<bool> {
    let n = Sql::new("UPDATE oncall_handoffs SET page_id = ")
        .text(page.to_string())
        .push(" WHERE page_id IS NULL AND id = ")
        .text(id.to_string())
        .execute(c)
        .await?;
    Ok(n == 1)
}

fn handoff(r: &AnyRow) -> Result<Handoff> {
    Ok(Handoff {
        id: parsed(r, "id")?,
        client_id: parsed(r, "client_id")?,
        at: ts(r, "at")?,
        from_side: party(&text(r, "from_side")?)?,
        to_side: party(&text(r, "to_side")?)?,
        items: from_json(r, "items")?,
        notes: Vec::new(),
        acknowledged_at: opt_ts(r, "acknowledged_at")?,
        acknowledged_by: opt_parsed(r, "acknowledged_by")?,
        page_id: opt_parsed(r, "page_id")?,
    })
}
