"""4. Requests arriving one byte at a time."""
import os

from harness import HELLO, ServerTestCase, request, chunked


class SplitWrites(ServerTestCase):
    def test_get_one_byte_writes(self):
        c = self.conn()
        c.send_slowly(request("GET", "/plaintext", [("User-Agent", "split-test"),
                                                    ("Accept", "*/*")]))
        self.assertResponse(c.read_response(), 200, HELLO, "text/plain")

    def test_post_echo_one_byte_writes(self):
        c = self.conn()
        body = os.urandom(48).hex().encode()
        c.send_slowly(request("POST", "/echo", [("Content-Type", "text/x-split")], body))
        self.assertResponse(c.read_response(), 200, body, "text/x-split")

    def test_post_echo_body_one_byte_writes_after_head(self):
        c = self.conn()
        body = b"0123456789abcdefghijklmnopqrstuvwxyz" * 3
        c.send(request("POST", "/echo", [("Content-Type", "text/x-split"),
                                         ("Content-Length", str(len(body)))]))
        c.send_slowly(body)
        self.assertResponse(c.read_response(), 200, body, "text/x-split")
        # the connection is still usable afterwards
        c.send(request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, HELLO)

    def test_chunked_one_byte_writes(self):
        c = self.conn()
        body = b"split chunked body " * 8
        c.send_slowly(request("POST", "/echo", [("Content-Type", "text/x-c"),
                                                ("Transfer-Encoding", "chunked")])
                      + chunked(body, [7, 1, 30, 13]))
        self.assertResponse(c.read_response(), 200, body, "text/x-c")
