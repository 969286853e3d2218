"""11. Graceful drain on SIGTERM."""
import signal
import socket
import time

from harness import HELLO, HOST, SLOW, ServerTestCase, request, timing_sensitive


def connect_refused(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect((HOST, port))
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()


class Drain(ServerTestCase):
    SERVER_ARGS = ("--drain-timeout", "5000")

    def test_inflight_request_completes_idle_closed_listener_refuses(self):
        srv = self.server
        idle = self.conn()
        idle.send(request("GET", "/plaintext"))
        self.assertResponse(idle.read_response(), 200, HELLO)
        busy = self.conn()
        busy.send(request("POST", "/echo", [("Content-Type", "text/x-d"),
                                            ("Content-Length", "10")]) + b"01234")
        time.sleep(0.2)                          # let the server read head + 5 bytes
        srv.expected_exit = True
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        # the idle connection is closed
        self.assertTrue(idle.closed_by_peer(2.0), "idle connection not closed on SIGTERM")
        # new connections are refused within ~1s (listener closed) while still draining
        refused = False
        while time.monotonic() - t0 < 1.0:
            if connect_refused(self.port):
                refused = True
                break
            time.sleep(0.02)
        self.assertTrue(refused, "new connections still accepted 1s after SIGTERM")
        for _ in range(5):
            self.assertTrue(connect_refused(self.port), "a later connection was accepted")
        self.assertTrue(srv.alive(), "server exited with a request still in flight")
        # finish the in-flight request: full response with Connection: close
        busy.send(b"56789")
        r = busy.read_response()
        self.assertResponse(r, 200, b"0123456789", "text/x-d")
        self.assertHeaderToken(r, "Connection", "close")
        self.assertTrue(busy.closed_by_peer(2.0))
        # once our side is closed too (the server may linger for the peer's FIN), the
        # process has nothing left and exits 0, well within the drain timeout
        busy.close()
        idle.close()
        rc = srv.wait_exit(1.5)
        self.assertIsNotNone(rc, "server did not exit within 1.5s of the last connection")
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_pipelined_inflight_gets_connection_close(self):
        # a request in flight when SIGTERM arrives is answered, marked close, and nothing
        # after it on that connection is served
        srv = self.server
        c = self.conn()
        c.send(request("POST", "/echo", [("Content-Type", "a/b"), ("Content-Length", "4")])
               + b"ab")
        time.sleep(0.2 * SLOW)      # the server has begun the request (slower under valgrind)
        srv.expected_exit = True
        srv.signal(signal.SIGTERM)
        time.sleep(0.2)
        c.send(b"cd")
        r = c.read_response()
        self.assertResponse(r, 200, b"abcd", "a/b")
        self.assertHeaderToken(r, "Connection", "close")
        self.assertTrue(c.closed_by_peer(2.0))
        c.close()
        self.assertEqual(srv.wait_exit(1.5), 0)

    def test_sigterm_no_connections_exits_fast(self):
        srv = self.server
        srv.expected_exit = True
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(2.0), 0)
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_sigint_also_drains(self):
        srv = self.server
        srv.expected_exit = True
        srv.signal(signal.SIGINT)
        self.assertEqual(srv.wait_exit(2.0), 0)


@timing_sensitive
class DrainTimeout(ServerTestCase):
    SERVER_ARGS = ("--drain-timeout", "1000")

    def stuck(self, data):
        srv = self.server
        c = self.conn()
        c.send(data)
        time.sleep(0.2)
        srv.expected_exit = True
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(4.0)
        t = time.monotonic() - t0
        self.assertIsNotNone(rc, "server still running 4s after SIGTERM with drain 1000ms")
        self.assertLessEqual(t, 2.0, "exit took %.2fs" % t)
        self.assertGreaterEqual(t, 0.5, "exited after %.2fs: did not wait to drain" % t)
        self.assertEqual(rc, 0)
        c.settimeout(2)
        c.read_until_close()        # closed (EOF or reset), not hanging
        self.assertTrue(c.eof)

    def test_stuck_partial_body_forced_exit(self):
        self.stuck(request("POST", "/echo", [("Content-Length", "10")]) + b"01234")

    def test_stuck_partial_head_forced_exit(self):
        srv = self.server
        c = self.conn()
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        time.sleep(0.2)
        srv.expected_exit = True
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(4.0)
        t = time.monotonic() - t0
        self.assertIsNotNone(rc, "server still running 4s after SIGTERM with drain 1000ms")
        self.assertLessEqual(t, 2.0, "exit took %.2fs" % t)
        self.assertEqual(rc, 0)


@timing_sensitive
class DrainRace(ServerTestCase):
    AUTO_START = False

    def test_sigterm_right_after_connect_close_exits(self):
        # A connection that is opened and closed just before SIGTERM must not keep the
        # process alive: 150 rounds of start / connect+close / SIGTERM, each must exit 0
        # within 2s (the drain has nothing to wait for).
        from harness import Server
        for i in range(150):
            srv = Server(("--drain-timeout", "10000")).start()
            self._servers.append(srv)
            s = socket.create_connection((HOST, srv.port), timeout=2)
            s.close()
            srv.expected_exit = True
            srv.signal(signal.SIGTERM)
            rc = srv.wait_exit(2.0)
            self.assertIsNotNone(rc, "round %d: zerohttpd (pid %d) still running 2s after "
                                 "SIGTERM with no connection open" % (i, srv.pid))
            self.assertEqual(rc, 0)
