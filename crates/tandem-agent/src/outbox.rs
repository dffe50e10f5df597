//! The outbox: a durable, bounded queue of numbered messages, and the agent's small state,
//! in one SQLite file (WAL, `synchronous=FULL`: a message is on disk before it is sent).
//!
//! Rules:
//! - Every message gets the next sequence number in the same transaction that stores it.
//!   A new database starts numbering at the current time in microseconds, so numbers keep
//!   growing even if the file is lost and made again.
//! - Delivery is in `seq` order; only what the server acknowledged is deleted.
//! - The queue is bounded by bytes: when over, the oldest heartbeats go first. Inventory
//!   messages are never dropped; instead a newer inventory supersedes queued ones (it is
//!   computed against the acknowledged baseline, so it includes what they said).
//! - When an inventory is acknowledged, its section hashes become the baseline for change
//!   detection; a full one also settles a pending request for a full inventory.

use std::path::Path;

use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use tandem_agent_protocol::{Heartbeat, Message, MessageBody, SectionName, PROTOCOL_VERSION};

use crate::changes::{PreparedReport, SectionHashes};
use crate::config::create_private_dir;
use crate::time::now_unix_micros;

/// Keys of the state table.
pub mod keys {
    /// The agent the queue belongs to; a different one empties the queue.
    pub const AGENT_ID: &str = "agent_id";
    /// The next sequence number.
    pub const NEXT_SEQ: &str = "next_seq";
    /// `1` while the server should get a full inventory next.
    pub const FULL_INVENTORY_WANTED: &str = "full_inventory_wanted";
    /// When the last check-in succeeded (RFC 3339).
    pub const LAST_CHECKIN_AT: &str = "last_checkin_at";
    /// The last delivery or collection error, for `status`.
    pub const LAST_ERROR: &str = "last_error";
    /// When the last error happened (RFC 3339).
    pub const LAST_ERROR_AT: &str = "last_error_at";
    /// The heartbeat interval the server last asked for.
    pub const HEARTBEAT_SECONDS: &str = "heartbeat_seconds";
    /// The inventory interval the server last asked for.
    pub const INVENTORY_SECONDS: &str = "inventory_seconds";
    /// The last update check's result (JSON of the section or of its gaps).
    pub const UPDATES_RESULT: &str = "updates_result";
    /// When the last update check ran (unix seconds).
    pub const UPDATES_CHECKED_AT: &str = "updates_checked_at";
    /// When the last inventory pass ran (unix seconds).
    pub const INVENTORY_PASS_AT: &str = "inventory_pass_at";
    /// Heartbeats dropped because the queue was full, ever.
    pub const DROPPED_HEARTBEATS: &str = "dropped_heartbeats";
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    seq    INTEGER PRIMARY KEY,
    kind   TEXT    NOT NULL CHECK (kind IN ('heartbeat', 'inventory')),
    full   INTEGER NOT NULL DEFAULT 0,
    json   TEXT    NOT NULL,
    bytes  INTEGER NOT NULL,
    hashes TEXT
);
CREATE TABLE IF NOT EXISTS state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS acked_sections (
    section TEXT PRIMARY KEY,
    hash    TEXT NOT NULL
);
PRAGMA user_version = 1;
";

/// The durable queue and state of one agent.
pub struct Outbox {
    conn: Connection,
    max_bytes: u64,
}

/// How much is queued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// Queued messages.
    pub messages: u64,
    /// Their size, in bytes of JSON.
    pub bytes: u64,
    /// Of which heartbeats.
    pub heartbeats: u64,
    /// Of which inventories.
    pub inventories: u64,
}

/// The next messages to send, as a ready check-in body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The JSON body of the check-in request.
    pub body: Vec<u8>,
    /// The first sequence number in it.
    pub first_seq: u64,
    /// The last sequence number in it.
    pub last_seq: u64,
    /// How many messages it holds.
    pub messages: usize,
}

/// What an acknowledgement changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Acknowledged {
    /// Messages deleted.
    pub deleted: u64,
    /// True when a full inventory was among them.
    pub full_inventory: bool,
}

