"""The harness's settings, all from the environment (FERRY_TEST_*), checked once: paths of the
state dir, ports, the servers' environments and the tags that mark their processes."""
import os
import re
import shutil

from .host import CLEAN_PATH
from .report import die

# ferry's broker policies (the source tree's, next to this package)
DEFINITIONS = os.path.normpath(os.path.join(os.path.dirname(os.path.realpath(__file__)),
                                            "..", "..", "..", "deploy", "rabbitmq", "definitions.json"))
# NOT /usr/sbin/rabbitmqctl: as root that one does `su rabbitmq` and drops our environment
RMQ_BIN = "/usr/lib/rabbitmq/bin"
_SAFE_PATH = re.compile(r"[A-Za-z0-9_.,+/-]+")


def _port(env, name, default):
    v = env.get(name) or str(default)
    if not re.fullmatch(r"[0-9]+", v) or not 1024 <= int(v) <= 65535:
        die(f"{name}='{v}' is not a port number in 1024..65535")
    return int(v)


def find_pg_bin():
    """The newest /usr/lib/postgresql/N/bin with initdb and pg_ctl, else pg_ctl's directory in
    PATH, else ""."""
    try:
        versions = [d for d in os.listdir("/usr/lib/postgresql") if re.fullmatch(r"[0-9]+(\.[0-9]+)*", d)]
    except OSError:
        versions = []
    for v in sorted(versions, key=lambda d: [int(x) for x in d.split(".")], reverse=True):
        d = f"/usr/lib/postgresql/{v}/bin"
        if all(os.access(f"{d}/{p}", os.X_OK) for p in ("initdb", "pg_ctl")):
            return d
    found = shutil.which("pg_ctl")
    return os.path.dirname(found) if found else ""


def _env(*pairs):
    return dict(p.split("=", 1) for p in pairs)


