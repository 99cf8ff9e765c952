/*-------------------------------------------------------------------------
 *
 * import.c
 *		IMPORT FOREIGN SCHEMA: one foreign table per SQLite table.
 *
 * Types follow the declared SQLite type, then the stored values where the
 * declaration does not settle it:
 *
 *	INT anywhere in the name		bigint
 *	BOOL...							boolean
 *	JSON							json (jsonb with OPTIONS (json_type 'jsonb'))
 *	CHAR, CLOB, TEXT (VARCHAR(n))	text (SQLite never enforced n)
 *	BLOB							bytea
 *	REAL, FLOA, DOUB				double precision
 *	NUMERIC, DECIMAL				numeric
 *	DATE							date when the stored values are text
 *									('YYYY-MM-DD', which reads back the same)
 *	DATETIME, TIMESTAMP				text when the stored values are text: their
 *									form varies by writer ('... 06:27:32' from
 *									CURRENT_TIMESTAMP, '... 06:27:32.000000'
 *									from peewee) and a timestamp would lose it,
 *									so a restore could not write it back
 *	DATE, DATETIME, TIMESTAMP		bigint when they are integers (the legacy
 *									chat.created_at holds epoch seconds)
 *	anything else, or no type		by the stored values (text when none)
 *
 * Key columns get OPTIONS (key 'true'): the declared primary key, or else
 * (Open WebUI before v0.9.6) the narrowest unique, non-partial index whose
 * columns are all NOT NULL.  Composite keys are kept.
 *
 *-------------------------------------------------------------------------
 */
#include "owsync_fdw.h"

#include "commands/defrem.h"
#include "utils/builtins.h"
#include "utils/formatting.h"

/* Values inspected per column when the declared type does not decide. */
#define OWSYNC_TYPE_SAMPLE 1000

/* Storage classes seen in a sample of a column, as bits. */
#define SEEN_INTEGER 0x01
#define SEEN_REAL	 0x02
#define SEEN_TEXT	 0x04
#define SEEN_BLOB	 0x08

typedef struct ImportColumn
{
	char	   *name;
	char	   *decltype;
	bool		notnull;
	int			pk;				/* position in the primary key, 0 if none */
	bool		key;
} ImportColumn;

static int
sample_classes(OwsyncConn *conn, const char *table, const char *column)
{
	StringInfoData sql;
	sqlite3_stmt *stmt;
	volatile int seen = 0;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT DISTINCT typeof(v) FROM (SELECT ");
	owsync_quote_ident(&sql, column);
	appendStringInfoString(&sql, " AS v FROM ");
	owsync_quote_ident(&sql, table);
	appendStringInfoString(&sql, " WHERE ");
	owsync_quote_ident(&sql, column);
	appendStringInfo(&sql, " IS NOT NULL LIMIT %d)", OWSYNC_TYPE_SAMPLE);

	stmt = owsync_prepare(conn, sql.data);
	PG_TRY();
	{
		while (owsync_step(conn, stmt, "sample a column's values") == SQLITE_ROW)
		{
			const char *t = (const char *) sqlite3_column_text(stmt, 0);

			if (strcmp(t, "integer") == 0)
				seen |= SEEN_INTEGER;
			else if (strcmp(t, "real") == 0)
				seen |= SEEN_REAL;
			else if (strcmp(t, "text") == 0)
				seen |= SEEN_TEXT;
			else
				seen |= SEEN_BLOB;
		}
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	return seen;
}

static void
ambiguous_column(const char *table, const char *column, const char *decltype, int seen)
{
	StringInfoData classes;

	initStringInfo(&classes);
	if (seen & SEEN_INTEGER)
		appendStringInfoString(&classes, ", INTEGER");
	if (seen & SEEN_REAL)
		appendStringInfoString(&classes, ", REAL");
	if (seen & SEEN_TEXT)
		appendStringInfoString(&classes, ", TEXT");
	if (seen & SEEN_BLOB)
		appendStringInfoString(&classes, ", BLOB");
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("cannot choose a type for column \"%s\" of SQLite table \"%s\"", column, table),
			 errdetail("The column is declared \"%s\" and holds values of several storage classes: %s.",
					   decltype, classes.data + 2),
			 errhint("Import the other tables with EXCEPT and create this foreign table by hand.")));
}

