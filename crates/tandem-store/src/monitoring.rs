//! Monitoring: alerts and their timeline, the per-endpoint facts checks read, the evaluation
//! state, policies, endpoint groups, admin baselines and the evaluation lease.
//!
//! People's reads are scoped by a grant. The evaluation's own reads (every endpoint's facts,
//! every policy) are unscoped by design: it is Tandem's background work over all tenants.

use crate::query::{int, opt_int, opt_parsed, opt_text, opt_ts, parsed, text, ts, Sql};
use crate::{Page, Paged, Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::HashMap;
use tandem_domain::authz::Grant;
use tandem_domain::monitoring::facts::SummaryFacts;
use tandem_domain::monitoring::policy::{EndpointGroup, MonitoringPolicy, PolicyTarget};
use tandem_domain::monitoring::{
    Alert, AlertEvent, AlertState, CheckState, EndpointFacts, StateKey,
};
use tandem_domain::scope::{Party, Window};
use tandem_domain::{
    AlertId, ClientId, EndpointGroupId, EndpointId, Side, SiteId, TicketId, Timestamp, UserId,
};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| corrupt("json", e))
}

// ---- alerts -----------------------------------------------------------------------------

/// What the alert list can be narrowed to.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    /// One client's alerts.
    pub client: Option<ClientId>,
    /// Only these states (empty: all).
    pub states: Vec<AlertState>,
    /// Only alerts owned by this side.
    pub owner: Option<Party>,
    /// Only this severity.
    pub severity: Option<String>,
    /// Only this check.
    pub check: Option<String>,
    /// Only this endpoint.
    pub endpoint: Option<EndpointId>,
    /// Only this grouping key.
    pub group: Option<String>,
    /// Maintenance silences: `now` (silenced at the moment), `ever` (silenced by a window at
    /// some point), `never`.
    pub silenced: Option<SilenceFilter>,
}

/// The alert list's filter on maintenance silences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilenceFilter {
    /// Silenced at the moment.
    Now,
    /// Silenced by a window at some point.
    Ever,
    /// Never silenced.
    Never,
}

fn open_key(client: ClientId, dedup: &str) -> String {
    format!("{client}|{dedup}")
}

/// Stores a new alert. Fails with a conflict if an open alert has the same key.
pub async fn insert_alert(c: &mut AnyConnection, a: &Alert) -> Result<()> {
    let mut q = Sql::new(
        "INSERT INTO alerts (id, client_id, endpoint_id, source, check_key, dedup_key, open_key, \
         grouping_key, domain, severity, title, summary, state, owner_side, route_window, \
         owner_on_shift, route_reason, fired_at, last_seen_at, acknowledged_at, acknowledged_by, \
         acknowledged_label, acknowledged_side, resolved_at, resolution, notified_at, \
         renotify_minutes, flapping, ticket_id, check_kind, silenced_by, silenced_window, \
         silenced_until, ticket_auto_resolve) VALUES (",
    );
    q.text(a.id.to_string())
        .push(", ")
        .text(a.client_id.to_string())
        .push(", ")
        .opt_text(a.endpoint_id.map(|e| e.to_string()))
        .push(", ")
        .text(a.source.clone())
        .push(", ")
        .opt_text(a.check_key.clone())
        .push(", ")
        .text(a.dedup_key.clone())
        .push(", ")
        .opt_text(
            a.state
                .is_open()
                .then(|| open_key(a.client_id, &a.dedup_key)),
        )
        .push(", ")
        .text(a.grouping_key.clone())
        .push(", ")
        .text(a.domain.clone())
        .push(", ")
        .text(a.severity.as_str())
        .push(", ")
        .text(a.title.clone())
        .push(", ")
        .text(a.summary.clone())
        .push(", ")
        .text(a.state.as_str())
        .push(", ")
        .text(a.owner.as_str())
        .push(", ")
        .opt_text(a.window.map(|w| window_str(w).to_string()))
        .push(", ")
        .int(i64::from(a.owner_on_shift))
        .push(", ")
        .text(a.route_reason.clone())
        .push(", ");
    changeable(&mut q, a);
    q.push(")");
    match q.execute(c).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(
            "an open alert with this key already exists".into(),
        )),
        Err(e) => Err(e),
    }
}

fn changeable(q: &mut Sql, a: &Alert) {
    q.int(a.fired_at.0)
        .push(", ")
        .int(a.last_seen_at.0)
        .push(", ")
        .opt_int(a.acknowledged_at.map(|t| t.0))
        .push(", ")
        .opt_text(a.acknowledged_by.map(|u| u.to_string()))
        .push(", ")
        .opt_text(a.acknowledged_label.clone())
        .push(", ")
        .opt_text(a.acknowledged_side.map(|s| s.as_str().to_string()))
        .push(", ")
        .opt_int(a.resolved_at.map(|t| t.0))
        .push(", ")
        .opt_text(a.resolution.clone())
        .push(", ")
        .int(a.notified_at.0)
        .push(", ")
        .opt_int(a.renotify_minutes.map(i64::from))
        .push(", ")
        .int(i64::from(a.flapping))
        .push(", ")
        .opt_text(a.ticket_id.map(|t| t.to_string()))
        .push(", ")
        .opt_text(a.check_kind.clone())
        .push(", ")
        .opt_text(a.silenced_by.map(|w| w.to_string()))
        .push(", ")
        .opt_text(a.silenced_window.clone())
        .push(", ")
        .opt_int(a.silenced_until.map(|t| t.0))
        .push(", ")
        .int(i64::from(a.ticket_auto_resolve));
}

