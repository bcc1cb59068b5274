/* Unit tests of streams: QEMU's outgoing migration connections read from /proc/net/tcp and tcp6
 * texts (as the kernel prints them), told apart from incoming ones (a VNC client) by the
 * process's listening ports, grouped by peer; and the pid file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#include "../../compute-agent/streams.h"

/* QEMU with 3 connections to 169.254.91.12 (one main + two multifd, from the migration network
 * 169.254.141.11), a VNC client connected to its listening 5900, a connection of another
 * process (inode 999), a closed one (TIME_WAIT) and a listening socket. */
static const char tcp4[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:170C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 101 1 0 100 0 0 10 0\n"
    "   1: 0B8DFEA9:A000 0C5BFEA9:C001 01 00000000:00000000 00:00000000 00000000     0        0 102 1 0 20 4 30 10 -1\n"
    "   2: 0B8DFEA9:A001 0C5BFEA9:C001 01 00000000:00000000 00:00000000 00000000     0        0 103 1 0 20 4 30 10 -1\n"
    "   3: 0B8DFEA9:A002 0C5BFEA9:C001 01 00000000:00000000 00:00000000 00000000     0        0 104 1 0 20 4 30 10 -1\n"
    "   4: 0100007F:170C 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 105 1 0 20 4 30 10 -1\n"
    "   5: 0B8DFEA9:A003 0C5BFEA9:C002 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0 20 4 30 10 -1\n"
    "   6: 0B8DFEA9:A004 0C5BFEA9:C003 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0\n"
    "   7: garbage\n"
    "   8: 0B8DFEA9:A005\n";
/* a dual-stack socket to an IPv4 peer, and an IPv6 one (fd00::2) */
static const char tcp6[] =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when "
    "retrnsmt   uid  timeout inode\n"
    "   0: 0000000000000000FFFF00000B8DFEA9:A006 0000000000000000FFFF00000C5BFEA9:C001 01 00000000:00000000 "
    "00:00000000 00000000     0        0 106 1 0 20 4 30 10 -1\n"
    "   1: 000000FD000000000000000001000000:A007 000000FD000000000000000002000000:C001 01 00000000:00000000 "
    "00:00000000 00000000     0        0 107 1 0 20 4 30 10 -1\n";

static void test_scan(void **state)
{
    (void)state;
    const unsigned long mine[] = {101, 102, 103, 104, 105, 106, 107};
    streams_acc *acc = calloc(1, sizeof(*acc));
    streams_seen s;
    streams_scan(tcp4, 0, mine, 7, acc);
    assert_int_equal(acc->nlisten, 1);
    assert_int_equal(acc->listen_ports[0], 5900);
    streams_result(acc, &s);
    assert_int_equal(s.count, 3); /* not the VNC client's, nor another process's, nor a closed one */
    assert_string_equal(s.remote, "169.254.91.12");
    assert_string_equal(s.local, "169.254.141.11");
    streams_scan(tcp6, 1, mine, 7, acc);
    streams_result(acc, &s);
    assert_int_equal(s.count, 4); /* the dual-stack one counts as the same IPv4 peer */
    assert_string_equal(s.remote, "169.254.91.12");
    /* none of the process's own: nothing */
    memset(acc, 0, sizeof(*acc));
    const unsigned long other[] = {42};
    streams_scan(tcp4, 0, other, 1, acc);
    streams_result(acc, &s);
    assert_int_equal(s.count, 0);
    assert_string_equal(s.remote, "");
    /* empty and truncated texts */
    streams_scan("", 0, mine, 7, acc);
    streams_scan("  sl\n   0: 0B8DFEA9", 0, mine, 7, acc);
    streams_result(acc, &s);
    assert_int_equal(s.count, 0);
    free(acc);
}

static void test_ipv6_peer(void **state)
{
    (void)state;
    const unsigned long mine[] = {107};
    streams_acc *acc = calloc(1, sizeof(*acc));
    streams_seen s;
    streams_scan(tcp6, 1, mine, 1, acc);
    streams_result(acc, &s);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.remote, "fd00::2");
    assert_string_equal(s.local, "fd00::1");
    free(acc);
}

static void test_pid_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/ferry-streams-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/vm1.pid", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("4242\n", f);
    fclose(f);
    char *err = NULL;
    assert_int_equal(streams_qemu_pid(dir, "vm1", &err), 4242);
    assert_int_equal(streams_qemu_pid(dir, "vm2", &err), -1);
    assert_non_null(strstr(err, "vm2.pid"));
    free(err);
    err = NULL;
    f = fopen(path, "w");
    fputs("none\n", f);
    fclose(f);
    assert_int_equal(streams_qemu_pid(dir, "vm1", &err), -1);
    assert_non_null(strstr(err, "holds no pid"));
    free(err);
    unlink(path);
    rmdir(dir);
    /* this process's own connections: none to count, and no failure */
    streams_seen s;
    err = NULL;
    assert_int_equal(streams_of_pid((int)getpid(), &s, &err), 0);
    assert_int_equal(streams_of_pid(-5, &s, &err), -1);
    assert_non_null(err);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_ipv6_peer),
        cmocka_unit_test(test_pid_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
