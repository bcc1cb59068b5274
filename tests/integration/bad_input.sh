#!/usr/bin/env bash
# Bad input, on the harness's real broker and database: a corpus of malformed migration
# requests published with amqp-publish (not JSON, wrong types, unknown version, missing
# instance, a huge body, deep nesting, invalid UTF-8, SQL- and shell-looking names), malformed
# HTTP calls, and malformed agent RPCs. Each ends in ferry.dead or as a refused request with
# its reason; the HTTP API answers 4xx (never 5xx) with a JSON reason; the scheduler and the
# agent keep running; the database holds nothing but the refusals.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
db=ferry_bad_$$
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  "$FERRY_TEST_HARNESS" rabbitmqctl delete_user ferry-agent-c1.example.com >/dev/null 2>&1 || true
  amqp-delete-queue --url "$FERRY_TEST_AMQP_URL" -q ferry.compute.c1.example.com >/dev/null 2>&1 || true
  [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
port=$((FERRY_TEST_PG_PORT + 40))
token=t0ken-$$
printf '[amqp]\nheartbeat_s = 5\n[http]\nport = %d\ntokens = %s\n[log]\nlevel = info\n' "$port" "$token" >"$work/ferry.conf"
# the agent's trusted directories, in the work dir (hostile paths are aimed next to them)
mkdir -p "$work/instances" "$work/local" "$work/outside"
printf '[agent]\ninstances_path = %s\nlocal_disks_path = %s\nstate_dir = %s\n' "$work/instances" "$work/local" \
  "$work/agent-state" >>"$work/ferry.conf"
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null
sql "INSERT INTO hosts (name, arch, last_heartbeat, vcpus, memory_mb, capacity_vcpus, capacity_memory_mb) VALUES
     ('h1', 'x86_64', now(), 8, 8192, 8, 8192), ('h2', 'x86_64', now(), 8, 8192, 8, 8192)" >/dev/null
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb) VALUES (gen_random_uuid(), 'vm1', 'h1', 1, 256)" >/dev/null
"$bin/ferry-scheduler" --config "$work/ferry.conf" --name bad1 2>"$work/scheduler.log" &
spid=$!
pids+=("$spid")
"$bin/ferry-agent" --config "$work/ferry.conf" --host badagent 2>"$work/agent.log" &
apid=$!
pids+=("$apid")
for _ in $(seq 1 150); do
  grep -q "ready: broker connected" "$work/scheduler.log" && grep -q "agent ready" "$work/agent.log" && break
  sleep 0.1
