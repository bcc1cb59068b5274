#!/usr/bin/env bash
# A real 3-node RabbitMQ cluster (ferry-lab up --brokers 3, ferry's queues quorum queues with a
# member on each node): the node that leads ferry.scheduler's queue is stopped while 50
# migration requests are being published (with publisher confirms, each retried on the other
# nodes until confirmed, so some may arrive twice). Every request has exactly one outcome in
# processed_requests, every accepted migration completes, nothing is left unfinished, and
# every guest runs on exactly one host, the one the database says (issue #17).
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --hosts 2 --schedulers 2 --brokers 3 >/dev/null
eval "$("$LAB" env)"
send=$top/tests/harness/amqp-send
IFS=, read -r -a urls <<<"$FERRY_LAB_AMQP_URLS"
((${#urls[@]} == 3)) || fail "the lab's URL lists ${#urls[@]} brokers, not 3"

# every node runs, and ferry's queues are quorum queues with three members
for k in 1 2 3; do "$LAB" broker-ctl "$k" -q ping >/dev/null || fail "broker node $k does not answer"; done
qs=$("$LAB" broker-ctl 1 -q list_queues name type members)
for q in ferry.scheduler ferry.dead ferry.compute.compute1 ferry.compute.compute2; do
  line=$(awk -v q="$q" '$1 == q' <<<"$qs")
  [[ $(awk '{print $2}' <<<"$line") == quorum ]] || fail "$q is not a quorum queue: [$line]"
  [[ $(grep -o 'ferrytest-[0-9]*@localhost' <<<"$line" | sort -u | wc -l) == 3 ]] || fail "$q has not 3 members: [$line]"
done
ok "3-node cluster: ferry's queues are quorum queues with a member on every node"

guests=(b1 b2 b3 b4)
for i in "${!guests[@]}"; do "$LAB" guest "compute$((i % 2 + 1))" "${guests[$i]}" >/dev/null; done
for g in "${guests[@]}"; do
  wait_sql 30 "SELECT vm_state FROM instances WHERE name = '$g'" running || fail "$g not discovered running"
done

leader=$("$LAB" broker-ctl 1 -q list_queues name leader | awk '$1 == "ferry.scheduler" {print $2}')
[[ $leader =~ ^ferrytest-[0-9]+@localhost$ ]] || fail "no leader of ferry.scheduler: [$leader]"
ok "ferry.scheduler is led by $leader"

# publish_confirmed ID BODY: until a node confirms it, each try on the next node
n_retries=0
publish_confirmed() {
  local t k out
  for ((t = 0; t < 60; t++)); do
    k=$(((RANDOM + t) % 3))
    out=$("$send" "${urls[$k]}" ferry scheduler "{\"v\":1,\"type\":\"migration.request\",\"id\":\"$1\",\"body\":$2}" --no-user-id 2>&1) &&
      [[ $out == confirmed ]] && return 0
    n_retries=$((n_retries + 1))
    sleep 0.2
  done
  fail "request $1 never confirmed: $out"
}

ids=()
stopper=
for ((r = 0; r < 50; r++)); do
  id=$(newid)
  ids+=("$id")
  g=${guests[$((r % ${#guests[@]}))]}
  publish_confirmed "$id" "{\"instance\":\"$g\",\"os-migrateLive\":{\"host\":null,\"block_migration\":false,\"disk_over_commit\":false}}"
  if ((r == 10)); then
    "$LAB" broker stop "$leader" >"$FERRY_LAB_DIR/broker-stop.out" 2>&1 &
    stopper=$!
  fi
  sleep 0.1
done
wait "$stopper" || fail "could not stop $leader: $(cat "$FERRY_LAB_DIR/broker-stop.out")"
ok "50 requests published and confirmed ($n_retries retries) while $leader was stopped"

idlist=$(printf "'%s'," "${ids[@]}")
idlist=${idlist%,}
wait_sql 150 "SELECT count(*) FROM processed_requests WHERE request_id IN ($idlist)" 50 ||
  fail "not every request has an outcome: $(sql "SELECT outcome, count(*) FROM processed_requests WHERE request_id IN ($idlist) GROUP BY 1")"
wait_sql 120 "SELECT count(*) FROM migrations WHERE finished_at IS NULL" 0 ||
  fail "migrations left unfinished: $(sql "SELECT id, status FROM migrations WHERE finished_at IS NULL")"
acc=$(sql "SELECT count(*) FROM processed_requests WHERE request_id IN ($idlist) AND outcome = 'accepted'")
((acc > 0)) || fail "no request was accepted"
bad=$(sql "SELECT m.id || ' ' || m.status FROM processed_requests p JOIN migrations m ON m.id = p.migration_id
           WHERE p.request_id IN ($idlist) AND m.status <> 'completed'")
[[ -z $bad ]] || fail "accepted migrations that did not complete: $bad"
dup=$(sql "SELECT request_id FROM migrations WHERE request_id IN ($idlist) GROUP BY 1 HAVING count(*) > 1")
[[ -z $dup ]] || fail "requests with more than one migration: $dup"
for g in "${guests[@]}"; do
  w=$(where "$g")
  [[ $(wc -l <<<"$w") == 1 && $w == *" running yes" ]] || fail "$g: [$w]"
  [[ ${w%% *} == "$(sql "SELECT host FROM instances WHERE name = '$g'")" ]] || fail "$g runs on ${w%% *}, the database says $(sql "SELECT host FROM instances WHERE name = '$g'")"
done
check_usage
ok "each of the 50 requests has one outcome ($acc accepted, all completed); every guest on one host"

"$LAB" broker start "$leader" >/dev/null || fail "$leader did not start again"
for g in "${guests[@]}"; do stop_guest "$g"; done
ok "$leader rejoined"
