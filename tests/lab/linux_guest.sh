#!/usr/bin/env bash
# What a Linux guest's users see of ferry's live migrations, on the lab's guest network: a real
# kernel (Debian 12's, built by ferry-lab from Debian's packages) with a virtio NIC, UDP and
# TCP echo on port 7, probed from the controller side by deploy/lab/ferry-probe while ferry
# (ferryctl, through the scheduler and both agents) migrates it.
#   - pre-copy, post-copy and block migration: a TCP connection opened before the migration
#     still echoes every line, in order, after it, on the destination;
#   - pre-copy of an idle guest: the longest gap in UDP echoes (2 ms apart) is at most libvirt's
#     reported downtime + 2000 ms. Why that bound: the echoes stop while the guest is paused
#     (libvirt's downtime); beyond it the probe waits for the network to learn the guest's new
#     port (QEMU's announce at switch-over), one round trip, and the destination's QEMU running
#     the guest again from a cold TCG translation cache on a 2-core machine shared with the
#     daemons and other tests. Over 50 migrations here the gap was 35-175 ms over libvirt's
#     figure, once 1.38 s with the machine loaded by compiles (bench/RESULTS.md). Without
#     the announce the network would keep sending to the old host until its MAC entry ages
#     out (300 s) and a guest that rebooted needs ~6 s: both far beyond the bound;
#   - the guest did not reboot (one boot line; its uptime keeps rising) and runs, and answers,
#     on exactly one host (virsh on every host; no echo answered twice);
#   - QEMU's announce: with no traffic to or from the guest, the lab fabric's bridge learns
#     the guest's MAC on the destination's port after the migration;
#   - `ferry-lab down` leaves no namespace, interface, mount, process or file.
source "$(dirname "$0")/lib.sh"
PROBE=$top/deploy/lab/ferry-probe
CTL=$FERRY_BIN_DIR/ferryctl
work=$(mktemp -d)
trap 'st=$?; rm -rf "$work"; lab_exit $st' EXIT

"$LAB" up --hosts 2 >/dev/null
eval "$("$LAB" env)"

"$LAB" guest compute1 lx1 --os linux >/dev/null
"$LAB" guest compute1 lx2 --os linux --local-disk 64 >/dev/null
a1=$("$LAB" guest-addr lx1)
a2=$("$LAB" guest-addr lx2)
[[ $a1 =~ ^169\.254\.[0-9]+\.[0-9]+$ && $a2 =~ ^169\.254\.[0-9]+\.[0-9]+$ && $a1 != "$a2" ]] || fail "guest addresses: '$a1' '$a2'"
for g in lx1 lx2; do
  wait_sql 40 "SELECT host || ' ' || vm_state FROM instances WHERE name = '$g'" "compute1 running" || fail "$g not discovered running"
done
"$PROBE" ping "$a1" --timeout 10 >/dev/null || fail "lx1 does not answer at $a1"
ok "two Linux guests on compute1 answer UDP and TCP echo on the guest network ($a1, $a2)"

# the guest's MAC, and the fabric port of each host
mac=$(printf '%s' "$("$LAB" virsh compute1 domiflist lx1)" | awk '/bridge/ {print $5}')
[[ $mac =~ ^52:54:00: ]] || fail "lx1's MAC: '$mac'"
fabric_port() { bridge -n "$FERRY_LAB_NAME-fabric" fdb show br gbr0 | awk -v m="$mac" 'tolower($1) == m {print $3}'; }

uptime_of() { grep -o 'ferry-guest: hb [0-9.]*' "$FERRY_LAB_DIR/logs/guests/$1.console.log" | tail -n 1 | awk '{print $3}'; }

