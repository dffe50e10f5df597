//! Test databases for the conformance suite and for the crates above the store.
//!
//! Compiled only with the `test-support` feature. [`sqlite`] always works; [`postgres`]
//! needs a PostgreSQL server named by `TANDEM_TEST_POSTGRES_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/postgres`) and makes a throwaway database on it for
//! each test. Without that variable PostgreSQL is skipped, except under CI (`CI=true`),
//! where a missing server is an error: CI must fail rather than test one backend quietly.

use crate::{Backend, OpenOptions, Result, Store};
use sqlx::{AnyConnection, Connection, Executor};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// The variable naming the PostgreSQL server to make test databases on.
pub const POSTGRES_URL_VAR: &str = "TANDEM_TEST_POSTGRES_URL";

/// A throwaway database with a store open on it.
///
/// Call [`TestDb::cleanup`] when done: it closes the store and, for PostgreSQL, drops the
/// database. Dropping a `TestDb` without it removes a SQLite file but leaves a PostgreSQL
/// database behind.
pub struct TestDb {
    /// The store, migrated unless made by one of the `*_unmigrated` functions.
    pub store: Store,
    /// The URL the store was opened with: open more handles on the same database with it.
    pub url: String,
    kind: Kind,
}

enum Kind {
    Sqlite { dir: tempfile::TempDir },
    Postgres { admin_url: String, database: String },
}

impl TestDb {
    /// The backend behind this database.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Closes the store and removes the database.
    pub async fn cleanup(self) {
        self.store.close().await;
        match self.kind {
            Kind::Sqlite { dir } => drop(dir),
            Kind::Postgres {
                admin_url,
                database,
            } => {
                let mut admin = admin_connection(&admin_url).await;
                admin
                    .execute(
                        format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)").as_str(),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("could not drop test database {database}: {e}"));
                let _ = admin.close().await;
            }
        }
    }

    async fn migrated(self) -> TestDb {
        self.store.migrate().await.unwrap_or_else(|e| {
            panic!("migrating the {} test database: {e}", self.backend().name())
        });
        self
    }
}

/// A fresh, migrated SQLite database in a temporary directory.
pub async fn sqlite() -> TestDb {
    sqlite_unmigrated().await.migrated().await
}

/// A fresh SQLite database without any tables.
pub async fn sqlite_unmigrated() -> TestDb {
    let dir = tempfile::tempdir().expect("a temporary directory for the test database");
    let url = dir.path().join("tandem.db").to_string_lossy().into_owned();
    let store = Store::open(&url, OpenOptions::default())
        .await
        .unwrap_or_else(|e| panic!("opening test SQLite database {url}: {e}"));
    TestDb {
        store,
        url,
        kind: Kind::Sqlite { dir },
    }
}

/// A fresh, migrated PostgreSQL database, when `TANDEM_TEST_POSTGRES_URL` names a server.
///
/// # Panics
///
/// When the variable is unset and `CI` is `true`, or when the server cannot be used.
pub async fn postgres() -> Option<TestDb> {
    Some(postgres_unmigrated().await?.migrated().await)
}

/// A fresh PostgreSQL database without any tables; see [`postgres`].
pub async fn postgres_unmigrated() -> Option<TestDb> {
    let admin_url = postgres_server_url()?;
    let database = unique_database_name();
    let mut admin = admin_connection(&admin_url).await;
    admin
        .execute(format!("CREATE DATABASE \"{database}\"").as_str())
        .await
        .unwrap_or_else(|e| panic!("creating test database {database}: {e}"));
    let _ = admin.close().await;
    let url = with_database(&admin_url, &database);
    let store = Store::open(&url, OpenOptions::default())
        .await
        .unwrap_or_else(|e| panic!("opening test database {database}: {e}"));
    Some(TestDb {
        store,
        url,
        kind: Kind::Postgres {
            admin_url,
            database,
        },
    })
}

/// Every backend available here, migrated: SQLite always, PostgreSQL when configured.
pub async fn all() -> Vec<TestDb> {
    let mut dbs = vec![sqlite().await];
    dbs.extend(postgres().await);
    dbs
}

/// Every backend available here, without tables; see [`all`].
pub async fn all_unmigrated() -> Vec<TestDb> {
    let mut dbs = vec![sqlite_unmigrated().await];
    dbs.extend(postgres_unmigrated().await);
    dbs
}

/// The PostgreSQL server URL to test against, or `None` to skip PostgreSQL.
fn postgres_server_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "{POSTGRES_URL_VAR} is not set, but CI=true: CI must test PostgreSQL as well as \
             SQLite. Start a PostgreSQL server and set {POSTGRES_URL_VAR} to a URL such as \
             postgres://postgres@127.0.0.1:5432/postgres"
        ),
        _ => None,
    }
}

async fn admin_connection(url: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("connecting to the PostgreSQL server at {POSTGRES_URL_VAR}: {e}")
    })
}

/// `tandem_test_<pid>_<counter>_<random>`: unique across tests, test binaries and runs.
fn unique_database_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = RandomState::new().hash_one((n, std::time::SystemTime::now()));
    format!(
        "tandem_test_{}_{}_{:08x}",
        std::process::id(),
        n,
        random as u32
    )
}

/// The server URL with its database name replaced, keeping any query string.
fn with_database(server_url: &str, database: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{database}", &base[..path_start]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

impl Store {
    /// Runs one SQL statement outside the repositories, in its own write transaction, and
    /// returns the rows it changed. For tests that tamper with stored data.
    pub async fn raw_execute(&self, sql: &str) -> Result<u64> {
        let mut w = self.write().await?;
        let n = w.execute(sql).await?.rows_affected();
        w.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_of_a_server_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@db/postgres?sslmode=disable", "t1"),
            "postgres://u:p@db/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://db:5432", "t1"),
            "postgresql://db:5432/t1"
        );
    }

    #[test]
    fn database_names_are_unique_plain_identifiers() {
        let a = unique_database_name();
        let b = unique_database_name();
        assert_ne!(a, b);
        for name in [a, b] {
            assert!(name.starts_with(&format!("tandem_test_{}_", std::process::id())));
            assert!(name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
    }
}
