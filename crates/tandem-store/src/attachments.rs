//! Ticket attachments (issue #5): a record per file and its content in chunks of at most
//! [`CHUNK_BYTES`](tandem_domain::attachments::CHUNK_BYTES), written one by one inside the
//! upload's write transaction and read one by one for a download. Reads by id are scoped by
//! the grant; which tickets an end user reaches is the caller's check (as for tickets).

use crate::query::{int, opt_parsed, opt_ts, parsed, text, ts, Sql};
use crate::{Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tandem_domain::attachments::Attachment;
use tandem_domain::authz::Grant;
use tandem_domain::{AttachmentId, EventId, Side, TicketId, Timestamp, UserId};

/// Stores a new attachment's record. Called before its chunks (they refer to it); its size,
/// digest and chunk count are set by [`finish`] once the last chunk is written.
pub async fn insert(c: &mut AnyConnection, a: &Attachment) -> Result<()> {
    Sql::new("INSERT INTO ticket_attachments (id, ticket_id, client_id, event_id, public, file_name, content_type, size_bytes, sha256, chunks, source, uploaded_by, uploaded_label, uploaded_side, created_at) VALUES (")
        .text(a.id.to_string())
        .push(", ")
        .text(a.ticket_id.to_string())
        .push(", ")
        .text(a.client_id.to_string())
        .push(", ")
        .opt_text(a.event_id.map(|e| e.to_string()))
        .push(", ")
        .int(i64::from(a.public))
        .push(", ")
        .text(a.file_name.clone())
        .push(", ")
        .text(a.content_type.clone())
        .push(", ")
        .int(size_i64(a.size_bytes)?)
        .push(", ")
        .text(a.sha256.clone())
        .push(", 0, ")
        .text(a.source.clone())
        .push(", ")
        .opt_text(a.uploaded_by.map(|u| u.to_string()))
        .push(", ")
        .text(a.uploaded_label.clone())
        .push(", ")
        .text(a.uploaded_side.as_str())
        .push(", ")
        .int(a.created_at.0)
        .push(")")
        .execute(c)
        .await?;
    Ok(())
}

fn size_i64(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt("size out of range".into()))
}

/// Writes chunk `seq` (0, 1, …) of an attachment's content.
pub async fn insert_chunk(
    c: &mut AnyConnection,
    id: AttachmentId,
    seq: i64,
    data: &[u8],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ticket_attachment_chunks (attachment_id, seq, data) VALUES ($1, $2, $3)",
    )
    .bind(id.to_string())
    .bind(seq)
    .bind(data.to_vec())
    .execute(c)
    .await?;
    Ok(())
}