/// Writes an alert's changeable fields back (state, summary, acknowledgement, resolution…).
/// The maintenance silence is not among them: see `tandem_store::maintenance`.
pub async fn update_alert(c: &mut AnyConnection, a: &Alert) -> Result<()> {
    Sql::new("UPDATE alerts SET state = ")
        .text(a.state.as_str())
        .push(", open_key = ")
        .opt_text(
            a.state
                .is_open()
                .then(|| open_key(a.client_id, &a.dedup_key)),
        )
        .push(", summary = ")
        .text(a.summary.clone())
        .push(", severity = ")
        .text(a.severity.as_str())
        .push(", last_seen_at = ")
        .int(a.last_seen_at.0)
        .push(", acknowledged_at = ")
        .opt_int(a.acknowledged_at.map(|t| t.0))
        .push(", acknowledged_by = ")
        .opt_text(a.acknowledged_by.map(|u| u.to_string()))
        .push(", acknowledged_label = ")
        .opt_text(a.acknowledged_label.clone())
        .push(", acknowledged_side = ")
        .opt_text(a.acknowledged_side.map(|s| s.as_str().to_string()))
        .push(", resolved_at = ")
        .opt_int(a.resolved_at.map(|t| t.0))
        .push(", resolution = ")
        .opt_text(a.resolution.clone())
        .push(", notified_at = ")
        .int(a.notified_at.0)
        .push(", renotify_minutes = ")
        .opt_int(a.renotify_minutes.map(i64::from))
        .push(", flapping = ")
        .int(i64::from(a.flapping))
        .push(", ticket_id = ")
        .opt_text(a.ticket_id.map(|t| t.to_string()))
        .push(", ticket_auto_resolve = ")
        .int(i64::from(a.ticket_auto_resolve))
        .push(" WHERE id = ")
        .text(a.id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// The open alert of a client with this deduplication key (Tandem's own read, unscoped).
pub async fn open_alert(
    c: &mut AnyConnection,
    client: ClientId,
    dedup_key: &str,
) -> Result<Option<Alert>> {
    Sql::new("SELECT * FROM alerts WHERE open_key = ")
        .text(open_key(client, dedup_key))
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(alert)
        .transpose()
}

/// The ticket still being worked (neither resolved nor closed) that an earlier alert of a
/// client with this deduplication key opened or updated, newest first (Tandem's own read,
/// unscoped): a re-firing alert updates it instead of opening another.
pub async fn open_ticket_of_key(
    c: &mut AnyConnection,
    client: ClientId,
    dedup_key: &str,
) -> Result<Option<TicketId>> {
    Sql::new(
        "SELECT a.ticket_id AS ticket_id FROM alerts a JOIN tickets t ON t.id = a.ticket_id \
         WHERE a.client_id = ",
    )
    .text(client.to_string())
    .push(" AND a.dedup_key = ")
    .text(dedup_key)
    .push(" AND t.status NOT IN ('resolved', 'closed') ORDER BY a.fired_at DESC, a.id DESC LIMIT 1")
    .fetch_optional(c)
    .await?
    .as_ref()
    .map(|r| parsed(r, "ticket_id"))
    .transpose()
}

/// The alerts that opened or updated a ticket, newest first, as far as the grant reaches.
pub async fn alerts_of_ticket(
    c: &mut AnyConnection,
    grant: &Grant,
    ticket: TicketId,
) -> Result<Vec<Alert>> {
    let mut q = Sql::new("SELECT * FROM alerts WHERE ticket_id = ");
    q.text(ticket.to_string())
        .push(" AND ")
        .scope("client_id", grant)
        .push(" ORDER BY fired_at DESC, id DESC LIMIT 100");
    q.fetch_all(c).await?.iter().map(alert).collect()
}

/// How many alerts other than `except` that are still open are linked to a ticket (Tandem's
/// own read, unscoped): a ticket is resolved with its alert only when none is.
pub async fn other_open_alerts_of_ticket(
    c: &mut AnyConnection,
    ticket: TicketId,
    except: AlertId,
) -> Result<i64> {
    let r =
        Sql::new("SELECT COUNT(*) AS n FROM alerts WHERE open_key IS NOT NULL AND ticket_id = ")
            .text(ticket.to_string())
            .push(" AND id <> ")
            .text(except.to_string())
            .fetch_optional(c)
            .await?;
    r.as_ref().map_or(Ok(0), |r| int(r, "n"))
}

/// Open alerts that re-notify (Tandem's own read, unscoped).
pub async fn renotifying_alerts(c: &mut AnyConnection) -> Result<Vec<Alert>> {
    Sql::new("SELECT * FROM alerts WHERE state = 'firing' AND renotify_minutes IS NOT NULL")
        .fetch_all(c)
        .await?
        .iter()
        .map(alert)
        .collect()
}

/// Alerts the grant reaches, newest first.
pub async fn list_alerts(
    c: &mut AnyConnection,
    grant: &Grant,
    f: &AlertFilter,
    page: Page,
) -> Result<Paged<Alert>> {
    let mut q = Sql::new("SELECT * FROM alerts WHERE ");
    q.scope("client_id", grant);
    if let Some(cid) = f.client {
        q.push(" AND client_id = ").text(cid.to_string());
    }
    if !f.states.is_empty() {
        q.push(" AND state IN (");
        for (i, s) in f.states.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.text(s.as_str());
        }
        q.push(")");
    }
    if let Some(o) = f.owner {
        q.push(" AND owner_side = ").text(o.as_str());
    }
    if let Some(s) = &f.severity {
        q.push(" AND severity = ").text(s.clone());
    }
    if let Some(k) = &f.check {
        q.push(" AND check_key = ").text(k.clone());
    }
    if let Some(e) = f.endpoint {
        q.push(" AND endpoint_id = ").text(e.to_string());
    }
    if let Some(g) = &f.group {
        q.push(" AND grouping_key = ").text(g.clone());
    }
    match f.silenced {
        Some(SilenceFilter::Now) => {
            q.push(" AND silenced_until IS NOT NULL");
        }
        Some(SilenceFilter::Ever) => {
            q.push(" AND silenced_by IS NOT NULL");
        }
        Some(SilenceFilter::Never) => {
            q.push(" AND silenced_by IS NULL");
        }
        None => {}
    }
    q.push(" ORDER BY fired_at DESC, id DESC")
        .page(&page.probe());
    let items = q
        .fetch_all(c)
        .await?
        .iter()
        .map(alert)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

/// One alert, if the grant reaches it.
pub async fn get_alert(c: &mut AnyConnection, grant: &Grant, id: AlertId) -> Result<Option<Alert>> {
    let mut q = Sql::new("SELECT * FROM alerts WHERE id = ");
    q.text(id.to_string())
        .push(" AND ")
        .scope("client_id", grant);
    q.fetch_optional(c).await?.as_ref().map(alert).transpose()
}

/// One alert by id (Tandem's own read, unscoped).
pub async fn alert_unscoped(c: &mut AnyConnection, id: AlertId) -> Result<Option<Alert>> {
    Sql::new("SELECT * FROM alerts WHERE id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(alert)
        .transpose()
}

/// Appends to an alert's timeline.
pub async fn insert_alert_event(
    c: &mut AnyConnection,
    a: &Alert,
    actor_id: Option<UserId>,
    e: &AlertEvent,
) -> Result<()> {
    Sql::new("INSERT INTO alert_events (id, alert_id, client_id, at, kind, actor_id, actor_label, actor_side, body, notify) VALUES (")
        .text(uuid::Uuid::now_v7().to_string())
        .push(", ")
        .text(a.id.to_string())
        .push(", ")
        .text(a.client_id.to_string())
        .push(", ")
        .int(e.at.0)
        .push(", ")
        .text(e.kind.clone())
        .push(", ")
        .opt_text(actor_id.map(|u| u.to_string()))
        .push(", ")
        .text(e.actor_label.clone())
        .push(", ")
        .text(e.actor_side.as_str())
        .push(", ")
        .text(e.body.clone())
        .push(", ")
        .int(i64::from(e.notify))
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// An alert's timeline, oldest first.
pub async fn alert_events(c: &mut AnyConnection, a: &Alert) -> Result<Vec<AlertEvent>> {
    Sql::new("SELECT * FROM alert_events WHERE alert_id = ")
        .text(a.id.to_string())
        .push(" ORDER BY at, id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok(AlertEvent {
                at: ts(r, "at")?,
                kind: text(r, "kind")?,
                actor_label: text(r, "actor_label")?,
                actor_side: side(&text(r, "actor_side")?)?,
                body: text(r, "body")?,
                notify: int(r, "notify")? != 0,
            })
        })
        .collect()
}

fn window_str(w: Window) -> &'static str {
    match w {
        Window::BusinessHours => "business_hours",
        Window::AfterHours => "after_hours",
    }
}

