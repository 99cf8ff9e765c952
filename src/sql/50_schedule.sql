-- Scheduling on pg_cron: one job per scheduled client, named owsync:<client>,
-- running CALL owsync.sync('<client>').  A client's schedule is one of
--
--   manual     no job: syncs run when called
--   realtime   every minute
--   5min       every 5 minutes, at a minute offset derived from the name
--   hourly     every hour, at a minute derived from the name
--   daily      every day between 01:00 and 04:59, at a time derived from
--              the name, so that a fleet is spread out rather than all at :00
--   a 5-field cron expression ('*/2 * * * *')
--   'N seconds' (1-59), where pg_cron supports it (1.5 and later)
--
-- pg_cron runs in one database (cron.database_name).  When that is this
-- database, owsync calls it directly; when it is another one, owsync reaches
-- it through dblink (CREATE EXTENSION dblink here) and creates its jobs with
-- cron.schedule_in_database, named owsync:<client>@<this database> so that
-- two databases' clients of the same name do not share a job.  The
-- connection is owsync.cron_connection, by default the server's own socket,
-- port and the cron database, as the extension's owner.
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
    -- five fields of digits, *, ranges, lists and steps (pg_cron checks the
    -- values themselves when the job is created)
    IF s ~ '^[0-9*,/-]+( +[0-9*,/-]+){4}$' THEN
        RETURN regexp_replace(s, ' +', ' ', 'g');
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
        MESSAGE = format('invalid schedule %L for client %L', schedule, client),
        HINT = 'Use manual, realtime, 5min, hourly, daily, a 5-field cron expression such as ''*/2 * * * *'', or ''N seconds''.';
END
$$;

-- The pg_cron job of a client, made to match its row: there when the client
-- is enabled and scheduled, and then with its schedule; gone otherwise.
-- Returns the job's id (NULL without a job).
CREATE FUNCTION owsync._sync_job(p_client text) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    expr text;
    pgcron record := owsync._cron();
    job text;
    id bigint;
BEGIN
    SELECT * INTO c FROM owsync.client WHERE client = p_client;
    expr := CASE WHEN c.enabled THEN owsync._cron_expr(p_client, c.schedule) END;
    IF pgcron.mode IS NULL THEN
        IF expr IS NOT NULL THEN
            PERFORM owsync._require_cron(p_client);
        END IF;
        UPDATE owsync.client SET cron_schedule = NULL WHERE client = p_client;
        RETURN NULL;		-- nothing to schedule, nothing scheduled
    END IF;
    job := owsync._job_name(pgcron.mode, p_client);
    IF expr IS NULL THEN
        PERFORM owsync._cron_query(pgcron.mode, pgcron.conn, pgcron.dblink, format(
            'SELECT count(cron.unschedule(jobid))::text FROM cron.job WHERE jobname = %L', job));
    ELSE
        -- with a name, cron.schedule*() creates the job or changes the one of that name
        id := owsync._cron_query(pgcron.mode, pgcron.conn, pgcron.dblink, CASE WHEN pgcron.mode = 'local'
            THEN format('SELECT cron.schedule(%L, %L, %L)::text', job, expr, format('CALL owsync.sync(%L)', p_client))
            ELSE format('SELECT cron.schedule_in_database(%L, %L, %L, %L, %L, true)::text', job, expr,
                        format('CALL owsync.sync(%L)', p_client), current_database(), current_user) END)::bigint;
    END IF;
    -- pg_cron's scheduler may miss the change: it reloads its jobs on the
    -- SIGHUP this transaction sends it once committed (src/owsync_fdw.c)
    PERFORM owsync._reload_cron_at_commit();
    UPDATE owsync.client SET cron_schedule = expr WHERE client = p_client;
    RETURN id;
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

-- Set a client's schedule and make its pg_cron job match; returns the cron
-- expression ('manual' without a job).
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
    'schedule a client''s syncs on pg_cron: manual, realtime, 5min, hourly, daily, a cron expression or ''N seconds''; returns the cron expression';

-- enable_sync / disable_sync: the client's pg_cron job follows its enabled flag.
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

-- Give a client its pg_cron job back, on its kept schedule.
CREATE FUNCTION owsync.enable_sync(client text) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT owsync._set_enabled(client, true);
END;

-- Remove a client's pg_cron job; its schedule is kept.
CREATE FUNCTION owsync.disable_sync(client text) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT owsync._set_enabled(client, false);
END;

COMMENT ON FUNCTION owsync.disable_sync(text) IS
    'remove a client''s pg_cron job (its schedule is kept for enable_sync); CALL owsync.sync() still works by hand';

-- When a job with this cron expression next starts after a time, for the
-- expressions the tiers give and '*/N * * * *' (NULL for other expressions).
-- pg_cron 1.4 reads cron expressions in UTC.
CREATE FUNCTION owsync._next_run(expr text, after timestamptz) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m text[] := regexp_match(expr, '^(\*|\d+|\d+-59/\d+|\*/\d+) (\*|\d+) \* \* \*$');
    t timestamp := date_trunc('minute', after AT TIME ZONE 'UTC') + interval '1 minute';
    step integer;
    first integer;
BEGIN
    IF m IS NULL THEN
        RETURN NULL;
    END IF;
    IF m[2] <> '*' THEN			-- daily at h:m
        t := date_trunc('day', t) + make_interval(hours => m[2]::integer, mins => m[1]::integer);
        IF t <= after AT TIME ZONE 'UTC' THEN
            t := t + interval '1 day';
        END IF;
        RETURN t AT TIME ZONE 'UTC';
    END IF;
    IF m[1] ~ '^\d+$' THEN			-- hourly at :m
        t := date_trunc('hour', t) + make_interval(mins => m[1]::integer);
        IF t <= after AT TIME ZONE 'UTC' THEN
            t := t + interval '1 hour';
        END IF;
        RETURN t AT TIME ZONE 'UTC';
    END IF;
    -- every step minutes from minute first of each hour (* is a step of 1)
    step := coalesce(substring(m[1] FROM '/(\d+)$')::integer, 1);
    first := coalesce(substring(m[1] FROM '^(\d+)-')::integer, 0);
    WHILE extract(minute FROM t)::integer < first OR (extract(minute FROM t)::integer - first) % step <> 0 LOOP
        t := t + interval '1 minute';
    END LOOP;
    RETURN t AT TIME ZONE 'UTC';
END
$$;

