-- Helpdesk tickets: one ticket both sides work from, its history, and its SLA clock (the
-- owner and pause changes over its life, as JSON segments).

CREATE TABLE tickets (
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
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    first_response_at BIGINT,
    resolved_at BIGINT,
    closed_at BIGINT,
    clock TEXT NOT NULL,
    UNIQUE (client_id, number)
);
CREATE INDEX tickets_queue ON tickets (client_id, status, updated_at);
CREATE INDEX tickets_requester ON tickets (requester_id);

CREATE TABLE ticket_events (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    at BIGINT NOT NULL,
    actor_id TEXT REFERENCES users(id),
    actor_label TEXT NOT NULL,
    actor_side TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    public BIGINT NOT NULL
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, at);
