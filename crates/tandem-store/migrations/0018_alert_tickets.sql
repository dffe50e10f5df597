-- sqlite: foreign keys off
-- An alert can open or update a ticket according to policy (issue #6).
--
-- 1. A ticket opened by Tandem itself (monitoring, an integration's alert) has no human
--    creator: `tickets.created_by` becomes nullable (NULL: opened by Tandem; the ticket's
--    "opened" history entry and audit entry name which part of Tandem). PostgreSQL drops the
--    constraint in place; SQLite cannot, so the table is rebuilt the way SQLite documents
--    (new table, copy, drop, rename, indexes again). The directive on this file's first line
--    makes the runner switch SQLite's foreign-key enforcement off around this migration's
--    transaction and run `PRAGMA foreign_key_check` before committing: dropping `tickets` with
--    enforcement on would fail for the rows that reference it. Nothing else hangs on
--    `tickets` itself (search triggers are on `ticket_search`).
-- 2. Alerts remember whether their ticket is resolved with them (the rule at firing), and
--    are found by ticket (a ticket shows its alerts).
-- 3. Integration tokens carry the ticket rule for the alerts their sender posts.

-- only: postgres
ALTER TABLE tickets ALTER COLUMN created_by DROP NOT NULL;
-- only: sqlite
CREATE TABLE tickets_rebuilt (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    number BIGINT NOT NULL,
    site_id TEXT REFERENCES sites(id),
    requester_id TEXT REFERENCES users(id),
    subject TEXT NOT NULL,
    description TEXT NOT NULL,
    domain TEXT NOT NULL,
    owner_side TEXT NOT NULL,
    assignee_id TEXT REFERENCES users(id),
    assignee_hint TEXT,
    impact TEXT NOT NULL,
    urgency TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    created_by TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    first_response_at BIGINT,
    resolved_at BIGINT,
    closed_at BIGINT,
    clock TEXT NOT NULL,
    UNIQUE (client_id, number)
);
-- only: sqlite
INSERT INTO tickets_rebuilt (id, client_id, number, site_id, requester_id, subject, description, domain, owner_side, assignee_id, assignee_hint, impact, urgency, priority, status, created_by, created_at, updated_at, first_response_at, resolved_at, closed_at, clock)
SELECT id, client_id, number, site_id, requester_id, subject, description, domain, owner_side, assignee_id, assignee_hint, impact, urgency, priority, status, created_by, created_at, updated_at, first_response_at, resolved_at, closed_at, clock FROM tickets;
-- only: sqlite
DROP TABLE tickets;
-- only: sqlite
ALTER TABLE tickets_rebuilt RENAME TO tickets;
-- only: sqlite
CREATE INDEX tickets_queue ON tickets (client_id, status, updated_at);
-- only: sqlite
CREATE INDEX tickets_requester ON tickets (requester_id);
-- only: sqlite
CREATE INDEX tickets_recent ON tickets (updated_at, id);

ALTER TABLE alerts ADD COLUMN ticket_auto_resolve BIGINT NOT NULL DEFAULT 0;
CREATE INDEX alerts_ticket ON alerts (ticket_id);

ALTER TABLE integration_tokens ADD COLUMN ticket_mode TEXT NOT NULL DEFAULT 'none';
ALTER TABLE integration_tokens ADD COLUMN ticket_impact TEXT;
ALTER TABLE integration_tokens ADD COLUMN ticket_urgency TEXT;
