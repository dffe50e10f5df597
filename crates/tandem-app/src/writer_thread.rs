//! A writer task on a thread of its own.
//!
//! A task that holds a write transaction open waits, after each statement, for its turn on
//! the runtime that polls it. On the shared runtime that is behind every request task ready
//! at that moment: under a thousand agent connections, milliseconds per statement — and on
//! SQLite every other writer waits for the one writer lock meanwhile. A writer on a thread
//! of its own, with a single-threaded runtime, is polled as soon as its statement is
//! answered.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// Runs the task `make(true)` makes on a new thread named `name`, with a runtime of its own;
/// if no thread or runtime can be had, runs `make(false)` on the current runtime instead.
/// The flag says whether the task has the thread to itself (and so may block it).
pub(crate) fn spawn<F, T>(name: &str, make: F)
where
    F: FnOnce(bool) -> T + Send + 'static,
    T: Future<Output = ()> + Send + 'static,
{
    // The maker goes to whichever starts: the thread, or the fallback below.
    let slot = Arc::new(Mutex::new(Some(make)));
    let taken = Arc::clone(&slot);
    let started = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    if let Some(make) = taken.lock().ok().and_then(|mut m| m.take()) {
                        runtime.block_on(make(true));
                    }
                })
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, writer = name, "the writer shares the request runtime");
        if let Some(make) = slot.lock().ok().and_then(|mut m| m.take()) {
            tokio::spawn(make(false));
        }
    }
}

/// The server's background jobs — SLA sweeps, monitoring passes, on-call steps, the
/// notification and mail senders, metrics rollups — on SQLite run on a runtime with a
/// thread of its own, for the same reason as the writers above: each of them writes, and
/// a job polled on the request runtime holds SQLite's one writer lock while it waits its
/// turn after every statement. Measured with a million endpoints checking in, the
/// notification sender's holds went from 7.9 to 1.7 ms, the metrics rollups' from 15.8 to
/// 5 ms (docs/BENCHMARKS.md).
///
/// On PostgreSQL (whose connections answer through the runtime that opened them, and which
/// has no one writer lock) and when no thread can be had, the jobs run on the current
/// runtime. Dropping `Jobs` stops its thread and every job on it.
pub struct Jobs {
    /// The jobs' runtime, and what keeps its thread running.
    own: Option<(tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>)>,
}

impl Jobs {
    /// On SQLite a runtime on a new thread named `tandem-jobs`; otherwise the current one.
    pub fn start(backend: tandem_store::Backend) -> Jobs {
        if backend != tandem_store::Backend::Sqlite {
            return Jobs { own: None };
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let own = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|runtime| {
                let handle = runtime.handle().clone();
                std::thread::Builder::new()
                    .name("tandem-jobs".into())
                    .spawn(move || {
                        // Runs the jobs until `stop` is sent or dropped.
                        let _ = runtime.block_on(stopped);
                    })
                    .map(|_| handle)
            });
        match own {
            Ok(handle) => Jobs {
                own: Some((handle, stop)),
            },
            Err(e) => {
                tracing::warn!(error = %e, "the background jobs share the request runtime");
                Jobs { own: None }
            }
        }
    }

    /// Runs `start` with the jobs' runtime as the current one: what it spawns runs there.
    pub fn run<R>(&self, start: impl FnOnce() -> R) -> R {
        match &self.own {
            Some((handle, _)) => {
                let _current = handle.enter();
                start()
            }
            None => start(),
        }
    }

    /// Spawns `job` on the jobs' runtime.
    pub fn spawn<F>(&self, job: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.run(|| tokio::spawn(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_store::Backend;

    fn thread_name() -> Option<String> {
        std::thread::current().name().map(str::to_string)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_the_jobs_run_on_their_own_thread_until_dropped() {
        let jobs = Jobs::start(Backend::Sqlite);
        let name = jobs.spawn(async { thread_name() }).await.unwrap();
        assert_eq!(name.as_deref(), Some("tandem-jobs"));
        // What is spawned inside `run` goes there too.
        let name = jobs.run(|| tokio::spawn(async { thread_name() }));
        assert_eq!(name.await.unwrap().as_deref(), Some("tandem-jobs"));
        // Dropping the jobs ends their runtime, and with it a job that never ends itself.
        let forever = jobs.spawn(std::future::pending::<()>());
        drop(jobs);
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), forever).await;
        assert!(ended.expect("the job ended").unwrap_err().is_cancelled());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_postgres_the_jobs_share_the_current_runtime() {
        let jobs = Jobs::start(Backend::Postgres);
        let name = jobs.spawn(async { thread_name() }).await.unwrap();
        assert_ne!(name.as_deref(), Some("tandem-jobs"));
    }
}
