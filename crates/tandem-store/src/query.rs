//! The small amount of machinery the repositories share: a builder for SQL with numbered
//! placeholders, tenant-scope clauses, row decoding, paging and migrations.

use crate::{Backend, Result, Store, StoreError};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Executor, Row};
use std::str::FromStr;
use tandem_domain::authz::{ClientScope, Grant};
use tandem_domain::Timestamp;

/// Splits `items` into runs whose lengths are powers of two, at most `max` (a power of two)
/// each, for multi-row statements: a handful of statement texts then serve every batch size
/// and stay in the connection's statement cache, and no statement carries so many bound
/// values that binding them gets slow (sqlx looks up each SQLite parameter's name, and
/// SQLite finds a name by walking the list of them: quadratic in the count).
pub(crate) fn pow2_chunks<T>(mut items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(max.is_power_of_two());
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let size = 1usize << items.len().min(max).ilog2();
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

/// One bound value.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
}

/// SQL text and its arguments, with `$n` placeholders numbered as they are pushed.
///
/// Through sqlx on SQLite the placeholders are sent as anonymous `?` instead (see
/// [`Sql::text_for`]): sqlx asks SQLite the name of every parameter it binds, and SQLite finds
/// a name by walking the list of them, so binding a statement of `$n` placeholders is
/// quadratic in their count — at a million endpoints the metrics rollups' 640-value inserts
/// took a tenth of a core for that alone (docs/BENCHMARKS.md). Anonymous parameters
/// have no name to walk to, and are numbered in the order they appear, as `$1`, `$2`, … are.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sql {
    text: String,
    args: Vec<Arg>,
    /// Where each placeholder starts in `text`, in order.
    marks: Vec<usize>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            args: Vec::new(),
            marks: Vec::new(),
        }
    }
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }
    fn placeholder(&mut self, a: Arg) -> &mut Self {
        self.args.push(a);
        let n = self.args.len();
        self.marks.push(self.text.len());
        self.text.push_str(&format!("${n}"));
        self
    }
    pub(crate) fn text(&mut self, v: impl Into<String>) -> &mut Self {
        self.placeholder(Arg::Text(Some(v.into())))
    }
    pub(crate) fn opt_text(&mut self, v: Option<String>) -> &mut Self {
        self.placeholder(Arg::Text(v))
    }
    pub(crate) fn int(&mut self, v: i64) -> &mut Self {
        self.placeholder(Arg::Int(Some(v)))
    }
    pub(crate) fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        self.placeholder(Arg::Int(v))
    }
    /// Appends a condition on `column` (a client id column) that is true only for rows the
    /// grant reaches. Rows with a NULL client id are provider-level.
    pub(crate) fn scope(&mut self, column: &str, grant: &Grant) -> &mut Self {
        self.push("(");
        let mut any = false;
        if grant.covers_provider() {
            self.push(&format!("{column} IS NULL"));
            any = true;
        }
        let ids = |s: &std::collections::BTreeSet<tandem_domain::ClientId>| {
            s.iter().map(|c| c.to_string()).collect::<Vec<_>>()
        };
        match grant.clients() {
            ClientScope::All => {
                if any {
                    self.push(" OR ");
                }
                self.push(&format!("{column} IS NOT NULL"));
                any = true;
            }
            ClientScope::AllExcept(deny) => {
                if any {
                    self.push(" OR ");
                }
                self.push(&format!("({column} IS NOT NULL"));
                if !deny.is_empty() {
                    self.push(&format!(" AND {column} NOT IN ("));
                    self.list(ids(deny));
                    self.push(")");
                }
                self.push(")");
                any = true;
            }
            ClientScope::Only(allow) if !allow.is_empty() => {
                if any {
                    self.push(" OR ");
                }
                self.push(&format!("{column} IN ("));
                self.list(ids(allow));
                self.push(")");
                any = true;
            }
            ClientScope::Only(_) => {}
        }
        if !any {
            self.push("1 = 0");
        }
        self.push(")")
    }
    /// Appends a case-insensitive "column contains needle" test, with LIKE wildcards in the
    /// needle taken literally.
    pub(crate) fn contains(&mut self, column: &str, needle: &str) -> &mut Self {
        let mut pattern = String::from("%");
        for ch in needle.trim().to_lowercase().chars() {
            if matches!(ch, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(ch);
        }
        pattern.push('%');
        self.push(&format!("LOWER({column}) LIKE "))
            .text(pattern)
            .push(" ESCAPE '\\'")
    }
    fn list(&mut self, values: Vec<String>) {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(v);
        }
    }
    pub(crate) fn page(&mut self, page: &Page) -> &mut Self {
        self.push(" LIMIT ")
            .int(page.limit as i64)
            .push(" OFFSET ")
            .int(page.offset as i64)
    }
    /// The text to send over `c`: as written for PostgreSQL, with `?` placeholders for
    /// SQLite.
    pub(crate) fn text_for(&self, c: &AnyConnection) -> std::borrow::Cow<'_, str> {
        if self.marks.is_empty() || c.backend_name() != "SQLite" {
            return std::borrow::Cow::Borrowed(&self.text);
        }
        std::borrow::Cow::Owned(self.anonymous())
    }
    /// The text with each `$n` placeholder written `?`.
    fn anonymous(&self) -> String {
        let mut out = String::with_capacity(self.text.len());
        let mut from = 0;
        for &at in &self.marks {
            out.push_str(&self.text[from..at]);
            out.push('?');
            // Past the `$` and the digits of its number.
            from = at
                + 1
                + self.text[at + 1..]
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .count();
        }
        out.push_str(&self.text[from..]);
        out
    }
    /// The query for `text` (this one's, from [`Sql::text_for`]) with the arguments bound.
    pub(crate) fn query<'q>(&'q self, text: &'q str) -> Query<'q, Any, AnyArguments<'q>> {
        let mut q = sqlx::query(text);
        for a in &self.args {
            q = match a {
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Int(v) => q.bind(*v),
            };
        }
        q
    }
    pub(crate) async fn fetch_all(&self, c: &mut AnyConnection) -> Result<Vec<AnyRow>> {
        let text = self.text_for(c);
        Ok(self.query(&text).fetch_all(c).await?)
    }
    pub(crate) async fn fetch_optional(&self, c: &mut AnyConnection) -> Result<Option<AnyRow>> {
        let text = self.text_for(c);
        Ok(self.query(&text).fetch_optional(c).await?)
    }
    pub(crate) async fn execute(&self, c: &mut AnyConnection) -> Result<u64> {
        let text = self.text_for(c);
        Ok(self.query(&text).execute(c).await?.rows_affected())
    }

    /// Runs this query (a `SELECT` of `columns`, in that order, sorted by `order`, an
    /// `ORDER BY` list over the columns) and decodes each row as a `T` (a tuple of the
    /// columns' types), for lists read on every page view.
    ///
    /// On SQLite the rows are read on the calling thread ([`crate::Read::direct`]). Through
    /// sqlx (PostgreSQL, or SQLite when that fails) the database gathers the page into one
    /// JSON array of arrays, in `order`, so one value crosses the driver instead of one row
    /// per item: on SQLite each row is otherwise handed across sqlx's worker thread and every
    /// value copied twice (into the SQLite row, then the `Any` row), which made a page of
    /// fifty users cost four times a request that reads nothing (issue #2). Both paths give
    /// the same values: integers as `i64`, text and NULL as they are.
    pub(crate) async fn fetch_page<T: serde::de::DeserializeOwned>(
        &self,
        c: &mut crate::Read,
        columns: &[&str],
        order: &str,
    ) -> Result<Vec<T>> {
        if let Some(rows) = self.try_direct::<T>(c) {
            return rows;
        }
        let cols = columns
            .iter()
            .map(|c| format!("p.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let order = order
            .split(',')
            .map(|o| format!("p.{}", o.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        // (Placeholders keep their numbers: the query is wrapped, not rewritten.)
        let head = if is_postgres(c) {
            format!(
                "SELECT COALESCE(json_agg(json_build_array({cols}) ORDER BY {order})::text, '[]') \
                 AS page FROM ("
            )
        } else {
            format!("SELECT json_group_array(json_array({cols}) ORDER BY {order}) AS page FROM (")
        };
        let wrapped = Sql {
            text: format!("{head}{}) p", self.text),
            args: self.args.clone(),
            marks: self.marks.iter().map(|m| m + head.len()).collect(),
        };
        let json = match &wrapped.fetch_optional(c).await? {
            Some(r) => opt_text(r, "page")?.unwrap_or_default(),
            None => String::new(),
        };
        if json.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("a list read as JSON does not decode: {e}")))
    }

    /// Runs this query (a `SELECT` of `T`'s columns, in order) and decodes each row as a
    /// `T`: on SQLite on the calling thread, by position ([`crate::Read::direct`]); through
    /// sqlx (PostgreSQL, or SQLite when that fails) one row at a time with `by_name`.
    ///
    /// [`Sql::fetch_page`] differs only in how it reads through sqlx (one JSON value); this
    /// is for lists whose PostgreSQL figures were measured row by row (the ticket queue).
    pub(crate) async fn fetch_rows<T: serde::de::DeserializeOwned>(
        &self,
        c: &mut crate::Read,
        by_name: fn(&AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        if let Some(rows) = self.try_direct::<T>(c) {
            return rows;
        }
        self.fetch_all(c).await?.iter().map(by_name).collect()
    }

    /// The rows read directly, if this read could.
    fn try_direct<T: serde::de::DeserializeOwned>(
        &self,
        c: &mut crate::Read,
    ) -> Option<Result<Vec<T>>> {
        let rows = c.direct(|conn| self.direct_rows::<T>(conn))?;
        Some(rows.map_err(|e| StoreError::Corrupt(format!("a list row does not decode: {e}"))))
    }

    /// Runs this query on a plain SQLite connection and decodes its rows. The outer result
    /// is the database's (the caller may retry through sqlx); the inner one the decoding's.
    pub(crate) fn direct_rows<T: serde::de::DeserializeOwned>(
        &self,
        conn: &rusqlite::Connection,
    ) -> rusqlite::Result<std::result::Result<Vec<T>, crate::row_de::DecodeError>> {
        let mut st = conn.prepare_cached(&self.text)?;
        self.bind_direct(&mut st)?;
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            match crate::row_de::from_row(row) {
                Ok(v) => out.push(v),
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(out))
    }

    /// Runs this statement (one that returns no rows) on a plain SQLite connection; answers
    /// how many rows it changed.
    pub(crate) fn execute_direct(&self, conn: &rusqlite::Connection) -> rusqlite::Result<usize> {
        let mut st = conn.prepare_cached(&self.text)?;
        self.bind_direct(&mut st)?;
        st.raw_execute()
    }

    /// Binds the arguments to a statement prepared from this text, by position.
    ///
    /// SQLite numbers `$n` parameters in the order they first appear, and the builder writes
    /// `$1`, `$2`, … in order, each once, so argument `i` is parameter `i`. Both ends are
    /// checked by name — every argument must have its placeholder, as sqlx requires — but
    /// not each one: SQLite finds a parameter's name or index by walking the list of them,
    /// so looking each up made binding a statement of a few hundred values quadratic.
    fn bind_direct(&self, st: &mut rusqlite::Statement<'_>) -> rusqlite::Result<()> {
        let n = self.args.len();
        if st.parameter_count() != n {
            return Err(rusqlite::Error::InvalidParameterCount(
                n,
                st.parameter_count(),
            ));
        }
        for i in [1, n].into_iter().filter(|&i| i >= 1 && i <= n) {
            let want = format!("${i}");
            if st.parameter_name(i) != Some(want.as_str()) {
                return Err(rusqlite::Error::InvalidParameterName(want));
            }
        }
        for (i, a) in self.args.iter().enumerate() {
            match a {
                Arg::Text(v) => st.raw_bind_parameter(i + 1, v)?,
                Arg::Int(v) => st.raw_bind_parameter(i + 1, v)?,
            }
        }
        Ok(())
    }
}

/// Which slice of a list to return: at most `limit` items after skipping `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Items to skip.
    pub offset: u32,
    /// Items to return, 1 to 500.
    pub limit: u32,
}

impl Page {
    /// The largest page anyone can ask for.
    pub const MAX_LIMIT: u32 = 500;

    /// A page, with the limit clamped to 1..=500.
    pub fn new(offset: u32, limit: u32) -> Self {
        Page {
            offset,
            limit: limit.clamp(1, Self::MAX_LIMIT),
        }
    }
    /// Asks for one item more than the page holds, to know whether there is a next page.
    pub(crate) fn probe(&self) -> Page {
        Page {
            offset: self.offset,
            limit: self.limit + 1,
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::new(0, 50)
    }
}

/// A page of results and whether more follow.
#[derive(Clone, Debug)]
pub struct Paged<T> {
    /// The items.
    pub items: Vec<T>,
    /// Whether there is another page after this one.
    pub has_more: bool,
}

impl<T> Paged<T> {
    pub(crate) fn from_probe(mut items: Vec<T>, page: &Page) -> Self {
        let has_more = items.len() > page.limit as usize;
        items.truncate(page.limit as usize);
        Paged { items, has_more }
    }
}

// ---- decoding -------------------------------------------------------------------------

/// Whether the connection is to PostgreSQL (SQLite otherwise).
pub(crate) fn is_postgres(c: &AnyConnection) -> bool {
    c.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Takes the transaction-scoped lock that orders writers handing out the next number of a
/// sequence (`what`, such as a client's tickets) before they read `MAX(number) + 1`. SQLite has
/// one writer, so it needs none; on PostgreSQL two transactions would otherwise read the same
/// maximum and the second would fail on the unique key instead of taking the next number.
pub(crate) async fn lock_numbering(c: &mut AnyConnection, what: &str) -> Result<()> {
    if is_postgres(c) {
        // (Wrapped: the lock function returns `void`, which the `Any` rows cannot carry.)
        Sql::new("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtextextended(")
            .text(what)
            .push(", 0))) AS l")
            .execute(c)
            .await?;
    }
    Ok(())
}

pub(crate) fn text(row: &AnyRow, col: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(col)?)
}
pub(crate) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}
pub(crate) fn int(row: &AnyRow, col: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}
pub(crate) fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}
pub(crate) fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(int(row, col)? != 0)
}
pub(crate) fn ts(row: &AnyRow, col: &str) -> Result<Timestamp> {
    Ok(Timestamp(int(row, col)?))
}
pub(crate) fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>> {
    Ok(opt_int(row, col)?.map(Timestamp))
}
pub(crate) fn parsed<T: FromStr>(row: &AnyRow, col: &str) -> Result<T> {
    parse_value(col, &text(row, col)?)
}
/// Parses a column's text value (an id, a name of an enum), read by name or by position.
pub(crate) fn parse_value<T: FromStr>(col: &str, v: &str) -> Result<T> {
    v.parse()
        .map_err(|_| StoreError::Corrupt(format!("column {col} holds {v:?}")))
}
/// [`parse_value`] for a column that may be NULL.
pub(crate) fn parse_opt_value<T: FromStr>(col: &str, v: Option<&str>) -> Result<Option<T>> {
    v.map(|v| parse_value(col, v)).transpose()
}
pub(crate) fn opt_parsed<T: FromStr>(row: &AnyRow, col: &str) -> Result<Option<T>> {
    match opt_text(row, col)? {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("column {col} holds {s:?}"))),
    }
}

