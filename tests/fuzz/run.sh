#!/bin/sh
# SPDX-License-Identifier: MIT
# make fuzz [FUZZ_SECONDS=600] [FUZZ_THREADS=2]: the driver over every
# configuration in turn, a new seed per slice, for FUZZ_SECONDS; alongside,
# when clang's libFuzzer is there, the libFuzzer target for as long
# (tests/fuzz/libfuzzer.log). Divergences leave reproducers in
# tests/fuzz/ (tests/fuzz/fuzz --replay FILE --config NAME --trace).
#
# FUZZ_QUIRKS and FUZZ_ENOMEM_TOLERATE as in check.sh; FUZZ_SEED to start
# from a given seed (default: the time).
set -u
top=${abs_top_builddir:-.}
src=${srcdir:-.}
secs=${FUZZ_SECONDS:-600}
threads=${FUZZ_THREADS:-2}
quirks=${FUZZ_QUIRKS-sticky}
enomem_tol=${FUZZ_ENOMEM_TOLERATE-}
seed=${FUZZ_SEED:-$(date +%s)}
configs="default small hps16 mixed mixed-small nothread tiny hps14 hps13 enomem"
nconf=10
slice=$((secs / nconf))
[ $slice -lt 10 ] && slice=10

lf_pid=
# clang's libFuzzer, installed when missing (Debian 12: clang and
# libclang-rt-14-dev, through the project's apt helper); without it the
# driver runs alone.
if ! "$src/tests/fuzz/libfuzzer.sh" build >/dev/null 2>&1; then
	(
		APT_PROG=fuzz
		. "$src/scripts/apt.sh"
		apt_install_missing clang libclang-rt-14-dev >/dev/null
	) || echo "run.sh: could not install clang's libFuzzer (above)"
fi
if "$src/tests/fuzz/libfuzzer.sh" build >/dev/null 2>&1; then
	"$src/tests/fuzz/libfuzzer.sh" run "$secs" >"$top/tests/fuzz/libfuzzer.log" 2>&1 &
	lf_pid=$!
	echo "run.sh: libFuzzer running for $secs s (tests/fuzz/libfuzzer.log)"
else
	echo "run.sh: no libFuzzer build (clang with libclang-rt-14-dev needed): driver only"
fi

start=$(date +%s)
failed=0
i=0
while [ $(($(date +%s) - start)) -lt "$secs" ]; do
	left=$((secs - ($(date +%s) - start)))
	t=$slice
	[ $left -lt $t ] && t=$left
	set -- $configs
	shift $((i % nconf))
	config=$1
	tol=
	[ "$config" = enomem ] && tol=$enomem_tol
	"$top/tests/fuzz/fuzz" --config "$config" --threads "$threads" --seed $((seed + i)) \
		--seconds "$t" --quirks "$quirks" --tolerate "$tol" --out "$top/tests/fuzz" \
		>"$top/tests/fuzz/run.log" 2>&1
	rc=$?
	grep -v '^  #' "$top/tests/fuzz/run.log" | grep -v '^fuzz: fatal signal' | tail -n 40
	[ $rc -ne 0 ] && [ $rc -ne 77 ] && failed=$((failed + 1))
	i=$((i + 1))
done
if [ -n "$lf_pid" ]; then
	wait "$lf_pid"
	rc=$?
	grep -E '^(libfuzzer|stat::|#[0-9]+ +DONE|==[0-9]+==ERROR)' "$top/tests/fuzz/libfuzzer.log" | tail -n 12
	[ $rc -ne 0 ] && failed=$((failed + 1)) && echo "run.sh: libFuzzer found a crash (tests/fuzz/libfuzzer.log)"
fi
echo "run.sh: $i driver runs, $failed failed"
[ $failed -eq 0 ]
