#!/usr/bin/env bash
# bench/overhead.sh [--rounds K] [--smoke] [BUILD_DIR]: what ferry adds on top of libvirt,
# and where the time goes; then convergence of a dirtying guest. On the lab (2 hosts, one
# scheduler), in one run:
#  1. overhead: the same idle guest migrated K times back and forth with raw
#     `virsh migrate --live --p2p --persistent --undefinesource` (the baseline: wall time of
#     the command), then K times through ferry (request published with amqp-publish ->
#     `completed` recorded); prints p50/p99 of each and of ferry - raw (goals: <= 150 ms p50,
#     <= 500 ms p99), and the mean of each phase (intake+claim, checks, prepare, libvirt job,
#     post) from migration_events.
#  2. convergence: a guest dirtying 64 MiB at 48 MiB/s over a 32 MiB/s link, through ferry:
#     pre-copy only (bounded by a 20 s completion timeout), auto-converge, and post-copy after
#     the first iteration: total time, downtime, memory sent, against RAM / bandwidth.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=10
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --smoke) rounds=2; smoke=1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
bin=$(cd "${1:-$top/build}" && pwd)
export FERRY_BIN_DIR=$bin
source "$top/bench/lablib.sh" # the bench lab; LAB, sql, wait_sql, publish, newid, uri, muri, pct, ...
"$LAB" up --hosts 2 --schedulers 1 >/dev/null
eval "$("$LAB" env)"

"$LAB" guest compute1 ov1 >/dev/null
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'ov1'" "compute1 running" || fail "ov1 not seen running"
work=$FERRY_LAB_DIR/bench
mkdir -p "$work"
: >"$work/raw.ms"
: >"$work/ferry.ms"
: >"$work/ferry.ids"

# ---- 1. raw virsh -----------------------------------------------------------------------------------
at=compute1
for i in $(seq 1 $((rounds * 2))); do
  to=$(other "$at")
  t=$(ns)
  virsh -c "$(uri "$at")" migrate --live --p2p --persistent --undefinesource ov1 "$(muri "$to")" >/dev/null ||
    fail "raw virsh migrate $at -> $to failed"
  echo $((($(ns) - t) / 1000000)) >>"$work/raw.ms"
  at=$to
done
# the scheduler learns where ov1 is, and that it runs, from the heartbeats before ferry moves it
# (a heartbeat sent mid-migration reports it paused: a request then is refused, as seen here)
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'ov1'" "$at running" ||
  fail "the scheduler does not see ov1 running on $at"
sleep 1

# ---- 1. through ferry ------------------------------------------------------------------------------------
ids=()
for i in $(seq 1 $((rounds * 2))); do
  to=$(other "$at")
  id=$(newid)
  t=$(ns)
  publish "$id" "{\"instance\":\"ov1\",\"os-migrateLive\":{\"host\":\"$to\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false}}"
  wait_sql 60 "SELECT status FROM migrations WHERE request_id = '$id'" completed || fail "ferry migration $i did not complete"
  m=$(sql "SELECT id FROM migrations WHERE request_id = '$id'")
  done_ns=$(sql "SELECT (extract(epoch FROM at) * 1000000000)::bigint FROM migration_events WHERE migration_id = $m AND status = 'completed' AND kind = 'status'")
  echo $(((done_ns - t) / 1000000)) >>"$work/ferry.ms"
  echo "$m $t" >>"$work/ferry.ids"
  ids+=("$m")
  at=$to
  # the next request waits for the heartbeat that says where ov1 runs now
  wait_sql 30 "SELECT host || ' ' || coalesce(task_state, '-') FROM instances WHERE name = 'ov1'" "$at -" || fail "ov1 not back to idle"
