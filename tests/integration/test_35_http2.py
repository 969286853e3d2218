"""35. HTTP/2 (h2c with prior knowledge; libzerohttp-h2 on nghttp2).

Clients: curl --http2-prior-knowledge, nghttp and h2load (nghttp2-client), and the
frame-level cases of h2peer.py, run with /usr/bin/python3 (Debian's python3-h2; the runner's
python3 may not have it). Every client is a subprocess with a timeout; servers are stopped
by the harness, by PID.
"""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

from harness import HELLO, HOST, ServerTestCase, free_port, malloc_calls, metrics, request

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "h2peer.py")
SYS_PY = "/usr/bin/python3"
SHIM = os.environ.get("ZH_SHIM", "")


def have_h2():
    try:
        return subprocess.run([SYS_PY, "-c", "import h2"], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


HAVE_CURL_H2 = shutil.which("curl") is not None and \
    "HTTP2" in subprocess.run(["curl", "-V"], capture_output=True, text=True).stdout
HAVE_NGHTTP = shutil.which("nghttp") is not None and shutil.which("h2load") is not None
HAVE_H2 = have_h2()


def curl(port, path, h2=True, data=None, method=None, headers=(), timeout=30):
    """(status, http_version, body, headers dict) of one request with curl."""
    with tempfile.TemporaryDirectory() as d:
        out, hdr = os.path.join(d, "body"), os.path.join(d, "head")
        cmd = ["curl", "-s", "-o", out, "-D", hdr, "-w", "%{http_code} %{http_version}",
               "--max-time", str(timeout)]
        cmd.append("--http2-prior-knowledge" if h2 else "--http1.1")
        if method == "HEAD":
            cmd.append("-I")
        elif method:
            cmd += ["-X", method]
        for h in headers:
            cmd += ["-H", h]
        if data is not None:
            src = os.path.join(d, "up")
            with open(src, "wb") as f:
                f.write(data)
            cmd += ["--data-binary", "@" + src]
        cmd.append("http://%s:%d%s" % (HOST, port, path))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)
        if r.returncode != 0:
            raise AssertionError("curl %r: exit %d %s" % (cmd, r.returncode, r.stderr))
        status, version = r.stdout.split()
        with open(out, "rb") if os.path.exists(out) else open(os.devnull, "rb") as f:
            body = f.read()
        heads = {}
        with open(hdr, "rb") as f:
            for line in f.read().decode("latin-1").split("\r\n")[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    heads[k.strip().lower()] = v.strip()
        return int(status), version, body, heads


def pattern(n):
    """What GET /stream?bytes=n answers: byte i is i mod 251."""
    return bytes(range(251)) * (n // 251) + bytes(range(n % 251))


@unittest.skipUnless(HAVE_CURL_H2, "curl without HTTP/2")
class Http2Clients(ServerTestCase):
    """curl, nghttp and h2load against the h2c listener: the same routes as HTTP/1.1."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="zh-h2-")
        cls.files = {"empty.bin": b"", "4k.bin": os.urandom(4096),
                     "1m.bin": os.urandom(1 << 20)}
        cls.files["100m.bin"] = os.urandom(1 << 20) * 100
        for name, data in cls.files.items():
            with open(os.path.join(cls.root, name), "wb") as f:
                f.write(data)
        with open(os.path.join(cls.root, "index.html"), "wb") as f:
            f.write(b"<h1>zerohttp over h2</h1>\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.SERVER_ARGS = ("--root", self.root)
        super().setUp()

    def test_curl_prior_knowledge(self):
        status, version, body, heads = curl(self.port, "/plaintext")
        self.assertEqual((status, version, body), (200, "2", HELLO))
        self.assertEqual(heads.get("content-length"), str(len(HELLO)))
        self.assertNotIn("connection", heads)

    @unittest.skipUnless(HAVE_NGHTTP, "nghttp2-client missing")
    def test_nghttp(self):
        url = "http://%s:%d/plaintext" % (HOST, self.port)
        r = subprocess.run(["nghttp", url], capture_output=True, timeout=20)
        self.assertEqual((r.returncode, r.stdout), (0, HELLO), r.stderr)
        r = subprocess.run(["nghttp", "-v", url], capture_output=True, timeout=20)
        self.assertIn(b":status: 200", r.stdout)

    def test_static_files_byte_exact_by_sendfile(self):
        before = metrics(self.port)["zerohttp_syscalls_total{call=\"sendfile\"}"]
        for name, data in self.files.items():
            status, version, body, heads = curl(self.port, "/" + name, timeout=60)
            self.assertEqual((status, version), (200, "2"), name)
            self.assertEqual(len(body), len(data), name)
            self.assertTrue(body == data, "%s differs" % name)
            self.assertEqual(heads.get("content-length"), str(len(data)))
        after = metrics(self.port)["zerohttp_syscalls_total{call=\"sendfile\"}"]
        # the file bytes after their DATA frame headers go by sendfile, not through memory
        self.assertGreaterEqual(after - before, 3)

    def test_request_bodies_byte_exact(self):
        for n in (0, 4096, 100000, 1 << 20):
            data = os.urandom(n)
            status, _, body, _ = curl(self.port, "/echo", data=data,
                                      headers=("Content-Type: application/x-b",))
            self.assertEqual(status, 200, n)
            self.assertTrue(body == data, "echo of %d bytes differs" % n)
            # without content-length: the end of the stream ends the body
            status, _, body, _ = curl(self.port, "/echo", data=data,
                                      headers=("Content-Type: application/x-b",
                                               "Transfer-Encoding: chunked"))
            self.assertEqual(status, 200, n)
            self.assertTrue(body == data, "echo of %d bytes (no length) differs" % n)

    def test_streaming_upload_flow_control(self):
        """A body larger than max_body to a streaming route (/upload): its window opens as
        the handler reads, so it passes through without a body buffer, as on HTTP/1.1."""
        data = os.urandom(1 << 20) * 24                 # 24 MiB > max_body (1 MiB)
        before = metrics(self.port)
        h2 = curl(self.port, "/upload", data=data, headers=("Content-Type: application/x-b",))
        h2c = curl(self.port, "/upload", data=data,
                   headers=("Content-Type: application/x-b", "Transfer-Encoding: chunked"))
        h1 = curl(self.port, "/upload", h2=False, data=data,
                  headers=("Content-Type: application/x-b",))
        self.assertEqual((h2[0], h2c[0], h1[0]), (200, 200, 200))
        self.assertTrue(h2[2].startswith(b"%d " % len(data)), h2[2])
        self.assertEqual(h2[2], h1[2])
        self.assertEqual(h2c[2], h1[2])
        after = metrics(self.port)
        self.assertEqual(after["zerohttp_body_buffers_high_water"],
                         before["zerohttp_body_buffers_high_water"])

    def test_producer_and_deferred_responses(self):
        for n in (0, 1, 70000, 3000000):
            status, _, body, _ = curl(self.port, "/stream?bytes=%d" % n)
            self.assertEqual(status, 200)
            self.assertTrue(body == pattern(n), "stream of %d bytes differs" % n)
        t0 = time.monotonic()
        status, _, body, _ = curl(self.port, "/delay?ms=150")
        self.assertEqual((status, body), (200, b"delayed 150 ms\n"))
        self.assertGreaterEqual(time.monotonic() - t0, 0.14)

    def test_shared_behaviour_over_http1_and_h2c(self):
        """The same requests over HTTP/1.1 and h2c: same status, body and fields."""
        cases = [("GET", "/plaintext", None), ("GET", "/json", None),
                 ("HEAD", "/plaintext", None), ("GET", "/nope", None),
                 ("DELETE", "/plaintext", None), ("POST", "/echo", b"x" * 5000),
                 ("GET", "/stream?bytes=100000", None), ("GET", "/delay?ms=20", None),
                 ("GET", "/index.html", None), ("GET", "/json/list?n=11000", None),
                 ("GET", "/proto?n=5", None), ("GET", "/4k.bin", None),
                 ("OPTIONS", "/plaintext", None)]
        for method, path, data in cases:
            h1 = curl(self.port, path, h2=False, method=method, data=data,
                      headers=("Content-Type: application/x-b",) if data else ())
            h2 = curl(self.port, path, h2=True, method=method, data=data,
                      headers=("Content-Type: application/x-b",) if data else ())
            what = "%s %s" % (method, path)
            self.assertEqual((h1[1], h2[1]), ("1.1", "2"), what)
            self.assertEqual(h1[0], h2[0], what)
            if method != "HEAD":        # curl -I writes the head where the body goes
                self.assertTrue(h1[2] == h2[2], "%s: bodies differ" % what)
            for f in ("content-type", "allow", "etag", "last-modified"):
                self.assertEqual(h1[3].get(f), h2[3].get(f), "%s: %s" % (what, f))
            # a length HTTP/1.1 states is the length HTTP/2 states (chunked: none)
            if "content-length" in h1[3]:
                self.assertEqual(h1[3]["content-length"], h2[3].get("content-length"), what)

    @unittest.skipUnless(HAVE_NGHTTP, "nghttp2-client missing")
    def test_many_concurrent_streams_one_connection(self):
        r = subprocess.run(["h2load", "-n", "5000", "-c", "1", "-m", "100",
                            "http://%s:%d/plaintext" % (HOST, self.port)],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("5000 succeeded, 0 failed", r.stdout, r.stdout)
        m = metrics(self.port)
        self.assertGreaterEqual(m["zerohttp_http2_streams_total"], 5000)
        self.assertEqual(m["zerohttp_http2_connections_total"], 1)

    @unittest.skipUnless(HAVE_H2, "python3-h2 missing")
    def test_hundred_streams_of_different_sizes(self):
        res = run_peer(self, self.port, "many_streams")
        self.assertEqual((res["n"], res["bad"], res["goaway"]), (100, [], None))

    @unittest.skipUnless(HAVE_H2, "python3-h2 missing")
    def test_idle_connections_hold_no_context(self):
        """An idle HTTP/2 connection gives its I/O context back, as an idle HTTP/1.1 one
        does: 20 of them open, only the /metrics request's own context is lent."""
        res = run_peer(self, self.port, "idle_conns")
        self.assertEqual(res["open"], 20, res)
        self.assertGreaterEqual(res["connections"], 21, res)
        self.assertLessEqual(res["contexts"], 1, res)
        # nor an output buffer (26 KiB, lent only while output waits): what stays per idle
        # connection is nghttp2's session (~48 KiB of pool blocks, partly untouched pages)
        # and the 144-byte connection state; a 64 KiB block each before
        self.assertLess(res["pool_in_use"] / 20, 56 << 10, res)

    @unittest.skipUnless(HAVE_H2, "python3-h2 missing")
    def test_expect_100_continue(self):
        res = run_peer(self, self.port, "expect_100")
        self.assertEqual(res["informational"], [{":status": "100"}])
        self.assertEqual((res["status"][str(res["sid"])], res["body"]), (200, "hello"))

    def test_no_http2_flag(self):
        srv = self.start_server(("--no-http2",))
        r = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "--max-time", "5",
                            "http://%s:%d/plaintext" % (HOST, srv.port)],
                           capture_output=True, timeout=20)
        self.assertNotEqual(r.returncode, 0, "h2c served with --no-http2")
        c = self.conn(srv.port)
        c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        resp = c.read_response()
        self.assertGreaterEqual(resp.status, 400)   # the preface is an HTTP/1.1 error there
        self.assertEqual(curl(srv.port, "/plaintext", h2=False)[:3], (200, "1.1", HELLO))


