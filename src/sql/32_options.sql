-- Client options: the list, every check and every default, in one place.
-- register_client() and set_options() refuse what _option_errors() finds;
-- owsync.status reports it for options stored before a check existed (they
-- keep working as they did); everything else reads a client's options
-- through _options(), which supplies the defaults.

-- The name among candidates that an unknown name was probably meant to be,
-- as the wrapper's own option check suggests it (src/option.c); NULL when
-- none is close.
CREATE FUNCTION owsync._closest_name(name text, candidates text[]) RETURNS text
AS 'MODULE_PATHNAME', 'owsync_closest_name'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

-- Every client option, and whether it is fixed at registration
-- (it shaped the client's tables).
CREATE FUNCTION owsync._option_list(OUT name text, OUT default_value jsonb, OUT fixed boolean)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('alert_after_failures', '3'::jsonb, false),
           ('backoff_base', '"1 minute"', false),
           ('backoff_max', '"1 hour"', false),
           ('conflict_policy', '"source_wins"', false),
           ('json_type', '"json"', true),
           ('on_bad_row', '"abort"', false),
           ('overlap_seconds', '60', false),
           ('reader_role', 'false', false),
           ('reconcile_interval', '"1 hour"', false),
           ('units', '{}', true),
           ('versions_interval', '"0"', false),
           ('versions_retention', '"1 day"', false),
           ('withheld_tables', '["auth", "api_key", "config", "oauth_session", "channel_webhook"]', false)
$$;

-- A client's options in effect: the defaults, overridden by the stored
-- options that are not JSON null.
-- (PL/pgSQL: its query is planned once a session, not at every call.)
CREATE FUNCTION owsync._options(p_options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT jsonb_object_agg(o.name, o.default_value) FROM owsync._option_list() o)
           || CASE WHEN jsonb_typeof(p_options) = 'object' THEN jsonb_strip_nulls(p_options) ELSE '{}' END;
END
$$;

-- Options as stored: without the keys given as JSON null (the default).
CREATE FUNCTION owsync._without_nulls(p_options jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_options - ARRAY(SELECT o.key FROM jsonb_each(p_options) o WHERE jsonb_typeof(o.value) = 'null')
$$;

-- Is a JSON value a string that reads as an interval of at least 0?
CREATE FUNCTION owsync._is_interval(v jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN jsonb_typeof(v) = 'string' AND (v #>> '{}')::interval >= interval '0';
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
    RETURN false;
END
$$;

-- Is a JSON value a whole number between lo and hi?
CREATE FUNCTION owsync._is_integer(v jsonb, lo numeric, hi numeric) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_typeof(v) = 'number' AND (v #>> '{}')::numeric BETWEEN lo AND hi
           AND (v #>> '{}')::numeric = trunc((v #>> '{}')::numeric)
$$;

-- What is wrong with a set of client options, one row per problem, with the
-- error each raises: an unknown key (with the closest known one), a value
-- of the wrong kind.  A JSON null is no wrong value: it means the default.
CREATE FUNCTION owsync._option_errors(p_client text, p_options jsonb)
RETURNS TABLE (option text, sqlstate text, message text, hint text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e record;
    known text[] := ARRAY(SELECT o.name FROM owsync._option_list() o ORDER BY 1);
BEGIN
    IF jsonb_typeof(coalesce(p_options, '{}')) <> 'object' THEN
        RETURN QUERY SELECT NULL::text, '22023'::text,
            format('the options of client %L are not a JSON object: %s', p_client, p_options),
            'Give options as a JSON object, e.g. ''{"on_bad_row": "quarantine"}''.'::text;
        RETURN;
    END IF;
    FOR e IN SELECT o.key, o.value FROM jsonb_each(coalesce(p_options, '{}')) o
              WHERE jsonb_typeof(o.value) <> 'null' OR NOT o.key = ANY (known) ORDER BY o.key LOOP
        option := e.key;
        sqlstate := '22023';
        message := format('invalid %s %s in the options of client %L', e.key, e.value, p_client);
        hint := CASE e.key
            WHEN 'alert_after_failures' THEN
                 CASE WHEN NOT owsync._is_integer(e.value, 1, 2147483647)
                      THEN 'Give the number of failed runs in a row that raise an alert, 1 or more.' END
            WHEN 'backoff_base' THEN
                 CASE WHEN NOT owsync._is_interval(e.value)
                      THEN 'Give an interval such as "1 minute": the wait after the first failure, doubled after each.' END
            WHEN 'backoff_max' THEN
                 CASE WHEN NOT owsync._is_interval(e.value)
                      THEN 'Give an interval such as "1 hour": the longest wait between scheduled runs of a failing client.' END
            WHEN 'conflict_policy' THEN
                 CASE WHEN e.value #>> '{}' NOT IN ('source_wins', 'target_wins', 'newest_wins', 'manual')
                           OR jsonb_typeof(e.value) <> 'string'
                      THEN 'Use source_wins (the default), target_wins, newest_wins or manual.' END
            WHEN 'json_type' THEN
                 CASE WHEN e.value NOT IN ('"json"', '"jsonb"')
                      THEN 'Use "json" (the default, keeps the exact text) or "jsonb".' END
            WHEN 'on_bad_row' THEN
                 CASE WHEN e.value NOT IN ('"abort"', '"quarantine"')
                      THEN 'Use "abort" (the default: the run fails and changes nothing) or "quarantine".' END
            WHEN 'overlap_seconds' THEN
                 CASE WHEN NOT owsync._is_integer(e.value, 0, 9223372036)
                      THEN 'Give a whole number of seconds, 0 or more.' END
            WHEN 'reader_role' THEN
                 CASE WHEN NOT (jsonb_typeof(e.value) = 'boolean'
                                OR (jsonb_typeof(e.value) = 'string' AND e.value #>> '{}' ~ '^[a-z_][a-z0-9_]*$'
                                    AND length(e.value #>> '{}') <= 63))
                      THEN 'Give true (a role named <client>_reader) or a lower-case role name of at most 63 characters.' END
            WHEN 'reconcile_interval' THEN
                 CASE WHEN NOT owsync._is_interval(e.value)
                      THEN 'Give an interval such as "1 hour": how often an incremental sync compares every row.' END
            WHEN 'units' THEN
                 CASE WHEN jsonb_typeof(e.value) <> 'object'
                           OR EXISTS (SELECT 1 FROM jsonb_each(e.value) u WHERE u.value NOT IN ('"s"', '"ns"'))
                      THEN 'Give an object naming tables whose updated_at counts "s" (seconds) or "ns" (nanoseconds).' END
            WHEN 'versions_interval' THEN
                 CASE WHEN NOT owsync._is_interval(e.value)
                           OR extract(month FROM (e.value #>> '{}')::interval) <> 0
                           OR extract(year FROM (e.value #>> '{}')::interval) <> 0
                      THEN 'Give an interval of days or less such as "15 minutes": a row''s updates keep at most one version per interval ("0": every version).' END
            WHEN 'versions_retention' THEN
                 CASE WHEN NOT owsync._is_interval(e.value)
                      THEN 'Give an interval such as "7 days": how far back a client can be restored ("0": no versions kept).' END
            WHEN 'withheld_tables' THEN
                 CASE WHEN jsonb_typeof(e.value) <> 'array'
                           OR EXISTS (SELECT 1 FROM jsonb_array_elements(e.value) w WHERE jsonb_typeof(w) <> 'string')
                      THEN 'Give an array of table names, e.g. ["auth", "api_key"].' END
            ELSE coalesce('Perhaps you meant the option "' || owsync._closest_name(e.key, known) || '".',
                          'Valid options are: ' || array_to_string(known, ', ') || '.')
        END;
        IF NOT e.key = ANY (known) THEN
            sqlstate := '42704';
            message := format('unrecognized option %s in the options of client %L', e.key, p_client);
        END IF;
        IF hint IS NOT NULL THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;

-- An error for the first problem _option_errors() finds, if any.
CREATE FUNCTION owsync._check_options(p_client text, p_options jsonb) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e record;
BEGIN
    SELECT * INTO e FROM owsync._option_errors(p_client, p_options) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = e.sqlstate, MESSAGE = e.message, HINT = e.hint;
    END IF;
END
$$;
