#!/usr/bin/env bash
# The real Open WebUI as owsync's test client, end to end:
#
#   bash test/run-tests.sh --only openwebui      # builds and installs owsync, then runs this
#   bash test/openwebui/run.sh [SCENARIO...]      # owsync_fdw already installed for $PG_CONFIG
#
# Open WebUI is installed from the Python package index into cached virtual environments
# (test/openwebui/lib.sh: owui_venv), started offline in network namespaces of its own, and
# written to through its own HTTP API (drive.py; legacy_drive.py for 0.8.x), its chats answered
# by a fake model server that streams canned tokens.  One PostgreSQL cluster (cluster "pg",
# database owsync, pg_cron) holds owsync.  Scenarios (all by default):
#   wal, delete  Open WebUI 0.12.4 in WAL / rollback-journal mode, populated, then writing (a
#                user chatting, every reply streamed) while owsync registers it on the realtime
#                tier and pg_cron syncs it; none of its writes fails; after a last sync the
#                mirror equals the file (test/fleet/compare_hub.py, without owsync); restored
#                into a new file that a second Open WebUI boots from without migrating, whose
#                users log in with their passwords and whose API shows the same data.  One chat,
#                deleted by its owner and synced, comes back: owsync.chat_export as of before the
#                deletion gives the file Open WebUI's Export chat (.json) saved, and Open WebUI's
#                import takes it back with its title and messages.
#   pg           Open WebUI 0.12.4 on PostgreSQL (DATABASE_URL), written to SQLite with
#                owsync.restore_from_schema; Open WebUI boots on it and shows the same data.
#   upgrade      a webui.db made by Open WebUI 0.8.12 (rollback journal) synced, upgraded in
#                place by 0.12.4 (its migrations), synced again without operator action, the
#                mirror equal to the file but for what owsync keeps of what the upgrade
#                dropped, which the restore report names; the restore boots 0.12.4.
# Each check prints "ok - NAME" or "not ok - NAME"; the last line is "openwebui: N ok, N not ok".
# Waits poll a condition with a deadline, never a fixed time.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/openwebui/lib.sh
. test/fleet/harness.sh
. test/openwebui/legacy.sh

VERSION=0.12.4
D=/tmp/owsync_regress/openwebui        # the data directories, restores and records
DRIVE=$OWUI_LIB_DIR/drive.py           # the API driver of 0.12.x (legacy_drive.py: of 0.8.x too)
export PATH=$LEGACY_PATH               # a python3 the owsync_owui user can run, first
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(wal delete pg upgrade)

owsync_on_exit() {
  owui_stop_all
  echo "openwebui: $FLEET_PASS ok, $FLEET_FAIL not ok ($(( $(date +%s) - FLEET_T0 )) s)"
}
owsync_workdir
owsync_test_dir /tmp/owsync_regress
rm -rf "$D"; mkdir -p -m 0777 "$D"
owui_user    # before the cluster starts: its processes need the group that can read webui.db
owsync_cluster_start_named pg "$FLEET_DB" "owsync.allowed_directories = '$D'"
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(conninfo pg postgres)" -c "CREATE DATABASE $FLEET_DB"
q pg "CREATE EXTENSION pg_cron; CREATE EXTENSION owsync_fdw" >/dev/null

