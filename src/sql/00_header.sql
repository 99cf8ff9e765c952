-- owsync_fdw extension script, assembled by make from src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION owsync_fdw" to load this file. \quit
