#!/usr/bin/env bash
# The upgrade scenario: a webui.db created and written by an Open WebUI older than 0.9.0, then
# opened by the current one, whose migrations run on it.
#
#   bash test/openwebui/legacy.sh OUTDIR [OLD_VERSION [NEW_VERSION]]   # 0.8.12 and 0.12.4
#
# or, sourced (after test/openwebui/lib.sh's functions are loaded by it):
#   legacy_make OUTDIR [OLD_VERSION]      old version on an empty OUTDIR/data, populated, stopped
#   legacy_upgrade OUTDIR [NEW_VERSION]   the new version started on the same file, checked
#
# OUTDIR gets:
#   data/                    the data directory (webui.db), owned by owsync_owui
#   users.json               users with their passwords and what was written (legacy_drive.py)
#   webui-OLD.db             a copy of the file as the old version left it (stopped, DELETE mode)
#   schema-OLD.sql, schema-NEW.sql   sqlite_master of each (`sqlite3 .schema`)
#   dump-OLD.json, dump-NEW.json     the API's view by each version (legacy_drive.py dump)
#   upgrade-diff.md          schema_diff.py: what the migrations changed
#   facts.txt                journal modes, alembic revisions, start and migration times
# Standard tools plus the venvs owui_venv installs; the old version is started in its default
# journal mode (rollback journal: DATABASE_ENABLE_SQLITE_WAL defaults to false before 0.9.0).
set -euo pipefail

LEGACY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$LEGACY_DIR/lib.sh"
LEGACY_OLD=${LEGACY_OLD:-0.8.12}
LEGACY_NEW=${LEGACY_NEW:-0.12.4}
LEGACY_PORT=${LEGACY_PORT:-18300}
# Users other than the admin see the fake model without a workspace entry granting it.
LEGACY_ENV=(BYPASS_MODEL_ACCESS_CONTROL=true ENABLE_CHANNELS=true ENABLE_NOTES=true)
# lib.sh starts the fake model server as owsync_owui with the `python3` of PATH: it must be one
# that user can run (root's may live under /root, which it cannot enter).
LEGACY_PATH=/usr/bin:/bin:/usr/sbin:/sbin:$PATH

_legacy_fact() { echo "$*" | tee -a "$LEGACY_FACTS"; }

# The default of DATABASE_ENABLE_SQLITE_WAL in VERSION's env.py ('False' before 0.9.0).
legacy_wal_default() {
  local venv
  venv=$(owui_venv "${1:?}")
  "$venv/bin/python" - "$venv" <<'PY'
import pathlib, re, sys
src = next(pathlib.Path(sys.argv[1]).glob("lib/python*/site-packages/open_webui/env.py")).read_text()
m = re.search(r"DATABASE_ENABLE_SQLITE_WAL\s*=\s*os\.(?:environ\.get|getenv)\(\s*'DATABASE_ENABLE_SQLITE_WAL',\s*'(\w+)'", src)
print(m.group(1) if m else "unknown")
PY
}

# The journal mode recorded in a database file's header: wal or delete.
legacy_journal() {
  python3 -c 'import sys; h=open(sys.argv[1],"rb").read(20); print("wal" if h[18:20]==b"\2\2" else "delete")' "${1:?}"
}

# legacy_make OUTDIR [VERSION]: Open WebUI VERSION (older than 0.9.0) creates webui.db on an
# empty data directory in its default journal mode, legacy_drive.py populates it through the
# API and dumps the API's view, and the instance is stopped.
legacy_make() {
  local out=${1:?usage: legacy_make OUTDIR [VERSION]} version=${2:-$LEGACY_OLD} wal_default t0
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  LEGACY_FACTS=$out/facts.txt
  rm -rf "$out/data"
  wal_default=$(legacy_wal_default "$version")
  _legacy_fact "old version: $version (DATABASE_ENABLE_SQLITE_WAL default in its env.py: $wal_default)"
  [ "$wal_default" = False ] || owsync_die "legacy_make: $version defaults to WAL; it is not a pre-0.9.0 version"
  # MODE delete sets DATABASE_ENABLE_SQLITE_WAL=false: the same as this version's default.
  t0=$SECONDS
  PATH=$LEGACY_PATH owui_start legacy-old "$version" "$out/data" "$LEGACY_PORT" delete "${LEGACY_ENV[@]}"
  _legacy_fact "old start on an empty data dir (peewee + alembic create webui.db): ready after $((SECONDS - t0)) s"
  t0=$SECONDS
  owui_exec legacy-old python3 "$LEGACY_DIR/legacy_drive.py" "$(owui_url legacy-old)" \
    populate "$out/users.json"
  _legacy_fact "populate through the old API: $((SECONDS - t0)) s"
  owui_exec legacy-old python3 "$LEGACY_DIR/legacy_drive.py" "$(owui_url legacy-old)" \
    dump "$out/users.json" "$out/dump-$version.json"
  owui_exec legacy-old python3 "$LEGACY_DIR/legacy_drive.py" "$(owui_url legacy-old)" \
    login-check "$out/users.json"
  owui_stop legacy-old
  [ ! -e "$out/data/webui.db-wal" ] || owsync_die "legacy_make: $version left a -wal file"
  cp "$out/data/webui.db" "$out/webui-$version.db"
  sqlite3 "$out/webui-$version.db" .schema >"$out/schema-$version.sql"
  _legacy_fact "old file: journal $(legacy_journal "$out/webui-$version.db"), alembic $(sqlite3 "$out/webui-$version.db" 'SELECT version_num FROM alembic_version'), migratehistory rows $(sqlite3 "$out/webui-$version.db" 'SELECT count(*) FROM migratehistory'), $(stat -c %s "$out/webui-$version.db") bytes"
  echo "$version" >"$out/old-version"
}

