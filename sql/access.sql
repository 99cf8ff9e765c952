--
-- Access control: a client's reader role reads its own mirror (secrets
-- withheld) and its own rows of owsync's views, nothing else; management is
-- for superusers and owsync_admin; hostile objects on the search path and
-- hostile names change nothing.
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" access
SET owsync.allowed_directories = '/tmp/owsync_regress/access';
SET client_min_messages = warning;
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'owsync_admin';

SELECT count(*) AS tables FROM owsync.register_client('acc_a', '/tmp/owsync_regress/access/a.db',
                                                      options => '{"reader_role": true}');
SELECT count(*) AS tables FROM owsync.register_client('acc_b', '/tmp/owsync_regress/access/b.db',
                                                      options => '{"reader_role": "regress_b_reader", "withheld_tables": ["auth", "chat"]}');
SELECT client, reader_role FROM owsync.client ORDER BY 1;
CREATE ROLE regress_nobody;

-- a reader: its mirror, not its secrets, not another client, not owsync's internals
SET ROLE acc_a_reader;
SELECT count(*) > 0 AS reads_chat FROM acc_a.chat;
SELECT count(*) > 0 AS reads_user FROM acc_a."user";
SELECT * FROM acc_a.auth;
SELECT * FROM acc_a.api_key;
SELECT * FROM acc_a.config;
SELECT * FROM acc_a.oauth_session;
SELECT * FROM acc_a.channel_webhook;
SELECT * FROM acc_b.chat;
SELECT * FROM owsync_acc_a_src.chat;
SELECT * FROM owsync_acc_a_digest.chat;
SELECT * FROM owsync.client_table;
SELECT client, last_status FROM owsync.status_detail;
SELECT DISTINCT client FROM owsync.history;
SELECT client, runs_succeeded > 0 AS synced FROM owsync.metrics;
SELECT DISTINCT client FROM owsync.run;
SELECT count(*) > 0 AS own_run_tables FROM owsync.run_table;
CALL owsync.sync('acc_a');
SELECT owsync.set_schedule('acc_a', 'manual');
SELECT * FROM owsync.verify('acc_a');
RESET ROLE;
-- the other reader: its own list of withheld tables
SET ROLE regress_b_reader;
SELECT count(*) > 0 AS reads_api_key FROM acc_b.api_key;
SELECT * FROM acc_b.chat;
SELECT client FROM owsync.status;
RESET ROLE;
-- anyone else sees no client
SET ROLE regress_nobody;
SELECT count(*) AS clients FROM owsync.status;
SELECT * FROM acc_a.chat;
SELECT owsync.register_client('acc_c', '/tmp/owsync_regress/access/a.db');
RESET ROLE;

-- a table that appears at the source is granted to the reader (unless withheld)
\! sqlite3 /tmp/owsync_regress/access/a.db "CREATE TABLE extra_notes (id TEXT PRIMARY KEY, body TEXT, updated_at BIGINT); INSERT INTO extra_notes VALUES ('n1', 'hello', 1700000000);"
CALL owsync.sync('acc_a');
SET ROLE acc_a_reader;
SELECT * FROM acc_a.extra_notes;
RESET ROLE;

-- an administrator who is not a superuser manages clients, inside the allowed directories
CREATE ROLE regress_admin;
GRANT owsync_admin TO regress_admin;
SET SESSION AUTHORIZATION regress_admin;
CALL owsync.sync('acc_a');
SELECT client, last_status FROM owsync.status_detail ORDER BY 1;
SELECT count(*) AS tables FROM owsync.register_client('acc_c', '/tmp/owsync_regress/access/a.db');
SELECT count(*) AS differing FROM owsync.verify('acc_c') WHERE differing + missing + extra > 0;
SELECT owsync.unregister_client('acc_c', drop_data => true);
RESET SESSION AUTHORIZATION;
RESET owsync.allowed_directories;
SET SESSION AUTHORIZATION regress_admin;
SELECT owsync.register_client('acc_c', '/tmp/owsync_regress/access/a.db');
RESET SESSION AUTHORIZATION;
SET owsync.allowed_directories = '/tmp/owsync_regress/access';
-- a reader role may not be a superuser or an administrator
SELECT owsync.register_client('acc_d', '/tmp/owsync_regress/access/a.db', options => '{"reader_role": "regress_admin"}');
SELECT owsync.register_client('acc_d', '/tmp/owsync_regress/access/a.db', options => '{"reader_role": "x\"; DROP ROLE postgres; --"}');

