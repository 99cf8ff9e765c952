/*-------------------------------------------------------------------------
 *
 * option.c
 *		Option validation, path rules and GUCs of owsync_fdw.
 *
 * A server names one SQLite file by its absolute path (option "database").
 * Setting that path is a privileged act, and every use of it, when the
 * option is set and again each time the file is opened, goes through
 * owsync_resolve_path(), which resolves symbolic links and applies the
 * rules on the real path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <glob.h>
#include <limits.h>
#include <sys/stat.h>

#include "access/reloptions.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "owsync_fdw.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/varlena.h"

/* The valid options, and the catalog of the object each one belongs to. */
typedef struct OwsyncOption
{
	const char *name;
	Oid			context;
} OwsyncOption;

static const OwsyncOption valid_options[] = {
	{"database", ForeignServerRelationId},
	{"busy_timeout", ForeignServerRelationId},
	{"writable", ForeignServerRelationId},
	{"batch_size", ForeignServerRelationId},
	{"table", ForeignTableRelationId},
	{"batch_size", ForeignTableRelationId},
	{"column_name", AttributeRelationId},
	{"key", AttributeRelationId},
	{"digest", AttributeRelationId},
	{"raw", AttributeRelationId},
};

/* Largest edit distance for which an unknown option gets a suggestion. */
#define MAX_SUGGESTION_DISTANCE 4

/* How a refused path is reported in errmsg. */
typedef enum PathError
{
	PATH_INVALID,				/* the path itself is malformed */
	PATH_DENIED,				/* the path is well-formed but not allowed */
	PATH_UNRESOLVED				/* realpath() failed; the message ends in %m */
} PathError;

char	   *owsync_allowed_directories = NULL;
static int	owsync_history_retention = 30 * 24 * 60;	/* minutes; read by the sync (SQL) */
static char *owsync_cron_connection = NULL; /* read by the scheduling (SQL) */
static bool owsync_applying = false;	/* set by the sync while it writes (SQL) */

PG_FUNCTION_INFO_V1(owsync_fdw_validator);

/*
 * errmsg() for a refused path.  At connection time the server is named too,
 * since the user querying a foreign table may not know which server it uses.
 */
static int
errmsg_path(PathError kind, const char *path, const char *servername)
{
	switch (kind)
	{
		case PATH_INVALID:
			return servername ?
				errmsg("invalid SQLite file path \"%s\" for server \"%s\"", path, servername) :
				errmsg("invalid SQLite file path \"%s\"", path);
		case PATH_DENIED:
			return servername ?
				errmsg("permission denied for SQLite file \"%s\" of server \"%s\"", path, servername) :
				errmsg("permission denied for SQLite file \"%s\"", path);
		case PATH_UNRESOLVED:
			break;
	}
	return servername ?
		errmsg("could not resolve SQLite file path \"%s\" of server \"%s\": %m", path, servername) :
		errmsg("could not resolve SQLite file path \"%s\": %m", path);
}

/* Is path (a real path) the directory dir or inside it? */
static bool
path_is_under(const char *path, const char *dir)
{
	size_t		len = strlen(dir);

	while (len > 0 && dir[len - 1] == '/')
		len--;					/* "/" becomes "", which every path is under */
	return strncmp(path, dir, len) == 0 &&
		(path[len] == '/' || path[len] == '\0');
}

/*
 * realpath() of path, palloc'd.  A file that does not exist yet (restore
 * creates files) resolves to the real path of its directory plus its name.
 */
static char *
resolve_real_path(const char *path, const char *servername)
{
	char	   *resolved = realpath(path, NULL);
	char	   *result;
	struct stat st;

	if (resolved == NULL && errno == ENOENT)
	{
		const char *name = last_dir_separator(path) + 1;
		char	   *dir = (name - 1 == path) ? pstrdup("/") : pnstrdup(path, name - 1 - path);

		if (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg_path(PATH_INVALID, path, servername),
					 errdetail("The path must end with a file name.")));
		if (lstat(path, &st) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg_path(PATH_INVALID, path, servername),
					 errdetail("The path is a symbolic link to a file that does not exist.")));

		resolved = realpath(dir, NULL);
		if (resolved == NULL)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg_path(PATH_UNRESOLVED, path, servername),
					 errdetail("The file does not exist, and its directory \"%s\" could not be resolved either.",
							   dir)));
		result = psprintf("%s/%s", strcmp(resolved, "/") == 0 ? "" : resolved, name);
		pfree(dir);
	}
	else if (resolved == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg_path(PATH_UNRESOLVED, path, servername)));
	else
		result = pstrdup(resolved);
	free(resolved);

	if (stat(result, &st) == 0 && !S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg_path(PATH_INVALID, path, servername),
				 errdetail("The real path \"%s\" is a directory or special file, not a regular file.",
						   result)));
	if (strlen(result) >= MAXPGPATH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_path(PATH_INVALID, path, servername),
				 errdetail("The real path is longer than %d bytes.", MAXPGPATH - 1)));
	return result;
}