class Trailers(ServerTestCase):
    """zh_resp_trailer over HTTP/1.1: in the last chunk for a client that said TE: trailers
    (a whole response is then chunked), dropped for one that did not."""

    def fetch(self, path, te):
        c = self.conn()
        hs = [("TE", "trailers")] if te else []
        c.send(request("GET", path, hs + [("Connection", "close")]))
        return bytes(c.read_until_close())

    def test_http1_trailers_with_te(self):
        for path, body, parts in (("/trailers", b"part 0\n", 1),
                                  ("/trailers?parts=5",
                                   b"".join(b"part %d\n" % i for i in range(5)), 5)):
            raw = self.fetch(path, True)
            head, _, rest = raw.partition(b"\r\n\r\n")
            self.assertIn(b"\r\nTransfer-Encoding: chunked", head, raw)
            self.assertNotIn(b"Content-Length", head, raw)
            got, pos = b"", 0
            while True:
                eol = rest.index(b"\r\n", pos)
                size = int(rest[pos:eol], 16)
                pos = eol + 2
                if size == 0:
                    break
                got += rest[pos:pos + size]
                pos += size + 2
            self.assertEqual(got, body)
            self.assertEqual(rest[pos:], b"X-Parts: %d\r\nX-Sum: %d\r\n\r\n"
                             % (parts, sum(body)))

    def test_http1_no_trailers_without_te(self):
        raw = self.fetch("/trailers", False)
        self.assertIn(b"\r\nContent-Length: 7\r\n", raw)
        self.assertTrue(raw.endswith(b"\r\n\r\npart 0\n"), raw)
        raw = self.fetch("/trailers?parts=2", False)
        self.assertTrue(raw.endswith(b"part 1\n\r\n0\r\n\r\n"), raw)
        self.assertNotIn(b"X-Sum", raw)

    @unittest.skipUnless(HAVE_H2, "python3-h2 missing")
    def test_h2_trailers(self):
        res = run_peer(self, self.port, "trailers")
        for sid, body in ((res["whole"], "part 0\n"),
                          (res["parts"], "".join("part %d\n" % i for i in range(5)))):
            self.assertEqual(res["status"][str(sid)], 200, res)
            self.assertEqual(res["bodies"][str(sid)], body, res)
            self.assertEqual(res["trailers"][str(sid)],
                             {"x-parts": str(body.count("\n")),
                              "x-sum": str(sum(body.encode()))}, res)


