/* migrate: the blocking libvirt call of one outgoing live migration, on a worker thread.
 *
 * virDomainMigrateToURI3 returns only when the migration is over: it runs on a detached
 * thread of its own, which posts the outcome to the loop thread through the agent's evq.
 * What to do with the outcome (and everything else about the job) is job.c's. */
#ifndef FERRY_MIGRATE_H
#define FERRY_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "evq.h"
#include "log.h"
#include "lv.h"
#include "rpcin.h"

/* How virDomainMigrateToURI3 ended. */
typedef enum migrate_outcome {
    MIGRATE_OK = 0,  /* the guest runs on the destination */
    MIGRATE_ABORTED, /* the job was aborted (VIR_ERR_OPERATION_ABORTED) */
    MIGRATE_FAILED,  /* any other failure, before or during the migration */
} migrate_outcome;

/* Called on the loop thread with the outcome of the migration of `key` (owner and key as given
 * to migrate_start); error (borrowed for the call) is libvirt's or the agent's reason, NULL
 * on success. */
typedef void (*migrate_cb)(void *owner, int64_t key, migrate_outcome out, const char *error);

/* What to migrate, and how (all borrowed: migrate_start copies what it keeps). */
typedef struct migrate_req {
    const char *uuid;     /* the domain */
    const char *uri;      /* the libvirt URI of the destination ([libvirt] live_migration_uri) */
    const job_opts *o;    /* the migration's options */
    bool tls;             /* [libvirt] migrate_tls: QEMU encrypts the stream itself */
    const char *data_address; /* the destination's migration network address (guard_address, no
                               * port; NULL: libvirt's own choice): the stream goes to tcp://it and
                               * the destination listens on it; with TLS the certificate is still
                               * checked against tls_name */
    const char *tls_name;     /* the destination's management address (its certificate's name) */
    bool resume;          /* resume a post-copy migration paused by a broken stream
                           * (VIR_MIGRATE_POSTCOPY | VIR_MIGRATE_POSTCOPY_RESUME, same URI and params) */
    const log_fields *lf; /* the job's log fields (copied) */
} migrate_req;

/* Starts a detached thread that migrates req->uuid over lv and posts the outcome through q to
 * cb(owner, key, ...) exactly once; owner must outlive it (the agent does). Returns 0, or
 * the pthread_create error number (nothing started, nothing will be posted). */
int migrate_start(lv_conn *lv, evq *q, const migrate_req *req, migrate_cb cb, void *owner, int64_t key) FERRY_WUR;

#endif
