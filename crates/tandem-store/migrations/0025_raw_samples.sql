-- Raw metrics samples in a table of their own, in the order they arrive (issue #4's ingest).
--
-- Every heartbeat writes one raw sample. In `endpoint_metrics` its primary key (endpoint,
-- tier, instant) put each new sample beside that endpoint's earlier ones, so a group commit of
-- 512 heartbeats from 512 endpoints dirtied ~512 index pages, each written whole to the WAL
-- and again by the checkpoint. Here raw samples are appended: a commit's samples fill a few
-- pages at the end of the table and of its one index, by instant. One endpoint's raw samples
-- are read only for the short tail its five-minute rollups do not cover yet (the charts draw
-- from the rollups), and that read walks the index by instant.
--
-- Raw samples are written only for a check-in the server has just accepted (its sequence
-- number is new), so there is no unique key to guard against the same sample twice.

CREATE TABLE endpoint_raw_samples (
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id),
    at BIGINT NOT NULL,
    samples BIGINT NOT NULL,
    cpu BIGINT,
    cpu_max BIGINT,
    mem BIGINT,
    mem_max BIGINT,
    load1 BIGINT,
    disks TEXT NOT NULL
);
INSERT INTO endpoint_raw_samples (endpoint_id, at, samples, cpu, cpu_max, mem, mem_max, load1, disks)
    SELECT endpoint_id, at, samples, cpu, cpu_max, mem, mem_max, load1, disks
    FROM endpoint_metrics WHERE tier = 0 ORDER BY at;
DELETE FROM endpoint_metrics WHERE tier = 0;
CREATE INDEX endpoint_raw_samples_at ON endpoint_raw_samples (at);
