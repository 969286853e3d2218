#!/usr/bin/env python3
"""Soak test for zerohttpd (issue 6): mixed load for --minutes, memory and fds flat.

Starts its own zerohttpd (loopback, a free port, --workers 2, --gzip, an access log that is
rotated with SIGUSR1 every 15 s, a temporary document root) and drives it, concurrently:

  * three wrk processes running tests/soak/mix.lua, one connection per wrk thread:
      mix   4 connections: /plaintext, /json, /echo (0 B - 64 KiB, chunked, gzip), static
            files (small, 4 KiB, 200 KiB, precompressed), ranges, 304, 301, 404, /json/list
      pipe  2 connections, 8 requests pipelined per write, from the keep-alive-safe subset
      big   2 connections: /echo bodies of 70 KiB - 1000 KB, a 3 MiB file (many sendfile
            calls), large ranges, multipart ranges, If-Range, 416
    Every response is checked against its request (status, length, bytes, headers);
  * a disconnector: one thread of abrupt clients (half a head, half a body, a request then
    RST or close before reading, partial reads of large/streamed responses, pipelines cut
    by RST, Expect: 100-continue abandoned, a deferred /delay abandoned, 413), a few per
    second; the few that read a status line check it;
  * a sampler: every --interval seconds, RSS (/proc/PID/status), open fds (/proc/PID/fd),
    and /metrics (requests, 5xx, heap allocations, connections, pools).

The run is: warm-up (10% of the run, at least 20 s), then a priming burst (16 concurrent
half-sent 900 KB bodies and 16 half-sent 40 KB bodies, then completed: every pool is lent
more objects at once than the load ever holds, so pool carving that the load's random
concurrency might reach later is done now, and every static file requested on 32 fresh
connections, so both workers' open-file caches hold it), then a quiescent checkpoint that
takes the baseline. The rest of the run is split into --checkpoints segments; after each one the load
stops and, once the server holds no connection (socket fds == listeners), a checkpoint is
taken.

Pass criteria (each failed one prints a FAIL line; exit status 1):
  rss        max RSS over every sample after the baseline - baseline RSS <= 1 MiB
  fds        at every checkpoint: open fds == the baseline's (same count, no sockets but
             the listeners), i.e. no fd leaked by requests, resets, the file cache, log
             rotation
  pools      at every checkpoint /metrics shows 1 connection, 1 request in flight and 1 I/O
             context (the scrape itself) and 0 large or body buffers in use
  statuses   wrk: 0 unexpected responses (status, length, bytes, headers), 0 lost or
             stray responses, 0 Connection: close; 0 socket errors (connect, read, write,
             timeout); disconnector: 0 unexpected statuses, 0 failures to connect
  5xx        0 5xx responses and 0 pool exhaustions in /metrics over the run
  heap       0 worker heap allocations after the baseline (zerohttp_heap_allocations_total)
  alive      the server never died, answers correctly at the end, exits 0 on SIGTERM

Standard library only (plus /usr/bin/wrk). Every child is started and stopped by PID and
dies with this process (PR_SET_PDEATHSIG); Ctrl-C and errors stop them too.
"""
import argparse
import base64
import gzip
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
HOST = "127.0.0.1"
WORKERS = 2
MIB = 1024 * 1024
ROTATE_S = 15          # access log rotation period (it grows by ~5 MiB a second)

HELLO = b"Hello, World!"
JSON = b'{"message":"Hello, World!"}'


# ------------------------------------------------------------------------------------------
# children

def _die_with_parent():
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)      # PR_SET_PDEATHSIG
    except Exception:
        pass


CHILDREN = []   # Popen objects still to be reaped


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, **kw)
    CHILDREN.append(p)
    return p


def kill_children():
    for p in CHILDREN:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for p in CHILDREN:
        try:
            p.wait(5)
        except Exception:
            pass


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------
# /proc and /metrics

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def huge_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def fd_list(pid):
    out = []
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            out.append((int(name), os.readlink(os.path.join(d, name))))
        except OSError:
            pass             # closed between listdir and readlink
    return sorted(out)


