#!/usr/bin/env bash
# bench/transport.sh [--rounds K] [--smoke] [BUILD_DIR]: the transport settings of issue #19 —
# one stream, 2 and 4 parallel connections, xbzrle — each through ferry against raw
# `virsh migrate` with the same flags, in one run on the lab (2 hosts, one scheduler; the
# stream on the lab's migration network, both hosts' links capped at 32 MiB/s). The guest:
# 128 MiB, rewriting 32 MiB at 16 MiB/s. For each mode, K migrations with raw virsh
# (`--live --p2p --persistent --undefinesource --migrateuri tcp://MIGRATION_ADDR
# --listen-address MIGRATION_ADDR`, plus `--parallel --parallel-connections N` or `--compressed
# --comp-methods xbzrle --comp-xbzrle-cache 32 MiB`; wall time of the command) and K through
# ferry (the same options in the request; published -> `completed` recorded), alternating
# directions. Prints each mode's p50 of both, ferry / raw, the mode's raw p50 / one stream's raw
# p50, and ferry's memory sent (libvirt's figure, stored by ferry).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=4
while (($#)); do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --smoke) rounds=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
bin=$(cd "${1:-$top/build}" && pwd)
export FERRY_BIN_DIR=$bin
source "$top/bench/lablib.sh" # the bench lab; LAB, sql, wait_sql, publish, newid, uri, muri, pct, ...
"$LAB" up --hosts 2 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
work=$FERRY_LAB_DIR/bench-transport
mkdir -p "$work"

for h in compute1 compute2; do "$LAB" link "$h" rate 32 >/dev/null; done
"$LAB" guest compute1 tg --dirty 32 --rate 16 >/dev/null
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'tg'" "compute1 running" || fail "tg not seen running"
sleep 3 # its region written once
at=compute1

# settled: the scheduler sees tg idle where it runs (a request before is refused)
settled() { wait_sql 30 "SELECT host || ' ' || vm_state || ' ' || coalesce(task_state, '-') FROM instances WHERE name = 'tg'" "$at running -" || fail "tg not settled on $at"; }

run_mode() { # NAME VIRSH_FLAGS OPTIONS_JSON
  local name=$1 vflags=$2 opts=$3 i to t id m
  : >"$work/$name.raw" && : >"$work/$name.ferry" && : >"$work/$name.bytes"
  for i in $(seq 1 "$rounds"); do
    to=$(other "$at")
    settled
    t=$(ns)
    # shellcheck disable=SC2086 # the flags are words
    virsh -c "$(uri "$at")" migrate --live --p2p --persistent --undefinesource $vflags \
      --migrateuri "tcp://$("$LAB" maddr "$to")" --listen-address "$("$LAB" maddr "$to")" tg "$(muri "$to")" >/dev/null ||
      fail "raw virsh migrate ($name) $at -> $to failed"
    echo $((($(ns) - t) / 1000000)) >>"$work/$name.raw"
    at=$to
    to=$(other "$at")
    settled
    id=$(newid)
    t=$(ns)
    publish "$id" "{\"instance\":\"tg\",\"os-migrateLive\":{\"host\":\"$to\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":false},\"options\":$opts}"
    wait_sql 120 "SELECT status FROM migrations WHERE request_id = '$id'" completed ||
      fail "ferry ($name) did not complete: $(sql "SELECT status, error FROM migrations WHERE request_id = '$id'")"
    m=$(sql "SELECT id FROM migrations WHERE request_id = '$id'")
    echo $((($(sql "SELECT (extract(epoch FROM at) * 1000000000)::bigint FROM migration_events WHERE migration_id = $m AND status = 'completed' AND kind = 'status'") - t) / 1000000)) >>"$work/$name.ferry"
    sql "SELECT memory_processed_bytes FROM migrations WHERE id = $m" >>"$work/$name.bytes"
    [[ $name == single ]] || sql "SELECT settings_verified FROM migrations WHERE id = $m" >"$work/$name.verified"
    at=$to
  done
}

run_mode single "" '{}'
run_mode par2 "--parallel --parallel-connections 2" '{"parallel_connections":2}'
run_mode par4 "--parallel --parallel-connections 4" '{"parallel_connections":4}'
run_mode xbzrle "--compressed --comp-methods xbzrle --comp-xbzrle-cache $((32 << 20))" '{"xbzrle_cache_mib":32}'
stop_guest tg

base=$(pct "$work/single.raw" 50)
echo "transport: 128 MiB guest rewriting 32 MiB at 16 MiB/s, links capped at 32 MiB/s, migration network; $rounds migrations each way per mode"
for m in single par2 par4 xbzrle; do
  r=$(pct "$work/$m.raw" 50) f=$(pct "$work/$m.ferry" 50) b=$(pct "$work/$m.bytes" 50)
  printf '%-7s raw virsh p50 %5d ms, ferry p50 %5d ms: ferry / raw %.2f; raw / one stream %.2f; ferry sent %d MiB%s\n' \
    "$m" "$r" "$f" "$(awk -v a="$f" -v b="$r" 'BEGIN {print a / b}')" "$(awk -v a="$r" -v b="$base" 'BEGIN {print a / b}')" \
    $((b >> 20)) "$([[ -f $work/$m.verified ]] && echo "; verified: $(cat "$work/$m.verified")")"
done
