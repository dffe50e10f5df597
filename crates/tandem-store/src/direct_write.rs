//! Write transactions on a plain SQLite connection, on the calling thread.
//!
//! Every sqlx statement on SQLite is a hand-off to the connection's worker thread and back,
//! and every bound value is copied twice on the way (into `Any` arguments, then SQLite's).
//! The agent check-in writer (issue #4) runs thousands of check-ins a second through one
//! connection, on a thread of its own: at the goal's 16,700 check-ins a second it was 97 %
//! busy, most of it in those hand-offs. A [`DirectWriter`] runs the same statements on a
//! rusqlite connection (the SQLite library sqlx links) on the writer's own thread.
//!
//! It takes the store's one-writer lock before `BEGIN IMMEDIATE`, as a [`crate::Write`] does,
//! and is set up as every write connection is (WAL, `synchronous = FULL`, foreign keys): a
//! commit it acknowledges survives a power cut. It carries no audit entries — it is for
//! writes that record an agent's own reports (its row, timeline and metrics), which are not
//! people's actions.
//!
//! The functions that run on either kind of transaction take a [`Conn`].

use crate::query::Sql;
use crate::{Result, Store, StoreError, Write};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::sync::Arc;

/// The connection a write statement runs on: a sqlx one (in a [`Write`]) or a plain SQLite
/// one on the calling thread (in a [`DirectTx`]).
pub enum Conn<'a> {
    /// Through sqlx: PostgreSQL, or SQLite.
    Sqlx(&'a mut AnyConnection),
    /// SQLite, on the calling thread.
    Direct(&'a mut rusqlite::Connection),
}

impl<'a> From<&'a mut Write> for Conn<'a> {
    fn from(w: &'a mut Write) -> Self {
        Conn::Sqlx(w)
    }
}

impl<'a, 'b> From<&'a mut Conn<'b>> for Conn<'a> {
    fn from(c: &'a mut Conn<'b>) -> Self {
        match c {
            Conn::Sqlx(c) => Conn::Sqlx(c),
            Conn::Direct(c) => Conn::Direct(c),
        }
    }
}

impl Conn<'_> {
    /// Runs a statement that returns no rows; answers how many rows it changed.
    pub(crate) async fn execute(&mut self, q: &Sql) -> Result<u64> {
        match self {
            Conn::Sqlx(c) => q.execute(c).await,
            Conn::Direct(c) => Ok(q.execute_direct(c).map_err(from_sqlite)? as u64),
        }
    }

    /// Runs a statement that returns rows (a `SELECT`, or `RETURNING`), each decoded as a
    /// `T`: through sqlx with `by_name`, directly by position (see [`crate::row_de`]).
    pub(crate) async fn rows<T: serde::de::DeserializeOwned>(
        &mut self,
        q: &Sql,
        by_name: fn(&AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self {
            Conn::Sqlx(c) => q.fetch_all(c).await?.iter().map(by_name).collect(),
            Conn::Direct(c) => q
                .direct_rows::<T>(c)
                .map_err(from_sqlite)?
                .map_err(|e| StoreError::Corrupt(format!("a row does not decode: {e}"))),
        }
    }
}

/// A rusqlite error as the store's: a broken uniqueness rule is a [`StoreError::Conflict`],
/// as it is through sqlx.
pub(crate) fn from_sqlite(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        {
            tracing::debug!(error = %e, "unique violation");
            return StoreError::Conflict(
                "it conflicts with something that already exists (or was just made); reload and try again"
                    .into(),
            );
        }
    }
    StoreError::Sqlite(e)
}

/// A plain SQLite write connection, kept open for the transactions of one writer.
pub struct DirectWriter {
    conn: rusqlite::Connection,
    /// The store's one-writer lock.
    lock: Arc<crate::write_lock::WriteLock>,
}

impl Store {
    /// On SQLite, a write connection that runs on the calling thread ([`DirectWriter`]);
    /// `None` on PostgreSQL. Its statements block the thread they run on — for a writer
    /// with a thread of its own.
    pub fn direct_writer(&self) -> Option<Result<DirectWriter>> {
        let (path, lock) = (self.sqlite_path.as_ref()?, self.writer.as_ref()?);
        Some(open(path).map_err(from_sqlite).map(|conn| DirectWriter {
            conn,
            lock: Arc::clone(lock),
        }))
    }
}

fn open(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let c = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // As `sqlite_pragmas` sets up sqlx's connections (journal_mode answers a row).
    let mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidQuery);
    }
    c.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
    )?;
    for pragma in crate::checkpoint::TUNING {
        c.execute_batch(pragma)?;
    }
    // The check-in writer revisits the tables' upper pages at every batch: keep them (and
    // recent leaves) in 32 MiB rather than the default 2 MiB.
    c.execute_batch("PRAGMA cache_size = -32768")?;
    c.set_prepared_statement_cache_capacity(32);
    Ok(c)
}

impl DirectWriter {
    /// Starts a write transaction, after the store's one-writer lock.
    pub async fn begin(&mut self) -> Result<DirectTx<'_>> {
        let guard = self.lock.lock().await;
        // (A transaction a failed rollback left open would refuse every `BEGIN` after it.)
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK").map_err(from_sqlite)?;
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(from_sqlite)?;
        Ok(DirectTx {
            conn: &mut self.conn,
            _guard: guard,
            open: true,
        })
    }
}

/// A write transaction of a [`DirectWriter`]. Commit it with [`DirectTx::commit`]; dropped,
/// it rolls back (at once, on this thread) before the writer lock goes.
pub struct DirectTx<'a> {
    conn: &'a mut rusqlite::Connection,
    /// Dropped after the transaction ends (fields drop after `Drop::drop`).
    _guard: crate::write_lock::WriteGuard,
    open: bool,
}

impl DirectTx<'_> {
    /// The connection, for the functions that take a [`Conn`].
    pub fn conn(&mut self) -> Conn<'_> {
        Conn::Direct(self.conn)
    }

    /// Makes every change in the transaction durable.
    pub fn commit(mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(from_sqlite)?;
        self.open = false;
        Ok(())
    }
}

impl Drop for DirectTx<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "rolling back a direct SQLite write failed");
            }
        }
    }
}
