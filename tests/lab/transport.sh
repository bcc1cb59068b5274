#!/usr/bin/env bash
# The transport of a migration through ferry (issue #19), on the lab:
#  1. parallel connections: a policy gives c1's migrations 3 connections; the source reads back
#     what QEMU opened (settings_verified: 3 parallel connections, at least 4 to the destination)
#     and `ss` in the host sees QEMU's connections while it runs; `migration show` names them;
#  2. xbzrle compression with a 16 MiB cache (a request's option): read back from libvirt, and
#     libvirt's statistics of the completed job (its job-completed event on the source) show
#     the cache and the pages xbzrle compressed;
#  3. what cannot combine is refused at intake with the reason: xbzrle with parallel
#     connections, a cache not a power of two or not below the guest's memory, parallel
#     connections with post-copy before QEMU 10.1 (the lab's QEMU is 7.2);
#  4. the migration network: each agent's [agent] migration_address (the lab's second network,
#     meth0) is in its heartbeat; a migration's stream takes it (its verified connections name
#     both hosts' migration addresses) and the interface counters of the source show the bytes
#     on meth0, not on the management network's eth0.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --hosts 2 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
logs=$FERRY_LAB_LOG_DIR
ctl() { "$CTL" --timeout 20000 "$@"; }
out=$FERRY_LAB_DIR/transport.out

# ---- 1. parallel connections from a policy -------------------------------------------------------
busy_guest compute1 c1
ctl policy set par3 --instance c1 --parallel 3 >/dev/null || fail "policy set par3"
ctl policy show par3 | grep -q "^  transport  parallel connections 3, xbzrle cache - MiB$" || fail "policy show par3: $(ctl policy show par3)"
# a pre-copy that cannot converge at 16 MiB/s, finished by a pause at its 8 s timeout
ctl migrate c1 compute2 --bandwidth 16 --completion-timeout 8 --completion-action pause >"$out" 2>&1 || fail "migrate c1: $(cat "$out")"
m1=$(sql "SELECT max(id) FROM migrations")
wait_sql 30 "SELECT status FROM migrations WHERE id = $m1" running || fail "migration $m1 not running: $(sql "SELECT status, error FROM migrations WHERE id = $m1")"
# QEMU's own connections to compute2's migration address, as the host's ss sees them (the main
# one and 3 multifd)
dest=$("$LAB" maddr compute2)
conns=0
for _ in $(seq 1 50); do
  conns=$("$LAB" shell compute1 ss -Htnp state established dst "$dest" 2>/dev/null | grep -c '"qemu' || true)
  ((conns >= 4)) && break
  sleep 0.2
done
((conns >= 4)) || fail "ss in compute1 saw $conns connections of QEMU to $dest: $("$LAB" shell compute1 ss -tnp 2>&1)"
wait_sql 60 "SELECT status FROM migrations WHERE id = $m1" completed ||
  fail "migration $m1: $(sql "SELECT status, error FROM migrations WHERE id = $m1")"
[[ $(sql "SELECT parallel_connections || ' ' || policy FROM migrations WHERE id = $m1") == "3 par3" ]] ||
  fail "migration $m1: $(sql "SELECT parallel_connections, policy FROM migrations WHERE id = $m1")"
verified=$(sql "SELECT settings_verified FROM migrations WHERE id = $m1")
[[ $verified =~ 3\ parallel\ connections\ \(([0-9]+)\ to\ $dest\ from\ [0-9.]+\) ]] && ((BASH_REMATCH[1] >= 4)) ||
  fail "migration $m1's verified settings: '$verified'"
grep -q "migration=$m1 .*3 parallel connections, bandwidth 16 MiB/s" "$logs/compute1.agent.log" || fail "no start line with the connections"
ctl migration show "$m1" | grep -qx "  transport  3 parallel connections" || fail "migration show $m1: $(ctl migration show "$m1")"
[[ $(where c1) == "compute2 running yes" ]] || fail "c1 is at: $(where c1)"
ctl policy delete par3 >/dev/null || fail "policy delete par3"
ok "parallel connections from policy par3: migration $m1 completed; ss saw $conns connections to compute2; verified: $verified"

# ---- 2. xbzrle compression --------------------------------------------------------------------------
ctl migrate c1 compute1 --xbzrle 16 --bandwidth 16 --completion-timeout 8 --completion-action pause --wait >"$out" 2>&1 ||
  fail "migrate c1 with xbzrle: $(cat "$out")"
m2=$(sql "SELECT max(id) FROM migrations")
[[ $(sql "SELECT status || ' ' || xbzrle_cache_mib FROM migrations WHERE id = $m2") == "completed 16" ]] ||
  fail "migration $m2: $(sql "SELECT status, xbzrle_cache_mib, error FROM migrations WHERE id = $m2")"
