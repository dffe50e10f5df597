//! Views of the ticket queue (issue #5): three built in, and each person's own saved ones.
//!
//! Built-in views, precisely:
//! * **My queue** — active tickets (new, open, waiting on requester or vendor) assigned to
//!   the caller: `status=active&assignee=me`.
//! * **Provider queue, after hours** — active tickets the provider owns, of clients whose
//!   internal IT is outside its business hours *at the moment the view is read*, per the
//!   internal calendar of the scope agreement in force (hours and holidays). While the
//!   internal side is closed the provider is the only side working; this is its queue.
//!   Clients without an agreement in force are left out (there is no calendar to ask).
//! * **Breaching within 2 hours** — active tickets whose SLA clock runs (not paused) and whose
//!   first-response or resolution deadline, counted in the owning side's business hours by
//!   `tandem_domain::helpdesk::sla_state`, falls after now and at most two hours from now;
//!   soonest first. Deadlines are computed, not stored, so the view checks the
//!   [`BREACH_SCAN_LIMIT`] most recently changed active tickets and says when there were more.
//!
//! A saved view is a name and the queue's filter as a query string, private to its owner.

use crate::{Actor, App, Audit, Error, Result};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use tandem_domain::authz::Action;
use tandem_domain::helpdesk::{sla_state, Calendars, Ticket};
use tandem_domain::scope::{CompiledAgreement, Party};
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, Timestamp};
use tandem_store::ticket_views::{self as store, SavedView};
use tandem_store::tickets::TicketFilter;
use tandem_store::{Page, Paged};

/// The most active tickets the "breaching within 2 hours" view computes deadlines for.
pub const BREACH_SCAN_LIMIT: u32 = 10_000;
/// How far ahead "breaching soon" looks, in seconds.
pub const BREACH_WINDOW_SECS: i64 = 2 * 3600;

/// The statuses of an active ticket.
pub const ACTIVE: [&str; 4] = ["new", "open", "waiting_on_requester", "waiting_on_vendor"];

/// A view of the queue, built in or saved.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketViewItem {
    /// `my_queue`, `provider_after_hours`, `breaching_soon`, or a saved view's UUID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The filter: append to `/api/v1/tickets?` (or `/tickets?` in the web UI).
    pub query: String,
    /// Built in (cannot be deleted) or saved by the caller.
    pub builtin: bool,
}

/// Which built-in view a `view=` parameter asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinView {
    /// Provider-owned active tickets of clients whose internal IT is closed now.
    ProviderAfterHours,
    /// Active tickets with a deadline within two hours.
    BreachingSoon,
}

impl BuiltinView {
    /// Reads a `view=` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "provider_after_hours" => Some(BuiltinView::ProviderAfterHours),
            "breaching_soon" => Some(BuiltinView::BreachingSoon),
            _ => None,
        }
    }
}

/// A page of a built-in view, and whether the view could not look at every ticket.
#[derive(Clone, Debug)]
pub struct ViewPage {
    /// The tickets.
    pub page: Paged<Ticket>,
    /// Set when more active tickets existed than the view checked.
    pub truncated: bool,
}

fn builtins(end_user: bool) -> Vec<TicketViewItem> {
    if end_user {
        return Vec::new();
    }
    [
        ("my_queue", "My queue", "status=active&assignee=me"),
        (
            "provider_after_hours",
            "Provider queue, after hours",
            "view=provider_after_hours",
        ),
        (
            "breaching_soon",
            "Breaching within 2 hours",
            "view=breaching_soon",
        ),
    ]
    .into_iter()
    .map(|(id, name, query)| TicketViewItem {
        id: id.into(),
        name: name.into(),
        query: query.into(),
        builtin: true,
    })
    .collect()
}

impl App {
    /// The built-in views (not for end users) and the caller's saved views.
    pub async fn ticket_views(&self, actor: &Actor) -> Result<Vec<TicketViewItem>> {
        self.grant(actor, Action::TicketsRead)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut out = builtins(p.role == tandem_domain::Role::EndUser);
        let mut r = self.store.read().await?;
        for v in store::list_views(&mut r, p.user_id).await? {
            out.push(TicketViewItem {
                id: v.id,
                name: v.name,
                query: v.query,
                builtin: false,
            });
        }
        Ok(out)
    }

