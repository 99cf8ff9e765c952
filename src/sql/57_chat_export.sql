-- One chat as it was: a chat and its messages as a client's mirror held them
-- after a run of its window (43_versions.sql), in the JSON that Open WebUI's
-- own "Export chat (.json)" downloads and its chat import accepts, so that a
-- user's one lost or mangled chat comes back without rolling the whole
-- client back.
--
-- The format, from Open WebUI 0.12.4's source: the chat menu's export
-- (front end, downloadJSONExport) saves JSON.stringify([chat]), where chat is
-- what GET /api/v1/chats/{id} answers its owner (routers/chats.py
-- get_chat_by_id): a ChatResponse (models/chats.py) of the chat row, namely
-- id, user_id, title, chat, updated_at, created_at (epoch seconds), share_id,
-- archived, pinned, meta, variables, folder_id, tasks, summary,
-- current_message_id and context_usage, whose chat JSON (the message tree in
-- history.messages and history.currentId, and the older flat messages list)
-- is the stored one with shared_chat_response's touches: each user message
-- names its author (user_id, and user {id, name}, the name from the message
-- or else from table user), a message of another author loses its meta, and
-- share_mode is "continue" (the owner may write).  The import (Settings >
-- Chats > Import, POST /api/v1/chats/import) takes the same list: per item
-- chat, meta, variables, pinned, archived, folder_id, created_at, updated_at
-- (ChatImportForm); it gives the chat a new id, makes the importing user its
-- owner and the author of its messages, and takes the title from chat.title.
--
-- The export reads table chat (and table user for authors' names) as of the
-- moment.  Table chat_message holds a copy of each message that Open WebUI
-- writes beside history.messages; it is not a part of the export: GET and the
-- export read history.messages, and the import writes a chat_message row for
-- each message of history.messages (ChatTable.import_chats), so they are made
-- anew.  What the export leaves as stored: context_usage is null (an estimate
-- Open WebUI computes when asked and the import ignores), and
-- history.currentId is not repaired as Open WebUI repairs it when it reads
-- the chat (it does so again after the import).  A JSON value goes through
-- jsonb: key order and number forms (1.50) may differ from the stored text,
-- the values do not; a value jsonb cannot hold (a \u0000 or a lone surrogate
-- escape) is an error.

-- The rows, as JSON, of a client's table (keyed by column id) whose id is in
-- ids, as they stood after run p_run (NULL: as the mirror holds them now);
-- none when the client has no such table.
CREATE FUNCTION owsync._rows_by_id_as_of(p_client text, p_table text, ids text[], p_run bigint) RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ms name := (owsync._registered(p_client)).mirror_schema;
    rel text := CASE WHEN p_run IS NULL THEN p_table ELSE owsync._as_of_table(ms, p_table, p_run) END;
    mirror regclass := to_regclass(format('%I.%I', ms, rel));
BEGIN
    IF mirror IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format('SELECT to_jsonb(r) FROM (%s) r WHERE r.id = ANY ($1)',
                                CASE WHEN p_run IS NULL THEN format('SELECT * FROM %s', mirror)
                                     ELSE owsync._as_of_select(mirror,
                                                               to_regclass(format('%I.%I', owsync._versions_schema(p_client), rel)),
                                                               owsync._primary_key(mirror), p_run) END)
      USING ids;
END
$$;

-- The messages of a chat's JSON: those of history.messages, then those of
-- the flat messages list.
CREATE FUNCTION owsync._chat_messages(chat jsonb) RETURNS SETOF jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.value FROM jsonb_each(CASE WHEN jsonb_typeof(chat #> '{history,messages}') = 'object'
                                        THEN chat #> '{history,messages}' ELSE '{}' END) e
    UNION ALL
    SELECT e.value FROM jsonb_array_elements(CASE WHEN jsonb_typeof(chat -> 'messages') = 'array'
                                                  THEN chat -> 'messages' ELSE '[]' END) e
$$;

-- The author Open WebUI takes a message to have: its user_id, or its user's
-- id, or the chat's owner.
CREATE FUNCTION owsync._chat_author(m jsonb, owner text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(nullif(m ->> 'user_id', ''), nullif(m #>> '{user,id}', ''), owner)
$$;

-- One message as the owner's GET shows it: a user message names its author
-- (user_id, and user from authors, {id: {id, name}}, or with an empty name),
-- a message of another author than the owner loses its meta.
CREATE FUNCTION owsync._chat_export_message(m jsonb, owner text, authors jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN jsonb_typeof(m) IS DISTINCT FROM 'object' THEN m
                WHEN coalesce(nullif(y ->> 'user_id', ''), owner) = owner THEN y
                ELSE y - 'meta' END
      FROM (SELECT CASE WHEN m ->> 'role' = 'user'
                        THEN m || jsonb_build_object('user_id', a, 'user',
                                                     coalesce(authors -> a, jsonb_build_object('id', a, 'name', '')))
                        ELSE m END AS y
              FROM (SELECT owsync._chat_author(m, owner) AS a) x) y
$$;

-- A chat's JSON as its owner's GET shows it: each message as
-- owsync._chat_export_message() makes it, and share_mode "continue".
CREATE FUNCTION owsync._chat_export_json(chat jsonb, owner text, authors jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT chat || jsonb_build_object('share_mode', 'continue')
           || CASE WHEN jsonb_typeof(chat #> '{history,messages}') = 'object' THEN
                   jsonb_build_object('history', (chat -> 'history') || jsonb_build_object('messages',
                       (SELECT coalesce(jsonb_object_agg(e.key, owsync._chat_export_message(e.value, owner, authors)), '{}')
                          FROM jsonb_each(chat #> '{history,messages}') e)))
                   ELSE '{}' END
           || CASE WHEN jsonb_typeof(chat -> 'messages') = 'array' THEN
                   jsonb_build_object('messages',
                       (SELECT coalesce(jsonb_agg(owsync._chat_export_message(e.value, owner, authors) ORDER BY e.n), '[]')
                          FROM jsonb_array_elements(chat -> 'messages') WITH ORDINALITY e(value, n)))
                   ELSE '{}' END
$$;

-- One chat of a client as it stood after the run owsync._as_of_run() gives
-- for as_of (NULL: as the mirror holds it now), in Open WebUI's chat export
-- format: a JSON array holding the chat (see above).  An error naming client,
-- chat and moment when the chat did not exist then.
CREATE FUNCTION owsync.chat_export(client text, chat_id text, as_of timestamptz DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    run bigint;
    finished timestamptz;
    c jsonb;			-- the chat row
    chat jsonb;
    owner text;
    authors jsonb;		-- {id: {id, name}} of user messages' authors
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._registered(client);
    IF as_of IS NOT NULL THEN
        SELECT r.run_id, r.finished_at INTO run, finished FROM owsync._as_of_run(client, as_of, NULL) r;
    END IF;
    SELECT r INTO c FROM owsync._rows_by_id_as_of(client, 'chat', ARRAY[chat_id], run) r;
    IF c IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = CASE WHEN as_of IS NULL THEN format('client %L has no chat %L', client, chat_id)
                           ELSE format('client %L had no chat %L as of %s', client, chat_id, as_of) END,
            DETAIL = CASE WHEN as_of IS NULL THEN 'Its mirror holds no chat of that id now.'
                          ELSE format('As of then, its mirror stood as run %s left it, which finished at %s.',
                                      run, finished) END,
            HINT = format('owsync.row_versions(%L, %L, %L) lists when the chat existed and what it was.',
                          client, 'chat', jsonb_build_object('id', chat_id));
    END IF;
    owner := c ->> 'user_id';
    chat := CASE WHEN jsonb_typeof(c -> 'chat') = 'object' THEN c -> 'chat' ELSE '{}' END;
    -- authors named by their messages, then the others by table user as of then
    SELECT coalesce(jsonb_object_agg(a, jsonb_build_object('id', a, 'name', m #> '{user,name}')), '{}') INTO authors
      FROM owsync._chat_messages(chat) m CROSS JOIN LATERAL owsync._chat_author(m, owner) a
     WHERE m ->> 'role' = 'user' AND m #>> '{user,id}' = a AND coalesce(m #>> '{user,name}', '') <> '';
    SELECT authors || coalesce(jsonb_object_agg(u ->> 'id', jsonb_build_object('id', u -> 'id', 'name', u -> 'name')), '{}')
      INTO authors
      FROM owsync._rows_by_id_as_of(client, 'user',
                                    ARRAY(SELECT DISTINCT owsync._chat_author(m, owner) FROM owsync._chat_messages(chat) m
                                           WHERE m ->> 'role' = 'user'
                                             AND NOT authors ? owsync._chat_author(m, owner)), run) u;
    RETURN jsonb_build_array(jsonb_build_object(
        'id', c -> 'id', 'user_id', c -> 'user_id', 'title', c -> 'title',
        'chat', owsync._chat_export_json(chat, owner, authors),
        'updated_at', c -> 'updated_at', 'created_at', c -> 'created_at', 'share_id', c -> 'share_id',
        'archived', CASE jsonb_typeof(c -> 'archived') WHEN 'boolean' THEN c -> 'archived'
                        WHEN 'number' THEN to_jsonb((c ->> 'archived')::numeric <> 0) ELSE 'false' END,
        'pinned', CASE jsonb_typeof(c -> 'pinned') WHEN 'boolean' THEN c -> 'pinned'
                       WHEN 'number' THEN to_jsonb((c ->> 'pinned')::numeric <> 0) END,
        'meta', CASE WHEN jsonb_typeof(c -> 'meta') = 'object' THEN c -> 'meta' ELSE '{}' END,
        'variables', CASE WHEN jsonb_typeof(c -> 'variables') = 'object' THEN c -> 'variables' ELSE '{}' END,
        'folder_id', c -> 'folder_id',
        'tasks', CASE WHEN jsonb_typeof(c -> 'tasks') = 'array' THEN c -> 'tasks' END,
        'summary', c -> 'summary', 'current_message_id', c -> 'current_message_id',
        'context_usage', NULL));
END
$$;

COMMENT ON FUNCTION owsync.chat_export IS 'one chat of a client as it stood at a moment of its window (as_of NULL: now), in Open WebUI''s chat export format, which its chat import accepts: [ {id, user_id, title, chat: {history: {messages, currentId}, ...}, ...} ]';
