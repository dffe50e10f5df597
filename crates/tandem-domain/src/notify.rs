//! Notification channels (issue #6): what an outbound notification says, and how each kind of
//! channel wants it said. No I/O: the sender in `tandem-server` posts what this module renders.
//!
//! - [`Event`] is the one shape every notification starts from (schema
//!   `tandem.notification`, version [`SCHEMA_VERSION`]; documented in docs/NOTIFICATIONS.md).
//! - [`render`] turns it into the body of a generic webhook (the event itself), a Slack
//!   incoming webhook (text + blocks), a Microsoft Teams incoming webhook (MessageCard) or a
//!   PagerDuty Events API v2 event (trigger / acknowledge / resolve with the event's key as
//!   `dedup_key`); [`email`] into a subject and a plain-text body.
//! - [`signature`] is the `Tandem-Signature` header: `t=<unix>,v1=<hex HMAC-SHA256(secret,
//!   "<unix>.<body>")>`.
//! - [`Subscription::wants`] is the per-channel filter (event kinds, minimum severity).
//! - [`retry_delay_ms`] is the exponential backoff with jitter; [`retry_after_ms`] reads a
//!   receiver's `Retry-After`.
//! - [`check_destination`] and [`ip_allowed`] are the SSRF rules: https anywhere public; plain
//!   http and private, loopback or link-local addresses only when the operator allows them.

use crate::monitoring::Severity;
use crate::scope::Party;
use crate::validate::Invalid;
use crate::{ChannelId, ClientId, DeliveryId, Timestamp};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use std::net::IpAddr;

/// The version of the webhook body's schema (`"schema": "tandem.notification/1"`).
pub const SCHEMA_VERSION: u32 = 1;
/// The schema's name and version as it appears in bodies.
pub const SCHEMA: &str = "tandem.notification/1";
/// The header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "Tandem-Signature";
/// PagerDuty's Events API v2 endpoint, the default for PagerDuty channels.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// The kinds of channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Mail to a list of addresses (through Tandem's mail outbox).
    Email,
    /// Tandem's signed JSON webhook.
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams incoming webhook (MessageCard).
    Teams,
    /// PagerDuty Events API v2.
    Pagerduty,
}

impl ChannelKind {
    /// Every kind.
    pub const ALL: [ChannelKind; 5] = [
        ChannelKind::Email,
        ChannelKind::Webhook,
        ChannelKind::Slack,
        ChannelKind::Teams,
        ChannelKind::Pagerduty,
    ];
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Pagerduty => "pagerduty",
        }
    }
    /// Name shown to people.
    pub fn label(&self) -> &'static str {
        match self {
            ChannelKind::Email => "E-mail",
            ChannelKind::Webhook => "Webhook (signed JSON)",
            ChannelKind::Slack => "Slack",
            ChannelKind::Teams => "Microsoft Teams",
            ChannelKind::Pagerduty => "PagerDuty",
        }
    }
}

