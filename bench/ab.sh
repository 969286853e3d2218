#!/bin/bash
# ab.sh — alternating A/B of zerohttpd command lines on one path: wrk c=64 for 4 s per run,
# server on CPU 0, wrk on CPU 1, CPU per request from /proc (utime+stime).
#   bench/ab.sh PATH ROUNDS "build/zerohttpd --demo" "build/zerohttpd --demo --no-metrics" ...
export ZEROHTTPD_ALLOW_ROOT=1 # zerohttpd refuses root without --user unless told
set -euo pipefail
path=$1 rounds=$2
shift 2
port=${BENCH_PORT:-18090}
for _ in $(seq "$rounds"); do
	for cmd in "$@"; do
		# shellcheck disable=SC2086
		taskset -c 0 $cmd --port "$port" --workers 1 2>/dev/null &
		pid=$!
		for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/plaintext" >/dev/null && break; sleep 0.1; done
		taskset -c 1 wrk -t1 -c64 -d1s "http://127.0.0.1:$port$path" >/dev/null
		t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
		out=$(taskset -c 1 wrk -t1 -c64 -d4s "http://127.0.0.1:$port$path")
		t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
		req=$(awk '/requests in/ {print $1}' <<<"$out")
		awk -v c="$cmd" -v t=$((t1 - t0)) -v r="$req" -v hz="$(getconf CLK_TCK)" \
			'BEGIN { printf "%-40s %.3f us/req %.0f req/s\n", c, t / hz * 1e6 / r, r / 4 }'
		kill "$pid"
		wait "$pid" 2>/dev/null || true
	done
done
