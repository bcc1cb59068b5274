#!/usr/bin/env bash
# The operator's surfaces on the lab, with real agents and libvirt hosts:
#  ferryctl (host list/show/disable/enable/evacuate, instance list, migrate [--wait],
#  instances live_migration, migration list/show/events/abort/force-complete), each with
#  -o json parsed by jq, and the HTTP API (os-migrateLive with the ORBIT body and post_copy
#  true migrating a dirtying guest in post-copy, the JSON reads, abort, errors, /metrics,
#  /healthz).
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
# migrations without a bandwidth of their own (the ORBIT body has none) get 32 MiB/s: the
# dirtying guest's pre-copy cannot converge then, so post-copy after the first pass is certain
# (unlimited, a fast pass sometimes converged by itself: seen once in CI)
export FERRY_LAB_SCHEDULER_EXTRA="bandwidth_mib_s = 32"
"$LAB" up --hosts 3 --schedulers 2 >/dev/null
eval "$("$LAB" env)"
out=$FERRY_LAB_DIR/out
ctl() { "$CTL" "$@"; }
api() { curl -sS -H "X-Auth-Token: $FERRY_API_TOKEN" "$@"; }
# code METHOD PATH [BODY]: prints the HTTP status, the body goes to $out.body
code() {
  local m=$1 p=$2
  shift 2
  curl -sS -o "$out.body" -w '%{http_code}' -X "$m" -H "X-Auth-Token: $FERRY_API_TOKEN" "$FERRY_HTTP_URL$p" "$@"
}
running_guest() { # HOST NAME [guest options]: started, and seen running by the scheduler
  local h=$1 n=$2
  shift 2
  "$LAB" guest "$h" "$n" "$@" >/dev/null
  wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = '$n'" "$h running" || fail "$n not seen running on $h"
}

running_guest compute1 vm1
running_guest compute1 vm2 --project demo
ec2=$(sql "SELECT ec2_id FROM instances WHERE name = 'vm1'")

# ---- host list / host show: the seed's table ------------------------------------------------------
ctl host list >"$out" || fail "host list: $(cat "$out")"
[[ $(head -n 1 "$out") == "HOST"*"STATE"*"ALIVE"*"cpu"*"mem(mb)"*"disk(gb)"*"INSTANCES"*"MIGRATIONS" ]] || fail "host list header: $(head -n 1 "$out")"
[[ $(grep -c '^compute[123] .*enabled .*yes ' "$out") == 3 ]] || fail "host list: $(cat "$out")"
[[ $(ctl -o json host list | jq -r '[.hosts[].name] | join(",")') == "compute1,compute2,compute3" ]] || fail "host list -o json"
ctl host show compute1 >"$out" || fail "host show: $(cat "$out")"
totals=$(sql "SELECT vcpus || ' ' || memory_mb || ' ' || disk_gb FROM hosts WHERE name = 'compute1'")
read -r tv tm td <<<"$totals"
# HOST (16) PROJECT (16) cpu (8) mem(mb) (8) disk(gb): exactly the seed's columns
expected=$(printf '%-16s%-16s%-8s%-8s%s\n%-16s%-16s%-8s%-8s%s\n%-16s%-16s%-8s%-8s%s\n%-16s%-16s%-8s%-8s%s' \
  HOST PROJECT cpu 'mem(mb)' 'disk(gb)' compute1 '' "$tv" "$tm" "$td" compute1 admin 1 128 1 compute1 demo 1 128 1)
[[ $(cat "$out") == "$expected" ]] || fail "host show compute1:
$(cat "$out")
wanted:
$expected"
[[ $(head -n 1 "$out") == "HOST            PROJECT         cpu     mem(mb) disk(gb)" ]] || fail "not the seed's header"
[[ $(ctl -o json host show compute1 | jq -r '[.projects[] | "\(.project):\(.memory_mb)"] | join(",")') == "admin:128,demo:128" ]] ||
  fail "host show -o json"
st=0; ctl host show nosuch >"$out" 2>&1 || st=$?
[[ $st == 1 && $(cat "$out") == "ferryctl: no host nosuch" ]] || fail "host show nosuch: $st $(cat "$out")"
ok "host list and host show (the seed's table: totals, then usage per project); -o json; unknown host"

