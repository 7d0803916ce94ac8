#!/bin/bash
# SPDX-License-Identifier: MIT
# The library exports exactly the functions of its version script, and every
# function the public header declares is exported.
set -euo pipefail
srcdir=${srcdir:-$(dirname "$0")/..}
lib=${BTMMU_LIB:-lib/.libs/libbtmmu.so}
map=$srcdir/lib/libbtmmu.map
header=$srcdir/include/btmmu/btmmu.h

command -v nm >/dev/null || { echo "nm not found"; exit 77; }
[ -f "$lib" ] || { echo "$lib not built (static-only build?)"; exit 77; }

want=$(grep -oE '^[[:space:]]*btmmu_[a-z0-9_]+;' "$map" | tr -d ' \t;' | sort)
have=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TWi]$/ {sub(/@.*/, "", $3); print $3}' |
	grep -v '^LIBBTMMU' | sort)
declared=$(grep -v '^static' "$header" | grep -oE '^[a-z_ ]*[ *]btmmu_[a-z0-9_]+\(' |
	grep -oE 'btmmu_[a-z0-9_]+' | sort -u)

fail=0
if [ "$want" != "$have" ]; then
	echo "exported symbols differ from $map:"
	diff <(echo "$want") <(echo "$have") || true
	fail=1
fi
missing=$(comm -23 <(echo "$declared") <(echo "$have"))
if [ -n "$missing" ]; then
	echo "declared in btmmu.h but not exported: $missing"
	fail=1
fi
# Each symbol carries the version of the map node that lists it.
dyn=$(nm -D --defined-only "$lib")
node=
while read -r line; do
	case $line in
	LIBBTMMU_*\{*) node=${line%% *} ;;
	btmmu_*\;)
		sym=${line%;}
		if ! grep -q " $sym@@$node\$" <<<"$dyn"; then
			echo "$sym does not carry the version $node"
			fail=1
		fi ;;
	esac
done < <(sed 's/^[[:space:]]*//' "$map")
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
if [ "$soname" != libbtmmu.so.0 ]; then
	echo "SONAME is '$soname', want libbtmmu.so.0"
	fail=1
fi
[ $fail -eq 0 ] && echo "symbols: $(echo "$have" | wc -l) exported, all in $map, SONAME $soname"
exit $fail
