//! Agent metrics history: raw samples in `endpoint_raw_samples` (in the order they arrive),
//! their rollups in `endpoint_metrics` (by endpoint), and the rollup marks in
//! `metric_rollups`.
//!
//! Reads for people are scoped by a grant through the endpoint's client. The writers
//! ([`insert_samples`]) and the rollup job's functions are unscoped: the ingest has already
//! identified the agent, and the job works on every endpoint.

use crate::query::{int, opt_int, parsed, text, ts, Sql};
use crate::{Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::BTreeMap;
use tandem_domain::authz::Grant;
use tandem_domain::metrics::{Sample, Tier};
use tandem_domain::{EndpointId, Timestamp};

/// Rows per INSERT statement (11 values each, well under both databases' limits).
const ROWS_PER_INSERT: usize = 64;

/// The table a tier's rows live in: raw samples are appended to a table of their own, so a
/// group commit of heartbeats fills a few pages at its end instead of one page per endpoint.
fn table(tier: Tier) -> &'static str {
    match tier {
        Tier::Raw => "endpoint_raw_samples",
        _ => "endpoint_metrics",
    }
}

/// The condition that picks a tier's rows out of its table (`m` is the table's alias), after
/// another condition.
fn and_tier(q: &mut Sql, tier: Tier) -> &mut Sql {
    match tier {
        Tier::Raw => q,
        _ => q.push(" AND m.tier = ").int(tier.code()),
    }
}

/// Writes samples. A rollup that already exists (same endpoint, tier and instant) is left as
/// it is, so writing the same rollup twice is harmless; raw samples are written only for a
/// check-in just accepted, so they are appended as they are.
pub async fn insert_samples(
    c: impl Into<crate::Conn<'_>>,
    tier: Tier,
    rows: &[(EndpointId, &Sample)],
) -> Result<()> {
    let mut c = c.into();
    for chunk in crate::query::pow2_chunks(rows, ROWS_PER_INSERT) {
        let mut q = Sql::new("INSERT INTO ");
        q.push(table(tier)).push(" (endpoint_id, ");
        if tier != Tier::Raw {
            q.push("tier, ");
        }
        q.push("at, samples, cpu, cpu_max, mem, mem_max, load1, disks) VALUES ");
        for (i, (id, s)) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            let disks =
                serde_json::to_string(&s.disks).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            q.push("(").text(id.to_string()).push(", ");
            if tier != Tier::Raw {
                q.int(tier.code()).push(", ");
            }
            q.int(s.at.0)
                .push(", ")
                .int(s.samples)
                .push(", ")
                .opt_int(s.cpu)
                .push(", ")
                .opt_int(s.cpu_max)
                .push(", ")
                .opt_int(s.mem)
                .push(", ")
                .opt_int(s.mem_max)
                .push(", ")
                .opt_int(s.load1)
                .push(", ")
                .text(disks)
                .push(")");
        }
        if tier != Tier::Raw {
            q.push(" ON CONFLICT (endpoint_id, tier, at) DO NOTHING");
        }
        c.execute(&q).await?;
    }
    Ok(())
}

const COLUMNS: &str = "m.endpoint_id, m.at, m.samples, m.cpu, m.cpu_max, m.mem, m.mem_max, \
    m.load1, m.disks";

/// One endpoint's samples of `tier` at or after `from`, oldest first, if the grant reaches
/// the endpoint's client (otherwise none).
pub async fn endpoint_samples(
    c: &mut AnyConnection,
    grant: &Grant,
    id: EndpointId,
    tier: Tier,
    from: Timestamp,
) -> Result<Vec<Sample>> {
    let mut q = Sql::new("SELECT ");
    q.push(COLUMNS)
        .push(" FROM ")
        .push(table(tier))
        .push(" m WHERE m.endpoint_id = ")
        .text(id.to_string());
    and_tier(&mut q, tier)
        .push(" AND m.at >= ")
        .int(from.0)
        .push(" AND EXISTS (SELECT 1 FROM endpoints e WHERE e.id = m.endpoint_id AND ")
        .scope("e.client_id", grant)
        .push(") ORDER BY m.at");
    q.fetch_all(c)
        .await?
        .iter()
        .map(|r| sample(r).map(|(_, s)| s))
        .collect()
}

