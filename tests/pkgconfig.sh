#!/bin/bash
# SPDX-License-Identifier: MIT
# A program outside the tree builds against the installed library through
# pkg-config and runs: install into a scratch DESTDIR, compile
# examples/minimal.c with `pkg-config --cflags --libs libbtmmu`, run it.
set -euo pipefail
srcdir=${srcdir:-$(dirname "$0")/..}
builddir=${abs_top_builddir:?}
command -v pkg-config >/dev/null || { echo "pkg-config not found"; exit 77; }

dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
${MAKE:-make} -s -C "$builddir" install DESTDIR="$dest" >/dev/null
pc=$(find "$dest" -name libbtmmu.pc -print -quit)
[ -n "$pc" ] || { echo "libbtmmu.pc was not installed"; exit 1; }
[ -f "$(dirname "$pc")/../../include/btmmu/btmmu.h" ] || { echo "headers not installed"; exit 1; }

PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR=$dest
version=$(pkg-config --modversion libbtmmu)
libdir=$(cd "$(dirname "$pc")/.." && pwd)
# The build's own CFLAGS/LDFLAGS, so a sanitizer build's consumer matches.
# shellcheck disable=SC2046,SC2086
${CC:-cc} ${CFLAGS:-} $(pkg-config --cflags libbtmmu) "$srcdir/examples/minimal.c" \
	-o "$dest/minimal" ${LDFLAGS:-} $(pkg-config --libs libbtmmu)
LD_LIBRARY_PATH=$libdir "$dest/minimal" | tee "$dest/out"
grep -q "hello from guest RAM" "$dest/out"
# The whole output first, then the match: under pipefail, `ldd | grep -q`
# fails when grep exits at the first match and ldd then gets SIGPIPE.
deps=$(LD_LIBRARY_PATH=$libdir ldd "$dest/minimal") || { echo "ldd $dest/minimal failed"; exit 1; }
case $deps in
*"$libdir/libbtmmu.so.0"*) ;;
*)
	printf '%s\n' "$deps"
	echo "minimal did not link against the installed libbtmmu.so.0"
	exit 1
	;;
esac
echo "pkg-config: libbtmmu $version builds and runs from $libdir"