# ---- instance list -------------------------------------------------------------------------------------
ctl instance list --host compute1 >"$out"
grep -qP "^INSTANCE\t$ec2\tvm1\tadmin\trunning\t-\tcompute1$" "$out" || fail "instance list: $(cat "$out")"
[[ $(ctl -o json instance list | jq -r '.instances[] | select(.name == "vm2") | .project + "@" + .host') == demo@compute1 ]] ||
  fail "instance list -o json"
ok "instance list, --host, -o json"

# ---- host disable / enable -------------------------------------------------------------------------------
ctl host disable compute3 --reason "disk swap" >"$out" || fail "disable: $(cat "$out")"
[[ $(sql "SELECT state || ':' || state_reason FROM hosts WHERE name = 'compute3'") == "disabled:disk swap" ]] || fail "compute3 not disabled"
st=0; ctl migrate vm1 compute3 >"$out" 2>&1 || st=$?
[[ $st == 1 && $(cat "$out") == "ferryctl: refused: cannot migrate $ec2 to compute3: host compute3 is disabled" ]] ||
  fail "migrate to a disabled host: $st $(cat "$out")"
ctl host enable compute3 >/dev/null || fail "enable"
[[ $(sql "SELECT state || ':' || coalesce(state_reason, '-') FROM hosts WHERE name = 'compute3'") == "enabled:-" ]] || fail "compute3 not enabled"
ok "host disable --reason refuses migrations to it (with the reason), enable"

# ---- migrate --wait with post-copy, on a dirtying guest --------------------------------------------------
running_guest compute1 pc --dirty 64 --rate 48
sleep 2
ctl migrate pc compute2 --postcopy --bandwidth 16 --wait >"$out" 2>&1 || fail "migrate --wait: $(cat "$out")"
grep -q "^migration [0-9]* accepted: pc to compute2" "$out" || fail "no acceptance line: $(cat "$out")"
for st in scheduled preparing running completing completed; do grep -q "^migration [0-9]*: $st" "$out" || fail "no $st line: $(cat "$out")"; done
grep -q "^migration [0-9]*: [0-9]*%, [0-9]* MiB of 128 MiB left, iteration [0-9]*" "$out" || fail "no progress line: $(cat "$out")"
grep -q "^migration [0-9]*: switched to post-copy" "$out" || fail "no post-copy line: $(cat "$out")"
grep -q "now runs on compute2 (post-copy, downtime [0-9]* ms)" "$out" || fail "no final line: $(cat "$out")"
[[ $(where pc) == "compute2 running yes" ]] || fail "pc is at $(where pc)"
stop_guest pc
ok "migrate --postcopy --wait: statuses, progress, the post-copy switch, exit 0"

# the seed's spelling, and -o json
ctl -o json instances live_migration "$ec2" compute2 >"$out" || fail "instances live_migration: $(cat "$out")"
mig=$(jq -r 'select(.accepted) | .migration' "$out")
[[ $mig =~ ^[0-9]+$ && $(jq -r .dest "$out") == compute2 ]] || fail "instances live_migration -o json: $(cat "$out")"
wait_sql 60 "SELECT status FROM migrations WHERE id = $mig" completed || fail "migration $mig did not complete"
[[ $(where vm1) == "compute2 running yes" ]] || fail "vm1 is at $(where vm1)"
ok "instances live_migration $ec2 compute2 (the seed's command): migration $mig completed"

# ---- migration list / show / events --------------------------------------------------------------------------
ctl migration list >"$out"
[[ $(head -n 1 "$out") == "ID"*"STATUS"*"INSTANCE"*"NAME"*"SOURCE"*"DEST"*"TIME"*"ERROR" ]] || fail "migration list header"
grep -q "^$mig *completed *$ec2 *vm1 *compute1 *compute2 " "$out" || fail "migration list: $(cat "$out")"
[[ $(ctl -o json migration list --status completed | jq '.migrations | length') == 2 ]] || fail "migration list --status"
ctl migration show "$mig" >"$out"
grep -q "^migration $mig: completed" "$out" && grep -q "^  from       compute1" "$out" && grep -q "^  to         compute2" "$out" ||
  fail "migration show: $(cat "$out")"
