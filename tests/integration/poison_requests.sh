#!/usr/bin/env bash
# Poison requests, on the harness's real broker and database. A request the database refuses
# for good (here: a trigger installed in this test's database only raises P0001 for one
# instance) is dead-lettered at once with the SQLSTATE and PostgreSQL's message in
# x-ferry-reason, logged with req=, and the scheduler goes on taking requests. A request that
# fails for a retryable reason forever (the trigger raises 40001 for another instance) is put
# back in the queue until the broker's delivery-limit policy (deploy/rabbitmq/setup.sh) moves it
# to ferry.dead.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
db=ferry_poison_$$
export RABBITMQCTL="$FERRY_TEST_HARNESS rabbitmqctl"
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  $RABBITMQCTL clear_policy ferry-test-poison-limit >/dev/null 2>&1 || true
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

"$top/deploy/rabbitmq/setup.sh" "sched-$$" >/dev/null || fail "setup.sh"
$RABBITMQCTL list_policies -q >"$work/policies" || fail "list_policies"
grep -q 'ferry-scheduler-delivery-limit.*\^ferry\\\.scheduler\$.*"delivery-limit":50' "$work/policies" ||
  fail "setup.sh set no delivery limit on ferry.scheduler: $(cat "$work/policies")"
ok "setup.sh sets the delivery-limit policy on ferry.scheduler"

psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
printf '[amqp]\nheartbeat_s = 5\n[http]\nenabled = false\n[log]\nlevel = info\n' >"$work/ferry.conf"
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
sql "INSERT INTO hosts (name, arch, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb) VALUES
     ('h1', 'x86_64', now(), 8, 8192, 8, 8192), ('h2', 'x86_64', now(), 8, 8192, 8, 8192)" >/dev/null
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb) VALUES
     (gen_random_uuid(), 'poison', 'h1', 1, 256), (gen_random_uuid(), 'busy', 'h1', 1, 256),
     (gen_random_uuid(), 'good', 'h1', 1, 256)" >/dev/null
# the database refuses a migration of 'poison' for good, and of 'busy' as a serialization failure
sql "CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS \$\$
     DECLARE n text;
     BEGIN
       SELECT name INTO n FROM instances WHERE uuid = NEW.instance_uuid;
       IF n = 'poison' THEN RAISE EXCEPTION 'test trigger refuses instance %', n USING ERRCODE = 'P0001'; END IF;
       IF n = 'busy' THEN RAISE EXCEPTION 'test trigger: could not serialize' USING ERRCODE = '40001'; END IF;
       RETURN NEW;
     END \$\$;
     CREATE TRIGGER test_poison BEFORE INSERT ON migrations FOR EACH ROW EXECUTE FUNCTION test_poison()" >/dev/null

"$bin/ferry-scheduler" --config "$work/ferry.conf" --name poison1 2>"$work/scheduler.log" &
spid=$!
pids+=("$spid")
for _ in $(seq 1 150); do grep -q "ready: broker connected" "$work/scheduler.log" && break; sleep 0.1; done
grep -q "ready: broker connected" "$work/scheduler.log" || fail "scheduler not ready"
"$bin/ferry-test-deadget" "$FERRY_AMQP_URL" ferry.dead >/dev/null || fail "drain ferry.dead"

uuid() { cat /proc/sys/kernel/random/uuid; }
request() { # instance id
  printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"%s","os-migrateLive":{"host":null,"block_migration":false,"disk_over_commit":false,"post_copy":false}}}' "$2" "$1" |
    amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json || fail "publish $1"
}

# ---- not retryable: dead-lettered at once with the reason -----------------------------------------------
pid_req=$(uuid)
request poison "$pid_req"
for _ in $(seq 1 100); do grep -q "req=$pid_req .*not retryable: dead-lettered" "$work/scheduler.log" && break; sleep 0.1; done
grep -q "req=$pid_req .*cannot take request for poison: .*test trigger refuses instance poison.*(SQLSTATE P0001); not retryable: dead-lettered" \
  "$work/scheduler.log" || fail "no log line with req= for the poison request"
