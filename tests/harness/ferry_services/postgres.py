"""The throwaway PostgreSQL: Debian's initdb and pg_ctl run as the postgres OS user (root is
dropped for them) with a cluster, socket dir and logs under the state dir; readiness by
pg_isready; stop by pg_ctl, then signals to the PIDs that are ours. Every function takes the
Config C."""
import os
import signal
import subprocess
import time

from .host import (CLEAN_PATH, alive, as_user, check_ports_free, children_of, chown_to, comm_of,
                   describe, has_tag, install_dir, install_file, kill, past_deadline, read_pid,
                   rm_f, rm_rf, secs_left, tagged_pids, wait_gone, write_pid)
from .report import append, die, elapsed, fail_with_logs, say, stamp, warn

HBA_MARKER = "# ferry-test-services: the lab network"


def _run(c, argv, log, timeout=None):
    """Run a PostgreSQL program as the postgres OS user with a clean, tagged environment, its
    output into the open file LOG; its exit status (a timeout kills it and raises)."""
    return subprocess.run(argv, env=c.pg_env, cwd="/", stdin=subprocess.DEVNULL, stdout=log,
                          stderr=subprocess.STDOUT, timeout=timeout, check=False,
                          **as_user("postgres")).returncode


def postmaster_pid(c):
    """PID of our running postmaster, or None."""
    p = read_pid(f"{c.pg_data}/postmaster.pid") or read_pid(c.pg_pidfile)
    return p if p and alive(p) and has_tag(p, c.tag_pg) else None


def ready(c):
    """pg_isready answers on our socket."""
    # -U/-d: without them pg_isready tries role "root" and the server logs a FATAL each time
    try:
        return subprocess.run([f"{c.pg_bin}/pg_isready", "-q", "-h", c.pg_sock, "-p", str(c.pg_port),
                               "-U", "postgres", "-d", "postgres", "-t", "3"],
                              env={"PATH": CLEAN_PATH, "LANG": "C"}, stdin=subprocess.DEVNULL,
                              timeout=10, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def healthy(c):
    """Our postmaster runs and answers pg_isready."""
    return postmaster_pid(c) is not None and ready(c)


def fail(c, msg):
    """Report MSG with PostgreSQL's last log lines, and leave with status 1."""
    fail_with_logs(msg, [(c.initdb_log, 15), (c.pg_ctl_log, 10), (c.pg_log, 30)])


def check_access(c):
    """Die unless the postgres OS user can enter the state dir (traverse every parent) and the
    socket path fits in a sockaddr_un."""
    if subprocess.run(["test", "-x", c.state], env={"PATH": CLEAN_PATH}, stdin=subprocess.DEVNULL,
                      check=False, **as_user("postgres")).returncode != 0:
        die(f"the postgres OS user cannot enter {c.state} (a parent directory is not "
            "world-searchable?); pick another FERRY_TEST_STATE")
    sock = f"{c.pg_sock}/.s.PGSQL.{c.pg_port}".encode()
    if len(sock) > 107:
        die(f"unix socket path {sock.decode()} is {len(sock)} bytes, longer than the 107 the "
            "kernel allows: use a shorter FERRY_TEST_STATE")


def _initdb(c):
    say(f"PostgreSQL: initdb into {c.pg_data}")
    rm_rf(c.pg_data)
    install_dir(c.pg_data, 0o700, "postgres")
    with open(c.initdb_log, "wb") as log:
        rc = _run(c, [f"{c.pg_bin}/initdb", "--no-sync", "--auth=trust", "-U", "postgres",
                      "-E", "UTF8", "--locale=C", "-D", c.pg_data], log)
    if rc != 0:
        fail(c, f"initdb failed (exit {rc})")


def _trust_extra_network(c):
    """pg_hba.conf: trust the lab network, plainly or (FERRY_TEST_TLS_DIR) over TLS only;
    replaces the line an earlier start wrote."""
    path = f"{c.pg_data}/pg_hba.conf"
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    kept, skip = [], False
    for line in lines:  # drop the marker and the line after it
        if skip:
            skip = False
        elif line == HBA_MARKER:
            skip = True
        else:
            kept.append(line)
    hba = f"{'hostssl' if c.tls_dir else 'host'} all all {c.extra_listen} trust"
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(kept + [HBA_MARKER, hba]) + "\n")


