#!/usr/bin/env bash
# make bench: wrk against zerohttpd's /plaintext and /json, c=64, plain and pipelined (16 per
# write). One worker pinned to CPU 0, wrk pinned to CPU 1, loopback only, 5 s per run.
# Prints req/s and the server's CPU time per request (utime+stime from /proc, so the figure
# does not depend on wrk being the bottleneck). For peers, use ../shared/bench/compare.sh.
export ZEROHTTPD_ALLOW_ROOT=1 # zerohttpd refuses root without --user unless told
set -euo pipefail
bin=${1:-build/zerohttpd}
port=${BENCH_PORT:-18090}
dur=${BENCH_DURATION:-5}
here=$(cd "$(dirname "$0")" && pwd)
command -v wrk >/dev/null || { echo "bench needs wrk: apt-get install wrk" >&2; exit 1; }

taskset -c 0 "$bin" --port "$port" --workers 1 --demo 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/plaintext" >/dev/null && break; sleep 0.1; done

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

run() { # name path depth
	local name=$1 path=$2 depth=$3 t0 t1 out reqs rps
	taskset -c 1 wrk -t1 -c64 -d1s -s "$here/pipeline.lua" "http://127.0.0.1:$port$path" -- "$depth" "$path" >/dev/null
	t0=$(ticks)
	out=$(taskset -c 1 wrk -t1 -c64 -d"${dur}s" -s "$here/pipeline.lua" "http://127.0.0.1:$port$path" -- "$depth" "$path")
	t1=$(ticks)
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
	if grep -q "Non-2xx" <<<"$out"; then echo "$name: non-2xx responses!" >&2; exit 1; fi
	awk -v n="$name" -v r="$rps" -v t=$((t1 - t0)) -v q="$reqs" -v hz="$hz" \
		'BEGIN { printf "| %-22s | %10s | %8.2f |\n", n, r, t / hz * 1e6 / q }'
}

echo "| scenario (c=64, 1 worker) | req/s | server CPU µs/req |"
echo "|---|---:|---:|"
run "plaintext" /plaintext 1
run "json" /json 1
run "plaintext pipelined x16" /plaintext 16
run "json pipelined x16" /json 16
