//! Group commit for raising alerts (issue #6).
//!
//! Raising an alert writes the alert (or refreshes the open one with its key), its timeline
//! event, its notification deliveries, its ticket by rule and its audit entry — one
//! transaction. At a thousand alerts a second one commit each is more than the disk (SQLite,
//! `synchronous=FULL`) or the round trips and WAL flushes (PostgreSQL) allow, and on SQLite
//! every raise queues for the one writer lock. So raises go through one writer task, as the
//! agent check-ins do ([`crate::ingest`]): it takes every request that is waiting (at most
//! [`MAX_REQUESTS`]), writes their raises in one transaction with a savepoint each — a raise
//! that fails is rolled back to its savepoint and answered with its own error, the others go
//! on —, commits once, and only then answers each caller. Nobody waits on a timer: while one
//! batch commits, the next one gathers.
//!
//! What does not need the write is done by the caller beforehand, concurrently: checking
//! the input, routing by the scope agreement and asking maintenance windows (needed only for
//! a new alert: a raise that finds no open alert and came without a route is answered
//! [`Written::NeedsRoute`], and the caller routes it and sends it again). The look-up of the
//! open alert with the key is done inside the transaction, so two raises of one key in one
//! batch make one alert, the second refreshing it.

use crate::alert_tickets::TicketRoute;
use crate::alerts::alert_transitioned;
use crate::{Actor, App, Audit, Error, RaiseAlert, Raised, Result};
use serde_json::json;
use tandem_domain::maintenance::{MaintenanceWindow, Occurrence};
use tandem_domain::monitoring::{Alert, AlertState};
use tandem_domain::scope::{Party, Window};
use tandem_domain::{AlertId, Timestamp};
use tandem_store::monitoring as store;
use tandem_store::{StoreError, Write};
use tokio::sync::{mpsc, oneshot};

/// The most requests (one raise each, or an Alertmanager payload's firing alerts) written in
/// one transaction.
pub(crate) const MAX_REQUESTS: usize = 256;

/// Who owns a new alert and whether a maintenance window silences it, decided before the
/// write.
#[derive(Clone, Debug)]
pub(crate) struct Routed {
    pub(crate) owner: Party,
    pub(crate) window: Option<Window>,
    pub(crate) on_shift: bool,
    pub(crate) reason: String,
    pub(crate) hint: Option<String>,
    pub(crate) silence: Option<(MaintenanceWindow, Occurrence)>,
}

/// One raise, checked (key and title trimmed), ready to be written.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pub(crate) actor: Actor,
    pub(crate) raise: RaiseAlert,
    pub(crate) check_kind: Option<String>,
    /// The instant of the raise (fired / last seen).
    pub(crate) now: Timestamp,
    /// Needed only when no alert with the key is open.
    pub(crate) routed: Option<Routed>,
}

/// What the writer did with one raise.
#[derive(Debug)]
pub(crate) enum Written {
    /// Committed.
    Raised(Box<Raised>),
    /// No alert with the key is open and the raise came without a route: route it, send again.
    NeedsRoute,
}

struct Request {
    items: Vec<Prepared>,
    reply: oneshot::Sender<Vec<Result<Written>>>,
}

/// Writer tasks on PostgreSQL. A writer's transaction is a chain of round trips, so several
/// run side by side; each client always goes to the same one (its shard), so raises of one
/// client (and of one key) are never in two concurrent transactions. Their audit entries are linked at commit, so the
/// audit head orders them only for the last moment of each. SQLite has one writer lock: one.
const POSTGRES_WRITERS: usize = 4;

/// The handle raises are sent to.
#[derive(Clone)]
pub(crate) struct AlertWriter {
    shards: Vec<mpsc::Sender<Request>>,
}

