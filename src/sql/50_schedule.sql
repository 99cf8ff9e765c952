-- Scheduling.  A client's schedule is one of
--
--   manual     no scheduled runs: syncs run when called
--   realtime   every minute
--   5min       every 5 minutes, at a minute offset derived from the name
--   hourly     every hour, at a minute derived from the name
--   daily      every day between 01:00 and 04:59 (UTC), at a time derived
--              from the name, so that a fleet is spread out rather than all
--              at :00
--   a 5-field cron expression ('*/2 * * * *': minute, hour, day of month,
--              month, day of week; numbers, ranges, steps and lists), read
--              in UTC as pg_cron 1.4 reads its own
--   'N seconds' (1-59), where pg_cron supports it (1.5 and later)
--
-- Every schedule in minutes is served by the dispatcher pool: the pg_cron
-- jobs owsync:dispatch:1 .. owsync:dispatch:N (N from set_sync_workers(),
-- default 2), each running CALL owsync.dispatch() every minute.  A
-- dispatcher runs, in its own backend, the clients that are due, most
-- overdue first, each exactly as CALL owsync.sync(client) does, until none
-- is due.  A client is due when its schedule has fired since its last
-- scheduled start, or since it was scheduled (owsync.sync_due.due_at), it
-- is enabled, and it is not backing off (owsync.client.next_attempt_at,
-- 5 seconds early counting as on time, for the minute ticks).  Two
-- dispatchers never run one client at once (each claims a client's row
-- with a row lock and moves its due time on before it commits, and holds
-- the client's run lock while it runs it); a client synced by hand or
-- restored at that moment is passed over until the next tick, not recorded
-- as a skipped run.
--
-- Why a pool: pg_cron starts a backend for every run of a job, so a job per
-- client costs a backend start, a catalog load and the compilation of the
-- sync's functions per run; with hundreds of realtime clients on a small
-- server that is most of the work, and more than pg_cron starts in a
-- minute.  A dispatcher pays that once per tick for all the clients it
-- runs.  The pool's jobs exist while at least one enabled client is on a
-- schedule in minutes (none on a server of manual clients).
--
-- A schedule in seconds keeps a job of its own, owsync:<client>, running
-- CALL owsync.sync('<client>') (the pool ticks by the minute).
--
-- pg_cron runs in one database (cron.database_name).  When that is this
-- database, owsync calls it directly; when it is another one, owsync reaches
-- it through dblink (CREATE EXTENSION dblink here) and creates its jobs with
-- cron.schedule_in_database, their names ending in @<this database>
-- (owsync:dispatch:1@<database>) so that two databases' jobs do not mix.
-- The connection is owsync.cron_connection, by default the server's own
-- socket, port and the cron database, as the extension's owner.
--
-- Without pg_cron everything else works; setting a schedule other than
-- manual fails and says how to get pg_cron.

-- A value for a libpq connection string, quoted.
CREATE FUNCTION owsync._conninfo_quote(v text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '''' || replace(replace(v, '\', '\\'), '''', '\''') || ''''
$$;

-- pg_cron as seen from this database.  mode: 'local' (its extension is
-- here), 'remote' (it runs in another database, and dblink is here), or
-- NULL; version (for remote, read through dblink); database: the one its
-- launcher serves; conn and dblink: how to reach it when remote.
CREATE FUNCTION owsync._cron(OUT mode text, OUT version text, OUT database text, OUT conn text,
                             OUT dblink text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    socket text := btrim(split_part(current_setting('unix_socket_directories'), ',', 1));
BEGIN
    version := (SELECT extversion FROM pg_extension WHERE extname = 'pg_cron');
    database := current_setting('cron.database_name', true);
    IF version IS NOT NULL THEN
        mode := 'local';
        RETURN;
    END IF;
    dblink := (SELECT quote_ident(n.nspname) || '.dblink' FROM pg_extension e
                 JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'dblink');
    IF database IS NULL OR database = current_database() OR dblink IS NULL THEN
        RETURN;
    END IF;
    mode := 'remote';
    conn := coalesce(nullif(current_setting('owsync.cron_connection', true), ''),
                     format('dbname=%s host=%s port=%s user=%s', owsync._conninfo_quote(database),
                            owsync._conninfo_quote(coalesce(nullif(socket, ''), 'localhost')),
                            current_setting('port'), owsync._conninfo_quote(current_user)));
    EXECUTE format('SELECT v FROM %s($1, $2) AS t(v text)', dblink)
      INTO version USING conn, 'SELECT extversion FROM pg_extension WHERE extname = ''pg_cron''';
    IF version IS NULL THEN
        mode := NULL;		-- no pg_cron extension over there either
    END IF;
END
$$;

-- Run a query that returns one text value in pg_cron's database.
-- (mode, conn, dblink: from owsync._cron())
CREATE FUNCTION owsync._cron_query(mode text, conn text, dblink text, sql text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text;
BEGIN
    IF mode = 'local' THEN
        EXECUTE sql INTO v;
    ELSE
        EXECUTE format('SELECT v FROM %s($1, $2) AS t(v text)', dblink) INTO v USING conn, sql;
    END IF;
    RETURN v;
END
$$;

-- The name of a client's pg_cron job.
CREATE FUNCTION owsync._job_name(mode text, p_client text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'owsync:' || p_client || CASE WHEN mode = 'remote' THEN '@' || current_database() ELSE '' END
$$;

-- A number from 0 to n - 1 derived from the client's name (and a salt), the
-- same on every server: md5 of the name, not hashtext.
CREATE FUNCTION owsync._spread(client text, salt text, n integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (('x' || substr(md5(salt || ':' || client), 1, 8))::bit(32)::bigint % n)::integer
$$;

-- The values one field of a cron expression names, in order: '*', a
-- number, a range a-b, a step */n or a-b/n, or a list of these, every value
-- from lo to hi (a field as pg_cron reads it, without names of months and
-- days); NULL when the field is not one.
CREATE FUNCTION owsync._cron_field(field text, lo integer, hi integer) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part text;
    m text[];
    a integer;
    b integer;
    vals integer[] := '{}';
BEGIN
    FOREACH part IN ARRAY string_to_array(field, ',') LOOP
        -- m[2] the first value, m[4] the last, m[6] the step
        m := regexp_match(part, '^(\*|(\d{1,4})(-(\d{1,4}))?)(/(\d{1,4}))?$');
        IF m IS NULL OR (m[2] IS NOT NULL AND m[3] IS NULL AND m[5] IS NOT NULL) THEN
            RETURN NULL;			-- (a step needs a range: 5/10 is refused, as by pg_cron)
        END IF;
        a := coalesce(m[2]::integer, lo);
        b := coalesce(m[4]::integer, CASE WHEN m[1] = '*' THEN hi ELSE a END);
        IF a < lo OR b > hi OR a > b OR coalesce(m[6]::integer, 1) < 1 THEN
            RETURN NULL;
        END IF;
        vals := vals || ARRAY(SELECT generate_series(a, b, coalesce(m[6]::integer, 1)));
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT v FROM unnest(vals) v ORDER BY v);
END
$$;

-- When a cron expression next fires after a time (NULL: never, or not an
-- expression of 5 fields): the first minute after it whose minute, hour and
-- month the expression names, on a day it names.  As in cron, a day is
-- named by its day of month and its day of week when either field starts
-- with '*', and by either of them when both are restricted; Sunday is 0 or
-- 7.  Read in UTC, as pg_cron 1.4 reads its own jobs.
CREATE FUNCTION owsync._next_run(expr text, after timestamptz) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f text[] := regexp_split_to_array(btrim(expr), ' +');
    mins integer[];
    hours integer[];
    doms integer[];
    months integer[];
    dows integer[];
    t timestamp := date_trunc('minute', after AT TIME ZONE 'UTC') + interval '1 minute';
    day date := t::date;
    by_dom boolean;
    by_dow boolean;
    h integer;
    m integer;
BEGIN
    IF cardinality(f) <> 5 THEN
        RETURN NULL;
    END IF;
    mins := owsync._cron_field(f[1], 0, 59);
    hours := owsync._cron_field(f[2], 0, 23);
    doms := owsync._cron_field(f[3], 1, 31);
    months := owsync._cron_field(f[4], 1, 12);
    dows := ARRAY(SELECT DISTINCT d % 7 FROM unnest(owsync._cron_field(f[5], 0, 7)) d ORDER BY 1);
    IF mins IS NULL OR hours IS NULL OR doms IS NULL OR months IS NULL OR cardinality(dows) = 0 THEN
        RETURN NULL;
    END IF;
    -- day by day (month by month while the month is not named), for eight
    -- years: a day that comes at all comes in them (February 29th does)
    FOR i IN 1 .. 8 * 366 LOOP
        IF NOT extract(month FROM day)::integer = ANY (months) THEN
            day := ((day - extract(day FROM day)::integer + 1) + interval '1 month')::date;
            CONTINUE;
        END IF;
        by_dom := extract(day FROM day)::integer = ANY (doms);
        by_dow := extract(dow FROM day)::integer = ANY (dows);
        IF (by_dom AND by_dow) OR ((by_dom OR by_dow) AND f[3] NOT LIKE '*%' AND f[5] NOT LIKE '*%') THEN
            h := (SELECT min(x) FROM unnest(hours) x WHERE day > t::date OR x >= extract(hour FROM t));
            WHILE h IS NOT NULL LOOP
                m := (SELECT min(x) FROM unnest(mins) x WHERE day + make_interval(hours => h, mins => x) >= t);
                IF m IS NOT NULL THEN
                    RETURN (day + make_interval(hours => h, mins => m)) AT TIME ZONE 'UTC';
                END IF;
                h := (SELECT min(x) FROM unnest(hours) x WHERE x > h);
            END LOOP;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN NULL;
END
$$;

-- The cron expression of a schedule (NULL for manual), or an error saying
-- what a schedule may be.
CREATE FUNCTION owsync._cron_expr(client text, schedule text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s text := lower(btrim(schedule));
    secs integer;
    pgcron record;
    f text[];
    field constant text[] := '{minute, hour, "day of month", month, "day of week"}';
    lo constant integer[] := '{0, 0, 1, 1, 0}';
    hi constant integer[] := '{59, 23, 31, 12, 7}';
BEGIN
    CASE s
        WHEN 'manual' THEN RETURN NULL;
        WHEN 'realtime' THEN RETURN '* * * * *';
        WHEN '5min' THEN RETURN format('%s-59/5 * * * *', owsync._spread(client, 'minute', 5));
        WHEN 'hourly' THEN RETURN format('%s * * * *', owsync._spread(client, 'minute', 60));
        WHEN 'daily' THEN RETURN format('%s %s * * *', owsync._spread(client, 'minute', 60),
                                        1 + owsync._spread(client, 'hour', 4));
        ELSE NULL;
    END CASE;
    IF s ~ '^[0-9]+ ?(s|sec|secs|second|seconds)$' THEN
        secs := substring(s FROM '^[0-9]+')::integer;
        IF secs < 1 OR secs > 59 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid schedule %L for client %L', schedule, client),
                DETAIL = 'A schedule in seconds runs every 1 to 59 seconds.',
                HINT = 'For a minute or more, use realtime, 5min, hourly, daily or a cron expression.';
        END IF;
        pgcron := owsync._cron();		-- (once: reaching a remote pg_cron connects)
        IF coalesce((regexp_match(pgcron.version, '^(\d+)\.(\d+)'))::integer[] < '{1,5}', true) THEN
            RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
                MESSAGE = format('schedule %L needs pg_cron 1.5 or later', schedule),
                DETAIL = format('The pg_cron here is %s; it schedules by the minute only.',
                                coalesce(pgcron.version, 'not installed')),
                HINT = 'Use realtime (every minute), or upgrade pg_cron.';
        END IF;
        RETURN format('%s seconds', secs);
    END IF;
    -- five fields of digits, *, ranges, lists and steps, each value in its
    -- field's range, and a day that comes
    IF s ~ '^[0-9*,/-]+( +[0-9*,/-]+){4}$' THEN
        s := regexp_replace(s, ' +', ' ', 'g');
        f := string_to_array(s, ' ');
        FOR i IN 1 .. 5 LOOP
            IF owsync._cron_field(f[i], lo[i], hi[i]) IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('invalid schedule %L for client %L', schedule, client),
                    DETAIL = format('Its %s field, %s, is not a list of values from %s to %s, ranges (a-b) and steps (*/n, a-b/n).',
                                    field[i], f[i], lo[i], hi[i]),
                    HINT = 'A cron expression has five fields: minute, hour, day of month, month, day of week (Sunday is 0 or 7).';
            END IF;
        END LOOP;
        IF owsync._next_run(s, now()) IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid schedule %L for client %L', schedule, client),
                DETAIL = 'It names no day that comes (such as February 30th).';
        END IF;
        RETURN s;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
        MESSAGE = format('invalid schedule %L for client %L', schedule, client),
        HINT = 'Use manual, realtime, 5min, hourly, daily, a 5-field cron expression such as ''*/2 * * * *'', or ''N seconds''.';
END
$$;

-- The size of the dispatcher pool: owsync.sync_pool, 2 when not set.
CREATE FUNCTION owsync._sync_workers() RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT p.workers FROM owsync.sync_pool p), 2)
$$;

-- pg_cron's jobs of this database made to match the catalog: the pool's,
-- owsync:dispatch:1 .. N (every minute, CALL owsync.dispatch()), while a
-- client is in owsync.sync_due, none otherwise; and of the clients named,
-- a job of its own (owsync:<client>, CALL owsync.sync('<client>')) for each
-- one enabled on a schedule in seconds, none for the others.  A job already
-- as wanted is left alone (pg_cron ends the running worker of a job that
-- changes or goes).  Without pg_cron nothing changes; with p_scheduling (a
-- client being given a schedule) that is an error saying how to get it.
-- Returns the number of the pool's jobs.
CREATE FUNCTION owsync._cron_match(p_clients text[], p_scheduling text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pgcron record := owsync._cron();
    suffix text := CASE WHEN pgcron.mode = 'remote' THEN '@' || current_database() ELSE '' END;
    pool integer := CASE WHEN EXISTS (SELECT 1 FROM owsync.sync_due) THEN owsync._sync_workers() ELSE 0 END;
    own text[] := ARRAY(SELECT owsync._job_name(pgcron.mode, x) FROM unnest(p_clients) x);
    wanted jsonb;
    have jsonb;
    stale text[];
    missing jsonb;
BEGIN
    SELECT coalesce(jsonb_object_agg(w.name, jsonb_build_object('schedule', w.schedule, 'command', w.command,
                                                                'database', current_database(), 'active', true)), '{}')
      INTO wanted
      FROM (SELECT format('owsync:dispatch:%s%s', k, suffix) AS name, '* * * * *' AS schedule,
                   'CALL owsync.dispatch()' AS command
              FROM generate_series(1, pool) k
            UNION ALL
            SELECT owsync._job_name(pgcron.mode, c.client), c.cron_schedule, format('CALL owsync.sync(%L)', c.client)
              FROM owsync.client c
             WHERE c.client = ANY (p_clients) AND c.enabled AND c.cron_schedule LIKE '% seconds') w;
    IF pgcron.mode IS NULL THEN
        IF p_scheduling IS NOT NULL THEN
            PERFORM owsync._require_cron(p_scheduling);
        ELSIF wanted <> '{}' THEN
            RAISE WARNING 'owsync: pg_cron is not installed here: scheduled clients are not run'
                USING HINT = 'Install pg_cron, or call CALL owsync.dispatch() every minute yourself.';
        END IF;
        RETURN 0;
    END IF;
    have := owsync._cron_query(pgcron.mode, pgcron.conn, pgcron.dblink, format(
        'SELECT coalesce(jsonb_object_agg(jobname, jsonb_build_object(''schedule'', schedule, ''command'', command,
                                                                      ''database'', database, ''active'', active)), ''{}'')::text
           FROM cron.job WHERE jobname LIKE ''owsync:dispatch:%%'' OR jobname = ANY (%L::text[])', own))::jsonb;
    -- ours: the pool's jobs of this database, and the named clients' jobs
    stale := ARRAY(SELECT h.key FROM jsonb_each(have) h
                    WHERE (h.key LIKE 'owsync:dispatch:%' AND regexp_replace(h.key, '^owsync:dispatch:[0-9]+', '') = suffix
                           OR h.key = ANY (own))
                      AND h.value IS DISTINCT FROM wanted -> h.key);
    missing := (SELECT coalesce(jsonb_agg(w.value || jsonb_build_object('name', w.key)), '[]') FROM jsonb_each(wanted) w
                 WHERE w.value IS DISTINCT FROM have -> w.key);
    IF cardinality(stale) > 0 THEN
        PERFORM owsync._cron_query(pgcron.mode, pgcron.conn, pgcron.dblink, format(
            'SELECT count(cron.unschedule(jobid))::text FROM cron.job WHERE jobname = ANY (%L::text[])', stale));
    END IF;
    IF jsonb_array_length(missing) > 0 THEN
        PERFORM owsync._cron_query(pgcron.mode, pgcron.conn, pgcron.dblink, format(
            'SELECT count(%s)::text FROM jsonb_to_recordset(%L::jsonb) AS j(name text, schedule text, command text)',
            CASE WHEN pgcron.mode = 'local' THEN 'cron.schedule(j.name, j.schedule, j.command)'
                 ELSE format('cron.schedule_in_database(j.name, j.schedule, j.command, %L, %L, true)',
                             current_database(), current_user) END,
            missing));
    END IF;
    IF cardinality(stale) > 0 OR jsonb_array_length(missing) > 0 THEN
        -- pg_cron's scheduler may miss the change: it reloads its jobs on the
        -- SIGHUP this transaction sends it once committed (src/owsync_fdw.c)
        PERFORM owsync._reload_cron_at_commit();
    END IF;
    RETURN pool;
END
$$;

-- A client's place in the dispatcher pool made to match its row: a row in
-- owsync.sync_due while it is enabled on a schedule in minutes, due when
-- its schedule next fires (kept while its cron expression stays), none
-- otherwise; the expression noted in owsync.client.cron_schedule (only when
-- it changes: an edge publishes the row).  Returns the expression (NULL:
-- not scheduled).
CREATE FUNCTION owsync._sync_due_row(p_client text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    expr text;
BEGIN
    SELECT * INTO c FROM owsync.client WHERE client = p_client;
    expr := CASE WHEN c.enabled THEN owsync._cron_expr(p_client, c.schedule) END;
    IF expr IS NULL OR expr LIKE '% seconds' THEN
        DELETE FROM owsync.sync_due WHERE client = p_client;
    ELSIF c.cron_schedule IS DISTINCT FROM expr
          OR NOT EXISTS (SELECT 1 FROM owsync.sync_due WHERE client = p_client) THEN
        INSERT INTO owsync.sync_due AS d (client, due_at) VALUES (p_client, owsync._next_run(expr, now()))
        ON CONFLICT (client) DO UPDATE SET due_at = excluded.due_at;
    END IF;
    IF c.cron_schedule IS DISTINCT FROM expr THEN
        UPDATE owsync.client SET cron_schedule = expr WHERE client = p_client;
    END IF;
    RETURN expr;
END
$$;

-- A client's scheduling made to match its row (_sync_due_row), and pg_cron's
-- jobs with it (_cron_match): for set_schedule, enable_sync, disable_sync,
-- register_client and unregister_client.
CREATE FUNCTION owsync._sync_job(p_client text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    expr text := owsync._sync_due_row(p_client);
BEGIN
    PERFORM owsync._cron_match(ARRAY[p_client], CASE WHEN expr IS NOT NULL THEN p_client END);
END
$$;

-- Every client's scheduling made to match its row, and pg_cron's jobs with
-- them: the last step of an upgrade (src/upgrade/epilogue.sql), and of
-- set_sync_workers.  A client whose stored schedule this version refuses
-- is left unscheduled, with a warning.  Returns the number of the pool's
-- jobs.
CREATE FUNCTION owsync._schedule_all() RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
BEGIN
    FOR c IN SELECT * FROM owsync.client x ORDER BY x.client LOOP
        BEGIN
            PERFORM owsync._sync_due_row(c.client);
        EXCEPTION WHEN invalid_parameter_value OR feature_not_supported THEN
            RAISE WARNING 'owsync %: schedule % is not run: %', c.client, c.schedule, SQLERRM
                USING HINT = 'Set another with owsync.set_schedule().';
            DELETE FROM owsync.sync_due WHERE client = c.client;
            UPDATE owsync.client SET cron_schedule = NULL WHERE client = c.client AND cron_schedule IS NOT NULL;
        END;
    END LOOP;
    RETURN owsync._cron_match(ARRAY(SELECT x.client FROM owsync.client x));
END
$$;

-- An error saying how to get pg_cron, unless its extension is in this database.
CREATE FUNCTION owsync._require_cron(p_client text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pgcron record := owsync._cron();
BEGIN
    IF pgcron.mode IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot schedule client %L: pg_cron is not installed in database %s',
                             p_client, current_database()),
            DETAIL = CASE WHEN pgcron.database IS NULL
                          THEN 'pg_cron is not loaded by this server.'
                          ELSE format('pg_cron''s launcher serves database %s.', pgcron.database) END,
            HINT = CASE WHEN pgcron.database IS NULL
                        THEN 'Add pg_cron to shared_preload_libraries, restart, and CREATE EXTENSION pg_cron; or use the manual schedule and call owsync.sync() yourself.'
                        WHEN pgcron.database <> current_database() AND pgcron.dblink IS NULL
                        THEN format('CREATE EXTENSION dblink here, and owsync schedules its jobs in database %s; or install owsync_fdw there.',
                                    pgcron.database)
                        WHEN pgcron.database <> current_database()
                        THEN format('CREATE EXTENSION pg_cron in database %s.', pgcron.database)
                        ELSE 'CREATE EXTENSION pg_cron;' END;
    END IF;
END
$$;

-- Set a client's schedule and make its scheduling match; returns the cron
-- expression ('manual' when not scheduled).
CREATE FUNCTION owsync.set_schedule(client text, schedule text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    expr text;
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._registered(client);
    expr := owsync._cron_expr(client, schedule);
    UPDATE owsync.client c SET schedule = lower(btrim(set_schedule.schedule))
     WHERE c.client = set_schedule.client;
    PERFORM owsync._sync_job(client);
    RETURN coalesce(expr, 'manual');
END
$$;

COMMENT ON FUNCTION owsync.set_schedule(text, text) IS
    'schedule a client''s syncs: manual, realtime, 5min, hourly, daily, a cron expression (run by the dispatcher pool) or ''N seconds'' (a pg_cron job of its own); returns the cron expression';

-- enable_sync / disable_sync: the client's scheduling follows its enabled flag.
CREATE FUNCTION owsync._set_enabled(p_client text, p_enabled boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._registered(p_client);
    UPDATE owsync.client c SET enabled = p_enabled WHERE c.client = p_client;
    PERFORM owsync._sync_job(p_client);
END
$$;

-- Schedule a client's syncs again, on its kept schedule (due when it next
-- fires).
CREATE FUNCTION owsync.enable_sync(client text) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT owsync._set_enabled(client, true);
END;

-- Stop a client's scheduled syncs; its schedule is kept.
CREATE FUNCTION owsync.disable_sync(client text) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT owsync._set_enabled(client, false);
END;

COMMENT ON FUNCTION owsync.disable_sync(text) IS
    'stop a client''s scheduled syncs (its schedule is kept for enable_sync); CALL owsync.sync() still works by hand';

-- Set the number of dispatchers (0 to 32; 0 stops the pool: the scheduled
-- clients then wait for a CALL owsync.dispatch() from elsewhere) and make
-- every client's scheduling and pg_cron's jobs match.  Returns the number
-- of the pool's jobs pg_cron has now (none while no enabled client is on a
-- schedule in minutes).
CREATE FUNCTION owsync.set_sync_workers(workers integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    slots integer := nullif(current_setting('cron.max_running_jobs', true), '')::integer;
BEGIN
    PERFORM owsync._require_admin();
    IF workers IS NULL OR workers < 0 OR workers > 32 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid number of sync workers: %s', coalesce(workers::text, 'NULL')),
            DETAIL = 'The dispatcher pool has 0 to 32 workers (0: none, the scheduled clients wait).',
            HINT = 'A worker runs one client at a time: enough of them to run every due client within its minute (docs/OPERATIONS.md).';
    END IF;
    IF workers > slots THEN
        RAISE WARNING 'owsync: % sync workers are more than pg_cron runs at once (cron.max_running_jobs = %)',
            workers, slots
            USING HINT = 'Raise cron.max_running_jobs (and max_worker_processes) and restart the server.';
    END IF;
    INSERT INTO owsync.sync_pool AS p (workers) VALUES (set_sync_workers.workers)
    ON CONFLICT (one_row) DO UPDATE SET workers = excluded.workers;
    RETURN owsync._schedule_all();
END
$$;

COMMENT ON FUNCTION owsync.set_sync_workers(integer) IS
    'set the number of dispatchers (pg_cron jobs owsync:dispatch:N, default 2) that run the scheduled clients; 0 stops them; returns the number of dispatcher jobs now';

-- A dispatcher's next client: the most overdue due one (see the top of this
-- file) that no other dispatcher holds, claimed by taking its run lock (kept
-- until _dispatch_release) and moving its due time on to when its schedule
-- next fires, and its run recorded as scheduled (_start_run).  A due client
-- whose run lock is taken (synced by hand, or restored) is added to busy and
-- passed over in this pass.  run_id NULL: no client is due.
CREATE FUNCTION owsync._dispatch_claim(INOUT busy text[], OUT run_id bigint, OUT client_id integer)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d record;
BEGIN
    PERFORM owsync._require_admin();
    LOOP
        SELECT x.client, c.client_id AS id, c.cron_schedule INTO d
          FROM owsync.sync_due x JOIN owsync.client c ON c.client = x.client
         WHERE x.due_at <= now() AND c.enabled
           AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= now() + interval '5 seconds')
           AND x.client <> ALL (busy)
         ORDER BY x.due_at, x.client
         LIMIT 1
           FOR UPDATE OF x SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        EXIT WHEN pg_try_advisory_lock(owsync._run_lock_class(), d.id);
        busy := busy || d.client;
    END LOOP;
    UPDATE owsync.sync_due SET due_at = owsync._next_run(d.cron_schedule, now()) WHERE client = d.client;
    run_id := owsync._start_run(d.client, 'incremental', true);
    client_id := d.id;
END
$$;

-- After a dispatched run: the client's SQLite file closed (the dispatcher
-- goes on in the same backend: it would otherwise keep every client's file
-- open, see _close_sources), and the dispatcher's hold on the client's run
-- lock let go.
CREATE FUNCTION owsync._dispatch_release(p_client_id integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM owsync._close_sources();
    WHILE owsync._holds_lock(p_client_id) AND pg_advisory_unlock(owsync._run_lock_class(), p_client_id) LOOP
    END LOOP;
END
$$;

-- pg_cron's run details of owsync's jobs in this database (their commands
-- call owsync) older than owsync.history_retention, deleted; returns how
-- many.  Only where pg_cron's tables are in this database.
CREATE FUNCTION owsync._purge_cron_details() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keep interval := coalesce(nullif(current_setting('owsync.history_retention', true), ''), '30d')::interval;
    n bigint := 0;
BEGIN
    PERFORM owsync._require_admin();
    IF keep > interval '0' AND to_regclass('cron.job_run_details') IS NOT NULL THEN
        BEGIN
            EXECUTE 'DELETE FROM cron.job_run_details
                      WHERE database = current_database() AND command LIKE ''CALL owsync.%'' AND end_time < now() - $1'
              USING keep;
            GET DIAGNOSTICS n = ROW_COUNT;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'owsync: cannot purge the pg_cron run details of owsync''s jobs: %', SQLERRM;
        END;
    END IF;
    RETURN n;
END
$$;

-- The start of a dispatcher's pass: in the first minute of each hour,
-- pg_cron's run details of owsync's jobs past the retention go
-- (_purge_cron_details), so that the pool's runs, two or more a minute, do
-- not pile up there; not per run: the table has no index to find them.
CREATE FUNCTION owsync._dispatch_begin() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM owsync._require_admin();
    IF date_trunc('hour', now()) = date_trunc('minute', now()) THEN
        PERFORM owsync._purge_cron_details();
    END IF;
END
$$;

-- CALL owsync.dispatch(): run the clients that are due, one after another,
-- each as CALL owsync.sync(client) runs it (its three steps with a commit
-- between each, the run recorded as scheduled), until none is due; what the
-- pool's pg_cron jobs run every minute.  A failed run is recorded (and
-- backed off) as any scheduled run, and the dispatcher goes on with the
-- next client; a cancel stops it.
--
-- Like sync(), a procedure that commits: a shell over SECURITY DEFINER
-- functions, using no operator.
CREATE PROCEDURE owsync.dispatch()
LANGUAGE plpgsql
AS $$
DECLARE
    claim record;
    busy text[] := ARRAY[]::text[];
BEGIN
    PERFORM owsync._dispatch_begin();
    LOOP
        claim := owsync._dispatch_claim(busy);
        EXIT WHEN claim.run_id IS NULL;
        busy := claim.busy;
        COMMIT;
        PERFORM owsync._work_run(claim.run_id);
        COMMIT;
        BEGIN
            PERFORM owsync._finish_run(claim.run_id);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING '%', SQLERRM;
        END;
        PERFORM owsync._dispatch_release(claim.client_id);
    END LOOP;
END
$$;

COMMENT ON PROCEDURE owsync.dispatch() IS
    'run the scheduled clients that are due, most overdue first, until none is; what the dispatcher pool''s pg_cron jobs call every minute';
