#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Build QEMU 10.0.2 (TCG only; i386-softmmu and x86_64-softmmu) with the
# patches in patches/series, linked with the in-tree libbtmmu, leaving
# adapters/qemu/build/qemu-system-i386 and adapters/qemu/build/qemu-system-x86_64
# (-accel tcg,btmmu=on turns the adapter on).
#
#   1. deps.sh (skipped with BTMMU_NO_DEPS=1);
#   2. fetch.sh: verified pristine tree in .cache/src/qemu-10.0.2;
#   3. .cache/work/qemu-10.0.2 = pristine tree + series, redone when the
#      tarball, the series or a patch changes (stamp: a hash of all three);
#      only files whose content changed get a new mtime, so ninja rebuilds
#      just what the change touches;
#   4. configure in build/, only when the configure line, the environment
#      it reads or the configure script itself changed (or never succeeded);
#   5. ninja (by default only the two binaries).
#
# Environment:
#   BTMMU_NO_DEPS=1               do not run deps.sh
#   BTMMU_QEMU_CONFIGURE_EXTRA    extra configure arguments, split on blanks
#                                 (e.g. "--enable-debug --disable-werror")
#   BTMMU_QEMU_FIRMWAREPATH       colon-separated firmware directories
#                                 (default: Debian's own list,
#                                 /usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu)
#   BTMMU_QEMU_JOBS               ninja -j value (default: nproc)
#   BTMMU_QEMU_NINJA_TARGETS      ninja targets, split on blanks (default: the
#                                 two binaries and the mem plugin that
#                                 make check-qemu uses, ~1,670 of 2,651 steps;
#                                 "all" adds QEMU's tests and contrib plugins)
#   BTMMU_QEMU_CACHE              cache directory (default adapters/qemu/.cache)
#   BTMMU_TOP_BUILDDIR            where libbtmmu is configured (default: the
#                                 source tree, as ./setup does)
#   PKG_CONFIG, PKG_CONFIG_PATH, PKG_CONFIG_LIBDIR, CC, CFLAGS, LDFLAGS
#                                 passed on to configure; a change reconfigures

set -euo pipefail

readonly QEMU_VERSION=10.0.2

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly PATCHES=$here/patches
readonly BUILD=$here/build
export BTMMU_QEMU_CACHE=${BTMMU_QEMU_CACHE:-$here/.cache}
readonly CACHE=$BTMMU_QEMU_CACHE
readonly WORK=$CACHE/work/qemu-$QEMU_VERSION
readonly WORK_STAMP=$WORK.stamp
readonly CONF_STAMP=$BUILD/.btmmu-configure
readonly FIRMWAREPATH=${BTMMU_QEMU_FIRMWAREPATH:-/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu}

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- 0. one build at a time --------------------------------------------------

mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
if ! flock -n 9; then
    log "another build.sh holds $CACHE/build.lock, waiting"
    flock 9
fi

# --- 1, 2. dependencies and pristine source ----------------------------------

if [[ ${BTMMU_NO_DEPS:-0} != 1 ]]; then
    "$here/deps.sh"
fi
src=$("$here/fetch.sh")
[[ -d $src && -f $src.stamp ]] || die "fetch.sh gave no pristine tree"

# --- 3. patched work tree ----------------------------------------------------

