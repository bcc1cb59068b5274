/* jobstats: a migration job's statistics and their poller (jobstats.h). */
#include "jobstats.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "util.h"

json_object *jobstats_json(virTypedParameterPtr p, int n, int type)
{
    json_object *o = json_object_new_object();
    static const struct {
        const char *field, *key;
    } map[] = {
        {VIR_DOMAIN_JOB_TIME_ELAPSED, "time_elapsed_ms"},
        {VIR_DOMAIN_JOB_DOWNTIME, "downtime_ms"},
        {VIR_DOMAIN_JOB_DATA_TOTAL, "data_total"},
        {VIR_DOMAIN_JOB_DATA_PROCESSED, "data_processed"},
        {VIR_DOMAIN_JOB_DATA_REMAINING, "data_remaining"},
        {VIR_DOMAIN_JOB_MEMORY_TOTAL, "memory_total"},
        {VIR_DOMAIN_JOB_MEMORY_PROCESSED, "memory_processed"},
        {VIR_DOMAIN_JOB_MEMORY_REMAINING, "memory_remaining"},
        {VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, "dirty_rate"},
        {VIR_DOMAIN_JOB_MEMORY_ITERATION, "iteration"},
        {VIR_DOMAIN_JOB_MEMORY_BPS, "memory_bps"},
        {VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS, "postcopy_requests"},
        {VIR_DOMAIN_JOB_DISK_TOTAL, "disk_total"},
        {VIR_DOMAIN_JOB_DISK_PROCESSED, "disk_processed"},
        {VIR_DOMAIN_JOB_DISK_REMAINING, "disk_remaining"},
        {VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE, "auto_converge_throttle"},
        {VIR_DOMAIN_JOB_SETUP_TIME, "setup_time_ms"},
        {VIR_DOMAIN_JOB_COMPRESSION_CACHE, "compression_cache"},
        {VIR_DOMAIN_JOB_COMPRESSION_BYTES, "compression_bytes"},
        {VIR_DOMAIN_JOB_COMPRESSION_PAGES, "compression_pages"},
        {VIR_DOMAIN_JOB_COMPRESSION_CACHE_MISSES, "compression_cache_misses"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
        unsigned long long v;
        int iv;
        if (virTypedParamsGetULLong(p, n, map[i].field, &v) == 1)
            json_object_object_add(o, map[i].key, json_object_new_int64((int64_t)v));
        else if (virTypedParamsGetInt(p, n, map[i].field, &iv) == 1)
            json_object_object_add(o, map[i].key, json_object_new_int64(iv));
    }
    unsigned long long bps;
    if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_MEMORY_BPS, &bps) == 1)
        json_object_object_add(o, "bandwidth_mib_s", json_object_new_double((double)bps / (1024.0 * 1024.0)));
    int op;
    if (virTypedParamsGetInt(p, n, VIR_DOMAIN_JOB_OPERATION, &op) == 1)
        json_object_object_add(o, "operation", json_object_new_int(op));
    json_object_object_add(o, "job_type", json_object_new_int(type));
    /* unknown keys are ignored on purpose: libvirt adds new ones over time */
    return o;
}

/* ---- the poller ---------------------------------------------------------------------------- */

struct jobstats_poller {
    pthread_mutex_t m;
    int stop;
    int refs;
    lv_conn *lv;
    evq *q;
    jobstats_cb cb;
    void *owner;
    int64_t key;
    char uuid[VIR_UUID_STRING_BUFLEN];
    int ms;
};

typedef struct poll_msg {
    jobstats_cb cb;
    void *owner;
    int64_t key;
    jobstats_reading r;
} poll_msg;

static void poll_unref(jobstats_poller *p)
{
    pthread_mutex_lock(&p->m);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->m);
    if (last) {
        pthread_mutex_destroy(&p->m);
        free(p);
    }
}

/* On the loop thread: hands one reading to the owner's callback. */
static void on_stats(void *arg)
{
    poll_msg *m = arg;
    m->cb(m->owner, m->key, &m->r);
    json_object_put(m->r.stats);
    free(m);
}

static void *poller(void *arg)
{
    jobstats_poller *p = arg;
    for (;;) {
        usleep((useconds_t)p->ms * 1000);
        pthread_mutex_lock(&p->m);
        int stop = p->stop;
        pthread_mutex_unlock(&p->m);
        if (stop)
            break;
        virConnectPtr conn = lv_ref(p->lv, NULL);
        if (!conn)
            continue;
        poll_msg *m = xcalloc(1, sizeof(*m));
        m->cb = p->cb;
        m->owner = p->owner;
        m->key = p->key;
        virDomainPtr dom = virDomainLookupByUUIDString(conn, p->uuid);
        if (!dom) {
            virErrorPtr e = virGetLastError();
            m->r.gone = e && e->code == VIR_ERR_NO_DOMAIN;
        } else {
            int type = VIR_DOMAIN_JOB_NONE, n = 0;
            virTypedParameterPtr params = NULL;
            if (virDomainGetJobStats(dom, &type, &params, &n, 0) == 0) {
                m->r.type = type;
                m->r.stats = jobstats_json(params, n, type);
                virTypedParamsFree(params, n);
            } else {
                m->r.type = -1; /* could not read: say nothing */
            }
            virDomainFree(dom);
        }
        virConnectClose(conn);
        if (m->r.gone || m->r.type >= 0) {
            pthread_mutex_lock(&p->m);
            stop = p->stop;
            pthread_mutex_unlock(&p->m);
            if (!stop) {
                evq_post(p->q, on_stats, m);
                continue;
            }
        }
        json_object_put(m->r.stats);
        free(m);
    }
    poll_unref(p);
    return NULL;
}

jobstats_poller *jobstats_poll_start(lv_conn *lv, evq *q, const char *uuid, int ms, jobstats_cb cb, void *owner,
                                     int64_t key, const log_fields *lf)
{
    jobstats_poller *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->m, NULL);
    p->refs = 2; /* the job's and the thread's */
    p->lv = lv;
    p->q = q;
    p->cb = cb;
    p->owner = owner;
    p->key = key;
    strlcpy_f(p->uuid, uuid, sizeof(p->uuid));
    p->ms = ms;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, poller, p) != 0) {
        log_error(lf, "could not start the statistics poller: %s", strerror(errno));
        free(p);
        p = NULL;
    }
    pthread_attr_destroy(&attr);
    return p;
}

void jobstats_poll_stop(jobstats_poller *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->m);
    p->stop = 1;
    pthread_mutex_unlock(&p->m);
    poll_unref(p);
}
