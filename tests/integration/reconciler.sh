#!/usr/bin/env bash
# The reconciler (issue #17) on the harness's real broker and database, with a real scheduler
# and two compute hosts that exist only through their heartbeats, each published as its own
# per-host broker user (ferry-agent-<host>), as an agent would. Set up deliberately wrong:
# (a) an allocation orphaned by a failed migration and (b) an instance's allocation on a host
# that does not list it are released (ferry_reconciler_repairs_total{kind="allocation_released"});
# (c) an instance whose database host is wrong (its host's heartbeat does not list it, the other
# host's lists it running) gets the host it runs on, its allocation moved with it; (d) a guest
# both heartbeats list running is raised — a warning with instance= and host=, the gauge
# ferry_reconciler_unresolved{kind="two_hosts"} — and left as it is; (e) with one host's
# heartbeat stale nothing about it is repaired; ferry_oldest_active_migration_seconds is there.
set -euo pipefail
db=ferry_rec_$$
source "$(dirname "$0")/lib.sh"
h1=rc1-$$ h2=rc2-$$
new_db $'[amqp]\nheartbeat_s = 5\nrpc_timeout_ms = 1000\n[http]\nport = 0\ntokens = rc-t0ken-reconciler-test\n[log]\nlevel = info\n[scheduler]\nreconcile_interval_s = 1\nreconcile_grace_s = 0\nheartbeat_max_age_s = 60\n'
# the hosts' broker users, as deploy/rabbitmq/add-agent-user makes them (publish on ferry.events)
for h in "$h1" "$h2"; do host_user "$h"; done
dom() { printf '{"uuid":"%s","name":"%s","vcpus":1,"memory_mb":256,"state":"%s"}' "$1" "$2" "$3"; }
A=aaaaaaaa-1111-4000-8000-000000000001 # (c) runs on h2, the database will say h1
B=bbbbbbbb-1111-4000-8000-000000000002 # (d) runs on both
C=cccccccc-1111-4000-8000-000000000003 # (b) an allocation on h1, which does not list it
D=dddddddd-1111-4000-8000-000000000004 # (a) runs on h1, a failed migration's allocation left

start_scheduler rec1

# the hosts register by their heartbeats
heartbeat "$h1" "[$(dom $B vmB running),$(dom $D vmD running)]"
heartbeat "$h2" "[$(dom $A vmA running),$(dom $B vmB running)]"
wait_sql "SELECT count(*) FROM host_domains" 4 || fail "the heartbeats' domains: $(sql "SELECT host, uuid FROM host_domains")"
wait_sql "SELECT host FROM instances WHERE uuid = '$A'" "$h2" || fail "vmA not discovered on $h2"

# the damage, by SQL
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb) VALUES ('$C', 'vmC', '$h1', 2, 512)" >/dev/null
sql "INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, host, vcpus, memory_mb, disk_gb, created_at)
     VALUES ('instance', '$C', '$C', '$h1', 2, 512, 0, now() - interval '1 hour')" >/dev/null
