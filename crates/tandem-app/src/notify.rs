//! Notification channels (issue #6): each side of a client — and the provider, for every
//! client — says where word of its alerts, pages and SLA events goes (e-mail, a signed
//! webhook, Slack, Teams, PagerDuty). The rendering is `tandem_domain::notify`'s.
//!
//! - An event is queued as one delivery per interested channel **inside the write that
//!   records the event** ([`queue_event`], called from the alert, page and SLA use cases), so
//!   a rolled-back change notifies nobody and a committed one is never forgotten. It goes to
//!   the channels of the side that owns the alert, page or ticket at that instant (the scope
//!   agreement decided that), plus the provider-wide channels when the provider owns it.
//! - The sender (`tandem_server::notify`, in `tandem serve`) claims due deliveries in batches
//!   ([`App::claim_notifications`]) — several servers each send a delivery once — posts them,
//!   and records the outcomes ([`App::record_notification_outcomes`]): retried with
//!   exponential backoff and jitter (and the receiver's `Retry-After`), failed after the
//!   policy's attempts, then visible and re-sendable. E-mail channels hand their message to
//!   the mail outbox (and its sender) in the claim's own transaction.
//!
//! Who may do what: managing channels and reading deliveries needs `IntegrationsManage`
//! (provider admins; a client's IT admins for their client) and belonging to the channel's
//! side: provider staff manage the provider side's channels (per client, or provider-wide),
//! a client's IT its internal side's. Secrets (a webhook's signing secret, a PagerDuty
//! routing key, Slack and Teams URLs) are shown once at most and never logged or audited.

use crate::{Actor, App, Audit, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_domain::authz::{Action, Denied, Grant};
use tandem_domain::monitoring::{Alert, Severity};
use tandem_domain::notify::{
    check_destination, email, parse_addresses, retry_delay_ms, AlertRef, Channel, ChannelKind,
    Delivery, DeliveryStatus, Event, EventKind, PageRef, RetryPolicy, Subscription, TicketRef,
    PAGERDUTY_EVENTS_URL,
};
use tandem_domain::scope::Party;
use tandem_domain::validate::Invalid;
use tandem_domain::{ChannelId, ClientId, DeliveryId, Side, Timestamp};
use tandem_store::notify::{self as store, Claimed, DeliveryFilter, StoredChannel};
use tandem_store::{Page, Paged, Write};

/// How this server sends notifications, set once at start-up (default: no public URL,
/// private destinations refused, the default retry policy).
#[derive(Clone, Debug, Default)]
pub struct NotifySettings {
    /// Where people reach Tandem, to make links absolute.
    pub public_url: String,
    /// Whether channels may point at private, loopback or link-local addresses (and use plain
    /// http there). Off by default: a tenant's channel must not reach the server's own network.
    pub allow_private: bool,
    /// Backoff and attempts.
    pub retry: RetryPolicy,
}

/// How long a sender's claim on a delivery lasts before another server may retry it.
pub const NOTIFY_CLAIM_SECONDS: i64 = 60;

/// A channel to make.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// The client; leave out for a provider-wide channel (provider admins).
    #[serde(default)]
    pub client_id: Option<ClientId>,
    /// What kind.
    pub kind: ChannelKind,
    /// A name (1–100 characters).
    pub name: String,
    /// The receiver's URL (webhook, Slack, Teams; PagerDuty defaults to the Events API v2).
    #[serde(default)]
    pub url: Option<String>,
    /// E-mail channels: the addresses, comma separated.
    #[serde(default)]
    pub addresses: Option<String>,
    /// PagerDuty: the integration's routing key.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Which events (default: every kind, any severity).
    #[serde(default)]
    pub subscription: Option<Subscription>,
    /// Start enabled (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A change to a channel; what is left out stays.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// Enable or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A new URL.
    #[serde(default)]
    pub url: Option<String>,
    /// New addresses (e-mail channels).
    #[serde(default)]
    pub addresses: Option<String>,
    /// A new routing key (PagerDuty).
    #[serde(default)]
    pub routing_key: Option<String>,
    /// New filters.
    #[serde(default)]
    pub subscription: Option<Subscription>,
    /// Webhooks: make a new signing secret (shown once in the answer).
    #[serde(default)]
    pub rotate_secret: bool,
}

