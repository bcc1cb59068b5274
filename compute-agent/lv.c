/* lv: the agent's connection to its own libvirtd (see lv.h).
 *
 * Threads: libvirt's default event loop runs on lv's own thread ("event thread"). Every
 * connection change (connect, teardown, reconnect) happens there, driven by one libvirt
 * timer (`tick`), so no lock is needed for it. Other threads only read the current
 * connection through lv_ref (under `lock`) and the close callback, which may run on any
 * thread that notices the socket died, only records the reason and wakes the tick.
 * What the agent must hear is copied into a closure and posted through the evq; the closure
 * owns a reference to the `sink` (the callbacks and a closed flag), so work still queued when
 * lv_close has freed the lv_conn is dropped without touching it. */
#include "lv.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "log.h"

#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS 5000
#define ALIVE_CHECK_MS 1000 /* how often the event thread checks virConnectIsAlive */
#define DRAIN_TICK_MS 10
#define CLOSE_WAIT_S 5 /* how long lv_close waits for the event thread */

/* What posted closures share with lv_conn; freed by whoever drops the last reference. */
typedef struct lv_sink {
    evq *q;
    lv_callbacks cb;
    atomic_int refs;
    atomic_int closed; /* lv_close ran: queued work is dropped */
} lv_sink;

/* The reasons lv_ref hands out: interned so that a borrowed one stays valid until lv_close. */
typedef struct lv_reason {
    struct lv_reason *next;
    char text[];
} lv_reason;

struct lv_conn {
    lv_sink *sink;
    char *uri;
    int ka_interval;
    int ka_count;
    pthread_t thread;
    int tick; /* libvirt timer id */
    atomic_int quit;
    atomic_int close_reason; /* VIR_CONNECT_CLOSE_REASON_* from the close callback, or -1 */

    pthread_mutex_t lock; /* guards conn, why and reasons */
    virConnectPtr conn;   /* the live connection (shares cur's reference), NULL while down */
    const char *why;      /* interned: why conn is NULL */
    lv_reason *reasons;

    /* event thread only */
    virConnectPtr cur; /* the connection lv manages, maybe dead; holds one reference */
    int cb_ids[3];
    int close_registered;
    int down_posted; /* the agent was told the connection is down */
    const char *last_failure;
    int backoff_ms;
    int drain_ticks;
};

/* ---- names ---------------------------------------------------------------------------- */

static const char *event_name(int event)
{
    static const char *const names[] = {
        [VIR_DOMAIN_EVENT_DEFINED] = "defined",   [VIR_DOMAIN_EVENT_UNDEFINED] = "undefined",
        [VIR_DOMAIN_EVENT_STARTED] = "started",   [VIR_DOMAIN_EVENT_SUSPENDED] = "suspended",
        [VIR_DOMAIN_EVENT_RESUMED] = "resumed",   [VIR_DOMAIN_EVENT_STOPPED] = "stopped",
        [VIR_DOMAIN_EVENT_SHUTDOWN] = "shutdown", [VIR_DOMAIN_EVENT_PMSUSPENDED] = "pmsuspended",
        [VIR_DOMAIN_EVENT_CRASHED] = "crashed",
    };
    if (event >= 0 && (size_t)event < ARRAY_SIZE(names) && names[event])
        return names[event];
    return "unknown";
}

