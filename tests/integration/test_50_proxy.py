"""50. Reverse proxy (zh_proxy_*, zerohttpd --proxy): forwarding, head rewriting, strict
upstream parsing, keep-alive pools, balancing, failover, timeouts, backpressure, upgrade
tunnels (WebSocket), zero allocations.

Upstreams are tests/integration/upstream.py processes (or a zerohttpd --demo) on
127.0.0.1, started per test and stopped by PID (spawn: SIGKILL at cleanup however the test
ends). Each upstream logs its connections and the request heads it received to a file.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

from harness import (HOST, IO, RawConn, Response, Server, ServerTestCase, free_port,
                     malloc_calls, metrics, request, rss_kib)

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.environ.get("ZH_SHIM", "")


def pattern(n):
    base = bytes(range(256)) * 256
    return (base * (n // len(base) + 1))[:n]


class Upstream:
    """One upstream.py process and its event log."""

    def __init__(self, test, name, port=None):
        self.name = name
        self.log = os.path.join(tempfile.gettempdir(), "zh-up-%s.log" % uuid.uuid4().hex)
        test.addCleanup(lambda: os.path.exists(self.log) and os.unlink(self.log))
        for _ in range(3):
            self.port = port or free_port()
            open(self.log, "w").close()
            self.down = self.log + ".down"
            test.addCleanup(lambda: os.path.exists(self.down) and os.unlink(self.down))
            self.proc = test.spawn([sys.executable, os.path.join(HERE, "upstream.py"),
                                    str(self.port), name, self.log, self.down])
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                if any(e["ev"] == "ready" for e in self.events()):
                    return
                time.sleep(0.02)
        raise AssertionError("upstream %s did not start" % name)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def events(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def conns(self):
        return sum(1 for e in self.events() if e["ev"] == "conn")

    def requests(self):
        return [e for e in self.events() if e["ev"] == "req"]

    def stop(self):
        self.proc.kill()
        self.proc.wait(5)


def dead_url():
    """A port on 127.0.0.1 where nothing listens (bound then closed: connections refused)."""
    return "http://127.0.0.1:%d" % free_port()


def head_fields(head):
    """Request head text -> [(lower name, value)]."""
    out = []
    for line in head.split("\r\n")[1:]:
        if line:
            n, v = line.split(":", 1)
            out.append((n.strip().lower(), v.strip()))
    return out


class ProxyCase(ServerTestCase):
    AUTO_START = False
    SERVER_DEMO = False

    def proxy(self, *upstreams, args=(), prefix="/"):
        self.server = self.start_server(["--workers", "1", "--proxy",
                                         prefix + "=" + ",".join(upstreams)] + list(args))
        self.port = self.server.port
        return self.server

    def get(self, path, headers=(), method="GET", body=b"", c=None):
        own = c is None
        c = c or self.conn()
        c.send(request(method, path, list(headers), body))
        r = c.read_response(method=method)
        if own:
            c.close()
        return r


class Forwarding(ProxyCase):
    def test_get_post_and_status_pass_through(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        r = self.get("/echo/x?y=1&z=%41")
        self.assertResponse(r, 200, content_type="application/json")
        doc = json.loads(r.body)
        self.assertTrue(doc["head"].startswith("GET /echo/x?y=1&z=%41 HTTP/1.1\r\n"), doc)
        self.assertEqual(r.header("X-Upstream"), "a")
        self.assertEqual(r.header_all("Set-Cookie"), ["a=1", "b=2"])
        body = os.urandom(100000)  # > the receive buffer: a pooled body buffer
        r = self.get("/echo/up", [("Content-Type", "application/x-raw")], "POST", body)
        doc = json.loads(r.body)
        self.assertEqual((doc["body_len"], doc["body_sha"]),
                         (len(body), hashlib.sha256(body).hexdigest()))
        self.assertIn("Content-Length: 100000\r\n", doc["head"])
        r = self.get("/echo?status=404")
        self.assertResponse(r, 404)
        r = self.get("/echo?status=201", method="PUT", body=b"x")
        self.assertResponse(r, 201)

    def test_chunked_request_body_streams_chunked(self):
        # a body of unknown length is not waited for: it goes on chunked, as it comes
        up = Upstream(self, "a")
        self.proxy(up.url)
        c = self.conn()
        c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        doc = json.loads(c.read_response().body)
        self.assertEqual((doc["body_len"], doc["body_sha"]),
                         (11, hashlib.sha256(b"hello world").hexdigest()))
        self.assertIn("Transfer-Encoding: chunked\r\n", doc["head"])
        self.assertNotIn("content-length", doc["head"].lower())
        self.assertResponse(self.get("/echo", c=c), 200)  # both sides kept alive
        self.assertEqual(up.conns(), 1)

    def test_upstream_framings_reach_the_client_byte_exact(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        c = self.conn()
        r = self.get("/chunked", c=c)
        self.assertResponse(r, 200, b"hello world!")
        self.assertIsNone(r.header("Trailer"))
        r = self.get("/interim", c=c)        # 100 and 103 from the upstream are dropped
        self.assertResponse(r, 200, b"final")
        m0 = metrics(self.port)
        for n in (0, 1, 16383, 16384, 16385, 65535, 65536, 65537, 300000, 1 << 20):
            r = self.get("/big?n=%d" % n, c=c)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, pattern(n), n)
            r = self.get("/bigchunked?n=%d" % n, c=c)
            self.assertEqual(r.body, pattern(n), n)
        # bodies over 256 KiB went by splice (pipe entries count as sendfile calls, on
        # io_uring too), with not one byte copied by the library
        m = metrics(self.port)
        sf = 'zerohttp_syscalls_total{call="sendfile"}'
        self.assertGreater(m[sf], m0[sf])
        self.assertEqual(m["zerohttp_body_bytes_copied_total"],
                         m0["zerohttp_body_bytes_copied_total"])
        r = self.get("/head", method="HEAD", c=c)
        self.assertEqual((r.status, r.header("Content-Length"), r.body), (200, "1234", b""))
        r = self.get("/s204", c=c)
        self.assertEqual((r.status, r.body, r.header("X-A")), (204, b"", "1"))
        r = self.get("/s304", c=c)
        self.assertEqual((r.status, r.body), (304, b""))
        r = self.get("/eof", c=c)             # close-delimited upstream: chunked to us
        self.assertResponse(r, 200, b"until the end")
        r = self.get("/echo", c=c)            # and the client connection still works
        self.assertResponse(r, 200)

    def test_prefix_routes_only_their_paths(self):
        up = Upstream(self, "a")
        self.proxy(up.url, prefix="/api/")
        self.assertEqual(self.get("/api/echo").status, 404)  # upstream.py: /api/echo unknown
        self.assertEqual(len(up.requests()), 1)
        r = self.get("/index.html")           # the static root still serves the rest
        self.assertEqual(r.status, 200)
        self.assertEqual(len(up.requests()), 1)


class HeadRewriting(ProxyCase):
    def test_hop_by_hop_removed_and_forwarding_fields_added(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        r = self.get("/echo", [("Host", "front.example:8080"),
                               ("Connection", "keep-alive, X-Secret"), ("X-Secret", "s"),
                               ("Keep-Alive", "timeout=5"), ("TE", "trailers"),
                               ("Upgrade", "websocket"), ("Proxy-Authorization", "Basic x"),
                               ("Proxy-Connection", "keep-alive"), ("Trailer", "X-T"),
                               ("X-Forwarded-For", "203.0.113.7"),
                               ("Forwarded", "for=203.0.113.7"), ("Via", "1.0 edge"),
                               ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil"),
                               ("X-Keep", "yes")])
        doc = json.loads(r.body)
        f = head_fields(doc["head"])
        names = [n for n, _ in f]
        for hop in ("connection", "x-secret", "keep-alive", "te", "upgrade", "trailer",
                    "proxy-authorization", "proxy-connection", "transfer-encoding"):
            self.assertNotIn(hop, names, doc["head"])
        d = dict(f)
        self.assertEqual(d["host"], "front.example:8080")
        self.assertEqual(d["x-keep"], "yes")
        self.assertEqual(d["x-forwarded-for"], "203.0.113.7, 127.0.0.1")
        self.assertEqual(d["forwarded"],
                         'for=203.0.113.7, for=127.0.0.1;proto=http;host="front.example:8080"')
        self.assertEqual(d["x-forwarded-proto"], "http")
        self.assertEqual(d["x-forwarded-host"], "front.example:8080")
        self.assertEqual(d["via"], "1.0 edge, 1.1 zerohttp")
        for n in ("x-forwarded-for", "forwarded", "via", "x-forwarded-proto", "host"):
            self.assertEqual(names.count(n), 1, doc["head"])

    def test_response_hop_by_hop_removed(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        r = self.get("/hop")
        self.assertResponse(r, 200, b"ok")
        names = [n.lower() for n in r.header_names()]
        for hop in ("x-up-secret", "keep-alive", "proxy-agent", "upgrade"):
            self.assertNotIn(hop, names)
        self.assertEqual(r.header("X-End"), "1")
        self.assertNotIn("close", (r.header("Connection") or "").lower())


    def test_config_file_key(self):
        up = Upstream(self, "a")
        conf = os.path.join(tempfile.gettempdir(), "zh-proxy-%s.conf" % uuid.uuid4().hex)
        self.addCleanup(lambda: os.path.exists(conf) and os.unlink(conf))
        with open(conf, "w") as f:
            f.write("workers 1\nproxy /api/=%s\nproxy-balance least-outstanding\n" % up.url)
        self.server = self.start_server(["-c", conf])
        self.port = self.server.port
        r = self.get("/api/")
        self.assertEqual(r.status, 404)       # upstream.py's answer, not the static root's
        self.assertEqual(len(up.requests()), 1)
        self.assertEqual(up.requests()[0]["head"].split("\r\n")[0], "GET /api/ HTTP/1.1")


    def test_io_uring_serves_the_proxy(self):
        # the upstream sockets live on the worker's epoll set, which the io_uring loop polls
        # (make test-uring runs this whole file on io_uring; this one runs there anyway)
        up = Upstream(self, "a")
        self.server = self.start_server(["--workers", "1", "--io", "uring", "--proxy",
                                         "/=" + up.url])
        self.port = self.server.port
        if " io=uring" not in self.server.stderr_text():
            self.skipTest("io_uring is unusable here: zerohttpd fell back to epoll")
        for _ in range(3):
            r = self.get("/echo", method="POST", body=b"x" * 100000)
            self.assertResponse(r, 200)
            self.assertEqual(json.loads(r.body)["body_len"], 100000)
        r = self.get("/big?n=%d" % (3 << 20))
        self.assertEqual(r.body, pattern(3 << 20))
        self.assertEqual(up.conns(), 1, "one pooled upstream connection on io_uring too")


class Smuggling(ProxyCase):
    def test_ambiguous_upstream_responses_are_502_never_a_desync(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        c = self.conn()
        for kind in ("cl-te", "dup-cl", "cl-list", "bare-lf", "fold", "space-colon",
                     "te-gzip", "te-twice", "te-10", "status", "nul", "switch"):
            with self.subTest(kind=kind):
                r = self.get("/bad/" + kind, c=c)
                self.assertEqual(r.status, 502, (kind, r))
                r = self.get("/echo", c=c)    # the same client connection goes on
                self.assertResponse(r, 200)
        c.send(request("GET", "/bad/bad-chunk"))  # malformed chunks after a good head:
        head = c.read_head()[4]               # the head leaves, then the body is cut
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertNotIn(b"0\r\n\r\n", c.read_until_close())
        m = metrics(self.port)
        self.assertGreaterEqual(m['zerohttp_upstream_bad_responses_total{proxy="/",upstream="%s"}'
                                  % up.url], 12)

    def test_extra_bytes_after_a_response_never_reach_the_next_request(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        c = self.conn()
        r = self.get("/bad/extra", c=c)
        self.assertResponse(r, 200, b"hello")
        r = self.get("/echo", c=c)
        self.assertResponse(r, 200)
        self.assertIsNone(r.header("X-Injected"))
        self.assertEqual(json.loads(r.body)["upstream"], "a")
        self.assertEqual(up.conns(), 2)       # the tainted connection was not reused
        self.assertTrue(c.no_data_for(0.2))

    def test_client_smuggling_attempts_reach_the_upstream_as_one_request(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        inner = b"GET /echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        c = self.conn()
        c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner))
        doc = json.loads(c.read_response().body)
        self.assertEqual(doc["body_len"], len(inner))
        c2 = self.conn()                      # CL + TE: refused by the server's parser
        c2.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        self.assertEqual(c2.read_response().status, 400)
        time.sleep(0.1)
        heads = [e["head"] for e in up.requests()]
        self.assertEqual(len(heads), 1, heads)
        self.assertNotIn("smuggled", heads[0].split("\r\n")[0])


class Pools(ProxyCase):
    def test_keep_alive_reuse(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        c = self.conn()
        for i in range(50):
            self.assertResponse(self.get("/echo?i=%d" % i, c=c), 200)
        for i in range(20):                   # new client connections, same pool
            self.assertResponse(self.get("/echo?j=%d" % i), 200)
        self.assertEqual(up.conns(), 1)
        m = metrics(self.port)
        key = '{proxy="/",upstream="%s"}' % up.url
        self.assertEqual(m["zerohttp_upstream_connections_opened_total" + key], 1)
        self.assertEqual(m["zerohttp_upstream_requests_total" + key], 70)
        self.assertEqual(m["zerohttp_upstream_pool_idle" + key], 1)
        self.assertEqual(m["zerohttp_upstream_in_flight" + key], 0)

    def test_connection_close_and_upstream_close_are_not_reused(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        c = self.conn()
        self.assertResponse(self.get("/close", c=c), 200, b"bye")
        self.assertResponse(self.get("/echo", c=c), 200)
        self.assertEqual(up.conns(), 2)
        key = '{proxy="/",upstream="%s"}' % up.url
        self.assertEqual(metrics(self.port)["zerohttp_upstream_pool_idle" + key], 1)
        up.stop()                             # the idle pooled connection closes with it
        deadline = time.monotonic() + 3
        while metrics(self.port)["zerohttp_upstream_pool_open" + key] != 0:
            self.assertLess(time.monotonic(), deadline, "the dead connection stayed pooled")
            time.sleep(0.05)
        r = self.get("/echo", c=c)            # refused: the only upstream is down
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("Retry-After"), "5")


    def test_idle_connections_expire_for_every_proxy(self):
        # five proxies and the access log: more periodic hooks than a worker has, were each
        # proxy to take its own; one hook expires them all
        up = Upstream(self, "a")
        args = ["--workers", "1", "--access-log", os.devnull,
                "--proxy-keepalive-timeout", "300"]
        for k in range(5):
            args += ["--proxy", "/p%d/=%s" % (k, up.url)]
        self.server = self.start_server(args)
        self.port = self.server.port
        for k in range(5):
            self.assertEqual(self.get("/p%d/echo" % k).status, 404)  # upstream.py's 404
        m = metrics(self.port)
        keys = ['zerohttp_upstream_pool_idle{proxy="/p%d/",upstream="%s"}' % (k, up.url)
                for k in range(5)]
        self.assertEqual([m[k] for k in keys], [1] * 5)
        deadline = time.monotonic() + 5
        while any(m[k] for k in keys):
            self.assertLess(time.monotonic(), deadline, {k: m[k] for k in keys})
            time.sleep(0.1)
            m = metrics(self.port)
        self.assertEqual(up.conns(), 5)


class Balancing(ProxyCase):
    def test_round_robin(self):
        a, b = Upstream(self, "a"), Upstream(self, "b")
        self.proxy(a.url, b.url)
        c = self.conn()
        seen = [json.loads(self.get("/echo", c=c).body)["upstream"] for _ in range(10)]
        self.assertEqual(seen.count("a"), 5, seen)
        self.assertTrue(all(seen[i] != seen[i + 1] for i in range(9)), seen)

    def least_outstanding(self, policy):
        a, b = Upstream(self, "a"), Upstream(self, "b")
        self.proxy(a.url, b.url, args=["--proxy-balance", policy])
        slow = self.conn()
        slow.send(request("GET", "/slow?ms=1500"))
        time.sleep(0.3)                       # it is in flight at one upstream
        busy = [u for u in (a, b) if u.requests()]
        self.assertEqual(len(busy), 1)
        c = self.conn()
        seen = [json.loads(self.get("/echo", c=c).body)["upstream"] for _ in range(4)]
        self.assertEqual(json.loads(slow.read_response().body)["upstream"], busy[0].name)
        return busy[0].name, seen

    def test_least_outstanding_avoids_the_busy_upstream(self):
        busy, seen = self.least_outstanding("least-outstanding")
        self.assertNotIn(busy, seen)

    def test_round_robin_does_not(self):
        busy, seen = self.least_outstanding("round-robin")
        self.assertIn(busy, seen)


class Failover(ProxyCase):
    def test_idempotent_requests_retry_on_another_upstream(self):
        a = Upstream(self, "a")
        self.proxy(dead_url(), a.url)
        c = self.conn()
        for i in range(6):
            r = self.get("/echo?i=%d" % i, c=c)
            self.assertResponse(r, 200)
        m = metrics(self.port)
        dead = [k for k in m if k.startswith("zerohttp_upstream_connect_failures_total")
                and m[k] > 0]
        self.assertEqual(len(dead), 1, m)
        # passive check: after its first failure the dead one is skipped, not retried
        self.assertEqual(m[dead[0]], 1)

    def test_post_is_not_retried(self):
        a = Upstream(self, "a")
        self.proxy(dead_url(), a.url)         # round robin starts at the dead one
        r = self.get("/echo", method="POST", body=b"once")
        self.assertEqual(r.status, 502)
        self.assertEqual(a.requests(), [])
        r = self.get("/echo", method="POST", body=b"once")   # the dead one is skipped now
        self.assertResponse(r, 200)

    def test_all_down_is_503_with_retry_after(self):
        self.proxy(dead_url(), dead_url())
        r = self.get("/echo")
        self.assertEqual(r.status, 503)
        self.assertGreaterEqual(int(r.header("Retry-After")), 1)
        r = self.get("/echo")                 # skipped without trying: still 503
        self.assertEqual(r.status, 503)
        m = metrics(self.port)
        self.assertEqual(m["zerohttp_proxy_unavailable_total"], 2)


    def test_an_ejected_upstream_returns_after_the_fail_timeout(self):
        port = free_port()
        a = Upstream(self, "a")
        self.proxy("http://127.0.0.1:%d" % port, a.url, args=["--proxy-fail-timeout", "500"])
        c = self.conn()
        for _ in range(4):                    # the refused one is tried once, then skipped
            self.assertEqual(json.loads(self.get("/echo", c=c).body)["upstream"], "a")
        key = '{proxy="/",upstream="http://127.0.0.1:%d"}' % port
        self.assertEqual(metrics(self.port)["zerohttp_upstream_up" + key], 0)
        b = Upstream(self, "b", port=port)    # it comes back on the same port
        time.sleep(0.6)
        seen = {json.loads(self.get("/echo", c=c).body)["upstream"] for _ in range(4)}
        self.assertEqual(seen, {"a", "b"})
        m = metrics(self.port)
        self.assertEqual(m["zerohttp_upstream_up" + key], 1)
        self.assertEqual(m["zerohttp_upstream_connect_failures_total" + key], 1)
        self.assertEqual(len(b.requests()), 2)


    def test_active_health_checks_eject_and_return(self):
        a, b = Upstream(self, "a"), Upstream(self, "b")
        self.proxy(a.url, b.url, args=["--proxy-health-check", "/health",
                                       "--proxy-health-interval", "100"])
        key = '{proxy="/",upstream="%s"}' % a.url
        self.assertResponse(self.get("/echo"), 200)   # the worker's first request: probes start

        def up_a():
            return metrics(self.port)["zerohttp_upstream_up" + key]

        def wait_for(v):
            deadline = time.monotonic() + 5
            while up_a() != v:
                self.assertLess(time.monotonic(), deadline, "up stayed %r" % up_a())
                time.sleep(0.05)

        open(a.down, "w").close()             # a says 503 on /health: out, with no
        wait_for(0)                           # client request failing on the way
        c = self.conn()
        before = len([e for e in a.requests() if not e["head"].startswith("GET /health")])
        seen = [json.loads(self.get("/echo", c=c).body)["upstream"] for _ in range(6)]
        self.assertEqual(seen, ["b"] * 6)
        self.assertEqual(len([e for e in a.requests()
                              if not e["head"].startswith("GET /health")]), before)
        os.unlink(a.down)                     # healthy again: back in the rotation
        wait_for(1)
        seen = {json.loads(self.get("/echo", c=c).body)["upstream"] for _ in range(4)}
        self.assertEqual(seen, {"a", "b"})
        probes = [e["head"] for e in a.requests() if e["head"].startswith("GET /health ")]
        self.assertGreaterEqual(len(probes), 4)
        self.assertIn("Connection: close\r\n", probes[0])


class Limits(ProxyCase):
    def test_max_conns_full_pool_is_503(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--proxy-max-conns", "1"])
        slow = self.conn()
        slow.send(request("GET", "/slow?ms=800"))
        time.sleep(0.3)
        r = self.get("/echo")                 # the one connection is busy
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("Retry-After"), "1")
        self.assertResponse(slow.read_response(), 200)
        self.assertResponse(self.get("/echo"), 200)  # free again, and reused
        self.assertEqual(up.conns(), 1)


class Timeouts(ProxyCase):
    def test_header_timeout_is_504(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--proxy-header-timeout", "300"])
        t0 = time.monotonic()
        r = self.get("/stall-head")
        self.assertEqual(r.status, 504)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertResponse(self.get("/echo"), 200)

    def test_connect_timeout(self):
        # a listener whose accept queue is full and never drained: SYNs to it are dropped,
        # so a connect neither succeeds nor fails
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(ls.close)
        ls.bind((HOST, 0))
        ls.listen(0)
        fillers = []
        for _ in range(4):
            f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            f.setblocking(False)
            f.connect_ex(ls.getsockname())
            fillers.append(f)
            self.addCleanup(f.close)
        time.sleep(0.2)
        stalled = "http://127.0.0.1:%d" % ls.getsockname()[1]
        a = Upstream(self, "a")
        self.proxy(stalled, a.url, args=["--proxy-connect-timeout", "300"])
        t0 = time.monotonic()
        r = self.get("/echo", method="POST", body=b"x")   # round robin: the stalled one first
        self.assertEqual(r.status, 504)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(a.requests(), [])
        m = metrics(self.port)
        self.assertEqual(m['zerohttp_upstream_timeouts_total{proxy="/",upstream="%s"}' % stalled], 1)
        self.assertEqual(m['zerohttp_upstream_up{proxy="/",upstream="%s"}' % stalled], 0)
        r = self.get("/echo")                 # skipped while it is down
        self.assertResponse(r, 200)

    def test_idle_body_timeout_cuts_the_body(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--proxy-idle-timeout", "300"])
        c = self.conn()
        c.send(request("GET", "/stall-body"))
        head = c.read_head()[4]
        self.assertIn(b"200", head.split(b"\r\n")[0])
        t0 = time.monotonic()
        self.assertEqual(c.read_until_close(), b"0123456789")  # cut, never padded
        self.assertLess(time.monotonic() - t0, 3)
        m = metrics(self.port)
        self.assertEqual(m['zerohttp_upstream_timeouts_total{proxy="/",upstream="%s"}' % up.url], 1)

    def test_upstream_dying_mid_body_cuts_the_body(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        c = self.conn()
        c.send(request("GET", "/die-mid"))
        head = c.read_head()[4]
        self.assertIn(b"Content-Length: 1000", head)
        self.assertEqual(c.read_until_close(), pattern(1000)[:100])
        self.assertResponse(self.get("/echo"), 200)
        c = self.conn()                       # a large body (spliced) cut the same way
        c.send(request("GET", "/die-mid?n=%d" % (40 << 20)))
        head = c.read_head()[4]
        self.assertIn(b"Content-Length: %d" % (40 << 20), head)
        self.assertEqual(c.read_until_close(), pattern(40 << 20)[:4 << 20])
        self.assertResponse(self.get("/echo"), 200)

    def test_descriptors_back_to_baseline_after_faults(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--proxy-idle-timeout", "300"])
        fds = lambda: len(os.listdir("/proc/%d/fd" % self.server.pid))
        self.assertResponse(self.get("/echo"), 200)
        self.assertResponse(self.get("/big?n=%d" % (2 << 20)), 200)  # opens its pipe
        key = '{proxy="/",upstream="%s"}' % up.url
        base = fds()
        for path in ("/bad/cl-te", "/die-mid", "/die-mid?n=%d" % (8 << 20), "/stall-body",
                     "/bad/extra", "/close", "/eof", "/big?n=%d" % (64 << 20)):
            c = self.conn(rcvbuf=65536)
            c.send(request("GET", path))
            if path.startswith("/big"):       # the client leaves in the middle
                c.read_head()
                c.sock.recv(65536)
                c.close()
            elif path.startswith("/die-mid") or path == "/stall-body":
                c.read_until_close()          # a cut body
            else:
                c.read_response()
            c.close()
        deadline = time.monotonic() + 5
        while True:
            m = metrics(self.port)
            if m["zerohttp_upstream_in_flight" + key] == 0 and fds() <= base:
                break
            self.assertLess(time.monotonic(), deadline,
                            "fds %d (baseline %d), %r" % (fds(), base,
                                                         {k: v for k, v in m.items() if key in k}))
            time.sleep(0.1)
        self.assertLessEqual(m["zerohttp_upstream_pool_open" + key], 1)
        self.assertResponse(self.get("/echo"), 200)


class RequestBodies(ProxyCase):
    """Request bodies stream to the upstream as they arrive (ZH_ROUTE_STREAM_BODY): the bytes
    that came with the head go with it, a large Content-Length rest by splice."""

    def post(self, c, path, body, headers=()):
        c.send(request("POST", path, list(headers), body))
        return c.read_response(method="POST")

    def test_bodies_up_to_100_mib_byte_exact_never_copied(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(128 << 20)])
        c = self.conn()
        m0 = metrics(self.port)
        rss0 = rss_kib(self.server.pid)
        for n in (0, 1, 4096, 16384, 65535, 70000, 300000, 1 << 20, 100 << 20):
            body = pattern(n)
            r = self.post(c, "/echo", body)
            self.assertResponse(r, 200)
            doc = json.loads(r.body)
            self.assertEqual((doc["body_len"], doc["body_sha"]),
                             (n, hashlib.sha256(body).hexdigest()), n)
            self.assertIn("Content-Length: %d\r\n" % n, doc["head"])
        m = metrics(self.port)
        grew = rss_kib(self.server.pid) - rss0
        self.assertLess(grew, 16 << 10, "100 MiB went through; RSS grew %d KiB" % grew)
        self.assertEqual(up.conns(), 1, "one pooled upstream connection for all of them")
        if IO != "uring":  # the ring's receives land in its buffers: zh_body_read copies
            self.assertEqual(m["zerohttp_body_bytes_copied_total"],
                             m0["zerohttp_body_bytes_copied_total"])

    def test_large_chunked_body_reaches_the_upstream_byte_exact(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(8 << 20)])
        body = os.urandom(3 << 20)
        framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7000]), body[i:i + 7000])
                          for i in range(0, len(body), 7000)) + b"0\r\n\r\n"
        c = self.conn()
        c.send(b"PUT /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + framed)
        r = c.read_response()
        doc = json.loads(r.body)
        self.assertEqual((doc["body_len"], doc["body_sha"]),
                         (len(body), hashlib.sha256(body).hexdigest()))
        self.assertResponse(self.get("/echo", c=c), 200)

    def test_max_body_is_413_before_or_while_streaming(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", "100000"])
        c = self.conn()
        c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 100001\r\n\r\n")
        self.assertResponse(c.read_response(method="POST"), 413)
        self.assertEqual(up.conns(), 0, "refused before the upstream was asked")
        c = self.conn()
        c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"".join(b"2710\r\n" + b"x" * 10000 + b"\r\n" for _ in range(11)))
        self.assertResponse(c.read_response(method="POST"), 413)
        self.assertTrue(c.closed_by_peer(), "the rest of the body cannot be skipped")
        self.assertResponse(self.get("/echo", method="POST", body=b"x" * 100000), 200)

    def test_expect_100_continue_streams_after_the_100(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(4 << 20)])
        body = pattern(1 << 20)
        c = self.conn()
        c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        self.assertEqual(c.read_head()[1], 100)
        c.send(body)
        doc = json.loads(c.read_response(method="POST").body)
        self.assertEqual(doc["body_sha"], hashlib.sha256(body).hexdigest())
        self.assertNotIn("expect", doc["head"].lower())

    def test_early_answer_stops_the_upload(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(64 << 20)])
        fds = lambda: len(os.listdir("/proc/%d/fd" % self.server.pid))
        self.assertResponse(self.get("/echo"), 200)
        base = fds()
        for n in (200000, 32 << 20):  # through the buffer, then by splice
            c = self.conn()
            c.send(b"POST /early HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % n
                   + b"x" * 100000)
            r = c.read_response(method="POST")
            self.assertResponse(r, 413, b"early")
            self.assertTrue(c.closed_by_peer(), "the unread rest of the body: closed")
            c.close()
        self.wait_fds(fds, base)

    def test_client_leaving_mid_upload_frees_everything(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(64 << 20)])
        fds = lambda: len(os.listdir("/proc/%d/fd" % self.server.pid))
        self.assertResponse(self.get("/echo", method="POST", body=pattern(1 << 20)), 200)
        base = fds()
        for n in (200000, 32 << 20):
            c = self.conn()
            c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % n
                   + pattern(150000))
            time.sleep(0.1)
            c.close()
        self.wait_fds(fds, base)
        key = '{proxy="/",upstream="%s"}' % up.url
        self.assertEqual(metrics(self.port)["zerohttp_upstream_in_flight" + key], 0)
        self.assertResponse(self.get("/echo", method="POST", body=pattern(1 << 20)), 200)

    def test_slow_upstream_reader_bounds_what_the_proxy_holds(self):
        # the upstream takes its time (/slow sleeps before reading the body): the client's
        # bytes wait in the kernel, not in the proxy
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(64 << 20)])
        rss0 = rss_kib(self.server.pid)
        body = pattern(48 << 20)
        c = self.conn()
        c.send(request("POST", "/slow?ms=300", [], body))
        doc = json.loads(c.read_response(method="POST").body)
        self.assertEqual(doc["body_sha"], hashlib.sha256(body).hexdigest())
        self.assertLess(rss_kib(self.server.pid) - rss0, 16 << 10)

    def test_upstream_answering_2xx_first_still_gets_the_whole_body(self):
        # its head comes before it reads the body: the body goes on, the answer after it
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(8 << 20)])
        c = self.conn()
        for n in (40000, 3 << 20):  # through the buffer, then by splice
            doc = json.loads(self.post(c, "/first200", pattern(n)).body)
            self.assertEqual((doc["body_len"], doc["body_sha"]),
                             (n, hashlib.sha256(pattern(n)).hexdigest()), n)
        body = pattern(300000)  # in pieces: the head arrives while the proxy waits
        c.send(b"POST /first200 HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 60000):
            c.send(body[i:i + 60000])
            time.sleep(0.03)
        doc = json.loads(c.read_response(method="POST").body)
        self.assertEqual(doc["body_sha"], hashlib.sha256(body).hexdigest())
        self.assertEqual(up.conns(), 1, "a body sent whole leaves the connection reusable")

    def test_interim_head_in_pieces_does_not_stop_the_body(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(8 << 20)])
        body = pattern(1 << 20)
        c = self.conn()
        c.send(b"POST /split100 HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
               + body[:10000])
        time.sleep(0.2)  # the 100's two halves reach the proxy while the body is going
        c.send(body[10000:])
        r = c.read_response(method="POST")
        self.assertResponse(r, 200)
        self.assertEqual(json.loads(r.body)["body_sha"], hashlib.sha256(body).hexdigest())

    def test_put_with_a_body_retried_on_another_upstream(self):
        up = Upstream(self, "a")
        self.proxy(dead_url(), up.url, args=["--max-body", str(8 << 20)])
        for n in (100, 300000):
            body = pattern(n)
            r = self.get("/echo", method="PUT", body=body)
            self.assertResponse(r, 200)
            self.assertEqual(json.loads(r.body)["body_sha"], hashlib.sha256(body).hexdigest())

    def test_pipelined_after_streamed_bodies(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(8 << 20)])
        big = pattern(200000)
        c = self.conn()
        c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\n\r\n" + request("POST", "/echo", [], big) +
               request("GET", "/echo?status=201"))
        self.assertEqual(json.loads(c.read_response(method="POST").body)["body_len"], 5)
        self.assertEqual(json.loads(c.read_response(method="POST").body)["body_sha"],
                         hashlib.sha256(big).hexdigest())
        self.assertResponse(c.read_response(), 201)

    @unittest.skipUnless(shutil.which("curl"), "no curl")
    def test_http2_client_bodies_with_and_without_a_length(self):
        # h2c: the body comes out of DATA frames (zh_body_read); without content-length it
        # goes upstream chunked
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(8 << 20)])
        body = os.urandom(3 << 20)
        with tempfile.NamedTemporaryFile() as f:
            f.write(body)
            f.flush()
            for extra in ([], ["-H", "Content-Length:"]):
                out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--data-binary",
                                      "@" + f.name] + extra +
                                     ["http://127.0.0.1:%d/echo" % self.port],
                                     capture_output=True, timeout=60, check=True).stdout
                doc = json.loads(out)
                self.assertEqual((doc["body_len"], doc["body_sha"]),
                                 (len(body), hashlib.sha256(body).hexdigest()))
                self.assertEqual("Transfer-Encoding: chunked" in doc["head"], extra != [])

    def test_randomized_uploads(self):
        # framings, sizes, pacing, Expect and upstream behaviours mixed at random on reused
        # connections: every answer right, nothing left behind (seed in the failure message)
        import random
        import threading
        seed = int(os.environ.get("ZH_SEED", time.time_ns() % 100000))
        rnd = random.Random(seed)
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--max-body", str(8 << 20)])
        fds = lambda: len(os.listdir("/proc/%d/fd" % self.server.pid))
        # the pooled connection's pipe (made by the first spliced body, kept while pooled)
        self.assertResponse(self.get("/echo", method="POST", body=pattern(2 << 20)), 200)
        base = fds()
        c, deadline = None, time.monotonic() + 20
        for it in range(80):
            if time.monotonic() > deadline:
                break
            n = rnd.choice([0, 1, 100, 16383, 16385, 70000, 300000, 2 << 20])
            path = rnd.choice(["/echo", "/echo", "/first200", "/split100", "/early"])
            chunked, expect = rnd.random() < 0.4, rnd.random() < 0.2
            body = os.urandom(n)
            if chunked:
                parts, i = [], 0
                while i < n:
                    k = rnd.randint(1, 70000)
                    parts.append(b"%x\r\n%s\r\n" % (len(body[i:i + k]), body[i:i + k]))
                    i += k
                wire = b"".join(parts) + b"0\r\n\r\n"
                head = b"POST %s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n" % path.encode()
            else:
                wire = body
                head = b"POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n" % (path.encode(), n)
            head += b"Expect: 100-continue\r\n\r\n" if expect else b"\r\n"
            c = c or self.conn()
            paced = rnd.random() < 0.3
            what = "seed %d iteration %d: %s n=%d chunked=%s expect=%s paced=%s" % (
                seed, it, path, n, chunked, expect, paced)

            def send(c=c, wire=wire, head=head, paced=paced):
                try:
                    c.sock.sendall(head)
                    if expect:
                        time.sleep(0.01)  # a client that does not wait long for the 100
                    step = 50000 if paced else len(wire) or 1
                    for i in range(0, len(wire), step):
                        c.sock.sendall(wire[i:i + step])
                        if paced:
                            time.sleep(0.002)
                except OSError:
                    pass  # an early answer closed the connection
            t = threading.Thread(target=send)
            t.start()
            r = c.read_response(method="POST")
            t.join(30)
            if path == "/early":
                self.assertEqual(r.status, 413, what)
                c.close()
                c = None
                continue
            self.assertEqual(r.status, 200, what)
            doc = json.loads(r.body)
            self.assertEqual((doc["body_len"], doc["body_sha"]),
                             (n, hashlib.sha256(body).hexdigest()), what)
        if c:
            c.close()
        self.wait_fds(fds, base)
        key = '{proxy="/",upstream="%s"}' % up.url
        self.assertEqual(metrics(self.port)["zerohttp_upstream_in_flight" + key], 0)

    def wait_fds(self, fds, base):
        deadline = time.monotonic() + 5
        while fds() > base:
            self.assertLess(time.monotonic(), deadline, "fds %d, baseline %d" % (fds(), base))
            time.sleep(0.1)


class Backpressure(ProxyCase):
    def test_slow_client_large_body_keeps_rss_bounded(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        n = 256 << 20
        base = rss_kib(self.server.pid)
        c = self.conn(rcvbuf=65536, timeout=30)
        c.send(request("GET", "/big?n=%d" % n))
        got, h, peak = 0, hashlib.sha256(), 0
        head = c.read_head()[4]
        self.assertIn(b"Content-Length: %d" % n, head)
        got += len(c.buf)
        h.update(bytes(c.buf))
        # 2 s of a slow reader: the proxy must not read ahead of it
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2:
            d = c.sock.recv(16384)
            h.update(d)
            got += len(d)
            time.sleep(0.01)
            peak = max(peak, rss_kib(self.server.pid))
        self.assertLess(got, n // 4)
        self.assertLess(peak - base, 16 * 1024, "RSS grew %d KiB" % (peak - base))
        while got < n:                        # then all of it, byte-exact
            d = c.sock.recv(1 << 20)
            self.assertTrue(d, "closed after %d bytes" % got)
            h.update(d)
            got += len(d)
        self.assertEqual(h.hexdigest(), hashlib.sha256(pattern(n)).hexdigest())


def ws_frame(opcode, payload):
    """A client frame (masked, RFC 6455 §5.3)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read(c):
    """(opcode, payload) of a server frame (unmasked)."""
    b0, b1 = c.read_exact(2)
    n = b1 & 0x7f
    if n == 126:
        n = int.from_bytes(c.read_exact(2), "big")
    elif n == 127:
        n = int.from_bytes(c.read_exact(8), "big")
    return b0 & 0x0f, c.read_exact(n)


