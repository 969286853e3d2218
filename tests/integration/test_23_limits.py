"""23. Rate limiting and load shedding (zh_limit; zerohttpd --rate-limit, --max-inflight,
--limits-file reloaded on SIGHUP): 429 with Retry-After past a client's burst and recovery
after refill, buckets per client address shared by every worker, 503 past the in-flight
limit and recovery when responses end (also when clients leave mid-response), exact
zerohttp_shed_total deltas, and no allocation on the refusal paths."""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

from harness import (HELLO, HOST, RawConn, Server, ServerError, ServerTestCase, malloc_calls,
                     metrics, request, server_bin)

SHIM = os.environ.get("ZH_SHIM", "")


class LimitCase(ServerTestCase):
    def conn_from(self, src, timeout=5.0):
        """A keep-alive connection from source address src (any of 127/8 is local)."""
        c = RawConn.__new__(RawConn)
        c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.sock.settimeout(timeout)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sock.bind((src, 0))
        c.sock.connect((HOST, self.port))
        c.buf, c.eof, c.reset = bytearray(), False, False
        return self.track(c)

    def statuses(self, c, n, path="/plaintext"):
        """n requests pipelined in one write; their statuses, in order."""
        c.send(request("GET", path) * n)
        out = []
        for _ in range(n):
            r = c.read_response()
            out.append(r.status)
            if r.status == 200 and path == "/plaintext":
                self.assertEqual(r.body, HELLO)
        return out

    def get(self, c, path="/plaintext"):
        c.send(request("GET", path))
        return c.read_response()

    def sheds(self):
        m = metrics(self.port)
        return (m['zerohttp_shed_total{code="429"}'], m['zerohttp_shed_total{code="503"}'])

    def assertRefused(self, r, status, retry_after=None):
        self.assertResponse(r, status, content_type="text/plain; charset=utf-8")
        self.assertEqual(r.body, b"Too Many Requests\n" if status == 429
                         else b"Service Unavailable\n")
        self.assertIsNone(r.header("Connection"), "a refusal keeps the connection: %r" % r)
        ra = r.header("Retry-After")
        self.assertIsNotNone(ra, repr(r))
        self.assertRegex(ra, r"^[1-9][0-9]*$")
        if retry_after is not None:
            self.assertIn(int(ra), retry_after, repr(r))
        return int(ra)

    def in_flight(self):
        """The server's own gauge, less the scrape that reads it."""
        return metrics(self.port)["zerohttp_http_requests_in_flight"] - 1

    def wait_in_flight(self, n, within=5.0):
        deadline = time.monotonic() + within
        while self.in_flight() != n:
            if time.monotonic() > deadline:
                self.fail("in flight: %r, expected %d" % (self.in_flight(), n))
            time.sleep(0.01)

    def assertHeld(self, held, wait=0.2):
        """Nothing came back on any of them within wait seconds: admitted, not refused."""
        time.sleep(wait)
        for h in held:
            self.assertTrue(h.no_data_for(0.001), "refused instead of held: %r" % h.buf[:40])

    def hold(self, n, ms, src=HOST):
        """n connections, each with GET /delay?ms=ms in flight; none answered at once."""
        held = []
        for _ in range(n):
            c = self.conn_from(src)
            c.send(request("GET", "/delay?ms=%d" % ms))
            held.append(c)
        return held


