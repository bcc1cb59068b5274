#!/usr/bin/env bash
# bench/footprint.sh [--hosts N] [--duration S] [--claims R] [--smoke] [--agent-lab] [--build DIR]:
# memory of ferry's daemons (goals: ferry-agent idle RSS <= 8 MiB, ferry-scheduler idle RSS
# <= 32 MiB), on a throwaway RabbitMQ + PostgreSQL (tests/harness/ferry-test-services, state
# /tmp/ferry-bench-svc, ports 26700..26703):
#   * ferry-scheduler idle: started (default configuration, HTTP on a free port) against an
#     empty, upgraded database, measured after it settled;
#   * ferry-scheduler while N simulated hosts (default 1000) heartbeat: each publishes
#     host.<name>.heartbeat on ferry.events every 10 s (N/10 per second, the body of
#     compute-agent/RPC.md with 4 running domains) for S seconds (default 60); RSS sampled
#     every 0.5 s, the maximum printed, with the backlog left and the CPU the scheduler used;
#     with --claims R, migration requests (no destination) for those hosts' instances are
#     published at R per second from the first full round of heartbeats to the end, and the
#     lease renewals of the migrations the scheduler then drives are sampled (bench/lib.sh:
#     their period is 1 s; nothing answers its agent calls, so the migrations stay scheduled);
#   * ferry-agent idle: connected to the same broker and to libvirt's test:///default driver
#     (no lab needed), with the baseline of bench/agent_rss.sh measured the same way: a bare
#     libvirt client (`virsh -c test:///default event --all --loop`). --agent-lab runs
#     bench/agent_rss.sh instead (a lab of its own, agents on qemu:///system in namespaces).
# Each: RSS (what the goals name), PSS (shared pages divided among their users) and private
# memory (what the process itself allocated). --smoke: 50 hosts for 10 s.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$top/build
nhosts=1000
duration=60
settle=${FERRY_BENCH_SETTLE_S:-8}
agent_lab=0
claims=0
while (($#)); do
  case $1 in
    --hosts) nhosts=${2:?}; shift 2 ;;
    --duration) duration=${2:?}; shift 2 ;;
    --claims) claims=${2:?}; shift 2 ;;
    --build) bin=$(cd "${2:?}" && pwd); shift 2 ;;
    --smoke) nhosts=50 duration=10 settle=${FERRY_BENCH_SETTLE_S:-2}; shift ;;
    --agent-lab) agent_lab=1; shift ;;
    -h|--help) sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    *) echo "footprint.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x $bin/ferry-scheduler && -x $bin/ferry-agent ]] || { echo "footprint.sh: no binaries in $bin (cmake --build build)" >&2; exit 2; }
/usr/bin/python3 -c 'import pika' 2>/dev/null || { echo "footprint.sh: needs python3-pika (deploy/install-deps)" >&2; exit 2; }

source "$top/bench/lib.sh" footprint
db=ferry_footprint

