//! SQLite's one-writer lock, and who holds it for how long.
//!
//! SQLite lets one write transaction run at a time; the store makes its writers queue on
//! this lock before `BEGIN` rather than in SQLite's busy handler. Every writer — the agent
//! check-in writer, the alert writer, request handlers, the background jobs, the WAL
//! checkpointer — takes the same lock, so one that holds it long holds every other back.
//! The lock counts, for each holder, how often it was taken, how long the holder waited
//! for it and how long it kept it ([`WriteLock::stats`]); the server shows these on
//! `/metrics`, so an operator (and a benchmark) can see which writer the others wait for.
//!
//! A holder is named by the task that writes: a background job runs inside
//! [`writing_as`]; anything else counts as `requests`.
//!
//! One writer goes first ([`writing_first`]): the agent check-in writer, whose every batch
//! a thousand agents' requests wait on. The others take turns among themselves, and only
//! one of them at a time queues for the lock itself, so the check-in writer waits at most
//! for the holder and one writer queued before it — not for every writer that queued
//! meanwhile. Measured with a million endpoints (docs/BENCHMARKS.md), the lock was held
//! 97 % of the time and the check-in writer waited for it 42 % of its own; going first
//! raised the check-ins written from about 10,300 to 14,000–14,300 a second.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

tokio::task_local! {
    static HOLDER: (&'static str, bool);
}

/// The holder name of writes made outside any [`writing_as`] scope.
pub const REQUESTS: &str = "requests";

/// Runs `work` with its store writes counted under `holder` (a short, fixed name such as
/// `alerts`). Tasks `work` spawns are not inside the scope: wrap them too.
pub async fn writing_as<F: Future>(holder: &'static str, work: F) -> F::Output {
    HOLDER.scope((holder, false), work).await
}

/// As [`writing_as`], and its writes go ahead of every other writer queued for the lock
/// but one. For the agent check-in writer alone.
pub async fn writing_first<F: Future>(holder: &'static str, work: F) -> F::Output {
    HOLDER.scope((holder, true), work).await
}

/// The holder the current task writes as, and whether it goes first.
fn current() -> (&'static str, bool) {
    HOLDER.try_with(|h| *h).unwrap_or((REQUESTS, false))
}

/// What one holder did with the lock since the store opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderStats {
    /// Who (see [`writing_as`]).
    pub holder: &'static str,
    /// Times it took the lock.
    pub taken: u64,
    /// Time spent waiting for the lock, in all.
    pub waited: Duration,
    /// Time it held the lock, in all.
    pub held: Duration,
    /// Its longest single hold.
    pub longest_hold: Duration,
}

/// The lock, and its accounts.
#[derive(Default)]
pub(crate) struct WriteLock {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Taken, by every writer but the first, while it queues for `lock`.
    turns: tokio::sync::Mutex<()>,
    stats: Arc<Mutex<Vec<HolderStats>>>,
}

/// The lock, held; dropping it lets the next writer in (and records the hold).
pub(crate) struct WriteGuard {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    holder: &'static str,
    since: Instant,
    stats: Arc<Mutex<Vec<HolderStats>>>,
}

impl WriteLock {
    /// Waits for the lock, as the current task's holder.
    pub(crate) async fn lock(&self) -> WriteGuard {
        let (holder, first) = current();
        let start = Instant::now();
        let guard = if first {
            Arc::clone(&self.lock).lock_owned().await
        } else {
            let _turn = self.turns.lock().await;
            Arc::clone(&self.lock).lock_owned().await
        };
        WriteGuard {
            _guard: guard,
            holder,
            since: self.acquired(holder, start),
            stats: Arc::clone(&self.stats),
        }
    }

    /// Runs `f` under the lock, as `holder`, on a thread that may block (not a runtime's).
    pub(crate) fn with_blocking_lock<R>(&self, holder: &'static str, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let turn = self.turns.blocking_lock();
        let guard = self.lock.blocking_lock();
        drop(turn);
        let since = self.acquired(holder, start);
        let out = f();
        drop(guard);
        held(&self.stats, holder, since.elapsed());
        out
    }

    /// Counts a taking of the lock that waited since `start`; the hold starts now.
    fn acquired(&self, holder: &'static str, start: Instant) -> Instant {
        let now = Instant::now();
        record(&self.stats, holder, |s| {
            s.taken += 1;
            s.waited += now - start;
        });
        now
    }

    /// Each holder's accounts, in the order they first took the lock.
    pub(crate) fn stats(&self) -> Vec<HolderStats> {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn record(stats: &Mutex<Vec<HolderStats>>, holder: &'static str, f: impl FnOnce(&mut HolderStats)) {
    // (A poisoned account is skipped: the counts are for reading, never for deciding.)
    let Ok(mut all) = stats.lock() else { return };
    let i = match all.iter().position(|s| s.holder == holder) {
        Some(i) => i,
        None => {
            all.push(HolderStats {
                holder,
                taken: 0,
                waited: Duration::ZERO,
                held: Duration::ZERO,
                longest_hold: Duration::ZERO,
            });
            all.len() - 1
        }
    };
    f(&mut all[i]);
}

fn held(stats: &Mutex<Vec<HolderStats>>, holder: &'static str, time: Duration) {
    record(stats, holder, |s| {
        s.held += time;
        s.longest_hold = s.longest_hold.max(time);
    });
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        held(&self.stats, self.holder, self.since.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_holder_is_counted_under_its_own_name() {
        let lock = Arc::new(WriteLock::default());
        drop(lock.lock().await);
        writing_as("alerts", async {
            let g = lock.lock().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(g);
        })
        .await;
        // A writer that waits behind a holder counts the wait as its own.
        let held = writing_as("alerts", lock.lock()).await;
        let other = Arc::clone(&lock);
        let waiter = std::thread::spawn(move || other.with_blocking_lock("checkpoint", || ()));
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(held);
        waiter.join().unwrap();

        let stats = lock.stats();
        let names: Vec<_> = stats.iter().map(|s| (s.holder, s.taken)).collect();
        assert_eq!(names, [(REQUESTS, 1), ("alerts", 2), ("checkpoint", 1)]);
        let alerts = &stats[1];
        assert!(alerts.held >= Duration::from_millis(50), "{alerts:?}");
        assert!(
            alerts.longest_hold >= Duration::from_millis(30),
            "{alerts:?}"
        );
        assert!(
            stats[2].waited >= Duration::from_millis(30),
            "{:?}",
            stats[2]
        );
    }

    #[tokio::test]
    async fn the_first_writer_waits_for_the_holder_and_one_queued_writer_at_most() {
        let lock = Arc::new(WriteLock::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = lock.lock().await;
        let mut tasks = Vec::new();
        // Three writers queue one after the other, then the first writer.
        for (name, first) in [
            ("a", false),
            ("b", false),
            ("c", false),
            ("check-ins", true),
        ] {
            let (lock, order) = (Arc::clone(&lock), Arc::clone(&order));
            let work = async move {
                let g = lock.lock().await;
                order.lock().unwrap().push(name);
                drop(g);
            };
            tasks.push(tokio::spawn(async move {
                if first {
                    writing_first(name, work).await
                } else {
                    writing_as(name, work).await
                }
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["a", "check-ins", "b", "c"]);
    }
}