/// A channel just made or changed, with a webhook's new signing secret — shown only now.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelSaved {
    /// The channel.
    pub channel: Channel,
    /// The webhook's signing secret, when one was just made. Not retrievable later.
    pub secret: Option<String>,
}

/// A claimed delivery ready to post.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The delivery (its `attempts` before this one).
    pub delivery: Delivery,
    /// The channel's kind.
    pub kind: ChannelKind,
    /// Where to post.
    pub url: String,
    /// The signing secret or routing key.
    pub secret: Option<String>,
    /// The event, its link made absolute.
    pub event: Event,
    /// The claim that holds it.
    pub claim: String,
}

/// What a post came to.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered {
        /// Its status code.
        status: u16,
    },
    /// It did not.
    Failed {
        /// What went wrong (no secrets).
        error: String,
        /// The status code, if an answer came.
        status: Option<u16>,
        /// The receiver's `Retry-After`, in milliseconds.
        retry_after_ms: Option<i64>,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![Invalid::new(field, message)])
}

/// The side an actor manages channels for: provider staff the provider's, client staff
/// their internal IT's; Tandem itself the provider's.
fn actor_party(actor: &Actor) -> Result<Party> {
    match actor.principal.as_ref().map(|p| p.side()) {
        None | Some(Side::Provider) | Some(Side::System) => Ok(Party::Provider),
        Some(Side::Client) => Ok(Party::Internal),
        Some(Side::Outside) => Err(Error::Forbidden(Denied(
            "only the two sides of a client manage notification channels",
        ))),
    }
}

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 {
        return Err(invalid("name", "write a name of 1 to 100 characters"));
    }
    Ok(n.to_string())
}

fn check_routing_key(k: &str) -> Result<String> {
    let k = k.trim();
    if k.is_empty()
        || k.len() > 100
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            "routing_key",
            "give the PagerDuty integration's routing key (letters and digits, up to 100)",
        ));
    }
    Ok(k.to_string())
}

/// A client filter must name a client the grant reaches; the provider-wide filter needs the
/// provider's side and level.
fn check_client_filter(g: &Grant, side: Party, client: Option<Option<ClientId>>) -> Result<()> {
    match client {
        Some(Some(c)) => g.check_client(c).map_err(|_| Error::NotFound("client")),
        Some(None) if !(g.covers_provider() && side == Party::Provider) => Err(Error::Forbidden(
            Denied("only provider administrators see the provider-wide channels"),
        )),
        _ => Ok(()),
    }
}

/// What people may see of a stored channel.
fn shown(s: &StoredChannel) -> Channel {
    let mut c = s.channel.clone();
    c.url = c.url.as_deref().map(|u| Channel::shown_url(c.kind, u));
    c
}

fn page_severity(s: tandem_domain::oncall::Severity) -> Severity {
    use tandem_domain::oncall::Severity as P;
    match s {
        P::Critical | P::Error => Severity::Critical,
        P::Warning => Severity::Warning,
        P::Info => Severity::Info,
    }
}

/// Queues one delivery of `e` per enabled channel of its client and owning side (and the
/// provider-wide ones when the provider owns it) that wants it, inside the caller's write.
/// Answers how many were queued. Cheap when nobody listens: one indexed read.
pub(crate) async fn queue_event(w: &mut Write, mut e: Event) -> Result<usize> {
    // Read once per transaction: a group commit of alerts asks for the same client's
    // channels for every alert.
    let memo = format!("notify.channels:{:?}:{}", e.client_id, e.side.as_str());
    let channels: std::sync::Arc<Vec<StoredChannel>> = match w.remembered(&memo) {
        Some(c) => c,
        None => {
            let c = std::sync::Arc::new(store::channels_for(w, e.client_id, e.side).await?);
            w.remember(memo, c.clone());
            c
        }
    };
    let wanted: Vec<&StoredChannel> = channels
        .iter()
        .filter(|c| c.channel.subscription.wants(e.kind, e.severity))
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    if e.client_name.is_none() {
        if let Some(c) = e.client_id {
            let memo = format!("notify.client_name:{c}");
            e.client_name = match w.remembered(&memo) {
                Some(n) => n,
                None => {
                    let n = store::client_name(w, c).await?;
                    w.remember(memo, n.clone());
                    n
                }
            };
        }
    }
    let body = serde_json::to_string(&e).map_err(|x| Error::Internal(x.to_string()))?;
    let now = Timestamp::now();
    for c in &wanted {
        let d = Delivery {
            id: DeliveryId::new(),
            channel_id: c.channel.id,
            client_id: c.channel.client_id,
            side: c.channel.side,
            event_id: e.id.clone(),
            event_kind: e.kind,
            event_key: e.key.clone(),
            severity: e.severity,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            last_status: None,
            created_at: now,
            delivered_at: None,
        };
        store::insert_delivery(w, &d, &body).await?;
    }
    Ok(wanted.len())
}

