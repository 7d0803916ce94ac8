#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Get the upstream QEMU 10.0.2 source: Debian's orig tarball
# qemu_10.0.2+ds.orig.tar.xz from bookworm-backports (through
# `apt-get source --tar-only`), checked against a known size and sha256, and
# unpack it, untouched, into adapters/qemu/.cache/src/qemu-10.0.2.
#
# Nothing is downloaded when the verified tarball is already in .cache/, and
# nothing is unpacked when the tree is already there. Run deps.sh first (it
# adds the bookworm-backports deb-src entry apt-get source needs).
#
# Prints the path of the pristine tree on stdout.

set -euo pipefail

readonly QEMU_VERSION=10.0.2
readonly TARBALL=qemu_${QEMU_VERSION}+ds.orig.tar.xz
readonly TARBALL_SIZE=39449628
readonly TARBALL_SHA256=0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1
readonly APT_SOURCE=qemu/bookworm-backports

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly CACHE=${BTMMU_QEMU_CACHE:-$here/.cache}
readonly SRC=$CACHE/src/qemu-$QEMU_VERSION
readonly SRC_STAMP=$SRC.stamp

log() { printf 'fetch.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Is $1 the expected tarball? Explains on stderr when it is not.
tarball_ok() {
    local size sum
    size=$(stat -c %s "$1")
    if [[ $size != "$TARBALL_SIZE" ]]; then
        log "$1: size $size, expected $TARBALL_SIZE"
        return 1
    fi
    sum=$(sha256sum "$1" | cut -d' ' -f1)
    if [[ $sum != "$TARBALL_SHA256" ]]; then
        log "$1: sha256 $sum, expected $TARBALL_SHA256"
        return 1
    fi
}

# Download $TARBALL into the cache with apt-get source.
download() {
    local dl out rc=0 f
    dl=$(mktemp -d "$CACHE/download.XXXXXX")
    # apt fetches as user _apt when it can write there.
    if [[ $(id -u) -eq 0 ]] && id _apt >/dev/null 2>&1; then
        chown _apt "$dl"
    fi
    log "downloading $TARBALL with apt-get source $APT_SOURCE"
    out=$(cd "$dl" && apt-get -q source --tar-only --download-only \
        "$APT_SOURCE" </dev/null 2>&1) || rc=$?
    printf '%s\n' "$out" >&2
    if ((rc != 0)); then
        rm -rf "$dl"
        if grep -q 'You must put some .deb-src' <<<"$out" ||
            grep -q 'Unable to find a source package' <<<"$out"; then
            die "no source package $APT_SOURCE: the bookworm-backports" \
                "deb-src entry or its package list is missing" \
                "(run adapters/qemu/deps.sh, which adds it and runs" \
                "apt-get update)"
        fi
        die "apt-get source $APT_SOURCE failed (exit $rc): $TARBALL" \
            "could not be downloaded from the Debian archive"
    fi
    if [[ ! -f $dl/$TARBALL ]]; then
        f=$(cd "$dl" && compgen -G 'qemu_*.orig.tar.*') || f=
        rm -rf "$dl"
        die "$APT_SOURCE did not provide $TARBALL" \
            "(it provided: ${f:-nothing}); QEMU $QEMU_VERSION's orig" \
            "tarball is no longer in bookworm-backports: put a copy of" \
            "$TARBALL (sha256 $TARBALL_SHA256) in $CACHE/"
    fi
    if ! tarball_ok "$dl/$TARBALL"; then
        rm -rf "$dl"
        die "downloaded $TARBALL does not match the expected size/sha256"
    fi
    mv -f "$dl/$TARBALL" "$CACHE/$TARBALL"
    rm -rf "$dl"
}

mkdir -p "$CACHE/src"
rm -rf "$CACHE"/download.*

if [[ -f $CACHE/$TARBALL ]]; then
    if ! tarball_ok "$CACHE/$TARBALL"; then
        log "discarding the bad cached $TARBALL"
        rm -f "$CACHE/$TARBALL"
    fi
fi
if [[ ! -f $CACHE/$TARBALL ]]; then
    download
else
    log "using cached $CACHE/$TARBALL"
fi

if [[ -f $SRC_STAMP && $(<"$SRC_STAMP") == "$TARBALL_SHA256" ]]; then
    log "pristine tree $SRC is up to date"
else
    log "unpacking $TARBALL into $SRC"
    rm -rf "$SRC" "$SRC.tmp" "$SRC_STAMP"
    mkdir -p "$SRC.tmp"
    tar -xJf "$CACHE/$TARBALL" -C "$SRC.tmp" --strip-components=1 \
        --no-same-owner
    [[ -f $SRC.tmp/VERSION ]] || die "$TARBALL has no VERSION file"
    v=$(<"$SRC.tmp/VERSION")
    [[ $v == "$QEMU_VERSION" ]] ||
        die "$TARBALL unpacks to QEMU '$v', expected $QEMU_VERSION"
    mv "$SRC.tmp" "$SRC"
    printf '%s\n' "$TARBALL_SHA256" >"$SRC_STAMP"
fi

printf '%s\n' "$SRC"
