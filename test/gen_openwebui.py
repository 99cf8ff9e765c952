#!/usr/bin/env python3
"""Generate a realistic, deterministic Open WebUI webui.db (SQLite) for tests and benchmarks.

The schema is loaded from the real Open WebUI DDL in test/fixtures/schema-{legacy,fresh}.sql;
this script only writes rows.  Rows are built per table as dicts keyed by column name, so both
schema flavours share one code path.  Row content depends only on the arguments (mainly
--seed): two runs with the same arguments give identical `sqlite3 x.db .dump` output.

  python3 test/gen_openwebui.py --out /tmp/webui.db [--flavour legacy|fresh] [--seed N]
      [--size tiny|small|bench] [--chats N] [--users N] [--journal wal|delete]
      [--no-pk] [--quirks] [--force]

Data conventions follow Open WebUI (see test/fixtures/README.md): booleans as 0/1, JSON text
from json.dumps() defaults (ASCII only, non-ASCII \\uXXXX-escaped), raw UTF-8 in plain TEXT
columns, epoch seconds in most tables and nanoseconds in the channel, note, calendar and
automation tables, milliseconds inside the chat.chat JSON.
"""

import argparse
import base64
import hashlib
import json
import math
import os
import random
import re
import sqlite3
import sys
import time
import uuid
from dataclasses import dataclass

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
SCHEMA_FILES = {'legacy': 'schema-legacy.sql', 'fresh': 'schema-fresh.sql'}
ALEMBIC_HEAD = '0bd252b206fb'   # open-webui 0.12.4
# Peewee tables that had no PRIMARY KEY before Open WebUI v0.9.6 (only a "<table>_id" unique index).
NO_PK_TABLES = ('auth', 'chat', 'chatidtag', 'file', 'function', 'memory', 'model', 'tool', 'user')

T_START = 1735689600  # 2025-01-01 00:00:00 UTC
T_END = 1782864000    # 2026-07-01 00:00:00 UTC
NS = 1_000_000_000
DAY = 86400


@dataclass(frozen=True)
class Preset:
    users: int
    chats: int
    turns_median: float     # user turns per chat (log-normal median)
    turns_max: int
    paragraphs_median: float  # paragraphs per assistant answer (log-normal median)
    file_kb: float          # extracted text per file, KB (log-normal median)
    files_per_chat: float
    huge_chats: int         # chats carrying a ~0.45 MB base64 image (chat.chat ~1 MB)
    channel_msgs_per_chat: float


PRESETS = {
    'tiny': Preset(users=3, chats=12, turns_median=2, turns_max=4, paragraphs_median=1.5,
                   file_kb=1, files_per_chat=0.5, huge_chats=0, channel_msgs_per_chat=1),
    'small': Preset(users=20, chats=300, turns_median=2.5, turns_max=12, paragraphs_median=1.8,
                    file_kb=4, files_per_chat=0.2, huge_chats=1, channel_msgs_per_chat=1),
    'bench': Preset(users=120, chats=10000, turns_median=5, turns_max=30, paragraphs_median=2.1,
                    file_kb=30, files_per_chat=0.3, huge_chats=5, channel_msgs_per_chat=2),
}

# ---------------------------------------------------------------------------------------------
# Text material.  Plain TEXT columns receive raw UTF-8; JSON columns get \uXXXX escapes.

PEOPLE = [  # (display name, ASCII e-mail local part)
    ('Ana Müller', 'ana.mueller'), ('José Álvarez', 'jose.alvarez'), ('王小明', 'xiaoming.wang'),
    ('Chloé Dubois', 'chloe.dubois'), ('佐藤 花子', 'hanako.sato'), ('Zoë Nguyen 🚀', 'zoe.nguyen'),
    ('Björn Larsson', 'bjorn.larsson'), ('Łukasz Nowak', 'lukasz.nowak'), ('Ngozi Okafor', 'ngozi.okafor'),
    ('Priya Raman', 'priya.raman'), ('Oğuz Yılmaz', 'oguz.yilmaz'), ('Михаил Иванов', 'mikhail.ivanov'),
    ('Αλέξανδρος Παππάς', 'alexandros.pappas'), ('김민준', 'minjun.kim'), ('Fatima Zahra', 'fatima.zahra'),
    ('Emma Johnson', 'emma.johnson'), ("Liam O'Brien", 'liam.obrien'), ('Øyvind Hansen', 'oyvind.hansen'),
    ('Inés Castaño', 'ines.castano'), ('Thandiwe Dlamini', 'thandiwe.dlamini'),
]

WORDS = """
the a of to and in for with on by from as is are was be can will should would could not this that
these those it its we you they our your their data model query index table row column value user
chat message file folder note channel server client cache memory disk network request response
token prompt answer context window batch stream vector embedding search result error warning log
config setting option default timeout retry backup restore migration schema version release update
upgrade install deploy container image volume service process thread lock transaction commit
rollback snapshot replica primary secondary latency throughput benchmark test case example function
method class module package library import export parse format encode decode convert validate
compare merge split join filter sort group count sum average maximum minimum range limit offset
first last next previous new old fast slow large small simple complex safe stable correct invalid
missing empty full partial local remote public private shared internal external manual automatic
quickly carefully usually often rarely always never again already still just only also however
therefore because although while when where which whose whether each every some many most few
""".split()

HEADINGS = ['Summary', 'Overview', 'Steps', 'Example', 'Explanation', 'Next steps', 'Résumé',
            'Caveats', 'Solution', 'Background', 'Zusammenfassung', 'Ejemplo']

UNICODE_LINES = [
    "Voilà, c'est réglé : le café est prêt à 8 h, merci à Chloé !",
    '¿Puedes revisar la configuración del señor Muñoz antes del miércoles?',
    'Die Größe der Datei überschreitet das Limit – bitte prüfen.',
    '数据库迁移已经完成，请检查日志并确认索引是否正常。',
    'このクエリはインデックスを使っていません。実行計画を確認してください。',
    '데이터베이스 백업이 완료되었습니다. 복원 테스트를 진행할까요?',
    'Привет! Как настроить репликацию в этой конфигурации?',
    'Το αρχείο είναι πολύ μεγάλο για να ανέβει.',
    'Great job 🎉🚀 — that fixed it ✅',
    'Temperature 21 °C ± 0.5, “smart quotes”, naïve café, 10 µs, ½ done…',
    'מסד הנתונים מוכן לשימוש.',
    'Emoji outside the BMP: 🧪🦀🐘👩‍💻🇯🇵',
    'Ça marche très bien, à bientôt ! Ñandú, pingüino, açaí.',
    'Mathe: ∑ xᵢ² ≤ ∞, ∀ε>0 ∃δ — Ω(n log n).',
]

TITLES = [
    'Python script for CSV export', 'Résumé de la réunion', '数据库迁移问题', 'Plan de viaje 🌍',
    'SQL window functions', 'Debugging WAL checkpoints', 'Rezept für Käsespätzle', 'Docker compose help',
    'Explain transformers like I am five', 'Regex für E-Mail-Adressen', 'Meeting notes ✍️',
    'Kubernetes ingress setup', 'Traduction: contrat de bail', 'Rust borrow checker question 🦀',
    'Budget spreadsheet formulas', 'PostgreSQL vacuum tuning', 'ドキュメントの翻訳', 'Marketing email draft',
    'Bash one-liner to rename files', 'Weekly report summary', 'Unit tests for the parser',
    'Idées de cadeaux 🎁', 'Explicación de la factura', 'Code review: auth middleware',
]

TAG_NAMES = ['work', 'Python', 'Data Science', 'travel', 'Café', 'ideas', '日本語', 'urgent',
             'SQL', 'writing', 'Personal', 'DevOps']

