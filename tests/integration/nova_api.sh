#!/usr/bin/env bash
# Nova's compute API (issue #16), on the harness's real broker and database: a real
# ferry-scheduler is read by Debian's real openstackclient and novaclient
# (OS_AUTH_TYPE=token_endpoint, ferry's [http] token as X-Auth-Token) -- server list/show,
# migration list, hypervisor list, compute service list and set --disable -- and sent hostile
# Nova requests with curl: a bad or unsupported microversion (400 / 406), an unknown or
# numeric server (404 itemNotFound), wrong os-migrateLive bodies per microversion (400
# badRequest), a bad name regex, a wrong token (401). Each answer carries the microversion
# headers and x-compute-request-id; the refusals change nothing in the database.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
work=$(mktemp -d)
pids=()
db=ferry_nova_$$
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$work/scheduler.log" ] && { echo "--- scheduler.log"; tail -n 30 "$work/scheduler.log"; } >&2; exit 1; }
ok() { echo "ok: $*"; }
command -v openstack >/dev/null || fail "openstack (python3-openstackclient) is not installed: deploy/install-deps"
command -v nova >/dev/null || fail "nova (python3-novaclient) is not installed: deploy/install-deps"

psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
token=nova-t0ken-$$-$RANDOM
printf '[amqp]\nheartbeat_s = 5\n[http]\nport = 0\ntokens = %s\n[log]\nlevel = info\n' "$token" >"$work/ferry.conf"
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
sql "INSERT INTO hosts (name, arch, address, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb) VALUES
     ('h1', 'x86_64', '10.0.0.1', now(), 8, 8192, 8, 8192), ('h2', 'x86_64', '10.0.0.2', now(), 8, 8192, 8, 8192)" >/dev/null
vm1=11111111-1111-1111-1111-111111111111
vm2=22222222-2222-2222-2222-222222222222
sql "INSERT INTO instances (uuid, name, project, host, vcpus, memory_mb, disk_gb) VALUES
     ('$vm1', 'vm1', 'admin', 'h1', 1, 256, 1), ('$vm2', 'web-2', 'admin', 'h2', 2, 512, 2)" >/dev/null
sql "UPDATE instances SET task_state = 'migrating' WHERE uuid = '$vm2'" >/dev/null
mid=$(sql "INSERT INTO migrations (request_id, instance_uuid, source_host, dest_host, status, started_at, finished_at)
           VALUES (gen_random_uuid(), '$vm1', 'h1', 'h2', 'completed', now(), now()) RETURNING id" | head -n 1)
run=$(sql "INSERT INTO migrations (request_id, instance_uuid, source_host, dest_host, status, started_at, memory_total_bytes, owner, lease_expires_at)
           VALUES (gen_random_uuid(), '$vm2', 'h2', 'h1', 'running', now(), 1048576, 'elsewhere', now() + interval '1 hour') RETURNING id" | head -n 1)
"$bin/ferry-scheduler" --config "$work/ferry.conf" --name nova1 2>"$work/scheduler.log" &
pids+=("$!")
for _ in $(seq 1 150); do
  grep -q "ready: broker connected" "$work/scheduler.log" && grep -q "HTTP API and dashboard on" "$work/scheduler.log" && break
  sleep 0.1
done
grep -q "ready: broker connected" "$work/scheduler.log" || fail "scheduler not ready"
port=$(sed -n 's|.*HTTP API and dashboard on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/scheduler.log" | head -n 1)
[[ -n $port ]] || fail "no HTTP port in the log"
url=http://127.0.0.1:$port
export OS_AUTH_TYPE=token_endpoint OS_ENDPOINT=$url/v2.1 OS_TOKEN=$token
unset OS_CLOUD OS_AUTH_URL OS_USERNAME OS_PASSWORD OS_PROJECT_NAME 2>/dev/null || true
snapshot() {
  sql "SELECT md5(concat_ws('|', (SELECT string_agg(concat_ws(',', name, state, state_reason), ';' ORDER BY name) FROM hosts),
         (SELECT string_agg(i::text, ';' ORDER BY uuid) FROM instances i),
         (SELECT string_agg(m::text, ';' ORDER BY id) FROM migrations m), (SELECT count(*) FROM processed_requests),
         (SELECT count(*) FROM outbox)))"
}
before=$(snapshot)

# ---- versions and microversions
# call METHOD PATH [VERSION] [BODY]: prints the status code; the body in $work/body, headers in $work/headers
call() {
  local args=(-sS -o "$work/body" -D "$work/headers" -w '%{http_code}' -X "$1" -H "X-Auth-Token: $token")
  [[ -n ${3:-} ]] && args+=(-H "X-OpenStack-Nova-API-Version: $3")
  [[ -n ${4:-} ]] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
  curl "${args[@]}" "$url$2"
}
expect() { # CODE FAULT METHOD PATH [VERSION] [BODY]
  local want=$1 fault=$2 got
  shift 2
  got=$(call "$@")
  [[ $got == "$want" ]] || fail "$1 $2 (version ${3:-none}): $got, expected $want: $(head -c 300 "$work/body")"
  if [[ -n $fault ]]; then
    python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); k=list(b)[0]; assert k==sys.argv[2] and b[k]["code"]==int(sys.argv[3]) and b[k]["message"], b' \
      "$work/body" "$fault" "$want" || fail "$1 $2: not a Nova $fault fault: $(head -c 300 "$work/body")"
  fi
  grep -qi '^x-compute-request-id: req-' "$work/headers" || fail "$1 $2: no x-compute-request-id"
  grep -qi '^X-OpenStack-Nova-API-Version: 2\.' "$work/headers" || fail "$1 $2: no X-OpenStack-Nova-API-Version"
  ok "$1 $2 ${3:+(2.x=$3) }-> $want $fault"
}
[[ $(curl -sS -H 'Accept: application/json' "$url/" | python3 -c 'import json,sys; v=json.load(sys.stdin)["versions"][0]; print(v["id"], v["min_version"], v["version"])') == "v2.1 2.1 2.93" ]] ||
  fail "GET / (JSON): not Nova's version document"
