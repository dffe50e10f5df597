-- Ticket attachments (issue #5). A file's record, and its content in chunks of at most
-- 256 KiB, so neither an upload nor a download holds a whole file in memory.
-- `public` = 0: attached to an internal note, seen by the two IT sides only.
-- Deleting erases the content (the chunks) and keeps the record as a tombstone
-- (`deleted_at`, `deleted_by`) for the ticket's history.
CREATE TABLE ticket_attachments (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    event_id TEXT,
    public BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    chunks BIGINT NOT NULL,
    source TEXT NOT NULL,
    uploaded_by TEXT,
    uploaded_label TEXT NOT NULL,
    uploaded_side TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT,
    deleted_by TEXT
);
CREATE INDEX ticket_attachments_ticket ON ticket_attachments (ticket_id, created_at);
CREATE INDEX ticket_attachments_client ON ticket_attachments (client_id);
-- only: sqlite
CREATE TABLE ticket_attachment_chunks (
    attachment_id TEXT NOT NULL REFERENCES ticket_attachments(id),
    seq BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (attachment_id, seq)
);
-- only: postgres
CREATE TABLE ticket_attachment_chunks (
    attachment_id TEXT NOT NULL REFERENCES ticket_attachments(id),
    seq BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (attachment_id, seq)
);