fn side(s: &str) -> Result<Side> {
    Ok(match s {
        "provider" => Side::Provider,
        "client" => Side::Client,
        "outside" => Side::Outside,
        "system" => Side::System,
        other => return Err(corrupt("side", other)),
    })
}

fn alert(r: &AnyRow) -> Result<Alert> {
    Ok(Alert {
        id: parsed(r, "id")?,
        client_id: parsed(r, "client_id")?,
        endpoint_id: opt_parsed(r, "endpoint_id")?,
        source: text(r, "source")?,
        check_key: opt_text(r, "check_key")?,
        dedup_key: text(r, "dedup_key")?,
        grouping_key: text(r, "grouping_key")?,
        domain: text(r, "domain")?,
        severity: text(r, "severity")?
            .parse()
            .map_err(|e| corrupt("severity", e))?,
        title: text(r, "title")?,
        summary: text(r, "summary")?,
        state: text(r, "state")?.parse().map_err(|e| corrupt("state", e))?,
        owner: match text(r, "owner_side")?.as_str() {
            "internal" => Party::Internal,
            "provider" => Party::Provider,
            o => return Err(corrupt("owner_side", o)),
        },
        window: match opt_text(r, "route_window")?.as_deref() {
            Some("business_hours") => Some(Window::BusinessHours),
            Some("after_hours") => Some(Window::AfterHours),
            _ => None,
        },
        owner_on_shift: int(r, "owner_on_shift")? != 0,
        route_reason: text(r, "route_reason")?,
        fired_at: ts(r, "fired_at")?,
        last_seen_at: ts(r, "last_seen_at")?,
        acknowledged_at: opt_ts(r, "acknowledged_at")?,
        acknowledged_by: opt_parsed(r, "acknowledged_by")?,
        acknowledged_label: opt_text(r, "acknowledged_label")?,
        acknowledged_side: opt_text(r, "acknowledged_side")?
            .map(|s| side(&s))
            .transpose()?,
        resolved_at: opt_ts(r, "resolved_at")?,
        resolution: opt_text(r, "resolution")?,
        notified_at: ts(r, "notified_at")?,
        renotify_minutes: opt_int(r, "renotify_minutes")?.and_then(|m| u32::try_from(m).ok()),
        flapping: int(r, "flapping")? != 0,
        ticket_id: opt_parsed(r, "ticket_id")?,
        ticket_auto_resolve: int(r, "ticket_auto_resolve")? != 0,
        check_kind: opt_text(r, "check_kind")?,
        silenced_by: opt_parsed(r, "silenced_by")?,
        silenced_window: opt_text(r, "silenced_window")?,
        silenced_until: opt_ts(r, "silenced_until")?,
    })
}

