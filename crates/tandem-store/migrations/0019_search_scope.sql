-- Full-text search at scale (issue #5's measure: 1,000,000 tickets). A search ranks only the
-- most recently opened matches it may see (see `tandem_store::search`), so both backends must
-- find "the newest matches of this tenant" without visiting every match:
--   * `ticket_search` keeps the ticket's client and requester (copies of `tickets`, written in
--     the same transaction as the ticket; neither ever changes), so the tenant filter needs no
--     join to `tickets`;
--   * SQLite: the FTS5 document gets a fifth column, `scope_words`, holding the words
--     `c<client id, hex>` and `r<requester id, hex>`; a search ANDs the caller's tenant words
--     into the match expression, so FTS5 intersects the term's list with the tenant's inside
--     the index. The caller's own words are always limited to the four text columns, so typing
--     a tenant word matches nothing extra; and the SQL tenant filter still applies (the words
--     only narrow, never widen);
--   * PostgreSQL: the GIN indexes hold the client and the document's block (`doc_block`,
--     1,024 documents each; btree_gin, PostgreSQL's contrib), so "this client's matches among
--     the newest documents" is answered inside the index and only those rows are read.

-- The old FTS5 table and its triggers go first (the updates below need not feed them).
-- only: sqlite
DROP TRIGGER ticket_search_ai;
-- only: sqlite
DROP TRIGGER ticket_search_ad;
-- only: sqlite
DROP TRIGGER ticket_search_au;
-- only: sqlite
DROP TABLE ticket_fts;

ALTER TABLE ticket_search ADD COLUMN client_id TEXT;
ALTER TABLE ticket_search ADD COLUMN requester_id TEXT;
-- only: sqlite
ALTER TABLE ticket_search ADD COLUMN scope_words TEXT NOT NULL DEFAULT '';

UPDATE ticket_search SET client_id = (SELECT t.client_id FROM tickets t WHERE t.id = ticket_search.ticket_id), requester_id = (SELECT t.requester_id FROM tickets t WHERE t.id = ticket_search.ticket_id);
-- only: sqlite
UPDATE ticket_search SET scope_words = 'c' || replace(client_id, '-', '') || COALESCE(' r' || replace(requester_id, '-', ''), '');

-- only: sqlite
CREATE VIRTUAL TABLE ticket_fts USING fts5(subject, description, public_text, internal_text, scope_words, content='ticket_search', content_rowid='doc');
-- only: sqlite
CREATE TRIGGER ticket_search_ai AFTER INSERT ON ticket_search BEGIN INSERT INTO ticket_fts (rowid, subject, description, public_text, internal_text, scope_words) VALUES (new.doc, new.subject, new.description, new.public_text, new.internal_text, new.scope_words); END;
-- only: sqlite
CREATE TRIGGER ticket_search_ad AFTER DELETE ON ticket_search BEGIN INSERT INTO ticket_fts (ticket_fts, rowid, subject, description, public_text, internal_text, scope_words) VALUES ('delete', old.doc, old.subject, old.description, old.public_text, old.internal_text, old.scope_words); END;
-- only: sqlite
CREATE TRIGGER ticket_search_au AFTER UPDATE ON ticket_search BEGIN INSERT INTO ticket_fts (ticket_fts, rowid, subject, description, public_text, internal_text, scope_words) VALUES ('delete', old.doc, old.subject, old.description, old.public_text, old.internal_text, old.scope_words); INSERT INTO ticket_fts (rowid, subject, description, public_text, internal_text, scope_words) VALUES (new.doc, new.subject, new.description, new.public_text, new.internal_text, new.scope_words); END;
-- only: sqlite
INSERT INTO ticket_fts (ticket_fts) VALUES ('rebuild');

-- only: postgres
CREATE EXTENSION IF NOT EXISTS btree_gin;
-- only: postgres
DROP INDEX ticket_search_public;
-- only: postgres
DROP INDEX ticket_search_all;
-- only: postgres
ALTER TABLE ticket_search ADD COLUMN doc_block BIGINT GENERATED ALWAYS AS (doc / 1024) STORED;
-- only: postgres
CREATE INDEX ticket_search_public ON ticket_search USING GIN (client_id, doc_block, doc_public);
-- only: postgres
CREATE INDEX ticket_search_all ON ticket_search USING GIN (client_id, doc_block, doc_all);
