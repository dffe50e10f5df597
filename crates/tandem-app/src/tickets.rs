//! Tickets: one ticket both sides work from. At creation the scope agreement in force routes
//! it (domain → owning side, whom to assign); the SLA clock counts business time in the
//! owning side's calendar and follows every handoff. Every change is audited in the same
//! transaction, and recorded in the ticket's own history.

use crate::{Actor, App, Audit, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_domain::authz::{Action, Grant};
use tandem_domain::helpdesk::{
    sla_state, Calendars, ClockSegment, Impact, Priority, SlaState, Status, Ticket, TicketEvent,
    Urgency,
};
use tandem_domain::mail::MailEvent;
use tandem_domain::scope::{CompiledAgreement, Party};
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, EndpointId, Role, Side, SiteId, TicketId, Timestamp, UserId};
use tandem_store::tickets::{self as store, TicketFilter};
use tandem_store::{Page, Paged};

/// A ticket to open.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// The client (people of a client may leave it out: their own).
    #[serde(default)]
    pub client_id: Option<ClientId>,
    /// The site concerned.
    #[serde(default)]
    pub site_id: Option<SiteId>,
    /// Who asked; end users are always their own requester.
    #[serde(default)]
    pub requester_id: Option<UserId>,
    /// One line.
    pub subject: String,
    /// What happened.
    #[serde(default)]
    pub description: String,
    /// The scope agreement's domain (default `helpdesk`).
    #[serde(default)]
    pub domain: Option<String>,
    /// How widely it is felt (default: one person).
    #[serde(default)]
    pub impact: Option<Impact>,
    /// How soon it hurts (default: normal).
    #[serde(default)]
    pub urgency: Option<Urgency>,
    /// Endpoints of the client the ticket is about (IT sides only; end users may not pass
    /// any). Each must be in service.
    #[serde(default)]
    pub endpoint_ids: Vec<EndpointId>,
}

/// A ticket with its history and where it stands against its targets.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketView {
    /// The ticket.
    pub ticket: Ticket,
    /// Its history, oldest first (internal notes only for the IT sides).
    pub events: Vec<TicketEvent>,
    /// Its SLA state now; absent when no scope agreement is in force to count hours in.
    pub sla: Option<SlaState>,
    /// Its files (issue #5), oldest first; files on internal notes only for the IT sides.
    pub attachments: Vec<tandem_domain::attachments::Attachment>,
    /// tickets2: watchers, tags, related tickets and merges.
    #[serde(flatten)]
    pub data: crate::ticket_data::TicketData,
    /// The alerts that opened or updated it (issue #6), newest first; only for those who
    /// may read alerts.
    pub alerts: Vec<tandem_domain::monitoring::Alert>,
}

pub(crate) fn party_of_side(s: Side) -> Option<Party> {
    match s {
        Side::Provider => Some(Party::Provider),
        Side::Client => Some(Party::Internal),
        _ => None,
    }
}

/// Writes a new impact and urgency (and so priority) inside `w`: the history entry (with
/// `why`, if given) and the audit entry.
pub(crate) async fn write_priority(
    w: &mut tandem_store::Write,
    actor: &Actor,
    t: &mut Ticket,
    impact: Impact,
    urgency: Urgency,
    now: Timestamp,
    why: Option<&str>,
) -> Result<()> {
    let before = (t.impact, t.urgency, t.priority);
    t.impact = impact;
    t.urgency = urgency;
    t.priority = Priority::from_matrix(impact, urgency);
    t.updated_at = now;
    store::update_ticket(w, t).await?;
    let mut body = format!(
        "Priority: {} → {} (impact {}, urgency {})",
        before.2.as_str(),
        t.priority.as_str(),
        impact.as_str(),
        urgency.as_str()
    );
    if let Some(why) = why {
        body.push_str(&format!(" — {why}"));
    }
    store::insert_event(w, t, &event(actor, now, "priority", body, false)).await?;
    Audit::new(actor, "ticket.priority_changed", "ticket", t.id)
        .client(Some(t.client_id))
        .before(json!({"impact": before.0, "urgency": before.1, "priority": before.2}))
        .after(json!({"impact": impact, "urgency": urgency, "priority": t.priority, "reason": why}))
        .write(w)
        .await?;
    Ok(())
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![Invalid::new(field, message)])
}