// ---- migrations -----------------------------------------------------------------------

/// Every migration, in order. Each is portable SQL; statements end with `;` at line end.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/0001_foundation.sql"),
    ),
    (2, "scope", include_str!("../migrations/0002_scope.sql")),
    (
        3,
        "endpoints",
        include_str!("../migrations/0003_endpoints.sql"),
    ),
    (4, "tickets", include_str!("../migrations/0004_tickets.sql")),
    // tickets2: watchers, tags, links, merges, SLA policies and events.
    (
        5,
        "tickets2",
        include_str!("../migrations/0005_tickets2.sql"),
    ),
    // Mail (issue #5).
    (6, "mail", include_str!("../migrations/0006_mail.sql")),
    // search (issue #5): full-text search and saved views
    (
        7,
        "ticket_search",
        include_str!("../migrations/0007_ticket_search.sql"),
    ),
    // alerts (issue #6)
    (8, "alerts", include_str!("../migrations/0008_alerts.sql")),
    // on-call (issue #6)
    (9, "oncall", include_str!("../migrations/0009_oncall.sql")),
    // metrics (issue #6) and the narrow endpoints row (issue #4)
    (
        10,
        "metrics",
        include_str!("../migrations/0010_metrics.sql"),
    ),
    // ingest (issue #6)
    (11, "ingest", include_str!("../migrations/0011_ingest.sql")),
    // Alerts page the owning side through on-call (integration of issue #6).
    (
        12,
        "alert_paging",
        include_str!("../migrations/0012_alert_paging.sql"),
    ),
    // Ticket attachments (issue #5).
    (
        13,
        "ticket_attachments",
        include_str!("../migrations/0013_ticket_attachments.sql"),
    ),
    // CSV ticket import (issue #5).
    (
        14,
        "ticket_import",
        include_str!("../migrations/0014_ticket_import.sql"),
    ),
    // Maintenance windows that silence alerts (issue #6).
    (
        15,
        "maintenance_windows",
        include_str!("../migrations/0015_maintenance_windows.sql"),
    ),
    // Notification channels and their deliveries outbox (issue #6).
    (
        16,
        "notification_channels",
        include_str!("../migrations/0016_notification_channels.sql"),
    ),
    // Token → principal caches learn of changes to who may do what (issue #2).
    (
        17,
        "auth_epoch",
        include_str!("../migrations/0017_auth_epoch.sql"),
    ),
    // Alerts open and update tickets by policy; tickets opened by Tandem (issue #6).
    (
        18,
        "alert_tickets",
        include_str!("../migrations/0018_alert_tickets.sql"),
    ),
    // Ticket search at scale (issue #5's measure): the tenant inside the indexes.
    (
        19,
        "search_scope",
        include_str!("../migrations/0019_search_scope.sql"),
    ),
    // A client's active queue newest first from an index (issue #5's measure).
    (
        20,
        "ticket_queue_active",
        include_str!("../migrations/0020_ticket_queue_active.sql"),
    ),
    // Tickets linked to endpoints (issue #5). 21 is another branch's.
    (
        22,
        "ticket_endpoints",
        include_str!("../migrations/0022_ticket_endpoints.sql"),
    ),
    (
        23,
        "users_by_name",
        include_str!("../migrations/0023_users_by_name.sql"),
    ),
    (
        24,
        "endpoints_fillfactor",
        include_str!("../migrations/0024_endpoints_fillfactor.sql"),
    ),
    (
        25,
        "raw_samples",
        include_str!("../migrations/0025_raw_samples.sql"),
    ),
    (
        26,
        "facts_revision",
        include_str!("../migrations/0026_facts_revision.sql"),
    ),
];

