//! The databases' own write ceilings, measured with sqlx directly (no server, no `Any` driver):
//! rows shaped like a heartbeat per second in 1,000-row batches, single-row commits per second,
//! and updates by key of endpoint rows — without and with an inventory in the row, as the
//! server's `endpoints` rows carry one — which is what a heartbeat does there.
//!
//! SQLite is set up as the server sets it up: WAL, `synchronous = FULL`. PostgreSQL runs with
//! whatever the server on 127.0.0.1 is configured with; its durability settings are reported.

use anyhow::{Context, Result};
use sqlx::{Connection, Executor};
use std::path::Path;
use std::time::{Duration, Instant};

/// Rows per transaction (or per statement, per COPY) in the batched measurements.
pub const BATCH: usize = 1000;
/// Endpoint rows in the update measurements.
pub const UPDATE_ROWS: usize = 2000;

const INSERT_ONE: &str =
    "INSERT INTO heartbeats (endpoint_id, seen_at, seq, heartbeat) VALUES ($1, $2, $3, $4)";
const CREATE_HEARTBEATS: &str = "CREATE TABLE heartbeats (endpoint_id TEXT NOT NULL, seen_at BIGINT NOT NULL, seq BIGINT NOT NULL, heartbeat TEXT NOT NULL)";

/// One measured ceiling.
#[derive(Clone, Debug)]
pub struct Ceiling {
    pub what: String,
    pub rows: u64,
    pub secs: f64,
    /// Rows (or commits) per second.
    pub rate: f64,
}

impl Ceiling {
    fn new(what: impl Into<String>, rows: u64, t: Duration) -> Ceiling {
        let secs = t.as_secs_f64();
        Ceiling {
            what: what.into(),
            rows,
            secs,
            rate: if secs > 0.0 { rows as f64 / secs } else { 0.0 },
        }
    }
}

/// A heartbeat as an agent sends it (about 400 bytes of JSON), varied by `i`.
pub fn heartbeat_json(i: u64) -> String {
    serde_json::json!({
        "uptime_seconds": 86_400 + i,
        "cpu_percent": (i % 1000) as f64 / 10.0,
        "memory_total_bytes": 8_589_934_592u64,
        "memory_available_bytes": 4_294_967_296u64 - (i % 1_000_000) * 4096,
        "swap_total_bytes": 2_147_483_648u64,
        "swap_free_bytes": 2_147_483_648u64 - (i % 1000) * 4096,
        "load1": (i % 300) as f64 / 100.0,
        "load5": (i % 200) as f64 / 100.0,
        "load15": (i % 100) as f64 / 100.0,
        "disks": [
            {"mount": "/", "filesystem": "ext4", "total_bytes": 107_374_182_400u64, "free_bytes": 53_687_091_200u64 - i},
            {"mount": "/boot/efi", "filesystem": "vfat", "total_bytes": 536_866_816u64, "free_bytes": 530_000_000u64}
        ]
    })
    .to_string()
}

fn endpoint_id(i: u64) -> String {
    format!("0190c3d2-0000-7000-8000-{i:012x}")
}

/// Filler standing in for an inventory document of `kib` KiB (empty for 0).
fn inventory_filler(kib: usize, i: u64) -> String {
    if kib == 0 {
        return String::new();
    }
    let unit = format!("{{\"name\":\"lib{i:08}\",\"version\":\"1.2.3-4\",\"arch\":\"amd64\"}},");
    unit.repeat(kib * 1024 / unit.len() + 1)
}

/// Inserts `BATCH` heartbeat rows numbered from `$from` in one statement (one transaction).
macro_rules! multi_row_insert {
    ($db:ty, $conn:expr, $from:expr) => {{
        let from: u64 = $from;
        let mut qb = sqlx::QueryBuilder::<$db>::new(
            "INSERT INTO heartbeats (endpoint_id, seen_at, seq, heartbeat) ",
        );
        qb.push_values(from..from + BATCH as u64, |mut b, i| {
            b.push_bind(endpoint_id(i % 100_000))
                .push_bind(i as i64)
                .push_bind(i as i64)
                .push_bind(heartbeat_json(i));
        });
        qb.build().execute(&mut *$conn).await?;
    }};
}

