#!/usr/bin/env bash
# A compromised compute host's RPC replies are claims the scheduler reads strictly
# (scheduler/orchreply.c), on the harness's real broker and database with a real scheduler.
# Both "agents" are scripted (ferry-test-answer: it answers each RPC with a body this test
# wrote, through the broker as a real agent does). (a) The source answers job_status with
# {"ok":true,"state":null} (which once reached job_state_from_str and the log as NULL): the
# scheduler refuses the reply, logs it with migration=, instance= and host=, rolls the
# destination back and ends the migration failed with the reason; it keeps running. (b) A
# destination whose check_destination names an address that would change the libvirt URI: the
# migration fails before anything is prepared, with the reason. (c) A job_status without a job
# whose domain's state is null (dom_running in orch.c once passed such a state to
# strcmp(NULL, "running")): refused, failed, no crash.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
work=$(mktemp -d)
pids=()
db=ferry_hostile_replies_$$
s1=hr-src-$$ d1=hr-dst-$$ d2=hr-bad-$$
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  for h in "$s1" "$d1" "$d2"; do amqp-delete-queue --url "$FERRY_TEST_AMQP_URL" -q "ferry.compute.$h" >/dev/null 2>&1 || true; done
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
printf '[amqp]\nheartbeat_s = 5\nrpc_timeout_ms = 2000\n[http]\nenabled = false\n[log]\nlevel = info\n[scheduler]\nrpc_retry_s = 5\n' >"$work/ferry.conf"
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
sql "INSERT INTO hosts (name, address, arch, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb) VALUES
     ('$s1', '127.0.0.1', 'x86_64', now(), 8, 8192, 8, 8192), ('$d1', '127.0.0.2', 'x86_64', now(), 8, 8192, 8, 8192),
     ('$d2', '127.0.0.3', 'x86_64', now(), 8, 8192, 8, 8192)" >/dev/null
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb, ec2_id) VALUES
     ('6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c41', 'vm1', '$s1', 1, 256, 'i-000000a1'),
     ('6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c42', 'vm2', '$s1', 1, 256, 'i-000000a2'),
     ('6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c43', 'vm3', '$s1', 1, 256, 'i-000000a3')" >/dev/null

# what each scripted agent answers (a method without a file: {"ok":true})
mkdir -p "$work/$s1" "$work/$d1" "$work/$d2"
printf '%s' '{"ok":true,"shared_probe":".ferry-probe-1-0a1b2c3d","domain_xml":"<domain type=\"kvm\">\n<name>vm</name>\n</domain>","name":"vm","memory_mb":256,"vcpus":1,"disks":[{"path":"/var/lib/ferry/instances/vm/disk","format":"qcow2","target":"vda","shared":true}],"disks_shared":true,"instances_path":"/var/lib/ferry/instances"}' >"$work/$s1/check_source.json"
printf '%s' '{"ok":true,"started":true}' >"$work/$s1/live_migration.json"
printf '%s' '{"ok":true,"state":null}' >"$work/$s1/job_status.json"
printf '%s' '{"ok":true,"free_memory_mb":4096,"cpu":"identical","shared_storage":true,"address":"127.0.0.2"}' >"$work/$d1/check_destination.json"
printf '%s' '{"ok":true,"removed":[],"undefined":false}' >"$work/$d1/rollback.json"
printf '%s' '{"ok":true,"shared_storage":true,"address":"x/system?command=id&"}' >"$work/$d2/check_destination.json"
for h in "$s1" "$d1" "$d2"; do
  "$bin/ferry-test-answer" "$FERRY_AMQP_URL" "$h" "$work/$h" >"$work/answers-$h" 2>"$work/answer-$h.log" &
  pids+=("$!")
done
for h in "$s1" "$d1" "$d2"; do
  for _ in $(seq 1 100); do grep -q ready "$work/answers-$h" && break; sleep 0.1; done
  grep -q ready "$work/answers-$h" || fail "scripted agent $h not ready"
done

"$bin/ferry-scheduler" --config "$work/ferry.conf" --name hr1 2>"$work/scheduler.log" &
spid=$!
pids+=("$spid")
for _ in $(seq 1 150); do grep -q "ready: broker connected" "$work/scheduler.log" && break; sleep 0.1; done
grep -q "ready: broker connected" "$work/scheduler.log" || fail "scheduler not ready"

request() { # instance dest -> the migration id
  local id
  id=$(cat /proc/sys/kernel/random/uuid)
  printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"%s","os-migrateLive":{"host":"%s","block_migration":false,"disk_over_commit":false,"post_copy":false}}}' "$id" "$1" "$2" |
    amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json || fail "publish $1"
  for _ in $(seq 1 100); do [[ -n $(sql "SELECT migration_id FROM processed_requests WHERE request_id = '$id'") ]] && break; sleep 0.1; done
  sql "SELECT migration_id FROM processed_requests WHERE request_id = '$id' AND outcome = 'accepted'"
}
finished() { # migration -> "status|error" once it has ended
  for _ in $(seq 1 150); do
    [[ $(sql "SELECT finished_at IS NOT NULL FROM migrations WHERE id = $1") == t ]] && break
    sleep 0.1
  done
  sql "SELECT status || '|' || coalesce(error, '') FROM migrations WHERE id = $1"
}
migrate_fails() { # instance dest reason -> the migration id, once it has ended failed with reason
  local m r
  m=$(request "$1" "$2")
  [[ -n $m ]] || fail "$1's request was not accepted"
  r=$(finished "$m")
  [[ $r == "failed|$3" ]] || fail "migration $m of $1: $r (expected failed|$3)"
  echo "$m"
}

# ---- (a) job_status with a null state ------------------------------------------------------------------------
m1=$(migrate_fails vm1 "$d1" "the source's reply to job_status is refused: body.state: expected string, got null")
grep -q "level=warn .*host=$s1 migration=$m1 instance=i-000000a1 .*migration $m1: the source's reply to job_status is refused: body.state: expected string, got null" \
  "$work/scheduler.log" || fail "the refusal is not logged with migration=, instance= and host="
grep -q "answered rollback" "$work/answers-$d1" || fail "the destination was not rolled back"
kill -0 "$spid" || fail "the scheduler died"
[[ $(sql "SELECT count(*) FROM allocations WHERE host = '$d1'") == 0 ]] || fail "the destination's allocation was kept"
ok "job_status {\"state\":null}: refused with the reason (logged with migration=, instance=, host=), rolled back, failed"

# ---- (b) check_destination with an address that would change the libvirt URI -----------------------------------
migrate_fails vm2 "$d2" "the destination's reply to check_destination is refused: body.address: 'x/system?command=id&' is not a host name or IP address with an optional port" >/dev/null
grep -q "answered pre_live_migration" "$work/answers-$d2" && fail "the hostile destination was asked to prepare"
ok "check_destination with address 'x/system?command=id&': refused with the reason, failed before preparing"

# ---- (c) no job, and a domain state null ----------------------------------------------------------------------
printf '%s' '{"ok":true,"state":"none","domain":{"exists":true,"state":null,"persistent":true}}' >"$work/$s1/job_status.json"
migrate_fails vm3 "$d1" "the source's reply to job_status is refused: body.domain.state: expected string, got null" >/dev/null
kill -0 "$spid" || fail "the scheduler died"
ok "job_status {\"domain\":{\"state\":null}}: refused with the reason, failed; the scheduler runs"
echo "all checks passed"
