/* job: outgoing live migrations. The blocking virDomainMigrateToURI3 runs on a worker thread;
 * everything else — polling the job's statistics, the post-copy switch, the completion
 * timeout, stall detection, publishing — runs on the loop thread. What the agent knows of a
 * job is also written to its state dir, so a restarted agent finds its jobs again and asks
 * libvirt what became of them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "agent.h"
#include "guard.h"
#include "inventory.h"

struct job {
    job *next;
    agent *a;
    int64_t migration;
    char mig_s[24];
    char uuid[VIR_UUID_STRING_BUFLEN];
    char *name;
    char *ec2_id;
    char *dest;
    char *dest_address;
    char *uri;
    job_opts o;
    job_state state;
    int adopted;         /* found after a restart: no worker thread of ours */
    int worker_done;     /* the worker's result arrived */
    int postcopy_active;
    int iteration;
    int abort_requested;
    char *abort_reason; /* set when the agent itself aborted (timeout, stall) */
    int paused_to_finish;
    char *error;
    char *error_code;
    json_object *last_stats;
    json_object *final_stats;
    int64_t started_ms;
    int64_t ended_ms; /* adopted: when libvirt first showed no job */
    int64_t best_remaining_ms; /* when memory_remaining last reached a new low */
    unsigned long long best_remaining;
    struct pollctl *poll;
    struct event *finish_ev;
    log_fields lf;
};

/* ---- state files ------------------------------------------------------------------------ */

static char *state_path(agent *a, const char *name)
{
    return xasprintf("%s/%s.json", a->cfg->agent.state_dir, name);
}