GRPC_CLIENT = r"""
import sys, grpc
sys.path.insert(0, sys.argv[2])
import demo_pb2
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
call = ch.unary_unary("/zerohttp.demo.Items/List",
                      request_serializer=demo_pb2.Item.SerializeToString,
                      response_deserializer=demo_pb2.ItemList.FromString)
for n in (0, 1, 5, 100):
    r = call(demo_pb2.Item(id=n), timeout=10)
    assert len(r.items) == n, (n, len(r.items))
    for i, it in enumerate(r.items):
        assert (it.id, it.name, it.price, list(it.tags), it.active) == \
            (i, "item-%d" % i, i * 1.25, ["alpha", "beta"], i % 2 == 0), it
try:
    call(demo_pb2.Item(id=101), timeout=10)
    print("no error")
except grpc.RpcError as e:
    print(e.code().name, e.details())
"""


def have_grpc():
    try:
        return subprocess.run([SYS_PY, "-c", "import grpc, google.protobuf"],
                              capture_output=True, timeout=30).returncode == 0 and \
            shutil.which("protoc") is not None
    except (OSError, subprocess.TimeoutExpired):
        return False


@unittest.skipUnless(have_grpc(), "python3-grpcio or protoc missing")
class Grpc(ServerTestCase):
    """A gRPC unary call with Python's grpcio (HTTP/2 prior knowledge on an insecure channel):
    the demo service on the /proto message types, status in the trailers."""

    def test_unary_list(self):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["protoc", "--python_out=" + d, "--proto_path=" +
                            os.path.join(HERE, "..", "..", "proto"), "demo.proto"],
                           check=True, timeout=30)
            r = subprocess.run([SYS_PY, "-c", GRPC_CLIENT, str(self.port), d],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "INVALID_ARGUMENT at most 100 items")


