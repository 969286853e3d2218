"""29. Regressions found by the soak (tests/soak/soak.py): each of these once misbehaved."""
import time

from harness import ServerTestCase, chunked, request

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
