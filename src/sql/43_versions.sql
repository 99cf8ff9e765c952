-- Row versions: what each run replaces, kept so that a client can be
-- restored as it stood after any run of its retention window (55_restore.sql)
-- and a row's past can be listed (56_versions.sql).
--
-- Per client, schema owsync_<client>_versions (owsync's own: no reader role
-- has any right on it) holds, per mirror table of the same name, the
-- versions the client's runs replaced:
--
--   owsync_run  the run that replaced it
--   owsync_op   'u' the version an update overwrote, 'd' the version a
--               delete removed, 'i' the run inserted the key (only the key
--               columns are set); for a table without key, 's' a row of the
--               set the run replaced and 'e' the mark that it did (the set
--               may have been empty)
--   owsync_ord  (a table without key) the row's number within its set
--   the mirror's columns, all nullable, large values as the mirror stores
--   them (copied compressed, never recompressed)
--
-- keyed by (key, owsync_run), or (owsync_run, owsync_ord) without key: a
-- primary key, so that the hub can subscribe to it and a purge is a DELETE.
--
-- The state after run R is then, per key: the oldest version kept by a run
-- after R (none when that run inserted the key), or the mirror's row when no
-- run after R changed the key (owsync._as_of_select).  Runs record only what
-- they change; a nothing-changed run records nothing.
--
-- client.versions_from is the oldest run whose state can be given back:
-- the registration (its first load is not recorded: nothing came before),
-- the last run before the upgrade that brought versions, or, once the
-- retention (option versions_retention, default 1 day) is reached, the
-- newest run that finished before it; older versions are purged by each
-- run.  With option versions_interval, an update of a row that already has
-- a version kept within the current interval (intervals counted from the
-- epoch, by run start) is not kept: the state at the start of each interval
-- stays exact, and an as-of restore gives that (it says so).  Inserts and
-- deletes are always kept.

-- The mirror's columns, in order, quoted and joined with ", " (prefixed by
-- alias, when given).
CREATE FUNCTION owsync._column_list(rel regclass, alias text DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(coalesce(alias || '.', '') || quote_ident(a.attname), ', ' ORDER BY a.attnum)
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- The key columns of a table, from its primary key ('{}': none).
CREATE FUNCTION owsync._primary_key(rel regclass) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(a.attname::text ORDER BY k.o), '{}')
      FROM pg_index i
      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, o)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = rel AND i.indisprimary
$$;

-- The bytes a client's kept versions take (tables, indexes, TOAST).
CREATE FUNCTION owsync._versions_bytes(p_client text) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = owsync._versions_schema(p_client) AND c.relkind = 'r'
$$;

-- Make the versions table of a mirror table exist with every column the
-- mirror has (a column added by drift is added here too).  Returns its name,
-- qualified and quoted.
CREATE FUNCTION owsync._versions_table(p_client text, p_table text, keys text[]) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    vs name := owsync._versions_schema(p_client);
    mirror regclass := format('%I.%I', p_client, p_table)::regclass;
    v text := format('%I.%I', vs, p_table);
    col record;
