//! The connections reads run on.
//!
//! sqlx's pool pings every connection when it is returned, which on a request that reads
//! twice (who is calling, then the data) was half of all database round trips — and on
//! SQLite each round trip is a hand-off to the connection's worker thread. This pool hands
//! connections back without a round trip and checks one only when there is a reason to
//! doubt it: it sat idle for a while, or a connection-level error (I/O, protocol, a crashed
//! worker) was seen anywhere since it was last checked. A broken connection is replaced.
//!
//! On SQLite a read may also run **on the calling thread** ([`Read::direct`]): a second,
//! plain SQLite connection (rusqlite, the same library sqlx links) beside the sqlx one.
//! Every sqlx statement on SQLite is a hand-off to the connection's worker thread and back —
//! two thread switches, which on two cores cost more than reading a page of fifty rows
//! (issue #2). The direct connection is `query_only`, never waits for a lock (a busy
//! database sends the read back to the sqlx path, which waits) and serves the page reads of
//! the most-viewed lists ([`crate::query::Sql::fetch_page`]).

use crate::{sqlite_pragmas, Backend, Result, StoreError};
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a connection may sit idle before it is checked on its way out.
const TRUST_IDLE_FOR: Duration = Duration::from_secs(15);
/// How long a read waits for a free connection before giving up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection-level errors seen by this process so far.
static CONNECTION_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Counts errors that may have left a connection unusable (not SQL errors such as a
/// constraint violation, which leave the connection fine).
pub(crate) fn note_error(e: &sqlx::Error) {
    let lost = match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::PoolClosed => true,
        // PostgreSQL's "connection exception" (08…) and "operator intervention" (57P…,
        // such as a terminated session) classes.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    };
    if lost {
        CONNECTION_ERRORS.fetch_add(1, Ordering::Relaxed);
    }
}

struct Idle {
    conn: AnyConnection,
    since: Instant,
    /// The error count when this connection was handed out last.
    errors_seen: u64,
}

/// A bounded set of read connections.
pub(crate) struct ReadPool {
    connect: AnyConnectOptions,
    backend: Backend,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    open: AtomicU64,
    /// The SQLite file, for direct connections (none on PostgreSQL).
    direct_path: Option<PathBuf>,
    /// Direct connections not in use.
    direct_idle: Mutex<Vec<rusqlite::Connection>>,
}

impl ReadPool {
    pub(crate) fn new(
        connect: AnyConnectOptions,
        backend: Backend,
        max: u32,
        sqlite_path: Option<PathBuf>,
    ) -> Self {
        ReadPool {
            connect,
            backend,
            permits: Arc::new(Semaphore::new(max as usize)),
            idle: Mutex::new(Vec::new()),
            open: AtomicU64::new(0),
            direct_path: sqlite_path.filter(|_| backend == Backend::Sqlite),
            direct_idle: Mutex::new(Vec::new()),
        }
    }

    /// A direct connection: an idle one, or a new one.
    fn direct_checkout(&self) -> Option<rusqlite::Connection> {
        let path = self.direct_path.as_ref()?;
        if let Some(c) = self.direct_idle.lock().ok()?.pop() {
            return Some(c);
        }
        match open_direct(path) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "could not open a direct SQLite read connection; reads use sqlx");
                None
            }
        }
    }

    /// A connection for reads: an idle one if there is one (checked if in doubt), else a
    /// new one, waiting while all are in use.
    pub(crate) async fn checkout(pool: &Arc<ReadPool>) -> Result<Read> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, pool.permits.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Db(sqlx::Error::PoolTimedOut))?
            .map_err(|_| StoreError::Db(sqlx::Error::PoolClosed))?;
        let errors_now = CONNECTION_ERRORS.load(Ordering::Relaxed);
        while let Some(idle) = pool.take_idle() {
            let doubtful = idle.errors_seen != errors_now || idle.since.elapsed() > TRUST_IDLE_FOR;
            let mut conn = idle.conn;
            if doubtful && conn.ping().await.is_err() {
                pool.open.fetch_sub(1, Ordering::Relaxed);
                let _ = conn.close_hard().await;
                continue;
            }
            return Ok(pool.read(conn, permit, errors_now));
        }
        let conn = pool.connect().await?;
        pool.open.fetch_add(1, Ordering::Relaxed);
        Ok(pool.read(conn, permit, errors_now))
    }

    fn read(
        self: &Arc<Self>,
        conn: AnyConnection,
        permit: OwnedSemaphorePermit,
        errors_seen: u64,
    ) -> Read {
        Read {
            conn: Some(conn),
            direct: None,
            errors_seen,
            pool: Arc::clone(self),
            _permit: permit,
        }
    }

    fn take_idle(&self) -> Option<Idle> {
        self.idle.lock().ok()?.pop()
    }

    async fn connect(&self) -> Result<AnyConnection> {
        let mut conn = self.connect.connect().await?;
        if self.backend == Backend::Sqlite {
            sqlite_pragmas(&mut conn).await?;
        }
        Ok(conn)
    }

    /// Connections open, and how many of them are idle.
    pub(crate) fn stats(&self) -> (u32, usize) {
        let idle = self.idle.lock().map_or(0, |i| i.len());
        (self.open.load(Ordering::Relaxed) as u32, idle)
    }

    /// Closes the idle connections and refuses new reads.
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = self
            .idle
            .lock()
            .map(|mut i| std::mem::take(&mut *i))
            .unwrap_or_default();
        for i in idle {
            let _ = i.conn.close().await;
        }
        if let Ok(mut d) = self.direct_idle.lock() {
            d.clear();
        }
    }
}