impl App {
    /// The requester narrowing for end users (they see only what they asked).
    pub(crate) fn requester_scope(actor: &Actor) -> Option<UserId> {
        actor
            .principal
            .as_ref()
            .filter(|p| p.role == Role::EndUser)
            .map(|p| p.user_id)
    }

    /// The agreement in force for a client at `at`, compiled (Tandem's own read).
    pub(crate) async fn agreement_at(
        &self,
        client: ClientId,
        at: Timestamp,
    ) -> Result<Option<std::sync::Arc<CompiledAgreement>>> {
        let f = self.compiled_in_force(&Actor::system(), client, at).await?;
        Ok(f.and_then(|f| f.compiled.ok()))
    }

    /// Opens a ticket, routed by the scope agreement in force.
    pub async fn create_ticket(&self, actor: &Actor, new: NewTicket) -> Result<Ticket> {
        let g = self.grant(actor, Action::TicketsCreate)?;
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let client = match (new.client_id, p.tenant.client()) {
            (Some(c), _) | (None, Some(c)) => c,
            (None, None) => return Err(invalid("client_id", "choose the client")),
        };
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let mut errors = Vec::new();
        let subject = new.subject.trim().to_string();
        if subject.is_empty() || subject.chars().count() > 200 {
            errors.push(Invalid::new(
                "subject",
                "write one line of 1 to 200 characters",
            ));
        }
        if new.description.len() > 64 * 1024 {
            errors.push(Invalid::new("description", "is longer than 64 KiB"));
        }
        let requester = if p.role == Role::EndUser {
            Some(p.user_id)
        } else {
            new.requester_id
        };
        if let Some(r) = requester.filter(|r| *r != p.user_id) {
            let u = self.get_user(actor, r).await.ok();
            if u.is_none_or(|u| u.client_id != Some(client)) {
                errors.push(Invalid::new(
                    "requester_id",
                    "choose a person of this client",
                ));
            }
        }
        if let Some(site) = new.site_id {
            let sites = self
                .list_sites(actor, Some(client), Page::new(0, 1000))
                .await?;
            if !sites.items.iter().any(|s| s.id == site) {
                errors.push(Invalid::new("site_id", "choose one of this client's sites"));
            }
        }
        let domain = new.domain.clone().unwrap_or_else(|| "helpdesk".into());
        let domains = self.list_domains(&Actor::system(), false).await?;
        if !domains.iter().any(|d| d.key == domain) {
            errors.push(Invalid::new("domain", "choose a domain of the catalog"));
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let endpoints = self
            .endpoints_to_link(actor, client, &new.endpoint_ids)
            .await?;
        let now = Timestamp::now();
        // Who owns it is the agreement's answer; without an agreement in force, the
        // client's own IT does (and the ticket says so).
        let (owner, hint, why) = match self.route(&Actor::system(), client, &domain, now).await {
            Ok(a) => (
                a.decision.owner,
                a.decision.assignee.clone(),
                a.decision.reason.clone(),
            ),
            Err(_) => (
                Party::Internal,
                None,
                "no scope agreement in force names an owner; the client's own IT owns it".into(),
            ),
        };
        let (impact, urgency) = (
            new.impact.unwrap_or(Impact::Person),
            new.urgency.unwrap_or(Urgency::Normal),
        );
        let mut w = self.store.write().await?;
        let number = store::next_number(&mut w, client).await?;
        let t = Ticket {
            id: TicketId::new(),
            client_id: client,
            number,
            site_id: new.site_id,
            requester_id: requester,
            subject,
            description: new.description.trim().to_string(),
            domain,
            owner,
            assignee_id: None,
            assignee_hint: hint,
            impact,
            urgency,
            priority: Priority::from_matrix(impact, urgency),
            status: Status::New,
            created_by: Some(p.user_id),
            created_at: now,
            updated_at: now,
            first_response_at: None,
            resolved_at: None,
            closed_at: None,
            clock: vec![ClockSegment {
                from: now,
                owner,
                paused: false,
            }],
        };
        write_opened(
            &mut w,
            actor,
            &t,
            now,
            format!("Opened; routed to {} — {why}", owner.label()),
            None,
        )
        .await?;
        for (e, hostname) in &endpoints {
            crate::ticket_data::write_endpoint_link(&mut w, actor, &t, *e, hostname, now).await?;
        }
        // Mail (issue #5): the acknowledgement, queued in this same transaction.
        self.mail_ticket_event(&mut w, actor, &t, MailEvent::TicketOpened, &t.description)
            .await?;
        w.commit().await?;
        Ok(t)
    }

    /// The domains a ticket can be about (the catalog), for anyone who may open tickets.
    pub async fn ticket_domains(
        &self,
        actor: &Actor,
    ) -> Result<Vec<tandem_domain::scope::ItDomain>> {
        self.grant(actor, Action::TicketsCreate)?;
        self.list_domains(&Actor::system(), false).await
    }

    /// Tickets the actor may see (end users: their own).
    pub async fn list_tickets(
        &self,
        actor: &Actor,
        filter: &TicketFilter,
        page: Page,
    ) -> Result<Paged<Ticket>> {
        let g = self.grant(actor, Action::TicketsRead)?;
        let mut f = filter.clone();
        if let Some(me) = Self::requester_scope(actor) {
            f.requester = Some(me);
            // End users never see endpoints, nor which of their tickets are linked to one.
            f.endpoint = None;
        }
        let mut r = self.store.read().await?;
        Ok(store::list_tickets(&mut r, &g, &f, page).await?)
    }

    /// One ticket with its history and SLA state.
    pub async fn get_ticket(&self, actor: &Actor, id: TicketId) -> Result<TicketView> {
        let g = self.grant(actor, Action::TicketsRead)?;
        let t = self.ticket_for(&g, actor, id).await?;
        let it_side = actor
            .principal
            .as_ref()
            .is_some_and(|p| p.role != Role::EndUser);
        let (events, attachments) = {
            let mut r = self.store.read().await?;
            (
                store::events(&mut r, &t, it_side).await?,
                tandem_store::attachments::list_for_ticket(&mut r, t.id, it_side).await?,
            )
        };
        let now = Timestamp::now();
        // tickets2: the client's SLA policy for the priority (or the default), and the
        // watchers, tags, links and merges.
        let policy = self.sla_policy_for(t.client_id, t.priority).await?;
        let data = self.ticket_data(actor, &g, &t).await?;
        let sla = self.agreement_at(t.client_id, now).await?.map(|a| {
            let cals = Calendars {
                internal: a.calendar(Party::Internal),
                provider: a.calendar(Party::Provider),
            };
            sla_state(
                &t.clock,
                t.first_response_at,
                t.resolved_at,
                policy.targets(),
                now,
                &cals,
            )
        });
        // Alerts (issue #6): shown to whoever may read alerts, as far as their grant reaches.
        let alerts = match self.grant(actor, Action::AlertsRead) {
            Ok(ag) => {
                let mut r = self.store.read().await?;
                tandem_store::monitoring::alerts_of_ticket(&mut r, &ag, t.id).await?
            }
            Err(_) => Vec::new(),
        };
        Ok(TicketView {
            ticket: t,
            events,
            sla,
            attachments,
            data,
            alerts,
        })
    }

    pub(crate) async fn ticket_for(
        &self,
        g: &Grant,
        actor: &Actor,
        id: TicketId,
    ) -> Result<Ticket> {
        let mut r = self.store.read().await?;
        store::get_ticket(&mut r, g, Self::requester_scope(actor), id)
            .await?
            .ok_or(Error::NotFound("ticket"))
    }

    /// A public reply (the requester and both IT sides see it) or, with `internal`, a note for
    /// the IT sides only. The owning side's first public reply stops the first-response clock.
    pub async fn reply(
        &self,
        actor: &Actor,
        id: TicketId,
        body: &str,
        internal: bool,
    ) -> Result<()> {
        let mut t = self.ticket_for_reply(actor, id, internal).await?;
        let body = body.trim();
        if body.is_empty() || body.len() > 64 * 1024 {
            return Err(invalid("body", "write a reply of up to 64 KiB"));
        }
        let mut w = self.store.write().await?;
        self.write_reply(&mut w, actor, &mut t, body, internal, "")
            .await?;
        w.commit().await?;
        Ok(())
    }

    /// The ticket a reply (or, with `internal`, a note) goes on, after the authorization and
    /// the closed-ticket check.
    pub(crate) async fn ticket_for_reply(
        &self,
        actor: &Actor,
        id: TicketId,
        internal: bool,
    ) -> Result<Ticket> {
        let action = if internal {
            Action::TicketsWrite
        } else {
            Action::TicketsCreate
        };
        let g = self.grant(actor, action)?;
        let t = self.ticket_for(&g, actor, id).await?;
        if t.status == Status::Closed {
            return Err(Error::Conflict(
                "the ticket is closed; open a new one".into(),
            ));
        }
        Ok(t)
    }

    /// Writes a reply or note (already validated) inside `w`: the ticket's clock and status,
    /// the history entry, the audit entry and, for a public reply, its mail (`mail_extra` is
    /// added to the mailed text, such as the names of attached files). Returns the entry's id.
    pub(crate) async fn write_reply(
        &self,
        w: &mut tandem_store::Write,
        actor: &Actor,
        t: &mut Ticket,
        body: &str,
        internal: bool,
        mail_extra: &str,
    ) -> Result<tandem_domain::EventId> {
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let now = Timestamp::now();
        let from_owner = party_of_side(p.side()) == Some(t.owner) && p.role != Role::EndUser;
        if !internal && from_owner && t.first_response_at.is_none() {
            t.first_response_at = Some(now);
        }
        if t.status == Status::New && from_owner {
            t.status = Status::Open;
        }
        t.updated_at = now;
        let kind = if internal { "note" } else { "reply" };
        store::update_ticket(w, t).await?;
        let e = event(actor, now, kind, body.to_string(), !internal);
        store::insert_event(w, t, &e).await?;
        Audit::new(actor, &format!("ticket.{kind}"), "ticket", t.id)
            .client(Some(t.client_id))
            .after(json!({"number": t.number, "chars": body.chars().count()}))
            .write(w)
            .await?;
        // Mail (issue #5): public replies only; internal notes are never mailed.
        if !internal {
            let text = format!("{body}{mail_extra}");
            self.mail_ticket_event(w, actor, t, MailEvent::TicketReply, &text)
                .await?;
        }
        Ok(e.id)
    }

    /// Moves a ticket through the workflow; the clock pauses while waiting on the requester
    /// and stops when resolved.
    pub async fn set_ticket_status(
        &self,
        actor: &Actor,
        id: TicketId,
        to: Status,
    ) -> Result<Ticket> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        let mut t = self.ticket_for(&g, actor, id).await?;
        if !t.status.may_become(to) {
            return Err(Error::Conflict(format!(
                "a {} ticket cannot become {}",
                t.status.as_str(),
                to.as_str()
            )));
        }
        let mut w = self.store.write().await?;
        self.write_status(&mut w, actor, &mut t, to, Timestamp::now(), None)
            .await?;
        w.commit().await?;
        Ok(t)
    }

