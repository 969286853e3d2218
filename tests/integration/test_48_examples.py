"""45. The example services of examples/, from outside: rest_api (a JSON REST API with
/users/{id}), file_site (static files, a JSON API and the bundled middleware) and
async_service (deferred responses, a worker-timer deadline, application metrics).

`make examples-installed` builds them as their users would: `make install` into a scratch
prefix, then cc with pkg-config (ZH_EXAMPLES: the directory they are in; default
build/examples next to ZH_BIN). Each test starts a program with port 0, reads the port from
its first line ("NAME: listening on http://127.0.0.1:PORT"), talks to it with
http.client or raw sockets, and stops it by PID with SIGTERM (exit 0 required).
RestApiZeroAlloc runs rest_api under the malloc-count shim (ZH_SHIM): the example's
request path allocates nothing either.
"""
import gzip
import http.client
import json
import os
import re
import select
import signal
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

from harness import (HOST, READY_TIMEOUT, REPO, STOP_TIMEOUT, WRAP, Server, ServerError,
                     ServerTestCase, _die_with_parent, malloc_calls, request, server_bin)

SHIM = os.environ.get("ZH_SHIM", "")

TIMEOUT = 10.0


def examples_dir():
    path = os.environ.get("ZH_EXAMPLES")
    if not path:
        path = os.path.join(os.path.dirname(server_bin()), "examples")
    if not os.path.isabs(path):
        path = os.path.join(REPO, path)
    return path


class Example(Server):
    """examples/NAME run from examples_dir() with args; its port comes from its first
    stdout line. Stopped like zerohttpd (Server.stop: SIGTERM, exit 0)."""

    def __init__(self, name, args, env=None):
        super().__init__(args, env)
        self.name = name

    def start(self):
        path = os.path.join(examples_dir(), self.name)
        if not os.access(path, os.X_OK):
            raise ServerError("no %s at %s (build it: make examples-installed, or set "
                              "ZH_EXAMPLES)" % (self.name, path))
        env = dict(os.environ)
        env.update(self.env or {})
        self.stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(WRAP + [path] + self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.stderr_file,
                                     env=env, cwd=REPO, preexec_fn=_die_with_parent)
        line = b""
        deadline = time.monotonic() + READY_TIMEOUT
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self._kill()
                raise ServerError("%s printed no port within %.1fs: %s"
                                  % (self.name, READY_TIMEOUT, self.stderr_text()))
            b = os.read(self.proc.stdout.fileno(), 1)
            if not b:
                self._kill()
                raise ServerError("%s exited during startup with %r: %s"
                                  % (self.name, self.proc.wait(5), self.stderr_text()))
            line += b
        m = re.fullmatch(rb"%s: listening on http://127\.0\.0\.1:(\d+)\n"
                         % self.name.encode(), line)
        if not m:
            self._kill()
            raise ServerError("%s printed %r" % (self.name, line))
        self.port = int(m.group(1))
        return self


class ExampleTestCase(ServerTestCase):
    NAME = None
    AUTO_START = False

    def setUp(self):
        super().setUp()
        self.server = self.start_example(self.args())
        self.port = self.server.port

    def args(self):
        return ["0"]

    def start_example(self, args, env=None):
        srv = Example(self.NAME, args, env)
        self._servers.append(srv)     # stopped by tearDown, SIGKILLed by the cleanup
        return srv.start()

    def http(self, method, path, body=None, headers=None, port=None):
        """One request on a connection of its own: (status, headers, body)."""
        c = http.client.HTTPConnection(HOST, port or self.port, timeout=TIMEOUT)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()

    def json(self, method, path, status, body=None, headers=None):
        st, h, data = self.http(method, path, body, headers)
        self.assertEqual(st, status, data)
        if st == 204:
            self.assertEqual(data, b"")
            return None
        self.assertEqual(h["Content-Type"], "application/json", data)
        return json.loads(data)


# ---- rest_api ------------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}


