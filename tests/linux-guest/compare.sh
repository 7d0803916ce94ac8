#!/usr/bin/env bash
# Run the same workloads with two QEMU configurations and check that every
# checksum line is identical: A = stock (no extra args), B = with the extra
# args, each with -smp 1 and -smp 2 (MTTCG). Checksums must also agree
# between the -smp values.
#
# usage: compare.sh [QEMU_BINARY] [--qemu-b BINARY] [--smp-list "1 2"]
#                   [--size quick|full] [--workload all|NAME[,NAME..]]
#                   [--timeout S] [--no-build] [-- EXTRA QEMU ARGS FOR B...]
#
#   QEMU_BINARY  default: $LG_QEMU, else qemu-system-i386 from PATH
#   --qemu-b     binary for B (default: QEMU_BINARY)
#   B's extra args come after "--", else from $COMPARE_B_ARGS (split on
#   blanks). With neither, B = A (tests the pipeline).
#   --size       default quick (CI-sized); full = the benchmark sizes
#
# Exit status: 0 all runs passed and all checksums agree, 1 otherwise,
# 77 the QEMU binary does not exist, 2 usage error.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
    sed -n '2,/^set -euo/{/^#/p}' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

QEMU_A=${LG_QEMU:-qemu-system-i386}
if (($#)) && [[ $1 != -* ]]; then QEMU_A=$1; shift; fi
QEMU_B="" SMPS="1 2" SIZE=quick WORKLOAD=all TIMEOUT=() BUILD=1
read -r -a B_ARGS <<<"${COMPARE_B_ARGS:-}"
while (($#)); do
    case $1 in
    --qemu-b) QEMU_B=${2:?}; shift 2 ;;
    --smp-list) SMPS=${2:?}; shift 2 ;;
    --size) SIZE=${2:?}; shift 2 ;;
    --quick) SIZE=quick; shift ;;
    --full) SIZE=full; shift ;;
    --workload) WORKLOAD=${2:?}; shift 2 ;;
    --timeout) TIMEOUT=(--timeout "${2:?}"); shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --) shift; B_ARGS=("$@"); break ;;
    -h | --help) usage 0 ;;
    *) lg_log "unknown argument: $1"; usage ;;
    esac
done
QEMU_B=${QEMU_B:-$QEMU_A}
have() { if [[ $1 == */* ]]; then [[ -x $1 ]]; else command -v "$1" >/dev/null; fi; }
for q in "$QEMU_A" "$QEMU_B"; do
    have "$q" || { lg_log "QEMU binary not found: $q (skip)"; exit 77; }
done
if ((BUILD)); then "$LG_DIR/build.sh"; fi

out=$(mktemp -d "${TMPDIR:-/tmp}/btmmu-compare.XXXXXX")
lg_log "logs in $out"
[[ ${#B_ARGS[@]} -gt 0 || $QEMU_B != "$QEMU_A" ]] || lg_log "B = A (no extra args for B): pipeline test"
passed=0 failed=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        printf 'ok    %s\n' "$what"
    else
        failed=$((failed + 1))
        printf 'FAIL  %s\n' "$what"
    fi
}
sums() { grep '^sum ' "$1" | LC_ALL=C sort; }

t_all=$(lg_now)
ref=""
for smp in $SMPS; do
    for cfg in A B; do
        if [[ $cfg == A ]]; then q=$QEMU_A extra=(); else q=$QEMU_B extra=(${B_ARGS[@]+"${B_ARGS[@]}"}); fi
        t=$(lg_now)
        rc=0
        "$LG_DIR/run.sh" "$q" --smp "$smp" --workload "$WORKLOAD" --size "$SIZE" ${TIMEOUT[@]+"${TIMEOUT[@]}"} \
            --quiet --log "$out/$cfg-smp$smp.log" --summary "$out/$cfg-smp$smp.summary" \
            -- ${extra[@]+"${extra[@]}"} >/dev/null 2>"$out/$cfg-smp$smp.stderr" || rc=$?
        [[ $rc != 77 ]] || { lg_log "QEMU binary not found (skip)"; exit 77; }
        secs=$(awk -v a="$t" -v b="$(lg_now)" 'BEGIN{printf "%.1f", b-a}')
        check "$cfg smp=$smp run ($secs s, boot_to_init $(awk '$1=="boot_to_init_s"{print $2}' "$out/$cfg-smp$smp.summary" 2>/dev/null) s)" test "$rc" = 0
        if ((rc)); then
            grep '^problem' "$out/$cfg-smp$smp.summary" 2>/dev/null | sed 's/^/      /' || true
            tail -n 3 "$out/$cfg-smp$smp.log" 2>/dev/null | sed 's/^/      /' || true
        fi
    done
    check "checksums A == B (smp=$smp)" cmp -s <(sums "$out/A-smp$smp.summary") <(sums "$out/B-smp$smp.summary")
    if [[ -z $ref ]]; then
        ref=$smp
    else
        check "checksums smp=$ref == smp=$smp (A)" cmp -s <(sums "$out/A-smp$ref.summary") <(sums "$out/A-smp$smp.summary")
    fi
done

echo
printf '%-10s' workload
for smp in $SMPS; do printf ' %9s %9s' "A/smp$smp" "B/smp$smp"; done
printf '  checksum (A, smp=%s)\n' "${SMPS%% *}"
mapfile -t names < <(awk '$1=="sum"{print $2}' "$out/A-smp${SMPS%% *}.summary" 2>/dev/null)
for w in ${names[@]+"${names[@]}"}; do
    printf '%-10s' "$w"
    for smp in $SMPS; do
        for cfg in A B; do
            printf ' %9s' "$(awk -v w="$w" '$1=="time" && $2==w && $3 != "none" {t=sprintf("%.3fs", $3)} END{print (t == "" ? "-" : t)}' "$out/$cfg-smp$smp.summary" 2>/dev/null)"
        done
    done
    printf '  %s\n' "$(awk -v w="$w" '$1=="sum" && $2==w {print $3, $4}' "$out/A-smp${SMPS%% *}.summary")"
done
echo "times: in-guest seconds (size $SIZE); total wall $(awk -v a="$t_all" -v b="$(lg_now)" 'BEGIN{printf "%.1f", b-a}') s; logs in $out"
if ((failed)); then
    for smp in $SMPS; do
        for cfg in A B; do
            f=$out/$cfg-smp$smp.summary
            diff <(sums "$out/A-smp${SMPS%% *}.summary") <(sums "$f") >/dev/null 2>&1 || { echo "--- checksums of $cfg smp=$smp"; sums "$f" 2>/dev/null; }
        done
    done
fi
echo "compare: $passed passed, $failed failed"
((failed == 0))
