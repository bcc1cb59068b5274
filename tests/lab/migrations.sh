#!/usr/bin/env bash
# End to end on the lab with plain virsh: pre-copy of an idle guest on shared storage (and
# back), block migration of a guest on a host-local disk, post-copy of a dirtying guest
# switched after the first iteration, auto-converge of a dirtying guest. After each: the
# domain runs on exactly one host, persistent there, gone from the other, and its heartbeat
# went on. Then `down` must leave nothing behind. With FERRY_LAB_TLS=1 (lab.migrations_tls) the
# same runs on a TLS lab: qemu+tls between the daemons and --tls (QEMU's TLS) on the stream.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT

"$LAB" down >/dev/null 2>&1 || true
t0=$(now_ms)
"$LAB" up --hosts 2
echo "lab up in $(( $(now_ms) - t0 )) ms"
eval "$("$LAB" env)"
"$LAB" status

uri() { local v="FERRY_LAB_${1^^}_URI"; printf '%s' "${!v}"; }
muri() { local v="FERRY_LAB_${1^^}_MIGRATION_URI"; printf '%s' "${!v}"; }
tls=()
if [[ $FERRY_LAB_TLS == 1 ]]; then
  [[ $(muri compute1) == qemu+tls://* ]] || fail "a TLS lab migrates over $(muri compute1)"
  tls=(--tls)
fi

# migrate NAME FROM TO MODE [virsh flags...]: run it, check the outcome, print the figures
migrate() {
  local name=$1 from=$2 to=$3 mode=$4
  shift 4
  local before after t out
  for _ in $(seq 1 50); do [[ -n $(last_hb "$name") ]] && break; sleep 0.1; done
  before=$(last_hb "$name")
  t=$(now_ms)
  if ! out=$(virsh -c "$(uri "$from")" migrate --live --p2p --persistent --undefinesource "${tls[@]}" "$@" \
    "$name" "$(muri "$to")" 2>&1); then
    fail "$mode of $name $from -> $to does not work here: libvirt said: $out"
  fi
  local took=$(( $(now_ms) - t ))
  # exactly one host runs it, persistent there
  local info
  info=$(virsh -c "$(uri "$to")" dominfo "$name") || fail "$name is not on $to"
  grep -Eq '^State: +running' <<<"$info" || fail "$name not running on $to"
  grep -Eq '^Persistent: +yes' <<<"$info" || fail "$name not persistent on $to"
  if virsh -c "$(uri "$from")" dominfo "$name" >/dev/null 2>&1; then fail "$name still defined on $from"; fi
  # the heartbeat continued: the counter goes on past where it was, without a restart
  after=$before
  for _ in $(seq 1 50); do
    after=$(last_hb "$name")
    ((after > before + 1)) && break
    sleep 0.1
  done
  ((after > before + 1)) || fail "$name heartbeat stopped at $before after $mode"
  [[ $(grep -c 'ferry-guest: boot' "$FERRY_LAB_DIR/logs/guests/$name.console.log") == 1 ]] ||
    fail "$name booted again: it did not move alive"
  local downtime
  downtime=$(virsh -c "$(uri "$to")" domjobinfo "$name" --completed 2>/dev/null | awk -F: '/^Total downtime/ {gsub(/ /,"",$2); print $2}')
  ok "$mode${tls:+ over TLS}: $name $from -> $to in $took ms, downtime ${downtime:-unknown}, heartbeat $before -> $after"
}

"$LAB" guest compute1 idle1
migrate idle1 compute1 compute2 "pre-copy (shared storage)"
migrate idle1 compute2 compute1 "pre-copy back (shared storage)"

"$LAB" guest compute1 blk1 --local-disk 64
"$LAB" disk compute2 blk1 64  # the destination image must exist, same size and format
migrate blk1 compute1 compute2 "block migration (local disk)" --copy-storage-all

# dirtying 64 MiB at 48 MiB/s with 32 MiB/s of bandwidth: pre-copy alone cannot finish
"$LAB" guest compute1 pc1 --dirty 64 --rate 48
migrate pc1 compute1 compute2 "post-copy after the first iteration" --bandwidth 32 --postcopy --postcopy-after-precopy
"$LAB" guest compute1 ac1 --dirty 64 --rate 48
migrate ac1 compute1 compute2 "auto-converge" --bandwidth 32 --auto-converge --auto-converge-initial 40 --auto-converge-increment 20

"$LAB" status || fail "the lab is not whole after the migrations (status above: a daemon is DOWN)"
t0=$(now_ms)
"$LAB" down
echo "lab down in $(( $(now_ms) - t0 )) ms"
trap - EXIT
sleep 0.5
left=$(leftovers)
[[ -z $left ]] || fail "down left behind: $left"
ok "down left no namespace, interface, mount, process or directory behind"
