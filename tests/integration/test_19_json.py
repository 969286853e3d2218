"""19. The zh_json writer, checked by a real parser (python3's json) and byte for byte against
an encoder written here: every byte value, control characters, valid and invalid UTF-8 (each
maximal ill-formed subpart becomes one U+FFFD, Python's rule; STRICT refuses it), HTML
escaping, raw fragments, shortest round-trip doubles (bit-exact), 64-bit integers, the depth
limit, misuse (a 500 while nothing was sent; a cut, never a silently shortened document,
once the head has left), and documents that outgrow the 16 KiB send area (chunked, checked
by a strict raw-socket parser and by curl; close-delimited for HTTP/1.0), written by the
handler or by a producer.

The server is tests/json_server.c (ZH_JSON_SERVER; default: tests/json_server next to ZH_BIN).
"""
import json
import math
import os
import random
import re
import select
import struct
import subprocess
import tempfile
import time

from harness import (READY_TIMEOUT, WRAP, REPO, Closed, ProtocolError, Response, Server,
                     ServerError, ServerTestCase, _die_with_parent, request, server_bin)

SEND_AREA = 16384
ISE = b"Internal Server Error\n"

# the pattern of /big, /bigp and /misuse?kind=late: keep in sync with tests/json_server.c
UNIT = bytes([
    0x61, 0x62, 0x22, 0x63, 0x5c, 0x64, 0x2f, 0x00, 0x01, 0x1f, 0x7f, 0x0a, 0x09, 0x0d, 0x08,
    0x0c, 0x20, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0x3c, 0x3e, 0x26, 0xe2,
    0x80, 0xa8, 0x78, 0x79, 0x7a, 0xdf, 0xbf])


def json_server_bin():
    path = os.environ.get("ZH_JSON_SERVER")
    if not path:
        path = os.path.join(os.path.dirname(server_bin()), "tests", "json_server")
    if not os.path.isabs(path):
        path = os.path.join(REPO, path)
    return path


class JsonServer(Server):
    """tests/json_server PORT=0: the port it bound is read from its first stdout line."""

    def start(self):
        path = json_server_bin()
        if not os.access(path, os.X_OK):
            raise ServerError("no json_server at %s (build it: make %s, or set ZH_JSON_SERVER)"
                              % (path, os.path.relpath(path, REPO)))
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
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
                raise ServerError("json_server printed no port within %.1fs: %s"
                                  % (READY_TIMEOUT, self.stderr_text()))
            b = os.read(self.proc.stdout.fileno(), 1)
            if not b:
                self._kill()
                raise ServerError("json_server exited during startup with %r: %s"
                                  % (self.proc.wait(5), self.stderr_text()))
            line += b
        m = re.fullmatch(rb"port (\d+)\n", line)
        if not m:
            self._kill()
            raise ServerError("json_server printed %r" % line)
        self.port = int(m.group(1))
        return self

    def stop(self):
        problems = super().stop()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        return problems


# ------------------------------------------------------------------------------------------
# The expected encoding: quote and backslash escaped, \b \f \n \r \t short, other controls as
# \u00xx, everything else (DEL, '/', non-ASCII) as UTF-8; with HTML also < > & U+2028 U+2029.

_ESC = {i: "\\u%04x" % i for i in range(0x20)}
_ESC.update({0x22: '\\"', 0x5c: "\\\\", 0x08: "\\b", 0x0c: "\\f", 0x0a: "\\n", 0x0d: "\\r",
             0x09: "\\t"})
_ESC_HTML = dict(_ESC)
_ESC_HTML.update({c: "\\u%04x" % c for c in (0x3c, 0x3e, 0x26, 0x2028, 0x2029)})


def text_of(b):
    """What the writer must make of the bytes b: Python's replacement rule."""
    return b.decode("utf-8", "replace")


def enc(b, html=False):
    """The exact JSON string the writer must produce for the bytes b."""
    return ('"' + text_of(b).translate(_ESC_HTML if html else _ESC) + '"').encode("utf-8")


def str_doc(b, html=False):
    e = enc(b, html)
    return b'{"s":' + e + b',"k":{' + e + b':1},"a":[' + e + b"," + e + b"]}"


def _lower_u(raw):
    return re.sub(rb"\\u[0-9A-Fa-f]{4}", lambda m: m.group(0).lower(), raw)


def parse(raw, **kw):
    """json.loads of a body that must be strict UTF-8 (json.loads(bytes) would accept a lone
    surrogate through 'surrogatepass')."""
    return json.loads(raw.decode("utf-8"), **kw)


def pattern_str(i, length):
    off = (7 * i) % len(UNIT)
    reps = (off + length) // len(UNIT) + 1
    return (UNIT * reps)[off:off + length]


