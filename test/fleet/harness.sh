# shellcheck shell=bash
# Helpers of the fleet test (test/fleet/run.sh): clusters on one machine, two edges and a hub
# (and a third edge its last scenario starts), each on its own unix socket under $OWSYNC_WORK,
# and the checks run against them.
# Source it after test/lib.sh, from a bash script under `set -euo pipefail`.
#
#   fleet_setup                 # files, clusters edge1, edge2 (owsync_fdw + pg_cron) and hub
#                               # (a PostgreSQL without owsync_fdw), databases, pg_hba
#   q NODE SQL                  # run SQL as postgres at NODE (edge1, edge2, edge3, hub); prints rows
#   check NAME CMD...           # CMD's status decides "ok - NAME" / "not ok - NAME"
#   wait_until SECS CMD...      # CMD every 0.2 s until it succeeds, at most SECS seconds
#   wait_arrived EDGE           # the hub has applied everything EDGE has written so far
#   compare_hub CLIENT FILE [--kept X]  # the hub's copy of CLIENT equals the SQLite FILE, every row

FLEET_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FLEET_FILES=/tmp/owsync_regress/fleet   # the edges' SQLite files: edge1/, edge2/, saved/
FLEET_DB=owsync                         # owsync's database on an edge (it holds nothing else)
FLEET_HUB_DB=hub
FLEET_HUB_USER=fleet_admin              # the hub role the edges use (a superuser on PG 15)
FLEET_HUB_PASSWORD=hub-secret-$$-$RANDOM
FLEET_PASS=0 FLEET_FAIL=0
FLEET_T0=$(date +%s)
PSQL=$OWSYNC_PGBIN/psql
export PSQL                             # compare_hub.py runs it too

# conninfo NODE [DB]: how to reach NODE's socket as postgres
conninfo() {
  local db=${2:-}
  [ -n "$db" ] || { [ "$1" = hub ] && db=$FLEET_HUB_DB || db=$FLEET_DB; }
  echo "host=$OWSYNC_WORK/$1 port=${OWSYNC_PORT[$1]} dbname=$db user=postgres"
}
# q NODE SQL...: each SQL in turn (each its own transaction), rows unaligned with '|' between
# columns, notices not shown; fails (with psql's message) on any error
q() {
  local node=$1 a=() s; shift
  for s in "$@"; do a+=(-c "$s"); done
  PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$(conninfo "$node")" "${a[@]}"
}
# q_err NODE SQL: the error of SQL that must fail, with its SQLSTATE (fails when SQL succeeds)
q_err() {
  local out
  if out=$(PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
             -d "$(conninfo "$1")" -c "$2" 2>&1); then
    echo "expected an error, got: $out"; return 1
  fi
  echo "$out"
}
# pgctl NODE ARGS...: pg_ctl on NODE's data directory, as the server's user
pgctl() { (cd / && owsync_as_pg "$OWSYNC_PGBIN/pg_ctl" -D "$OWSYNC_WORK/$1/data" "${@:2}"); }

note() { printf '# %s\n' "$*"; }
# check NAME CMD...: runs CMD, prints ok/not ok; CMD's output is shown (as comments) on failure
check() {
  local name=$1 out rc=0; shift
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    FLEET_PASS=$((FLEET_PASS + 1)); echo "ok - $name ($(( $(date +%s) - FLEET_T0 )) s)"
    [ -z "${FLEET_VERBOSE:-}" ] || printf '%s\n' "$out" | sed 's/^/#   /'
  else
    FLEET_FAIL=$((FLEET_FAIL + 1)); echo "not ok - $name"
    printf '%s\n' "$out" | tail -n 40 | sed 's/^/#   /'
  fi
  return 0
}

