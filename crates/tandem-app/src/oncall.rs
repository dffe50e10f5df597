//! On-call: schedules, escalation policies, pages and calendar feeds.
//!
//! A page is opened for a client and a domain; the scope agreement in force at that instant
//! names the owning side, and that side's escalation policy is walked: each step notifies its
//! targets and waits; a worker (`advance_due_pages`) takes each due step with a conditional
//! UPDATE, so several servers can run it at once and a step is taken exactly once.
//! Acknowledging stops the walk; resolving ends the page and frees its dedup key.
//!
//! Who may do what: reading on-call data needs `ScopeRead` (provider staff also see the
//! provider's own schedules and policy); changing a schedule or policy needs `ScopeWrite`
//! and belonging to that side; opening, acknowledging and resolving pages needs `TicketsWrite`
//! on the client.

use crate::credentials::{new_secret, sha256_hex};
use crate::{Actor, App, Audit, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_domain::authz::{Action, Denied, Grant};
use tandem_domain::oncall::{
    ical_feed, Compiled, Feed, FeedEvent, Handoff, HandoffItem, HandoffNote, Override, Page,
    PageEvent, PageStatus, Policy, PolicyRules, Schedule, ScheduleRules, Severity, Shift, Step,
    Target,
};
use tandem_domain::scope::Party;
use tandem_domain::validate::Invalid;
use tandem_domain::{
    ClientId, HandoffId, PageId, PolicyId, ScheduleId, Side, Tenant, Timestamp, UserId,
};
use tandem_store::oncall::{self as store, PageFilter};
use tandem_store::{Page as Paging, Paged, Write};

/// The prefix of calendar feed tokens (they appear in feed URLs).
pub const FEED_TOKEN_PREFIX: &str = "tdcal_";

/// A schedule to create.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    /// The client, for the client's own IT's schedule; leave out for a provider-wide one.
    #[serde(default)]
    pub client_id: Option<ClientId>,
    /// A name.
    pub name: String,
    /// Layers and overrides.
    pub rules: ScheduleRules,
}

/// A change to a schedule.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// New layers and overrides.
    #[serde(default)]
    pub rules: Option<ScheduleRules>,
}

/// A schedule with who is on call now.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleView {
    /// The schedule.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Who is on call at the instant asked about.
    pub on_call_now: Option<UserId>,
}

/// The escalation policy of a side (creates it, or replaces its levels).
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// The client, for the client's own IT's policy; leave out for the provider's.
    #[serde(default)]
    pub client_id: Option<ClientId>,
    /// A name.
    pub name: String,
    /// Levels, repeats and the other-side step.
    pub rules: PolicyRules,
}

/// A problem to page about. Opening the same client and dedup key again while the page is not
/// resolved answers the page already open.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPage {
    /// The client.
    pub client_id: ClientId,
    /// The scope agreement's domain (decides the owning side).
    pub domain: String,
    /// The caller's key for the problem (1–200 characters).
    pub dedup_key: String,
    /// One line (1–300 characters).
    pub summary: String,
    /// How bad.
    pub severity: Severity,
    /// Where to look.
    #[serde(default)]
    pub link: Option<String>,
}

/// The answer to opening a page.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PageOpened {
    /// The page (new, or the one already open for the key).
    pub page: Page,
    /// Whether this call opened it.
    pub created: bool,
}

/// A page with its history.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PageView {
    /// The page.
    pub page: Page,
    /// What happened, oldest first.
    pub events: Vec<PageEvent>,
}

/// What a calendar feed shows.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewFeed {
    /// A schedule's shifts; leave out for your own shifts across every schedule.
    #[serde(default)]
    pub schedule_id: Option<ScheduleId>,
}

/// A feed just made, with its URL token (shown this once).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedCreated {
    /// The feed.
    pub feed: Feed,
    /// The token; the feed is at `/oncall/feeds/{token}.ics`.
    pub token: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![Invalid::new(field, message)])
}

fn side_of(client: Option<ClientId>) -> Party {
    if client.is_some() {
        Party::Internal
    } else {
        Party::Provider
    }
}

/// Whether the actor sees provider-side (provider-wide) records.
fn sees_provider(actor: &Actor) -> bool {
    actor
        .principal
        .as_ref()
        .is_none_or(|p| p.tenant == Tenant::Provider)
}

