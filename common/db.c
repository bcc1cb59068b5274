#include "db.h"

#include <stdint.h>
#include <string.h>

#include "db_priv.h"
#include "log.h"

/* Statements with parameters are prepared once per connection (PQprepare) and then only
 * executed: parsing and planning each of a claim's statements again was a large part of its
 * cost in the server. At most this many per connection; more run unprepared. */
#define DB_PREPARED_MAX 256

typedef struct prepared {
    uint64_t hash;
    char *sql;
} prepared;

struct db_conn {
    PGconn *pg;
    char *dsn;
    char *app;
    int connect_timeout_s;
    int statement_timeout_ms;
    int tx_retries;
    int unprepared;
    char *error;
    char sqlstate[6];
    prepared prep[DB_PREPARED_MAX]; /* this connection's prepared statements: name f<gen>_<index> */
    int nprep;
    unsigned prep_gen; /* bumped when the cache is dropped, so old names are never reused */
    int in_tx;         /* inside db_tx's BEGIN ... COMMIT: a lost connection is not reopened */
    const int *stop;   /* when set and non-zero (read atomically), no new connection is opened */
    int failures;      /* failed attempts to reopen the connection in a row */
    int64_t retry_at;  /* mono_ms before which no new attempt is made (failures > 0) */
};

/* forgets the prepared statements (a new connection has none; after a schema change the
 * server's may no longer fit) */
