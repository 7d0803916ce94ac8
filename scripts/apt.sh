# shellcheck shell=sh disable=SC3043 # local: dash, bash and busybox sh have it
# SPDX-License-Identifier: MIT
#
# apt-get that survives a transient failure, shared by every script that
# installs Debian packages: setup, tests/guest/deps.sh,
# tests/linux-guest/deps.sh, adapters/qemu/deps.sh. Sourced, never run;
# POSIX sh (dash and bash), safe under set -eu and pipefail.
#
#   apt_missing SPEC...       print, one a line, the packages among SPEC
#                             ("name" or "name>=version") that are not
#                             installed, or installed at an older version
#   apt_retry ARGS...         apt-get ARGS, retried (see below)
#   apt_retry_cmd CMD ARGS... CMD ARGS (an apt-get with other options, say),
#                             retried the same way
#   apt_update                apt-get update, retried; when it still fails,
#                             says what failed and returns 1 (the lists that
#                             were downloaded are still usable)
#   apt_installable [-t REL] PKG...
#                             whether apt-get could install PKG... from the
#                             package lists there are (a simulation: needs
#                             no root, changes nothing)
#   apt_install [-t REL] PKG...
#                             install PKG... (--no-install-recommends),
#                             retried; returns 1, naming the packages, when
#                             they are not installable or still not installed
#   apt_install_missing [-t REL] SPEC...
#                             the usual sequence: nothing when every SPEC is
#                             installed; else apt_update (when it keeps
#                             failing, going on with the lists there are) and
#                             apt_install of the missing ones
#
# Retries: a command that fails (or an update that reports an index it
# could not fetch, which apt-get may do with exit status 0) is run again up
# to BTMMU_APT_TRIES times in all (default 4), after BTMMU_APT_PAUSE seconds
# (default 15), then twice that, and so on. While another process holds an
# apt or dpkg lock ("Could not get lock"), it waits BTMMU_APT_LOCK_PAUSE
# seconds (default 10) up to 90 times, without counting tries: the
# DPkg::Lock::Timeout option covers the dpkg lock, not the lists lock that
# apt-get update takes. A failed install that points at stale package lists
# (404, "run apt-get update") refreshes them before the next try.
#
# Variables the caller may set:
#   APT_PROG   the name in messages (default: the script's name)
#   APT_QUIET  apt-get's verbosity option (default -q; setup uses -qq)
#   APT_SUDO   prefix that runs apt-get as root (default: nothing as root,
#              else "sudo" where sudo exists)
# Messages go to standard error. APT_LAST_ERROR holds the error lines of
# the last command that failed for good.

