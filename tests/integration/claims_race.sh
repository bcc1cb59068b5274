#!/usr/bin/env bash
# The claim under contention: 3 scheduler replicas on the harness's broker and database take
# 200 requests published at once (by amqp-publish, 4 publishers in parallel) for 200
# instances, against destination hosts with room for 100. Exactly 100 are accepted, 100 are
# refused with the reason, no host is over capacity, every host's usage equals its
# allocations, and the concurrency limits hold across the replicas (the accepted migrations
# beyond them wait in `queued`), with host_subset_size = 3. Hosts are registered directly in the database (no libvirt):
# this tests the claim only; the RPC timeout is long so no migration ends during the test.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
db=ferry_claims_$$
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

psql "$FERRY_TEST_PG_DSN" -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
export FERRY_AMQP_URL=$FERRY_TEST_AMQP_URL
export FERRY_DB_DSN="$FERRY_TEST_PG_DSN dbname=$db"
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
cat >"$work/ferry.conf" <<'EOF'
[amqp]
heartbeat_s = 5
rpc_timeout_ms = 300000
[http]
port = 0
[scheduler]
heartbeat_max_age_s = 3600
max_outgoing_per_source = 2
max_incoming_per_dest = 2
max_cluster = 3
# a destination at random among the 3 best (the default, 1, is every other test's): the spread
# path under contention, with its fallbacks when all 3 are held
host_subset_size = 3
[log]
level = info
EOF
"$bin/ferry-scheduler" --config "$work/ferry.conf" --db-upgrade >/dev/null

# the hosts: 2 sources full with 100 instances each, 4 destinations with room for 25 each
# (256 MiB per instance), everything fresh, same arch and hypervisor
sql "INSERT INTO hosts (name, arch, hypervisor, vcpus, memory_mb, disk_gb, capacity_vcpus, capacity_memory_mb,
                        capacity_disk_gb, last_heartbeat)
     SELECT 'src' || n, 'x86_64', 'qemu', 64, 25600, 1000, 1024, 25600, 1000, now() FROM generate_series(1, 2) n
     UNION ALL
     SELECT 'dst' || n, 'x86_64', 'qemu', 64, 6400, 1000, 1024, 6400, 1000, now() FROM generate_series(1, 4) n" >/dev/null
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb, disk_gb)
     SELECT gen_random_uuid(), 'race' || n, 'src' || (1 + n % 2), 1, 256, 1 FROM generate_series(1, 200) n" >/dev/null
sql "INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, host, vcpus, memory_mb, disk_gb)
     SELECT 'instance', uuid::text, uuid, host, vcpus, memory_mb, disk_gb FROM instances" >/dev/null
sql "UPDATE hosts h SET used_vcpus = a.v, used_memory_mb = a.m, used_disk_gb = a.d
     FROM (SELECT host, sum(vcpus) v, sum(memory_mb) m, sum(disk_gb) d FROM allocations GROUP BY host) a
     WHERE a.host = h.name" >/dev/null

for n in 1 2 3; do
  "$bin/ferry-scheduler" --config "$work/ferry.conf" --name "race$n" 2>"$work/race$n.log" &
  pids+=("$!")
done
for n in 1 2 3; do
  for _ in $(seq 1 100); do grep -q "ready: broker connected" "$work/race$n.log" && break; sleep 0.1; done
  grep -q "ready: broker connected" "$work/race$n.log" || fail "replica race$n not ready"
done
ok "3 replicas consuming; 200 instances on 2 sources; 4 destinations with room for 25 each"

# 200 requests, no destination named, from 4 publishers at once
publish_range() {
  local n
  for n in $(seq "$1" "$2"); do
    amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json -p \
      -b "{\"v\":1,\"type\":\"migration.request\",\"id\":\"$(cat /proc/sys/kernel/random/uuid)\",
           \"body\":{\"instance\":\"race$n\",\"os-migrateLive\":{\"host\":null,\"block_migration\":false,
                     \"disk_over_commit\":false,\"post_copy\":false}}}"
  done
}
publish_range 1 50 & p1=$!
publish_range 51 100 & p2=$!
publish_range 101 150 & p3=$!
publish_range 151 200 & p4=$!
wait $p1 $p2 $p3 $p4 || fail "amqp-publish failed"
for _ in $(seq 1 600); do
  [[ $(sql "SELECT count(*) FROM processed_requests") == 200 ]] && break
  sleep 0.1
done
[[ $(sql "SELECT count(*) FROM processed_requests") == 200 ]] || fail "processed: $(sql "SELECT count(*) FROM processed_requests")"

accepted=$(sql "SELECT count(*) FROM processed_requests WHERE outcome = 'accepted'")
[[ $accepted == 100 ]] || fail "accepted $accepted requests, wanted exactly 100"
[[ $(sql "SELECT count(*) FROM migrations") == 100 ]] || fail "migrations: $(sql "SELECT count(*) FROM migrations")"
reasons=$(sql "SELECT DISTINCT regexp_replace(reason, 'i-[0-9a-f]{8}', 'i-N') FROM processed_requests WHERE outcome = 'refused'")
[[ $reasons == "no host can take i-N (1 vCPUs, 256 MiB, 1 GiB): none is enabled, alive, compatible and free enough" ]] ||
  fail "refusal reasons: $reasons"
ok "exactly 100 claims, 100 refusals with the reason"