[[ $(ctl -o json migration show "$mig" | jq -r '.status + " " + .instance_id') == "completed $ec2" ]] || fail "migration show -o json"
[[ $(ctl -o json migration events "$mig" | jq -r '[.events[] | select(.kind == "status") | .status] | join(" ")') == \
   "scheduled preparing running completing completed" ]] || fail "migration events -o json"
ctl migration events "$mig" | grep -q "source *compute1 .*completed" || fail "migration events has no source line"
st=0; ctl migration show 99999 >"$out" 2>&1 || st=$?
[[ $st == 1 && $(cat "$out") == "ferryctl: no migration 99999" ]] || fail "show of an unknown migration: $(cat "$out")"
st=0; ctl migration show abc >"$out" 2>&1 || st=$?
[[ $st == 2 ]] || fail "show abc exit $st"
ok "migration list [--status], show, events (the timeline), -o json; unknown ids"

# ---- abort and force-complete from ferryctl ------------------------------------------------------------------
running_guest compute1 ab --dirty 64 --rate 48
sleep 2
ctl -o json migrate ab compute3 --bandwidth 16 >"$out" || fail "migrate ab: $(cat "$out")"
mab=$(jq -r .migration "$out")
wait_sql 30 "SELECT status FROM migrations WHERE id = $mab" running || fail "ab not running"
[[ $(ctl instance list | grep -P "\tab\t" | cut -f6) == migrating ]] || fail "instance list does not show ab migrating"
ctl migration abort "$mab" >"$out" || fail "abort: $(cat "$out")"
[[ $(cat "$out") == "migration $mab: abort requested (it was running)" ]] || fail "abort said: $(cat "$out")"
wait_sql 60 "SELECT status FROM migrations WHERE id = $mab" cancelled || fail "not cancelled"
st=0; ctl migration force-complete "$mab" >"$out" 2>&1 || st=$?
[[ $st == 1 && $(cat "$out") == "ferryctl: migration force-complete refused: migration $mab has already ended: cancelled" ]] ||
  fail "force-complete of an ended migration: $st $(cat "$out")"
ctl -o json migrate ab compute3 --bandwidth 16 >"$out" || fail "migrate ab again: $(cat "$out")"
mfc=$(jq -r .migration "$out")
wait_sql 30 "SELECT status FROM migrations WHERE id = $mfc" running || fail "ab not running again"
sleep 2
ctl migration force-complete "$mfc" >/dev/null || fail "force-complete"
wait_sql 90 "SELECT status FROM migrations WHERE id = $mfc" completed || fail "force-complete did not complete"
[[ $(where ab) == "compute3 running yes" ]] || fail "ab is at $(where ab)"
stop_guest ab
ok "migration abort (cancelled; instance list showed it migrating), force-complete (completed), refusals"

# a migration that fails: --wait exits 1 with the reason
running_guest compute2 tf --dirty 64 --rate 48
sleep 2
st=0; ctl migrate tf compute1 --bandwidth 16 --completion-timeout 2 --wait >"$out" 2>&1 || st=$?
[[ $st == 1 ]] && grep -q "^ferryctl: migration [0-9]* failed: .*completion timeout of 2 s reached" "$out" ||
  fail "failing migrate --wait: exit $st: $(cat "$out")"
stop_guest tf
ok "migrate --wait of a failing migration: exit 1 with the reason"

# on a terminal, --wait draws a progress bar in place (a pseudo-terminal from script(1))
busy_guest compute2 tty1
script -qec "$CTL migrate tty1 compute3 --postcopy --bandwidth 16 --wait" /dev/null >"$out" 2>&1 || fail "migrate --wait on a tty: $(cat "$out")"
grep -q $'\r  \[[#-]\{30\}\] *[0-9]*%  [0-9]* MiB of 128 MiB left  iteration' "$out" || fail "no progress bar on the terminal: $(cat -v "$out")"
grep -q "now runs on compute3" "$out" || fail "no final line on the terminal: $(cat -v "$out")"
stop_guest tty1
ok "migrate --wait on a terminal: a progress bar redrawn in place"