impl Outbox {
    /// Opens (creating if needed) the outbox of `agent_id`, bounded to `max_bytes`.
    pub fn open(path: &Path, agent_id: &str, max_bytes: u64) -> anyhow::Result<Outbox> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open the outbox {}", path.display()))?;
        restrict_permissions(path);
        let mut outbox = Outbox { conn, max_bytes };
        outbox
            .initialise(agent_id)
            .with_context(|| format!("cannot prepare the outbox {}", path.display()))?;
        Ok(outbox)
    }

    fn initialise(&mut self, agent_id: &str) -> anyhow::Result<()> {
        self.conn.busy_timeout(std::time::Duration::from_secs(10))?;
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        // A small page cache keeps the agent's memory small; the database is tiny.
        self.conn.pragma_update(None, "cache_size", -256)?;
        self.conn.execute_batch(SCHEMA)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if get(&tx, keys::NEXT_SEQ)?.is_none() {
            let start = now_unix_micros().max(1);
            set(&tx, keys::NEXT_SEQ, &start.to_string())?;
            set(&tx, keys::FULL_INVENTORY_WANTED, "1")?;
        }
        match get(&tx, keys::AGENT_ID)? {
            Some(existing) if existing == agent_id => {}
            Some(_) => {
                // Re-enrolled: the old queue belonged to another identity.
                tx.execute("DELETE FROM messages", [])?;
                tx.execute("DELETE FROM acked_sections", [])?;
                tx.execute(
                    "DELETE FROM state WHERE key NOT IN (?1, ?2, ?3)",
                    params![
                        keys::NEXT_SEQ,
                        keys::UPDATES_RESULT,
                        keys::UPDATES_CHECKED_AT
                    ],
                )?;
                set(&tx, keys::AGENT_ID, agent_id)?;
                set(&tx, keys::FULL_INVENTORY_WANTED, "1")?;
            }
            None => set(&tx, keys::AGENT_ID, agent_id)?,
        }
        tx.commit()?;
        Ok(())
    }

    /// Queues a heartbeat; returns its sequence number.
    pub fn enqueue_heartbeat(
        &mut self,
        collected_at: &str,
        heartbeat: Heartbeat,
    ) -> anyhow::Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seq = insert(&tx, collected_at, MessageBody::Heartbeat(heartbeat), None)?;
        enforce_bound(&tx, self.max_bytes)?;
        tx.commit()?;
        Ok(seq)
    }

    /// Queues an inventory report, superseding any queued one; returns its sequence number.
    pub fn enqueue_inventory(
        &mut self,
        collected_at: &str,
        prepared: PreparedReport,
    ) -> anyhow::Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM messages WHERE kind = 'inventory'", [])?;
        let hashes = serde_json::to_string(&prepared.hashes)?;
        let seq = insert(
            &tx,
            collected_at,
            MessageBody::Inventory(prepared.report),
            Some(hashes),
        )?;
        enforce_bound(&tx, self.max_bytes)?;
        tx.commit()?;
        Ok(seq)
    }

    /// Drops queued inventory reports (a pass found nothing changed since the baseline,
    /// so they are out of date). Returns how many were dropped.
    pub fn drop_queued_inventory(&mut self) -> anyhow::Result<u64> {
        let n = self
            .conn
            .execute("DELETE FROM messages WHERE kind = 'inventory'", [])?;
        Ok(n as u64)
    }

    /// The oldest queued messages, at most `max_messages` and about `max_bytes` (at least
    /// one message, however large), as a check-in body. `None` when the queue is empty.
    pub fn next_batch(
        &self,
        max_messages: usize,
        max_bytes: usize,
    ) -> anyhow::Result<Option<Batch>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, json FROM messages ORDER BY seq LIMIT ?1")?;
        let rows = stmt.query_map([max_messages as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut body = format!("{{\"protocol\":{PROTOCOL_VERSION},\"messages\":[").into_bytes();
        let (mut first, mut last, mut count) = (0u64, 0u64, 0usize);
        for row in rows {
            let (seq, json) = row?;
            if count > 0 && body.len() + json.len() + 2 > max_bytes {
                break;
            }
            if count > 0 {
                body.push(b',');
            } else {
                first = seq as u64;
            }
            body.extend_from_slice(json.as_bytes());
            last = seq as u64;
            count += 1;
        }
        if count == 0 {
            return Ok(None);
        }
        body.extend_from_slice(b"]}");
        Ok(Some(Batch {
            body,
            first_seq: first,
            last_seq: last,
            messages: count,
        }))
    }

    /// Applies the server's acknowledgement: settles the baseline of acknowledged
    /// inventories and deletes every message up to `acked_through`.
    pub fn acknowledge(&mut self, acked_through: u64) -> anyhow::Result<Acknowledged> {
        let through = i64::try_from(acked_through).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcome = Acknowledged::default();
        let inventories: Vec<(bool, String)> = {
            let mut stmt = tx.prepare(
                "SELECT full, hashes FROM messages \
                 WHERE kind = 'inventory' AND seq <= ?1 AND hashes IS NOT NULL ORDER BY seq",
            )?;
            let rows = stmt.query_map([through], |r| {
                Ok((r.get::<_, bool>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (full, hashes) in inventories {
            let hashes: SectionHashes =
                serde_json::from_str(&hashes).context("stored section hashes")?;
            if full {
                tx.execute("DELETE FROM acked_sections", [])?;
                set(&tx, keys::FULL_INVENTORY_WANTED, "0")?;
                outcome.full_inventory = true;
            }
            for (section, hash) in hashes {
                tx.execute(
                    "INSERT INTO acked_sections (section, hash) VALUES (?1, ?2) \
                     ON CONFLICT (section) DO UPDATE SET hash = excluded.hash",
                    params![section.as_str(), hash],
                )?;
            }
        }
        outcome.deleted = tx.execute("DELETE FROM messages WHERE seq <= ?1", [through])? as u64;
        // A server that has seen higher numbers than ours (our file was lost) moves us on.
        let next = next_seq(&tx)?;
        if acked_through >= next && acked_through < i64::MAX as u64 {
            set(&tx, keys::NEXT_SEQ, &(acked_through + 1).to_string())?;
        }
        tx.commit()?;
        Ok(outcome)
    }

    /// Deletes one message unsent (one the server refuses for good).
    pub fn discard(&mut self, seq: u64) -> anyhow::Result<()> {
        let seq = i64::try_from(seq).context("sequence number out of range")?;
        self.conn
            .execute("DELETE FROM messages WHERE seq = ?1", [seq])?;
        Ok(())
    }

    /// How much is queued.
    pub fn depth(&self) -> anyhow::Result<Depth> {
        let depth = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0), \
                    COALESCE(SUM(kind = 'heartbeat'), 0), COALESCE(SUM(kind = 'inventory'), 0) \
             FROM messages",
            [],
            |r| {
                Ok(Depth {
                    messages: r.get::<_, i64>(0)? as u64,
                    bytes: r.get::<_, i64>(1)? as u64,
                    heartbeats: r.get::<_, i64>(2)? as u64,
                    inventories: r.get::<_, i64>(3)? as u64,
                })
            },
        )?;
        Ok(depth)
    }

    /// The queued messages' sequence numbers and kinds, oldest first.
    pub fn queued(&self) -> anyhow::Result<Vec<(u64, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, kind FROM messages ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The section hashes of the last acknowledged inventory.
    pub fn acked_hashes(&self) -> anyhow::Result<SectionHashes> {
        let mut stmt = self
            .conn
            .prepare("SELECT section, hash FROM acked_sections")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut hashes = SectionHashes::new();
        for row in rows {
            let (section, hash) = row?;
            if let Some(name) = SectionName::parse(&section) {
                hashes.insert(name, hash);
            }
        }
        Ok(hashes)
    }

    /// True while the next inventory must be full.
    pub fn full_inventory_wanted(&self) -> anyhow::Result<bool> {
        Ok(self.get(keys::FULL_INVENTORY_WANTED)?.as_deref() != Some("0"))
    }

    /// Asks for the next inventory to be full.
    pub fn want_full_inventory(&self) -> anyhow::Result<()> {
        self.set(keys::FULL_INVENTORY_WANTED, "1")
    }

    /// A state value.
    pub fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        get(&self.conn, key)
    }

    /// Sets a state value.
    pub fn set(&self, key: &str, value: &str) -> anyhow::Result<()> {
        set(&self.conn, key, value)
    }
}

fn restrict_permissions(path: &Path) {
    let _ = crate::platform::restrict(path);
}

fn get(conn: &Connection, key: &str) -> anyhow::Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM state WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?)
}

fn set(conn: &Connection, key: &str, value: &str) -> anyhow::Result<()> {
    conn.execute(
        "INSERT INTO state (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

fn next_seq(tx: &Transaction<'_>) -> anyhow::Result<u64> {
    let text = get(tx, keys::NEXT_SEQ)?.context("the outbox has no next sequence number")?;
    text.parse()
        .context("the outbox's next sequence number is not a number")
}

fn insert(
    tx: &Transaction<'_>,
    collected_at: &str,
    body: MessageBody,
    hashes: Option<String>,
) -> anyhow::Result<u64> {
    let seq = next_seq(tx)?;
    set(tx, keys::NEXT_SEQ, &(seq + 1).to_string())?;
    let kind = body.kind();
    let full = matches!(&body, MessageBody::Inventory(r) if r.full);
    let message = Message {
        seq,
        collected_at: collected_at.to_string(),
        body,
    };
    let json = serde_json::to_string(&message)?;
    tx.execute(
        "INSERT INTO messages (seq, kind, full, json, bytes, hashes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![seq as i64, kind, full, json, json.len() as i64, hashes],
    )?;
    Ok(seq)
}

/// Drops the oldest heartbeats until the queue fits its bound (inventories never go).
fn enforce_bound(tx: &Transaction<'_>, max_bytes: u64) -> anyhow::Result<()> {
    let total: i64 = tx.query_row("SELECT COALESCE(SUM(bytes), 0) FROM messages", [], |r| {
        r.get(0)
    })?;
    let mut excess = total - i64::try_from(max_bytes).unwrap_or(i64::MAX);
    if excess <= 0 {
        return Ok(());
    }
    let mut cutoff = None;
    let mut dropped = 0u64;
    {
        let mut stmt =
            tx.prepare("SELECT seq, bytes FROM messages WHERE kind = 'heartbeat' ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if excess <= 0 {
                break;
            }
            excess -= row.get::<_, i64>(1)?;
            cutoff = Some(row.get::<_, i64>(0)?);
            dropped += 1;
        }
    }
    if let Some(cutoff) = cutoff {
        tx.execute(
            "DELETE FROM messages WHERE kind = 'heartbeat' AND seq <= ?1",
            [cutoff],
        )?;
        let before: u64 = get(tx, keys::DROPPED_HEARTBEATS)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        set(
            tx,
            keys::DROPPED_HEARTBEATS,
            &(before + dropped).to_string(),
        )?;
    }
    Ok(())
}
