"""20. Response framing and streaming (issue 4): automatic chunked framing for /json/list
(Content-Length when small, chunked when big, close-delimited for HTTP/1.0, HEAD, pipelining),
producers (/stream: exact bytes, 1 GiB to a slow client with flat RSS, aborted by a reset with
fds back to baseline) and deferred responses (/delay: 50 at once on one worker, clients that
leave, pipelining behind them). Chunked bodies are checked by a strict parser written here
(hex sizes only, CRLF after each chunk's data, the final 0 CRLF CRLF, nothing after it), and
every byte of every body is compared with what it must be: /stream against its pattern,
/json/list through json.loads item by item, with types."""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

from harness import DEFAULT_TIMEOUT, HELLO, HOST, Closed, ProtocolError, ServerTestCase, \
    request, rss_kib

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
PERIOD = 251
STEP = 1 << 20                                  # pattern bytes compared at once
PAT = bytes(i % PERIOD for i in range(STEP + PERIOD))
PATV = memoryview(PAT)
ITEM_KEYS = ["id", "name", "price", "tags", "active"]


def pattern(n, off=0):
    """The /stream body bytes [off, off + n)."""
    out = bytearray()
    while n:
        k = min(n, STEP)
        o = off % PERIOD
        out += PAT[o:o + k]
        off += k
        n -= k
    return bytes(out)