impl std::str::FromStr for ChannelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ChannelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown channel kind {s:?}"))
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// An alert started firing.
    #[serde(rename = "alert.fired")]
    AlertFired,
    /// Someone acknowledged an alert.
    #[serde(rename = "alert.acknowledged")]
    AlertAcknowledged,
    /// An alert was resolved (cleared, or by a person).
    #[serde(rename = "alert.resolved")]
    AlertResolved,
    /// A page was opened.
    #[serde(rename = "page.opened")]
    PageOpened,
    /// A page took an escalation step.
    #[serde(rename = "page.escalated")]
    PageEscalated,
    /// A page was acknowledged.
    #[serde(rename = "page.acknowledged")]
    PageAcknowledged,
    /// A page was resolved.
    #[serde(rename = "page.resolved")]
    PageResolved,
    /// A ticket's SLA target is close.
    #[serde(rename = "ticket.sla_warning")]
    SlaWarning,
    /// A ticket's SLA target was breached.
    #[serde(rename = "ticket.sla_breach")]
    SlaBreach,
    /// "Send test notification".
    #[serde(rename = "test")]
    Test,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 10] = [
        EventKind::AlertFired,
        EventKind::AlertAcknowledged,
        EventKind::AlertResolved,
        EventKind::PageOpened,
        EventKind::PageEscalated,
        EventKind::PageAcknowledged,
        EventKind::PageResolved,
        EventKind::SlaWarning,
        EventKind::SlaBreach,
        EventKind::Test,
    ];
    /// Stable name (as in bodies and filters).
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::AlertFired => "alert.fired",
            EventKind::AlertAcknowledged => "alert.acknowledged",
            EventKind::AlertResolved => "alert.resolved",
            EventKind::PageOpened => "page.opened",
            EventKind::PageEscalated => "page.escalated",
            EventKind::PageAcknowledged => "page.acknowledged",
            EventKind::PageResolved => "page.resolved",
            EventKind::SlaWarning => "ticket.sla_warning",
            EventKind::SlaBreach => "ticket.sla_breach",
            EventKind::Test => "test",
        }
    }
    /// Words for people.
    pub fn label(&self) -> &'static str {
        match self {
            EventKind::AlertFired => "Alert fired",
            EventKind::AlertAcknowledged => "Alert acknowledged",
            EventKind::AlertResolved => "Alert resolved",
            EventKind::PageOpened => "Page opened",
            EventKind::PageEscalated => "Page escalated",
            EventKind::PageAcknowledged => "Page acknowledged",
            EventKind::PageResolved => "Page resolved",
            EventKind::SlaWarning => "SLA warning",
            EventKind::SlaBreach => "SLA breached",
            EventKind::Test => "Test notification",
        }
    }
    /// What PagerDuty should do with it.
    pub fn pagerduty_action(&self) -> &'static str {
        match self {
            EventKind::AlertAcknowledged | EventKind::PageAcknowledged => "acknowledge",
            EventKind::AlertResolved | EventKind::PageResolved => "resolve",
            _ => "trigger",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event kind {s:?}"))
    }
}

/// Which events a channel wants: some kinds (none listed: every kind) at or above a severity.
/// A test notification always goes through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscription {
    /// The event kinds wanted; empty means all.
    #[serde(default)]
    pub kinds: Vec<EventKind>,
    /// The mildest severity wanted.
    #[serde(default = "info")]
    pub min_severity: Severity,
}

fn info() -> Severity {
    Severity::Info
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription {
            kinds: vec![],
            min_severity: Severity::Info,
        }
    }
}

impl Subscription {
    /// Whether an event of `kind` and `severity` goes to the channel. Acknowledgements and
    /// resolutions go wherever the firing went: they carry the severity they fired with.
    pub fn wants(&self, kind: EventKind, severity: Severity) -> bool {
        if kind == EventKind::Test {
            return true;
        }
        (self.kinds.is_empty() || self.kinds.contains(&kind)) && severity >= self.min_severity
    }
}

/// The alert an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRef {
    /// The alert's id.
    pub id: String,
    /// The IT domain that routed it.
    pub domain: String,
    /// Where it came from (`check` or an external source).
    pub source: String,
    /// The endpoint concerned.
    pub endpoint_id: Option<String>,
    /// Its hostname.
    pub hostname: Option<String>,
}

/// The page an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PageRef {
    /// The page's id.
    pub id: String,
    /// The escalation step it is at.
    pub step: i64,
}

/// The ticket an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketRef {
    /// The ticket's id.
    pub id: String,
    /// Its number.
    pub number: i64,
    /// `first_response` or `resolution`.
    pub clock: String,
}

/// One notification, as the generic webhook receives it (schema `tandem.notification/1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Always `tandem.notification/1` for this version.
    pub schema: String,
    /// The event's id (UUIDv7); the same on every retry and every channel.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// When (RFC 3339, UTC).
    pub occurred_at: String,
    /// The client concerned (`null` for a provider-wide test).
    pub client_id: Option<ClientId>,
    /// Its name.
    pub client_name: Option<String>,
    /// The side that owns it at this instant (from the scope agreement).
    pub side: Party,
    /// How bad.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// More words.
    pub summary: String,
    /// The stable key of the problem: `alert:<id>` for an alert and the page it opened, a
    /// page's dedup key, `ticket:<id>:<clock>` for SLA events. PagerDuty's `dedup_key`.
    pub key: String,
    /// Where to look in Tandem.
    pub link: Option<String>,
    /// The alert, for `alert.*` events.
    pub alert: Option<AlertRef>,
    /// The page, for `page.*` events.
    pub page: Option<PageRef>,
    /// The ticket, for `ticket.*` events.
    pub ticket: Option<TicketRef>,
}

