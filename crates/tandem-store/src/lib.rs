//! Tandem's storage seam.
//!
//! One API over SQLite (the embedded default) and PostgreSQL (the scale path). The SQL is
//! written once, in the portable subset both speak (`$n` placeholders, `TEXT`/`BIGINT`
//! columns, `RETURNING`), and run through sqlx's `Any` driver; the few places where the two
//! differ ask [`Backend`]. This crate is the only one that knows SQL.
//!
//! Reads of tenant data take an [`authz::Grant`](tandem_domain::authz::Grant) and are
//! scoped by it in the query itself. Every write goes through a [`Write`] transaction, and
//! the audit entry for it is appended in that same transaction with [`audit::append`] or
//! [`audit::append_at_commit`].

pub mod alert_paging; // alerts → on-call paging (issue #6)
pub mod attachments; // ticket attachments (issue #5)
pub mod audit;
pub mod auth;
mod checkpoint;
pub mod direct_write; // the check-in writer's SQLite transactions (issue #4)
pub mod directory;
pub mod endpoints;
// Mail (issue #5).
pub mod integrations; // ingest (issue #6)
pub mod mail;
pub mod maintenance; // maintenance windows (issue #6)
pub mod metrics; // agent metrics history (issue #6)
pub mod monitoring; // alerts (issue #6)
pub mod notify; // notification channels and deliveries (issue #6)
pub mod oncall; // on-call (issue #6)
mod query;
mod read_pool;
mod row_de;
pub mod scope;
// search (issue #5)
pub mod search;
pub mod settings;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod ticket_views;
pub mod tickets;
// tickets2: watchers, tags, links, merges, SLA policies and events.
pub mod ticket_data;
pub mod ticket_import; // CSV ticket import (issue #5)
mod write_lock; // the one-writer lock and its accounts (issue #4)

pub use direct_write::{Conn, DirectTx, DirectWriter};
pub use query::{Page, Paged};
pub use write_lock::{writing_as, writing_first, HolderStats};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Which database is behind the seam.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in a local file: the embedded default, one server process.
    Sqlite,
    /// PostgreSQL: the system of record at scale, shared by several servers.
    Postgres,
}

impl Backend {
    /// A name for logs and health output.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL could not be understood.
    #[error("unsupported database URL: {0}")]
    BadUrl(String),
    /// A uniqueness rule was broken, such as a taken username.
    #[error("already exists: {0}")]
    Conflict(String),
    /// Stored data could not be read back (an edited database, or a bug).
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// The database said no, or could not be reached.
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
    /// SQLite said no, on a connection of this crate's own ([`direct_write`]).
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// A file operation (backup, restore) failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        read_pool::note_error(&e);
        if let sqlx::Error::Database(d) = &e {
            if d.is_unique_violation() {
                // The database's own words name tables and constraints: they go to the log,
                // the caller gets a plain sentence (callers that know which rule it was say
                // so in their own terms).
                tracing::debug!(error = %d.message(), "unique violation");
                return StoreError::Conflict(
                    "it conflicts with something that already exists (or was just made); reload and try again"
                        .into(),
                );
            }
        }
        StoreError::Db(e)
    }
}

/// Short for results of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle on the database: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    /// Write transactions, migrations, health checks.
    pool: AnyPool,
    /// Connections for reads (see [`read_pool`]).
    reads: Arc<read_pool::ReadPool>,
    backend: Backend,
    /// SQLite allows one writer at a time; taking this before `BEGIN` keeps write
    /// transactions from failing with "database is locked" mid-way. PostgreSQL needs none.
    writer: Option<Arc<write_lock::WriteLock>>,
    sqlite_path: Option<PathBuf>,
    /// How `pool` connects, for [`Store::with_own_write_connection`].
    connect: AnyConnectOptions,
    /// SQLite's WAL checkpoints, on a thread of their own ([`checkpoint`]).
    checkpointer: Option<Arc<checkpoint::Checkpointer>>,
}