def head_only(c):
    """The next response head, as a Response without a body (a 101's bytes after it are
    the new protocol's)."""
    version, status, reason, headers, raw = c.read_head()
    return Response(version, status, reason, headers, b"", raw)


WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="   # RFC 6455 §1.3's example
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def ws_request(path="/ws"):
    return ("GET %s HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Upgrade\r\n"
            "Upgrade: websocket\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
            "\r\n" % (path, WS_KEY)).encode()


class Tunnels(ProxyCase):
    """Upgrade tunnels (WebSocket) through the proxy: zh_resp_upgrade on the client side,
    splice both ways (upstream_tunnel.c)."""

    def key(self, up):
        return '{proxy="/",upstream="%s"}' % up.url

    def wait_metric(self, name, want):
        deadline = time.monotonic() + 5
        while True:
            m = metrics(self.port)
            if m.get(name) == want:
                return m
            self.assertLess(time.monotonic(), deadline, "%s: %r, want %r" % (name, m.get(name), want))
            time.sleep(0.05)

    def test_websocket_echo_byte_exact_both_ways(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        fds = lambda: len(os.listdir("/proc/%d/fd" % self.server.pid))
        self.assertResponse(self.get("/echo"), 200)
        base = fds()
        c = self.conn(timeout=10)
        # the first message rides behind the request: the client's early bytes
        c.send(ws_request("/ws?greet=1") + ws_frame(1, b"early"))
        r = head_only(c)
        self.assertEqual(r.status, 101)
        self.assertEqual(r.header("sec-websocket-accept"), WS_ACCEPT)
        self.assertEqual(r.header("upgrade"), "websocket")
        self.assertEqual(r.header("connection").lower(), "upgrade")
        self.assertIsNone(r.header("content-length"))
        self.assertEqual(ws_read(c), (1, b"hi"))      # sent with the 101: upstream's early bytes
        self.assertEqual(ws_read(c), (1, b"early"))
        for n in (0, 125, 126, 65535, 65536, 1 << 20, 5 << 20):
            data = pattern(n)
            c.send(ws_frame(2, data))
            op, got = ws_read(c)
            self.assertEqual((op, len(got), hashlib.sha256(got).hexdigest()),
                             (2, n, hashlib.sha256(data).hexdigest()))
        m = metrics(self.port)
        self.assertEqual(m["zerohttp_upstream_tunnels_total" + self.key(up)], 1)
        self.assertEqual(m["zerohttp_upstream_tunnels_open" + self.key(up)], 1)
        self.assertEqual(m["zerohttp_connections_upgraded_total"], 1)
        c.send(ws_frame(8, b"\x03\xe8"))
        self.assertEqual(ws_read(c), (8, b"\x03\xe8"))
        c.read_until_close()
        c.close()
        self.wait_metric("zerohttp_upstream_tunnels_open" + self.key(up), 0)
        deadline = time.monotonic() + 5
        while fds() > base:
            self.assertLess(time.monotonic(), deadline, "fds %d, baseline %d" % (fds(), base))
            time.sleep(0.05)
        # tunnel bytes pass by splice: only the two early messages were copied
        self.assertLess(metrics(self.port)["zerohttp_body_bytes_copied_total"], 64)
        self.assertResponse(self.get("/echo"), 200)

    def test_half_close_is_passed_on(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--proxy-upgrades", "websocket,x-raw"])
        c = self.conn(timeout=10)
        c.send(b"GET /rawecho HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\n"
               b"Upgrade: x-raw\r\n\r\n")
        r = head_only(c)
        self.assertEqual((r.status, r.header("upgrade")), (101, "x-raw"))
        data = pattern(3 << 20)
        c.send(data)
        c.sock.shutdown(socket.SHUT_WR)
        got = c.read_until_close()
        self.assertEqual(len(got), len(data) + 3)
        self.assertTrue(got == data + b"bye", "echo then bye after the half-close")
        self.wait_metric("zerohttp_upstream_tunnels_open" + self.key(up), 0)

    def test_early_bytes_from_both_sides(self):
        # the upstream's 60 KB behind its 101 fill the connection's buffer; the client's
        # 16 KB behind its request must still reach the upstream, after it
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--proxy-upgrades", "x-raw"])
        c = self.conn(timeout=10)
        early = os.urandom(16000)
        c.send(b"GET /rawecho?burst=60000 HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\n"
               b"Upgrade: x-raw\r\n\r\n" + early)
        self.assertEqual(head_only(c).status, 101)
        self.assertEqual(c.read_exact(60000), pattern(60000))
        self.assertEqual(c.read_exact(len(early)), early)
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(c.read_until_close(), b"bye")

    def test_upgrade_refused_or_unasked_never_tunnels(self):
        up = Upstream(self, "a")
        self.proxy(up.url)
        # the upstream refuses (no Sec-WebSocket-Key): its 426 is an ordinary response
        c = self.conn()
        c.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 426)
        c.send(request("GET", "/echo"))
        self.assertEqual(c.read_response().status, 200, "still HTTP after a refused upgrade")
        c.close()
        # a 101 the client did not ask for, or to a protocol it did not offer: 502
        self.assertResponse(self.get("/bad101"), 502)
        c = self.conn()
        c.send(b"GET /bad101?proto=h2c HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\n"
               b"Upgrade: websocket\r\n\r\n")
        self.assertEqual(c.read_response().status, 502)
        c.close()
        # the client's Upgrade is hop-by-hop: without Connection: upgrade it is not passed on,
        # nor to a protocol outside --proxy-upgrades (websocket), and never to h2c
        for extra in ([("Upgrade", "websocket")],
                      [("Connection", "upgrade"), ("Upgrade", "x-raw")],
                      [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                       ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")],
                      [("Connection", "upgrade"), ("Upgrade", "websocket, h2c")]):
            body = json.loads(self.get("/echo", extra).body)
            names = [n for n, _ in head_fields(body["head"])]
            self.assertNotIn("upgrade", names, extra)
            self.assertNotIn("http2-settings", names, extra)
        # the upstream switches anyway: a 101 the proxy did not ask for is a 502
        c = self.conn()
        c.send(b"GET /rawecho HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: x-raw\r\n\r\n")
        r = c.read_response()
        self.assertEqual((r.status, r.header("sec-websocket-accept")), (502, None))
        c.close()
        m = metrics(self.port)
        self.assertEqual(m["zerohttp_upstream_tunnels_total" + self.key(up)], 0)

    def test_idle_tunnel_closes(self):
        up = Upstream(self, "a")
        self.proxy(up.url, args=["--proxy-tunnel-timeout", "300"])
        c = self.conn(timeout=10)
        c.send(ws_request())
        self.assertEqual(head_only(c).status, 101)
        c.send(ws_frame(1, b"x"))
        self.assertEqual(ws_read(c), (1, b"x"))
        t0 = time.monotonic()
        c.read_until_close()
        self.assertLess(time.monotonic() - t0, 3, "closed by the tunnel idle timeout")
        self.wait_metric("zerohttp_upstream_tunnels_open" + self.key(up), 0)


@unittest.skipUnless(SHIM, "ZH_SHIM not set (no malloc-counting shim)")
class ZeroAlloc(ProxyCase):
    def test_zero_allocations_over_100000_proxied_requests(self):
        upstream = self.start_server(["--workers", "1"], demo=True)
        count_file = os.path.join(tempfile.gettempdir(), "zh-malloc-%s" % uuid.uuid4().hex)
        self.addCleanup(lambda: os.path.exists(count_file) and os.unlink(count_file))
        self.server = self.start_server(
            ["--workers", "1", "--proxy", "/=http://127.0.0.1:%d" % upstream.port],
            {"LD_PRELOAD": os.path.abspath(SHIM), "ZH_MALLOC_COUNT_FILE": count_file})
        self.port = self.server.port
        conns = [self.conn(timeout=10) for _ in range(8)]
        bodies = [os.urandom(n) for n in (0, 10, 1000, 20000)]

        def drive(total):
            done = 0
            while done < total:
                for k, c in enumerate(conns):
                    batch = []
                    for j in range(25):
                        i = done + k * 25 + j
                        if i % 3 == 2:
                            b = bodies[i % 4]
                            batch.append((request("POST", "/echo", [], b), b))
                        else:
                            batch.append((request("GET", "/plaintext"), b"Hello, World!"))
                    c.send(b"".join(r for r, _ in batch))
                    for _, want in batch:
                        r = c.read_response()
                        if r.status != 200 or r.body != want:
                            self.fail("bad response %r" % r)
                done += 25 * len(conns)
            return done

        drive(2000)
        a = malloc_calls(self.server.pid, count_file)
        n = drive(100000)
        b = malloc_calls(self.server.pid, count_file)
        sys.stdout.write("      proxy zero-alloc: %d requests, malloc-family calls delta=%d\n"
                         % (n, b - a))
        self.assertEqual(b - a, 0)

    def test_zero_allocations_over_200_websocket_tunnels(self):
        up = Upstream(self, "a")
        count_file = os.path.join(tempfile.gettempdir(), "zh-malloc-%s" % uuid.uuid4().hex)
        self.addCleanup(lambda: os.path.exists(count_file) and os.unlink(count_file))
        self.server = self.start_server(
            ["--workers", "1", "--proxy", "/=" + up.url],
            {"LD_PRELOAD": os.path.abspath(SHIM), "ZH_MALLOC_COUNT_FILE": count_file})
        self.port = self.server.port
        msg = os.urandom(3000)

        def tunnels(n):
            for _ in range(n):
                c = self.conn(timeout=10)
                c.send(ws_request() + ws_frame(2, msg))
                self.assertEqual(head_only(c).status, 101)
                self.assertEqual(ws_read(c), (2, msg))
                c.send(ws_frame(2, msg[::-1]))
                self.assertEqual(ws_read(c), (2, msg[::-1]))
                c.close()

        tunnels(10)
        a = malloc_calls(self.server.pid, count_file)
        tunnels(200)
        b = malloc_calls(self.server.pid, count_file)
        sys.stdout.write("      tunnel zero-alloc: 200 tunnels, malloc-family calls delta=%d\n"
                         % (b - a))
        self.assertEqual(b - a, 0)


if __name__ == "__main__":
    unittest.main()
