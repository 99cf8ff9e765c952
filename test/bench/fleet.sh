#!/usr/bin/env bash
# Fleet benchmark:  bash test/bench/fleet.sh [--no-deps] [--only PARTS] [--clients N] [--load MIN]
#                     [--idle SECS] [--idle-off disable|unschedule] [--hub-load MIN] [--seed S]
#                     [--runs N] [--rounds N] [--outage-clients K] [--big-size bench|small|none]
#                     [--conf 'SETTING = VALUE']... [--hub-conf 'SETTING = VALUE']...
#
# Throwaway PostgreSQL 15 clusters on this machine, each on a socket of its own (fsync off, 128 MB
# of shared buffers, pg_cron in background-worker mode, max_worker_processes 24, as test/lib.sh
# makes them).  Hubs run from a copy of PostgreSQL without owsync_fdw's files.  N clients are
# generated "small" Open WebUI files (10.6 MB each), registered with CALL owsync.discover(...,
# 'realtime').  Nothing runs VACUUM or ANALYZE before a timed step.  Not part of CI.
# PARTS (--only, comma-separated; default publish,server,hub,outage; fleet = server,hub):
#   publish  publishing overhead at the edge: client "big" (the ~700 MB benchmark file of
#      sync.sh; --big-size small for a 10 MB one; none skips this part), one copy registered on
#      server "plain" (outside any fleet, wal_level replica) and one on edge "pub" (published to
#      hub "pubhub", its first copy there complete).  First --runs (default 5) full runs of each,
#      then --runs rounds 62 s apart in which both files get the same changes (sync_helper.py
#      mutate: 100 chats given an exchange, 20 deleted) and each is synced incrementally; the two
#      alternate which goes first, and every run on pub is followed by a wait until it is at the
#      hub.  Medians and the ratio pub / plain against 1.10 (incremental) and 1.25 (full).
#   server   N clients on one server "one" (outside any fleet):
#      1. registration: the wall time of discover; every file registered (else each failure is
#         listed), no run or pg_cron job failing meanwhile; seconds per client in the first and the
#         last tenth; until every client had a run started after discover returned;
#      2. load: for --load minutes (default 15), each minute 10% of the clients (a different 10%
#         each minute, at random with --seed) get a minute's changes (fleet_helper.py: 2 chats
#         given an exchange, every 10th minute one chat deleted), spread over the minute; each
#         change's commit time is logged.  Per change, the seconds until it was in the mirror: the
#         end of the run that brought it (the first succeeded run of the client started after the
#         change; or the one in progress at the change, when the run after it found nothing
#         committed since): median, p95 and max against 120 s.  Runs failed or skipped, and
#         pg_cron job runs that did not succeed (cron.job_run_details), in the window: against 0.
#         The runs started per minute against the N due, and the gap between a client's runs;
#      3. idle CPU: with nothing changing, the CPU time of every process of the cluster (the
#         postmaster, its live children read from /proc every second, and the children that ended
#         in the window through the postmaster's reaped-children fields cutime/cstime), for --idle
#         seconds (default 300) with the schedules active, then for as long with them off
#         (--idle-off: disable, owsync.disable_sync of every client (default); unschedule, every
#         pg_cron job whose name starts with "owsync" removed and put back after); the difference
#         as % of one core against 25%.  cron.job (count and names) in each state;
#      4. catalog: relations (pg_class rows), schemas, owsync's schemas and relations, database
#         size; the peak private memory (VmHWM - RssShmem - RssFile, as sync.sh) of every backend
#         that ran a sync during the load, read by a trigger on owsync.run at the run's end:
#         max against 64 MB;
#   hub      N clients from two edges "a" and "b" (N/2 each) and hub "hub": registration at both
#      edges at once; each edge attached in turn: attach_hub's time and the seconds until its
#      initial copy is complete (every published table ready at the hub); tables subscribed; one
#      client more registered on edge a: until its tables are at the hub and copied; then
#      --hub-load minutes (default 5) of the load above: per run, the seconds from its commit at
#      the edge to its arrival at the hub (the edge's commit timestamp, carried by logical
#      replication; a trigger at the hub records arrivals): median and max against 60 s; per
#      change, to the edge's run that brought it and to the hub: median, p95, max against 120 s;
#   outage   (after hub, on its edges) the hub stopped; --rounds (default 60) minutes of changes to
#      --outage-clients (default 25) clients of each edge (each round: those files a minute's
#      changes, then CALL owsync.sync for each of them) made back to back; the WAL each edge's slot
#      keeps per hour of changes; the hub started: the seconds until every run made while it was
#      away has arrived and every changed client's last change is at the hub; then every mirror
#      table of those clients compared between edge and hub (row count and a hash of all rows).
# --clients N: the fleet's clients (default 50: 25 on each edge in the hub part).  --conf adds a
# line to every edge's and server's postgresql.conf, --hub-conf to the hubs' (both after the
# script's own, so they win).  The hub part runs its edges with PostgreSQL's default
# max_locks_per_transaction (64) and its hub with as many as an edge has clients (at least 64):
# the hub's CREATE SUBSCRIPTION and ALTER SUBSCRIPTION ... REFRESH PUBLICATION lock every table
# of an edge's publication in one transaction, about 100 a client.  Every figure is printed with
# its target and the ratio (measured / target) or the margin beside it.
# Time and disk: at --clients 20 --load 3 --idle 60 --hub-load 2 --rounds 20 --runs 2
# --big-size small, every part took 10.5 minutes and 1.7 GB (under /tmp).  Measured at 500
# clients: the server part 35 minutes and 13.2 GB.  The hub part at --clients 100 took 28 minutes
# and 5.7 GB (an initial copy of 4,805 tables 9-10 minutes an edge, its publication then listing
# schemas); at --clients 500 it took 98 minutes and 20.4 GB, each edge of 250 clients (24,005
# tables) 9 minutes to attach and 36 to copy (test/bench/README.md, "500 clients from two edges
# at a hub").  The publish part adds about 10
# minutes with the 700 MB file, the outage about 6 (25 clients of each edge).  The load, idle and
# hub-load options shorten it.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh

deps=1 n=50 runs=5 rounds=60 big=bench parts=publish,server,hub,outage load=15 idle=300
idle_off=disable hub_load=5 seed=1 outage_n=25 EXTRA_CONF="" HUB_EXTRA=""
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) deps=0 ;;
    --only) parts=${2:?}; shift ;;
    --clients) n=${2:?}; shift ;;
    --load) load=${2:?}; shift ;;
    --idle) idle=${2:?}; shift ;;
    --idle-off) idle_off=${2:?}; shift ;;
    --hub-load) hub_load=${2:?}; shift ;;
    --seed) seed=${2:?}; shift ;;
    --runs) runs=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    --outage-clients) outage_n=${2:?}; shift ;;
    --big-size) big=${2:?}; shift ;;
    --conf) EXTRA_CONF+="${2:?}"$'\n'; shift ;;
    --hub-conf) HUB_EXTRA+="${2:?}"$'\n'; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case $big in bench|small|none) ;; *) owsync_die "--big-size takes bench, small or none" ;; esac
case $idle_off in disable|unschedule) ;; *) owsync_die "--idle-off takes disable or unschedule" ;; esac
parts=,${parts//fleet/server,hub},
for p in ${parts//,/ }; do
  case $p in publish|server|hub|outage) ;; *) owsync_die "--only takes publish, server, hub, outage, fleet" ;; esac
