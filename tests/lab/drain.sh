#!/usr/bin/env bash
# Host drains (issue #18) on the lab, with two scheduler replicas and one migration at a time per
# source (max_outgoing_per_source = 1: the plan has guests waiting their turn):
#  1. a dry run: the plan, nothing written, the host untouched;
#  2. a drain with a deadline of three running guests and a stopped one, followed with --wait:
#     each guest moved by a migration the scheduler requested itself, the stopped one skipped,
#     the receipt (deadline met, per guest) in `drain show`, `drain list`, the HTTP API; a
#     deadline the forecast says cannot hold is refused at the start, nothing written;
#  3. a drain cancelled halfway, a guest that cannot converge under way: its migration aborted,
#     the guests not yet requested left running on the host, the drain cancelled with its receipt;
#  4. a drain whose replica (the holder of the drainer's lease) is killed -9 mid-way: the other
#     replica takes the lease over and finishes it.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
FERRY_LAB_SCHEDULER_EXTRA='max_outgoing_per_source = 1' "$LAB" up --hosts 3 --schedulers 2 >/dev/null
eval "$("$LAB" env)"
logs=$FERRY_LAB_LOG_DIR
out=$FERRY_LAB_DIR/drain.out
ctl() { "$CTL" --timeout 20000 "$@"; }
api() { curl -sS -H "X-Auth-Token: $FERRY_API_TOKEN" "$@"; }
seen_running() { # HOST NAME...
  local h=$1 n
  shift
  for n in "$@"; do
    wait_sql 40 "SELECT host || ' ' || vm_state FROM instances WHERE name = '$n'" "$h running" || fail "$n not discovered running on $h"
    wait_sql 10 "SELECT count(*) FROM allocations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = '$n')" 1 ||
      fail "$n has no allocation"
  done
}

"$LAB" guest compute1 a1 --memory 64 >/dev/null
"$LAB" guest compute1 a2 --memory 128 --dirty 16 --rate 1 >/dev/null
"$LAB" guest compute1 a3 --memory 96 >/dev/null
"$LAB" guest compute1 a4 --memory 32 >/dev/null
seen_running compute1 a1 a2 a3 a4
"$LAB" virsh compute1 destroy a4 >/dev/null
wait_sql 30 "SELECT vm_state FROM instances WHERE name = 'a4'" stopped || fail "a4 not seen stopped"

# ---- 1. the dry run --------------------------------------------------------------------------------
ctl host drain compute1 --deadline 10m --dry-run >"$out" || fail "drain --dry-run: $(cat "$out")"
grep -q "^drain of compute1 (dry run, nothing changed): 3 guests (288 MiB) longest first, 1 at a time" "$out" ||
  fail "dry run: $(cat "$out")"
grep -q "the deadline (600 s left) holds" "$out" || fail "dry run, the deadline: $(cat "$out")"
# longest first: a2 (128 MiB), a3 (96), a1 (64)
[[ $(grep -E '^ +[0-9]+ a[0-9]' "$out" | awk '{print $1 $2}' | xargs) == "1a2 2a3 3a1" ]] || fail "dry run order: $(cat "$out")"
[[ $(sql "SELECT count(*) FROM drains") == 0 && $(sql "SELECT state FROM hosts WHERE name = 'compute1'") == enabled ]] ||
  fail "the dry run wrote something"
ok "dry run: 3 guests planned longest first, 1 at a time, the deadline holds; nothing written"

# ---- 2. a drain with a deadline, followed to its receipt ------------------------------------------
st=0
timeout 300 "$CTL" --timeout 20000 host drain compute1 --deadline 10m --wait >"$out" 2>&1 || st=$?
((st == 0)) || fail "drain --wait: exit $st: $(cat "$out")"
d=$(sql "SELECT id FROM drains WHERE host = 'compute1' ORDER BY id DESC LIMIT 1")
grep -q "^drain $d of compute1 started: 3 guests (288 MiB)" "$out" || fail "drain start line: $(cat "$out")"
grep -q "^drain $d completed in [0-9.]* s (forecast [0-9.]* s): 3 moved, 0 failed, 0 cancelled, 1 skipped; deadline met" "$out" ||
  fail "drain end line: $(cat "$out")"
