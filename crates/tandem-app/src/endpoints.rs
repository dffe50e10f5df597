//! Endpoints and their agents: enrollment tokens, enrollment, signed check-ins, and the
//! fleet both sides see.
//!
//! People's actions (tokens, reading the fleet) go through grants and the audit trail like
//! everything else. An agent has no grant: its enrollment token or its signature names the
//! one endpoint it may speak for, and nothing it sends can reach anything else. Check-ins
//! are telemetry, not changes made by people, so they are not audited; enrollment is.

use crate::credentials::{new_secret, sha256_hex};
use crate::{Actor, App, Audit, Error, Result};
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Deserialize;
use serde_json::json;
use tandem_agent_protocol::{
    signing_payload, within_skew, CheckinRequest, CheckinResponse, EnrollRequest, EnrollResponse,
    Inventory, MessageBody, SessionResponse, PROTOCOL_VERSION,
};
use tandem_domain::authz::Action;
use tandem_domain::fleet::{
    changes, summarize, Endpoint, EndpointEvent, EnrollmentToken, FleetFilter,
    MAX_ENROLLMENT_TOKEN_DAYS,
};
use tandem_domain::metrics::Sample;
use tandem_domain::validate::{self, Invalid};
use tandem_domain::{ClientId, EndpointId, EnrollmentTokenId, SiteId, Timestamp};
use tandem_store::endpoints::{self as store, Agent, CheckinUpdate, InventoryUpdate, NewEndpoint};
use tandem_store::{Page, Paged};

/// Every enrollment token secret starts with this.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "tde_";

/// An enrollment token to make.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEnrollmentToken {
    /// The site enrolled endpoints are placed at.
    pub site_id: SiteId,
    /// What it is for, such as "Norfolk office laptops".
    pub label: String,
    /// How many endpoints it may enroll (1 for a single machine); absent for any number.
    #[serde(default)]
    pub max_uses: Option<u32>,
    /// Hours until it expires (1 to 720).
    pub expires_in_hours: i64,
}

/// An endpoint with everything its page shows.
#[derive(Clone, Debug, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointDetail {
    /// The endpoint as lists show it.
    pub endpoint: Endpoint,
    /// Its latest heartbeat, as the agent sent it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub heartbeat: Option<tandem_agent_protocol::Heartbeat>,
    /// Its current inventory, as the agent reported it (absent sections were not collected).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub inventory: Option<Inventory>,
}

/// Why an agent request was refused (each has its own problem code on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentRefusal {
    /// No enrolled agent has that id.
    UnknownAgent,
    /// The signature headers are missing or malformed, or the signature does not verify.
    BadSignature,
    /// Signed genuinely, but too far from the server's clock.
    ClockSkew,
    /// The endpoint was retired; its agent must enroll again.
    Revoked,
    /// The session is malformed, expired or not this installation's, or its MAC does not
    /// verify: the agent asks for a new session.
    InvalidSession,
}

