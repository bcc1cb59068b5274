#!/usr/bin/env bash
# `down` cleans up after an `up` that was killed half way (no trap ran), and after one
# interrupted with SIGINT (its trap ran).
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true

for sig in KILL INT; do
  setsid "$LAB" up --hosts 2 >/dev/null 2>&1 &
  pid=$!
  # wait until it is half way: the network and at least one host exist
  for _ in $(seq 1 100); do
    [[ -d $FERRY_LAB_DIR/hosts/compute1 ]] && ip netns list | grep -q "^$FERRY_LAB_NAME-compute" && break
    sleep 0.05
  done
  sleep 0.3
  kill -"$sig" -- -"$pid" 2>/dev/null || kill -"$sig" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  "$LAB" down
  sleep 0.5
  left=$(leftovers)
  [[ -z $left ]] || fail "after SIG$sig during up, down left behind: $left"
  ok "SIG$sig during up: down left nothing behind"
done
trap - EXIT
