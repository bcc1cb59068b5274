/* lv: the agent's connection to its own libvirtd.
 *
 * libvirt's default event loop runs on a dedicated thread (lv owns it): its handle/timeout
 * model maps poorly onto libevent, and every callback only copies what it got and posts it
 * to the agent's loop thread through an evq, so all agent logic stays single-threaded.
 * Keepalive is on; when libvirtd goes away (close callback, or a failed call) lv reconnects
 * with backoff and re-registers its domain event callbacks. */
#ifndef FERRY_LV_H
#define FERRY_LV_H

#include <libvirt/libvirt.h>

#include "evq.h"
#include "util.h"

typedef struct lv_conn lv_conn;

/* A domain lifecycle event, as delivered on the loop thread (all strings owned by lv, valid
 * during the callback). event/detail are libvirt's VIR_DOMAIN_EVENT_* numbers; the names are
 * lowercase words: event "started", "suspended", "resumed", "stopped", "defined", "undefined",
 * "shutdown", "pmsuspended", "crashed"; detail e.g. "booted", "migrated", "postcopy",
 * "postcopy_failed", "destroyed", "failed", "paused", "unpaused". */
typedef struct lv_lifecycle {
    const char *uuid;
    const char *name;
    int event;
    int detail;
    const char *event_name;
    const char *detail_name;
} lv_lifecycle;

/* What the agent wants to hear; every callback runs on the loop thread; arg is borrowed. */
typedef struct lv_callbacks {
    void (*lifecycle)(void *arg, const lv_lifecycle *ev);
    /* VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION: the source finished memory iteration n */
    void (*migration_iteration)(void *arg, const char *uuid, int iteration);
    /* VIR_DOMAIN_EVENT_ID_JOB_COMPLETED: the final job stats (borrowed typed params) */
    void (*job_completed)(void *arg, const char *uuid, virTypedParameterPtr params, int nparams);
    /* the connection came up (up=1: callbacks registered) or went down (up=0, why) */
    void (*connection)(void *arg, int up, const char *why);
    void *arg;
} lv_callbacks;

/* Starts libvirt's event thread, connects to uri (with keepalive interval/count; interval
 * -1 disables it) and registers the domain events. Callbacks are posted through q. If the
 * first connect fails it keeps retrying in the background (connection callback tells).
 * Returns 0, or -1 with *err (caller frees) when the event loop cannot start. Caller frees
 * with lv_close. */
int lv_open(evq *q, const char *uri, int keepalive_interval, int keepalive_count, const lv_callbacks *cb, lv_conn **out,
            char **err) FERRY_WUR;
/* Deregisters, closes and stops the event thread; NULL is accepted. */
void lv_close(lv_conn *c);
/* Returns the live connection with a new reference the caller drops with virConnectClose, or
 * NULL while disconnected (then *why, if given, is set to a borrowed reason). Safe from any
 * thread. */
virConnectPtr lv_ref(lv_conn *c, const char **why);
/* Returns the last libvirt error text on this thread ("unknown libvirt error" if none);
 * borrowed, valid until the next libvirt call on this thread. */
const char *lv_errmsg(void);

#endif
