/* Unit tests of qsock: the readers of /proc/net/tcp lines, descriptor links and QEMU's command
 * line, and qsock_shut_migration on a real process: a child of the test blocks reading a
 * loopback TCP connection (as the destination's QEMU waits on its half-open stream); the
 * search runs on a /proc of the test's own (the child's comm and cmdline made QEMU's, its fd
 * and net linked to the real ones), and the shutdown goes through pidfd_getfd: the child's read
 * ends at once. A connection whose ports are out of the range is left alone. */
#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../compute-agent/qsock.h"

static const char UUID[] = "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9fa0b1c2";

static void test_parse_tcp_line(void **state)
{
    (void)state;
    qsock_tcp t;
    assert_int_equal(qsock_parse_tcp_line("   3: 0100007F:C000 0100007F:D431 01 00000000:00000000 02:000A7B2C "
                                          "00000000     0        0 5983895 2 00000000dfc8bd70 20 4 30 10 -1\n",
                                          &t),
                     0);
    assert_int_equal(t.local_port, 0xC000);
    assert_int_equal(t.remote_port, 0xD431);
    assert_int_equal(t.state, 1);
    assert_int_equal(t.inode, 5983895);
    /* tcp6: 32 hex digits of address */
    assert_int_equal(qsock_parse_tcp_line("  12: 0000000000000000FFFF00000100007F:1F90 "
                                          "0000000000000000FFFF00000200007F:C001 0A 00000000:00000000 "
                                          "00:00000000 00000000   106        0 77 1 0000000000000000 100 0 0 10 0",
                                          &t),
                     0);
    assert_int_equal(t.local_port, 8080);
    assert_int_equal(t.remote_port, 0xC001);
    assert_int_equal(t.state, 0x0A);
    assert_int_equal(t.inode, 77);
    /* the header and broken lines */
    assert_int_equal(qsock_parse_tcp_line("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
                                          "retrnsmt   uid  timeout inode",
                                          &t),
                     -1);
    assert_int_equal(qsock_parse_tcp_line("", &t), -1);
    assert_int_equal(qsock_parse_tcp_line("   3: 0100007F:C000 0100007F:D431 01", &t), -1);
    assert_int_equal(qsock_parse_tcp_line("   3: 0100007F:C0000 0100007F:D431 01 0:0 0:0 0 0 0 5 ", &t), -1);
    assert_int_equal(qsock_parse_tcp_line("   3: 0100007F:C000 0100007F:D431 1 0:0 0:0 0 0 0 5", &t), -1);
    assert_int_equal(qsock_parse_tcp_line("   3: 0100007F:C000 0100007F:D431 01 0:0 0:0 0 0 0 x5", &t), -1);
    assert_int_equal(qsock_parse_tcp_line("   3: 0100007F:C000 0100007F:D431 01 0:0 0:0 0 0 0 99999999999999999999999",
                                          &t),
                     -1);
}

static void test_parse_socket_link(void **state)
{
    (void)state;
    uint64_t ino = 0;
    assert_int_equal(qsock_parse_socket_link("socket:[5983895]", &ino), 0);
    assert_int_equal(ino, 5983895);
    assert_int_equal(qsock_parse_socket_link("socket:[]", &ino), -1);
    assert_int_equal(qsock_parse_socket_link("socket:[12", &ino), -1);
    assert_int_equal(qsock_parse_socket_link("socket:[12]x", &ino), -1);
    assert_int_equal(qsock_parse_socket_link("pipe:[12]", &ino), -1);
    assert_int_equal(qsock_parse_socket_link("/dev/null", &ino), -1);
}

static void test_cmdline_has_uuid(void **state)
{
    (void)state;
    static const char cmd[] = "/usr/bin/qemu-system-x86_64\0-name\0guest=vm1\0-uuid\0"
                              "6F1C2B3A-0D4E-4F5A-8B6C-7D8E9FA0B1C2\0-incoming\0defer";
    assert_true(qsock_cmdline_has_uuid(cmd, sizeof(cmd), UUID));
    /* the uuid elsewhere than after -uuid, or another uuid */
    static const char other[] = "qemu\0-name\0" "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9fa0b1c2\0-uuid\0"
                                "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9fa0b1c3";
    assert_false(qsock_cmdline_has_uuid(other, sizeof(other), UUID));
    /* -uuid last, a command line cut short, nothing */
    static const char last[] = "qemu\0-uuid";
    assert_false(qsock_cmdline_has_uuid(last, sizeof(last) - 1, UUID));
    assert_false(qsock_cmdline_has_uuid("qemu\0-uuid\0" "6f1c2b3a", 19, UUID));
    assert_false(qsock_cmdline_has_uuid("", 0, UUID));
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* a listening loopback socket; its port in *port */
static int listener(unsigned *port)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 4), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return l;
}

