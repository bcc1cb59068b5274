#!/usr/bin/env bash
# deploy/prometheus/ferry-rules.yml (issue #17): valid for Prometheus (`promtool check rules`),
# each alert firing on the series it is about and not before its `for` (`promtool test rules`
# with deploy/prometheus/ferry-rules.test.yml), and every metric it reads one ferry-scheduler
# really exports (named in scheduler/http_routes.c, where /metrics is written).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
command -v promtool >/dev/null || fail "promtool not found (deploy/install-deps installs Debian's prometheus package)"
rules=$top/deploy/prometheus/ferry-rules.yml
promtool check rules "$rules" || fail "promtool check rules"
(cd "$top/deploy/prometheus" && promtool test rules ferry-rules.test.yml) || fail "promtool test rules"
ok "promtool check rules and test rules"
names=$(grep -E '^\s+expr:' "$rules" | grep -oE 'ferry_[a-z_]+' | sort -u)
[[ -n $names ]] || fail "no ferry metric in the rules"
for n in $names; do
  base=${n%_total}
  grep -q "\"# HELP $base \|$n[ {\\\\]" "$top/scheduler/http_routes.c" || fail "the rules read $n, which /metrics does not export"
done
ok "every metric the rules read is exported: $(echo $names)"
for a in FerryMigrationStuck FerryInstanceUnreconcilable FerryHostHeartbeatLost FerryDeadLettersGrowing; do
  grep -q "alert: $a$" "$rules" || fail "alert $a missing"
done
ok "the alerts: stuck migration, unreconcilable instance, heartbeat lost, dead letters growing"
