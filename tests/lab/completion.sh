#!/usr/bin/env bash
# What a completion timeout does, through ferry (issues #18, #19), and the policies of the
# scheduler's configuration file with a host group selector (issue #18), on the lab:
#  1. a [policy NAME] of the scheduler's file is in the database at its start, shown as the
#     file's; ferryctl may not change or delete it;
#  2. completion_action abort: a guest that cannot converge, --completion-timeout 3: the
#     migration ends at 3 s, the guest stays running on its host;
#  3. a host group set by the operator (ferryctl host group) selects the file's policy: the
#     migration takes its timeout (4 s) and action (pause) and completes with the guest paused
#     to finish; it runs on the destination; `migration show` says so;
#  4. completion_action postcopy: switched to post-copy at the timeout, completed; asked without
#     post-copy allowed: refused at intake with the reason;
#  5. a running migration's bandwidth cap changed by the target a drain's budget sets (the owner
#     asks the source's set_bandwidth; libvirt's migrate-getspeed shows it);
#  6. the policy removed from the file: gone from the database at the next start;
#  7. issue #19: each migration's settings read back from libvirt once QEMU's job began
#     (settings_verified, `migration show`), checked in steps 2 and 5; stall detection: a guest
#     that re-dirties its memory faster than a 4 MiB/s cap, on an agent with stall_timeout_s 5,
#     is aborted as stalled and stays; the progress's dirty rate and rate stored;
#  8. auto-converge throttling the guest: the stored throttle rises while the migration runs.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
FERRY_LAB_SCHEDULER_EXTRA=$'completion_action = abort\n[policy rack-pause]\nhost_group = rack1\npriority = 10\ncompletion_timeout_s = 4\ncompletion_action = pause' \
  "$LAB" up --hosts 2 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
logs=$FERRY_LAB_LOG_DIR
ctl() { "$CTL" --timeout 20000 "$@"; }
out=$FERRY_LAB_DIR/completion.out

# ---- 1. the file's policy ------------------------------------------------------------------------
wait_sql 20 "SELECT source || ' ' || host_group || ' ' || completion_timeout_s || ' ' || completion_action FROM migration_policies WHERE name = 'rack-pause'" \
  "config rack1 4 pause" || fail "the file's policy is not in the database"
ctl policy list >"$out" || fail "policy list: $(cat "$out")"
grep -q "^rack-pause  *10 .* rack1  *config " "$out" || fail "policy list: $(cat "$out")"
ctl policy show rack-pause >"$out" || fail "policy show: $(cat "$out")"
grep -q "^  kept in    the scheduler's configuration file$" "$out" && grep -q "completion timeout 4 s, then pause$" "$out" ||
  fail "policy show: $(cat "$out")"
st=0; ctl policy set rack-pause --bandwidth 1 >"$out" 2>&1 || st=$?
[[ $st == 1 && $(cat "$out") == *"refused: policy rack-pause is defined in the scheduler's configuration file ([policy rack-pause]): change it there" ]] ||
  fail "policy set of the file's policy: $st $(cat "$out")"
st=0; ctl policy delete rack-pause >"$out" 2>&1 || st=$?
[[ $st == 1 && $(cat "$out") == *"defined in the scheduler's configuration file"* ]] || fail "policy delete of the file's policy: $st $(cat "$out")"
[[ $(sql "SELECT coalesce(bandwidth_mib_s::text, 'unset') FROM migration_policies WHERE name = 'rack-pause'") == unset ]] ||
  fail "a refused policy set changed the file's policy"
ok "the file's policy rack-pause is in the database as the file's; ferryctl may not change or delete it"

# ---- 2. abort at the timeout ---------------------------------------------------------------------
busy_guest compute1 c1
ctl migrate c1 compute2 --bandwidth 16 --completion-timeout 3 --wait >"$out" 2>&1 && fail "a migration that cannot converge completed: $(cat "$out")"
m1=$(sql "SELECT max(id) FROM migrations")
[[ $(sql "SELECT completion_action || ' ' || coalesce(policy, 'none') FROM migrations WHERE id = $m1") == "abort none" ]] ||
  fail "migration $m1: $(sql "SELECT completion_action, policy FROM migrations WHERE id = $m1")"
wait_sql 30 "SELECT status FROM migrations WHERE id = $m1" failed || fail "migration $m1 did not fail: $(sql "SELECT status, error FROM migrations WHERE id = $m1")"
[[ $(sql "SELECT error FROM migrations WHERE id = $m1") == *"completion timeout of 3 s reached"* ]] ||
  fail "migration $m1's error: $(sql "SELECT error FROM migrations WHERE id = $m1")"
