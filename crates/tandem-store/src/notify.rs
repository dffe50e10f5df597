//! Notification channels and the deliveries outbox (issue #6).
//!
//! People's reads are scoped by a grant (and by side, in the use case). [`channels_for`] —
//! which channels hear about an event — runs inside the event's own write and is unscoped by
//! design: the event names its client and owning side. Deliveries are claimed in batches by a
//! conditional `UPDATE` whose claim lapses, so several servers send each delivery once.

use crate::query::{int, opt_int, opt_parsed, opt_text, opt_ts, parsed, text, ts, Sql};
use crate::{Page, Paged, Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::Grant;
use tandem_domain::notify::{parse_side, Channel, Delivery, DeliveryStatus, Subscription};
use tandem_domain::scope::Party;
use tandem_domain::{ChannelId, ClientId, DeliveryId, Timestamp};

/// A channel with what is never shown: its full URL and its secret.
#[derive(Clone, Debug)]
pub struct StoredChannel {
    /// The channel (its `url` in full).
    pub channel: Channel,
    /// The webhook's signing secret or PagerDuty's routing key.
    pub secret: Option<String>,
}

fn side(r: &AnyRow, col: &str) -> Result<Party> {
    let s = text(r, col)?;
    parse_side(&s).ok_or_else(|| StoreError::Corrupt(format!("column {col} holds {s:?}")))
}

fn channel_row(r: &AnyRow) -> Result<StoredChannel> {
    let sub: String = text(r, "subscription")?;
    let subscription: Subscription = serde_json::from_str(&sub)
        .map_err(|_| StoreError::Corrupt("notification subscription".into()))?;
    let secret = opt_text(r, "secret")?;
    Ok(StoredChannel {
        channel: Channel {
            id: parsed(r, "id")?,
            client_id: opt_parsed(r, "client_id")?,
            side: side(r, "side")?,
            kind: parsed(r, "kind")?,
            name: text(r, "name")?,
            enabled: int(r, "enabled")? != 0,
            url: opt_text(r, "url")?,
            addresses: opt_text(r, "addresses")?
                .map(|a| {
                    a.split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            has_secret: secret.is_some(),
            subscription,
            created_at: ts(r, "created_at")?,
            updated_at: ts(r, "updated_at")?,
        },
        secret,
    })
}

fn subscription_json(s: &Subscription) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "{}".into())
}

/// Stores a new channel.
pub async fn insert_channel(
    c: &mut AnyConnection,
    ch: &Channel,
    secret: Option<&str>,
    by: Option<tandem_domain::UserId>,
) -> Result<()> {
    Sql::new(
        "INSERT INTO notification_channels (id, client_id, side, kind, name, enabled, url, \
         secret, addresses, subscription, created_by, created_at, updated_at) VALUES (",
    )
    .text(ch.id.to_string())
    .push(", ")
    .opt_text(ch.client_id.map(|x| x.to_string()))
    .push(", ")
    .text(ch.side.as_str())
    .push(", ")
    .text(ch.kind.as_str())
    .push(", ")
    .text(ch.name.clone())
    .push(", ")
    .int(i64::from(ch.enabled))
    .push(", ")
    .opt_text(ch.url.clone())
    .push(", ")
    .opt_text(secret.map(str::to_string))
    .push(", ")
    .opt_text((!ch.addresses.is_empty()).then(|| ch.addresses.join(",")))
    .push(", ")
    .text(subscription_json(&ch.subscription))
    .push(", ")
    .opt_text(by.map(|u| u.to_string()))
    .push(", ")
    .int(ch.created_at.0)
    .push(", ")
    .int(ch.updated_at.0)
    .push(")")
    .execute(c)
    .await?;
    Ok(())
}

/// Rewrites a channel's settings (and its secret).
pub async fn update_channel(
    c: &mut AnyConnection,
    ch: &Channel,
    secret: Option<&str>,
) -> Result<u64> {
    Sql::new("UPDATE notification_channels SET name = ")
        .text(ch.name.clone())
        .push(", enabled = ")
        .int(i64::from(ch.enabled))
        .push(", url = ")
        .opt_text(ch.url.clone())
        .push(", secret = ")
        .opt_text(secret.map(str::to_string))
        .push(", addresses = ")
        .opt_text((!ch.addresses.is_empty()).then(|| ch.addresses.join(",")))
        .push(", subscription = ")
        .text(subscription_json(&ch.subscription))
        .push(", updated_at = ")
        .int(ch.updated_at.0)
        .push(" WHERE id = ")
        .text(ch.id.to_string())
        .push(" AND deleted_at IS NULL")
        .execute(c)
        .await
}

/// Deletes a channel (kept, marked deleted, so its deliveries stay readable); its pending
/// deliveries fail with a note.
pub async fn delete_channel(c: &mut AnyConnection, id: ChannelId, now: Timestamp) -> Result<u64> {
    let n = Sql::new("UPDATE notification_channels SET deleted_at = ")
        .int(now.0)
        .push(", enabled = 0, secret = NULL WHERE id = ")
        .text(id.to_string())
        .push(" AND deleted_at IS NULL")
        .execute(c)
        .await?;
    Sql::new("UPDATE notification_deliveries SET status = 'failed', last_error = 'the channel was deleted', claimed_by = NULL, claimed_until = NULL WHERE channel_id = ")
        .text(id.to_string())
        .push(" AND status = 'pending'")
        .execute(c)
        .await?;
    Ok(n)
}

/// One live channel the grant reaches.
pub async fn get_channel(
    c: &mut AnyConnection,
    g: &Grant,
    id: ChannelId,
) -> Result<Option<StoredChannel>> {
    let mut q = Sql::new("SELECT * FROM notification_channels WHERE id = ");
    q.text(id.to_string())
        .push(" AND deleted_at IS NULL AND ")
        .scope("client_id", g);
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map(channel_row)
        .transpose()
}

/// One channel by id, deleted or not (for the sender).
pub async fn get_channel_unscoped(
    c: &mut AnyConnection,
    id: ChannelId,
) -> Result<Option<StoredChannel>> {
    Sql::new("SELECT * FROM notification_channels WHERE id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(channel_row)
        .transpose()
}

/// Live channels the grant reaches, of one side; `client` narrows to one client's
/// (`Some(None)`: the provider-wide ones).
pub async fn list_channels(
    c: &mut AnyConnection,
    g: &Grant,
    side: Party,
    client: Option<Option<ClientId>>,
) -> Result<Vec<StoredChannel>> {
    let mut q =
        Sql::new("SELECT * FROM notification_channels WHERE deleted_at IS NULL AND side = ");
    q.text(side.as_str()).push(" AND ").scope("client_id", g);
    match client {
        Some(Some(cid)) => {
            q.push(" AND client_id = ").text(cid.to_string());
        }
        Some(None) => {
            q.push(" AND client_id IS NULL");
        }
        None => {}
    }
    q.push(" ORDER BY created_at, id LIMIT 500");
    q.fetch_all(c).await?.iter().map(channel_row).collect()
}

/// The enabled channels that hear about an event of `client` owned by `side`: that side's
/// channels for the client, and — when the provider owns it — the provider-wide ones.
pub async fn channels_for(
    c: &mut AnyConnection,
    client: Option<ClientId>,
    side: Party,
) -> Result<Vec<StoredChannel>> {
    let mut q = Sql::new(
        "SELECT * FROM notification_channels WHERE enabled = 1 AND deleted_at IS NULL AND side = ",
    );
    q.text(side.as_str()).push(" AND (client_id IS NULL");
    if let Some(cid) = client {
        q.push(" OR client_id = ").text(cid.to_string());
    }
    q.push(")");
    q.fetch_all(c).await?.iter().map(channel_row).collect()
}

fn delivery_row(r: &AnyRow) -> Result<Delivery> {
    Ok(Delivery {
        id: parsed(r, "id")?,
        channel_id: parsed(r, "channel_id")?,
        client_id: opt_parsed(r, "client_id")?,
        side: side(r, "side")?,
        event_id: text(r, "event_id")?,
        event_kind: parsed(r, "event_kind")?,
        event_key: text(r, "event_key")?,
        severity: parsed(r, "severity")?,
        status: parsed(r, "status")?,
        attempts: int(r, "attempts")?,
        next_attempt_at: ts(r, "next_attempt_at")?,
        last_error: opt_text(r, "last_error")?,
        last_status: opt_int(r, "last_status")?,
        created_at: ts(r, "created_at")?,
        delivered_at: opt_ts(r, "delivered_at")?,
    })
}

/// Queues a delivery (inside the write that records the event).
pub async fn insert_delivery(c: &mut AnyConnection, d: &Delivery, event: &str) -> Result<()> {
    Sql::new(
        "INSERT INTO notification_deliveries (id, channel_id, client_id, side, event_id, \
         event_kind, event_key, severity, event, status, attempts, next_attempt_at, created_at) VALUES (",
    )
    .text(d.id.to_string())
    .push(", ")
    .text(d.channel_id.to_string())
    .push(", ")
    .opt_text(d.client_id.map(|x| x.to_string()))
    .push(", ")
    .text(d.side.as_str())
    .push(", ")
    .text(d.event_id.clone())
    .push(", ")
    .text(d.event_kind.as_str())
    .push(", ")
    .text(d.event_key.clone())
    .push(", ")
    .text(d.severity.as_str())
    .push(", ")
    .text(event)
    .push(", ")
    .text(d.status.as_str())
    .push(", ")
    .int(d.attempts)
    .push(", ")
    .int(d.next_attempt_at.0)
    .push(", ")
    .int(d.created_at.0)
    .push(")")
    .execute(c)
    .await?;
    Ok(())
}

/// A claimed delivery with its event's JSON.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The delivery.
    pub delivery: Delivery,
    /// The event as queued (schema `tandem.notification/1`).
    pub event: String,
}

/// Claims up to `limit` due deliveries for `claim` (unique to this call) until `until`, in
/// one conditional `UPDATE`: a row is taken only while it is still pending and unclaimed (or
/// its claim lapsed), so of several servers exactly one takes it.
pub async fn claim_due(
    c: &mut AnyConnection,
    claim: &str,
    now: Timestamp,
    until: Timestamp,
    limit: i64,
) -> Result<Vec<Claimed>> {
    let mut q = Sql::new("UPDATE notification_deliveries SET claimed_by = ");
    q.text(claim)
        .push(", claimed_until = ")
        .int(until.0)
        .push(" WHERE id IN (SELECT id FROM notification_deliveries WHERE status = 'pending' AND next_attempt_at <= ")
        .int(now.0)
        .push(" AND (claimed_until IS NULL OR claimed_until < ")
        .int(now.0)
        .push(") ORDER BY next_attempt_at, id LIMIT ")
        .int(limit)
        .push(") AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < ")
        .int(now.0)
        .push(")");
    if q.execute(c).await? == 0 {
        return Ok(vec![]);
    }
    let rows = Sql::new("SELECT * FROM notification_deliveries WHERE claimed_by = ")
        .text(claim)
        .push(" ORDER BY next_attempt_at, id")
        .fetch_all(c)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                delivery: delivery_row(r)?,
                event: text(r, "event")?,
            })
        })
        .collect()
}

