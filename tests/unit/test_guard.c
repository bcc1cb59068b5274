/* Unit tests of guard: the rules the agent applies to what it is sent — paths confined to
 * its trusted directories (strings, then a real temporary tree with symlinks planted in it),
 * the shared-storage probe name, host names and destination addresses, epoch fencing. Every
 * hostile case checks both the refusal and that its reason names the value and the rule. */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../compute-agent/guard.h"

static const char *const roots[] = {"/var/lib/ferry/instances", "/var/lib/ferry/local/"};

/* guard_path on a C string; returns the reason (caller frees) or NULL when accepted */
static char *path_why(const char *path, size_t *root, const char **rel)
{
    char *why = NULL;
    size_t r = 99;
    const char *l = NULL;
    int rc = guard_path(path, strlen(path), roots, 2, &r, &l, &why);
    if (rc == 0) {
        assert_null(why);
        if (root)
            *root = r;
        if (rel)
            *rel = l;
        return NULL;
    }
    assert_int_equal(rc, -1);
    assert_non_null(why);
    return why;
}

static void refused_path(const char *path, const char *rule)
{
    char *why = path_why(path, NULL, NULL);
    if (!why)
        fail_msg("path %s accepted", path);
    if (!strstr(why, rule))
        fail_msg("path %s: reason '%s' does not say '%s'", path, why, rule);
    free(why);
}

static void test_path_strings(void **state)
{
    (void)state;
    size_t root;
    const char *rel;
    assert_null(path_why("/var/lib/ferry/instances/vm1.qcow2", &root, &rel));
    assert_int_equal(root, 0);
    assert_string_equal(rel, "vm1.qcow2");
    assert_null(path_why("/var/lib/ferry/instances/a/b/vm1.qcow2", &root, &rel));
    assert_string_equal(rel, "a/b/vm1.qcow2");
    assert_null(path_why("/var/lib/ferry/local/vm1.qcow2", &root, &rel)); /* root given with a trailing '/' */
    assert_int_equal(root, 1);
    assert_string_equal(rel, "vm1.qcow2");
    assert_null(path_why("/var/lib/ferry/instances/..x/.ferry-probe-1-00000000", NULL, NULL)); /* dots in a name */

    refused_path("../x", "is not absolute");
    refused_path("a/../../x", "is not absolute");
    refused_path("vm1.qcow2", "is not absolute");
    refused_path("/etc/passwd", "path /etc/passwd is outside /var/lib/ferry/instances or /var/lib/ferry/local/");
    refused_path("/var/lib/ferry/instances/../../../etc/passwd", "has a '..' component");
    refused_path("/var/lib/ferry/instances/a/../../x", "has a '..' component");
    refused_path("/var/lib/ferry/instances/..", "has a '..' component");
    refused_path("/var/lib/ferry/instances/./x", "has a '.' component");
    refused_path("/var/lib/ferry/instances//x", "empty component");
    refused_path("/var/lib/ferry/instances/", "empty component");
    refused_path("/var/lib/ferry/instances", "is outside");
    refused_path("/var/lib/ferry/instancesX/vm", "is outside"); /* a sibling sharing the prefix */
    refused_path("/var/lib/ferry/instances/vm\n1", "control byte");
    refused_path("", "is empty");

    /* a NUL in the middle: "/var/lib/ferry/instances/ok\0/../../../etc/shadow" */
    static const char nul[] = "/var/lib/ferry/instances/ok\0/../../etc/shadow";
    char *why = NULL;
    const char *l;
    assert_int_equal(guard_path(nul, sizeof(nul) - 1, roots, 2, &root, &l, &why), -1);
    assert_non_null(strstr(why, "NUL byte"));
    free(why);

    /* too long, as a whole and as one component */
    char *big = xmalloc(GUARD_PATH_MAX + 64);
    strcpy(big, "/var/lib/ferry/instances/");
    memset(big + strlen(big), 'a', GUARD_PATH_MAX);
    big[GUARD_PATH_MAX + 10] = '\0';
    refused_path(big, "longer than 4095");
    big[25 + 300] = '\0';
    refused_path(big, "component longer than 255");
    free(big);

    /* no roots at all: nothing is inside */
    why = NULL;
    assert_int_equal(guard_path("/x/y", 4, roots, 0, &root, &l, &why), -1);
    assert_non_null(strstr(why, "outside every allowed directory"));
    free(why);
}

