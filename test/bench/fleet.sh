#!/usr/bin/env bash
# Fleet benchmark:  bash test/bench/fleet.sh [--no-deps] [--clients N] [--runs N] [--rounds N]
#                                            [--big-size bench|small|none]
#
# PostgreSQL 15 clusters on this machine, each on a socket of its own: edges a and b
# (owsync_fdw, pg_cron; wal_level logical, max_slot_wal_keep_size 4GB) and a hub (run from a copy
# of PostgreSQL without owsync_fdw); and, for the baseline of step 1 only, "plain": owsync_fdw
# as a server outside any fleet (wal_level replica).
# In that order it measures:
#   1. publishing overhead at the edge: client "big" (the ~700 MB benchmark file of sync.sh;
#      --big-size small for a 10 MB one, none to skip), one copy of the file registered on plain
#      and one on edge a (published, its first copy at the hub complete).  First --runs (default
#      5) full runs of each, then --runs rounds 62 s apart (as in sync.sh) in which both files get
#      the same changes (sync_helper.py mutate: 100 chats given an exchange, 20 deleted) and each
#      is synced incrementally; plain and edge a alternate which goes first, and every run on
#      edge a is followed by a wait until it has arrived at the hub, so each timed run starts with
#      the hub caught up.  Medians and the ratio edge a / plain, against 1.10 (incremental) and
#      1.25 (full).  Also the first copy at attach, and when each run of edge a was at the hub;
#   2. commit to arrival: N realtime clients per edge (--clients, default 25; generated "small"
#      files, CALL owsync.discover(..., 'realtime')).  For 3 minutes every client's file gets a
#      minute's changes (2 chats given an exchange) just after pg_cron's minute; a trigger at the
#      hub on each edge's copy of owsync.run records when each run arrives.  Per run, the
#      seconds from its commit at the edge (its commit timestamp, carried to the hub by logical
#      replication) to its arrival: median and max; per client, from the change to the edge's
#      run and to the hub;
#   3. a hub outage: the hub stopped; --rounds (default 60) minutes of the realtime fleet's
#      changes (each round: every file a minute's changes, then CALL owsync.sync for every
#      client) made back to back, faster than real time; the WAL each edge's slot then keeps
#      (per hour of changes); the hub started: the seconds until every run made while it was
#      away has arrived and every client's last change is at the hub; then every mirror table
#      of every client compared between edge and hub (row count and a hash of all rows).
# No VACUUM or ANALYZE runs before a timed step.  pg_cron runs its jobs as background workers.
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh

deps=1 n=25 runs=5 rounds=60 big=bench
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) deps=0 ;;
    --clients) n=${2:?}; shift ;;
    --runs) runs=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    --big-size) big=${2:?}; shift ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case $big in bench|small|none) ;; *) owsync_die "--big-size takes bench, small or none" ;; esac
started=$(date +%s)

