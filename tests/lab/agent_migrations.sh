#!/usr/bin/env bash
# ferry-agent on the lab, driven over the real broker with `ferryctl rpc` (no scheduler yet),
# checked with virsh on both hosts: pre-copy on shared storage, block migration, post-copy
# after iteration 1, auto-converge, abort, force-complete, a destination refusing for memory,
# malformed RPCs, and kill -9 of the source agent in the middle of a migration.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --hosts 2 >/dev/null
eval "$("$LAB" env)"
logs=$FERRY_LAB_LOG_DIR
a2=$(host_addr compute2)
# every event the agents publish, as an independent AMQP client sees them
events=$FERRY_LAB_DIR/events.log
setsid amqp-consume --url "$FERRY_AMQP_URL" -e ferry.events -r '#' -- sh -c 'cat; echo' >"$events" 2>/dev/null &
consumer=$!
trap 'st=$?; kill $consumer 2>/dev/null || true; lab_exit $st' EXIT

out=$("$CTL" ping compute1) && out2=$("$CTL" ping compute2) || fail "agents do not answer: $out $out2"
ok "agents answer: $out / $out2"

# ---- bad input: clear errors, nothing lost, the agent goes on ------------------------------
st=0; out=$(rpc compute1 no_such_method '{}' 2>&1) || st=$?
[[ $st -eq 1 && $out == *'"code":"invalid"'* && $out == *"unknown method 'rpc.no_such_method'"* ]] || fail "unknown method: $out"
st=0; out=$(rpc compute1 job_status '{"migration":"seven","instance":"x"}' 2>&1) || st=$?
[[ $st -eq 1 && $out == *'body.migration: expected int, got string'* ]] || fail "mistyped field: $out"
st=0; out=$(rpc compute1 job_status '{"migration":7,"instance":"not-a-uuid"}' 2>&1) || st=$?
[[ $st -eq 1 && $out == *'body.instance: not a UUID'* ]] || fail "bad uuid: $out"
st=0; out=$(rpc compute1 live_migration '{"migration":7,"instance":"11111111-2222-3333-4444-555555555555","dest":"compute2","dest_address":"x","bandwidth_mib_s":-1}' 2>&1) || st=$?
[[ $st -eq 1 && $out == *'body.bandwidth_mib_s: -1 is out of range'* ]] || fail "out of range: $out"
st=0; out=$(rpc compute1 check_source '{"migration":7,"instance":"11111111-2222-3333-4444-555555555555"}' 2>&1) || st=$?
[[ $st -eq 1 && $out == *'"code":"not_found"'* ]] || fail "unknown domain: $out"
amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r compute.compute1 -b '{"v":1,"type":' || fail "amqp-publish"
for _ in $(seq 1 30); do grep -q 'malformed RPC request' "$logs/compute1.agent.log" && break; sleep 0.1; done
grep -q 'malformed RPC request on ferry.compute.compute1: invalid JSON' "$logs/compute1.agent.log" || fail "garbage not reported"
"$CTL" ping compute1 >/dev/null || fail "agent stopped answering after bad input"
ok "malformed and invalid RPCs answered with clear errors; the agent keeps running"

