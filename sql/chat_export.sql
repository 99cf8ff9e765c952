--
-- One chat as it was: owsync.chat_export() gives a chat of a client as it
-- stood at a moment of its window, in Open WebUI's chat export format (a
-- JSON array holding the chat as GET /api/v1/chats/{id} shows it to its
-- owner).  A chat's title is edited and another chat deleted at the source;
-- after a sync, an export as of before gives the old title and brings the
-- deleted chat back, each equal to the export taken then.  Both flavours:
-- fresh (booleans, json) and legacy (archived an integer, mirrored as jsonb).
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" chat_export
SET owsync.allowed_directories = '/tmp/owsync_regress/chat_export';
SET client_min_messages = warning;
\set dir /tmp/owsync_regress/chat_export
\setenv DIR :dir

SELECT count(*) > 0 AS registered FROM owsync.register_client('fresh', '/tmp/owsync_regress/chat_export/fresh.db');
SELECT count(*) > 0 AS registered
  FROM owsync.register_client('legacy', '/tmp/owsync_regress/chat_export/legacy.db', options => '{"json_type": "jsonb"}');
SELECT c.client, format_type(a.atttypid, a.atttypmod) AS chat_type,
       (SELECT format_type(x.atttypid, x.atttypmod) FROM pg_attribute x
         WHERE x.attrelid = format('%I.chat', c.client)::regclass AND x.attname = 'archived') AS archived_type
  FROM owsync.client c JOIN pg_attribute a ON a.attrelid = format('%I.chat', c.client)::regclass AND a.attname = 'chat'
 ORDER BY 1;
-- the chats followed: A (its title edited) and B (deleted), in each client
-- (ordered as SQLite orders them)
SELECT min(id COLLATE "C") AS a, (SELECT id FROM fresh.chat ORDER BY id COLLATE "C" LIMIT 1 OFFSET 1) AS b
  FROM fresh.chat \gset f_
SELECT min(id COLLATE "C") AS a, (SELECT id FROM legacy.chat ORDER BY id COLLATE "C" LIMIT 1 OFFSET 1) AS b
  FROM legacy.chat \gset l_
SELECT now() AS t0 \gset

-- the format: one chat in an array, with ChatResponse's fields
SELECT jsonb_typeof(e) AS format, jsonb_array_length(e) AS chats,
       (SELECT string_agg(k, ' ' ORDER BY k) FROM jsonb_object_keys(e -> 0) k) AS fields
  FROM owsync.chat_export('fresh', :'f_a') e;
