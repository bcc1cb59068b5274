#!/usr/bin/env bash
# The reconciler and `ferryctl migration resolve` on the lab (issue #17): a real migration of a
# tiny guest from compute1 to compute2, then made a stuck `error` by SQL (status error, the
# instance migrating on its source with both allocations, as a failed completion leaves it).
# While the test holds the reconciler's lease row (so the scheduler's reconciler stands by: one
# replica at a time, and here none): `migration resolve --to source` is refused without proof
# (libvirt on compute1 says the guest is not there), recorded, nothing changed; `--to
# destination` is accepted (libvirt on compute2 says it runs there, on compute1 that it does not)
# and settles it. Made stuck again and the lease let go: the scheduler's reconciler takes the lease
# and settles it as completed with an event of kind reconcile saying what it found.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
FERRY_LAB_SCHEDULER_EXTRA=$'reconcile_interval_s = 2\nreconcile_grace_s = 0' "$LAB" up --hosts 2 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
logs=$FERRY_LAB_LOG_DIR
ctl() { "$CTL" --timeout 20000 "$@"; }
hold_lease() {
  sql "INSERT INTO replica_leases (job, owner, lease_expires_at) VALUES ('reconciler', 'lab-test', now() + interval '1 hour')
       ON CONFLICT (job) DO UPDATE SET owner = 'lab-test', epoch = replica_leases.epoch + 1, lease_expires_at = now() + interval '1 hour'" >/dev/null
}
hold_lease

"$LAB" guest compute1 vm1 >/dev/null
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'vm1'" "compute1 running" || fail "vm1 not discovered running"
wait_sql 10 "SELECT count(*) FROM allocations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'vm1')" 1 || fail "vm1 has no allocation"
ec2=$(sql "SELECT ec2_id FROM instances WHERE name = 'vm1'")
ctl migrate vm1 compute2 --wait >/dev/null || fail "the migration of vm1 did not complete"
mig=$(sql "SELECT id FROM migrations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'vm1') ORDER BY id DESC LIMIT 1")
[[ $(where vm1) == "compute2 running yes" ]] || fail "vm1 is at: $(where vm1)"
ok "migration $mig of $ec2: compute1 -> compute2, completed"

# stuck in error by SQL: what a completion that failed leaves (both allocations, migrating)
make_stuck() {
  sql "BEGIN;
       UPDATE migrations SET status = 'error', error = 'test: made stuck by SQL', updated_at = now() WHERE id = $mig;
       UPDATE instances SET host = 'compute1', task_state = 'migrating' WHERE name = 'vm1';
       INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, migration_id, host, vcpus, memory_mb, disk_gb)
         SELECT 'migration', '$mig', uuid, $mig, 'compute1', vcpus, memory_mb, disk_gb FROM instances WHERE name = 'vm1';
       UPDATE hosts h SET used_vcpus = used_vcpus + i.vcpus, used_memory_mb = used_memory_mb + i.memory_mb
         FROM instances i WHERE i.name = 'vm1' AND h.name = 'compute1';
       COMMIT" >/dev/null
  [[ $(allocs vm1) == "instance@compute2,migration@compute1" ]] || fail "the stuck state: $(allocs vm1)"
  check_usage
}
make_stuck

# ---- resolve without proof: refused, recorded, nothing changed --------------------------------------
st=0
out=$(ctl migration resolve "$mig" --to source 2>&1) || st=$?
((st == 1)) || fail "resolve --to source: exit $st: $out"
[[ $out == "ferryctl: migration resolve refused: no proof: libvirt on compute1 says the guest does not run there (no such domain)" ]] ||
  fail "resolve --to source: $out"
[[ $(sql "SELECT status FROM migrations WHERE id = $mig") == error && $(allocs vm1) == "instance@compute2,migration@compute1" ]] ||
  fail "the refused resolve changed something: $(sql "SELECT status FROM migrations WHERE id = $mig") $(allocs vm1)"
wait_sql 10 "SELECT count(*) FROM migration_events WHERE migration_id = $mig AND kind = 'resolve' AND origin = 'operator'
             AND message LIKE 'resolve to the source refused: no proof: libvirt on compute1%'" 1 || fail "the refusal is not recorded"
