#!/usr/bin/env bash
# ferry-scheduler end to end on the lab: requests published with amqp-publish (not ferry's
# code) move guests between real libvirt hosts through the real agents; the database, virsh
# on both hosts and the events on ferry.events are checked after each.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --hosts 2 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
logs=$FERRY_LAB_LOG_DIR
events=$FERRY_LAB_DIR/events.log
setsid amqp-consume --url "$FERRY_AMQP_URL" -e ferry.events -r 'migration.#' -- sh -c 'cat; echo' >"$events" 2>/dev/null &
consumer=$!
refusals=$FERRY_LAB_DIR/refusals.log
setsid amqp-consume --url "$FERRY_AMQP_URL" -e ferry.events -r 'request.#' -- sh -c 'cat; echo' >"$refusals" 2>/dev/null &
consumer2=$!
trap 'st=$?; kill $consumer $consumer2 2>/dev/null || true; lab_exit $st' EXIT

"$LAB" guest compute1 vm1 >/dev/null
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'vm1'" "compute1 running" || fail "vm1 not discovered"
ec2=$(sql "SELECT ec2_id FROM instances WHERE name = 'vm1'")
wait_sql 10 "SELECT count(*) FROM allocations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'vm1') AND host = 'compute1'" 1 ||
  fail "vm1 has no allocation on compute1"
ok "heartbeats: hosts and instance $ec2 recorded, with its allocation on compute1"

# ---- forecast (issue #18): the host samples the dirty rate, nothing moves ----------------------------
out=$("$CTL" --timeout 20000 forecast vm1 --bandwidth 8) || fail "forecast vm1: $out"
grep -q "^forecast for $ec2 (.*) on compute1: 128 MiB of memory, dirtied at [0-9]* MiB/s; link 8 MiB/s (request); pause allowed 300 ms" <<<"$out" ||
  fail "forecast vm1's first line: $out"
grep -q "^pre-copy  *yes " <<<"$out" && grep -q "^choice: pre-copy" <<<"$out" || fail "an idle guest's forecast: $out"
js=$("$CTL" -o json --timeout 20000 forecast vm1 --bandwidth 8) || fail "forecast -o json: $js"
# the tiny guest's 128 MiB are nearly all zero pages (a 5 KB kernel): the agent's sample finds a
# few MiB not zero, sent at 8 MiB/s, and the fixed costs (no migration to learn them from yet:
# forecast_setup_ms 500, the 1 s sample, forecast_switch_ms 100); the whole 128 MiB would be
# 16 s more
d=$(jq -r '.modes[0].duration_ms' <<<"$js")
nz=$(jq -r '.nonzero_mib' <<<"$js")
[[ $nz =~ ^[0-9]+$ ]] && ((nz >= 1 && nz <= 8)) || fail "vm1's non-zero memory: $js"
want=$((1600 + nz * 1000 / 8))
[[ $(jq -r '.modes[0].mode' <<<"$js") == pre-copy ]] && ((d >= want - 5 && d <= want + 5)) || fail "vm1's pre-copy forecast (want ~$want ms): $js"
grep -q "memory of vm1: [0-9]* of 1024 sampled pages not zero" "$FERRY_LAB_LOG_DIR/compute1.agent.log" || fail "no memory sample in compute1's log"
[[ $(sql "SELECT count(*) FROM migrations") == 0 ]] || fail "a forecast made a migration"
st=0; out=$("$CTL" --timeout 20000 forecast no-such-vm 2>&1) || st=$?
[[ $st == 1 && $out == *"forecast refused: no instance no-such-vm"* ]] || fail "forecast of no instance: $st $out"
# the same over HTTP
code=$(curl -sS -o "$FERRY_LAB_DIR/fc.json" -w '%{http_code}' -H "X-Auth-Token: $FERRY_API_TOKEN" "$FERRY_HTTP_URL/api/instances/vm1/forecast?bandwidth_mib_s=8&max_downtime_ms=300")
[[ $code == 200 && $(jq -r '.host + " " + .modes[0].mode + " " + (.memory_mib | tostring) + " " + .choice' "$FERRY_LAB_DIR/fc.json") == "compute1 pre-copy 128 pre-copy" ]] ||
  fail "GET /api/instances/vm1/forecast: $code $(cat "$FERRY_LAB_DIR/fc.json")"
