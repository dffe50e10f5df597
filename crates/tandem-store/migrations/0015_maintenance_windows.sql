-- Maintenance windows (issue #6): spans in which matching alerts are recorded silenced and
-- page nobody. `filter` and `schedule` are JSON (tandem_domain::maintenance); `first_start`
-- and `last_end` bound the schedule for list filters (`last_end` NULL: open-ended).
CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    client_id TEXT REFERENCES clients(id),
    name TEXT NOT NULL,
    reason TEXT NOT NULL,
    level TEXT NOT NULL,
    target_id TEXT NOT NULL,
    filter TEXT NOT NULL,
    schedule TEXT NOT NULL,
    first_start BIGINT,
    last_end BIGINT,
    created_by TEXT REFERENCES users(id),
    created_label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX maintenance_windows_client ON maintenance_windows (client_id, last_end);

-- An alert silenced by a window: which one (its name as it was), and until when. The sweep
-- that ends silences sets `silenced_until` back to NULL; `silenced_by` stays as history.
ALTER TABLE alerts ADD COLUMN silenced_by TEXT;
ALTER TABLE alerts ADD COLUMN silenced_window TEXT;
ALTER TABLE alerts ADD COLUMN silenced_until BIGINT;
-- The kind of the check that raised it (windows can be limited to check kinds).
ALTER TABLE alerts ADD COLUMN check_kind TEXT;
CREATE INDEX alerts_silenced ON alerts (silenced_until);
