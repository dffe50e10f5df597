//! Ticket data beyond the core workflow (issue #5, part 2): watchers, tags, related-ticket
//! links, merging duplicates, SLA policies per client and priority, the SLA sweeper that
//! records warning and breach events, and who should hear about a ticket event.
//!
//! Every change goes through one `Write` with its audit entry and a ticket history event.

use crate::tickets::{event, invalid};
use crate::{Actor, App, Audit, Error, Result};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use tandem_domain::authz::{authorize, Action, Grant};
use tandem_domain::directory::User;
use tandem_domain::fleet::Presence;
use tandem_domain::helpdesk::{Calendars, ClockSegment, Priority, Status, Ticket};
use tandem_domain::scope::Party;
use tandem_domain::ticket_data::{
    due_sla_events, merge_refusal, normalize_tag, policy_for, MergeCase, SlaEvent, SlaPolicy,
};
use tandem_domain::{ClientId, EndpointId, Role, TicketId, Timestamp, UserId};
use tandem_store::ticket_data as store;
use tandem_store::tickets as tickets_store;

/// A person watching a ticket.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Watcher {
    /// Who.
    pub user_id: UserId,
    /// Their name.
    pub label: String,
}

/// Another ticket, named.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketRef {
    /// Its id.
    pub id: TicketId,
    /// Its number within the client.
    pub number: i64,
    /// Its subject.
    pub subject: String,
    /// Its status.
    pub status: Status,
}

/// An endpoint linked to a ticket (issue #5, "linked endpoints").
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketEndpoint {
    /// The endpoint.
    pub id: EndpointId,
    /// Its host name.
    pub hostname: String,
    /// Online, offline or never seen, now.
    pub presence: Presence,
    /// Whether it was retired after it was linked.
    pub retired: bool,
}

/// Watchers, tags, related tickets and merges of one ticket.
#[derive(Clone, Debug, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketData {
    /// Who watches it (they hear about it like the requester and assignee do).
    pub watchers: Vec<Watcher>,
    /// Its tags, normalised, alphabetically.
    pub tags: Vec<String>,
    /// Related tickets (the link shows on both), those the caller may see.
    pub links: Vec<TicketRef>,
    /// The ticket this one was merged into.
    pub merged_into: Option<TicketRef>,
    /// The duplicates merged into this one.
    pub merged_from: Vec<TicketRef>,
    /// The endpoints it is about, by host name; only for the IT sides who may read this
    /// client's endpoints (end users never see endpoints: always empty for them).
    pub endpoints: Vec<TicketEndpoint>,
}

/// Why someone hears about a ticket event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AudienceReason {
    /// They asked for it.
    Requester,
    /// They are working it.
    Assignee,
    /// They watch it.
    Watcher,
}

/// One person who should hear about a ticket event.
#[derive(Clone, Debug, Serialize)]
pub struct AudienceMember {
    /// The person (with their email, name and time zone for the message).
    pub user: User,
    /// Why they hear of it (the first reason, in the order requester, assignee, watcher).
    pub reason: AudienceReason,
}

/// One row of a client's SLA policy table.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlaPolicyRow {
    /// The targets in force for the priority.
    pub policy: SlaPolicy,
    /// Whether the client set them (false: today's defaults).
    pub custom: bool,
}

/// A page of SLA events and the cursor for the next call.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlaEventPage {
    /// Events after the cursor, oldest first.
    pub items: Vec<SlaEvent>,
    /// Pass this as `after` next time (unchanged when there was nothing new).
    pub next_after: i64,
}