impl Event {
    /// A bare event of `kind`; fill the rest in.
    pub fn new(
        kind: EventKind,
        at: Timestamp,
        side: Party,
        severity: Severity,
        title: &str,
        key: &str,
    ) -> Event {
        Event {
            schema: SCHEMA.into(),
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            occurred_at: at.to_rfc3339(),
            client_id: None,
            client_name: None,
            side,
            severity,
            title: title.chars().take(300).collect(),
            summary: String::new(),
            key: key.into(),
            link: None,
            alert: None,
            page: None,
            ticket: None,
        }
    }
}

/// Parses a side's stable name (`internal` or `provider`).
pub fn parse_side(s: &str) -> Option<Party> {
    Party::BOTH.into_iter().find(|p| p.as_str() == s)
}

/// A notification channel as people see it: never its secret, and a Slack or Teams URL
/// (whose path is the credential) only as far as its host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Channel {
    /// Its id.
    pub id: ChannelId,
    /// The client (`null`: provider-wide — every client's events the provider owns).
    pub client_id: Option<ClientId>,
    /// The side it belongs to; it receives the events that side owns.
    pub side: Party,
    /// What kind.
    pub kind: ChannelKind,
    /// A name.
    pub name: String,
    /// Disabled channels receive nothing.
    pub enabled: bool,
    /// Where it posts (webhook, Slack, Teams, PagerDuty), shown in full only for webhooks
    /// and PagerDuty; Slack and Teams URLs are secrets and shown as `https://host/…`.
    pub url: Option<String>,
    /// The addresses of an e-mail channel.
    pub addresses: Vec<String>,
    /// Whether a secret (signing secret, routing key) is set. It is never shown again.
    pub has_secret: bool,
    /// Which events it wants.
    pub subscription: Subscription,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Channel {
    /// The URL as it may be shown.
    pub fn shown_url(kind: ChannelKind, url: &str) -> String {
        match kind {
            ChannelKind::Slack | ChannelKind::Teams => match url::Url::parse(url) {
                Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")),
                Err(_) => "…".into(),
            },
            _ => url.to_string(),
        }
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The receiver accepted it (2xx), or its mail was queued.
    Delivered,
    /// Every attempt failed; it can be re-sent.
    Failed,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ];
    /// Stable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown delivery status {s:?}"))
    }
}

/// One event's delivery to one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The channel.
    pub channel_id: ChannelId,
    /// The channel's client.
    pub client_id: Option<ClientId>,
    /// The channel's side.
    pub side: Party,
    /// The event's id (the same on every channel).
    pub event_id: String,
    /// What happened.
    pub event_kind: EventKind,
    /// The problem's key.
    pub event_key: String,
    /// How bad.
    pub severity: Severity,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: i64,
    /// When the next attempt is due (pending ones).
    pub next_attempt_at: Timestamp,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
    /// The receiver's last HTTP status code.
    pub last_status: Option<i64>,
    /// When it was queued (in the event's own transaction).
    pub created_at: Timestamp,
    /// When the receiver accepted it.
    pub delivered_at: Option<Timestamp>,
}

fn severity_word(s: Severity) -> &'static str {
    s.as_str()
}

fn headline(e: &Event) -> String {
    let client = e.client_name.as_deref().unwrap_or("Provider");
    format!(
        "[{}] {}: {} — {}",
        severity_word(e.severity).to_uppercase(),
        e.kind.label(),
        e.title,
        client
    )
}

fn facts(e: &Event) -> Vec<(&'static str, String)> {
    let mut f = vec![
        (
            "Client",
            e.client_name.clone().unwrap_or_else(|| "—".into()),
        ),
        ("Owning side", e.side.label().to_string()),
        ("Severity", e.severity.as_str().to_string()),
    ];
    if let Some(a) = &e.alert {
        f.push(("Domain", a.domain.clone()));
        if let Some(h) = &a.hostname {
            f.push(("Endpoint", h.clone()));
        }
        f.push(("Source", a.source.clone()));
    }
    if let Some(t) = &e.ticket {
        f.push(("Ticket", format!("#{} ({})", t.number, t.clock)));
    }
    if let Some(p) = &e.page {
        f.push(("Escalation step", p.step.to_string()));
    }
    f.push(("Key", e.key.clone()));
    f
}

