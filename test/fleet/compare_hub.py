#!/usr/bin/env python3
"""Compare a client's copy at the hub with its SQLite source file, independently of owsync.

    compare_hub.py --hub CONNINFO --schema SCHEMA SQLITE_FILE [--kept TABLE[.COLUMN]]...

The schema may also be a client's mirror on its own PostgreSQL (test/openwebui/run.sh).  --kept
names a table or column the schema keeps although the file has it no more (what owsync keeps
of what an upgrade dropped): it is left out of the comparison, and must exist.

Reads the SQLite file with Python's sqlite3 module and the hub's schema with `psql --csv`
(every column cast to text, NULL told apart from the empty string), and compares:
  - the tables: every SQLite table (not sqlite_ internals) is a hub table and the other way;
  - the columns of each table, by name (order does not matter: owsync maps by name);
  - the rows of each table as a multiset (so a duplicate is a difference), every column.
A SQLite value is rendered as the hub column's type shows it: booleans stored as 0/1 are
true/false, blobs are \\x-hex, floats and numerics compare by value, jsonb by JSON value,
everything else (json included) by its exact text.

Prints one line per difference and a last line "identical: T tables, R rows" or
"N differences"; the exit status is 0 when identical.
"""
import argparse
import collections
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal, InvalidOperation

INTS = {'bigint', 'integer', 'smallint'}
KEPT_COLUMNS = {}  # table: [columns] the hub keeps that the file has no more (--kept)
FLOATS = {'double precision', 'real'}


def psql(conninfo, sql):
    """Rows of a query at the hub, as lists of strings (psql --csv)."""
    out = subprocess.run([os.environ.get('PSQL', 'psql'), '-X', '-q', '-v', 'ON_ERROR_STOP=1',
                          '--csv', '-d', conninfo, '-c', sql],
                         check=True, capture_output=True, text=True).stdout
    rows = list(csv.reader(io.StringIO(out)))
    return rows[1:]  # the header


def ident(name):
    return '"' + name.replace('"', '""') + '"'


def literal(text):
    return "'" + text.replace("'", "''") + "'"


def hub_tables(conninfo, schema):
    """{table: {column: type}} of the hub schema."""
    tables = collections.defaultdict(dict)
    for rel, col, typ in psql(conninfo, f"""
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname = {literal(schema)} AND c.relkind IN ('r', 'p')
             ORDER BY c.relname, a.attnum"""):
        tables[rel][col] = typ
    return tables


def kind(typ):
    base = typ.split('(')[0]
    if base in INTS:
        return 'int'
    if base in FLOATS:
        return 'float'
    if base in ('numeric', 'boolean', 'bytea', 'json', 'jsonb'):
        return base
    return 'text'


def canon(value, k):
    """A value in the form both sides are compared in (None for NULL)."""
    if value is None:
        return None
    if k == 'float':
        return repr(float(value))
    if k == 'numeric':
        try:
            return str(Decimal(repr(value) if isinstance(value, float) else str(value)).normalize())
        except InvalidOperation:
            return 'not a number: %r' % (value,)
    if k == 'jsonb':
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return 'not JSON: %r' % (value,)
    return value


def sqlite_value(value, k):
    """A SQLite value as the hub's column type prints it (before canon)."""
    if value is None:
        return None
    if k == 'boolean':
        return {0: 'false', 1: 'true'}.get(value, 'not a boolean: %r' % (value,))
    if k == 'bytea':
        data = value if isinstance(value, bytes) else str(value).encode('utf-8')
        return '\\x' + data.hex()
    if isinstance(value, bytes):
        return value.decode('utf-8', 'surrogateescape')
    if isinstance(value, float) and k not in ('float', 'numeric'):
        return repr(value)
    return str(value) if not isinstance(value, float) else value


