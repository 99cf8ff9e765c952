#!/usr/bin/env python3
"""Helper of test/bench/fleet.sh: a realtime fleet's changes, and the CPU of a cluster's processes.

  fleet_helper.py minute ROUND DB...     every file a minute's changes: 2 chats given a
                                         user/assistant exchange (chat JSON, updated_at, 2
                                         chat_message rows); every 10th round one chat deleted
                                         with its messages.  One transaction per file.
  fleet_helper.py mark ROUND DB...       the round's marker: one chat's title, so that its
                                         arrival can be looked for.
  fleet_helper.py load MINUTES FRACTION SEED LOG DB...
                                         for MINUTES minutes from now, each minute a FRACTION of
                                         the files (a different one each minute until all had
                                         their turn, then again in a new order; chosen at random
                                         with SEED) gets a minute's changes, spread evenly over
                                         the minute.  Appends "<minute> <file> <epoch>" to LOG
                                         per change, the epoch taken when its COMMIT returned.
  fleet_helper.py cpu PID SECONDS        the CPU time of process PID (a postmaster) and all its
                                         children over SECONDS: "total <s>", then per kind of
                                         process "kind <s> <processes> <name>" (see cpu()).
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sync_helper import connect, delete_chat, exchange, pick  # noqa: E402


def change(con, seed, delete):
    """2 chats given a user/assistant exchange; with delete, one more chat deleted with its messages.
    Returns when the COMMIT has returned."""
    rng = random.Random(seed)
    ids = pick(con, seed, 3)
    now = int(time.time())
    con.execute('BEGIN IMMEDIATE')
    for cid in ids[:2]:
        exchange(con, cid, rng, seed, now)
    if delete:
        delete_chat(con, ids[2])
    con.execute('COMMIT')


def minute(dbs, rnd):
    for db in dbs:
        con = connect(db)
        change(con, rnd, rnd % 10 == 0)
        con.close()


def mark(dbs, rnd):
    for db in dbs:
        con = connect(db)
        con.execute("UPDATE chat SET title = ?, updated_at = ? WHERE id = (SELECT min(id) FROM chat)",
                    ('fleet round %d' % rnd, int(time.time())))
        con.close()


def load(minutes, fraction, seed, log, dbs):
    """Minute k changes the k-th slice of a permutation of the files (FRACTION of them, at least
    one), the permutation drawn anew (from seed and the cycle) once every file has had its turn."""
    n = len(dbs)
    size = max(1, int(round(n * fraction)))
    per_cycle = (n + size - 1) // size
    start = time.time()
    with open(log, 'a') as out:
        for k in range(minutes):
            order = list(range(n))
            random.Random('%s:%d' % (seed, k // per_cycle)).shuffle(order)
            pos = k % per_cycle
            chosen = order[pos * size:(pos + 1) * size]
            for j, i in enumerate(chosen):
                due = start + 60 * k + (j + 0.5) * 60 / len(chosen)
                time.sleep(max(0.0, due - time.time()))
                con = connect(dbs[i])
                change(con, k * 100003 + i, k % 10 == 9)
                at = time.time()
                con.close()
                out.write('%d %s %.6f\n' % (k + 1, dbs[i], at))
                out.flush()
        time.sleep(max(0.0, start + 60 * minutes - time.time()))


# --------------------------------------------------------------------- CPU
TICK = os.sysconf('SC_CLK_TCK')


def proc_stat(pid):
    """(ppid, own CPU ticks, reaped children's CPU ticks, start time) of a process, or None."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            s = f.read()
    except OSError:
        return None
    f = s[s.rindex(')') + 2:].split()	# fields from the 3rd (state) on
    return int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14]), int(f[19])


def children(pid):
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        kids = []
        for d in os.listdir('/proc'):
            if d.isdigit():
                st = proc_stat(int(d))
                if st and st[0] == pid:
                    kids.append(int(d))
        return kids


def kind(pid):
    """A process's kind, from its title: 'postgres: checkpointer' -> checkpointer; a backend's
    'postgres: user db [local] idle' -> backend; a background worker keeps its name."""
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            title = f.read().replace(b'\0', b' ').decode(errors='replace').strip()
    except OSError:
        return None
    title = title.split(': ', 1)[-1]
    for k in ('autovacuum worker', 'autovacuum launcher', 'pg_cron launcher', 'logical replication',
              'walsender', 'checkpointer', 'background writer', 'walwriter', 'stats collector',
              'archiver', 'startup'):
        if title.startswith(k):
            return k
    if title.startswith('pg_cron') or ' pg_cron' in title:
        return 'pg_cron job worker'
    if ' [local]' in title or title.startswith('postgres '):
        return 'backend'
    return title.split(' ')[0] if title else 'other'


def snapshot(pm):
    """The postmaster tree's CPU ticks so far: the postmaster's own and its reaped children's,
    and each live child's own and reaped children's.  Read again while a child was reaped meanwhile
    (it would be counted twice, or not at all).  Returns (total, {pid: (start, ticks)}, the
    postmaster's own ticks)."""
    while True:
        a = proc_stat(pm)
        kids = {}
        for c in children(pm):
            st = proc_stat(c)
            if st:
                kids[c] = (st[3], st[1] + st[2])
        b = proc_stat(pm)
        if a is None or b is None:
            sys.exit('process %d is gone' % pm)
        if a[2] == b[2]:
            return b[1] + b[2] + sum(t for _, t in kids.values()), kids, b[1]


def cpu(pm, secs):
    """Total CPU of the tree over secs (exact: what children that exited took is in the
    postmaster's reaped-children fields); per kind, what each live process took between its first
    and last sighting (sampled every second; a process started in the window counts from 0).  The
    rest is what processes took after their last sighting, most of it workers that lived less than
    a second."""
    total0, seen, own0 = snapshot(pm)
    first = {p: v[1] for p, v in seen.items()}	# ticks at the start (0 for those born later)
    last, kinds, start, total1, own1 = dict(first), {}, time.time(), total0, own0
    for p in seen:
        kinds[p] = kind(p)
    while True:
        left = start + secs - time.time()
        if left <= 0:
            break
        time.sleep(min(1.0, left))
        total1, now, own1 = snapshot(pm)
        for p, (st, t) in now.items():
            if p not in first or seen[p][0] != st:
                first[p], seen[p] = 0, (st, t)
                kinds[p] = kind(p) or 'other'
            last[p] = t
    by = {'postmaster': (own1 - own0, 1)}
    for p in first:
        k = kinds.get(p) or 'other'
        ticks, procs = by.get(k, (0, 0))
        by[k] = (ticks + last[p] - first[p], procs + 1)
    total = total1 - total0
    print('total %.2f' % (total / TICK))
    for k, (ticks, procs) in sorted(by.items(), key=lambda x: -x[1][0]):
        print('kind %.2f %d %s' % (ticks / TICK, procs, k))
    print('kind %.2f 0 ended between samples (short-lived workers and backends)'
          % ((total - sum(t for t, _ in by.values())) / TICK))


if __name__ == '__main__':
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == 'minute':
        minute(args[1:], int(args[0]))
    elif cmd == 'mark':
        mark(args[1:], int(args[0]))
    elif cmd == 'load':
        load(int(args[0]), float(args[1]), args[2], args[3], args[4:])
    elif cmd == 'cpu':
        cpu(int(args[0]), float(args[1]))
    else:
        sys.exit('unknown command %s' % cmd)