    /// Writes a status change (already checked with `may_become`) inside `w`: the clock, the
    /// history entry (with `why`, if given), the audit entry and, for a resolution, its mail.
    pub(crate) async fn write_status(
        &self,
        w: &mut tandem_store::Write,
        actor: &Actor,
        t: &mut Ticket,
        to: Status,
        now: Timestamp,
        why: Option<&str>,
    ) -> Result<()> {
        let before = t.status;
        t.status = to;
        t.updated_at = now;
        match to {
            Status::Resolved => t.resolved_at = Some(now),
            Status::Closed => t.closed_at = Some(now),
            Status::Open if before == Status::Resolved => t.resolved_at = None,
            _ => {}
        }
        let paused = !to.clock_runs();
        if t.clock.last().is_none_or(|s| s.paused != paused) {
            t.clock.push(ClockSegment {
                from: now,
                owner: t.owner,
                paused,
            });
        }
        store::update_ticket(w, t).await?;
        let mut summary = format!("Status: {} → {}", before.as_str(), to.as_str());
        if let Some(why) = why {
            summary.push_str(&format!(" — {why}"));
        }
        store::insert_event(w, t, &event(actor, now, "status", summary, true)).await?;
        Audit::new(actor, "ticket.status_changed", "ticket", t.id)
            .client(Some(t.client_id))
            .before(json!({"status": before}))
            .after(json!({"status": to}))
            .write(w)
            .await?;
        // Mail (issue #5).
        if to == Status::Resolved {
            self.mail_ticket_event(w, actor, t, MailEvent::TicketResolved, why.unwrap_or(""))
                .await?;
        }
        Ok(())
    }

