"""10. Timeouts: header (408), idle keep-alive, body (408), write (peer never reads); a
half-close (data and FIN together) is seen at once, not at a timeout."""
import os
import socket
import threading
import time

from harness import HELLO, ServerTestCase, metrics, request

ARGS = ("--header-timeout", "500", "--idle-timeout", "1000", "--body-timeout", "500",
        "--write-timeout", "1000", "--workers", "1")


def tcp_state(server_port, client_port):
    """State (hex string, '01' = ESTABLISHED) of the server-side socket of a loopback
    connection from /proc/net/tcp, or None if it no longer exists."""
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            p = line.split()
            if (int(p[1].split(":")[1], 16) == server_port
                    and int(p[2].split(":")[1], 16) == client_port):
                return p[3]
    return None


def wmem_max():
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


class Timeouts(ServerTestCase):
    SERVER_ARGS = ARGS

    def timed_error(self, c, status, lo, hi, t0):
        c.settimeout(hi + 1)
        r = c.read_response()
        t = time.monotonic() - t0
        self.assertEqual(r.status, status, repr(r))
        self.assertTrue(c.closed_by_peer(1.0), "not closed after %d" % status)
        t = time.monotonic() - t0
        self.assertGreaterEqual(t, lo, "%d came too early (%.2fs)" % (status, t))
        self.assertLessEqual(t, hi, "%d came too late (%.2fs)" % (status, t))

    def test_partial_head_then_silence_is_408(self):
        c = self.conn()
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
        self.timed_error(c, 408, 0.3, 1.5, time.monotonic())

    def test_slowloris_head_is_408(self):
        # bytes keep coming, but the head as a whole takes longer than header-timeout
        c = self.conn()
        t0 = time.monotonic()
        head = request("GET", "/plaintext", [("X-Slow", "a" * 40)])
        for i, b in enumerate(head):
            try:
                c.send(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if c.buf or not c.no_data_for(0.05):
                break
        c.settimeout(3)
        r = c.read_response()
        self.assertEqual(r.status, 408, repr(r))
        t = time.monotonic() - t0
        self.assertTrue(0.3 <= t <= 1.5, "408 after %.2fs" % t)
        self.assertTrue(c.closed_by_peer(1.0))

    def test_idle_keepalive_closed(self):
        c = self.conn()
        c.send(request("GET", "/plaintext"))
        self.assertEqual(c.read_response().body, HELLO)
        t0 = time.monotonic()
        self.assertTrue(c.closed_by_peer(3.0), "idle connection not closed within 3s")
        t = time.monotonic() - t0
        self.assertTrue(0.7 <= t <= 2.5, "idle close after %.2fs" % t)

    def test_active_connection_not_closed_by_idle_timeout(self):
        c = self.conn()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            c.send(request("GET", "/json"))
            r = c.read_response()
            self.assertEqual(r.status, 200)
            time.sleep(0.4)

    def test_connect_and_say_nothing_is_closed(self):
        c = self.conn()
        t0 = time.monotonic()
        c.settimeout(4)
        data = c.read_until_close()
        t = time.monotonic() - t0
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:100])
        self.assertTrue(0.3 <= t <= 2.5, "silent connection closed after %.2fs" % t)

    def test_partial_body_then_silence_is_408(self):
        c = self.conn()
        c.send(request("POST", "/echo", [("Content-Length", "10")]) + b"12345")
        self.timed_error(c, 408, 0.3, 1.5, time.monotonic())

    def test_partial_chunked_body_then_silence_is_408(self):
        c = self.conn()
        c.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + b"a\r\n12345")
        self.timed_error(c, 408, 0.3, 1.5, time.monotonic())

    def test_slow_body_within_gap_is_fine(self):
        # body-timeout is the gap between body bytes: 0.2s gaps must not trigger it, the
        # whole body taking longer than the timeout (at 10 B/s, above the 4 B/s floor)
        c = self.conn()
        c.send(request("POST", "/echo", [("Content-Type", "a/b"), ("Content-Length", "5")]))
        for piece in (b"he", b"ll", b"o"):
            time.sleep(0.2)
            c.send(piece)
        self.assertResponse(c.read_response(), 200, b"hello", "a/b")

    def test_write_timeout_peer_never_reads(self):
        # Enough pipelined 900 KB echoes that the responses cannot all fit in the kernel
        # buffers (server send buffer up to tcp_wmem max + our 4 KiB receive buffer): the
        # server must stall on writing, give up after write-timeout and close.
        body = os.urandom(900 * 1024)
        one = request("POST", "/echo", [("Content-Type", "a/b")], body)
        n = min(40, (wmem_max() + (2 << 20)) // len(body) + 1)
        total_expected = n * (len(body) + 60)   # lower bound of the response bytes
        c = self.conn(rcvbuf=4096, timeout=10)
        cport = c.sock.getsockname()[1]
        send_err = []

        def sender():
            try:
                c.sock.sendall(one * n)
            except OSError as e:       # the server may close while we are still sending
                send_err.append(e)
        th = threading.Thread(target=sender, daemon=True)
        t0 = time.monotonic()
        th.start()
        time.sleep(0.4)
        # meanwhile, another client is served promptly (same single worker)
        other = self.conn(timeout=2)
        t1 = time.monotonic()
        other.send(request("GET", "/plaintext"))
        self.assertResponse(other.read_response(), 200, HELLO)
        self.assertLess(time.monotonic() - t1, 0.5)
        # watch the server side of the stalled connection leave ESTABLISHED
        closed_at = None
        while time.monotonic() - t0 < 4.0:
            st = tcp_state(self.port, cport)
            if st != "01":
                closed_at = time.monotonic() - t0
                break
            time.sleep(0.02)
        self.assertIsNotNone(closed_at, "server kept the stalled connection open for 4s")
        self.assertTrue(0.5 <= closed_at <= 3.0, "closed after %.2fs" % closed_at)
        # the server still serves others
        other2 = self.conn(timeout=2)
        other2.send(request("GET", "/plaintext"))
        self.assertResponse(other2.read_response(), 200, HELLO)
        # now read: we must hit EOF/reset before having all responses
        c.settimeout(5)
        got = len(c.read_until_close())
        self.assertTrue(c.eof)
        self.assertLess(got, total_expected,
                        "received all %d bytes: the write never stalled?" % got)
        th.join(5)


class StalledPeersEvicted(ServerTestCase):
    """Every I/O context lent to stalled peers: a ready client still gets its answer, and
    the peer stalled longest (at least 1 s) pays with a 408, not the newcomer with a 503."""
    CONTEXTS = 6
    SERVER_ARGS = ("--workers", "1", "--io-contexts", str(CONTEXTS), "--header-timeout",
                   "30000", "--body-timeout", "30000")

    def evictions(self):
        return metrics(self.port)["zerohttp_stalled_evictions_total"]

    def stall(self, data, held):
        """A new peer that sends data and stalls, once the server has lent it a context (the
        held-th). Peers whose bytes one loop turn reads together are armed in the order the
        turn meets them, which need not be the order they were sent (io_uring under load):
        waiting makes the victims' order the test's. The /metrics scrape borrows a context
        too, so the gauge reads held + 1: only while one is still free."""
        c = self.conn()
        c.send(data)
        if held < self.CONTEXTS:
            deadline = time.monotonic() + 5
            while metrics(self.port)["zerohttp_io_contexts_in_use"] < held + 1:
                self.assertLess(time.monotonic(), deadline, "no context for peer %d" % held)
                time.sleep(0.01)
        return c

    def test_longest_stalled_peer_makes_room(self):
        # the /metrics scrape itself needs a context: take it before the pool is full
        self.assertEqual(self.evictions(), 0)
        # connections that never say anything are ahead of everyone in accept order: they
        # must not hide the stalled heads from eviction
        silent = [self.conn() for _ in range(40)]
        heads = [self.stall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n", i + 1)  # half a head
                 for i in range(self.CONTEXTS // 2)]
        time.sleep(0.3)
        bodies = [self.stall(request("POST", "/echo", [("Content-Length", "100")]) + b"x",
                             len(heads) + i + 1)
                  for i in range(self.CONTEXTS - len(heads))]
        time.sleep(0.2)
        # stalled for under a second: nobody is cut, the newcomer is refused
        c = self.conn()
        c.send(request("GET", "/plaintext"))
        self.assertEqual(c.read_response().status, 503)
        time.sleep(1.0)
        # Now each newcomer cuts the peer stalled longest: the half heads in order, then the
        # first body. A newcomer gives its context back when answered, so a fresh half head
        # (too young to be cut) takes it each time and the pool stays full.
        fresh = []
        for victim in heads + bodies[:1]:
            c = self.conn()
            c.send(request("GET", "/plaintext"))
            self.assertEqual(c.read_response().body, HELLO)
            r = victim.read_response()
            self.assertEqual(r.status, 408)
            self.assertTrue(victim.closed_by_peer(1.0))
            fresh.append(self.conn())
            fresh[-1].send(b"GET /plaintext HTTP/1.1\r\n")
            # the server must have lent the fresh head the freed context before the next
            # newcomer arrives, or that one finds it free and cuts nobody (0.05 s was too
            # short under ASan on a loaded machine). Victims stay the longest stalled.
            time.sleep(0.25)
        for b in bodies[1:]:                      # the rest still hold their contexts
            b.send(b"y" * 99)
            self.assertEqual(b.read_response().body, b"x" + b"y" * 99)
        for f in fresh:
            f.send(b"Host: x\r\n\r\n")
            self.assertEqual(f.read_response().body, HELLO)
        for q in silent:
            q.send(request("GET", "/plaintext"))
            self.assertEqual(q.read_response().body, HELLO)
        self.assertEqual(self.evictions(), len(heads) + 1)


class ContextReserve(ServerTestCase):
    """The last eighth of the I/O contexts is kept for peers whose whole head has arrived:
    half heads fill the rest, then are refused, while whole requests are still served."""
    CONTEXTS = 16                                   # reserve: 2
    SERVER_ARGS = ("--workers", "1", "--io-contexts", str(CONTEXTS), "--header-timeout",
                   "30000")

    def test_half_heads_stop_at_the_reserve(self):
        holders = [self.conn() for _ in range(self.CONTEXTS - 2)]
        for h in holders:
            h.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.2)
        late = self.conn()
        late.send(b"GET /plaintext HTTP/1.1\r\n")
        self.assertEqual(late.read_response().status, 503)
        for _ in range(3):
            c = self.conn()
            c.send(request("GET", "/plaintext"))
            self.assertEqual(c.read_response().body, HELLO)
        # empty lines before a half head (the parser skips them) are still a half head
        crlf = self.conn()
        crlf.send(b"\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n")
        self.assertEqual(crlf.read_response().status, 503)
        # an idle keep-alive connection that closes meanwhile is closed, not sent a 503
        idle = self.conn()
        idle.send(request("GET", "/plaintext"))
        self.assertEqual(idle.read_response().body, HELLO)
        m = metrics(self.port)
        idle.sock.shutdown(socket.SHUT_WR)
        self.assertTrue(idle.closed_by_peer(2.0))            # Closed if any byte came
        self.assertEqual(metrics(self.port)['zerohttp_shed_total{code="503"}'],
                         m['zerohttp_shed_total{code="503"}'])
        for h in holders:
            h.send(b"\r\n")
            self.assertEqual(h.read_response().body, HELLO)


class HalfCloseSeenAtOnce(ServerTestCase):
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


class SilentConnectionGetsTheHeaderTimeout(ServerTestCase):
    # the first EPOLLOUT after accept once swapped the header timeout for the idle timeout
    SERVER_ARGS = ("--header-timeout", "500", "--idle-timeout", "10000")

    def test_connection_that_sends_nothing_gets_the_header_timeout(self):
        c = self.conn()
        start = time.time()
        self.assertTrue(c.closed_by_peer(3.0), "not closed within 3 s")
        self.assertLess(time.time() - start, 3.0)
        self.assertGreater(time.time() - start, 0.3)