static int mkdir_p(const char *path)
{
    _cleanup_free_ char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return -1;
            *s = '/';
        }
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int state_write(agent *a, const char *name, json_object *obj)
{
    if (mkdir_p(a->cfg->agent.state_dir) < 0) {
        log_error(NULL, "could not create state dir %s: %s", a->cfg->agent.state_dir, strerror(errno));
        return -1;
    }
    _cleanup_free_ char *path = state_path(a, name);
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error(NULL, "could not write %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int ok = w == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) < 0) {
        log_error(NULL, "could not write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

json_object *state_read(agent *a, const char *name)
{
    _cleanup_free_ char *path = state_path(a, name);
    json_object *o = json_object_from_file(path);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

void state_remove(agent *a, const char *name)
{
    _cleanup_free_ char *path = state_path(a, name);
    unlink(path);
}

/* ---- helpers ----------------------------------------------------------------------------- */

const log_fields *job_fields(const job *j)
{
    return &j->lf;
}

job *job_find(agent *a, int64_t migration)
{
    for (job *j = a->jobs; j; j = j->next)
        if (j->migration == migration)
            return j;
    return NULL;
}

static job *job_by_uuid(agent *a, const char *uuid)
{
    for (job *j = a->jobs; j; j = j->next)
        if (j->state == JOB_RUNNING && strcmp(j->uuid, uuid) == 0)
            return j;
    return NULL;
}

/* ---- the statistics poller ---------------------------------------------------------------- */
/* virDomainGetJobStats may wait for the domain's job lock (for seconds while a migration
 * finishes): it runs on a thread of its own per job, never on the loop thread, and posts
 * what it read. */
typedef struct pollctl {
    pthread_mutex_t m;
    int stop;
    int refs;
    agent *a;
    int64_t migration;
    char uuid[VIR_UUID_STRING_BUFLEN];
    int ms;
} pollctl;

typedef struct poll_msg {
    agent *a;
    int64_t migration;
    int gone; /* the domain is not here any more */
    int type;
    json_object *stats;
} poll_msg;

static void poll_unref(pollctl *p)
{
    pthread_mutex_lock(&p->m);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->m);
    if (last) {
        pthread_mutex_destroy(&p->m);
        free(p);
    }
}

static void on_stats(void *arg);

static void *poller(void *arg)
{
    pollctl *p = arg;
    for (;;) {
        usleep((useconds_t)p->ms * 1000);
        pthread_mutex_lock(&p->m);
        int stop = p->stop;
        pthread_mutex_unlock(&p->m);
        if (stop)
            break;
        virConnectPtr conn = lv_ref(p->a->lv, NULL);
        if (!conn)
            continue;
        poll_msg *m = xcalloc(1, sizeof(*m));
        m->a = p->a;
        m->migration = p->migration;
        virDomainPtr dom = virDomainLookupByUUIDString(conn, p->uuid);
        if (!dom) {
            virErrorPtr e = virGetLastError();
            m->gone = e && e->code == VIR_ERR_NO_DOMAIN;
        } else {
            int type = VIR_DOMAIN_JOB_NONE, n = 0;
            virTypedParameterPtr params = NULL;
            if (virDomainGetJobStats(dom, &type, &params, &n, 0) == 0) {
                m->type = type;
                m->stats = job_stats_json(params, n, type);
                virTypedParamsFree(params, n);
            } else {
                m->type = -1; /* could not read: say nothing */
            }
            virDomainFree(dom);
        }
        virConnectClose(conn);
        if (m->gone || m->type >= 0) {
            pthread_mutex_lock(&p->m);
            stop = p->stop;
            pthread_mutex_unlock(&p->m);
            if (!stop) {
                evq_post(p->a->q, on_stats, m);
                continue;
            }
        }
        json_object_put(m->stats);
        free(m);
    }
    poll_unref(p);
    return NULL;
}

static void poll_stop(job *j)
{
    if (!j->poll)
        return;
    pthread_mutex_lock(&j->poll->m);
    j->poll->stop = 1;
    pthread_mutex_unlock(&j->poll->m);
    poll_unref(j->poll);
    j->poll = NULL;
}

static const char *state_name(job_state s)
{
    switch (s) {
    case JOB_RUNNING: return "running";
    case JOB_COMPLETED: return "completed";
    case JOB_FAILED: return "failed";
    case JOB_CANCELLED: return "cancelled";
    }
    return "unknown";
}

static int state_from_name(const char *s)
{
    if (!s)
        return -1;
    for (int i = JOB_RUNNING; i <= JOB_CANCELLED; i++)
        if (strcmp(s, state_name((job_state)i)) == 0)
            return i;
    return -1;
}

static void job_free(job *j)
{
    if (!j)
        return;
    poll_stop(j);
    if (j->finish_ev)
        event_free(j->finish_ev);
    json_object_put(j->last_stats);
    json_object_put(j->final_stats);
    free(j->name);
    free(j->ec2_id);
    free(j->dest);
    free(j->dest_address);
    free(j->uri);
    free(j->error);
    free(j->error_code);
    free(j->abort_reason);
    free(j);
}

int job_workers_running(const agent *a)
{
    int n = 0;
    for (const job *j = a->jobs; j; j = j->next)
        n += j->state == JOB_RUNNING && !j->adopted && !j->worker_done;
    return n;
}

void job_free_all(agent *a)
{
    job *j = a->jobs;
    a->jobs = NULL;
    while (j) {
        job *n = j->next;
        job_free(j);
        j = n;
    }
}

static void persist(job *j)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "migration", json_object_new_int64(j->migration));
    json_object_object_add(o, "instance", json_object_new_string(j->uuid));
    json_object_object_add(o, "name", json_object_new_string(j->name ? j->name : ""));
    if (j->ec2_id)
        json_object_object_add(o, "instance_id", json_object_new_string(j->ec2_id));
    json_object_object_add(o, "dest", json_object_new_string(j->dest ? j->dest : ""));
    json_object_object_add(o, "uri", json_object_new_string(j->uri ? j->uri : ""));
    json_object_object_add(o, "state", json_object_new_string(state_name(j->state)));
    json_object_object_add(o, "post_copy", json_object_new_boolean(j->o.post_copy));
    json_object_object_add(o, "postcopy_active", json_object_new_boolean(j->postcopy_active));
    if (j->error)
        json_object_object_add(o, "error", json_object_new_string(j->error));
    if (j->final_stats)
        json_object_object_add(o, "stats", json_object_get(j->final_stats));
    _cleanup_free_ char *name = xasprintf("job-%lld", (long long)j->migration);
    (void)state_write(j->a, name, o);
    json_object_put(o);
}

json_object *job_stats_json(virTypedParameterPtr p, int n, int type)
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

static int64_t stat_i64(json_object *stats, const char *key, int64_t def)
{
    json_object *v;
    if (stats && json_object_object_get_ex(stats, key, &v))
        return json_object_get_int64(v);
    return def;
}

json_object *job_status_json(const job *j)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    json_object_object_add(o, "migration", json_object_new_int64(j->migration));
    json_object_object_add(o, "instance", json_object_new_string(j->uuid));
    json_object_object_add(o, "state", json_object_new_string(state_name(j->state)));
    json_object_object_add(o, "postcopy", json_object_new_boolean(j->postcopy_active));
    json_object_object_add(o, "adopted", json_object_new_boolean(j->adopted));
    if (j->dest)
        json_object_object_add(o, "dest", json_object_new_string(j->dest));
    json_object *st = j->final_stats ? j->final_stats : j->last_stats;
    if (st)
        json_object_object_add(o, "stats", json_object_get(st));
    if (j->error)
        json_object_object_add(o, "error", json_object_new_string(j->error));
    return o;
}

