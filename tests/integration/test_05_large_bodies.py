"""5. Large and chunked bodies through POST /echo, also at the edges of the receive and large
buffers."""
import http.client
import os
import random
import socket
import subprocess
import tempfile
import time

from harness import HOST, ServerTestCase, chunked, request

BIG = 900 * 1024          # under the 1 MiB default max_body


class LargeBodies(ServerTestCase):
    def test_900k_echo_http_client(self):
        body = os.urandom(BIG)
        c = self.track(http.client.HTTPConnection(HOST, self.port, timeout=10))
        c.request("POST", "/echo", body=body, headers={"Content-Type": "application/x-big"})
        r = c.getresponse()
        data = r.read()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Length"), str(BIG))
        self.assertEqual(r.getheader("Content-Type"), "application/x-big")
        self.assertEqual(len(data), BIG)
        self.assertTrue(data == body, "900 KB echo differs")
        # and the connection is reusable, twice more
        for _ in range(2):
            body2 = os.urandom(BIG)
            c.request("POST", "/echo", body=body2, headers={"Content-Type": "a/b"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertTrue(r.read() == body2)

    def test_900k_echo_tiny_rcvbuf_slow_reader(self):
        body = os.urandom(BIG)
        c = self.conn(rcvbuf=4096, timeout=10)
        c.send(request("POST", "/echo", [("Content-Type", "application/x-slow")], body))
        head = c.read_head()
        self.assertEqual(head[1], 200, head)
        hdrs = {k.lower(): v for k, v in head[3]}
        self.assertEqual(hdrs.get("content-length"), str(BIG))
        got = bytearray(c.buf)
        c.buf.clear()
        reads = 0
        while len(got) < BIG:
            chunk = c.sock.recv(min(2048, BIG - len(got)))
            self.assertTrue(chunk, "connection closed after %d of %d body bytes"
                            % (len(got), BIG))
            got += chunk
            reads += 1
            if reads % 4 == 0:
                time.sleep(0.001)
        self.assertTrue(bytes(got) == body, "slowly-read 900 KB echo differs")
        # keep-alive still works after the partial writes
        c.send(request("POST", "/echo", [("Content-Type", "t/x")], b"after"))
        self.assertResponse(c.read_response(), 200, b"after", "t/x")

    def test_100k_chunked_echo(self):
        rnd = random.Random(5)
        body = os.urandom(100 * 1024)
        sizes = [rnd.randint(1, 5000) for _ in range(200)] + [1, 2, 3, 16384, 20000]
        rnd.shuffle(sizes)
        enc = chunked(body, sizes, ext_first=True, trailer=True, upper=True)
        self.assertIn(b";name=value", enc)
        c = self.conn(timeout=10)
        c.send(request("POST", "/echo", [("Content-Type", "application/x-chunked"),
                                         ("Transfer-Encoding", "chunked")]) + enc)
        r = c.read_response()
        self.assertResponse(r, 200, None, "application/x-chunked")
        self.assertEqual(len(r.body), len(body))
        self.assertTrue(r.body == body, "chunked echo differs")
        c.send(request("GET", "/plaintext"))
        self.assertEqual(c.read_response().status, 200)

    def test_chunked_echo_sent_in_pieces(self):
        body = os.urandom(30000)
        enc = chunked(body, [1000, 1, 4093, 77])
        c = self.conn(timeout=10)
        c.send(request("POST", "/echo", [("Content-Type", "a/b"),
                                         ("Transfer-Encoding", "chunked")]))
        # cut the stream at awkward places (inside sizes, CRLFs, data)
        pos = 0
        rnd = random.Random(9)
        while pos < len(enc):
            n = rnd.randint(1, 3000)
            c.send(enc[pos:pos + n])
            pos += n
            time.sleep(0.0005)
        r = c.read_response()
        self.assertResponse(r, 200, None, "a/b")
        self.assertTrue(r.body == body)

    def test_curl_chunked_upload(self):
        body = os.urandom(200 * 1024)
        with tempfile.TemporaryDirectory() as d:
            src, out = os.path.join(d, "in"), os.path.join(d, "out")
            with open(src, "wb") as f:
                f.write(body)
            p = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "20",
                                "--data-binary", "@" + src,
                                "-H", "Transfer-Encoding: chunked",
                                "-H", "Content-Type: application/x-curl",
                                "-o", out, "-w", "%{http_code} %{content_type}",
                                "http://%s:%d/echo" % (HOST, self.port)],
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.decode(), "200 application/x-curl")
            with open(out, "rb") as f:
                self.assertTrue(f.read() == body, "curl chunked echo differs")

    def test_curl_large_upload(self):
        body = os.urandom(BIG)
        with tempfile.TemporaryDirectory() as d:
            src, out = os.path.join(d, "in"), os.path.join(d, "out")
            with open(src, "wb") as f:
                f.write(body)
            p = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "20",
                                "--data-binary", "@" + src, "-H", "Content-Type: a/b",
                                "-o", out, "-w", "%{http_code}",
                                "http://%s:%d/echo" % (HOST, self.port)],
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.decode(), "200")
            with open(out, "rb") as f:
                self.assertTrue(f.read() == body, "curl 900 KB echo differs")


