#!/usr/bin/env bash
# bench/app_downtime.sh [--rounds K] [--smoke] [--kinds K1,K2..] [--no-tls] [BUILD_DIR]: the downtime a Linux
# guest's users see, against the downtime libvirt reports, through ferry and through raw
# `virsh migrate`, on the lab (2 hosts, one scheduler, Linux guests on the guest network).
#
# For each kind of migration, K migrations through ferry (ferryctl migrate --wait) and K with
# raw `virsh migrate --live --p2p --persistent --undefinesource` plus the same flags, each
# while deploy/lab/ferry-probe sends a UDP echo every 2 ms from the controller side:
#   precopy-idle     an idle guest
#   precopy-dirty    the guest rewrites 32 MiB at 16 MiB/s
#   postcopy         48 MiB at 48 MiB/s over a 32 MiB/s link, post-copy after the first pass
#   autoconverge     the same guest and link, auto-converge
#   block            an idle guest on a 64 MiB local disk, --copy-storage-all
#   tls              an idle guest on a lab in TLS mode (qemu+tls, QEMU's TLS on the stream)
# Per kind it prints the medians of: the longest gap in echoes (application-visible downtime),
# libvirt's reported downtime (ferry's recorded downtime_ms; `virsh domjobinfo --completed` on
# the destination for raw virsh), their ratio, and ferry's gap / raw virsh's gap.
# Goals (issue #15): application-visible / libvirt-reported <= 1.5; <= 50 ms for an idle guest.
# --smoke: one round; --kinds: only those kinds (default all); --no-tls: not the TLS lab.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=3 tls=1 kinds=precopy-idle,precopy-dirty,postcopy,autoconverge,block,tls
while (($#)); do
  case $1 in
    --rounds) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "--rounds needs a number" >&2; exit 2; }; rounds=$2; shift 2 ;;
    --smoke) rounds=1; shift ;;
    --no-tls) tls=0; shift ;;
    --kinds)
      [[ ${2:-} =~ ^(precopy-idle|precopy-dirty|postcopy|autoconverge|block|tls)(,(precopy-idle|precopy-dirty|postcopy|autoconverge|block|tls))*$ ]] ||
        { echo "--kinds: a comma-separated list of precopy-idle precopy-dirty postcopy autoconverge block tls" >&2; exit 2; }
      kinds=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "app_downtime.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
bin=$(cd "${1:-$top/build}" && pwd)
export FERRY_BIN_DIR=$bin
source "$top/tests/lab/lib.sh" # LAB, sql, wait_sql, fail
# the benchmarks' own lab (lib.sh chose the tests' one): never the tests' or a developer's
export FERRY_LAB_DIR=/tmp/ferry-bench-lab FERRY_LAB_NAME=ferrybn FERRY_LAB_NET=79 FERRY_LAB_PORT_BASE=26660
PROBE=$top/deploy/lab/ferry-probe
CTL=$bin/ferryctl
work=$(mktemp -d /tmp/ferry-bench-appdown.XXXXXX)
trap '"$LAB" down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$LAB" down >/dev/null 2>&1 || true

uri() { local v="FERRY_LAB_${1^^}_URI"; printf '%s' "${!v}"; }
muri() { local v="FERRY_LAB_${1^^}_MIGRATION_URI"; printf '%s' "${!v}"; }
other() { [[ $1 == compute1 ]] && echo compute2 || echo compute1; }
# where guest NAME runs (the one host that runs it)
at() { local h; for h in compute1 compute2; do [[ $("$LAB" virsh "$h" domstate "$1" 2>/dev/null | head -c 7) == running ]] && { echo "$h"; return; }; done; }
median() { sort -n | awk '{a[NR]=$1} END {if (!NR) {print "-"; exit} print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }

# new_guest NAME [ferry-lab guest options]: a Linux guest on compute1 the scheduler knows running
new_guest() {
  local name=$1
  shift
  "$LAB" guest compute1 "$name" --os linux "$@" >/dev/null
  wait_sql 40 "SELECT host || ' ' || vm_state FROM instances WHERE name = '$name'" "compute1 running" || fail "$name not seen running"
}

# watched WAY KIND NAME FLAGS...: one migration of NAME to the other host, ferry's way or raw
# virsh's, under the probe; appends "gap downtime" to $work/WAY.KIND
watched() {
  local way=$1 kind=$2 name=$3 from to addr pp i dt gap
  shift 3
  from=$(at "$name")
  [[ -n $from ]] || fail "$name runs nowhere"
  to=$(other "$from")
  addr=$("$LAB" guest-addr "$name")
  rm -f "$work/ready"
  "$PROBE" watch "$addr" --ready-file "$work/ready" --json "$work/probe.json" &
  pp=$!
  for i in $(seq 1 100); do [[ -f $work/ready ]] && break; sleep 0.1; done
  [[ -f $work/ready ]] || fail "the probe got no echo from $name"
  sleep 0.5
  if [[ $way == ferry ]]; then
    # the scheduler must see the guest running where it is (heartbeats every 5 s)
    wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = '$name'" "$from running" || fail "$name not seen on $from"
    "$CTL" migrate "$name" "$to" "$@" --wait >"$work/mig.out" 2>&1 || fail "ferryctl migrate $name $to $*: $(cat "$work/mig.out")"
    local mid
    mid=$(grep -o '^migration [0-9]*' "$work/mig.out" | head -n 1 | awk '{print $2}')
    dt=$(sql "SELECT coalesce(downtime_ms, -1) FROM migrations WHERE id = $mid")
  else
    local flags=() f
    # ferry's agents encrypt the stream by their config on a TLS lab ([libvirt] migrate_tls)
    [[ $kind == tls ]] && flags+=(--tls)
    for f in "$@"; do
      case $f in
        --postcopy) flags+=(--postcopy --postcopy-after-precopy) ;;
        --block-migrate) flags+=(--copy-storage-all); "$LAB" disk "$to" "$name" 64 >/dev/null ;;
        *) flags+=("$f") ;;
      esac
    done
    # post-copy by hand is what --postcopy-after-precopy does; --bandwidth is MiB/s as ferry's
    virsh -c "$(uri "$from")" migrate --live --p2p --persistent --undefinesource "${flags[@]}" "$name" "$(muri "$to")" \
      >"$work/mig.out" 2>&1 || fail "virsh migrate $name $to ${flags[*]}: $(cat "$work/mig.out")"
    dt=$(virsh -c "$(uri "$to")" domjobinfo --completed "$name" | awk '/^Total downtime:/ {print $3}')
    [[ -n $dt ]] || dt=-1
  fi
  sleep 0.5
  kill -TERM "$pp"
  wait "$pp" || fail "the probe failed"
  gap=$(python3 -c "import json; print(json.load(open('$work/probe.json'))['udp']['longest_gap_ms'])")
  echo "$gap $dt" >>"$work/$way.$kind"
  printf '  %-6s %-14s %s -> %s: gap %7s ms, libvirt downtime %5s ms\n' "$way" "$kind" "$from" "$to" "$gap" "$dt"
}

