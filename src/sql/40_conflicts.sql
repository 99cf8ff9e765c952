-- Conflicts: rows of a mirror changed in PostgreSQL by anyone but the sync,
-- which the source then changes too.
--
-- Recording.  Every mirror table with a key has a row trigger,
-- owsync_mirror_change, AFTER INSERT, UPDATE or DELETE, which notes the
-- change in owsync.mirror_change: one pending entry per key, updated by
-- later edits, keeping the row as the sync left it (old_row; after a
-- conflict the mirror won, the source's version) and the row now (new_row;
-- NULL: deleted).  An entry whose row is back as old_row (an insert deleted
-- again, an edit undone, a row given the source's version) goes away, and
-- settles a pending conflict of the row.  The trigger's
-- WHEN clause skips the rows the sync writes itself: the sync (and
-- resolve_conflict) turn owsync.applying on, transaction-local, around their
-- writes, so a row they write costs one test of a setting.  This is
-- bookkeeping, not a security boundary: whoever may write to a mirror may
-- also SET owsync.applying and edit unrecorded.  Not recorded either: a
-- TRUNCATE of a mirror table, and tables without a key (replaced as a whole
-- by every run, their edits are lost).
--
-- Detection.  When a run changes (inserts, updates or deletes) a row with a
-- pending mirror change, that is a conflict, recorded in owsync.conflict and
-- decided by the client's conflict_policy (options, default source_wins):
--
--   source_wins  the source's version is applied; the mirror's is kept in the
--                conflict row
--   target_wins  the mirror's version (or its delete, or its insert) stays;
--                the source's is kept in the conflict row
--   newest_wins  the version with the higher updated_at wins (a row deleted
--                in the mirror counts from the time of its delete; ties
--                and rows deleted at the source, which gives no time, and
--                tables without updated_at go to the source, as the
--                conflict's note says)
--   manual       the mirror's row is left alone and the conflict is pending
--                until owsync.resolve_conflict(id, 'source' | 'target')
--
-- The digests always follow the source, whoever wins: the next run does not
-- apply the same source version again.  A mirror change the source's
-- version was applied over is settled and goes; one that won (target_wins,
-- newest_wins) stays pending, so the row stays PostgreSQL's and every later
-- source change of it is a conflict again (each source version in the log).
-- A row both sides changed alike (both deleted it, or the mirror already
-- has the source's version) is no conflict.
-- A pending manual conflict is updated in place by later source changes of
-- its row: resolving it applies the newest.  A mirror change on a row the
-- source did not change stays pending and is no conflict.  Conflicts never
-- fail a run; each run counts them per table (owsync.run_table.conflicts).
--
-- Row images are json, not jsonb: json keeps the exact text of json
-- columns, so a version put back into the mirror (a full sync,
-- resolve_conflict) is byte for byte the one taken.
--
-- The tables mirror_change and conflict are in 20_catalog.sql, the view
-- conflicts in 60_views.sql.

-- Note one change of a mirror row (see above).
CREATE FUNCTION owsync._note_mirror_change(p_client text, p_table text, p_key jsonb, p_old json, p_new json)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO owsync.mirror_change AS mc (client, table_name, key, op, old_row, new_row, changed_at, changed_by)
    SELECT p_client, p_table, p_key,
           CASE WHEN p_old IS NULL THEN 'insert' WHEN p_new IS NULL THEN 'delete' ELSE 'update' END,
           p_old, p_new, clock_timestamp(), session_user
     WHERE EXISTS (SELECT 1 FROM owsync.client c WHERE c.client = p_client)
    ON CONFLICT (client, table_name, key) DO UPDATE
       SET op = CASE WHEN mc.old_row IS NULL THEN 'insert' WHEN EXCLUDED.new_row IS NULL THEN 'delete'
                     ELSE 'update' END,
           new_row = EXCLUDED.new_row, changed_at = EXCLUDED.changed_at, changed_by = EXCLUDED.changed_by;
    -- back as the sync left it (or given the source's version): nothing
    -- pending, and a pending conflict of the row is decided
    WITH settled AS (
        DELETE FROM owsync.mirror_change mc
         WHERE mc.client = p_client AND mc.table_name = p_table AND mc.key = p_key
           AND mc.old_row::text IS NOT DISTINCT FROM mc.new_row::text
        RETURNING mc.key)
    UPDATE owsync.conflict x
       SET decided = 'source', decided_at = now(), resolved_by = session_user,
           note = 'the mirror was given the source''s version'
     WHERE x.client = p_client AND x.table_name = p_table AND x.key = p_key AND x.decided IS NULL
       AND EXISTS (SELECT 1 FROM settled);
$$;

-- The trigger of every mirror table with a key (its arguments: the key
-- columns); the mirror schema is named after the client.  An UPDATE that
-- changes the key is a delete of the old key and an insert of the new one.
-- SECURITY DEFINER: whoever may write to a mirror table has its changes
-- recorded.  CREATE OR REPLACE: every mirror table's trigger depends on it
-- (an upgrade replaces it in place).
CREATE OR REPLACE FUNCTION owsync._mirror_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_r json;
    new_r json;
    old_k jsonb;
    new_k jsonb;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_r := row_to_json(OLD);
        old_k := (SELECT jsonb_object_agg(k, old_r::jsonb -> k) FROM unnest(TG_ARGV) k);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_r := row_to_json(NEW);
        new_k := (SELECT jsonb_object_agg(k, new_r::jsonb -> k) FROM unnest(TG_ARGV) k);
    END IF;
    IF TG_OP = 'UPDATE' AND old_k <> new_k THEN
        PERFORM owsync._note_mirror_change(TG_TABLE_SCHEMA, TG_TABLE_NAME, old_k, old_r, NULL);
        PERFORM owsync._note_mirror_change(TG_TABLE_SCHEMA, TG_TABLE_NAME, new_k, NULL, new_r);
    ELSE
        PERFORM owsync._note_mirror_change(TG_TABLE_SCHEMA, TG_TABLE_NAME, coalesce(new_k, old_k), old_r, new_r);
    END IF;
    RETURN NULL;
END
$$;

-- Watch a mirror table (called when it is created).
CREATE FUNCTION owsync._watch_mirror(p_client text, p_table text, p_keys text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(p_keys) > 0 THEN
        EXECUTE format('CREATE TRIGGER owsync_mirror_change AFTER INSERT OR UPDATE OR DELETE ON %I.%I
                        FOR EACH ROW WHEN (pg_catalog.current_setting(%L, true) IS DISTINCT FROM %L)
                        EXECUTE FUNCTION owsync._mirror_changed(%s)',
                       p_client, p_table, 'owsync.applying', 'on',
                       (SELECT string_agg(quote_literal(k), ', ') FROM unnest(p_keys) k));
    END IF;
END
$$;

-- Stop watching a client's mirror tables (unregistered, its data kept).
CREATE FUNCTION owsync._unwatch_mirror(p_client text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tr record;
BEGIN
    FOR tr IN SELECT t.tgrelid::regclass AS rel FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
               WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = p_client)
                 AND t.tgname = 'owsync_mirror_change' LOOP
        EXECUTE format('DROP TRIGGER owsync_mirror_change ON %s', tr.rel);
    END LOOP;
END
$$;

-- The keys of one table with a pending mirror change that a run looks at:
-- key, what the source did (NULL: nothing), its version, and the decision.
CREATE FUNCTION owsync._new_candidates() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('pg_temp.owsync_cand') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_cand;
    END IF;
    CREATE TEMP TABLE owsync_cand (
        key        jsonb PRIMARY KEY,
        old_digest bigint,
        source_op  text,
        source_row json,
        mirror_op  text,
        mirror_row json,
        mirror_at  bigint,
        agreed     boolean NOT NULL DEFAULT false,
        winner     text,
        note       text
    ) ON COMMIT DROP;
END
$$;

-- Delete from rel (alias x) the rows of the candidates the mirror keeps
-- (the source's version did not win), of those the source deleted only when
-- deletes_only.
CREATE FUNCTION owsync._delete_kept(t owsync.client_table, rel text, deletes_only boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('DELETE FROM %s x USING pg_temp.owsync_cand c, jsonb_populate_record(NULL::%I.%I, c.key) k
                     WHERE c.winner IS DISTINCT FROM %L AND %s%s',
                   rel, (owsync.client_names(t.client)).mirror_schema, t.table_name, 'source',
                   owsync._key_match(t.key_columns, 'k', 'x'),
                   CASE WHEN deletes_only THEN format(' AND c.source_op = %L', 'delete') ELSE '' END);
END
$$;

-- Decide the conflicts among the candidates (source_op set) by the client's
-- policy, record them, and settle the mirror changes the source's version
-- wins over.  A row both sides changed alike (both deleted it, or the
-- mirror already has the source's version) is no conflict: its mirror
-- change is settled.  A row the mirror keeps has the source's version as
-- its mirror change's old_row from now on: what the mirror is compared with
-- (an edit that makes the row equal to the source's version settles it).
-- Returns the number of conflicts.
CREATE FUNCTION owsync._decide_conflicts(t owsync.client_table, p_run bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    client_policy text := (SELECT owsync._options(c.options) ->> 'conflict_policy' FROM owsync.client c
                            WHERE c.client = t.client);
    nconflicts bigint;
BEGIN
    UPDATE pg_temp.owsync_cand c
       SET mirror_op = mc.op, mirror_row = mc.new_row,
           mirror_at = CASE WHEN mc.new_row IS NULL		-- deleted: when
                            THEN (extract(epoch FROM mc.changed_at)
                                  * CASE t.watermark_unit WHEN 'ns' THEN 1000000000 ELSE 1 END)::bigint
                            ELSE (mc.new_row ->> t.watermark_column)::bigint END,
           agreed = mc.new_row::jsonb IS NOT DISTINCT FROM c.source_row::jsonb
      FROM owsync.mirror_change mc
     WHERE mc.client = t.client AND mc.table_name = t.table_name AND mc.key = c.key
       AND c.source_op IS NOT NULL;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    UPDATE pg_temp.owsync_cand c
       SET winner = CASE WHEN c.agreed OR client_policy NOT IN ('target_wins', 'newest_wins', 'manual')
                         THEN 'source'
                         WHEN client_policy = 'target_wins' THEN 'target'
                         WHEN client_policy = 'manual' THEN NULL
                         WHEN t.watermark_column IS NULL OR c.source_op = 'delete' THEN 'source'
                         WHEN c.mirror_at > (c.source_row ->> t.watermark_column)::bigint THEN 'target'
                         ELSE 'source' END,
           note = CASE WHEN c.agreed THEN 'the mirror has the source''s version'
                       WHEN client_policy <> 'newest_wins' THEN NULL
                       WHEN t.watermark_column IS NULL THEN 'no updated_at: the source wins'
                       WHEN c.source_op = 'delete' THEN 'deleted at the source, which gives no time: the source wins'
                       ELSE format('%s: mirror %s, source %s', t.watermark_column, coalesce(c.mirror_at::text, 'null'),
                                   coalesce(c.source_row ->> t.watermark_column, 'null')) END
     WHERE c.source_op IS NOT NULL;

    -- a pending conflict of the row is updated (decided, if the policy
    -- changed since or the sides agree now); the others are new
    WITH pending AS (
        UPDATE owsync.conflict x
           SET run_id = p_run, detected_at = now(), policy = client_policy,
               mirror_op = c.mirror_op, source_op = c.source_op, mirror_row = c.mirror_row,
               source_row = c.source_row, decided = c.winner,
               decided_at = CASE WHEN c.winner IS NOT NULL THEN now() END, note = c.note
          FROM pg_temp.owsync_cand c
         WHERE x.client = t.client AND x.table_name = t.table_name AND x.key = c.key
           AND x.decided IS NULL AND c.source_op IS NOT NULL
        RETURNING x.key)
    INSERT INTO owsync.conflict (client, table_name, key, run_id, policy, mirror_op, source_op, mirror_row,
                                 source_row, decided, decided_at, note)
    SELECT t.client, t.table_name, c.key, p_run, client_policy, c.mirror_op, c.source_op, c.mirror_row,
           c.source_row, c.winner, CASE WHEN c.winner IS NOT NULL THEN now() END, c.note
      FROM pg_temp.owsync_cand c
     WHERE c.source_op IS NOT NULL AND NOT c.agreed AND c.key NOT IN (SELECT p.key FROM pending p)
     ORDER BY c.key;
    SELECT count(*) INTO nconflicts FROM pg_temp.owsync_cand c WHERE c.source_op IS NOT NULL AND NOT c.agreed;

    DELETE FROM owsync.mirror_change mc
     USING pg_temp.owsync_cand c
     WHERE mc.client = t.client AND mc.table_name = t.table_name AND mc.key = c.key AND c.winner = 'source';
    UPDATE owsync.mirror_change mc
       SET old_row = c.source_row,
           op = CASE WHEN c.source_row IS NULL THEN 'insert' WHEN mc.new_row IS NULL THEN 'delete' ELSE 'update' END
      FROM pg_temp.owsync_cand c
     WHERE mc.client = t.client AND mc.table_name = t.table_name AND mc.key = c.key
       AND c.source_op IS NOT NULL AND c.winner IS DISTINCT FROM 'source';
    RETURN nconflicts;
END
$$;

-- Incremental and reconcile runs, before the apply: the staged rows
-- (pg_temp.owsync_stage) and the source's deletes (pg_temp.owsync_gone,
-- when gone) of keys with a pending mirror change are candidates; the rows
-- the mirror keeps (the mirror's version won, is pending, or the source did
-- not change the row) move to pg_temp.owsync_held, out of the apply, and
-- the source's deletes of them leave the digests at once.  After the apply,
-- owsync._release_held() puts the held rows back into the stage, for the
-- digests and the watermark.  Returns the number of conflicts.
CREATE FUNCTION owsync._hold_conflicts(t owsync.client_table, p_run bigint, gone boolean) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
    mirror text := format('%I.%I', n.mirror_schema, t.table_name);
    dig text := format('%I.%I', n.digest_schema, t.table_name);
    s_cols text;
    nconflicts bigint;
BEGIN
    SELECT string_agg(format('s.%I', a.attname), ', ' ORDER BY a.attnum) INTO s_cols
      FROM pg_attribute a
     WHERE a.attrelid = 'pg_temp.owsync_stage'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname <> 'owsync_digest';
    PERFORM owsync._new_candidates();
    EXECUTE format('INSERT INTO pg_temp.owsync_cand (key, source_op, source_row)
                    SELECT mc.key,
                           CASE WHEN d.owsync_digest IS NULL THEN %1$L
                                WHEN d.owsync_digest <> s.owsync_digest THEN %2$L END,
                           (SELECT row_to_json(r) FROM (SELECT %3$s) r)
                      FROM owsync.mirror_change mc
                     CROSS JOIN LATERAL jsonb_populate_record(NULL::%4$s, mc.key) k
                      JOIN pg_temp.owsync_stage s ON %6$s
                      LEFT JOIN %5$s d ON %7$s
                     WHERE mc.client = $1 AND mc.table_name = $2',
                   'insert', 'update', s_cols, mirror, dig,
                   owsync._key_match(t.key_columns, 'k', 's'), owsync._key_match(t.key_columns, 'd', 's'))
      USING t.client, t.table_name;
    IF gone THEN
        EXECUTE format('INSERT INTO pg_temp.owsync_cand (key, source_op)
                        SELECT mc.key, %L
                          FROM owsync.mirror_change mc
                         CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, mc.key) k
                          JOIN pg_temp.owsync_gone g ON %s
                         WHERE mc.client = $1 AND mc.table_name = $2',
                       'delete', mirror, owsync._key_match(t.key_columns, 'k', 'g'))
          USING t.client, t.table_name;
    END IF;
    nconflicts := owsync._decide_conflicts(t, p_run);

    IF to_regclass('pg_temp.owsync_held') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_held;
    END IF;
    CREATE TEMP TABLE owsync_held ON COMMIT DROP AS SELECT * FROM pg_temp.owsync_stage WITH NO DATA;
    EXECUTE format('WITH h AS (DELETE FROM pg_temp.owsync_stage s
                                USING pg_temp.owsync_cand c, jsonb_populate_record(NULL::%1$s, c.key) k
                                WHERE c.winner IS DISTINCT FROM %2$L AND %3$s
                               RETURNING s.*)
                    INSERT INTO pg_temp.owsync_held SELECT * FROM h',
                   mirror, 'source', owsync._key_match(t.key_columns, 'k', 's'));
    IF gone THEN
        PERFORM owsync._delete_kept(t, 'pg_temp.owsync_gone', false);
        PERFORM owsync._delete_kept(t, dig, true);
    END IF;
    RETURN nconflicts;
END
$$;

-- After the apply: the held rows go back into the stage, for the digests and
-- the watermark.
CREATE FUNCTION owsync._release_held() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO pg_temp.owsync_stage SELECT * FROM pg_temp.owsync_held;
END
$$;

-- Full runs reload a mirror table (DELETE and INSERT): before, the keys
-- with a pending mirror change are candidates, with their digests; after,
-- what the source did is known from the reloaded digests, the conflicts are
-- decided, and the rows the mirror keeps get the mirror's version back (the
-- mirror change's new_row, or no row).  A full sync thus changes a row with
-- a pending mirror change exactly as an incremental sync would: reloading
-- is how it reads, not a reason to drop what PostgreSQL wrote.
CREATE FUNCTION owsync._full_conflicts_before(t owsync.client_table) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
BEGIN
    PERFORM owsync._new_candidates();
    EXECUTE format('INSERT INTO pg_temp.owsync_cand (key, old_digest)
                    SELECT mc.key, d.owsync_digest
                      FROM owsync.mirror_change mc
                     CROSS JOIN LATERAL jsonb_populate_record(NULL::%I.%I, mc.key) k
                      LEFT JOIN %I.%I d ON %s
                     WHERE mc.client = $1 AND mc.table_name = $2',
                   n.mirror_schema, t.table_name, n.digest_schema, t.table_name,
                   owsync._key_match(t.key_columns, 'k', 'd'))
      USING t.client, t.table_name;
END
$$;

-- After the reload: what the source did to each candidate, the conflicts
-- decided, the mirror's version put back where it won.  Returns the number
-- of conflicts.
CREATE FUNCTION owsync._full_conflicts_after(t owsync.client_table, p_run bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
    mirror text := format('%I.%I', n.mirror_schema, t.table_name);
    dig text := format('%I.%I', n.digest_schema, t.table_name);
    nconflicts bigint;
BEGIN
    EXECUTE format('UPDATE pg_temp.owsync_cand c
                       SET source_op = x.source_op, source_row = x.source_row
                      FROM (SELECT c2.key,
                                   CASE WHEN c2.old_digest IS NULL AND d.owsync_digest IS NULL THEN NULL
                                        WHEN c2.old_digest IS NULL THEN %1$L
                                        WHEN d.owsync_digest IS NULL THEN %2$L
                                        WHEN c2.old_digest <> d.owsync_digest THEN %3$L END AS source_op,
                                   CASE WHEN d.owsync_digest IS NOT NULL THEN row_to_json(m) END AS source_row
                              FROM pg_temp.owsync_cand c2
                             CROSS JOIN LATERAL jsonb_populate_record(NULL::%4$s, c2.key) k
                              LEFT JOIN %5$s d ON %6$s
                              LEFT JOIN %4$s m ON %7$s) x
                     WHERE x.key = c.key',
                   'insert', 'delete', 'update', mirror, dig,
                   owsync._key_match(t.key_columns, 'k', 'd'), owsync._key_match(t.key_columns, 'k', 'm'));
    nconflicts := owsync._decide_conflicts(t, p_run);
    PERFORM owsync._delete_kept(t, mirror, false);
    EXECUTE format('INSERT INTO %1$s
                    SELECT r.* FROM pg_temp.owsync_cand c
                      JOIN owsync.mirror_change mc ON mc.client = $1 AND mc.table_name = $2 AND mc.key = c.key
                     CROSS JOIN LATERAL json_populate_record(NULL::%1$s, mc.new_row) r
                     WHERE c.winner IS DISTINCT FROM %2$L AND mc.new_row IS NOT NULL',
                   mirror, 'source')
      USING t.client, t.table_name;
    RETURN nconflicts;
END
$$;

-- Decide a conflict by hand: 'source' applies the source's version kept in
-- the conflict (its row, or its delete) to the mirror, 'target' keeps the
-- mirror's.  Either way the conflict is decided and the row's mirror change
-- is settled: later source changes of the row apply as usual.  A pending
-- conflict (manual) can be resolved, and so can the latest conflict of a row
-- whose mirror change the policy let win (target_wins, newest_wins), to give
-- the row back to the source.  Waits for a running sync of the client.
CREATE FUNCTION owsync.resolve_conflict(conflict_id bigint, winner text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x owsync.conflict;
    ct owsync.client_table;
    mirror text;
    src text;
    cols text;
    scols text;
    was text;
BEGIN
    PERFORM owsync._require_admin();
    IF winner IS NULL OR winner NOT IN ('source', 'target') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid winner %L', winner),
            HINT = 'Use source (apply the source''s version) or target (keep the mirror''s).';
    END IF;
    SELECT * INTO x FROM owsync.conflict c WHERE c.conflict_id = resolve_conflict.conflict_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('conflict %s does not exist', conflict_id);
    END IF;
    -- the client's run lock, for this transaction: no sync writes the row meanwhile
    PERFORM owsync._lock_client(x.client);
    SELECT * INTO x FROM owsync.conflict c WHERE c.conflict_id = resolve_conflict.conflict_id FOR UPDATE;
    IF x.decided IS NOT NULL
       AND NOT (x.decided = 'target' AND x.resolved_by IS NULL
                AND NOT EXISTS (SELECT 1 FROM owsync.conflict c
                                 WHERE c.client = x.client AND c.table_name = x.table_name AND c.key = x.key
                                   AND c.conflict_id > x.conflict_id)
                AND EXISTS (SELECT 1 FROM owsync.mirror_change mc
                             WHERE mc.client = x.client AND mc.table_name = x.table_name AND mc.key = x.key)) THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('conflict %s is already decided', conflict_id),
            DETAIL = format('The %s won it%s.', CASE x.decided WHEN 'source' THEN 'source' ELSE 'mirror' END,
                            CASE WHEN x.resolved_by IS NULL THEN format(' in run %s', x.run_id)
                                 ELSE format(', resolved by %s', x.resolved_by) END),
            HINT = 'Only a pending conflict, or the latest conflict of a row the mirror''s version won, can be resolved.';
    END IF;
    SELECT * INTO ct FROM owsync.client_table c WHERE c.client = x.client AND c.table_name = x.table_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('table %s of client %L is not synced', x.table_name, x.client);
    END IF;
    mirror := format('%I.%I', (owsync.client_names(x.client)).mirror_schema, x.table_name);
    src := format('%I.%I', (owsync.client_names(x.client)).src_schema, x.table_name);
    IF winner = 'source' THEN
        was := owsync._applying('on');
        EXECUTE format('DELETE FROM %1$s m USING jsonb_populate_record(NULL::%1$s, $1) k WHERE %2$s',
                       mirror, owsync._key_match(ct.key_columns, 'k', 'm'))
          USING x.key;
        -- the source's version as its file holds it now, read through its
        -- foreign table (the copy in source_row is JSON, where a json
        -- column's JSON null and SQL NULL look alike); a column only the
        -- mirror has keeps NULL, a row the source no longer has stays deleted
        SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
               string_agg(format('s.%I', a.attname), ', ' ORDER BY a.attnum) INTO cols, scols
          FROM pg_attribute a
         WHERE a.attrelid = mirror::regclass AND a.attnum > 0 AND NOT a.attisdropped
           AND EXISTS (SELECT 1 FROM pg_attribute f WHERE f.attrelid = src::regclass
                          AND f.attname = a.attname AND NOT f.attisdropped);
        EXECUTE format('INSERT INTO %1$s (%2$s) SELECT %3$s FROM %4$s s, jsonb_populate_record(NULL::%1$s, $1) k WHERE %5$s',
                       mirror, cols, scols, src, owsync._key_match(ct.key_columns, 'k', 's'))
          USING x.key;
        PERFORM owsync._applying(was);
    END IF;
    DELETE FROM owsync.mirror_change mc
     WHERE mc.client = x.client AND mc.table_name = x.table_name AND mc.key = x.key;
    UPDATE owsync.conflict c
       SET decided = winner, decided_at = now(), resolved_by = session_user
     WHERE c.conflict_id = x.conflict_id;
END
$$;
