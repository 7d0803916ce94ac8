#!/usr/bin/env bash
# Fetch Debian's i386 686 kernel and a static i386 busybox, build the static
# i386 workloads, and pack the initramfs. Idempotent: steps whose outputs are
# up to date are skipped. Run deps.sh first.
#
# Outputs (.cache/build): vmlinuz (bzImage), vmlinux-mb (multiboot image, see
# boot/mbshim.c), initramfs.cpio, bin/<workloads>, kernel-abi
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

step_t0=0
step_begin() { step_t0=$(lg_now); lg_log "$1"; }
step_end() { lg_log "  $1 ($(awk -v a="$step_t0" -v b="$(lg_now)" 'BEGIN{printf "%.2f s", b-a}'))"; }

mkdir -p "$LG_BUILD" "$LG_KERNEL_DIR" "$LG_CACHE/debs"
# One build at a time (compare.sh and bench/qemu/run.sh call this script).
exec 9>"$LG_CACHE/.build.lock"
flock 9

# --- kernel -----------------------------------------------------------------
step_begin "kernel"
# The ABI (e.g. 6.1.0-50-686) is resolved from the metapackage, never
# hard-coded: Debian bumps it with security updates and drops old images.
# (sed -n 1p rather than head: it reads all, so no SIGPIPE under pipefail)
abi=$(lg_apt_i386 apt-cache depends linux-image-686 2>/dev/null | sed -n 's/^ *Depends: linux-image-//p' | sed -n 1p || true)
if [[ -z $abi ]]; then
    [[ -L $LG_KERNEL_DIR/current ]] || lg_die "cannot resolve linux-image-686 (i386): run deps.sh"
    abi=$(readlink "$LG_KERNEL_DIR/current")
    lg_log "  warning: package lists unavailable, using the cached kernel $abi"
fi
kdir=$LG_KERNEL_DIR/$abi
if [[ -f $kdir/vmlinuz ]]; then
    step_end "linux-image-$abi cached"
else
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/lg-kernel.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    (cd "$LG_CACHE/debs" && rm -f linux-image-*.deb && lg_apt_i386 apt-get download -q "linux-image-$abi")
    deb=$(ls "$LG_CACHE"/debs/linux-image-"$abi"_*.deb)
    # Only ./boot: never install a kernel package on the host.
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" ./boot
    mkdir -p "$kdir.new"
    mv "$tmp/boot/vmlinuz-$abi" "$kdir.new/vmlinuz"
    mv "$tmp/boot/config-$abi" "$kdir.new/config"
    rm -rf "$kdir" && mv "$kdir.new" "$kdir"
    rm -f "$deb" # 50 MB; fetched again if the ABI changes
    rm -rf "$tmp"
    trap - EXIT
    step_end "linux-image-$abi downloaded and unpacked"
fi
ln -sfn "$abi" "$LG_KERNEL_DIR/current"
ln -sfn "../kernel/$abi/vmlinuz" "$LG_BUILD/vmlinuz"
printf '%s\n' "$abi" >"$LG_BUILD/kernel-abi"

# --- multiboot image: the uncompressed kernel behind a small shim ------------
# The 686 kernel has no PVH entry, so QEMU cannot boot its vmlinux directly,
# and the bzImage's XZ decompressor costs ~1.5 s under TCG. boot/mbshim.*
# is a multiboot a.out-kludge stub that QEMU's multiboot loader starts; it
# builds boot_params and jumps to the kernel's startup_32 (see mbshim.c).
step_begin "multiboot image"
mb=$LG_BUILD/vmlinux-mb
mbsrc=("$LG_DIR"/boot/mbshim.{S,c,ld})
if [[ -f $mb && $mb -nt $kdir/vmlinuz && $mb -nt $LG_DIR/build.sh ]] && for f in "${mbsrc[@]}"; do [[ $mb -nt $f ]] || exit 1; done; then
    step_end "up to date"
