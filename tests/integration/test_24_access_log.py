"""24. Access log (zerohttpd --access-log FILE|- --access-log-format common|combined|json).

Every format is parsed strictly (a full-line regex, or json.loads), field by field. Client
text cannot forge a line. Library answers (404, 405, 400) are logged. Lines are buffered per
worker: they reach the file within ~1 s of traffic stopping, all of them by SIGTERM, and in
far fewer write() calls than lines (strace). SIGUSR1 reopens the file (rotation); without
a log it is ignored. With the log on, the request path still makes no heap allocation (malloc-count shim).
"""
import datetime
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import uuid

from harness import (HELLO, JSON, ServerTestCase, free_port, malloc_calls, metrics, request,
                     stop_traced)

MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
# a logged string: printable ASCII except '"' and '\', or \xHH (nginx's escaping)
ESC = r'(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\x[0-9A-F]{2})'
ESC_NOSP = r'(?:[\x21\x23-\x5b\x5d-\x7e]|\\x[0-9A-F]{2})'
TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
CLF_RE = (r'(?P<client>\d{1,3}(?:\.\d{1,3}){3}) - (?P<user>-|' + TOKEN + r') '
          r'\[(?P<date>\d{2}/(?:' + MONTHS + r')/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] '
          r'"(?P<request>-|(?P<method>' + TOKEN + r') (?P<target>' + ESC_NOSP + r'+) '
          r'(?P<proto>HTTP/1\.[01]))" (?P<status>\d{3}) (?P<bytes>\d+)')
COMMON = re.compile(r"\A" + CLF_RE + r"\Z")
COMBINED = re.compile(r"\A" + CLF_RE + r' "(?P<referer>' + ESC + r'*)" "(?P<agent>' + ESC +
                      r'*)"\Z')
JSON_KEYS = ["time", "client", "user", "method", "target", "protocol", "status", "bytes",
             "duration_us", "referer", "user_agent"]
RFC3339_UTC = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
FLUSH_WITHIN = 2.0      # the log promises ~1 s; allow for a loaded machine