def big_doc(n, length):
    """The exact bytes of /big?n=N&len=L (and /bigp)."""
    cache = {}
    parts = []
    for i in range(n):
        off = (7 * i) % len(UNIT)
        if off not in cache:
            cache[off] = enc(pattern_str(i, length))
        parts.append(cache[off])
    return b"[" + b",".join(parts) + b"]"


def sig_digits(num):
    m = re.fullmatch(r"-?(\d+)(?:\.(\d+))?(?:[eE][+-]?\d+)?", num)
    assert m, num
    return max(len((m.group(1) + (m.group(2) or "")).lstrip("0").rstrip("0")), 1)


def bits_of(x):
    return struct.pack("<d", x)


def curl(port, path, *extra):
    out = subprocess.run(["curl", "-sS", "--max-time", "60", *extra,
                          "http://127.0.0.1:%d%s" % (port, path)], capture_output=True,
                         timeout=90)
    return out.returncode, out.stdout, out.stderr


class Framed:
    """A response read with a strict view of its framing."""

    def __init__(self, resp, chunks, terminated, closed):
        self.resp = resp
        self.status = resp.status
        self.body = resp.body
        self.chunks = chunks          # chunk sizes (chunked framing only)
        self.terminated = terminated  # complete per its framing
        self.closed = closed          # the server closed the connection after it

    def header(self, name):
        return self.resp.header(name)

    def __repr__(self):
        return "<Framed %d terminated=%s closed=%s chunks=%d %r>" % (
            self.status, self.terminated, self.closed, len(self.chunks), self.resp)


def read_framed(c, expect_close=False):
    """Reads one response: chunked bodies chunk by chunk (size lines must be bare hex; each
    chunk's data must be followed by CRLF), Content-Length bodies exactly, others until
    close. A body cut short is returned with terminated False; bytes that break the framing
    raise ProtocolError."""
    version, status, reason, headers, raw = c.read_head()
    resp = Response(version, status, reason, headers, b"", raw)
    te, cl = resp.header("Transfer-Encoding"), resp.header_all("Content-Length")
    body, chunks, terminated = bytearray(), [], True
    if te is not None:
        if te != "chunked" or cl:
            raise ProtocolError("Transfer-Encoding %r with Content-Length %r" % (te, cl))
        while True:
            try:
                line = c.read_until(b"\r\n")
            except Closed:
                if not re.fullmatch(rb"[0-9a-fA-F]*\r?", bytes(c.buf)):
                    raise ProtocolError("unframed bytes after %d body bytes in %d chunks: %r"
                                        % (len(body), len(chunks), bytes(c.buf[:80])))
                terminated = False
                break
            if not re.fullmatch(rb"[0-9a-fA-F]{1,16}\r\n", line):
                raise ProtocolError("bad chunk size line after %d body bytes in %d chunks: %r"
                                    % (len(body), len(chunks), line[:80]))
            size = int(line, 16)
            if size == 0:
                if c.read_until(b"\r\n") != b"\r\n":
                    raise ProtocolError("trailer fields after the last chunk")
                break
            try:
                body += c.read_exact(size)
            except Closed:
                body += c.buf  # a chunk cut short: its bytes so far are still body bytes
                c.buf.clear()
                terminated = False
                break
            chunks.append(size)
            try:
                crlf = c.read_exact(2)
            except Closed:
                terminated = False
                break
            if crlf != b"\r\n":
                raise ProtocolError("chunk of %d bytes followed by %r, not CRLF (after %d "
                                    "body bytes in %d chunks)"
                                    % (size, crlf + bytes(c.buf[:60]), len(body), len(chunks)))
    elif cl:
        if len(cl) != 1 or not cl[0].isdigit():
            raise ProtocolError("bad Content-Length %r" % cl)
        try:
            body += c.read_exact(int(cl[0]))
        except Closed:
            body += c.buf
            c.buf.clear()
            terminated = False
    else:
        body += c.read_until_close()
    resp.body = bytes(body)
    closed = c.eof or (expect_close and c.closed_by_peer(5.0))
    return Framed(resp, chunks, terminated, closed)


