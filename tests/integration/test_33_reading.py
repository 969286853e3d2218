"""33. Reading requests from outside: query strings and urlencoded forms (zh_form_*),
multipart/form-data uploads streamed to files (zh_multipart_*, sent by curl -F and by
Python's requests), cookies both ways (zh_req_cookie, zh_cookie_next, zh_resp_set_cookie,
checked by Python's http.cookies and requests' cookie jar), slice-to-integer conversion,
and 0 mallocs over 100,000 requests that look up query parameters and parse cookies.

The server is tests/reading_server.c (ZH_READING_SERVER; default: tests/reading_server next
to ZH_BIN); its reports are "HEXNAME HEXVALUE" lines (see the file's header).
Python's requests is Debian's python3-requests, run by /usr/bin/python3 in a child process
(the interpreter running the suite may be another one).
"""
import hashlib
import http.cookies
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid

from harness import (READY_TIMEOUT, REPO, WRAP, Server, ServerError, ServerTestCase,
                     _die_with_parent, malloc_calls, request, server_bin)

SHIM = os.environ.get("ZH_SHIM", "")
SYS_PY = "/usr/bin/python3"
EILSEQ, E2BIG, EMSGSIZE, EINVAL, ERANGE = 84, 7, 90, 22, 34


def reading_server_bin():
    path = os.environ.get("ZH_READING_SERVER")
    if not path:
        path = os.path.join(os.path.dirname(server_bin()), "tests", "reading_server")
    if not os.path.isabs(path):
        path = os.path.join(REPO, path)
    return path


class ReadingServer(Server):
    """tests/reading_server 0 DIR: the port it bound is read from its first stdout line."""

    def start(self):
        path = reading_server_bin()
        if not os.access(path, os.X_OK):
            raise ServerError("no reading_server at %s (build it: make %s, or set "
                              "ZH_READING_SERVER)" % (path, os.path.relpath(path, REPO)))
        env = dict(os.environ)
        env.update(self.env or {})
        self.stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(WRAP + [path, "0"] + self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.stderr_file, env=env,
                                     cwd=REPO, preexec_fn=_die_with_parent)
        line = b""
        deadline = time.monotonic() + READY_TIMEOUT
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                self._kill()
                raise ServerError("reading_server printed no port within %.1fs: %s"
                                  % (READY_TIMEOUT, self.stderr_text()))
            b = os.read(self.proc.stdout.fileno(), 1)
            if not b:
                self._kill()
                raise ServerError("reading_server exited during startup with %r: %s"
                                  % (self.proc.wait(5), self.stderr_text()))
            line += b
        m = re.fullmatch(rb"port (\d+)\n", line)
        if not m:
            self._kill()
            raise ServerError("reading_server printed %r" % line)
        self.port = int(m.group(1))
        return self


def unhex(tok):
    """A report field: hex bytes, '-' for empty, '!' (None) for a decoding error."""
    if tok == "!":
        return None
    return b"" if tok == "-" else bytes.fromhex(tok)


def pairs(body):
    return [tuple(unhex(t) for t in line.split(" ")) for line in body.decode().splitlines()]


class ReadingTestCase(ServerTestCase):
    SERVER_ENV = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zh-reading-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        super().setUp()

    def start_server(self, args=(), env=None, demo=None):
        srv = ReadingServer([self.dir], env).start()
        self._servers.append(srv)
        return srv

    def get(self, path, headers=(), c=None, body=b"", method="GET"):
        c = c or self.conn()
        c.send(request(method, path, list(headers), body))
        return c.read_response(method)

    def curl(self, *args, timeout=60):
        out = subprocess.run(["curl", "-sS", "--max-time", str(timeout)] + list(args),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 10,
                             stdin=subprocess.DEVNULL)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def requests_py(self, code, timeout=60):
        """Runs code (with requests imported, BASE set) under Debian's python3; returns what
        it printed to stdout, parsed as JSON."""
        prog = "import json, requests, sys\nBASE = %r\n" % ("http://127.0.0.1:%d" % self.port) \
            + code
        out = subprocess.run([SYS_PY, "-c", prog], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=timeout, stdin=subprocess.DEVNULL)
        self.assertEqual(out.returncode, 0, out.stderr.decode(errors="replace"))
        return json.loads(out.stdout)


