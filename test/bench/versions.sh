#!/usr/bin/env bash
# Row versions benchmark:  bash test/bench/versions.sh [--no-deps] [--runs N] [--restores N] [--day-runs N]
#                                                       [--day-secs S]
#
# What keeping row versions costs, on two copies of the ~700 MB benchmark database
# (test/lib.sh owsync_bench_db) registered as two clients of one cluster, in one run:
#   1. incremental sync with versions kept (client kept: the default options) against without
#      (client off: owsync.set_options(.., '{"versions_retention": "0"}')): N rounds (default 9),
#      each giving both files the same change, as sync.sh does (sync_helper.py mutate: 100 chats,
#      1%, given a new exchange: chat JSON rewritten, 2 chat_message rows; 20 chats, 0.2%,
#      deleted with their messages), then CALL owsync.sync on both, alternating which goes first;
#   2. restore of client kept as of a run 3 rounds before its last (options {"run_id": R})
#      against a plain restore of it: N restores of each (default 5), alternating; the first of
#      each is compared by test/compare_sqlite.py with a `sqlite3 .backup` copy of the file
#      taken right after that run (as of) and with the file itself (plain);
#   3. the versions' size over N realtime rounds (default 1,440: a day of one run a minute):
#      each round changes a hot set of 100 chats (one new message each: chat JSON rewritten,
#      one chat_message row) and 1% of the other rows of every table with an updated_at
#      column (updated_at set), on both files alike; client kept keeps every version, client
#      off now keeps them with versions_interval "15 minutes".  A round stands for a minute:
#      the files' updated_at and the runs' started_at (a trigger on owsync.run in this
#      throwaway cluster) follow a simulated clock 60 s a round from now on (ahead of the real
#      one, so runs start in order): the fast path's overlap re-reads one round, as in
#      production, and the intervals are counted as in a day.  The
#      size (owsync._versions_bytes) is printed every 60 rounds and extrapolated linearly per
#      round to a day, 7 and 30 days; --day-secs S stops the rounds after S seconds (default:
#      none), and the rounds done are extrapolated.  The hot set's share of it is told by the
#      size of the rows kept (pg_column_size, large values as stored).
# Runs are timed by psql's \timing in a fresh session, from when autovacuum has analyzed the new
# mirrors (as it does in a client's first minutes).  fsync on, as PostgreSQL ships; no VACUUM or
# ANALYZE before a step beyond what the product and autovacuum run.  Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh

deps=1 runs=9 restores=5 day=1440 daysecs=0
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) deps=0 ;;
    --runs) runs=${2:?}; shift ;;
    --restores) restores=${2:?}; shift ;;
    --day-runs) day=${2:?}; shift ;;
    --day-secs) daysecs=${2:?}; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$runs" -ge 4 ] || owsync_die "--runs must be 4 or more (the as-of restore goes 3 rounds back)"
started=$(date +%s)