def run_peer(test, port, case, timeout=60, cafile=None):
    env = dict(os.environ, H2PEER_CAFILE=cafile) if cafile else None
    r = subprocess.run([SYS_PY, PEER, str(port), case], capture_output=True, text=True,
                       timeout=timeout, env=env)
    test.assertEqual(r.returncode, 0, "h2peer %s: %s" % (case, r.stderr))
    return json.loads(r.stdout.strip().splitlines()[-1])


@unittest.skipUnless(HAVE_H2, "python3-h2 missing")
class Http2Limits(ServerTestCase):
    """Each abuse ends its connection with GOAWAY and the right error code, is counted in
    /metrics, and leaves the server serving others with its contexts back."""
    SERVER_ARGS = ("--header-timeout", "1000", "--write-timeout", "1000")

    def limit(self, case, code, label):
        before = metrics(self.port)
        res = run_peer(self, self.port, case)
        self.assertEqual(res["goaway"], code, res)
        deadline = time.monotonic() + 3
        while True:
            after = metrics(self.port)
            if after["zerohttp_io_contexts_in_use"] <= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        key = 'zerohttp_http2_abuse_total{limit="%s"}' % label
        self.assertEqual(after[key] - before.get(key, 0), 1, key)
        self.assertGreater(after["zerohttp_http2_goaway_sent_total"],
                           before["zerohttp_http2_goaway_sent_total"])
        # the abuser's streams and connection gave their contexts back (this scrape holds 1)
        self.assertLessEqual(after["zerohttp_io_contexts_in_use"], 1)
        # and another client is served
        self.assertEqual(curl(self.port, "/plaintext")[:3], (200, "2", HELLO))
        return res

    def test_rapid_reset(self):
        self.limit("rapid_reset", 11, "rapid_reset")          # ENHANCE_YOUR_CALM

    def test_continuation_flood(self):
        self.limit("continuation_flood", 11, "continuation_flood")

    def test_hpack_bomb_header_list(self):
        self.limit("header_bomb", 11, "header_list_too_large")

    def test_ping_flood(self):
        self.limit("ping_flood", 11, "flood")

    def test_settings_flood(self):
        self.limit("settings_flood", 11, "flood")

    def test_window_update_flood(self):
        self.limit("window_update_flood", 11, "flood")

    def test_priority_flood(self):
        self.limit("priority_flood", 11, "flood")

    def test_invalid_request_fields_reset_the_stream_only(self):
        """RFC 9113 §8.2.1, §8.2.2, §8.3.1: uppercase names, connection-specific fields, a
        missing :path, a pseudo-header after a field, TE other than trailers: each stream
        gets RST_STREAM(PROTOCOL_ERROR); the connection serves the next request."""
        res = run_peer(self, self.port, "bad_headers")
        self.assertEqual(res["bad_resets"], {"1": 1, "3": 1, "5": 1, "7": 1, "9": 1}, res)
        self.assertTrue(res["good_answered"], res)
        self.assertIsNone(res["goaway"], res)

    def test_rfc9113_and_rfc7541_error_cases(self):
        """Frame-level cases (h2peer.py "conformance"), each on a connection of its own: the
        GOAWAY error code RFC 9113 / RFC 7541 name for each connection error (1 PROTOCOL,
        3 FLOW_CONTROL, 5 STREAM_CLOSED, 6 FRAME_SIZE, 9 COMPRESSION), acks and ignored
        frames; the server keeps serving others."""
        res = run_peer(self, self.port, "conformance")
        want = {"ping_before_settings": 1, "settings_length": 6, "settings_enable_push_2": 1,
                "settings_window_too_big": 3, "settings_frame_size_too_small": 1,
                "ping_length": 6, "data_on_stream_0": 1, "rst_on_idle_stream": 1,
                "even_stream_id": 1, "data_on_idle_stream": 1, "data_after_end_stream": 5,
                "window_update_zero": 1, "window_update_overflow": 3, "frame_too_large": 6,
                "continuation_alone": 1, "interleaved_header_block": 1, "hpack_index_0": 9,
                "hpack_index_too_big": 9, "hpack_table_size_too_big": 9,
                "hpack_bad_huffman": 9}
        self.assertEqual(dict((k, res[k]["goaway"]) for k in want), want, res)
        ok = res["settings_ack_and_ping"]
        self.assertEqual((ok["settings_ack"], ok["ping_ack"], ok["headers"], ok["goaway"]),
                         (True, "zerohttp", [1], None))
        ok = res["unknown_frame_type"]                  # ignored (§5.5), the request served
        self.assertEqual((ok["headers"], ok["goaway"]), ([1], None))
        # §5.1.1 asks for PROTOCOL_ERROR on a lower stream id; nghttp2 ignores such a HEADERS
        # (it cannot tell a stale trailer from a new stream): stream 3 is not served
        ok = res["decreasing_stream_id"]
        self.assertEqual((ok["headers"], ok["goaway"]), ([5], None))
        self.assertEqual(curl(self.port, "/plaintext")[:3], (200, "2", HELLO))

    def test_too_many_concurrent_streams(self):
        self.limit("too_many_streams", 1, "too_many_streams")  # PROTOCOL_ERROR

    def test_slow_headers(self):
        res = self.limit("slow_headers", 11, "slow_headers")
        self.assertLess(res["seconds"], 4)

    def test_zero_window_reader(self):
        res = self.limit("zero_window", 11, "zero_window")
        self.assertLess(res["seconds"], 6)
        self.assertEqual(sum(res["lens"].values()), 0)       # not a byte beyond the window


