#!/usr/bin/env bash
# The broker's users (deploy/rabbitmq): setup.sh defines ferry's topology and the schedulers'
# user; add-agent-user gives each agent a user of its own. An agent running as its user (with
# [amqp] declare_topology = false) serves RPCs and publishes heartbeats; the same user cannot
# consume ferry.scheduler or another host's queue.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
export RABBITMQCTL="$FERRY_TEST_HARNESS rabbitmqctl"
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for u in ferry-agent-ru1 ferry-agent-ru2; do $RABBITMQCTL delete_user "$u" >/dev/null 2>&1 || true; done
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
kill -0 "${pids[0]}" && kill -0 "${pids[1]}" || fail "an agent died"
ok "the agent's user cannot consume ferry.scheduler or another host's queue, nor declare other queues ($(grep -io 'ACCESS_REFUSED[^"]*' "$work/get1.out" | head -n 1))"
echo "all checks passed"
