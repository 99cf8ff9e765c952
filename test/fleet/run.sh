#!/usr/bin/env bash
# The fleet test: two edges (PostgreSQL 15 + owsync_fdw + pg_cron) and a hub (a PostgreSQL
# without owsync_fdw) on one machine, each on its own unix socket, joined by logical
# replication through owsync's fleet calls.  Each scenario prints "ok - NAME" or
# "not ok - NAME" (with what failed as "#" lines); the last line is "fleet: N ok, N not ok".
# A hub copy is always compared with its SQLite source by test/fleet/compare_hub.py, which
# reads both without owsync.  Waits poll a condition with a deadline, never a fixed time; the
# one wait for pg_cron's minute is the drift scenario's (the owsync-fleet pg_cron job alone).
#
#   bash test/run-tests.sh --only fleet     # builds and installs owsync, then runs this
#   bash test/fleet/run.sh                  # owsync_fdw already installed for $PG_CONFIG
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
. test/fleet/harness.sh

LISTENER=""
owsync_on_exit() {
  [ -z "$LISTENER" ] || kill "$LISTENER" 2>/dev/null || true
  if [ "$1" -ne 0 ]; then fleet_logs; fi
  if [ -n "${OWSYNC_FLEET_LOGS:-}" ]; then   # keep the server logs
    mkdir -p "$OWSYNC_FLEET_LOGS"
    for n in edge1 edge2 edge3 hub; do cp "$OWSYNC_WORK/$n/server.log" "$OWSYNC_FLEET_LOGS/$n.log" 2>/dev/null || true; done
    cp "$OWSYNC_WORK/hub/collector.log" "$OWSYNC_FLEET_LOGS/hub-collector.log" 2>/dev/null || true
  fi
  echo "fleet: $FLEET_PASS ok, $FLEET_FAIL not ok ($(( $(date +%s) - FLEET_T0 )) s)"
}
owsync_workdir

F=$FLEET_FILES
A=alpha_example_com B=bravo_example_com C=charlie_example_com D=delta_example_com
MUTATIONS=$OWSYNC_ROOT/test/fixtures/mutations.sql
COMPARE_SQLITE="python3 $OWSYNC_ROOT/test/compare_sqlite.py"
FLEET_JOB_NAME=owsync-fleet                      # the fleet's pg_cron job (cron.job j)
FLEET_JOB="j.jobname = '$FLEET_JOB_NAME' AND j.command LIKE '%owsync.fleet_tick()%'"

# ------------------------------------------------------------------ steps used by scenarios
register() {  # EDGE CLIENT FILE [OPTIONS]: register a client (its first sync included)
  local options=${4:-'{}'}
  step "register_client('$2') at $1" q "$1" "SELECT count(*) FROM owsync.register_client('$2', '$3', options => '$options')"
}
tick() { local e; for e in "$@"; do step "fleet_tick() at $e" q "$e" "CALL owsync.fleet_tick()"; done; }
sync() {  # EDGE CLIENT [MODE]
  step "sync('$2', '${3:-reconcile}') at $1" q "$1" "CALL owsync.sync('$2', '${3:-reconcile}')"
}
at() { step "at $1: $2" q "$@"; }   # NODE SQL...: a statement that is a step
# edits FILE TAG: what Open WebUI does to a file between runs: inserts, an edit that bumps
# updated_at, a silent edit (no updated_at change), deletes (TAG keeps keys unique per round)
edits() {
  step "edits $2 in $1" sqlite "$1" "
    INSERT INTO chat (id, user_id, title, archived, created_at, updated_at, chat, meta)
      SELECT 'chat-$2', user_id, 'new in $2 ☃', 0, 1760000000, (SELECT max(updated_at) FROM chat) + 1, '{\"messages\": [], \"n\": 1.50}', 'null' FROM chat LIMIT 1;
    INSERT INTO chat_message (id, chat_id, role, content, created_at, updated_at)
      SELECT 'cm-$2-' || rowid, chat_id, role, content, created_at, (SELECT max(updated_at) FROM chat_message) + 1 FROM chat_message LIMIT 5;
    UPDATE chat SET title = 'bumped $2', updated_at = (SELECT max(updated_at) FROM chat) + 2
     WHERE id = (SELECT id FROM chat ORDER BY id LIMIT 1 OFFSET 3);
    UPDATE chat SET title = 'silent $2' WHERE id = (SELECT id FROM chat ORDER BY id LIMIT 1 OFFSET 4);
    UPDATE tag SET name = name || ' $2' WHERE rowid = (SELECT max(rowid) FROM tag);
    DELETE FROM chat_message WHERE id = (SELECT id FROM chat_message ORDER BY id LIMIT 1 OFFSET 2);
    DELETE FROM memory WHERE rowid = (SELECT min(rowid) FROM memory);"
  if [ "$(sqlite3 "$1" "SELECT count(*) FROM sqlite_master WHERE name = 'event_log'")" = 1 ]; then
    step "edits $2 in $1's keyless table" sqlite "$1" "
      INSERT INTO event_log VALUES ('$2', '{\"round\": \"$2\"}', 3), ('$2', '{\"round\": \"$2\"}', 3);
      DELETE FROM event_log WHERE rowid = (SELECT min(rowid) FROM event_log);"
  fi
}
# bulk FILE TAG N: N new chat messages in one commit (a run that streams for a while)
bulk() {
  step "bulk $2 in $1" sqlite "$1" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $3)
    INSERT INTO chat_message (id, chat_id, role, content, created_at, updated_at)
    SELECT 'bulk-$2-' || i, 'chat-bulk', 'user', '\"' || hex(randomblob(200)) || '\"', 1700000000,
           (SELECT max(updated_at) FROM chat_message) + 5 FROM n"
}
# Each client's edge and SQLite file, as the scenarios move them.
ALPHA_T0=""                       # the end of alpha's last run before its drift
BRAVO_T0="" BRAVO_R1=""           # the end of a past run of bravo's, and the run after it
declare -A EDGE_OF=() FILE_OF=() KEPT_OF=()   # KEPT_OF: compare_hub.py --kept flags (tables the mirror keeps)
# hub_equal EDGE... : wait until the hub has applied each EDGE's WAL, then the hub's copy of
# every client of those edges equals its file
hub_equal() {
  local e c rc=0
  for e in "$@"; do wait_arrived "$e" || return 1; done
  for e in "$@"; do
    for c in $(clients_of "$e"); do
      echo "$c (${FILE_OF[$c]}):"
      # shellcheck disable=SC2086
      compare_hub "$c" "${FILE_OF[$c]}" ${KEPT_OF[$c]:-} || rc=1
    done
  done
  return "$rc"
}
clients_of() { local c; for c in "${!EDGE_OF[@]}"; do if [ "${EDGE_OF[$c]}" = "$1" ]; then echo "$c"; fi; done | sort; }
hub_start() { step "start the hub" hub_pgctl_start; }
hub_pgctl_start() { OWSYNC_PGBIN=$FLEET_HUB_BIN pgctl hub -l "$OWSYNC_WORK/hub/server.log" -w -t 60 start; }
hub_stop() { step "stop the hub" pgctl hub -m fast -w -t 60 stop; }
# fleet_problem CLIENT WORD...: the fleet's problem for CLIENT, in full (fleet_detail), says
# every WORD
fleet_problem() {
  local c=$1; shift
  "$PSQL" -X -d "$(conninfo hub)" -c "SELECT * FROM owsync_fleet.fleet ORDER BY client"
  contains_all "$(q hub "SELECT problem FROM owsync_fleet.fleet_detail WHERE client = '$c'")" "$@"
}
# fleet_width: the fleet view, as psql shows it, fits in 120 columns (characters, not bytes)
fleet_width() {
  local view width
  view=$("$PSQL" -X -d "$(conninfo hub)" -c "SELECT * FROM owsync_fleet.fleet ORDER BY client")
  echo "$view"
  width=$(python3 -c "import sys; print(max(len(l) for l in sys.stdin.read().splitlines()))" <<<"$view")
  [ "$width" -le 120 ] || { echo "the view is $width columns wide"; return 1; }
}
contains_all() {  # TEXT WORD...: TEXT (shown) contains every WORD
  local text=$1 w; shift
  echo "$text"
  for w in "$@"; do grep -qF -- "$w" <<<"$text" || { echo "(does not say '$w')"; return 1; }; done
}

