#!/bin/bash
# SPDX-License-Identifier: MIT
# scripts/apt.sh survives transient apt-get failures. A fake apt-get (with
# dpkg-query and sudo) first on PATH fails the first N times, or always,
# or reports a held lock; the helper must retry, go on when apt-get update
# keeps failing but the packages are installable, and fail naming the
# packages when they are not. `./setup --deps-only` runs against the same
# fakes. Needs no network; never runs the real apt-get nor touches the apt
# or dpkg state (only `dpkg --compare-versions`, which reads nothing).
# Exit status 0 pass, 1 fail, 77 skip (no dpkg: not Debian).
# shellcheck disable=SC2016 # the test scripts are single-quoted on purpose
set -uo pipefail
srcdir=${srcdir:-$(dirname "$0")/..}
srcdir=$(cd "$srcdir" && pwd)
helper=$srcdir/scripts/apt.sh
[ -f "$helper" ] || { echo "$helper not found"; exit 1; }
command -v dpkg >/dev/null || { echo "dpkg not found (not Debian): skip"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fake=$tmp/bin
mkdir -p "$fake"

# apt-get: calls logged in $FAKE_STATE/calls, "installs" recorded in
# $FAKE_STATE/installed. FAKE_UPDATE_FAIL / FAKE_INSTALL_FAIL: N (the first
# N calls fail) or "always"; FAKE_UPDATE_WARN: N first updates exit 0 with
# an index that failed; FAKE_LOCKED: N first updates find the lists locked;
# FAKE_UNAVAILABLE: packages no list has.
cat >"$fake/apt-get" <<'EOF'
#!/bin/bash
st=${FAKE_STATE:?}
echo "apt-get $*" >>"$st/calls"
sim=0 cmd= pkgs=()
while (($#)); do
	case $1 in
	-o | -t) shift ;;
	-s) sim=1 ;;
	update | install) cmd=$1 ;;
	-*) ;;
	*) pkgs+=("$1") ;;
	esac
	shift
done
bump() { local n; n=$(cat "$st/$1.n" 2>/dev/null || echo 0); echo $((n + 1)) >"$st/$1.n"; echo $((n + 1)); }
fails() { [[ $1 == always ]] || (($2 <= $1)); }
case $cmd in
update)
	n=$(bump update)
	if fails "${FAKE_LOCKED:-0}" "$n"; then
		echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
		exit 100
	fi
	n=$(bump update-unlocked)
	if fails "${FAKE_UPDATE_FAIL:-0}" "$n"; then
		echo "E: Failed to fetch http://mirror.invalid/debian/dists/bookworm/main/binary-amd64/Packages.xz  File has unexpected size (1234 != 5678). Mirror sync in progress?" >&2
		exit 100
	fi
	if fails "${FAKE_UPDATE_WARN:-0}" "$n"; then
		echo "W: Failed to fetch http://mirror.invalid/debian/dists/bookworm-updates/InRelease  Temporary failure resolving 'mirror.invalid'" >&2
		echo "W: Some index files failed to download. They have been ignored, or old ones used instead." >&2
	fi
	exit 0
	;;
install)
	for p in "${pkgs[@]}"; do
		if [[ " ${FAKE_UNAVAILABLE:-} " == *" $p "* ]]; then
			echo "E: Unable to locate package $p" >&2
			exit 100
		fi
	done
	((sim == 0)) || exit 0
	n=$(bump install)
	if fails "${FAKE_INSTALL_FAIL:-0}" "$n"; then
		echo "E: Failed to fetch http://mirror.invalid/debian/pool/main/${pkgs[0]}.deb  Connection timed out" >&2
		exit 100
	fi
	printf '%s\n' "${pkgs[@]}" >>"$st/installed"
	exit 0
	;;