/*
 * Is real (a real path) inside a directory of owsync.allowed_directories?
 * listed says whether the list has any entry.
 *
 * Without a list, only a superuser may set a path.  At connection time the
 * current user is whoever queries a foreign table, so the rule cannot depend
 * on them: the path was vetted when it was set, and the other checks are
 * repeated on its current real path.  A list binds everyone, superusers
 * included, and at every open: a symbolic link swapped since, or a directory
 * taken off the list, stops the file from being opened.  Entries that do not
 * exist are skipped.
 */
static char *check_path(const char *path, const char *servername, bool unlisted_ok);

static bool
in_allowed_directories(const char *real, bool *listed)
{
	/* The check hook accepted the value, so the list syntax is valid. */
	char	   *rawdirs = pstrdup(owsync_allowed_directories ? owsync_allowed_directories : "");
	List	   *dirs;
	ListCell   *lc;
	bool		inside = false;

	if (!SplitDirectoriesString(rawdirs, ',', &dirs))
		elog(ERROR, "invalid list syntax in owsync.allowed_directories");
	*listed = dirs != NIL;
	foreach(lc, dirs)
	{
		char	   *dir = realpath((char *) lfirst(lc), NULL);

		if (dir == NULL)
			continue;
		inside = path_is_under(real, dir);
		free(dir);
		if (inside)
			break;
	}
	list_free_deep(dirs);
	pfree(rawdirs);
	return inside;
}

/*
 * Apply the path rules to path and return its real path (palloc'd).
 *
 * servername is NULL when the option is being set (validator), and names the
 * server when the file is about to be opened.
 */
char *
owsync_resolve_path(const char *path, const char *servername)
{
	return check_path(path, servername, servername != NULL || superuser());
}

/*
 * The same rules for a file restore is about to create or replace: inside
 * owsync.allowed_directories, or anywhere but the data directory for a
 * superuser when the list is empty (the caller says whether the session's
 * user is one).
 */
char *
owsync_resolve_target_path(const char *path, bool superuser_asks)
{
	return check_path(path, NULL, superuser_asks);
}

/*
 * The checks behind both: unlisted_ok says whether an empty
 * owsync.allowed_directories lets the path through.
 */
static char *
check_path(const char *path, const char *servername, bool unlisted_ok)
{
	char	   *real;
	char	   *datadir;
	bool		inside;
	bool		listed;

	if (pg_strncasecmp(path, "file:", 5) == 0 || strpbrk(path, "?#") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_path(PATH_INVALID, path, servername),
				 errdetail("SQLite URI filenames, query strings and fragments are not accepted."),
				 errhint("Give the plain absolute path of the file.")));
	if (!is_absolute_path(path))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_path(PATH_INVALID, path, servername),
				 errdetail("The path must be absolute.")));
	if (strlen(path) >= MAXPGPATH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg_path(PATH_INVALID, path, servername),
				 errdetail("The path is longer than %d bytes.", MAXPGPATH - 1)));

	real = resolve_real_path(path, servername);

	/* Never inside the data directory, whoever asks. */
	datadir = realpath(DataDir, NULL);
	inside = path_is_under(real, datadir ? datadir : DataDir);
	free(datadir);
	if (inside)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg_path(PATH_DENIED, path, servername),
				 errdetail("The file lies inside the PostgreSQL data directory.")));

	inside = in_allowed_directories(real, &listed);
	if (!listed && !unlisted_ok)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg_path(PATH_DENIED, path, servername),
				 errdetail("owsync.allowed_directories is empty, so only superusers may open SQLite files."),
				 errhint("Ask a superuser to list the file's directory in owsync.allowed_directories.")));
	if (listed && !inside)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg_path(PATH_DENIED, path, servername),
				 errdetail("The real path \"%s\" is not inside any directory listed in owsync.allowed_directories.",
						   real),
				 errhint("Ask a superuser to add the file's directory to owsync.allowed_directories.")));
	return real;
}

/*
 * owsync.find_files(pattern): the regular files matching a glob pattern
 * (glob(3): *, ? and [...] within one path component), sorted, that the path
 * rules would let a server open: outside the data directory, and inside
 * owsync.allowed_directories (with no list, for superusers only).  For the
 * roles that may set a server's path: superusers and members of
 * pg_read_server_files.
 */
