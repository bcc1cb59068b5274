#!/usr/bin/env bash
# The scheduler's loop never waits on PostgreSQL (issue #14), on the harness's real broker and
# database. With [amqp] heartbeat_s = 2, the PostgreSQL server processes of this test run (the
# harness's postmaster and its children, by PID) are stopped with SIGSTOP for 15 s while an
# agent's heartbeats and an HTTP read arrive. All along /healthz answers within 2 s, saying the
# database is not ok once a statement has waited past 2 s (database_stalled_ms); the broker keeps
# the scheduler's connection (the same TCP connection before and after, listed by RabbitMQ, and
# no "lost the broker" in the log: a loop that stopped would miss the broker's heartbeats for
# ~4 s and be dropped). After SIGCONT the queued work completes: every heartbeat is recorded
# in order (the last one's figures stand), the read answers, /healthz is ok again.
set -euo pipefail
db=ferry_stall_$$
source "$(dirname "$0")/lib.sh"
stopped=()
agent=ferry-agent-st1
# the database first: whatever happened, the harness's PostgreSQL runs on
test_cleanup() { local p; for p in "${stopped[@]}"; do kill -CONT "$p" 2>/dev/null || true; done; }

[[ ${FERRY_SCHEDULER_USERS:-} == guest ]] || fail "run through ctest (guest plays the schedulers)"
state=${FERRY_TEST_STATE:?run through ctest}
postmaster=$(head -n 1 "$state/pg-data/postmaster.pid" 2>/dev/null || true)
[[ $postmaster =~ ^[0-9]+$ ]] && kill -0 "$postmaster" || fail "no PostgreSQL of the harness in $state/pg-data"

token=stall-token-$$
new_db "$(printf '[amqp]\nheartbeat_s = 2\n[database]\nconnect_timeout_s = 2\n[http]\nport = 0\ntokens = %s\n[log]\nlevel = info\n' "$token")"
sql "INSERT INTO hosts (name, arch, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb)
     VALUES ('st1', 'x86_64', now(), 8, 8192, 8, 8192)" >/dev/null
rctl add_user "$agent" "st1-$$" >/dev/null
users+=("$agent")
rctl set_permissions -p / "$agent" '.*' '.*' '.*' >/dev/null
agent_url="amqp://$agent:st1-$$@127.0.0.1:$FERRY_TEST_AMQP_PORT"
heartbeat() { # vcpus: one heartbeat of st1 from its agent's user
  "$top/tests/harness/amqp-send" "$agent_url" ferry.events host.st1.heartbeat \
    "$(printf '{"v":1,"type":"host.heartbeat","id":"%s","body":{"origin":"agent","address":"st1","vcpus":%d,"memory_mb":65536}}' "$(newid)" "$1")" \
    >/dev/null || fail "the broker refused heartbeat $1"
}

