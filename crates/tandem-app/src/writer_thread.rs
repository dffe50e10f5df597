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
