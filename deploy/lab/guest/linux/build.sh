#!/usr/bin/env bash
# Build the lab's Linux guest: build.sh OUTDIR
#   -> OUTDIR/vmlinuz and OUTDIR/initrd.gz (both paths printed, one a line)
#
# Where each piece comes from:
#   - the kernel: Debian 12's linux-image-<abi>-cloud-amd64 package, the one the
#     linux-image-cloud-amd64 metapackage currently depends on (per apt's package
#     lists), fetched with `apt-get download` into OUTDIR/debs and unpacked with
#     `dpkg-deb -x`. Nothing is installed on this machine.
#   - the kernel modules: from that same package, only those a virtio NIC and a
#     virtio disk need (WANT below, plus what their .modinfo `depends=` names; the
#     package ships no modules.dep, depmod makes that at install time).
#   - busybox: Debian 12's busybox-static package (same way). It is the guest's
#     shell and tools, and it also writes the initramfs here (`busybox cpio -o -H
#     newc`), so the host needs no cpio.
#   - /init, echo7 and dirty: this directory (init, echo7.c, dirty.c); the two C
#     programs are built with the system's gcc -static (glibc's libc.a, libc6-dev).
#
# Offline after the first fetch: the .debs stay in OUTDIR/debs. When apt's lists name
# a kernel that is not cached yet, it is downloaded; if that fails (no network), the
# newest cached one is used, with a warning. The outputs are rebuilt only when an
# input changes (the .debs used, init, echo7.c, dirty.c, this script): their
# checksums are kept in OUTDIR/linux-guest.inputs.
# Runs as root (the lab); as another user it works too once apt has its lists (it runs
# `apt-get update` only when apt has none).
set -euo pipefail

die() { echo "linux/build.sh: $*" >&2; exit 1; }

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
debs=$out/debs
mkdir -p "$debs"

# modules wanted in the guest (their dependencies are added below)
WANT=(virtio_net virtio_pci virtio_blk)

CC=${CC:-gcc}
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (this builds on Debian 12)"
command -v "$CC" >/dev/null || die "$CC is missing (apt-get install gcc libc6-dev)"
command -v gzip >/dev/null || die "gzip is missing"

# ---- which packages: name and version from apt's lists (local, no network) ----
have_lists() { # (output captured first: grep -q would SIGPIPE apt-cache, and pipefail)
  local p
  p=$(apt-cache policy linux-image-cloud-amd64 2>/dev/null) || return 1
  grep -q 'Candidate: [0-9]' <<<"$p"
}
kpkg="" kver="" bver=""
if command -v apt-cache >/dev/null; then
  if ! have_lists && ! compgen -G "$debs/linux-image-*-cloud-amd64_*.deb" >/dev/null; then
    echo "linux/build.sh: apt has no package lists; running apt-get update" >&2
    apt-get update -qq >&2 || true
  fi
  if have_lists; then
    # "Depends: linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)"
    dep=$(apt-cache show --no-all-versions linux-image-cloud-amd64 | sed -n 's/^Depends: *//p')
    dep=${dep%%$'\n'*}
    kpkg=$(sed -n 's/^\(linux-image-[^ ,]*-cloud-amd64\).*/\1/p' <<<"$dep")
    kver=$(sed -n 's/^[^(]*(= *\([^)]*\)).*/\1/p' <<<"$dep")
    bver=$(apt-cache policy busybox-static | sed -n 's/^ *Candidate: *//p')
    [ "$bver" = "(none)" ] && bver=""
  fi
fi

