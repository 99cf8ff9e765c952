-- Syncing one table of a client, within its run (48_run.sql).  Per table:
--
--   full         the mirror and the digests are reloaded from the source;
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

-- The signature of rows of a table: the count and the sum of their digests
-- (computed by SQLite for a source table; stored, for a digest table), of
-- the rows with updated_at >= since (the fast path's window), or of all rows
-- when wm_column is NULL.  Equal signatures: the rows are the same.
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
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN nrows < 16 OR NOT EXISTS (SELECT 1 FROM pg_attribute a
                                                WHERE a.attrelid = dig::regclass AND a.attname = 'owsync_key_hash')
                THEN 0
                ELSE least(16, floor(log(2, nrows / 8.0)))::integer END
$$;

-- Store what a run learnt about a table in its catalog row: the number of
-- bits of its key buckets and their hashes (NULL keeps them), and, with
-- p_window, the watermark and the signature of the fast path's window (as
-- given: NULL is none).
CREATE FUNCTION owsync._store_state(t owsync.client_table, p_key_bits integer DEFAULT NULL,
                                    p_key_buckets bigint[] DEFAULT NULL, p_window boolean DEFAULT false,
                                    p_watermark bigint DEFAULT NULL, p_window_sig text DEFAULT NULL)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE owsync.client_table c
       SET key_bits = coalesce(p_key_bits, c.key_bits),
           key_buckets = coalesce(p_key_buckets, c.key_buckets),
           watermark = CASE WHEN p_window THEN p_watermark ELSE c.watermark END,
           window_sig = CASE WHEN p_window THEN p_window_sig ELSE c.window_sig END
     WHERE c.client = t.client AND c.table_name = t.table_name
$$;

-- The fast path's overlap in a table's watermark unit (options->>'overlap_seconds',
-- default 60): it reads rows with updated_at >= watermark - overlap, so that
-- a row committed late with an updated_at a little below the watermark is
-- still read.
CREATE FUNCTION owsync._overlap(options jsonb, unit text) RETURNS bigint
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((options ->> 'overlap_seconds')::bigint, 60) * CASE unit WHEN 'ns' THEN 1000000000 ELSE 1 END
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

-- Reload a digest table from the source in bulk: emptied, its primary key and
-- index dropped, loaded, and both built again at once (about twice as fast as
-- maintaining them row by row).  The table is owsync's own: the lock TRUNCATE
-- takes until the run commits keeps out only another reader of the digests.
-- Returns the rows loaded.
CREATE FUNCTION owsync._reload_digests(dig text, src text, keylist text) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx record;
    rebuild text[] := '{}';
    nrows bigint;
    stmt text;
