//! CSV ticket import (issue #5): the keys of imported rows per client (a re-run skips them),
//! each client's saved column mapping, and files staged between the web UI's upload and the
//! commit. Reads are scoped by the grant.

use crate::query::{int, parsed, text, ts, Sql};
use crate::Result;
use sqlx::AnyConnection;
use std::collections::BTreeSet;
use tandem_domain::authz::Grant;
use tandem_domain::{ClientId, TicketId, Timestamp, UserId};

/// How long a staged upload is kept: a day is ample to finish the mapping form.
pub const UPLOAD_TTL_SECONDS: i64 = 86_400;

/// The import keys already used for a client (the grant must reach it).
pub async fn imported_keys(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
) -> Result<BTreeSet<String>> {
    let mut q = Sql::new("SELECT import_key FROM ticket_import_keys WHERE client_id = ");
    q.text(client.to_string()).push(" AND ");
    q.scope("client_id", grant);
    q.fetch_all(c)
        .await?
        .iter()
        .map(|r| text(r, "import_key"))
        .collect()
}

/// Records that `key` of `client` became `ticket` (inside the write that created it). A key
/// recorded by a concurrent import is a conflict, which rolls the whole import back.
pub async fn insert_key(
    c: &mut AnyConnection,
    client: ClientId,
    key: &str,
    ticket: TicketId,
    at: Timestamp,
) -> Result<()> {
    Sql::new(
        "INSERT INTO ticket_import_keys (client_id, import_key, ticket_id, imported_at) VALUES (",
    )
    .text(client.to_string())
    .push(", ")
    .text(key)
    .push(", ")
    .text(ticket.to_string())
    .push(", ")
    .int(at.0)
    .push(")")
    .execute(c)
    .await
    .map_err(|e| match e {
        crate::StoreError::Conflict(_) => crate::StoreError::Conflict(
            "another import of the same rows finished first; run it again to see what is left"
                .into(),
        ),
        other => other,
    })?;
    Ok(())
}

/// A client's saved mapping (JSON), if any.
pub async fn mapping(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
) -> Result<Option<String>> {
    let mut q = Sql::new("SELECT mapping FROM ticket_import_mappings WHERE client_id = ");
    q.text(client.to_string()).push(" AND ");
    q.scope("client_id", grant);
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map(|r| text(r, "mapping"))
        .transpose()
}

/// Saves (or replaces) a client's mapping.
pub async fn save_mapping(
    c: &mut AnyConnection,
    client: ClientId,
    mapping: &str,
    by: UserId,
    at: Timestamp,
) -> Result<()> {
    Sql::new("INSERT INTO ticket_import_mappings (client_id, mapping, updated_by, updated_at) VALUES (")
        .text(client.to_string())
        .push(", ")
        .text(mapping)
        .push(", ")
        .text(by.to_string())
        .push(", ")
        .int(at.0)
        .push(") ON CONFLICT (client_id) DO UPDATE SET mapping = excluded.mapping, updated_by = excluded.updated_by, updated_at = excluded.updated_at")
        .execute(c)
        .await?;
    Ok(())
}

/// A file staged for import.
#[derive(Clone, Debug)]
pub struct Upload {
    /// Its id (UUIDv7).
    pub id: String,
    /// The client it is for.
    pub client_id: ClientId,
    /// Who uploaded it.
    pub uploaded_by: UserId,
    /// When.
    pub uploaded_at: Timestamp,
    /// The file's name, as the browser gave it.
    pub file_name: String,
    /// The file, as UTF-8 text (checked when staged).
    pub content: String,
}

/// Stages a file, and forgets files staged more than [`UPLOAD_TTL_SECONDS`] ago.
pub async fn insert_upload(c: &mut AnyConnection, u: &Upload) -> Result<()> {
    Sql::new("DELETE FROM ticket_import_uploads WHERE uploaded_at < ")
        .int(u.uploaded_at.0 - UPLOAD_TTL_SECONDS * Timestamp::SECOND)
        .execute(c)
        .await?;
    Sql::new("INSERT INTO ticket_import_uploads (id, client_id, uploaded_by, uploaded_at, file_name, content) VALUES (")
        .text(u.id.clone())
        .push(", ")
        .text(u.client_id.to_string())
        .push(", ")
        .text(u.uploaded_by.to_string())
        .push(", ")
        .int(u.uploaded_at.0)
        .push(", ")
        .text(u.file_name.clone())
        .push(", ")
        .text(u.content.clone())
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

/// A staged file of `client` that the grant reaches and that has not expired.
pub async fn upload(
    c: &mut AnyConnection,
    grant: &Grant,
    client: ClientId,
    id: &str,
    now: Timestamp,
) -> Result<Option<Upload>> {
    let mut q = Sql::new("SELECT * FROM ticket_import_uploads WHERE id = ");
    q.text(id)
        .push(" AND client_id = ")
        .text(client.to_string())
        .push(" AND uploaded_at >= ")
        .int(now.0 - UPLOAD_TTL_SECONDS * Timestamp::SECOND)
        .push(" AND ");
    q.scope("client_id", grant);
    let Some(r) = q.fetch_optional(c).await? else {
        return Ok(None);
    };
    Ok(Some(Upload {
        id: text(&r, "id")?,
        client_id: parsed(&r, "client_id")?,
        uploaded_by: parsed(&r, "uploaded_by")?,
        uploaded_at: ts(&r, "uploaded_at")?,
        file_name: text(&r, "file_name")?,
        content: text(&r, "content")?,
    }))
}

/// Forgets a staged file (after its commit).
pub async fn delete_upload(c: &mut AnyConnection, id: &str) -> Result<()> {
    Sql::new("DELETE FROM ticket_import_uploads WHERE id = ")
        .text(id)
        .execute(c)
        .await?;
    Ok(())
}

/// How many tickets of a client came from imports.
pub async fn imported_count(c: &mut AnyConnection, grant: &Grant, client: ClientId) -> Result<i64> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM ticket_import_keys WHERE client_id = ");
    q.text(client.to_string()).push(" AND ");
    q.scope("client_id", grant);
    q.fetch_optional(c)
        .await?
        .as_ref()
        .map_or(Ok(0), |r| int(r, "n"))
}
