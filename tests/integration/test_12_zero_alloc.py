"""12. Zero allocation on the request path.

Runs only when ZH_SHIM names the malloc-counting LD_PRELOAD shim (tests/malloc_count.c).
Contract: the shim counts malloc/calloc/realloc/free/posix_memalign/aligned_alloc/memalign
calls and, on SIGRTMIN+3, writes the current total as a decimal number to the file named by
ZH_MALLOC_COUNT_FILE (overwriting it).
"""
import json
import os
import re
import signal
import sys
import tempfile
import time
import unittest
import uuid

from harness import HELLO, JSON, ServerTestCase, malloc_calls, request
from test_18_proto import itemlist_bytes

SHIM = os.environ.get("ZH_SHIM", "")
CONNS = 8
BATCH = 50
WARMUP = 2000
MEASURED = 100000
BLOB = os.urandom(256 * 1024)
PROTO_BODIES = [itemlist_bytes(n) for n in range(101)]


def json_list_bytes(n):
    """The /json/list?n=n document: doubles as the shortest text that reads back (5.0 is 5)."""
    def price(i):
        p = i * 1.25
        return "%d" % p if p == int(p) else repr(p)
    return ("[" + ",".join('{"id":%d,"name":"item-%d","price":%s,"tags":["alpha","beta"],'
                           '"active":%s}' % (i, i, price(i), "false" if i % 2 else "true")
                           for i in range(n)) + "]").encode()


# ~10 KiB (Content-Length) and ~1 MiB (chunked: handler, then a producer, 48 KiB a call)
JSON_LISTS = {n: json_list_bytes(n) for n in (110, 11000)}
assert [d["price"] for d in json.loads(JSON_LISTS[110])] == [i * 1.25 for i in range(110)]


def user_request(i):
    """GET /users/{id} or /users/{id}/files/{path...} (the demo's path parameters): every
    other one percent-encoded, so zh_req_param decodes into the I/O context."""
    if i % 2:
        return request("GET", "/users/%d" % i), b"route=/users/{id} id=%d path=-\n" % i
    return (request("GET", "/users/u%%20%d/files/a%%2Fb/c%d.txt" % (i, i)),
            b"route=/users/{id}/files/{path...} id=u %d path=a/b/c%d.txt\n" % (i, i))


def make_request(i, tag):
    """Request i of a deterministic mix: /plaintext, /json, POST /echo with mostly small
    bodies, now and then one larger than the receive buffer (large pool) and one larger
    than a large buffer (body pool); one in 11 is GET /proto?n=0..100 (zh_send_protobuf);
    one in 53 is /json/list?n=110 (~10 KiB), one in 997 /json/list?n=11000 (~1 MiB); one
    in 5 of the rest uses path parameters (user_request)."""
    if i % 997 == 500 or i % 53 == 30:
        n = 11000 if i % 997 == 500 else 110
        return request("GET", "/json/list?n=%d" % n), JSON_LISTS[n]
    if i % 11 == 7:
        n = i % 101
        return request("GET", "/proto?n=%d" % n), PROTO_BODIES[n]
    if i % 5 == 4:
        return user_request(i)
    kind = i % 3
    if kind == 0:
        return request("GET", "/plaintext"), HELLO
    if kind == 1:
        return request("GET", "/json"), JSON
    prefix = ("%s:%d:" % (tag, i)).encode()
    if i % 997 == 2:
        size = 200 * 1024 + i % 1000          # > 64 KiB: pooled body buffer
    elif i % 101 == 2:
        size = 20 * 1024 + i % 500            # > 16 KiB receive buffer
    else:
        size = i % 200
    body = prefix + BLOB[i % 1000: i % 1000 + size]
    return request("POST", "/echo", [("Content-Type", "application/x-za")], body), body


