#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Check the man pages against the library:
#  1. every exported function (the global: names of lib/libbtmmu.map) and
#     the header's inline btmmu_in_window have man/NAME.3;
#  2. every section 3 page names an exported function or a documented type
#     (no page left behind by a removed function);
#  3. every page renders with `man --warnings` without a warning.
# Usage: check-man.sh [SRCDIR]   (default: the directory above this script)
# Exits 0 on success, 1 on failure, 77 (skip) when man(1) or nroff is missing.
set -euo pipefail

srcdir=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
srcdir=$(cd "$srcdir" && pwd)
version_script=$srcdir/lib/libbtmmu.map
mandir=$srcdir/man

# Public names that are not in the version script.
inline_funcs=(btmmu_in_window)
# Section 3 pages that document a type rather than a function.
type_pages=(btmmu_fault_fn)

fail=0

if [ ! -f "$version_script" ]; then
	echo "check-man: $version_script not found" >&2
	exit 1
fi

# The names listed under global: in any node of the version script.
mapfile -t exported < <(sed -e 's|/\*.*\*/||g' -e 's|#.*||' "$version_script" | awk '
	/\/\*/ { incomment = 1 }
	incomment { if (/\*\//) incomment = 0; next }
	/global:/ { inglobal = 1; sub(/.*global:/, "") }
	/local:/ || /}/ { inglobal = 0 }
	inglobal {
		n = split($0, w, /[ \t;]+/)
		for (i = 1; i <= n; i++)
			if (w[i] ~ /^[A-Za-z_][A-Za-z0-9_]*$/)
				print w[i]
	}' | sort -u)

if [ "${#exported[@]}" -eq 0 ]; then
	echo "check-man: no global: names found in $version_script" >&2
	exit 1
fi
functions=("${exported[@]}" "${inline_funcs[@]}")
known=" ${functions[*]} ${type_pages[*]} "

# 1. A page per public function.
for name in "${functions[@]}"; do
	if [ ! -f "$mandir/$name.3" ]; then
		echo "check-man: missing man page man/$name.3" >&2
		fail=1
	fi
done

# 2. No section 3 page without a function or type behind it.
for page in "$mandir"/*.3; do
	[ -e "$page" ] || continue
	name=$(basename "$page" .3)
	case "$known" in
	*" $name "*) ;;
	*)
		echo "check-man: man/$name.3 documents no exported function" >&2
		fail=1
		;;
	esac
done

if [ "$fail" -ne 0 ]; then
	exit 1
fi

# 3. Every page renders without warnings.
if ! command -v man >/dev/null 2>&1 || ! command -v nroff >/dev/null 2>&1; then
	echo "check-man: man(1) or nroff not installed; skipping the render check" >&2
	exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# .so requests name man3/PAGE.3, resolved from the current directory.
for s in 1 3 5 7 8; do
	ln -s "$mandir" "$tmp/man$s"
done

npages=0
for page in "$mandir"/*.[1-9]; do
	[ -e "$page" ] || continue
	npages=$((npages + 1))
	if ! out=$(cd "$tmp" && MANWIDTH=80 LC_ALL=C.UTF-8 \
		   man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null); then
		echo "check-man: man failed on man/$(basename "$page")" >&2
		fail=1
	fi
	if [ -n "$out" ]; then
		echo "check-man: man/$(basename "$page"):" >&2
		printf '%s\n' "$out" >&2
		fail=1
	fi
done

if [ "$fail" -ne 0 ]; then
	exit 1
fi
echo "check-man: ${#functions[@]} functions documented," \
	"$npages pages render cleanly"
exit 0