owsync_workdir
[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
owsync_cluster_start postgres
owsync_bench_db
WDIR=$BENCH_DIR/versions.$$ R=$OWSYNC_WORK
mkdir -m 0777 "$WDIR"; OWSYNC_CLEANUP_DIRS+=("$WDIR")
for c in kept off; do cp "$BENCH_DB" "$WDIR/$c.db"; chmod 0666 "$WDIR/$c.db"; done
size=$(du -h "$BENCH_DB" | cut -f1)

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# timed SQL: run SQL in a fresh session; prints its milliseconds (psql \timing)
timed() {
  q -c "SET client_min_messages = warning" -c '\timing on' -c "$1" |
    awk '/^Time: / {t=$0; sub(/^Time: /,"",t); sub(/ ms.*/,"",t)} END {printf "%d\n", t}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }

q -v dir="$WDIR" >/dev/null <<'SQL'
CREATE EXTENSION owsync_fdw;
ALTER SYSTEM SET owsync.allowed_directories = :'dir';
ALTER SYSTEM SET fsync = on;          -- as PostgreSQL ships (the test clusters turn it off)
SELECT pg_reload_conf();
SQL

owsync_step "register clients kept and off (two copies of the $size file)"
for c in kept off; do
  echo "register_client('$c'): $(timed "SELECT count(*) FROM owsync.register_client('$c', '$WDIR/$c.db')") ms"
done
q -c "SELECT owsync.set_options('kept', '{\"reconcile_interval\": \"100 years\"}')" \
  -c "SELECT owsync.set_options('off', '{\"reconcile_interval\": \"100 years\", \"versions_retention\": \"0\"}')" >/dev/null

# A client is synced every minute from its registration on, and autovacuum analyzes its new
# mirror within the first minutes: the runs below are timed after that, as in production (no
# VACUUM or ANALYZE of ours), once autovacuum has analyzed both mirrors' chat and chat_message
# and no autovacuum worker runs (waits at most 5 minutes)
owsync_step "wait for autovacuum to analyze the new mirrors"
t0=$(date +%s)
until [ "$(q -c "SELECT (SELECT count(*) FROM pg_stat_user_tables WHERE schemaname IN ('kept', 'off')
                              AND relname IN ('chat', 'chat_message') AND last_autoanalyze IS NOT NULL) = 4
                        AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'autovacuum worker')")" = t ]; do
  [ $(( $(date +%s) - t0 )) -lt 300 ] || { echo "autovacuum has not analyzed them after 300 s: going on"; break; }
  sleep 2
done
echo "waited $(( $(date +%s) - t0 )) s"

# the simulated clock: the files' updated_at (epoch seconds) of each round, 62 s apart as sync.sh's
# batches (the fast path re-reads rows from watermark - 60 s: one earlier batch), starting two days
# ago; sync_helper.py reads the time through time.time(), given here
clock=$(( $(date +%s) - 2 * 86400 ))
mutate() {  # mutate DB SEED EPOCH
  python3 - "$@" <<'PY'
import sys, time
sys.path.insert(0, "test/bench")
import sync_helper
at = float(sys.argv[3])
time.time = lambda: at
sync_helper.mutate(sys.argv[1], int(sys.argv[2]))
PY
}
run_of() { q -c "SELECT max(run_id) FROM owsync.run WHERE client = '$1'"; }

owsync_step "1. incremental: same change on both files, then sync kept and off, alternating ($runs rounds)"
: >"$R/inc.kept"; : >"$R/inc.off"
back=$(( runs - 3 ))
for i in $(seq "$runs"); do
  clock=$(( clock + 62 ))
  for c in kept off; do mutate "$WDIR/$c.db" "$i" "$clock"; done
  if [ $(( i % 2 )) -eq 1 ]; then order="kept off"; else order="off kept"; fi
  line="round $i:"
  for c in $order; do
    t=$(timed "CALL owsync.sync('$c')"); echo "$t" >>"$R/inc.$c"; line="$line $c $t ms,"
  done
  if [ "$i" -eq "$back" ]; then
    asof_run=$(run_of kept)
    sqlite3 "$WDIR/kept.db" ".backup '$WDIR/asof.db'"
    line="$line (kept's run $asof_run: the as-of target, file saved)"
  fi
  echo "${line%,}"
done
q -F ' ' -c "SELECT 'kept, last round: ' || string_agg(table_name || ' ins ' || inserted || ' upd ' || updated || ' del ' || deleted, '; ')
               FROM owsync.run_table WHERE run_id = (SELECT max(run_id) FROM owsync.run WHERE client = 'kept')
                AND inserted + updated + deleted > 0"
q -c "SELECT 'versions kept after $runs rounds: ' || pg_size_pretty(owsync._versions_bytes('kept'))
             || ' (kept), ' || pg_size_pretty(owsync._versions_bytes('off')) || ' (off)'"

owsync_step "2. restore of kept: as of run $asof_run (3 rounds back) and plain, alternating ($restores each)"
: >"$R/res.plain"; : >"$R/res.asof"
for i in $(seq "$restores"); do
  if [ $(( i % 2 )) -eq 1 ]; then order="plain asof"; else order="asof plain"; fi
  line="restore $i:"
  for kind in $order; do
    opts='{}'; [ "$kind" = asof ] && opts="{\"run_id\": $asof_run}"
    t=$(timed "CALL owsync.restore('kept', '$WDIR/restored.db', options => '$opts')")
    echo "$t" >>"$R/res.$kind"; line="$line $kind $t ms,"
    if [ "$i" -eq 1 ]; then
      ref=$WDIR/kept.db; [ "$kind" = asof ] && ref=$WDIR/asof.db
      cmp=$({ python3 test/compare_sqlite.py "$ref" "$WDIR/restored.db" || true; } | tail -1)
      echo "  $kind restore against $(basename "$ref"): $cmp"
    fi
    rm -f "$WDIR/restored.db" "$WDIR/restored.db-wal" "$WDIR/restored.db-shm"
  done
  echo "${line%,}"
done
rm -f "$WDIR/asof.db"

owsync_step "3. a day of realtime rounds: hot set of 100 chats + 1% of other rows ($day rounds)"
q -c "SELECT owsync.set_options('off', '{\"versions_retention\": \"7 days\", \"versions_interval\": \"15 minutes\"}')" >/dev/null
# runs start on the simulated clock (a round a minute), after every earlier run (versions_interval
# counts intervals by started_at and takes runs to start in the order of their ids), so from now on
q >/dev/null <<'SQL'
CREATE TABLE public.bench_clock (at timestamptz);
CREATE FUNCTION public.bench_started_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.started_at := coalesce((SELECT at FROM public.bench_clock LIMIT 1), NEW.started_at);
    RETURN NEW;
END $$;
CREATE TRIGGER bench_clock BEFORE INSERT ON owsync.run FOR EACH ROW EXECUTE FUNCTION public.bench_started_at();
INSERT INTO public.bench_clock VALUES (NULL);
SQL
clock=$(( $(date +%s) + 60 ))
cat >"$R/day.py" <<'PY'
"""day.py DB ROUND EPOCH: one realtime round on DB: the hot set (100 chats picked with seed 1000)
gets a message each (chat JSON rewritten, updated_at, one chat_message row); 1% of the other
rows of every table with an integer updated_at get updated_at = EPOCH (nanoseconds where the
table's values are), picked by a hash of rowid and ROUND.  One transaction."""
import json, random, sqlite3, sys, uuid
db, rnd, at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA busy_timeout=5000")
hot = random.Random(1000).sample([r[0] for r in con.execute("SELECT id FROM chat ORDER BY id")], 100)
rng = random.Random(rnd)
con.execute("BEGIN IMMEDIATE")
for cid in hot:
    user_id, text = con.execute("SELECT user_id, chat FROM chat WHERE id = ?", (cid,)).fetchone()
    doc = json.loads(text)
    hist = doc["history"]
    parent = hist.get("currentId")
    mid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    role = "user" if rnd % 2 else "assistant"
    m = {"id": mid, "parentId": parent, "childrenIds": [], "role": role,
         "content": "Round %d. " % rnd + "Then it works. " * rng.randint(5, 30), "timestamp": at}
    if parent in hist["messages"]:
        hist["messages"][parent]["childrenIds"].append(mid)
    hist["messages"][mid] = m
    doc.setdefault("messages", []).append(m)
    hist["currentId"] = mid
    con.execute("UPDATE chat SET chat = ?, updated_at = ?, current_message_id = ? WHERE id = ?",
                (json.dumps(doc), at, mid, cid))
    con.execute("INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, content, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ("%s-%s" % (cid, mid), cid, user_id, role, parent, json.dumps(m["content"]), at, at))
con.execute("CREATE TEMP TABLE hot (id text PRIMARY KEY)")
con.executemany("INSERT INTO hot VALUES (?)", [(h,) for h in hot])
for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").fetchall():
    if not any(c[1] == "updated_at" for c in con.execute('PRAGMA table_info("%s")' % t)):
        continue
    con.execute('UPDATE "%s" SET updated_at = CASE WHEN updated_at > 100000000000000 THEN ? ELSE ? END'
                ' WHERE typeof(updated_at) = \'integer\' AND ((rowid * 2654435761 + ? * 40503) %% 1000003) %% 100 = 0%s'
                % (t, " AND id NOT IN (SELECT id FROM temp.hot)" if t == "chat" else ""),
                (at * 1000000000 + rnd, at, rnd))
con.execute("COMMIT")
PY
: >"$R/day.kept"; : >"$R/day.off"; : >"$R/day.size"
b0k=$(q -c "SELECT owsync._versions_bytes('kept')"); b0o=$(q -c "SELECT owsync._versions_bytes('off')")
echo "versions before: kept $(mb "$b0k") MB, off $(mb "$b0o") MB (from part 1; counted out below)"
# the hot set, to tell its versions from the others' below
python3 - "$WDIR/kept.db" >"$R/hot" <<'PY'
import random, sqlite3, sys
con = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print("\n".join(random.Random(1000).sample([r[0] for r in con.execute("SELECT id FROM chat ORDER BY id")], 100)))
PY
q -c "CREATE TABLE public.bench_hot (id text PRIMARY KEY)" -c "\\copy public.bench_hot FROM '$R/hot'"
# the hot set's share of the versions a client's runs after FROM_RUN kept, by the size of the
# rows (large values as stored, compressed): its chats' versions and its messages' insert marks
q >/dev/null <<'SQL'
CREATE FUNCTION public.bench_hot_share(p_client text, from_run bigint) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
    vs name := owsync._versions_schema(p_client);
    t name;
    hot numeric := 0;
    total numeric := 0;
    h numeric;
    a numeric;
BEGIN
    FOR t IN SELECT relname FROM pg_class WHERE relnamespace = vs::regnamespace AND relkind = 'r' LOOP
        EXECUTE format('SELECT coalesce(sum(pg_column_size(v.*)) FILTER (WHERE %s), 0), coalesce(sum(pg_column_size(v.*)), 0)
                          FROM %I.%I v WHERE owsync_run > $1',
                       CASE t WHEN 'chat' THEN 'v.id IN (SELECT id FROM public.bench_hot)'
                              WHEN 'chat_message' THEN 'left(v.id, 36) IN (SELECT id FROM public.bench_hot)'
                              ELSE 'false' END, vs, t)
          INTO h, a USING from_run;
        hot := hot + h; total := total + a;
    END LOOP;
    RETURN hot / nullif(total, 0);
END $$;
SQL
from_run=$(q -c "SELECT max(run_id) FROM owsync.run")
t0=$(date +%s)
for i in $(seq "$day"); do
  clock=$(( clock + 60 ))
  for c in kept off; do python3 "$R/day.py" "$WDIR/$c.db" "$i" "$clock"; done
  q -c "UPDATE public.bench_clock SET at = to_timestamp($clock)" >/dev/null
  if [ $(( i % 2 )) -eq 1 ]; then order="kept off"; else order="off kept"; fi
  for c in $order; do timed "CALL owsync.sync('$c')" >>"$R/day.$c"; done
  stop=0; [ "$daysecs" -gt 0 ] && [ $(( $(date +%s) - t0 )) -ge "$daysecs" ] && stop=1
  if [ $(( i % 60 )) -eq 0 ] || [ "$i" -eq "$day" ] || [ "$stop" -eq 1 ]; then
    read -r bk bo < <(q -F ' ' -c "SELECT owsync._versions_bytes('kept') - $b0k, owsync._versions_bytes('off') - $b0o")
    echo "$i $bk $bo" >>"$R/day.size"
    echo "round $i ($(( $(date +%s) - t0 )) s): versions kept every run $(mb "$bk") MB, with versions_interval 15 minutes $(mb "$bo") MB;" \
         "runs (median of the last 60) $(tail -60 "$R/day.kept" | median) / $(tail -60 "$R/day.off" | median) ms"
  fi
  [ "$stop" -eq 0 ] || { echo "stopped after $i rounds (--day-secs $daysecs)"; break; }
done
q -c "UPDATE public.bench_clock SET at = NULL" >/dev/null
q -F ' ' -c "SELECT 'versions tables of kept, largest: ' || string_agg(relname || ' ' || pg_size_pretty(b), ', ' ORDER BY b DESC)
               FROM (SELECT c.relname, pg_total_relation_size(c.oid) AS b FROM pg_class c
                      WHERE c.relnamespace = owsync._versions_schema('kept')::regnamespace AND c.relkind = 'r'
                      ORDER BY 2 DESC LIMIT 5) x"
q -F ' ' -c "SELECT 'versions tables of off (interval), largest: ' || string_agg(relname || ' ' || pg_size_pretty(b), ', ' ORDER BY b DESC)
               FROM (SELECT c.relname, pg_total_relation_size(c.oid) AS b FROM pg_class c
                      WHERE c.relnamespace = owsync._versions_schema('off')::regnamespace AND c.relkind = 'r'
                      ORDER BY 2 DESC LIMIT 5) x"
mirror=$(q -c "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
                WHERE c.relnamespace = 'kept'::regnamespace AND c.relkind = 'r'")

owsync_step "results ($size file; medians)"
ik=$(median <"$R/inc.kept"); io=$(median <"$R/inc.off"); rp=$(median <"$R/res.plain"); ra=$(median <"$R/res.asof")
echo "every run, ms: incremental kept $(tr '\n' ' ' <"$R/inc.kept")| off $(tr '\n' ' ' <"$R/inc.off")"
echo "every run, ms: restore as of $(tr '\n' ' ' <"$R/res.asof")| plain $(tr '\n' ' ' <"$R/res.plain")"
f='| %-58s | %12s | %-34s | %12s | %5s | %-9s | %-6s |\n'
printf "$f" figure measured "compared with" "" ratio bound within
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "------------------------------------------------------------" "--------------" \
       "------------------------------------" "--------------" "-------" "-----------" "--------"
r=$(ratio "$ik" "$io")
printf "$f" "incremental run, versions kept (median of $runs)" "$ik ms" "without (versions_retention 0)" "$io ms" "$r" "<= 1.15" \
       "$(awk -v r="$r" 'BEGIN {print (r <= 1.15) ? "yes" : "no"}')"
r=$(ratio "$ra" "$rp")
printf "$f" "restore as of a run 3 rounds back (median of $restores)" "$ra ms" "plain restore" "$rp ms" "$r" "<= 1.2" \
       "$(awk -v r="$r" 'BEGIN {print (r <= 1.2) ? "yes" : "no"}')"
echo
read -r n bk bo < <(tail -1 "$R/day.size")
read -r shk sho < <(q -F ' ' -c "SELECT coalesce(public.bench_hot_share('kept', $from_run), 0), coalesce(public.bench_hot_share('off', $from_run), 0)")
# MB a round adds: over the first 60 rounds, and over the last 60
first=$(awk 'NR == 1 {printf "%s %s %s", $1, $2, $3}' "$R/day.size")
last=$(awk '{p = c; c = $0} END {print (p == "" ? "0 0 0" : p) " " c}' "$R/day.size")
g='| %-52s | %16s | %16s | %10s |\n'
printf "$g" "versions kept by $n realtime rounds" "every version" "interval 15 min" "interval / every"
printf '|%s|%s|%s|%s|\n' "------------------------------------------------------" "------------------" "------------------" "------------"
printf "$g" "total (tables, indexes, TOAST)" "$(mb "$bk") MB" "$(mb "$bo") MB" "$(ratio "$bo" "$bk")"
hk=$(awk -v b="$bk" -v s="$shk" 'BEGIN {printf "%.0f", b * s}'); ho=$(awk -v b="$bo" -v s="$sho" 'BEGIN {printf "%.0f", b * s}')
printf "$g" "  of which the hot set's (by row size: $(awk -v a="$shk" -v b="$sho" 'BEGIN {printf "%.0f%% / %.0f%%", a * 100, b * 100}'))" \
       "$(mb "$hk") MB" "$(mb "$ho") MB" "$(ratio "$ho" "$hk")"
printf "$g" "  of which the other rows' (1% a round)" "$(mb $(( bk - hk ))) MB" "$(mb $(( bo - ho ))) MB" "$(ratio $(( bo - ho )) $(( bk - hk )))"
read -r n1 k1 o1 <<<"$first"
printf "$g" "MB a round, rounds 1 to $n1" "$(awk -v b="$k1" -v n="$n1" 'BEGIN {printf "%.2f", b / n / 1048576}')" \
       "$(awk -v b="$o1" -v n="$n1" 'BEGIN {printf "%.2f", b / n / 1048576}')" ""
read -r na ka oa nb kb ob <<<"$last"
if [ "$nb" -gt "$n1" ]; then
  printf "$g" "MB a round, rounds $(( na + 1 )) to $nb" "$(awk -v b="$(( kb - ka ))" -v n="$(( nb - na ))" 'BEGIN {printf "%.2f", b / n / 1048576}')" \
         "$(awk -v b="$(( ob - oa ))" -v n="$(( nb - na ))" 'BEGIN {printf "%.2f", b / n / 1048576}')" ""
fi
for d in 1 7 30; do
  ek=$(awk -v b="$bk" -v n="$n" -v d="$d" 'BEGIN {printf "%.0f", b / n * 1440 * d}')
  eo=$(awk -v b="$bo" -v n="$n" -v d="$d" 'BEGIN {printf "%.0f", b / n * 1440 * d}')
  printf "$g" "extrapolated linearly per round to $d day(s) ($(( d * 1440 )) runs)" "$(mb "$ek") MB" "$(mb "$eo") MB" ""
  printf "$g" "  against the mirror ($(mb "$mirror") MB)" "$(ratio "$ek" "$mirror")x" "$(ratio "$eo" "$mirror")x" ""
  if [ "$d" -eq 7 ]; then
    printf "$g" "  of which the hot set's" "$(mb "$(awk -v b="$hk" -v n="$n" 'BEGIN {printf "%.0f", b / n * 1440 * 7}')") MB" \
           "$(mb "$(awk -v b="$ho" -v n="$n" 'BEGIN {printf "%.0f", b / n * 1440 * 7}')") MB" ""
  fi
done
echo "realtime round runs (median): every version $(median <"$R/day.kept") ms, versions_interval $(median <"$R/day.off") ms"
echo "total run time: $(( $(date +%s) - started )) s"
