#!/usr/bin/env bash
# The broker's users (deploy/rabbitmq): setup.sh defines ferry's topology and the schedulers'
# user; add-agent-user gives each agent a user of its own. An agent running as its user (with
# [amqp] declare_topology = false) serves RPCs and publishes heartbeats; the same user cannot
# consume ferry.scheduler or another host's queue. add-operator-user gives ferryctl a user that
# reads, sends requests and follows them (--wait), and consumes nothing of the daemons'.
set -euo pipefail
# production's users, not the harness's "guest plays the scheduler": the defaults of [trust]
unset FERRY_SCHEDULER_USERS
bin=${FERRY_BIN_DIR:?run through ctest}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
db=ferry_ru_$$
export RABBITMQCTL="$FERRY_TEST_HARNESS rabbitmqctl"
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for u in ferry-agent-ru1 ferry-agent-ru2 ferry-op-ru; do $RABBITMQCTL delete_user "$u" >/dev/null 2>&1 || true; done
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

"$top/deploy/rabbitmq/setup.sh" "sched-$$" >"$work/setup.out" || fail "setup.sh: $(cat "$work/setup.out")"
"$top/deploy/rabbitmq/add-agent-user" ru1 "pw1-$$" >/dev/null || fail "add-agent-user ru1"
"$top/deploy/rabbitmq/add-agent-user" ru2 "pw2-$$" >/dev/null || fail "add-agent-user ru2"
"$top/deploy/rabbitmq/add-agent-user" ru1 "pw1-$$" >/dev/null || fail "add-agent-user is not idempotent"
ok "setup.sh and add-agent-user (twice)"

port=${FERRY_TEST_AMQP_PORT:?}
url() { echo "amqp://$1:$2@127.0.0.1:$port"; }
printf '[amqp]\nheartbeat_s = 5\ndeclare_topology = false\n' >"$work/agent.conf"
for h in ru1 ru2; do
  pw=pw1-$$
  [[ $h == ru2 ]] && pw=pw2-$$
  FERRY_AMQP_URL=$(url "ferry-agent-$h" "$pw") "$bin/ferry-agent" --config "$work/agent.conf" --host "$h" 2>"$work/$h.log" &
  pids+=("$!")
done
for _ in $(seq 1 100); do grep -q "agent ready" "$work/ru1.log" && grep -q "agent ready" "$work/ru2.log" && break; sleep 0.1; done
grep -q "agent ready: serving ferry.compute.ru1" "$work/ru1.log" || fail "the agent does not run as its own user"
out=$(FERRY_AMQP_URL=$(url ferry-scheduler "sched-$$") "$bin/ferryctl" --timeout 5000 ping ru1) || fail "ping ru1 as the scheduler's user: $out"
ok "agents run as ferry-agent-ru1 / -ru2 and answer RPCs ($out)"

# what the agent's user must not do
st=0; amqp-get --url "$(url ferry-agent-ru1 "pw1-$$")" -q ferry.scheduler >"$work/get1.out" 2>&1 || st=$?
[[ $st != 0 ]] && grep -qi "ACCESS_REFUSED\|access.*refused\|403" "$work/get1.out" || fail "agent user read ferry.scheduler: $st $(cat "$work/get1.out")"
st=0; amqp-get --url "$(url ferry-agent-ru1 "pw1-$$")" -q ferry.compute.ru2 >"$work/get2.out" 2>&1 || st=$?
[[ $st != 0 ]] && grep -qi "ACCESS_REFUSED\|access.*refused\|403" "$work/get2.out" || fail "agent user read ferry.compute.ru2: $st $(cat "$work/get2.out")"
st=0; amqp-declare-queue --url "$(url ferry-agent-ru1 "pw1-$$")" -q ferry.scheduler.sneaky >"$work/decl.out" 2>&1 || st=$?
[[ $st != 0 ]] || fail "agent user declared a queue of its choice"
# topic permissions on ferry.events: its own host's keys and instance/migration events only
st=0; amqp-publish --url "$(url ferry-agent-ru1 "pw1-$$")" -e ferry.events -r host.ru2.heartbeat -b '{}' >"$work/pub1.out" 2>&1 || st=$?
[[ $st != 0 ]] && grep -q "ACCESS_REFUSED - access to topic 'host.ru2.heartbeat'" "$work/pub1.out" ||
  fail "agent user published a heartbeat for another host: $st $(cat "$work/pub1.out")"
amqp-publish --url "$(url ferry-agent-ru1 "pw1-$$")" -e ferry.events -r instance.11111111-2222-3333-4444-555555555555.started -b '{}' >"$work/pub2.out" 2>&1 ||
  fail "agent user cannot publish instance events: $(cat "$work/pub2.out")"
# nothing on the default exchange (it reaches every queue by name) nor on ferry (requests, other
# agents' RPCs); no queue but its own to consume; nothing to declare or bind
send=$top/tests/harness/amqp-send
for target in ":ferry.scheduler" ":ferry.compute.ru2" ":ferry.scheduler.rpc" ":ferry.dead" "ferry:scheduler" "ferry:compute.ru2" \
              "ferry:scheduler.rpc" "ferry.events:host.ru1.down" "ferry.events:host.ru1.x.heartbeat"; do
  st=0; out=$("$send" "$(url ferry-agent-ru1 "pw1-$$")" "${target%%:*}" "${target#*:}" '{}' 2>&1) || st=$?
  [[ $st == 1 && $out == *ACCESS_REFUSED* ]] || fail "agent user published to exchange '${target%%:*}' key ${target#*:}: $out"
