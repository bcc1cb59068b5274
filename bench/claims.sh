#!/usr/bin/env bash
# bench/claims.sh [--hosts N]... [--requests M] [--replicas K] [--max-cluster C] [--subset S] [--smoke] [--build DIR]:
# how fast K ferry-scheduler replicas claim capacity in PostgreSQL, against baselines measured
# in the same run on the same server.
#
# For each host count N (default: 1000, then 10000) on a throwaway RabbitMQ + PostgreSQL
# (tests/harness/ferry-test-services, state /tmp/ferry-bench-svc, ports 26700..26703):
#   * N hosts registered directly in SQL (no libvirt: this measures the control plane), each
#     32 vCPUs / 32 GiB / 320 GiB, with 8 instances of 2 vCPUs / 2 GiB / 20 GiB: half full;
#     instances hold their 'instance' allocations and used_* = sum of allocations;
#   * baselines on the same server, before the schedulers start: `pgbench -b tpcb-like` with
#     K clients (TPS), and the p99 of a single-row UPDATE commit (`pgbench -c 1`, per-
#     transaction log);
#   * K replicas (`ferry-scheduler --name benchN`) consume M requests (no destination) for
#     distinct instances, published at once as fast as the broker takes them
#     (bench/publish.py, python3-pika, publisher confirms); nothing drives the accepted
#     migrations (no agents, the RPC timeout is an hour), so every claim stays in place;
#   * claims/s = accepted / (last claim commit - first publish); decision latency of each
#     request = its commit time (PostgreSQL's track_commit_timestamp of the processed_requests
#     row; processed_at is the transaction's start) - the time it was published; p50/p99 by
#     percentile_cont. With everything published at once that latency is mostly queueing, so
#     a paced phase follows (a quarter of the measured rate, 20 s, at most 200 requests) and
#     its p99 is printed as a second ratio;
#   * conflict retries: ferry counts none yet; printed are PostgreSQL's rollbacks and
#     deadlocks of the ferry database over the burst, what the replicas' sessions wait on
#     (pg_stat_activity sampled every 0.2 s), adoptions (epoch > 1) and the replicas' warnings;
#   * at the end: no host over capacity, used_* = sum of allocations on every host.
# --max-cluster C: the replicas' [scheduler] max_cluster (default 0, ferry's default: no
#   cluster-wide limit, so no claim takes a global lock; C > 0 measures the cluster-wide lock).
# --subset S: the replicas' [scheduler] host_subset_size (default 1: always the best candidate).
# --smoke: 20 hosts, 40 requests, 1-2 s baselines; finishes in well under a minute.
# FERRY_BENCH_KEEP=1 leaves the servers, the last database and the logs for a look afterwards.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$top/build
hosts_list=()
requests=
replicas=4
max_cluster=0
subset=1
smoke=0
tpcb_s=20
commit_s=10
scale=10
paced_s=20
paced_max=200
usage() { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while (($#)); do
  case $1 in
    --hosts) hosts_list+=("${2:?}"); shift 2 ;;
    --requests) requests=${2:?}; shift 2 ;;
    --replicas) replicas=${2:?}; shift 2 ;;
    --max-cluster) max_cluster=${2:?}; shift 2 ;;
    --subset) subset=${2:?}; shift 2 ;;
    --build) bin=$(cd "${2:?}" && pwd); shift 2 ;;
    --smoke) smoke=1; shift ;;
    -h|--help) usage ;;
    *) echo "claims.sh: unknown argument $1" >&2; usage ;;
  esac