done
rp50=$(pct "$work/raw.ms" 50) rp99=$(pct "$work/raw.ms" 99) fp50=$(pct "$work/ferry.ms" 50) fp99=$(pct "$work/ferry.ms" 99)
echo "raw virsh migrate: p50 $rp50 ms, p99 $rp99 ms ($((rounds * 2)) migrations)"
echo "ferry (published -> completed): p50 $fp50 ms, p99 $fp99 ms ($((rounds * 2)) migrations)"
echo "ferry - raw virsh p50 = $((fp50 - rp50)) ms (goal <= 150 ms)$( ((fp50 - rp50 <= 150)) || echo ': NOT met')"
echo "ferry - raw virsh p99 = $((fp99 - rp99)) ms (goal <= 500 ms)$( ((fp99 - rp99 <= 500)) || echo ': NOT met')"
list=$(IFS=,; echo "${ids[*]}")
# where the time goes: the mean of each phase, from the recorded timeline
intake=$(while read -r m t; do
  sql "SELECT ((extract(epoch FROM at) * 1000000000)::bigint - $t) / 1000000 FROM migration_events WHERE migration_id = $m AND status = 'scheduled' AND kind = 'status'"
done <"$work/ferry.ids" | awk '{s+=$1} END {printf "%.0f", s/NR}')
sql "WITH t AS (SELECT migration_id m,
        max(at) FILTER (WHERE kind = 'status' AND status = 'scheduled') sch,
        max(at) FILTER (WHERE kind = 'status' AND status = 'preparing') pre,
        max(at) FILTER (WHERE kind = 'status' AND status = 'running') run,
        max(at) FILTER (WHERE kind = 'completed' AND origin = 'source') src,
        max(at) FILTER (WHERE kind = 'status' AND status = 'completing') cing,
        max(at) FILTER (WHERE kind = 'status' AND status = 'completed') done
      FROM migration_events WHERE migration_id IN ($list) GROUP BY migration_id)
    SELECT 'where the time goes (mean): publish -> scheduled (intake + claim) $intake ms'
      || ', checks ' || round(avg(extract(epoch FROM pre - sch) * 1000)) || ' ms'
      || ', prepare ' || round(avg(extract(epoch FROM run - pre) * 1000)) || ' ms'
      || ', libvirt job ' || round(avg(extract(epoch FROM coalesce(src, cing) - run) * 1000)) || ' ms'
      || ', job end seen ' || round(avg(extract(epoch FROM cing - coalesce(src, cing)) * 1000)) || ' ms'
      || ', post ' || round(avg(extract(epoch FROM done - cing) * 1000)) || ' ms' FROM t"
stop_guest ov1

# ---- 2. convergence ------------------------------------------------------------------------------------------
[[ ${smoke:-0} == 1 ]] && { echo "(smoke run: convergence skipped)"; exit 0; }
converge() { # NAME OPTIONS POST_COPY
  local name=$1 id
  busy_guest compute1 "$name"
  id=$(newid)
  publish "$id" "{\"instance\":\"$name\",\"os-migrateLive\":{\"host\":\"compute2\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":$3},\"options\":$2}"
  wait_sql 120 "SELECT finished_at IS NOT NULL FROM migrations WHERE request_id = '$id'" t || fail "$name did not end"
  sql "SELECT '$name: ' || status || ' in ' || duration_ms || ' ms, downtime ' || coalesce(downtime_ms::text, '-')
         || ' ms, memory sent ' || round(memory_processed_bytes / 1048576.0) || ' MiB'
         || ', time / (RAM / bandwidth) = ' || round(duration_ms / (128.0 / 32 * 1000), 2)
         || coalesce(' (' || error || ')', '')
       FROM (SELECT *, (extract(epoch FROM finished_at - started_at) * 1000)::bigint duration_ms FROM migrations
             WHERE request_id = '$id') m"
  stop_guest "$name"
}
echo "convergence: 128 MiB guest dirtying 64 MiB at 48 MiB/s, 32 MiB/s link; RAM / bandwidth = 4.0 s"
converge precopy '{"bandwidth_mib_s":32,"completion_timeout_s":20}' false
converge autoconv '{"bandwidth_mib_s":32,"auto_converge":true}' false
converge postcopy '{"bandwidth_mib_s":32,"postcopy_after_iterations":1}' true
