-- Full-text search over tickets (issue #5). `ticket_search` holds, per ticket, the text a
-- search may match: subject, description, the public replies, and the internal notes in a
-- column of their own (end users never match it). The store's write path keeps it (a ticket
-- opened, a reply or note added); each backend indexes it its own way:
--   SQLite: an FTS5 external-content table over `ticket_search`, kept by triggers;
--   PostgreSQL: two weighted tsvector columns (public text; everything) with GIN indexes.
-- A statement preceded by "-- only: sqlite" or "-- only: postgres" runs on that backend only.

-- only: sqlite
CREATE TABLE ticket_search (
    doc INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL UNIQUE REFERENCES tickets(id),
    subject TEXT NOT NULL,
    description TEXT NOT NULL,
    public_text TEXT NOT NULL,
    internal_text TEXT NOT NULL
);
-- only: postgres
CREATE TABLE ticket_search (
    doc BIGSERIAL PRIMARY KEY,
    ticket_id TEXT NOT NULL UNIQUE REFERENCES tickets(id),
    subject TEXT NOT NULL,
    description TEXT NOT NULL,
    public_text TEXT NOT NULL,
    internal_text TEXT NOT NULL
);
-- only: sqlite
CREATE VIRTUAL TABLE ticket_fts USING fts5(subject, description, public_text, internal_text, content='ticket_search', content_rowid='doc');
-- only: sqlite
CREATE TRIGGER ticket_search_ai AFTER INSERT ON ticket_search BEGIN INSERT INTO ticket_fts (rowid, subject, description, public_text, internal_text) VALUES (new.doc, new.subject, new.description, new.public_text, new.internal_text); END;
-- only: sqlite
CREATE TRIGGER ticket_search_ad AFTER DELETE ON ticket_search BEGIN INSERT INTO ticket_fts (ticket_fts, rowid, subject, description, public_text, internal_text) VALUES ('delete', old.doc, old.subject, old.description, old.public_text, old.internal_text); END;
-- only: sqlite
CREATE TRIGGER ticket_search_au AFTER UPDATE ON ticket_search BEGIN INSERT INTO ticket_fts (ticket_fts, rowid, subject, description, public_text, internal_text) VALUES ('delete', old.doc, old.subject, old.description, old.public_text, old.internal_text); INSERT INTO ticket_fts (rowid, subject, description, public_text, internal_text) VALUES (new.doc, new.subject, new.description, new.public_text, new.internal_text); END;
-- only: postgres
ALTER TABLE ticket_search ADD COLUMN doc_public tsvector GENERATED ALWAYS AS (setweight(to_tsvector('simple'::regconfig, subject), 'A') || setweight(to_tsvector('simple'::regconfig, description), 'B') || setweight(to_tsvector('simple'::regconfig, public_text), 'C')) STORED;
-- only: postgres
ALTER TABLE ticket_search ADD COLUMN doc_all tsvector GENERATED ALWAYS AS (setweight(to_tsvector('simple'::regconfig, subject), 'A') || setweight(to_tsvector('simple'::regconfig, description), 'B') || setweight(to_tsvector('simple'::regconfig, public_text), 'C') || setweight(to_tsvector('simple'::regconfig, internal_text), 'D')) STORED;
-- only: postgres
CREATE INDEX ticket_search_public ON ticket_search USING GIN (doc_public);
-- only: postgres
CREATE INDEX ticket_search_all ON ticket_search USING GIN (doc_all);

-- Tickets opened before this migration.
INSERT INTO ticket_search (ticket_id, subject, description, public_text, internal_text)
SELECT id, subject, description, '', '' FROM tickets;
-- only: sqlite
UPDATE ticket_search SET public_text = COALESCE((SELECT group_concat(e.body, ' ') FROM ticket_events e WHERE e.ticket_id = ticket_search.ticket_id AND e.kind = 'reply' AND e.public = 1), ''), internal_text = COALESCE((SELECT group_concat(e.body, ' ') FROM ticket_events e WHERE e.ticket_id = ticket_search.ticket_id AND e.kind = 'note' AND e.public = 0), '');
-- only: postgres
UPDATE ticket_search SET public_text = COALESCE((SELECT string_agg(e.body, ' ') FROM ticket_events e WHERE e.ticket_id = ticket_search.ticket_id AND e.kind = 'reply' AND e.public = 1), ''), internal_text = COALESCE((SELECT string_agg(e.body, ' ') FROM ticket_events e WHERE e.ticket_id = ticket_search.ticket_id AND e.kind = 'note' AND e.public = 0), '');

-- The queue across every client a grant reaches, most recently changed first.
CREATE INDEX tickets_recent ON tickets (updated_at, id);

-- Per-user saved views of the ticket queue: a name and the queue's filter as a query string.
CREATE TABLE ticket_views (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, name)
);
