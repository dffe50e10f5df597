-- The queue's most common questions: "this client's active tickets, most recently changed
-- first, first page" and "all active tickets (of one side, of every client), newest first".
-- `tickets_queue (client_id, status, updated_at)` cannot give that order across the four
-- active statuses, so at 1,000,000 tickets PostgreSQL read and sorted all of a client's
-- ~2,800 active rows for a page of 50 (p95 ~90 ms; issue #5's goal is 50 ms).
-- These two indexes hold only active tickets, in the queue's order: per client, and across
-- clients (without the second, SQLite chose the first for a provider-wide queue and sorted
-- every active ticket). `list_tickets` writes the statuses as literals in this same order, so
-- both planners can prove the indexes apply.
CREATE INDEX tickets_active ON tickets (client_id, updated_at DESC, id DESC) WHERE status IN ('new', 'open', 'waiting_on_requester', 'waiting_on_vendor');
CREATE INDEX tickets_active_recent ON tickets (updated_at DESC, id DESC) WHERE status IN ('new', 'open', 'waiting_on_requester', 'waiting_on_vendor');
