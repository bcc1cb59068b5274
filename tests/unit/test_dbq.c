/* Unit tests of common/dbq without a database: continuations run on the loop's thread in
 * submission order, a job whose connection cannot be opened fails with libpq's reason (its work
 * never runs), the health says so, and a stop finishes every job exactly once. The jobs against
 * a real PostgreSQL (order of the work, stall, abandon) are integration.dbq. */
#include "testlib.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "dbq.h"

typedef struct rec {
    pthread_t loop;
    int order[64];
    int n;
    int rcs[64];
    int on_loop; /* continuations that ran on the loop's thread */
    int worked;  /* works that ran (none may, without a database) */
    char last_err[256];
} rec;

typedef struct item {
    rec *r;
    int i;
} item;

static void done(void *arg, int rc, char *err)
{
    item *it = arg;
    rec *r = it->r;
    if (pthread_equal(pthread_self(), r->loop))
        r->on_loop++;
    r->rcs[r->n] = rc;
    r->order[r->n++] = it->i;
    if (err)
        strlcpy_f(r->last_err, err, sizeof(r->last_err));
    free(err);
    free(it);
}

static int work(db_conn *db, void *arg, char **err)
{
    (void)db;
    (void)err;
    ((item *)arg)->r->worked++;
    return 0;
}

static void submit(dbq *q, rec *r, int i, int with_work)
{
    item *it = xcalloc(1, sizeof(*it));
    it->r = r;
    it->i = i;
    dbq_submit(q, with_work ? work : NULL, done, it);
}

/* runs base until r holds n continuations, failing after 10 s */
static void wait_for(struct event_base *base, rec *r, int n)
{
    int64_t until = mono_ms() + 10000;
    while (r->n < n && mono_ms() < until) {
        assert_true(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) >= 0);
        usleep(1000);
    }
    assert_int_equal(r->n, n);
}

/* a DSN no server answers: a socket directory that does not exist fails at once */
static const db_options nowhere = {.dsn = "host=/nonexistent/ferry-dbq-test port=1 dbname=x connect_timeout=1",
                                   .connect_timeout_s = 1};

static void test_done_on_loop_in_order(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    rec r = {.loop = pthread_self()};
    dbq *q = dbq_new(base, &nowhere, 2000);
    for (int i = 0; i < 40; i++)
        submit(q, &r, i, 0);
    wait_for(base, &r, 40);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(r.order[i], i);
        assert_int_equal(r.rcs[i], 0);
    }
    assert_int_equal(r.on_loop, 40);
    dbq_free(q, 1000);
    event_base_free(base);
}

static void test_no_connection_fails_the_job(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    rec r = {.loop = pthread_self()};
    dbq *q = dbq_new(base, &nowhere, 2000);
    dbq_health h;
    dbq_get_health(q, &h);
    assert_int_equal(h.connected, 0);
    submit(q, &r, 1, 1);
    submit(q, &r, 2, 0);
    submit(q, &r, 3, 1);
    wait_for(base, &r, 3);
    assert_int_equal(r.worked, 0);
    assert_int_equal(r.rcs[0], -1);
    assert_int_equal(r.rcs[1], 0);
    assert_int_equal(r.rcs[2], -1);
    assert_int_equal(r.order[0], 1);
    assert_int_equal(r.order[2], 3);
    assert_non_null(strstr(r.last_err, "could not connect to PostgreSQL"));
    assert_int_equal(dbq_connected(q), 0);
    dbq_get_health(q, &h);
    assert_int_equal(h.connected, 0);
    assert_int_equal(h.stalled, 0);
    assert_non_null(strstr(h.error, "could not connect to PostgreSQL"));
    dbq_free(q, 1000);
    event_base_free(base);
}

static void test_stop_finishes_every_job_once(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    rec r = {.loop = pthread_self()};
    dbq *q = dbq_new(base, &nowhere, 2000);
    for (int i = 0; i < 30; i++)
        submit(q, &r, i, i % 2);
    /* the loop never ran: some jobs may be done and posted, the rest never started */
    dbq_free(q, 1000);
    assert_int_equal(r.n, 30);
    for (int i = 0; i < 30; i++)
        assert_int_equal(r.order[i], i);
    assert_int_equal(r.on_loop, 30); /* dbq_free runs them on its caller's thread, the loop's */
    assert_int_equal(r.rcs[29], -1);
    event_base_free(base);
}

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_done_on_loop_in_order),
        cmocka_unit_test(test_no_connection_fails_the_job),
        cmocka_unit_test(test_stop_finishes_every_job_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
