#!/usr/bin/env bash
# Chaos on the lab: 3 hosts, 3 scheduler replicas, a stream of migration requests (the
# scheduler picks the destinations; pre-copy, post-copy of a dirtying guest over a slow link,
# and block migration of a guest with a local disk) while a driver, at random moments, kills -9
# a scheduler replica or an agent (and starts it again), freezes a replica past its lease
# (SIGSTOP, then SIGCONT: it wakes up holding nothing, and the epochs must fence it), cuts a
# live replica off the database past its lease (`ferry-lab scheduler N partition`: it still
# talks to the broker; healed, its epochs must fence it), restarts RabbitMQ or PostgreSQL, or
# cuts a host's link for a few seconds (stalled, or answered with resets), or does two of
# these at once. Half of the faults wait for a
# migration in a chosen status (scheduled, preparing, running, post-copy, completing) and
# strike while it is there; the run counts the faults that hit a migration in flight.
# The randomness is seeded and the seed printed (FERRY_CHAOS_SEED=N replays the same choices;
# FERRY_CHAOS_MIGRATIONS sets the stream's length, default 20, extended up to twice that until
# 4 faults have hit a migration in flight). Afterwards, within a bound:
# every request has exactly one outcome (refused, or one migration in a terminal status);
# nothing is left in a non-terminal status, none in error; at least 2/3 of the accepted
# requests and 2/5 of all ended in a completed migration (the floor: a run where faults break
# most migrations fails, it does not pass as "every request had an outcome"); at least 4 faults hit a migration in
# flight; no host is over capacity and usage equals the allocations; on every host `virsh
# list --all` answers, and each guest is defined on exactly one host, running there (paused
# nowhere), and that host is the one the database says and the only one holding its
# allocation.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
seed=${FERRY_CHAOS_SEED:-$((RANDOM * 32768 + RANDOM))}
count=${FERRY_CHAOS_MIGRATIONS:-20}
echo "chaos: seed $seed, $count migrations (replay with FERRY_CHAOS_SEED=$seed)"
RANDOM=$seed
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --hosts 3 --schedulers 3 >/dev/null
eval "$("$LAB" env)"
log=$FERRY_LAB_DIR/logs/chaos.log # kept with the daemons' logs when the test fails
: >"$log"
note() { echo "chaos: $(date +%T.%3N) $*" | tee -a "$log"; }

# c1-c4 idle (pre-copy); c5 rewrites 24 MiB at 16 MiB/s and is moved at 8 MiB/s with
# post-copy after the first pass; c6 has a local disk and is block-migrated
guests=(c1 c2 c3 c4 c5 c6)
for i in 0 1 2 3; do
  "$LAB" guest "compute$((i % 3 + 1))" "${guests[$i]}" >/dev/null
done
"$LAB" guest compute2 c5 --memory 64 --dirty 24 --rate 16 >/dev/null
"$LAB" guest compute3 c6 --local-disk 16 >/dev/null
for g in "${guests[@]}"; do
  wait_sql 40 "SELECT vm_state FROM instances WHERE name = '$g'" running || fail "$g not seen running"
done
ok "6 guests running on 3 hosts (one dirtying, one with a local disk), 3 scheduler replicas"

# publish, retried while the broker is away (a request is published once it is confirmed)
publish_retry() {
  local i
  for i in $(seq 1 60); do
    publish "$1" "$2" 2>/dev/null && return 0
    sleep 1
  done
  fail "could not publish request $1 for a minute"
}