code=$(curl -sS -o "$FERRY_LAB_DIR/fc.json" -w '%{http_code}' -H "X-Auth-Token: $FERRY_API_TOKEN" "$FERRY_HTTP_URL/api/instances/vm1/forecast?bandwidth_mib_s=0")
[[ $code == 400 ]] || fail "a forecast at 0 MiB/s over HTTP: $code $(cat "$FERRY_LAB_DIR/fc.json")"
code=$(curl -sS -o "$FERRY_LAB_DIR/fc.json" -w '%{http_code}' -H "X-Auth-Token: $FERRY_API_TOKEN" "$FERRY_HTTP_URL/api/instances/no-such-vm/forecast")
[[ $code == 404 ]] || fail "a forecast of no instance over HTTP: $code $(cat "$FERRY_LAB_DIR/fc.json")"
ok "forecast of idle vm1 at 8 MiB/s: $nz MiB not zero, pre-copy in $d ms (also over HTTP); no instance: refused (HTTP 404)"

# ---- the seed's story: i-xxxx to compute2, running -> migrating -> running ------------------------
req=$(newid)
before=$(last_hb vm1)
publish "$req" "{\"instance\":\"$ec2\",\"os-migrateLive\":{\"host\":\"compute2\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false}}"
wait_sql 60 "SELECT status FROM migrations WHERE request_id = '$req'" completed || fail "migration did not complete: $(sql "SELECT status, error FROM migrations WHERE request_id = '$req'")"
mig=$(sql "SELECT id FROM migrations WHERE request_id = '$req'")
[[ $(where vm1) == "compute2 running yes" ]] || fail "vm1 is at: $(where vm1)"
[[ $(sql "SELECT host || ' ' || vm_state || ' ' || coalesce(task_state, '-') FROM instances WHERE name = 'vm1'") == "compute2 running -" ]] ||
  fail "instance row: $(sql "SELECT host, vm_state, task_state FROM instances WHERE name = 'vm1'")"
[[ $(sql "SELECT string_agg(consumer_type || '@' || host, ',') FROM allocations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'vm1')") == "instance@compute2" ]] ||
  fail "allocations after: $(sql "SELECT consumer_type, host FROM allocations")"
check_usage
# the guest goes on counting after the move (it beats every second; the move may take less)
for _ in $(seq 1 30); do (( $(last_hb vm1) > before )) && break; sleep 0.2; done
(( $(last_hb vm1) > before )) || fail "vm1 heartbeat did not go on"
statuses=$(sql "SELECT string_agg(status, ' ' ORDER BY id) FROM migration_events WHERE migration_id = $mig AND kind = 'status'")
[[ $statuses == "scheduled preparing running completing completed" ]] || fail "status timeline: $statuses"
for st in scheduled preparing running completing completed; do
  grep -q "\"type\":\"migration.$mig.$st\"" "$events" || fail "no migration.$mig.$st event"
done
grep -q "\"type\":\"migration.$mig.completed\".*\"request\":\"$req\"" "$events" || fail "events do not carry the request id"
grep -q "migration=$mig .*Live migration $ec2 to compute2 finishes successfully." "$logs/compute1.agent.log" || fail "no success line in the source log"
grep -q "migration=$mig instance=$ec2 .*landed" "$logs/compute2.agent.log" || fail "no landing line in the destination log"
grep -q "migration=$mig instance=$ec2 .*resumed here after its migration" "$logs/compute2.agent.log" ||
  fail "the destination's resume line does not carry instance=$ec2"
