//! Ticket attachments (issue #5). An upload is an [`Upload`]: it is authorized when it
//! begins and takes each file's bytes as they arrive (the type is checked on the first chunk,
//! the size on every piece) into a spool — an anonymous temporary file, gone when the upload
//! is — so a slow sender holds no database transaction: no SQLite writer lock, no PostgreSQL
//! connection. [`Upload::commit`] then writes the files, their audit entries and the reply or
//! note they came with in one transaction. Nothing is acknowledged before that commit, and an
//! upload dropped half-way (a refusal, a broken connection) leaves nothing behind.
//!
//! Who sees what: whoever may see a ticket sees its public files; files on internal notes
//! (or attached as internal) only the two IT sides, who alone may attach them. Deleting is
//! for the provider admin and the client's IT admin: the content is erased, the record stays
//! as a tombstone and the ticket's history says who deleted which file.

use crate::tickets::{event, invalid};
use crate::{Actor, App, Audit, Error, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use tandem_domain::attachments::{
    classify, human_size, sanitize_file_name, Attachment, Kind, Refusal, CHUNK_BYTES,
};
use tandem_domain::authz::Action;
use tandem_domain::helpdesk::Ticket;
use tandem_domain::{AttachmentId, EventId, Role, TicketId, Timestamp};
use tandem_store::attachments as store;
use tandem_store::tickets as tickets_store;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// How large and how many files one request may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttachmentLimits {
    /// Largest file, in bytes.
    pub max_bytes: u64,
    /// Most files per request.
    pub max_files: usize,
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        AttachmentLimits {
            max_bytes: tandem_domain::attachments::DEFAULT_MAX_BYTES,
            max_files: tandem_domain::attachments::DEFAULT_MAX_FILES,
        }
    }
}

/// What the files of an upload go with.
#[derive(Clone, Debug, Default)]
pub struct AttachTarget {
    /// Text of a reply or note written with the files (empty: the files alone).
    pub body: String,
    /// Internal: a note, or files only the IT sides see.
    pub internal: bool,
    /// An existing reply or note of the ticket to attach the files to (no new text then).
    pub event_id: Option<EventId>,
}

struct Current {
    att: Attachment,
    declared: Option<String>,
    buf: Vec<u8>,
    /// Where its full chunks are in the spool: (offset, length), in order.
    chunks: Vec<(u64, usize)>,
    size: u64,
    hasher: Sha256,
    kind: Option<Kind>,
}

/// The bytes of an upload until it commits: an anonymous temporary file (deleted by the
/// operating system when it is closed), made on the first chunk.
#[derive(Default)]
struct Spool {
    file: Option<tokio::fs::File>,
    len: u64,
}

impl Spool {
    async fn append(&mut self, bytes: &[u8]) -> Result<(u64, usize)> {
        let spool_error = |e: std::io::Error| Error::Internal(format!("upload spool: {e}"));
        if self.file.is_none() {
            let f = tokio::task::spawn_blocking(tempfile::tempfile)
                .await
                .map_err(|e| Error::Internal(format!("upload spool: {e}")))?
                .map_err(spool_error)?;
            self.file = Some(tokio::fs::File::from_std(f));
        }
        let f = self.file.as_mut().expect("made above");
        f.write_all(bytes).await.map_err(spool_error)?;
        let at = self.len;
        self.len += bytes.len() as u64;
        Ok((at, bytes.len()))
    }

    async fn read(&mut self, (at, len): (u64, usize)) -> Result<Vec<u8>> {
        let spool_error = |e: std::io::Error| Error::Internal(format!("upload spool: {e}"));
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| Error::Internal("upload spool: nothing was spooled".into()))?;
        f.flush().await.map_err(spool_error)?;
        f.seek(std::io::SeekFrom::Start(at))
            .await
            .map_err(spool_error)?;
        let mut buf = vec![0; len];
        f.read_exact(&mut buf).await.map_err(spool_error)?;
        Ok(buf)
    }
}

/// An upload in progress. See the module documentation.
pub struct Upload {
    app: App,
    actor: Actor,
    ticket: Ticket,
    source: &'static str,
    limits: AttachmentLimits,
    spool: Spool,
    files: Vec<Attachment>,
    /// Each finished file's chunks in the spool, in the order of `files`.
    spooled: Vec<Vec<(u64, usize)>>,
    cur: Option<Current>,
}

impl App {
    /// The attachment limits in force.
    pub fn attachment_limits(&self) -> AttachmentLimits {
        self.policy.attachments
    }