class JsonWriter(ServerTestCase):
    def start_server(self, args=(), env=None):
        srv = JsonServer(args, env).start()
        self._servers.append(srv)
        return srv

    def exchange(self, method, path, body=b"", c=None, headers=(), version="HTTP/1.1",
                 wait=0.0):
        """One request; wait: seconds before the first read (a client slower than the
        server)."""
        c = c or self.conn()
        c.send(request(method, path, list(headers), body, version=version))
        if wait:
            time.sleep(wait)
        return read_framed(c, expect_close=version == "HTTP/1.0")

    def post_str(self, c, data, flags=None):
        path = "/str" if flags is None else "/str?flags=" + flags
        c.send(request("POST", path, [("Content-Length", str(len(data)))], data))
        return read_framed(c)

    def assertJson(self, r, raw=None, framing=None, msg=""):
        """A complete 200 application/json; raw: the exact body; framing: 'length',
        'chunked' or 'close'."""
        self.assertEqual(r.status, 200, "%s %r" % (msg, r))
        self.assertTrue(r.terminated, "%s body cut short: %r" % (msg, r))
        self.assertEqual(r.header("Content-Type"), "application/json", msg)
        if framing == "length":
            self.assertIsNone(r.header("Transfer-Encoding"), msg)
            self.assertEqual(r.header("Content-Length"), str(len(r.body)), msg)
        elif framing == "chunked":
            self.assertEqual(r.header("Transfer-Encoding"), "chunked", msg)
            self.assertIsNone(r.header("Content-Length"), msg)
        elif framing == "close":
            self.assertIsNone(r.header("Transfer-Encoding"), msg)
            self.assertIsNone(r.header("Content-Length"), msg)
            self.assertTrue(r.closed, msg)
        if raw is not None and r.body != raw:
            self.assertEqual(_lower_u(r.body), _lower_u(raw),
                             "%s: %d bytes, want %d; first difference at %d" % (
                                 msg, len(r.body), len(raw), next(
                                     (i for i, (a, b) in enumerate(zip(r.body, raw)) if a != b),
                                     min(len(r.body), len(raw)))))

    def assertStr(self, r, data, html=False, msg=""):
        """The /str document for data: exact bytes and what json makes of them."""
        self.assertJson(r, str_doc(data, html), msg=msg)
        doc = parse(r.body)
        want = text_of(data)
        self.assertEqual(doc, {"s": want, "k": {want: 1}, "a": [want, want]}, msg)

    def assert500(self, r, msg=""):
        """A 500 whose body is the library's, not a partial document."""
        self.assertEqual(r.status, 500, "%s %r" % (msg, r))
        self.assertTrue(r.terminated, msg)
        self.assertEqual(r.body, ISE, msg)
        self.assertNotEqual(r.header("Content-Type"), "application/json", msg)

    def assertCut(self, r, prefix_of, min_len=SEND_AREA, msg=""):
        """A response whose head left before the error: status 200, framing never
        completed, the connection closed, the body a strict prefix of prefix_of."""
        self.assertEqual(r.status, 200, "%s %r" % (msg, r))
        self.assertFalse(r.terminated, "%s: the stream was completed: %r" % (msg, r))
        self.assertTrue(r.closed, "%s: connection not closed" % msg)
        self.assertGreaterEqual(len(r.body), min_len, msg)
        self.assertLessEqual(len(r.body), len(prefix_of), msg)
        self.assertEqual(r.body, prefix_of[:len(r.body)], msg)

    # -- strings ----------------------------------------------------------------------------

    def test_every_byte_value(self):
        c = self.conn()
        for b in range(256):
            data = bytes([b])
            self.assertStr(self.post_str(c, data), data, msg="byte %02x" % b)
            # and in the middle of a run, at both ends of a 16-byte block
            data = b"0123456789abcde" + bytes([b]) + b"x" * 17 + bytes([b])
            self.assertStr(self.post_str(c, data), data, msg="byte %02x in a run" % b)
        data = bytes(range(256))
        self.assertStr(self.post_str(c, data), data, msg="all bytes")
        self.assertStr(self.post_str(c, b""), b"", msg="empty")
        # no raw control byte ever leaves, and the short escapes are used where they exist
        r = self.post_str(c, bytes(range(32)) + b'"\\/')
        self.assertFalse(re.search(rb"[\x00-\x1f]", r.body), r.body)
        self.assertIn(b'\\b\\t\\n\\u000b\\f\\r', _lower_u(r.body))
        self.assertIn(b'\\"\\\\/"', r.body)

    # (name, bytes): valid sequences at the edges of each length, and invalid ones
    VALID_UTF8 = [
        ("ascii", b"plain ASCII text, no escapes at all"),
        ("U+007F", b"\x7f"), ("U+0080", b"\xc2\x80"), ("U+00E9", "é".encode()),
        ("U+07FF", b"\xdf\xbf"), ("U+0800", b"\xe0\xa0\x80"), ("U+D7FF", b"\xed\x9f\xbf"),
        ("U+E000", b"\xee\x80\x80"), ("U+FFFD", b"\xef\xbf\xbd"), ("U+FFFF", b"\xef\xbf\xbf"),
        ("U+10000", b"\xf0\x90\x80\x80"), ("U+10FFFF", b"\xf4\x8f\xbf\xbf"),
        ("U+2028/9", "\u2028\u2029".encode()), ("emoji", "😀👍🏽🇫🇷 €ñ中文".encode()),
        ("mixed", "a\"b\\c\n\u0001é€😀/".encode()),
    ]
    INVALID_UTF8 = [
        ("lone continuation 80", b"\x80"), ("lone continuation bf", b"\xbf"),
        ("continuations", b"\x80\x81\x82\xbf"), ("lead c0", b"\xc0"),
        ("overlong c0 af", b"\xc0\xaf"), ("overlong c1 bf", b"\xc1\xbf"),
        ("overlong e0 80 af", b"\xe0\x80\xaf"), ("overlong e0 9f bf", b"\xe0\x9f\xbf"),
        ("overlong f0 80 80 af", b"\xf0\x80\x80\xaf"), ("overlong f0 8f bf bf", b"\xf0\x8f\xbf\xbf"),
        ("surrogate ed a0 80", b"\xed\xa0\x80"), ("surrogate ed bf bf", b"\xed\xbf\xbf"),
        ("surrogate pair", b"\xed\xa0\xbd\xed\xb8\x80"),
        ("above U+10FFFF f4 90 80 80", b"\xf4\x90\x80\x80"), ("f5", b"\xf5\x80\x80\x80"),
        ("f7", b"\xf7\xbf\xbf\xbf"), ("f8", b"\xf8\x88\x80\x80\x80"), ("fc", b"\xfc\x84\x80\x80\x80\x80"),
        ("fe", b"\xfe"), ("ff", b"\xff"), ("truncated c3 at end", b"a\xc3"),
        ("truncated e2 82 at end", b"a\xe2\x82"), ("truncated f0 9f 98 at end", b"a\xf0\x9f\x98"),
        ("truncated e2 82 then ascii", b"\xe2\x82A"), ("truncated f0 9f then 2-byte", b"\xf0\x9f\xc3\xa9"),
        ("lead then lead", b"\xc3\xc3\xa9"), ("e0 a0 then end", b"\xe0\xa0"),
        ("ed a0 alone", b"\xed\xa0"), ("f4 8f bf then ascii", b"\xf4\x8f\xbfz"),
        ("latin-1 text", "café naïve".encode("latin-1")),
    ]

    def test_utf8_valid_and_invalid(self):
        c = self.conn()
        for name, data in self.VALID_UTF8 + self.INVALID_UTF8:
            valid = (name, data) in self.VALID_UTF8
            try:
                data.decode("utf-8")
                self.assertTrue(valid, "%s is valid UTF-8" % name)
            except UnicodeDecodeError:
                self.assertFalse(valid, "%s is not valid UTF-8" % name)
            # at every offset within and across a 16-byte block, with escapes next to it
            for pre in range(0, 34, 3):
                case = b"p" * pre + data + b'"\x01' + data + b"q" * (pre % 7)
                self.assertStr(self.post_str(c, case), case, msg="%s at %d" % (name, pre))
            for flags in ("strict", "strict,html", "html,strict"):
                r = self.post_str(c, data, flags)
                if valid:
                    self.assertStr(r, data, html="html" in flags, msg="%s %s" % (name, flags))
                else:
                    self.assert500(r, "%s %s" % (name, flags))
            self.assertStr(self.post_str(c, data, ""), data, msg="%s, empty flags" % name)

    def test_random_strings_against_python(self):
        rng = random.Random(0x19)
        pieces = [bytes([b]) for b in range(256)] + [
            "é".encode(), "€".encode(), "😀".encode(), "\u2028".encode(), b"\xed\xa0\x80",
            b"\xe0\x80\xaf", b"\xc0\xaf", b"\xf4\x90\x80\x80", b'"', b"\\", b"</", b"&"]
        ascii_run = bytes(range(0x20, 0x7f))
        c = self.conn()
        n_strict = 0
        for i in range(3000):
            parts = []
            for _ in range(rng.choice((0, 1, 2, 5, 10, 30))):
                if rng.random() < 0.3:
                    k = rng.randrange(1, 40)
                    start = rng.randrange(len(ascii_run) - k)
                    parts.append(ascii_run[start:start + k])
                else:
                    parts.append(rng.choice(pieces))
            data = b"".join(parts)
            mode = i % 4
            if mode == 0:
                self.assertStr(self.post_str(c, data), data, msg="fuzz %d %r" % (i, data))
            elif mode == 1:
                self.assertStr(self.post_str(c, data, "html"), data, html=True,
                               msg="fuzz html %d %r" % (i, data))
            else:
                flags = "strict" if mode == 2 else "strict,html"
                r = self.post_str(c, data, flags)
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError:
                    self.assert500(r, "fuzz %s %d %r" % (flags, i, data))
                    n_strict += 1
                    continue
                self.assertStr(r, data, html=mode == 3, msg="fuzz %s %d %r" % (flags, i, data))
        self.assertGreater(n_strict, 100)  # the fuzz did reach invalid input under STRICT

    def test_html_escaping(self):
        original = "</script><b>&amp;\u2028|\u2029'\"</"
        r = self.exchange("GET", "/html")
        self.assertJson(r, b'{"s":' + enc(original.encode(), True) + b"," +
                        enc(original.encode(), True) + b":1}", framing="length")
        for bad in (b"<", b">", b"&", "\u2028".encode(), "\u2029".encode()):
            self.assertNotIn(bad, r.body)
        self.assertEqual(parse(r.body), {"s": original, original: 1})
        # every byte value, and the same without the flag keeps them raw
        c = self.conn()
        data = bytes(range(256)) + "\u2028\u2029".encode() + b"</script>"
        r = self.post_str(c, data, "html")
        self.assertStr(r, data, html=True)
        self.assertFalse(re.search(rb"[<>&]|\xe2\x80[\xa8\xa9]", r.body), r.body)
        r = self.post_str(c, data)
        self.assertStr(r, data)
        self.assertIn(b"</script>", r.body)
        self.assertIn("\u2028".encode(), r.body)

    def test_bad_flags_are_400(self):
        c = self.conn()
        self.assertEqual(self.post_str(c, b"x", "strikt").status, 400)
        self.assertStr(self.post_str(c, b"x", "strict,,html"), b"x", html=True)

    # -- every value type, raw fragments ----------------------------------------------------

    def test_all_value_types(self):
        r = self.exchange("GET", "/all")
        raw = (b'{"t":true,"f":false,"t2":true,"n":null,"":"","eo":{},"ea":[],'
               b'"nest":[{"x":[[],{},null]},-7,7,1.5,-0,100,"s"],"dup":1}')
        # doubles: only the value is fixed, not its spelling (-0 or -0.0, 100 or 1e2)
        doc = parse(r.body, parse_int=float)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(doc, parse(raw, parse_int=float))
        self.assertEqual(bits_of(doc["nest"][4]), bits_of(-0.0))
        self.assertEqual(r.body[:r.body.index(b"1.5")], raw[:raw.index(b"1.5")])
        self.assertJson(r, framing="length")

    def test_raw_fragments(self):
        r = self.exchange("GET", "/raw")
        ints = []
        n = 1
        while n + 12 < 40 * 1024:
            ints.append(n)
            n += len("%d," % n)
        big = "[" + ",".join(str(v) for v in ints) + "]"
        want = ('[{"a":[1,2,{"b":null}],"c":"\\u00e9"},123,"x",' + big +
                ',{"r":[true,false]}]').encode()
        self.assertJson(r, want, framing="chunked")  # 40 KiB: past the send area
        self.assertEqual(parse(r.body)[0], {"a": [1, 2, {"b": None}], "c": "é"})

    # -- depth -------------------------------------------------------------------------------

    def test_depth_limit(self):
        c = self.conn()
        for d in (0, 1, 2, 63, 64):
            c.send(request("GET", "/deep?d=%d" % d))
            r = read_framed(c)
            self.assertJson(r, b"[" * d + b"0" + b"]" * d, framing="length", msg="d=%d" % d)
            v = parse(r.body)
            for _ in range(d):
                self.assertIsInstance(v, list)
                self.assertEqual(len(v), 1)
                v = v[0]
            self.assertEqual(v, 0)
        for d in (65, 66, 200, 1000):
            c.send(request("GET", "/deep?d=%d" % d))
            self.assert500(read_framed(c), "d=%d" % d)
        c.send(request("GET", "/deep?d=64"))  # the connection carries on
        self.assertJson(read_framed(c), b"[" * 64 + b"0" + b"]" * 64)

    # -- misuse ------------------------------------------------------------------------------

    MISUSE = ("value_without_key", "unbalanced_end", "unbalanced_end_after", "unclosed",
              "empty", "two_top", "key_in_array", "key_twice", "end_after_key", "key_at_top",
              "nan", "inf", "ninf", "begin_twice", "strict")

    def test_misuse_is_a_500_with_nothing_sent(self):
        c = self.conn()
        for kind in self.MISUSE:
            c.send(request("GET", "/misuse?kind=" + kind))
            self.assert500(read_framed(c), kind)
            c.send(request("GET", "/misuse?kind=ok"))  # same connection: nothing leaked
            self.assertJson(read_framed(c), b'{"a":1}', framing="length", msg="ok after " + kind)
        # and pipelined, all in one send
        c.send(b"".join(request("GET", "/misuse?kind=" + k) for k in self.MISUSE + ("ok",)))
        for kind in self.MISUSE:
            self.assert500(read_framed(c), "pipelined " + kind)
        self.assertJson(read_framed(c), b'{"a":1}')

    def late_prefix(self):
        """What /misuse?kind=late writes before its error: strings until >= 100 KiB."""
        out = bytearray(b"[")
        i = 0
        while len(out) < 100 * 1024:
            if i:
                out += b","
            out += enc(pattern_str(i, 100))
            i += 1
        return bytes(out)

    def test_error_after_the_head_left_cuts_the_stream(self):
        prefix = self.late_prefix()
        c = self.conn()
        c.send(request("GET", "/misuse?kind=late"))
        r = read_framed(c)
        self.assertEqual(r.header("Transfer-Encoding"), "chunked", r)
        self.assertCut(r, prefix, msg="late")
        self.assertNotIn(b"AFTER", r.body)
        self.assertNotIn(b"\r\n0\r\n\r\n", r.resp.raw_head + bytes(c.buf))

    def test_error_after_the_head_left_http10(self):
        """HTTP/1.0: close-delimited, so the cut shows as a document that does not parse."""
        prefix = self.late_prefix()
        r = self.exchange("GET", "/misuse?kind=late", version="HTTP/1.0")
        self.assertIsNone(r.header("Transfer-Encoding"))
        self.assertIsNone(r.header("Content-Length"))
        self.assertTrue(r.closed)
        self.assertGreaterEqual(len(r.body), SEND_AREA)
        self.assertEqual(r.body, prefix[:len(r.body)])
        self.assertRaises(ValueError, parse, r.body)

    def test_nan_after_the_head_left_cuts_the_stream(self):
        vals = [i * 0.1 + 1e-300 for i in range(3000)]   # ~70 KiB of numbers, then a NaN
        body = "".join("%016x\n" % struct.unpack("<Q", bits_of(v))[0] for v in vals)
        r = self.exchange("POST", "/doubles", (body + "7ff8000000000000\n").encode())
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.terminated, r)
        self.assertTrue(r.closed)
        self.assertGreaterEqual(len(r.body), SEND_AREA)
        full = self.exchange("POST", "/doubles", body.encode())
        self.assertJson(full, framing="chunked")
        prefix = full.body[:-1]  # without the closing bracket
        self.assertEqual(r.body, prefix[:len(r.body)])

    # -- numbers -----------------------------------------------------------------------------

    EXTREME_DOUBLES = [
        0.0, -0.0, 5e-324, -5e-324, 1e-323, 2.2250738585072009e-308, 2.2250738585072014e-308,
        2.225073858507201e-308, 1.7976931348623157e308, -1.7976931348623157e308, 1e21, 1e20,
        1e22, 1e23, 9.999999999999999e22, 1e-7, 1e-6, 1e-5, 1.5e-7, 0.1, 0.2, 0.3, 0.1 + 0.2,
        1 / 3, 2 / 3, 2.0 ** 53, 2.0 ** 53 + 2, 2.0 ** 53 - 1, 2.0 ** 63, 2.0 ** 64, 2.0 ** 1023,
        2.0 ** -1022, 2.0 ** -1074, 1.0, -1.0, 100.0, 123456789012345680.0, 1e15, 1e16, 1e17,
        0.000001, 123.456, 9007199254740993.0, 5e-310, 4.9406564584124654e-324, math.pi,
        math.e, 1.7976931348623155e308, 2.2250738585072011e-308, 1.2345678901234567e-300,
        299792458.0, 6.02214076e23, 1.602176634e-19, 0.5, 0.25, 1e300, 1e-300, 3.0e-44,
        8.41e21, 5.0e-324 * 3, 1.0 + 2.0 ** -52, 1.0 - 2.0 ** -53, 4.35, 2.5e-5, 9.5, 0.95,
    ]
    NONFINITE_BITS = ("7ff8000000000000", "fff8000000000000", "7ff0000000000000",
                      "fff0000000000000", "7ff0000000000001", "7fffffffffffffff",
                      "ffffffffffffffff")

    def check_doubles(self, c, values, msg):
        body = "".join("%016x\n" % struct.unpack("<Q", bits_of(v))[0] for v in values)
        c.send(request("POST", "/doubles", [("Content-Length", str(len(body)))], body))
        r = read_framed(c)
        self.assertJson(r, msg=msg)
        doc = parse(r.body, parse_int=float)   # "-0" is then -0.0, "100" is 100.0
        self.assertEqual(len(doc), len(values), msg)
        texts = r.body.decode()[1:-1].split(",") if values else []
        self.assertEqual(len(texts), len(values), msg)
        for v, got, text in zip(values, doc, texts):
            self.assertEqual(bits_of(got), bits_of(v), "%s: %r sent as %r" % (msg, v, text))
            self.assertLessEqual(sig_digits(text), sig_digits(repr(v)),
                                 "%s: %r sent as %r, longer than repr" % (msg, v, text))
        return r

    def test_doubles_round_trip_shortest(self):
        c = self.conn()
        r = self.check_doubles(c, self.EXTREME_DOUBLES, "extremes")
        self.assertIsNotNone(r.header("Content-Length"))
        self.check_doubles(c, [], "empty")
        rng = random.Random(0x1919)
        values = []
        while len(values) < 20000:
            bits = rng.getrandbits(64)
            if (bits >> 52) & 0x7ff == 0x7ff:
                continue  # NaN and infinities: refused, see below
            values.append(struct.unpack("<d", struct.pack("<Q", bits))[0])
        # subnormals, integers, short decimals, powers of ten and two
        values += [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(52)))[0]
                   for _ in range(1000)]
        values += [float(rng.randrange(-2 ** 60, 2 ** 60)) for _ in range(1000)]
        values += [float("%d.%de%d" % (rng.randrange(10), rng.randrange(1000),
                                       rng.randrange(-320, 300))) for _ in range(1000)]
        values += [float("1e%d" % k) for k in range(-323, 309)]
        values += [2.0 ** k for k in range(-1074, 1024)]
        # short decimals below 2^40 (prices, measurements), their neighbours one ulp away,
        # and the edges of 2^40: a fast path may serve these without the general algorithm
        short = []
        for _ in range(3000):
            k = rng.randrange(5)
            m = rng.randrange(1 << rng.randrange(1, 51))
            short.append(float("%s%d.%s" % (rng.choice("-+"), m // 10 ** k,
                                            str(m % 10 ** k).zfill(k) or "0")))
        values += short
        values += [math.nextafter(v, math.inf) for v in short[:1000]]
        values += [math.nextafter(v, -math.inf) for v in short[:1000]]
        for base in (2.0 ** 40, 2.0 ** 40 - 1, 2.0 ** 40 - 0.001, 2.0 ** 40 - 0.5, 2.0 ** 40 + 1,
                     2.0 ** 40 / 1000, 0.0005, 0.001, 0.0015, 0.9995, 0.9999, 999.9995):
            for v in (base, math.nextafter(base, 0), math.nextafter(base, math.inf)):
                values += [v, -v]
        for i in range(0, len(values), 5000):
            self.check_doubles(c, values[i:i + 5000], "batch at %d" % i)

    def test_nonfinite_doubles_are_a_500(self):
        c = self.conn()
        for bits in self.NONFINITE_BITS:
            for body in (bits + "\n", "3ff0000000000000\n" + bits + "\n4000000000000000\n"):
                c.send(request("POST", "/doubles", [("Content-Length", str(len(body)))], body))
                self.assert500(read_framed(c), body)

    def test_integers_exact(self):
        rng = random.Random(0x64)
        signed = [0, -1, 1, -(2 ** 63), 2 ** 63 - 1, -(2 ** 63) + 1, 2 ** 63 - 2]
        signed += [s * (10 ** k + d) for k in range(19) for d in (-1, 0, 1) for s in (1, -1)
                   if -(2 ** 63) <= s * (10 ** k + d) < 2 ** 63]
        unsigned = [0, 1, 2 ** 64 - 1, 2 ** 64 - 2, 2 ** 63, 2 ** 63 - 1, 2 ** 32, 2 ** 32 - 1]
        unsigned += [10 ** k + d for k in range(20) for d in (-1, 0, 1) if 0 <= 10 ** k + d < 2 ** 64]
        lines = [("i", v) for v in signed] + [("u", v) for v in unsigned]
        for _ in range(5000):
            bits = rng.randrange(1, 65)
            if rng.random() < 0.5:
                lines.append(("i", rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1))))
            else:
                lines.append(("u", rng.randrange(0, 2 ** bits)))
        rng.shuffle(lines)
        body = "".join("%s %d\n" % kv for kv in lines)
        r = self.exchange("POST", "/ints", body.encode())
        want = ("[" + ",".join(str(v) for _, v in lines) + "]").encode()
        self.assertJson(r, want, framing="chunked")
        self.assertEqual(parse(r.body), [v for _, v in lines])
        r = self.exchange("POST", "/ints", b"i -9223372036854775808\nu 18446744073709551615\n")
        self.assertJson(r, b"[-9223372036854775808,18446744073709551615]", framing="length")
        self.assertEqual(self.exchange("POST", "/ints", b"i 9223372036854775808\n").status, 400)

    # -- documents bigger than the send area --------------------------------------------------

    def test_framing_follows_the_size(self):
        """Documents just under and over the send area: Content-Length while the whole body
        fits, chunked once it outgrows it; exact either way."""
        c = self.conn()
        seen = set()
        for n in (0, 1, 2, 10, 50, 100, 140, 150, 160, 170, 200, 400, 1000):
            r = self.exchange("GET", "/big?n=%d&len=100" % n, c=c)
            want = big_doc(n, 100)
            self.assertJson(r, want, msg="n=%d" % n)
            framing = "chunked" if r.header("Transfer-Encoding") else "length"
            seen.add(framing)
            if len(want) <= SEND_AREA // 2:
                self.assertEqual(framing, "length", "n=%d: %d bytes" % (n, len(want)))
            if len(want) > SEND_AREA:
                self.assertEqual(framing, "chunked", "n=%d: %d bytes" % (n, len(want)))
            self.assertEqual(len(parse(r.body)), n)
        self.assertEqual(seen, {"length", "chunked"})
        # one string crossing the area's end, at every alignment of its escapes
        for length in range(9000, 9000 + 2 * len(UNIT)):
            r = self.exchange("GET", "/big?n=2&len=%d" % length, c=c)
            self.assertJson(r, big_doc(2, length), msg="len=%d" % length)

    def test_big_document_from_the_handler(self):
        """~400 KiB written by the handler in one go: chunked, exact, by raw socket and by
        curl."""
        n, length = 2500, 100
        want = big_doc(n, length)
        self.assertGreater(len(want), 20 * SEND_AREA)
        r = self.exchange("GET", "/big?n=%d&len=%d" % (n, length))
        self.assertJson(r, want, framing="chunked")
        self.assertGreater(len(r.chunks), 1)
        self.assertEqual(parse(r.body), [text_of(pattern_str(i, length)) for i in range(n)])
        rc, out, err = curl(self.port, "/big?n=%d&len=%d" % (n, length))
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, want)

    def test_big_document_from_a_producer(self):
        """~6 MiB from a producer (32 KiB per call): chunked, exact, raw socket and curl; a
        small producer document is chunked too (its head leaves at once)."""
        n, length = 40000, 100
        want = big_doc(n, length)
        r = self.exchange("GET", "/bigp?n=%d&len=%d" % (n, length))
        self.assertJson(r, want, framing="chunked")
        self.assertEqual(len(parse(r.body)), n)
        rc, out, err = curl(self.port, "/bigp?n=%d&len=%d" % (n, length))
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, want)
        c = self.conn()
        for n in (0, 1, 3):
            r = self.exchange("GET", "/bigp?n=%d&len=10" % n, c=c)
            self.assertJson(r, big_doc(n, 10), framing="chunked", msg="n=%d" % n)

    def test_http10_close_delimited(self):
        for path in ("/bigp?n=20000&len=100", "/big?n=2500&len=100"):
            n, length = (int(v.split("=")[1]) for v in path.split("?")[1].split("&"))
            for extra in ((), (("Connection", "keep-alive"),)):
                r = self.exchange("GET", path, version="HTTP/1.0", headers=extra)
                self.assertJson(r, big_doc(n, length), framing="close", msg=path)
                self.assertEqual(len(parse(r.body)), n)
        # a small one keeps its Content-Length
        r = self.exchange("GET", "/big?n=3&len=10", version="HTTP/1.0")
        self.assertJson(r, big_doc(3, 10), framing="length")

    def huge_string(self, size):
        """A /str body of size bytes: the pattern (escapes, controls, multibyte UTF-8) with
        a few invalid sequences spread through it."""
        data = bytearray(pattern_str(0, size))
        for pos in range(size // 7, size, size // 5):
            data[pos:pos + 3] = b"\xed\xa0\x80"
        return bytes(data)

    def check_huge_string(self, size):
        data = self.huge_string(size)
        want = str_doc(data)
        c = self.conn(timeout=30)
        r = self.post_str(c, data)
        self.assertJson(r, want, framing="chunked", msg="%d-byte string, raw socket" % size)
        doc = parse(r.body)
        self.assertEqual(doc["s"], text_of(data))
        with tempfile.NamedTemporaryFile() as f:
            f.write(data)
            f.flush()
            rc, out, err = curl(self.port, "/str", "--data-binary", "@" + f.name)
        self.assertEqual(rc, 0, "curl: %d bytes of %d; %r" % (len(out), len(want), err))
        self.assertEqual(out, want)

    def test_huge_string_1m(self):
        self.check_huge_string(1 << 20)

    def test_huge_string_5m(self):
        self.check_huge_string(5 << 20)

    def test_big_document_from_a_producer_slow_client(self):
        """A producer waits for the socket: a client that starts reading late still gets
        the whole document ("however slow the client")."""
        n, length = 20000, 100
        r = self.exchange("GET", "/bigp?n=%d&len=%d" % (n, length), wait=0.3)
        self.assertJson(r, big_doc(n, length), framing="chunked")

    def test_huge_strings_from_a_producer(self):
        """Three 1 MiB strings, one per producer call: each value is bigger than all the
        buffers a response may hold, and a string cannot be split across calls. Read at
        once, then by a client that starts reading late (producers promise to wait for
        it)."""
        n, length = 3, 1 << 20
        want = big_doc(n, length)
        path = "/bigp?n=%d&len=%d" % (n, length)
        r = self.exchange("GET", path, c=self.conn(timeout=30))
        self.assertJson(r, want, framing="chunked", msg="fast client")
        r = self.exchange("GET", path, c=self.conn(timeout=30), wait=0.3)
        self.assertJson(r, want, framing="chunked", msg="slow client")
