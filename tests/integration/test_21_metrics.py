"""21. GET /metrics (Prometheus text format 0.0.4), /healthz and /readyz."""
import os
import re
import signal
import time
import unittest

from harness import HELLO, ServerTestCase, request

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",?)*\})? '
                    r'(-?[0-9.e+-]+|\+Inf|NaN)$')


def parse(text):
    """Strict enough for format 0.0.4: every family has HELP and TYPE before its samples,
    every sample line parses, names are unique per label set."""
    families, samples, current = {}, {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            current = line.split()[2]
            families[current] = None
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == current, line
            assert kind in ("counter", "gauge", "histogram"), line
            families[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, "bad sample line: %r" % line
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            base = re.sub(r"_(bucket|sum|count)$", "", name) if families.get(
                re.sub(r"_(bucket|sum|count)$", "", name)) == "histogram" else name
            assert base == current, "sample %s outside its family %s" % (name, current)
            key = name + labels
            assert key not in samples, "duplicate " + key
            samples[key] = float(value)
    return families, samples


class Metrics(ServerTestCase):
    SERVER_ARGS = ("--workers", "2")

    def scrape(self, c):
        c.send(request("GET", "/metrics"))
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        return parse(r.body.decode())

    def test_counters_move_by_exactly_what_was_done(self):
        c = self.conn()
        _, before = self.scrape(c)
        for _ in range(7):
            c.send(request("GET", "/plaintext"))
            self.assertEqual(c.read_response().body, HELLO)
        for _ in range(3):
            c.send(request("HEAD", "/missing-file"))
            self.assertEqual(c.read_response("HEAD").status, 404)
        c.send(request("POST", "/echo", [("Content-Length", "5")]) + b"hello")
        self.assertEqual(c.read_response().body, b"hello")
        bad = self.conn()
        bad.send(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(bad.read_response().status, 400)
        families, after = self.scrape(c)

        def delta(key):
            return after.get(key, 0) - before.get(key, 0)
        # the first scrape's own response is counted by the second
        self.assertEqual(delta('zerohttp_http_responses_total{method="GET",code="2xx"}'), 8)
        self.assertEqual(delta('zerohttp_http_responses_total{method="HEAD",code="4xx"}'), 3)
        self.assertEqual(delta('zerohttp_http_responses_total{method="POST",code="2xx"}'), 1)
        self.assertEqual(delta('zerohttp_http_responses_total{method="other",code="4xx"}'), 1)
        self.assertEqual(delta('zerohttp_parse_rejections_total{reason="400"}'), 1)
        self.assertEqual(delta("zerohttp_http_requests_total"), 12)
        self.assertEqual(delta("zerohttp_http_request_duration_seconds_count"), 12)  # + scrape 1
        self.assertEqual(after["zerohttp_http_requests_in_flight"], 1)  # this scrape
        self.assertGreaterEqual(after["zerohttp_connections_open"], 2)
        self.assertGreater(delta("zerohttp_sent_bytes_total"), 7 * len(HELLO))
        self.assertEqual(delta('zerohttp_syscalls_total{call="sendfile"}'), 0)
        self.assertEqual(after["zerohttp_body_bytes_copied_total"],
                         before["zerohttp_body_bytes_copied_total"])
        self.assertEqual(families["zerohttp_http_request_duration_seconds"], "histogram")
        self.assertEqual(after['zerohttp_build_info{version="0.1.0"}'], 1)
        self.assertLessEqual(abs(after["zerohttp_start_time_seconds"] - time.time()), 60)

    def test_histogram_is_cumulative_and_ends_at_count(self):
        c = self.conn()
        for _ in range(20):
            c.send(request("GET", "/plaintext"))
            c.read_response()
        _, s = self.scrape(c)
        buckets = [(k, v) for k, v in s.items()
                   if k.startswith("zerohttp_http_request_duration_seconds_bucket")]
        self.assertEqual(len(buckets), 19)
        values = [v for _, v in buckets]
        self.assertEqual(values, sorted(values), "buckets must be cumulative")
        self.assertEqual(buckets[-1][0], 'zerohttp_http_request_duration_seconds_bucket{le="+Inf"}')
        self.assertEqual(values[-1], s["zerohttp_http_request_duration_seconds_count"])
        self.assertGreaterEqual(values[-1], 20)
        self.assertGreater(s["zerohttp_http_request_duration_seconds_sum"], 0)
        self.assertLess(s["zerohttp_http_request_duration_seconds_sum"], 5)

    def test_health_and_readiness(self):
        c = self.conn()
        c.send(request("GET", "/healthz") + request("GET", "/readyz"))
        self.assertEqual(c.read_response().body, b"ok\n")
        self.assertEqual(c.read_response().body, b"ready\n")
        # a request in flight at SIGTERM learns the server is draining
        busy = self.conn()
        busy.send(b"GET /readyz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.2)
        self.server.expected_exit = True
        self.server.signal(signal.SIGTERM)
        time.sleep(0.2)
        busy.send(b"\r\n")
        r = busy.read_response()
        self.assertEqual((r.status, r.body), (503, b"draining\n"))
        self.assertEqual(r.header("Retry-After"), "1")


class PoolCapacity(ServerTestCase):
    SERVER_ARGS = ("--workers", "2", "--max-connections", "300", "--io-contexts", "7")

    def test_capacity_is_per_worker_times_workers(self):
        kinds, m = Metrics.scrape(self, self.conn())
        self.assertEqual(kinds["zerohttp_pool_capacity"], "gauge")
        self.assertEqual(m['zerohttp_pool_capacity{pool="connections"}'], 600)
        self.assertEqual(m['zerohttp_pool_capacity{pool="io_contexts"}'], 14)
        self.assertGreater(m['zerohttp_pool_capacity{pool="large_buffers"}'], 0)
        self.assertGreater(m['zerohttp_pool_capacity{pool="body_buffers"}'], 0)
        self.assertLessEqual(m["zerohttp_io_contexts_in_use"], 14)


class NoMetrics(ServerTestCase):
    SERVER_ARGS = ("--no-metrics",)

    def test_metrics_off_health_on(self):
        c = self.conn()
        c.send(request("GET", "/metrics") + request("GET", "/healthz"))
        self.assertEqual(c.read_response().status, 404)
        self.assertEqual(c.read_response().body, b"ok\n")


@unittest.skipUnless(os.environ.get("ZH_SHIM"), "sanitizer builds leave malloc unwrapped")
class HeapAllocationCounter(ServerTestCase):
    """zerohttp_heap_allocations_total: zerohttpd's malloc wrapper counts calls on worker
    threads. The counter reads 0 growth for real traffic, and a worker-thread malloc (the
    test server's /malloc route, linked with the same wrapper) is seen."""
    SERVER_ARGS = ("--workers", "1")

    def test_real_traffic_allocates_nothing_and_a_malloc_is_counted(self):
        import os
        import subprocess
        c = self.conn()
        c.send(request("GET", "/metrics"))
        before = parse(c.read_response().body.decode())[1]["zerohttp_heap_allocations_total"]
        for path in ("/plaintext", "/json/list?n=2000", "/proto?n=50", "/missing"):
            c.send(request("GET", path))
            c.read_response()
        c.send(request("GET", "/metrics"))
        after = parse(c.read_response().body.decode())[1]["zerohttp_heap_allocations_total"]
        self.assertEqual(after, before)
        js = os.environ.get("ZH_JSON_SERVER") or os.path.join(
            os.path.dirname(os.environ.get("ZH_BIN", "build/zerohttpd")), "tests", "json_server")
        # spawn: killed by PID when the test ends, whether it passed or not
        proc = self.spawn([js, "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True)
        port = int(proc.stdout.readline().split()[1])
        j = self.conn(port)
        for _ in range(3):
            j.send(request("GET", "/malloc"))
            self.assertEqual(j.read_response().body, b"1\n")
        proc.terminate()
        proc.wait(timeout=10)
