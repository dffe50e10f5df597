-- A revision on every endpoint's stored facts and accepted administrators (issue #4's fleet of
-- a million, issue #6's evaluation pass).
--
-- The evaluation pass used to read and decode every endpoint's stored facts each minute (about
-- 2 s for 100,000 endpoints with real inventories on SQLite, before evaluating anything). Now it
-- keeps them in memory between passes and reads, for every endpoint, only the narrow row it lays
-- over them (the latest check-in) and these two revisions; it decodes stored facts again only
-- where a revision moved. Each write of a row adds one to its revision.
ALTER TABLE endpoint_facts ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE admin_baselines ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
