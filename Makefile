# owsync_fdw: PGXS build.  PostgreSQL 15 by default; override with
#   make PG_CONFIG=/usr/lib/postgresql/16/bin/pg_config
EXTENSION  = owsync_fdw
EXTVERSION = 0.1
MODULE_big = owsync_fdw
OBJS = src/owsync_fdw.o src/option.o src/connection.o src/deparse.o \
       src/convert.o src/json_valid.o src/digest.o src/import.o src/modify.o \
       src/restore.o

# The install script is assembled from src/sql/*.sql (one file per concern).
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
EXTRA_CLEAN = $(EXTENSION)--$(EXTVERSION).sql results/ regression.diffs regression.out output_iso/

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

$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard src/sql/*.sql))
	cat $^ > $@

# The fast json check has an SSE2 path (x86-64) and a portable one; compile
# the portable one too, so that a build on other CPUs cannot break unseen.
check-portable: src/json_valid.c
	$(CC) $(CFLAGS) $(CPPFLAGS) -U__SSE2__ -mno-sse2 -mno-sse -fsyntax-only -Werror $<
.PHONY: check-portable
