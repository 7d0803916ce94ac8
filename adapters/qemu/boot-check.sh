#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Smoke-test the binaries build.sh made, without -L, so that the firmware
# has to come from the configured --firmwarepath:
#
#   1. SeaBIOS alone: the BIOS (bios-256k.bin) and the VGA option ROM
#      (vgabios-stdvga.bin) must load and SeaBIOS must reach
#      "No bootable device";
#   2. a tiny multiboot kernel given with -kernel (loaded through the
#      multiboot_dma.bin option ROM) prints a line on COM1 and leaves
#      through isa-debug-exit.
#
# Usage: boot-check.sh [QEMU_BINARY...]   (default: both build/ binaries)

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly BUILD=$here/build
readonly TIMEOUT=${BTMMU_BOOT_TIMEOUT:-60}
readonly MSG="btmmu boot-check: multiboot kernel running"

log() { printf 'boot-check.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

tmp=$(mktemp -d /tmp/btmmu-boot-check.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# A 32-bit multiboot ELF: print $MSG on COM1, then write 0x10 to the
# isa-debug-exit port, which makes QEMU exit with status (0x10 << 1) | 1.
cat >"$tmp/kernel.S" <<EOF
    .section .text
    .align 4
    .long 0x1badb002            /* multiboot magic */
    .long 0                     /* flags */
    .long -0x1badb002           /* checksum */
    .globl _start
_start:
    mov \$msg, %esi
    mov \$0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  mov \$0xf4, %dx
    mov \$0x10, %eax
    outl %eax, %dx
3:  cli
    hlt
    jmp 3b
msg:
    .asciz "$MSG\n"
EOF
as --32 -o "$tmp/kernel.o" "$tmp/kernel.S"
ld -m elf_i386 -Ttext=0x100000 -e _start -o "$tmp/kernel.elf" "$tmp/kernel.o"

# Run QEMU ($1) with the remaining arguments until $TIMEOUT seconds pass or
# the serial log (stdout) contains $STOP; stdout in $tmp/out, stderr in
# $tmp/err. Returns QEMU's exit status, or 0 when it was stopped.
STOP=
run() {
    local q=$1 pid i rc=0
    shift
    : >"$tmp/out"
    "$q" -nographic -display none -no-reboot -m 64 -monitor none \
        -serial stdio "$@" </dev/null >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    for ((i = 0; i < TIMEOUT * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        if [[ -n $STOP ]] && grep -aq "$STOP" "$tmp/out"; then
            kill "$pid"
            wait "$pid" || true
            return 0
        fi
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        wait "$pid" || true
        log "$(basename "$q"): timed out after $TIMEOUT s"
        return 124
    fi
    wait "$pid" || rc=$?
    return "$rc"
}

check() {
    local q=$1 name rc
    name=$(basename "$q")
    [[ -x $q ]] || die "$q does not exist: run build.sh first"

    STOP="No bootable device"
    rc=0
    run "$q" -nic none -boot order=c \
        -chardev "file,id=dbg,path=$tmp/debugcon" \
        -device isa-debugcon,iobase=0x402,chardev=dbg || rc=$?
    if ((rc != 0)) || ! grep -aq "$STOP" "$tmp/out"; then
        cat "$tmp/err" "$tmp/out" >&2
        die "$name: SeaBIOS did not reach '$STOP' (exit $rc)"
    fi
    grep -aq 'Running option rom at c000' "$tmp/debugcon" ||
        die "$name: the VGA BIOS option ROM did not run"
    # Anything but our own SIGTERM (a missing romfile, say) is a failure.
    if grep -v 'terminating on signal' "$tmp/err" >&2; then
        die "$name: unexpected messages on stderr"
    fi
    # -m1: no `| head`, whose early exit would SIGPIPE grep under pipefail.
    log "$name: $(grep -ao -m1 'SeaBIOS (version [^)]*)' "$tmp/out")" \
        "reached '$STOP'"

    STOP=
    rc=0
    run "$q" -nic none -kernel "$tmp/kernel.elf" \
        -device isa-debug-exit,iobase=0xf4,iosize=4 || rc=$?
    if ((rc != 33)) || ! grep -aq "$MSG" "$tmp/out"; then
        cat "$tmp/err" "$tmp/out" >&2
        die "$name: the multiboot kernel did not run (exit $rc, expected 33)"
    fi
    log "$name: multiboot kernel printed its line and exited"
}

if (($# == 0)); then
    set -- "$BUILD/qemu-system-i386" "$BUILD/qemu-system-x86_64"
fi
for q in "$@"; do
    check "$q"
done
log "all passed"