ok "GET / with Accept: application/json is Nova's version list (2.1..2.93)"
curl -sS -o "$work/page" "$url/" && grep -qi '<html' "$work/page" || fail "GET / from a browser is no longer the dashboard"
expect 200 "" GET /v2.1
expect 200 "" GET /v2.1/servers latest
grep -qi '^OpenStack-API-Version: compute 2.93' "$work/headers" || fail "latest is not answered as 2.93"
[[ $(curl -sS -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $token" -H 'OpenStack-API-Version: compute 2.60' -D "$work/headers" "$url/v2.1/servers") == 200 ]] &&
  grep -qi '^X-OpenStack-Nova-API-Version: 2.60' "$work/headers" || fail "OpenStack-API-Version: compute 2.60 not honoured"
ok "OpenStack-API-Version: compute 2.60 honoured"
expect 406 computeFault GET /v2.1/servers 2.999
expect 406 computeFault GET /v2.1/servers 3.1
expect 400 badRequest GET /v2.1/servers 'two.five'
expect 400 badRequest GET /v2.1/servers '2.'
[[ $(curl -sS -o "$work/body" -w '%{http_code}' -H 'X-Auth-Token: wrong' "$url/v2.1/servers") == 401 ]] &&
  grep -q '"unauthorized"' "$work/body" || fail "a wrong token is not 401 unauthorized"
ok "a wrong token -> 401 unauthorized"

# ---- servers
expect 404 itemNotFound GET /v2.1/servers/42
expect 404 itemNotFound GET /v2.1/servers/vm1
expect 404 itemNotFound GET /v2.1/servers/33333333-3333-3333-3333-333333333333
expect 200 "" GET "/v2.1/servers/detail?name=%5Eweb&all_tenants=1"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["servers"]; assert [x["name"] for x in s]==["web-2"] and s[0]["status"]=="MIGRATING" and s[0]["OS-EXT-SRV-ATTR:host"]=="h2", s' "$work/body" ||
  fail "name regex filter / MIGRATING status wrong: $(cat "$work/body")"
expect 400 badRequest GET "/v2.1/servers?name=(unclosed"
expect 200 "" GET "/v2.1/servers/$vm2" 2.47
python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["server"]["flavor"]; assert f["vcpus"]==2 and f["ram"]==512 and f["disk"]==2, f' "$work/body" ||
  fail "2.47's embedded flavor is wrong"

# ---- os-migrateLive bodies per microversion (all refused before anything is published)
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.1 '{"os-migrateLive": {"host": null, "block_migration": "auto", "disk_over_commit": false}}'
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.1 '{"os-migrateLive": {"host": null, "block_migration": false}}'
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.25 '{"os-migrateLive": {"host": null, "block_migration": "auto", "disk_over_commit": false}}'
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.25 '{"os-migrateLive": {"host": null, "block_migration": "auto", "force": true}}'
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.68 '{"os-migrateLive": {"host": null, "block_migration": "auto", "force": false}}'
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.30 '{"os-migrateLive": {"host": 7, "block_migration": "auto"}}'
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.30 '{"os-migrateLive": {"block_migration": "auto"}}'
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.30 '{"os-migrateLive": [1]}'
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.30 '{"os-migrateLive": {"host": null, "block_migration": "auto", "x": 1}}'
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.30 '{"reboot": {"type": "HARD"}}'
expect 400 badRequest POST "/v2.1/servers/$vm1/action" 2.30 '{"os-migrateLive": '
expect 404 itemNotFound POST "/v2.1/servers/33333333-3333-3333-3333-333333333333/action" 2.30 '{"os-migrateLive": {"host": null, "block_migration": "auto"}}'
expect 404 itemNotFound POST "/v2.1/servers/42/action" 2.30 '{"os-migrateLive": {"host": null, "block_migration": "auto"}}'

# ---- migrations
expect 200 "" GET "/v2.1/os-migrations?host=h1&status=completed" 2.80
python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["migrations"]; assert len(m)==1 and m[0]["migration_type"]=="live-migration" and m[0]["source_compute"]=="h1" and m[0]["project_id"]=="admin" and m[0]["uuid"], m' "$work/body" ||
  fail "os-migrations filter/fields: $(cat "$work/body")"
expect 200 "" GET "/v2.1/servers/$vm2/migrations" 2.24
python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["migrations"]; assert len(m)==1 and m[0]["status"]=="running" and m[0]["memory_total_bytes"]==1048576, m' "$work/body" ||
  fail "server migrations: $(cat "$work/body")"
expect 200 "" GET "/v2.1/servers/$vm2/migrations/$run" 2.24
expect 404 itemNotFound GET "/v2.1/servers/$vm1/migrations/$run" 2.24
expect 404 itemNotFound DELETE "/v2.1/servers/$vm1/migrations/$run" 2.24
expect 400 badRequest DELETE "/v2.1/servers/$vm1/migrations/$mid" 2.24
expect 404 itemNotFound DELETE "/v2.1/servers/$vm1/migrations/abc" 2.24
expect 400 badRequest POST "/v2.1/servers/$vm2/migrations/$run/action" 2.22 '{"force_complete": 1}'
expect 400 badRequest GET "/v2.1/os-migrations?limit=x" 2.80
expect 400 badRequest GET "/v2.1/os-migrations?changes-since=yesterday" 2.80
expect 400 badRequest GET "/v2.1/os-migrations?marker=nope" 2.80
expect 400 badRequest PUT /v2.1/os-services/disable 2.1 '{"host": "h1", "binary": "nova-scheduler"}'
expect 404 itemNotFound GET /v2.1/flavors/detail
[[ $(snapshot) == "$before" ]] || fail "a refused request changed the database"
ok "the refusals changed nothing"

# ---- the real clients, read paths
out=$(openstack server list -f value -c Name -c Status 2>&1) || fail "openstack server list: $out"
grep -qx 'vm1 ACTIVE' <<<"$out" && grep -qx 'web-2 MIGRATING' <<<"$out" || fail "openstack server list: $out"
ok "openstack server list"
out=$(openstack server show vm1 -f value -c OS-EXT-SRV-ATTR:host 2>&1) || fail "openstack server show vm1: $out"
[[ $out == h1 ]] || fail "openstack server show vm1: $out"
out=$(openstack --os-compute-api-version 2.47 server show web-2 -f json 2>&1) || fail "openstack server show (2.47): $out"
ok "openstack server show (by name; 2.1 and 2.47)"
out=$(openstack server list --host h2 --all-projects -f value -c Name 2>&1) || fail "openstack server list --host: $out"
[[ $out == web-2 ]] || fail "openstack server list --host h2: $out"
ok "openstack server list --host"
out=$(openstack --os-compute-api-version 2.59 server migration list -f value -c Status -c 'Source Node' 2>&1) || fail "openstack server migration list: $out"
grep -q 'running' <<<"$out" && grep -q completed <<<"$out" || fail "openstack server migration list: $out"
ok "openstack server migration list"
out=$(openstack --os-compute-api-version 2.24 server migration show web-2 "$run" -f value -c Status 2>&1) || fail "openstack server migration show: $out"
[[ $out == running ]] || fail "openstack server migration show: $out"
ok "openstack server migration show"
out=$(openstack hypervisor list -f value -c 'Hypervisor Hostname' 2>&1) || fail "openstack hypervisor list: $out"
[[ $(echo $out) == "h1 h2" ]] || fail "openstack hypervisor list: $out"
ok "openstack hypervisor list"
out=$(openstack hypervisor show h2 -f value -c hypervisor_hostname -c service_host 2>&1) || fail "openstack hypervisor show h2: $out"
[[ $(echo $out) == "h2 h2" ]] || fail "openstack hypervisor show h2: $out"
out=$(openstack --os-compute-api-version 2.60 hypervisor show h1 -f value -c hypervisor_hostname 2>&1) || fail "openstack hypervisor show h1 (2.60): $out"
[[ $out == h1 ]] || fail "openstack hypervisor show h1 (2.60): $out"
ok "openstack hypervisor show (2.1 and 2.60)"
out=$(openstack compute service list --service nova-compute -f value -c Host -c Status 2>&1) || fail "openstack compute service list: $out"
grep -qx 'h1 enabled' <<<"$out" || fail "openstack compute service list: $out"
ok "openstack compute service list"
out=$(openstack --os-compute-api-version 2.53 compute service set --disable --disable-reason 'nova test' h1 nova-compute 2>&1) ||
  fail "openstack compute service set --disable: $out"
[[ $(sql "SELECT state || ':' || state_reason FROM hosts WHERE name = 'h1'") == 'disabled:nova test' ]] || fail "h1 is not disabled in the database"
ok "openstack compute service set --disable (2.53) disables the host in ferry"
out=$(openstack compute service set --enable h1 nova-compute 2>&1) || fail "openstack compute service set --enable (2.1): $out"
[[ $(sql "SELECT state FROM hosts WHERE name = 'h1'") == enabled ]] || fail "h1 is not enabled again"
ok "openstack compute service set --enable (2.1 form)"
# novaclient has no token_endpoint: keystoneauth's admin_token is the same (endpoint + token);
# its shell insists on a project and an auth URL it then does not use
nova() { OS_AUTH_TYPE=admin_token OS_PROJECT_ID=admin OS_AUTH_URL=$url/v2.1 command nova "$@"; }
out=$(nova list --fields name,status 2>&1) || fail "nova list: $out"
grep -q 'web-2 *| MIGRATING' <<<"$out" || fail "nova list: $out"
ok "nova list"
out=$(nova --os-compute-api-version 2.30 hypervisor-servers h2 2>&1) || fail "nova hypervisor-servers (what host-evacuate-live lists): $out"
grep -q "$vm2" <<<"$out" || fail "nova hypervisor-servers h2: $out"
out=$(nova --os-compute-api-version 2.60 hypervisor-servers h2 2>&1) || fail "nova hypervisor-servers (2.53+ form): $out"
grep -q "$vm2" <<<"$out" || fail "nova hypervisor-servers h2 (2.60): $out"
ok "nova hypervisor-servers (both forms host-evacuate-live uses)"
out=$(nova --os-compute-api-version 2.60 migration-list --host h1 2>&1) || fail "nova migration-list: $out"
grep -q 'completed' <<<"$out" || fail "nova migration-list: $out"
ok "nova migration-list"
grep -q 'migration=\|instance=' "$work/scheduler.log" || true
kill -TERM "${pids[0]}"
wait "${pids[0]}" || fail "the scheduler did not stop cleanly"
pids=()
ok "all Nova API checks passed"