# ---- host evacuate -----------------------------------------------------------------------------------------------
ctl host evacuate compute1 --dry-run >"$out" || fail "evacuate --dry-run: $(cat "$out")"
grep -q "would migrate .* (vm2) away from compute1" "$out" || fail "dry run: $(cat "$out")"
[[ $(sql "SELECT state FROM hosts WHERE name = 'compute1'") == enabled ]] || fail "the dry run changed the host"
ctl host evacuate compute1 --wait >"$out" 2>&1 || fail "evacuate --wait: $(cat "$out")"
grep -q "^compute1: [1-9][0-9]* of [0-9]* instances moved away, 0 failed" "$out" || fail "evacuate summary: $(cat "$out")"
[[ $(sql "SELECT count(*) FROM instances WHERE host = 'compute1' AND vm_state = 'running'") == 0 ]] ||
  fail "running instances left on compute1: $(sql "SELECT name FROM instances WHERE host = 'compute1'")"
# an evacuation is a drain without a deadline (issue #18): the scheduler's, with its receipt
evd=$(sql "SELECT id FROM drains WHERE host = 'compute1' ORDER BY id DESC LIMIT 1")
[[ $(sql "SELECT state || ':' || state_reason FROM hosts WHERE name = 'compute1'") == "maintenance:drain $evd" ]] || fail "compute1 not in maintenance"
[[ $(sql "SELECT status || ' ' || (receipt->>'failed') FROM drains WHERE id = $evd") == "completed 0" ]] ||
  fail "the evacuation's drain: $(sql "SELECT status, receipt FROM drains WHERE id = $evd")"
[[ $(where vm2) == compute[23]" running yes" ]] || fail "vm2 is at $(where vm2)"
ctl host enable compute1 >/dev/null
check_usage
ok "host evacuate: --dry-run changes nothing; --wait moves every running instance away (drain $evd), host in maintenance"

# Ctrl-C during evacuate --wait: what has not finished is aborted, the guest stays, exit 1. The
# busy guest cannot converge at the lab's 32 MiB/s default, so its migration is still running.
busy_guest compute1 ev1
"$CTL" host evacuate compute1 --wait >"$out" 2>"$out.err" &  # not through ctl(): $! must be ferryctl itself
evp=$!
ev1_mig="SELECT id FROM migrations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'ev1') ORDER BY id DESC LIMIT 1"
wait_sql 30 "SELECT status FROM migrations WHERE id = ($ev1_mig)" running || fail "the evacuation of ev1 never ran: $(cat "$out" "$out.err")"
kill -INT "$evp"
st=0; wait "$evp" || st=$?
[[ $st == 1 ]] || fail "interrupted evacuate --wait: exit $st: $(cat "$out" "$out.err")"
grep -q "interrupted: the unfinished migrations were asked to abort; waiting for their end" "$out.err" ||
  fail "no word of the abort on stderr: $(cat "$out.err")"
mev=$(sql "$ev1_mig")
[[ $(sql "SELECT status || ' ' || error FROM migrations WHERE id = $mev") == "cancelled cancelled: aborted by the operator" ]] ||
  fail "ev1's migration: $(sql "SELECT status, error FROM migrations WHERE id = ($ev1_mig)")"
grep -q "^compute1: 0 of 1 instances moved away, 1 failed or cancelled" "$out" || fail "interrupted evacuate summary: $(cat "$out")"
[[ $(where ev1) == "compute1 running yes" && $(allocs ev1) == "instance@compute1" ]] || fail "ev1: $(where ev1) / $(allocs ev1)"
ctl host enable compute1 >/dev/null
stop_guest ev1
check_usage
[[ $(sql "SELECT status FROM drains WHERE host = 'compute1' ORDER BY id DESC LIMIT 1") == cancelled ]] || fail "the interrupted evacuation's drain is not cancelled"
ok "host evacuate --wait interrupted (SIGINT): its drain cancelled, the unfinished migration aborted, ev1 still on compute1, exit 1"