/* ---- finishing ------------------------------------------------------------------------- */

static void publish_result(job *j)
{
    agent *a = j->a;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(j->migration));
    json_object_object_add(b, "instance", json_object_new_string(j->uuid));
    json_object_object_add(b, "dest", json_object_new_string(j->dest ? j->dest : ""));
    json_object_object_add(b, "postcopy", json_object_new_boolean(j->postcopy_active));
    if (j->error)
        json_object_object_add(b, "error", json_object_new_string(j->error));
    if (j->final_stats)
        json_object_object_add(b, "stats", json_object_get(j->final_stats));
    _cleanup_free_ char *key = xasprintf("migration.%lld.%s", (long long)j->migration, state_name(j->state));
    agent_publish(a, key, b);
}

static void finish(job *j, job_state st, const char *error)
{
    if (j->state != JOB_RUNNING)
        return;
    j->state = st;
    char *copy = error ? xstrdup(error) : NULL; /* error may be j->error itself */
    free(j->error);
    j->error = copy;
    error = copy;
    poll_stop(j);
    const char *who = j->ec2_id ? j->ec2_id : j->name ? j->name : j->uuid;
    json_object *fs = j->final_stats;
    switch (st) {
    case JOB_COMPLETED:
        /* the seed's line, word for word */
        log_info(&j->lf, "Live migration %s to %s finishes successfully.", who, j->dest ? j->dest : "?");
        log_info(&j->lf, "migration of %s to %s completed: %lld ms, downtime %lld ms, %lld bytes of memory sent%s",
                 who, j->dest ? j->dest : "?", (long long)stat_i64(fs, "time_elapsed_ms", -1),
                 (long long)stat_i64(fs, "downtime_ms", -1), (long long)stat_i64(fs, "memory_processed", -1),
                 j->postcopy_active ? " (post-copy)" : "");
        break;
    case JOB_CANCELLED:
        log_warn(&j->lf, "migration of %s to %s cancelled: %s", who, j->dest ? j->dest : "?", error ? error : "aborted");
        break;
    default:
        log_error(&j->lf, "migration of %s to %s failed: %s", who, j->dest ? j->dest : "?", error ? error : "unknown");
        break;
    }
    persist(j);
    publish_result(j);
}

static void finish_after_grace(evutil_socket_t fd, short what, void *arg);

/* The worker is done; wait briefly for libvirt's job-completed event (its final statistics
 * usually come first, but not always), then finish. */
static void worker_result(job *j)
{
    if (j->final_stats) {
        finish_after_grace(-1, 0, j);
        return;
    }
    if (!j->finish_ev)
        j->finish_ev = evtimer_new(j->a->base, finish_after_grace, j);
    struct timeval tv = {1, 0};
    evtimer_add(j->finish_ev, &tv);
}

/* ---- the worker thread ------------------------------------------------------------------ */

typedef struct worker_msg {
    agent *a;
    int64_t migration;
    int ok;
    int aborted;
    char *error;
} worker_msg;

typedef struct worker_arg {
    agent *a;
    int64_t migration;
    char uuid[VIR_UUID_STRING_BUFLEN];
    char *uri;
    job_opts o;
    bool tls; /* [libvirt] migrate_tls: QEMU encrypts the stream itself */
} worker_arg;

static void on_worker_done(void *arg)
{
    worker_msg *m = arg;
    job *j = job_find(m->a, m->migration);
    if (j && j->state == JOB_RUNNING) {
        j->worker_done = 1;
        free(j->error);
        j->error = m->error ? xstrdup(m->error) : NULL;
        free(j->error_code);
        j->error_code = xstrdup(m->ok ? "" : m->aborted ? "cancelled" : "failed");
        worker_result(j);
    }
    free(m->error);
    free(m);
}

