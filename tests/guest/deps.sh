#!/bin/sh
# Install what the btmmu test guest needs on Debian 12, and only what is
# missing.  Idempotent.  Needs root (or sudo) when something is missing.
#
#   build: gcc (with working -m32 for freestanding code), binutils, make
#   run:   qemu-system-x86 (qemu-system-i386 / qemu-system-x86_64)
#
# Freestanding -m32 code needs only gcc's own headers (stdint.h, stdarg.h),
# so gcc-multilib is installed only if "gcc -m32 -ffreestanding" fails.
#
# Usage: tests/guest/deps.sh [--no-qemu]
#
# apt-get runs through scripts/apt.sh (retries; goes on with the package
# lists there are when apt-get update keeps failing).
set -eu
# shellcheck source=SCRIPTDIR/../../scripts/apt.sh
. "$(dirname "$0")/../../scripts/apt.sh"

want=""
need_cmd() { command -v "$1" >/dev/null 2>&1 || want="$want $2"; }

need_cmd gcc gcc
need_cmd ld binutils
need_cmd objcopy binutils
need_cmd make make
if [ "${1:-}" != "--no-qemu" ]; then
    need_cmd qemu-system-i386 qemu-system-x86
    need_cmd qemu-system-x86_64 qemu-system-x86
fi

if command -v gcc >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    printf '#include <stdint.h>\n#include <stdarg.h>\nuint64_t f(uint64_t a){return a<<3;}\n' > "$tmp/t.c"
    if ! gcc -m32 -ffreestanding -fno-pic -c "$tmp/t.c" -o "$tmp/t.o" >/dev/null 2>&1; then
        want="$want gcc-multilib"
    fi
    rm -rf "$tmp"
fi

# de-duplicate
pkgs=$(printf '%s\n' $want | sort -u | tr '\n' ' ')
pkgs=$(echo $pkgs)
if [ -z "$pkgs" ]; then
    echo "deps.sh: all dependencies present"
    exit 0
fi

echo "deps.sh: needed: $pkgs"
# shellcheck disable=SC2086 # package names split on blanks
apt_install_missing $pkgs || exit 1
