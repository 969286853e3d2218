"""16. Static files (zh_static_handler under zerohttpd --root): exact bytes by sendfile, ranges,
conditionals, precompressed variants, MIME types, path safety, truncation, a syscall audit
and zero allocations with a warm cache."""
import gzip
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import WRAP, ServerTestCase, malloc_calls, metrics, request, rss_kib, stop_traced

ROOT = None
OUTSIDE = None
FILES = {}


def setUpModule():
    global ROOT, OUTSIDE
    ROOT = tempfile.mkdtemp(prefix="zh-root-")
    OUTSIDE = tempfile.mkdtemp(prefix="zh-outside-")
    with open(os.path.join(OUTSIDE, "secret.txt"), "wb") as f:
        f.write(b"TOP-SECRET-OUTSIDE-ROOT\n")
    sizes = {"empty.bin": 0, "4k.bin": 4096, "1m.bin": 1 << 20, "100m.bin": 100 << 20}
    for name, size in sizes.items():
        data = os.urandom(size) if size <= (1 << 20) else None
        with open(os.path.join(ROOT, name), "wb") as f:
            if data is not None:
                f.write(data)
            else:
                block = os.urandom(1 << 20)
                h = hashlib.sha256()
                for i in range(size >> 20):
                    chunk = bytes([i & 0xFF]) + block[1:]
                    f.write(chunk)
                    h.update(chunk)
        FILES[name] = hashlib.sha256(data).hexdigest() if data is not None else h.hexdigest()
    with open(os.path.join(ROOT, "page.html"), "w") as f:
        f.write("<h1>page</h1>\n")
    text = b"compress me " * 200
    for name, blob in (("app.js", text), ("app.js.gz", gzip.compress(text)),
                       ("app.js.br", b"BROTLI-PLACEHOLDER-" + text[:50])):
        with open(os.path.join(ROOT, name), "wb") as f:
            f.write(blob)
    for ext in ("css", "json", "svg", "png", "wasm", "woff2", "txt", "mjs", "avif", "pdf"):
        with open(os.path.join(ROOT, "x." + ext), "wb") as f:
            f.write(b"x")
    os.mkdir(os.path.join(ROOT, "dir"))
    with open(os.path.join(ROOT, "dir", "index.html"), "w") as f:
        f.write("dir index\n")
    with open(os.path.join(ROOT, ".env"), "w") as f:
        f.write("DOTFILE\n")
    os.symlink(os.path.join(OUTSIDE, "secret.txt"), os.path.join(ROOT, "escape.txt"))
    os.symlink(OUTSIDE, os.path.join(ROOT, "escape-dir"))
    os.symlink("page.html", os.path.join(ROOT, "inside-link.html"))
    os.mkfifo(os.path.join(ROOT, "pipe"))
    os.mkdir(os.path.join(ROOT, "assets"))
    with open(os.path.join(ROOT, "a-b~c_d.txt"), "w") as f:
        f.write("unreserved\n")
    with open(os.path.join(ROOT, "caf\u00e9.txt"), "w") as f:
        f.write("utf-8 name\n")
    with open(os.path.join(ROOT, "healthz"), "w") as f:
        f.write("FILE-SHADOWED-BY-A-ROUTE\n")
    with open(os.path.join(ROOT, "dated.txt"), "w") as f:
        f.write("dated 1994\n")
    os.utime(os.path.join(ROOT, "dated.txt"), (784111777, 784111777))  # Sun, 06 Nov 1994 08:49:37
    with open(os.path.join(ROOT, "future.txt"), "w") as f:
        f.write("from the future\n")
    future = time.time() + 10 * 365 * 86400
    os.utime(os.path.join(ROOT, "future.txt"), (future, future))


def tearDownModule():
    shutil.rmtree(ROOT, ignore_errors=True)
    shutil.rmtree(OUTSIDE, ignore_errors=True)


def curl(port, path, *extra):
    out = subprocess.run(["curl", "-sS", "--max-time", "60", "--path-as-is", *extra,
                          "http://127.0.0.1:%d%s" % (port, path)], capture_output=True, timeout=90)
    assert out.returncode == 0, out.stderr
    return out.stdout


def file_bytes(name, start=0, end=None):
    with open(os.path.join(ROOT, name), "rb") as f:
        f.seek(start)
        return f.read(None if end is None else end - start + 1)