@unittest.skipUnless(HAVE_NGHTTP, "nghttp2-client missing")
class Http2Drain(ServerTestCase):
    AUTO_START = False

    def test_goaway_then_full_drain_on_sigterm(self):
        """A deferred response in flight at SIGTERM: /readyz goes 503, the client gets
        GOAWAY(NO_ERROR) naming its stream as processed, then the whole response."""
        mport = free_port()
        srv = self.start_server(("--drain-timeout", "5000",
                                 "--metrics-listen", "%s:%d" % (HOST, mport)))
        p = subprocess.Popen(["nghttp", "-v", "http://%s:%d/delay?ms=800" % (HOST, srv.port)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        time.sleep(0.3)
        srv.expected_exit = True
        srv.signal(signal.SIGTERM)
        deadline, ready = time.monotonic() + 2, None
        while time.monotonic() < deadline:
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                "--max-time", "2", "http://%s:%d/readyz" % (HOST, mport)],
                               capture_output=True, text=True, timeout=10)
            ready = r.stdout
            if ready == "503":
                break
            time.sleep(0.05)
        self.assertEqual(ready, "503")
        out, _ = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, out)
        goaway = out.find("recv GOAWAY")
        data = out.find("recv DATA")
        self.assertGreaterEqual(goaway, 0, out)
        self.assertIn("last_stream_id=13, error_code=NO_ERROR(0x00)", out[goaway:])
        self.assertGreater(data, goaway, out)   # the GOAWAY came first, then the response
        self.assertIn("delayed 800 ms", out)
        self.assertEqual(srv.wait_exit(10), 0)


    @unittest.skipUnless(HAVE_H2, "python3-h2 missing")
    def test_readyz_503_first_with_drain_delay(self):
        """--drain-delay 800: on SIGTERM /readyz goes 503 at once while an open HTTP/2
        connection is still served (a new stream on it is answered); its GOAWAY(NO_ERROR)
        comes only when the drain begins, after the delay."""
        mport = free_port()
        srv = self.start_server(("--drain-delay", "800", "--drain-timeout", "5000",
                                 "--metrics-listen", "%s:%d" % (HOST, mport)))
        deadline = time.monotonic() + 10
        while "listening on" not in srv.stderr_text():   # a signal before it drains at once
            self.assertLess(time.monotonic(), deadline, srv.stderr_text())
            time.sleep(0.01)
        p = subprocess.Popen([SYS_PY, PEER, str(srv.port), "wait_goaway"], text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        self.assertEqual(json.loads(p.stdout.readline()), {"ready": 200})
        t_term = time.monotonic()
        srv.expected_exit = True
        srv.signal(signal.SIGTERM)
        ready = None
        while time.monotonic() < t_term + 2:
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                "--max-time", "2", "http://%s:%d/readyz" % (HOST, mport)],
                               capture_output=True, text=True, timeout=10)
            ready = r.stdout
            if ready == "503":
                break
            time.sleep(0.02)
        t_503 = time.monotonic()
        self.assertEqual(ready, "503")
        out, err = p.communicate("go\n", timeout=30)
        res = json.loads(out.strip().splitlines()[-1])
        self.assertEqual(res["status"][str(res["second"])], 200, res)
        self.assertEqual(res["body"], HELLO.decode())
        self.assertEqual(res["goaway"], 0, res)                  # NO_ERROR
        self.assertLess(t_503, res["t_goaway"])
        self.assertLess(res["t_second"], res["t_goaway"])
        self.assertGreaterEqual(res["t_goaway"] - t_term, 0.6, res)  # not before the delay
        self.assertEqual(srv.wait_exit(10), 0)