class QueryAndForm(ReadingTestCase):
    def test_query_pairs_match_python_parse_qsl(self):
        q = "a=1&b=x+y&a=%C3%A9t%C3%A9&&flag&=v&k=a=b&pct=%25%2B%26&sp=%20"
        r = self.get("/q?" + q)
        self.assertEqual(r.status, 200, r.body)
        want = [(k.encode("latin-1"), v.encode("latin-1"))
                for k, v in urllib.parse.parse_qsl(q, keep_blank_values=True,
                                                   encoding="latin-1")]
        self.assertEqual(pairs(r.body), want)
        self.assertIn((b"a", "été".encode()), pairs(r.body), "repeated keys all visible")

    def test_bad_escape_is_reported_not_passed(self):
        # in a request target the head parser refuses it already (RFC 3986 §2.1)
        self.assertEqual(self.get("/q?bad=%zz").status, 400)
        # in a form body the decoder reports it per field
        form = [("Content-Type", "application/x-www-form-urlencoded")]
        r = self.get("/form", form, body=b"ok=1&bad=%zz&cut=%4&name%G1=2", method="POST")
        self.assertEqual(pairs(r.body), [(b"ok", b"1"), (b"bad", None), (b"cut", None),
                                         (None, b"2")])
        r = self.get("/form/get", form + [("X-Name", "bad")], body=b"bad=%zz", method="POST")
        self.assertEqual((r.status, r.body), (400, b"E%d\n" % EILSEQ))
        r = self.get("/form/get", form + [("X-Name", "a")], body=b"x%zz=1&a=2", method="POST")
        self.assertEqual((r.status, r.body), (400, b"E%d\n" % EILSEQ),
                         "a malformed name before the match")
        r = self.get("/form/get", form + [("X-Name", "a")], body=b"a=2&x%zz=1", method="POST")
        self.assertEqual((r.status, r.body), (200, b"2"), "nothing after the match is read")

    def test_query_lookup(self):
        q = "/q/get?id=7&name=J%C3%B6rg+M%C3%BCller&id=8&empty=&bare"
        for name, status, body in (("id", 200, b"7"), ("name", 200, "Jörg Müller".encode()),
                                   ("empty", 200, b""), ("bare", 200, b""),
                                   ("missing", 404, b""), ("i", 404, b"")):
            r = self.get(q, [("X-Name", name)])
            self.assertEqual((r.status, r.body), (status, body), name)

    def test_query_pair_limit(self):
        q = "&".join("k%d=%d" % (i % 10, i) for i in range(1000))
        r = self.get("/q?" + q)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(pairs(r.body)), 1000)
        r = self.get("/q?" + q + "&one=more")
        self.assertEqual((r.status, r.body), (413, b"E%d\n" % E2BIG))

    def test_form_body_from_requests(self):
        got = self.requests_py(r'''
data = [("user", "a b&c=d"), ("tag", "x"), ("tag", "y+z"), ("note", "é%\n\x00"), ("e", "")]
r = requests.post(BASE + "/form", data=data, timeout=30)
lookups = {}
for name in ("user", "tag", "note", "nope"):
    g = requests.post(BASE + "/form/get", data=data, headers={"X-Name": name}, timeout=30)
    lookups[name] = [g.status_code, g.content.hex()]
print(json.dumps({"status": r.status_code, "body": r.text, "lookups": lookups,
                  "sent": requests.Request("POST", BASE, data=data).prepare().body}))
''')
        self.assertEqual(got["status"], 200, got["body"])
        want = [(k.encode(), v.encode()) for k, v in
                urllib.parse.parse_qsl(got["sent"], keep_blank_values=True)]
        self.assertEqual(pairs(got["body"].encode()), want)
        self.assertEqual(want[3], (b"note", "é%\n\x00".encode()))
        self.assertEqual(got["lookups"], {"user": [200, b"a b&c=d".hex()],
                                          "tag": [200, b"x".hex()],
                                          "note": [200, "é%\n\x00".encode().hex()],
                                          "nope": [404, ""]})

    def test_form_body_length_limit(self):
        body = b"a=1&" + b"&" * ((1 << 20) - 4)
        r = self.get("/form/get", [("X-Name", "a"), ("Content-Type",
                                   "application/x-www-form-urlencoded")], body=body,
                     method="POST")
        self.assertEqual((r.status, r.body), (200, b"1"), "exactly 1 MiB")
        r = self.get("/form/get", [("X-Name", "a")], body=body + b"&", method="POST")
        self.assertEqual((r.status, r.body), (413, b"E%d\n" % EMSGSIZE))