"$bin/ferry-scheduler" --config "$work/ferry.conf" --name stall1 2>"$work/scheduler.log" &
spid=$!
pids+=("$spid")
wait_line "$work/scheduler.log" "ready: broker connected" || fail "scheduler not ready"
wait_line "$work/scheduler.log" "HTTP API and dashboard on http://" || fail "no HTTP server"
port=$(sed -n 's|.*HTTP API and dashboard on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/scheduler.log" | head -n 1)
url=http://127.0.0.1:$port
body=$work/body.json
for _ in $(seq 1 50); do
  [[ $(curl -sS -o "$body" -w '%{http_code}' --max-time 2 "$url/healthz" || true) == 200 ]] && break
  sleep 0.2
done
[[ $(jq -r '"\(.ok) \(.database) \(.broker)"' "$body") == "true true true" ]] || fail "/healthz before: $(cat "$body")"
heartbeat 20
for _ in $(seq 1 50); do [[ $(sql "SELECT vcpus FROM hosts WHERE name = 'st1'") == 20 ]] && break; sleep 0.1; done
[[ $(sql "SELECT vcpus FROM hosts WHERE name = 'st1'") == 20 ]] || fail "the first heartbeat was not recorded"
# the scheduler's one connection to the broker: its local port, as ss sees it from the process
amqp_port() {
  ss -Htnp state established "( dport = :$FERRY_TEST_AMQP_PORT )" | grep "pid=$spid," | awk '{print $3}' | sed 's/.*://' | head -n 1
}
conn=$(amqp_port)
[[ -n $conn ]] || fail "no AMQP connection of the scheduler (pid $spid)"
rctl list_connections -q peer_port state | awk -v p="$conn" '$1 == p {print $2}' | grep -qx running ||
  fail "the broker does not list the scheduler's connection (port $conn): $(rctl list_connections -q peer_port state)"
ok "scheduler up, healthy, heartbeats recorded; its broker connection from port $conn"

# ---- PostgreSQL stopped: the postmaster first (it forks nothing more), then its children ------------------
kill -STOP "$postmaster"
stopped+=("$postmaster")
for c in $(pgrep -P "$postmaster"); do kill -STOP "$c" && stopped+=("$c"); done
t0=$(date +%s%N)
elapsed_ms() { echo $((($(date +%s%N) - t0) / 1000000)); }
# an HTTP read that waits for the database, answered when it is back
curl -sS -o "$work/read.json" -w '%{http_code}' --max-time 90 -H "X-Auth-Token: $token" "$url/api/hosts/st1" \
  >"$work/read.code" 2>"$work/read.err" &
reader=$!
pids+=("$reader")
asked=0 stalled_seen=0 vcpus=20
while (($(elapsed_ms) < 15000)); do
  vcpus=$((vcpus + 1))
  heartbeat "$vcpus"
  a0=$(date +%s%N)
  code=$(curl -sS -o "$body" -w '%{http_code}' --max-time 2 "$url/healthz" 2>"$work/curl.err") ||
    fail "/healthz did not answer within 2 s at $(elapsed_ms) ms into the stall: $(cat "$work/curl.err")"
  took=$((($(date +%s%N) - a0) / 1000000))
  asked=$((asked + 1))
  ((took <= 2000)) || fail "/healthz took $took ms"
  [[ $(jq -r .broker "$body") == true ]] || fail "/healthz says the broker is away: $(cat "$body")"
  if [[ $(jq -r .database "$body") == false ]]; then
    [[ $code == 503 && $(jq -r .ok "$body") == false ]] || fail "/healthz with the database not ok: $code $(cat "$body")"
    ms=$(jq -r '.database_stalled_ms // 0' "$body")
    ((ms >= 2000)) && stalled_seen=$((stalled_seen + 1))
  elif (($(elapsed_ms) > 5000)); then
    fail "/healthz says the database is ok $(elapsed_ms) ms into the stall: $(cat "$body")"
  fi
  sleep 1
done
((stalled_seen >= 3)) || fail "/healthz said the database stalled only $stalled_seen times of $asked"
kill -0 "$reader" 2>/dev/null || fail "the HTTP read answered while the database was stopped: $(cat "$work/read.code")"
grep -Eq "lost the broker|broker lost" "$work/scheduler.log" && fail "the scheduler lost the broker during the stall"
[[ $(amqp_port) == "$conn" ]] || fail "the scheduler's broker connection changed: port $conn -> $(amqp_port)"
rctl list_connections -q peer_port state | awk -v p="$conn" '$1 == p {print $2}' | grep -qx running ||
  fail "the broker no longer lists the scheduler's connection (port $conn)"
ok "database stopped $(elapsed_ms) ms: /healthz answered $asked times within 2 s (stalled $stalled_seen times), the broker kept the connection, $((vcpus - 20)) heartbeats sent"

# ---- PostgreSQL back: the queued work completes ----------------------------------------------------------
for p in "${stopped[@]}"; do kill -CONT "$p"; done
stopped=()
for _ in $(seq 1 150); do [[ $(sql "SELECT vcpus FROM hosts WHERE name = 'st1'") == "$vcpus" ]] && break; sleep 0.1; done
[[ $(sql "SELECT vcpus FROM hosts WHERE name = 'st1'") == "$vcpus" ]] ||
  fail "the last heartbeat ($vcpus vcpus) was not recorded: $(sql "SELECT vcpus FROM hosts WHERE name = 'st1'")"
wait "$reader" || fail "the HTTP read failed: $(cat "$work/read.err")"
[[ $(cat "$work/read.code") == 200 && $(jq -r '"\(.name) \(.vcpus)"' "$work/read.json") == "st1 "* ]] ||
  fail "the HTTP read after the stall: $(cat "$work/read.code") $(cat "$work/read.json")"
for _ in $(seq 1 50); do
  [[ $(curl -sS -o "$body" -w '%{http_code}' --max-time 2 "$url/healthz" || true) == 200 ]] && break
  sleep 0.2
done
[[ $(jq -r '"\(.ok) \(.database) \(.broker)"' "$body") == "true true true" ]] || fail "/healthz after: $(cat "$body")"
grep -Eq "lost the broker|broker lost" "$work/scheduler.log" && fail "the scheduler lost the broker"
[[ $(amqp_port) == "$conn" ]] || fail "the scheduler's broker connection changed after the stall"
kill -0 "$spid" || fail "the scheduler died"
ok "database back: the heartbeats recorded (last: $vcpus vcpus), the read answered, /healthz ok, same broker connection"
echo "all checks passed"
