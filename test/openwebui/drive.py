#!/usr/bin/env python3
"""Drive a running Open WebUI through its HTTP API the way its web front end does (stdlib only).

    drive.py BASE_URL populate OUT.json             users, chats with streamed replies, a title
                                                    edit, pin, archive, tags, a folder, notes,
                                                    channels with messages, a file, deletions
    drive.py BASE_URL writer USERS.json [--seconds N] [--stop-file F] [--out STATS.json]
                                                    keep chatting (Open WebUI is the writer);
                                                    prints p50/p99/max latency and failures
    drive.py BASE_URL dump USERS.json OUT.json      the API's view of every user's data, sorted,
                                                    without what differs between instances
    drive.py BASE_URL login-check USERS.json        every user logs in with its password, and
                                                    every deleted user is refused
    drive.py BASE_URL chat-get USERS.json USER CHAT_ID OUT.json
                                                    the chat as USER's Export chat (.json)
                                                    downloads it: [GET /api/v1/chats/CHAT_ID]
    drive.py BASE_URL chat-delete USERS.json USER CHAT_ID
                                                    USER deletes the chat (the chat menu's Delete)
    drive.py BASE_URL chat-import USERS.json USER EXPORT.json OUT.json
                                                    USER imports a chat export file (Settings >
                                                    Chats > Import); OUT.json: each imported chat
                                                    as the API then shows it

USERS.json is the file populate wrote.  A chat message is sent as the front end sends it
(Chat.svelte, sendMessageSocket): POST /api/chat/completions with the socket.io session id of a
live connection, chat_id (none for a new chat: Open WebUI creates it), the new user message,
the assistant message id and the background tasks (title, tags, follow-ups).  Open WebUI runs
the completion as a background task, streams it from the model server and stores the assistant
message itself (chat.chat history and the chat_message rows), as it does for a browser.  The
driver waits, by condition, until the chat has no running task, then checks the stored reply.
"""
import base64
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_openai import MODEL, canned_reply  # noqa: E402

TASK_TIMEOUT = 120  # seconds a completion (with its title/tag/follow-up tasks) may take


class ApiError(Exception):
    def __init__(self, method, path, status, body):
        super().__init__(f'{method} {path}: HTTP {status}: {body[:500]}')
        self.status = status


class Api:
    """One signed-in user of one Open WebUI."""

    def __init__(self, base, token=None):
        self.base = base.rstrip('/')
        self.token = token

    def call(self, method, path, body=None, raw=None, content_type=None, timeout=120):
        headers = {'Accept': 'application/json'}
        if self.token:
            headers['Authorization'] = 'Bearer ' + self.token
        data = None
        if raw is not None:
            data, headers['Content-Type'] = raw, content_type
        elif body is not None:
            data, headers['Content-Type'] = json.dumps(body).encode(), 'application/json'
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read().decode('utf-8')
        except urllib.error.HTTPError as e:
            raise ApiError(method, path, e.code, e.read().decode('utf-8', 'replace')) from None
        return json.loads(text) if text else None

    def get(self, path):
        return self.call('GET', path)

    def post(self, path, body=None):
        return self.call('POST', path, {} if body is None else body)

    def delete(self, path):
        return self.call('DELETE', path)

    def upload(self, path, filename, content, mime='text/plain'):
        boundary = 'owsync' + uuid.uuid4().hex
        raw = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
               f'filename="{filename}"\r\nContent-Type: {mime}\r\n\r\n').encode() + content + \
              f'\r\n--{boundary}--\r\n'.encode()
        return self.call('POST', path, raw=raw,
                         content_type=f'multipart/form-data; boundary={boundary}')


def signin(base, email, password):
    res = Api(base).post('/api/v1/auths/signin', {'email': email, 'password': password})
    return Api(base, res['token']), res


