"""8. Methods: 405 with Allow, OPTIONS, OPTIONS *, HEAD, 404."""
from harness import HELLO, JSON, ServerTestCase, request

ALLOW_GET = "GET, HEAD, OPTIONS"


class Methods(ServerTestCase):
    def test_delete_json_is_405_with_allow(self):
        c = self.conn()
        c.send(request("DELETE", "/json"))
        r = c.read_response()
        self.assertEqual(r.status, 405, repr(r))
        self.assertEqual(r.header_all("Allow"), [ALLOW_GET])
        # a 405 is not a framing error: the connection stays usable
        c.send(request("GET", "/json"))
        self.assertResponse(c.read_response(), 200, JSON)

    def test_post_plaintext_is_405(self):
        c = self.conn()
        c.send(request("POST", "/plaintext", [("Content-Type", "a/b")], b"abc"))
        r = c.read_response()
        self.assertEqual(r.status, 405, repr(r))
        self.assertEqual(r.header_all("Allow"), [ALLOW_GET])
        c.send(request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, HELLO)

    def test_delete_echo_is_405_with_allow(self):
        # /echo is POST|PUT and the static root GET|HEAD: Go 1.22's rule sends a GET to the
        # root (www/ has no "echo": 404) and answers a method neither has with 405, Allow
        # listing the methods of both (test_32 has the rest)
        c = self.conn()
        c.send(request("GET", "/echo"))
        r = c.read_response()
        self.assertEqual(r.status, 404, repr(r))
        c.send(request("DELETE", "/echo"))
        r = c.read_response()
        self.assertEqual(r.status, 405, repr(r))
        allow = [m.strip() for m in (r.header("Allow") or "").split(",")]
        self.assertEqual(allow, ["GET", "HEAD", "POST", "PUT", "OPTIONS"], repr(r))

    def test_options_json(self):
        c = self.conn()
        c.send(request("OPTIONS", "/json") + request("GET", "/plaintext"))
        r = c.read_response()
        # RFC 9110 9.3.7: a successful OPTIONS without content MUST carry Content-Length: 0,
        # which a 204 may not (8.6)
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.header_all("Allow"), [ALLOW_GET])
        self.assertEqual(r.header_all("Content-Length"), ["0"], repr(r))
        self.assertEqual(r.body, b"")
        self.assertResponse(c.read_response(), 200, HELLO)   # nothing left over

    def test_options_asterisk(self):
        c = self.conn()
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n" + request("GET", "/json"))
        r = c.read_response()
        self.assertEqual(r.status, 200, repr(r))   # RFC 9110 9.3.7
        self.assertEqual(r.header_all("Content-Length"), ["0"], repr(r))
        self.assertEqual(r.body, b"")
        allow = r.header("Allow")
        self.assertIsNotNone(allow, repr(r))
        toks = [m.strip() for m in allow.split(",")]
        self.assertIn("OPTIONS", toks)
        self.assertResponse(c.read_response(), 200, JSON)

    def test_absolute_form_is_accepted_and_its_host_wins(self):
        # RFC 9112 3.2.2: a server MUST accept absolute-form; the origin server MUST ignore
        # the Host field and use the target's authority
        c = self.conn()
        c.send(b"GET http://other.example:8080/plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET HTTP://X/json?a=1 HTTP/1.1\r\nHost: y\r\n\r\n")
        self.assertResponse(c.read_response(), 200, HELLO)
        self.assertResponse(c.read_response(), 200, JSON)

    def test_head_plaintext(self):
        c = self.conn()
        c.send(request("GET", "/plaintext"))
        g = c.read_response()
        self.assertResponse(g, 200, HELLO)
        # HEAD pipelined with a GET: the GET must parse right after the body-less HEAD
        c.send(request("HEAD", "/plaintext") + request("GET", "/json"))
        h = c.read_response(method="HEAD")
        self.assertEqual(h.status, 200, repr(h))
        self.assertEqual(h.header("Content-Length"), "13")
        strip = lambda r: [(k.lower(), v) for k, v in r.headers if k.lower() != "date"]
        self.assertEqual(strip(h), strip(g))
        self.assertIsNotNone(h.header("Date"))
        nxt = c.read_response()
        self.assertResponse(nxt, 200, JSON, "application/json")
        self.assertTrue(c.no_data_for(0.2), "extra bytes after HEAD + GET")

    def test_head_json_alone_sends_no_body(self):
        c = self.conn()
        c.send(request("HEAD", "/json"))
        h = c.read_response(method="HEAD")
        self.assertEqual(h.status, 200)
        self.assertEqual(h.header("Content-Length"), str(len(JSON)))
        self.assertEqual(h.header("Content-Type"), "application/json")
        self.assertTrue(c.no_data_for(0.3), "HEAD response carried a body")

    def test_get_missing_is_404(self):
        c = self.conn()
        c.send(request("GET", "/missing"))
        r = c.read_response()
        self.assertEqual(r.status, 404, repr(r))
        c.send(request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, HELLO)

    def test_prefix_of_route_is_404(self):
        c = self.conn()
        c.send(request("GET", "/plain") + request("GET", "/plaintext/x")
               + request("GET", "/plaintext"))
        self.assertEqual(c.read_response().status, 404)
        self.assertEqual(c.read_response().status, 404)
        self.assertResponse(c.read_response(), 200, HELLO)
