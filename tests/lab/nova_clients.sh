#!/usr/bin/env bash
# Nova's compute API on the lab (issue #16), driven only through Debian's real clients
# (python3-openstackclient, python3-novaclient) with ferry's API token and no Keystone, the
# outcome checked in libvirt: server list/show; server migrate --live-migration --wait at
# microversions 2.1, 2.25 (--block-migration) and 2.30 (--host); server migration list/show;
# migration abort on a migration that cannot converge (the guest stays on its source) and
# force complete on one that then finishes; hypervisor list; compute service set --disable
# and a migration that avoids that host; nova live-migration --block-migrate VM HOST; nova
# host-evacuate-live HOST.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
# the clients send no bandwidth: 16 MiB/s for every migration, so that the dirtying guest's
# pre-copy cannot converge by itself (the tiny guests still move in a second or two)
export FERRY_LAB_SCHEDULER_EXTRA="bandwidth_mib_s = 16"
"$LAB" up --hosts 3 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
out=$FERRY_LAB_DIR/out
export OS_AUTH_TYPE=token_endpoint OS_ENDPOINT=$FERRY_HTTP_URL/v2.1 OS_TOKEN=$FERRY_API_TOKEN
unset OS_CLOUD OS_AUTH_URL OS_USERNAME OS_PASSWORD OS_PROJECT_NAME OS_PROJECT_ID 2>/dev/null || true
os() { openstack "$@" 2>"$out.err" || fail "openstack $*: $(cat "$out.err")"; }
# novaclient has no token_endpoint; keystoneauth's admin_token is the same plugin (endpoint +
# token), and its shell wants a project and an auth URL that it then does not use
nova() { OS_AUTH_TYPE=admin_token OS_PROJECT_ID=admin OS_AUTH_URL=$OS_ENDPOINT command nova "$@" 2>"$out.err" || fail "nova $*: $(cat "$out.err")"; }
running_guest() { # HOST NAME [guest options]
  local h=$1 n=$2
  shift 2
  "$LAB" guest "$h" "$n" "$@" >/dev/null
  wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = '$n'" "$h running" || fail "$n not seen running on $h"
}
# on NAME: the one host where libvirt runs it (fails unless exactly one host runs it, and it is persistent there)
on() {
  local w
  w=$(where "$1")
  [[ $(wc -l <<<"$w") == 1 && $w == *" running yes" ]] || fail "$1 is not running on exactly one host: $w"
  echo "${w%% *}"
}
other() { local h; for h in $FERRY_LAB_HOSTS; do [[ " $* " == *" $h "* ]] || { echo "$h"; return; }; done; }
settled() { wait_sql 60 "SELECT count(*) FROM migrations WHERE finished_at IS NULL" 0 || fail "migrations still running"; }

running_guest compute1 vm1
uuid=$(sql "SELECT uuid FROM instances WHERE name = 'vm1'")

# ---- server list / show ----------------------------------------------------------------------------
os server list -f value -c Name -c Status >"$out"
grep -qx 'vm1 ACTIVE' "$out" || fail "server list: $(cat "$out")"
[[ $(os server show vm1 -f value -c OS-EXT-SRV-ATTR:host) == compute1 ]] || fail "server show vm1: not on compute1"
[[ $(os server show "$uuid" -f value -c id) == "$uuid" ]] || fail "server show by uuid"
ok "openstack server list / show (by name and uuid)"

# ---- server migrate --live-migration --wait, three microversions ------------------------------------
os --os-compute-api-version 2.1 server migrate --live-migration --wait vm1 >"$out"
settled
h1=$(on vm1)
[[ $h1 != compute1 ]] || fail "2.1: vm1 still on compute1"
[[ $(sql "SELECT host || ' ' || coalesce(task_state, '-') FROM instances WHERE uuid = '$uuid'") == "$h1 -" ]] || fail "2.1: the database disagrees"
ok "server migrate --live-migration --wait (2.1, the scheduler chose $h1)"
# block migration: a guest on a host-local disk, its image made on the possible destinations
"$LAB" guest compute1 blk --local-disk 64 >/dev/null
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'blk'" "compute1 running" || fail "blk not seen running"
"$LAB" disk compute2 blk 64 >/dev/null
"$LAB" disk compute3 blk 64 >/dev/null
os --os-compute-api-version 2.25 server migrate --live-migration --block-migration --wait blk >"$out"
settled
hb=$(on blk)
[[ $hb != compute1 ]] || fail "2.25: blk did not move"
[[ $(sql "SELECT block_migration || ' ' || status FROM migrations ORDER BY id DESC LIMIT 1") == "yes completed" ]] || fail "2.25: not a completed block migration"
ok "server migrate --live-migration --block-migration --wait (2.25, blk on its local disk to $hb)"
h3=$(other "$h1")
os --os-compute-api-version 2.30 server migrate --live-migration --host "$h3" --wait vm1 >"$out"
settled
[[ $(on vm1) == "$h3" ]] || fail "2.30 --host $h3: vm1 is on $(on vm1)"
ok "server migrate --live-migration --host $h3 --wait (2.30)"

