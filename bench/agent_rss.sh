#!/usr/bin/env bash
# bench/agent_rss.sh [BUILD_DIR]: idle resident memory of ferry-agent on the lab (goal <= 8 MiB),
# next to the same figure for the libvirtd it talks to, measured in the same run.
#
# It brings up a lab of its own (2 hosts), lets the agents settle for a few heartbeats, reads
# VmRSS of every ferry-agent and libvirtd from /proc, prints the figures and the ratio, and
# takes the lab down.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(cd "${1:-$top/build}" && pwd)
export FERRY_BIN_DIR=$bin FERRY_LAB_DIR=${FERRY_LAB_DIR:-/tmp/ferry-bench-lab} FERRY_LAB_NAME=ferrybn \
  FERRY_LAB_NET=79 FERRY_LAB_PORT_BASE=26660
lab=$top/deploy/lab/ferry-lab
trap '"$lab" down >/dev/null 2>&1 || true' EXIT
"$lab" up --hosts 2 >/dev/null
"$lab" guest compute1 idle1 >/dev/null
settle=${FERRY_BENCH_SETTLE_S:-12}
sleep "$settle"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
worst=0
for h in compute1 compute2; do
  pid=$("$lab" agent "$h" pid | head -n 1)
  [[ -n $pid ]] || { echo "no agent on $h" >&2; exit 1; }
  kib=$(rss_kib "$pid")
  ((kib > worst)) && worst=$kib
  lpid=$(pgrep -x libvirtd -P "$(cat "$FERRY_LAB_DIR/hosts/$h/init.pid")" | head -n 1 || true)
  lkib=$([[ -n $lpid ]] && rss_kib "$lpid" || echo 0)
  awk -v h="$h" -v a="$kib" -v l="$lkib" 'BEGIN { printf "ferry-agent %s idle RSS = %.1f MiB (libvirtd beside it: %.1f MiB, ratio %.2f)\n", h, a/1024, l/1024, (l ? a/l : 0) }' 
done
awk -v w="$worst" 'BEGIN { printf "ferry-agent idle RSS = %.1f MiB (goal <= 8 MiB): %s\n", w/1024, (w <= 8192 ? "met" : "NOT met") }' 
((worst <= 8192))