class Config:
    """Everything the environment ENV decides; the constructor dies naming a bad value. Relative
    paths are taken from / (the harness runs in /, as the postgres user must reach them)."""

    def __init__(self, env):
        raw = env.get("FERRY_TEST_STATE") or "/tmp/ferry-test-services"
        if not _SAFE_PATH.fullmatch(raw):
            die(f"FERRY_TEST_STATE='{raw}': only [A-Za-z0-9_.,+/-] allowed "
                "(it ends up in a libpq DSN and a pg_ctl command line)")
        s = self.state = os.path.realpath(os.path.join("/", raw))
        if s == "/":
            die("FERRY_TEST_STATE must not be /")
        self.amqp_port = _port(env, "FERRY_TEST_AMQP_PORT", 26600)
        self.dist_port = _port(env, "FERRY_TEST_AMQP_DIST_PORT", 26601)
        self.epmd_port = _port(env, "FERRY_TEST_EPMD_PORT", 26602)
        self.pg_port = _port(env, "FERRY_TEST_PG_PORT", 26603)
        # several brokers of one cluster on this machine share the first node's epmd: a node
        # does not need the epmd port free, and stop-rabbitmq leaves epmd running
        self.shared_epmd = (env.get("FERRY_TEST_SHARED_EPMD") or "") == "1"
        self.extra_listen = env.get("FERRY_TEST_EXTRA_LISTEN") or ""
        self.extra_addr = ""
        if self.extra_listen:
            m = re.fullmatch(r"([0-9]{1,3}(?:\.[0-9]{1,3}){3})/[0-9]{1,2}", self.extra_listen)
            if not m:
                die(f"FERRY_TEST_EXTRA_LISTEN='{self.extra_listen}' is not ADDRESS/PREFIX (IPv4)")
            self.extra_addr = m.group(1)
        self.tls_dir = env.get("FERRY_TEST_TLS_DIR") or ""
        if self.tls_dir:
            if not self.extra_addr:
                die("FERRY_TEST_TLS_DIR needs FERRY_TEST_EXTRA_LISTEN (TLS is served on that address)")
            for f in ("ca.pem", "controller.pem", "controller-key.pem"):
                p = os.path.join(self.tls_dir, f)
                if not (os.path.isfile(p) and os.path.getsize(p) > 0):
                    die(f"FERRY_TEST_TLS_DIR={self.tls_dir} has no {f} (make it with deploy/tls/ferry-ca)")
            self.tls_dir = os.path.realpath(self.tls_dir)
            if not _SAFE_PATH.fullmatch(self.tls_dir):
                die(f"FERRY_TEST_TLS_DIR='{self.tls_dir}': only [A-Za-z0-9_.,+/-] allowed")
        timeout = env.get("FERRY_TEST_START_TIMEOUT") or "90"
        if not re.fullmatch(r"[0-9]+", timeout):
            die(f"FERRY_TEST_START_TIMEOUT='{timeout}' is not a number of seconds")
        self.start_timeout = int(timeout)

        self.log_dir = f"{s}/logs"
        self.lock_file = f"{s}/.lock"
        self.rmq_dir = f"{s}/rabbitmq"
        self.rmq_home = f"{self.rmq_dir}/home"
        self.rmq_node = f"ferrytest-{self.amqp_port}@localhost"
        self.rmq_wrapper_pidfile = f"{s}/rabbitmq.pid"
        self.rmq_beam_pidfile = f"{self.rmq_dir}/rabbitmq-server.pid"  # written by the broker
        self.epmd_pidfile = f"{s}/epmd.pid"
        self.rmq_log_dir = f"{self.log_dir}/rabbitmq"
        self.rmq_out = f"{self.log_dir}/rabbitmq-server.out"  # the wrapper's stdout and stderr
        self.rmq_node_log = f"{self.rmq_log_dir}/{self.rmq_node}.log"
        self.rmq_ctl_log = f"{self.log_dir}/rabbitmqctl.log"
        # No trailing slash: "amqp://h:p/" means the vhost "" (empty) to librabbitmq's
        # amqp_parse_url (and the AMQP URI spec), and the broker refuses it ("vhost  not found").
        # Without a path the client uses the default vhost "/".
        self.amqp_url = f"amqp://guest:guest@127.0.0.1:{self.amqp_port}"
        self.pg_data = f"{s}/pg-data"
        self.pg_sock = f"{s}/pg-socket"
        self.pg_tls = f"{s}/pg-tls"
        self.pg_pidfile = f"{s}/postgres.pid"
        self.pg_log = f"{self.log_dir}/pg.log"
        self.pg_ctl_log = f"{self.log_dir}/pg_ctl.log"
        self.initdb_log = f"{self.log_dir}/initdb.log"
        self.pg_dsn = f"host={self.pg_sock} port={self.pg_port} user=postgres dbname=postgres"
        self.pg_bin = find_pg_bin()
        self.tag_rmq = f"FERRY_TEST_SERVICES_TAG=rabbitmq@{s}"
        self.tag_pg = f"FERRY_TEST_SERVICES_TAG=postgres@{s}"
        # The broker and rabbitmqctl run with exactly this environment: nothing from the
        # caller's (a stray RABBITMQ_* variable, /etc/rabbitmq/rabbitmq-env.conf) leaks in.
        self.rmq_env = _env(
            f"PATH={CLEAN_PATH}", f"HOME={self.rmq_home}", "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
            self.tag_rmq, f"RABBITMQ_NODENAME={self.rmq_node}",
            # the AMQP listeners are in rabbitmq.conf (RABBITMQ_NODE_PORT would override them)
            f"RABBITMQ_DIST_PORT={self.dist_port}",  # the default NODE_PORT+20000 overflows
            f"ERL_EPMD_PORT={self.epmd_port}", "ERL_EPMD_ADDRESS=127.0.0.1",
            f"RABBITMQ_MNESIA_BASE={self.rmq_dir}/mnesia",
            f"RABBITMQ_LOG_BASE={self.rmq_log_dir}",
            f"RABBITMQ_CONFIG_FILE={self.rmq_dir}/rabbitmq.conf",
            f"RABBITMQ_ADVANCED_CONFIG_FILE={self.rmq_dir}/advanced.config",  # never made: keeps /etc out
            f"RABBITMQ_ENABLED_PLUGINS_FILE={self.rmq_dir}/enabled_plugins",
            f"RABBITMQ_PID_FILE={self.rmq_beam_pidfile}",
            f"RABBITMQ_CONF_ENV_FILE={self.rmq_dir}/rabbitmq-env.conf",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
            f"ERL_CRASH_DUMP={self.log_dir}/erl_crash.dump")
        self.pg_env = _env(f"PATH={self.pg_bin}:{CLEAN_PATH}", "LANG=C", "LC_ALL=C", self.tag_pg)
