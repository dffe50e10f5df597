//! Alerts open and update tickets according to policy (issue #6): "create ticket on alert",
//! "auto-resolve the ticket when the alert resets".
//!
//! The rule ([`AlertTicketRule`]) is set on each check of a monitoring policy (so a lower
//! level can override it by the check's key, like any parameter) and on each integration
//! token (for the alerts its sender posts); it travels with [`crate::RaiseAlert`]. It is read
//! when an alert fires:
//!
//! - `none` (default): no ticket.
//! - `open`: the firing alert opens a ticket — unless a ticket an earlier alert of the same
//!   client and deduplication key opened is still being worked (neither resolved nor closed):
//!   then the new alert is linked to that ticket, which gets a history entry instead. The
//!   ticket is opened like every ticket: routed by the scope agreement in force (the alert's
//!   domain → the owning side, and its assignee hint), its SLA clock in that side's hours,
//!   its priority from the rule's impact and urgency or, by default, from the severity. It has
//!   no requester and no human creator (`created_by` is empty; its history and audit entries
//!   name the part of Tandem that opened it).
//! - `open_and_resolve`: as `open`, and when the alert resolves (cleared automatically or
//!   resolved by a person) the ticket is resolved too, unless another open alert still holds
//!   it or it is already resolved or closed. The choice is kept on the alert at firing
//!   (`ticket_auto_resolve`), so changing the rule later does not change open alerts.
//!
//! While an alert stays open, a change in what it reports (summary or severity) is added to
//! its ticket's history; a resolution always is. Ticket entries about alerts are internal
//! notes (kind `alert`): the IT sides see them, end users do not. Everything happens in the
//! alert's own write transaction, with an audit entry per ticket change.

use crate::tickets::{event, write_opened, write_priority};
use crate::{system_grant, Actor, App, Audit, Result};
use serde::Serialize;
use serde_json::json;
use tandem_domain::authz::Action;
use tandem_domain::helpdesk::{ClockSegment, Priority, Status, Ticket};
use tandem_domain::mail::MailEvent;
use tandem_domain::monitoring::{Alert, AlertTicketRule, TicketMode};
use tandem_domain::{TicketId, Timestamp};
use tandem_store::monitoring as alerts_store;
use tandem_store::tickets as store;
use tandem_store::Write;

/// The ticket an alert opened or updates, as its page and the API show it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertTicket {
    /// The ticket.
    pub id: TicketId,
    /// Its number within the client.
    pub number: i64,
    /// Its subject.
    pub subject: String,
    /// Where it stands.
    pub status: Status,
    /// Its priority.
    pub priority: Priority,
    /// The side that owns it.
    pub owner: tandem_domain::scope::Party,
}

/// The routing of a new alert, handed to its ticket: the assignee hint and the reason.
pub(crate) struct TicketRoute {
    pub(crate) assignee_hint: Option<String>,
    pub(crate) reason: String,
}

async fn ticket_unscoped(w: &mut Write, id: TicketId) -> Result<Option<Ticket>> {
    Ok(store::get_ticket(w, &system_grant(Action::TicketsRead), None, id).await?)
}

/// Adds an internal `alert` entry to a ticket's history, with its audit entry.
async fn note_on_ticket(
    w: &mut Write,
    actor: &Actor,
    t: &mut Ticket,
    a: &Alert,
    what: &str,
    body: String,
    now: Timestamp,
) -> Result<()> {
    t.updated_at = now;
    store::update_ticket(w, t).await?;
    store::insert_event(w, t, &event(actor, now, "alert", body, false)).await?;
    Audit::new(actor, "ticket.alert_noted", "ticket", t.id)
        .client(Some(t.client_id))
        .after(
            json!({"number": t.number, "alert_id": a.id, "dedup_key": a.dedup_key, "event": what}),
        )
        .write(w)
        .await?;
    Ok(())
}

