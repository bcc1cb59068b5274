#!/usr/bin/env bash
# Outages of the controller's servers in the middle of a migration, on the lab: RabbitMQ
# restarted while a migration runs, then PostgreSQL restarted while another runs. The
# scheduler's agent calls that the outage swallowed are sent again (the agents' methods are
# idempotent per migration), transitions that could not be written are taken up again from
# the lease, and both migrations complete; allocations and events agree afterwards.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --hosts 2 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
request() {
  publish "$1" "{\"instance\":\"$2\",\"os-migrateLive\":{\"host\":\"$3\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":true},\"options\":{\"bandwidth_mib_s\":4,\"postcopy_after_iterations\":1}}"
}

# ---- RabbitMQ restarted mid-migration -------------------------------------------------------------
busy_guest compute1 o1
req=$(newid)
request "$req" o1 compute2
wait_sql 30 "SELECT status FROM migrations WHERE request_id = '$req'" running || fail "o1 not running"
mig=$(sql "SELECT id FROM migrations WHERE request_id = '$req'")
"$LAB" broker restart >/dev/null
ok "RabbitMQ restarted while migration $mig was running"
wait_sql 120 "SELECT status FROM migrations WHERE id = $mig" completed ||
  fail "after the broker restart: $(sql "SELECT status, error FROM migrations WHERE id = $mig")"
[[ $(where o1) == "compute2 running yes" && $(allocs o1) == "instance@compute2" ]] || fail "o1: $(where o1) / $(allocs o1)"
[[ $(timeline "$mig") == "scheduled preparing running completing completed" ]] || fail "timeline: $(timeline "$mig")"
grep -q "migration=$mig .*sending it again" "$FERRY_LAB_LOG_DIR/scheduler.log" || fail "no call was sent again (was the outage seen?)"
check_usage
stop_guest o1
ok "migration $mig completed after the broker restart; calls lost in the outage were sent again"

# ---- PostgreSQL restarted mid-migration ----------------------------------------------------------------
busy_guest compute2 o2
req=$(newid)
request "$req" o2 compute1
wait_sql 30 "SELECT status FROM migrations WHERE request_id = '$req'" running || fail "o2 not running"
mig=$(sql "SELECT id FROM migrations WHERE request_id = '$req'")
"$LAB" db restart >/dev/null
ok "PostgreSQL restarted while migration $mig was running"
wait_sql 120 "SELECT status FROM migrations WHERE id = $mig" completed ||
  fail "after the database restart: $(sql "SELECT status, error FROM migrations WHERE id = $mig")"
[[ $(where o2) == "compute1 running yes" && $(allocs o2) == "instance@compute1" ]] || fail "o2: $(where o2) / $(allocs o2)"
[[ $(timeline "$mig") == "scheduled preparing running completing completed" ]] || fail "timeline: $(timeline "$mig")"
check_usage
wait_sql 20 "SELECT count(*) FROM outbox" 0 || fail "events left in the outbox"
stop_guest o2
ok "migration $mig completed across the database restart; usage and events agree"
