--
-- Client options: one list, every value checked, every default supplied.
-- register_client() and set_options() refuse an unknown key (with the
-- closest known one) or a bad value, each with its SQLSTATE and nothing
-- changed; set_options() merges keys, resets a key given as JSON null,
-- refuses options fixed at registration, and applies a new reader role or
-- withheld list to the grants in the same transaction.
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" options
SET owsync.allowed_directories = '/tmp/owsync_regress/options';
SET client_min_messages = warning;
CREATE ROLE regress_opt_reader;
CREATE ROLE regress_opt_other;
CREATE ROLE regress_opt_admin;
GRANT owsync_admin TO regress_opt_admin;
CREATE ROLE regress_opt_nobody;

-- a statement's error as SQLSTATE, message and hint (NULL: it succeeded)
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; hnt text;
BEGIN
  EXECUTE stmt;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hnt = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || coalesce(E'\n  hint: ' || nullif(hnt, ''), '');
END $$;

-- every refusal at registration, and nothing registered
SELECT o AS options, pg_temp.try(format(
         'SELECT owsync.register_client(%L, %L, options => %L)', 'opt', '/tmp/owsync_regress/options/o.db', o)) AS error
  FROM unnest(ARRAY[
    '[]', '"quarantine"',
    '{"on_bad_rows": "quarantine"}', '{"reconcile_intervall": "1 hour"}', '{"colour": "blue"}', '{"colour": null}',
    '{"on_bad_row": "quarantin"}', '{"on_bad_row": true}',
    '{"conflict_policy": "mirror_wins"}', '{"json_type": "xml"}',
    '{"reconcile_interval": "soon"}', '{"reconcile_interval": "-1 hour"}', '{"reconcile_interval": 3600}',
    '{"overlap_seconds": -1}', '{"overlap_seconds": 1.5}', '{"overlap_seconds": "60"}',
    '{"alert_after_failures": 0}', '{"backoff_base": 5}', '{"backoff_max": "forever"}',
    '{"reader_role": "Bad Role"}', '{"reader_role": 3}',
    '{"units": {"item": "ms"}}', '{"units": ["ns"]}',
    '{"withheld_tables": "auth"}', '{"withheld_tables": ["auth", 1]}']::jsonb[]) o;
SELECT count(*) AS clients, (SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%opt%') AS schemas
  FROM owsync.client;

-- every option valid at once; JSON null means the default
SELECT table_name, rows FROM owsync.register_client('opt', '/tmp/owsync_regress/options/o.db', options =>
    '{"on_bad_row": "quarantine", "conflict_policy": "manual", "json_type": "jsonb", "reconcile_interval": "1 day",
      "overlap_seconds": 30, "backoff_base": "30 seconds", "backoff_max": null,
      "reader_role": "regress_opt_reader", "units": {"item": "s"}, "withheld_tables": ["auth"],
      "alert_after_failures": 5}');
SELECT options FROM owsync.client;
SELECT c.relname, has_table_privilege('regress_opt_reader', c.oid, 'SELECT') AS reader_reads
  FROM pg_class c WHERE c.relnamespace = 'opt'::regnamespace AND c.relkind = 'r' ORDER BY 1;

-- set_options merges, and a JSON null resets a key to its default
SELECT owsync.set_options('opt', '{"overlap_seconds": 0, "on_bad_row": null}');
SELECT owsync.set_options('opt', '{}');
-- a reconcile due at every run takes effect at the next run
SELECT owsync.set_options('opt', '{"reconcile_interval": "0 seconds"}') ->> 'reconcile_interval' AS reconcile_interval;
\! sqlite3 /tmp/owsync_regress/options/o.db "UPDATE item SET name = 'silently renamed' WHERE id = 1"
CALL owsync.sync('opt');
SELECT name FROM opt.item WHERE id = 1;

-- refusals of set_options: nothing changes
SELECT o AS options, pg_temp.try(format('SELECT owsync.set_options(%L, %L)', 'opt', o)) AS error
  FROM unnest(ARRAY['{"on_bad_row": "skip"}', '{"on_bad_rw": "abort"}', '{"json_type": "json"}',
                    '{"units": {"item": "ns"}}', '{"units": null}', '[]']::jsonb[]) o;
-- a fixed option given its current value is no change
SELECT owsync.set_options('opt', '{"json_type": "jsonb", "units": {"item": "s"}}') ->> 'json_type' AS json_type;
SELECT pg_temp.try($$SELECT owsync.set_options('nobody', '{}')$$) AS error;
SET ROLE regress_opt_nobody;
SELECT pg_temp.try($$SELECT owsync.set_options('opt', '{"on_bad_row": "abort"}')$$) AS error;
RESET ROLE;
SELECT options = (SELECT options FROM owsync.client) AS unchanged FROM owsync.client;

-- an administrator may; a new reader role and withheld list change the
-- grants in the same transaction: the former reader loses them
SET ROLE regress_opt_admin;
SELECT owsync.set_options('opt', '{"reader_role": "regress_opt_other", "withheld_tables": null}') ->> 'reader_role' AS reader_role;
RESET ROLE;
SELECT reader_role FROM owsync.client;
SELECT c.relname, has_table_privilege('regress_opt_reader', c.oid, 'SELECT') AS former_reads,
       has_table_privilege('regress_opt_other', c.oid, 'SELECT') AS reader_reads
  FROM pg_class c WHERE c.relnamespace = 'opt'::regnamespace AND c.relkind = 'r' ORDER BY 1;
SELECT has_schema_privilege('regress_opt_reader', 'opt', 'USAGE') AS former_usage,
       has_schema_privilege('regress_opt_other', 'opt', 'USAGE') AS reader_usage;
-- undone with its transaction
BEGIN;
SELECT owsync.set_options('opt', '{"reader_role": false}') ->> 'reader_role' AS reader_role;
SELECT has_table_privilege('regress_opt_other', 'opt.item', 'SELECT') AS reader_reads;
ROLLBACK;
SELECT reader_role, has_table_privilege('regress_opt_other', 'opt.item', 'SELECT') AS reader_reads FROM owsync.client;
-- no reader at all
SELECT owsync.set_options('opt', '{"reader_role": null}') ? 'reader_role' AS has_reader_key;
SELECT reader_role, has_table_privilege('regress_opt_other', 'opt.item', 'SELECT') AS reader_reads FROM owsync.client;

-- the status of a client whose options are all valid has no problem
SELECT client, problem FROM owsync.status;
SELECT bad_options, option_errors FROM owsync.status_detail;

SELECT owsync.unregister_client('opt', drop_data => true);
DROP EXTENSION owsync_fdw;
DROP ROLE regress_opt_reader, regress_opt_other, regress_opt_admin, regress_opt_nobody;
\! rm -rf /tmp/owsync_regress/options
