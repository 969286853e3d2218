"""3. Pipelining: 100 mixed requests in one sendall, 100 responses in order."""
import os

from harness import HELLO, JSON, ServerTestCase, request


class Pipelining(ServerTestCase):
    def build(self, n, tag):
        reqs, expect = [], []
        for i in range(n):
            kind = i % 3
            if kind == 0:
                reqs.append(request("GET", "/plaintext"))
                expect.append((HELLO, "text/plain"))
            elif kind == 1:
                reqs.append(request("GET", "/json"))
                expect.append((JSON, "application/json"))
            else:
                body = ("%s-%03d-" % (tag, i)).encode() + os.urandom(i % 37).hex().encode()
                ctype = "application/x-req-%d" % i
                reqs.append(request("POST", "/echo", [("Content-Type", ctype)], body))
                expect.append((body, ctype))
        return b"".join(reqs), expect

    def check_all(self, c, expect):
        for i, (body, ctype) in enumerate(expect):
            r = c.read_response()
            self.assertEqual(r.status, 200, "response %d: %r" % (i, r))
            self.assertEqual(r.body, body, "response %d" % i)
            self.assertEqual(r.header("Content-Type"), ctype, "response %d" % i)
            self.assertEqual(r.header("Content-Length"), str(len(body)), "response %d" % i)

    def test_100_pipelined(self):
        c = self.conn()
        data, expect = self.build(100, "a")
        c.send(data)
        self.check_all(c, expect)
        self.assertTrue(c.no_data_for(0.2), "extra bytes after the 100th response")

    def test_pipelined_twice_same_connection(self):
        c = self.conn()
        for rnd in range(3):
            data, expect = self.build(100, "r%d" % rnd)
            c.send(data)
            self.check_all(c, expect)

    def test_pipelined_bigger_than_receive_buffer(self):
        # ~64 KiB of pipelined requests (several receive buffers' worth)
        c = self.conn()
        data, expect = self.build(600, "big")
        self.assertGreater(len(data), 40000)
        c.send(data)
        self.check_all(c, expect)
