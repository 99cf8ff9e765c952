#!/usr/bin/env bash
# owsync_fdw's whole test suite:  bash test/run-tests.sh [--no-deps] [--only NAME]
# As root on a fresh Debian bookworm it installs what it needs (apt), builds and installs the
# extension, starts a throwaway PostgreSQL 15 cluster with pg_cron preloaded, and runs
#   1. the pg_regress tests sql/*.sql (make installcheck, as the calling user),
#   2. the isolation tests specs/*.spec (make installcheck, in database isolation_regression),
#   3. the structure check test/check_structure.py (SQL files layered, no SQL routine over 100
#      lines, no cycle between C files),
#   4. the fleet test test/fleet/run.sh (two edges and a hub, clusters of their own), each of
#      its "ok - " / "not ok - " lines counted;
#   5. the Open WebUI test test/openwebui/run.sh (the real application, installed from the
#      Python package index into cached virtual environments), its lines counted the same way.
# --no-deps skips apt; --only NAME runs only sql/NAME.sql, specs/NAME.spec or, for "structure",
# "fleet" and "openwebui", the structure check, the fleet test or the Open WebUI test.
# The last line is "N passed, N failed"; the exit status is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. test/lib.sh

deps=1 only=""
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) deps=0 ;;
    --only) only=${2:?--only needs a test name}; shift ;;
    --only=*) only=${1#--only=} ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# What to run: make's own lists (REGRESS = every sql/*.sql), or just the --only test.
regress=(ISOLATION=) iso=() structure=1 fleet=1 openwebui=1
grep -qE '^ISOLATION[[:space:]]*[:+?]?=' Makefile && iso=(REGRESS=)
if [ -n "$only" ]; then
  regress=() iso=() structure=0 fleet=0 openwebui=0
  [ -f "sql/$only.sql" ] && regress=(REGRESS="$only" ISOLATION=)
  [ -f "specs/$only.spec" ] && iso=(REGRESS= ISOLATION="$only")
  [ "$only" = structure ] && structure=1
  [ "$only" = fleet ] && fleet=1
  [ "$only" = openwebui ] && openwebui=1
  [ -n "${regress[*]}${iso[*]}" ] || [ "$structure" -eq 1 ] || [ "$fleet" -eq 1 ] || [ "$openwebui" -eq 1 ] \
    || owsync_die "no test named '$only'"
fi

n_pass=0 n_fail=0
# Called by the cleanup trap after the server log, so this is the last line in every case
# (a failed install or build counts as one failure).
owsync_on_exit() {
  [ "$1" -ne 0 ] && [ "$n_fail" -eq 0 ] && n_fail=1
  owsync_step "summary (pg_regress + isolation tests + structure check + fleet test + Open WebUI test)"
  echo "$n_pass passed, $n_fail failed"
}
owsync_workdir

[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
owsync_test_dir /tmp/owsync_regress        # the tests' SQLite files live here (test/fixtures/make.sh)
if [ "${#regress[@]}" -gt 0 ] || [ "${#iso[@]}" -gt 0 ]; then
  owsync_cluster_start contrib_regression   # pg_regress's database for PGXS
fi
# Note: pg_regress clears PGDATABASE (and PGSERVICE...) for the psql it runs, so shell commands
# in tests (\! psql ...) must name the database: psql -X -d contrib_regression.

# pg_regress and the isolation tester run in two make calls: a failing pg_regress aborts the
# installcheck recipe, so one call would skip the isolation tests.  pg_regress deletes its
# output files when all pass, so results are counted from a copy of its stdout.
installcheck() {  # $1 = label, $2 = diffs file, rest = make variable overrides
  local label=$1 diffs=$2 out=$OWSYNC_WORK/installcheck.out ok=1 p f; shift 2
  owsync_step "$label"
  owsync_run 1800 "$out" make PG_CONFIG="$PG_CONFIG" installcheck "$@" || ok=0
  p=$(grep -cE '\.\.\. ok ' "$out" || true)
  f=$(grep -cE '\.\.\. FAILED' "$out" || true)
  if [ "$ok" -eq 0 ]; then
    [ "$f" -eq 0 ] && f=1                   # make failed before any test could report
    if [ -f "$diffs" ]; then owsync_step "$diffs"; cat "$diffs"; fi
  fi
  n_pass=$((n_pass + p)) n_fail=$((n_fail + f))
}
[ "${#regress[@]}" -gt 0 ] && installcheck "pg_regress (make installcheck)" regression.diffs "${regress[@]}"
[ "${#iso[@]}" -gt 0 ] && installcheck "isolation tests (make installcheck)" output_iso/regression.diffs "${iso[@]}"
if [ "$structure" -eq 1 ]; then
  owsync_step "structure check (test/check_structure.py)"
  if python3 test/check_structure.py .; then n_pass=$((n_pass + 1)); else n_fail=$((n_fail + 1)); fi
fi

# count_checks NAME SECS SCRIPT: run a test script that starts clusters of its own (and stops
# them), at most SECS seconds; its ok/not ok lines are counted, and a run that ends badly
# without a "not ok" line counts as one failure.
count_checks() {
  local out=$OWSYNC_WORK/$1.out ok=1 p f
  owsync_run "$2" "$out" bash "$3" || ok=0
  p=$(grep -cE '^ok - ' "$out" || true)
  f=$(grep -cE '^not ok - ' "$out" || true)
  [ "$ok" -eq 0 ] && [ "$f" -eq 0 ] && f=1
  n_pass=$((n_pass + p)) n_fail=$((n_fail + f))
}
if [ "$fleet" -eq 1 ]; then
  owsync_step "fleet test (test/fleet/run.sh)"
  count_checks fleet 900 test/fleet/run.sh
fi
# The Open WebUI test installs Open WebUI once per machine (test/openwebui/lib.sh: owui_venv).
if [ "$openwebui" -eq 1 ]; then
  owsync_step "Open WebUI test (test/openwebui/run.sh)"
  count_checks openwebui 2400 test/openwebui/run.sh
fi

[ "$n_fail" -eq 0 ]
