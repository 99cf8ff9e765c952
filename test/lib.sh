# shellcheck shell=bash
# Shared shell helpers for owsync_fdw's scripts (test/run-tests.sh, test/demo.sh).
# Source it from a bash script running under `set -euo pipefail`:
#
#   . "$(dirname "$0")/lib.sh"
#   owsync_workdir                 # private temp dir $OWSYNC_WORK + the cleanup trap (EXIT/INT/TERM)
#   owsync_install_deps            # apt-get what is missing (root), else fail clearly
#   owsync_build_install           # make clean, make, make install
#   owsync_test_dir [DIR]          # fresh shared fixture dir, exports OWSYNC_TEST_DIR
#   owsync_cluster_start CRON_DB   # throwaway cluster, exports PGHOST PGPORT PGUSER
#   owsync_run SECS LOG CMD...     # CMD under a time limit, output shown and kept in LOG
#   ...                            # at exit: clusters stopped, temp dirs removed, then the
#                                  # script's owsync_on_exit RC if it defines one
#
# Server-side tools (initdb, postgres) refuse root, so when run as root the cluster runs as the
# `postgres` OS user (created by postgresql-common).  It listens on a unix socket only, in a
# private mktemp dir, so neither its port nor its files can clash with another cluster.
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config), OWSYNC_PGPORT.

OWSYNC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}   # not /usr/bin/pg_config: it picks the newest server-dev
OWSYNC_PGBIN=${OWSYNC_PGBIN:-$(dirname "$PG_CONFIG")}
OWSYNC_PKGS=(make gcc postgresql-15 postgresql-server-dev-15 postgresql-15-cron
             libsqlite3-dev libxxhash-dev sqlite3 python3
             python3-venv python3-dev iproute2 bc curl strace)   # the Open WebUI test's
OWSYNC_WORK=""          # private temp dir of this run (cluster, socket, logs), set by owsync_workdir
OWSYNC_CLEANUP_DIRS=()  # extra directories removed at exit
OWSYNC_CHILD=""         # pid of the command owsync_run is waiting for, for the signal traps
export PG_CONFIG

owsync_step() { printf '\n==== [%s] %s\n' "$(date +%T)" "$*"; }
owsync_die()  { echo "ERROR: $*" >&2; exit 1; }
owsync_is_root() { [ "$(id -u)" -eq 0 ]; }

# Prefix that runs a command as the postgres OS user when we are root (else as ourselves), in
# the current directory: callers that may sit where postgres cannot enter (/root) cd first.
OWSYNC_AS_PG=()
if owsync_is_root; then OWSYNC_AS_PG=(runuser -u postgres --); fi
owsync_as_pg() { "${OWSYNC_AS_PG[@]}" "$@"; }

# owsync_run SECONDS LOG CMD...: run CMD with a time limit, its output shown and saved in LOG;
# returns CMD's status.  timeout(1) gives CMD a process group of its own, which Ctrl-C or a
# TERM sent to our group does not reach: so CMD runs in the background and the INT/TERM traps
# forward a TERM to timeout, which passes it on to CMD's whole group.
owsync_run() {
  local secs=$1 log=$2 rc=0 tailpid; shift 2
  : >"$log"                            # exists before tail starts
  timeout -k 10 "$secs" "$@" >"$log" 2>&1 </dev/null &
  OWSYNC_CHILD=$!
  tail -n +1 -f --pid="$OWSYNC_CHILD" "$log" &
  tailpid=$!
  wait "$OWSYNC_CHILD" || rc=$?
  wait "$tailpid" || true
  OWSYNC_CHILD=""
  return "$rc"
}

owsync_on_signal() {  # $1 = exit status
  if [ -n "$OWSYNC_CHILD" ]; then
    kill -TERM "$OWSYNC_CHILD" 2>/dev/null
    wait "$OWSYNC_CHILD" 2>/dev/null
  fi
  exit "$1"
}

# Give a path to the postgres OS user (no-op when not root: then the server runs as us).
owsync_give_to_pg() {
  if owsync_is_root; then chown -R postgres:postgres "$@"; fi
}