# mem PID -> "rss_kib pss_kib private_kib" (as bench/agent_rss.sh)
mem() {
  awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Private_Clean:/ {c=$2} /^Private_Dirty:/ {d=$2} END {print r, p, c + d}' \
    "/proc/$1/smaps_rollup"
}
mib() { awk -v x="$1" 'BEGIN { printf "%.1f", x / 1024 }'; }
verdict() { awk -v x="$1" -v g="$2" 'BEGIN { print (x <= g * 1024 ? "met" : "NOT met") }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
sqlq() { psql "$pg dbname=$db" -qAtX -v ON_ERROR_STOP=1 "$@"; }

echo "machine: $(nproc) CPUs, $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$svc" start >/dev/null
psql "$pg dbname=postgres" -qAtX -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
  -c "CREATE DATABASE $db" >/dev/null

# ---- ferry-scheduler
cat >"$work/ferry.conf" <<EOF
[amqp]
url = $amqp
rpc_timeout_ms = 3600000
[database]
dsn = $pg dbname=$db
[http]
port = 0
[scheduler]
rpc_retry_s = 3600
deadline_preparing_s = 86400
[trust]
# the simulated hosts all publish as this one user (with user_id set): a scheduler's user may
# speak for any host, an agent's only for its own
scheduler_users = guest
[log]
file = $work/scheduler.log
EOF
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
"$bin/ferry-scheduler" --config "$work/ferry.conf" --name fp1 &
spid=$!
pids+=("$spid")
for _ in $(seq 1 100); do grep -q "ready" "$work/scheduler.log" 2>/dev/null && break; sleep 0.1; done
grep -q "ready" "$work/scheduler.log" || { echo "footprint.sh: the scheduler did not get ready" >&2; cat "$work/scheduler.log" >&2; exit 1; }
sleep "$settle"
read -r r p u < <(mem "$spid")
echo "ferry-scheduler idle: RSS $(mib "$r") MiB, PSS $(mib "$p") MiB, private $(mib "$u") MiB (after ${settle} s)"
idle_r=$r

# N hosts heartbeating
rate=$(awk -v n="$nhosts" 'BEGIN { printf "%g", n / 10 }')
t0=$(cpu_ticks "$spid")
/usr/bin/python3 "$pub" heartbeats "$amqp" --hosts "$nhosts" --interval 10 --duration "$duration" >"$work/hb.out" &
hb=$!
pids+=("$hb")
mr=0 mp=0 mu=0 samples=0
claimer=
if ((claims > 0)); then
  # from the first full round of heartbeats (every host known) to the end
  (
    sleep 11
    # the hosts table filled from empty in these 11 s, before autovacuum's first analyze (up to a
    # minute): without statistics the planner sorts every host for each claim instead of walking
    # the placement index (18 ms against 0.1 ms per claim); a cloud's table has them
    sqlq -c "ANALYZE hosts"
    sqlq -c "SELECT name FROM instances ORDER BY random() LIMIT $(awk -v r="$claims" -v d="$duration" 'BEGIN { printf "%d", r * (d - 12) }')" >"$work/claim-instances.txt"
    /usr/bin/python3 "$pub" requests "$amqp" "$work/claim-instances.txt" "$work/claims-published.txt" --rate "$claims"
  ) >"$work/claims.out" 2>&1 &
  claimer=$!
  pids+=("$claimer")
  lease_sampler_start "$pg dbname=$db" "$work/leases.txt"
  lsampler=$!
fi
while kill -0 "$hb" 2>/dev/null; do
  read -r r p u < <(mem "$spid")
  ((r > mr)) && mr=$r
  ((p > mp)) && mp=$p
  ((u > mu)) && mu=$u
  samples=$((samples + 1))
  sleep 0.5
done
wait "$hb" || { echo "footprint.sh: the heartbeat publisher failed" >&2; exit 1; }
if [[ -n $claimer ]]; then
  wait "$claimer" || { echo "footprint.sh: the request publisher failed: $(cat "$work/claims.out")" >&2; exit 1; }
fi
t1=$(cpu_ticks "$spid")
read -r er ep eu < <(mem "$spid")
backlog=$(/usr/bin/python3 "$pub" queue-depth "$amqp" ferry.scheduler.events | cut -d' ' -f1)
sleep 2
fresh=$(sqlq -c "SELECT count(*) FROM hosts WHERE last_heartbeat > now() - interval '15 s'")
inst=$(sqlq -c "SELECT count(*) FROM instances")
cat "$work/hb.out"
if [[ -n $claimer ]]; then
  sleep 2
  kill -TERM "$lsampler" 2>/dev/null || true
  wait "$lsampler" 2>/dev/null || true
  echo "requests: $(wc -l <"$work/claims-published.txt") published at $claims/s while the hosts heartbeat;" \
    "$(sqlq -c "SELECT count(*) FILTER (WHERE outcome = 'accepted') || ' accepted, ' || count(*) FILTER (WHERE outcome = 'refused') || ' refused' FROM processed_requests")"
  echo "$(lease_intervals "$work/leases.txt") (period 1 s, lease_s 30, while the hosts heartbeat and the requests come)"
fi
echo "ferry-scheduler with $nhosts hosts heartbeating ($rate/s for $duration s, $samples samples):" \
  "max RSS $(mib "$mr") MiB, max PSS $(mib "$mp") MiB, max private $(mib "$mu") MiB;" \
  "at the end RSS $(mib "$er") MiB, private $(mib "$eu") MiB"
echo "  recorded: $fresh hosts with a heartbeat under 15 s old, $inst instances; events left in the queue when the publisher stopped: $backlog;" \
  "scheduler CPU $(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v d="$duration" 'BEGIN { printf "%.1f%%", 100 * t / hz / d }') of one core"
errs=$(grep -c 'level=error' "$work/scheduler.log" || true)
echo "  scheduler log: $(wc -l <"$work/scheduler.log") lines, $errs errors"
grep 'level=\(error\|warn\)' "$work/scheduler.log" | sed -E 's/^ts=[^ ]+ //; s/pid=[0-9]+ //' | sort | uniq -c | sort -rn |
  head -n 5 | sed 's/^/  /' || true
kill -0 "$spid" 2>/dev/null || { echo "footprint.sh: the scheduler died" >&2; exit 1; }

# ---- ferry-agent
agent_line=
if ((agent_lab)); then
  out=$(bash "$top/bench/agent_rss.sh" "$bin")
  echo "$out"
  agent_line=$(grep '^ferry-agent idle RSS = ' <<<"$out")
else
  mkdir -p "$work/agent/instances" "$work/agent/state"
  cat >"$work/agent.conf" <<EOF
[amqp]
url = $amqp
[agent]
host = fpagent
address = 127.0.0.1
instances_path = $work/agent/instances
state_dir = $work/agent/state
[libvirt]
uri = test:///default
[log]
file = $work/agent.log
EOF
  virsh -q -c test:///default event --all --loop </dev/null >/dev/null 2>&1 &
  vpid=$!
  pids+=("$vpid")
  "$bin/ferry-agent" --config "$work/agent.conf" &
  apid=$!
  pids+=("$apid")
  for _ in $(seq 1 100); do grep -q "agent ready" "$work/agent.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "agent ready" "$work/agent.log" || { echo "footprint.sh: the agent did not get ready" >&2; cat "$work/agent.log" >&2; exit 1; }
  sleep "$settle"
  kill -0 "$vpid" 2>/dev/null || { echo "footprint.sh: the baseline virsh did not start" >&2; exit 1; }
  read -r vr vp vu < <(mem "$vpid")
  read -r ar ap au < <(mem "$apid")
  echo "baseline (virsh -c test:///default event loop, idle): RSS $(mib "$vr") MiB, PSS $(mib "$vp") MiB, private $(mib "$vu") MiB"
  echo "ferry-agent idle (test:///default): RSS $(mib "$ar") MiB, PSS $(mib "$ap") MiB, private $(mib "$au") MiB"
  awk -v a="$ar" -v v="$vr" 'BEGIN { printf "ferry-agent / virsh RSS = %.2f (test:///default)\n", a / v }'
  awk -v a="$au" -v v="$vu" 'BEGIN { printf "ferry-agent - virsh private = %.1f MiB (test:///default)\n", (a - v) / 1024 }'
  agent_line="ferry-agent idle RSS = $(mib "$ar") MiB (goal <= 8 MiB): $(verdict "$ar" 8)"
fi

# ---- the figures against their goals, in a fixed form
echo "ferry-scheduler idle RSS = $(mib "$idle_r") MiB (goal <= 32 MiB): $(verdict "$idle_r" 32)"
echo "ferry-scheduler RSS with $nhosts hosts heartbeating = $(mib "$mr") MiB (max over $duration s; idle goal <= 32 MiB): $(verdict "$mr" 32)"
echo "$agent_line"
