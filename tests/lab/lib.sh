# Shared by the lab tests: a lab of their own (own dir, namespace prefix, network, ports), so
# a developer's lab (deploy/lab/ferry-lab up with the defaults) is never touched.
set -euo pipefail
# the lab runs as production does (per-host broker users, the schedulers as ferry-scheduler):
# not the integration harness's "guest plays the schedulers" (tests/CMakeLists.txt)
unset FERRY_SCHEDULER_USERS
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB=$top/deploy/lab/ferry-lab
export FERRY_LAB_DIR=${FERRY_BIN_DIR:?run through ctest}/lab-test
# FERRY_TEST_LAB_{NAME,NET,PORT_BASE} give a second checkout's lab tests a lab of their own
# (two engineers, or a helper, on one machine); CI uses the defaults.
export FERRY_LAB_NAME=${FERRY_TEST_LAB_NAME:-ferrytst} FERRY_LAB_NET=${FERRY_TEST_LAB_NET:-78}
export FERRY_LAB_PORT_BASE=${FERRY_TEST_LAB_PORT_BASE:-26650}
ok() { echo "ok: $*"; }

# The EXIT trap of every lab test: `trap 'lab_exit $?' EXIT`. When the test failed, the
# daemons' logs are what tells why: their last lines go to stderr (CI keeps them) and the
# whole logs to $FERRY_BIN_DIR/lab-logs/<test>; then the lab goes down (unless FERRY_LAB_KEEP=1).
lab_exit() {
  local st=${1:-0} f keep=
  if ((st != 0)) && [[ -d $FERRY_LAB_DIR/logs ]]; then
    keep=$FERRY_BIN_DIR/lab-logs/$(basename "$0" .sh)
    rm -rf "$keep" && mkdir -p "$keep" && cp -a "$FERRY_LAB_DIR/logs/." "$keep/" 2>/dev/null || true
  fi
  # down first: whatever happens to the printing below, the lab does not outlive the test
  [[ ${FERRY_LAB_KEEP:-0} == 1 ]] || "$LAB" down >/dev/null 2>&1 || true
  [[ -n $keep ]] || return 0
  {
    echo "=== $(basename "$0") failed (exit $st): the daemons' last lines (all of it in $keep)"
    for f in "$keep"/scheduler*.log "$keep"/*.agent.log "$keep"/*.agent.out "$keep"/*.libvirtd.log \
      "$keep"/services.log "$keep"/broker*.log; do
      [[ -s $f ]] || continue
      echo "--- ${f##*/}"
      tail -n 15 "$f"
    done
  } >&2 || true
}
fail() { echo "FAIL: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

# the last heartbeat number in guest NAME's console log
last_hb() { grep -o 'ferry-guest: hb [0-9]*' "$FERRY_LAB_DIR/logs/guests/$1.console.log" | tail -n 1 | awk '{print $3}'; }

# Everything a lab of ours leaves on the machine: namespaces, interfaces, mounts, processes,
# files. Prints one line per leftover.
leftovers() {
  ip netns list | awk '{print $1}' | grep "^$FERRY_LAB_NAME-" | sed 's/^/netns /' || true
  # the lab network's and the guest network's controller-side veths (${NAME}0, ${NAME}g)
  ip -o link show | awk -F': ' '{print $2}' | grep -E "^${FERRY_LAB_NAME}[0g]" | sed 's/^/interface /' || true
  grep " $FERRY_LAB_DIR" /proc/self/mounts | awk '{print "mount " $2}' || true
  local p
  for p in /proc/[0-9]*; do
    # processes whose command line names the lab dir (libvirtd's init, QEMU, the servers)
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "$FERRY_LAB_DIR"; then
      [[ $(awk '{print $3}' "$p/stat" 2>/dev/null) == Z ]] && continue
      echo "process ${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" | cut -c1-120)"
    fi
  done
  # a scheduler replica's partition (ferry-lab scheduler N partition): nftables, this namespace
  nft list tables 2>/dev/null | awk '{print $3}' | grep "^ferrylab_${FERRY_LAB_NAME}_part" | sed 's/^/nftables table /' || true
  [[ -e $FERRY_LAB_DIR ]] && echo "directory $FERRY_LAB_DIR"
  return 0
}