/// The credential headers of an agent request, as received: a signature (`Tandem-Agent`,
/// `Tandem-Signature`) or a session (`Tandem-Session`, `Tandem-Mac`); empty when absent.
#[derive(Default)]
pub struct AgentRequest<'a> {
    /// `Tandem-Agent`.
    pub agent_id: &'a str,
    /// `Tandem-Timestamp`.
    pub timestamp: &'a str,
    /// `Tandem-Signature`.
    pub signature: &'a str,
    /// `Tandem-Session`.
    pub session: &'a str,
    /// `Tandem-Mac`.
    pub mac: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The protocol path, such as `/agent/v1/checkin`.
    pub path: &'a str,
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// A check-in of heartbeats only, ready to be written without reading the endpoint first;
/// `None` for anything else (no message, an inventory, a time that does not parse, another
/// protocol), which goes the usual way.
fn new_heartbeats(id: EndpointId, req: &CheckinRequest) -> Option<crate::ingest::NewHeartbeats> {
    if req.protocol != PROTOCOL_VERSION || req.messages.is_empty() {
        return None;
    }
    let now = Timestamp::now();
    let mut beats = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let MessageBody::Heartbeat(h) = &m.body else {
            return None;
        };
        beats.push((m.seq, Timestamp::parse_rfc3339(&m.collected_at)?, h));
    }
    beats.sort_by_key(|(seq, _, _)| *seq);
    let (first_seq, (last_seq, _, newest)) = (beats[0].0, *beats.last()?);
    Some(crate::ingest::NewHeartbeats {
        id,
        first_seq,
        update: CheckinUpdate {
            seen_at: now,
            last_seq,
            heartbeat: Some(serde_json::to_string(newest).ok()?),
            // A clock running ahead cannot put samples in the future.
            samples: beats
                .iter()
                .map(|(_, at, h)| Sample::from_heartbeat((*at).min(now), h))
                .collect(),
            inventory: None,
        },
    })
}

fn bad_agent_input(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![Invalid::new(field, message)])
}

impl App {
    // ---- enrollment tokens (people) -----------------------------------------------------

    /// Enrollment tokens the actor may manage, newest first.
    pub async fn list_enrollment_tokens(
        &self,
        actor: &Actor,
        client: Option<ClientId>,
        page: Page,
    ) -> Result<Paged<EnrollmentToken>> {
        let g = self.grant(actor, Action::EndpointsManage)?;
        let mut r = self.store.read().await?;
        Ok(store::list_enrollment_tokens(&mut r, &g, client, page).await?)
    }