static void prep_drop(db_conn *db)
{
    for (int i = 0; i < db->nprep; i++)
        free(db->prep[i].sql);
    db->nprep = 0;
    db->prep_gen++;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void set_error(db_conn *db, const char *sqlstate, const char *fmt, ...) FERRY_PRINTF(3, 4);

static void set_error(db_conn *db, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    /* libpq messages end in a newline; one log line wants none */
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    free(db->error);
    db->error = msg;
    strlcpy_f(db->sqlstate, sqlstate ? sqlstate : "", sizeof(db->sqlstate));
}

static int db_connect(db_conn *db)
{
    prep_drop(db);
    if (db->pg) {
        PQfinish(db->pg);
        db->pg = NULL;
    }
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", db->connect_timeout_s);
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {db->dsn, db->app, db->connect_timeout_s > 0 ? timeout : NULL, NULL};
    if (!vals[2])
        keys[2] = NULL;
    /* expand_dbname=1: the dsn may be a keyword string or a postgresql:// URI */
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        set_error(db, "", "could not connect to PostgreSQL: %s", pg ? PQerrorMessage(pg) : "out of memory");
        PQfinish(pg);
        return -1;
    }
    db->pg = pg;
    if (db->statement_timeout_ms > 0) {
        char v[24];
        snprintf(v, sizeof(v), "%d", db->statement_timeout_ms);
        const char *p[] = {v};
        PGresult *r = PQexecParams(pg, "SELECT set_config('statement_timeout', $1, false)", 1, NULL, p, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok)
            set_error(db, PQresultErrorField(r, PG_DIAG_SQLSTATE), "could not set statement_timeout: %s",
                      PQresultErrorMessage(r));
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

void db_options_from_config(const ferry_config *cfg, const char *app_name, db_options *o)
{
    memset(o, 0, sizeof(*o));
    o->dsn = cfg->database.dsn;
    o->connect_timeout_s = (int)cfg->database.connect_timeout_s;
    o->statement_timeout_ms = (int)cfg->database.statement_timeout_ms;
    o->tx_retries = (int)cfg->database.tx_retries;
    o->unprepared = !cfg->database.prepared_statements;
    o->application_name = app_name;
}

int db_open(const db_options *opt, db_conn **out, char **err)
{
    db_conn *db = xcalloc(1, sizeof(*db));
    db->dsn = xstrdup(opt->dsn ? opt->dsn : "");
    db->app = xstrdup(opt->application_name ? opt->application_name : "ferry");
    db->connect_timeout_s = opt->connect_timeout_s;
    db->statement_timeout_ms = opt->statement_timeout_ms;
    db->tx_retries = opt->tx_retries;
    db->unprepared = opt->unprepared;
    db->error = xstrdup("");
    if (db_connect(db) < 0) {
        *err = xstrdup(db->error);
        db_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

void db_close(db_conn *db)
{
    if (!db)
        return;
    if (db->pg)
        PQfinish(db->pg);
    prep_drop(db);
    free(db->dsn);
    free(db->app);
    free(db->error);
    free(db);
}

void db_set_stop(db_conn *db, const int *stop)
{
    db->stop = stop;
}

PGconn *db_pg(db_conn *db)
{
    return db->pg;
}

const char *db_error(const db_conn *db)
{
    return db->error ? db->error : "";
}

const char *db_sqlstate(const db_conn *db)
{
    return db->sqlstate;
}

int db_ensure(db_conn *db)
{
    if (db->pg && PQstatus(db->pg) == CONNECTION_OK)
        return 0;
    if (db->stop && __atomic_load_n(db->stop, __ATOMIC_ACQUIRE)) {
        set_error(db, "08006", "PostgreSQL connection closed: the process is stopping");
        return -1;
    }
    /* a server that refuses (down, or a standby not yet promoted behind a multi-host DSN with
     * target_session_attrs=read-write) is not asked again on every call: the callers' timers
     * would reconnect (and log) every few milliseconds; meanwhile the last attempt's error stands */
    int64_t now = mono_ms();
    if (db->failures > 0 && now < db->retry_at)
        return -1;
    if (db->failures == 0)
        log_warn(NULL, "PostgreSQL connection lost, reconnecting");
    if (db_connect(db) < 0) {
        db->failures++;
        db->retry_at = now + db_retry_delay_ms(db->failures);
        if (db->failures == 1 || db->failures % 30 == 0)
            log_warn(NULL, "could not reconnect to PostgreSQL (%d attempts so far; trying again every %d ms at most): %s",
                     db->failures, db_retry_delay_ms(db->failures), db->error);
        return -1;
    }
    if (db->failures > 0)
        log_info(NULL, "PostgreSQL connection reopened after %d failed attempts", db->failures);
    db->failures = 0;
    return 0;
}

int db_retry_delay_ms(int failures)
{
    if (failures < 1)
        return 0;
    if (failures > 6)
        return DB_RETRY_MAX_MS;
    int ms = 50 << (failures - 1);
    return ms < DB_RETRY_MAX_MS ? ms : DB_RETRY_MAX_MS;
}

/* The name of sql's prepared statement on this connection (in name), prepared now if it was
 * not; NULL to run it unprepared (no parameters, or the cache is full). A failed PQprepare
 * leaves its result in *failed. */
static const char *prep_name(db_conn *db, const char *sql, int n, char name[32], PGresult **failed)
{
    if (n <= 0 || db->unprepared)
        return NULL;
    uint64_t h = fnv1a(sql);
    int i = 0;
    while (i < db->nprep && (db->prep[i].hash != h || strcmp(db->prep[i].sql, sql) != 0))
        i++;
    if (i == DB_PREPARED_MAX)
        return NULL;
    snprintf(name, 32, "f%u_%d", db->prep_gen, i);
    if (i < db->nprep)
        return name;
    PGresult *r = PQprepare(db->pg, name, sql, n, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        *failed = r;
        return NULL;
    }
    PQclear(r);
    db->prep[i].hash = h;
    db->prep[i].sql = xstrdup(sql);
    db->nprep++;
    return name;
}

static int conn_lost(const db_conn *db)
{
    return !db->pg || PQstatus(db->pg) != CONNECTION_OK;
}

int db_exec(db_conn *db, PGresult **res, const char *sql, int n, const char *const *params)
{
    /* inside a transaction a new session would run the rest of it outside the transaction,
     * its first part lost with the old session: the attempt fails, db_tx runs it again whole */
    if (db->in_tx && conn_lost(db)) {
        set_error(db, "08003",
                  "PostgreSQL connection lost inside a transaction: not reconnecting before the "
                  "transaction is retried");
        return -1;
    }
    if (db_ensure(db) < 0)
        return -1;
    PGresult *r = NULL;
    char buf[32];
    const char *name = prep_name(db, sql, n, buf, &r);
    if (!r)
        r = name ? PQexecPrepared(db->pg, name, n, params, NULL, NULL, 0)
                 : PQexecParams(db->pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        if (PQstatus(db->pg) != CONNECTION_OK)
            set_error(db, state ? state : "08006", "PostgreSQL connection lost: %s", PQerrorMessage(db->pg));
        else
            set_error(db, state, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(db->pg));
        /* a prepared statement the schema no longer fits, or one the server forgot: prepare
         * again next time (under new names) */
        if (state && (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0))
            prep_drop(db);
        PQclear(r);
        return -1;
    }
    set_error(db, "", "%s", "");
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

static int retryable(const db_conn *db)
{
    return strcmp(db->sqlstate, "40001") == 0 || strcmp(db->sqlstate, "40P01") == 0;
}

int db_failure_retryable(const db_conn *db)
{
    const char *st = db->sqlstate;
    if (conn_lost(db))
        return 1;
    if (!*st) /* connected, no SQL error: the body's own refusal */
        return 0;
    return strncmp(st, "08", 2) == 0 || strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 ||
           strncmp(st, "53", 2) == 0 || strcmp(st, "55P03") == 0 || strcmp(st, "57014") == 0 ||
           strncmp(st, "57P0", 4) == 0 || strncmp(st, "58", 2) == 0;
}

int db_tx(db_conn *db, const char *isolation, db_tx_fn fn, void *arg, int *attempts, char **err)
{
    char begin[64];
    snprintf(begin, sizeof(begin), "BEGIN ISOLATION LEVEL %s", isolation ? isolation : "READ COMMITTED");
    int tries = 0;
    for (;;) {
        tries++;
        if (attempts)
            *attempts = tries;
        char *body_err = NULL;
        int in_commit = 0;
        if (db_exec(db, NULL, begin, 0, NULL) == 0) {
            db->in_tx = 1;
            /* a body may go on after a failed statement: if the connection went meanwhile,
             * COMMIT is not sent (it would not commit what the lost session did) */
            if (fn(db, arg, &body_err) == 0 && !conn_lost(db)) {
                in_commit = 1;
                if (db_exec(db, NULL, "COMMIT", 0, NULL) == 0) {
                    db->in_tx = 0;
                    return 0;
                }
            }
            db->in_tx = 0;
        }
        /* a failure of the body with its own reason is final; so is any non-retryable one */
        int again = !body_err && tries <= db->tx_retries && (retryable(db) || (conn_lost(db) && !in_commit));
        if (!conn_lost(db)) {
            PGresult *r = PQexec(db->pg, "ROLLBACK");
            PQclear(r);
        }
        if (!again) {
            if (body_err)
                *err = body_err;
            else if (in_commit && conn_lost(db))
                *err = xasprintf("connection lost during COMMIT, outcome unknown: %s", db_error(db));
            else
                *err = xasprintf("%s%s%s", db_error(db), *db->sqlstate ? " (SQLSTATE " : "",
                                 *db->sqlstate ? db->sqlstate : "");
            if (!body_err && *db->sqlstate) {
                char *e = xasprintf("%s)", *err);
                free(*err);
                *err = e;
            }
            return -1;
        }
        free(body_err);
        log_debug(NULL, "retrying transaction after %s (attempt %d)", db->sqlstate, tries + 1);
    }
}

void pq_clearp(PGresult **r)
{
    if (*r)
        PQclear(*r);
}
