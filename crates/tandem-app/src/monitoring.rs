//! Monitoring policies, endpoint groups, admin baselines, and the evaluation pass.
//!
//! A pass: refresh the facts of endpoints whose row moved (the inventory is read only when a
//! new one arrived), evaluate every effective check over every endpoint's facts, store the
//! changed check states, and turn transitions into alerts through `raise_alert` /
//! `clear_alert`. [`App::run_evaluation`] runs one pass only while holding the database
//! lease, so several servers on one PostgreSQL never evaluate at once.

use crate::{Actor, App, Audit, Error, RaiseAlert, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use tandem_domain::authz::{Action, Grant};
use tandem_domain::monitoring::facts::inventory_facts;
use tandem_domain::monitoring::policy::{
    Effective, EndpointGroup, MonitoringPolicy, Placement, PolicySet, PolicyTarget,
};
use tandem_domain::monitoring::{evaluate, Check, EndpointFacts, Transition, TransitionKind};
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, EndpointGroupId, EndpointId, MonitoringPolicyId, Timestamp};
use tandem_store::monitoring as store;

/// Endpoint facts written per write transaction: few enough that SQLite's one writer lock —
/// which the check-in writer waits for — is held only briefly.
const FACTS_PER_WRITE: usize = 64;

/// Check states stored (or deleted) per write transaction, for the same reason.
const STATES_PER_WRITE: usize = 256;

/// The most fire transitions of one evaluation pass raised in one transaction. One at a time,
/// each raise held SQLite's writer lock for a transaction of its own, ~11 ms under load (a
/// fleet of 30,000 just enrolled: 17 a second, a fifth of the writer's time, and the agent
/// check-ins waited for each); 64 at once put the check-ins' p99 over 100 ms while a
/// thousand endpoints enrolled.
const FIRES_PER_WRITE: usize = 8;

/// The alert a fire transition raises, and its check kind; `None` for other transitions.
fn fire_request(t: &Transition) -> Option<(RaiseAlert, Option<String>)> {
    let (TransitionKind::Fire(found), Some(check)) = (&t.kind, &t.check) else {
        return None;
    };
    Some((
        RaiseAlert {
            client_id: t.client_id,
            dedup_key: t.dedup_key(),
            grouping_key: Some(t.grouping_key()),
            source: "check".into(),
            endpoint_id: Some(t.endpoint_id),
            check_key: Some(t.check_key.clone()),
            domain: check.domain().to_string(),
            severity: check.severity,
            title: format!("{}: {}", t.hostname, check.kind.describe()),
            summary: found.clone(),
            renotify_minutes: check.renotify_minutes,
            ticket: check.ticket,
        },
        Some(check.kind.name().to_string()),
    ))
}

/// What applying a check transition did.
enum Applied {
    Cleared,
    Other,
}

/// The checks and exclusions to set at one level.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckPolicyInput {
    /// Checks added or overridden at this level.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Keys of checks set above that do not apply here.
    #[serde(default)]
    pub exclusions: Vec<String>,
}

/// What a pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PassReport {
    /// Endpoints whose facts were refreshed.
    pub refreshed: usize,
    /// Endpoints evaluated.
    pub endpoints: usize,
    /// Checks evaluated.
    pub checks: usize,
    /// Alerts raised.
    pub fired: usize,
    /// Alerts cleared.
    pub cleared: usize,
    /// Re-notifications.
    pub renotified: usize,
    /// Whether this server held the lease (else it did nothing).
    pub ran: bool,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![Invalid::new(field, message)])
}