/// The body a channel of `kind` receives for `e`. `routing_key` is PagerDuty's integration
/// key (other kinds ignore it). Email is rendered by [`email`].
pub fn render(kind: ChannelKind, e: &Event, routing_key: &str) -> Value {
    match kind {
        ChannelKind::Webhook | ChannelKind::Email => {
            serde_json::to_value(e).unwrap_or_else(|_| json!({}))
        }
        ChannelKind::Slack => {
            let mut fields: Vec<Value> = facts(e)
                .into_iter()
                .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}*\n{}", slack_escape(&v))}))
                .collect();
            fields.truncate(10);
            let mut blocks = vec![
                json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("{}: {}", e.kind.label(), e.title), 150)}}),
                json!({"type": "section", "fields": fields}),
            ];
            if !e.summary.is_empty() {
                blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&slack_escape(&e.summary), 2900)}}));
            }
            if let Some(l) = &e.link {
                blocks.push(json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open in Tandem"}, "url": l}]}));
            }
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("Tandem · {} · {}", e.kind.as_str(), e.occurred_at)}]}));
            json!({"text": slack_escape(&headline(e)), "blocks": blocks})
        }
        ChannelKind::Teams => {
            let color = match e.kind {
                EventKind::AlertResolved | EventKind::PageResolved => "2EB67D",
                _ => match e.severity {
                    Severity::Critical => "D13438",
                    Severity::Warning => "F2C744",
                    Severity::Info => "0078D7",
                },
            };
            let facts: Vec<Value> = facts(e)
                .into_iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            let mut card = json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": truncate(&headline(e), 250),
                "themeColor": color,
                "title": truncate(&format!("{}: {}", e.kind.label(), e.title), 250),
                "sections": [{"activityTitle": e.client_name.clone().unwrap_or_else(|| "Provider".into()), "facts": facts, "text": e.summary, "markdown": false}],
            });
            if let Some(l) = &e.link {
                card["potentialAction"] = json!([{"@type": "OpenUri", "name": "Open in Tandem", "targets": [{"os": "default", "uri": l}]}]);
            }
            card
        }
        ChannelKind::Pagerduty => {
            let action = e.kind.pagerduty_action();
            let mut body = json!({
                "routing_key": routing_key,
                "event_action": action,
                "dedup_key": truncate(&e.key, 255),
            });
            if action == "trigger" {
                let severity = match e.severity {
                    Severity::Critical => "critical",
                    Severity::Warning => "warning",
                    Severity::Info => "info",
                };
                let source = e
                    .alert
                    .as_ref()
                    .and_then(|a| a.hostname.clone())
                    .or_else(|| e.client_name.clone())
                    .unwrap_or_else(|| "tandem".into());
                body["payload"] = json!({
                    "summary": truncate(&headline(e), 1024),
                    "source": source,
                    "severity": severity,
                    "timestamp": e.occurred_at,
                    "component": e.alert.as_ref().map(|a| a.domain.clone()),
                    "group": e.client_name,
                    "class": e.kind.as_str(),
                    "custom_details": {"summary": e.summary, "side": e.side.as_str(), "tandem_event_id": e.id, "client_id": e.client_id},
                });
                body["client"] = json!("Tandem");
                if let Some(l) = &e.link {
                    body["client_url"] = json!(l);
                    body["links"] = json!([{"href": l, "text": "Open in Tandem"}]);
                }
            }
            body
        }
    }
}

/// The subject and plain-text body of an e-mail channel's message.
pub fn email(e: &Event) -> (String, String) {
    let subject = truncate(&headline(e), 200);
    let mut body = format!("{}\n\n", e.title);
    if !e.summary.is_empty() {
        body.push_str(&e.summary);
        body.push_str("\n\n");
    }
    for (k, v) in facts(e) {
        body.push_str(&format!("{k}: {v}\n"));
    }
    body.push_str(&format!("When: {}\n", e.occurred_at));
    if let Some(l) = &e.link {
        body.push_str(&format!("\nOpen in Tandem: {l}\n"));
    }
    body.push_str("\n-- \nSent by a Tandem notification channel.\n");
    (subject, body)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Slack's three control characters, escaped as its docs ask.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `Tandem-Signature` header value for `body` sent at unix second `t`:
/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(hmac_sha256(secret, t, body)))
}

