-- Ticket data features (issue #5, part 2): watchers, tags, related links, merges, SLA
-- policies per client and priority, and the SLA warning/breach events the sweeper claims.

CREATE TABLE ticket_watchers (
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    added_at BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, user_id)
);
CREATE INDEX ticket_watchers_user ON ticket_watchers (user_id);

CREATE TABLE ticket_tags (
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    tag TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id),
    PRIMARY KEY (ticket_id, tag)
);
CREATE INDEX ticket_tags_tag ON ticket_tags (client_id, tag);

-- One row per direction, so each side of the link finds it by its own id.
CREATE TABLE ticket_links (
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    other_id TEXT NOT NULL REFERENCES tickets(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (ticket_id, other_id)
);

CREATE TABLE ticket_merges (
    source_id TEXT PRIMARY KEY REFERENCES tickets(id),
    target_id TEXT NOT NULL REFERENCES tickets(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    merged_at BIGINT NOT NULL
);
CREATE INDEX ticket_merges_target ON ticket_merges (target_id);

CREATE TABLE sla_policies (
    client_id TEXT NOT NULL REFERENCES clients(id),
    priority TEXT NOT NULL,
    response_minutes BIGINT NOT NULL,
    resolution_minutes BIGINT NOT NULL,
    warn_percent BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT REFERENCES users(id),
    PRIMARY KEY (client_id, priority)
);

-- Each (ticket, clock, kind) is claimed once, whichever replica's sweeper gets there first.
-- `seq` is taken from sla_event_seq inside the claiming transaction, so readers following a
-- cursor see events in commit order.
CREATE TABLE sla_events (
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    clock TEXT NOT NULL,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id),
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (ticket_id, clock, kind)
);
CREATE INDEX sla_events_seq ON sla_events (seq);
CREATE INDEX sla_events_client ON sla_events (client_id, kind);

CREATE TABLE sla_event_seq (
    id BIGINT PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO sla_event_seq (id, n) VALUES (1, 0);