def http_get(port, path, headers=(), timeout=10.0, method="GET", body=b""):
    """One request on a fresh connection; returns (status, headers dict lowercased, body)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        head = "%s %s HTTP/1.1\r\nHost: soak\r\n" % (method, path)
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        if body or method in ("POST", "PUT"):
            head += "Content-Length: %d\r\n" % len(body)
        s.sendall(head.encode() + b"\r\n" + body)
        return read_response(s, method)


def read_response(s, method="GET"):
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        c = s.recv(65536)
        if not c:
            raise ConnectionError("closed before the head: %r" % bytes(buf[:100]))
        buf += c
    i = buf.index(b"\r\n\r\n")
    lines = bytes(buf[:i]).decode("latin-1").split("\r\n")
    rest = bytes(buf[i + 4:])
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    if method == "HEAD" or status in (204, 304) or status < 200:
        return status, hdrs, b""
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        data = bytearray(rest)
        body = bytearray()
        while True:
            while b"\r\n" not in data:
                c = s.recv(65536)
                if not c:
                    raise ConnectionError("closed inside a chunked body")
                data += c
            j = data.index(b"\r\n")
            n = int(bytes(data[:j]).split(b";")[0], 16)
            del data[:j + 2]
            while len(data) < n + 2:
                c = s.recv(65536)
                if not c:
                    raise ConnectionError("closed inside a chunk")
                data += c
            if n == 0:
                return status, hdrs, bytes(body)
            body += data[:n]
            del data[:n + 2]
    n = int(hdrs.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < n:
        c = s.recv(min(1 << 20, n - len(body)))
        if not c:
            raise ConnectionError("closed after %d of %d body bytes" % (len(body), n))
        body += c
    return status, hdrs, bytes(body)


METRIC_RE = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$")


def metrics(port):
    status, _, body = http_get(port, "/metrics", timeout=10.0)
    if status != 200:
        raise RuntimeError("/metrics answered %d" % status)
    m = {}
    for line in body.decode().splitlines():
        r = METRIC_RE.match(line)
        if not r:
            continue
        name, labels, val = r.group(1), r.group(2) or "", float(r.group(3))
        m[name + labels] = val
        if labels:
            m[name] = m.get(name, 0.0) + val          # summed over labels
    m["5xx"] = sum(v for k, v in m.items()
                   if k.startswith("zerohttp_http_responses_total{") and 'code="5xx"' in k)
    return m


# ------------------------------------------------------------------------------------------
# the document root and the request catalogue for mix.lua

def lua_str(b):
    """A Lua string literal for any bytes (three-digit decimal escapes, so a digit that
    follows cannot extend one)."""
    if isinstance(b, str):
        b = b.encode("latin-1")
    out = ['"']
    for c in b:
        if 32 <= c < 127 and c not in (34, 92):
            out.append(chr(c))
        else:
            out.append("\\%03d" % c)
    return "".join(out) + '"'


def make_root(root):
    rnd = random.Random(6)
    files = {}

    def text(n):
        raw = bytes(rnd.getrandbits(8) for _ in range(min(n, 4096)))
        unit = base64.b64encode(raw)
        return (unit * (n // len(unit) + 1))[:n] if n > 4096 else unit[:n]

    big = base64.b64encode(os.urandom(3 * MIB))[:3 * MIB + 12345]   # 3 MiB + a bit
    files["small.txt"] = text(120)
    files["page.html"] = b"<!doctype html><title>soak</title><p>" + text(4096 - 50) + b"</p>\n"
    files["style.css"] = text(20000)
    files["mid.bin"] = base64.b64encode(os.urandom(150 * 1024))[:200 * 1024]
    files["big.bin"] = big
    files["dir/index.html"] = b"<!doctype html><title>dir</title>\n"
    for name, data in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    gz = gzip.compress(files["style.css"], 9, mtime=0)
    with open(os.path.join(root, "style.css.gz"), "wb") as f:
        f.write(gz)
    files["style.css.gz"] = gz
    return files


def samples(data, n=4, width=16):
    """(1-based position, bytes) pairs spread over data, for length-and-sample checks."""
    if len(data) <= width:
        return [(1, data)] if data else []
    pos = sorted({0, len(data) - width} | {(len(data) - width) * k // n for k in range(1, n)})
    return [(p + 1, data[p:p + width]) for p in pos]


def chunked_body(data, sizes):
    out, i, k = bytearray(), 0, 0
    while i < len(data):
        n = min(sizes[k % len(sizes)], len(data) - i)
        ext = ";ext=1" if k == 0 else ""
        out += b"%x%s\r\n" % (n, ext.encode()) + data[i:i + n] + b"\r\n"
        i += n
        k += 1
    return bytes(out) + b"0\r\nX-Trailer: t\r\n\r\n"


def catalogue(files, etags, json_list3):
    """The request variants: (kind, name, weights per role, request, expectation)."""
    V = []

    def add(kind, name, w, head, status, body=None, unit=None, n=None, eq=None, ln=None,
            smp=None, hdr=None):
        v = {"kind": kind, "name": name, "w": w, "head": head, "status": status}
        if body is not None:
            v["body"] = body
        if unit is not None:
            v["unit"], v["n"] = unit, n
        if eq is not None:
            v["eq"] = eq
        if ln is not None:
            v["len"] = ln
        if smp:
            v["samples"] = smp
        if hdr:
            v["hdr"] = hdr
        V.append(v)

    def get(path, extra=""):
        return "GET %s HTTP/1.1\r\nHost: soak\r\n%s\r\n" % (path, extra)

    add("plaintext", "plaintext", {"mix": 12, "pipe": 12}, get("/plaintext"), 200, eq=HELLO,
        hdr={"content-type": "text/plain"})
    add("json", "json", {"mix": 12, "pipe": 12}, get("/json"), 200, eq=JSON,
        hdr={"content-type": "application/json"})
    add("json", "json_list", {"mix": 2, "pipe": 2}, get("/json/list?n=3"), 200, eq=json_list3)
    add("json", "json_list_gzip", {"mix": 1, "big": 1}, get("/json/list?n=500",
        "Accept-Encoding: gzip\r\n"), 200, hdr={"content-encoding": "gzip"})
    # echo: bodies of varied size (0 B .. 64 KiB in mix, up to 1000 KB in big)
    unit = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"      # 64 B
    for size, w in ((0, {"mix": 1}), (1, {"mix": 1, "pipe": 2}), (100, {"mix": 2, "pipe": 3}),
                    (1000, {"mix": 2, "pipe": 2}), (4096, {"mix": 2, "pipe": 1}),
                    (16000, {"mix": 2, "pipe": 1}), (40000, {"mix": 2}), (65536, {"mix": 1}),
                    (70000, {"big": 2}), (200000, {"big": 2}), (600000, {"big": 1}),
                    (1000000, {"big": 1})):
        head = ("POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Type: application/x-soak\r\n"
                "Content-Length: %d\r\n\r\n" % size)
        add("echo", "echo_%d" % size, w, head, 200, unit=unit[size % 7:] + unit[:size % 7],
            n=size, eq="=", ln=size, hdr={"content-type": "application/x-soak"})
    data = (unit * 50)[:3000].encode()
    add("echo", "echo_chunked", {"mix": 2, "pipe": 1},
        "POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n", 200,
        body=chunked_body(data, [1, 100, 7, 1000, 2000]), eq=data)
    gz_body = (unit * 100)[:5000]
    add("echo", "echo_gzip", {"mix": 2, "big": 1},
        "POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Type: text/plain\r\n"
        "Accept-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gz_body), 200,
        body=gz_body, hdr={"content-encoding": "gzip"})
    # static files
    for name, w in (("small.txt", {"mix": 4, "pipe": 3}), ("page.html", {"mix": 3, "pipe": 1}),
                    ("mid.bin", {"mix": 1, "big": 2}), ("big.bin", {"big": 3})):
        d = files[name]
        add("static", "static_" + name, w, get("/" + name), 200, ln=len(d),
            eq=d if len(d) <= 8192 else None, smp=samples(d) if len(d) > 8192 else None,
            hdr={"etag": etags[name]})
    css = files["style.css.gz"]
    add("static", "static_precompressed", {"mix": 2}, get("/style.css",
        "Accept-Encoding: gzip, br;q=0\r\n"), 200, eq=css, hdr={"content-encoding": "gzip"})
    add("static", "static_dir", {"mix": 1, "pipe": 1}, get("/dir/"), 200,
        eq=files["dir/index.html"])
    add("static", "static_301", {"mix": 1, "pipe": 1}, get("/dir"), 301,
        hdr={"location": "/dir/"})
    add("static", "static_404", {"mix": 1, "pipe": 1}, get("/missing.txt"), 404)
    add("static", "static_304", {"mix": 2, "pipe": 1}, get("/page.html",
        "If-None-Match: %s\r\n" % etags["page.html"]), 304, ln=0)
    big, page = files["big.bin"], files["page.html"]
    add("range", "range_small", {"mix": 2, "pipe": 2}, get("/page.html", "Range: bytes=10-99\r\n"),
        206, eq=page[10:100], hdr={"content-range": "bytes 10-99/%d" % len(page)})
    add("range", "range_suffix", {"mix": 1, "big": 1}, get("/big.bin", "Range: bytes=-500\r\n"),
        206, eq=big[-500:])
    a, b = 1000000, 2999999
    add("range", "range_large", {"big": 2}, get("/big.bin", "Range: bytes=%d-%d\r\n" % (a, b)),
        206, ln=b - a + 1, smp=samples(big[a:b + 1]),
        hdr={"content-range": "bytes %d-%d/%d" % (a, b, len(big))})
    add("range", "range_open", {"big": 1}, get("/big.bin", "Range: bytes=3000000-\r\n"), 206,
        ln=len(big) - 3000000, smp=samples(big[3000000:]))
    add("range", "range_multi", {"big": 1, "mix": 1},
        get("/big.bin", "Range: bytes=0-9,100000-100099,-20\r\n"), 206,
        hdr={"content-type": "multipart/byteranges"})
    add("range", "range_if_match", {"big": 1}, get("/mid.bin", "Range: bytes=100-199\r\n"
        "If-Range: %s\r\n" % etags["mid.bin"]), 206, eq=files["mid.bin"][100:200])
    add("range", "range_if_stale", {"big": 1}, get("/mid.bin", "Range: bytes=100-199\r\n"
        "If-Range: \"stale\"\r\n"), 200, ln=len(files["mid.bin"]))
    add("range", "range_416", {"big": 1, "mix": 1}, get("/big.bin", "Range: bytes=99999999-\r\n"),
        416, hdr={"content-range": "bytes */%d" % len(big)})
    return V


def write_conf(path, V):
    with open(path, "w") as f:
        f.write("return {\n")
        for v in V:
            parts = []
            for k in ("kind", "name", "head", "body", "unit", "eq"):
                if k in v:
                    val = v[k]
                    parts.append("%s=%s" % (k, '"="' if val == "=" else lua_str(val)))
            for k in ("status", "n", "len"):
                if k in v:
                    parts.append("%s=%d" % (k, v[k]))
            parts.append("w={%s}" % ",".join("%s=%d" % kv for kv in v["w"].items()))
            if "samples" in v:
                parts.append("samples={%s}" % ",".join("{%d,%s}" % (p, lua_str(s))
                                                       for p, s in v["samples"]))
            if "hdr" in v:
                parts.append("hdr={%s}" % ",".join("[%s]=%s" % (lua_str(k), lua_str(x))
                                                   for k, x in v["hdr"].items()))
            f.write("  {%s},\n" % ", ".join(parts))
        f.write("}\n")


# ------------------------------------------------------------------------------------------
# the disconnector: abrupt clients at a modest rate

def rst_close(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


class Disconnector(threading.Thread):
    def __init__(self, port, rate, files):
        super().__init__(daemon=True)
        self.port, self.rate, self.files = port, rate, files
        self.run_ev = threading.Event()      # set while load runs
        self.idle_ev = threading.Event()     # set while it is not inside a client
        self.idle_ev.set()
        self.quit = False
        self.counts = {}
        self.unexpected = 0
        self.conn_errors = 0
        self.notes = []
        self.rnd = random.Random()
        self.kinds = [getattr(self, n) for n in dir(self) if n.startswith("k_")]

    def note(self, s):
        if len(self.notes) < 5:
            self.notes.append(s)

    def expect_status(self, s, want, kind):
        buf = b""
        while b"\r\n" not in buf:
            c = s.recv(4096)
            if not c:
                self.unexpected += 1
                self.note("%s: closed before a status line" % kind)
                return False
            buf += c
        st = buf.split(b"\r\n", 1)[0]
        if not st.startswith(b"HTTP/1.1 %d " % want):
            self.unexpected += 1
            self.note("%s: %r" % (kind, st))
            return False
        return True

    def connect(self):
        s = socket.create_connection((HOST, self.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def end(self, s):
        (rst_close if self.rnd.random() < 0.5 else socket.socket.close)(s)

    # each k_* is one abrupt client
    def k_half_head(self, s):
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: soak\r\nUser-Agent: so"[:self.rnd.randint(3, 40)])
        time.sleep(0.005)
        self.end(s)

    def k_half_body_small(self, s):
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 5000\r\n\r\n" + b"x" * 2000)
        time.sleep(0.005)
        self.end(s)

    def k_half_body_large(self, s):
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 900000\r\n\r\n"
                  + b"y" * self.rnd.choice((1, 30000, 100000, 400000)))
        time.sleep(0.005)
        self.end(s)

    def k_half_body_chunked(self, s):
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"1000\r\n" + b"z" * 1500)
        time.sleep(0.005)
        self.end(s)

    def k_half_upload(self, s):
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: 5000000\r\n\r\n"
                  + b"u" * 300000)
        time.sleep(0.005)
        self.end(s)

    def k_request_then_reset(self, s):
        path = self.rnd.choice((b"/big.bin", b"/mid.bin", b"/plaintext", b"/json/list?n=20000",
                                b"/stream?bytes=20000000"))
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: soak\r\n\r\n")
        if self.rnd.random() < 0.5:
            time.sleep(0.002)
        self.end(s)

    def k_echo_then_reset(self, s):
        body = b"e" * self.rnd.choice((100, 20000, 300000))
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Type: text/plain\r\n"
                  b"Accept-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        self.end(s)

    def k_partial_read(self, s):
        path = self.rnd.choice((b"/big.bin", b"/json/list?n=100000", b"/stream?bytes=50000000"))
        s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: soak\r\n\r\n")
        if self.expect_status(s, 200, "partial_read " + path.decode()):
            got, want = 0, self.rnd.choice((1000, 100000, 1000000))
            while got < want:
                c = s.recv(65536)
                if not c:
                    break
                got += len(c)
        rst_close(s)

    def k_pipeline_reset(self, s):
        s.sendall((b"GET /plaintext HTTP/1.1\r\nHost: soak\r\n\r\n"
                   b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 3\r\n\r\nabc"
                   b"GET /small.txt HTTP/1.1\r\nHost: soak\r\n\r\n") * 8)
        if self.rnd.random() < 0.5:
            s.recv(100)
        rst_close(s)

    def k_expect_abandoned(self, s):
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 100000\r\n\r\n")
        if self.rnd.random() < 0.5:
            self.expect_status(s, 100, "expect_abandoned")
        self.end(s)

    def k_delay_abandoned(self, s):
        s.sendall(b"GET /delay?ms=%d HTTP/1.1\r\nHost: soak\r\n\r\n" % self.rnd.choice((1, 50, 200)))
        time.sleep(0.01)
        self.end(s)

    def k_too_large(self, s):
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 5000000\r\n\r\n")
        self.expect_status(s, 413, "too_large")
        self.end(s)

    def run(self):
        while not self.quit:
            if not self.run_ev.wait(0.2):
                continue
            self.idle_ev.clear()
            try:
                if self.run_ev.is_set():
                    k = self.rnd.choice(self.kinds)
                    name = k.__name__[2:]
                    try:
                        s = self.connect()
                    except OSError as e:
                        self.conn_errors += 1
                        self.note("connect: %s" % e)
                    else:
                        try:
                            k(s)
                        except OSError:
                            # resets and closes are what these clients are about (the
                            # server may also answer and close first): only the status
                            # checks above count as failures
                            pass
                        except Exception as e:                  # a bug in the client
                            self.unexpected += 1
                            self.note("%s: %r" % (name, e))
                        finally:
                            self.counts[name] = self.counts.get(name, 0) + 1
                            try:
                                s.close()
                            except OSError:
                                pass
            finally:
                self.idle_ev.set()
            time.sleep(self.rnd.expovariate(self.rate))

    def pause(self):
        self.run_ev.clear()
        self.idle_ev.wait(30)


# ------------------------------------------------------------------------------------------

class Soak:
    def __init__(self, args):
        self.a = args
        self.tmp = tempfile.mkdtemp(prefix="zh-soak-")
        self.root = os.path.join(self.tmp, "www")
        os.makedirs(self.root)
        self.log = os.path.join(self.tmp, "access.log")
        self.proc = None
        self.port = None
        self.samples = []        # dicts
        self.fails = []
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.wrk_tot = {}        # role -> dict of totals
        self.kinds = {}
        self.wrk_notes = []
        self.load_seconds = 0.0
        self.rotations = 0
        self.next_rot = None
        self.scrape_errors = []
        self.log_bytes = 0

    def fail(self, msg):
        self.fails.append(msg)
        print("FAIL %s" % msg, flush=True)

    # ---- server
    def start_server(self):
        self.files = make_root(self.root)
        self.stderr = open(os.path.join(self.tmp, "server.err"), "wb")
        for _ in range(3):
            self.port = free_port()
            cmd = [self.a.bin, "--address", HOST, "--port", str(self.port), "--workers",
                   str(WORKERS), "--root", self.root, "--gzip", "--access-log", self.log, "--demo"]
            cmd += self.a.server_arg
            self.proc = spawn(cmd, stdout=self.stderr, stderr=self.stderr)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    socket.create_connection((HOST, self.port), timeout=0.5).close()
                    return
                except OSError:
                    time.sleep(0.02)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(5)
        raise SystemExit("zerohttpd did not start: %s" % self.server_err())

    def server_err(self):
        try:
            with open(os.path.join(self.tmp, "server.err"), "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    # ---- sampling
    def sample(self, phase):
        with self.lock:
            if not self.alive():
                return None
            s = {"t": time.monotonic() - self.t0, "phase": phase, "rss": rss_kib(self.proc.pid),
                 "huge": huge_kib(self.proc.pid), "fds": len(fd_list(self.proc.pid))}
            try:
                m = metrics(self.port)
            except (OSError, RuntimeError, ValueError) as e:
                s["err"] = str(e)
                self.scrape_errors.append("%.0f s: %s" % (s["t"], e))
                m = {}
            s["req"] = m.get("zerohttp_http_requests_total", -1)
            s["5xx"] = m.get("5xx", -1)
            s["heap"] = m.get("zerohttp_heap_allocations_total", -1)
            s["conns"] = m.get("zerohttp_connections_open", -1)
            s["m"] = m
            if self.samples and self.samples[-1]["req"] >= 0 and s["req"] >= 0:
                dt = s["t"] - self.samples[-1]["t"]
                s["rps"] = (s["req"] - self.samples[-1]["req"]) / dt if dt > 0 else 0
            else:
                s["rps"] = 0.0
            self.samples.append(s)
            return s

    def sampler(self, stop_ev, phase):
        while not stop_ev.wait(self.a.interval):
            self.sample(phase)

    def rotate_log(self):
        """logrotate's way: rename, SIGUSR1 (zerohttpd reopens), then drop the old file."""
        old = self.log + ".1"
        try:
            os.rename(self.log, old)
        except OSError:
            return
        os.kill(self.proc.pid, signal.SIGUSR1)
        time.sleep(0.5)
        try:
            self.log_bytes += os.path.getsize(old)
            os.unlink(old)
        except OSError:
            pass
        self.rotations += 1

    # ---- load
    def run_load(self, seconds, phase):
        seconds = max(1, int(round(seconds)))
        env = dict(os.environ, SOAK_CONF=self.conf)
        procs = []
        url = "http://%s:%d/" % (HOST, self.port)
        for role, conns, depth in (("mix", 4, 1), ("pipe", 2, 8), ("big", 2, 1)):
            e = dict(env, SOAK_ROLE=role, SOAK_DEPTH=str(depth))
            out = open(os.path.join(self.tmp, "wrk-%s.out" % role), "w+")
            p = spawn([self.a.wrk, "-t", str(conns), "-c", str(conns), "-d", "%ds" % seconds,
                       "--timeout", "10s", "-s", os.path.join(HERE, "mix.lua"), url],
                      stdout=out, stderr=subprocess.STDOUT, env=e)
            procs.append((role, p, out))
        stop_ev = threading.Event()
        smp = threading.Thread(target=self.sampler, args=(stop_ev, phase), daemon=True)
        smp.start()
        self.disc.run_ev.set()
        start = time.monotonic()
        if self.next_rot is None:
            self.next_rot = start + ROTATE_S
        try:
            while any(p.poll() is None for _, p, _ in procs):
                time.sleep(0.25)
                if time.monotonic() - start > seconds + 60:
                    self.fail("wrk did not finish within 60 s of its duration (%s)" % phase)
                    break
                if not self.alive():
                    break
                if time.monotonic() > self.next_rot:
                    self.rotate_log()
                    self.next_rot = time.monotonic() + ROTATE_S
        finally:
            self.disc.pause()
            stop_ev.set()
            smp.join()
            for _, p, _ in procs:
                if p.poll() is None:
                    p.kill()
                p.wait(10)
        self.load_seconds += time.monotonic() - start
        for role, p, out in procs:
            out.seek(0)
            self.parse_wrk(role, out.read(), phase)
            out.close()

    def parse_wrk(self, role, text, phase):
        t = self.wrk_tot.setdefault(role, {})
        seen = False
        for line in text.splitlines():
            if not line.startswith("SOAK "):
                continue
            seen = True
            f = line.split()
            if f[1] == "note":
                if len(self.wrk_notes) < 10:
                    self.wrk_notes.append("%s/%s: %s" % (role, phase, line[10:]))
                continue
            for kv in f[2:]:
                k, v = kv.split("=")
                if f[1] == "kinds":
                    self.kinds[k] = self.kinds.get(k, 0) + int(v)
                else:
                    t[k] = t.get(k, 0) + int(v)
        if not seen:
            self.fail("wrk %s (%s) printed no result: %s" % (role, phase, text[-500:]))

    # ---- checkpoints
    def quiesce(self, label):
        """Waits until the server holds no connection; returns the fd list then."""
        deadline = time.monotonic() + 20
        stable = 0
        with self.lock:
            while time.monotonic() < deadline:
                fds = fd_list(self.proc.pid)
                socks = sum(1 for _, l in fds if l.startswith("socket:"))
                stable = stable + 1 if socks == WORKERS else 0
                if stable >= 5:
                    return fds
                time.sleep(0.1)
        self.fail("%s: the server still held connections 20 s after the load stopped "
                  "(%d sockets, %d listeners)" % (label, socks, WORKERS))
        return fds

    def checkpoint(self, label):
        if not self.alive():
            return None
        fds = self.quiesce(label)
        s = self.sample(label)
        if s is None:
            return None
        s["fds"] = len(fds)           # the quiescent count, before the scrape's socket
        s["fdl"] = fds
        s["checkpoint"] = True
        m = s["m"]
        want = {"zerohttp_connections_open": 1, "zerohttp_http_requests_in_flight": 1,
                "zerohttp_io_contexts_in_use": 1, "zerohttp_large_buffers_in_use": 0,
                "zerohttp_body_buffers_in_use": 0}
        for k, v in want.items():
            if m.get(k) != v:
                self.fail("pools: %s: %s = %s at a quiescent moment (expected %d: the "
                          "scrape's own)" % (label, k, m.get(k), v))
        return s

    # ---- final correctness
    def final_check(self):
        p = self.port
        checks = [
            (lambda: http_get(p, "/plaintext"), 200, HELLO),
            (lambda: http_get(p, "/json"), 200, JSON),
            (lambda: http_get(p, "/echo", method="POST", body=b"q" * 300000), 200, b"q" * 300000),
            (lambda: http_get(p, "/big.bin"), 200, self.files["big.bin"]),
            (lambda: http_get(p, "/page.html", [("Range", "bytes=5-14")]), 206,
             self.files["page.html"][5:15]),
            (lambda: http_get(p, "/healthz"), 200, None),
        ]
        bad = []
        for fn, st, body in checks:
            try:
                got_st, _, got_body = fn()
                if got_st != st or (body is not None and got_body != body):
                    bad.append("%d/%d bytes (expected %d)" % (got_st, len(got_body), st))
            except OSError as e:
                bad.append(str(e))
        if bad:
            self.fail("alive: wrong answers at the end: %s" % "; ".join(bad))

    # ---- the run
    def run(self):
        a = self.a
        total = a.minutes * 60.0
        warm = a.warmup if a.warmup is not None else max(20.0, 0.1 * total)
        main = max(total - warm, 1.0)
        nseg = max(1, a.checkpoints)
        self.start_server()
        print("soak: zerohttpd pid %d on %s:%d (%s), %d workers, --gzip, access log rotated "
              "every %d s; %.0f s warm-up + %d segments of %.0f s; temp dir %s"
              % (self.proc.pid, HOST, self.port, a.bin, WORKERS, ROTATE_S, warm, nseg, main / nseg,
                 self.tmp), flush=True)
        etags = {}
        for name in ("small.txt", "page.html", "mid.bin", "big.bin"):
            st, h, _ = http_get(self.port, "/" + name)
            etags[name] = h["etag"]
        st, _, jl3 = http_get(self.port, "/json/list?n=3")
        self.conf = os.path.join(self.tmp, "conf.lua")
        write_conf(self.conf, catalogue(self.files, etags, jl3))
        m0 = metrics(self.port)
        self.disc = Disconnector(self.port, a.disconnect_rate, self.files)
        self.disc.start()

        # warm-up, priming, baseline
        self.run_load(warm, "warm-up")
        self.prime()
        base = self.checkpoint("baseline")
        if base is None:
            self.fail("alive: zerohttpd died during warm-up: %s" % self.server_err())
            return self.finish(None, m0)
        print("soak: baseline after warm-up: RSS %.2f MiB (AnonHugePages %.1f MiB), %d fds, "
              "%d requests so far" % (base["rss"] / 1024, base["huge"] / 1024, base["fds"],
                                      base["req"]), flush=True)
        cps = []
        for i in range(nseg):
            self.run_load(main / nseg, "seg%d" % (i + 1))
            if not self.alive():
                break
            cp = self.checkpoint("checkpoint %d" % (i + 1))
            if cp is None:
                break
            cps.append(cp)
            print("soak: checkpoint %d/%d at %.0f s: RSS %.2f MiB, %d fds, %d requests"
                  % (i + 1, nseg, cp["t"], cp["rss"] / 1024, cp["fds"], cp["req"]), flush=True)
            if cp["fds"] != base["fds"]:
                bl, cl = dict(base["fdl"]), dict(cp["fdl"])
                diff = ["+%d->%s" % (k, v) for k, v in cl.items() if bl.get(k) != v]
                diff += ["-%d->%s" % (k, v) for k, v in bl.items() if cl.get(k) != v]
                self.fail("fds: checkpoint %d: %d open fds, baseline %d (%s)"
                          % (i + 1, cp["fds"], base["fds"], " ".join(diff[:10])))
        return self.finish(base, m0, cps)

    def prime(self):
        """Lends every pool more objects at once than the load holds: 16 half-sent bodies of
        900 KB (body buffers) and 16 of 40 KB (large buffers), then completes them."""
        socks = []
        try:
            for size in (900000,) * 16 + (40000,) * 16:
                s = socket.create_connection((HOST, self.port), timeout=10)
                s.sendall(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: %d\r\n\r\n"
                          % size + b"p" * (size // 2))
                socks.append((s, size))
            time.sleep(0.5)
            for s, size in socks:
                s.sendall(b"p" * (size - size // 2))
            wrong = []
            for s, size in socks:
                st, _, body = read_response(s)
                if st != 200 or len(body) != size:
                    wrong.append("%d with %d bytes" % (st, len(body)))
            if wrong:
                self.fail("statuses: priming: %d of %d wrong (%s)" % (len(wrong), len(socks),
                                                                     wrong[0]))
        except OSError as e:
            self.fail("statuses: priming: %s" % e)
        finally:
            for s, _ in socks:
                s.close()
        self.prime_file_caches()

    def prime_file_caches(self):
        """Every static file opened by every worker: each keeps its own open-file cache, so a
        worker first serving a file after the baseline adds an fd that is no leak (seen: one
        worker first served style.css and its .gz in segment 1). 32 fresh connections land
        on both workers (SO_REUSEPORT hashes each one)."""
        reqs = [b"HEAD /%s HTTP/1.1\r\nHost: soak\r\n\r\n" % n.encode()
                for n in self.files if not n.endswith(".gz")]
        reqs += [b"HEAD /dir/ HTTP/1.1\r\nHost: soak\r\n\r\n",
                 b"HEAD /style.css HTTP/1.1\r\nHost: soak\r\nAccept-Encoding: gzip\r\n\r\n"]
        try:
            for _ in range(32):
                with socket.create_connection((HOST, self.port), timeout=10) as s:
                    for r in reqs:
                        s.sendall(r)
                        st, _, _ = read_response(s, "HEAD")
                        if st != 200:
                            self.fail("statuses: priming files: %d for %r" % (st, r[:40]))
                            return
        except OSError as e:
            self.fail("statuses: priming files: %s" % e)

    def finish(self, base, m0, cps=()):
        self.disc.quit = True
        self.disc.run_ev.clear()
        end = self.samples[-1] if self.samples else None
        alive = self.alive()
        if not alive:
            self.fail("alive: zerohttpd died (status %r): %s"
                      % (self.proc.returncode, self.server_err()))
        else:
            self.final_check()
        self.print_table(base)
        if base is not None and end is not None:
            after = [s for s in self.samples if s["t"] >= base["t"] and s["rss"] > 0]
            mx = max(after, key=lambda s: s["rss"])
            grow = mx["rss"] - base["rss"]
            if grow > self.a.rss_slack_kib:
                hw = ["%s %d->%d" % (k.split("_")[1], base["m"].get(k, -1), mx["m"].get(k, -1))
                      for k in ("zerohttp_io_contexts_high_water",
                                "zerohttp_large_buffers_high_water",
                                "zerohttp_body_buffers_high_water")]
                self.fail("rss: max RSS %d KiB at %.0f s is %d KiB above the baseline %d KiB "
                          "(limit %d KiB; pool high-water %s)"
                          % (mx["rss"], mx["t"], grow, base["rss"], self.a.rss_slack_kib,
                             ", ".join(hw)))
            last = cps[-1] if cps else end
            heap = last["heap"] - base["heap"]
            if heap != 0:
                self.fail("heap: %d worker heap allocations after the baseline" % heap)
            five = last["5xx"] - m0.get("5xx", 0)
            exh = last["m"].get("zerohttp_pool_exhausted_total", 0)
            if five != 0 or exh != 0:
                self.fail("5xx: %d 5xx responses, %d pool exhaustions" % (five, exh))
        if self.scrape_errors:
            self.fail("alive: %d /metrics scrapes failed (first: %s)"
                      % (len(self.scrape_errors), self.scrape_errors[0]))
        # wrk and the disconnector
        tot = {}
        for role, t in self.wrk_tot.items():
            for k, v in t.items():
                tot[k] = tot.get(k, 0) + v
            if t.get("requests", 0) == 0:
                self.fail("statuses: wrk %s made no request" % role)
        errs = sum(tot.get(k, 0) for k in ("connect", "read", "write", "timeout"))
        if errs:
            self.fail("statuses: wrk socket errors: connect %d, read %d, write %d, timeout %d"
                      % tuple(tot.get(k, 0) for k in ("connect", "read", "write", "timeout")))
        odd = sum(tot.get(k, 0) for k in ("bad", "lost", "closes", "stray"))
        if odd:
            self.fail("statuses: wrk: %d unexpected responses, %d lost, %d Connection: close, "
                      "%d stray" % tuple(tot.get(k, 0) for k in ("bad", "lost", "closes",
                                                                 "stray")))
        for role, t in sorted(self.wrk_tot.items()):
            print("soak: wrk %-4s %s" % (role, ", ".join("%s %d" % kv for kv in sorted(t.items()))))
        for n in self.wrk_notes:
            print("  wrk note: %s" % n)
        d = self.disc
        if d.unexpected or d.conn_errors:
            self.fail("statuses: disconnector: %d unexpected statuses, %d failed connects"
                      % (d.unexpected, d.conn_errors))
        for n in d.notes:
            print("  disconnector note: %s" % n)
        # stop the server
        rc = None
        if alive:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                rc = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            if rc != 0:
                self.fail("alive: zerohttpd exited with %r on SIGTERM (None = not within "
                          "15 s): %s" % (rc, self.server_err()))
        # summary
        kinds = self.kinds
        checked = sum(kinds.values())
        dis = sum(d.counts.values())
        print("soak: wrk responses checked %d in %.0f s of load (%s)" % (
            checked, self.load_seconds, ", ".join("%s %d" % kv for kv in sorted(kinds.items()))))
        print("soak: abrupt clients %d (%s)" % (
            dis, ", ".join("%s %d" % kv for kv in sorted(d.counts.items()))))
        print("soak: access log: %d rotations, %.1f MiB written" % (
            self.rotations, (self.log_bytes + (os.path.getsize(self.log)
                                               if os.path.exists(self.log) else 0)) / MIB))
        if base is not None and end is not None:
            after = [s for s in self.samples if s["t"] >= base["t"] and s["rss"] > 0]
            mx = max(s["rss"] for s in after)
            last = cps[-1] if cps else end
            print("SUMMARY soak %.1f min: %d requests (%d checked by wrk, %d wrong), %d abrupt "
                  "clients; RSS baseline %.2f MiB, max %.2f MiB (+%d KiB), end %.2f MiB; fds "
                  "baseline %d, checkpoints %s; 5xx %d; heap allocations after warm-up %d; "
                  "wrk socket errors %d; exit %s"
                  % (self.load_seconds / 60, last["req"], checked, tot.get("bad", 0), dis,
                     base["rss"] / 1024, mx / 1024, mx - base["rss"], last["rss"] / 1024,
                     base["fds"], "/".join(str(c["fds"]) for c in cps) or "-",
                     last["5xx"] - m0.get("5xx", 0), last["heap"] - base["heap"], errs, rc))
        print("soak: %s" % ("PASS" if not self.fails else "FAIL (%d criteria)" % len(self.fails)))
        for f in self.fails:
            print("FAIL %s" % f)
        return 0 if not self.fails else 1

    def print_table(self, base):
        rows = self.samples
        if not rows:
            return
        step = max(1, len(rows) // self.a.rows)
        show = [r for i, r in enumerate(rows) if i % step == 0 or r.get("checkpoint")
                or i == len(rows) - 1]
        print("%7s  %-13s %9s %9s %5s %6s %9s %12s %5s %5s" % (
            "t(s)", "phase", "RSS(KiB)", "THP(KiB)", "fds", "conns", "req/s", "requests",
            "5xx", "heap"))
        for r in show:
            print("%7.0f  %-13s %9d %9d %5d %6d %9.0f %12d %5d %5d%s" % (
                r["t"], r["phase"][:13], r["rss"], r["huge"], r["fds"], r["conns"], r["rps"],
                r["req"], r["5xx"], r["heap"], "  *" if r.get("checkpoint") else ""))
        print("(* = quiescent checkpoint: load stopped, no connection open; fds counted before "
              "the scrape)")

    def cleanup(self):
        kill_children()
        if not self.a.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print("soak: kept %s" % self.tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the load (10)")
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "zerohttpd"))
    ap.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds (default 10%% of the run, at least 20)")
    ap.add_argument("--checkpoints", type=int, default=4,
                    help="quiescent fd/pool checkpoints after the warm-up (4)")
    ap.add_argument("--interval", type=float, default=2.0, help="sampling period, s (2)")
    ap.add_argument("--disconnect-rate", type=float, default=15.0,
                    help="abrupt clients per second (15)")
    ap.add_argument("--rss-slack-kib", type=int, default=1024,
                    help="allowed RSS growth after the baseline (1024 KiB)")
    ap.add_argument("--rows", type=int, default=24, help="about this many table rows")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra zerohttpd argument (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        sys.exit("soak: no executable %s (make all first)" % args.bin)
    if not args.wrk or not os.access(args.wrk, os.X_OK):
        sys.exit("soak: wrk not found")

    def on_term(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    soak = Soak(args)
    rc = 1
    try:
        rc = soak.run()
    except KeyboardInterrupt:
        print("soak: interrupted", flush=True)
        rc = 130
    finally:
        if soak.proc is not None and soak.proc.poll() is None and rc != 0:
            print("server stderr: %s" % soak.server_err()[-500:])
        soak.cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    main()
