#!/usr/bin/env bash
# gzip.sh — gzip of a 64 KiB JSON body, compressed per request at the same level: zerohttpd
# (--gzip-level L; /json/list64k, the bytes kept in memory, and /json/list?n=808, encoded
# per request too) against nginx (gzip on, gzip_comp_level L, the same bytes from a file). One worker each on CPU 0, wrk on CPU 1, c=16,
# rounds alternate. Prints req/s and server CPU per request (utime+stime from /proc).
#   bench/gzip.sh [zerohttpd-binary] [level] [rounds]
export ZEROHTTPD_ALLOW_ROOT=1 # zerohttpd refuses root without --user unless told
set -euo pipefail
bin=${1:-build/zerohttpd}
level=${2:-6}
rounds=${3:-3}
dur=${BENCH_DURATION:-5}
n=${GZIP_ITEMS:-808}   # /json/list?n=808 is 64.0 KiB (65,553 bytes)
zport=18080 nport=18081
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "needs wrk and nginx" >&2; exit 1; }

taskset -c 0 "$bin" --port "$zport" --workers 1 --gzip-level "$level" --demo 2>/dev/null &
zpid=$!; pids+=("$zpid")
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$zport/plaintext" >/dev/null && break; sleep 0.1; done
mkdir -p "$tmp/root" "$tmp/state/tmp"
curl -sf "http://127.0.0.1:$zport/json/list?n=$n" -o "$tmp/root/list.json"
user=""; [ "$(id -u)" = 0 ] && user="user nobody nogroup;"
cat >"$tmp/state/nginx.conf" <<CONF
$user
worker_processes 1;
pid $tmp/state/nginx.pid;
error_log $tmp/state/error.log warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_requests 1000000000;
    open_file_cache max=1024 inactive=60s;
    gzip on; gzip_comp_level $level; gzip_types application/json; gzip_min_length 256;
    client_body_temp_path $tmp/state/tmp/body; proxy_temp_path $tmp/state/tmp/proxy;
    fastcgi_temp_path $tmp/state/tmp/fcgi; uwsgi_temp_path $tmp/state/tmp/uwsgi;
    scgi_temp_path $tmp/state/tmp/scgi;
    server { listen 127.0.0.1:$nport reuseport; root $tmp/root; }
}
CONF
chmod -R a+rX "$tmp"
taskset -c 0 nginx -p "$tmp/state" -c "$tmp/state/nginx.conf" -g 'daemon off;' &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nport/list.json" >/dev/null && break; sleep 0.1; done
npid=$(pgrep -P "$(cat "$tmp/state/nginx.pid")" | head -1)

# both must answer the same document, compressed
for url in "http://127.0.0.1:$zport/json/list64k" "http://127.0.0.1:$zport/json/list?n=$n" \
	"http://127.0.0.1:$nport/list.json"; do
	curl -sf --compressed "$url" | cmp -s - "$tmp/root/list.json" || { echo "bad body from $url" >&2; exit 1; }
	curl -sf -H 'Accept-Encoding: gzip' -D - -o /dev/null "$url" | grep -qi '^content-encoding: gzip' ||
		{ echo "not gzip: $url" >&2; exit 1; }
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
run() { # name pid url
	local t0 t1 out reqs
	taskset -c 1 wrk -t1 -c16 -d1s -H 'Accept-Encoding: gzip' "$3" >/dev/null
	t0=$(ticks "$2")
	out=$(taskset -c 1 wrk -t1 -c16 -d"${dur}s" -H 'Accept-Encoding: gzip' "$3")
	t1=$(ticks "$2")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	awk -v n="$1" -v r="$reqs" -v d="$dur" -v t=$((t1 - t0)) -v hz="$hz" \
		'BEGIN { printf "%s %.0f %.1f\n", n, r / d, t / hz * 1e6 / r }'
}
{
	for _ in $(seq "$rounds"); do
		run zerohttpd "$zpid" "http://127.0.0.1:$zport/json/list64k"
		run zerohttpd+encode "$zpid" "http://127.0.0.1:$zport/json/list?n=$n"
		run nginx "$npid" "http://127.0.0.1:$nport/list.json"
	done
} | awk -v lvl="$level" -v size="$(stat -c %s "$tmp/root/list.json")" '
	{ rps[$1] = rps[$1] " " $2; cpu[$1] = cpu[$1] " " $3 }
	END {
		printf "| gzip level %d, %d-byte JSON, c=16 | req/s (rounds) | server CPU µs/req (rounds) |\n", lvl, size
		print "|---|---|---|"
		printf "| zerohttpd (bytes in memory) | %s | %s |\n", rps["zerohttpd"], cpu["zerohttpd"]
		printf "| zerohttpd (JSON encoded per request) | %s | %s |\n", rps["zerohttpd+encode"], cpu["zerohttpd+encode"]
		printf "| nginx (file) | %s | %s |\n", rps["nginx"], cpu["nginx"]
	}'
