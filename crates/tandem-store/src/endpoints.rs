//! Endpoints: enrollment tokens, the agents' identities, each endpoint's current state and
//! its timeline.
//!
//! Reads for people are scoped by a grant. The agent-facing functions
//! ([`enrollment_token_by_hash`], [`agent`], [`record_checkin`]) are unscoped by design:
//! the agent's own credential has already named the one endpoint concerned.

use crate::query::{int, opt_int, opt_text, opt_ts, parsed, text, ts, Sql};
use crate::{Conn, Page, Paged, Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::Grant;
use tandem_domain::fleet::{
    Change, ChangeKind, Endpoint, EndpointEvent, EnrollmentToken, FleetFilter, Presence, Summary,
};
use tandem_domain::{ClientId, EndpointId, EnrollmentTokenId, Timestamp};

// ---- enrollment tokens ------------------------------------------------------------------

/// Stores a new enrollment token under the SHA-256 of its secret.
pub async fn insert_enrollment_token(
    c: &mut AnyConnection,
    t: &EnrollmentToken,
    token_hash: &str,
) -> Result<()> {
    Sql::new(
        "INSERT INTO enrollment_tokens (id, client_id, site_id, label, token_hash, prefix, \
         max_uses, uses, created_by, created_at, expires_at, revoked_at) VALUES (",
    )
    .text(t.id.to_string())
    .push(", ")
    .text(t.client_id.to_string())
    .push(", ")
    .text(t.site_id.to_string())
    .push(", ")
    .text(t.label.clone())
    .push(", ")
    .text(token_hash)
    .push(", ")
    .text(t.prefix.clone())
    .push(", ")
    .opt_int(t.max_uses.map(i64::from))
    .push(", ")
    .int(i64::from(t.uses))
    .push(", ")
    .text(t.created_by.to_string())
    .push(", ")
    .int(t.created_at.0)
    .push(", ")
    .int(t.expires_at.0)
    .push(", ")
    .opt_int(t.revoked_at.map(|t| t.0))
    .push(")")
    .execute(c)
    .await?;
    Ok(())
}

/// Enrollment tokens the grant reaches, newest first; one client's when `client` is set.
pub async fn list_enrollment_tokens(
    c: &mut AnyConnection,
    grant: &Grant,
    client: Option<ClientId>,
    page: Page,
) -> Result<Paged<EnrollmentToken>> {
    let mut q = Sql::new("SELECT * FROM enrollment_tokens WHERE ");
    q.scope("client_id", grant);
    if let Some(cid) = client {
        q.push(" AND client_id = ").text(cid.to_string());
    }
    q.push(" ORDER BY created_at DESC, id").page(&page.probe());
    let items = q
        .fetch_all(c)
        .await?
        .iter()
        .map(enrollment_token)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

/// One enrollment token, if the grant reaches it.
pub async fn get_enrollment_token(
    c: &mut AnyConnection,
    grant: &Grant,
    id: EnrollmentTokenId,
) -> Result<Option<EnrollmentToken>> {
    let mut q = Sql::new("SELECT * FROM enrollment_tokens WHERE id = ");
    q.text(id.to_string())
        .push(" AND ")
        .scope("client_id", grant);
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map(enrollment_token)
        .transpose()
}

/// Revokes a token. Returns whether a live token was revoked.
pub async fn revoke_enrollment_token(
    c: &mut AnyConnection,
    id: EnrollmentTokenId,
    now: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE enrollment_tokens SET revoked_at = ")
        .int(now.0)
        .push(" WHERE id = ")
        .text(id.to_string())
        .push(" AND revoked_at IS NULL")
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// The token with this secret hash (for an agent enrolling; unscoped).
pub async fn enrollment_token_by_hash(
    c: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<EnrollmentToken>> {
    Sql::new("SELECT * FROM enrollment_tokens WHERE token_hash = ")
        .text(token_hash)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(enrollment_token)
        .transpose()
}

/// Counts one use of a token, only if it is still usable at `now`. Returns whether it was:
/// two agents racing for the last use cannot both win.
pub async fn claim_enrollment_use(
    c: &mut AnyConnection,
    id: EnrollmentTokenId,
    now: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ")
        .text(id.to_string())
        .push(" AND revoked_at IS NULL AND expires_at > ")
        .int(now.0)
        .push(" AND (max_uses IS NULL OR uses < max_uses)")
        .execute(c)
        .await?;
    Ok(n == 1)
}

fn enrollment_token(r: &AnyRow) -> Result<EnrollmentToken> {
    let count = |col: &str| -> Result<Option<u32>> {
        opt_int(r, col)?
            .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col}: {v}"))))
            .transpose()
    };
    Ok(EnrollmentToken {
        id: parsed(r, "id")?,
        client_id: parsed(r, "client_id")?,
        site_id: parsed(r, "site_id")?,
        label: text(r, "label")?,
        prefix: text(r, "prefix")?,
        max_uses: count("max_uses")?,
        uses: count("uses")?.unwrap_or(0),
        created_by: parsed(r, "created_by")?,
        created_at: ts(r, "created_at")?,
        expires_at: ts(r, "expires_at")?,
        revoked_at: opt_ts(r, "revoked_at")?,
    })
}

// ---- endpoints: the agent's side ----------------------------------------------------------

/// What a newly enrolled endpoint starts with.
pub struct NewEndpoint<'a> {
    /// Its id.
    pub id: EndpointId,
    /// The token it enrolled with.
    pub token: &'a EnrollmentToken,
    /// The agent's ed25519 public key (base64).
    pub public_key: &'a str,
    /// Host name.
    pub hostname: &'a str,
    /// OS family.
    pub os_family: &'a str,
    /// Architecture.
    pub arch: &'a str,
    /// Agent version.
    pub agent_version: &'a str,
    /// Now.
    pub at: Timestamp,
}

/// Records an enrolled endpoint.
pub async fn insert_endpoint(c: &mut AnyConnection, e: &NewEndpoint<'_>) -> Result<()> {
    Sql::new(
        "INSERT INTO endpoints (id, client_id, site_id, enrolled_with, public_key, hostname, \
         os_family, arch, agent_version, enrolled_at) VALUES (",
    )
    .text(e.id.to_string())
    .push(", ")
    .text(e.token.client_id.to_string())
    .push(", ")
    .text(e.token.site_id.to_string())
    .push(", ")
    .text(e.token.id.to_string())
    .push(", ")
    .text(e.public_key)
    .push(", ")
    .text(e.hostname)
    .push(", ")
    .text(e.os_family)
    .push(", ")
    .text(e.arch)
    .push(", ")
    .text(e.agent_version)
    .push(", ")
    .int(e.at.0)
    .push(")")
    .execute(c)
    .await?;
    Ok(())
}

/// What the server knows of an agent when it checks in.
#[derive(Clone, Debug)]
pub struct Agent {
    /// The endpoint.
    pub id: EndpointId,
    /// Its client.
    pub client_id: ClientId,
    /// Its public key (base64).
    pub public_key: String,
    /// The highest sequence number committed so far.
    pub last_seq: u64,
    /// Whether an inventory is on file (else a full one is wanted).
    pub has_inventory: bool,
    /// Set when the endpoint was retired: its agent is refused.
    pub retired_at: Option<Timestamp>,
}

/// The agent with this id (unscoped: its signature decides). Read on every check-in: on
/// SQLite on the calling thread ([`Sql::fetch_rows`]).
pub async fn agent(c: &mut crate::Read, id: EndpointId) -> Result<Option<Agent>> {
    let mut q = Sql::new(
        "SELECT id, client_id, public_key, last_seq, retired_at, \
         CASE WHEN last_inventory_at IS NULL THEN 0 ELSE 1 END AS has_inventory \
         FROM endpoints WHERE id = ",
    );
    q.text(id.to_string());
    let Some(a) = q.fetch_rows(c, agent_cols).await?.pop() else {
        return Ok(None);
    };
    Ok(Some(Agent {
        id: crate::query::parse_value("id", &a.id)?,
        client_id: crate::query::parse_value("client_id", &a.client_id)?,
        public_key: a.public_key,
        last_seq: u64::try_from(a.last_seq).unwrap_or(0),
        has_inventory: a.has_inventory != 0,
        retired_at: a.retired_at.map(Timestamp),
    }))
}

/// The columns [`agent`] reads, in order (decoded by position).
#[derive(serde::Deserialize)]
struct AgentCols {
    id: String,
    client_id: String,
    public_key: String,
    last_seq: i64,
    retired_at: Option<i64>,
    has_inventory: i64,
}

/// [`AgentCols`] read by name.
fn agent_cols(r: &AnyRow) -> Result<AgentCols> {
    Ok(AgentCols {
        id: text(r, "id")?,
        client_id: text(r, "client_id")?,
        public_key: text(r, "public_key")?,
        last_seq: int(r, "last_seq")?,
        retired_at: opt_int(r, "retired_at")?,
        has_inventory: small_int(r, "has_inventory")?,
    })
}

/// PostgreSQL answers `CASE … THEN 0` as a 32-bit integer, SQLite as a 64-bit one.
fn small_int(r: &AnyRow, col: &str) -> Result<i64> {
    use sqlx::Row;
    r.try_get::<i64, _>(col)
        .or_else(|_| r.try_get::<i32, _>(col).map(i64::from))
        .map_err(StoreError::from)
}

/// The endpoint's current inventory as stored (JSON), if any. It lives in
/// `endpoint_inventories`, apart from the endpoint's row, which heartbeats rewrite.
pub async fn inventory_json(c: &mut AnyConnection, id: EndpointId) -> Result<Option<String>> {
    match Sql::new("SELECT inventory FROM endpoint_inventories WHERE endpoint_id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?
    {
        Some(r) => opt_text(&r, "inventory"),
        None => Ok(None),
    }
}

/// What one check-in changes on the endpoint's row.
pub struct CheckinUpdate {
    /// When the server received it.
    pub seen_at: Timestamp,
    /// The highest sequence number now committed.
    pub last_seq: u64,
    /// The newest heartbeat in the batch (JSON).
    pub heartbeat: Option<String>,
    /// Every heartbeat of the batch as a metrics sample (written to `endpoint_metrics`).
    pub samples: Vec<tandem_domain::metrics::Sample>,
    /// The inventory after the batch, with its summary and host name, when it changed.
    pub inventory: Option<InventoryUpdate>,
}

/// A new current inventory.
pub struct InventoryUpdate {
    /// The whole inventory (JSON).
    pub json: String,
    /// Its summary.
    pub summary: Summary,
    /// The host name it reports, if any.
    pub hostname: Option<String>,
    /// When it was collected.
    pub at: Timestamp,
}

/// Writes a check-in's effect on the endpoint's row (and, for an inventory, on its row in
/// `endpoint_inventories`), only if no other check-in committed since the agent's sequence
/// number was read as `expected_last_seq`. Returns whether it was written.
pub async fn record_checkin(
    c: impl Into<Conn<'_>>,
    id: EndpointId,
    client: ClientId,
    expected_last_seq: u64,
    u: &CheckinUpdate,
) -> Result<bool> {
    let mut q = Sql::new("UPDATE endpoints SET last_seen_at = ");
    q.int(u.seen_at.0)
        .push(", last_seq = ")
        .int(i64::try_from(u.last_seq).unwrap_or(i64::MAX));
    if let Some(h) = &u.heartbeat {
        q.push(", heartbeat = ").text(h.clone());
    }
    if let Some(inv) = &u.inventory {
        let s = &inv.summary;
        let b = |v: Option<bool>| v.map(i64::from);
        q.push(", last_inventory_at = ")
            .int(inv.at.0)
            .push(", os = ")
            .opt_text(s.os.clone())
            .push(", kernel = ")
            .opt_text(s.kernel.clone())
            .push(", pending_updates = ")
            .opt_int(s.pending_updates.map(i64::from))
            .push(", security_updates = ")
            .opt_int(s.security_updates.map(i64::from))
            .push(", reboot_required = ")
            .opt_int(b(s.reboot_required))
            .push(", firewall_enabled = ")
            .opt_int(b(s.firewall_enabled))
            .push(", disk_encrypted = ")
            .opt_int(b(s.disk_encrypted))
            .push(", package_count = ")
            .opt_int(s.packages.map(i64::from));
        if let Some(h) = &inv.hostname {
            q.push(", hostname = ").text(h.clone());
        }
    }
    q.push(" WHERE id = ")
        .text(id.to_string())
        .push(" AND last_seq = ")
        .int(i64::try_from(expected_last_seq).unwrap_or(i64::MAX));
    let mut c = c.into();
    if c.execute(&q).await? != 1 {
        return Ok(false);
    }
    if let Some(inv) = &u.inventory {
        let mut q = Sql::new(
            "INSERT INTO endpoint_inventories (endpoint_id, client_id, collected_at, inventory) \
             VALUES (",
        );
        q.text(id.to_string())
            .push(", ")
            .text(client.to_string())
            .push(", ")
            .int(inv.at.0)
            .push(", ")
            .text(inv.json.clone())
            .push(
                ") ON CONFLICT (endpoint_id) DO UPDATE SET collected_at = excluded.collected_at, \
             inventory = excluded.inventory",
            );
        c.execute(&q).await?;
    }
    Ok(true)
}

/// A check-in that changes only the endpoint's row: no inventory, no timeline entry (a
/// heartbeat). See [`record_heartbeats`] and [`record_new_heartbeats`].
pub struct HeartbeatRow<'a> {
    /// The endpoint.
    pub id: EndpointId,
    /// [`record_heartbeats`]: the sequence number the check-in was read against.
    /// [`record_new_heartbeats`]: the check-in's lowest sequence number.
    pub seq: u64,
    /// The row's new values.
    pub update: &'a CheckinUpdate,
}

/// Writes many heartbeat-only check-ins with a few statements instead of one per check-in,
/// each row only if its endpoint's sequence number is still the one expected (`seq`), as
/// [`record_checkin`] does. Returns, in order, whether each was written. An endpoint must
/// appear at most once (the caller writes later check-ins of the same agent one by one).
pub async fn record_heartbeats(
    c: impl Into<Conn<'_>>,
    rows: &[HeartbeatRow<'_>],
) -> Result<Vec<bool>> {
    let written = update_heartbeats(c, rows, "endpoints.last_seq = v.guard").await?;
    Ok(written.into_iter().map(|w| w.is_some()).collect())
}

/// Writes heartbeat-only check-ins that were *not* read against their endpoint first (a
/// check-in in a session names its agent without a look-up): each row only if every message
/// in it is new (the stored sequence number is below the check-in's lowest, `seq`) and the
/// endpoint is not retired. Returns, in order, `None` where nothing was written — the caller
/// then reads the endpoint and decides (unknown, retired, or a batch sent again in part) —
/// and otherwise whether the endpoint still has no inventory. An endpoint must appear at
/// most once.
pub async fn record_new_heartbeats(
    c: impl Into<Conn<'_>>,
    rows: &[HeartbeatRow<'_>],
) -> Result<Vec<Option<bool>>> {
    update_heartbeats(
        c,
        rows,
        "endpoints.last_seq < v.guard AND endpoints.retired_at IS NULL",
    )
    .await
}

/// The multi-row `UPDATE` behind [`record_heartbeats`] and [`record_new_heartbeats`], in
/// chunks whose sizes are powers of two ([`crate::query::pow2_chunks`]); `None` for rows not
/// updated, else whether the endpoint has no inventory yet.
async fn update_heartbeats(
    c: impl Into<Conn<'_>>,
    rows: &[HeartbeatRow<'_>],
    guard: &str,
) -> Result<Vec<Option<bool>>> {
    let mut c = c.into();
    let mut written = Vec::with_capacity(rows.len());
    for chunk in crate::query::pow2_chunks(rows, HEARTBEATS_PER_STATEMENT) {
        let mut q = Sql::new("WITH v (id, guard, seen, seq, hb) AS (VALUES ");
        for (i, r) in chunk.iter().enumerate() {
            q.push(if i == 0 { "(" } else { ", (" })
                .text(r.id.to_string())
                .push(", ")
                .int(i64::try_from(r.seq).unwrap_or(i64::MAX))
                .push(", ")
                .int(r.update.seen_at.0)
                .push(", ")
                .int(i64::try_from(r.update.last_seq).unwrap_or(i64::MAX))
                .push(", ")
                .opt_text(r.update.heartbeat.clone())
                .push(")");
        }
        q.push(
            ") UPDATE endpoints SET last_seen_at = v.seen, last_seq = v.seq, \
             heartbeat = COALESCE(v.hb, endpoints.heartbeat) FROM v \
             WHERE endpoints.id = v.id AND ",
        )
        .push(guard)
        .push(
            " RETURNING endpoints.id, \
             CASE WHEN endpoints.last_inventory_at IS NULL THEN 1 ELSE 0 END AS no_inventory",
        );
        let done: std::collections::HashMap<String, bool> = c
            .rows(&q, |r| Ok((text(r, "id")?, small_int(r, "no_inventory")?)))
            .await?
            .into_iter()
            .map(|(id, no_inventory): (String, i64)| (id, no_inventory != 0))
            .collect();
        written.extend(chunk.iter().map(|r| done.get(&r.id.to_string()).copied()));
    }
    Ok(written)
}

/// The most heartbeats in one `UPDATE` (five bound values each).
const HEARTBEATS_PER_STATEMENT: usize = 64;

/// Appends timeline entries.
pub async fn insert_events(
    c: impl Into<Conn<'_>>,
    endpoint: EndpointId,
    client: ClientId,
    at: Timestamp,
    changes: &[Change],
) -> Result<()> {
    let mut c = c.into();
    for ch in changes {
        let items =
            serde_json::to_string(&ch.items).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut q = Sql::new("INSERT INTO endpoint_events (id, endpoint_id, client_id, at, kind, summary, items) VALUES (");
        q.text(uuid::Uuid::now_v7().to_string())
            .push(", ")
            .text(endpoint.to_string())
            .push(", ")
            .text(client.to_string())
            .push(", ")
            .int(at.0)
            .push(", ")
            .text(ch.kind.as_str())
            .push(", ")
            .text(ch.summary.clone())
            .push(", ")
            .text(items)
            .push(")");
        c.execute(&q).await?;
    }
    Ok(())
}

// ---- endpoints: people's side ---------------------------------------------------------------

/// The columns an endpoint is listed with, in order.
const LIST_COLUMN_NAMES: [&str; 18] = [
    "id",
    "client_id",
    "site_id",
    "hostname",
    "os_family",
    "arch",
    "agent_version",
    "enrolled_at",
    "last_seen_at",
    "last_inventory_at",
    "os",
    "kernel",
    "pending_updates",
    "security_updates",
    "reboot_required",
    "firewall_enabled",
    "disk_encrypted",
    "package_count",
];

/// The values of [`LIST_COLUMN_NAMES`], in order, as read (decoded by position).
#[derive(serde::Deserialize)]
struct EndpointCols {
    id: String,
    client_id: String,
    site_id: String,
    hostname: String,
    os_family: String,
    arch: String,
    agent_version: String,
    enrolled_at: i64,
    last_seen_at: Option<i64>,
    last_inventory_at: Option<i64>,
    os: Option<String>,
    kernel: Option<String>,
    pending_updates: Option<i64>,
    security_updates: Option<i64>,
    reboot_required: Option<i64>,
    firewall_enabled: Option<i64>,
    disk_encrypted: Option<i64>,
    package_count: Option<i64>,
}

/// Endpoints the grant reaches, filtered and sorted; presence is judged at `now` with
/// `offline_after` seconds of grace.
pub async fn list_endpoints(
    c: &mut crate::Read,
    grant: &Grant,
    f: &FleetFilter,
    page: Page,
    now: Timestamp,
    offline_after: i64,
) -> Result<Paged<Endpoint>> {
    let cutoff = now.plus_seconds(-offline_after).0;
    let mut q = Sql::new("SELECT ");
    q.push(&LIST_COLUMN_NAMES.join(", "))
        .push(" FROM endpoints WHERE retired_at IS NULL AND ")
        .scope("client_id", grant);
    if let Some(cid) = f.client {
        q.push(" AND client_id = ").text(cid.to_string());
    }
    if let Some(s) = f.site {
        q.push(" AND site_id = ").text(s.to_string());
    }
    if let Some(os) = f.os.as_deref().filter(|s| !s.trim().is_empty()) {
        q.push(" AND ").contains("os", os.trim());
    }
    if let Some(t) = f.q.as_deref().filter(|s| !s.trim().is_empty()) {
        q.push(" AND ").contains("hostname", t.trim());
    }
    match f.presence.as_deref() {
        Some("online") => {
            q.push(" AND last_seen_at >= ").int(cutoff);
        }
        Some("offline") => {
            q.push(" AND last_seen_at < ").int(cutoff);
        }
        Some("never") => {
            q.push(" AND last_seen_at IS NULL");
        }
        _ => {}
    }
    if f.security_updates {
        q.push(" AND security_updates > 0");
    }
    if f.reboot_required {
        q.push(" AND reboot_required = 1");
    }
    if f.firewall_off {
        q.push(" AND firewall_enabled = 0");
    }
    let order = match f.sort.as_deref() {
        Some("last_seen") => "last_seen_at DESC NULLS LAST, hostname, id",
        Some("security_updates") => "security_updates DESC NULLS LAST, hostname, id",
        Some("os") => "os NULLS LAST, hostname, id",
        _ => "hostname, id",
    };
    q.push(" ORDER BY ").push(order).page(&page.probe());
    let items = q
        .fetch_page::<EndpointCols>(c, &LIST_COLUMN_NAMES, order)
        .await?
        .into_iter()
        .map(|cols| endpoint_from(cols, now, offline_after))
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

/// One endpoint with its latest heartbeat and inventory (JSON), if the grant reaches it.
pub async fn get_endpoint(
    c: &mut AnyConnection,
    grant: &Grant,
    id: EndpointId,
    now: Timestamp,
    offline_after: i64,
) -> Result<Option<(Endpoint, Option<String>, Option<String>)>> {
    let mut q = Sql::new("SELECT ");
    q.push(&LIST_COLUMN_NAMES.join(", "))
        .push(
            ", heartbeat, (SELECT i.inventory FROM endpoint_inventories i \
             WHERE i.endpoint_id = endpoints.id) AS inventory \
             FROM endpoints WHERE retired_at IS NULL AND id = ",
        )
        .text(id.to_string())
        .push(" AND ")
        .scope("client_id", grant);
    match q.fetch_optional(c).await? {
        Some(r) => Ok(Some((
            endpoint(&r, now, offline_after)?,
            opt_text(&r, "heartbeat")?,
            opt_text(&r, "inventory")?,
        ))),
        None => Ok(None),
    }
}

/// An endpoint's timeline, newest first, if the grant reaches its client.
pub async fn list_events(
    c: &mut AnyConnection,
    grant: &Grant,
    id: EndpointId,
    page: Page,
) -> Result<Paged<EndpointEvent>> {
    let mut q = Sql::new("SELECT * FROM endpoint_events WHERE endpoint_id = ");
    q.text(id.to_string())
        .push(" AND ")
        .scope("client_id", grant)
        .push(" ORDER BY at DESC, id DESC")
        .page(&page.probe());
    let items = q
        .fetch_all(c)
        .await?
        .iter()
        .map(event)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

fn endpoint(r: &AnyRow, now: Timestamp, offline_after: i64) -> Result<Endpoint> {
    endpoint_from(
        EndpointCols {
            id: text(r, "id")?,
            client_id: text(r, "client_id")?,
            site_id: text(r, "site_id")?,
            hostname: text(r, "hostname")?,
            os_family: text(r, "os_family")?,
            arch: text(r, "arch")?,
            agent_version: text(r, "agent_version")?,
            enrolled_at: int(r, "enrolled_at")?,
            last_seen_at: opt_int(r, "last_seen_at")?,
            last_inventory_at: opt_int(r, "last_inventory_at")?,
            os: opt_text(r, "os")?,
            kernel: opt_text(r, "kernel")?,
            pending_updates: opt_int(r, "pending_updates")?,
            security_updates: opt_int(r, "security_updates")?,
            reboot_required: opt_int(r, "reboot_required")?,
            firewall_enabled: opt_int(r, "firewall_enabled")?,
            disk_encrypted: opt_int(r, "disk_encrypted")?,
            package_count: opt_int(r, "package_count")?,
        },
        now,
        offline_after,
    )
}

/// An endpoint from its column values; presence judged at `now`.
fn endpoint_from(c: EndpointCols, now: Timestamp, offline_after: i64) -> Result<Endpoint> {
    let count = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    let flag = |v: Option<i64>| v.map(|v| v != 0);
    use crate::query::parse_value as id;
    let last_seen_at = c.last_seen_at.map(Timestamp);
    Ok(Endpoint {
        id: id("id", &c.id)?,
        client_id: id("client_id", &c.client_id)?,
        site_id: id("site_id", &c.site_id)?,
        hostname: c.hostname,
        os_family: c.os_family.clone(),
        arch: c.arch,
        agent_version: c.agent_version,
        enrolled_at: Timestamp(c.enrolled_at),
        last_seen_at,
        last_inventory_at: c.last_inventory_at.map(Timestamp),
        presence: Presence::at(last_seen_at, now, offline_after),
        summary: Summary {
            os: c.os,
            os_family: Some(c.os_family),
            kernel: c.kernel,
            pending_updates: count(c.pending_updates),
            security_updates: count(c.security_updates),
            reboot_required: flag(c.reboot_required),
            firewall_enabled: flag(c.firewall_enabled),
            disk_encrypted: flag(c.disk_encrypted),
            packages: count(c.package_count),
            admins: None,
        },
    })
}

fn event(r: &AnyRow) -> Result<EndpointEvent> {
    let kind_name = text(r, "kind")?;
    let kind: ChangeKind = serde_json::from_value(serde_json::Value::String(kind_name.clone()))
        .map_err(|_| StoreError::Corrupt(format!("event kind {kind_name:?}")))?;
    let items: Vec<String> = serde_json::from_str(&text(r, "items")?)
        .map_err(|e| StoreError::Corrupt(format!("event items: {e}")))?;
    Ok(EndpointEvent {
        endpoint_id: parsed(r, "endpoint_id")?,
        at: ts(r, "at")?,
        change: Change {
            kind,
            summary: text(r, "summary")?,
            items,
        },
    })
}
