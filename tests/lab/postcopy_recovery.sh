#!/usr/bin/env bash
# Post-copy recovery (issue #17), end to end on the lab: a dirtying guest migrated by the
# scheduler with post-copy (bandwidth 8 MiB/s, so post-copy lasts several seconds); right after
# the switch the destination's link is cut with resets (`ferry-lab link compute2 down --reset`),
# which breaks QEMU's migration stream and libvirt's peer connection at once.
#  1. link back after 5 s: the source's job is kept (postcopy_paused), the migration goes into
#     `recovering`, the scheduler resumes it (resume_postcopy: VIR_MIGRATE_POSTCOPY_RESUME) and it
#     completes; the guest runs on the destination only and its heartbeat went on (one boot).
#  2. link never back within postcopy_recovery_s (shortened to 30 s): `error`, with the message
#     saying which host holds what and what to do; the guest runs on no two hosts.
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
# cut_after_switch MIG HOST: waits for the post-copy switch of MIG, then cuts HOST with resets
cut_after_switch() {
  wait_sql 60 "SELECT postcopy_active FROM migrations WHERE id = $1" t ||
    fail "migration $1 never switched to post-copy: $(sql "SELECT status, error FROM migrations WHERE id = $1")"
  "$LAB" link "$2" down --reset >/dev/null
  # the cut came after the switch, while memory was still being copied
  [[ $(sql "SELECT status FROM migrations WHERE id = $1") == running ]] ||
    fail "migration $1 had already ended when the link was cut: $(sql "SELECT status FROM migrations WHERE id = $1")"
}

# ---- 1. cut for 5 s after the switch: resumed, completed ---------------------------------------
busy_guest compute1 pc1
before=$(last_hb pc1)
mig=$(request pc1 compute2)
cut_after_switch "$mig" compute2
tcut=$(now_ms)
wait_sql 20 "SELECT recovering_since IS NOT NULL FROM migrations WHERE id = $mig" t ||
  fail "migration $mig did not go into recovering: $(sql "SELECT status, error FROM migrations WHERE id = $mig")"
grep -q "migration=$mig .*post-copy migration of .* paused: the stream broke after the switch" "$logs/compute1.agent.log" ||
  fail "the source agent did not report its job paused"
sleep "$(awk -v ms=$(( 5000 - ($(now_ms) - tcut) )) 'BEGIN { print (ms > 0 ? ms / 1000 : 0) }')"
"$LAB" link compute2 up >/dev/null
ok "migration $mig: link of compute2 cut with resets after the switch, recovering, link back after $(( $(now_ms) - tcut )) ms"
wait_sql 120 "SELECT status FROM migrations WHERE id = $mig" completed ||
  fail "migration $mig did not complete after the link came back: $(sql "SELECT status, error FROM migrations WHERE id = $mig")"
[[ $(where pc1) == "compute2 running yes" ]] || fail "pc1 is at: $(where pc1)"
[[ $(sql "SELECT host FROM instances WHERE name = 'pc1'") == compute2 ]] || fail "the instance row does not say compute2"
grep -q "migration=$mig .*resuming the paused post-copy migration to compute2" "$logs/compute1.agent.log" ||
  fail "the source agent never resumed the migration"
[[ $(sql "SELECT recovering_since IS NULL FROM migrations WHERE id = $mig") == t ]] || fail "recovering_since left set"
kinds=$(sql "SELECT string_agg(kind, ' ' ORDER BY id) FROM migration_events WHERE migration_id = $mig AND kind IN ('postcopy_paused', 'recovering', 'recovered')")
[[ $kinds == *recovering*recovered* ]] || fail "migration events of the recovery: $kinds"
after=$before
for _ in $(seq 1 50); do after=$(last_hb pc1); ((after > before + 2)) && break; sleep 0.2; done
((after > before + 2)) || fail "pc1 heartbeat stopped at $after (before the move: $before)"
[[ $(grep -c 'ferry-guest: boot' "$FERRY_LAB_DIR/logs/guests/pc1.console.log") == 1 ]] || fail "pc1 booted again"
figures=$(sql "SELECT memory_total_bytes || ' ' || coalesce(downtime_ms::text, '?') FROM migrations WHERE id = $mig")
ok "migration $mig completed after the recovery ($(timeline "$mig"); events: $kinds; figures: $figures); pc1 runs on compute2 only, heartbeat $before -> $after"
stop_guest pc1

# ---- 2. the link never comes back within postcopy_recovery_s: error, explained -----------------
busy_guest compute1 pc2
mig2=$(request pc2 compute2)
cut_after_switch "$mig2" compute2
wait_sql 20 "SELECT recovering_since IS NOT NULL FROM migrations WHERE id = $mig2" t ||
  fail "migration $mig2 did not go into recovering: $(sql "SELECT status, error FROM migrations WHERE id = $mig2")"
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
ok "migration $mig2 with the link never back: error; pc2 at: $(tr '\n' ';' <<<"$w")"
echo "error: $err"
"$LAB" link compute2 up >/dev/null
stop_guest pc2

# ---- the link tool leaves nothing -----------------------------------------------------------
"$LAB" link compute1 down >/dev/null
"$LAB" shell compute1 nft list tables | grep -q ferrylink || fail "link down added no table"
"$LAB" link compute1 up >/dev/null
[[ -z $("$LAB" shell compute1 nft list tables) ]] || fail "link up left rules: $("$LAB" shell compute1 nft list ruleset)"
ok "ferry-lab link down/up adds and removes its table"