/// `BATCH` single-row INSERT statements in one transaction, rows numbered from `$from`.
macro_rules! per_row_insert {
    ($conn:expr, $from:expr) => {{
        let from: u64 = $from;
        let mut tx = $conn.begin().await?;
        for i in from..from + BATCH as u64 {
            sqlx::query(INSERT_ONE)
                .bind(endpoint_id(i % 100_000))
                .bind(i as i64)
                .bind(i as i64)
                .bind(heartbeat_json(i))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }};
}

/// Updates by key, as the server does for a heartbeat (`last_seen_at`, `last_seq`, `heartbeat`
/// where `id` and the expected `last_seq` match), `BATCH` per transaction, over `UPDATE_ROWS`
/// endpoint rows that each carry an inventory of `$kib` KiB (none for 0). Evaluates to a
/// [`Ceiling`].
macro_rules! update_ceiling {
    ($db:ty, $conn:expr, $secs:expr, $kib:expr) => {{
        let (secs, kib): (Duration, usize) = ($secs, $kib);
        let table = format!("endpoints_{kib}k");
        $conn
            .execute(sqlx::raw_sql(&format!(
                "CREATE TABLE {table} (id TEXT PRIMARY KEY, last_seen_at BIGINT, last_seq BIGINT NOT NULL, heartbeat TEXT, inventory TEXT)"
            )))
            .await?;
        for chunk in 0..(UPDATE_ROWS / 100) as u64 {
            let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                "INSERT INTO {table} (id, last_seen_at, last_seq, heartbeat, inventory) "
            ));
            qb.push_values(chunk * 100..(chunk + 1) * 100, |mut b, i| {
                b.push_bind(endpoint_id(i))
                    .push_bind(0i64)
                    .push_bind(0i64)
                    .push_bind(heartbeat_json(i))
                    .push_bind(inventory_filler(kib, i));
            });
            qb.build().execute(&mut $conn).await?;
        }
        let update = format!(
            "UPDATE {table} SET last_seen_at = $1, last_seq = $2, heartbeat = $3 WHERE id = $4 AND last_seq = $5"
        );
        let mut seq = vec![0i64; UPDATE_ROWS];
        let (mut rows, t) = (0u64, Instant::now());
        while t.elapsed() < secs {
            let mut tx = $conn.begin().await?;
            for _ in 0..BATCH {
                let i = (rows % UPDATE_ROWS as u64) as usize;
                let done = sqlx::query(&update)
                    .bind(rows as i64)
                    .bind(seq[i] + 1)
                    .bind(heartbeat_json(rows))
                    .bind(endpoint_id(i as u64))
                    .bind(seq[i])
                    .execute(&mut *tx)
                    .await?;
                anyhow::ensure!(done.rows_affected() == 1, "the update found no row");
                seq[i] += 1;
                rows += 1;
            }
            tx.commit().await?;
        }
        Ceiling::new(
            if kib == 0 {
                format!("UPDATE by key, one statement per row, {BATCH}-row transactions, {UPDATE_ROWS} endpoint rows without inventory")
            } else {
                format!("UPDATE by key, one statement per row, {BATCH}-row transactions, {UPDATE_ROWS} endpoint rows each carrying a {kib} KiB inventory (as the server's rows do)")
            },
            rows,
            t.elapsed(),
        )
    }};
}

pub async fn sqlite(dir: &Path, secs: Duration, inventory_kib: usize) -> Result<Vec<Ceiling>> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("ceiling.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut c = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .context("cannot open the SQLite ceiling database")?;
    c.execute(CREATE_HEARTBEATS).await?;
    let mode = "WAL, synchronous=FULL";
    let mut out = Vec::new();

    let (mut rows, t) = (0u64, Instant::now());
    while t.elapsed() < secs {
        multi_row_insert!(sqlx::Sqlite, &mut c, rows);
        rows += BATCH as u64;
    }
    out.push(Ceiling::new(
        format!("multi-row INSERT, {BATCH} rows per statement and transaction ({mode})"),
        rows,
        t.elapsed(),
    ));

    let (mut rows, t) = (0u64, Instant::now());
    while t.elapsed() < secs {
        per_row_insert!(c, rows);
        rows += BATCH as u64;
    }
    out.push(Ceiling::new(
        format!("INSERT, one statement per row, {BATCH}-row transactions ({mode})"),
        rows,
        t.elapsed(),
    ));

    let (mut n, t) = (0u64, Instant::now());
    while t.elapsed() < secs {
        sqlx::query(INSERT_ONE)
            .bind(endpoint_id(n % 100_000))
            .bind(n as i64)
            .bind(n as i64)
            .bind(heartbeat_json(n))
            .execute(&mut c)
            .await?;
        n += 1;
    }
    out.push(Ceiling::new(
        format!("INSERT, one row per commit ({mode})"),
        n,
        t.elapsed(),
    ));

    for kib in [0, inventory_kib] {
        out.push(update_ceiling!(sqlx::Sqlite, c, secs, kib));
    }
    c.close().await?;
    Ok(out)
}