/// Every endpoint's samples of `tier` in `[from, to)`, by endpoint then instant (for tests;
/// the rollup job reads with [`for_each_between`]).
pub async fn samples_between(
    c: &mut AnyConnection,
    tier: Tier,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<(EndpointId, Sample)>> {
    let mut out = Vec::new();
    for_each_between(c, tier, from, to, |id, s| out.push((id, s))).await?;
    out.sort_by_key(|(id, s)| (*id, s.at));
    Ok(out)
}

/// Calls `f` with every endpoint's samples of `tier` in `[from, to)`, in no particular
/// order, as the rows come: a whole fleet's window is never held in memory at once (for the
/// rollup job; unscoped). Returns how many there were.
pub async fn for_each_between(
    c: &mut AnyConnection,
    tier: Tier,
    from: Timestamp,
    to: Timestamp,
    mut f: impl FnMut(EndpointId, Sample),
) -> Result<u64> {
    use futures_util::TryStreamExt;
    let mut q = Sql::new("SELECT ");
    q.push(COLUMNS)
        .push(" FROM ")
        .push(table(tier))
        .push(" m WHERE m.at >= ")
        .int(from.0);
    and_tier(&mut q, tier).push(" AND m.at < ").int(to.0);
    let text = q.text_for(c);
    let mut rows = q.query(&text).fetch(c);
    let mut n = 0;
    while let Some(r) = rows.try_next().await? {
        let (id, s) = sample(&r)?;
        f(id, s);
        n += 1;
    }
    Ok(n)
}

/// The oldest instant of `tier` at or after `from`, if any.
pub async fn first_at(
    c: &mut AnyConnection,
    tier: Tier,
    from: Timestamp,
) -> Result<Option<Timestamp>> {
    let mut q = Sql::new("SELECT MIN(m.at) AS first FROM ");
    q.push(table(tier)).push(" m WHERE m.at >= ").int(from.0);
    let r = and_tier(&mut q, tier).fetch_optional(c).await?;
    match r {
        Some(r) => Ok(opt_int(&r, "first")?.map(Timestamp)),
        None => Ok(None),
    }
}

/// Up to where the rollups of `tier` are written (exclusive).
pub async fn rollup_mark(c: &mut AnyConnection, tier: Tier) -> Result<Timestamp> {
    let r = Sql::new("SELECT done_through FROM metric_rollups WHERE tier = ")
        .int(tier.code())
        .fetch_optional(c)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("no rollup mark for tier {}", tier.code())))?;
    ts(&r, "done_through")
}

/// Moves the mark of `tier` from `old` to `new`, only if it is still at `old`. Returns
/// whether it moved: when two servers race for the same window, one wins and the other
/// leaves it (on PostgreSQL the row lock makes the loser wait for the winner's commit). Run
/// it once the window's rollups are written: readers count rollups only below the mark.
pub async fn claim_rollup(
    c: &mut AnyConnection,
    tier: Tier,
    old: Timestamp,
    new: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE metric_rollups SET done_through = ")
        .int(new.0)
        .push(" WHERE tier = ")
        .int(tier.code())
        .push(" AND done_through = ")
        .int(old.0)
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// Deletes the oldest samples of `tier` older than `before`, about `limit` of them (all those
/// at the instant of the `limit`-th oldest, so ties go together): one transaction's worth,
/// whatever the size of the fleet. Returns how many, and whether more may be left — call
/// again (in a new transaction) until it says no.
pub async fn prune(
    c: &mut AnyConnection,
    tier: Tier,
    before: Timestamp,
    limit: u32,
) -> Result<(u64, bool)> {
    let mut q = Sql::new("SELECT m.at FROM ");
    q.push(table(tier)).push(" m WHERE m.at < ").int(before.0);
    and_tier(&mut q, tier)
        .push(" ORDER BY m.at LIMIT 1 OFFSET ")
        .int(i64::from(limit.max(1) - 1));
    let cut = match q.fetch_optional(c).await? {
        Some(r) => Some(ts(&r, "at")?),
        None => None,
    };
    let mut q = Sql::new("DELETE FROM ");
    q.push(table(tier));
    match cut {
        Some(cut) => q.push(" WHERE at <= ").int(cut.0),
        None => q.push(" WHERE at < ").int(before.0),
    };
    if tier != Tier::Raw {
        q.push(" AND tier = ").int(tier.code());
    }
    Ok((q.execute(c).await?, cut.is_some()))
}

/// How many rows each tier holds (for tests and the operator).
pub async fn count_by_tier(c: &mut AnyConnection) -> Result<BTreeMap<i64, i64>> {
    let rows = Sql::new(
        "SELECT CAST(0 AS BIGINT) AS tier, COUNT(*) AS n FROM endpoint_raw_samples \
         UNION ALL SELECT tier, COUNT(*) AS n FROM endpoint_metrics GROUP BY tier",
    )
    .fetch_all(c)
    .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        // A tier with no rows is left out, as GROUP BY leaves it out.
        let n = int(&r, "n")?;
        if n > 0 {
            out.insert(int(&r, "tier")?, n);
        }
    }
    Ok(out)
}

fn sample(r: &AnyRow) -> Result<(EndpointId, Sample)> {
    let disks: BTreeMap<String, i64> = serde_json::from_str(&text(r, "disks")?)
        .map_err(|e| StoreError::Corrupt(format!("metrics disks: {e}")))?;
    Ok((
        parsed(r, "endpoint_id")?,
        Sample {
            at: ts(r, "at")?,
            samples: int(r, "samples")?,
            cpu: opt_int(r, "cpu")?,
            cpu_max: opt_int(r, "cpu_max")?,
            mem: opt_int(r, "mem")?,
            mem_max: opt_int(r, "mem_max")?,
            load1: opt_int(r, "load1")?,
            disks,
        },
    ))
}

/// Whether the endpoint exists, is not retired, and the grant reaches its client.
pub async fn endpoint_visible(
    c: &mut AnyConnection,
    grant: &Grant,
    id: EndpointId,
) -> Result<bool> {
    let mut q = Sql::new("SELECT id FROM endpoints WHERE retired_at IS NULL AND id = ");
    q.text(id.to_string())
        .push(" AND ")
        .scope("client_id", grant);
    Ok(q.fetch_optional(c).await?.is_some())
}
