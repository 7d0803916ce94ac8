#!/bin/sh
# SPDX-License-Identifier: MIT
# make check: the differential fuzzer (tests/fuzz/fuzz) on fixed seeds over
# the configurations: default capacity, entry and mapping pressure,
# simulated 8, 16 and 64 KiB host pages, no reclaim thread, the
# translator's own SIGSEGV handler (btmmu_fault_dispatch()), the host page
# and NO_THREAD picked at every reopen, 2 and 4 threads sharing one
# context, and vm.max_map_count used up by the test. A divergence prints
# the seed, the operation, what was expected and what was seen, and a
# shrunk reproducer (tests/fuzz/fuzz --replay FILE).
#
# Environment:
#   FUZZ_CHECK_OPS  operations per run (default 12000: about 30-50 s in all
#                   on two idle cores)
#   FUZZ_QUIRKS     rules the model mimics (README.md): default sticky, the
#                   one-frame record of btmmu_map(3); ramcache, protflag and
#                   livelock are the library bugs the fuzzer found (fixed),
#                   to replay an old library. Empty: the exact contract.
#   FUZZ_ENOMEM_TOLERATE  divergence kinds tolerated in the enomem run
#                   (default none: since lib 5945bbe a removed translation
#                   stays removed when the host refuses a split)
set -u
top=${abs_top_builddir:-.}
fuzz=$top/tests/fuzz/fuzz
[ -x "$fuzz" ] || { echo "check.sh: $fuzz is not built" >&2; exit 99; }
ops=${FUZZ_CHECK_OPS:-12000}
quirks=${FUZZ_QUIRKS-sticky}
enomem_tol=${FUZZ_ENOMEM_TOLERATE-}
out=$(mktemp -d "${TMPDIR:-/tmp}/btmmu-fuzz-check.XXXXXX") || exit 99
trap 'rm -rf "$out"' EXIT

failed=0
passed=0
skipped=0
# config threads seed
while read -r config threads seed; do
	tol=
	[ "$config" = enomem ] && tol=$enomem_tol
	"$fuzz" --config "$config" --threads "$threads" --seed "$seed" --ops "$ops" \
		--episode "$ops" --quirks "$quirks" --tolerate "$tol" --out "$out" \
		>"$out/log" 2>&1
	rc=$?
	# The summary, and on a divergence its report (not the trace's every op).
	grep -v '^  #' "$out/log" | grep -v '^fuzz: fatal signal' | tail -n 40
	case $rc in
	0) passed=$((passed + 1)) ;;
	77) skipped=$((skipped + 1)) ;;
	*)
		failed=$((failed + 1))
		for f in "$out"/fuzz-repro-*.bin; do
			[ -f "$f" ] && cp "$f" "$top/tests/fuzz/" &&
				echo "check.sh: reproducer kept: tests/fuzz/$(basename "$f")"
		done
		;;
	esac
done <<EOF
default 1 1
default 1 2
default 2 3
small 1 4
small 4 5
tiny 2 6
hps16 1 7
hps14 1 8
hps13 1 9
nothread 1 10
ownhandler 1 14
mixed 1 11
mixed-small 2 12
enomem 1 13
EOF
echo "check.sh: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -gt 0 ] && exit 1
[ "$passed" -eq 0 ] && exit 77
exit 0
