-- Syncing one table of a client, within its run (48_run.sql).  Per table:
--
--   full         the mirror and the digests are made equal to the source,
--                every row compared, only what differs written;
--   incremental  1. the fast path: rows with updated_at >= watermark - overlap
--                   (the condition runs in SQLite);
--                2. the key diff: when the hash of the source's key set (computed
--                   by SQLite over the key's index) moved since the last sync,
--                   and rows the fast path fetched do not explain it, the
--                   source's keys (a keys-only scan) find rows the mirror
--                   lacks (inserted without a new updated_at) and rows the
--                   source lost (hard deletes); in a large table, only the keys
--                   of the buckets whose hash moved are compared (see
--                   owsync.key_buckets());
--                3. digests, for tables without updated_at and, when a
--                   reconcile is due (options->>'reconcile_interval', default
--                   1 hour), for all tables: the digest of every source row,
--                   computed by SQLite, against the digest stored at the last
--                   sync; only rows whose digest changed are fetched;
--                then MERGE, updating a row only when its digest changed;
--   reconcile    incremental with step 3 for every table;
--   set          a table without key is replaced as a whole, every run.
--
-- owsync._sync_table(), at the end of this file, plans the table's sync
-- (owsync._plan_table()) and runs these steps, each a function:
--
--   _unchanged          nothing moved since the last sync: done (asked by
--                       the run's table loop, before the rest is planned)
--   _full_reload        full and set
--   _stage_window       1. the fast path, into the stage
--   _keys_explained     the key set moved only by rows the fast path staged
--   _key_diff           2. (narrowed to buckets by _diff_buckets, or whole
--                       by _diff_all) and 3. with digests
--   _list_quarantined,  rows to fetch by key: found by 2. or 3., or waiting
--   _fetch_by_key       in quarantine
--   _apply              MERGE, then the digests
--   _apply_deletes      the keys the source lost
--   _advance_watermark  the watermark and its window's signature
--
-- Work tables (temporary, dropped at commit): pg_temp.owsync_stage (rows
-- read, with their digests), owsync_fetch (keys to fetch), owsync_gone
-- (keys the source lost), owsync_diff (the whole key diff).

-- The signature of rows of a table: the count and the sum of their digests
-- (stored, for a digest table or the stage), of the rows with updated_at >=
-- since (the fast path's window), or of all rows when wm_column is NULL.
-- Equal signatures: the rows are the same.  A source table's is read by
-- owsync._source_window() (10_fdw.sql), the same figure without planning a
-- foreign scan.
CREATE FUNCTION owsync._window_sig(src text, wm_column text, since bigint) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sig text;
BEGIN
    EXECUTE format('SELECT count(*) || %L || coalesce(sum(owsync_digest), 0) FROM %s%s', ':', src,
                   CASE WHEN wm_column IS NULL THEN '' ELSE format(' WHERE %I >= $1', wm_column) END)
      INTO sig USING since;
    RETURN sig;
END
$$;

-- A sum taken modulo 2^64, as a signed 64-bit integer: how the hashes of
-- keys add up in owsync.key_buckets().
CREATE FUNCTION owsync._wrap64(x numeric) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT (CASE WHEN m >= 9223372036854775808 THEN m - 18446744073709551616 ELSE m END)::bigint
      FROM (SELECT ((x % 18446744073709551616) + 18446744073709551616) % 18446744073709551616 AS m) w
$$;

-- How many bits of a key's hash bucket a table's key set: about 8 keys a
-- bucket, none for small tables and for keys without owsync_key_hash in the
-- digest table (keys of types the hash does not cover).
CREATE FUNCTION owsync._key_bits(dig text, nrows bigint) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN CASE WHEN nrows < 16 OR NOT EXISTS (SELECT 1 FROM pg_attribute a
                                                WHERE a.attrelid = dig::regclass AND a.attname = 'owsync_key_hash')
                THEN 0
                ELSE least(16, floor(log(2, nrows / 8.0)))::integer END;
END
$$;

-- Store what a run learnt about a table in its catalog row: the number of
-- bits of its key buckets and their hashes (NULL keeps them), and, with
-- p_window, the watermark, the signature of the fast path's window and its
-- rows' updated_at and digests (as given: NULL is none).
CREATE FUNCTION owsync._store_state(t owsync.client_table, p_key_bits integer DEFAULT NULL,
                                    p_key_buckets bigint[] DEFAULT NULL, p_window boolean DEFAULT false,
                                    p_watermark bigint DEFAULT NULL, p_window_sig text DEFAULT NULL,
                                    p_window_updated bigint[] DEFAULT NULL, p_window_digests bigint[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE owsync.client_table c
       SET key_bits = coalesce(p_key_bits, c.key_bits),
           key_buckets = coalesce(p_key_buckets, c.key_buckets),
           watermark = CASE WHEN p_window THEN p_watermark ELSE c.watermark END,
           window_sig = CASE WHEN p_window THEN p_window_sig ELSE c.window_sig END,
           window_updated = CASE WHEN p_window THEN p_window_updated ELSE c.window_updated END,
           window_digests = CASE WHEN p_window THEN p_window_digests ELSE c.window_digests END
     WHERE c.client = t.client AND c.table_name = t.table_name;
END
$$;

-- The fast path's overlap in a table's watermark unit (options->>'overlap_seconds',
-- default 60): it reads rows with updated_at >= watermark - overlap, so that
-- a row committed late with an updated_at a little below the watermark is
-- still read.
CREATE FUNCTION owsync._overlap(options jsonb, unit text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (options ->> 'overlap_seconds')::bigint * CASE unit WHEN 'ns' THEN 1000000000 ELSE 1 END;
END
$$;

-- A table compared in full (a reconcile, a table without updated_at) gets
-- the number of buckets its size calls for now.
CREATE FUNCTION owsync._resize_buckets(t owsync.client_table, server text, dig text, nrows bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bits integer := owsync._key_bits(dig, nrows);
BEGIN
    IF bits <> t.key_bits THEN
        PERFORM owsync._store_state(t, p_key_bits => bits,
                                    p_key_buckets => owsync.key_buckets(server, t.table_name, t.key_columns, bits));
    END IF;
END
$$;

-- Load an empty table by an INSERT of nrows rows: from 10,000 rows on, its
-- primary key and indexes are dropped first and built again after, about
-- twice as fast as maintaining them row by row (below, building them, new
-- files synced, costs more).  Returns the rows inserted.
CREATE FUNCTION owsync._bulk_insert(rel text, stmt text, nrows bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx record;
    rebuild text[] := '{}';
    inserted bigint;
BEGIN
    FOR idx IN SELECT i.indexrelid::regclass AS name, c.conname, pg_get_constraintdef(c.oid) AS condef,
                      pg_get_indexdef(i.indexrelid) AS indexdef
                 FROM pg_index i
                 LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                WHERE i.indrelid = rel::regclass AND nrows >= 10000 LOOP
        IF idx.conname IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', rel, idx.conname);
            rebuild := rebuild || format('ALTER TABLE %s ADD CONSTRAINT %I %s', rel, idx.conname, idx.condef);
        ELSE
            EXECUTE format('DROP INDEX %s', idx.name);
            rebuild := rebuild || idx.indexdef;
        END IF;
    END LOOP;
    EXECUTE stmt;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    FOREACH stmt IN ARRAY rebuild LOOP
        EXECUTE stmt;
    END LOOP;
    RETURN inserted;
END
$$;

-- Make a digest table equal to the source's keys and digests in
-- pg_temp.owsync_reload (nrows rows).  An empty one (a registration, a new
-- table) is loaded in bulk and analyzed at once, so that the next run's key
-- diff is not planned blind (without statistics, a few moved buckets are
-- compared with every digest by a nested loop).  A loaded one gets only
-- what differs (pg_temp.owsync_moved): keys the source lost deleted,
-- digests that moved updated, new keys inserted.
CREATE FUNCTION owsync._load_digests(p owsync._sync_plan, nrows bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF owsync._loaded(p.dig) THEN
        EXECUTE format('DELETE FROM %1$s m USING pg_temp.owsync_moved s WHERE %2$s AND s.owsync_op = %3$L',
                       p.dig, p.on_key, 'd');
        EXECUTE format('UPDATE %1$s m SET owsync_digest = s.owsync_digest FROM pg_temp.owsync_moved s
                         WHERE %2$s AND s.owsync_op = %3$L', p.dig, p.on_key, 'u');
        EXECUTE format('INSERT INTO %1$s (%2$s, owsync_digest) SELECT %2$s, owsync_digest FROM pg_temp.owsync_moved
                         WHERE owsync_op = %3$L', p.dig, p.keylist, 'i');
        RETURN;
    END IF;
    PERFORM owsync._bulk_insert(p.dig, format('INSERT INTO %1$s (%2$s, owsync_digest)
                                                SELECT %2$s, owsync_digest FROM pg_temp.owsync_reload',
                                               p.dig, p.keylist), nrows);
    EXECUTE format('ANALYZE %s', p.dig);
END
$$;

-- Keep a row that cannot be read: its key, the reason, and every value as
-- storage class and bytes, read through a foreign table of raw columns.
CREATE FUNCTION owsync._quarantine(t owsync.client_table, k jsonb, p_sqlstate text, p_reason text,
                                   p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
    probe name := owsync._probe_schema(t.client);
    raw_table text := format('%I.%I', probe, t.table_name);
    raw jsonb;
BEGIN
    IF to_regclass(raw_table) IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = probe) THEN
            EXECUTE format('CREATE SCHEMA %I', probe);
        END IF;
        -- key columns typed (to find the row), every column raw
        EXECUTE format('CREATE FOREIGN TABLE %s (%s, %s) SERVER %I OPTIONS (table %L)', raw_table,
            (SELECT string_agg(format('%I %s OPTIONS (column_name %L, key %L)', 'owsync_key_' || a.attname,
                                      format_type(a.atttypid, a.atttypmod), a.attname, 'true'), ', ')
               FROM pg_attribute a
              WHERE a.attrelid = format('%I.%I', n.src_schema, t.table_name)::regclass
                AND a.attname = ANY (t.key_columns)),
            (SELECT string_agg(format('%I text OPTIONS (column_name %L, raw %L)', a.attname, a.attname, 'true'),
                               ', ' ORDER BY a.attnum)
               FROM pg_attribute a
              WHERE a.attrelid = format('%I.%I', n.src_schema, t.table_name)::regclass
                AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'owsync_digest'),
            n.server, t.table_name);
    END IF;
    EXECUTE format('SELECT to_jsonb(r) - %s FROM %s r WHERE %s',
                   (SELECT string_agg(quote_literal('owsync_key_' || kc), ' - ') FROM unnest(t.key_columns) kc),
                   raw_table,
                   (SELECT string_agg(format('%I = %L', 'owsync_key_' || e.key, e.value #>> '{}'), ' AND ')
                      FROM jsonb_each(k) e))
      INTO raw;
    INSERT INTO owsync.quarantine AS q (client, table_name, key, sqlstate, reason, raw, first_run, last_run)
    VALUES (t.client, t.table_name, k, p_sqlstate, p_reason, coalesce(raw, '{}'), p_run, p_run)
    ON CONFLICT (client, table_name, key) DO UPDATE
       SET sqlstate = EXCLUDED.sqlstate, reason = EXCLUDED.reason, raw = EXCLUDED.raw,
           last_run = EXCLUDED.last_run, last_seen = now();
    RAISE WARNING 'owsync %: row % of table % quarantined: %', t.client, k, t.table_name, p_reason;
END
$$;

-- Rows of one table whose keys are listed in pg_temp.owsync_fetch, fetched
-- into pg_temp.owsync_stage in batches: the first key column's IN list runs
-- in SQLite (using its index), the full key is matched here.  With
-- quarantine, a batch that cannot be read is retried key by key and a row
-- that cannot be read alone is quarantined.  Returns rows read, quarantined.
CREATE FUNCTION owsync._fetch_by_key(t owsync.client_table, p owsync._sync_plan,
                                     OUT fetched bigint, OUT quarantined bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    batch text[];
    got bigint;
    k jsonb;
    cond text;
    st text; msg text; det text;
BEGIN
    fetched := 0;
    quarantined := 0;
    FOR batch IN EXECUTE format(
        'SELECT array_agg(DISTINCT %1$I::text) FROM (SELECT %1$I, (row_number() OVER ()) / 500 AS b
           FROM pg_temp.owsync_fetch) f GROUP BY b', t.key_columns[1]) LOOP
        BEGIN
            EXECUTE format('INSERT INTO pg_temp.owsync_stage SELECT %s, owsync_digest FROM %s
                             WHERE %I IN (%s) AND (%s) IN (SELECT %s FROM pg_temp.owsync_fetch)',
                           p.cols, p.src, t.key_columns[1],
                           (SELECT string_agg(quote_literal(v), ', ') FROM unnest(batch) v),
                           p.keylist, p.keylist);
            GET DIAGNOSTICS got = ROW_COUNT;
            fetched := fetched + got;
        EXCEPTION WHEN data_exception THEN
            IF NOT p.quarantine THEN
                RAISE;
            END IF;
            -- one row at a time: the ones that read go to the stage
            FOR k IN EXECUTE format('SELECT to_jsonb(f) FROM (SELECT %s FROM pg_temp.owsync_fetch
                                      WHERE %I::text = ANY ($1)) f', p.keylist, t.key_columns[1])
                       USING batch LOOP
                cond := (SELECT string_agg(format('%I = %L', e.key, e.value #>> '{}'), ' AND ')
                           FROM jsonb_each(k) e);
                BEGIN
                    EXECUTE format('INSERT INTO pg_temp.owsync_stage SELECT %s, owsync_digest FROM %s WHERE %s',
                                   p.cols, p.src, cond);
                    GET DIAGNOSTICS got = ROW_COUNT;
                    fetched := fetched + got;
                EXCEPTION WHEN data_exception THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    PERFORM owsync._quarantine(t, k, st, concat_ws(': ', msg, nullif(det, '')), p.run_id);
                    quarantined := quarantined + 1;
                END;
            END LOOP;
        END;
    END LOOP;
END
$$;

-- What one table's sync works with (owsync._sync_plan): the names of its
-- relations and what this run does to it, with the client's options (read
-- once a run).  Its column lists are added by owsync._plan_columns(), once
-- the unchanged check has not settled the table.
CREATE FUNCTION owsync._plan_table(t owsync.client_table, reconcile boolean, p_run bigint, opts jsonb)
RETURNS owsync._sync_plan
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
    p owsync._sync_plan;
BEGIN
    p.run_id := p_run;
    p.server := n.server;
    p.mirror := format('%I.%I', n.mirror_schema, t.table_name);
    p.src := format('%I.%I', n.src_schema, t.table_name);
    p.dig := format('%I.%I', n.digest_schema, t.table_name);
    p.opts := opts;
    p.keylist := (SELECT string_agg(format('%I', k), ', ') FROM unnest(t.key_columns) k);
    p.on_key := (SELECT string_agg(format('m.%1$I = s.%1$I', k), ' AND ') FROM unnest(t.key_columns) k);
    p.use_digests := reconcile OR t.watermark_column IS NULL;
    p.quarantine := p.opts ->> 'on_bad_row' = 'quarantine';
    p.pending := EXISTS (SELECT 1 FROM owsync.mirror_change mc
                          WHERE mc.client = t.client AND mc.table_name = t.table_name);
    -- versions are kept from the run after registration on
    p.keep_versions := (p.opts ->> 'versions_retention')::interval > interval '0'
                       AND (SELECT versions_from IS NOT NULL FROM owsync.client WHERE client = t.client);
    IF p.keep_versions AND (p.opts ->> 'versions_interval')::interval > interval '0' THEN
        p.interval_run := owsync._interval_run(t.client, p_run, p.opts);
    END IF;
    RETURN p;
END
$$;

-- A table's plan completed with the source's columns (a column removed at
-- the source stays in the mirror only) as the statements that read and
-- write rows name them.
CREATE FUNCTION owsync._plan_columns(t owsync.client_table, p owsync._sync_plan)
RETURNS owsync._sync_plan
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('s.%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('%1$I = s.%1$I', a.attname), ', ' ORDER BY a.attnum)
             FILTER (WHERE NOT (a.attname = ANY (t.key_columns))),
           -- (the source's values as the mirror's column types: a column
           -- retyped at the source keeps its type in the mirror)
           format('record_image_ne(ROW(%s), ROW(%s))',
                  string_agg(format('m.%I', a.attname), ', ' ORDER BY a.attnum)
                    FILTER (WHERE NOT (a.attname = ANY (t.key_columns))),
                  string_agg(format('s.%I::%s', a.attname, format_type(ma.atttypid, ma.atttypmod)), ', '
                             ORDER BY a.attnum)
                    FILTER (WHERE NOT (a.attname = ANY (t.key_columns))))
      INTO p.cols, p.s_cols, p.setlist, p.differ
      FROM pg_attribute a
      LEFT JOIN pg_attribute ma ON ma.attrelid = p.mirror::regclass AND ma.attname = a.attname
     WHERE a.attrelid = p.src::regclass AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname <> 'owsync_digest';
    RETURN p;
END
$$;

-- Does a table hold any row?
CREATE FUNCTION owsync._loaded(rel text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', rel) INTO found;
    RETURN found;
END
$$;

-- The source's keys and digests, read into pg_temp.owsync_reload (one read
-- of the file; a full reload keeps versions and deletes by them, and the
-- digests are made equal to them), analyzed.
CREATE FUNCTION owsync._read_source_keys(p owsync._sync_plan) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nrows bigint;
BEGIN
    IF to_regclass('pg_temp.owsync_reload') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_reload;
    END IF;
    EXECUTE format('CREATE TEMP TABLE owsync_reload ON COMMIT DROP AS SELECT %s, owsync_digest FROM %s',
                   p.keylist, p.src);
    GET DIAGNOSTICS nrows = ROW_COUNT;
    ANALYZE pg_temp.owsync_reload;
    RETURN nrows;
END
$$;

-- How the source's keys and digests in pg_temp.owsync_reload differ from
-- the digest table (the mirror as the last run left it), into
-- pg_temp.owsync_moved: each key the source lost (owsync_op 'd'), whose
-- digest moved ('u') or that is new ('i'), with its new digest; one hash
-- full join of two narrow tables, analyzed.
CREATE FUNCTION owsync._diff_reload(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('pg_temp.owsync_moved') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_moved;
    END IF;
    EXECUTE format('CREATE TEMP TABLE owsync_moved ON COMMIT DROP AS
                    SELECT %1$s, CASE WHEN s.%2$s IS NULL THEN %3$L WHEN m.%2$s IS NULL THEN %4$L ELSE %5$L END
                                 AS owsync_op, s.owsync_digest
                      FROM pg_temp.owsync_reload s FULL JOIN %6$s m ON %7$s
                     WHERE s.%2$s IS NULL OR m.%2$s IS NULL OR s.owsync_digest <> m.owsync_digest',
                   (SELECT string_agg(format('coalesce(s.%1$I, m.%1$I) AS %1$I', k), ', ')
                      FROM unnest(t.key_columns) k),
                   format('%I', t.key_columns[1]), 'd', 'i', 'u', p.dig, p.on_key);
    ANALYZE pg_temp.owsync_moved;
END
$$;

-- The source's rows merged into a loaded keyed mirror table: rows it lacks
-- inserted, rows that differ from the source's in any byte of any column (a
-- byte image compare, record_image_ne) updated.  Rows are matched by key
-- through the mirror's primary key, one lookup each, whatever the
-- statistics (a hash join would hash either side whole).  Returns the rows
-- written.
CREATE FUNCTION owsync._merge_source(p owsync._sync_plan) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET enable_hashjoin = off
AS $$
DECLARE
    written bigint;
BEGIN
    EXECUTE format('MERGE INTO %1$s m USING (SELECT %2$s FROM %3$s) s ON %4$s
                     %5$s
                     WHEN NOT MATCHED THEN INSERT (%2$s) VALUES (%6$s)',
                   p.mirror, p.cols, p.src, p.on_key,
                   -- a table of key columns only has nothing to update
                   CASE WHEN p.setlist IS NOT NULL
                        THEN format('WHEN MATCHED AND %s THEN UPDATE SET %s', p.differ, p.setlist)
                        ELSE '' END,
                   p.s_cols);
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- Make a keyed mirror table equal to the source, with the source's keys in
-- pg_temp.owsync_reload, writing only what differs (so a full sync of an
-- unchanged table leaves no dead rows, and a published mirror ships only
-- its changes): rows whose key the source lost deleted, then the source
-- merged (_merge_source).  An empty mirror (the first load) is loaded in
-- bulk, nrows rows.  Returns the rows inserted, updated and deleted.
CREATE FUNCTION owsync._apply_source(p owsync._sync_plan, nrows bigint,
                                     OUT inserted bigint, OUT updated bigint, OUT deleted bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    before bigint;
    written bigint;
BEGIN
    updated := 0;
    deleted := 0;
    IF NOT owsync._loaded(p.mirror) THEN
        inserted := owsync._bulk_insert(p.mirror, format('INSERT INTO %s (%s) SELECT %s FROM %s',
                                                         p.mirror, p.cols, p.cols, p.src), nrows);
        RETURN;
    END IF;
    EXECUTE format('DELETE FROM %1$s m WHERE NOT EXISTS (SELECT 1 FROM pg_temp.owsync_reload s WHERE %2$s)',
                   p.mirror, p.on_key);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    -- the MERGE's inserts, told from its updates by this transaction's count
    before := pg_stat_get_xact_tuples_inserted(p.mirror::regclass);
    written := owsync._merge_source(p);
    inserted := pg_stat_get_xact_tuples_inserted(p.mirror::regclass) - before;
    updated := written - inserted;
END
$$;

-- A first load (the mirror and the digests empty, no versions to keep):
-- each loaded in bulk straight from the source (the mirror's rows, then the
-- keys and digests), the digests analyzed; the source's rows counted first
-- to choose how to load.  Returns the rows loaded.
CREATE FUNCTION owsync._first_load(p owsync._sync_plan) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nrows bigint := owsync._source_rows(p.src::regclass);
    loaded bigint;
BEGIN
    loaded := owsync._bulk_insert(p.mirror, format('INSERT INTO %s (%s) SELECT %s FROM %s',
                                                   p.mirror, p.cols, p.cols, p.src), nrows);
    PERFORM owsync._bulk_insert(p.dig, format('INSERT INTO %1$s (%2$s, owsync_digest)
                                                SELECT %2$s, owsync_digest FROM %3$s', p.dig, p.keylist, p.src),
                                nrows);
    EXECUTE format('ANALYZE %s', p.dig);
    RETURN loaded;
END
$$;

-- Full reload (mode full, or a table without key): the mirror made equal to
-- the source's rows and the digests reloaded, and the key buckets, the
-- watermark and its window's signature stored.  A keyed table is compared
-- and only what differs is written (_apply_source); a table without key is
-- replaced as a whole.  Rows changed in the mirror are decided as
-- conflicts, as an incremental run would.  The versions the reload
-- replaces are kept first (43_versions.sql).
CREATE FUNCTION owsync._full_reload(t owsync.client_table, p owsync._sync_plan,
    OUT path text, OUT rows_read bigint, OUT inserted bigint, OUT updated bigint, OUT deleted bigint,
    OUT conflicts bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bits integer;
    newwm bigint;
    before text;			-- a table without key: its set before the reload
BEGIN
    path := CASE WHEN cardinality(t.key_columns) = 0 THEN 'set' ELSE 'full' END;
    conflicts := 0;
    updated := 0;
    IF p.pending THEN
        PERFORM owsync._full_conflicts_before(t);
    END IF;
    IF cardinality(t.key_columns) > 0 THEN
        IF NOT p.keep_versions AND NOT owsync._loaded(p.dig) AND NOT owsync._loaded(p.mirror) THEN
            rows_read := owsync._first_load(p);
            inserted := rows_read;
            deleted := 0;
        ELSE
            rows_read := owsync._read_source_keys(p);
            IF p.keep_versions OR owsync._loaded(p.dig) THEN
                PERFORM owsync._diff_reload(t, p);
            END IF;
            IF p.keep_versions THEN
                PERFORM owsync._keep_reloaded(t, p);
            END IF;
            SELECT * INTO inserted, updated, deleted FROM owsync._apply_source(p, rows_read);
            PERFORM owsync._load_digests(p, rows_read);
        END IF;
        bits := owsync._key_bits(p.dig, rows_read);
        PERFORM owsync._store_state(t, p_key_bits => bits,
                                    p_key_buckets => owsync.key_buckets(p.server, t.table_name, t.key_columns, bits));
    ELSE
        IF p.keep_versions THEN
            before := owsync._set_signature(p.mirror);
            PERFORM owsync._keep_set(t, p);
        END IF;
        IF owsync._is_edge() THEN
            -- published, a table without key has no replica identity: logical
            -- replication carries its TRUNCATE, not a DELETE (38_fleet.sql)
            EXECUTE format('SELECT count(*) FROM %s', p.mirror) INTO deleted;
            EXECUTE format('TRUNCATE %s', p.mirror);
        ELSE
            EXECUTE format('DELETE FROM %s', p.mirror);
            GET DIAGNOSTICS deleted = ROW_COUNT;
        END IF;
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s', p.mirror, p.cols, p.cols, p.src);
        GET DIAGNOSTICS inserted = ROW_COUNT;
        rows_read := inserted;
        IF p.keep_versions AND owsync._set_signature(p.mirror) = before THEN
            PERFORM owsync._drop_kept_set(t, p);
        END IF;
    END IF;
    IF t.watermark_column IS NOT NULL THEN
        EXECUTE format('SELECT max(%I) FROM %s', t.watermark_column, p.mirror) INTO newwm;
        PERFORM owsync._store_state(t, p_window => true, p_watermark => newwm,
            p_window_sig => owsync._source_window(p.src::regclass, t.watermark_column,
                                                  newwm - owsync._overlap(p.opts, t.watermark_unit)));
    ELSIF cardinality(t.key_columns) > 0 THEN
        PERFORM owsync._store_state(t, p_window => true, p_window_sig => owsync._window_sig(p.dig, NULL, NULL));
    END IF;
    -- after the watermark: the mirror's versions put back do not move it
    IF p.pending THEN
        conflicts := owsync._full_conflicts_after(t, p.run_id);
    END IF;
END
$$;

-- The signature of a table's stored digests as its catalog row keeps it: a
-- table without updated_at keeps it in window_sig (every sync that writes
-- its digests stores it), so that its unchanged check reads no digest.
-- NULL: not kept.
CREATE FUNCTION owsync._digests_sig(t owsync.client_table) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN t.watermark_column IS NULL THEN t.window_sig END
$$;

-- The unchanged check (the run's table loop makes it, 48_run.sql): a table
-- the file's other changes did not touch is settled before its sync is
-- planned.  Its key set did not move (kb: the source's key buckets now), and
-- either the fast path's window has the signature (count and digest sum) it
-- had at the end of the last sync (for a table none of whose rows had an
-- updated_at then: still none has), or, with digests due (a reconcile, a
-- table without updated_at), the whole table has the count and digest sum
-- of the digests stored at the last sync; then it gets the number of
-- buckets its size calls for.  (A table with rows in quarantine is never
-- settled: the caller does not ask.)
CREATE FUNCTION owsync._unchanged(t owsync.client_table, server name, src text, dig text, use_digests boolean,
                                  kb bigint[], opts jsonb) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sig text;
BEGIN
    IF kb[0] IS DISTINCT FROM t.key_buckets[0] THEN
        RETURN false;
    END IF;
    IF use_digests THEN
        sig := owsync._source_window(src::regclass, NULL, NULL);
        IF sig <> coalesce(owsync._digests_sig(t), owsync._window_sig(dig, NULL, NULL)) THEN
            RETURN false;
        END IF;
        IF t.watermark_column IS NULL AND t.window_sig IS NULL THEN
            PERFORM owsync._store_state(t, p_window => true, p_window_sig => sig);
        END IF;
        PERFORM owsync._resize_buckets(t, server, dig, split_part(sig, ':', 1)::bigint);
        RETURN true;
    END IF;
    -- no watermark: no row had one at the last sync; settled while none has
    IF t.watermark IS NULL THEN
        RETURN owsync._source_window(src::regclass, t.watermark_column, -9223372036854775808) = '0:0';
    END IF;
    RETURN t.window_sig IS NOT NULL
           AND owsync._source_window(src::regclass, t.watermark_column,
                                     t.watermark - owsync._overlap(opts, t.watermark_unit)) = t.window_sig;
END
$$;

-- Fresh work tables for one table, shaped like its mirror (planning them
-- reads no SQLite): the stage (rows read, with their digests) and the keys
-- to fetch.  The previous table's are dropped (all go at commit).
CREATE FUNCTION owsync._new_work_tables(p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('pg_temp.owsync_stage') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_stage, pg_temp.owsync_fetch, pg_temp.owsync_gone;
    END IF;
    IF to_regclass('pg_temp.owsync_diff') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_diff;
    END IF;
    EXECUTE format('CREATE TEMP TABLE owsync_stage ON COMMIT DROP AS
                    SELECT %s, 0::bigint AS owsync_digest FROM %s WITH NO DATA', p.cols, p.mirror);
    EXECUTE format('CREATE TEMP TABLE owsync_fetch ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA',
                   p.keylist, p.mirror);
END
$$;

-- The fast path: the rows with updated_at >= watermark - overlap (the
-- condition runs in SQLite) into the stage.  The rows of that window the
-- last run staged and stored the digests of (its overlap, mostly) are
-- compared by digest in the scan and not converted when unchanged; their
-- digests are returned (known), not staged: the mirror and the digests have
-- them.  With quarantine, a window that cannot be read is listed for
-- fetching by key instead.  Returns the rows read, whether the window was
-- read whole, and the digests of the rows it found unchanged.
CREATE FUNCTION owsync._stage_window(t owsync.client_table, p owsync._sync_plan,
                                     OUT staged bigint, OUT whole boolean, OUT known bigint[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- not while rows changed in the mirror wait for the conflict check,
    -- which compares them with every row read
    skip boolean := t.window_digests IS NOT NULL AND NOT p.pending AND NOT p.use_digests;
BEGIN
    staged := 0;
    whole := false;
    BEGIN
        IF skip THEN
            PERFORM owsync._skip_known(p.src::regclass, t.window_digests);
        END IF;
        EXECUTE format('INSERT INTO pg_temp.owsync_stage SELECT %s, owsync_digest FROM %s WHERE %I >= $1',
                       p.cols, p.src, t.watermark_column)
          USING t.watermark - p.overlap;
        GET DIAGNOSTICS staged = ROW_COUNT;
        whole := true;
    EXCEPTION WHEN data_exception THEN
        PERFORM owsync._skip_known(NULL, NULL);
        IF NOT p.quarantine THEN
            RAISE;
        END IF;
        -- a row in the range could not be read: fetch the range by key
        EXECUTE format('INSERT INTO pg_temp.owsync_fetch SELECT %s FROM %s WHERE %I >= $1',
                       p.keylist, p.src, t.watermark_column)
          USING t.watermark - p.overlap;
    WHEN OTHERS THEN
        PERFORM owsync._skip_known(NULL, NULL);
        RAISE;
    END;
    IF skip AND whole THEN
        PERFORM owsync._skip_known(NULL, NULL);
        -- the rows returned as their digest alone
        WITH k AS (DELETE FROM pg_temp.owsync_stage WHERE owsync_digest = ANY (t.window_digests)
                   RETURNING owsync_digest)
        SELECT array_agg(owsync_digest) INTO known FROM k;
    END IF;
END
$$;

-- Did the key set move only by new rows the fast path staged?  Then its
-- hash is the last one plus theirs, no key needs comparing, and the new
-- buckets (kb) are stored.  Returns the hashes of the staged keys the
-- digests lack, and whether they explain the move.
CREATE FUNCTION owsync._keys_explained(t owsync.client_table, p owsync._sync_plan, kb bigint[],
                                       OUT added bigint[], OUT explained boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('SELECT array_agg(owsync.key_hash(%1$s)) FROM pg_temp.owsync_stage s
                     WHERE NOT EXISTS (SELECT 1 FROM %2$s m WHERE %3$s)',
                   (SELECT string_agg(format('s.%I', k), ', ') FROM unnest(t.key_columns) k), p.dig, p.on_key)
      INTO added;
    explained := false;
    IF added IS NOT NULL
       AND owsync._wrap64(t.key_buckets[0] + (SELECT sum(h) FROM unnest(added) h)) = kb[0] THEN
        explained := true;
        PERFORM owsync._store_state(t, p_key_buckets => kb);
    END IF;
END
$$;

-- The key diff narrowed to buckets: in a large table whose key set changed
-- by a few keys, only the buckets whose hash moved (beyond the keys the fast
-- path added) are compared: the stored keys of those buckets (one range of
-- the digests' key-hash index each) against the hashes of the source's keys
-- in them.  A stored key the source lacks is gone.  A source key that
-- neither the digests nor the fast path has (a row inserted with an old
-- updated_at) needs the whole diff: then it returns false.  (Keys are told
-- apart by their 64-bit hash here; a reconcile compares them in full.)
CREATE FUNCTION owsync._diff_buckets(t owsync.client_table, p owsync._sync_plan, kb bigint[], added bigint[])
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bits integer := t.key_bits;
    moved integer[] := owsync.moved_buckets(kb, t.key_buckets, added);
    src_h bigint[];
    stored_h bigint[];
BEGIN
    IF NOT cardinality(moved) BETWEEN 1 AND (1 << bits) / 8 THEN
        RETURN false;
    END IF;
    src_h := ARRAY(SELECT owsync.key_hashes(p.server, t.table_name, t.key_columns, bits, moved));
    -- bucket b holds the hashes [b << (64 - bits), (b + 1) << (64 - bits)),
    -- read as unsigned; signed, bucket b >= 2^(bits - 1) is below 0
    EXECUTE format('SELECT array_agg(d.owsync_key_hash) FROM unnest($1::bigint[]) r(lo)
                      JOIN %s d ON d.owsync_key_hash BETWEEN r.lo AND r.lo + $2', p.dig)
      INTO stored_h
      USING (SELECT array_agg((CASE WHEN b >= 1 << (bits - 1) THEN b - (1 << bits) ELSE b END)::bigint
                              << (64 - bits))
               FROM unnest(moved) b),
            ((1::bigint << (63 - bits)) - 1) * 2 + 1;
    IF EXISTS (SELECT unnest(src_h) EXCEPT SELECT unnest(stored_h) EXCEPT SELECT unnest(added)) THEN
        RETURN false;
    END IF;
    EXECUTE format('INSERT INTO pg_temp.owsync_gone SELECT %1$s FROM %2$s d WHERE d.owsync_key_hash = ANY ($1)',
                   (SELECT string_agg(format('d.%I', k), ', ') FROM unnest(t.key_columns) k), p.dig)
      USING ARRAY(SELECT unnest(stored_h) EXCEPT SELECT unnest(src_h));
    RETURN true;
END
$$;

-- The whole key diff, and with digests the digest compare, in one pass: the
-- source's keys (and digests) streamed from SQLite against the digest table
-- (the mirror's key set, but narrow) as a hash full join.  Keys the source
-- lost are gone; keys the mirror lacks and (with digests) keys whose digest
-- changed are listed for fetching, unless the fast path staged them.
CREATE FUNCTION owsync._diff_all(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('CREATE TEMP TABLE owsync_diff ON COMMIT DROP AS
                    SELECT %1$s, s.owsync_digest IS NULL AS gone
                      FROM (SELECT %2$s%3$s FROM %4$s) s
                      FULL JOIN %5$s m ON %6$s
                     WHERE s.%7$I IS NULL OR m.%7$I IS NULL%8$s',
                   (SELECT string_agg(format('coalesce(s.%1$I, m.%1$I) AS %1$I', k), ', ')
                      FROM unnest(t.key_columns) k),
                   p.keylist,
                   CASE WHEN p.use_digests THEN ', owsync_digest' ELSE ', 0::bigint AS owsync_digest' END,
                   p.src, p.dig, p.on_key, t.key_columns[1],
                   CASE WHEN p.use_digests THEN ' OR s.owsync_digest <> m.owsync_digest' ELSE '' END);
    EXECUTE format('INSERT INTO pg_temp.owsync_gone SELECT %1$s FROM pg_temp.owsync_diff WHERE gone', p.keylist);
    EXECUTE format('INSERT INTO pg_temp.owsync_fetch
                      SELECT %1$s FROM pg_temp.owsync_diff WHERE NOT gone
                      EXCEPT SELECT %1$s FROM pg_temp.owsync_stage', p.keylist);
END
$$;

-- The key diff, when the key set moved or digests are due: keys the source
-- lost into pg_temp.owsync_gone, keys to fetch into pg_temp.owsync_fetch;
-- narrowed to the moved buckets when it can be.  Returns how far it
-- compared: none, buckets or all.
CREATE FUNCTION owsync._key_diff(t owsync.client_table, p owsync._sync_plan, kb bigint[], added bigint[],
                                 keys_moved boolean)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    diff_needed boolean := keys_moved OR p.use_digests;
    narrowed boolean := false;
BEGIN
    EXECUTE format('CREATE TEMP TABLE owsync_gone ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA',
                   p.keylist, p.mirror);
    IF diff_needed AND NOT p.use_digests AND t.key_bits > 0 THEN
        narrowed := owsync._diff_buckets(t, p, kb, added);
    END IF;
    IF diff_needed AND NOT narrowed THEN
        PERFORM owsync._diff_all(t, p);
    END IF;
    RETURN CASE WHEN narrowed THEN 'buckets' WHEN diff_needed THEN 'all' ELSE 'none' END;
END
$$;

-- Rows in quarantine are retried every run: their keys are listed for
-- fetching (one gone from the source reads as nothing, and leaves the
-- quarantine).
CREATE FUNCTION owsync._list_quarantined(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM owsync.quarantine q WHERE q.client = t.client AND q.table_name = t.table_name) THEN
        EXECUTE format('INSERT INTO pg_temp.owsync_fetch
                          SELECT %1$s FROM jsonb_populate_recordset(NULL::pg_temp.owsync_fetch,
                                  (SELECT jsonb_agg(q.key) FROM owsync.quarantine q
                                    WHERE q.client = $1 AND q.table_name = $2))
                          EXCEPT SELECT %1$s FROM pg_temp.owsync_stage
                          EXCEPT SELECT %1$s FROM pg_temp.owsync_fetch', p.keylist)
          USING t.client, t.table_name;
    END IF;
END
$$;

-- Apply the stage to the mirror: new rows inserted, rows whose digest
-- changed updated (MERGE), then the digests stored.  Rows held out for
-- conflicts (40_conflicts.sql) go back into the stage before the digests,
-- which follow the source.  The versions the MERGE replaces are kept first
-- (43_versions.sql).  Returns the rows inserted and updated, told apart by
-- this transaction's counts of the mirror's tuples.
CREATE FUNCTION owsync._apply(t owsync.client_table, p owsync._sync_plan, OUT inserted bigint, OUT updated bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mirror regclass := p.mirror::regclass;
    ins0 bigint := pg_stat_get_xact_tuples_inserted(mirror);
    upd0 bigint := pg_stat_get_xact_tuples_updated(mirror);
BEGIN
    IF p.keep_versions THEN
        PERFORM owsync._keep_replaced(t, p);
    END IF;
    EXECUTE format('MERGE INTO %1$s m
                    USING (SELECT s.*, d.owsync_digest AS owsync_old_digest
                             FROM pg_temp.owsync_stage s LEFT JOIN %2$s d USING (%3$s)) s
                       ON %4$s
                     %5$s
                     WHEN NOT MATCHED THEN
                          INSERT (%6$s) VALUES (%7$s)',
                   p.mirror, p.dig, p.keylist, p.on_key,
                   -- a table of key columns only has nothing to update
                   CASE WHEN p.setlist IS NOT NULL
                        THEN 'WHEN MATCHED AND s.owsync_old_digest IS DISTINCT FROM s.owsync_digest THEN UPDATE SET '
                             || p.setlist
                        ELSE '' END,
                   p.cols, p.s_cols);
    inserted := pg_stat_get_xact_tuples_inserted(mirror) - ins0;
    updated := pg_stat_get_xact_tuples_updated(mirror) - upd0;
    IF p.pending THEN
        PERFORM owsync._release_held();
    END IF;
    EXECUTE format('INSERT INTO %1$s AS d (%2$s, owsync_digest) SELECT %2$s, owsync_digest FROM pg_temp.owsync_stage
                    ON CONFLICT (%2$s) DO UPDATE SET owsync_digest = EXCLUDED.owsync_digest
                    WHERE d.owsync_digest IS DISTINCT FROM EXCLUDED.owsync_digest', p.dig, p.keylist);
END
$$;

-- Hard deletes: the keys the source lost (pg_temp.owsync_gone) leave the
-- mirror (their versions kept) and the digests, by key, and the key set's new buckets (kb) are
-- stored; analyzed first, so that a few keys are deleted through the index
-- rather than by hashing the whole table.  Returns the rows deleted.
CREATE FUNCTION owsync._apply_deletes(t owsync.client_table, p owsync._sync_plan, kb bigint[]) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    deleted bigint;
BEGIN
    ANALYZE pg_temp.owsync_gone;
    deleted := owsync._delete_gone(t, p);
    EXECUTE format('DELETE FROM %1$s m USING pg_temp.owsync_gone s WHERE %2$s', p.dig, p.on_key);
    PERFORM owsync._store_state(t, p_key_buckets => kb);
    RETURN deleted;
END
$$;

-- Advance the watermark to the highest value of the snapshot (never now()),
-- with the signature of the next run's window and, up to 4,096 rows, each
-- of its rows' updated_at and digest.  That window lies inside this run's
-- (the watermark only grows), so when the fast path read its window whole
-- (window_staged), the stage and the rows it found unchanged (known: their
-- updated_at as stored by the last run) hold every row of the next window:
-- the signature needs no second read of the file.  No signature while rows
-- are quarantined.
CREATE FUNCTION owsync._advance_watermark(t owsync.client_table, p owsync._sync_plan, window_staged boolean,
                                          quarantined bigint, known bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    newwm bigint;
    updated bigint[];
    digests bigint[];
    sig text;
BEGIN
    EXECUTE format('SELECT max(%I) FROM pg_temp.owsync_stage', t.watermark_column) INTO newwm;
    newwm := greatest(t.watermark, newwm);
    IF newwm IS NOT NULL AND quarantined = 0 AND window_staged THEN
        -- (a row both staged and known is the same row: same digest)
        EXECUTE format('SELECT coalesce(array_agg(u), %1$L), coalesce(array_agg(d), %1$L)
                          FROM (SELECT %2$I, owsync_digest FROM pg_temp.owsync_stage WHERE %2$I >= $1
                                UNION
                                SELECT u, d FROM unnest($2::bigint[], $3::bigint[]) k(u, d)
                                 WHERE u >= $1 AND d = ANY ($4)) w(u, d)', '{}', t.watermark_column)
          INTO updated, digests
          USING newwm - p.overlap, t.window_updated, t.window_digests, known;
        sig := cardinality(digests) || ':' || coalesce((SELECT sum(d) FROM unnest(digests) d), 0);
        IF cardinality(digests) > 4096 THEN
            updated := NULL;
            digests := NULL;
        END IF;
    ELSIF newwm IS NOT NULL AND quarantined = 0 THEN
        sig := owsync._source_window(p.src::regclass, t.watermark_column, newwm - p.overlap);
    END IF;
    PERFORM owsync._store_state(t, p_window => true, p_watermark => newwm, p_window_sig => sig,
                                p_window_updated => updated, p_window_digests => digests);
END
$$;

-- Sync one table, which the unchanged check did not settle: the steps
-- above, top to bottom.  p_kb: its key buckets, when the caller read them.
-- Returns what it did.
CREATE FUNCTION owsync._sync_table(t owsync.client_table, mode text, reconcile boolean, p_run bigint, opts jsonb,
    p_kb bigint[],
    OUT path text, OUT rows_read bigint, OUT inserted bigint, OUT updated bigint, OUT deleted bigint,
    OUT quarantined bigint, OUT key_diff text, OUT conflicts bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p owsync._sync_plan := owsync._plan_table(t, reconcile, p_run, opts);
    kb bigint[] := p_kb;		-- the source's key buckets now ([0]: the whole key set)
    keys_moved boolean;
    window_staged boolean := false;
    known bigint[];				-- digests of the window's rows found unchanged
    added bigint[];				-- hashes of the keys the fast path added
    explained boolean;
    fetched bigint;
    nrows bigint;
BEGIN
    rows_read := 0; inserted := 0; updated := 0; deleted := 0; quarantined := 0; key_diff := 'none';
    conflicts := 0;
    p.overlap := owsync._overlap(p.opts, t.watermark_unit);

    IF mode <> 'full' AND cardinality(t.key_columns) > 0 THEN
        kb := coalesce(kb, owsync.key_buckets(p.server, t.table_name, t.key_columns, t.key_bits));
        keys_moved := t.key_buckets[0] IS DISTINCT FROM kb[0];
    END IF;
    p := owsync._plan_columns(t, p);

    IF mode = 'full' OR cardinality(t.key_columns) = 0 THEN
        BEGIN
            SELECT * INTO path, rows_read, inserted, updated, deleted, conflicts FROM owsync._full_reload(t, p);
            RETURN;
        EXCEPTION WHEN data_exception THEN
            -- a row could not be read (the reload is undone): with quarantine,
            -- go row by row below, comparing every row; a table without key
            -- cannot name its bad row, so the error stands
            IF NOT p.quarantine OR cardinality(t.key_columns) = 0 THEN
                RAISE;
            END IF;
            EXECUTE format('DELETE FROM %s', p.dig);
            p.use_digests := true;
            kb := owsync.key_buckets(p.server, t.table_name, t.key_columns, t.key_bits);
            keys_moved := t.key_buckets[0] IS DISTINCT FROM kb[0];
        END;
    END IF;

    path := CASE WHEN mode = 'full' THEN 'full' WHEN p.use_digests THEN 'digest' ELSE 'incremental' END;
    PERFORM owsync._new_work_tables(p);
    IF t.watermark_column IS NOT NULL AND t.watermark IS NOT NULL AND mode <> 'full' THEN
        SELECT * INTO rows_read, window_staged, known FROM owsync._stage_window(t, p);
    END IF;
    IF keys_moved AND NOT p.use_digests AND t.key_buckets IS NOT NULL THEN
        SELECT * INTO added, explained FROM owsync._keys_explained(t, p, kb);
        keys_moved := NOT explained;
    END IF;
    key_diff := owsync._key_diff(t, p, kb, added, keys_moved);
    PERFORM owsync._list_quarantined(t, p);
    SELECT * INTO fetched, quarantined FROM owsync._fetch_by_key(t, p);
    rows_read := rows_read + fetched;
    -- rows changed in the mirror: conflicts decided, the rows the mirror keeps held out of the apply
    IF p.pending THEN
        conflicts := owsync._hold_conflicts(t, p_run, keys_moved);
    END IF;

    SELECT * INTO inserted, updated FROM owsync._apply(t, p);
    IF keys_moved THEN
        deleted := owsync._apply_deletes(t, p, kb);
    END IF;
    -- compared in full, the table's buckets follow its size
    IF p.use_digests THEN
        EXECUTE format('SELECT count(*) FROM %s', p.dig) INTO nrows;
        PERFORM owsync._resize_buckets(t, p.server, p.dig, nrows);
    END IF;
    -- quarantined rows not quarantined again by this run read fine now, or are gone
    DELETE FROM owsync.quarantine q
     WHERE q.client = t.client AND q.table_name = t.table_name AND q.last_run <> p_run;
    IF t.watermark_column IS NOT NULL THEN
        PERFORM owsync._advance_watermark(t, p, window_staged, quarantined, known);
    ELSE
        PERFORM owsync._store_state(t, p_window => true,
                                    p_window_sig => CASE WHEN quarantined = 0 THEN owsync._window_sig(p.dig, NULL, NULL) END);
    END IF;
END
$$;