impl App {
    /// The client a policy target belongs to (`None` for provider-wide), checked to exist.
    pub(crate) async fn target_client(&self, t: &PolicyTarget) -> Result<Option<ClientId>> {
        let mut r = self.store.read().await?;
        Ok(match t {
            PolicyTarget::Provider => None,
            PolicyTarget::Client(c) => Some(*c),
            PolicyTarget::Site(s) => Some(
                store::site_client(&mut r, *s)
                    .await?
                    .ok_or(Error::NotFound("site"))?,
            ),
            PolicyTarget::Group(g) => Some(
                store::group_client(&mut r, *g)
                    .await?
                    .ok_or(Error::NotFound("endpoint group"))?,
            ),
            PolicyTarget::Endpoint(e) => Some(
                store::endpoint_place(&mut r, *e)
                    .await?
                    .ok_or(Error::NotFound("endpoint"))?
                    .0,
            ),
        })
    }

    pub(crate) fn check_target(g: &Grant, client: Option<ClientId>) -> Result<()> {
        match client {
            None if g.covers_provider() => Ok(()),
            None => Err(Error::Forbidden(tandem_domain::authz::Denied(
                "only the provider's admins set provider-wide checks",
            ))),
            Some(c) => g.check_client(c).map_err(|_| Error::NotFound("client")),
        }
    }

    /// Policies the actor may see: a client's (with the provider-wide ones that apply to it),
    /// or all reachable.
    pub async fn list_check_policies(
        &self,
        actor: &Actor,
        client: Option<ClientId>,
    ) -> Result<Vec<MonitoringPolicy>> {
        let g = self.grant(actor, Action::AlertsRead)?;
        if let Some(c) = client {
            g.check_client(c).map_err(|_| Error::NotFound("client"))?;
        }
        let mut r = self.store.read().await?;
        Ok(store::list_policies(&mut r, &g, client, true).await?)
    }

