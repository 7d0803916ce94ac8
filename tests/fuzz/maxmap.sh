#!/bin/sh
# SPDX-License-Identifier: MIT
# Root only: lower vm.max_map_count for two short fuzzer runs (config
# lowmap: a mapping budget far above the limit, which the test nearly uses
# up, so that the library's own mmap() and mprotect() calls fail with
# ENOMEM; lowmap-auto: the budget the library derives from the lowered
# limit), and always restore it. SKIP (77)
# when not root, when /proc/sys/vm/max_map_count is not writable, or when
# another process holds so many mappings that lowering the limit enough
# could break it (the setting is system-wide).
#
# Environment: FUZZ_MAXMAP_SECONDS (default 5 per run), FUZZ_QUIRKS as in
# check.sh, FUZZ_MAXMAP_TOLERATE (kinds tolerated, default none).
set -u
top=${abs_top_builddir:-.}
fuzz=$top/tests/fuzz/fuzz
f=/proc/sys/vm/max_map_count
[ -x "$fuzz" ] || { echo "maxmap.sh: $fuzz is not built" >&2; exit 99; }
[ "$(id -u)" = 0 ] || { echo "maxmap.sh: SKIP: not root"; exit 77; }
[ -r $f ] && [ -w $f ] || { echo "maxmap.sh: SKIP: $f not writable"; exit 77; }
# One run at a time (the setting is system-wide), and a run killed before it
# could restore the limit (SIGKILL, a lost machine session) left the value
# it found in $saved: the next run puts it back first.
saved=/run/btmmu-maxmap.saved
[ -d /run ] && [ -w /run ] || saved=${TMPDIR:-/tmp}/btmmu-maxmap.saved
if command -v flock >/dev/null 2>&1; then
	exec 9>"$saved.lock" && flock -w 600 9 ||
		{ echo "maxmap.sh: SKIP: another run holds $saved.lock"; exit 77; }
fi
if [ -s "$saved" ]; then
	v=$(cat "$saved")
	echo "maxmap.sh: an earlier run was killed with vm.max_map_count lowered: restoring $v"
	echo "$v" >$f || exit 99
	rm -f "$saved"
fi
old=$(cat $f) || exit 77

# The most mappings any process holds now: the limit stays well above it.
most=0
for m in /proc/[0-9]*/maps; do
	n=$( (wc -l <"$m") 2>/dev/null) || continue
	[ "${n:-0}" -gt "$most" ] && most=$n
done
limit=$((most + 2048))
[ $limit -lt 4096 ] && limit=4096
if [ $limit -ge "$old" ] || [ $limit -gt 16384 ]; then
	echo "maxmap.sh: SKIP: a process holds $most mappings (limit $old)"
	exit 77
fi

restore() {
	echo "$old" >$f && rm -f "$saved"
}
trap restore EXIT
trap 'restore; exit 1' INT TERM HUP
echo "$old" >"$saved" || exit 99
if ! echo $limit >$f 2>/dev/null; then
	rm -f "$saved"
	echo "maxmap.sh: SKIP: cannot write $f"
	trap - EXIT
	exit 77
fi
echo "maxmap.sh: vm.max_map_count $old -> $limit for the run"
out=$(mktemp -d "${TMPDIR:-/tmp}/btmmu-maxmap.XXXXXX") || exit 99
log=$out/log
rc=0
# A budget far above the limit, the limit nearly used up; then the budget
# the library derives from the lowered limit.
for config in lowmap lowmap-auto; do
	"$fuzz" --config $config --seed "${FUZZ_SEED:-21}" \
		--seconds "${FUZZ_MAXMAP_SECONDS:-5}" \
		--quirks "${FUZZ_QUIRKS-sticky}" \
		--tolerate "${FUZZ_MAXMAP_TOLERATE-}" --no-shrink --out "$out" >"$log" 2>&1
	r=$?
	[ $r -ne 0 ] && rc=$r
	for rf in "$out"/fuzz-repro-*.bin; do
		[ -f "$rf" ] && mv "$rf" "$top/tests/fuzz/" &&
			echo "maxmap.sh: reproducer kept: tests/fuzz/$(basename "$rf")"
	done
	grep -v '^  #' "$log" | grep -v '^fuzz: fatal signal' | tail -n 40
done
restore
rm -rf "$out"
echo "maxmap.sh: vm.max_map_count restored to $(cat $f)"
exit $rc
