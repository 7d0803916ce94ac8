#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Install what fetching and building QEMU 10.0.2 (TCG only, i386 and x86_64
# system emulation) needs on Debian 12, skipping what is already installed.
#
# - adds bookworm-backports (deb and deb-src) as
#   /etc/apt/sources.list.d/libbtmmu-backports.sources, unless another
#   sources entry already provides both;
# - runs apt-get update only when that file was added or changed, or when a
#   needed package list has not been downloaded;
# - installs the build dependencies from bookworm, meson and python3-pycotap
#   from bookworm-backports (QEMU 10 wants meson >= 1.5.0, pycotap >= 1.1.0,
#   bookworm has meson 1.0.1 and no pycotap), and the firmware the built
#   binaries load at run time (seabios, qemu-system-data, ipxe-qemu).
#
# Idempotent and non-interactive; needs root (or password-less sudo).
# apt-get runs through scripts/apt.sh: retried on a transient failure (and
# while another process holds the apt lists lock); when apt-get update keeps
# failing, the package lists there are are used if they have what is needed.

set -euo pipefail
# shellcheck source=SCRIPTDIR/../../scripts/apt.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../scripts/apt.sh"

readonly SOURCES_FILE=/etc/apt/sources.list.d/libbtmmu-backports.sources
readonly SUITE=bookworm
readonly BPO=bookworm-backports
readonly MESON_MIN=1.5.0
readonly PYCOTAP_MIN=1.1.0

# From bookworm: what the configure line in build.sh needs, plus the tools
# the scripts use. Not needed: pixman, libfdt (fdt is optional for x86),
# flex and bison (only for the dtc subproject), bzip2 (only for the edk2
# blobs, which the +ds tarball lacks). python3-venv gives configure's mkvenv
# the ensurepip module when python3-pip and python3-setuptools are absent.
readonly BUILD_PKGS=(
    gcc
    libc6-dev
    ninja-build
    pkgconf
    python3
    python3-venv
    libglib2.0-dev
    zlib1g-dev
    xz-utils
    patch
    rsync
)
# Firmware found through --firmwarepath at run time: SeaBIOS and its VGA
# BIOSes, QEMU's option ROMs (kvmvapic, linuxboot_dma, multiboot_dma...),
# iPXE ROMs for the NICs (the pc machine's default e1000 needs efi-e1000.rom).
readonly FIRMWARE_PKGS=(
    seabios
    qemu-system-data
    ipxe-qemu
)

log() { printf 'deps.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 ||
        die "must run as root (or with sudo) to install packages"
    SUDO=(sudo -n)
fi

APT_SUDO=${SUDO[*]}

# Index targets apt knows of, downloaded or not, one per line:
# "RELEASE IDENTIFIER TYPE SOURCESENTRY FILENAME", FILENAME without the
# compression suffix. Optional ones (binary-all) are left out.
list_targets() {
    apt-get indextargets --no-release-info "Optional: no" --format \
        "\$(RELEASE) \$(IDENTIFIER) \$(TARGET_OF) \$(SOURCESENTRY) \$(FILENAME)"
}

# --- 1. apt sources ----------------------------------------------------------

targets=$(list_targets)
awk -v r="$SUITE" '$1 == r && $2 == "Packages" { found = 1 } END { exit !found }' \
    <<<"$targets" ||
    die "no '$SUITE' deb entry in the apt sources: this script is for Debian 12"

need_update=0

# Entry types ("deb", "deb-src") for bookworm-backports in files not ours.
others=$(awk -v r="$BPO" -v f="$SOURCES_FILE:" \
    '$1 == r && index($4, f) != 1 { print $3 }' <<<"$targets" | sort -u)
wanted=()
grep -qx deb <<<"$others" || wanted+=(deb)
grep -qx deb-src <<<"$others" || wanted+=(deb-src)

if ((${#wanted[@]} == 0)); then
    if [[ -e $SOURCES_FILE ]]; then
        log "$BPO is configured elsewhere: removing $SOURCES_FILE"
        "${SUDO[@]}" rm -f "$SOURCES_FILE"
        need_update=1
    fi
elif [[ -n $others ]]; then
    # A second entry for the same suite must repeat the first one's options
    # (Signed-By...) or apt refuses both: leave that to the user.
    die "$BPO is configured in another sources file without" \
        "'${wanted[*]}': add '${wanted[*]}' to that entry's Types"
else
    content="# Added by libbtmmu adapters/qemu/deps.sh (meson, pycotap, QEMU source)
Types: ${wanted[*]}
URIs: http://deb.debian.org/debian
Suites: $BPO
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    if [[ ! -f $SOURCES_FILE || $(<"$SOURCES_FILE") != "$content" ]]; then
        log "writing $SOURCES_FILE"
        printf '%s\n' "$content" | "${SUDO[@]}" tee "$SOURCES_FILE" >/dev/null
        need_update=1
    fi
fi

if ((need_update == 0)); then
    # Lists we read (bookworm binaries, backports binaries and sources)
    # that have not been downloaded yet.
    missing_lists=$(awk -v a="$SUITE" -v b="$BPO" \
        '($1 == a && $2 == "Packages") ||
         ($1 == b && ($2 == "Packages" || $2 == "Sources")) { print $5 }' \
        <<<"$targets" | while read -r f; do
        compgen -G "$f*" >/dev/null || printf '%s ' "$f"
    done)
    if [[ -n $missing_lists ]]; then
        log "package lists missing: $missing_lists"
        need_update=1
    fi
fi
if ((need_update)); then
    # When it keeps failing, the installs below say whether the lists there
    # are have what is needed.
    apt_update || true
fi

# --- 2. packages -------------------------------------------------------------

readonly BPO_PKGS=("meson>=$MESON_MIN" "python3-pycotap>=$PYCOTAP_MIN")

mapfile -t missing < <(apt_missing "${BUILD_PKGS[@]}" "${FIRMWARE_PKGS[@]}")
if ((${#missing[@]})); then
    apt_install "${missing[@]}" || die "cannot install ${missing[*]}"
fi

mapfile -t missing < <(apt_missing "${BPO_PKGS[@]}")
if ((${#missing[@]})); then
    apt_install -t "$BPO" "${missing[@]}" || die "cannot install ${missing[*]} from $BPO"
fi

mapfile -t missing < <(apt_missing "${BUILD_PKGS[@]}" "${FIRMWARE_PKGS[@]}" \
    "${BPO_PKGS[@]}")
((${#missing[@]} == 0)) || die "still not installed (or too old): ${missing[*]}"
log "all dependencies are installed"
