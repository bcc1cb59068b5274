#!/usr/bin/env bash
# ferry's own checks of every message's sender, behind the broker's permissions: on the
# harness's real broker and database, a user named as host rogue's agent but given every
# permission (a broker set up wrong) tries what only others may. The scheduler and the agent
# refuse each message for its sender, dead-letter it with the reason, log the sender, and
# change nothing; a heartbeat whose one domain the database refuses is refused for that
# domain alone. docs/SECURITY.md names this test.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
db=ferry_snd_$$
rctl() { "$FERRY_TEST_HARNESS" rabbitmqctl "$@"; }
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rctl delete_user ferry-agent-rogue >/dev/null 2>&1 || true
  amqp-delete-queue --url "$FERRY_TEST_AMQP_URL" -q ferry.compute.sc1 >/dev/null 2>&1 || true
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
newid() { cat /proc/sys/kernel/random/uuid; }
# waits up to 10 s for a line matching ERE $2 in file $1
wait_line() { for _ in $(seq 1 100); do grep -Eq -- "$2" "$1" && return 0; sleep 0.1; done; return 1; }
dead_count() { rctl list_queues -q name messages | awk '$1 == "ferry.dead" {print $2}'; }

psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL # guest: the schedulers' user here (FERRY_SCHEDULER_USERS)
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
[[ ${FERRY_SCHEDULER_USERS:-} == guest ]] || fail "run through ctest (guest plays the schedulers)"
printf '[amqp]\nheartbeat_s = 5\n[http]\nenabled = false\n[log]\nlevel = info\n' >"$work/ferry.conf"
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
"$bin/ferry-scheduler" --config "$work/ferry.conf" --name snd 2>"$work/scheduler.log" &
pids+=("$!")
"$bin/ferry-agent" --config "$work/ferry.conf" --host sc1 2>"$work/agent.log" &
pids+=("$!")
wait_line "$work/scheduler.log" "ready: broker connected" || fail "scheduler not ready"
wait_line "$work/agent.log" "agent ready: serving ferry.compute.sc1" || fail "agent not ready"

# host rogue's agent user, with every permission a broker can give
rctl add_user ferry-agent-rogue "rogue-$$" >/dev/null
rctl set_permissions -p / ferry-agent-rogue '.*' '.*' '.*' >/dev/null
rogue="amqp://ferry-agent-rogue:rogue-$$@127.0.0.1:$FERRY_TEST_AMQP_PORT"
send() { "$top/tests/harness/amqp-send" "$rogue" "$@" >/dev/null || fail "the broker refused: $*"; }
env_of() { printf '{"v":1,"type":"%s","id":"%s","body":%s}' "$1" "$(newid)" "$2"; }
# another host's instance, with an i-xxxxxxxx id a domain below will also claim
sql "INSERT INTO hosts (name, arch, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb)
     VALUES ('sc2', 'x86_64', now(), 8, 8192, 8, 8192)" >/dev/null
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb, vm_state, ec2_id)
     VALUES ('aaaaaaaa-0000-4000-8000-000000000001', 'other', 'sc2', 1, 128, 'running', 'i-000000aa')" >/dev/null
snapshot() {
  sql "SELECT (SELECT count(*) FROM migrations) || ' ' || (SELECT count(*) FROM processed_requests) || ' '
       || (SELECT count(*) FROM allocations) || ' ' || (SELECT string_agg(name || ':' || vcpus, ',' ORDER BY name) FROM hosts)
       || ' ' || (SELECT string_agg(name || '@' || host, ',' ORDER BY name) FROM instances)"
}
before=$(snapshot)
dead0=$(dead_count)

# 1. a migration request and a read RPC: operators' and schedulers' only
send ferry scheduler "$(env_of migration.request '{"instance":"other","os-migrateLive":{"host":"sc1"}}')"
wait_line "$work/scheduler.log" "request refused: user ferry-agent-rogue \(the agent of rogue\) may not send requests" ||
  fail "the scheduler took a request from an agent's user"
send ferry scheduler "$(env_of migration.resolve '{"migration":1,"to":"destination"}')"
for _ in $(seq 1 100); do
  (($(grep -c "request refused: user ferry-agent-rogue (the agent of rogue) may not send requests" "$work/scheduler.log") >= 2)) && break
  sleep 0.1
done
(($(grep -c "request refused: user ferry-agent-rogue (the agent of rogue) may not send requests" "$work/scheduler.log") >= 2)) ||
  fail "the scheduler took a migration.resolve from an agent's user"
