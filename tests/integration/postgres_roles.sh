#!/usr/bin/env bash
# PostgreSQL with least privilege: deploy/postgres/setup.sh makes the database and the
# scheduler's role (run twice: idempotent); the schema upgrade and a scheduler run as that
# role; the tables land in the role's own schema `ferry`; the role is no superuser, cannot
# create databases or roles, and cannot create anything in `public`.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
db=ferry_roles_$$ role=ferry_sched_$$
su=(psql "$FERRY_TEST_PG_DSN" -qAtX -v ON_ERROR_STOP=1)
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  "${su[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$work/scheduler.log" ] && tail -n 20 "$work/scheduler.log" >&2; exit 1; }
ok() { echo "ok: $*"; }

# the harness's DSN is key=value: pass its host and port to psql as the script would get them
host=$(sed -n 's/.*host=\([^ ]*\).*/\1/p' <<<"$FERRY_TEST_PG_DSN")
port=$(sed -n 's/.*port=\([^ ]*\).*/\1/p' <<<"$FERRY_TEST_PG_DSN")
for _ in 1 2; do
  "$top/deploy/postgres/setup.sh" --db "$db" --role "$role" --password "pw-$$" --host="$host" --port="$port" --username=postgres >"$work/setup.log" ||
    fail "setup.sh: $(cat "$work/setup.log")"
done
grep -q "role $role owns schema ferry" "$work/setup.log" || fail "setup.sh said: $(cat "$work/setup.log")"
ok "setup.sh, twice"

dsn="host=$host port=$port dbname=$db user=$role password=pw-$$"
as_role() { psql "$dsn" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
out=$(FERRY_DB_DSN=$dsn "$bin/ferry-scheduler" --db-upgrade) || fail "--db-upgrade as $role: $out"
[[ $(as_role "SELECT count(*) FROM pg_tables WHERE schemaname = 'ferry' AND tableowner = '$role'") -ge 7 ]] ||
  fail "tables: $(as_role "SELECT schemaname, tablename, tableowner FROM pg_tables WHERE tablename IN ('hosts', 'migrations')")"
[[ $(as_role "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0 ]] || fail "tables in public"
[[ $(as_role "SELECT rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = current_user") == f ]] ||
  fail "the role has more than it needs"
st=0; as_role "CREATE TABLE public.x (i int)" >/dev/null 2>"$work/err" || st=$?
[[ $st != 0 ]] && grep -q "permission denied for schema public" "$work/err" || fail "the role could create in public"
st=0; as_role "CREATE DATABASE ${db}_x" >/dev/null 2>"$work/err" || st=$?
[[ $st != 0 ]] && grep -q "permission denied to create database" "$work/err" || fail "the role could create a database"
ok "the schema upgrade as $role: tables in schema ferry, owned by it; no superuser, no CREATEDB/CREATEROLE, no CREATE in public"

printf '[amqp]\nheartbeat_s = 5\n[http]\nport = 0\n' >"$work/ferry.conf"
FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL FERRY_DB_DSN=$dsn "$bin/ferry-scheduler" --config "$work/ferry.conf" --name roles1 \
  2>"$work/scheduler.log" &
pids+=("$!")
for _ in $(seq 1 100); do grep -q "ready: broker connected" "$work/scheduler.log" && break; sleep 0.1; done
grep -q "database connected, schema at version" "$work/scheduler.log" && grep -q "ready: broker connected" "$work/scheduler.log" ||
  fail "the scheduler does not run as $role"
ok "ferry-scheduler runs as $role"
echo "all checks passed"
