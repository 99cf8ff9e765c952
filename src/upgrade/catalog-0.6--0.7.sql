-- 0.6 to 0.7: a table's catalog row keeps the updated_at and digest of each
-- row of its fast path's window, so that the next run does not convert the
-- rows of its overlap that it already has (44_sync_table.sql).  NULL until a
-- table's next incremental run stores them.
ALTER TABLE owsync.client_table ADD COLUMN window_updated bigint[], ADD COLUMN window_digests bigint[];
