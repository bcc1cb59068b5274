#!/usr/bin/env bash
# Fencing on the harness's real broker and database, with a real scheduler and a real agent
# (no libvirt needed): the agent of the source has already seen epoch 99 of migration 1 (as if
# another scheduler replica had adopted it), and the scheduler that now drives migration 1
# holds epoch 1. The agent refuses its check_source with stale_epoch, naming both epochs; the
# scheduler stops driving the migration without rolling anything back or recording a failure;
# the migration's row is as the claim left it; both daemons keep running.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
work=$(mktemp -d)
pids=()
db=ferry_epoch_$$
src=se-src-$$ dst=se-dst-$$
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  amqp-delete-queue --url "$FERRY_TEST_AMQP_URL" -q "ferry.compute.$src" >/dev/null 2>&1 || true
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
mkdir -p "$work/instances" "$work/local" "$work/state"
printf '[amqp]\nheartbeat_s = 5\n[http]\nenabled = false\n[log]\nlevel = debug\n[agent]\ninstances_path = %s\nlocal_disks_path = %s\nstate_dir = %s\n' \
  "$work/instances" "$work/local" "$work/state" >"$work/ferry.conf"
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
U=6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
sql "INSERT INTO hosts (name, arch, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb) VALUES
     ('$src', 'x86_64', now(), 8, 8192, 8, 8192), ('$dst', 'x86_64', now(), 8, 8192, 8, 8192)" >/dev/null
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb) VALUES ('$U', 'vm1', '$src', 1, 256)" >/dev/null
# what the source's agent remembers of migration 1: epoch 99, from a replica that adopted it
printf '{"migration":1,"instance":"%s","epoch":99}' "$U" >"$work/state/epoch-1.json"

"$bin/ferry-agent" --config "$work/ferry.conf" --host "$src" 2>"$work/agent.log" &
apid=$!
pids+=("$apid")
"$bin/ferry-scheduler" --config "$work/ferry.conf" --name se1 2>"$work/scheduler.log" &
spid=$!
pids+=("$spid")
for _ in $(seq 1 150); do
  grep -q "ready: broker connected" "$work/scheduler.log" && grep -q "agent ready" "$work/agent.log" && break
  sleep 0.1
done
grep -q "ready: broker connected" "$work/scheduler.log" || fail "scheduler not ready"
grep -q "agent ready" "$work/agent.log" || fail "agent not ready"

rid=$(cat /proc/sys/kernel/random/uuid)
amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json -b \
  "{\"v\":1,\"type\":\"migration.request\",\"id\":\"$rid\",\"body\":{\"instance\":\"vm1\",\"os-migrateLive\":{\"host\":\"$dst\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false}}}" ||
  fail "publish the request"
for _ in $(seq 1 100); do grep -q "is no longer this scheduler's" "$work/scheduler.log" && break; sleep 0.1; done
[[ $(sql "SELECT id || ' ' || epoch FROM migrations") == "1 1" ]] || fail "the claim: $(sql "SELECT id, status, epoch FROM migrations")"
grep -q "check_source refused: stale epoch 1 for migration 1: epoch 99 was already seen here" "$work/agent.log" ||
  fail "the agent did not refuse the stale epoch"
grep -q "migration=1 .*check_source refused: stale epoch 1\|check_source refused: stale epoch 1.*migration=1" "$work/agent.log" ||
  fail "the refusal is not logged with migration=1"
grep -q "migration 1 is no longer this scheduler's (epoch 1): check_source on $src: stale epoch 1 for migration 1: epoch 99" \
  "$work/scheduler.log" || fail "the scheduler did not stop driving migration 1"
ok "the agent refuses epoch 1 after epoch 99 (stale_epoch); the scheduler stops driving migration 1"

# nothing was rolled back or failed: the row is as the claim left it, no rollback was sent
sleep 1
[[ $(sql "SELECT status || ' ' || coalesce(error, '-') || ' ' || (finished_at IS NULL) FROM migrations WHERE id = 1") == "scheduled - true" ]] ||
  fail "the migration changed: $(sql "SELECT status, error, finished_at FROM migrations WHERE id = 1")"
[[ $(sql "SELECT count(*) FROM migration_events WHERE migration_id = 1 AND status IN ('failed', 'error', 'cancelled')") == 0 ]] ||
  fail "a failure was recorded: $(sql "SELECT status, kind, message FROM migration_events WHERE migration_id = 1")"
! grep -q "rpc rollback\|rollback to $dst" "$work/scheduler.log" || fail "the scheduler sent a rollback"
! grep -q "failed while" "$work/scheduler.log" || fail "the scheduler failed the migration"
# the epoch the agent keeps is still 99
[[ $(jq -r .epoch "$work/state/epoch-1.json") == 99 ]] || fail "the agent's epoch record: $(cat "$work/state/epoch-1.json")"
out=$("$bin/ferryctl" --timeout 5000 ping "$src") || fail "the agent stopped answering: $out"
kill -0 "$spid" || fail "the scheduler died"
kill -0 "$apid" || fail "the agent died"
ok "nothing rolled back or recorded as failed; the agent keeps epoch 99; both daemons run"
echo "all checks passed"