def is_asan(pid):
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libasan" in f.read()
    except OSError:
        return False


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def curl(port, path, *extra):
    out = subprocess.run(["curl", "-sS", "--max-time", "60", *extra,
                          "http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, timeout=90)
    assert out.returncode == 0, out.stderr
    return out.stdout


# ------------------------------------------------------------------------------------------
# A client with its own strict response parser.

class Reset(Closed):
    """The peer reset the connection."""


class Reply:
    def __init__(self, version, status, headers):
        self.version = version
        self.status = status
        self.headers = headers          # [(name, value)] in order
        self.body = None                # bytes, unless a sink took them
        self.framing = None             # "chunked", "length", "close" or "none"
        self.chunks = []                # data sizes of the chunks, in order
        self.length = 0                 # body bytes delivered

    def header(self, name):
        vals = self.header_all(name)
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "<Reply %s %d %r %s len=%d chunks=%d body=%r>" % (
            self.version, self.status, self.headers, self.framing, self.length,
            len(self.chunks), (self.body or b"")[:80])


class Collect:
    def __init__(self):
        self.data = bytearray()

    def __call__(self, buf, a, b):
        self.data += buf[a:b]


class PatternCheck:
    """Sink that compares every byte with the /stream pattern (memcmp speed, no copy)."""

    def __init__(self, on_progress=None):
        self.off = 0
        self.on_progress = on_progress

    def __call__(self, buf, a, b):
        while a < b:
            k = min(b - a, STEP)
            o = self.off % PERIOD
            if not buf.startswith(PATV[o:o + k], a, a + k):
                got = bytes(buf[a:a + k])
                j = next(j for j in range(k) if got[j] != PAT[o + j])
                raise AssertionError("body byte %d is %d, expected %d"
                                     % (self.off + j, got[j], PAT[o + j]))
            a += k
            self.off += k
        if self.on_progress:
            self.on_progress(self.off)


class Wire:
    """One client connection; fixed receive buffer filled by recv_into. Responses are
    parsed strictly: status line, `name: value` fields, then the body by its framing."""

    def __init__(self, port, timeout=DEFAULT_TIMEOUT, rcvbuf=None, bufsize=1 << 20):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect((HOST, port))
        self.buf = bytearray(bufsize)
        self.mv = memoryview(self.buf)
        self.start = self.end = 0
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Closes with SO_LINGER 0: the peer gets a RST."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def pending(self):
        return bytes(self.buf[self.start:self.end])

    def _more(self, maxread=None):
        """One recv_into; raises Closed at EOF."""
        if self.eof:
            raise Closed("connection closed (have %r)" % self.pending()[:200])
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buf):
            if self.start == 0:
                raise ProtocolError("a line longer than %d bytes" % len(self.buf))
            n = self.end - self.start
            self.buf[:n] = bytes(self.buf[self.start:self.end])
            self.start, self.end = 0, n
        room = len(self.buf) - self.end
        try:
            n = self.sock.recv_into(self.mv[self.end:], min(room, maxread or room))
        except ConnectionResetError:
            self.eof = True
            raise Reset("connection reset by the server (have %r)" % self.pending()[:200])
        if n == 0:
            self.eof = True
            raise Closed("connection closed (have %r)" % self.pending()[:200])
        self.end += n
        return n

    def line(self, limit):
        while True:
            i = self.buf.find(b"\r\n", self.start, self.end)
            if i >= 0:
                out = bytes(self.buf[self.start:i])
                self.start = i + 2
                if b"\r" in out or b"\n" in out:
                    raise ProtocolError("bare CR or LF in %r" % out)
                return out
            if self.end - self.start > limit:
                raise ProtocolError("no CRLF within %d bytes: %r"
                                    % (limit, self.pending()[:100]))
            self._more()

    def expect(self, lit, what):
        while self.end - self.start < len(lit):
            self._more()
        got = bytes(self.buf[self.start:self.start + len(lit)])
        if got != lit:
            raise ProtocolError("%s: expected %r, got %r" % (what, lit, got))
        self.start += len(lit)

    def take(self, n, sink):
        while n:
            if self.start == self.end:
                self._more()
            k = min(n, self.end - self.start)
            sink(self.buf, self.start, self.start + k)
            self.start += k
            n -= k

    def read_head(self):
        line = self.line(8192)
        m = re.fullmatch(rb"(HTTP/1\.[01]) (\d{3}) [\x20-\x7e]*", line)
        if not m:
            raise ProtocolError("bad status line %r" % line)
        headers = []
        while True:
            line = self.line(8192)
            if not line:
                break
            m2 = re.fullmatch(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([\x20-\x7e]*?) ?", line)
            if not m2:
                raise ProtocolError("bad field line %r" % line)
            headers.append((m2.group(1).decode(), m2.group(2).decode()))
        return Reply(m.group(1).decode(), int(m.group(2)), headers)

    def read_chunked(self, r, sink):
        while True:
            line = self.line(64)
            if not re.fullmatch(rb"[0-9a-fA-F]{1,15}", line):
                raise ProtocolError("bad chunk-size line %r after %d bytes in %d chunks"
                                    % (line, r.length, len(r.chunks)))
            size = int(line, 16)
            if size == 0:
                self.expect(b"\r\n", "end of chunked body (no trailer fields expected)")
                return
            r.chunks.append(size)
            self.take(size, sink)
            r.length += size
            self.expect(b"\r\n", "CRLF after chunk %d (%d bytes)" % (len(r.chunks), size))

    def read_response(self, method="GET", sink=None):
        r = self.read_head()
        collect = None
        if sink is None:
            sink = collect = Collect()
        te = r.header_all("Transfer-Encoding")
        cl = r.header_all("Content-Length")
        if te and cl:
            raise ProtocolError("both Transfer-Encoding and Content-Length: %r" % r)
        if len(te) > 1 or len(cl) > 1:
            raise ProtocolError("repeated framing fields: %r" % r)
        if cl and not re.fullmatch(r"\d+", cl[0]):
            raise ProtocolError("bad Content-Length %r" % cl[0])
        if method == "HEAD" or r.status in (204, 304):
            r.framing = "none"
        elif te:
            if te[0] != "chunked":
                raise ProtocolError("Transfer-Encoding %r" % te[0])
            r.framing = "chunked"
            self.read_chunked(r, sink)
        elif cl:
            r.framing = "length"
            self.take(int(cl[0]), sink)
            r.length = int(cl[0])
        else:
            r.framing = "close"
            while True:
                if self.end > self.start:
                    n = self.end - self.start
                    sink(self.buf, self.start, self.end)
                    r.length += n
                    self.start = self.end
                try:
                    self._more()
                except Reset:
                    raise                     # a reset may have lost bytes: not an end
                except Closed:
                    break
        if collect is not None:
            r.body = bytes(collect.data)
        return r

    def closed_within(self, seconds):
        """True if EOF (or a reset) arrives within `seconds` with no byte before it."""
        if self.end > self.start:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(seconds)
        try:
            self._more()
            return False
        except (Closed, ConnectionResetError):
            return self.end == self.start
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    def quiet_for(self, seconds):
        """True if no byte and no EOF arrives within `seconds` (and none is buffered)."""
        if self.end > self.start:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(seconds)
        try:
            self._more()
            return False
        except socket.timeout:
            return True
        except Closed:
            return False
        finally:
            self.sock.settimeout(old)


def get(path, version="HTTP/1.1", method="GET"):
    return request(method, path, version=version, host=None if version == "HTTP/1.0"
                   else "localhost")


# ------------------------------------------------------------------------------------------

def check_items(tc, doc, n, what=""):
    """doc (a json.loads result) is exactly the /json/list?n=n array: same values, same key
    order, ints as ints, booleans as booleans."""
    tc.assertIsInstance(doc, list, what)
    tc.assertEqual(len(doc), n, what)
    for i, it in enumerate(doc):
        ok = (type(it) is dict and list(it) == ITEM_KEYS and type(it["id"]) is int
              and it["id"] == i and it["name"] == "item-%d" % i
              and type(it["price"]) in (int, float) and it["price"] == i * 1.25
              and it["tags"] == ["alpha", "beta"] and type(it["active"]) is bool
              and it["active"] == (i % 2 == 0))
        if not ok:
            tc.fail("%s item %d is %r" % (what, i, it))


class StreamingCase(ServerTestCase):
    def wire(self, **kw):
        w = Wire(self.port, **kw)
        self.track(w)
        return w

    def fetch(self, path, method="GET", version="HTTP/1.1", sink=None, **kw):
        w = self.wire(**kw)
        w.send(get(path, version, method))
        return w, w.read_response(method, sink)

    def assertHealthy(self, w=None):
        """/plaintext answers on w, or on a new connection (then closed)."""
        own = w is None
        w = w or self.wire()
        w.send(get("/plaintext"))
        r = w.read_response()
        self.assertEqual((r.status, r.body, r.framing), (200, HELLO, "length"), repr(r))
        if own:
            w.close()

    def stable_fd_count(self, settle=0.2, within=5.0):
        """The server's open fd count once it has not changed for `settle` seconds."""
        deadline = time.monotonic() + within
        last, since = fd_count(self.server.pid), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            n = fd_count(self.server.pid)
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= settle:
                return n
        self.fail("fd count of the server never settled (last %d)" % last)

    def assertFdsReturn(self, baseline, within=5.0):
        deadline = time.monotonic() + within
        while True:
            n = fd_count(self.server.pid)
            if n == baseline or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self.assertEqual(n, baseline, "server fds: %d open, baseline %d (%s)"
                         % (n, baseline, sorted(os.listdir("/proc/%d/fd" % self.server.pid))))


class JsonListFraming(StreamingCase):
    SERVER_ARGS = ("--workers", "2")

    def test_small_list_has_content_length(self):
        for n in (0, 1, 100):
            w, r = self.fetch("/json/list?n=%d" % n)
            self.assertEqual(r.status, 200, repr(r))
            self.assertEqual(r.framing, "length", repr(r))
            self.assertIsNone(r.header("Transfer-Encoding"), repr(r))
            self.assertEqual(int(r.header("Content-Length")), len(r.body))
            self.assertEqual(r.header("Content-Type"), "application/json")
            check_items(self, json.loads(r.body), n, "n=%d" % n)
            self.assertTrue(w.quiet_for(0.05), "bytes after the body: %r" % w.pending())
            self.assertHealthy(w)
        w, r = self.fetch("/json/list")                     # default n=100
        check_items(self, json.loads(r.body), 100, "default n")

    def test_big_lists_are_chunked(self):
        for n, min_chunks in ((1000, 2), (100000, 10)):
            w, r = self.fetch("/json/list?n=%d" % n)
            self.assertEqual(r.status, 200, repr(r))
            self.assertEqual(r.framing, "chunked", repr(r))
            self.assertEqual(r.header("Transfer-Encoding"), "chunked")
            self.assertIsNone(r.header("Content-Length"), repr(r))
            self.assertEqual(r.header("Content-Type"), "application/json")
            self.assertGreaterEqual(len(r.chunks), min_chunks,
                                    "n=%d: chunks %r" % (n, r.chunks[:20]))
            self.assertEqual(sum(r.chunks), len(r.body))
            check_items(self, json.loads(r.body), n, "n=%d" % n)
            self.assertTrue(w.quiet_for(0.05), "bytes after the last chunk: %r" % w.pending())
            self.assertHealthy(w)                    # the connection is still in step

    def test_curl_decodes_chunked(self):
        for n in (100, 1000, 100000):
            body = curl(self.port, "/json/list?n=%d" % n)
            check_items(self, json.loads(body), n, "curl n=%d" % n)
        # curl --raw keeps the framing: our parser must agree with what curl decoded
        raw = curl(self.port, "/json/list?n=3000", "-i", "--raw")
        head, rest = raw.split(b"\r\n\r\n", 1)
        self.assertIn(b"\r\nTransfer-Encoding: chunked", head)
        body, i = bytearray(), 0
        while True:
            j = rest.index(b"\r\n", i)
            size = int(rest[i:j], 16)
            if size == 0:
                self.assertEqual(rest[j:], b"\r\n\r\n")
                break
            body += rest[j + 2:j + 2 + size]
            self.assertEqual(rest[j + 2 + size:j + 4 + size], b"\r\n")
            i = j + 4 + size
        self.assertEqual(bytes(body), curl(self.port, "/json/list?n=3000"))
        check_items(self, json.loads(bytes(body)), 3000, "curl --raw")

    def test_pipelined_mixed_sizes_in_order(self):
        sizes = [100, 100000, 5, 1000, 0, 20000, 1]
        w = self.wire(timeout=20)
        w.send(b"".join(get("/json/list?n=%d" % n) for n in sizes) + get("/plaintext"))
        for n in sizes:
            r = w.read_response()
            self.assertEqual(r.status, 200, repr(r))
            self.assertEqual(r.framing, "chunked" if n >= 1000 else "length", "n=%d" % n)
            check_items(self, json.loads(r.body), n, "pipelined n=%d" % n)
        r = w.read_response()
        self.assertEqual((r.status, r.body), (200, HELLO))
        self.assertTrue(w.quiet_for(0.05), "extra bytes: %r" % w.pending())
        # still usable, and again with a big one last
        w.send(get("/json/list?n=2") + get("/json/list?n=50000"))
        check_items(self, json.loads(w.read_response().body), 2, "after")
        check_items(self, json.loads(w.read_response().body), 50000, "after")
        self.assertHealthy(w)

    def test_pipelined_spill_then_body_past_first_read(self):
        # /json/list?n=110 (8657 bytes) does not fit the send area behind the n=100 response
        # and goes chunked while the handler writes; the POST behind it is not all in the
        # first 16 KiB read, so the server must read again after that response.
        body = bytes(range(256)) * 80
        w = self.wire(timeout=3)
        w.send(get("/json/list?n=100") + get("/json/list?n=110")
               + request("POST", "/echo", [("Content-Type", "application/x-t")], body)
               + get("/plaintext"))
        check_items(self, json.loads(w.read_response().body), 100, "first")
        check_items(self, json.loads(w.read_response().body), 110, "second")
        r = w.read_response()
        self.assertEqual((r.status, len(r.body)), (200, len(body)), repr(r))
        self.assertTrue(r.body == body, "echo body differs")
        r = w.read_response()
        self.assertEqual((r.status, r.body), (200, HELLO), repr(r))

    def test_http10_is_close_delimited(self):
        for n in (1000, 100000):
            w, r = self.fetch("/json/list?n=%d" % n, version="HTTP/1.0")
            self.assertEqual(r.status, 200, repr(r))
            self.assertEqual(r.framing, "close", repr(r))
            self.assertIsNone(r.header("Transfer-Encoding"), repr(r))
            self.assertIsNone(r.header("Content-Length"), repr(r))
            self.assertEqual(r.header("Connection"), "close", repr(r))
            check_items(self, json.loads(r.body), n, "HTTP/1.0 n=%d" % n)
        # a small one still gets its length, and the connection closes after it
        w, r = self.fetch("/json/list?n=10", version="HTTP/1.0")
        self.assertEqual(r.framing, "length", repr(r))
        check_items(self, json.loads(r.body), 10, "HTTP/1.0 n=10")
        self.assertTrue(w.closed_within(2.0), "HTTP/1.0 connection left open")
        # HTTP/1.0 keep-alive: kept for a length-framed body, closed for a streamed one
        w = self.wire()
        ka = request("GET", "/json/list?n=10", [("Connection", "keep-alive")],
                     version="HTTP/1.0", host=None)
        w.send(ka)
        r = w.read_response()
        self.assertEqual((r.framing, r.header("Connection")), ("length", "keep-alive"), repr(r))
        w.send(ka.replace(b"n=10", b"n=1000"))
        r = w.read_response()
        self.assertEqual((r.framing, r.header("Connection")), ("close", "close"), repr(r))
        check_items(self, json.loads(r.body), 1000, "HTTP/1.0 keep-alive n=1000")

    def test_head_sends_no_body(self):
        _, full = self.fetch("/json/list?n=100000")
        for path in ("/json/list?n=100000", "/json/list?n=1000", "/stream?bytes=1048576",
                     "/json/list?n=10"):
            w = self.wire()
            w.send(get(path, method="HEAD") + get("/json/list?n=3"))
            r = w.read_response("HEAD")
            self.assertEqual(r.status, 200, repr(r))
            te, cl = r.header("Transfer-Encoding"), r.header("Content-Length")
            self.assertIn(te, (None, "chunked"), repr(r))
            if path == "/json/list?n=100000" and cl is not None:
                self.assertEqual(int(cl), len(full.body), repr(r))
            if path == "/json/list?n=10":
                self.assertEqual(cl, str(len(curl(self.port, path))), repr(r))
            # the very next bytes are the next response's status line
            r2 = w.read_response()
            self.assertEqual(r2.status, 200, "after HEAD %s: %r" % (path, r2))
            check_items(self, json.loads(r2.body), 3, "after HEAD %s" % path)
            self.assertTrue(w.quiet_for(0.1), "extra bytes after HEAD %s: %r"
                            % (path, w.pending()))

    def test_bad_n_is_400(self):
        for q in ("n=abc", "n=1000001", "n=-1", "n=", "n=1e3", "n=99999999999999999999"):
            w, r = self.fetch("/json/list?" + q)
            self.assertEqual(r.status, 400, "%s: %r" % (q, r))
            self.assertEqual(r.framing, "length", repr(r))
            self.assertHealthy(w)
        w, r = self.fetch("/json/list?n=1000000", method="HEAD")   # the maximum is allowed
        self.assertEqual(r.status, 200, repr(r))


class StreamBytes(StreamingCase):
    SERVER_ARGS = ("--workers", "2")

    def test_exact_bytes(self):
        w = self.wire(timeout=20)
        for n in (0, 1, 250, 251, 252, 16383, 16384, 16385, 65536, 65537, 10 * MIB):
            w.send(get("/stream?bytes=%d" % n))
            r = w.read_response()
            self.assertEqual(r.status, 200, repr(r))
            self.assertEqual(r.header("Content-Type"), "application/octet-stream")
            if n:
                self.assertEqual(r.framing, "chunked", "n=%d: %r" % (n, r))
            self.assertEqual(len(r.body), n, "n=%d" % n)
            self.assertTrue(r.body == pattern(n), "n=%d: wrong bytes" % n)
        self.assertTrue(w.quiet_for(0.05), "extra bytes: %r" % w.pending())
        self.assertHealthy(w)

    def test_pipelined_streams(self):
        sizes = [70000, 1, 0, 300000, 16384]
        w = self.wire(timeout=20)
        w.send(b"".join(get("/stream?bytes=%d" % n) for n in sizes) + get("/plaintext"))
        for n in sizes:
            r = w.read_response()
            self.assertEqual((r.status, len(r.body)), (200, n), repr(r))
            self.assertTrue(r.body == pattern(n), "n=%d: wrong bytes" % n)
        r = w.read_response()
        self.assertEqual((r.status, r.body), (200, HELLO))

    def test_curl_and_http10(self):
        self.assertTrue(curl(self.port, "/stream?bytes=%d" % (10 * MIB)) == pattern(10 * MIB))
        w, r = self.fetch("/stream?bytes=300000", version="HTTP/1.0")
        self.assertEqual((r.status, r.framing), (200, "close"), repr(r))
        self.assertIsNone(r.header("Content-Length"), repr(r))
        self.assertEqual(r.header("Connection"), "close", repr(r))
        self.assertTrue(r.body == pattern(300000), "HTTP/1.0: %d bytes, wrong" % len(r.body))

    def test_bad_bytes_is_400(self):
        for q in ("bytes=abc", "bytes=-1", "bytes=", "bytes=1x"):
            w, r = self.fetch("/stream?" + q)
            self.assertEqual(r.status, 400, "%s: %r" % (q, r))
            self.assertHealthy(w)


class StreamSlowClient(StreamingCase):
    SERVER_ARGS = ("--workers", "1")

    def test_1gib_to_slow_client_flat_rss(self):
        pid = self.server.pid
        asan = is_asan(pid)
        # warm-up: the pools a stream uses have been touched once
        _, r = self.fetch("/stream?bytes=%d" % (4 * MIB), sink=PatternCheck())
        self.assertEqual(r.length, 4 * MIB)
        time.sleep(0.1)
        base = rss_kib(pid)
        samples = [base]

        w = self.wire(rcvbuf=16 * KIB, timeout=30 if asan else 10, bufsize=4 * MIB)
        w.send(get("/stream?bytes=%d" % GIB) + get("/plaintext"))
        # the trickle: a few KiB every 20 ms for 1.5 s
        t0 = time.monotonic()
        cpu0 = cpu_seconds(pid)
        trickled = 0
        while time.monotonic() - t0 < 1.5:
            trickled += w._more(maxread=4 * KIB)
            samples.append(rss_kib(pid))
            time.sleep(0.02)
        t_trickle = time.monotonic() - t0
        cpu_trickle = cpu_seconds(pid) - cpu0
        rss_trickle = max(samples)
        # then as fast as possible, checking every byte
        w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)
        nxt = [64 * MIB]

        def progress(off):
            if off >= nxt[0]:
                samples.append(rss_kib(pid))
                nxt[0] += 64 * MIB

        t1 = time.monotonic()
        r = w.read_response(sink=PatternCheck(progress))
        t_fast = time.monotonic() - t1
        samples.append(rss_kib(pid))
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.framing, "chunked", repr(r))
        self.assertEqual(r.length, GIB)
        self.assertEqual(sum(r.chunks), GIB)
        r2 = w.read_response()                        # nothing stray after the last chunk
        self.assertEqual((r2.status, r2.body), (200, HELLO), repr(r2))
        self.assertTrue(w.quiet_for(0.05), "extra bytes: %r" % w.pending())
        growth = max(samples) - base
        sys.stdout.write(
            "      1 GiB%s: trickle %.2fs (%d KiB read, server CPU %.3fs, RSS max +%d KiB), "
            "rest %.2fs (%.0f MiB/s), %d chunks (%d..%d bytes); RSS base %d KiB, max +%d KiB "
            "over %d samples\n" % (" [ASan]" if asan else "", t_trickle, trickled // KIB,
                                    cpu_trickle, rss_trickle - base, t_fast,
                                    GIB / MIB / t_fast, len(r.chunks), min(r.chunks),
                                    max(r.chunks), base, growth, len(samples)))
        sys.stdout.flush()
        self.assertLess(growth, 1024, "server RSS grew by %d KiB while streaming 1 GiB "
                        "(samples %r)" % (growth, samples))
        # a slow reader must not make the producer spin
        self.assertLess(cpu_trickle, 0.5 * t_trickle,
                        "server used %.2fs CPU during a %.2fs trickle" % (cpu_trickle, t_trickle))


