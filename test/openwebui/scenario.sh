#!/usr/bin/env bash
# scenario.sh MODE [VERSION]: one Open WebUI on a fresh data directory, populated through its
# API, dumped, its users' logins checked, stopped.  MODE: wal, delete or pg (a throwaway
# PostgreSQL cluster, Open WebUI on it through DATABASE_URL over the unix socket).
# Leaves its files in $OWUI_KEEP (default: a temp dir, removed) for a look.
set -euo pipefail
mode=${1:?usage: scenario.sh wal|delete|pg [VERSION]}
version=${2:-0.12.4}
. "$(dirname "$0")/lib.sh"
owsync_workdir
owsync_on_exit() { owui_stop_all; }
dir=${OWUI_KEEP:-$OWSYNC_WORK/owui}
rm -rf "$dir"; mkdir -p "$dir"; chmod 0755 "$dir"   # an empty data dir: Open WebUI creates webui.db
name=s-$mode-$$
case $mode in
  wal|delete) owui_mode=$mode ;;
  pg)
    owsync_cluster_start_named owui ""
    (cd / && owsync_as_pg psql -h "$OWSYNC_WORK/owui" -p "${OWSYNC_PORT[owui]}" -U postgres -qX \
       -c "CREATE ROLE owui LOGIN" -c "CREATE DATABASE owui OWNER owui")
    owui_mode="pg:postgresql://owui@/owui?host=$OWSYNC_WORK/owui&port=${OWSYNC_PORT[owui]}"
    ;;
  *) owsync_die "MODE must be wal, delete or pg" ;;
esac
t0=$SECONDS
OWUI_STRACE=${OWUI_STRACE:-1} owui_start "$name" "$version" "$dir/data" 8080 "$owui_mode"
url=$(owui_url "$name")
owui_exec "$name" python3 "$OWUI_LIB_DIR/drive.py" "$url" populate "$dir/users.json"
owui_exec "$name" python3 "$OWUI_LIB_DIR/drive.py" "$url" dump "$dir/users.json" "$dir/dump.json"
owui_exec "$name" python3 "$OWUI_LIB_DIR/drive.py" "$url" login-check "$dir/users.json"
echo "calls out (anything below is an address other than loopback):"
owui_calls_out "$name"
owui_stop "$name"
echo "scenario $mode: done in $((SECONDS - t0)) s"