/// Records an attachment's final content type, size, digest and number of chunks.
pub async fn finish(
    c: &mut AnyConnection,
    id: AttachmentId,
    content_type: &str,
    size: u64,
    sha256: &str,
    chunks: i64,
) -> Result<()> {
    Sql::new("UPDATE ticket_attachments SET content_type = ")
        .text(content_type)
        .push(", size_bytes = ")
        .int(size_i64(size)?)
        .push(", sha256 = ")
        .text(sha256)
        .push(", chunks = ")
        .int(chunks)
        .push(" WHERE id = ")
        .text(id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Ties attachments to the reply or note they came with, and sets who sees them.
pub async fn link(
    c: &mut AnyConnection,
    ids: &[AttachmentId],
    event: Option<EventId>,
    public: bool,
) -> Result<()> {
    for id in ids {
        Sql::new("UPDATE ticket_attachments SET event_id = ")
            .opt_text(event.map(|e| e.to_string()))
            .push(", public = ")
            .int(i64::from(public))
            .push(" WHERE id = ")
            .text(id.to_string())
            .execute(c)
            .await?;
    }
    Ok(())
}

/// A ticket's attachments that are not deleted, oldest first; internal ones only when
/// `with_internal`.
pub async fn list_for_ticket(
    c: &mut AnyConnection,
    ticket: TicketId,
    with_internal: bool,
) -> Result<Vec<Attachment>> {
    let mut q = Sql::new("SELECT * FROM ticket_attachments WHERE ticket_id = ");
    q.text(ticket.to_string()).push(" AND deleted_at IS NULL");
    if !with_internal {
        q.push(" AND public = 1");
    }
    q.push(" ORDER BY created_at, id");
    q.fetch_all(c).await?.iter().map(row).collect()
}

/// One attachment (deleted ones too), if the grant reaches its client.
pub async fn get(
    c: &mut AnyConnection,
    grant: &Grant,
    id: AttachmentId,
) -> Result<Option<Attachment>> {
    let mut q = Sql::new("SELECT * FROM ticket_attachments WHERE id = ");
    q.text(id.to_string()).push(" AND ");
    q.scope("client_id", grant);
    q.fetch_optional(c).await?.as_ref().map(row).transpose()
}

/// Chunk `seq` of an attachment's content, if it exists.
pub async fn chunk(c: &mut AnyConnection, id: AttachmentId, seq: i64) -> Result<Option<Vec<u8>>> {
    let r = sqlx::query(
        "SELECT data FROM ticket_attachment_chunks WHERE attachment_id = $1 AND seq = $2",
    )
    .bind(id.to_string())
    .bind(seq)
    .fetch_optional(c)
    .await?;
    match r {
        None => Ok(None),
        Some(r) => Ok(Some(r.try_get::<Vec<u8>, _>("data")?)),
    }
}

/// Erases an attachment's content and marks its record deleted. Returns false if it was
/// already deleted (by someone else first).
pub async fn delete(
    c: &mut AnyConnection,
    id: AttachmentId,
    by: Option<UserId>,
    at: Timestamp,
) -> Result<bool> {
    let n = Sql::new("UPDATE ticket_attachments SET deleted_at = ")
        .int(at.0)
        .push(", deleted_by = ")
        .opt_text(by.map(|u| u.to_string()))
        .push(" WHERE deleted_at IS NULL AND id = ")
        .text(id.to_string())
        .execute(c)
        .await?;
    if n == 0 {
        return Ok(false);
    }
    Sql::new("DELETE FROM ticket_attachment_chunks WHERE attachment_id = ")
        .text(id.to_string())
        .execute(c)
        .await?;
    Ok(true)
}

/// Chunks stored for an attachment (for tests and checks).
pub async fn chunk_count(c: &mut AnyConnection, id: AttachmentId) -> Result<i64> {
    let r = Sql::new("SELECT COUNT(*) AS n FROM ticket_attachment_chunks WHERE attachment_id = ")
        .text(id.to_string())
        .fetch_optional(c)
        .await?;
    r.as_ref().map_or(Ok(0), |r| int(r, "n"))
}

/// Every attachment record and chunk in the database (for tests that nothing was kept).
pub async fn totals(c: &mut AnyConnection) -> Result<(i64, i64)> {
    let a = Sql::new("SELECT COUNT(*) AS n FROM ticket_attachments")
        .fetch_optional(c)
        .await?;
    let a = a.as_ref().map_or(Ok(0), |r| int(r, "n"))?;
    let b = Sql::new("SELECT COUNT(*) AS n FROM ticket_attachment_chunks")
        .fetch_optional(c)
        .await?;
    let b = b.as_ref().map_or(Ok(0), |r| int(r, "n"))?;
    Ok((a, b))
}

fn side(s: &str) -> Result<Side> {
    Ok(match s {
        "provider" => Side::Provider,
        "client" => Side::Client,
        "outside" => Side::Outside,
        "system" => Side::System,
        other => return Err(StoreError::Corrupt(format!("uploaded_side {other:?}"))),
    })
}

fn row(r: &AnyRow) -> Result<Attachment> {
    Ok(Attachment {
        id: parsed(r, "id")?,
        ticket_id: parsed(r, "ticket_id")?,
        client_id: parsed(r, "client_id")?,
        event_id: opt_parsed(r, "event_id")?,
        public: int(r, "public")? != 0,
        file_name: text(r, "file_name")?,
        content_type: text(r, "content_type")?,
        size_bytes: u64::try_from(int(r, "size_bytes")?)
            .map_err(|_| StoreError::Corrupt("size_bytes".into()))?,
        sha256: text(r, "sha256")?,
        source: text(r, "source")?,
        uploaded_by: opt_parsed(r, "uploaded_by")?,
        uploaded_label: text(r, "uploaded_label")?,
        uploaded_side: side(&text(r, "uploaded_side")?)?,
        created_at: ts(r, "created_at")?,
        deleted_at: opt_ts(r, "deleted_at")?,
    })
}
