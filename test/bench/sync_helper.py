#!/usr/bin/env python3
"""Helper of test/bench/sync.sh: changes a legacy Open WebUI database the way Open WebUI does.

  sync_helper.py writer DB PHASE_FILE   stream tokens into one chat, as Open WebUI does while a
                                        model answers: every 20 ms BEGIN IMMEDIATE, rewrite the
                                        chat JSON (one token longer) and its chat_message row,
                                        COMMIT, in the file's journal mode, busy_timeout 5000 (as
                                        Open WebUI's).  Keeps the database open until PHASE_FILE
                                        says "stop"; writes nothing while it says "pause";
                                        otherwise prints "<phase> <latency ms>" per commit, and
                                        "<phase> <latency ms> FAIL <error>" per failed one.
  sync_helper.py mutate DB SEED [CHANGED DELETED]
                                        CHANGED chats (default 100) get a new user/assistant
                                        exchange (chat JSON, updated_at = now, 2 chat_message rows
                                        each); DELETED chats (default 20) are deleted with their
                                        chat_message rows.  One transaction.
  sync_helper.py silent DB SEED         5 chat titles edited without touching updated_at.

Chats are picked at random with SEED, never the writer's chat.
"""
import json
import os
import random
import sqlite3
import sys
import time
import uuid


def connect(db):
    os.umask(0)      # -wal/-shm usable by the PostgreSQL server's OS user too
    con = sqlite3.connect(db, isolation_level=None)
    con.execute('PRAGMA busy_timeout=5000')
    if con.execute('PRAGMA journal_mode').fetchone()[0] == 'wal':
        con.execute('PRAGMA synchronous=NORMAL')   # Open WebUI's in WAL mode
    return con


def writer_chat(con):
    """A chat of average size (the mean chat JSON is ~27 kB)."""
    return con.execute('SELECT id FROM chat ORDER BY abs(length(chat) - (SELECT avg(length(chat)) FROM chat)), id '
                       'LIMIT 1').fetchone()[0]


def pick(con, seed, n):
    skip = writer_chat(con)
    ids = [r[0] for r in con.execute('SELECT id FROM chat ORDER BY id') if r[0] != skip]
    return random.Random(seed).sample(ids, n)


def writer(db, phase_file):
    con = connect(db)
    cid = writer_chat(con)
    doc = json.loads(con.execute('SELECT chat FROM chat WHERE id = ?', (cid,)).fetchone()[0])
    mid = doc['history']['currentId']
    msg = doc['history']['messages'][mid]
    phase, checked, tick = 'pause', 0.0, time.monotonic()
    while True:
        now = time.monotonic()
        if now - checked > 0.1:
            with open(phase_file) as f:
                phase = f.read().strip() or 'pause'
            checked = now
        if phase == 'stop':
            break
        if phase != 'pause':
            msg['content'] += ' tok'
            t0 = time.perf_counter()
            try:
                con.execute('BEGIN IMMEDIATE')
                con.execute('UPDATE chat SET chat = ?, updated_at = ? WHERE id = ?',
                            (json.dumps(doc), int(time.time()), cid))
                con.execute('UPDATE chat_message SET content = ?, updated_at = ? WHERE id = ?',
                            (json.dumps(msg['content']), int(time.time()), '%s-%s' % (cid, mid)))
                con.execute('COMMIT')
                print(phase, '%.3f' % ((time.perf_counter() - t0) * 1000), flush=True)
            except sqlite3.OperationalError as e:
                print(phase, '%.3f' % ((time.perf_counter() - t0) * 1000), 'FAIL', e, flush=True)
                if con.in_transaction:
                    con.execute('ROLLBACK')
        tick += 0.020
        time.sleep(max(0.0, tick - time.monotonic()))
    con.close()


def exchange(con, cid, rng, seed, now):
    """Give chat cid a user/assistant exchange, as Open WebUI writes one: the chat JSON's history
    and messages, updated_at and current_message_id, and two chat_message rows."""
    user_id, text = con.execute('SELECT user_id, chat FROM chat WHERE id = ?', (cid,)).fetchone()
    doc = json.loads(text)
    hist = doc['history']
    parent = hist.get('currentId')
    u, a = (str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(2))
    model = (doc.get('models') or ['assistant-1'])[0]
    new = [{'id': u, 'parentId': parent, 'childrenIds': [a], 'role': 'user', 'content': 'And then? %d' % seed,
            'timestamp': now, 'models': [model]},
           {'id': a, 'parentId': u, 'childrenIds': [], 'role': 'assistant', 'model': model,
            'content': 'Then it works. ' * rng.randint(5, 50), 'timestamp': now, 'done': True}]
    if parent in hist['messages']:
        hist['messages'][parent]['childrenIds'].append(u)
    for m in new:
        hist['messages'][m['id']] = m
        doc.setdefault('messages', []).append(m)
    hist['currentId'] = a
    con.execute('UPDATE chat SET chat = ?, updated_at = ?, current_message_id = ? WHERE id = ?',
                (json.dumps(doc), now, a, cid))
    for m in new:
        con.execute('INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, content, model_id, done,'
                    ' created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                    ('%s-%s' % (cid, m['id']), cid, user_id, m['role'], m['parentId'], json.dumps(m['content']),
                     m.get('model'), int(m['done']) if 'done' in m else None, now, now))


def delete_chat(con, cid):
    """Delete chat cid with its messages."""
    con.execute('DELETE FROM chat_message WHERE chat_id = ?', (cid,))
    con.execute('DELETE FROM chat WHERE id = ?', (cid,))


def mutate(db, seed, changed=100, deleted=20):
    con = connect(db)
    rng = random.Random(seed)
    chats = pick(con, seed, changed + deleted)
    now = int(time.time())
    con.execute('BEGIN IMMEDIATE')
    for cid in chats[:changed]:
        exchange(con, cid, rng, seed, now)
    for cid in chats[changed:]:
        delete_chat(con, cid)
    con.execute('COMMIT')
    con.close()


def silent(db, seed):
    con = connect(db)
    con.execute('BEGIN IMMEDIATE')
    for cid in pick(con, seed, 5):
        con.execute("UPDATE chat SET title = title || ' (edited)' WHERE id = ?", (cid,))
    con.execute('COMMIT')
    con.close()


if __name__ == '__main__':
    cmd, db, arg = sys.argv[1:4]
    if cmd == 'writer':
        writer(db, arg)
    elif cmd == 'mutate':
        mutate(db, int(arg), *(int(n) for n in sys.argv[4:6]))
    elif cmd == 'silent':
        silent(db, int(arg))
    else:
        sys.exit('unknown command %s' % cmd)
