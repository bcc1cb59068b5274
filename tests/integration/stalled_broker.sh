#!/usr/bin/env bash
# A stalled broker does not stall the scheduler's loop, on the harness's real broker and
# database. The scheduler drives a migration (it holds its lease; the source "agent" never
# answers: nothing consumes compute.h1), then every process of the harness's RabbitMQ is
# SIGSTOPped: TCP connections still open through the kernel's backlog, but no AMQP frame is
# answered. The scheduler finds the connection dead by its heartbeats (heartbeat_s 2) and tries
# to reconnect, each attempt waiting for the AMQP handshake up to connect_timeout_ms. While the
# broker stays stopped (until at least two reconnect attempts failed): (a) the migration's
# lease_expires_at keeps moving forward in PostgreSQL, (b) /healthz answers within 1.5 s every
# time it is asked, (c) the log says why each reconnect attempt failed. Then the broker is
# resumed (SIGCONT): the scheduler reconnects (log line), /healthz says the broker is back, and a
# new request is accepted.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
state=${FERRY_TEST_STATE:?run through ctest}
work=$(mktemp -d)
pids=()
stopped=()
db=ferry_stall_$$
cleanup() {
  # the broker first: the other tests share it
  if ((${#stopped[@]})); then kill -CONT "${stopped[@]}" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
# where a live scheduler is (a failure that is a stuck loop shows the stuck call, and the
# sockets' queues show whether a write waits for room)
where_is() {
  [[ -n ${spid:-} ]] && kill -0 "$spid" 2>/dev/null || return 0
  echo "--- scheduler $spid: $(grep '^State:' "/proc/$spid/status")"
  local t
  for t in /proc/"$spid"/task/*; do echo "thread ${t##*/} ($(cat "$t/comm")): wchan $(cat "$t/wchan" 2>/dev/null)"; cat "$t/stack" 2>/dev/null; done
  ss -tnpi 2>/dev/null | grep -A1 "pid=$spid," || true
  command -v gdb >/dev/null && timeout 30 gdb -p "$spid" -batch -ex 'thread apply all bt' 2>&1 | grep -E '^(#|Thread)' || true
}
fail() { echo "FAIL: $*" >&2; where_is >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 60 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }
now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
# debug: a reconnect attempt failing like the one before it is logged at debug level
printf '[amqp]\nheartbeat_s = 2\nconnect_timeout_ms = 3000\nrpc_timeout_ms = 500\n[database]\nconnect_timeout_s = 1\n[http]\nport = 0\n[log]\nlevel = debug\n[scheduler]\nlease_s = 10\nrpc_retry_s = 3600\n' \
  >"$work/ferry.conf"
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
sql "INSERT INTO hosts (name, arch, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb) VALUES
     ('h1', 'x86_64', now(), 8, 8192, 8, 8192), ('h2', 'x86_64', now(), 8, 8192, 8, 8192)" >/dev/null
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb) VALUES
     (gen_random_uuid(), 'vm1', 'h1', 1, 256), (gen_random_uuid(), 'vm2', 'h1', 1, 256)" >/dev/null

"$bin/ferry-scheduler" --config "$work/ferry.conf" --name stall1 2>"$work/scheduler.log" &
spid=$!
pids+=("$spid")
end=$(($(now_ms) + 30000))
until grep -q "ready: broker connected" "$work/scheduler.log" && grep -q "HTTP API and dashboard on" "$work/scheduler.log"; do
  (($(now_ms) < end)) || fail "scheduler not ready within 30 s"
  kill -0 "$spid" 2>/dev/null || fail "the scheduler exited"
  sleep 0.1
done
port=$(sed -n 's|.*HTTP API and dashboard on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/scheduler.log" | head -n 1)
[[ -n $port ]] || fail "no HTTP port in the log"
url=http://127.0.0.1:$port

request() { # instance -> the migration id, once accepted
  local id m end
  id=$(cat /proc/sys/kernel/random/uuid)
  printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"%s","os-migrateLive":{"host":null,"block_migration":false,"disk_over_commit":false,"post_copy":false}}}' "$id" "$1" |
    amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json || fail "publish $1"
  end=$(($(now_ms) + 30000))
  while :; do
    m=$(sql "SELECT coalesce(migration_id::text, 'none') FROM processed_requests WHERE request_id = '$id' AND outcome = 'accepted'")
    [[ -n $m ]] && break
    (($(now_ms) < end)) || fail "the request for $1 was not accepted within 30 s: $(sql "SELECT outcome, reason FROM processed_requests WHERE request_id = '$id'")"
    sleep 0.1
  done
  echo "$m"
}
lease() { sql "SELECT coalesce(floor(extract(epoch FROM lease_expires_at) * 1000)::bigint, 0) FROM migrations WHERE id = $1 AND owner = 'stall1'"; }
healthz() { # -> "<http code> <ms>"; code 000 when no answer within 1.5 s
  local t0 code
  t0=$(now_ms)
  code=$(curl -s -o "$work/healthz.json" -w '%{http_code}' --max-time 1.5 "$url/healthz" 2>/dev/null) || true
  echo "${code:-000} $(($(now_ms) - t0))"
}

m1=$(request vm1)
[[ $m1 =~ ^[0-9]+$ ]] || fail "vm1's request gave no migration id: $m1"
end=$(($(now_ms) + 30000))
until [[ $(lease "$m1") -gt 0 ]]; do (($(now_ms) < end)) || fail "migration $m1 holds no lease of stall1"; sleep 0.1; done
read -r code _ < <(healthz)
[[ $code == 200 ]] || fail "/healthz before the stall: $code $(cat "$work/healthz.json" 2>/dev/null)"
ok "scheduler drives migration $m1 with a lease (lease_expires_at $(sql "SELECT lease_expires_at FROM migrations WHERE id = $m1")); /healthz 200"

# ---- the broker stalls ------------------------------------------------------------------------------------------
# the broker's processes, as the harness started them: the Erlang VM of its pid file first, then
# every other process carrying the same harness tag in its environment (epmd, the VM's helpers;
# one that ends meanwhile is no matter)
stop_broker() {
  local beam tag d p
  beam=$(cat "$state/rabbitmq/rabbitmq-server.pid" 2>/dev/null) || fail "no broker pid file in $state/rabbitmq"
  tag=$({ tr '\0' '\n' <"/proc/$beam/environ"; } 2>/dev/null | grep -m1 '^FERRY_TEST_SERVICES_TAG=rabbitmq@') ||
    fail "pid $beam of the broker's pid file is not the harness's broker"
  stopped=("$beam")
  kill -STOP "$beam"
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [[ $p == "$beam" ]] && continue
    if { tr '\0' '\n' <"$d/environ"; } 2>/dev/null | grep -qxF "$tag"; then
      kill -STOP "$p" 2>/dev/null && stopped+=("$p")
    fi
  done
  [[ $(awk '{print $3}' "/proc/$beam/stat") == T ]] || fail "the broker's VM $beam is not stopped"
}
resume_broker() {
  kill -CONT "${stopped[@]}" 2>/dev/null || true
  stopped=()
}
count() { grep -cE "$1" "$work/scheduler.log" || true; }
LOST="connection to broker .* lost: "
RETRY="; (retrying in|trying broker [^ ]* in) [0-9]+ ms"
lost0=$(count "$LOST")
stop_broker
t_stop=$(now_ms)
ok "broker stopped (SIGSTOP): pids ${stopped[*]} ($(for p in "${stopped[@]}"; do cat "/proc/$p/comm" 2>/dev/null; done | tr '\n' ' '))"

# what failed to reconnect since the connection was lost, as the log says it
failed_attempts() {
  sed -n "/connection to broker .* lost: /,\$p" "$work/scheduler.log" | grep -cE "; (retrying in|trying broker [^ ]* in) [0-9]+ ms" || true
}
problems=()
samples=0 answered_503=0 max_ms=0 lease_prev=0 lease_moves=0 lease_since=$(now_ms) max_still=0
# at least 15 s, and until two reconnect attempts failed (at most 90 s)
while :; do
  t=$(now_ms)
  (((t - t_stop) >= 15000 && $(failed_attempts) >= 2)) && break
  (((t - t_stop) < 90000)) || { problems+=("fewer than 2 failed reconnect attempts logged in 90 s: $(failed_attempts)"); break; }
  kill -0 "$spid" 2>/dev/null || fail "the scheduler exited during the stall"
  read -r code ms < <(healthz)
  samples=$((samples + 1))
  ((ms > max_ms)) && max_ms=$ms
  [[ $code == 503 ]] && answered_503=$((answered_503 + 1))
  [[ $code == 000 ]] && problems+=("/healthz did not answer within 1.5 s at +$(((t - t_stop) / 1000)) s (${ms} ms)")
  l=$(lease "$m1")
  [[ $l =~ ^[0-9]+$ ]] || l=0
  t=$(now_ms)
  if ((l > lease_prev)); then
    ((lease_prev > 0)) && lease_moves=$((lease_moves + 1))
    lease_prev=$l
    lease_since=$t
  fi
  still=$((t - lease_since))
  ((still > max_still)) && max_still=$still
  # renewed every second; 4 s without a renewal is a loop that does not run
  ((still <= 4000)) || { problems+=("lease_expires_at of migration $m1 did not move for $((still / 1000)) s at +$(((t - t_stop) / 1000)) s"); lease_since=$t; }
  sleep 0.3
done
t_cont=$(now_ms)
# ferryctl gives up on the stalled broker after its --timeout (1.5 s) although its connect
# timeout is 10 s: the attempt still waiting for the handshake is abandoned (socket shut down,
# thread joined) rather than waited for
printf '[amqp]\nconnect_timeout_ms = 10000\n' >"$work/cli.conf"
t0=$(now_ms)
crc=0
"$bin/ferryctl" --config "$work/cli.conf" --timeout 1500 check >"$work/ferryctl.out" 2>&1 || crc=$?
cli_ms=$(($(now_ms) - t0))
((crc == 1)) || problems+=("ferryctl check against the stalled broker exited with $crc: $(cat "$work/ferryctl.out")")
((cli_ms <= 6000)) || problems+=("ferryctl --timeout 1500 check took $cli_ms ms against the stalled broker (connect_timeout_ms 10000)")
! grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$work/ferryctl.out" || problems+=("ferryctl: the sanitizers found errors")
resume_broker
echo "stall of $(((t_cont - t_stop) / 1000)) s: /healthz asked $samples times (slowest ${max_ms} ms, $answered_503 times 503 = broker down);" \
  "lease_expires_at moved $lease_moves times (longest still ${max_still} ms); $(failed_attempts) reconnect attempts failed"
(($(count "$LOST") > lost0)) || problems+=("the scheduler never noticed the connection was dead")
((answered_503 > 0)) || problems+=("/healthz never said the broker was down")
((lease_moves >= 3)) || problems+=("lease_expires_at of migration $m1 moved only $lease_moves times during the stall")
if ((${#problems[@]})); then
  printf 'during the stall: %s\n' "${problems[@]}" >&2
  fail "the scheduler's loop stalled with the broker (${#problems[@]} problems)"
fi
ok "(a) lease_expires_at of migration $m1 kept moving ($lease_moves renewals, never still over ${max_still} ms)"
ok "(b) /healthz answered all $samples times within ${max_ms} ms (503 while the broker was away)"
ok "ferryctl --timeout 1500 gave up on the stalled broker after $cli_ms ms (connect_timeout_ms 10000): $(head -n 1 "$work/ferryctl.out")"
ok "(c) the reconnect attempts failed with a reason: $(sed -n "/connection to broker .* lost: /,\$p" "$work/scheduler.log" |
  grep -E "; (retrying in|trying broker [^ ]* in) [0-9]+ ms" | sed 's/.* msg="//; s/; \(retrying\|trying\) .*//' | sort | uniq -c |
  sed 's/^ *//' | paste -sd'|')"

# ---- the broker is back ----------------------------------------------------------------------------------------
end=$(($(now_ms) + 60000))
until sed -n "/connection to broker .* lost: /,\$p" "$work/scheduler.log" | grep -q "connected to broker "; do
  (($(now_ms) < end)) || fail "the scheduler did not reconnect within 60 s of SIGCONT"
  sleep 0.2
done
ok "reconnected: $(sed -n "/connection to broker .* lost: /,\$p" "$work/scheduler.log" | grep -o 'connected to broker [^"]*' | head -n 1)"
end=$(($(now_ms) + 30000))
while :; do
  read -r code ms < <(healthz)
  [[ $code == 200 ]] && break
  (($(now_ms) < end)) || fail "/healthz after the broker came back: $code $(cat "$work/healthz.json" 2>/dev/null)"
  sleep 0.2
done
m2=$(request vm2)
[[ $m2 =~ ^[0-9]+$ ]] || fail "vm2's request gave no migration id: $m2"
l0=$(lease "$m1")
end=$(($(now_ms) + 15000))
until [[ $(lease "$m1") -gt $l0 ]]; do (($(now_ms) < end)) || fail "the lease of migration $m1 is no longer renewed"; sleep 0.2; done
kill -0 "$spid" || fail "the scheduler died"
ok "the scheduler works on: /healthz 200 in ${ms} ms, request for vm2 accepted as migration $m2, lease of $m1 renewed"

# ---- stopped while a reconnect attempt waits on the stalled broker ------------------------------------------------
# the attempt is abandoned (its socket shut down, its thread joined) and the scheduler exits at
# once and cleanly (in the ASan build, with its memory checked)
lost1=$(count "$LOST")
stop_broker
ok "broker stopped again at $(date -u +%H:%M:%S.%3N)"
end=$(($(now_ms) + 30000))
until (($(count "$LOST") > lost1)); do (($(now_ms) < end)) || fail "the second stall was not noticed within 30 s"; sleep 0.1; done
fails1=$(count "$RETRY")
until (($(count "$RETRY") > fails1)); do (($(now_ms) < end)) || fail "no reconnect attempt failed within 30 s"; sleep 0.1; done
sleep 1.5 # the next attempt (400 ms later) waits up to connect_timeout_ms (3 s) on the handshake
t0=$(now_ms)
kill -TERM "$spid"
rc=0
end=$((t0 + 20000))
while kill -0 "$spid" 2>/dev/null; do (($(now_ms) < end)) || fail "the scheduler did not exit within 20 s of SIGTERM"; sleep 0.05; done
wait "$spid" || rc=$?
dt=$(($(now_ms) - t0))
resume_broker
((rc == 0)) || fail "the scheduler exited with $rc"
grep -q "connect to broker .* abandoned: the connection is being closed" "$work/scheduler.log" ||
  fail "no reconnect attempt was in progress at SIGTERM"
! grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$work/scheduler.log" || fail "the sanitizers found errors"
((dt <= 10000)) || fail "the scheduler took $dt ms to exit during a reconnect attempt"
ok "SIGTERM during a reconnect attempt: attempt abandoned, exit 0 after $dt ms"
echo "all checks passed"
