#!/usr/bin/env bash
# Build the lab guest kernel: build.sh OUTDIR -> OUTDIR/ferry-guest.elf (path printed).
# Does nothing when the ELF is newer than every source. Needs gcc with -m32
# (gcc-multilib) and binutils.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)/ferry-guest.elf
sources=("$src/boot.S" "$src/kernel.c" "$src/linker.ld" "$src/build.sh")

if [ -f "$out" ]; then
  stale=0
  for f in "${sources[@]}"; do
    [ "$f" -nt "$out" ] && { stale=1; break; }
  done
  if [ "$stale" -eq 0 ]; then
    echo "$out"
    exit 0
  fi
fi

CC=${CC:-gcc}
LD=${LD:-ld}
CFLAGS=(-m32 -march=i686 -ffreestanding -fno-pic -fno-pie -fno-stack-protector -nostdlib -O2
        -mgeneral-regs-only -mpreferred-stack-boundary=2 -fno-asynchronous-unwind-tables
        -fno-unwind-tables -fcf-protection=none -fno-tree-loop-distribute-patterns
        -Wall -Wextra -Werror)

tmp=$(mktemp -d "$(dirname "$out")/.ferry-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"$CC" "${CFLAGS[@]}" -c "$src/boot.S" -o "$tmp/boot.o"
"$CC" "${CFLAGS[@]}" -c "$src/kernel.c" -o "$tmp/kernel.o"
"$LD" -m elf_i386 -n -s --no-warn-rwx-segments -z noexecstack -T "$src/linker.ld" \
  -o "$tmp/ferry-guest.elf" "$tmp/boot.o" "$tmp/kernel.o"

# A multiboot loader looks for the header in the first 8 KiB, 4-byte aligned.
# (od's output is captured first: grep -q would end the pipe early, and pipefail
# would turn od's SIGPIPE into a failure.)
words=$(od -An -v -tx4 -w4 -N8192 "$tmp/ferry-guest.elf")
if ! grep -qx ' 1badb002' <<<"$words"; then
  echo "build.sh: no multiboot header in the first 8 KiB of ferry-guest.elf" >&2
  exit 1
fi

mv -f "$tmp/ferry-guest.elf" "$out"
echo "$out"