# ---- migration list / show ------------------------------------------------------------------------
os --os-compute-api-version 2.59 server migration list --server vm1 -f value -c Status -c 'Dest Compute' >"$out"
# (openstackclient prints the columns in its own order: Dest Compute, then Status)
[[ $(grep -c ' completed$' "$out") == 2 ]] || fail "server migration list: $(cat "$out")"
grep -qx "$h3 completed" "$out" || fail "server migration list has no migration to $h3: $(cat "$out")"
ok "server migration list (vm1's 2 completed)"

# ---- abort (cannot converge: the guest stays) and force complete (then finishes) --------------------
busy_guest compute2 ab
os --os-compute-api-version 2.24 server migrate --live-migration ab
wait_sql 30 "SELECT status FROM migrations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'ab') ORDER BY id DESC LIMIT 1" running ||
  fail "ab's migration is not running"
mab=$(sql "SELECT id FROM migrations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'ab') ORDER BY id DESC LIMIT 1")
[[ $(os server show ab -f value -c status) == MIGRATING ]] || fail "ab is not MIGRATING"
[[ $(os --os-compute-api-version 2.24 server migration show ab "$mab" -f value -c Status) == running ]] || fail "migration show: not running"
os --os-compute-api-version 2.24 server migration abort ab "$mab"
wait_sql 60 "SELECT status FROM migrations WHERE id = $mab" cancelled || fail "abort did not cancel"
[[ $(on ab) == compute2 ]] || fail "aborted: ab is not on compute2"
[[ $(os server show ab -f value -c status) == ACTIVE ]] || fail "ab is not ACTIVE after the abort"
ok "server migration show (running, MIGRATING) and abort (cancelled, ab still on compute2)"
os --os-compute-api-version 2.24 server migrate --live-migration ab
wait_sql 30 "SELECT status FROM migrations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'ab') ORDER BY id DESC LIMIT 1" running ||
  fail "ab's second migration is not running"
mfc=$(sql "SELECT id FROM migrations WHERE instance_uuid = (SELECT uuid FROM instances WHERE name = 'ab') ORDER BY id DESC LIMIT 1")
os --os-compute-api-version 2.22 server migration force complete ab "$mfc"
wait_sql 90 "SELECT status FROM migrations WHERE id = $mfc" completed || fail "force complete did not complete"
[[ $(on ab) != compute2 ]] || fail "force-completed: ab is still on compute2"
stop_guest ab
ok "server migration force complete (completed, ab moved)"

# ---- hypervisors and services ---------------------------------------------------------------------
os hypervisor list -f value -c 'Hypervisor Hostname' -c State >"$out"
[[ $(grep -c '^compute[123] up$' "$out") == 3 ]] || fail "hypervisor list: $(cat "$out")"
os hypervisor show compute1 -f value -c hypervisor_hostname >"$out"
grep -qx compute1 "$out" || fail "hypervisor show compute1: $(cat "$out")"
ok "hypervisor list / show"
cur=$(on vm1)
off=$(other "$cur")
os --os-compute-api-version 2.53 compute service set --disable --disable-reason "nova_clients test" "$off" nova-compute
os compute service list --service nova-compute -f value -c Host -c Status >"$out"
grep -qx "$off disabled" "$out" || fail "compute service list: $(cat "$out")"
os server migrate --live-migration --wait vm1 >"$out"
settled
dest=$(on vm1)
[[ $dest != "$off" && $dest != "$cur" ]] || fail "the migration went to $dest (disabled: $off)"
os --os-compute-api-version 2.53 compute service set --enable "$off" nova-compute
ok "compute service set --disable $off: the scheduler chose $dest; enabled again"

# ---- novaclient -----------------------------------------------------------------------------------
tb=$(other compute1 "$hb")
nova live-migration --block-migrate blk "$tb" >"$out"
wait_sql 60 "SELECT host || ' ' || coalesce(task_state, '-') FROM instances WHERE name = 'blk'" "$tb -" || fail "nova live-migration: blk not on $tb"
settled
[[ $(on blk) == "$tb" ]] || fail "nova live-migration: libvirt has blk on $(on blk)"
[[ $(sql "SELECT block_migration FROM migrations ORDER BY id DESC LIMIT 1") == yes ]] || fail "nova live-migration --block-migrate: not a block migration"
ok "nova live-migration --block-migrate blk $tb"
# evacuate a host blk is not on (its local disk exists only where it has been)
to=$(other "$tb")
running_guest "$to" vm2
n=$(sql "SELECT count(*) FROM instances WHERE host = '$to' AND vm_state = 'running'")
nova --os-compute-api-version 2.30 host-evacuate-live "$to" >"$out"
[[ $(grep -c "| True " "$out") == "$n" ]] || fail "host-evacuate-live: $n servers on $to: $(cat "$out")"
wait_sql 60 "SELECT count(*) FROM instances WHERE host = '$to' AND vm_state = 'running'" 0 || fail "host-evacuate-live: $to not empty"
settled
[[ $(on vm1) != "$to" && $(on vm2) != "$to" ]] || fail "host-evacuate-live: libvirt still runs a guest on $to"
ok "nova host-evacuate-live $to ($n servers moved off)"
check_usage
ok "all Nova client workflows passed"