# migrate_watched NAME ADDR DEST [ferryctl flags]: a ferry migration while the probe watches;
# leaves the probe's summary in $work/NAME.json and the migration's id in $mid
migrate_watched() {
  local name=$1 addr=$2 dest=$3 pp i up0 up1
  shift 3
  rm -f "$work/ready"
  "$PROBE" watch "$addr" --ready-file "$work/ready" --json "$work/$name.json" &
  pp=$!
  for i in $(seq 1 100); do [[ -f $work/ready ]] && break; sleep 0.1; done
  [[ -f $work/ready ]] || fail "the probe got no echo from $name at $addr"
  sleep 1
  up0=$(uptime_of "$name")
  "$CTL" migrate "$name" "$dest" "$@" --wait >"$work/mig.out" 2>&1 || fail "migrate $name $dest $*: $(cat "$work/mig.out")"
  mid=$(grep -o '^migration [0-9]*' "$work/mig.out" | head -n 1 | awk '{print $2}')
  [[ -n $mid ]] || fail "no migration id in: $(cat "$work/mig.out")"
  # the connection must go on echoing on the destination, not only survive the switch
  sleep 1.5
  kill -TERM "$pp"
  wait "$pp" || fail "the probe failed: $(cat "$work/$name.json" 2>/dev/null)"
  up1=$(uptime_of "$name")
  awk -v a="$up0" -v b="$up1" 'BEGIN {exit !(b > a)}' || fail "$name's uptime did not rise: $up0 then $up1"
  [[ $(grep -c 'ferry-guest: boot ' "$FERRY_LAB_DIR/logs/guests/$name.console.log") == 1 ]] || fail "$name booted again"
  [[ $(where "$name") == "$dest running yes" ]] || fail "$name runs on: $(where "$name" | xargs)"
}
# check_tcp NAME KIND: the TCP connection opened before the migration echoed every line, in order
check_tcp() {
  python3 - "$work/$1.json" "$2" <<'EOF' || fail "$2: $(cat "$work/$1.json")"
import json, sys
d = json.load(open(sys.argv[1]))
t, u = d["tcp"], d["udp"]
assert t["broken"] is None, "the TCP connection broke: %s" % t["broken"]
assert t["in_order"] and t["echoed"] == t["sent"] and t["sent"] > 100, "TCP: %s" % t
assert u["duplicates"] == 0, "a UDP echo was answered twice: two guests answered"
EOF
}
downtime_of() { sql "SELECT coalesce(downtime_ms, -1) FROM migrations WHERE id = $1"; }

# ---- pre-copy, idle guest: TCP survives, UDP gap bound ----------------------------------------
migrate_watched lx1 "$a1" compute2
check_tcp lx1 pre-copy
dt=$(downtime_of "$mid")
gap=$(python3 -c "import json; print(json.load(open('$work/lx1.json'))['udp']['longest_gap_ms'])")
((dt > 0)) || fail "no downtime recorded for migration $mid"
awk -v g="$gap" -v d="$dt" 'BEGIN {exit !(g <= d + 2000)}' ||
  fail "pre-copy: the longest UDP gap ${gap} ms exceeds libvirt's downtime ${dt} ms + 2000 ms"
[[ $(fabric_port) == "g${FERRY_LAB_NAME}2" ]] || fail "the fabric has lx1's MAC on '$(fabric_port)', not compute2's port"
ok "pre-copy (migration $mid): the TCP connection echoed on, in order, from compute2; longest UDP gap ${gap} ms, libvirt's downtime ${dt} ms (bound: downtime + 2000 ms); no reboot"

# ---- post-copy back ---------------------------------------------------------------------------
# post-copy is switched at the start of the second pass; an idle guest's first pass sometimes
# leaves less than QEMU's threshold (bandwidth x allowed pause) and completes in pre-copy with
# nothing to switch (a run did, in 0.6 s): then it is moved again, up to three times, until a
# migration did switch. (Forcing the second pass instead — a 1 ms allowed pause, or an 8 MiB/s
# cap that makes the post-copy phase long — broke the guest after the switch in runs of
# 2026-12-05, with and without the migration network: QEMU 7.2 TCG, to be looked into.)
switched=0
for attempt in 1 2 3; do
  to=compute1
  [[ $(where lx1) == "compute1 "* ]] && to=compute2
  migrate_watched lx1 "$a1" "$to" --postcopy
  check_tcp lx1 post-copy
  [[ $(sql "SELECT postcopy_active FROM migrations WHERE id = $mid") == t ]] && { switched=1; break; }
  echo "note: migration $mid (attempt $attempt) completed in pre-copy: no second pass to switch at" >&2