owsync_workdir
[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
owsync_give_to_pg "$OWSYNC_WORK"
R=$OWSYNC_WORK/results; mkdir -p "$R"

# ------------------------------------------------------------------ clusters
# Clusters by test/lib.sh's owsync_cluster_start_named (wal_level logical, room for slots and
# walsenders, pg_cron in background-worker mode), each on the socket of its own directory.  The
# hub runs from a copy of PostgreSQL without owsync_fdw's files, as a hub has none.
EDGE_CONF="max_slot_wal_keep_size = '4GB'"
PLAIN_CONF="wal_level = replica"
HUB_CONF="track_commit_timestamp = on"
owsync_on_exit() {
  [ "$1" -eq 0 ] || for c in a b hub plain; do
    [ -f "$OWSYNC_WORK/$c/server.log" ] && { echo "== $c: server log (last 20 lines)"; tail -n 20 "$OWSYNC_WORK/$c/server.log"; }
  done
}
owsync_cluster_start_named a postgres "$EDGE_CONF"
owsync_cluster_start_named b postgres "$EDGE_CONF"
HUB_BIN=$(owsync_pg_copy_without_owsync "$OWSYNC_WORK/pg-hub")
OWSYNC_PGBIN=$HUB_BIN owsync_cluster_start_named hub "" "$HUB_CONF"
hub_ctl() (cd / && owsync_as_pg "$HUB_BIN/pg_ctl" -D "$OWSYNC_WORK/hub/data" -l "$OWSYNC_WORK/hub/server.log" \
                    -w -t 120 "$@" >/dev/null)
# q NAME [psql args]: psql on cluster NAME (edges: database postgres; hub: database fleet, or $QDB)
q() {
  local c=$1 db=postgres; shift
  [ "$c" = hub ] && db=${QDB:-fleet}
  psql -X -q -At -v ON_ERROR_STOP=1 -h "$OWSYNC_WORK/$c" -p "${OWSYNC_PORT[$c]}" -U postgres -d "$db" "$@"
}
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# timed NAME SQL: the statement's time in ms (psql \timing), in a session of its own (its
# notices, a line per table, go to notices.log)
timed() {
  printf '\\timing on\n%s;\n' "$2" | q "$1" 2>>"$OWSYNC_WORK/notices.log" | awk '/^Time: / {t=$2} END {printf "%d\n", t}'
}
# wait_for NAME SECONDS SQL: poll until SQL returns t; prints the seconds it took
wait_for() {
  local c=$1 secs=$2 sql=$3 t0; t0=$(ms)
  while [ "$(q "$c" -c "$sql")" != t ]; do
    [ $(( $(ms) - t0 )) -lt $(( secs * 1000 )) ] || owsync_die "waited $secs s on $c for: $sql"
    sleep 0.2
  done
  awk -v t="$(( $(ms) - t0 ))" 'BEGIN {printf "%.1f\n", t / 1000}'
}

# --------------------------------------------------------------- the files
FLEET=$OWSYNC_WORK/fleet
cat >"$OWSYNC_WORK/fleet_helper.py" <<'PY'
"""A minute of a realtime client's changes, and markers: fleet_helper.py minute|mark ROUND DB..."""
import json, random, sys, time, uuid
sys.path.insert(0, sys.argv.pop(1))
from sync_helper import connect, pick

def minute(con, rnd):
    """2 chats given a user/assistant exchange (chat JSON, updated_at, 2 chat_message rows);
    every 10th round one chat deleted with its messages."""
    rng = random.Random(rnd)
    ids = pick(con, rnd, 3)
    now = int(time.time())
    con.execute('BEGIN IMMEDIATE')
    for cid in ids[:2]:
        user_id, text = con.execute('SELECT user_id, chat FROM chat WHERE id = ?', (cid,)).fetchone()
        doc = json.loads(text)
        hist = doc['history']
        parent = hist.get('currentId')
        u, a = (str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(2))
        new = [{'id': u, 'parentId': parent, 'childrenIds': [a], 'role': 'user',
                'content': 'And then? %d' % rnd, 'timestamp': now},
               {'id': a, 'parentId': u, 'childrenIds': [], 'role': 'assistant', 'model': 'assistant-1',
                'content': 'Then it works. ' * rng.randint(5, 50), 'timestamp': now, 'done': True}]
        if parent in hist['messages']:
            hist['messages'][parent]['childrenIds'].append(u)
        for m in new:
            hist['messages'][m['id']] = m
        hist['currentId'] = a
        con.execute('UPDATE chat SET chat = ?, updated_at = ?, current_message_id = ? WHERE id = ?',
                    (json.dumps(doc), now, a, cid))
        for m in new:
            con.execute('INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, content, model_id,'
                        ' done, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                        ('%s-%s' % (cid, m['id']), cid, user_id, m['role'], m['parentId'],
                         json.dumps(m['content']), m.get('model'), int(m['done']) if 'done' in m else None,
                         now, now))
    if rnd % 10 == 0:
        con.execute('DELETE FROM chat_message WHERE chat_id = ?', (ids[2],))
        con.execute('DELETE FROM chat WHERE id = ?', (ids[2],))
    con.execute('COMMIT')

def mark(con, rnd):
    """The round's marker: one chat's title, so its arrival can be looked for."""
    con.execute("UPDATE chat SET title = ?, updated_at = ? WHERE id = (SELECT min(id) FROM chat)",
                ('fleet round %d' % rnd, int(time.time())))

cmd, rnd = sys.argv[1], int(sys.argv[2])
for db in sys.argv[3:]:
    con = connect(db)
    (minute if cmd == 'minute' else mark)(con, rnd)
    con.close()
