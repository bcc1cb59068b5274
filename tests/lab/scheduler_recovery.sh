#!/usr/bin/env bash
# ferry-scheduler when things go wrong, on the lab with real agents and libvirt hosts:
#  1. 3 replicas; the one driving a migration is killed -9 mid-way: another adopts it when its
#     lease expires, asks the source (job_status) and completes it; every status is recorded
#     and published exactly once
#  2. a lone replica killed -9 mid-migration and started again resumes its own at once
#  3. an operator's abort (migration.abort on the request queue) of a running migration:
#     cancelled, the guest stays on the source, allocations back
#  4. force-complete of a migration that cannot converge: the source pauses the guest, the
#     migration completes, the guest runs on the destination
#  5. limits: max_outgoing_per_source = 1 queues the second and third request; the third is
#     aborted while queued (cancelled at once); the second runs when the first is done
#  6. deadlines: deadline_running_s = 4 aborts a slow migration: failed, guest on the source
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --hosts 2 --schedulers 3 >/dev/null
eval "$("$LAB" env)"
logs=$FERRY_LAB_LOG_DIR
events=$FERRY_LAB_DIR/events.log
setsid amqp-consume --url "$FERRY_AMQP_URL" -e ferry.events -r 'migration.#' -- sh -c 'cat; echo' >"$events" 2>/dev/null &
consumer=$!
trap 'st=$?; kill $consumer 2>/dev/null || true; lab_exit $st' EXIT
sched_log() { [[ $1 == scheduler1 ]] && echo "$logs/scheduler.log" || echo "$logs/$1.log"; }
# request ID INSTANCE DEST [OPTIONS-JSON [POST_COPY]]
request() {
  publish "$1" "{\"instance\":\"$2\",\"os-migrateLive\":{\"host\":\"$3\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":${5:-false}},\"options\":${4:-{\}}}"
}
mig_of() { sql "SELECT id FROM migrations WHERE request_id = '$1'"; }
# wait_status REQUEST STATUS SECONDS: until the request's migration has STATUS
wait_status() {
  wait_sql "$3" "SELECT status FROM migrations WHERE request_id = '$1'" "$2" ||
    fail "request $1: migration [$(sql "SELECT id, status, error FROM migrations WHERE request_id = '$1'")]," \
      "request [$(sql "SELECT outcome, reason FROM processed_requests WHERE request_id = '$1'")]"
}
# post-copy after the first pass of 64 MiB at 4 MiB/s: ~16 s running, then it completes
SLOW_POSTCOPY='{"bandwidth_mib_s":4,"postcopy_after_iterations":1}'
# each status of migration ID published exactly once (one message id per status)
published_once() {
  local st n
  for st in $2; do
    n=$(grep "\"type\":\"migration.$1.$st\"" "$events" | jq -r 'select(.body.origin == "scheduler") | .id' | sort -u | wc -l)
    [[ $n == 1 ]] || fail "migration.$1.$st published with $n distinct ids"
  done
}

# ---- 1. a replica killed -9 mid-migration: another adopts and completes it -----------------------
busy_guest compute1 r1
req=$(newid)
request "$req" r1 compute2 "$SLOW_POSTCOPY" true
wait_status "$req" running 30
mig=$(mig_of "$req")
owner=$(sql "SELECT owner FROM migrations WHERE id = $mig")
sleep 2
[[ $(sql "SELECT status FROM migrations WHERE id = $mig") == running ]] || fail "r1's migration ended too soon to test anything"
"$LAB" scheduler "${owner#scheduler}" kill >/dev/null
killed_at=$(date +%s)
ok "migration $mig running under $owner; $owner killed -9"
wait_sql 120 "SELECT status FROM migrations WHERE id = $mig" completed ||
  fail "after the kill: $(sql "SELECT status, owner, epoch, error FROM migrations WHERE id = $mig")"
