"""45. --drain-delay: on SIGTERM /readyz answers 503 at once while everything else is served
as before (listener open, keep-alive kept); the drain begins only after the delay. A second
SIGTERM, or SIGINT, drains at once. tests/deploy/test_fleet.py shows why behind HAProxy."""
import signal
import socket
import time

from harness import HELLO, HOST, ServerTestCase, free_port, request, timing_sensitive


def refused(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect((HOST, port))
        return False
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:    # the listener closed under this connect: look again
        return False
    finally:
        s.close()


def serving(srv):
    """Waits for the start line: a signal before it (the harness returns once the port
    accepts, which is before zerohttpd serves) drains at once, by design, delay or not."""
    deadline = time.monotonic() + 10
    while "listening on" not in srv.stderr_text():
        if time.monotonic() > deadline or not srv.alive():
            raise AssertionError("no start line: %s" % srv.stderr_text())
        time.sleep(0.01)
    return srv


def wait_refused(port, within):
    """Seconds until a connect to port is refused, or None if it never was within `within`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if refused(port):
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


class DrainDelay(ServerTestCase):
    SERVER_ARGS = ("--drain-delay", "1500", "--drain-timeout", "5000")

    def get(self, path, conn=None, port=None):
        c = conn or self.conn(port)
        c.send(request("GET", path))
        return c.read_response()

    def wait_not_ready(self, port=None, within=1.0):
        deadline = time.monotonic() + within
        while True:
            r = self.get("/readyz", port=port)
            if r.status == 503 or time.monotonic() > deadline:
                return r
            time.sleep(0.01)

    @timing_sensitive
    def test_readyz_503_while_serving_then_drain(self):
        srv = serving(self.server)
        kept = self.conn()
        self.assertResponse(self.get("/plaintext", kept), 200, HELLO)
        self.assertResponse(self.get("/readyz"), 200, b"ready\n")
        srv.expected_exit = True
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        r = self.wait_not_ready()
        self.assertResponse(r, 503, b"draining\n")
        self.assertEqual(r.header("Retry-After"), "1")
        # still serving as before: the kept connection stays open, a new one is accepted
        r = self.get("/plaintext", kept)
        self.assertResponse(r, 200, HELLO)
        self.assertIsNone(r.header("Connection"), "keep-alive must not end before the drain")
        self.assertResponse(self.get("/plaintext"), 200, HELLO)
        self.assertResponse(self.get("/healthz"), 200, b"ok\n")
        self.assertLess(time.monotonic() - t0, 1.2, "the checks above took too long to mean "
                        "anything")
        # then the drain: the listener closes about 1.5 s after the signal, the kept idle
        # connection is closed, and the process exits 0
        t = wait_refused(self.port, 4.0)
        self.assertIsNotNone(t, "still accepting 4 s after SIGTERM")
        waited = time.monotonic() - t0
        self.assertGreaterEqual(waited, 1.4, "drained after %.2fs, before the delay" % waited)
        self.assertLess(waited, 3.0, "drained after %.2fs" % waited)
        self.assertTrue(kept.closed_by_peer(2.0), "idle connection not closed by the drain")
        self.assertEqual(srv.wait_exit(5), 0, srv.stderr_text())
        self.assertIn("SIGTERM: /readyz answers 503; the drain begins in 1500 ms",
                      srv.stderr_text())

    def test_second_sigterm_drains_at_once(self):
        srv = serving(self.start_server(("--drain-delay", "10000")))
        srv.expected_exit = True
        srv.signal(signal.SIGTERM)
        self.assertEqual(self.wait_not_ready(srv.port).status, 503)
        self.assertResponse(self.get("/plaintext", port=srv.port), 200, HELLO)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(3), 0, srv.stderr_text())
        self.assertLess(time.monotonic() - t0, 3.0)

    def test_sigint_drains_at_once(self):
        srv = serving(self.start_server(("--drain-delay", "10000")))
        srv.expected_exit = True
        t0 = time.monotonic()
        srv.signal(signal.SIGINT)
        self.assertIsNotNone(wait_refused(srv.port, 2.0), "SIGINT waited for the delay")
        self.assertEqual(srv.wait_exit(3), 0, srv.stderr_text())
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertNotIn("the drain begins in", srv.stderr_text())

    def test_no_delay_by_default(self):
        srv = serving(self.start_server(()))
        srv.expected_exit = True
        srv.signal(signal.SIGTERM)
        self.assertIsNotNone(wait_refused(srv.port, 1.0), "without --drain-delay the "
                             "listener must close at once")
        self.assertEqual(srv.wait_exit(3), 0, srv.stderr_text())


class DrainDelayMetricsListener(ServerTestCase):
    """--metrics-listen's /readyz watches the main server: 503 during the delay too."""
    AUTO_START = False

    def test_metrics_listener_readyz_503_during_delay(self):
        mport = free_port()
        srv = serving(self.start_server(("--drain-delay", "1500", "--metrics-listen",
                                         "%s:%d" % (HOST, mport))))
        c = self.conn(mport)
        c.send(request("GET", "/readyz"))
        self.assertEqual(c.read_response().status, 200)
        srv.expected_exit = True
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        deadline = t0 + 1.0
        while True:
            c = self.conn(mport)
            c.send(request("GET", "/readyz"))
            r = c.read_response()
            if r.status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.assertResponse(r, 503, b"draining\n")
        c = self.conn(srv.port)
        c.send(request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, HELLO)
        self.assertEqual(srv.wait_exit(6), 0, srv.stderr_text())