owsync_install_deps() {
  owsync_step "dependencies"
  local p missing=()
  for p in "${OWSYNC_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "all packages already installed"
    return
  fi
  owsync_is_root || owsync_die "missing packages: ${missing[*]}
  run as root, or install them first: sudo apt-get install --no-install-recommends ${missing[*]}"
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

owsync_build_install() {
  owsync_step "build + install (PG_CONFIG=$PG_CONFIG)"
  [ -x "$PG_CONFIG" ] || owsync_die "$PG_CONFIG not found (install postgresql-server-dev-15 or set PG_CONFIG)"
  make -C "$OWSYNC_ROOT" -s PG_CONFIG="$PG_CONFIG" clean
  make -C "$OWSYNC_ROOT" PG_CONFIG="$PG_CONFIG"
  if [ "$(uname -m)" = x86_64 ]; then   # the portable json check, not built on x86-64
    make -C "$OWSYNC_ROOT" -s PG_CONFIG="$PG_CONFIG" check-portable
  fi
  make -C "$OWSYNC_ROOT" PG_CONFIG="$PG_CONFIG" install
}

# Create this run's private work dir (short path under /tmp: the unix socket path limit is
# 107 bytes) and arm the cleanup trap.  Call it first to get cleanup (and owsync_on_exit) even
# when installing or building fails; owsync_cluster_start gives the dir to the server's user.
owsync_workdir() {
  [ -n "$OWSYNC_WORK" ] && return
  OWSYNC_WORK=$(mktemp -d /tmp/owsync.XXXXXX)
  trap 'owsync_cleanup $?' EXIT
  trap 'owsync_on_signal 130' INT
  trap 'owsync_on_signal 143' TERM
}

# The benchmark database (~700 MB, legacy flavour, seed 1): generated once into
# $OWSYNC_BENCH_DIR (default /var/tmp/owsync-bench) and reused by every benchmark.  Sets
# BENCH_DIR and BENCH_DB; both readable and writable by the server's user.
owsync_bench_db() {
  BENCH_DIR=${OWSYNC_BENCH_DIR:-/var/tmp/owsync-bench}
  # named after what it is made from, so a changed schema or generator makes a new one
  BENCH_DB=$BENCH_DIR/bench-$(cat "$OWSYNC_ROOT/test/fixtures/schema-legacy.sql" "$OWSYNC_ROOT/test/gen_openwebui.py" |
                              md5sum | cut -c1-8).db
  mkdir -p "$BENCH_DIR"
  if [ ! -f "$BENCH_DB" ]; then
    owsync_step "generate the benchmark database (once): $BENCH_DB"
    python3 "$OWSYNC_ROOT/test/gen_openwebui.py" --out "$BENCH_DB" --flavour legacy --size bench \
      --seed 1 --journal wal
  fi
  chmod 0777 "$BENCH_DIR"; chmod 0666 "$BENCH_DB"
}

# Shared directory for SQLite fixtures, owned by the server's OS user and writable by
# everyone, so that files created by the tests (as the calling user, root in CI) sit in a
# directory the server can also write (SQLite creates -wal/-shm next to the database even for
# read-only connections).  Each test removes and recreates its own subdirectory, so runs of
# different tests side by side (two checkouts on one machine) do not pull the floor from
# under each other: the directory itself is kept.
owsync_test_dir() {
  export OWSYNC_TEST_DIR=${1:-/tmp/owsync_regress}
  mkdir -p -m 0777 "$OWSYNC_TEST_DIR"  # mode given to mkdir -m is not reduced by the umask
  chmod 0777 "$OWSYNC_TEST_DIR"
  owsync_give_to_pg "$OWSYNC_TEST_DIR"
}

# owsync_cluster_start CRON_DB: initdb + start a throwaway cluster in $OWSYNC_WORK/data with
# pg_cron preloaded (cron.database_name = CRON_DB, jobs run as background workers: no TCP,
# no password).  Exports PGHOST PGPORT PGUSER for the caller.
owsync_cluster_start() {
  local cron_db=${1:?usage: owsync_cluster_start CRON_DATABASE}
  local port=${OWSYNC_PGPORT:-$((55432 + $$ % 1000))}
  owsync_workdir
  owsync_step "start throwaway cluster in $OWSYNC_WORK (port $port, cron.database_name=$cron_db)"
  owsync_give_to_pg "$OWSYNC_WORK"
  _owsync_cluster_create "$cron_db" "$port"
  export PGHOST=$OWSYNC_WORK PGPORT=$port PGUSER=postgres
}
_owsync_cluster_create() (
  local cron_db=$1 port=$2
  cd /       # (in a subshell) the postgres user may not be allowed into the caller's directory
  owsync_as_pg "$OWSYNC_PGBIN/initdb" -D "$OWSYNC_WORK/data" -U postgres -A trust \
      -E UTF8 --locale=C.UTF-8 --no-sync >"$OWSYNC_WORK/initdb.log" 2>&1 \
    || { cat "$OWSYNC_WORK/initdb.log"; owsync_die "initdb failed"; }
  cat >>"$OWSYNC_WORK/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$OWSYNC_WORK'
port = $port
fsync = off
shared_preload_libraries = 'pg_cron'
cron.database_name = '$cron_db'
cron.use_background_workers = on
max_worker_processes = 16
max_prepared_transactions = 4
CONF
  owsync_as_pg "$OWSYNC_PGBIN/pg_ctl" -D "$OWSYNC_WORK/data" -l "$OWSYNC_WORK/server.log" \
      -w -t 60 start >/dev/null || owsync_die "server did not start"
)

# Stop every cluster under the work dir.
owsync_cluster_stop() (
  [ -n "$OWSYNC_WORK" ] && [ -d "$OWSYNC_WORK" ] || exit 0
  local pidfile
  cd /       # (in a subshell) the postgres user may not be allowed into the caller's directory
  while IFS= read -r pidfile; do
    owsync_as_pg "$OWSYNC_PGBIN/pg_ctl" -D "$(dirname "$pidfile")" -m fast -w -t 30 stop \
        >/dev/null 2>&1 \
      || owsync_as_pg "$OWSYNC_PGBIN/pg_ctl" -D "$(dirname "$pidfile")" -m immediate -w stop \
        >/dev/null 2>&1 || true
  done < <(find "$OWSYNC_WORK" -name postmaster.pid 2>/dev/null)
)

# EXIT trap: stop clusters; on failure show the end of the server log; remove temp dirs.
# Keeps the exit status.  A script may define owsync_on_exit RC, called last (e.g. a summary).
owsync_cleanup() {
  local rc=${1:-$?}
  trap - EXIT INT TERM
  set +e
  owsync_cluster_stop
  if [ "$rc" -ne 0 ] && [ -f "$OWSYNC_WORK/server.log" ]; then
    owsync_step "server log (last 40 lines)"
    tail -n 40 "$OWSYNC_WORK/server.log"
  fi
  if declare -F owsync_on_exit >/dev/null; then owsync_on_exit "$rc"; fi
  [ -n "$OWSYNC_WORK" ] && rm -rf "$OWSYNC_WORK"
  [ "${#OWSYNC_CLEANUP_DIRS[@]}" -eq 0 ] || rm -rf "${OWSYNC_CLEANUP_DIRS[@]}"
  exit "$rc"
}

# owsync_cluster_start_named NAME CRON_DB [EXTRA_CONF]: one more throwaway cluster, beside the
# one of owsync_cluster_start, in $OWSYNC_WORK/NAME (data in NAME/data, socket in NAME, log in
# NAME/server.log), set up to publish by logical replication: wal_level = logical, a bounded
# max_slot_wal_keep_size, room for slots and walsenders.  CRON_DB non-empty preloads pg_cron
# with cron.database_name = CRON_DB (empty: no pg_cron).  EXTRA_CONF lines are appended to
# postgresql.conf last (they win).  The server binaries come from $OWSYNC_PGBIN, which the
# caller may set for the call (OWSYNC_PGBIN=/x/bin owsync_cluster_start_named ...).  Sets
# OWSYNC_PORT[NAME] (the port; the host is the socket directory $OWSYNC_WORK/NAME); exports
# nothing, so PGHOST and friends stay as they were.
declare -gA OWSYNC_PORT=()
owsync_cluster_start_named() {
  local name=${1:?usage: owsync_cluster_start_named NAME CRON_DB [EXTRA_CONF]} cron_db=${2-} extra=${3-}
  local port=$(( ${OWSYNC_PGPORT:-$((55432 + $$ % 1000))} + 1 + ${#OWSYNC_PORT[@]} ))
  owsync_workdir
  owsync_step "start cluster $name in $OWSYNC_WORK/$name (port $port${cron_db:+, cron.database_name=$cron_db})"
  mkdir -p "$OWSYNC_WORK/$name"
  owsync_give_to_pg "$OWSYNC_WORK"
  _owsync_cluster_create_named "$name" "$cron_db" "$port" "$extra"
  OWSYNC_PORT[$name]=$port
}
_owsync_cluster_create_named() (
  local name=$1 cron_db=$2 port=$3 extra=$4 dir=$OWSYNC_WORK/$1
  cd /       # (in a subshell) the postgres user may not be allowed into the caller's directory
  owsync_as_pg "$OWSYNC_PGBIN/initdb" -D "$dir/data" -U postgres -A trust \
      -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log"; owsync_die "initdb of $name failed"; }
  {
    cat <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = off
wal_level = logical
max_slot_wal_keep_size = 256MB
max_replication_slots = 16
max_wal_senders = 16
max_worker_processes = 24
max_logical_replication_workers = 8
max_sync_workers_per_subscription = 4
max_prepared_transactions = 4
CONF
    if [ -n "$cron_db" ]; then
      printf "shared_preload_libraries = 'pg_cron'\ncron.database_name = '%s'\ncron.use_background_workers = on\n" "$cron_db"
    fi
    printf '%s\n' "$extra"
  } >>"$dir/data/postgresql.conf"
  owsync_as_pg "$OWSYNC_PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { tail -n 20 "$dir/server.log"; owsync_die "server $name did not start"; }
)

# owsync_pg_copy_without_owsync DEST: a private copy of the PostgreSQL installation of
# $PG_CONFIG (its lib/postgresql/15 and share/postgresql/15 trees) under DEST, with owsync_fdw's
# files removed, for a cluster that must not be able to load owsync (a hub).  PostgreSQL finds
# its share and library directories relative to its binary, so the copy runs on its own.
# Prints the copy's bin directory.
owsync_pg_copy_without_owsync() {
  local dest=${1:?usage: owsync_pg_copy_without_owsync DEST} bindir libroot shareroot sub
  bindir=$("$PG_CONFIG" --bindir)
  libroot=$(dirname "$bindir")                       # .../lib/postgresql/15
  shareroot=$("$PG_CONFIG" --sharedir)               # .../share/postgresql/15
  sub=${libroot#"$(dirname "$(dirname "$(dirname "$libroot")")")"/}   # lib/postgresql/15
  [ "$sub" = "lib/postgresql/$(basename "$libroot")" ] \
    || owsync_die "unexpected layout of the PostgreSQL installation: $libroot"
  mkdir -p "$dest/$(dirname "$sub")" "$dest/share/postgresql"
  cp -a "$libroot" "$dest/$(dirname "$sub")/"
  cp -a "$shareroot" "$dest/share/postgresql/"
  rm -rf "$dest/$sub/lib/owsync_fdw.so" "$dest/$sub/lib/bitcode/owsync_fdw" \
         "$dest/$sub/lib/bitcode/owsync_fdw.index.bc" \
         "$dest/share/postgresql/$(basename "$shareroot")/extension/owsync_fdw"*
  [ "$("$dest/$sub/bin/pg_config" --sharedir)" = "$dest/share/postgresql/$(basename "$shareroot")" ] \
    || owsync_die "the copy of PostgreSQL in $dest does not find its own share directory"
  echo "$dest/$sub/bin"
}