done
part() { [[ $parts == *,$1,* ]]; }
[ "$big" != none ] || parts=${parts//,publish,/,}
! part outage || part hub || owsync_die "the outage part runs on the hub part's edges: --only hub,outage"
[ "$n" -ge 2 ] || owsync_die "--clients takes 2 or more"
started=$(date +%s)

owsync_workdir
[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
owsync_give_to_pg "$OWSYNC_WORK"
R=$OWSYNC_WORK/results; mkdir -p "$R"; : >"$R/table"
FLEET=$OWSYNC_WORK/fleet; mkdir -p -m 0777 "$FLEET"; owsync_give_to_pg "$FLEET"; chmod 0777 "$FLEET"
HELPER=test/bench/fleet_helper.py

# ------------------------------------------------------------------ clusters
# Clusters by test/lib.sh's owsync_cluster_start_named, each on the socket of its own directory.
EDGE_CONF="max_slot_wal_keep_size = '4GB'"
PLAIN_CONF="wal_level = replica"
HUB_CONF="track_commit_timestamp = on"
owsync_on_exit() {
  [ "$1" -eq 0 ] || for log in "$OWSYNC_WORK"/*/server.log; do
    [ -f "$log" ] && { echo "== $(basename "$(dirname "$log")"): server log (last 20 lines)"; tail -n 20 "$log"; }
  done
}
HUB_BIN=""
hub_bin() { [ -n "$HUB_BIN" ] || HUB_BIN=$(owsync_pg_copy_without_owsync "$OWSYNC_WORK/pg-hub"); }
start_edge() { owsync_cluster_start_named "$1" postgres "$2"$'\n'"$EXTRA_CONF"; }
start_hub() { hub_bin; OWSYNC_PGBIN=$HUB_BIN owsync_cluster_start_named "$1" "" "$HUB_CONF"$'\n'"$2"$'\n'"$HUB_EXTRA"; }
pgbin_of() { case $1 in hub*|pubhub) echo "$HUB_BIN" ;; *) echo "$OWSYNC_PGBIN" ;; esac; }
ctl() (local c=$1; shift; cd / && owsync_as_pg "$(pgbin_of "$c")/pg_ctl" -D "$OWSYNC_WORK/$c/data" \
                                   -l "$OWSYNC_WORK/$c/server.log" -w -t 120 "$@" >/dev/null)
# drop_cluster NAME: stopped, and its files removed (a part frees the disk it took)
drop_cluster() { ctl "$1" stop -m fast || true; rm -rf "${OWSYNC_WORK:?}/$1"; }
# q NAME [psql args]: psql on cluster NAME (database postgres; hubs: database fleet, or $QDB)
q() {
  local c=$1 db=postgres; shift
  case $c in hub*|pubhub) db=${QDB:-fleet} ;; esac
  psql -X -q -At -v ON_ERROR_STOP=1 -h "$OWSYNC_WORK/$c" -p "${OWSYNC_PORT[$c]}" -U postgres -d "$db" "$@"
}
setup_owsync() {  # setup_owsync NAME DIRS: owsync_fdw and pg_cron in database postgres, DIRS allowed
  q "$1" -v dirs="$2" >/dev/null <<'SQL'
CREATE EXTENSION owsync_fdw;
CREATE EXTENSION pg_cron;
ALTER SYSTEM SET owsync.allowed_directories = :'dirs';
SELECT pg_reload_conf();
SQL
}
ms() { echo $(( $(date +%s%N) / 1000000 )); }
lbl() { case $1 in a|b) echo "edge $1" ;; *) echo "$1" ;; esac; }   # a cluster's name in the results
now() { date +%s.%N; }
ts() { date -d "@$1" '+%F %T.%N%z'; }   # an epoch as a timestamptz literal
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# stats: "count median p95 max" of the numbers on stdin (nearest rank)
stats() {
  sort -g | awk '{a[NR]=$1} END {if (!NR) {print "0 - - -"; exit}
    i=int(NR*0.95+0.999); printf "%d %s %s %s\n", NR, a[int((NR+1)/2)], a[i<1?1:i], a[NR]}'
}
# timed NAME SQL: the statement's time in ms (psql \timing), in a session of its own
timed() {
  printf '\\timing on\n%s;\n' "$2" | q "$1" 2>>"$OWSYNC_WORK/notices.log" | awk '/^Time: / {t=$2} END {printf "%d\n", t}'
}
# until_true NAME SECONDS SQL [EVERY]: poll (every EVERY seconds, default 0.2) until SQL returns t;
# prints the seconds it took; fails after SECONDS
until_true() {
  local c=$1 secs=$2 sql=$3 every=${4:-0.2} t0; t0=$(ms)
  while [ "$(q "$c" -c "$sql")" != t ]; do
    [ $(( $(ms) - t0 )) -lt $(( secs * 1000 )) ] || return 1
    sleep "$every"
  done
  awk -v t="$(( $(ms) - t0 ))" 'BEGIN {printf "%.1f\n", t / 1000}'
}
wait_for() { until_true "$@" || owsync_die "waited $2 s on $1 for: $3"; }
# disk: the work directory's size now, and the largest seen so far
PEAK=0
disk() {
  local m; m=$(du -sm "$OWSYNC_WORK" 2>/dev/null | cut -f1)
  [ "$m" -le "$PEAK" ] || PEAK=$m
  echo "work directory: $m MB (the largest so far: $PEAK MB): $(cd "$OWSYNC_WORK" && du -sm -- * | sort -rn | awk '{printf "%s%s %d MB", (NR > 1 ? ", " : ""), $2, $1}')"
}

# ------------------------------------------------------------------ results
# Every figure is a row: figure, measured, target, ratio (measured / target) or margin, within.
TF="| %-78s | %22s | %-18s | %-16s | %-6s |\n"
section() { printf "| **%s** | | | | |\n" "$1" | tee -a "$R/table"; }
row() { printf "$TF" "$1" "$2" "${3:-}" "${4:-}" "${5:-}" | tee -a "$R/table"; }
# le LABEL VALUE UNIT TARGET: VALUE held to at most TARGET, the ratio beside it
le() {
  awk -v l="$1" -v v="$2" -v u="$3" -v t="$4" -v f="$TF" 'BEGIN {
    if (v == "-") {printf f, l, "none", "<= " t " " u, "", "no"; exit}
    printf f, l, sprintf("%.3g %s", v, u), "<= " t " " u, sprintf("%.2f", v / t), (v + 0 <= t + 0) ? "yes" : "no"}' |
    tee -a "$R/table"
}
# zero LABEL COUNT: a count held to 0; the margin is the count over
zero() { row "$1" "$2" "0" "$([ "$2" -eq 0 ] && echo "" || echo "+$2")" "$([ "$2" -eq 0 ] && echo yes || echo no)"; }
# all LABEL GOT OF: GOT of OF held to all of them; the margin is the count missing
all() { row "$1" "$2 of $3" "all" "$([ "$2" -eq "$3" ] && echo "" || echo "-$(( $3 - $2 ))")" "$([ "$2" -eq "$3" ] && echo yes || echo no)"; }
# dist LABEL UNIT [TARGET]: median, p95 and max of the numbers on stdin; the max held to TARGET
dist() {
  local c m p x; read -r c m p x <<<"$(stats)"
  if [ -n "${3:-}" ]; then
    awk -v l="$1 ($c): median / p95 / max" -v m="$m" -v p="$p" -v x="$x" -v u="$2" -v t="$3" -v f="$TF" 'BEGIN {
      if (x == "-") {printf f, l, "none", "max <= " t " " u, "", "no"; exit}
      printf f, l, sprintf("%.3g / %.3g / %.3g %s", m, p, x, u), "max <= " t " " u, sprintf("%.2f", x / t), (x + 0 <= t + 0) ? "yes" : "no"}' |
      tee -a "$R/table"
  else
    awk -v l="$1 ($c): median / p95 / max" -v m="$m" -v p="$p" -v x="$x" -v u="$2" -v f="$TF" 'BEGIN {
      printf f, l, (x == "-") ? "none" : sprintf("%.3g / %.3g / %.3g %s", m, p, x, u), "", "", ""}' | tee -a "$R/table"
  fi
}

# ------------------------------------------------------------- fleet parts' common steps
cron_summary() {  # cron_summary NAME: pg_cron's jobs there, by kind of name
  q "$1" -c "SELECT coalesce(sum(n), 0) || ' jobs (' || coalesce(sum(a), 0) || ' active)' || coalesce(': ' || string_agg(n || ' x ' || name, ', ' ORDER BY n DESC, name), '')
               FROM (SELECT name, count(*) AS n, count(*) FILTER (WHERE active) AS a
                       FROM (SELECT j.active, CASE WHEN EXISTS (SELECT 1 FROM owsync.client c
                                                                 WHERE j.jobname = 'owsync:' || c.client
                                                                    OR j.jobname LIKE 'owsync:' || c.client || '@%')
                                                   THEN 'owsync:<client>' ELSE regexp_replace(j.jobname, '[0-9]+$', '<n>') END AS name
                               FROM cron.job j) x GROUP BY name) y"
}
SEEDDB=$OWSYNC_WORK/seed.db
make_files() {  # make_files DIR PREFIX COUNT: COUNT copies of the generated file, DIR/PREFIX<i>.example.com/data/webui.db
  local dir=$1 prefix=$2 count=$3 w=${#3} i
  [ -f "$SEEDDB" ] || python3 test/gen_openwebui.py --out "$SEEDDB" --flavour fresh --size small --journal wal --seed 7 >/dev/null
  [ "$w" -ge 2 ] || w=2
  for i in $(seq 1 "$count"); do
    i=$(printf '%0*d' "$w" "$i")
    mkdir -p "$dir/$prefix$i.example.com/data"
    cp "$SEEDDB" "$dir/$prefix$i.example.com/data/webui.db"
  done
  chmod -R a+rwX "$dir"; owsync_give_to_pg "$dir"
}
# discover NAME PATTERN TAG: CALL owsync.discover(PATTERN, 'realtime'), timed; $R/TAG.discover gets
# "ms registered already_registered not_registered start_epoch end_epoch"; each file not
# registered is listed
discover() {
  local t0 t1 out reg already not rep
  t0=$(now)
  out=$(q "$1" -F '|' -c "SET client_min_messages = warning" -c "CALL owsync.discover('$2', 'realtime')")
  t1=$(now)
  IFS='|' read -r reg already not rep <<<"$out"
  echo "$rep" | python3 -c 'import json, sys
for e in json.loads(sys.stdin.read()):
    if e["action"] not in ("registered", "already registered"):
        print("  NOT REGISTERED: %s (%s): %s" % (e["path"], e["client"], e["action"]))'
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%d", (b - a) * 1000}') $reg $already $not $t0 $t1" >"$R/$3.discover"
  echo "$1: discover took $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s: registered $reg, already registered $already, not registered $not"
}
# not_ok NAME FROM TO: "runs_failed runs_skipped cron_not_succeeded" started between two epochs
# (a job run still running is counted once it has run for 2 minutes: one that started just before
# the count, such as a fleet tick of a few seconds, has not failed)
not_ok() {
  q "$1" -F ' ' -c "SELECT (SELECT count(*) FROM owsync.run WHERE status = 'failed' AND started_at BETWEEN to_timestamp($2) AND to_timestamp($3)),
                           (SELECT count(*) FROM owsync.run WHERE status = 'skipped' AND started_at BETWEEN to_timestamp($2) AND to_timestamp($3)),
                           (SELECT count(*) FROM cron.job_run_details WHERE status <> 'succeeded'
                               AND NOT (status = 'running' AND start_time > now() - interval '2 minutes')
                               AND start_time BETWEEN to_timestamp($2) AND to_timestamp($3))"
}
not_ok_detail() {  # the errors of not_ok's runs and job runs, counted
  q "$1" -c "SELECT '  run ' || status || ' (' || count(*) || '): ' || left(coalesce(error, ''), 160) FROM owsync.run
              WHERE status IN ('failed', 'skipped') AND started_at BETWEEN to_timestamp($2) AND to_timestamp($3)
              GROUP BY status, error ORDER BY count(*) DESC LIMIT 5" \
         -c "SELECT '  pg_cron job run ' || status || ' (' || count(*) || '): ' || left(coalesce(return_message, ''), 160)
               FROM cron.job_run_details WHERE status <> 'succeeded' AND start_time BETWEEN to_timestamp($2) AND to_timestamp($3)
              GROUP BY status, return_message ORDER BY count(*) DESC LIMIT 5"
}
# registration_figures NAME TAG N: the table rows of a registration
registration_figures() {
  local ms reg already not t0 t1 f s c
  read -r ms reg already not t0 t1 <"$R/$2.discover"
  local l; l=$(lbl "$1")
  row "$l: discover of $3 files, wall time" "$(awk -v m="$ms" 'BEGIN {printf "%.1f s", m / 1000}')" "" "$(awk -v m="$ms" -v n="$3" 'BEGIN {printf "%.2f s a client", m / 1000 / n}')" ""
  all "$l: files registered by the one call (no retry)" "$reg" "$3"
  # seconds a client in the first and the last tenth: the clients' first runs (the registration's)
  q "$1" -c "SELECT extract(epoch FROM finished_at) FROM owsync.run r
              WHERE run_id = (SELECT min(run_id) FROM owsync.run x WHERE x.client = r.client) ORDER BY 1" >"$R/$2.firstruns"
  read -r f s <<<"$(awk -v t0="$t0" '{t[NR]=$1} END {k=int(NR/10); if (k<1) k=1; t[0]=t0;
                    printf "%.2f %.2f", (t[k]-t[0])/k, (t[NR]-t[NR-k])/k}' "$R/$2.firstruns")"
  row "$l: seconds a client, first tenth / last tenth of the files" "$f / $s s" "" "" ""
  read -r f s c <<<"$(not_ok "$1" "$t0" "$t1")"
  zero "$l: runs failed or skipped during the registration" "$((f + s))"
  zero "$l: pg_cron job runs not succeeded during the registration" "$c"
  [ $((f + s + c)) -eq 0 ] || not_ok_detail "$1" "$t0" "$t1"
}
# bench_change NAME FILE: the load's changes, logged by fleet_helper.py load, into table
# bench_change at NAME; view bench_brought: per change, the run that brought it into the mirror
# (NULL while unknown) and when.  The first succeeded run of the client that ended after the
# change brought it if it started after the change; if it was in progress at the change, it did
# when the next succeeded run found nothing committed since, else that next run did.
bench_change() {
  q "$1" <<SQL
SET client_min_messages = warning;
DROP VIEW IF EXISTS bench_brought; DROP TABLE IF EXISTS bench_change;
CREATE TABLE bench_change (minute int, path text, epoch float8);
\\copy bench_change FROM '$2' (FORMAT text, DELIMITER ' ')
CREATE VIEW bench_brought AS
SELECT ch.minute, cl.client, to_timestamp(ch.epoch) AS changed_at, b.run_id, b.finished_at AS arrived_at,
       extract(epoch FROM b.finished_at - to_timestamp(ch.epoch)) AS secs
  FROM bench_change ch JOIN owsync.client cl ON cl.database = ch.path
  LEFT JOIN LATERAL (SELECT r.run_id, r.started_at, r.finished_at FROM owsync.run r
                      WHERE r.client = cl.client AND r.status = 'succeeded' AND r.finished_at > to_timestamp(ch.epoch)
                      ORDER BY r.finished_at LIMIT 1) r0 ON true
  LEFT JOIN LATERAL (SELECT r.run_id, r.finished_at, r.source_unchanged FROM owsync.run r
                      WHERE r.client = cl.client AND r.status = 'succeeded' AND r.finished_at > r0.finished_at
                      ORDER BY r.finished_at LIMIT 1) r1 ON true
  LEFT JOIN LATERAL (SELECT CASE WHEN r0.started_at > to_timestamp(ch.epoch) OR r1.source_unchanged THEN r0.run_id
                                 ELSE r1.run_id END AS run_id,
                            CASE WHEN r0.started_at > to_timestamp(ch.epoch) OR r1.source_unchanged THEN r0.finished_at
                                 ELSE r1.finished_at END AS finished_at) b ON true;
SQL
  [ "$(q "$1" -c "SELECT count(*) FROM bench_brought")" = "$(wc -l <"$2")" ] ||
    owsync_die "$1: the load's files do not all match a client's database path"
}
# run_figures NAME FROM TO: the runs of a load window: started a minute (in the window's whole
# minutes) beside the clients due, the gap between a client's runs, the time of a run (no target:
# a scheduler may leave out a run that has nothing to do; the changes' arrival is what counts)
run_figures() {
  local nc m0 m1 runs
  local l; l=$(lbl "$1")
  nc=$(q "$1" -c "SELECT count(*) FROM owsync.client")
  m0=$(awk -v a="$2" 'BEGIN {m = int(a / 60) * 60; print (m < a) ? m + 60 : m}'); m1=$(awk -v b="$3" 'BEGIN {print int(b / 60) * 60}')
  if [ "$m1" -gt "$m0" ]; then
    runs=$(q "$1" -c "SELECT count(*) FROM owsync.run WHERE started_at >= to_timestamp($m0) AND started_at < to_timestamp($m1)")
    awk -v r="$runs" -v m="$(( (m1 - m0) / 60 ))" -v n="$nc" -v l="$l: runs started a minute, in the load's $(( (m1 - m0) / 60 )) whole minutes" -v f="$TF" 'BEGIN {
      printf f, l, sprintf("%.1f", r / m), n " clients due", sprintf("%.2f of them", r / m / n), ""}' | tee -a "$R/table"
  fi
  q "$1" -c "SELECT extract(epoch FROM started_at - lag(started_at) OVER (PARTITION BY client ORDER BY started_at))
               FROM owsync.run WHERE started_at BETWEEN to_timestamp($2) AND to_timestamp($3)" | awk NF | dist "$l: seconds between a client's runs" s
  q "$1" -c "SELECT extract(epoch FROM finished_at - started_at) FROM owsync.run
              WHERE status = 'succeeded' AND started_at BETWEEN to_timestamp($2) AND to_timestamp($3)" |
    dist "$l: a run's time, start to end (succeeded runs)" s
}

# ============================================================ part publish
part_publish() {
  local BIGDIR src c i x order last copy
  section "publish: client big on plain and on edge pub"
  start_edge pub "$EDGE_CONF"
  start_edge plain "$PLAIN_CONF"
  start_hub pubhub ""
  if [ "$big" = bench ]; then owsync_bench_db; BIGDIR=$BENCH_DIR/fleet.$$; src=$BENCH_DB
  else BIGDIR=$OWSYNC_WORK/big; src=$OWSYNC_WORK/big.src.db
       python3 test/gen_openwebui.py --out "$src" --flavour legacy --size small --journal wal --seed 1 >/dev/null
  fi
  mkdir -m 0777 "$BIGDIR" "$BIGDIR/pub" "$BIGDIR/plain"; OWSYNC_CLEANUP_DIRS+=("$BIGDIR")
  for c in pub plain; do cp "$src" "$BIGDIR/$c/webui.db"; chmod 0666 "$BIGDIR/$c/webui.db"; setup_owsync "$c" "$BIGDIR"; done
  echo "client big: $(du -h "$BIGDIR/pub/webui.db" | cut -f1), a copy for edge pub and one for plain"
  QDB=postgres q pubhub -c "CREATE DATABASE fleet"

  owsync_step "publish: client big registered on plain and on edge pub"
  for c in plain pub; do
    q "$c" -c "SET client_min_messages = warning" \
      -c "SELECT '$c: ' || count(*) || ' tables' FROM owsync.register_client('big', '$BIGDIR/$c/webui.db')"
    q "$c" -c "UPDATE owsync.client SET options = options || '{\"reconcile_interval\": \"100 years\"}' WHERE client = 'big'"
  done
  owsync_step "publish: edge pub attached to hub pubhub"
  q pub -c "SELECT owsync.prepare_edge('pub')" >/dev/null
  attach pub pubhub
  instrument pub pubhub
  copy=$(wait_for pubhub 3600 "$(copy_done pub)")
  echo "first copy of edge pub at the hub complete $copy s after attach returned"

  for x in incremental full; do : >"$R/${x}_plain"; : >"$R/${x}_pub"; : >"$R/${x}_arrival"; done
  owsync_step "publish: $runs full runs on plain and on edge pub, alternating"
  for i in $(seq "$runs"); do
    order="plain pub"; [ $((i % 2)) -eq 1 ] || order="pub plain"
    for c in $order; do bigrun "$c" full; done
  done
  owsync_step "publish: $runs rounds 62 s apart: the same changes to both files, an incremental run of each"
  last=0
  for i in $(seq "$runs"); do
    while [ $(( $(date +%s) - last )) -lt 62 ]; do sleep 1; done
    for c in pub plain; do python3 test/bench/sync_helper.py mutate "$BIGDIR/$c/webui.db" "$i"; done
    last=$(date +%s)
    order="plain pub"; [ $((i % 2)) -eq 1 ] || order="pub plain"
    for c in $order; do bigrun "$c" incremental; done
  done

  for x in full incremental; do
    echo "client big, $x runs in ms: plain $(paste -sd' ' "$R/${x}_plain"); edge pub $(paste -sd' ' "$R/${x}_pub")"
  done
  local il ip fl fp
  il=$(median <"$R/incremental_plain"); ip=$(median <"$R/incremental_pub")
  fl=$(median <"$R/full_plain"); fp=$(median <"$R/full_pub")
  row "client big ($(du -h "$BIGDIR/pub/webui.db" | cut -f1)), median of $runs: incremental run on plain" "$il ms" "" "" ""
  awk -v a="$il" -v b="$ip" -v f="$TF" 'BEGIN {printf f, "  incremental run on edge pub, published", b " ms", "<= 1.10 x plain", sprintf("%.2f x plain", b / a), b <= 1.10 * a ? "yes" : "no"}' | tee -a "$R/table"
  row "client big, median of $runs: full run on plain" "$fl ms" "" "" ""
  awk -v a="$fl" -v b="$fp" -v f="$TF" 'BEGIN {printf f, "  full run on edge pub, published", b " ms", "<= 1.25 x plain", sprintf("%.2f x plain", b / a), b <= 1.25 * a ? "yes" : "no"}' | tee -a "$R/table"
  row "first copy of edge pub at the hub (client big and the catalog), after attach" "$copy s" "" "" ""
  dist "big: the run at the hub after its CALL returned, incremental" s <"$R/incremental_arrival"
  dist "big: the run at the hub after its CALL returned, full" s <"$R/full_arrival"
  for c in pub plain pubhub; do drop_cluster "$c"; done
  rm -rf "$BIGDIR"
}

# The hub's role and the edges' addresses: sockets here, TLS and passwords in production.
attach() {  # attach EDGE HUB
  q "$1" -c "CALL owsync.attach_hub('host=$OWSYNC_WORK/$2 port=${OWSYNC_PORT[$2]} dbname=fleet user=postgres',
                                    'host=$OWSYNC_WORK/$1 port=${OWSYNC_PORT[$1]} dbname=postgres')"
}
# arrival instrumentation at the hub: each edge's copy of owsync.run gets a trigger (ALWAYS:
# it fires in the apply worker) recording when each run row arrives, with its transaction id
# (whose commit timestamp is the edge's: track_commit_timestamp at the hub keeps the origin's)
instrument() {  # instrument EDGE HUB
  q "$2" <<SQL
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS public.arrival (edge text, run_id bigint, client text, status text,
    source_unchanged boolean, finished_at timestamptz, arrived_at timestamptz DEFAULT clock_timestamp(),
    xid xid8 DEFAULT pg_current_xact_id());
CREATE INDEX IF NOT EXISTS arrival_run ON public.arrival (edge, run_id);
CREATE OR REPLACE FUNCTION public.arrived() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO public.arrival (edge, run_id, client, status, source_unchanged, finished_at)
    VALUES (TG_ARGV[0], NEW.run_id, NEW.client, NEW.status, NEW.source_unchanged, NEW.finished_at);
    RETURN NULL;
END \$\$;
CREATE TRIGGER bench_arrival AFTER INSERT OR UPDATE ON owsync_edge_$1.run
   FOR EACH ROW EXECUTE FUNCTION public.arrived('$1');
ALTER TABLE owsync_edge_$1.run ENABLE ALWAYS TRIGGER bench_arrival;
SQL
}
# hub_has_run EDGE RUN_ID: SQL true once the run's final row has arrived at the hub
hub_has_run() { echo "SELECT EXISTS (SELECT 1 FROM public.arrival WHERE edge = '$1' AND run_id = $2 AND status <> 'running')"; }
# copy_done EDGE: SQL (hub) true when the edge's subscription holds every table it publishes, all ready
copy_done() {
  local pub; pub=$(q "$1" -c "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'owsync_edge'")
  echo "SELECT count(*) FILTER (WHERE r.srsubstate = 'r') = $pub AND count(*) = $pub
          FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = 'owsync_$1'"
}
last_run() { q "$1" -c "SELECT max(run_id) FROM owsync.run WHERE client = '$2'"; }
# bigrun CLUSTER MODE: time one run of big; on edge pub, then wait until it is at the hub
bigrun() {
  local t
  t=$(timed "$1" "CALL owsync.sync('big', '$2')"); echo "$t" >>"$R/${2}_$1"
  echo "  $2 run on $1: $t ms"
  [ "$1" = pub ] || return 0
  wait_for pubhub 1800 "$(hub_has_run pub "$(last_run pub big)")" | tee -a "$R/${2}_arrival" |
    sed 's/^/    at the hub /; s/$/ s after the CALL returned/'
}

# ============================================================ part server
# memory instrumentation: a trigger on owsync.run records, in the backend that ran it, its
# /proc/self/status at the end of each successful run (VmHWM: the peak so far; RssShmem: shared
# buffers touched; RssFile: mapped files, libraries)
MEM_SQL="
CREATE TABLE public.bench_mem (run_id bigint, client text, read_source boolean, pid int, hwm_kb bigint, shmem_kb bigint,
                               file_kb bigint);
CREATE FUNCTION public.bench_mem() RETURNS trigger LANGUAGE plpgsql AS \$\$
DECLARE s text;
BEGIN
    s := pg_read_file('/proc/self/status');
    INSERT INTO public.bench_mem VALUES (NEW.run_id, NEW.client, NOT NEW.source_unchanged, pg_backend_pid(),
        substring(s FROM 'VmHWM:\\s+(\\d+) kB')::bigint, substring(s FROM 'RssShmem:\\s+(\\d+) kB')::bigint,
        substring(s FROM 'RssFile:\\s+(\\d+) kB')::bigint);
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END \$\$;
CREATE TRIGGER bench_mem AFTER UPDATE OF status ON owsync.run FOR EACH ROW
  WHEN (OLD.status = 'running' AND NEW.status = 'succeeded') EXECUTE FUNCTION public.bench_mem();"

# cpu_window NAME TAG SECS: the CPU of NAME's processes over SECS (fleet_helper.py cpu), into
# $R/TAG.cpu, and the runs started meanwhile
cpu_window() {
  local pm t0 t1
  pm=$(head -1 "$OWSYNC_WORK/$1/data/postmaster.pid")
  t0=$(now)
  python3 "$HELPER" cpu "$pm" "$3" >"$R/$2.cpu"
  t1=$(now)
  q "$1" -c "SELECT count(*) FROM owsync.run WHERE started_at BETWEEN to_timestamp($t0) AND to_timestamp($t1)" >"$R/$2.runs"
  echo "$2: $(awk '$1 == "total" {printf "%.1f s of CPU, %.1f%% of one core", $2, $2 / '"$3"' * 100}' "$R/$2.cpu");" \
       "$(cat "$R/$2.runs") runs started; by kind of process:"
  awk '$1 == "kind" && $2 > 0 {k = $4; for (i = 5; i <= NF; i++) k = k " " $i
                                printf "    %-40s %8.2f s (%d processes)\n", k, $2, $3}' "$R/$2.cpu"
}
settle_autovacuum() {  # wait (at most 120 s) for a moment without an autovacuum worker
  local t; t=$(until_true "$1" 120 "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'" 1) || t="120 (timed out)"
  echo "$1: no autovacuum worker running $t s later"
}
schedules_off() {  # schedules_off NAME: every client's schedule off, as --idle-off says
  if [ "$idle_off" = disable ]; then
    echo "$1: disable_sync of every client: $(timed "$1" "SELECT owsync.disable_sync(client) FROM owsync.client") ms"
  else
    q "$1" -c "CREATE TABLE bench_jobs AS SELECT jobname, schedule, command FROM cron.job WHERE jobname LIKE 'owsync%'"
    echo "$1: pg_cron jobs named owsync* unscheduled: $(timed "$1" "SELECT count(cron.unschedule(jobid)) FROM cron.job WHERE jobname LIKE 'owsync%'") ms"
  fi
}
schedules_on() {
  if [ "$idle_off" = disable ]; then
    echo "$1: enable_sync of every client: $(timed "$1" "SELECT owsync.enable_sync(client) FROM owsync.client") ms"
  else
    echo "$1: pg_cron jobs put back: $(timed "$1" "SELECT count(cron.schedule(jobname, schedule, command)) FROM bench_jobs") ms"
    q "$1" -c "DROP TABLE bench_jobs"
  fi
}

part_server() {
  local t0 t1 l0 l1 l2 f s c secs files
  section "server: $n realtime clients on one server"
  start_edge one "$PLAIN_CONF"
  setup_owsync one "$FLEET/one"
  owsync_step "server: generate $n Open WebUI databases (small) under $FLEET/one/<client>.example.com/data"
  make_files "$FLEET/one" s "$n"
  du -sh "$FLEET/one" | sed 's/^/files on disk: /'

  owsync_step "server: 1. registration: CALL owsync.discover('$FLEET/one/*/data/webui.db', 'realtime')"
  discover one "$FLEET/one/*/data/webui.db" one
  read -r _ _ _ _ t0 t1 <"$R/one.discover"
  secs=$(until_true one 900 "SELECT count(DISTINCT client) = $n FROM owsync.run
                             WHERE status = 'succeeded' AND started_at > to_timestamp($t1)" 1) || secs="-"
  echo "every client had a run started after discover returned: $secs s later"
  echo "cron.job: $(cron_summary one)"
  registration_figures one one "$n"
  le "one: until every client had a run started after discover returned" "$secs" s 120

  owsync_step "server: 4. catalog"
  q one -F ' ' -c "SELECT (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_namespace),
                          (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'owsync%' OR nspname IN (SELECT client FROM owsync.client)),
                          (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                            WHERE s.nspname LIKE 'owsync%' OR s.nspname IN (SELECT client FROM owsync.client)),
                          pg_database_size(current_database()),
                          (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r')" >"$R/catalog"
  # owsync's schemas' bytes a schema at a time: pg_total_relation_size locks each relation to the
  # end of its transaction, and all of them at once would not fit the lock table
  local rels nsp onsp orels dbs obytes cat
  obytes=$(q one <<'SQL' | awk '{s += $1} END {printf "%d", s}'
SELECT format('SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
                WHERE c.relnamespace = %s AND c.relkind IN (''r'', ''m'', ''p'')', s.oid)
  FROM pg_namespace s WHERE s.nspname LIKE 'owsync%' OR s.nspname IN (SELECT client FROM owsync.client) \gexec
SQL
)
  read -r rels nsp onsp orels dbs cat <"$R/catalog"
  row "one: relations (pg_class rows)" "$rels" "" "$(( rels / n )) a client" ""
  row "one: schemas / of them owsync's (mirrors and internal)" "$nsp / $onsp" "" "" ""
  row "one: relations in owsync's schemas" "$orels" "" "$(( orels / n )) a client" ""
  row "one: database size / of it owsync's schemas" "$(( dbs / 1048576 )) / $(( obytes / 1048576 )) MB" "" "$(awk -v b="$dbs" -v n="$n" 'BEGIN {printf "%.1f MB a client", b / n / 1048576}')" ""
  row "one: system catalogs (pg_catalog tables with indexes and TOAST)" "$(( cat / 1048576 )) MB" "" "" ""

  owsync_step "server: 2. load: $load minutes, 10% of the clients changed each minute (seed $seed)"
  q one -c "$MEM_SQL"
  files=("$FLEET"/one/*/data/webui.db)
  : >"$R/one.changes"
  l0=$(now)
  python3 "$HELPER" load "$load" 0.1 "$seed" "$R/one.changes" "${files[@]}"
  l1=$(now)
  echo "$(wc -l <"$R/one.changes") changes made"
  bench_change one "$R/one.changes"
  secs=$(until_true one 600 "SELECT count(*) = 0 FROM bench_brought WHERE run_id IS NULL" 5) ||
    echo "WARNING: $(q one -c "SELECT count(*) FROM bench_brought WHERE run_id IS NULL") changes not in the mirror 600 s after the load"
  l2=$(now)
  disk
  q one -c "DROP TRIGGER bench_mem ON owsync.run"
  section "server: load of $load minutes, 10% of $n clients a minute"
  q one -c "SELECT secs FROM bench_brought WHERE run_id IS NOT NULL" | dist "one: a change to the end of the run that brought it, seconds" s 120
  all "one: changes in the mirror within 120 s" "$(q one -c "SELECT count(*) FROM bench_brought WHERE secs <= 120")" "$(wc -l <"$R/one.changes")"
  read -r f s c <<<"$(not_ok one "$l0" "$l2")"
  zero "one: runs failed in the window" "$f"
  zero "one: runs skipped in the window" "$s"
  zero "one: pg_cron job runs not succeeded in the window (cron.job_run_details)" "$c"
  [ $((f + s + c)) -eq 0 ] || not_ok_detail one "$l0" "$l2"
  row "one: runs run again after a writer overtook a read, whole benchmark (server log)" \
    "$(grep -c 'was written while run [0-9]* read it' "$OWSYNC_WORK/one/server.log" || true)" "" "" ""
  run_figures one "$l0" "$l1"
  q one -c "SELECT (hwm_kb - shmem_kb - file_kb) / 1024.0 FROM public.bench_mem WHERE read_source" |
    dist "one: private peak memory (VmHWM - RssShmem - RssFile) of a backend whose run read its file, MB" MB 64
  q one -c "SELECT hwm_kb / 1024.0 FROM public.bench_mem WHERE read_source" | dist "  the same as raw VmHWM (with the shared buffers it touched), MB" MB
  q one -c "SELECT (hwm_kb - shmem_kb - file_kb) / 1024.0 FROM public.bench_mem WHERE NOT read_source" |
    dist "  private peak memory of a backend whose run found nothing committed, MB" MB

  if [ "$idle" -gt 0 ]; then
    owsync_step "server: 3. idle CPU: ${idle} s with the schedules active, then ${idle} s with them off ($idle_off)"
    settle_autovacuum one
    echo "cron.job: $(cron_summary one)"
    cpu_window one active "$idle"
    schedules_off one
    wait_for one 120 "SELECT NOT EXISTS (SELECT 1 FROM owsync.run WHERE status = 'running')" >/dev/null
    echo "cron.job: $(cron_summary one)"
    cpu_window one off "$idle"
    schedules_on one
    echo "cron.job: $(cron_summary one)"
    local a o
    a=$(awk '$1 == "total" {print $2}' "$R/active.cpu"); o=$(awk '$1 == "total" {print $2}' "$R/off.cpu")
    section "server: idle CPU over $idle s, nothing changing"
    row "one: CPU of the cluster's processes, schedules active ($(cat "$R/active.runs") runs)" "$a s" "" "$(awk -v c="$a" -v w="$idle" 'BEGIN {printf "%.1f%% of a core", c / w * 100}')" ""
    row "one: the same, schedules off ($idle_off; $(cat "$R/off.runs") runs)" "$o s" "" "$(awk -v c="$o" -v w="$idle" 'BEGIN {printf "%.1f%% of a core", c / w * 100}')" ""
    le "one: idle CPU of the schedules (active - off), % of one core" "$(awk -v a="$a" -v o="$o" -v w="$idle" 'BEGIN {printf "%.2f", (a - o) / w * 100}')" "%" 25
    zero "one: runs started while the schedules were off" "$(cat "$R/off.runs")"
  fi
  disk
  drop_cluster one
  rm -rf "${FLEET:?}/one"
}

# ============================================================ part hub
part_hub() {
  local na=$(( (n + 1) / 2 )) nb=$(( n / 2 )) e t0 t1 l0 l1 l2 secs call copy f s c
  section "hub: $n realtime clients from two edges ($na + $nb)"
  start_edge a "$EDGE_CONF"
  start_edge b "$EDGE_CONF"
  # the hub's subscription to an edge locks every table of the edge's publication in one
  # transaction, about 100 a client: a lock table of max_locks_per_transaction x max_connections
  # (100) at least that, as docs/OPERATIONS.md says
  start_hub hub "max_locks_per_transaction = $(( na > 64 ? na : 64 ))"
  for e in a b; do setup_owsync "$e" "$FLEET/$e"; done
  QDB=postgres q hub -c "CREATE DATABASE fleet"
  owsync_step "hub: generate $na + $nb Open WebUI databases (small) under $FLEET/<edge>/<client>.example.com/data"
  make_files "$FLEET/a" a "$na"
  make_files "$FLEET/b" b "$nb"
  du -sh "$FLEET" | sed 's/^/files on disk: /'

  owsync_step "hub: registration at both edges at once"
  local pa pb
  discover a "$FLEET/a/*/data/webui.db" a & pa=$!
  discover b "$FLEET/b/*/data/webui.db" b & pb=$!
  wait "$pa" || owsync_die "edge a: discover failed"
  wait "$pb" || owsync_die "edge b: discover failed"
  for e in a b; do echo "edge $e: cron.job: $(cron_summary "$e")"; done
  registration_figures a a "$na"
  registration_figures b b "$nb"

  owsync_step "hub: each edge attached in turn, until its initial copy is complete"
  for e in a b; do
    q "$e" -c "SELECT owsync.prepare_edge('$e')" >/dev/null
    t0=$(ms); attach "$e" hub; call=$(( $(ms) - t0 ))
    instrument "$e" hub
    copy=$(wait_for hub 7200 "$(copy_done "$e")")
    echo "edge $e: attach_hub took $call ms; initial copy complete $copy s after it returned"
    row "edge $e: attached, until its initial copy is complete ($(q "$e" -c "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'owsync_edge'") tables)" \
        "$(awk -v m="$call" -v c="$copy" 'BEGIN {printf "%.1f s", m / 1000 + c}')" "" "" ""
    row "  of which attach_hub's call" "$(awk -v m="$call" 'BEGIN {printf "%.1f s", m / 1000}')" "" "" ""
    row "  of which the initial copy, after attach_hub returned" "$copy s" "" "" ""
  done
  disk
  q hub -F ' ' -c "SELECT s.subname, count(*), count(*) FILTER (WHERE r.srsubstate = 'r')
                     FROM pg_subscription s JOIN pg_subscription_rel r ON r.srsubid = s.oid GROUP BY 1 ORDER BY 1" |
    while read -r sub tables ready; do row "hub: tables subscribed by $sub (ready)" "$tables ($ready)" "" "" ""; done
  row "hub: relations (pg_class rows) / database size" "$(q hub -c "SELECT count(*) FROM pg_class") / $(q hub -c "SELECT pg_database_size(current_database()) / 1048576") MB" "" "" ""

  owsync_step "hub: one client more on edge a"
  make_files "$FLEET/a" anew 1
  t0=$(ms)
  discover a "$FLEET/a/*/data/webui.db" anew
  local newc tables
  newc=$(q a -c "SELECT client FROM owsync.client WHERE database LIKE '%/anew%'")
  tables=$(q a -c "SELECT count(*) FROM pg_class WHERE relnamespace = '$newc'::regnamespace AND relkind IN ('r', 'p')")
  wait_for hub 1200 "SELECT count(*) = $tables FROM pg_subscription_rel r JOIN pg_class c ON c.oid = r.srrelid
                      WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = '$newc') AND r.srsubstate = 'r'" >/dev/null
  t1=$(ms)
  read -r call _ <"$R/anew.discover"
  echo "client $newc: registered in $call ms; its $tables tables ready at the hub $(( t1 - t0 )) ms after discover was called"
  row "edge a: one client more: discover (a file among $na registered)" "$(awk -v m="$call" 'BEGIN {printf "%.1f s", m / 1000}')" "" "" ""
  row "edge a: one client more: from discover to its $tables tables copied at the hub" "$(awk -v m="$(( t1 - t0 ))" 'BEGIN {printf "%.1f s", m / 1000}')" "" "" ""

  owsync_step "hub: $hub_load minutes of load: 10% of the clients changed each minute (seed $seed)"
  local files=("$FLEET"/a/a*/data/webui.db "$FLEET"/b/*/data/webui.db)
  : >"$R/hub.changes"
  l0=$(now)
  python3 "$HELPER" load "$hub_load" 0.1 "$seed" "$R/hub.changes" "${files[@]}"
  l1=$(now)
  echo "$(wc -l <"$R/hub.changes") changes made"
  : >"$R/hub.brought"
  for e in a b; do
    grep " $FLEET/$e/" "$R/hub.changes" >"$R/$e.changes" || true
    bench_change "$e" "$R/$e.changes"
    until_true "$e" 600 "SELECT count(*) = 0 FROM bench_brought WHERE run_id IS NULL" 5 >/dev/null ||
      echo "WARNING: edge $e: $(q "$e" -c "SELECT count(*) FROM bench_brought WHERE run_id IS NULL") changes not in the mirror 600 s after the load"
    q "$e" -F ' ' -c "SELECT '$e', run_id, extract(epoch FROM changed_at), secs FROM bench_brought WHERE run_id IS NOT NULL" >>"$R/hub.brought"
  done
  QDB=fleet q hub <<SQL
CREATE TABLE bench_brought (edge text, run_id bigint, changed_epoch float8, edge_secs float8);
\\copy bench_brought FROM '$R/hub.brought' (FORMAT text, DELIMITER ' ')
SQL
  until_true hub 600 "SELECT NOT EXISTS (SELECT 1 FROM bench_brought b WHERE NOT EXISTS (SELECT 1 FROM public.arrival a
                        WHERE a.edge = b.edge AND a.run_id = b.run_id AND a.status = 'succeeded'))" >/dev/null ||
    echo "WARNING: not every run that brought a change arrived at the hub within 600 s"
  l2=$(now)
  disk
  section "hub: load of $hub_load minutes, 10% of $n clients a minute"
  # per run: seconds from its commit at the edge to its arrival (the edge's commit timestamp, when
  # the hub has it; else finished_at, which the run sets just before it commits)
  q hub -F ' ' -c "SELECT round(extract(epoch FROM arrived_at - coalesce(pg_xact_commit_timestamp(xid::text::xid), finished_at))::numeric, 3),
                          round(extract(epoch FROM arrived_at - finished_at)::numeric, 3),
                          NOT source_unchanged, pg_xact_commit_timestamp(xid::text::xid) IS NOT NULL
                     FROM public.arrival WHERE status = 'succeeded' AND finished_at BETWEEN to_timestamp($l0) AND to_timestamp($l2)" >"$R/arrival"
  echo "runs arrived in the window: $(wc -l <"$R/arrival") ($(awk '$3 == "t"' "$R/arrival" | wc -l) with changes);" \
       "with the edge's commit timestamp: $(awk '$4 == "t"' "$R/arrival" | wc -l);" \
       "commit timestamp after finished_at: $(awk '$4 == "t" && $1 <= $2' "$R/arrival" | wc -l)"
  awk '{print $1}' "$R/arrival" | dist "hub: a run's commit at the edge to its arrival at the hub, seconds" s 60
  awk '$3 == "t" {print $1}' "$R/arrival" | dist "  of them runs with changes" s
  awk '{print $4}' "$R/hub.brought" | dist "hub: a change to the end of the edge's run that brought it, seconds" s 120
  q hub -c "SELECT extract(epoch FROM min(a.arrived_at) - to_timestamp(b.changed_epoch)) FROM bench_brought b
              JOIN public.arrival a ON a.edge = b.edge AND a.run_id = b.run_id AND a.status = 'succeeded'
             GROUP BY b.edge, b.run_id, b.changed_epoch" >"$R/hub.secs"
  dist "hub: a change to its arrival at the hub, seconds" s 120 <"$R/hub.secs"
  all "hub: changes at the hub within 120 s" "$(awk '$1 <= 120' "$R/hub.secs" | wc -l)" "$(wc -l <"$R/hub.changes")"
  for e in a b; do
    read -r f s c <<<"$(not_ok "$e" "$l0" "$l2")"
    zero "edge $e: runs failed or skipped in the window" "$((f + s))"
    zero "edge $e: pg_cron job runs not succeeded in the window" "$c"
    [ $((f + s + c)) -eq 0 ] || not_ok_detail "$e" "$l0" "$l2"
    run_figures "$e" "$l0" "$l1"
    q "$e" -c "SELECT extract(epoch FROM d.end_time - d.start_time) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                WHERE j.command LIKE '%owsync.fleet_tick()%' AND d.end_time IS NOT NULL
                  AND d.start_time BETWEEN to_timestamp($l0) AND to_timestamp($l2)" |
      dist "edge $e: a fleet tick (pg_cron job owsync-fleet), start to end" s
  done
}

# ============================================================ part outage
part_outage() {
  local e r t0 gen catchup kept st written markers schemas
  for e in a b; do
    q "$e" -c "SELECT client || ' ' || database FROM owsync.client ORDER BY client LIMIT $outage_n" >"$R/outage_$e"
  done
  section "outage: the hub stopped for $rounds minutes of changes to $(wc -l <"$R/outage_a") + $(wc -l <"$R/outage_b") clients of the edges"
  local files=($(cut -d' ' -f2 "$R/outage_a" "$R/outage_b"))
  owsync_step "outage: hub stopped; $rounds minutes of changes to ${#files[@]} clients, made back to back"
  ctl hub stop -m fast
  for e in a b; do q "$e" -c "SELECT pg_current_wal_lsn()" >"$R/lsn0_$e"; done
  t0=$(ms)
  for r in $(seq 101 $((100 + rounds))); do
    python3 "$HELPER" minute "$r" "${files[@]}"
    [ "$r" -lt $((100 + rounds)) ] || python3 "$HELPER" mark "$r" "${files[@]}"
    for e in a b; do
      q "$e" -c "SET client_min_messages = warning" \
        -c "DO \$\$ DECLARE c text; BEGIN FOR c IN SELECT client FROM owsync.client ORDER BY client LIMIT $outage_n LOOP
                  CALL owsync.sync(c); END LOOP; END \$\$" &
    done
    wait
  done
  gen=$(( $(ms) - t0 ))
  echo "$rounds rounds made in $((gen / 1000)) s"
  for e in a b; do
    q "$e" -F ' ' -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), wal_status,
                             pg_wal_lsn_diff(pg_current_wal_lsn(), '$(cat "$R/lsn0_$e")')
                        FROM pg_replication_slots WHERE slot_name = 'owsync_$e'" >"$R/kept_$e"
    q "$e" -c "SELECT max(run_id) FROM owsync.run" >"$R/lastrun_$e"
    read -r kept st written <"$R/kept_$e"
    echo "edge $e: the slot keeps $((kept / 1048576)) MB of WAL ($st); $((written / 1048576)) MB written while the hub was away"
  done

  owsync_step "outage: hub started: catch-up"
  ctl hub start; t0=$(ms)
  for e in a b; do
    wait_for hub 3600 "SELECT EXISTS (SELECT 1 FROM public.arrival WHERE edge = '$e' AND run_id >= $(cat "$R/lastrun_$e"))" >/dev/null
  done
  # and every changed client's last change is there
  markers=$(cut -d' ' -f1 "$R/outage_a" "$R/outage_b" |
            awk -v m="fleet round $((100 + rounds))" '{printf "%s(SELECT count(*) FROM %s.chat WHERE title = '\''%s'\'')", (NR > 1 ? " + " : ""), $1, m} END {print ""}')
  wait_for hub 3600 "SELECT $markers = ${#files[@]}" >/dev/null
  catchup=$(( $(ms) - t0 ))
  disk
  echo "caught up $((catchup / 1000)) s after the hub started"

  owsync_step "outage: every changed client's mirror at the edge against its copy at the hub"
  cat >"$OWSYNC_WORK/tables.sql" <<'SQL'
SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(md5(t::text), '''' ORDER BY md5(t::text)), '''')) FROM %I.%I t;',
              n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname = ANY (string_to_array(:'schemas', ','))
 ORDER BY 1 \gexec
SQL
  for e in a b; do
    schemas=$(cut -d' ' -f1 "$R/outage_$e" | paste -sd,)
    q "$e" -F ' ' -v schemas="$schemas" -f "$OWSYNC_WORK/tables.sql" >"$R/edge_$e"
    q hub -F ' ' -v schemas="$schemas" -f "$OWSYNC_WORK/tables.sql" >"$R/hub_$e"
    echo "edge $e: $(wc -l <"$R/edge_$e") tables, $(awk '{s += $2} END {print s}' "$R/edge_$e") rows;" \
         "at the hub: $(wc -l <"$R/hub_$e") tables, $(awk '{s += $2} END {print s}' "$R/hub_$e") rows;" \
         "$(if cmp -s "$R/edge_$e" "$R/hub_$e"; then echo identical; else echo "DIFFERENT:"; diff "$R/edge_$e" "$R/hub_$e" | head -5; fi)"
  done
  for e in a b; do
    read -r kept st written <"$R/kept_$e"
    awk -v k="$kept" -v r="$rounds" -v st="$st" -v f="$TF" -v e="$e" 'BEGIN {
      printf f, "WAL kept by edge " e "'"'"'s slot per hour of outage (" st ")", sprintf("%.0f MB", k * 60 / r / 1048576),
             "4 GB (max_slot_wal_keep_size)", sprintf("%.0f h of outage", 4096 * 1048576 / (k * 60 / r)), "" }' | tee -a "$R/table"
  done
  awk -v c="$catchup" -v g="$gen" -v r="$rounds" -v f="$TF" 'BEGIN {
    printf f, "outage of " r " minutes of changes (made in " int(g / 1000) " s): catch-up", sprintf("%.1f s", c / 1000),
           "<= " r * 60 " s", sprintf("%.3f", c / 1000 / (r * 60)), c / 1000 <= r * 60 ? "yes" : "no" }' | tee -a "$R/table"
  for e in a b; do
    row "edge $e: every changed client's mirror tables equal at the hub after catch-up" \
      "$(wc -l <"$R/edge_$e") tables" "all equal" "" "$(cmp -s "$R/edge_$e" "$R/hub_$e" && echo yes || echo no)"
  done
}

# ------------------------------------------------------------------ run
echo "parts:${parts//,/ }; clients: $n; load $load min; idle $idle s ($idle_off); hub load $hub_load min; seed $seed"
[ -z "$EXTRA_CONF$HUB_EXTRA" ] || printf 'added settings: edges and servers: %s; hubs: %s\n' "${EXTRA_CONF//$'\n'/; }" "${HUB_EXTRA//$'\n'/; }"
if part publish; then part_publish; fi
if part server; then part_server; fi
if part hub; then part_hub; fi
if part outage; then part_outage; fi

owsync_step "results (on this $(nproc)-core machine)"
printf "$TF" figure measured target "ratio / margin" within
printf "|%s|%s|%s|%s|%s|\n" "$(printf -- '-%.0s' {1..80})" "$(printf -- '-%.0s' {1..24})" "$(printf -- '-%.0s' {1..20})" \
       "$(printf -- '-%.0s' {1..18})" "--------"
cat "$R/table"
echo "total run time: $(( $(date +%s) - started )) s; the work directory took at most $PEAK MB (at the points measured)"