grep -q "migration=$mig .*completed" "$logs/scheduler.log" || fail "no completion in the scheduler log"
ok "request -> migration $mig of $ec2: $statuses; host, allocations, events and the three logs agree"
# its forecast, taken before it moved (the source sampled vm1's dirty rate), and its error
[[ $(sql "SELECT forecast_mode || ' ' || forecast_converges || ' ' || (forecast_duration_ms > 0) || ' ' || (forecast_nonzero_mib BETWEEN 1 AND 8) FROM migrations WHERE id = $mig") == "pre-copy true true true" ]] ||
  fail "migration $mig's forecast: $(sql "SELECT forecast_mode, forecast_duration_ms, forecast_downtime_ms, forecast_nonzero_mib FROM migrations WHERE id = $mig")"
[[ $(sql "SELECT count(*) FROM migration_events WHERE migration_id = $mig AND kind = 'forecast' AND message LIKE 'forecast: pre-copy in %'") == 1 ]] ||
  fail "no forecast event for migration $mig"
show=$("$CTL" migration show "$mig") || fail "migration show $mig: $show"
grep -q "^  forecast   pre-copy [0-9.]* s, pause [0-9]* ms (dirty rate [0-9]* MiB/s, link [0-9]* MiB/s); took [0-9.]* s: [-+][0-9.]* %" <<<"$show" ||
  fail "migration show $mig has no forecast line: $show"
[[ $("$CTL" -o json migration show "$mig" | jq -r '.forecast_error_pct | type') == number ]] || fail "no forecast_error_pct"
ok "migration $mig's forecast: $(grep '^  forecast' <<<"$show" | sed 's/^  forecast   //')"

# ---- the same request again: one effect -------------------------------------------------------
publish "$req" "{\"instance\":\"$ec2\",\"os-migrateLive\":{\"host\":\"compute2\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false}}"
wait_sql 20 "SELECT count(*) FROM migrations WHERE request_id = '$req'" 1 || fail "duplicate made another migration"
sleep 1
grep -q "req=$req .*seen before" "$logs/scheduler.log" || fail "the duplicate was not recognised"
[[ $(sql "SELECT count(*) FROM migrations") == 1 && $(where vm1) == "compute2 running yes" ]] || fail "the duplicate had an effect"
ok "the same request id twice: one migration"

# ---- no destination: the scheduler picks the only host that fits ---------------------------------
"$LAB" guest compute1 vm2 >/dev/null
# running as the scheduler sees it: a guest starts paused for a moment, and a request for a paused
# guest is refused (a heartbeat sent then said so: a clean-clone CI run saw it)
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'vm2'" "compute1 running" || fail "vm2 not discovered running"
req2=$(newid)
publish "$req2" '{"instance":"vm2","os-migrateLive":{"host":null,"block_migration":false,"disk_over_commit":false,"post_copy":false}}'
wait_sql 60 "SELECT status || ' ' || dest_host FROM migrations WHERE request_id = '$req2'" "completed compute2" ||
  fail "no-destination migration: $(sql "SELECT status, dest_host, error FROM migrations WHERE request_id = '$req2'")"
[[ $(where vm2) == "compute2 running yes" ]] || fail "vm2 is at: $(where vm2)"
check_usage
ok "no destination given: compute2 chosen and used"

# ---- a full destination: refused with the reason ------------------------------------------------
sql "UPDATE hosts SET reserved_memory_mb = memory_mb * 2, capacity_memory_mb = 0 WHERE name = 'compute1'" >/dev/null
req3=$(newid)
publish "$req3" "{\"instance\":\"$ec2\",\"os-migrateLive\":{\"host\":\"compute1\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false}}"
wait_sql 20 "SELECT outcome FROM processed_requests WHERE request_id = '$req3'" refused || fail "full destination not refused"
reason=$(sql "SELECT reason FROM processed_requests WHERE request_id = '$req3'")
[[ $reason == "cannot migrate $ec2 to compute1: host compute1 is full: 128 MiB of memory needed, "*" MiB free" ]] || fail "reason: $reason"
grep -q "req=$req3 .*refused: $reason" "$logs/scheduler.log" || fail "the refusal is not logged with its reason"
for _ in $(seq 1 20); do grep -q "\"type\":\"request.$req3.refused\"" "$refusals" && break; sleep 0.2; done
[[ $(grep "\"type\":\"request.$req3.refused\"" "$refusals" | jq -r .body.reason) == "$reason" ]] ||
  fail "no request.$req3.refused event with the reason: $(cat "$refusals")"