send ferry scheduler.rpc "$(env_of rpc.host_list '{}')"
wait_line "$work/scheduler.log" "refused a read RPC on ferry.scheduler.rpc: user ferry-agent-rogue .* may not send requests" ||
  fail "the scheduler answered a read RPC of an agent's user"
ok "a request, a resolve and a read RPC from an agent's user: refused"

# 2. RPCs to another host's agent: the schedulers' only (an operator may ping)
send ferry compute.sc1 "$(env_of rpc.ping '{}')" --reply-to nowhere
send ferry compute.sc1 "$(env_of rpc.rollback '{"migration":1,"instance":"aaaaaaaa-0000-4000-8000-000000000001"}')"
wait_line "$work/agent.log" "refused an RPC on ferry.compute.sc1: user ferry-agent-rogue \(the agent of rogue\) may not call rpc.ping|may not call ping" ||
  fail "the agent served ping to another agent's user"
wait_line "$work/agent.log" "refused an RPC on ferry.compute.sc1: user ferry-agent-rogue \(the agent of rogue\) may not call rollback" ||
  fail "the agent served rollback to another agent's user"
ok "RPCs to sc1's agent from another agent's user: refused"

# 3. heartbeats: only a host's own agent speaks for it, and only with its user_id
hb() { env_of "host.$1.heartbeat" "{\"origin\":\"agent\",\"address\":\"$1\",\"vcpus\":64,\"memory_mb\":65536${2:-}}"; }
send ferry.events host.sc2.heartbeat "$(hb sc2)"
wait_line "$work/scheduler.log" "host=sc2 .*event host.sc2.heartbeat refused: user ferry-agent-rogue \(the agent of rogue\) may not speak for host sc2" ||
  fail "another host's heartbeat was not refused"
send ferry.events host.rogue.heartbeat "$(hb rogue)" --no-user-id
wait_line "$work/scheduler.log" "event host.rogue.heartbeat refused: a message without user_id \(sender unknown\) may not speak for host rogue" ||
  fail "a heartbeat without user_id was not refused"
[[ $(snapshot) == "$before" ]] || fail "refused messages changed the database: $before -> $(snapshot)"
ok "heartbeats for another host, or without a sender: refused, database unchanged"

# 4. its own heartbeat is taken; a domain the database refuses is refused alone
doms=',"domains":[{"uuid":"bbbbbbbb-0000-4000-8000-000000000001","name":"mine","vcpus":1,"memory_mb":128,"state":"running","instance_id":"i-000000bb"},{"uuid":"bbbbbbbb-0000-4000-8000-000000000002","name":"clash","vcpus":1,"memory_mb":128,"state":"running","instance_id":"i-000000aa"},{"uuid":"bbbbbbbb-0000-4000-8000-000000000003","name":"after","vcpus":1,"memory_mb":128,"state":"running"}]'
send ferry.events host.rogue.heartbeat "$(hb rogue "$doms")"
wait_line "$work/scheduler.log" "heartbeat of rogue: domain bbbbbbbb-0000-4000-8000-000000000002 refused: .*ec2" ||
  fail "the clashing domain was not refused alone: $(grep rogue "$work/scheduler.log" | tail -n 3)"
for _ in $(seq 1 50); do [[ $(sql "SELECT count(*) FROM instances WHERE host = 'rogue'") == 2 ]] && break; sleep 0.1; done
[[ $(sql "SELECT string_agg(name, ',' ORDER BY name) FROM instances WHERE host = 'rogue'") == "after,mine" ]] ||
  fail "the rest of the heartbeat: $(sql "SELECT name, host FROM instances")"
[[ $(sql "SELECT host || ':' || name FROM instances WHERE ec2_id = 'i-000000aa'") == "sc2:other" ]] || fail "the other host's instance changed"
[[ $(sql "SELECT vcpus FROM hosts WHERE name = 'rogue'") == 64 ]] || fail "the host row of rogue"
ok "rogue's own heartbeat recorded; its domain with another instance's id refused alone"

# every refused message is in ferry.dead with its reason
# (the broker's queue statistics lag a little behind)
for _ in $(seq 1 50); do dead1=$(dead_count); ((dead1 - dead0 >= 6)) && break; sleep 0.2; done
((dead1 - dead0 >= 6)) || fail "ferry.dead holds $((dead1 - dead0)) of the 6 refused messages"
ok "the $((dead1 - dead0)) refused messages are in ferry.dead"
for p in "${pids[@]}"; do kill -0 "$p" || fail "a daemon died"; done
echo "all checks passed"