impl AlertWriter {
    /// Starts the writer: on SQLite one, on a thread of its own; on PostgreSQL
    /// [`POSTGRES_WRITERS`] tasks on the current runtime.
    pub(crate) fn start(app: App) -> AlertWriter {
        if app.store.backend() == tandem_store::Backend::Sqlite {
            // One writer, on a thread of its own: it holds SQLite's one writer lock, which
            // the agent check-ins wait for, for as short a time as it can (measured with a
            // fleet of 30,000 just enrolled, each raise on the request runtime held it ~11 ms,
            // most of it waiting to be polled again after each statement).
            let (tx, mut rx) = mpsc::channel(MAX_REQUESTS * 4);
            // (It holds the app weakly: the app holds its channel, which ends the thread when
            // the app goes.)
            let app = std::sync::Arc::downgrade(&app.0);
            crate::writer_thread::spawn("tandem-alerts", move |_| {
                tandem_store::writing_as("alerts", async move {
                    while let Some(batch) = next_batch(&mut rx).await {
                        let Some(app) = app.upgrade().map(App) else {
                            return;
                        };
                        write_requests(&app, batch).await;
                    }
                })
            });
            return AlertWriter { shards: vec![tx] };
        }
        // (PostgreSQL connections answer through the runtime that opened them: these stay
        // on the request runtime.)
        let shards = (0..POSTGRES_WRITERS)
            .map(|_| {
                let (tx, rx) = mpsc::channel(MAX_REQUESTS * 4);
                tokio::spawn(tandem_store::writing_as("alerts", writer(app.clone(), rx)));
                tx
            })
            .collect();
        AlertWriter { shards }
    }

    /// The shard of a raise: by client, so one client's raises (and the per-client locks
    /// they may take, such as the next ticket number's) are never in two concurrent
    /// transactions — two shards taking two clients' locks in opposite orders could
    /// deadlock. Different clients still run side by side.
    fn shard(&self, p: &Prepared) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        p.raise.client_id.hash(&mut h);
        (h.finish() % self.shards.len() as u64) as usize
    }

    /// Writes these raises with whatever else is waiting; answers each after the commit of
    /// its transaction, in order.
    pub(crate) async fn write(&self, items: Vec<Prepared>) -> Vec<Result<Written>> {
        let n = items.len();
        let stopped = || Err(Error::Internal("the alert writer stopped".into()));
        // Split by shard, remembering each item's place.
        let mut parts: Vec<(Vec<usize>, Vec<Prepared>)> =
            (0..self.shards.len()).map(|_| Default::default()).collect();
        for (i, p) in items.into_iter().enumerate() {
            let s = self.shard(&p);
            parts[s].0.push(i);
            parts[s].1.push(p);
        }
        let mut waiting = Vec::new();
        for (s, (places, items)) in parts.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let (reply, answer) = oneshot::channel();
            let sent = self.shards[s].send(Request { items, reply }).await.is_ok();
            waiting.push((places, sent.then_some(answer)));
        }
        let mut out: Vec<Option<Result<Written>>> = (0..n).map(|_| None).collect();
        for (places, answer) in waiting {
            let answers = match answer {
                Some(a) => a.await.ok(),
                None => None,
            };
            match answers {
                Some(answers) => {
                    for (i, a) in places.into_iter().zip(answers) {
                        out[i] = Some(a);
                    }
                }
                None => {
                    for i in places {
                        out[i] = Some(stopped());
                    }
                }
            }
        }
        out.into_iter().map(|o| o.unwrap_or_else(stopped)).collect()
    }
}

/// A writer task (PostgreSQL's): writes every batch of waiting requests until every sender
/// has gone.
async fn writer(app: App, mut rx: mpsc::Receiver<Request>) {
    while let Some(batch) = next_batch(&mut rx).await {
        write_requests(&app, batch).await;
    }
}

/// Every request waiting (at most [`MAX_REQUESTS`]), once there is one; `None` when every
/// sender has gone.
async fn next_batch(rx: &mut mpsc::Receiver<Request>) -> Option<Vec<Request>> {
    let mut batch = Vec::with_capacity(MAX_REQUESTS);
    (rx.recv_many(&mut batch, MAX_REQUESTS).await > 0).then_some(batch)
}