[[ $(where c1) == "compute1 running yes" ]] || fail "after the abort c1 is at: $(where c1)"
# what the source read back from libvirt once QEMU's job began: the request's cap and the
# scheduler's default max downtime (300 ms); and QEMU's one connection, on the migration network
verified="max downtime 300 ms, bandwidth 16 MiB/s, 1 connection to $("$LAB" maddr compute2) from $("$LAB" maddr compute1)"
[[ $(sql "SELECT settings_verified FROM migrations WHERE id = $m1") == "$verified" ]] ||
  fail "migration $m1's verified settings: $(sql "SELECT settings_verified FROM migrations WHERE id = $m1")"
[[ $(sql "SELECT origin || ' ' || host || ' ' || message FROM migration_events WHERE migration_id = $m1 AND kind = 'settings_verified'") == "source compute1 $verified" ]] ||
  fail "no settings_verified event of migration $m1"
ctl migration show "$m1" | grep -qx "  verified   $verified" || fail "migration show $m1: $(ctl migration show "$m1")"
grep -q "migration=$m1 .*settings verified in libvirt: $verified" "$logs/compute1.agent.log" || fail "no verification in compute1's agent log"
ok "completion_action abort: migration $m1 ended at its 3 s timeout ($(sql "SELECT error FROM migrations WHERE id = $m1")); c1 stays on compute1"

# ---- 3. a host group selects the file's policy: pause at its timeout -------------------------------
st=0; ctl host group compute1 'Rack 1' >"$out" 2>&1 || st=$?
[[ $st == 1 && $(cat "$out") == *"body.group: a host group is 1 to 63 of a-z 0-9"* ]] || fail "a bad host group: $st $(cat "$out")"
st=0; ctl host group compute9 rack1 >"$out" 2>&1 || st=$?
[[ $st == 1 && $(cat "$out") == *"no host compute9"* ]] || fail "the host group of no host: $st $(cat "$out")"
out2=$(ctl host group compute1 rack1) && [[ $out2 == "compute1: host group rack1" ]] || fail "host group: $out2"
[[ $(ctl -o json host show compute1 | jq -r .host_group) == rack1 ]] || fail "host show has no host group"
t0=$(now_ms)
ctl migrate c1 compute2 --bandwidth 16 --wait >"$out" 2>&1 || fail "migrate c1 under rack-pause: $(cat "$out")"
m2=$(sql "SELECT max(id) FROM migrations")
[[ $(sql "SELECT status || ' ' || policy || ' ' || completion_timeout_s || ' ' || completion_action FROM migrations WHERE id = $m2") == "completed rack-pause 4 pause" ]] ||
  fail "migration $m2: $(sql "SELECT status, policy, completion_timeout_s, completion_action, error FROM migrations WHERE id = $m2")"
grep -q "migration=$m2 .*guest paused so that the migration completes (completion timeout of 4 s)" "$logs/compute1.agent.log" ||
  fail "no pause at the timeout in compute1's agent log"
wait_sql 20 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'c1'" "compute2 running" || fail "c1 not seen on compute2"
[[ $(where c1) == "compute2 running yes" ]] || fail "after the pause c1 is at: $(where c1)"
wait_sql 10 "SELECT origin || ' ' || host || ' ' || message FROM migration_events WHERE migration_id = $m2 AND kind = 'guest_paused'" \
  "source compute1 guest paused so that the migration completes (completion timeout of 4 s)" || fail "no guest_paused event of migration $m2"
ctl migration events "$m2" | grep -q "guest paused so that the migration completes (completion timeout of 4 s)" || fail "migration events $m2: no pause"
show=$(ctl migration show "$m2") || fail "migration show $m2: $show"
grep -q "^  timeout    4 s, then pause$" <<<"$show" && grep -q "^  policy     rack-pause$" <<<"$show" || fail "migration show $m2: $show"
ok "host group rack1 selected policy rack-pause: migration $m2 paused c1 at its 4 s timeout and completed in $(($(now_ms) - t0)) ms; c1 runs on compute2"

# ---- 4. post-copy at the timeout; asked without post-copy: refused ----------------------------------
st=0; ctl migrate c1 compute1 --completion-timeout 3 --completion-action postcopy >"$out" 2>&1 || st=$?
[[ $st == 1 && $(cat "$out") == *"options.completion_action postcopy needs post-copy"* ]] || fail "postcopy without post-copy: $st $(cat "$out")"
st=0; ctl migrate c1 compute1 --completion-action resume >"$out" 2>&1 || st=$?
[[ $st == 2 && $(cat "$out") == *"--completion-action takes abort, postcopy or pause, not 'resume'"* ]] || fail "a bad action: $st $(cat "$out")"
ctl migrate c1 compute1 --bandwidth 16 --postcopy --postcopy-after 1000 --completion-timeout 3 --completion-action postcopy --wait >"$out" 2>&1 ||
  fail "migrate c1 with postcopy at the timeout: $(cat "$out")"
