/* mq_guard: a watchdog over a call into rabbitmq-c that may wait on the broker with no
 * deadline (see mq_priv.h). One thread per guard, asleep unless a call is under way. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "mq_priv.h"

struct mq_guard {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int armed, fired, stop, fd;
    int64_t deadline_ms; /* monotonic */
};

static void *guard_main(void *arg)
{
    mq_guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        if (!g->armed) {
            pthread_cond_wait(&g->cond, &g->lock);
            continue;
        }
        struct timespec ts = {.tv_sec = (time_t)(g->deadline_ms / 1000), .tv_nsec = (long)(g->deadline_ms % 1000) * 1000000};
        int rc = pthread_cond_timedwait(&g->cond, &g->lock, &ts);
        if (rc == ETIMEDOUT && g->armed && mono_ms() >= g->deadline_ms) {
            /* the call waits on a broker that says nothing: its socket shut down, the wait ends
             * with an error (the descriptor stays open: only the loop closes it) */
            shutdown(g->fd, SHUT_RDWR);
            g->fired = 1;
            g->armed = 0;
        }
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

mq_guard *mq_guard_new(void)
{
    mq_guard *g = xcalloc(1, sizeof(*g));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* mono_ms's clock */
    pthread_cond_init(&g->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&g->lock, NULL);
    g->fd = -1;
    if (pthread_create(&g->thread, NULL, guard_main, g) != 0) {
        pthread_cond_destroy(&g->cond);
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    return g;
}

void mq_guard_free(mq_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->stop = 1;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

void mq_guard_arm(mq_guard *g, int fd, int ms)
{
    if (!g || fd < 0)
        return;
    pthread_mutex_lock(&g->lock);
    g->fd = fd;
    g->deadline_ms = mono_ms() + ms;
    g->fired = 0;
    g->armed = 1;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

int mq_guard_disarm(mq_guard *g)
{
    if (!g)
        return 0;
    pthread_mutex_lock(&g->lock);
    g->armed = 0;
    int fired = g->fired;
    g->fired = 0;
    pthread_mutex_unlock(&g->lock);
    return fired;
}
