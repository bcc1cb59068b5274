#!/usr/bin/env bash
# bench/run-all.sh [BUILD_DIR]: every benchmark, for real, one after the other (the machine
# should be otherwise quiet): claims, overhead + convergence, a Linux guest's application-visible
# downtime, the forecast's error against measured migrations, the planned drain against the naive
# evacuation, footprint, the agent's RSS on the
# lab, and the long chaos run (FERRY_CHAOS_LONG migrations, default 100). Each prints its
# figures and ratios; copy them into bench/RESULTS.md with the machine.
# Also `cmake --build build --target bench`.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(cd "${1:-$top/build}" && pwd)
echo "== $(date -u +%FT%TZ) on $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
bash "$top/bench/claims.sh" --build "$bin"
bash "$top/bench/overhead.sh" "$bin"
bash "$top/bench/transport.sh" "$bin"
bash "$top/bench/app_downtime.sh" "$bin"
bash "$top/bench/forecast_error.sh" "$bin"
bash "$top/bench/drain.sh" "$bin"
bash "$top/bench/footprint.sh" --build "$bin"
bash "$top/bench/agent_rss.sh" "$bin"
# the reliability suite's long run: chaos with many more migrations than CI's 20
FERRY_BIN_DIR=$bin FERRY_CHAOS_MIGRATIONS=${FERRY_CHAOS_LONG:-100} bash "$top/tests/lab/chaos.sh"