class RateLimit(LimitCase):
    # a token every 2 s, bursts of 10: refill during a burst test (well under 1 s) is nil
    SERVER_ARGS = ("--workers", "2", "--rate-limit", "0.5:10")

    def test_burst_then_429_with_retry_after_then_recovery(self):
        c = self.conn()
        t0 = time.monotonic()
        got = [self.get(c) for _ in range(13)]
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 1.5, "the burst must take less than a refill interval")
        self.assertEqual([r.status for r in got], [200] * 10 + [429] * 3)
        for r in got[10:]:
            ra = self.assertRefused(r, 429, retry_after=(1, 2))
        # the connection stayed open through the refusals; after Retry-After, one token
        time.sleep(ra + 0.05)
        self.assertEqual(self.get(c).status, 200)
        self.assertRefused(self.get(c), 429, retry_after=(1, 2))

    def test_exactly_the_burst_passes_when_pipelined(self):
        c = self.conn()
        self.assertEqual(self.statuses(c, 25), [200] * 10 + [429] * 15)

    def test_clients_do_not_share_buckets(self):
        a, b = self.conn_from("127.0.0.2"), self.conn_from("127.0.0.3")
        self.assertEqual(self.statuses(a, 12), [200] * 10 + [429] * 2)
        self.assertEqual(self.statuses(b, 12), [200] * 10 + [429] * 2)
        self.assertEqual(self.statuses(a, 1), [429])
        self.assertEqual(self.statuses(self.conn(), 11), [200] * 10 + [429])

    def test_one_bucket_per_client_across_workers_and_connections(self):
        # SO_REUSEPORT spreads these over both workers; the client has one bucket
        conns = [self.conn_from("127.0.0.4") for _ in range(12)]
        for c in conns:
            c.send(request("GET", "/plaintext") * 2)
        got = [c.read_response().status for c in conns for _ in range(2)]
        self.assertEqual(got.count(200), 10, got)
        self.assertEqual(got.count(429), 14, got)

    def test_health_and_metrics_are_never_limited(self):
        c = self.conn()
        self.assertEqual(self.statuses(c, 11), [200] * 10 + [429])
        for path in ("/healthz", "/readyz", "/metrics"):
            self.assertEqual(self.statuses(c, 20, path), [200] * 20, path)
        self.assertEqual(self.statuses(c, 1), [429])

    def test_head_and_unknown_paths_are_limited_too(self):
        c = self.conn()
        self.assertEqual(self.statuses(c, 10, "/no-such-file"), [404] * 10)
        c.send(request("HEAD", "/plaintext"))
        r = c.read_response("HEAD")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.header("Content-Length"), "18")
        self.assertEqual(self.statuses(c, 1, "/no-such-file"), [429])

    def test_a_refused_request_body_is_skipped_and_the_connection_kept(self):
        c = self.conn()
        self.assertEqual(self.statuses(c, 10), [200] * 10)
        c.send(request("POST", "/echo", body=b"x" * 100) + request("GET", "/plaintext"))
        self.assertRefused(c.read_response(), 429)
        self.assertRefused(c.read_response(), 429)

    def test_metrics_count_every_refusal_exactly(self):
        before = self.sheds()
        self.assertEqual(self.statuses(self.conn(), 17), [200] * 10 + [429] * 7)
        self.assertEqual(self.statuses(self.conn_from("127.0.0.5"), 13), [200] * 10 + [429] * 3)
        after = self.sheds()
        self.assertEqual((after[0] - before[0], after[1] - before[1]), (10, 0))