/// A migration file whose first lines hold this directive is run, on SQLite, with foreign-key
/// enforcement off around its transaction, and checked with `PRAGMA foreign_key_check` before
/// it commits: SQLite's documented way to rebuild a table other tables reference (a `DROP
/// TABLE` with enforcement on fails, and `PRAGMA foreign_keys` cannot change inside a
/// transaction). PostgreSQL ignores it.
const SQLITE_FOREIGN_KEYS_OFF: &str = "-- sqlite: foreign keys off";

fn sqlite_foreign_keys_off(sql: &str) -> bool {
    sql.lines()
        .take_while(|l| l.trim().starts_with("--"))
        .any(|l| l.trim() == SQLITE_FOREIGN_KEYS_OFF)
}

/// Statements of a migration file, without comments, each with the backend it is limited to:
/// a statement right after a `-- only: sqlite` or `-- only: postgres` line runs only there.
fn statements(sql: &str) -> Vec<(Option<Backend>, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut only = None;
    for line in sql.lines() {
        let l = line.trim();
        if cur.is_empty() {
            match l {
                "-- only: sqlite" => only = Some(Backend::Sqlite),
                "-- only: postgres" => only = Some(Backend::Postgres),
                _ => {}
            }
        }
        if l.starts_with("--") || l.is_empty() {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if l.ends_with(';') {
            out.push((only.take(), cur.trim().trim_end_matches(';').to_string()));
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push((only, cur.trim().to_string()));
    }
    out
}

pub(crate) async fn migrate(store: &Store) -> Result<Vec<&'static str>> {
    let mut conn = store.pool.acquire().await?;
    // Several servers may start at once against one PostgreSQL; one migrates, the others wait.
    if store.backend == Backend::Postgres {
        conn.execute("SELECT pg_advisory_lock(727473)").await?;
    }
    let result = migrate_locked(store, &mut conn).await;
    if result.is_err() {
        // Not back into the pool: a failed migration may have left it in any state (such
        // as SQLite's foreign-key enforcement switched off by a rebuilding migration).
        conn.close_on_drop();
    }
    if store.backend == Backend::Postgres {
        conn.execute("SELECT pg_advisory_unlock(727473)").await?;
    }
    result
}

async fn migrate_locked(store: &Store, conn: &mut AnyConnection) -> Result<Vec<&'static str>> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let done: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>("version"))
        .collect::<std::result::Result<_, _>>()?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let _guard = match &store.writer {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        let fk_off = store.backend == Backend::Sqlite && sqlite_foreign_keys_off(sql);
        if fk_off {
            conn.execute("PRAGMA foreign_keys = OFF").await?;
        }
        let outcome = apply_migration(store, conn, *version, name, sql, fk_off).await;
        if fk_off {
            // Enforcement back on before the connection serves anything else (a connection
            // that cannot have it back is closed by `migrate`, never pooled again).
            if let Err(e) = conn.execute("PRAGMA foreign_keys = ON").await {
                return Err(StoreError::Corrupt(format!(
                    "could not turn foreign keys back on after migration {name}: {e}"
                )));
            }
        }
        if !outcome? {
            continue;
        }
        applied.push(*name);
    }
    Ok(applied)
}

