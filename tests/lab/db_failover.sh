#!/usr/bin/env bash
# PostgreSQL failover under a stream of migrations (ferry-lab up --db-standby: a streaming
# standby, the schedulers' DSN listing both servers with target_session_attrs=read-write): the
# primary is killed mid-stream and the standby promoted. The schedulers carry on through the
# multi-host DSN; nothing is lost or duplicated: each request has one outcome, each accepted
# request exactly one migration, every migration final, every guest on exactly one host, the
# one the database says (issue #17).
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --hosts 2 --schedulers 2 --db-standby >/dev/null
eval "$("$LAB" env)"
send=$top/tests/harness/amqp-send
[[ $FERRY_DB_DSN == *target_session_attrs=read-write* && $FERRY_DB_DSN == host=*,* ]] || fail "the DSN lists one server: $FERRY_DB_DSN"
grep -q "target_session_attrs=read-write" "$FERRY_LAB_DIR/scheduler.conf" || fail "the schedulers' DSN lists one server"

guests=(d1 d2 d3 d4)
for i in "${!guests[@]}"; do "$LAB" guest "compute$((i % 2 + 1))" "${guests[$i]}" >/dev/null; done
for g in "${guests[@]}"; do
  wait_sql 30 "SELECT vm_state FROM instances WHERE name = '$g'" running || fail "$g not discovered running"
done
ok "4 guests; the standby streams from the primary ($("$LAB" status | grep '^database:'))"

publish_confirmed() {
  local t out
  for ((t = 0; t < 30; t++)); do
    out=$("$send" "$FERRY_AMQP_URL" ferry scheduler "{\"v\":1,\"type\":\"migration.request\",\"id\":\"$1\",\"body\":$2}" --no-user-id 2>&1) &&
      [[ $out == confirmed ]] && return 0
    sleep 0.3
  done
  fail "request $1 never confirmed: $out"
}

ids=()
for ((r = 0; r < 30; r++)); do
  id=$(newid)
  ids+=("$id")
  g=${guests[$((r % ${#guests[@]}))]}
  publish_confirmed "$id" "{\"instance\":\"$g\",\"os-migrateLive\":{\"host\":null,\"block_migration\":false,\"disk_over_commit\":false}}"
  if ((r == 8)); then
    # asynchronous replication: a commit the standby had not received is lost with the primary
    # (docs/DESIGN.md says what ferry guarantees then)
    "$LAB" db kill-primary >/dev/null || fail "could not kill the primary"
    sleep 1
    "$LAB" db promote >/dev/null || fail "could not promote the standby"
    ok "primary killed and standby promoted after request $((r + 1))"
  fi
  sleep 0.2
done
ok "30 requests published"

idlist=$(printf "'%s'," "${ids[@]}")
idlist=${idlist%,}
wait_sql 150 "SELECT count(*) FROM processed_requests WHERE request_id IN ($idlist)" 30 ||
  fail "not every request has an outcome: $(sql "SELECT outcome, count(*) FROM processed_requests WHERE request_id IN ($idlist) GROUP BY 1")"
wait_sql 120 "SELECT count(*) FROM migrations WHERE finished_at IS NULL" 0 ||
  fail "migrations left unfinished: $(sql "SELECT id, status FROM migrations WHERE finished_at IS NULL")"
[[ $(sql "SELECT pg_is_in_recovery()") == f ]] || fail "the DSN reaches a server in recovery"
for n in 1 2; do [[ -n $("$LAB" scheduler "$n" pid) ]] || fail "scheduler $n died"; done
acc=$(sql "SELECT count(*) FROM processed_requests WHERE request_id IN ($idlist) AND outcome = 'accepted'")
((acc > 0)) || fail "no request was accepted"
bad=$(sql "SELECT p.request_id FROM processed_requests p LEFT JOIN migrations m ON m.request_id = p.request_id
           WHERE p.request_id IN ($idlist) AND p.outcome = 'accepted' GROUP BY 1 HAVING count(m.id) <> 1")
[[ -z $bad ]] || fail "accepted requests without exactly one migration: $bad"
for g in "${guests[@]}"; do
  w=$(where "$g")
  [[ $(wc -l <<<"$w") == 1 && $w == *" running yes" ]] || fail "$g: [$w]"
  [[ ${w%% *} == "$(sql "SELECT host FROM instances WHERE name = '$g'")" ]] || fail "$g runs on ${w%% *}, the database says $(sql "SELECT host FROM instances WHERE name = '$g'")"
done
check_usage
ok "the schedulers carried on: each request one outcome ($acc accepted, one migration each), all final, every guest on one host"
for g in "${guests[@]}"; do stop_guest "$g"; done