# ---- one full migration through the agents ----------------------------------------------------
# migrate NAME MIGRATION_ID BLOCK(true|false) LIVE_MIGRATION_EXTRA_JSON
migrate() {
  local name=$1 m=$2 block=$3 extra=$4 u src dst out before after
  u=$(guest_uuid "$name") || fail "no guest $name"
  src=$(rpc compute1 check_source "{\"migration\":$m,\"instance\":\"$u\",\"block_migration\":$block}") || fail "check_source: $src"
  local body
  body=$(jq -c --argjson m "$m" --arg u "$u" --argjson b "$block" \
    '{migration:$m, instance:$u, domain_xml:.domain_xml, memory_mb:.memory_mb, post_copy:true, block_migration:$b, shared_probe:.shared_probe}' <<<"$src")
  dst=$(rpc compute2 check_destination "$body") || fail "check_destination: $dst"
  body=$(jq -c --argjson m "$m" --arg u "$u" --argjson b "$block" '{migration:$m, instance:$u, block_migration:$b, disks:.disks}' <<<"$src")
  out=$(rpc compute2 pre_live_migration "$body") || fail "pre_live_migration: $out"
  before=$(last_hb "$name")
  body=$(jq -c --argjson m "$m" --arg u "$u" --arg a "$a2" --argjson b "$block" --argjson x "$extra" \
    '{migration:$m, instance:$u, dest:"compute2", dest_address:$a, block_migration:$b} + $x' <<<'{}')
  out=$(rpc compute1 live_migration "$body") || fail "live_migration: $out"
  [[ $(jq -r .started <<<"$out") == true ]] || fail "live_migration did not start: $out"
  out=$(wait_job compute1 "$m" "$u" 180)
  [[ $(jq -r .state <<<"$out") == completed ]] || fail "migration $m of $name: $out"
  local post
  post=$(rpc compute2 post_live_migration "{\"migration\":$m,\"instance\":\"$u\"}") || fail "post_live_migration: $post"
  [[ $(where "$name") == "compute2 running yes" ]] || fail "$name is at: $(where "$name")"
  for _ in $(seq 1 30); do after=$(last_hb "$name"); ((after > before + 1)) && break; sleep 0.1; done
  ((after > before + 1)) || fail "$name heartbeat stopped at $before"
  printf '%s' "$out"
}

"$LAB" guest compute1 pre1 >/dev/null
# dirty_rate (a forecast's input, issue #18): QEMU's page sampling on an idle guest
idle=$(rpc compute1 dirty_rate "{\"instance\":\"$(guest_uuid pre1)\",\"seconds\":1}") || fail "dirty_rate: $idle"
[[ $(jq -r .mode <<<"$idle") == page-sampling && $(jq -r .seconds <<<"$idle") == 1 && $(jq -r .memory_mib <<<"$idle") -gt 0 ]] ||
  fail "dirty_rate of an idle guest: $idle"
st=0; out=$(rpc compute1 dirty_rate '{"instance":"11111111-2222-3333-4444-555555555555","seconds":11}' 2>&1) || st=$?
[[ $st -eq 1 && $out == *'body.seconds: 11 is out of range 1..10'* ]] || fail "dirty_rate seconds 11: $out"
st=0; out=$(rpc compute1 dirty_rate '{"instance":"11111111-2222-3333-4444-555555555555"}' 2>&1) || st=$?
[[ $st -eq 1 && $out == *'"code":"not_found"'* ]] || fail "dirty_rate of no domain: $out"
out=$(migrate pre1 101 false '{}')
grep -q "migration=101 .*Live migration i-[0-9a-f]* to compute2 finishes successfully." "$logs/compute1.agent.log" ||
  fail "the source did not log the seed's success line"
grep -q "migration=101 .*landed" "$logs/compute2.agent.log" || fail "the destination did not log the landing"
ok "pre-copy on shared storage: $(jq -c '{state, ms: .stats.time_elapsed_ms, downtime_ms: .stats.downtime_ms}' <<<"$out")"

"$LAB" guest compute1 blk1 --local-disk 64 >/dev/null
out=$(migrate blk1 102 true '{}')
"$LAB" shell compute2 test -f /var/lib/ferry-lab/local/blk1.qcow2 || fail "no disk image on compute2"
ok "block migration: $(jq -c '{state, ms: .stats.time_elapsed_ms, disk_total: .stats.disk_total}' <<<"$out")"

"$LAB" guest compute1 pc1 --dirty 64 --rate 48 >/dev/null
# a guest rewriting 64 MiB at up to 48 MiB/s (TCG runs it slower): its sample shows it, once it
# has started writing
for _ in $(seq 1 10); do
  busy=$(rpc compute1 dirty_rate "{\"instance\":\"$(guest_uuid pc1)\"}") || fail "dirty_rate: $busy"
  (($(jq -r .dirty_rate_mib_s <<<"$busy") >= 8)) && break
done
(($(jq -r .dirty_rate_mib_s <<<"$busy") >= 8 && $(jq -r .dirty_rate_mib_s <<<"$busy") > $(jq -r .dirty_rate_mib_s <<<"$idle") + 4)) ||
  fail "dirty_rate does not tell a busy guest ($busy) from an idle one ($idle)"