static void *worker(void *arg)
{
    worker_arg *w = arg;
    worker_msg *m = xcalloc(1, sizeof(*m));
    m->a = w->a;
    m->migration = w->migration;
    const char *why = NULL;
    virConnectPtr conn = lv_ref(w->a->lv, &why);
    virDomainPtr dom = NULL;
    virTypedParameterPtr params = NULL;
    int n = 0, max = 0;
    unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST |
                         VIR_MIGRATE_UNDEFINE_SOURCE;
    if (!conn) {
        m->error = xasprintf("not connected to libvirtd: %s", why ? why : "unknown");
        goto out;
    }
    dom = virDomainLookupByUUIDString(conn, w->uuid);
    if (!dom) {
        m->error = xasprintf("cannot find domain %s: %s", w->uuid, lv_errmsg());
        goto out;
    }
    if (w->o.post_copy)
        flags |= VIR_MIGRATE_POSTCOPY;
    if (w->o.auto_converge)
        flags |= VIR_MIGRATE_AUTO_CONVERGE;
    if (w->o.block_migration)
        flags |= VIR_MIGRATE_NON_SHARED_DISK;
    if (w->tls)
        flags |= VIR_MIGRATE_TLS;
    if (w->o.bandwidth_mib_s > 0)
        virTypedParamsAddULLong(&params, &n, &max, VIR_MIGRATE_PARAM_BANDWIDTH, (unsigned long long)w->o.bandwidth_mib_s);
    if (w->o.auto_converge && w->o.auto_converge_initial > 0)
        virTypedParamsAddInt(&params, &n, &max, VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL, w->o.auto_converge_initial);
    if (w->o.auto_converge && w->o.auto_converge_increment > 0)
        virTypedParamsAddInt(&params, &n, &max, VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT, w->o.auto_converge_increment);
    if (w->o.max_downtime_ms > 0 && virDomainMigrateSetMaxDowntime(dom, (unsigned long long)w->o.max_downtime_ms, 0) < 0)
        log_warn(NULL, "could not set the maximum downtime of %s to %d ms: %s", w->uuid, w->o.max_downtime_ms,
                 lv_errmsg());
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
    evq_post(w->a->q, on_worker_done, m);
    free(w->uri);
    free(w);
    return NULL;
}

/* ---- polling (loop thread) --------------------------------------------------------------- */

static virDomainPtr job_domain(job *j, virConnectPtr *conn_out)
{
    virConnectPtr conn = lv_ref(j->a->lv, NULL);
    if (!conn)
        return NULL;
    virDomainPtr dom = virDomainLookupByUUIDString(conn, j->uuid);
    if (!dom) {
        virConnectClose(conn);
        return NULL;
    }
    *conn_out = conn;
    return dom;
}

static void switch_postcopy(job *j, virDomainPtr dom, const char *why)
{
    if (j->postcopy_active)
        return;
    if (virDomainMigrateStartPostCopy(dom, 0) < 0) {
        log_warn(&j->lf, "could not switch to post-copy (%s): %s", why, lv_errmsg());
        return;
    }
    j->postcopy_active = 1;
    log_info(&j->lf, "switched to post-copy after memory iteration %d (%s)", j->iteration, why);
    persist(j);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(j->migration));
    json_object_object_add(b, "instance", json_object_new_string(j->uuid));
    json_object_object_add(b, "iteration", json_object_new_int(j->iteration));
    json_object_object_add(b, "reason", json_object_new_string(why));
    _cleanup_free_ char *key = xasprintf("migration.%lld.postcopy", (long long)j->migration);
    agent_publish(j->a, key, b);
}

/* The post-copy rule of ORBIT: after N completed memory iterations, switch. Iteration k
 * running means k-1 are complete. */
static void maybe_postcopy(job *j, virDomainPtr dom)
{
    if (j->o.post_copy && !j->postcopy_active && j->iteration - 1 >= j->o.postcopy_after_iterations)
        switch_postcopy(j, dom, "iterations");
}

static void adopted_ended(job *j);

/* New statistics (stats taken) from the poller: publish, and decide (post-copy switch,
 * completion timeout, stall). */
