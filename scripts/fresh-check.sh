#!/usr/bin/env bash
# make fresh-check: do the README's two commands pass on a fresh Debian 12 that has nothing but
# a minbase root plus gcc, make, libc6-dev, git and ca-certificates? The developer's machine
# cannot tell: its procps, curl or strace hide a missing step in scripts/deps.sh (issue 11:
# `make test` needed pgrep, which nothing installs).
#
# As root:
#  1. pristine root: debootstrap --variant=minbase bookworm from the Debian mirror this host's
#     apt uses, then `apt-get install --no-install-recommends` of those five packages; kept as
#     a tarball in ZH_FRESH_CACHE (default /var/cache/zerohttp-fresh), made anew when older
#     than a week or when ZH_FRESH_REBUILD=1;
#  2. each run, in a private mount namespace: unpacks a throwaway copy, mounts /proc, /sys,
#     /dev, /dev/pts and a fresh /dev/shm, clones this repository's committed HEAD (not the
#     work tree's uncommitted changes) into /root/zerohttp, and, as root in the chroot:
#     `make run` in the background until GET /, /plaintext and /json answer on
#     127.0.0.1:8080, then SIGTERM to the server's PID (make must then exit 0); then
#     `make test` in the foreground. A process the chroot still holds after either command
#     is a failure (a test that did not stop what it started).
# Whatever happens, the EXIT trap kills what runs inside the copy (by PID), unmounts it and
# removes it. Prints each phase's time; exits non-zero on any failure.
#
# The chroot shares the host's network namespace (its loopback too): the check fails at once if
# something already listens on 127.0.0.1:8080 rather than test someone else's server.
set -euo pipefail

SUITE=bookworm
PKGS="gcc make libc6-dev git ca-certificates"
PORT=8080
CACHE=${ZH_FRESH_CACHE:-/var/cache/zerohttp-fresh}
RUN_TIMEOUT=${ZH_FRESH_RUN_TIMEOUT:-1800}     # make run: deps, build, until it serves (s)
TEST_TIMEOUT=${ZH_FRESH_TEST_TIMEOUT:-3600}   # make test (s)
STOP_TIMEOUT=30                               # SIGTERM -> exit of make run's server (s)
# the environment of a root login on the fresh machine; nothing of the caller's leaks in
CHROOT_ENV=(HOME=/root USER=root LOGNAME=root SHELL=/bin/bash
	    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)

die() { echo "fresh-check: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount): run it with sudo"
REPO=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)

# Everything below mounts: do it in a mount namespace of its own, so no mount ever propagates
# to the host, and a SIGKILLed check leaves no mount behind (only a directory).
if [ -z "${ZH_FRESH_NS:-}" ]; then
	command -v unshare >/dev/null || die "unshare (util-linux) not found"
	ZH_FRESH_NS=1 exec unshare --mount --propagation private "$0" "$@"
fi

# ---- phases and their times ---------------------------------------------------------------
TIMES=()
PHASE=""
T_PHASE=0
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
phase() {               # phase NAME: ends the current phase (if any) and starts NAME
	phase_end
	PHASE=$1
	T_PHASE=$(now_ms)
	echo "== fresh-check: $PHASE"
}
phase_end() {
	[ -n "$PHASE" ] || return 0
	local ms=$(( $(now_ms) - T_PHASE ))
	TIMES+=("$(printf '%-66s %5d.%d s' "$PHASE" $(( ms / 1000 )) $(( ms % 1000 / 100 )))")
	echo "== fresh-check: $PHASE: $(( ms / 1000 )).$(( ms % 1000 / 100 )) s"
	PHASE=""
}
T_START=$(now_ms)

# ---- clean-up: every directory made here is in CLEAN_DIRS ---------------------------------
CLEAN_DIRS=()

