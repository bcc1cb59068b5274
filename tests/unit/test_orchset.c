/* Unit tests of scheduler/orchset: the migrations a replica drives and their release on a later
 * loop turn. The first test is the double free of issue 13, reproduced with the real libevent
 * loop: an RPC reply (a readable socket) and an overdue tick (a timer already expired) handled
 * in one loop pass, each giving the same migration up, as orch.c does when a step's transition
 * finds the migration adopted by another replica (the reply) and the lease renewal no longer
 * returns it (the tick). */
#include "testlib.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "orchset.h"

typedef struct obj {
    int64_t id;
    int *freed;
} obj;

static void obj_free(void *arg)
{
    obj *o = arg;
    (*o->freed)++;
    free(o);
}

typedef struct pass {
    orchset *set;
    int freed;
    char order[8]; /* 'r' for the reply, 't' for the tick, in the order they ran */
    int freed_at_tick;
} pass;

/* what the orchestration does on a reply whose step could not record its transition: it
 * stops driving the migration */
static void on_reply(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    pass *p = arg;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    strncat(p->order, "r", sizeof(p->order) - strlen(p->order) - 1);
    obj *o = orchset_find(p->set, 7);
    if (o)
        orchset_retire(p->set, o);
}

/* what the tick does for a migration the lease renewal did not return */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pass *p = arg;
    strncat(p->order, "t", sizeof(p->order) - strlen(p->order) - 1);
    p->freed_at_tick = p->freed;
    obj *o = orchset_find(p->set, 7);
    if (o)
        orchset_retire(p->set, o);
}

static void test_reply_and_overdue_tick_in_one_pass(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    pass p = {0};
    p.set = orchset_new(base, obj_free);
    obj *o = xcalloc(1, sizeof(*o));
    o->id = 7;
    o->freed = &p.freed;
    orchset_add(p.set, 7, o);
    assert_ptr_equal(orchset_find(p.set, 7), o);
    assert_int_equal(orchset_count(p.set), 1);

    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct event *rd = event_new(base, sv[0], EV_READ, on_reply, &p);
    struct event *tick = evtimer_new(base, on_tick, &p);
    assert_int_equal(event_add(rd, NULL), 0);
    /* the reply is waiting in the socket and the tick is due: one pass sees both, the socket
     * first (libevent activates I/O before expired timers), as when the loop was held up */
    assert_int_equal(write(sv[1], "x", 1), 1);
    struct timeval zero = {0, 0};
    assert_int_equal(event_add(tick, &zero), 0);
    usleep(10000);
    assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
    /* both callbacks ran in that one pass, before anything was freed */
    assert_string_equal(p.order, "rt");
    assert_int_equal(p.freed_at_tick, 0);
    /* whatever the release scheduled runs now */
    assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    assert_int_equal(p.freed, 1);
    assert_null(orchset_find(p.set, 7));
    assert_int_equal(orchset_count(p.set), 0);

    event_free(rd);
    event_free(tick);
    close(sv[0]);
    close(sv[1]);
    orchset_free(p.set);
    assert_int_equal(p.freed, 1);
    event_base_free(base);
}

/* a callback that gives its own object up still holds it until it returns */
static void give_up_twice(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pass *p = arg;
    obj *o = orchset_find(p->set, 7);
    assert_non_null(o);
    orchset_retire(p->set, o);
    assert_null(orchset_find(p->set, 7));
    assert_int_equal(orchset_count(p->set), 1); /* id 8 stays */
    orchset_retire(p->set, o);                  /* again: nothing */
    assert_int_equal(o->id, 7);                 /* still valid here */
    assert_int_equal(p->freed, 0);
}

static void test_retire_frees_once_after_the_callback(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    pass p = {0};
    p.set = orchset_new(base, obj_free);
    for (int64_t id = 7; id <= 8; id++) {
        obj *o = xcalloc(1, sizeof(*o));
        o->id = id;
        o->freed = &p.freed;
        orchset_add(p.set, id, o);
    }
    int n = 0;
    _cleanup_free_ int64_t *ids = orchset_ids(p.set, &n);
    assert_int_equal(n, 2);
    assert_true((ids[0] == 7 && ids[1] == 8) || (ids[0] == 8 && ids[1] == 7));
    struct event *ev = evtimer_new(base, give_up_twice, &p);
    struct timeval zero = {0, 0};
    assert_int_equal(event_add(ev, &zero), 0);
    assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
    assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    assert_int_equal(p.freed, 1);
    assert_non_null(orchset_find(p.set, 8));
    /* the set frees what it still drives */
    orchset_free(p.set);
    assert_int_equal(p.freed, 2);
    event_free(ev);
    event_base_free(base);
}

/* A replica may drive thousands of migrations, found by id on every lease pass: each one is
 * found after the set grew, retired ones are not, and the count follows. */
static void test_many(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int freed = 0;
    orchset *set = orchset_new(base, obj_free);
    obj *objs[5000];
    for (int i = 0; i < 5000; i++) {
        objs[i] = xcalloc(1, sizeof(obj));
        objs[i]->id = 1000 + (int64_t)i * 7;
        objs[i]->freed = &freed;
        orchset_add(set, objs[i]->id, objs[i]);
    }
    assert_int_equal(orchset_count(set), 5000);
    for (int i = 0; i < 5000; i++)
        assert_ptr_equal(orchset_find(set, objs[i]->id), objs[i]);
    assert_null(orchset_find(set, 999));
    for (int i = 0; i < 5000; i += 2)
        orchset_retire(set, objs[i]);
    assert_int_equal(orchset_count(set), 2500);
    for (int i = 0; i < 5000; i++)
        assert_ptr_equal(orchset_find(set, objs[i]->id), i % 2 ? objs[i] : NULL);
    int n = 0;
    _cleanup_free_ int64_t *ids = orchset_ids(set, &n);
    assert_int_equal(n, 2500);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(freed, 2500);
    orchset_free(set);
    assert_int_equal(freed, 5000);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_reply_and_overdue_tick_in_one_pass),
        cmocka_unit_test(test_retire_frees_once_after_the_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
