//! Mail: what a ticket change mails to whom (queued in the outbox in the same transaction as
//! the change), the sender's claims on the outbox, inbound mail turned into tickets and
//! replies, each client's support address, per-person preferences, and sign-in links.
//!
//! Outbound mail is on only when the server is given mail settings ([`App::set_mail`]).
//! Without them nothing is queued and sign-in links are not offered.

use crate::credentials::{new_secret, sha256_hex};
use crate::identity::{as_user, mfa_required};
use crate::{principal_of, Actor, App, Audit, Error, Result, SignIn, SignInNext};
use askama::Template;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tandem_domain::authz::{authorize, Action, Grant};
use tandem_domain::directory::User;
use tandem_domain::helpdesk::Ticket;
use tandem_domain::mail::{
    normalize_address, reply_address, reply_token, strip_quoted, MailEvent, REPLY_ABOVE,
};
use tandem_domain::scope::Party;
use tandem_domain::signin::ThrottlePolicy;
use tandem_domain::validate::Invalid;
use tandem_domain::{ClientId, Role, Timestamp};
use tandem_store::auth::{self as store_auth, Session};
use tandem_store::mail::{self as store, OutboxMail};
use tandem_store::{Page, Paged, Write};

/// How Tandem sends mail, set once at start-up.
#[derive(Clone, Debug)]
pub struct MailSettings {
    /// The `From` of every message, such as `Tandem <tandem@help.example.test>`.
    pub from: String,
    /// The domain of reply addresses (`support+t-TOKEN@<this>`) and message ids.
    pub support_domain: String,
    /// Where people reach Tandem, for links in messages.
    pub public_url: String,
}

/// A sign-in link lasts this long.
pub const SIGNIN_LINK_SECONDS: i64 = 15 * 60;
/// Delivery attempts before a message is marked failed (and shown to provider admins).
pub const MAX_ATTEMPTS: i64 = 6;
/// How long a sender's claim on a message lasts before another sender may retry it.
pub const CLAIM_SECONDS: i64 = 120;

/// The wait before attempt `n + 1` after `n` failed ones: 30 s doubling, at most an hour.
pub fn retry_delay_seconds(failed_attempts: i64) -> i64 {
    let n = failed_attempts.clamp(0, 20) as u32;
    (30i64 << n.min(7)).min(3600)
}

/// An outbox message as provider admins see it (never its body).
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutboxEntry {
    /// Its id.
    pub id: String,
    /// The client it concerns (`null`: provider-level).
    pub client_id: Option<ClientId>,
    /// The ticket it is about.
    pub ticket_id: Option<tandem_domain::TicketId>,
    /// What caused it.
    pub event: String,
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Timestamp,
    /// When it was delivered to the mail server.
    pub sent_at: Option<Timestamp>,
}

impl From<OutboxMail> for OutboxEntry {
    fn from(m: OutboxMail) -> Self {
        OutboxEntry {
            id: m.id,
            client_id: m.client_id,
            ticket_id: m.ticket_id,
            event: m.event,
            to: m.to_address,
            subject: m.subject,
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error,
            created_at: m.created_at,
            next_attempt_at: m.next_attempt_at,
            sent_at: m.sent_at,
        }
    }
}

/// One mail preference of a person.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MailPreference {
    /// The event.
    pub event: MailEvent,
    /// Whether it mails them.
    pub enabled: bool,
    /// What it means, for people.
    #[serde(default, skip_deserializing)]
    pub label: String,
}

/// What Tandem did with an inbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Opened ticket number `n` of the client.
    Opened(i64),
    /// Added a public reply to ticket number `n`.
    Replied(i64),
    /// Refused; the reason goes back to the sending server.
    Refused(String),
}

#[derive(Template)]
#[template(path = "mail/ticket.txt")]
struct TicketMailText<'a> {
    marker: &'a str,
    headline: &'a str,
    text: &'a str,
    number: i64,
    subject: &'a str,
    status: &'a str,
    owner: &'a str,
    link: &'a str,
    account: &'a str,
    reason: &'a str,
}

#[derive(Template)]
#[template(path = "mail/signin_link.txt")]
struct SignInLinkText<'a> {
    name: &'a str,
    link: &'a str,
    minutes: i64,
}

