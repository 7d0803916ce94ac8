#!/usr/bin/env bash
# Boot Debian's i386 686 kernel with the workload initramfs under a QEMU
# system emulator (TCG), run workloads, check the result.
#
# usage: run.sh QEMU_BINARY [--smp N] [--workload NAME[,NAME..]|all|boot]
#               [--size full|quick | --quick] [--timeout SECONDS] [--mem MIB]
#               [--log FILE] [--summary FILE] [--append "KERNEL ARGS"] [--quiet]
#               [--boot multiboot|bzimage] [-- EXTRA QEMU ARGS...]
#
# Exit status: 0 the guest reached /init, ran every requested workload
#                (rc 0, checksum and time lines present), printed its final
#                marker and powered off cleanly; no panic/oops/BUG/WARNING
#              1 anything else (timeout, panic, missing line, QEMU error...)
#              2 usage error
#              77 the QEMU binary does not exist (skip)
#
# `--workload boot` boots to /init and powers off at once: use it for the
# boot-to-shell time, reported as boot_to_init_s (host wall clock from
# starting QEMU to the first /init marker line on the serial console).
#
# --boot multiboot (default when build.sh made it) boots the uncompressed
# kernel through boot/mbshim (about 1.5 s faster under TCG); --boot bzimage
# boots Debian's vmlinuz as is (XZ decompression in the guest). Env: LG_BOOT.
#
# An "-accel tcg,PROPS" among the extra QEMU args is merged with the accel
# option run.sh builds itself ("tcg", plus ",thread=multi" when --smp > 1), so
# e.g. `-- -accel tcg,btmmu=on` works with any --smp.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

(($# >= 1)) || usage
case $1 in -h | --help) usage 0 ;; esac
QEMU=$1
shift
SMP=1 WORKLOAD=all SIZE=full TIMEOUT="" LOG="" SUMMARY="" APPEND_EXTRA="" QUIET=0
MEM=${LG_MEM:-512}
BOOT=${LG_BOOT:-}
INITRD=${LG_INITRD_FILE:-$LG_INITRD}
EXTRA=()
while (($#)); do
    case $1 in
    --smp) SMP=${2:?}; shift 2 ;;
    --workload) WORKLOAD=${2:?}; shift 2 ;;
    --size) SIZE=${2:?}; shift 2 ;;
    --quick) SIZE=quick; shift ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --mem) MEM=${2:?}; shift 2 ;;
    --log) LOG=${2:?}; shift 2 ;;
    --summary) SUMMARY=${2:?}; shift 2 ;;
    --append) APPEND_EXTRA=${2?}; shift 2 ;;
    --quiet) QUIET=1; shift ;;
    --boot) BOOT=${2:?}; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h | --help) usage 0 ;;
    *) lg_log "unknown argument: $1"; usage ;;
    esac
done
[[ $SMP =~ ^[1-9][0-9]*$ ]] || { lg_log "bad --smp: $SMP"; usage; }
[[ $SIZE == full || $SIZE == quick ]] || { lg_log "bad --size: $SIZE"; usage; }

