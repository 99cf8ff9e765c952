/*
 * sqlite_scan: the baseline of the scan benchmark.  Reads the given columns
 * of a table through the SQLite C API and copies each value out, as any
 * consumer of the values must (the wrapper copies them into datums), then
 * prints the bytes read and a checksum of the copies.
 *
 *   sqlite_scan FILE TABLE COLUMN [COLUMN ...]
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
	sqlite3    *db;
	sqlite3_stmt *stmt;
	char		sql[4096];
	long long	bytes = 0;
	unsigned long sum = 0;
	int			i;
	char	   *copy = NULL;
	size_t		copysize = 0;

	if (argc < 4)
	{
		fprintf(stderr, "usage: %s FILE TABLE COLUMN [COLUMN ...]\n", argv[0]);
		return 2;
	}
	snprintf(sql, sizeof(sql), "SELECT ");
	for (i = 3; i < argc; i++)
	{
		strncat(sql, i > 3 ? ", \"" : "\"", sizeof(sql) - strlen(sql) - 1);
		strncat(sql, argv[i], sizeof(sql) - strlen(sql) - 1);
		strncat(sql, "\"", sizeof(sql) - strlen(sql) - 1);
	}
	strncat(sql, " FROM \"", sizeof(sql) - strlen(sql) - 1);
	strncat(sql, argv[2], sizeof(sql) - strlen(sql) - 1);
	strncat(sql, "\"", sizeof(sql) - strlen(sql) - 1);

	if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
		sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
	{
		fprintf(stderr, "%s\n", sqlite3_errmsg(db));
		return 1;
	}
	while (sqlite3_step(stmt) == SQLITE_ROW)
	{
		for (i = 0; i < argc - 3; i++)
		{
			const unsigned char *p = sqlite3_column_text(stmt, i);
			size_t		n = sqlite3_column_bytes(stmt, i);

			if (n + 1 > copysize)
			{
				copysize = 2 * (n + 1);
				copy = realloc(copy, copysize);
			}
			if (p)
				memcpy(copy, p, n);
			sum += n ? (unsigned char) copy[n / 2] : 0;
			bytes += n;
		}
	}
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	free(copy);
	printf("%lld %lu\n", bytes, sum);
	return 0;
}
