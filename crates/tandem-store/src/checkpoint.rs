//! SQLite's WAL checkpoints, on a thread of their own.
//!
//! By default the connection that commits past 1,000 WAL frames copies the WAL back into the
//! database file (and syncs it) before its commit returns. For the check-in writer that was
//! the slowest part of a commit over a large fleet: a million endpoints' heartbeats dirty a
//! database page each, ~67 MB of WAL a second, so every other batch paid for copying a
//! thousand random pages back. Worse, with readers always at work the WAL could never start
//! over — a reader still on frames it needs keeps a writer from rewinding it — and grew to a
//! gigabyte within two minutes, each page lookup searching its whole index
//! (docs/BENCHMARKS.md).
//!
//! So every connection of a [`crate::Store`] turns automatic checkpoints off
//! (`wal_autocheckpoint = 0`, [`TUNING`]) and this thread does them: every
//! [`INTERVAL`] a `PASSIVE` checkpoint, which copies what no reader still needs without
//! stopping anyone; and when the WAL has passed [`RESTART_FRAMES`] anyway, a `RESTART`
//! checkpoint under the store's one-writer lock, which waits up to [`RESTART_WAIT`] for the
//! readers on old frames so the next write starts the WAL over (if a long read is under way
//! it gives up, and tries again after [`RESTART_BACKOFF`]: writers wait for it meanwhile).
//! The thread ends when the store is closed or dropped.

use crate::write_lock::WriteLock;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What every SQLite connection of a store sets besides WAL mode and durability: temporary
/// data in memory (the check-in writer opened and closed a temporary file at about every
/// commit, most likely its statements' journal), no automatic checkpoints (this module's
/// thread does them) and a WAL truncated back to 64 MiB after it restarts. (Reading pages through a memory map was tried and left out: over a million
/// endpoints every connection remapped the growing file after each commit, and check-ins
/// cost more CPU, not less.)
pub(crate) const TUNING: [&str; 3] = [
    "PRAGMA temp_store = MEMORY",
    "PRAGMA wal_autocheckpoint = 0",
    "PRAGMA journal_size_limit = 67108864",
];

/// How often the thread checkpoints.
const INTERVAL: Duration = Duration::from_millis(200);

/// WAL frames (pages) past which the thread waits for readers so the WAL can start over:
/// 64 MiB of 4 KiB pages.
pub(crate) const RESTART_FRAMES: i64 = 16_384;

/// How long a `RESTART` checkpoint waits for readers (the store's writers wait meanwhile).
const RESTART_WAIT: &str = "PRAGMA busy_timeout = 10";

/// How long after a `RESTART` checkpoint that had to give up the next one is tried.
const RESTART_BACKOFF: Duration = Duration::from_secs(2);

/// The running checkpoint thread of a store.
pub(crate) struct Checkpointer {
    /// Dropping the sender ends the thread.
    stop: Mutex<Option<mpsc::Sender<()>>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`; `writer` is the store's one-writer lock.
    pub(crate) fn start(
        path: PathBuf,
        writer: Arc<WriteLock>,
        restart_frames: i64,
    ) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("tandem-checkpoint".into())
            .spawn(move || run(&path, &writer, restart_frames, &stopped))?;
        Ok(Checkpointer {
            stop: Mutex::new(Some(stop)),
        })
    }

    /// Ends the thread (after the checkpoint it may be running).
    pub(crate) fn stop(&self) {
        if let Ok(mut s) = self.stop.lock() {
            s.take();
        }
    }
}

fn run(path: &Path, writer: &WriteLock, restart_frames: i64, stopped: &mpsc::Receiver<()>) {
    let mut conn: Option<rusqlite::Connection> = None;
    let mut next_restart = Instant::now();
    // (Warned once until a checkpoint succeeds again.)
    let mut failing = false;
    loop {
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        if conn.is_none() {
            match open(path) {
                Ok(c) => conn = Some(c),
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "the WAL checkpointer cannot open the database");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        let Some(c) = &conn else { continue };
        match checkpoint(c, writer, restart_frames, &mut next_restart) {
            Ok(()) => failing = false,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "a WAL checkpoint failed");
                }
                failing = true;
                conn = None;
            }
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let c = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.execute_batch("PRAGMA synchronous = FULL;")?;
    c.execute_batch(RESTART_WAIT)?;
    for pragma in TUNING {
        c.execute_batch(pragma)?;
    }
    Ok(c)
}

/// One `PASSIVE` checkpoint, and a `RESTART` one if the WAL is still long.
fn checkpoint(
    c: &rusqlite::Connection,
    writer: &WriteLock,
    restart_frames: i64,
    next_restart: &mut Instant,
) -> rusqlite::Result<()> {
    // (busy, frames in the WAL, frames copied back)
    let run = |mode: &str| -> rusqlite::Result<(i64, i64)> {
        c.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    };
    let (_, frames) = run("PASSIVE")?;
    if frames >= restart_frames && Instant::now() >= *next_restart {
        // Under the store's writer lock, so no write transaction of the store waits in
        // SQLite's busy handler meanwhile: they queue on the lock instead.
        let (busy, _) = writer.with_blocking_lock("checkpoint", || run("RESTART"))?;
        if busy != 0 {
            *next_restart = Instant::now() + RESTART_BACKOFF;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..200 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what} did not happen within 10 s");
    }

    #[test]
    fn the_thread_copies_the_wal_back_and_starts_it_over_while_a_reader_stays() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let w = rusqlite::Connection::open(&db).unwrap();
        w.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        for pragma in TUNING {
            w.execute_batch(pragma).unwrap();
        }
        w.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
        let write = |from: i64| {
            w.execute_batch("BEGIN").unwrap();
            for i in from..from + 200 {
                w.execute("INSERT INTO t VALUES (?1, zeroblob(4000))", [i])
                    .unwrap();
            }
            w.execute_batch("COMMIT").unwrap();
        };
        // With automatic checkpoints off, nothing but the thread copies the WAL back.
        write(0);
        let db_len = || std::fs::metadata(&db).unwrap().len();
        assert!(db_len() < 100_000, "nothing copied back yet");
        let lock = Arc::new(WriteLock::default());
        let thread = Checkpointer::start(db.clone(), Arc::clone(&lock), 300).unwrap();
        wait_for("the passive checkpoint", || db_len() > 200 * 4000);
        // A reader in a transaction holds frames; a RESTART checkpoint waits for it (up to
        // its busy timeout) and the WAL starts over once it has finished.
        write(200);
        let r = rusqlite::Connection::open(&db).unwrap();
        r.execute_batch("BEGIN").unwrap();
        let n: i64 = r
            .query_row("SELECT count(*) FROM t", [], |x| x.get(0))
            .unwrap();
        assert_eq!(n, 400);
        write(400);
        write(600);
        r.execute_batch("COMMIT").unwrap();
        wait_for("the WAL copied back", || db_len() > 800 * 4000);
        // Once copied back with no reader left on it, the WAL starts over: a one-row write
        // then finds it holding a frame or two, not the five transactions.
        let frames = || -> i64 {
            w.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |x| x.get(1))
                .unwrap()
        };
        let mut next = 1000;
        wait_for("the WAL starting over", || {
            w.execute("INSERT INTO t VALUES (?1, 1)", [next]).unwrap();
            next += 1;
            frames() < 50
        });
        thread.stop();
        drop(lock);
    }
}