done
if ((smoke)); then
  ((${#hosts_list[@]})) || hosts_list=(20)
  requests=${requests:-40}
  tpcb_s=2 commit_s=1 scale=1 paced_s=3 paced_max=20
fi
((${#hosts_list[@]})) || hosts_list=(1000 10000)
[[ -x $bin/ferry-scheduler ]] || { echo "claims.sh: no $bin/ferry-scheduler (cmake --build build)" >&2; exit 2; }
/usr/bin/python3 -c 'import pika' 2>/dev/null || { echo "claims.sh: needs python3-pika (deploy/install-deps)" >&2; exit 2; }

source "$top/bench/lib.sh" claims

sqlq() { local db=$1; shift; psql "$pg dbname=$db" -qAtX -v ON_ERROR_STOP=1 "$@"; }
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }

"$svc" start >/dev/null
# the decision is committed when its transaction commits: PostgreSQL records the time
sqlq postgres -c "ALTER SYSTEM SET track_commit_timestamp = on" >/dev/null
"$svc" restart-postgres >/dev/null
[[ $(sqlq postgres -c "SHOW track_commit_timestamp") == on ]] || { echo "claims.sh: track_commit_timestamp is off" >&2; exit 1; }

# CPU ticks so far into FILE: the machine's busy ticks (/proc/stat) on the first line, then one
# "<pid> <program> <ticks>" line per live process (/proc/PID/stat: user + system)
cpu_ticks() {
  { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
    cat /proc/[0-9]*/stat 2>/dev/null |
      awk '{ c = $2; gsub(/[()]/, "", c); print $1, c, $14 + $15 }'; } >"$1"
}
# "<busy> <postgres> <ferry-scheduler> <beam.smp> <python3>" seconds between two cpu_ticks files,
# each program's summed over the processes alive in both (none counted twice, none negative)
cpu_between() {
  awk -v hz="$(getconf CLK_TCK)" 'FNR == 1 { b[++f] = $1; next }
    f == 1 { t0[$1] = $3; next }
    ($1 in t0) && $3 >= t0[$1] { d[$2] += $3 - t0[$1] }
    END { printf "%.2f %.2f %.2f %.2f %.2f", (b[2] - b[1]) / hz, d["postgres"] / hz, d["ferry-scheduler"] / hz,
          d["beam.smp"] / hz, d["python3"] / hz }' "$1" "$2"
}

run() {
  local n=$1 m=$2 db=ferry_bench pgb=pgbench_bench
  local conf=$work/ferry.conf
  echo "== claims: $n hosts, $m requests, $replicas replicas, max_cluster $max_cluster, host_subset_size $subset$( ((smoke)) && echo ' (smoke)')"
  sqlq postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" \
    -c "DROP DATABASE IF EXISTS $pgb WITH (FORCE)" -c "CREATE DATABASE $pgb" >/dev/null
  cat >"$conf" <<EOF
[amqp]
url = $amqp
rpc_timeout_ms = 3600000
[database]
dsn = $pg dbname=$db
[http]
enabled = false
[scheduler]
heartbeat_max_age_s = 86400
max_outgoing_per_source = 64
max_incoming_per_dest = 64
max_cluster = $max_cluster
host_subset_size = $subset
deadline_preparing_s = 86400
rpc_retry_s = 3600
[log]
level = warn
EOF
  "$bin/ferry-scheduler" --config "$conf" --db-upgrade >/dev/null

  # N hosts half full: 8 instances of 2 vCPUs / 2 GiB / 20 GiB on 32 / 32 GiB / 320 GiB
  sqlq "$db" <<EOF >/dev/null
INSERT INTO hosts (name, address, arch, hypervisor, cpu_model, postcopy, state, vcpus, memory_mb, disk_gb,
                   capacity_vcpus, capacity_memory_mb, capacity_disk_gb, last_heartbeat)
  SELECT 'h' || lpad(i::text, 5, '0'), '10.' || (i / 250) || '.' || (i % 250) || '.1', 'x86_64', 'qemu', 'Skylake',
         true, 'enabled', 32, 32768, 320, 32, 32768, 320, now()
  FROM generate_series(1, $n) i;
INSERT INTO instances (uuid, name, project, host, vcpus, memory_mb, disk_gb, vm_state)
  SELECT gen_random_uuid(), 'vm' || lpad(i::text, 6, '0'), 'bench', 'h' || lpad((1 + (i - 1) / 8)::text, 5, '0'), 2, 2048, 20,
         'running'
  FROM generate_series(1, $n * 8) i;
INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, host, vcpus, memory_mb, disk_gb)
  SELECT 'instance', uuid::text, uuid, host, vcpus, memory_mb, disk_gb FROM instances;
UPDATE hosts h SET used_vcpus = a.v, used_memory_mb = a.m, used_disk_gb = a.d
  FROM (SELECT host, sum(vcpus) v, sum(memory_mb) m, sum(disk_gb) d FROM allocations GROUP BY host) a
  WHERE a.host = h.name;
EOF
  sqlq "$db" -c "VACUUM ANALYZE" >/dev/null
  sqlq "$db" -c "SELECT 'registered: ' || count(*) || ' hosts, ' || (SELECT count(*) FROM instances) || ' instances, used '
                  || round(100.0 * sum(used_memory_mb) / sum(capacity_memory_mb)) || '% of memory' FROM hosts"

  # baselines, same server, same client count, nothing else running against it
  pgbench -i -q -s "$scale" "$pg dbname=$pgb" >"$work/pgbench-init.log" 2>&1 ||
    { cat "$work/pgbench-init.log" >&2; exit 1; }
  pgbench -n -c "$replicas" -j 2 -T "$tpcb_s" -b tpcb-like "$pg dbname=$pgb" >"$work/tpcb.log" 2>&1 ||
    { cat "$work/tpcb.log" >&2; exit 1; }
  local tps
  tps=$(awk '/^tps = / { print $3; exit }' "$work/tpcb.log")
  echo "pgbench TPC-B: $(f2 "$tps") TPS (-c $replicas -j 2 -T $tpcb_s, scale $scale)"
  printf '\\set aid random(1, %d)\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n' \
    $((100000 * scale)) >"$work/one-row.sql"
  (cd "$work" && pgbench -n -c 1 -T "$commit_s" -f one-row.sql -l --log-prefix=onerow "$pg dbname=$pgb" \
    >"$work/onerow.log" 2>&1) || { cat "$work/onerow.log" >&2; exit 1; }
  local c_p50 c_p99 c_n
  read -r c_n c_p50 c_p99 < <(cat "$work"/onerow.* | awk '{ print $3 }' | sort -n |
    awk '{ a[NR] = $1 } END { printf "%d %.3f %.3f\n", NR, a[int(NR * 0.50 + 0.5)] / 1000, a[int(NR * 0.99 + 0.5)] / 1000 }')
  echo "single-row commit: p50 $c_p50 ms, p99 $c_p99 ms ($c_n transactions, pgbench -c 1 -T $commit_s)"
  sqlq postgres -c "DROP DATABASE $pgb WITH (FORCE)" >/dev/null

  # the replicas
  local k
  for k in $(seq 1 "$replicas"); do
    "$bin/ferry-scheduler" --config "$conf" --name "bench$k" 2>"$work/bench$k.log" &
    pids+=("$!")
  done
  for _ in $(seq 1 150); do
    [[ $(/usr/bin/python3 "$pub" queue-depth "$amqp" ferry.scheduler | cut -d' ' -f2) == "$replicas" ]] && break
    sleep 0.2
  done
  [[ $(/usr/bin/python3 "$pub" queue-depth "$amqp" ferry.scheduler | cut -d' ' -f2) == "$replicas" ]] ||
    { echo "claims.sh: the replicas are not all consuming" >&2; tail -n 20 "$work"/bench*.log >&2; exit 1; }

  # M distinct instances, spread over the hosts at random; the paced phase's after them
  sqlq "$db" -c "SELECT name FROM instances ORDER BY random() LIMIT $((m + paced_max))" >"$work/all.txt"
  head -n "$m" "$work/all.txt" >"$work/burst.txt"
  tail -n +"$((m + 1))" "$work/all.txt" >"$work/paced-all.txt"
  local before
  before=$(sqlq "$db" -c "SELECT xact_commit || ' ' || xact_rollback || ' ' || deadlocks FROM pg_stat_database
                          WHERE datname = current_database()")
  # what the replicas' sessions wait on, sampled every 0.2 s (one psql session, \watch)
  printf '%s\n' "SELECT 'sample', count(*) FILTER (WHERE state = 'active'),
      count(*) FILTER (WHERE state = 'active' AND wait_event = 'advisory'),
      count(*) FILTER (WHERE state = 'active' AND wait_event IN ('tuple', 'transactionid')),
      count(*) FILTER (WHERE state = 'active' AND wait_event_type IN ('LWLock', 'IO', 'IPC'))
    FROM pg_stat_activity WHERE application_name = 'ferry-scheduler' AND datname = current_database()" '\watch 0.2' \
    >"$work/sampler.sql"
  psql "$pg dbname=$db" -qAtX -F ' ' -f "$work/sampler.sql" >"$work/samples.txt" 2>/dev/null &
  local sampler=$!
  pids+=("$sampler")
  # the replicas' lease renewals (bench/lib.sh) over both phases
  lease_sampler_start "$pg dbname=$db" "$work/leases.txt"
  local lsampler=$!

  # phase 1: all M at once, as fast as the broker takes them
  local w0 w1
  cpu_ticks "$work/cpu0"
  w0=$(date +%s.%N)
  /usr/bin/python3 "$pub" requests "$amqp" "$work/burst.txt" "$work/published-burst.txt" ||
    { echo "claims.sh: the broker did not take the burst's requests" >&2; exit 1; }
  wait_decided "$db" "$m"
  cpu_ticks "$work/cpu1"
  w1=$(date +%s.%N)
  kill -TERM "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  sleep 1.5 # PostgreSQL publishes its statistics at most once a second
  local after
  after=$(sqlq "$db" -c "SELECT xact_commit || ' ' || xact_rollback || ' ' || deadlocks FROM pg_stat_database
                         WHERE datname = current_database()")
  local acc ref claims p50 p99 pmax t50 t99 span
  read -r acc ref span claims p50 p99 pmax t50 t99 < <(figures "$db" "$work/published-burst.txt")

  # phase 2: the decision latency of requests that do not queue behind each other: a quarter
  # of the rate just measured, for $paced_s s
  local rate np q_acc q_ref q_span q_claims q50 q99 qmax q_t50 q_t99
  rate=$(awk -v c="$claims" 'BEGIN { r = c / 4; if (r < 1) r = 1; printf "%.2f", r }')
  np=$(awk -v r="$rate" -v s="$paced_s" -v mx="$paced_max" 'BEGIN { n = int(r * s + 0.5); if (n > mx) n = mx; if (n < 1) n = 1; print n }')
  head -n "$np" "$work/paced-all.txt" >"$work/paced.txt"
  /usr/bin/python3 "$pub" requests "$amqp" "$work/paced.txt" "$work/published-paced.txt" --rate "$rate" >/dev/null ||
    { echo "claims.sh: the broker did not take the paced requests" >&2; exit 1; }
  wait_decided "$db" "$((m + np))"
  read -r q_acc q_ref q_span q_claims q50 q99 qmax q_t50 q_t99 < <(figures "$db" "$work/published-paced.txt")
  sleep 2 # a last renewal or two after the decisions
  kill -TERM "$lsampler" 2>/dev/null || true
  wait "$lsampler" 2>/dev/null || true

  local c0 r0 d0 c1 r1 d1
  read -r c0 r0 d0 <<<"$before"
  read -r c1 r1 d1 <<<"$after"
  echo "burst: $m requests published at once; decided: $acc accepted, $ref refused in $span s"
  echo "claims/s = $claims ($n hosts, $replicas replicas)"
  echo "decision latency (publish -> claim committed): p50 $p50 ms, p99 $p99 ms, max $pmax ms"
  echo "claim transaction (its start -> its commit): p50 $t50 ms, p99 $t99 ms"
  # where the machine's CPU went from the burst's publish to its last decision seen
  local busy c_pg c_fs c_mq c_py wall
  read -r busy c_pg c_fs c_mq c_py < <(cpu_between "$work/cpu0" "$work/cpu1")
  wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", b - a }')
  awk -v busy="$busy" -v pg="$c_pg" -v fs="$c_fs" -v mq="$c_mq" -v py="$c_py" -v w="$wall" -v n="$(nproc)" -v k="$replicas" 'BEGIN {
    printf "CPU over the burst: %.2f s busy of %d cores x %.2f s (%.0f%%): PostgreSQL %.2f s, %d ferry-scheduler %.2f s, RabbitMQ %.2f s, python3 (publisher, psql) %.2f s, the rest %.2f s\n",
      busy, n, w, 100 * busy / (n * w), pg, k, fs, mq, py, busy - pg - fs - mq - py }'
  echo "conflict retries: not counted by ferry; PostgreSQL over the burst: $((r1 - r0)) rollbacks," \
    "$((d1 - d0)) deadlocks, $((c1 - c0)) commits (all sessions of the ferry database)"
  awk '$1 == "sample" { n++; a += $2; adv += $3; row += $4; lw += $5 }
       END { if (n && a) printf "replica sessions, sampled %d times: %.2f active on average; of active samples %.0f%% wait on an advisory lock (a request id, or max_cluster when set), %.0f%% on a row lock, %.0f%% on LWLock/IO/IPC, %.0f%% run\n",
             n, a / n, 100 * adv / a, 100 * row / a, 100 * lw / a, 100 * (a - adv - row - lw) / a }' "$work/samples.txt"
  echo "paced: $np requests at $rate/s; decided: $q_acc accepted, $q_ref refused;" \
    "latency p50 $q50 ms, p99 $q99 ms, max $qmax ms; claim transaction p50 $q_t50 ms, p99 $q_t99 ms"
  echo "$(lease_intervals "$work/leases.txt") (period 1 s, lease_s 30; over the burst and the paced phase)"
  sqlq "$db" -c "SELECT 'claims by replica: ' || string_agg(o || ' ' || c, ', ' ORDER BY o)
                 FROM (SELECT coalesce(owner, '(queued)') o, count(*) c FROM migrations GROUP BY 1) x"
  sqlq "$db" -c "SELECT 'migrations by status: ' || string_agg(status || ' ' || c, ', ' ORDER BY status)
                 FROM (SELECT status, count(*) c FROM migrations GROUP BY 1) x"
  sqlq "$db" -c "SELECT 'destinations: ' || count(*) || ' hosts took ' || sum(c) || ' migrations, at most ' || max(c) || ' each'
                 FROM (SELECT dest_host, count(*) c FROM migrations GROUP BY 1) x"
  sqlq "$db" -c "SELECT 'migrations adopted by another replica (lease expired, epoch > 1): ' || count(*)
                 FROM migrations WHERE epoch > 1"
  local errs
  errs=$(cat "$work"/bench*.log | grep -c 'level=error' || true)
  echo "replica log lines (level warn and above): $(cat "$work"/bench*.log | wc -l), $errs errors"
  cat "$work"/bench*.log | grep 'level=\(error\|warn\)' | sed -E 's/^ts=[^ ]+ //; s/pid=[0-9]+ //; s/req=[^ ]+ //;
      s/i-[0-9a-f]{8}/i-N/g; s/[0-9a-f]{8}-[0-9a-f-]{27}/UUID/g; s/migration=[0-9]+ /migration=N /; s/ [0-9.]+ ms/ N ms/g;
      s/migration [0-9]+/migration N/g; s/epoch > [0-9]+/epoch > N/g; s/host=bench[0-9]+ //; s/ [0-9]+ s ago/ N s ago/g' |
    sort | uniq -c | sort -rn | head -n 8 | sed 's/^/  /'

  # the invariants
  local over mism drift
  over=$(sqlq "$db" -c "SELECT count(*) FROM hosts WHERE used_vcpus > capacity_vcpus OR used_memory_mb > capacity_memory_mb
                         OR used_disk_gb > capacity_disk_gb")
  mism=$(sqlq "$db" -c "SELECT count(*) FROM hosts h LEFT JOIN (SELECT host, sum(vcpus) v, sum(memory_mb) m, sum(disk_gb) d
                         FROM allocations GROUP BY host) a ON a.host = h.name
                         WHERE (h.used_vcpus, h.used_memory_mb, h.used_disk_gb) <> (coalesce(a.v, 0), coalesce(a.m, 0), coalesce(a.d, 0))")
  drift=$(sqlq "$db" -c "SELECT count(*) FROM (SELECT h.name FROM hosts h LEFT JOIN migrations m ON m.finished_at IS NULL
                         AND h.name IN (m.source_host, m.dest_host) GROUP BY h.name, h.migrations_active
                         HAVING h.migrations_active <> count(m.id)) x")
  echo "over-committed hosts: $over"
  echo "hosts whose usage differs from their allocations: $mism"
  echo "hosts whose active-migration counter differs from their migrations: $drift"
  local ldrift
  ldrift=$(sqlq "$db" -c "SELECT count(*) FROM hosts h WHERE (h.migrations_out, h.migrations_in, h.queued_out, h.queued_in) <>
                          (SELECT count(*) FILTER (WHERE m.source_host = h.name AND ferry_limit_class(m.status) = 'a'),
                                  count(*) FILTER (WHERE m.dest_host = h.name AND ferry_limit_class(m.status) = 'a'),
                                  count(*) FILTER (WHERE m.source_host = h.name AND m.status = 'queued'),
                                  count(*) FILTER (WHERE m.dest_host = h.name AND m.status = 'queued')
                           FROM migrations m WHERE h.name IN (m.source_host, m.dest_host))")
  echo "hosts whose limit counters differ from their migrations: $ldrift"
  # an over-commit is a bug, not a slow figure: the run fails
  [[ $over == 0 && $mism == 0 && $drift == 0 && $ldrift == 0 ]] || { echo "claims.sh: the claim invariants are broken (see above)" >&2; exit 1; }

  # the ratios, in a fixed form, and the goals
  local r_tps r_lat r_lat2 goal=
  r_tps=$(awk -v a="$claims" -v b="$tps" 'BEGIN { r = a / b; printf (r >= 0.1 ? "%.2f" : "%.4f"), r }')
  r_lat=$(awk -v a="$p99" -v b="$c_p99" 'BEGIN { printf "%.1f", a / b }')
  r_lat2=$(awk -v a="$q99" -v b="$c_p99" 'BEGIN { printf "%.1f", a / b }')
  echo "claims/s / TPC-B TPS = $r_tps ($n hosts, $replicas replicas)"
  echo "decision p99 / single-commit p99 = $r_lat ($n hosts, $replicas replicas)"
  echo "decision p99 / single-commit p99 = $r_lat2 ($n hosts, $replicas replicas, paced at $rate/s)"
  if ((smoke)); then
    echo "(smoke run: sizes too small for the goals)"
  else
    if ((n <= 1000)); then goal=0.5; elif ((n >= 10000)); then goal=0.3; fi
    [[ -z $goal ]] || awk -v r="$r_tps" -v g="$goal" -v n="$n" 'BEGIN {
      printf "goal claims/s / TPC-B TPS >= %s (%d hosts): %s (%s)\n", g, n, (r + 0 >= g + 0 ? "met" : "NOT met"), r }'
    awk -v r="$r_lat" -v q="$r_lat2" -v n="$n" 'BEGIN {
      printf "goal decision p99 / single-commit p99 <= 20 (%d hosts): %s (%.1f; paced: %s, %.1f)\n", n,
        (r <= 20 ? "met" : "NOT met"), r, (q <= 20 ? "met" : "NOT met"), q }'
  fi
  local bad=0
  ((over == 0 && mism == 0 && drift == 0)) || bad=1
  ((acc + ref == m && q_acc + q_ref == np)) || bad=1
  for k in "${pids[@]}"; do
    [[ $k == "$sampler" || $k == "$lsampler" ]] && continue
    kill -0 "$k" 2>/dev/null || { echo "a replica died" >&2; bad=1; }
  done
  stop_pids
  if [[ ${FERRY_BENCH_KEEP:-0} == 1 ]]; then mkdir -p "$work/$n" && mv "$work"/bench*.log "$work/$n/"; fi
  return $bad
}

# wait_decided DB COUNT: until COUNT requests are decided (give up after 60 s without progress)
wait_decided() {
  local done_n last=-1 still=0
  while :; do
    done_n=$(sqlq "$1" -c "SELECT count(*) FROM processed_requests")
    ((done_n >= $2)) && return 0
    if ((done_n == last)); then ((++still)); else still=0; last=$done_n; fi
    ((still < 120)) || { echo "claims.sh: stuck at $done_n of $2 requests decided" >&2; stuck_report "$1" >&2; exit 1; }
    sleep 0.5
  done
}

# stuck_report DB: what the replicas, their database sessions and the broker were doing when
# the requests stopped being decided
stuck_report() {
  local k p
  echo "-- the replicas (pid, state, kernel wait channel, last log lines):"
  for k in $(seq 1 "$replicas"); do
    p=${pids[$((k - 1))]}
    if kill -0 "$p" 2>/dev/null; then
      echo "bench$k pid $p: state $(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null), wchan $(cat "/proc/$p/wchan" 2>/dev/null)"
      if command -v gdb >/dev/null; then
        timeout 30 gdb -q -batch -p "$p" -ex 'thread apply all bt' 2>/dev/null | grep '^#' | head -n 25 | sed 's/^/    /'
      fi
    else
      wait "$p" 2>/dev/null
      echo "bench$k pid $p: gone (exit status $?)"
    fi
    tail -n 10 "$work/bench$k.log" | sed 's/^/    /'
  done
  echo "-- database sessions of $1:"
  sqlq "$1" -F ' | ' -c "SELECT pid, application_name, state, coalesce(wait_event_type || '/' || wait_event, '-'),
      coalesce(round(extract(epoch FROM now() - xact_start)::numeric, 1)::text || ' s in transaction', '-'),
      left(regexp_replace(query, '\s+', ' ', 'g'), 140)
    FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()" | sed 's/^/  /'
  sqlq "$1" -F ' | ' -c "SELECT 'waiting: pid ' || pid || ' for ' || locktype || ' ' || mode || ' (' ||
      coalesce(classid::text || ',' || objid::text, relation::regclass::text, transactionid::text, '?') || '), blocked by ' ||
      coalesce(array_to_string(pg_blocking_pids(pid), ','), '-') FROM pg_locks WHERE NOT granted" | sed 's/^/  /'
  echo "-- the broker's queues (name, ready, unacknowledged, consumers):"
  "$svc" rabbitmqctl list_queues -q name messages_ready messages_unacknowledged consumers 2>&1 | sed 's/^/  /'
  echo "-- decided: $(sqlq "$1" -c "SELECT string_agg(outcome || ' ' || c, ', ') FROM (SELECT outcome, count(*) c
      FROM processed_requests GROUP BY 1) x"); migrations by owner: $(sqlq "$1" -c "SELECT string_agg(o || ' ' || c, ', ')
      FROM (SELECT coalesce(owner, '(queued)') o, count(*) c FROM migrations GROUP BY 1) x")"
}

# figures DB PUBLISHED_FILE -> "accepted refused span_s claims/s p50 p99 max tx_p50 tx_p99" (ms) of
# the requests in the file: latency = commit time of the decision - publish time
figures() {
  sqlq "$1" -F ' ' <<EOF
CREATE TEMP TABLE pub (id uuid PRIMARY KEY, t double precision);
\copy pub FROM '$2' WITH (FORMAT text, DELIMITER ' ')
WITH d AS (
  SELECT r.outcome, extract(epoch FROM pg_xact_commit_timestamp(r.xmin)) AS committed, p.t AS published,
         extract(epoch FROM pg_xact_commit_timestamp(r.xmin) - r.processed_at) AS tx
  FROM processed_requests r JOIN pub p ON p.id = r.request_id)
SELECT count(*) FILTER (WHERE outcome = 'accepted'), count(*) FILTER (WHERE outcome = 'refused'),
       round((max(committed) - min(published))::numeric, 3),
       round((count(*) FILTER (WHERE outcome = 'accepted') / (max(committed) - min(published)))::numeric, 2),
       round((1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY committed - published))::numeric, 1),
       round((1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY committed - published))::numeric, 1),
       round((1000 * max(committed - published))::numeric, 1),
       round((1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY tx))::numeric, 2),
       round((1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY tx))::numeric, 2)
FROM d;
EOF
}

echo "machine: $(nproc) CPUs, $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)," \
  "PostgreSQL $(sqlq postgres -c 'SHOW server_version' | cut -d' ' -f1) (fsync off, the harness's), load $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
for n in "${hosts_list[@]}"; do
  # default: as many requests as keep a run within ~3 minutes on a small machine (a claim
  # costs more as hosts and migrations grow)
  m=${requests:-$((n <= 1000 ? 1000 : (3000000 / n < 100 ? 100 : 3000000 / n)))}
  ((m + paced_max <= 8 * n)) || { echo "claims.sh: $m requests + $paced_max paced need more than the $((8 * n)) instances" >&2; exit 2; }
  run "$n" "$m" || rc=1
done
exit $rc