[[ $(where vm1) == "compute2 running yes" ]] || fail "vm1 moved anyway"
sql "UPDATE hosts SET reserved_memory_mb = NULL WHERE name = 'compute1'" >/dev/null
ok "full destination refused: $reason"

# ---- an agent-reported failure: the guest stays on the source, allocations go back ------------------
"$LAB" guest compute2 d1 --dirty 64 --rate 48 >/dev/null
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'd1'" "compute2 running" || fail "d1 not discovered running"
# a guest rewriting 64 MiB: pre-copy at 8 MiB/s cannot move it, post-copy can within a minute;
# nothing can within 5 s
for _ in $(seq 1 10); do
  js=$("$CTL" -o json --timeout 20000 forecast d1 --bandwidth 8 --deadline 60) || fail "forecast d1: $js"
  (($(jq -r .dirty_rate_mib_s <<<"$js") >= 8)) && break
done
[[ $(jq -r '.modes[0].converges' <<<"$js") == false && $(jq -r .choice <<<"$js") == post-copy &&
  $(jq -r '.modes[2].downtime_ms' <<<"$js") == 100 ]] || fail "a busy guest's forecast: $js"
out=$("$CTL" --timeout 20000 forecast d1 --bandwidth 8 --deadline 5) || fail "forecast d1 --deadline 5: $out"
grep -q "^choice: none: no allowed mode meets max_downtime_ms 300 and deadline_s 5: pre-copy does not converge" <<<"$out" ||
  fail "an impossible deadline: $out"
ok "forecast of busy d1 ($(jq -r .dirty_rate_mib_s <<<"$js") MiB/s) at 8 MiB/s: $(grep '^choice' <<<"$out")"
wait_sql 30 "SELECT capacity_memory_mb > 1000 FROM hosts WHERE name = 'compute1'" t || fail "compute1 capacity not restored"
req4=$(newid)
publish "$req4" '{"instance":"d1","os-migrateLive":{"host":"compute1","block_migration":false,"disk_over_commit":false,"post_copy":false},
  "options":{"bandwidth_mib_s":32,"completion_timeout_s":2}}'
wait_sql 60 "SELECT status FROM migrations WHERE request_id = '$req4'" failed ||
  fail "failing migration: $(sql "SELECT status, error FROM migrations WHERE request_id = '$req4'")"
err=$(sql "SELECT error FROM migrations WHERE request_id = '$req4'")
[[ $err == *"completion timeout of 2 s reached"* ]] || fail "error text: $err"
[[ $(where d1) == "compute2 running yes" ]] || fail "d1 is at: $(where d1)"
[[ $(sql "SELECT host || ' ' || coalesce(task_state, '-') FROM instances WHERE name = 'd1'") == "compute2 -" ]] || fail "d1 row after failure"
[[ $(sql "SELECT string_agg(consumer_type || '@' || host, ',') FROM allocations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'd1')") == "instance@compute2" ]] ||
  fail "allocations after the failure: $(sql "SELECT consumer_type, host FROM allocations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'd1')")"
check_usage
ok "agent-reported failure: failed ($err), d1 still on compute2, allocations back"