if [[ $QEMU == */* ]]; then
    [[ -x $QEMU ]] || { lg_log "QEMU binary not found: $QEMU (skip)"; exit 77; }
else
    command -v "$QEMU" >/dev/null || { lg_log "QEMU binary not found: $QEMU (skip)"; exit 77; }
    QEMU=$(command -v "$QEMU")
fi
if [[ -z $BOOT ]]; then
    if [[ -f $LG_MB_IMAGE ]]; then BOOT=multiboot; else BOOT=bzimage; fi
fi
case $BOOT in
multiboot) KERNEL=$LG_MB_IMAGE ;;
bzimage) KERNEL=$LG_KERNEL_IMAGE ;;
*) lg_log "bad --boot: $BOOT"; usage ;;
esac
[[ -f $KERNEL && -f $INITRD ]] || lg_die "missing $KERNEL or $INITRD: run deps.sh and build.sh first"
# QEMU's multiboot loader splits -initrd at commas (a list of modules).
[[ $BOOT != multiboot || $INITRD != *,* ]] || lg_die "the initramfs path must not contain a comma: $INITRD"

# Workloads to expect.
if [[ $WORKLOAD == all ]]; then
    wanted=("${LG_WORKLOADS[@]}")
elif [[ $WORKLOAD == boot ]]; then
    wanted=()
else
    IFS=, read -r -a wanted <<<"$WORKLOAD"
    for w in "${wanted[@]}"; do
        [[ " ${LG_WORKLOADS[*]} " == *" $w "* ]] || { lg_log "unknown workload: $w (known: ${LG_WORKLOADS[*]} all boot)"; exit 2; }
    done
fi
if [[ -z $TIMEOUT ]]; then # generous: stock TCG needs a few seconds per workload
    if [[ $SIZE == quick ]]; then TIMEOUT=$((90 + 60 * ${#wanted[@]})); else TIMEOUT=$((90 + 240 * ${#wanted[@]})); fi
fi

# Merge "-accel tcg,..." from the extra args into our accel option.
ACCEL_PROPS="" REST=()
for ((i = 0; i < ${#EXTRA[@]}; i++)); do
    a=${EXTRA[i]}
    if [[ ($a == -accel || $a == --accel) && $((i + 1)) -lt ${#EXTRA[@]} && ${EXTRA[i + 1]} == tcg* ]]; then
        v=${EXTRA[i + 1]}
        [[ $v == tcg,* ]] && ACCEL_PROPS+=",${v#tcg,}"
        i=$((i + 1))
    else
        REST+=("$a")
    fi
done
ACCEL=tcg
if ((SMP > 1)) && [[ $ACCEL_PROPS != *thread=* ]]; then ACCEL+=",thread=multi"; fi
ACCEL+=$ACCEL_PROPS

APPEND="console=ttyS0 quiet loglevel=3 panic=-1 oops=panic cryptomgr.notests noisapnp"
APPEND+=" btmmu.run=$WORKLOAD btmmu.size=$SIZE${APPEND_EXTRA:+ $APPEND_EXTRA}"
ARGS=(-kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND"
    -m "$MEM" -smp "$SMP" -accel "$ACCEL"
    -display none -serial stdio -monitor none -no-reboot -nic none
    ${REST[@]+"${REST[@]}"})

if [[ -z $LOG ]]; then LOG=$(mktemp "${TMPDIR:-/tmp}/btmmu-linux-guest.XXXXXX.log"); fi

# Prefix each console line with the host time since QEMU started; drop \r.
# (Integer arithmetic on EPOCHREALTIME: no fork per line.)
stamp() {
    local t0=$1 line now s us d
    local t0s=${t0%.*} t0u=${t0#*.}
    t0u=$((10#${t0u}000000 / 10 ** (${#t0u})))
    while IFS= read -r line || [[ -n $line ]]; do
        now=${EPOCHREALTIME/,/.}
        s=${now%.*} us=${now#*.}
        d=$(((s - t0s) * 1000000 + 10#$us - t0u))
        printf '[+%5d.%06d] %s\n' $((d / 1000000)) $((d % 1000000)) "${line//$'\r'/}"
    done
}

{
    printf '# run.sh: %s' "$QEMU"
    printf ' %q' "${ARGS[@]}"
    printf '\n# timeout %ss, log %s\n' "$TIMEOUT" "$LOG"
} | tee "$LOG" >&2

# QEMU runs in a subshell that records its exit status and, with `times`,
# the CPU time of its children (timeout + QEMU): a host-side figure that is
# less sensitive than wall time to other load on the machine.
run_qemu() {
    local rc=0
    timeout -k 10 "$TIMEOUT" "$QEMU" "${ARGS[@]}" </dev/null 2>&1 || rc=$?
    printf '%s\n' "$rc" >"$LOG.rc"
    times >"$LOG.times"
}
rm -f "$LOG.rc" "$LOG.times"
t0=$(lg_now)
if ((QUIET)); then
    run_qemu | stamp "$t0" >>"$LOG"
else
    run_qemu | stamp "$t0" | tee -a "$LOG"
fi
t1=$(lg_now)
qemu_rc=$(cat "$LOG.rc" 2>/dev/null || echo 255)
# second line of `times`: children's user and system time, e.g. "0m12.345s 0m0.678s"
qemu_cpu=$(awk 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
    printf "%.3f", t }' "$LOG.times" 2>/dev/null || true)
rm -f "$LOG.rc" "$LOG.times"

# --- verdict -----------------------------------------------------------------
problems=()
field() { # field LINE KEY -> value of KEY=VALUE in LINE
    local re="[[:space:]]$2=([^[:space:]]+)"
    [[ $1 =~ $re ]] && printf '%s' "${BASH_REMATCH[1]}"
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }

case $qemu_rc in
0) ;;
124 | 137) problems+=("timeout after ${TIMEOUT}s") ;;
*) problems+=("QEMU exited with status $qemu_rc") ;;
esac
init_line=$(grep -a -m1 '@@BTMMU-INIT' "$LOG" || true)
done_line=$(grep -a -m1 '@@BTMMU-DONE' "$LOG" || true)
boot_to_init=""
if [[ -n $init_line ]]; then
    boot_to_init=$(sed -E 's/^\[\+ *([0-9.]+)\].*/\1/' <<<"$init_line")
else
    problems+=("no @@BTMMU-INIT: the guest did not reach /init")
fi
if [[ -z $done_line ]]; then
    problems+=("no @@BTMMU-DONE")
elif [[ $(field "$done_line" fail) != 0 ]]; then
    problems+=("workload failures: ${done_line#*@@BTMMU-DONE }")
fi
grep -aq 'reboot: Power down' "$LOG" || problems+=("no clean power-off ('reboot: Power down' missing)")
# grep -m5, not `| head -n5`: with more trouble lines than head reads, grep
# got SIGPIPE and under pipefail the whole check was skipped.
bad=$(grep -a -m5 -E 'Kernel panic|BUG:|Oops|WARNING: CPU|general protection fault|Call Trace|@@BTMMU-DMESG' "$LOG" || true)
if [[ -n $bad ]]; then
    problems+=("kernel trouble: $(head -n1 <<<"$bad")")
fi

declare -A SUM TIME RC
for w in ${wanted[@]+"${wanted[@]}"}; do
    s=$(grep -a "@@BTMMU-SUM $w " "$LOG" | sed 's/.*@@BTMMU-SUM //' || true)
    t=$(grep -a "@@BTMMU-TIME $w " "$LOG" | sed -E 's/.*@@BTMMU-TIME [^ ]+ ([0-9.]+).*/\1/' || true)
    e=$(grep -a "@@BTMMU-END $w " "$LOG" || true)
    SUM[$w]=$s TIME[$w]=$t RC[$w]=$(field "$e" rc || true)
    [[ $(wc -l <<<"$s") == 1 && -n $s ]] || problems+=("$w: expected one checksum line, got '${s//$'\n'/ | }'")
    [[ -n $t ]] || problems+=("$w: no time line")
    [[ ${RC[$w]} == 0 ]] || problems+=("$w: rc=${RC[$w]:-missing}")
done

verdict=PASS
((${#problems[@]} == 0)) || verdict=FAIL
{
    echo "== run.sh summary: $QEMU smp=$SMP workload=$WORKLOAD size=$SIZE boot=$BOOT"
    echo "qemu_rc $qemu_rc"
    echo "boot_to_init_s ${boot_to_init:-none}"
    echo "guest_uptime_at_init_s $(field "$init_line" uptime || echo none)"
    echo "guest_uptime_at_done_s $(field "$done_line" uptime || echo none)"
    echo "total_wall_s $(secs "$t0" "$t1")"
    echo "qemu_cpu_s ${qemu_cpu:-none}"
    for w in ${wanted[@]+"${wanted[@]}"}; do
        echo "sum $w ${SUM[$w]#"$w "}"
        echo "time $w ${TIME[$w]:-none}"
    done
    for p in ${problems[@]+"${problems[@]}"}; do echo "problem $p"; done
    echo "log $LOG"
    echo "verdict $verdict"
} >"$LOG.summary"
cat "$LOG.summary"
[[ -z $SUMMARY ]] || cp "$LOG.summary" "$SUMMARY"
[[ $verdict == PASS ]]