esac
echo "fake apt-get: unexpected arguments" >&2
exit 2
EOF
# dpkg-query -W -f=FORMAT NAME: "installed VERSION" for what is installed
# ($FAKE_STATE/installed, version 1.0), else the real tool's error.
cat >"$fake/dpkg-query" <<'EOF'
#!/bin/bash
name=${!#}
if grep -qx -- "$name" "${FAKE_STATE:?}/installed" 2>/dev/null; then
	echo "installed 1.0"
	exit 0
fi
echo "dpkg-query: no packages found matching $name" >&2
exit 1
EOF
printf '#!/bin/sh\nexec "$@"\n' >"$fake/sudo"
chmod +x "$fake"/*
export PATH=$fake:$PATH
if [ "$(command -v apt-get)" != "$fake/apt-get" ] || [ "$(command -v dpkg-query)" != "$fake/dpkg-query" ]; then
	echo "the fakes are not first on PATH: not running (the real apt-get would be)"
	exit 1
fi
export BTMMU_APT_PAUSE=0 BTMMU_APT_LOCK_PAUSE=0 APT_PROG=apt-retry

n=0
failures=0
# check DESCRIPTION SHELL SCRIPT [VAR=VALUE...]: run SCRIPT (after sourcing the
# helper, under set -eu) in a fresh state with the fakes; SCRIPT's own
# checks end with `exit 1` on a mismatch. Its stderr is in $st/err.
check() {
	local what=$1 sh=$2 script=$3 rc=0
	shift 3
	n=$((n + 1))
	st=$tmp/state$n
	mkdir -p "$st"
	: >"$st/installed"
	env FAKE_STATE="$st" HELPER="$helper" SRCDIR="$srcdir" "$@" \
		"$sh" -c 'set -eu; . "$HELPER"; st=$FAKE_STATE; '"$script" >"$st/out" 2>"$st/err" || rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "ok $n - $what ($sh)"
	else
		echo "not ok $n - $what ($sh, exit $rc)"
		sed 's/^/#   /' "$st/out" "$st/err"
		[ ! -f "$st/calls" ] || sed 's/^/#   call: /' "$st/calls"
		failures=$((failures + 1))
	fi
}

# Shared snippets: $st/<what>.n is the number of calls of that kind.
calls='c() { cat "$st/$1.n" 2>/dev/null || echo 0; }; '
installed='inst() { for p; do grep -qx "$p" "$st/installed" || return 1; done; }; '

shells=(bash)
# The helper is POSIX sh: tests/guest/deps.sh sources it under /bin/sh.
[ "$(readlink -f /bin/sh)" = "$(readlink -f "$(command -v bash)")" ] || shells+=(sh)

for sh in "${shells[@]}"; do
	check "update failing twice succeeds on the third try" "$sh" "$calls"'
		apt_update
		[ "$(c update)" = 3 ] || exit 1' FAKE_UPDATE_FAIL=2

	check "an update that exits 0 but could not fetch an index is retried" "$sh" "$calls"'
		apt_update
		[ "$(c update)" = 2 ] || exit 1' FAKE_UPDATE_WARN=1

	check "lists lock: waited for, not counted as a try" "$sh" "$calls"'
		apt_update
		[ "$(c update)" = 6 ] || exit 1
		grep -q "locked by another process" "$st/err" || exit 1' FAKE_LOCKED=5 BTMMU_APT_TRIES=2

	check "update keeps failing, packages installable: installed anyway" "$sh" "$calls$installed"'
		apt_install_missing foo bar
		[ "$(c update)" = 4 ] || exit 1
		inst foo bar || exit 1
		grep -q "apt-get update keeps failing" "$st/err" || exit 1' FAKE_UPDATE_FAIL=always

	check "update keeps failing, a package not installable: fails naming it" "$sh" "$calls"'
		rc=0
		apt_install_missing foo bar || rc=$?
		[ "$rc" -ne 0 ] || exit 1
		[ "$(c install)" = 0 ] || exit 1
		grep -q "cannot install foo bar" "$st/err" || exit 1
		grep -q "Unable to locate package bar" "$st/err" || exit 1
		grep -q "Mirror sync in progress" "$st/err" || exit 1' FAKE_UPDATE_FAIL=always FAKE_UNAVAILABLE=bar

	check "install failing twice succeeds on the third try" "$sh" "$calls$installed"'
		apt_install_missing foo
		[ "$(c install)" = 3 ] || exit 1
		inst foo || exit 1' FAKE_INSTALL_FAIL=2

	check "install failing every time: fails naming the package" "$sh" "$calls"'
		rc=0
		apt_install_missing foo || rc=$?
		[ "$rc" -ne 0 ] && [ "$(c install)" = 3 ] || exit 1
		grep -q "could not install: foo" "$st/err" || exit 1' FAKE_INSTALL_FAIL=always BTMMU_APT_TRIES=3

	check "nothing missing: apt-get never runs" "$sh" '
		echo foo >"$st/installed"
		apt_install_missing foo
		[ ! -e "$st/calls" ] || exit 1'

	check "apt_missing: absent, installed, and version constraints" "$sh" '
		echo foo >"$st/installed"
		[ "$(apt_missing foo bar "foo>=0.9" "foo>=2.0")" = "bar
foo" ] || exit 1
		apt_missing foo >/dev/null'

	check "version constraint still unmet after installing: fails" "$sh" '
		rc=0
		apt_install_missing "foo>=2.0" || rc=$?
		[ "$rc" -ne 0 ] || exit 1
		grep -q "older than required: foo" "$st/err" || exit 1'

	check "sourced with APT_PROG=NAME prefixed, under set -u: messages still work" "$sh" '
		unset APT_PROG
		APT_PROG=name . "$HELPER"
		apt_log hello
		apt_install_missing foo
		grep -q "installing foo" "$st/err" || exit 1'

	check "apt_install -t RELEASE passes the release on" "$sh" '
		apt_install -t bookworm-backports foo
		grep -q -- "-t bookworm-backports install foo" "$st/calls" || exit 1'
done

check "./setup --deps-only installs what is missing through failures" bash '
	"$SRCDIR/setup" --deps-only
	for p in $("$SRCDIR/setup" --print-deps); do grep -qx "$p" "$st/installed" || exit 1; done
	[ "$(cat "$st/update.n")" = 2 ] && [ "$(cat "$st/install.n")" = 2 ] || exit 1' \
	FAKE_UPDATE_FAIL=1 FAKE_INSTALL_FAIL=1

check "./setup --deps-only fails naming what it cannot install" bash '
	rc=0
	"$SRCDIR/setup" --deps-only || rc=$?
	[ "$rc" -ne 0 ] || exit 1
	grep -q "cannot install .*check" "$st/err" || exit 1' \
	FAKE_UPDATE_FAIL=always FAKE_UNAVAILABLE=check BTMMU_APT_TRIES=2

echo "apt-retry: $((n - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
