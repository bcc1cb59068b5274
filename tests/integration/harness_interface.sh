#!/usr/bin/env bash
# integration.harness_interface: the command-line contract of tests/harness/ferry-test-services
# that ctest, the shell tests, deploy/lab/ferry-lab, bench/ and deploy/ferry-dev rely on: exit
# statuses, the `env` lines, an idempotent `start`, `status`, errors that name the bad variable,
# the rabbitmqctl passthrough. Changes nothing: runs after services.start with the FERRY_TEST_*
# environment; by hand: ferry-test-services start && bash tests/integration/harness_interface.sh
set -euo pipefail

ME=harness_interface
say()  { printf '%s: %s\n' "$ME" "$*"; }
fail() { printf '%s: FAIL: %s\n' "$ME" "$*" >&2; exit 1; }

HARNESS=${FERRY_TEST_HARNESS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../harness" && pwd)/ferry-test-services}
[[ -x $HARNESS ]] || fail "harness not found or not executable: $HARNESS"
[[ $(head -1 "$HARNESS") == '#!/usr/bin/env python3' ]] || fail "$HARNESS does not start with #!/usr/bin/env python3"

# run CMD...: sets rc, out (stdout) and err (stderr)
run() {
  local e; e=$(mktemp)
  rc=0; out=$("$@" 2>"$e") || rc=$?
  err=$(<"$e"); rm -f "$e"
}

# ---------------------------------------------------------------- usage
run "$HARNESS" --help
((rc == 0)) || fail "--help exit $rc"
for c in start stop status env start-rabbitmq stop-rabbitmq restart-rabbitmq start-postgres \
  stop-postgres restart-postgres rabbitmqctl FERRY_TEST_STATE FERRY_TEST_AMQP_PORT \
  FERRY_TEST_AMQP_DIST_PORT FERRY_TEST_EPMD_PORT FERRY_TEST_PG_PORT FERRY_TEST_START_TIMEOUT \
  FERRY_TEST_EXTRA_LISTEN FERRY_TEST_TLS_DIR; do
  grep -qw -- "$c" <<<"$out" || fail "--help does not mention $c"
done
run "$HARNESS"
((rc == 2)) && [[ -z $out && $err == *Usage:* ]] || fail "no command: exit $rc (want 2, usage on stderr)"
run "$HARNESS" no-such-command
((rc == 2)) && [[ $err == "ferry-test-services: error: unknown command no-such-command (see --help)" ]] ||
  fail "unknown command: exit $rc, stderr '$err'"
run env FERRY_TEST_PG_PORT=99 "$HARNESS" status
((rc == 1)) && [[ $err == *FERRY_TEST_PG_PORT* ]] || fail "a bad port: exit $rc, stderr '$err'"
run env FERRY_TEST_STATE='/tmp/a b' "$HARNESS" env
((rc == 1)) && [[ $err == *FERRY_TEST_STATE* ]] || fail "a bad state dir: exit $rc, stderr '$err'"
say "ok: usage, unknown command, bad variables (exit 0 / 2 / 2 / 1 / 1)"

# ---------------------------------------------------------------- env: what ctest set
run "$HARNESS" env
((rc == 0)) || fail "env exit $rc: $err"
want="export FERRY_TEST_STATE='$FERRY_TEST_STATE'
export FERRY_TEST_AMQP_PORT=$FERRY_TEST_AMQP_PORT FERRY_TEST_AMQP_DIST_PORT=$FERRY_TEST_AMQP_DIST_PORT FERRY_TEST_EPMD_PORT=$FERRY_TEST_EPMD_PORT FERRY_TEST_PG_PORT=$FERRY_TEST_PG_PORT
export FERRY_TEST_AMQP_URL='$FERRY_TEST_AMQP_URL'
export FERRY_TEST_PG_DSN='$FERRY_TEST_PG_DSN'"
[[ $out == "$want" ]] || fail "env printed
$out
expected
$want"
say "ok: env prints the four export lines the tests use"

# ---------------------------------------------------------------- the running services
run "$HARNESS" status
((rc == 0)) || fail "status exit $rc: $out $err"
[[ $out == *"rabbitmq: up "* && $out == *"postgres: up "* ]] || fail "status says: $out"
run "$HARNESS" start
((rc == 0)) && [[ $out == *"both healthy): nothing to do"* ]] || fail "a second start: exit $rc, '$out' '$err'"
run "$HARNESS" start-postgres
((rc == 0)) && [[ $out == *"PostgreSQL already running"* ]] || fail "start-postgres on a running server: exit $rc, '$out'"
run "$HARNESS" start-rabbitmq
((rc == 0)) && [[ $out == *"RabbitMQ already running"* ]] || fail "start-rabbitmq on a running broker: exit $rc, '$out'"
say "ok: status exit 0 (both up); start, start-postgres, start-rabbitmq leave running servers alone"

run "$HARNESS" rabbitmqctl list_policies --formatter json
((rc == 0)) || fail "rabbitmqctl list_policies: exit $rc, $err"
for p in ferry-scheduler-delivery-limit ferry-dead-bound; do
  [[ $out == *"\"$p\""* ]] || fail "policy $p not set on the broker: $out"
done
say "ok: rabbitmqctl passthrough reaches the broker, ferry's policies are set"
say "PASS"