/// Applies one migration in its own transaction. Returns `false` when another process had
/// already claimed its version.
async fn apply_migration(
    store: &Store,
    conn: &mut AnyConnection,
    version: i64,
    name: &str,
    sql: &str,
    fk_check: bool,
) -> Result<bool> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // Claim the version before applying it. Another process on the same SQLite file
    // (which the advisory lock above does not cover) may have applied it since `done`
    // was read: then the claim conflicts, and dropping `tx` rolls it back.
    let claim = Sql::new("INSERT INTO schema_migrations (version, name, applied_at) VALUES (")
        .int(version)
        .push(", ")
        .text(name)
        .push(", ")
        .int(Timestamp::now().0)
        .push(")")
        .execute(&mut tx)
        .await;
    match claim {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Ok(false),
        Err(e) => return Err(e),
    }
    for (only, stmt) in statements(sql) {
        if only.is_some_and(|b| b != store.backend) {
            continue;
        }
        tx.execute(stmt.as_str()).await?;
    }
    if fk_check {
        let broken = tx.fetch_all("PRAGMA foreign_key_check").await?;
        if !broken.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "migration {name} would leave {} row(s) with broken foreign keys",
                broken.len()
            )));
        }
    }
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_text_has_anonymous_placeholders_and_keeps_literal_dollars() {
        let mut q = Sql::new("SELECT json_extract(x, '$.a') FROM t WHERE a = ");
        q.int(1).push(" AND b IN (");
        for i in 0..11 {
            q.push(if i == 0 { "" } else { ", " }).text(format!("v{i}"));
        }
        q.push(") AND c = ").opt_int(None);
        assert!(q.text.contains("$13"), "{}", q.text);
        assert_eq!(
            q.anonymous(),
            "SELECT json_extract(x, '$.a') FROM t WHERE a = ? AND b IN \
             (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) AND c = ?"
        );
        assert_eq!(Sql::new("SELECT '$1'").anonymous(), "SELECT '$1'");
    }

    #[test]
    fn pow2_chunks_cover_everything_in_order_with_few_sizes() {
        for n in 0..300usize {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = pow2_chunks(&items, 64).collect();
            assert_eq!(chunks.concat(), items);
            assert!(chunks
                .iter()
                .all(|c| c.len().is_power_of_two() && c.len() <= 64));
            // Only the tail is cut smaller than the largest size that fits.
            assert!(chunks.len() <= n / 64 + 7, "{n}: {}", chunks.len());
        }
    }

    #[test]
    fn splits_statements_and_drops_comments() {
        let s = statements("-- a\nCREATE TABLE a (x TEXT);\nINSERT INTO a\nVALUES ('1');\n");
        assert_eq!(
            s,
            vec![
                (None, "CREATE TABLE a (x TEXT)".to_string()),
                (None, "INSERT INTO a\nVALUES ('1')".to_string())
            ]
        );
    }

    #[test]
    fn the_foreign_keys_directive_is_read_from_the_leading_comments_only() {
        assert!(sqlite_foreign_keys_off(
            "-- sqlite: foreign keys off\n-- why\nCREATE TABLE a (x TEXT);\n"
        ));
        assert!(!sqlite_foreign_keys_off(
            "CREATE TABLE a (x TEXT);\n-- sqlite: foreign keys off\n"
        ));
        assert!(!sqlite_foreign_keys_off("-- a\nCREATE TABLE a (x TEXT);\n"));
    }

    #[test]
    fn a_statement_may_be_limited_to_one_backend() {
        let s = statements(
            "-- only: sqlite\nCREATE TABLE a (x TEXT);\n-- only: postgres\n-- why\nCREATE TABLE b (x TEXT);\nCREATE TABLE c (x TEXT);\n",
        );
        assert_eq!(
            s,
            vec![
                (Some(Backend::Sqlite), "CREATE TABLE a (x TEXT)".to_string()),
                (
                    Some(Backend::Postgres),
                    "CREATE TABLE b (x TEXT)".to_string()
                ),
                (None, "CREATE TABLE c (x TEXT)".to_string())
            ]
        );
    }
}