# ------------------------------------------------------------------ steps used by scenarios
# start NAME VERSION DATADIR PORT MODE [VAR=VALUE...]: owui_start in this shell (the instance's
# processes and bookkeeping are this shell's), its progress in $D/starts.log; a start that fails
# ends the test
start() {
  owui_start "$@" >>"$D/starts.log" 2>&1
  note "$(grep "owui_start: $1 ready" "$D/starts.log" | tail -n 1)"
}
drive() { owui_exec "$1" python3 "${DRIVER:-$DRIVE}" "$(owui_url "$1")" "${@:2}"; }
# same_json A B: two API dumps are equal (a diff of their first lines otherwise)
same_json() {
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
if a != b:
    import difflib
    la, lb = (json.dumps(x, indent=1, sort_keys=True).splitlines() for x in (a, b))
    sys.stdout.writelines(l + '\n' for l in list(difflib.unified_diff(la, lb, 'a', 'b', lineterm=''))[:60])
    sys.exit(1)
PY
}
# schema_of FILE: sqlite_master and the alembic revision, read without leaving files behind
schema_of() {
  python3 - "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect('file:%s?mode=ro' % sys.argv[1], uri=True)
for r in db.execute('SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid'):
    print(r)
print('alembic', db.execute('SELECT version_num FROM alembic_version').fetchall())
PY
}
compare_mirror() {  # CLIENT FILE [--kept X]...: the mirror holds exactly the rows of FILE
  python3 test/fleet/compare_hub.py --hub "$(conninfo pg)" --schema "$1" "$2" "${@:3}"
}
last_run_ok() {  # CLIENT: its last run succeeded
  [ "$(q pg "SELECT status FROM owsync.run WHERE client = '$1' ORDER BY run_id DESC LIMIT 1")" = succeeded ] ||
    q pg "SELECT run_id, mode, status, error FROM owsync.run WHERE client = '$1' ORDER BY run_id DESC LIMIT 3"
}
# restore_to CLIENT DIR: the client's mirror restored as DIR/webui.db; the report in DIR.report
restore_to() {
  mkdir -p -m 0777 "$2"
  q pg "CALL owsync.restore('$1', '$2/webui.db')" >"$2.report"
}
# boot_restored NAME MODE DIR DUMP USERS [VAR=VALUE...]: Open WebUI started on the restored
# DIR/webui.db runs no migration (schema and revision as restored), its users log in, its API
# (read by $DRIVER, default drive.py) shows DUMP
boot_restored() {
  local name=$1 mode=$2 dir=$3 want=$4 users=$5; shift 5
  schema_of "$dir/webui.db" >"$dir.schema-restored"
  start "$name" "$VERSION" "$dir" 18400 "$mode" "$@"
  check "$name: no migration ran (sqlite_master and alembic revision as restored)" \
    diff "$dir.schema-restored" <(schema_of "$dir/webui.db")
  check "$name: every user logs in with its password" drive "$name" login-check "$users"
  drive "$name" dump "$users" "$dir.dump.json" >/dev/null 2>&1 || true
  check "$name: the API shows the same users, chats, messages, titles, tags, folders, notes and channels" \
    same_json "$want" "$dir.dump.json"
  owui_stop "$name"
}

# export_chat CLIENT CHAT_ID AT FILE: owsync.chat_export of the chat as of AT, into FILE
export_chat() {
  q pg "SELECT owsync.chat_export('$1', '$2', '$3')" >"$4"
}
# chat_gone CLIENT CHAT_ID: chat_export without a moment refuses the chat, as not there (P0002)
chat_gone() {
  q_err pg "SELECT owsync.chat_export('$1', '$2')" | grep 'P0002'
}
# same_export OWUI OWSYNC: Open WebUI's export file and owsync's are equal as JSON, but for
# context_usage (an estimate Open WebUI computes when it reads a chat; owsync gives null)
same_export() {
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = ([{k: v for k, v in c.items() if k != 'context_usage'} for c in json.load(open(p))]
        for p in sys.argv[1:])
if a != b:
    import difflib
    la, lb = (json.dumps(x, indent=1, sort_keys=True).splitlines() for x in (a, b))
    sys.stdout.writelines(l + '\n' for l in list(difflib.unified_diff(la, lb, 'open-webui', 'owsync', lineterm=''))[:60])
    sys.exit(1)
PY
}
# same_chat EXPORT IMPORTED: the one chat imported is a new chat of the same owner with the
# exported chat's title, messages (history.messages), current message, pin and tags.  The
# import names the importing user (here the owner) as every message's user_id (routers/chats.py
# set_message_authors); the owner's export names it on user messages only.
same_chat() {
  python3 - "$1" "$2" <<'PY'
import json, sys
[a], b = (json.load(open(p)) for p in sys.argv[1:])
if len(b) != 1:
    sys.exit(f'{len(b)} chats imported, not 1')
b = b[0]
ha, hb = (c['chat'].get('history') or {} for c in (a, b))
want = {k: dict(m, user_id=b['user_id']) for k, m in (ha.get('messages') or {}).items()}
bad = [what for what, same in (('a new id', a['id'] != b['id']), ('owner', a['user_id'] == b['user_id']),
                               ('title', a['title'] == b['title']), ('pin', a['pinned'] == b['pinned']),
                               ('tags', (a['meta'] or {}).get('tags') == (b['meta'] or {}).get('tags')),
                               ('messages', want == hb.get('messages')),
                               ('current message', ha.get('currentId') == hb.get('currentId'))) if not same]
print(f"{a['title']!r}, {len(ha.get('messages') or {})} messages: {', '.join(bad) or 'equal'}")
if bad:
    import difflib
    la, lb = (json.dumps(h, indent=1, sort_keys=True).splitlines() for h in (want, hb.get('messages')))
    sys.stdout.writelines(l + '\n' for l in list(difflib.unified_diff(la, lb, 'exported', 'imported', lineterm=''))[:60])
    sys.exit(1)
PY
}
# chat_back MODE NAME CLIENT DIR: Alice's renamed, pinned and tagged chat, deleted by her through
# the API and synced, comes back: owsync.chat_export as of before the deletion gives what Open
# WebUI's Export chat (.json) saved then, and Open WebUI's import takes it back
chat_back() {
  local mode=$1 name=$2 c=$3 users=$4/users.json d=$4/chat id at
  mkdir -p "$d"
  id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["chats"]["alice-chat0"]["id"])' "$users")
  at=$(q pg "SELECT now()")
  check "$mode: a chat as Open WebUI's Export chat (.json) saves it (Alice's, renamed, pinned, tagged)" \
    drive "$name" chat-get "$users" alice "$id" "$d/open-webui.json"
  check "$mode: owsync.chat_export of the chat as of now" export_chat "$c" "$id" "$at" "$d/before.json"
  check "$mode: owsync's export equals Open WebUI's (but for context_usage, a reading's estimate)" \
    same_export "$d/open-webui.json" "$d/before.json"
  check "$mode: Alice deletes the chat through the API" drive "$name" chat-delete "$users" alice "$id"
  check "$mode: synced after the deletion" q pg "CALL owsync.sync('$c')"
  check "$mode: the chat is gone: chat_export without a moment says so (no_data_found)" chat_gone "$c" "$id"
  check "$mode: chat_export as of before the deletion gives the same export again (from kept versions)" \
    export_chat "$c" "$id" "$at" "$d/after.json"
  check "$mode: ... equal to the one taken before" same_json "$d/before.json" "$d/after.json"
  check "$mode: Alice imports it through Open WebUI's import (as Settings > Chats > Import)" \
    drive "$name" chat-import "$users" alice "$d/after.json" "$d/imported.json"
  check "$mode: read back through the API: a new chat with the original's title, messages, pin and tags" \
    same_chat "$d/open-webui.json" "$d/imported.json"
}

