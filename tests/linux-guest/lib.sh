# shellcheck shell=bash disable=SC2034
# Common settings for the Linux guest scripts. Sourced, never run.

LG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LG_CACHE=${LG_CACHE:-$LG_DIR/.cache}
LG_BUILD=$LG_CACHE/build
LG_KERNEL_DIR=$LG_CACHE/kernel
LG_APT_DIR=$LG_CACHE/apt-i386

# The workloads, in the order "all" runs them. Each has workloads/NAME.c.
LG_WORKLOADS=(ptrchase randrmw qsort seqcopy lzcomp forktouch forkexec)

# Build outputs used by run.sh.
LG_KERNEL_IMAGE=$LG_BUILD/vmlinuz
LG_MB_IMAGE=$LG_BUILD/vmlinux-mb
LG_INITRD=$LG_BUILD/initramfs.cpio
LG_BIN=$LG_BUILD/bin

export DEBIAN_FRONTEND=noninteractive

lg_log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
lg_die() { lg_log "error: $*"; exit 1; }

# apt-get / apt-cache on a private i386-only view of the Debian archive:
# the host's sources, but lists and archives under .cache/apt-i386 and
# APT::Architectures=i386, so nothing on the host changes (no
# `dpkg --add-architecture i386`) and nothing is ever installed from it.
lg_apt_opts() {
    printf '%s\n' \
        -o "Dir::State::Lists=$LG_APT_DIR/lists" \
        -o "Dir::State::status=$LG_APT_DIR/status" \
        -o "Dir::Cache=$LG_APT_DIR/cache" \
        -o "Dir::Etc::SourceList=$LG_APT_DIR/sources.list" \
        -o "Dir::Etc::SourceParts=$LG_APT_DIR/sources.list.d" \
        -o "APT::Architecture=i386" \
        -o "APT::Architectures=i386" \
        -o "APT::Sandbox::User=root" \
        -o "DPkg::Lock::Timeout=900"
}

lg_apt_i386() { # lg_apt_i386 apt-get|apt-cache ARGS...
    local tool=$1
    shift
    local opts
    mapfile -t opts < <(lg_apt_opts)
    "$tool" "${opts[@]}" "$@"
}

# Seconds since the epoch with microseconds, without forking.
lg_now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