sql "UPDATE hosts SET used_vcpus = used_vcpus + 2, used_memory_mb = used_memory_mb + 512 WHERE name = '$h1'" >/dev/null
mig=$(sql "INSERT INTO migrations (request_id, instance_uuid, source_host, dest_host, status, error, finished_at, created_at)
     VALUES (gen_random_uuid(), '$D', '$h1', '$h2', 'failed', 'test: failed', now() - interval '1 hour', now() - interval '1 hour')
     RETURNING id")
sql "INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, migration_id, host, vcpus, memory_mb, disk_gb, created_at)
     VALUES ('migration', '$mig', '$D', $mig, '$h1', 1, 256, 0, now() - interval '1 hour')" >/dev/null
sql "UPDATE hosts SET used_vcpus = used_vcpus + 1, used_memory_mb = used_memory_mb + 256 WHERE name = '$h1'" >/dev/null
sql "UPDATE instances SET host = '$h1', reported_at = now() + interval '1 day' WHERE uuid = '$A'" >/dev/null
# fresh heartbeats after the damage (what the hosts run has not changed)
heartbeat "$h1" "[$(dom $B vmB running),$(dom $D vmD running)]"
heartbeat "$h2" "[$(dom $A vmA running),$(dom $B vmB running)]"

# (a), (b): released, resources given back
wait_sql "SELECT count(*) FROM allocations WHERE consumer_type = 'migration'" 0 ||
  fail "the failed migration's allocation: $(sql "SELECT * FROM allocations WHERE consumer_type = 'migration'")"
wait_sql "SELECT count(*) FROM allocations WHERE consumer_id = '$C'" 0 || fail "vmC's orphaned allocation is still there"
wait_line "$work/scheduler.log" "migration=$mig .*reconciler repaired \(allocation_released\): allocation [0-9]+ of instance .* on $h1 released: held for a migration that ended failed|reconciler repaired \(allocation_released\).*migration=$mig" ||
  fail "no log line for the failed migration's allocation"
wait_line "$work/scheduler.log" "host=$h1 .*reconciler repaired \(allocation_released\): .*$h1 does not list the instance|reconciler repaired \(allocation_released\): .*$h1 does not list the instance.*host=$h1" ||
  fail "no log line for vmC's allocation"
ok "orphaned allocations released (a failed migration's, one on a host that does not list its instance)"

# (c): the instance's host corrected, its allocation moved
wait_sql "SELECT host FROM instances WHERE uuid = '$A'" "$h2" || fail "vmA's host was not corrected: $(sql "SELECT host FROM instances WHERE uuid = '$A'")"
[[ $(sql "SELECT host FROM allocations WHERE consumer_id = '$A'") == "$h2" ]] || fail "vmA's allocation: $(sql "SELECT host FROM allocations WHERE consumer_id = '$A'")"
ec2A=$(sql "SELECT ec2_id FROM instances WHERE uuid = '$A'")
wait_line "$work/scheduler.log" "instance=$ec2A .*reconciler repaired \(instance_host\): instance $ec2A's host set to $h2: it runs on $h2 only; $h1 \(the database's host\) does not list it running|reconciler repaired \(instance_host\).*instance=$ec2A" ||
  fail "no log line for vmA's host"
for h in "$h1" "$h2"; do # every host's usage is the sum of its allocations again
  wait_sql "SELECT used_vcpus = (SELECT coalesce(sum(vcpus), 0) FROM allocations WHERE host = '$h')
            AND used_memory_mb = (SELECT coalesce(sum(memory_mb), 0) FROM allocations WHERE host = '$h') FROM hosts WHERE name = '$h'" t ||
    fail "$h's usage $(sql "SELECT used_vcpus, used_memory_mb FROM hosts WHERE name = '$h'") is not the sum of its allocations"
done
ok "vmA's host corrected to $h2, where it runs, with its allocation"

# (d): raised, not repaired
ec2B=$(sql "SELECT ec2_id FROM instances WHERE uuid = '$B'")
hostB=$(sql "SELECT host FROM instances WHERE uuid = '$B'")
wait_line "$work/scheduler.log" "level=warn.*reconciler: instance $ec2B cannot be reconciled \(two_hosts\): the guest runs on 2 hosts" ||
  fail "no warning for vmB on two hosts"
grep -E "reconciler: instance $ec2B cannot be reconciled" "$work/scheduler.log" | head -n 1 | grep -q "instance=$ec2B" || fail "the warning has no instance= field"
grep -E "reconciler: instance $ec2B cannot be reconciled" "$work/scheduler.log" | head -n 1 | grep -q "host=" || fail "the warning has no host= field"
metrics=$(curl -fsS "http://127.0.0.1:$port/metrics") || fail "/metrics"
grep -q '^ferry_reconciler_unresolved{kind="two_hosts"} 1$' <<<"$metrics" || fail "gauge two_hosts: $(grep reconciler <<<"$metrics")"
[[ $(sql "SELECT host FROM instances WHERE uuid = '$B'") == "$hostB" ]] || fail "vmB was moved"
ok "vmB on two hosts raised (warning with instance= and host=, gauge two_hosts 1), not moved"

grep -q '^ferry_reconciler_repairs_total{kind="allocation_released"} 2$' <<<"$metrics" || fail "repairs allocation_released: $(grep repairs <<<"$metrics")"
grep -q '^ferry_reconciler_repairs_total{kind="instance_host"} 1$' <<<"$metrics" || fail "repairs instance_host: $(grep repairs <<<"$metrics")"
grep -q '^ferry_reconciler_repairs_total{kind="migration_settled"} 0$' <<<"$metrics" || fail "repairs migration_settled"
grep -q '^ferry_oldest_active_migration_seconds 0$' <<<"$metrics" || fail "oldest active migration: $(grep oldest <<<"$metrics")"
grep -q '^ferry_reconciler_unresolved{kind="nowhere"} 1$' <<<"$metrics" || fail "gauge nowhere (vmC): $(grep unresolved <<<"$metrics")"
ok "metrics: repairs by kind, unresolved by kind, oldest active migration"

# (e): a host whose heartbeat is stale proves nothing: vmB's DB host wrong now, h2 stale → left
sql "UPDATE hosts SET domains_reported_at = now() - interval '1 hour' WHERE name = '$h2'" >/dev/null
sql "UPDATE instances SET host = '$h2', reported_at = now() + interval '1 day' WHERE uuid = '$D'" >/dev/null
sleep 3
[[ $(sql "SELECT host FROM instances WHERE uuid = '$D'") == "$h2" ]] || fail "vmD was moved although $h2's heartbeat is stale"
ok "nothing acted on while the host concerned has a stale heartbeat"
# (f) ferryctl migration resolve without proof: vmB's migration in error (its guest on both hosts),
# no agent answers job_status → refused with the reason, recorded as an event, nothing changed
em=$(sql "INSERT INTO migrations (request_id, instance_uuid, source_host, dest_host, status, error, finished_at)
     VALUES (gen_random_uuid(), '$B', '$h1', '$h2', 'error', 'test: rollback failed', now()) RETURNING id")
sql "UPDATE instances SET task_state = 'migrating' WHERE uuid = '$B'" >/dev/null
st=0
out=$("$bin/ferryctl" --config "$work/ferry.conf" migration resolve "$em" --to destination 2>&1) || st=$?
((st == 1)) || fail "resolve without proof: exit $st: $out"
grep -q "migration resolve refused: no proof: could not ask" <<<"$out" || fail "resolve without proof: $out"
[[ $(sql "SELECT status FROM migrations WHERE id = $em") == error ]] || fail "migration $em changed"
wait_sql "SELECT count(*) FROM migration_events WHERE migration_id = $em AND kind = 'resolve' AND origin = 'operator' AND message LIKE 'resolve to the destination refused: no proof%'" 1 ||
  fail "the refusal is not recorded: $(sql "SELECT kind, message FROM migration_events WHERE migration_id = $em")"
st=0
out=$("$bin/ferryctl" --config "$work/ferry.conf" migration resolve "$mig" --to source 2>&1) || st=$?
((st == 1)) && grep -q "is failed: resolve applies to a migration in error" <<<"$out" || fail "resolve of a failed migration: exit $st: $out"
ok "migration resolve without proof refused with the reason (exit 1), recorded, nothing changed; not in error: refused"
# the same over HTTP (POST /api/migrations/{id}/resolve, token auth)
T=(-H "X-Auth-Token: rc-t0ken-reconciler-test")
code=$(curl -sS -o "$work/http.out" -w '%{http_code}' "${T[@]}" -X POST -d '{"to":"destination"}' "http://127.0.0.1:$port/api/migrations/$em/resolve")
[[ $code == 409 ]] && grep -q "no proof: could not ask" "$work/http.out" || fail "HTTP resolve without proof: $code $(cat "$work/http.out")"
code=$(curl -sS -o "$work/http.out" -w '%{http_code}' "${T[@]}" -X POST -d '{"to":"elsewhere"}' "http://127.0.0.1:$port/api/migrations/$em/resolve")
[[ $code == 400 ]] || fail "HTTP resolve with a bad body: $code $(cat "$work/http.out")"
code=$(curl -sS -o "$work/http.out" -w '%{http_code}' -X POST -d '{"to":"source"}' "http://127.0.0.1:$port/api/migrations/$em/resolve")
[[ $code == 401 ]] || fail "HTTP resolve without a token: $code $(cat "$work/http.out")"
[[ $(sql "SELECT status FROM migrations WHERE id = $em") == error ]] || fail "migration $em changed"
ok "POST /api/migrations/$em/resolve: 409 without proof, 400 for a bad body, 401 without a token"
echo "all checks passed"
