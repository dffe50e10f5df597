//! Group commit for agent check-ins.
//!
//! A commit costs a disk flush (SQLite with `synchronous=FULL`) or a round trip and a WAL
//! flush (PostgreSQL): a few thousand a second at best. Check-ins arrive by the thousand every
//! second, so they are written together: one task takes every check-in that is waiting, writes
//! them all in one transaction, and answers each only after that commit. Nobody waits on a
//! timer — while one batch commits, the next one gathers.

use crate::{Error, Result};
use tandem_domain::fleet::Change;
use tandem_domain::metrics::Tier;
use tandem_domain::Timestamp;
use tandem_store::endpoints::{self as store, Agent, CheckinUpdate};
use tandem_store::Store;
use tokio::sync::{mpsc, oneshot};

/// The most check-ins written in one transaction.
const MAX_BATCH: usize = 512;

/// One check-in, ready to be written.
pub(crate) struct Checkin {
    pub(crate) agent: Agent,
    pub(crate) update: CheckinUpdate,
    pub(crate) events: Vec<(Timestamp, Change)>,
}

struct Job {
    checkin: Checkin,
    /// `Ok(true)` once committed; `Ok(false)` if another check-in of the agent came first.
    reply: oneshot::Sender<Result<bool>>,
}

/// The handle check-ins are sent to.
#[derive(Clone)]
pub(crate) struct Ingest {
    jobs: mpsc::Sender<Job>,
}

impl Ingest {
    /// Starts the writer task on the current runtime.
    pub(crate) fn start(store: Store) -> Ingest {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 8);
        tokio::spawn(writer(store, rx));
        Ingest { jobs: tx }
    }

    /// Writes a check-in with others; answers after the commit.
    pub(crate) async fn write(&self, checkin: Checkin) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { checkin, reply })
            .await
            .map_err(|_| Error::Internal("the check-in writer stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("the check-in writer stopped".into()))?
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        match write_batch(&store, &jobs).await {
            Ok(written) => {
                for (job, ok) in jobs.into_iter().zip(written) {
                    let _ = job.reply.send(Ok(ok));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, checkins = jobs.len(), "writing check-ins failed");
                for job in jobs {
                    let _ = job.reply.send(Err(Error::Internal(
                        "the check-in could not be stored; it will be retried".into(),
                    )));
                }
            }
        }
    }
}

/// Writes every job in one transaction; returns which were applied.
///
/// Heartbeats (no inventory, no timeline entry; the first check-in of each agent in the
/// batch) are written with a few multi-row statements; the rest one by one.
async fn write_batch(store: &Store, jobs: &[Job]) -> Result<Vec<bool>> {
    let mut w = store.write().await?;
    let mut written = vec![false; jobs.len()];
    let mut seen = std::collections::HashSet::with_capacity(jobs.len());
    let (bulk, one_by_one): (Vec<usize>, Vec<usize>) = (0..jobs.len()).partition(|&i| {
        let c = &jobs[i].checkin;
        seen.insert(c.agent.id) && c.update.inventory.is_none() && c.events.is_empty()
    });
    let rows: Vec<_> = bulk
        .iter()
        .map(|&i| {
            let c = &jobs[i].checkin;
            store::HeartbeatRow {
                id: c.agent.id,
                expected_last_seq: c.agent.last_seq,
                update: &c.update,
            }
        })
        .collect();
    for (&i, ok) in bulk
        .iter()
        .zip(store::record_heartbeats(&mut w, &rows).await?)
    {
        written[i] = ok;
    }
    for i in one_by_one {
        let c = &jobs[i].checkin;
        let ok = store::record_checkin(
            &mut w,
            c.agent.id,
            c.agent.client_id,
            c.agent.last_seq,
            &c.update,
        )
        .await?;
        if ok {
            for (at, change) in &c.events {
                let one = std::slice::from_ref(change);
                store::insert_events(&mut w, c.agent.id, c.agent.client_id, *at, one).await?;
            }
        }
        written[i] = ok;
    }
    // The metrics samples of every applied check-in, in a few multi-row statements.
    let samples: Vec<_> = jobs
        .iter()
        .zip(&written)
        .filter(|(_, ok)| **ok)
        .flat_map(|(j, _)| {
            j.checkin
                .update
                .samples
                .iter()
                .map(|s| (j.checkin.agent.id, s))
        })
        .collect();
    tandem_store::metrics::insert_samples(&mut w, Tier::Raw, &samples).await?;
    w.commit().await?;
    Ok(written)
}