/// PostgreSQL's durability settings (and whether autovacuum runs: rows rewritten by every
/// check-in rely on it, or on pages with room to prune, for their dead versions), for the
/// report.
pub async fn postgres_settings(url: &str) -> Result<String> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    let mut parts = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "full_page_writes",
        "shared_buffers",
        "max_connections",
        "autovacuum",
    ] {
        let (v,): (String,) = sqlx::query_as(&format!("SHOW {name}"))
            .fetch_one(&mut c)
            .await?;
        parts.push(format!("{name}={v}"));
    }
    c.close().await?;
    Ok(parts.join(", "))
}

/// `url` names a database the bench made for this and drops afterwards.
pub async fn postgres(url: &str, secs: Duration, inventory_kib: usize) -> Result<Vec<Ceiling>> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    c.execute(CREATE_HEARTBEATS).await?;
    let mut out = Vec::new();

    let (mut rows, t) = (0u64, Instant::now());
    while t.elapsed() < secs {
        multi_row_insert!(sqlx::Postgres, &mut c, rows);
        rows += BATCH as u64;
    }
    out.push(Ceiling::new(
        format!("multi-row INSERT, {BATCH} rows per statement and commit"),
        rows,
        t.elapsed(),
    ));

    let (mut rows, t) = (0u64, Instant::now());
    while t.elapsed() < secs {
        let mut text = String::with_capacity(BATCH * 500);
        for i in rows..rows + BATCH as u64 {
            // Text format: tab-separated; the JSON has no tabs, newlines or backslashes.
            text.push_str(&format!(
                "{}\t{i}\t{i}\t{}\n",
                endpoint_id(i % 100_000),
                heartbeat_json(i)
            ));
        }
        let mut copy = c
            .copy_in_raw("COPY heartbeats (endpoint_id, seen_at, seq, heartbeat) FROM STDIN")
            .await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
        rows += BATCH as u64;
    }
    out.push(Ceiling::new(
        format!("COPY, {BATCH} rows per COPY and commit"),
        rows,
        t.elapsed(),
    ));

    let (mut rows, t) = (0u64, Instant::now());
    while t.elapsed() < secs {
        per_row_insert!(c, rows);
        rows += BATCH as u64;
    }
    out.push(Ceiling::new(
        format!("INSERT, one statement per row, {BATCH}-row transactions"),
        rows,
        t.elapsed(),
    ));

    let (mut n, t) = (0u64, Instant::now());
    while t.elapsed() < secs {
        sqlx::query(INSERT_ONE)
            .bind(endpoint_id(n % 100_000))
            .bind(n as i64)
            .bind(n as i64)
            .bind(heartbeat_json(n))
            .execute(&mut c)
            .await?;
        n += 1;
    }
    out.push(Ceiling::new(
        "INSERT, one row per commit, 1 connection",
        n,
        t.elapsed(),
    ));

    // Single-row commits, 16 connections at once (PostgreSQL flushes their commits together).
    let t = Instant::now();
    let deadline = t + secs;
    let tasks: Vec<_> = (0..16u64)
        .map(|k| {
            let url = url.to_string();
            tokio::spawn(async move {
                let mut c = sqlx::PgConnection::connect(&url).await?;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let i = k * 10_000_000 + n;
                    sqlx::query(INSERT_ONE)
                        .bind(endpoint_id(i % 100_000))
                        .bind(i as i64)
                        .bind(i as i64)
                        .bind(heartbeat_json(i))
                        .execute(&mut c)
                        .await?;
                    n += 1;
                }
                c.close().await?;
                Ok::<u64, anyhow::Error>(n)
            })
        })
        .collect();
    let mut n = 0;
    for task in tasks {
        n += task.await??;
    }
    out.push(Ceiling::new(
        "INSERT, one row per commit, 16 connections",
        n,
        t.elapsed(),
    ));

    for kib in [0, inventory_kib] {
        out.push(update_ceiling!(sqlx::Postgres, c, secs, kib));
    }
    c.close().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_look_like_heartbeats() {
        let h = heartbeat_json(7);
        let v: serde_json::Value = serde_json::from_str(&h).unwrap();
        assert_eq!(v["disks"][0]["mount"], "/");
        assert!(h.len() > 300 && h.len() < 600, "{}", h.len());
        assert!(!h.contains('\t') && !h.contains('\\'));
        assert!(inventory_filler(4, 1).len() >= 4096);
        assert!(inventory_filler(0, 1).is_empty());
    }

    #[tokio::test]
    async fn measures_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let c = sqlite(dir.path(), Duration::from_millis(50), 1)
            .await
            .unwrap();
        assert_eq!(c.len(), 5);
        assert!(c.iter().all(|c| c.rows > 0 && c.rate > 0.0), "{c:?}");
    }
}