impl App {
    /// The watchers, tags, links and merges of a ticket the actor reads (links only to
    /// tickets the actor may also see).
    pub(crate) async fn ticket_data(
        &self,
        actor: &Actor,
        g: &Grant,
        t: &Ticket,
    ) -> Result<TicketData> {
        let mut r = self.store.read().await?;
        let watcher_ids = store::watchers(&mut r, t.id).await?;
        let tags = store::tags(&mut r, t.id).await?;
        let link_ids = store::links(&mut r, t.id).await?;
        let into = store::merged_into(&mut r, t.id).await?;
        let from = store::merged_from(&mut r, t.id).await?;
        let req = Self::requester_scope(actor);
        let mut refs: [Vec<TicketRef>; 3] = Default::default();
        for (i, ids) in [link_ids, into.into_iter().collect(), from]
            .into_iter()
            .enumerate()
        {
            for id in ids {
                if let Some(o) = tickets_store::get_ticket(&mut r, g, req, id).await? {
                    refs[i].push(TicketRef {
                        id: o.id,
                        number: o.number,
                        subject: o.subject,
                        status: o.status,
                    });
                }
            }
        }
        let [links, mut into_refs, merged_from] = refs;
        let merged_into = into_refs.pop();
        drop(r);
        let endpoints = self.ticket_endpoints(actor, t).await?;
        let mut watchers = Vec::new();
        for id in watcher_ids {
            let label = match self.get_user(&Actor::system(), id).await {
                Ok(u) => u.display_name,
                Err(_) => "(unknown)".into(),
            };
            watchers.push(Watcher { user_id: id, label });
        }
        Ok(TicketData {
            watchers,
            tags,
            links,
            merged_into,
            merged_from,
            endpoints,
        })
    }

    /// The endpoints linked to a ticket the actor reads, if they may see this client's
    /// endpoints (never for end users).
    pub(crate) async fn ticket_endpoints(
        &self,
        actor: &Actor,
        t: &Ticket,
    ) -> Result<Vec<TicketEndpoint>> {
        if Self::requester_scope(actor).is_some() {
            return Ok(Vec::new());
        }
        let may_see = self
            .grant(actor, Action::EndpointsRead)
            .is_ok_and(|g| g.check_client(t.client_id).is_ok());
        if !may_see {
            return Ok(Vec::new());
        }
        let rows = {
            let mut r = self.store.read().await?;
            store::ticket_endpoints(&mut r, t).await?
        };
        let now = Timestamp::now();
        let grace = self.policy.offline_after_seconds;
        Ok(rows
            .into_iter()
            .map(|e| TicketEndpoint {
                id: e.id,
                hostname: e.hostname,
                presence: Presence::at(e.last_seen_at, now, grace),
                retired: e.retired,
            })
            .collect())
    }

