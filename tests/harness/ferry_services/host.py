"""This machine: processes (read from /proc), TCP ports (probed with connect), files owned by
other OS users, the state dir's lock and the start deadline."""
import fcntl
import os
import pwd
import re
import shutil
import socket
import subprocess
import time

from .report import Exit, die, error

CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ------------------------------------------------------------------------------- processes
def proc_stat(pid):
    """Fields of /proc/PID/stat after "(comm) " (state ppid pgrp ...), None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b") ", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid):
    """The process exists and is not a zombie (PID 1 here reaps orphans only every ~2 s, so a
    dead wrapper can linger as one; kill(pid, 0) would still succeed on it)."""
    st = proc_stat(pid)
    return st is not None and st[0] != b"Z"


def comm_of(pid):
    """The command name of process PID, "?" if it is gone."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return "?"


def environ_of(pid):
    """The environment entries (bytes "NAME=value") of process PID, [] if unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def has_tag(pid, tag):
    """The environment of process PID holds the entry TAG ("NAME=value")."""
    return tag.encode() in environ_of(pid)


def read_pid(path):
    """The PID on the first line of the file PATH, None if there is none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
    except OSError:
        return None
    return int(first) if re.fullmatch(r"[0-9]+", first) else None


def write_pid(path, pid):
    """Write PID on a line of its own to the file PATH (replaced)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{pid}\n")


def _all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def tagged_pids(tag):
    """Live processes (not this one) whose environment carries the entry TAG."""
    me = os.getpid()
    return [p for p in _all_pids() if p != me and has_tag(p, tag) and alive(p)]


def children_of(pid):
    """The processes whose parent is PID."""
    return [p for p in _all_pids() if (st := proc_stat(p)) is not None and int(st[1]) == pid]


def kill(pids, sig):
    """Send SIG to each of PIDS, ignoring the ones already gone."""
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass


def wait_gone(secs, pids):
    """Wait until none of PIDS is alive; False if some still are after SECS seconds."""
    until = time.monotonic() + secs
    while any(alive(p) for p in pids):
        if time.monotonic() >= until:
            return False
        time.sleep(0.1)
    return True


def describe(pids):
    """PIDS as "123(beam.smp) 456(epmd)"."""
    return " ".join(f"{p}({comm_of(p)})" for p in pids)


# ------------------------------------------------------------------------------- ports
def port_open(port, addr="127.0.0.1"):
    """Something accepts TCP connections on ADDR:PORT (a listener with a full backlog that lets
    the connect time out counts too)."""
    try:
        with socket.create_connection((addr, port), timeout=1):
            return True
    except socket.timeout:
        return True
    except OSError:
        return False


def port_holders(port):
    """Who listens on PORT, as "PID(comm) ..." (best effort: ss does not see every process)."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True,
                             timeout=10, env={"PATH": CLEAN_PATH}, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    pids = sorted({int(p) for p in re.findall(r"pid=([0-9]+)", out)})
    return describe(pids) if pids else "a process this harness cannot see"


def check_ports_free(items, extra_addr=""):
    """Fail naming every (port, description) of ITEMS that something already listens on, and
    who: on 127.0.0.1 and, if given, on EXTRA_ADDR (which must be configured here)."""
    addrs = ["127.0.0.1"]
    if extra_addr:
        addrs.append(extra_addr)
        with socket.socket() as s:
            try:
                s.bind((extra_addr, 0))
            except OSError as e:
                die(f"FERRY_TEST_EXTRA_LISTEN address {extra_addr} is not usable here "
                    f"({e.strerror}): configure it on an interface before start")
    bad = False
    for port, what in items:
        if any(port_open(port, a) for a in addrs):
            error(f"port {port} ({what}) is already in use by {port_holders(port)}")
            bad = True
    if bad:
        raise Exit(1)


# ------------------------------------------------------------------------------- files
def rm_rf(path):
    """Remove PATH, a file or a whole tree, if it exists (a symlink itself, never its target)."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def rm_f(*paths):
    """Remove the files PATHS that exist."""
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def as_user(name):
    """subprocess arguments that drop root for the OS user NAME (uid, gid and its groups)."""
    pw = pwd.getpwnam(name)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": os.getgrouplist(name, pw.pw_gid)}


def chown_to(path, name):
    """Give PATH to the OS user NAME and its primary group."""
    pw = pwd.getpwnam(name)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def install_dir(path, mode, owner):
    """mkdir -p PATH, then give it MODE and the OS user OWNER."""
    os.makedirs(path, exist_ok=True)
    chown_to(path, owner)
    os.chmod(path, mode)


def install_file(src, dst, mode, owner):
    """Copy SRC to DST (replacing it), owned by the OS user OWNER, with MODE."""
    rm_f(dst)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out)
    chown_to(dst, owner)
    os.chmod(dst, mode)


# ------------------------------------------------------------------------------- lock
_lock_fd = None


def take_lock(path, what, secs=120):
    """Hold an exclusive lock on the file PATH until this process ends (it is not inherited by
    the daemons), waiting up to SECS for another command of WHAT that holds it."""
    global _lock_fd
    if _lock_fd is not None:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _lock_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    until = time.monotonic() + secs
    while True:
        try:
            fcntl.flock(_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= until:
                die(f"another {what} command holds {path} for more than {secs} s")
            time.sleep(0.1)


# ------------------------------------------------------------------------------- deadline
_deadline = 0.0


def set_deadline(secs):
    """Starting from now, the current start gives up after SECS seconds."""
    global _deadline
    _deadline = time.monotonic() + secs


def past_deadline():
    """The deadline of set_deadline() has passed."""
    return time.monotonic() >= _deadline


def secs_left():
    """Whole seconds before the deadline, at least 1 (for the daemons' own --timeout)."""
    return max(1, int(_deadline - time.monotonic()))