new=$(sql "SELECT owner || ' ' || epoch FROM migrations WHERE id = $mig")
[[ ${new% *} != "$owner" && ${new#* } -ge 2 ]] || fail "owner/epoch after adoption: $new (was $owner)"
adopter=${new% *}
msg=$(sql "SELECT message FROM migration_events WHERE migration_id = $mig AND kind = 'adopted'")
[[ $msg == "adopted by $adopter from $owner (lease expired "*" s ago), epoch "* ]] || fail "adoption event: $msg"
grep -q "migration=$mig .*adopted by $adopter" "$(sched_log "$adopter")" || fail "no adoption line in $adopter's log"
grep -q "migration=$mig .*resumed migration $mig: the source's job is" "$(sched_log "$adopter")" ||
  fail "the adopter did not ask the source"
[[ $(where r1) == "compute2 running yes" ]] || fail "r1 is at: $(where r1)"
[[ $(allocs r1) == "instance@compute2" ]] || fail "r1 allocations: $(allocs r1)"
check_usage
[[ $(timeline "$mig") == "scheduled preparing running completing completed" ]] || fail "timeline: $(timeline "$mig")"
wait_sql 20 "SELECT count(*) FROM outbox" 0 || fail "events left in the outbox"
published_once "$mig" "scheduled preparing running completing completed"
stop_guest r1
ok "migration $mig completed under $adopter (epoch ${new#* }, $(( $(date +%s) - killed_at )) s after the kill); each status recorded and published once"

# ---- 2. a lone replica killed -9 and started again resumes its own at once --------------------------
for n in 1 2 3; do [[ scheduler$n == "$adopter" ]] || "$LAB" scheduler "$n" stop >/dev/null; done
busy_guest compute2 r2
req=$(newid)
request "$req" r2 compute1 "$SLOW_POSTCOPY" true
wait_status "$req" running 30
mig=$(mig_of "$req")
sleep 1
"$LAB" scheduler "${adopter#scheduler}" kill >/dev/null
"$LAB" scheduler "${adopter#scheduler}" start >/dev/null
wait_sql 10 "SELECT count(*) FROM migration_events WHERE migration_id = $mig AND kind = 'adopted'" 1 ||
  fail "not resumed within 10 s of the restart (the lease is 10 s: it must not wait for it)"
msg=$(sql "SELECT message FROM migration_events WHERE migration_id = $mig AND kind = 'adopted'")
[[ $msg == "resumed by $adopter after its restart, epoch 2" ]] || fail "resume event: $msg"
wait_sql 120 "SELECT status FROM migrations WHERE id = $mig" completed ||
  fail "after the restart: $(sql "SELECT status, error FROM migrations WHERE id = $mig")"
[[ $(where r2) == "compute1 running yes" && $(allocs r2) == "instance@compute1" ]] || fail "r2: $(where r2) / $(allocs r2)"
check_usage
stop_guest r2
ok "a restarted lone replica resumed migration $mig at once and completed it"
for n in 1 2 3; do "$LAB" scheduler "$n" start >/dev/null; done

# ---- 3. abort of a running migration --------------------------------------------------------------
busy_guest compute1 r3
req=$(newid)
request "$req" r3 compute2 '{"bandwidth_mib_s":16}'
wait_status "$req" running 30
mig=$(mig_of "$req")
sleep 1
publish "$(newid)" "{\"migration\":$mig}" migration.abort
wait_sql 60 "SELECT status FROM migrations WHERE id = $mig" cancelled ||
  fail "abort: $(sql "SELECT status, error FROM migrations WHERE id = $mig")"
[[ $(sql "SELECT error FROM migrations WHERE id = $mig") == "cancelled: aborted by the operator" ]] ||
  fail "abort reason: $(sql "SELECT error FROM migrations WHERE id = $mig")"
[[ $(where r3) == "compute1 running yes" && $(allocs r3) == "instance@compute1" ]] || fail "r3: $(where r3) / $(allocs r3)"
[[ $(sql "SELECT coalesce(task_state, '-') FROM instances WHERE name = 'r3'") == - ]] || fail "r3 still migrating"
[[ $(sql "SELECT count(*) FROM migration_events WHERE migration_id = $mig AND origin = 'operator' AND kind = 'abort'") == 1 ]] ||
  fail "the operator's abort is not in the timeline"
check_usage
# an abort of a migration that has ended is refused, and changes nothing
publish "$(newid)" "{\"migration\":$mig}" migration.abort
for _ in $(seq 1 30); do grep -q "migration=$mig .*migration.abort of migration $mig refused: migration $mig has already ended: cancelled" "$logs"/scheduler*.log && break; sleep 0.2; done
grep -q "migration=$mig .*refused: migration $mig has already ended: cancelled" "$logs"/scheduler*.log || fail "second abort not refused"
stop_guest r3
ok "abort of running migration $mig: cancelled, r3 still on compute1, allocations back; a second abort refused"

# ---- 4. force-complete of a migration that cannot converge --------------------------------------------
busy_guest compute1 f1
req=$(newid)
request "$req" f1 compute2 '{"bandwidth_mib_s":16}'
wait_status "$req" running 30
mig=$(mig_of "$req")
sleep 3
publish "$(newid)" "{\"migration\":$mig}" migration.force_complete
wait_sql 90 "SELECT status FROM migrations WHERE id = $mig" completed ||
  fail "force-complete: $(sql "SELECT status, error FROM migrations WHERE id = $mig")"
[[ $(sql "SELECT message FROM migration_events WHERE migration_id = $mig AND kind = 'force_complete' AND origin = 'scheduler'") == \
   "force-complete on compute1: guest paused to finish" ]] || fail "force-complete event: $(sql "SELECT origin, message FROM migration_events WHERE migration_id = $mig AND kind = 'force_complete'")"
[[ $(where f1) == "compute2 running yes" && $(allocs f1) == "instance@compute2" ]] || fail "f1: $(where f1) / $(allocs f1)"
check_usage
stop_guest f1
ok "force-complete of migration $mig: the guest paused to finish, completed, f1 runs on compute2"

# ---- 5. limits: the second request waits in queued ----------------------------------------------------
conf=$FERRY_LAB_DIR/scheduler.conf
for n in 1 2 3; do "$LAB" scheduler "$n" stop >/dev/null; done
sed -i '/^\[scheduler\]/a max_outgoing_per_source = 1' "$conf"
"$LAB" scheduler 1 start >/dev/null
busy_guest compute2 q1
"$LAB" guest compute2 q2 >/dev/null
"$LAB" guest compute2 q3 >/dev/null
wait_sql 30 "SELECT count(*) FROM instances WHERE name IN ('q2', 'q3') AND vm_state = 'running'" 2 || fail "q2, q3 not running"
r1=$(newid) r2=$(newid) r3=$(newid)
request "$r1" q1 compute1 '{"bandwidth_mib_s":8,"postcopy_after_iterations":1}' true
wait_status "$r1" running 30
request "$r2" q2 compute1
request "$r3" q3 compute1
wait_sql 20 "SELECT count(*) FROM processed_requests WHERE request_id IN ('$r2', '$r3')" 2 || fail "q2, q3 requests not taken"
[[ $(sql "SELECT string_agg(status, ' ' ORDER BY id) FROM migrations WHERE request_id IN ('$r2', '$r3')") == "queued queued" ]] ||
  fail "q2, q3 not queued: $(sql "SELECT status FROM migrations WHERE request_id IN ('$r2', '$r3')") $(sql "SELECT reason FROM processed_requests WHERE request_id IN ('$r2', '$r3')")"
m2=$(mig_of "$r2") m3=$(mig_of "$r3")
[[ $(sql "SELECT message FROM migration_events WHERE migration_id = $m2 AND status = 'queued'") == \
   *"waits: compute2 already has 1 outgoing migrations (max_outgoing_per_source = 1)" ]] || fail "queued reason: $(sql "SELECT message FROM migration_events WHERE migration_id = $m2")"
publish "$(newid)" "{\"migration\":$m3}" migration.abort
wait_sql 10 "SELECT status FROM migrations WHERE id = $m3" cancelled || fail "queued abort: $(sql "SELECT status FROM migrations WHERE id = $m3")"
[[ $(allocs q3) == "instance@compute2" ]] || fail "q3 allocations after the queued abort: $(allocs q3)"
[[ $(sql "SELECT status FROM migrations WHERE id = $m2") == queued ]] || fail "q2 left the queue before q1 ended"
wait_sql 120 "SELECT string_agg(status, ' ' ORDER BY id) FROM migrations WHERE request_id IN ('$r1', '$r2')" "completed completed" ||
  fail "q1, q2: $(sql "SELECT id, status, error FROM migrations WHERE request_id IN ('$r1', '$r2')")"
[[ $(timeline "$m2") == "queued scheduled preparing running completing completed" ]] || fail "q2 timeline: $(timeline "$m2")"
[[ $(timeline "$m3") == "queued cancelled" ]] || fail "q3 timeline: $(timeline "$m3")"
first_done=$(sql "SELECT max(at) FROM migration_events WHERE migration_id = $(mig_of "$r1") AND status = 'completed'")
[[ $(sql "SELECT at >= '$first_done' FROM migration_events WHERE migration_id = $m2 AND status = 'scheduled'") == t ]] ||
  fail "q2 was scheduled before q1 completed"
[[ $(where q2) == "compute1 running yes" && $(where q3) == "compute2 running yes" ]] || fail "q2: $(where q2), q3: $(where q3)"
check_usage
stop_guest q1
ok "max_outgoing_per_source = 1: q2 queued then run after q1; q3 aborted while queued"

# ---- 6. deadlines: a migration running too long is aborted -------------------------------------------
"$LAB" scheduler 1 stop >/dev/null
sed -i '/^\[scheduler\]/a deadline_running_s = 4' "$conf"
"$LAB" scheduler 1 start >/dev/null
busy_guest compute1 d1
req=$(newid)
request "$req" d1 compute2 '{"bandwidth_mib_s":16}'
wait_sql 60 "SELECT status FROM migrations WHERE request_id = '$req'" failed ||
  fail "deadline: $(sql "SELECT status, error FROM migrations WHERE request_id = '$req'")"
err=$(sql "SELECT error FROM migrations WHERE request_id = '$req'")
[[ $err == "deadline: still running after 4 s (deadline_running_s): aborted" ]] || fail "deadline error: $err"
[[ $(where d1) == "compute1 running yes" && $(allocs d1) == "instance@compute1" ]] || fail "d1: $(where d1) / $(allocs d1)"
check_usage
stop_guest d1
ok "deadline_running_s = 4: the slow migration was aborted and failed; d1 still on compute1"

[[ $(sql "SELECT count(*) FROM migrations WHERE finished_at IS NULL") == 0 ]] || fail "migrations left unfinished"
wait_sql 20 "SELECT count(*) FROM outbox" 0 || fail "events left in the outbox"
ok "nothing left in a non-terminal status; the outbox is empty"