grep -q "migration=$mig .*migration.resolve of migration $mig to its source refused" "$logs/scheduler.log" || fail "no log line for the refusal"
ok "resolve --to source refused without proof (exit 1, libvirt's word), recorded as an event, nothing changed"

# ---- resolve with proof: settled to the destination --------------------------------------------------
out=$(ctl migration resolve "$mig" --to destination 2>&1) || fail "resolve --to destination: $out"
[[ $out == "migration $mig: resolved, completed (the guest runs on compute2)" ]] || fail "resolve --to destination: $out"
[[ $(sql "SELECT status || ' ' || coalesce(error, '-') FROM migrations WHERE id = $mig") == "completed -" ]] ||
  fail "after resolve: $(sql "SELECT status, error FROM migrations WHERE id = $mig")"
[[ $(sql "SELECT host || ' ' || coalesce(task_state, '-') FROM instances WHERE name = 'vm1'") == "compute2 -" ]] ||
  fail "instance after resolve: $(sql "SELECT host, task_state FROM instances WHERE name = 'vm1'")"
[[ $(allocs vm1) == "instance@compute2" ]] || fail "allocations after resolve: $(allocs vm1)"
check_usage
[[ $(sql "SELECT count(*) FROM migration_events WHERE migration_id = $mig AND kind = 'resolve' AND host = 'compute2'
          AND message LIKE 'resolved by the operator%libvirt on compute2 says the guest runs there, libvirt on compute1 that it does not%'") == 1 ]] ||
  fail "no resolve event: $(sql "SELECT kind, host, message FROM migration_events WHERE migration_id = $mig ORDER BY id DESC LIMIT 3")"
ok "resolve --to destination accepted with libvirt's proof: completed, host compute2, one allocation, event recorded"

# ---- the reconciler: the same stuck state, settled by itself once it holds the lease ------------------
make_stuck
sleep 3 # the lease is the test's: nothing happens
[[ $(sql "SELECT status FROM migrations WHERE id = $mig") == error ]] || fail "the reconciler acted without its lease"
sql "UPDATE replica_leases SET lease_expires_at = now() - interval '1 second' WHERE job = 'reconciler'" >/dev/null
wait_sql 30 "SELECT status FROM migrations WHERE id = $mig" completed ||
  fail "the reconciler did not settle migration $mig: $(sql "SELECT status FROM migrations WHERE id = $mig")"
[[ $(sql "SELECT owner FROM replica_leases WHERE job = 'reconciler'") == scheduler1 ]] || fail "lease: $(sql "SELECT * FROM replica_leases")"
[[ $(sql "SELECT host || ' ' || coalesce(task_state, '-') FROM instances WHERE name = 'vm1'") == "compute2 -" ]] ||
  fail "instance after the reconciler: $(sql "SELECT host, task_state FROM instances WHERE name = 'vm1'")"
[[ $(allocs vm1) == "instance@compute2" ]] || fail "allocations after the reconciler: $(allocs vm1)"
check_usage
[[ $(sql "SELECT count(*) FROM migration_events WHERE migration_id = $mig AND kind = 'reconcile' AND origin = 'scheduler'
          AND message LIKE '%the guest runs on compute2 (destination) only, by the heartbeats of both hosts'") == 1 ]] ||
  fail "no reconcile event: $(sql "SELECT kind, message FROM migration_events WHERE migration_id = $mig ORDER BY id DESC LIMIT 3")"
grep -q "migration=$mig .*reconciler repaired (migration_settled)" "$logs/scheduler.log" || fail "no reconciler log line"
metrics=$(curl -fsS "$FERRY_HTTP_URL/metrics") || fail "/metrics"
grep -q '^ferry_reconciler_repairs_total{kind="migration_settled"} 1$' <<<"$metrics" ||
  fail "metrics: $(grep reconciler <<<"$metrics")"
grep -q '^ferry_oldest_active_migration_seconds 0$' <<<"$metrics" || fail "metrics: $(grep oldest <<<"$metrics")"
ok "the reconciler, once it held the lease, settled stuck migration $mig to compute2 with an event of kind reconcile"
[[ $(where vm1) == "compute2 running yes" ]] || fail "vm1 is at: $(where vm1)"
echo "all checks passed"
