#!/usr/bin/env python3
"""Compare the schemas of two SQLite files (stdlib only).

    schema_diff.py A.db B.db                 tables, columns (declared type, NOT NULL, default,
                                             primary key), indexes and triggers that differ
    schema_diff.py --sql FILE.sql B.db       A is FILE.sql loaded into an in-memory database
    schema_diff.py --units DB                per table, the magnitude of every integer column
                                             whose name ends in _at or is timestamp: s, ms, us, ns

Prints one line per difference ("only in A", "only in B", "A -> B"); exits 0 in any case.
"""
import sqlite3
import sys


def open_db(path, sql=False):
    if sql:
        db = sqlite3.connect(':memory:')
        db.executescript(open(path).read())
        return db
    return sqlite3.connect(f'file:{path}?mode=ro', uri=True)


def schema(db):
    tables = {}
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                              "AND name NOT LIKE 'sqlite_%' ORDER BY name"):
        cols = {}
        for cid, cname, ctype, notnull, default, pk in db.execute(f'PRAGMA table_info("{name}")'):
            cols[cname] = {'pos': cid, 'type': ctype, 'notnull': notnull, 'default': default,
                           'pk': pk}
        tables[name] = cols
    indexes = {}
    for name, tbl, sql in db.execute("SELECT name, tbl_name, sql FROM sqlite_master "
                                     "WHERE type = 'index' ORDER BY name"):
        cols = [r[2] for r in db.execute(f'PRAGMA index_info("{name}")')]
        unique = db.execute(f'PRAGMA index_list("{tbl}")').fetchall()
        uniq = next((u[2] for u in unique if u[1] == name), None)
        indexes[name] = {'table': tbl, 'columns': cols, 'unique': uniq,
                         'auto': sql is None}
    triggers = {n: s for n, s in db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")}
    return tables, indexes, triggers


def diff(a, b):
    ta, ia, tra = a
    tb, ib, trb = b
    for t in sorted(set(ta) - set(tb)):
        print(f'table {t}: only in A')
    for t in sorted(set(tb) - set(ta)):
        cols = ', '.join(f"{c} {v['type']}" for c, v in tb[t].items())
        print(f'table {t}: only in B ({cols})')
    for t in sorted(set(ta) & set(tb)):
        ca, cb = ta[t], tb[t]
        for c in [c for c in ca if c not in cb]:
            print(f"column {t}.{c}: only in A ({ca[c]['type']})")
        for c in [c for c in cb if c not in ca]:
            v = cb[c]
            nn = ' NOT NULL' if v['notnull'] else ''
            df = ' DEFAULT ' + str(v['default']) if v['default'] is not None else ''
            print(f"column {t}.{c}: only in B ({v['type']}{nn}{df})")
        for c in [c for c in ca if c in cb]:
            for k in ('type', 'notnull', 'default', 'pk'):
                if ca[c][k] != cb[c][k]:
                    print(f'column {t}.{c}: {k} {ca[c][k]!r} -> {cb[c][k]!r}')
        order_a = [c for c in sorted(ca, key=lambda c: ca[c]['pos']) if c in cb]
        order_b = [c for c in sorted(cb, key=lambda c: cb[c]['pos']) if c in ca]
        if order_a != order_b:
            print(f'table {t}: column order differs: {order_a} -> {order_b}')

    def key(i):  # autoindexes are named by position: compare them by table and columns
        return ('auto', i['table'], tuple(i['columns'])) if i['auto'] else None

    auto_a = {key(v): n for n, v in ia.items() if v['auto']}
    auto_b = {key(v): n for n, v in ib.items() if v['auto']}
    for k in sorted(set(auto_a) - set(auto_b)):
        print(f"autoindex on {k[1]}({', '.join(k[2])}): only in A")
    for k in sorted(set(auto_b) - set(auto_a)):
        print(f"autoindex on {k[1]}({', '.join(k[2])}): only in B")
    na = {n: v for n, v in ia.items() if not v['auto']}
    nb = {n: v for n, v in ib.items() if not v['auto']}
    for n in sorted(set(na) - set(nb)):
        print(f"index {n} on {na[n]['table']}({', '.join(na[n]['columns'])}): only in A")
    for n in sorted(set(nb) - set(na)):
        u = ' UNIQUE' if nb[n]['unique'] else ''
        print(f"index {n}{u} on {nb[n]['table']}({', '.join(nb[n]['columns'])}): only in B")
    for n in sorted(set(na) & set(nb)):
        if (na[n]['table'], na[n]['columns'], na[n]['unique']) != \
                (nb[n]['table'], nb[n]['columns'], nb[n]['unique']):
            print(f'index {n}: {na[n]} -> {nb[n]}')
    for n in sorted(set(tra) ^ set(trb)):
        print(f'trigger {n}: only in {"A" if n in tra else "B"}')


def unit(v):
    v = abs(v)
    if v == 0:
        return 'zero'
    if v < 1e11:
        return 's'
    if v < 1e14:
        return 'ms'
    if v < 1e17:
        return 'us'
    return 'ns'


def units(path):
    db = open_db(path)
    tables, _, _ = schema(db)
    for t, cols in tables.items():
        for c in cols:
            if not (c.endswith('_at') or c in ('timestamp', 'expires_at')):
                continue
            rows = db.execute(f'SELECT "{c}", typeof("{c}") FROM "{t}" WHERE "{c}" IS NOT NULL').fetchall()
            if not rows:
                continue
            seen = {}
            for v, ty in rows:
                u = unit(v) if ty in ('integer', 'real') else ty
                seen[u] = seen.get(u, 0) + 1
            print(f'{t}.{c}: ' + ', '.join(f'{u} x{n}' for u, n in sorted(seen.items())))


def main(argv):
    if len(argv) == 3 and argv[1] == '--units':
        units(argv[2])
    elif len(argv) == 4 and argv[1] == '--sql':
        diff(schema(open_db(argv[2], sql=True)), schema(open_db(argv[3])))
    elif len(argv) == 3:
        diff(schema(open_db(argv[1])), schema(open_db(argv[2])))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
