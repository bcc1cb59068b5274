#!/usr/bin/env bash
# Chaos on the lab: 3 hosts, 3 scheduler replicas, a stream of migration requests (the
# scheduler picks the destinations) while a driver, at random moments, kills -9 a scheduler
# replica or an agent (and starts it again), restarts RabbitMQ or restarts PostgreSQL. The
# randomness is seeded and the seed printed (FERRY_CHAOS_SEED=N replays a run;
# FERRY_CHAOS_MIGRATIONS sets the stream's length, default 20). Afterwards, within a bound:
# every request has exactly one outcome (refused, or one migration in a terminal status);
# nothing is left in a non-terminal status; no host is over capacity and usage equals the
# allocations; every guest runs on exactly one host, and that host is the one the database
# says and the only one holding its allocation.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
seed=${FERRY_CHAOS_SEED:-$((RANDOM * 32768 + RANDOM))}
count=${FERRY_CHAOS_MIGRATIONS:-20}
echo "chaos: seed $seed, $count migrations (replay with FERRY_CHAOS_SEED=$seed)"
RANDOM=$seed
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --hosts 3 --schedulers 3 >/dev/null
eval "$("$LAB" env)"
log=$FERRY_LAB_DIR/chaos.log
: >"$log"
note() { echo "chaos: $(date +%T.%3N) $*" | tee -a "$log"; }

guests=(c1 c2 c3 c4 c5 c6)
for i in "${!guests[@]}"; do
  "$LAB" guest "compute$((i % 3 + 1))" "${guests[$i]}" >/dev/null
done
for g in "${guests[@]}"; do
  wait_sql 40 "SELECT vm_state FROM instances WHERE name = '$g'" running || fail "$g not seen running"
done
ok "6 guests running on 3 hosts, 3 scheduler replicas"

# publish, retried while the broker is away (a request is published once it is confirmed)
publish_retry() {
  local i
  for i in $(seq 1 60); do
    publish "$1" "$2" 2>/dev/null && return 0
    sleep 1
  done
  fail "could not publish request $1 for a minute"
}

# ---- the driver: one fault every 4-8 s while the stream runs --------------------------------------
chaos_driver() {
  local what n h
  RANDOM=$((seed + 1)) # a subshell: seeded on its own, so a seed replays the same faults
  while :; do
    sleep $((4 + RANDOM % 5))
    what=$((RANDOM % 4))
    case $what in
      0)
        n=$((1 + RANDOM % 3))
        note "kill -9 scheduler $n"
        "$LAB" scheduler "$n" kill >/dev/null
        sleep $((1 + RANDOM % 4))
        "$LAB" scheduler "$n" start >/dev/null || note "scheduler $n did not come back at once"
        ;;
      1)
        h=compute$((1 + RANDOM % 3))
        note "kill -9 the agent of $h"
        "$LAB" agent "$h" kill >/dev/null
        sleep $((1 + RANDOM % 4))
        "$LAB" agent "$h" start >/dev/null || note "the agent of $h did not come back at once"
        ;;
      2)
        note "restart RabbitMQ"
        "$LAB" broker restart >/dev/null || note "broker restart failed"
        ;;
      3)
        note "restart PostgreSQL"
        "$LAB" db restart >/dev/null || note "database restart failed"
        ;;
    esac
  done
}
RANDOM=$seed
chaos_driver &
driver=$!
trap 'st=$?; kill $driver 2>/dev/null || true; lab_exit $st' EXIT

reqs=()
for i in $(seq 1 "$count"); do
  g=${guests[$((RANDOM % ${#guests[@]}))]}
  id=$(newid)
  reqs+=("$id")
  note "request $i: $g (request $id)"
  publish_retry "$id" "{\"instance\":\"$g\",\"os-migrateLive\":{\"host\":null,\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false}}"
  sleep $((1 + RANDOM % 3))
done
kill "$driver" 2>/dev/null || true
wait "$driver" 2>/dev/null || true
note "stream done; bringing everything back"
"$LAB" broker start >/dev/null 2>&1 || true
"$LAB" db start >/dev/null 2>&1 || true
for n in 1 2 3; do "$LAB" scheduler "$n" start >/dev/null || fail "scheduler $n does not start"; done
for h in $FERRY_LAB_HOSTS; do "$LAB" agent "$h" start >/dev/null || fail "the agent of $h does not start"; done

# ---- afterwards, within a bound ------------------------------------------------------------------------
list=$(printf "'%s'," "${reqs[@]}")
list=${list%,}
wait_sql 240 "SELECT count(*) FROM processed_requests WHERE request_id IN ($list)" "$count" ||
  fail "requests without an outcome: $(sql "SELECT $count - count(*) FROM processed_requests WHERE request_id IN ($list)")"
wait_sql 300 "SELECT count(*) FROM migrations WHERE finished_at IS NULL" 0 ||
  fail "left unfinished: $(sql "SELECT id, status, owner, error FROM migrations WHERE finished_at IS NULL")"
[[ $(sql "SELECT count(*) FROM processed_requests p WHERE request_id IN ($list) AND outcome = 'accepted'
          AND (SELECT count(*) FROM migrations m WHERE m.request_id = p.request_id) <> 1") == 0 ]] ||
  fail "an accepted request without exactly one migration"
summary=$(sql "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) n FROM migrations GROUP BY status ORDER BY status) x")
refused=$(sql "SELECT count(*) FROM processed_requests WHERE request_id IN ($list) AND outcome = 'refused'")
ok "every request has one outcome: $refused refused; migrations: $summary"
bad=$(sql "SELECT id || ' ' || error FROM migrations WHERE status = 'error'")
[[ -z $bad ]] || fail "migrations in error: $bad"

# heartbeats carry the truth back into the database after agent restarts
sleep 6
over=$(sql "SELECT name FROM hosts WHERE used_memory_mb > capacity_memory_mb OR used_vcpus > capacity_vcpus")
[[ -z $over ]] || fail "hosts over capacity: $over"
check_usage
for g in "${guests[@]}"; do
  w=$(where "$g" | awk '$2 == "running"')
  [[ $(wc -l <<<"$w") == 1 && -n $w ]] || fail "$g runs on: [$(where "$g")]"
  h=${w%% *}
  [[ $(sql "SELECT host || ' ' || coalesce(task_state, '-') FROM instances WHERE name = '$g'") == "$h -" ]] ||
    fail "$g runs on $h but the database says $(sql "SELECT host, task_state FROM instances WHERE name = '$g'")"
  [[ $(allocs "$g") == "instance@$h" ]] || fail "$g runs on $h; its allocations: $(allocs "$g")"
done
ok "no host over capacity; usage = allocations; each guest runs on exactly one host, the one in the database, which alone holds its allocation"
wait_sql 30 "SELECT count(*) FROM outbox" 0 || fail "events left in the outbox"
ok "chaos run with seed $seed: $(grep -c 'kill -9\|restart' "$log") faults injected"
