/* Unit tests of workq: work runs on another thread in submission order and its done on the
 * loop's thread; workq_free waits for the running work, cancels the queued items (done with
 * cancelled = 1) and reports a work that outlasts its wait. A real libevent loop and threads. */
#include "testlib.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "evq.h"
#include "workq.h"

typedef struct world {
    pthread_t loop_thread;
    struct event_base *base;
    evq *q;
    int work_order[8], nwork; /* written by the worker only */
    int done_order[8], ndone; /* written by the loop only */
    int cancelled[8], ncancelled;
    int on_worker_thread[8]; /* the work did not run on the loop's thread */
    int done_on_loop[8];
    pthread_mutex_t lock; /* guards open */
    pthread_cond_t opened;
    int open; /* a work that waits for the gate goes on once this is set */
} world;

typedef struct task {
    world *w;
    int n;
    int wait_gate;
} task;

static void task_work(void *arg)
{
    task *t = arg;
    if (t->wait_gate) {
        pthread_mutex_lock(&t->w->lock);
        while (!t->w->open)
            pthread_cond_wait(&t->w->opened, &t->w->lock);
        pthread_mutex_unlock(&t->w->lock);
    }
    t->w->on_worker_thread[t->n] = !pthread_equal(pthread_self(), t->w->loop_thread);
    t->w->work_order[t->w->nwork++] = t->n;
}

static void task_done(void *arg, int cancelled)
{
    task *t = arg;
    if (cancelled) {
        t->w->cancelled[t->w->ncancelled++] = t->n;
    } else {
        t->w->done_on_loop[t->n] = pthread_equal(pthread_self(), t->w->loop_thread);
        t->w->done_order[t->w->ndone++] = t->n;
    }
    free(t);
}

static task *new_task(world *w, int n, int wait_gate)
{
    task *t = xcalloc(1, sizeof(*t));
    t->w = w;
    t->n = n;
    t->wait_gate = wait_gate;
    return t;
}

static void world_init(world *w)
{
    memset(w, 0, sizeof(*w));
    evthread_use_pthreads();
    w->loop_thread = pthread_self();
    w->base = event_base_new();
    w->q = evq_new(w->base);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->opened, NULL);
}

static void open_gate(world *w)
{
    pthread_mutex_lock(&w->lock);
    w->open = 1;
    pthread_cond_broadcast(&w->opened);
    pthread_mutex_unlock(&w->lock);
}

static void world_free(world *w)
{
    evq_free(w->q);
    event_base_free(w->base);
    pthread_cond_destroy(&w->opened);
    pthread_mutex_destroy(&w->lock);
}

/* Runs the loop until want dones arrived (or 10 s). */
static void loop_until(world *w, int want)
{
    for (int i = 0; i < 1000 && w->ndone < want; i++) {
        event_base_loop(w->base, EVLOOP_NONBLOCK);
        usleep(10 * 1000);
    }
}

static void test_order_and_threads(void **state)
{
    (void)state;
    world w;
    world_init(&w);
    workq *q = workq_new(w.q, "test-workq");
    for (int i = 0; i < 5; i++)
        workq_submit(q, task_work, task_done, new_task(&w, i, 0));
    loop_until(&w, 5);
    assert_int_equal(w.ndone, 5);
    assert_int_equal(workq_pending(q), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(w.work_order[i], i);
        assert_int_equal(w.done_order[i], i);
        assert_true(w.on_worker_thread[i]);
        assert_true(w.done_on_loop[i]);
    }
    assert_int_equal(workq_free(q, 1000), 0);
    assert_int_equal(w.ncancelled, 0);
    world_free(&w);
}

/* The loop goes on while a work waits: its done comes only once the work ends. */
static void test_loop_not_blocked(void **state)
{
    (void)state;
    world w;
    world_init(&w);
    workq *q = workq_new(w.q, "test-workq");
    workq_submit(q, task_work, task_done, new_task(&w, 0, 1));
    workq_submit(q, task_work, task_done, new_task(&w, 1, 0));
    for (int i = 0; i < 500 && !workq_busy(q); i++)
        usleep(10 * 1000);
    assert_true(workq_busy(q));
    /* the loop turns and nothing is done: the second waits behind the first */
    for (int i = 0; i < 5; i++)
        assert_int_equal(event_base_loop(w.base, EVLOOP_NONBLOCK), 1);
    assert_int_equal(w.ndone, 0);
    assert_int_equal(workq_pending(q), 2);
    open_gate(&w);
    loop_until(&w, 2);
    assert_int_equal(w.ndone, 2);
    assert_int_equal(w.done_order[0], 0);
    assert_int_equal(w.done_order[1], 1);
    assert_int_equal(workq_free(q, 1000), 0);
    world_free(&w);
}

typedef struct opener {
    world *w;
    int after_ms;
} opener;

static void *open_gate_later(void *arg)
{
    opener *o = arg;
    usleep((useconds_t)o->after_ms * 1000);
    open_gate(o->w);
    return NULL;
}

/* workq_free: the running work is waited for (its done posted to the evq), the queued ones
 * are cancelled without running. */
static void test_free_waits_and_cancels(void **state)
{
    (void)state;
    world w;
    world_init(&w);
    workq *q = workq_new(w.q, "test-workq");
    opener o = {.w = &w, .after_ms = 100};
    pthread_t t;
    workq_submit(q, task_work, task_done, new_task(&w, 0, 1));
    workq_submit(q, task_work, task_done, new_task(&w, 1, 0));
    workq_submit(q, task_work, task_done, new_task(&w, 2, 0));
    for (int i = 0; i < 500 && !workq_busy(q); i++)
        usleep(10 * 1000);
    assert_true(workq_busy(q));
    /* the gate opens 100 ms into workq_free's wait */
    assert_int_equal(pthread_create(&t, NULL, open_gate_later, &o), 0);
    assert_int_equal(workq_free(q, 5000), 0);
    pthread_join(t, NULL);
    assert_int_equal(w.ncancelled, 2);
    assert_int_equal(w.cancelled[0], 1);
    assert_int_equal(w.cancelled[1], 2);
    assert_int_equal(w.nwork, 1); /* the cancelled ones never ran */
    world_free(&w);               /* runs the first one's posted done */
    assert_int_equal(w.ndone, 1);
    assert_int_equal(w.done_order[0], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_threads),
        cmocka_unit_test(test_loop_not_blocked),
        cmocka_unit_test(test_free_waits_and_cancels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