impl App {
    /// A new alert (just inserted in `w`) under `rule`: links it to the ticket still being
    /// worked for its key, or opens one. Does nothing for `none`.
    pub(crate) async fn ticket_for_new_alert(
        &self,
        w: &mut Write,
        actor: &Actor,
        a: &mut Alert,
        rule: AlertTicketRule,
        route: TicketRoute,
        now: Timestamp,
    ) -> Result<()> {
        if rule.is_none() {
            return Ok(());
        }
        a.ticket_auto_resolve = rule.resolves();
        let found = alerts_store::open_ticket_of_key(w, a.client_id, &a.dedup_key).await?;
        let existing = match found {
            Some(id) => ticket_unscoped(w, id).await?,
            None => None,
        };
        let (t, body) = if let Some(mut t) = existing {
            let body = format!(
                "Alert fired again ({}): {} — {}\nLinked to this ticket, which is still being worked, instead of opening another.",
                a.severity.as_str(),
                a.title,
                if a.summary.is_empty() { &a.title } else { &a.summary },
            );
            note_on_ticket(w, actor, &mut t, a, "fired_again", body, now).await?;
            let line = format!(
                "Linked to ticket #{} ({}), still open from an earlier alert with this key",
                t.number,
                t.status.as_str()
            );
            (t, line)
        } else {
            let (impact, urgency) = rule.impact_urgency(a.severity);
            let site_id = match a.endpoint_id {
                Some(e) => alerts_store::endpoint_place(w, e).await?.map(|p| p.1),
                None => None,
            };
            let number = store::next_number(w, a.client_id).await?;
            let mut description = String::new();
            if !a.summary.is_empty() {
                description.push_str(&a.summary);
                description.push_str("\n\n");
            }
            description.push_str(&format!(
                "Opened by {} for the alert “{}” (source {}, key {}): its rule is to {}.",
                actor_name(actor),
                a.title,
                a.source,
                a.dedup_key,
                rule.mode.label()
            ));
            let t = Ticket {
                id: TicketId::new(),
                client_id: a.client_id,
                number,
                site_id,
                requester_id: None,
                subject: a.title.clone(),
                description,
                domain: a.domain.clone(),
                owner: a.owner,
                assignee_id: None,
                assignee_hint: route.assignee_hint,
                impact,
                urgency,
                priority: Priority::from_matrix(impact, urgency),
                status: Status::New,
                created_by: None,
                created_at: now,
                updated_at: now,
                first_response_at: None,
                resolved_at: None,
                closed_at: None,
                clock: vec![ClockSegment {
                    from: now,
                    owner: a.owner,
                    paused: false,
                }],
            };
            write_opened(
                w,
                actor,
                &t,
                now,
                format!(
                    "Opened for an alert; routed to {} — {}",
                    t.owner.label(),
                    route.reason
                ),
                None,
            )
            .await?;
            self.mail_ticket_event(w, actor, &t, MailEvent::TicketOpened, &t.description)
                .await?;
            let line = format!(
                "Opened ticket #{} ({}) for {}",
                t.number,
                t.priority.as_str(),
                t.owner.label()
            );
            (t, line)
        };
        // Issue #5: the ticket is about the alert's endpoint (if it is in service and of the
        // ticket's client); linked once, whichever alert of the key came first.
        if let Some(e) = a.endpoint_id {
            if let Some((client, _, hostname)) = alerts_store::endpoint_place(w, e).await? {
                if client == t.client_id {
                    crate::ticket_data::write_endpoint_link(w, actor, &t, e, &hostname, now)
                        .await?;
                }
            }
        }
        a.ticket_id = Some(t.id);
        alerts_store::update_alert(w, a).await?;
        crate::alerts::alert_transitioned(w, a, actor, now, "ticket", body, false).await?;
        Ok(())
    }

    /// An open alert that reports something new (summary or severity): its ticket hears of it.
    pub(crate) async fn ticket_on_alert_update(
        &self,
        w: &mut Write,
        actor: &Actor,
        a: &Alert,
        now: Timestamp,
    ) -> Result<()> {
        let Some(id) = a.ticket_id else {
            return Ok(());
        };
        let Some(mut t) = ticket_unscoped(w, id).await? else {
            return Ok(());
        };
        let body = format!(
            "Alert still firing ({}): {}",
            a.severity.as_str(),
            a.summary
        );
        note_on_ticket(w, actor, &mut t, a, "updated", body, now).await?;
        // A worse severity raises the ticket to at least that severity's priority (never
        // lowers it: people may have raised it by hand, or the rule named a higher one).
        let (impact, urgency) = AlertTicketRule::new(TicketMode::Open).impact_urgency(a.severity);
        if !t.status.is_done() && Priority::from_matrix(impact, urgency) < t.priority {
            let why = format!("the alert became {}", a.severity.as_str());
            write_priority(w, actor, &mut t, impact, urgency, now, Some(&why)).await?;
        }
        Ok(())
    }

