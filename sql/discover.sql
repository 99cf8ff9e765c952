--
-- Fleet registration: CALL owsync.discover(pattern, schedule) registers
-- every SQLite file matching a glob under the allowed directories, each in
-- a transaction of its own, names each client from its path, skips the
-- registered ones, and reports the ones it cannot register without stopping.
-- (The report is read from the procedure's OUT row with \gset.)
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" discover
SET owsync.allowed_directories = '/tmp/owsync_regress/discover';
SET client_min_messages = warning;

-- the naming rule
SELECT p, owsync.client_name_for_path(pat, p) AS client
  FROM (VALUES ('/srv/openwebui/*/data/webui.db', '/srv/openwebui/imc.quantabase.io/data/webui.db'),
               ('/srv/*/*/webui.db', '/srv/eu/Acme-Example.COM/webui.db'),
               ('/srv/dbs/*.db', '/srv/dbs/team_7.db'),
               ('/srv/dbs/*.db', '/srv/dbs/7.db'),
               ('/srv/dbs/*.db', '/srv/dbs/---.db'),
               ('/srv/one/webui.db', '/srv/one/webui.db'),
               ('/srv/*/webui.db', '/srv/' || repeat('very-long-name-', 5) || '/webui.db')) v(pat, p);

-- files found: regular files only, inside the allowed directories only (the
-- symbolic link leading outside is not followed out), sorted
SELECT f FROM owsync.find_files('/tmp/owsync_regress/discover/srv/*/data/webui.db') f;
CALL owsync.discover('/tmp/owsync_regress/discover/srv/*/data/webui.db', 'manual') \gset
SELECT :registered AS registered, :already_registered AS already_registered, :not_registered AS not_registered;
SELECT e ->> 'path' AS path, e ->> 'client' AS client, e ->> 'action' AS action
  FROM jsonb_array_elements(:'report') e;
SELECT client, database, schedule FROM owsync.client ORDER BY 1;
SELECT count(*) AS chats FROM imc_quantabase_io.chat;
-- again: nothing new; a new deployment appears and is registered
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" discover-new
CALL owsync.discover('/tmp/owsync_regress/discover/srv/*/data/webui.db', 'manual') \gset
SELECT :registered AS registered, :already_registered AS already_registered, :not_registered AS not_registered;
SELECT e ->> 'path' AS path, e ->> 'client' AS client, e ->> 'action' AS action
  FROM jsonb_array_elements(:'report') e WHERE e ->> 'action' <> 'already registered';
-- a pattern without wildcards names the client by the file's directory
CALL owsync.discover('/tmp/owsync_regress/discover/srv/elsewhere/webui.db', 'manual') \gset
SELECT :registered AS registered, :already_registered AS already_registered, :not_registered AS not_registered;
SELECT e ->> 'path' AS path, e ->> 'client' AS client, e ->> 'action' AS action
  FROM jsonb_array_elements(:'report') e;
-- a name taken by another file is reported, not overwritten; a schedule
-- other than manual needs pg_cron (not installed here), and the file says so
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" discover-other
CALL owsync.discover('/tmp/owsync_regress/discover/other/*/data/webui.db', 'hourly') \gset
SELECT :registered AS registered, :already_registered AS already_registered, :not_registered AS not_registered;
SELECT e ->> 'path' AS path, e ->> 'client' AS client, e ->> 'action' AS action
  FROM jsonb_array_elements(:'report') e;
SELECT count(*) AS clients FROM owsync.client;

-- patterns and privileges
CALL owsync.discover('relative/*/webui.db');
SELECT count(*) FROM owsync.find_files('/tmp/owsync_regress/nothing_here/*/webui.db');
CREATE ROLE regress_discover_user;
GRANT USAGE ON SCHEMA owsync TO regress_discover_user;
SET ROLE regress_discover_user;
SELECT * FROM owsync.find_files('/tmp/owsync_regress/discover/srv/*/data/webui.db');
RESET ROLE;
REVOKE USAGE ON SCHEMA owsync FROM regress_discover_user;
DROP ROLE regress_discover_user;
-- with no allowed directories, only superusers find files
RESET owsync.allowed_directories;
SELECT count(*) AS found_by_superuser FROM owsync.find_files('/tmp/owsync_regress/discover/srv/*/data/webui.db');
SET owsync.allowed_directories = '/tmp/owsync_regress/discover';

SELECT owsync.unregister_client(client, drop_data => true) FROM owsync.client ORDER BY client;
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/discover /tmp/owsync_regress/discover_outside