/// The event of an alert transition (`fired`, `acknowledged`, `resolved`), if it is one
/// channels hear about.
pub(crate) async fn alert_event(
    w: &mut Write,
    a: &Alert,
    kind: &str,
    at: Timestamp,
    body: &str,
) -> Result<Option<Event>> {
    let kind = match kind {
        "fired" => EventKind::AlertFired,
        "acknowledged" => EventKind::AlertAcknowledged,
        "resolved" => EventKind::AlertResolved,
        _ => return Ok(None),
    };
    let mut e = Event::new(
        kind,
        at,
        a.owner,
        a.severity,
        &a.title,
        &crate::page_key(a.id),
    );
    e.client_id = Some(a.client_id);
    e.summary = body.chars().take(2000).collect();
    e.link = Some(format!("/alerts/{}", a.id));
    let hostname = match a.endpoint_id {
        Some(id) => {
            let memo = format!("notify.hostname:{id}");
            match w.remembered(&memo) {
                Some(h) => h,
                None => {
                    let h = tandem_store::monitoring::endpoint_place(w, id)
                        .await?
                        .map(|p| p.2);
                    w.remember(memo, h.clone());
                    h
                }
            }
        }
        None => None,
    };
    e.alert = Some(AlertRef {
        id: a.id.to_string(),
        domain: a.domain.clone(),
        source: a.source.clone(),
        endpoint_id: a.endpoint_id.map(|x| x.to_string()),
        hostname,
    });
    Ok(Some(e))
}

/// The event of a page's transition.
pub(crate) fn page_event(
    p: &tandem_domain::oncall::Page,
    kind: EventKind,
    side: Party,
    step: i64,
    at: Timestamp,
    body: &str,
) -> Event {
    let mut e = Event::new(
        kind,
        at,
        side,
        page_severity(p.severity),
        &p.summary,
        &p.dedup_key,
    );
    e.client_id = Some(p.client_id);
    e.summary = body.chars().take(2000).collect();
    e.link = Some(format!("/oncall/pages/{}", p.id));
    e.page = Some(PageRef {
        id: p.id.to_string(),
        step,
    });
    e
}

/// The event of an SLA warning or breach.
pub(crate) fn sla_event(
    t: &tandem_domain::helpdesk::Ticket,
    breach: bool,
    clock: &str,
    at: Timestamp,
    body: &str,
) -> Event {
    let (kind, sev) = if breach {
        (EventKind::SlaBreach, Severity::Critical)
    } else {
        (EventKind::SlaWarning, Severity::Warning)
    };
    let title = format!("Ticket #{}: {}", t.number, t.subject);
    let mut e = Event::new(
        kind,
        at,
        t.owner,
        sev,
        &title,
        &format!("ticket:{}:{clock}", t.id),
    );
    e.client_id = Some(t.client_id);
    e.summary = body.chars().take(2000).collect();
    e.link = Some(format!("/tickets/{}", t.id));
    e.ticket = Some(TicketRef {
        id: t.id.to_string(),
        number: t.number,
        clock: clock.to_string(),
    });
    e
}

impl App {
    /// Turns outbound notifications' settings on (once, at start-up); `false` if already set.
    pub fn set_notify(&self, s: NotifySettings) -> bool {
        self.notify.set(s).is_ok()
    }

    /// The settings in force (defaults until set).
    pub fn notify_settings(&self) -> NotifySettings {
        self.notify.get().cloned().unwrap_or_default()
    }

