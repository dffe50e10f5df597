-- The queue's most common question: "this client's active tickets, most recently changed
-- first, first page". `tickets_queue (client_id, status, updated_at)` cannot give that order
-- across the four active statuses, so at 1,000,000 tickets PostgreSQL read and sorted all of
-- a client's ~2,800 active rows for a page of 50 (p95 ~90 ms; issue #5's goal is 50 ms).
-- This index holds only active tickets, in the queue's order. `list_tickets` writes the
-- statuses as literals in this same order, so both planners can prove it applies.
CREATE INDEX tickets_active ON tickets (client_id, updated_at DESC, id DESC) WHERE status IN ('new', 'open', 'waiting_on_requester', 'waiting_on_vendor');