    /// Begins an upload of files to a ticket, by anyone who may reply on it. `source` is
    /// `web`, `api` or `mail`.
    pub async fn begin_upload(
        &self,
        actor: &Actor,
        ticket: TicketId,
        source: &'static str,
    ) -> Result<Upload> {
        let t = self.ticket_for_reply(actor, ticket, false).await?;
        Ok(Upload {
            app: self.clone(),
            actor: actor.clone(),
            ticket: t,
            source,
            limits: self.policy.attachments,
            spool: Spool::default(),
            files: Vec::new(),
            spooled: Vec::new(),
            cur: None,
        })
    }

    /// A ticket's files the actor may see (end users: the public ones).
    pub async fn list_attachments(
        &self,
        actor: &Actor,
        ticket: TicketId,
    ) -> Result<Vec<Attachment>> {
        let g = self.grant(actor, Action::TicketsRead)?;
        let t = self.ticket_for(&g, actor, ticket).await?;
        let mut r = self.store.read().await?;
        Ok(store::list_for_ticket(&mut r, t.id, Self::sees_internal(actor)).await?)
    }

    pub(crate) fn sees_internal(actor: &Actor) -> bool {
        actor
            .principal
            .as_ref()
            .is_some_and(|p| p.role != Role::EndUser)
    }

    /// One file's record, if the actor may see it: its ticket must be one they see, and an
    /// internal file is not found for end users. Deleted files are not found either.
    pub async fn get_attachment(&self, actor: &Actor, id: AttachmentId) -> Result<Attachment> {
        let g = self.grant(actor, Action::TicketsRead)?;
        let a = {
            let mut r = self.store.read().await?;
            store::get(&mut r, &g, id).await?
        }
        .filter(|a| a.deleted_at.is_none())
        .filter(|a| a.public || Self::sees_internal(actor))
        .ok_or(Error::NotFound("attachment"))?;
        // The ticket itself must be visible (end users: theirs or watched).
        self.ticket_for(&g, actor, a.ticket_id)
            .await
            .map_err(|_| Error::NotFound("attachment"))?;
        Ok(a)
    }

    /// Chunk `seq` of a file's content, for a download already authorized by
    /// [`App::get_attachment`]. `None` past the end, or when the file was deleted meanwhile.
    pub async fn attachment_chunk(&self, a: &Attachment, seq: i64) -> Result<Option<Vec<u8>>> {
        let mut r = self.store.read().await?;
        Ok(store::chunk(&mut r, a.id, seq).await?)
    }

    /// Deletes a file: its content is erased, its record kept as a tombstone, and the
    /// ticket's history and the audit trail say who deleted it.
    pub async fn delete_attachment(&self, actor: &Actor, id: AttachmentId) -> Result<Attachment> {
        let g = self.grant(actor, Action::AttachmentsDelete)?;
        let a = {
            let mut r = self.store.read().await?;
            store::get(&mut r, &g, id).await?
        }
        .filter(|a| a.deleted_at.is_none())
        .ok_or(Error::NotFound("attachment"))?;
        let t = {
            let mut r = self.store.read().await?;
            tickets_store::get_ticket(&mut r, &g, None, a.ticket_id).await?
        }
        .ok_or(Error::NotFound("attachment"))?;
        let now = Timestamp::now();
        let mut w = self.store.write().await?;
        let by = actor.principal.as_ref().map(|p| p.user_id);
        if !store::delete(&mut w, a.id, by, now).await? {
            return Err(Error::NotFound("attachment"));
        }
        tickets_store::insert_event(
            &mut w,
            &t,
            &event(
                actor,
                now,
                "attachment_deleted",
                format!("Deleted the file {}", a.file_name),
                a.public,
            ),
        )
        .await?;
        Audit::new(actor, "ticket.attachment_deleted", "attachment", a.id)
            .client(Some(a.client_id))
            .before(json!({"ticket_id": a.ticket_id, "number": t.number, "file_name": a.file_name, "size_bytes": a.size_bytes, "sha256": a.sha256}))
            .write(&mut w)
            .await?;
        w.commit().await?;
        Ok(Attachment {
            deleted_at: Some(now),
            ..a
        })
    }
}

impl Upload {
    /// The ticket the files go to.
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// Files finished so far.
    pub fn files(&self) -> &[Attachment] {
        &self.files
    }

