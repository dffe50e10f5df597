//! The domain catalog, agreement versions and notifications.

use crate::query::{int, opt_int, opt_text, opt_ts, parsed, text, ts, Sql};
use crate::{Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use tandem_domain::authz::Grant;
use tandem_domain::scope::{AgreementVersion, ItDomain, Party, VersionStatus};
use tandem_domain::{ClientId, Role, Timestamp, UserId};

// ---- the catalog ----------------------------------------------------------------------

/// Every domain of the catalog, in catalog order; retired ones only when asked.
pub async fn list_domains(c: &mut AnyConnection, include_retired: bool) -> Result<Vec<ItDomain>> {
    let mut q = Sql::new("SELECT * FROM it_domains");
    if !include_retired {
        q.push(" WHERE retired_at IS NULL");
    }
    q.push(" ORDER BY position, key");
    q.fetch_all(c).await?.iter().map(domain).collect()
}

/// Adds a domain at the end of the catalog.
pub async fn insert_domain(c: &mut AnyConnection, d: &ItDomain, now: Timestamp) -> Result<()> {
    Sql::new("INSERT INTO it_domains (key, name, description, position, created_at) VALUES (")
        .text(d.key.clone())
        .push(", ")
        .text(d.name.clone())
        .push(", ")
        .text(d.description.clone())
        .push(", (SELECT COALESCE(MAX(position), 0) + 1 FROM it_domains), ")
        .int(now.0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// Renames a domain and rewrites its description. Returns rows changed.
pub async fn update_domain(
    c: &mut AnyConnection,
    key: &str,
    name: &str,
    description: &str,
) -> Result<u64> {
    Sql::new("UPDATE it_domains SET name = ")
        .text(name)
        .push(", description = ")
        .text(description)
        .push(" WHERE key = ")
        .text(key)
        .execute(c)
        .await
}

/// Retires (or with `None`, restores) a domain.
pub async fn set_domain_retired(
    c: &mut AnyConnection,
    key: &str,
    at: Option<Timestamp>,
) -> Result<u64> {
    Sql::new("UPDATE it_domains SET retired_at = ")
        .opt_int(at.map(|t| t.0))
        .push(" WHERE key = ")
        .text(key)
        .execute(c)
        .await
}

fn domain(r: &AnyRow) -> Result<ItDomain> {
    Ok(ItDomain {
        key: text(r, "key")?,
        name: text(r, "name")?,
        description: text(r, "description")?,
        retired_at: opt_ts(r, "retired_at")?,
    })
}

// ---- versions -------------------------------------------------------------------------

fn party(s: &str) -> Result<Party> {
    match s {
        "internal" => Ok(Party::Internal),
        "provider" => Ok(Party::Provider),
        other => Err(StoreError::Corrupt(format!("side {other:?}"))),
    }
}

/// Adds a version.
pub async fn insert_version(c: &mut AnyConnection, v: &AgreementVersion) -> Result<()> {
    let content =
        serde_json::to_string(&v.content).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Sql::new("INSERT INTO agreement_versions (id, client_id, number, status, content_json, based_on, author_side, author, created_at, updated_at) VALUES (")
        .text(format!("{}:{}", v.client_id, v.number)).push(", ")
        .text(v.client_id.to_string()).push(", ")
        .int(v.number).push(", ")
        .text(v.status.as_str()).push(", ")
        .text(content).push(", ")
        .opt_int(v.based_on).push(", ")
        .text(v.author_side.as_str()).push(", ")
        .text(v.author.clone()).push(", ")
        .int(v.created_at.0).push(", ")
        .int(v.updated_at.0).push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// Saves everything about a version that can change after it is made.
pub async fn update_version(c: &mut AnyConnection, v: &AgreementVersion) -> Result<u64> {
    let content =
        serde_json::to_string(&v.content).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let acks = serde_json::to_string(&v.acknowledgements)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Sql::new("UPDATE agreement_versions SET status = ")
        .text(v.status.as_str())
        .push(", content_json = ")
        .text(content)
        .push(", updated_at = ")
        .int(v.updated_at.0)
        .push(", proposed_by = ")
        .opt_text(v.proposed_by.clone())
        .push(", proposed_at = ")
        .opt_int(v.proposed_at.map(|t| t.0))
        .push(", decided_by = ")
        .opt_text(v.decided_by.clone())
        .push(", decided_side = ")
        .opt_text(v.decided_side.map(|p| p.as_str().to_string()))
        .push(", decided_at = ")
        .opt_int(v.decided_at.map(|t| t.0))
        .push(", decision_comment = ")
        .opt_text(v.decision_comment.clone())
        .push(", effective_from = ")
        .opt_int(v.effective_from.map(|t| t.0))
        .push(", acknowledgements_json = ")
        .text(acks)
        .push(" WHERE client_id = ")
        .text(v.client_id.to_string())
        .push(" AND number = ")
        .int(v.number)
        .execute(c)
        .await
}

/// The versions of a client the grant reaches, newest first.
pub async fn list_versions(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
) -> Result<Vec<AgreementVersion>> {
    let mut q = Sql::new("SELECT * FROM agreement_versions WHERE client_id = ");
    q.text(client.to_string())
        .push(" AND ")
        .scope("client_id", grant)
        .push(" ORDER BY number DESC");
    q.fetch_all(c).await?.iter().map(version).collect()
}

/// One version, if the grant reaches it.
pub async fn get_version(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
    number: i64,
) -> Result<Option<AgreementVersion>> {
    let mut q = Sql::new("SELECT * FROM agreement_versions WHERE client_id = ");
    q.text(client.to_string())
        .push(" AND number = ")
        .int(number)
        .push(" AND ")
        .scope("client_id", grant);
    q.fetch_optional(c).await?.as_ref().map(version).transpose()
}

/// (number, status, effective instant) of every accepted version of a client: what
/// `in_force_at` chooses from.
pub async fn accepted_versions(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
) -> Result<Vec<(i64, VersionStatus, Option<Timestamp>)>> {
    let mut q = Sql::new("SELECT number, effective_from FROM agreement_versions WHERE status = 'accepted' AND client_id = ");
    q.text(client.to_string())
        .push(" AND ")
        .scope("client_id", grant);
    q.fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok((
                int(r, "number")?,
                VersionStatus::Accepted,
                opt_int(r, "effective_from")?.map(Timestamp),
            ))
        })
        .collect()
}

/// The next free version number of a client (concurrent writers take turns, see
/// [`crate::query::lock_numbering`]).
pub async fn next_number(c: &mut AnyConnection, client: ClientId) -> Result<i64> {
    crate::query::lock_numbering(c, &format!("agreement_versions:{client}")).await?;
    let r = Sql::new(
        "SELECT COALESCE(MAX(number), 0) + 1 AS n FROM agreement_versions WHERE client_id = ",
    )
    .text(client.to_string())
    .fetch_optional(c)
    .await?;
    Ok(r.map(|r| int(&r, "n")).transpose()?.unwrap_or(1))
}

fn version(r: &AnyRow) -> Result<AgreementVersion> {
    let content = serde_json::from_str(&text(r, "content_json")?)
        .map_err(|e| StoreError::Corrupt(format!("agreement content: {e}")))?;
    let acks = serde_json::from_str(&text(r, "acknowledgements_json")?)
        .map_err(|e| StoreError::Corrupt(format!("acknowledgements: {e}")))?;
    Ok(AgreementVersion {
        client_id: parsed(r, "client_id")?,
        number: int(r, "number")?,
        status: parsed(r, "status")?,
        content,
        based_on: opt_int(r, "based_on")?,
        author_side: party(&text(r, "author_side")?)?,
        author: text(r, "author")?,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
        proposed_by: opt_text(r, "proposed_by")?,
        proposed_at: opt_ts(r, "proposed_at")?,
        decided_by: opt_text(r, "decided_by")?,
        decided_side: opt_text(r, "decided_side")?
            .as_deref()
            .map(party)
            .transpose()?,
        decided_at: opt_ts(r, "decided_at")?,
        decision_comment: opt_text(r, "decision_comment")?,
        effective_from: opt_ts(r, "effective_from")?,
        acknowledgements: acks,
    })
}

// ---- who can act ----------------------------------------------------------------------

/// People who can act for a client, per side: its enabled IT admins, and enabled provider
/// admins and technicians whose access reaches it. Returns (internal, provider) user ids.
pub async fn staff(c: &mut AnyConnection, client: ClientId) -> Result<(Vec<UserId>, Vec<UserId>)> {
    let internal = Sql::new("SELECT id FROM users WHERE disabled = 0 AND role = ")
        .text(Role::ClientItAdmin.as_str())
        .push(" AND client_id = ")
        .text(client.to_string())
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| parsed(r, "id"))
        .collect::<Result<Vec<UserId>>>()?;
    let rows = Sql::new(&format!(
        "SELECT {} FROM users WHERE disabled = 0 AND client_id IS NULL",
        crate::directory::user_columns("users")
    ))
    .fetch_all(c)
    .await?;
    let mut provider = Vec::new();
    for r in &rows {
        let u = crate::directory::user_row(r)?;
        let reaches = match u.role {
            Role::ProviderAdmin => true,
            Role::ProviderTechnician => u.technician.scope().contains(client),
            _ => false,
        };
        if reaches {
            provider.push(u.id);
        }
    }
    Ok((internal, provider))
}

// ---- notifications --------------------------------------------------------------------

/// A message for one person.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Notification {
    /// Its id.
    pub id: String,
    /// The client it concerns.
    pub client_id: Option<ClientId>,
    /// What happened.
    pub message: String,
    /// Where to look.
    pub link: String,
    /// When.
    pub created_at: Timestamp,
    /// When it was read.
    pub read_at: Option<Timestamp>,
}