static void poll_update(job *j, virDomainPtr dom, json_object *stats)
{
    json_object_put(j->last_stats);
    j->last_stats = stats;
    json_object_object_add(j->last_stats, "postcopy", json_object_new_boolean(j->postcopy_active));
    int it = (int)stat_i64(j->last_stats, "iteration", 0);
    if (it > j->iteration)
        j->iteration = it;
    maybe_postcopy(j, dom);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(j->migration));
    json_object_object_add(b, "instance", json_object_new_string(j->uuid));
    json_object_object_add(b, "stats", json_object_get(j->last_stats));
    _cleanup_free_ char *key = xasprintf("migration.%lld.progress", (long long)j->migration);
    agent_publish(j->a, key, b);

    int64_t now = mono_ms();
    unsigned long long rem = (unsigned long long)stat_i64(j->last_stats, "memory_remaining", 0);
    if (j->best_remaining == 0 || rem < j->best_remaining) {
        j->best_remaining = rem;
        j->best_remaining_ms = now;
    }
    /* completion timeout: abort, or switch to post-copy when that was asked */
    if (j->o.completion_timeout_s > 0 && !j->postcopy_active && !j->abort_requested &&
        now - j->started_ms > (int64_t)j->o.completion_timeout_s * 1000) {
        if (j->o.completion_postcopy && j->o.post_copy) {
            switch_postcopy(j, dom, "completion timeout");
        } else {
            log_warn(&j->lf, "completion timeout of %d s reached: aborting", j->o.completion_timeout_s);
            free(j->abort_reason);
            j->abort_reason = xasprintf("completion timeout of %d s reached", j->o.completion_timeout_s);
            j->abort_requested = 1;
            if (virDomainAbortJob(dom) < 0)
                log_error(&j->lf, "could not abort the job: %s", lv_errmsg());
        }
    }
    /* stall: remaining memory has not reached a new low for stall_timeout_s */
    int64_t stall = j->a->cfg->agent.stall_timeout_s;
    if (stall > 0 && !j->postcopy_active && !j->abort_requested && now - j->best_remaining_ms > stall * 1000) {
        log_warn(&j->lf, "migration stalled: remaining memory has not shrunk below %llu bytes for %lld s: aborting",
                 j->best_remaining, (long long)stall);
        free(j->abort_reason);
        j->abort_reason = xasprintf("stalled: remaining memory did not shrink below %llu bytes for %lld s",
                                    j->best_remaining, (long long)stall);
        j->abort_requested = 1;
        if (virDomainAbortJob(dom) < 0)
            log_error(&j->lf, "could not abort the stalled job: %s", lv_errmsg());
    }
}

static void on_stats(void *arg)
{
    poll_msg *m = arg;
    job *j = job_find(m->a, m->migration);
    if (j && j->state == JOB_RUNNING) {
        if (m->gone || m->type == VIR_DOMAIN_JOB_NONE) {
            if (j->adopted)
                adopted_ended(j);
        } else {
            virConnectPtr conn = NULL;
            virDomainPtr dom = job_domain(j, &conn);
            if (dom) {
                poll_update(j, dom, json_object_get(m->stats));
                virDomainFree(dom);
                virConnectClose(conn);
            }
        }
    }
    json_object_put(m->stats);
    free(m);
}

static void finish_after_grace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job *j = arg;
    if (j->state != JOB_RUNNING)
        return;
    if (j->error_code && !*j->error_code)
        finish(j, JOB_COMPLETED, NULL);
    else if (j->error_code && strcmp(j->error_code, "cancelled") == 0 && j->abort_reason) {
        /* the agent aborted it (timeout, stall): a failure, with the agent's reason first */
        _cleanup_free_ char *e = xasprintf("%s (libvirt: %s)", j->abort_reason, j->error ? j->error : "aborted");
        finish(j, JOB_FAILED, e);
    } else if (j->error_code && strcmp(j->error_code, "cancelled") == 0)
        finish(j, JOB_CANCELLED, j->error ? j->error : "aborted");
    else {
        _cleanup_free_ char *e = xstrdup(j->error ? j->error : "unknown libvirt error");
        finish(j, JOB_FAILED, e);
    }
}

static job *job_new(agent *a, int64_t migration, const char *uuid)
{
    job *j = xcalloc(1, sizeof(*j));
    j->a = a;
    j->migration = migration;
    snprintf(j->mig_s, sizeof(j->mig_s), "%lld", (long long)migration);
    strlcpy_f(j->uuid, uuid, sizeof(j->uuid));
    j->started_ms = j->best_remaining_ms = mono_ms();
    j->next = a->jobs;
    a->jobs = j;
    return j;
}

