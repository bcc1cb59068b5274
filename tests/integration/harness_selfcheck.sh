#!/usr/bin/env bash
# integration.harness_selfcheck: checks the services started by tests/harness/ferry-test-services
# with tools independent of ferry's own code:
#   1. RabbitMQ: a message round-trips through a temporary queue (amqp-tools).
#   2. PostgreSQL: `select 1` answers (psql).
#   3. `ferry-test-services restart-postgres` really restarts the server on the same data dir,
#      and psql works again afterwards.
# Runs under ctest after services.start, with the FERRY_TEST_* environment; by hand:
#   ferry-test-services start && bash tests/integration/harness_selfcheck.sh
set -euo pipefail

ME=harness_selfcheck
say()  { printf '%s: %s\n' "$ME" "$*"; }
fail() { printf '%s: FAIL: %s\n' "$ME" "$*" >&2; exit 1; }

HARNESS=${FERRY_TEST_HARNESS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../harness" && pwd)/ferry-test-services}
[[ -x $HARNESS ]] || fail "harness not found or not executable: $HARNESS"

# Outside ctest the variables may be missing: take them from the harness (same defaults).
if [[ -z ${FERRY_TEST_AMQP_PORT:-} || -z ${FERRY_TEST_PG_DSN:-} ]]; then
  eval "$("$HARNESS" env)"
fi
AMQP_URL=amqp://guest:guest@127.0.0.1:$FERRY_TEST_AMQP_PORT
PG_DSN=$FERRY_TEST_PG_DSN

for tool in amqp-declare-queue amqp-publish amqp-get amqp-delete-queue psql; do
  command -v "$tool" >/dev/null || fail "$tool not installed (amqp-tools / postgresql-client: deploy/install-deps)"
done

if [[ ${FERRY_TEST_AMQP_URL:-} == */ ]]; then
  say "warning: FERRY_TEST_AMQP_URL='$FERRY_TEST_AMQP_URL' ends in '/': librabbitmq's amqp_parse_url reads that as vhost \"\" (not \"/\") and the broker refuses it"
fi

# ---------------------------------------------------------------- RabbitMQ round trip
queue=ferry-selfcheck-$$-$RANDOM
body="ferry selfcheck $queue $(date +%s%N)"
cleanup() { amqp-delete-queue --url "$AMQP_URL" -q "$queue" >/dev/null 2>&1 || true; }
trap cleanup EXIT

out=$(amqp-declare-queue --url "$AMQP_URL" -q "$queue" 2>&1) ||
  fail "amqp-declare-queue on $AMQP_URL failed: $out"
out=$(amqp-publish --url "$AMQP_URL" -r "$queue" -b "$body" 2>&1) ||
  fail "amqp-publish to queue $queue failed: $out"
got=$(amqp-get --url "$AMQP_URL" -q "$queue" 2>&1) ||
  fail "amqp-get from queue $queue failed (exit $?; 2 = queue empty): $got"
[[ $got == "$body" ]] || fail "amqp-get returned '$got', expected '$body'"
# amqp-get acks: the queue must be empty now (exit 2 = empty).
rc=0; got=$(amqp-get --url "$AMQP_URL" -q "$queue" 2>&1) || rc=$?
((rc == 2)) || fail "queue $queue should be empty after the get (amqp-get exit $rc, output '$got')"
cleanup
trap - EXIT
say "ok: RabbitMQ round trip through temporary queue $queue on $AMQP_URL"

# ---------------------------------------------------------------- PostgreSQL
pgq() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$PG_DSN" -c "$1" 2>&1; }

out=$(pgq 'select 1') || fail "psql \"$PG_DSN\" -c 'select 1' failed: $out"
[[ $out == 1 ]] || fail "select 1 returned '$out'"
say "ok: PostgreSQL answers select 1 ($PG_DSN)"

# A row written before the restart must still be there after it (same data dir).
out=$(pgq "drop table if exists ferry_selfcheck; create table ferry_selfcheck(v text);
           insert into ferry_selfcheck values ('$queue')") || fail "cannot write a test row: $out"
before=$(pgq 'select pg_postmaster_start_time()') || fail "psql failed: $before"

say "calling: $HARNESS restart-postgres"
"$HARNESS" restart-postgres || fail "ferry-test-services restart-postgres failed (exit $?)"

out=$(pgq 'select 1') || fail "psql \"$PG_DSN\" -c 'select 1' failed after restart-postgres: $out"
[[ $out == 1 ]] || fail "select 1 after restart returned '$out'"
after=$(pgq 'select pg_postmaster_start_time()') || fail "psql failed: $after"
[[ $after != "$before" ]] || fail "server start time unchanged ($before): restart-postgres did not restart it"
out=$(pgq 'select v from ferry_selfcheck') || fail "test table gone after restart: $out"
[[ $out == "$queue" ]] || fail "test row after restart is '$out', expected '$queue'"
pgq 'drop table ferry_selfcheck' >/dev/null || true
say "ok: PostgreSQL restarted (started $before -> $after), data kept, select 1 answers"

say "PASS"