# ---- objectives (issue #18): planned by a forecast before the claim; refused when none can hold ------
n0=$(sql "SELECT count(*) FROM processed_requests")
out=$("$CTL" --timeout 20000 migrate d1 compute1 --bandwidth 8 --objective-deadline 5 --dry-run) || fail "migrate --dry-run: $out"
grep -q "^forecast for .* link 8 MiB/s (request); .*deadline 5 s" <<<"$out" && grep -q "^choice: none: " <<<"$out" &&
  grep -q "^dry run: nothing was requested (post-copy is allowed only with --postcopy)" <<<"$out" || fail "migrate --dry-run: $out"
[[ $(sql "SELECT count(*) FROM processed_requests") == "$n0" ]] || fail "migrate --dry-run made a request"
st=0; out=$("$CTL" migrate d1 compute1 --bandwidth 8 --objective-deadline 5 2>&1) || st=$?
[[ $st == 1 && $out == *"refused: the forecast says no mode meets the objectives"*"post-copy not allowed by the request"*"deadline_s 5"* ]] ||
  fail "an impossible objective: $st $out"
[[ $(sql "SELECT count(*) FROM migrations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'd1') AND status NOT IN ('failed')") == 0 &&
  $(where d1) == "compute2 running yes" && $(sql "SELECT coalesce(task_state, '-') FROM instances WHERE name = 'd1'") == - ]] ||
  fail "the refused request changed something: $(sql "SELECT id, status FROM migrations") $(where d1)"
[[ $(sql "SELECT count(*) FROM processed_requests WHERE outcome = 'refused' AND reason LIKE 'the forecast says no mode meets the objectives%'") == 1 ]] ||
  fail "the refusal is not recorded with its reason"
ok "an impossible objective (deadline 5 s at 8 MiB/s) refused before the claim: ${out#*refused: }"
# d1 rewrites 64 MiB at 48 MiB/s: at 16 MiB/s pre-copy never ends and auto-converge takes about a
# minute (its throttle climbing); within 30 s and with a pause of at most 2 s, the plan is
# post-copy (allowed by --postcopy: its 64 MiB twice at 16 MiB/s)
out=$("$CTL" -o json migrate d1 compute1 --postcopy --bandwidth 16 --objective-downtime 2000 --objective-deadline 30 2>&1) ||
  fail "migrate d1 with objectives: $out"
m6=$(jq -r .migration <<<"$out")
wait_sql 120 "SELECT status FROM migrations WHERE id = $m6" completed ||
  fail "d1's migration with objectives: $(sql "SELECT status, error, objective_plan FROM migrations WHERE id = $m6")"
[[ $(sql "SELECT objective_plan LIKE 'post-copy chosen by the forecast: %' FROM migrations WHERE id = $m6") == t ]] ||
  fail "d1's plan: $(sql "SELECT objective_plan FROM migrations WHERE id = $m6")"
[[ $(sql "SELECT postcopy_active FROM migrations WHERE id = $m6") == t ]] || fail "d1's migration did not switch to post-copy"
# the downtime may come after the end (the source's own figures): the receipt gets it then
wait_sql 20 "SELECT receipt->'max_downtime_ms'->>'measured_ms' IS NOT NULL FROM migrations WHERE id = $m6" t ||
  fail "d1's receipt never got its downtime: $(sql "SELECT receipt, downtime_ms FROM migrations WHERE id = $m6")"
js=$("$CTL" -o json migration show "$m6") || fail "migration show $m6: $js"
dt=$(sql "SELECT downtime_ms FROM migrations WHERE id = $m6")
took=$(sql "SELECT (extract(epoch FROM finished_at - started_at) * 1000)::bigint FROM migrations WHERE id = $m6")
[[ $(jq -r '.receipt.max_downtime_ms | "\(.objective) \(.measured_ms) \(.met)"' <<<"$js") == "2000 $dt true" ]] ||
  fail "d1's receipt (downtime $dt ms): $(jq -c .receipt <<<"$js")"