for n in a1 a2 a3; do
  grep -q "^i-[0-9a-f]* ($n): moved, migration [0-9]* to compute[23]" "$out" || fail "no moved line for $n: $(cat "$out")"
  [[ $(where $n) == compute[23]" running yes" ]] || fail "$n is at: $(where $n)"
done
[[ $(sql "SELECT status || ' ' || (receipt->>'deadline_met') || ' ' || (receipt->>'moved') || ' ' || (receipt->>'skipped') FROM drains WHERE id = $d") == "completed true 3 1" ]] ||
  fail "drain row: $(sql "SELECT status, receipt FROM drains WHERE id = $d")"
# each move was an ordinary migration, requested by the scheduler under the item's request id
[[ $(sql "SELECT count(*) FROM drain_items i JOIN migrations m ON m.id = i.migration_id AND m.request_id = i.request_id
          WHERE i.drain_id = $d AND i.state = 'moved' AND m.status = 'completed' AND m.objective_deadline_s IS NOT NULL") == 3 ]] ||
  fail "the items' migrations: $(sql "SELECT i.name, i.state, i.request_id, m.request_id, m.status FROM drain_items i LEFT JOIN migrations m ON m.id = i.migration_id WHERE i.drain_id = $d")"
[[ $(sql "SELECT state || ': ' || reason FROM drain_items WHERE drain_id = $d AND name = 'a4'") == "skipped: stopped when the drain started: live migration moves running guests only" ]] ||
  fail "a4's item: $(sql "SELECT state, reason FROM drain_items WHERE drain_id = $d AND name = 'a4'")"
# the three moved one at a time, longest first
[[ $(sql "SELECT string_agg(i.name, ' ' ORDER BY m.started_at) FROM drain_items i JOIN migrations m ON m.id = i.migration_id WHERE i.drain_id = $d") == "a2 a3 a1" ]] ||
  fail "the order of the moves: $(sql "SELECT i.name, m.started_at, m.finished_at FROM drain_items i JOIN migrations m ON m.id = i.migration_id WHERE i.drain_id = $d")"
[[ $(sql "SELECT count(*) FROM migrations a JOIN migrations b ON a.id < b.id AND a.source_host = 'compute1' AND b.source_host = 'compute1'
          AND a.started_at < b.finished_at AND b.started_at < a.finished_at") == 0 ]] || fail "two migrations of the drain overlapped"
[[ $(sql "SELECT state || ':' || state_reason FROM hosts WHERE name = 'compute1'") == "maintenance:drain $d" ]] || fail "compute1 not in maintenance"
grep -q "drain $d: migration of i-[0-9a-f]* requested" "$logs"/scheduler*.log || fail "no log line of a drain's request"
grep -q "host=compute1 .*drain $d of compute1 completed in" "$logs"/scheduler*.log || fail "no log line of the drain's end"
ctl drain show "$d" >"$out" || fail "drain show: $(cat "$out")"
grep -q "^  receipt    completed in [0-9.]* s (forecast [0-9.]* s): 3 moved, 0 failed, 0 cancelled, 1 skipped; deadline met" "$out" ||
  fail "drain show: $(cat "$out")"
ctl drain list >"$out" || fail "drain list: $(cat "$out")"
grep -Eq "^ +$d compute1 +completed +600 +4 +3 yes " "$out" || fail "drain list: $(cat "$out")"
[[ $(api "$FERRY_HTTP_URL/api/drains/$d" | jq -r '[.status, .receipt.deadline_met, (.guests | length), .receipt.guests[0].name] | join(" ")') == "completed true 4 a2" ]] ||
  fail "GET /api/drains/$d: $(api "$FERRY_HTTP_URL/api/drains/$d")"
check_usage
ok "drain $d with a deadline of 600 s: a2, a3, a1 moved one at a time by the scheduler's own requests, a4 skipped; receipt: deadline met (CLI, list, HTTP)"
for n in a1 a2 a3; do stop_guest $n; done # TCG guests cost CPU; a2 (on compute2) is skipped by the drain of part 4

# an impossible deadline: refused at the start with the forecast, nothing written
"$LAB" guest compute3 z1 --memory 64 >/dev/null
seen_running compute3 z1
st=0
ctl host drain compute3 --deadline 1 >"$out" 2>&1 || st=$?
((st == 1)) && grep -q "^ferryctl: host drain refused: the drain of compute3 cannot meet its deadline of 1 s: the forecast says" "$out" ||
  fail "impossible deadline: exit $st: $(cat "$out")"
[[ $(sql "SELECT count(*) FROM drains WHERE host = 'compute3'") == 0 && $(sql "SELECT state FROM hosts WHERE name = 'compute3'") == enabled ]] ||
  fail "the refused drain wrote something"
[[ $(code=$(curl -sS -o "$out" -w '%{http_code}' -X POST -H "X-Auth-Token: $FERRY_API_TOKEN" -d '{"deadline_s": 1}' "$FERRY_HTTP_URL/api/hosts/compute3/drain"); echo "$code") == 409 ]] &&
  grep -q "cannot meet its deadline of 1 s" "$out" || fail "POST drain with an impossible deadline: $(cat "$out")"
[[ $(curl -sS -o "$out" -w '%{http_code}' -X POST -H "X-Auth-Token: $FERRY_API_TOKEN" -d '{"deadline": 5}' "$FERRY_HTTP_URL/api/hosts/compute3/drain") == 400 ]] ||
  fail "POST drain with an unknown field: $(cat "$out")"
[[ $(curl -sS -o "$out" -w '%{http_code}' -X POST -H "X-Auth-Token: $FERRY_API_TOKEN" "$FERRY_HTTP_URL/api/hosts/nosuch/drain") == 404 ]] ||
  fail "POST drain of no host: $(cat "$out")"
[[ $(curl -sS -o "$out" -w '%{http_code}' -H "X-Auth-Token: $FERRY_API_TOKEN" "$FERRY_HTTP_URL/api/drains/999999") == 404 ]] ||
  fail "GET no drain: $(cat "$out")"
stop_guest z1
ok "a deadline the forecast says cannot hold: refused at the start (CLI exit 1, HTTP 409), nothing written; HTTP 400 / 404 on bad input"

# ---- 3. cancelled halfway --------------------------------------------------------------------------
# b1 rewrites 64 MiB at 48 MiB/s: at the budget's 8 MiB/s it cannot converge, so its migration is
# under way when the drain is cancelled; b2..b4 wait their turn
"$LAB" guest compute1 b1 --memory 192 --dirty 64 --rate 48 >/dev/null
for n in b2 b3 b4; do "$LAB" guest compute1 $n --memory 64 >/dev/null; done
seen_running compute1 b1 b2 b3 b4
sleep 2
ctl host drain compute1 --bandwidth-budget 8 >"$out" || fail "drain of b1..b4: $(cat "$out")"
d=$(sql "SELECT id FROM drains WHERE host = 'compute1' ORDER BY id DESC LIMIT 1")
bmig="SELECT migration_id FROM drain_items WHERE drain_id = $d AND name = 'b1'"
wait_sql 40 "SELECT m.status FROM migrations m WHERE m.id = ($bmig)" running || fail "b1's migration never ran: $(ctl drain show "$d")"
[[ $(sql "SELECT bandwidth_mib_s FROM migrations WHERE id = ($bmig)") == 8 ]] || fail "b1's migration is not at the budget's 8 MiB/s"
ctl drain cancel "$d" >"$out" || fail "drain cancel: $(cat "$out")"
grep -q "^drain $d: cancelling: 3 guests not requested stay where they are, 1 migrations asked to abort" "$out" ||
  fail "drain cancel: $(cat "$out")"
wait_sql 60 "SELECT status FROM drains WHERE id = $d" cancelled || fail "the drain did not end cancelled: $(ctl drain show "$d")"
[[ $(sql "SELECT status FROM migrations WHERE id = ($bmig)") == cancelled ]] || fail "b1's migration: $(sql "SELECT status, error FROM migrations WHERE id = ($bmig)")"
for n in b1 b2 b3 b4; do
  [[ $(where $n) == "compute1 running yes" ]] || fail "$n is at: $(where $n)"
  [[ $(allocs $n) == "instance@compute1" ]] || fail "$n's allocations: $(allocs $n)"
done
[[ $(sql "SELECT count(*) FROM drain_items i WHERE drain_id = $d AND state = 'cancelled' AND migration_id IS NULL AND name <> 'b1'") == 3 ]] ||
  fail "b2..b4: $(sql "SELECT name, state, migration_id FROM drain_items WHERE drain_id = $d")"
[[ $(sql "SELECT (receipt->>'cancelled') || ' ' || (receipt->>'moved') FROM drains WHERE id = $d") == "4 0" ]] ||
  fail "receipt: $(sql "SELECT receipt FROM drains WHERE id = $d")"
st=0
ctl drain cancel "$d" >"$out" 2>&1 || st=$?
((st == 1)) && grep -q "drain cancel refused: drain $d is cancelled: nothing to cancel" "$out" || fail "second cancel: exit $st: $(cat "$out")"
stop_guest b1
check_usage
ok "drain $d cancelled halfway: b1's migration aborted, b2..b4 never requested, all four running on compute1; receipt 4 cancelled"
for n in b2 b3 b4; do stop_guest $n; done

# ---- 4. the drainer's replica killed -9 mid-way ------------------------------------------------------
for n in c1 c2 c3; do "$LAB" guest compute2 $n --memory 64 --dirty 24 --rate 1 >/dev/null; done
seen_running compute2 c1 c2 c3
wait_sql 30 "SELECT vm_state FROM instances WHERE name = 'a2'" stopped || fail "a2 not seen stopped"
sleep 2
ctl host drain compute2 --bandwidth-budget 8 >"$out" || fail "drain of c1..c3: $(cat "$out")"
d=$(sql "SELECT id FROM drains WHERE host = 'compute2' ORDER BY id DESC LIMIT 1")
wait_sql 30 "SELECT count(*) > 0 FROM replica_leases WHERE job = 'drainer' AND lease_expires_at > now()" t || fail "no drainer lease"
wait_sql 60 "SELECT count(*) >= 1 FROM drain_items WHERE drain_id = $d AND state = 'moved'" t || fail "nothing moved: $(ctl drain show "$d")"
holder=$(sql "SELECT owner FROM replica_leases WHERE job = 'drainer'")
[[ $(sql "SELECT status FROM drains WHERE id = $d") == running ]] || fail "the drain ended before the kill"
"$LAB" scheduler "${holder#scheduler}" kill >/dev/null
ok "drain $d of compute2 under way on $holder (one guest moved); $holder killed -9"
wait_sql 120 "SELECT status FROM drains WHERE id = $d" completed || fail "the drain did not complete after the kill: $(ctl drain show "$d")"
[[ $(sql "SELECT owner FROM replica_leases WHERE job = 'drainer'") != "$holder" ]] || fail "the lease did not change hands"
# compute1 is in maintenance since its drains: compute3 takes them all
for n in c1 c2 c3; do [[ $(where $n) == "compute3 running yes" ]] || fail "$n is at: $(where $n)"; done
[[ $(sql "SELECT (receipt->>'moved') || ' ' || (receipt->>'skipped') FROM drains WHERE id = $d") == "3 1" ]] ||
  fail "receipt: $(sql "SELECT receipt FROM drains WHERE id = $d")"
# one request per guest, none twice: each item's migration is the only one of its request
[[ $(sql "SELECT count(*) FROM migrations m JOIN drain_items i ON i.request_id = m.request_id WHERE i.drain_id = $d") == 3 ]] ||
  fail "the drain's migrations: $(sql "SELECT i.name, i.attempts, m.id, m.status FROM drain_items i LEFT JOIN migrations m ON m.request_id = i.request_id WHERE i.drain_id = $d")"
check_usage
ok "drain $d survived its replica's death: the other replica took the drainer's lease and moved the rest; 3 moved"