/// Options for opening a store.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Most connections kept for reads; writes get half as many more (at least two).
    pub max_connections: u32,
    /// On SQLite, read the pages of hot lists on the calling thread ([`read_pool`]'s direct
    /// connections) rather than through sqlx's worker thread. On by default; tests turn it
    /// off to check that both paths read the same.
    pub direct_reads: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_connections: 8,
            direct_reads: true,
        }
    }
}

/// Works out the backend and a normalised URL from what a person typed:
/// a `postgres://` URL, a `sqlite:` URL, or a plain file path for SQLite.
pub fn parse_database_url(url: &str) -> Result<(Backend, String, Option<PathBuf>)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string(), None));
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.contains("://") {
        return Err(StoreError::BadUrl(format!(
            "{url} (use a file path, sqlite://PATH or postgres://…)"
        )));
    } else {
        url
    };
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::BadUrl(
            "an in-memory SQLite database would lose everything; give a file path".into(),
        ));
    }
    Ok((
        Backend::Sqlite,
        format!("sqlite://{path}?mode=rwc"),
        Some(PathBuf::from(path)),
    ))
}

/// What every SQLite connection is set up with.
async fn sqlite_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    // WAL lets readers run beside the writer; synchronous=FULL makes every acknowledged
    // commit survive a power cut, not only a process crash.
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = ON",
        "PRAGMA busy_timeout = 10000",
    ]
    .into_iter()
    .chain(checkpoint::TUNING)
    {
        conn.execute(pragma).await?;
    }
    Ok(())
}

/// How write connections are pooled: at most `size`, SQLite's set up by [`sqlite_pragmas`].
fn write_pool(backend: Backend, size: u32) -> AnyPoolOptions {
    let pool = AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10));
    if backend == Backend::Sqlite {
        pool.after_connect(|conn, _meta| Box::pin(sqlite_pragmas(conn)))
    } else {
        pool
    }
}

impl Store {
    /// Connects, choosing the backend from the URL.
    pub async fn open(url: &str, opts: OpenOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url, sqlite_path) = parse_database_url(url)?;
        if let Some(parent) = sqlite_path.as_deref().and_then(Path::parent) {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
        let connect = AnyConnectOptions::from_str(&url).map_err(StoreError::Db)?;
        let pool = write_pool(backend, (opts.max_connections / 2).max(2))
            .connect_with(connect.clone())
            .await?;
        let reads = read_pool::ReadPool::new(
            connect.clone(),
            backend,
            opts.max_connections.max(1),
            sqlite_path.clone().filter(|_| opts.direct_reads),
        );
        let writer =
            (backend == Backend::Sqlite).then(|| Arc::new(write_lock::WriteLock::default()));
        let checkpointer = match (&sqlite_path, &writer) {
            (Some(path), Some(lock)) => Some(Arc::new(checkpoint::Checkpointer::start(
                path.clone(),
                Arc::clone(lock),
                checkpoint::RESTART_FRAMES,
            )?)),
            _ => None,
        };
        Ok(Store {
            pool,
            reads: Arc::new(reads),
            backend,
            writer,
            sqlite_path,
            connect,
            checkpointer,
        })
    }

