#include "schema.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* An arbitrary constant naming ferry's schema lock among advisory locks. */
#define SCHEMA_LOCK_KEY "7262010"

int schema_latest(void)
{
    return schema_migration_count ? schema_migrations[schema_migration_count - 1].version : 0;
}

static int read_version(db_conn *db, int *version)
{
    _cleanup_pq_ PGresult *r = NULL;
    /* in the search_path: public, or the schema of a least-privilege role (deploy/postgres) */
    if (db_exec(db, &r, "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL) < 0)
        return -1;
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        *version = 0;
        return 0;
    }
    _cleanup_pq_ PGresult *v = NULL;
    if (db_exec(db, &v, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL) < 0)
        return -1;
    *version = atoi(PQgetvalue(v, 0, 0));
    return 0;
}

int schema_current(db_conn *db, int *version, char **err)
{
    if (read_version(db, version) < 0) {
        *err = xasprintf("could not read the schema version: %s", db_error(db));
        return -1;
    }
    return 0;
}

typedef struct {
    int from, to;
} upgrade_state;

static int upgrade_tx(db_conn *db, void *arg, char **err)
{
    upgrade_state *st = arg;
    const char *key[] = {SCHEMA_LOCK_KEY};
    if (db_exec(db, NULL, "SELECT pg_advisory_xact_lock($1::bigint)", 1, key) < 0)
        return -1;
    if (db_exec(db, NULL,
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                0, NULL) < 0)
        return -1;
    int cur;
    if (read_version(db, &cur) < 0)
        return -1;
    st->from = st->to = cur;
    if (cur > schema_latest()) {
        *err = xasprintf("cannot upgrade: the database schema is at version %d, newer than this "
                         "ferry (which knows up to %d); run a newer ferry",
                         cur, schema_latest());
        return -1;
    }
    for (int i = 0; i < schema_migration_count; i++) {
        const schema_migration *m = &schema_migrations[i];
        if (m->version <= cur)
            continue;
        /* a multi-statement script: simple query protocol, no parameters, constant text */
        PGresult *r = PQexec(db_pg(db), m->sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            *err = xasprintf("could not apply %s: %s", m->name, PQresultErrorMessage(r));
            size_t n = strlen(*err);
            if (n && (*err)[n - 1] == '\n')
                (*err)[n - 1] = '\0';
            PQclear(r);
            return -1;
        }
        PQclear(r);
        char ver[16];
        snprintf(ver, sizeof(ver), "%d", m->version);
        const char *p[] = {ver, m->name};
        if (db_exec(db, NULL, "INSERT INTO schema_version (version, name) VALUES ($1::integer, $2)", 2, p) < 0)
            return -1;
        st->to = m->version;
    }
    return 0;
}

int schema_upgrade(db_conn *db, int *from, int *to, char **err)
{
    upgrade_state st = {0, 0};
    char *e = NULL;
    if (db_tx(db, "READ COMMITTED", upgrade_tx, &st, NULL, &e) < 0) {
        *err = e;
        return -1;
    }
    if (from)
        *from = st.from;
    if (to)
        *to = st.to;
    return 0;
}

int schema_check(db_conn *db, char **err)
{
    int v;
    if (schema_current(db, &v, err) < 0)
        return -1;
    if (v < schema_latest()) {
        *err = xasprintf("the database schema is at version %d, this ferry needs %d: run "
                         "'ferry-scheduler --db-upgrade'",
                         v, schema_latest());
        return -1;
    }
    if (v > schema_latest()) {
        *err = xasprintf("the database schema is at version %d, newer than this ferry (which "
                         "knows up to %d): run a newer ferry",
                         v, schema_latest());
        return -1;
    }
    return 0;
}