met=false; ((took <= 30000)) && met=true
[[ $(jq -r '.receipt.deadline_s | "\(.objective) \(.measured_ms) \(.met)"' <<<"$js") == "30 $took $met" ]] ||
  fail "d1's receipt (took $took ms): $(jq -c .receipt <<<"$js")"
show=$("$CTL" migration show "$m6")
grep -q "^  receipt    max downtime met (paused $dt ms) deadline " <<<"$show" || fail "migration show $m6 has no receipt: $show"
# the receipt event (and, when the figure came after the end, the one that completed it)
[[ $(sql "SELECT count(*) FROM migration_events WHERE migration_id = $m6 AND kind = 'receipt' AND message LIKE 'receipt: max downtime 2000 ms % deadline 30 s %; plan: post-copy chosen %'") == 1 &&
   $(sql "SELECT count(*) FROM migration_events WHERE migration_id = $m6 AND kind = 'receipt' AND message LIKE 'receipt: max downtime 2000 ms met (paused $dt ms%'") == 1 ]] ||
  fail "no receipt event: $(sql "SELECT message FROM migration_events WHERE migration_id = $m6 AND kind = 'receipt'")"
for _ in $(seq 1 20); do grep -q "\"type\":\"migration.$m6.completed\"" "$events" && break; sleep 0.2; done
# the scheduler's completion event (the source's agent publishes one too, with its statistics)
[[ $(grep "\"type\":\"migration.$m6.completed\"" "$events" | jq -r 'select(.body.origin == "scheduler") | .body.receipt.max_downtime_ms.objective') == 2000 ]] ||
  fail "the completion event of $m6 has no receipt: $(grep "\"type\":\"migration.$m6.completed\"" "$events")"
[[ $(where d1) == "compute1 running yes" ]] || fail "d1 is at: $(where d1)"
check_usage
ok "objectives: d1 moved by post-copy as planned; receipt: $(grep '^  receipt' <<<"$show" | sed 's/^  receipt    //')"

# the plan is only a forecast: uncapped, the forecast assumes a 1000 MiB/s link and plans pre-copy
# (post-copy allowed, but only after 50 passes); compute1's link is capped at 16 MiB/s, where d1's
# pre-copy never ends, and its progress makes the scheduler switch it to post-copy to hold the
# deadline
"$LAB" link compute1 rate 16 >/dev/null || fail "could not cap compute1's link"
out=$("$CTL" -o json migrate d1 compute2 --postcopy --postcopy-after 50 --objective-deadline 90 2>&1) ||
  fail "migrate d1 back: $out"
m7=$(jq -r .migration <<<"$out")
wait_sql 120 "SELECT status FROM migrations WHERE id = $m7" completed ||
  fail "d1's migration back: $(sql "SELECT status, error, objective_plan FROM migrations WHERE id = $m7")"
"$LAB" link compute1 rate off >/dev/null
[[ $(sql "SELECT objective_plan LIKE 'pre-copy chosen by the forecast: %' FROM migrations WHERE id = $m7") == t ]] ||
  fail "d1's plan back: $(sql "SELECT objective_plan FROM migrations WHERE id = $m7")"
sw=$(sql "SELECT message FROM migration_events WHERE migration_id = $m7 AND kind = 'objective' ORDER BY id LIMIT 1")
[[ $sw == "deadline objective of 90 s at risk after "*": switching to post-copy" ]] || fail "no switch for the deadline: [$sw]"
[[ $(sql "SELECT postcopy_active FROM migrations WHERE id = $m7") == t ]] || fail "d1's migration back did not switch to post-copy"
js=$("$CTL" -o json migration show "$m7")
[[ $(jq -r '.receipt.actions[0]' <<<"$js") == "$sw" && $(jq -r '.receipt.deadline_s.objective' <<<"$js") == 90 ]] ||
  fail "d1's receipt back does not say what was done: $(jq -c .receipt <<<"$js")"
[[ $(where d1) == "compute2 running yes" ]] || fail "d1 is at: $(where d1)"
check_usage
ok "objectives: a pre-copy planned at 1000 MiB/s met a 16 MiB/s link and was switched to post-copy: $sw"