[[ $(grep -c "req=$pid_req .*could not take request" "$work/scheduler.log") == 0 ]] || fail "the poison request was retried"
for _ in $(seq 1 50); do "$bin/ferry-test-deadget" "$FERRY_AMQP_URL" ferry.dead >>"$work/dead1" && [[ -s $work/dead1 ]] && break; sleep 0.1; done
[[ $(wc -l <"$work/dead1") == 1 ]] || fail "ferry.dead holds $(wc -l <"$work/dead1") messages, wanted 1: $(cat "$work/dead1")"
jq -e --arg id "$pid_req" '(.head | contains($id)) and (.["x-ferry-reason"] | contains("SQLSTATE P0001"))
  and (.["x-ferry-reason"] | contains("test trigger refuses instance poison")) and .["x-ferry-queue"] == "ferry.scheduler"' \
  "$work/dead1" >/dev/null || fail "the dead-lettered poison request: $(cat "$work/dead1")"
ok "a request the database refuses for good is dead-lettered at once: $(jq -r '.["x-ferry-reason"]' "$work/dead1")"

# ---- the scheduler goes on ----------------------------------------------------------------------------------
good_req=$(uuid)
request good "$good_req"
for _ in $(seq 1 100); do [[ $(sql "SELECT count(*) FROM processed_requests WHERE request_id = '$good_req' AND outcome = 'accepted'") == 1 ]] && break; sleep 0.1; done
[[ $(sql "SELECT count(*) FROM processed_requests WHERE request_id = '$good_req' AND outcome = 'accepted'") == 1 ]] ||
  fail "the next request was not accepted: $(sql "SELECT * FROM processed_requests")"
kill -0 "$spid" || fail "the scheduler died"
ok "the next request is accepted"

# ---- retryable forever: requeued until the broker's delivery limit -----------------------------------------
# the same kind of policy as setup.sh's, with a limit this test can wait for (priority above it)
$RABBITMQCTL set_policy --apply-to queues --priority 20 ferry-test-poison-limit '^ferry\.scheduler$' '{"delivery-limit": 3}' >/dev/null ||
  fail "set_policy"
busy_req=$(uuid)
request busy "$busy_req"
got=""
for _ in $(seq 1 200); do
  "$bin/ferry-test-deadget" "$FERRY_AMQP_URL" ferry.dead >>"$work/dead2"
  got=$(jq -c --arg id "$busy_req" 'select(.head | contains($id))' "$work/dead2")
  [[ -n $got ]] && break
  sleep 0.1
done
[[ -n $got ]] || fail "the request that always fails with 40001 never reached ferry.dead: $(cat "$work/dead2")"
jq -e '.["x-first-death-reason"] == "delivery_limit" or .["x-death-reason"] == "delivery_limit"' <<<"$got" >/dev/null ||
  fail "dead-lettered, but not for the delivery limit: $got"
tries=$(grep -c "req=$busy_req .*could not take request for busy: .*SQLSTATE 40001.*retried in 1 s" "$work/scheduler.log" || true)
((tries >= 2 && tries <= 4)) || fail "$tries tries before ferry.dead, wanted 2..4 (delivery-limit 3)"
ok "a request that always fails with 40001 was tried $tries times, then moved to ferry.dead by the delivery limit"
$RABBITMQCTL clear_policy ferry-test-poison-limit >/dev/null

# ---- and the scheduler still takes requests ---------------------------------------------------------------
sql "DELETE FROM migrations; DELETE FROM allocations WHERE consumer_type = 'migration'" >/dev/null 2>&1 || true
good2=$(uuid)
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb) VALUES (gen_random_uuid(), 'good2', 'h1', 1, 256)" >/dev/null
request good2 "$good2"
for _ in $(seq 1 100); do [[ $(sql "SELECT outcome FROM processed_requests WHERE request_id = '$good2'") == accepted ]] && break; sleep 0.1; done
[[ $(sql "SELECT outcome FROM processed_requests WHERE request_id = '$good2'") == accepted ]] ||
  fail "a request after the poison ones was not accepted: $(sql "SELECT * FROM processed_requests WHERE request_id = '$good2'")"
kill -0 "$spid" || fail "the scheduler died"
ok "the scheduler still takes requests"
echo "all checks passed"