/// Records an accepted delivery (only while `claim` still holds it).
pub async fn mark_delivered(
    c: &mut AnyConnection,
    id: DeliveryId,
    claim: &str,
    now: Timestamp,
    status: Option<i64>,
) -> Result<u64> {
    Sql::new("UPDATE notification_deliveries SET status = 'delivered', delivered_at = ")
        .int(now.0)
        .push(", attempts = attempts + 1, last_error = NULL, last_status = ")
        .opt_int(status)
        .push(", claimed_by = NULL, claimed_until = NULL WHERE id = ")
        .text(id.to_string())
        .push(" AND claimed_by = ")
        .text(claim)
        .execute(c)
        .await
}

/// Records accepted deliveries of one claim that got the same status code, in one
/// statement per 500 (only those `claim` still holds).
pub async fn mark_delivered_many(
    c: &mut AnyConnection,
    ids: &[DeliveryId],
    claim: &str,
    now: Timestamp,
    status: Option<i64>,
) -> Result<u64> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        let mut q =
            Sql::new("UPDATE notification_deliveries SET status = 'delivered', delivered_at = ");
        q.int(now.0)
            .push(", attempts = attempts + 1, last_error = NULL, last_status = ")
            .opt_int(status)
            .push(", claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ")
            .text(claim)
            .push(" AND id IN (");
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.text(id.to_string());
        }
        q.push(")");
        n += q.execute(c).await?;
    }
    Ok(n)
}

