-- Looking at a client without syncing it.

-- What the next sync would bring, per table, read live from SQLite in one
-- snapshot: rows whose updated_at passed the watermark, and (from the digest
-- of every source row against the digests stored at the last sync) new,
-- changed and deleted rows.  Costs a read of the whole file.
CREATE FUNCTION owsync.pending(client text)
RETURNS TABLE (table_name text, updated_since_sync bigint, new_rows bigint,
               changed_rows bigint, deleted_rows bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t owsync.client_table;
    n record;
    on_key text;
BEGIN
    PERFORM owsync._require_admin();
    n := owsync._registered(client);
    FOR t IN SELECT * FROM owsync.client_table ct
              WHERE ct.client = pending.client AND ct.removed_at IS NULL ORDER BY ct.table_name LOOP
        table_name := t.table_name;
        updated_since_sync := NULL;
        IF t.watermark_column IS NOT NULL AND t.watermark IS NOT NULL THEN
            EXECUTE format('SELECT count(*) FROM %I.%I WHERE %I > $1', n.src_schema, t.table_name,
                           t.watermark_column)
              INTO updated_since_sync USING t.watermark;
        END IF;
        IF cardinality(t.key_columns) = 0 THEN
            new_rows := NULL; changed_rows := NULL; deleted_rows := NULL;	-- synced as a set
        ELSE
            on_key := (SELECT string_agg(format('s.%1$I = d.%1$I', k), ' AND ') FROM unnest(t.key_columns) k);
            EXECUTE format('SELECT count(*) FILTER (WHERE d.owsync_digest IS NULL),
                                   count(*) FILTER (WHERE s.%3$I IS NOT NULL AND d.owsync_digest IS NOT NULL
                                                      AND s.owsync_digest <> d.owsync_digest),
                                   count(*) FILTER (WHERE s.%3$I IS NULL)
                              FROM %1$I.%2$I s FULL JOIN %4$I.%2$I d ON %5$s',
                           n.src_schema, t.table_name, t.key_columns[1], n.digest_schema, on_key)
              INTO new_rows, changed_rows, deleted_rows;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Is the mirror equal to the source?  Per table, every column of every row
-- compared as text (independent of digests and watermarks): rows in each,
-- rows missing from the mirror, extra rows, rows whose content differs.
-- Tables removed at the source are left out.  Costs a read of the whole
-- file and of the whole mirror.
CREATE FUNCTION owsync.verify(client text)
RETURNS TABLE (table_name text, source_rows bigint, mirror_rows bigint,
               missing bigint, extra bigint, differing bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t owsync.client_table;
    n record;
    cols text;
    src_row text;
    mir_row text;
    on_key text;
BEGIN
    PERFORM owsync._require_admin();
    n := owsync._registered(client);
    FOR t IN SELECT * FROM owsync.client_table ct
              WHERE ct.client = verify.client AND ct.removed_at IS NULL ORDER BY ct.table_name LOOP
        -- the columns the source has (a column dropped at the source stays in the mirror)
        SELECT string_agg(format('%I::text', a.attname), ', ' ORDER BY a.attnum),
               string_agg(format('s.%I::text', a.attname), ', ' ORDER BY a.attnum),
               string_agg(format('m.%I::text', a.attname), ', ' ORDER BY a.attnum)
          INTO cols, src_row, mir_row
          FROM pg_attribute a
         WHERE a.attrelid = format('%I.%I', n.src_schema, t.table_name)::regclass
           AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'owsync_digest';
        table_name := t.table_name;
        IF cardinality(t.key_columns) > 0 THEN
            on_key := (SELECT string_agg(format('s.%1$I = m.%1$I', k), ' AND ') FROM unnest(t.key_columns) k);
            EXECUTE format('SELECT count(s.%5$I), count(m.%5$I),
                                   count(*) FILTER (WHERE m.%5$I IS NULL),
                                   count(*) FILTER (WHERE s.%5$I IS NULL),
                                   count(*) FILTER (WHERE s.%5$I IS NOT NULL AND m.%5$I IS NOT NULL
                                                      AND ROW(%6$s) IS DISTINCT FROM ROW(%7$s))
                              FROM %1$I.%2$I s FULL JOIN %3$I.%2$I m ON %4$s',
                           n.src_schema, t.table_name, n.mirror_schema, on_key, t.key_columns[1],
                           src_row, mir_row)
              INTO source_rows, mirror_rows, missing, extra, differing;
        ELSE
            EXECUTE format('SELECT (SELECT count(*) FROM %1$I.%2$I), (SELECT count(*) FROM %3$I.%2$I),
                                   (SELECT count(*) FROM (SELECT %4$s FROM %1$I.%2$I EXCEPT ALL
                                                          SELECT %4$s FROM %3$I.%2$I) x),
                                   (SELECT count(*) FROM (SELECT %4$s FROM %3$I.%2$I EXCEPT ALL
                                                          SELECT %4$s FROM %1$I.%2$I) x)',
                           n.src_schema, t.table_name, n.mirror_schema, cols)
              INTO source_rows, mirror_rows, missing, extra;
            differing := NULL;		-- no key: a changed row counts as missing + extra
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
