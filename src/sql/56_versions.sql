-- A row's past, from the versions its client's runs kept (43_versions.sql):
-- what an operator looks at to choose the moment to restore to.

-- The key columns of a client's table as a condition on alias a, from a
-- key given as JSON ({"id": "..."}); an error naming client, table and key
-- unless it names exactly the table's key columns.
CREATE FUNCTION owsync._key_condition(p_client text, p_table text, keys text[], key jsonb, a text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(keys) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = format('table %s of client %L has no key: its rows have no identity to follow', p_table, p_client),
            HINT = 'Restore the client as of a moment to see the table then.';
    END IF;
    IF jsonb_typeof(key) IS DISTINCT FROM 'object'
       OR (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(key) k) IS DISTINCT FROM
          (SELECT array_agg(k ORDER BY k) FROM unnest(keys) k)
       OR EXISTS (SELECT 1 FROM jsonb_each(key) e WHERE jsonb_typeof(e.value) IN ('null', 'object', 'array')) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('key %s does not name a row of table %s of client %L', key, p_table, p_client),
            DETAIL = format('The table''s key is (%s).', array_to_string(keys, ', ')),
            HINT = format('Give it as a JSON object, e.g. {"%s": ...}.', keys[1]);
    END IF;
    RETURN (SELECT string_agg(format('%s.%I = %L', a, k, key ->> k), ' AND ') FROM unnest(keys) k);
END
$$;

-- The versions of one row of a client's table, oldest first: the row as
-- the client's oldest restorable state has it ('oldest', at the end of run
-- versions_from), then each run that changed it: 'insert', 'update' (the
-- row as that run left it) or 'delete' (row NULL).  The last row is the
-- mirror's now.  With versions_interval, updates within one interval show
-- as one, with the row the interval ended with.  key: {"id": "..."}.
CREATE FUNCTION owsync.row_versions(client text, table_name text, key jsonb)
RETURNS TABLE (run_id bigint, at timestamptz, operation text, "row" jsonb)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    mirror regclass;
    versions regclass;
    keys text[];
    current jsonb;
    e record;
    pending record;		-- the change waiting for the row it left
    drop_cols text[] := ARRAY['owsync_run', 'owsync_op'];
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._registered(client);
    SELECT * INTO c FROM owsync.client x WHERE x.client = row_versions.client;
    mirror := to_regclass(format('%I.%I', client, table_name));
    IF mirror IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_table',
            MESSAGE = format('client %L has no table %s', client, table_name);
    END IF;
    keys := owsync._primary_key(mirror);
    versions := to_regclass(format('%I.%I', owsync._versions_schema(client), table_name));
    EXECUTE format('SELECT to_jsonb(m) FROM %s m WHERE %s', mirror,
                   owsync._key_condition(client, table_name, keys, key, 'm'))
      INTO current;

    SELECT NULL::bigint AS run, NULL::text AS op INTO pending;
    IF versions IS NOT NULL THEN
        FOR e IN EXECUTE format('SELECT v.owsync_run AS run, v.owsync_op::text AS op, to_jsonb(v) - $1 AS payload
                                   FROM %s v WHERE %s ORDER BY v.owsync_run',
                                versions, owsync._key_condition(client, table_name, keys, key, 'v'))
                   USING drop_cols LOOP
            IF pending.run IS NULL THEN
                IF e.op <> 'i' THEN
                    RETURN QUERY SELECT c.versions_from, r.finished_at, 'oldest'::text, e.payload
                                   FROM owsync.run r WHERE r.run_id = c.versions_from;
                END IF;
            ELSE
                RETURN QUERY SELECT pending.run, r.finished_at,
                                    CASE pending.op WHEN 'i' THEN 'insert' WHEN 'u' THEN 'update' ELSE 'delete' END,
                                    CASE WHEN pending.op = 'd' OR e.op = 'i' THEN NULL ELSE e.payload END
                               FROM owsync.run r WHERE r.run_id = pending.run;
            END IF;
            pending := e;
        END LOOP;
    END IF;
    IF pending.run IS NULL THEN
        IF current IS NOT NULL THEN
            RETURN QUERY SELECT c.versions_from, r.finished_at, 'oldest'::text, current
                           FROM owsync.run r WHERE r.run_id = c.versions_from;
        END IF;
    ELSE
        RETURN QUERY SELECT pending.run, r.finished_at,
                            CASE pending.op WHEN 'i' THEN 'insert' WHEN 'u' THEN 'update' ELSE 'delete' END,
                            CASE WHEN pending.op = 'd' THEN NULL ELSE current END
                       FROM owsync.run r WHERE r.run_id = pending.run;
    END IF;
END
$$;

COMMENT ON FUNCTION owsync.row_versions IS 'the versions of one row of a client''s table, oldest first, from the versions its runs kept: run, when it finished, insert/update/delete, and the row as that run left it';
