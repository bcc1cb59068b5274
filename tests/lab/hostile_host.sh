#!/usr/bin/env bash
# A compromised compute host, on the lab: a script holding compute1's real broker user
# (ferry-agent-compute1, made by deploy/rabbitmq/add-agent-user, as production does) tries
# what an attacker on that hypervisor would: send migration requests and operator calls, call
# other agents, speak for other hosts and for migrations it has no part in, claim another
# host's guest, claim huge capacities, invent hosts, replay old heartbeats, forge the
# scheduler's user. Every attempt is refused — by the broker or by ferry, with the reason in
# the scheduler's log — and changes nothing: checked in libvirt (virsh on every host), in the
# instances path, in the database and in the scheduler's health. docs/SECURITY.md names this
# test for each of these boundaries.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --hosts 3 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
logs=$FERRY_LAB_LOG_DIR
send=$top/tests/harness/amqp-send
rogue=$("$LAB" amqp-url ferry-agent-compute1)
slog=$logs/scheduler.log

# ---- the scene: vm2 on compute2, moved by a real migration to compute3 (compute1 has no part) -----
"$LAB" guest compute1 vm1 >/dev/null
"$LAB" guest compute2 vm2 >/dev/null
wait_sql 30 "SELECT string_agg(name || '@' || host || ':' || vm_state, ' ' ORDER BY name) FROM instances" \
  "vm1@compute1:running vm2@compute2:running" ||
  fail "guests not discovered"
wait_sql 10 "SELECT count(*) FROM allocations" 2 || fail "no allocations"
out=$("$CTL" --timeout 60000 migrate vm2 compute3 --wait 2>&1) || fail "the real migration of vm2: $out"
mig=$(sql "SELECT id FROM migrations WHERE status = 'completed'")
[[ -n $mig && $(where vm2) == "compute3 running yes" ]] || fail "vm2 did not move to compute3: $out"
wait_sql 10 "SELECT host FROM instances WHERE name = 'vm2'" compute3 || fail "vm2's row"
uuid2=$(sql "SELECT uuid FROM instances WHERE name = 'vm2'")
boot0=$(sql "SELECT heartbeat_boot FROM hosts WHERE name = 'compute1'")
[[ -n $boot0 ]] || fail "compute1's agent sends no numbered heartbeats"
host0=$(sql "SELECT vcpus || ':' || memory_mb || ':' || disk_gb FROM hosts WHERE name = 'compute1'")
ok "scene: vm1 on compute1, vm2 moved compute2 -> compute3 by migration $mig"

# what must not change: guests (virsh), files in the instances path, the database
guests() { local h; for h in $FERRY_LAB_HOSTS; do echo "$h: $("$LAB" virsh "$h" list --all --name 2>/dev/null | sort | xargs)"; done; }
files() { (cd "$FERRY_LAB_INSTANCES" && find . -printf '%p %s\n' | sort); }
dbstate() {
  sql "SELECT string_agg(name || '@' || coalesce(host, '-') || ':' || coalesce(task_state, '-'), ' ' ORDER BY name) FROM instances"
  sql "SELECT string_agg(consumer_type || '@' || host || ':' || memory_mb, ' ' ORDER BY consumer_id, host) FROM allocations"
  sql "SELECT string_agg(id || ':' || status || ':' || postcopy_active, ' ' ORDER BY id) FROM migrations"
  sql "SELECT count(*) FROM migration_events"
  sql "SELECT string_agg(name || ':' || vcpus || ':' || memory_mb || ':' || disk_gb, ' ' ORDER BY name) FROM hosts"
}
g0=$(guests) f0=$(files) d0=$(dbstate)

