-- Mail (issue #5): each client's support address, the per-ticket reply token, the durable
-- outbox written in the same transaction as the ticket change, per-person preferences, and
-- single-use sign-in links (stored hashed).

CREATE TABLE mail_support_addresses (
    client_id TEXT PRIMARY KEY REFERENCES clients(id),
    address TEXT NOT NULL UNIQUE,
    updated_at BIGINT NOT NULL
);

CREATE TABLE mail_ticket_tokens (
    ticket_id TEXT PRIMARY KEY REFERENCES tickets(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    token TEXT NOT NULL UNIQUE
);

CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    client_id TEXT REFERENCES clients(id),
    ticket_id TEXT REFERENCES tickets(id),
    event TEXT NOT NULL,
    recipient_id TEXT REFERENCES users(id),
    to_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    message_id TEXT NOT NULL,
    thread_id TEXT,
    reply_to TEXT,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_by TEXT,
    claimed_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);

CREATE TABLE mail_preferences (
    user_id TEXT NOT NULL REFERENCES users(id),
    event TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    PRIMARY KEY (user_id, event)
);

CREATE TABLE mail_signin_links (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX mail_signin_links_user ON mail_signin_links (user_id);