# run KIND NAME FLAGS...: K rounds of ferry and raw virsh, alternating, with the same flags
want() { [[ ,$kinds, == *,$1,* ]]; }
run() {
  local kind=$1 name=$2 r
  shift 2
  want "$kind" || return 0
  for ((r = 1; r <= rounds; r++)); do
    watched ferry "$kind" "$name" "$@"
    watched virsh "$kind" "$name" "$@"
  done
}

report() {
  echo
  printf '%-14s %9s %9s %7s %9s %9s %7s %10s\n' kind ferry-gap ferry-lv ratio virsh-gap virsh-lv ratio ferry/virsh
  local kind fg fd vg vd
  for kind in precopy-idle precopy-dirty postcopy autoconverge block tls; do
    [[ -s $work/ferry.$kind ]] || continue
    fg=$(awk '{print $1}' "$work/ferry.$kind" | median)
    fd=$(awk '{print $2}' "$work/ferry.$kind" | median)
    vg=$(awk '{print $1}' "$work/virsh.$kind" | median)
    vd=$(awk '{print $2}' "$work/virsh.$kind" | median)
    # a downtime libvirt did not report (-1: domjobinfo after a post-copy has none) is n/a
    awk -v k="$kind" -v fg="$fg" -v fd="$fd" -v vg="$vg" -v vd="$vd" '
      function ms(x) { return x >= 0 ? sprintf("%d", x) : "n/a" }
      function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "n/a" }
      BEGIN { printf "%-14s %9.1f %9s %7s %9.1f %9s %7s %10s\n", k, fg, ms(fd), ratio(fg, fd), vg, ms(vd), ratio(vg, vd), ratio(fg, vg) }'
  done
  echo "(medians of $rounds migration(s) each way; gap = longest time between two UDP echoes, 2 ms apart;"
  echo " lv = libvirt's reported downtime; ratio = gap / lv; goals: ratio <= 1.5, idle gap <= 50 ms)"
}

echo "== bench/app_downtime.sh: $rounds round(s) per kind and way, $(nproc) CPUs, $(date -u +%FT%TZ)"
"$LAB" up --hosts 2 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
# done_with NAME: the guest is not needed any more (a dirtying one costs a CPU under TCG)
done_with() { "$LAB" virsh "$(at "$1")" destroy "$1" >/dev/null; }
if want precopy-idle; then
  new_guest ad1
  run precopy-idle ad1
  done_with ad1
fi
if want precopy-dirty; then
  new_guest ad2 --dirty 32 --rate 16
  run precopy-dirty ad2
  done_with ad2
fi
if want postcopy || want autoconverge; then
  new_guest ad3 --dirty 48 --rate 48
  run postcopy ad3 --postcopy --bandwidth 32
  run autoconverge ad3 --auto-converge --bandwidth 32
  done_with ad3
fi
if want block; then
  new_guest ad4 --local-disk 64
  run block ad4 --block-migrate
  done_with ad4
fi
if ((tls)) && want tls; then
  "$LAB" down >/dev/null
  "$LAB" up --hosts 2 --schedulers 1 --tls >/dev/null
  eval "$("$LAB" env)"
  new_guest ad5
  run tls ad5
fi
report