    /// An alert just resolved (`how`: in words): its ticket hears of it and, when the alert's
    /// rule says so and nothing else holds the ticket open, is resolved.
    pub(crate) async fn ticket_on_alert_resolved(
        &self,
        w: &mut Write,
        actor: &Actor,
        a: &Alert,
        how: &str,
        now: Timestamp,
    ) -> Result<()> {
        let Some(id) = a.ticket_id else {
            return Ok(());
        };
        let Some(mut t) = ticket_unscoped(w, id).await? else {
            return Ok(());
        };
        let body = format!("Alert “{}” resolved: {how}", a.title);
        note_on_ticket(w, actor, &mut t, a, "resolved", body, now).await?;
        if !a.ticket_auto_resolve {
            return Ok(());
        }
        let line = if t.status.is_done() {
            format!(
                "Ticket #{} is already {}; left as it is",
                t.number,
                t.status.as_str()
            )
        } else if alerts_store::other_open_alerts_of_ticket(w, t.id, a.id).await? > 0 {
            format!(
                "Ticket #{} stays open: another open alert is linked to it",
                t.number
            )
        } else {
            self.write_status(
                w,
                actor,
                &mut t,
                Status::Resolved,
                now,
                Some("its alert resolved, and its rule is to resolve the ticket with it"),
            )
            .await?;
            format!("Resolved ticket #{} with the alert", t.number)
        };
        crate::alerts::alert_transitioned(w, a, actor, now, "ticket", line, false).await
    }

    /// The ticket of an alert, for someone who may read it (else `None`).
    pub(crate) async fn alert_ticket(
        &self,
        actor: &Actor,
        a: &Alert,
    ) -> Result<Option<AlertTicket>> {
        let Some(id) = a.ticket_id else {
            return Ok(None);
        };
        let Ok(g) = self.grant(actor, Action::TicketsRead) else {
            return Ok(None);
        };
        let mut r = self.store.read().await?;
        let t = store::get_ticket(&mut r, &g, Self::requester_scope(actor), id).await?;
        Ok(t.map(summary))
    }

    /// The tickets of a page of alerts that the actor may read, by id (the alerts list's
    /// ticket column). Empty for those who may not read tickets.
    pub async fn alert_tickets_of(
        &self,
        actor: &Actor,
        alerts: &[Alert],
    ) -> Result<std::collections::HashMap<TicketId, AlertTicket>> {
        let mut ids: Vec<TicketId> = alerts.iter().filter_map(|a| a.ticket_id).collect();
        ids.sort_unstable_by_key(|i| i.to_string());
        ids.dedup();
        let Ok(g) = self.grant(actor, Action::TicketsRead) else {
            return Ok(Default::default());
        };
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let mut r = self.store.read().await?;
        let found = store::tickets_by_ids(&mut r, &g, Self::requester_scope(actor), &ids).await?;
        Ok(found.into_iter().map(|t| (t.id, summary(t))).collect())
    }
}

/// What an alert shows of its ticket.
fn summary(t: Ticket) -> AlertTicket {
    AlertTicket {
        id: t.id,
        number: t.number,
        subject: t.subject,
        status: t.status,
        priority: t.priority,
        owner: t.owner,
    }
}

fn actor_name(actor: &Actor) -> String {
    match &actor.principal {
        Some(p) => p.label.clone(),
        None => actor.agent.clone().unwrap_or_else(|| "Tandem".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use tandem_domain::helpdesk::{Impact, Priority, Urgency};
    use tandem_domain::monitoring::{AlertTicketRule, Severity, TicketMode};

    #[test]
    fn priority_comes_from_the_severity_unless_the_rule_names_it() {
        let r = AlertTicketRule::new(TicketMode::Open);
        let p = |r: AlertTicketRule, s| {
            let (i, u) = r.impact_urgency(s);
            Priority::from_matrix(i, u)
        };
        assert_eq!(p(r, Severity::Critical), Priority::P2);
        assert_eq!(p(r, Severity::Warning), Priority::P3);
        assert_eq!(p(r, Severity::Info), Priority::P4);
        let r = AlertTicketRule {
            impact: Some(Impact::Organisation),
            urgency: Some(Urgency::Critical),
            ..r
        };
        assert_eq!(p(r, Severity::Info), Priority::P1);
        assert!(AlertTicketRule::default().is_none());
        assert!(AlertTicketRule::new(TicketMode::OpenAndResolve).resolves());
    }
}