# step DESC CMD...: a step that is not a test itself; when it fails, "not ok - DESC" with its
# output (a failure), and the run goes on, so that later scenarios still report
step() {
  local desc=$1 out; shift
  if ! out=$("$@" 2>&1); then
    FLEET_FAIL=$((FLEET_FAIL + 1)); echo "not ok - $desc"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/#   /'
  fi
  return 0
}

# wait_until SECS CMD...: CMD every 0.2 s until it succeeds; fails after SECS with CMD's output
wait_until() {
  local secs=$1 deadline out; shift
  deadline=$(( $(date +%s%N) / 1000000 + secs * 1000 ))
  until out=$("$@" 2>&1); do
    if [ $(( $(date +%s%N) / 1000000 )) -ge "$deadline" ]; then
      echo "not true within $secs s: $*"; printf '%s\n' "$out" | tail -n 5; return 1
    fi
    sleep 0.2
  done
}
is_true() { [ "$(q "$1" "$2")" = t ]; }

# wait_arrived EDGE [SECS, default 120]: the hub has applied EDGE's WAL as of now: the slot of EDGE's
# subscription confirmed at least the edge's current WAL position, and every table of the
# subscription has finished its initial copy
wait_arrived() {
  local edge=$1 secs=${2:-120} lsn
  lsn=$(q "$edge" "SELECT pg_current_wal_lsn()")
  wait_until "$secs" is_true "$edge" \
    "SELECT coalesce(bool_and(confirmed_flush_lsn >= '$lsn'), false) FROM pg_replication_slots WHERE slot_name = 'owsync_$edge'" &&
  wait_until "$secs" is_true hub \
    "SELECT count(*) > 0 AND bool_and(r.srsubstate = 'r') FROM pg_subscription s JOIN pg_subscription_rel r ON r.srsubid = s.oid
      WHERE s.subname = 'owsync_$edge'"
}

# compare_hub CLIENT FILE: the hub schema CLIENT holds exactly the rows of the SQLite FILE
compare_hub() {
  python3 "$FLEET_DIR/compare_hub.py" --hub "$(conninfo hub)" --schema "$1" "$2" "${@:3}"
}

# sqlite FILE SQL...: change a source file as Open WebUI would (the sqlite3 shell)
sqlite() { sqlite3 -bail "$1" "${@:2}" >/dev/null; }

# fleet_hba NODE: owsync_replicator may do logical replication to owsync's database only (a
# password is needed); postgres keeps local access; nobody else gets in
fleet_hba_edge() {
  cat >"$OWSYNC_WORK/$1/data/pg_hba.conf" <<HBA
# TYPE  DATABASE     USER               METHOD
local   $FLEET_DB       owsync_replicator  scram-sha-256
local   all          postgres           trust
local   replication  postgres           trust
HBA
  owsync_give_to_pg "$OWSYNC_WORK/$1/data/pg_hba.conf"
}
# the hub: postgres locally without password, every other role with its password
fleet_hba_hub() {
  cat >"$OWSYNC_WORK/hub/data/pg_hba.conf" <<HBA
# TYPE  DATABASE     USER               METHOD
local   all          postgres           trust
local   all          all                scram-sha-256
HBA
  owsync_give_to_pg "$OWSYNC_WORK/hub/data/pg_hba.conf"
}

