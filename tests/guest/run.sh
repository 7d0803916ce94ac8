#!/bin/sh
# Run a btmmu test guest under QEMU and judge the result.
#
#   run.sh QEMU_BINARY KERNEL [extra qemu args...]
#
# e.g.  run.sh qemu-system-i386 btmmu-guest32.elf -accel tcg
#       run.sh qemu-system-x86_64 btmmu-guest64.elf -accel tcg,thread=multi -smp 2
#
# The guest prints TAP-like lines on COM1 and ends with "PASS n/n" or
# "FAIL k/n", then writes to isa-debug-exit (port 0xf4): QEMU then exits
# with status 33 (0x21) on PASS and 35 (0x23) on FAIL.
#
# Exit status: 0 = PASS (summary PASS *and* QEMU status 33)
#              1 = FAIL, no summary line, timeout, crash, or bad arguments
#             77 = QEMU binary not found (automake SKIP)
#
# Environment: BTMMU_GUEST_TIMEOUT (seconds, default 120),
#              BTMMU_GUEST_LOG (keep the serial log in this file).
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 QEMU_BINARY KERNEL [extra qemu args...]" >&2
    exit 1
fi
qemu=$1
kernel=$2
shift 2

if ! command -v "$qemu" >/dev/null 2>&1; then
    echo "SKIP: QEMU binary '$qemu' not found"
    exit 77
fi
if [ ! -r "$kernel" ]; then
    echo "FAIL: cannot read kernel '$kernel'"
    exit 1
fi

tmo=${BTMMU_GUEST_TIMEOUT:-120}
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/btmmu-guest.XXXXXX") || exit 1
trap 'rm -rf "$tmpdir"' EXIT INT TERM
log=$tmpdir/serial.log
: > "$log"

timeout --kill-after=10 "$tmo" "$qemu" \
    -m 64 -display none -no-reboot -nic none -monitor none \
    -serial "file:$log" \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -kernel "$kernel" "$@" </dev/null
status=$?

cat "$log"
if [ -n "${BTMMU_GUEST_LOG:-}" ]; then
    cp "$log" "$BTMMU_GUEST_LOG"
fi

summary=$(grep -E '^(PASS|FAIL) [0-9]+/[0-9]+$' "$log" | tail -n 1)
case $status in
    33) what="guest reported PASS through isa-debug-exit" ;;
    35) what="guest reported FAIL through isa-debug-exit" ;;
    124|137) what="timeout after ${tmo}s" ;;
    *) what="QEMU exit status $status (guest crashed, triple-faulted or never reached isa-debug-exit)" ;;
esac
echo "# run.sh: $qemu $kernel $*: $what; summary: ${summary:-<none>}"

case $summary in
    PASS*)
        [ "$status" -eq 33 ] && exit 0
        echo "FAIL: summary says PASS but QEMU exit status is $status"
        exit 1 ;;
    FAIL*)
        exit 1 ;;
    *)
        echo "FAIL: no summary line in the guest output"
        exit 1 ;;
esac