-- hostile objects on the search path: none of them ever runs
CREATE TABLE public.hijacked (what text);
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE sql
  AS $$ INSERT INTO public.hijacked VALUES ('format') RETURNING 'x' $$;
CREATE FUNCTION public.format(text, name) RETURNS text LANGUAGE sql
  AS $$ INSERT INTO public.hijacked VALUES ('format') RETURNING 'x' $$;
CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql
  AS $$ INSERT INTO public.hijacked VALUES ('lower') RETURNING $1 $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql
  AS $$ INSERT INTO public.hijacked VALUES ('now') RETURNING pg_catalog.now() $$;
CREATE FUNCTION public.evil_eq(text, text) RETURNS boolean LANGUAGE sql
  AS $$ INSERT INTO public.hijacked VALUES ('=') RETURNING $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_eq);
CREATE FUNCTION public.evil_ne(bigint, bigint) RETURNS boolean LANGUAGE sql
  AS $$ INSERT INTO public.hijacked VALUES ('<>') RETURNING $1 OPERATOR(pg_catalog.<>) $2 $$;
CREATE OPERATOR public.<> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.evil_ne);
SET search_path = public, pg_catalog;
-- the control: an unqualified call in this session does find them
SELECT format('%s', 'control'::text) AS planted_format, 'a'::text = 'a'::text AS planted_equals;
SELECT what FROM public.hijacked ORDER BY 1;
\! sqlite3 /tmp/owsync_regress/access/a.db "UPDATE chat SET title = 'hijack-proof', updated_at = updated_at + 100 WHERE rowid = (SELECT min(rowid) FROM chat); DELETE FROM tag WHERE rowid = (SELECT min(rowid) FROM tag);"
CALL owsync.sync('acc_a');
CALL owsync.sync('acc_a', 'reconcile');
CALL owsync.sync('acc_b', 'full');
SELECT count(*) AS tables FROM owsync.register_client('acc_e', '/tmp/owsync_regress/access/b.db', options => '{"reader_role": true}');
SELECT owsync.set_schedule('acc_e', 'manual');
SELECT count(*) AS statuses FROM owsync.status;
SELECT count(*) AS differing FROM owsync.verify('acc_a') WHERE differing + missing + extra > 0;
CALL owsync.discover('/tmp/owsync_regress/access/*/data/webui.db', 'manual');
SELECT owsync.unregister_client('acc_e', drop_data => true);
SELECT what FROM public.hijacked ORDER BY 1;
RESET search_path;
SELECT title FROM acc_a.chat WHERE title = 'hijack-proof';

-- hostile client names are refused before anything is created
SELECT owsync.register_client($$x'); drop schema public; --$$, '/tmp/owsync_regress/access/a.db');
SELECT owsync.register_client('Acme', '/tmp/owsync_regress/access/a.db');
SELECT owsync.register_client('a"b', '/tmp/owsync_regress/access/a.db');
SELECT owsync.register_client(repeat('a', 64), '/tmp/owsync_regress/access/a.db');
SELECT owsync.register_client('pg_toast2', '/tmp/owsync_regress/access/a.db');
CALL owsync.sync($$acc_a'); drop schema public; --$$);
SELECT nspname FROM pg_namespace WHERE nspname = 'public';

SELECT owsync.unregister_client(client, drop_data => true) FROM owsync.client ORDER BY client;
DROP TABLE public.hijacked;
DROP OPERATOR public.= (text, text);
DROP OPERATOR public.<> (bigint, bigint);
DROP FUNCTION public.format(text, text), public.format(text, name), public.lower(text), public.now(),
              public.evil_eq(text, text), public.evil_ne(bigint, bigint);
DROP EXTENSION owsync_fdw;
DROP ROLE acc_a_reader, regress_b_reader, acc_e_reader, regress_nobody, regress_admin;
\! rm -rf /tmp/owsync_regress/access