    fn channel_grant(&self, actor: &Actor) -> Result<(Grant, Party)> {
        let g = self.grant(actor, Action::IntegrationsManage)?;
        let side = actor_party(actor)?;
        Ok((g, side))
    }

    fn check_url(&self, kind: ChannelKind, url: Option<&str>) -> Result<Option<String>> {
        match kind {
            ChannelKind::Email => Ok(None),
            ChannelKind::Pagerduty => {
                let u = url
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .unwrap_or(PAGERDUTY_EVENTS_URL);
                check_destination(u, self.notify_settings().allow_private)?;
                Ok(Some(u.to_string()))
            }
            _ => {
                let u = url.map(str::trim).unwrap_or_default();
                check_destination(u, self.notify_settings().allow_private)?;
                Ok(Some(u.to_string()))
            }
        }
    }

    /// Makes a channel on the actor's side, for a client or (provider admins) provider-wide.
    pub async fn create_channel(&self, actor: &Actor, new: NewChannel) -> Result<ChannelSaved> {
        let (g, side) = self.channel_grant(actor)?;
        match new.client_id {
            Some(c) => g.check_client(c).map_err(|_| Error::NotFound("client"))?,
            None if g.covers_provider() && side == Party::Provider => {}
            None => {
                return Err(Error::Forbidden(Denied(
                    "only provider administrators make provider-wide channels",
                )))
            }
        }
        let name = check_name(&new.name)?;
        let url = self.check_url(new.kind, new.url.as_deref())?;
        let addresses = match new.kind {
            ChannelKind::Email => parse_addresses(new.addresses.as_deref().unwrap_or(""))?,
            _ => vec![],
        };
        let (secret, shown_secret) = match new.kind {
            ChannelKind::Webhook => {
                let s = format!("tdwh_{}", crate::new_secret(32));
                (Some(s.clone()), Some(s))
            }
            ChannelKind::Pagerduty => (
                Some(check_routing_key(new.routing_key.as_deref().unwrap_or(""))?),
                None,
            ),
            _ => (None, None),
        };
        let now = Timestamp::now();
        let ch = Channel {
            id: ChannelId::new(),
            client_id: new.client_id,
            side,
            kind: new.kind,
            name,
            enabled: new.enabled.unwrap_or(true),
            url,
            addresses,
            has_secret: secret.is_some(),
            subscription: new.subscription.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        };
        let stored = StoredChannel {
            channel: ch.clone(),
            secret: secret.clone(),
        };
        let mut w = self.store.write().await?;
        store::insert_channel(
            &mut w,
            &ch,
            secret.as_deref(),
            actor.principal.as_ref().map(|p| p.user_id),
        )
        .await?;
        let view = shown(&stored);
        Audit::new(actor, "notification_channel.created", "notification_channel", ch.id)
            .client(ch.client_id)
            .after(json!({"kind": ch.kind, "name": ch.name, "side": ch.side, "url": view.url, "addresses": ch.addresses, "subscription": ch.subscription, "enabled": ch.enabled}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(ChannelSaved {
            channel: view,
            secret: shown_secret,
        })
    }

    /// A channel of the actor's side the grant reaches.
    async fn own_channel(&self, actor: &Actor, id: ChannelId) -> Result<(StoredChannel, Party)> {
        let (g, side) = self.channel_grant(actor)?;
        let mut r = self.store.read().await?;
        match store::get_channel(&mut r, &g, id).await? {
            Some(c) if c.channel.side == side => Ok((c, side)),
            _ => Err(Error::NotFound("notification channel")),
        }
    }

    /// The actor's side's channels (`client`: one client's; `Some(None)`: provider-wide).
    pub async fn list_channels(
        &self,
        actor: &Actor,
        client: Option<Option<ClientId>>,
    ) -> Result<Vec<Channel>> {
        let (g, side) = self.channel_grant(actor)?;
        check_client_filter(&g, side, client)?;
        let mut r = self.store.read().await?;
        Ok(store::list_channels(&mut r, &g, side, client)
            .await?
            .iter()
            .map(shown)
            .collect())
    }

    /// One channel of the actor's side.
    pub async fn get_channel(&self, actor: &Actor, id: ChannelId) -> Result<Channel> {
        Ok(shown(&self.own_channel(actor, id).await?.0))
    }

    /// Changes a channel (audited; secrets never in the audit trail).
    pub async fn update_channel(
        &self,
        actor: &Actor,
        id: ChannelId,
        p: ChannelPatch,
    ) -> Result<ChannelSaved> {
        let (cur, _) = self.own_channel(actor, id).await?;
        let before = shown(&cur);
        let mut ch = cur.channel.clone();
        let mut secret = cur.secret.clone();
        let mut shown_secret = None;
        if let Some(n) = &p.name {
            ch.name = check_name(n)?;
        }
        if let Some(e) = p.enabled {
            ch.enabled = e;
        }
        if let Some(u) = &p.url {
            if ch.kind == ChannelKind::Email {
                return Err(invalid("url", "an e-mail channel has addresses, not a URL"));
            }
            ch.url = self.check_url(ch.kind, Some(u))?;
        }
        if let Some(a) = &p.addresses {
            if ch.kind != ChannelKind::Email {
                return Err(invalid("addresses", "only e-mail channels have addresses"));
            }
            ch.addresses = parse_addresses(a)?;
        }
        if let Some(k) = &p.routing_key {
            if ch.kind != ChannelKind::Pagerduty {
                return Err(invalid(
                    "routing_key",
                    "only PagerDuty channels have a routing key",
                ));
            }
            secret = Some(check_routing_key(k)?);
        }
        if p.rotate_secret {
            if ch.kind != ChannelKind::Webhook {
                return Err(invalid(
                    "rotate_secret",
                    "only webhooks have a signing secret",
                ));
            }
            let s = format!("tdwh_{}", crate::new_secret(32));
            secret = Some(s.clone());
            shown_secret = Some(s);
        }
        if let Some(s) = p.subscription {
            ch.subscription = s;
        }
        ch.updated_at = Timestamp::now();
        ch.has_secret = secret.is_some();
        let stored = StoredChannel {
            channel: ch.clone(),
            secret: secret.clone(),
        };
        let after = shown(&stored);
        let mut w = self.store.write().await?;
        if store::update_channel(&mut w, &ch, secret.as_deref()).await? != 1 {
            return Err(Error::NotFound("notification channel"));
        }
        Audit::new(actor, "notification_channel.updated", "notification_channel", ch.id)
            .client(ch.client_id)
            .before(json!({"name": before.name, "enabled": before.enabled, "url": before.url, "addresses": before.addresses, "subscription": before.subscription}))
            .after(json!({"name": after.name, "enabled": after.enabled, "url": after.url, "addresses": after.addresses, "subscription": after.subscription, "secret_rotated": p.rotate_secret || p.routing_key.is_some()}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(ChannelSaved {
            channel: after,
            secret: shown_secret,
        })
    }

    /// Deletes a channel; its pending deliveries fail, its history stays.
    pub async fn delete_channel(&self, actor: &Actor, id: ChannelId) -> Result<()> {
        let (cur, _) = self.own_channel(actor, id).await?;
        let mut w = self.store.write().await?;
        store::delete_channel(&mut w, id, Timestamp::now()).await?;
        Audit::new(
            actor,
            "notification_channel.deleted",
            "notification_channel",
            id,
        )
        .client(cur.channel.client_id)
        .before(json!({"kind": cur.channel.kind, "name": cur.channel.name}))
        .write(&mut w)
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// Queues a test notification to one channel (also when it is disabled); answers the
    /// delivery, which the sender posts like any other.
    pub async fn test_channel(&self, actor: &Actor, id: ChannelId) -> Result<Delivery> {
        let (cur, _) = self.own_channel(actor, id).await?;
        let now = Timestamp::now();
        let mut e = Event::new(
            EventKind::Test,
            now,
            cur.channel.side,
            Severity::Info,
            &format!("Test notification for “{}”", cur.channel.name),
            &format!("test:{}", cur.channel.id),
        );
        e.client_id = cur.channel.client_id;
        e.summary = format!(
            "{} asked Tandem to send this test. If you can read it, the channel works.",
            actor.label()
        );
        e.link = Some("/notifications".into());
        let mut w = self.store.write().await?;
        if let Some(c) = e.client_id {
            e.client_name = store::client_name(&mut w, c).await?;
        }
        let body = serde_json::to_string(&e).map_err(|x| Error::Internal(x.to_string()))?;
        let d = Delivery {
            id: DeliveryId::new(),
            channel_id: cur.channel.id,
            client_id: cur.channel.client_id,
            side: cur.channel.side,
            event_id: e.id.clone(),
            event_kind: EventKind::Test,
            event_key: e.key.clone(),
            severity: Severity::Info,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            last_status: None,
            created_at: now,
            delivered_at: None,
        };
        store::insert_delivery(&mut w, &d, &body).await?;
        Audit::new(
            actor,
            "notification_channel.tested",
            "notification_channel",
            id,
        )
        .client(cur.channel.client_id)
        .after(json!({"delivery_id": d.id}))
        .write(&mut w)
        .await?;
        w.commit().await?;
        Ok(d)
    }

    /// The actor's side's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        actor: &Actor,
        mut f: DeliveryFilter,
        page: Page,
    ) -> Result<Paged<Delivery>> {
        let (g, side) = self.channel_grant(actor)?;
        check_client_filter(&g, side, f.client)?;
        f.side = Some(side);
        let mut r = self.store.read().await?;
        Ok(store::list_deliveries(&mut r, &g, &f, page).await?)
    }

    /// Puts a failed delivery back in the queue (audited).
    pub async fn resend_delivery(&self, actor: &Actor, id: DeliveryId) -> Result<Delivery> {
        let (g, side) = self.channel_grant(actor)?;
        let mut w = self.store.write().await?;
        let d = match store::get_delivery(&mut w, &g, id).await? {
            Some(d) if d.side == side => d,
            _ => return Err(Error::NotFound("delivery")),
        };
        let live = store::get_channel(&mut w, &g, d.channel_id)
            .await?
            .is_some();
        if d.status != DeliveryStatus::Failed || !live {
            return Err(Error::Conflict(
                "only a failed delivery of a channel that still exists can be re-sent".into(),
            ));
        }
        store::resend(&mut w, id, Timestamp::now()).await?;
        Audit::new(
            actor,
            "notification_delivery.resent",
            "notification_delivery",
            id,
        )
        .client(d.client_id)
        .after(
            json!({"channel_id": d.channel_id, "event_kind": d.event_kind, "attempts": d.attempts}),
        )
        .write(&mut w)
        .await?;
        let d = store::get_delivery(&mut w, &g, id)
            .await?
            .ok_or(Error::NotFound("delivery"))?;
        w.commit().await?;
        Ok(d)
    }

    // ---- the sender -----------------------------------------------------------------------

    /// Claims up to `limit` due deliveries for `worker` (a name unique to this process).
    /// E-mail ones are handed to the mail outbox right here, in the claim's transaction;
    /// deliveries of deleted or disabled channels fail with a note; the rest are answered for
    /// the HTTP sender to post.
    pub async fn claim_notifications(&self, worker: &str, limit: i64) -> Result<Vec<Outgoing>> {
        let now = Timestamp::now();
        let claim = format!("{worker}:{}", uuid::Uuid::now_v7());
        let settings = self.notify_settings();
        let mut w = self.store.write().await?;
        let claimed = store::claim_due(
            &mut w,
            &claim,
            now,
            now.plus_seconds(NOTIFY_CLAIM_SECONDS),
            limit,
        )
        .await?;
        if claimed.is_empty() {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        let mut channels: std::collections::HashMap<ChannelId, Option<StoredChannel>> =
            std::collections::HashMap::new();
        for Claimed { delivery, event } in claimed {
            if let std::collections::hash_map::Entry::Vacant(v) =
                channels.entry(delivery.channel_id)
            {
                v.insert(store::get_channel_unscoped(&mut w, delivery.channel_id).await?);
            }
            let ch = channels.get(&delivery.channel_id).cloned().flatten();
            let Some(ch) =
                ch.filter(|c| c.channel.enabled || delivery.event_kind == EventKind::Test)
            else {
                store::mark_attempt_failed(
                    &mut w,
                    delivery.id,
                    &claim,
                    now,
                    true,
                    "the channel is disabled or deleted",
                    None,
                )
                .await?;
                continue;
            };
            let mut e: Event = match serde_json::from_str(&event) {
                Ok(e) => e,
                Err(_) => {
                    store::mark_attempt_failed(
                        &mut w,
                        delivery.id,
                        &claim,
                        now,
                        true,
                        "the queued event is unreadable",
                        None,
                    )
                    .await?;
                    continue;
                }
            };
            if let Some(l) = &e.link {
                if l.starts_with('/') {
                    e.link = Some(format!("{}{l}", settings.public_url.trim_end_matches('/')));
                }
            }
            if ch.channel.kind == ChannelKind::Email {
                match self.mail_settings() {
                    Some(m) => {
                        let (subject, body) = email(&e);
                        for to in &ch.channel.addresses {
                            let id = uuid::Uuid::now_v7().to_string();
                            tandem_store::mail::enqueue(
                                &mut w,
                                &tandem_store::mail::OutboxMail {
                                    message_id: format!("notify-{id}@{}", m.support_domain),
                                    id,
                                    client_id: ch.channel.client_id,
                                    ticket_id: None,
                                    event: "notification".into(),
                                    recipient_id: None,
                                    to_address: to.clone(),
                                    subject: subject.clone(),
                                    body: body.clone(),
                                    thread_id: None,
                                    reply_to: None,
                                    status: "pending".into(),
                                    attempts: 0,
                                    next_attempt_at: now,
                                    last_error: None,
                                    created_at: now,
                                    sent_at: None,
                                },
                            )
                            .await?;
                        }
                        store::mark_delivered(&mut w, delivery.id, &claim, now, None).await?;
                    }
                    None => {
                        let give_up = delivery.attempts + 1 >= settings.retry.max_attempts;
                        let next = now.plus_seconds(
                            retry_delay_ms(
                                &settings.retry,
                                delivery.attempts + 1,
                                rand::random(),
                                None,
                            ) / 1000
                                + 1,
                        );
                        store::mark_attempt_failed(
                            &mut w,
                            delivery.id,
                            &claim,
                            next,
                            give_up,
                            "mail is not configured on this server ([mail] in the configuration)",
                            None,
                        )
                        .await?;
                    }
                }
                continue;
            }
            out.push(Outgoing {
                kind: ch.channel.kind,
                url: ch.channel.url.clone().unwrap_or_default(),
                secret: ch.secret.clone(),
                event: e,
                claim: claim.clone(),
                delivery,
            });
        }
        w.commit().await?;
        Ok(out)
    }

    /// Records what posting each delivery came to, in one transaction: delivered, or retried
    /// after the backoff (at least the receiver's `Retry-After`), or failed for good.
    pub async fn record_notification_outcomes(
        &self,
        results: &[(Outgoing, Outcome)],
    ) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let p = self.notify_settings().retry;
        let now = Timestamp::now();
        // Accepted ones in one statement per (claim, status code): one round trip, not one
        // per delivery.
        let mut delivered: std::collections::BTreeMap<(&str, u16), Vec<DeliveryId>> =
            std::collections::BTreeMap::new();
        let mut w = self.store.write().await?;
        for (o, outcome) in results {
            match outcome {
                Outcome::Delivered { status } => {
                    delivered
                        .entry((o.claim.as_str(), *status))
                        .or_default()
                        .push(o.delivery.id);
                }
                Outcome::Failed {
                    error,
                    status,
                    retry_after_ms,
                } => {
                    let failed = o.delivery.attempts + 1;
                    let give_up = failed >= p.max_attempts;
                    let delay = retry_delay_ms(&p, failed, rand::random(), *retry_after_ms);
                    let next = Timestamp(now.0 + delay * 1000);
                    store::mark_attempt_failed(
                        &mut w,
                        o.delivery.id,
                        &o.claim,
                        next,
                        give_up,
                        error,
                        status.map(i64::from),
                    )
                    .await?;
                }
            }
        }
        for ((claim, status), ids) in delivered {
            store::mark_delivered_many(&mut w, &ids, claim, now, Some(i64::from(status))).await?;
        }
        w.commit().await?;
        Ok(())
    }
}
