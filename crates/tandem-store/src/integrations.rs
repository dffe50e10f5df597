//! Integration tokens (ingest, issue #6): the credentials machine senders present to post a
//! client's alerts, stored under the SHA-256 of their secret.
//!
//! People's reads are scoped by a grant. [`integration_token_by_hash`], [`touch`] and
//! [`endpoints_of_client`] are unscoped by design: the sender's token has already named the
//! one client concerned.

use crate::query::{opt_parsed, opt_text, opt_ts, parsed, text, ts, Sql};
use crate::{Page, Paged, Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::Grant;
use tandem_domain::ingest::IntegrationToken;
use tandem_domain::monitoring::AlertTicketRule;
use tandem_domain::{ClientId, EndpointId, IntegrationTokenId, Timestamp};

/// Stores a new integration token under the SHA-256 of its secret.
pub async fn insert_integration_token(
    c: &mut AnyConnection,
    t: &IntegrationToken,
    token_hash: &str,
) -> Result<()> {
    Sql::new(
        "INSERT INTO integration_tokens (id, client_id, label, prefix, token_hash, \
         default_domain, created_by, created_at, last_used_at, revoked_at, ticket_mode, \
         ticket_impact, ticket_urgency) VALUES (",
    )
    .text(t.id.to_string())
    .push(", ")
    .text(t.client_id.to_string())
    .push(", ")
    .text(t.label.clone())
    .push(", ")
    .text(t.prefix.clone())
    .push(", ")
    .text(token_hash)
    .push(", ")
    .text(t.default_domain.clone())
    .push(", ")
    .opt_text(t.created_by.map(|u| u.to_string()))
    .push(", ")
    .int(t.created_at.0)
    .push(", ")
    .opt_int(t.last_used_at.map(|t| t.0))
    .push(", ")
    .opt_int(t.revoked_at.map(|t| t.0))
    .push(", ")
    .text(t.ticket.mode.as_str())
    .push(", ")
    .opt_text(t.ticket.impact.map(|i| i.as_str().to_string()))
    .push(", ")
    .opt_text(t.ticket.urgency.map(|u| u.as_str().to_string()))
    .push(")")
    .execute(c)
    .await?;
    Ok(())
}

/// Integration tokens the grant reaches, newest first; one client's when `client` is set.
pub async fn list_integration_tokens(
    c: &mut AnyConnection,
    grant: &Grant,
    client: Option<ClientId>,
    page: Page,
) -> Result<Paged<IntegrationToken>> {
    let mut q = Sql::new("SELECT * FROM integration_tokens WHERE ");
    q.scope("client_id", grant);
    if let Some(cid) = client {
        q.push(" AND client_id = ").text(cid.to_string());
    }
    q.push(" ORDER BY created_at DESC, id").page(&page.probe());
    let items = q
        .fetch_all(c)
        .await?
        .iter()
        .map(integration_token)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_probe(items, &page))
}

/// One integration token, if the grant reaches it.
pub async fn get_integration_token(
    c: &mut AnyConnection,
    grant: &Grant,
    id: IntegrationTokenId,
) -> Result<Option<IntegrationToken>> {
    let mut q = Sql::new("SELECT * FROM integration_tokens WHERE id = ");
    q.text(id.to_string())
        .push(" AND ")
        .scope("client_id", grant);
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map(integration_token)
        .transpose()
}

/// Revokes a token. Returns whether a live token was revoked.
pub async fn revoke_integration_token(
    c: &mut AnyConnection,
    id: IntegrationTokenId,
    now: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE integration_tokens SET revoked_at = ")
        .int(now.0)
        .push(" WHERE id = ")
        .text(id.to_string())
        .push(" AND revoked_at IS NULL")
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// Sets the ticket rule of a live token. Returns whether a live token was changed.
pub async fn set_ticket_rule(
    c: &mut AnyConnection,
    id: IntegrationTokenId,
    rule: &AlertTicketRule,
) -> Result<bool> {
    let n = Sql::new("UPDATE integration_tokens SET ticket_mode = ")
        .text(rule.mode.as_str())
        .push(", ticket_impact = ")
        .opt_text(rule.impact.map(|i| i.as_str().to_string()))
        .push(", ticket_urgency = ")
        .opt_text(rule.urgency.map(|u| u.as_str().to_string()))
        .push(" WHERE id = ")
        .text(id.to_string())
        .push(" AND revoked_at IS NULL")
        .execute(c)
        .await?;
    Ok(n == 1)
}

/// The live token with this secret hash (a sender posting; unscoped).
pub async fn integration_token_by_hash(
    c: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<IntegrationToken>> {
    Sql::new("SELECT * FROM integration_tokens WHERE revoked_at IS NULL AND token_hash = ")
        .text(token_hash)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(integration_token)
        .transpose()
}

/// Records that a sender used the token (at most once a minute, to spare the writer).
pub async fn touch(c: &mut AnyConnection, id: IntegrationTokenId, now: Timestamp) -> Result<()> {
    Sql::new("UPDATE integration_tokens SET last_used_at = ")
        .int(now.0)
        .push(" WHERE id = ")
        .text(id.to_string())
        .push(" AND (last_used_at IS NULL OR last_used_at < ")
        .int(now.0 - 60_000_000)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// The live endpoints of a client with their hostnames (unscoped: the token named the client).
pub async fn endpoints_of_client(
    c: &mut AnyConnection,
    client: ClientId,
) -> Result<Vec<(EndpointId, String)>> {
    Sql::new("SELECT id, hostname FROM endpoints WHERE retired_at IS NULL AND client_id = ")
        .text(client.to_string())
        .push(" ORDER BY hostname, id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| Ok((parsed(r, "id")?, text(r, "hostname")?)))
        .collect()
}

fn corrupt(e: String) -> StoreError {
    StoreError::Corrupt(format!("integration token ticket rule: {e}"))
}

fn integration_token(r: &AnyRow) -> Result<IntegrationToken> {
    Ok(IntegrationToken {
        id: parsed(r, "id")?,
        client_id: parsed(r, "client_id")?,
        label: text(r, "label")?,
        prefix: text(r, "prefix")?,
        default_domain: text(r, "default_domain")?,
        created_by: opt_parsed(r, "created_by")?,
        created_at: ts(r, "created_at")?,
        last_used_at: opt_ts(r, "last_used_at")?,
        revoked_at: opt_ts(r, "revoked_at")?,
        ticket: AlertTicketRule {
            mode: text(r, "ticket_mode")?.parse().map_err(corrupt)?,
            impact: opt_text(r, "ticket_impact")?
                .map(|s| s.parse())
                .transpose()
                .map_err(corrupt)?,
            urgency: opt_text(r, "ticket_urgency")?
                .map(|s| s.parse())
                .transpose()
                .map_err(corrupt)?,
        },
    })
}
