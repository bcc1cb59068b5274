#!/usr/bin/env bash
# The Debian packages: `cpack -G DEB` in the build makes ferry-scheduler, ferry-agent and
# ferryctl; unpacked into a scratch root they lay out the binaries, the systemd units, the
# example configuration (which loads), the SQL migrations and the dashboard; each depends on
# the Debian libraries its binary links (dpkg-shlibdeps) and no other: libpq only for the
# scheduler, libvirt only for the agent; each carries the postinst.
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

(cd "$bin" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log" >&2; fail "cpack"; }
root=$work/root
for p in ferry-scheduler ferry-agent ferryctl; do
  deb=$(ls "$work/out/${p}_"*_amd64.deb 2>/dev/null | head -n 1)
  [[ -n $deb ]] || fail "no $p package: $(ls "$work/out")"
  dpkg-deb -x "$deb" "$root"
  dpkg-deb -I "$deb" >"$work/$p.info"
  grep -q "^ Package: $p$" "$work/$p.info" || fail "$p: wrong package name"
  dpkg-deb -I "$deb" postinst >/dev/null || fail "$p has no postinst"
  dpkg-deb -f "$deb" Depends >"$work/$p.depends"
done
ok "cpack made ferry-scheduler, ferry-agent and ferryctl .debs, each with its postinst"

for f in usr/bin/ferry-scheduler usr/bin/ferry-agent usr/bin/ferryctl; do
  [[ -x $root/$f ]] || fail "$f missing or not executable"
done
for f in usr/lib/systemd/system/ferry-scheduler.service usr/lib/systemd/system/ferry-agent.service \
  usr/share/ferry/sql/001_initial.sql usr/share/ferry/dashboard/index.html \
  etc/ferry/ferry.conf.example-ferry-scheduler etc/ferry/ferry.conf.example-ferry-agent etc/ferry/ferry.conf.example-ferryctl; do
  [[ -s $root/$f ]] || fail "$f missing"
done
[[ $(ls "$root/usr/share/ferry/sql" | wc -l) -ge 4 ]] || fail "SQL migrations missing: $(ls "$root/usr/share/ferry/sql")"
"$root/usr/bin/ferryctl" --version | grep -q '^ferryctl [0-9]' || fail "the packaged ferryctl does not run"
"$root/usr/bin/ferry-scheduler" --config "$root/etc/ferry/ferry.conf.example-ferry-scheduler" --check-config >/dev/null ||
  fail "the packaged example configuration does not load"
# the example, uncommented, is a complete configuration that loads too
sed 's/^# \([a-z_]* = \)/\1/' "$root/etc/ferry/ferry.conf.example-ferry-agent" >"$work/full.conf"
"$root/usr/bin/ferry-agent" --config "$work/full.conf" --help >/dev/null || fail "ferry-agent --help"
"$root/usr/bin/ferry-scheduler" --config "$work/full.conf" --check-config | grep -q '^\[scheduler\]$' || fail "uncommented example"
ok "layout: binaries, units, example configuration (loads), SQL, dashboard"

grep -q 'libpq5' "$work/ferry-scheduler.depends" || fail "scheduler without libpq5: $(cat "$work/ferry-scheduler.depends")"
grep -q 'librabbitmq4' "$work/ferry-scheduler.depends" && grep -q 'libjson-c5' "$work/ferry-scheduler.depends" ||
  fail "scheduler depends: $(cat "$work/ferry-scheduler.depends")"
grep -q 'libvirt0' "$work/ferry-agent.depends" || fail "agent without libvirt0: $(cat "$work/ferry-agent.depends")"
! grep -q 'libpq5' "$work/ferry-agent.depends" || fail "the agent depends on libpq5"
! grep -q 'libpq5\|libvirt0' "$work/ferryctl.depends" || fail "ferryctl depends on libpq5 or libvirt0: $(cat "$work/ferryctl.depends")"
ok "dependencies from the linked libraries: scheduler $(tr -d '\n' <"$work/ferry-scheduler.depends" | cut -c1-80)..."
echo "all checks passed"
