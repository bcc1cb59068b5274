/* schema: the numbered, forward-only SQL migrations of sql/, compiled in, and the upgrade
 * that applies them. */
#ifndef FERRY_SCHEMA_H
#define FERRY_SCHEMA_H

#include "db.h"

typedef struct schema_migration {
    int version;      /* from the file name's first three digits */
    const char *name; /* the file name, e.g. "001_initial.sql" */
    const char *sql;  /* its text */
} schema_migration;

/* Every migration in version order (generated from sql/ at build time). */
extern const schema_migration schema_migrations[];
extern const int schema_migration_count;

/* Returns the newest schema version this build knows. */
int schema_latest(void);
/* Reads the database's schema version into *version (0 when ferry's schema is absent).
 * Returns 0, or -1 with *err (caller frees). */
int schema_current(db_conn *db, int *version, char **err) FERRY_WUR;
/* Applies every pending migration in one transaction under an advisory lock, so concurrent
 * upgrades are safe and a second run changes nothing. Refuses a database newer than this
 * build. *from and *to (optional) receive the versions before and after. Returns 0, or -1
 * with *err (caller frees). */
int schema_upgrade(db_conn *db, int *from, int *to, char **err) FERRY_WUR;
/* Returns 0 when the database is exactly at schema_latest(); -1 with *err saying what to do. */
int schema_check(db_conn *db, char **err) FERRY_WUR;

#endif
