#!/usr/bin/env bash
# Sizes are checked before copying, on the harness's real broker and database: 8 MiB published
# to ferry.scheduler is never read into the scheduler's memory ([amqp] max_message_bytes, 1 MiB
# by default, is checked against the content header before the body frames arrive): its peak
# RSS grows by far less than the message, the message is in ferry.dead with the reason and only
# its first 4 KiB, and the scheduler goes on taking requests. Then the limit is raised in the
# configuration and a 2 MiB message is read whole (and refused by the request parser).
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
work=$(mktemp -d)
pids=()
db=ferry_big_$$
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
printf '[amqp]\nheartbeat_s = 5\n[http]\nenabled = false\n[log]\nlevel = info\n' >"$work/ferry.conf"
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
sql "INSERT INTO hosts (name, arch, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb) VALUES
     ('h1', 'x86_64', now(), 8, 8192, 8, 8192), ('h2', 'x86_64', now(), 8, 8192, 8, 8192)" >/dev/null
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb) VALUES (gen_random_uuid(), 'vm1', 'h1', 1, 256)" >/dev/null

start() { # config
  "$bin/ferry-scheduler" --config "$1" --name big1 2>>"$work/scheduler.log" &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 1 150); do [[ $(grep -c "ready: broker connected" "$work/scheduler.log") -ge $2 ]] && break; sleep 0.1; done
  [[ $(grep -c "ready: broker connected" "$work/scheduler.log") -ge $2 ]] || fail "scheduler not ready"
}
start "$work/ferry.conf" 1
"$bin/ferry-test-deadget" "$FERRY_AMQP_URL" ferry.dead >/dev/null || fail "drain ferry.dead"
sleep 1 # past start-up's own allocations
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
hwm0=$(kb "$spid" VmHWM)
rss0=$(kb "$spid" VmRSS)

# ---- 8 MiB: not read, dead-lettered with the reason and its first 4 KiB ------------------------------
big=$((8 * 1024 * 1024))
{ printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"' "$(cat /proc/sys/kernel/random/uuid)"
  head -c $big /dev/zero | tr '\0' 'a'; printf '"}}'; } >"$work/big"
size=$(stat -c %s "$work/big")
amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json <"$work/big" || fail "publish 8 MiB"
for _ in $(seq 1 100); do grep -q "over the limit of 1048576 bytes" "$work/scheduler.log" && break; sleep 0.1; done
grep -q "delivery from ferry.scheduler refused: message of $size bytes over the limit of 1048576 bytes (\[amqp\] max_message_bytes); dead-lettered with its first 4096 bytes" \
  "$work/scheduler.log" || fail "no log line for the 8 MiB message"
for _ in $(seq 1 50); do "$bin/ferry-test-deadget" "$FERRY_AMQP_URL" ferry.dead >>"$work/dead1" && [[ -s $work/dead1 ]] && break; sleep 0.1; done
[[ $(wc -l <"$work/dead1") == 1 ]] || fail "ferry.dead holds $(wc -l <"$work/dead1") messages, wanted 1"
jq -e --arg r "message of $size bytes over the limit of 1048576 bytes ([amqp] max_message_bytes)" \
  '.len == 4096 and .["x-ferry-reason"] == $r and .["x-ferry-queue"] == "ferry.scheduler" and (.head | startswith("{\"v\":1,"))' \
  "$work/dead1" >/dev/null || fail "the dead-lettered message: $(head -c 600 "$work/dead1")"
hwm1=$(kb "$spid" VmHWM)
rss1=$(kb "$spid" VmRSS)
grow=$((hwm1 - hwm0))
((grow < 2048)) || fail "the scheduler's peak RSS grew by $grow kB for an 8 MiB message (VmHWM $hwm0 -> $hwm1 kB)"
ok "8 MiB dead-lettered unread: reason and 4096 bytes in ferry.dead; peak RSS +$grow kB (RSS $rss0 -> $rss1 kB)"

# ---- the scheduler goes on ------------------------------------------------------------------------------------
req=$(cat /proc/sys/kernel/random/uuid)
printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"vm1","os-migrateLive":{"host":null,"block_migration":false,"disk_over_commit":false,"post_copy":false}}}' "$req" |
  amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json || fail "publish a request"
for _ in $(seq 1 100); do [[ $(sql "SELECT outcome FROM processed_requests WHERE request_id = '$req'") == accepted ]] && break; sleep 0.1; done
[[ $(sql "SELECT outcome FROM processed_requests WHERE request_id = '$req'") == accepted ]] || fail "the next request was not accepted"
kill -0 "$spid" || fail "the scheduler died"
ok "the next request is accepted"

# ---- the limit is the configuration's --------------------------------------------------------------------------
kill -TERM "$spid"
wait "$spid" 2>/dev/null || true
printf '[amqp]\nheartbeat_s = 5\nmax_message_bytes = 4194304\n[http]\nenabled = false\n[log]\nlevel = info\n' >"$work/ferry4.conf"
start "$work/ferry4.conf" 2
head -c $((2 * 1024 * 1024)) "$work/big" | amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json ||
  fail "publish 2 MiB"
for _ in $(seq 1 100); do grep -q "request refused: message too large: 2097152 bytes" "$work/scheduler.log" && break; sleep 0.1; done
grep -q "request refused: message too large: 2097152 bytes" "$work/scheduler.log" ||
  fail "a 2 MiB message under max_message_bytes = 4 MiB was not read whole"
ok "with max_message_bytes = 4194304 a 2 MiB message is read whole (and refused by the request parser)"
"$bin/ferry-test-deadget" "$FERRY_AMQP_URL" ferry.dead >/dev/null
echo "all checks passed"