// ---- facts ------------------------------------------------------------------------------

/// An endpoint whose facts are stale: its row moved since the facts were derived.
#[derive(Clone, Debug)]
pub struct StaleFacts {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Its client.
    pub client_id: ClientId,
    /// Its site.
    pub site_id: SiteId,
    /// Its name.
    pub hostname: String,
    /// Last check-in.
    pub last_seen_at: Option<Timestamp>,
    /// Last inventory.
    pub last_inventory_at: Option<Timestamp>,
    /// The summary columns.
    pub summary: SummaryFacts,
    /// The latest heartbeat (JSON).
    pub heartbeat: Option<String>,
    /// The facts as last derived (JSON), if any.
    pub previous: Option<String>,
    /// The inventory instant those facts were derived from.
    pub previous_inventory_at: Option<Timestamp>,
}

/// Endpoints without facts, or whose inventory moved since their facts were derived (at
/// most `limit`, in id order, after the endpoint `after` if given), Tandem's own read over
/// every tenant. A heartbeat does not make facts stale: [`load_facts`] and [`get_facts`] lay
/// the row's latest check-in over them. A caller reading them page by page passes the last
/// id it got, so the fresh endpoints before it are not read again for every page.
pub async fn stale_facts(
    c: &mut AnyConnection,
    after: Option<EndpointId>,
    limit: u32,
) -> Result<Vec<StaleFacts>> {
    let mut q = Sql::new(
        "SELECT e.id, e.client_id, e.site_id, e.hostname, e.last_seen_at, e.last_inventory_at, \
         e.security_updates, e.reboot_required, e.firewall_enabled, e.heartbeat, \
         f.facts, f.inventory_at AS facts_inventory_at \
         FROM endpoints e LEFT JOIN endpoint_facts f ON f.endpoint_id = e.id \
         WHERE e.retired_at IS NULL AND (f.endpoint_id IS NULL \
         OR COALESCE(f.inventory_at, -1) <> COALESCE(e.last_inventory_at, -1))",
    );
    if let Some(after) = after {
        q.push(" AND e.id > ").text(after.to_string());
    }
    // The limit is written into the statement, not bound: PostgreSQL's generic plan for a
    // bound limit expects a tenth of the table and joins by hashing the whole of it.
    q.push(&format!(" ORDER BY e.id LIMIT {limit}"));
    q.fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            let flag = |col: &str| -> Result<Option<bool>> { Ok(opt_int(r, col)?.map(|v| v != 0)) };
            Ok(StaleFacts {
                endpoint_id: parsed(r, "id")?,
                client_id: parsed(r, "client_id")?,
                site_id: parsed(r, "site_id")?,
                hostname: text(r, "hostname")?,
                last_seen_at: opt_ts(r, "last_seen_at")?,
                last_inventory_at: opt_ts(r, "last_inventory_at")?,
                summary: SummaryFacts {
                    security_updates: opt_int(r, "security_updates")?
                        .and_then(|v| u32::try_from(v).ok()),
                    reboot_required: flag("reboot_required")?,
                    firewall_enabled: flag("firewall_enabled")?,
                },
                heartbeat: opt_text(r, "heartbeat")?,
                previous: opt_text(r, "facts")?,
                previous_inventory_at: opt_ts(r, "facts_inventory_at")?,
            })
        })
        .collect()
}

/// The endpoint's current inventory (JSON) as the facts derivation reads it. The one place
/// monitoring reads inventories: repoint it if the inventory moves to its own table.
pub async fn inventory_for_facts(c: &mut AnyConnection, id: EndpointId) -> Result<Option<String>> {
    crate::endpoints::inventory_json(c, id).await
}

/// Stores an endpoint's derived facts.
pub async fn upsert_facts(
    c: &mut AnyConnection,
    f: &EndpointFacts,
    inventory_at: Option<Timestamp>,
) -> Result<()> {
    Sql::new("INSERT INTO endpoint_facts (endpoint_id, client_id, seen_at, inventory_at, facts) VALUES (")
        .text(f.endpoint_id.to_string())
        .push(", ")
        .text(f.client_id.to_string())
        .push(", ")
        .opt_int(f.last_seen_at.map(|t| t.0))
        .push(", ")
        .opt_int(inventory_at.map(|t| t.0))
        .push(", ")
        .text(json(f)?)
        .push(") ON CONFLICT (endpoint_id) DO UPDATE SET client_id = excluded.client_id, \
               seen_at = excluded.seen_at, inventory_at = excluded.inventory_at, facts = excluded.facts, \
               revision = endpoint_facts.revision + 1")
        .execute(c)
        .await?;
    Ok(())
}