/// Writes the raises of `requests` in one transaction and answers each request.
async fn write_requests(app: &App, requests: Vec<Request>) {
    let raises: usize = requests.iter().map(|r| r.items.len()).sum();
    let started = std::time::Instant::now();
    let written = write_batch(app, &requests).await;
    tracing::debug!(
        raises,
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "alert batch written"
    );
    match written {
        Ok(mut answers) => {
            for r in requests.into_iter().rev() {
                let mine = answers.split_off(answers.len() - r.items.len());
                let _ = r.reply.send(mine);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, raises, "writing alerts failed");
            for r in requests {
                let _ = r.reply.send(
                    r.items
                        .iter()
                        .map(|_| {
                            Err(Error::Internal(
                                "the alert could not be stored; send it again".into(),
                            ))
                        })
                        .collect(),
                );
            }
        }
    }
}

/// Writes every raise of every request in one transaction; the outer error is for the
/// transaction itself (begin, savepoints, commit), when nothing is stored.
///
/// First without savepoints, and inserting a new alert without first looking for an open
/// one with its key when the caller found none moments ago (the unique open key still
/// refuses a second): each statement of the writer's transaction waits its turn on the
/// one connection, so a new alert costs three statements instead of eight. If any raise
/// fails — an error, or an open alert with its key after all — nothing of that attempt is
/// kept: the batch is written again with a savepoint per raise, each looked up first, so
/// a failing raise gets its own error and the others are stored.
async fn write_batch(app: &App, requests: &[Request]) -> Result<Vec<Result<Written>>> {
    let items = || requests.iter().flat_map(|r| &r.items);
    if let Some(out) = write_fast(app, items()).await? {
        return Ok(out);
    }
    let mut w = app.store.write().await?;
    let mut out = Vec::new();
    for p in items() {
        out.push(write_one(app, &mut w, p).await?);
    }
    w.commit().await?;
    Ok(out)
}

/// The batch without savepoints; `None` when a raise failed and nothing was stored.
async fn write_fast<'a>(
    app: &App,
    items: impl Iterator<Item = &'a Prepared>,
) -> Result<Option<Vec<Result<Written>>>> {
    let mut w = app.store.write().await?;
    let mut out = Vec::new();
    // Keys inserted by this transaction: a second raise of one is looked up.
    let mut inserted = std::collections::HashSet::new();
    for p in items {
        let key = (p.raise.client_id, p.raise.dedup_key.as_str());
        let look_up = p.routed.is_none() || inserted.contains(&key);
        match app.write_raise(&mut w, p, look_up).await {
            Ok(Some(done)) => {
                if let Written::Raised(r) = &done {
                    if r.new {
                        inserted.insert(key);
                    }
                }
                out.push(Ok(done));
            }
            // Dropping the write rolls it back.
            Ok(None) | Err(_) => return Ok(None),
        }
    }
    w.commit().await?;
    Ok(Some(out))
}

/// One raise under its own savepoint. `Err` only when the transaction itself failed.
async fn write_one(app: &App, w: &mut Write, p: &Prepared) -> Result<Result<Written>> {
    // A second try when another server inserted an open alert with this key meanwhile: the
    // first try is rolled back and the second refreshes theirs.
    for _ in 0..2 {
        let sp = w.savepoint().await?;
        match app.write_raise(w, p, true).await {
            Ok(Some(done)) => {
                w.release(sp).await?;
                return Ok(Ok(done));
            }
            Ok(None) => w.rollback_to(sp).await?,
            Err(e) => {
                w.rollback_to(sp).await?;
                return Ok(Err(e));
            }
        }
    }
    Ok(Err(Error::Conflict(
        "the alert changed while it was raised; try again".into(),
    )))
}

impl App {
    /// The alert writer (group commit), started on first use.
    pub(crate) fn alert_writer(&self) -> &AlertWriter {
        self.alert_writer
            .get_or_init(|| AlertWriter::start(self.clone()))
    }

