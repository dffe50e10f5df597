-- Endpoints and their agents: site-scoped enrollment tokens, each endpoint's current state
-- (with the facts the fleet list filters on in their own columns), and its change timeline.

CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    site_id TEXT NOT NULL REFERENCES sites(id),
    label TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    max_uses BIGINT,
    uses BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX enrollment_tokens_client ON enrollment_tokens (client_id, created_at);

CREATE TABLE endpoints (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    site_id TEXT NOT NULL REFERENCES sites(id),
    enrolled_with TEXT REFERENCES enrollment_tokens(id),
    public_key TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL,
    os_family TEXT NOT NULL,
    arch TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    last_seq BIGINT NOT NULL DEFAULT 0,
    last_inventory_at BIGINT,
    -- The summary, one column per fleet filter; NULL where the agent could not tell.
    os TEXT,
    kernel TEXT,
    pending_updates BIGINT,
    security_updates BIGINT,
    reboot_required BIGINT,
    firewall_enabled BIGINT,
    disk_encrypted BIGINT,
    package_count BIGINT,
    -- The latest heartbeat and the whole current inventory, as the agent sent them (JSON).
    heartbeat TEXT,
    inventory TEXT,
    retired_at BIGINT
);
CREATE INDEX endpoints_client ON endpoints (client_id, hostname);
CREATE INDEX endpoints_site ON endpoints (site_id);

CREATE TABLE endpoint_events (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    items TEXT NOT NULL
);
CREATE INDEX endpoint_events_endpoint ON endpoint_events (endpoint_id, at);