@unittest.skipUnless(SHIM and HAVE_NGHTTP, "ZH_SHIM not set or h2load missing")
class Http2ZeroAlloc(ServerTestCase):
    AUTO_START = False

    def test_zero_allocations_on_an_open_connection(self):
        count_file = os.path.join(tempfile.gettempdir(), "zh-h2-malloc-%d" % os.getpid())
        self.addCleanup(lambda: os.path.exists(count_file) and os.unlink(count_file))
        srv = self.start_server((), {"LD_PRELOAD": os.path.abspath(SHIM),
                                     "ZH_MALLOC_COUNT_FILE": count_file})
        url = "http://%s:%d/plaintext" % (HOST, srv.port)

        def h2load(n):
            r = subprocess.run(["h2load", "-n", str(n), "-c", "1", "-m", "32", url],
                               capture_output=True, text=True, timeout=120)
            self.assertIn("%d succeeded, 0 failed" % n, r.stdout, r.stdout)
        h2load(2000)                                    # the worker's HTTP/2 state, warm
        a = malloc_calls(srv.pid, count_file)
        h2load(100000)
        b = malloc_calls(srv.pid, count_file)
        sys.stdout.write("      h2 zero-alloc: 100000 requests, one connection, -m32: "
                         "malloc-family calls before=%d after=%d\n" % (a, b))
        self.assertEqual(b - a, 0)


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return cert, key


