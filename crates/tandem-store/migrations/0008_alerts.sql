-- Monitoring and alerts (issue #6): alerts with their timeline, the compact per-endpoint
-- facts checks read, per-check evaluation state, monitoring policies per level, endpoint
-- groups, accepted local-admin baselines, and the lease that lets one server run a pass.

CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    endpoint_id TEXT REFERENCES endpoints(id),
    source TEXT NOT NULL,
    check_key TEXT,
    dedup_key TEXT NOT NULL,
    -- client id + dedup key while the alert is open, NULL once resolved: at most one open
    -- alert per key, enforced by the database on both backends.
    open_key TEXT UNIQUE,
    grouping_key TEXT NOT NULL,
    domain TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    state TEXT NOT NULL,
    owner_side TEXT NOT NULL,
    route_window TEXT,
    owner_on_shift BIGINT NOT NULL,
    route_reason TEXT NOT NULL,
    fired_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT REFERENCES users(id),
    acknowledged_label TEXT,
    acknowledged_side TEXT,
    resolved_at BIGINT,
    resolution TEXT,
    notified_at BIGINT NOT NULL,
    renotify_minutes BIGINT,
    flapping BIGINT NOT NULL DEFAULT 0,
    ticket_id TEXT REFERENCES tickets(id)
);
CREATE INDEX alerts_client ON alerts (client_id, state, fired_at);
CREATE INDEX alerts_fired ON alerts (fired_at);

CREATE TABLE alert_events (
    id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor_id TEXT REFERENCES users(id),
    actor_label TEXT NOT NULL,
    actor_side TEXT NOT NULL,
    body TEXT NOT NULL,
    notify BIGINT NOT NULL
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, at);

CREATE TABLE endpoint_facts (
    endpoint_id TEXT PRIMARY KEY REFERENCES endpoints(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    seen_at BIGINT,
    inventory_at BIGINT,
    facts TEXT NOT NULL
);

CREATE TABLE check_states (
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
    check_key TEXT NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id),
    state TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, check_key)
);

CREATE TABLE admin_baselines (
    endpoint_id TEXT PRIMARY KEY REFERENCES endpoints(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    admins TEXT NOT NULL,
    accepted_by TEXT REFERENCES users(id),
    accepted_label TEXT NOT NULL,
    accepted_at BIGINT NOT NULL
);

CREATE TABLE monitoring_policies (
    id TEXT PRIMARY KEY,
    client_id TEXT REFERENCES clients(id),
    level TEXT NOT NULL,
    target_id TEXT NOT NULL,
    checks TEXT NOT NULL,
    exclusions TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (level, target_id)
);

CREATE TABLE endpoint_groups (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (client_id, name)
);

CREATE TABLE endpoint_group_members (
    group_id TEXT NOT NULL REFERENCES endpoint_groups(id),
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    PRIMARY KEY (group_id, endpoint_id)
);

CREATE TABLE monitoring_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO monitoring_leases (name, holder, expires_at) VALUES ('evaluation', '', 0);
