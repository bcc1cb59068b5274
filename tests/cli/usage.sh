#!/usr/bin/env bash
# The three programs: --help and --version work, bad usage exits 2 with a clear message, and
# a bad configuration file is refused with an error naming the file, the line and the key.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # description, then a command that must succeed
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what" >&2; fails=$((fails + 1)); fi
}
out_has() { # expected-status pattern command...
  local want=$1 pattern=$2
  shift 2
  local out st=0
  out=$("$@" 2>&1) || st=$?
  if [[ $st -ne $want ]]; then echo "  exit $st, wanted $want: $*" >&2; echo "$out" >&2; return 1; fi
  if ! grep -qE -- "$pattern" <<<"$out"; then echo "  no /$pattern/ in output of: $*" >&2; echo "$out" >&2; return 1; fi
}

for p in ferry-scheduler ferry-agent ferryctl; do
  check "$p --help" out_has 0 '^Usage: '"$p" "$bin/$p" --help
  check "$p --version" out_has 0 "^$p [0-9]+\.[0-9]+\.[0-9]+" "$bin/$p" --version
  check "$p bad option" out_has 2 "Try '$p --help'" "$bin/$p" --no-such-option
done

# a config with an error on line 4: the message names file, line, section and key
cat >"$tmp/bad.conf" <<'CONF'
[amqp]
url = amqp://guest:guest@127.0.0.1:5672/
# a comment
heartbeat_s = 9999
CONF
for p in ferry-scheduler ferry-agent; do
  check "$p bad config names file:line and key" out_has 2 "$tmp/bad.conf:4: \[amqp\] heartbeat_s: value 9999 is out of range 0\.\.300" "$bin/$p" --config "$tmp/bad.conf"
done
check "ferryctl bad config" out_has 2 "$tmp/bad.conf:4: \[amqp\] heartbeat_s" "$bin/ferryctl" --config "$tmp/bad.conf" check
printf '[database]\ndsn = dbname=x\nnot_an_option = 1\n' >"$tmp/unknown.conf"
check "unknown key named" out_has 2 "$tmp/unknown.conf:3: \[database\] unknown key 'not_an_option'" "$bin/ferry-scheduler" --config "$tmp/unknown.conf" --check-config
check "missing explicit config file" out_has 2 "could not open config file $tmp/nope.conf" "$bin/ferry-scheduler" --config "$tmp/nope.conf"
check "bad FERRY_AMQP_URL" out_has 2 "FERRY_AMQP_URL" env FERRY_AMQP_URL=http://x "$bin/ferryctl" check

# --check-config prints the effective values without secrets
printf '[database]\ndsn = host=db password=secret\n[scheduler]\nlease_s = 45\n' >"$tmp/good.conf"
check "--check-config prints values" out_has 0 '^lease_s = 45$' "$bin/ferry-scheduler" --config "$tmp/good.conf" --check-config
if "$bin/ferry-scheduler" --config "$tmp/good.conf" --check-config | grep -q secret; then
  echo "FAIL: --check-config printed a secret" >&2; fails=$((fails + 1))
else echo "ok: --check-config hides secrets"; fi
# the example configuration loads back once uncommented
"$bin/ferry-scheduler" --print-example-config | sed 's/^# \([a-z_]* = \)/\1/' >"$tmp/example.conf"
check "example config loads" out_has 0 '^\[amqp\]$' "$bin/ferry-scheduler" --config "$tmp/example.conf" --check-config

# ferryctl usage
check "ferryctl without command" out_has 2 '^Usage: ferryctl' "$bin/ferryctl"
check "ferryctl unknown command" out_has 2 "unknown command 'frobnicate'" "$bin/ferryctl" frobnicate
check "ferryctl help ping" out_has 0 'ping HOST' "$bin/ferryctl" help ping
check "ferryctl ping --help" out_has 0 'ping HOST' "$bin/ferryctl" ping --help
check "ferryctl ping without host" out_has 2 'ping needs exactly one HOST' "$bin/ferryctl" ping
check "ferryctl bad output" out_has 2 'text or json' "$bin/ferryctl" -o yaml check
check "ferryctl bad timeout" out_has 2 'number of milliseconds' "$bin/ferryctl" --timeout soon check
# every verb has --help, and bad arguments exit 2 before any connection is tried
for v in "host list" "host show" "host disable" "host enable" "host group" "host drain" "host evacuate" "drain list" "drain show" \
  "drain cancel" "instance list" migrate \
  "instances live_migration" "migration list" "migration show" "migration events" "migration abort" \
  "migration force-complete" "policy list" "policy show" "policy set" "policy delete" check ping rpc; do
  # shellcheck disable=SC2086
  check "ferryctl $v --help" out_has 0 "^Usage: ferryctl \[OPTION\]\.\.\. $v" "$bin/ferryctl" $v --help
done
check "ferryctl help host show" out_has 0 'the seed' "$bin/ferryctl" help host show
check "ferryctl host without a verb" out_has 2 "'host' needs one of: list show disable enable group drain evacuate" "$bin/ferryctl" host
check "ferryctl host show without host" out_has 2 'host show needs exactly one HOST' "$bin/ferryctl" host show
check "ferryctl migrate without instance" out_has 2 'migrate needs INSTANCE \[DEST\]' "$bin/ferryctl" migrate
check "ferryctl seed spelling needs DEST" out_has 2 'instances live_migration needs INSTANCE and DEST' "$bin/ferryctl" instances live_migration i-1
check "ferryctl migrate bad bandwidth" out_has 2 'migrate: --bandwidth must be a number in 0\.\.100000' "$bin/ferryctl" migrate vm1 --bandwidth -3
check "ferryctl migrate unknown option" out_has 2 "migrate: unknown option '--fast'" "$bin/ferryctl" migrate vm1 --fast
check "ferryctl migrate bad completion action" out_has 2 "migrate: --completion-action takes abort, postcopy or pause, not 'stop'" "$bin/ferryctl" migrate vm1 --completion-action stop
check "ferryctl policy set bad completion action" out_has 2 "policy set: --completion-action takes abort, postcopy or pause, not 'x'" "$bin/ferryctl" policy set p1 --completion-action x
check "ferryctl host group needs a group or --none" out_has 2 'host group needs HOST and either GROUP or --none' "$bin/ferryctl" host group compute1
check "ferryctl host group not both" out_has 2 'host group needs HOST and either GROUP or --none' "$bin/ferryctl" host group compute1 rack1 --none
check "ferryctl migration show bad id" out_has 2 "'x' is not a migration id" "$bin/ferryctl" migration show x
check "ferryctl host drain bad deadline" out_has 2 "host drain: --deadline takes a duration .* not '5x'" "$bin/ferryctl" host drain compute1 --deadline 5x
check "ferryctl host drain bad budget" out_has 2 'host drain: --bandwidth-budget must be a number in 1\.\.100000' "$bin/ferryctl" host drain compute1 --bandwidth-budget 0
check "ferryctl drain show bad id" out_has 2 "drain show: a drain ID is a positive integer, not 'abc'" "$bin/ferryctl" drain show abc
check "ferryctl migration list bad status" out_has 2 '--status must be one of' "$bin/ferryctl" migration list --status done
# no broker listening: a clear error, not a hang
check "ferryctl unreachable broker" out_has 1 'could not connect to the broker within 700 ms' env FERRY_AMQP_URL=amqp://guest:guest@127.0.0.1:9 "$bin/ferryctl" --timeout 700 check

if [[ $fails -gt 0 ]]; then echo "$fails check(s) failed" >&2; exit 1; fi
echo "all checks passed"