CODE_BLOCKS = [
    '```python\nimport csv\n\nwith open("out.csv", "w", newline="") as f:\n    w = csv.writer(f)\n'
    '    for row in rows:\n        w.writerow(row)\n```',
    '```sql\nSELECT user_id, count(*) AS n\nFROM chat\nWHERE archived = 0\nGROUP BY user_id\n'
    'ORDER BY n DESC\nLIMIT 10;\n```',
    '```bash\nfor f in *.JPG; do mv "$f" "${f%.JPG}.jpg"; done\n```',
    '```rust\nfn main() {\n    let v: Vec<i32> = (1..=10).collect();\n    println!("{}", v.iter().sum::<i32>());\n}\n```',
    '```yaml\nservices:\n  open-webui:\n    image: ghcr.io/open-webui/open-webui:main\n    volumes:\n'
    '      - open-webui:/app/backend/data\n```',
    '```json\n{"name": "example", "enabled": true, "retries": 3}\n```',
]

BASE_MODELS = [('gpt-4o', 'GPT-4o'), ('gpt-4o-mini', 'GPT-4o mini'), ('llama3.1:8b', 'llama3.1:8b'),
               ('qwen2.5:14b', 'qwen2.5:14b'), ('mistral-small:24b', 'mistral-small:24b'),
               ('claude-3-5-sonnet', 'Claude 3.5 Sonnet')]

B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
BCRYPT_CHARS = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'


def dumps(obj):
    """JSON exactly as SQLAlchemy's sa.JSON writes it: json.dumps defaults (ensure_ascii=True)."""
    return json.dumps(obj)


def slug(name):
    return name.lower().replace(' ', '_')


# ---------------------------------------------------------------------------------------------
# Database access


class Writer:
    """Inserts dict rows by column name into a table of the loaded schema."""

    def __init__(self, conn):
        self.conn = conn
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        self.columns = {t: {r[1] for r in conn.execute('PRAGMA table_info("%s")' % t)} for t in tables}

    def insert(self, table, rows):
        if not rows:
            return
        cols = list(rows[0])
        unknown = [c for c in cols if c not in self.columns[table]]
        if unknown:
            raise KeyError('%s has no column(s) %s' % (table, ', '.join(unknown)))
        for r in rows:
            if len(r) != len(cols):
                raise ValueError('%s: rows must all have the columns %s' % (table, cols))
        sql = 'INSERT INTO "%s" (%s) VALUES (%s)' % (
            table, ', '.join('"%s"' % c for c in cols), ', '.join('?' * len(cols)))
        self.conn.executemany(sql, [tuple(r[c] for c in cols) for r in rows])


def load_schema(conn, flavour, no_pk):
    with open(os.path.join(FIXTURES, SCHEMA_FILES[flavour]), encoding='utf-8') as f:
        ddl = f.read()
    if no_pk:
        ddl = drop_peewee_primary_keys(ddl)
    conn.executescript(ddl)
    versions = [r[0] for r in conn.execute('SELECT version_num FROM alembic_version')]
    if versions != [ALEMBIC_HEAD]:
        raise SystemExit('unexpected alembic_version in %s: %r' % (SCHEMA_FILES[flavour], versions))
    if no_pk:
        for t in NO_PK_TABLES:
            if any(r[5] for r in conn.execute('PRAGMA table_info("%s")' % t)):
                raise SystemExit('--no-pk: table %s still has a primary key' % t)


def drop_peewee_primary_keys(ddl):
    """Turn the legacy DDL into a pre-v0.9.6 one: no PRIMARY KEY on the peewee tables."""
    for t in NO_PK_TABLES:
        ddl, n = re.subn(r',\s*CONSTRAINT pk_%s PRIMARY KEY \(id\)(?=\s*\))' % t, '', ddl)
        if n != 1:
            raise SystemExit('--no-pk: found %d PRIMARY KEY clauses for %s in the legacy DDL' % (n, t))
    return ddl


# ---------------------------------------------------------------------------------------------
# Generator state and small random helpers


class Gen:
    def __init__(self, writer, preset, users, chats, seed):
        self.w = writer
        self.p = preset
        self.n_users = users
        self.n_chats = chats
        self.rng = random.Random(seed)
        # Text pools: messages and documents are drawn from these, which keeps generation fast.
        rng = self.rng
        self.sentences = [' '.join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + '.'
                          for _ in range(1500)]
        self.paragraphs = [' '.join(rng.choice(self.sentences) for _ in range(rng.randint(3, 7)))
                           for _ in range(800)]
        # Filled in as tables are generated; later groups reference earlier rows.
        self.users = []        # dicts: id, name, email, created_at, role
        self.groups = []
        self.models = []       # (model id, display name) usable in chats
        self.files = {}        # user id -> list of file dicts (id, filename, size, text excerpt)
        self.folders = {}      # user id -> list of folder ids
        self.chats = []        # (chat id, user id, updated_at)
        self.channels = []     # (channel id, member user dicts, created_at in seconds)

    def chance(self, p):
        return self.rng.random() < p

    def new_id(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, n):
        return '%0*x' % (n, self.rng.getrandbits(4 * n))

    def token(self, n, alphabet=B64URL):
        return ''.join(self.rng.choices(alphabet, k=n))

    def ts(self, lo=T_START, hi=T_END):
        return self.rng.randint(lo, hi)

    def ns(self, seconds):
        return seconds * NS + self.rng.randrange(NS)

    def lognorm(self, median, sigma, lo, hi):
        return max(lo, min(hi, int(round(median * math.exp(self.rng.gauss(0, sigma))))))

    def user(self):
        return self.rng.choice(self.users)

    def sentence_text(self, lo, hi):
        return ' '.join(self.rng.choice(self.sentences) for _ in range(self.rng.randint(lo, hi)))

    def long_text(self, n_bytes):
        """Plain text of roughly n_bytes characters (paragraphs joined by blank lines)."""
        parts, size = [], 0
        while size < n_bytes:
            part = self.rng.choice(self.paragraphs)
            if self.chance(0.05):
                part = self.rng.choice(UNICODE_LINES)
            parts.append(part)
            size += len(part) + 2
        return '\n\n'.join(parts)

    def user_text(self):
        if self.chance(0.15):
            return self.rng.choice(UNICODE_LINES)
        text = self.sentence_text(1, 3)
        if self.chance(0.15):
            text += ' ' + self.rng.choice(UNICODE_LINES)
        return text.replace('.', '?', 1) if self.chance(0.5) else text

    def answer_text(self):
        rng = self.rng
        parts = ['## ' + rng.choice(HEADINGS)] if self.chance(0.3) else []
        for _ in range(self.lognorm(self.p.paragraphs_median, 0.6, 1, 25)):
            r = rng.random()
            if r < 0.12:
                parts.append(rng.choice(CODE_BLOCKS))
            elif r < 0.25:
                parts.append('\n'.join('- ' + rng.choice(self.sentences) for _ in range(rng.randint(2, 6))))
            else:
                parts.append(rng.choice(self.paragraphs))
        if self.chance(0.2):
            parts.append(rng.choice(UNICODE_LINES))
        return '\n\n'.join(parts)

    def data_uri(self, raw_bytes):
        payload = b'\x89PNG\r\n\x1a\n' + self.rng.randbytes(raw_bytes)
        return 'data:image/png;base64,' + base64.b64encode(payload).decode('ascii')

    def fernet(self, n_bytes):
        return 'gAAAAA' + base64.urlsafe_b64encode(self.rng.randbytes(n_bytes)).decode('ascii')


# ---------------------------------------------------------------------------------------------
# Table groups.  Conditions such as `i == 0 or g.chance(p)` force the first user/chat/... to have
# the optional rows, so that even --size tiny has rows in every table.


