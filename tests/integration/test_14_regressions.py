"""14. Regressions from review: each of these once misbehaved."""
import socket
import time

from harness import HELLO, ServerTestCase, chunked, request


class SmallMaxBodyChunked(ServerTestCase):
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


class PeerFinWithData(ServerTestCase):
    # data and FIN in one epoll event: the server must still see the EOF at once instead of
    # waiting for the idle (60 s) or body (30 s) timeout
    def half_close_after(self, payload):
        s = self.track(socket.create_connection(("127.0.0.1", self.port), timeout=5))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        start, got = time.time(), b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got, time.time() - start

    def test_request_then_fin_gets_response_and_close(self):
        got, took = self.half_close_after(request("GET", "/plaintext"))
        self.assertTrue(got.startswith(b"HTTP/1.1 200 ") and got.endswith(HELLO), got)
        self.assertLess(took, 2.0)

    def test_truncated_streamed_body_then_fin_closes_at_once(self):
        got, took = self.half_close_after(
            request("POST", "/upload", [("Content-Length", "100")]) + b"0123456789")
        self.assertLess(took, 2.0, "must not wait for the body timeout")

    def test_truncated_buffered_body_then_fin_closes_at_once(self):
        got, took = self.half_close_after(
            request("POST", "/echo", [("Content-Length", "100")]) + b"0123456789")
        self.assertEqual(got, b"")
        self.assertLess(took, 2.0)


class SilentConnection(ServerTestCase):
    # the first EPOLLOUT after accept once swapped the header timeout for the idle timeout
    SERVER_ARGS = ("--header-timeout", "500", "--idle-timeout", "10000")

    def test_connection_that_sends_nothing_gets_the_header_timeout(self):
        c = self.conn()
        start = time.time()
        self.assertTrue(c.closed_by_peer(3.0), "not closed within 3 s")
        self.assertLess(time.time() - start, 3.0)
        self.assertGreater(time.time() - start, 0.3)