    /// Writes one raise inside the batch's transaction: refreshes the open alert with its
    /// key, or inserts a new one with its timeline event, notifications, ticket and audit
    /// entry. `None`: another writer inserted an open alert with the key first (the caller
    /// rolls back to the savepoint and tries again). Without `look_up`, a routed raise is
    /// inserted as a new alert straight away (`None` if one with its key is open).
    async fn write_raise(
        &self,
        w: &mut Write,
        p: &Prepared,
        look_up: bool,
    ) -> Result<Option<Written>> {
        let (actor, r, now) = (&p.actor, &p.raise, p.now);
        let open = if look_up || p.routed.is_none() {
            store::open_alert(w, r.client_id, &r.dedup_key).await?
        } else {
            None
        };
        if let Some(mut a) = open {
            let changed = a.summary != r.summary || a.severity != r.severity;
            a.last_seen_at = now;
            if changed {
                a.summary = r.summary.clone();
                a.severity = r.severity;
                store::update_alert(w, &a).await?;
                alert_transitioned(
                    w,
                    &a,
                    actor,
                    now,
                    "updated",
                    format!("Still firing ({}): {}", a.severity.as_str(), a.summary),
                    false,
                )
                .await?;
                // Its ticket, if it has one, hears of it (issue #6).
                self.ticket_on_alert_update(w, actor, &a, now).await?;
            } else {
                store::update_alert(w, &a).await?;
            }
            return Ok(Some(Written::Raised(Box::new(Raised {
                alert: a,
                new: false,
            }))));
        }
        let Some(rt) = &p.routed else {
            return Ok(Some(Written::NeedsRoute));
        };
        let silence = &rt.silence;
        let mut a = Alert {
            check_kind: p.check_kind.clone(),
            silenced_by: silence.as_ref().map(|(w, _)| w.id),
            silenced_window: silence.as_ref().map(|(w, _)| w.name.clone()),
            silenced_until: silence.as_ref().map(|(_, o)| o.end),
            id: AlertId::new(),
            client_id: r.client_id,
            endpoint_id: r.endpoint_id,
            source: r.source.trim().to_string(),
            check_key: r.check_key.clone(),
            dedup_key: r.dedup_key.clone(),
            grouping_key: r
                .grouping_key
                .clone()
                .unwrap_or_else(|| r.dedup_key.clone()),
            domain: r.domain.clone(),
            severity: r.severity,
            title: r.title.clone(),
            summary: r.summary.clone(),
            state: AlertState::Firing,
            owner: rt.owner,
            window: rt.window,
            owner_on_shift: rt.on_shift,
            route_reason: rt.reason.clone(),
            fired_at: now,
            last_seen_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            acknowledged_label: None,
            acknowledged_side: None,
            resolved_at: None,
            resolution: None,
            notified_at: now,
            renotify_minutes: r.renotify_minutes,
            flapping: false,
            ticket_id: None,
            ticket_auto_resolve: false,
        };
        match store::insert_alert(w, &a).await {
            Ok(()) => {}
            // Another server's raise won the race: refresh theirs.
            Err(StoreError::Conflict(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let shift = if rt.on_shift {
            "on shift"
        } else {
            "off shift — its on-call path"
        };
        let mut body = format!(
            "Fired ({}): {}. Routed to {} ({shift}) — {}",
            a.severity.as_str(),
            if a.summary.is_empty() {
                &a.title
            } else {
                &a.summary
            },
            rt.owner.label(),
            rt.reason
        );
        if let Some((win, o)) = silence {
            body.push_str(&format!(
                "\nSilenced by maintenance window “{}” until {}: recorded, nobody is notified while it lasts.",
                win.name,
                o.end.to_rfc3339()
            ));
        }
        alert_transitioned(w, &a, actor, now, "fired", body, silence.is_none()).await?;
        // By its rule, it opens a ticket or updates the one still open for its key.
        self.ticket_for_new_alert(
            w,
            actor,
            &mut a,
            r.ticket,
            TicketRoute {
                assignee_hint: rt.hint.clone(),
                reason: rt.reason.clone(),
            },
            now,
        )
        .await?;
        Audit::new(actor, "alert.fired", "alert", a.id)
            .client(Some(a.client_id))
            .after(json!({"dedup_key": a.dedup_key, "title": a.title, "domain": a.domain, "severity": a.severity, "owner": a.owner, "owner_on_shift": a.owner_on_shift, "silenced_by": a.silenced_by, "silenced_until": a.silenced_until, "ticket_id": a.ticket_id}))
            .write(w)
            .await?;
        Ok(Some(Written::Raised(Box::new(Raised {
            alert: a,
            new: true,
        }))))
    }
}