fn hmac_sha256(secret: &[u8], t: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// What a receiver does: checks a `Tandem-Signature` header against the body, the shared
/// secret, and a clock (`now`, unix seconds) with a tolerance in seconds.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance {
        return false;
    }
    sigs.iter().any(|s| {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
        m.update(t.to_string().as_bytes());
        m.update(b".");
        m.update(body);
        m.verify_slice(s).is_ok()
    })
}

/// How deliveries are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure, in milliseconds (doubling after each further one).
    pub base_ms: i64,
    /// The longest wait, in milliseconds.
    pub max_ms: i64,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: i64,
}

impl Default for RetryPolicy {
    /// 10 s doubling to at most 30 minutes, 8 attempts (11 to 21 minutes of trying).
    fn default() -> Self {
        RetryPolicy {
            base_ms: 10_000,
            max_ms: 30 * 60_000,
            max_attempts: 8,
        }
    }
}

/// The wait before the next attempt after `failed` failed attempts (1 or more): the
/// exponential step `base · 2^(failed-1)` capped at `max`, with "equal jitter" — half of it
/// fixed, half scaled by `jitter` in [0, 1) — so receivers that came back are not hit by every
/// sender at once. A receiver's `Retry-After` (milliseconds) is honoured when longer, up to
/// `max`.
pub fn retry_delay_ms(p: &RetryPolicy, failed: i64, jitter: f64, retry_after: Option<i64>) -> i64 {
    let n = (failed.max(1) - 1).min(30) as u32;
    let step = p
        .base_ms
        .saturating_mul(1i64 << n.min(40))
        .min(p.max_ms)
        .max(1);
    let j = jitter.clamp(0.0, 1.0);
    let d = step / 2 + ((step / 2) as f64 * j) as i64;
    match retry_after {
        Some(ra) if ra > d => ra.min(p.max_ms.max(d)),
        _ => d,
    }
}

/// A `Retry-After` header in milliseconds from `now` (unix seconds): delay-seconds or an
/// HTTP date. Unreadable or past values are `None`.
pub fn retry_after_ms(value: &str, now_unix: i64) -> Option<i64> {
    let v = value.trim();
    if let Ok(s) = v.parse::<i64>() {
        return (s >= 0).then(|| s.saturating_mul(1000));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp().as_second();
    let d = when - now_unix;
    (d > 0).then(|| d * 1000)
}

/// Whether the sender may connect to `ip`: public unicast addresses always; loopback,
/// private (RFC 1918, fc00::/7), link-local (cloud metadata lives there), CGNAT and
/// unspecified addresses only when the operator allows private destinations. Multicast and
/// broadcast never.
pub fn ip_allowed(ip: IpAddr, allow_private: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_multicast() || v4.is_broadcast() {
                return false;
            }
            let o = v4.octets();
            let private = v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || o[0] == 0;
            !private || allow_private
        }
        IpAddr::V6(v6) => {
            if v6.is_multicast() {
                return false;
            }
            if let Some(v4) = v6.to_ipv4_mapped() {
                return ip_allowed(IpAddr::V4(v4), allow_private);
            }
            let s = v6.segments();
            let private = v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80;
            !private || allow_private
        }
    }
}