APT_PROG=${APT_PROG:-${0##*/}}
APT_QUIET=${APT_QUIET:--q}
if [ -z "${APT_SUDO+set}" ]; then
	APT_SUDO=
	if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
		APT_SUDO=sudo
	fi
fi
APT_LAST_ERROR=

apt_log() {
	printf '%s: %s\n' "${APT_PROG:-${0##*/}}" "$*" >&2
}

# apt-get as root, non-interactive, waiting for the dpkg lock.
apt_get() {
	# shellcheck disable=SC2086 # APT_SUDO and APT_QUIET are meant to split
	${APT_SUDO-} env DEBIAN_FRONTEND=noninteractive apt-get ${APT_QUIET:--q} \
		-o DPkg::Lock::Timeout=900 "$@" </dev/null
}

# The lines of apt's output file $1 that say what failed.
apt__errors() {
	grep -E '^(E:|W: (Failed to fetch|Some index files failed)|Err:)' "$1" 2>/dev/null || true
}

# apt_retry_cmd CMD ARGS...: run CMD ARGS, retried as described above.
# Its standard error is shown after each attempt. Returns its last status.
apt_retry_cmd() {
	local tries pause try locked rc err errors between what
	what=$*
	if [ "$1" = apt_get ]; then
		what="apt-get ${what#apt_get }"
	fi
	tries=${BTMMU_APT_TRIES:-4}
	pause=${BTMMU_APT_PAUSE:-15}
	try=1
	locked=0
	between=${APT__BETWEEN:-}
	err=$(mktemp "${TMPDIR:-/tmp}/btmmu-apt.XXXXXX") || return 1
	while :; do
		rc=0
		"$@" 2>"$err" || rc=$?
		cat "$err" >&2
		errors=$(apt__errors "$err")
		if [ "$rc" -eq 0 ] && [ -z "$errors" ]; then
			rm -f "$err"
			APT_LAST_ERROR=
			return 0
		fi
		[ "$rc" -ne 0 ] || rc=1
		if grep -q 'Could not get lock' "$err" && [ "$locked" -lt 90 ]; then
			locked=$((locked + 1))
			apt_log "apt is locked by another process: waiting ${BTMMU_APT_LOCK_PAUSE:-10} s"
			sleep "${BTMMU_APT_LOCK_PAUSE:-10}"
			continue
		fi
		[ -n "$errors" ] || errors="exit status $rc"
		if [ "$try" -ge "$tries" ]; then
			break
		fi
		apt_log "'$what' failed (exit status $rc, attempt $try of $tries): trying again in $pause s"
		sleep "$pause"
		if [ -n "$between" ]; then
			"$between" "$err" || true
		fi
		try=$((try + 1))
		pause=$((pause * 2))
	done
	rm -f "$err"
	APT_LAST_ERROR=$errors
	apt_log "'$what' failed $tries times; the last errors:"
	printf '%s\n' "$errors" | sed 's/^/    /' >&2
	return "$rc"
}

apt_retry() {
	apt_retry_cmd apt_get "$@"
}

apt_update() {
	if apt_retry update; then
		return 0
	fi
	apt_log "warning: apt-get update keeps failing (above); going on with the package lists there are"
	return 1
}

apt_missing() {
	local spec name min out st v ver
	for spec in "$@"; do
		name=${spec%%>=*}
		min=${spec#"$name"}
		min=${min#>=}
		out=$(dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$name" 2>/dev/null) || out=
		ver=
		while read -r st v; do
			if [ "$st" = installed ] && [ -z "$ver" ]; then
				ver=$v
			fi
		done <<EOF
$out
EOF
		if [ -z "$ver" ]; then
			printf '%s\n' "$name"
		elif [ -n "$min" ] && ! dpkg --compare-versions "$ver" ge "$min"; then
			printf '%s\n' "$name"
		fi
	done
}

# Between two install attempts: refresh the lists when apt says they are
# stale (the mirror dropped the version they name).
apt__refresh_if_stale() {
	if grep -qE '404 +Not Found|apt-get update|--fix-missing' "$1"; then
		apt_log "the package lists look stale: apt-get update"
		apt_get update >/dev/null 2>&1 || true
	fi
}

apt_installable() {
	local rel out rc
	rel=
	if [ "${1:-}" = -t ]; then
		rel=$2
		shift 2
	fi
	rc=0
	# Not as root and without lock: a simulation reads the lists only.
	out=$(env DEBIAN_FRONTEND=noninteractive apt-get -s -q --no-install-recommends \
		${rel:+-t "$rel"} install "$@" </dev/null 2>&1 >/dev/null) || rc=$?
	if [ "$rc" -ne 0 ]; then
		APT_LAST_ERROR=$out
		return 1
	fi
	return 0
}

apt__need_root() {
	if [ "$(id -u)" -ne 0 ] && [ -z "${APT_SUDO-}" ]; then
		apt_log "error: need root (or sudo) to install: $*"
		return 1
	fi
}

apt_install() {
	local rel still rc
	rel=
	if [ "${1:-}" = -t ]; then
		rel=$2
		shift 2
	fi
	[ $# -gt 0 ] || return 0
	apt__need_root "$@" || return 1
	if ! apt_installable ${rel:+-t "$rel"} "$@"; then
		apt_log "error: cannot install $*${rel:+ from $rel}: apt-get cannot resolve them from the package lists:"
		printf '%s\n' "${APT_LAST_ERROR-}" | sed 's/^/    /' >&2
		return 1
	fi
	apt_log "installing $*${rel:+ from $rel}"
	rc=0
	APT__BETWEEN=apt__refresh_if_stale
	apt_retry install -y --no-install-recommends ${rel:+-t "$rel"} "$@" || rc=$?
	APT__BETWEEN=
	still=$(apt_missing "$@" | tr '\n' ' ')
	still=${still% }
	if [ -n "$still" ]; then
		apt_log "error: could not install: $still"
		return 1
	fi
	if [ "$rc" -ne 0 ]; then
		apt_log "warning: apt-get install reported errors, but $* are installed"
	fi
	return 0
}

apt_install_missing() {
	local rel missing update_failed
	rel=
	if [ "${1:-}" = -t ]; then
		rel=$2
		shift 2
	fi
	missing=$(apt_missing "$@" | tr '\n' ' ')
	missing=${missing% }
	[ -n "$missing" ] || return 0
	apt__need_root "$missing" || return 1
	update_failed=
	apt_update || update_failed=${APT_LAST_ERROR:-failed}
	# shellcheck disable=SC2086 # package names split on blanks
	if ! apt_install ${rel:+-t "$rel"} $missing; then
		if [ -n "$update_failed" ]; then
			apt_log "(the package lists may be stale or incomplete: apt-get update failed with:)"
			printf '%s\n' "$update_failed" | sed 's/^/    /' >&2
		fi
		return 1
	fi
	# Installed, but maybe older than a SPEC asks.
	missing=$(apt_missing "$@" | tr '\n' ' ')
	missing=${missing% }
	if [ -n "$missing" ]; then
		apt_log "error: installed, but older than required: $missing (wanted: $*)"
		return 1
	fi
}
