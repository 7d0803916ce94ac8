#!/usr/bin/env bash
# Benchmark: QEMU system-mode TCG with btmmu off (A) and on (B) on the Linux
# guest workloads of tests/linux-guest, against QEMU user mode (qemu-i386) as
# the limit of direct memory access. Runs A, B and user mode alternately
# (A B U A B U ...) over N rounds, one workload per boot, and takes the times
# the guest measures itself; also the boot-to-/init time of A and B.
#
# usage: bench/qemu/run.sh [--qemu BINARY] [--rounds N] [--boot-rounds N]
#                          [--workloads all|NAME[,NAME..]] [--smp N]
#                          [--size full|quick] [--user-qemu BINARY|none]
#                          [--same] [--out DIR] [--no-build]
#
# Configuration (environment):
#   BENCH_QEMU       system emulator; default adapters/qemu/build/qemu-system-i386
#                    when it exists, else qemu-system-i386 from PATH
#   BENCH_USER_QEMU  user-mode emulator; default adapters/qemu/build/qemu-i386
#                    when it exists, else qemu-i386 from PATH (Debian qemu-user)
#   BENCH_MEM_ARGS   memory backend args, used by A and B alike; default
#                    "-object memory-backend-memfd,id=btmmu-ram,size=512M,share=on
#                     -machine memory-backend=btmmu-ram"
#   BENCH_A_QEMU     system emulator for A only (default: BENCH_QEMU): an
#                    older build as A, with BENCH_A_ACCEL=tcg,btmmu=on, gives
#                    before/after ratios of the adapter in one run
#   BENCH_A_ACCEL    accel option of A (default "tcg")
#   BENCH_B_ACCEL    accel option of B (default "tcg,btmmu=on")
#   BENCH_A_EXTRA, BENCH_B_EXTRA   further QEMU args (split on blanks)
#   --same sets B = A (BENCH_B_ACCEL=$BENCH_A_ACCEL, BENCH_B_EXTRA=$BENCH_A_EXTRA)
#   to test the pipeline with a QEMU that has no btmmu.
#
# Output: a table on stdout; DIR/results.json, DIR/table.txt, DIR/speedup.png,
# DIR/samples.tsv and the guest logs. DIR defaults to
# bench/qemu/.cache/results/<UTC time> (bench/qemu/.cache/results/latest links it).
# Exit status: 0 all runs passed with consistent checksums, 1 otherwise,
# 77 QEMU binary missing, 2 usage error.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LG=$ROOT/tests/linux-guest
# shellcheck source=SCRIPTDIR/../../tests/linux-guest/lib.sh
. "$LG/lib.sh"

usage() {
    sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

pick() { # pick PREFERRED_PATH FALLBACK_NAME
    if [[ -x $1 ]]; then printf '%s' "$1"; else printf '%s' "$2"; fi
}
QEMU=${BENCH_QEMU:-$(pick "$ROOT/adapters/qemu/build/qemu-system-i386" qemu-system-i386)}
USER_QEMU=${BENCH_USER_QEMU:-$(pick "$ROOT/adapters/qemu/build/qemu-i386" qemu-i386)}
ROUNDS=3 BOOT_ROUNDS="" WORKLOADS=all SMP=1 SIZE=full OUT="" BUILD=1 SAME=0
while (($#)); do
    case $1 in
    --qemu) QEMU=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --boot-rounds) BOOT_ROUNDS=${2:?}; shift 2 ;;
    --workloads | --workload) WORKLOADS=${2:?}; shift 2 ;;
    --smp) SMP=${2:?}; shift 2 ;;
    --size) SIZE=${2:?}; shift 2 ;;
    --user-qemu) USER_QEMU=${2:?}; shift 2 ;;
    --same) SAME=1; shift ;;
    --out) OUT=${2:?}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) usage 0 ;;
    *) lg_log "unknown argument: $1"; usage ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || usage
BOOT_ROUNDS=${BOOT_ROUNDS:-$ROUNDS}
[[ $BOOT_ROUNDS =~ ^[0-9]+$ ]] || usage