/// Checks a channel's destination URL: `https://` anywhere (the address it resolves to is
/// checked again when sending); `http://` only when private destinations are allowed and
/// the host is an IP literal or name that is not public (`localhost`, an address of a
/// private range). No user name or password in the URL; at most 2000 characters.
pub fn check_destination(url: &str, allow_private: bool) -> Result<(), Invalid> {
    let bad = |m: &str| Invalid::new("url", m);
    let u = url.trim();
    if u.is_empty() || u.len() > 2000 {
        return Err(bad("give the receiver's URL (up to 2000 characters)"));
    }
    let parsed = url::Url::parse(u).map_err(|_| bad("is not a URL"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "must not carry a user name or password; webhooks sign with their secret",
        ));
    }
    let host = parsed.host().ok_or_else(|| bad("names no host"))?;
    let literal: Option<IpAddr> = match &host {
        url::Host::Ipv4(a) => Some(IpAddr::V4(*a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(*a)),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal {
        if !ip_allowed(ip, allow_private) {
            return Err(bad("points to a private, loopback or link-local address; the server's operator must allow private destinations (notify_allow_private)"));
        }
    }
    let is_local_name = matches!(&host, url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost"));
    if is_local_name && !allow_private {
        return Err(bad("points to this machine; the server's operator must allow private destinations (notify_allow_private)"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let private = is_local_name || literal.is_some_and(|ip| !ip_allowed(ip, false));
            if allow_private && private {
                Ok(())
            } else {
                Err(bad("must use https (plain http only to a private address, when the operator allows private destinations)"))
            }
        }
        _ => Err(bad("must be an https:// URL")),
    }
}

/// Checks a list of e-mail addresses (1 to 20, comma or space separated); answers them
/// lower-cased.
pub fn parse_addresses(s: &str) -> Result<Vec<String>, Invalid> {
    let mut out = Vec::new();
    for a in s
        .split([',', ' ', '\n', ';'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let ok = a.len() <= 254
            && a.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
            })
            && !a
                .chars()
                .any(|c| c.is_control() || c == '<' || c == '>' || c == '"');
        if !ok {
            return Err(Invalid::new(
                "addresses",
                format!("{a:?} is not an e-mail address"),
            ));
        }
        let a = a.to_lowercase();
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() || out.len() > 20 {
        return Err(Invalid::new("addresses", "give 1 to 20 e-mail addresses"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(kind: EventKind) -> Event {
        let mut e = Event::new(
            kind,
            Timestamp(1_700_000_000_000_000),
            Party::Provider,
            Severity::Critical,
            "Disk full on web-1",
            "alert:0190",
        );
        e.client_name = Some("Alderbrook Dental".into());
        e.link = Some("https://tandem.example.test/alerts/0190".into());
        e.alert = Some(AlertRef {
            id: "0190".into(),
            domain: "servers".into(),
            source: "check".into(),
            endpoint_id: None,
            hostname: Some("web-1".into()),
        });
        e
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // Key "Jefe", data "what do ya want for nothing?" — split as "<t>." + body would not
        // fit, so check the primitive through a t-less computation.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signatures_verify_and_refuse_tampering_and_old_stamps() {
        let h = signature(b"s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert!(verify_signature(
            b"s3cret",
            &h,
            b"{\"a\":1}",
            1_700_000_100,
            300
        ));
        assert!(!verify_signature(
            b"s3cret",
            &h,
            b"{\"a\":2}",
            1_700_000_100,
            300
        ));
        assert!(!verify_signature(
            b"other",
            &h,
            b"{\"a\":1}",
            1_700_000_100,
            300
        ));
        assert!(!verify_signature(
            b"s3cret",
            &h,
            b"{\"a\":1}",
            1_700_001_000,
            300
        ));
        assert!(!verify_signature(b"s3cret", "garbage", b"{}", 0, 300));
    }

    #[test]
    fn pagerduty_trigger_and_resolve_share_the_dedup_key() {
        let t = render(
            ChannelKind::Pagerduty,
            &event(EventKind::AlertFired),
            "R0UTING",
        );
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["routing_key"], "R0UTING");
        assert_eq!(t["dedup_key"], "alert:0190");
        assert_eq!(t["payload"]["severity"], "critical");
        assert_eq!(t["payload"]["source"], "web-1");
        let r = render(
            ChannelKind::Pagerduty,
            &event(EventKind::AlertResolved),
            "R0UTING",
        );
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(r["dedup_key"], "alert:0190");
        assert!(r.get("payload").is_none());
        let a = render(
            ChannelKind::Pagerduty,
            &event(EventKind::PageAcknowledged),
            "R",
        );
        assert_eq!(a["event_action"], "acknowledge");
    }

    #[test]
    fn slack_and_teams_shapes() {
        let s = render(ChannelKind::Slack, &event(EventKind::AlertFired), "");
        assert!(s["text"].as_str().unwrap().contains("Disk full on web-1"));
        assert_eq!(s["blocks"][0]["type"], "header");
        let t = render(ChannelKind::Teams, &event(EventKind::AlertFired), "");
        assert_eq!(t["@type"], "MessageCard");
        assert_eq!(t["themeColor"], "D13438");
        assert_eq!(t["potentialAction"][0]["@type"], "OpenUri");
        let w = render(ChannelKind::Webhook, &event(EventKind::AlertFired), "");
        assert_eq!(w["schema"], SCHEMA);
        assert_eq!(w["kind"], "alert.fired");
        let back: Event = serde_json::from_value(w).unwrap();
        assert_eq!(back, event(EventKind::AlertFired).clone_with_id(&back.id));
    }

    impl Event {
        fn clone_with_id(&self, id: &str) -> Event {
            let mut e = self.clone();
            e.id = id.into();
            e
        }
    }

    #[test]
    fn subscriptions_filter_by_kind_and_severity() {
        let s = Subscription {
            kinds: vec![EventKind::AlertFired],
            min_severity: Severity::Warning,
        };
        assert!(s.wants(EventKind::AlertFired, Severity::Critical));
        assert!(!s.wants(EventKind::AlertFired, Severity::Info));
        assert!(!s.wants(EventKind::PageOpened, Severity::Critical));
        assert!(s.wants(EventKind::Test, Severity::Info));
        assert!(Subscription::default().wants(EventKind::SlaBreach, Severity::Info));
    }

    #[test]
    fn destinations_follow_the_ssrf_rules() {
        assert!(check_destination("https://hooks.slack.com/services/x", false).is_ok());
        assert!(check_destination("http://hooks.example.test/x", false).is_err());
        assert!(check_destination("http://hooks.example.test/x", true).is_err());
        assert!(check_destination("http://127.0.0.1:9000/x", false).is_err());
        assert!(check_destination("http://127.0.0.1:9000/x", true).is_ok());
        assert!(check_destination("https://169.254.169.254/latest", false).is_err());
        assert!(check_destination("https://[::1]/x", false).is_err());
        assert!(check_destination("https://localhost/x", false).is_err());
        assert!(check_destination("https://u:p@example.test/x", false).is_err());
        assert!(check_destination("ftp://example.test/x", false).is_err());
        assert!(check_destination("not a url", false).is_err());
        assert!(!ip_allowed("10.1.2.3".parse().unwrap(), false));
        assert!(!ip_allowed("100.64.0.1".parse().unwrap(), false));
        assert!(!ip_allowed("::ffff:127.0.0.1".parse().unwrap(), false));
        assert!(!ip_allowed("fd00::1".parse().unwrap(), false));
        assert!(ip_allowed("93.184.216.34".parse().unwrap(), false));
        assert!(!ip_allowed("224.0.0.1".parse().unwrap(), true));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after_ms("30", 0), Some(30_000));
        assert_eq!(
            retry_after_ms("Tue, 14 Nov 2023 22:13:40 GMT", 1_700_000_000),
            Some(20_000)
        );
        assert_eq!(retry_after_ms("soon", 0), None);
        assert_eq!(retry_after_ms("-5", 0), None);
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(
            parse_addresses("Ops@Example.test, noc@example.test ops@example.test").unwrap(),
            vec!["ops@example.test", "noc@example.test"]
        );
        assert!(parse_addresses("").is_err());
        assert!(parse_addresses("not-an-address").is_err());
        assert!(parse_addresses("a@b.test\r\nBcc: x@y.test").is_err());
    }

    proptest! {
        #[test]
        fn backoff_grows_stays_in_bounds_and_honours_retry_after(
            failed in 1i64..40, jitter in 0.0f64..1.0, ra in proptest::option::of(0i64..10_000_000)
        ) {
            let p = RetryPolicy::default();
            let d = retry_delay_ms(&p, failed, jitter, None);
            prop_assert!(d >= 1 && d <= p.max_ms);
            let step = (p.base_ms << ((failed - 1).min(20))).min(p.max_ms);
            prop_assert!(d >= step / 2);
            let with = retry_delay_ms(&p, failed, jitter, ra);
            prop_assert!(with >= d && with <= p.max_ms);
            if let Some(ra) = ra { prop_assert!(with >= ra.min(p.max_ms)); }
        }

        #[test]
        fn signature_round_trips(secret in proptest::collection::vec(any::<u8>(), 1..64),
                                 body in proptest::collection::vec(any::<u8>(), 0..512),
                                 t in 0i64..4_000_000_000) {
            let h = signature(&secret, t, &body);
            prop_assert!(verify_signature(&secret, &h, &body, t, 0));
        }
    }
}