m3=$(sql "SELECT max(id) FROM migrations")
[[ $(sql "SELECT status || ' ' || postcopy_active || ' ' || completion_action || ' ' || coalesce(policy, 'none') FROM migrations WHERE id = $m3") == "completed true postcopy none" ]] ||
  fail "migration $m3: $(sql "SELECT status, postcopy_active, completion_action, policy, error FROM migrations WHERE id = $m3")"
grep -q "migration=$m3 .*switched to post-copy after memory iteration [0-9]* (completion timeout)" "$logs/compute2.agent.log" ||
  fail "no post-copy switch at the timeout in compute2's agent log"
[[ $(where c1) == "compute1 running yes" ]] || fail "after post-copy c1 is at: $(where c1)"
ok "completion_action postcopy: migration $m3 switched at its 3 s timeout and completed; without --postcopy refused at intake"

# ---- 5. a running migration's cap changed as a drain's budget is shared anew -----------------------
# (the drainer writes migrations.bandwidth_target; the owner reads it with its lease and asks the
# source, which sets it in libvirt: virsh migrate-getspeed says it)
ctl migrate c1 compute2 --bandwidth 8 >"$out" 2>&1 || fail "migrate c1 at 8 MiB/s: $(cat "$out")"
m4=$(sql "SELECT max(id) FROM migrations")
wait_sql 30 "SELECT status FROM migrations WHERE id = $m4" running || fail "migration $m4 not running"
# `running` is recorded when the agent has started its migrate call; QEMU has the job's speed a
# moment later (before, libvirt reports its unlimited default: a CI run read 8796093022207)
speed() { "$LAB" virsh compute1 migrate-getspeed c1 2>/dev/null | tr -d ' '; }
for _ in $(seq 1 100); do [[ $(speed) == 8 ]] && break; sleep 0.1; done
[[ $(speed) == 8 ]] || fail "c1's speed before: $(speed)"
sql "UPDATE migrations SET bandwidth_target = 24 WHERE id = $m4" >/dev/null
wait_sql 15 "SELECT bandwidth_mib_s FROM migrations WHERE id = $m4" 24 || fail "the cap of migration $m4 was not changed"
[[ $(speed) == 24 ]] || fail "c1's speed after: $(speed)"
[[ $(sql "SELECT message FROM migration_events WHERE migration_id = $m4 AND kind = 'bandwidth'") == "bandwidth cap set from 8 to 24 MiB/s on compute1: "* ]] ||
  fail "no bandwidth event: $(sql "SELECT kind, message FROM migration_events WHERE migration_id = $m4")"
grep -q "migration=$m4 .*bandwidth cap set from 8 to 24 MiB/s (read back from libvirt)" "$logs/compute1.agent.log" || fail "no bandwidth line in compute1's agent log"
ctl migration abort "$m4" >/dev/null || fail "abort $m4"
wait_sql 30 "SELECT status FROM migrations WHERE id = $m4" cancelled || fail "migration $m4 not cancelled"
ok "migration $m4's cap raised from 8 to 24 MiB/s while it ran (libvirt's migrate-getspeed, the event, the agent's log)"
stop_guest c1

# ---- 6. the host group cleared; the policy gone from the file ---------------------------------------
[[ $(ctl host group compute1 --none) == "compute1: no host group" ]] || fail "host group --none"
[[ $(sql "SELECT coalesce(host_group, 'none') FROM hosts WHERE name = 'compute1'") == none ]] || fail "host group not cleared"
"$LAB" scheduler 1 stop >/dev/null
sed -i '/^\[policy rack-pause\]/,/^\[log\]/{/^\[log\]/!d}' "$FERRY_LAB_DIR/scheduler.conf"
grep -q "policy" "$FERRY_LAB_DIR/scheduler.conf" && fail "the policy is still in the file"
"$LAB" scheduler 1 start >/dev/null
wait_sql 30 "SELECT count(*) FROM migration_policies" 0 || fail "the file's old policy is still in the database"
grep -q "policies of the configuration file: 0 written, 1 removed" "$logs/scheduler.log" || fail "no log of the removed policy"
ok "host group cleared; the policy taken out of the file is gone from the database at the next start"

