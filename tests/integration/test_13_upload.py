"""13. Streaming request bodies (POST /upload, a ZH_ROUTE_STREAM_BODY route): bodies far over
max_body pass through a fixed buffer; RSS stays flat; every framing gives the same bytes."""
import os
import subprocess
import tempfile

from harness import HELLO, ServerTestCase, chunked, request, rss_kib

SIZE = 6 * 1024 * 1024  # 6x the default max_body


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h



class Upload(ServerTestCase):
    SERVER_ARGS = ("--workers", "1")

    def setUp(self):
        super().setUp()
        # a repeating pattern keeps the expected hash cheap to compute in Python
        self.block = os.urandom(65536)
        self.reps = SIZE // len(self.block)
        h = 0xcbf29ce484222325
        for _ in range(self.reps):
            for b in self.block:
                h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        self.want = b"%d %016x\n" % (SIZE, h)
        fd, self.path = tempfile.mkstemp()
        with os.fdopen(fd, "wb") as f:
            for _ in range(self.reps):
                f.write(self.block)

    def tearDown(self):
        os.unlink(self.path)
        super().tearDown()

    def curl(self, *extra):
        out = subprocess.run(["curl", "-sS", "--max-time", "60", "--data-binary", "@" + self.path,
                              *extra, "http://127.0.0.1:%d/upload" % self.port],
                             capture_output=True, timeout=90)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def test_large_bodies_in_every_framing_with_flat_rss(self):
        before = rss_kib(self.server.pid)
        self.assertEqual(self.curl(), self.want)
        self.assertEqual(self.curl("-H", "Transfer-Encoding: chunked"), self.want)
        self.assertEqual(self.curl("-H", "Expect: 100-continue"), self.want)
        grown = rss_kib(self.server.pid) - before
        print("\n  3 x %d MiB uploads: RSS grew %d KiB" % (SIZE >> 20, grown))
        self.assertLess(grown, 4096, "a streamed body must not be buffered")

    def test_pipelined_after_streamed_chunked_body(self):
        body = os.urandom(300000)
        c = self.conn()
        c.send(request("POST", "/upload", [("Transfer-Encoding", "chunked")],
                       chunked(body, [1, 4096, 77777, 13])) +
               request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, b"%d %016x\n" % (len(body), fnv1a(body)))
        self.assertResponse(c.read_response(), 200, HELLO)

    def test_small_body_in_the_same_packet_as_the_head(self):
        c = self.conn()
        c.send(request("POST", "/upload", [("Content-Length", "5")], b"hello") +
               request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, b"5 %016x\n" % fnv1a(b"hello"))
        self.assertResponse(c.read_response(), 200, HELLO)
