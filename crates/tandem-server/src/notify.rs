//! The notification sender (issue #6): claims due deliveries (`App::claim_notifications`),
//! posts each to its channel over HTTPS, and records the outcomes in one transaction
//! (`App::record_notification_outcomes`: retried with backoff and jitter, honouring
//! `Retry-After`, failed after the configured attempts).
//!
//! The HTTP client is reqwest over rustls (ring, webpki roots). SSRF rules: redirects are
//! never followed (a 3xx is a failed attempt); host names are resolved by our own resolver,
//! which drops private, loopback and link-local addresses unless `notify_allow_private` is
//! set, and an IP-literal URL is checked the same way before connecting — so a tenant's
//! channel cannot reach the server's own network by name, by literal, or by DNS rebinding.
//! Ten seconds per attempt. URLs (Slack and Teams URLs are secrets) and secrets are never
//! logged; errors are recorded without the URL.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tandem_app::{App, Outcome, Outgoing};
use tandem_domain::notify::{
    check_destination, ip_allowed, render, retry_after_ms, signature, ChannelKind, SIGNATURE_HEADER,
};
use tandem_domain::Timestamp;

/// Resolves host names and keeps only the addresses the SSRF rule allows.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| ip_allowed(a.ip(), allow))
                .collect();
            if found.is_empty() {
                return Err(
                    "the host resolves only to private, loopback or link-local addresses (or not at all); notify_allow_private is off"
                        .into(),
                );
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// Posts notifications.
#[derive(Clone)]
pub struct Sender {
    http: reqwest::Client,
    allow_private: bool,
}

impl Sender {
    /// A sender; `allow_private` lets channels reach private addresses.
    pub fn new(allow_private: bool) -> anyhow::Result<Sender> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(POST_TIMEOUT_SECONDS as u64))
            .pool_max_idle_per_host(32)
            .user_agent(concat!("Tandem-Notify/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender {
            http,
            allow_private,
        })
    }

    /// Posts one delivery and says what came of it.
    pub async fn post(&self, o: &Outgoing) -> Outcome {
        let failed = |error: String| Outcome::Failed {
            error,
            status: None,
            retry_after_ms: None,
        };
        if let Err(e) = check_destination(&o.url, self.allow_private) {
            return failed(format!("destination refused: the URL {}", e.message));
        }
        let routing_key = match o.kind {
            ChannelKind::Pagerduty => o.secret.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let body = match serde_json::to_vec(&render(o.kind, &o.event, &routing_key)) {
            Ok(b) => b,
            Err(e) => return failed(format!("could not render the body: {e}")),
        };
        let mut rb = self
            .http
            .post(&o.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if o.kind == ChannelKind::Webhook {
            let t = Timestamp::now().0.div_euclid(1_000_000);
            let secret = o.secret.clone().unwrap_or_default();
            rb = rb
                .header(SIGNATURE_HEADER, signature(secret.as_bytes(), t, &body))
                .header("Tandem-Event-Id", o.event.id.as_str())
                .header("Tandem-Event-Kind", o.event.kind.as_str())
                .header("Tandem-Delivery-Id", o.delivery.id.to_string());
        }
        match rb.body(body).send().await {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return Outcome::Delivered {
                        status: status.as_u16(),
                    };
                }
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after_ms(v, Timestamp::now().0.div_euclid(1_000_000)));
                let text = if status.is_redirection() {
                    "redirects are not followed; give the final URL".to_string()
                } else {
                    let t = resp.text().await.unwrap_or_default();
                    t.chars()
                        .filter(|c| !c.is_control())
                        .take(200)
                        .collect::<String>()
                };
                Outcome::Failed {
                    error: format!("HTTP {}: {text}", status.as_u16()),
                    status: Some(status.as_u16()),
                    retry_after_ms: retry_after,
                }
            }
            Err(e) => {
                let e = e.without_url();
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                failed(msg)
            }
        }
    }
}

/// The longest one post may take.
const POST_TIMEOUT_SECONDS: i64 = 10;
/// Posts in flight at once.
const IN_FLIGHT: i64 = 64;
/// The most deliveries claimed at once. Each claim and each record of outcomes is a write that
/// queues behind the alert writer's and the hand-over's, so at a thousand alerts a second a
/// claim takes a few hundred; but the outcomes are recorded when the whole batch is done, so
/// the batch must finish before its claim lapses even when every post runs to its timeout —
/// otherwise another worker sends it again. With 64 in flight, 10 s posts and 60 s claims:
/// 320, leaving one timeout's margin.
const CLAIM_BATCH: i64 = IN_FLIGHT * (tandem_app::NOTIFY_CLAIM_SECONDS / POST_TIMEOUT_SECONDS - 1);

/// Drains the deliveries outbox until the task is dropped: claims due deliveries as
/// `worker` (up to [`CLAIM_BATCH`] at a time), posts them concurrently ([`IN_FLIGHT`] at most),
/// records the outcomes; waits `idle` when nothing is due.
pub async fn run(app: App, sender: Sender, worker: String, idle: Duration) {
    let limit = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT as usize));
    loop {
        let batch = match app.claim_notifications(&worker, CLAIM_BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "notify: could not claim deliveries");
                tokio::time::sleep(idle).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::time::sleep(idle).await;
            continue;
        }
        let mut set = tokio::task::JoinSet::new();
        for o in batch {
            let s = sender.clone();
            let limit = limit.clone();
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let outcome = s.post(&o).await;
                (o, outcome)
            });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok((o, outcome)) => {
                    if let Outcome::Failed { error, .. } = &outcome {
                        tracing::warn!(delivery = %o.delivery.id, channel = %o.delivery.channel_id,
                            attempt = o.delivery.attempts + 1, error = %error, "notify: delivery failed");
                    }
                    results.push((o, outcome));
                }
                Err(e) => tracing::warn!(error = %e, "notify: a post task failed"),
            }
        }
        if let Err(e) = app.record_notification_outcomes(&results).await {
            tracing::warn!(error = %e, "notify: could not record outcomes (the claims lapse and are retried)");
        }
    }
}
