#!/bin/bash
# proxy_splice.sh — server CPU per MiB of zerohttpd's reverse proxy for bodies of 128 KiB to
# 4 MiB, for several builds side by side (interleaved rounds): how docs/performance.md
# chose the splice threshold (ZH__UP_SPLICE_MIN in src/upstream_int.h).
#
#   bench/proxy_splice.sh NAME=ZEROHTTPD [NAME=ZEROHTTPD...]
#
# Each build is started as `--proxy /=...` on CPU 0 in turn; the upstream (the first build,
# serving files it writes to a scratch root) and wrk -c4 run on CPU 1. 127.0.0.1 ports
# 18092-18093; every process is stopped by PID. Prints: round, body size, build, requests,
# server CPU us per MiB and per request.
set -eu
[ $# -ge 1 ] || { sed -n '2,12p' "$0"; exit 2; }
HZ=$(getconf CLK_TCK)
root=$(mktemp -d)
for k in 128 256 512 1024 4096; do head -c $((k * 1024)) /dev/urandom >"$root/f$k.bin"; done
first=${1#*=}
taskset -c 1 "$first" --port 18092 --root "$root" --workers 1 >/dev/null 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null; rm -rf "$root"' EXIT
sleep 0.5
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in 1 2; do
	for k in 128 256 512 1024 4096; do
		for b in "$@"; do
			name=${b%%=*} bin=${b#*=}
			taskset -c 0 "$bin" --port 18093 --workers 1 --proxy /=http://127.0.0.1:18092 \
				>/dev/null 2>&1 &
			P=$!
			sleep 0.3
			taskset -c 1 wrk -t1 -c4 -d1 "http://127.0.0.1:18093/f$k.bin" >/dev/null 2>&1
			t0=$(ticks $P)
			out=$(taskset -c 1 wrk -t1 -c4 -d3 "http://127.0.0.1:18093/f$k.bin" 2>&1)
			t1=$(ticks $P)
			kill $P
			wait $P 2>/dev/null || true
			n=$(echo "$out" | awk '/requests in/ {print $1}')
			awk -v r="$round" -v k="$k" -v v="$name" -v n="$n" -v t=$((t1 - t0)) -v hz="$HZ" \
				'BEGIN { mib = n * k / 1024; printf "%d\t%dK\t%s\t%d req\t%.0f us/MiB\t%.1f us/req\n", r, k, v, n, t * 1e6 / hz / mib, t * 1e6 / hz / n }'
		done
	done
done
