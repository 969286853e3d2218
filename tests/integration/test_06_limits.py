"""6. Request limits: request line (414), header count and size (431), body size (413)."""
import time

from harness import HELLO, ServerTestCase, chunked, request


class Limits(ServerTestCase):
    def expect_error(self, c, status, within=2.0):
        r = c.read_response()
        self.assertEqual(r.status, status, repr(r))
        self.assertClosed(c, within)
        return r

    def test_request_line_over_8k_is_414(self):
        c = self.conn()
        c.send(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.expect_error(c, 414)

    def test_request_line_just_under_8k_is_not_414(self):
        c = self.conn()
        path = b"/plaintext?" + b"q" * (8000 - len(b"/plaintext?"))
        c.send(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertResponse(c.read_response(), 200, HELLO)

    def test_request_line_over_8k_sent_slowly_is_414(self):
        # the limit must hold while the line is still arriving (no CRLF yet)
        c = self.conn()
        c.send(b"GET /" + b"a" * 4000)
        time.sleep(0.05)
        c.send(b"a" * 5000)
        r = c.read_response()
        self.assertEqual(r.status, 414, repr(r))
        self.assertClosed(c)

    def test_101_header_fields_is_431(self):
        c = self.conn()
        hdrs = [("X-H%d" % i, "v") for i in range(100)]     # + Host = 101 fields
        c.send(request("GET", "/plaintext", hdrs))
        self.expect_error(c, 431)

    def test_100_header_fields_is_accepted(self):
        c = self.conn()
        hdrs = [("X-H%d" % i, "v") for i in range(99)]      # + Host = 100 fields
        c.send(request("GET", "/plaintext", hdrs))
        self.assertResponse(c.read_response(), 200, HELLO)

    def test_header_bytes_over_32k_is_431(self):
        c = self.conn()
        hdrs = [("X-Big%d" % i, "b" * 4000) for i in range(9)]   # ~36 KB in 10 fields
        c.send(request("GET", "/plaintext", hdrs))
        self.expect_error(c, 431)

    def test_header_bytes_under_32k_is_accepted(self):
        c = self.conn()
        hdrs = [("X-Big%d" % i, "b" * 3000) for i in range(10)]  # ~30 KB
        c.send(request("GET", "/plaintext", hdrs))
        self.assertResponse(c.read_response(), 200, HELLO)

    def test_content_length_over_limit_is_413_before_body(self):
        c = self.conn()
        c.send(request("POST", "/echo", [("Content-Type", "a/b"),
                                         ("Content-Length", "2000000")]))
        t0 = time.monotonic()
        c.settimeout(2.0)
        r = c.read_response()
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(r.status, 413, repr(r))
        self.assertClosed(c)

    def test_content_length_huge_is_413(self):
        c = self.conn()
        c.send(request("POST", "/echo", [("Content-Length", "99999999999999999999999")]))
        r = c.read_response()
        self.assertIn(r.status, (400, 413), repr(r))
        self.assertClosed(c)


class LimitsSmallBody(ServerTestCase):
    SERVER_ARGS = ("--max-body", "1000")

    def test_999_byte_body_accepted(self):
        c = self.conn()
        body = bytes(range(256)) * 3 + b"x" * (999 - 768)
        c.send(request("POST", "/echo", [("Content-Type", "a/b")], body))
        self.assertResponse(c.read_response(), 200, body, "a/b")

    def test_1000_byte_body_accepted(self):
        c = self.conn()
        body = b"y" * 1000
        c.send(request("POST", "/echo", [("Content-Type", "a/b")], body))
        self.assertResponse(c.read_response(), 200, body, "a/b")

    def test_1001_byte_content_length_is_413(self):
        c = self.conn()
        c.send(request("POST", "/echo", [("Content-Length", "1001")]))
        c.settimeout(2.0)
        r = c.read_response()
        self.assertEqual(r.status, 413, repr(r))
        self.assertClosed(c)

    def test_chunked_999_accepted(self):
        c = self.conn()
        body = b"z" * 999
        c.send(request("POST", "/echo", [("Content-Type", "a/b"),
                                         ("Transfer-Encoding", "chunked")])
               + chunked(body, [300, 200, 499]))
        self.assertResponse(c.read_response(), 200, body, "a/b")

    def test_chunked_growing_over_limit_is_413(self):
        c = self.conn()
        c.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")]))
        c.send(b"1f4\r\n" + b"a" * 500 + b"\r\n")
        c.send(b"1f4\r\n" + b"b" * 500 + b"\r\n")
        # 1000 so far: still fine (no answer yet); the next chunk crosses the limit
        self.assertTrue(c.no_data_for(0.2), "server answered before the limit was crossed")
        c.send(b"1f4\r\n" + b"c" * 500 + b"\r\n")
        c.settimeout(2.0)
        r = c.read_response()
        self.assertEqual(r.status, 413, repr(r))
        self.assertClosed(c)

    def test_chunked_over_limit_in_one_send_is_413(self):
        c = self.conn()
        c.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")])
               + chunked(b"q" * 1500, [100]))
        r = c.read_response()
        self.assertEqual(r.status, 413, repr(r))
        self.assertClosed(c)