# ---- the HTTP API ----------------------------------------------------------------------------------------------------
running_guest compute2 hp --dirty 64 --rate 48
sleep 2
# the ORBIT seed's body, byte for byte in shape (its trailing comma included)
[[ $(code POST /v2/admin/servers/hp/action -H 'Content-Type: application/json' --data-binary '{
    "os-migrateLive": {
        "host": "compute3",
        "block_migration": false,
        "disk_over_commit": false,
        "post_copy": true,
    }
  }') == 202 ]] || fail "os-migrateLive: $(cat "$out.body")"
mhp=$(jq -r .migration "$out.body")
[[ $(jq -r '.dest + " " + .instance_id' "$out.body") == "compute3 $(sql "SELECT ec2_id FROM instances WHERE name = 'hp'")" ]] ||
  fail "202 body: $(cat "$out.body")"
wait_sql 90 "SELECT status FROM migrations WHERE id = $mhp" completed || fail "the HTTP migration: $(sql "SELECT status, error FROM migrations WHERE id = $mhp")"
[[ $(api "$FERRY_HTTP_URL/api/migrations/$mhp" | jq -r '"\(.status) \(.post_copy) \(.postcopy_active) \([.events[] | select(.kind == "postcopy")] | length)"') == "completed true true 1" ]] ||
  fail "not migrated in post-copy: $(api "$FERRY_HTTP_URL/api/migrations/$mhp")"
[[ $(where hp) == "compute3 running yes" ]] || fail "hp is at $(where hp)"
stop_guest hp
ok "POST os-migrateLive (ORBIT body, post_copy true): 202, migration $mhp moved the dirtying guest in post-copy"

# options next to os-migrateLive, as in the request contract; abort through the API
running_guest compute3 ha --dirty 64 --rate 48
sleep 2
[[ $(code POST /v2/demo/servers/ha/action -d '{"os-migrateLive":{"host":"compute2","block_migration":false,"disk_over_commit":false,"post_copy":false},"options":{"bandwidth_mib_s":16}}') == 202 ]] ||
  fail "os-migrateLive with options: $(cat "$out.body")"
mha=$(jq -r .migration "$out.body")
wait_sql 30 "SELECT status FROM migrations WHERE id = $mha" running || fail "ha not running"
[[ $(sql "SELECT bandwidth_mib_s FROM migrations WHERE id = $mha") == 16 ]] || fail "the options were not taken"
[[ $(code POST "/api/migrations/$mha/abort") == 202 && $(jq -r .status "$out.body") == running ]] || fail "abort over HTTP: $(cat "$out.body")"
wait_sql 60 "SELECT status FROM migrations WHERE id = $mha" cancelled || fail "ha not cancelled"
[[ $(code POST "/api/migrations/$mha/force-complete") == 409 && $(jq -r .error.message "$out.body") == *"already ended: cancelled" ]] ||
  fail "force-complete of an ended migration over HTTP: $(cat "$out.body")"
[[ $(where ha) == "compute3 running yes" ]] || fail "ha is at $(where ha)"
stop_guest ha
ok "os-migrateLive with ferry's options; POST .../abort (202, cancelled) and .../force-complete of an ended one (409)"

[[ $(api "$FERRY_HTTP_URL/api/hosts" | jq '.hosts | length') == 3 ]] || fail "/api/hosts"
[[ $(api "$FERRY_HTTP_URL/api/hosts/compute2" | jq -r '.name + " " + (.projects | type)') == "compute2 array" ]] || fail "/api/hosts/compute2"
[[ $(api "$FERRY_HTTP_URL/api/instances?host=compute3" | jq -r '[.instances[].name] | index("hp") != null') == true ]] || fail "/api/instances?host"
[[ $(api "$FERRY_HTTP_URL/api/migrations?status=cancelled" | jq -r '[.migrations[].id] | join(",")') == "$mha,$mev,$mab" ]] || fail "/api/migrations?status"
[[ $(code GET /api/hosts/nosuch) == 404 && $(jq -r .error.message "$out.body") == "no host nosuch" ]] || fail "404 host"
[[ $(code GET /api/migrations/0) == 404 ]] || fail "404 migration 0"
[[ $(code POST /v2/admin/servers/nosuch/action -d '{"os-migrateLive":{"host":null}}') == 404 ]] || fail "404 server"
[[ $(code POST /v2/admin/servers/vm1/action -d '{"os-migrateLive":') == 400 && $(jq -r .error.title "$out.body") == badRequest ]] ||
  fail "400 bad JSON: $(cat "$out.body")"
[[ $(code POST /v2/admin/servers/vm1/action -d '{"os-stop":null}') == 400 ]] || fail "400 other action"
[[ $(code POST /v2/admin/servers/vm1/action -d '{"os-migrateLive":{"host":"compute2","post_copy":1}}') == 400 &&
   $(jq -r .error.message "$out.body") == *"post_copy"* ]] || fail "400 mistyped field: $(cat "$out.body")"
[[ $(code POST /v2/admin/servers/vm1/action -d "{\"os-migrateLive\":{\"host\":\"compute2\"}}") == 409 &&
   $(jq -r .error.message "$out.body") == *"own host"* ]] || fail "409 refused: $(cat "$out.body")"
# objectives (issue #18): planned from a forecast of vm1 before the claim; 1 s is less than the
# fixed costs alone, so no mode meets it
[[ $(code POST /v2/admin/servers/vm1/action -d '{"os-migrateLive":{"host":null},"objectives":{"deadline_s":1}}') == 409 &&
   $(jq -r .error.message "$out.body") == *"the forecast says no mode meets the objectives"*"deadline_s 1"* ]] ||
  fail "409 impossible objective: $(cat "$out.body")"
[[ $(code POST /v2/admin/servers/vm1/action -d '{"os-migrateLive":{"host":null},"objectives":{}}') == 400 &&
   $(jq -r .error.message "$out.body") == *"body.objectives: empty"* ]] || fail "400 empty objectives: $(cat "$out.body")"
[[ $(code GET /v2/admin/servers/vm1/action) == 405 ]] || fail "405"
[[ $(code POST "/api/migrations/$mab/abort") == 409 && $(jq -r .error.message "$out.body") == *"already ended"* ]] || fail "409 abort"
[[ $(curl -sS -o /dev/null -w '%{http_code}' -X POST "$FERRY_HTTP_URL/v2/admin/servers/vm1/action" -d '{}') == 401 ]] || fail "401 no token"
[[ $(curl -sS -o /dev/null -w '%{http_code}' -H 'X-Auth-Token: wrong' "$FERRY_HTTP_URL/api/hosts") == 401 ]] || fail "401 bad token"
head -c 100000 /dev/zero | tr '\0' 'x' >"$out.big"
[[ $(code POST /v2/admin/servers/vm1/action --data-binary @"$out.big") == 413 ]] || fail "413"
ok "JSON reads (hosts, host, instances?host, migrations?status); 400, 401, 404, 405, 409 (also an impossible objective), 413 with JSON reasons"

curl -sS "$FERRY_HTTP_URL/metrics" >"$out"
grep -q '^ferry_migrations{status="completed"} [1-9]' "$out" && grep -q '^ferry_hosts_up 3$' "$out" &&
  grep -q '^ferry_migration_duration_seconds_count [1-9]' "$out" && grep -q '^ferry_claim_seconds_count [0-9]' "$out" ||
  fail "metrics: $(cat "$out")"
[[ $(curl -sS "$FERRY_HTTP_URL/healthz" | jq -r '"\(.ok) \(.database) \(.broker)"') == "true true true" ]] || fail "healthz"
# into a file first: `curl | grep -q` under pipefail fails when grep quits before curl has
# written the whole page (curl: (23) failure writing output), as seen here once
curl -sS "$FERRY_HTTP_URL/" >"$out" || fail "GET /: curl exit $?"
grep -qi "<html" "$out" || fail "no dashboard page at /"
pgrep -f "ferry-scheduler --config $FERRY_LAB_DIR/scheduler.conf --name scheduler1" >/dev/null || fail "scheduler1 died"
ok "/metrics (Prometheus text), /healthz, the dashboard page; the scheduler still runs"