PY
helper() { python3 "$OWSYNC_WORK/fleet_helper.py" "$PWD/test/bench" "$@"; }

owsync_step "generate $n Open WebUI databases (small) per edge under $FLEET/<edge>/<client>.example.com/data"
python3 test/gen_openwebui.py --out "$OWSYNC_WORK/seed.db" --flavour fresh --size small --journal wal --seed 7 >/dev/null
for e in a b; do
  for i in $(seq -w 1 "$n"); do
    mkdir -p "$FLEET/$e/$e$i.example.com/data"
    cp "$OWSYNC_WORK/seed.db" "$FLEET/$e/$e$i.example.com/data/webui.db"
  done
done
chmod -R a+rwX "$FLEET"; owsync_give_to_pg "$FLEET"
du -sh "$FLEET" | sed 's/^/fleet on disk: /'
BIGDIR=""
if [ "$big" != none ]; then
  if [ "$big" = bench ]; then owsync_bench_db; BIGDIR=$BENCH_DIR/fleet.$$; src=$BENCH_DB
  else BIGDIR=$OWSYNC_WORK/big; src=$OWSYNC_WORK/big.src.db
       python3 test/gen_openwebui.py --out "$src" --flavour legacy --size small --journal wal --seed 1 >/dev/null
  fi
  mkdir -m 0777 "$BIGDIR" "$BIGDIR/a" "$BIGDIR/plain"; OWSYNC_CLEANUP_DIRS+=("$BIGDIR")
  for c in a plain; do cp "$src" "$BIGDIR/$c/webui.db"; chmod 0666 "$BIGDIR/$c/webui.db"; done
  echo "client big: $(du -h "$BIGDIR/a/webui.db" | cut -f1), a copy for edge a and one for plain"
  owsync_cluster_start_named plain postgres "$PLAIN_CONF"
fi

for e in a b ${BIGDIR:+plain}; do
  q "$e" -v dirs="$FLEET${BIGDIR:+,$BIGDIR}" <<'SQL'
CREATE EXTENSION owsync_fdw;
CREATE EXTENSION pg_cron;
ALTER SYSTEM SET owsync.allowed_directories = :'dirs';
SELECT pg_reload_conf();
SQL
done
QDB=postgres q hub -c "CREATE DATABASE fleet"