    /// Starts the next file. `declared` is the type the sender gave (checked against the
    /// bytes); the name is sanitised.
    pub async fn start_file(&mut self, raw_name: &str, declared: Option<&str>) -> Result<()> {
        if self.cur.is_some() {
            return Err(Error::Internal("a file is already in progress".into()));
        }
        if self.files.len() >= self.limits.max_files {
            return Err(Error::Attachment(Refusal::TooManyFiles {
                limit: self.limits.max_files,
            }));
        }
        let p = self
            .actor
            .principal
            .as_ref()
            .ok_or(Error::Unauthenticated)?;
        let att = Attachment {
            id: AttachmentId::new(),
            ticket_id: self.ticket.id,
            client_id: self.ticket.client_id,
            event_id: None,
            // Decided at commit; internal until then, so nothing half-made is ever public.
            public: false,
            file_name: sanitize_file_name(raw_name),
            content_type: "application/octet-stream".into(),
            size_bytes: 0,
            sha256: String::new(),
            source: self.source.to_string(),
            uploaded_by: Some(p.user_id),
            uploaded_label: p.label.clone(),
            uploaded_side: p.side(),
            created_at: Timestamp::now(),
            deleted_at: None,
        };
        self.cur = Some(Current {
            att,
            declared: declared.map(str::to_string),
            buf: Vec::with_capacity(CHUNK_BYTES),
            chunks: Vec::new(),
            size: 0,
            hasher: Sha256::new(),
            kind: None,
        });
        Ok(())
    }

    /// Takes the next bytes of the current file. Refuses (and the upload must then be
    /// dropped) as soon as the file passes the size limit or its first chunk is not an
    /// accepted type.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let limit = self.limits.max_bytes;
        let cur = self
            .cur
            .as_mut()
            .ok_or_else(|| Error::Internal("no file in progress".into()))?;
        cur.size += bytes.len() as u64;
        if cur.size > limit {
            return Err(Error::Attachment(Refusal::TooLarge {
                name: cur.att.file_name.clone(),
                limit_mb: limit.div_ceil(1024 * 1024),
            }));
        }
        cur.hasher.update(bytes);
        cur.buf.extend_from_slice(bytes);
        while cur.buf.len() >= CHUNK_BYTES {
            if cur.kind.is_none() {
                cur.kind = Some(
                    classify(&cur.buf, false, &cur.att.file_name, cur.declared.as_deref())
                        .map_err(Error::Attachment)?,
                );
            }
            let rest = cur.buf.split_off(CHUNK_BYTES);
            cur.chunks.push(self.spool.append(&cur.buf).await?);
            cur.buf = rest;
            cur.buf.reserve(CHUNK_BYTES.saturating_sub(cur.buf.len()));
        }
        Ok(())
    }

    /// Ends the current file: checks it (if it was smaller than a chunk), spools its last
    /// chunk and records its size and digest.
    pub async fn finish_file(&mut self) -> Result<Attachment> {
        let mut cur = self
            .cur
            .take()
            .ok_or_else(|| Error::Internal("no file in progress".into()))?;
        let kind = match cur.kind {
            Some(k) => k,
            None => classify(&cur.buf, true, &cur.att.file_name, cur.declared.as_deref())
                .map_err(Error::Attachment)?,
        };
        if !cur.buf.is_empty() {
            cur.chunks.push(self.spool.append(&cur.buf).await?);
        }
        let a = Attachment {
            content_type: kind.content_type().to_string(),
            size_bytes: cur.size,
            sha256: hex::encode(cur.hasher.finalize()),
            ..cur.att
        };
        self.files.push(a.clone());
        self.spooled.push(cur.chunks);
        Ok(a)
    }

    /// Writes the files from the spool, the reply or note (if any), ties the files to it,
    /// audits each file and commits, all in one transaction. Only now is the upload
    /// acknowledged.
    pub async fn commit(mut self, target: AttachTarget) -> Result<Vec<Attachment>> {
        if self.cur.is_some() {
            return Err(Error::Internal("a file was not finished".into()));
        }
        let actor = self.actor.clone();
        let body = target.body.trim().to_string();
        if body.len() > 64 * 1024 {
            return Err(invalid("body", "write a reply of up to 64 KiB"));
        }
        if body.is_empty() && self.files.is_empty() {
            return Err(invalid("file", "choose a file to attach, or write a reply"));
        }
        if target.internal {
            // Internal files and notes are for the IT sides; ask for that right too.
            self.app.grant(&actor, Action::TicketsWrite)?;
        }
        let names = self
            .files
            .iter()
            .map(|f| format!("{} ({})", f.file_name, human_size(f.size_bytes)))
            .collect::<Vec<_>>()
            .join(", ");
        // The ticket as it is now (the sender may have been slow): still there, still open,
        // still the caller's to reply on.
        let mut t = self
            .app
            .ticket_for_reply(&actor, self.ticket.id, false)
            .await?;
        let mut w = self.app.store.write().await?;
        for (f, chunks) in self.files.iter().zip(&self.spooled) {
            store::insert(&mut w, f).await?;
            for (seq, &chunk) in chunks.iter().enumerate() {
                let bytes = self.spool.read(chunk).await?;
                store::insert_chunk(&mut w, f.id, seq as i64, &bytes).await?;
            }
            store::finish(
                &mut w,
                f.id,
                &f.content_type,
                f.size_bytes,
                &f.sha256,
                chunks.len() as i64,
            )
            .await?;
        }
        let (event_id, public) = match target.event_id {
            Some(eid) => {
                if !body.is_empty() {
                    return Err(invalid(
                        "comment_id",
                        "attach to an existing reply, or write a new one, not both",
                    ));
                }
                let events = tickets_store::events(&mut w, &t, App::sees_internal(&actor)).await?;
                let e = events.iter().find(|e| e.id == eid).ok_or_else(|| {
                    invalid("comment_id", "choose a reply or note of this ticket")
                })?;
                if !matches!(e.kind.as_str(), "reply" | "note" | "opened") {
                    return Err(invalid(
                        "comment_id",
                        "choose a reply or note of this ticket",
                    ));
                }
                (Some(eid), e.public && !target.internal)
            }
            None if !body.is_empty() => {
                let extra = if self.files.is_empty() || target.internal {
                    String::new()
                } else {
                    format!("\n\nAttached: {names}")
                };
                let id = self
                    .app
                    .write_reply(&mut w, &actor, &mut t, &body, target.internal, &extra)
                    .await?;
                (Some(id), !target.internal)
            }
            None => {
                // Files alone: one history entry names them.
                let e = event(
                    &actor,
                    Timestamp::now(),
                    "attachments",
                    format!("Attached {names}"),
                    !target.internal,
                );
                tickets_store::insert_event(&mut w, &t, &e).await?;
                (Some(e.id), !target.internal)
            }
        };
        let ids: Vec<AttachmentId> = self.files.iter().map(|f| f.id).collect();
        store::link(&mut w, &ids, event_id, public).await?;
        for f in &mut self.files {
            f.event_id = event_id;
            f.public = public;
            Audit::new(&actor, "ticket.attachment_added", "attachment", f.id)
                .client(Some(f.client_id))
                .after(json!({
                    "ticket_id": f.ticket_id,
                    "number": t.number,
                    "file_name": f.file_name,
                    "content_type": f.content_type,
                    "size_bytes": f.size_bytes,
                    "sha256": f.sha256,
                    "public": f.public,
                    "source": f.source,
                }))
                .write(&mut w)
                .await?;
        }
        w.commit().await?;
        Ok(self.files)
    }
}