PG_FUNCTION_INFO_V1(owsync_find_files);

Datum
owsync_find_files(PG_FUNCTION_ARGS)
{
	char	   *pattern = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *datadir;
	glob_t		g;
	int			rc;

	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to list SQLite files"),
				 errdetail("Only superusers and roles with privileges of the pg_read_server_files role may look for files on the server.")));
	if (!is_absolute_path(pattern) || strlen(pattern) >= MAXPGPATH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid file pattern \"%s\"", pattern),
				 errdetail("A pattern is an absolute path of at most %d bytes, with * ? [...] in its components.",
						   MAXPGPATH - 1)));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	rc = glob(pattern, 0, NULL, &g);
	if (rc == GLOB_NOMATCH)
		return (Datum) 0;
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not expand file pattern \"%s\"", pattern)));
	datadir = realpath(DataDir, NULL);
	PG_TRY();
	{
		for (size_t i = 0; i < g.gl_pathc; i++)
		{
			char	   *real = realpath(g.gl_pathv[i], NULL);
			struct stat st;
			bool		listed;
			bool		usable;

			if (real == NULL)
				continue;
			usable = stat(real, &st) == 0 && S_ISREG(st.st_mode) &&
				strlen(real) < MAXPGPATH &&
				!path_is_under(real, datadir ? datadir : DataDir) &&
				(in_allowed_directories(real, &listed) || (!listed && superuser()));
			free(real);
			if (usable)
			{
				Datum		value = CStringGetTextDatum(g.gl_pathv[i]);
				bool		isnull = false;

				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
			}
		}
	}
	PG_FINALLY();
	{
		globfree(&g);
		free(datadir);
	}
	PG_END_TRY();
	return (Datum) 0;
}

/*
 * Parse a whole-number option strictly: digits only, min .. INT_MAX
 * (busy_timeout in milliseconds from 0, batch_size in rows from 1).
 */
static int
parse_int_option(const char *name, const char *value, int min, const char *unit)
{
	char	   *end;
	long		result;

	errno = 0;
	result = strtol(value, &end, 10);
	if (!isdigit((unsigned char) value[0]) || *end != '\0' ||
		errno == ERANGE || result > INT_MAX || result < min)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", name, value),
				 errdetail("The value must be a whole number of %s between %d and %d.",
						   unit, min, INT_MAX)));
	return (int) result;
}

/*
 * Writing a server's file through the wrapper needs what setting its path
 * needs (superuser, or the privileges of pg_read_server_files) and the
 * privileges of pg_write_server_files: checked when the option writable is
 * set, and for the user performing every write (servername given then).
 */
void
owsync_check_write_privilege(Oid userid, const char *servername)
{
	if (superuser_arg(userid) ||
		(has_privs_of_role(userid, ROLE_PG_READ_SERVER_FILES) &&
		 has_privs_of_role(userid, ROLE_PG_WRITE_SERVER_FILES)))
		return;
	if (servername == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set option \"writable\""),
				 errdetail("Only superusers and roles with privileges of both the pg_read_server_files and pg_write_server_files roles may make a SQLite file writable.")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to write SQLite file of server \"%s\"", servername),
			 errdetail("Role \"%s\" needs the privileges of both the pg_read_server_files and pg_write_server_files roles to write through the wrapper.",
					   GetUserNameFromId(userid, false)),
			 errhint("Ask a superuser to grant pg_write_server_files, or write as a role that has it.")));
}

/*
 * The candidate closest to name by edit distance, if one is close enough to
 * suggest (at most MAX_SUGGESTION_DISTANCE edits, and at most half of name's
 * length); NULL otherwise.
 */
static const char *
closest_name(const char *name, const char *const *candidates, int ncandidates)
{
	const char *closest = NULL;
	int			best = MAX_SUGGESTION_DISTANCE + 1;
	int			namelen = strlen(name);

	if (namelen >= NAMEDATALEN)
		return NULL;
	for (int i = 0; i < ncandidates; i++)
	{
		int			dist = varstr_levenshtein(name, namelen, candidates[i], strlen(candidates[i]),
											  1, 1, 1, false);

		if (dist < best && dist <= namelen / 2)
		{
			best = dist;
			closest = candidates[i];
		}
	}
	return closest;
}

