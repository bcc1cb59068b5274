#!/usr/bin/env bash
# bench/forecast_error.sh [--smoke] [BUILD_DIR]: how far ferry's migration forecast (ferryctl
# forecast, scheduler/forecast.c, docs/DESIGN.md "Forecast") is from what the migration then
# does, on the lab (2 hosts, one scheduler, TCG guests of 128 MiB), issue #18.
#
# Each case runs `ferryctl -o json forecast G --bandwidth B` (the source samples the dirty rate
# for 1 s) right before `ferryctl migrate G DEST --bandwidth B [--postcopy|--auto-converge] --wait`,
# and compares the forecast of that mode with what the migration did:
#   idle          an idle tiny guest (a 5 KB kernel: its memory is nearly all zero pages),
#                 pre-copy, at 16 and 32 MiB/s
#   linux-idle    an idle Linux guest (kernel + busybox, ~60 MiB of its 128 in use), pre-copy,
#                 at 16 MiB/s
#   dirty         the guest rewrites 32 MiB at 8 MiB/s, pre-copy, at 16 and 32 MiB/s
#   busy-post     64 MiB at 48 MiB/s, post-copy after the first pass, at 16 and 32 MiB/s
#   busy-ac       the same guest, auto-converge, at 32 MiB/s
# What is compared, like with like:
#   duration  the forecast's duration_ms ("from the request to the end": it includes the fixed
#             costs, learned from earlier capped migrations once 3 completed, else
#             forecast_setup_ms + the 1 s sample + forecast_switch_ms) against ferry's measured duration, the
#             migration row's finished_at - started_at (started_at is set when a scheduler
#             claims the request, finished_at when the agent reports the end; what
#             `ferryctl migration show` calls duration_ms). Also shown: libvirt's own
#             time_elapsed (the source agent's "completed: N ms" log line) against the
#             forecast less its fixed costs but the switch-over's.
#   downtime  the forecast's downtime_ms against the migration row's downtime_ms (libvirt's
#             reported downtime, the destination's job statistics); shown, not scored.
#   baseline  the naive estimate memory / bandwidth of the duration (no dirtying, no setup),
#             against the same measured duration; ratio = forecast error / baseline error
#             (< 1: the forecast is better). Errors are |predicted - measured| / measured.
# Goal (issue #18): median forecast duration error <= 20 %. --smoke: only idle at 32 MiB/s.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
smoke=0
while (($#)); do
  case $1 in
    --smoke) smoke=1; shift ;;
    -h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "forecast_error.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
bin=$(cd "${1:-$top/build}" && pwd)
export FERRY_BIN_DIR=$bin
source "$top/tests/lab/lib.sh" # LAB, sql, wait_sql, fail
# this benchmark's own lab: never the tests', app_downtime's or a developer's
export FERRY_LAB_DIR=/tmp/ferry-fcbench-lab FERRY_LAB_NAME=fcbench FERRY_LAB_NET=93 FERRY_LAB_PORT_BASE=27400
CTL=$bin/ferryctl
work=$(mktemp -d /tmp/ferry-bench-fcerr.XXXXXX)
trap '"$LAB" down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$LAB" down >/dev/null 2>&1 || true

other() { [[ $1 == compute1 ]] && echo compute2 || echo compute1; }
at() { local h; for h in compute1 compute2; do [[ $("$LAB" virsh "$h" domstate "$1" 2>/dev/null | head -c 7) == running ]] && { echo "$h"; return; }; done; }
median() { sort -n | awk '{a[NR]=$1} END {if (!NR) {print "-"; exit} print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }

# new_guest NAME [ferry-lab guest options]: a guest (tiny unless --os linux) on compute1 the scheduler knows running
new_guest() {
  local name=$1
  shift
  "$LAB" guest compute1 "$name" "$@" >/dev/null
  wait_sql 40 "SELECT host || ' ' || vm_state FROM instances WHERE name = '$name'" "compute1 running" || fail "$name not seen running"
}

# case_run CASE NAME MODE BW [migrate flags]: forecast, then migrate NAME to the other host;
# appends one line to $work/cases
case_run() {
  local cs=$1 name=$2 mode=$3 bw=$4 from to js mid before log line
  shift 4
  from=$(at "$name")
  [[ -n $from ]] || fail "$name runs nowhere"
  to=$(other "$from")
  # the scheduler must see the guest where it runs (heartbeats every 5 s)
  wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = '$name'" "$from running" || fail "$name not seen on $from"
  js=$("$CTL" -o json --timeout 30000 forecast "$name" --bandwidth "$bw") || fail "forecast $name: $js"
  echo "$js" >"$work/$cs.forecast.json"
  log=$FERRY_LAB_LOG_DIR/$from.agent.log
  before=$(grep -c ' completed: ' "$log" || true)
  # --wait exits 1 when the migration did not complete (an auto-converge past its
  # --completion-timeout): the row says what happened
  "$CTL" --timeout 30000 migrate "$name" "$to" --bandwidth "$bw" "$@" --wait >"$work/mig.out" 2>&1 || true
  mid=$(grep -o '^migration [0-9]*' "$work/mig.out" | head -n 1 | awk '{print $2}')
  [[ -n $mid ]] || fail "no migration id in: $(cat "$work/mig.out")"
  local row st dur dt elapsed sent=-1
  row=$(sql "SELECT status, (extract(epoch FROM finished_at - started_at) * 1000)::bigint, coalesce(downtime_ms, -1) FROM migrations WHERE id = $mid")
  read -r st dur dt <<<"${row//|/ }"
  [[ $st == completed || $st == failed || $st == cancelled ]] || fail "migration $mid of $name: $st ($(cat "$work/mig.out"))"
  # libvirt's time_elapsed from the source agent's line (it may land just after --wait returns)
  elapsed=-1
  for _ in $(seq 1 20); do
    line=$(grep ' completed: ' "$log" | sed -n "$((before + 1)),\$p" | tail -n 1)
    [[ -n $line ]] && {
      elapsed=$(sed -E 's/.* completed: (-?[0-9]+) ms.*/\1/' <<<"$line")
      sent=$(sed -E 's/.* (-?[0-9]+) bytes of memory sent.*/\1/' <<<"$line")
      break
    }
    [[ $st == completed ]] || break
    sleep 0.25
  done
  # the forecast of the mode that ran
  local p
  p=$(jq -r --arg m "$mode" '. as $r | .modes[] | select(.mode == $m) |
      "\($r.memory_mib) \($r.dirty_rate_mib_s) \(.duration_ms) \(.downtime_ms) \(.passes) \(.throttle_pct) \(.converges)"' <<<"$js")
  # the fixed costs the forecast took (learned from earlier migrations, else configured) less the
  # switch-over's (libvirt's time_elapsed covers the switch), and the non-zero memory it sampled
  local setup nz
  setup=$(jq -r '(.fixed_ms - .switch_ms | tostring) + (if .fixed_from == "learned" then "L" else "C" end)' <<<"$js")
  nz=$(jq -r '.nonzero_mib // -1' <<<"$js")
  [[ -n $p ]] || fail "no $mode in the forecast: $js"
  local fbytes
  fbytes=$(jq -r --arg m "$mode" '.modes[] | select(.mode == $m) | .bytes' <<<"$js")
  echo "$cs $mode $bw $p $dur $dt $elapsed $mid $st $fbytes $sent $setup $nz" >>"$work/cases"
  printf '  %-13s %s -> %s: forecast %s; %s in %s ms (libvirt %s ms), downtime %s ms, %s MiB sent (forecast %s MiB) (migration %s)\n' \
    "$cs" "$from" "$to" "$(awk '{printf "%d ms, pause %d ms, %d passes, throttle %d %%", $3, $4, $5, $6}' <<<"$p")" \
    "$st" "$dur" "$elapsed" "$dt" "$((sent >= 0 ? sent >> 20 : -1))" "$((fbytes >> 20))" "$mid"
}

report() {
  echo
  printf '%-13s %-14s %4s %4s %4s %5s %6s | %8s %8s %6s | %8s %8s %6s | %8s %6s %5s | %7s %7s\n' \
    case mode MiB/s mem nz dirty fixed fc-dur meas-dur fc-err fc-lv lv-dur lv-err base base-err ratio fc-down meas-dn
  awk '
    function err(p, m) { return m > 0 ? (p > m ? p - m : m - p) / m : -1 }
    function pct(e) { return e >= 0 ? sprintf("%5.1f%%", 100 * e) : "   n/a" }
    {
      cs = $1; mode = $2; bw = $3; mem = $4; dr = $5; fd = $6; fdn = $7; conv = $10
      dur = $11; dt = $12; el = $13; st = $15; fx = $18; nz = $19
      setup = fx + 0
      base = mem * 1000 / bw
      fe = err(fd, dur); be = err(base, dur)
      fl = fd - setup; le = el > 0 ? err(fl, el) : -1
      ratio = be > 0 ? sprintf("%5.2f", fe / be) : "  n/a"
      printf "%-13s %-14s %4d %4d %4s %5d %6s | %8d %8d %6s | %8d %8s %6s | %8d %6s %5s | %7d %7s\n",
        cs, mode (conv == "true" ? "" : "*") (st == "completed" ? "" : "!"), bw, mem, (nz >= 0 ? nz : "-"), dr, fx, fd, dur, pct(fe), fl, (el > 0 ? el : "n/a"), pct(le),
        base, pct(be), ratio, fdn, (dt >= 0 ? dt : "n/a")
      print fe > "'"$work"'/fe"; print be > "'"$work"'/be"
    }' "$work/cases"
  echo "(durations and downtimes in ms; fc = the forecast of the mode that ran (* = forecast not to converge),"
  echo " meas-dur = finished_at - started_at; nz = the memory the sample found not zero pages, MiB;"
  echo " fixed = the forecast's fixed costs less the switch-over's (L learned from earlier migrations,"
  echo " C configured); fc-lv = forecast less fixed, against libvirt's time_elapsed (lv-dur); base = memory / bandwidth; err = |predicted - measured| / measured;"
  echo " ratio = fc-err / base-err; dirty = the dirty rate sampled by the forecast, MiB/s;"
  echo " ! = did not complete: meas-dur is up to its abort, a lower bound)"
  local fe be
  fe=$(median <"$work/fe")
  be=$(median <"$work/be")
  awk -v fe="$fe" -v be="$be" -v n="$(wc -l <"$work/cases")" 'BEGIN {
    printf "median duration error: forecast %.1f %%, baseline (memory / bandwidth) %.1f %%, ratio %s (%d cases)\n",
      100 * fe, 100 * be, (be > 0 ? sprintf("%.2f", fe / be) : "n/a"), n
    printf "goal median forecast duration error <= 20 %%: %s (%.1f %%)\n", (fe <= 0.20 ? "met" : "NOT met"), 100 * fe }'
}

echo "== bench/forecast_error.sh$( ((smoke)) && echo ' --smoke'): $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
"$LAB" up --hosts 2 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
done_with() { "$LAB" virsh "$(at "$1")" destroy "$1" >/dev/null; }
new_guest fe1
if ((smoke)); then
  case_run idle-32 fe1 pre-copy 32
  report
  exit 0
fi
case_run idle-16 fe1 pre-copy 16
case_run idle-32 fe1 pre-copy 32
done_with fe1
new_guest fe4 --os linux
sleep 10 # its boot is over (TCG): idle from now on
case_run linux-idle-16 fe4 pre-copy 16
done_with fe4
new_guest fe2 --dirty 32 --rate 8
sleep 6 # its region written once (32 MiB at 8 MiB/s): the steady state the case is about
case_run dirty-16 fe2 pre-copy 16
case_run dirty-32 fe2 pre-copy 32
done_with fe2
new_guest fe3 --dirty 64 --rate 48
sleep 3 # its region written once
case_run busy-post-16 fe3 post-copy 16 --postcopy
case_run busy-post-32 fe3 post-copy 32 --postcopy
# bounded: the model may expect a long throttled pre-copy; an abort is reported as such
case_run busy-ac-32 fe3 auto-converge 32 --auto-converge --completion-timeout 90
done_with fe3
report