# ---- the driver: one fault every 2-4 s while the stream runs --------------------------------------
# the status a fault waits for (5 s at most) before it strikes, as SQL over migrations
status_sql() {
  case $1 in
    postcopy) echo "status = 'running' AND postcopy_active" ;;
    *) echo "status = '$1'" ;;
  esac
}
# in_flight: the unfinished migrations now, "id:status" (empty while the database is away)
in_flight() {
  sql "SELECT string_agg(id || ':' || status || CASE WHEN postcopy_active THEN '(post-copy)' ELSE '' END, ',' ORDER BY id)
       FROM migrations WHERE finished_at IS NULL AND status <> 'queued'" 2>/dev/null || true
}
# one fault of kind K (0-4); h and n are chosen by the caller
fault() {
  case $1 in
    0)
      note "kill -9 scheduler $n"
      "$LAB" scheduler "$n" kill >/dev/null
      (sleep $((1 + RANDOM % 4)); "$LAB" scheduler "$n" start >/dev/null || note "scheduler $n did not come back at once") &
      ;;
    1)
      note "kill -9 the agent of $h"
      "$LAB" agent "$h" kill >/dev/null
      (sleep $((1 + RANDOM % 4)); "$LAB" agent "$h" start >/dev/null || note "the agent of $h did not come back at once") &
      ;;
    2)
      note "restart RabbitMQ"
      "$LAB" broker restart >/dev/null || note "broker restart failed"
      ;;
    3)
      note "restart PostgreSQL"
      "$LAB" db restart >/dev/null || note "database restart failed"
      ;;
    4)
      # alive but gone past its lease (lease_s 10 in the lab): its migrations are adopted,
      # and when it wakes its epochs are old: every statement and RPC of it must be refused
      local p
      p=$("$LAB" scheduler "$n" pid)
      if [[ -n $p ]]; then
        note "freeze scheduler $n (pid $p) for 14 s"
        kill -STOP "$p"
        (sleep 14; kill -CONT "$p" 2>/dev/null; note "thaw scheduler $n") &
      fi
      ;;
    6)
      # alive, talking to the broker, but cut off the database past its lease: its statements
      # hang, the others adopt its migrations; healed, its old epochs must be refused
      note "partition scheduler $n from the database for 14 s"
      "$LAB" scheduler "$n" partition >/dev/null || note "partition of scheduler $n failed"
      (sleep 14; "$LAB" scheduler "$n" heal >/dev/null; note "heal scheduler $n") &
      ;;
    7)
      # a host's link cut for 3-6 s: its TCP stalls, or (half the time) is answered with resets
      # (a migration stream breaks: pre-copy fails and rolls back, post-copy is recovered)
      local secs=$((3 + RANDOM % 4)) reset=
      ((RANDOM % 2)) && reset=--reset
      note "link of $h down${reset:+ with resets} for $secs s"
      "$LAB" link "$h" down $reset >/dev/null || note "link cut of $h failed"
      (sleep "$secs"; "$LAB" link "$h" up >/dev/null; note "link of $h up") &
      ;;
  esac
}
chaos_driver() {
  local what n h target flight i
  RANDOM=$((seed + 1)) # a subshell: seeded on its own, so a seed replays the same choices
  local targets=(scheduled preparing running postcopy completing)
  while :; do
    sleep $((2 + RANDOM % 3))
    what=$((RANDOM % 8))
    n=$((1 + RANDOM % 3))
    h=compute$((1 + RANDOM % 3))
    target=
    if ((RANDOM % 2)); then
      target=${targets[$((RANDOM % ${#targets[@]}))]}
      # one psql for the whole wait: on a loaded machine each psql start costs up to a second
      sql "DO \$\$ BEGIN FOR i IN 1..50 LOOP
             PERFORM 1 FROM migrations WHERE finished_at IS NULL AND $(status_sql "$target");
             IF FOUND THEN RETURN; END IF; PERFORM pg_sleep(0.1); END LOOP; END \$\$" >/dev/null 2>&1 || true
    fi
    flight=$(in_flight)
    note "fault (waited for: ${target:-nothing}; in flight: ${flight:-none})"
    [[ -n $flight ]] && echo "$flight" >>"$hits"
    if ((what == 5)); then
      # two at once: a replica and an agent, or an agent and the broker
      fault 0
      fault $((1 + RANDOM % 2))
    elif ((what >= 6)); then
      fault "$what"
    else
      fault "$what"
    fi
  done
}
hits=$FERRY_LAB_DIR/logs/chaos.hits
: >"$hits"
RANDOM=$seed
chaos_driver &
driver=$!
trap 'st=$?; kill $driver 2>/dev/null || true; lab_exit $st' EXIT

reqs=()
# the stream: count requests, and more (up to twice as many) until at least 4 faults have hit a
# migration in flight (on a loaded machine faults come slower than requests)
i=0
while ((i < count || ($(wc -l <"$hits") < 4 && i < 2 * count))); do
  i=$((i + 1))
  g=${guests[$((RANDOM % ${#guests[@]}))]}
  id=$(newid)
  reqs+=("$id")
  case $g in
    c5) body="\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":true},\"options\":{\"bandwidth_mib_s\":8,\"postcopy_after_iterations\":1}" ;;
    c6) body="\"block_migration\":true,\"disk_over_commit\":false,\"post_copy\":false}" ;;
    *) body="\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false}" ;;
  esac
  note "request $i: $g (request $id)"
  publish_retry "$id" "{\"instance\":\"$g\",\"os-migrateLive\":{\"host\":null,$body}"
  sleep $((1 + RANDOM % 3))
done
# the faults go on while the stream's migrations run (30 s at most)
for i in $(seq 1 30); do
  [[ -n $(in_flight) ]] || break
  sleep 1
done
kill "$driver" 2>/dev/null || true
wait "$driver" 2>/dev/null || true
# the restarts the driver left in the background end within 4 s; a frozen replica is thawed
sleep 5
for n in 1 2 3; do
  p=$("$LAB" scheduler "$n" pid)
  [[ -z $p ]] || kill -CONT "$p" 2>/dev/null || true
  "$LAB" scheduler "$n" heal >/dev/null
done
for h in $FERRY_LAB_HOSTS; do "$LAB" link "$h" up >/dev/null; done
note "stream done; bringing everything back"
"$LAB" broker start >/dev/null 2>&1 || true
"$LAB" db start >/dev/null 2>&1 || true
for n in 1 2 3; do "$LAB" scheduler "$n" start >/dev/null || fail "scheduler $n does not start"; done
for h in $FERRY_LAB_HOSTS; do "$LAB" agent "$h" start >/dev/null || fail "the agent of $h does not start"; done

# ---- afterwards, within a bound ------------------------------------------------------------------------
sent=${#reqs[@]}
list=$(printf "'%s'," "${reqs[@]}")
list=${list%,}
wait_sql 240 "SELECT count(*) FROM processed_requests WHERE request_id IN ($list)" "$sent" ||
  fail "requests without an outcome: $(sql "SELECT $sent - count(*) FROM processed_requests WHERE request_id IN ($list)")"
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
completed=$(sql "SELECT count(*) FROM migrations WHERE status = 'completed' AND request_id IN ($list)")
accepted=$(sql "SELECT count(*) FROM migrations WHERE request_id IN ($list)")
# the floor: two thirds of the accepted requests, and two fifths of all (a request for a guest
# that is already moving is refused, and the choice of guests is random)
((completed * 3 >= accepted * 2 && completed * 5 >= sent * 2)) ||
  fail "only $completed of $accepted accepted ($sent) requests ended in a completed migration (floor: 2/3 of the accepted, 2/5 of all)"
kinds=$(sql "SELECT count(*) FILTER (WHERE postcopy_active) || ' post-copy, ' || count(*) FILTER (WHERE block_migration = 'yes')
             || ' block' FROM migrations WHERE status = 'completed' AND request_id IN ($list)")
nhits=$(wc -l <"$hits")
((nhits >= 4)) || fail "only $nhits faults hit a migration in flight (at least 4 must): $(cat "$hits")"
ok "$completed of $accepted accepted ($sent) requests completed ($kinds; floor: 2/3 of the accepted, 2/5 of all); $nhits faults hit a migration in flight: $(sort "$hits" | tr '\n' ' ')"

# heartbeats carry the truth back into the database after agent restarts
sleep 6
over=$(sql "SELECT name FROM hosts WHERE used_memory_mb > capacity_memory_mb OR used_vcpus > capacity_vcpus")
[[ -z $over ]] || fail "hosts over capacity: $over"
check_usage
# every host's libvirt answers, and lists each guest on exactly one host, running (a paused or
# merely defined copy anywhere fails, and so does a host whose virsh does not answer)
declare -A on=()
for h in $FERRY_LAB_HOSTS; do
  doms=$("$LAB" virsh "$h" list --all --name) || fail "virsh list --all on $h failed"
  for d in $doms; do
    st=$("$LAB" virsh "$h" domstate "$d") || fail "virsh domstate $d on $h failed"
    on[$d]+="$h:$st "
  done
done
for g in "${guests[@]}"; do
  w=${on[$g]:-}
  [[ $w =~ ^compute[0-9]+:running\ $ ]] || fail "$g is on: [${w:-no host}] (must be running on exactly one host)"
  h=${w%%:*}
  [[ $(sql "SELECT host || ' ' || coalesce(task_state, '-') FROM instances WHERE name = '$g'") == "$h -" ]] ||
    fail "$g runs on $h but the database says $(sql "SELECT host, task_state FROM instances WHERE name = '$g'")"
  [[ $(allocs "$g") == "instance@$h" ]] || fail "$g runs on $h; its allocations: $(allocs "$g")"
done
ok "no host over capacity; usage = allocations; each guest runs on exactly one host, the one in the database, which alone holds its allocation"
wait_sql 30 "SELECT count(*) FROM outbox" 0 || fail "events left in the outbox"
ok "chaos run with seed $seed: $(grep -c 'kill -9\|restart\|freeze\|partition\|link of .* down' "$log") faults injected"
