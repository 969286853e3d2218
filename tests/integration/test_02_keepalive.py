"""2. Persistent connections: HTTP/1.1 keep-alive by default, HTTP/1.0 close by default,
HTTP/1.0 with Connection: keep-alive, HTTP/1.1 with Connection: close."""
import http.client

from harness import HELLO, HOST, JSON, ServerTestCase, request


class KeepAlive(ServerTestCase):
    def test_50_requests_one_connection(self):
        c = self.track(http.client.HTTPConnection(HOST, self.port, timeout=5))
        first_sock = None
        local = None
        for i in range(50):
            path, body = ("/plaintext", HELLO) if i % 2 == 0 else ("/json", JSON)
            c.request("GET", path)
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.read(), body)
            self.assertFalse(r.will_close, "response %d would close the connection" % i)
            self.assertIsNotNone(c.sock, "connection dropped after request %d" % i)
            if first_sock is None:
                first_sock, local = c.sock, c.sock.getsockname()
            self.assertIs(c.sock, first_sock, "new socket at request %d" % i)
            self.assertEqual(c.sock.getsockname(), local)
            self.assertEqual(c.sock.getpeername(), (HOST, self.port))

    def test_http10_closes_by_default(self):
        c = self.conn()
        c.send(b"GET /plaintext HTTP/1.0\r\n\r\n")
        r = c.read_response()
        self.assertResponse(r, 200, HELLO, "text/plain")
        self.assertNotIn("keep-alive", (r.header("Connection") or "").lower())
        self.assertClosed(c)

    def test_http10_with_host_closes_by_default(self):
        c = self.conn()
        c.send(b"GET /json HTTP/1.0\r\nHost: localhost\r\n\r\n")
        self.assertResponse(c.read_response(), 200, JSON, "application/json")
        self.assertClosed(c)

    def test_http10_keepalive(self):
        c = self.conn()
        c.send(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        self.assertResponse(r, 200, HELLO, "text/plain")
        self.assertHeaderToken(r, "Connection", "keep-alive")
        self.assertTrue(c.no_data_for(0.3), "connection closed or extra bytes after response")
        c.send(b"GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        self.assertResponse(r, 200, JSON, "application/json")
        self.assertHeaderToken(r, "Connection", "keep-alive")
        # a third request without keep-alive ends the connection
        c.send(b"GET /plaintext HTTP/1.0\r\n\r\n")
        self.assertResponse(c.read_response(), 200, HELLO)
        self.assertClosed(c)

    def test_http11_connection_close(self):
        c = self.conn()
        c.send(request("GET", "/plaintext", [("Connection", "close")]))
        r = c.read_response()
        self.assertResponse(r, 200, HELLO, "text/plain")
        self.assertHeaderToken(r, "Connection", "close")
        self.assertClosed(c)

    def test_http11_connection_close_pipelined_rest_ignored(self):
        c = self.conn()
        c.send(request("GET", "/json") + request("GET", "/plaintext", [("Connection", "close")])
               + request("GET", "/json"))
        self.assertResponse(c.read_response(), 200, JSON)
        r = c.read_response()
        self.assertResponse(r, 200, HELLO)
        self.assertHeaderToken(r, "Connection", "close")
        self.assertClosed(c)

    def test_http11_keepalive_default(self):
        c = self.conn()
        c.send(request("GET", "/plaintext"))
        r = c.read_response()
        self.assertResponse(r, 200, HELLO)
        self.assertNotIn("close", (r.header("Connection") or "").lower())
        self.assertTrue(c.no_data_for(0.3))
        c.send(request("GET", "/json"))
        self.assertResponse(c.read_response(), 200, JSON)