# Patch names from the quilt-style series file: one per line, '#' comments.
patches=()
[[ -f $PATCHES/series ]] || die "missing $PATCHES/series"
while read -r name opts; do
    [[ -z $name || $name == \#* ]] && continue
    [[ -z $opts || $opts == \#* || $opts == -p1 ]] ||
        die "series: '$name $opts': only -p1 patches are supported"
    [[ -f $PATCHES/$name ]] || die "series names $name, not in $PATCHES/"
    patches+=("$name")
done <"$PATCHES/series"

tree_hash=$(
    {
        cat "$src.stamp"
        cat "$PATCHES/series"
        for p in "${patches[@]}"; do
            printf '\n== %s\n' "$p"
            cat "$PATCHES/$p"
        done
    } | sha256sum | cut -d' ' -f1
)

if [[ -d $WORK && -f $WORK_STAMP && $(<"$WORK_STAMP") == "$tree_hash" ]]; then
    log "patched tree $WORK is up to date"
else
    log "preparing $WORK (${#patches[@]} patches)"
    rm -rf "$WORK.new" "$WORK_STAMP"
    mkdir -p "$(dirname "$WORK")"
    cp -a "$src" "$WORK.new"
    for p in "${patches[@]}"; do
        log "applying $p"
        if ! out=$(patch -d "$WORK.new" -p1 --forward --batch --fuzz=0 \
            --no-backup-if-mismatch -i "$PATCHES/$p" 2>&1); then
            printf '%s\n' "$out" >&2
            rm -rf "$WORK.new"
            die "patch $p does not apply to QEMU $QEMU_VERSION" \
                "(after the patches before it in the series)"
        fi
    done
    if [[ -d $WORK ]]; then
        # Make $WORK equal to the new tree, rewriting (and so re-dating)
        # only the files whose content differs.
        rsync -rlpc --delete "$WORK.new/" "$WORK/"
        rm -rf "$WORK.new"
    else
        mv "$WORK.new" "$WORK"
        # The tree has the tarball's old dates: a build/ left from another
        # tree would look newer than its sources. Start it afresh.
        if [[ -e $BUILD ]]; then
            log "new source tree: removing the old $BUILD"
            rm -rf "$BUILD"
        fi
    fi
    printf '%s\n' "$tree_hash" >"$WORK_STAMP"
fi

# --- 4. configure ------------------------------------------------------------

configure_args=(
    --python=/usr/bin/python3
    "--target-list=i386-softmmu,x86_64-softmmu"
    --disable-kvm
    --disable-xen
    --without-default-features
    --disable-user
    --disable-install-blobs
    --disable-docs
    --disable-download
    --enable-tcg
    --enable-plugins
    "--firmwarepath=$FIRMWAREPATH"
)

# ---- libbtmmu ----------------------------------------------------------------
# QEMU links the in-tree libbtmmu, found with `pkg-config libbtmmu`: install
# the project's build (./setup configures it) into the cache, keep only the
# static archive so the binaries do not depend on a library path, and point
# PKG_CONFIG_PATH at its libbtmmu.pc.
top=$(cd "$here/../.." && pwd)
topbuild=${BTMMU_TOP_BUILDDIR:-$top}
[[ -f $topbuild/Makefile ]] ||
    die "libbtmmu is not configured in $topbuild: run ./setup first"
make -C "$topbuild" -s lib/libbtmmu.la </dev/null >/dev/null ||
    die "building libbtmmu in $topbuild failed"
libroot=$CACHE/libbtmmu
# Reinstall only when the library or its headers changed: fresh header
# dates would make ninja recompile what includes them.
srcsig=$(cat "$topbuild/lib/.libs/libbtmmu.a" "$top/include/btmmu/btmmu.h" \
    "$topbuild/include/btmmu/version.h" | sha256sum | cut -d' ' -f1)
if [[ ! -f $libroot.stamp || $(<"$libroot.stamp") != "$srcsig" ]]; then
    rm -rf "$libroot" "$libroot.stamp"
    make -C "$topbuild" -s install DESTDIR="$libroot" </dev/null >/dev/null 2>&1 ||
        die "installing libbtmmu into $libroot failed"
    find "$libroot" \( -name 'libbtmmu.so*' -o -name libbtmmu.la \) -delete
    pc=$(find "$libroot" -name libbtmmu.pc -print -quit)
    [[ -n $pc ]] || die "libbtmmu.pc was not installed into $libroot"
    sed -i "s|^prefix=.*|prefix=$(cd "$(dirname "$pc")/../.." && pwd)|" "$pc"
    printf '%s\n' "$srcsig" >"$libroot.stamp"
fi
pc=$(find "$libroot" -name libbtmmu.pc -print -quit)
PKG_CONFIG_PATH=$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
log "libbtmmu $(pkg-config --modversion libbtmmu) from $topbuild"
configure_args+=(--enable-btmmu)
libsig=$(sha256sum "$(find "$libroot" -name libbtmmu.a -print -quit)" | cut -d' ' -f1)
# ------------------------------------------------------------------------------

extra=()
read -r -a extra <<<"${BTMMU_QEMU_CONFIGURE_EXTRA:-}"
configure_args+=("${extra[@]}")

# Everything configure depends on, apart from meson.build and friends, whose
# changes ninja picks up by itself.
conf_env=(CC CFLAGS CXX CXXFLAGS LDFLAGS PKG_CONFIG PKG_CONFIG_PATH
    PKG_CONFIG_LIBDIR)
conf_sig=$(
    printf '%q\n' "$WORK" "${configure_args[@]}"
    for v in "${conf_env[@]}"; do
        printf '%s=%q\n' "$v" "${!v-}"
    done
    sha256sum "$WORK/configure" "$WORK/scripts/meson-buildoptions.sh"
)

if [[ -f $BUILD/build.ninja && -f $CONF_STAMP &&
    $(<"$CONF_STAMP") == "$conf_sig" ]]; then
    log "configuration in $BUILD is up to date"
else
    log "configuring in $BUILD"
    mkdir -p "$BUILD"
    rm -f "$CONF_STAMP"
    (cd "$BUILD" && "$WORK/configure" "${configure_args[@]}" </dev/null) ||
        die "QEMU configure failed; see $BUILD/meson-logs/meson-log.txt"
    printf '%s\n' "$conf_sig" >"$CONF_STAMP"
fi

# Binaries run from the build tree resolve the configured firmware paths
# under $BUILD/qemu-bundle (get_relocated_path() in util/cutils.c), so
# /usr/share/qemu is looked up as $BUILD/qemu-bundle/usr/share/qemu: link
# each such directory to the real one so no -L is needed.
IFS=: read -r -a fw_dirs <<<"$FIRMWAREPATH"
for d in "${fw_dirs[@]}"; do
    [[ $d == /* ]] || continue
    link=$BUILD/qemu-bundle$d
    if [[ -e $link && ! -L $link ]]; then
        log "warning: $link is a directory of the build: firmware in $d" \
            "is not found from the build tree"
        continue
    fi
    [[ -d $d ]] || log "warning: firmware directory $d does not exist"
    mkdir -p "$(dirname "$link")"
    ln -sfn "$d" "$link"
done

# --- 5. build ----------------------------------------------------------------

# ninja does not see the static library as an input: relink when it changed.
if [[ ! -f $BUILD/.btmmu-lib || $(<"$BUILD/.btmmu-lib") != "$libsig" ]]; then
    rm -f "$BUILD/qemu-system-i386" "$BUILD/qemu-system-x86_64"
fi

jobs=${BTMMU_QEMU_JOBS:-$(nproc)}
read -r -a targets <<<"${BTMMU_QEMU_NINJA_TARGETS:-qemu-system-i386 qemu-system-x86_64 tests/tcg/plugins/libmem.so}"
ninja -C "$BUILD" -j "$jobs" "${targets[@]}" </dev/null ||
    die "ninja failed in $BUILD"

for b in qemu-system-i386 qemu-system-x86_64; do
    [[ -x $BUILD/$b ]] || die "ninja finished but $BUILD/$b is missing"
    log "built $BUILD/$b"
done
printf '%s\n' "$libsig" >"$BUILD/.btmmu-lib"