/* The PostgreSQL type for a SQLite column (see the file header). */
static const char *
map_type(OwsyncConn *conn, const char *table, ImportColumn *col, bool jsonb)
{
	char	   *t = asc_toupper(col->decltype, strlen(col->decltype));
	bool		is_date = strcmp(t, "DATE") == 0;
	int			seen;

	if (strstr(t, "INT"))
		return "bigint";
	if (strncmp(t, "BOOL", 4) == 0)
		return "boolean";
	if (strcmp(t, "JSON") == 0)
		return jsonb ? "jsonb" : "json";
	if (strstr(t, "CHAR") || strstr(t, "CLOB") || strstr(t, "TEXT"))
		return "text";
	if (strstr(t, "BLOB"))
		return "bytea";
	if (strstr(t, "REAL") || strstr(t, "FLOA") || strstr(t, "DOUB"))
		return "double precision";
	if (strncmp(t, "NUMERIC", 7) == 0 || strncmp(t, "DECIMAL", 7) == 0)
		return "numeric";

	seen = sample_classes(conn, table, col->name);
	if (is_date || strncmp(t, "DATETIME", 8) == 0 || strncmp(t, "TIMESTAMP", 9) == 0)
	{
		if (seen == SEEN_INTEGER)
			return "bigint";
		if ((seen & ~SEEN_TEXT) == 0)
			return is_date ? "date" : "text";
		ambiguous_column(table, col->name, col->decltype, seen);
	}
	switch (seen)
	{
		case 0:
		case SEEN_TEXT:
			return "text";
		case SEEN_INTEGER:
			return "bigint";
		case SEEN_REAL:
		case SEEN_REAL | SEEN_INTEGER:
			return "double precision";
		case SEEN_BLOB:
			return "bytea";
		default:
			ambiguous_column(table, col->name, col->decltype, seen);
	}
	return NULL;				/* keep compiler quiet */
}