ok "dirty_rate: idle $(jq -c '{dirty_rate_mib_s, memory_mib, mode}' <<<"$idle"), busy $(jq -c '{dirty_rate_mib_s, memory_mib}' <<<"$busy")"
out=$(migrate pc1 103 false '{"post_copy":true,"postcopy_after_iterations":1,"bandwidth_mib_s":32}')
[[ $(jq -r .postcopy <<<"$out") == true ]] || fail "post-copy was not switched on: $out"
grep -q "migration=103 .*switched to post-copy after memory iteration" "$logs/compute1.agent.log" || fail "no post-copy switch logged"
ok "post-copy after iteration 1: $(jq -c '{state, postcopy, ms: .stats.time_elapsed_ms}' <<<"$out")"

"$LAB" guest compute1 ac1 --dirty 64 --rate 48 >/dev/null
out=$(migrate ac1 104 false '{"auto_converge":true,"auto_converge_initial":40,"auto_converge_increment":20,"bandwidth_mib_s":32}')
ok "auto-converge: $(jq -c '{state, ms: .stats.time_elapsed_ms, downtime_ms: .stats.downtime_ms}' <<<"$out")"

# the downtime ramp (Nova's schedule; issue #19, the convergence schedule of #18): the limit
# starts at 2000 ms and rises every 4 s to 8000 ms. At 16 MiB/s, 2000 ms allow QEMU to stop the
# guest with 32 MiB left, fewer than the 64 MiB rp1 keeps rewriting: it ends only after a raise
# (QEMU sends that last part unthrottled, so the pause itself is short)
"$LAB" guest compute1 rp1 --dirty 64 --rate 48 >/dev/null
# once it rewrites its memory (a guest just started has not begun yet)
for _ in $(seq 1 20); do
  busy=$(rpc compute1 dirty_rate "{\"instance\":\"$(guest_uuid rp1)\",\"seconds\":1}") || fail "dirty_rate of rp1: $busy"
  (($(jq -r .dirty_rate_mib_s <<<"$busy") >= 32)) && break
done
(($(jq -r .dirty_rate_mib_s <<<"$busy") >= 32)) || fail "rp1 does not rewrite its memory: $busy"
out=$(migrate rp1 109 false '{"bandwidth_mib_s":16,"max_downtime_ms":8000,"downtime_steps":4,"downtime_delay_ms":4000}')
grep -q "migration=109 .*maximum downtime raised to 3500 ms (step 1 of 4, every 4000 ms)" "$logs/compute1.agent.log" ||
  fail "the ramp's first step is not logged: $(grep 'migration=109 ' "$logs/compute1.agent.log" | tail -n 5)"
lims=$(grep '"type":"migration.109.progress"' "$events" | jq -r .body.stats.downtime_limit_ms | uniq | xargs)
[[ $lims == "2000 3500"* ]] || fail "the progress does not show the ramp: [$lims]"
dt=$(jq -r .stats.downtime_ms <<<"$out")
took=$(jq -r .stats.time_elapsed_ms <<<"$out")
((took >= 4000 && dt <= 8000)) || fail "rp1 ended after $took ms with a $dt ms pause: not what the ramp allowed"
grep -a "migration=109 " "$logs/compute1.agent.log" | grep -o 'maximum downtime raised to 3500 ms\|migration of i-[0-9a-f]* to compute2 completed' |
  head -n 1 | grep -q 3500 || fail "rp1 completed before the ramp's first raise"
ok "downtime ramp: limits $lims ms, ended after $took ms (after a raise) with a $dt ms pause"

# ---- a destination without the memory ------------------------------------------------------
u=$("$LAB" guest compute1 big1 >/dev/null && guest_uuid big1)
src=$(rpc compute1 check_source "{\"migration\":105,\"instance\":\"$u\"}")
body=$(jq -c --arg u "$u" '{migration:105, instance:$u, domain_xml:.domain_xml, memory_mb:100000000, shared_probe:.shared_probe}' <<<"$src")
st=0; out=$(rpc compute2 check_destination "$body" 2>&1) || st=$?
[[ $st -eq 1 && $out == *'"code":"refused"'* && $out == *'not enough free memory on compute2: the guest needs 100000000 MiB'* ]] || fail "memory check: $out"
ok "check_destination refuses a guest bigger than the free memory"
# a bridge that is not there
body=$(jq -c --arg u "$u" '{migration:105, instance:$u, memory_mb:.memory_mb, shared_probe:.shared_probe,
  domain_xml:(.domain_xml | sub("</devices>"; "<interface type=\"bridge\"><source bridge=\"nosuchbr0\"/></interface></devices>"))}' <<<"$src")