over=$(sql "SELECT name || ' ' || used_memory_mb || '/' || capacity_memory_mb FROM hosts WHERE used_memory_mb > capacity_memory_mb
            OR used_vcpus > capacity_vcpus")
[[ -z $over ]] || fail "hosts over capacity: $over"
mismatch=$(sql "SELECT h.name FROM hosts h LEFT JOIN (SELECT host, sum(memory_mb) m, sum(vcpus) v FROM allocations GROUP BY host) a
                ON a.host = h.name WHERE h.used_memory_mb <> coalesce(a.m, 0) OR h.used_vcpus <> coalesce(a.v, 0)")
[[ -z $mismatch ]] || fail "usage differs from allocations on: $mismatch"
[[ $(sql "SELECT string_agg(used_memory_mb::text, ',' ORDER BY name) FROM hosts WHERE name LIKE 'dst%'") == "6400,6400,6400,6400" ]] ||
  fail "destinations not exactly full: $(sql "SELECT name, used_memory_mb FROM hosts WHERE name LIKE 'dst%'")"
bad=$(sql "SELECT m.id FROM migrations m WHERE (SELECT count(*) FROM allocations a WHERE a.instance_uuid = m.instance_uuid) <> 2
           OR NOT EXISTS (SELECT 1 FROM allocations a WHERE a.migration_id = m.id AND a.host = m.source_host)
           OR NOT EXISTS (SELECT 1 FROM allocations a WHERE a.consumer_type = 'instance' AND a.instance_uuid = m.instance_uuid
                          AND a.host = m.dest_host)")
[[ -z $bad ]] || fail "migrations without their two allocations: $bad"
drift=$(sql "SELECT h.name || ' counts ' || h.migrations_active || ', has ' || count(m.id) FROM hosts h
             LEFT JOIN migrations m ON m.finished_at IS NULL AND h.name IN (m.source_host, m.dest_host)
             GROUP BY h.name, h.migrations_active HAVING h.migrations_active <> count(m.id)")
[[ -z $drift ]] || fail "hosts' active-migration counters differ from their migrations: $drift"
ok "no host over capacity; usage = allocations; each accepted instance holds source + destination; hosts count their migrations"

# the limits, across replicas: at most 2 out of each source, 2 into each destination, 3 in all
lim=$(sql "SELECT coalesce(max(c), 0) FROM (SELECT count(*) c FROM migrations WHERE status <> 'queued' GROUP BY source_host) x")
(( lim <= 2 )) || fail "a source has $lim active migrations (max 2)"
lim=$(sql "SELECT coalesce(max(c), 0) FROM (SELECT count(*) c FROM migrations WHERE status <> 'queued' GROUP BY dest_host) x")
(( lim <= 2 )) || fail "a destination has $lim active migrations (max 2)"
active=$(sql "SELECT count(*) FROM migrations WHERE status <> 'queued'")
(( active >= 1 && active <= 3 )) || fail "$active active migrations (max_cluster 3)"
queued=$(sql "SELECT count(*) FROM migrations WHERE status = 'queued'")
(( queued + active == 100 )) || fail "queued $queued + active $active"
owners=$(sql "SELECT count(DISTINCT owner) FROM migrations WHERE status <> 'queued'")
ok "limits hold across replicas: $active active (by $owners replicas), $queued queued"

# the instance side of the intake, one request each: the reason of every refusal
sql "INSERT INTO instances (uuid, name, host, vcpus, memory_mb, disk_gb, vm_state)
     VALUES (gen_random_uuid(), 'twin', 'src1', 1, 256, 1, 'running'), (gen_random_uuid(), 'twin', NULL, 1, 256, 1, 'running'),
            (gen_random_uuid(), 'homeless', NULL, 1, 256, 1, 'running'), (gen_random_uuid(), 'halted', 'src2', 1, 256, 1, 'stopped')" >/dev/null
busy=$(sql "SELECT i.name FROM migrations m JOIN instances i ON i.uuid = m.instance_uuid ORDER BY m.id LIMIT 1")
declare -A want=(
  [twin]="instance name twin is ambiguous (2 instances): use its uuid or i-xxxxxxxx id"
  [homeless]="instance i-N has no host"
  [halted]="instance i-N is stopped, not running"
  [$busy]="instance i-N is already migrating"
  [nosuch]="no instance nosuch")
for name in "${!want[@]}"; do
  id=$(cat /proc/sys/kernel/random/uuid)
  amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json -p \
    -b "{\"v\":1,\"type\":\"migration.request\",\"id\":\"$id\",\"body\":{\"instance\":\"$name\",
         \"os-migrateLive\":{\"host\":null,\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false}}}" ||
    fail "publish for $name"
  for _ in $(seq 1 100); do [[ -n $(sql "SELECT 1 FROM processed_requests WHERE request_id = '$id'") ]] && break; sleep 0.1; done
  got=$(sql "SELECT outcome || ': ' || regexp_replace(coalesce(reason, ''), 'i-[0-9a-f]{8}', 'i-N')
             FROM processed_requests WHERE request_id = '$id'")
  [[ $got == "refused: ${want[$name]}" ]] || fail "request for $name: '$got', wanted 'refused: ${want[$name]}'"
done
ok "refusals: ambiguous name, no host, not running, already migrating, unknown instance, each with its reason"

for n in 1 2 3; do
  grep -q "no host can take\|scheduled\|queued" "$work/race$n.log" || fail "replica race$n took no request"
done
for p in "${pids[@]}"; do kill -0 "$p" || fail "a replica died"; done
ok "all three replicas took requests and are still running"
echo "all checks passed"