# The hub's role and the edges' addresses: sockets here, TLS and passwords in production.
attach() {
  q "$1" -c "CALL owsync.attach_hub('host=$OWSYNC_WORK/hub port=${OWSYNC_PORT[hub]} dbname=fleet user=postgres',
                                    'host=$OWSYNC_WORK/$1 port=${OWSYNC_PORT[$1]} dbname=postgres')"
}
# arrival instrumentation at the hub: each edge's copy of owsync.run gets a trigger (ALWAYS:
# it fires in the apply worker) recording when each run row arrives, with its transaction id
# (whose commit timestamp is the edge's: track_commit_timestamp at the hub keeps the origin's)
instrument() {
  q hub <<SQL
CREATE TABLE IF NOT EXISTS public.arrival (edge text, run_id bigint, client text, status text,
    source_unchanged boolean, finished_at timestamptz, arrived_at timestamptz DEFAULT clock_timestamp(),
    xid xid8 DEFAULT pg_current_xact_id());
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

# ------------------------------------------------- 1. publishing overhead
if [ "$big" != none ]; then
  owsync_step "1. client big registered on plain and on edge a"
  for c in plain a; do
    q "$c" -c "SET client_min_messages = warning" \
      -c "SELECT '$c: ' || count(*) || ' tables' FROM owsync.register_client('big', '$BIGDIR/$c/webui.db')"
    q "$c" -c "UPDATE owsync.client SET options = options || '{\"reconcile_interval\": \"100 years\"}' WHERE client = 'big'"
  done
fi

owsync_step "prepare both edges and attach them to the hub"
for e in a b; do q "$e" -c "SELECT owsync.prepare_edge('$e')" >/dev/null; done
t0=$(ms); attach a; attach b
echo "attach_hub a and b: $(( $(ms) - t0 )) ms"
instrument a; instrument b
copy=$(wait_for hub 3600 "$(copy_done a)")
echo "first copy of edge a at the hub complete $copy s after attach returned"
echo "$copy" >"$R/copy"

# bigrun CLUSTER MODE: time one run of big; on edge a, then wait until it is at the hub
bigrun() {
  local t
  t=$(timed "$1" "CALL owsync.sync('big', '$2')"); echo "$t" >>"$R/${2}_$1"
  echo "  $2 run on $1: $t ms"
  [ "$1" = a ] || return 0
  wait_for hub 1800 "$(hub_has_run a "$(last_run a big)")" | tee -a "$R/${2}_arrival" |
    sed 's/^/    at the hub /; s/$/ s after the CALL returned/'
}
if [ "$big" != none ]; then
  for x in incremental full; do : >"$R/${x}_plain"; : >"$R/${x}_a"; : >"$R/${x}_arrival"; done
  owsync_step "1. client big: $runs full runs on plain and on edge a, alternating"
  for i in $(seq "$runs"); do
    order="plain a"; [ $((i % 2)) -eq 1 ] || order="a plain"
    for c in $order; do bigrun "$c" full; done
  done
  owsync_step "1. client big: $runs rounds 62 s apart: the same changes to both files, an incremental run of each"
  last=0
  for i in $(seq "$runs"); do
    while [ $(( $(date +%s) - last )) -lt 62 ]; do sleep 1; done
    for c in a plain; do python3 test/bench/sync_helper.py mutate "$BIGDIR/$c/webui.db" "$i"; done
    last=$(date +%s)
    order="plain a"; [ $((i % 2)) -eq 1 ] || order="a plain"
    for c in $order; do bigrun "$c" incremental; done
  done
  (cd / && owsync_as_pg "$OWSYNC_PGBIN/pg_ctl" -D "$OWSYNC_WORK/plain/data" -m fast -w stop >/dev/null)  # done with it
fi

# ------------------------------------------------------ 2. commit to arrival
owsync_step "2. register $n realtime clients on each edge (CALL owsync.discover), wait for their copy at the hub"
for e in a b; do
  q "$e" -F ' ' -c "SET client_min_messages = warning" \
    -c "CALL owsync.discover('$FLEET/$e/*/data/webui.db', 'realtime', NULL, NULL, NULL, '[]')" |
    awk -v e="$e" '{print "edge " e ": registered " $1 ", already registered " $2 ", not registered " $3}' &
done
wait
for e in a b; do
  # the tick publishes the new clients and refreshes the subscription within a minute or two
  wait_for "$e" 300 "SELECT count(*) = $n FROM pg_publication_namespace pn JOIN pg_namespace s ON s.oid = pn.pnnspid
                      WHERE s.nspname LIKE '${e}%_example_com'" >/dev/null
  echo "edge $e: $n clients published; copied at the hub $(wait_for hub 1200 "$(copy_done "$e")") s later"
done

owsync_step "2. three minutes of changes: every file gets a minute's changes 2 s after each minute"
: >"$R/changes"
for r in 1 2 3; do
  while [ "$(date +%S)" != "02" ]; do sleep 0.2; done
  helper minute "$r" "$FLEET"/*/*/data/webui.db
  helper mark "$r" "$FLEET"/*/*/data/webui.db
  echo "$r $(date '+%F %T.%N%z')" | tee -a "$R/changes" | sed 's/^/round /; s/$/: changed/'
  sleep 50
done
for e in a b; do
  wait_for hub 240 "SELECT count(*) = 0 FROM (SELECT c.client FROM owsync_edge_$e.client c
                      EXCEPT SELECT a.client FROM public.arrival a
                      WHERE a.edge = '$e' AND a.status = 'succeeded' AND a.finished_at > '$(tail -1 "$R/changes" | cut -d' ' -f2-)'
                      ) x WHERE x.client <> 'big'" >/dev/null
done
first=$(head -1 "$R/changes" | cut -d' ' -f2-)
# per run: seconds from its commit at the edge to its arrival (the edge's commit timestamp, when
# the hub has it; else finished_at, which the run sets just before it commits), and from finished_at
q hub -F ' ' -c "SELECT round(extract(epoch FROM arrived_at - coalesce(pg_xact_commit_timestamp(xid::text::xid), finished_at))::numeric, 3),
                        round(extract(epoch FROM arrived_at - finished_at)::numeric, 3),
                        NOT source_unchanged, pg_xact_commit_timestamp(xid::text::xid) IS NOT NULL
                   FROM public.arrival WHERE status = 'succeeded' AND finished_at >= '$first'
                    AND client <> 'big'" >"$R/arrival"