static void job_set_fields(job *j)
{
    j->lf.migration = j->mig_s;
    j->lf.instance = j->ec2_id ? j->ec2_id : j->uuid;
    j->lf.host = j->a->host;
}

static void start_polling(job *j)
{
    if (j->poll)
        return;
    pollctl *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->m, NULL);
    p->refs = 2; /* the job's and the thread's */
    p->a = j->a;
    p->migration = j->migration;
    strlcpy_f(p->uuid, j->uuid, sizeof(p->uuid));
    p->ms = (int)j->a->cfg->agent.job_poll_ms;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, poller, p) != 0) {
        log_error(&j->lf, "could not start the statistics poller: %s", strerror(errno));
        free(p);
    } else {
        j->poll = p;
    }
    pthread_attr_destroy(&attr);
}

int job_start(agent *a, int64_t migration, const char *uuid, const char *dest, const char *dest_address,
              const job_opts *o, job **out, char **err, const char **code)
{
    job *j = job_find(a, migration);
    if (j) {
        if (strcmp(j->uuid, uuid) != 0) {
            *err = xasprintf("migration %lld is already a job of domain %s, not %s", (long long)migration, j->uuid, uuid);
            *code = "conflict";
            return -1;
        }
        *out = j; /* the same request again: one job */
        return 0;
    }
    /* the address goes into the libvirt URI: checked here too, whoever the caller */
    char *bad = NULL;
    if (guard_address(dest_address, strlen(dest_address), &bad) < 0) {
        *err = xasprintf("cannot build the migration URI: %s", bad);
        *code = "invalid";
        free(bad);
        return -1;
    }
    job *other = job_by_uuid(a, uuid);
    if (other) {
        *err = xasprintf("domain %s is already being migrated (migration %lld)", uuid, (long long)other->migration);
        *code = "conflict";
        return -1;
    }
    const char *why = NULL;
    virConnectPtr conn = lv_ref(a->lv, &why);
    if (!conn) {
        *err = xasprintf("not connected to libvirtd: %s", why ? why : "unknown");
        *code = "libvirt";
        return -1;
    }
    virDomainPtr dom = virDomainLookupByUUIDString(conn, uuid);
    if (!dom) {
        *err = xasprintf("cannot find domain %s: %s", uuid, lv_errmsg());
        *code = "not_found";
        virConnectClose(conn);
        return -1;
    }
    int active = virDomainIsActive(dom);
    int jtype = VIR_DOMAIN_JOB_NONE;
    virDomainJobInfo ji;
    if (virDomainGetJobInfo(dom, &ji) == 0)
        jtype = ji.type;
    const char *dname = virDomainGetName(dom);
    if (active != 1 || jtype != VIR_DOMAIN_JOB_NONE) {
        *err = active != 1 ? xasprintf("domain %s is not running", dname)
                           : xasprintf("domain %s already has a job running (not ferry's migration %lld)", dname,
                                       (long long)migration);
        *code = "conflict";
        virDomainFree(dom);
        virConnectClose(conn);
        return -1;
    }
    j = job_new(a, migration, uuid);
    j->name = xstrdup(dname);
    inv_meta meta = {0};
    char *merr = NULL;
    if (inv_domain_meta(dom, &meta, &merr) == 0) {
        j->ec2_id = meta.instance_id;
        meta.instance_id = NULL;
        inv_meta_free(&meta);
    } else {
        free(merr);
    }
    virDomainFree(dom);
    virConnectClose(conn);
    j->dest = xstrdup(dest);
    j->dest_address = xstrdup(dest_address);
    j->uri = xasprintf(a->cfg->libvirt.live_migration_uri, dest_address);
    j->o = *o;
    job_set_fields(j);
    persist(j);

    worker_arg *w = xcalloc(1, sizeof(*w));
    w->a = a;
    w->migration = migration;
    strlcpy_f(w->uuid, uuid, sizeof(w->uuid));
    w->uri = xstrdup(j->uri);
    w->o = *o;
    w->tls = a->cfg->libvirt.migrate_tls;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, worker, w);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(w->uri);
        free(w);
        *err = xasprintf("could not start the migration thread: %s", strerror(rc));
        *code = "internal";
        finish(j, JOB_FAILED, *err);
        return -1;
    }
    log_info(&j->lf, "live migration of %s (%s) to %s started: uri %s, %s%s%s%s, bandwidth %d MiB/s, max downtime %d ms",
             j->ec2_id ? j->ec2_id : j->name, j->name, dest, j->uri, o->block_migration ? "block" : "shared storage",
             o->post_copy ? ", post-copy allowed" : "", o->auto_converge ? ", auto-converge" : "",
             a->cfg->libvirt.migrate_tls ? ", stream over TLS" : "", o->bandwidth_mib_s, o->max_downtime_ms);
    start_polling(j);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(migration));
    json_object_object_add(b, "dest", json_object_new_string(dest));
    _cleanup_free_ char *key = xasprintf("instance.%s.migrating", uuid);
    agent_publish(a, key, b);
    *out = j;
    return 0;
}

