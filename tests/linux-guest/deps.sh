#!/usr/bin/env bash
# Install what the Linux guest tests and the QEMU benchmark need, and set up
# the private i386 package view used to download the guest kernel and busybox.
# Installs only what is missing; safe to run again. apt-get runs through
# scripts/apt.sh: retried on a transient failure, and when apt-get update
# keeps failing the package lists there are are used if they have what is
# needed.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=SCRIPTDIR/../../scripts/apt.sh
. "$LG_DIR/../../scripts/apt.sh"

HOST_PKGS=(
    qemu-system-x86   # Debian's stock qemu-system-i386/x86_64 (configuration A, development)
    qemu-user         # qemu-i386: the user-mode limit in bench/qemu
    gcc               # workloads: gcc -m32 -static
    gcc-multilib
    libc6-dev-i386
    cpio              # initramfs
    xz-utils
    python3           # bench report (standard library only)
    gnuplot-nox       # bench plot (4 packages, much lighter than python3-matplotlib)
)

if [[ -n $(apt_missing "${HOST_PKGS[@]}") ]]; then
    apt_install_missing "${HOST_PKGS[@]}" || lg_die "could not install the host packages (above)"
else
    lg_log "host packages present"
fi

# Private i386 view of the archive (see lib.sh). The host has no i386
# architecture, so its apt knows nothing about linux-image-686.
mkdir -p "$LG_APT_DIR"/{lists/partial,cache/archives/partial,sources.list.d}
touch "$LG_APT_DIR/status"
: >"$LG_APT_DIR/sources.list.new"
if [[ -f /etc/apt/sources.list ]]; then
    grep -E '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list >>"$LG_APT_DIR/sources.list.new" || true
fi
mv "$LG_APT_DIR/sources.list.new" "$LG_APT_DIR/sources.list"
rm -f "$LG_APT_DIR"/sources.list.d/*
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    # binary indices only: drop deb-src from deb822 stanzas
    sed -E 's/^(Types:.*)[[:space:]]deb-src\b/\1/; s/^Types:[[:space:]]*deb-src[[:space:]]+deb\b/Types: deb/' "$f" >"$LG_APT_DIR/sources.list.d/${f##*/}"
done

lists_fresh() {
    [[ -n $(find "$LG_APT_DIR/lists" -maxdepth 1 -name '*_main_binary-i386_Packages*' -mmin -360 -print -quit) ]]
}
if [[ ${LG_FORCE_UPDATE:-0} != 1 ]] && lists_fresh; then
    lg_log "i386 package lists are recent"
else
    lg_log "updating the private i386 package lists"
    # Retried; a lasting partial failure (e.g. one index mid-sync) is
    # tolerated: what matters is that the packages below resolve.
    if ! apt_retry_cmd lg_apt_i386 apt-get update -q </dev/null; then
        lg_log "warning: apt-get update (i386 view) keeps failing; going on with the lists there are"
    fi
fi
for p in linux-image-686 busybox-static; do
    policy=$(lg_apt_i386 apt-cache policy "$p" 2>&1) || lg_die "apt-cache policy $p (i386 view) failed: $policy"
    cand=$(sed -n 's/^ *Candidate: //p' <<<"$policy")
    [[ -n $cand && $cand != "(none)" ]] || lg_die "$p (i386) is not available from the archive"
    lg_log "i386 $p: $cand"
done
lg_log "done"
