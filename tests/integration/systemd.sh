#!/usr/bin/env bash
# The systemd side of the daemons, without systemd running: the units of deploy/systemd pass
# `systemd-analyze verify` (in a scratch root holding systemd's own units and the binaries;
# any complaint fails the test), and each daemon speaks sd_notify on a NOTIFY_SOCKET this test
# listens on: READY=1 with a STATUS once the broker (and, for the scheduler, the database)
# answers, WATCHDOG=1 at a third of WATCHDOG_USEC, STOPPING=1 on SIGTERM.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
db=ferry_sd_$$
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log "$work"/*.notify; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

# ---- the units ------------------------------------------------------------------------------------
root=$work/root
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$bin/ferry-scheduler" "$bin/ferry-agent" /bin/kill "$root/usr/bin/" # kill: ExecReload
ln -s usr/bin "$root/bin"
cp "$top"/deploy/systemd/*.service "$root/etc/systemd/system/"
st=0
out=$(systemd-analyze verify --root="$root" ferry-scheduler.service ferry-agent.service 2>&1) || st=$?
[[ $st == 0 && -z $out ]] || fail "systemd-analyze verify (exit $st): $out"
for u in ferry-scheduler ferry-agent; do
  grep -q '^Type=notify$' "$top/deploy/systemd/$u.service" && grep -q '^WatchdogSec=' "$top/deploy/systemd/$u.service" ||
    fail "$u.service is not Type=notify with a watchdog"
done
ok "deploy/systemd units pass systemd-analyze verify, Type=notify with WatchdogSec"

# ---- sd_notify ------------------------------------------------------------------------------------------
# listen NAME: a datagram socket like systemd's; every message is one line of NAME.notify
listen() {
  /usr/bin/python3 - "$work/$1.sock" "$work/$1.notify" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        d = s.recv(65536)
        f.write(d.decode(errors="replace").replace("\n", "|") + "\n")
        f.flush()
PY
  pids+=("$!")
  for _ in $(seq 1 50); do [[ -S $work/$1.sock ]] && return 0; sleep 0.1; done
  fail "the notify socket of $1 did not appear"
}
psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
printf '[amqp]\nheartbeat_s = 5\n[http]\nport = 0\n[log]\nlevel = info\n' >"$work/ferry.conf"
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
listen scheduler
listen agent
NOTIFY_SOCKET=$work/scheduler.sock WATCHDOG_USEC=1500000 \
  "$bin/ferry-scheduler" --config "$work/ferry.conf" --name sd1 2>"$work/scheduler.log" &
spid=$!
pids+=("$spid")
NOTIFY_SOCKET=$work/agent.sock WATCHDOG_USEC=1500000 \
  "$bin/ferry-agent" --config "$work/ferry.conf" --host sdagent 2>"$work/agent.log" &
apid=$!
pids+=("$apid")
for _ in $(seq 1 100); do
  grep -q '^READY=1' "$work/scheduler.notify" 2>/dev/null && grep -q '^READY=1' "$work/agent.notify" 2>/dev/null && break
  sleep 0.1
done
grep -qx 'READY=1|STATUS=scheduler sd1: broker and database connected' "$work/scheduler.notify" || fail "scheduler: no READY=1 with its status"
grep -qx 'READY=1|STATUS=serving ferry.compute.sdagent' "$work/agent.notify" || fail "agent: no READY=1 with its status"
sleep 2.2
for d in scheduler agent; do
  n=$(grep -c '^WATCHDOG=1$' "$work/$d.notify" || true)
  ((n >= 3)) || fail "$d pinged the watchdog $n times in ~2.5 s (every 0.5 s expected)"
done
grep -q "systemd watchdog: 1500 ms, pinged every 500 ms" "$work/scheduler.log" || fail "the scheduler did not log its watchdog"
kill -TERM "$spid" "$apid"
wait "$spid" || fail "scheduler exit $? on SIGTERM"
wait "$apid" || fail "agent exit $? on SIGTERM"
for _ in $(seq 1 20); do grep -q '^STOPPING=1$' "$work/agent.notify" && break; sleep 0.1; done
grep -q '^STOPPING=1$' "$work/scheduler.notify" && grep -q '^STOPPING=1$' "$work/agent.notify" || fail "no STOPPING=1"
ok "sd_notify: READY=1 with a STATUS, WATCHDOG=1 every WATCHDOG_USEC/3, STOPPING=1 on SIGTERM, for both daemons"
# ---- SIGHUP: the log level and the scheduler's numbers change at run time --------------------------------
cp "$work/ferry.conf" "$work/reload.conf"
"$bin/ferry-scheduler" --config "$work/reload.conf" --name sdr 2>"$work/reload-sched.log" &
rpid=$!
pids+=("$rpid")
"$bin/ferry-agent" --config "$work/reload.conf" --host sdragent 2>"$work/reload-agent.log" &
rapid=$!
pids+=("$rapid")
for _ in $(seq 1 100); do
  grep -q "ready: broker connected" "$work/reload-sched.log" && grep -q "agent ready" "$work/reload-agent.log" && break
  sleep 0.1
done
printf '[amqp]\nheartbeat_s = 5\n[http]\nport = 0\n[log]\nlevel = debug\n[scheduler]\nmax_cluster = 5\ndeadline_running_s = 900\n' >"$work/reload.conf"
kill -HUP "$rpid" "$rapid"
for _ in $(seq 1 30); do grep -q "configuration reloaded" "$work/reload-agent.log" && grep -q "configuration reloaded" "$work/reload-sched.log" && break; sleep 0.1; done
grep -q 'msg="configuration reloaded: log level debug; limits 2 out per source, 2 in per destination, 5 in the cluster; deadlines queued 3600 s, preparing 300 s, running 900 s' \
  "$work/reload-sched.log" || fail "the scheduler did not reload: $(tail -n 3 "$work/reload-sched.log")"
grep -q 'msg="configuration reloaded: log level debug"' "$work/reload-agent.log" || fail "the agent did not reload"
for _ in $(seq 1 60); do grep -q "level=debug" "$work/reload-agent.log" && break; sleep 0.1; done
grep -q "level=debug" "$work/reload-agent.log" || fail "no debug line after the reload"
printf '[scheduler]\nmax_cluster = 10001\n' >"$work/reload.conf"
kill -HUP "$rpid"
for _ in $(seq 1 30); do grep -q "configuration not reloaded" "$work/reload-sched.log" && break; sleep 0.1; done
grep -q "configuration not reloaded, nothing changed: $work/reload.conf:2: \[scheduler\] max_cluster: value 10001 is out of range" "$work/reload-sched.log" ||
  fail "a bad file on SIGHUP: $(tail -n 3 "$work/reload-sched.log")"
kill -0 "$rpid" && kill -0 "$rapid" || fail "a daemon died on SIGHUP"
kill -TERM "$rpid" "$rapid"
wait "$rpid" || fail "scheduler exit $? after reloads"
wait "$rapid" || fail "agent exit $? after reloads"
ok "SIGHUP reloads the log level and the scheduler's limits and deadlines; a bad file changes nothing"

# ---- the journal: one entry per line, the ids as fields ----------------------------------------------------
# No journald runs here: a listener on its socket reads what sd_journal_send writes (the
# native protocol, KEY=value lines), so `journalctl MIGRATION_ID=N` would find the line.
jsock=/run/systemd/journal/socket
if [[ -e $jsock ]]; then
  fail "$jsock exists: this test expects a machine without journald (use journalctl there)"
fi
made_dir=0
[[ -d /run/systemd/journal ]] || { mkdir -p /run/systemd/journal; made_dir=1; }
/usr/bin/python3 - "$jsock" "$work/journal.entries" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        d = s.recv(1 << 20)
        f.write(d.decode(errors="replace").replace("\n", "|") + "\n")
        f.flush()
PY
jpid=$!
pids+=("$jpid")
trap 'kill $jpid 2>/dev/null || true; rm -f "$jsock"; ((made_dir)) && rmdir /run/systemd/journal 2>/dev/null; cleanup' EXIT
for _ in $(seq 1 50); do [[ -S $jsock ]] && break; sleep 0.1; done
FERRY_LOG_FORMAT=journal "$bin/ferry-scheduler" --config "$work/ferry.conf" --name sdj 2>"$work/journal-stderr.log" &
jspid=$!
pids+=("$jspid")
for _ in $(seq 1 100); do grep -q "ready: broker connected" "$work/journal.entries" 2>/dev/null && break; sleep 0.1; done
rid=$(cat /proc/sys/kernel/random/uuid)
amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json \
  -b "{\"v\":1,\"type\":\"migration.abort\",\"id\":\"$rid\",\"body\":{\"migration\":4242}}" || fail "publish"
for _ in $(seq 1 50); do grep -q "MIGRATION_ID=4242" "$work/journal.entries" 2>/dev/null && break; sleep 0.1; done
entry=$(grep "MIGRATION_ID=4242" "$work/journal.entries" | head -n 1)
[[ $entry == *"MESSAGE=migration.abort of migration 4242 refused: no migration 4242"* && $entry == *"PRIORITY=4"* &&
   $entry == *"SYSLOG_IDENTIFIER=ferry-scheduler"* && $entry == *"REQ=$rid"* && $entry == *"HOST=sdj"* ]] ||
  fail "journal entry: [$entry]; all: $(tail -n 5 "$work/journal.entries")"
[[ ! -s $work/journal-stderr.log ]] || fail "journal format still wrote to stderr: $(head -n 3 "$work/journal-stderr.log")"
kill -TERM "$jspid"
wait "$jspid" || fail "scheduler (journal) exit $? on SIGTERM"
ok "FERRY_LOG_FORMAT=journal: entries with MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, MIGRATION_ID, HOST, REQ"
echo "all checks passed"
