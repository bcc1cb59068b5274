#!/usr/bin/env bash
# The three programs on the real broker and database of the harness: schema upgrade (twice),
# a scheduler that refuses an old schema, scheduler and agent start, answer, and stop cleanly
# on SIGTERM; ferryctl reaches the agent over RPC and reports a host nobody serves.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

db=ferry_smoke_$$
psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
printf '[log]\nlevel = debug\n[amqp]\nheartbeat_s = 2\n[http]\nport = 0\n' >"$work/ferry.conf"

# an empty database: the scheduler refuses to run and says what to do
st=0
"$bin/ferry-scheduler" --config "$work/ferry.conf" 2>"$work/refuse.log" || st=$?
[[ $st -eq 1 ]] || fail "scheduler on an empty database exited $st, wanted 1"
grep -q "run 'ferry-scheduler --db-upgrade'" "$work/refuse.log" || fail "no upgrade hint"
ok "scheduler refuses a database without the schema"

out=$("$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade)
[[ $out == "database schema upgraded from version 0 to "* ]] || fail "first upgrade said: $out"
out=$("$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade)
[[ $out == "database schema already at version "*", nothing to do" ]] || fail "second upgrade said: $out"
ok "schema upgrade, twice"

# HTTPS that cannot be served: the scheduler does not start, and says which file and why
printf '[http]\nport = 0\ncert_file = %s/none.pem\nkey_file = %s/none-key.pem\n' "$work" "$work" >"$work/https.conf"
st=0
"$bin/ferry-scheduler" --config "$work/https.conf" 2>"$work/https.log" || st=$?
[[ $st -eq 2 ]] || fail "scheduler with a missing HTTPS certificate exited $st, wanted 2"
grep -q "cannot start: HTTPS: cannot read the certificate $work/none.pem (\[http\] cert_file): No such file or directory" "$work/https.log" ||
  fail "no reason for the HTTPS refusal: $(cat "$work/https.log")"
ok "scheduler refuses an HTTPS certificate it cannot read, naming it"

"$bin/ferry-scheduler" --config "$work/ferry.conf" 2>"$work/scheduler.log" &
spid=$!
pids+=("$spid")
"$bin/ferry-agent" --config "$work/ferry.conf" --host smoke1 2>"$work/smoke1.agent.log" &
apid=$!
pids+=("$apid")
for _ in $(seq 1 150); do
  grep -q "agent ready" "$work/smoke1.agent.log" && grep -q "ready: broker connected" "$work/scheduler.log" && break
  sleep 0.1
done
grep -q "ready: broker connected" "$work/scheduler.log" || fail "scheduler not ready"
grep -q "agent ready: serving ferry.compute.smoke1" "$work/smoke1.agent.log" || fail "agent not ready"
grep -q "host=smoke1" "$work/smoke1.agent.log" || fail "agent lines carry no host="
ok "scheduler and agent ready"

out=$("$bin/ferryctl" --config "$work/ferry.conf" ping smoke1) || fail "ping smoke1: $out"
[[ $out == "smoke1: ferry-agent "*", libvirt "*" ms" ]] || fail "ping said: $out"
json=$("$bin/ferryctl" --config "$work/ferry.conf" -o json ping smoke1)
echo "$json" | grep -q '"host":"smoke1"' || fail "ping -o json said: $json"
ok "ferryctl ping over RPC: $out"

st=0
out=$("$bin/ferryctl" --config "$work/ferry.conf" --timeout 800 ping nobody 2>&1) || st=$?
[[ $st -eq 1 && $out == *"no answer from the agent of nobody"* ]] || fail "ping nobody: exit $st: $out"
ok "ferryctl ping of a host nobody serves: $out"

# garbage on the agent's queue (from an independent AMQP client) is dead-lettered with a
# reason, and the agent goes on answering
amqp-publish --url "$FERRY_TEST_AMQP_URL" -e ferry -r compute.smoke1 -b "not json at all {" 2>"$work/amqp-publish.log" ||
  fail "amqp-publish failed"
for _ in $(seq 1 50); do grep -q "malformed RPC request" "$work/smoke1.agent.log" && break; sleep 0.1; done
grep -q "malformed RPC request on ferry.compute.smoke1: invalid JSON" "$work/smoke1.agent.log" ||
  fail "agent did not report the malformed request"
st=0
out=$("$bin/ferryctl" --config "$work/ferry.conf" ping smoke1 2>&1) || st=$?
[[ $st -eq 0 ]] || fail "agent stopped answering after garbage: $out"
ok "malformed request dead-lettered, agent still answers"

kill -TERM "$spid" "$apid"
st=0; wait "$spid" || st=$?
[[ $st -eq 0 ]] || fail "scheduler exit $st on SIGTERM"
st=0; wait "$apid" || st=$?
[[ $st -eq 0 ]] || fail "agent exit $st on SIGTERM"
pids=()
grep -q 'received SIGTERM, shutting down' "$work/scheduler.log" || fail "scheduler did not log its stop"
grep -q 'ferry-agent stopped' "$work/smoke1.agent.log" || fail "agent did not log its stop"
ok "both stop cleanly on SIGTERM"
psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
echo "all checks passed"