/* A child connected to port that reads until the stream ends and exits 0 then; the parent's
 * end (accepted) in *peer. */
static pid_t reader_child(int l, unsigned port, int *peer)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
            _exit(2);
        char b[64];
        for (;;) {
            ssize_t r = read(s, b, sizeof(b));
            if (r == 0 || (r < 0 && errno != EINTR))
                _exit(0);
        }
    }
    *peer = accept(l, NULL, NULL);
    assert_true(*peer >= 0);
    return pid;
}

/* Waits up to ms for pid to exit; returns its status, or -1 if it did not. */
static int wait_exit(pid_t pid, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        poll(NULL, 0, 20);
    }
    return -1;
}

/* a /proc of the test's own where pid is a QEMU of UUID: comm and cmdline written, fd and net
 * the real ones */
static char *fake_proc(pid_t pid)
{
    char tmpl[] = "/tmp/ferry-qsock-XXXXXX";
    char *root = mkdtemp(tmpl);
    assert_non_null(root);
    root = xstrdup(root);
    _cleanup_free_ char *dir = xasprintf("%s/%d", root, (int)pid);
    assert_int_equal(mkdir(dir, 0700), 0);
    _cleanup_free_ char *comm = xasprintf("%s/comm", dir);
    write_file(comm, "qemu-system-x86\n", 16);
    static const char cmd[] = "/usr/bin/qemu-system-x86_64\0-uuid\0" "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9fa0b1c2\0-incoming\0defer";
    _cleanup_free_ char *cmdp = xasprintf("%s/cmdline", dir);
    write_file(cmdp, cmd, sizeof(cmd));
    const char *links[] = {"fd", "net"};
    for (size_t i = 0; i < 2; i++) {
        _cleanup_free_ char *to = xasprintf("/proc/%d/%s", (int)pid, links[i]);
        _cleanup_free_ char *at = xasprintf("%s/%s", dir, links[i]);
        assert_int_equal(symlink(to, at), 0);
    }
    return root;
}

static void rm_fake_proc(const char *root, pid_t pid)
{
    const char *names[] = {"comm", "cmdline", "fd", "net"};
    for (size_t i = 0; i < 4; i++) {
        _cleanup_free_ char *p = xasprintf("%s/%d/%s", root, (int)pid, names[i]);
        unlink(p);
    }
    _cleanup_free_ char *d = xasprintf("%s/%d", root, (int)pid);
    rmdir(d);
    rmdir(root);
}

static void test_shut_migration(void **state)
{
    (void)state;
    unsigned port = 0;
    int l = listener(&port);
    int peer = -1;
    pid_t child = reader_child(l, port, &peer);
    _cleanup_free_ char *root = fake_proc(child);
    long qpid = 0;
    char *err = NULL;

    /* the connection is not in the range: left alone, the child reads on */
    int n = qsock_shut_migration(root, UUID, port == 65535 ? 1 : port + 1, port == 65535 ? 1 : port + 1, &qpid, &err);
    assert_int_equal(n, 0);
    assert_int_equal(qpid, child);
    assert_int_equal(wait_exit(child, 300), -1);

    /* another uuid: no QEMU of it */
    n = qsock_shut_migration(root, "00000000-0000-4000-8000-000000000000", port, port, &qpid, &err);
    assert_int_equal(n, -1);
    assert_non_null(strstr(err, "no QEMU process of domain 00000000-0000-4000-8000-000000000000"));
    free(err);
    err = NULL;

    /* in the range: shut down, the child's read ends at once */
    n = qsock_shut_migration(root, UUID, port, port, &qpid, &err);
    if (n < 0)
        fail_msg("qsock_shut_migration: %s", err);
    assert_int_equal(n, 1);
    int st = wait_exit(child, 5000);
    if (st < 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        fail_msg("the child still reads its stream after the shutdown");
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* our end sees the child's end closed too */
    char b[8];
    assert_int_equal(read(peer, b, sizeof(b)), 0);
    close(peer);
    close(l);
    rm_fake_proc(root, child);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_tcp_line),
        cmocka_unit_test(test_parse_socket_link),
        cmocka_unit_test(test_cmdline_has_uuid),
        cmocka_unit_test(test_shut_migration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