done
((switched)) || fail "three post-copy migrations of lx1 never switched to post-copy"
ok "post-copy (migration $mid): the TCP connection echoed on from $to; longest UDP gap $(python3 -c "import json; print(json.load(open('$work/lx1.json'))['udp']['longest_gap_ms'])") ms, libvirt's downtime $(downtime_of "$mid") ms"
if [[ $to == compute2 ]]; then
  "$CTL" migrate lx1 compute1 --wait >"$work/mig.out" 2>&1 || fail "migrate lx1 back to compute1: $(cat "$work/mig.out")"
  for i in $(seq 1 20); do [[ $(fabric_port) == "g${FERRY_LAB_NAME}1" ]] && break; sleep 0.1; done
fi

# ---- QEMU's announce: nothing talks to the guest, yet the network learns its new port ----------
[[ $(fabric_port) == "g${FERRY_LAB_NAME}1" ]] || fail "before: the fabric has lx1's MAC on '$(fabric_port)', not compute1's port"
"$CTL" migrate lx1 compute2 --wait >"$work/mig.out" 2>&1 || fail "migrate lx1 compute2: $(cat "$work/mig.out")"
for i in $(seq 1 20); do [[ $(fabric_port) == "g${FERRY_LAB_NAME}2" ]] && break; sleep 0.1; done
[[ $(fabric_port) == "g${FERRY_LAB_NAME}2" ]] || fail "after a migration with no traffic the fabric still has lx1's MAC on '$(fabric_port)'"
mid=$(grep -o '^migration [0-9]*' "$work/mig.out" | head -n 1 | awk '{print $2}')
# the destination agent saw it too (its own bridge learned the MAC on the guest's tap) and the
# scheduler recorded what it said among the migration's events
ev=$(sql "SELECT origin || ' ' || host || ' ' || message FROM migration_events WHERE migration_id = $mid AND kind = 'announce'")
[[ $ev == "destination compute2 guest announce seen: "* ]] || fail "migration $mid's announce event: '$ev'"
"$CTL" migration events "$mid" | grep -q "announce *guest announce seen" || fail "ferryctl migration events $mid shows no announce"
ok "with no traffic, the fabric learned lx1's MAC on compute2's port after the migration (QEMU's announce); migration $mid's events: $ev"

# ---- block migration (local disk) -------------------------------------------------------------
migrate_watched lx2 "$a2" compute2 --block-migrate
check_tcp lx2 block
[[ $(sql "SELECT block_migration FROM migrations WHERE id = $mid") == yes ]] || fail "migration $mid was not a block migration"
# the disk's figures, stored from the source's progress and final statistics, and shown
[[ $(sql "SELECT disk_total_bytes > 0 AND disk_processed_bytes > 0 AND disk_remaining_bytes = 0 FROM migrations WHERE id = $mid") == t ]] ||
  fail "migration $mid's disk figures: $(sql "SELECT disk_total_bytes, disk_processed_bytes, disk_remaining_bytes FROM migrations WHERE id = $mid")"
disks=$("$CTL" migration show "$mid" | grep '^  disks ') || fail "migration show $mid has no disks line: $("$CTL" migration show "$mid")"
[[ $disks =~ ^\ \ disks\ +[0-9.]+\ MiB\ copied\ of\ [0-9.]+\ MiB,\ 0\ MiB\ left$ ]] || fail "migration show $mid: '$disks'"
ok "block migration (migration $mid): the TCP connection echoed on from compute2; longest UDP gap $(python3 -c "import json; print(json.load(open('$work/lx2.json'))['udp']['longest_gap_ms'])") ms; disks: ${disks#  disks }"

# ---- nothing left behind ----------------------------------------------------------------------
"$LAB" down >/dev/null
left=$(leftovers)
[[ -z $left ]] || fail "ferry-lab down left: $left"
ip netns list | grep -q "^$FERRY_LAB_NAME-" && fail "a namespace is left"
ok "ferry-lab down left no namespace, bridge, veth, mount, process or file"