    /// Saves the queue's current filter under a name. `query` must already be a valid queue
    /// filter (the HTTP layer checks it against the queue's parameters).
    pub async fn save_ticket_view(
        &self,
        actor: &Actor,
        name: &str,
        query: &str,
    ) -> Result<TicketViewItem> {
        self.grant(actor, Action::TicketsRead)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let name = name.trim();
        let mut errors = Vec::new();
        if name.is_empty() || name.chars().count() > 80 {
            errors.push(Invalid::new("name", "name the view in 1 to 80 characters"));
        }
        if query.len() > 2000 {
            errors.push(Invalid::new("query", "is longer than 2,000 characters"));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        if builtins(false)
            .iter()
            .any(|b| b.name.eq_ignore_ascii_case(name))
        {
            return Err(Error::Conflict(format!("{name:?} is a built-in view")));
        }
        let v = SavedView {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: p.user_id,
            name: name.to_string(),
            query: query.to_string(),
            created_at: Timestamp::now(),
        };
        let mut w = self.store.write().await?;
        let taken = store::list_views(&mut w, p.user_id)
            .await?
            .iter()
            .any(|o| o.name.to_lowercase() == name.to_lowercase());
        let inserted = if taken {
            Err(tandem_store::StoreError::Conflict("name".into()))
        } else {
            store::insert_view(&mut w, &v).await
        };
        match inserted {
            Err(tandem_store::StoreError::Conflict(_)) => {
                return Err(Error::Conflict(format!(
                    "you already have a view named {name:?}"
                )))
            }
            other => other?,
        }
        Audit::new(actor, "ticket_view.saved", "ticket_view", &v.id)
            .client(p.tenant.client())
            .after(json!({"name": v.name, "query": v.query}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(TicketViewItem {
            id: v.id,
            name: v.name,
            query: v.query,
            builtin: false,
        })
    }

    /// Deletes one of the caller's saved views.
    pub async fn delete_ticket_view(&self, actor: &Actor, id: &str) -> Result<()> {
        self.grant(actor, Action::TicketsRead)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut w = self.store.write().await?;
        let v = store::delete_view(&mut w, p.user_id, id)
            .await?
            .ok_or(Error::NotFound("view"))?;
        Audit::new(actor, "ticket_view.deleted", "ticket_view", &v.id)
            .client(p.tenant.client())
            .before(json!({"name": v.name, "query": v.query}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// A page of a built-in view, narrowed further by `filter` (its statuses are replaced by
    /// the active ones).
    pub async fn builtin_view(
        &self,
        actor: &Actor,
        view: BuiltinView,
        filter: &TicketFilter,
        page: Page,
    ) -> Result<ViewPage> {
        let g = self.grant(actor, Action::TicketsRead)?;
        let mut f = filter.clone();
        f.statuses = ACTIVE.map(String::from).to_vec();
        if let Some(me) = Self::requester_scope(actor) {
            f.requester = Some(me);
            // End users never see endpoints, nor which of their tickets are linked to one.
            f.endpoint = None;
        }
        let now = Timestamp::now();
        match view {
            BuiltinView::ProviderAfterHours => {
                f.owner = Some(Party::Provider);
                let clients = self.clients_visible(actor, &g).await?;
                let mut closed = Vec::new();
                for c in clients {
                    if let Some(a) = self.agreement_at(c, now).await? {
                        if !a.calendar(Party::Internal).is_open(now) {
                            closed.push(c);
                        }
                    }
                }
                let mut r = self.store.read().await?;
                let page = store::list_in_clients(&mut r, &g, &f, &closed, page).await?;
                Ok(ViewPage {
                    page,
                    truncated: false,
                })
            }
            BuiltinView::BreachingSoon => {
                let (tickets, total) = {
                    let mut r = self.store.read().await?;
                    store::first_matching(&mut r, &g, &f, BREACH_SCAN_LIMIT).await?
                };
                let mut agreements: HashMap<ClientId, Option<std::sync::Arc<CompiledAgreement>>> =
                    HashMap::new();
                let mut due: Vec<(Timestamp, Ticket)> = Vec::new();
                for t in tickets {
                    if t.clock.last().is_some_and(|s| s.paused) {
                        continue;
                    }
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        agreements.entry(t.client_id)
                    {
                        e.insert(self.agreement_at(t.client_id, now).await?);
                    }
                    let Some(Some(a)) = agreements.get(&t.client_id) else {
                        continue;
                    };
                    let cals = Calendars {
                        internal: a.calendar(Party::Internal),
                        provider: a.calendar(Party::Provider),
                    };
                    let s = sla_state(
                        &t.clock,
                        t.first_response_at,
                        t.resolved_at,
                        t.priority.default_targets(),
                        now,
                        &cals,
                    );
                    let soonest = [s.response_due, s.resolution_due]
                        .into_iter()
                        .flatten()
                        .filter(|d| d.0 > now.0 && d.0 <= now.0 + BREACH_WINDOW_SECS * 1_000_000)
                        .min();
                    if let Some(d) = soonest {
                        due.push((d, t));
                    }
                }
                due.sort_by_key(|(d, t)| (d.0, t.number));
                let from = (page.offset as usize).min(due.len());
                let to = (from + page.limit as usize).min(due.len());
                Ok(ViewPage {
                    page: Paged {
                        has_more: to < due.len(),
                        items: due.drain(from..to).map(|(_, t)| t).collect(),
                    },
                    truncated: total > i64::from(BREACH_SCAN_LIMIT),
                })
            }
        }
    }

    /// The clients the grant reaches (for the after-hours view).
    async fn clients_visible(
        &self,
        actor: &Actor,
        g: &tandem_domain::authz::Grant,
    ) -> Result<Vec<ClientId>> {
        if let Some(c) = actor.principal.as_ref().and_then(|p| p.tenant.client()) {
            return Ok(g.check_client(c).is_ok().then_some(c).into_iter().collect());
        }
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .list_clients(&Actor::system(), Page::new(offset, Page::MAX_LIMIT))
                .await?;
            offset += page.items.len() as u32;
            out.extend(
                page.items
                    .into_iter()
                    .map(|c| c.id)
                    .filter(|c| g.check_client(*c).is_ok()),
            );
            if !page.has_more {
                return Ok(out);
            }
        }
    }
}
