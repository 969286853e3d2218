"""5. Large and chunked bodies through POST /echo."""
import http.client
import os
import random
import socket
import subprocess
import tempfile
import time

from harness import HOST, ServerTestCase, chunked, request

BIG = 900 * 1024          # under the 1 MiB default max_body


class LargeBodies(ServerTestCase):
    def test_900k_echo_http_client(self):
        body = os.urandom(BIG)
        c = self.track(http.client.HTTPConnection(HOST, self.port, timeout=10))
        c.request("POST", "/echo", body=body, headers={"Content-Type": "application/x-big"})
        r = c.getresponse()
        data = r.read()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Length"), str(BIG))
        self.assertEqual(r.getheader("Content-Type"), "application/x-big")
        self.assertEqual(len(data), BIG)
        self.assertTrue(data == body, "900 KB echo differs")
        # and the connection is reusable, twice more
        for _ in range(2):
            body2 = os.urandom(BIG)
            c.request("POST", "/echo", body=body2, headers={"Content-Type": "a/b"})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertTrue(r.read() == body2)

    def test_900k_echo_tiny_rcvbuf_slow_reader(self):
        body = os.urandom(BIG)
        c = self.conn(rcvbuf=4096, timeout=10)
        c.send(request("POST", "/echo", [("Content-Type", "application/x-slow")], body))
        head = c.read_head()
        self.assertEqual(head[1], 200, head)
        hdrs = {k.lower(): v for k, v in head[3]}
        self.assertEqual(hdrs.get("content-length"), str(BIG))
        got = bytearray(c.buf)
        c.buf.clear()
        reads = 0
        while len(got) < BIG:
            chunk = c.sock.recv(min(2048, BIG - len(got)))
            self.assertTrue(chunk, "connection closed after %d of %d body bytes"
                            % (len(got), BIG))
            got += chunk
            reads += 1
            if reads % 4 == 0:
                time.sleep(0.001)
        self.assertTrue(bytes(got) == body, "slowly-read 900 KB echo differs")
        # keep-alive still works after the partial writes
        c.send(request("POST", "/echo", [("Content-Type", "t/x")], b"after"))
        self.assertResponse(c.read_response(), 200, b"after", "t/x")

    def test_100k_chunked_echo(self):
        rnd = random.Random(5)
        body = os.urandom(100 * 1024)
        sizes = [rnd.randint(1, 5000) for _ in range(200)] + [1, 2, 3, 16384, 20000]
        rnd.shuffle(sizes)
        enc = chunked(body, sizes, ext_first=True, trailer=True, upper=True)
        self.assertIn(b";name=value", enc)
        c = self.conn(timeout=10)
        c.send(request("POST", "/echo", [("Content-Type", "application/x-chunked"),
                                         ("Transfer-Encoding", "chunked")]) + enc)
        r = c.read_response()
        self.assertResponse(r, 200, None, "application/x-chunked")
        self.assertEqual(len(r.body), len(body))
        self.assertTrue(r.body == body, "chunked echo differs")
        c.send(request("GET", "/plaintext"))
        self.assertEqual(c.read_response().status, 200)

    def test_chunked_echo_sent_in_pieces(self):
        body = os.urandom(30000)
        enc = chunked(body, [1000, 1, 4093, 77])
        c = self.conn(timeout=10)
        c.send(request("POST", "/echo", [("Content-Type", "a/b"),
                                         ("Transfer-Encoding", "chunked")]))
        # cut the stream at awkward places (inside sizes, CRLFs, data)
        pos = 0
        rnd = random.Random(9)
        while pos < len(enc):
            n = rnd.randint(1, 3000)
            c.send(enc[pos:pos + n])
            pos += n
            time.sleep(0.0005)
        r = c.read_response()
        self.assertResponse(r, 200, None, "a/b")
        self.assertTrue(r.body == body)

    def test_curl_chunked_upload(self):
        body = os.urandom(200 * 1024)
        with tempfile.TemporaryDirectory() as d:
            src, out = os.path.join(d, "in"), os.path.join(d, "out")
            with open(src, "wb") as f:
                f.write(body)
            p = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "20",
                                "--data-binary", "@" + src,
                                "-H", "Transfer-Encoding: chunked",
                                "-H", "Content-Type: application/x-curl",
                                "-o", out, "-w", "%{http_code} %{content_type}",
                                "http://%s:%d/echo" % (HOST, self.port)],
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.decode(), "200 application/x-curl")
            with open(out, "rb") as f:
                self.assertTrue(f.read() == body, "curl chunked echo differs")

    def test_curl_large_upload(self):
        body = os.urandom(BIG)
        with tempfile.TemporaryDirectory() as d:
            src, out = os.path.join(d, "in"), os.path.join(d, "out")
            with open(src, "wb") as f:
                f.write(body)
            p = subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "20",
                                "--data-binary", "@" + src, "-H", "Content-Type: a/b",
                                "-o", out, "-w", "%{http_code}",
                                "http://%s:%d/echo" % (HOST, self.port)],
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.decode(), "200")
            with open(out, "rb") as f:
                self.assertTrue(f.read() == body, "curl 900 KB echo differs")