BEGIN
    IF to_regclass(v) IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = vs) THEN
            EXECUTE format('CREATE SCHEMA %I', vs);
        END IF;
        EXECUTE format('CREATE TABLE %s (owsync_run bigint NOT NULL, owsync_op "char" NOT NULL%s, %s, PRIMARY KEY (%s))',
                       v, CASE WHEN cardinality(keys) = 0 THEN ', owsync_ord integer NOT NULL' ELSE '' END,
                       (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', '
                                          ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = mirror AND a.attnum > 0 AND NOT a.attisdropped),
                       CASE WHEN cardinality(keys) = 0 THEN 'owsync_run, owsync_ord'
                            ELSE (SELECT string_agg(format('%I', k), ', ') FROM unnest(keys) k) || ', owsync_run' END);
        IF cardinality(keys) > 0 THEN
            -- the purge deletes by run
            EXECUTE format('CREATE INDEX ON %s (owsync_run)', v);
        END IF;
    END IF;
    FOR col IN SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
                 FROM pg_attribute a
                WHERE a.attrelid = mirror AND a.attnum > 0 AND NOT a.attisdropped
                  AND NOT EXISTS (SELECT 1 FROM pg_attribute x
                                   WHERE x.attrelid = v::regclass AND x.attname = a.attname AND NOT x.attisdropped)
                ORDER BY a.attnum LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', v, col.attname, col.type);
    END LOOP;
    -- large values compressed as in the mirror
    FOR col IN SELECT a.attname, CASE a.attcompression WHEN 'l' THEN 'lz4' WHEN 'p' THEN 'pglz'
                                                       ELSE 'default' END AS method
                 FROM pg_attribute a JOIN pg_attribute x ON x.attname = a.attname
                WHERE a.attrelid = mirror AND x.attrelid = v::regclass AND a.attcompression <> x.attcompression
                  AND NOT x.attisdropped LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION %s', v, col.attname, col.method);
    END LOOP;
    RETURN v;
END
$$;

-- The versions a run is about to replace by applying the stage (the MERGE
-- of owsync._apply): the mirror's version of each row whose digest changed
-- (unless versions_interval holds one of it already), and the keys the stage
-- inserts.  The stage holds the run's changed rows, few against the mirror:
-- each is looked up by key through the indexes (no hash join, which would
-- read the whole mirror and digest table to find them).
CREATE FUNCTION owsync._keep_replaced(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET enable_hashjoin = off
AS $$
DECLARE
    v text := owsync._versions_table(t.client, t.table_name, t.key_columns);
BEGIN
    IF p.setlist IS NOT NULL THEN
        EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, %2$s)
                        SELECT $1, %3$L, %4$s FROM pg_temp.owsync_stage s JOIN %5$s m ON %6$s
                          LEFT JOIN %7$s d ON %8$s
                         WHERE d.owsync_digest IS DISTINCT FROM s.owsync_digest%9$s',
                       v, owsync._column_list(p.mirror::regclass), 'u', owsync._column_list(p.mirror::regclass, 'm'),
                       p.mirror, p.on_key, p.dig, owsync._key_match(t.key_columns, 'd', 's'),
                       owsync._within_interval(t, p, v))
          USING p.run_id, p.interval_run;
    END IF;
    EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, %2$s)
                    SELECT $1, %3$L, %4$s FROM pg_temp.owsync_stage s
                     WHERE NOT EXISTS (SELECT 1 FROM %5$s m WHERE %6$s)',
                   v, p.keylist, 'i', (SELECT string_agg(format('s.%I', k), ', ') FROM unnest(t.key_columns) k),
                   p.mirror, p.on_key)
      USING p.run_id;
END
$$;