/// Every live endpoint's facts with its accepted admin baseline, in one read (Tandem's own; the
/// evaluation pass reads [`facts_rows`] and [`stored_facts`] instead, and the checks bench
/// times this read beside it).
pub async fn load_facts(c: &mut AnyConnection) -> Result<Vec<EndpointFacts>> {
    Sql::new("SELECT f.facts, b.admins, ")
        .push(ROW_NOW)
        .push(
            " FROM endpoint_facts f \
         JOIN endpoints e ON e.id = f.endpoint_id \
         LEFT JOIN admin_baselines b ON b.endpoint_id = f.endpoint_id \
         WHERE e.retired_at IS NULL ORDER BY f.endpoint_id",
        )
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            let mut f = facts_now(r)?;
            f.admin_baseline = baseline(r)?;
            Ok(f)
        })
        .collect()
}

/// Which write of an endpoint's stored facts, and of its accepted administrators (`None`: no
/// baseline), a read saw: every write adds one to the row's revision (migration 0026).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FactsRevisions {
    /// The stored facts' revision.
    pub facts: i64,
    /// The accepted administrators' revision.
    pub baseline: Option<i64>,
}

/// What the evaluation pass reads of every live endpoint each time: where it is, its latest
/// check-in (laid over the stored facts, see [`EndpointFacts::observe`]) and the revisions of
/// its stored facts ([`stored_facts`] reads those only where a revision moved).
#[derive(Clone, Debug)]
pub struct FactsRow {
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// The revisions of its stored facts and baseline.
    pub revisions: FactsRevisions,
    /// Its client now.
    pub client_id: ClientId,
    /// Its site now.
    pub site_id: SiteId,
    /// Its name now.
    pub hostname: String,
    /// Its last check-in.
    pub last_seen_at: Option<Timestamp>,
    /// Its latest heartbeat (JSON).
    pub heartbeat: Option<String>,
}

/// One page of [`facts_rows`].
pub struct FactsPage {
    /// The live endpoints' rows, in endpoint id order.
    pub rows: Vec<FactsRow>,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<EndpointId>,
}

/// The [`FactsRow`]s of the next `limit` endpoints with stored facts after `after`, in
/// endpoint id order, without the retired ones (Tandem's own read, page by page: each page is
/// a statement of its own, so no read holds one snapshot through a whole fleet). The page is
/// walked along the endpoints' primary key (retired ones included, then left out here), so
/// PostgreSQL starts from the key and looks up each row's facts, and never joins the fleet. On SQLite the page is read on the calling thread
/// ([`Sql::fetch_rows`]): through sqlx, this read was most of a pass.
pub async fn facts_rows(
    c: &mut crate::Read,
    after: Option<EndpointId>,
    limit: u32,
) -> Result<FactsPage> {
    let mut q = Sql::new(
        "SELECT e.id AS endpoint_id, f.revision, b.revision AS baseline_revision, e.retired_at, ",
    );
    // Every table is walked from `after` on: PostgreSQL merges the three primary keys, and
    // without a bound of their own the facts' and baselines' keys were walked from the start
    // each page (a page cost as much as the whole fleet before it).
    let after = after.map(|a| a.to_string());
    let from = |q: &mut Sql, column: &str| {
        if let Some(a) = &after {
            q.push(" AND ").push(column).push(" > ").text(a.clone());
        }
    };
    q.push(ROW_NOW)
        .push(" FROM endpoints e JOIN endpoint_facts f ON f.endpoint_id = e.id");
    from(&mut q, "f.endpoint_id");
    q.push(" LEFT JOIN admin_baselines b ON b.endpoint_id = e.id");
    from(&mut q, "b.endpoint_id");
    q.push(" WHERE 1 = 1");
    from(&mut q, "e.id");
    q.push(" ORDER BY e.id LIMIT ").int(i64::from(limit));
    fn id<T: std::str::FromStr>(what: &str, v: &str) -> Result<T> {
        v.parse()
            .map_err(|_| StoreError::Corrupt(format!("{what} {v:?} is not an id")))
    }
    let page = q
        .fetch_rows::<FactsCols>(c, |r| {
            Ok(FactsCols(
                text(r, "endpoint_id")?,
                int(r, "revision")?,
                opt_int(r, "baseline_revision")?,
                opt_int(r, "retired_at")?,
                text(r, "client_id")?,
                text(r, "site_id")?,
                text(r, "hostname")?,
                opt_int(r, "last_seen_at")?,
                opt_text(r, "heartbeat")?,
            ))
        })
        .await?;
    let next = match page.last() {
        Some(last) if page.len() == limit as usize => Some(id("endpoint", &last.0)?),
        _ => None,
    };
    let rows = page
        .into_iter()
        .filter(|r| r.3.is_none())
        .map(|r| {
            Ok(FactsRow {
                endpoint_id: id("endpoint", &r.0)?,
                revisions: FactsRevisions {
                    facts: r.1,
                    baseline: r.2,
                },
                client_id: id("client", &r.4)?,
                site_id: id("site", &r.5)?,
                hostname: r.6,
                last_seen_at: r.7.map(Timestamp),
                heartbeat: r.8,
            })
        })
        .collect::<Result<_>>()?;
    Ok(FactsPage { rows, next })
}

/// The columns [`facts_rows`] reads, in order.
#[derive(serde::Deserialize)]
struct FactsCols(
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
);

fn revisions(r: &AnyRow) -> Result<FactsRevisions> {
    Ok(FactsRevisions {
        facts: int(r, "revision")?,
        baseline: opt_int(r, "baseline_revision")?,
    })
}