done
for q in ferry.scheduler.events ferry.scheduler.rpc ferry.dead; do
  st=0; amqp-get --url "$(url ferry-agent-ru1 "pw1-$$")" -q "$q" >"$work/get3.out" 2>&1 || st=$?
  [[ $st != 0 ]] && grep -qi "ACCESS_REFUSED" "$work/get3.out" || fail "agent user read $q: $st $(cat "$work/get3.out")"
done
"$send" "$(url ferry-agent-ru1 "pw1-$$")" ferry.events host.ru1.heartbeat '{}' >/dev/null || fail "agent user cannot publish its own heartbeat"
"$send" "$(url ferry-agent-ru1 "pw1-$$")" ferry.reply amq.gen-none '{}' >/dev/null || fail "agent user cannot answer on ferry.reply"
ok "the agent's user reaches neither the default exchange nor ferry, nor any queue but its own"
kill -0 "${pids[0]}" && kill -0 "${pids[1]}" || fail "an agent died"
ok "the agent's user cannot consume ferry.scheduler or another host's queue, declare other queues, or publish another host's events ($(grep -io 'ACCESS_REFUSED[^"]*' "$work/get1.out" | head -n 1))"
# ---- an operator's user: ferryctl with declare_topology = false --------------------------------------
"$top/deploy/rabbitmq/add-operator-user" ferry-op-ru "op-$$" >/dev/null || fail "add-operator-user"
psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
printf '[amqp]\nheartbeat_s = 5\n[http]\nenabled = false\n' >"$work/sched.conf"
FERRY_AMQP_URL=$(url ferry-scheduler "sched-$$") "$bin/ferry-scheduler" --config "$work/sched.conf" --db-upgrade >/dev/null ||
  fail "schema upgrade"
psql "$FERRY_DB_DSN" -qAtc "INSERT INTO hosts (name, arch, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb)
                           VALUES ('oph1', 'x86_64', now(), 8, 8192, 8, 8192)" >/dev/null
FERRY_AMQP_URL=$(url ferry-scheduler "sched-$$") "$bin/ferry-scheduler" --config "$work/sched.conf" --name ru 2>"$work/scheduler.log" &
pids+=("$!")
for _ in $(seq 1 100); do grep -q "ready: broker connected" "$work/scheduler.log" && break; sleep 0.1; done
grep -q "ready: broker connected" "$work/scheduler.log" || fail "the scheduler did not start as ferry-scheduler"
printf '[amqp]\ndeclare_topology = false\n' >"$work/op.conf"
op() { FERRY_AMQP_URL=$(url ferry-op-ru "op-$$") "$bin/ferryctl" -c "$work/op.conf" --timeout 10000 "$@"; }
out=$(op check 2>&1) && [[ $out == "broker: ok (connected; topology not declared: [amqp] declare_topology = false in "*" ms)" ]] ||
  fail "check as the operator: $out"
out=$(op host list 2>&1) && grep -q '^oph1 ' <<<"$out" || fail "host list as the operator: $out"
st=0; out=$(op migrate no-such-vm oph1 --wait 2>&1) || st=$?
[[ $st == 1 && $out == *"refused"*"no-such-vm"* ]] || fail "migrate --wait as the operator did not reach the scheduler's answer (exit $st): $out"
ok "the operator's user reads (host list) and sends a request it follows with --wait: $(tail -n 1 <<<"$out")"
for q in ferry.scheduler ferry.compute.ru1 ferry.dead; do
  st=0; amqp-get --url "$(url ferry-op-ru "op-$$")" -q "$q" >"$work/opget.out" 2>&1 || st=$?
  [[ $st != 0 ]] && grep -qi "ACCESS_REFUSED\|access.*refused\|403" "$work/opget.out" || fail "the operator's user read $q: $st $(cat "$work/opget.out")"
done
for q in ferry.scheduler.events ferry.scheduler.rpc; do
  st=0; amqp-get --url "$(url ferry-op-ru "op-$$")" -q "$q" >"$work/opget.out" 2>&1 || st=$?
  [[ $st != 0 ]] && grep -qi "ACCESS_REFUSED" "$work/opget.out" || fail "the operator's user read $q: $st $(cat "$work/opget.out")"
done
for target in ":ferry.scheduler" ":ferry.compute.ru1" ":ferry.dead" "ferry.events:host.ru1.heartbeat" "ferry.dead:x" "ferry.reply:x"; do
  st=0; out=$("$send" "$(url ferry-op-ru "op-$$")" "${target%%:*}" "${target#*:}" '{}' 2>&1) || st=$?
  [[ $st == 1 && $out == *ACCESS_REFUSED* ]] || fail "the operator's user published to exchange '${target%%:*}' key ${target#*:}: $out"
done
ok "the operator's user cannot consume ferry.scheduler, an agent's queue, the scheduler's queues or ferry.dead, nor publish on the default exchange, ferry.events, ferry.dead or ferry.reply"
echo "all checks passed"
