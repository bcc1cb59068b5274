/* jobstats: the statistics of a libvirt migration job — their JSON (compute-agent/RPC.md) and
 * a poller that reads them off the loop thread.
 *
 * virDomainGetJobStats may wait for the domain's job lock (for seconds while a migration
 * finishes): the poller runs on a thread of its own per job, never on the loop thread, and
 * posts what it read to the loop through the agent's evq. */
#ifndef FERRY_JOBSTATS_H
#define FERRY_JOBSTATS_H

#include <stdint.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>

#include "evq.h"
#include "log.h"
#include "lv.h"

typedef struct jobstats_poller jobstats_poller;

/* Converts libvirt job stats (borrowed) of job type `type` to the JSON of RPC.md (a new
 * object the caller puts). Keys libvirt adds later are ignored. */
json_object *jobstats_json(virTypedParameterPtr params, int n, int type);

/* What one poll found, given to the callback on the loop thread. */
typedef struct jobstats_reading {
    int gone;           /* the domain is not here any more */
    int type;           /* VIR_DOMAIN_JOB_* when !gone */
    json_object *stats; /* jobstats_json of the job (borrowed for the call); NULL when gone */
} jobstats_reading;

/* Called on the loop thread with one reading of the job of `key` (owner and key as given to
 * jobstats_poll_start; the poller itself may be stopped by then). */
typedef void (*jobstats_cb)(void *owner, int64_t key, const jobstats_reading *r);

/* Starts a detached thread that reads domain uuid's job stats every ms milliseconds through
 * lv and posts each reading through q to cb(owner, key, ...); owner must outlive every
 * posted reading (the agent does). Returns the poller, which the caller stops with
 * jobstats_poll_stop, or NULL (logged with lf) when the thread cannot start. */
jobstats_poller *jobstats_poll_start(lv_conn *lv, evq *q, const char *uuid, int ms, jobstats_cb cb, void *owner,
                                     int64_t key, const log_fields *lf);
/* Stops p: no reading is posted after this returns (one posted before may still arrive),
 * and p frees itself when its thread ends; NULL is accepted. */
void jobstats_poll_stop(jobstats_poller *p);

#endif
