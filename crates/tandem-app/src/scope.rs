//! The scope agreement: the domain catalog, versions with two-sided sign-off, lint, and the
//! routing function every other module calls.

use crate::{Actor, App, Audit, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_domain::authz::{Action, Denied};
use tandem_domain::scope::{
    self, Acknowledgement, Agreement, AgreementVersion, Calendar, CompiledAgreement, Finding,
    ItDomain, LintContext, Party, RouteDecision, Severity, VersionStatus,
};
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, Side, Timestamp};
use tandem_store::scope as store;

/// A domain to add to the catalog.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    /// Stable key: lowercase letters, digits and `_`.
    pub key: String,
    /// Name shown to people.
    pub name: String,
    /// What it covers.
    #[serde(default)]
    pub description: String,
}

/// Changes to a catalog domain.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DomainPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Retire (true) or restore (false).
    pub retired: Option<bool>,
}

/// A routing answer with the version it came from.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RouteAnswer {
    /// The client.
    pub client_id: ClientId,
    /// The instant asked about.
    pub at: Timestamp,
    /// The decision.
    #[serde(flatten)]
    pub decision: RouteDecision,
    /// The agreement version used.
    pub version: i64,
    /// From when that version is in force.
    pub version_effective_from: Option<Timestamp>,
    /// When the owner next changes, if it does within a year.
    pub next_handover: Option<Timestamp>,
}

/// The side a person acts for in an agreement.
fn party_of(actor: &Actor) -> Result<Party> {
    match actor.principal.as_ref().map(|p| p.side()) {
        Some(Side::Provider) => Ok(Party::Provider),
        Some(Side::Client) => Ok(Party::Internal),
        _ => Err(Error::Forbidden(Denied(
            "only the provider or the client's IT can do this",
        ))),
    }
}

fn label(actor: &Actor) -> String {
    actor
        .principal
        .as_ref()
        .map_or_else(|| "Tandem".to_string(), |p| p.label.clone())
}

/// Tells everyone who can act for the client, on both sides, about a version.
async fn notify_both_sides(
    w: &mut tandem_store::Write,
    client: ClientId,
    number: i64,
    msg: &str,
    now: Timestamp,
) -> Result<()> {
    let (internal, provider) = store::staff(w, client).await?;
    let link = format!("/clients/{client}/scope/versions/{number}");
    for u in internal.iter().chain(&provider) {
        store::notify(w, *u, Some(client), msg, &link, now).await?;
    }
    Ok(())
}

fn check_key(key: &str) -> Result<()> {
    let ok = (2..=40).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && key.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "key",
            "2–40 lowercase letters, digits and '_', starting with a letter",
        )
        .into())
    }
}

impl App {
    /// The domain catalog.
    pub async fn list_domains(
        &self,
        actor: &Actor,
        include_retired: bool,
    ) -> Result<Vec<ItDomain>> {
        self.grant(actor, Action::ScopeRead)?;
        let mut r = self.store.read().await?;
        Ok(store::list_domains(&mut r, include_retired).await?)
    }

