"""The throwaway RabbitMQ: Debian's rabbitmq-server run as root in a session of its own, with
its config, data and logs under the state dir; its epmd; ferry's policies; readiness (the port,
the node's await_startup, then an AMQP login); stop by PID, tag and process group.
Every function takes the Config C."""
import base64
import json
import os
import signal
import subprocess
import time

from . import amqp
from .config import DEFINITIONS, RMQ_BIN
from .host import (alive, check_ports_free, comm_of, describe, environ_of, has_tag, kill,
                   past_deadline, port_holders, port_open, proc_stat, read_pid, rm_f, secs_left,
                   tagged_pids, wait_gone, write_pid)
from .report import ME, append, elapsed, fail_with_logs, say, stamp, warn

CONF = """\
# Written by ferry-test-services on every broker start; edits are lost.
#
# The default user guest/guest exists (default_user/default_pass). RabbitMQ normally lets
# guest log in only over loopback; `loopback_users = none` lifts that so the same throwaway
# broker works from 127.0.0.1 and, later, from lab hosts that sit in their own network
# namespaces and reach it over a lab network address. It is a test broker with no secrets.
loopback_users = none
# Logs go to $RABBITMQ_LOG_BASE/<node>.log only; nothing on the console.
log.console = false
log.file.level = info
"""


def _owned(pidfile, tag):
    p = read_pid(pidfile)
    return p if p and alive(p) and has_tag(p, tag) else None


def wrapper_pid(c):
    """PID of our running rabbitmq-server wrapper script, or None."""
    return _owned(c.rmq_wrapper_pidfile, c.tag_rmq)


def beam_pid(c):
    """PID of our running Erlang VM (from the pid file the broker writes), or None."""
    return _owned(c.rmq_beam_pidfile, c.tag_rmq)


def epmd_pid(c):
    """PID of our epmd on our epmd port, or None: it daemonizes and outlives the broker, and it
    inherits the tag and ERL_EPMD_PORT from the broker or rabbitmqctl that spawned it."""
    port = f"ERL_EPMD_PORT={c.epmd_port}".encode()
    for p in tagged_pids(c.tag_rmq):
        if comm_of(p) == "epmd" and port in environ_of(p):
            return p
    return None


def not_ready_why(c):
    """None if our broker runs and takes an AMQP login as guest, else why not."""
    if wrapper_pid(c) is None:
        return "the rabbitmq-server wrapper does not run"
    return amqp.login(c.amqp_port)


def ctl(c, *args):
    """rabbitmqctl ARGS against our node with the broker's environment; its output is appended
    to the ctl log. True if it exited 0."""
    append(c.rmq_ctl_log, f"\n== {stamp()} rabbitmqctl {' '.join(args)}\n")
    # (the CLI starts an epmd if none runs: it inherits no descriptor of ours)
    with open(c.rmq_ctl_log, "ab") as log:
        return subprocess.run([f"{RMQ_BIN}/rabbitmqctl", "-n", c.rmq_node, *args], env=c.rmq_env,
                              cwd="/", stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                              check=False).returncode == 0