# refused by the broker: prints the broker's answer, fails the test if it was taken
broker_refuses() { # WHAT EXCHANGE KEY BODY
  local what=$1 out st=0
  shift
  out=$("$send" "$rogue" "$@" 2>&1) || st=$?
  [[ $st == 1 && $out == *ACCESS_REFUSED* ]] || fail "$what: the broker took it (exit $st): $out"
  echo "    $what: ${out#refused: }" | cut -c1-200
}
request() { printf '{"v":1,"type":"migration.request","id":"%s","body":{"instance":"vm2","os-migrateLive":{"host":"compute1"}}}' "$(newid)"; }
ping_body() { printf '{"v":1,"type":"rpc.ping","id":"%s","body":{}}' "$(newid)"; }
heartbeat() { # HOST BODY-FIELDS: a heartbeat envelope
  printf '{"v":1,"type":"host.%s.heartbeat","id":"%s","body":{"host":"%s","origin":"agent",%s}}' "$1" "$(newid)" "$1" "$2"
}
# numbered as an agent process of its own would (a compromised host can say any boot id)
rboot=$(newid)
numbered() { printf '"boot":"%s","seq":%s' "$rboot" "$(date +%s%N)"; }
hb_fields() { printf '"address":"%s","vcpus":2,"memory_mb":2048,"disk_gb":10,"arch":"x86_64","hypervisor":"QEMU",%s' "$(host_addr compute1)" "$(numbered)"; }

# ---- 1. the broker: requests, other agents, other hosts' keys, the default exchange ------------
echo "refused by the broker:"
broker_refuses "a request on the default exchange (to ferry.scheduler)" "" ferry.scheduler "$(request)"
broker_refuses "a request on the exchange ferry" ferry scheduler "$(request)"
broker_refuses "a read RPC to the schedulers" ferry scheduler.rpc '{"v":1,"type":"rpc.host_list","id":"'"$(newid)"'","body":{}}'
broker_refuses "rpc.ping to compute2 on the default exchange" "" ferry.compute.compute2 "$(ping_body)"
broker_refuses "rpc.ping to compute2 on the exchange ferry" ferry compute.compute2 "$(ping_body)"
broker_refuses "a heartbeat of compute2" ferry.events host.compute2.heartbeat "$(heartbeat compute2 "$(hb_fields)")"
broker_refuses "a phantom host compute1.x" ferry.events host.compute1.x.heartbeat "$(heartbeat compute1.x "$(hb_fields)")"
broker_refuses "another host state key" ferry.events host.compute1.down '{}'
broker_refuses "a dead letter on ferry.dead's queue directly" "" ferry.dead '{}'
st=0; out=$("$send" "$rogue" ferry.events host.compute1.heartbeat '{}' --user-id ferry-scheduler 2>&1) || st=$?
[[ $st == 1 && $out == *PRECONDITION_FAILED* ]] || fail "a message claiming the schedulers' user_id was taken: $out"
echo "    the schedulers' user_id on its own message: ${out#refused: }" | cut -c1-200
for q in ferry.scheduler ferry.compute.compute2 ferry.dead; do
  st=0; out=$(amqp-get --url "$rogue" -q "$q" 2>&1) || st=$?
  [[ $st != 0 && $out == *ACCESS_REFUSED* ]] || fail "compute1's user read $q: $out"
done
echo "    consuming ferry.scheduler, ferry.compute.compute2, ferry.dead: ACCESS_REFUSED"
ok "the broker refused every request, call and key not compute1's own"

# ---- 2. ferry: what the broker lets through is a claim, checked --------------------------------
echo "refused or ignored by the scheduler:"
# compute1 claims vm2 (compute3's) as running on compute1
claim=$(heartbeat compute1 "$(hb_fields)"',"domains":[{"uuid":"'"$uuid2"'","name":"vm2","vcpus":1,"memory_mb":128,"disk_gb":0,"state":"running"}]')
"$send" "$rogue" ferry.events host.compute1.heartbeat "$claim" >/dev/null || fail "publish the claim"
for _ in $(seq 1 50); do grep -q "reports instance $uuid2 running, but compute3 still lists it: not moved" "$slog" && break; sleep 0.2; done
grep -q "reports instance $uuid2 running, but compute3 still lists it: not moved" "$slog" || fail "the claim on vm2 was not refused"
[[ $(sql "SELECT host FROM instances WHERE uuid = '$uuid2'") == compute3 ]] || fail "a heartbeat moved vm2"
echo "    compute1 claims vm2: $(grep -o "reports instance $uuid2 running, but compute3 still lists it: not moved" "$slog" | head -n 1)"
# 4 PB of memory
big=$(heartbeat compute1 '"address":"'"$(host_addr compute1)"'","vcpus":2,"memory_mb":4294967296000,"disk_gb":10,'"$(numbered)")
"$send" "$rogue" ferry.events host.compute1.heartbeat "$big" >/dev/null || fail "publish 4 PB"
for _ in $(seq 1 50); do grep -q "body.memory_mb: 4294967296000 is outside" "$slog" && break; sleep 0.2; done
grep -q "host=compute1 .*event host.compute1.heartbeat refused: body.memory_mb: 4294967296000 is outside" "$slog" ||
  fail "4 PB of memory was not refused"
