"""37. State, time and metrics for applications (issue 13), from outside: worker timers as a
deferred response's deadline (tests/json_server.c /deadline), the authenticated identity in
the access log, application metrics on /metrics, and trusted proxies."""
import os
import signal
import subprocess
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


if __name__ == "__main__":
    unittest.main()
