-- Notification channels (issue #6): where a side sends word of alerts, pages and SLA events
-- (e-mail, signed webhook, Slack, Teams, PagerDuty), and the deliveries outbox. A delivery is
-- written in the same transaction as the event it reports and sent by whichever server
-- claims it first (conditional UPDATE with a lapsing claim), retried with backoff.
-- `secret` holds a webhook's signing secret or a PagerDuty routing key: never shown again
-- after creation, never logged or audited. A channel with a NULL client is provider-wide.

CREATE TABLE notification_channels (
    id TEXT PRIMARY KEY,
    client_id TEXT REFERENCES clients(id),
    side TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    url TEXT,
    secret TEXT,
    addresses TEXT,
    subscription TEXT NOT NULL,
    created_by TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX notification_channels_route ON notification_channels (client_id, side, enabled);

CREATE TABLE notification_deliveries (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES notification_channels(id),
    client_id TEXT REFERENCES clients(id),
    side TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_kind TEXT NOT NULL,
    event_key TEXT NOT NULL,
    severity TEXT NOT NULL,
    event TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    claimed_by TEXT,
    claimed_until BIGINT,
    last_error TEXT,
    last_status BIGINT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (status, next_attempt_at);
CREATE INDEX notification_deliveries_channel ON notification_deliveries (channel_id, created_at);
CREATE INDEX notification_deliveries_client ON notification_deliveries (client_id, created_at);