-- The condition that leaves out an update of row m when versions_interval
-- holds a version of it kept since the interval began ('' without the
-- bound).  The statement's $2 is that interval's first run.
CREATE FUNCTION owsync._within_interval(t owsync.client_table, p owsync._sync_plan, v text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p.interval_run IS NULL THEN ''
                ELSE format(' AND NOT EXISTS (SELECT 1 FROM %s v WHERE %s AND v.owsync_run >= $2)',
                            v, owsync._key_match(t.key_columns, 'v', 'm')) END
$$;

-- Hard deletes, keeping the versions they remove: the mirror's rows whose
-- keys the source lost (pg_temp.owsync_gone) deleted.  Returns the rows
-- deleted.
CREATE FUNCTION owsync._delete_gone(t owsync.client_table, p owsync._sync_plan) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text;
    deleted bigint;
BEGIN
    IF p.keep_versions THEN
        v := owsync._versions_table(t.client, t.table_name, t.key_columns);
        EXECUTE format('WITH gone AS (DELETE FROM %1$s m USING pg_temp.owsync_gone s WHERE %2$s RETURNING m.*)
                        INSERT INTO %3$s (owsync_run, owsync_op, %4$s) SELECT $1, %5$L, %4$s FROM gone',
                       p.mirror, p.on_key, v, owsync._column_list(p.mirror::regclass), 'd')
          USING p.run_id;
    ELSE
        EXECUTE format('DELETE FROM %1$s m USING pg_temp.owsync_gone s WHERE %2$s', p.mirror, p.on_key);
    END IF;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;

-- Before a full reload of a keyed table, with the keys it moves in
-- pg_temp.owsync_moved (44_sync_table.sql): the versions the reload replaces
-- kept, the mirror's rows whose key is gone or whose digest changed, and the
-- keys it adds.  (A row the digests say is unchanged but that differs from the
-- source, a mirror edited by hand past its triggers, is repaired by the
-- reload without a version: that state was no run's.)
CREATE FUNCTION owsync._keep_reloaded(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := owsync._versions_table(t.client, t.table_name, t.key_columns);
BEGIN
    EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, %2$s)
                    SELECT $1, s.owsync_op, %3$s FROM pg_temp.owsync_moved s JOIN %4$s m ON %5$s
                     WHERE s.owsync_op = %6$L OR (s.owsync_op = %7$L%8$s)',
                   v, owsync._column_list(p.mirror::regclass), owsync._column_list(p.mirror::regclass, 'm'),
                   p.mirror, p.on_key, 'd', 'u',
                   CASE WHEN p.setlist IS NULL THEN ' AND false' ELSE owsync._within_interval(t, p, v) END)
      USING p.run_id, p.interval_run;
    EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, %2$s)
                    SELECT $1, owsync_op, %2$s FROM pg_temp.owsync_moved WHERE owsync_op = %3$L',
                   v, p.keylist, 'i')
      USING p.run_id;
END
$$;

-- A table without key, replaced as a whole: the set it held kept (with the
-- mark 'e'), unless the reload left it the same, checked by the caller
-- with owsync._set_signature().
CREATE FUNCTION owsync._keep_set(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := owsync._versions_table(t.client, t.table_name, t.key_columns);
    cols text := owsync._column_list(p.mirror::regclass);
BEGIN
    EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, owsync_ord) VALUES ($1, %2$L, 0)', v, 'e')
      USING p.run_id;
    EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, owsync_ord, %2$s)
                    SELECT $1, %3$L, row_number() OVER (), %2$s FROM %4$s',
                   v, cols, 's', p.mirror)
      USING p.run_id;
END
$$;

