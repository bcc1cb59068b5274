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