# The time 0.12.x's alembic upgrade alone takes on a copy of FILE (imports excluded), offline.
legacy_time_migrations() {
  local file=${1:?} version=${2:?} venv scratch
  venv=$(owui_venv "$version")
  scratch=$(mktemp -d)
  cp "$file" "$scratch/webui.db"
  unshare --net -- env -i PATH=/usr/bin:/bin HOME="$scratch" DATA_DIR="$scratch" \
    ENABLE_DB_MIGRATIONS=false OFFLINE_MODE=true HF_HUB_OFFLINE=1 \
    WEBUI_SECRET_KEY=x GLOBAL_LOG_LEVEL=WARNING \
    "$venv/bin/python" - <<'PY'
import time
from alembic import command
from alembic.config import Config
import open_webui.env as env
cfg = Config(env.OPEN_WEBUI_DIR / "alembic.ini")
cfg.set_main_option("script_location", str(env.OPEN_WEBUI_DIR / "migrations"))
t = time.monotonic()
command.upgrade(cfg, "head")
print(f"{time.monotonic() - t:.2f}")
PY
  rm -rf "$scratch"
}

# legacy_upgrade OUTDIR [VERSION]: Open WebUI VERSION (default 0.12.4, WAL mode: its default)
# started on the file legacy_make left; its migrations run at start.  Then every user logs in
# with its password and the API's view is dumped; the schema change is written out.
legacy_upgrade() {
  local out=${1:?usage: legacy_upgrade OUTDIR [VERSION]} version=${2:-$LEGACY_NEW} old t0 secs
  out=$(cd "$out" && pwd)
  LEGACY_FACTS=$out/facts.txt
  old=$(cat "$out/old-version")
  secs=$(legacy_time_migrations "$out/webui-$old.db" "$version" 2>"$out/migrations-alone.log" | tail -n 1)
  _legacy_fact "alembic upgrade $old -> $version alone (on a copy, imports excluded): $secs s"
  t0=$SECONDS
  PATH=$LEGACY_PATH owui_start legacy-new "$version" "$out/data" "$LEGACY_PORT" wal "${LEGACY_ENV[@]}"
  _legacy_fact "new start on the old file (migrations included): ready after $((SECONDS - t0)) s"
  owui_exec legacy-new python3 "$LEGACY_DIR/legacy_drive.py" "$(owui_url legacy-new)" \
    login-check "$out/users.json"
  owui_exec legacy-new python3 "$LEGACY_DIR/legacy_drive.py" "$(owui_url legacy-new)" \
    dump "$out/users.json" "$out/dump-$version.json"
  legacy_check_readable "$out/data"
  owui_stop legacy-new
  # A copy of the file and its -wal as the new version left them, for the schema.
  sqlite3 "file:$out/data/webui.db?mode=ro" .schema >"$out/schema-$version.sql"
  _legacy_fact "upgraded file: journal $(legacy_journal "$out/data/webui.db"), alembic $(sqlite3 "file:$out/data/webui.db?mode=ro" 'SELECT version_num FROM alembic_version'), migratehistory: $(sqlite3 "file:$out/data/webui.db?mode=ro" "SELECT CASE WHEN count(*) = 1 THEN 'kept' ELSE 'gone' END FROM sqlite_master WHERE name = 'migratehistory'")"
  python3 "$LEGACY_DIR/schema_diff.py" "$out/webui-$old.db" "$out/data/webui.db" >"$out/upgrade-diff.md"
  t0=$SECONDS
  PATH=$LEGACY_PATH owui_start legacy-new "$version" "$out/data" "$LEGACY_PORT" wal "${LEGACY_ENV[@]}"
  _legacy_fact "new start again (nothing to migrate): ready after $((SECONDS - t0)) s"
  owui_stop legacy-new
}

# While the new version runs (WAL): what the postgres OS user can do with DATADIR's files,
# and whether a read-only SQLite reader as postgres sees the data.
legacy_check_readable() {
  local data=${1:?}
  _legacy_fact "files while running: $(cd "$data" && stat -c '%n %U:%G %a' webui.db* | paste -sd ';')"
  if runuser -u postgres -- sqlite3 "file:$data/webui.db?mode=ro" 'SELECT count(*) FROM chat' \
       >"$data/../postgres-read.txt" 2>&1; then
    _legacy_fact "postgres OS user, read-only sqlite3 while it runs: ok, $(cat "$data/../postgres-read.txt") chats"
  else
    _legacy_fact "postgres OS user, read-only sqlite3 while it runs: FAILED: $(cat "$data/../postgres-read.txt")"
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  [ $# -ge 1 ] || owsync_die "usage: bash test/openwebui/legacy.sh OUTDIR [OLD_VERSION [NEW_VERSION]]"
  trap owui_stop_all EXIT
  legacy_make "$1" "${2:-$LEGACY_OLD}"
  legacy_upgrade "$1" "${3:-$LEGACY_NEW}"
  python3 - "$1/dump-${2:-$LEGACY_OLD}.json" "$1/dump-${3:-$LEGACY_NEW}.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
if a != b:
    sys.exit("legacy.sh: the API's view differs before and after the upgrade: compare the dumps")
print("legacy.sh: the API shows the same data before and after the upgrade")
PY
fi
