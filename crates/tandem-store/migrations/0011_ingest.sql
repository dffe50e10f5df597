-- Ingest (issue #6): integration tokens that machine senders (Prometheus Alertmanager, the
-- generic JSON webhook) present to post a client's alerts. The secret is stored only as its
-- SHA-256; the token decides the client.

CREATE TABLE integration_tokens (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(id),
    label TEXT NOT NULL,
    prefix TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    default_domain TEXT NOT NULL,
    created_by TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX integration_tokens_client ON integration_tokens (client_id, created_at);