class InFlight(LimitCase):
    SERVER_ARGS = ("--workers", "2", "--max-inflight", "3")

    def test_503_beyond_max_inflight_then_recovery(self):
        before = self.sheds()
        held = self.hold(3, 1000)
        self.wait_in_flight(3)
        c = self.conn()
        self.assertRefused(self.get(c), 503, retry_after=(1,))
        self.assertRefused(self.get(c), 503, retry_after=(1,))
        for h in held:
            r = h.read_response()
            self.assertEqual((r.status, r.body), (200, b"delayed 1000 ms\n"))
        self.assertEqual(self.get(c).status, 200, "the same connection, now admitted")
        self.assertEqual(self.statuses(c, 50), [200] * 50, "one at a time: never over 3")
        after = self.sheds()
        self.assertEqual((after[0] - before[0], after[1] - before[1]), (0, 2))

    def test_streamed_responses_hold_their_place_until_their_last_chunk(self):
        # a slow reader keeps a 16 MiB producer response open; its place is held till the end
        s = self.conn(rcvbuf=4096)
        s.send(request("GET", "/stream?bytes=%d" % (16 << 20)))
        held = self.hold(2, 1500)
        self.wait_in_flight(3)
        self.assertRefused(self.get(self.conn()), 503)
        r = s.read_response()
        self.assertEqual(len(r.body), 16 << 20)
        for h in held:
            self.assertEqual(h.read_response().status, 200)
        self.wait_in_flight(0)
        self.assertEqual(self.statuses(self.conn(), 3), [200] * 3)

    def test_places_come_back_when_clients_leave_mid_delay(self):
        held = self.hold(3, 600)
        self.wait_in_flight(3)
        for h in held:
            h.close()          # FIN: the deferred response still ends, into a closed socket
        self.wait_in_flight(0, within=3.0)
        again = self.hold(3, 1000)
        self.assertHeld(again)
        self.assertRefused(self.get(self.conn()), 503)
        for h in again:
            self.assertEqual(h.read_response().status, 200)

    def test_the_library_own_answers_do_not_leak_places(self):
        c = self.conn()
        for _ in range(20):
            c.send(request("GET", "/no-such-file") + request("DELETE", "/plaintext") +
                   request("POST", "/echo", [("Content-Length", "99999999")]))
            self.assertEqual(c.read_response().status, 404)
            self.assertEqual(c.read_response().status, 405)
            self.assertEqual(c.read_response().status, 413)
            c = self.conn()
        bad = self.conn()
        bad.send(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(bad.read_response().status, 400)
        self.assertHeld(self.hold(3, 1000))     # all 3 places are free
        self.assertRefused(self.get(self.conn()), 503)


class InFlightReset(LimitCase):
    # one worker: a context freed by a reset is the next one lent (see src/mw_limit.c)
    SERVER_ARGS = ("--workers", "1", "--max-inflight", "2")

    def reset_mid_delay(self, n):
        held = self.hold(n, 5000)
        self.wait_in_flight(n)
        for h in held:
            h.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close()          # RST: the connection dies with its response unfinished
        time.sleep(0.2)

    def test_places_come_back_when_clients_reset_mid_delay(self):
        self.reset_mid_delay(2)
        again = self.hold(2, 1000)
        self.assertHeld(again)
        self.assertRefused(self.get(self.conn()), 503)
        for h in again:
            self.assertEqual(h.read_response().status, 200)
        self.assertEqual(self.statuses(self.conn(), 5), [200] * 5)

    def test_core_in_flight_gauge_after_a_reset_mid_response(self):
        """A connection that dies with its response unfinished still ends its request
        (ctx_detach: requests_done counted, done hooks run once), so
        zerohttp_http_requests_in_flight goes back to 0 (only the scrape itself)."""
        self.reset_mid_delay(2)
        self.assertEqual(self.statuses(self.conn(), 2), [200] * 2)
        deadline = time.time() + 3
        while self.in_flight() != 0 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.in_flight(), 0)


class LimitsFile(LimitCase):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        fd, self.path = tempfile.mkstemp(prefix="zh-limits-")
        os.close(fd)
        self.addCleanup(os.unlink, self.path)

    def write(self, text):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)

    def start(self, *args):
        self.server = self.start_server(("--workers", "2", "--limits-file", self.path) + args)
        self.port = self.server.port
        # the port listens before the limits are read: wait for them (slow under ASan)
        deadline = time.monotonic() + 5
        while not self.limits_lines():
            self.assertLess(time.monotonic(), deadline, "no limits line within 5 s")
            time.sleep(0.01)

    def limits_lines(self):
        return re.findall(r"zerohttpd: limits[^\n]*", self.server.stderr_text())

    def reload(self, expect):
        n = len(self.limits_lines())
        self.server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while len(self.limits_lines()) == n:
            self.assertLess(time.monotonic(), deadline, "no reload within 5 s")
            time.sleep(0.01)
        self.assertEqual(self.limits_lines()[-1], expect)

    def test_sighup_reload_changes_the_rate(self):
        self.write("# a comment\n\nrate-limit 1:3\n")
        self.start()
        self.assertEqual(self.limits_lines(),
                         ["zerohttpd: limits: rate-limit 1:3 per client, max-inflight off"])
        c = self.conn()
        self.assertEqual(self.statuses(c, 5), [200] * 3 + [429] * 2)
        self.write("rate-limit 0.5:6   # slower, bigger bursts\n")
        self.reload("zerohttpd: limits: rate-limit 0.5:6 per client, max-inflight off")
        self.assertEqual(self.statuses(c, 8), [200] * 6 + [429] * 2,
                         "a new rate: a full bucket of the new size")
        self.assertRefused(self.get(c), 429, retry_after=(1, 2))
        self.write("rate-limit 0\nmax-inflight 1\n")
        self.reload("zerohttpd: limits: rate-limit off, max-inflight 1")
        self.assertEqual(self.statuses(c, 40), [200] * 40)
        held = self.hold(1, 800)
        self.wait_in_flight(1)
        self.assertRefused(self.get(c), 503)
        self.assertEqual(held[0].read_response().status, 200)
        self.assertEqual(self.get(c).status, 200)

    def test_a_bad_file_keeps_the_limits_in_force(self):
        self.write("rate-limit 2:4\n")
        self.start()
        c = self.conn()
        for bad in ("rate-limit fast\n", "rate-limit 2:0.5\n", "max-inflight -1\n",
                    "burst 5\n", "rate-limit 1e3\n", "rate-limit\n"):
            self.write("max-inflight 7\n" + bad)
            n = self.server.stderr_text().count("limits not reloaded")
            self.server.signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while self.server.stderr_text().count("limits not reloaded") == n:
                self.assertLess(time.monotonic(), deadline, "no complaint about %r" % bad)
                time.sleep(0.01)
            self.assertIn("%s:2: expected" % self.path, self.server.stderr_text())
        os.unlink(self.path)
        self.server.signal(signal.SIGHUP)
        time.sleep(0.2)
        self.write("")       # for the cleanup
        self.assertEqual(self.statuses(c, 6), [200] * 4 + [429] * 2, "still 2:4")

    def test_the_file_overrides_the_flags_line_by_line(self):
        self.write("max-inflight 5\n")
        self.start("--rate-limit", "1:2", "--max-inflight", "1")
        self.assertEqual(self.limits_lines(),
                         ["zerohttpd: limits: rate-limit 1:2 per client, max-inflight 5"])
        self.assertEqual(self.statuses(self.conn(), 3), [200] * 2 + [429])
        self.write("")
        self.reload("zerohttpd: limits: rate-limit 1:2 per client, max-inflight 1")