/// Records a failed attempt: pending again at `next`, or failed for good with `give_up`.
pub async fn mark_attempt_failed(
    c: &mut AnyConnection,
    id: DeliveryId,
    claim: &str,
    next: Timestamp,
    give_up: bool,
    error: &str,
    status: Option<i64>,
) -> Result<u64> {
    Sql::new("UPDATE notification_deliveries SET status = ")
        .text(if give_up { "failed" } else { "pending" })
        .push(", attempts = attempts + 1, next_attempt_at = ")
        .int(next.0)
        .push(", last_error = ")
        .text(error.chars().take(500).collect::<String>())
        .push(", last_status = ")
        .opt_int(status)
        .push(", claimed_by = NULL, claimed_until = NULL WHERE id = ")
        .text(id.to_string())
        .push(" AND claimed_by = ")
        .text(claim)
        .execute(c)
        .await
}

/// Puts a failed delivery back in the queue, due now, with fresh attempts.
pub async fn resend(c: &mut AnyConnection, id: DeliveryId, now: Timestamp) -> Result<u64> {
    Sql::new(
        "UPDATE notification_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ",
    )
    .int(now.0)
    .push(", claimed_by = NULL, claimed_until = NULL WHERE id = ")
    .text(id.to_string())
    .push(" AND status = 'failed'")
    .execute(c)
    .await
}

