-- Alerts page the owning side: each timeline event that should notify is handed to the
-- on-call paging engine once. `paged_at` is set when a server claims the event.
ALTER TABLE alert_events ADD COLUMN paged_at BIGINT;
CREATE INDEX alert_events_unpaged ON alert_events (notify, paged_at);