# ------------------------------------------------------------------ the scenarios
s_setup() {
  fleet_setup
  check "the hub's PostgreSQL has no owsync_fdw to install" is_true hub \
    "SELECT count(*) = 0 FROM pg_available_extensions WHERE name = 'owsync_fdw'"
}

prepare() {  # EDGE: prepare_edge, its answer, calling it again, another name refused
  local r
  r=$(q "$1" "SELECT owsync.prepare_edge('$1')") || return 1
  echo "$r"
  [ "$(q "$1" "SELECT x->>'publication' = 'owsync_edge' AND x->>'replication_role' = 'owsync_replicator'
                      AND x->>'pg_hba' LIKE '%owsync_replicator%' AND x->>'edge' = '$1'
                 FROM (SELECT \$json\$$r\$json\$::jsonb AS x) s")" = t ] || { echo "unexpected answer"; return 1; }
  q "$1" "SELECT owsync.prepare_edge('$1')" >/dev/null || { echo "a second call failed"; return 1; }
  q_err "$1" "SELECT owsync.prepare_edge('other_name')" >/dev/null
}
attached() {  # EDGE: the hub has the edge, its subscription, and the edge its pg_cron job
  is_true hub "SELECT EXISTS (SELECT FROM owsync_fleet.edge WHERE edge = '$1')" \
    || { echo "no row for $1 in the hub's owsync_fleet.edge"; return 1; }
  is_true hub "SELECT EXISTS (SELECT FROM pg_subscription WHERE subname = 'owsync_$1')" \
    || { echo "no subscription owsync_$1 at the hub"; return 1; }
  is_true "$1" "SELECT EXISTS (SELECT FROM cron.job j WHERE $FLEET_JOB AND j.schedule = '* * * * *')" \
    || { echo "no pg_cron job $FLEET_JOB_NAME calling fleet_tick every minute at $1; its jobs: $(q "$1" "SELECT string_agg(jobname || ' (' || command || ')', ', ') FROM cron.job")"; return 1; }
}
attach() { q "$1" "CALL owsync.attach_hub('$(hub_conninfo)', '$(edge_conninfo "$1")')" && attached "$1"; }

s_attach() {
  # alpha is on edge1 before it becomes an edge; bravo and delta are registered once it is attached
  register edge1 "$A" "$F/edge1/alpha.db"; EDGE_OF[$A]=edge1 FILE_OF[$A]=$F/edge1/alpha.db
  check "prepare_edge on edge1 (again: no-op; another name: refused)" prepare edge1
  check "attach_hub on edge1" attach edge1
  register edge1 "$B" "$F/edge1/bravo.db"; EDGE_OF[$B]=edge1 FILE_OF[$B]=$F/edge1/bravo.db
  register edge1 "$D" "$F/edge1/delta.db"; EDGE_OF[$D]=edge1 FILE_OF[$D]=$F/edge1/delta.db
  # edge2 holds a client named like one of edge1's: its attach is refused, naming both edges
  register edge2 "$C" "$F/edge2/charlie.db" '{"reader_role": true}'
  EDGE_OF[$C]=edge2 FILE_OF[$C]=$F/edge2/charlie.db
  register edge2 "$A" "$F/edge2/clash.db"
  check "prepare_edge on edge2" prepare edge2
  check "attach_hub refused for a client name edge1 holds, naming both edges" attach_refused
  at edge2 "SELECT owsync.unregister_client('$A', drop_data => true)"
  check "attach_hub on edge2 once the name is gone" attach edge2
  tick edge1 edge2
  check "every client arrives at the hub equal to its source file" hub_equal edge1 edge2
  check "register_client refuses a name edge1 holds (duplicate_object), naming both edges" register_refused
  check "the fleet view: one line per client, with its edge" fleet_lines
  check "the fleet metrics view: one row per client" \
    is_true hub "SELECT count(*) = 4 AND count(DISTINCT client) = 4 FROM owsync_fleet.metrics"
  check "each edge's publication lists tables, no schema: every persistent table of its clients' schemas and its catalog copy" \
    published_by_table edge1 edge2
}
published_by_table() {  # EDGE...
  local e
  for e in "$@"; do
    q "$e" "SELECT (SELECT count(*) FROM pg_publication_namespace) AS schemas_listed, (SELECT count(*) FROM pg_publication_rel) AS tables_listed"
    is_true "$e" "SELECT NOT EXISTS (SELECT FROM pg_publication_namespace)
                     AND ARRAY(SELECT prrelid FROM pg_publication_rel ORDER BY 1)
                         = ARRAY(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                  WHERE c.relkind = 'r' AND c.relpersistence = 'p'
                                    AND n.nspname IN (SELECT unnest(owsync._hub_schemas(client)) FROM owsync.client
                                                      UNION SELECT owsync._edge_schema(edge) FROM owsync.edge)
                                  ORDER BY 1)" || { echo "at $e"; return 1; }
  done
}
attach_refused() {
  contains_all "$(q_err edge2 "CALL owsync.attach_hub('$(hub_conninfo)', '$(edge_conninfo edge2)')")" edge1 edge2 "$A"
}
register_refused() {
  contains_all "$(q_err edge2 "SELECT owsync.register_client('$B', '$F/edge2/clash.db')")" 42710 edge1 edge2 "$B" &&
  is_true edge2 "SELECT NOT EXISTS (SELECT FROM owsync.client WHERE client = '$B')"
}
fleet_lines() {
  local want got c
  want=$(for c in $(printf '%s\n' "${!EDGE_OF[@]}" | sort); do echo "$c|${EDGE_OF[$c]}"; done)
  got=$(q hub "SELECT client, edge FROM owsync_fleet.fleet ORDER BY client")
  "$PSQL" -X -d "$(conninfo hub)" -c "SELECT * FROM owsync_fleet.fleet ORDER BY client"
  [ "$want" = "$got" ] || { printf 'want:\n%s\ngot:\n%s\n' "$want" "$got"; return 1; }
}
catalogs() {  # the newest run at the hub is the edge's; runs since attach: edge_no * 10^12 on
  local e n mx
  for e in edge1 edge2; do
    n=$(q hub "SELECT edge_no FROM owsync_fleet.edge WHERE edge = '$e'")
    mx=$(q "$e" "SELECT max(run_id) FROM owsync.run")
    echo "$e: edge_no $n, newest run $mx, at the hub $(q hub "SELECT max(run_id) FROM owsync_edge_$e.run")"
    is_true hub "SELECT max(run_id) = $mx FROM owsync_edge_$e.run" || return 1
    [ "$mx" -ge $((n * 1000000000000)) ] && [ "$mx" -lt $(((n + 1) * 1000000000000)) ] || return 1
  done
}

s_changes() {
  local c
  for c in "$A" "$B" "$C" "$D"; do step "mutations.sql in $c" sqlite "${FILE_OF[$c]}" ".read $MUTATIONS"; edits "${FILE_OF[$c]}" r1; sync "${EDGE_OF[$c]}" "$c"; done
  tick edge1 edge2
  check "changes, deletes and silent edits at the sources arrive at the hub" hub_equal edge1 edge2
  check "each edge's catalog arrives; run ids since attach are unique across the fleet" catalogs
}

