#!/usr/bin/env bash
# The pg_regress suite (sql/*.sql) with every PostgreSQL server process under valgrind memcheck:
#   bash test/valgrind/run.sh [--only NAME] [--no-deps]
# As root it installs what it needs (the suite's packages and valgrind), makes a private copy of
# PostgreSQL 15 ($OWSYNC_VALGRIND_PG, default /opt/pg-valgrind) whose bin/postgres is a wrapper
# that runs the real binary under valgrind, builds and installs the extension into that copy,
# starts a throwaway cluster with it and runs pg_regress (make installcheck).  One valgrind log
# per process goes to $OWSYNC_VALGRIND_LOGS (default /var/tmp/owsync-valgrind/<date>), and the
# last lines summarize them: errors whose stack has a frame in owsync_fdw.so (must be 0), other
# errors, suppressed ones.  Exit status: non-zero if any error is in owsync's code or a test failed.
# Slow (about 20 minutes on 2 cores); see docs/TESTING.md for what it can and cannot see.
set -euo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$self")/../.."

# The tests keep their SQLite fixtures in /tmp/owsync_regress: as root, run in a mount namespace
# of our own with a private directory bound there, so a suite running beside us is not disturbed.
if [ -z "${OWSYNC_VALGRIND_NS:-}" ] && [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
  mkdir -p /tmp/owsync_regress /tmp/owsync_regress-valgrind
  exec unshare --mount --propagation private env OWSYNC_VALGRIND_NS=1 bash -c \
    'mount --bind /tmp/owsync_regress-valgrind /tmp/owsync_regress && exec bash "$0" "$@"' \
    "$self" "$@"
fi

deps=1 only=""
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) deps=0 ;;
    --only) only=${2:?--only needs a test name}; shift ;;
    --only=*) only=${1#--only=} ;;
    -h|--help) sed -n '2,11p' "$self"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

PGCOPY=${OWSYNC_VALGRIND_PG:-/opt/pg-valgrind}
export PG_CONFIG=$PGCOPY/lib/postgresql/15/bin/pg_config
. test/lib.sh
OWSYNC_PKGS+=(valgrind)
VG_LOGS=${OWSYNC_VALGRIND_LOGS:-/var/tmp/owsync-valgrind/$(date +%Y%m%d-%H%M%S)}
VG_TIMEOUT=${OWSYNC_VALGRIND_TIMEOUT:-21600}      # pg_regress as a whole, seconds
SYSBIN=/usr/lib/postgresql/15/bin

regress=(ISOLATION=)
if [ -n "$only" ]; then
  [ -f "sql/$only.sql" ] || owsync_die "no pg_regress test named '$only'"
  regress=(REGRESS="$only" ISOLATION=)
fi

n_pass=0 n_fail=0 tests_counted=0 vg_summary="" started=$(date +%s)
owsync_on_exit() {  # the last lines: valgrind's summary, then the tests'
  [ "$1" -ne 0 ] && [ "$tests_counted" -eq 0 ] && [ "$n_fail" -eq 0 ] && n_fail=1
  owsync_step "summary (pg_regress under valgrind, $(( ($(date +%s) - started) / 60 )) min)"
  [ -n "$vg_summary" ] && echo "$vg_summary"
  echo "$n_pass passed, $n_fail failed"
}
owsync_workdir

[ "$deps" -eq 1 ] && owsync_install_deps
command -v valgrind >/dev/null || owsync_die "valgrind not found (apt-get install valgrind)"

# A private relocatable copy of the installation: PostgreSQL finds its share and lib dirs
# relative to its binary, so the copy runs what is installed into it, and nothing else.
# It is made again when the system's PostgreSQL changed (a package upgrade).
make_copy() {
  owsync_step "private PostgreSQL copy: $PGCOPY"
  local sysver copyver=""
  sysver=$("$SYSBIN/postgres" -V)
  [ -x "$OWSYNC_PGBIN/postgres.real" ] && copyver=$("$OWSYNC_PGBIN/postgres.real" -V)
  if [ "$sysver" != "$copyver" ]; then
    echo "copying the installation of $sysver"
    rm -rf "$PGCOPY"
    mkdir -p "$PGCOPY/lib/postgresql" "$PGCOPY/share/postgresql" "$PGCOPY/include/postgresql"
    cp -a /usr/lib/postgresql/15 "$PGCOPY/lib/postgresql/"
    cp -a /usr/share/postgresql/15 "$PGCOPY/share/postgresql/"
    cp -a /usr/include/postgresql/15 "$PGCOPY/include/postgresql/"
    find /usr/include/postgresql -maxdepth 1 -type f -exec cp {} "$PGCOPY/include/postgresql/" \;
    mv "$OWSYNC_PGBIN/postgres" "$OWSYNC_PGBIN/postgres.real"
  else
    echo "up to date ($sysver)"
  fi
  cp test/valgrind/postgres.supp "$PGCOPY/valgrind.supp"
  write_wrapper >"$OWSYNC_PGBIN/postgres"
  chmod 0755 "$OWSYNC_PGBIN/postgres"
  chmod 0644 "$PGCOPY/valgrind.supp"
}