-- the row's values; the chat JSON as stored but for share_mode and the
-- authors of user messages; every message of history.messages (as many as
-- chat_message holds) and of the flat list
CREATE FUNCTION pg_temp.export_vs_mirror(client text, chat_id text) RETURNS TABLE (field text, same boolean)
LANGUAGE plpgsql AS $$
DECLARE e jsonb := owsync.chat_export(client, chat_id) -> 0; c jsonb;
BEGIN
  EXECUTE format('SELECT to_jsonb(c) FROM %I.chat c WHERE c.id = $1', client) INTO c USING chat_id;
  RETURN QUERY VALUES
    ('id, user_id, title, times, share_id, folder_id',
     e -> 'id' = c -> 'id' AND e -> 'user_id' = c -> 'user_id' AND e -> 'title' = c -> 'title'
     AND e -> 'created_at' = c -> 'created_at' AND e -> 'updated_at' = c -> 'updated_at'
     AND e -> 'share_id' = c -> 'share_id' AND e -> 'folder_id' = c -> 'folder_id'),
    ('archived and pinned are booleans (or null)',
     jsonb_typeof(e -> 'archived') = 'boolean' AND jsonb_typeof(e -> 'pinned') IN ('boolean', 'null')
     AND (e ->> 'archived')::boolean = ((c ->> 'archived') IN ('true', '1'))),
    ('meta', e -> 'meta' = c -> 'meta'),
    ('chat but its messages', (e -> 'chat') - 'history' - 'messages' - 'share_mode' = (c -> 'chat') - 'history' - 'messages'
     AND e #> '{chat,history,currentId}' = c #> '{chat,history,currentId}' AND e #>> '{chat,share_mode}' = 'continue'),
    ('messages but the authors of user messages',
     (SELECT jsonb_object_agg(k, v - 'user' - 'user_id') FROM jsonb_each(e #> '{chat,history,messages}') x(k, v))
       = (SELECT jsonb_object_agg(k, v - 'user' - 'user_id') FROM jsonb_each(c #> '{chat,history,messages}') x(k, v))
     AND (SELECT jsonb_agg(v - 'user' - 'user_id') FROM jsonb_array_elements(e #> '{chat,messages}') v)
       = (SELECT jsonb_agg(v - 'user' - 'user_id') FROM jsonb_array_elements(c #> '{chat,messages}') v)),
    ('as many messages as chat_message has',
     (SELECT count(*) FROM jsonb_object_keys(e #> '{chat,history,messages}'))
       = (SELECT count(*) FROM fresh.chat_message m WHERE m.chat_id = export_vs_mirror.chat_id AND client = 'fresh')
       OR client <> 'fresh'),
    ('user messages name their author',
     (SELECT bool_and(v ->> 'user_id' = c ->> 'user_id' AND v #>> '{user,id}' = c ->> 'user_id'
                      AND v #> '{user,name}' = (SELECT to_jsonb(u.name) FROM fresh."user" u WHERE u.id = c ->> 'user_id'))
        FROM jsonb_each(e #> '{chat,history,messages}') x(k, v) WHERE v ->> 'role' = 'user')
     OR client <> 'fresh');
END $$;
SELECT * FROM pg_temp.export_vs_mirror('fresh', :'f_a');
SELECT * FROM pg_temp.export_vs_mirror('legacy', :'l_a');
SELECT count(*) AS user_messages, count(*) FILTER (WHERE v #>> '{user,name}' <> '') AS named
  FROM jsonb_each(owsync.chat_export('legacy', :'l_a') #> '{0,chat,history,messages}') x(k, v)
 WHERE v ->> 'role' = 'user';

-- the exports taken now
SELECT owsync.chat_export('fresh', :'f_a') AS f_a_then, owsync.chat_export('fresh', :'f_b') AS f_b_then,
       owsync.chat_export('legacy', :'l_a') AS l_a_then, owsync.chat_export('legacy', :'l_b') AS l_b_then \gset
SELECT owsync.chat_export('fresh', :'f_a') #>> '{0,title}' = (SELECT title FROM fresh.chat WHERE id = :'f_a') AS title_now;

-- at the source: A's title edited (as Open WebUI does: the column and the
-- chat JSON's title), its owner renamed, B deleted with its messages
\! cd $DIR && for f in fresh.db legacy.db; do sqlite3 $f "UPDATE chat SET title = 'A renamed', chat = json_set(chat, '\$.title', 'A renamed'), updated_at = (SELECT max(updated_at) + 1 FROM chat) WHERE id = (SELECT min(id) FROM chat); UPDATE user SET name = 'Renamed Owner', updated_at = (SELECT max(updated_at) + 1 FROM user) WHERE id = (SELECT user_id FROM chat WHERE id = (SELECT min(id) FROM chat)); DELETE FROM chat_message WHERE chat_id = (SELECT id FROM chat ORDER BY id LIMIT 1 OFFSET 1); DELETE FROM chat WHERE id = (SELECT id FROM chat ORDER BY id LIMIT 1 OFFSET 1);" || echo "$f failed"; done
CALL owsync.sync('fresh');
CALL owsync.sync('legacy');
SELECT client, status FROM owsync.run WHERE run_id IN (SELECT max(run_id) FROM owsync.run GROUP BY client) ORDER BY 1;

-- now: the new title and owner's name, and B gone
SELECT e #>> '{0,title}' AS title, e #>> '{0,chat,title}' AS chat_title,
       (SELECT DISTINCT v #>> '{user,name}' FROM jsonb_each(e #> '{0,chat,history,messages}') x(k, v)
         WHERE v ->> 'role' = 'user') AS author
  FROM owsync.chat_export('fresh', :'f_a') e;
SELECT count(*) AS b_in_mirror FROM fresh.chat WHERE id = :'f_b';
-- as of before: A as it was, its author's name then; B back; each exactly
-- the export taken then
SELECT e #>> '{0,title}' AS title, e #>> '{0,chat,title}' AS chat_title,
       (SELECT DISTINCT v #>> '{user,name}' FROM jsonb_each(e #> '{0,chat,history,messages}') x(k, v)
         WHERE v ->> 'role' = 'user') AS author,
       e = :'f_a_then'::jsonb AS a_as_then
  FROM owsync.chat_export('fresh', :'f_a', :'t0') e;
SELECT owsync.chat_export('fresh', :'f_b', :'t0') = :'f_b_then'::jsonb AS b_back,
       owsync.chat_export('legacy', :'l_a', :'t0') = :'l_a_then'::jsonb AS legacy_a_as_then,
       owsync.chat_export('legacy', :'l_b', :'t0') = :'l_b_then'::jsonb AS legacy_b_back;
SELECT owsync.chat_export('legacy', :'l_a') #>> '{0,title}' AS legacy_title_now;

-- refused, saying why (times and runs masked)
CREATE FUNCTION pg_temp.refusal(client text, chat text, as_of timestamptz) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text; hint text;
BEGIN
  PERFORM owsync.chat_export(client, chat, as_of);
  RETURN 'exported';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  RETURN regexp_replace(regexp_replace(concat_ws(' / ', st, msg, nullif(det, ''), nullif(hint, '')),
                                       '\w{3} \w{3} \d\d [0-9:.]+ \d{4} \w+', '<time>', 'g'),
                        'run \d+', 'run <n>', 'g');
END $$;
-- a chat that is not there now, or was not then
SELECT pg_temp.refusal('fresh', :'f_b', NULL);
SELECT pg_temp.refusal('fresh', 'no-such-chat', :'t0');
-- times outside the window, an unknown client
SELECT pg_temp.refusal('fresh', :'f_a', '2001-01-01');
SELECT pg_temp.refusal('fresh', :'f_a', now() + interval '1 hour');
SELECT pg_temp.refusal('nobody', :'f_a', NULL);

-- one message as the owner's GET shows it: a user message names its author,
-- a message of another author loses its meta
SELECT owsync._chat_export_message('{"role": "user", "content": "hi"}', 'u1', '{}') AS no_name,
       owsync._chat_export_message('{"role": "user", "user_id": "u2", "meta": {"x": 1}}', 'u1',
                                   '{"u2": {"id": "u2", "name": "Two"}}') AS other_author,
       owsync._chat_export_message('{"role": "assistant", "meta": {"x": 1}}', 'u1', '{}') AS owners;

-- an administrator's function: not for other roles
CREATE ROLE chat_export_nobody;
SET ROLE chat_export_nobody;
SELECT owsync.chat_export('fresh', :'f_a');
RESET ROLE;
DROP ROLE chat_export_nobody;

SELECT owsync.unregister_client('fresh', drop_data => true) IS NOT NULL AS dropped;
SELECT owsync.unregister_client('legacy', drop_data => true) IS NOT NULL AS dropped;
SELECT count(*) AS schemas_left FROM pg_namespace WHERE nspname ~ '^(owsync_)?(fresh|legacy)(_|$)';
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/chat_export
