/* statefile: the agent's records in its [agent] state_dir, one JSON file per record, written
 * atomically (a temporary file, fsync, rename), so what a restarted agent reads back is a
 * whole record or none.
 *
 * The file names are ruled here and only here: "<kind>-<migration>.json", kind being
 *   job    an outgoing migration this host runs (job.c writes it, job_recover reads it back);
 *   dest   an incoming migration this host prepared (pre_live_migration; rollback and
 *          post_live_migration remove it; a guest resuming here is matched against it);
 *   epoch  the highest owner's epoch seen for a migration (the fencing of rpc.c).
 * No agent, no libvirt, no AMQP: every function takes the state dir. Loop thread only. */
#ifndef FERRY_STATEFILE_H
#define FERRY_STATEFILE_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "log.h"
#include "util.h"

/* The kinds of record, one file name prefix each. */
typedef enum sf_kind {
    SF_JOB = 0, /* "job-<migration>" */
    SF_DEST,    /* "dest-<migration>" */
    SF_EPOCH,   /* "epoch-<migration>" */
} sf_kind;

/* Returns the record name of migration's record of kind ("dest-12"; no directory, no
 * ".json"); the caller frees it. */
char *sf_name(sf_kind kind, int64_t migration);

/* Writes obj (borrowed) atomically as <dir>/<name>.json, making dir when missing. Returns 0,
 * or -1 after logging what failed with lf's fields (may be NULL), migration= taken from name
 * when lf has none. */
int sf_write(const char *dir, const char *name, json_object *obj, const log_fields *lf);
/* Reads <dir>/<name>.json: a new object the caller puts, or NULL when the file is absent, not
 * JSON, or not a JSON object. */
json_object *sf_read(const char *dir, const char *name);
/* Removes <dir>/<name>.json; an absent file is fine. */
void sf_remove(const char *dir, const char *name);

/* Called by sf_each for one record: its migration id and its object (borrowed for the call).
 * Returns 0 to go on, non-zero to stop. */
typedef int (*sf_visit)(void *arg, int64_t migration, json_object *rec);
/* Calls fn(arg, ...) for every readable record of kind in dir, in directory order; a missing
 * dir has none. */
void sf_each(const char *dir, sf_kind kind, sf_visit fn, void *arg);

/* A job record, "job-<migration>": what a restarted agent needs of one outgoing migration.
 * Every pointer is borrowed. */
typedef struct sf_job {
    int64_t migration;
    const char *instance;    /* the domain's UUID (NULL read back: not a usable record) */
    const char *name;        /* the domain's name; written "" when NULL */
    const char *instance_id; /* its i-xxxxxxxx id; left out when NULL */
    const char *dest;        /* the destination host; written "" when NULL */
    const char *uri;         /* the libvirt migration URI; written "" when NULL */
    const char *data_address; /* the destination's migration network address; left out when NULL */
    const char *tls_name;     /* the destination's certificate name; left out when NULL */
    const char *state;       /* the job's state word ("running", "completed", ...) */
    int post_copy;           /* post-copy allowed */
    int postcopy_active;     /* switched to post-copy */
    const char *error;       /* why it failed; left out when NULL */
    json_object *stats;      /* the final statistics; left out when NULL */
} sf_job;

/* Writes r as its job record (sf_write: 0, or -1 logged with lf). */
int sf_job_write(const char *dir, const sf_job *r, const log_fields *lf);
/* Called by sf_job_each with one job record (r and its strings valid during the call only).
 * Returns 0 to go on, non-zero to stop. */
typedef int (*sf_job_visit)(void *arg, const sf_job *r);
/* Calls fn(arg, ...) for every readable job record in dir; absent members read back NULL (0
 * for the flags). */
void sf_job_each(const char *dir, sf_job_visit fn, void *arg);

/* The incoming migration this host prepared for domain uuid (its dest record), or 0 when none;
 * the record's i-xxxxxxxx id goes to instance_id (n bytes; "" when unknown). */
int64_t sf_dest_find(const char *dir, const char *uuid, char *instance_id, size_t n);

#endif
