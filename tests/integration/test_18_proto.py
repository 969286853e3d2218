"""18. GET /proto: a zerohttp.demo.ItemList (proto/demo.proto) packed by zh_send_protobuf
straight into the send buffers. Bodies are checked twice: decoded by `protoc --decode` and
compared with the text protoc prints for the expected message, and compared byte for byte
with an encoding made here (proto3: fields at their default value are not sent)."""
import os
import shutil
import struct
import subprocess

from harness import REPO, ServerTestCase, request

PROTO_TYPE = "zerohttp.demo.ItemList"
TAGS = ("alpha", "beta")


def item(i):
    return {"id": i, "name": "item-%d" % i, "price": i * 1.25, "tags": TAGS,
            "active": i % 2 == 0}


def _varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(num, data):
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def itemlist_bytes(n):
    """The wire encoding of the ItemList /proto?n=n sends, fields in number order."""
    out = bytearray()
    for i in range(n):
        it = item(i)
        b = bytearray()
        if it["id"]:
            b += _varint(1 << 3) + _varint(it["id"])
        b += _len_field(2, it["name"].encode())
        if it["price"]:
            b += _varint(3 << 3 | 1) + struct.pack("<d", it["price"])
        for t in it["tags"]:
            b += _len_field(4, t.encode())
        if it["active"]:
            b += _varint(5 << 3) + b"\x01"
        out += _len_field(1, bytes(b))
    return bytes(out)


def itemlist_text(n):
    """What `protoc --decode=zerohttp.demo.ItemList` prints for that message."""
    lines = []
    for i in range(n):
        it = item(i)
        lines.append("items {")
        if it["id"]:
            lines.append("  id: %d" % it["id"])
        lines.append('  name: "%s"' % it["name"])
        if it["price"]:
            lines.append("  price: %s" % format(it["price"], ".15g"))
        for t in it["tags"]:
            lines.append('  tags: "%s"' % t)
        if it["active"]:
            lines.append("  active: true")
        lines.append("}")
    return "".join(line + "\n" for line in lines)


def protoc_decode(body):
    proc = subprocess.run(
        ["protoc", "--decode=" + PROTO_TYPE, "--proto_path=proto", "proto/demo.proto"],
        input=body, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, timeout=30)
    if proc.returncode != 0:
        raise AssertionError("protoc --decode failed (%d): %s"
                             % (proc.returncode, proc.stderr.decode(errors="replace")))
    return proc.stdout.decode()


class Proto(ServerTestCase):
    SERVER_ARGS = ("--workers", "1")

    def setUp(self):
        super().setUp()
        self.assertTrue(shutil.which("protoc"),
                        "protoc not installed (scripts/deps.sh installs protobuf-compiler)")

    def get(self, c, path, method="GET"):
        c.send(request(method, path))
        return c.read_response(method)

    def assertItemList(self, r, n):
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.header("Content-Type"), "application/x-protobuf", repr(r))
        self.assertEqual(r.header_all("Content-Length"), [str(len(r.body))], repr(r))
        self.assertIsNone(r.header("Transfer-Encoding"), repr(r))
        self.assertEqual(protoc_decode(r.body), itemlist_text(n))
        self.assertEqual(r.body, itemlist_bytes(n))

    def test_decoded_body_matches_the_message(self):
        c = self.conn()
        for path, n in (("/proto", 3), ("/proto?n=0", 0), ("/proto?n=7", 7),
                        ("/proto?n=100", 100), ("/proto?n=1", 1), ("/proto?n=007", 7),
                        ("/proto?x=1&n=5&y", 5), ("/proto?n=2&n=9", 2), ("/proto?m=9", 3)):
            with self.subTest(path=path):
                self.assertItemList(self.get(c, path), n)
        self.assertEqual(len(itemlist_bytes(0)), 0)
        self.assertEqual(protoc_decode(b""), "")

    def test_bad_n_is_400(self):
        c = self.conn()
        for q in ("n=abc", "n=101", "n=-1", "n=", "n", "n=7x", "n=1.5", "n=+1", "n=%37",
                  "n=99999999999999999999999", "x=1&n=1000"):
            with self.subTest(query=q):
                r = self.get(c, "/proto?" + q)
                self.assertEqual(r.status, 400, repr(r))
                self.assertNotEqual(r.header("Content-Type"), "application/x-protobuf")
        self.assertItemList(self.get(c, "/proto?n=4"), 4)   # the connection is still fine

    def test_head_announces_the_get_length_and_sends_no_body(self):
        c = self.conn()
        for n in (0, 7, 100):
            with self.subTest(n=n):
                h = self.get(c, "/proto?n=%d" % n, "HEAD")
                self.assertEqual(h.status, 200, repr(h))
                self.assertEqual(h.header("Content-Type"), "application/x-protobuf")
                self.assertEqual(h.header("Content-Length"), str(len(itemlist_bytes(n))))
                # a body after the HEAD response would be read as the next status line
                self.assertItemList(self.get(c, "/proto?n=%d" % n), n)

    def test_pipelined_bodies_are_exact(self):
        ns = [(i * 37) % 101 for i in range(60)] + [100] * 20
        c = self.conn()
        c.send(b"".join(request("GET", "/proto?n=%d" % n) for n in ns))
        for n in ns:
            r = c.read_response()
            self.assertEqual(r.status, 200, repr(r))
            self.assertEqual(r.header("Content-Length"), str(len(r.body)))
            self.assertEqual(r.body, itemlist_bytes(n), "n=%d" % n)
        self.assertTrue(c.no_data_for(0.05), "extra bytes after the last response")
        # the reference encoding itself agrees with protoc
        self.assertEqual(protoc_decode(itemlist_bytes(100)), itemlist_text(100))

    def test_other_methods_are_refused(self):
        c = self.conn()
        r = self.get(c, "/proto", "POST")
        self.assertEqual(r.status, 405, repr(r))