    /// Re-rates a ticket's impact and urgency; its priority follows from the matrix, and its
    /// SLA targets from the new priority (counted from the ticket's opening, as before). The
    /// IT sides only; not on a resolved or closed ticket. Nothing is written when nothing
    /// changes.
    pub async fn set_ticket_priority(
        &self,
        actor: &Actor,
        id: TicketId,
        impact: Impact,
        urgency: Urgency,
        why: Option<&str>,
    ) -> Result<Ticket> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        if Self::requester_scope(actor).is_some() {
            return Err(Error::Forbidden(tandem_domain::authz::Denied(
                "the IT sides set a ticket's priority",
            )));
        }
        let mut t = self.ticket_for(&g, actor, id).await?;
        let why = why.map(str::trim).filter(|w| !w.is_empty());
        if why.is_some_and(|w| w.chars().count() > 500) {
            return Err(invalid("reason", "say why in up to 500 characters"));
        }
        if t.status.is_done() {
            return Err(Error::Conflict(
                "reopen the ticket before changing its priority".into(),
            ));
        }
        if (t.impact, t.urgency) == (impact, urgency) {
            return Ok(t);
        }
        let mut w = self.store.write().await?;
        write_priority(
            &mut w,
            actor,
            &mut t,
            impact,
            urgency,
            Timestamp::now(),
            why,
        )
        .await?;
        w.commit().await?;
        Ok(t)
    }

    /// Hands a ticket to the other side, with the reason; the SLA clock follows it into the
    /// new owner's business hours. The assignee is cleared (the other side picks it up).
    pub async fn hand_off(
        &self,
        actor: &Actor,
        id: TicketId,
        to: Party,
        reason: &str,
    ) -> Result<Ticket> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        let mut t = self.ticket_for(&g, actor, id).await?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(invalid("reason", "say why, in up to 500 characters"));
        }
        if t.owner == to {
            return Err(Error::Conflict(format!(
                "{} already owns this ticket",
                to.label()
            )));
        }
        if t.status.is_done() {
            return Err(Error::Conflict(
                "reopen the ticket before handing it over".into(),
            ));
        }
        let now = Timestamp::now();
        let from = t.owner;
        t.owner = to;
        t.assignee_id = None;
        t.updated_at = now;
        let paused = t.clock.last().is_some_and(|s| s.paused);
        t.clock.push(ClockSegment {
            from: now,
            owner: to,
            paused,
        });
        let mut w = self.store.write().await?;
        store::update_ticket(&mut w, &t).await?;
        let body = format!("Handed from {} to {}: {reason}", from.label(), to.label());
        store::insert_event(&mut w, &t, &event(actor, now, "handoff", body, false)).await?;
        Audit::new(actor, "ticket.handed_off", "ticket", t.id)
            .client(Some(t.client_id))
            .before(json!({"owner": from}))
            .after(json!({"owner": to, "reason": reason}))
            .write(&mut w)
            .await?;
        // Mail (issue #5): to the receiving side.
        self.mail_ticket_event(&mut w, actor, &t, MailEvent::TicketHandedOff, reason)
            .await?;
        w.commit().await?;
        Ok(t)
    }

    /// Assigns a ticket to a person of the owning side who may work it (or unassigns).
    pub async fn assign_ticket(
        &self,
        actor: &Actor,
        id: TicketId,
        assignee: Option<UserId>,
    ) -> Result<Ticket> {
        let g = self.grant(actor, Action::TicketsWrite)?;
        let mut t = self.ticket_for(&g, actor, id).await?;
        if let Some(a) = assignee {
            let u = self
                .get_user(actor, a)
                .await
                .map_err(|_| invalid("assignee_id", "choose a person you can see"))?;
            let principal = crate::principal_of(&u);
            let may =
                tandem_domain::authz::authorize(&principal, Action::TicketsWrite, Timestamp::now())
                    .is_ok_and(|g| g.check_client(t.client_id).is_ok());
            if !may || party_of_side(u.role.side()) != Some(t.owner) {
                return Err(invalid(
                    "assignee_id",
                    format!(
                        "choose someone of {} who may work this client's tickets",
                        t.owner.label()
                    ),
                ));
            }
        }
        let now = Timestamp::now();
        let before = t.assignee_id;
        t.assignee_id = assignee;
        t.updated_at = now;
        let mut w = self.store.write().await?;
        store::update_ticket(&mut w, &t).await?;
        let body = if assignee.is_some() {
            "Assigned".to_string()
        } else {
            "Unassigned".to_string()
        };
        store::insert_event(&mut w, &t, &event(actor, now, "assigned", body, false)).await?;
        Audit::new(actor, "ticket.assigned", "ticket", t.id)
            .client(Some(t.client_id))
            .before(json!({"assignee_id": before}))
            .after(json!({"assignee_id": assignee}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(t)
    }
}

/// Stores a new ticket with its "opened" history entry (at `at`) and its `ticket.opened`
/// audit entry, inside `w`: the one creation path, shared by opening and importing
/// (`import` describes where an imported ticket came from).
pub(crate) async fn write_opened(
    w: &mut tandem_store::Write,
    actor: &Actor,
    t: &Ticket,
    at: Timestamp,
    history: String,
    import: Option<serde_json::Value>,
) -> Result<()> {
    store::insert_ticket(w, t).await?;
    store::insert_event(w, t, &event(actor, at, "opened", history, true)).await?;
    let mut after = json!({"number": t.number, "subject": t.subject, "domain": t.domain, "owner": t.owner, "priority": t.priority});
    if let Some(i) = import {
        after["imported"] = i;
    }
    Audit::new(actor, "ticket.opened", "ticket", t.id)
        .client(Some(t.client_id))
        .after(after)
        .write(w)
        .await?;
    Ok(())
}

pub(crate) fn event(
    actor: &Actor,
    at: Timestamp,
    kind: &str,
    body: String,
    public: bool,
) -> TicketEvent {
    let p = actor.principal.as_ref();
    TicketEvent {
        id: tandem_domain::EventId::new(),
        at,
        actor_id: p.map(|p| p.user_id),
        // Tandem acting as one of its parts (monitoring, an integration) is named so.
        actor_label: p.map_or_else(
            || actor.agent.clone().unwrap_or_else(|| "Tandem".to_string()),
            |p| p.label.clone(),
        ),
        actor_side: p.map_or(Side::System, |p| p.side()),
        kind: kind.into(),
        body,
        public,
    }
}