/// The stored facts of these endpoints, with their accepted administrators and the revisions
/// read, as stored: nothing of the endpoint's row is laid over them. Endpoints without stored
/// facts are left out.
pub async fn stored_facts(
    c: &mut AnyConnection,
    ids: &[EndpointId],
) -> Result<Vec<(FactsRevisions, EndpointFacts)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(STORED_FACTS_PER_READ) {
        let mut q = Sql::new(
            "SELECT f.endpoint_id, f.revision, b.revision AS baseline_revision, f.facts, b.admins \
             FROM endpoint_facts f LEFT JOIN admin_baselines b ON b.endpoint_id = f.endpoint_id \
             WHERE f.endpoint_id IN (",
        );
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.text(id.to_string());
        }
        q.push(")");
        for r in q.fetch_all(&mut *c).await? {
            let mut f = stored(&r)?;
            f.endpoint_id = parsed(&r, "endpoint_id")?;
            f.admin_baseline = baseline(&r)?;
            out.push((revisions(&r)?, f));
        }
    }
    Ok(out)
}

/// The stored facts of a row's `facts` column, as written.
fn stored(r: &AnyRow) -> Result<EndpointFacts> {
    serde_json::from_str(&text(r, "facts")?).map_err(|e| corrupt("facts", e))
}

/// The most endpoints one [`stored_facts`] statement asks for.
const STORED_FACTS_PER_READ: usize = 256;

fn baseline(r: &AnyRow) -> Result<Option<Vec<String>>> {
    opt_text(r, "admins")?
        .map(|a| serde_json::from_str(&a))
        .transpose()
        .map_err(|e| corrupt("baseline", e))
}

/// One endpoint's facts, if the grant reaches it.
pub async fn get_facts(
    c: &mut AnyConnection,
    grant: &Grant,
    id: EndpointId,
) -> Result<Option<EndpointFacts>> {
    let mut q = Sql::new("SELECT f.facts, ");
    q.push(ROW_NOW)
        .push(" FROM endpoint_facts f JOIN endpoints e ON e.id = f.endpoint_id WHERE f.endpoint_id = ")
        .text(id.to_string())
        .push(" AND ")
        .scope("e.client_id", grant);
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map(facts_now)
        .transpose()
}

/// What the facts reads take from the endpoint's row: who and where it is now, and its
/// latest check-in.
const ROW_NOW: &str = "e.client_id, e.site_id, e.hostname, e.last_seen_at, e.heartbeat";

/// Stored facts with the endpoint's row as it is now laid over them
/// ([`EndpointFacts::observe`]).
fn facts_now(r: &AnyRow) -> Result<EndpointFacts> {
    let mut f = stored(r)?;
    f.client_id = parsed(r, "client_id")?;
    f.site_id = parsed(r, "site_id")?;
    f.hostname = text(r, "hostname")?;
    f.observe(
        opt_ts(r, "last_seen_at")?,
        opt_text(r, "heartbeat")?.as_deref(),
    );
    Ok(f)
}

// ---- admin baselines ----------------------------------------------------------------------

/// The accepted administrators of an endpoint (unscoped; the caller holds a grant for it).
pub async fn admin_baseline(c: &mut AnyConnection, id: EndpointId) -> Result<Option<Vec<String>>> {
    match Sql::new("SELECT admins FROM admin_baselines WHERE endpoint_id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?
    {
        Some(r) => Ok(Some(
            serde_json::from_str(&text(&r, "admins")?).map_err(|e| corrupt("baseline", e))?,
        )),
        None => Ok(None),
    }
}

/// Records the accepted administrators of an endpoint.
pub async fn set_admin_baseline(
    c: &mut AnyConnection,
    endpoint: EndpointId,
    client: ClientId,
    admins: &[String],
    by: Option<UserId>,
    label: &str,
    at: Timestamp,
) -> Result<()> {
    Sql::new("INSERT INTO admin_baselines (endpoint_id, client_id, admins, accepted_by, accepted_label, accepted_at) VALUES (")
        .text(endpoint.to_string())
        .push(", ")
        .text(client.to_string())
        .push(", ")
        .text(json(&admins)?)
        .push(", ")
        .opt_text(by.map(|u| u.to_string()))
        .push(", ")
        .text(label)
        .push(", ")
        .int(at.0)
        .push(") ON CONFLICT (endpoint_id) DO UPDATE SET admins = excluded.admins, \
               accepted_by = excluded.accepted_by, accepted_label = excluded.accepted_label, \
               accepted_at = excluded.accepted_at, revision = admin_baselines.revision + 1")
        .execute(c)
        .await?;
    Ok(())
}

// ---- evaluation state --------------------------------------------------------------------

/// Every remembered check state (Tandem's own read).
pub async fn load_check_states(c: &mut AnyConnection) -> Result<HashMap<StateKey, CheckState>> {
    let rows = Sql::new("SELECT endpoint_id, check_key, state FROM check_states")
        .fetch_all(c)
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        let s: CheckState =
            serde_json::from_str(&text(r, "state")?).map_err(|e| corrupt("check state", e))?;
        out.insert((parsed(r, "endpoint_id")?, text(r, "check_key")?), s);
    }
    Ok(out)
}

