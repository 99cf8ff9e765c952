-- 0.4 to 0.5: row versions (43_versions.sql).  A client's runs keep what
-- they replace from its last successful run before the upgrade on; its
-- versions schema and tables are made by the first run that keeps one.
ALTER TABLE owsync.client ADD COLUMN versions_from bigint;
UPDATE owsync.client c
   SET versions_from = (SELECT max(r.run_id) FROM owsync.run r WHERE r.client = c.client AND r.status = 'succeeded');