int job_abort(agent *a, job *j, char **err, const char **code)
{
    (void)a;
    if (j->state != JOB_RUNNING) {
        *err = xasprintf("migration %lld is already %s", (long long)j->migration, state_name(j->state));
        *code = "conflict";
        return -1;
    }
    if (j->postcopy_active) {
        *err = xstrdup("cannot abort after the switch to post-copy: the guest already runs on the destination");
        *code = "conflict";
        return -1;
    }
    virConnectPtr conn = NULL;
    virDomainPtr dom = job_domain(j, &conn);
    if (!dom) {
        *err = xasprintf("cannot find domain %s: %s", j->uuid, lv_errmsg());
        *code = "not_found";
        return -1;
    }
    j->abort_requested = 1;
    int rc = virDomainAbortJob(dom);
    if (rc < 0) {
        *err = xasprintf("could not abort the migration job: %s", lv_errmsg());
        *code = "libvirt";
    } else {
        log_info(&j->lf, "abort of the migration requested");
    }
    virDomainFree(dom);
    virConnectClose(conn);
    return rc < 0 ? -1 : 0;
}

int job_force_complete(agent *a, job *j, const char **action, char **err, const char **code)
{
    (void)a;
    if (j->state != JOB_RUNNING) {
        *err = xasprintf("migration %lld is already %s", (long long)j->migration, state_name(j->state));
        *code = "conflict";
        return -1;
    }
    virConnectPtr conn = NULL;
    virDomainPtr dom = job_domain(j, &conn);
    if (!dom) {
        *err = xasprintf("cannot find domain %s: %s", j->uuid, lv_errmsg());
        *code = "not_found";
        return -1;
    }
    int rc = 0;
    if (j->postcopy_active) {
        *action = "postcopy";
    } else if (j->o.post_copy) {
        switch_postcopy(j, dom, "force-complete");
        if (!j->postcopy_active) {
            *err = xasprintf("could not switch to post-copy: %s", lv_errmsg());
            *code = "libvirt";
            rc = -1;
        }
        *action = "postcopy";
    } else {
        /* pre-copy only: pause the guest so the remaining memory can be sent */
        if (virDomainSuspend(dom) < 0) {
            *err = xasprintf("could not pause the guest to finish the migration: %s", lv_errmsg());
            *code = "libvirt";
            rc = -1;
        } else {
            j->paused_to_finish = 1;
            log_info(&j->lf, "guest paused so that the migration completes (force-complete)");
        }
        *action = "paused";
    }
    virDomainFree(dom);
    virConnectClose(conn);
    return rc;
}

void job_on_iteration(agent *a, const char *uuid, int iteration)
{
    job *j = job_by_uuid(a, uuid);
    if (!j)
        return;
    if (iteration > j->iteration)
        j->iteration = iteration;
    log_debug(&j->lf, "memory iteration %d", iteration);
    virConnectPtr conn = NULL;
    virDomainPtr dom = job_domain(j, &conn);
    if (dom) {
        maybe_postcopy(j, dom);
        virDomainFree(dom);
        virConnectClose(conn);
    }
}

void job_on_completed(agent *a, const char *uuid, virTypedParameterPtr params, int n)
{
    job *j = job_by_uuid(a, uuid);
    if (!j)
        return;
    json_object_put(j->final_stats);
    j->final_stats = job_stats_json(params, n, VIR_DOMAIN_JOB_COMPLETED);
    if (j->worker_done && j->finish_ev && evtimer_pending(j->finish_ev, NULL)) {
        evtimer_del(j->finish_ev);
        finish_after_grace(-1, 0, j);
    } else if (j->adopted) {
        /* no worker of ours: the event is the end of the job */
        adopted_ended(j);
    }
}