static List *
list_tables(OwsyncConn *conn)
{
	sqlite3_stmt *stmt;
	List	   *volatile tables = NIL;

	stmt = owsync_prepare(conn,
						  "SELECT name FROM sqlite_master WHERE type = 'table' "
						  "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name");
	PG_TRY();
	{
		while (owsync_step(conn, stmt, "list tables") == SQLITE_ROW)
			tables = lappend(tables, pstrdup((const char *) sqlite3_column_text(stmt, 0)));
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	return tables;
}

/* Run a one-parameter introspection query; call row() for each row. */
typedef void (*RowFn) (sqlite3_stmt *stmt, void *arg);

static void
for_each_row(OwsyncConn *conn, const char *sql, const char *param, RowFn row, void *arg)
{
	sqlite3_stmt *stmt = owsync_prepare(conn, sql);

	PG_TRY();
	{
		if (sqlite3_bind_text(stmt, 1, param, -1, SQLITE_STATIC) != SQLITE_OK)
			owsync_sqlite_error(conn, SQLITE_MISUSE, "bind a name");
		while (owsync_step(conn, stmt, "read the schema") == SQLITE_ROW)
			row(stmt, arg);
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
}

static void
column_row(sqlite3_stmt *stmt, void *arg)
{
	List	  **cols = (List **) arg;
	ImportColumn *c = palloc0(sizeof(ImportColumn));
	const char *decl = (const char *) sqlite3_column_text(stmt, 1);

	c->name = pstrdup((const char *) sqlite3_column_text(stmt, 0));
	c->decltype = pstrdup(decl ? decl : "");
	c->notnull = sqlite3_column_int(stmt, 2) != 0;
	c->pk = sqlite3_column_int(stmt, 3);
	*cols = lappend(*cols, c);
}

static void
name_row(sqlite3_stmt *stmt, void *arg)
{
	List	  **names = (List **) arg;
	const char *name = (const char *) sqlite3_column_text(stmt, 0);

	/* an expression in an index has no name: such an index is no key */
	*names = lappend(*names, name ? pstrdup(name) : NULL);
}

static ImportColumn *
find_column(List *cols, const char *name)
{
	ListCell   *lc;

	foreach(lc, cols)
	{
		ImportColumn *c = lfirst(lc);

		if (name && pg_strcasecmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

/*
 * Mark the key columns: the primary key, else the narrowest unique index
 * (not partial) over NOT NULL columns, ties broken by index name.
 */
static void
mark_key(OwsyncConn *conn, const char *table, List *cols)
{
	ListCell   *lc;
	List	   *indexes = NIL;
	List	   *best = NIL;
	bool		has_pk = false;

	foreach(lc, cols)
	{
		ImportColumn *c = lfirst(lc);

		c->key = c->pk > 0;
		has_pk |= c->key;
	}
	if (has_pk)
		return;

	for_each_row(conn,
				 "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" AND NOT partial ORDER BY name",
				 table, name_row, &indexes);
	foreach(lc, indexes)
	{
		List	   *icols = NIL;
		ListCell   *lc2;
		bool		usable = true;

		for_each_row(conn, "SELECT name FROM pragma_index_info(?1) ORDER BY seqno",
					 (const char *) lfirst(lc), name_row, &icols);
		foreach(lc2, icols)
		{
			ImportColumn *c = find_column(cols, lfirst(lc2));

			usable &= (c != NULL && c->notnull);
		}
		if (usable && icols != NIL &&
			(best == NIL || list_length(icols) < list_length(best)))
			best = icols;
	}
	foreach(lc, best)
		find_column(cols, lfirst(lc))->key = true;
}

static bool
wanted(ImportForeignSchemaStmt *stmt, const char *table)
{
	ListCell   *lc;
	bool		listed = false;

	if (stmt->list_type == FDW_IMPORT_SCHEMA_ALL)
		return true;
	foreach(lc, stmt->table_list)
		listed |= strcmp(((RangeVar *) lfirst(lc))->relname, table) == 0;
	return stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO ? listed : !listed;
}

static void
check_name_length(const char *table, const char *name)
{
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("SQLite name \"%s\" is too long for PostgreSQL", name),
				 errdetail("It appears in table \"%s\"; PostgreSQL names have at most %d bytes.",
						   table, NAMEDATALEN - 1),
				 errhint("Import the other tables with EXCEPT and create this foreign table by hand.")));
}

List *
owsync_import_foreign_schema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	ForeignServer *server = GetForeignServer(serverOid);
	OwsyncConn *conn;
	bool		jsonb = false;
	List	   *commands = NIL;
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "json_type") == 0)
		{
			char	   *v = defGetString(def);

			if (strcmp(v, "json") != 0 && strcmp(v, "jsonb") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value for option \"json_type\": \"%s\"", v),
						 errhint("Valid values are \"json\" and \"jsonb\".")));
			jsonb = strcmp(v, "jsonb") == 0;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\" for IMPORT FOREIGN SCHEMA", def->defname),
					 errhint("The only option is \"json_type\".")));
	}
	if (strcmp(stmt->remote_schema, "main") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_SCHEMA_NOT_FOUND),
				 errmsg("SQLite schema \"%s\" does not exist", stmt->remote_schema),
				 errhint("A SQLite file has one schema: use IMPORT FOREIGN SCHEMA main.")));

	conn = owsync_get_connection(server);
	foreach(lc, list_tables(conn))
	{
		char	   *table = lfirst(lc);
		List	   *cols = NIL;
		ListCell   *lc2;
		StringInfoData buf;

		if (!wanted(stmt, table))
			continue;
		check_name_length(table, table);
		for_each_row(conn,
					 "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid",
					 table, column_row, &cols);
		mark_key(conn, table, cols);

		initStringInfo(&buf);
		appendStringInfo(&buf, "CREATE FOREIGN TABLE %s.%s (",
						 quote_identifier(stmt->local_schema), quote_identifier(table));
		foreach(lc2, cols)
		{
			ImportColumn *c = lfirst(lc2);

			check_name_length(table, c->name);
			appendStringInfo(&buf, "%s\n  %s %s OPTIONS (column_name %s%s)%s",
							 lc2 == list_head(cols) ? "" : ",",
							 quote_identifier(c->name), map_type(conn, table, c, jsonb),
							 quote_literal_cstr(c->name), c->key ? ", key 'true'" : "",
							 c->notnull ? " NOT NULL" : "");
		}
		appendStringInfo(&buf, "\n) SERVER %s OPTIONS (table %s)",
						 quote_identifier(server->servername), quote_literal_cstr(table));
		commands = lappend(commands, buf.data);
	}
	return commands;
}
