#!/usr/bin/env bash
# ferry.dead is bounded: the policy ferry-dead-bound (deploy/rabbitmq/definitions.json, set by
# setup.sh in production and by the test harness on its broker) caps it by count and by bytes
# and drops the oldest messages. The policy is checked on the queue; then, with the same kind of
# policy at bounds this test can reach (20 messages, then 10000 bytes), ferry.dead is filled past
# the bound and holds at it, keeping the newest messages.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
export RABBITMQCTL="$FERRY_TEST_HARNESS rabbitmqctl"
cleanup() {
  $RABBITMQCTL clear_policy ferry-test-dead-bound >/dev/null 2>&1 || true
  $RABBITMQCTL clear_policy ferry-test-dead-bytes >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# the harness set ferry's policies when it started the broker
$RABBITMQCTL list_policies -q >"$work/policies" || fail "list_policies"
grep -q 'ferry-dead-bound.*\^ferry\\\.dead\$.*"max-length":100000' "$work/policies" ||
  fail "the harness did not set ferry-dead-bound: $(cat "$work/policies")"
ok "the harness set ferry's policies: $(awk '{print $2}' "$work/policies" | grep '^ferry-' | tr '\n' ' ')"
# setup.sh declares ferry.dead and sets the same policy (idempotent)
"$top/deploy/rabbitmq/setup.sh" "sched-$$" >/dev/null || fail "setup.sh"
qpolicy() { $RABBITMQCTL list_queues -q name policy | awk -v q=ferry.dead '$1 == q {print $2}'; }
for _ in $(seq 1 20); do [[ $(qpolicy) == ferry-dead-bound ]] && break; sleep 0.2; done
[[ $(qpolicy) == ferry-dead-bound ]] || fail "ferry.dead's policy: $(qpolicy)"
def=$(grep '^/[[:space:]]*ferry-dead-bound' "$work/policies")
[[ $def == *'"max-length":100000'* && $def == *'"max-length-bytes":536870912'* && $def == *'"overflow":"drop-head"'* ]] ||
  fail "ferry-dead-bound's definition: $def"
ok "ferry.dead runs under ferry-dead-bound: $(grep -o '{.*}' <<<"$def")"

count() { $RABBITMQCTL list_queues -q name messages | awk '$1 == "ferry.dead" {print $2}'; }
bound() { # name definition: applies a test policy and waits until ferry.dead runs under it
  $RABBITMQCTL set_policy --apply-to queues --priority 20 "$1" '^ferry\.dead$' "$2" >/dev/null || fail "set_policy $2"
  for _ in $(seq 1 20); do [[ $(qpolicy) == "$1" ]] && break; sleep 0.2; done
  [[ $(qpolicy) == "$1" ]] || fail "ferry.dead does not run under the test policy $1: $(qpolicy)"
}

# ---- by count ---------------------------------------------------------------------------------------------------
"$bin/ferry-test-deadget" "$FERRY_TEST_AMQP_URL" ferry.dead >/dev/null || fail "drain ferry.dead"
bound ferry-test-dead-bound '{"max-length": 20, "overflow": "drop-head"}'
for i in $(seq 1 30); do
  amqp-publish --url "$FERRY_TEST_AMQP_URL" -e ferry.dead -r x -b "dead-$i" || fail "publish $i"
done
for _ in $(seq 1 50); do [[ $(count) == 20 ]] && break; sleep 0.2; done
[[ $(count) == 20 ]] || fail "ferry.dead holds $(count) messages after 30, bound 20"
"$bin/ferry-test-deadget" "$FERRY_TEST_AMQP_URL" ferry.dead >"$work/got" || fail "read ferry.dead"
[[ $(jq -r .head "$work/got" | tr '\n' ' ') == "$(seq -f 'dead-%g' 11 30 | tr '\n' ' ')" ]] ||
  fail "ferry.dead kept $(jq -r .head "$work/got" | tr '\n' ' '), wanted dead-11 .. dead-30"
ok "30 messages into ferry.dead bounded at 20: it holds 20, the newest (dead-11 .. dead-30)"

# ---- by bytes ---------------------------------------------------------------------------------------------------
$RABBITMQCTL clear_policy ferry-test-dead-bound >/dev/null
bound ferry-test-dead-bytes '{"max-length-bytes": 10000, "overflow": "drop-head"}'
for i in $(seq 1 30); do
  { printf 'big-%02d ' "$i"; head -c 993 /dev/zero | tr '\0' 'x'; } |
    amqp-publish --url "$FERRY_TEST_AMQP_URL" -e ferry.dead -r x || fail "publish $i"
done
# the broker's queue statistics lag behind (seen: 0 one second after the 30 publishes, under load)
for _ in $(seq 1 50); do n=$(count); ((n >= 9 && n <= 10)) && break; sleep 0.2; done
((n >= 9 && n <= 10)) || fail "ferry.dead holds $n messages of 1000 bytes after 30, bound 10000 bytes"
"$bin/ferry-test-deadget" "$FERRY_TEST_AMQP_URL" ferry.dead >"$work/got2" || fail "read ferry.dead"
[[ $(jq -r '.head[0:6]' "$work/got2" | tail -n 1) == big-30 ]] || fail "the newest message was not kept"
ok "30 messages of 1000 bytes into ferry.dead bounded at 10000 bytes: it holds $n, the newest"
$RABBITMQCTL clear_policy ferry-test-dead-bytes >/dev/null
echo "all checks passed"