done
grep -q "ready: broker connected" "$work/scheduler.log" || fail "scheduler not ready"
snapshot() { sql "SELECT (SELECT count(*) FROM hosts) || ' ' || (SELECT count(*) FROM instances) || ' ' ||
                  (SELECT count(*) FROM migrations) || ' ' || (SELECT count(*) FROM allocations) || ' ' ||
                  (SELECT string_agg(name || ':' || used_memory_mb, ',' ORDER BY name) FROM hosts)"; }
before=$(snapshot)
# drain ferry.dead of anything older
while amqp-get --url "$FERRY_AMQP_URL" -q ferry.dead >/dev/null 2>&1; do :; done

# ---- the corpus -------------------------------------------------------------------------------------
corpus=$work/corpus
mkdir -p "$corpus"
id() { cat /proc/sys/kernel/random/uuid; }
printf 'not json at all {' >"$corpus/01-not-json"
printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":42}}' "$(id)" >"$corpus/02-instance-number"
printf '{"v":9,"type":"migration.request","id":"%s","body":{"instance":"vm1"}}' "$(id)" >"$corpus/03-unknown-version"
printf '{"v":1,"type":"migration.request","id":"%s","body":{}}' "$(id)" >"$corpus/04-missing-instance"
printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"vm1","os-migrateLive":{"host":null,"post_copy":"yes"}}}' "$(id)" >"$corpus/05-mistyped-flag"
printf '{"v":1,"type":"migration.request","id":"not-a-uuid","body":{"instance":"vm1"}}' >"$corpus/06-bad-id"
{ printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"' "$(id)"; head -c 3000000 /dev/zero | tr '\0' 'a'; printf '"}}'; } >"$corpus/07-huge"
{ head -c 200000 /dev/zero | tr '\0' '['; head -c 200000 /dev/zero | tr '\0' ']'; } >"$corpus/08-deep-nesting"
printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"vm\xff\xfe1"}}' "$(id)" >"$corpus/09-invalid-utf8"
printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"vm1","os-migrateLive":{"host":null,"block_migration":false,"disk_over_commit":false,"post_copy":false},"options":{"bandwidth_mib_s":-5}}}' "$(id)" >"$corpus/10-out-of-range"
printf '{"v":1,"type":"migration.frobnicate","id":"%s","body":{}}' "$(id)" >"$corpus/11-unknown-type"
printf '{"v":1,"type":"migration.abort","id":"%s","body":{"migration":"seven"}}' "$(id)" >"$corpus/12-abort-mistyped"
printf '' >"$corpus/13-empty"
# well-formed, hostile names: refused as unknown instances, nothing executed, nothing changed
sqlid=$(id) shid=$(id)
printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"x'"'"'; DROP TABLE hosts; --","os-migrateLive":{"host":null,"block_migration":false,"disk_over_commit":false,"post_copy":false}}}' "$sqlid" >"$corpus/20-sql-name"
printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"$(touch %s/pwned) `touch %s/pwned2`","os-migrateLive":{"host":null,"block_migration":false,"disk_over_commit":false,"post_copy":false}}}' "$shid" "$work" "$work" >"$corpus/21-shell-name"
dead_expected=0
for f in "$corpus"/*; do
  amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json <"$f" || fail "publish $f"
  [[ $(basename "$f") == 2* ]] || dead_expected=$((dead_expected + 1))
done
ok "published $(ls "$corpus" | wc -l) bad requests"

# each malformed one is in ferry.dead; the hostile names are refused requests with a reason
for _ in $(seq 1 100); do
  [[ $(grep -c "request refused: \|refused: no instance" "$work/scheduler.log") -ge $((dead_expected + 2)) ]] && break
  sleep 0.2
done
dead=0
while amqp-get --url "$FERRY_AMQP_URL" -q ferry.dead >"$work/dead.$dead" 2>/dev/null; do dead=$((dead + 1)); done
[[ $dead == "$dead_expected" ]] || fail "$dead messages in ferry.dead, wanted $dead_expected: $(head -c 100 "$work"/dead.* | tr -cd '[:print:]\n' | head -c 3000)"
for why in "invalid JSON" "body.instance: expected string" "unsupported message version 9" "body.instance: missing" \
  "body.os-migrateLive.post_copy: expected boolean" "body.options.bandwidth_mib_s"; do
  grep -q "request refused: .*$why" "$work/scheduler.log" || fail "no refusal naming '$why'"
done
[[ $(sql "SELECT count(*) FROM processed_requests WHERE outcome = 'refused' AND reason LIKE 'no instance %'") == 2 ]] ||
  fail "hostile names not refused: $(sql "SELECT request_id, outcome, reason FROM processed_requests")"
[[ $(sql "SELECT reason FROM processed_requests WHERE request_id = '$sqlid'") == "no instance x'; DROP TABLE hosts; --" ]] ||
  fail "the SQL-looking name: $(sql "SELECT reason FROM processed_requests WHERE request_id = '$sqlid'")"
[[ ! -e $work/pwned && ! -e $work/pwned2 ]] || fail "a shell-looking name was executed"
[[ $(snapshot) == "$before" ]] || fail "the database changed: $before -> $(snapshot)"
kill -0 "$spid" || fail "the scheduler died"
ok "$dead_expected malformed requests dead-lettered with their reasons; hostile names refused; database untouched"

# ---- the HTTP API: 4xx with a JSON reason, never 5xx ------------------------------------------------------
url=http://127.0.0.1:$port
hcode() { curl -sS -o "$work/body" -w '%{http_code}' "$@"; }
T=(-H "X-Auth-Token: $token")
n=0
check_4xx() { # expected-code curl-args...
  local want=$1 got
  shift
  got=$(hcode "$@") || fail "curl $*"
  [[ $got == "$want" ]] || fail "HTTP $* answered $got, wanted $want: $(head -c 300 "$work/body")"
  jq -e '.error.message | length > 0' "$work/body" >/dev/null || fail "HTTP $* gave no JSON reason: $(head -c 300 "$work/body")"
  n=$((n + 1))
}
check_4xx 400 "${T[@]}" -X POST "$url/v2/t/servers/vm1/action" --data-binary @"$corpus/01-not-json"
check_4xx 400 "${T[@]}" -X POST "$url/v2/t/servers/vm1/action" -d '{"os-migrateLive":{"host":5}}'
check_4xx 400 "${T[@]}" -X POST "$url/v2/t/servers/vm1/action" -d '{"os-migrateLive":[]}'
{ head -c 30000 /dev/zero | tr '\0' '['; head -c 30000 /dev/zero | tr '\0' ']'; } >"$work/nest-60k"
check_4xx 400 "${T[@]}" -X POST "$url/v2/t/servers/vm1/action" --data-binary @"$work/nest-60k"
check_4xx 413 "${T[@]}" -X POST "$url/v2/t/servers/vm1/action" --data-binary @"$corpus/08-deep-nesting"
check_4xx 400 "${T[@]}" -X POST "$url/v2/t/servers/vm1/action" --data-binary $'{"os-migrateLive":{"host":"h\xff\xfe2"}}'
check_4xx 400 "${T[@]}" -X POST "$url/v2/t/servers/vm1/action" -d ''
check_4xx 413 "${T[@]}" -X POST "$url/v2/t/servers/vm1/action" --data-binary @"$corpus/07-huge"
check_4xx 404 "${T[@]}" -X POST "$url/v2/t/servers/x%27%3B%20DROP%20TABLE%20hosts%3B--/action" -d '{"os-migrateLive":{"host":null}}'
check_4xx 404 "${T[@]}" -X POST "$url/v2/t/servers/%24%28touch%20pwned%29/action" -d '{"os-migrateLive":{"host":null}}'
check_4xx 404 "${T[@]}" "$url/../../etc/passwd" --path-as-is
check_4xx 404 "${T[@]}" "$url/api/migrations/-1"
check_4xx 404 "${T[@]}" "$url/api/migrations/99999999999999999999999"
check_4xx 400 "${T[@]}" "$url/api/hosts/%00" # a NUL byte in a path: 400 with the reason (issue 13)
check_4xx 405 "${T[@]}" -X DELETE "$url/api/hosts"
check_4xx 401 -X POST "$url/v2/t/servers/vm1/action" -d '{}'
check_4xx 401 -H "X-Auth-Token: ' OR 1=1 --" "$url/api/hosts"
# a junk query string: 400 with the reason (issue 13; it was ignored, answered 200)
check_4xx 400 "${T[@]}" "$url/api/migrations?limit=abc&status=%27"
[[ ! -e $work/pwned && ! -e pwned ]] || fail "a shell-looking server name was executed"
[[ $(snapshot) == "$before" ]] || fail "the database changed through HTTP: $before -> $(snapshot)"
kill -0 "$spid" || fail "the scheduler died"
ok "HTTP: $n malformed calls answered 4xx with a JSON reason; junk queries refused; database untouched"

# ---- agent RPCs ---------------------------------------------------------------------------------------------
arpc() { "$bin/ferryctl" --timeout 5000 rpc badagent "$@" 2>&1; }
st=0; out=$(arpc live_migration '{"migration":"seven","instance":"x"}') || st=$?
[[ $st == 1 && $out == *"body.migration"* ]] || fail "agent, mistyped migration: $st $out"
st=0; out=$(arpc live_migration '{"migration":3,"instance":"$(reboot)"}') || st=$?
[[ $st == 1 && $out == *"body.instance: not a UUID"* ]] || fail "agent, shell-looking instance: $st $out"
st=0; out=$(arpc frobnicate '{}') || st=$?
[[ $st == 1 && $out == *"unknown method"* ]] || fail "agent, unknown method: $st $out"
for f in 01-not-json 08-deep-nesting 09-invalid-utf8 13-empty; do
  amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r compute.badagent <"$corpus/$f" || fail "publish to the agent"
done
for _ in $(seq 1 50); do [[ $(grep -c "malformed RPC request" "$work/agent.log") -ge 4 ]] && break; sleep 0.1; done
[[ $(grep -c "malformed RPC request" "$work/agent.log") -ge 4 ]] || fail "the agent did not report the malformed requests"
out=$("$bin/ferryctl" --timeout 5000 ping badagent) || fail "the agent stopped answering: $out"
kill -0 "$apid" || fail "the agent died"
ok "agent RPCs: mistyped, hostile and unknown calls answered with an error; garbage dead-lettered; the agent still answers"

# ---- the agent trusts nothing it is sent (issue #13): paths, probe names, addresses, epochs --------------
U=6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
echo secret >"$work/outside/victim"
echo disk >"$work/instances/vm1.qcow2"
ln -s "$work/outside" "$work/instances/linkdir"
ln -s "$work/outside/victim" "$work/instances/linkfile"
tree_before=$(cd "$work" && find instances local outside -printf '%p %y %s\n' | sort)
refused() { # CODE REASON METHOD BODY: the call fails with that code and a reason containing REASON
  local code=$1 why=$2 st=0 out
  out=$(arpc "$3" "$4") || st=$?
  [[ $st == 1 && $out == *"\"code\":\"$code\""* && $out == *"$why"* ]] ||
    fail "agent $3 $4: wanted $code '$why', got $st: $out"
}
disk() { printf '{"migration":41,"instance":"%s","block_migration":true,"disks":[{"path":"%s","format":"qcow2","virtual_size":1048576}]}' "$U" "$1"; }
refused invalid "body.disks[0].path: path /etc/passwd is outside $work/instances or $work/local" pre_live_migration "$(disk /etc/passwd)"
refused invalid "body.disks[0].path: path $work/outside/pwned.qcow2 is outside" pre_live_migration "$(disk "$work/outside/pwned.qcow2")"
refused invalid "body.disks[0].path: path ../x is not absolute" pre_live_migration "$(disk ../x)"
refused invalid "body.disks[0].path: path a/../../x is not absolute" pre_live_migration "$(disk a/../../x)"
refused invalid "has a '..' component" pre_live_migration "$(disk "$work/instances/../outside/pwned.qcow2")"
refused invalid "has a '..' component" pre_live_migration "$(disk "$work/local/a/../../outside/pwned.qcow2")"
refused invalid "$work/instances/linkdir is a symlink: a path may not go through a symlink" pre_live_migration \
  "$(disk "$work/instances/linkdir/pwned.qcow2")"
refused invalid "$work/instances/linkfile is a symlink: refused" pre_live_migration "$(disk "$work/instances/linkfile")"
refused invalid "/instances/ok... contains a NUL byte" pre_live_migration "$(disk "$work/instances/ok\\u0000/../../outside/x")"
# one good disk and one hostile: refused whole, the good one not made either
refused invalid "body.disks[1].path" pre_live_migration \
  "{\"migration\":41,\"instance\":\"$U\",\"block_migration\":true,\"disks\":[{\"path\":\"$work/local/good.qcow2\",\"format\":\"qcow2\",\"virtual_size\":1048576},{\"path\":\"$work/instances/linkdir/x.qcow2\",\"format\":\"qcow2\",\"virtual_size\":1048576}]}"
probe() { printf '{"migration":41,"instance":"%s","domain_xml":"<domain/>","memory_mb":64,"block_migration":true,"shared_probe":"%s"}' "$U" "$1"; }
refused invalid "body.shared_probe: probe name vm1.qcow2 is not ferry's probe of migration 41" check_destination "$(probe vm1.qcow2)"
refused invalid "body.shared_probe: probe name ../outside/victim is not ferry's probe" check_destination "$(probe ../outside/victim)"
refused invalid "body.shared_probe: probe name linkfile is not ferry's probe" check_destination "$(probe linkfile)"
refused invalid "body.shared_probe: probe name .ferry-probe-40-0a1b2c3d is not ferry's probe of migration 41" check_destination \
  "$(probe .ferry-probe-40-0a1b2c3d)"
refused invalid "body.domain_xml: interface 0: bridge name '../../../etc'" check_destination \
  "{\"migration\":41,\"instance\":\"$U\",\"domain_xml\":\"<domain><interface type='bridge'><source bridge='../../../etc'/></interface></domain>\",\"memory_mb\":64}"
live() { printf '{"migration":41,"instance":"%s","dest":"%s","dest_address":"%s"}' "$U" "$1" "$2"; }
refused invalid "body.dest_address: address 'x/system?command=id&' is not a host name, an IPv4 address or a bracketed IPv6 address" \
  live_migration "$(live compute2 'x/system?command=id&')"
refused invalid "body.dest_address: address 'root@compute2'" live_migration "$(live compute2 root@compute2)"
refused invalid "body.dest_address: address 'compute2:0' has a port that is not a number in 1..65535" live_migration "$(live compute2 compute2:0)"
refused invalid "body.dest_address: address 'compute2:65536' has a port" live_migration "$(live compute2 compute2:65536)"
refused invalid "body.dest_address: address '169.254.77.12 --x' is not" live_migration "$(live compute2 '169.254.77.12 --x')"
refused invalid "body.dest: host name 'compute2/../x' has a byte that is not a letter" live_migration "$(live compute2/../x 10.0.0.2)"
[[ $(cd "$work" && find instances local outside -printf '%p %y %s\n' | sort) == "$tree_before" ]] ||
  fail "a refused call changed the files: $(cd "$work" && find instances local outside -printf '%p %y %s\n' | sort)"
grep -q 'invalid pre_live_migration request: .*migration=41\|migration=41.*invalid pre_live_migration request: ' "$work/agent.log" ||
  fail "the refusals are not logged with migration=41"
ok "agent: hostile disk paths, symlinks, probe names, interface names and destination addresses refused with their reasons; no file made or removed"
# a disk where it may be: made (qemu-img on the file the agent created), named in the reply
out=$(arpc pre_live_migration "$(disk "$work/local/sub/blk1.qcow2")") || fail "a confined disk was refused: $out"
[[ $out == *'"created":['*'blk1.qcow2'* ]] || fail "pre_live_migration: $out"
[[ $(qemu-img info --output=json "$work/local/sub/blk1.qcow2" | jq -r '.format + " " + (."virtual-size"|tostring)') == "qcow2 1048576" ]] ||
  fail "the image made: $(qemu-img info "$work/local/sub/blk1.qcow2" 2>&1)"
ok "agent: a disk inside the local disks path is made by pre_live_migration"

# fencing: the highest epoch seen per migration, kept across a restart of the agent
ep() { printf '{"migration":42,"instance":"%s","epoch":%s,"disks":[]}' "$U" "$1"; }
out=$(arpc pre_live_migration '{"migration":42,"instance":"'$U'","disks":[]}') || fail "no epoch, nothing seen: $out"
out=$(arpc pre_live_migration "$(ep 5)") || fail "epoch 5: $out"
out=$(arpc pre_live_migration "$(ep 5)") || fail "epoch 5 again: $out"
refused stale_epoch "stale epoch 4 for migration 42: epoch 5 was already seen here" pre_live_migration "$(ep 4)"
refused stale_epoch "stale epoch 0 for migration 42: epoch 5 was already seen here" pre_live_migration '{"migration":42,"instance":"'$U'","disks":[]}'
refused stale_epoch "stale epoch 4 for migration 42" rollback "$(ep 4)"
refused invalid "body.epoch: -1 is out of range" pre_live_migration "$(ep -1)"
refused invalid "body.epoch: expected int" pre_live_migration "$(ep '"6"')"
kill -TERM "$apid"
wait "$apid" 2>/dev/null || true
"$bin/ferry-agent" --config "$work/ferry.conf" --host badagent 2>>"$work/agent.log" &
apid=$!
pids+=("$apid")
for _ in $(seq 1 100); do [[ $(grep -c "agent ready" "$work/agent.log") -ge 2 ]] && break; sleep 0.1; done
refused stale_epoch "stale epoch 4 for migration 42: epoch 5 was already seen here" pre_live_migration "$(ep 4)"
out=$(arpc pre_live_migration "$(ep 6)") || fail "epoch 6 after the restart: $out"
refused stale_epoch "stale epoch 5 for migration 42: epoch 6 was already seen here" pre_live_migration "$(ep 5)"
out=$(arpc pre_live_migration '{"migration":43,"instance":"'$U'","disks":[]}') || fail "another migration, no epoch: $out"
# the same id for another instance (a database restored from a backup): another migration, not fenced
out=$(arpc pre_live_migration '{"migration":42,"instance":"11111111-2222-3333-4444-555555555555","epoch":1,"disks":[]}') ||
  fail "a reused migration id for another instance: $out"
grep -q 'pre_live_migration refused: stale epoch 4 for migration 42' "$work/agent.log" || fail "the stale epoch is not logged"
out=$("$bin/ferryctl" --timeout 5000 ping badagent) || fail "the agent stopped answering: $out"
kill -0 "$apid" || fail "the agent died"
ok "agent: a lower epoch than seen is refused (stale_epoch), also after a restart; no epoch counts as 0; the agent still answers"

# a host name with dots (a fully qualified name) arrives whole from its heartbeat's routing key,
# sent by that host's own agent user (the scheduler believes a heartbeat only from it)
RABBITMQCTL="$FERRY_TEST_HARNESS rabbitmqctl" "$top/deploy/rabbitmq/add-agent-user" c1.example.com "c1-$$" >/dev/null ||
  fail "add-agent-user c1.example.com"
"$top/tests/harness/amqp-send" "amqp://ferry-agent-c1.example.com:c1-$$@127.0.0.1:$FERRY_TEST_AMQP_PORT" ferry.events host.c1.example.com.heartbeat \
  "{\"v\":1,\"type\":\"host.c1.example.com.heartbeat\",\"id\":\"$(id)\",\"body\":{\"host\":\"c1.example.com\",\"origin\":\"agent\",\"vcpus\":4,\"memory_mb\":4096,\"disk_gb\":10,\"arch\":\"x86_64\",\"hypervisor\":\"qemu\",\"domains\":[]}}" >/dev/null ||
  fail "publish a heartbeat"
for _ in $(seq 1 50); do [[ $(sql "SELECT count(*) FROM hosts WHERE name = 'c1.example.com'") == 1 ]] && break; sleep 0.1; done
[[ $(sql "SELECT name || ' ' || vcpus FROM hosts WHERE name LIKE 'c1%'") == "c1.example.com 4" ]] ||
  fail "the dotted host: $(sql "SELECT name FROM hosts")"
ok "a heartbeat from c1.example.com records host c1.example.com"
echo "all checks passed"
