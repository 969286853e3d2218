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
                self.assertIn(b"--trusted-proxy", r.stderr)


if __name__ == "__main__":
    unittest.main()