class StaticFiles(ServerTestCase):
    @property
    def SERVER_ARGS(self):
        return ("--root", ROOT, "--workers", "1")

    def get(self, path, headers=(), method="GET"):
        c = self.conn()
        c.send(request(method, path, list(headers)))
        return c.read_response(method)

    def test_exact_bytes_curl_and_raw(self):
        for name, digest in FILES.items():
            body = curl(self.port, "/" + name)
            self.assertEqual(hashlib.sha256(body).hexdigest(), digest, name)
            if name != "100m.bin":
                r = self.get("/" + name)
                self.assertResponse(r, 200)
                self.assertEqual(hashlib.sha256(r.body).hexdigest(), digest, name)
                self.assertEqual(r.header("Content-Type"), "application/octet-stream")

    def test_ranges(self):
        cases = [("bytes=0-99", 0, 99), ("bytes=1000-", 1000, (1 << 20) - 1),
                 ("bytes=-500", (1 << 20) - 500, (1 << 20) - 1),
                 ("bytes=100-99999999", 100, (1 << 20) - 1)]
        for spec, a, b in cases:
            r = self.get("/1m.bin", [("Range", spec)])
            self.assertResponse(r, 206)
            self.assertEqual(r.header("Content-Range"), "bytes %d-%d/%d" % (a, b, 1 << 20), spec)
            self.assertEqual(r.body, file_bytes("1m.bin", a, b), spec)
        big = curl(self.port, "/100m.bin", "-r", "50000000-50999999")
        self.assertEqual(big, file_bytes("100m.bin", 50000000, 50999999))
        for spec in ("bytes=2000000-", "bytes=-0"):
            r = self.get("/1m.bin", [("Range", spec)])
            self.assertResponse(r, 416)
            self.assertEqual(r.header("Content-Range"), "bytes */%d" % (1 << 20))
        # one satisfiable range among several: a plain 206
        r = self.get("/1m.bin", [("Range", "bytes=0-9, 5000000-")])
        self.assertResponse(r, 206, file_bytes("1m.bin", 0, 9))
        self.assertEqual(r.header("Content-Range"), "bytes 0-9/%d" % (1 << 20))
        r = self.get("/1m.bin", [("Range", "bytes=5000000-,6000000-7000000")])
        self.assertResponse(r, 416)
        # overlapping ranges, or more than 16: the whole file (RFC 9110 §14.2 allows it)
        for spec in ("bytes=0-99,50-150", "bytes=-10,0-", ",".join(["bytes=0-0"] + [
                "%d-%d" % (i * 10, i * 10) for i in range(1, 17)])):
            r = self.get("/1m.bin", [("Range", spec)])
            self.assertResponse(r, 200)
            self.assertEqual(len(r.body), 1 << 20, spec)
        for spec in ("bytes=1-2;x", "bytes=a-b", "bytes=5-1", "bytes=,", "chars=0-1"):
            r = self.get("/4k.bin", [("Range", spec)])
            self.assertResponse(r, 200)  # invalid: the header is ignored
            self.assertEqual(len(r.body), 4096, spec)

    def parse_multipart(self, r):
        m = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", r.header("Content-Type"))
        self.assertTrue(m, r.header("Content-Type"))
        delim = b"\r\n--" + m.group(1).encode()
        self.assertTrue(r.body.startswith(delim + b"\r\n"), r.body[:80])
        self.assertTrue(r.body.endswith(delim + b"--\r\n"), r.body[-80:])
        parts = []
        for raw in r.body[:-len(delim) - 4].split(delim)[1:]:
            head, body = raw[2:].split(b"\r\n\r\n", 1)
            fields = dict(l.split(": ", 1) for l in head.decode().split("\r\n"))
            parts.append((fields, body))
        return parts

    def test_multipart_byteranges(self):
        size = 1 << 20
        spec = "bytes=0-9, 500000-500099,-7"
        want = [(0, 9), (500000, 500099), (size - 7, size - 1)]
        r = self.get("/1m.bin", [("Range", spec)])
        self.assertResponse(r, 206)
        self.assertIsNone(r.header("Content-Range"))
        self.assertEqual(int(r.header("Content-Length")), len(r.body))
        parts = self.parse_multipart(r)
        self.assertEqual(len(parts), 3)
        for (fields, body), (a, b) in zip(parts, want):
            self.assertEqual(fields["Content-Type"], "application/octet-stream")
            self.assertEqual(fields["Content-Range"], "bytes %d-%d/%d" % (a, b, size))
            self.assertEqual(body, file_bytes("1m.bin", a, b))
        # RFC 9110 14.2: range handling is defined for GET only, so a HEAD ignores Range and
        # describes the whole 200; a text type keeps its charset in each part
        h = self.get("/1m.bin", [("Range", spec)], method="HEAD")
        self.assertEqual(h.status, 200)
        self.assertEqual(h.header("Content-Length"), str(size))
        self.assertIsNone(h.header("Content-Range"))
        h = self.get("/page.html", [("Range", "bytes=0-3")], method="HEAD")
        self.assertEqual((h.status, h.header("Content-Length")), (200, "14"))
        self.assertEqual(self.get("/page.html", [("Range", "bytes=999-")], method="HEAD").status,
                         200)
        parts = self.parse_multipart(self.get("/page.html", [("Range", "bytes=0-3,-6")]))
        self.assertEqual([p[1] for p in parts], [b"<h1>", b"</h1>\n"])
        self.assertEqual(parts[0][0]["Content-Type"], "text/html; charset=utf-8")
        # curl sees the same bytes; several ranges of a precompressed variant: whole variant
        out = curl(self.port, "/1m.bin", "-r", "0-9,20-29")
        self.assertIn(file_bytes("1m.bin", 0, 9), out)
        self.assertIn(file_bytes("1m.bin", 20, 29), out)
        r = self.get("/app.js", [("Range", "bytes=0-9,20-29"), ("Accept-Encoding", "gzip")])
        self.assertResponse(r, 200, file_bytes("app.js.gz"))
        # the connection carries on after a multipart response
        c = self.conn()
        for _ in range(3):
            c.send(request("GET", "/4k.bin", [("Range", "bytes=0-0,2-2")]))
            self.assertEqual(len(self.parse_multipart(c.read_response())), 2)

    def check_multipart(self, r, want, name="1m.bin"):
        """r is the 206 multipart answer for the ranges want [(first, last)], byte for byte."""
        self.assertEqual(r.status, 206, repr(r))
        parts = self.parse_multipart(r)
        self.assertEqual(len(parts), len(want))
        size = os.path.getsize(os.path.join(ROOT, name))
        for (fields, body), (a, b) in zip(parts, want):
            self.assertEqual(fields["Content-Range"], "bytes %d-%d/%d" % (a, b, size))
            self.assertTrue(body == file_bytes(name, a, b), "range %d-%d differs" % (a, b))

    def test_head_of_pipelined_multipart_answers_is_not_a_500(self):
        # regression: HEADs of 16-range answers pipelined behind each other filled the
        # queue; a HEAD that had to spill became a 500 where the same GET is a 206. A HEAD
        # now ignores Range (RFC 9110 14.2) and is a 200 like the GET without it.
        want = [(2 * i, 2 * i) for i in range(16)]
        rng = ("Range", "bytes=" + ",".join("%d-%d" % ab for ab in want))
        full = self.get("/1m.bin", [rng])
        self.check_multipart(full, want)
        for method in ("HEAD", "GET"):
            c = self.conn()
            seq = [(method, [rng])] * 6 + [(method, [])] * 3 + [(method, [rng]), ("GET", [])]
            c.send(b"".join(request(m, "/1m.bin", h) for m, h in seq))
            for k, (m, h) in enumerate(seq):
                r = c.read_response(m)
                what = "%s response %d: %r" % (method, k, r)
                self.assertEqual(r.status, 206 if h and m == "GET" else 200, what)
                if m == "GET" and h:
                    self.check_multipart(r, want)
                elif m == "GET":
                    self.assertTrue(r.body == file_bytes("1m.bin"), what)
                elif r.header("Content-Length") is not None:
                    self.assertEqual(r.header("Content-Length"), str(1 << 20), what)
            self.assertTrue(c.no_data_for(0.05), "extra bytes: %r" % bytes(c.buf[:200]))

    def test_pipelined_multipart_to_a_stalled_reader_does_not_block_the_worker(self):
        # regression: a 16-range answer started behind others with too little queue
        # left, spilled into a full socket and blocked the one worker in sync_write_wait_ms
        # (1 s) per connection; it now waits for room like any pipelined response
        want = [(i << 16, (i << 16) + 65535) for i in range(16)]      # all of 1m.bin
        rng = ("Range", "bytes=" + ",".join("%d-%d" % ab for ab in want))
        c = self.conn(rcvbuf=4096)
        c.send(request("GET", "/1m.bin", [rng]) * 4)                  # not read for now
        time.sleep(0.1)
        lat = []
        for _ in range(3):
            t0 = time.monotonic()
            p = self.conn(timeout=3)
            p.send(request("GET", "/page.html"))
            self.assertResponse(p.read_response(), 200, b"<h1>page</h1>\n")
            lat.append(time.monotonic() - t0)
            p.close()
        self.assertLess(max(lat), 0.5, "the worker was blocked: probe latencies %r" % lat)
        for k in range(4):                                           # all four, intact
            self.check_multipart(c.read_response(), want)

    def test_conditionals_and_if_range(self):
        r = self.get("/page.html")
        etag, lastmod = r.header("ETag"), r.header("Last-Modified")
        self.assertTrue(re.fullmatch(r'"[0-9a-f-]+"', etag), etag)
        self.assertEqual(self.get("/page.html", [("If-None-Match", etag)]).status, 304)
        self.assertEqual(self.get("/page.html", [("If-None-Match", 'W/' + etag)]).status, 304)
        self.assertEqual(self.get("/page.html", [("If-None-Match", '"x", ' + etag)]).status, 304)
        self.assertEqual(self.get("/page.html", [("If-None-Match", '"other"')]).status, 200)
        self.assertEqual(self.get("/page.html", [("If-Modified-Since", lastmod)]).status, 304)
        self.assertEqual(self.get("/page.html", [("If-Modified-Since",
                                                   "Mon, 01 Jan 1990 00:00:00 GMT")]).status, 200)
        r304 = self.get("/page.html", [("If-None-Match", etag)])
        self.assertEqual(r304.body, b"")
        self.assertEqual(r304.header("ETag"), etag)
        r = self.get("/page.html", [("Range", "bytes=0-3"), ("If-Range", etag)])
        self.assertResponse(r, 206, b"<h1>")
        r = self.get("/page.html", [("Range", "bytes=0-3"), ("If-Range", '"stale"')])
        self.assertResponse(r, 200, file_bytes("page.html"))

    def test_all_three_http_date_forms_in_conditionals(self):
        # RFC 9110 5.6.7: recipients MUST accept IMF-fixdate, rfc850-date and asctime-date
        same = ("Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                "Sun Nov  6 08:49:37 1994")
        before = ("Sun, 06 Nov 1994 08:49:36 GMT", "Sunday, 06-Nov-94 08:49:36 GMT",
                  "Sun Nov  6 08:49:36 1994")
        invalid = ("Sunday, 32-Nov-94 08:49:37 GMT", "Sun Nov 31 08:49:37 1994",
                   "Sun Nov 6 08:49:37 1994", "Sunday, 06-Nov-1994 08:49:37 GMT")
        body = b"dated 1994\n"
        self.assertEqual(self.get("/dated.txt").header("Last-Modified"), same[0])
        for d in same:
            self.assertEqual(self.get("/dated.txt", [("If-Modified-Since", d)]).status, 304, d)
            self.assertResponse(self.get("/dated.txt", [("If-Unmodified-Since", d)]), 200, body)
            self.assertResponse(self.get("/dated.txt", [("Range", "bytes=0-4"), ("If-Range", d)]),
                                206, body[:5])
        for d in before:
            self.assertResponse(self.get("/dated.txt", [("If-Modified-Since", d)]), 200, body)
            self.assertEqual(self.get("/dated.txt", [("If-Unmodified-Since", d)]).status, 412, d)
            self.assertResponse(self.get("/dated.txt", [("Range", "bytes=0-4"), ("If-Range", d)]),
                                200, body)
        for d in invalid:  # RFC 9110 13.1.3: an invalid date is ignored
            self.assertResponse(self.get("/dated.txt", [("If-Modified-Since", d)]), 200, body)
            self.assertResponse(self.get("/dated.txt", [("If-Unmodified-Since", d)]), 200, body)
            self.assertResponse(self.get("/dated.txt", [("Range", "bytes=0-4"), ("If-Range", d)]),
                                200, body)

    def test_if_match_if_unmodified_since_and_precedence(self):
        # RFC 9110 13.1.1 (strong comparison), 13.1.4, 13.2.2 (order of evaluation)
        body = file_bytes("page.html")
        r = self.get("/page.html")
        etag, lastmod = r.header("ETag"), r.header("Last-Modified")
        old, later = "Mon, 01 Jan 1990 00:00:00 GMT", "Fri, 01 Jan 2100 00:00:00 GMT"
        for h in ([("If-Match", etag)], [("If-Match", "*")], [("If-Match", '"x", ' + etag)],
                  [("If-Match", etag), ("If-Unmodified-Since", old)],  # IUS ignored
                  [("If-Unmodified-Since", later)], [("If-Unmodified-Since", lastmod)],
                  [("If-None-Match", '"x"'), ("If-Modified-Since", lastmod)]):  # IMS ignored
            self.assertResponse(self.get("/page.html", h), 200, body)
        for h in ([("If-Match", "W/" + etag)], [("If-Match", '"other"')],
                  [("If-Unmodified-Since", old)],
                  [("If-Match", '"other"'), ("If-None-Match", etag)],  # 412 before 304
                  [("If-Match", '"other"'), ("Range", "bytes=0-3")],  # before the range
                  [("If-Match", '"other"'), ("Range", "bytes=999999-")]):  # before a 416
            r = self.get("/page.html", h)
            self.assertEqual(r.status, 412, h)
            self.assertNotIn(b"<h1>", r.body, h)
        self.assertEqual(self.get("/page.html", [("If-Match", '"other"')], "HEAD").status, 412)
        # 13.1.5: If-Range compares strongly: a weak tag never selects the range
        self.assertResponse(self.get("/page.html", [("Range", "bytes=0-3"), ("If-Range", "W/" + etag)]),
                            200, body)
        # 13.2.1: preconditions are ignored where the answer would not be 2xx or 412
        self.assertEqual(self.get("/missing", [("If-Match", '"other"')]).status, 404)
        self.assertEqual(self.get("/missing", [("If-None-Match", "*")]).status, 404)
        self.assertEqual(self.get("/dir", [("If-Match", '"other"')]).status, 301)
        self.assertEqual(self.get("/page.html", [("If-None-Match", "*")]).status, 304)
        self.assertEqual(self.get("/page.html", [("If-Match", etag), ("If-None-Match", etag)])
                         .status, 304)

    def test_304_carries_what_a_200_would(self):
        # RFC 9110 15.4.5: ETag, Last-Modified (the validators), Date, Vary as in a 200; no
        # content; a Content-Length only if it is the 200's
        for path, hdrs in (("/page.html", []), ("/app.js", [("Accept-Encoding", "gzip")])):
            full = self.get(path, hdrs)
            r = self.get(path, hdrs + [("If-None-Match", full.header("ETag"))])
            self.assertEqual(r.status, 304, path)
            self.assertEqual(r.body, b"", path)
            for name in ("ETag", "Last-Modified", "Vary", "Cache-Control"):
                self.assertEqual(r.header(name), full.header(name), (path, name))
            self.assertIsNotNone(r.header("Date"), path)
            self.assertIn(r.header("Content-Length"), (None, full.header("Content-Length")), path)

    def test_head_and_206_carry_the_fields_of_the_200(self):
        # RFC 9110 9.3.2: HEAD SHOULD send the GET's fields; 15.3.7: a 206 MUST send Date,
        # Cache-Control, ETag, Expires, Content-Location and Vary as the 200 would
        strip = lambda r: [(k.lower(), v) for k, v in r.headers if k.lower() != "date"]
        for path, hdrs in (("/page.html", []), ("/app.js", [("Accept-Encoding", "gzip")]),
                           ("/empty.bin", [])):
            full = self.get(path, hdrs)
            head = self.get(path, hdrs, "HEAD")
            self.assertEqual(head.status, 200, path)
            self.assertEqual(strip(head), strip(full), path)
            self.assertEqual(head.body, b"")
        for path, hdrs in (("/page.html", []), ("/app.js", [("Accept-Encoding", "gzip")])):
            full = self.get(path, hdrs)
            part = self.get(path, hdrs + [("Range", "bytes=1-2")])
            self.assertEqual(part.status, 206, path)
            self.assertIsNotNone(part.header("Date"))
            for name in ("ETag", "Last-Modified", "Vary", "Cache-Control", "Expires",
                         "Content-Location", "Content-Encoding"):
                self.assertEqual(part.header(name), full.header(name), (path, name))

    def test_conditional_and_range_heads_trickled_byte_by_byte(self):
        # a slow client: every field arrives one byte at a time, and still counts
        etag = self.get("/page.html").header("ETag")
        for hdrs, status, body in (([("If-None-Match", etag)], 304, b""),
                                   ([("If-Match", '"other"')], 412, None),
                                   ([("Range", "bytes=4-8"), ("If-Range", etag)], 206, b"page<"),
                                   ([("If-Modified-Since", "Sun Nov  6 08:49:37 1994")], 200,
                                    b"<h1>page</h1>\n")):
            c = self.conn()
            c.send_slowly(request("GET", "/page.html", hdrs), step=1, delay=0.002)
            r = c.read_response()
            self.assertEqual(r.status, status, hdrs)
            if body is not None:
                self.assertEqual(r.body, body, hdrs)

    def test_last_modified_never_later_than_date(self):
        # RFC 9110 8.8.2.1: a file time in the future is replaced by the response's Date
        import email.utils
        r = self.get("/future.txt")
        self.assertResponse(r, 200, b"from the future\n")
        lm = email.utils.parsedate_to_datetime(r.header("Last-Modified"))
        date = email.utils.parsedate_to_datetime(r.header("Date"))
        self.assertLessEqual(lm, date, r)
        self.assertEqual(self.get("/future.txt", [("If-Modified-Since", r.header("Last-Modified"))])
                         .status, 304)

    def test_head_and_directories(self):
        r = self.get("/1m.bin", method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), str(1 << 20))
        r = self.get("/dir?x=1")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "/dir/?x=1")
        self.assertResponse(self.get("/dir/"), 200, b"dir index\n", "text/html; charset=utf-8")
        self.assertEqual(self.get("/page.html/").status, 404)
        self.assertEqual(self.get("/missing").status, 404)
        # valgrind (make memcheck) has no openat2: the server then walks the path with
        # O_NOFOLLOW, which refuses every symlink (tested with --no-openat2)
        if not WRAP:
            self.assertResponse(self.get("/inside-link.html"), 200, b"<h1>page</h1>\n")

    def test_non_canonical_paths_redirect_to_the_canonical_spelling(self):
        # the router matched the raw path: another spelling of a name must not reach the
        # file past a route that claims the canonical one (and "//host" is never a Location)
        for raw, loc in (("//assets", "/assets"), ("//page.html", "/page.html"),
                         ("/./page.html", "/page.html"), ("/%2E/page.html", "/page.html"),
                         ("/dir//index.html?q=1", "/dir/index.html?q=1"),
                         ("/%64ir?x=1", "/dir/?x=1"), ("/dir/%2e/ind%65x.html", "/dir/index.html"),
                         ("//a%2Db%7Ec%5Fd.txt", "/a-b~c_d.txt"), ("/./caf%c3%a9.txt", "/caf%C3%A9.txt")):
            c = self.conn()
            c.send(b"GET " + raw.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 301, raw)
            self.assertEqual(r.header("Location"), loc, raw)
        self.assertEqual(self.get("/assets").header("Location"), "/assets/")

    def test_redirect_target_too_long_for_the_header_area_is_414_not_500(self):
        # the canonical Location of "/./" + 1500 x "%C3" is 4.5 KiB, past the 4 KiB of
        # response fields: refused as too long, never a 500 from the failed set
        for n, status in ((500, 301), (1500, 414), (2700, 414)):
            c = self.conn()
            c.send(b"GET /./" + b"%C3" * n + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertEqual(c.read_response().status, status, n)
        self.assertEqual(metrics(self.port)["zerohttp_response_header_errors_total"], 0)

    def test_equivalent_percent_encodings_are_served_not_redirected(self):
        # RFC 3986 6.2.2.1/6.2.2.2: a triplet of an unreserved character is that character,
        # and hex digits are case-insensitive: the same URI, so the same resource
        for raw, body in (("/%70age.html", b"<h1>page</h1>\n"), ("/p%61ge.html", b"<h1>page</h1>\n"),
                          ("/page%2Ehtml", b"<h1>page</h1>\n"), ("/page%2ehtml", b"<h1>page</h1>\n"),
                          ("/%64ir/ind%65x.html", b"dir index\n"), ("/%64%69%72/", b"dir index\n"),
                          ("/a%2Db%7Ec%5Fd.txt", b"unreserved\n"), ("/a%2db%7ec%5fd.txt", b"unreserved\n"),
                          ("/caf%C3%A9.txt", b"utf-8 name\n"), ("/caf%c3%a9.txt", b"utf-8 name\n"),
                          ("/caf%c3%A9%2etxt?q=%41", b"utf-8 name\n")):
            c = self.conn()
            c.send(b"GET " + raw.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            self.assertResponse(c.read_response(), 200, body)
        # the router matches the same way: the route /healthz claims "/h%65althz", so the file
        # of that name in the root stays shadowed under every spelling
        for raw in ("/healthz", "/h%65althz", "/%68%65%61%6c%74%68%7a"):
            c = self.conn()
            c.send(b"GET " + raw.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, raw)
            self.assertNotIn(b"SHADOWED", r.body, raw)
        # an encoded slash, NUL or dot-dot stays refused; ".." is never resolved upwards
        for raw, status in (("/dir%2Findex.html", 400), ("/dir%2findex.html", 400),
                            ("/page.html%00", 400), ("/dir/%2E%2E/page.html", 400),
                            ("/%2E%2E/%2E%2E/etc/passwd", 400), ("/dir/.%2E/page.html", 400)):
            c = self.conn()
            c.send(b"GET " + raw.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, status, raw)
            self.assertNotIn(b"page", r.body, raw)

    def test_fifo_in_the_root_does_not_block_the_worker(self):
        start = time.time()
        self.assertEqual(self.get("/pipe").status, 403)
        self.assertLess(time.time() - start, 2.0)
        self.assertResponse(self.get("/page.html"), 200, b"<h1>page</h1>\n")

    def test_mime_types(self):
        want = {"css": "text/css; charset=utf-8", "json": "application/json",
                "svg": "image/svg+xml", "png": "image/png", "wasm": "application/wasm",
                "woff2": "font/woff2", "txt": "text/plain; charset=utf-8",
                "mjs": "text/javascript; charset=utf-8", "avif": "image/avif",
                "pdf": "application/pdf"}
        for ext, ctype in want.items():
            self.assertEqual(self.get("/x." + ext).header("Content-Type"), ctype, ext)
        self.assertEqual(self.get("/page.html").header("Content-Type"),
                         "text/html; charset=utf-8")

    def test_precompressed_variants_by_q_value(self):
        plain = file_bytes("app.js")
        cases = [("gzip", "gzip"), ("br", "br"), ("gzip, br", "br"), ("br;q=0.5, gzip", "gzip"),
                 ("gzip;q=0, br;q=0", None), ("identity", None), ("*", "br"),
                 ("br;q=0, *;q=0.1", "gzip"), ("gzip;q=0.001", "gzip"),
                 ("br;Q=0, gzip", "gzip"), ("br; q=0 , gzip;seq=1", "gzip")]
        for ae, enc in cases:
            r = self.get("/app.js", [("Accept-Encoding", ae)])
            self.assertResponse(r, 200)
            self.assertEqual(r.header("Content-Encoding"), enc, ae)
            self.assertEqual(r.header("Vary"), "Accept-Encoding", ae)
            self.assertEqual(r.header("Content-Type"), "text/javascript; charset=utf-8")
            expect = {None: plain, "gzip": file_bytes("app.js.gz"),
                      "br": file_bytes("app.js.br")}[enc]
            self.assertEqual(r.body, expect, ae)
        self.assertEqual(gzip.decompress(self.get("/app.js", [("Accept-Encoding", "gzip")]).body),
                         plain)
        self.assertEqual(curl(self.port, "/app.js", "--compressed", "-H",
                              "Accept-Encoding: gzip"), plain)

    def test_traversal_in_every_encoding_and_symlink_escape(self):
        attempts = ["/../secret.txt", "/..%2fsecret.txt", "/%2e%2e/secret.txt", "/%2E%2E/x",
                    "/dir/../../x", "/dir/%2e%2e/%2e%2e/x", "/.%2e/x", "/%2e./x", "/..\\x",
                    "/dir%5c..%5cx", "/a%00b", "/dir%2findex.html", "/%252e%252e/x",
                    "/escape.txt", "/escape-dir/secret.txt", "/.env", "/dir/.%2e/.env"]
        for a in attempts:
            c = self.conn()
            c.send(b"GET " + a.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            try:
                r = c.read_response()
            except AssertionError:
                continue  # closed: refused at the parser
            self.assertIn(r.status, (400, 403, 404), a)
            self.assertNotIn(b"SECRET", r.body, a)
            self.assertNotIn(b"DOTFILE", r.body, a)

    def test_slow_reader_of_100m_keeps_rss_flat_and_gets_exact_bytes(self):
        s = self.track(socket.socket())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.connect(("127.0.0.1", self.port))
        s.settimeout(30)
        self.get("/4k.bin")  # warm up: the worker's first context faults in its huge page
        before = rss_kib(self.server.pid)
        s.sendall(request("GET", "/100m.bin"))
        h = hashlib.sha256()
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        head, body = got.split(b"\r\n\r\n", 1)
        self.assertIn(b"Content-Length: %d" % (100 << 20), head)
        h.update(body)
        total = len(body)
        slow_until = time.time() + 1.0
        while time.time() < slow_until:  # ~1 s at a trickle: the server must just wait
            chunk = s.recv(4096)
            h.update(chunk)
            total += len(chunk)
            time.sleep(0.01)
        during = rss_kib(self.server.pid)
        while total < (100 << 20):
            chunk = s.recv(1 << 20)
            self.assertTrue(chunk, "closed early at %d" % total)
            h.update(chunk)
            total += len(chunk)
        self.assertEqual(h.hexdigest(), FILES["100m.bin"])
        print("\n  slow reader of 100 MiB: RSS %d -> %d KiB" % (before, during))
        self.assertLess(during - before, 1024)

    def test_file_truncated_while_sending_closes_cleanly(self):
        path = os.path.join(ROOT, "shrink.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(20 << 20))
        s = self.track(socket.socket())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.connect(("127.0.0.1", self.port))
        s.settimeout(10)
        s.sendall(request("GET", "/shrink.bin"))
        got = s.recv(65536)
        os.truncate(path, 1 << 20)
        total = len(got.split(b"\r\n\r\n", 1)[1])
        start = time.time()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            total += len(chunk)
        self.assertLess(total, 20 << 20, "the connection must close short of the length")
        self.assertLess(time.time() - start, 5)
        os.unlink(path)
        r = self.get("/page.html")  # the server is fine
        self.assertResponse(r, 200, b"<h1>page</h1>\n")



def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fds_settle(pid, want, within=2.0):
    """The fd count once it reaches want (a leak never does), or the last count seen."""
    deadline = time.time() + within
    while True:
        n = open_fds(pid)
        if n == want or time.time() > deadline:
            return n
        time.sleep(0.02)


class UncachedFallback(ServerTestCase):
    """Files the cache cannot hold are still served, and their fds do not leak."""
    SERVER_ARGS = property(lambda self: ("--root", ROOT, "--workers", "1",
                                         "--static-cache", "1"))

    def test_long_path_is_served_uncached(self):
        long_dir = os.path.join(ROOT, "d" * 200, "e" * 60)
        os.makedirs(long_dir, exist_ok=True)
        data = os.urandom(10000)
        with open(os.path.join(long_dir, "f.bin"), "wb") as f:
            f.write(data)
        path = "/" + "d" * 200 + "/" + "e" * 60 + "/f.bin"
        c = self.conn()
        c.send(request("GET", "/page.html"))
        c.read_response()
        before = open_fds(self.server.pid)
        for i in range(50):
            hdrs = [("Range", "bytes=10-19")] if i % 2 else []
            c.send(request("GET", path, hdrs))
            r = c.read_response()
            self.assertEqual(r.body, data[10:20] if i % 2 else data)
        c.send(request("GET", path, [("Range", "bytes=0-1,5-6")]))  # several: whole
        self.assertResponse(c.read_response(), 200, data)
        c.send(request("GET", path, [("If-None-Match", r.header("ETag"))]))
        self.assertEqual(c.read_response().status, 304)
        c.send(request("HEAD", path))
        self.assertEqual(c.read_response("HEAD").header("Content-Length"), "10000")
        self.assertEqual(fds_settle(self.server.pid, before), before)

    def test_busy_cache_falls_back_to_uncached_sends(self):
        # the one entry is busy with a reader that stalls on the 100 MiB file
        s = self.track(socket.socket())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.connect(("127.0.0.1", self.port))
        s.sendall(request("GET", "/100m.bin"))
        s.recv(1024)
        c = self.conn()
        c.send(request("GET", "/empty.bin"))  # accepted, before the count
        c.read_response()
        base = open_fds(self.server.pid)
        for name in ("4k.bin", "1m.bin", "page.html", "4k.bin"):
            c.send(request("GET", "/" + name))
            r = c.read_response()
            self.assertResponse(r, 200, file_bytes(name))
        self.assertEqual(fds_settle(self.server.pid, base), base)
        s.close()


class NoOpenat2(ServerTestCase):
    """--no-openat2: the O_NOFOLLOW walk refuses every symlink and still serves files."""
    SERVER_ARGS = property(lambda self: ("--root", ROOT, "--workers", "1", "--no-openat2"))

    def get(self, path):
        c = self.conn()
        c.send(request("GET", path))
        return c.read_response()

    def test_walk_serves_files_and_refuses_symlinks(self):
        self.assertResponse(self.get("/page.html"), 200, b"<h1>page</h1>\n")
        self.assertResponse(self.get("/dir/"), 200, b"dir index\n")
        self.assertResponse(self.get("/dir/index.html"), 200, b"dir index\n")
        self.assertEqual(self.get("/4k.bin").body, file_bytes("4k.bin"))
        for path in ("/escape.txt", "/escape-dir/secret.txt", "/inside-link.html",
                     "/escape-dir/"):
            r = self.get(path)
            self.assertIn(r.status, (403, 404), path)
            self.assertNotIn(b"SECRET", r.body, path)
        self.assertEqual(self.get("/escape.txt").status, 403)
        self.assertEqual(self.get("/missing/x").status, 404)


@unittest.skipUnless(shutil.which("strace"), "strace not installed")
class SyscallAudit(ServerTestCase):
    AUTO_START = False

    def test_sendfile_carries_the_body_and_the_file_is_never_read(self):
        from harness import Server, free_port  # noqa: F401 (same binary as the suite)
        port = free_port()
        log = os.path.join(tempfile.mkdtemp(), "strace.log")
        bin_ = os.environ.get("ZH_BIN", "build/zerohttpd")
        # spawn: strace and the server it traces are killed by PID even if this test errors
        proc = self.spawn(["strace", "-f", "-y", "-o", log, "-e",
                           "trace=read,pread64,readv,preadv,sendfile,mmap,openat,openat2", bin_,
                           "--port", str(port), "--workers", "1", "--root", ROOT],
                          stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            c = self.conn(port)
            for _ in range(100):
                # browsers always send Accept-Encoding; 4k.bin has no .br/.gz variant
                c.send(request("GET", "/4k.bin", [("Accept-Encoding", "gzip, br")]))
                r = c.read_response()
                self.assertEqual(hashlib.sha256(r.body).hexdigest(), FILES["4k.bin"])
        finally:
            stop_traced(proc, 20)
        with open(log) as f:
            lines = f.read().splitlines()
        # strace -y prints each fd with its path: N</root/4k.bin>
        on_file = re.compile(r"\d+<[^>]*/4k\.bin>")
        sends = [l for l in lines if re.search(r"\bsendfile\(\d+<socket:[^>]*>, " +
                                                on_file.pattern, l)]
        reads = [l for l in lines if re.search(r"\b(read|pread64|readv|preadv)\(" +
                                                on_file.pattern, l)
                 or re.search(r"\bmmap\(.*, " + on_file.pattern, l)]
        opens = [l for l in lines if re.search(r"\bopenat2?\(.*4k\.bin", l)]
        print("\n  100 static GETs under strace: %d sendfile calls on the file, %d reads, "
              "%d opens of it or its variants" % (len(sends), len(reads), len(opens)))
        # hot file: one open, plus one probe per variant per TTL (1 s) -- not per request
        self.assertLessEqual(len(opens), 6, "\n".join(opens[:10]))
        self.assertGreaterEqual(len(sends), 100)
        self.assertEqual(reads, [], "the served file must never be read into user space")


@unittest.skipUnless(os.environ.get("ZH_SHIM"), "ZH_SHIM not set (no malloc-counting shim)")
class StaticZeroAlloc(ServerTestCase):
    AUTO_START = False

    def test_warm_cache_static_gets_make_no_allocation(self):
        count_file = tempfile.mktemp(prefix="zh-mc-")
        env = dict(os.environ, LD_PRELOAD=os.path.abspath(os.environ["ZH_SHIM"]),
                   ZH_MALLOC_COUNT_FILE=count_file)
        srv = self.start_server(("--root", ROOT, "--workers", "1"), env)

        def count():
            return malloc_calls(srv.pid, count_file)

        c = self.conn(srv.port)
        paths = ["/4k.bin", "/page.html", "/app.js", "/empty.bin"]

        def run(n):
            for i in range(n):
                p = paths[i % len(paths)]
                hdrs = [("Accept-Encoding", "gzip")] if p == "/app.js" else []
                if i % 7 == 0:
                    hdrs.append(("Range", "bytes=0-9"))
                c.send(request("GET", p, hdrs))
                r = c.read_response()
                self.assertIn(r.status, (200, 206, 416))  # 416: a range of the empty file
        run(400)
        a = count()
        run(5000)
        b = count()
        print("\n  5000 warm static GETs: %d malloc-family calls" % (b - a))
        self.assertEqual(b - a, 0)
        os.unlink(count_file)