/// Leaves a message for a person.
pub async fn notify(
    c: &mut AnyConnection,
    user: UserId,
    client: Option<ClientId>,
    message: &str,
    link: &str,
    now: Timestamp,
) -> Result<()> {
    Sql::new(
        "INSERT INTO notifications (id, user_id, client_id, message, link, created_at) VALUES (",
    )
    .text(uuid_like(user, now))
    .push(", ")
    .text(user.to_string())
    .push(", ")
    .opt_text(client.map(|c| c.to_string()))
    .push(", ")
    .text(message)
    .push(", ")
    .text(link)
    .push(", ")
    .int(now.0)
    .push(")")
    .execute(c)
    .await?;
    Ok(())
}

fn uuid_like(user: UserId, now: Timestamp) -> String {
    format!("{}-{}-{}", now.0, user, tandem_domain::TokenId::new())
}

/// A person's newest messages.
pub async fn notifications_of(
    c: &mut AnyConnection,
    user: UserId,
    limit: u32,
) -> Result<Vec<Notification>> {
    Sql::new("SELECT * FROM notifications WHERE user_id = ")
        .text(user.to_string())
        .push(" ORDER BY created_at DESC LIMIT ")
        .int(limit as i64)
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok(Notification {
                id: text(r, "id")?,
                client_id: crate::query::opt_parsed(r, "client_id")?,
                message: text(r, "message")?,
                link: text(r, "link")?,
                created_at: ts(r, "created_at")?,
                read_at: opt_ts(r, "read_at")?,
            })
        })
        .collect()
}

/// Marks all of a person's messages read.
pub async fn mark_notifications_read(
    c: &mut AnyConnection,
    user: UserId,
    now: Timestamp,
) -> Result<u64> {
    Sql::new("UPDATE notifications SET read_at = ")
        .int(now.0)
        .push(" WHERE read_at IS NULL AND user_id = ")
        .text(user.to_string())
        .execute(c)
        .await
}
