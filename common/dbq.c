/* dbq: the database worker thread and its FIFO of jobs (dbq.h). */
#include "dbq.h"

#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evq.h"
#include "log.h"

typedef struct job {
    struct job *next;
    dbq_work_fn work;
    dbq_done_fn done;
    void *arg;
    int rc;
    char *err;
} job;

struct dbq {
    evq *evq; /* the continuations, to the loop's thread */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* under lock */
    job *head, *tail;
    int queued;
    int stopping;    /* also read atomically by db_ensure (db_set_stop) */
    int running;     /* a job's work is running */
    int64_t started; /* mono_ms() when it started */
    int sock;        /* the socket of the running job's connection, -1 when none */
    int connected;
    int tried; /* a job with work ran: connected and error are its */
    char error[256];
    /* the worker's own */
    db_conn *db;
    db_options opt;
    char *dsn, *app;
    int64_t stall_ms;
};

/* On the loop's thread: the job's continuation. */
static void run_done(void *arg)
{
    job *j = arg;
    j->done(j->arg, j->rc, j->err);
    free(j);
}

/* Opens or checks the worker's connection: 0 when usable, -1 with *err (caller frees). */
static int worker_connect(dbq *q, char **err)
{
    if (!q->db) {
        if (db_open(&q->opt, &q->db, err) < 0)
            return -1;
        db_set_stop(q->db, &q->stopping);
        return 0;
    }
    if (db_ensure(q->db) < 0) {
        *err = xstrdup(db_error(q->db));
        return -1;
    }
    return 0;
}

static void *worker(void *arg)
{
    dbq *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->stopping) { /* the jobs never started are dbq_free's */
            pthread_mutex_unlock(&q->lock);
            return NULL;
        }
        job *j = q->head;
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        q->queued--;
        q->running = 1;
        q->started = mono_ms();
        pthread_mutex_unlock(&q->lock);

        j->next = NULL;
        if (j->work) {
            char *err = NULL;
            if (worker_connect(q, &err) < 0) {
                j->rc = -1;
                j->err = err;
            } else {
                pthread_mutex_lock(&q->lock);
                q->sock = PQsocket(db_pg(q->db));
                pthread_mutex_unlock(&q->lock);
                j->rc = j->work(q->db, j->arg, &j->err);
            }
        }
        int up = q->db && db_pg(q->db) && PQstatus(db_pg(q->db)) == CONNECTION_OK;
        pthread_mutex_lock(&q->lock);
        q->running = 0;
        q->sock = -1;
        if (j->work) {
            q->tried = 1;
            q->connected = up;
            strlcpy_f(q->error,
                      up       ? ""
                      : q->db  ? db_error(q->db)
                      : j->err ? j->err
                               : "not connected",
                      sizeof(q->error));
        }
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
        evq_post(q->evq, run_done, j);
    }
}

dbq *dbq_new(struct event_base *base, const db_options *o, int64_t stall_ms)
{
    dbq *q = xcalloc(1, sizeof(*q));
    q->evq = evq_new(base);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->sock = -1;
    q->opt = *o;
    q->dsn = xstrdup(o->dsn ? o->dsn : "");
    q->app = xstrdup(o->application_name ? o->application_name : "ferry");
    q->opt.dsn = q->dsn;
    q->opt.application_name = q->app;
    q->stall_ms = stall_ms;
    strlcpy_f(q->error, "not connected yet", sizeof(q->error));
    if (pthread_create(&q->thread, NULL, worker, q) != 0) {
        log_error(NULL, "cannot start the database worker thread");
        abort();
    }
    return q;
}

void dbq_submit(dbq *q, dbq_work_fn work, dbq_done_fn done, void *arg)
{
    pthread_mutex_lock(&q->lock);
    if (q->stopping) {
        pthread_mutex_unlock(&q->lock);
        done(arg, -1, xstrdup("the database worker is stopping"));
        return;
    }
    job *j = xcalloc(1, sizeof(*j));
    j->work = work;
    j->done = done;
    j->arg = arg;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->queued++;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void dbq_get_health(dbq *q, dbq_health *h)
{
    memset(h, 0, sizeof(*h));
    pthread_mutex_lock(&q->lock);
    h->connected = q->connected;
    h->tried = q->tried;
    h->queued = q->queued;
    if (q->running) {
        h->running_ms = mono_ms() - q->started;
        h->stalled = h->running_ms >= q->stall_ms;
    }
    strlcpy_f(h->error, q->error, sizeof(h->error));
    pthread_mutex_unlock(&q->lock);
}

int dbq_connected(dbq *q)
{
    pthread_mutex_lock(&q->lock);
    int up = q->connected;
    pthread_mutex_unlock(&q->lock);
    return up;
}

void dbq_free(dbq *q, int grace_ms)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    __atomic_store_n(&q->stopping, 1, __ATOMIC_RELEASE);
    job *never = q->head;
    q->head = q->tail = NULL;
    q->queued = 0;
    pthread_cond_broadcast(&q->cond);
    /* the running job may finish; past grace_ms its connection is shut down under it (the
     * worker's own socket: only the worker opens or closes it, and while it runs a job that
     * socket stays open) and, with stopping set, no new one is opened */
    int64_t until = mono_ms() + grace_ms;
    while (q->running && mono_ms() < until) {
        pthread_mutex_unlock(&q->lock);
        usleep(10000);
        pthread_mutex_lock(&q->lock);
    }
    if (q->running && q->sock >= 0) {
        log_warn(NULL, "stopping: the database job running for %lld ms is abandoned (its connection is closed)",
                 (long long)(mono_ms() - q->started));
        shutdown(q->sock, SHUT_RDWR);
    }
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL);
    evq_free(q->evq); /* the continuations already posted, in order */
    while (never) {
        job *n = never->next;
        never->done(never->arg, -1, xstrdup("the database worker is stopping"));
        free(never);
        never = n;
    }
    db_close(q->db);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q->dsn);
    free(q->app);
    free(q);
}