MEM_ARGS=${BENCH_MEM_ARGS-"-object memory-backend-memfd,id=btmmu-ram,size=512M,share=on -machine memory-backend=btmmu-ram"}
A_QEMU=${BENCH_A_QEMU:-$QEMU}
A_ACCEL=${BENCH_A_ACCEL:-tcg}
B_ACCEL=${BENCH_B_ACCEL:-tcg,btmmu=on}
A_EXTRA=${BENCH_A_EXTRA:-}
B_EXTRA=${BENCH_B_EXTRA:-}
if ((SAME)); then B_ACCEL=$A_ACCEL B_EXTRA=$A_EXTRA; fi
read -r -a MEM <<<"$MEM_ARGS"
read -r -a AX <<<"$A_EXTRA"
read -r -a BX <<<"$B_EXTRA"
A_ARGS=(-accel "$A_ACCEL" ${MEM[@]+"${MEM[@]}"} ${AX[@]+"${AX[@]}"})
B_ARGS=(-accel "$B_ACCEL" ${MEM[@]+"${MEM[@]}"} ${BX[@]+"${BX[@]}"})

have() { if [[ $1 == */* ]]; then [[ -x $1 ]]; else command -v "$1" >/dev/null; fi; }
have "$QEMU" || { lg_log "QEMU binary not found: $QEMU (skip)"; exit 77; }
QEMU=$(command -v "$QEMU")
have "$A_QEMU" || { lg_log "QEMU binary for A not found: $A_QEMU (skip)"; exit 77; }
A_QEMU=$(command -v "$A_QEMU")
if [[ $USER_QEMU != none ]]; then
    if have "$USER_QEMU"; then USER_QEMU=$(command -v "$USER_QEMU"); else
        lg_log "warning: user-mode emulator $USER_QEMU not found: no user-mode limit"
        USER_QEMU=none
    fi
fi
if [[ $WORKLOADS == all ]]; then wl=("${LG_WORKLOADS[@]}"); else IFS=, read -r -a wl <<<"$WORKLOADS"; fi

if ((BUILD)); then "$LG/build.sh"; fi

if [[ -z $OUT ]]; then
    OUT=$HERE/.cache/results/$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$OUT"
    ln -sfn "${OUT##*/}" "$HERE/.cache/results/latest"
fi
mkdir -p "$OUT/logs"
SAMPLES=$OUT/samples.tsv
printf 'kind\tconfig\tround\tworkload\tseconds\tchecksum\n' >"$SAMPLES"
failures=0

# First lines with `sed -n 1p`, which reads its whole input: `| head`
# exits early and under pipefail the writer's SIGPIPE fails the pipeline.
{
    printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'qemu\t%s\n' "$QEMU"
    printf 'qemu_a\t%s\n' "$A_QEMU"
    printf 'qemu_version\t%s\n' "$("$QEMU" --version | sed -n 1p)"
    printf 'user_qemu\t%s\n' "$USER_QEMU"
    if [[ $USER_QEMU != none ]]; then printf 'user_qemu_version\t%s\n' "$("$USER_QEMU" --version | sed -n 1p)"; fi
    printf 'a_args\t%s\n' "${A_ARGS[*]}"
    printf 'b_args\t%s\n' "${B_ARGS[*]}"
    printf 'smp\t%s\n' "$SMP"
    printf 'size\t%s\n' "$SIZE"
    printf 'rounds\t%s\n' "$ROUNDS"
    printf 'kernel\t%s\n' "$(cat "$LG_BUILD/kernel-abi")"
    printf 'host_cpus\t%s\n' "$(nproc)"
    printf 'host_cpu\t%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)"
    printf 'loadavg_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.tsv"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN{exit !(l > 0.5)}'; then
    lg_log "warning: host load average is $load: other work will add noise to the timings"
fi
lg_log "A: $A_QEMU ${A_ARGS[*]}"
lg_log "B: $QEMU ${B_ARGS[*]}"
lg_log "results in $OUT"

system_run() { # system_run CONFIG ROUND WORKLOAD(or boot)
    local cfg=$1 r=$2 w=$3 args sum rc=0 base qemu=$QEMU
    if [[ $cfg == A ]]; then args=("${A_ARGS[@]}") qemu=$A_QEMU; else args=("${B_ARGS[@]}"); fi
    base=$OUT/logs/$cfg-r$r-$w
    "$LG/run.sh" "$qemu" --smp "$SMP" --workload "$w" --size "$SIZE" --quiet \
        --log "$base.log" --summary "$base.summary" -- "${args[@]}" >/dev/null 2>"$base.stderr" || rc=$?
    if ((rc == 77)); then # it existed when we started
        lg_die "QEMU binary $qemu disappeared during the benchmark (being rebuilt?)"
    fi
    if ((rc)); then
        failures=$((failures + 1))
        lg_log "FAIL: $cfg round $r $w (rc $rc, log $base.log)"
        grep '^problem' "$base.summary" 2>/dev/null | sed 's/^/    /' >&2 || tail -n3 "$base.stderr" >&2
        return 0
    fi
    if [[ $w == boot ]]; then
        {
            printf 'boot\t%s\t%s\tboot_to_init\t%s\t\n' "$cfg" "$r" "$(awk '$1=="boot_to_init_s"{print $2}' "$base.summary")"
            printf 'boot\t%s\t%s\tguest_uptime_at_init\t%s\t\n' "$cfg" "$r" "$(awk '$1=="guest_uptime_at_init_s"{print $2}' "$base.summary")"
            printf 'boot_cpu\t%s\t%s\tboot\t%s\t\n' "$cfg" "$r" "$(awk '$1=="qemu_cpu_s"{print $2}' "$base.summary")"
        } >>"$SAMPLES"
        lg_log "$cfg round $r boot: $(awk '$1=="boot_to_init_s"{print $2}' "$base.summary") s to /init"
    else
        sum=$(awk -v w="$w" '$1=="sum" && $2==w {print $3 " " $4}' "$base.summary")
        {
            printf 'system\t%s\t%s\t%s\t%s\t%s\n' "$cfg" "$r" "$w" "$(awk -v w="$w" '$1=="time" && $2==w {print $3}' "$base.summary")" "$sum"
            printf 'system_cpu\t%s\t%s\t%s\t%s\t\n' "$cfg" "$r" "$w" "$(awk '$1=="qemu_cpu_s"{print $2}' "$base.summary")"
        } >>"$SAMPLES"
        lg_log "$cfg round $r $w: $(awk -v w="$w" '$1=="time" && $2==w {print $3}' "$base.summary") s"
    fi
}

user_run() { # user_run ROUND WORKLOAD
    local r=$1 w=$2 out rc=0 t sum
    out=$OUT/logs/U-r$r-$w.log
    # in a subshell, so that `times` reports the CPU time of this run alone
    rc=$( (
        rc=0
        "$USER_QEMU" "$LG_BIN/$w" "$SIZE" >"$out" 2>&1 </dev/null || rc=$?
        times >"$out.times" # not in a pipeline: that would be another subshell
        echo "$rc"
    ))
    awk 'NR == 2 { t = 0
        for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
        printf "%.3f\n", t }' "$out.times" >"$out.cpu"
    t=$(sed -n "s/.*@@BTMMU-TIME $w \([0-9.]*\).*/\1/p" "$out")
    sum=$(sed -n "s/.*@@BTMMU-SUM $w //p" "$out")
    if ((rc)) || [[ -z $t ]]; then
        failures=$((failures + 1))
        lg_log "FAIL: user mode round $r $w (rc $rc, log $out)"
        return 0
    fi
    printf 'user\tU\t%s\t%s\t%s\t%s\n' "$r" "$w" "$t" "$sum" >>"$SAMPLES"
    printf 'user_cpu\tU\t%s\t%s\t%s\t\n' "$r" "$w" "$(cat "$out.cpu")" >>"$SAMPLES"
    lg_log "U round $r $w: $t s"
}

t0=$(lg_now)
for ((r = 1; r <= BOOT_ROUNDS; r++)); do
    system_run A "$r" boot
    system_run B "$r" boot
done
# A, B and user mode back to back for each workload and round, so that
# all three see the same load on the host.
for ((r = 1; r <= ROUNDS; r++)); do
    for w in "${wl[@]}"; do
        system_run A "$r" "$w"
        system_run B "$r" "$w"
        if [[ $USER_QEMU != none ]]; then user_run "$r" "$w"; fi
    done
done
{
    printf 'loadavg_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'wall_s\t%s\n' "$(awk -v a="$t0" -v b="$(lg_now)" 'BEGIN{printf "%.1f", b-a}')"
    printf 'run_failures\t%s\n' "$failures"
} >>"$OUT/meta.tsv"

rc=0
python3 "$HERE/report.py" "$OUT" || rc=$?
((failures == 0)) || rc=1
exit "$rc"
