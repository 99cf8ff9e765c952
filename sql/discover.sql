--
-- Fleet registration: CALL owsync.discover(pattern, schedule) registers
-- every SQLite file matching a glob under the allowed directories, each in
-- a transaction of its own, names each client from its path, skips the
-- registered ones, and reports the ones it cannot register without stopping.
-- (The report is read from the procedure's OUT row with \gset.)
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! D=/tmp/owsync_regress/discover && rm -rf $D /tmp/owsync_regress/discover_outside && mkdir -p $D/srv/imc.quantabase.io/data $D/srv/Acme-Example.COM/data $D/srv/9lives/data $D/srv/empty/data $D/srv/broken/data $D/srv/elsewhere $D/srv/owsync/data /tmp/owsync_regress/discover_outside/data && for c in imc.quantabase.io Acme-Example.COM 9lives owsync; do python3 "$PG_ABS_SRCDIR/test/gen_openwebui.py" --flavour fresh --size tiny --seed 51 --journal wal --out $D/srv/$c/data/webui.db >/dev/null; done && cp $D/srv/9lives/data/webui.db /tmp/owsync_regress/discover_outside/data/webui.db && ln -s /tmp/owsync_regress/discover_outside $D/srv/escape && printf 'not a database at all, just text' > $D/srv/broken/data/webui.db && mkdir $D/srv/empty/data/webui.db && cp $D/srv/9lives/data/webui.db $D/srv/elsewhere/webui.db && chmod -R a+rwX $D /tmp/owsync_regress/discover_outside
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
\! D=/tmp/owsync_regress/discover && mkdir -p $D/srv/new.example.org/data && cp $D/srv/9lives/data/webui.db $D/srv/new.example.org/data/webui.db && chmod -R a+rwX $D/srv/new.example.org
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
\! D=/tmp/owsync_regress/discover && mkdir -p $D/other/9lives/data $D/other/needs.cron/data && cp $D/srv/9lives/data/webui.db $D/other/9lives/data/webui.db && cp $D/srv/9lives/data/webui.db $D/other/needs.cron/data/webui.db && chmod -R a+rwX $D/other
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