# deb_file NAME VERSION -> the cached .deb's path ('' if not cached); apt-get download
# names files NAME_VERSION_ARCH.deb with the epoch's ':' written as %3a
deb_file() {
  local f=$debs/${1}_${2//:/%3a}_amd64.deb
  if [ -f "$f" ]; then echo "$f"; fi
}
newest_cached() { # newest cached .deb matching a glob, by version
  local f best=""
  for f in "$debs"/$1; do
    [ -f "$f" ] || continue
    if [ -z "$best" ] || dpkg --compare-versions "$(dpkg-deb -f "$f" Version)" gt "$(dpkg-deb -f "$best" Version)"; then
      best=$f
    fi
  done
  echo "$best"
}
fetch() { # fetch NAME VERSION GLOB -> path of the .deb to use
  local f=""
  if [ -n "$2" ]; then
    f=$(deb_file "$1" "$2")
    if [ -z "$f" ]; then
      echo "linux/build.sh: downloading $1 $2 from Debian's archive" >&2
      # _apt cannot write to OUTDIR under /root or a 0700 dir: download as root
      (cd "$debs" && apt-get download -o APT::Sandbox::User=root "$1=$2" >&2) || true
      f=$(deb_file "$1" "$2")
      [ -n "$f" ] || echo "linux/build.sh: warning: could not download $1 $2" >&2
    fi
  fi
  if [ -z "$f" ]; then
    f=$(newest_cached "$3")
    [ -n "$f" ] && echo "linux/build.sh: warning: using the cached $(basename "$f")" >&2
  fi
  [ -n "$f" ] || die "no $1 package: ${2:+version $2 could not be downloaded}${2:-apt knows no version of it} and none is cached in $debs.
  The first build needs Debian 12 (bookworm) with its archive reachable (apt-get update)."
  echo "$f"
}
[ -n "$kpkg" ] || kpkg="linux-image-*-cloud-amd64"
kdeb=$(fetch "$kpkg" "$kver" 'linux-image-*-cloud-amd64_*.deb')
bdeb=$(fetch busybox-static "$bver" 'busybox-static_*.deb')

# ---- up to date? ----
inputs=$(cd "$src" && sha256sum init echo7.c dirty.c build.sh; sha256sum "$kdeb" "$bdeb" | sed "s|$debs/||")
if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.gz" ] && [ -f "$out/linux-guest.inputs" ] &&
   [ "$(cat "$out/linux-guest.inputs")" = "$inputs" ]; then
  echo "$out/vmlinuz"
  echo "$out/initrd.gz"
  exit 0
fi

tmp=$(mktemp -d "$out/.linux-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ---- unpack ----
dpkg-deb -x "$kdeb" "$tmp/k"
dpkg-deb -x "$bdeb" "$tmp/bb"
kv=$(cd "$tmp/k/lib/modules" && ls)
[ "$(wc -w <<<"$kv")" -eq 1 ] || die "$(basename "$kdeb"): expected one directory in lib/modules, got: $kv"
mods=$tmp/k/lib/modules/$kv
[ -f "$tmp/k/boot/vmlinuz-$kv" ] || die "$(basename "$kdeb") has no boot/vmlinuz-$kv"
bb=$tmp/bb/bin/busybox
[ -x "$bb" ] || die "$(basename "$bdeb") has no bin/busybox"

# ---- modules: WANT plus dependencies, dependencies first ----
declare -A path=() seen=()
while IFS= read -r f; do
  m=$(basename "$f" .ko)
  path[${m//-/_}]=$f
done < <(cd "$mods" && find kernel -name '*.ko')
order=()
add() { # depth-first: a module's dependencies before it
  local m=${1//-/_} d deps
  [ -n "${seen[$m]:-}" ] && return 0
  seen[$m]=1
  [ -n "${path[$m]:-}" ] || die "module $m is not in $(basename "$kdeb")"
  deps=$(tr '\0' '\n' <"$mods/${path[$m]}" | sed -n 's/^depends=//p')
  deps=${deps%%$'\n'*}
  for d in ${deps//,/ }; do add "$d"; done
  order+=("$m")
}
for m in "${WANT[@]}"; do add "$m"; done

# ---- the initramfs tree ----
root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,lib/modules}
cp "$bb" "$root/bin/busybox"
for a in $("$bb" --list); do
  [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
# the kernel's built-in initramfs has a /dev/console too; this one is for clarity (root only)
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
: >"$root/lib/modules/load.list"
for m in "${order[@]}"; do
  cp "$mods/${path[$m]}" "$root/lib/modules/$m.ko"
  echo "$m.ko" >>"$root/lib/modules/load.list"
done
install -m 755 "$src/init" "$root/init"
# echo7 and dirty go into one static binary, called by the name it is run as: a
# static glibc program is ~700 KB, most of it libc, so two would cost ~300 KB more
# gzipped. Each .c file still builds alone (gcc -static -o echo7 echo7.c).
CFLAGS=(-static -O2 -Wall -Wextra -Werror)
cc_fail() { die "could not build echo7 and dirty (needs gcc and libc6-dev, for a static link)"; }
"$CC" "${CFLAGS[@]}" -c -Dmain=echo7_main -o "$tmp/echo7.o" "$src/echo7.c" || cc_fail
"$CC" "${CFLAGS[@]}" -c -Dmain=dirty_main -o "$tmp/dirty.o" "$src/dirty.c" || cc_fail
"$CC" "${CFLAGS[@]}" -s -o "$root/bin/ferry-tools" -x c - -x none "$tmp/echo7.o" "$tmp/dirty.o" <<'C' || cc_fail
#include <string.h>
int echo7_main(void);
int dirty_main(int, char **);
int main(int argc, char **argv)
{
	const char *n = strrchr(argv[0], '/');
	n = n ? n + 1 : argv[0];
	if (!strcmp(n, "echo7"))
		return echo7_main();
	if (!strcmp(n, "dirty"))
		return dirty_main(argc, argv);
	return 2;
}
C
ln -s ferry-tools "$root/bin/echo7"
ln -s ferry-tools "$root/bin/dirty"
mkdir -p "$root/etc"
echo "$(basename "$kdeb") $(basename "$bdeb") modules: ${order[*]}" >"$root/etc/ferry-guest"

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$bb" cpio -o -H newc -R 0:0) |
  gzip -9 >"$tmp/initrd.gz"
[ -s "$tmp/initrd.gz" ] || die "empty initramfs"

cp "$tmp/k/boot/vmlinuz-$kv" "$tmp/vmlinuz"
mv -f "$tmp/vmlinuz" "$out/vmlinuz"
mv -f "$tmp/initrd.gz" "$out/initrd.gz"
echo "$inputs" >"$out/linux-guest.inputs"
# older cached versions are of no more use
for f in "$debs"/*.deb; do
  [ "$f" = "$kdeb" ] || [ "$f" = "$bdeb" ] || rm -f "$f"
done
echo "linux/build.sh: $kv, modules ${order[*]}; initrd $(stat -c %s "$out/initrd.gz") bytes" >&2
echo "$out/vmlinuz"
echo "$out/initrd.gz"