else
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/lg-mb.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # vmlinux: the XZ stream inside the bzImage (ELF + relocations appended).
    off=$(LC_ALL=C grep -obUaP -m1 '\xfd7zXZ\x00' "$kdir/vmlinuz" | sed -n 1p | cut -d: -f1 || true)
    if [[ -n $off ]] && tail -c +$((off + 1)) "$kdir/vmlinuz" | xz -dc --single-stream >"$tmp/vmlinux" 2>/dev/null &&
        [[ $(readelf -h "$tmp/vmlinux" 2>/dev/null | awk '/Entry point/{print $4}') == 0x1000000 ]]; then
        "${CC:-gcc}" -m32 -ffreestanding -fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables \
            -Os -Wall -Wextra -nostdlib -static -no-pie -Wl,-T,"$LG_DIR/boot/mbshim.ld" -Wl,--build-id=none \
            -o "$tmp/mbshim.elf" "$LG_DIR/boot/mbshim.S" "$LG_DIR/boot/mbshim.c"
        objcopy -O binary "$tmp/mbshim.elf" "$tmp/mb"
        truncate -s 4096 "$tmp/mb"
        objcopy -O binary "$tmp/vmlinux" "$tmp/kernel.bin" # flat, from physical 0x1000000
        cat "$tmp/kernel.bin" >>"$tmp/mb"
        bss_end=0
        while read -r _ _ _ pa _ msz _; do
            ((pa + msz > bss_end)) && bss_end=$((pa + msz))
        done < <(readelf -lW "$tmp/vmlinux" | awk '$1 == "LOAD"')
        le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
        patch32() { # patch32 OFFSET VALUE
            # shellcheck disable=SC2059 # le32 prints a format of escapes
            printf "$(le32 "$2")" | dd of="$tmp/mb" bs=1 seek="$1" conv=notrunc status=none
        }
        # setup header: boot_params 0x1f1 up to the end given by the jump at 0x201
        jmp=$(od -An -tu1 -j $((0x201)) -N1 "$kdir/vmlinuz" | tr -d ' ')
        hlen=$((0x202 + jmp - 0x1f1))
        ((hlen > 0 && hlen <= 0x100)) || lg_die "odd setup header length $hlen"
        patch32 $((0x14)) $((0x0FFF000 + $(stat -c %s "$tmp/mb"))) # load_end_addr
        patch32 $((0x18)) "$bss_end"                              # bss_end_addr
        patch32 $((0x20)) "$hlen"
        dd if="$kdir/vmlinuz" of="$tmp/mb" bs=1 skip=$((0x1f1)) seek=$((0x24)) count="$hlen" conv=notrunc status=none
        mv "$tmp/mb" "$mb"
        step_end "$(du -k "$mb" | cut -f1) KiB"
    else
        rm -f "$mb"
        step_end "warning: no XZ vmlinux with entry 0x1000000 in the bzImage: multiboot boot unavailable"
    fi
    rm -rf "$tmp"
    trap - EXIT
fi

# --- busybox (static, i386) --------------------------------------------------
step_begin "busybox"
bbver=$(lg_apt_i386 apt-cache policy busybox-static 2>/dev/null | sed -n 's/^ *Candidate: //p' || true)
bbdir=$LG_CACHE/busybox
if [[ -x $bbdir/busybox && ( -z $bbver || $bbver == "(none)" || $(cat "$bbdir/version" 2>/dev/null) == "$bbver" ) ]]; then
    step_end "busybox-static:i386 $(cat "$bbdir/version") cached"
