//! Ingest (issue #6): alerts from machine senders — Prometheus Alertmanager's webhook and the
//! generic JSON webhook — and the integration tokens they present.
//!
//! An integration token belongs to one client and works only on the ingest routes; people
//! manage tokens through grants and the audit trail like everything else. A sender's request
//! acts as the token (named so in the audit trail and alert timelines) and can reach nothing
//! but its own client's alerts: the token decides the client, never the body. Firing alerts
//! go through [`App::raise_alert`], resolved ones through [`App::clear_alert`], so routing to
//! the side the scope agreement names, deduplication and the timeline are the alerts module's.

use crate::credentials::{new_secret, sha256_hex};
use crate::{Actor, App, Audit, Error, RaiseAlert, Result, RouteAnswer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_domain::authz::Action;
use tandem_domain::ingest::{
    host_matches, parse_alertmanager, parse_webhook, Incoming, IncomingStatus, IntegrationToken,
    INTEGRATION_TOKEN_PREFIX,
};
use tandem_domain::monitoring::AlertTicketRule;
use tandem_domain::validate::{self, Invalid};
use tandem_domain::{AlertId, ClientId, EndpointId, IntegrationTokenId, Timestamp};
use tandem_store::integrations as store;
use tandem_store::{Page, Paged};

/// An integration token to make.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewIntegrationToken {
    /// What it is for, such as "Prometheus in the Norfolk office".
    pub label: String,
    /// The domain of the catalog that alerts naming none are routed by.
    pub default_domain: String,
    /// Whether the alerts its sender posts open (and resolve) tickets (default: no ticket).
    #[serde(default)]
    pub ticket: AlertTicketRule,
}

/// What became of one incoming alert.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestOutcome {
    /// The deduplication key Tandem keeps it under.
    pub dedup_key: String,
    /// `raised` (new alert), `refreshed` (an open one), `resolved`, or `not_open` (resolved
    /// by the sender, but no alert with that key was open).
    pub outcome: String,
    /// The alert concerned, if any.
    pub alert_id: Option<AlertId>,
    /// The domain it was routed by.
    pub domain: String,
    /// The endpoint it was matched to, if any.
    pub endpoint_id: Option<EndpointId>,
    /// What the mapping wants a person to know (unknown severity, unmatched host, …).
    pub notes: Vec<String>,
}

/// What a sender's request did.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestReport {
    /// The client the token belongs to.
    pub client_id: ClientId,
    /// One entry per alert in the request, in order.
    pub results: Vec<IngestOutcome>,
}

/// A firing alert of a request with the domain and endpoint it was matched to, notes, and
/// the domain's route when the agreement in force assigns it.
type Firing = (
    Incoming,
    String,
    Option<EndpointId>,
    Vec<String>,
    Option<RouteAnswer>,
);

/// The actor a sender's request acts as: Tandem on the token's behalf, named by the token.
fn sender_actor(t: &IntegrationToken, request_id: Option<String>) -> Actor {
    Actor {
        agent: Some(format!("Integration “{}” ({}…)", t.label, t.prefix)),
        request_id,
        ..Actor::system()
    }
}

impl App {
    // ---- integration tokens (people) ------------------------------------------------------

    /// Integration tokens the actor may manage, newest first; one client's when given.
    pub async fn list_integration_tokens(
        &self,
        actor: &Actor,
        client: Option<ClientId>,
        page: Page,
    ) -> Result<Paged<IntegrationToken>> {
        let g = self.grant(actor, Action::IntegrationsManage)?;
        if let Some(c) = client {
            g.check_client(c).map_err(|_| Error::NotFound("client"))?;
        }
        let mut r = self.store.read().await?;
        Ok(store::list_integration_tokens(&mut r, &g, client, page).await?)
    }

