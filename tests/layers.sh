#!/bin/bash
# SPDX-License-Identifier: MIT
# lib/ is layered (lib/internal.h lists the layers): no file calls into a
# file that calls back into it, directly or around a circle. Read from the
# object files: each undefined symbol of one object is an edge to the
# object that defines it; tsort(1) finds any loop.
set -euo pipefail
builddir=${abs_top_builddir:-.}
command -v nm >/dev/null && command -v tsort >/dev/null || { echo "nm or tsort missing"; exit 77; }
srcdir=${srcdir:-$(dirname "$0")/..}
# Objects of sources that exist (a build tree may hold stale ones).
objs=()
while read -r o; do
	rel=${o#"$builddir"/}
	base=${rel%.o}
	base=${base/\/.libs\//\/}
	[ -f "$srcdir/$base.c" ] || [ -f "$srcdir/$base.S" ] && objs+=("$o")
done < <(find "$builddir/lib" -path '*/.libs/*.o' | sort)
[ ${#objs[@]} -gt 0 ] || { echo "lib/ not built"; exit 77; }

defs=$(for o in "${objs[@]}"; do
	nm --defined-only "$o" | awk -v f="${o#"$builddir"/}" '$2 ~ /^[TD]$/ && $3 ~ /^btmmu/ {print $3, f}'
done | sort)
edges=$(for o in "${objs[@]}"; do
	nm --undefined-only "$o" | awk -v f="${o#"$builddir"/}" '$2 ~ /^btmmu/ {print $2, f}'
done | sort | join - <(echo "$defs") | awk '$2 != $3 {print $3, $2}' | sort -u)

if ! out=$(tsort <<<"$edges" 2>&1 >/dev/null); then
	echo "lib/ has a circle of calls between files:"
	echo "$out"
	exit 1
fi
echo "layers: $(wc -l <<<"$edges") calls between $(echo "${#objs[@]}") files, no circle"
