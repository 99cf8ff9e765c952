#!/usr/bin/env bash
# libFuzzer run of the fast json check against PostgreSQL's own JSON parser:
#   bash test/fuzz/run.sh [SECONDS] [libFuzzer options...]      (default 600 s)
# Installs clang-14, its sanitizer/libFuzzer runtime and PostgreSQL's server headers if missing
# (root, apt), builds test/fuzz/json_fuzz.c with src/json_valid.c compiled twice (SSE2 and
# portable) and libpgcommon.a, replays the seed corpus test/fuzz/corpus/json, then fuzzes for
# SECONDS.  New inputs go to $OWSYNC_FUZZ_WORK/corpus (default /var/tmp/owsync-fuzz), a failing
# input to $OWSYNC_FUZZ_WORK/crash-*; the repository's corpus is only read.  Reproduce a
# finding with: $OWSYNC_FUZZ_WORK/json_fuzz FILE (OWSYNC_FUZZ_VERBOSE=1 prints the verdicts).
# Exit status: non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/../.."

secs=${1:-600}
[ $# -gt 0 ] && shift
case $secs in ''|*[!0-9]*) echo "usage: bash test/fuzz/run.sh [SECONDS] [libFuzzer options...]" >&2; exit 2 ;; esac
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
WORK=${OWSYNC_FUZZ_WORK:-/var/tmp/owsync-fuzz}
CC=clang-14
PKGS=(clang-14 libclang-rt-14-dev postgresql-server-dev-15 libsqlite3-dev)

step() { printf '\n==== [%s] %s\n' "$(date +%T)" "$*"; }

step "dependencies"
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "missing packages: ${missing[*]} (run as root to install)" >&2; exit 1; }
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "all packages already installed"
fi

step "build $WORK/json_fuzz"
mkdir -p "$WORK/corpus"
INC=$("$PG_CONFIG" --includedir-server)
PKGLIB=$("$PG_CONFIG" --pkglibdir)           # libpgcommon.a, libpgport.a (frontend builds)
CFLAGS=(-g -O1 -Wno-ignored-attributes -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all)
# json_valid.c as built on x86-64, and as built where there is no SSE2 (the Makefile's
# check-portable flags); renamed so both live in one binary.
"$CC" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link -I src -I "$INC" \
  -Dowsync_json_valid_fast=owsync_json_valid_fast_sse2 \
  -c src/json_valid.c -o "$WORK/json_valid_sse2.o"
"$CC" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link -I src -I "$INC" -U__SSE2__ -mno-sse2 -mno-sse \
  -Dowsync_json_valid_fast=owsync_json_valid_fast_portable \
  -c src/json_valid.c -o "$WORK/json_valid_portable.o"
if nm "$WORK/json_valid_portable.o" | grep -q ' U .*_mm_' ||
   objdump -d "$WORK/json_valid_portable.o" | grep -qE '\s(movdqu|pcmpeqb|pmovmskb)\s'; then
  echo "the portable build still uses SSE2 instructions" >&2; exit 1
fi
"$CC" "${CFLAGS[@]}" -I "$INC" -c test/fuzz/json_fuzz.c -o "$WORK/json_fuzz.o"
"$CC" "${CFLAGS[@]}" -fsanitize=fuzzer "$WORK/json_fuzz.o" "$WORK/json_valid_sse2.o" \
  "$WORK/json_valid_portable.o" "$PKGLIB/libpgcommon.a" "$PKGLIB/libpgport.a" -lm \
  -o "$WORK/json_fuzz"

step "replay the seed corpus (test/fuzz/corpus/json)"
"$WORK/json_fuzz" -runs=0 test/fuzz/corpus/json 2>&1 | tail -n 3

step "fuzz for ${secs}s"
set +e
"$WORK/json_fuzz" -max_total_time="$secs" -max_len="${OWSYNC_FUZZ_MAX_LEN:-8192}" \
  -dict=test/fuzz/json.dict -artifact_prefix="$WORK/" -print_final_stats=1 \
  "$@" "$WORK/corpus" test/fuzz/corpus/json >"$WORK/fuzz.log" 2>&1
rc=$?
set -e
# libFuzzer's log without its progress lines and its recommended dictionary
sed -e '/Recommended dictionary/,/End of recommended dictionary/d' "$WORK/fuzz.log" |
  grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse|INITED)' | tail -n 40
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/fuzz.log")
step "summary"
echo "fuzz: ${execs:-?} executions in ${secs}s, corpus $(ls "$WORK/corpus" | wc -l) inputs," \
  "$([ "$rc" -eq 0 ] && echo "no finding" || echo "FINDING (exit $rc, see $WORK/fuzz.log)")"
exit "$rc"
