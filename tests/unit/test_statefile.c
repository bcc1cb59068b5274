/* Unit tests of statefile: the agent's records in its state dir — the names of each kind, an
 * atomic write read back, a missing dir made, what sf_each skips (other kinds, temporary and
 * foreign files, files that are not a JSON object), a job record written and read back, and
 * the incoming migration found by its domain. A real temporary directory, no agent. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../compute-agent/statefile.h"

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/ferry-statefile-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static void rm_rf(const char *dir)
{
    assert_int_equal(test_sh("rm -rf '%s'", dir), 0);
}

static void put_file(const char *dir, const char *name, const char *text)
{
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_names(void **state)
{
    (void)state;
    _cleanup_free_ char *j = sf_name(SF_JOB, 12);
    _cleanup_free_ char *d = sf_name(SF_DEST, 7);
    _cleanup_free_ char *e = sf_name(SF_EPOCH, 9000000000LL);
    assert_string_equal(j, "job-12");
    assert_string_equal(d, "dest-7");
    assert_string_equal(e, "epoch-9000000000");
}

static void test_write_read_remove(void **state)
{
    (void)state;
    _cleanup_free_ char *top = tmpdir();
    _cleanup_free_ char *dir = xasprintf("%s/a/b", top); /* made on the first write */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "epoch", json_object_new_int64(3));
    assert_int_equal(sf_write(dir, "epoch-5", o, NULL), 0);
    json_object_put(o);
    _cleanup_free_ char *path = xasprintf("%s/epoch-5.json", dir);
    _cleanup_free_ char *tmp = xasprintf("%s/epoch-5.json.tmp", dir);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(access(tmp, F_OK), -1); /* renamed into place */
    json_object *r = sf_read(dir, "epoch-5"), *v;
    assert_non_null(r);
    assert_true(json_object_object_get_ex(r, "epoch", &v));
    assert_int_equal(json_object_get_int64(v), 3);
    json_object_put(r);
    sf_remove(dir, "epoch-5");
    assert_null(sf_read(dir, "epoch-5"));
    sf_remove(dir, "epoch-5");              /* absent is fine */
    put_file(dir, "dest-1.json", "[1, 2]"); /* JSON, not an object */
    assert_null(sf_read(dir, "dest-1"));
    put_file(dir, "dest-2.json", "{\"instance\":");
    assert_null(sf_read(dir, "dest-2"));
    rm_rf(top);
}

static void test_write_fails(void **state)
{
    (void)state;
    _cleanup_free_ char *top = tmpdir();
    put_file(top, "file", "x");
    _cleanup_free_ char *dir = xasprintf("%s/file/below", top); /* under a regular file */
    json_object *o = json_object_new_object();
    assert_int_equal(sf_write(dir, "job-1", o, NULL), -1);
    json_object_put(o);
    rm_rf(top);
}

typedef struct seen {
    int64_t ids[8];
    int n;
    int stop_after;
} seen;

static int collect(void *arg, int64_t migration, json_object *rec)
{
    seen *s = arg;
    assert_true(json_object_is_type(rec, json_type_object));
    s->ids[s->n++] = migration;
    return s->stop_after && s->n >= s->stop_after;
}

static void test_each(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    put_file(dir, "dest-3.json", "{}");
    put_file(dir, "dest-4.json.tmp", "{}");    /* a write cut short */
    put_file(dir, "dest-5.json", "[]");        /* not an object */
    put_file(dir, "dest-x.json", "{}");        /* no id */
    put_file(dir, "destination-6.json", "{}"); /* another prefix */
    put_file(dir, "job-7.json", "{}");         /* another kind */
    put_file(dir, "dest-8.txt", "{}");
    seen s = {0};
    sf_each(dir, SF_DEST, collect, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], 3);
    put_file(dir, "dest-9.json", "{}");
    seen t = {.stop_after = 1};
    sf_each(dir, SF_DEST, collect, &t);
    assert_int_equal(t.n, 1); /* stopped at the first */
    seen u = {0};
    _cleanup_free_ char *missing = xasprintf("%s/none", dir);
    sf_each(missing, SF_JOB, collect, &u);
    assert_int_equal(u.n, 0);
    rm_rf(dir);
}

static int check_job(void *arg, const sf_job *r)
{
    int *n = arg;
    (*n)++;
    assert_int_equal(r->migration, 42);
    assert_string_equal(r->instance, "6b6a3a2e-0000-4000-8000-000000000001");
    assert_string_equal(r->name, "vm1");
    assert_null(r->instance_id); /* left out when NULL */
    assert_string_equal(r->dest, "host2");
    assert_string_equal(r->uri, ""); /* written "" when NULL */
    assert_string_equal(r->data_address, "10.9.0.12");
    assert_null(r->tls_name); /* left out when NULL */
    assert_string_equal(r->state, "running");
    assert_int_equal(r->post_copy, 1);
    assert_int_equal(r->postcopy_active, 0);
    assert_null(r->error);
    json_object *v;
    assert_non_null(r->stats);
    assert_true(json_object_object_get_ex(r->stats, "downtime_ms", &v));
    assert_int_equal(json_object_get_int64(v), 17);
    return 0;
}

static void test_job_record(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    json_object *stats = json_object_new_object();
    json_object_object_add(stats, "downtime_ms", json_object_new_int64(17));
    sf_job r = {
        .migration = 42,
        .instance = "6b6a3a2e-0000-4000-8000-000000000001",
        .name = "vm1",
        .dest = "host2",
        .data_address = "10.9.0.12",
        .state = "running",
        .post_copy = 1,
        .stats = stats,
    };
    assert_int_equal(sf_job_write(dir, &r, NULL), 0);
    json_object_put(stats);
    int n = 0;
    sf_job_each(dir, check_job, &n);
    assert_int_equal(n, 1);
    rm_rf(dir);
}

static void test_dest_find(void **state)
{
    (void)state;
    _cleanup_free_ char *dir = tmpdir();
    put_file(dir, "dest-11.json", "{\"migration\":11,\"instance\":\"uuid-a\",\"instance_id\":\"i-0000000a\"}");
    put_file(dir, "dest-12.json", "{\"migration\":12,\"instance\":\"uuid-b\"}");
    char iid[64] = "junk";
    assert_int_equal(sf_dest_find(dir, "uuid-a", iid, sizeof(iid)), 11);
    assert_string_equal(iid, "i-0000000a");
    strcpy(iid, "junk");
    assert_int_equal(sf_dest_find(dir, "uuid-b", iid, sizeof(iid)), 12);
    assert_string_equal(iid, ""); /* no instance_id recorded */
    strcpy(iid, "junk");
    assert_int_equal(sf_dest_find(dir, "uuid-c", iid, sizeof(iid)), 0);
    assert_string_equal(iid, "");
    assert_int_equal(sf_dest_find(dir, "uuid-a", NULL, 0), 11);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names), cmocka_unit_test(test_write_read_remove), cmocka_unit_test(test_write_fails),
        cmocka_unit_test(test_each),  cmocka_unit_test(test_job_record),        cmocka_unit_test(test_dest_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
