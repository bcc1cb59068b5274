#!/usr/bin/env bash
# Post-copy recovery (issue #17), end to end on the lab: a dirtying guest migrated by the
# scheduler with post-copy (bandwidth 8 MiB/s, so post-copy lasts several seconds); right after
# the switch the destination's link is cut with resets (`ferry-lab link compute2 down --reset`),
# which breaks QEMU's migration stream and libvirt's peer connection at once.
#
# 1. The link comes back after 5 s: the source's job is kept (postcopy_paused), the migration
#    goes into `recovering`; the destination's QEMU, whose end of the stream is half-open (its
#    vCPU waits on a page it asked for before the cut and it sends nothing more), is made to see
#    the break (pause_postcopy: its migration socket shut down, compute-agent/qsock.c), the
#    source resumes the post-copy (VIR_MIGRATE_POSTCOPY_RESUME) and the migration completes: the
#    guest runs on the destination only, its heartbeat goes on, events `recovering` then
#    `recovered`.
# 2. The link never comes back within postcopy_recovery_s (shortened to 30 s): no resume is sent
#    to a destination that cannot take it, and the migration ends in `error` with the message
#    saying which host holds what and what to do; the guest runs on no two hosts and stays
#    paused on the source.
# The link tool's rules come and go with it.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT

"$LAB" down >/dev/null 2>&1 || true
export FERRY_LAB_SCHEDULER_EXTRA=$'bandwidth_mib_s = 8\npostcopy_recovery_s = 30'
t0=$(now_ms)
"$LAB" up --hosts 2 --schedulers 1 >/dev/null
echo "lab up in $(( $(now_ms) - t0 )) ms"
eval "$("$LAB" env)"
logs=$FERRY_LAB_LOG_DIR

