/* db: the scheduler's PostgreSQL connection over libpq.
 *
 * Parameters only: every statement is a constant SQL text with $n placeholders and text
 * parameters, never SQL built from strings. A lost connection is reopened on the next call,
 * except inside db_tx: there every statement after the loss fails (SQLSTATE 08003) and db_tx
 * runs the whole transaction function again on a new connection, as it does on a
 * serialization failure (40001) or deadlock (40P01); never does the rest of a transaction run
 * on a new session. A connection lost during COMMIT is reported, not retried. */
#ifndef FERRY_DB_H
#define FERRY_DB_H

#include <libpq-fe.h>

#include "config.h"
#include "util.h"

typedef struct db_conn db_conn;

typedef struct db_options {
    const char *dsn;              /* libpq connection string (borrowed during db_open) */
    int connect_timeout_s;        /* 0 = libpq default */
    int statement_timeout_ms;     /* 0 = none */
    int tx_retries;               /* extra attempts of db_tx on a retryable failure */
    int unprepared;               /* 1: no prepared statements (a pooler that drops them) */
    const char *application_name; /* shown in pg_stat_activity; NULL = "ferry" */
} db_options;

/* Fills o from cfg's [database] section; the strings stay owned by cfg. */
void db_options_from_config(const ferry_config *cfg, const char *app_name, db_options *o);
/* Connects to PostgreSQL; on success *out is a new connection the caller frees with
 * db_close. On failure returns -1 and *err (caller frees) says why, in libpq's words. */
int db_open(const db_options *opt, db_conn **out, char **err) FERRY_WUR;
/* Closes the connection and frees it; NULL is accepted. */
void db_close(db_conn *db);
/* From now on a lost connection is not reopened once *stop (borrowed, written by another
 * thread with an atomic store) is non-zero: statements then fail at once with SQLSTATE 08006. */
void db_set_stop(db_conn *db, const int *stop);
/* Returns the underlying libpq connection (borrowed; NULL while disconnected). */
PGconn *db_pg(db_conn *db);
/* Returns the last error text of this connection (borrowed; "" when none). */
const char *db_error(const db_conn *db);
/* Returns the SQLSTATE of the last failed statement (borrowed; "" when none or not SQL). */
const char *db_sqlstate(const db_conn *db);
/* After a failed db_exec or db_tx: returns 1 when running it again may succeed (no
 * connection, or SQLSTATE class 08 connection, 40001 / 40P01, 53 insufficient resources,
 * 55P03 lock not available, 57014 statement timeout, 57P01-57P05 server shut down or
 * restarting, 58 system error), 0 when it cannot (constraints, data, a trigger's exception,
 * a transaction body's own refusal). */
int db_failure_retryable(const db_conn *db);
/* Reconnects if the connection is bad. Returns 0 when usable, -1 (see db_error). */
int db_ensure(db_conn *db) FERRY_WUR;

/* Runs one statement with n text parameters (NULL element = SQL NULL), reconnecting first if
 * the connection was lost, but not inside db_tx (then it fails with SQLSTATE 08003). On
 * success returns 0 and, when res is not NULL, *res holds the result (caller PQclear()s it).
 * On failure returns -1; db_error() and db_sqlstate() say why. */
int db_exec(db_conn *db, PGresult **res, const char *sql, int n, const char *const *params) FERRY_WUR;

/* The transaction body: returns 0 to commit, -1 to roll back (the failure being in db_error,
 * or the body's own reason in *err, caller-freed). It may run more than once. */
typedef int (*db_tx_fn)(db_conn *db, void *arg, char **err);
/* Runs fn inside BEGIN ... COMMIT at the given isolation ("READ COMMITTED", "REPEATABLE READ",
 * "SERIALIZABLE"), retrying on 40001/40P01 and on a connection lost before COMMIT (from BEGIN,
 * on a new connection: nothing of the failed attempt is kept). Returns 0
 * when committed; -1 with *err (caller frees) otherwise. *attempts, if given, counts tries. */
int db_tx(db_conn *db, const char *isolation, db_tx_fn fn, void *arg, int *attempts, char **err) FERRY_WUR;

/* Clears *r; for use with __attribute__((cleanup)). */
void pq_clearp(PGresult **r);
#define _cleanup_pq_ _cleanup_(pq_clearp)

#endif