    /// Makes an integration token for a client; returns it with its secret, shown only now.
    pub async fn create_integration_token(
        &self,
        actor: &Actor,
        client: ClientId,
        new: NewIntegrationToken,
    ) -> Result<(IntegrationToken, String)> {
        let g = self.grant(actor, Action::IntegrationsManage)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let mut errors = Vec::new();
        let label = validate::display_name("label", &new.label)
            .map_err(|e| errors.push(e))
            .ok();
        let domains = self.list_domains(&Actor::system(), false).await?;
        let domain = new.default_domain.trim().to_string();
        if !domains.iter().any(|d| d.key == domain) {
            errors.push(Invalid::new(
                "default_domain",
                "choose a domain of the catalog",
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let secret = format!("{INTEGRATION_TOKEN_PREFIX}{}", new_secret(24));
        let token = IntegrationToken {
            id: IntegrationTokenId::new(),
            client_id: client,
            label: label.unwrap_or_default(),
            prefix: secret[..INTEGRATION_TOKEN_PREFIX.len() + 6].to_string(),
            default_domain: domain,
            created_by: actor.principal.as_ref().map(|p| p.user_id),
            created_at: Timestamp::now(),
            last_used_at: None,
            revoked_at: None,
            ticket: new.ticket,
        };
        let mut w = self.store.write().await?;
        store::insert_integration_token(&mut w, &token, &sha256_hex(&secret)).await?;
        Audit::new(
            actor,
            "integration_token.created",
            "integration_token",
            token.id,
        )
        .client(Some(client))
        .after(json!({"label": token.label, "prefix": token.prefix, "default_domain": token.default_domain, "ticket": token.ticket}))
        .write(&mut w)
        .await?;
        w.commit().await?;
        Ok((token, secret))
    }

    /// Sets whether the alerts a token's sender posts open (and resolve) tickets. Alerts
    /// already open keep the rule they fired under.
    pub async fn set_integration_ticket_rule(
        &self,
        actor: &Actor,
        id: IntegrationTokenId,
        rule: AlertTicketRule,
    ) -> Result<IntegrationToken> {
        let g = self.grant(actor, Action::IntegrationsManage)?;
        let mut w = self.store.write().await?;
        let mut t = store::get_integration_token(&mut w, &g, id)
            .await?
            .ok_or(Error::NotFound("integration token"))?;
        if !store::set_ticket_rule(&mut w, id, &rule).await? {
            return Err(Error::Conflict("the integration token is revoked".into()));
        }
        Audit::new(
            actor,
            "integration_token.ticket_rule_set",
            "integration_token",
            id,
        )
        .client(Some(t.client_id))
        .before(json!({"ticket": t.ticket}))
        .after(json!({"ticket": rule}))
        .write(&mut w)
        .await?;
        w.commit().await?;
        t.ticket = rule;
        Ok(t)
    }

    /// Revokes an integration token: its sender is refused from now on.
    pub async fn revoke_integration_token(
        &self,
        actor: &Actor,
        id: IntegrationTokenId,
    ) -> Result<IntegrationToken> {
        let g = self.grant(actor, Action::IntegrationsManage)?;
        let mut w = self.store.write().await?;
        let mut t = store::get_integration_token(&mut w, &g, id)
            .await?
            .ok_or(Error::NotFound("integration token"))?;
        let now = Timestamp::now();
        if !store::revoke_integration_token(&mut w, id, now).await? {
            return Err(Error::Conflict(
                "the integration token is already revoked".into(),
            ));
        }
        Audit::new(actor, "integration_token.revoked", "integration_token", id)
            .client(Some(t.client_id))
            .before(json!({"label": t.label, "prefix": t.prefix}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        t.revoked_at = Some(now);
        Ok(t)
    }

    // ---- senders --------------------------------------------------------------------------

    /// The live integration token with this secret, or `Unauthenticated`. Notes its use.
    pub async fn authenticate_integration(&self, secret: &str) -> Result<IntegrationToken> {
        let secret = secret.trim();
        if !secret.starts_with(INTEGRATION_TOKEN_PREFIX) || secret.len() > 200 {
            return Err(Error::Unauthenticated);
        }
        let hash = sha256_hex(secret);
        let t = {
            let mut r = self.store.read().await?;
            store::integration_token_by_hash(&mut r, &hash)
                .await?
                .ok_or(Error::Unauthenticated)?
        };
        // Its use is noted at most once a minute: a busy sender costs no write per request.
        let now = Timestamp::now();
        if t.last_used_at.is_none_or(|u| u.plus_seconds(60).0 < now.0) {
            let mut w = self.store.write().await?;
            store::touch(&mut w, t.id, now).await?;
            w.commit().await?;
        }
        Ok(t)
    }

    /// Takes an Alertmanager webhook body (version 4) from the token's sender.
    pub async fn ingest_alertmanager(
        &self,
        token: &IntegrationToken,
        request_id: Option<String>,
        body: &[u8],
    ) -> Result<IngestReport> {
        let incoming = parse_alertmanager(body).map_err(Error::Invalid)?;
        self.ingest_incoming(token, request_id, incoming, "alertmanager", false)
            .await
    }

    /// Takes a generic webhook body (one alert) from the token's sender.
    pub async fn ingest_webhook(
        &self,
        token: &IntegrationToken,
        request_id: Option<String>,
        body: &[u8],
    ) -> Result<IngestReport> {
        let incoming = parse_webhook(body).map_err(Error::Invalid)?;
        self.ingest_incoming(token, request_id, vec![incoming], "webhook", true)
            .await
    }

    /// The route of this domain by the client's agreement in force now, if it assigns it.
    async fn assigned_domain(
        &self,
        client: ClientId,
        domain: &str,
        now: Timestamp,
    ) -> Option<RouteAnswer> {
        self.route(&Actor::system(), client, domain, now).await.ok()
    }

    async fn ingest_incoming(
        &self,
        token: &IntegrationToken,
        request_id: Option<String>,
        incoming: Vec<Incoming>,
        source: &str,
        strict_domain: bool,
    ) -> Result<IngestReport> {
        let actor = sender_actor(token, request_id);
        let client = token.client_id;
        let now = Timestamp::now();
        let endpoints = {
            let mut r = self.store.read().await?;
            store::endpoints_of_client(&mut r, client).await?
        };
        let mut results = Vec::with_capacity(incoming.len());
        let mut firing = Vec::new();
        for inc in incoming {
            let mut notes = inc.notes.clone();
            // The route that says the domain is assigned is also the alert's route.
            let routed = match &inc.domain {
                Some(d) => self.assigned_domain(client, d, now).await,
                None => None,
            };
            let domain = match &inc.domain {
                Some(d) if routed.is_some() => d.clone(),
                Some(d) if strict_domain => {
                    return Err(Error::Invalid(vec![Invalid::new(
                        "domain",
                        format!("the client's agreement in force assigns no domain {d:?}; name one it assigns, or leave it out to use the token's ({})", token.default_domain),
                    )]));
                }
                Some(d) => {
                    notes.push(format!(
                        "domain {d:?} is not assigned by the client's agreement in force; routed by the token's default domain {}",
                        token.default_domain
                    ));
                    token.default_domain.clone()
                }
                None => token.default_domain.clone(),
            };
            let endpoint = match &inc.host {
                None => None,
                Some(h) => {
                    let exact: Vec<_> = endpoints
                        .iter()
                        .filter(|(_, n)| n.eq_ignore_ascii_case(h))
                        .collect();
                    let near: Vec<_> = endpoints
                        .iter()
                        .filter(|(_, n)| host_matches(n, h))
                        .collect();
                    match (exact.as_slice(), near.as_slice()) {
                        ([one], _) | ([], [one]) => Some(one.0),
                        ([], []) => {
                            notes.push(format!("no endpoint of this client is named {h:?}"));
                            None
                        }
                        _ => {
                            notes.push(format!(
                                "several endpoints of this client match {h:?}; none was chosen"
                            ));
                            None
                        }
                    }
                }
            };
            match inc.status {
                // Firing alerts in a row are raised together: one transaction.
                IncomingStatus::Firing => firing.push((inc, domain, endpoint, notes, routed)),
                IncomingStatus::Resolved => {
                    self.raise_firing(&actor, token, source, &mut firing, &mut results)
                        .await?;
                    let note = format!("{source} reports it resolved");
                    let cleared = self
                        .clear_alert(&actor, client, &inc.dedup_key, &note)
                        .await?;
                    results.push(IngestOutcome {
                        dedup_key: inc.dedup_key,
                        outcome: if cleared.is_some() {
                            "resolved"
                        } else {
                            "not_open"
                        }
                        .into(),
                        alert_id: cleared.map(|a| a.id),
                        domain,
                        endpoint_id: endpoint,
                        notes,
                    });
                }
            }
        }
        self.raise_firing(&actor, token, source, &mut firing, &mut results)
            .await?;
        Ok(IngestReport {
            client_id: client,
            results,
        })
    }
    /// Raises the firing alerts gathered so far, in one call to the alert writer; their
    /// outcomes follow in order. The first failure is the request's answer (the others are
    /// stored: a sender retries, and raising again refreshes).
    async fn raise_firing(
        &self,
        actor: &Actor,
        token: &IntegrationToken,
        source: &str,
        firing: &mut Vec<Firing>,
        results: &mut Vec<IngestOutcome>,
    ) -> Result<()> {
        if firing.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(firing);
        let raises = batch
            .iter_mut()
            .map(|(inc, domain, endpoint, notes, routed)| {
                let mut summary = inc.summary.clone();
                for n in notes {
                    summary.push_str(&format!("\nTandem: {n}"));
                }
                let r = RaiseAlert {
                    client_id: token.client_id,
                    dedup_key: inc.dedup_key.clone(),
                    grouping_key: inc.grouping_key.clone(),
                    source: source.to_string(),
                    endpoint_id: *endpoint,
                    check_key: None,
                    domain: domain.clone(),
                    severity: inc.severity,
                    title: inc.title.clone(),
                    summary,
                    renotify_minutes: None,
                    ticket: token.ticket,
                };
                (r, None, routed.take())
            })
            .collect();
        let answers = self.raise_many(actor, raises).await;
        let mut first_error = None;
        for ((inc, domain, endpoint, notes, _), answer) in batch.into_iter().zip(answers) {
            match answer {
                Ok(raised) => results.push(IngestOutcome {
                    dedup_key: inc.dedup_key,
                    outcome: if raised.new { "raised" } else { "refreshed" }.into(),
                    alert_id: Some(raised.alert.id),
                    domain,
                    endpoint_id: endpoint,
                    notes,
                }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
