# owsync_fdw: PGXS build.  PostgreSQL 15 by default; override with
#   make PG_CONFIG=/usr/lib/postgresql/16/bin/pg_config
EXTENSION  = owsync_fdw
EXTVERSION = 0.7
# Earlier versions an installed cluster upgrades from, straight to this one.
UPGRADE_FROM = 0.1 0.2 0.3 0.4 0.5 0.6
MODULE_big = owsync_fdw
OBJS = src/owsync_fdw.o src/option.o src/connection.o src/deparse.o \
       src/convert.o src/json_valid.o src/digest.o src/keyset.o src/import.o \
       src/modify.o src/restore.o

# The install script is assembled from src/sql/*.sql (one file per concern, in name order).
# The upgrade script from each earlier version is assembled by src/upgrade/assemble.sh: the
# installed routines and views go, the tables change by the catalog steps, and every file of
# src/sql but the header and the install-only catalog runs again, so an upgraded cluster has
# exactly the routines of a fresh install (docs/ARCHITECTURE.md, "upgrades").  The install
# scripts of earlier versions are kept as released (src/upgrade/owsync_fdw--V.sql), for the
# upgrade test.
SQL_SRC      = $(sort $(wildcard src/sql/*.sql))
SQL_ONCE     = src/sql/00_header.sql src/sql/20_catalog.sql
SQL_UPGRADES = $(foreach v,$(UPGRADE_FROM),$(EXTENSION)--$(v)--$(EXTVERSION).sql)
DATA_built = $(EXTENSION)--$(EXTVERSION).sql $(SQL_UPGRADES)
DATA = $(foreach v,$(UPGRADE_FROM),src/upgrade/$(EXTENSION)--$(v).sql)
EXTRA_CLEAN = $(DATA_built) results/ regression.diffs regression.out output_iso/

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --inputdir=. --load-extension=plpgsql
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))

PG_CPPFLAGS = -I$(srcdir)/src -Wall -Wmissing-prototypes -Wpointer-arith
SHLIB_LINK += -lsqlite3 -lxxhash

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on the shared header (PGXS does not track headers).
$(OBJS): src/owsync_fdw.h

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_SRC)
	cat $^ > $@

$(EXTENSION)--%--$(EXTVERSION).sql: src/upgrade/assemble.sh src/upgrade/prologue.sql src/upgrade/epilogue.sql \
		$(wildcard src/upgrade/catalog-*.sql) $(SQL_SRC)
	sh src/upgrade/assemble.sh $* $(filter-out $(SQL_ONCE),$(SQL_SRC)) > $@

# The fast json check has an SSE2 path (x86-64) and a portable one; compile
# the portable one too, so that a build on other CPUs cannot break unseen.
check-portable: src/json_valid.c
	$(CC) $(CFLAGS) $(CPPFLAGS) -U__SSE2__ -mno-sse2 -mno-sse -fsyntax-only -Werror $<
.PHONY: check-portable
