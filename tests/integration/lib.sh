# tests/integration/lib.sh: what the integration scripts that run a real ferry-scheduler against
# the harness's broker and database share. Set before sourcing it:
#   db   the test's own database (dropped at the end, whatever happened)
# It sets bin, top, work (a temporary directory, kept with KEEP_WORK=1), pids (killed -9 at the
# end), users (per-host broker users made by host_user, deleted at the end), the EXIT trap
# (a test_cleanup function of the test, if defined, runs first), FERRY_AMQP_URL, FERRY_DB_DSN;
# and defines:
#   fail MSG / ok MSG        the verdict lines (fail prints the tail of every $work/*.log)
#   sql QUERY, newid
#   wait_line FILE REGEX     up to 15 s
#   wait_sql [SECONDS] QUERY EXPECTED   (default 15 s)
#   rctl ARGS                rabbitmqctl of the harness
#   new_db CONF-TEXT         creates $db, writes $work/ferry.conf, upgrades the schema
#   host_user HOST           broker user ferry-agent-HOST that may only publish on ferry.events
#                            (as deploy/rabbitmq/add-agent-user makes it); url_of HOST its URL
#   heartbeat HOST DOMAINS   a heartbeat of HOST as its own user ($hb_extra: more body fields,
#                            e.g. ',"postcopy":true')
#   start_scheduler NAME     a replica on $work/ferry.conf, logging to $work/scheduler.log;
#                            sets port (its HTTP API) once it is ready
bin=${FERRY_BIN_DIR:?run through ctest}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
pids=()
users=()
hb_extra=
rctl() { "$FERRY_TEST_HARNESS" rabbitmqctl "$@"; }
cleanup() {
  if declare -F test_cleanup >/dev/null; then test_cleanup; fi
  local p u
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for u in "${users[@]}"; do rctl delete_user "$u" >/dev/null 2>&1 || true; done
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
newid() { cat /proc/sys/kernel/random/uuid; }
wait_line() { for _ in $(seq 1 150); do grep -Eq -- "$2" "$1" && return 0; sleep 0.1; done; return 1; }
wait_sql() { # [SECONDS] QUERY EXPECTED
  local n=15
  (($# == 3)) && { n=$1; shift; }
  for _ in $(seq 1 $((n * 10))); do [[ $(sql "$1") == "$2" ]] && return 0; sleep 0.1; done
  echo "waited for [$1] = [$2], last [$(sql "$1")]" >&2
  return 1
}
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=${db:?set db before sourcing lib.sh}"
new_db() {
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  printf '%s' "$1" >"$work/ferry.conf"
  "$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
}
host_user() {
  rctl add_user "ferry-agent-$1" "pw-$$" >/dev/null
  rctl set_permissions -p / "ferry-agent-$1" '^$' '^ferry\.events$' '^$' >/dev/null
  users+=("ferry-agent-$1")
}
url_of() { echo "amqp://ferry-agent-$1:pw-$$@127.0.0.1:$FERRY_TEST_AMQP_PORT"; }
seq_no=0
boot=$(newid)
heartbeat() { # host domains-json
  seq_no=$((seq_no + 1))
  local body
  body=$(printf '{"v":1,"type":"host.%s.heartbeat","id":"%s","body":{"origin":"agent","address":"%s","arch":"x86_64","vcpus":16,"memory_mb":16384,"disk_gb":100,"boot":"%s","seq":%d%s,"domains":%s}}' \
    "$1" "$(newid)" "$1" "$boot" "$seq_no" "$hb_extra" "$2")
  "$top/tests/harness/amqp-send" "$(url_of "$1")" ferry.events "host.$1.heartbeat" "$body" >/dev/null || fail "heartbeat of $1 refused by the broker"
}
start_scheduler() {
  "$bin/ferry-scheduler" --config "$work/ferry.conf" --name "$1" 2>"$work/scheduler.log" &
  pids+=("$!")
  wait_line "$work/scheduler.log" "ready: broker connected" || fail "scheduler not ready"
  port=$(sed -n 's|.*HTTP API and dashboard on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/scheduler.log" | head -n 1)
  [[ -n $port ]] || fail "no HTTP port in the log"
}