# ---- block migration of a guest on the shared instances path: refused in the checks ------------------
from=$(sql "SELECT host FROM instances WHERE name = 'vm1'")
to=compute1; [[ $from == compute1 ]] && to=compute2
req5=$(newid)
publish "$req5" "{\"instance\":\"vm1\",\"os-migrateLive\":{\"host\":\"$to\",\"block_migration\":true,\"disk_over_commit\":false,\"post_copy\":false}}"
wait_sql 60 "SELECT status FROM migrations WHERE request_id = '$req5'" failed ||
  fail "block migration of a shared disk: $(sql "SELECT status, error FROM migrations WHERE request_id = '$req5'")"
err=$(sql "SELECT error FROM migrations WHERE request_id = '$req5'")
[[ $err == *"block migration asked, but disk $FERRY_LAB_INSTANCES/vm1.qcow2 is on the instances path that $from and $to share"*"copied onto itself"* ]] ||
  fail "the refusal's reason: $err"
[[ $(where vm1) == "$from running yes" ]] || fail "vm1 is at: $(where vm1)"
m5=$(sql "SELECT id FROM migrations WHERE request_id = '$req5'")
[[ $(timeline "$m5") == "scheduled failed" ]] || fail "migration $m5 went further than the checks: $(timeline "$m5")"
ok "block migration of vm1 (shared disk) refused in the checks: $err"

# ---- migration policies (issue #18): chosen by selectors, a request's own options win ---------------
out=$("$CTL" policy set slow-admin --project admin --instance 'vm*' --bandwidth 64 --max-downtime 450 --priority 5) &&
  [[ $out == "policy slow-admin created" ]] || fail "policy set: $out"
"$CTL" policy set elsewhere --project nobody --bandwidth 1 --priority 100 >/dev/null || fail "policy set elsewhere"
out=$("$CTL" policy list) || fail "policy list: $out"
[[ $(awk 'NR > 1 {print $1}' <<<"$out" | xargs) == "elsewhere slow-admin" ]] || fail "policy list: $out"
st=0; out=$("$CTL" policy set Bad 2>&1) || st=$?
[[ $st == 1 && $out == *"refused: body.name: a policy name is"* ]] || fail "a bad policy name: $st $out"
# kept in ferry.dead with its reason, as any malformed request (taken out: the last section reads it)
[[ $(amqp-get --url "$FERRY_AMQP_URL" -q ferry.dead | jq -r '.type + " " + .body.name') == "policy.set Bad" ]] ||
  fail "the malformed policy.set is not in ferry.dead"
v2from=$(sql "SELECT host FROM instances WHERE name = 'vm2'")
v2to=compute1; [[ $v2from == compute1 ]] && v2to=compute2
req8=$(newid)
publish "$req8" "{\"instance\":\"vm2\",\"os-migrateLive\":{\"host\":\"$v2to\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false}}"
wait_sql 60 "SELECT status FROM migrations WHERE request_id = '$req8'" completed ||
  fail "vm2 under policy: $(sql "SELECT status, error FROM migrations WHERE request_id = '$req8'")"
[[ $(sql "SELECT policy || ' ' || bandwidth_mib_s || ' ' || max_downtime_ms FROM migrations WHERE request_id = '$req8'") == "slow-admin 64 450" ]] ||
  fail "the policy's defaults: $(sql "SELECT policy, bandwidth_mib_s, max_downtime_ms FROM migrations WHERE request_id = '$req8'")"