    /// Adds a domain to the catalog.
    pub async fn create_domain(&self, actor: &Actor, new: NewDomain) -> Result<ItDomain> {
        let g = self.grant(actor, Action::DomainsManage)?;
        g.check_tenant(tandem_domain::Tenant::Provider)
            .map_err(Error::Forbidden)?;
        check_key(&new.key)?;
        let d = ItDomain {
            key: new.key,
            name: tandem_domain::validate::display_name("name", &new.name)?,
            description: new.description.trim().chars().take(500).collect(),
            retired_at: None,
        };
        let mut w = self.store.write().await?;
        store::insert_domain(&mut w, &d, Timestamp::now())
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict(_) => {
                    Error::Invalid(vec![Invalid::new("key", "is already in the catalog")])
                }
                o => o,
            })?;
        Audit::new(actor, "domain.created", "domain", &d.key)
            .after(json!({"name": d.name, "description": d.description}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(d)
    }

    /// Renames, re-describes, retires or restores a catalog domain. Retired domains keep
    /// their history in every agreement.
    pub async fn update_domain(
        &self,
        actor: &Actor,
        key: &str,
        patch: DomainPatch,
    ) -> Result<ItDomain> {
        let g = self.grant(actor, Action::DomainsManage)?;
        g.check_tenant(tandem_domain::Tenant::Provider)
            .map_err(Error::Forbidden)?;
        let before = {
            let mut r = self.store.read().await?;
            store::list_domains(&mut r, true)
                .await?
                .into_iter()
                .find(|d| d.key == key)
                .ok_or(Error::NotFound("domain"))?
        };
        let mut d = before.clone();
        if let Some(n) = &patch.name {
            d.name = tandem_domain::validate::display_name("name", n)?;
        }
        if let Some(desc) = &patch.description {
            d.description = desc.trim().chars().take(500).collect();
        }
        let now = Timestamp::now();
        let mut w = self.store.write().await?;
        store::update_domain(&mut w, key, &d.name, &d.description).await?;
        if let Some(retired) = patch.retired {
            d.retired_at = if retired {
                before.retired_at.or(Some(now))
            } else {
                None
            };
            store::set_domain_retired(&mut w, key, d.retired_at).await?;
        }
        Audit::new(actor, "domain.updated", "domain", key)
            .before(json!({"name": before.name, "description": before.description, "retired": before.retired_at.is_some()}))
            .after(json!({"name": d.name, "description": d.description, "retired": d.retired_at.is_some()}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(d)
    }

    /// Every version of a client's agreement, newest first.
    pub async fn list_versions(
        &self,
        actor: &Actor,
        client: ClientId,
    ) -> Result<Vec<AgreementVersion>> {
        let g = self.grant(actor, Action::ScopeRead)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let mut r = self.store.read().await?;
        Ok(store::list_versions(&mut r, &g, client).await?)
    }

    /// One version.
    pub async fn get_version(
        &self,
        actor: &Actor,
        client: ClientId,
        number: i64,
    ) -> Result<AgreementVersion> {
        let g = self.grant(actor, Action::ScopeRead)?;
        let mut r = self.store.read().await?;
        store::get_version(&mut r, &g, client, number)
            .await?
            .ok_or(Error::NotFound("agreement version"))
    }

    /// The version in force at `at`, if any version was accepted by then.
    pub async fn version_in_force(
        &self,
        actor: &Actor,
        client: ClientId,
        at: Timestamp,
    ) -> Result<Option<AgreementVersion>> {
        let (g, mut r, versions) = self.accepted_versions(actor, client).await?;
        match scope::in_force_at(&versions, at) {
            None => Ok(None),
            Some(n) => Ok(store::get_version(&mut r, &g, client, n).await?),
        }
    }

    /// The accepted versions of `client` (number, status, effective from), with the grant
    /// and the read they were read with, for a look-up of the one in force.
    async fn accepted_versions(
        &self,
        actor: &Actor,
        client: ClientId,
    ) -> Result<(
        tandem_domain::authz::Grant,
        tandem_store::Read,
        Vec<(i64, VersionStatus, Option<Timestamp>)>,
    )> {
        let g = self.grant(actor, Action::ScopeRead)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let mut r = self.store.read().await?;
        let versions = store::accepted_versions(&mut r, &g, client).await?;
        Ok((g, r, versions))
    }

    /// The accepted version in force at `client` at `at`, compiled — `None` when none is.
    ///
    /// An accepted version never changes, so its compiled form is kept (every alert, ticket
    /// and page is routed; reading and compiling the agreement each time was most of a
    /// route's cost): only the list of accepted versions is read.
    pub(crate) async fn compiled_in_force(
        &self,
        actor: &Actor,
        client: ClientId,
        at: Timestamp,
    ) -> Result<Option<InForce>> {
        let (g, mut r, versions) = self.accepted_versions(actor, client).await?;
        let Some(number) = scope::in_force_at(&versions, at) else {
            return Ok(None);
        };
        let effective_from = versions
            .iter()
            .find(|(n, _, _)| *n == number)
            .and_then(|(_, _, e)| *e);
        let compiled = match self.agreements.get(client, number) {
            Some(c) => Ok(c),
            None => {
                let Some(v) = store::get_version(&mut r, &g, client, number)
                    .await?
                    .filter(|v| v.status == VersionStatus::Accepted)
                else {
                    return Ok(None);
                };
                match CompiledAgreement::new(&v.content) {
                    Ok(c) => {
                        let c = std::sync::Arc::new(c);
                        self.agreements.put(client, number, c.clone());
                        Ok(c)
                    }
                    Err(e) => Err(format!("stored agreement does not compile: {e}")),
                }
            }
        };
        Ok(Some(InForce {
            number,
            effective_from,
            compiled,
        }))
    }

    /// Who owns `domain` at `client` at instant `at`, and why: the function every module calls.
    pub async fn route(
        &self,
        actor: &Actor,
        client: ClientId,
        domain: &str,
        at: Timestamp,
    ) -> Result<RouteAnswer> {
        let not_in_force = || Error::NotFound("agreement in force at that instant");
        let f = self
            .compiled_in_force(actor, client, at)
            .await?
            .ok_or_else(not_in_force)?;
        let compiled = f.compiled.map_err(Error::Internal)?;
        let (number, effective_from) = (f.number, f.effective_from);
        let decision = scope::route(&compiled, domain, at).map_err(|e| match e {
            scope::RouteError::UnassignedDomain(_) => {
                Error::NotFound("domain in the agreement in force")
            }
            other => Error::Conflict(other.to_string()),
        })?;
        Ok(RouteAnswer {
            client_id: client,
            at,
            next_handover: scope::next_handover(&compiled, domain, at),
            decision,
            version: number,
            version_effective_from: effective_from,
        })
    }

    /// Lints an agreement for a client, with who can act on each side and the catalog.
    pub async fn lint_agreement(
        &self,
        actor: &Actor,
        client: ClientId,
        a: &Agreement,
    ) -> Result<Vec<Finding>> {
        let g = self.grant(actor, Action::ScopeRead)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let mut r = self.store.read().await?;
        let active = store::list_domains(&mut r, false)
            .await?
            .into_iter()
            .map(|d| d.key)
            .collect();
        let (internal, provider) = store::staff(&mut r, client).await?;
        Ok(scope::lint(
            a,
            &LintContext {
                active_domains: active,
                internal_staff: internal.len(),
                provider_staff: provider.len(),
                week_start: scope::week_start(Timestamp::now(), &a.internal_calendar.time_zone),
            },
        ))
    }

    async fn open_version(
        &self,
        actor: &Actor,
        client: ClientId,
    ) -> Result<Option<AgreementVersion>> {
        Ok(self
            .list_versions(actor, client)
            .await?
            .into_iter()
            .find(|v| matches!(v.status, VersionStatus::Draft | VersionStatus::Proposed)))
    }

    /// Starts a draft from the version in force (or a blank agreement in the client's time
    /// zone). One draft or proposal is open per client at a time.
    pub async fn start_draft(&self, actor: &Actor, client: ClientId) -> Result<AgreementVersion> {
        let g = self.grant(actor, Action::ScopeWrite)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let side = party_of(actor)?;
        if let Some(open) = self.open_version(actor, client).await? {
            return Err(Error::Conflict(format!(
                "version {} is already {} by the {} side; finish it first",
                open.number,
                if open.status == VersionStatus::Draft {
                    "being drafted"
                } else {
                    "proposed"
                },
                open.author_side
            )));
        }
        let now = Timestamp::now();
        let current = self.version_in_force(actor, client, now).await?;
        let content = match &current {
            Some(v) => v.content.clone(),
            None => {
                let tz = self
                    .list_sites(actor, Some(client), tandem_store::Page::new(0, 1))
                    .await?
                    .items
                    .first()
                    .map(|s| s.time_zone.clone())
                    .unwrap_or_else(|| "UTC".into());
                Agreement {
                    internal_calendar: Calendar::weekdays(&tz, 8 * 60, 17 * 60),
                    provider_calendar: Calendar::weekdays(&tz, 8 * 60, 18 * 60),
                    assignments: Vec::new(),
                }
            }
        };
        let mut w = self.store.write().await?;
        let number = store::next_number(&mut w, client).await?;
        let v = AgreementVersion {
            client_id: client,
            number,
            status: VersionStatus::Draft,
            content,
            based_on: current.as_ref().map(|c| c.number),
            author_side: side,
            author: label(actor),
            created_at: now,
            updated_at: now,
            proposed_by: None,
            proposed_at: None,
            decided_by: None,
            decided_side: None,
            decided_at: None,
            decision_comment: None,
            effective_from: None,
            acknowledgements: Vec::new(),
        };
        store::insert_version(&mut w, &v).await?;
        Audit::new(
            actor,
            "scope.draft_started",
            "agreement_version",
            format!("{client}:{number}"),
        )
        .client(Some(client))
        .after(json!({"number": number, "based_on": v.based_on, "side": side}))
        .write(&mut w)
        .await?;
        w.commit().await?;
        Ok(v)
    }

    async fn own_open(
        &self,
        actor: &Actor,
        client: ClientId,
        number: i64,
        status: VersionStatus,
    ) -> Result<(AgreementVersion, Party)> {
        let g = self.grant(actor, Action::ScopeWrite)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let side = party_of(actor)?;
        let v = self.get_version(actor, client, number).await?;
        if v.status != status {
            return Err(Error::Conflict(format!(
                "version {number} is {}, not {}",
                v.status.as_str(),
                status.as_str()
            )));
        }
        Ok((v, side))
    }

    /// Replaces a draft's content. Only its author's side may edit it. Returns the lint.
    pub async fn save_draft(
        &self,
        actor: &Actor,
        client: ClientId,
        number: i64,
        content: Agreement,
    ) -> Result<(AgreementVersion, Vec<Finding>)> {
        let (mut v, side) = self
            .own_open(actor, client, number, VersionStatus::Draft)
            .await?;
        if side != v.author_side {
            return Err(Error::Forbidden(Denied(
                "only the side that started a draft edits it",
            )));
        }
        self.validate_agreement(actor, &content).await?;
        let changes = scope::diff(&v.content, &content);
        v.content = content;
        v.updated_at = Timestamp::now();
        let mut w = self.store.write().await?;
        store::update_version(&mut w, &v).await?;
        Audit::new(actor, "scope.draft_saved", "agreement_version", format!("{client}:{number}"))
            .client(Some(client))
            .after(json!({"changes": changes.len(), "first_changes": changes.iter().take(10).map(|c| format!("{} {}: {} → {}", c.subject, c.field, c.before, c.after)).collect::<Vec<_>>()}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        let findings = self.lint_agreement(actor, client, &v.content).await?;
        Ok((v, findings))
    }

    async fn validate_agreement(&self, actor: &Actor, a: &Agreement) -> Result<()> {
        let mut errors = Vec::new();
        if let Err(e) = CompiledAgreement::new(a) {
            errors.push(Invalid::new("agreement", e.0));
        }
        let catalog = self.list_domains(actor, true).await?;
        for asg in &a.assignments {
            match catalog.iter().find(|d| d.key == asg.domain) {
                None => errors.push(Invalid::new(
                    "assignments",
                    format!("{:?} is not a domain of the catalog", asg.domain),
                )),
                Some(d) if d.retired_at.is_some() => errors.push(Invalid::new(
                    "assignments",
                    format!(
                        "{} is retired; remove it or restore it in the catalog",
                        d.name
                    ),
                )),
                _ => {}
            }
            let long = [&asg.notes].iter().any(|s| s.chars().count() > 2000)
                || [&asg.internal_contact, &asg.provider_contact]
                    .iter()
                    .any(|s| s.as_ref().is_some_and(|s| s.chars().count() > 120))
                || asg
                    .internal_escalation
                    .iter()
                    .chain(&asg.provider_escalation)
                    .any(|s| s.chars().count() > 120)
                || asg.internal_escalation.len() > 10
                || asg.provider_escalation.len() > 10;
            if long {
                errors.push(Invalid::new(
                    "assignments",
                    format!(
                        "{}: notes up to 2,000 characters, names up to 120, chains up to 10 steps",
                        asg.domain
                    ),
                ));
            }
        }
        for cal in [&a.internal_calendar, &a.provider_calendar] {
            if cal.holidays.len() > 400 {
                errors.push(Invalid::new(
                    "holidays",
                    "at most 400 holidays per calendar",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(errors))
        }
    }

    /// Proposes a draft to the other side. Lint errors block it; warnings named in
    /// `acknowledge` are recorded as acknowledged by the proposer.
    pub async fn propose(
        &self,
        actor: &Actor,
        client: ClientId,
        number: i64,
        effective_from: Option<Timestamp>,
        acknowledge: &[String],
    ) -> Result<AgreementVersion> {
        let (mut v, side) = self
            .own_open(actor, client, number, VersionStatus::Draft)
            .await?;
        if side != v.author_side {
            return Err(Error::Forbidden(Denied(
                "only the side that started a draft proposes it",
            )));
        }
        let now = Timestamp::now();
        let findings = self.lint_agreement(actor, client, &v.content).await?;
        let errors: Vec<Invalid> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| Invalid::new("agreement", f.message.clone()))
            .collect();
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let effective = effective_from.unwrap_or(now);
        if effective < now.plus_seconds(-300) {
            return Err(Invalid::new(
                "effective_from",
                "cannot be in the past: an agreement cannot change who owned work already done",
            )
            .into());
        }
        v.acknowledgements = findings
            .iter()
            .filter(|f| f.severity == Severity::Warning && acknowledge.contains(&f.key()))
            .map(|f| Acknowledgement {
                key: f.key(),
                by: label(actor),
                at: now,
            })
            .collect();
        v.status = VersionStatus::Proposed;
        v.proposed_by = Some(label(actor));
        v.proposed_at = Some(now);
        v.effective_from = Some(effective);
        v.updated_at = now;
        let client_name = self.get_client(actor, client).await?.name;
        let mut w = self.store.write().await?;
        store::update_version(&mut w, &v).await?;
        let msg = format!(
            "{client_name}: {} proposed version {number} of the scope agreement, effective {}",
            label(actor),
            effective.to_rfc3339()
        );
        notify_both_sides(&mut w, client, number, &msg, now).await?;
        Audit::new(actor, "scope.proposed", "agreement_version", format!("{client}:{number}"))
            .client(Some(client))
            .after(json!({"number": number, "side": side, "effective_from": effective, "acknowledged": v.acknowledgements.iter().map(|a| &a.key).collect::<Vec<_>>()}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(v)
    }

    /// Accepts or rejects a proposal. Only the other side may decide; a rejection needs a
    /// comment. An accepted version is in force from its effective instant (never earlier
    /// than the acceptance).
    pub async fn decide(
        &self,
        actor: &Actor,
        client: ClientId,
        number: i64,
        accept: bool,
        comment: Option<String>,
    ) -> Result<AgreementVersion> {
        let (mut v, side) = self
            .own_open(actor, client, number, VersionStatus::Proposed)
            .await?;
        if side == v.author_side {
            return Err(Error::Forbidden(Denied(
                "the other side must accept or reject a proposal",
            )));
        }
        let comment = comment
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        if !accept && comment.is_none() {
            return Err(Invalid::new(
                "comment",
                "say why you reject it, so the other side can revise it",
            )
            .into());
        }
        if comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
            return Err(Invalid::new("comment", "at most 2,000 characters").into());
        }
        let now = Timestamp::now();
        v.status = if accept {
            VersionStatus::Accepted
        } else {
            VersionStatus::Rejected
        };
        v.decided_by = Some(label(actor));
        v.decided_side = Some(side);
        v.decided_at = Some(now);
        v.decision_comment = comment;
        if accept {
            v.effective_from = Some(v.effective_from.unwrap_or(now).max(now));
        }
        v.updated_at = now;
        let client_name = self.get_client(actor, client).await?.name;
        let mut w = self.store.write().await?;
        store::update_version(&mut w, &v).await?;
        let msg = format!(
            "{client_name}: {} {} version {number} of the scope agreement",
            label(actor),
            if accept { "accepted" } else { "rejected" }
        );
        notify_both_sides(&mut w, client, number, &msg, now).await?;
        Audit::new(actor, if accept { "scope.accepted" } else { "scope.rejected" }, "agreement_version", format!("{client}:{number}"))
            .client(Some(client))
            .before(json!({"status": "proposed"}))
            .after(json!({"status": v.status.as_str(), "side": side, "effective_from": v.effective_from, "comment": v.decision_comment}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(v)
    }

    /// Withdraws one's own side's draft or proposal.
    pub async fn withdraw(
        &self,
        actor: &Actor,
        client: ClientId,
        number: i64,
    ) -> Result<AgreementVersion> {
        let g = self.grant(actor, Action::ScopeWrite)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let side = party_of(actor)?;
        let mut v = self.get_version(actor, client, number).await?;
        if !matches!(v.status, VersionStatus::Draft | VersionStatus::Proposed) {
            return Err(Error::Conflict(format!(
                "version {number} is {}; only drafts and proposals can be withdrawn",
                v.status.as_str()
            )));
        }
        if side != v.author_side {
            return Err(Error::Forbidden(Denied(
                "only the side that wrote it withdraws it; the other side rejects it",
            )));
        }
        let before = v.status;
        v.status = VersionStatus::Withdrawn;
        v.updated_at = Timestamp::now();
        let mut w = self.store.write().await?;
        store::update_version(&mut w, &v).await?;
        Audit::new(
            actor,
            "scope.withdrawn",
            "agreement_version",
            format!("{client}:{number}"),
        )
        .client(Some(client))
        .before(json!({"status": before.as_str()}))
        .after(json!({"status": "withdrawn"}))
        .write(&mut w)
        .await?;
        w.commit().await?;
        Ok(v)
    }

    /// The caller's newest notifications.
    pub async fn notifications(
        &self,
        actor: &Actor,
        limit: u32,
    ) -> Result<Vec<store::Notification>> {
        actor.note_self_service();
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut r = self.store.read().await?;
        Ok(store::notifications_of(&mut r, p.user_id, limit.clamp(1, 200)).await?)
    }

    /// Marks the caller's notifications read.
    pub async fn mark_notifications_read(&self, actor: &Actor) -> Result<u64> {
        actor.note_self_service();
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut w = self.store.write().await?;
        let n = store::mark_notifications_read(&mut w, p.user_id, Timestamp::now()).await?;
        w.commit().await?;
        Ok(n)
    }
}

/// The agreement version in force at an instant ([`App::compiled_in_force`]).
pub(crate) struct InForce {
    pub(crate) number: i64,
    pub(crate) effective_from: Option<Timestamp>,
    /// Compiled, or why the stored agreement does not compile.
    pub(crate) compiled: std::result::Result<std::sync::Arc<CompiledAgreement>, String>,
}

/// Compiled accepted agreement versions, by (client, number). An accepted version's content
/// never changes (only drafts are edited), so nothing needs forgetting; the set is bounded
/// and starts over when full.
#[derive(Default)]
pub(crate) struct CompiledAgreements {
    inner: std::sync::Mutex<
        std::collections::HashMap<(ClientId, i64), std::sync::Arc<CompiledAgreement>>,
    >,
}

impl CompiledAgreements {
    const MAX: usize = 4096;

    fn get(&self, client: ClientId, number: i64) -> Option<std::sync::Arc<CompiledAgreement>> {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&(client, number)).cloned()
    }

    fn put(&self, client: ClientId, number: i64, c: std::sync::Arc<CompiledAgreement>) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= Self::MAX {
            m.clear();
        }
        m.insert((client, number), c);
    }
}
