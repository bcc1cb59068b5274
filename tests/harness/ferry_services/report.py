"""What the harness tells its caller: prefixed messages, the exit status, the tail of a log."""
import os
import sys
import time

ME = "ferry-test-services"


class Exit(Exception):
    """Leave with this exit status (after the cleanup of a failed start)."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


_out = sys.stdout  # where say() writes: stderr while a failed start is being undone


def to_stderr():
    """From now on say() writes to stderr (the output of a cleanup after an error)."""
    global _out
    _out = sys.stderr


def say(msg):
    """Print MSG, prefixed, to stdout (to stderr after to_stderr())."""
    print(f"{ME}: {msg}", file=_out, flush=True)


def warn(msg):
    """Print MSG as a warning to stderr."""
    print(f"{ME}: warning: {msg}", file=sys.stderr, flush=True)


def error(msg):
    """Print MSG as an error to stderr."""
    print(f"{ME}: error: {msg}", file=sys.stderr, flush=True)


def die(msg):
    """Report MSG as an error and leave with status 1."""
    error(msg)
    raise Exit(1)


def show_log(path, lines=30):
    """Print the last LINES lines of the log file PATH to stderr, indented and prefixed
    (nothing if it is missing or empty)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            data = f.read()
    except OSError:
        return
    if not data:
        return
    print(f"{ME}: ---- last {lines} lines of {path}", file=sys.stderr)
    for line in data.decode("utf-8", "replace").splitlines()[-lines:]:
        print(f"{ME}:   | {line}", file=sys.stderr)
    sys.stderr.flush()


def fail_with_logs(msg, logs):
    """Report MSG as an error, then the tail of each log of LOGS ((path, lines) pairs), and
    leave with status 1."""
    error(msg)
    for path, lines in logs:
        show_log(path, lines)
    raise Exit(1)


def stamp():
    """Local wall-clock time as the logs' section headers show it."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


def append(path, text):
    """Append TEXT to the file PATH (created if needed)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


_t0 = time.monotonic()


def elapsed():
    """Time since the command started, as "4.5 s"."""
    ms = int((time.monotonic() - _t0) * 1000)
    return f"{ms // 1000}.{ms % 1000 // 100} s"