class BodiesAtTheLargeBufferSize(ServerTestCase):
    # max_body equal to the large-buffer size once made body buffers 4 KiB: a chunked body
    # that outgrew the receive buffer was then decoded past the end of its buffer
    SERVER_ARGS = ("--max-body", "65536", "--workers", "1")

    def test_chunked_body_outgrowing_the_receive_buffer(self):
        body = bytes(range(256)) * 240  # 61,440 bytes
        c = self.conn()
        for _ in range(3):
            c.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")],
                           chunked(body, [5000, 1, 3000])))
            self.assertResponse(c.read_response(), 200, body)

    def test_two_chunked_bodies_in_flight_do_not_overlap(self):
        # both bodies outgrow the receive buffer while the other is still open: with
        # undersized body buffers they were written over each other
        bodies = [bytes([65 + k]) * 61440 for k in range(2)]
        conns = [self.conn() for _ in bodies]
        framed = [chunked(b, [4096]) for b in bodies]
        for c, f in zip(conns, framed):
            c.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + f[:-7])
        time.sleep(0.2)
        for c, f in zip(conns, framed):
            c.send(f[-7:])
        for c, b in zip(conns, bodies):
            self.assertResponse(c.read_response(), 200, b)

    def test_content_length_body_in_a_pooled_buffer(self):
        body = b"x" * 60000
        c = self.conn()
        c.send(request("POST", "/echo", [("Content-Length", str(len(body)))], body))
        self.assertResponse(c.read_response(), 200, body)


# Chunked heads at the end of the receive buffer (found by tests/soak/soak.py)
RBUF = 16384   # the I/O context's receive buffer (ZH__RBUF_SIZE)


class ChunkedHeadAtBufferEnd(ServerTestCase):
    # A pipelined chunked request whose head ended exactly at the end of the receive
    # buffer, behind a request whose response still pointed into that buffer (so it could
    # not be compacted), left no byte of room for the chunk framing: the body was refused
    # with 400 and the connection closed (buffered routes), or the handler read -EPROTO
    # (streaming routes). The soak's pipelined mix hit it a few times a second.
    SERVER_ARGS = ("--workers", "1")

    def pipelined_at_buffer_end(self, path, body):
        head2 = request("POST", path, [("Transfer-Encoding", "chunked")])
        first = lambda n: request("POST", "/echo", [("Content-Length", str(n))], b"a" * n)
        n = RBUF - len(head2) - len(first(0))
        while len(first(n)) + len(head2) > RBUF:        # the digits of n in its header
            n -= 1
        req1 = first(n)
        self.assertEqual(len(req1) + len(head2), RBUF)
        c = self.conn()
        c.send(req1 + head2)            # one read fills the buffer exactly
        time.sleep(0.2)
        c.send(chunked(body, [1000, 7, 3000]))
        self.assertResponse(c.read_response(), 200, b"a" * n)
        return c

    def test_buffered_route(self):
        body = bytes(range(256)) * 20
        c = self.pipelined_at_buffer_end("/echo", body)
        self.assertResponse(c.read_response(), 200, body)
        # the connection goes on
        c.send(request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, b"Hello, World!")

    def test_streaming_route(self):
        body = bytes(range(256)) * 20
        c = self.pipelined_at_buffer_end("/upload", body)
        resp = c.read_response()
        self.assertEqual(resp.status, 200, repr(resp))
        self.assertTrue(resp.body.startswith(b"%d " % len(body)), repr(resp))
        c.send(request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, b"Hello, World!")

    def test_streaming_route_without_a_large_buffer_is_503(self):
        # every large buffer (64 per worker) held by a body that stalls in it
        holders = []
        for _ in range(64):
            h = self.conn()
            h.send(request("POST", "/echo", [("Content-Length", "40000")]) + b"m" * 20000)
            holders.append(h)
        time.sleep(0.3)
        head2 = request("POST", "/upload", [("Transfer-Encoding", "chunked")])
        first = lambda n: request("POST", "/echo", [("Content-Length", str(n))], b"a" * n)
        n = RBUF - len(head2) - len(first(0))
        while len(first(n)) + len(head2) > RBUF:
            n -= 1
        c = self.conn()
        c.send(first(n) + head2)
        time.sleep(0.2)
        c.send(chunked(b"z" * 100, [100]))
        self.assertResponse(c.read_response(), 200, b"a" * n)
        r = c.read_response()
        self.assertEqual(r.status, 503, repr(r))        # not 400: the request was fine
        self.assertTrue(c.closed_by_peer(2.0))


class ChunkedHeadAtLargeBufferEnd(ServerTestCase):
    # The same at the end of the 64 KiB buffer a long head moved the connection to (found by
    # review): it could not grow, so it was refused with 400. The request now moves to the
    # start of a second large buffer; the first stays whole until the connection idles, as
    # the queued /echo response still points into it.
    SERVER_ARGS = ("--workers", "1")
    LARGE = 65536

    def exchange(self, path):
        req0 = request("GET", "/plaintext", [("X-Pad", "p" * 20000)])   # > 16 KiB: large
        head2 = request("POST", path, [("Transfer-Encoding", "chunked")])
        first = lambda n: request("POST", "/echo", [("Content-Length", str(n))], b"a" * n)
        n = self.LARGE - len(req0) - len(head2) - len(first(0))
        while len(req0) + len(first(n)) + len(head2) > self.LARGE:
            n -= 1
        self.assertEqual(len(req0) + len(first(n)) + len(head2), self.LARGE)
        c = self.conn()
        c.send(req0 + first(n) + head2)
        time.sleep(0.3)
        body = bytes(range(256)) * 20
        c.send(chunked(body, [1000, 7, 3000]))
        self.assertResponse(c.read_response(), 200, b"Hello, World!")
        self.assertResponse(c.read_response(), 200, b"a" * n)
        r = c.read_response()
        self.assertEqual(r.status, 200, repr(r))
        c.send(request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, b"Hello, World!")
        return r, body

    def test_buffered_route(self):
        r, body = self.exchange("/echo")
        self.assertEqual(r.body, body)

    def test_streaming_route(self):
        r, body = self.exchange("/upload")
        self.assertTrue(r.body.startswith(b"%d " % len(body)), repr(r))
