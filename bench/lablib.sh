# Shared by the benchmarks that run on the lab (overhead.sh, transport.sh): tests/lab/lib.sh
# (LAB, sql, wait_sql, publish, newid, fail, ...) with the benchmarks' own lab — never the
# tests' or a developer's — taken down at exit, and small helpers. Source it after `top` and
# FERRY_BIN_DIR are set; then `"$LAB" up ...` and `eval "$("$LAB" env)"`.
source "$top/tests/lab/lib.sh"
# FERRY_BENCH_LAB_{DIR,NAME,NET,PORT_BASE} give a second checkout's benchmarks a lab of their own
export FERRY_LAB_DIR=${FERRY_BENCH_LAB_DIR:-/tmp/ferry-bench-lab} FERRY_LAB_NAME=${FERRY_BENCH_LAB_NAME:-ferrybn}
export FERRY_LAB_NET=${FERRY_BENCH_LAB_NET:-79} FERRY_LAB_PORT_BASE=${FERRY_BENCH_LAB_PORT_BASE:-26660}
trap '"$LAB" down >/dev/null 2>&1 || true' EXIT
"$LAB" down >/dev/null 2>&1 || true
# HOST's libvirt URI, and the URI other hosts migrate to it with (after the lab's env)
uri() { local v="FERRY_LAB_${1^^}_URI"; printf '%s' "${!v}"; }
muri() { local v="FERRY_LAB_${1^^}_MIGRATION_URI"; printf '%s' "${!v}"; }
ns() { date +%s%N; }
# pct FILE P: the P-th percentile (nearest rank) of the numbers in FILE
pct() { sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {i=int((p/100)*NR+0.999); if (i<1) i=1; print a[i]}'; }
other() { [[ $1 == compute1 ]] && echo compute2 || echo compute1; }
