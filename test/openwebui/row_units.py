#!/usr/bin/env python3
"""The unit of every timestamp column's values in a webui.db (stdlib only).

    row_units.py WEBUI_DB

For each column named *_at or timestamp, the count of non-NULL values by magnitude: s (epoch
seconds, below 1e11), ms (below 1e14), us (below 1e17), ns, or the SQLite type when not a
number.  The file is opened read-only.
"""
import sqlite3
import sys


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


def main(path):
    db = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                       "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    for t in tables:
        for c in [r[1] for r in db.execute(f'PRAGMA table_info("{t}")')]:
            if not (c.endswith('_at') or c == 'timestamp'):
                continue
            seen = {}
            for v, ty in db.execute(f'SELECT "{c}", typeof("{c}") FROM "{t}" WHERE "{c}" IS NOT NULL'):
                u = unit(v) if ty in ('integer', 'real') else ty
                seen[u] = seen.get(u, 0) + 1
            if seen:
                print(f'{t}.{c}: ' + ', '.join(f'{u} x{n}' for u, n in sorted(seen.items())))


if __name__ == '__main__':
    main(sys.argv[1])
