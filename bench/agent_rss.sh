#!/usr/bin/env bash
# bench/agent_rss.sh [BUILD_DIR]: idle memory of ferry-agent on the lab (goal: RSS <= 8 MiB),
# with a baseline measured in the same run: a bare libvirt client on the same host
# (`virsh event --all --loop`, connected to the same libvirtd, idle), whose RSS is the floor
# that linking and initialising libvirt costs any process.
#
# Prints, for each: RSS (what the goal names), PSS (shared pages divided among their users)
# and private memory (what the process itself allocated), then the ratios.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(cd "${1:-$top/build}" && pwd)
export FERRY_BIN_DIR=$bin FERRY_LAB_DIR=${FERRY_LAB_DIR:-/tmp/ferry-bench-lab} FERRY_LAB_NAME=ferrybn \
  FERRY_LAB_NET=79 FERRY_LAB_PORT_BASE=26660
lab=$top/deploy/lab/ferry-lab
trap '"$lab" down >/dev/null 2>&1 || true' EXIT
"$lab" up --hosts 2 >/dev/null
"$lab" guest compute1 idle1 >/dev/null
setsid "$lab" shell compute1 virsh -q event --all --loop >/dev/null 2>&1 &
settle=${FERRY_BENCH_SETTLE_S:-12}
sleep "$settle"

# mem PID -> "rss_kib pss_kib private_kib"
mem() {
  awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Private_Clean:/ {c=$2} /^Private_Dirty:/ {d=$2} END {print r, p, c + d}' \
    "/proc/$1/smaps_rollup"
}
virsh_pid=$(pgrep -f 'virsh -q event --all --loop' | while read -r p; do
  [[ $(cat /proc/"$p"/comm) == virsh ]] && echo "$p"; done | head -n 1)
[[ -n $virsh_pid ]] || { echo "the baseline virsh did not start" >&2; exit 1; }
read -r vr vp vu < <(mem "$virsh_pid")
printf 'baseline (virsh event loop, idle): RSS %.1f MiB, PSS %.1f MiB, private %.1f MiB\n' \
  "$(awk -v x="$vr" 'BEGIN{print x/1024}')" "$(awk -v x="$vp" 'BEGIN{print x/1024}')" "$(awk -v x="$vu" 'BEGIN{print x/1024}')"
worst=0
for h in compute1 compute2; do
  pid=$("$lab" agent "$h" pid | head -n 1)
  [[ -n $pid ]] || { echo "no agent on $h" >&2; exit 1; }
  read -r r p u < <(mem "$pid")
  ((r > worst)) && worst=$r
  awk -v h="$h" -v r="$r" -v p="$p" -v u="$u" -v vr="$vr" -v vu="$vu" 'BEGIN {
    printf "ferry-agent %s idle: RSS %.1f MiB, PSS %.1f MiB, private %.1f MiB\n", h, r/1024, p/1024, u/1024
    printf "ferry-agent / virsh RSS = %.2f (%s)\n", r/vr, h
    printf "ferry-agent - virsh private = %.1f MiB (%s)\n", (u-vu)/1024, h }'
done
awk -v w="$worst" -v vr="$vr" 'BEGIN {
  printf "ferry-agent idle RSS = %.1f MiB (goal <= 8 MiB): %s\n", w/1024, (w <= 8192 ? "met" : "NOT met")
  if (w > 8192 && vr > 8192) printf "note: a bare libvirt client alone is %.1f MiB here\n", vr/1024 }'