class LoopbackV6Server(Server):
    """zerohttpd listening on ::1 only (its --address comes after the harness's)."""

    def _wait_ready(self):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("zerohttpd exited during startup: %s" % self.stderr_text())
            try:
                socket.create_connection(("::1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.005)
        raise ServerError("zerohttpd did not accept on ::1: %s" % self.stderr_text())


@unittest.skipUnless(socket.has_ipv6, "no IPv6")
class Ipv6Prefix(LimitCase):
    """IPv6 clients are keyed per prefix (/64 unless --rate-limit-ipv6-prefix or the
    limits file's rate-limit-ipv6-prefix says otherwise). Only ::1 exists here, so this
    checks that an IPv6 client is limited under each setting and that the setting is taken
    and reloaded; which addresses share a bucket is tests/test_limit.c's."""

    AUTO_START = False
    write = LimitsFile.write
    limits_lines = LimitsFile.limits_lines
    reload = LimitsFile.reload

    def setUp(self):
        super().setUp()
        fd, self.path = tempfile.mkstemp(prefix="zh-limits-")
        os.close(fd)
        self.addCleanup(os.unlink, self.path)

    def start(self, *args):
        try:
            srv = LoopbackV6Server(("--workers", "2", "--address", "::1",
                                    "--limits-file", self.path) + args).start()
        except ServerError as e:
            self.skipTest("cannot listen on ::1: %s" % e)
        self._servers.append(srv)
        self.server, self.port = srv, srv.port
        deadline = time.monotonic() + 5
        while not self.limits_lines():
            self.assertLess(time.monotonic(), deadline, "no limits line within 5 s")
            time.sleep(0.01)

    def conn6(self):
        c = RawConn.__new__(RawConn)
        c.sock = socket.create_connection(("::1", self.port), timeout=5.0)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.buf, c.eof, c.reset = bytearray(), False, False
        return self.track(c)

    def test_ipv6_client_limited_under_the_configured_prefix(self):
        self.write("rate-limit 0.5:3\n")
        self.start("--rate-limit-ipv6-prefix", "48")
        self.assertEqual(self.limits_lines(),
                         ["zerohttpd: limits: rate-limit 0.5:3 per client (IPv6 per /48), "
                          "max-inflight off"])
        # two connections from ::1 (any two ports): one client, one bucket of 3
        self.assertEqual(self.statuses(self.conn6(), 2), [200] * 2)
        self.assertEqual(self.statuses(self.conn6(), 2), [200, 429])
        self.write("rate-limit 0.5:4\nrate-limit-ipv6-prefix 128\n")
        self.reload("zerohttpd: limits: rate-limit 0.5:4 per client (IPv6 per /128), "
                    "max-inflight off")
        self.assertEqual(self.statuses(self.conn6(), 5), [200] * 4 + [429])
        for bad in ("rate-limit-ipv6-prefix 31\n", "rate-limit-ipv6-prefix 129\n",
                    "rate-limit-ipv6-prefix /64\n"):
            self.write(bad)
            n = self.server.stderr_text().count("limits not reloaded")
            self.server.signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while self.server.stderr_text().count("limits not reloaded") == n:
                self.assertLess(time.monotonic(), deadline, "no complaint about %r" % bad)
                time.sleep(0.01)


class Flags(unittest.TestCase):
    def run_bad(self, *args):
        p = subprocess.run([server_bin(), "--port", "0"] + list(args), capture_output=True,
                           timeout=10)
        return p.returncode, p.stderr.decode()

    def test_bad_values_are_refused_at_start(self):
        for args in (["--rate-limit", "x"], ["--rate-limit", "5:0.5"], ["--rate-limit", "-1"],
                     ["--rate-limit", "0.0001"], ["--rate-limit", "5:"], ["--rate-limit", "1:2:3"],
                     ["--rate-limit", "inf"], ["--max-inflight", "-3"],
                     ["--max-inflight", "99999999999"], ["--rate-limit-ipv6-prefix", "31"],
                     ["--rate-limit-ipv6-prefix", "129"], ["--rate-limit-ipv6-prefix", "x"]):
            rc, err = self.run_bad(*args)
            self.assertEqual(rc, 2, "%r: %s" % (args, err))
        path = os.path.join(tempfile.gettempdir(), "zh-no-such-limits-%s" % uuid.uuid4().hex)
        rc, err = self.run_bad("--limits-file", path)
        self.assertEqual(rc, 1)
        self.assertIn("cannot read --limits-file", err)


@unittest.skipUnless(SHIM, "ZH_SHIM not set (no malloc-counting shim)")
class ZeroAllocLimits(LimitCase):
    """Admissions, 429s and 503s with a full client table: 0 malloc-family calls."""
    AUTO_START = False
    SOURCES = ["127.0.0.%d" % i for i in range(10, 30)]

    def setUp(self):
        super().setUp()
        self.count_file = os.path.join(tempfile.gettempdir(),
                                       "zh-malloc-%d-%s" % (os.getpid(), uuid.uuid4().hex))
        self.addCleanup(lambda: os.path.exists(self.count_file) and os.unlink(self.count_file))
        self.server = self.start_server(
            ("--workers", "2", "--rate-limit", "50:40", "--max-inflight", "4"),
            {"LD_PRELOAD": os.path.abspath(SHIM), "ZH_MALLOC_COUNT_FILE": self.count_file})
        self.port = self.server.port

    def snapshot(self):
        return malloc_calls(self.server.pid, self.count_file)

    def round(self, conns, per_conn, counts):
        for c in conns:
            c.send(request("GET", "/plaintext") * per_conn)
        for c in conns:
            for _ in range(per_conn):
                s = c.read_response().status
                counts[s] = counts.get(s, 0) + 1

    def run_phase(self, conns, total):
        counts = {}
        per_conn = 25
        for i in range(total // (per_conn * len(conns))):
            if i % 4 == 1:
                held = self.hold(4, 300, src="127.0.0.99")   # fill every place: 503s
                self.assertHeld(held, 0.05)                 # (no /metrics: not measured)
                self.round(conns, per_conn, counts)
                for h in held:
                    self.assertEqual(h.read_response().status, 200)
                    h.close()
            else:
                self.round(conns, per_conn, counts)
            time.sleep(0.05)                                # a little refill
        return counts

    def test_zero_allocations_while_limiting(self):
        conns = [self.conn_from(src) for src in self.SOURCES]
        self.run_phase(conns, 1000)            # warm-up: every path, every worker
        a = self.snapshot()
        counts = self.run_phase(conns, 2000)
        b = self.snapshot()
        sys.stdout.write("      limits zero-alloc: %r, malloc-family calls delta=%d\n"
                         % (sorted(counts.items()), b - a))
        sys.stdout.flush()
        self.assertEqual(sum(counts.values()), 2000)
        for status in (200, 429, 503):
            self.assertGreater(counts.get(status, 0), 0, "no %d in %r" % (status, counts))
        self.assertEqual(b - a, 0, "%d malloc-family calls during 2,000 requests" % (b - a))


if __name__ == "__main__":
    unittest.main()
