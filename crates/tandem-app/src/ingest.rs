//! Group commit for agent check-ins.
//!
//! A commit costs a disk flush (SQLite with `synchronous=FULL`) or a round trip and a WAL
//! flush (PostgreSQL): a few thousand a second at best. Check-ins arrive by the thousand every
//! second, so they are written together: one task takes every check-in that is waiting, writes
//! them all in one transaction, and answers each only after that commit. Nobody waits on a
//! timer — while one batch commits, the next one gathers.
//!
//! The writer runs on a thread of its own ([`crate::writer_thread`]), with a runtime and a
//! write connection of its own. On the shared runtime each of its statements, once answered,
//! waited for its turn behind every request task ready at that moment — at a thousand
//! connections, tens of milliseconds per batch in which the CPUs had nothing to write and
//! the requests nothing to do but wait for it. On SQLite that connection is a plain one run on the writer's thread
//! ([`tandem_store::DirectWriter`]), not sqlx's, whose every statement is a round trip to a
//! worker thread of its own. On SQLite it also goes first for the store's one writer lock
//! ([`tandem_store::writing_first`]): it waits for the holder and at most one other writer
//! queued before it, not for every background job queued meanwhile.

use crate::{Error, Result};
use tandem_domain::fleet::Change;
use tandem_domain::metrics::Tier;
use tandem_domain::{EndpointId, Timestamp};
use tandem_store::endpoints::{self as store, Agent, CheckinUpdate};
use tandem_store::{Conn, Store};
use tokio::sync::{mpsc, oneshot};

/// The most check-ins written in one transaction.
const MAX_BATCH: usize = 512;

/// One check-in, ready to be written.
pub(crate) struct Checkin {
    pub(crate) agent: Agent,
    pub(crate) update: CheckinUpdate,
    pub(crate) events: Vec<(Timestamp, Change)>,
}

/// Heartbeats of an agent that was not read first (a check-in in a session), written only if
/// every one is new and the endpoint is not retired.
pub(crate) struct NewHeartbeats {
    pub(crate) id: EndpointId,
    /// The lowest sequence number among them.
    pub(crate) first_seq: u64,
    pub(crate) update: CheckinUpdate,
}

enum Work {
    Checkin(Checkin),
    NewHeartbeats(NewHeartbeats),
}

impl Work {
    fn endpoint(&self) -> EndpointId {
        match self {
            Work::Checkin(c) => c.agent.id,
            Work::NewHeartbeats(h) => h.id,
        }
    }
    fn update(&self) -> &CheckinUpdate {
        match self {
            Work::Checkin(c) => &c.update,
            Work::NewHeartbeats(h) => &h.update,
        }
    }
}

struct Job {
    work: Work,
    /// Once committed: `Some(no_inventory)` if written (for a [`Checkin`] always
    /// `Some(false)`: its caller knows), `None` if not — another check-in of the agent came
    /// first, or, for [`NewHeartbeats`], the caller must read the endpoint to know why.
    reply: oneshot::Sender<Result<Option<bool>>>,
}

/// The handle check-ins are sent to.
#[derive(Clone)]
pub(crate) struct Ingest {
    jobs: mpsc::Sender<Job>,
}

impl Ingest {
    /// Starts the writer on a thread of its own; on the current runtime if no thread or
    /// runtime can be had.
    pub(crate) fn start(store: Store) -> Ingest {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 8);
        crate::writer_thread::spawn("tandem-ingest", move |own| {
            tandem_store::writing_first("check-ins", writer(store, rx, own))
        });
        Ingest { jobs: tx }
    }

    /// Writes a check-in with others; answers after the commit whether it was written.
    pub(crate) async fn write(&self, checkin: Checkin) -> Result<bool> {
        Ok(self.send(Work::Checkin(checkin)).await?.is_some())
    }

    /// Writes heartbeats of an agent not read first; answers after the commit `None` if
    /// they were not written, else whether the endpoint has no inventory yet.
    pub(crate) async fn write_new_heartbeats(&self, h: NewHeartbeats) -> Result<Option<bool>> {
        self.send(Work::NewHeartbeats(h)).await
    }

    async fn send(&self, work: Work) -> Result<Option<bool>> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { work, reply })
            .await
            .map_err(|_| Error::Internal("the check-in writer stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("the check-in writer stopped".into()))?
    }
}

/// What the writer writes through: on SQLite a connection on its own thread
/// ([`tandem_store::DirectWriter`]: no hand-off to sqlx's worker thread per statement),
/// otherwise (PostgreSQL, or a writer sharing the request runtime, which must not block)
/// a sqlx write connection of its own.
enum Connection {
    Direct(tandem_store::DirectWriter),
    Sqlx(Store),
}