# ------------------------------------------------------------------ row versions at the hub
# versions_rows NODE CLIENT: one line per table of CLIENT's versions schema at NODE: its name,
# row count and an md5 of its rows
versions_rows() {
  q "$1" "SELECT c.relname || ' ' || (xpath('/row/n/text()', query_to_xml(format(
             'SELECT count(*) || '' '' || md5(coalesce(string_agg(x::text, E''\n'' ORDER BY x::text), '''')) AS n FROM %I.%I x',
             n.nspname, c.relname), false, true, '')))[1]::text
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'owsync_$2_versions' AND c.relkind = 'r' ORDER BY 1"
}
# versions_at_hub EDGE CLIENT: the hub holds CLIENT's versions tables, each with a primary key,
# and exactly the edge's rows, some of them
versions_at_hub() {
  local ours theirs
  wait_arrived "$1" || return 1
  ours=$(versions_rows "$1" "$2") theirs=$(versions_rows hub "$2")
  printf '%s:\n%s\nhub:\n%s\n' "$1" "$ours" "$theirs"
  [ -n "$ours" ] && [ "$ours" = "$theirs" ] || { echo "the hub's versions differ from the edge's"; return 1; }
  is_true hub "SELECT count(*) > 0 AND bool_and(EXISTS (SELECT FROM pg_constraint x WHERE x.conrelid = c.oid AND x.contype = 'p'))
                 FROM pg_class c WHERE c.relnamespace = 'owsync_$2_versions'::regnamespace AND c.relkind = 'r'" ||
    { echo "a versions table at the hub has no primary key"; return 1; }
  is_true hub "SELECT sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', 'owsync_$2_versions', c.relname),
                                                               false, true, '')))[1]::text::bigint) > 0
                 FROM pg_class c WHERE c.relnamespace = 'owsync_$2_versions'::regnamespace AND c.relkind = 'r'" ||
    { echo "no versions rows at the hub"; return 1; }
}
last_run() { q "$1" "SELECT max(run_id) FROM owsync.run WHERE client = '$2' AND status = 'succeeded'"; }
last_run_end() { q "$1" "SELECT finished_at FROM owsync.run WHERE run_id = $(last_run "$1" "$2")"; }
# from_hub NODE CLIENT OPTIONS SAVED: restore_from_hub at NODE with OPTIONS, identical to SAVED
from_hub() {
  local out=$F/$1/$2.from_hub.db report
  rm -f "$out"
  report=$(q "$1" "CALL owsync.restore_from_hub('$2', '$out', options => '$3')") || { echo "$report"; return 1; }
  echo "$report"
  $COMPARE_SQLITE "$4" "$out"
}
# refused_from_hub NODE CLIENT OPTIONS WORD...: restore_from_hub refuses OPTIONS, saying each WORD
refused_from_hub() {
  local n=$1 c=$2 o=$3; shift 3
  contains_all "$(q_err "$n" "CALL owsync.restore_from_hub('$c', '$F/$n/$c.refused.db', options => '$o')")" "$@"
}

s_versions() {
  local r1 t0 vf rp t
  # bravo (keyless tables too): its state after three runs, each saved with sqlite3 .backup
  step "a copy of bravo's file as of its last run" sqlite3 "$F/edge1/bravo.db" ".backup $F/saved/bravo.v0.db"
  t0=$(last_run_end edge1 "$B")
  edits "$F/edge1/bravo.db" v1; sync edge1 "$B"; r1=$(last_run edge1 "$B")
  BRAVO_T0=$t0 BRAVO_R1=$r1
  step "a copy of bravo's file as of run $r1" sqlite3 "$F/edge1/bravo.db" ".backup $F/saved/bravo.v1.db"
  edits "$F/edge1/bravo.db" v2; sync edge1 "$B"
  # alpha as of now, restored from the hub after its drift (new column, new table, a table retired)
  step "a copy of alpha's file as of its last run" sqlite3 "$F/edge1/alpha.db" ".backup $F/saved/alpha.v0.db"
  ALPHA_T0=$(last_run_end edge1 "$A")
  tick edge1 edge2
  check "the hub holds bravo's versions tables (with primary keys) and exactly edge1's rows" versions_at_hub edge1 "$B"
  check "the hub holds charlie's versions tables and exactly edge2's rows" versions_at_hub edge2 "$C"
  check "the hub holds the versions schema of each of edge1's clients" \
    is_true hub "SELECT count(*) = 3 FROM pg_namespace WHERE nspname IN ('owsync_${A}_versions', 'owsync_${B}_versions', 'owsync_${D}_versions')"
  check "charlie's reader role at the hub cannot read charlie's versions" \
    versions_withheld "${C}_reader" "$C"
  check "restore_from_hub (at edge2) of bravo as of the end of a past run: identical to the copy saved then" \
    from_hub edge2 "$B" "{\"as_of\": \"$t0\"}" "$F/saved/bravo.v0.db"
  check "restore_from_hub (at edge2) of bravo by run id: identical to the copy saved after that run" \
    from_hub edge2 "$B" "{\"run_id\": $r1}" "$F/saved/bravo.v1.db"
  check "restore_from_hub of bravo as it is now still equals its file" \
    from_hub edge1 "$B" '{}' "$F/edge1/bravo.db"
  check "restore_from_hub refuses an as-of with register" \
    refused_from_hub edge2 "$B" "{\"as_of\": \"$t0\", \"register\": true}" 0A000 register
  # delta's retention made short: a run purges its older versions, and the hub follows
  at edge1 "SELECT owsync.set_options('$D', '{\"versions_retention\": \"1 second\"}')"
  vf=$(q edge1 "SELECT versions_from FROM owsync.client WHERE client = '$D'") rp=$(last_run edge1 "$D")
  tick edge1
  check "before the purge the hub holds versions of delta kept by its runs up to $rp" \
    is_true hub "SELECT $(old_versions "$D" "$rp") > 0"
  for t in p1 p2; do edits "$F/edge1/delta.db" "$t"; sync edge1 "$D"; done
  check "a run of delta after its retention purges its versions up to run $rp at edge1" \
    wait_until 30 purged edge1 "$D" "$rp"
  check "the purge reaches the hub: its versions of delta are edge1's again (none up to run $rp), and so is versions_from" \
    purge_at_hub edge1 "$D" "$rp"
  check "restore_from_hub refuses an as-of before delta's window, saying the window" \
    refused_from_hub edge2 "$D" "{\"run_id\": $vf}" 22023 "older than its kept versions reach" "can be restored as it stood"
}
versions_withheld() {  # ROLE CLIENT: ROLE reads CLIENT's mirror at the hub, not its versions
  local t
  t=$(q hub "SELECT min(relname) FROM pg_class WHERE relnamespace = 'owsync_$2_versions'::regnamespace AND relkind = 'r'")
  [ -n "$t" ] || { echo "no versions table"; return 1; }
  q hub "SET ROLE $1; SELECT count(*) FROM $2.chat" &&
  q_err hub "SET ROLE $1; SELECT count(*) FROM owsync_$2_versions.$t" | grep "permission denied"
}
# old_versions CLIENT RUN: an expression counting CLIENT's kept versions of runs up to RUN
old_versions() {
  echo "(SELECT coalesce(sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I WHERE owsync_run <= $2',
                                                                        'owsync_$1_versions', c.relname), false, true, '')))[1]::text::bigint), 0)
           FROM pg_class c WHERE c.relnamespace = 'owsync_$1_versions'::regnamespace AND c.relkind = 'r')"
}
purged() {  # EDGE CLIENT RUN: a sync moved the client's versions_from to RUN or later
  q "$1" "CALL owsync.sync('$2')" >/dev/null &&
  is_true "$1" "SELECT versions_from >= $3 FROM owsync.client WHERE client = '$2'"
}
purge_at_hub() {  # EDGE CLIENT RUN
  versions_at_hub "$1" "$2" &&
  is_true hub "SELECT $(old_versions "$2" "$3") = 0" &&
  is_true hub "SELECT versions_from = $(q "$1" "SELECT versions_from FROM owsync.client WHERE client = '$2'")
                 FROM owsync_edge_$1.client WHERE client = '$2'"
}

s_security() {
  check "the hub's copies refuse writes by a normal session (even a superuser's)" hub_read_only
  check "the reader role at the hub reads its client's tables, not withheld ones nor other clients" hub_reader
  check "a non-superuser at the hub cannot read the subscription's conninfo" hub_conninfo_hidden
  check "a non-superuser at an edge cannot read the user mapping's password" edge_mapping_hidden
  check "the hub's password is kept only in the user mapping (not in the edge's catalog, status, server or job)" \
    password_only_in_mapping
  check "pg_hba: owsync_replicator's logical replication connection works" hba_logical
  check "pg_hba: owsync_replicator's physical replication connection is refused" \
    hba_refused "dbname=replication replication=true" IDENTIFY_SYSTEM "no pg_hba.conf entry for replication connection"
  check "pg_hba: owsync_replicator's connection to another database is refused" \
    hba_refused "dbname=postgres" "SELECT 1" "no pg_hba.conf entry for host"
}
hub_conninfo_hidden() {
  q hub "CREATE ROLE fleet_nobody" >/dev/null
  q_err hub "SET ROLE fleet_nobody; SELECT subconninfo FROM pg_subscription" | grep "permission denied" &&
  is_true hub "SELECT count(*) > 0 AND bool_and(row_to_json(e)::text NOT LIKE '%password%') FROM owsync_fleet.edge e"
}
hub_read_only() {
  local before s out
  before=$(q hub "SELECT count(*) FROM $C.tag")
  for s in "INSERT INTO $C.tag SELECT * FROM $C.tag LIMIT 1" "UPDATE $C.tag SET name = 'x'" \
           "DELETE FROM $C.tag" "TRUNCATE $C.tag" "DELETE FROM owsync_edge_edge2.run"; do
    out=$(q_err hub "$s") || { echo "$s: $out"; return 1; }
    contains_all "$s: $out" read-only >/dev/null || { echo "$s: $out (not refused as read-only)"; return 1; }
    echo "$s: $out"
  done
  [ "$(q hub "SELECT count(*) FROM $C.tag")" = "$before" ]
}
hub_reader() {
  local r=${C}_reader
  echo "chat rows read by $r: $(q hub "SET ROLE $r; SELECT count(*) FROM $C.chat")" &&
  q_err hub "SET ROLE $r; SELECT count(*) FROM $C.auth" | grep "permission denied" &&
  q_err hub "SET ROLE $r; SELECT count(*) FROM $C.api_key" | grep "permission denied" &&
  q_err hub "SET ROLE $r; SELECT count(*) FROM $A.chat" | grep "permission denied"
}
edge_mapping_hidden() {
  q edge2 "CREATE ROLE fleet_nobody" >/dev/null
  echo "as superuser: $(q edge2 "SELECT count(*) FROM pg_user_mappings WHERE array_to_string(umoptions, ',') LIKE '%password=%'") mapping(s) with a password"
  is_true edge2 "SELECT count(*) > 0 FROM pg_user_mappings WHERE array_to_string(umoptions, ',') LIKE '%password=%'" &&
  is_true edge2 "SET ROLE fleet_nobody; SELECT count(*) FILTER (WHERE umoptions IS NOT NULL) = 0 FROM pg_user_mappings" &&
  q_err edge2 "SET ROLE fleet_nobody; SELECT umoptions FROM pg_user_mapping" | grep "permission denied"
}
password_only_in_mapping() {
  local w="LIKE '%$FLEET_HUB_PASSWORD%'"
  is_true edge2 "SELECT NOT EXISTS (SELECT FROM owsync.edge x WHERE row_to_json(x)::text $w)
                    AND NOT EXISTS (SELECT FROM owsync.edge_status x WHERE row_to_json(x)::text $w)
                    AND NOT EXISTS (SELECT FROM pg_foreign_server x WHERE array_to_string(x.srvoptions, ',') $w)
                    AND NOT EXISTS (SELECT FROM cron.job x WHERE x.command $w)
                    AND EXISTS (SELECT FROM pg_user_mappings x WHERE array_to_string(x.umoptions, ',') $w)"
}
replicator_password() {  # the password the hub's subscription uses for edge2 (read as superuser)
  q hub "SELECT subconninfo FROM pg_subscription WHERE subname = 'owsync_edge2'" |
    python3 -c "import re, sys; m = re.search(r\"password\s*=\s*('((?:[^'\\\\]|\\\\.)*)'|\S+)\", sys.stdin.read()); print(m.group(2) if m.group(2) is not None else m.group(1))"
}
hba_logical() {
  local pw; pw=$(replicator_password)
  [ -n "$pw" ] || { echo "no password in the subscription's conninfo"; return 1; }
  PGPASSWORD=$pw "$PSQL" -X -At -d "$(edge_conninfo edge2) user=owsync_replicator replication=database" -c IDENTIFY_SYSTEM &&
  is_true hub "SELECT count(*) = 1 FROM pg_stat_subscription WHERE subname = 'owsync_edge2' AND relid IS NULL AND pid IS NOT NULL"
}
hba_refused() {  # CONNINFO_PART COMMAND MESSAGE: owsync_replicator, with its password, is refused
  local pw out; pw=$(replicator_password)
  if out=$(PGPASSWORD=$pw "$PSQL" -X -At -d "host=$OWSYNC_WORK/edge2 port=${OWSYNC_PORT[edge2]} user=owsync_replicator $1" -c "$2" 2>&1); then
    echo "connected: $out"; return 1
  fi
  contains_all "$out" "$3"
}

s_drift() {
  local t0 secs
  sqlite "$F/edge1/alpha.db" "
    ALTER TABLE chat ADD COLUMN pinned_order BIGINT;
    UPDATE chat SET pinned_order = 7 WHERE rowid = (SELECT min(rowid) FROM chat);
    CREATE TABLE skill_usage (id TEXT NOT NULL, skill_id TEXT NOT NULL, data JSON,
                              created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (id));
    INSERT INTO skill_usage VALUES ('su1', 's1', '{\"runs\": 3}', 1760000000, 1760000000),
                                   ('su2', 's2', NULL, 1760000001, 1760000001);
    ALTER TABLE config RENAME TO config_v1;
    CREATE TABLE config (name TEXT NOT NULL, value JSON NOT NULL, updated_at BIGINT, PRIMARY KEY (name));
    INSERT INTO config SELECT 'v2.' || \"key\", value, updated_at FROM config_v1;"
  edits "$F/edge1/alpha.db" drift
  t0=$(date +%s)
  sync edge1 "$A" incremental
  check "the drifted run made the hub's tables match before it committed (new column, new table, config replaced by one with another key: the hub's former config renamed as the edge kept it)" drift_ready
  KEPT_OF[$A]="--kept=$(retired_config)"
  check "the rows with the new column arrive without a tick (the apply worker did not stall)" \
    wait_until 30 is_true hub "SELECT count(*) = 1 FROM $A.chat WHERE pinned_order = 7"
  # no fleet_tick by hand: the fleet's pg_cron job must bring the new table
  check "drift at edge1 (new column, new table) reaches the hub by the $FLEET_JOB_NAME pg_cron job alone, within 2 minutes" \
    wait_until 120 alpha_at_hub "$F/edge1/alpha.db"
  secs=$(( $(date +%s) - t0 ))
  note "drift arrived ${secs} s after the run"
  check "the $FLEET_JOB_NAME job ran at edge1 after the drifted run, and succeeded" fleet_job_ran "$t0"
  check "the other clients are intact after the drift" hub_equal edge1 edge2
  check "restore_from_hub of alpha as of before its drift: identical to the copy saved then (without the new column and table, with the former config)" \
    from_hub edge2 "$A" "{\"as_of\": \"$ALPHA_T0\"}" "$F/saved/alpha.v0.db"
}

fleet_job_ran() {  # SINCE (epoch): runs of the job since then, one succeeded
  # shown on failure: edge1's pg_cron runs from 3 minutes before, and what its sessions wait for
  q edge1 "SELECT j.jobname, d.status, d.start_time, d.end_time, d.return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid)
            WHERE d.start_time >= to_timestamp($1) - interval '3 minutes' ORDER BY d.start_time" \
          "SELECT pid, backend_type, state, wait_event_type, wait_event, now() - xact_start, left(query, 80)
             FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND (state IS DISTINCT FROM 'idle' OR backend_type <> 'client backend')"
  is_true edge1 "SELECT count(*) > 0 FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                  WHERE $FLEET_JOB AND d.status = 'succeeded' AND d.start_time >= to_timestamp($1)"
}
drift_ready() {
  local kept; kept=$(retired_config)
  [ -n "$kept" ] && echo "edge1 kept the former config as $kept" &&
  is_true hub "SELECT EXISTS (SELECT FROM information_schema.columns
                               WHERE table_schema = '$A' AND table_name = 'chat' AND column_name = 'pinned_order')
                  AND to_regclass('$A.skill_usage') IS NOT NULL AND to_regclass('$A.$kept') IS NOT NULL
                  AND EXISTS (SELECT FROM information_schema.columns
                               WHERE table_schema = '$A' AND table_name = 'config' AND column_name = 'name')"
}
retired_config() {  # the name edge1 keeps alpha's former config under (_retire_table)
  q edge1 "SELECT relname FROM pg_class WHERE relnamespace = '$A'::regnamespace AND relname LIKE 'config\_before\_%'"
}
# alpha's copy at the hub equals its file, but for the former config the hub keeps as the edge does
alpha_at_hub() { wait_arrived edge1 5 && compare_hub "$A" "$1" ${KEPT_OF[$A]}; }

# While $OWSYNC_WORK/kill.stop is missing, every 0.1 s: kill edge1's walsender, and the hub's
# apply worker of edge2's subscription, when the hub has not confirmed all of that edge's WAL
# (a run on its way); each kill done so is a line "killed" in kill.<edge>.
kill_walsender_edge1() {
  while [ ! -e "$OWSYNC_WORK/kill.stop" ]; do
    q edge1 "SELECT 'killed' FROM pg_replication_slots WHERE slot_name = 'owsync_edge1' AND active_pid IS NOT NULL
               AND confirmed_flush_lsn < pg_current_wal_lsn() AND pg_terminate_backend(active_pid)" 2>/dev/null || true
    sleep 0.1
  done >>"$OWSYNC_WORK/kill.edge1"
}
kill_apply_worker_edge2() {
  while [ ! -e "$OWSYNC_WORK/kill.stop" ]; do
    if is_true edge2 "SELECT confirmed_flush_lsn < pg_current_wal_lsn() FROM pg_replication_slots WHERE slot_name = 'owsync_edge2'" 2>/dev/null; then
      q hub "SELECT 'killed' FROM pg_stat_subscription WHERE subname = 'owsync_edge2' AND relid IS NULL AND pid IS NOT NULL
               AND pg_terminate_backend(pid)" 2>/dev/null || true
    fi
    sleep 0.1
  done >>"$OWSYNC_WORK/kill.edge2"
}
kills() { cat "$OWSYNC_WORK/kill.$1" 2>/dev/null | grep -c killed || true; }
killed_both() { [ "$(kills edge1)" -gt 0 ] && [ "$(kills edge2)" -gt 0 ]; }

# An apply error at the hub: a row written there behind the apply worker's back (a superuser
# with session_replication_role = replica, which the read-only triggers cannot stop) collides
# with the edge's next insert.  The fleet names the table and the error; once the row is gone the
# apply goes on and nothing is lost.
s_apply_error() {
  q hub "SET session_replication_role = replica;
         INSERT INTO $A.skill_usage (id, skill_id, created_at, updated_at) VALUES ('su3', 'hub', 1, 1)" >/dev/null
  sqlite "$F/edge1/alpha.db" "INSERT INTO skill_usage VALUES ('su3', 's3', NULL, 1760000003, 1760000003);"
  sync edge1 "$A"
  check "an apply error at the hub: the fleet names its table and error (from the hub's log)" \
    wait_until 30 apply_error_named
  q hub "SET session_replication_role = replica; DELETE FROM $A.skill_usage WHERE id = 'su3'" >/dev/null
  tick edge1
  check "the row gone, the apply goes on: the hub equals the sources, and the problem is gone" \
    apply_error_gone
}
apply_error_named() {
  tick edge1 >/dev/null
  fleet_problem "$A" "apply stopped" "$A.skill_usage" INSERT "duplicate key" &&
  contains_all "$(q edge1 "SELECT problem FROM owsync.edge_status")" "$A.skill_usage"
}
apply_error_gone() {
  hub_equal edge1 && tick edge1 >/dev/null &&
  is_true hub "SELECT coalesce(problem, '') NOT LIKE '%apply%' FROM owsync_fleet.fleet_detail WHERE client = '$A'"
}
s_kill() {
  local k1 k2 round
  rm -f "$OWSYNC_WORK"/kill.*
  kill_walsender_edge1 & k1=$!
  kill_apply_worker_edge2 & k2=$!
  # big runs (one transaction each) at both edges, until each killer has struck mid-stream
  for round in 1 2 3; do
    bulk "$F/edge1/alpha.db" "k$round" 30000; bulk "$F/edge2/charlie.db" "k$round" 30000
    sync edge1 "$A" incremental; sync edge2 "$C" incremental
    wait_until 10 killed_both >/dev/null && break
  done
  touch "$OWSYNC_WORK/kill.stop"; wait "$k1" "$k2" || true
  note "edge1's walsender killed $(kills edge1) times, the hub's apply worker for edge2 $(kills edge2) times, while a run was on its way"
  check "edge1's walsender and the hub's apply worker (edge2) were killed mid-stream" killed_both
  edits "$F/edge1/alpha.db" k; edits "$F/edge2/charlie.db" k
  sync edge1 "$A"; sync edge2 "$C"
  tick edge1 edge2
  check "after those kills nothing is lost: the hub equals the sources" hub_equal edge1 edge2
}

s_hub_down() {
  local c
  hub_stop
  for c in "$A" "$B" "$C" "$D"; do edits "${FILE_OF[$c]}" down1; sync "${EDGE_OF[$c]}" "$c"; done
  check "fleet_tick with the hub down returns and records the problem" tick_hub_down
  # a name edge1 holds, registered on edge2 while the hub cannot tell: accepted, reported later
  check "register_client with the hub down accepts a name edge1 holds" \
    q edge2 "SELECT count(*) FROM owsync.register_client('$D', '$F/edge2/clash.db')"
  for c in "$A" "$B" "$C" "$D"; do edits "${FILE_OF[$c]}" down2; sync "${EDGE_OF[$c]}" "$c"; done
  hub_start
  # no tick: the subscriptions catch up by themselves
  check "the hub stopped while the edges synced, restarted: everything arrives" hub_equal edge1 edge2
  tick edge2 edge1
  check "the name registered on two edges is reported at the hub and in edge2's status" name_contested
  at edge2 "SELECT owsync.unregister_client('$D', drop_data => true)"
  tick edge2 edge1
  check "once edge2 dropped it, the hub's copy of that name is still edge1's, equal to its file" \
    lines_and_equal
  check "once edge2 dropped it, neither the fleet view nor edge2's status reports the name contested" \
    contest_cleared
}
contest_cleared() {
  "$PSQL" -X -d "$(conninfo hub)" -c "SELECT * FROM owsync_fleet.fleet ORDER BY client"
  q edge2 "SELECT problem FROM owsync.edge_status"
  is_true hub "SELECT coalesce(problem, '') = '' FROM owsync_fleet.fleet WHERE client = '$D'" &&
  is_true edge2 "SELECT coalesce(problem, '') NOT LIKE '%$D%' FROM owsync.edge_status"
}
lines_and_equal() { fleet_lines && hub_equal edge1 edge2; }
name_contested() {
  fleet_problem "$D" edge2 &&
  contains_all "$(q edge2 "SELECT problem FROM owsync.edge_status")" "$D"
}

tick_hub_down() { tick edge1 && contains_all "$(q edge1 "SELECT problem FROM owsync.edge_status")" hub; }

s_slot_lost() {
  local before
  before=$(q hub "SELECT count(*) FROM $C.chat_message" || echo 0)
  # a session at edge2 listening for owsync_alert until told to stop
  ( PGAPPNAME=fleet_listener "$PSQL" -X -d "$(conninfo edge2)" -c "LISTEN owsync_alert" \
      -c "DO \$\$BEGIN WHILE pg_stat_file('$OWSYNC_WORK/listen.stop', true) IS NULL LOOP PERFORM pg_sleep(0.1); END LOOP; END\$\$" \
      >"$OWSYNC_WORK/listen.out" 2>&1 ) &
  LISTENER=$!
  step "a session at edge2 listens for owsync_alert" wait_until 30 is_true edge2 \
    "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'fleet_listener' AND query LIKE 'DO%'"
  at edge2 "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'" "SELECT pg_reload_conf()"
  hub_stop
  edits "$F/edge2/charlie.db" lost; sync edge2 "$C"
  step "a table to fill WAL with" "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(conninfo edge2 postgres)" -c "CREATE TABLE wal_filler (v text)"
  check "edge2's slot is lost (WAL past max_slot_wal_keep_size while the hub is away)" wait_until 60 slot_lost
  at edge2 "ALTER SYSTEM RESET max_slot_wal_keep_size" "SELECT pg_reload_conf()"
  hub_start
  tick edge2
  touch "$OWSYNC_WORK/listen.stop"; wait "$LISTENER" || true; LISTENER=""
  check "the slot loss raises NOTIFY owsync_alert (slot_lost)" grep -F '"slot_lost"' "$OWSYNC_WORK/listen.out"
  check "the fleet view names the lost slot" fleet_problem "$C" slot lost
  check "the fleet view fits in 120 columns (a problem shown)" fleet_width
  check "repair_hub: the hub holds no less while it re-seeds" repair "$before"
  check "repair_hub: the re-seed ends (stash dropped by the tick), equal to the sources, no duplicates" \
    repaired
  check "the fleet view shows no problem for edge2's clients after the repair" \
    is_true hub "SELECT bool_and(coalesce(problem, '') = '') FROM owsync_fleet.fleet WHERE edge = 'edge2'"
}
slot_lost() {  # one round of WAL at edge2 (another database), then: is the slot lost?
  "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$(conninfo edge2 postgres)" -c "SELECT pg_switch_wal()" \
    -c "INSERT INTO wal_filler SELECT repeat('x', 1000) FROM generate_series(1, 3000)" -c CHECKPOINT >/dev/null &&
  is_true edge2 "SELECT wal_status = 'lost' FROM pg_replication_slots WHERE slot_name = 'owsync_edge2'"
}
repair() { q edge2 "CALL owsync.repair_hub()" && no_less "$C" "$1"; }
stash_gone() { tick edge2 && is_true hub "SELECT count(*) = 0 FROM pg_namespace WHERE nspname LIKE 'owsync\_stash\_%'"; }
repaired() { wait_until 60 stash_gone && hub_equal edge1 edge2; }
# no_less CLIENT N: the hub holds at least N chat messages of CLIENT, in its copy or a stash
# (CLIENT is the only client of its edge being re-seeded, so every stash with a chat_message
# table is its)
no_less() {
  local holders="SELECT n.nspname, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.chat_message', n.nspname), false, true, '')))[1]::text::bigint AS n
                   FROM pg_namespace n WHERE (n.nspname = '$1' OR n.nspname LIKE 'owsync\_stash\_%')
                    AND to_regclass(format('%I.chat_message', n.nspname)) IS NOT NULL"
  q hub "$holders"
  is_true hub "SELECT max(n) >= $2 FROM ($holders) h"
}

s_move() {
  # alpha moves from edge1 to edge2: its registration ends on edge1 first
  at edge1 "SELECT owsync.unregister_client('$A')"
  tick edge1
  check "the fleet view says alpha is registered on no edge" fleet_problem "$A" "no edge"
  # restored and registered on edge2 by one call, with its history (the former config edge1
  # retired comes along, as a restore to before its drift reads it)
  at edge2 "CALL owsync.restore_from_hub('$A', '$F/edge2/alpha.db', options => '{\"register\": true}')"
  check "restore_from_hub on edge2 writes alpha identical to its source as of the last sync" \
    $COMPARE_SQLITE "$F/edge1/alpha.db" "$F/edge2/alpha.db"
  EDGE_OF[$A]=edge2 FILE_OF[$A]=$F/edge2/alpha.db
  check "alpha moved to edge2 keeps its history: restored there as of before its drift on edge1, identical to the copy saved then" \
    local_as_of edge2 "$A" "{\"as_of\": \"$ALPHA_T0\"}" "$F/saved/alpha.v0.db"
  tick edge2
  edits "$F/edge2/alpha.db" moved; sync edge2 "$A"
  tick edge1 edge2
  check "alpha moved to edge2: its hub copy goes on from edge2, nothing lost or duplicated" hub_equal edge1 edge2
  check "the fleet view shows alpha on edge2" fleet_lines
  check "alpha's history moved with it to the hub: restore_from_hub as of before its drift, identical to the copy saved then" \
    from_hub edge1 "$A" "{\"as_of\": \"$ALPHA_T0\"}" "$F/saved/alpha.v0.db"
}
# local_as_of NODE CLIENT OPTIONS SAVED: owsync.restore at NODE with OPTIONS, identical to SAVED
local_as_of() {
  local out=$F/$1/$2.as_of.db report
  rm -f "$out"
  report=$(q "$1" "CALL owsync.restore('$2', '$out', options => '$3')") || { echo "$report"; return 1; }
  echo "$report"
  $COMPARE_SQLITE "$4" "$out"
}

s_lost_host() {
  local c clients first
  for c in $(clients_of edge1); do edits "${FILE_OF[$c]}" last; sync edge1 "$c"; done
  tick edge1
  check "edge1's last runs arrived before the host is lost" hub_equal edge1
  clients=$(clients_of edge1)
  for c in $clients; do step "a copy of $c's file" sqlite3 "${FILE_OF[$c]}" ".backup $F/saved/$c.db"; done
  step "edge1's cluster stopped at once" pgctl edge1 -m immediate -w stop
  rm -rf "$OWSYNC_WORK/edge1/data" "$F/edge1"
  check "the fleet view says edge1's clients are not streaming (the edge cannot be reached)" \
    wait_until 30 fleet_problem "$B" "not streaming"
  at edge2 "SELECT owsync.forget_edge('edge1')"
  check "the fleet view says edge1 was forgotten" fleet_problem "$B" forgotten
  check "forget_edge('edge1') at edge2: its subscription dropped at the hub, its copies kept" \
    is_true hub "SELECT NOT EXISTS (SELECT FROM pg_subscription WHERE subname = 'owsync_edge1')
                    AND (SELECT count(*) FROM pg_namespace WHERE nspname IN ($(printf "'%s'," $clients | sed 's/,$//'))) = $(wc -w <<<"$clients")"
  # the first client registered by restore_from_hub itself ({"register": true}), the others by
  # register_client after it
  first=1
  for c in $clients; do
    if [ "$first" -eq 1 ]; then
      check "edge1 lost: $c restored onto edge2 from the hub and registered there by the same call, identical to its source as of the last sync" \
        restored "$c" '{"register": true}'
      check "$c is registered on edge2 with the schedule and options it had on edge1" \
        same_registration "$c"
      if [ "$c" = "$B" ]; then
        check "bravo keeps its history on edge2: restored there as of a moment on edge1, identical to the copy saved then" \
          local_as_of edge2 "$B" "{\"as_of\": \"$BRAVO_T0\"}" "$F/saved/bravo.v0.db"
        check "bravo keeps its history on edge2: restored there by a run id of edge1, identical to the copy saved after it" \
          local_as_of edge2 "$B" "{\"run_id\": $BRAVO_R1}" "$F/saved/bravo.v1.db"
      fi
      first=0
    else
      check "edge1 lost: $c restored onto edge2 from the hub, identical to its source as of the last sync" \
        restored "$c"
      register edge2 "$c" "$F/edge2/$c.db"
    fi
    EDGE_OF[$c]=edge2 FILE_OF[$c]=$F/edge2/$c.db
    edits "$F/edge2/$c.db" reborn; sync edge2 "$c"
  done
  tick edge2
  check "edge1's clients go on from edge2: the hub equals every source" hub_equal edge2
  check "the fleet view: every client on edge2" fleet_lines
  check "bravo's history reached the hub from edge2: restore_from_hub by a run id of edge1, identical to the copy saved after it" \
    from_hub edge2 "$B" "{\"run_id\": $BRAVO_R1}" "$F/saved/bravo.v1.db"
}

same_registration() {  # CLIENT: edge2's registration of CLIENT is edge1's, as the hub holds it
  local theirs ours
  theirs=$(q hub "SELECT schedule || ' ' || options::text FROM owsync_edge_edge1.client WHERE client = '$1'")
  ours=$(q edge2 "SELECT schedule || ' ' || options::text FROM owsync.client WHERE client = '$1'")
  echo "edge1 (at the hub): $theirs; edge2: $ours"
  [ -n "$ours" ] && [ "$theirs" = "$ours" ]
}
restored() {  # CLIENT [OPTIONS]
  local options='{}'
  [ -z "${2:-}" ] || options=$2
  q edge2 "CALL owsync.restore_from_hub('$1', '$F/edge2/$1.db', options => '$options')" >/dev/null &&
  $COMPARE_SQLITE "$F/saved/$1.db" "$F/edge2/$1.db"
}

# detach_hub: edge2 stops feeding the hub; the hub keeps its copies, the names are free, and
# edge2 syncs on as a server outside any fleet
s_detach() {
  local c clients
  clients=$(clients_of edge2)
  at edge2 "CALL owsync.detach_hub()"
  check "detach_hub at edge2: no subscription at the hub, no slot, fleet job or hub server at edge2" detached edge2
  check "detach_hub: edge2's names released at the hub, its copies kept" \
    is_true hub "SELECT NOT EXISTS (SELECT FROM owsync_fleet.client WHERE edge = 'edge2' AND released_at IS NULL)
                    AND (SELECT count(*) FROM pg_namespace WHERE nspname IN ($(printf "'%s'," $clients | sed 's/,$//'))) = $(wc -w <<<"$clients")"
  for c in $clients; do edits "${FILE_OF[$c]}" detached; done
  check "after detach_hub edge2 syncs on: every mirror equals its file" synced_alone "$clients"
}
detached() {
  is_true hub "SELECT NOT EXISTS (SELECT FROM pg_subscription WHERE subname = 'owsync_$1')" \
    || { echo "subscription owsync_$1 still at the hub"; return 1; }
  is_true "$1" "SELECT NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'owsync_$1')
                   AND NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = 'owsync_hub')
                   AND NOT EXISTS (SELECT FROM cron.job j WHERE $FLEET_JOB)
                   AND (SELECT hub IS NULL FROM owsync.edge)" \
    || { echo "$1 still has its slot, hub server, fleet job or hub"; return 1; }
}
synced_alone() {  # CLIENTS: each synced at edge2 and its mirror equal to its file there
  local c
  for c in $1; do
    q edge2 "CALL owsync.sync('$c', 'reconcile')" >/dev/null || return 1  # silent edits too
    is_true edge2 "SELECT count(*) = 0 FROM owsync.verify('$c')
                    WHERE missing + extra + differing > 0 OR source_rows <> mirror_rows" \
      || { echo "$c: owsync.verify finds differences:"
           q edge2 "SELECT * FROM owsync.verify('$c') WHERE missing + extra + differing > 0 OR source_rows <> mirror_rows"
           return 1; }
  done
}

# An edge prepared at version 0.4, with a client, attached to the hub there (its publication then
# lists schemas), upgraded by ALTER EXTENSION: its catalog copy gets the catalog's new column
# (client.versions_from), filled; its next fleet tick makes the publication list the tables of
# those schemas rather than the schemas (with the versions tables the client's runs keep from now
# on), and the hub copies nothing again; changes go on arriving; an
# unregistered client's row stays in the copy (a restore from the hub reads its registration);
# detach_hub empties its publication table by table
OLD_DB=owsync_old
OLD_SUB=owsync_edge_old
qold() { local a=() s; for s in "$@"; do a+=(-c "$s"); done
         PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$(conninfo edge2 $OLD_DB)" "${a[@]}"; }
s_upgrade_edge() {
  local pub hub_rels
  step "a database at edge2 for an edge of version 0.4" \
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(conninfo edge2 postgres)" -c "CREATE DATABASE $OLD_DB"
  step "a file for its client" sqlite3 "$F/edge2/charlie.db" ".backup $F/edge2/old.db"
  step "owsync_fdw 0.4 there, made edge edge_old, a client registered (its schedule off: the test syncs it)" \
    qold "CREATE EXTENSION owsync_fdw VERSION '0.4'" "SELECT owsync.prepare_edge('edge_old') IS NOT NULL" \
         "SELECT count(*) FROM owsync.register_client('old_client', '$F/edge2/old.db')" \
         "SELECT owsync.disable_sync('old_client')"
  step "the hub may replicate from edge_old's database as owsync_replicator" old_hba
  step "attach_hub at edge_old (version 0.4)" \
    qold "CALL owsync.attach_hub('$(hub_conninfo)', 'host=$OWSYNC_WORK/edge2 port=${OWSYNC_PORT[edge2]} dbname=$OLD_DB')"
  check "before the upgrade edge_old's publication lists schemas, and the hub holds its first copy" \
    old_published_by_schema
  pub=$(old_pub_tables || true) hub_rels=$(old_hub_rels || true)
  check "before the upgrade the edge's catalog copy has no versions_from" \
    test "$(qold "SELECT count(*) FROM pg_attribute WHERE attrelid = 'owsync_edge_edge_old.client'::regclass AND attname = 'versions_from'")" = 0
  step "ALTER EXTENSION owsync_fdw UPDATE at edge_old" qold "ALTER EXTENSION owsync_fdw UPDATE"
  check "the upgraded edge's catalog copy has client.versions_from, equal to its catalog's" \
    test "$(qold "SELECT count(*) = 1 AND bool_and(c.versions_from IS NOT NULL AND c.versions_from = e.versions_from)
                    FROM owsync.client c JOIN owsync_edge_edge_old.client e USING (client)")" = t
  step "fleet_tick() at edge_old" qold "CALL owsync.fleet_tick()"
  check "after the upgrade's first fleet tick edge_old's publication lists its tables (those it held, and the versions tables made since), no schema" \
    wait_until 60 old_published_by_table "$pub"
  check "the hub copied nothing again: its tables of edge_old the same (oids), in the state and from the position of their first copy, no stash" \
    old_hub_kept "$hub_rels"
  edits "$F/edge2/old.db" upgraded
  step "sync('old_client') at edge_old" qold "CALL owsync.sync('old_client', 'reconcile')"
  check "after the upgrade old_client's changes arrive at the hub: its chats there equal the edge's mirror" old_flows
  step "unregister_client at edge_old" qold "SELECT owsync.unregister_client('old_client', drop_data => true)"
  check "an unregistered client's row stays in the edge's catalog copy" \
    test "$(qold "SELECT count(*) FROM owsync_edge_edge_old.client WHERE client = 'old_client' AND versions_from IS NOT NULL")" = 1
  step "detach_hub at edge_old" qold "CALL owsync.detach_hub()"
  check "detach_hub at edge_old: its publication is empty, the hub's subscription gone" \
    test "$(qold "SELECT count(*) FROM pg_publication_rel")|$(qold "SELECT count(*) FROM pg_publication_namespace")|$(q hub "SELECT count(*) FROM pg_subscription WHERE subname = '$OLD_SUB'")" = "0|0|0"
}
old_hba() {
  printf 'local   %s    owsync_replicator  scram-sha-256\n' "$OLD_DB" >>"$OWSYNC_WORK/edge2/data/pg_hba.conf" &&
  pgctl edge2 reload >/dev/null
}
# the publication's tables at edge_old, as PostgreSQL gives them to the hub
old_pub_tables() {
  qold "SELECT string_agg(schemaname || '.' || tablename, ' ' ORDER BY 1) FROM pg_publication_tables WHERE pubname = 'owsync_edge'"
}
# the hub's tables of edge_old's subscription: oid, name, state, position of the first copy's end
old_hub_rels() {
  q hub "SELECT r.srrelid || ' ' || r.srrelid::regclass || ' ' || r.srsubstate::text || ' ' || coalesce(r.srsublsn::text, '-')
           FROM pg_subscription s JOIN pg_subscription_rel r ON r.srsubid = s.oid
          WHERE s.subname = '$OLD_SUB' ORDER BY r.srrelid"
}
# old_arrived: the hub has applied edge_old's WAL as of now, every table's first copy done
old_arrived() {
  local lsn
  lsn=$(qold "SELECT pg_current_wal_lsn()")
  wait_until 120 is_true edge2 \
    "SELECT coalesce(bool_and(confirmed_flush_lsn >= '$lsn'), false) FROM pg_replication_slots WHERE slot_name = '$OLD_SUB'" &&
  wait_until 120 is_true hub \
    "SELECT count(*) > 0 AND bool_and(r.srsubstate = 'r') FROM pg_subscription s JOIN pg_subscription_rel r ON r.srsubid = s.oid
      WHERE s.subname = '$OLD_SUB'"
}
old_published_by_schema() {
  echo "schemas: $(qold "SELECT string_agg(pnnspid::regnamespace::text, ' ' ORDER BY 1) FROM pg_publication_namespace")"
  echo "tables listed: $(qold "SELECT count(*) FROM pg_publication_rel")"
  [ "$(qold "SELECT count(*) >= 2 FROM pg_publication_namespace")" = t ] &&
  [ "$(qold "SELECT count(*) FROM pg_publication_rel")" = 0 ] &&
  old_arrived && [ -n "$(old_hub_rels)" ] && [ "$(old_hub_rels | wc -l)" -eq "$(wc -w <<<"$(old_pub_tables)")" ]
}
# old_published_by_table TABLES: the publication lists tables (every one it holds), no schema, and
# holds each of TABLES (the versions tables the upgraded client's runs keep from now on are new)
old_published_by_table() {
  local now
  [ -n "$1" ] || { echo "no tables before"; return 1; }
  now=$(old_pub_tables)
  echo "schemas listed: $(qold "SELECT count(*) FROM pg_publication_namespace"); tables listed: $(qold "SELECT count(*) FROM pg_publication_rel")"
  printf 'before: %s\nnow:    %s\n' "$1" "$now"
  [ "$(qold "SELECT count(*) FROM pg_publication_namespace")" = 0 ] &&
  [ "$(qold "SELECT count(*) FROM pg_publication_rel")" -eq "$(wc -w <<<"$now")" ] &&
  [ -z "$(comm -23 <(tr ' ' '\n' <<<"$1" | sort) <(tr ' ' '\n' <<<"$now" | sort))" ]
}
# old_hub_kept RELS: each of the hub's tables of the subscription before is there unchanged (same
# oid, state, position of its first copy's end), and no copy of edge_old was stashed
old_hub_kept() {
  local now
  [ -n "$1" ] || { echo "no tables before"; return 1; }
  old_arrived || return 1
  now=$(old_hub_rels)
  printf 'before:\n%s\nnow:\n%s\n' "$1" "$now"
  [ -z "$(comm -23 <(sort <<<"$1") <(sort <<<"$now"))" ] &&
  is_true hub "SELECT NOT EXISTS (SELECT FROM owsync_fleet.stash WHERE edge = 'edge_old')"
}
old_flows() {
  local edge hub
  old_arrived || return 1
  edge=$(qold "SELECT count(*) || ' ' || md5(string_agg(id || ' ' || title, ',' ORDER BY id)) FROM old_client.chat")
  hub=$(q hub "SELECT count(*) || ' ' || md5(string_agg(id || ' ' || title, ',' ORDER BY id)) FROM old_client.chat")
  echo "edge_old: $edge; hub: $hub"
  [ "$edge" = "$hub" ] && is_true hub "SELECT count(*) = 1 FROM old_client.chat WHERE title = 'new in upgraded ☃'"
}

# An edge whose clients, attached at once, make more relations at the edge and at the hub than
# the whole lock table holds there (max_locks_per_transaction 10 at both): attach_hub publishes
# them in batches, each committed on its own, and so does the fleet tick with several new
# clients at once.  The hub is restarted with that setting; no other edge feeds it by now.
MANY=16
s_many_clients() {
  local i
  at hub "ALTER SYSTEM SET max_locks_per_transaction = 10"
  hub_stop; hub_start
  many_files
  owsync_cluster_start_named edge3 "$FLEET_DB" "owsync.allowed_directories = '$F/edge3'
max_locks_per_transaction = 10"
  fleet_hba_edge edge3
  step "edge3: reload, its database, owsync_fdw, prepare_edge" edge3_ready
  LOCKS_EDGE3=$(lock_table edge3) LOCKS_HUB=$(lock_table hub)
  note "the lock table holds $LOCKS_EDGE3 locks at edge3 and $LOCKS_HUB at the hub"
  for i in $(seq -w 1 "$MANY"); do
    register edge3 "many$i" "$F/edge3/many$i.db"; EDGE_OF[many$i]=edge3 FILE_OF[many$i]=$F/edge3/many$i.db
  done
  check "attach_hub on edge3 with $MANY clients" attach edge3
  check "attach made more relations at edge3 (versions tables) than its lock table holds, in transactions of fewer" \
    made_in_batches edge3 '^owsync_many[0-9]+_versions$' "$LOCKS_EDGE3"
  check "attach made more relations at the hub (the copies) than its lock table holds, in transactions of fewer" \
    made_in_batches hub '^(many[0-9]+|owsync_many[0-9]+_versions)$' "$LOCKS_HUB"
  check "edge3's first copy at the hub completes ($MANY clients)" wait_arrived edge3 600
  check "every client of edge3 arrives at the hub equal to its file" hub_equal edge3
  for i in $((MANY + 1)) $((MANY + 2)) $((MANY + 3)); do
    register edge3 "many$i" "$F/edge3/many$i.db"; EDGE_OF[many$i]=edge3 FILE_OF[many$i]=$F/edge3/many$i.db
  done
  tick edge3
  step "the three clients' first copy at the hub" wait_arrived edge3 600
  check "three clients more at once: the fleet tick makes their versions tables in more than one transaction" \
    batches edge3 '^owsync_many(17|18|19)_versions$'
  check "the fleet tick publishes the three, and they arrive equal to their files" hub_equal edge3
  check "the fleet view shows no problem for edge3's clients" \
    is_true hub "SELECT count(*) = $((MANY + 3)) AND bool_and(coalesce(problem, '') = '') FROM owsync_fleet.fleet WHERE edge = 'edge3'"
}
many_files() {  # the files of edge3's clients: copies of one tiny generated database
  mkdir -p "$F/edge3"
  python3 "$OWSYNC_ROOT/test/gen_openwebui.py" --size tiny --flavour fresh --journal wal --seed 105 \
    --out "$F/edge3/many.db" >/dev/null
  for i in $(seq 1 $((MANY + 3))); do cp "$F/edge3/many.db" "$F/edge3/many$(printf '%02d' "$i").db"; done
  chmod -R a+rwX "$F/edge3"
}
edge3_ready() {
  pgctl edge3 reload >/dev/null &&
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(conninfo edge3 postgres)" -c "CREATE DATABASE $FLEET_DB" &&
  q edge3 "CREATE EXTENSION pg_cron; CREATE EXTENSION owsync_fdw CASCADE" >/dev/null &&
  q edge3 "SELECT owsync.prepare_edge('edge3')" >/dev/null
}
# lock_table NODE: how many locks one transaction at NODE can take while the server is otherwise
# idle (advisory locks, until the lock table is full): max_locks_per_transaction times the
# number of backends, plus what spare shared memory it can borrow
lock_table() {
  q "$1" "CREATE TEMP TABLE n (n integer);
          DO \$\$ DECLARE i integer := 0; BEGIN
            LOOP i := i + 1; PERFORM pg_advisory_xact_lock(i); END LOOP;
          EXCEPTION WHEN out_of_memory THEN INSERT INTO n VALUES (i - 1); END \$\$;
          SELECT n FROM n"
}
# made_in_batches NODE REGEX LOCKS: the relations (with their TOAST tables and indexes) of NODE's
# schemas matching REGEX, grouped by the transaction that made them (pg_class.xmin): more than
# LOCKS in all, and fewer in each transaction
made_in_batches() {
  local r txns total largest
  r=$(q "$1" "SELECT count(*) || ' ' || sum(n) || ' ' || max(n)
                FROM (SELECT c.xmin::text, count(*) + 2 * count(NULLIF(c.reltoastrelid, 0)) AS n
                        FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                       WHERE s.nspname ~ '$2' GROUP BY 1) x")
  read -r txns total largest <<<"$r"
  echo "at $1: $total relations made by $txns transactions, at most $largest by one; the lock table holds $3"
  [ "$total" -gt "$3" ] && [ "$largest" -lt "$3" ]
}
# batches NODE REGEX: the relations of NODE's schemas matching REGEX were made by more than one
# transaction
batches() {
  local n
  n=$(q "$1" "SELECT count(DISTINCT c.xmin::text) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
               WHERE s.nspname ~ '$2'")
  echo "made by $n transactions"
  [ "$n" -gt 1 ]
}

owsync_step "fleet test: scenarios"
s_setup
s_attach
s_changes
s_versions
s_security
s_drift
s_apply_error
s_kill
s_hub_down
s_slot_lost
s_move
s_lost_host
s_detach
s_upgrade_edge
s_many_clients
[ "$FLEET_FAIL" -eq 0 ]