@unittest.skipUnless(HAVE_CURL_H2 and shutil.which("openssl"), "curl without HTTP/2, or openssl")
class Http2Tls(ServerTestCase):
    """h2 over TLS: ALPN offers "h2" before "http/1.1" on TLS listeners (our preference wins),
    unless --no-http2; the same HTTP/2 then runs over the TLS transport (files by pread into
    the pooled buffer instead of sendfile)."""
    AUTO_START = False

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zh-h2tls-")
        cls.cert, cls.key = make_cert(cls.dir)
        cls.root = os.path.join(cls.dir, "root")
        os.mkdir(cls.root)
        mib = os.urandom(1 << 20)
        cls.files = {"empty.bin": b"", "4k.bin": mib[:4096], "1m.bin": mib,
                     "100m.bin": b"".join(mib[i:] + mib[:i] for i in range(100))}
        for name, data in cls.files.items():
            with open(os.path.join(cls.root, name), "wb") as f:
                f.write(data)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def start_tls(self, extra=(), env=None):
        self.tls_port = free_port()
        srv = self.start_server(("--root", self.root, "--listen-tls",
                                 "%s:%d" % (HOST, self.tls_port), "--tls-cert", self.cert,
                                 "--tls-key", self.key) + tuple(extra), env)
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection((HOST, self.tls_port), timeout=0.5).close()
                return srv
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def curl(self, path, http2=True, timeout=60):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "body")
            r = subprocess.run(["curl", "-sS", "--max-time", str(timeout), "--cacert", self.cert,
                                "--http2" if http2 else "--http1.1", "-o", out,
                                "-w", "%{http_code} %{http_version}",
                                "https://127.0.0.1:%d%s" % (self.tls_port, path)],
                               capture_output=True, text=True, timeout=timeout + 5)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out, "rb") as f:
                return r.stdout, f.read()

    def alpn(self, offer):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.cert)
        ctx.set_alpn_protocols(offer)
        with socket.create_connection((HOST, self.tls_port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                return t.selected_alpn_protocol()

    def test_curl_bodies_byte_exact_over_h2_and_tls(self):
        self.start_tls()
        for name, data in self.files.items():
            what, body = self.curl("/" + name)
            self.assertEqual(what, "200 2", name)
            self.assertEqual(len(body), len(data), name)
            self.assertTrue(body == data, "%s differs over h2/TLS" % name)
        self.assertEqual(self.curl("/plaintext"), ("200 2", HELLO))
        self.assertEqual(self.curl("/plaintext", http2=False), ("200 1.1", HELLO))
        what, body = self.curl("/stream?bytes=3000000")
        self.assertEqual(what, "200 2")
        self.assertTrue(body == pattern(3000000))

    def test_alpn_prefers_h2_and_no_http2_turns_it_off(self):
        self.start_tls()
        self.assertEqual(self.alpn(["h2", "http/1.1"]), "h2")
        self.assertEqual(self.alpn(["http/1.1", "h2"]), "h2")   # the server's preference
        self.assertEqual(self.alpn(["http/1.1"]), "http/1.1")
        self.assertIsNone(self.alpn([]))                       # none offered: none chosen
        self.start_tls(("--no-http2",))
        self.assertEqual(self.alpn(["h2", "http/1.1"]), "http/1.1")
        with self.assertRaises(ssl.SSLError) as e:              # RFC 7301 §3.2
            self.alpn(["h2"])
        self.assertIn("NO APPLICATION PROTOCOL", str(e.exception).upper().replace("_", " "))
        self.assertEqual(self.curl("/plaintext"), ("200 1.1", HELLO))

    @unittest.skipUnless(HAVE_H2, "python3-h2 missing")
    def test_python_h2_over_tls(self):
        """Frame-level cases with Python's h2 library over TLS (ALPN h2): 100 streams of
        different sizes, trailers, a 100-continue, and an abuse limit ending in GOAWAY."""
        srv = self.start_tls()
        res = run_peer(self, self.tls_port, "many_streams", cafile=self.cert)
        self.assertEqual((res["n"], res["bad"], res["goaway"]), (100, [], None))
        res = run_peer(self, self.tls_port, "trailers", cafile=self.cert)
        self.assertEqual(res["trailers"][str(res["parts"])],
                         {"x-parts": "5", "x-sum": str(sum(b"".join(b"part %d\n" % i
                                                                   for i in range(5))))})
        res = run_peer(self, self.tls_port, "expect_100", cafile=self.cert)
        self.assertEqual((res["status"][str(res["sid"])], res["body"]), (200, "hello"))
        # a burst of small records, then silence: a turn that stops after 16 reads must
        # come back for the rest by itself (the socket raises no new edge)
        for _ in range(3):
            res = run_peer(self, self.tls_port, "ping_burst", cafile=self.cert)
            self.assertEqual((res["acks"], res["goaway"]), (100, None), res)
        before = metrics(srv.port)
        res = run_peer(self, self.tls_port, "rapid_reset", cafile=self.cert)
        self.assertEqual(res["goaway"], 11, res)                # ENHANCE_YOUR_CALM
        key = 'zerohttp_http2_abuse_total{limit="rapid_reset"}'
        self.assertEqual(metrics(srv.port)[key] - before[key], 1)

    def test_access_log_names_tls_for_h2_streams(self):
        """zh_req_tls_version/_cipher on an h2 stream answer for the TLS connection."""
        log = os.path.join(self.dir, "access.log")
        srv = self.start_tls(("--access-log", log, "--access-log-format", "json"))
        self.assertEqual(self.curl("/plaintext"), ("200 2", HELLO))
        srv.expected_exit = True
        srv.signal(signal.SIGTERM)                      # the log's lines are written at exit
        self.assertEqual(srv.wait_exit(15), 0)
        with open(log) as f:
            lines = [json.loads(x) for x in f if '"/plaintext"' in x]
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(lines[0]["tls"], "TLSv1.3")
        self.assertTrue(lines[0]["cipher"].startswith("TLS_"), lines[0])

    @unittest.skipUnless(SHIM and HAVE_NGHTTP, "ZH_SHIM not set or h2load missing")
    def test_zero_allocations_on_an_open_h2_tls_connection(self):
        count_file = os.path.join(tempfile.gettempdir(), "zh-h2tls-malloc-%d" % os.getpid())
        self.addCleanup(lambda: os.path.exists(count_file) and os.unlink(count_file))
        srv = self.start_tls((), {"LD_PRELOAD": os.path.abspath(SHIM),
                                  "ZH_MALLOC_COUNT_FILE": count_file})
        url = "https://127.0.0.1:%d/plaintext" % self.tls_port

        def h2load(n):
            r = subprocess.run(["h2load", "-n", str(n), "-c", "1", "-m", "32", url],
                               capture_output=True, text=True, timeout=120)
            self.assertIn("Application protocol: h2", r.stdout, r.stdout)
            self.assertIn("%d succeeded, 0 failed" % n, r.stdout, r.stdout)
        # each h2load run is one new connection: its TLS handshake may allocate (issue 14
        # allows it: 2 or 3 calls here, as over HTTP/1.1), its requests may not: a
        # connection of 100,000 requests stays within the handshake's few calls.
        h2load(2000)
        a = malloc_calls(srv.pid, count_file)
        h2load(2000)
        b = malloc_calls(srv.pid, count_file)
        h2load(100000)
        c = malloc_calls(srv.pid, count_file)
        sys.stdout.write("      h2/TLS zero-alloc: malloc-family calls for a connection of "
                         "2,000 requests %d, of 100,000 requests %d\n" % (b - a, c - b))
        self.assertLessEqual(b - a, 4)          # the handshake's, bounded
        self.assertLessEqual(c - b, 4)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


@unittest.skipUnless(HAVE_H2, "python3-h2 missing")
class Http2Faults(ServerTestCase):
    """Faults over h2c (h2peer.py case "faults": resets mid-download, mid-upload, with 30
    streams in flight and with a header block open; a stream cancelled mid-file; a FIN with
    streams in flight), three rounds after a warm-up round: the server's descriptors are
    back to the baseline exactly, and so are its pools: I/O contexts, large and body
    buffers, connection slots, and the HTTP/2 pool's blocks (nghttp2 sessions, streams,
    output buffers)."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="zh-h2faults-")
        with open(os.path.join(cls.root, "big.bin"), "wb") as f:
            f.write(os.urandom(1 << 20) * 24)
        cls.SERVER_ARGS = ("--workers", "1", "--root", cls.root)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def state(self):
        """(fds, gauges) once the server holds no connection but the /metrics one."""
        deadline = time.monotonic() + 10
        while True:
            m = metrics(self.port)
            fds = fd_count(self.server.pid)
            g = {k: m[k] for k in ("zerohttp_connections_open", "zerohttp_io_contexts_in_use",
                                   "zerohttp_large_buffers_in_use",
                                   "zerohttp_body_buffers_in_use",
                                   'zerohttp_http2_pool_bytes{state="in_use"}')}
            if g["zerohttp_connections_open"] == 1 or time.monotonic() > deadline:
                return fds, g
            time.sleep(0.05)

    def round(self):
        res = run_peer(self, self.port, "faults", timeout=90)
        self.assertGreaterEqual(res["/big.bin"], 300000, res)
        self.assertGreaterEqual(res["/stream?bytes=50000000"], 300000, res)
        self.assertEqual(res["/upload"], 2 << 20, res)
        self.assertEqual(res["after_cancel"], HELLO.decode(), res)
        self.assertTrue(res["fin_closed"], res)
        return res

    def test_faults_leave_fds_and_pools_at_baseline(self):
        curl(self.port, "/big.bin")                 # its fd enters the open-file cache
        self.round()
        base_fds, base = self.state()
        settle = time.monotonic() + 1       # the fewest over a second: no lingering socket
        while time.monotonic() < settle:
            time.sleep(0.05)
            base_fds = min(base_fds, self.state()[0])
        self.assertEqual(base["zerohttp_connections_open"], 1, base)
        self.assertEqual(base['zerohttp_http2_pool_bytes{state="in_use"}'], 0, base)
        for _ in range(3):
            self.round()
        fds, now = self.state()
        deadline = time.monotonic() + 5     # a lingering close may still hold its socket
        while fds > base_fds and time.monotonic() < deadline:
            time.sleep(0.05)
            fds, now = self.state()
        sys.stdout.write("      h2 faults: 3 rounds after warm-up: fds %d -> %d, %s\n"
                         % (base_fds, fds, now))
        pid = self.server.pid
        self.assertLessEqual(fds, base_fds, sorted(os.readlink("/proc/%d/fd/%s" % (pid, f))
                                               for f in os.listdir("/proc/%d/fd" % pid)))
        self.assertEqual(now, base)
        self.assertEqual(now["zerohttp_io_contexts_in_use"], 1)    # the /metrics request's
        self.assertEqual(now["zerohttp_large_buffers_in_use"], 0)
        self.assertEqual(now["zerohttp_body_buffers_in_use"], 0)
        self.assertEqual(curl(self.port, "/plaintext")[:3], (200, "2", HELLO))
