#!/usr/bin/env python3
"""Print the PostgreSQL DDL Open WebUI (SQLAlchemy) creates for the tables of an
SQLite webui.db, in schema SCHEMA, and INSERTs filling it from MIRROR (an owsync
mirror schema of the same file):

    pg_native_schema.py WEBUI_DB SCHEMA MIRROR | psql

Types as SQLAlchemy maps them on PostgreSQL: VARCHAR(n) -> varchar(n), TEXT ->
text, BIGINT -> bigint, INTEGER -> integer, BOOLEAN -> boolean, JSON -> json,
FLOAT -> double precision, DATETIME -> timestamp, DATE -> date, BLOB -> bytea.
Used by the tests of owsync.restore_from_schema (a deployment running on
PostgreSQL, rolled back to SQLite).
"""
import re
import sqlite3
import sys

TYPES = [(r"^VARCHAR\((\d+)\)$", r"varchar(\1)"), (r"^VARCHAR$", "varchar"), (r"^TEXT$", "text"),
         (r"^BIGINT$", "bigint"), (r"^INTEGER$", "integer"), (r"^BOOLEAN$", "boolean"),
         (r"^JSON$", "json"), (r"^FLOAT$", "double precision"), (r"^REAL$", "real"),
         (r"^DATETIME$", "timestamp"), (r"^DATE$", "date"), (r"^BLOB$", "bytea"),
         (r"^NUMERIC$", "numeric")]


def pg_type(decl):
    for pat, rep in TYPES:
        if re.match(pat, decl.upper()):
            return re.sub(pat, rep, decl.upper())
    raise SystemExit("no PostgreSQL type for %r" % decl)


def q(name):
    return '"%s"' % name.replace('"', '""')


def main():
    db = sqlite3.connect("file:%s?immutable=1" % sys.argv[1], uri=True)
    schema, mirror = sys.argv[2], sys.argv[3]
    print("CREATE SCHEMA %s;" % q(schema))
    tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name")]
    for t in tables:
        cols = db.execute("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?) ORDER BY cid", (t,)).fetchall()
        items = ["%s %s%s" % (q(c), pg_type(d), " NOT NULL" if nn else "") for c, d, nn, _ in cols]
        pk = [c for c, _, _, p in sorted(cols, key=lambda x: x[3]) if p]
        if pk:
            items.append("PRIMARY KEY (%s)" % ", ".join(q(c) for c in pk))
        for (iname, unique, origin) in db.execute(
                "SELECT name, \"unique\", origin FROM pragma_index_list(?) ORDER BY name", (t,)):
            icols = [r[0] for r in db.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (iname,))]
            if origin == "u":
                items.append("UNIQUE (%s)" % ", ".join(q(c) for c in icols))
        print("CREATE TABLE %s.%s (%s);" % (q(schema), q(t), ", ".join(items)))
        for (iname, unique, origin) in db.execute(
                "SELECT name, \"unique\", origin FROM pragma_index_list(?) ORDER BY name", (t,)):
            if origin == "c":
                icols = [r[0] for r in db.execute("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (iname,))]
                if None in icols:       # an expression index: its SQL is PostgreSQL's too
                    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (iname,)).fetchone()[0]
                    print(re.sub(r" ON %s " % re.escape(t), " ON %s.%s " % (q(schema), q(t)), sql, count=1) + ";")
                    continue
                print("CREATE %sINDEX %s ON %s.%s (%s);" % ("UNIQUE " if unique else "", q(iname), q(schema), q(t),
                                                           ", ".join(q(c) for c in icols)))
        print("INSERT INTO %s.%s SELECT %s FROM %s.%s;" % (
            q(schema), q(t), ", ".join("%s::%s" % (q(c), pg_type(d)) for c, d, _, _ in cols), q(mirror), q(t)))


if __name__ == "__main__":
    main()