# bin/postgres of the copy: runs the real binary under memcheck.  Server processes are forked
# from the postmaster (no exec), so every backend and background worker inherits valgrind;
# --trace-children also follows anything a server process execs.  initdb's bootstrap and
# single-user runs, its --check probes and pg_ctl's version probe run the binary directly (they run no extension
# code and would only cost time).  One log per process (%p = pid; valgrind opens a new one in
# each forked child), with source paths in full (--fullpath-after=) so that summarize.py can
# tell owsync's frames (under src/ of this checkout) from others; -v adds the count of each
# error context and of each suppression used.  --error-exitcode is not used: a backend exiting
# with an unexpected status makes the postmaster restart every session, turning one report into
# many unrelated test failures.
write_wrapper() {
  cat <<WRAPPER
#!/bin/sh
# Written by test/valgrind/run.sh: runs postgres.real under valgrind memcheck.
REAL='$OWSYNC_PGBIN/postgres.real'
case " \$* " in
  *" -V "*|*" --version "*|*" -C "*|*" --boot "*|*" --single "*|*" --check "*|*" --describe-config "*)
    exec "\$REAL" "\$@" ;;
esac
exec valgrind --tool=memcheck --trace-children=yes --error-limit=no --num-callers=40 \\
  --read-var-info=no --track-origins=yes --fullpath-after= --leak-check=full --show-leak-kinds=definite \\
  --errors-for-leak-kinds=definite --suppressions='$PGCOPY/valgrind.supp' \\
  --gen-suppressions=all -v --log-file='$VG_LOGS/%p.log' ${OWSYNC_VALGRIND_ARGS:-} "\$REAL" "\$@"
WRAPPER
}

make_copy
mkdir -p "$VG_LOGS"
owsync_give_to_pg "$VG_LOGS"
owsync_build_install
owsync_test_dir /tmp/owsync_regress
owsync_cluster_start contrib_regression
# The JIT compiler (LLVM) would run under valgrind too: slow and out of scope here.
psql -X -q -d postgres -c "ALTER SYSTEM SET jit = off" -c "SELECT pg_reload_conf()" >/dev/null

owsync_step "pg_regress under valgrind (make installcheck; timeout ${VG_TIMEOUT}s)"
out=$OWSYNC_WORK/installcheck.out ok=1
owsync_run "$VG_TIMEOUT" "$out" make PG_CONFIG="$PG_CONFIG" installcheck "${regress[@]}" || ok=0
n_pass=$(grep -cE '\.\.\. ok ' "$out" || true)
n_fail=$(grep -cE '\.\.\. FAILED' "$out" || true)
tests_counted=1
if [ "$ok" -eq 0 ]; then
  [ "$n_fail" -eq 0 ] && n_fail=1
  [ -f regression.diffs ] && cp regression.diffs "$VG_LOGS/regression.diffs" &&
    echo "pg_regress differences kept in $VG_LOGS/regression.diffs"
fi

# Stop the server before reading the reports: each process writes its leak check and its error
# counts when it exits.  Processes under valgrind exit slowly, hence the long wait.
owsync_step "stop the cluster (fast shutdown)"
(cd / && owsync_as_pg "$OWSYNC_PGBIN/pg_ctl" -D "$OWSYNC_WORK/data" -m fast -w -t 600 stop) || true
cp "$OWSYNC_WORK/server.log" "$VG_LOGS/server.log"
owsync_step "valgrind reports ($VG_LOGS)"
vg_ok=1
python3 test/valgrind/summarize.py "$VG_LOGS" "$OWSYNC_ROOT/src" | tee "$VG_LOGS/summary.txt" || vg_ok=0
vg_summary=$(tail -n 1 "$VG_LOGS/summary.txt")
[ "$ok" -eq 1 ] && [ "$vg_ok" -eq 1 ]
