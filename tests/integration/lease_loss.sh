#!/usr/bin/env bash
# A replica that could not renew a migration's lease stops driving it, on the harness's real
# broker and database. The source "agent" is a recorder (amqp-consume bound to compute.h1) that
# never answers, so the scheduler keeps sending check_source again (rpc_timeout_ms 500,
# rpc_retry_s 3600). (a) Another replica takes the row (owner and epoch changed): the
# scheduler logs migration= and why, and sends no more RPCs for it. (b) PostgreSQL goes away for
# longer than lease_s (5 s): once the lease may have expired the scheduler logs migration= and
# why and sends no more RPCs for it, while the database is still away; it neither rolls the
# migration back nor completes it; when the database is back the migration is adopted again at
# a new epoch (here by the same replica: the only one) and driven on.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
work=$(mktemp -d)
pids=()
db=ferry_lease_$$
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  "$FERRY_TEST_HARNESS" start-postgres >/dev/null 2>&1 || true
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
printf '[amqp]\nheartbeat_s = 5\nrpc_timeout_ms = 500\n[database]\nconnect_timeout_s = 1\n[http]\nenabled = false\n[log]\nlevel = info\n[scheduler]\nlease_s = 5\nrpc_retry_s = 3600\nmax_outgoing_per_source = 4\nmax_incoming_per_dest = 4\n' >"$work/ferry.conf"
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
sql "INSERT INTO hosts (name, arch, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb) VALUES
     ('h1', 'x86_64', now(), 8, 8192, 8, 8192), ('h2', 'x86_64', now(), 8, 8192, 8, 8192)" >/dev/null
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb) VALUES
     (gen_random_uuid(), 'vm1', 'h1', 1, 256), (gen_random_uuid(), 'vm2', 'h1', 1, 256)" >/dev/null

"$bin/ferry-scheduler" --config "$work/ferry.conf" --name lease1 2>"$work/scheduler.log" &
spid=$!
pids+=("$spid")
for _ in $(seq 1 150); do grep -q "ready: broker connected" "$work/scheduler.log" && break; sleep 0.1; done
grep -q "ready: broker connected" "$work/scheduler.log" || fail "scheduler not ready"
# the source's RPC queue (on the exchange the scheduler declared): every request to compute.h1
# is written down, none is answered
touch "$work/rpcs"
amqp-consume --url "$FERRY_AMQP_URL" -x -A -e ferry -r compute.h1 -- sh -c "cat >>'$work/rpcs'; echo >>'$work/rpcs'" \
  2>"$work/recorder.log" &
pids+=("$!")
for _ in $(seq 1 50); do grep -q "Server provided queue name" "$work/recorder.log" && break; sleep 0.1; done
sleep 0.5

request() { # instance -> the migration id
  local id
  id=$(cat /proc/sys/kernel/random/uuid)
  printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"%s","os-migrateLive":{"host":null,"block_migration":false,"disk_over_commit":false,"post_copy":false}}}' "$id" "$1" |
    amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json || fail "publish $1"
  for _ in $(seq 1 100); do [[ -n $(sql "SELECT migration_id FROM processed_requests WHERE request_id = '$id'") ]] && break; sleep 0.1; done
  sql "SELECT migration_id FROM processed_requests WHERE request_id = '$id' AND outcome = 'accepted'"
}
rpcs() { grep -c "\"migration\":$1[,}]" "$work/rpcs" || true; }
wait_rpcs() { # migration n: until n RPCs for it were recorded
  for _ in $(seq 1 100); do (($(rpcs "$1") >= $2)) && return 0; sleep 0.1; done
  fail "fewer than $2 RPCs for migration $1 recorded: $(rpcs "$1")"
}

# ---- (a) the row changed hands --------------------------------------------------------------------------------
m1=$(request vm1)
[[ -n $m1 ]] || fail "vm1's request was not accepted"
wait_rpcs "$m1" 2 # check_source, and again after its timeout
sql "UPDATE migrations SET owner = 'other', epoch = epoch + 1, lease_expires_at = now() + interval '1 hour' WHERE id = $m1" >/dev/null
for _ in $(seq 1 50); do grep -q "migration=$m1 .*stops driving it" "$work/scheduler.log" && break; sleep 0.1; done
grep -q "migration=$m1 .*its lease could not be renewed: the row is no longer this replica's at epoch 1.*stops driving it" \
  "$work/scheduler.log" || fail "no log line for migration $m1 taken by another replica"
n1=$(rpcs "$m1")
sleep 7 # longer than the longest resend delay (5 s)
(($(rpcs "$m1") == n1)) || fail "RPCs for migration $m1 went on after it was taken: $n1 -> $(rpcs "$m1")"
[[ $(sql "SELECT status || ' ' || owner || ' ' || epoch FROM migrations WHERE id = $m1") == "scheduled other 2" ]] ||
  fail "migration $m1 changed: $(sql "SELECT status, owner, epoch FROM migrations WHERE id = $m1")"
ok "migration $m1 taken by another replica: logged, no RPC for it since ($n1 before)"

# ---- (b) the database is away for longer than the lease --------------------------------------------------------
m2=$(request vm2)
[[ -n $m2 ]] || fail "vm2's request was not accepted"
wait_rpcs "$m2" 1
"$FERRY_TEST_HARNESS" stop-postgres >/dev/null || fail "stop-postgres"
t0=$(date +%s)
for _ in $(seq 1 150); do grep -q "migration=$m2 .*stops driving it" "$work/scheduler.log" && break; sleep 0.1; done
t1=$(date +%s)
grep -Eq "migration=$m2 .*(could not renew its lease for 5 s|its lease was not renewed for 5 s).*stops driving it" \
  "$work/scheduler.log" || fail "no log line for migration $m2 after the database went away"
((t1 - t0 <= 8)) || fail "migration $m2 was driven $((t1 - t0)) s without its lease (lease_s 5)"
n2=$(rpcs "$m2")
sleep 8
(($(rpcs "$m2") == n2)) || fail "RPCs for migration $m2 went on without a lease: $n2 -> $(rpcs "$m2")"
kill -0 "$spid" || fail "the scheduler died"
grep -q "migration=$m2 .*rollback" "$work/scheduler.log" && fail "migration $m2 was rolled back"
ok "database away: migration $m2 given up $((t1 - t0)) s after, logged, no RPC for it since ($n2 before)"

"$FERRY_TEST_HARNESS" start-postgres >/dev/null || fail "start-postgres"
for _ in $(seq 1 150); do [[ $(sql "SELECT epoch FROM migrations WHERE id = $m2" 2>/dev/null) == 2 ]] && break; sleep 0.1; done
[[ $(sql "SELECT status || ' ' || owner || ' ' || epoch FROM migrations WHERE id = $m2") == "scheduled lease1 2" ]] ||
  fail "migration $m2 after the database came back: $(sql "SELECT status, owner, epoch FROM migrations WHERE id = $m2")"
wait_rpcs "$m2" $((n2 + 1))
ok "database back: migration $m2 adopted again at epoch 2 and driven on ($(rpcs "$m2") RPCs)"
echo "all checks passed"
