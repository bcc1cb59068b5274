#!/usr/bin/env bash
# run.sh BINARY NAME SECONDS: replays every kept regression input of NAME, then fuzzes for
# SECONDS on a scratch copy of the seed corpus (the repository's corpus is never written).
# A crash leaves its input in the build's fuzz-artifacts/ directory: fix the bug, then keep
# the input under tests/fuzz/regressions/NAME/.
set -euo pipefail
bin=$1 name=$2 secs=$3
here=$(cd "$(dirname "$0")" && pwd)
art=$(dirname "$bin")/fuzz-artifacts/$name
mkdir -p "$art"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shopt -s nullglob
regs=("$here/regressions/$name"/*)
if ((${#regs[@]})); then
  "$bin" -runs=1 "${regs[@]}" 2>"$work/replay.log" || { cat "$work/replay.log" >&2; echo "FAIL: a kept regression input crashes again" >&2; exit 1; }
  echo "ok: ${#regs[@]} regression inputs replayed"
fi
cp -r "$here/corpus/$name/." "$work/"
mkdir -p "$work/new"
"$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$art/" "$work/new" "$work" 2>"$work/fuzz.log" || {
  tail -n 60 "$work/fuzz.log" >&2
  echo "FAIL: the fuzzer found a crash; its input is in $art" >&2
  exit 1
}
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work/fuzz.log" | sed 's/^/ok: /'
echo "ok: $name fuzzed for $secs s without a crash"