static const char *detail_name(int event, int detail)
{
    static const char *const defined[] = {
        [VIR_DOMAIN_EVENT_DEFINED_ADDED] = "added",
        [VIR_DOMAIN_EVENT_DEFINED_UPDATED] = "updated",
        [VIR_DOMAIN_EVENT_DEFINED_RENAMED] = "renamed",
        [VIR_DOMAIN_EVENT_DEFINED_FROM_SNAPSHOT] = "from_snapshot",
    };
    static const char *const undefined[] = {
        [VIR_DOMAIN_EVENT_UNDEFINED_REMOVED] = "removed",
        [VIR_DOMAIN_EVENT_UNDEFINED_RENAMED] = "renamed",
    };
    static const char *const started[] = {
        [VIR_DOMAIN_EVENT_STARTED_BOOTED] = "booted",     [VIR_DOMAIN_EVENT_STARTED_MIGRATED] = "migrated",
        [VIR_DOMAIN_EVENT_STARTED_RESTORED] = "restored", [VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT] = "from_snapshot",
        [VIR_DOMAIN_EVENT_STARTED_WAKEUP] = "wakeup",
    };
    static const char *const suspended[] = {
        [VIR_DOMAIN_EVENT_SUSPENDED_PAUSED] = "paused",
        [VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED] = "migrated",
        [VIR_DOMAIN_EVENT_SUSPENDED_IOERROR] = "ioerror",
        [VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG] = "watchdog",
        [VIR_DOMAIN_EVENT_SUSPENDED_RESTORED] = "restored",
        [VIR_DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT] = "from_snapshot",
        [VIR_DOMAIN_EVENT_SUSPENDED_API_ERROR] = "api_error",
        [VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY] = "postcopy",
        [VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED] = "postcopy_failed",
    };
    static const char *const resumed[] = {
        [VIR_DOMAIN_EVENT_RESUMED_UNPAUSED] = "unpaused",
        [VIR_DOMAIN_EVENT_RESUMED_MIGRATED] = "migrated",
        [VIR_DOMAIN_EVENT_RESUMED_FROM_SNAPSHOT] = "from_snapshot",
        [VIR_DOMAIN_EVENT_RESUMED_POSTCOPY] = "postcopy",
        [VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED] = "postcopy_failed",
    };
    static const char *const stopped[] = {
        [VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN] = "shutdown",
        [VIR_DOMAIN_EVENT_STOPPED_DESTROYED] = "destroyed",
        [VIR_DOMAIN_EVENT_STOPPED_CRASHED] = "crashed",
        [VIR_DOMAIN_EVENT_STOPPED_MIGRATED] = "migrated",
        [VIR_DOMAIN_EVENT_STOPPED_SAVED] = "saved",
        [VIR_DOMAIN_EVENT_STOPPED_FAILED] = "failed",
        [VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT] = "from_snapshot",
    };
    static const char *const shutdown[] = {
        [VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED] = "finished",
        [VIR_DOMAIN_EVENT_SHUTDOWN_GUEST] = "guest",
        [VIR_DOMAIN_EVENT_SHUTDOWN_HOST] = "host",
    };
    static const char *const pmsuspended[] = {
        [VIR_DOMAIN_EVENT_PMSUSPENDED_MEMORY] = "memory",
        [VIR_DOMAIN_EVENT_PMSUSPENDED_DISK] = "disk",
    };
    static const char *const crashed[] = {
        [VIR_DOMAIN_EVENT_CRASHED_PANICKED] = "panicked",
        [VIR_DOMAIN_EVENT_CRASHED_CRASHLOADED] = "crashloaded",
    };
    static const struct {
        const char *const *names;
        size_t n;
    } tables[] = {
        [VIR_DOMAIN_EVENT_DEFINED] = {defined, ARRAY_SIZE(defined)},
        [VIR_DOMAIN_EVENT_UNDEFINED] = {undefined, ARRAY_SIZE(undefined)},
        [VIR_DOMAIN_EVENT_STARTED] = {started, ARRAY_SIZE(started)},
        [VIR_DOMAIN_EVENT_SUSPENDED] = {suspended, ARRAY_SIZE(suspended)},
        [VIR_DOMAIN_EVENT_RESUMED] = {resumed, ARRAY_SIZE(resumed)},
        [VIR_DOMAIN_EVENT_STOPPED] = {stopped, ARRAY_SIZE(stopped)},
        [VIR_DOMAIN_EVENT_SHUTDOWN] = {shutdown, ARRAY_SIZE(shutdown)},
        [VIR_DOMAIN_EVENT_PMSUSPENDED] = {pmsuspended, ARRAY_SIZE(pmsuspended)},
        [VIR_DOMAIN_EVENT_CRASHED] = {crashed, ARRAY_SIZE(crashed)},
    };
    if (event < 0 || (size_t)event >= ARRAY_SIZE(tables) || detail < 0 || (size_t)detail >= tables[event].n ||
        !tables[event].names[detail])
        return "unknown";
    return tables[event].names[detail];
}