/// Refuses unless the actor may change records of `side` (for `client`) under grant `g`.
fn check_side(actor: &Actor, g: &Grant, side: Party, client: Option<ClientId>) -> Result<()> {
    let own_side = match actor.principal.as_ref().map(|p| p.side()) {
        None => true,
        Some(Side::Provider) => side == Party::Provider,
        Some(Side::Client) => side == Party::Internal,
        Some(_) => false,
    };
    if !own_side {
        return Err(Error::Forbidden(Denied(
            "only that side changes its own on-call records",
        )));
    }
    match client {
        Some(c) => g.check_client(c).map_err(|_| Error::NotFound("client")),
        None if g.covers_provider() => Ok(()),
        None => Err(Error::Forbidden(Denied(
            "only a provider administrator changes the provider's on-call records",
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

impl App {
    // ---- schedules --------------------------------------------------------------------

    /// Checks that every person of a schedule can act for its side (and client).
    async fn check_people(
        &self,
        side: Party,
        client: Option<ClientId>,
        users: &[UserId],
    ) -> Result<()> {
        let mut r = self.store.read().await?;
        for u in users {
            let user = tandem_store::directory::get_user_unscoped(&mut r, *u).await?;
            let ok = user.is_some_and(|u| {
                !u.disabled
                    && match side {
                        Party::Provider => u.client_id.is_none(),
                        Party::Internal => u.client_id.is_some() && u.client_id == client,
                    }
            });
            if !ok {
                return Err(invalid(
                    "rules",
                    format!("{u} is not an active person of the {} side", side.label()),
                ));
            }
        }
        Ok(())
    }

    async fn check_schedule_rules(
        &self,
        side: Party,
        client: Option<ClientId>,
        rules: &ScheduleRules,
    ) -> Result<()> {
        Compiled::new(rules).map_err(Error::Invalid)?;
        let mut people: Vec<UserId> = rules.layers.iter().flat_map(|l| l.users.clone()).collect();
        people.extend(rules.overrides.iter().map(|o| o.user));
        people.sort();
        people.dedup();
        self.check_people(side, client, &people).await
    }

    /// Creates a schedule for the provider (no client) or a client's own IT.
    pub async fn create_schedule(&self, actor: &Actor, new: NewSchedule) -> Result<Schedule> {
        let g = self.grant(actor, Action::ScopeWrite)?;
        let side = side_of(new.client_id);
        check_side(actor, &g, side, new.client_id)?;
        let name = check_name(&new.name)?;
        self.check_schedule_rules(side, new.client_id, &new.rules)
            .await?;
        let now = Timestamp::now();
        let s = Schedule {
            id: ScheduleId::new(),
            client_id: new.client_id,
            side,
            name,
            rules: new.rules,
            created_at: now,
            updated_at: now,
        };
        let mut w = self.store.write().await?;
        store::insert_schedule(&mut w, &s).await?;
        Audit::new(actor, "oncall.schedule_created", "oncall_schedule", s.id)
            .client(s.client_id)
            .after(json!({"name": s.name, "side": s.side, "rules": s.rules}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(s)
    }

    async fn schedule_for(&self, actor: &Actor, g: &Grant, id: ScheduleId) -> Result<Schedule> {
        let mut r = self.store.read().await?;
        store::get_schedule(&mut r, g, sees_provider(actor), id)
            .await?
            .ok_or(Error::NotFound("schedule"))
    }

    /// Renames a schedule or replaces its layers and overrides.
    pub async fn update_schedule(
        &self,
        actor: &Actor,
        id: ScheduleId,
        patch: SchedulePatch,
    ) -> Result<Schedule> {
        let g = self.grant(actor, Action::ScopeWrite)?;
        let before = self.schedule_for(actor, &g, id).await?;
        check_side(actor, &g, before.side, before.client_id)?;
        let mut s = before.clone();
        if let Some(n) = &patch.name {
            s.name = check_name(n)?;
        }
        if let Some(rules) = patch.rules {
            self.check_schedule_rules(s.side, s.client_id, &rules)
                .await?;
            s.rules = rules;
        }
        s.updated_at = Timestamp::now();
        let mut w = self.store.write().await?;
        store::update_schedule(&mut w, &s).await?;
        Audit::new(actor, "oncall.schedule_changed", "oncall_schedule", s.id)
            .client(s.client_id)
            .before(json!({"name": before.name, "rules": before.rules}))
            .after(json!({"name": s.name, "rules": s.rules}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(s)
    }

    /// Adds an override to a schedule.
    pub async fn add_override(
        &self,
        actor: &Actor,
        id: ScheduleId,
        o: Override,
    ) -> Result<Schedule> {
        let g = self.grant(actor, Action::ScopeWrite)?;
        let s = self.schedule_for(actor, &g, id).await?;
        let mut rules = s.rules.clone();
        rules.overrides.push(o);
        self.update_schedule(
            actor,
            id,
            SchedulePatch {
                name: None,
                rules: Some(rules),
            },
        )
        .await
    }

    /// Schedules the actor may see (optionally one client's, with the provider's), each with
    /// who is on call at `at`.
    pub async fn list_schedules(
        &self,
        actor: &Actor,
        client: Option<ClientId>,
        at: Timestamp,
    ) -> Result<Vec<ScheduleView>> {
        let g = self.grant(actor, Action::ScopeRead)?;
        let mut r = self.store.read().await?;
        let list = store::list_schedules(&mut r, &g, sees_provider(actor), client).await?;
        Ok(list
            .into_iter()
            .map(|s| {
                let on_call_now = Compiled::new(&s.rules)
                    .ok()
                    .and_then(|c| c.on_call_at(at))
                    .map(|(u, _)| u);
                ScheduleView {
                    schedule: s,
                    on_call_now,
                }
            })
            .collect())
    }

    /// One schedule with who is on call at `at`.
    pub async fn get_schedule(
        &self,
        actor: &Actor,
        id: ScheduleId,
        at: Timestamp,
    ) -> Result<ScheduleView> {
        let g = self.grant(actor, Action::ScopeRead)?;
        let s = self.schedule_for(actor, &g, id).await?;
        let on_call_now = Compiled::new(&s.rules)
            .ok()
            .and_then(|c| c.on_call_at(at))
            .map(|(u, _)| u);
        Ok(ScheduleView {
            schedule: s,
            on_call_now,
        })
    }

    /// A schedule's shifts in `[from, to)` (at most 92 days).
    pub async fn schedule_shifts(
        &self,
        actor: &Actor,
        id: ScheduleId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Shift>> {
        let g = self.grant(actor, Action::ScopeRead)?;
        if to <= from || to.0 - from.0 > 92 * 86_400 * Timestamp::SECOND {
            return Err(invalid(
                "to",
                "ask for a range of up to 92 days, ending after it starts",
            ));
        }
        let s = self.schedule_for(actor, &g, id).await?;
        let c = Compiled::new(&s.rules).map_err(Error::Invalid)?;
        Ok(c.shifts(from, to))
    }

    // ---- policies ---------------------------------------------------------------------

    /// Sets a side's escalation policy (creating it the first time).
    pub async fn put_policy(&self, actor: &Actor, input: PolicyInput) -> Result<Policy> {
        let g = self.grant(actor, Action::ScopeWrite)?;
        let side = side_of(input.client_id);
        check_side(actor, &g, side, input.client_id)?;
        let name = check_name(&input.name)?;
        input.rules.check().map_err(Error::Invalid)?;
        // Targets must be this side's schedules and people.
        let mut people = Vec::new();
        for l in &input.rules.levels {
            for t in &l.targets {
                match t {
                    Target::Schedule { schedule_id } => {
                        let s = self.schedule_for(actor, &g, *schedule_id).await.ok();
                        if s.is_none_or(|s| s.side != side || s.client_id != input.client_id) {
                            return Err(invalid("rules", "target schedules of this side only"));
                        }
                    }
                    Target::User { user_id } => people.push(*user_id),
                    Target::Side { side: s } if *s != side => {
                        return Err(invalid(
                            "rules",
                            "target this side; the other side is reached with then_other_side",
                        ))
                    }
                    Target::Side { .. } => {}
                }
            }
        }
        self.check_people(side, input.client_id, &people).await?;
        let now = Timestamp::now();
        let existing = {
            let mut r = self.store.read().await?;
            store::policy_of_side(&mut r, side, input.client_id).await?
        };
        let mut w = self.store.write().await?;
        let p = match existing {
            Some(before) => {
                let p = Policy {
                    name,
                    rules: input.rules,
                    updated_at: now,
                    ..before.clone()
                };
                store::update_policy(&mut w, &p).await?;
                Audit::new(actor, "oncall.policy_changed", "oncall_policy", p.id)
                    .client(p.client_id)
                    .before(json!({"name": before.name, "rules": before.rules}))
                    .after(json!({"name": p.name, "rules": p.rules}))
                    .write(&mut w)
                    .await?;
                p
            }
            None => {
                let p = Policy {
                    id: PolicyId::new(),
                    client_id: input.client_id,
                    side,
                    name,
                    rules: input.rules,
                    created_at: now,
                    updated_at: now,
                };
                store::insert_policy(&mut w, &p).await?;
                Audit::new(actor, "oncall.policy_created", "oncall_policy", p.id)
                    .client(p.client_id)
                    .after(json!({"name": p.name, "side": p.side, "rules": p.rules}))
                    .write(&mut w)
                    .await?;
                p
            }
        };
        w.commit().await?;
        Ok(p)
    }

    /// Escalation policies the actor may see.
    pub async fn list_policies(&self, actor: &Actor) -> Result<Vec<Policy>> {
        let g = self.grant(actor, Action::ScopeRead)?;
        let mut r = self.store.read().await?;
        Ok(store::list_policies(&mut r, &g, sees_provider(actor)).await?)
    }

    /// One escalation policy.
    pub async fn get_policy(&self, actor: &Actor, id: PolicyId) -> Result<Policy> {
        let g = self.grant(actor, Action::ScopeRead)?;
        let mut r = self.store.read().await?;
        store::get_policy(&mut r, &g, sees_provider(actor), id)
            .await?
            .ok_or(Error::NotFound("escalation policy"))
    }

    /// The policy a side walks for a client: the client's own IT's, or the provider's.
    async fn policy_for(&self, side: Party, client: ClientId) -> Result<Option<Policy>> {
        let mut r = self.store.read().await?;
        Ok(store::policy_of_side(&mut r, side, Some(client)).await?)
    }

    // ---- pages ------------------------------------------------------------------------

    /// Opens a page — or, while one is open for the client and key, answers that one.
    /// The scope agreement in force now picks the side; that side's policy is walked.
    pub async fn open_page(&self, actor: &Actor, new: NewPage) -> Result<PageOpened> {
        self.open_page_for(actor, new, None).await
    }

    /// Opens a page for a given side (`None`: the side the agreement names now).
    async fn open_page_for(
        &self,
        actor: &Actor,
        new: NewPage,
        forced: Option<(Party, String)>,
    ) -> Result<PageOpened> {
        let (client, dedup) = (new.client_id, new.dedup_key.trim().to_string());
        let open_now = || async {
            let mut r = self.store.read().await?;
            Result::<Option<Page>>::Ok(store::open_page_by_key(&mut r, client, &dedup).await?)
        };
        let planned = self.plan_page(actor, new, forced).await?;
        if let Some(p) = open_now().await? {
            return Ok(PageOpened {
                page: p,
                created: false,
            });
        }
        let mut w = self.store.write().await?;
        let opened = match self.write_page(&mut w, actor, &planned, true).await {
            Ok(o) => o,
            // Another server opened it first.
            Err(Error::Conflict(_)) => {
                drop(w);
                let p = open_now().await?.ok_or_else(|| {
                    Error::Conflict("the page was resolved meanwhile; open it again".into())
                })?;
                return Ok(PageOpened {
                    page: p,
                    created: false,
                });
            }
            Err(e) => return Err(e),
        };
        w.commit().await?;
        match opened {
            Some(page) => Ok(PageOpened {
                page,
                created: false,
            }),
            None => {
                let mut r = self.store.read().await?;
                let page = store::get_page_unscoped(&mut r, planned.page.id)
                    .await?
                    .ok_or(Error::NotFound("page"))?;
                Ok(PageOpened {
                    page,
                    created: true,
                })
            }
        }
    }

    /// Checks and routes a page to open, and plans its first step (reads only; see
    /// [`App::write_page`]). `forced`: the side to page, and why (`None`: the side the
    /// agreement names now).
    pub(crate) async fn plan_page(
        &self,
        actor: &Actor,
        new: NewPage,
        forced: Option<(Party, String)>,
    ) -> Result<PlannedPage> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        g.check_client(new.client_id)
            .map_err(|_| Error::NotFound("client"))?;
        let mut errors = Vec::new();
        let dedup = new.dedup_key.trim().to_string();
        if dedup.is_empty() || dedup.chars().count() > 200 {
            errors.push(Invalid::new(
                "dedup_key",
                "give a key of 1 to 200 characters",
            ));
        }
        let summary = new.summary.trim().to_string();
        if summary.is_empty() || summary.chars().count() > 300 {
            errors.push(Invalid::new(
                "summary",
                "write one line of 1 to 300 characters",
            ));
        }
        if new.link.as_ref().is_some_and(|l| l.len() > 2000) {
            errors.push(Invalid::new("link", "is longer than 2000 characters"));
        }
        let domains = self.list_domains(&Actor::system(), false).await?;
        if !domains.iter().any(|d| d.key == new.domain) {
            errors.push(Invalid::new("domain", "choose a domain of the catalog"));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let now = Timestamp::now();
        let (side, other_side_ok, why) = match forced {
            Some((side, why)) => (side, false, why),
            None => match self
                .route(&Actor::system(), new.client_id, &new.domain, now)
                .await
            {
                Ok(a) => {
                    let other = a.decision.owner.other();
                    let ok =
                        a.decision.accountable == other || a.decision.responsible.contains(&other);
                    (a.decision.owner, ok, a.decision.reason)
                }
                Err(_) => (
                    Party::Internal,
                    false,
                    "no scope agreement in force names an owner; the client's own IT is paged"
                        .to_string(),
                ),
            },
        };
        let policy = self.policy_for(side, new.client_id).await?;
        let page = Page {
            id: PageId::new(),
            client_id: new.client_id,
            domain: new.domain,
            dedup_key: dedup.clone(),
            summary,
            severity: new.severity,
            link: new.link.filter(|l| !l.trim().is_empty()),
            side,
            policy_id: policy.as_ref().map(|p| p.id),
            other_side_ok,
            status: PageStatus::Open,
            step: 0,
            next_step_at: Some(now),
            opened_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
        };
        // The first step is due at once: it is taken in the page's own transaction.
        let first = self.plan_step(&page, policy, now).await?;
        Ok(PlannedPage {
            page,
            why,
            first,
            actor_id: actor.principal.as_ref().map(|p| p.user_id),
        })
    }

    /// Opens a planned page inside the write `w`, with its first step, events,
    /// notifications and audit entries — unless a page is already open for its client and
    /// key: then that page is answered (`Some`) and nothing is written. A page another
    /// server inserted meanwhile fails with a conflict (roll back, or to a savepoint).
    /// Without `look_up` the page is inserted straight away (a conflict if one is open).
    pub(crate) async fn write_page(
        &self,
        w: &mut Write,
        actor: &Actor,
        p: &PlannedPage,
        look_up: bool,
    ) -> Result<Option<Page>> {
        let page = &p.page;
        if look_up {
            if let Some(open) = store::open_page_by_key(w, page.client_id, &page.dedup_key).await? {
                return Ok(Some(open));
            }
        }
        let now = page.opened_at;
        let why = &p.why;
        store::insert_page(w, page).await?;
        store::insert_page_event(
            w,
            page,
            &PageEvent {
                at: now,
                kind: "opened".into(),
                user_id: p.actor_id,
                body: format!("Opened; paging {} — {why}", page.side.label()),
            },
        )
        .await?;
        crate::notify::queue_event(
            w,
            crate::notify::page_event(
                page,
                tandem_domain::notify::EventKind::PageOpened,
                page.side,
                0,
                now,
                &format!("Opened; paging {} — {why}", page.side.label()),
            ),
        )
        .await?;
        Audit::new(actor, "page.opened", "page", page.id)
            .client(Some(page.client_id))
            .after(json!({"domain": page.domain, "dedup_key": page.dedup_key, "summary": page.summary, "severity": page.severity, "side": page.side}))
            .write(w)
            .await?;
        write_step(w, page, &p.first, now).await?;
        Ok(None)
    }

    /// Pages the actor may see.
    pub async fn list_pages(
        &self,
        actor: &Actor,
        f: &PageFilter,
        paging: Paging,
    ) -> Result<Paged<Page>> {
        let g = self.grant(actor, Action::ScopeRead)?;
        let mut r = self.store.read().await?;
        Ok(store::list_pages(&mut r, &g, f, paging).await?)
    }

    /// One page with its history.
    pub async fn get_page(&self, actor: &Actor, id: PageId) -> Result<PageView> {
        let g = self.grant(actor, Action::ScopeRead)?;
        let mut r = self.store.read().await?;
        let page = store::get_page(&mut r, &g, id)
            .await?
            .ok_or(Error::NotFound("page"))?;
        let events = store::page_events(&mut r, id).await?;
        Ok(PageView { page, events })
    }

    async fn page_to_change(&self, actor: &Actor, id: PageId) -> Result<Page> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        let mut r = self.store.read().await?;
        store::get_page(&mut r, &g, id)
            .await?
            .ok_or(Error::NotFound("page"))
    }

    /// Acknowledges a page: escalation stops. Acknowledging twice changes nothing.
    pub async fn acknowledge_page(&self, actor: &Actor, id: PageId) -> Result<Page> {
        let page = self.page_to_change(actor, id).await?;
        self.finish(actor, page, false).await
    }

    /// Resolves a page: it is over, and its dedup key is free again. Idempotent.
    pub async fn resolve_page(&self, actor: &Actor, id: PageId) -> Result<Page> {
        let page = self.page_to_change(actor, id).await?;
        self.finish(actor, page, true).await
    }

    /// Acknowledges the page open for a client and dedup key (the alert module's call).
    /// Answers `None` when no page is open for the key.
    pub async fn acknowledge_page_by_key(
        &self,
        actor: &Actor,
        client: ClientId,
        dedup_key: &str,
    ) -> Result<Option<Page>> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let p = {
            let mut r = self.store.read().await?;
            store::open_page_by_key(&mut r, client, dedup_key).await?
        };
        match p {
            Some(p) => Ok(Some(self.finish(actor, p, false).await?)),
            None => Ok(None),
        }
    }

    /// Resolves the page open for a client and dedup key (the alert module's call).
    /// Answers `None` when no page is open for the key.
    pub async fn resolve_page_by_key(
        &self,
        actor: &Actor,
        client: ClientId,
        dedup_key: &str,
    ) -> Result<Option<Page>> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let p = {
            let mut r = self.store.read().await?;
            store::open_page_by_key(&mut r, client, dedup_key).await?
        };
        match p {
            Some(p) => Ok(Some(self.finish(actor, p, true).await?)),
            None => Ok(None),
        }
    }

    async fn finish(&self, actor: &Actor, page: Page, resolve: bool) -> Result<Page> {
        let mut w = self.store.write().await?;
        if write_finish(&mut w, actor, &page, resolve).await? {
            w.commit().await?;
        }
        let mut r = self.store.read().await?;
        store::get_page_unscoped(&mut r, page.id)
            .await?
            .ok_or(Error::NotFound("page"))
    }

    /// Acknowledges or resolves the page open for a client and key inside the write `w`
    /// (the alert hand-over's call); `false` when none is open or it changed nothing.
    pub(crate) async fn finish_page_by_key_in(
        &self,
        w: &mut Write,
        actor: &Actor,
        client: ClientId,
        dedup_key: &str,
        resolve: bool,
    ) -> Result<bool> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        match store::open_page_by_key(w, client, dedup_key).await? {
            Some(p) => write_finish(w, actor, &p, resolve).await,
            None => Ok(false),
        }
    }

    /// Takes every escalation step due at `now` (the worker's pass). Safe to run on several
    /// servers at once: each step is claimed by a conditional UPDATE. Returns steps taken.
    ///
    /// The steps are planned first (reads), then taken in one transaction — first without
    /// savepoints; if one fails, again with a savepoint each, so the failing page is rolled
    /// back alone (it stays due and is tried on the next pass) and the others are taken. After
    /// an alert storm hundreds of pages fall due in the same minute; one transaction each was
    /// one commit each, under SQLite's one writer lock that new alerts wait for.
    pub async fn advance_due_pages(&self, now: Timestamp) -> Result<usize> {
        let due = {
            let mut r = self.store.read().await?;
            store::due_pages(&mut r, now, 200).await?
        };
        let mut planned = Vec::with_capacity(due.len());
        for p in due {
            if let Some(step) = self.plan_due_step(p.id, now).await? {
                planned.push(step);
            }
        }
        if planned.is_empty() {
            return Ok(0);
        }
        match self.take_steps(&planned, now, false).await? {
            Some(n) => Ok(n),
            None => Ok(self.take_steps(&planned, now, true).await?.unwrap_or(0)),
        }
    }

    /// Writes planned steps in one transaction; `None` when one failed without `careful`
    /// (nothing of that attempt is kept).
    async fn take_steps(
        &self,
        planned: &[(Page, StepPlan)],
        now: Timestamp,
        careful: bool,
    ) -> Result<Option<usize>> {
        let mut w = self.store.write().await?;
        let mut taken = 0;
        for (page, plan) in planned {
            let sp = if careful {
                Some(w.savepoint().await?)
            } else {
                None
            };
            match (write_step(&mut w, page, plan, now).await, sp) {
                (Ok(took), sp) => {
                    if let Some(sp) = sp {
                        w.release(sp).await?;
                    }
                    taken += usize::from(took);
                }
                (Err(e), Some(sp)) => {
                    w.rollback_to(sp).await?;
                    tracing::warn!(page = %page.id, error = %e,
                        "on-call: the page's next step could not be taken; it is tried again");
                }
                // Dropping the write rolls it back.
                (Err(_), None) => return Ok(None),
            }
        }
        w.commit().await?;
        Ok(Some(taken))
    }

    /// The people a target names for a client at `at`.
    async fn resolve_target(
        &self,
        t: &Target,
        client: ClientId,
        at: Timestamp,
    ) -> Result<Vec<UserId>> {
        let mut r = self.store.read().await?;
        Ok(match t {
            Target::User { user_id } => vec![*user_id],
            Target::Schedule { schedule_id } => {
                match store::get_schedule_unscoped(&mut r, *schedule_id).await? {
                    Some(s) => Compiled::new(&s.rules)
                        .ok()
                        .and_then(|c| c.on_call_at(at))
                        .map(|(u, _)| vec![u])
                        .unwrap_or_default(),
                    None => vec![],
                }
            }
            Target::Side { side } => {
                let (internal, provider) = tandem_store::scope::staff(&mut r, client).await?;
                match side {
                    Party::Internal => internal,
                    Party::Provider => provider,
                }
            }
        })
    }

    /// The page and its due step, if it is still open and due (reads only).
    async fn plan_due_step(&self, id: PageId, now: Timestamp) -> Result<Option<(Page, StepPlan)>> {
        let page = {
            let mut r = self.store.read().await?;
            match store::get_page_unscoped(&mut r, id).await? {
                Some(p) => p,
                None => return Ok(None),
            }
        };
        if page.status != PageStatus::Open || page.next_step_at.is_none_or(|t| t > now) {
            return Ok(None);
        }
        let policy = match page.policy_id {
            Some(pid) => {
                let mut r = self.store.read().await?;
                store::get_policy_unscoped(&mut r, pid).await?
            }
            None => None,
        };
        let plan = self.plan_step(&page, policy, now).await?;
        Ok(Some((page, plan)))
    }

    /// Works out a page's due step under `policy` (its policy): who is notified and what
    /// comes next (reads only; [`write_step`] takes it).
    async fn plan_step(
        &self,
        page: &Page,
        policy: Option<Policy>,
        now: Timestamp,
    ) -> Result<StepPlan> {
        let step = policy
            .as_ref()
            .and_then(|p| p.rules.step(page.step as u32, page.other_side_ok));
        let mut events = Vec::new();
        let mut notify: Vec<UserId> = Vec::new();
        let (side, policy_id, next_step, next_at) = match (step, &policy) {
            (
                Some(Step::Level {
                    level,
                    round,
                    wait_minutes,
                }),
                Some(p),
            ) => {
                for t in &p.rules.levels[level].targets {
                    for u in self.resolve_target(t, page.client_id, now).await? {
                        if !notify.contains(&u) {
                            notify.push(u);
                        }
                    }
                }
                let what = if notify.is_empty() {
                    "nobody is reachable at this level".to_string()
                } else {
                    format!("notifying {} people", notify.len())
                };
                events.push(("escalated", None, format!("Level {} (pass {}) of {}: {what}; next step in {wait_minutes} min without acknowledgement", level + 1, round + 1, p.name)));
                (
                    page.side,
                    page.policy_id,
                    page.step + 1,
                    Some(now.plus_seconds(i64::from(wait_minutes) * 60)),
                )
            }
            (Some(Step::OtherSide), _) => {
                let other = page.side.other();
                let op = self.policy_for(other, page.client_id).await?;
                events.push((
                    "other_side",
                    None,
                    format!(
                        "{} did not acknowledge; the agreement lets {} take it: paging {}",
                        page.side.label(),
                        other.label(),
                        other.label()
                    ),
                ));
                if op.is_none() {
                    // Without a policy the other side's people are told directly.
                    notify.extend(
                        self.resolve_target(&Target::Side { side: other }, page.client_id, now)
                            .await?,
                    );
                }
                let next = op.as_ref().map(|_| now);
                (other, op.map(|p| p.id), 0, next)
            }
            _ => {
                let body = if policy.is_none() {
                    // No policy: everyone of the side is told once.
                    notify.extend(
                        self.resolve_target(&Target::Side { side: page.side }, page.client_id, now)
                            .await?,
                    );
                    format!("{} has no escalation policy; everyone who works for this client on that side is notified", page.side.label())
                } else {
                    "Escalation exhausted: every level was notified without acknowledgement"
                        .to_string()
                };
                events.push(("exhausted", None, body));
                (page.side, page.policy_id, page.step + 1, None)
            }
        };
        Ok(StepPlan {
            events,
            notify,
            side,
            policy_id,
            next_step,
            next_at,
        })
    }

    // ---- calendar feeds ---------------------------------------------------------------

    /// Makes a calendar feed of a schedule, or of the actor's own shifts. The token is shown
    /// once; only its hash is kept.
    pub async fn create_feed(&self, actor: &Actor, new: NewFeed) -> Result<FeedCreated> {
        let g = self.grant(actor, Action::ScopeRead)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let client_id = match new.schedule_id {
            Some(id) => self.schedule_for(actor, &g, id).await?.client_id,
            None => None,
        };
        let token = format!("{FEED_TOKEN_PREFIX}{}", new_secret(24));
        let feed = Feed {
            id: uuid::Uuid::now_v7(),
            schedule_id: new.schedule_id,
            user_id: new.schedule_id.is_none().then_some(p.user_id),
            client_id,
            created_by: p.user_id,
            created_at: Timestamp::now(),
            revoked_at: None,
        };
        let mut w = self.store.write().await?;
        store::insert_feed(&mut w, &feed, &sha256_hex(&token)).await?;
        Audit::new(actor, "oncall.feed_created", "oncall_feed", feed.id)
            .client(client_id)
            .after(json!({"schedule_id": feed.schedule_id, "user_id": feed.user_id}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(FeedCreated { feed, token })
    }

    /// The actor's calendar feeds.
    pub async fn list_feeds(&self, actor: &Actor) -> Result<Vec<Feed>> {
        self.grant(actor, Action::ScopeRead)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut r = self.store.read().await?;
        Ok(store::feeds_of(&mut r, p.user_id).await?)
    }

    /// Revokes one of the actor's calendar feeds.
    pub async fn revoke_feed(&self, actor: &Actor, id: uuid::Uuid) -> Result<()> {
        self.grant(actor, Action::ScopeRead)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut w = self.store.write().await?;
        if !store::revoke_feed(&mut w, id, p.user_id, Timestamp::now()).await? {
            return Err(Error::NotFound("calendar feed"));
        }
        Audit::new(actor, "oncall.feed_revoked", "oncall_feed", id)
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// The iCalendar text of a feed, found by its token; shifts from 7 days back to 60 ahead.
    /// The token is the credential: `None` for an unknown or revoked one.
    pub async fn feed_ics(
        &self,
        actor: &Actor,
        token: &str,
        now: Timestamp,
    ) -> Result<Option<String>> {
        // The token itself is the authorization; record that the question was asked.
        actor.note_self_service();
        if !token.starts_with(FEED_TOKEN_PREFIX) || token.len() > 100 {
            return Ok(None);
        }
        let mut r = self.store.read().await?;
        let Some(feed) = store::feed_by_hash(&mut r, &sha256_hex(token)).await? else {
            return Ok(None);
        };
        let (from, to) = (now.plus_seconds(-7 * 86_400), now.plus_seconds(60 * 86_400));
        let schedules = match feed.schedule_id {
            Some(id) => store::get_schedule_unscoped(&mut r, id)
                .await?
                .into_iter()
                .collect(),
            None => store::all_schedules_unscoped(&mut r).await?,
        };
        let mut events = Vec::new();
        let mut name = "On call".to_string();
        for s in &schedules {
            let Ok(c) = Compiled::new(&s.rules) else {
                continue;
            };
            if feed.schedule_id.is_some() {
                name = format!("On call: {}", s.name);
            }
            for sh in c.shifts(from, to) {
                if feed.user_id.is_some_and(|u| u != sh.user) {
                    continue;
                }
                let who = tandem_store::directory::get_user_unscoped(&mut r, sh.user)
                    .await?
                    .map_or_else(|| sh.user.to_string(), |u| u.display_name);
                events.push(FeedEvent {
                    uid: format!("{}-{}-{}@tandem", s.id, sh.from.0, sh.user),
                    summary: format!("On call ({}): {who}", s.name),
                    from: sh.from,
                    to: sh.to,
                });
            }
        }
        if let Some(u) = feed.user_id {
            if let Some(u) = tandem_store::directory::get_user_unscoped(&mut r, u).await? {
                name = format!("On call: {}", u.display_name);
            }
        }
        Ok(Some(ical_feed(&name, now, &events)))
    }
}

/// How often the on-call worker looks for due escalation steps.
pub const WORKER_TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// The most alert events handed to paging in one transaction.
const HANDOVER_BATCH: i64 = 100;

/// The most hand-over batches in one tick of the worker.
const HANDOVER_ROUNDS: usize = 20;

impl App {
    /// Starts the on-call worker of `tandem serve`: escalation steps. Safe on every replica.
    pub fn start_oncall_worker(&self) -> tokio::task::JoinHandle<()> {
        let app = self.clone();
        tokio::spawn(tandem_store::writing_as("on-call", async move {
            let mut every = tokio::time::interval(WORKER_TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut tick: u64 = 0;
            loop {
                every.tick().await;
                // Alerts that fired, were acknowledged or resolved since the last tick, one
                // transaction per batch, until none is left (a bounded number of batches, so
                // escalations are never starved).
                for _ in 0..HANDOVER_ROUNDS {
                    match app.page_alert_events(HANDOVER_BATCH).await {
                        Ok(n) if n as i64 >= HANDOVER_BATCH => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "on-call: alert hand-over failed");
                            break;
                        }
                    }
                }
                if let Err(e) = app.advance_due_pages(Timestamp::now()).await {
                    tracing::warn!(error = %e, "on-call: escalation pass failed");
                }
                // Handoffs change at most a few times a day: look every 30 seconds.
                if tick.is_multiple_of(60) {
                    if let Err(e) = app.handoff_pass(Timestamp::now()).await {
                        tracing::warn!(error = %e, "on-call: handoff pass failed");
                    }
                }
                tick = tick.wrapping_add(1);
            }
        }))
    }
}

// ---- shift handoffs ---------------------------------------------------------------------

/// Minutes the receiving side has to acknowledge a handoff (from the handoff, or from when
/// its record was made if later) before it is paged.
pub const HANDOFF_ACK_MINUTES: i64 = 30;

/// How far back the handoff pass looks for a change it has not recorded (a server that was
/// down at 18:00 still records it when it comes back, within a day).
const HANDOFF_LOOKBACK_SECONDS: i64 = 24 * 3600;

impl App {
    /// Records the latest handoff of each client up to `now` and pages about handoffs not
    /// acknowledged in time. Safe on several servers (one record per client and instant; one
    /// page per handoff). Returns (records made, pages opened).
    pub async fn handoff_pass(&self, now: Timestamp) -> Result<(usize, usize)> {
        let system = Actor::system();
        let clients = self.list_clients(&system, Paging::new(0, 500)).await?.items;
        let mut made = 0;
        for c in clients {
            let Some(v) = self.version_in_force(&system, c.id, now).await? else {
                continue;
            };
            let Ok(compiled) = tandem_domain::scope::CompiledAgreement::new(&v.content) else {
                continue;
            };
            let since = now.plus_seconds(-HANDOFF_LOOKBACK_SECONDS);
            let Some(h) = tandem_domain::oncall::handovers(&v.content, &compiled, since, now).pop()
            else {
                continue;
            };
            if self.record_handoff(c.id, &h, now).await? {
                made += 1;
            }
        }
        let mut paged = 0;
        let due = {
            let mut r = self.store.read().await?;
            store::unacknowledged_handoffs(&mut r, now.plus_seconds(-HANDOFF_ACK_MINUTES * 60))
                .await?
        };
        for h in due {
            let opened = self
                .open_page_for(
                    &system,
                    NewPage {
                        client_id: h.client_id,
                        domain: "helpdesk".into(),
                        dedup_key: format!("handoff:{}", h.id),
                        summary: format!(
                            "Shift handoff from {} not acknowledged after {HANDOFF_ACK_MINUTES} minutes",
                            h.from_side.label()
                        ),
                        severity: Severity::Warning,
                        link: Some(format!("/oncall/handoffs/{}", h.id)),
                    },
                    Some((
                        h.to_side,
                        format!(
                            "{} has not acknowledged the shift handoff it received",
                            h.to_side.label()
                        ),
                    )),
                )
                .await?;
            let mut w = self.store.write().await?;
            if store::set_handoff_page(&mut w, h.id, opened.page.id).await? {
                Audit::new(&system, "handoff.paged", "handoff", h.id)
                    .client(Some(h.client_id))
                    .after(json!({"page_id": opened.page.id}))
                    .write(&mut w)
                    .await?;
                w.commit().await?;
                paged += 1;
            }
        }
        Ok((made, paged))
    }

    /// Records one handoff with what is open for the client (pages, and tickets owned by the
    /// outgoing side). Returns whether this call recorded it.
    pub(crate) async fn record_handoff(
        &self,
        client: ClientId,
        h: &tandem_domain::oncall::Handover,
        now: Timestamp,
    ) -> Result<bool> {
        let mut items = Vec::new();
        {
            let mut r = self.store.read().await?;
            if store::handoff_exists(&mut r, client, h.at).await? {
                return Ok(false);
            }
            for p in store::unresolved_pages_of(&mut r, client).await? {
                items.push(HandoffItem {
                    kind: "page".into(),
                    id: p.id.to_string(),
                    label: format!(
                        "{} ({}, {})",
                        p.summary,
                        p.severity.as_str(),
                        p.status.as_str()
                    ),
                    link: format!("/oncall/pages/{}", p.id),
                });
            }
        }
        let tickets = self
            .list_tickets(
                &Actor::system(),
                &tandem_store::tickets::TicketFilter {
                    client: Some(client),
                    statuses: crate::ticket_views::ACTIVE.map(String::from).to_vec(),
                    owner: Some(h.from),
                    ..Default::default()
                },
                Paging::new(0, 500),
            )
            .await?;
        for t in tickets.items {
            items.push(HandoffItem {
                kind: "ticket".into(),
                id: t.id.to_string(),
                label: format!("#{} {} ({})", t.number, t.subject, t.priority.as_str()),
                link: format!("/tickets/{}", t.id),
            });
        }
        let rec = Handoff {
            id: HandoffId::new(),
            client_id: client,
            at: h.at,
            from_side: h.from,
            to_side: h.to,
            items,
            notes: Vec::new(),
            acknowledged_at: None,
            acknowledged_by: None,
            page_id: None,
        };
        let mut w = self.store.write().await?;
        if !store::insert_handoff(&mut w, &rec, now).await? {
            return Ok(false);
        }
        Audit::new(&Actor::system(), "handoff.recorded", "handoff", rec.id)
            .client(Some(client))
            .after(json!({"at": rec.at, "from": rec.from_side, "to": rec.to_side, "items": rec.items.len()}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(true)
    }

    /// Handoff records the actor may see, newest first.
    pub async fn list_handoffs(
        &self,
        actor: &Actor,
        f: &store::HandoffFilter,
        paging: Paging,
    ) -> Result<Paged<Handoff>> {
        let g = self.grant(actor, Action::ScopeRead)?;
        let mut r = self.store.read().await?;
        Ok(store::list_handoffs(&mut r, &g, f, paging).await?)
    }

    /// One handoff record with its notes.
    pub async fn get_handoff(&self, actor: &Actor, id: HandoffId) -> Result<Handoff> {
        let g = self.grant(actor, Action::ScopeRead)?;
        let mut r = self.store.read().await?;
        store::get_handoff(&mut r, Some(&g), id)
            .await?
            .ok_or(Error::NotFound("handoff"))
    }

    async fn handoff_to_work(
        &self,
        actor: &Actor,
        id: HandoffId,
    ) -> Result<(Handoff, Option<Party>)> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        let h = {
            let mut r = self.store.read().await?;
            store::get_handoff(&mut r, Some(&g), id)
                .await?
                .ok_or(Error::NotFound("handoff"))?
        };
        let side = match actor.principal.as_ref().map(|p| p.side()) {
            Some(Side::Provider) => Some(Party::Provider),
            Some(Side::Client) => Some(Party::Internal),
            _ => None,
        };
        Ok((h, side))
    }

    /// The outgoing side adds a note to a handoff (until it is acknowledged).
    pub async fn add_handoff_note(
        &self,
        actor: &Actor,
        id: HandoffId,
        body: &str,
    ) -> Result<Handoff> {
        let (h, side) = self.handoff_to_work(actor, id).await?;
        if side.is_some_and(|s| s != h.from_side) {
            return Err(Error::Forbidden(Denied(
                "only the side handing over adds notes",
            )));
        }
        if h.acknowledged_at.is_some() {
            return Err(Error::Conflict(
                "the handoff was acknowledged; notes are closed".into(),
            ));
        }
        let body = body.trim();
        if body.is_empty() || body.len() > 8000 {
            return Err(invalid("body", "write a note of 1 to 8000 characters"));
        }
        let note = HandoffNote {
            at: Timestamp::now(),
            author_id: actor.principal.as_ref().map(|p| p.user_id),
            author_label: actor
                .principal
                .as_ref()
                .map_or_else(|| "Tandem".into(), |p| p.label.clone()),
            body: body.to_string(),
        };
        let mut w = self.store.write().await?;
        store::insert_handoff_note(&mut w, id, &note).await?;
        Audit::new(actor, "handoff.note_added", "handoff", id)
            .client(Some(h.client_id))
            .after(json!({"body": note.body}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        self.get_handoff(actor, id).await
    }

    /// The receiving side acknowledges a handoff. Acknowledging again changes nothing.
    pub async fn acknowledge_handoff(&self, actor: &Actor, id: HandoffId) -> Result<Handoff> {
        let (h, side) = self.handoff_to_work(actor, id).await?;
        if side.is_some_and(|s| s != h.to_side) {
            return Err(Error::Forbidden(Denied(
                "only the side taking over acknowledges",
            )));
        }
        let by = actor.principal.as_ref().map(|p| p.user_id);
        let mut w = self.store.write().await?;
        if store::acknowledge_handoff(&mut w, id, by, Timestamp::now()).await? {
            Audit::new(actor, "handoff.acknowledged", "handoff", id)
                .client(Some(h.client_id))
                .write(&mut w)
                .await?;
            w.commit().await?;
        } else {
            drop(w);
        }
        self.get_handoff(actor, id).await
    }
}

/// Acknowledges or resolves a page inside the write `w`, with its event, notification and
/// audit entry; `false` when that changed nothing (already so).
async fn write_finish(w: &mut Write, actor: &Actor, page: &Page, resolve: bool) -> Result<bool> {
    let now = Timestamp::now();
    let by = actor.principal.as_ref().map(|p| p.user_id);
    let changed = if resolve {
        store::resolve(w, page.id, by, now).await?
    } else {
        store::acknowledge(w, page.id, by, now).await?
    };
    if changed {
        let (kind, verb) = if resolve {
            ("resolved", "Resolved")
        } else {
            ("acknowledged", "Acknowledged")
        };
        let who = actor
            .principal
            .as_ref()
            .map_or_else(|| "Tandem".to_string(), |p| p.label.clone());
        store::insert_page_event(
            w,
            page,
            &PageEvent {
                at: now,
                kind: kind.into(),
                user_id: by,
                body: format!("{verb} by {who}"),
            },
        )
        .await?;
        crate::notify::queue_event(
            w,
            crate::notify::page_event(
                page,
                if resolve {
                    tandem_domain::notify::EventKind::PageResolved
                } else {
                    tandem_domain::notify::EventKind::PageAcknowledged
                },
                page.side,
                page.step,
                now,
                &format!("{verb} by {who}"),
            ),
        )
        .await?;
        Audit::new(actor, &format!("page.{kind}"), "page", page.id)
            .client(Some(page.client_id))
            .before(json!({"status": page.status}))
            .after(json!({"status": kind}))
            .write(w)
            .await?;
    }
    Ok(changed)
}

/// A page's step, worked out before the write that takes it.
pub(crate) struct StepPlan {
    events: Vec<(&'static str, Option<UserId>, String)>,
    notify: Vec<UserId>,
    side: Party,
    policy_id: Option<PolicyId>,
    next_step: i64,
    next_at: Option<Timestamp>,
}

/// A page checked, routed and with its first step planned, ready to be written
/// ([`App::write_page`]).
pub(crate) struct PlannedPage {
    page: Page,
    why: String,
    first: StepPlan,
    actor_id: Option<UserId>,
}

/// Takes a planned step inside the write `w`: claims it (`false` when it is no longer the
/// page's due step), records its events, notifies its people and channels, audits it.
async fn write_step(w: &mut Write, page: &Page, plan: &StepPlan, now: Timestamp) -> Result<bool> {
    let StepPlan {
        events,
        notify,
        side,
        policy_id,
        next_step,
        next_at,
    } = plan;
    let (side, policy_id, next_step, next_at) = (*side, *policy_id, *next_step, *next_at);
    if !store::claim_step(
        w, page.id, page.side, page.step, side, policy_id, next_step, next_at,
    )
    .await?
    {
        return Ok(false);
    }
    for (kind, user, body) in events.iter() {
        store::insert_page_event(
            w,
            page,
            &PageEvent {
                at: now,
                kind: (*kind).into(),
                user_id: *user,
                body: body.clone(),
            },
        )
        .await?;
    }
    let msg = format!(
        "Page ({}): {} — acknowledge it",
        page.severity.as_str(),
        page.summary
    );
    let link = format!("/oncall/pages/{}", page.id);
    for u in notify.iter() {
        tandem_store::scope::notify(w, *u, Some(page.client_id), &msg, &link, now).await?;
        store::insert_page_event(
            w,
            page,
            &PageEvent {
                at: now,
                kind: "notified".into(),
                user_id: Some(*u),
                body: "Notified in Tandem".into(),
            },
        )
        .await?;
    }
    // Channels hear of escalations past the first step and of the other side taking over
    // (the first step is the page's opening, already told).
    if let Some((_, _, body)) = events
        .iter()
        .find(|(k, _, _)| (*k == "escalated" && page.step > 0) || *k == "other_side")
    {
        crate::notify::queue_event(
            w,
            crate::notify::page_event(
                page,
                tandem_domain::notify::EventKind::PageEscalated,
                side,
                next_step,
                now,
                body,
            ),
        )
        .await?;
    }
    Audit::new(&Actor::system(), "page.step", "page", page.id)
        .client(Some(page.client_id))
        .before(json!({"side": page.side, "step": page.step}))
        .after(
            json!({"side": side, "step": next_step, "notified": notify, "next_step_at": next_at}),
        )
        .write(w)
        .await?;
    Ok(true)
}
