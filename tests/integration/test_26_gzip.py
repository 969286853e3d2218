"""26. gzip middleware (--gzip): exact bytes through curl --compressed and a raw socket,
q-values, what is left alone, a HEAD carrying what its GET would, chunked + pipelining,
and no allocation with a warm pool."""
import gzip
import os
import signal
import subprocess
import tempfile
import time
import unittest
import zlib

from harness import HELLO, ServerTestCase, malloc_calls, request
from test_12_zero_alloc import json_list_bytes
from test_20_streaming import Wire


def get(path, headers=(), method="GET", version="HTTP/1.1"):
    return request(method, path, list(headers), version=version,
                   host=None if version == "HTTP/1.0" else "localhost")


def gunzip(data):
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data) + d.flush()
    assert d.eof and not d.unused_data, "one complete gzip member, nothing after it"
    return out


class Gzip(ServerTestCase):
    SERVER_ARGS = ("--gzip", "--workers", "1")

    def fetch(self, path, ae="gzip", method="GET", version="HTTP/1.1"):
        w = Wire(self.port)
        hdrs = [("Accept-Encoding", ae)] if ae is not None else []
        w.send(get(path, hdrs, method=method, version=version))
        return w.read_response(method)

    def test_compressed_bytes_equal_the_document(self):
        for n in (3, 100, 1000, 100000):
            want = json_list_bytes(n)
            r = self.fetch("/json/list?n=%d" % n)
            self.assertEqual(r.header("Vary"), "Accept-Encoding", n)
            if len(want) < 256:  # below min_length: as it is
                self.assertIsNone(r.header("Content-Encoding"))
                self.assertEqual(r.body, want)
                continue
            self.assertEqual(r.header("Content-Encoding"), "gzip", n)
            self.assertEqual(gunzip(r.body), want, n)
            self.assertLess(len(r.body), len(want) // 3)
            self.assertEqual(r.framing, "length" if len(r.body) < 16384 else "chunked")
        out = subprocess.run(["curl", "-sS", "--compressed", "http://127.0.0.1:%d/json/list?n=20000"
                              % self.port], capture_output=True, timeout=60)
        self.assertEqual(out.stdout, json_list_bytes(20000))

    def test_q_values_and_what_is_left_alone(self):
        plain = json_list_bytes(1000)
        # "gzip;q=0, *": refused by name, even though * is allowed
        for ae in ("gzip;q=0", "identity", "br", None, "gzip;q=0, *"):
            r = self.fetch("/json/list?n=1000", ae=ae)
            self.assertIsNone(r.header("Content-Encoding"), ae)
            self.assertEqual(r.body, plain, ae)
        for ae in ("gzip", "GZIP;q=0.5", "br, gzip;q=0.001", "*"):
            r = self.fetch("/json/list?n=1000", ae=ae)
            self.assertEqual(r.header("Content-Encoding"), "gzip", ae)
            self.assertEqual(gunzip(r.body), plain, ae)
        # HEAD: the same encoding and Vary as its GET (see test_head_carries_what_get_would)
        h = self.fetch("/json/list?n=100", method="HEAD")
        self.assertEqual(h.header("Content-Encoding"), "gzip")
        self.assertEqual(h.header("Vary"), "Accept-Encoding")
        # protobuf is not a compressible type; a static file keeps sendfile (no encoding)
        self.assertIsNone(self.fetch("/proto?n=100").header("Content-Encoding"))
        self.assertIsNone(self.fetch("/index.html").header("Content-Encoding"))
        # a 206 from the static handler stays untouched
        w = Wire(self.port)
        w.send(get("/index.html", [("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")]))
        self.assertIsNone(w.read_response().header("Content-Encoding"))

    # the fields a HEAD must share with its GET (RFC 9110 §9.3.2); Content-Length apart
    SAME = ("Content-Type", "Content-Encoding", "Vary", "ETag", "Last-Modified",
            "Accept-Ranges", "Cache-Control")

    def assertHeadLikeGet(self, path, ae):
        g = self.fetch(path, ae=ae)
        h = self.fetch(path, ae=ae, method="HEAD")
        what = "%s (Accept-Encoding: %s)" % (path, ae)
        self.assertEqual((g.status, h.status), (200, 200), what)
        for name in self.SAME:
            self.assertEqual(h.header_all(name), g.header_all(name), "%s: %s" % (what, name))
        # RFC 9110 §8.6: a HEAD's Content-Length, if any, is the length of the content the
        # GET sends, whatever its framing (a chunked GET's decoded body). A body from a
        # producer is not produced for HEAD: no length then, as its GET is chunked.
        if g.framing == "length":
            self.assertEqual(h.header("Content-Length"), g.header("Content-Length"), what)
        elif h.header("Content-Length") is not None:
            self.assertEqual(h.header("Content-Length"), str(len(g.body)), what)
        return g, h

    def test_head_carries_what_get_would(self):
        for ae in ("gzip", None):
            for path in ("/json", "/plaintext", "/json/list?n=3", "/json/list?n=100",
                         "/json/list?n=1000", "/json/list?n=100000", "/json/list64k",
                         "/index.html"):
                self.assertHeadLikeGet(path, ae)
        g, h = self.assertHeadLikeGet("/json/list?n=100000", "gzip")   # a producer's body
        self.assertEqual(h.header("Content-Encoding"), "gzip")
        self.assertEqual((g.framing, h.header("Content-Length")), ("chunked", None))
        # 64 KiB by reference: the GET streams (chunked) as the send buffers fill, the HEAD
        # compresses the same bytes and names their encoded length
        g, h = self.assertHeadLikeGet("/json/list64k", "gzip")
        self.assertEqual(h.header("Content-Encoding"), "gzip")
        self.assertEqual(h.header("Content-Length"), str(len(g.body)))
        g, h = self.assertHeadLikeGet("/json/list?n=1000", "gzip")
        self.assertEqual(g.framing, "length")
        self.assertEqual(h.header("Content-Encoding"), "gzip")
        self.assertEqual(gunzip(g.body), json_list_bytes(1000))

    def test_http10_streams_and_pipelining(self):
        # HTTP/1.0: no chunked, close-delimited compressed body
        r = self.fetch("/json/list?n=100000", version="HTTP/1.0")
        self.assertEqual(r.framing, "close")
        self.assertEqual(gunzip(r.body), json_list_bytes(100000))
        # pipelined mix of compressed, small and big, plain: in order, each exact
        w = Wire(self.port)
        paths = ["/json/list?n=100", "/plaintext", "/json/list?n=50000", "/json/list?n=2",
                 "/stream?bytes=100000", "/json/list?n=1000"]
        w.send(b"".join(get(p, [("Accept-Encoding", "gzip")]) for p in paths))
        for p in paths:
            r = w.read_response()
            self.assertEqual(r.status, 200, p)
            if p == "/plaintext":
                self.assertEqual(r.body, HELLO)
            elif p.startswith("/stream"):  # application/octet-stream: not compressed
                self.assertIsNone(r.header("Content-Encoding"))
                self.assertEqual(len(r.body), 100000)
            else:
                n = int(p.split("=")[1])
                body = gunzip(r.body) if r.header("Content-Encoding") else r.body
                self.assertEqual(body, json_list_bytes(n), p)

    def test_client_leaving_mid_stream_returns_the_slot(self):
        # 80 gzip streams abandoned half way: every slot must come back (64 per worker)
        for _ in range(80):
            w = Wire(self.port)
            w.send(get("/json/list?n=200000", [("Accept-Encoding", "gzip")]))
            w.sock.recv(1000)
            w.sock.close()
        r = self.fetch("/json/list?n=1000")
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        self.assertEqual(gunzip(r.body), json_list_bytes(1000))


class GzipReset(ServerTestCase):
    # a small loopback send buffer: a stalled stream holds a few KiB, not 256 KiB of gzip
    SERVER_ARGS = ("--gzip", "--workers", "1", "--loopback-sndbuf", "4096")

    def test_connection_reset_mid_stream_returns_the_slot(self):
        # 80 gzip streams (more than the 64 slots of the one worker) stalled on a full socket,
        # then reset (SO_LINGER 0): each connection dies while its producer waits for room, not
        # in a write. Every slot must come back, or the next response goes uncompressed.
        wires = [Wire(self.port, rcvbuf=4096, bufsize=4096) for _ in range(80)]
        for w in wires:
            self.track(w)
            w.send(get("/json/list?n=1000000", [("Accept-Encoding", "gzip")]))
        for w in wires:
            self.assertTrue(w.sock.recv(100).startswith(b"HTTP/1.1 200 "))  # streaming
        for w in wires:
            w.reset()
        deadline = time.monotonic() + 1.0
        while True:  # the resets may reach the worker just after the next connection
            w = Wire(self.port)
            w.send(get("/json/list?n=1000", [("Accept-Encoding", "gzip")]))
            r = w.read_response()
            w.close()
            if r.header("Content-Encoding") == "gzip" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(r.header("Content-Encoding"), "gzip", "gzip slots leaked")
        self.assertEqual(gunzip(r.body), json_list_bytes(1000))


@unittest.skipUnless(os.environ.get("ZH_SHIM"), "ZH_SHIM not set (no malloc-counting shim)")
class GzipZeroAlloc(ServerTestCase):
    AUTO_START = False

    def test_warm_gzip_responses_allocate_nothing(self):
        count_file = tempfile.mktemp(prefix="zh-mc-gz-")
        env = dict(os.environ, LD_PRELOAD=os.path.abspath(os.environ["ZH_SHIM"]),
                   ZH_MALLOC_COUNT_FILE=count_file)
        srv = self.start_server(("--gzip", "--workers", "1"), env)

        def count():
            return malloc_calls(srv.pid, count_file)

        w = Wire(srv.port)
        sizes = (100, 1000, 20000)
        docs = {n: json_list_bytes(n) for n in sizes}

        def run(k):
            for i in range(k):
                n = sizes[i % 3]
                w.send(get("/json/list?n=%d" % n, [("Accept-Encoding", "gzip")]))
                r = w.read_response()
                self.assertEqual(gunzip(r.body), docs[n])
        run(60)
        a = count()
        run(600)
        b = count()
        print("\n  600 gzip responses (warm): %d malloc-family calls" % (b - a))
        self.assertEqual(b - a, 0)
        os.unlink(count_file)