# request NAME DEST: publishes a post-copy migration request; prints the migration id once made
request() {
  local req
  req=$(newid)
  publish "$req" "{\"instance\":\"$1\",\"os-migrateLive\":{\"host\":\"$2\",\"block_migration\":false,\"disk_over_commit\":false,\"post_copy\":true}}"
  wait_sql 30 "SELECT count(*) FROM migrations WHERE request_id = '$req'" 1 >&2 || fail "no migration for request $req"
  sql "SELECT id FROM migrations WHERE request_id = '$req'"
}
# cut_after_switch MIG HOST: waits for the post-copy switch of MIG and for the guest to run on
# HOST (the destination), then cuts HOST with resets. The switch is recorded as it begins: a cut
# before the destination has the guest's device state and runs it (a CI run cut 100 ms after
# the switch) fails the destination's QEMU outright, and there is no post-copy left to recover
cut_after_switch() {
  wait_sql 60 "SELECT postcopy_active FROM migrations WHERE id = $1" t ||
    fail "migration $1 never switched to post-copy: $(sql "SELECT status, error FROM migrations WHERE id = $1")"
  local name st=
  name=$(sql "SELECT i.name FROM migrations m JOIN instances i ON i.uuid = m.instance_uuid WHERE m.id = $1")
  for _ in $(seq 1 100); do
    # not `virsh | head -n 1`: head may exit before virsh's last newline and, under pipefail,
    # the SIGPIPE ended the script (exit 141, a CI run of 2026-12-05; lib.sh's guest_uuid too)
    st=$("$LAB" virsh "$2" domstate "$name" 2>/dev/null) || st=
    st=${st%%$'
'*}
    [[ $st == running ]] && break
    sleep 0.05
  done
  [[ $st == running ]] || fail "$name does not run on $2 after the switch: $st"
  "$LAB" link "$2" down --reset >/dev/null
  # the cut came after the switch, while memory was still being copied
  [[ $(sql "SELECT status FROM migrations WHERE id = $1") == running ]] ||
    fail "migration $1 had already ended when the link was cut: $(sql "SELECT status FROM migrations WHERE id = $1")"
}

# ---- the link back after 5 s: resumed, completed -------------------------------------------------
busy_guest compute1 pc1
before=$(last_hb pc1)
mig1=$(request pc1 compute2)
cut_after_switch "$mig1" compute2
t_cut=$(now_ms)
wait_sql 20 "SELECT recovering_since IS NOT NULL FROM migrations WHERE id = $mig1" t ||
  fail "migration $mig1 did not go into recovering: $(sql "SELECT status, error FROM migrations WHERE id = $mig1")"
while (($(now_ms) - t_cut < 5000)); do sleep 0.1; done
"$LAB" link compute2 up >/dev/null
echo "link of compute2 back after $(($(now_ms) - t_cut)) ms"
wait_sql 120 "SELECT status FROM migrations WHERE id = $mig1" completed ||
  fail "migration $mig1 did not complete after the link came back: $(sql "SELECT status, error FROM migrations WHERE id = $mig1")"
kinds=$(sql "SELECT string_agg(kind, ' ' ORDER BY id) FROM migration_events WHERE migration_id = $mig1 AND kind IN ('postcopy_paused', 'recovering', 'recovered')")
[[ $kinds == *recovering*recovered* ]] || fail "migration $mig1's recovery events: '$kinds'"
[[ -z $(sql "SELECT recovering_since FROM migrations WHERE id = $mig1") ]] || fail "recovering_since left set"
w=$(where pc1)
[[ $w == "compute2 running yes" ]] || fail "pc1 after the resumed migration: $(tr '\n' ';' <<<"$w")"
[[ $(sql "SELECT host FROM instances WHERE name = 'pc1'") == compute2 ]] || fail "the database does not place pc1 on compute2"
# the heartbeat goes on from the destination, past where it was before the migration
after=$before
for _ in $(seq 1 100); do after=$(last_hb pc1); ((after > before + 1)) && break; sleep 0.1; done
((after > before + 1)) || fail "pc1's heartbeat stopped at $before"
how="the destination saw the break itself"
grep -q "migration=$mig1 .*migration socket(s) shut down" "$logs/compute2.agent.log" &&
  how="the destination's half-open stream shut down by its agent"
ok "migration $mig1: link cut 5 s after the switch, recovered and completed ($how); events: $kinds; pc1 runs on compute2 only, heartbeat $before -> $after"
sql "SELECT kind, origin, message FROM migration_events WHERE migration_id = $mig1 AND kind IN ('recovering', 'recovered') ORDER BY id" | sed 's/^/  /'
stop_guest pc1

# ---- the link never comes back within postcopy_recovery_s: error, explained -------------------
busy_guest compute1 pc2
mig2=$(request pc2 compute2)
cut_after_switch "$mig2" compute2
wait_sql 20 "SELECT recovering_since IS NOT NULL FROM migrations WHERE id = $mig2" t ||
  fail "migration $mig2 did not go into recovering: $(sql "SELECT status, error FROM migrations WHERE id = $mig2")"
[[ $(sql "SELECT status FROM migrations WHERE id = $mig2") == running ]] || fail "recovering is a sub-state of running"
grep -q "migration=$mig2 .*post-copy migration of .* paused: the stream broke after the switch" "$logs/compute1.agent.log" ||
  fail "the source agent did not report its job paused"
epoch=$(sql "SELECT epoch FROM migrations WHERE id = $mig2")
out=$(rpc compute1 job_status "{\"migration\":$mig2,\"instance\":\"$(guest_uuid pc2)\",\"epoch\":$epoch}") || fail "job_status: $out"
[[ $(jq -r .state <<<"$out") == postcopy_paused && $(jq -r .postcopy <<<"$out") == true ]] ||
  fail "the source's job_status during the recovery: $out"
wait_sql 10 "SELECT count(*) > 0 FROM migration_events WHERE migration_id = $mig2 AND kind = 'postcopy_paused'" t ||
  fail "no postcopy_paused event recorded"
# the scheduler asks the destination first: no resume is sent while it cannot take one
grep -q "migration=$mig2 .*resuming the paused post-copy migration" "$logs/compute1.agent.log" &&
  fail "a resume was sent while the destination was unreachable"
ok "migration $mig2: recovering (sub-state of running), source job $(jq -c '{state, postcopy}' <<<"$out"), event postcopy_paused recorded"
wait_sql 90 "SELECT status FROM migrations WHERE id = $mig2" error ||
  fail "migration $mig2 did not end in error: $(sql "SELECT status, error FROM migrations WHERE id = $mig2")"
err=$(sql "SELECT error FROM migrations WHERE id = $mig2")
for want in "post-copy recovery failed" "within 30 s" \
  "compute2 (destination) holds the guest's CPU state and the memory pages it received" \
  "compute1 (source) holds the rest of its memory" "--postcopy-resume"; do
  [[ $err == *"$want"* ]] || fail "the error of migration $mig2 does not say '$want': $err"
done
# the guest runs on no two hosts: the source keeps it paused (its memory is split)
w=$(where pc2)
[[ $(grep -c ' running ' <<<"$w" || true) -le 1 ]] || fail "pc2 runs on two hosts: $w"
grep -q '^compute1 paused' <<<"$w" || fail "pc2 is not paused on the source: $w"
ok "migration $mig2 with the link never back: error after postcopy_recovery_s; pc2 at: $(tr '\n' ';' <<<"$w")"
echo "error: $err"
"$LAB" link compute2 up >/dev/null
stop_guest pc2

# ---- the link tool leaves nothing -----------------------------------------------------------
"$LAB" link compute1 down >/dev/null
"$LAB" shell compute1 nft list tables | grep -q ferrylink || fail "link down added no table"
"$LAB" link compute1 up >/dev/null
[[ -z $("$LAB" shell compute1 nft list tables) ]] || fail "link up left rules: $("$LAB" shell compute1 nft list ruleset)"
ok "ferry-lab link down/up adds and removes its table"