BEGIN
    EXECUTE format('TRUNCATE %s', dig);
    FOR idx IN SELECT i.indexrelid::regclass AS name, c.conname, pg_get_constraintdef(c.oid) AS condef,
                      pg_get_indexdef(i.indexrelid) AS indexdef
                 FROM pg_index i
                 LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                WHERE i.indrelid = dig::regclass LOOP
        IF idx.conname IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', dig, idx.conname);
            rebuild := rebuild || format('ALTER TABLE %s ADD CONSTRAINT %I %s', dig, idx.conname, idx.condef);
        ELSE
            EXECUTE format('DROP INDEX %s', idx.name);
            rebuild := rebuild || idx.indexdef;
        END IF;
    END LOOP;
    EXECUTE format('INSERT INTO %s (%s, owsync_digest) SELECT %s, owsync_digest FROM %s', dig, keylist, keylist, src);
    GET DIAGNOSTICS nrows = ROW_COUNT;
    FOREACH stmt IN ARRAY rebuild LOOP
        EXECUTE stmt;
    END LOOP;
    RETURN nrows;
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
CREATE FUNCTION owsync._fetch_by_key(t owsync.client_table, cols text, quarantine boolean,
                                     p_run bigint, OUT fetched bigint, OUT quarantined bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    src text := format('%I.%I', (owsync.client_names(t.client)).src_schema, t.table_name);
    keylist text := (SELECT string_agg(format('%I', k), ', ') FROM unnest(t.key_columns) k);
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
                           cols, src, t.key_columns[1],
                           (SELECT string_agg(quote_literal(v), ', ') FROM unnest(batch) v),
                           keylist, keylist);
            GET DIAGNOSTICS got = ROW_COUNT;
            fetched := fetched + got;
        EXCEPTION WHEN data_exception THEN
            IF NOT quarantine THEN
                RAISE;
            END IF;
            -- one row at a time: the ones that read go to the stage
            FOR k IN EXECUTE format('SELECT to_jsonb(f) FROM (SELECT %s FROM pg_temp.owsync_fetch
                                      WHERE %I::text = ANY ($1)) f', keylist, t.key_columns[1])
                       USING batch LOOP
                cond := (SELECT string_agg(format('%I = %L', e.key, e.value #>> '{}'), ' AND ')
                           FROM jsonb_each(k) e);
                BEGIN
                    EXECUTE format('INSERT INTO pg_temp.owsync_stage SELECT %s, owsync_digest FROM %s WHERE %s',
                                   cols, src, cond);
                    GET DIAGNOSTICS got = ROW_COUNT;
                    fetched := fetched + got;
                EXCEPTION WHEN data_exception THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    PERFORM owsync._quarantine(t, k, st, concat_ws(': ', msg, nullif(det, '')), p_run);
                    quarantined := quarantined + 1;
                END;
            END LOOP;
        END;
    END LOOP;
END
$$;

-- Sync one table; returns what it did.
CREATE FUNCTION owsync._sync_table(t owsync.client_table, mode text, reconcile boolean, p_run bigint,
    OUT path text, OUT rows_read bigint, OUT inserted bigint, OUT updated bigint, OUT deleted bigint,
    OUT quarantined bigint, OUT key_diff text, OUT conflicts bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
    mirror text := format('%I.%I', n.mirror_schema, t.table_name);
    src text := format('%I.%I', n.src_schema, t.table_name);
    dig text := format('%I.%I', n.digest_schema, t.table_name);
    opts jsonb := (SELECT options FROM owsync.client WHERE client = t.client);
    cols text;
    keylist text := (SELECT string_agg(format('%I', k), ', ') FROM unnest(t.key_columns) k);
    on_key text := (SELECT string_agg(format('m.%1$I = s.%1$I', k), ' AND ') FROM unnest(t.key_columns) k);
    use_digests boolean := reconcile OR t.watermark_column IS NULL;
    quarantine boolean := coalesce(opts ->> 'on_bad_row', 'abort') = 'quarantine';
    bits integer := t.key_bits;
    kb bigint[];
    khash bigint;
    moved integer[];
    diff_needed boolean;
    narrowed boolean := false;
    src_h bigint[];
    keys_moved boolean := true;
    added bigint[];		-- hashes of the keys the fast path added
    same boolean;
    sig text;
    nrows bigint;
    f record;
    overlap bigint;
    s_cols text;
    setlist text;
    newwm bigint;
    window_staged boolean := false;
    -- rows changed in the mirror wait: conflicts to look for (47_conflicts.sql)
    pending boolean := EXISTS (SELECT 1 FROM owsync.mirror_change mc
                                WHERE mc.client = t.client AND mc.table_name = t.table_name);
BEGIN
    -- the source's columns (a column removed at the source stays in the mirror only)
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('s.%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('%1$I = s.%1$I', a.attname), ', ' ORDER BY a.attnum)
             FILTER (WHERE NOT (a.attname = ANY (t.key_columns)))
      INTO cols, s_cols, setlist
      FROM pg_attribute a
     WHERE a.attrelid = src::regclass AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname <> 'owsync_digest';
    rows_read := 0; inserted := 0; updated := 0; deleted := 0; quarantined := 0; key_diff := 'none';
    conflicts := 0;

    IF mode = 'full' OR cardinality(t.key_columns) = 0 THEN
      BEGIN
        path := CASE WHEN cardinality(t.key_columns) = 0 THEN 'set' ELSE 'full' END;
        IF pending THEN
            PERFORM owsync._full_conflicts_before(t);
        END IF;
        EXECUTE format('DELETE FROM %s', mirror);
        GET DIAGNOSTICS deleted = ROW_COUNT;
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s', mirror, cols, cols, src);
        GET DIAGNOSTICS inserted = ROW_COUNT;
        rows_read := inserted;
        IF cardinality(t.key_columns) > 0 THEN
            bits := owsync._key_bits(dig, owsync._reload_digests(dig, src, keylist));
            PERFORM owsync._store_state(t, p_key_bits => bits,
                                        p_key_buckets => owsync.key_buckets(n.server, t.table_name, t.key_columns, bits));
        END IF;
        IF t.watermark_column IS NOT NULL THEN
            EXECUTE format('SELECT max(%I) FROM %s', t.watermark_column, mirror) INTO newwm;
            PERFORM owsync._store_state(t, p_window => true, p_watermark => newwm,
                                        p_window_sig => owsync._window_sig(src, t.watermark_column,
                                                                           newwm - owsync._overlap(opts, t.watermark_unit)));
        END IF;
        -- after the watermark: the mirror's versions put back do not move it
        IF pending THEN
            conflicts := owsync._full_conflicts_after(t, p_run);
        END IF;
        RETURN;
      EXCEPTION WHEN data_exception THEN
        -- a row could not be read (the reload is undone): with quarantine,
        -- go row by row below, comparing every row; a table without key
        -- cannot name its bad row, so the error stands
        IF NOT quarantine OR cardinality(t.key_columns) = 0 THEN
            RAISE;
        END IF;
        EXECUTE format('DELETE FROM %s', dig);
        use_digests := true;
        rows_read := 0; inserted := 0; deleted := 0;
      END;
    END IF;

    path := CASE WHEN mode = 'full' THEN 'full' WHEN use_digests THEN 'digest' ELSE 'incremental' END;
    kb := owsync.key_buckets(n.server, t.table_name, t.key_columns, bits);
    khash := kb[0];
    keys_moved := t.key_buckets[0] IS DISTINCT FROM khash;
    overlap := owsync._overlap(opts, t.watermark_unit);

    -- A table the file's other changes did not touch is settled without
    -- work tables: its key set did not move, none of its rows waits in
    -- quarantine, and either the fast path's window has the signature (count
    -- and digest sum) it had at the end of the last sync, or, with digests
    -- due (a reconcile, a table without updated_at), the whole table has the
    -- count and digest sum of the digests stored at the last sync.
    IF mode <> 'full' AND NOT keys_moved
       AND NOT EXISTS (SELECT 1 FROM owsync.quarantine q
                        WHERE q.client = t.client AND q.table_name = t.table_name) THEN
        IF use_digests THEN
            sig := owsync._window_sig(src, NULL, NULL);
            same := sig = owsync._window_sig(dig, NULL, NULL);
            IF same THEN
                PERFORM owsync._resize_buckets(t, n.server, dig, split_part(sig, ':', 1)::bigint);
            END IF;
        ELSE
            same := t.watermark IS NOT NULL AND t.window_sig IS NOT NULL
                    AND owsync._window_sig(src, t.watermark_column, t.watermark - overlap) = t.window_sig;
        END IF;
        IF same THEN
            path := 'unchanged';
            RETURN;
        END IF;
    END IF;
    -- the previous table's work tables (dropped at commit)
    IF to_regclass('pg_temp.owsync_stage') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_stage, pg_temp.owsync_fetch, pg_temp.owsync_gone;
    END IF;
    IF to_regclass('pg_temp.owsync_diff') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_diff;
    END IF;
    -- work tables shaped like the mirror (planning them reads no SQLite)
    EXECUTE format('CREATE TEMP TABLE owsync_stage ON COMMIT DROP AS
                    SELECT %s, 0::bigint AS owsync_digest FROM %s WITH NO DATA', cols, mirror);
    EXECUTE format('CREATE TEMP TABLE owsync_fetch ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA',
                   keylist, mirror);

    -- 1. the fast path
    IF t.watermark_column IS NOT NULL AND t.watermark IS NOT NULL AND mode <> 'full' THEN
        BEGIN
            EXECUTE format('INSERT INTO pg_temp.owsync_stage SELECT %s, owsync_digest FROM %s WHERE %I >= $1',
                           cols, src, t.watermark_column)
              USING t.watermark - overlap;
            GET DIAGNOSTICS rows_read = ROW_COUNT;
            window_staged := true;
        EXCEPTION WHEN data_exception THEN
            IF NOT quarantine THEN
                RAISE;
            END IF;
            -- a row in the range could not be read: fetch the range by key
            EXECUTE format('INSERT INTO pg_temp.owsync_fetch SELECT %s FROM %s WHERE %I >= $1',
                           keylist, src, t.watermark_column)
              USING t.watermark - overlap;
        END;
    END IF;

    -- the key set moved only by new rows the fast path fetched: then its
    -- hash is the last one plus theirs, and no key needs comparing
    IF keys_moved AND NOT use_digests AND t.key_buckets IS NOT NULL THEN
        EXECUTE format('SELECT array_agg(owsync.key_hash(%1$s)) FROM pg_temp.owsync_stage s
                         WHERE NOT EXISTS (SELECT 1 FROM %2$s m WHERE %3$s)',
                       (SELECT string_agg(format('s.%I', k), ', ') FROM unnest(t.key_columns) k), dig, on_key)
          INTO added;
        IF added IS NOT NULL
           AND owsync._wrap64(t.key_buckets[0] + (SELECT sum(h) FROM unnest(added) h)) = khash THEN
            keys_moved := false;
            PERFORM owsync._store_state(t, p_key_buckets => kb);
        END IF;
    END IF;
    diff_needed := keys_moved OR use_digests;

    -- 2. and 3. one pass, when needed, over the source's keys (and digests)
    -- streamed from SQLite against the digests (the mirror's key set, but
    -- narrow), as a hash full join: keys the mirror lacks, keys the source
    -- lost, and (with digests) keys whose digest changed
    EXECUTE format('CREATE TEMP TABLE owsync_gone ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA',
                   keylist, mirror);
    -- In a large table whose key set changed by a few keys, only the buckets
    -- whose hash moved (beyond the keys the fast path added) are compared:
    -- the stored keys of those buckets (by their hash, through its index)
    -- against the hashes of the source's keys in them.  A stored key the source lacks is gone; a source key that
    -- neither the mirror nor the fast path has (a row inserted with an old
    -- updated_at) needs the whole diff below.  (Keys are told apart by their
    -- 64-bit hash here; a reconcile compares them in full.)
    IF diff_needed AND NOT use_digests AND bits > 0 THEN
        moved := owsync.moved_buckets(kb, t.key_buckets, added);
        IF cardinality(moved) BETWEEN 1 AND (1 << bits) / 8 THEN
            src_h := ARRAY(SELECT owsync.key_hashes(n.server, t.table_name, t.key_columns, bits, moved));
            EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM unnest($1) h
                                                WHERE h <> ALL ($2)
                                                  AND NOT EXISTS (SELECT 1 FROM %s d WHERE d.owsync_key_hash = h))',
                           dig)
              INTO narrowed USING src_h, coalesce(added, '{}');
            IF narrowed THEN
                -- bucket b holds the hashes [b << (64 - bits), (b + 1) << (64 - bits)),
                -- read as unsigned; signed, bucket b >= 2^(bits - 1) is below 0
                EXECUTE format('INSERT INTO pg_temp.owsync_gone
                                SELECT %1$s FROM unnest($1::bigint[]) r(lo)
                                  JOIN %2$s d ON d.owsync_key_hash BETWEEN r.lo AND r.lo + $2
                                 WHERE d.owsync_key_hash <> ALL ($3)',
                               (SELECT string_agg(format('d.%I', k), ', ') FROM unnest(t.key_columns) k), dig)
                  USING (SELECT array_agg((CASE WHEN b >= 1 << (bits - 1) THEN b - (1 << bits) ELSE b END)::bigint
                                          << (64 - bits))
                           FROM unnest(moved) b),
                        ((1::bigint << (63 - bits)) - 1) * 2 + 1,
                        src_h;
            END IF;
        END IF;
    END IF;
    IF diff_needed AND NOT narrowed THEN
        EXECUTE format('CREATE TEMP TABLE owsync_diff ON COMMIT DROP AS
                        SELECT %1$s, s.owsync_digest IS NULL AS gone
                          FROM (SELECT %2$s%3$s FROM %4$s) s
                          FULL JOIN %5$s m ON %6$s
                         WHERE s.%7$I IS NULL OR m.%7$I IS NULL%8$s',
                       (SELECT string_agg(format('coalesce(s.%1$I, m.%1$I) AS %1$I', k), ', ')
                          FROM unnest(t.key_columns) k),
                       keylist,
                       CASE WHEN use_digests THEN ', owsync_digest' ELSE ', 0::bigint AS owsync_digest' END,
                       src, dig, on_key, t.key_columns[1],
                       CASE WHEN use_digests THEN ' OR s.owsync_digest <> m.owsync_digest' ELSE '' END);
        EXECUTE format('INSERT INTO pg_temp.owsync_gone SELECT %1$s FROM pg_temp.owsync_diff WHERE gone', keylist);
        EXECUTE format('INSERT INTO pg_temp.owsync_fetch
                          SELECT %1$s FROM pg_temp.owsync_diff WHERE NOT gone
                          EXCEPT SELECT %1$s FROM pg_temp.owsync_stage', keylist);
    END IF;
    key_diff := CASE WHEN narrowed THEN 'buckets' WHEN diff_needed THEN 'all' ELSE 'none' END;
    -- rows in quarantine are retried every run (one gone from the source
    -- reads as nothing, and leaves the quarantine)
    IF EXISTS (SELECT 1 FROM owsync.quarantine q WHERE q.client = t.client AND q.table_name = t.table_name) THEN
        EXECUTE format('INSERT INTO pg_temp.owsync_fetch
                          SELECT %1$s FROM jsonb_populate_recordset(NULL::pg_temp.owsync_fetch,
                                  (SELECT jsonb_agg(q.key) FROM owsync.quarantine q
                                    WHERE q.client = $1 AND q.table_name = $2))
                          EXCEPT SELECT %1$s FROM pg_temp.owsync_stage
                          EXCEPT SELECT %1$s FROM pg_temp.owsync_fetch', keylist)
          USING t.client, t.table_name;
    END IF;
    f := owsync._fetch_by_key(t, cols, quarantine, p_run);
    rows_read := rows_read + f.fetched;
    quarantined := f.quarantined;
    -- rows changed in the mirror: conflicts decided, the rows the mirror keeps held out of the apply
    IF pending THEN
        conflicts := owsync._hold_conflicts(t, p_run, keys_moved);
    END IF;

    -- apply: insert new rows, update rows whose digest changed
    EXECUTE format('SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM %1$s m WHERE %2$s)),
                           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM %1$s m WHERE %2$s)
                                              AND NOT EXISTS (SELECT 1 FROM %3$s m WHERE %2$s
                                                                 AND m.owsync_digest = s.owsync_digest))
                      FROM pg_temp.owsync_stage s', mirror, on_key, dig)
      INTO inserted, updated;
    EXECUTE format('MERGE INTO %1$s m
                    USING (SELECT s.*, d.owsync_digest AS owsync_old_digest
                             FROM pg_temp.owsync_stage s LEFT JOIN %2$s d USING (%3$s)) s
                       ON %4$s
                     %5$s
                     WHEN NOT MATCHED THEN
                          INSERT (%6$s) VALUES (%7$s)',
                   mirror, dig, keylist, on_key,
                   -- a table of key columns only has nothing to update
                   CASE WHEN setlist IS NOT NULL
                        THEN 'WHEN MATCHED AND s.owsync_old_digest IS DISTINCT FROM s.owsync_digest THEN UPDATE SET '
                             || setlist
                        ELSE '' END,
                   cols, s_cols);
    IF pending THEN
        PERFORM owsync._release_held();		-- the digests and the watermark follow the source
    END IF;
    EXECUTE format('INSERT INTO %1$s AS d (%2$s, owsync_digest) SELECT %2$s, owsync_digest FROM pg_temp.owsync_stage
                    ON CONFLICT (%2$s) DO UPDATE SET owsync_digest = EXCLUDED.owsync_digest
                    WHERE d.owsync_digest IS DISTINCT FROM EXCLUDED.owsync_digest', dig, keylist);

    -- hard deletes: keys the source no longer has (none when its key set
    -- did not move), by key; analyzed so that a few keys are deleted
    -- through the index rather than by hashing the whole table
    IF keys_moved THEN
        ANALYZE pg_temp.owsync_gone;
        EXECUTE format('DELETE FROM %1$s m USING pg_temp.owsync_gone s WHERE %2$s', mirror, on_key);
        GET DIAGNOSTICS deleted = ROW_COUNT;
        EXECUTE format('DELETE FROM %1$s m USING pg_temp.owsync_gone s WHERE %2$s', dig, on_key);
        PERFORM owsync._store_state(t, p_key_buckets => kb);
    END IF;
    -- compared in full, the table's buckets follow its size
    IF use_digests THEN
        EXECUTE format('SELECT count(*) FROM %s', dig) INTO nrows;
        PERFORM owsync._resize_buckets(t, n.server, dig, nrows);
    END IF;

    -- quarantined rows not quarantined again by this run read fine now, or are gone
    DELETE FROM owsync.quarantine q
     WHERE q.client = t.client AND q.table_name = t.table_name AND q.last_run <> p_run;

    -- the new watermark: the highest value of the snapshot, never now()
    IF t.watermark_column IS NOT NULL THEN
        EXECUTE format('SELECT max(%I) FROM pg_temp.owsync_stage', t.watermark_column) INTO newwm;
        newwm := greatest(t.watermark, newwm);
        -- the next run's window lies inside this run's (the watermark only
        -- grows), so when the fast path read its window whole, the staged
        -- rows hold every row of the next window and nothing else: the
        -- signature needs no second read of the file
        PERFORM owsync._store_state(t, p_window => true, p_watermark => newwm,
            p_window_sig => CASE WHEN newwm IS NULL OR quarantined > 0 THEN NULL
                                 WHEN window_staged
                                 THEN owsync._window_sig('pg_temp.owsync_stage', t.watermark_column, newwm - overlap)
                                 ELSE owsync._window_sig(src, t.watermark_column, newwm - overlap) END);
    END IF;
END
$$;