class Slices(ReadingTestCase):
    def test_integers(self):
        rows = [("42", (0, 42), (0, 42)), ("-9223372036854775808", (0, -2 ** 63), (-EINVAL,)),
                ("9223372036854775808", (-ERANGE,), (0, 2 ** 63)),
                ("18446744073709551616", (-ERANGE,), (-ERANGE,)),
                ("", (-EINVAL,), (-EINVAL,)), ("12x", (-EINVAL,), (-EINVAL,)),
                (" 1", (-EINVAL,), (-EINVAL,)), ("+7", (0, 7), (-EINVAL,))]
        for s, i64, u64 in rows:
            r = self.get("/int?s=" + urllib.parse.quote(s))
            lines = r.body.decode().splitlines()
            ri, vi = lines[0].split()[1:]
            ru, vu = lines[1].split()[1:]
            self.assertEqual((int(ri),) + ((int(vi),) if int(ri) == 0 else ()), i64, s)
            self.assertEqual((int(ru),) + ((int(vu),) if int(ru) == 0 else ()), u64, s)


class Cookies(ReadingTestCase):
    def test_cookie_header_rfc6265_example_and_lookups(self):
        h = [("Cookie", "SID=31d4d96e407aad42; lang=en-US")]
        r = self.get("/cookies", h)
        self.assertEqual(pairs(r.body), [(b"SID", b"31d4d96e407aad42"), (b"lang", b"en-US")])
        for name, status, body in (("SID", 200, b"31d4d96e407aad42"), ("lang", 200, b"en-US"),
                                   ("sid", 404, b""), ("LANG", 404, b"")):
            r = self.get("/cookies", h + [("X-Name", name)])
            self.assertEqual((r.status, r.body), (status, body), name)

    def test_several_cookie_fields_and_lenient_syntax(self):
        h = [("Cookie", 'a=1;b="q v" ; junk; =x'), ("X-Other", "c=3"), ("cookie", "c=3;a=4")]
        r = self.get("/cookies", h)
        self.assertEqual(pairs(r.body), [(b"a", b"1"), (b"b", b"q v"), (b"c", b"3"),
                                         (b"a", b"4")])
        r = self.get("/cookies", h + [("X-Name", "c")])
        self.assertEqual((r.status, r.body), (200, b"3"))
        r = self.get("/cookies")
        self.assertEqual((r.status, r.body), (200, b""), "no Cookie field")

    def test_set_cookie(self):
        r = self.get("/setcookie?name=SID&value=31d4d96e407aad42&path=/&domain=example.com"
                     "&max_age=3600&expires=1623233894&secure=1&httponly=1&samesite=lax")
        self.assertEqual(r.status, 200, r.body)
        v = r.header("Set-Cookie")
        self.assertEqual(v, "SID=31d4d96e407aad42; Path=/; Domain=example.com; Max-Age=3600; "
                            "Expires=Wed, 09 Jun 2021 10:18:14 GMT; Secure; HttpOnly; "
                            "SameSite=Lax")
        c = http.cookies.SimpleCookie()
        c.load(v)
        m = c["SID"]
        self.assertEqual((m.value, m["path"], m["domain"], m["max-age"], m["expires"],
                          m["secure"], m["httponly"], m["samesite"]),
                         ("31d4d96e407aad42", "/", "example.com", "3600",
                          "Wed, 09 Jun 2021 10:18:14 GMT", True, True, "Lax"))

    def test_set_cookie_refuses_invalid(self):
        for q in ("name=a%3Bb&value=1", "name=a+b&value=1", "name=&value=1",
                  "name=a&value=x%3By", "name=a&value=x+y", "name=a&value=%0D%0ASet-Cookie:+x=1",
                  "name=a&value=1&path=/%3B+Domain=evil", "name=a&value=1&domain=a%3Bb",
                  "name=a&value=1&samesite=none", "name=a&value=1&samesite=bogus&secure=1"):
            r = self.get("/setcookie?" + q)
            self.assertEqual((r.status, r.body), (400, b"E%d\n" % EINVAL), q)
            self.assertIsNone(r.header("Set-Cookie"), q)

    def test_requests_cookie_jar_round_trip(self):
        got = self.requests_py(r'''
s = requests.Session()
r = s.get(BASE + "/setcookie?name=token&value=abc123&path=/&samesite=strict", timeout=30)
s.cookies.set("other", "zz", domain="127.0.0.1", path="/")
echo = s.get(BASE + "/cookies", timeout=30)
one = s.get(BASE + "/cookies", headers={"X-Name": "token"}, timeout=30)
print(json.dumps({"set": r.headers.get("Set-Cookie"), "echo": echo.text, "one": one.text}))
''')
        self.assertEqual(got["set"], "token=abc123; Path=/; SameSite=Strict")
        self.assertEqual(sorted(pairs(got["echo"].encode())),
                         [(b"other", b"zz"), (b"token", b"abc123")])
        self.assertEqual(got["one"], "abc123")