# ------------------------------------------------------------------ scenarios
live() {  # MODE: Open WebUI writing while owsync registers it on the realtime tier
  local mode=$1 name=live-$1 c=owui_$1 dir=$D/$1 reg
  mkdir -p "$dir"
  # an empty data directory; the first instance traced: every connection it makes is listed
  OWUI_STRACE=$([ "$mode" = wal ] && echo 1 || echo 0) start "$name" "$VERSION" "$dir/data" 18300 "$mode"
  check "$mode: populated through the API (users, chats with streamed replies, title, pin, archive, tags, folder, notes, channels, a file, deletions)" \
    drive "$name" populate "$dir/users.json"
  check "$mode: Open WebUI created webui.db in $mode mode" \
    test "$(legacy_journal "$dir/data/webui.db")" = "$mode"
  drive "$name" writer "$dir/users.json" --stop-file "$dir/stop" --out "$dir/writer.json" \
    >"$dir/writer.log" 2>&1 &
  local writer=$! rc=0
  reg=$(date -u +%FT%T.%NZ)
  check "$mode: registered on the realtime tier while Open WebUI writes" \
    q pg "SELECT count(*) FROM owsync.register_client('$c', '$dir/data/webui.db', 'realtime')"
  check "$mode: pg_cron synced it twice (two scheduled runs succeeded, a minute apart) while Open WebUI wrote" \
    wait_until 210 is_true pg "SELECT count(*) >= 2 FROM owsync.run WHERE client = '$c' AND scheduled
                                  AND status = 'succeeded' AND started_at > '$reg'"
  touch "$dir/stop"
  wait "$writer" || rc=$?
  check "$mode: none of Open WebUI's writes failed while owsync synced it ($(tail -n 1 "$dir/writer.log"))" \
    test "$rc" -eq 0
  q pg "SELECT owsync.set_schedule('$c', 'manual')" >/dev/null
  check "$mode: a last sync after the writes stopped" q pg "CALL owsync.sync('$c')"
  check "$mode: the mirror equals the file, every row of every table (compare_hub.py)" \
    compare_mirror "$c" "$dir/data/webui.db"
  check "$mode: the original's API view" drive "$name" dump "$dir/users.json" "$dir/dump.json"
  check "$mode: restored into a new file" restore_to "$c" "$dir/restored"
  chat_back "$mode" "$name" "$c" "$dir"
  if [ "$mode" = wal ]; then
    check "wal: Open WebUI connected to nothing but loopback and unix sockets (strace of its whole run)" \
      test -z "$(owui_calls_out "$name")"
  fi
  owui_stop "$name"
  boot_restored "restored-$mode" "$mode" "$dir/restored" "$dir/dump.json" "$dir/users.json"
}

