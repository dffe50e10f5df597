//! Mail: support addresses, per-ticket reply tokens, the outbox, preferences and sign-in
//! links. Outbox rows are claimed with a conditional `UPDATE`, so several servers can send
//! from one database without sending a message twice.
//!
//! Lists of tenant data take a grant. The lookups inbound mail and the sender need before
//! anyone is known (which client has this address, which ticket has this token) are
//! unscoped by design, like sign-in's, and return only the one row concerned.

use crate::directory::{user_columns, user_row};
use crate::query::{int, opt_parsed, opt_text, opt_ts, parsed, text, ts, Sql};
use crate::{Page, Paged, Result};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::Grant;
use tandem_domain::directory::User;
use tandem_domain::{ClientId, Role, TicketId, Timestamp, UserId};

/// One message in the outbox.
#[derive(Clone, Debug)]
pub struct OutboxMail {
    /// Its id (UUIDv7).
    pub id: String,
    /// The client it concerns (`null`: provider-level, such as a provider admin's sign-in link).
    pub client_id: Option<ClientId>,
    /// The ticket it is about, if any.
    pub ticket_id: Option<TicketId>,
    /// What caused it (`ticket_reply`, `signin_link`, …).
    pub event: String,
    /// The person it is for.
    pub recipient_id: Option<UserId>,
    /// Their address.
    pub to_address: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body (a sign-in link's body is blanked once sent).
    pub body: String,
    /// Its `Message-ID`, without angle brackets.
    pub message_id: String,
    /// The ticket thread's root message id, for `In-Reply-To`/`References`.
    pub thread_id: Option<String>,
    /// The `Reply-To` address (the ticket's reply address).
    pub reply_to: Option<String>,
    /// `pending`, `sent` or `failed` (retries used up; an admin may re-send).
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_at: Timestamp,
    /// The last delivery error.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When the mail server accepted it.
    pub sent_at: Option<Timestamp>,
}

fn outbox_row(r: &AnyRow) -> Result<OutboxMail> {
    Ok(OutboxMail {
        id: text(r, "id")?,
        client_id: opt_parsed(r, "client_id")?,
        ticket_id: opt_parsed(r, "ticket_id")?,
        event: text(r, "event")?,
        recipient_id: opt_parsed(r, "recipient_id")?,
        to_address: text(r, "to_address")?,
        subject: text(r, "subject")?,
        body: text(r, "body")?,
        message_id: text(r, "message_id")?,
        thread_id: opt_text(r, "thread_id")?,
        reply_to: opt_text(r, "reply_to")?,
        status: text(r, "status")?,
        attempts: int(r, "attempts")?,
        next_attempt_at: ts(r, "next_attempt_at")?,
        last_error: opt_text(r, "last_error")?,
        created_at: ts(r, "created_at")?,
        sent_at: opt_ts(r, "sent_at")?,
    })
}

/// Queues a message (inside the write that made the change it reports).
pub async fn enqueue(c: &mut AnyConnection, m: &OutboxMail) -> Result<()> {
    Sql::new("INSERT INTO mail_outbox (id, client_id, ticket_id, event, recipient_id, to_address, subject, body, message_id, thread_id, reply_to, status, attempts, next_attempt_at, created_at) VALUES (")
        .text(m.id.clone()).push(", ")
        .opt_text(m.client_id.map(|x| x.to_string())).push(", ")
        .opt_text(m.ticket_id.map(|x| x.to_string())).push(", ")
        .text(m.event.clone()).push(", ")
        .opt_text(m.recipient_id.map(|x| x.to_string())).push(", ")
        .text(m.to_address.clone()).push(", ")
        .text(m.subject.clone()).push(", ")
        .text(m.body.clone()).push(", ")
        .text(m.message_id.clone()).push(", ")
        .opt_text(m.thread_id.clone()).push(", ")
        .opt_text(m.reply_to.clone()).push(", ")
        .text(m.status.clone()).push(", ")
        .int(m.attempts).push(", ")
        .int(m.next_attempt_at.0).push(", ")
        .int(m.created_at.0).push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// Ids of pending messages due at `now` and not claimed by a live sender, oldest first.
pub async fn due(c: &mut AnyConnection, now: Timestamp, limit: i64) -> Result<Vec<String>> {
    let rows =
        Sql::new("SELECT id FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= ")
            .int(now.0)
            .push(" AND (claimed_until IS NULL OR claimed_until < ")
            .int(now.0)
            .push(") ORDER BY next_attempt_at, id LIMIT ")
            .int(limit)
            .fetch_all(c)
            .await?;
    rows.iter().map(|r| text(r, "id")).collect()
}

/// Claims a due message for `worker` until `until`. Only one claimant wins: the update
/// applies only while the row is still pending and unclaimed (or its claim has lapsed).
pub async fn claim(
    c: &mut AnyConnection,
    id: &str,
    worker: &str,
    now: Timestamp,
    until: Timestamp,
) -> Result<Option<OutboxMail>> {
    let n = Sql::new("UPDATE mail_outbox SET claimed_by = ")
        .text(worker)
        .push(", claimed_until = ")
        .int(until.0)
        .push(" WHERE id = ")
        .text(id)
        .push(" AND status = 'pending' AND next_attempt_at <= ")
        .int(now.0)
        .push(" AND (claimed_until IS NULL OR claimed_until < ")
        .int(now.0)
        .push(")")
        .execute(c)
        .await?;
    if n != 1 {
        return Ok(None);
    }
    get(c, id).await
}

/// One message by id (unscoped: for the sender).
pub async fn get(c: &mut AnyConnection, id: &str) -> Result<Option<OutboxMail>> {
    Sql::new("SELECT * FROM mail_outbox WHERE id = ")
        .text(id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(outbox_row)
        .transpose()
}

/// Records that the mail server accepted a message claimed by `worker`; with `scrub`, the
/// body (a sign-in link) is blanked so the secret does not outlive its delivery.
pub async fn mark_sent(
    c: &mut AnyConnection,
    id: &str,
    worker: &str,
    now: Timestamp,
    scrub: bool,
) -> Result<u64> {
    let mut q = Sql::new("UPDATE mail_outbox SET status = 'sent', sent_at = ");
    q.int(now.0).push(
        ", attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL, last_error = NULL",
    );
    if scrub {
        q.push(", body = '(sign-in link removed after sending)'");
    }
    q.push(" WHERE id = ")
        .text(id)
        .push(" AND claimed_by = ")
        .text(worker);
    q.execute(c).await
}

/// Records a failed attempt: pending again at `next` or, with `give_up`, failed for good.
pub async fn mark_failed(
    c: &mut AnyConnection,
    id: &str,
    worker: &str,
    next: Timestamp,
    give_up: bool,
    error: &str,
) -> Result<u64> {
    Sql::new("UPDATE mail_outbox SET status = ")
        .text(if give_up { "failed" } else { "pending" })
        .push(", attempts = attempts + 1, next_attempt_at = ")
        .int(next.0)
        .push(", last_error = ")
        .text(error.chars().take(500).collect::<String>())
        .push(", claimed_by = NULL, claimed_until = NULL WHERE id = ")
        .text(id)
        .push(" AND claimed_by = ")
        .text(worker)
        .execute(c)
        .await
}

/// Puts a failed message back in the queue, due now, with fresh attempts.
pub async fn resend(c: &mut AnyConnection, id: &str, now: Timestamp) -> Result<u64> {
    Sql::new("UPDATE mail_outbox SET status = 'pending', attempts = 0, next_attempt_at = ")
        .int(now.0)
        .push(", claimed_by = NULL, claimed_until = NULL WHERE id = ")
        .text(id)
        .push(" AND status = 'failed' AND event <> 'signin_link'")
        .execute(c)
        .await
}

/// Outbox messages the grant reaches, newest first; `status` narrows to one state.
pub async fn list(
    c: &mut AnyConnection,
    g: &Grant,
    status: Option<&str>,
    page: Page,
) -> Result<Paged<OutboxMail>> {
    let mut q = Sql::new("SELECT * FROM mail_outbox WHERE ");
    q.scope("client_id", g);
    if let Some(s) = status {
        q.push(" AND status = ").text(s);
    }
    q.push(" ORDER BY created_at DESC, id DESC");
    q.page(&page.probe());
    let rows = q.fetch_all(c).await?;
    let items = rows.iter().map(outbox_row).collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

/// Messages about one ticket, oldest first (for tests and the ticket's own view).
pub async fn of_ticket(c: &mut AnyConnection, ticket: TicketId) -> Result<Vec<OutboxMail>> {
    let rows = Sql::new("SELECT * FROM mail_outbox WHERE ticket_id = ")
        .text(ticket.to_string())
        .push(" ORDER BY created_at, id")
        .fetch_all(c)
        .await?;
    rows.iter().map(outbox_row).collect()
}

// ---- support addresses ----------------------------------------------------------------

/// Sets (or with `None` removes) a client's support address.
pub async fn set_support_address(
    c: &mut AnyConnection,
    client: ClientId,
    address: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    Sql::new("DELETE FROM mail_support_addresses WHERE client_id = ")
        .text(client.to_string())
        .execute(c)
        .await?;
    if let Some(a) = address {
        Sql::new("INSERT INTO mail_support_addresses (client_id, address, updated_at) VALUES (")
            .text(client.to_string())
            .push(", ")
            .text(a)
            .push(", ")
            .int(now.0)
            .push(")")
            .execute(c)
            .await?;
    }
    Ok(())
}

/// A client's support address (scoped by the grant).
pub async fn support_address(
    c: &mut AnyConnection,
    g: &Grant,
    client: ClientId,
) -> Result<Option<String>> {
    let mut q = Sql::new("SELECT address FROM mail_support_addresses WHERE client_id = ");
    q.text(client.to_string()).push(" AND ");
    q.scope("client_id", g);
    q.fetch_optional(c)
        .await?
        .map(|r| text(&r, "address"))
        .transpose()
}

/// Every support address the grant reaches, by client.
pub async fn support_addresses(
    c: &mut AnyConnection,
    g: &Grant,
) -> Result<Vec<(ClientId, String)>> {
    let mut q = Sql::new("SELECT client_id, address FROM mail_support_addresses WHERE ");
    q.scope("client_id", g).push(" ORDER BY address");
    let rows = q.fetch_all(c).await?;
    rows.iter()
        .map(|r| Ok((parsed(r, "client_id")?, text(r, "address")?)))
        .collect()
}

/// The client whose support address this is (unscoped: inbound mail).
pub async fn client_by_support_address(
    c: &mut AnyConnection,
    address: &str,
) -> Result<Option<ClientId>> {
    Sql::new("SELECT client_id FROM mail_support_addresses WHERE address = ")
        .text(address)
        .fetch_optional(c)
        .await?
        .map(|r| parsed(&r, "client_id"))
        .transpose()
}

// ---- reply tokens ---------------------------------------------------------------------

/// Gives a ticket its reply token (inside the write that opens it).
pub async fn insert_ticket_token(
    c: &mut AnyConnection,
    ticket: TicketId,
    client: ClientId,
    token: &str,
) -> Result<()> {
    Sql::new("INSERT INTO mail_ticket_tokens (ticket_id, client_id, token) VALUES (")
        .text(ticket.to_string())
        .push(", ")
        .text(client.to_string())
        .push(", ")
        .text(token)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// A ticket's reply token.
pub async fn ticket_token(c: &mut AnyConnection, ticket: TicketId) -> Result<Option<String>> {
    Sql::new("SELECT token FROM mail_ticket_tokens WHERE ticket_id = ")
        .text(ticket.to_string())
        .fetch_optional(c)
        .await?
        .map(|r| text(&r, "token"))
        .transpose()
}

/// The ticket (and its client) a reply token belongs to (unscoped: inbound mail).
pub async fn ticket_by_token(
    c: &mut AnyConnection,
    token: &str,
) -> Result<Option<(TicketId, ClientId)>> {
    Sql::new("SELECT ticket_id, client_id FROM mail_ticket_tokens WHERE token = ")
        .text(token)
        .fetch_optional(c)
        .await?
        .map(|r| Ok((parsed(&r, "ticket_id")?, parsed(&r, "client_id")?)))
        .transpose()
}

// ---- people ---------------------------------------------------------------------------

/// People with this address, compared without case (unscoped: inbound mail, sign-in links).
pub async fn users_by_email(c: &mut AnyConnection, email: &str) -> Result<Vec<User>> {
    let mut q = Sql::new("SELECT ");
    q.push(&user_columns("users"))
        .push(" FROM users WHERE LOWER(email) = ")
        .text(email.to_lowercase())
        .push(" ORDER BY created_at, id");
    q.fetch_all(c).await?.iter().map(user_row).collect()
}

/// People by id (Tandem's own read, to address mail about a change it is writing).
pub async fn users_by_id(c: &mut AnyConnection, ids: &[UserId]) -> Result<Vec<User>> {
    let mut out = Vec::new();
    for id in ids {
        let mut q = Sql::new("SELECT ");
        q.push(&user_columns("users"))
            .push(" FROM users WHERE id = ")
            .text(id.to_string());
        if let Some(r) = q.fetch_optional(c).await? {
            out.push(user_row(&r)?);
        }
    }
    Ok(out)
}

/// The enabled people of a tenant (`None`: the provider) with one of these roles.
pub async fn contacts(
    c: &mut AnyConnection,
    client: Option<ClientId>,
    roles: &[Role],
) -> Result<Vec<User>> {
    let mut q = Sql::new("SELECT ");
    q.push(&user_columns("users"))
        .push(" FROM users WHERE disabled = 0 AND ");
    match client {
        Some(cl) => q.push("client_id = ").text(cl.to_string()),
        None => q.push("client_id IS NULL"),
    };
    q.push(" AND role IN (");
    for (i, r) in roles.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.text(r.as_str());
    }
    q.push(") ORDER BY created_at, id");
    q.fetch_all(c).await?.iter().map(user_row).collect()
}

// ---- preferences ----------------------------------------------------------------------

/// A person's stored choices (events not listed are on).
pub async fn preferences(c: &mut AnyConnection, u: UserId) -> Result<Vec<(String, bool)>> {
    let rows = Sql::new("SELECT event, enabled FROM mail_preferences WHERE user_id = ")
        .text(u.to_string())
        .fetch_all(c)
        .await?;
    rows.iter()
        .map(|r| Ok((text(r, "event")?, int(r, "enabled")? != 0)))
        .collect()
}

/// Stores one choice.
pub async fn set_preference(
    c: &mut AnyConnection,
    u: UserId,
    event: &str,
    enabled: bool,
) -> Result<()> {
    Sql::new("DELETE FROM mail_preferences WHERE user_id = ")
        .text(u.to_string())
        .push(" AND event = ")
        .text(event)
        .execute(c)
        .await?;
    Sql::new("INSERT INTO mail_preferences (user_id, event, enabled) VALUES (")
        .text(u.to_string())
        .push(", ")
        .text(event)
        .push(", ")
        .int(i64::from(enabled))
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

// ---- sign-in links --------------------------------------------------------------------

/// Stores a sign-in link's hash.
pub async fn insert_link(
    c: &mut AnyConnection,
    token_hash: &str,
    u: UserId,
    now: Timestamp,
    expires: Timestamp,
) -> Result<()> {
    Sql::new(
        "INSERT INTO mail_signin_links (token_hash, user_id, created_at, expires_at) VALUES (",
    )
    .text(token_hash)
    .push(", ")
    .text(u.to_string())
    .push(", ")
    .int(now.0)
    .push(", ")
    .int(expires.0)
    .push(")")
    .execute(c)
    .await?;
    Ok(())
}

/// Uses a sign-in link: only an unused, unexpired link works, and only once (the update is
/// conditional, so two concurrent uses cannot both succeed). Returns its person.
pub async fn use_link(
    c: &mut AnyConnection,
    token_hash: &str,
    now: Timestamp,
) -> Result<Option<UserId>> {
    let n = Sql::new("UPDATE mail_signin_links SET used_at = ")
        .int(now.0)
        .push(" WHERE token_hash = ")
        .text(token_hash)
        .push(" AND used_at IS NULL AND expires_at > ")
        .int(now.0)
        .execute(c)
        .await?;
    if n != 1 {
        return Ok(None);
    }
    Sql::new("SELECT user_id FROM mail_signin_links WHERE token_hash = ")
        .text(token_hash)
        .fetch_optional(c)
        .await?
        .map(|r| parsed(&r, "user_id"))
        .transpose()
}