static const char *close_reason_text(int reason)
{
    switch (reason) {
    case VIR_CONNECT_CLOSE_REASON_ERROR:
        return "i/o error on the libvirt connection";
    case VIR_CONNECT_CLOSE_REASON_EOF:
        return "libvirtd closed the connection";
    case VIR_CONNECT_CLOSE_REASON_KEEPALIVE:
        return "libvirtd stopped answering keepalives";
    case VIR_CONNECT_CLOSE_REASON_CLIENT:
        return "the connection was closed by the client";
    default:
        return "the libvirt connection was closed";
    }
}

const char *lv_errmsg(void)
{
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "unknown libvirt error";
}

/* libvirt would print every error on stderr; the caller logs it once with context instead */
static void on_virt_error(void *arg, virErrorPtr e)
{
    (void)arg;
    if (e && e->message)
        log_debug(NULL, "libvirt: %s (code %d, domain %d)", e->message, e->code, e->domain);
}

/* ---- posting to the loop thread --------------------------------------------------------- */

static void sink_unref(lv_sink *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        free(s);
}

typedef enum { POST_LIFECYCLE, POST_ITERATION, POST_JOB, POST_CONNECTION } post_kind;

typedef struct lv_post {
    lv_sink *sink;
    post_kind kind;
    char uuid[VIR_UUID_STRING_BUFLEN];
    char *name;
    int a, b; /* lifecycle: event, detail; iteration: n; connection: up */
    virTypedParameterPtr params;
    int nparams;
    char *why;
} lv_post;

static lv_post *post_new(lv_conn *c, post_kind kind, virDomainPtr dom)
{
    lv_post *p = xcalloc(1, sizeof(*p));
    p->sink = c->sink;
    atomic_fetch_add(&c->sink->refs, 1);
    p->kind = kind;
    if (dom) {
        if (virDomainGetUUIDString(dom, p->uuid) < 0)
            p->uuid[0] = '\0';
        p->name = xstrdup(virDomainGetName(dom));
    }
    return p;
}

/* A deep copy of libvirt's typed parameters (libvirt frees its own after the callback). */
static virTypedParameterPtr params_copy(const virTypedParameter *src, int n)
{
    if (n <= 0 || !src)
        return NULL;
    virTypedParameterPtr dst = xcalloc((size_t)n, sizeof(*dst));
    for (int i = 0; i < n; i++) {
        dst[i] = src[i]; /* field name (an array) and value */
        if (src[i].type == VIR_TYPED_PARAM_STRING)
            dst[i].value.s = xstrdup(src[i].value.s ? src[i].value.s : "");
    }
    return dst;
}

static void params_free(virTypedParameterPtr p, int n)
{
    if (!p)
        return;
    for (int i = 0; i < n; i++)
        if (p[i].type == VIR_TYPED_PARAM_STRING)
            free(p[i].value.s);
    free(p);
}

static void post_free(lv_post *p)
{
    free(p->name);
    free(p->why);
    params_free(p->params, p->nparams);
    free(p);
}

/* loop thread */
static void post_run(void *arg)
{
    lv_post *p = arg;
    lv_sink *s = p->sink;
    const lv_callbacks *cb = &s->cb;
    if (!atomic_load(&s->closed)) {
        switch (p->kind) {
        case POST_LIFECYCLE:
            if (cb->lifecycle) {
                lv_lifecycle ev = {
                    .uuid = p->uuid,
                    .name = p->name ? p->name : "",
                    .event = p->a,
                    .detail = p->b,
                    .event_name = event_name(p->a),
                    .detail_name = detail_name(p->a, p->b),
                };
                cb->lifecycle(cb->arg, &ev);
            }
            break;
        case POST_ITERATION:
            if (cb->migration_iteration)
                cb->migration_iteration(cb->arg, p->uuid, p->a);
            break;
        case POST_JOB:
            if (cb->job_completed)
                cb->job_completed(cb->arg, p->uuid, p->params, p->nparams);
            break;
        case POST_CONNECTION:
            if (cb->connection)
                cb->connection(cb->arg, p->a, p->why);
            break;
        }
    }
    post_free(p);
    sink_unref(s);
}

static void post(lv_conn *c, lv_post *p)
{
    evq_post(c->sink->q, post_run, p);
}

