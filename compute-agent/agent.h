/* agent: the state of one ferry-agent process and what its modules share.
 *
 * Everything here lives on the libevent loop's thread; libvirt's event thread and the
 * migration worker threads only post work to it through `q`.
 *
 * The agent's files, each calling only the ones below it (no circles), bottom to top (the
 * same map with what each owns: docs/DESIGN.md "The modules"):
 *
 *   main.c       wiring: options, configuration, logging, the loop; connects the modules
 *   rpc.c        the RPCs of ferry.compute.<host> (RPC.md):  -> rpcmig, job, statefile, guard,
 *                parsing, fencing, dispatch, the reply          rpcin
 *   rpcmig.c     the migration RPCs' work                   -> job, statefile, domxml, guard,
 *                                                              inventory, rpcin, lv
 *   job.c        outgoing migrations: lifecycle, acting on   -> jobrule, events, migrate,
 *                jobrule's decisions, restart recovery          jobstats, statefile, guard,
 *                                                              inventory, lv
 *   events.c     what the agent publishes on ferry.events   -> statefile, inventory, lv
 *   migrate.c    virDomainMigrateToURI3 on a worker thread  -> jobrule, lv
 *   jobstats.c   a job's statistics, their poller thread     -> lv
 *   jobrule.c    a job's decisions, pure functions           -> rpcin (job_opts), proto
 *   statefile.c  the records of [agent] state_dir            (common only)
 *   rpcin.c      RPC bodies checked                          -> guard, domxml
 *   inventory.c  the heartbeat's inventory                   -> domxml, lvxml
 *   domxml.c     what a domain's XML says                    -> lvxml
 *   lvxml.c, guard.c, lv.c                                   (common only; lvxml on libxml2)
 *   common/      log, util, config, evq, mq, msg, proto, trust, app
 */
#ifndef FERRY_AGENT_H
#define FERRY_AGENT_H

#include <pthread.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <libvirt/libvirt.h>

#include "config.h"
#include "evq.h"
#include "guard.h"
#include "job.h"
#include "log.h"
#include "lv.h"
#include "mq.h"
#include "rpcin.h"
#include "trust.h"

typedef struct agent {
    ferry_config *cfg;
    struct event_base *base;
    evq *q;
    mq_conn *mq;
    lv_conn *lv;
    char *host;
    char *address; /* where other hosts reach this one for migrations */
    char *queue;
    job *jobs;
    struct event *heartbeat_ev;
    struct workq *rpcq; /* the RPC worker: the methods that wait (rpc.c) */
    guard_probe_memo probes; /* the probes check_destination found: the RPC worker's only */
    int lv_up;
    char boot[37];  /* this process's id: heartbeats are ordered by (boot, seq) */
    int64_t hb_seq; /* the last heartbeat's number */
} agent;

/* ---- RPC (rpc.c) -------------------------------------------------------------------------- */
/* The consumer of ferry.compute.<host>: dispatches one request (owns d). */
void rpc_on_request(mq_conn *c, mq_delivery *d, void *arg);

#endif