    /// Makes an enrollment token for a site; returns it with its secret, shown only now.
    pub async fn create_enrollment_token(
        &self,
        actor: &Actor,
        client: ClientId,
        new: NewEnrollmentToken,
    ) -> Result<(EnrollmentToken, String)> {
        let g = self.grant(actor, Action::EndpointsManage)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let sites = self
            .list_sites(actor, Some(client), Page::new(0, 1000))
            .await?;
        let mut errors = Vec::new();
        if !sites.items.iter().any(|s| s.id == new.site_id) {
            errors.push(Invalid::new("site_id", "choose one of this client's sites"));
        }
        let label = validate::display_name("label", &new.label)
            .map_err(|e| errors.push(e))
            .ok();
        let max_hours = MAX_ENROLLMENT_TOKEN_DAYS * 24;
        if !(1..=max_hours).contains(&new.expires_in_hours) {
            errors.push(Invalid::new(
                "expires_in_hours",
                format!("must be between 1 and {max_hours}"),
            ));
        }
        if new.max_uses == Some(0) {
            errors.push(Invalid::new(
                "max_uses",
                "must be at least 1, or left empty for any number",
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let now = Timestamp::now();
        let secret = format!("{ENROLLMENT_TOKEN_PREFIX}{}", new_secret(24));
        let token = EnrollmentToken {
            id: EnrollmentTokenId::new(),
            client_id: client,
            site_id: new.site_id,
            label: label.unwrap_or_default(),
            prefix: secret[..ENROLLMENT_TOKEN_PREFIX.len() + 6].to_string(),
            max_uses: new.max_uses,
            uses: 0,
            created_by: g.actor(),
            created_at: now,
            expires_at: now.plus_seconds(new.expires_in_hours * 3600),
            revoked_at: None,
        };
        let mut w = self.store.write().await?;
        store::insert_enrollment_token(&mut w, &token, &sha256_hex(&secret)).await?;
        Audit::new(
            actor,
            "enrollment_token.created",
            "enrollment_token",
            token.id,
        )
        .client(Some(client))
        .after(json!({
            "label": token.label, "prefix": token.prefix, "site_id": token.site_id,
            "max_uses": token.max_uses, "expires_at": token.expires_at,
        }))
        .write(&mut w)
        .await?;
        w.commit().await?;
        Ok((token, secret))
    }

    /// Revokes an enrollment token: agents can no longer enroll with it (enrolled ones stay).
    pub async fn revoke_enrollment_token(
        &self,
        actor: &Actor,
        id: EnrollmentTokenId,
    ) -> Result<()> {
        let g = self.grant(actor, Action::EndpointsManage)?;
        let mut w = self.store.write().await?;
        let t = store::get_enrollment_token(&mut w, &g, id)
            .await?
            .ok_or(Error::NotFound("enrollment token"))?;
        if !store::revoke_enrollment_token(&mut w, id, Timestamp::now()).await? {
            return Err(Error::Conflict(
                "the enrollment token is already revoked".into(),
            ));
        }
        Audit::new(actor, "enrollment_token.revoked", "enrollment_token", id)
            .client(Some(t.client_id))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(())
    }

    // ---- the agent's side ----------------------------------------------------------------

    /// Enrolls an agent with an enrollment token: records the endpoint with the agent's
    /// public key and returns its id.
    pub async fn enroll(
        &self,
        request_id: Option<String>,
        req: &EnrollRequest,
    ) -> Result<EnrollResponse> {
        let actor = Actor::agent(format!("agent on {}", req.hostname.trim()), request_id);
        if req.protocol != PROTOCOL_VERSION {
            return Err(bad_agent_input(
                "protocol",
                format!("this server speaks agent protocol {PROTOCOL_VERSION}"),
            ));
        }
        let key = decode_public_key(&req.public_key)?;
        let mut errors = Vec::new();
        for (field, value, max) in [
            ("hostname", &req.hostname, 253),
            ("os", &req.os, 32),
            ("arch", &req.arch, 32),
            ("agent_version", &req.agent_version, 64),
        ] {
            let v = value.trim();
            if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
                errors.push(Invalid::new(
                    field,
                    format!("must be 1 to {max} printable characters"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let now = Timestamp::now();
        let mut w = self.store.write().await?;
        // Unknown, expired, revoked and used-up tokens are refused alike, without saying which.
        let token = store::enrollment_token_by_hash(&mut w, &sha256_hex(req.token.trim()))
            .await?
            .ok_or(Error::Unauthenticated)?;
        if token.unusable_at(now).is_some()
            || !store::claim_enrollment_use(&mut w, token.id, now).await?
        {
            return Err(Error::Unauthenticated);
        }
        let id = EndpointId::new();
        let public_key = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
        store::insert_endpoint(
            &mut w,
            &NewEndpoint {
                id,
                token: &token,
                public_key: &public_key,
                hostname: req.hostname.trim(),
                os_family: req.os.trim(),
                arch: req.arch.trim(),
                agent_version: req.agent_version.trim(),
                at: now,
            },
        )
        .await
        .map_err(|e| match e {
            tandem_store::StoreError::Conflict(_) => {
                Error::Conflict("this agent key is already enrolled; make a new key pair".into())
            }
            e => e.into(),
        })?;
        Audit::new(&actor, "endpoint.enrolled", "endpoint", id)
            .client(Some(token.client_id))
            .after(json!({
                "hostname": req.hostname.trim(), "os": req.os.trim(), "arch": req.arch.trim(),
                "site_id": token.site_id, "enrollment_token": token.prefix,
            }))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(EnrollResponse {
            agent_id: id.to_string(),
            heartbeat_seconds: self.policy.heartbeat_seconds,
            inventory_seconds: self.policy.inventory_seconds,
            server_time: now.to_rfc3339(),
        })
    }

    /// Checks an agent request's credential — its ed25519 signature, or, when it names a
    /// session, the session's MAC — and returns the agent it speaks for, or why it is
    /// refused. The outer error is for failures of Tandem itself (the database).
    pub async fn authenticate_agent(
        &self,
        req: &AgentRequest<'_>,
    ) -> Result<std::result::Result<Agent, AgentRefusal>> {
        use AgentRefusal as R;
        if !req.session.is_empty() {
            let id = match self.authenticate_session(req).await? {
                Ok(id) => id,
                Err(why) => return Ok(Err(why)),
            };
            let Some(agent) = self.agent(id).await? else {
                return Ok(Err(R::UnknownAgent));
            };
            if agent.retired_at.is_some() {
                return Ok(Err(R::Revoked));
            }
            return Ok(Ok(agent));
        }
        let Ok(id) = req.agent_id.trim().parse::<EndpointId>() else {
            return Ok(Err(R::BadSignature));
        };
        let Ok(ts) = req.timestamp.trim().parse::<i64>() else {
            return Ok(Err(R::BadSignature));
        };
        let Some(sig) = base64::engine::general_purpose::STANDARD
            .decode(req.signature.trim())
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
        else {
            return Ok(Err(R::BadSignature));
        };
        let Some(agent) = self.agent(id).await? else {
            return Ok(Err(R::UnknownAgent));
        };
        let Ok(key) = decode_public_key(&agent.public_key) else {
            return Ok(Err(R::BadSignature));
        };
        if key
            .verify(&signing_payload(req.method, req.path, ts, req.body), &sig)
            .is_err()
        {
            return Ok(Err(R::BadSignature));
        }
        // Only a genuine signature learns about the clock or the endpoint's retirement.
        if !within_skew(Timestamp::now().0 / Timestamp::SECOND, ts) {
            return Ok(Err(R::ClockSkew));
        }
        if agent.retired_at.is_some() {
            return Ok(Err(R::Revoked));
        }
        Ok(Ok(agent))
    }

    /// Checks a request made in a session — its MAC, then its clock — without asking the
    /// database anything; returns the agent the session was issued to.
    pub async fn authenticate_session(
        &self,
        req: &AgentRequest<'_>,
    ) -> Result<std::result::Result<EndpointId, AgentRefusal>> {
        use AgentRefusal as R;
        let Ok(ts) = req.timestamp.trim().parse::<i64>() else {
            return Ok(Err(R::InvalidSession));
        };
        let now = Timestamp::now().0 / Timestamp::SECOND;
        let keys = self.agent_session_keys().await?;
        let Some((id, key)) = keys.open(req.session, now) else {
            return Ok(Err(R::InvalidSession));
        };
        let payload = signing_payload(req.method, req.path, ts, req.body);
        if !tandem_agent_protocol::verify_session_mac(&key, &payload, req.mac) {
            return Ok(Err(R::InvalidSession));
        }
        if !within_skew(now, ts) {
            return Ok(Err(R::ClockSkew));
        }
        Ok(Ok(id))
    }

    /// Applies a check-in made in a session by agent `id` (see [`App::authenticate_session`]).
    ///
    /// A check-in of heartbeats only is written without reading the endpoint first: the
    /// write itself requires every message to be new and the endpoint not retired. When it
    /// does not take (a batch sent again in part, a retired or unknown endpoint, another
    /// check-in of the agent in the same commit) and for anything else, the endpoint is read
    /// and the check-in goes the usual way ([`App::checkin`]), with the usual refusals.
    pub async fn checkin_in_session(
        &self,
        id: EndpointId,
        req: CheckinRequest,
    ) -> Result<std::result::Result<CheckinResponse, AgentRefusal>> {
        if let Some(h) = new_heartbeats(id, &req) {
            let last_seq = h.update.last_seq;
            if let Some(no_inventory) = self.ingest().write_new_heartbeats(h).await? {
                return Ok(Ok(CheckinResponse {
                    acked_through: last_seq,
                    heartbeat_seconds: self.policy.heartbeat_seconds,
                    inventory_seconds: self.policy.inventory_seconds,
                    want_full_inventory: no_inventory,
                }));
            }
        }
        let Some(agent) = self.agent(id).await? else {
            return Ok(Err(AgentRefusal::UnknownAgent));
        };
        if agent.retired_at.is_some() {
            return Ok(Err(AgentRefusal::Revoked));
        }
        Ok(Ok(self.checkin(&agent, req).await?))
    }

    async fn agent(&self, id: EndpointId) -> Result<Option<Agent>> {
        let mut r = self.store.read().await?;
        Ok(store::agent(&mut r, id).await?)
    }

    /// A new check-in session for an agent that authenticated with its signature (the
    /// caller makes sure of that: a session cannot renew itself).
    pub async fn open_agent_session(&self, agent: &Agent) -> Result<SessionResponse> {
        let keys = self.agent_session_keys().await?;
        let issued = keys.issue(agent.id, Timestamp::now().0 / Timestamp::SECOND);
        Ok(SessionResponse {
            session: issued.token,
            key: base64::engine::general_purpose::STANDARD.encode(issued.key),
            expires_in: issued.expires_in,
        })
    }

    /// The secret sessions derive from: read from the database, made there by the first
    /// server that needs it.
    async fn agent_session_keys(&self) -> Result<&crate::agent_sessions::SessionKeys> {
        use crate::agent_sessions::{SessionKeys, PURPOSE};
        self.agent_sessions
            .get_or_try_init(|| async {
                let mut w = self.store.write().await?;
                let key = format!("secret.{PURPOSE}");
                let stored =
                    tandem_store::settings::get_or_insert(&mut w, &key, &new_secret(32)).await?;
                w.commit().await?;
                SessionKeys::from_stored(&stored).ok_or_else(|| {
                    Error::Internal(format!("the stored setting {key} is not a 32-byte secret"))
                })
            })
            .await
    }

    /// Applies a check-in from an authenticated agent and answers only after the commit.
    /// Messages at or below the last acknowledged sequence number are ignored.
    pub async fn checkin(&self, agent: &Agent, req: CheckinRequest) -> Result<CheckinResponse> {
        if req.protocol != PROTOCOL_VERSION {
            return Err(bad_agent_input(
                "protocol",
                format!("this server speaks agent protocol {PROTOCOL_VERSION}"),
            ));
        }
        let mut messages = req.messages;
        messages.sort_by_key(|m| m.seq);
        messages.retain(|m| m.seq > agent.last_seq);
        let mut collected = Vec::with_capacity(messages.len());
        for m in &messages {
            let at = Timestamp::parse_rfc3339(&m.collected_at).ok_or_else(|| {
                bad_agent_input(
                    "messages",
                    format!(
                        "message {} has collected_at {:?}, not an RFC 3339 time",
                        m.seq, m.collected_at
                    ),
                )
            })?;
            collected.push(at);
        }
        let now = Timestamp::now();
        let mut want_full = !agent.has_inventory;
        let mut update = CheckinUpdate {
            seen_at: now,
            last_seq: messages.last().map_or(agent.last_seq, |m| m.seq),
            heartbeat: None,
            samples: Vec::new(),
            inventory: None,
        };
        let mut events = Vec::new();
        let has_inventory_message = messages
            .iter()
            .any(|m| matches!(m.body, MessageBody::Inventory(_)));
        let mut current: Option<Inventory> = if has_inventory_message && agent.has_inventory {
            let mut r = self.store.read().await?;
            store::inventory_json(&mut r, agent.id)
                .await?
                .and_then(|j| serde_json::from_str(&j).ok())
        } else {
            None
        };
        for (m, at) in messages.iter().zip(collected) {
            match &m.body {
                MessageBody::Heartbeat(h) => {
                    // A clock running ahead cannot put samples in the future.
                    update.samples.push(Sample::from_heartbeat(at.min(now), h));
                    update.heartbeat =
                        Some(serde_json::to_string(h).map_err(|e| Error::Internal(e.to_string()))?);
                }
                MessageBody::Inventory(report) => {
                    let base_known = current.is_some();
                    let mut next = current.clone().unwrap_or_default();
                    next.apply(report);
                    if let (true, Some(old)) = (base_known, &current) {
                        events.extend(changes(old, &next).into_iter().map(|c| (at, c)));
                    }
                    // A change report without a copy to apply it to leaves gaps: ask for all.
                    want_full = !report.full && !base_known;
                    current = Some(next);
                    let inv = current.as_ref().expect("just set");
                    update.inventory = Some(InventoryUpdate {
                        json: serde_json::to_string(inv)
                            .map_err(|e| Error::Internal(e.to_string()))?,
                        summary: summarize(inv),
                        hostname: inv.system.as_ref().and_then(|s| s.hostname.clone()),
                        at,
                    });
                }
            }
        }
        let last_seq = update.last_seq;
        let written = self
            .ingest()
            .write(crate::ingest::Checkin {
                agent: agent.clone(),
                update,
                events,
            })
            .await?;
        if !written {
            // Another check-in of this agent committed first; its messages may overlap.
            return Err(Error::Conflict(
                "a check-in of this agent is in progress; retry".into(),
            ));
        }
        Ok(CheckinResponse {
            acked_through: last_seq,
            heartbeat_seconds: self.policy.heartbeat_seconds,
            inventory_seconds: self.policy.inventory_seconds,
            want_full_inventory: want_full,
        })
    }

    // ---- the fleet (people) ----------------------------------------------------------------

    /// Endpoints the actor may see, filtered and sorted.
    pub async fn list_endpoints(
        &self,
        actor: &Actor,
        filter: &FleetFilter,
        page: Page,
    ) -> Result<Paged<Endpoint>> {
        let g = self.grant(actor, Action::EndpointsRead)?;
        let mut r = self.store.read().await?;
        Ok(store::list_endpoints(
            &mut r,
            &g,
            filter,
            page,
            Timestamp::now(),
            self.policy.offline_after_seconds,
        )
        .await?)
    }

    /// One endpoint with its inventory and latest heartbeat.
    pub async fn get_endpoint(&self, actor: &Actor, id: EndpointId) -> Result<EndpointDetail> {
        let g = self.grant(actor, Action::EndpointsRead)?;
        let mut r = self.store.read().await?;
        let (endpoint, heartbeat, inventory) = store::get_endpoint(
            &mut r,
            &g,
            id,
            Timestamp::now(),
            self.policy.offline_after_seconds,
        )
        .await?
        .ok_or(Error::NotFound("endpoint"))?;
        let inventory: Option<Inventory> = inventory.and_then(|j| serde_json::from_str(&j).ok());
        let mut endpoint = endpoint;
        if let Some(inv) = &inventory {
            endpoint.summary.admins = summarize(inv).admins;
        }
        Ok(EndpointDetail {
            endpoint,
            heartbeat: heartbeat.and_then(|j| serde_json::from_str(&j).ok()),
            inventory,
        })
    }

    /// An endpoint's timeline, newest first.
    pub async fn endpoint_events(
        &self,
        actor: &Actor,
        id: EndpointId,
        page: Page,
    ) -> Result<Paged<EndpointEvent>> {
        let g = self.grant(actor, Action::EndpointsRead)?;
        let mut r = self.store.read().await?;
        store::get_endpoint(
            &mut r,
            &g,
            id,
            Timestamp::now(),
            self.policy.offline_after_seconds,
        )
        .await?
        .ok_or(Error::NotFound("endpoint"))?;
        Ok(store::list_events(&mut r, &g, id, page).await?)
    }
}

fn decode_public_key(b64: &str) -> Result<VerifyingKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad_agent_input("public_key", "must be base64 (standard alphabet)"))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| bad_agent_input("public_key", "must be a 32-byte ed25519 public key"))?;
    VerifyingKey::from_bytes(&arr)
        .map_err(|_| bad_agent_input("public_key", "is not a valid ed25519 public key"))
}