/// Who a ticket event concerns, before preferences and the rules about end users.
///
/// The requester hears about their ticket (acknowledgement, public replies, resolution);
/// the assignee hears about public replies; a handoff goes to the receiving side's
/// assignee or, when nobody is assigned (a handoff clears the assignee), that side's
/// contacts: the client's IT admins for internal IT, the provider admins for the provider.
/// This is the one place that decides it; watchers plug in here.
pub async fn mail_recipients(c: &mut Write, t: &Ticket, event: MailEvent) -> Result<Vec<User>> {
    let mut ids = Vec::new();
    match event {
        MailEvent::TicketOpened | MailEvent::TicketResolved => ids.extend(t.requester_id),
        MailEvent::TicketReply => {
            ids.extend(t.requester_id);
            ids.extend(t.assignee_id);
        }
        MailEvent::TicketHandedOff => ids.extend(t.assignee_id),
    }
    // The ticket's watchers hear about what its requester hears about (tickets2): replies and
    // resolution; who may watch is checked when a watcher is added.
    if matches!(event, MailEvent::TicketReply | MailEvent::TicketResolved) {
        ids.extend(tandem_store::ticket_data::watchers(c, t.id).await?);
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    let mut users = store::users_by_id(c, &ids).await?;
    if event == MailEvent::TicketHandedOff && t.assignee_id.is_none() {
        users = match t.owner {
            Party::Internal => {
                store::contacts(c, Some(t.client_id), &[Role::ClientItAdmin]).await?
            }
            Party::Provider => store::contacts(c, None, &[Role::ProviderAdmin]).await?,
        };
    }
    users.dedup_by_key(|u| u.id);
    Ok(users)
}

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid(vec![Invalid::new(field, message)])
}

fn domain_of(from: &str) -> Option<String> {
    let inner = from
        .rsplit_once('<')
        .map_or(from, |(_, r)| r.trim_end_matches('>'));
    normalize_address(inner).and_then(|a| a.split_once('@').map(|(_, d)| d.to_string()))
}

