#!/usr/bin/env python3
"""Which of Open WebUI's writes change a row but leave its updated_at as it was (stdlib only).

    probe_updated_at.py BASE_URL USERS.json WEBUI_DB

Run against an instance populate has filled (SQLite mode).  For each action below, done
through the API as the front end does it, every table of WEBUI_DB is read before and after;
each changed row is reported with its changed columns, marked "updated_at kept" when its
updated_at column exists and did not change.  A second passes between actions, so that a
seconds-resolution updated_at written by the action differs from the one before.
"""
import json
import sqlite3
import sys
import time

from drive import User


def snapshot(path):
    db = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    out = {}
    for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                           "AND name NOT LIKE 'sqlite_%'"):
        cols = [r[1] for r in db.execute(f'PRAGMA table_info("{t}")')]
        rows = {}
        for r in db.execute(f'SELECT rowid, * FROM "{t}"'):
            rows[r[0]] = dict(zip(cols, r[1:]))
        out[t] = rows
    db.close()
    return out


def changes(before, after):
    lines = []
    for t in sorted(after):
        b, a = before.get(t, {}), after[t]
        for rid in sorted(set(a) | set(b)):
            if rid not in b:
                lines.append(f'  {t}: row inserted')
            elif rid not in a:
                lines.append(f'  {t}: row deleted')
            elif a[rid] != b[rid]:
                cols = sorted(c for c in a[rid] if a[rid][c] != b[rid].get(c))
                kept = 'updated_at' in a[rid] and 'updated_at' not in cols
                lines.append(f'  {t}: {", ".join(cols)}' + ('  [updated_at kept]' if kept else ''))
    return sorted(set(lines)) or ['  (no row changed)']


def main(base, users_path, db_path):
    rec = json.load(open(users_path))
    alice_rec, admin_rec = rec['users']['alice'], rec['users']['admin']
    alice = User(base, alice_rec['email'], alice_rec['password'])
    admin = User(base, admin_rec['email'], admin_rec['password'])
    chat = next(c['id'] for k, c in rec['chats'].items() if k == 'alice-chat0')
    other = next(c['id'] for k, c in rec['chats'].items() if k == 'alice-in-folder')
    folder = rec['folders']['alice-projects']
    note = rec['notes']['Shopping list']
    general = rec['channels']['general']
    state = {}

    def last_reply(cid):
        c = alice.api.get(f'/api/v1/chats/{cid}')
        return c['chat']['history']['currentId']

    actions = [
        ('sign in (alice)', lambda: User(base, alice_rec['email'], alice_rec['password']).close()),
        ('open a chat (GET /api/v1/chats/{id})', lambda: alice.api.get(f'/api/v1/chats/{chat}')),
        ('send a message in an existing chat (streamed reply, follow-ups)',
         lambda: alice.send('One more question?', chat_id=chat, parent_id=last_reply(chat))),
        ('start a new chat (title, tags, follow-ups generated)',
         lambda: state.update(new=alice.send('A brand new chat.')[0])),
        ('rename a chat (POST /chats/{id} {chat: {title}})',
         lambda: alice.api.post(f'/api/v1/chats/{chat}', {'chat': {'title': 'Renamed again'}})),
        ('pin a chat', lambda: alice.api.post(f'/api/v1/chats/{other}/pin')),
        ('add a tag to a chat', lambda: alice.api.post(f'/api/v1/chats/{other}/tags', {'name': 'Probe'})),
        ('remove a tag from a chat',
         lambda: alice.api.call('DELETE', f'/api/v1/chats/{other}/tags', {'name': 'Probe'})),
        ('move a chat to a folder', lambda: alice.api.post(f'/api/v1/chats/{state["new"]}/folder',
                                                           {'folder_id': folder})),
        ('archive a chat', lambda: alice.api.post(f'/api/v1/chats/{state["new"]}/archive')),
        ('rename a folder', lambda: alice.api.post(f'/api/v1/folders/{folder}/update', {'name': 'Projects 2'})),
        ('update a note', lambda: alice.api.post(f'/api/v1/notes/{note}/update', {
            'title': 'Shopping list', 'data': {'content': {'json': None, 'html': '<p>tea</p>', 'md': 'tea'}}})),
        ('post a channel message', lambda: state.update(msg=alice.api.post(
            f'/api/v1/channels/{general}/messages/post', {'content': 'probe message'}))),
        ('edit a channel message', lambda: alice.api.post(
            f'/api/v1/channels/{general}/messages/{state["msg"]["id"]}/update', {'content': 'edited'})),
        ('react to a channel message', lambda: admin.api.post(
            f'/api/v1/channels/{general}/messages/{state["msg"]["id"]}/reactions/add', {'name': 'heart'})),
        ('user settings update', lambda: alice.api.post('/api/v1/users/user/settings/update',
                                                         {'ui': {'theme': 'dark'}})),
        ('delete a chat', lambda: alice.api.delete(f'/api/v1/chats/{state["new"]}')),
    ]
    for label, action in actions:
        before = snapshot(db_path)
        time.sleep(1.1)
        try:
            action()
        except Exception as e:  # noqa: BLE001 (the probe reports and goes on)
            print(f'{label}: FAILED: {e}')
            continue
        print(f'{label}:')
        print('\n'.join(changes(before, snapshot(db_path))))
    alice.close()
    admin.close()


if __name__ == '__main__':
    main(*sys.argv[1:4])