impl Connection {
    async fn open(store: &Store, may_block: bool) -> Result<Connection> {
        if may_block {
            if let Some(direct) = store.direct_writer() {
                return Ok(Connection::Direct(direct?));
            }
        }
        Ok(Connection::Sqlx(store.with_own_write_connection().await?))
    }

    /// Writes the jobs in one transaction and commits it.
    async fn write(&mut self, jobs: &[Job]) -> Result<Vec<Option<bool>>> {
        match self {
            Connection::Direct(d) => {
                let mut tx = d.begin().await?;
                let written = write_batch(tx.conn(), jobs).await?;
                tx.commit()?;
                Ok(written)
            }
            Connection::Sqlx(store) => {
                let mut w = store.write().await?;
                let written = write_batch((&mut w).into(), jobs).await?;
                w.commit().await?;
                Ok(written)
            }
        }
    }
}

/// `may_block`: the writer has a thread of its own, whose statements may block it.
async fn writer(store: Store, mut rx: mpsc::Receiver<Job>, may_block: bool) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // The writer's connection, opened when the first batch comes, and again after a
    // failure (until then batches are refused, and agents send again).
    let mut own: Option<Connection> = None;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        if own.is_none() {
            own = Connection::open(&store, may_block)
                .await
                .inspect_err(|e| tracing::error!(error = %e, "the check-in writer cannot connect"))
                .ok();
        }
        let result = match &mut own {
            Some(conn) => conn.write(&jobs).await,
            None => Err(Error::Internal("no write connection".into())),
        };
        match result {
            Ok(written) => {
                for (job, ok) in jobs.into_iter().zip(written) {
                    let _ = job.reply.send(Ok(ok));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, checkins = jobs.len(), "writing check-ins failed");
                own = None;
                for job in jobs {
                    let _ = job.reply.send(Err(Error::Internal(
                        "the check-in could not be stored; it will be retried".into(),
                    )));
                }
            }
        }
    }
}

/// Writes every job in the transaction of `w`; returns what became of each (see
/// [`Job::reply`]).
///
/// The first job of each agent in the batch, if it holds only heartbeats, is written with a
/// few multi-row statements (those not read first with one, those read first with another);
/// the rest one by one. A later job of an agent already in the batch is written one by one
/// if it was read first (and then finds the sequence number moved: not written), and not at
/// all otherwise (its caller reads the endpoint and goes the usual way).
async fn write_batch(mut w: Conn<'_>, jobs: &[Job]) -> Result<Vec<Option<bool>>> {
    let mut written = vec![None; jobs.len()];
    let mut seen = std::collections::HashSet::with_capacity(jobs.len());
    let (mut new_beats, mut read_beats, mut one_by_one) = (Vec::new(), Vec::new(), Vec::new());
    for (i, job) in jobs.iter().enumerate() {
        let first = seen.insert(job.work.endpoint());
        match &job.work {
            Work::NewHeartbeats(h) if first => new_beats.push((i, h.first_seq)),
            Work::NewHeartbeats(_) => {}
            Work::Checkin(c) if first && c.update.inventory.is_none() && c.events.is_empty() => {
                read_beats.push((i, c.agent.last_seq))
            }
            Work::Checkin(_) => one_by_one.push(i),
        }
    }
    let rows = |picked: &[(usize, u64)]| -> Vec<store::HeartbeatRow> {
        picked
            .iter()
            .map(|&(i, seq)| store::HeartbeatRow {
                id: jobs[i].work.endpoint(),
                seq,
                update: jobs[i].work.update(),
            })
            .collect()
    };
    let done = store::record_new_heartbeats(&mut w, &rows(&new_beats)).await?;
    for (&(i, _), outcome) in new_beats.iter().zip(done) {
        written[i] = outcome;
    }
    let done = store::record_heartbeats(&mut w, &rows(&read_beats)).await?;
    for (&(i, _), ok) in read_beats.iter().zip(done) {
        written[i] = ok.then_some(false);
    }
    for i in one_by_one {
        let Work::Checkin(c) = &jobs[i].work else {
            continue;
        };
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
        written[i] = ok.then_some(false);
    }
    // The metrics samples of every written check-in, in a few multi-row statements.
    let samples: Vec<_> = jobs
        .iter()
        .zip(&written)
        .filter(|(_, w)| w.is_some())
        .flat_map(|(j, _)| {
            let id = j.work.endpoint();
            j.work.update().samples.iter().map(move |s| (id, s))
        })
        .collect();
    tandem_store::metrics::insert_samples(&mut w, Tier::Raw, &samples).await?;
    Ok(written)
}