echo "runs arrived in the window: $(wc -l <"$R/arrival") ($(awk '$3 == "t"' "$R/arrival" | wc -l) with changes);" \
     "with the edge's commit timestamp: $(awk '$4 == "t"' "$R/arrival" | wc -l);" \
     "commit timestamp after finished_at: $(awk '$4 == "t" && $1 <= $2' "$R/arrival" | wc -l)"
# per client and round: change -> the edge's run that brought it (finished_at), and -> its arrival at the hub
while read -r r at; do
  q hub -F ' ' -c "SELECT min(extract(epoch FROM finished_at - '$at'::timestamptz)), min(extract(epoch FROM arrived_at - '$at'::timestamptz))
                     FROM public.arrival WHERE status = 'succeeded' AND NOT source_unchanged AND finished_at > '$at'
                      AND client <> 'big' GROUP BY edge, client"
done <"$R/changes" >"$R/per_client"

# ---------------------------------------------------------- 3. hub outage
owsync_step "3. hub stopped; $rounds minutes of the realtime fleet's changes, made back to back"
hub_ctl stop -m fast
for e in a b; do q "$e" -c "SELECT pg_current_wal_lsn()" >"$R/lsn0_$e"; done
t0=$(ms)
for r in $(seq 101 $((100 + rounds))); do
  helper minute "$r" "$FLEET"/*/*/data/webui.db
  [ "$r" -lt $((100 + rounds)) ] || helper mark "$r" "$FLEET"/*/*/data/webui.db
  for e in a b; do
    q "$e" -c "SET client_min_messages = warning" \
      -c "DO \$\$ DECLARE c text; BEGIN FOR c IN SELECT client FROM owsync.client WHERE client <> 'big' ORDER BY 1 LOOP
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

owsync_step "3. hub started: catch-up"
hub_ctl start; t0=$(ms)
for e in a b; do
  wait_for hub 3600 "SELECT EXISTS (SELECT 1 FROM public.arrival WHERE edge = '$e' AND run_id >= $(cat "$R/lastrun_$e"))" >/dev/null
done
# and every client's last change is there
markers=$(for e in a b; do q "$e" -c "SELECT client FROM owsync.client WHERE client <> 'big'"; done |
          awk -v m="fleet round $((100 + rounds))" '{printf "%s(SELECT count(*) FROM %s.chat WHERE title = '\''%s'\'')", (NR > 1 ? " + " : ""), $1, m} END {print ""}')
wait_for hub 3600 "SELECT $markers = $((2 * n))" >/dev/null
catchup=$(( $(ms) - t0 ))
echo "caught up $((catchup / 1000)) s after the hub started"