/// A file that came with an inbound mail message: (name, declared type, bytes).
pub(crate) type MailFile<'a> = (String, Option<String>, &'a [u8]);

impl App {
    /// Stores the files of an inbound mail on a ticket, with `body` as the sender's reply
    /// (empty: the files alone), through the same checks as any upload. A file that is
    /// refused is not stored; the reply names it and says why, so the ticket's history shows
    /// what did not arrive. Returns how many files were stored.
    pub(crate) async fn attach_mail_files(
        &self,
        actor: &Actor,
        ticket: TicketId,
        body: &str,
        files: &[MailFile<'_>],
    ) -> Result<usize> {
        let limits = self.policy.attachments;
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for (raw, declared, bytes) in files {
            let name = sanitize_file_name(raw);
            let verdict = if accepted.len() >= limits.max_files {
                Err(Refusal::TooManyFiles {
                    limit: limits.max_files,
                })
            } else if bytes.len() as u64 > limits.max_bytes {
                Err(Refusal::TooLarge {
                    name: name.clone(),
                    limit_mb: limits.max_bytes.div_ceil(1024 * 1024),
                })
            } else {
                classify(bytes, true, &name, declared.as_deref()).map(|_| ())
            };
            match verdict {
                Ok(()) => accepted.push((name, declared.clone(), *bytes)),
                Err(r) => refused.push(format!("{name}: {r}")),
            }
        }
        let mut text = body.trim().to_string();
        if !refused.is_empty() {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str("Files in the mail that were not attached:\n");
            for r in &refused {
                text.push_str(&format!("- {r}\n"));
            }
        }
        if text.is_empty() && accepted.is_empty() {
            return Ok(0);
        }
        let mut up = self.begin_upload(actor, ticket, "mail").await?;
        for (name, declared, bytes) in &accepted {
            up.start_file(name, declared.as_deref()).await?;
            for piece in bytes.chunks(CHUNK_BYTES) {
                up.write(piece).await?;
            }
            up.finish_file().await?;
        }
        let n = up
            .commit(AttachTarget {
                body: text,
                internal: false,
                event_id: None,
            })
            .await?
            .len();
        Ok(n)
    }
}
