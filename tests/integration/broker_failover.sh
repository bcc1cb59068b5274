#!/usr/bin/env bash
# Several brokers in [amqp] url (a cluster's nodes, separated by commas): ferryctl and a daemon
# skip a node that cannot be reached, and a daemon whose node goes away while connected moves
# on to the next one and serves again. The "nodes" are TCP relays (socat) in front of the
# harness's one real RabbitMQ, so that one of them can be cut.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    pkill -KILL -P "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }
port=${FERRY_TEST_AMQP_PORT:?}
dead=$((port + 30)) relay1=$((port + 31)) relay2=$((port + 32))
for p in $dead $relay1 $relay2; do
  ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || fail "port $p is in use: this test needs it free"
done
url() { echo "amqp://guest:guest@127.0.0.1:$1"; }

# ---- ferryctl: the first node is down ------------------------------------------------------------
out=$(FERRY_AMQP_URL="$(url $dead), $(url "$port")" "$bin/ferryctl" --timeout 10000 check 2>&1) ||
  fail "ferryctl did not move on to the second broker: $out"
[[ $out == "broker: ok"* ]] || fail "ferryctl check: $out"
ok "ferryctl: node 1 ($dead) unreachable, connected through node 2: $out"

# ---- a daemon: skips the dead node, then loses its node and moves to the next --------------------
relay() { setsid socat "TCP-LISTEN:$1,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$port" </dev/null >/dev/null 2>&1 & pids+=("$!"); }
relay "$relay1"
r1=${pids[-1]}
relay "$relay2"
for p in $relay1 $relay2; do
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done
printf '[amqp]\nheartbeat_s = 2\n[log]\nlevel = info\n' >"$work/agent.conf"
FERRY_AMQP_URL="$(url $dead),$(url $relay1),$(url $relay2)" "$bin/ferry-agent" --config "$work/agent.conf" --host fo1 \
  2>"$work/agent.log" &
pids+=("$!")
for _ in $(seq 1 100); do grep -q "agent ready" "$work/agent.log" && break; sleep 0.1; done
grep -q "agent ready" "$work/agent.log" || fail "the agent did not start"
grep -q "could not connect to 127.0.0.1:$dead: Connection refused; trying broker 127.0.0.1:$relay1 in " "$work/agent.log" ||
  fail "no word of the unreachable first node"
grep -q "connected to broker 127.0.0.1:$relay1 " "$work/agent.log" || fail "the agent is not on node 2"
out=$(FERRY_AMQP_URL=$(url "$port") "$bin/ferryctl" --timeout 10000 ping fo1 2>&1) || fail "ping through node 2: $out"
ok "ferry-agent: node 1 unreachable, serving through node 2 ($out)"

# cut node 2: its relay and the connection through it
pkill -KILL -P "$r1" || true
kill -KILL "$r1"
for _ in $(seq 1 100); do grep -q "connected to broker 127.0.0.1:$relay2 " "$work/agent.log" && break; sleep 0.1; done
grep -q "connection to broker 127.0.0.1:$relay1 lost: " "$work/agent.log" || fail "the lost node is not named"
grep -q "connected to broker 127.0.0.1:$relay2 " "$work/agent.log" || fail "the agent did not move to node 3"
out=$(FERRY_AMQP_URL=$(url "$port") "$bin/ferryctl" --timeout 10000 ping fo1 2>&1) || fail "ping through node 3: $out"
kill -0 "${pids[-1]}" || fail "the agent died"
ok "node 2 cut: the agent moved to node 3 and serves again ($(grep -o "connection to broker 127.0.0.1:$relay1 lost: [^\"]*" "$work/agent.log" | head -n 1))"
echo "all checks passed"