/* Complain about an option that is not valid for the catalog. */
static void
report_invalid_option(const char *name, Oid catalog)
{
	StringInfoData valid;
	const char *names[lengthof(valid_options)];
	int			nnames = 0;
	const char *closest;

	initStringInfo(&valid);
	for (int i = 0; i < lengthof(valid_options); i++)
	{
		if (valid_options[i].context != catalog)
			continue;
		names[nnames++] = valid_options[i].name;
		appendStringInfo(&valid, "%s%s", valid.len > 0 ? ", " : "", valid_options[i].name);
	}
	closest = closest_name(name, names, nnames);

	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
			 errmsg("invalid option \"%s\"", name),
			 closest ? errhint("Perhaps you meant the option \"%s\".", closest) :
			 valid.len > 0 ? errhint("Valid options in this context are: %s", valid.data) :
			 errhint("There are no valid options in this context.")));
}

/*
 * owsync._closest_name(name, candidates): the candidate an unknown name was
 * probably meant to be, as the wrapper's own option check suggests it (for
 * the sync's client options); NULL when none is close.
 */
PG_FUNCTION_INFO_V1(owsync_closest_name);

Datum
owsync_closest_name(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	const char **candidates;
	int			ncandidates = 0;
	const char *closest;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	candidates = palloc(sizeof(char *) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
		if (!nulls[i])
			candidates[ncandidates++] = TextDatumGetCString(elems[i]);
	closest = closest_name(name, candidates, ncandidates);
	if (closest == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(closest));
}

/*
 * Validate the options of an object of owsync_fdw.  For ALTER, options is the
 * whole resulting list, so "required" means present in it.
 */
Datum
owsync_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	bool		seen[lengthof(valid_options)] = {0};
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);
		char	   *value = defGetString(def);
		int			i;

		for (i = 0; i < lengthof(valid_options); i++)
			if (valid_options[i].context == catalog &&
				strcmp(valid_options[i].name, def->defname) == 0)
				break;
		if (i == lengthof(valid_options))
			report_invalid_option(def->defname, catalog);
		if (seen[i])
			errorConflictingDefElem(def, NULL);
		seen[i] = true;

		if (strcmp(def->defname, "database") == 0)
		{
			/* Check privileges first: resolving a path reveals facts. */
			if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to set option \"database\""),
						 errdetail("Only superusers and roles with privileges of the pg_read_server_files role may set the path of a SQLite file.")));
			pfree(owsync_resolve_path(value, NULL));
		}
		else if (strcmp(def->defname, "busy_timeout") == 0)
			(void) parse_int_option(def->defname, value, 0, "milliseconds");
		else if (strcmp(def->defname, "batch_size") == 0)
			(void) parse_int_option(def->defname, value, 1, "rows");
		else if (strcmp(def->defname, "writable") == 0)
		{
			if (defGetBoolean(def))
				owsync_check_write_privilege(GetUserId(), NULL);
		}
		else if (strcmp(def->defname, "key") == 0 || strcmp(def->defname, "digest") == 0 ||
				 strcmp(def->defname, "raw") == 0)
			(void) defGetBoolean(def);
		else if (value[0] == '\0')	/* table, column_name */
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for option \"%s\"", def->defname),
					 errdetail("The value must not be empty.")));
	}

	if (catalog == ForeignServerRelationId && !seen[0])
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("option \"database\" is required for an owsync_fdw server"),
				 errhint("Give the absolute path of the SQLite file, as in OPTIONS (database '/path/to/webui.db').")));

	PG_RETURN_VOID();
}

/* GUC check hook: a list of absolute directory paths. */
static bool
check_allowed_directories(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval ? *newval : "");
	List	   *dirs;
	ListCell   *lc;
	bool		ok = true;

	if (!SplitDirectoriesString(raw, ',', &dirs))
	{
		GUC_check_errdetail("List syntax is invalid.");
		ok = false;
	}
	else
	{
		foreach(lc, dirs)
		{
			char	   *dir = (char *) lfirst(lc);

			if (!is_absolute_path(dir))
				GUC_check_errdetail("Directory \"%s\" is not an absolute path.", dir);
			else if (strlen(dir) >= MAXPGPATH - 1)	/* may have been truncated */
				GUC_check_errdetail("Directory \"%s\" is too long.", dir);
			else
				continue;
			ok = false;
			break;
		}
	}
	list_free_deep(dirs);
	pfree(raw);
	return ok;
}

