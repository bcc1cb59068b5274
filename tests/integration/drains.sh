#!/usr/bin/env bash
# Host drains (issue #18) on the harness's real broker and database, with a real scheduler (the
# ASan build's in that run) and compute hosts that exist only through their heartbeats (no agent
# answers, so a migration the drain starts stays at its checks), over the HTTP API: the body
# checks (400, 404, 405); a dry run writes nothing; a drain records its plan, puts the host in
# maintenance, skips a stopped guest and requests one guest at a time (max_outgoing_per_source
# = 1) under the request id its item recorded; cancelled while its first migration is under way:
# the guest not requested yet is cancelled and never requested, the migration is asked to abort,
# the drain waits for it (`cancelling`), a second cancel is refused (409); a drain of a host no
# other host can take guests from (another arch) has each request refused, retried once, and
# ends failed with each guest's reason in its receipt.
set -euo pipefail
db=ferry_drain_$$
source "$(dirname "$0")/lib.sh"
h1=dr1-$$ h2=dr2-$$
token=dr-t0ken-drain-test
new_db "$(printf '[amqp]\nheartbeat_s = 5\nrpc_timeout_ms = 1000\n[http]\nport = 0\ntokens = %s\n[log]\nlevel = info\n[scheduler]\nheartbeat_max_age_s = 120\nmax_outgoing_per_source = 1\nforecast_sample_s = 0\nlease_s = 5\n' "$token")"
for h in "$h1" "$h2"; do host_user "$h"; done
hb_extra=',"postcopy":true'
dom() { printf '{"uuid":"%s","name":"%s","vcpus":1,"memory_mb":%d,"state":"%s"}' "$1" "$2" "$3" "$4"; }
A=aaaaaaaa-2222-4000-8000-000000000001
B=bbbbbbbb-2222-4000-8000-000000000002
S=cccccccc-2222-4000-8000-000000000003
H1DOMS="[$(dom $A vmA 256 running),$(dom $B vmB 512 running),$(dom $S vmS 128 shutoff)]"

start_scheduler drs1
api() { # METHOD PATH [BODY]: the code, the body in $work/body
  curl -sS -o "$work/body" -w '%{http_code}' -X "$1" -H "X-Auth-Token: $token" ${3:+-d "$3"} "http://127.0.0.1:$port$2"
}
heartbeat "$h1" "$H1DOMS"
heartbeat "$h2" "[]"
wait_sql "SELECT count(*) FROM instances WHERE host = '$h1'" 3 || fail "the guests of $h1 not discovered"
wait_sql "SELECT vm_state FROM instances WHERE uuid = '$S'" stopped || fail "vmS not stopped"

# ---- the body's checks --------------------------------------------------------------------------
[[ $(api POST "/api/hosts/$h1/drain" '{"deadline": 5}') == 400 ]] && grep -q 'unknown field deadline' "$work/body" || fail "unknown field: $(cat "$work/body")"
[[ $(api POST "/api/hosts/$h1/drain" '{"deadline_s": "soon"}') == 400 ]] && grep -q 'deadline_s must be an integer of seconds' "$work/body" || fail "bad deadline: $(cat "$work/body")"
[[ $(api POST "/api/hosts/$h1/drain" '{"bandwidth_budget_mib_s": 0}') == 400 ]] || fail "zero budget: $(cat "$work/body")"
[[ $(api POST "/api/hosts/$h1/drain" '[1]') == 400 ]] || fail "an array: $(cat "$work/body")"
[[ $(api POST "/api/hosts/nosuch-$$/drain" '') == 404 ]] && grep -q "no host nosuch-$$" "$work/body" || fail "no host: $(cat "$work/body")"
[[ $(api GET "/api/hosts/$h1/drain") == 405 ]] || fail "GET drain: $(cat "$work/body")"
[[ $(api GET "/api/drains/0") == 404 ]] || fail "drain 0: $(cat "$work/body")"
[[ $(sql "SELECT count(*) FROM drains") == 0 ]] || fail "a refused drain wrote something"
ok "drain bodies checked: unknown field, bad types and ranges, no such host, methods (400, 404, 405); nothing written"

# ---- a dry run --------------------------------------------------------------------------------------
[[ $(api POST "/api/hosts/$h1/drain" '{"dry_run": true, "deadline_s": 3600}') == 202 ]] || fail "dry run: $(cat "$work/body")"
[[ $(jq -r '[.dry_run, (.guests | length), .guests[0].name, .meets_deadline, .parallel] | join(" ")' "$work/body") == "true 2 vmB true 1" ]] ||
  fail "dry run: $(cat "$work/body")"
[[ $(sql "SELECT count(*) FROM drains") == 0 && $(sql "SELECT state FROM hosts WHERE name = '$h1'") == enabled ]] || fail "the dry run wrote something"
ok "dry run: vmB (512 MiB) then vmA, one at a time, the deadline holds; nothing written"