# PIDs of the processes whose root directory is $1 or below it (the chroot's processes)
procs_in() {
	local p r
	for p in /proc/[0-9]*; do
		r=$(readlink "$p/root" 2>/dev/null) || continue
		case "$r" in "$1" | "$1"/*) echo "${p#/proc/}" ;; esac
	done
}
describe_procs() {
	local pid
	for pid in "$@"; do
		printf '  pid %s: %s\n' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
	done
}
kill_procs_in() {
	local pids
	for _ in $(seq 50); do
		pids=$(procs_in "$1")
		[ -n "$pids" ] || return 0
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		sleep 0.1
	done
	echo "fresh-check: still running in $1:" >&2
	# shellcheck disable=SC2046
	describe_procs $(procs_in "$1") >&2
	return 1
}
# mount points at or below $1, deepest first
mounts_in() {
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print length($5), $5 }' \
		/proc/self/mountinfo | sort -rn | cut -d' ' -f2-
}
unmount_in() {
	local m
	for m in $(mounts_in "$1"); do
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done
	[ -z "$(mounts_in "$1")" ]
}
remove_dir() {
	[ -d "$1" ] || return 0
	local ok=0
	kill_procs_in "$1" || ok=1
	if ! unmount_in "$1"; then
		echo "fresh-check: could not unmount under $1; left in place" >&2
		return 1
	fi
	# --one-file-system: never descend into a mount (such as a bind of the host's /dev)
	rm -rf --one-file-system "$1"
	return $ok
}
cleanup() {
	local rc=$? d
	set +e
	trap - EXIT INT TERM
	phase_end
	if [ ${#CLEAN_DIRS[@]} -gt 0 ]; then
		PHASE="clean-up (kill, unmount, remove)"
		T_PHASE=$(now_ms)
		for d in "${CLEAN_DIRS[@]}"; do
			remove_dir "$d" || rc=1
		done
		phase_end
	fi
	echo
	echo "== fresh-check: times"
	printf '  %s\n' "${TIMES[@]}"
	local ms=$(( $(now_ms) - T_START ))
	printf '  %-66s %5d.%d s\n' "total" $(( ms / 1000 )) $(( ms % 1000 / 100 ))
	if [ "$rc" = 0 ]; then
		echo "fresh-check: PASS ($HEAD_DESC)"
	else
		echo "fresh-check: FAIL (exit $rc)${HEAD_DESC:+ ($HEAD_DESC)}" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the mirror: this host's apt sources for bookworm (apt parses them, both formats) -----
# prints "URI SUITE" for bookworm, bookworm-updates and bookworm-security, main component
host_sources() {
	# shellcheck disable=SC2016 # $(SITE) is apt's field, not the shell's
	apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' |
		awk -v s="$SUITE" '$3 == "main" && ($2 == s || $2 == s "-updates" ||
			$2 == s "-security") && !seen[$1 " " $2]++ { print $1, $2 }'
}

mount_chroot() {
	mount -t proc proc "$1/proc"
	mount -t sysfs sysfs "$1/sys"
	mount --bind /dev "$1/dev"
	mount --bind /dev/pts "$1/dev/pts"
	# a /dev/shm of its own: whatever the tests put there never reaches the host's
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$1/dev/shm"
}
in_chroot() {           # in_chroot ROOT COMMAND...: as root, in a login's clean environment
	local root=$1
	shift
	chroot "$root" /usr/bin/env -i "${CHROOT_ENV[@]}" "$@"
}

# the pristine root: debootstrap, then the README's five packages, then a tarball
build_pristine() {
	local tarball=$1 mirror=$2 dir build
	dir=$(mktemp -d "$CACHE/build.XXXXXX")
	CLEAN_DIRS+=("$dir")
	build=$dir/root
	mkdir -m 755 "$build"   # a root directory, not mktemp's 0700 (apt's _apt user reads it)
	echo "fresh-check: debootstrap --variant=minbase $SUITE from $mirror (a few minutes)"
	debootstrap --variant=minbase "$SUITE" "$build" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
		{ tail -30 "$dir/debootstrap.log" >&2; die "debootstrap failed"; }
	host_sources | while read -r uri suite; do
		echo "deb $uri $suite main"
	done >"$build/etc/apt/sources.list"
	# as on an installed machine: loopback names resolve, DNS reaches the mirror
	cp /etc/resolv.conf "$build/etc/resolv.conf"
	grep -qw localhost "$build/etc/hosts" 2>/dev/null ||
		printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
			>"$build/etc/hosts"
	mount_chroot "$build"
	in_chroot "$build" apt-get update -qq
	# shellcheck disable=SC2086
	in_chroot "$build" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
	in_chroot "$build" apt-get clean
	unmount_in "$build" || die "could not unmount $build"
	tar -C "$build" --numeric-owner -cf "$dir/root.tar" .
	mv "$dir/root.tar" "$tarball"
	remove_dir "$dir"
}

# ---- 0: preconditions ---------------------------------------------------------------------
phase "preconditions"
need=""
command -v debootstrap >/dev/null || need="$need debootstrap"
command -v curl >/dev/null || need="$need curl"
if [ -n "$need" ]; then
	echo "fresh-check: installing$need on this host"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need \
		>/dev/null
fi
HEAD_SHA=$(git -C "$REPO" rev-parse HEAD)
HEAD_DESC="$(git -C "$REPO" log -1 --format='%h %s' HEAD | cut -c1-70)"
echo "fresh-check: checking commit $HEAD_DESC"
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] ||
	echo "fresh-check: note: uncommitted changes in $REPO are not part of the check"
# something on 127.0.0.1:8080 would answer in place of make run's server (shared loopback)
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
	die "127.0.0.1:$PORT is in use on this host; make run inside the chroot could not own it"
fi
MIRROR=$(host_sources | awk -v s="$SUITE" '$2 == s { print $1; exit }')
[ -n "$MIRROR" ] || die "this host's apt has no Debian $SUITE main source to bootstrap from"
ARCH=$(dpkg --print-architecture)
mkdir -p "$CACHE"
CACHE=$(realpath "$CACHE")   # procs_in compares /proc/PID/root with paths below it
TARBALL="$CACHE/$SUITE-minbase-$ARCH-$(echo "$MIRROR $PKGS" | sha1sum | cut -c1-10).tar"

# ---- 1: the pristine root (cached) --------------------------------------------------------
exec 9>"$CACHE/.lock"
flock 9                 # two checks at once build the tarball once
if [ -n "${ZH_FRESH_REBUILD:-}" ] || [ ! -f "$TARBALL" ] ||
		[ -n "$(find "$TARBALL" -mtime +7)" ]; then
	phase "pristine root: debootstrap + $PKGS"
	build_pristine "$TARBALL" "$MIRROR"
else
	phase "pristine root: cached $(basename "$TARBALL")"
fi
flock -u 9
exec 9>&-               # no chroot process inherits the lock's fd

# ---- 2: a throwaway copy with the clone of HEAD -------------------------------------------
phase "unpack a throwaway copy, mount, clone HEAD"
WORK=$(mktemp -d "$CACHE/run.XXXXXX")
CLEAN_DIRS+=("$WORK")
ROOT=$WORK/root
mkdir "$ROOT"
tar -C "$ROOT" --numeric-owner -xpf "$TARBALL"
chmod 755 "$ROOT"
# never start a packaged service (prometheus' postinst) on the host's shared loopback:
# invoke-rc.d asks this hook, the documented way for chroots (invoke-rc.d(8))
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount_chroot "$ROOT"
git clone -q --no-local "$REPO" "$ROOT/root/zerohttp"
git -C "$ROOT/root/zerohttp" checkout -q --detach "$HEAD_SHA" ||
	die "the clone has no commit $HEAD_SHA"

# ---- 3: make run, in the background until it serves ---------------------------------------
phase "make run (deps.sh, build, until it serves)"
RUN_LOG=$WORK/make-run.log
in_chroot "$ROOT" /bin/bash -c 'cd /root/zerohttp && exec make run' </dev/null >"$RUN_LOG" 2>&1 &
MAKE_PID=$!
deadline=$(( SECONDS + RUN_TIMEOUT ))
next_note=$(( SECONDS + 60 ))
served=""
while [ -z "$served" ]; do
	if ! kill -0 "$MAKE_PID" 2>/dev/null; then
		tail -40 "$RUN_LOG" >&2
		die "make run exited before it served 127.0.0.1:$PORT"
	fi
	[ "$SECONDS" -lt "$deadline" ] || { tail -40 "$RUN_LOG" >&2; die "make run did not serve within ${RUN_TIMEOUT}s"; }
	if [ "$(curl -s --noproxy '*' --max-time 2 "http://127.0.0.1:$PORT/plaintext" 2>/dev/null)" \
			= "Hello, World!" ]; then
		served=1
	else
		if [ "$SECONDS" -ge "$next_note" ]; then
			echo "  ... $(tail -1 "$RUN_LOG" | cut -c1-100)"
			next_note=$(( SECONDS + 60 ))
		fi
		sleep 1
	fi
done

phase "make run: GET /, /plaintext, /json; stop by PID"
# the server: the one process named zerohttpd inside the copy (found in /proc by its root
# directory: no procps there, and /proc/PID/task/*/children needs CONFIG_PROC_CHILDREN)
SERVER_PID=""
for p in $(procs_in "$ROOT"); do
	if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = zerohttpd ]; then
		[ -z "$SERVER_PID" ] || die "more than one zerohttpd under make run"
		SERVER_PID=$p
	fi
