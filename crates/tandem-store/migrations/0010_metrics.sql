-- Metrics (issue #6) and a narrow endpoints row (issue #4's ingest speed).
--
-- 1. The whole-inventory JSON moves out of `endpoints` into its own table, written only when an
--    inventory arrives: a heartbeat then rewrites a row of a few hundred bytes, not ~110 KiB.
-- 2. Each heartbeat's vital signs are kept as a compact time series: tier 0 holds the raw
--    samples (one per heartbeat), tier 1 five-minute rollups, tier 2 hourly rollups. Values are
--    integers in hundredths of a percent (cpu, mem, disks) or hundredths (load1); rollups keep
--    the average and, for cpu and mem, the maximum; `samples` says how many raw samples a row
--    stands for. `disks` is a JSON object {mount: hundredths of a percent used}.
-- 3. `metric_rollups` remembers, per rollup tier, up to which instant its buckets are written;
--    a server claims the next window by moving that mark with a compare-and-set.

CREATE TABLE endpoint_inventories (
    endpoint_id TEXT PRIMARY KEY REFERENCES endpoints(id),
    client_id TEXT NOT NULL REFERENCES clients(id),
    collected_at BIGINT NOT NULL,
    inventory TEXT NOT NULL
);
INSERT INTO endpoint_inventories (endpoint_id, client_id, collected_at, inventory)
    SELECT id, client_id, COALESCE(last_inventory_at, enrolled_at), inventory
    FROM endpoints WHERE inventory IS NOT NULL;
UPDATE endpoints SET last_inventory_at = enrolled_at
    WHERE inventory IS NOT NULL AND last_inventory_at IS NULL;
ALTER TABLE endpoints DROP COLUMN inventory;

CREATE TABLE endpoint_metrics (
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
    tier BIGINT NOT NULL,
    at BIGINT NOT NULL,
    samples BIGINT NOT NULL,
    cpu BIGINT,
    cpu_max BIGINT,
    mem BIGINT,
    mem_max BIGINT,
    load1 BIGINT,
    disks TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, tier, at)
);
CREATE INDEX endpoint_metrics_tier_at ON endpoint_metrics (tier, at);

CREATE TABLE metric_rollups (
    tier BIGINT PRIMARY KEY,
    done_through BIGINT NOT NULL
);
INSERT INTO metric_rollups (tier, done_through) VALUES (1, 0);
INSERT INTO metric_rollups (tier, done_through) VALUES (2, 0);