    /// This store with a write connection of its own, opened on the calling runtime, for a
    /// writer that runs on a runtime of its own (the agent check-in writer, on its own
    /// thread): its statements then never wait behind the request tasks of the shared
    /// runtime for their turn, and its connection belongs to the runtime that uses it.
    /// Reads and SQLite's one-writer lock stay shared.
    ///
    /// On PostgreSQL that connection plans every statement for the table as it is now
    /// (`plan_cache_mode = force_custom_plan`). The writer runs the same few statements all
    /// the time, so after five runs PostgreSQL would plan each once for good — for the table
    /// as it was then: measured, a heartbeat `UPDATE` planned while `endpoints` held a few
    /// thousand rows went on hashing the whole table for each batch of 64 after 20,000
    /// endpoints had enrolled (a sequential scan of 21,173 rows per statement, 3,933
    /// check-ins/s instead of 16,700; docs/BENCHMARKS.md). Planning a statement again
    /// costs far less than one such scan.
    pub async fn with_own_write_connection(&self) -> Result<Store> {
        let mut pool = write_pool(self.backend, 1);
        if self.backend == Backend::Postgres {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET plan_cache_mode = force_custom_plan")
                        .await
                        .map(|_| ())
                })
            });
        }
        let pool = pool.connect_with(self.connect.clone()).await?;
        Ok(Store {
            pool,
            ..self.clone()
        })
    }

    /// The database behind the seam.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs a trivial query: is the database reachable?
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.pool.acquire().await?;
        c.ping().await?;
        Ok(())
    }

    /// On SQLite, each writer's use of the one-writer lock since the store opened (see
    /// [`writing_as`]); empty on PostgreSQL, whose writers do not queue on one lock.
    pub fn write_lock_stats(&self) -> Vec<HolderStats> {
        self.writer.as_ref().map(|w| w.stats()).unwrap_or_default()
    }

    /// Connections open (reads and writes), and how many of them are idle.
    pub fn pool_stats(&self) -> (u32, usize) {
        let (open, idle) = self.reads.stats();
        (self.pool.size() + open, self.pool.num_idle() + idle)
    }

    /// A connection for reads.
    pub async fn read(&self) -> Result<Read> {
        read_pool::ReadPool::checkout(&self.reads).await
    }

    /// A write transaction. Commit it with [`Write::commit`]; dropping it rolls back.
    pub async fn write(&self) -> Result<Write> {
        let guard = match &self.writer {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        let tx = self.pool.begin().await?;
        Ok(Write {
            tx: Some(tx),
            guard,
            savepoints: 0,
            pending_audit: Vec::new(),
            memo: std::collections::HashMap::new(),
        })
    }

    /// Brings the schema up to date. Safe to run from several servers at once.
    pub async fn migrate(&self) -> Result<Vec<&'static str>> {
        query::migrate(self).await
    }

    /// Writes a consistent copy of a SQLite database to `dest` while the server runs.
    pub async fn backup_sqlite(&self, dest: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::BadUrl(
                "online backup here is for SQLite; for PostgreSQL use pg_dump (see README)".into(),
            ));
        }
        if dest.exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists; choose a new file", dest.display()),
            )));
        }
        let dest = dest
            .to_str()
            .ok_or_else(|| StoreError::BadUrl("backup path is not valid UTF-8".into()))?;
        let mut c = self.pool.acquire().await?;
        sqlx::query("VACUUM INTO $1")
            .bind(dest.to_string())
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    /// The SQLite file, when the backend is SQLite.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// Closes every connection.
    pub async fn close(&self) {
        if let Some(c) = &self.checkpointer {
            c.stop();
        }
        self.reads.close().await;
        self.pool.close().await;
    }
}

pub use read_pool::Read;

/// A write transaction; everything in it commits together, audit entry included.
pub struct Write {
    /// Always `Some` until `commit` or `drop` takes it.
    tx: Option<Transaction<'static, Any>>,
    /// SQLite's writer lock: held until the transaction has ended, by commit or by rollback.
    guard: Option<write_lock::WriteGuard>,
    /// Savepoints open inside the transaction.
    savepoints: u32,
    /// Audit entries of this transaction, linked into the chain when it commits
    /// ([`audit::append_at_commit`]).
    pub(crate) pending_audit: Vec<(tandem_domain::audit::AuditEntry, tandem_domain::Timestamp)>,
    /// Reads remembered for the rest of the transaction ([`Write::remembered`]).
    memo: std::collections::HashMap<String, Box<dyn std::any::Any + Send + Sync>>,
}