def unescape(s):
    """CLF field text back to the bytes the client sent."""
    return re.sub(r"\\x([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), s).encode("latin-1")


def read_lines(path):
    """Complete lines of the log (bytes, without the newline); a missing file has none."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    assert data == b"" or data.endswith(b"\n"), "log ends inside a line: %r" % data[-200:]
    return data.split(b"\n")[:-1]


def wait_lines(path, n, within=FLUSH_WITHIN + 3):
    """Polls until the log holds at least n lines; returns (lines, seconds waited)."""
    t0 = time.monotonic()
    while True:
        lines = read_lines(path)
        if len(lines) >= n or time.monotonic() - t0 > within:
            return lines, time.monotonic() - t0
        time.sleep(0.02)


class AccessLogCase(ServerTestCase):
    """Starts zerohttpd with its own log file in a fresh directory."""
    AUTO_START = False
    FORMAT = None           # None: zerohttpd's default (combined)
    WORKERS = 2

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="zh-accesslog-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.log = os.path.join(self.dir, "access.log")

    def log_args(self, extra=()):
        args = ["--workers", str(self.WORKERS), "--access-log", self.log]
        if self.FORMAT:
            args += ["--access-log-format", self.FORMAT]
        return args + list(extra)

    def start(self, extra=(), env=None):
        self.server = self.start_server(self.log_args(extra), env)
        self.port = self.server.port
        return self.server

    def get_all(self, reqs, conn=None):
        """Sends each raw request on one keep-alive connection; returns the responses."""
        c = conn or self.conn()
        out = []
        for raw, method in reqs:
            c.send(raw)
            out.append(c.read_response(method))
        return out

    def parse(self, line, rx):
        text = line.decode("ascii")      # CLF lines are pure ASCII, whatever the client sent
        m = rx.match(text)
        self.assertIsNotNone(m, "line does not parse strictly: %r" % text)
        when = datetime.datetime.strptime(m.group("date"), "%d/%b/%Y:%H:%M:%S %z")
        self.assertLess(abs(when.timestamp() - time.time()), 30, text)
        self.assertEqual(m.group("client"), "127.0.0.1")
        return m

    def by_target(self, matches):
        return {unescape(m.group("target")) if m.group("target") else b"-": m for m in matches}


class CommonFormat(AccessLogCase):
    FORMAT = "common"

    def test_fields_exact(self):
        self.start()
        body = b"x" * 1234
        tag = uuid.uuid4().hex
        resps = self.get_all([
            (request("GET", "/plaintext?t=%s&a=1" % tag), "GET"),
            (request("GET", "/json?t=%s" % tag), "GET"),
            (request("POST", "/echo?t=%s" % tag, [("Content-Type", "text/plain")], body),
             "POST"),
            (request("HEAD", "/plaintext?t=%s-head" % tag), "HEAD"),
            (request("GET", "/json?t=%s-10" % tag, version="HTTP/1.0", host=None), "GET"),
        ])
        self.assertEqual([r.status for r in resps], [200] * 5)
        lines, _ = wait_lines(self.log, 5)
        self.assertEqual(len(lines), 5, lines)
        got = self.by_target(self.parse(l, COMMON) for l in lines)
        want = {
            "/plaintext?t=%s&a=1" % tag: ("GET", "HTTP/1.1", len(HELLO)),
            "/json?t=%s" % tag: ("GET", "HTTP/1.1", len(JSON)),
            "/echo?t=%s" % tag: ("POST", "HTTP/1.1", len(body)),
            "/plaintext?t=%s-head" % tag: ("HEAD", "HTTP/1.1", 0),     # no body sent
            "/json?t=%s-10" % tag: ("GET", "HTTP/1.0", len(JSON)),
        }
        self.assertEqual(set(got), {k.encode() for k in want})
        for target, (method, proto, nbytes) in want.items():
            m = got[target.encode()]
            self.assertEqual((m.group("method"), m.group("proto"), m.group("status"),
                              int(m.group("bytes"))), (method, proto, "200", nbytes))
        self.assertEqual(resps[2].body, body)


class CombinedFormat(AccessLogCase):
    FORMAT = None       # the default

    def test_referer_and_user_agent(self):
        self.start()
        self.get_all([
            (request("GET", "/plaintext?n=1", [("Referer", "http://example.com/a?b=c"),
                                               ("User-Agent", "test-agent/1.0 (x; y)")]), "GET"),
            (request("GET", "/plaintext?n=2"), "GET"),         # neither header: "-" "-"
        ])
        lines, _ = wait_lines(self.log, 2)
        got = self.by_target(self.parse(l, COMBINED) for l in lines)
        self.assertEqual(len(got), 2, lines)
        a, b = got[b"/plaintext?n=1"], got[b"/plaintext?n=2"]
        self.assertEqual((a.group("referer"), a.group("agent")),
                         ("http://example.com/a?b=c", "test-agent/1.0 (x; y)"))
        self.assertEqual((b.group("referer"), b.group("agent")), ("-", "-"))
        self.assertEqual((a.group("status"), a.group("bytes")), ("200", str(len(HELLO))))

    def test_credentials_are_not_logged(self):
        self.start()
        secret = "Basic dXNlcjpodW50ZXIy"
        self.get_all([(request("GET", "/plaintext", [("Authorization", secret),
                                                     ("Cookie", "session=s3cr3t")]), "GET")])
        lines, _ = wait_lines(self.log, 1)
        self.assertEqual(len(lines), 1)
        self.assertNotIn(b"dXNlcjpodW50ZXIy", lines[0])
        self.assertNotIn(b"s3cr3t", lines[0])
        self.assertIn(b" - - [", lines[0])                   # ident and user stay "-"

    def test_injection_cannot_forge_a_line(self):
        self.start()
        forged = '127.0.0.1 - - [01/Jan/2000:00:00:00 +0000] "GET /forged HTTP/1.1" 200 1'
        agent = 'evil" 200 13 "x\\" ' + forged
        c = self.conn()
        c.send(request("GET", "/plaintext?q=1", [("User-Agent", agent),
                                                 ("Referer", '"\\"')]))
        self.assertEqual(c.read_response().status, 200)
        # obs-text (bytes >= 0x80) is allowed in a header value: logged as \xHH
        c.send(request("GET", "/plaintext?q=2", [("User-Agent", "caf\xe9 \xff")]))
        self.assertEqual(c.read_response().status, 200)
        # CR LF inside the request line or a header value: refused, and logged as one line
        raw = [b"GET /plaintext?q=3\r\n" + forged.encode() + b"\r\n HTTP/1.1\r\nHost: x\r\n\r\n",
               b"GET /plaintext?q=4 HTTP/1.1\r\nHost: x\r\nUser-Agent: a\rb\r\n\r\n",
               b'GET /plaint"ext?q=5 HTTP/1.1\r\nHost: x\r\n\r\n',
               b"GET /plaintext?q=6\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n"]
        statuses = []
        for r in raw:
            b = self.conn()
            b.send(r)
            statuses.append(b.read_response().status)
        # percent-encoded CR LF is only text
        c.send(request("GET", "/plaintext?q=%0d%0a" + urllib.parse.quote(forged, safe="")))
        self.assertEqual(c.read_response().status, 200)
        n = 3 + len(raw)
        lines, _ = wait_lines(self.log, n)
        time.sleep(0.2)
        lines = read_lines(self.log)
        self.assertEqual(len(lines), n, lines)
        got = self.by_target(self.parse(l, COMBINED) for l in lines)
        self.assertNotIn(b"/forged", got)
        self.assertEqual(unescape(got[b"/plaintext?q=1"].group("agent")), agent.encode())
        self.assertEqual(unescape(got[b"/plaintext?q=1"].group("referer")), b'"\\"')
        self.assertIn(r'caf\xE9 \xFF', got[b"/plaintext?q=2"].group("agent"))
        self.assertEqual(unescape(got[b"/plaintext?q=2"].group("agent")), b"caf\xe9 \xff")
        for r, status in zip(raw, statuses):
            if status == 200:       # accepted after all: then the bytes are escaped
                target = r.split(b" ")[1]
                self.assertIn(target, got)
            else:
                self.assertEqual(status, 400)

    def test_library_answers_are_logged(self):
        self.start()
        c = self.conn()
        c.send(request("GET", "/no/such/thing"))
        r404 = c.read_response()
        c.send(request("DELETE", "/plaintext"))
        r405 = c.read_response()
        bad = self.conn()
        bad.send(b"BLAH\r\n\r\n")
        r400 = bad.read_response()
        self.assertEqual((r404.status, r405.status, r400.status), (404, 405, 400))
        lines, _ = wait_lines(self.log, 3)
        self.assertEqual(len(lines), 3, lines)
        got = self.by_target(self.parse(l, COMBINED) for l in lines)
        m = got[b"/no/such/thing"]
        self.assertEqual((m.group("method"), m.group("status"), int(m.group("bytes"))),
                         ("GET", "404", len(r404.body)))
        m = got[b"/plaintext"]
        self.assertEqual((m.group("method"), m.group("status"), int(m.group("bytes"))),
                         ("DELETE", "405", len(r405.body)))
        m = got[b"-"]           # no request line to show: "-" fields
        self.assertEqual((m.group("request"), m.group("status"), int(m.group("bytes")),
                          m.group("referer"), m.group("agent")),
                         ("-", "400", len(r400.body), "-", "-"))

    def test_header_timeout_is_logged_without_stale_fields(self):
        # A 408 for a head that never completed, pipelined behind a served request: the
        # half-parsed head must not be logged with another request's bytes.
        self.start(("--header-timeout", "300"))
        c = self.conn()
        c.send(request("GET", "/plaintext?first-request-with-a-long-target") +
               b"GET /zz HTTP/1.1\r\nHost: x\r\n")
        self.assertEqual(c.read_response().status, 200)
        r = c.read_response()
        self.assertEqual(r.status, 408)
        lines, _ = wait_lines(self.log, 2)
        self.assertEqual(len(lines), 2, lines)
        got = self.by_target(self.parse(l, COMBINED) for l in lines)
        self.assertIn(b"/plaintext?first-request-with-a-long-target", got)
        m = got[b"-"]
        self.assertEqual((m.group("request"), m.group("status"), int(m.group("bytes"))),
                         ("-", "408", len(r.body)))


class ClientGaveUp(AccessLogCase):
    """A client that closes before any response head left is logged as 499 with 0 bytes
    (nginx's "client closed request"), in every format: here while a deferred response
    waits (/delay) and while the request body is still coming (/echo)."""
    FORMAT = "common"
    RX = COMMON

    def gave_up(self):
        self.start()
        waiting = self.conn()
        waiting.send(request("GET", "/delay?ms=1500"))
        uploading = self.conn()
        uploading.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" +
                       b"0123456789")
        time.sleep(0.3)                 # both heads parsed, neither answered
        # an abortive close (RST): a plain FIN could be a half-close, and the server only
        # learns that the peer is gone when the deferred answer is written
        waiting.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        waiting.close()
        uploading.close()
        time.sleep(1.6)                 # past the delay: a resumed response would be logged
        lines, _ = wait_lines(self.log, 2)
        self.assertEqual(len(lines), 2, lines)
        return lines

    def status_bytes(self, lines):
        got = self.by_target(self.parse(l, self.RX) for l in lines)
        return {t: (m.group("status"), int(m.group("bytes"))) for t, m in got.items()}

    def test_logged_as_499(self):
        self.assertEqual(self.status_bytes(self.gave_up()),
                         {b"/delay?ms=1500": ("499", 0), b"/echo": ("499", 0)})


class ClientGaveUpCombined(ClientGaveUp):
    FORMAT = "combined"
    RX = COMBINED


class ClientGaveUpJson(ClientGaveUp):
    FORMAT = "json"

    def status_bytes(self, lines):
        docs = [json.loads(l.decode("utf-8")) for l in lines]
        for d in docs:
            self.assertEqual(list(d), JSON_KEYS)
        return {d["target"].encode(): (str(d["status"]), d["bytes"]) for d in docs}


class JsonFormat(AccessLogCase):
    FORMAT = "json"

    def load(self, lines):
        out = []
        for line in lines:
            self.assertNotIn(b"\r", line)
            doc = json.loads(line.decode("utf-8"))     # strict: valid UTF-8, valid JSON
            self.assertEqual(list(doc), JSON_KEYS, line)
            self.assertRegex(doc["time"], RFC3339_UTC)
            when = datetime.datetime.strptime(doc["time"], "%Y-%m-%dT%H:%M:%SZ")
            when = when.replace(tzinfo=datetime.timezone.utc)
            self.assertLess(abs(when.timestamp() - time.time()), 30)
            self.assertEqual(doc["client"], "127.0.0.1")
            self.assertIsInstance(doc["status"], int)
            self.assertIsInstance(doc["bytes"], int)
            out.append(doc)
        return out

    def test_fields_exact(self):
        self.start()
        body = os.urandom(300)
        self.get_all([
            (request("GET", "/json?j=1", [("Referer", "http://r/"), ("User-Agent", "ua/2")]),
             "GET"),
            (request("POST", "/echo?j=2", [("Content-Type", "application/x-a")], body), "POST"),
            (request("GET", "/delay?ms=200"), "GET"),
            (request("GET", "/nothing-here"), "GET"),
        ])
        bad = self.conn()
        bad.send(b"\x01\x02\r\n\r\n")
        self.assertEqual(bad.read_response().status, 400)
        lines, _ = wait_lines(self.log, 5)
        docs = {d["target"]: d for d in self.load(lines)}
        self.assertEqual(len(docs), 5, lines)
        d = docs["/json?j=1"]
        self.assertEqual((d["method"], d["protocol"], d["status"], d["bytes"], d["referer"],
                          d["user_agent"]), ("GET", "HTTP/1.1", 200, len(JSON), "http://r/",
                                             "ua/2"))
        self.assertIsInstance(d["duration_us"], int)
        self.assertGreaterEqual(d["duration_us"], 0)
        d = docs["/echo?j=2"]
        self.assertEqual((d["method"], d["status"], d["bytes"], d["referer"], d["user_agent"]),
                         ("POST", 200, len(body), None, None))
        d = docs["/delay?ms=200"]
        self.assertGreaterEqual(d["duration_us"], 190000)     # a deferred response's time
        self.assertLess(d["duration_us"], 5000000)
        self.assertEqual(docs["/nothing-here"]["status"], 404)
        d = docs[None]          # the 400 for a request that never parsed
        self.assertEqual((d["method"], d["protocol"], d["status"], d["duration_us"],
                          d["referer"], d["user_agent"]), (None, None, 400, None, None, None))

    def test_injection_and_unicode(self):
        self.start()
        agent = 'x"}\n{"status":200}\\ \u2028\u2029\u0085 caf\u00e9 \U0001F600'.encode("utf-8")
        agent = agent.replace(b"\n", b" ")  # a raw LF cannot be in a header value at all
        c = self.conn()
        c.send(request("GET", "/plaintext?u=1").replace(
            b"\r\n\r\n", b"\r\nUser-Agent: " + agent + b"\r\n\r\n"))
        self.assertEqual(c.read_response().status, 200)
        bad_utf8 = b"ok \xff\xc3 \xe2\x82 \xed\xa0\x80 end"    # ill-formed: U+FFFD each
        c.send(request("GET", "/plaintext?u=2").replace(
            b"\r\n\r\n", b"\r\nUser-Agent: " + bad_utf8 + b"\r\n\r\n"))
        self.assertEqual(c.read_response().status, 200)
        lines, _ = wait_lines(self.log, 2)
        time.sleep(0.2)
        raw = open(self.log, "rb").read()
        # every line separator a splitter might honour stays escaped
        self.assertEqual(len(raw.decode("utf-8").splitlines()), 2, raw)
        docs = {d["target"]: d for d in self.load(read_lines(self.log))}
        self.assertEqual(docs["/plaintext?u=1"]["user_agent"].encode("utf-8"), agent)
        self.assertEqual(docs["/plaintext?u=2"]["user_agent"],
                         bad_utf8.decode("utf-8", "replace"))
        self.assertIn(b"\\u2028", raw)


class Buffering(AccessLogCase):
    def test_lines_appear_within_two_seconds_of_quiet(self):
        self.start()
        c = self.conn()
        n = 20
        for i in range(n):
            c.send(request("GET", "/plaintext?b=%d" % i))
            self.assertEqual(c.read_response().status, 200)
        t_last = time.monotonic()
        lines, _ = wait_lines(self.log, n, within=FLUSH_WITHIN + 1)
        waited = time.monotonic() - t_last
        self.assertEqual(len(lines), n, "only %d of %d lines after %.2fs" % (len(lines), n,
                                                                            waited))
        self.assertLessEqual(waited, FLUSH_WITHIN)
        # a second burst after a pause flushes again
        c.send(request("GET", "/plaintext?b=again"))
        c.read_response()
        t_last = time.monotonic()
        lines, _ = wait_lines(self.log, n + 1, within=FLUSH_WITHIN + 1)
        self.assertEqual(len(lines), n + 1)
        self.assertLessEqual(time.monotonic() - t_last, FLUSH_WITHIN)

    def test_every_line_is_written_by_sigterm(self):
        srv = self.start()
        conns = [self.conn() for _ in range(6)]
        total = 0
        for round_ in range(50):
            for k, c in enumerate(conns):
                batch = b"".join(request("GET", "/plaintext?r=%d&c=%d&i=%d" % (round_, k, i))
                                 for i in range(10))
                c.send(batch)
            for c in conns:
                for _ in range(10):
                    self.assertEqual(c.read_response().status, 200)
                    total += 1
        srv.expected_exit = True
        srv.signal(signal.SIGTERM)          # at once: most lines are still buffered
        self.assertEqual(srv.wait_exit(15), 0)
        lines = read_lines(self.log)
        self.assertEqual(len(lines), total)
        targets = {COMBINED.match(l.decode()).group("target") for l in lines}
        self.assertEqual(len(targets), total)      # each exactly once


class Rotation(AccessLogCase):
    def test_sigusr1_reopens_the_file(self):
        srv = self.start()
        c = self.conn()
        self.get_all([(request("GET", "/plaintext?phase=old&i=%d" % i), "GET")
                      for i in range(10)], c)
        old, _ = wait_lines(self.log, 10)
        self.assertEqual(len(old), 10)
        rotated = self.log + ".1"
        os.rename(self.log, rotated)
        srv.signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not os.path.exists(self.log) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(os.path.exists(self.log), "SIGUSR1 did not reopen the log")
        time.sleep(0.05)
        self.get_all([(request("GET", "/plaintext?phase=new&i=%d" % i), "GET")
                      for i in range(10)], c)                 # same connection, same worker
        c2 = self.conn()
        self.get_all([(request("GET", "/json?phase=new&i=c2"), "GET")], c2)
        new, _ = wait_lines(self.log, 11)
        time.sleep(0.2)
        new, old = read_lines(self.log), read_lines(rotated)
        self.assertEqual(len(new), 11, new)
        self.assertTrue(all(b"phase=new" in l for l in new), new)
        self.assertEqual(len(old), 10, old)
        self.assertTrue(all(b"phase=old" in l for l in old), old)
        self.assertTrue(srv.alive())
        # a second rotation works the same way
        os.rename(self.log, self.log + ".2")
        srv.signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not os.path.exists(self.log) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.get_all([(request("GET", "/plaintext?phase=third"), "GET")], c)
        third, _ = wait_lines(self.log, 1)
        self.assertEqual(len(third), 1)
        self.assertIn(b"phase=third", third[0])


    def test_sighup_reopens_the_file_too(self):
        # a reload reopens the log as SIGUSR1 does (logrotate's postrotate may send either)
        srv = self.start()
        c = self.conn()
        self.get_all([(request("GET", "/plaintext?phase=old"), "GET")], c)
        wait_lines(self.log, 1)
        os.rename(self.log, self.log + ".1")
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not os.path.exists(self.log) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(os.path.exists(self.log), "SIGHUP did not reopen the log")
        self.get_all([(request("GET", "/plaintext?phase=new"), "GET")], c)
        new, _ = wait_lines(self.log, 1)
        self.assertTrue(all(b"phase=new" in l for l in new), new)
        self.assertEqual(len(read_lines(self.log + ".1")), 1)


class Stdout(ServerTestCase):
    SERVER_ARGS = ("--workers", "1", "--access-log", "-", "--access-log-format", "common")

    def test_lines_go_to_stdout_and_sigusr1_is_harmless(self):
        c = self.conn()
        c.send(request("GET", "/plaintext?to=stdout"))
        self.assertEqual(c.read_response().status, 200)
        self.server.signal(signal.SIGUSR1)          # "-": nothing to reopen
        c.send(request("GET", "/json?to=stdout"))
        self.assertEqual(c.read_response().status, 200)
        deadline = time.monotonic() + FLUSH_WITHIN + 2
        while time.monotonic() < deadline:
            lines = [l for l in self.server.stderr_text().splitlines() if "to=stdout" in l]
            if len(lines) == 2:
                break
            time.sleep(0.05)
        self.assertEqual(len(lines), 2, self.server.stderr_text())
        for l in lines:
            self.assertRegex(l, COMMON)
        self.assertTrue(self.server.alive())


class StalledReader(ServerTestCase):
    """The log is a FIFO whose reader never reads: the worker must keep answering, and the
    lines it cannot write are counted in /metrics rather than silently lost."""
    SERVER_ARGS = ("--workers", "1", "--access-log-format", "common")

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.fifo = os.path.join(self.tmp, "log.fifo")
        os.mkfifo(self.fifo)
        # a reader must exist for the server's open() to return; it never reads
        self.reader = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.SERVER_ARGS = self.SERVER_ARGS + ("--access-log", self.fifo)
        super().setUp()

    def tearDown(self):
        super().tearDown()
        os.close(self.reader)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def dropped(self):
        return metrics(self.port)["zerohttp_access_log_dropped_bytes_total"]

    def test_worker_keeps_answering_and_counts_what_it_drops(self):
        self.assertEqual(self.dropped(), 0)
        c = self.conn()
        path = "/plaintext?" + "x" * 200           # ~300-byte lines: 64 KiB pipe full at ~220
        for _ in range(10):
            c.send(request("GET", path) * 200)
            for _ in range(200):
                self.assertEqual(c.read_response().body, HELLO)
        deadline = time.monotonic() + FLUSH_WITHIN + 3
        while self.dropped() == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        # 2,000 lines of ~300 bytes, of which a 64 KiB pipe holds at most ~220
        self.assertGreater(self.dropped(), 400_000)
        self.assertTrue(self.server.alive())


class NoAccessLog(ServerTestCase):
    SERVER_ARGS = ("--workers", "1")

    def test_sigusr1_without_a_log_is_ignored(self):
        # logrotate's postrotate `kill -USR1` may reach a server started without
        # --access-log: its default action (terminate) must not stop the server
        c = self.conn()
        c.send(request("GET", "/healthz"))
        self.assertEqual(c.read_response().body, b"ok\n")
        for _ in range(3):
            self.server.signal(signal.SIGUSR1)
        time.sleep(0.2)
        self.assertTrue(self.server.alive(), "SIGUSR1 stopped the server: %s"
                        % self.server.stderr_text())
        c.send(request("GET", "/healthz"))
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        fresh = self.conn()
        fresh.send(request("GET", "/healthz"))
        self.assertEqual(fresh.read_response().body, b"ok\n")


class BadFlags(unittest.TestCase):
    def run_bin(self, *args):
        from harness import server_bin
        return subprocess.run([server_bin(), "--port", "0"] + list(args),
                              capture_output=True, timeout=10)

    def test_unknown_format_and_unwritable_path(self):
        r = self.run_bin("--access-log", "-", "--access-log-format", "apache")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"common, combined or json", r.stderr)
        r = self.run_bin("--access-log", "/nonexistent-dir/x/access.log")
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"access-log", r.stderr)


@unittest.skipUnless(shutil.which("strace"), "strace not installed")
class SyscallAudit(AccessLogCase):
    REQUESTS = 1000

    def test_thousand_requests_far_fewer_writes(self):
        from harness import server_bin
        port = free_port()
        trace = os.path.join(self.dir, "strace.out")
        # spawn: strace and the server it traces are killed by PID even if this test errors
        proc = self.spawn(["strace", "-f", "-y", "-o", trace, "-e", "trace=write",
                           server_bin(), "--port", str(port), "--address", "127.0.0.1",
                           "--demo"]
                          + self.log_args(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            conns = [self.conn(port) for _ in range(4)]
            done = 0
            while done < self.REQUESTS:
                for c in conns:
                    c.send(b"".join(request("GET", "/plaintext?s=%d" % (done + i))
                                    for i in range(25)))
                    done += 25
                for c in conns:
                    for _ in range(25):
                        self.assertEqual(c.read_response().status, 200)
            self.assertEqual(done, self.REQUESTS)
        finally:
            stop_traced(proc, 30)
        with open(trace) as f:
            calls = [l for l in f if re.search(r"\bwrite\(\d+<[^>]*/access\.log>", l)]
        lines = read_lines(self.log)
        print("\n      %d requests under strace: %d log lines, %d write() calls on the log"
              % (self.REQUESTS, len(lines), len(calls)))
        self.assertEqual(len(lines), self.REQUESTS)
        self.assertGreaterEqual(len(calls), 1)
        self.assertLessEqual(len(calls), self.REQUESTS // 20, "one write per few lines at most")


@unittest.skipUnless(os.environ.get("ZH_SHIM"), "ZH_SHIM not set (no malloc-counting shim)")
class ZeroAlloc(AccessLogCase):
    WARMUP = 2000
    MEASURED = 2000

    def count(self):
        return malloc_calls(self.server.pid, self.count_file)

    def drive(self, conns, total, tag):
        mix = [("GET", "/plaintext", b"", 200), ("GET", "/json", b"", 200),
               ("POST", "/echo", b"y" * 100, 200), ("HEAD", "/plaintext", b"", 200),
               ("GET", "/missing", b"", 404)]
        done = 0
        while done < total:
            pending = []
            for c in conns:
                batch = []
                for i in range(20):
                    method, path, body, status = mix[(done + i) % len(mix)]
                    hdrs = [("User-Agent", "za/%d" % i), ("Referer", "http://r/%s" % tag)]
                    batch.append((request(method, "%s?%s=%d" % (path, tag, done + i), hdrs,
                                          body), method, status))
                c.send(b"".join(b[0] for b in batch))
                pending.append((c, batch))
                done += 20
            for c, batch in pending:
                for _, method, status in batch:
                    self.assertEqual(c.read_response(method).status, status)
        return done

    def run_zero_alloc(self, fmt):
        self.FORMAT = fmt
        self.count_file = os.path.join(self.dir, "malloc-count")
        self.start(env={"LD_PRELOAD": os.path.abspath(os.environ["ZH_SHIM"]),
                        "ZH_MALLOC_COUNT_FILE": self.count_file})
        conns = [self.conn() for _ in range(4)]
        self.drive(conns, self.WARMUP, "warm")
        time.sleep(1.5)     # every worker has written its buffer on the timer at least once
        before = self.count()
        n = self.drive(conns, self.MEASURED, "run")
        time.sleep(1.5)     # ... and again, for the measured lines
        after = self.count()
        print("\n      access log (%s): %d requests, malloc-family calls delta=%d"
              % (fmt, n, after - before))
        self.assertEqual(after - before, 0)
        self.assertEqual(len(read_lines(self.log)), self.WARMUP + self.MEASURED)

    def test_combined_no_allocation(self):
        self.run_zero_alloc("combined")

    def test_json_no_allocation(self):
        self.run_zero_alloc("json")


if __name__ == "__main__":
    unittest.main()