# ---- the link a plan assumes, learned: only migrations that ran alone from the host count -------------
[[ $(jq -r '[.link_mib_s, .link_from] | join(" ")' "$work/body") == "1000 config forecast_bandwidth_mib_s" ]] ||
  fail "the link before any migration: $(cat "$work/body")"
# three alone from $h1 at 10 MiB/s (100 MiB in 10 s, and the 0.6 s of fixed costs: no sample,
# forecast_setup_ms 500, forecast_switch_ms 100), then three at once, each seeing 1 MiB/s
sql "INSERT INTO migrations (request_id, instance_uuid, source_host, dest_host, status, started_at, finished_at,
       memory_processed_bytes)
     SELECT gen_random_uuid(), '$A', '$h1', '$h2', 'completed', t, t + interval '10.6 s', 100 * 1048576
     FROM unnest(ARRAY[now() - interval '300 s', now() - interval '280 s', now() - interval '260 s']) t" >/dev/null
sql "INSERT INTO migrations (request_id, instance_uuid, source_host, dest_host, status, started_at, finished_at,
       memory_processed_bytes)
     SELECT gen_random_uuid(), '$A', '$h1', '$h2', 'completed', now() - interval '200 s', now() - interval '179.4 s',
       20 * 1048576 FROM generate_series(1, 3)" >/dev/null
[[ $(api POST "/api/hosts/$h1/drain" '{"dry_run": true}') == 202 ]] || fail "dry run: $(cat "$work/body")"
[[ $(jq -r '[.link_mib_s, .link_from] | join(" ")' "$work/body") == "10 learned: the median of the host's last completed migrations" ]] ||
  fail "the learned link: $(cat "$work/body")"
ok "the learned link: 10 MiB/s from the three migrations that ran alone (the three that shared the link not counted)"

# ---- cancelled while its first migration is under way --------------------------------------------------
[[ $(api POST "/api/hosts/$h1/drain" '{"bandwidth_budget_mib_s": 40}') == 202 ]] || fail "drain: $(cat "$work/body")"
d=$(jq -r .drain "$work/body")
[[ $(sql "SELECT state || ':' || state_reason FROM hosts WHERE name = '$h1'") == "maintenance:drain $d" ]] || fail "$h1 not in maintenance"
[[ $(sql "SELECT state FROM drain_items WHERE drain_id = $d AND name = 'vmS'") == skipped ]] || fail "vmS not skipped"
wait_sql "SELECT count(*) FROM drain_items i JOIN migrations m ON m.request_id = i.request_id AND m.id = i.migration_id
          WHERE i.drain_id = $d AND i.name = 'vmB' AND i.state = 'migrating'" 1 ||
  fail "vmB's migration: $(sql "SELECT name, state, request_id, migration_id FROM drain_items WHERE drain_id = $d")"
[[ $(sql "SELECT state FROM drain_items WHERE drain_id = $d AND name = 'vmA'") == pending ]] || fail "vmA not waiting its turn"
# the budget shared among the drain's migrations under way: vmB's alone once it runs (its status
# set by hand here: no agent moves it), then back as it was
mb=$(sql "SELECT migration_id FROM drain_items WHERE drain_id = $d AND name = 'vmB'")
[[ $(sql "SELECT bandwidth_mib_s || ' ' || coalesce(bandwidth_target::text, '-') FROM migrations WHERE id = $mb") == "40 -" ]] ||
  fail "vmB's migration before it runs: $(sql "SELECT bandwidth_mib_s, bandwidth_target FROM migrations WHERE id = $mb")"
s0=$(sql "SELECT status FROM migrations WHERE id = $mb")
sql "UPDATE migrations SET status = 'running' WHERE id = $mb" >/dev/null
wait_sql 10 "SELECT bandwidth_target FROM migrations WHERE id = $mb" 40 || fail "no share of the budget for vmB's migration"
sql "UPDATE migrations SET status = '$s0' WHERE id = $mb" >/dev/null
[[ $(api POST "/api/drains/$d/cancel") == 202 ]] || fail "cancel: $(cat "$work/body")"
[[ $(jq -r '[.status, .not_requested] | join(" ")' "$work/body") == "cancelling 1" ]] || fail "cancel: $(cat "$work/body")"
wait_sql 30 "SELECT state FROM drain_items WHERE drain_id = $d AND name = 'vmA'" cancelled || fail "vmA not cancelled"
v=$(sql "SELECT (migration_id IS NULL) || ' ' || (request_id IS NULL) FROM drain_items WHERE drain_id = $d AND name = 'vmA'"); [[ $v == "true true" ]] || fail "vmA was requested: $v"
# vmB's migration is asked to abort; with no agent to answer its rollback it has not ended, and
# the drain waits for it
wait_sql 30 "SELECT m.abort_requested FROM migrations m JOIN drain_items i ON i.migration_id = m.id WHERE i.drain_id = $d AND i.name = 'vmB'" t ||
  fail "vmB's migration not asked to abort"
