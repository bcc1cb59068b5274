#!/usr/bin/env bash
# bench/drain.sh [--smoke] [--rate MiB/s] [BUILD_DIR]: how long ferry's planned drain (ferryctl host
# drain, docs/DESIGN.md "Forecast", Drains; issue #18) takes to empty a host over a capped link,
# against the lower bound and against the naive evacuation, in one run on the lab (3 hosts, one
# scheduler, TCG guests).
#
# compute1's lab link is capped at --rate MiB/s (default 32; `ferry-lab link compute1 rate`, a tc
# tbf qdisc on what it sends) and holds six guests of mixed sizes that have written most of their
# memory and keep rewriting some of it at mixed rates (so they are not zero pages QEMU skips):
#   64 MiB (48 written, 1 MiB/s)   96 MiB (64, 2)   128 MiB (96, 4)
#   64 MiB (32, 8)                 96 MiB (48, 1)   128 MiB (64, 2)
# Each round moves all six away twice (the drain first in odd rounds), timed from the first
# request to the last guest's end (once every guest has written its region):
#   naive   the old client-side evacuation: the six migrations requested at once, no plan (the
#           scheduler's limits only, none in the lab), each at whatever the shared link gives it
#   drain-b `ferryctl host drain compute1 --bandwidth-budget RATE --wait`: the planner's order,
#           count at a time and modes, each migration capped at its share of the budget
#   drain   `ferryctl host drain compute1 --wait`: the same plan (the forecasts' link is the
#           capped one: [scheduler] forecast_bandwidth_mib_s = RATE in this lab), the migrations
#           uncapped, sharing the link as the naive ones do
# (between them the guests are moved back to compute1, uncapped). The lower bounds: Σ RAM / link
# (the issue's; QEMU skips zero pages, so a guest's untouched memory costs nothing and this bound
# can be beaten) and Σ memory sent / link (what the drain's migrations actually sent, from their
# rows). Goal (issue #18): drain / (Σ RAM / link) <= 1.2; the naive evacuation is the comparison. --smoke: two
# guests, one round. Prints the figures; the verdict on the goal is stated, not enforced.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
smoke=0 rate=32 rounds=1
while (($#)); do
  case $1 in
    --smoke) smoke=1; shift ;;
    --rate) rate=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "drain.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
bin=$(cd "${1:-$top/build}" && pwd)
export FERRY_BIN_DIR=$bin
source "$top/tests/lab/lib.sh" # LAB, sql, wait_sql, fail
# this benchmark's own lab: never the tests', the other benchmarks' or a developer's
export FERRY_LAB_DIR=/tmp/ferry-drbench-lab FERRY_LAB_NAME=drbench FERRY_LAB_NET=94 FERRY_LAB_PORT_BASE=27500
CTL=$bin/ferryctl
trap '"$LAB" down >/dev/null 2>&1 || true' EXIT
"$LAB" down >/dev/null 2>&1 || true
# the forecasts assume the capped link (a drain without a budget then plans for it)
FERRY_LAB_SCHEDULER_EXTRA="forecast_bandwidth_mib_s = $rate" "$LAB" up --hosts 3 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
now() { date +%s.%N; }

if ((smoke)); then
  specs=("g1 64 48 1" "g2 96 64 2")
else
  specs=("g1 64 48 1" "g2 96 64 2" "g3 128 96 4" "g4 64 32 8" "g5 96 48 1" "g6 128 64 2")
fi
names=()
ram=0
for s in "${specs[@]}"; do
  read -r n m d r <<<"$s"
  "$LAB" guest compute1 "$n" --memory "$m" --dirty "$d" --rate "$r" >/dev/null
  names+=("$n")
  ram=$((ram + m))
done
for n in "${names[@]}"; do
  wait_sql 60 "SELECT host || ' ' || vm_state FROM instances WHERE name = '$n'" "compute1 running" || fail "$n not seen running"
done
# a guest writes its region at its rate: wait until each has written all of it once, so that
# every round moves the same memory
longest=0
for s in "${specs[@]}"; do
  read -r n m d r <<<"$s"
  ((d / r > longest)) && longest=$((d / r))
done
sleep $((longest + 3))
"$LAB" link compute1 rate "$rate" >/dev/null
echo "compute1: ${#names[@]} guests, $ram MiB in all; its link capped at $rate MiB/s"

# back: every guest to compute1 again (uncapped the other way), one at a time
back() {
  local n h
  "$CTL" host enable compute1 >/dev/null
  for n in "${names[@]}"; do
    h=$(sql "SELECT host FROM instances WHERE name = '$n'")
    [[ $h == compute1 ]] && continue
    "$CTL" --timeout 30000 migrate "$n" compute1 --wait >/dev/null || fail "moving $n back to compute1 failed"
  done
  for n in "${names[@]}"; do
    wait_sql 30 "SELECT host || ' ' || vm_state || ' ' || coalesce(task_state, '-') FROM instances WHERE name = '$n'" "compute1 running -" ||
      fail "$n not back on compute1"
  done
}