    /// Sets the checks and exclusions at one level (replacing what was there).
    pub async fn put_check_policy(
        &self,
        actor: &Actor,
        target: PolicyTarget,
        input: CheckPolicyInput,
    ) -> Result<MonitoringPolicy> {
        let g = self.grant(actor, Action::MonitoringManage)?;
        let client = self.target_client(&target).await?;
        Self::check_target(&g, client)?;
        let mut errors: Vec<Invalid> = Vec::new();
        let mut keys = HashSet::new();
        let domains = self.list_domains(&Actor::system(), false).await?;
        for c in &input.checks {
            errors.extend(c.validate());
            if !keys.insert(c.key.clone()) {
                errors.push(Invalid::new("key", format!("{:?} is used twice", c.key)));
            }
            if !domains.iter().any(|d| d.key == c.domain()) {
                errors.push(Invalid::new(
                    "domain",
                    format!("{:?} is not a domain of the catalog", c.domain()),
                ));
            }
        }
        for x in &input.exclusions {
            if !tandem_domain::monitoring::valid_key(x) {
                errors.push(Invalid::new(
                    "exclusions",
                    format!("{x:?} is not a check key"),
                ));
            }
        }
        if input.checks.len() > 200 || input.exclusions.len() > 200 {
            errors.push(Invalid::new("checks", "set at most 200 checks per level"));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let now = Timestamp::now();
        let mut w = self.store.write().await?;
        let before = store::policy_at(&mut w, &target).await?;
        let p = MonitoringPolicy {
            id: before
                .as_ref()
                .map_or_else(MonitoringPolicyId::new, |b| b.id),
            client_id: client,
            target,
            checks: input.checks,
            exclusions: input.exclusions,
        };
        store::put_policy(&mut w, &p, now).await?;
        let mut audit = Audit::new(actor, "monitoring.policy_set", "monitoring_policy", p.id)
            .client(client)
            .after(json!({"target": p.target, "checks": p.checks, "exclusions": p.exclusions}));
        if let Some(b) = &before {
            audit = audit.before(json!({"checks": b.checks, "exclusions": b.exclusions}));
        }
        audit.write(&mut w).await?;
        w.commit().await?;
        Ok(p)
    }

    /// Removes the policy at one level.
    pub async fn delete_policy(&self, actor: &Actor, target: PolicyTarget) -> Result<()> {
        let g = self.grant(actor, Action::MonitoringManage)?;
        let client = self.target_client(&target).await?;
        Self::check_target(&g, client)?;
        let mut w = self.store.write().await?;
        let before = store::policy_at(&mut w, &target)
            .await?
            .ok_or(Error::NotFound("policy"))?;
        store::delete_policy(&mut w, &target).await?;
        Audit::new(actor, "monitoring.policy_removed", "monitoring_policy", before.id)
            .client(client)
            .before(json!({"target": before.target, "checks": before.checks, "exclusions": before.exclusions}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// The checks that apply to an endpoint, and the levels that set, overrode or excluded each.
    pub async fn effective_checks(&self, actor: &Actor, endpoint: EndpointId) -> Result<Effective> {
        let g = self.grant(actor, Action::AlertsRead)?;
        let mut r = self.store.read().await?;
        let (client, site, _) = store::endpoint_place(&mut r, endpoint)
            .await?
            .ok_or(Error::NotFound("endpoint"))?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("endpoint"))?;
        let set = PolicySet::new(store::all_policies(&mut r).await?);
        let groups = store::all_memberships(&mut r)
            .await?
            .remove(&endpoint)
            .unwrap_or_default();
        Ok(set.effective(&Placement {
            client_id: client,
            site_id: site,
            groups,
            endpoint_id: endpoint,
        }))
    }

    /// The facts checks see for an endpoint, if derived yet.
    pub async fn endpoint_facts(
        &self,
        actor: &Actor,
        endpoint: EndpointId,
    ) -> Result<Option<EndpointFacts>> {
        let g = self.grant(actor, Action::AlertsRead)?;
        let mut r = self.store.read().await?;
        let mut f = store::get_facts(&mut r, &g, endpoint).await?;
        if let Some(f) = f.as_mut() {
            f.admin_baseline = store::admin_baseline(&mut r, endpoint).await?;
        }
        Ok(f)
    }

    // ---- endpoint groups --------------------------------------------------------------------

    /// Endpoint groups the actor may see.
    pub async fn list_endpoint_groups(
        &self,
        actor: &Actor,
        client: Option<ClientId>,
    ) -> Result<Vec<EndpointGroup>> {
        let g = self.grant(actor, Action::AlertsRead)?;
        let mut r = self.store.read().await?;
        Ok(store::list_groups(&mut r, &g, client).await?)
    }

    /// Creates a named group of a client's endpoints.
    pub async fn create_endpoint_group(
        &self,
        actor: &Actor,
        client: ClientId,
        name: &str,
    ) -> Result<EndpointGroup> {
        let g = self.grant(actor, Action::MonitoringManage)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(invalid("name", "name the group in 1 to 100 characters"));
        }
        let id = EndpointGroupId::new();
        let mut w = self.store.write().await?;
        store::insert_group(&mut w, id, client, name, Timestamp::now()).await?;
        Audit::new(actor, "monitoring.group_created", "endpoint_group", id)
            .client(Some(client))
            .after(json!({"name": name}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(EndpointGroup {
            id,
            client_id: client,
            name: name.to_string(),
            members: Vec::new(),
        })
    }

    async fn group_to_change(&self, actor: &Actor, id: EndpointGroupId) -> Result<ClientId> {
        let g = self.grant(actor, Action::MonitoringManage)?;
        let mut r = self.store.read().await?;
        let client = store::group_client(&mut r, id)
            .await?
            .ok_or(Error::NotFound("endpoint group"))?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("endpoint group"))?;
        Ok(client)
    }

    /// Deletes a group (and its policy).
    pub async fn delete_endpoint_group(&self, actor: &Actor, id: EndpointGroupId) -> Result<()> {
        let client = self.group_to_change(actor, id).await?;
        let mut w = self.store.write().await?;
        store::delete_group(&mut w, id).await?;
        Audit::new(actor, "monitoring.group_deleted", "endpoint_group", id)
            .client(Some(client))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// Adds an endpoint of the group's client to the group, or removes it.
    pub async fn set_group_member(
        &self,
        actor: &Actor,
        id: EndpointGroupId,
        endpoint: EndpointId,
        member: bool,
    ) -> Result<()> {
        let client = self.group_to_change(actor, id).await?;
        {
            let mut r = self.store.read().await?;
            if store::endpoint_place(&mut r, endpoint).await?.map(|p| p.0) != Some(client) {
                return Err(invalid(
                    "endpoint_id",
                    "choose an endpoint of the group's client",
                ));
            }
        }
        let mut w = self.store.write().await?;
        store::set_member(&mut w, id, endpoint, client, member).await?;
        let action = if member {
            "monitoring.group_member_added"
        } else {
            "monitoring.group_member_removed"
        };
        Audit::new(actor, action, "endpoint_group", id)
            .client(Some(client))
            .after(json!({"endpoint_id": endpoint}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// Accepts an endpoint's current local administrators as its baseline (the new-admin check
    /// compares against it).
    pub async fn accept_admin_baseline(
        &self,
        actor: &Actor,
        endpoint: EndpointId,
    ) -> Result<Vec<String>> {
        let g = self.grant(actor, Action::MonitoringManage)?;
        let mut r = self.store.read().await?;
        let f = store::get_facts(&mut r, &g, endpoint)
            .await?
            .ok_or(Error::NotFound("endpoint"))?;
        drop(r);
        let admins = f.admins.clone().ok_or_else(|| {
            Error::Conflict("the agent has not reported local administrators yet".into())
        })?;
        let mut w = self.store.write().await?;
        let before = store::admin_baseline(&mut w, endpoint).await?;
        store::set_admin_baseline(
            &mut w,
            endpoint,
            f.client_id,
            &admins,
            actor.principal.as_ref().map(|p| p.user_id),
            &actor.label(),
            Timestamp::now(),
        )
        .await?;
        Audit::new(
            actor,
            "monitoring.admin_baseline_accepted",
            "endpoint",
            endpoint,
        )
        .client(Some(f.client_id))
        .before(json!({"admins": before}))
        .after(json!({"admins": admins}))
        .write(&mut w)
        .await?;
        w.commit().await?;
        Ok(admins)
    }

    // ---- the evaluation pass ----------------------------------------------------------------

    /// Derives the facts of endpoints that have none yet or reported a new inventory (a
    /// heartbeat needs none: every read of the facts lays the row's latest check-in over
    /// them). Returns how many were refreshed.
    pub async fn refresh_facts(&self) -> Result<usize> {
        const BATCH: u32 = 512;
        let mut total = 0;
        // Page by page in id order; bounded: an endpoint whose inventory moves behind the
        // page being read is picked up by the next pass.
        let mut after = None;
        for _ in 0..10_000 {
            let stale = {
                let mut r = self.store.read().await?;
                store::stale_facts(&mut r, after, BATCH).await?
            };
            let n = stale.len();
            after = stale.last().map(|s| s.endpoint_id);
            let mut stale = stale.into_iter();
            loop {
                let chunk: Vec<_> = stale.by_ref().take(FACTS_PER_WRITE).collect();
                if chunk.is_empty() {
                    break;
                }
                self.refresh_some_facts(chunk).await?;
            }
            total += n;
            if n < BATCH as usize {
                break;
            }
        }
        Ok(total)
    }

    /// Refreshes the facts of a few endpoints. Their new inventories (~100 KiB of JSON each)
    /// are read outside any write transaction and parsed on a blocking thread: inside the
    /// transaction they held SQLite's one writer lock — and every agent check-in behind it
    /// — for hundreds of milliseconds when many endpoints had just enrolled, and on the
    /// request runtime the parsing held up requests. The write only stores the results.
    async fn refresh_some_facts(&self, stale: Vec<store::StaleFacts>) -> Result<()> {
        let mut inventories = Vec::with_capacity(stale.len());
        {
            let mut r = self.store.read().await?;
            for s in &stale {
                inventories.push(match s.last_inventory_at {
                    Some(at) if Some(at) != s.previous_inventory_at => {
                        store::inventory_for_facts(&mut r, s.endpoint_id)
                            .await?
                            .map(|j| (j, at))
                    }
                    _ => None,
                });
            }
        }
        let derived = blocking(move || {
            stale
                .into_iter()
                .zip(inventories)
                .map(|(s, inventory)| {
                    let mut f: EndpointFacts = s
                        .previous
                        .as_deref()
                        .and_then(|p| serde_json::from_str(p).ok())
                        .unwrap_or_default();
                    f.endpoint_id = s.endpoint_id;
                    f.client_id = s.client_id;
                    f.site_id = s.site_id;
                    f.hostname = s.hostname;
                    let new_inventory = inventory.is_some();
                    let inventory = inventory.map(|(j, at)| (inventory_facts(&j), at));
                    f.refresh(s.last_seen_at, s.heartbeat.as_deref(), s.summary, inventory);
                    (f, s.last_inventory_at, new_inventory)
                })
                .collect::<Vec<_>>()
        })
        .await?;
        let mut w = self.store.write().await?;
        for (f, inventory_at, new_inventory) in &derived {
            // The first administrators seen become the baseline, accepted by Tandem. They
            // change only with an inventory.
            if let (true, Some(admins)) = (new_inventory, &f.admins) {
                if store::admin_baseline(&mut w, f.endpoint_id)
                    .await?
                    .is_none()
                {
                    store::set_admin_baseline(
                        &mut w,
                        f.endpoint_id,
                        f.client_id,
                        admins,
                        None,
                        "Tandem monitoring (first seen)",
                        Timestamp::now(),
                    )
                    .await?;
                }
            }
            store::upsert_facts(&mut w, f, *inventory_at).await?;
        }
        w.commit().await?;
        Ok(())
    }

    /// One evaluation pass at `now`, as Tandem's monitoring. Does not take the lease (see
    /// [`App::run_evaluation`]).
    pub async fn evaluation_pass(&self, now: Timestamp) -> Result<PassReport> {
        let actor = Actor::monitoring();
        self.grant(&actor, Action::AlertsWrite)?;
        let mut report = PassReport {
            ran: true,
            refreshed: self.refresh_facts().await?,
            ..Default::default()
        };
        let (policies, groups, states) = {
            let mut r = self.store.read().await?;
            (
                PolicySet::new(store::all_policies(&mut r).await?),
                store::all_memberships(&mut r).await?,
                store::load_check_states(&mut r).await?,
            )
        };
        // The facts: kept from the last pass, brought up to date page by page; decoding and
        // evaluating run on a blocking thread, off the requests' runtime.
        let mut kept = self.kept_facts.lock().await;
        let mut cache = std::mem::take(&mut *kept);
        cache.begin();
        let mut after = None;
        loop {
            let (page, stored) = {
                let mut r = self.store.read().await?;
                let page = store::facts_rows(&mut r, after, FACTS_PAGE).await?;
                let stale = cache.stale(&page.rows);
                let stored = if stale.is_empty() {
                    Vec::new()
                } else {
                    store::stored_facts(&mut r, &stale).await?
                };
                (page, stored)
            };
            let rows = page.rows;
            cache = blocking(move || {
                cache.lay_over(rows, stored);
                cache
            })
            .await?;
            after = page.next;
            if after.is_none() {
                break;
            }
        }
        let (cache, ev, endpoints, client_of) = blocking(move || {
            let mut cache = cache;
            let facts = cache.seen();
            let ev = evaluate(&policies, &groups, &facts, &states, now);
            let endpoints = facts.len();
            let client_of: std::collections::HashMap<EndpointId, ClientId> = ev
                .changed
                .iter()
                .filter_map(|(k, _)| cache.get(&k.0).map(|f| (k.0, f.client_id)))
                .collect();
            (cache, ev, endpoints, client_of)
        })
        .await?;
        *kept = cache;
        drop(kept);
        report.endpoints = endpoints;
        report.checks = ev.evaluated;
        // The states, a few at a time: in one transaction, those of the first pass over a
        // million endpoints (some 134,000) held SQLite's one writer lock — and every agent
        // check-in behind it — for 9.4 s.
        let puts = ev
            .changed
            .iter()
            .filter_map(|(k, s)| client_of.get(&k.0).map(|c| (k, Some((*c, s)))));
        let writes: Vec<_> = puts.chain(ev.dropped.iter().map(|k| (k, None))).collect();
        for chunk in writes.chunks(STATES_PER_WRITE) {
            let mut w = self.store.write().await?;
            for (k, put) in chunk {
                match put {
                    Some((c, s)) => store::put_check_state(&mut w, k, *c, s).await?,
                    None => store::delete_check_state(&mut w, k).await?,
                }
            }
            w.commit().await?;
        }
        // Fires go to the alert writer a few at a time ([`FIRES_PER_WRITE`]), the rest one by
        // one, in the order they came.
        let mut fires = Vec::with_capacity(FIRES_PER_WRITE);
        for t in ev.transitions {
            if let Some(fire) = fire_request(&t) {
                fires.push(fire);
                if fires.len() == FIRES_PER_WRITE {
                    report.fired += self.fire(&actor, std::mem::take(&mut fires)).await?;
                }
                continue;
            }
            report.fired += self.fire(&actor, std::mem::take(&mut fires)).await?;
            if let Applied::Cleared = self.apply_transition(&actor, t).await? {
                report.cleared += 1;
            }
        }
        report.fired += self.fire(&actor, fires).await?;
        report.renotified = self.renotify_due(&actor, now).await?;
        Ok(report)
    }

    /// Raises the alerts of fire transitions together (the alert writer writes them in one
    /// transaction); answers how many, or the first error.
    async fn fire(&self, actor: &Actor, fires: Vec<(RaiseAlert, Option<String>)>) -> Result<usize> {
        let items = fires.into_iter().map(|(r, kind)| (r, kind, None)).collect();
        let raised = self.raise_many(actor, items).await;
        let n = raised.len();
        raised.into_iter().try_for_each(|r| r.map(drop))?;
        Ok(n)
    }

    /// Clears or marks as flapping the alert of one check transition (fires go through
    /// [`App::fire`]).
    async fn apply_transition(&self, actor: &Actor, t: Transition) -> Result<Applied> {
        let dedup = t.dedup_key();
        Ok(match &t.kind {
            TransitionKind::Fire(_) => Applied::Other,
            TransitionKind::Clear(why) => {
                match self.clear_alert(actor, t.client_id, &dedup, why).await? {
                    Some(_) => Applied::Cleared,
                    None => Applied::Other,
                }
            }
            TransitionKind::FlapHeld => {
                self.set_alert_flapping(actor, t.client_id, &dedup, true)
                    .await?;
                Applied::Other
            }
            TransitionKind::FlapSettled => {
                self.set_alert_flapping(actor, t.client_id, &dedup, false)
                    .await?;
                Applied::Other
            }
        })
    }

    /// Runs one pass if this server (`holder`) can claim the evaluation lease for `lease_secs`.
    pub async fn run_evaluation(&self, holder: &str, lease_secs: i64) -> Result<PassReport> {
        let now = Timestamp::now();
        let claimed = {
            let mut w = self.store.write().await?;
            let ok = store::claim_lease(&mut w, holder, now, now.plus_seconds(lease_secs)).await?;
            w.commit().await?;
            ok
        };
        if !claimed {
            return Ok(PassReport::default());
        }
        self.evaluation_pass(now).await
    }
}

/// Endpoints per page of the evaluation pass's read of the fleet.
const FACTS_PAGE: u32 = 2048;

/// Runs CPU-bound work of the evaluation pass on a blocking thread.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("evaluating monitoring checks: {e}")))
}