# ---- talking to the agents with ferryctl rpc ----------------------------------------------
CTL=${FERRY_BIN_DIR}/ferryctl
# rpc HOST METHOD BODY: prints the reply body; exit status 1 on an error reply. The test plays
# the scheduler here: agents serve RPCs to the schedulers' broker user only
rpc() { FERRY_AMQP_URL=${FERRY_SCHEDULER_AMQP_URL:?eval the lab env first} "$CTL" --timeout 20000 rpc "$@"; }
# the domain UUID of guest NAME (from whichever host has it)
guest_uuid() {
  local h out
  for h in $FERRY_LAB_HOSTS; do
    # not `virsh | head -n 1`: head may exit before virsh's last newline, and under pipefail
    # the SIGPIPE made a guest that was there look missing (seen once in CI)
    out=$("$LAB" virsh "$h" domuuid "$1" 2>/dev/null) || continue
    [[ -n $out ]] && { printf '%s\n' "${out%%$'\n'*}"; return 0; }
  done
  return 1
}
host_addr() { "$LAB" addr "$1"; }
# wait_job HOST MIGRATION UUID SECONDS: until job_status leaves "running"; prints the last body
wait_job() {
  local h=$1 m=$2 u=$3 secs=$4 out state end
  end=$(($(date +%s) + secs))
  while :; do
    out=$(rpc "$h" job_status "{\"migration\":$m,\"instance\":\"$u\"}") || fail "job_status on $h: $out"
    state=$(jq -r .state <<<"$out")
    [[ $state != running ]] && break
    (($(date +%s) < end)) || fail "migration $m still running after $secs s: $out"
    sleep 0.3
  done
  printf '%s\n' "$out"
}
# where NAME runs: prints "host state persistent" for every host that has it
where() {
  local h info
  for h in $FERRY_LAB_HOSTS; do
    info=$("$LAB" virsh "$h" dominfo "$1" 2>/dev/null) || continue
    echo "$h $(awk '/^State:/ {print $2}' <<<"$info") $(awk '/^Persistent:/ {print $2}' <<<"$info")"
  done
}

# ---- the scheduler's side: the database and the request contract -------------------------------
sql() { psql "$FERRY_DB_DSN" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
# wait_sql SECONDS QUERY EXPECTED
wait_sql() {
  local end=$(($(date +%s) + $1)) got
  while :; do
    got=$(sql "$2" 2>/dev/null || true)
    [[ $got == "$3" ]] && return 0
    (($(date +%s) < end)) || { echo "waited for [$2] = [$3], last [$got]" >&2; return 1; }
    sleep 0.3
  done
}
# publish ID BODY-JSON [TYPE]: a message of the request contract, with a plain AMQP client
publish() {
  amqp-publish --url "$FERRY_AMQP_URL" -e ferry -r scheduler -C application/json -p \
    -b "{\"v\":1,\"type\":\"${3:-migration.request}\",\"id\":\"$1\",\"body\":$2}"
}
# usage of every host equals the sum of its allocations, and fits its capacity
check_usage() {
  local bad
  bad=$(sql "SELECT h.name FROM hosts h LEFT JOIN (SELECT host, sum(memory_mb) m, sum(vcpus) v FROM allocations GROUP BY host) a
             ON a.host = h.name WHERE h.used_memory_mb <> coalesce(a.m, 0) OR h.used_vcpus <> coalesce(a.v, 0)")
  [[ -z $bad ]] || fail "usage does not match allocations on: $bad ($(sql "SELECT name, used_memory_mb, used_vcpus FROM hosts"))"
  # and each host's count of its unfinished migrations (schema 5's trigger) matches them
  bad=$(sql "SELECT h.name || ' counts ' || h.migrations_active || ', has ' || count(m.id) FROM hosts h
             LEFT JOIN migrations m ON m.finished_at IS NULL AND h.name IN (m.source_host, m.dest_host)
             GROUP BY h.name, h.migrations_active HAVING h.migrations_active <> count(m.id)")
  [[ -z $bad ]] || fail "hosts' active-migration counters differ from their migrations: $bad"
}
newid() { cat /proc/sys/kernel/random/uuid; }
# the allocations of instance NAME, as consumer@host,...
allocs() {
  sql "SELECT string_agg(consumer_type || '@' || host, ',' ORDER BY consumer_type, host) FROM allocations
       WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = '$1')"
}
# the status timeline of migration ID
timeline() { sql "SELECT string_agg(status, ' ' ORDER BY id) FROM migration_events WHERE migration_id = $1 AND kind = 'status'"; }

# a guest that dirties 64 MiB at 48 MiB/s: pre-copy at a few MiB/s never converges by itself
# (it takes post-copy, force-complete or an abort to end); returns once the scheduler sees it
# running with its allocation, and its memory has been written once
busy_guest() {
  "$LAB" guest "$1" "$2" --dirty 64 --rate 48 >/dev/null
  # running, as the scheduler sees it (a guest starts paused for a moment; heartbeats every 5 s)
  wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = '$2'" "$1 running" || fail "$2 not discovered running"
  wait_sql 10 "SELECT count(*) FROM allocations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = '$2')" 1 ||
    fail "$2 has no allocation"
  sleep 2
}
# stops guest NAME wherever it runs (a busy guest costs a CPU under TCG)
stop_guest() { local h; for h in $FERRY_LAB_HOSTS; do "$LAB" virsh "$h" destroy "$1" >/dev/null 2>&1 || true; done; }