st=0; out=$(rpc compute2 check_destination "$body" 2>&1) || st=$?
[[ $st -eq 1 && $out == *'bridge nosuchbr0 of the guest'* ]] || fail "bridge check: $out"
ok "check_destination refuses a guest whose bridge is missing"

# ---- abort: the guest stays on the source ----------------------------------------------------
"$LAB" guest compute1 ab1 --dirty 64 --rate 48 >/dev/null
u=$(guest_uuid ab1)
out=$(rpc compute1 live_migration "{\"migration\":106,\"instance\":\"$u\",\"dest\":\"compute2\",\"dest_address\":\"$a2\",\"bandwidth_mib_s\":32}" 2>&1) || fail "live_migration: $out"
sleep 3
out=$(rpc compute1 abort "{\"migration\":106,\"instance\":\"$u\"}") || fail "abort: $out"
out=$(wait_job compute1 106 "$u" 60)
[[ $(jq -r .state <<<"$out") == cancelled ]] || fail "after abort: $out"
out=$(rpc compute2 rollback "{\"migration\":106,\"instance\":\"$u\"}" 2>&1) || fail "rollback: $out"
[[ $(where ab1) == "compute1 running yes" ]] || fail "after abort ab1 is at: $(where ab1)"
ok "abort: job cancelled, guest still running on compute1 only"

# ---- force-complete of a pre-copy that cannot converge -----------------------------------------
"$LAB" guest compute1 fc1 --dirty 64 --rate 48 >/dev/null
u=$(guest_uuid fc1)
# 16 MiB/s of bandwidth for 48 MiB/s of dirtying: pre-copy cannot finish by itself
out=$(rpc compute1 live_migration "{\"migration\":107,\"instance\":\"$u\",\"dest\":\"compute2\",\"dest_address\":\"$a2\",\"bandwidth_mib_s\":16}" 2>&1) || fail "live_migration: $out"
sleep 3
out=$(rpc compute1 force_complete "{\"migration\":107,\"instance\":\"$u\"}") || fail "force_complete: $out"
[[ $(jq -r .action <<<"$out") == paused ]] || fail "force_complete: $out"
out=$(wait_job compute1 107 "$u" 120)
[[ $(jq -r .state <<<"$out") == completed ]] || fail "after force-complete: $out"
post=$(rpc compute2 post_live_migration "{\"migration\":107,\"instance\":\"$u\"}") || fail "post_live_migration after force-complete: $post"
[[ $(where fc1) == "compute2 running yes" ]] || fail "after force-complete fc1 is at: $(where fc1)"
ok "force-complete: paused to finish, running on compute2"

# ---- completion timeout: abort, or switch to post-copy when asked ------------------------------
"$LAB" guest compute1 ct1 --dirty 64 --rate 48 >/dev/null
u=$(guest_uuid ct1)
out=$(rpc compute1 live_migration "{\"migration\":110,\"instance\":\"$u\",\"dest\":\"compute2\",\"dest_address\":\"$a2\",\"bandwidth_mib_s\":32,\"completion_timeout_s\":3}" 2>&1) || fail "live_migration: $out"
out=$(wait_job compute1 110 "$u" 60)
[[ $(jq -r .state <<<"$out") == failed && $(jq -r .error <<<"$out") == "completion timeout of 3 s reached (libvirt: "* ]] ||
  fail "completion timeout (abort): $out"
