#!/bin/sh
# Print the upgrade script from version FROM to the version being built:
#   sh src/upgrade/assemble.sh FROM ROUTINE_FILES...
# It is the prologue (the installed routines, views and types go), then every catalog step
# src/upgrade/catalog-V--W.sql with V at or after FROM, in version order (what changes in
# tables), then the routine files of src/sql as given (all but the header and the catalog),
# then the epilogue (what needs the routines: pg_cron's jobs made to match the catalog).
set -eu
from=$1; shift
dir=$(dirname "$0")
printf '%s\n' '\echo Use "ALTER EXTENSION owsync_fdw UPDATE" to load this file. \quit'
cat "$dir/prologue.sql"
for step in $(ls "$dir"/catalog-*.sql 2>/dev/null | sort -V); do
  v=${step##*/catalog-}; v=${v%%--*}
  # steps that start at or after FROM
  if [ "$(printf '%s\n%s\n' "$from" "$v" | sort -V | head -n 1)" = "$from" ]; then
    cat "$step"
  fi
done
cat "$@"
cat "$dir/epilogue.sql"