def _prepare(c):
    for d in (c.rmq_dir, c.rmq_home, f"{c.rmq_dir}/mnesia", c.rmq_log_dir):
        os.makedirs(d, exist_ok=True)
    cookie = f"{c.rmq_home}/.erlang.cookie"
    if not (os.path.isfile(cookie) and os.path.getsize(cookie) > 0):
        rm_f(cookie)
        fd = os.open(cookie, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(base64.b32encode(os.urandom(15)).decode() + "\n")
    os.chmod(cookie, 0o400)
    conf = CONF + f"listeners.tcp.1 = 127.0.0.1:{c.amqp_port}\n"
    if c.tls_dir:
        # AMQPS only on the extra address; a client certificate is checked when one is shown
        conf += (f"listeners.ssl.1 = {c.extra_addr}:{c.amqp_port}\n"
                 f"ssl_options.cacertfile = {c.tls_dir}/ca.pem\n"
                 f"ssl_options.certfile = {c.tls_dir}/controller.pem\n"
                 f"ssl_options.keyfile = {c.tls_dir}/controller-key.pem\n"
                 "ssl_options.verify = verify_peer\n"
                 "ssl_options.fail_if_no_peer_cert = false\n")
    elif c.extra_addr:
        conf += f"listeners.tcp.2 = {c.extra_addr}:{c.amqp_port}\n"
    env_conf = f"# Intentionally empty: {ME} sets everything in the environment.\n"
    for name, text in (("rabbitmq.conf", conf), ("enabled_plugins", "[].\n"), ("rabbitmq-env.conf", env_conf)):
        with open(f"{c.rmq_dir}/{name}", "w", encoding="utf-8") as f:
            f.write(text)


def launch(c):
    """Launch the broker in the background, in its own session and process group (its PID in
    the wrapper pid file), and return at once."""
    wanted = [(c.amqp_port, "FERRY_TEST_AMQP_PORT, AMQP"),
              (c.dist_port, "FERRY_TEST_AMQP_DIST_PORT, Erlang distribution")]
    # The epmd port may already be held by our own epmd (after stop-rabbitmq of an older
    # version, or a crash): that one is fine, the node just registers with it again.
    if epmd_pid(c) is None and not c.shared_epmd:
        wanted.append((c.epmd_port, "FERRY_TEST_EPMD_PORT, epmd"))
    check_ports_free(wanted, c.extra_addr)
    _prepare(c)
    append(c.rmq_out, f"\n== {stamp()} starting {c.rmq_node}\n")
    with open(c.rmq_out, "ab") as out:
        proc = subprocess.Popen([f"{RMQ_BIN}/rabbitmq-server"], env=c.rmq_env, cwd=c.rmq_home,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    write_pid(c.rmq_wrapper_pidfile, proc.pid)
    say(f"RabbitMQ starting (node {c.rmq_node}, wrapper pid {proc.pid})")


def set_policies(c):
    """ferry's policies (definitions.json: the delivery limit of ferry.scheduler, the bound of
    ferry.dead) on the fresh broker, as deploy/rabbitmq/setup.sh sets them in production; the
    queues themselves are declared by the daemons."""
    try:
        with open(DEFINITIONS, encoding="utf-8") as f:
            policies = json.load(f)["policies"]
    except (OSError, ValueError, KeyError) as e:
        fail(c, f"cannot read the policies of {DEFINITIONS}: {e}")
    for p in policies:
        if not ctl(c, "set_policy", "-p", p["vhost"], "--apply-to", p["apply-to"],
                   "--priority", str(p["priority"]), p["name"], p["pattern"],
                   json.dumps(p["definition"], separators=(",", ":"))):
            fail(c, f"could not set policy {p['name']}")
    say(f"RabbitMQ: {len(policies)} policies of {DEFINITIONS} set")


def wait_ready(c, timeout):
    """Wait until the broker is fully booted and takes AMQP logins, or fail (with its logs) at
    the deadline; TIMEOUT is what the deadline was set to, for the message."""
    wpid = read_pid(c.rmq_wrapper_pidfile)

    def check_alive():
        if wpid is None or not alive(wpid):
            fail(c, "RabbitMQ exited during startup")

    # 1. the AMQP port: rabbitmqctl await_startup called before the node is up fails at once
    while not port_open(c.amqp_port):
        check_alive()
        if past_deadline():
            fail(c, f"RabbitMQ did not open port {c.amqp_port} within {timeout} s")
        time.sleep(0.2)
    # 2. the node's own view
    tries = 0
    while not ctl(c, "await_startup", "--timeout", str(secs_left())):
        tries += 1
        check_alive()
        if tries >= 5 or past_deadline():
            fail(c, f"rabbitmqctl await_startup failed {tries} times")
        time.sleep(1)
    # 3. a client's view: a whole AMQP login as guest on vhost /
    while (why := amqp.login(c.amqp_port)) is not None:
        check_alive()
        if past_deadline():
            fail(c, f"RabbitMQ on port {c.amqp_port} does not take an AMQP login as guest: {why}")
        time.sleep(0.2)
    e = epmd_pid(c)
    if e:
        write_pid(c.epmd_pidfile, e)
    say(f"RabbitMQ ready after {elapsed()} (beam pid {beam_pid(c)}, epmd pid {e or '?'})")


def fail(c, msg):
    """Report MSG with the broker's last log lines, and leave with status 1."""
    fail_with_logs(msg, [(c.rmq_out, 20), (c.rmq_node_log, 30), (c.rmq_ctl_log, 15)])


def stop(c, keep_epmd=False):
    """Stop the broker: TERM to the wrapper (it stops the node cleanly, ~2-3 s), wait up to
    20 s, then KILL its process group; finally anything else tagged as ours; then our epmd
    unless KEEP_EPMD. Data stays."""
    w, b = wrapper_pid(c), beam_pid(c)
    main = [p for p in (w, b) if p]
    if w:
        say(f"stopping RabbitMQ (TERM to wrapper pid {w})")
        kill([w], signal.SIGTERM)
    elif b:
        say(f"stopping RabbitMQ (wrapper gone; TERM to beam pid {b})")
        kill([b], signal.SIGTERM)
    if main and not wait_gone(20, main):
        st = proc_stat(w) if w else None
        # the wrapper leads its own process group (setsid); never signal a group it does not lead
        if st is not None and int(st[2]) == w:
            warn(f"RabbitMQ still running after 20 s: KILL to its process group {w}")
            try:
                os.killpg(w, signal.SIGKILL)
            except OSError:
                pass
        if b:
            kill([b], signal.SIGKILL)
        wait_gone(5, main)
    # Leftovers: erl_child_setup and its helpers run in sessions of their own (so the group
    # KILL above misses them), a half-started node, a hung rabbitmqctl... epmd: below.
    left = [p for p in tagged_pids(c.tag_rmq) if comm_of(p) != "epmd"]
    if left:
        warn(f"killing leftover RabbitMQ processes: {describe(left)}")
        kill(left, signal.SIGKILL)
        wait_gone(5, left)
    if not keep_epmd:
        stop_epmd(c)
    rm_f(c.rmq_wrapper_pidfile, c.rmq_beam_pidfile)


def stop_epmd(c):
    """Stop our epmd (and any other epmd of ours, on whatever port); leave others' alone."""
    e = epmd_pid(c)
    ours = ([e] if e else []) + [p for p in tagged_pids(c.tag_rmq) if comm_of(p) == "epmd" and p != e]
    if ours:
        say(f"stopping epmd (pid {' '.join(map(str, ours))}, port {c.epmd_port})")
        kill(ours, signal.SIGTERM)
        if not wait_gone(5, ours):
            kill(ours, signal.SIGKILL)
            wait_gone(2, ours)
    if port_open(c.epmd_port):
        warn(f"port {c.epmd_port} is held by {port_holders(c.epmd_port)}, not started by this "
             "harness: left alone")
    rm_f(c.epmd_pidfile)
