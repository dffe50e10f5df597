//! Maintenance windows and the silences they put on alerts.
//!
//! People's reads are scoped by a grant; a client's people also see the provider-wide windows
//! (they cover the client too). Tandem's own reads (the windows that may cover a client's
//! alert, the silences that have ended) are unscoped: background work over all tenants.

use crate::query::{opt_int, opt_parsed, parsed, text, ts, Sql};
use crate::{Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::Grant;
use tandem_domain::maintenance::MaintenanceWindow;
use tandem_domain::monitoring::policy::PolicyTarget;
use tandem_domain::monitoring::Alert;
use tandem_domain::{
    AlertId, ClientId, EndpointGroupId, EndpointId, MaintenanceWindowId, Timestamp,
};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| corrupt("json", e))
}

fn window(r: &AnyRow) -> Result<MaintenanceWindow> {
    let level = text(r, "level")?;
    let target_id = text(r, "target_id")?;
    Ok(MaintenanceWindow {
        id: parsed(r, "id")?,
        client_id: opt_parsed(r, "client_id")?,
        name: text(r, "name")?,
        reason: text(r, "reason")?,
        target: PolicyTarget::parse(&level, &target_id)
            .ok_or_else(|| corrupt("window target", format!("{level}/{target_id}")))?,
        filter: serde_json::from_str(&text(r, "filter")?).map_err(|e| corrupt("filter", e))?,
        schedule: serde_json::from_str(&text(r, "schedule")?)
            .map_err(|e| corrupt("schedule", e))?,
        created_by: opt_parsed(r, "created_by")?,
        created_label: text(r, "created_label")?,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

/// Stores a new window with its bounds (first start; last end, `None` if open-ended).
pub async fn insert_window(
    c: &mut AnyConnection,
    w: &MaintenanceWindow,
    first_start: Option<Timestamp>,
    last_end: Option<Timestamp>,
) -> Result<()> {
    Sql::new("INSERT INTO maintenance_windows (id, client_id, name, reason, level, target_id, filter, schedule, first_start, last_end, created_by, created_label, created_at, updated_at) VALUES (")
        .text(w.id.to_string())
        .push(", ")
        .opt_text(w.client_id.map(|c| c.to_string()))
        .push(", ")
        .text(w.name.clone())
        .push(", ")
        .text(w.reason.clone())
        .push(", ")
        .text(w.target.level())
        .push(", ")
        .text(w.target.target_id())
        .push(", ")
        .text(json(&w.filter)?)
        .push(", ")
        .text(json(&w.schedule)?)
        .push(", ")
        .opt_int(first_start.map(|t| t.0))
        .push(", ")
        .opt_int(last_end.map(|t| t.0))
        .push(", ")
        .opt_text(w.created_by.map(|u| u.to_string()))
        .push(", ")
        .text(w.created_label.clone())
        .push(", ")
        .int(w.created_at.0)
        .push(", ")
        .int(w.updated_at.0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// Writes a window's changeable fields back.
pub async fn update_window(
    c: &mut AnyConnection,
    w: &MaintenanceWindow,
    first_start: Option<Timestamp>,
    last_end: Option<Timestamp>,
) -> Result<()> {
    Sql::new("UPDATE maintenance_windows SET client_id = ")
        .opt_text(w.client_id.map(|c| c.to_string()))
        .push(", name = ")
        .text(w.name.clone())
        .push(", reason = ")
        .text(w.reason.clone())
        .push(", level = ")
        .text(w.target.level())
        .push(", target_id = ")
        .text(w.target.target_id())
        .push(", filter = ")
        .text(json(&w.filter)?)
        .push(", schedule = ")
        .text(json(&w.schedule)?)
        .push(", first_start = ")
        .opt_int(first_start.map(|t| t.0))
        .push(", last_end = ")
        .opt_int(last_end.map(|t| t.0))
        .push(", updated_at = ")
        .int(w.updated_at.0)
        .push(" WHERE id = ")
        .text(w.id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Deletes a window. Returns whether there was one.
pub async fn delete_window(c: &mut AnyConnection, id: MaintenanceWindowId) -> Result<bool> {
    Ok(Sql::new("DELETE FROM maintenance_windows WHERE id = ")
        .text(id.to_string())
        .execute(c)
        .await?
        == 1)
}

/// One window, if the grant reaches its client (provider-wide ones: any grant).
pub async fn get_window(
    c: &mut AnyConnection,
    grant: &Grant,
    id: MaintenanceWindowId,
) -> Result<Option<MaintenanceWindow>> {
    let mut q = Sql::new("SELECT * FROM maintenance_windows WHERE id = ");
    q.text(id.to_string()).push(" AND (");
    q.scope("client_id", grant);
    q.push(" OR client_id IS NULL)");
    q.fetch_optional(c).await?.as_ref().map(window).transpose()
}

/// Windows the grant reaches, with the provider-wide ones (they cover every client), or only
/// one client's (and the provider-wide ones). `ended_after`: leave out windows whose last
/// occurrence ended at or before it. Newest first, at most `limit`.
pub async fn list_windows(
    c: &mut AnyConnection,
    grant: &Grant,
    client: Option<ClientId>,
    ended_after: Option<Timestamp>,
    limit: i64,
) -> Result<Vec<MaintenanceWindow>> {
    let mut q = Sql::new("SELECT * FROM maintenance_windows WHERE (");
    q.scope("client_id", grant);
    q.push(" OR client_id IS NULL)");
    if let Some(cid) = client {
        q.push(" AND (client_id = ")
            .text(cid.to_string())
            .push(" OR client_id IS NULL)");
    }
    if let Some(t) = ended_after {
        q.push(" AND (last_end IS NULL OR last_end > ")
            .int(t.0)
            .push(")");
    }
    q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .int(limit);
    q.fetch_all(c).await?.iter().map(window).collect()
}

/// The windows that may cover a client's alerts at `now`: its own and the provider-wide
/// ones, not yet over (Tandem's own read).
pub async fn windows_for_client(
    c: &mut AnyConnection,
    client: ClientId,
    now: Timestamp,
) -> Result<Vec<MaintenanceWindow>> {
    Sql::new("SELECT * FROM maintenance_windows WHERE (client_id = ")
        .text(client.to_string())
        .push(" OR client_id IS NULL) AND (first_start IS NULL OR first_start <= ")
        .int(now.0)
        .push(") AND (last_end IS NULL OR last_end > ")
        .int(now.0)
        .push(") ORDER BY id")
        .fetch_all(c)
        .await?
        .iter()
        .map(window)
        .collect()
}

/// The groups an endpoint is in (unscoped: the caller decides on the endpoint's client).
pub async fn endpoint_groups(
    c: &mut AnyConnection,
    endpoint: EndpointId,
) -> Result<Vec<EndpointGroupId>> {
    Sql::new("SELECT group_id FROM endpoint_group_members WHERE endpoint_id = ")
        .text(endpoint.to_string())
        .push(" ORDER BY group_id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| parsed(r, "group_id"))
        .collect()
}

// ---- silences ----------------------------------------------------------------------------

/// Marks an alert silenced by a window until `until` (or, with `None`, ends its silence and
/// keeps the window as history).
pub async fn set_silence(
    c: &mut AnyConnection,
    alert: AlertId,
    by: Option<(MaintenanceWindowId, &str)>,
    until: Option<Timestamp>,
) -> Result<()> {
    let mut q = Sql::new("UPDATE alerts SET silenced_until = ");
    q.opt_int(until.map(|t| t.0));
    if let Some((id, name)) = by {
        q.push(", silenced_by = ")
            .text(id.to_string())
            .push(", silenced_window = ")
            .text(name);
    }
    q.push(" WHERE id = ").text(alert.to_string());
    q.execute(c).await?;
    Ok(())
}

/// Claims the end of an alert's silence: clears `silenced_until` only if it still holds
/// `until`. `false` when another server (or a person's change) got there first.
pub async fn claim_silence_end(
    c: &mut AnyConnection,
    alert: AlertId,
    until: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE alerts SET silenced_until = NULL WHERE id = ")
        .text(alert.to_string())
        .push(" AND silenced_until = ")
        .int(until.0)
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// Alerts whose silence has run out at `now`, oldest first (Tandem's own read).
pub async fn ended_silences(
    c: &mut AnyConnection,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<Alert>> {
    let ids: Vec<AlertId> =
        Sql::new("SELECT id FROM alerts WHERE silenced_until IS NOT NULL AND silenced_until <= ")
            .int(now.0)
            .push(" ORDER BY silenced_until, id LIMIT ")
            .int(limit)
            .fetch_all(c)
            .await?
            .iter()
            .map(|r| parsed(r, "id"))
            .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(a) = crate::monitoring::alert_unscoped(c, id).await? {
            out.push(a);
        }
    }
    Ok(out)
}

/// Brings forward the end of every silence a window holds, so the sweep looks at those alerts
/// again at once (after the window was changed or deleted).
pub async fn release_silences(
    c: &mut AnyConnection,
    window: MaintenanceWindowId,
    now: Timestamp,
) -> Result<u64> {
    Sql::new("UPDATE alerts SET silenced_until = ")
        .int(now.0)
        .push(" WHERE silenced_by = ")
        .text(window.to_string())
        .push(" AND silenced_until > ")
        .int(now.0)
        .execute(c)
        .await
}

/// How many alerts a window has silenced, and how many it silences now.
pub async fn silence_counts(
    c: &mut AnyConnection,
    window: MaintenanceWindowId,
) -> Result<(i64, i64)> {
    let r = Sql::new(
        "SELECT COUNT(*) AS n, COUNT(silenced_until) AS m FROM alerts WHERE silenced_by = ",
    )
    .text(window.to_string())
    .fetch_optional(c)
    .await?;
    match r {
        Some(r) => Ok((
            opt_int(&r, "n")?.unwrap_or(0),
            opt_int(&r, "m")?.unwrap_or(0),
        )),
        None => Ok((0, 0)),
    }
}
