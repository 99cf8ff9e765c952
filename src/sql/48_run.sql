-- A client's run: CALL owsync.sync(client [, mode]).
--
-- One PostgreSQL transaction for the data, so one SQLite snapshot for all
-- tables (connection.c): the mirror, the digests and the watermarks move
-- together or not at all.  Each table is synced by owsync._sync_table()
-- (44_sync_table.sql).

-- Settings for a run's own statements, to the end of its transaction: hash
-- joins in memory, no JIT (plans are small and run once), staged values
-- compressed like the mirror's.
CREATE FUNCTION owsync._run_settings() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('work_mem', '32MB', true);
    PERFORM set_config('jit', 'off', true);
    -- key diffs join unsorted keys: hash joins, never sort 100k text keys
    PERFORM set_config('enable_mergejoin', 'off', true);
    IF owsync._has_lz4() THEN
        PERFORM set_config('default_toast_compression', 'lz4', true);
    END IF;
END
$$;

-- Sync every table of a client (but those removed at the source), each error
-- naming its table: tables new at the source are loaded in full, tables
-- with a new column compared in full.  Each table the run had to read gets
-- its row in owsync.run_table (one the unchanged check settled does not:
-- a fleet's history would hold a row per table per run), and each table a
-- progress NOTICE when interactive.  A table whose key set and fast-path
-- window are as the last run left them (most tables of most runs) is
-- settled here, before its sync is planned.
CREATE FUNCTION owsync._sync_tables(p_client text, p_mode text, reconcile boolean, p_run bigint,
                                    new_tables text[], widened text[], interactive boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t owsync.client_table;
    n record := owsync.client_names(p_client);
    opts jsonb := (SELECT owsync._options(c.options) FROM owsync.client c WHERE c.client = p_client);
    quarantined text[] := ARRAY(SELECT DISTINCT q.table_name FROM owsync.quarantine q WHERE q.client = p_client);
    kb bigint[];				-- the key buckets, once read
    settled boolean;			-- unchanged since the last run: nothing to do
    r record;
    started timestamptz;
    secs numeric;
    st text; msg text; det text; hnt text;
BEGIN
    FOR t IN SELECT * FROM owsync.client_table WHERE client = p_client AND removed_at IS NULL
              ORDER BY table_name LOOP
        started := clock_timestamp();
        kb := NULL;
        settled := false;
        BEGIN
            IF p_mode <> 'full' AND cardinality(t.key_columns) > 0
               AND NOT t.table_name = ANY (new_tables || quarantined) THEN
                kb := owsync.key_buckets(n.server, t.table_name, t.key_columns, t.key_bits);
                settled := owsync._unchanged(t, n.server, format('%I.%I', n.src_schema, t.table_name),
                                             format('%I.%I', n.digest_schema, t.table_name),
                                             reconcile OR t.table_name = ANY (widened) OR t.watermark_column IS NULL,
                                             kb, opts);
            END IF;
            IF NOT settled THEN
                PERFORM set_config('application_name', left(format('owsync %s: %s', p_client, t.table_name), 63), true);
                r := owsync._sync_table(t,
                                        CASE WHEN t.table_name = ANY (new_tables) THEN 'full' ELSE p_mode END,
                                        reconcile OR t.table_name = ANY (widened), p_run, opts, kb);
            END IF;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                    det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
            PERFORM owsync._reraise(st, msg, det, hnt, t.table_name);
        END;
        IF settled THEN
            CONTINUE WHEN NOT interactive;
            SELECT 'unchanged'::text AS path, 0::bigint AS rows_read, 0::bigint AS inserted, 0::bigint AS updated,
                   0::bigint AS deleted, 0::bigint AS quarantined, 0::bigint AS conflicts
              INTO r;
        ELSE
            INSERT INTO owsync.run_table (run_id, table_name, path, rows_read, inserted, updated, deleted,
                                          quarantined, conflicts, key_diff, seconds)
            VALUES (p_run, t.table_name, r.path, r.rows_read, r.inserted, r.updated, r.deleted, r.quarantined,
                    r.conflicts, r.key_diff, round(extract(epoch FROM clock_timestamp() - started)::numeric, 3));
        END IF;
        secs := extract(epoch FROM clock_timestamp() - started)::numeric;
        CONTINUE WHEN NOT interactive;
        RAISE NOTICE 'owsync %.%: % read, % inserted, % updated, % deleted% (%, % s, % rows/s)',
            p_client, t.table_name, r.rows_read, r.inserted, r.updated, r.deleted,
            CASE WHEN r.quarantined > 0 THEN format(', %s quarantined', r.quarantined) ELSE '' END
            || CASE WHEN r.conflicts > 0 THEN format(', %s conflicts', r.conflicts) ELSE '' END,
            r.path, round(secs, 3), round(r.rows_read / greatest(secs, 0.001));
    END LOOP;
END
$$;

-- One run's work, without transaction control: the source's schema
-- captured and its drift applied, then every table synced unless nothing
-- was committed to the file since the last run, then what the run found
-- recorded.  Returns the run id.
CREATE FUNCTION owsync._run(p_client text, p_mode text, p_run bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    rid bigint := p_run;
    reconcile boolean;
    interactive boolean;		-- progress NOTICEs: not for pg_cron's runs (its log)
    drift record;
    cap record;
    n record := owsync.client_names(p_client);
    probe name := owsync._probe_schema(p_client);
    was_applying text := owsync._applying('on');	-- the run's writes are not mirror changes
BEGIN
    SELECT * INTO c FROM owsync.client WHERE client = p_client;
    IF rid IS NULL THEN
        INSERT INTO owsync.run (client, mode, status) VALUES (p_client, p_mode, 'running')
        RETURNING run_id INTO rid;
    END IF;
    interactive := NOT (SELECT x.scheduled FROM owsync.run x WHERE x.run_id = rid);
    reconcile := p_mode = 'reconcile'
                 OR (p_mode = 'incremental' AND
                     (c.last_reconcile_at IS NULL OR
                      c.last_reconcile_at < now() - (owsync._options(c.options) ->> 'reconcile_interval')::interval));

    -- nothing committed to the file since the last run (and no reconcile
    -- due): the mirror is current; no snapshot is taken, no table read, and
    -- the schema and journal mode are the last run's
    IF p_mode = 'incremental' AND NOT reconcile AND owsync.source_marker(n.server) = c.change_marker THEN
        UPDATE owsync.run
           SET source_unchanged = true,
               (source_schema_id, journal_mode) =
                   (SELECT r.source_schema_id, r.journal_mode FROM owsync.run r	-- index run_client_started
                     WHERE r.client = p_client AND r.run_id <> rid AND r.source_schema_id IS NOT NULL
                     ORDER BY r.started_at DESC LIMIT 1)
         WHERE run_id = rid;
        IF interactive THEN
            RAISE NOTICE 'owsync %: nothing committed to the source since the last run', p_client;
        END IF;
    ELSE
        PERFORM owsync._run_settings();
        SELECT '{}'::text[] AS new_tables, '{}'::text[] AS widened INTO drift;
        cap := owsync._capture_schema(p_client, rid);
        IF cap.drifted THEN
            SELECT * INTO drift FROM owsync._apply_drift(p_client, rid);
        END IF;
        PERFORM owsync._sync_tables(p_client, p_mode, reconcile, rid, drift.new_tables, drift.widened,
                                    interactive);
        UPDATE owsync.client SET change_marker = cap.change_marker WHERE client = p_client;
    END IF;

    IF reconcile OR p_mode = 'full' THEN
        UPDATE owsync.client SET last_reconcile_at = now() WHERE client = p_client;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = probe) THEN
        EXECUTE format('DROP SCHEMA %I CASCADE', probe);
    END IF;
    IF EXISTS (SELECT 1 FROM owsync.client_table WHERE client = p_client AND table_name = 'alembic_version') THEN
        EXECUTE format('UPDATE owsync.run SET alembic_revision = (SELECT string_agg(version_num, %L) FROM %I.alembic_version)
                         WHERE run_id = $1', ',', n.mirror_schema)
          USING rid;
    END IF;
    IF p_run IS NULL THEN
        UPDATE owsync.run SET status = 'succeeded', finished_at = clock_timestamp() WHERE run_id = rid;
    END IF;
    PERFORM owsync._applying(was_applying);
    RETURN rid;
END
$$;

-- After a run: count consecutive failures and back off, alert after
-- options->>'alert_after_failures' (default 3) failures in a row and on the
-- recovery that follows, and purge the client's history older than
-- owsync.history_retention (runs, and, for a client on a pg_cron job of its
-- own, that job's run details: the dispatcher pool's are purged once an
-- hour, not per run, see _dispatch_begin) and, after a success, its row
-- versions older than their retention.
--
-- Backoff: after k failures in a row, no scheduled run starts before
-- min(backoff_max, backoff_base * 2^(k-1)) has passed since the failed run
-- started (options, default 1 minute and 1 hour; 5 seconds early counts as on
-- time, for the minute ticks): the dispatcher pool passes the client over,
-- and a run started by pg_cron itself is skipped.  A run called by hand is
-- never skipped; a success resets the count.
CREATE FUNCTION owsync._account_run(p_client text, p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    opts jsonb;
    r owsync.run;
    n integer;
    event text;
    payload jsonb;
    keep interval := coalesce(nullif(current_setting('owsync.history_retention', true), ''), '30d')::interval;
BEGIN
    SELECT * INTO c FROM owsync.client WHERE client = p_client;
    opts := owsync._options(c.options);
    SELECT * INTO r FROM owsync.run WHERE run_id = p_run;
    IF r.status = 'succeeded' THEN
        event := CASE WHEN c.alerting THEN 'recovered' END;
        UPDATE owsync.client SET consecutive_failures = 0, next_attempt_at = NULL, alerting = false
         WHERE client = p_client AND (consecutive_failures <> 0 OR alerting);
    ELSIF r.status = 'failed' THEN
        n := c.consecutive_failures + 1;
        event := CASE WHEN NOT c.alerting AND n >= (opts ->> 'alert_after_failures')::integer
                      THEN 'failing' END;
        UPDATE owsync.client
           SET consecutive_failures = n,
               next_attempt_at = r.started_at
                   + least((opts ->> 'backoff_max')::interval,
                           (opts ->> 'backoff_base')::interval * power(2, least(n - 1, 20))),
               alerting = alerting OR event IS NOT NULL
         WHERE client = p_client;
    END IF;
    IF event IS NOT NULL THEN
        payload := jsonb_build_object('client', p_client, 'event', event, 'run_id', p_run,
                                      'consecutive_failures', coalesce(n, c.consecutive_failures),
                                      'sqlstate', r.sqlstate, 'error', left(r.error, 1000),
                                      'error_table', r.error_table, 'at', r.finished_at);
        INSERT INTO owsync.alert (client, event, run_id, payload) VALUES (p_client, event, p_run, payload);
        PERFORM pg_notify('owsync_alert', payload::text);
    END IF;

    IF r.status = 'succeeded' THEN
        PERFORM owsync._purge_versions(p_client, p_run);
    END IF;
    IF keep > interval '0' THEN
        -- (the successful runs whose state its versions can give back stay:
        -- an as-of restore reads their times and schemas; but a run that
        -- found nothing committed to the file goes after a day, as a
        -- realtime client makes 1,440 a day: the state it confirmed is the
        -- one of the run before it, which stays)
        DELETE FROM owsync.run
         WHERE client = p_client AND run_id <> p_run
           AND (started_at < now() - keep
                AND NOT (status = 'succeeded' AND run_id >= coalesce(c.versions_from, p_run))
                OR started_at < now() - least(keep, interval '1 day')
                AND source_unchanged AND status = 'succeeded' AND run_id IS DISTINCT FROM c.versions_from);
        DELETE FROM owsync.conflict WHERE client = p_client AND decided_at < now() - keep;
        IF c.cron_schedule LIKE '% seconds' AND to_regclass('cron.job_run_details') IS NOT NULL THEN
            BEGIN
                EXECUTE 'DELETE FROM cron.job_run_details d USING cron.job j
                          WHERE d.jobid = j.jobid AND j.jobname = $1 AND d.end_time < now() - $2'
                  USING 'owsync:' || p_client, keep;
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE WARNING 'owsync %: cannot purge the pg_cron run details of job owsync:%: %',
                    p_client, p_client, SQLERRM;
            END;
        END IF;
    END IF;
END
$$;

-- Record a run as skipped, and why.
CREATE FUNCTION owsync._skip_run(p_run bigint, p_why text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE owsync.run SET status = 'skipped', finished_at = clock_timestamp(), error = p_why
     WHERE run_id = p_run
$$;

-- CALL owsync.sync(client, mode): the run row is committed before and after
-- the work, which runs in a subtransaction, so a failed run leaves the mirror
-- as it was and still leaves its history row.  A second concurrent run of
-- the same client returns at once as 'skipped'.
--
-- A procedure that commits can have neither SET search_path nor SECURITY
-- DEFINER, so sync() is a shell that only calls three functions that have
-- both (for owsync_admin, see 90_security.sql), between its commits; it uses
-- no operator, so nothing on the caller's search_path can stand in.
--
--   _start_run   checks the call, records the run, or records it skipped
--                (a scheduled run of a disabled or backing-off client; the
--                dispatcher pool passes those over: p_dispatched, a run it
--                claimed, holding the client's run lock)
--   _work_run    takes the client's lock (or records the run skipped), does
--                the work in a subtransaction, records the outcome, counts
--                failures and alerts (_account_run)
--   _finish_run  lets the lock go; reports a skipped or failed run
CREATE FUNCTION owsync._start_run(p_client text, p_mode text, p_dispatched boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    rid bigint;
    scheduled boolean;
BEGIN
    PERFORM owsync._require_admin();
    SELECT * INTO c FROM owsync.client x WHERE x.client = p_client;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('client %L is not registered', p_client),
            HINT = 'Register it with owsync.register_client().';
    END IF;
    IF p_mode IS NULL OR p_mode NOT IN ('incremental', 'full', 'reconcile') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid sync mode %L', p_mode),
            HINT = 'Use incremental, full or reconcile.';
    END IF;
    -- A lock this session still holds comes from a run of its own that was
    -- interrupted between its commit and its unlock (it cannot be running
    -- now): let it go.  (But the one a dispatcher took for this run.)
    WHILE NOT p_dispatched AND owsync._holds_lock(c.client_id) LOOP
        PERFORM pg_advisory_unlock(owsync._run_lock_class(), c.client_id);
    END LOOP;
    -- scheduled: started by the dispatcher pool (50_schedule.sql), or by
    -- pg_cron (its background workers, or its connections, named pg_cron)
    SELECT p_dispatched OR a.backend_type = 'pg_cron' OR a.application_name = 'pg_cron' INTO scheduled
      FROM pg_stat_get_activity(pg_backend_pid()) a;
    INSERT INTO owsync.run (client, mode, status, scheduled)
    VALUES (c.client, p_mode, 'running', coalesce(scheduled, false))
    RETURNING run_id INTO rid;
    -- this commit holds only the run's row: lost in a crash, so is the run
    -- (nothing to flush for)
    PERFORM set_config('synchronous_commit', 'off', true);
    IF scheduled AND NOT c.enabled THEN
        PERFORM owsync._skip_run(rid, 'the client''s sync is disabled');
    ELSIF scheduled AND c.next_attempt_at > now() + interval '5 seconds' THEN
        PERFORM owsync._skip_run(rid, format('backing off after %s failed run(s) in a row (see owsync.status)',
                                             c.consecutive_failures));
    END IF;
    RETURN rid;
END
$$;

-- sync()'s work between its commits: the run lock, the run in a
-- subtransaction (once more if a writer overtook its read of a file that
-- had no running writer), its outcome recorded and accounted for.
CREATE FUNCTION owsync._work_run(p_run bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r owsync.run;
    c owsync.client;
    unchanged boolean;
    st text; msg text; det text; hnt text; tbl text;
BEGIN
    PERFORM owsync._require_admin();
    SELECT * INTO r FROM owsync.run WHERE run_id = p_run;
    IF r.status <> 'running' THEN
        RETURN;					-- skipped by _start_run
    END IF;
    SELECT * INTO c FROM owsync.client WHERE client = r.client;
    IF NOT pg_try_advisory_lock(owsync._run_lock_class(), c.client_id) THEN
        PERFORM owsync._skip_run(p_run, 'another sync or a restore of this client was running');
        RETURN;
    END IF;
    -- the run in a subtransaction: each attempt ends by EXIT (done or
    -- recorded as failed) but one overtaken by a writer, run once more
    FOR attempt IN 1..2 LOOP
        BEGIN
            -- holding the lock, any other run of this client still marked
            -- running was abandoned (its session ended before it finished)
            UPDATE owsync.run x SET status = 'failed', finished_at = clock_timestamp(),
                   error = 'abandoned: the session running it ended before it finished'
             WHERE x.client = c.client AND x.status = 'running' AND x.run_id <> p_run;
            PERFORM owsync._run(c.client, r.mode, p_run);
            -- a read overtaken by a writer fails the run here, not its commit
            PERFORM owsync._check_reads();
            UPDATE owsync.run SET status = 'succeeded', finished_at = clock_timestamp() WHERE run_id = p_run
            RETURNING source_unchanged INTO unchanged;
            -- a run that found nothing committed to the file wrote only
            -- history: its commit does not wait for the disk (a crash may
            -- lose its row, never data); a run that wrote the mirror commits
            -- durably
            IF unchanged THEN
                PERFORM set_config('synchronous_commit', 'off', true);
            END IF;
            EXIT;
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                                    hnt = PG_EXCEPTION_HINT, tbl = TABLE_NAME;
            -- a file with no running writer is read as it was when first
            -- read (immutable, connection.c); a writer that wrote it during
            -- the run made a read fail, and the run was rolled back: run once
            -- more, on a new snapshot
            IF attempt = 1 AND st = '40001' AND owsync._renew_overtaken_reads() THEN
                IF r.scheduled THEN
                    RAISE LOG 'owsync %: the file was written while run % read it; running it again', c.client, p_run;
                ELSE
                    RAISE NOTICE 'owsync %: the file was written while run % read it; running it again', c.client, p_run;
                END IF;
                CONTINUE;
            END IF;
            -- a cancel (statement_timeout, pg_cancel_backend) is recorded like
            -- any failure, and raised again by _finish_run once the lock is
            -- released
            UPDATE owsync.run SET status = 'failed', finished_at = clock_timestamp(),
                   sqlstate = st, error = msg, error_detail = nullif(det, ''), error_hint = nullif(hnt, ''),
                   error_table = nullif(tbl, '')
             WHERE run_id = p_run;
            EXIT;
        END;
    END LOOP;
    -- the run's outcome is recorded whatever happens here
    BEGIN
        PERFORM owsync._account_run(c.client, p_run);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'owsync %: could not account for run %: %', c.client, p_run, SQLERRM;
    END;
END
$$;

-- sync()'s last step: the run lock let go; a skipped run reported, a failed
-- one raised again with its SQLSTATE.
CREATE FUNCTION owsync._finish_run(p_run bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r owsync.run;
    c owsync.client;
    msg text;
    det text;
BEGIN
    PERFORM owsync._require_admin();
    SELECT * INTO r FROM owsync.run WHERE run_id = p_run;
    SELECT * INTO c FROM owsync.client WHERE client = r.client;
    IF owsync._holds_lock(c.client_id) THEN
        PERFORM pg_advisory_unlock(owsync._run_lock_class(), c.client_id);
    END IF;
    IF r.status = 'skipped' THEN
        RAISE NOTICE 'owsync: this run of client % is skipped: %', r.client, r.error;
    ELSIF r.status = 'failed' THEN
        msg := format('sync of client %s failed%s: %s', r.client,
                      CASE WHEN r.error_table IS NOT NULL THEN format(' in table %s', r.error_table) ELSE '' END,
                      r.error);
        det := concat_ws(E'\n', r.error_detail,
                         format('Run %s is recorded as failed; the mirror is unchanged.', p_run));
        IF r.error_hint IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = msg, DETAIL = det,
                TABLE = coalesce(r.error_table, '');
        END IF;
        RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = msg, DETAIL = det, HINT = r.error_hint,
            TABLE = coalesce(r.error_table, '');
    END IF;
END
$$;

-- CALL owsync.sync(client, mode): the three steps above, with a commit
-- between each.
CREATE PROCEDURE owsync.sync(client text, mode text DEFAULT 'incremental')
LANGUAGE plpgsql
AS $$
DECLARE
    rid bigint;
BEGIN
    rid := owsync._start_run(client, mode);
    COMMIT;
    PERFORM owsync._work_run(rid);
    COMMIT;
    PERFORM owsync._finish_run(rid);
END
$$;
