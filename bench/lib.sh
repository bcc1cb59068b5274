# Shared by the benchmarks that run ferry against throwaway servers (claims.sh, footprint.sh):
# the harness's RabbitMQ + PostgreSQL (state FERRY_BENCH_STATE, default /tmp/ferry-bench-svc;
# ports FERRY_BENCH_PORT_BASE .. +3, default 26700), their URLs, a work directory, and the
# cleanup of the processes a benchmark started (in $pids). Source it after `top` is set:
#   source "$top/bench/lib.sh" NAME     (NAME names the work directory)
export FERRY_TEST_STATE=${FERRY_BENCH_STATE:-/tmp/ferry-bench-svc}
export FERRY_TEST_AMQP_PORT=${FERRY_BENCH_PORT_BASE:-26700}
export FERRY_TEST_AMQP_DIST_PORT=$((FERRY_TEST_AMQP_PORT + 1)) FERRY_TEST_EPMD_PORT=$((FERRY_TEST_AMQP_PORT + 2))
export FERRY_TEST_PG_PORT=$((FERRY_TEST_AMQP_PORT + 3))
svc=$top/tests/harness/ferry-test-services
pub=$top/bench/publish.py
amqp=amqp://guest:guest@127.0.0.1:$FERRY_TEST_AMQP_PORT
pg="host=$FERRY_TEST_STATE/pg-socket port=$FERRY_TEST_PG_PORT user=postgres"
work=$(mktemp -d "/tmp/ferry-bench-${1:?bench/lib.sh needs a name}.XXXXXX")
pids=()

# TERM every process in $pids, KILL what is still there after 10 s, and forget them
stop_pids() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
# the EXIT trap: the processes, then the servers and the work directory (FERRY_BENCH_KEEP=1 keeps them)
bench_cleanup() {
  stop_pids
  if [[ ${FERRY_BENCH_KEEP:-0} == 1 ]]; then
    echo "kept: $work and the servers (stop: FERRY_TEST_STATE=$FERRY_TEST_STATE" \
      "FERRY_TEST_AMQP_PORT=$FERRY_TEST_AMQP_PORT ... $svc stop)" >&2
  else
    "$svc" stop >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The lease renewals of the replicas, seen from the database: every 0.2 s the earliest
# lease_expires_at of each owner's unfinished migrations (one psql session, \watch) into FILE.
# A renewal sets every one the replica drives to now() + lease_s (a new claim's is later, so it
# does not move the earliest), so the differences between an owner's successive values are the
# intervals between its renewals (the period is 1 s; a loop or a database worker held up
# shows as a longer one).
#   lease_sampler_start CONNINFO FILE   (its pid is added to $pids)
#   lease_intervals FILE                -> "lease renewals: N intervals, p50 X s, p99 Y s, max Z s"
lease_sampler_start() {
  printf '%s\n' "SELECT owner, extract(epoch FROM min(lease_expires_at)) FROM migrations
    WHERE finished_at IS NULL AND owner IS NOT NULL GROUP BY owner" '\watch 0.2' >"$2.sql"
  psql "$1" -qAtX -F ' ' -f "$2.sql" >"$2" 2>/dev/null &
  pids+=("$!")
}
lease_intervals() {
  awk 'NF == 2 && $2 != "" { if (($1 in last) && $2 > last[$1]) print $2 - last[$1]; if (!($1 in last) || $2 > last[$1]) last[$1] = $2 }' "$1" |
    sort -n | awk '{ a[NR] = $1 } END {
      if (NR == 0) { print "lease renewals: none seen"; exit }
      i = int(NR * 0.5 + 0.5); if (i < 1) i = 1
      j = int(NR * 0.99 + 0.5); if (j < 1) j = 1
      printf "lease renewals: %d intervals, p50 %.2f s, p99 %.2f s, max %.2f s\n", NR, a[i], a[j], a[NR] }'
}