on_postgres() {  # Open WebUI on PostgreSQL, back to SQLite with restore_from_schema
  local name=live-pg dir=$D/pg
  mkdir -p "$dir"
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(conninfo pg postgres)" \
    -c "CREATE ROLE owui LOGIN" -c "CREATE DATABASE owui OWNER owui"
  start "$name" "$VERSION" "$dir/data" 18300 "pg:postgresql://owui@/owui?host=$OWSYNC_WORK/pg&port=${OWSYNC_PORT[pg]}"
  check "pg: populated through the API" drive "$name" populate "$dir/users.json"
  check "pg: the API view on PostgreSQL" drive "$name" dump "$dir/users.json" "$dir/dump.json"
  owui_stop "$name"
  mkdir -p -m 0777 "$dir/restored"
  check "pg: Open WebUI's schema written to SQLite (restore_from_schema)" \
    "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$(conninfo pg owui)" \
      -c "CREATE EXTENSION IF NOT EXISTS owsync_fdw" \
      -c "CALL owsync.restore_from_schema('public', '$dir/restored/webui.db')"
  boot_restored restored-pg wal "$dir/restored" "$dir/dump.json" "$dir/users.json"
}

upgrade() {  # 0.8.12's file synced, upgraded in place by 0.12.4, synced, restored
  local dir=$D/upgrade c=owui_upgrade kept
  legacy_make "$dir" "$LEGACY_OLD" >>"$D/starts.log" 2>&1 || owsync_die "legacy_make failed ($D/starts.log)"
  check "upgrade: registered ($LEGACY_OLD's file, rollback journal)" \
    q pg "SELECT count(*) FROM owsync.register_client('$c', '$dir/data/webui.db')"
  check "upgrade: the mirror equals $LEGACY_OLD's file" compare_mirror "$c" "$dir/data/webui.db"
  start up-new "$VERSION" "$dir/data" 18300 wal "${LEGACY_ENV[@]}"   # its migrations run
  check "upgrade: users log in on $VERSION" \
    owui_exec up-new python3 "$LEGACY_DIR/legacy_drive.py" "$(owui_url up-new)" login-check "$dir/users.json"
  check "upgrade: the API view on $VERSION" \
    owui_exec up-new python3 "$LEGACY_DIR/legacy_drive.py" "$(owui_url up-new)" dump "$dir/users.json" "$dir/dump-new.json"
  check "upgrade: synced after the upgrade, with Open WebUI running, without operator action" \
    q pg "CALL owsync.sync('$c')"
  check "upgrade: that run succeeded" last_run_ok "$c"
  note "$(q pg "SELECT array_to_string(warnings, '; ') FROM owsync.run WHERE client = '$c' ORDER BY run_id DESC LIMIT 1")"
  owui_stop up-new
  check "upgrade: the last sync after Open WebUI stopped" q pg "CALL owsync.sync('$c')"
  check "upgrade: restored after the upgrade" restore_to "$c" "$dir/restored"
  kept=$(python3 -c 'import json, sys
r = json.loads(open(sys.argv[1]).read())
print(" ".join(["--kept=" + t for t in r["left_out_tables"]] +
               ["--kept=%s.%s" % (t, c) for t, cs in r["left_out_columns"].items() for c in cs]))' "$dir/restored.report")
  note "restore report: left out $kept"
  # shellcheck disable=SC2086
  check "upgrade: the mirror equals the upgraded file, but for what the restore report says it left out" \
    compare_mirror "$c" "$dir/data/webui.db" $kept
  check "upgrade: the restored file has the upgraded file's schema" \
    diff <(schema_of "$dir/data/webui.db") <(schema_of "$dir/restored/webui.db")
  DRIVER=$LEGACY_DIR/legacy_drive.py boot_restored restored-up wal "$dir/restored" "$dir/dump-new.json" \
    "$dir/users.json" "${LEGACY_ENV[@]}"
}

for s in "${scenarios[@]}"; do
  case $s in
    wal|delete) live "$s" ;;
    pg) on_postgres ;;
    upgrade) upgrade ;;
    *) owsync_die "unknown scenario $s (wal, delete, pg, upgrade)" ;;
  esac
done
[ "$FLEET_FAIL" -eq 0 ]
