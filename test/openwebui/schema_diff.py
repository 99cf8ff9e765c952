#!/usr/bin/env python3
"""What an upgrade changed in a webui.db: the schema of BEFORE against AFTER, as Markdown.

    python3 schema_diff.py BEFORE.db AFTER.db

Both files are opened read-only (a file in WAL mode is read with its -wal).  Prints:
journal mode and alembic revision of each, whether `migratehistory` is there, then tables
added and dropped, and for each table in both: columns added, dropped and changed (declared
type, NOT NULL, default, primary-key position), indexes added and dropped, and whether its
CREATE text changed (a table rebuilt by a migration).  Row counts of every table are printed
beside, so a table emptied or filled by a migration shows too.  Standard library only.
"""
import sqlite3
import sys


def connect(path):
    """Open PATH read-only, never writing to it (no -wal or -shm is created)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def journal_mode(path):
    """The journal mode recorded in the file header (bytes 18/19: 2 = WAL, 1 = rollback)."""
    with open(path, "rb") as f:
        header = f.read(20)
    return "wal" if header[18] == 2 and header[19] == 2 else "delete (rollback journal)"


def schema(con):
    """{table: {columns, indexes, sql, rows}} of every ordinary table of CON."""
    out = {}
    tables = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]
    for t in tables:
        q = '"' + t.replace('"', '""') + '"'
        cols = {}
        for cid, name, ctype, notnull, dflt, pk, hidden in con.execute(
                f"PRAGMA table_xinfo({q})"):
            cols[name] = {"pos": cid, "type": ctype, "notnull": notnull, "default": dflt, "pk": pk}
        idx = {}
        for _seq, iname, unique, origin, partial in con.execute(f"PRAGMA index_list({q})"):
            icols = [r[2] for r in con.execute(
                f"PRAGMA index_info(\"{iname.replace(chr(34), chr(34) * 2)}\")")]
            sql = con.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                              (iname,)).fetchone()
            idx[iname] = {"unique": unique, "origin": origin, "partial": partial,
                          "columns": icols, "sql": sql[0] if sql else None}
        sql = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (t,)).fetchone()[0]
        rows = con.execute(f"SELECT count(*) FROM {q}").fetchone()[0]
        out[t] = {"columns": cols, "indexes": idx, "sql": sql, "rows": rows}
    return out


def revision(con):
    """The alembic revision(s) of CON, or a note that there is none."""
    try:
        return ", ".join(r[0] for r in con.execute("SELECT version_num FROM alembic_version"))
    except sqlite3.Error:
        return "(no alembic_version)"


def describe_col(c):
    parts = [c["type"] or "(no type)"]
    if c["notnull"]:
        parts.append("NOT NULL")
    if c["default"] is not None:
        parts.append(f"DEFAULT {c['default']}")
    if c["pk"]:
        parts.append(f"PK#{c['pk']}")
    return " ".join(parts)


def columns_of(t):
    """The column names and declared types of table T, in order."""
    return [(n, c["type"]) for n, c in t["columns"].items()]


def describe_idx(name, i):
    kind = {"pk": "primary key", "u": "UNIQUE constraint", "c": "CREATE INDEX"}[i["origin"]]
    uniq = "unique " if i["unique"] and i["origin"] == "c" else ""
    cols = ", ".join("(expression)" if c is None else c for c in i["columns"])
    return f"`{name}` ({uniq}{kind} on {cols})"


def main(before_path, after_path):
    b_con, a_con = connect(before_path), connect(after_path)
    b, a = schema(b_con), schema(a_con)
    print(f"| | before | after |\n|---|---|---|")
    print(f"| journal mode (file header) | {journal_mode(before_path)} | {journal_mode(after_path)} |")
    print(f"| alembic revision | {revision(b_con)} | {revision(a_con)} |")
    print(f"| `migratehistory` rows | {b.get('migratehistory', {}).get('rows', 'absent')} "
          f"| {a.get('migratehistory', {}).get('rows', 'absent')} |")
    print(f"| tables | {len(b)} | {len(a)} |")
    print(f"| indexes (incl. autoindexes) | {sum(len(t['indexes']) for t in b.values())} "
          f"| {sum(len(t['indexes']) for t in a.values())} |")
    print()
    print("## Tables dropped\n")
    for t in sorted(set(b) - set(a)):
        print(f"- `{t}` ({len(b[t]['columns'])} columns, {b[t]['rows']} rows before)")
    print("\n## Tables added\n")
    for t in sorted(set(a) - set(b)):
        same = [s for s in sorted(b) if columns_of(b[s]) == columns_of(a[t])]
        note = f" (the columns of the old `{same[0]}`: a rename)" if same else ""
        print(f"- `{t}`{note} ({len(a[t]['columns'])} columns, {a[t]['rows']} rows after): "
              + ", ".join(f"{n} {describe_col(c)}" for n, c in a[t]["columns"].items()))
    print("\n## Tables in both\n")
    for t in sorted(set(a) & set(b)):
        bt, at = b[t], a[t]
        lines = []
        for n in bt["columns"]:
            if n not in at["columns"]:
                lines.append(f"column dropped: `{n}` {describe_col(bt['columns'][n])}")
        for n in at["columns"]:
            if n not in bt["columns"]:
                lines.append(f"column added: `{n}` {describe_col(at['columns'][n])}")
        for n in bt["columns"]:
            if n in at["columns"]:
                x, y = bt["columns"][n], at["columns"][n]
                if describe_col(x) != describe_col(y):
                    lines.append(f"column changed: `{n}` {describe_col(x)} -> {describe_col(y)}")
        if [n for n in bt["columns"] if n in at["columns"]] != \
                [n for n in at["columns"] if n in bt["columns"]]:
            lines.append("column order changed: " + ", ".join(at["columns"]))
        for n in sorted(set(bt["indexes"]) - set(at["indexes"])):
            lines.append("index dropped: " + describe_idx(n, bt["indexes"][n]))
        for n in sorted(set(at["indexes"]) - set(bt["indexes"])):
            lines.append("index added: " + describe_idx(n, at["indexes"][n]))
        for n in sorted(set(at["indexes"]) & set(bt["indexes"])):
            x, y = bt["indexes"][n], at["indexes"][n]
            if describe_idx(n, x) != describe_idx(n, y):
                lines.append(f"index changed: {describe_idx(n, x)} -> {describe_idx(n, y)}")
            elif x["sql"] != y["sql"]:
                lines.append(f"index re-created with other text: `{n}`: {x['sql']} -> {y['sql']}")
        renamed_to = [s for s in sorted(set(a) - set(b)) if columns_of(a[s]) == columns_of(bt)]
        if renamed_to:
            lines.insert(0, f"renamed to `{renamed_to[0]}` (same columns), and a new `{t}` "
                            "created with the columns below")
        if bt["sql"] != at["sql"]:
            lines.append("CREATE TABLE text changed (table rebuilt or altered)")
        if bt["rows"] != at["rows"]:
            lines.append(f"rows: {bt['rows']} -> {at['rows']}")
        if lines:
            print(f"- `{t}`:")
            for line in lines:
                print(f"  - {line}")
    unchanged = [t for t in sorted(set(a) & set(b)) if b[t]["sql"] == a[t]["sql"]
                 and b[t]["indexes"] == a[t]["indexes"] and b[t]["rows"] == a[t]["rows"]]
    print(f"\nUnchanged (same CREATE text, indexes and row count): "
          + ", ".join(f"`{t}`" for t in unchanged))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