@unittest.skipUnless(SHIM, "ZH_SHIM not set (no malloc-counting shim)")
class ZeroAlloc(ServerTestCase):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.isfile(SHIM), "ZH_SHIM=%r does not exist" % SHIM)
        self.count_file = os.path.join(tempfile.gettempdir(),
                                       "zh-malloc-%d-%s" % (os.getpid(), uuid.uuid4().hex))
        self.addCleanup(lambda: os.path.exists(self.count_file) and os.unlink(self.count_file))
        self.server = self.start_server(
            self.SERVER_ARGS, {"LD_PRELOAD": os.path.abspath(SHIM),
                 "ZH_MALLOC_COUNT_FILE": self.count_file})
        self.port = self.server.port

    def snapshot(self):
        return malloc_calls(self.server.pid, self.count_file)

    def drive(self, conns, total, tag):
        """Sends `total` requests round-robin over conns in pipelined batches of BATCH and
        checks every response: status 200 and the exact body."""
        done = 0
        i = 0
        while done < total:
            pending = []
            for c in conns:
                n = min(BATCH, total - done)
                if n <= 0:
                    break
                reqs, bodies = [], []
                for _ in range(n):
                    rq, body = make_request(i, tag)
                    reqs.append(rq)
                    bodies.append(body)
                    i += 1
                c.send(b"".join(reqs))
                pending.append((c, bodies))
                done += n
            for c, bodies in pending:
                for body in bodies:
                    self.read_ok(c, body)
        return done

    def read_ok(self, c, body):
        buf = c.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if c._fill() == 0:
                self.fail("connection closed while waiting for a response")
        if not buf.startswith(b"HTTP/1.1 200 "):
            self.fail("bad response %r" % bytes(buf[:200]))
        k = buf.find(b"\r\nContent-Length: ", 0, end)
        if k < 0 and buf.find(b"\r\nTransfer-Encoding: chunked\r\n", 0, end + 2) >= 0:
            return self.read_chunked_ok(c, end + 4, body)
        if k < 0:
            self.fail("no Content-Length in %r" % bytes(buf[:end]))
        k += 18
        n = int(buf[k:buf.find(b"\r\n", k)])
        start = end + 4
        while len(buf) < start + n:
            if c._fill(max(65536, start + n - len(buf))) == 0:
                self.fail("connection closed inside a body")
        if n != len(body) or buf[start:start + n] != body:
            self.fail("wrong body: got %r..., expected %r..." % (bytes(buf[start:start + 60]),
                                                                 body[:60]))
        del buf[:start + n]

    def read_chunked_ok(self, c, pos, body):
        """A chunked body at c.buf[pos:]: strict framing (hex size line, CRLF after each
        chunk's data, 0 CRLF CRLF) whose decoded bytes equal body."""
        buf, got = c.buf, bytearray()
        while True:
            j = buf.find(b"\r\n", pos)
            while j < 0:
                if c._fill() == 0:
                    self.fail("connection closed inside a chunked body")
                j = buf.find(b"\r\n", pos)
            if not re.fullmatch(rb"[0-9a-fA-F]{1,15}", buf[pos:j]):
                self.fail("bad chunk-size line %r after %d body bytes"
                          % (bytes(buf[pos:j + 2]), len(got)))
            size, pos = int(buf[pos:j], 16), j + 2
            while len(buf) < pos + size + 2:
                if c._fill(max(65536, pos + size + 2 - len(buf))) == 0:
                    self.fail("connection closed inside a chunked body")
            if buf[pos + size:pos + size + 2] != b"\r\n":
                self.fail("no CRLF after a %d-byte chunk at body offset %d: %r"
                          % (size, len(got), bytes(buf[pos + size:pos + size + 20])))
            got += buf[pos:pos + size]
            pos += size + 2
            if size == 0:
                break
        if got != body:
            self.fail("wrong chunked body: %d bytes, expected %d" % (len(got), len(body)))
        del buf[:pos]

    def test_zero_allocations_per_request(self):
        conns = [self.conn(timeout=10) for _ in range(CONNS)]
        self.drive(conns, WARMUP, "warm")
        a = self.snapshot()
        t0 = time.monotonic()
        n = self.drive(conns, MEASURED, "run")
        dt = time.monotonic() - t0
        b = self.snapshot()
        for c in conns:
            self.assertTrue(c.no_data_for(0.05), "extra bytes after the last response")
        sys.stdout.write("      zero-alloc: %d requests on %d connections in %.1fs, "
                         "malloc-family calls before=%d after=%d delta=%d\n"
                         % (n, len(conns), dt, a, b, b - a))
        sys.stdout.flush()
        self.assertEqual(n, MEASURED)
        self.assertEqual(b - a, 0, "%d malloc-family calls during %d requests" % (b - a, n))
