#!/usr/bin/env bash
# Bring test/fixtures/schema-{legacy,fresh}.sql to the schema of an Open WebUI release, by that
# release's own migrations:
#
#   bash test/openwebui/upgrade_fixtures.sh [VERSION]          # default 0.12.4
#
# For each file: an empty database is made from it (sqlite3 x.db < FILE), the release's alembic
# upgrade runs on it (the venv of test/openwebui/lib.sh, offline), and the file is written again
# from the result: its header comment kept (the line naming the head updated by hand), then every
# sqlite_master entry in rowid order as "-- type name [on table]" and its SQL, then the rows of
# alembic_version and migratehistory.  So each fixture stays what its flavour's deployments have
# after upgrading Open WebUI to VERSION.  Prints the new alembic head.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/openwebui/lib.sh
version=${1:-0.12.4}
venv=$(owui_venv "$version")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for flavour in legacy fresh; do
  file=test/fixtures/schema-$flavour.sql
  mkdir "$work/$flavour"
  sqlite3 "$work/$flavour/webui.db" <"$file"
  unshare --net -- env -i PATH=/usr/bin:/bin HOME="$work" DATA_DIR="$work/$flavour" \
    ENABLE_DB_MIGRATIONS=false OFFLINE_MODE=true HF_HUB_OFFLINE=1 \
    WEBUI_SECRET_KEY=x GLOBAL_LOG_LEVEL=WARNING "$venv/bin/python" - >"$work/$flavour.log" 2>&1 <<'PY' ||
from alembic import command
from alembic.config import Config
import open_webui.env as env
cfg = Config(env.OPEN_WEBUI_DIR / "alembic.ini")
cfg.set_main_option("script_location", str(env.OPEN_WEBUI_DIR / "migrations"))
command.upgrade(cfg, "head")
PY
    { tail -n 20 "$work/$flavour.log"; owsync_die "the migrations of $version failed on $file"; }
  python3 - "$file" "$work/$flavour/webui.db" <<'PY'
import sqlite3, sys
path, db = sys.argv[1], sqlite3.connect(sys.argv[2])
header = []
for line in open(path, encoding="utf-8"):
    if line.startswith("PRAGMA foreign_keys"):
        break
    header.append(line)
out = header + ["PRAGMA foreign_keys=OFF;\n", "BEGIN TRANSACTION;\n"]
for typ, name, tbl, sql in db.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"):
    out.append("\n-- %s %s%s\n%s;\n" % (typ, name, "" if typ == "table" else " on " + tbl, sql))
out.append("\n")
for (v,) in db.execute("SELECT version_num FROM alembic_version"):
    out.append("INSERT INTO alembic_version (version_num) VALUES ('%s');\n" % v)
if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'migratehistory'").fetchone():
    for i, n, at in db.execute("SELECT id, name, migrated_at FROM migratehistory ORDER BY id"):
        out.append("INSERT INTO migratehistory (id, name, migrated_at) VALUES (%d, '%s', '%s');\n" % (i, n, at))
out.append("\nCOMMIT;\n")
open(path, "w", encoding="utf-8").writelines(out)
PY
  echo "$flavour: $(sqlite3 "$work/$flavour/webui.db" 'SELECT version_num FROM alembic_version'), $(sqlite3 "$work/$flavour/webui.db" "SELECT count(*) FROM sqlite_master WHERE type = 'table'") tables"
done
