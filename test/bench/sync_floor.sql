-- Floors of test/bench/sync.sh: PostgreSQL writing what a sync of client p_client writes, into
-- tables of the same definitions as the client's (LIKE ... INCLUDING ALL: keys, indexes, lz4),
-- from local copies whose values are uncompressed, as a sync receives them from SQLite.  Loaded
-- into the edge's database by sync.sh; everything lives in schemas floor*.
--
--   floor.full_source(c)         the local copy of every mirror and digest table (floor_src, floor_srcd)
--   floor.full_targets(c)        timed for a registration's floor: empty tables of their
--                                definitions (floor_full, floor_fulld; floor.drop_targets() first)
--   floor.full_write(c)          timed: every row of the copy written into them, one transaction
--   floor.inc_stage(c, run)      the changes of run staged (floor_new, floor_gone), and tables that
--                                hold the client's state before the run where missing (floor_m,
--                                floor_d, floor_v: mirror, digests, versions)
--   floor.inc_write(c, run, t)   timed: the staged changes written as a run writes them
--   floor.pgoutput_bytes(c)      the bytes pgoutput sends for every row of the mirror, once
CREATE SCHEMA floor;

-- The columns of rel PostgreSQL does not compute, quoted, joined with ", " (prefixed by alias).
CREATE FUNCTION floor.cols(rel regclass, alias text DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(coalesce(alias || '.', '') || quote_ident(a.attname), ', ' ORDER BY a.attnum)
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
$$;

-- The same columns as fresh values: large ones detoasted and decompressed, so that writing them
-- compresses them again, as writing values read from SQLite does.
CREATE FUNCTION floor.fresh(rel regclass, alias text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(CASE a.atttypid
                        WHEN 'text'::regtype::oid THEN format('(%s.%I || '''')', alias, a.attname)
                        WHEN 'json'::regtype::oid THEN format('(%s.%I::text || '''')::json', alias, a.attname)
                        WHEN 'jsonb'::regtype::oid THEN format('(%s.%I::text || '''')::jsonb', alias, a.attname)
                        WHEN 'bytea'::regtype::oid THEN format('(%s.%I || ''''::bytea)', alias, a.attname)
                        ELSE format('%s.%I', alias, a.attname) END, ', ' ORDER BY a.attnum)
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
$$;

-- Key columns, quoted, joined with ", " (prefixed by alias).
CREATE FUNCTION floor.keys(k text[], alias text DEFAULT NULL) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(coalesce(alias || '.', '') || quote_ident(x), ', ' ORDER BY o)
      FROM unnest(k) WITH ORDINALITY u(x, o)
$$;

-- a.k1 = b.k1 AND ...
CREATE FUNCTION floor.on_key(k text[], a text, b text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(format('%s.%I = %s.%I', a, x, b, x), ' AND ' ORDER BY o)
      FROM unnest(k) WITH ORDINALITY u(x, o)
$$;

-- The client's tables and their keys.
CREATE FUNCTION floor.tables(p_client text, OUT t text, OUT k text[]) RETURNS SETOF record
LANGUAGE sql STABLE AS $$
    SELECT table_name, key_columns FROM owsync.client_table
     WHERE client = p_client AND removed_at IS NULL ORDER BY table_name
$$;

-- Variable-length columns of rel stored uncompressed (out of line when large).
CREATE FUNCTION floor.uncompressed(rel regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    a record;
BEGIN
    FOR a IN SELECT attname FROM pg_attribute
              WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped AND attlen = -1 LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET STORAGE EXTERNAL', rel, a.attname);
    END LOOP;
END
$$;

CREATE FUNCTION floor.full_source(p_client text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    m regclass;
BEGIN
    DROP SCHEMA IF EXISTS floor_src CASCADE;
    DROP SCHEMA IF EXISTS floor_srcd CASCADE;
    CREATE SCHEMA floor_src;
    CREATE SCHEMA floor_srcd;
    FOR r IN SELECT * FROM floor.tables(p_client) LOOP
        m := format('%I.%I', p_client, r.t)::regclass;
        EXECUTE format('CREATE TABLE floor_src.%I (LIKE %s)', r.t, m);
        PERFORM floor.uncompressed(format('floor_src.%I', r.t)::regclass);
        EXECUTE format('INSERT INTO floor_src.%I (%s) SELECT %s FROM %s m', r.t, floor.cols(m), floor.fresh(m, 'm'), m);
        IF cardinality(r.k) > 0 THEN
            EXECUTE format('CREATE TABLE floor_srcd.%I AS SELECT %s, owsync_digest FROM %I.%I',
                           r.t, floor.keys(r.k), 'owsync_' || p_client || '_digest', r.t);
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION floor.drop_targets() RETURNS void
LANGUAGE sql AS $$
    DROP SCHEMA IF EXISTS floor_full CASCADE;
    DROP SCHEMA IF EXISTS floor_fulld CASCADE;
$$;

CREATE FUNCTION floor.full_targets(p_client text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    CREATE SCHEMA floor_full;
    CREATE SCHEMA floor_fulld;
    FOR r IN SELECT * FROM floor.tables(p_client) LOOP
        EXECUTE format('CREATE TABLE floor_full.%I (LIKE %I.%I INCLUDING ALL)', r.t, p_client, r.t);
        IF cardinality(r.k) > 0 THEN
            EXECUTE format('CREATE TABLE floor_fulld.%I (LIKE %I.%I INCLUDING ALL)',
                           r.t, 'owsync_' || p_client || '_digest', r.t);
        END IF;
    END LOOP;
END
$$;

-- Returns the rows written (mirror and digests).
CREATE FUNCTION floor.full_write(p_client text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    cols text;
    n bigint;
    total bigint := 0;
BEGIN
    FOR r IN SELECT * FROM floor.tables(p_client) LOOP
        cols := floor.cols(format('floor_src.%I', r.t)::regclass);
        EXECUTE format('INSERT INTO floor_full.%I (%s) SELECT %s FROM floor_src.%I', r.t, cols, cols, r.t);
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        IF cardinality(r.k) > 0 THEN
            EXECUTE format('INSERT INTO floor_fulld.%I (%s, owsync_digest) SELECT %s, owsync_digest FROM floor_srcd.%I',
                           r.t, floor.keys(r.k), floor.keys(r.k), r.t);
            GET DIAGNOSTICS n = ROW_COUNT;
            total := total + n;
        END IF;
    END LOOP;
    RETURN total;
END
$$;

CREATE FUNCTION floor.drop_full() RETURNS void
LANGUAGE sql AS $$
    DROP SCHEMA IF EXISTS floor_full CASCADE;
    DROP SCHEMA IF EXISTS floor_fulld CASCADE;
    DROP SCHEMA IF EXISTS floor_src CASCADE;
    DROP SCHEMA IF EXISTS floor_srcd CASCADE;
$$;

-- What run p_run changed, from the versions it kept ('u' and 'i': keys it wrote, whose rows are
-- now the mirror's; 'd': rows it deleted), staged: floor_new.<t> the rows written (values
-- uncompressed) with their digests, floor_gone.<t> the keys deleted.  A table first met gets
-- floor_m/floor_d/floor_v.<t>, the client's mirror, digest and versions tables as they were
-- before the run; once the floor has written the run's changes, they are as after it, as the
-- client's are, so a later run's changes apply to them too.  Returns the tables staged.
CREATE FUNCTION floor.inc_stage(p_client text, p_run bigint) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    m regclass;
    d text;
    v text;
    changed boolean;
    staged text[] := '{}';
BEGIN
    DROP SCHEMA IF EXISTS floor_new CASCADE;
    DROP SCHEMA IF EXISTS floor_gone CASCADE;
    CREATE SCHEMA floor_new;
    CREATE SCHEMA floor_gone;
    CREATE SCHEMA IF NOT EXISTS floor_m;
    CREATE SCHEMA IF NOT EXISTS floor_d;
    CREATE SCHEMA IF NOT EXISTS floor_v;
    FOR r IN SELECT * FROM floor.tables(p_client) LOOP
        v := format('%I.%I', 'owsync_' || p_client || '_versions', r.t);
        CONTINUE WHEN to_regclass(v) IS NULL;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE owsync_run = $1)', v) INTO changed USING p_run;
        CONTINUE WHEN NOT changed;
        IF cardinality(r.k) = 0 THEN
            RAISE WARNING 'table % (without key) changed in run %: its writes are not in the floor', r.t, p_run;
            CONTINUE;
        END IF;
        m := format('%I.%I', p_client, r.t)::regclass;
        d := format('%I.%I', 'owsync_' || p_client || '_digest', r.t);
        IF to_regclass(format('floor_m.%I', r.t)) IS NULL THEN
            EXECUTE format('CREATE TABLE floor_m.%I (LIKE %s INCLUDING ALL)', r.t, m);
            EXECUTE format('INSERT INTO floor_m.%1$I (%2$s)
                            SELECT %3$s FROM %4$s m
                             WHERE NOT EXISTS (SELECT 1 FROM %5$s v
                                                WHERE v.owsync_run = $1 AND v.owsync_op IN (''u'', ''i'') AND %6$s)
                            UNION ALL
                            SELECT %2$s FROM %5$s WHERE owsync_run = $1 AND owsync_op IN (''u'', ''d'')',
                           r.t, floor.cols(m), floor.cols(m, 'm'), m, v, floor.on_key(r.k, 'v', 'm'))
              USING p_run;
            EXECUTE format('CREATE TABLE floor_d.%I (LIKE %s INCLUDING ALL)', r.t, d);
            EXECUTE format('INSERT INTO floor_d.%1$I (%2$s, owsync_digest)
                            SELECT %3$s, d.owsync_digest FROM %4$s d
                             WHERE NOT EXISTS (SELECT 1 FROM %5$s v
                                                WHERE v.owsync_run = $1 AND v.owsync_op = ''i'' AND %6$s)
                            UNION ALL
                            SELECT %2$s, 0 FROM %5$s WHERE owsync_run = $1 AND owsync_op = ''d''',
                           r.t, floor.keys(r.k), floor.keys(r.k, 'd'), d, v, floor.on_key(r.k, 'v', 'd'))
              USING p_run;
            EXECUTE format('CREATE TABLE floor_v.%I (LIKE %s INCLUDING ALL)', r.t, v);
        END IF;
        EXECUTE format('CREATE TABLE floor_new.%I (LIKE %s)', r.t, m);
        EXECUTE format('ALTER TABLE floor_new.%I ADD COLUMN owsync_digest bigint', r.t);
        PERFORM floor.uncompressed(format('floor_new.%I', r.t)::regclass);
        EXECUTE format('INSERT INTO floor_new.%1$I (%2$s, owsync_digest)
                        SELECT %3$s, d.owsync_digest FROM %4$s m JOIN %5$s d ON %6$s
                         WHERE EXISTS (SELECT 1 FROM %7$s v
                                        WHERE v.owsync_run = $1 AND v.owsync_op IN (''u'', ''i'') AND %8$s)',
                       r.t, floor.cols(m), floor.fresh(m, 'm'), m, d, floor.on_key(r.k, 'd', 'm'), v,
                       floor.on_key(r.k, 'v', 'm'))
          USING p_run;
        EXECUTE format('CREATE TABLE floor_gone.%I AS SELECT %s FROM %s WHERE owsync_run = %s AND owsync_op = ''d''',
                       r.t, floor.keys(r.k), v, p_run);
        staged := staged || r.t;
    END LOOP;
    RETURN staged;
END
$$;

-- The writes of run p_run for the staged tables, in one transaction, each row found by key
-- (nested loops over the primary keys: the stage is small against the tables): the versions
-- of the rows it overwrites and the keys it adds, the rows and digests written (inserted or
-- updated), the deleted rows removed and kept as versions, their digests removed.  Returns the
-- rows written.
CREATE FUNCTION floor.inc_write(p_client text, p_run bigint, tabs text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    t text;
    k text[];
    m regclass;
    setlist text;
    n bigint;
    total bigint := 0;
BEGIN
    PERFORM set_config('enable_hashjoin', 'off', true);
    PERFORM set_config('enable_mergejoin', 'off', true);
    FOREACH t IN ARRAY tabs LOOP
        SELECT key_columns INTO k FROM owsync.client_table WHERE client = p_client AND table_name = t;
        m := format('floor_m.%I', t)::regclass;
        SELECT string_agg(format('%I = EXCLUDED.%I', a.attname, a.attname), ', ' ORDER BY a.attnum) INTO setlist
          FROM pg_attribute a
         WHERE a.attrelid = m AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attname <> ALL (k);
        EXECUTE format('INSERT INTO floor_v.%1$I (owsync_run, owsync_op, %2$s)
                        SELECT $1, ''u'', %3$s FROM floor_new.%1$I s JOIN floor_m.%1$I m ON %4$s',
                       t, floor.cols(m), floor.cols(m, 'm'), floor.on_key(k, 'm', 's'))
          USING p_run;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        EXECUTE format('INSERT INTO floor_v.%1$I (owsync_run, owsync_op, %2$s)
                        SELECT $1, ''i'', %3$s FROM floor_new.%1$I s
                         WHERE NOT EXISTS (SELECT 1 FROM floor_m.%1$I m WHERE %4$s)',
                       t, floor.keys(k), floor.keys(k, 's'), floor.on_key(k, 'm', 's'))
          USING p_run;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        EXECUTE format('INSERT INTO floor_m.%1$I (%2$s) SELECT %3$s FROM floor_new.%1$I s
                        ON CONFLICT (%4$s) DO %5$s',
                       t, floor.cols(m), floor.cols(m, 's'), floor.keys(k),
                       CASE WHEN setlist IS NULL THEN 'NOTHING' ELSE 'UPDATE SET ' || setlist END);
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        EXECUTE format('INSERT INTO floor_d.%1$I (%2$s, owsync_digest) SELECT %3$s, s.owsync_digest FROM floor_new.%1$I s
                        ON CONFLICT (%2$s) DO UPDATE SET owsync_digest = EXCLUDED.owsync_digest',
                       t, floor.keys(k), floor.keys(k, 's'));
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        EXECUTE format('WITH gone AS (DELETE FROM floor_m.%1$I m USING floor_gone.%1$I g WHERE %2$s RETURNING m.*)
                        INSERT INTO floor_v.%1$I (owsync_run, owsync_op, %3$s) SELECT $1, ''d'', %3$s FROM gone',
                       t, floor.on_key(k, 'm', 'g'), floor.cols(m))
          USING p_run;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        EXECUTE format('DELETE FROM floor_d.%1$I d USING floor_gone.%1$I g WHERE %2$s', t, floor.on_key(k, 'd', 'g'));
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;
    RETURN total;
END
$$;

-- What pgoutput sends for every row of the client's mirror, inserted once: per row a CopyData
-- message (5 bytes) holding an XLogData header (25) and an Insert message (8), per column 1
-- byte for a NULL, else 5 and the value's text form.
CREATE FUNCTION floor.pgoutput_bytes(p_client text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    m regclass;
    expr text;
    n bigint;
    total bigint := 0;
BEGIN
    FOR r IN SELECT * FROM floor.tables(p_client) LOOP
        m := format('%I.%I', p_client, r.t)::regclass;
        SELECT string_agg(format('CASE WHEN %1$I IS NULL THEN 1 ELSE 5 + %2$s END', a.attname,
                                 CASE WHEN a.atttypid = 'boolean'::regtype::oid THEN '1'
                                      ELSE format('octet_length(%I::text)', a.attname) END), ' + ')
          INTO expr
          FROM pg_attribute a WHERE a.attrelid = m AND a.attnum > 0 AND NOT a.attisdropped;
        EXECUTE format('SELECT coalesce(sum(38 + %s), 0) FROM %s', expr, m) INTO n;
        total := total + n;
    END LOOP;
    RETURN total;
END
$$;

-- Whether floor_full holds as many rows as the client's mirror and digests ("" when it does).
CREATE FUNCTION floor.check_full(p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    a bigint;
    b bigint;
    diffs text := '';
BEGIN
    FOR r IN SELECT * FROM floor.tables(p_client) LOOP
        EXECUTE format('SELECT (SELECT count(*) FROM %I.%I), (SELECT count(*) FROM floor_full.%I)', p_client, r.t, r.t)
          INTO a, b;
        IF a <> b THEN
            diffs := diffs || format('%s: mirror %s rows, floor %s; ', r.t, a, b);
        END IF;
        CONTINUE WHEN cardinality(r.k) = 0;
        EXECUTE format('SELECT (SELECT count(*) FROM %I.%I), (SELECT count(*) FROM floor_fulld.%I)',
                       'owsync_' || p_client || '_digest', r.t, r.t)
          INTO a, b;
        IF a <> b THEN
            diffs := diffs || format('%s: digests %s, floor %s; ', r.t, a, b);
        END IF;
    END LOOP;
    RETURN diffs;
END
$$;

-- Whether the floor wrote what run p_run wrote ("" when it did): floor_m and floor_d hold as
-- many rows as the client's mirror and digests, floor_v as many versions of the run, by kind.
CREATE FUNCTION floor.check_inc(p_client text, p_run bigint, tabs text[]) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    t text;
    a text;
    b text;
    diffs text := '';
BEGIN
    FOREACH t IN ARRAY tabs LOOP
        EXECUTE format('SELECT (SELECT count(*) FROM %I.%I) || '' '' || (SELECT count(*) FROM %I.%I),
                               (SELECT count(*) FROM floor_m.%I) || '' '' || (SELECT count(*) FROM floor_d.%I)',
                       p_client, t, 'owsync_' || p_client || '_digest', t, t, t)
          INTO a, b;
        IF a <> b THEN
            diffs := diffs || format('%s: mirror and digest rows %s, floor %s; ', t, a, b);
        END IF;
        EXECUTE format('SELECT (SELECT string_agg(owsync_op || count, '' '' ORDER BY owsync_op)
                                  FROM (SELECT owsync_op, count(*) FROM %I.%I WHERE owsync_run = $1 GROUP BY 1) x),
                               (SELECT string_agg(owsync_op || count, '' '' ORDER BY owsync_op)
                                  FROM (SELECT owsync_op, count(*) FROM floor_v.%I WHERE owsync_run = $1 GROUP BY 1) x)',
                       'owsync_' || p_client || '_versions', t, t)
          INTO a, b USING p_run;
        IF a IS DISTINCT FROM b THEN
            diffs := diffs || format('%s: versions of the run %s, floor %s; ', t, a, b);
        END IF;
    END LOOP;
    RETURN diffs;
END
$$;
