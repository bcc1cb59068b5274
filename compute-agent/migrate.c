/* migrate: one outgoing live migration's blocking libvirt call, on a worker thread
 * (migrate.h). */
#include "migrate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "jobrule.h"
#include "util.h"

typedef struct worker_msg {
    migrate_cb cb;
    void *owner;
    int64_t key;
    int ok;
    int aborted;
    char *error;
} worker_msg;

typedef struct worker_arg {
    lv_conn *lv;
    evq *q;
    migrate_cb cb;
    void *owner;
    int64_t key;
    char uuid[VIR_UUID_STRING_BUFLEN];
    char *uri;
    char *data_address, *tls_name;
    job_opts o;
    bool tls;
    bool resume;
    char *lf_migration, *lf_instance, *lf_host; /* the job's log fields, copied */
} worker_arg;

static void worker_arg_free(worker_arg *w)
{
    free(w->uri);
    free(w->data_address);
    free(w->tls_name);
    free(w->lf_migration);
    free(w->lf_instance);
    free(w->lf_host);
    free(w);
}

/* On the loop thread: hands the outcome to the owner's callback. */
static void on_worker_done(void *arg)
{
    worker_msg *m = arg;
    m->cb(m->owner, m->key, m->ok ? MIGRATE_OK : m->aborted ? MIGRATE_ABORTED : MIGRATE_FAILED, m->error);
    free(m->error);
    free(m);
}

static void *worker(void *arg)
{
    worker_arg *w = arg;
    log_fields lf = {.migration = w->lf_migration, .instance = w->lf_instance, .host = w->lf_host};
    worker_msg *m = xcalloc(1, sizeof(*m));
    m->cb = w->cb;
    m->owner = w->owner;
    m->key = w->key;
    const char *why = NULL;
    virConnectPtr conn = lv_ref(w->lv, &why);
    virDomainPtr dom = NULL;
    virTypedParameterPtr params = NULL;
    int n = 0, max = 0, step = 0, limit = 0;
    unsigned int flags =
        VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
    if (!conn) {
        m->error = xasprintf("not connected to libvirtd: %s", why ? why : "unknown");
        goto out;
    }
    dom = virDomainLookupByUUIDString(conn, w->uuid);
    if (!dom) {
        m->error = xasprintf("cannot find domain %s: %s", w->uuid, lv_errmsg());
        goto out;
    }
    if (w->o.post_copy || w->resume)
        flags |= VIR_MIGRATE_POSTCOPY;
    if (w->resume)
        flags |= VIR_MIGRATE_POSTCOPY_RESUME;
    if (w->o.auto_converge)
        flags |= VIR_MIGRATE_AUTO_CONVERGE;
    if (w->o.block_migration)
        flags |= VIR_MIGRATE_NON_SHARED_DISK;
    if (w->tls)
        flags |= VIR_MIGRATE_TLS;
    if (w->o.bandwidth_mib_s > 0) {
        virTypedParamsAddULLong(&params, &n, &max, VIR_MIGRATE_PARAM_BANDWIDTH,
                                (unsigned long long)w->o.bandwidth_mib_s);
        /* the cap holds after the post-copy switch too (QEMU's post-copy rate is its own,
         * unlimited unless set) */
        if (w->o.post_copy || w->resume)
            virTypedParamsAddULLong(&params, &n, &max, VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY,
                                    (unsigned long long)w->o.bandwidth_mib_s);
    }
    if (w->data_address) {
        /* the migration network: QEMU's stream (and a block migration's NBD) to that address,
         * where the destination's QEMU listens; a bracketed IPv6 address is listened on bare */
        _cleanup_free_ char *data_uri = xasprintf("tcp://%s", w->data_address);
        _cleanup_free_ char *listen = xstrdup(w->data_address);
        size_t ll = strlen(listen);
        if (ll > 2 && listen[0] == '[' && listen[ll - 1] == ']') {
            memmove(listen, listen + 1, ll - 2);
            listen[ll - 2] = 0;
        }
        virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_URI, data_uri);
        virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_LISTEN_ADDRESS, listen);
        if (w->tls && w->tls_name)
            virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_TLS_DESTINATION, w->tls_name);
    }
    if (w->o.parallel_connections > 1) {
        /* QEMU's multifd: memory over that many connections besides the main one */
        flags |= VIR_MIGRATE_PARALLEL;
        virTypedParamsAddInt(&params, &n, &max, VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS, w->o.parallel_connections);
    }
    if (w->o.xbzrle_cache_mib > 0) {
        flags |= VIR_MIGRATE_COMPRESSED;
        virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_COMPRESSION, "xbzrle");
        virTypedParamsAddULLong(&params, &n, &max, VIR_MIGRATE_PARAM_COMPRESSION_XBZRLE_CACHE,
                                (unsigned long long)w->o.xbzrle_cache_mib << 20);
    }
    if (w->o.auto_converge && w->o.auto_converge_initial > 0)
        virTypedParamsAddInt(&params, &n, &max, VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL, w->o.auto_converge_initial);
    if (w->o.auto_converge && w->o.auto_converge_increment > 0)
        virTypedParamsAddInt(&params, &n, &max, VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT,
                             w->o.auto_converge_increment);
    /* the limit at the start: max_downtime_ms, or the first step of its ramp (job.c raises it) */
    step = 0;
    limit = jobrule_downtime_at(&w->o, 0, &step);
    if (!w->resume && limit > 0 && virDomainMigrateSetMaxDowntime(dom, (unsigned long long)limit, 0) < 0)
        log_warn(&lf, "could not set the maximum downtime of %s to %d ms: %s", w->uuid, limit, lv_errmsg());
    if (virDomainMigrateToURI3(dom, w->uri, params, (unsigned int)n, flags) == 0) {
        m->ok = 1;
    } else {
        virErrorPtr e = virGetLastError();
        m->aborted = e && e->code == VIR_ERR_OPERATION_ABORTED;
        m->error = xstrdup(lv_errmsg());
    }
out:
    virTypedParamsFree(params, n);
    if (dom)
        virDomainFree(dom);
    if (conn)
        virConnectClose(conn);
    evq_post(w->q, on_worker_done, m);
    worker_arg_free(w);
    return NULL;
}

int migrate_start(lv_conn *lv, evq *q, const migrate_req *req, migrate_cb cb, void *owner, int64_t key)
{
    worker_arg *w = xcalloc(1, sizeof(*w));
    w->lv = lv;
    w->q = q;
    w->cb = cb;
    w->owner = owner;
    w->key = key;
    strlcpy_f(w->uuid, req->uuid, sizeof(w->uuid));
    w->uri = xstrdup(req->uri);
    w->data_address = req->data_address ? xstrdup(req->data_address) : NULL;
    w->tls_name = req->tls_name ? xstrdup(req->tls_name) : NULL;
    w->o = *req->o;
    w->tls = req->tls;
    w->resume = req->resume;
    if (req->lf) {
        w->lf_migration = xstrdup(req->lf->migration);
        w->lf_instance = xstrdup(req->lf->instance);
        w->lf_host = xstrdup(req->lf->host);
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, worker, w);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        worker_arg_free(w);
    return rc;
}
