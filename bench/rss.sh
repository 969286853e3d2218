#!/usr/bin/env bash
# bench/rss.sh [BINARY] — resident memory of one zerohttpd worker after the compare.sh load.
# Starts BINARY (default build/zerohttpd) with --workers 1 on 127.0.0.1, makes the benchmark
# root with ../shared/bench/mkroot.sh (or uses $RSS_ROOT), runs wrk over the scenarios of
# compare.sh with its connection counts (plaintext, pipeline x16, json, jsonlist, static4k
# c=64; static1m c=16; static100m c=4), RSS_SECONDS (default 2) each, then prints VmRSS and
# the Rss of each mapping from /proc/PID/smaps. The server is stopped by PID on any exit.
# Extra server flags: RSS_FLAGS. Port: RSS_PORT (default 18095).
export ZEROHTTPD_ALLOW_ROOT=1 # zerohttpd refuses root without --user unless told
set -euo pipefail
bin=${1:-build/zerohttpd}
port=${RSS_PORT:-18095}
secs=${RSS_SECONDS:-2}
here=$(cd "$(dirname "$0")" && pwd)
command -v wrk >/dev/null || { echo "rss.sh needs wrk: apt-get install wrk" >&2; exit 1; }
root=${RSS_ROOT:-}
if [ -z "$root" ]; then
	mk=$here/../../shared/bench/mkroot.sh
	[ -x "$mk" ] || mk=/work/shared/bench/mkroot.sh
	root=$("$mk" /tmp/zh-rss-root)
fi

# shellcheck disable=SC2086
"$bin" --address 127.0.0.1 --port "$port" --root "$root" --workers 1 ${RSS_FLAGS:-} 2>/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true' EXIT
up=
for _ in $(seq 50); do
	curl -sf "http://127.0.0.1:$port/plaintext" >/dev/null && { up=1; break; }
	sleep 0.1
done
[ -n "$up" ] || { echo "server did not come up on port $port" >&2; exit 1; }

rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
echo "VmRSS after start: $(rss) kB"

run() { # name path conns depth
	local out
	out=$(wrk -t1 -c"$3" -d"${secs}s" --timeout 10s -s "$here/pipeline.lua" \
		"http://127.0.0.1:$port$2" -- "$4" "$2")
	printf '%-11s c=%-3s %10s req/s  VmRSS %s kB\n' "$1" "$3" \
		"$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")" "$(rss)"
	if grep -q "Non-2xx" <<<"$out"; then echo "$1: non-2xx responses" >&2; exit 1; fi
}
run plaintext /plaintext 64 1
run pipeline /plaintext 64 16
run json /json 64 1
run jsonlist "/json/list?n=100" 64 1
run static4k /4k.bin 64 1
run static1m /1m.bin 16 1
run static100m /100m.bin 4 1
sleep 0.5 # connections closed: let the worker see the FINs and give contexts back
echo "VmRSS after the load: $(rss) kB"
echo
echo "| mapping | Rss kB | Size kB |"
echo "|---|---:|---:|"
# One row per mapping with any Rss; anonymous mappings are told apart by size and flags.
awk '
	/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon " $1 "]" : $6); next }
	/^Size:/ { size = $2; next }
	/^Rss:/ { if ($2 > 0) printf "| %s | %d | %d |\n", name, $2, size; next }
' "/proc/$pid/smaps"
