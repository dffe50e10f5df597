-- Tickets linked to endpoints (issue #5: "linked endpoints"). An endpoint linked to a ticket
-- belongs to the ticket's client (checked by the use case; `client_id` is the ticket's, for
-- scoped reads). The index answers "the tickets of this endpoint".
CREATE TABLE ticket_endpoints (
    ticket_id TEXT NOT NULL REFERENCES tickets(id),
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    linked_at BIGINT NOT NULL,
    linked_by TEXT REFERENCES users(id),
    PRIMARY KEY (ticket_id, endpoint_id)
);
CREATE INDEX ticket_endpoints_endpoint ON ticket_endpoints (endpoint_id);
