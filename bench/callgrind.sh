#!/usr/bin/env bash
# bench/callgrind.sh PATH -- SERVER_CMD... : user-space instructions per request of a server.
# Runs SERVER_CMD (it must listen on 127.0.0.1:$CG_PORT, default 18110) under callgrind twice:
# for CG_N1 (default 1000) and CG_N2 (default 4000) GET PATH requests sent one at a time on
# one keep-alive connection, and prints (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up and
# shutdown cancel out. Deterministic: usable on a loaded machine where wall-clock is not.
#   bench/callgrind.sh /json -- build/zerohttpd --port 18110 --workers 1
#   bench/callgrind.sh /json -- build/bench/limit -p 18110     (../shared/bench/limit.c)
export ZEROHTTPD_ALLOW_ROOT=1 # zerohttpd refuses root without --user unless told
set -euo pipefail
path=$1; shift
[ "${1:-}" = "--" ] && shift
port=${CG_PORT:-18110} n1=${CG_N1:-1000} n2=${CG_N2:-4000}
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
tmp=$(mktemp -d /tmp/zh-cg.XXXXXX)
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

# N requests, each answer read whole (Content-Length) before the next one is sent
read -r -d '' client <<'PY' || true
import socket, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=60)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode()
buf = b""
for i in range(n):
    s.sendall(req)
    while True:
        h = buf.find(b"\r\n\r\n")
        if h >= 0:
            head = buf[:h].lower()
            k = head.find(b"content-length:")
            if k < 0:
                raise SystemExit("no Content-Length: %r" % head[:80])
            e = head.find(b"\r\n", k)
            cl = int(head[k + 15:e if e > 0 else None])
            if len(buf) >= h + 4 + cl:
                if not buf.startswith(b"HTTP/1.1 200"):
                    raise SystemExit("not a 200: %r" % buf[:40])
                buf = buf[h + 4 + cl:]
                break
        d = s.recv(65536)
        if not d:
            raise SystemExit("closed after %d requests" % i)
        buf += d
s.close()
PY

measure() { # N SERVER_CMD... -> total Ir
	local n=$1 up=
	shift
	valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$n" "$@" >/dev/null 2>"$tmp/vg.log" &
	pid=$!
	for _ in $(seq 150); do
		curl -m 5 -sf -o /dev/null "http://127.0.0.1:$port$path" && { up=1; break; }
		sleep 0.2
	done
	[ -n "$up" ] || { echo "server did not answer on port $port" >&2; exit 1; }
	timeout 600 /usr/bin/python3 -c "$client" "$port" "$path" "$n"
	kill -TERM "$pid"
	wait "$pid" || true
	pid=
	awk '/^(summary|totals):/ {print $2; exit}' "$tmp/cg.$n"
}
a=$(measure "$n1" "$@")
b=$(measure "$n2" "$@")
awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" -v p="$path" \
	'BEGIN { printf "%s: %.0f instructions per request (Ir %d for %d, %d for %d)\n", p, (b - a) / (n2 - n1), a, n1, b, n2 }'