/// Stores a check state.
pub async fn put_check_state(
    c: &mut AnyConnection,
    key: &StateKey,
    client: ClientId,
    s: &CheckState,
) -> Result<()> {
    Sql::new("INSERT INTO check_states (endpoint_id, check_key, client_id, state) VALUES (")
        .text(key.0.to_string())
        .push(", ")
        .text(key.1.clone())
        .push(", ")
        .text(client.to_string())
        .push(", ")
        .text(json(s)?)
        .push(") ON CONFLICT (endpoint_id, check_key) DO UPDATE SET state = excluded.state")
        .execute(c)
        .await?;
    Ok(())
}

/// Forgets a check state.
pub async fn delete_check_state(c: &mut AnyConnection, key: &StateKey) -> Result<()> {
    Sql::new("DELETE FROM check_states WHERE endpoint_id = ")
        .text(key.0.to_string())
        .push(" AND check_key = ")
        .text(key.1.clone())
        .execute(c)
        .await?;
    Ok(())
}

// ---- policies ----------------------------------------------------------------------------

fn policy(r: &AnyRow) -> Result<MonitoringPolicy> {
    let level = text(r, "level")?;
    let target_id = text(r, "target_id")?;
    Ok(MonitoringPolicy {
        id: parsed(r, "id")?,
        client_id: opt_parsed(r, "client_id")?,
        target: PolicyTarget::parse(&level, &target_id)
            .ok_or_else(|| corrupt("policy target", format!("{level}/{target_id}")))?,
        checks: serde_json::from_str(&text(r, "checks")?).map_err(|e| corrupt("checks", e))?,
        exclusions: serde_json::from_str(&text(r, "exclusions")?)
            .map_err(|e| corrupt("exclusions", e))?,
    })
}

/// Every policy (Tandem's own read, for the evaluation and the "why" view).
pub async fn all_policies(c: &mut AnyConnection) -> Result<Vec<MonitoringPolicy>> {
    Sql::new("SELECT * FROM monitoring_policies ORDER BY level, target_id")
        .fetch_all(c)
        .await?
        .iter()
        .map(policy)
        .collect()
}

/// Policies the grant reaches (provider-wide ones only for grants that cover the provider,
/// or `with_provider`: people of a client may read the provider-wide checks that apply to them).
pub async fn list_policies(
    c: &mut AnyConnection,
    grant: &Grant,
    client: Option<ClientId>,
    with_provider: bool,
) -> Result<Vec<MonitoringPolicy>> {
    let mut q = Sql::new("SELECT * FROM monitoring_policies WHERE (");
    q.scope("client_id", grant);
    if with_provider {
        q.push(" OR client_id IS NULL");
    }
    q.push(")");
    if let Some(cid) = client {
        q.push(" AND (client_id = ")
            .text(cid.to_string())
            .push(" OR client_id IS NULL)");
    }
    q.push(" ORDER BY level, target_id");
    q.fetch_all(c).await?.iter().map(policy).collect()
}

/// The policy at a target (unscoped: the caller checked the target's client).
pub async fn policy_at(
    c: &mut AnyConnection,
    t: &PolicyTarget,
) -> Result<Option<MonitoringPolicy>> {
    Sql::new("SELECT * FROM monitoring_policies WHERE level = ")
        .text(t.level())
        .push(" AND target_id = ")
        .text(t.target_id())
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(policy)
        .transpose()
}

/// Stores a policy (one per target).
pub async fn put_policy(c: &mut AnyConnection, p: &MonitoringPolicy, at: Timestamp) -> Result<()> {
    Sql::new("INSERT INTO monitoring_policies (id, client_id, level, target_id, checks, exclusions, updated_at) VALUES (")
        .text(p.id.to_string())
        .push(", ")
        .opt_text(p.client_id.map(|c| c.to_string()))
        .push(", ")
        .text(p.target.level())
        .push(", ")
        .text(p.target.target_id())
        .push(", ")
        .text(json(&p.checks)?)
        .push(", ")
        .text(json(&p.exclusions)?)
        .push(", ")
        .int(at.0)
        .push(") ON CONFLICT (level, target_id) DO UPDATE SET checks = excluded.checks, \
               exclusions = excluded.exclusions, updated_at = excluded.updated_at")
        .execute(c)
        .await?;
    Ok(())
}

/// Removes the policy at a target. Returns whether there was one.
pub async fn delete_policy(c: &mut AnyConnection, t: &PolicyTarget) -> Result<bool> {
    Ok(Sql::new("DELETE FROM monitoring_policies WHERE level = ")
        .text(t.level())
        .push(" AND target_id = ")
        .text(t.target_id())
        .execute(c)
        .await?
        == 1)
}

// ---- endpoint groups ----------------------------------------------------------------------

/// Groups the grant reaches, with members, by name.
pub async fn list_groups(
    c: &mut AnyConnection,
    grant: &Grant,
    client: Option<ClientId>,
) -> Result<Vec<EndpointGroup>> {
    let mut q = Sql::new("SELECT * FROM endpoint_groups WHERE ");
    q.scope("client_id", grant);
    if let Some(cid) = client {
        q.push(" AND client_id = ").text(cid.to_string());
    }
    q.push(" ORDER BY name, id");
    let mut groups: Vec<EndpointGroup> = q
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok(EndpointGroup {
                id: parsed(r, "id")?,
                client_id: parsed(r, "client_id")?,
                name: text(r, "name")?,
                members: Vec::new(),
            })
        })
        .collect::<Result<_>>()?;
    let mut m = Sql::new("SELECT group_id, endpoint_id FROM endpoint_group_members WHERE ");
    m.scope("client_id", grant).push(" ORDER BY endpoint_id");
    for r in m.fetch_all(c).await? {
        let g: EndpointGroupId = parsed(&r, "group_id")?;
        if let Some(group) = groups.iter_mut().find(|x| x.id == g) {
            group.members.push(parsed(&r, "endpoint_id")?);
        }
    }
    Ok(groups)
}