grep -q "migration .* failed while scheduled: cancelled: aborted by the operator" "$work/scheduler.log" || fail "vmB's migration not aborted"
sleep 3
[[ $(sql "SELECT status FROM drains WHERE id = $d") == cancelling ]] || fail "drain $d: $(sql "SELECT status FROM drains WHERE id = $d")"
[[ $(api POST "/api/drains/$d/cancel") == 409 ]] && grep -q "drain $d is cancelling: nothing to cancel" "$work/body" || fail "second cancel: $(cat "$work/body")"
[[ $(api GET "/api/drains") == 200 && $(jq -r ".drains[0] | [.drain, .status, .guests] | join(\" \")" "$work/body") == "$d cancelling 3" ]] || fail "list: $(cat "$work/body")"
# over HTTP the replica publishes the request: its broker user is the sender recorded
user=${FERRY_AMQP_URL#amqp://}
user=${user%%:*}
[[ $(api GET "/api/drains/$d") == 200 && $(jq -r '[.requested_by, .cancel_requested_by, (.guests | map(.state) | join(","))] | join(" ")' "$work/body") == "$user $user migrating,cancelled,skipped" ]] ||
  fail "show: $(cat "$work/body")"
grep -q "drain $d cancelled by $user" "$work/scheduler.log" || fail "no log line of the cancel"
ok "drain $d cancelled under way: vmA never requested, vmB's migration asked to abort and waited for, a second cancel 409; list and show"

# ---- every request refused (no host of its arch): each guest tried twice, the drain failed --------------
h3=dr3-$$
host_user "$h3"
C=dddddddd-2222-4000-8000-000000000004
E=eeeeeeee-2222-4000-8000-000000000005
seq_no=$((seq_no + 1))
body=$(printf '{"v":1,"type":"host.%s.heartbeat","id":"%s","body":{"origin":"agent","address":"%s","arch":"aarch64","vcpus":16,"memory_mb":16384,"disk_gb":100,"boot":"%s","seq":%d,"domains":[%s,%s]}}' \
  "$h3" "$(newid)" "$h3" "$boot" "$seq_no" "$(dom $C vmC 256 running)" "$(dom $E vmE 128 running)")
"$top/tests/harness/amqp-send" "$(url_of "$h3")" ferry.events "host.$h3.heartbeat" "$body" >/dev/null || fail "heartbeat of $h3 refused"
wait_sql "SELECT count(*) FROM instances WHERE host = '$h3' AND vm_state = 'running'" 2 || fail "the guests of $h3 not discovered"
[[ $(api POST "/api/hosts/$h3/drain" '{"deadline_s": 600}') == 202 ]] || fail "drain: $(cat "$work/body")"
d=$(jq -r .drain "$work/body")
wait_sql 60 "SELECT status FROM drains WHERE id = $d" failed || fail "drain $d: $(sql "SELECT name, state, attempts, reason FROM drain_items WHERE drain_id = $d")"
[[ $(sql "SELECT string_agg(name || ':' || state || ':' || attempts, ' ' ORDER BY name) FROM drain_items WHERE drain_id = $d") == "vmC:failed:2 vmE:failed:2" ]] ||
  fail "items: $(sql "SELECT name, state, attempts, reason FROM drain_items WHERE drain_id = $d")"
[[ $(sql "SELECT count(*) FROM json_array_elements((SELECT receipt->'guests' FROM drains WHERE id = $d)) g
          WHERE g->>'outcome' = 'failed' AND g->>'reason' LIKE 'attempt 2 refused: no host can take %'") == 2 ]] ||
  fail "receipt: $(sql "SELECT receipt FROM drains WHERE id = $d")"
[[ $(sql "SELECT (receipt->>'deadline_met')::text || ' ' || (receipt->>'failed') FROM drains WHERE id = $d") == "true 2" ]] ||
  fail "receipt: $(sql "SELECT receipt FROM drains WHERE id = $d")"
# four requests, each refused and recorded once (the first attempts with the deadline objective)
[[ $(sql "SELECT count(*) FROM processed_requests r JOIN drain_items i ON i.drain_id = $d AND r.request_id = i.request_id") == 2 &&
   $(sql "SELECT count(*) FROM processed_requests WHERE outcome = 'refused' AND reason LIKE 'no host can take %'") == 4 ]] ||
  fail "processed requests: $(sql "SELECT request_id, outcome, reason FROM processed_requests")"
grep -q "host=$h3 .*drain $d of $h3 failed in [0-9.]* s: 0 moved, 2 failed, 0 cancelled, 0 skipped" "$work/scheduler.log" || fail "no log line of the failed drain"
ok "drain $d of $h3 (no host of its arch): each request refused, tried twice, the drain failed; the reasons in its receipt"
