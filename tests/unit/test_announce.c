/* Unit tests of announce: the MAC parser, the reading of a bridge's forwarding database
 * (records as the kernel's struct __fdb_entry lays them out), and announce_check on a sysfs
 * tree of the test's own: seen on the guest's port, seen on another port (the old host's side),
 * local entries, not a bridge port, hostile names. */
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../compute-agent/announce.h"

/* one 16-byte brforward record */
static void rec(uint8_t *r, const uint8_t mac[6], unsigned port, int local, uint32_t age)
{
    memset(r, 0, 16);
    memcpy(r, mac, 6);
    r[6] = (uint8_t)(port & 0xff);
    r[7] = (uint8_t)local;
    memcpy(r + 8, &age, 4);
    r[12] = (uint8_t)(port >> 8);
}

static const uint8_t GUEST[6] = {0x52, 0x54, 0x00, 0xfe, 0xb1, 0x0a};
static const uint8_t OTHER[6] = {0x52, 0x54, 0x00, 0xfe, 0xb1, 0x0b};

static void test_parse_mac(void **state)
{
    (void)state;
    uint8_t m[6];
    assert_int_equal(announce_parse_mac("52:54:00:FE:b1:0a", m), 0);
    assert_memory_equal(m, GUEST, 6);
    assert_int_equal(announce_parse_mac("52:54:00:fe:b1", m), -1);
    assert_int_equal(announce_parse_mac("52-54-00-fe-b1-0a", m), -1);
    assert_int_equal(announce_parse_mac("52:54:00:fe:b1:0g", m), -1);
    assert_int_equal(announce_parse_mac("52:54:00:fe:b1:0a:", m), -1);
    assert_int_equal(announce_parse_mac("", m), -1);
    assert_int_equal(announce_parse_mac(NULL, m), -1);
    assert_string_equal(announce_state_str(ANNOUNCE_SEEN), "seen");
    assert_string_equal(announce_state_str(ANNOUNCE_NOT_SEEN), "not_seen");
    assert_string_equal(announce_state_str(ANNOUNCE_UNKNOWN), "unknown");
}

static void test_fdb_find(void **state)
{
    (void)state;
    uint8_t buf[16 * 4 + 7];
    rec(buf, OTHER, 2, 0, 5);
    rec(buf + 16, GUEST, 1, 0, 700); /* on the port to the old host */
    rec(buf + 32, GUEST, 3, 1, 0);   /* a local entry with that MAC: not learned */
    rec(buf + 48, GUEST, 0x102, 0, 42);
    unsigned age = 0;
    assert_int_equal(announce_fdb_find(buf, 64, GUEST, 1, &age), 1);
    assert_int_equal(age, 700);
    assert_int_equal(announce_fdb_find(buf, 64, GUEST, 0x102, &age), 1); /* port_hi counts */
    assert_int_equal(age, 42);
    assert_int_equal(announce_fdb_find(buf, 64, GUEST, 2, NULL), 0);
    assert_int_equal(announce_fdb_find(buf, 64, GUEST, 3, NULL), 0);
    assert_int_equal(announce_fdb_find(buf, 64, OTHER, 2, NULL), 1);
    assert_int_equal(announce_fdb_find(buf, 63, GUEST, 0x102, NULL), 0); /* partial record ignored */
    assert_int_equal(announce_fdb_find(buf, 0, GUEST, 1, NULL), 0);
}

typedef struct tree {
    char dir[64];
} tree;

static void put(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void mkdirs(const char *root, const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        assert_true(mkdir(p, 0700) == 0 || errno == EEXIST);
        *s = '/';
    }
    assert_true(mkdir(p, 0700) == 0 || errno == EEXIST);
}

static int setup(void **state)
{
    tree *t = calloc(1, sizeof(*t));
    strcpy(t->dir, "/tmp/ferry-announce-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    mkdirs(t->dir, "class/net/ferrybr0");
    mkdirs(t->dir, "class/net/vnet0/brport");
    mkdirs(t->dir, "class/net/eth9");
    char p[512];
    snprintf(p, sizeof(p), "%s/class/net/vnet0/brport/port_no", t->dir);
    put(p, "0x2\n", 4);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tree *t = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
    free(t);
    return 0;
}

static void set_fdb(tree *t, const uint8_t *buf, size_t len)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/class/net/ferrybr0/brforward", t->dir);
    put(p, buf, len);
}

static void test_check(void **state)
{
    tree *t = *state;
    uint8_t buf[32];
    char *why = NULL;
    /* only on the port towards the old host: not (yet) announced here */
    rec(buf, GUEST, 1, 0, 100);
    set_fdb(t, buf, 16);
    assert_int_equal(announce_check(t->dir, "ferrybr0", "vnet0", "52:54:00:fe:b1:0a", &why), ANNOUNCE_NOT_SEEN);
    assert_null(why);
    /* learned on the guest's tap (port 2) */
    rec(buf + 16, GUEST, 2, 0, 3);
    set_fdb(t, buf, 32);
    assert_int_equal(announce_check(t->dir, "ferrybr0", "vnet0", "52:54:00:fe:b1:0a", &why), ANNOUNCE_SEEN);
    assert_int_equal(announce_check(t->dir, "ferrybr0", "vnet0", "52:54:00:FE:B1:0A", &why), ANNOUNCE_SEEN);
    assert_null(why);
    /* not a bridge port: unknown, with the reason */
    assert_int_equal(announce_check(t->dir, "ferrybr0", "eth9", "52:54:00:fe:b1:0a", &why), ANNOUNCE_UNKNOWN);
    assert_non_null(strstr(why, "eth9 is not a port of a Linux bridge here"));
    free(why);
    why = NULL;
    /* no such bridge */
    assert_int_equal(announce_check(t->dir, "nobr", "vnet0", "52:54:00:fe:b1:0a", &why), ANNOUNCE_UNKNOWN);
    assert_non_null(strstr(why, "nobr/brforward"));
    free(why);
    why = NULL;
    /* names that would leave class/net, and a bad MAC: refused before any file is opened */
    assert_int_equal(announce_check(t->dir, "../../etc", "vnet0", "52:54:00:fe:b1:0a", &why), ANNOUNCE_UNKNOWN);
    assert_non_null(strstr(why, "interface name"));
    free(why);
    why = NULL;
    assert_int_equal(announce_check(t->dir, "ferrybr0", "vnet0/../x", "52:54:00:fe:b1:0a", &why), ANNOUNCE_UNKNOWN);
    free(why);
    why = NULL;
    assert_int_equal(announce_check(t->dir, "ferrybr0", "vnet0", "zz", &why), ANNOUNCE_UNKNOWN);
    assert_non_null(strstr(why, "not a MAC address"));
    free(why);
    why = NULL;
    /* a port number that is not one */
    char p[512];
    snprintf(p, sizeof(p), "%s/class/net/vnet0/brport/port_no", t->dir);
    put(p, "two\n", 4);
    assert_int_equal(announce_check(t->dir, "ferrybr0", "vnet0", "52:54:00:fe:b1:0a", &why), ANNOUNCE_UNKNOWN);
    assert_non_null(strstr(why, "not a port number"));
    free(why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_mac),
        cmocka_unit_test(test_fdb_find),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
