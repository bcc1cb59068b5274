#include "workq.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

typedef struct item {
    struct item *next;
    workq_work_fn work;
    workq_done_fn done;
    void *arg;
} item;

struct workq {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* an item was queued, or the queue stops */
    pthread_cond_t idle; /* the worker left a work function */
    pthread_t thread;
    evq *q;
    item *head, *tail;
    int pending; /* submitted and done not yet posted */
    int busy;    /* the worker is inside work() */
    int stop;
    int exited;
};

/* The done of one item, posted to the loop. */
typedef struct done_call {
    workq_done_fn done;
    void *arg;
} done_call;

static void run_done(void *arg)
{
    done_call *d = arg;
    d->done(d->arg, 0);
    free(d);
}

static void *worker(void *arg)
{
    workq *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->wake, &w->lock);
        if (w->stop)
            break;
        item *it = w->head;
        w->head = it->next;
        if (!w->head)
            w->tail = NULL;
        w->busy = 1;
        pthread_mutex_unlock(&w->lock);
        it->work(it->arg);
        done_call *d = xcalloc(1, sizeof(*d));
        d->done = it->done;
        d->arg = it->arg;
        free(it);
        evq_post(w->q, run_done, d);
        pthread_mutex_lock(&w->lock);
        w->busy = 0;
        w->pending--;
        pthread_cond_broadcast(&w->idle);
    }
    w->exited = 1;
    pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

workq *workq_new(evq *q, const char *name)
{
    workq *w = xcalloc(1, sizeof(*w));
    w->q = q;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->idle, NULL);
    if (pthread_create(&w->thread, NULL, worker, w) != 0) {
        fprintf(stderr, "workq: cannot start a thread: %s\n", strerror(errno));
        abort();
    }
    char n[16];
    strlcpy_f(n, name ? name : "workq", sizeof(n));
    pthread_setname_np(w->thread, n);
    return w;
}

void workq_submit(workq *w, workq_work_fn work, workq_done_fn done, void *arg)
{
    item *it = xcalloc(1, sizeof(*it));
    it->work = work;
    it->done = done;
    it->arg = arg;
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    w->pending++;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

int workq_pending(workq *w)
{
    pthread_mutex_lock(&w->lock);
    int n = w->pending;
    pthread_mutex_unlock(&w->lock);
    return n;
}

int workq_busy(workq *w)
{
    pthread_mutex_lock(&w->lock);
    int b = w->busy;
    pthread_mutex_unlock(&w->lock);
    return b;
}

int workq_free(workq *w, int wait_ms)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    item *list = w->head;
    w->head = w->tail = NULL;
    pthread_cond_broadcast(&w->wake);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    while (!w->exited && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->idle, &w->lock, &until);
    int exited = w->exited;
    pthread_mutex_unlock(&w->lock);
    while (list) {
        item *n = list->next;
        list->done(list->arg, 1);
        free(list);
        list = n;
    }
    if (!exited) {
        pthread_detach(w->thread);
        return -1;
    }
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->idle);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
    return 0;
}
