#!/usr/bin/env bash
# bench/run-all.sh [BUILD_DIR]: every benchmark, for real, one after the other (the machine
# should be otherwise quiet): claims, overhead + convergence, footprint, the agent's RSS on the
# lab. Each prints its figures and ratios; copy them into bench/RESULTS.md with the machine.
# Also `cmake --build build --target bench`.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(cd "${1:-$top/build}" && pwd)
echo "== $(date -u +%FT%TZ) on $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
bash "$top/bench/claims.sh" --build "$bin"
bash "$top/bench/overhead.sh" "$bin"
bash "$top/bench/footprint.sh" --build "$bin"
bash "$top/bench/agent_rss.sh" "$bin"