-- The rows of a table without key, as one value: equal before and after a
-- reload, the set did not change.
CREATE FUNCTION owsync._set_signature(rel text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sig text;
BEGIN
    EXECUTE format('SELECT count(*) || %L || md5(coalesce(string_agg(r::text, E''\n'' ORDER BY r::text), %L)) FROM %s r',
                   ':', '', rel)
      INTO sig;
    RETURN sig;
END
$$;

-- A set kept by this run that the reload left the same is dropped again.
CREATE FUNCTION owsync._drop_kept_set(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('DELETE FROM %I.%I WHERE owsync_run = $1', owsync._versions_schema(t.client), t.table_name)
      USING p.run_id;
END
$$;

-- The first run of the versions_interval interval that run p_run started
-- in: an update of a row with a version kept by it or a later run is not
-- kept (NULL: no bound, every version kept).
CREATE FUNCTION owsync._interval_run(p_client text, p_run bigint, opts jsonb) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (SELECT min(x.run_id) FROM owsync.run x
             WHERE x.client = p_client
               AND x.started_at >= date_bin((opts ->> 'versions_interval')::interval, r.started_at,
                                            timestamptz 'epoch'))
      FROM owsync.run r
     WHERE r.run_id = p_run AND (opts ->> 'versions_interval')::interval > interval '0'
$$;

-- Purge what is older than the retention, after run p_run succeeded: the
-- newest run that finished before it becomes the oldest the client can be
-- restored to, and the versions its state does not need (kept by it or
-- earlier runs) go.  Each table's purge is one DELETE by run, through the
-- index on owsync_run; the window may reach a 24th of the retention further
-- back than it, never less.  With versions_retention 0 nothing is kept: the
-- window is run p_run alone (its state is the mirror's).
CREATE FUNCTION owsync._purge_versions(p_client text, p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    keep interval;
    cutoff bigint;
    v record;
BEGIN
    SELECT * INTO c FROM owsync.client WHERE client = p_client;
    IF c.versions_from IS NULL THEN
        RETURN;
    END IF;
    keep := (owsync._options(c.options) ->> 'versions_retention')::interval;
    IF keep = interval '0' THEN
        cutoff := p_run;
    -- in batches: once the window's start is past the retention by a 24th
    -- of it (an hour for a day), so that most runs skip this
    ELSIF (SELECT r.finished_at FROM owsync.run r WHERE r.run_id = c.versions_from) >= now() - keep - keep / 24 THEN
        RETURN;
    ELSE
        SELECT max(r.run_id) INTO cutoff FROM owsync.run r
         WHERE r.client = p_client AND r.status = 'succeeded' AND r.finished_at < now() - keep;
    END IF;
    IF cutoff IS NULL OR cutoff <= c.versions_from THEN
        RETURN;
    END IF;
    FOR v IN SELECT x.relname FROM pg_class x
              WHERE x.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = owsync._versions_schema(p_client))
                AND x.relkind = 'r' LOOP
        EXECUTE format('DELETE FROM %I.%I WHERE owsync_run <= $1', owsync._versions_schema(p_client), v.relname)
          USING cutoff;
    END LOOP;
    UPDATE owsync.client SET versions_from = cutoff WHERE client = p_client;
END
$$;

-- The SELECT giving a table's rows as they stood after run p_run: from its
-- mirror table and its versions table (NULL: none kept), local or the
-- hub's copies, keyed by keys ('{}': a table without key, kept as sets).
-- The columns are the mirror's; a column the versions table lacks (added
-- after its last version) reads as NULL.
CREATE FUNCTION owsync._as_of_select(mirror regclass, versions regclass, keys text[], p_run bigint) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text := owsync._column_list(mirror);
    v_cols text;
BEGIN
    IF versions IS NULL THEN
        RETURN format('SELECT %s FROM %s', cols, mirror);
    END IF;
    SELECT string_agg(CASE WHEN x.attname IS NULL THEN format('NULL::%s AS %I', format_type(a.atttypid, a.atttypmod), a.attname)
                           ELSE format('v.%I', a.attname) END, ', ' ORDER BY a.attnum)
      INTO v_cols
      FROM pg_attribute a
      LEFT JOIN pg_attribute x ON x.attrelid = versions AND x.attname = a.attname AND NOT x.attisdropped
     WHERE a.attrelid = mirror AND a.attnum > 0 AND NOT a.attisdropped;
    IF cardinality(keys) = 0 THEN
        RETURN format('SELECT %1$s FROM %2$s m WHERE NOT EXISTS (SELECT 1 FROM %3$s v WHERE v.owsync_run > %4$s)
                       UNION ALL
                       SELECT %5$s FROM %3$s v
                        WHERE v.owsync_op = %6$L
                          AND v.owsync_run = (SELECT min(x.owsync_run) FROM %3$s x WHERE x.owsync_run > %4$s)',
                      owsync._column_list(mirror, 'm'), mirror, versions, p_run, v_cols, 's');
    END IF;
    RETURN format('SELECT %1$s FROM %2$s m
                    WHERE NOT EXISTS (SELECT 1 FROM %3$s v WHERE %4$s AND v.owsync_run > %5$s)
                   UNION ALL
                   SELECT %6$s FROM (SELECT DISTINCT ON (%7$s) * FROM %3$s
                                      WHERE owsync_run > %5$s ORDER BY %7$s, owsync_run) v
                    WHERE v.owsync_op <> %8$L',
                  owsync._column_list(mirror, 'm'), mirror, versions, owsync._key_match(keys, 'v', 'm'), p_run,
                  v_cols, (SELECT string_agg(format('%I', k), ', ') FROM unnest(keys) k), 'i');
END
$$;

-- The run an as-of restore gives the state after: for a time, the last
-- successful run that finished at or before it (with versions_interval, the
-- last that started before that interval began, where kept versions are
-- exact); for a run id, that run, which must have succeeded.  Refused
-- outside the client's window: from the end of its run versions_from to
-- now.  Also returns when that run finished, the moment the state is exact
-- for, and the interval (NULL: every version kept).  See _as_of_window.
CREATE FUNCTION owsync._as_of_run(p_client text, p_at timestamptz, p_run bigint,
                                  OUT run_id bigint, OUT finished_at timestamptz, OUT exact_at timestamptz,
                                  OUT granularity interval)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
BEGIN
    SELECT * INTO c FROM owsync.client x WHERE x.client = p_client;
    SELECT * INTO run_id, finished_at, exact_at, granularity
      FROM owsync._as_of_window(p_client, p_at, p_run, c.versions_from, c.options, 'owsync.run');
END
$$;

-- owsync._as_of_run() from the facts it needs: the client's versions_from
-- and options, and a relation of its runs (owsync.run, or the hub's copy of
-- its edge's runs) with run_id, client, status, started_at and finished_at.
CREATE FUNCTION owsync._as_of_window(p_client text, p_at timestamptz, p_run bigint, p_versions_from bigint,
                                     p_options jsonb, p_runs regclass,
                                     OUT run_id bigint, OUT finished_at timestamptz, OUT exact_at timestamptz,
                                     OUT granularity interval)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    oldest timestamptz;
    window_text text;
BEGIN
    IF p_versions_from IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('client %L keeps no row versions', p_client),
            DETAIL = 'Versions are kept from the first run after registration on, unless versions_retention is 0.',
            HINT = 'Restore the client as it is now, without as_of or run_id.';
    END IF;
    EXECUTE format('SELECT r.finished_at FROM %s r WHERE r.run_id = $1', p_runs) INTO oldest USING p_versions_from;
    window_text := format('Client %s can be restored as it stood at any moment from %s (the end of run %s) to now.',
                          p_client, oldest, p_versions_from);
    granularity := nullif((owsync._options(p_options) ->> 'versions_interval')::interval, interval '0');
    IF p_run IS NOT NULL THEN
        EXECUTE format('SELECT r.run_id, r.finished_at FROM %s r
                         WHERE r.run_id = $1 AND r.client = $2 AND r.status = %L', p_runs, 'succeeded')
          INTO run_id, finished_at USING p_run, p_client;
        IF run_id IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('run %s is not a successful run of client %L', p_run, p_client),
                HINT = 'owsync.history lists the client''s runs.';
        END IF;
        IF run_id < p_versions_from THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('run %s of client %L is older than its kept versions reach', p_run, p_client),
                DETAIL = window_text;
        END IF;
        exact_at := finished_at;
        granularity := NULL;
        RETURN;
    END IF;
    IF p_at < oldest THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('client %L cannot be restored as of %s', p_client, p_at),
            DETAIL = window_text,
            HINT = 'Its option versions_retention sets how far back versions are kept.';
    ELSIF p_at > now() THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('client %L cannot be restored as of %s, a time to come', p_client, p_at),
            DETAIL = window_text;
    END IF;
    exact_at := CASE WHEN granularity IS NULL THEN p_at
                     ELSE date_bin(granularity, p_at, timestamptz 'epoch') END;
    EXECUTE format('SELECT r.run_id, r.finished_at FROM %s r
                     WHERE r.client = $1 AND r.status = %L AND r.run_id >= $2
                       AND CASE WHEN $3 IS NULL THEN r.finished_at <= $4 ELSE r.started_at < $5 END
                     ORDER BY r.run_id DESC LIMIT 1', p_runs, 'succeeded')
      INTO run_id, finished_at USING p_client, p_versions_from, granularity, p_at, exact_at;
    IF run_id IS NULL THEN
        -- within the first interval of the window: its first run's state
        run_id := p_versions_from;
        finished_at := oldest;
        exact_at := oldest;
    END IF;
END
$$;

-- The relation holding a table's rows that an as-of restore to run p_run
-- reads: the mirror table, or, when a later run retired it (replaced at the
-- source by a table without its key, see owsync._retire_table), the kept
-- <table>_before_<run> of the first such run.
CREATE FUNCTION owsync._as_of_table(p_schema name, p_table text, p_run bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT c.relname::text FROM pg_class c
                      CROSS JOIN LATERAL (SELECT substring(c.relname FROM '_before_([0-9]+)$')::bigint AS s) r
                     WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = p_schema)
                       AND c.relkind IN ('r', 'f') AND r.s > p_run
                       AND c.relname = left(p_table, 63 - length('_before_' || r.s)) || '_before_' || r.s
                     ORDER BY r.s LIMIT 1),
                    p_table)
$$;

-- Temporary views of a client's tables as they stood after run p_run, one
-- per table named in tabs, in that order: over the mirror and versions
-- schemas given (the client's own, or the hub's copies of them), keyed by
-- keys (one text[] per table, as a JSON array of arrays; NULL: each mirror
-- table's primary key).  A later call replaces them; owsync._drop_as_of_views()
-- drops them.
CREATE FUNCTION owsync._as_of_views(p_mirror name, p_versions name, tabs text[], p_run bigint,
                                    keys jsonb DEFAULT NULL) RETURNS regclass[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rels regclass[] := '{}';
    rel text;
    view text;
    k text[];
BEGIN
    FOR i IN 1 .. coalesce(cardinality(tabs), 0) LOOP
        rel := owsync._as_of_table(p_mirror, tabs[i], p_run);
        view := format('pg_temp.%I', 'owsync_as_of_' || i);
        k := CASE WHEN keys IS NULL THEN owsync._primary_key(format('%I.%I', p_mirror, rel)::regclass)
                  ELSE ARRAY(SELECT jsonb_array_elements_text(keys -> (i - 1))) END;
        EXECUTE format('DROP VIEW IF EXISTS %s', view);
        EXECUTE format('CREATE TEMP VIEW %s AS %s', view,
                       owsync._as_of_select(format('%I.%I', p_mirror, rel)::regclass,
                                            to_regclass(format('%I.%I', p_versions, rel)), k, p_run));
        rels := rels || view::regclass;
    END LOOP;
    RETURN rels;
END
$$;

-- What a restore as of a past run adds to its report: the moment asked,
-- the run whose state it wrote, when that run finished, the moment the state
-- is exact for, and versions_interval (see owsync._as_of_run()).
CREATE FUNCTION owsync._as_of_report(as_of timestamptz, run_id bigint, finished_at timestamptz,
                                     exact_at timestamptz, granularity interval) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('as_of', as_of, 'state_after_run', run_id, 'run_finished_at', finished_at,
                              'exact_at', exact_at, 'versions_interval', granularity)
$$;

-- Drop the views owsync._as_of_views() made.
CREATE FUNCTION owsync._drop_as_of_views(rels regclass[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r regclass;
BEGIN
    FOREACH r IN ARRAY coalesce(rels, '{}') LOOP
        EXECUTE format('DROP VIEW %s', r);
    END LOOP;
END
$$;