class SocketIO:
    """The front end's socket.io connection (engine.io 4 over a websocket, client side only).

    Open WebUI sends a chat's events to the session that asked for the completion; the session
    id it is given (the front end's $socket.id) is the one this connection gets."""

    def __init__(self, base, token):
        url = urllib.parse.urlparse(base)
        self.sock = socket.create_connection((url.hostname, url.port or 80), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            'GET /ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n'
            f'Host: {url.hostname}:{url.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
            f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n').encode())
        head = b''
        while b'\r\n\r\n' not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError('socket.io: connection closed during the handshake')
            head += chunk
        if not head.startswith(b'HTTP/1.1 101'):
            raise ConnectionError('socket.io: no websocket upgrade: ' + head.decode(errors='replace'))
        self.lock = threading.Lock()
        self.events = []
        self.closed = False
        opened = self.recv_text()                       # engine.io open packet: 0{...}
        if not opened.startswith('0'):
            raise ConnectionError('socket.io: unexpected open packet ' + opened)
        self.send_text('40' + json.dumps({'token': token}))
        while True:
            pkt = self.recv_text()
            if pkt == '2':
                self.send_text('3')
            elif pkt.startswith('40'):
                self.sid = json.loads(pkt[2:])['sid']
                break
            elif pkt.startswith('44'):
                raise ConnectionError('socket.io: connect refused: ' + pkt)
        self.sock.settimeout(None)
        self.reader = threading.Thread(target=self.read_loop, daemon=True)
        self.reader.start()
        self.emit('user-join', {'auth': {'token': token}})

    def send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack('!BB', 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack('!BBH', 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack('!BBQ', 0x80 | opcode, 0x80 | 127, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.sock.sendall(head + mask + body)

    def send_text(self, text):
        self.send_frame(0x1, text.encode('utf-8'))

    def recv_exact(self, n):
        buf = b''
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError('socket.io: connection closed')
            buf += chunk
        return buf

    def recv_text(self):
        message = b''
        while True:
            b0, b1 = self.recv_exact(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack('!H', self.recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack('!Q', self.recv_exact(8))[0]
            payload = self.recv_exact(n)
            if opcode == 0x8:
                raise ConnectionError('socket.io: closed by the server')
            if opcode == 0x9:
                self.send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:
                    return message.decode('utf-8')

    def read_loop(self):
        try:
            while True:
                pkt = self.recv_text()
                if pkt == '2':
                    self.send_text('3')
                elif pkt.startswith('42'):
                    self.events.append(json.loads(pkt[2:]))
        except (OSError, ConnectionError, ValueError):
            self.closed = True

    def emit(self, event, data):
        self.send_text('42' + json.dumps([event, data]))

    def close(self):
        try:
            self.send_text('41')
            self.send_frame(0x8, b'')
            self.sock.close()
        except OSError:
            pass


class User:
    """A signed-in user with a live socket.io session, chatting as the front end does."""

    def __init__(self, base, email, password):
        self.api, info = signin(base, email, password)
        self.id, self.name = info['id'], info['name']
        self.sio = SocketIO(base, self.api.token)
        self.model_item = next((m for m in self.api.get('/api/models')['data']
                                if m['id'] == MODEL), None)
        if self.model_item is None:
            raise RuntimeError(f'model {MODEL} not offered to {email}')

    def close(self):
        self.sio.close()

    def send(self, text, chat_id=None, parent_id=None, files=None, folder_id=None):
        """One turn: the user message `text` after assistant message parent_id (None: a new
        chat).  Returns (chat_id, assistant message id, seconds until stored)."""
        t0 = time.monotonic()
        user_msg_id, reply_id = str(uuid.uuid4()), str(uuid.uuid4())
        user_message = {
            'id': user_msg_id, 'parentId': parent_id, 'childrenIds': [], 'role': 'user',
            'user': {'id': self.id, 'name': self.name}, 'user_id': self.id,
            'content': text, 'timestamp': int(time.time()), 'models': [MODEL],
        }
        if files:
            user_message['files'] = files
        first_turn = parent_id is None
        body = {
            'stream': True,
            'model': MODEL,
            'params': {'model_controls': {}},
            'tool_ids': [],
            'features': {'voice': False, 'image_generation': False, 'code_interpreter': False,
                         'web_search': False},
            'variables': {'{{USER_NAME}}': self.name},
            'model_item': self.model_item,
            'session_id': self.sio.sid,
            'id': reply_id,
            'message_ids': [{'model_id': MODEL, 'message_id': reply_id, 'modelIdx': 0}],
            'parent_id': parent_id,
            'user_message': user_message,
            'background_tasks': dict(
                {'title_generation': True, 'tags_generation': True} if first_turn else {},
                follow_up_generation=True),
        }
        if chat_id:
            body['chat_id'] = chat_id
        if files:
            body['files'] = files
        if folder_id:
            body['folder_id'] = folder_id
        res = self.api.post('/api/chat/completions', body)
        if not res or not res.get('chat_id') or not res.get('task_ids'):
            raise RuntimeError(f'completion not started as a background task: {res}')
        chat_id = res['chat_id']
        self.wait_idle(chat_id)
        chat = self.api.get(f'/api/v1/chats/{chat_id}')
        reply = chat['chat']['history']['messages'].get(reply_id)
        if not reply or not reply.get('done'):
            raise RuntimeError(f'chat {chat_id}: reply {reply_id} not stored as done: {reply}')
        if not files and reply.get('content') != canned_reply(text):
            raise RuntimeError(f'chat {chat_id}: reply {reply_id} stored as {reply.get("content")!r}')
        return chat_id, reply_id, time.monotonic() - t0

    def wait_idle(self, chat_id):
        """Until Open WebUI runs no task for the chat (the completion and its title, tag and
        follow-up tasks have stored what they write)."""
        deadline = time.monotonic() + TASK_TIMEOUT
        while time.monotonic() < deadline:
            if not self.api.get(f'/api/tasks/chat/{chat_id}').get('task_ids'):
                return
            time.sleep(0.05)
        raise TimeoutError(f'chat {chat_id}: tasks still running after {TASK_TIMEOUT} s')

    def converse(self, texts, **kw):
        chat_id, parent = None, None
        for text in texts:
            chat_id, parent, _ = self.send(text, chat_id=chat_id, parent_id=parent, **kw)
            kw.pop('files', None)
        return chat_id


# ------------------------------------------------------------------------------- populate

USERS = [  # (key, name, email, how the account is made, role)
    ('admin', 'Ada Admin', 'admin@owsync.test', 'signup', 'admin'),
    ('alice', 'Alice Example', 'alice@owsync.test', 'add', 'user'),
    ('bob', 'Bob Example', 'bob@owsync.test', 'add', 'user'),
    ('carol', 'Carol Signup', 'carol@owsync.test', 'signup', 'user'),
    ('dave', 'Dave Deleted', 'dave@owsync.test', 'add', 'user'),
]


def populate(base, out_path):
    t0 = time.monotonic()
    record = {'users': {}, 'deleted_users': {}, 'chats': {}, 'skipped': {}}
    users = {}
    for key, name, email, how, role in USERS:
        password = f'pw-{key}-owsync-1'
        if how == 'signup':
            res = Api(base).post('/api/v1/auths/signup',
                                 {'name': name, 'email': email, 'password': password})
        else:
            res = users['admin'].api.post('/api/v1/auths/add', {
                'name': name, 'email': email, 'password': password, 'role': role})
        if res.get('role') != role:
            raise RuntimeError(f'{email}: role {res.get("role")}, expected {role}')
        record['users'][key] = {'id': res['id'], 'name': name, 'email': email,
                                'password': password, 'role': role}
        users[key] = User(base, email, password)
        if key == 'admin':  # the admin shares the model with every user, as in Admin > Models
            users[key].api.post('/api/v1/models/create', {
                'id': MODEL, 'base_model_id': None, 'name': 'owsync canned',
                'meta': {'description': 'canned replies for the owsync tests',
                         'profile_image_url': '/static/favicon.png'},
                'params': {}, 'is_active': True,
                'access_grants': [{'principal_type': 'user', 'principal_id': '*',
                                   'permission': 'read'}]})
            # the first sign-up closes sign-ups: the admin opens them again (Admin > Settings)
            cfg = users[key].api.get('/api/v1/auths/admin/config')
            cfg.update({'ENABLE_SIGNUP': True, 'DEFAULT_USER_ROLE': 'user'})
            users[key].api.post('/api/v1/auths/admin/config', cfg)
    admin, alice, bob, carol, dave = (users[k] for k in ('admin', 'alice', 'bob', 'carol', 'dave'))

    def chat(user, key, texts, **kw):
        cid = user.converse(texts, **kw)
        record['chats'][key] = {'id': cid, 'user': next(k for k, u in users.items() if u is user)}
        return cid

    # chats, several messages each, replies streamed by the fake model server
    for key, user in users.items():
        for n in range(2):
            chat(user, f'{key}-chat{n}', [f'{user.name} asks question {n}.{i}: what is {i} + {n}?'
                                          for i in range(3)])
    # a title edit, a pin, an archive, tags
    cid = record['chats']['alice-chat0']['id']
    alice.api.post(f'/api/v1/chats/{cid}', {'chat': {'title': 'Alice renamed this chat'}})
    alice.api.post(f'/api/v1/chats/{cid}/pin')
    for tag in ('Work', 'owsync test'):
        alice.api.post(f'/api/v1/chats/{cid}/tags', {'name': tag})
    admin.api.post(f"/api/v1/chats/{record['chats']['admin-chat1']['id']}/archive")
    bob.api.post(f"/api/v1/chats/{record['chats']['bob-chat0']['id']}/tags", {'name': 'Personal'})
    # folders: one chat moved into a folder, a subfolder, and a chat started inside a folder
    folder = alice.api.post('/api/v1/folders/', {'name': 'Projects'})
    sub = alice.api.post('/api/v1/folders/', {'name': 'Archive 2026', 'parent_id': folder['id']})
    alice.api.post(f"/api/v1/chats/{record['chats']['alice-chat1']['id']}/folder",
                   {'folder_id': folder['id']})
    chat(alice, 'alice-in-folder', ['A chat started in a subfolder.', 'And a follow-up.'],
         folder_id=sub['id'])
    record['folders'] = {'alice-projects': folder['id'], 'alice-sub': sub['id']}
    # notes
    notes = {}
    for user, title, text in ((alice, 'Shopping list', 'milk, eggs'),
                              (carol, 'Meeting notes', 'owsync sync every 5 minutes')):
        note = user.api.post('/api/v1/notes/create', {
            'title': title,
            'data': {'content': {'json': None, 'html': f'<p>{text}</p>', 'md': text}},
            'meta': None, 'access_grants': []})
        notes[title] = note['id']
    user_note = notes['Shopping list']
    alice.api.post(f'/api/v1/notes/{user_note}/update', {
        'title': 'Shopping list', 'data': {'content': {'json': None, 'html': '<p>milk, eggs, tea</p>',
                                                       'md': 'milk, eggs, tea'}}})
    record['notes'] = notes
    # channels: a standard channel (admin) and a group channel (alice with bob), messages,
    # a thread reply and a reaction
    general = admin.api.post('/api/v1/channels/create', {
        'name': 'general', 'description': 'everyone',
        'access_grants': [{'principal_type': 'user', 'principal_id': '*', 'permission': 'read'},
                          {'principal_type': 'user', 'principal_id': '*', 'permission': 'write'}]})
    m1 = admin.api.post(f"/api/v1/channels/{general['id']}/messages/post",
                        {'content': 'Welcome to the general channel.'})
    try:
        m2 = alice.api.post(f"/api/v1/channels/{general['id']}/messages/post",
                            {'content': 'Thanks, glad to be here.'})
    except ApiError as e:  # access grant form differs: the admin writes the second message
        record['skipped']['alice-in-general'] = str(e)
        m2 = admin.api.post(f"/api/v1/channels/{general['id']}/messages/post",
                            {'content': 'A second message.'})
    admin.api.post(f"/api/v1/channels/{general['id']}/messages/post",
                   {'content': 'A reply in a thread.', 'parent_id': m1['id']})
    admin.api.post(f"/api/v1/channels/{general['id']}/messages/{m2['id']}/reactions/add",
                   {'name': 'thumbsup'})
    group = alice.api.post('/api/v1/channels/create', {
        'name': 'alice-and-bob', 'type': 'group', 'user_ids': [bob.id]})
    alice.api.post(f"/api/v1/channels/{group['id']}/messages/post", {'content': 'Hi Bob!'})
    bob.api.post(f"/api/v1/channels/{group['id']}/messages/post", {'content': 'Hi Alice.'})
    record['channels'] = {'general': general['id'], 'alice-and-bob': group['id']}
    # a file: uploaded, processed (embedded by the fake server), then attached to a message
    try:
        f = carol.api.upload('/api/v1/files/', 'owsync-notes.txt',
                             b'owsync mirrors Open WebUI databases into PostgreSQL.\n')
        file_item = {'type': 'file', 'file': f, 'id': f['id'], 'url': f['id'],
                     'name': f['filename'], 'collection_name': f.get('meta', {}).get(
                         'collection_name', ''), 'status': 'uploaded', 'size': len(b''),
                     'itemId': str(uuid.uuid4())}
        chat(carol, 'carol-with-file', ['What does the attached file say?'], files=[file_item])
        record['files'] = {'owsync-notes.txt': f['id']}
    except (ApiError, RuntimeError) as e:
        record['skipped']['file'] = str(e)
    # deletions: one chat, one user (after it wrote a chat)
    bob.api.delete(f"/api/v1/chats/{record['chats']['bob-chat1']['id']}")
    record['deleted_chats'] = [record['chats'].pop('bob-chat1')['id']]
    dave.close()
    admin.api.delete(f"/api/v1/users/{dave.id}")
    record['deleted_users']['dave'] = record['users'].pop('dave')
    for k in ('dave-chat0', 'dave-chat1'):
        record['deleted_chats'].append(record['chats'].pop(k)['id'])
    for user in users.values():
        if user is not dave:
            user.close()
    record['seconds'] = round(time.monotonic() - t0, 1)
    with open(out_path, 'w') as fh:
        json.dump(record, fh, indent=2, sort_keys=True)
    print(f'populate: {len(record["users"])} users, {len(record["chats"])} chats, '
          f'{len(record["skipped"])} skipped {sorted(record["skipped"])}, {record["seconds"]} s')


# ------------------------------------------------------------------------------- dump

def thread_of(chat):
    """The messages of a chat's current branch, root first, as (id, role, content, model)."""
    history = chat.get('history') or {}
    messages = history.get('messages') or {}
    out, mid = [], history.get('currentId')
    while mid:
        m = messages[mid]
        out.append({'id': m['id'], 'role': m['role'], 'content': m.get('content'),
                    'model': m.get('model'), 'done': m.get('done'),
                    'files': [f.get('id') for f in m.get('files') or []]})
        mid = m.get('parentId')
    return list(reversed(out))


def dump(base, users_path, out_path):
    record = json.load(open(users_path))
    view = {}
    for key, u in sorted(record['users'].items()):
        api, info = signin(base, u['email'], u['password'])
        entry = {'id': info['id'], 'name': info['name'], 'email': info['email'],
                 'role': info['role']}
        ids = set()
        page = 1
        while True:
            batch = api.get(f'/api/v1/chats/list?page={page}&include_pinned=true&include_folders=true')
            if not batch:
                break
            ids.update(c['id'] for c in batch)
            page += 1
        ids.update(c['id'] for c in api.get('/api/v1/chats/archived') or [])
        chats = []
        for cid in sorted(ids):
            c = api.get(f'/api/v1/chats/{cid}')
            chats.append({
                'id': c['id'], 'title': c['title'], 'pinned': c.get('pinned'),
                'archived': c.get('archived'), 'folder_id': c.get('folder_id'),
                'created_at': c.get('created_at'), 'updated_at': c.get('updated_at'),
                'tags': sorted((c.get('meta') or {}).get('tags') or []),
                'messages': thread_of(c['chat']),
                'message_count': len((c['chat'].get('history') or {}).get('messages') or {}),
            })
        entry['chats'] = chats
        entry['folders'] = sorted(({'id': f['id'], 'name': f['name'],
                                    'parent_id': f.get('parent_id')}
                                   for f in api.get('/api/v1/folders/')), key=lambda f: f['id'])
        notes = []
        for n in api.get('/api/v1/notes/') or []:
            full = api.get(f"/api/v1/notes/{n['id']}")
            if full.get('user_id') != info['id']:
                continue
            notes.append({'id': full['id'], 'title': full['title'],
                          'content': ((full.get('data') or {}).get('content') or {}).get('md'),
                          'created_at': full.get('created_at'),
                          'updated_at': full.get('updated_at')})
        entry['notes'] = sorted(notes, key=lambda n: n['id'])
        channels = []
        for ch in api.get('/api/v1/channels/') or []:
            msgs = api.get(f"/api/v1/channels/{ch['id']}/messages?skip=0&limit=100") or []
            out = []
            for m in msgs:
                item = {'id': m['id'], 'user_id': m['user_id'], 'content': m['content'],
                        'parent_id': m.get('parent_id'), 'created_at': m.get('created_at'),
                        'reactions': sorted((r['name'], r['count']) for r in m.get('reactions') or [])}
                if m.get('reply_count'):
                    thread = api.get(f"/api/v1/channels/{ch['id']}/messages/{m['id']}/thread") or []
                    item['thread'] = sorted((t['id'], t['content']) for t in thread
                                            if t['id'] != m['id'])
                out.append(item)
            channels.append({'id': ch['id'], 'name': ch['name'], 'type': ch.get('type'),
                             'messages': sorted(out, key=lambda m: m['id'])})
        entry['channels'] = sorted(channels, key=lambda c: c['id'])
        view[key] = entry
    with open(out_path, 'w') as fh:
        json.dump(view, fh, indent=2, sort_keys=True)
    n_chats = sum(len(v['chats']) for v in view.values())
    print(f'dump: {len(view)} users, {n_chats} chats -> {out_path}')


def login_check(base, users_path):
    record = json.load(open(users_path))
    bad = []
    for key, u in sorted(record['users'].items()):
        try:
            _, info = signin(base, u['email'], u['password'])
            if info['id'] != u['id']:
                bad.append(f'{key}: signed in as {info["id"]}, expected {u["id"]}')
        except ApiError as e:
            bad.append(f'{key}: {e}')
    for key, u in sorted(record.get('deleted_users', {}).items()):
        try:
            signin(base, u['email'], u['password'])
            bad.append(f'{key}: a deleted user signed in')
        except ApiError as e:
            if e.status not in (400, 401, 403):
                bad.append(f'{key}: {e}')
    for line in bad:
        print('login-check: ' + line)
    n = len(record['users']) + len(record.get('deleted_users', {}))
    print(f'login-check: {n - len(bad)} of {n} users as expected')
    return 1 if bad else 0


# ------------------------------------------------------------------------------- one chat

def signin_as(base, users_path, key):
    u = json.load(open(users_path))['users'][key]
    return signin(base, u['email'], u['password'])[0]


def chat_get(base, users_path, key, chat_id, out_path):
    """What the chat menu's Export chat (.json) saves (Chat.svelte downloadJSONExport):
    JSON.stringify([chat]) of GET /api/v1/chats/{id}."""
    chat = signin_as(base, users_path, key).get(f'/api/v1/chats/{chat_id}')
    with open(out_path, 'w') as fh:
        json.dump([chat], fh)
    print(f"chat-get: {chat['title']!r}, "
          f"{len((chat['chat'].get('history') or {}).get('messages') or {})} messages")


def chat_delete(base, users_path, key, chat_id):
    """The chat menu's Delete (deleteChatById)."""
    if signin_as(base, users_path, key).delete(f'/api/v1/chats/{chat_id}') is not True:
        raise RuntimeError(f'chat {chat_id} not deleted')
    print(f'chat-delete: {chat_id} deleted')


def chat_import(base, users_path, key, export_path, out_path):
    """Settings > Chats > Import of a chat export file (Chats.svelte importChatsHandler, each
    item mapped as it maps them, then importChats: POST /api/v1/chats/import), and each
    imported chat read back through GET /api/v1/chats/{id}."""
    api = signin_as(base, users_path, key)
    chats = json.load(open(export_path))

    def given(c, k, default):  # JavaScript's c?.k ?? default
        return default if c.get(k) is None else c[k]
    forms = [{'chat': c['chat'], 'meta': given(c, 'meta', {}), 'variables': given(c, 'variables', {}),
              'pinned': given(c, 'pinned', False), 'archived': given(c, 'archived', False),
              'folder_id': given(c, 'folder_id', None), 'created_at': given(c, 'created_at', None),
              'updated_at': given(c, 'updated_at', None)} for c in chats]
    imported = api.post('/api/v1/chats/import', {'chats': forms})
    if not imported or len(imported) != len(forms):
        raise RuntimeError(f'import of {len(forms)} chats answered {imported}')
    back = [api.get(f"/api/v1/chats/{c['id']}") for c in imported]
    with open(out_path, 'w') as fh:
        json.dump(back, fh)
    print(f"chat-import: {len(back)} chats imported as {[c['id'] for c in back]}")


# ------------------------------------------------------------------------------- writer

def writer(base, users_path, seconds, stop_file, out_path):
    record = json.load(open(users_path))
    u = record['users'].get('writer') or record['users']['admin']
    user = User(base, u['email'], u['password'])
    latencies, failures, errors = [], 0, []
    deadline = time.monotonic() + seconds if seconds else None
    chat_id, parent, n = None, None, 0
    try:
        while True:
            if deadline and time.monotonic() >= deadline:
                break
            if stop_file and os.path.exists(stop_file):
                break
            n += 1
            if n % 20 == 1:  # a new chat now and then: chat rows as well as messages
                chat_id, parent = None, None
            try:
                chat_id, parent, secs = user.send(f'writer message {n} at {time.time():.3f}',
                                                  chat_id=chat_id, parent_id=parent)
                latencies.append(secs)
            except Exception as e:  # noqa: BLE001 (every failure counts, the run goes on)
                failures += 1
                errors.append(str(e)[:300])
                chat_id, parent = None, None
    finally:
        user.close()
    lat = sorted(latencies)

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None
    stats = {'requests': len(lat) + failures, 'ok': len(lat), 'failures': failures,
             'p50': pct(0.50), 'p99': pct(0.99), 'max': round(lat[-1], 3) if lat else None,
             'errors': errors[:10]}
    if out_path:
        with open(out_path, 'w') as fh:
            json.dump(stats, fh, indent=2)
    print(f"writer: {stats['ok']} messages stored, {failures} failures, "
          f"p50 {stats['p50']} s, p99 {stats['p99']} s, max {stats['max']} s")
    return 1 if failures else 0


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    base, cmd, args = argv[1], argv[2], argv[3:]
    if cmd == 'populate':
        populate(base, args[0])
    elif cmd == 'dump':
        dump(base, args[0], args[1])
    elif cmd == 'login-check':
        return login_check(base, args[0])
    elif cmd == 'chat-get':
        chat_get(base, *args)
    elif cmd == 'chat-delete':
        chat_delete(base, *args)
    elif cmd == 'chat-import':
        chat_import(base, *args)
    elif cmd == 'writer':
        opts = {'--seconds': None, '--stop-file': None, '--out': None}
        users_path, rest = args[0], args[1:]
        for i in range(0, len(rest), 2):
            opts[rest[i]] = rest[i + 1]
        if not opts['--seconds'] and not opts['--stop-file']:
            print('writer: give --seconds N or --stop-file F')
            return 2
        return writer(base, users_path, float(opts['--seconds'] or 0), opts['--stop-file'],
                      opts['--out'])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