/// Opens a direct SQLite connection for reads: it cannot write (`query_only`) and does not
/// wait for locks (`busy_timeout = 0`: the caller falls back to the sqlx path, which does).
fn open_direct(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let c = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 0;")?;
    for pragma in crate::checkpoint::TUNING {
        c.execute_batch(pragma)?;
    }
    c.set_prepared_statement_cache_capacity(32);
    Ok(c)
}

/// A connection for reads, returned to its pool when dropped.
pub struct Read {
    conn: Option<AnyConnection>,
    /// The direct SQLite connection, once one was used ([`Read::direct`]). In a mutex only
    /// so that a `Read` stays `Sync` (a rusqlite connection is not); it is never contended.
    direct: Option<Mutex<rusqlite::Connection>>,
    errors_seen: u64,
    pool: Arc<ReadPool>,
    _permit: OwnedSemaphorePermit,
}

impl Read {
    /// Runs `f` on a direct SQLite connection on this thread, or says `None` when there is
    /// none (PostgreSQL, or it could not be opened) or `f` failed — then the caller reads
    /// through sqlx instead, so a failure here costs time, never an answer. A connection
    /// that failed is not kept.
    pub(crate) fn direct<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        if self.direct.is_none() {
            self.direct = Some(Mutex::new(self.pool.direct_checkout()?));
        }
        let conn = self.direct.as_mut()?.get_mut().ok()?;
        match f(conn) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(error = %e, "a direct SQLite read failed; reading through sqlx");
                if e.sqlite_error_code() != Some(rusqlite::ErrorCode::DatabaseBusy) {
                    self.direct = None;
                }
                None
            }
        }
    }
}

impl Deref for Read {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.conn
            .as_ref()
            .expect("a read holds its connection until dropped")
    }
}

impl DerefMut for Read {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn
            .as_mut()
            .expect("a read holds its connection until dropped")
    }
}

impl Drop for Read {
    fn drop(&mut self) {
        if let Some(d) = self.direct.take().and_then(|d| d.into_inner().ok()) {
            if !self.pool.permits.is_closed() {
                if let Ok(mut idle) = self.pool.direct_idle.lock() {
                    idle.push(d);
                }
            }
        }
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.pool.permits.is_closed() {
            self.pool.open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        match self.pool.idle.lock() {
            Ok(mut idle) => idle.push(Idle {
                conn,
                since: Instant::now(),
                errors_seen: self.errors_seen,
            }),
            Err(_) => {
                self.pool.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}
