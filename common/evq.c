#include "evq.h"

#include <pthread.h>

typedef struct item {
    struct item *next;
    evq_fn fn;
    void *arg;
} item;

struct evq {
    pthread_mutex_t lock;
    item *head, *tail;
    struct event *ev;
};

static void run_all(evq *q)
{
    for (;;) {
        pthread_mutex_lock(&q->lock);
        item *list = q->head;
        q->head = q->tail = NULL;
        pthread_mutex_unlock(&q->lock);
        if (!list)
            return;
        while (list) {
            item *n = list->next;
            list->fn(list->arg);
            free(list);
            list = n;
        }
    }
}

static void on_active(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_all(arg);
}

evq *evq_new(struct event_base *base)
{
    evq *q = xcalloc(1, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    q->ev = event_new(base, -1, 0, on_active, q);
    return q;
}

void evq_free(evq *q)
{
    if (!q)
        return;
    run_all(q);
    event_free(q->ev);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

void evq_post(evq *q, evq_fn fn, void *arg)
{
    item *it = xcalloc(1, sizeof(*it));
    it->fn = fn;
    it->arg = arg;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    pthread_mutex_unlock(&q->lock);
    /* thread-safe with evthread_use_pthreads(); activating an active event is a no-op */
    event_active(q->ev, 0, 0);
}