echo "    4 PB of memory: $(grep -o 'body.memory_mb: 4294967296000 is outside [0-9.]*' "$slog" | head -n 1)"
# an address that would change the migration URI
uri=$(heartbeat compute1 '"address":"x/system?command=touch /tmp/pwned&","vcpus":2,"memory_mb":2048,'"$(numbered)")
"$send" "$rogue" ferry.events host.compute1.heartbeat "$uri" >/dev/null || fail "publish a URI address"
for _ in $(seq 1 50); do grep -q "body.address: 'x/system?command=" "$slog" && break; sleep 0.2; done
grep -q "refused: body.address: 'x/system?command=touch /tmp/pwned&' is not a host name" "$slog" || fail "a URI-injecting address was not refused"
echo "    an address of x/system?command=...: refused, not a host name"
# an old heartbeat of compute1's own agent process (a replay), once the agent's next one is
# recorded again; and one without numbers
wait_sql 15 "SELECT heartbeat_boot FROM hosts WHERE name = 'compute1'" "$boot0" || fail "the agent's heartbeats are not recorded again"
stale=$(heartbeat compute1 '"address":"'"$(host_addr compute1)"'","vcpus":1,"memory_mb":64,"disk_gb":1,"boot":"'"$boot0"'","seq":1')
"$send" "$rogue" ferry.events host.compute1.heartbeat "$stale" >/dev/null || fail "publish a stale heartbeat"
plain=$(heartbeat compute1 '"address":"'"$(host_addr compute1)"'","vcpus":1,"memory_mb":65,"disk_gb":1')
"$send" "$rogue" ferry.events host.compute1.heartbeat "$plain" >/dev/null || fail "publish an unnumbered heartbeat"
sleep 1
[[ $(sql "SELECT memory_mb FROM hosts WHERE name = 'compute1'") != 6[45] ]] || fail "a replayed or unnumbered heartbeat was recorded"
echo "    a replay of heartbeat 1 of boot $boot0, and an unnumbered one: ignored (seq $(sql "SELECT heartbeat_seq FROM hosts WHERE name = 'compute1'") recorded)"
# events of migration $mig (compute2 -> compute3): post-copy (which would make it un-abortable)
# and a failure, from compute1
for what in postcopy failed; do
  ev=$(printf '{"v":1,"type":"migration.%s.%s","id":"%s","body":{"origin":"agent","host":"compute2","migration":%s,"error":"forged"}}' "$mig" "$what" "$(newid)" "$mig")
  "$send" "$rogue" ferry.events "migration.$mig.$what" "$ev" >/dev/null || fail "publish migration.$mig.$what"
done
for _ in $(seq 1 50); do [[ $(grep -c "event migration.$mig.* refused: user ferry-agent-compute1 (the agent of compute1) may not speak for a migration from compute2 to compute3" "$slog") == 2 ]] && break; sleep 0.2; done
[[ $(grep -c "migration=$mig .*event migration.$mig.* refused: user ferry-agent-compute1 (the agent of compute1) may not speak for a migration from compute2 to compute3" "$slog") == 2 ]] ||
  fail "the forged migration events were not refused: $(grep "migration.$mig" "$slog" | tail -n 3)"
echo "    migration.$mig.postcopy / .failed: may not speak for a migration from compute2 to compute3"
# a request without user_id and a ping, sent as compute1 through the one exchange it may write
# to with a key no queue of ferry's is bound to: nothing arrives anywhere
"$send" "$rogue" ferry.reply ferry.scheduler "$(request)" >/dev/null || fail "publish on ferry.reply"
ok "the scheduler refused each claim with its reason"

