#!/usr/bin/env bash
# owsync_fdw's whole test suite:  bash test/run-tests.sh [--no-deps] [--only NAME]
# As root on a fresh Debian bookworm it installs what it needs (apt), builds and installs the
# extension, starts a throwaway PostgreSQL 15 cluster with pg_cron preloaded, and runs
#   1. the pg_regress tests sql/*.sql (make installcheck, as the calling user),
#   2. the isolation tests, if the Makefile defines ISOLATION,
#   3. the TAP tests test/t/*.pl (prove, as the postgres OS user; each starts its own clusters).
# --no-deps skips apt; --only NAME runs only sql/NAME.sql, specs/NAME.spec or test/t/NAME.pl.
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
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# What to run: make's own lists (REGRESS = every sql/*.sql), or just the --only test.
regress=(ISOLATION=) iso=() taps=(test/t/*.pl)
[ -e "${taps[0]}" ] || taps=()
grep -qE '^ISOLATION[[:space:]]*[:+?]?=' Makefile && iso=(REGRESS=)
if [ -n "$only" ]; then
  regress=() iso=() taps=()
  [ -f "sql/$only.sql" ] && regress=(REGRESS="$only" ISOLATION=)
  [ -f "specs/$only.spec" ] && iso=(REGRESS= ISOLATION="$only")
  [ -f "test/t/$only.pl" ] && taps=("test/t/$only.pl")
  [ -n "${regress[*]}${iso[*]}${taps[*]}" ] || owsync_die "no test named '$only'"
fi

n_pass=0 n_fail=0
# Called by the cleanup trap after the server log, so this is the last line in every case
# (a failed install or build counts as one failure).
owsync_on_exit() {
  [ "$1" -ne 0 ] && [ "$n_fail" -eq 0 ] && n_fail=1
  owsync_step "summary (pg_regress + isolation tests + TAP files)"
  echo "$n_pass passed, $n_fail failed"
}
owsync_workdir

[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
owsync_test_dir /tmp/owsync_regress        # the pg_regress tests' SQLite fixtures live here
owsync_cluster_start contrib_regression     # pg_regress's database for PGXS
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

# TAP tests run as postgres (initdb refuses root) from a postgres-owned copy: prove writes
# tmp_check/ into TESTDIR.  OWSYNC_SRC is the repository (for test/ and test/gen_openwebui.py),
# or a copy of its test/ when the postgres user cannot read the checkout (e.g. under /root).
run_tap() {
  local tapdir=$OWSYNC_WORK/tap src=$OWSYNC_ROOT pgxs ok=1 f t files=()
  owsync_step "TAP tests (prove, as the postgres OS user)"
  pgxs=$("$PG_CONFIG" --pkglibdir)/pgxs
  mkdir -p "$tapdir/t"
  cp "${taps[@]}" "$tapdir/t/"
  for t in "${taps[@]}"; do files+=("t/${t##*/}"); done    # never "t/": prove wants *.t there
  if [ -n "$(owsync_as_pg find "$OWSYNC_ROOT/test" ! -readable -print -quit 2>&1)" ]; then
    src=$tapdir/src
    mkdir -p "$src"
    cp -r test "$src/"
    echo "the postgres user cannot read $OWSYNC_ROOT/test: OWSYNC_SRC=$src (a copy)"
  fi
  owsync_give_to_pg "$tapdir"
  owsync_run 1800 "$OWSYNC_WORK/prove.out" "${OWSYNC_AS_PG[@]}" env -C "$tapdir" \
    -u PGHOST -u PGPORT -u PGUSER PATH="$OWSYNC_PGBIN:$PATH" TESTDIR="$tapdir" \
    PG_REGRESS="$pgxs/src/test/regress/pg_regress" OWSYNC_SRC="$src" \
    prove -I "$pgxs/src/test/perl" "${files[@]}" || ok=0
  f=$(grep -cE '^t/.*\(Wstat' "$OWSYNC_WORK/prove.out" || true)   # one line per failed file
  if [ "$ok" -eq 0 ]; then
    [ "$f" -eq 0 ] && f=${#taps[@]}           # prove died without a summary: count all
    for log in "$tapdir"/tmp_check/log/regress_log_*; do
      [ -f "$log" ] || continue
      owsync_step "$(basename "$log") (last 60 lines)"; tail -n 60 "$log"
    done
  fi
  n_pass=$((n_pass + ${#taps[@]} - f)) n_fail=$((n_fail + f))
}
[ "${#taps[@]}" -gt 0 ] && run_tap

[ "$n_fail" -eq 0 ]
