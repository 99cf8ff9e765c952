#!/usr/bin/env python3
"""Compare two SQLite files as a restore must reproduce them.

    compare_sqlite.py SOURCE RESTORED [--json-values] [--columns]

Prints one line per difference and a last line "identical" or "N differences":
  - sqlite_master: the same entries (type, name, tbl_name, sql) in the same order;
  - PRAGMA integrity_check of the restored file: ok;
  - journal mode (WAL or not, from the file header): the same;
    (with --columns, for a schema written by another hand: every table's columns
    with their declared type, NOT NULL and primary key position, and the index
    names, instead of the statements' text);
  - every table: the same rows as a multiset, each value with its storage class
    (Python's sqlite3 returns int, float, str, bytes or None: the integer 5 and
    the text '5' differ).  With --json-values, text that parses as JSON is
    compared as the JSON value (for clients mirrored as jsonb).

Independent of owsync: it reads both files with Python's sqlite3 module.
"""
import collections
import os
import json
import sqlite3
import sys


def connect(path):
    """Read-only.  A file whose write-ahead log holds commits is read with it; any
    other is opened immutable, so that no -wal or -shm is left beside it."""
    log = path + "-wal"
    if os.path.exists(log) and os.path.getsize(log) > 0:
        return sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    return sqlite3.connect("file:%s?immutable=1" % path, uri=True)


def wal(path):
    """The file header's read and write versions are 2 in WAL mode."""
    with open(path, "rb") as f:
        return f.read(20)[18:20] == b"\x02\x02"


def schema(db):
    return db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid").fetchall()


def value(v, json_values):
    if json_values and isinstance(v, str):
        try:
            return ("json", json.dumps(json.loads(v), sort_keys=True))
        except ValueError:
            pass
    return (type(v).__name__, v)


def rows(db, table, json_values):
    cur = db.execute('SELECT * FROM "%s"' % table.replace('"', '""'))
    return collections.Counter(tuple(value(v, json_values) for v in r) for r in cur)


def main():
    src_path, dst_path = sys.argv[1], sys.argv[2]
    json_values = "--json-values" in sys.argv[3:]
    for p in (src_path, dst_path):
        if not os.path.isfile(p):
            print("%s: no such file" % p)
            return 1
    src, dst = connect(src_path), connect(dst_path)
    problems = []

    if "--columns" in sys.argv[3:]:
        for t in sorted(r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")):
            a = [r[1:] for r in src.execute("SELECT cid, name, upper(type), \"notnull\", pk FROM pragma_table_info(?)", (t,))]
            b = [r[1:] for r in dst.execute("SELECT cid, name, upper(type), \"notnull\", pk FROM pragma_table_info(?)", (t,))]
            if a != b:
                problems.append("columns of %s: %r != %r" % (t, [x for x in a if x not in b][:3], [x for x in b if x not in a][:3]))
        idx = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
        if src.execute(idx).fetchall() != dst.execute(idx).fetchall():
            problems.append("index names differ")
    elif schema(src) != schema(dst):
        a, b = schema(src), schema(dst)
        for i in range(max(len(a), len(b))):
            x = a[i] if i < len(a) else None
            y = b[i] if i < len(b) else None
            if x != y:
                problems.append("sqlite_master entry %d: %r != %r" % (i + 1, x, y))
                break
    check = dst.execute("PRAGMA integrity_check").fetchall()
    if check != [("ok",)]:
        problems.append("integrity_check: %r" % check[:5])
    if wal(src_path) != wal(dst_path):
        problems.append("journal mode WAL: %s != %s" % (wal(src_path), wal(dst_path)))

    tables = [r[0] for r in src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]
    total = 0
    for t in tables:
        a = rows(src, t, json_values)
        try:
            b = rows(dst, t, json_values)
        except sqlite3.Error as e:
            problems.append("table %s: %s" % (t, e))
            continue
        total += sum(a.values())
        if a != b:
            only_a = sum((a - b).values())
            only_b = sum((b - a).values())
            problems.append("table %s: %d rows only in the source, %d only in the restored file"
                            % (t, only_a, only_b))
            # the first differing row, beside the other file's row with the same first column
            x = next(iter(a - b), None)
            y = next((r for r in (b - a) if x is not None and r[0] == x[0]), None)
            cols = [d[0] for d in src.execute('SELECT * FROM "%s" LIMIT 0' % t.replace('"', '""')).description]
            if x is not None and y is not None:
                for c, u, v in zip(cols, x, y):
                    if u != v:
                        problems.append("  %s.%s of %r: %.80r != %.80r" % (t, c, x[0][1], u, v))
            else:
                problems.append("  e.g. %.300r" % ((x or next(iter(b - a), None)),))

    for p in problems:
        print(p)
    print("%d tables, %d rows: %s" % (len(tables), total,
                                      "identical" if not problems else "%d differences" % len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