def make_file(path, size, seed):
    """size bytes that include many near-boundaries (CRLF "--" runs) between random runs."""
    rnd = __import__("random").Random(seed)
    chunk = bytearray()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            chunk = bytes(rnd.getrandbits(8) for _ in range(4096)) \
                + b"\r\n--" + b"-" * rnd.randrange(40) + b"\r\n\r\n--"
            part = chunk[:left]
            f.write(part)
            left -= len(part)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def report(body):
    """The /upload report: {index: ("field", name, type, data) | ("file", name, filename,
    type, size, path)}."""
    out = {}
    for line in body.decode().splitlines():
        t = line.split(" ")
        if t[0] == "field":
            out[int(t[1])] = ("field", unhex(t[2]), unhex(t[3]), unhex(t[4] or "-"))
        else:
            out[int(t[1])] = ("file", unhex(t[2]), unhex(t[3]), unhex(t[4]), int(t[5]), t[6])
    return out


class Multipart(ReadingTestCase):
    def big_file(self, size, seed=1):
        path = os.path.join(self.dir, "src-%d.bin" % seed)
        return path, make_file(path, size, seed)

    def test_curl_file_and_fields(self):
        path, digest = self.big_file(5 * 1024 * 1024 + 123)
        note = os.path.join(self.dir, "note.txt")
        with open(note, "wb") as f:
            f.write(b"small\r\nfile")
        out = self.curl("-F", "title=hello world", "-F", "upload=@%s;type=application/x-test"
                        % path, "-F", 'odd=@%s;filename=a"b\\c.txt' % note, "-F", "empty=",
                        "http://127.0.0.1:%d/upload" % self.port)
        got = report(out)
        self.assertEqual(got[0], ("field", b"title", b"", b"hello world"), out[:300])
        kind, name, fname, ctype, size, where = got[1]
        self.assertEqual((kind, name, fname, ctype, size),
                         ("file", b"upload", b"src-1.bin", b"application/x-test",
                          5 * 1024 * 1024 + 123))
        self.assertEqual(sha256_file(where), digest, "byte-exact through the parser")
        # curl (like browsers, WHATWG) sends '"' in a filename as %22: passed as sent
        self.assertEqual(got[2][:5], ("file", b"odd", b'a%22b\\c.txt', b"text/plain", 11))
        with open(got[2][5], "rb") as f:
            self.assertEqual(f.read(), b"small\r\nfile")
        self.assertEqual(got[3], ("field", b"empty", b"", b""))

    def test_requests_file_upload(self):
        path, digest = self.big_file(3 * 1024 * 1024 + 7, seed=2)
        got = self.requests_py(r'''
with open(%r, "rb") as f:
    r = requests.post(BASE + "/upload", data={"k": "v", "k2": "é"},
                      files={"blob": ("data.bin", f, "application/octet-stream")}, timeout=60)
print(json.dumps({"status": r.status_code, "body": r.text}))
''' % path)
        self.assertEqual(got["status"], 200, got["body"][:300])
        parts = report(got["body"].encode())
        fields = sorted(p[1:] for p in parts.values() if p[0] == "field")
        self.assertEqual(fields, [(b"k", b"", b"v"), (b"k2", b"", "é".encode())])
        files = [p for p in parts.values() if p[0] == "file"]
        self.assertEqual(len(files), 1)
        self.assertEqual(files[0][1:5], (b"blob", b"data.bin", b"application/octet-stream",
                                         3 * 1024 * 1024 + 7))
        self.assertEqual(sha256_file(files[0][5]), digest)

    def body(self, parts, boundary="XyZ"):
        b = b"preamble\r\n"
        for name, data in parts:
            b += (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                  % (boundary.encode(), name.encode(), data))
        return b + b"--%s--\r\n" % boundary.encode()

    def post(self, path, body, c=None, ctype="multipart/form-data; boundary=XyZ", step=None):
        c = c or self.conn()
        c.send(request("POST", path, [("Content-Type", ctype),
                                      ("Content-Length", str(len(body)))]))
        if step:
            for i in range(0, len(body), step):
                c.send(body[i:i + step])
                time.sleep(0.002)
        else:
            c.send(body)
        return c, c.read_response("POST")

    def test_body_dribbled_in_small_pieces(self):
        # near-delimiters in the data ("\r\n--XyZ" itself may not appear, RFC 2046 §5.1.1)
        body = self.body([("a", b"1" * 100), ("b", b"\r\n--XyY-not\r\n--Xy")])
        for step in (1, 3, 7):
            c, r = self.post("/upload", body, step=step)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(report(r.body), {0: ("field", b"a", b"", b"1" * 100),
                                              1: ("field", b"b", b"", b"\r\n--XyY-not\r\n--Xy")})
            # keep-alive: the connection carries the next request
            r = self.get("/q?x=1", c=c)
            self.assertEqual(r.status, 200)

    def test_errors_answer_and_close(self):
        cases = [
            ("/upload?max_parts=2", self.body([("a", b"1"), ("b", b"2"), ("c", b"3")]), 413),
            ("/upload?max_header=40", self.body([("a" * 30, b"1")]), 413),
            ("/upload", b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--\r\n", 400),
            ("/upload", b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nno end", 400),
            ("/upload", b"--XyZjunk\r\n", 400),
        ]
        for path, body, status in cases:
            c, r = self.post(path, body)
            self.assertEqual(r.status, status, (path, body[:60], r.body))
            self.assertEqual(r.header("Connection"), "close")
            self.assertClosed(c)
        # a file part over its limit: 413 once max_file is passed, the file cut there
        c, r = self.post("/upload?max_file=10", b"--XyZ\r\nContent-Disposition: form-data; "
                         b"name=f; filename=x\r\n\r\n" + b"x" * 11 + b"\r\n--XyZ--")
        self.assertEqual(r.status, 413)
        c, r = self.post("/upload", b"a=1", ctype="application/x-www-form-urlencoded")
        self.assertEqual((r.status, r.body), (415, b"E%d\n" % EINVAL))

    def test_quoted_boundary_and_epilogue(self):
        body = self.body([("q", b"v")], boundary="a b:c")[:-2] + b"\r\nepilogue --a b:c\r\n"
        c, r = self.post("/upload", body, ctype='multipart/form-data; boundary="a b:c"')
        self.assertEqual((r.status, report(r.body)), (200, {0: ("field", b"q", b"", b"v")}))


@unittest.skipUnless(SHIM, "ZH_SHIM not set (no malloc-counting shim)")
class ZeroAlloc(ReadingTestCase):
    """100,000 requests that look query parameters up, walk them, read an integer, look a
    cookie up, walk the cookies and set one: 0 malloc-family calls in the server."""
    AUTO_START = False
    CONNS, BATCH, WARMUP, MEASURED = 4, 50, 2000, 100000

    def test_zero_allocations(self):
        count_file = os.path.join(tempfile.gettempdir(),
                                  "zh-malloc-%d-%s" % (os.getpid(), uuid.uuid4().hex))
        self.addCleanup(lambda: os.path.exists(count_file) and os.unlink(count_file))
        srv = ReadingServer([self.dir], {"LD_PRELOAD": os.path.abspath(SHIM),
                                         "ZH_MALLOC_COUNT_FILE": count_file}).start()
        self._servers.append(srv)
        self.port = srv.port
        reqs = []
        for i in range(97):
            cookie = "theme=dark; session=s%d; x=%d" % (i, i) if i % 7 else "lang=en"
            path = "/mix?id=%d&name=n%%C3%%A9+%d&tag=a&tag=b%s" % (i, i, "&tag=c" * (i % 3))
            want = ("id=%d name=n\u00e9 %d tags=%d session=%s cookies=%d\n"
                    % (i, i, 2 + i % 3, "s%d" % i if i % 7 else "-", 3 if i % 7 else 1)).encode()
            reqs.append((request("GET", path, [("Cookie", cookie)]), want))
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
                        r = c.read_response("GET")
                        if r.status != 200 or r.body != want:
                            self.fail("got %d %r, want %r" % (r.status, r.body, want))
            return done

        drive(self.WARMUP)
        a = malloc_calls(srv.pid, count_file)
        t0 = time.monotonic()
        n = drive(self.MEASURED)
        dt = time.monotonic() - t0
        b = malloc_calls(srv.pid, count_file)
        sys.stdout.write("      reading zero-alloc: %d requests in %.1fs, malloc-family calls "
                         "before=%d after=%d delta=%d\n" % (n, dt, a, b, b - a))
        sys.stdout.flush()
        self.assertEqual(n, self.MEASURED)
        self.assertEqual(b - a, 0, "%d malloc-family calls during %d requests" % (b - a, n))