class ProducerTurns(StreamingCase):
    SERVER_ARGS = ("--workers", "1")

    def test_head_of_an_endless_stream_produces_nothing(self):
        # regression: a HEAD's producer was called forever (what it writes for HEAD is
        # counted, never queued, so the socket never filled): the one worker spun
        pid = self.server.pid
        w = self.wire(timeout=2)
        w.send(get("/stream?bytes=900000000000000000", method="HEAD") + get("/plaintext"))
        r = w.read_response("HEAD")
        self.assertEqual(r.status, 200, repr(r))
        self.assertIsNone(r.header("Content-Length"), repr(r))
        self.assertEqual(r.header("Content-Type"), "application/octet-stream")
        r = w.read_response()                 # the very next bytes are the next response
        self.assertEqual((r.status, r.body, r.framing), (200, HELLO, "length"), repr(r))
        self.assertTrue(w.quiet_for(0.05), "extra bytes: %r" % w.pending())
        cpu0 = cpu_seconds(pid)
        time.sleep(0.3)
        self.assertHealthy()
        self.assertLess(cpu_seconds(pid) - cpu0, 0.1, "the worker is busy after a HEAD")


class ProducerAbort(StreamingCase):
    SERVER_ARGS = ("--workers", "1")

    def test_reset_mid_stream(self):
        self.assertHealthy()
        baseline = self.stable_fd_count()
        for k in range(12):
            w = self.wire(rcvbuf=16 * KIB)
            w.send(get("/stream?bytes=%d" % GIB))
            if k % 3 == 0:
                r = w.read_head()
                self.assertEqual(r.status, 200, repr(r))
                got = 0
                while got < 100 * KIB:
                    got += w._more(maxread=16 * KIB)
            elif k % 3 == 1:
                time.sleep(0.1)                   # the server's send buffer fills up
            if k % 2 == 0:
                w.reset()
            else:
                w.close()                         # FIN with unread data: also a RST
        self.assertHealthy()
        self.assertFdsReturn(baseline)
        # the producer machinery still works for the next one
        w, r = self.fetch("/stream?bytes=%d" % (3 * MIB), sink=PatternCheck())
        self.assertEqual((r.status, r.framing, r.length), (200, "chunked", 3 * MIB))
        w.send(get("/json/list?n=20000"))
        check_items(self, json.loads(w.read_response().body), 20000, "after aborts")
        w.close()
        self.assertFdsReturn(baseline)

    def test_reset_during_json_list(self):
        baseline = self.stable_fd_count()
        for _ in range(5):
            w = self.wire(rcvbuf=16 * KIB)
            w.send(get("/json/list?n=1000000"))
            w.read_head()
            w._more(maxread=8 * KIB)
            w.reset()
        self.assertHealthy()
        self.assertFdsReturn(baseline)


