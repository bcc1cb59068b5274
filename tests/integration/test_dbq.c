/* Integration tests of common/dbq against the real PostgreSQL of the harness: the work runs on
 * the worker's own connection in submission order and its continuation on the loop's thread; a
 * long statement shows as a stall while the loop goes on; a connection lost between jobs is
 * reopened by the worker; a stop abandons a job stuck in the server within its grace and
 * finishes the jobs never started. */
#include "testlib.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "dbq.h"

typedef struct rec {
    pthread_t loop;
    int n, on_loop, off_loop_work;
    int order[64], rcs[64];
    char vals[64][32];
    char err[256];
} rec;

typedef struct item {
    rec *r;
    int i;
    const char *sql;
    char val[32];
} item;

static int work(db_conn *db, void *arg, char **err)
{
    item *it = arg;
    if (!pthread_equal(pthread_self(), it->r->loop))
        __atomic_add_fetch(&it->r->off_loop_work, 1, __ATOMIC_SEQ_CST);
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r, it->sql, 0, NULL) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    strlcpy_f(it->val, PQntuples(r) ? PQgetvalue(r, 0, 0) : "", sizeof(it->val));
    return 0;
}

static void done(void *arg, int rc, char *err)
{
    item *it = arg;
    rec *r = it->r;
    if (pthread_equal(pthread_self(), r->loop))
        r->on_loop++;
    r->rcs[r->n] = rc;
    strlcpy_f(r->vals[r->n], it->val, sizeof(r->vals[0]));
    r->order[r->n++] = it->i;
    if (err)
        strlcpy_f(r->err, err, sizeof(r->err));
    free(err);
    free(it);
}

static void submit(dbq *q, rec *r, int i, const char *sql)
{
    item *it = xcalloc(1, sizeof(*it));
    it->r = r;
    it->i = i;
    it->sql = sql;
    dbq_submit(q, work, done, it);
}

static void wait_for(struct event_base *base, rec *r, int n, int ms)
{
    int64_t until = mono_ms() + ms;
    while (r->n < n && mono_ms() < until) {
        assert_true(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) >= 0);
        usleep(2000);
    }
    assert_int_equal(r->n, n);
}

static dbq *new_q(struct event_base *base, int64_t stall_ms, int statement_timeout_ms)
{
    db_options o = {.dsn = test_env("FERRY_TEST_PG_DSN"),
                    .connect_timeout_s = 5,
                    .statement_timeout_ms = statement_timeout_ms,
                    .tx_retries = 3,
                    .application_name = "ferry-test-dbq"};
    return dbq_new(base, &o, stall_ms);
}

static void test_order_and_threads(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    rec r = {.loop = pthread_self()};
    dbq *q = new_q(base, 2000, 20000);
    static char sql[20][48];
    for (int i = 0; i < 20; i++) {
        snprintf(sql[i], sizeof(sql[i]), "SELECT %d + 1000", i);
        submit(q, &r, i, sql[i]);
    }
    wait_for(base, &r, 20, 20000);
    for (int i = 0; i < 20; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d", i + 1000);
        assert_int_equal(r.order[i], i);
        assert_int_equal(r.rcs[i], 0);
        assert_string_equal(r.vals[i], want);
    }
    assert_int_equal(r.on_loop, 20);
    assert_int_equal(r.off_loop_work, 20);
    assert_int_equal(dbq_connected(q), 1);
    dbq_free(q, 1000);
    event_base_free(base);
}

static void test_stall_is_seen_while_the_loop_runs(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    rec r = {.loop = pthread_self()};
    dbq *q = new_q(base, 300, 20000);
    submit(q, &r, 0, "SELECT 1");
    wait_for(base, &r, 1, 20000);
    submit(q, &r, 1, "SELECT pg_sleep(2)::text");
    submit(q, &r, 2, "SELECT 'after'");
    int seen_stall = 0, loop_turns = 0;
    int64_t until = mono_ms() + 20000;
    dbq_health h;
    while (r.n < 3 && mono_ms() < until) {
        assert_true(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK) >= 0);
        loop_turns++;
        dbq_get_health(q, &h);
        if (h.stalled) {
            seen_stall = 1;
            assert_true(h.running_ms >= 300);
            assert_int_equal(h.connected, 1);
            assert_true(h.queued <= 1);
        }
        usleep(5000);
    }
    assert_int_equal(r.n, 3);
    assert_true(seen_stall);
    assert_true(loop_turns > 100); /* the loop went round all along (5 ms a turn, 2 s) */
    assert_string_equal(r.vals[2], "after");
    dbq_get_health(q, &h);
    assert_int_equal(h.stalled, 0);
    assert_int_equal(h.running_ms, 0);
    dbq_free(q, 1000);
    event_base_free(base);
}

static void test_reconnects_after_a_lost_connection(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    rec r = {.loop = pthread_self()};
    dbq *q = new_q(base, 2000, 20000);
    submit(q, &r, 0, "SELECT pg_backend_pid()");
    wait_for(base, &r, 1, 20000);
    /* another session ends the worker's */
    db_options o = {.dsn = test_env("FERRY_TEST_PG_DSN"), .connect_timeout_s = 5};
    db_conn *admin = NULL;
    char *err = NULL;
    if (db_open(&o, &admin, &err) < 0)
        fail_msg("db_open: %s", err);
    const char *p[] = {r.vals[0]};
    assert_int_equal(db_exec(admin, NULL, "SELECT pg_terminate_backend($1::int)", 1, p), 0);
    db_close(admin);
    usleep(100000);
    /* the next statement finds the connection gone (db_exec reopens it on the call after) */
    submit(q, &r, 1, "SELECT pg_backend_pid()");
    wait_for(base, &r, 2, 20000);
    assert_int_equal(r.rcs[1], -1);
    assert_non_null(strstr(r.err, "connection"));
    assert_int_equal(dbq_connected(q), 0);
    submit(q, &r, 2, "SELECT pg_backend_pid()");
    wait_for(base, &r, 3, 20000);
    assert_int_equal(r.rcs[2], 0);
    assert_string_not_equal(r.vals[2], r.vals[0]);
    assert_int_equal(dbq_connected(q), 1);
    dbq_free(q, 1000);
    event_base_free(base);
}

static void test_stop_abandons_a_stuck_job(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    rec r = {.loop = pthread_self()};
    dbq *q = new_q(base, 300, 0);
    submit(q, &r, 0, "SELECT pg_sleep(60)::text");
    submit(q, &r, 1, "SELECT 'never'");
    dbq_health h = {0};
    int64_t until = mono_ms() + 20000;
    while (!h.stalled && mono_ms() < until) {
        usleep(20000);
        dbq_get_health(q, &h);
    }
    assert_true(h.stalled);
    int64_t t0 = mono_ms();
    dbq_free(q, 300);
    int64_t took = mono_ms() - t0;
    assert_true(took < 10000);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.rcs[0], -1); /* its connection was closed under it */
    assert_int_equal(r.rcs[1], -1); /* never started */
    assert_non_null(strstr(r.err, "stopping"));
    event_base_free(base);
}

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_threads),
        cmocka_unit_test(test_stall_is_seen_while_the_loop_runs),
        cmocka_unit_test(test_reconnects_after_a_lost_connection),
        cmocka_unit_test(test_stop_abandons_a_stuck_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