def start(c, timeout):
    """Start the server on the cluster of the state dir (made by initdb if there is none) and
    wait until it answers, or fail (with its logs) at the deadline; TIMEOUT is what the
    deadline was set to, for the message."""
    check_ports_free([(c.pg_port, "FERRY_TEST_PG_PORT, PostgreSQL")], c.extra_addr)
    check_access(c)
    install_dir(c.pg_sock, 0o755, "postgres")
    if not os.path.exists(c.pg_log):
        open(c.pg_log, "a", encoding="utf-8").close()
        os.chmod(c.pg_log, 0o644)
    chown_to(c.pg_log, "postgres")
    if not os.path.isfile(f"{c.pg_data}/PG_VERSION"):
        _initdb(c)
    rm_f(f"{c.pg_data}/postmaster.pid")  # a stale one of a killed server (we checked the port)
    listen, tls_opts = "127.0.0.1", ""
    if c.extra_addr:
        listen = f"127.0.0.1,{c.extra_addr}"
        _trust_extra_network(c)
    if c.tls_dir:
        # the server's key must belong to the server's user and be private
        install_dir(c.pg_tls, 0o700, "postgres")
        install_file(f"{c.tls_dir}/controller.pem", f"{c.pg_tls}/server.pem", 0o644, "postgres")
        install_file(f"{c.tls_dir}/controller-key.pem", f"{c.pg_tls}/server-key.pem", 0o600, "postgres")
        tls_opts = (f" -c ssl=on -c ssl_cert_file={c.pg_tls}/server.pem"
                    f" -c ssl_key_file={c.pg_tls}/server-key.pem")
    append(c.pg_ctl_log, f"\n== {stamp()} pg_ctl start\n")
    with open(c.pg_ctl_log, "ab") as log:
        opts = f"-p {c.pg_port} -k {c.pg_sock} -c listen_addresses={listen} -c fsync=off{tls_opts}"
        rc = _run(c, [f"{c.pg_bin}/pg_ctl", "-D", c.pg_data, "-l", c.pg_log, "-w", "-t", str(secs_left()),
                      "-o", opts, "start"], log)
    if rc != 0:
        fail(c, f"pg_ctl start failed (exit {rc})")
    p = read_pid(f"{c.pg_data}/postmaster.pid")
    if p is None:
        fail(c, "no postmaster.pid after pg_ctl start")
    write_pid(c.pg_pidfile, p)
    while not ready(c):
        if past_deadline():
            fail(c, f"pg_isready still fails after {timeout} s")
        time.sleep(0.1)
    say(f"PostgreSQL ready after {elapsed()} (postmaster pid {p})")


def _alive_postgres(pids):
    return [k for k in pids if alive(k) and comm_of(k) == "postgres"]


def stop(c):
    """Stop the server: pg_ctl -m fast stop; fallback SIGQUIT (immediate shutdown), then KILL;
    then whatever of its processes is left. Data stays."""
    p = postmaster_pid(c)
    kids = []
    if p:
        # The postmaster's children overwrite their environment with their process title, so
        # the tag cannot find them: remember them now (they exit by themselves normally).
        kids = children_of(p)
        say(f"stopping PostgreSQL (pg_ctl -m fast stop, postmaster pid {p})")
        os.makedirs(c.log_dir, exist_ok=True)
        append(c.pg_ctl_log, f"\n== {stamp()} pg_ctl stop\n")
        with open(c.pg_ctl_log, "ab") as log:
            try:
                ok = _run(c, [f"{c.pg_bin}/pg_ctl", "-D", c.pg_data, "-m", "fast", "-w", "-t", "30",
                              "stop"], log, timeout=60) == 0
            except subprocess.TimeoutExpired:
                ok = False
        if not ok or alive(p):
            warn(f"pg_ctl stop failed: SIGQUIT to postmaster {p}")
            kill([p], signal.SIGQUIT)
            if not wait_gone(5, [p]):
                warn(f"postmaster {p} still there: KILL")
                kill([p], signal.SIGKILL)
                wait_gone(3, [p])
    # Backends and auxiliary processes exit by themselves once the postmaster is gone.
    left = tagged_pids(c.tag_pg) + _alive_postgres(kids)
    if left and not wait_gone(3, left):
        left = tagged_pids(c.tag_pg) + _alive_postgres(kids)
        warn(f"killing leftover PostgreSQL processes: {describe(left)}")
        kill(left, signal.SIGKILL)
        wait_gone(3, left)
    rm_f(c.pg_pidfile)