owsync_step "3. every client's mirror at the edge against its copy at the hub"
cat >"$OWSYNC_WORK/tables.sql" <<'SQL'
SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(md5(t::text), '''' ORDER BY md5(t::text)), '''')) FROM %I.%I t;',
              n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname = ANY (string_to_array(:'schemas', ','))
 ORDER BY 1 \gexec
SQL
for e in a b; do
  schemas=$(q "$e" -c "SELECT string_agg(client, ',') FROM owsync.client WHERE client <> 'big'")
  q "$e" -F ' ' -v schemas="$schemas" -f "$OWSYNC_WORK/tables.sql" >"$R/edge_$e"
  q hub -F ' ' -v schemas="$schemas" -f "$OWSYNC_WORK/tables.sql" >"$R/hub_$e"
  echo "edge $e: $(wc -l <"$R/edge_$e") tables, $(awk '{s += $2} END {print s}' "$R/edge_$e") rows;" \
       "at the hub: $(wc -l <"$R/hub_$e") tables, $(awk '{s += $2} END {print s}' "$R/hub_$e") rows;" \
       "$(if cmp -s "$R/edge_$e" "$R/hub_$e"; then echo identical; else echo "DIFFERENT:"; diff "$R/edge_$e" "$R/hub_$e" | head -5; fi)"
done

# ------------------------------------------------------------------ results
owsync_step "results (2 edges x $n realtime clients, hub on the same $(nproc)-core machine)"
if [ "$big" != none ]; then
  for x in full incremental; do
    echo "client big, $x runs in ms: plain $(paste -sd' ' "$R/${x}_plain"); edge a $(paste -sd' ' "$R/${x}_a")"
  done
fi
f="| %-80s | %18s | %-34s | %-6s |\n"
printf "$f" figure measured "compared against" within
printf "|%s|%s|%s|%s|\n" "$(printf -- '-%.0s' {1..82})" "$(printf -- '-%.0s' {1..20})" "$(printf -- '-%.0s' {1..36})" "--------"
if [ "$big" != none ]; then
  il=$(median <"$R/incremental_plain"); ip=$(median <"$R/incremental_a")
  fl=$(median <"$R/full_plain"); fp=$(median <"$R/full_a")
  printf "$f" "client big ($(du -h "$BIGDIR/a/webui.db" | cut -f1)), median of $runs: incremental, on plain" "$il ms" "" ""
  awk -v a="$il" -v b="$ip" -v f="$f" 'BEGIN {printf f, "  incremental on edge a, published (ratio)", sprintf("%d ms (%.2f)", b, b / a), "<= 1.10 x on plain", b <= 1.10 * a ? "yes" : "no"}'
  printf "$f" "client big, median of $runs: full, on plain" "$fl ms" "" ""
  awk -v a="$fl" -v b="$fp" -v f="$f" 'BEGIN {printf f, "  full on edge a, published (ratio)", sprintf("%d ms (%.2f)", b, b / a), "<= 1.25 x on plain", b <= 1.25 * a ? "yes" : "no"}'
fi
printf "$f" "first copy of edge a at the hub (client big and the catalog), after attach" "$(cat "$R/copy") s" "" ""
# med_max LABEL [BOUND WHAT]: median and max of the seconds on stdin, as a result row; the max
# is held to BOUND seconds, described as WHAT
med_max() {
  sort -n | awk -v f="$f" -v l="$1" -v b="${2:-}" -v w="${3:-}" '{a[NR]=$1} END {
    printf f, l " (" NR "): median / max", sprintf("%.3g / %.3g s", a[int((NR+1)/2)], a[NR]),
           w, b == "" ? "" : (a[NR] <= b ? "yes" : "no") }'
}
if [ "$big" != none ]; then
  med_max "big: the run at the hub after its CALL returned, incremental" <"$R/incremental_arrival"
  med_max "big: the run at the hub after its CALL returned, full" <"$R/full_arrival"
fi
awk '{print $1}' "$R/arrival" | med_max "a run's commit at the edge to its arrival at the hub, runs" 60 "max <= 60 s (the realtime period)"
cut -d' ' -f1 "$R/per_client" | med_max "a file's change to the edge's run that brought it, changes"
cut -d' ' -f2 "$R/per_client" | med_max "a file's change to its arrival at the hub, changes" 120 "max <= 120 s"
awk -v f="$f" -v want="$((3 * 2 * n))" '$2 <= 120 {w++} END {
  printf f, "  changes at the hub within 2 minutes", sprintf("%d of %d", w, want), "all", w == want ? "yes" : "no" }' "$R/per_client"
for e in a b; do
  read -r kept st written <"$R/kept_$e"
  awk -v k="$kept" -v r="$rounds" -v st="$st" -v f="$f" -v e="$e" 'BEGIN {
    printf f, "WAL kept by edge " e "'"'"'s slot per hour of outage (" st ")", sprintf("%.0f MB", k * 60 / r / 1048576),
           "max_slot_wal_keep_size 4 GB: " sprintf("%.0f h", 4096 * 1048576 / (k * 60 / r)), "" }'
done
awk -v c="$catchup" -v g="$gen" -v r="$rounds" -v f="$f" 'BEGIN {
  printf f, "hub outage of " r " minutes of changes (made in " int(g / 1000) " s): catch-up", sprintf("%.1f s", c / 1000), "the " r " minutes it stands for", c / 1000 <= r * 60 ? "yes" : "no" }'
for e in a b; do
  printf "$f" "edge $e: every mirror table equal at the hub after catch-up" \
    "$(wc -l <"$R/edge_$e") tables" "count and hash of every row" "$(cmp -s "$R/edge_$e" "$R/hub_$e" && echo yes || echo no)"
done
echo "total run time: $(( $(date +%s) - started )) s"