class RestApi(ExampleTestCase):
    NAME = "rest_api"

    def create(self, name, email):
        body = json.dumps({"name": name, "email": email})
        st, h, data = self.http("POST", "/users", body, JSON)
        self.assertEqual(st, 201, data)
        user = json.loads(data)
        self.assertEqual(h["Location"], "/users/%d" % user["id"])
        return user

    def test_crud(self):
        ada = self.create("Ada Lovelace", "ada@example.com")
        self.assertEqual(ada, {"id": 1, "name": "Ada Lovelace", "email": "ada@example.com"})
        self.assertEqual(self.json("GET", "/users/1", 200), ada)
        self.assertEqual(self.json("GET", "/users/%31", 200), ada)  # {id} is decoded
        upd = self.json("PUT", "/users/1", 200, '{"email": "ada@lovelace.org", "name": "Ada"}',
                        JSON)
        self.assertEqual(upd, {"id": 1, "name": "Ada", "email": "ada@lovelace.org"})
        self.assertEqual(self.json("GET", "/users/1", 200), upd)
        self.assertIsNone(self.json("DELETE", "/users/1", 204))
        self.assertEqual(self.json("GET", "/users/1", 404),
                         {"error": "no such user", "status": 404})
        self.assertEqual(self.json("DELETE", "/users/1", 404)["status"], 404)
        self.assertEqual(self.json("PUT", "/users/1", 404, '{"name": "a", "email": "b"}',
                                   JSON)["status"], 404)

    def test_paging(self):
        for i in range(7):
            self.create("u%d" % i, "u%d@example.com" % i)
        page = self.json("GET", "/users?offset=2&limit=3", 200)
        self.assertEqual([u["id"] for u in page["users"]], [3, 4, 5])
        self.assertEqual((page["offset"], page["limit"], page["total"]), (2, 3, 7))
        page = self.json("GET", "/users", 200)      # defaults: offset 0, limit 10
        self.assertEqual([u["name"] for u in page["users"]], ["u%d" % i for i in range(7)])
        self.assertEqual(self.json("GET", "/users?offset=6&limit=50", 200)["users"][0]["id"], 7)
        self.assertEqual(self.json("GET", "/users?offset=9", 200)["users"], [])
        for q in ("limit=51", "offset=x", "limit=-1", "offset=%zz"):
            self.assertEqual(self.json("GET", "/users?" + q, 400)["status"], 400, q)

    def test_json_bodies(self):
        # escapes are undone on the way in and made again on the way out
        # (the JSON text holds the escapes: a raw string)
        name = r'Zo\u00eb \"Q\" \\ \ud83d\ude00'
        st, _, data = self.http("POST", "/users", '{"name": "%s", "email": "z@example.com"}'
                                % name, JSON)
        self.assertEqual(st, 201, data)
        want = 'Zo\u00eb "Q" \\ \U0001f600'
        self.assertEqual(json.loads(data)["name"], want)
        self.assertEqual(self.json("GET", "/users/1", 200)["name"], want)
        # members in any order, others ignored
        self.create("x", "y")
        st, _, data = self.http("PUT", "/users/2", '{"age": [1, {"a": null}], "email": "e",'
                                ' "name": "n"}', JSON)
        self.assertEqual((st, json.loads(data)), (200, {"id": 2, "name": "n", "email": "e"}))

    def test_bad_input(self):
        # JSON, but not a user: 422
        for body in ('{"name": "a"}', '{"email": "b@c"}', "{}", '{"name": "", "email": "x"}',
                     '{"name": "%s", "email": "x"}' % ("n" * 64), '{"name": 1, "email": "x"}',
                     '[{"name": "a", "email": "b"}]', '"name"', "null"):
            self.assertEqual(self.json("POST", "/users", 422, body, JSON)["status"], 422, body)
        # not JSON: 400 with the reader's reason and the offset of the first bad byte
        for body, offset in (('{"name": "a",}', 13), ("", 0), ('{"name": "a\x01"}', 11),
                             (b'{"name": "\xff", "email": "x"}', 10),
                             ('{"name": "a"} x', 14)):
            doc = self.json("POST", "/users", 400, body, JSON)
            self.assertEqual(doc["error"], "invalid JSON", body)
            self.assertEqual(doc["offset"], offset, (body, doc))
            self.assertIsInstance(doc["reason"], str)
        # more values than read_user's 32 tokens: 413
        doc = self.json("POST", "/users", 413, "[%s1]" % ("1," * 40), JSON)
        self.assertEqual(doc["error"], "invalid JSON")
        for path in ("/users/abc", "/users/-1", "/users/99999999999999999999"):
            self.assertEqual(self.json("GET", path, 400),
                             {"error": "id: a number", "status": 400}, path)

    def test_library_errors_are_json(self):
        # a method a pattern does not take: 405 with the router's Allow, in JSON
        st, h, data = self.http("PATCH", "/users/1")
        self.assertEqual(st, 405)
        self.assertEqual([m.strip() for m in h["Allow"].split(",")],
                         ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
        self.assertEqual(json.loads(data), {"error": "Method Not Allowed", "status": 405})
        st, h, data = self.http("DELETE", "/users")
        self.assertEqual((st, h["Allow"]), (405, "GET, HEAD, POST, OPTIONS"))
        self.assertEqual(self.json("GET", "/nope", 404), {"error": "Not Found", "status": 404})
        self.assertEqual(self.json("GET", "/users/1/x", 404)["status"], 404)
        # max_body is 4 KiB
        self.assertEqual(self.json("POST", "/users", 413, "x" * 5000, JSON),
                         {"error": "Content Too Large", "status": 413})
        # a request the parser refuses still gets JSON
        c = self.conn()
        c.send(b"GET /users HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 400)
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(json.loads(r.body), {"error": "Bad Request", "status": 400})

    def test_keepalive_and_head(self):
        self.create("k", "k@example.com")
        c = self.conn()
        c.send(request("GET", "/users/1") + request("HEAD", "/users/1") +
               request("GET", "/users?limit=1"))
        a = c.read_response()
        b = c.read_response("HEAD")
        p = c.read_response()
        self.assertEqual(json.loads(a.body)["name"], "k")
        self.assertEqual((b.status, b.body, b.header("Content-Length")),
                         (200, b"", str(len(a.body))))
        self.assertEqual(json.loads(p.body)["total"], 1)


class RestApiZeroAlloc(ExampleTestCase):
    """The example keeps the library's zero: 20,000 pipelined requests (a user by {id}, a
    page by query parameters, a PUT with a body, a 404 and a 405 answered in JSON by the
    error handler) make 0 malloc-family calls in rest_api (tests/malloc_count.c shim)."""
    NAME = "rest_api"
    CONNS, BATCH, WARMUP, MEASURED = 4, 50, 1000, 20000

    def setUp(self):
        if not SHIM:
            self.skipTest("no malloc-count shim (ZH_SHIM; not under ASan)")
        self.count_file = os.path.join(tempfile.gettempdir(), "zh-malloc-%d-%s"
                                       % (os.getpid(), uuid.uuid4().hex))
        self.addCleanup(lambda: os.path.exists(self.count_file) and os.unlink(self.count_file))
        super().setUp()

    def start_example(self, args, env=None):
        return super().start_example(args, {"LD_PRELOAD": os.path.abspath(SHIM),
                                            "ZH_MALLOC_COUNT_FILE": self.count_file})

    def test_zero_allocations(self):
        def user(i):
            return '{"name": "u%d", "email": "u%d@example.com"}' % (i, i)

        reqs = []
        for i in range(1, 11):
            reqs += [(request("PUT", "/users/%d" % i, list(JSON.items()), user(i).encode()), 200),
                     (request("GET", "/users/%d" % i), 200),
                     (request("GET", "/users?offset=%d&limit=5" % i), 200),
                     (request("GET", "/users/%d" % (100 + i)), 404),
                     (request("PATCH", "/users/%d" % i), 405)]
        for i in range(1, 11):
            self.assertEqual(self.json("POST", "/users", 201, user(i), JSON)["id"], i)
        conns = [self.conn(timeout=10) for _ in range(self.CONNS)]

        def drive(total):
            done = k = 0
            while done < total:
                pending = []
                for c in conns:
                    n = min(self.BATCH, total - done)
                    if n <= 0:
                        break
                    batch = [reqs[(k + j) % len(reqs)] for j in range(n)]
                    k += n
                    c.send(b"".join(r for r, _ in batch))
                    pending.append((c, batch))
                    done += n
                for c, batch in pending:
                    for _, want in batch:
                        r = c.read_response()
                        if r.status != want or r.header("Content-Type") != "application/json":
                            self.fail("got %r, want %d" % (r, want))
            return done

        drive(self.WARMUP)
        a = malloc_calls(self.server.pid, self.count_file)
        n = drive(self.MEASURED)
        b = malloc_calls(self.server.pid, self.count_file)
        self.assertEqual(n, self.MEASURED)
        self.assertEqual(b - a, 0, "%d malloc-family calls during %d requests" % (b - a, n))


# ---- file_site -----------------------------------------------------------------------------

TOKEN = "0123456789abcdef"
CSS = b"body { color: #333; margin: 0 auto; }\n" * 100


class FileSiteCase(ExampleTestCase):
    """file_site over a scratch root (index.html, style.css and its .gz, ten notes, a dot
    file) with a tokens file naming alice, its access log in the same scratch directory."""
    NAME = "file_site"
    RPS = "1000"

    def args(self):
        self.dir = tempfile.mkdtemp(prefix="zh-file-site-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.root = os.path.join(self.dir, "www")
        os.mkdir(self.root)
        self.files = {"index.html": b"<!doctype html><title>site</title>\n", "style.css": CSS}
        for i in range(10):
            self.files["note-%02d.txt" % i] = b"note %d\n" % i
        for name, data in self.files.items():
            with open(os.path.join(self.root, name), "wb") as f:
                f.write(data)
        with open(os.path.join(self.root, "style.css.gz"), "wb") as f:
            f.write(gzip.compress(CSS))
        with open(os.path.join(self.root, ".secret"), "wb") as f:
            f.write(b"no")
        tokens = os.path.join(self.dir, "tokens")
        with open(tokens, "w") as f:
            f.write("# name:token\nalice:%s\n" % TOKEN)
        self.log = os.path.join(self.dir, "access.log")
        return ["-p", "0", "-l", self.log, "-r", self.RPS, self.root, tokens]

    def log_lines(self, want, within=5.0):
        """The access log once a line matching want has been written (lines leave within
        about a second)."""
        deadline = time.monotonic() + within
        while True:
            with open(self.log, "rb") as f:
                lines = f.read().decode().splitlines()
            if any(re.search(want, l) for l in lines) or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)


class FileSite(FileSiteCase):
    def test_static_files(self):
        st, h, data = self.http("GET", "/")
        self.assertEqual((st, data), (200, self.files["index.html"]))
        self.assertTrue(h["Content-Type"].startswith("text/html"))
        # the precompressed variant, by sendfile, for a client that accepts gzip
        st, h, data = self.http("GET", "/style.css", headers={"Accept-Encoding": "gzip"})
        self.assertEqual((st, h["Content-Encoding"]), (200, "gzip"))
        self.assertEqual(gzip.decompress(data), CSS)
        st, h, data = self.http("GET", "/style.css")
        self.assertEqual((st, h["Content-Encoding"], data), (200, None, CSS))
        st, h2, _ = self.http("GET", "/style.css", headers={"If-None-Match": h["ETag"]})
        self.assertEqual(st, 304)
        st, h, data = self.http("GET", "/style.css", headers={"Range": "bytes=0-3"})
        self.assertEqual((st, data), (206, CSS[:4]))
        self.assertEqual(self.http("GET", "/.secret")[0], 404)
        self.assertEqual(self.http("GET", "/missing.html")[0], 404)

    def test_api_gzip(self):
        gz = os.path.getsize(os.path.join(self.root, "style.css.gz"))
        want = sorted([[n, len(d)] for n, d in self.files.items()] + [["style.css.gz", gz]])
        st, h, data = self.http("GET", "/api/files", headers={"Accept-Encoding": "gzip"})
        self.assertEqual((st, h["Content-Encoding"]), (200, "gzip"))
        self.assertIn("Accept-Encoding", h.get_all("Vary"))
        doc = json.loads(gzip.decompress(data))
        self.assertEqual(sorted([f["name"], f["size"]] for f in doc["files"]), want)
        st, h, data = self.http("GET", "/api/files")
        self.assertEqual((st, h["Content-Encoding"], h["Content-Type"]),
                         (200, None, "application/json"))
        self.assertEqual(json.loads(data), doc)

    def test_auth_and_access_log(self):
        st, h, _ = self.http("GET", "/admin/stats")
        self.assertEqual(st, 401)
        self.assertEqual(h["WWW-Authenticate"], 'Bearer realm="zerohttp"')
        st, h, _ = self.http("GET", "/admin/stats", headers={"Authorization": "Bearer nope"})
        self.assertEqual(st, 401)
        self.assertIn('error="invalid_token"', h["WWW-Authenticate"])
        st, h, data = self.http("GET", "/admin/stats",
                                headers={"Authorization": "Bearer " + TOKEN,
                                         "User-Agent": "examples-test"})
        self.assertEqual(st, 200, data)
        doc = json.loads(data)
        self.assertEqual(doc["user"], "alice")
        self.assertGreaterEqual(doc["requests"], 3)     # counted as each head parses
        self.assertIsInstance(doc["responses_4xx"], int)
        # files need no token; the access log names the user of the admin request only
        self.assertEqual(self.http("GET", "/")[0], 200)
        lines = self.log_lines(r'"examples-test"$')
        admin = [l for l in lines if '"GET /admin/stats HTTP/1.1" 200' in l]
        self.assertEqual(len(admin), 1, lines)
        self.assertRegex(admin[0], r'^127\.0\.0\.1 - alice \[.*\] "GET /admin/stats HTTP/1\.1"'
                         r' 200 \d+ "-" "examples-test"$')
        refused = [l for l in lines if '"GET /admin/stats HTTP/1.1" 401' in l]
        self.assertEqual(len(refused), 2, lines)
        self.assertTrue(all(l.startswith("127.0.0.1 - - [") for l in refused), lines)

    def test_cors(self):
        origin = {"Origin": "https://app.example"}
        # a preflight is answered before auth asks for credentials it cannot carry
        st, h, _ = self.http("OPTIONS", "/admin/stats", headers=dict(
            origin, **{"Access-Control-Request-Method": "GET",
                       "Access-Control-Request-Headers": "authorization"}))
        self.assertEqual(st, 204)
        self.assertEqual(h["Access-Control-Allow-Origin"], "https://app.example")
        self.assertIn("Authorization", h["Access-Control-Allow-Headers"])
        st, h, _ = self.http("GET", "/api/files", headers=origin)
        self.assertEqual((st, h["Access-Control-Allow-Origin"]), (200, "https://app.example"))
        st, h, _ = self.http("GET", "/admin/stats", headers=origin)   # a refusal carries it too
        self.assertEqual((st, h["Access-Control-Allow-Origin"]), (401, "https://app.example"))
        st, h, _ = self.http("GET", "/api/files", headers={"Origin": "https://evil.example"})
        self.assertEqual((st, h["Access-Control-Allow-Origin"]), (200, None))
        self.assertIn("Origin", ",".join(h.get_all("Vary")))

    def test_metrics_and_health(self):
        self.assertEqual(self.http("GET", "/healthz")[0], 200)
        st, _, data = self.http("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertRegex(data.decode(), r"(?m)^zerohttp_http_requests_total \d+$")


class FileSiteRateLimit(FileSiteCase):
    """-r 2: each client gets bursts of 2 requests, then 429 with Retry-After; /metrics and
    /healthz stay reachable."""
    RPS = "2"

    def test_rate_limit(self):
        answers = [self.http("GET", "/")[:2] for _ in range(8)]
        self.assertEqual([st for st, _ in answers[:2]], [200, 200])
        refused = [h["Retry-After"] for st, h in answers if st == 429]
        self.assertTrue(refused, [st for st, _ in answers])
        self.assertEqual(set(refused), {"1"})
        for _ in range(5):
            self.assertEqual(self.http("GET", "/healthz")[0], 200)
            self.assertEqual(self.http("GET", "/metrics")[0], 200)


# ---- async_service -------------------------------------------------------------------------

class AsyncService(ExampleTestCase):
    NAME = "async_service"

    def timed(self, path):
        t0 = time.monotonic()
        st, h, data = self.http("GET", path)
        return st, json.loads(data), time.monotonic() - t0

    def test_answer_later(self):
        st, doc, dt = self.timed("/quote/ACME?delay_ms=300")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["symbol"], "ACME")
        self.assertIsInstance(doc["price"], (int, float))
        self.assertGreaterEqual(dt, 0.3)

    def test_deadline_504(self):
        st, doc, dt = self.timed("/quote/SLOW?delay_ms=1500&timeout_ms=200")
        self.assertEqual((st, doc), (504, {"error": "upstream timeout"}))
        self.assertGreaterEqual(dt, 0.2)
        self.assertLess(dt, 3.0)

    def test_workers_serve_others_while_waiting(self):
        # two answers wait on the backend for 2 s; the workers meanwhile answer others
        slow = []
        threads = [threading.Thread(target=lambda: slow.append(
            self.timed("/quote/S?delay_ms=2000&timeout_ms=5000"))) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.2)
            for _ in range(5):
                st, doc, dt = self.timed("/quote/F?delay_ms=0")
                self.assertEqual(st, 200)
                self.assertLess(dt, 1.5)
        finally:
            for t in threads:
                t.join(TIMEOUT)
        self.assertEqual([s[0] for s in slow], [200, 200])

    def test_bad_request(self):
        for path in ("/quote/A?delay_ms=x", "/quote/A?timeout_ms=60001",
                     "/quote/ABCDEFGHIJKLMNOP"):
            st, doc, _ = self.timed(path)
            self.assertEqual(st, 400, path)
            self.assertIn("error", doc)
        self.assertEqual(self.http("GET", "/quote")[0], 404)

    def test_metrics(self):
        self.assertEqual(self.timed("/quote/A?delay_ms=10")[0], 200)
        self.assertEqual(self.timed("/quote/B?delay_ms=20")[0], 200)
        self.assertEqual(self.timed("/quote/C?delay_ms=1000&timeout_ms=50")[0], 504)
        st, _, data = self.http("GET", "/metrics")
        text = data.decode()
        self.assertEqual(st, 200)
        for line in ('app_upstream_total{outcome="ok"} 2',
                     'app_upstream_total{outcome="timeout"} 1',
                     'app_upstream_total{outcome="busy"} 0',
                     'app_upstream_seconds_bucket{le="0.01"} 1',
                     'app_upstream_seconds_bucket{le="0.1"} 2'):
            self.assertIn("\n" + line + "\n", text)
        self.assertIn("# TYPE app_upstream_seconds histogram\n", text)

    def test_stop_while_waiting(self):
        # SIGTERM while an answer waits: the deadline still answers (with Connection:
        # close), then the backends finish and the program exits 0 (checked by tearDown)
        c = self.conn()
        c.send(request("GET", "/quote/Z?delay_ms=1500&timeout_ms=500"))
        time.sleep(0.1)
        self.server.signal(signal.SIGTERM)
        self.server.expected_exit = True
        r = c.read_response()
        self.assertEqual(r.status, 504)
        self.assertEqual(r.header("Connection"), "close")
        self.assertEqual(self.server.wait_exit(STOP_TIMEOUT), 0, self.server.stderr_text())


# ---- how they were built -------------------------------------------------------------------

class Built(unittest.TestCase):
    def test_linked_against_the_installed_library(self):
        """Each example loads libzerohttp from the scratch prefix make install wrote, and
        file_site its feature libraries too: they were built from the installed header and
        pkg-config modules, not from the tree."""
        d = examples_dir()
        for name, libs in (("rest_api", ["libzerohttp.so.0"]),
                           ("async_service", ["libzerohttp.so.0"]),
                           ("file_site", ["libzerohttp.so.0", "libzerohttp-gzip.so.0",
                                          "libzerohttp-auth.so.0"])):
            out = subprocess.run(["ldd", os.path.join(d, name)], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=30).stdout.decode()
            for lib in libs:
                self.assertRegex(out, r"%s => %s/" % (re.escape(lib),
                                                      re.escape(os.path.join(d, "prefix", "lib"))),
                                 name)


if __name__ == "__main__":
    unittest.main()
