# shellcheck shell=bash
# The real Open WebUI as owsync's test client: install (cached), start offline, stop.
# Source it from a bash script running under `set -euo pipefail` (it sources test/lib.sh):
#
#   . test/openwebui/lib.sh
#   venv=$(owui_venv 0.12.4)                                 # cached venv, prints its path
#   owui_start NAME VERSION DATADIR PORT MODE [VAR=VALUE ...]  # MODE: wal | delete | pg:URL
#   owui_stop NAME

OWUI_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$OWUI_LIB_DIR/../lib.sh"
OWUI_CACHE=${OWSYNC_CACHE:-/var/cache/owsync-test}
# The interpreter of the venvs: one that the owsync_owui user can run (not one under /root).
OWUI_PYTHON=${OWUI_PYTHON:-/usr/bin/python3}
OWUI_TORCH=${OWUI_TORCH:-2.13.0}   # the CPU build on this machine's disk; a bare `torch` is CUDA

# owui_venv VERSION: print the path of a venv with open-webui==VERSION, installing it once per
# machine into $OWUI_CACHE/openwebui-VERSION.  The venv is built in a temp dir beside it and
# renamed into place when complete (so an interrupted install is never taken as cached); its
# file owsync-freeze.txt records `pip freeze`.  Concurrent callers wait on a lock.  Progress and
# the install's timing go to stderr, the pip log to $OWUI_CACHE/openwebui-VERSION.install.log.
# Everything in the venv is run as `VENV/bin/python -m ...`: scripts' shebangs name the temp dir.
owui_venv() {
  local version=${1:?usage: owui_venv VERSION}
  local dir=$OWUI_CACHE/openwebui-$version
  mkdir -p "$OWUI_CACHE"
  chmod 0755 "$OWUI_CACHE"
  if [ ! -f "$dir/owsync-freeze.txt" ]; then
    (
      flock 9
      [ -f "$dir/owsync-freeze.txt" ] && exit 0
      _owui_venv_build "$version" "$dir"
    ) 9>"$OWUI_CACHE/openwebui-$version.lock" >&2 || return 1
  fi
  echo "$dir"
}
_owui_venv_build() {
  local version=$1 dir=$2 tmp log=$OWUI_CACHE/openwebui-$1.install.log t0
  rm -rf "$dir"                         # an incomplete leftover (no freeze file)
  tmp=$(mktemp -d "$OWUI_CACHE/.openwebui-$version.XXXXXX")
  t0=$SECONDS
  echo "owui_venv: installing open-webui==$version into $dir (log: $log)"
  : >"$log"
  if ! { "$OWUI_PYTHON" -m venv "$tmp" \
         && "$tmp/bin/python" -m pip install --no-input "torch==$OWUI_TORCH" \
         && "$tmp/bin/python" -m pip install --no-input "open-webui==$version"; } >>"$log" 2>&1; then
    tail -n 30 "$log"
    rm -rf "$tmp"
    echo "owui_venv: install of open-webui==$version failed (log: $log)"
    return 1
  fi
  "$tmp/bin/python" -m pip freeze >"$tmp/owsync-freeze.txt.part"
  mv "$tmp/owsync-freeze.txt.part" "$tmp/owsync-freeze.txt"
  chmod -R a+rX "$tmp"
  mv "$tmp" "$dir"
  echo "owui_venv: open-webui==$version installed in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------------------------
# Running an instance.
#
# Network isolation: each instance NAME gets a network namespace of its own, held by a
# `sleep infinity` started with `unshare --net` (its pid in $OWUI_STATE/NAME/netns.pid), with
# only the loopback interface, brought up.  Open WebUI and its fake model server
# (fake_openai.py, on 127.0.0.1:PORT+1 or $OWUI_FAKE_PORT) run in it, and so must every client
# of the instance: `owui_exec NAME CMD...` runs CMD in it (e.g. drive.py).  Nothing in there can
# reach any other address, so an attempt to call out fails at once.  Loopback ports are private
# to a namespace: two instances may use the same PORT.  PostgreSQL is reached through its unix
# socket, which needs no network.  With OWUI_STRACE=1 Open WebUI runs under
# `strace -f -e trace=%network`, its log in $OWUI_STATE/NAME/strace.log; `owui_calls_out NAME`
# then lists every connect/send to an address other than loopback or a unix socket.
#
# OS user: Open WebUI runs as `owsync_owui` (created if missing, with a group of its own that
# the `postgres` OS user joins), with umask 0007: DATADIR is owsync_owui's, mode 2770 (setgid),
# webui.db mode 0660, so webui.db and its -wal/-shm belong to group owsync_owui and postgres
# reads them (and writes the -shm, as a WAL reader must).  Sourcing this file as root runs
# owui_user, so that clusters started after it have the group (a process keeps the groups it
# started with).
#
# Offline: the environment below switches off every outbound feature Open WebUI 0.12.4 has at
# start (update check, Hugging Face downloads, telemetry, Ollama, the local embedding model:
# embeddings go to the fake server through the `openai` engine, so no model is loaded).
# ---------------------------------------------------------------------------------------------
OWUI_USER=owsync_owui
OWUI_STATE=${OWUI_STATE:-/tmp/owsync-owui}
OWUI_START_TIMEOUT=${OWUI_START_TIMEOUT:-300}
OWUI_SECRET_KEY=${OWUI_SECRET_KEY:-owsync-test-secret-key-not-for-production}
OWUI_STARTED=()   # instances started by this shell, for owui_stop_all

# The OS user of Open WebUI, and postgres in its group (for reading webui.db).
owui_user() {
  if ! id -u "$OWUI_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin "$OWUI_USER"
  fi
  if id -u postgres >/dev/null 2>&1 && ! id -nG postgres | tr ' ' '\n' | grep -qx "$OWUI_USER"; then
    usermod -a -G "$OWUI_USER" postgres
  fi
}

# As root, make the user at once: a PostgreSQL cluster started later has the group (its
# processes get the groups of the moment they start).
if owsync_is_root; then owui_user; fi

_owui_netns_pid() { cat "$OWUI_STATE/${1:?}/netns.pid"; }

# owui_exec NAME CMD...: run CMD (as the caller) in instance NAME's network namespace.
owui_exec() {
  local name=${1:?usage: owui_exec NAME CMD...}; shift
  nsenter --net="/proc/$(_owui_netns_pid "$name")/ns/net" -- "$@"
}

# owui_url NAME: the base URL of instance NAME (valid inside its namespace).
owui_url() { echo "http://127.0.0.1:$(cat "$OWUI_STATE/${1:?}/port")"; }

# A PostgreSQL URL with the driver Open WebUI installs: its migrations use a synchronous
# SQLAlchemy engine, whose default driver for postgresql:// is psycopg2, which `pip install
# open-webui` does not bring (only its `all` extra does); psycopg 3, which it
# does bring, serves the same URL as postgresql+psycopg://.
_owui_pg_url() {
  case $1 in
    postgresql://*) echo "postgresql+psycopg://${1#postgresql://}" ;;
    postgres://*)   echo "postgresql+psycopg://${1#postgres://}" ;;
    *)              echo "$1" ;;
  esac
}

