"""37. State, time and metrics for applications (issue 13), from outside: worker timers as a
deferred response's deadline (tests/json_server.c /deadline), the authenticated identity in
the access log, application metrics on /metrics, and trusted proxies."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import ServerTestCase, request


def json_server_bin():
    return os.environ.get("ZH_JSON_SERVER") or os.path.join(
        os.path.dirname(os.environ.get("ZH_BIN", "build/zerohttpd")), "tests", "json_server")


class JsonServerCase(ServerTestCase):
    """tests/json_server.c, started by PID (spawn: killed when the test ends, pass or fail)."""
    AUTO_START = False

    def start_json_server(self, env=None):
        proc = self.spawn([json_server_bin(), "0"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)
        self.js = proc
        self.js_port = int(proc.stdout.readline().split()[1])
        return proc

    def stop_json_server(self):
        self.js.send_signal(signal.SIGTERM)
        self.assertEqual(self.js.wait(timeout=10), 0, self.js.stderr.read())


class Timers(JsonServerCase):
    def test_deadline_answers_a_deferred_response(self):
        self.start_json_server()
        c = self.conn(self.js_port)
        t0 = time.monotonic()
        c.send(request("GET", "/deadline?ms=100"))
        r = c.read_response()
        dt = time.monotonic() - t0
        self.assertEqual(r.status, 504)
        self.assertEqual(r.body, b'{"error":"deadline"}')
        self.assertGreaterEqual(dt, 0.100)
        self.assertLess(dt, 1.0)
        self.stop_json_server()

    def test_work_before_the_deadline_cancels_it(self):
        self.start_json_server()
        c = self.conn(self.js_port)
        t0 = time.monotonic()
        c.send(request("GET", "/deadline?ms=2000&work=50"))
        r = c.read_response()
        dt = time.monotonic() - t0
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b'{"done":true}')
        self.assertGreaterEqual(dt, 0.050)
        self.assertLess(dt, 1.5)
        # the cancelled deadline never answers anything on this keep-alive connection
        self.assertTrue(c.no_data_for(2.2))
        c.send(request("GET", "/deadline?ms=0"))
        self.assertEqual(c.read_response().status, 504)
        self.stop_json_server()

    def test_many_deadlines_come_back_in_order(self):
        self.start_json_server()
        conns = []
        for ms in (400, 100, 300, 200, 0):
            c = self.conn(self.js_port)
            c.send(request("GET", "/deadline?ms=%d" % ms))
            conns.append((ms, c))
        t0 = time.monotonic()
        for ms, c in sorted(conns, key=lambda x: x[0]):
            self.assertEqual(c.read_response().status, 504)
            self.assertGreaterEqual(time.monotonic() - t0 + 0.05, ms / 1000.0)
        self.stop_json_server()

    def test_sigterm_drain_waits_for_the_deadline(self):
        self.start_json_server()
        c = self.conn(self.js_port)
        t0 = time.monotonic()
        c.send(request("GET", "/deadline?ms=400"))
        time.sleep(0.1)
        self.js.send_signal(signal.SIGTERM)
        r = c.read_response()
        dt = time.monotonic() - t0
        self.assertEqual(r.status, 504)
        self.assertEqual(r.header("Connection"), "close")
        self.assertGreaterEqual(dt, 0.4)
        self.assertEqual(self.js.wait(timeout=10), 0)


def parse_scrape(text):
    """{series: value} of a Prometheus text scrape; HELP and TYPE come before each family."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            base = name_labels.split("{")[0]
            assert base in typed or base.rsplit("_", 1)[0] in typed, line
            samples[name_labels] = float(value)
    return samples


class AppMetrics(JsonServerCase):
    def scrape(self, c):
        c.send(request("GET", "/metrics"))
        r = c.read_response()
        self.assertEqual(r.status, 200)
        return r.body.decode()

    def test_app_metrics_after_requests(self):
        self.start_json_server()
        c = self.conn(self.js_port)
        for n in (0, 5, 50, 500, 5000):
            c.send(request("GET", "/count?n=%d" % n))
            self.assertEqual(c.read_response().body, b'{"n":%d}' % n)
        c.send(request("GET", "/deadline?ms=0"))
        self.assertEqual(c.read_response().status, 504)
        text = self.scrape(c)
        m = parse_scrape(text)
        self.assertEqual(m['app_requests_total{route="/count"}'], 5)
        self.assertEqual(m['app_requests_total{route="/deadline"}'], 1)
        self.assertEqual(m['app_requests_total{route="/all"}'], 0)
        self.assertEqual(m['app_work_seconds_bucket{route="/count",le="0.001"}'], 1)
        self.assertEqual(m['app_work_seconds_bucket{route="/count",le="0.01"}'], 2)
        self.assertEqual(m['app_work_seconds_bucket{route="/count",le="0.1"}'], 3)
        self.assertEqual(m['app_work_seconds_bucket{route="/count",le="1"}'], 4)
        self.assertEqual(m['app_work_seconds_bucket{route="/count",le="+Inf"}'], 5)
        self.assertAlmostEqual(m['app_work_seconds_sum{route="/count"}'], 5.555)
        self.assertEqual(m['app_work_seconds_count{route="/count"}'], 5)
        self.assertEqual(m["app_inflight"], 0)
        self.assertIn("# HELP app_requests_total Requests by route pattern.\n"
                      "# TYPE app_requests_total counter\n", text)
        # the library's own come first, unchanged
        self.assertLess(text.index("zerohttp_http_requests_total"), text.index("app_"))
        promtool = shutil.which("promtool")
        if promtool:
            r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.stop_json_server()

    @unittest.skipUnless(os.environ.get("ZH_SHIM"), "sanitizer builds leave malloc unwrapped")
    def test_updates_allocate_nothing_over_100000_requests(self):
        from harness import malloc_calls
        import uuid
        count_file = os.path.join(tempfile.gettempdir(), "zh-malloc-%d-%s"
                                  % (os.getpid(), uuid.uuid4().hex))
        self.addCleanup(lambda: os.path.exists(count_file) and os.unlink(count_file))
        env = dict(os.environ, LD_PRELOAD=os.path.abspath(os.environ["ZH_SHIM"]),
                   ZH_MALLOC_COUNT_FILE=count_file)
        self.start_json_server(env)
        conns = [self.conn(self.js_port) for _ in range(8)]

        def drive(total):
            done = 0
            while done < total:
                batch = []
                for c in conns:
                    n = min(50, total - done)
                    if n <= 0:
                        break
                    c.send(b"".join(request("GET", "/count?n=%d" % ((done + i) % 2000))
                                    for i in range(n)))
                    batch.append((c, n, done))
                    done += n
                for c, n, first in batch:
                    for i in range(n):
                        r = c.read_response()
                        if r.status != 200 or r.body != b'{"n":%d}' % ((first + i) % 2000):
                            self.fail("bad response %r %r" % (r.status, r.body[:80]))
            return done

        drive(2000)                                   # warm-up: buffers, caches, pools
        before = malloc_calls(self.js.pid, count_file)
        t0 = time.monotonic()
        n = drive(100000)
        after = malloc_calls(self.js.pid, count_file)
        print("      zero-alloc app metrics: %d requests in %.1fs, malloc-family calls "
              "before=%d after=%d delta=%d" % (n, time.monotonic() - t0, before, after,
                                              after - before))
        self.assertEqual(after, before)
        m = parse_scrape(self.scrape(conns[0]))
        self.assertEqual(m['app_requests_total{route="/count"}'], 102000)
        self.assertEqual(m['app_work_seconds_count{route="/count"}'], 102000)
        self.stop_json_server()


class TrustedProxies(ServerTestCase):
    """--trusted-proxy from outside: raw sockets from 127.0.0.1, with 127.0.0.0/8 trusted or
    not; the access log's client and the rate limiter's key follow the forwarded address
    only for a trusted peer."""
    AUTO_START = False

    def log_clients(self, args, asks):
        log = os.path.join(self.tmp, "access-%d.log" % len(os.listdir(self.tmp)))
        srv = self.start_server(tuple(args) + ("--workers", "1", "--access-log", log,
                                               "--access-log-format", "json"))
        statuses = []
        for hdrs in asks:
            c = self.conn(srv.port)
            c.send(request("GET", "/plaintext", list(hdrs) + [("Connection", "close")]))
            statuses.append(c.read_response().status)
        self.assertEqual(srv.stop(), [])
        srv.expected_exit = True
        with open(log) as f:
            return statuses, [json.loads(l)["client"] for l in f.read().splitlines()]

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="zh-proxy-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    ASKS = [(),
            (("X-Forwarded-For", "203.0.113.7"),),
            (("X-Forwarded-For", "6.6.6.6, 198.51.100.2, 127.0.0.9"),),
            (("Forwarded", 'for="[2001:db8::7]:443";proto=https'),),
            (("X-Forwarded-For", "not-an-address"),),
            (("Forwarded", "for=unknown"),)]

    def test_trusted_peer_names_the_client_in_the_access_log(self):
        statuses, clients = self.log_clients(("--trusted-proxy", "10.0.0.0/8",
                                              "--trusted-proxy", "127.0.0.0/8"), self.ASKS)
        self.assertEqual(statuses, [200] * len(self.ASKS))
        self.assertEqual(clients, ["127.0.0.1", "203.0.113.7", "198.51.100.2", "2001:db8::7",
                                   "127.0.0.1", "127.0.0.1"])

    def test_untrusted_peer_headers_are_ignored(self):
        for args in ((), ("--trusted-proxy", "10.0.0.0/8"), ("--trusted-proxy", "::1")):
            with self.subTest(args=args):
                _, clients = self.log_clients(args, self.ASKS)
                self.assertEqual(clients, ["127.0.0.1"] * len(self.ASKS))

    def test_rate_limit_keys_on_the_forwarded_client(self):
        def statuses(args):
            srv = self.start_server(tuple(args) + ("--rate-limit", "0.01:1"))
            out = []
            c = self.conn(srv.port)
            for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.1"):
                c.send(request("GET", "/plaintext", [("X-Forwarded-For", ip)]))
                out.append(c.read_response().status)
            return out
        # trusted: two clients with a bucket each; the first one's second request is refused
        self.assertEqual(statuses(("--trusted-proxy", "127.0.0.0/8")), [200, 200, 429])
        # not trusted: one peer, one bucket
        self.assertEqual(statuses(()), [200, 429, 429])

    def test_bad_trusted_proxy_is_a_usage_error(self):
        for bad in ("10.0.0.0/33", "example.com", "10.0.0.1/8"):
            with self.subTest(bad=bad):
                r = subprocess.run([os.environ.get("ZH_BIN", "build/zerohttpd"),
                                    "--trusted-proxy", bad], capture_output=True, timeout=10)
                self.assertEqual(r.returncode, 2)
                # the flag is known and its value refused (not "unknown option")
                self.assertIn(b"bad value '%s' for --trusted-proxy" % bad.encode(), r.stderr)


if __name__ == "__main__":
    unittest.main()