# the MiB the migrations with ids > $1 from compute1 sent
sent_since() { sql "SELECT coalesce(sum(memory_processed_bytes), 0) / 1048576 FROM migrations WHERE id > $1 AND source_host = 'compute1'" | cut -d. -f1; }

naive() {
  local first n t0 t1
  first=$(sql "SELECT coalesce(max(id), 0) FROM migrations")
  t0=$(now)
  for n in "${names[@]}"; do "$CTL" --timeout 30000 migrate "$n" >/dev/null || fail "naive: the request for $n was refused"; done
  wait_sql 900 "SELECT count(*) FROM migrations WHERE id > $first AND source_host = 'compute1' AND finished_at IS NOT NULL" "${#names[@]}" ||
    fail "naive: the migrations did not all end"
  t1=$(sql "SELECT extract(epoch FROM max(finished_at)) FROM migrations WHERE id > $first AND source_host = 'compute1'")
  local bad
  bad=$(sql "SELECT count(*) FROM migrations WHERE id > $first AND source_host = 'compute1' AND status <> 'completed'")
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') $(sent_since "$first") $bad"
}

drain() { # [ferryctl host drain options]
  local first d t0
  first=$(sql "SELECT coalesce(max(id), 0) FROM migrations")
  t0=$(now)
  "$CTL" --timeout 30000 host drain compute1 "$@" --wait >"$FERRY_LAB_DIR/drain.out" 2>&1 ||
    fail "drain: $(cat "$FERRY_LAB_DIR/drain.out")"
  d=$(sql "SELECT id FROM drains ORDER BY id DESC LIMIT 1")
  local t1 pred plan
  t1=$(sql "SELECT extract(epoch FROM finished_at) FROM drains WHERE id = $d")
  pred=$(sql "SELECT receipt->>'predicted_s' FROM drains WHERE id = $d")
  plan=$(sql "SELECT plan FROM drains WHERE id = $d")
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') $(sent_since "$first") $(sql "SELECT receipt->>'failed' FROM drains WHERE id = $d") $pred" >"$FERRY_LAB_DIR/drain.fig"
  echo "$plan" >>"$FERRY_LAB_DIR/drain.plan"
  cat "$FERRY_LAB_DIR/drain.fig"
}

bound=$(awk -v r="$ram" -v l="$rate" 'BEGIN {printf "%.1f", r / l}')
printf '%-6s %-8s %8s %8s %6s %8s %9s %9s %8s\n' round way seconds sent_MiB failed forecast "/RAM-bnd" "/sent-bnd" "/naive"
: >"$FERRY_LAB_DIR/drain.plan"
row() { # round way seconds sent failed forecast naive-seconds
  printf '%-6s %-8s %8s %8s %6s %8s %9.2f %9.2f %8s\n' "$1" "$2" "$3" "$4" "$5" "$6" \
    "$(awk -v a="$3" -v b="$bound" 'BEGIN {print a / b}')" "$(awk -v a="$3" -v b="$4" -v l="$rate" 'BEGIN {print (b > 0 ? a / (b / l) : 0)}')" \
    "$([[ -n $7 ]] && awk -v a="$3" -v b="$7" 'BEGIN {printf "%.2f", a / b}' || echo -)"
}
for ((k = 1; k <= rounds; k++)); do
  # the order alternates from round to round (odd rounds: the drains first)
  if ((k % 2)); then
    read -r ds dsent dbad dpred <<<"$(drain --bandwidth-budget "$rate")"
    back
    read -r fs fsent fbad fpred <<<"$(drain)"
    back
    read -r ns nsent nbad <<<"$(naive)"
    back
  else
    read -r ns nsent nbad <<<"$(naive)"
    back
    read -r fs fsent fbad fpred <<<"$(drain)"
    back
    read -r ds dsent dbad dpred <<<"$(drain --bandwidth-budget "$rate")"
    back
  fi
  row "$k" naive "$ns" "$nsent" "$nbad" - ""
  row "$k" drain-b "$ds" "$dsent" "$dbad" "$dpred" "$ns"
  row "$k" drain "$fs" "$fsent" "$fbad" "$fpred" "$ns"
done
echo "Σ RAM / link = $ram MiB / $rate MiB/s = $bound s; sent-bnd = the MiB that way's migrations sent / link"
echo "drain-b: with --bandwidth-budget $rate (each migration capped at its share); drain: no budget (the"
echo "forecast's link is the configured $rate MiB/s, the migrations uncapped, sharing the link)"
echo "the drains' plans:"
sed 's/^/  /' "$FERRY_LAB_DIR/drain.plan"
echo "goal (issue #18): drain /RAM-bnd <= 1.2; /naive is the comparison the issue asks for (no goal)"