else
    [[ -n $bbver && $bbver != "(none)" ]] || lg_die "busybox-static:i386 not resolvable: run deps.sh"
    (cd "$LG_CACHE/debs" && rm -f busybox-static_*.deb && lg_apt_i386 apt-get download -q busybox-static)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/lg-bb.XXXXXX")
    dpkg-deb --fsys-tarfile "$LG_CACHE"/debs/busybox-static_*.deb | tar -x -C "$tmp" ./bin/busybox
    mkdir -p "$bbdir"
    mv "$tmp/bin/busybox" "$bbdir/busybox"
    printf '%s\n' "$bbver" >"$bbdir/version"
    rm -rf "$tmp" "$LG_CACHE"/debs/busybox-static_*.deb
    step_end "busybox-static:i386 $bbver downloaded"
fi
# Captured, then matched: `| grep -q` exits at the first match and under
# pipefail the writer's SIGPIPE would fail the check.
bbfile=$(file -b "$bbdir/busybox" 2>/dev/null || true)
bbmagic=$(od -An -tx1 -N20 "$bbdir/busybox" 2>/dev/null || true)
[[ $bbfile == *'Intel 80386'* || $bbmagic == *'7f 45 4c 46 01'* ]] ||
    lg_die "$bbdir/busybox is not a 32-bit x86 ELF"

# --- workloads -------------------------------------------------------------
step_begin "workloads"
CC=${CC:-gcc}
CFLAGS=(-m32 -static -O2 -s -Wall -Wextra -std=gnu11)
TINY_FLAGS=(-m32 -static -O2 -s -Wall -Wextra -nostdlib -fno-pie -no-pie -fno-stack-protector -fno-asynchronous-unwind-tables)
mkdir -p "$LG_BIN"
stamp="$CC ${CFLAGS[*]} | ${TINY_FLAGS[*]}"
[[ $(cat "$LG_BIN/.flags" 2>/dev/null) == "$stamp" ]] || rm -f "$LG_BIN"/*
built=0
for w in "${LG_WORKLOADS[@]}" tiny; do
    src=$LG_DIR/workloads/$w.c out=$LG_BIN/$w
    if [[ -x $out && $out -nt $src && $out -nt $LG_DIR/workloads/common.h ]]; then
        continue
    fi
    if [[ $w == tiny ]]; then
        "$CC" "${TINY_FLAGS[@]}" -o "$out.tmp" "$src"
    else
        "$CC" "${CFLAGS[@]}" -o "$out.tmp" "$src"
    fi
    mv "$out.tmp" "$out"
    built=$((built + 1))
done
printf '%s\n' "$stamp" >"$LG_BIN/.flags"
step_end "$built built, $((${#LG_WORKLOADS[@]} + 1 - built)) up to date"

# --- initramfs ---------------------------------------------------------------
step_begin "initramfs"
root=$LG_BUILD/root
rm -rf "$root"
mkdir -p "$root"/{bin,w,etc,proc,sys,dev,tmp}
cp "$bbdir/busybox" "$root/bin/busybox"
cp "$LG_DIR/init.sh" "$root/init"
chmod 755 "$root/init" "$root/bin/busybox"
for w in "${LG_WORKLOADS[@]}" tiny; do cp "$LG_BIN/$w" "$root/w/$w"; done
printf '%s\n' "${LG_WORKLOADS[*]}" | tr ' ' , >"$root/etc/btmmu-workloads"
# /dev/console comes from the kernel's built-in initramfs: no mknod needed.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) >"$LG_INITRD.tmp"
outs=("$LG_INITRD")
# run.sh uses the uncompressed archive: it boots faster under TCG than the
# gzip one (measured, see README). LG_INITRD_GZ=1 also writes the .gz.
if [[ ${LG_INITRD_GZ:-0} == 1 ]]; then
    gzip -9n <"$LG_INITRD.tmp" >"$LG_INITRD.gz.tmp"
    outs+=("$LG_INITRD.gz")
fi
for f in "${outs[@]}"; do
    if cmp -s "$f.tmp" "$f"; then rm -f "$f.tmp"; else mv "$f.tmp" "$f"; fi
done
step_end "$(du -k "$LG_INITRD" | cut -f1) KiB"
lg_log "kernel $abi, initramfs $LG_INITRD"