done
[ -n "$SERVER_PID" ] || die "no zerohttpd process in the chroot under make run"
fail=""
check() {               # check PATH EXPECTED-STATUS [EXPECTED-BODY]
	local out status body
	out=$(curl -s --noproxy '*' --max-time 10 -w '\n%{http_code}' "http://127.0.0.1:$PORT$1") ||
		{ echo "  GET $1: curl failed" >&2; fail=1; return; }
	status=${out##*$'\n'}
	body=${out%$'\n'*}
	if [ "$status" != "$2" ] || { [ $# -gt 2 ] && [ "$body" != "$3" ]; }; then
		echo "  GET $1: $status $(printf %s "$body" | head -c 200) (expected $2 ${3:-})" >&2
		fail=1
	else
		echo "  GET $1: $status $(printf %s "$body" | head -c 60 | tr '\n' ' ')"
	fi
}
check / 200
check /plaintext 200 "Hello, World!"
check /json 200 '{"message":"Hello, World!"}'
kill -TERM "$SERVER_PID"
for _ in $(seq $(( STOP_TIMEOUT * 10 ))); do
	kill -0 "$MAKE_PID" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$MAKE_PID" 2>/dev/null; then
	die "make run did not exit within ${STOP_TIMEOUT}s of SIGTERM to zerohttpd (pid $SERVER_PID)"
fi
run_rc=0
wait "$MAKE_PID" || run_rc=$?
if [ "$run_rc" != 0 ]; then
	tail -20 "$RUN_LOG" >&2
	die "make run exited with status $run_rc after SIGTERM to its server"
fi
left=$(procs_in "$ROOT")
if [ -n "$left" ]; then
	echo "fresh-check: make run left processes running:" >&2
	# shellcheck disable=SC2086
	describe_procs $left >&2
	fail=1
fi
[ -z "$fail" ] || die "make run did not serve as the README says"

# ---- 4: make test -------------------------------------------------------------------------
phase "make test"
# output to a file, shown by tail: a pipe to tee would wait for EOF from every process that
# inherited it, a server a failed test left running included
TEST_LOG=$WORK/make-test.log
timeout --kill-after=30 "$TEST_TIMEOUT" \
	chroot "$ROOT" /usr/bin/env -i "${CHROOT_ENV[@]}" /bin/bash -c 'cd /root/zerohttp && make test' \
	</dev/null >"$TEST_LOG" 2>&1 &
TEST_PID=$!
tail -n +1 -f --pid="$TEST_PID" "$TEST_LOG" &
TAIL_PID=$!
test_rc=0
wait "$TEST_PID" || test_rc=$?     # the wait builtin, unlike a foreground command, lets a
wait "$TAIL_PID" || true           # SIGTERM to this script run the trap at once
left=$(procs_in "$ROOT")
if [ -n "$left" ]; then
	echo "fresh-check: make test left processes running:" >&2
	# shellcheck disable=SC2086
	describe_procs $left >&2
fi
[ "$test_rc" = 0 ] || die "make test failed (exit $test_rc)"
[ -z "$left" ] || die "make test did not stop every process it started"
phase_end