/* ---- the file system -------------------------------------------------------------------------- */

typedef struct tree {
    char dir[64];      /* the temporary tree */
    char root[128];    /* <dir>/instances: the trusted root */
    char outside[128]; /* <dir>/outside: where a symlink points */
} tree;

static int tree_setup(void **state)
{
    tree *t = xcalloc(1, sizeof(*t));
    strcpy(t->dir, "/tmp/ferry-guard-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->root, sizeof(t->root), "%s/instances", t->dir);
    snprintf(t->outside, sizeof(t->outside), "%s/outside", t->dir);
    assert_int_equal(mkdir(t->root, 0755), 0);
    assert_int_equal(mkdir(t->outside, 0755), 0);
    assert_int_equal(
        test_sh("echo secret > %s/victim && mkdir %s/real && : > %s/real/img", t->outside, t->root, t->root), 0);
    /* the planted links: a directory link and a file link pointing outside */
    assert_int_equal(test_sh("ln -s %s %s/linkdir && ln -s %s/victim %s/linkfile && ln -s %s %s/real/deeplink",
                             t->outside, t->root, t->outside, t->root, t->outside, t->root),
                     0);
    *state = t;
    return 0;
}

static int tree_teardown(void **state)
{
    tree *t = *state;
    assert_int_equal(test_sh("rm -rf %s", t->dir), 0);
    free(t);
    return 0;
}

static int exists(const char *dir, const char *name)
{
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
    struct stat st;
    return lstat(p, &st) == 0;
}

/* rc and *why of a call made before (the call is an argument: evaluated before *why is read) */
static void expect_fs_refusal(int rc, char **why, const char *rule)
{
    assert_int_equal(rc, -1);
    assert_non_null(*why);
    if (!strstr(*why, rule))
        fail_msg("reason '%s' does not say '%s'", *why, rule);
    free(*why);
    *why = NULL;
}

static void test_create_confined(void **state)
{
    tree *t = *state;
    int fd = -1;
    char *why = NULL;
    /* a new file, with the directories on the way */
    assert_int_equal(guard_check_place(t->root, "new/sub/vm.qcow2", &why), 0);
    assert_false(exists(t->root, "new")); /* the check made nothing */
    assert_int_equal(guard_create_file(t->root, "new/sub/vm.qcow2", &fd, &why), 1);
    assert_true(fd >= 0);
    close(fd);
    assert_true(exists(t->root, "new/sub/vm.qcow2"));
    /* again: there already, a regular file (idempotent) */
    assert_int_equal(guard_create_file(t->root, "new/sub/vm.qcow2", &fd, &why), 0);
    assert_int_equal(fd, -1);

    /* through a directory symlink: refused, nothing made outside */
    expect_fs_refusal(guard_check_place(t->root, "linkdir/evil.qcow2", &why), &why, "linkdir is a symlink");
    expect_fs_refusal(guard_create_file(t->root, "linkdir/evil.qcow2", &fd, &why), &why,
                      "a path may not go through a symlink");
    assert_false(exists(t->outside, "evil.qcow2"));
    expect_fs_refusal(guard_create_file(t->root, "real/deeplink/sub/evil.qcow2", &fd, &why), &why,
                      "real/deeplink is a symlink");
    assert_false(exists(t->outside, "sub"));
    /* onto a file symlink: refused, the victim untouched */
    expect_fs_refusal(guard_check_place(t->root, "linkfile", &why), &why, "linkfile is a symlink");
    expect_fs_refusal(guard_create_file(t->root, "linkfile", &fd, &why), &why, "linkfile is a symlink");
    assert_int_equal(test_sh("grep -qx secret %s/victim", t->outside), 0);
    /* a directory where a file should be */
    expect_fs_refusal(guard_create_file(t->root, "real", &fd, &why), &why, "is not a regular file");
    /* a file where a directory should be */
    expect_fs_refusal(guard_create_file(t->root, "real/img/x", &fd, &why), &why, "real/img is not a directory");
    /* not relative, or with '..': refused before any walk */
    expect_fs_refusal(guard_create_file(t->root, "../outside/x", &fd, &why), &why, "'..' component");
    expect_fs_refusal(guard_create_file(t->root, "/etc/x", &fd, &why), &why, "is not relative");
    assert_false(exists(t->outside, "x"));
}

static void test_unlink_confined(void **state)
{
    tree *t = *state;
    char *why = NULL;
    assert_int_equal(test_sh(": > %s/.ferry-probe-7-0000abcd", t->root), 0);
    assert_int_equal(guard_unlink_file(t->root, ".ferry-probe-7-0000abcd", &why), 1);
    assert_false(exists(t->root, ".ferry-probe-7-0000abcd"));
    assert_int_equal(guard_unlink_file(t->root, ".ferry-probe-7-0000abcd", &why), 0); /* absent */
    assert_int_equal(guard_unlink_file(t->root, "nodir/x", &why), 0);                 /* absent dir */
    assert_null(why);
    /* a symlink is never removed, nor its target */
    expect_fs_refusal(guard_unlink_file(t->root, "linkfile", &why), &why, "linkfile is a symlink: not removed");
    assert_true(exists(t->root, "linkfile"));
    assert_true(exists(t->outside, "victim"));
    /* nor anything behind a symlinked directory */
    expect_fs_refusal(guard_unlink_file(t->root, "linkdir/victim", &why), &why, "linkdir is a symlink");
    assert_true(exists(t->outside, "victim"));
    /* nor a directory */
    expect_fs_refusal(guard_unlink_file(t->root, "real", &why), &why, "is not a regular file");
    assert_true(exists(t->root, "real"));
}

/* ---- the probe memo ---------------------------------------------------------------------------- */

static void test_probe_memo(void **state)
{
    (void)state;
    guard_probe_memo m = {0};
    char name[48];
    assert_false(guard_probe_memo_has(&m, ""));
    assert_false(guard_probe_memo_has(&m, ".ferry-probe-1-00000000"));
    /* one more than it keeps: the oldest is forgotten, the others and the newest stay */
    for (uint32_t i = 0; i <= GUARD_PROBE_MEMO; i++) {
        guard_probe_name(name, sizeof(name), 1, i);
        guard_probe_memo_add(&m, name);
        guard_probe_memo_add(&m, name); /* twice: kept once */
    }
    assert_false(guard_probe_memo_has(&m, ".ferry-probe-1-00000000"));
    for (uint32_t i = 1; i <= GUARD_PROBE_MEMO; i++) {
        guard_probe_name(name, sizeof(name), 1, i);
        assert_true(guard_probe_memo_has(&m, name));
    }
    guard_probe_name(name, sizeof(name), 2, 1); /* another migration's, same salt */
    assert_false(guard_probe_memo_has(&m, name));
    /* too long to be a probe: never kept, never found */
    char long_name[80];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    guard_probe_memo_add(&m, long_name);
    assert_false(guard_probe_memo_has(&m, long_name));
}

/* ---- the probe name --------------------------------------------------------------------------- */

static void refused_probe(const char *name, size_t len, int64_t mig)
{
    char *why = NULL;
    if (guard_probe_check(name, len, mig, &why) == 0)
        fail_msg("probe name %s accepted for migration %lld", name, (long long)mig);
    assert_non_null(strstr(why, "is not ferry's probe of migration"));
    free(why);
}

static void test_probe(void **state)
{
    (void)state;
    char name[48], *why = NULL;
    guard_probe_name(name, sizeof(name), 17, 0xdeadbeef);
    assert_string_equal(name, ".ferry-probe-17-deadbeef");
    assert_int_equal(guard_probe_check(name, strlen(name), 17, &why), 0);
    guard_probe_name(name, sizeof(name), 9223372036854775807LL, 0);
    assert_string_equal(name, ".ferry-probe-9223372036854775807-00000000");
    assert_int_equal(guard_probe_check(name, strlen(name), 9223372036854775807LL, &why), 0);
    assert_null(why);

    refused_probe(".ferry-probe-17-deadbeef", 24, 18); /* another migration's */
    refused_probe(".ferry-probe-17-DEADBEEF", 24, 17); /* not ours: uppercase */
    refused_probe(".ferry-probe-17-deadbee", 23, 17);
    refused_probe(".ferry-probe-17-deadbeef0", 25, 17);
    refused_probe(".ferry-probe-17-deadbeeg", 24, 17);
    refused_probe("vm1.qcow2", 9, 17); /* a guest's disk */
    refused_probe("../etc/passwd", 13, 17);
    refused_probe("../.ferry-probe-17-deadbeef", 27, 17);
    refused_probe("x/.ferry-probe-17-deadbeef", 26, 17);
    refused_probe("", 0, 17);
    refused_probe(".ferry-probe-17-dead\0eef", 24, 17); /* NUL in the middle */
}

/* ---- host names and addresses ----------------------------------------------------------------- */

static void ok_address(const char *s)
{
    char *why = NULL;
    if (guard_address(s, strlen(s), &why) != 0)
        fail_msg("address %s refused: %s", s, why);
}

static void refused_address_n(const char *s, size_t len, const char *rule)
{
    char *why = NULL;
    if (guard_address(s, len, &why) == 0)
        fail_msg("address %s accepted", s);
    if (!strstr(why, rule))
        fail_msg("address %s: reason '%s' does not say '%s'", s, why, rule);
    free(why);
}

static void refused_address(const char *s, const char *rule)
{
    refused_address_n(s, strlen(s), rule);
}

static void test_address(void **state)
{
    (void)state;
    ok_address("compute2");
    ok_address("compute2.example.com");
    ok_address("169.254.77.12");
    ok_address("169.254.77.12:16509");
    ok_address("[::1]");
    ok_address("[::1]:16509");
    ok_address("[fe80::1]:1");
    ok_address("host:65535");
    ok_address("a-b.c");

    /* URI parameter injection: the attack, and the qemu+ssh command= variant */
    refused_address("x/system?command=id&", "is not a host name");
    refused_address("x/system?socket=/tmp/evil&", "is not a host name");
    refused_address("compute2/system?no_verify=1", "is not a host name");
    refused_address("user@compute2", "is not a host name");
    refused_address("compute2 -oProxyCommand=id", "is not a host name");
    refused_address("comp%75te2", "is not a host name");
    refused_address("compute2#frag", "is not a host name");
    refused_address("compute2\n", "is not a host name");
    refused_address("compute2:16509/system?command=id", "port that is not a number");
    refused_address("host:0", "port that is not a number in 1..65535");
    refused_address("host:65536", "port that is not a number in 1..65535");
    refused_address("host:016509", "port");
    refused_address("host:", "port");
    refused_address("host:+80", "port");
    refused_address("1.2.3.4:99999", "port");
    refused_address("::1", "an IPv6 address needs brackets");
    refused_address("[::1", "no closing ']'");
    refused_address("[::1]x", "something other than ':port'");
    refused_address("[fe80::1%eth0]", "zones are not allowed");
    refused_address("[not-v6]", "no valid IPv6 address");
    refused_address("1.2.3.999", "not a valid dotted IPv4 address");
    refused_address("1.2.3", "not a valid dotted IPv4 address");
    refused_address("-compute2", "is not a host name");
    refused_address("", "is empty");
    refused_address_n("compute2\0.evil", 14, "contains a NUL byte");
    char big[300];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    refused_address(big, "longer than 260");
}

static void refused_host(const char *s, const char *rule)
{
    char *why = NULL;
    if (guard_host_name(s, strlen(s), &why) == 0)
        fail_msg("host name %s accepted", s);
    if (!strstr(why, rule))
        fail_msg("host name %s: reason '%s' does not say '%s'", s, why, rule);
    free(why);
}

static void test_host_name(void **state)
{
    (void)state;
    char *why = NULL;
    assert_int_equal(guard_host_name("compute1", 8, &why), 0);
    assert_int_equal(guard_host_name("c1.example.com", 14, &why), 0);
    assert_int_equal(guard_host_name("1compute", 8, &why), 0); /* RFC 1123 allows a leading digit */
    char label[70];
    memset(label, 'a', 63);
    label[63] = '\0';
    assert_int_equal(guard_host_name(label, 63, &why), 0);
    assert_null(why);
    label[63] = 'a';
    label[64] = '\0';
    refused_host(label, "label longer than 63 bytes");
    char *long_name = xmalloc(300);
    long_name[0] = '\0';
    for (int i = 0; i < 64; i++)
        strcat(long_name, "abc.");
    strcat(long_name, "x");
    refused_host(long_name, "longer than 253 bytes");
    free(long_name);
    refused_host("", "is empty");
    refused_host("a..b", "empty label");
    refused_host(".a", "empty label");
    refused_host("a.", "ends with '.'");
    refused_host("-a", "starting or ending with '-'");
    refused_host("a-", "starting or ending with '-'");
    refused_host("a_b", "not a letter, digit");
    refused_host("a/b", "not a letter, digit");
    refused_host("a b", "not a letter, digit");
    refused_host("c1.x.heartbeat*", "not a letter, digit");
    refused_host("10.0.0.1", "all-digit label");
    assert_int_equal(guard_host_name("ab\0cd", 5, &why), -1);
    assert_non_null(strstr(why, "contains a NUL byte"));
    free(why);
}

static void test_plain_name(void **state)
{
    (void)state;
    char *why = NULL;
    assert_int_equal(guard_plain_name("virbr0", 6, 15, &why), 0);
    assert_int_equal(guard_plain_name("default", 7, 64, &why), 0);
    assert_null(why);
    const char *bad[] = {"..", ".", "../../etc", "br/0", "br 0", "", "averyveryverylongname"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(guard_plain_name(bad[i], strlen(bad[i]), 15, &why), -1);
        assert_non_null(strstr(why, "name '"));
        free(why);
        why = NULL;
    }
    assert_int_equal(guard_plain_name("br\0x", 4, 15, &why), -1);
    assert_non_null(strstr(why, "NUL"));
    free(why);
}

/* ---- fencing ------------------------------------------------------------------------------------ */

static void test_epoch(void **state)
{
    (void)state;
    char *why = NULL;
    assert_int_equal(guard_epoch(7, 0, 0, &why), 0); /* nobody seen, none sent: ferryctl by hand */
    assert_int_equal(guard_epoch(7, 0, 3, &why), 0); /* the first owner */
    assert_int_equal(guard_epoch(7, 3, 3, &why), 0); /* the same owner again */
    assert_int_equal(guard_epoch(7, 3, 4, &why), 0); /* the adopter */
    assert_null(why);
    assert_int_equal(guard_epoch(7, 4, 3, &why), -1); /* the old owner, after the adoption */
    assert_string_equal(
        why, "stale epoch 3 for migration 7: epoch 4 was already seen here (another scheduler replica owns it now)");
    free(why);
    why = NULL;
    assert_int_equal(guard_epoch(7, 4, 0, &why), -1); /* no epoch at all, once a scheduler drove it */
    assert_non_null(strstr(why, "stale epoch 0"));
    free(why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_strings),
        cmocka_unit_test_setup_teardown(test_create_confined, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(test_unlink_confined, tree_setup, tree_teardown),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_probe_memo),
        cmocka_unit_test(test_address),
        cmocka_unit_test(test_host_name),
        cmocka_unit_test(test_plain_name),
        cmocka_unit_test(test_epoch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