m8=$(sql "SELECT id FROM migrations WHERE request_id = '$req8'")
show=$("$CTL" migration show "$m8")
grep -q "^  policy     slow-admin$" <<<"$show" && grep -q "bandwidth 64 MiB/s" <<<"$show" || fail "migration show $m8: $show"
# the request's own bandwidth wins; a policy with objectives has them planned before the claim
"$CTL" policy set planned --instance vm2 --objective-deadline 600 --priority 50 >/dev/null || fail "policy set planned"
out=$("$CTL" -o json migrate vm2 "$v2from" --bandwidth 100 --wait) || fail "vm2 back: $out"
m9=$(sql "SELECT max(id) FROM migrations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'vm2')")
[[ $(sql "SELECT status || ' ' || policy || ' ' || bandwidth_mib_s || ' ' || objective_deadline_s FROM migrations WHERE id = $m9") == "completed planned 100 600" ]] ||
  fail "vm2 back under policy planned: $(sql "SELECT status, policy, bandwidth_mib_s, objective_deadline_s, objective_plan FROM migrations WHERE id = $m9")"
[[ $(sql "SELECT objective_plan LIKE 'pre-copy chosen by the forecast: %' AND (receipt->'deadline_s'->>'met')::boolean FROM migrations WHERE id = $m9") == t ]] ||
  fail "vm2's plan and receipt from the policy: $(sql "SELECT objective_plan, receipt FROM migrations WHERE id = $m9")"
for p in slow-admin elsewhere planned; do "$CTL" policy delete "$p" >/dev/null || fail "policy delete $p"; done
st=0; out=$("$CTL" policy show slow-admin 2>&1) || st=$?
[[ $st == 1 && $out == *"no policy slow-admin"* ]] || fail "policy show of a deleted one: $st $out"
check_usage
ok "policies: slow-admin's defaults applied and shown ($m8), a request's own bandwidth won, policy planned's objectives planned ($m9)"

# ---- the fixed costs learned from the capped migrations above (forecastop_learn_fixed) ---------------
# the median over the last 10 completed migrations under a cap of their duration less what they sent
# at it; the forecast's fixed costs add up to it (at least the 1 s sample and the 100 ms switch)
(($(sql "SELECT count(*) FROM migrations WHERE status = 'completed' AND bandwidth_mib_s > 0") >= 3)) ||
  fail "fewer than 3 capped migrations completed: $(sql "SELECT id, status, bandwidth_mib_s FROM migrations")"
f=$(sql "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY f))::bigint FROM (
         SELECT greatest(0, extract(epoch FROM finished_at - started_at) * 1000 - memory_processed_bytes / 1048576.0 / bandwidth_mib_s * 1000) AS f
         FROM migrations WHERE status = 'completed' AND bandwidth_mib_s > 0 ORDER BY id DESC LIMIT 10) x")
((f > 1100)) || f=1100 # the sample and the switch at least
js=$("$CTL" -o json --timeout 20000 forecast vm1 --bandwidth 8) || fail "forecast vm1: $js"
[[ $(jq -r '.fixed_from + " " + (.fixed_ms | tostring)' <<<"$js") == "learned $f" ]] || fail "learned fixed costs (want $f ms): $js"
nz=$(jq -r '.nonzero_mib' <<<"$js")
d=$(jq -r '.modes[0].duration_ms' <<<"$js")
((d >= f + nz * 1000 / 8 - 5 && d <= f + nz * 1000 / 8 + 5)) || fail "vm1's forecast with the learned fixed costs $f ms: $js"
ok "fixed costs learned from the capped migrations: $f ms (configured: 1600 ms); vm1 forecast at 8 MiB/s in $d ms"

# ---- a request that cannot be parsed is dead-lettered with its reason --------------------------------
amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -b '{"v":1,"type":"migration.request",' || fail "publish"
for _ in $(seq 1 30); do grep -q "request refused: invalid JSON" "$logs/scheduler.log" && break; sleep 0.2; done
grep -q "request refused: invalid JSON" "$logs/scheduler.log" || fail "garbage not refused"
[[ $(amqp-get --url "$FERRY_AMQP_URL" -q ferry.dead) == '{"v":1,"type":"migration.request",' ]] || fail "garbage not in ferry.dead"
ok "a malformed request is dead-lettered, the scheduler goes on"
