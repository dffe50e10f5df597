//! The audit trail: appended inside the transaction of the change it records, read back
//! scoped by tenant, and verified end to end.

use crate::query::{int, opt_parsed, opt_text, text, ts, Sql};
use crate::{Result, StoreError, Write};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::audit::{AuditEntry, AuditRecord, ChainBreak, ChainVerifier};
use tandem_domain::authz::{Action, ClientScope, Grant};
use tandem_domain::{ClientId, Timestamp, UserId};

/// Appends `entry` to the chain inside the write transaction `w`.
///
/// The head row is updated first: on PostgreSQL that row lock orders concurrent writers
/// from every server; on SQLite the store's writer lock already does.
pub async fn append(w: &mut Write, entry: AuditEntry, at: Timestamp) -> Result<AuditRecord> {
    let head = Sql::new("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_optional(w)
        .await?
        .ok_or_else(|| StoreError::Corrupt("audit head row is missing".into()))?;
    let seq = int(&head, "seq")?;
    let prev = text(&head, "hash")?;
    let rec = AuditRecord::link(seq, at, entry, &prev);
    let e = &rec.entry;
    Sql::new("INSERT INTO audit_log (seq, at, client_id, actor_id, actor_label, actor_side, action, target_kind, target_id, before_json, after_json, request_id, reference, prev_hash, hash) VALUES (")
        .int(rec.seq).push(", ")
        .int(rec.at.0).push(", ")
        .opt_text(e.client_id.map(|c| c.to_string())).push(", ")
        .opt_text(e.actor_id.map(|c| c.to_string())).push(", ")
        .text(e.actor_label.clone()).push(", ")
        .text(e.actor_side.as_str()).push(", ")
        .text(e.action.clone()).push(", ")
        .text(e.target_kind.clone()).push(", ")
        .text(e.target_id.clone()).push(", ")
        .opt_text(e.before.as_ref().map(|v| v.to_string())).push(", ")
        .opt_text(e.after.as_ref().map(|v| v.to_string())).push(", ")
        .opt_text(e.request_id.clone()).push(", ")
        .opt_text(e.reference.clone()).push(", ")
        .text(rec.prev_hash.clone()).push(", ")
        .text(rec.hash.clone()).push(")")
        .execute(w)
        .await?;
    Sql::new("UPDATE audit_head SET hash = ")
        .text(rec.hash.clone())
        .push(" WHERE id = 1")
        .execute(w)
        .await?;
    Ok(rec)
}

/// Appends `entry` to the chain when the write transaction `w` commits, in the same
/// transaction: the entries of a transaction are linked at its commit, in the order they were
/// appended, with one update of the head row for all of them — so the head row (which orders
/// writers across servers on PostgreSQL) is held only for the end of the transaction, and a
/// group commit's entries cost a few statements, not three each. An entry appended after a
/// savepoint is dropped when the transaction is rolled back to it.
pub fn append_at_commit(w: &mut Write, entry: AuditEntry, at: Timestamp) {
    w.pending_audit.push((entry, at));
}

/// Rows in one multi-row insert of audit entries (15 parameters each).
const LINK_CHUNK: usize = 100;

/// Links the transaction's pending entries into the chain (called by [`Write::commit`]).
pub(crate) async fn link_pending(w: &mut Write) -> Result<()> {
    let pending = std::mem::take(&mut w.pending_audit);
    if pending.is_empty() {
        return Ok(());
    }
    let n = pending.len() as i64;
    let head = Sql::new("UPDATE audit_head SET seq = seq + ")
        .int(n)
        .push(" WHERE id = 1 RETURNING seq, hash")
        .fetch_optional(w)
        .await?
        .ok_or_else(|| StoreError::Corrupt("audit head row is missing".into()))?;
    let first = int(&head, "seq")? - n + 1;
    let mut prev = text(&head, "hash")?;
    let mut records = Vec::with_capacity(pending.len());
    for (seq, (entry, at)) in (first..).zip(pending) {
        let rec = AuditRecord::link(seq, at, entry, &prev);
        prev = rec.hash.clone();
        records.push(rec);
    }
    for chunk in records.chunks(LINK_CHUNK) {
        let mut q = Sql::new("INSERT INTO audit_log (seq, at, client_id, actor_id, actor_label, actor_side, action, target_kind, target_id, before_json, after_json, request_id, reference, prev_hash, hash) VALUES ");
        for (i, rec) in chunk.iter().enumerate() {
            let e = &rec.entry;
            q.push(if i == 0 { "(" } else { ", (" })
                .int(rec.seq)
                .push(", ")
                .int(rec.at.0)
                .push(", ")
                .opt_text(e.client_id.map(|c| c.to_string()))
                .push(", ")
                .opt_text(e.actor_id.map(|c| c.to_string()))
                .push(", ")
                .text(e.actor_label.clone())
                .push(", ")
                .text(e.actor_side.as_str())
                .push(", ")
                .text(e.action.clone())
                .push(", ")
                .text(e.target_kind.clone())
                .push(", ")
                .text(e.target_id.clone())
                .push(", ")
                .opt_text(e.before.as_ref().map(|v| v.to_string()))
                .push(", ")
                .opt_text(e.after.as_ref().map(|v| v.to_string()))
                .push(", ")
                .opt_text(e.request_id.clone())
                .push(", ")
                .opt_text(e.reference.clone())
                .push(", ")
                .text(rec.prev_hash.clone())
                .push(", ")
                .text(rec.hash.clone())
                .push(")");
        }
        q.execute(w).await?;
    }
    Sql::new("UPDATE audit_head SET hash = ")
        .text(prev)
        .push(" WHERE id = 1")
        .execute(w)
        .await?;
    Ok(())
}

/// Which entries to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only this client's entries.
    pub client_id: Option<ClientId>,
    /// Only this person's actions.
    pub actor_id: Option<UserId>,
    /// Only actions starting with this, such as `user.` or `auth.sign_in`.
    pub action_prefix: Option<String>,
    /// Only entries at or after this instant.
    pub from: Option<Timestamp>,
    /// Only entries before this instant.
    pub to: Option<Timestamp>,
    /// Only entries older than this position (for paging backwards from the newest).
    pub before_seq: Option<i64>,
}