    /// The host names of `ids`, each an endpoint of `client` in service (not retired), in
    /// order; a 422 on `endpoint_id` naming the first that is not. The caller read the
    /// client's ticket through a grant, and may read the client's endpoints.
    pub(crate) async fn endpoints_to_link(
        &self,
        actor: &Actor,
        client: ClientId,
        ids: &[EndpointId],
    ) -> Result<Vec<(EndpointId, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if Self::requester_scope(actor).is_some() {
            return Err(invalid(
                "endpoint_ids",
                "end users do not link endpoints; describe the device in the ticket instead",
            ));
        }
        let g = self.grant(actor, Action::EndpointsRead)?;
        g.check_client(client)
            .map_err(|_| invalid("endpoint_id", "choose an endpoint of this ticket's client"))?;
        let mut out: Vec<(EndpointId, String)> = Vec::new();
        let mut r = self.store.read().await?;
        for id in ids {
            if out.iter().any(|(e, _)| e == id) {
                continue;
            }
            match store::endpoint_of_client(&mut r, client, *id).await? {
                Some((hostname, false)) => out.push((*id, hostname)),
                Some((_, true)) => {
                    return Err(invalid(
                        "endpoint_id",
                        "this endpoint was retired; choose an endpoint in service",
                    ))
                }
                None => {
                    return Err(invalid(
                        "endpoint_id",
                        "choose an endpoint of this ticket's client",
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Links (`linked`) an endpoint of the ticket's client to a ticket, or unlinks it. The
    /// endpoint must be in service (not retired) to be linked; unlinking takes any. Nothing
    /// is written when nothing changes. Answers the ticket's endpoints.
    pub async fn link_ticket_endpoint(
        &self,
        actor: &Actor,
        id: TicketId,
        endpoint: EndpointId,
        linked: bool,
    ) -> Result<Vec<TicketEndpoint>> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        let t = self.ticket_for(&g, actor, id).await?;
        let now = Timestamp::now();
        if linked {
            let found = self
                .endpoints_to_link(actor, t.client_id, &[endpoint])
                .await?;
            let mut w = self.store.write().await?;
            for (e, hostname) in found {
                write_endpoint_link(&mut w, actor, &t, e, &hostname, now).await?;
            }
            w.commit().await?;
        } else {
            // Unlinking needs the right to read the client's endpoints too.
            self.grant(actor, Action::EndpointsRead)?
                .check_client(t.client_id)
                .map_err(|_| Error::NotFound("ticket"))?;
            let mut w = self.store.write().await?;
            if store::remove_ticket_endpoint(&mut w, t.id, endpoint).await? {
                let hostname = store::endpoint_of_client(&mut w, t.client_id, endpoint)
                    .await?
                    .map_or_else(|| endpoint.to_string(), |(h, _)| h);
                record_endpoint_change(&mut w, actor, &t, endpoint, &hostname, now, false).await?;
            }
            w.commit().await?;
        }
        self.ticket_endpoints(actor, &t).await
    }

    /// Whether `u` may hear about `t` at all: an active person of the ticket's client or of
    /// the provider whose role may read this client's tickets now.
    fn may_follow(u: &User, t: &Ticket) -> bool {
        if u.disabled || (u.client_id.is_some() && u.client_id != Some(t.client_id)) {
            return false;
        }
        authorize(
            &crate::principal_of(u),
            Action::TicketsRead,
            Timestamp::now(),
        )
        .is_ok_and(|g| g.check_client(t.client_id).is_ok())
    }

    /// Starts (`watching`) or stops someone watching a ticket. Without `user`, the caller.
    /// Anyone who may read the ticket (except end users and auditors) may watch it themselves; adding or
    /// removing someone else takes the right to work tickets. A watcher is a person of the
    /// ticket's client or of the provider who may read its tickets.
    pub async fn watch_ticket(
        &self,
        actor: &Actor,
        id: TicketId,
        user: Option<UserId>,
        watching: bool,
    ) -> Result<TicketData> {
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let target = user.unwrap_or(p.user_id);
        // Auditors only look, and end users follow what they asked for.
        let action = if target == p.user_id && !matches!(p.role, Role::EndUser | Role::Auditor) {
            Action::TicketsRead
        } else {
            Action::TicketsWrite
        };
        let g = self.grant(actor, action)?;
        let t = self.ticket_for(&g, actor, id).await?;
        if watching {
            let u = self.get_user(&Actor::system(), target).await.ok();
            if !u.as_ref().is_some_and(|u| Self::may_follow(u, &t)) {
                return Err(invalid(
                    "user_id",
                    "choose a person of this client, or of the provider, who may see its tickets",
                ));
            }
        }
        let now = Timestamp::now();
        let mut w = self.store.write().await?;
        let changed = if watching {
            store::add_watcher(&mut w, &t, target, now).await?
        } else {
            store::remove_watcher(&mut w, t.id, target).await?
        };
        if changed {
            let verb = if watching {
                "watch_added"
            } else {
                "watch_removed"
            };
            Audit::new(actor, &format!("ticket.{verb}"), "ticket", t.id)
                .client(Some(t.client_id))
                .after(json!({"number": t.number, "user_id": target}))
                .write(&mut w)
                .await?;
            w.commit().await?;
        }
        self.ticket_data(actor, &g, &t).await
    }

    /// Adds and removes tags (each normalised: `VPN outage` is `vpn-outage`).
    pub async fn tag_ticket(
        &self,
        actor: &Actor,
        id: TicketId,
        add: &[String],
        remove: &[String],
    ) -> Result<Vec<String>> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        let t = self.ticket_for(&g, actor, id).await?;
        let mut errors = Vec::new();
        let mut norm = |list: &[String]| {
            list.iter()
                .filter_map(|s| normalize_tag(s).map_err(|e| errors.push(e)).ok())
                .collect::<Vec<_>>()
        };
        let (add, remove) = (norm(add), norm(remove));
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        if add.is_empty() && remove.is_empty() {
            return Err(invalid("tag", "name a tag to add or remove"));
        }
        let mut w = self.store.write().await?;
        let existing = store::tags(&mut w, t.id).await?;
        if existing.len() + add.len() > 30 {
            return Err(invalid("tag", "a ticket carries at most 30 tags"));
        }
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for tag in &add {
            if store::add_tag(&mut w, &t, tag).await? {
                added.push(tag.clone());
            }
        }
        for tag in &remove {
            if store::remove_tag(&mut w, t.id, tag).await? {
                removed.push(tag.clone());
            }
        }
        if !added.is_empty() || !removed.is_empty() {
            Audit::new(actor, "ticket.tagged", "ticket", t.id)
                .client(Some(t.client_id))
                .after(json!({"number": t.number, "added": added, "removed": removed}))
                .write(&mut w)
                .await?;
        }
        let now_tags = store::tags(&mut w, t.id).await?;
        w.commit().await?;
        Ok(now_tags)
    }

    /// The tags in use among the tickets the actor may see, with their counts.
    pub async fn ticket_tags(&self, actor: &Actor) -> Result<Vec<(String, i64)>> {
        let g = self.grant(actor, Action::TicketsRead)?;
        if Self::requester_scope(actor).is_some() {
            return Err(Error::Forbidden(tandem_domain::authz::Denied(
                "end users see the tags of their own tickets on the tickets",
            )));
        }
        let mut r = self.store.read().await?;
        Ok(store::tags_in_use(&mut r, &g).await?)
    }

    /// Links two tickets of one client as related (`linked`), or unlinks them. The link
    /// shows on both, with an event on both.
    pub async fn link_tickets(
        &self,
        actor: &Actor,
        id: TicketId,
        other: TicketId,
        linked: bool,
    ) -> Result<TicketData> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        let t = self.ticket_for(&g, actor, id).await?;
        let o = self
            .ticket_for(&g, actor, other)
            .await
            .map_err(|_| invalid("ticket_id", "choose a ticket you can see"))?;
        if o.id == t.id {
            return Err(invalid("ticket_id", "a ticket is not related to itself"));
        }
        if o.client_id != t.client_id {
            return Err(invalid(
                "ticket_id",
                "only tickets of the same client can be linked",
            ));
        }
        let now = Timestamp::now();
        let mut w = self.store.write().await?;
        let changed = if linked {
            store::add_link(&mut w, &t, &o, now).await?
        } else {
            store::remove_link(&mut w, t.id, o.id).await?
        };
        if changed {
            let word = if linked {
                "Related to"
            } else {
                "No longer related to"
            };
            for (x, y) in [(&t, &o), (&o, &t)] {
                let body = format!("{word} #{} {}", y.number, y.subject);
                tickets_store::insert_event(&mut w, x, &event(actor, now, "link", body, false))
                    .await?;
            }
            let verb = if linked { "linked" } else { "unlinked" };
            Audit::new(actor, &format!("ticket.{verb}"), "ticket", t.id)
                .client(Some(t.client_id))
                .after(json!({"number": t.number, "other": o.id, "other_number": o.number}))
                .write(&mut w)
                .await?;
            w.commit().await?;
        }
        self.ticket_data(actor, &g, &t).await
    }

    /// Merges a duplicate (`source`) into `target`: the source is closed as merged, both get
    /// an event, and the source's requester and watchers become watchers of the target.
    /// Refused across clients, into itself, twice, and as a chain.
    pub async fn merge_ticket(
        &self,
        actor: &Actor,
        source: TicketId,
        target: TicketId,
    ) -> Result<Ticket> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        let mut s = self.ticket_for(&g, actor, source).await?;
        let t = self
            .ticket_for(&g, actor, target)
            .await
            .map_err(|_| invalid("into", "choose a ticket you can see"))?;
        let (source_merged, target_merged, source_has_merged_in) = {
            let mut r = self.store.read().await?;
            (
                store::merged_into(&mut r, s.id).await?.is_some(),
                store::merged_into(&mut r, t.id).await?.is_some(),
                !store::merged_from(&mut r, s.id).await?.is_empty(),
            )
        };
        if let Some(why) = merge_refusal(MergeCase {
            same_ticket: s.id == t.id,
            same_client: s.client_id == t.client_id,
            source_merged,
            target_merged,
            source_has_merged_in,
        }) {
            return Err(Error::Conflict(why.into()));
        }
        let now = Timestamp::now();
        let before = s.status;
        let mut w = self.store.write().await?;
        if !store::insert_merge(&mut w, &s, &t, now).await? {
            return Err(Error::Conflict("this ticket was already merged".into()));
        }
        // The target's chain is checked again inside the write: a merge of the target racing
        // this one would otherwise build a chain.
        if store::merged_into(&mut w, t.id).await?.is_some() {
            return Err(Error::Conflict(
                "the target was itself merged; merge into the ticket it was merged into".into(),
            ));
        }
        s.status = Status::Closed;
        s.closed_at = Some(now);
        s.updated_at = now;
        if s.clock.last().is_none_or(|c| !c.paused) {
            s.clock.push(ClockSegment {
                from: now,
                owner: s.owner,
                paused: true,
            });
        }
        tickets_store::update_ticket(&mut w, &s).await?;
        let mut carried = Vec::new();
        let mut people: Vec<UserId> = s.requester_id.into_iter().collect();
        people.extend(store::watchers(&mut w, s.id).await?);
        for u in people {
            if Some(u) != t.requester_id && store::add_watcher(&mut w, &t, u, now).await? {
                carried.push(u);
            }
        }
        tickets_store::insert_event(
            &mut w,
            &s,
            &event(
                actor,
                now,
                "merged",
                format!("Merged into #{} {} as a duplicate", t.number, t.subject),
                true,
            ),
        )
        .await?;
        tickets_store::insert_event(
            &mut w,
            &t,
            &event(
                actor,
                now,
                "merged",
                format!("#{} {} was merged into this ticket", s.number, s.subject),
                true,
            ),
        )
        .await?;
        Audit::new(actor, "ticket.merged", "ticket", s.id)
            .client(Some(s.client_id))
            .before(json!({"status": before}))
            .after(json!({"number": s.number, "status": s.status, "into": t.id, "into_number": t.number, "watchers_added": carried}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(s)
    }

    /// The id of the ticket numbered `number` (`#12`) of the same client as `near`, for
    /// forms that name tickets by number; only tickets the actor may see.
    pub async fn ticket_id_by_number(
        &self,
        actor: &Actor,
        near: TicketId,
        number: &str,
    ) -> Result<TicketId> {
        let g = self.grant(actor, Action::TicketsRead)?;
        let client = self.ticket_for(&g, actor, near).await?.client_id;
        let n: i64 = number
            .trim()
            .trim_start_matches('#')
            .parse()
            .map_err(|_| invalid("number", "give the other ticket's number, like 12"))?;
        let found = {
            let mut r = self.store.read().await?;
            store::ticket_by_number(&mut r, &g, client, n).await?
        };
        match found {
            Some(t) => Ok(self.ticket_for(&g, actor, t.id).await?.id),
            None => Err(invalid(
                "number",
                format!("this client has no ticket #{n} you can see"),
            )),
        }
    }

    /// Who should hear about an event on a ticket: its requester, its assignee and its
    /// watchers, each once, who may still see the ticket (active, and allowed to read this
    /// client's tickets). For an internal note (`public == false`) end users are left out:
    /// they never see internal notes. This is Tandem's own read (no grant needed), for the
    /// notification and mail senders; `except` (usually the author) is left out too.
    pub async fn ticket_audience(
        &self,
        ticket: TicketId,
        public: bool,
        except: Option<UserId>,
    ) -> Result<Vec<AudienceMember>> {
        let sys = Actor::system();
        let g = self.grant(&sys, Action::TicketsRead)?;
        let t = self.ticket_for(&g, &sys, ticket).await?;
        let watchers = {
            let mut r = self.store.read().await?;
            store::watchers(&mut r, t.id).await?
        };
        let mut candidates: Vec<(UserId, AudienceReason)> = Vec::new();
        candidates.extend(t.requester_id.map(|u| (u, AudienceReason::Requester)));
        candidates.extend(t.assignee_id.map(|u| (u, AudienceReason::Assignee)));
        candidates.extend(watchers.into_iter().map(|u| (u, AudienceReason::Watcher)));
        let mut out: Vec<AudienceMember> = Vec::new();
        for (id, reason) in candidates {
            if Some(id) == except || out.iter().any(|m| m.user.id == id) {
                continue;
            }
            let Ok(user) = self.get_user(&sys, id).await else {
                continue;
            };
            if !Self::may_follow(&user, &t) || (!public && user.role == Role::EndUser) {
                continue;
            }
            out.push(AudienceMember { user, reason });
        }
        Ok(out)
    }

    // ---- SLA policies --------------------------------------------------------------------

    /// The policy in force for a client and priority (Tandem's own read).
    pub(crate) async fn sla_policy_for(
        &self,
        client: ClientId,
        priority: Priority,
    ) -> Result<SlaPolicy> {
        let g = self.grant(&Actor::system(), Action::ScopeRead)?;
        let mut r = self.store.read().await?;
        let own = store::sla_policies(&mut r, &g, client).await?;
        Ok(policy_for(&own, priority))
    }

    /// A client's SLA policy, one row per priority (defaults where it set none).
    pub async fn sla_policies(&self, actor: &Actor, client: ClientId) -> Result<Vec<SlaPolicyRow>> {
        let g = self.grant(actor, Action::ScopeRead)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let own = {
            let mut r = self.store.read().await?;
            store::sla_policies(&mut r, &g, client).await?
        };
        Ok(SlaPolicy::defaults()
            .into_iter()
            .map(|d| match own.iter().find(|p| p.priority == d.priority) {
                Some(p) => SlaPolicyRow {
                    policy: *p,
                    custom: true,
                },
                None => SlaPolicyRow {
                    policy: d,
                    custom: false,
                },
            })
            .collect())
    }

    /// Sets a client's targets for one priority. Like the scope agreement, it is changed by
    /// those who may sign it: the provider's admins and the client's IT admins.
    pub async fn set_sla_policy(
        &self,
        actor: &Actor,
        client: ClientId,
        policy: SlaPolicy,
    ) -> Result<Vec<SlaPolicyRow>> {
        let g = self.grant(actor, Action::ScopeWrite)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        policy.validate().map_err(Error::Invalid)?;
        let before = self.sla_policy_for(client, policy.priority).await?;
        let mut w = self.store.write().await?;
        store::upsert_sla_policy(
            &mut w,
            client,
            &policy,
            actor.principal.as_ref().map(|p| p.user_id),
            Timestamp::now(),
        )
        .await?;
        Audit::new(actor, "sla_policy.set", "client", client)
            .client(Some(client))
            .before(json!(before))
            .after(json!(policy))
            .write(&mut w)
            .await?;
        w.commit().await?;
        self.sla_policies(actor, client).await
    }

    /// Drops a client's own targets for one priority: the default applies again.
    pub async fn reset_sla_policy(
        &self,
        actor: &Actor,
        client: ClientId,
        priority: Priority,
    ) -> Result<Vec<SlaPolicyRow>> {
        let g = self.grant(actor, Action::ScopeWrite)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let before = self.sla_policy_for(client, priority).await?;
        let mut w = self.store.write().await?;
        if store::delete_sla_policy(&mut w, client, priority).await? {
            Audit::new(actor, "sla_policy.reset", "client", client)
                .client(Some(client))
                .before(json!(before))
                .after(json!(SlaPolicy::default_for(priority)))
                .write(&mut w)
                .await?;
            w.commit().await?;
        }
        self.sla_policies(actor, client).await
    }

    // ---- SLA sweeper ---------------------------------------------------------------------

    /// One pass of the SLA sweeper at `now`: records each `sla_warning` and `sla_breach`
    /// a ticket has reached, once per ticket and clock (first response, resolution), as a
    /// ticket history event and an audit entry by Tandem. Safe with several servers on one
    /// database: each event is claimed by a unique key inside the write that records it.
    /// Returns how many events this pass recorded.
    pub async fn sweep_sla(&self, now: Timestamp) -> Result<usize> {
        let sys = sweeper_actor();
        let policies = {
            let mut r = self.store.read().await?;
            store::all_sla_policies(&mut r).await?
        };
        let mut by_client: HashMap<ClientId, Vec<SlaPolicy>> = HashMap::new();
        for (c, p) in policies {
            by_client.entry(c).or_default().push(p);
        }
        let mut agreements = HashMap::new();
        let mut recorded = 0;
        let mut after = None;
        let since = now.plus_seconds(-86_400);
        loop {
            let batch = {
                let mut r = self.store.read().await?;
                store::sweep_candidates(&mut r, since, after, 500).await?
            };
            let Some(last) = batch.last() else { break };
            after = Some(last.id);
            for t in batch {
                if let std::collections::hash_map::Entry::Vacant(e) = agreements.entry(t.client_id)
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
                let policy = policy_for(
                    by_client.get(&t.client_id).map_or(&[][..], |v| v),
                    t.priority,
                );
                let due = due_sla_events(
                    &t.clock,
                    t.first_response_at,
                    t.resolved_at,
                    &policy,
                    now,
                    &cals,
                );
                if due.is_empty() {
                    continue;
                }
                let already = {
                    let mut r = self.store.read().await?;
                    store::recorded(&mut r, t.id).await?
                };
                for (clock, kind) in due {
                    if already.contains(&(clock, kind)) {
                        continue;
                    }
                    let mut w = self.store.write().await?;
                    if store::claim_sla_event(&mut w, &t, clock, kind, now)
                        .await?
                        .is_none()
                    {
                        continue;
                    }
                    let target = match clock {
                        tandem_domain::ticket_data::SlaClock::FirstResponse => {
                            policy.response_minutes
                        }
                        tandem_domain::ticket_data::SlaClock::Resolution => {
                            policy.resolution_minutes
                        }
                    };
                    let body = match kind {
                        tandem_domain::ticket_data::SlaEventKind::SlaWarning => format!(
                            "{}% of the {} target ({target} business minutes) is used; {} owns it",
                            policy.warn_percent,
                            clock.label(),
                            t.owner.label()
                        ),
                        tandem_domain::ticket_data::SlaEventKind::SlaBreach => format!(
                            "The {} target ({target} business minutes) was breached; {} owns it",
                            clock.label(),
                            t.owner.label()
                        ),
                    };
                    tickets_store::insert_event(
                        &mut w,
                        &t,
                        &event(&sys, now, kind.as_str(), body.clone(), false),
                    )
                    .await?;
                    crate::notify::queue_event(
                        &mut w,
                        crate::notify::sla_event(
                            &t,
                            kind == tandem_domain::ticket_data::SlaEventKind::SlaBreach,
                            clock.as_str(),
                            now,
                            &body,
                        ),
                    )
                    .await?;
                    Audit::new(&sys, &format!("ticket.{}", kind.as_str()), "ticket", t.id)
                        .client(Some(t.client_id))
                        .after(json!({"number": t.number, "clock": clock, "owner": t.owner, "priority": t.priority}))
                        .write(&mut w)
                        .await?;
                    w.commit().await?;
                    recorded += 1;
                }
            }
        }
        Ok(recorded)
    }

    /// The SLA events recorded after sequence number `after`, oldest first, that the actor
    /// may see — the feed for notifications and mail: keep the returned `next_after` and
    /// pass it next time. Sequence numbers follow commit order across servers, so a reader
    /// never skips an event that commits later.
    pub async fn sla_events_since(
        &self,
        actor: &Actor,
        after: i64,
        limit: u32,
    ) -> Result<SlaEventPage> {
        let g = self.grant(actor, Action::TicketsRead)?;
        if Self::requester_scope(actor).is_some() {
            return Err(Error::Forbidden(tandem_domain::authz::Denied(
                "end users follow their own tickets, not the SLA feed",
            )));
        }
        let mut r = self.store.read().await?;
        let items = store::sla_events_since(&mut r, &g, after, limit).await?;
        let next_after = items.last().map_or(after, |e| e.seq);
        Ok(SlaEventPage { items, next_after })
    }

    /// Runs [`App::sweep_sla`] every `every` until the process ends (started by
    /// `tandem serve`). A failed pass is logged and retried at the next tick.
    pub fn start_sla_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let app = self.clone();
        tokio::spawn(tandem_store::writing_as("sla", async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match app.sweep_sla(Timestamp::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "SLA sweeper recorded events"),
                    Err(e) => tracing::warn!(error = %e, "SLA sweep failed"),
                }
            }
        }))
    }
}