/// Which deliveries to list.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    /// Only this side's.
    pub side: Option<Party>,
    /// Only one client's (`Some(None)`: provider-wide channels').
    pub client: Option<Option<ClientId>>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this channel's.
    pub channel: Option<ChannelId>,
}

/// Deliveries the grant reaches, newest first.
pub async fn list_deliveries(
    c: &mut AnyConnection,
    g: &Grant,
    f: &DeliveryFilter,
    page: Page,
) -> Result<Paged<Delivery>> {
    let mut q = Sql::new("SELECT * FROM notification_deliveries WHERE ");
    q.scope("client_id", g);
    if let Some(s) = f.side {
        q.push(" AND side = ").text(s.as_str());
    }
    match f.client {
        Some(Some(cid)) => {
            q.push(" AND client_id = ").text(cid.to_string());
        }
        Some(None) => {
            q.push(" AND client_id IS NULL");
        }
        None => {}
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").text(s.as_str());
    }
    if let Some(ch) = f.channel {
        q.push(" AND channel_id = ").text(ch.to_string());
    }
    q.push(" ORDER BY created_at DESC, id DESC")
        .page(&page.probe());
    let items = q
        .fetch_all(c)
        .await?
        .iter()
        .map(delivery_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

/// One delivery the grant reaches.
pub async fn get_delivery(
    c: &mut AnyConnection,
    g: &Grant,
    id: DeliveryId,
) -> Result<Option<Delivery>> {
    let mut q = Sql::new("SELECT * FROM notification_deliveries WHERE id = ");
    q.text(id.to_string()).push(" AND ").scope("client_id", g);
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map(delivery_row)
        .transpose()
}

/// A client's name (unscoped: the event already names the client).
pub async fn client_name(c: &mut AnyConnection, id: ClientId) -> Result<Option<String>> {
    Sql::new("SELECT name FROM clients WHERE id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(|r| text(r, "name"))
        .transpose()
}