/// A savepoint inside a [`Write`]: what was written after it can be undone without
/// undoing the rest of the transaction (group commits give each item its own).
#[must_use = "release the savepoint or roll back to it"]
#[derive(Debug)]
pub struct Savepoint {
    depth: u32,
    /// Audit entries pending when it was made.
    audit: usize,
}

impl Write {
    /// Makes every change in the transaction durable.
    pub async fn commit(mut self) -> Result<()> {
        // The audit head is locked (PostgreSQL) only from here to the commit.
        audit::link_pending(&mut self).await?;
        let tx = self
            .tx
            .take()
            .expect("a Write's transaction is there until it ends");
        // (The writer lock, `self.guard`, goes when `self` does: after the commit.)
        tx.commit().await?;
        Ok(())
    }

    /// A value remembered earlier in this transaction under `key` ([`Write::remember`]).
    ///
    /// For reads a group commit repeats for every item — a client's notification channels,
    /// its name — of rows the transaction itself does not change: each is read once per
    /// transaction, not once per item. A value of another type under the key is not found.
    pub fn remembered<T: Clone + 'static>(&self, key: &str) -> Option<T> {
        self.memo.get(key)?.downcast_ref::<T>().cloned()
    }

    /// Remembers a value read in this transaction for the rest of it.
    pub fn remember<T: Send + Sync + 'static>(&mut self, key: String, value: T) {
        // Bounded: a transaction of many distinct keys starts over rather than grow.
        if self.memo.len() >= 4096 {
            self.memo.clear();
        }
        self.memo.insert(key, Box::new(value));
    }

    fn tx_mut(&mut self) -> &mut Transaction<'static, Any> {
        self.tx
            .as_mut()
            .expect("a Write's transaction is there until it ends")
    }

    /// Marks a savepoint (nested ones are allowed; release or roll back the innermost first).
    pub async fn savepoint(&mut self) -> Result<Savepoint> {
        let n = self.savepoints + 1;
        (&mut **self.tx_mut())
            .execute(format!("SAVEPOINT tandem_sp{n}").as_str())
            .await?;
        self.savepoints = n;
        Ok(Savepoint {
            depth: n,
            audit: self.pending_audit.len(),
        })
    }

    /// Keeps what was written since the savepoint (it commits with the transaction).
    pub async fn release(&mut self, sp: Savepoint) -> Result<()> {
        (&mut **self.tx_mut())
            .execute(format!("RELEASE SAVEPOINT tandem_sp{}", sp.depth).as_str())
            .await?;
        self.savepoints = sp.depth - 1;
        Ok(())
    }

    /// Undoes what was written since the savepoint, and ends it. On PostgreSQL this also
    /// clears a failed statement's error, so the transaction can go on.
    pub async fn rollback_to(&mut self, sp: Savepoint) -> Result<()> {
        (&mut **self.tx_mut())
            .execute(format!("ROLLBACK TO SAVEPOINT tandem_sp{}", sp.depth).as_str())
            .await?;
        (&mut **self.tx_mut())
            .execute(format!("RELEASE SAVEPOINT tandem_sp{}", sp.depth).as_str())
            .await?;
        self.savepoints = sp.depth - 1;
        self.pending_audit.truncate(sp.audit);
        Ok(())
    }
}

impl Deref for Write {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.tx
            .as_ref()
            .expect("a Write's transaction is there until it ends")
    }
}
impl DerefMut for Write {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.tx_mut()
    }
}

/// A `Write` dropped without `commit` rolls back — and keeps SQLite's writer lock until the
/// rollback has run. (sqlx only queues a dropped transaction's rollback on its connection;
/// releasing the lock at once let the next writer start while the old transaction still held
/// the database, and fail with "database is locked".)
impl Drop for Write {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else { return };
        let guard = self.guard.take();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = tx.rollback().await;
                    drop(guard);
                });
            }
            // Outside a runtime: sqlx queues the rollback on the connection.
            Err(_) => drop((tx, guard)),
        }
    }
}