# ---- a scheduler replica that lost its lease: its epoch is stale -------------------------------
# (the schedulers' own user: the broker and the sender checks let it through; the epoch fences it)
epoch=$(sql "SELECT epoch FROM migrations WHERE id = $mig")
((epoch >= 1)) || fail "migration $mig has epoch $epoch"
st=0
out=$(FERRY_AMQP_URL=$FERRY_SCHEDULER_AMQP_URL "$CTL" --timeout 20000 rpc compute3 rollback \
  "{\"migration\":$mig,\"instance\":\"$uuid2\",\"epoch\":$((epoch - 1))}" 2>&1) || st=$?
[[ $st == 1 && $out == *"stale epoch $((epoch - 1)) for migration $mig"* ]] ||
  fail "a rollback at a stale epoch on the destination was not refused (exit $st): $out"
[[ $(where vm2) == "compute3 running yes" ]] || fail "vm2 after the stale rollback: $(where vm2)"
echo "    rollback of migration $mig on compute3 at epoch $((epoch - 1)) (the row has $epoch): $(grep -o 'stale epoch[^"]*' <<<"$out" | head -n 1)"
ok "a stale epoch is refused by the agent; vm2 still runs on compute3"

# ---- 3. nothing changed ---------------------------------------------------------------------------
# the real agent's next heartbeat makes compute1's row its own again
wait_sql 15 "SELECT heartbeat_boot || ' ' || vcpus || ':' || memory_mb || ':' || disk_gb FROM hosts WHERE name = 'compute1'" "$boot0 $host0" ||
  fail "compute1's row is not its agent's again"
[[ $(guests) == "$g0" ]] || fail "guests changed: $g0 -> $(guests)"
[[ $(files) == "$f0" ]] || fail "files in the instances path changed"
[[ ! -e /tmp/pwned ]] || fail "a command ran"
d1=$(dbstate)
[[ $d1 == "$d0" ]] || fail "the database changed: $d0 -> $d1"
[[ $(sql "SELECT count(*) FROM hosts WHERE name LIKE 'compute1.%'") == 0 ]] || fail "a phantom host was recorded"
[[ $(sql "SELECT count(*) FROM migrations") == 1 ]] || fail "a migration was made"
curl -fsS "$FERRY_HTTP_URL/healthz" >/dev/null || fail "the scheduler is not healthy"
check_usage
grep -q "level=error" "$slog" && fail "the scheduler logged errors: $(grep level=error "$slog" | head -n 3)"
# and the cluster still works: the victim moves back on an operator's request, followed with
# --wait while compute1 keeps telling ferryctl that this migration failed
next=$((mig + 1))
( while :; do
    "$send" "$rogue" ferry.events "migration.$next.failed" \
      "{\"v\":1,\"type\":\"migration.$next.failed\",\"id\":\"$(newid)\",\"body\":{\"origin\":\"scheduler\",\"migration\":$next,\"status\":\"failed\",\"message\":\"forged\"}}" >/dev/null 2>&1 || true
    sleep 0.2
  done ) &
liar=$!
out=$("$CTL" --timeout 60000 migrate vm2 compute2 --wait 2>&1) || { kill $liar; fail "a legitimate migration after the attack: $out"; }
kill $liar; wait $liar 2>/dev/null || true
[[ $(where vm2) == "compute2 running yes" ]] || fail "vm2 did not move back"
[[ $out == *"ignored a status of migration $next from ferry-agent-compute1: only a scheduler tells a status"* ]] ||
  fail "ferryctl --wait did not say it ignored compute1's statuses: $out"
[[ $out != *forged* ]] || fail "ferryctl --wait believed compute1: $out"
echo "    ferryctl --wait, while compute1 claims the migration failed: $(grep -c 'ignored a status' <<<"$out") statuses ignored, ended: $(tail -n 1 <<<"$out")"
ok "virsh on every host, the instances path and the database are as before; a legitimate migration still works"
echo "all checks passed"