/// The SLA sweeper acts as Tandem itself.
fn sweeper_actor() -> Actor {
    let mut a = Actor::system();
    a.reference = Some("sla-sweeper".into());
    a
}

/// Links an endpoint (already checked: of the ticket's client, in service) to a ticket
/// inside `w`, with its internal history entry and its audit entry; false (and nothing
/// written) if it was linked already. Shared by linking, opening a ticket and alerts.
pub(crate) async fn write_endpoint_link(
    w: &mut tandem_store::Write,
    actor: &Actor,
    t: &Ticket,
    endpoint: EndpointId,
    hostname: &str,
    now: Timestamp,
) -> Result<bool> {
    let by = actor.principal.as_ref().map(|p| p.user_id);
    if !store::add_ticket_endpoint(w, t, endpoint, by, now).await? {
        return Ok(false);
    }
    record_endpoint_change(w, actor, t, endpoint, hostname, now, true).await?;
    Ok(true)
}

/// The internal history entry (end users never see endpoints) and the audit entry of an
/// endpoint linked to (`linked`) or unlinked from a ticket, inside `w`.
async fn record_endpoint_change(
    w: &mut tandem_store::Write,
    actor: &Actor,
    t: &Ticket,
    endpoint: EndpointId,
    hostname: &str,
    now: Timestamp,
    linked: bool,
) -> Result<()> {
    let (word, verb) = if linked {
        ("Linked", "linked")
    } else {
        ("Unlinked", "unlinked")
    };
    tickets_store::insert_event(
        w,
        t,
        &event(
            actor,
            now,
            "endpoint",
            format!("{word} endpoint {hostname}"),
            false,
        ),
    )
    .await?;
    Audit::new(actor, &format!("ticket.endpoint_{verb}"), "ticket", t.id)
        .client(Some(t.client_id))
        .after(json!({"number": t.number, "endpoint_id": endpoint, "hostname": hostname}))
        .write(w)
        .await?;
    Ok(())
}