def connect(path):
    """Read-only; a file whose write-ahead log holds commits is read with it."""
    log = path + '-wal'
    if os.path.exists(log) and os.path.getsize(log) > 0:
        return sqlite3.connect('file:%s?mode=ro' % path, uri=True)
    return sqlite3.connect('file:%s?immutable=1' % path, uri=True)


def show(row):
    text = repr(row)
    return text if len(text) <= 300 else text[:300] + '...'


def compare_table(db, conninfo, schema, table, hub_cols, diffs):
    """Adds the differences of one table to diffs; returns its row count at the source."""
    src_cols = [r[1] for r in db.execute('PRAGMA table_info(%s)' % ident(table))]
    for c in KEPT_COLUMNS.get(table, ()):
        if c not in hub_cols or c in src_cols:
            diffs.append('table %s: column %s is said to be kept, but it is %s' % (
                table, c, 'in the file' if c in src_cols else 'not at the hub'))
        hub_cols = {k: v for k, v in hub_cols.items() if k != c}
    if set(src_cols) != set(hub_cols):
        diffs.append('table %s: columns differ: only in the file %s, only at the hub %s'
                     % (table, sorted(set(src_cols) - set(hub_cols)), sorted(set(hub_cols) - set(src_cols))))
        return 0
    kinds = [kind(hub_cols[c]) for c in src_cols]
    source = collections.Counter(
        tuple(canon(sqlite_value(v, k), k) for v, k in zip(r, kinds))
        for r in db.execute('SELECT %s FROM %s' % (', '.join(ident(c) for c in src_cols), ident(table))))
    select = ', '.join("CASE WHEN %s IS NULL THEN 'N' ELSE 'V' || %s::text END" % (ident(c), ident(c))
                       for c in src_cols)
    hub = collections.Counter(
        tuple(None if cell == 'N' else canon(cell[1:], k) for cell, k in zip(r, kinds))
        for r in psql(conninfo, 'SELECT %s FROM %s.%s' % (select, ident(schema), ident(table))))
    only_src, only_hub = source - hub, hub - source
    if only_src or only_hub:
        diffs.append('table %s: %d rows in the file, %d at the hub; %d only in the file, %d only at the hub'
                     % (table, sum(source.values()), sum(hub.values()),
                        sum(only_src.values()), sum(only_hub.values())))
        for r in list(only_src)[:2]:
            diffs.append('  only in the file: %s' % show(dict(zip(src_cols, r))))
        for r in list(only_hub)[:2]:
            diffs.append('  only at the hub:  %s' % show(dict(zip(src_cols, r))))
    return sum(source.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--hub', required=True, help='libpq connection string of the hub database')
    ap.add_argument('--schema', required=True, help="the client's schema at the hub")
    ap.add_argument('file', help='the SQLite source file')
    ap.add_argument('--kept', action='append', default=[],
                    help='a table or table.column the schema keeps that the file has no more')
    args = ap.parse_args()
    kept_tables = {k for k in args.kept if '.' not in k}
    for k in args.kept:
        if '.' in k:
            t, c = k.split('.', 1)
            KEPT_COLUMNS.setdefault(t, []).append(c)

    db = connect(args.file)
    src_tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]
    hub = hub_tables(args.hub, args.schema)
    diffs, rows = [], 0
    for t in sorted(set(src_tables) - set(hub)):
        diffs.append('table %s: in the file, not at the hub' % t)
    for t in sorted(set(hub) - set(src_tables) - kept_tables):
        diffs.append('table %s: at the hub, not in the file' % t)
    for t in sorted(kept_tables - (set(hub) - set(src_tables))):
        diffs.append('table %s: said to be kept, but it is %s' % (t, 'in the file' if t in src_tables else 'not at the hub'))
    for t in src_tables:
        if t in hub:
            rows += compare_table(db, args.hub, args.schema, t, hub[t], diffs)
    for d in diffs:
        print(d)
    if diffs:
        print('%d differences' % sum(1 for d in diffs if not d.startswith('  ')))
        return 1
    print('identical: %d tables, %d rows' % (len(src_tables), rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