impl MailSettings {
    /// Checks the settings: a parseable `From` and a support domain.
    pub fn new(from: &str, support_domain: Option<&str>, public_url: &str) -> Result<Self> {
        let domain = match support_domain {
            Some(d) => d.trim().to_ascii_lowercase(),
            None => domain_of(from).ok_or_else(|| {
                invalid(
                    "mail_from",
                    "write an address such as Tandem <tandem@help.example.test>",
                )
            })?,
        };
        if domain.is_empty() || domain.contains('@') || domain.contains(' ') {
            return Err(invalid(
                "mail_support_domain",
                "write a domain such as help.example.test",
            ));
        }
        if domain_of(from).is_none() {
            return Err(invalid(
                "mail_from",
                "write an address such as Tandem <tandem@help.example.test>",
            ));
        }
        Ok(MailSettings {
            from: from.trim().to_string(),
            support_domain: domain,
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }
}

impl App {
    /// Turns outbound mail on with these settings (once; later calls are ignored and
    /// answer `false`).
    pub fn set_mail(&self, s: MailSettings) -> bool {
        self.mail.set(s).is_ok()
    }

    /// The mail settings, when mail is on.
    pub fn mail_settings(&self) -> Option<&MailSettings> {
        self.mail.get()
    }

    /// Queues the mail a ticket change sends, inside the change's own write. Called by the
    /// ticket use cases for public events only: internal notes never reach this.
    pub(crate) async fn mail_ticket_event(
        &self,
        w: &mut Write,
        actor: &Actor,
        t: &Ticket,
        event: MailEvent,
        text: &str,
    ) -> Result<()> {
        let Some(cfg) = self.mail.get() else {
            return Ok(());
        };
        let token = match store::ticket_token(w, t.id).await? {
            Some(tok) => tok,
            None => {
                let tok = new_token();
                store::insert_ticket_token(w, t.id, t.client_id, &tok).await?;
                tok
            }
        };
        let actor_id = actor.principal.as_ref().map(|p| p.user_id);
        let now = Timestamp::now();
        let thread = format!("ticket-{}@{}", t.id, cfg.support_domain);
        for u in mail_recipients(w, t, event).await? {
            // People are not told about what they did themselves, except the
            // acknowledgement of a ticket they opened.
            if u.disabled || (Some(u.id) == actor_id && event != MailEvent::TicketOpened) {
                continue;
            }
            // End users never see handoffs (their reasons are for the IT sides).
            if u.role == Role::EndUser && event == MailEvent::TicketHandedOff {
                continue;
            }
            let Some(to) = normalize_address(&u.email) else {
                continue;
            };
            let prefs = store::preferences(w, u.id).await?;
            if prefs.iter().any(|(e, on)| e == event.as_str() && !on) {
                continue;
            }
            let (headline, reason, subject) = match event {
                MailEvent::TicketOpened => (
                    format!(
                        "We have your request. It is ticket #{}; we will answer here.",
                        t.number
                    ),
                    "you asked for this ticket",
                    format!("[#{}] Received: {}", t.number, t.subject),
                ),
                MailEvent::TicketReply => (
                    format!("{} replied:", actor_name(actor)),
                    "you asked for this ticket or work on it",
                    format!("Re: [#{}] {}", t.number, t.subject),
                ),
                MailEvent::TicketResolved => (
                    format!(
                        "Ticket #{} is resolved. Reply to this message if it is not.",
                        t.number
                    ),
                    "you asked for this ticket",
                    format!("[#{}] Resolved: {}", t.number, t.subject),
                ),
                MailEvent::TicketHandedOff => (
                    format!(
                        "{} handed ticket #{} to {}:",
                        actor_name(actor),
                        t.number,
                        t.owner.label()
                    ),
                    "your side now owns this ticket",
                    format!(
                        "[#{}] Handed to {}: {}",
                        t.number,
                        t.owner.label(),
                        t.subject
                    ),
                ),
            };
            let body = TicketMailText {
                marker: REPLY_ABOVE,
                headline: &headline,
                text,
                number: t.number,
                subject: &t.subject,
                status: t.status.as_str(),
                owner: t.owner.label(),
                link: &format!("{}/tickets/{}", cfg.public_url, t.id),
                account: &format!("{}/account", cfg.public_url),
                reason,
            }
            .render()
            .map_err(|e| Error::Internal(format!("mail template: {e}")))?;
            let id = uuid_v7();
            let message_id = if event == MailEvent::TicketOpened {
                thread.clone()
            } else {
                format!("ticket-{}-{id}@{}", t.id, cfg.support_domain)
            };
            store::enqueue(
                w,
                &OutboxMail {
                    id,
                    client_id: Some(t.client_id),
                    ticket_id: Some(t.id),
                    event: event.as_str().into(),
                    recipient_id: Some(u.id),
                    to_address: to,
                    subject,
                    body,
                    thread_id: (event != MailEvent::TicketOpened).then(|| thread.clone()),
                    message_id,
                    reply_to: Some(reply_address(&token, &cfg.support_domain)),
                    status: "pending".into(),
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                    created_at: now,
                    sent_at: None,
                },
            )
            .await?;
        }
        Ok(())
    }

    // ---- the sender ---------------------------------------------------------------------

    /// Claims up to `limit` due messages for `worker` (a name unique to this server
    /// process). Several servers may call this at once: each message goes to one of them.
    pub async fn claim_due_mail(&self, worker: &str, limit: i64) -> Result<Vec<OutboxMail>> {
        let now = Timestamp::now();
        let ids = {
            let mut r = self.store.read().await?;
            store::due(&mut r, now, limit).await?
        };
        let mut out = Vec::new();
        for id in ids {
            let mut w = self.store.write().await?;
            let m = store::claim(&mut w, &id, worker, now, now.plus_seconds(CLAIM_SECONDS)).await?;
            w.commit().await?;
            out.extend(m);
        }
        Ok(out)
    }

    /// Records that the mail server accepted a message.
    pub async fn mail_delivered(&self, m: &OutboxMail, worker: &str) -> Result<()> {
        let mut w = self.store.write().await?;
        store::mark_sent(
            &mut w,
            &m.id,
            worker,
            Timestamp::now(),
            m.event == "signin_link",
        )
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// Records a failed delivery: retried later with backoff, or failed for good after
    /// [`MAX_ATTEMPTS`] (then provider admins see it and may re-send it).
    pub async fn mail_attempt_failed(
        &self,
        m: &OutboxMail,
        worker: &str,
        error: &str,
    ) -> Result<()> {
        let give_up = m.attempts + 1 >= MAX_ATTEMPTS;
        let next = Timestamp::now().plus_seconds(retry_delay_seconds(m.attempts));
        let mut w = self.store.write().await?;
        store::mark_failed(&mut w, &m.id, worker, next, give_up, error).await?;
        w.commit().await?;
        Ok(())
    }

    fn outbox_grant(&self, actor: &Actor) -> Result<Grant> {
        // The outbox holds people's addresses across every client: provider admins only
        // (user management over the provider).
        let g = self.grant(actor, Action::UsersWrite)?;
        if g.role() != Role::ProviderAdmin {
            return Err(Error::Forbidden(tandem_domain::authz::Denied(
                "only provider admins see the mail outbox",
            )));
        }
        Ok(g)
    }

    /// The outbox, newest first, for provider admins; `status` narrows it.
    pub async fn list_outbox(
        &self,
        actor: &Actor,
        status: Option<&str>,
        page: Page,
    ) -> Result<Paged<OutboxEntry>> {
        let g = self.outbox_grant(actor)?;
        if let Some(s) = status {
            if !["pending", "sent", "failed"].contains(&s) {
                return Err(invalid("status", "choose pending, sent or failed"));
            }
        }
        let mut r = self.store.read().await?;
        let p = store::list(&mut r, &g, status, page).await?;
        Ok(Paged {
            items: p.items.into_iter().map(OutboxEntry::from).collect(),
            has_more: p.has_more,
        })
    }

    /// Puts a failed message back in the queue (audited). Sign-in links are never re-sent:
    /// the person asks for a new one.
    pub async fn resend_mail(&self, actor: &Actor, id: &str) -> Result<()> {
        self.outbox_grant(actor)?;
        let mut w = self.store.write().await?;
        let m = store::get(&mut w, id)
            .await?
            .ok_or(Error::NotFound("message"))?;
        if m.status != "failed" || m.event == "signin_link" {
            return Err(Error::Conflict(
                "only a failed message about a ticket can be re-sent".into(),
            ));
        }
        store::resend(&mut w, id, Timestamp::now()).await?;
        Audit::new(actor, "mail.resent", "mail", id)
            .client(m.client_id)
            .after(json!({"to": m.to_address, "subject": m.subject, "attempts": m.attempts}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(())
    }

    // ---- support addresses --------------------------------------------------------------

    /// A client's support address: mail to it opens a ticket for the client.
    pub async fn support_address(&self, actor: &Actor, client: ClientId) -> Result<Option<String>> {
        let g = self.grant(actor, Action::ClientsRead)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let mut r = self.store.read().await?;
        Ok(store::support_address(&mut r, &g, client).await?)
    }

    /// Sets or clears a client's support address (provider admins and the client's IT
    /// admins; audited).
    pub async fn set_support_address(
        &self,
        actor: &Actor,
        client: ClientId,
        address: Option<&str>,
    ) -> Result<Option<String>> {
        let g = self.grant(actor, Action::SitesWrite)?;
        g.check_client(client)
            .map_err(|_| Error::NotFound("client"))?;
        let address = match address.map(str::trim).filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => Some(normalize_address(a).ok_or_else(|| {
                invalid(
                    "address",
                    "write one address such as help@alderbrook.example.test",
                )
            })?),
        };
        if let (Some(a), Some(cfg)) = (&address, self.mail.get()) {
            if a.starts_with("support+t-") && a.ends_with(&format!("@{}", cfg.support_domain)) {
                return Err(invalid(
                    "address",
                    "that shape is kept for ticket reply addresses",
                ));
            }
        }
        let mut w = self.store.write().await?;
        let before = store::support_address(&mut w, &g, client).await?;
        if let Some(a) = &address {
            if store::client_by_support_address(&mut w, a)
                .await?
                .is_some_and(|c| c != client)
            {
                return Err(invalid(
                    "address",
                    "another client already uses this address",
                ));
            }
        }
        store::set_support_address(&mut w, client, address.as_deref(), Timestamp::now()).await?;
        Audit::new(actor, "mail.support_address_set", "client", client)
            .client(Some(client))
            .before(json!({"address": before}))
            .after(json!({"address": address}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(address)
    }

    /// Every support address the actor may see, by client.
    pub async fn support_addresses(&self, actor: &Actor) -> Result<Vec<(ClientId, String)>> {
        let g = self.grant(actor, Action::ClientsRead)?;
        let mut r = self.store.read().await?;
        Ok(store::support_addresses(&mut r, &g).await?)
    }

    // ---- preferences --------------------------------------------------------------------

    /// The caller's own mail preferences (every event, on unless turned off).
    pub async fn mail_preferences(&self, actor: &Actor) -> Result<Vec<MailPreference>> {
        actor.note_self_service();
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut r = self.store.read().await?;
        let stored = store::preferences(&mut r, p.user_id).await?;
        Ok(MailEvent::ALL
            .into_iter()
            .filter(|e| p.role != Role::EndUser || *e != MailEvent::TicketHandedOff)
            .map(|e| MailPreference {
                event: e,
                enabled: !stored.iter().any(|(k, on)| k == e.as_str() && !on),
                label: e.label().into(),
            })
            .collect())
    }

    /// Changes the caller's own mail preferences (audited).
    pub async fn set_mail_preferences(
        &self,
        actor: &Actor,
        prefs: &[MailPreference],
    ) -> Result<Vec<MailPreference>> {
        actor.note_self_service();
        let p = actor.principal.as_ref().ok_or(Error::Unauthenticated)?;
        let mut w = self.store.write().await?;
        for pr in prefs {
            store::set_preference(&mut w, p.user_id, pr.event.as_str(), pr.enabled).await?;
        }
        Audit::new(actor, "mail.preferences_set", "user", p.user_id)
            .client(p.tenant.client())
            .after(json!(prefs
                .iter()
                .map(|p| (p.event.as_str(), p.enabled))
                .collect::<std::collections::BTreeMap<_, _>>()))
            .write(&mut w)
            .await?;
        w.commit().await?;
        self.mail_preferences(actor).await
    }

    // ---- inbound ------------------------------------------------------------------------

    /// Whether the receiver takes mail for this recipient: a client's support address or a
    /// ticket's reply address. Anything else is refused (Tandem relays nothing).
    pub async fn mail_accepts_recipient(&self, rcpt: &str) -> Result<bool> {
        let Some(cfg) = self.mail.get() else {
            return Ok(false);
        };
        let Some(a) = normalize_address(rcpt) else {
            return Ok(false);
        };
        let mut r = self.store.read().await?;
        if let Some(tok) = reply_token(&a, &cfg.support_domain) {
            return Ok(store::ticket_by_token(&mut r, &tok).await?.is_some());
        }
        Ok(store::client_by_support_address(&mut r, &a)
            .await?
            .is_some())
    }

    /// Turns a received message into a ticket or a reply, as its sender.
    ///
    /// The sender is the `From` address (the envelope sender when there is none). A reply
    /// address adds a public reply if the sender is the ticket's requester or a person of
    /// its client or the provider who may work it; a support address opens a ticket if the
    /// sender is a person of that client. Anyone else is refused, and the refusal recorded.
    pub async fn receive_mail(
        &self,
        envelope_from: &str,
        rcpt: &str,
        raw: &[u8],
    ) -> Result<Inbound> {
        let cfg = self
            .mail
            .get()
            .ok_or(Error::Conflict("mail is off".into()))?;
        let parsed = mail_parser::MessageParser::default().parse(raw);
        let Some(msg) = parsed else {
            return Ok(Inbound::Refused("the message could not be read".into()));
        };
        // Bounces (empty envelope sender) and automatic replies (RFC 3834) are not people
        // writing: taking them would let two autoresponders talk through a ticket forever.
        let auto = msg
            .header_raw("Auto-Submitted")
            .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"));
        if envelope_from.trim().is_empty() || auto {
            return Ok(Inbound::Refused("automatic mail is not taken".into()));
        }
        let from = msg
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string)
            .unwrap_or_else(|| envelope_from.to_string());
        let Some(from) = normalize_address(&from) else {
            return Ok(Inbound::Refused(
                "the sender's address could not be read".into(),
            ));
        };
        let subject = msg.subject().unwrap_or("").trim().to_string();
        let text = msg.body_text(0).map(|b| b.to_string()).unwrap_or_default();
        let rcpt = normalize_address(rcpt).unwrap_or_default();
        let senders = {
            let mut r = self.store.read().await?;
            store::users_by_email(&mut r, &from).await?
        };
        let senders: Vec<User> = senders.into_iter().filter(|u| !u.disabled).collect();
        if let Some(tok) = reply_token(&rcpt, &cfg.support_domain) {
            let found = {
                let mut r = self.store.read().await?;
                store::ticket_by_token(&mut r, &tok).await?
            };
            let Some((ticket_id, client)) = found else {
                return self.refuse(&from, &rcpt, "no such ticket").await;
            };
            let ticket = {
                let mut r = self.store.read().await?;
                tandem_store::tickets::get_ticket(
                    &mut r,
                    &crate::system_grant(Action::TicketsRead),
                    None,
                    ticket_id,
                )
                .await?
                .ok_or(Error::NotFound("ticket"))?
            };
            let now = Timestamp::now();
            let who = senders.iter().find(|u| {
                Some(u.id) == ticket.requester_id
                    || (u.role != Role::EndUser
                        && authorize(&principal_of(u), Action::TicketsWrite, now)
                            .is_ok_and(|g| g.check_client(client).is_ok()))
            });
            let Some(u) = who else {
                return self
                    .refuse(&from, &rcpt, "the sender may not answer on this ticket")
                    .await;
            };
            let body = strip_quoted(&text);
            // Attachments (issue #5): the mail's files, through the same checks as uploads.
            let files = mail_files(&msg);
            if body.is_empty() && files.is_empty() {
                return self
                    .refuse(
                        &from,
                        &rcpt,
                        "the reply is empty once the quoted history is removed",
                    )
                    .await;
            }
            let mut actor = Actor::person(principal_of(u), None);
            actor.reference = Some("mail".into());
            let done = if files.is_empty() {
                self.reply(&actor, ticket_id, &body, false).await
            } else {
                self.attach_mail_files(&actor, ticket_id, &body, &files)
                    .await
                    .map(|_| ())
            };
            return match done {
                Ok(()) => Ok(Inbound::Replied(ticket.number)),
                Err(e) => self.refuse_for(e, &from, &rcpt).await,
            };
        }
        let client = {
            let mut r = self.store.read().await?;
            store::client_by_support_address(&mut r, &rcpt).await?
        };
        let Some(client) = client else {
            return self.refuse(&from, &rcpt, "no such mailbox").await;
        };
        let Some(u) = senders.iter().find(|u| u.client_id == Some(client)) else {
            return self
                .refuse(&from, &rcpt, "the sender is not a person of this client")
                .await;
        };
        let mut actor = Actor::person(principal_of(u), None);
        actor.reference = Some("mail".into());
        let subject = if subject.is_empty() {
            "(no subject)".to_string()
        } else {
            subject.chars().take(200).collect()
        };
        let description: String = strip_quoted(&text);
        let description = if description.len() > 60 * 1024 {
            description.chars().take(60 * 1024).collect()
        } else {
            description
        };
        let t = match self
            .create_ticket(
                &actor,
                crate::NewTicket {
                    client_id: Some(client),
                    site_id: None,
                    requester_id: Some(u.id),
                    subject,
                    description,
                    domain: None,
                    impact: None,
                    urgency: None,
                    endpoint_ids: Vec::new(),
                },
            )
            .await
        {
            Ok(t) => t,
            Err(e) => return self.refuse_for(e, &from, &rcpt).await,
        };
        // Attachments (issue #5): stored on the new ticket in a second step; the ticket
        // stands even if a file is refused (the refusal is named in its history).
        let files = mail_files(&msg);
        if !files.is_empty() {
            if let Err(e) = self.attach_mail_files(&actor, t.id, "", &files).await {
                tracing::warn!(error = %e, ticket = t.number, "mail attachments not stored");
            }
        }
        Ok(Inbound::Opened(t.number))
    }

    /// A use case's refusal of an inbound message is final for the sending server (5xx);
    /// only a failure of Tandem itself is worth its retrying (4xx).
    async fn refuse_for(&self, e: Error, from: &str, rcpt: &str) -> Result<Inbound> {
        match e {
            Error::Conflict(m) => self.refuse(from, rcpt, &m).await,
            Error::Invalid(f) => {
                let why = f
                    .iter()
                    .map(|i| format!("{}: {}", i.field, i.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                self.refuse(from, rcpt, &why).await
            }
            Error::NotFound(_) | Error::Forbidden(_) | Error::Unauthenticated => {
                self.refuse(from, rcpt, "the sender may not do this").await
            }
            other => Err(other),
        }
    }

    async fn refuse(&self, from: &str, rcpt: &str, why: &str) -> Result<Inbound> {
        let actor = Actor::agent(format!("mail from {from}"), None);
        let mut w = self.store.write().await?;
        Audit::new(&actor, "mail.inbound_refused", "mailbox", rcpt)
            .after(json!({"from": from, "reason": why}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(Inbound::Refused(why.to_string()))
    }

    // ---- sign-in links ------------------------------------------------------------------

    /// Mails a single-use sign-in link to the person with this username or address. The
    /// answer is the same whether or not such a person exists; requests are throttled per
    /// network address and per person like password sign-in.
    pub async fn request_signin_link(&self, actor: &Actor, who: &str, ip: &str) -> Result<()> {
        actor.note_self_service();
        let cfg = self.mail.get().ok_or_else(|| {
            Error::Conflict("sign-in links need mail, which is not set up on this server".into())
        })?;
        let now = Timestamp::now();
        let ikey = format!("address:{ip}");
        {
            let mut r = self.store.read().await?;
            let a = store_auth::throttle(&mut r, &ikey).await?;
            if let Some(until) = ThrottlePolicy::ADDRESS.locked(&a, now) {
                return Err(Error::Locked { until });
            }
        }
        let who = who.trim().to_lowercase();
        let user = {
            let mut r = self.store.read().await?;
            match store_auth::credentials_by_username(&mut r, &who).await? {
                Some(c) => Some(c.user),
                None => match normalize_address(&who) {
                    Some(a) => {
                        let found = store::users_by_email(&mut r, &a).await?;
                        // An address shared by several people signs none of them in.
                        (found.len() == 1)
                            .then(|| found.into_iter().next())
                            .flatten()
                    }
                    None => None,
                },
            }
        };
        let Some(user) = user.filter(|u| !u.disabled) else {
            // Count unknown names against the address, as a failed sign-in would.
            let mut w = self.store.write().await?;
            let a = store_auth::throttle(&mut w, &ikey).await?;
            store_auth::save_throttle(&mut w, &ikey, &ThrottlePolicy::ADDRESS.fail(&a, now).0)
                .await?;
            w.commit().await?;
            return Ok(());
        };
        let Some(to) = normalize_address(&user.email) else {
            return Ok(());
        };
        // Each link sent counts against the person: at most five in fifteen minutes.
        let lkey = format!("link:{}", user.id);
        let mut w = self.store.write().await?;
        let a = store_auth::throttle(&mut w, &lkey).await?;
        if ThrottlePolicy::ACCOUNT.locked(&a, now).is_some() {
            return Ok(());
        }
        store_auth::save_throttle(&mut w, &lkey, &ThrottlePolicy::ACCOUNT.fail(&a, now).0).await?;
        let secret = new_secret(32);
        store::insert_link(
            &mut w,
            &sha256_hex(&secret),
            user.id,
            now,
            now.plus_seconds(SIGNIN_LINK_SECONDS),
        )
        .await?;
        let link = format!("{}/login/link/{secret}", cfg.public_url);
        let body = SignInLinkText {
            name: &user.display_name,
            link: &link,
            minutes: SIGNIN_LINK_SECONDS / 60,
        }
        .render()
        .map_err(|e| Error::Internal(format!("mail template: {e}")))?;
        let id = uuid_v7();
        store::enqueue(
            &mut w,
            &OutboxMail {
                message_id: format!("signin-{id}@{}", cfg.support_domain),
                id,
                client_id: user.client_id,
                ticket_id: None,
                event: "signin_link".into(),
                recipient_id: Some(user.id),
                to_address: to,
                subject: "Your Tandem sign-in link".into(),
                body,
                thread_id: None,
                reply_to: None,
                status: "pending".into(),
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                created_at: now,
                sent_at: None,
            },
        )
        .await?;
        Audit::new(
            &as_user(actor, &user),
            "auth.signin_link_sent",
            "user",
            user.id,
        )
        .client(user.client_id)
        .after(json!({"expires_in_minutes": SIGNIN_LINK_SECONDS / 60}))
        .write(&mut w)
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// Signs in with a link from a sign-in mail: once, within 15 minutes. For people who
    /// must use a second factor it is only the first: the session still owes it.
    pub async fn use_signin_link(&self, actor: &Actor, secret: &str, ip: &str) -> Result<SignIn> {
        actor.note_self_service();
        let now = Timestamp::now();
        let ikey = format!("address:{ip}");
        {
            let mut r = self.store.read().await?;
            let a = store_auth::throttle(&mut r, &ikey).await?;
            if let Some(until) = ThrottlePolicy::ADDRESS.locked(&a, now) {
                return Err(Error::Locked { until });
            }
        }
        let mut w = self.store.write().await?;
        let used = if secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()) {
            store::use_link(&mut w, &sha256_hex(secret), now).await?
        } else {
            None
        };
        let creds = match used {
            Some(u) => store_auth::credentials_by_id(&mut w, u).await?,
            None => None,
        };
        let Some(creds) = creds.filter(|c| !c.user.disabled) else {
            // The same transaction records the refusal (the use above changed nothing, or
            // only a disabled person's link, which stays used). Not a second one: on SQLite a
            // dropped transaction still holds the write lock until it is rolled back.
            let a = store_auth::throttle(&mut w, &ikey).await?;
            store_auth::save_throttle(&mut w, &ikey, &ThrottlePolicy::ADDRESS.fail(&a, now).0)
                .await?;
            Audit::new(actor, "auth.signin_link_refused", "signin_link", "unknown")
                .after(json!({"reason": "unknown, used or expired link"}))
                .write(&mut w)
                .await?;
            w.commit().await?;
            // Said on the page as "already used or expired"; counted like a wrong code.
            return Err(Error::BadCode);
        };
        let user = &creds.user;
        let next = if !mfa_required(user) && creds.totp_secret.is_none() {
            SignInNext::Done
        } else if creds.totp_secret.is_some() {
            SignInNext::VerifyMfa
        } else {
            SignInNext::EnrollMfa
        };
        let session_secret = new_secret(32);
        let session = Session {
            token_hash: sha256_hex(&session_secret),
            user_id: user.id,
            csrf_token: new_secret(24),
            mfa_passed: next == SignInNext::Done,
            created_at: now,
            expires_at: now.plus_seconds(self.policy.session_ttl_secs),
            last_seen_at: now,
        };
        store_auth::insert_session(&mut w, &session).await?;
        Audit::new(&as_user(actor, user), "auth.signed_in", "user", user.id)
            .client(user.client_id)
            .after(
                json!({"method": "sign-in link", "second_factor": match next {
                    SignInNext::Done => "not required",
                    SignInNext::VerifyMfa => "pending",
                    SignInNext::EnrollMfa => "enrolment pending",
                }}),
            )
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(SignIn {
            session_secret,
            csrf_token: session.csrf_token,
            next,
        })
    }
}

fn actor_name(actor: &Actor) -> String {
    match &actor.principal {
        Some(p) => p.label.split(" (").next().unwrap_or(&p.label).to_string(),
        None => "Tandem".into(),
    }
}

/// A ticket's reply token: 26 characters of base32 (130 bits), lowercase.
fn new_token() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase()
}

fn uuid_v7() -> String {
    tandem_domain::TicketId::new().to_string()
}

/// The files of an inbound message (parts with a file name, or non-text attachments).
fn mail_files<'a>(msg: &'a mail_parser::Message<'a>) -> Vec<crate::attachments::MailFile<'a>> {
    use mail_parser::MimeHeaders;
    msg.attachments()
        .filter(|p| !p.is_multipart())
        .map(|p| {
            let declared = p.content_type().map(|c| match c.subtype() {
                Some(sub) => format!("{}/{sub}", c.ctype()),
                None => c.ctype().to_string(),
            });
            let name = p
                .attachment_name()
                .map(str::to_string)
                .unwrap_or_else(|| "attachment".to_string());
            (name, declared, p.contents())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_are_capped() {
        assert_eq!(retry_delay_seconds(0), 30);
        assert_eq!(retry_delay_seconds(1), 60);
        assert_eq!(retry_delay_seconds(3), 240);
        assert_eq!(retry_delay_seconds(10), 3600);
        assert_eq!(retry_delay_seconds(-1), 30);
    }

    #[test]
    fn reply_tokens_are_unguessable_and_fit_the_reply_address() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 26);
        let addr = reply_address(&a, "help.example.test");
        assert_eq!(reply_token(&addr, "help.example.test"), Some(a));
    }

    #[test]
    fn settings_need_a_from_address_and_take_its_domain() {
        let s = MailSettings::new("Tandem <tandem@help.example.test>", None, "http://x/").unwrap();
        assert_eq!(s.support_domain, "help.example.test");
        assert_eq!(s.public_url, "http://x");
        assert!(MailSettings::new("nobody", None, "http://x").is_err());
        let s = MailSettings::new("t@a.test", Some("Help.Example.Test"), "http://x").unwrap();
        assert_eq!(s.support_domain, "help.example.test");
    }
}