verified=$(sql "SELECT settings_verified FROM migrations WHERE id = $m2")
[[ $verified == *"xbzrle cache 16 MiB"* ]] || fail "migration $m2's verified settings: '$verified'"
grep -q "^migration $m2: settings verified in libvirt: .*xbzrle cache 16 MiB" "$out" || fail "--wait did not show the verified settings: $(cat "$out")"
# libvirt's statistics of the completed job (its job-completed event on the source, logged by
# the agent): the cache and the pages xbzrle compressed
line=$(grep "migration=$m2 .*completed: .*; xbzrle: " "$logs/compute2.agent.log") || fail "no xbzrle figures in compute2's completion line"
[[ $line =~ xbzrle:\ ([0-9]+)\ pages\ compressed.*cache\ 16\ MiB ]] && ((BASH_REMATCH[1] > 0)) || fail "compute2's completion line: $line"
pages=${BASH_REMATCH[1]}
ctl migration show "$m2" | grep -qx "  transport  xbzrle compression, 16 MiB cache" || fail "migration show $m2: $(ctl migration show "$m2")"
ok "xbzrle: migration $m2 completed; verified: $verified; libvirt's completed job: 16 MiB cache, $pages compressed pages"

# ---- 3. what does not combine is refused at intake ---------------------------------------------------
refused() { # WHAT EXPECTED ARGS...: ferryctl migrate refused with the reason
  local what=$1 want=$2 st=0
  shift 2
  ctl migrate c1 compute2 "$@" >"$out" 2>&1 || st=$?
  [[ $st == 1 && $(cat "$out") == *"$want"* ]] || fail "$what: exit $st: $(cat "$out")"
}
# what the hosts hold before: a refusal gives back whatever it claimed
held=$(sql "SELECT string_agg(name || ':' || used_vcpus || '/' || used_memory_mb || '/' || used_disk_gb, ' ' ORDER BY name) FROM hosts")
refused "xbzrle with parallel" "options.xbzrle_cache_mib: xbzrle compresses a single stream: not with parallel_connections 2" --xbzrle 16 --parallel 2
refused "a cache not a power of two" "options.xbzrle_cache_mib: 24 is not a power of two" --xbzrle 24
mem=$(sql "SELECT memory_mb FROM instances WHERE name = 'c1'")
big=1; while ((big < mem)); do big=$((big * 2)); done
refused "a cache as big as the guest" "options.xbzrle_cache_mib $big: the cache must be smaller than" --xbzrle "$big"
refused "parallel with post-copy" "options.parallel_connections 2 cannot be combined with post-copy before QEMU 10.1 (host compute1 has QEMU 7." --parallel 2 --postcopy
[[ $(where c1) == "compute1 running yes" ]] || fail "a refused request moved c1: $(where c1)"
now_held=$(sql "SELECT string_agg(name || ':' || used_vcpus || '/' || used_memory_mb || '/' || used_disk_gb, ' ' ORDER BY name) FROM hosts")
[[ $now_held == "$held" ]] || fail "the refusals changed what the hosts hold: before $held, after $now_held"
ok "refused at intake: xbzrle with parallel connections, a cache not a power of two or not below the guest's memory, parallel with post-copy on QEMU 7"
stop_guest c1

# ---- 4. the migration network ------------------------------------------------------------------------
msrc=$("$LAB" maddr compute1)
mdst=$("$LAB" maddr compute2)
[[ $(sql "SELECT migration_address FROM hosts WHERE name = 'compute2'") == "$mdst" ]] ||
  fail "compute2's migration address: '$(sql "SELECT migration_address FROM hosts WHERE name = 'compute2'")'"
busy_guest compute1 c3
counters() { "$LAB" shell compute1 cat /sys/class/net/eth0/statistics/tx_bytes /sys/class/net/meth0/statistics/tx_bytes | xargs; }
read -r e0 n0 < <(counters)
ctl migrate c3 compute2 --bandwidth 32 --completion-timeout 4 --completion-action pause --wait >"$out" 2>&1 ||
  fail "migrate c3: $(cat "$out")"
read -r e1 n1 < <(counters)
m4=$(sql "SELECT max(id) FROM migrations")
sent=$(sql "SELECT memory_processed_bytes FROM migrations WHERE id = $m4")
mig=$((n1 - n0)) mgmt=$((e1 - e0))
# the memory went over meth0 (at least what libvirt says was sent); eth0 carried the control
# traffic only (libvirt's, the agents' events)
((mig >= sent && sent > 32 * 1048576)) || fail "meth0 sent $mig bytes, libvirt $sent: the stream did not take the migration network"
((mgmt < 4 * 1048576 && mgmt * 8 < mig)) || fail "eth0 sent $mgmt bytes during the migration (meth0 $mig): the stream took the management network"
verified=$(sql "SELECT settings_verified FROM migrations WHERE id = $m4")
[[ $verified == *"1 connection to $mdst from $msrc"* || $verified =~ [0-9]+\ connections\ to\ $mdst\ from\ $msrc ]] ||
  fail "migration $m4's verified streams: '$verified'"
grep -q "migration=$m4 .*stream to $mdst (migration network)" "$logs/compute1.agent.log" || fail "no migration network in compute1's start line"
[[ $(where c3) == "compute2 running yes" ]] || fail "c3 is at: $(where c3)"
ok "migration network: migration $m4 sent $((mig >> 20)) MiB on meth0 ($mdst), $((mgmt >> 10)) KiB on eth0; verified: $verified"
stop_guest c3