[[ $(where ct1) == "compute1 running yes" ]] || fail "after the timeout ct1 is at: $(where ct1)"
ok "completion timeout aborts: $(jq -r .error <<<"$out")"
"$LAB" guest compute1 ct2 --dirty 64 --rate 48 >/dev/null
u=$(guest_uuid ct2)
out=$(rpc compute1 live_migration "{\"migration\":111,\"instance\":\"$u\",\"dest\":\"compute2\",\"dest_address\":\"$a2\",\"bandwidth_mib_s\":32,\"post_copy\":true,\"postcopy_after_iterations\":1000,\"completion_timeout_s\":3,\"completion_action\":\"postcopy\"}" 2>&1) || fail "live_migration: $out"
out=$(wait_job compute1 111 "$u" 60)
[[ $(jq -r .state <<<"$out") == completed && $(jq -r .postcopy <<<"$out") == true ]] || fail "completion timeout (post-copy): $out"
grep -q "migration=111 .*switched to post-copy after memory iteration [0-9]* (completion timeout)" "$logs/compute1.agent.log" ||
  fail "no post-copy switch on the completion timeout"
[[ $(where ct2) == "compute2 running yes" ]] || fail "ct2 is at: $(where ct2)"
ok "completion timeout switches to post-copy when asked"

# ---- kill -9 of the source agent in the middle ---------------------------------------------------
"$LAB" guest compute1 k1 --dirty 64 --rate 48 >/dev/null
u=$(guest_uuid k1)
out=$(rpc compute1 live_migration "{\"migration\":108,\"instance\":\"$u\",\"dest\":\"compute2\",\"dest_address\":\"$a2\",\"bandwidth_mib_s\":32,\"auto_converge\":true}" 2>&1) || fail "live_migration: $out"
sleep 2
"$LAB" agent compute1 kill >/dev/null
"$LAB" agent compute1 start >/dev/null
out=$(rpc compute1 job_status "{\"migration\":108,\"instance\":\"$u\"}") || fail "job_status after restart: $out"
state=$(jq -r .state <<<"$out")
[[ $(jq -r .adopted <<<"$out") == true ]] || fail "the restarted agent did not find its job: $out"
[[ $state == running || $state == completed ]] || fail "after restart: $out"
# asking again to migrate is the same job, not a second one
again=$(rpc compute1 live_migration "{\"migration\":108,\"instance\":\"$u\",\"dest\":\"compute2\",\"dest_address\":\"$a2\"}") || fail "$again"
[[ $(jq -r .job.adopted <<<"$again") == true ]] || fail "a second job was started: $again"
out=$(wait_job compute1 108 "$u" 180)
[[ $(jq -r .state <<<"$out") == completed ]] || fail "after the agent restart the migration ended: $out"
[[ $(where k1) == "compute2 running yes" ]] || fail "k1 is at: $(where k1)"
grep -q "migration=108 .*found migration 108 unfinished from before a restart" "$logs/compute1.agent.log" || fail "no recovery logged"
ok "kill -9 of the source agent: restarted, job_status tells the truth ($state, then completed)"

# ---- events ---------------------------------------------------------------------------------
grep -q "domain pre1 resumed here after its migration" "$logs/compute2.agent.log" || fail "no resume event on the destination"
ok "lifecycle events seen on both hosts"
u=$(guest_uuid pre1)
for t in "host.compute1.heartbeat" "host.compute2.heartbeat" "instance.$u.migrating" "instance.$u.running" \
  "migration.104.progress" "migration.101.completed" "migration.103.postcopy" "migration.106.cancelled" \
  "instance.$u.resumed"; do
  grep -q "\"type\":\"$t\"" "$events" || fail "no $t event on ferry.events"
done
grep '"type":"migration.101.completed"' "$events" | jq -e '.body.stats.downtime_ms >= 0 and .body.dest == "compute2"' >/dev/null ||
  fail "migration.101.completed lacks its final stats"
# the next heartbeats (every 5 s in the lab) list k1 on compute2 and no longer on compute1
hb_ok=0
for _ in $(seq 1 40); do
  if grep '"type":"host.compute1.heartbeat"' "$events" | tail -n 1 | jq -e '.body.domains | map(select(.name == "k1")) | length == 0' >/dev/null &&
    grep '"type":"host.compute2.heartbeat"' "$events" | tail -n 1 | jq -e '.body.domains | map(select(.name == "k1" and .state == "running" and .instance_id != null)) | length == 1' >/dev/null; then
    hb_ok=1; break
  fi
  sleep 0.25
done
[[ $hb_ok == 1 ]] || fail "heartbeats do not show k1 moved to compute2"
ok "events on ferry.events: heartbeats, instance migrating/running/resumed, progress, postcopy, completed, cancelled"