/// Lists entries the grant reaches, newest first, at most `limit`.
pub async fn list(
    c: &mut AnyConnection,
    grant: &Grant,
    f: &AuditFilter,
    limit: u32,
) -> Result<Vec<AuditRecord>> {
    let mut q = Sql::new("SELECT * FROM audit_log WHERE ");
    q.scope("client_id", grant);
    if let Some(cid) = f.client_id {
        q.push(" AND client_id = ").text(cid.to_string());
    }
    if let Some(a) = f.actor_id {
        q.push(" AND actor_id = ").text(a.to_string());
    }
    if let Some(p) = &f.action_prefix {
        // Prefix match without LIKE wildcards from the user: compare the leading characters.
        // PostgreSQL has no SUBSTR taking a BIGINT length, which is how integers are bound.
        q.push(" AND SUBSTR(action, 1, CAST(")
            .int(p.chars().count() as i64)
            .push(" AS INTEGER)) = ")
            .text(p.clone());
    }
    if let Some(t) = f.from {
        q.push(" AND at >= ").int(t.0);
    }
    if let Some(t) = f.to {
        q.push(" AND at < ").int(t.0);
    }
    if let Some(s) = f.before_seq {
        q.push(" AND seq < ").int(s);
    }
    q.push(" ORDER BY seq DESC LIMIT ")
        .int(limit.clamp(1, 10_000) as i64);
    q.fetch_all(c).await?.iter().map(record).collect()
}

/// The chain head: last position and hash.
pub async fn head(c: &mut AnyConnection) -> Result<(i64, String)> {
    let r = Sql::new("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(c)
        .await?
        .ok_or_else(|| StoreError::Corrupt("audit head row is missing".into()))?;
    Ok((int(&r, "seq")?, text(&r, "hash")?))
}

/// The outcome of verifying the whole chain.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verification {
    /// Entries checked.
    pub checked: u64,
    /// Every break found; empty when the chain is intact.
    pub breaks: Vec<ChainBreak>,
}

/// Verifies every entry of the chain, in batches, calling `progress` with the count so far.
///
/// The chain spans every tenant, so this needs a grant of [`Action::AuditVerify`] over all.
pub async fn verify(
    c: &mut AnyConnection,
    grant: &Grant,
    mut progress: impl FnMut(u64),
) -> Result<Verification> {
    if grant.action() != Action::AuditVerify
        || !grant.covers_provider()
        || grant.clients() != &ClientScope::All
    {
        return Err(StoreError::Corrupt(
            "verification needs an audit-verify grant over every tenant".into(),
        ));
    }
    let (head_seq, head_hash) = head(c).await?;
    let mut v = ChainVerifier::default();
    let mut after = 0i64;
    loop {
        let rows = Sql::new("SELECT * FROM audit_log WHERE seq > ")
            .int(after)
            .push(" ORDER BY seq LIMIT 2000")
            .fetch_all(c)
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            match record(row) {
                Ok(r) => {
                    after = r.seq;
                    v.push(&r);
                }
                Err(_) => {
                    // An entry that no longer decodes was altered. Check it in its place with
                    // its stored links, so the entries after it are judged on their own.
                    let seq = int(row, "seq")?;
                    after = seq;
                    v.push(&unreadable(seq, row)?);
                }
            }
        }
        progress(v.checked);
    }
    let checked = v.checked;
    Ok(Verification {
        checked,
        breaks: v.finish(head_seq, &head_hash),
    })
}

/// Stands in for a stored entry that cannot be decoded: it has the entry's position and
/// stored hashes, and contents that cannot match the stored hash.
fn unreadable(seq: i64, row: &AnyRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        seq,
        at: Timestamp(0),
        entry: AuditEntry {
            client_id: None,
            actor_id: None,
            actor_label: String::new(),
            actor_side: tandem_domain::Side::System,
            action: "\u{0}unreadable".to_string(),
            target_kind: String::new(),
            target_id: String::new(),
            before: None,
            after: None,
            request_id: None,
            reference: None,
        },
        prev_hash: text(row, "prev_hash")?,
        hash: text(row, "hash")?,
    })
}

fn json(row: &AnyRow, col: &str) -> Result<Option<serde_json::Value>> {
    opt_text(row, col)?
        .map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}

fn record(row: &AnyRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        seq: int(row, "seq")?,
        at: ts(row, "at")?,
        entry: AuditEntry {
            client_id: opt_parsed(row, "client_id")?,
            actor_id: opt_parsed(row, "actor_id")?,
            actor_label: text(row, "actor_label")?,
            actor_side: match text(row, "actor_side")?.as_str() {
                "provider" => tandem_domain::Side::Provider,
                "client" => tandem_domain::Side::Client,
                "outside" => tandem_domain::Side::Outside,
                "system" => tandem_domain::Side::System,
                other => return Err(StoreError::Corrupt(format!("actor_side {other:?}"))),
            },
            action: text(row, "action")?,
            target_kind: text(row, "target_kind")?,
            target_id: text(row, "target_id")?,
            before: json(row, "before_json")?,
            after: json(row, "after_json")?,
            request_id: opt_text(row, "request_id")?,
            reference: opt_text(row, "reference")?,
        },
        prev_hash: text(row, "prev_hash")?,
        hash: text(row, "hash")?,
    })
}