static void post_connection(lv_conn *c, int up, const char *why)
{
    lv_post *p = post_new(c, POST_CONNECTION, NULL);
    p->a = up;
    p->why = xstrdup(why);
    post(c, p);
}

/* ---- libvirt callbacks (event thread, except on_close) ---------------------------------- */

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    (void)conn;
    lv_post *p = post_new(opaque, POST_LIFECYCLE, dom);
    p->a = event;
    p->b = detail;
    log_debug(&(log_fields){.instance = p->uuid}, "libvirt event: domain %s %s (%s)", p->name, event_name(event),
              detail_name(event, detail));
    post(opaque, p);
    return 0;
}

static void on_iteration(virConnectPtr conn, virDomainPtr dom, int iteration, void *opaque)
{
    (void)conn;
    lv_post *p = post_new(opaque, POST_ITERATION, dom);
    p->a = iteration;
    log_debug(&(log_fields){.instance = p->uuid}, "libvirt event: domain %s finished migration iteration %d", p->name,
              iteration);
    post(opaque, p);
}

static void on_job_completed(virConnectPtr conn, virDomainPtr dom, virTypedParameterPtr params, int nparams,
                             void *opaque)
{
    (void)conn;
    lv_post *p = post_new(opaque, POST_JOB, dom);
    p->params = params_copy(params, nparams);
    p->nparams = p->params ? nparams : 0;
    log_debug(&(log_fields){.instance = p->uuid}, "libvirt event: domain %s job completed (%d statistics)", p->name,
              nparams);
    post(opaque, p);
}

/* Any thread (the one that found the socket dead); libvirt holds its close-callback lock. */
static void on_close(virConnectPtr conn, int reason, void *opaque)
{
    (void)conn;
    lv_conn *c = opaque;
    atomic_store(&c->close_reason, reason < 0 ? VIR_CONNECT_CLOSE_REASON_ERROR : reason);
    virEventUpdateTimeout(c->tick, 0);
}

/* ---- connection management (event thread) ----------------------------------------------- */

/* c->lock held */
static const char *intern(lv_conn *c, const char *s)
{
    for (lv_reason *r = c->reasons; r; r = r->next)
        if (strcmp(r->text, s) == 0)
            return r->text;
    size_t n = strlen(s);
    lv_reason *r = xmalloc(sizeof(*r) + n + 1);
    memcpy(r->text, s, n + 1);
    r->next = c->reasons;
    c->reasons = r;
    return r->text;
}

/* Marks the connection down for lv_ref; returns the interned reason. */
static const char *set_down(lv_conn *c, const char *why)
{
    pthread_mutex_lock(&c->lock);
    c->conn = NULL;
    c->why = intern(c, why);
    const char *interned = c->why;
    pthread_mutex_unlock(&c->lock);
    return interned;
}

static void schedule(lv_conn *c, int ms)
{
    virEventUpdateTimeout(c->tick, ms);
}

/* Deregisters everything from cur and drops lv's reference (the connection may be dead:
 * failures are expected and only logged at debug level). */
static void teardown(lv_conn *c)
{
    if (!c->cur)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(c->cb_ids); i++) {
        if (c->cb_ids[i] >= 0 && virConnectDomainEventDeregisterAny(c->cur, c->cb_ids[i]) < 0)
            log_debug(NULL, "could not deregister libvirt event callback %d: %s", c->cb_ids[i], lv_errmsg());
        c->cb_ids[i] = -1;
    }
    if (c->close_registered && virConnectUnregisterCloseCallback(c->cur, on_close) < 0)
        log_debug(NULL, "could not unregister the libvirt close callback: %s", lv_errmsg());
    c->close_registered = 0;
    atomic_store(&c->close_reason, -1);
    if (virConnectClose(c->cur) < 0)
        log_debug(NULL, "could not close the libvirt connection: %s", lv_errmsg());
    c->cur = NULL;
}