class Deferred(StreamingCase):
    SERVER_ARGS = ("--workers", "1")
    BODY = b"delayed 300 ms\n"

    def test_50_concurrent_delays_one_worker(self):
        ws = [self.wire(timeout=10) for _ in range(50)]
        sent, t0 = [], time.monotonic()
        for w in ws:
            w.send(get("/delay?ms=300"))
            sent.append(time.monotonic())
        # meanwhile the worker answers others at once
        time.sleep(0.05)
        probe = self.wire()
        tp = time.monotonic()
        self.assertHealthy(probe)
        dt_plain = time.monotonic() - tp
        self.assertLess(time.monotonic() - t0, 0.3, "the probe itself came too late to count")
        done = []
        for w, ts in zip(ws, sent):
            r = w.read_response()
            done.append(time.monotonic())
            self.assertEqual(r.status, 200, repr(r))
            self.assertEqual(r.body, self.BODY)
            self.assertEqual(r.framing, "length", repr(r))
            self.assertGreaterEqual(done[-1] - ts, 0.29, "answered before its delay")
        total = max(done) - t0
        sys.stdout.write("      50 x /delay?ms=300 on 1 worker: %.3fs; /plaintext meanwhile "
                         "%.1f ms\n" % (total, dt_plain * 1000))
        sys.stdout.flush()
        self.assertLess(dt_plain, 0.1, "/plaintext took %.3fs while delays waited" % dt_plain)
        self.assertLess(total, 3.0)
        for w in ws:                                  # keep-alive still works
            self.assertHealthy(w)

    def test_client_leaves_before_resume(self):
        self.assertHealthy()
        baseline = self.stable_fd_count()
        for k in range(20):
            w = self.wire()
            w.send(get("/delay?ms=%d" % (200 + 10 * k)))
            if k % 2:
                w.reset()
            else:
                w.close()
        self.assertHealthy()
        time.sleep(0.5)                               # every delay has expired
        self.assertHealthy()
        self.assertFdsReturn(baseline)
        # a deferred request on a half-closed connection is still answered
        w = self.wire()
        w.send(get("/delay?ms=100"))
        w.sock.shutdown(socket.SHUT_WR)
        r = w.read_response()
        self.assertEqual((r.status, r.body), (200, b"delayed 100 ms\n"))
        self.assertTrue(w.closed_within(2.0), "no close after the answer to a half-closed "
                        "connection (have %r)" % w.pending())
        w.close()
        self.assertFdsReturn(baseline)

    def test_pipelined_order(self):
        w = self.wire()
        t0 = time.monotonic()
        w.send(get("/delay?ms=100") + get("/plaintext"))
        r = w.read_response()
        t1 = time.monotonic() - t0
        self.assertEqual((r.status, r.body), (200, b"delayed 100 ms\n"), repr(r))
        self.assertGreaterEqual(t1, 0.095)
        r = w.read_response()
        self.assertEqual((r.status, r.body), (200, HELLO), repr(r))
        t0 = time.monotonic()
        w.send(get("/delay?ms=200") + get("/delay?ms=50") + get("/json/list?n=2000")
               + get("/delay?ms=0") + get("/stream?bytes=100000"))
        r = w.read_response()
        self.assertEqual((r.status, r.body), (200, b"delayed 200 ms\n"), repr(r))
        r = w.read_response()
        self.assertEqual((r.status, r.body), (200, b"delayed 50 ms\n"), repr(r))
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        r = w.read_response()
        check_items(self, json.loads(r.body), 2000, "after delays")
        r = w.read_response()
        self.assertEqual((r.status, r.body), (200, b"delayed 0 ms\n"), repr(r))
        r = w.read_response()
        self.assertTrue(r.body == pattern(100000), "stream after delays")
        self.assertTrue(w.quiet_for(0.05), "extra bytes: %r" % w.pending())

    def test_pipelined_behind_deferred_past_receive_buffer(self):
        # more than one receive buffer (16 KiB) of requests behind a deferred one: they wait
        # for it, they are not a reason to drop the connection
        w = self.wire(timeout=5)
        w.send(get("/delay?ms=100") + get("/plaintext") * 400)
        r = w.read_response()
        self.assertEqual((r.status, r.body), (200, b"delayed 100 ms\n"), repr(r))
        for k in range(400):
            r = w.read_response()
            self.assertEqual((r.status, r.body), (200, HELLO), "response %d: %r" % (k, r))
        body = bytes(range(256)) * 80
        w = self.wire(timeout=5)
        w.send(get("/delay?ms=100")
               + request("POST", "/echo", [("Content-Type", "application/x-t")], body))
        r = w.read_response()
        self.assertEqual((r.status, r.body), (200, b"delayed 100 ms\n"), repr(r))
        r = w.read_response()
        self.assertTrue(r.status == 200 and r.body == body, repr(r))

    def test_bad_ms_is_400(self):
        for q in ("ms=abc", "ms=-1", "ms=60001", "ms="):
            w, r = self.fetch("/delay?" + q)
            self.assertEqual(r.status, 400, "%s: %r" % (q, r))
            self.assertHealthy(w)