def gen_users(g):
    """user, auth, api_key, oauth_session."""
    users, auths, keys, sessions = [], [], [], []
    for i in range(g.n_users):
        name, local = PEOPLE[i % len(PEOPLE)]
        if i >= len(PEOPLE):
            name, local = '%s %d' % (name, i), '%s%d' % (local, i)
        created = g.ts(T_START, T_START + 120 * DAY) if i == 0 else g.ts(T_START, T_END - 30 * DAY)
        updated = g.ts(created, T_END)
        uid = g.new_id()
        email = local + '@example.' + g.rng.choice(['com', 'org', 'de', 'fr'])
        role = 'admin' if i == 0 else ('pending' if i % 11 == 5 else 'user')
        is_oauth = i % 4 == 1
        users.append({
            'id': uid, 'name': name, 'email': email, 'role': role,
            'profile_image_url': g.data_uri(g.lognorm(6000, 1.0, 500, 120000))
            if g.chance(0.3) else '/user.png',
            'created_at': created, 'updated_at': updated, 'last_active_at': g.ts(updated, T_END),
            'username': local.replace('.', '_') if g.chance(0.5) else None,
            'bio': g.sentence_text(1, 2) if g.chance(0.3) else None,
            'gender': g.rng.choice(['female', 'male', 'non-binary']) if g.chance(0.2) else None,
            'date_of_birth': '%04d-%02d-%02d' % (g.rng.randint(1960, 2004), g.rng.randint(1, 12),
                                                 g.rng.randint(1, 28)) if g.chance(0.2) else None,
            'profile_banner_image_url': None,
            'timezone': g.rng.choice(['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'UTC'])
            if g.chance(0.6) else None,
            'presence_state': g.rng.choice(['online', 'away']) if g.chance(0.4) else None,
            'status_emoji': g.rng.choice(['🎯', '🌴', '🤒', '📅']) if g.chance(0.2) else None,
            'status_message': g.rng.choice(['Focus time', 'En vacances 🌴', 'Im Meeting']) if g.chance(0.2)
            else None,
            'status_expires_at': None,
            # JSON None is stored as the text 'null'; a column never written is SQL NULL.
            'oauth': dumps({'oidc': {'sub': g.hex(24)}}) if is_oauth else ['null', None][i % 2],
            'info': ['null', None, dumps({'location': 'Zürich', 'department': 'R&D'})][i % 3],
            'settings': 'null' if i % 3 == 2 else dumps({'ui': {'theme': g.rng.choice(['dark', 'light', 'system']),
                                                                'models': [g.rng.choice(BASE_MODELS)[0]],
                                                                'notificationEnabled': g.chance(0.5)}}),
            'scim': None,
            'variables': dumps({'company': 'ACME Ltd.'}) if g.chance(0.1) else None,
        })
        auths.append({'id': uid, 'email': email, 'active': 1,
                      'password': '$2b$12$' + g.token(53, BCRYPT_CHARS)})
        if i == 0 or g.chance(0.3):
            t = g.ts(created, T_END)
            keys.append({'id': 'key_' + uid, 'user_id': uid, 'key': 'sk-' + g.hex(32), 'data': None,
                         'expires_at': None, 'last_used_at': None, 'created_at': t, 'updated_at': t})
        if is_oauth:
            t = g.ts(updated, T_END)
            sessions.append({'id': g.new_id(), 'user_id': uid, 'provider': 'oidc',
                             'token': g.fernet(g.rng.randint(300, 900)), 'expires_at': t + 3600,
                             'created_at': t - g.rng.randint(0, 30 * DAY), 'updated_at': t})
        g.users.append({'id': uid, 'name': name, 'email': email, 'created_at': created, 'role': role})
    g.w.insert('user', users)
    g.w.insert('auth', auths)
    g.w.insert('api_key', keys)
    g.w.insert('oauth_session', sessions)


def gen_groups(g):
    """group, group_member."""
    admin = g.users[0]
    names = ['Engineering', 'Marketing', 'Support 🛟', 'Direction générale', '研究チーム']
    groups, members = [], []
    for i in range(max(1, g.n_users // 8)):
        gid, created = g.new_id(), g.ts(admin['created_at'])
        groups.append({
            'id': gid, 'user_id': admin['id'], 'name': names[i % len(names)] + ('' if i < len(names) else ' %d' % i),
            'description': g.sentence_text(1, 1), 'data': dumps({'config': {'share': True}}) if g.chance(0.5) else None,
            'meta': None,
            'permissions': dumps({'workspace': {'models': g.chance(0.5), 'knowledge': True, 'prompts': True,
                                                'tools': False},
                                  'chat': {'file_upload': True, 'delete': True, 'temporary': False}}),
            'created_at': created, 'updated_at': None if g.chance(0.3) else g.ts(created),
        })
        for u in g.rng.sample(g.users, min(len(g.users), g.rng.randint(1, 12))):
            t = g.ts(created)
            members.append({'id': g.new_id(), 'group_id': gid, 'user_id': u['id'], 'created_at': t,
                            'updated_at': None if g.chance(0.5) else t})
        g.groups.append(gid)
    g.w.insert('group', groups)
    g.w.insert('group_member', members)


def grant(g, resource_type, resource_id):
    """access_grant rows sharing a resource with a group, a user or everybody."""
    rows, seen = [], []
    for _ in range(g.rng.randint(1, 3)):
        r = g.rng.random()
        principal = (('group', g.rng.choice(g.groups)) if r < 0.5 else
                     ('user', g.user()['id']) if r < 0.8 else ('user', '*'))
        permission = 'read' if principal[1] == '*' or g.chance(0.7) else 'write'
        key = principal + (permission,)
        if key not in seen:
            seen.append(key)
            rows.append({'id': g.new_id(), 'resource_type': resource_type, 'resource_id': resource_id,
                         'principal_type': principal[0], 'principal_id': principal[1],
                         'permission': permission, 'created_at': g.ts()})
    return rows


def gen_workspace(g):
    """model, tool, function, skill, prompt, prompt_history, access_grant."""
    admin = g.users[0]['id']
    g.models = list(BASE_MODELS)
    models, tools, functions, skills, prompts, history, grants = [], [], [], [], [], [], []
    for i in range(max(2, g.n_users // 10)):
        base, _ = g.rng.choice(BASE_MODELS)
        mid, name = 'assistant-%d' % (i + 1), g.rng.choice(['Code Helper', 'Traducteur', 'Écrivain', '助手',
                                                          'SQL Guru', 'Support Bot']) + ' %d' % (i + 1)
        created = g.ts()
        models.append({
            'id': mid, 'user_id': admin, 'base_model_id': base, 'name': name,
            'meta': dumps({'profile_image_url': g.data_uri(800) if g.chance(0.3) else '/static/favicon.png',
                           'description': g.sentence_text(1, 1), 'capabilities': {'vision': g.chance(0.5),
                                                                                 'citations': True},
                           'suggestion_prompts': None, 'tags': [{'name': 'custom'}]}),
            'params': dumps({'system': 'You are %s. Réponds en français si besoin.' % name,
                             'temperature': round(g.rng.uniform(0, 1.2), 2)}),
            'created_at': created, 'updated_at': g.ts(created), 'is_active': int(g.chance(0.9)),
        })
        g.models.append((mid, name))
        grants += grant(g, 'model', mid)
    for i in range(max(1, g.n_users // 15)):
        created = g.ts()
        tid = ['web_search', 'weather', 'calculator', 'jira_client', 'sql_runner'][i % 5] + ('' if i < 5 else '_%d' % i)
        tools.append({
            'id': tid, 'user_id': admin, 'name': tid.replace('_', ' ').title(),
            'content': '"""\ntitle: %s\nversion: 0.1.%d\n"""\n\nclass Tools:\n    def run(self, query: str) -> str:\n'
                       '        return query\n' % (tid, i),
            'specs': dumps([{'name': 'run', 'description': 'Run the tool.',
                             'parameters': {'type': 'object', 'properties': {'query': {'type': 'string'}},
                                            'required': ['query']}}]),
            'meta': dumps({'description': g.sentence_text(1, 1), 'manifest': {'title': tid, 'version': '0.1.%d' % i}}),
            'created_at': created, 'updated_at': g.ts(created),
            'valves': g.rng.choice([None, dumps({}), dumps({'api_key': 'sk-' + g.hex(24)})]),
        })
        grants += grant(g, 'tool', tid)
    for i, (fid, ftype) in enumerate([('auto_memory', 'filter'), ('anthropic_pipe', 'pipe'),
                                      ('export_pdf', 'action'), ('langfuse_filter', 'filter')]
                                     [:max(2, g.n_users // 10)]):
        created = g.ts()
        functions.append({
            'id': fid, 'user_id': admin, 'name': fid.replace('_', ' ').title(), 'type': ftype,
            'content': 'class %s:\n    class Valves(BaseModel):\n        priority: int = 0\n' %
                       {'filter': 'Filter', 'pipe': 'Pipe', 'action': 'Action'}[ftype],
            'meta': dumps({'description': g.sentence_text(1, 1), 'manifest': {}}),
            'created_at': created, 'updated_at': g.ts(created),
            # Valves encrypted by ENABLE_VALVE_ENCRYPTION are a JSON string holding a Fernet token.
            'valves': [dumps({'priority': 0}), None, dumps(g.fernet(60))][i % 3],
            'is_active': int(i != 3), 'is_global': int(i == 0),
        })
    for i in range(max(1, g.n_users // 20)):
        created = g.ts()
        skills.append({'id': g.new_id(), 'user_id': admin, 'name': 'skill-%d' % (i + 1),
                       'description': g.sentence_text(1, 1),
                       'content': '# Skill\n\n' + g.long_text(600), 'meta': dumps({'tags': ['writing']}),
                       'is_active': 1, 'updated_at': g.ts(created), 'created_at': created})
    commands = ['summarize', 'translate', 'explain-code', 'résumé', 'email-reply', 'fix-grammar', 'sql']
    for i in range(max(2, g.n_users // 5)):
        u, pid, created = g.user(), g.new_id(), g.ts()
        command = commands[i % len(commands)] + ('' if i < len(commands) else '-%d' % i)
        content = 'Please %s the following text:\n\n{{CLIPBOARD}}' % command
        parent = None
        for v in range(g.rng.randint(1, 3)):
            hid = g.new_id()
            history.append({'id': hid, 'prompt_id': pid, 'parent_id': parent, 'user_id': u['id'],
                            'snapshot': dumps({'name': command.title(), 'command': command, 'content': content,
                                               'tags': ['text']}),
                            'commit_message': None if v == 0 else 'Tweak wording (v%d)' % (v + 1),
                            'created_at': created + v * 3600})
            parent = hid
        prompts.append({'id': pid, 'command': command, 'user_id': u['id'], 'name': command.title(),
                        'content': content, 'data': None, 'meta': dumps({}), 'is_active': 1, 'version_id': parent,
                        'tags': dumps(['text']), 'created_at': created, 'updated_at': created + 3600})
        grants += grant(g, 'prompt', pid)
    for table, rows in [('model', models), ('tool', tools), ('function', functions), ('skill', skills),
                        ('prompt', prompts), ('prompt_history', history), ('access_grant', grants)]:
        g.w.insert(table, rows)


def gen_files_and_knowledge(g):
    """file, knowledge, knowledge_directory, knowledge_file."""
    files = []
    for i in range(max(3, round(g.n_chats * g.p.files_per_chat))):
        u = g.users[i % len(g.users)] if i < len(g.users) else g.user()
        fid, created = g.new_id(), g.ts(u['created_at'])
        ext = g.rng.choice(['pdf', 'docx', 'txt', 'md', 'csv'])
        filename = g.rng.choice(['report', 'Angebot', 'notes', 'facture', '議事録', 'data', 'spec']) + \
            '_%d.%s' % (i, ext)
        text = g.long_text(g.lognorm(g.p.file_kb * 1024, 0.9, 200, 2_000_000))
        size = len(text.encode('utf-8')) * g.rng.randint(2, 5)
        ctype = {'pdf': 'application/pdf', 'txt': 'text/plain', 'md': 'text/markdown', 'csv': 'text/csv',
                 'docx': 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'}[ext]
        pre_0331 = created < T_START + 60 * DAY and g.chance(0.5)  # rows older than file.updated_at/hash
        files.append({
            'id': fid, 'user_id': u['id'], 'filename': filename,
            'meta': dumps({'name': filename, 'content_type': ctype, 'size': size, 'data': {},
                           'collection_name': 'file-' + fid}),
            'created_at': created, 'hash': None if pre_0331 else hashlib.sha256(text.encode('utf-8')).hexdigest(),
            'data': dumps({'content': text, 'status': 'completed'}),
            'updated_at': None if pre_0331 else g.ts(created, min(T_END, created + 600)),
            'path': '/app/backend/data/uploads/%s_%s' % (fid, filename),
        })
        g.files.setdefault(u['id'], []).append({'id': fid, 'filename': filename, 'size': size,
                                                'text': text[:600]})
    g.w.insert('file', files)

    knowledge, dirs, links, grants = [], [], [], []
    for i in range(max(1, g.n_users // 3)):
        u = g.users[i % len(g.users)]
        kid, created = g.new_id(), g.ts(u['created_at'])
        own = g.files.get(u['id'], [])
        picked = g.rng.sample(own, min(len(own), g.rng.randint(1, 30)))
        knowledge.append({'id': kid, 'user_id': u['id'],
                          'name': g.rng.choice(['Handbuch', 'Product docs', 'Políticas', 'Research', '社内規程']) +
                          ' %d' % (i + 1),
                          'description': g.sentence_text(1, 1), 'meta': None if g.chance(0.5) else dumps({}),
                          'created_at': created, 'updated_at': None if g.chance(0.2) else g.ts(created),
                          'data': dumps({'file_ids': [f['id'] for f in picked]}) if g.chance(0.3) else None})
        dir_ids = []
        for d, name in enumerate(['Guides', 'Archive'][:g.rng.randint(1, 2)]):
            did = g.new_id()
            dirs.append({'id': did, 'knowledge_id': kid, 'parent_id': dir_ids[0] if d else None, 'name': name,
                         'user_id': u['id'], 'created_at': created, 'updated_at': created})
            dir_ids.append(did)
        for f in picked:
            t = g.ts(created)
            links.append({'id': g.new_id(), 'user_id': u['id'], 'knowledge_id': kid, 'file_id': f['id'],
                          'created_at': t, 'updated_at': t,
                          'directory_id': g.rng.choice(dir_ids) if g.chance(0.4) else None})
        grants += grant(g, 'knowledge', kid)
    for table, rows in [('knowledge', knowledge), ('knowledge_directory', dirs), ('knowledge_file', links),
                        ('access_grant', grants)]:
        g.w.insert(table, rows)


def gen_folders(g):
    """folder (PK id, user_id), nested one level."""
    rows = []
    for i, u in enumerate(g.users):
        top = None
        for j in range(g.rng.randint(1 if i == 0 else 0, 4)):
            fid, created = g.new_id(), g.ts(u['created_at'])
            nested = top is not None and g.chance(0.3)
            rows.append({'id': fid, 'parent_id': top if nested else None, 'user_id': u['id'],
                         'name': g.rng.choice(['Projekte', 'Work', 'Recettes 🍲', '旅行', 'Research', 'Misc']) +
                         ' %d' % (j + 1),
                         'items': dumps({'chat_ids': [], 'file_ids': []}) if g.chance(0.3) else None,
                         'meta': dumps({'icon': '📁'}) if g.chance(0.3) else None,
                         'is_expanded': int(g.chance(0.5)), 'created_at': created, 'updated_at': g.ts(created),
                         'data': dumps({'system_prompt': 'Be concise.', 'files': []}) if g.chance(0.2) else None})
            top = top or fid
            g.folders.setdefault(u['id'], []).append(fid)
    g.w.insert('folder', rows)


class ChatBatch:
    """Rows of the chat group, flushed to the database every few hundred chats."""

    TABLES = ('chat', 'chat_message', 'chat_file', 'shared_chat', 'feedback')

    def __init__(self, g):
        self.g = g
        self.rows = {t: [] for t in self.TABLES}

    def flush(self):
        for t in self.TABLES:
            self.g.w.insert(t, self.rows[t])
            self.rows[t] = []


def gen_chats(g):
    """chat, chat_message, chat_file, shared_chat, feedback, tag."""
    batch = ChatBatch(g)
    tags = {}  # (slug, user id) -> display name
    huge = set(g.rng.sample(range(g.n_chats), min(g.n_chats, g.p.huge_chats)))
    for i in range(g.n_chats):
        u = g.users[i % len(g.users)] if i < len(g.users) else g.user()
        chat_tags = g.rng.sample(TAG_NAMES, g.rng.choice([0, 0, 1, 1, 2, 3]))
        for name in chat_tags:
            tags[(slug(name), u['id'])] = name
        add_chat(g, batch, i, u, [slug(n) for n in chat_tags], i in huge)
        if i % 250 == 249:
            batch.flush()
    add_timer_chats(g, batch)
    batch.flush()
    g.w.insert('tag', [{'id': s, 'name': name, 'user_id': uid, 'meta': None if k % 3 else dumps({})}
                       for k, ((s, uid), name) in enumerate(tags.items())])


def assistant_message(g, mid, parent, model, t, files):
    m = {'id': mid, 'parentId': parent, 'childrenIds': [], 'role': 'assistant', 'content': g.answer_text(),
         'model': model[0], 'modelName': model[1], 'modelIdx': 0, 'userContext': None, 'timestamp': t,
         'done': True}
    if g.chance(0.03):
        m['content'] = ''
        m['error'] = {'content': "Ollama: 500, message='Internal Server Error', url='http://ollama:11434/api/chat'"}
        return m
    prompt_tokens = g.rng.randint(20, 4000)
    completion_tokens = len(m['content']) // 4 + 1
    m['usage'] = {'prompt_tokens': prompt_tokens, 'completion_tokens': completion_tokens,
                  'total_tokens': prompt_tokens + completion_tokens,
                  'response_token/s': round(g.rng.uniform(8, 120), 2),
                  'total_duration': g.rng.randint(500_000_000, 60_000_000_000)}
    if files:
        m['sources'] = [{'source': {'id': f['id'], 'name': f['filename'], 'type': 'file'},
                         'document': [f['text'][:300]],
                         'metadata': [{'source': f['filename'], 'file_id': f['id'], 'page': 0}],
                         'distances': [round(g.rng.uniform(0.1, 0.9), 4)]} for f in files]
    if g.chance(0.1):
        m['statusHistory'] = [{'action': 'web_search', 'description': 'Searched {{count}} sites', 'done': True,
                               'urls': ['https://example.org/%s' % g.hex(6) for _ in range(3)]}]
    if g.chance(0.05):
        call = 'call_' + g.hex(12)
        m['output'] = [{'type': 'function_call', 'call_id': call, 'name': 'weather',
                        'arguments': dumps({'city': 'Genève'})},
                       {'type': 'function_call_output', 'call_id': call, 'output': '18 °C, sunny'},
                       {'type': 'message', 'role': 'assistant',
                        'content': [{'type': 'output_text', 'text': m['content'][:200]}]}]
    if g.chance(0.3):
        m['followUps'] = [g.rng.choice(g.sentences) for _ in range(3)]
    return m


def add_chat(g, batch, index, u, tag_slugs, huge):
    """One chat: the chat.chat message tree (history.messages, currentId) plus its per-message rows."""
    rng = g.rng
    cid = g.new_id()
    model = rng.choice(g.models)
    created = g.ts(max(u['created_at'], T_START), T_END - DAY)
    t = created
    nodes, path = {}, []
    own_files = g.files.get(u['id'], [])
    attach = rng.sample(own_files, 1) if own_files and (index == 0 or g.chance(0.3)) else []
    parent = None
    turns = g.lognorm(g.p.turns_median, 0.7, 1, g.p.turns_max)
    for turn in range(turns):
        um = {'id': g.new_id(), 'parentId': parent, 'childrenIds': [], 'role': 'user', 'content': g.user_text(),
              'timestamp': t, 'models': [model[0]]}
        if turn == 0 and attach:
            um['files'] = [{'type': 'file', 'id': f['id'], 'name': f['filename'], 'url': '/api/v1/files/' + f['id'],
                            'size': f['size'], 'collection_name': 'file-' + f['id'], 'status': 'uploaded',
                            'itemId': g.new_id()} for f in attach]
        if turn == 0 and huge:
            um.setdefault('files', []).append({'type': 'image', 'url': g.data_uri(330_000)})
        if parent is not None:
            nodes[parent]['childrenIds'].append(um['id'])
        nodes[um['id']] = um
        path.append(um['id'])
        # Regenerated answers stay in the tree as siblings that are not on the current branch.
        for _ in range(rng.choice([0] * 8 + [1, 2])):
            t += rng.randint(2, 120)
            alt = assistant_message(g, g.new_id(), um['id'], rng.choice(g.models), t, attach if turn == 0 else [])
            um['childrenIds'].append(alt['id'])
            nodes[alt['id']] = alt
        t += rng.randint(2, 120)
        am = assistant_message(g, g.new_id(), um['id'], model, t, attach if turn == 0 else [])
        um['childrenIds'].append(am['id'])
        nodes[am['id']] = am
        path.append(am['id'])
        parent = am['id']
        t += rng.randint(10, 3600)
    updated = min(t, T_END)
    leaf = nodes[path[-1]]
    rated = index == 2 or g.chance(0.08)
    if rated:
        leaf['annotation'] = {'rating': rng.choice([1, 1, -1]), 'tags': [], 'comment': ''}
        leaf['feedbackId'] = g.new_id()
    title = rng.choice(TITLES)
    chat = {'id': '', 'title': title, 'models': [model[0]], 'params': {}, 'history': {
        'messages': nodes, 'currentId': leaf['id']}, 'messages': [nodes[m] for m in path],
        'tags': [], 'timestamp': created * 1000 + rng.randrange(1000), 'files': []}
    if g.chance(0.1):
        chat['system'] = 'Tu es un assistant précis. Réponds brièvement.'
    chat_json = dumps(chat)
    share_id = g.new_id() if (index == 1 or g.chance(0.03)) else None
    folders = g.folders.get(u['id'])
    batch.rows['chat'].append({
        'id': cid, 'user_id': u['id'], 'title': title, 'share_id': share_id,
        'archived': int(g.chance(0.05)), 'created_at': created, 'updated_at': updated, 'chat': chat_json,
        'pinned': rng.choice([None, None, 0, 0, 0, 1]), 'meta': dumps({'tags': tag_slugs}),
        'folder_id': rng.choice(folders) if folders and g.chance(0.3) else None,
        # Open WebUI writes an absent JSON value as the text 'null' (SQLAlchemy's JSON type)
        'tasks': dumps([{'id': g.new_id(), 'content': 'Follow up', 'status': 'pending'}]) if g.chance(0.03) else 'null',
        'summary': g.sentence_text(1, 2) if g.chance(0.05) else None,
        'last_read_at': None if g.chance(0.3) else updated, 'current_message_id': leaf['id'],
        'variables': None, 'timer_at': None,
    })
    for mid, m in nodes.items():
        batch.rows['chat_message'].append({
            'id': '%s-%s' % (cid, mid), 'chat_id': cid, 'user_id': u['id'], 'role': m['role'],
            'parent_id': m['parentId'], 'content': dumps(m['content']),
            'output': dumps(m['output']) if 'output' in m else 'null', 'model_id': m.get('model'),
            'files': dumps(m['files']) if 'files' in m else 'null',
            'sources': dumps(m['sources']) if 'sources' in m else 'null', 'embeds': 'null',
            'done': int(m['done']) if 'done' in m else None,
            'status_history': dumps(m['statusHistory']) if 'statusHistory' in m else 'null',
            'error': dumps(m['error']) if 'error' in m else 'null',
            'usage': dumps(m['usage']) if 'usage' in m else 'null',
            'created_at': m['timestamp'], 'updated_at': None if g.chance(0.1) else m['timestamp'],
            'context_summary': None, 'meta': 'null',
        })
    for f in attach:
        batch.rows['chat_file'].append({'id': g.new_id(), 'user_id': u['id'], 'chat_id': cid, 'file_id': f['id'],
                                        'message_id': path[0], 'created_at': created, 'updated_at': created})
    if share_id:
        batch.rows['shared_chat'].append({'id': share_id, 'chat_id': cid, 'user_id': u['id'], 'title': title,
                                          'chat': chat_json, 'created_at': updated,
                                          'updated_at': None if g.chance(0.3) else updated})
    if rated:
        batch.rows['feedback'].append({
            'id': leaf['feedbackId'], 'user_id': u['id'], 'version': 0, 'type': 'rating',
            'data': dumps({'rating': leaf['annotation']['rating'], 'model_id': leaf['model'],
                           'sibling_model_ids': None, 'reason': '', 'comment': '', 'tags': []}),
            'meta': dumps({'arena': False, 'chat_id': cid, 'message_id': leaf['id'], 'tags': tag_slugs}),
            'snapshot': dumps({'chat': {'id': cid, 'user_id': u['id'], 'title': title, 'chat': chat,
                                        'created_at': created, 'updated_at': updated}}),
            'created_at': updated, 'updated_at': updated})
    g.chats.append((cid, u['id'], updated))


def add_timer_chats(g, batch):
    """Internal timer chats: ordinary chat rows with meta.internal and timer_at in ns."""
    for parent_id, uid, updated in g.chats[:max(1, g.n_chats // 500)]:
        cid = g.new_id()
        fire = updated + g.rng.randint(600, 7 * DAY)
        batch.rows['chat'].append({
            'id': cid, 'user_id': uid, 'title': 'Reminder ⏰', 'share_id': None, 'archived': 0,
            'created_at': updated, 'updated_at': updated,
            'chat': dumps({'id': '', 'title': 'Reminder ⏰', 'models': [], 'params': {},
                           'history': {'messages': {}, 'currentId': None}, 'messages': [], 'tags': [],
                           'timestamp': updated * 1000, 'files': []}),
            'pinned': None, 'meta': dumps({'internal': True, 'type': 'timer', 'parent_chat_id': parent_id}),
            'folder_id': None, 'tasks': None, 'summary': None, 'last_read_at': None, 'current_message_id': None,
            'variables': None, 'timer_at': g.ns(fire)})


def gen_memories(g):
    """memory."""
    facts = ['User prefers metric units.', "L'utilisateur parle français.", 'Works on a PostgreSQL extension.',
             'Has a cat named Mochi 🐱.', 'ユーザーは東京在住です。', 'Prefers concise answers.']
    rows = []
    for i, u in enumerate(g.users):
        for _ in range(g.rng.randint(1 if i == 0 else 0, 4)):
            created = g.ts(u['created_at'])
            rows.append({'id': g.new_id(), 'user_id': u['id'], 'content': g.rng.choice(facts),
                         'updated_at': g.ts(created), 'created_at': created, 'type': 'context', 'path': None,
                         'meta': None})
    g.w.insert('memory', rows)


def gen_notes(g):
    """note (ns), pinned_note (ns), access_grant for shared notes."""
    notes, pins, grants = [], [], []
    for i, u in enumerate(g.users):
        for j in range(g.rng.randint(1 if i == 0 else 0, max(2, g.n_chats // max(1, g.n_users) // 10))):
            nid, created = g.new_id(), g.ns(g.ts(u['created_at']))
            md = '# ' + g.rng.choice(TITLES) + '\n\n' + g.long_text(g.lognorm(1500, 0.8, 100, 50000))
            notes.append({'id': nid, 'user_id': u['id'], 'title': g.rng.choice(TITLES),
                          'data': dumps({'content': {'json': None, 'html': '<p>%s</p>' % md[:200], 'md': md},
                                         'versions': [], 'files': None}),
                          'meta': None if g.chance(0.5) else dumps({}), 'created_at': created,
                          'updated_at': None if g.chance(0.2) else created + g.rng.randrange(30 * DAY * NS)})
            if (i == 0 and j == 0) or g.chance(0.1):
                pins.append({'id': g.new_id(), 'user_id': u['id'], 'note_id': nid,
                             'created_at': created + g.rng.randrange(DAY * NS)})
            if g.chance(0.1):
                grants += grant(g, 'note', nid)
    g.w.insert('note', notes)
    g.w.insert('pinned_note', pins)
    g.w.insert('access_grant', grants)


def gen_channels(g):
    """channel, channel_member, message, message_reaction, channel_webhook, channel_file (ns except channel_file)."""
    channels, members, messages, reactions, hooks, cfiles = [], [], [], [], [], []
    owner = g.users[0]
    for c in range(max(2, g.n_users // 10)):
        chid = g.new_id()
        ctype = [None, 'group', 'dm'][c % 3]
        created_s = g.ts(owner['created_at'], T_END - 60 * DAY)
        crew = g.rng.sample(g.users, min(len(g.users), 2 if ctype == 'dm' else g.rng.randint(2, 25)))
        channels.append({'id': chid, 'user_id': owner['id'],
                         'name': None if ctype == 'dm' else ['général', 'random', 'dev-ops', 'お知らせ'][c % 4] +
                         ('' if c < 4 else '-%d' % c),
                         'description': g.sentence_text(1, 1) if ctype != 'dm' else None, 'data': None,
                         'meta': dumps({}), 'created_at': g.ns(created_s),
                         'updated_at': None if g.chance(0.3) else g.ns(created_s + DAY),
                         'type': ctype, 'is_private': None if ctype is None else int(ctype == 'dm'),
                         'archived_at': None, 'archived_by': None, 'deleted_at': None, 'deleted_by': None,
                         'updated_by': None})
        for k, m in enumerate(crew):
            joined = g.ns(created_s + g.rng.randint(0, 30 * DAY))
            left = k > 2 and g.chance(0.1)
            members.append({'id': g.new_id(), 'channel_id': chid, 'user_id': m['id'], 'created_at': joined,
                            'status': 'joined', 'is_active': int(not left), 'is_channel_muted': int(g.chance(0.1)),
                            'is_channel_pinned': int(g.chance(0.1)), 'data': None, 'meta': None,
                            'joined_at': joined, 'left_at': joined + DAY * NS if left else None,
                            'last_read_at': g.ns(g.ts(created_s + 30 * DAY)) if g.chance(0.7) else None,
                            'updated_at': None if g.chance(0.5) else joined,
                            'role': 'manager' if m is owner else 'member',
                            'invited_by': owner['id'] if m is not owner and g.chance(0.5) else None,
                            'invited_at': joined - 3600 * NS if g.chance(0.3) else None})
        if c == 0 or g.chance(0.2):
            t = g.ns(created_s + DAY)
            hooks.append({'id': g.new_id(), 'user_id': owner['id'], 'channel_id': chid, 'name': 'CI bot 🤖',
                          'profile_image_url': None, 'token': g.token(43),
                          'last_used_at': g.ns(g.ts(created_s + DAY)) if g.chance(0.5) else None,
                          'created_at': t, 'updated_at': t})
        g.channels.append((chid, crew, created_s))
    n_msgs = max(2 * len(g.channels), round(g.n_chats * g.p.channel_msgs_per_chat))
    tops = {chid: [] for chid, _, _ in g.channels}  # channel id -> [(top-level message id, created ns)]
    attached = set()  # (channel id, file id): channel_file is unique on the pair
    for k in range(n_msgs):
        chid, crew, created_s = g.channels[k % len(g.channels)]
        author = g.rng.choice(crew)
        mid, t = g.new_id(), g.ns(g.ts(created_s))
        parent = reply_to = None
        if tops[chid] and g.chance(0.2):  # a thread reply
            parent, parent_t = g.rng.choice(tops[chid])
            t = parent_t + g.rng.randrange(1, 3 * DAY * NS)
        elif tops[chid] and g.chance(0.05):
            reply_to = g.rng.choice(tops[chid])[0]
        pinned = g.chance(0.02)
        f = g.files.get(author['id'])
        attach = f[0] if f and (k == 0 or g.chance(0.02)) else None
        messages.append({'id': mid, 'user_id': author['id'], 'channel_id': chid,
                         'content': g.user_text() if g.chance(0.7) else g.answer_text(),
                         'data': dumps({'files': [{'type': 'file', 'id': attach['id'], 'name': attach['filename']}]})
                         if attach else None,
                         'meta': None, 'created_at': t, 'updated_at': None if g.chance(0.8) else t + NS,
                         'parent_id': parent, 'reply_to_id': reply_to,
                         'is_pinned': int(pinned), 'pinned_at': t + 60 * NS if pinned else None,
                         'pinned_by': owner['id'] if pinned else None})
        if parent is None:
            tops[chid].append((mid, t))
        if attach and (chid, attach['id']) not in attached:
            attached.add((chid, attach['id']))
            cfiles.append({'id': g.new_id(), 'user_id': author['id'], 'channel_id': chid, 'file_id': attach['id'],
                           'created_at': t // NS, 'updated_at': t // NS, 'message_id': mid})
        if k == 0 or g.chance(0.3):
            for who in g.rng.sample(crew, g.rng.randint(1, min(4, len(crew)))):
                reactions.append({'id': g.new_id(), 'user_id': who['id'], 'message_id': mid,
                                  'name': g.rng.choice(['thumbsup', 'heart', 'joy', 'eyes', 'rocket', 'tada']),
                                  'created_at': t + g.rng.randrange(1, DAY * NS)})
    for table, rows in [('channel', channels), ('channel_member', members), ('message', messages),
                        ('message_reaction', reactions), ('channel_webhook', hooks), ('channel_file', cfiles)]:
        g.w.insert(table, rows)


def gen_calendars(g):
    """calendar, calendar_event, calendar_event_attendee (ns)."""
    cals, events, attendees = [], [], []
    for i, u in enumerate(g.users):
        if i and not g.chance(0.5):
            continue
        cid, created = g.new_id(), g.ns(g.ts(u['created_at']))
        cals.append({'id': cid, 'user_id': u['id'], 'name': 'Personal' if i % 2 else 'Kalender', 'color': '#3b82f6',
                     'is_default': 1, 'data': None, 'meta': None, 'created_at': created, 'updated_at': created})
        for j in range(g.rng.randint(1 if i == 0 else 0, 8)):
            eid, start_s = g.new_id(), g.ts()
            all_day = g.chance(0.2)
            events.append({'id': eid, 'calendar_id': cid, 'user_id': u['id'],
                           'title': g.rng.choice(['Stand-up', 'Réunion client', '1:1 ☕', 'Sprint review',
                                                  '歯医者', 'Offsite']),
                           'description': g.sentence_text(1, 1) if g.chance(0.5) else None,
                           'start_at': start_s * NS, 'end_at': (start_s + (DAY if all_day else 1800)) * NS,
                           'all_day': int(all_day),
                           'rrule': 'FREQ=WEEKLY;BYDAY=MO,WE,FR' if g.chance(0.2) else None,
                           'color': None, 'location': g.rng.choice([None, 'Zürich HB', 'https://meet.example.com/x']),
                           'data': None, 'meta': None, 'is_cancelled': int(g.chance(0.05)),
                           'created_at': created, 'updated_at': created})
            others = [o for o in g.users if o is not u]
            for o in g.rng.sample(others, min(len(others), 1 if (i == 0 and j == 0) else g.rng.randint(0, 3))):
                attendees.append({'id': g.new_id(), 'event_id': eid, 'user_id': o['id'],
                                  'status': g.rng.choice(['accepted', 'declined', 'tentative', 'pending']),
                                  'meta': None, 'created_at': created, 'updated_at': created})
    g.w.insert('calendar', cals)
    g.w.insert('calendar_event', events)
    g.w.insert('calendar_event_attendee', attendees)


def gen_automations(g):
    """automation, automation_run (ns)."""
    autos, runs = [], []
    for i in range(max(1, g.n_users // 5)):
        u = g.users[i % len(g.users)]
        aid, created_s = g.new_id(), g.ts(u['created_at'], T_END - 30 * DAY)
        last = g.ts(created_s) if g.chance(0.8) else None
        folders = g.folders.get(u['id'])
        autos.append({'id': aid, 'user_id': u['id'], 'name': g.rng.choice(['Daily digest', 'Résumé hebdo',
                                                                         'Check inbox', '株価チェック']),
                      'data': dumps({'prompt': 'Summarize the news about {{topic}}.', 'model_id': g.models[0][0],
                                     'schedule': {'type': 'cron', 'cron': '0 8 * * 1-5',
                                                  'timezone': 'Europe/Paris'}}),
                      'meta': None, 'is_active': int(g.chance(0.8)),
                      'last_run_at': g.ns(last) if last else None,
                      'next_run_at': g.ns((last or created_s) + DAY),
                      'created_at': g.ns(created_s), 'updated_at': g.ns(created_s + 60),
                      'folder_id': g.rng.choice(folders) if folders and g.chance(0.5) else None})
        own_chats = [c[0] for c in g.chats[:200] if c[1] == u['id']]
        for _ in range(g.rng.randint(1 if i == 0 else 0, 10)):
            ok = g.chance(0.85)
            runs.append({'id': g.new_id(), 'automation_id': aid,
                         'chat_id': g.rng.choice(own_chats) if ok and own_chats else None,
                         'status': 'success' if ok else 'error',
                         'error': None if ok else 'Model not found: %s' % g.models[0][0],
                         'created_at': g.ns(g.ts(created_s))})
    g.w.insert('automation', autos)
    g.w.insert('automation_run', runs)


def gen_config(g):
    """config (one row per key since v0.10.0) and the dead config_old blob."""
    values = {
        'ui.enable_signup': False, 'ui.default_locale': 'fr-FR', 'ui.default_models': 'gpt-4o',
        'ui.banners': [{'id': g.new_id(), 'type': 'info', 'content': 'Wartung am Samstag 🛠️', 'dismissible': True}],
        'ui.prompt_suggestions': [{'title': ['Aide-moi', 'à écrire'], 'content': 'Aide-moi à écrire un e-mail.'}],
        'openai.enable': True, 'openai.api_base_urls': ['https://api.openai.com/v1'],
        'openai.api_keys': ['sk-proj-' + g.hex(40)], 'ollama.base_urls': ['http://ollama:11434'],
        'rag.top_k': 3, 'rag.chunk_size': 1000, 'rag.relevance_threshold': 0.25,
        'rag.embedding_model': 'sentence-transformers/all-MiniLM-L6-v2', 'auth.jwt_expiry': '4w',
        'oauth.oidc.client_secret': g.token(40), 'task.title.prompt_template': '',
    }
    g.w.insert('config', [{'key': k, 'value': dumps(v), 'updated_at': None if n % 4 == 0 else g.ts()}
                          for n, (k, v) in enumerate(values.items())])
    g.w.insert('config_old', [{'id': 1, 'data': dumps({'version': 0, 'ui': {'default_locale': 'fr-FR'},
                                                       'rag': {'top_k': 3}}),
                               'version': 0, 'created_at': '2025-01-03 09:12:44', 'updated_at': '2025-05-20 17:02:10'}])


def gen_legacy_leftovers(g):
    """document and chatidtag: dead since v0.3.x but still present (and read by full-table syncs)."""
    docs = []
    for i, u in enumerate(g.users[:2]):
        name = ['handbook', 'tarifs-2025'][i]
        docs.append({'collection_name': hashlib.sha256(name.encode()).hexdigest()[:63], 'name': name,
                     'title': name.title(), 'filename': name + '.pdf',
                     'content': dumps({'tags': [{'name': 'Doc'}]}), 'user_id': u['id'], 'timestamp': g.ts(T_START)})
    g.w.insert('document', docs)
    g.w.insert('chatidtag', [{'id': g.new_id(), 'tag_name': 'legacy', 'chat_id': cid, 'user_id': uid,
                              'timestamp': ts} for cid, uid, ts in g.chats[:2]])


def gen_quirks(g):
    """Opt-in rows with data-quality pitfalls of real deployments (run last; other rows stay identical)."""
    u = g.users[0]
    t = g.ts()
    base = {'share_id': None, 'archived': 0, 'created_at': t, 'updated_at': t, 'pinned': None, 'meta': dumps({}),
            'folder_id': None, 'tasks': None, 'summary': None, 'last_read_at': None, 'current_message_id': None,
            'variables': None, 'timer_at': None}
    nul_chat, import_chat = g.new_id(), g.new_id()
    inner = {'id': '', 'title': 'double-encoded', 'history': {'messages': {}, 'currentId': None}, 'messages': []}
    g.w.insert('chat', [
        dict(base, id=g.new_id(), user_id=u['id'], title='Invalid JSON became NULL (migration 242a2047eae0)',
             chat=None),
        dict(base, id=g.new_id(), user_id=u['id'], title='Double-encoded chat.chat', chat=dumps(dumps(inner))),
        dict(base, id=nul_chat, user_id=u['id'], title='NUL and lone surrogate in JSON',
             chat=dumps({'title': 'x\x00y \ud83d', 'history': {'messages': {}, 'currentId': None}})),
        dict(base, id=import_chat, user_id=u['id'], title='Imported chat (ms timestamps)', chat=dumps({})),
    ])
    msg = {'chat_id': nul_chat, 'user_id': u['id'], 'role': 'user', 'parent_id': None, 'output': None,
           'model_id': None, 'files': None, 'sources': None, 'embeds': None, 'done': None, 'status_history': None,
           'error': None, 'usage': None, 'updated_at': None, 'context_summary': None, 'meta': None}
    g.w.insert('chat_message', [
        dict(msg, id='%s-%s' % (nul_chat, g.new_id()), content=dumps('NUL \x00 and lone surrogate \ud83d'),
             created_at=t),
        dict(msg, id='%s-%s' % (import_chat, g.new_id()), chat_id=import_chat, content=dumps('imported'),
             created_at=t * 1000 + 123),
    ])
    chid, _, created_s = g.channels[0]
    g.w.insert('message', [{'id': g.new_id(), 'user_id': u['id'], 'channel_id': chid,
                            'content': 'raw NUL byte here: \x00 (unsanitized TEXT)', 'data': None, 'meta': None,
                            'created_at': g.ns(created_s), 'updated_at': None, 'parent_id': None,
                            'reply_to_id': None, 'is_pinned': 0, 'pinned_at': None, 'pinned_by': None}])
    ghost = g.new_id()  # a deleted user: SQLite FKs are off, so dependents stay behind
    g.w.insert('oauth_session', [{'id': g.new_id(), 'user_id': ghost, 'provider': 'google', 'token': g.fernet(300),
                                  'expires_at': t + 3600, 'created_at': t, 'updated_at': t}])
    g.w.insert('memory', [{'id': g.new_id(), 'user_id': ghost, 'content': 'memory of a deleted user',
                           'updated_at': t, 'created_at': t, 'type': 'context', 'path': None, 'meta': None}])
    some_file = next(iter(g.files.values()))[0]['id']
    g.w.insert('knowledge_file', [{'id': g.new_id(), 'user_id': u['id'], 'knowledge_id': g.new_id(),
                                   'file_id': some_file, 'created_at': t, 'updated_at': t, 'directory_id': None}])
    g.w.insert('chat_file', [{'id': g.new_id(), 'user_id': u['id'], 'chat_id': g.new_id(), 'file_id': some_file,
                              'message_id': None, 'created_at': t, 'updated_at': t}])
    g.w.insert('user', [{'id': g.new_id(), 'name': 'Überlänge', 'email': 'long@example.com', 'role': 'user',
                         'profile_image_url': '/user.png', 'created_at': t, 'updated_at': t, 'last_active_at': t,
                         'username': 'a_username_that_is_much_longer_than_fifty_characters_x',
                         'status_expires_at': t * 1000}])


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(description='Generate a deterministic Open WebUI webui.db.')
    ap.add_argument('--out', required=True, help='SQLite file to create')
    ap.add_argument('--flavour', choices=sorted(SCHEMA_FILES), default='legacy')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--size', choices=list(PRESETS), default='tiny')
    ap.add_argument('--chats', type=int, help='override the preset chat count')
    ap.add_argument('--users', type=int, help='override the preset user count')
    ap.add_argument('--journal', choices=['wal', 'delete'], default='delete', help='final journal mode')
    ap.add_argument('--no-pk', action='store_true',
                    help='pre-v0.9.6 legacy DB: no PRIMARY KEY on the peewee tables (legacy only)')
    ap.add_argument('--quirks', action='store_true',
                    help='add rows with data-quality pitfalls (NUL, surrogates, orphans, ...)')
    ap.add_argument('--force', action='store_true', help='overwrite --out if it exists')
    args = ap.parse_args(argv)
    if args.no_pk and args.flavour != 'legacy':
        ap.error('--no-pk needs --flavour legacy')
    if (args.chats is not None and args.chats < 1) or (args.users is not None and args.users < 1):
        ap.error('--chats and --users must be at least 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    started = time.monotonic()
    if os.path.exists(args.out):
        if not args.force:
            raise SystemExit('%s exists; use --force to overwrite' % args.out)
        os.remove(args.out)
    for suffix in ('-wal', '-shm', '-journal'):
        if os.path.exists(args.out + suffix):
            os.remove(args.out + suffix)
    preset = PRESETS[args.size]
    conn = sqlite3.connect(args.out, isolation_level=None)
    load_schema(conn, args.flavour, args.no_pk)
    conn.execute('PRAGMA journal_mode=OFF')
    conn.execute('PRAGMA synchronous=OFF')
    conn.execute('PRAGMA cache_size=-131072')
    g = Gen(Writer(conn), preset, args.users or preset.users, args.chats or preset.chats, args.seed)
    conn.execute('BEGIN')
    for step in (gen_users, gen_groups, gen_workspace, gen_files_and_knowledge, gen_folders, gen_chats,
                 gen_memories, gen_notes, gen_channels, gen_calendars, gen_automations, gen_config,
                 gen_legacy_leftovers):
        step(g)
    if args.quirks:
        gen_quirks(g)
    conn.execute('COMMIT')
    conn.execute('PRAGMA journal_mode=%s' % args.journal.upper())
    if args.journal == 'wal':
        conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    counts = {t: conn.execute('SELECT count(*) FROM "%s"' % t).fetchone()[0] for t in sorted(g.w.columns)}
    conn.close()
    print('%s: %s/%s seed=%d%s, %.1f MB, %d rows in %d tables (%s), %.2f s' % (
        args.out, args.flavour, args.size, args.seed, ' no-pk' if args.no_pk else '',
        os.path.getsize(args.out) / 1e6, sum(counts.values()), len(counts),
        ' '.join('%s=%d' % kv for kv in counts.items()), time.monotonic() - started))


if __name__ == '__main__':
    sys.exit(main())