/// Stores a new group.
pub async fn insert_group(
    c: &mut AnyConnection,
    id: EndpointGroupId,
    client: ClientId,
    name: &str,
    at: Timestamp,
) -> Result<()> {
    Sql::new("INSERT INTO endpoint_groups (id, client_id, name, created_at) VALUES (")
        .text(id.to_string())
        .push(", ")
        .text(client.to_string())
        .push(", ")
        .text(name)
        .push(", ")
        .int(at.0)
        .push(")")
        .execute(c)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("a group with this name exists".into()),
            e => e,
        })?;
    Ok(())
}

/// Deletes a group, its members and its policy.
pub async fn delete_group(c: &mut AnyConnection, id: EndpointGroupId) -> Result<()> {
    delete_policy(c, &PolicyTarget::Group(id)).await?;
    for table in ["endpoint_group_members", "endpoint_groups"] {
        let col = if table == "endpoint_groups" {
            "id"
        } else {
            "group_id"
        };
        Sql::new(&format!("DELETE FROM {table} WHERE {col} = "))
            .text(id.to_string())
            .execute(c)
            .await?;
    }
    Ok(())
}

/// Adds or removes a member.
pub async fn set_member(
    c: &mut AnyConnection,
    group: EndpointGroupId,
    endpoint: EndpointId,
    client: ClientId,
    member: bool,
) -> Result<()> {
    if member {
        Sql::new("INSERT INTO endpoint_group_members (group_id, endpoint_id, client_id) VALUES (")
            .text(group.to_string())
            .push(", ")
            .text(endpoint.to_string())
            .push(", ")
            .text(client.to_string())
            .push(") ON CONFLICT (group_id, endpoint_id) DO NOTHING")
            .execute(c)
            .await?;
    } else {
        Sql::new("DELETE FROM endpoint_group_members WHERE group_id = ")
            .text(group.to_string())
            .push(" AND endpoint_id = ")
            .text(endpoint.to_string())
            .execute(c)
            .await?;
    }
    Ok(())
}

/// Every membership, each endpoint's groups in name order (Tandem's own read).
pub async fn all_memberships(
    c: &mut AnyConnection,
) -> Result<HashMap<EndpointId, Vec<EndpointGroupId>>> {
    let rows = Sql::new(
        "SELECT m.endpoint_id, m.group_id FROM endpoint_group_members m \
         JOIN endpoint_groups g ON g.id = m.group_id ORDER BY m.endpoint_id, g.name, g.id",
    )
    .fetch_all(c)
    .await?;
    let mut out: HashMap<EndpointId, Vec<EndpointGroupId>> = HashMap::new();
    for r in &rows {
        out.entry(parsed(r, "endpoint_id")?)
            .or_default()
            .push(parsed(r, "group_id")?);
    }
    Ok(out)
}

/// The group's client (unscoped: to check a grant against it).
pub async fn group_client(c: &mut AnyConnection, id: EndpointGroupId) -> Result<Option<ClientId>> {
    match Sql::new("SELECT client_id FROM endpoint_groups WHERE id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?
    {
        Some(r) => Ok(Some(parsed(&r, "client_id")?)),
        None => Ok(None),
    }
}

/// An endpoint's client and site (unscoped: to check a grant against it).
pub async fn endpoint_place(
    c: &mut AnyConnection,
    id: EndpointId,
) -> Result<Option<(ClientId, SiteId, String)>> {
    match Sql::new(
        "SELECT client_id, site_id, hostname FROM endpoints WHERE retired_at IS NULL AND id = ",
    )
    .text(id.to_string())
    .fetch_optional(c)
    .await?
    {
        Some(r) => Ok(Some((
            parsed(&r, "client_id")?,
            parsed(&r, "site_id")?,
            text(&r, "hostname")?,
        ))),
        None => Ok(None),
    }
}

/// A site's client (unscoped: to check a grant against it).
pub async fn site_client(c: &mut AnyConnection, id: SiteId) -> Result<Option<ClientId>> {
    match Sql::new("SELECT client_id FROM sites WHERE id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?
    {
        Some(r) => Ok(Some(parsed(&r, "client_id")?)),
        None => Ok(None),
    }
}

// ---- the evaluation lease -------------------------------------------------------------------

/// Claims the evaluation lease for `holder` until `until`, if it is free, expired or already
/// this holder's. One conditional update: safe with several servers on one database.
pub async fn claim_lease(
    c: &mut AnyConnection,
    holder: &str,
    now: Timestamp,
    until: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE monitoring_leases SET holder = ")
        .text(holder)
        .push(", expires_at = ")
        .int(until.0)
        .push(" WHERE name = 'evaluation' AND (expires_at <= ")
        .int(now.0)
        .push(" OR holder = ")
        .text(holder)
        .push(")")
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// Gives the lease up (only if still held by `holder`).
pub async fn release_lease(c: &mut AnyConnection, holder: &str) -> Result<()> {
    Sql::new("UPDATE monitoring_leases SET expires_at = 0 WHERE name = 'evaluation' AND holder = ")
        .text(holder)
        .execute(c)
        .await?;
    Ok(())
}