static void connect_failed(lv_conn *c, const char *why)
{
    const char *interned = set_down(c, why);
    if (!c->down_posted) {
        log_warn(NULL, "could not connect to libvirt at %s: %s (retrying in %d ms)", c->uri, why, c->backoff_ms);
        post_connection(c, 0, why);
        c->down_posted = 1;
    } else if (interned != c->last_failure) {
        log_warn(NULL, "could not connect to libvirt at %s: %s (retrying in %d ms)", c->uri, why, c->backoff_ms);
    } else {
        log_debug(NULL, "could not connect to libvirt at %s: %s (retrying in %d ms)", c->uri, why, c->backoff_ms);
    }
    c->last_failure = interned;
    schedule(c, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void try_connect(lv_conn *c)
{
    c->cur = virConnectOpen(c->uri);
    if (!c->cur) {
        connect_failed(c, lv_errmsg());
        return;
    }
    if (c->ka_interval > 0) {
        int r = virConnectSetKeepAlive(c->cur, c->ka_interval, (unsigned int)(c->ka_count > 0 ? c->ka_count : 5));
        if (r < 0)
            log_warn(NULL, "could not enable keepalive on the libvirt connection to %s: %s", c->uri, lv_errmsg());
        else if (r == 1)
            log_debug(NULL, "the libvirt connection to %s does not support keepalive", c->uri);
    }
    if (virConnectRegisterCloseCallback(c->cur, on_close, c, NULL) < 0)
        log_warn(NULL, "could not register a close callback on the libvirt connection to %s: %s", c->uri, lv_errmsg());
    else
        c->close_registered = 1;
    static const int ids[] = {VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
                              VIR_DOMAIN_EVENT_ID_JOB_COMPLETED};
    virConnectDomainEventGenericCallback fns[] = {VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle),
                                                  VIR_DOMAIN_EVENT_CALLBACK(on_iteration),
                                                  VIR_DOMAIN_EVENT_CALLBACK(on_job_completed)};
    for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
        c->cb_ids[i] = virConnectDomainEventRegisterAny(c->cur, NULL, ids[i], fns[i], c, NULL);
        if (c->cb_ids[i] < 0) {
            _cleanup_free_ char *why = xasprintf("cannot register for domain events: %s", lv_errmsg());
            teardown(c);
            connect_failed(c, why);
            return;
        }
    }
    _cleanup_free_ char *vs = NULL, *ka = NULL;
    unsigned long lib = 0;
    if (virConnectGetLibVersion(c->cur, &lib) == 0)
        vs = xasprintf(", libvirtd %lu.%lu.%lu", lib / 1000000, lib / 1000 % 1000, lib % 1000);
    ka = c->ka_interval > 0 ? xasprintf("keepalive %d s x %d", c->ka_interval, c->ka_count > 0 ? c->ka_count : 5)
                            : xstrdup("keepalive off");
    pthread_mutex_lock(&c->lock);
    c->conn = c->cur;
    c->why = NULL;
    pthread_mutex_unlock(&c->lock);
    log_info(NULL, "libvirt connection up: %s%s (%s)", c->uri, vs ? vs : "", ka);
    c->down_posted = 0;
    c->last_failure = NULL;
    c->backoff_ms = BACKOFF_FIRST_MS;
    post_connection(c, 1, NULL);
    schedule(c, ALIVE_CHECK_MS);
}

static void on_tick(int timer, void *opaque)
{
    (void)timer;
    lv_conn *c = opaque;
    if (atomic_load(&c->quit)) {
        c->drain_ticks++;
        return;
    }
    if (!c->cur) {
        try_connect(c);
        return;
    }
    int reason = atomic_load(&c->close_reason);
    const char *why = NULL;
    if (reason >= 0)
        why = close_reason_text(reason);
    else if (virConnectIsAlive(c->cur) != 1)
        why = "the libvirt connection is not alive";
    if (!why) {
        schedule(c, ALIVE_CHECK_MS);
        return;
    }
    (void)set_down(c, why);
    log_warn(NULL, "libvirt connection to %s lost: %s (reconnecting)", c->uri, why);
    teardown(c);
    c->backoff_ms = BACKOFF_FIRST_MS;
    c->last_failure = NULL;
    c->down_posted = 1;
    post_connection(c, 0, why);
    schedule(c, c->backoff_ms);
    c->backoff_ms *= 2;
}

