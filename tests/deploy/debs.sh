#!/usr/bin/env bash
# The Debian packages: `cpack -G DEB` in the build makes ferry-scheduler, ferry-agent and
# ferryctl; unpacked into a scratch root they lay out the binaries, the systemd units, the
# example configuration (which loads), the SQL migrations, the dashboard and the alert rules; each depends on
# the Debian libraries its binary links (dpkg-shlibdeps) and no other: libpq only for the
# scheduler, libvirt only for the agent; each carries the postinst and postrm. Then, as root,
# they are really installed on this machine with dpkg (the postinst makes /etc/ferry/ferry.conf
# for the scheduler's user `ferry`, who can load it; the installed units verify; dpkg --verify
# is clean) and purged again (nothing of ferry's left; the user is removed if we made it).
set -euo pipefail
bin=${FERRY_BIN_DIR:?run through ctest}
work=$(mktemp -d)
pkgs=(ferry-scheduler ferry-agent ferryctl)
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }
had_user=0
getent passwd ferry >/dev/null && had_user=1
we_installed=0
cleanup() {
  if ((we_installed)); then
    dpkg --purge "${pkgs[@]}" >/dev/null 2>&1 || true
    ((had_user)) || userdel ferry >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
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
  dpkg-deb -I "$deb" postrm >/dev/null || fail "$p has no postrm"
  dpkg-deb -f "$deb" Depends >"$work/$p.depends"
done
ok "cpack made ferry-scheduler, ferry-agent and ferryctl .debs, each with its postinst and postrm"

for f in usr/bin/ferry-scheduler usr/bin/ferry-agent usr/bin/ferryctl; do
  [[ -x $root/$f ]] || fail "$f missing or not executable"
done
for f in usr/lib/systemd/system/ferry-scheduler.service usr/lib/systemd/system/ferry-agent.service \
  usr/share/ferry/sql/001_initial.sql usr/share/ferry/dashboard/index.html usr/share/ferry/prometheus/ferry-rules.yml \
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
# (listed to a file first: grep -q closing the pipe early would make dpkg-deb fail under pipefail)
dpkg-deb -c "$(ls "$work/out/ferry-scheduler_"*_amd64.deb | head -n 1)" >"$work/scheduler.list"
grep -q '/usr/share/ferry/prometheus/ferry-rules.yml$' "$work/scheduler.list" ||
  fail "the alert rules are not in the ferry-scheduler package"
ok "layout: binaries, units, example configuration (loads), SQL, dashboard, alert rules (ferry-scheduler)"

grep -q 'libpq5' "$work/ferry-scheduler.depends" || fail "scheduler without libpq5: $(cat "$work/ferry-scheduler.depends")"
grep -q 'librabbitmq4' "$work/ferry-scheduler.depends" && grep -q 'libjson-c5' "$work/ferry-scheduler.depends" ||
  fail "scheduler depends: $(cat "$work/ferry-scheduler.depends")"
grep -q 'libvirt0' "$work/ferry-agent.depends" || fail "agent without libvirt0: $(cat "$work/ferry-agent.depends")"
! grep -q 'libpq5' "$work/ferry-agent.depends" || fail "the agent depends on libpq5"
! grep -q 'libpq5\|libvirt0' "$work/ferryctl.depends" || fail "ferryctl depends on libpq5 or libvirt0: $(cat "$work/ferryctl.depends")"
ok "dependencies from the linked libraries: scheduler $(tr -d '\n' <"$work/ferry-scheduler.depends" | cut -c1-80)..."
# ---- installed on this machine, then purged ------------------------------------------------------
[[ $(id -u) == 0 ]] || fail "installing the packages needs root"
for p in "${pkgs[@]}"; do
  ! installed "$p" || fail "$p is already installed on this machine; this test installs and purges ferry's packages: remove it first (dpkg --purge $p)"
done
debs=()
for p in "${pkgs[@]}"; do debs+=("$(ls "$work/out/${p}_"*_amd64.deb | head -n 1)"); done
we_installed=1
dpkg -i "${debs[@]}" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i"; }
for p in "${pkgs[@]}"; do installed "$p" || fail "$p is not installed after dpkg -i: $(dpkg-query -W -f='${Status}' "$p")"; done
[[ $(/usr/bin/ferryctl --version) == "$("$bin/ferryctl" --version)" ]] || fail "the installed ferryctl is not this build's"
getent passwd ferry >/dev/null || fail "the postinst made no user ferry"
[[ $(stat -c '%a %U %G' /etc/ferry/ferry.conf) == "640 root ferry" ]] || fail "/etc/ferry/ferry.conf: $(stat -c '%a %U %G' /etc/ferry/ferry.conf)"
runuser -u ferry -- /usr/bin/ferry-scheduler --check-config >"$work/check.out" 2>&1 ||
  fail "the scheduler's user cannot load /etc/ferry/ferry.conf: $(cat "$work/check.out")"
systemd-analyze verify /usr/lib/systemd/system/ferry-scheduler.service /usr/lib/systemd/system/ferry-agent.service \
  >"$work/verify.out" 2>&1 || fail "the installed units do not verify: $(cat "$work/verify.out")"
out=$(dpkg --verify "${pkgs[@]}" 2>&1) && [[ -z $out ]] || fail "dpkg --verify: $out"
ok "dpkg -i: installed on this machine; /etc/ferry/ferry.conf (640 root:ferry) loads as user ferry; units verify; dpkg --verify clean"

dpkg --purge "${pkgs[@]}" >"$work/dpkg-purge.log" 2>&1 || { cat "$work/dpkg-purge.log" >&2; fail "dpkg --purge"; }
we_installed=0
((had_user)) || userdel ferry >/dev/null 2>&1 || true
left=$(ls -d /usr/bin/ferry-scheduler /usr/bin/ferry-agent /usr/bin/ferryctl /etc/ferry /usr/share/ferry \
  /usr/lib/systemd/system/ferry-scheduler.service /usr/lib/systemd/system/ferry-agent.service 2>/dev/null || true)
[[ -z $left ]] || fail "dpkg --purge left: $left"
ok "dpkg --purge: nothing of ferry left"
echo "all checks passed"