# Let owsync_owui reach the unix socket directory named by host= in a PostgreSQL URL: each
# directory on the way that it may not pass through gets o+x (pass through, not list), e.g.
# the mode-0700 work directory of a throwaway cluster.
_owui_pg_socket_access() {
  local host d path=""
  host=$("$OWUI_PYTHON" -c 'import sys, urllib.parse as u
print(u.parse_qs(u.urlsplit(sys.argv[1]).query).get("host", [""])[0])' "$1")
  case $host in /*) ;; *) return 0 ;; esac
  local IFS=/
  for d in ${host#/}; do
    path=$path/$d
    [ -d "$path" ] || return 0
    if ! setpriv --reuid="$OWUI_USER" --regid="$OWUI_USER" --init-groups -- test -x "$path"; then
      chmod o+x "$path"
      echo "owui_start: $path made passable (o+x) for $OWUI_USER, to reach the PostgreSQL socket"
    fi
  done
}

# The environment Open WebUI runs with (one VAR=VALUE a line), for DATADIR, the fake model
# server's port and MODE.
_owui_env() {
  local datadir=$1 home=$2 fake=$3 mode=$4
  cat <<ENV
PATH=/usr/local/bin:/usr/bin:/bin
HOME=$home
LANG=C.UTF-8
DATA_DIR=$datadir
STATIC_DIR=$home/static
WEBUI_SECRET_KEY=$OWUI_SECRET_KEY
GLOBAL_LOG_LEVEL=INFO
OFFLINE_MODE=true
HF_HUB_OFFLINE=1
TRANSFORMERS_OFFLINE=1
HF_DATASETS_OFFLINE=1
HF_HUB_DISABLE_TELEMETRY=1
ENABLE_VERSION_UPDATE_CHECK=false
ANONYMIZED_TELEMETRY=false
DO_NOT_TRACK=true
SCARF_NO_ANALYTICS=true
ENABLE_OTEL=false
ENABLE_OLLAMA_API=false
OLLAMA_BASE_URL=http://127.0.0.1:11434
ENABLE_OPENAI_API=true
OPENAI_API_BASE_URL=http://127.0.0.1:$fake/v1
OPENAI_API_KEY=owsync-fake-key
RAG_EMBEDDING_ENGINE=openai
RAG_EMBEDDING_MODEL=owsync-embed
RAG_OPENAI_API_BASE_URL=http://127.0.0.1:$fake/v1
RAG_OPENAI_API_KEY=owsync-fake-key
RAG_EMBEDDING_MODEL_AUTO_UPDATE=false
RAG_RERANKING_MODEL_AUTO_UPDATE=false
WHISPER_MODEL_AUTO_UPDATE=false
ENABLE_WEB_SEARCH=false
ENABLE_COMMUNITY_SHARING=false
ENABLE_CHANNELS=true
ENABLE_NOTES=true
ENV
  case $mode in
    wal)    echo "DATABASE_ENABLE_SQLITE_WAL=true" ;;
    delete) echo "DATABASE_ENABLE_SQLITE_WAL=false" ;;
    pg:*)   echo "DATABASE_URL=$(_owui_pg_url "${mode#pg:}")" ;;
    *)      owsync_die "owui_start: MODE must be wal, delete or pg:DATABASE_URL, not '$mode'" ;;
  esac
}

# owui_start NAME VERSION DATADIR PORT MODE [VAR=VALUE ...]: start Open WebUI VERSION on
# DATADIR (created if missing), on 127.0.0.1:PORT in a network namespace of its own (see
# above), with its fake model server; MODE is wal, delete (DATABASE_ENABLE_SQLITE_WAL) or
# pg:DATABASE_URL; VAR=VALUE override or add to its environment.  Returns once its /ready
# (or, in versions without it, /health) answers 200, within $OWUI_START_TIMEOUT seconds.
# Log: DATADIR/../NAME.log (fake server: DATADIR/../NAME.fake.log); HOME (static files, the
# secret key file of `serve`): DATADIR/../NAME.home.
owui_start() {
  local name=${1:?usage: owui_start NAME VERSION DATADIR PORT MODE [VAR=VALUE ...]}
  local version=${2:?} datadir=${3:?} port=${4:?} mode=${5:?}; shift 5
  local venv state=$OWUI_STATE/$name parent home log fake t0 nspid pid code
  local -a envs trace=()
  venv=$(owui_venv "$version")
  owui_user
  if [ -f "$state/netns.pid" ] && kill -0 "$(cat "$state/netns.pid")" 2>/dev/null; then
    owsync_die "owui_start: an instance named $name is running (owui_stop $name first)"
  fi
  rm -rf "$state"; mkdir -p "$state"
  mkdir -p "$datadir"
  datadir=$(cd "$datadir" && pwd)
  parent=$(dirname "$datadir")
  home=$parent/$name.home
  log=$parent/$name.log
  fake=${OWUI_FAKE_PORT:-$((port + 1))}
  mkdir -p "$home"
  chown -R "$OWUI_USER:$OWUI_USER" "$datadir" "$home"
  chmod 2770 "$datadir"
  chmod 0750 "$home"
  _owui_db_perms "$datadir" "$mode"
  case $mode in pg:*) _owui_pg_socket_access "${mode#pg:}" ;; esac
  mapfile -t envs < <(_owui_env "$datadir" "$home" "$fake" "$mode")
  envs+=("$@")
  printf '%s\n' "$port" >"$state/port"
  printf '%s\n' "$datadir" >"$state/datadir"

  unshare --net -- sleep infinity >/dev/null 2>&1 </dev/null &
  nspid=$!
  echo "$nspid" >"$state/netns.pid"
  OWUI_STARTED+=("$name")
  _owui_wait_netns "$nspid" || owsync_die "owui_start: no network namespace for $name"
  nsenter --net="/proc/$nspid/ns/net" -- ip link set lo up

  nsenter --net="/proc/$nspid/ns/net" -- setpriv --reuid="$OWUI_USER" --regid="$OWUI_USER" \
      --init-groups -- "$OWUI_PYTHON" "$OWUI_LIB_DIR/fake_openai.py" "$fake" \
      >"$parent/$name.fake.log" 2>&1 </dev/null &
  echo $! >"$state/fake.pid"

  if [ "${OWUI_STRACE:-0}" = 1 ]; then
    trace=(strace -f -qq -e trace=%network -e signal=none -o "$state/strace.log")
    chown "$OWUI_USER" "$state"
  fi
  owsync_step "start Open WebUI $version as $name: $mode, $datadir, port $port"
  t0=$(date +%s.%N)
  (
    cd "$home"
    umask 0007
    exec nsenter --net="/proc/$nspid/ns/net" -- setpriv --reuid="$OWUI_USER" \
      --regid="$OWUI_USER" --init-groups -- env -i "${envs[@]}" "${trace[@]}" \
      "$venv/bin/python" -c 'import sys; sys.argv[0] = "open-webui"; from open_webui import app; app()' \
      serve --host 127.0.0.1 --port "$port"
  ) >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$state/owui.pid"
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$log"
      owsync_die "owui_start: Open WebUI $name exited during start (log: $log)"
    fi
    code=$(owui_exec "$name" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready" || true)
    if [ "$code" = 404 ]; then
      code=$(owui_exec "$name" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || true)
    fi
    [ "$code" = 200 ] && break
    if (( $(date +%s) - ${t0%.*} > OWUI_START_TIMEOUT )); then
      tail -n 40 "$log"
      owsync_die "owui_start: Open WebUI $name not ready within $OWUI_START_TIMEOUT s (log: $log)"
    fi
    sleep 0.5
  done
  printf 'owui_start: %s ready in %.1f s\n' "$name" "$(echo "$(date +%s.%N) - $t0" | bc)"
}

# webui.db and its -wal/-shm/-journal files read and written by group owsync_owui (postgres):
# SQLite creates the -wal and -shm files with the main file's mode, and PostgreSQL's read-only
# reader of a WAL database must write the -shm file (to rebuild the WAL index when Open WebUI
# has stopped and left a non-empty -wal).  A new data dir gets an empty webui.db of mode 0660,
# which SQLite takes as a new database: Open WebUI's migrations create every table in it.
_owui_db_perms() {
  local datadir=$1 mode=$2 f
  case $mode in pg:*) return 0 ;; esac
  if [ ! -e "$datadir/webui.db" ]; then
    install -m 0660 -o "$OWUI_USER" -g "$OWUI_USER" /dev/null "$datadir/webui.db"
  fi
  for f in "$datadir"/webui.db "$datadir"/webui.db-wal "$datadir"/webui.db-shm "$datadir"/webui.db-journal; do
    [ -e "$f" ] && chmod 0660 "$f"
  done
  return 0
}

_owui_wait_netns() {  # $1 = holder pid: until it runs in a namespace other than ours
  local i
  for i in $(seq 100); do
    if [ "$(readlink "/proc/$1/ns/net" 2>/dev/null)" != "$(readlink /proc/self/ns/net)" ] \
       && [ -n "$(readlink "/proc/$1/ns/net" 2>/dev/null)" ]; then
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# The pids of every process in instance NAME's namespace but its holder.
_owui_ns_pids() {
  local nspid=$1 ns p
  ns=$(readlink "/proc/$nspid/ns/net") || return 0
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" != "$nspid" ] || continue
    [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$ns" ] && echo "$p"
  done
  return 0
}

# owui_stop NAME: stop instance NAME: SIGTERM to every process in its namespace (Open WebUI,
# the fake model server, anything a client left there), up to 30 s for them to exit, then
# SIGKILL; then its namespace.  Safe to call for an instance that is not running.
owui_stop() {
  local name=${1:?usage: owui_stop NAME} state=$OWUI_STATE/$1 nspid pids i
  [ -f "$state/netns.pid" ] || return 0
  nspid=$(cat "$state/netns.pid")
  if kill -0 "$nspid" 2>/dev/null; then
    pids=$(_owui_ns_pids "$nspid")
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      for i in $(seq 300); do
        pids=$(_owui_ns_pids "$nspid")
        [ -z "$pids" ] && break
        sleep 0.1
      done
      if [ -n "$pids" ]; then
        echo "owui_stop: $name did not exit within 30 s: SIGKILL to $pids" >&2
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
      fi
    fi
    kill -KILL "$nspid" 2>/dev/null || true
  fi
  wait "$nspid" 2>/dev/null || true
  [ -f "$state/owui.pid" ] && wait "$(cat "$state/owui.pid")" 2>/dev/null || true
  [ -f "$state/fake.pid" ] && wait "$(cat "$state/fake.pid")" 2>/dev/null || true
  rm -f "$state/netns.pid"
}

# owui_stop_all: stop every instance this shell started (for an EXIT trap).
owui_stop_all() {
  local n
  for n in "${OWUI_STARTED[@]}"; do owui_stop "$n"; done
}

# owui_calls_out NAME: with OWUI_STRACE=1 at start, print every network call of Open WebUI
# whose address is neither loopback nor a unix socket (nothing printed: it never called out).
owui_calls_out() {
  local f=$OWUI_STATE/${1:?}/strace.log
  [ -f "$f" ] || owsync_die "owui_calls_out: no $f (start with OWUI_STRACE=1)"
  grep -E '^[0-9]+ +(connect|sendto|sendmsg|sendmmsg)\(.*sa_family=AF_INET6?' "$f" \
    | grep -vE 'inet_addr\("127\.|inet_pton\(AF_INET6, "::1"|inet_pton\(AF_INET6, "::ffff:127\.' \
    || true
}