# ---- 7. stall detection ---------------------------------------------------------------------------
# compute1's agent with a 5 s stall timeout: a guest that re-dirties its 64 MiB faster than the
# 4 MiB/s cap sends each pass in ~16 s, and its remaining memory reaches no new low after the
# first pass (it ends each pass near QEMU's threshold, 4 MiB/s x 300 ms)
FERRY_LAB_AGENT_EXTRA='stall_timeout_s = 5' "$LAB" agent compute1 restart >/dev/null || fail "restart compute1's agent"
grep -qx "stall_timeout_s = 5" "$FERRY_LAB_DIR/hosts/compute1/agent.conf" || fail "compute1's agent.conf has no stall_timeout_s"
busy_guest compute1 c2
ctl migrate c2 compute2 --bandwidth 4 >"$out" 2>&1 || fail "migrate c2 at 4 MiB/s: $(cat "$out")"
m5=$(sql "SELECT max(id) FROM migrations")
# the progress's figures stored while it runs (libvirt's dirty rate in bytes, the stream's rate)
wait_sql 40 "SELECT dirty_rate_bytes_s > 0 AND transfer_bytes_s > 0 FROM migrations WHERE id = $m5" t ||
  fail "migration $m5's rates: $(sql "SELECT status, dirty_rate_bytes_s, transfer_bytes_s FROM migrations WHERE id = $m5")"
rates=$(ctl migration show "$m5" | grep '^  rates ') || fail "migration show $m5 has no rates: $(ctl migration show "$m5")"
[[ $rates =~ ^\ \ rates\ +sent\ at\ [0-9.]+\ MiB/s,\ guest\ dirtied\ [0-9.]+\ MiB/s\ \(last\ progress\)$ ]] || fail "migration show $m5: '$rates'"
wait_sql 90 "SELECT status FROM migrations WHERE id = $m5" failed ||
  fail "migration $m5 did not fail: $(sql "SELECT status, iteration, memory_remaining_bytes, error FROM migrations WHERE id = $m5")"
err=$(sql "SELECT error FROM migrations WHERE id = $m5")
[[ $err == *"stalled: remaining memory did not shrink below "*" bytes for 5 s"* ]] || fail "migration $m5's error: $err"
grep -q "migration=$m5 .*migration stalled: remaining memory has not shrunk below [0-9]* bytes for 5 s: aborting" "$logs/compute1.agent.log" ||
  fail "no stall in compute1's agent log"
[[ $(where c2) == "compute1 running yes" ]] || fail "after the stall c2 is at: $(where c2)"
ok "stall detection: migration $m5 aborted ($err); c2 stays on compute1; progress stored: $(sed "s/^ *rates *//" <<<"$rates")"

# ---- 8. auto-converge throttles the guest ---------------------------------------------------------
"$LAB" agent compute1 restart >/dev/null || fail "restart compute1's agent with its defaults"
ctl migrate c2 compute2 --auto-converge --bandwidth 16 >"$out" 2>&1 || fail "migrate c2 with auto-converge: $(cat "$out")"
m6=$(sql "SELECT max(id) FROM migrations")
# QEMU throttles once the guest dirtied more than half of what a pass sent, twice, then raises it
# each pass (libvirt's defaults: 20 %, then +10 %); the stored figure must rise while it runs
first=""; last=""; seen=""
for _ in $(seq 1 240); do
  IFS="|" read -r st pct < <(sql "SELECT status, coalesce(cpu_throttle_pct, -1) FROM migrations WHERE id = $m6")
  if ((pct > 0)); then
    [[ -z $first ]] && first=$pct
    [[ $pct != "$last" ]] && seen="$seen $pct"
    last=$pct
    ((last > first)) && break
  fi
  [[ $st == running || $st == scheduled || $st == preparing || $st == queued ]] || break
  sleep 0.25
done
[[ -n $first ]] && ((last > first)) ||
  fail "auto-converge's throttle did not rise in migration $m6 (seen:${seen:- none}; $(sql "SELECT status, iteration, error FROM migrations WHERE id = $m6"))"
show=$(ctl migration show "$m6")
[[ $(sql "SELECT status FROM migrations WHERE id = $m6") != running ]] || grep -q "vCPUs throttled [0-9]* %" <<<"$show" ||
  fail "migration show $m6: $show"
ctl migration abort "$m6" >/dev/null 2>&1 || true
wait_sql 60 "SELECT status IN ('cancelled', 'completed') FROM migrations WHERE id = $m6" t ||
  fail "migration $m6 did not end: $(sql "SELECT status, error FROM migrations WHERE id = $m6")"
ok "auto-converge throttled c2's vCPUs during migration $m6:$seen % ($(sql "SELECT status FROM migrations WHERE id = $m6"))"
stop_guest c2