# fleet_files: each edge's client files (tiny generated Open WebUI databases, WAL mode)
fleet_files() {
  rm -rf "$FLEET_FILES"
  mkdir -p "$FLEET_FILES/edge1" "$FLEET_FILES/edge2" "$FLEET_FILES/saved"
  local gen="python3 $OWSYNC_ROOT/test/gen_openwebui.py --size tiny --journal wal"
  $gen --flavour legacy --seed 101 --out "$FLEET_FILES/edge1/alpha.db" >/dev/null
  $gen --flavour legacy --no-pk --seed 102 --out "$FLEET_FILES/edge1/bravo.db" >/dev/null
  $gen --flavour fresh --seed 104 --out "$FLEET_FILES/edge1/delta.db" >/dev/null
  $gen --flavour fresh --seed 103 --out "$FLEET_FILES/edge2/charlie.db" >/dev/null
  # a table without any key (replaced as a whole by each run), with equal rows and json
  sqlite3 "$FLEET_FILES/edge1/bravo.db" "CREATE TABLE event_log (kind TEXT, payload JSON, at INTEGER);
    INSERT INTO event_log VALUES ('login', '{\"ok\": true}', 1), ('login', '{\"ok\": true}', 1), ('note', NULL, 2);"
  # values of the types Open WebUI's schema lacks: blobs, floats, numerics, dates, booleans
  sqlite3 "$FLEET_FILES/edge2/charlie.db" "CREATE TABLE fleet_types (id INTEGER PRIMARY KEY, b BLOB, r REAL,
      n NUMERIC, d DATE, f BOOLEAN);
    INSERT INTO fleet_types VALUES (1, x'00ff10', 0.1, 1.50, '2026-01-31', 1), (2, x'', 1e20, 7, '1999-12-31', 0),
                                   (3, NULL, -2.5e-7, NULL, NULL, NULL), (4, x'5c78', 3.0, 123456789.125, '2000-02-29', 1);"
  cp "$FLEET_FILES/edge2/charlie.db" "$FLEET_FILES/edge2/clash.db"
  chmod -R a+rwX "$FLEET_FILES"
}

# fleet_setup: the three clusters, started, with their databases; the hub runs from a copy of
# PostgreSQL without owsync_fdw's files
fleet_setup() {
  owsync_test_dir /tmp/owsync_regress
  fleet_files
  local e
  for e in edge1 edge2; do
    owsync_cluster_start_named "$e" "$FLEET_DB" "owsync.allowed_directories = '$FLEET_FILES/$e'"
    fleet_hba_edge "$e"
    pgctl "$e" reload >/dev/null
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(conninfo "$e" postgres)" -c "CREATE DATABASE $FLEET_DB"
    q "$e" "CREATE EXTENSION pg_cron; CREATE EXTENSION owsync_fdw CASCADE" >/dev/null
  done
  owsync_step "a copy of PostgreSQL without owsync_fdw, for the hub"
  FLEET_HUB_BIN=$(owsync_pg_copy_without_owsync "$OWSYNC_WORK/pg-hub")
  # the collector's log: what an edge reads to name an apply error (collector.log)
  OWSYNC_PGBIN=$FLEET_HUB_BIN owsync_cluster_start_named hub "" "wal_retrieve_retry_interval = '500ms'
logging_collector = on
log_directory = '$OWSYNC_WORK/hub'
log_filename = 'collector.log'"
  fleet_hba_hub
  pgctl hub reload >/dev/null
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$(conninfo hub postgres)" \
    -c "CREATE DATABASE $FLEET_HUB_DB" \
    -c "CREATE ROLE $FLEET_HUB_USER LOGIN SUPERUSER PASSWORD '$FLEET_HUB_PASSWORD'"
}
# the conninfo an edge is given to reach the hub, and the hub to reach an edge
hub_conninfo() {
  echo "host=$OWSYNC_WORK/hub port=${OWSYNC_PORT[hub]} dbname=$FLEET_HUB_DB user=$FLEET_HUB_USER password=$FLEET_HUB_PASSWORD"
}
edge_conninfo() { echo "host=$OWSYNC_WORK/$1 port=${OWSYNC_PORT[$1]} dbname=$FLEET_DB"; }

# fleet_logs: the end of each cluster's server log (for a failed run)
fleet_logs() {
  local n f
  for n in edge1 edge2 edge3 hub; do
    for f in "$OWSYNC_WORK/$n/server.log" "$OWSYNC_WORK/$n/collector.log"; do
      [ -f "$f" ] || continue
      owsync_step "$(basename "$f") of $n (last 30 lines)"
      tail -n 30 "$f"
    done
  done
}