static void *event_main(void *arg)
{
    lv_conn *c = arg;
    while (!atomic_load(&c->quit)) {
        if (virEventRunDefaultImpl() < 0) {
            log_warn(NULL, "libvirt's event loop failed: %s", lv_errmsg());
            usleep(100 * 1000);
        }
    }
    if (c->cur) {
        (void)set_down(c, "libvirt connection closed");
        teardown(c);
        log_info(NULL, "libvirt connection to %s closed", c->uri);
    }
    /* libvirt frees what the close removed from its loop in idle callbacks: let them run */
    c->drain_ticks = 0;
    schedule(c, DRAIN_TICK_MS);
    while (c->drain_ticks < 2)
        if (virEventRunDefaultImpl() < 0)
            break;
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------ */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

static void lv_init(void)
{
    virSetErrorFunc(NULL, on_virt_error);
    init_rc = virEventRegisterDefaultImpl();
}

int lv_open(evq *q, const char *uri, int keepalive_interval, int keepalive_count, const lv_callbacks *cb, lv_conn **out,
            char **err)
{
    pthread_once(&init_once, lv_init);
    if (init_rc < 0) {
        *err = xasprintf("cannot start libvirt's event loop: %s", lv_errmsg());
        return -1;
    }
    int rc;
    lv_conn *c = xcalloc(1, sizeof(*c));
    c->sink = xcalloc(1, sizeof(*c->sink));
    c->sink->q = q;
    if (cb)
        c->sink->cb = *cb;
    atomic_init(&c->sink->refs, 1);
    atomic_init(&c->sink->closed, 0);
    c->uri = xstrdup(uri);
    c->ka_interval = keepalive_interval;
    c->ka_count = keepalive_count;
    atomic_init(&c->quit, 0);
    atomic_init(&c->close_reason, -1);
    pthread_mutex_init(&c->lock, NULL);
    for (size_t i = 0; i < ARRAY_SIZE(c->cb_ids); i++)
        c->cb_ids[i] = -1;
    c->backoff_ms = BACKOFF_FIRST_MS;
    pthread_mutex_lock(&c->lock);
    c->why = intern(c, "not connected to libvirt yet");
    pthread_mutex_unlock(&c->lock);
    /* the first connect happens at once, on the event thread */
    c->tick = virEventAddTimeout(0, on_tick, c, NULL);
    if (c->tick < 0) {
        *err = xasprintf("cannot add a libvirt event loop timer: %s", lv_errmsg());
        goto fail;
    }
    rc = pthread_create(&c->thread, NULL, event_main, c);
    if (rc != 0) {
        *err = xasprintf("cannot start the libvirt event thread: %s", strerror(rc));
        virEventRemoveTimeout(c->tick);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    sink_unref(c->sink);
    pthread_mutex_destroy(&c->lock);
    free(c->uri);
    free(c);
    return -1;
}

void lv_close(lv_conn *c)
{
    if (!c)
        return;
    atomic_store(&c->sink->closed, 1);
    atomic_store(&c->quit, 1);
    schedule(c, 0); /* wakes the event thread */
    /* a libvirt call can hang (a stopped libvirtd accepts but never answers a new
     * connection): then the thread and c are left behind rather than the caller blocked */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += CLOSE_WAIT_S;
    int rc = pthread_timedjoin_np(c->thread, NULL, &deadline);
    if (rc != 0) {
        log_warn(NULL, "libvirt's event thread did not stop within %d s (a libvirt call to %s hangs): left behind",
                 CLOSE_WAIT_S, c->uri);
        pthread_detach(c->thread);
        return;
    }
    virEventRemoveTimeout(c->tick);
    sink_unref(c->sink);
    for (lv_reason *r = c->reasons, *n; r; r = n) {
        n = r->next;
        free(r);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->uri);
    free(c);
}

virConnectPtr lv_ref(lv_conn *c, const char **why)
{
    if (!c) {
        if (why)
            *why = "libvirt is not open";
        return NULL;
    }
    pthread_mutex_lock(&c->lock);
    virConnectPtr conn = c->conn;
    int reason = atomic_load(&c->close_reason);
    if (conn && reason < 0) {
        virConnectRef(conn);
    } else {
        if (why)
            *why = reason >= 0 ? close_reason_text(reason) : (c->why ? c->why : "not connected to libvirt");
        conn = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    return conn;
}