void
owsync_define_gucs(void)
{
	/*
	 * GUC_LIST_INPUT lets SET take several literals ('/a', '/b'); a directory
	 * whose name holds a comma can be double-quoted inside the string.
	 */
	DefineCustomStringVariable("owsync.allowed_directories",
							   "Directories in which owsync_fdw may open SQLite files.",
							   "Comma-separated absolute paths; when empty, only superusers may set the path of a SQLite file.",
							   &owsync_allowed_directories,
							   "",
							   PGC_SUSET,
							   GUC_LIST_INPUT,
							   check_allowed_directories,
							   NULL,
							   NULL);
	DefineCustomIntVariable("owsync.history_retention",
							"How long owsync keeps the history of sync runs.",
							"Each sync deletes its client's runs older than this, and the pg_cron run details of the client's job; 0 keeps them all.",
							&owsync_history_retention,
							30 * 24 * 60,
							0,
							INT_MAX,
							PGC_SUSET,
							GUC_UNIT_MIN,
							NULL,
							NULL,
							NULL);
	DefineCustomStringVariable("owsync.cron_connection",
							   "How owsync reaches pg_cron when it runs in another database (through dblink).",
							   "A libpq connection string; when empty, the server's own socket and port, pg_cron's database (cron.database_name) and the extension's owner.",
							   &owsync_cron_connection,
							   "",
							   PGC_SUSET,
							   0,
							   NULL,
							   NULL,
							   NULL);
	/*
	 * Bookkeeping, not a security boundary: the mirror tables' triggers skip
	 * rows written while it is on (the sync's own), so anyone may set it.
	 */
	DefineCustomBoolVariable("owsync.applying",
							 "Set by the sync while it writes to a mirror: those writes are not recorded as mirror changes.",
							 NULL,
							 &owsync_applying,
							 false,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL,
							 NULL,
							 NULL);
	MarkGUCPrefixReserved("owsync");
}

/* The option called name in a list of DefElems, or NULL. */
static DefElem *
find_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, name) == 0)
			return def;
	}
	return NULL;
}

void
owsync_get_server_opts(ForeignServer *server, OwsyncServerOpts *opts)
{
	DefElem    *database = find_option(server->options, "database");
	DefElem    *timeout = find_option(server->options, "busy_timeout");
	DefElem    *writable = find_option(server->options, "writable");

	if (database == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("server \"%s\" has no option \"database\"", server->servername)));
	opts->database = defGetString(database);
	opts->busy_timeout_ms = timeout ?
		parse_int_option("busy_timeout", defGetString(timeout), 0, "milliseconds") :
		OWSYNC_DEFAULT_BUSY_TIMEOUT_MS;
	opts->writable = writable ? defGetBoolean(writable) : false;
}

/* Rows per INSERT statement: the table's option batch_size, else the server's. */
int
owsync_get_batch_size(ForeignServer *server, ForeignTable *table)
{
	DefElem    *def = find_option(table->options, "batch_size");

	if (def == NULL)
		def = find_option(server->options, "batch_size");
	return def ? parse_int_option("batch_size", defGetString(def), 1, "rows") :
		OWSYNC_DEFAULT_BATCH_SIZE;
}

char *
owsync_get_table_name(ForeignTable *table)
{
	DefElem    *def = find_option(table->options, "table");

	return def ? defGetString(def) : get_rel_name(table->relid);
}

/*
 * The options of one column of a foreign table, read in one pass over its
 * option list (the validator lets each appear once):
 *	column_name	the SQLite column; default: the attribute's name
 *	key			the column identifies the row (writes, error messages)
 *	digest		the column is not read from SQLite but computed there, as
 *				owsync_digest() of the table's other columns (digest.c)
 *	raw			the column reads its SQLite column as text "CLASS:HEX" (the
 *				storage class and the exact bytes), whatever it holds: how
 *				the sync keeps a value it cannot convert (quarantine)
 */
void
owsync_get_column_opts(Oid relid, AttrNumber attnum, OwsyncColumnOpts *opts)
{
	ListCell   *lc;

	memset(opts, 0, sizeof(*opts));
	foreach(lc, GetForeignColumnOptions(relid, attnum))
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "column_name") == 0)
			opts->name = defGetString(def);
		else if (strcmp(def->defname, "key") == 0)
			opts->key = defGetBoolean(def);
		else if (strcmp(def->defname, "digest") == 0)
			opts->digest = defGetBoolean(def);
		else if (strcmp(def->defname, "raw") == 0)
			opts->raw = defGetBoolean(def);
	}
	if (opts->name == NULL)
		opts->name = get_attname(relid, attnum, false);
}

/* The options of every column of a foreign table, by attnum - 1 (dropped: all zero). */
OwsyncColumnOpts *
owsync_get_all_column_opts(Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	OwsyncColumnOpts *cols = palloc0(sizeof(OwsyncColumnOpts) * Max(tupdesc->natts, 1));

	for (int i = 0; i < tupdesc->natts; i++)
		if (!TupleDescAttr(tupdesc, i)->attisdropped)
			owsync_get_column_opts(RelationGetRelid(rel), i + 1, &cols[i]);
	return cols;
}
