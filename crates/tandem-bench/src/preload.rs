//! `ingest --preload`: a fleet inserted straight into the server's database, so that a
//! million enrolled endpoints exist in minutes rather than the ~45 minutes a million
//! enrollments through one token take (each is its own commit, with its audit entry).
//!
//! The rows are what an enrollment writes to `endpoints` — the enrollment token's client,
//! site and id, the agent's public key, host name, OS, architecture, version and time — with
//! the ids and keys `tandem_agent::simulate::fleet::preloaded_identity` makes from the seed,
//! so `tandem-agent simulate --preloaded` with the same seed speaks for them. What the bench
//! skips, and says so in its report: the enrollment's audit entry and the token's use count.
//! The endpoints have no inventory until they send one (a full inventory is ~100 KiB; a
//! million of them would not fit on the machines this runs on).

use std::str::FromStr as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tandem_agent::identity::public_key_base64;
use tandem_agent::simulate::fleet::{preloaded_identity, SyntheticHost};
use tandem_domain::{EndpointId, Timestamp};
use tandem_store::endpoints::{enrollment_token_by_hash, insert_endpoint, NewEndpoint};

/// Rows per transaction.
const ROWS_PER_TX: usize = 10_000;

/// One endpoint's row, made off the async runtime (deriving a key is ~20 µs).
struct Row {
    id: EndpointId,
    public_key: String,
    hostname: String,
}

/// What preloading took.
#[derive(Clone, Copy, Debug)]
pub struct Preloaded {
    pub rows: u64,
    pub secs: f64,
}

/// Inserts `count` endpoints of the fleet made from `seed` into the database at `db_url`,
/// enrolled with the token whose secret is `secret`, showing progress.
pub async fn preload(db_url: &str, secret: &str, count: u64, seed: u64) -> Result<Preloaded> {
    let store = tandem_store::Store::open(db_url, Default::default())
        .await
        .with_context(|| format!("cannot open the server's database {db_url}"))?;
    let token = {
        let mut r = store.read().await?;
        enrollment_token_by_hash(&mut r, &tandem_app::sha256_hex(secret))
            .await?
            .context("the enrollment token is not in the database")?
    };
    // Rows are made on a thread of their own, a few chunks ahead of the inserts.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Row>>(4);
    let maker = std::thread::spawn(move || -> Result<()> {
        let mut chunk = Vec::with_capacity(ROWS_PER_TX);
        for index in 0..count {
            let (id, key) = preloaded_identity(seed, index);
            chunk.push(Row {
                id: EndpointId::from_str(&id).map_err(|e| anyhow::anyhow!("id {id}: {e}"))?,
                public_key: public_key_base64(&key),
                hostname: SyntheticHost::new(seed, index).hostname(),
            });
            if chunk.len() == ROWS_PER_TX || index + 1 == count {
                if tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                    break;
                }
                chunk.reserve(ROWS_PER_TX);
            }
        }
        Ok(())
    });
    let bar =
        indicatif::ProgressBar::new(count).with_style(indicatif::ProgressStyle::with_template(
            "  preloading {pos}/{len} endpoints [{elapsed}, {per_sec}, {eta} left]",
        )?);
    bar.enable_steady_tick(Duration::from_millis(500));
    let started = Instant::now();
    let mut rows = 0;
    while let Some(chunk) = rx.recv().await {
        let at = Timestamp::now();
        let mut w = store.write().await?;
        for row in &chunk {
            insert_endpoint(
                &mut w,
                &NewEndpoint {
                    id: row.id,
                    token: &token,
                    public_key: &row.public_key,
                    hostname: &row.hostname,
                    os_family: "linux",
                    arch: "x86_64",
                    agent_version: tandem_agent::AGENT_VERSION,
                    at,
                },
            )
            .await?;
        }
        w.commit().await?;
        rows += chunk.len() as u64;
        bar.set_position(rows);
    }
    bar.finish_and_clear();
    maker
        .join()
        .map_err(|_| anyhow::anyhow!("the preload thread panicked"))??;
    store.close().await;
    Ok(Preloaded {
        rows,
        secs: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_app::{App, Policy};

    /// The rows preloaded are the ones `simulate --preloaded` speaks for: each endpoint's id
    /// and public key are those the simulator derives from the same seed and index.
    #[tokio::test]
    async fn preloaded_rows_carry_the_simulators_identities() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db").display().to_string();
        let store = tandem_store::Store::open(&db, Default::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let app = App::new(store.clone(), Policy::default());
        let token =
            crate::checks::bench_enrollment_token(&app, &tandem_app::sha256_hex("the secret"))
                .await
                .unwrap();
        // More than one transaction's worth, not a multiple of it.
        let n = ROWS_PER_TX as u64 + 7;
        let done = preload(&db, "the secret", n, 5).await.unwrap();
        assert_eq!(done.rows, n);
        let mut r = store.read().await.unwrap();
        for index in [0, 1, ROWS_PER_TX as u64, n - 1] {
            let (id, key) = preloaded_identity(5, index);
            let agent = tandem_store::endpoints::agent(&mut r, EndpointId::from_str(&id).unwrap())
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("endpoint {index} ({id}) not preloaded"));
            assert_eq!(agent.public_key, public_key_base64(&key));
            assert_eq!(agent.client_id, token.client_id);
        }
        let (beyond, _) = preloaded_identity(5, n);
        let absent = tandem_store::endpoints::agent(&mut r, EndpointId::from_str(&beyond).unwrap());
        assert!(absent.await.unwrap().is_none());
        // A secret no token has is refused before anything is written.
        let err = preload(&db, "another secret", 1, 6).await.unwrap_err();
        assert!(format!("{err:#}").contains("not in the database"));
        drop(r);
        store.close().await;
    }
}