/* ---- after a restart ----------------------------------------------------------------------- */

/* An adopted job's libvirt job is over: the domain's presence and state here tell how it
 * ended. A successful migration leaves the source domain running (paused at the switch-over)
 * for a moment after its job ends, before libvirt stops and undefines it: so "still here"
 * is only a failure once it has lasted a few seconds and no job-completed event came. */
#define ADOPTED_GRACE_MS 5000
static void adopted_ended(job *j)
{
    if (j->state != JOB_RUNNING)
        return;
    virConnectPtr conn = lv_ref(j->a->lv, NULL);
    if (!conn)
        return; /* ask again when libvirt is back */
    virDomainPtr dom = virDomainLookupByUUIDString(conn, j->uuid);
    if (!dom) {
        /* undefined from the source: that is what a successful migration does */
        finish(j, JOB_COMPLETED, NULL);
    } else {
        int st = 0, reason = 0;
        virDomainGetState(dom, &st, &reason, 0);
        int64_t now = mono_ms();
        if (!j->ended_ms)
            j->ended_ms = now;
        if ((st == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_MIGRATED) || j->final_stats) {
            finish(j, JOB_COMPLETED, NULL); /* stopped as migrated, or libvirt said job completed */
        } else if (now - j->ended_ms < ADOPTED_GRACE_MS) {
            /* not yet: the poller asks again */
        } else if (st == VIR_DOMAIN_PAUSED) {
            _cleanup_free_ char *e =
                xasprintf("the migration job ended while the agent was down and the guest is PAUSED here (reason %d): "
                          "it needs an operator",
                          reason);
            finish(j, JOB_FAILED, e);
        } else {
            finish(j, JOB_FAILED, "the migration job ended while the agent was down and the guest still runs here");
        }
        virDomainFree(dom);
    }
    virConnectClose(conn);
}

void job_recover(agent *a)
{
    DIR *d = opendir(a->cfg->agent.state_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long id;
        char tail[8];
        if (sscanf(e->d_name, "job-%lld.%7s", &id, tail) != 2 || strcmp(tail, "json") != 0)
            continue;
        if (job_find(a, id))
            continue;
        _cleanup_free_ char *name = xasprintf("job-%lld", id);
        json_object *o = state_read(a, name);
        if (!o)
            continue;
        json_object *v;
        const char *uuid = json_object_object_get_ex(o, "instance", &v) ? json_object_get_string(v) : NULL;
        int st = json_object_object_get_ex(o, "state", &v) ? state_from_name(json_object_get_string(v)) : -1;
        if (!uuid || st < 0) {
            json_object_put(o);
            continue;
        }
        job *j = job_new(a, id, uuid);
        j->adopted = 1;
        if (json_object_object_get_ex(o, "name", &v))
            j->name = xstrdup(json_object_get_string(v));
        if (json_object_object_get_ex(o, "instance_id", &v))
            j->ec2_id = xstrdup(json_object_get_string(v));
        if (json_object_object_get_ex(o, "dest", &v))
            j->dest = xstrdup(json_object_get_string(v));
        if (json_object_object_get_ex(o, "uri", &v))
            j->uri = xstrdup(json_object_get_string(v));
        if (json_object_object_get_ex(o, "post_copy", &v))
            j->o.post_copy = json_object_get_boolean(v);
        if (json_object_object_get_ex(o, "postcopy_active", &v))
            j->postcopy_active = json_object_get_boolean(v);
        if (json_object_object_get_ex(o, "error", &v))
            j->error = xstrdup(json_object_get_string(v));
        if (json_object_object_get_ex(o, "stats", &v))
            j->final_stats = json_object_get(v);
        job_set_fields(j);
        j->state = (job_state)st;
        json_object_put(o);
        if (j->state != JOB_RUNNING) {
            log_info(&j->lf, "recovered the record of migration %lld: %s", id, state_name(j->state));
            continue;
        }
        /* it was running when the agent stopped: the poller asks libvirt (off this thread)
         * and the job ends here when libvirt says there is none */
        log_warn(&j->lf, "found migration %lld unfinished from before a restart: asking libvirt what became of it", id);
        start_polling(j);
    }
    closedir(d);
}
