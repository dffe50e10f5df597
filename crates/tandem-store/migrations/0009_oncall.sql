-- On-call (issue #6): schedules per side, escalation policies, pages and their steps,
-- calendar feed tokens. A NULL client_id is the provider side's (provider-wide) record.

CREATE TABLE oncall_schedules (
    id TEXT PRIMARY KEY,
    client_id TEXT REFERENCES clients(id),
    side TEXT NOT NULL,
    name TEXT NOT NULL,
    rules TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX oncall_schedules_client ON oncall_schedules (client_id);

-- One policy per side and scope: scope_key is 'provider' or 'internal:<client id>'.
CREATE TABLE oncall_policies (
    id TEXT PRIMARY KEY,
    client_id TEXT REFERENCES clients(id),
    side TEXT NOT NULL,
    scope_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    rules TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- open_key is '<client>|<dedup key>' while the page is not resolved, NULL after: opening
-- the same problem twice while it is open answers the page already open.
CREATE TABLE oncall_pages (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    domain TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    open_key TEXT UNIQUE,
    summary TEXT NOT NULL,
    severity TEXT NOT NULL,
    link TEXT,
    side TEXT NOT NULL,
    policy_id TEXT REFERENCES oncall_policies(id),
    other_side_ok BIGINT NOT NULL,
    status TEXT NOT NULL,
    step BIGINT NOT NULL,
    next_step_at BIGINT,
    opened_at BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT REFERENCES users(id),
    resolved_at BIGINT,
    resolved_by TEXT REFERENCES users(id)
);
CREATE INDEX oncall_pages_due ON oncall_pages (status, next_step_at);
CREATE INDEX oncall_pages_client ON oncall_pages (client_id, status, opened_at);

CREATE TABLE oncall_page_events (
    id TEXT PRIMARY KEY,
    page_id TEXT NOT NULL REFERENCES oncall_pages(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT REFERENCES users(id),
    body TEXT NOT NULL
);
CREATE INDEX oncall_page_events_page ON oncall_page_events (page_id, at);

-- Calendar feeds: the token is in the URL; only its SHA-256 is kept.
CREATE TABLE oncall_feeds (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    schedule_id TEXT REFERENCES oncall_schedules(id),
    user_id TEXT REFERENCES users(id),
    client_id TEXT REFERENCES clients(id),
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Shift handoffs: one record per client and change instant (several servers may try to
-- write it; the unique key keeps one).
CREATE TABLE oncall_handoffs (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    at BIGINT NOT NULL,
    from_side TEXT NOT NULL,
    to_side TEXT NOT NULL,
    items TEXT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT REFERENCES users(id),
    page_id TEXT REFERENCES oncall_pages(id),
    created_at BIGINT NOT NULL,
    UNIQUE (client_id, at)
);
CREATE INDEX oncall_handoffs_open ON oncall_handoffs (acknowledged_at, at);

CREATE TABLE oncall_handoff_notes (
    id TEXT PRIMARY KEY,
    handoff_id TEXT NOT NULL REFERENCES oncall_handoffs(id),
    at BIGINT NOT NULL,
    author_id TEXT REFERENCES users(id),
    author_label TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX oncall_handoff_notes_handoff ON oncall_handoff_notes (handoff_id, at);
