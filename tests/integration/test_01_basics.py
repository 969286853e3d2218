"""1. Basics over http.client and curl: exact bodies, Content-Type, Content-Length, Date
(IMF-fixdate), Server."""
import calendar
import http.client
import os
import subprocess
import tempfile
import time

from harness import HELLO, HOST, IMF_FIXDATE, JSON, ServerTestCase

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class Basics(ServerTestCase):
    def http(self):
        c = http.client.HTTPConnection(HOST, self.port, timeout=5)
        return self.track(c)

    def check_date(self, value):
        m = IMF_FIXDATE.match(value or "")
        self.assertIsNotNone(m, "Date %r is not an IMF-fixdate" % value)
        wd, dd, mon, yyyy, hh, mi, ss = m.groups()
        tm = (int(yyyy), MONTHS.index(mon) + 1, int(dd), int(hh), int(mi), int(ss), 0, 0, 0)
        ts = calendar.timegm(tm)
        # weekday must agree with the date, and fields must be in range (timegm normalises)
        self.assertEqual(time.strftime("%a %d %b %Y %H:%M:%S", time.gmtime(ts)),
                         "%s %s %s %s %s:%s:%s" % (wd, dd, mon, yyyy, hh, mi, ss))
        self.assertIn(wd, DAYS)
        self.assertLess(abs(ts - time.time()), 5, "Date %r is not now" % value)

    def check(self, resp, body, ctype):
        data = resp.read()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.reason, "OK")
        self.assertEqual(data, body)
        self.assertEqual(resp.getheader("Content-Type"), ctype)
        self.assertEqual(resp.headers.get_all("Content-Length"), [str(len(body))])
        self.assertIsNone(resp.getheader("Transfer-Encoding"))
        self.assertEqual(resp.headers.get_all("Server"), ["zerohttp"])
        self.assertEqual(len(resp.headers.get_all("Date")), 1)
        self.check_date(resp.getheader("Date"))
        self.assertEqual(resp.version, 11)

    def test_plaintext_http_client(self):
        c = self.http()
        c.request("GET", "/plaintext")
        self.check(c.getresponse(), HELLO, "text/plain")

    def test_json_http_client(self):
        c = self.http()
        c.request("GET", "/json")
        self.check(c.getresponse(), JSON, "application/json")

    def test_echo_http_client(self):
        c = self.http()
        body = b"some \x00 binary \xff body"
        c.request("POST", "/echo", body=body, headers={"Content-Type": "application/x-test"})
        self.check(c.getresponse(), body, "application/x-test")
        c.request("PUT", "/echo", body=b"put-body", headers={"Content-Type": "text/x-put"})
        self.check(c.getresponse(), b"put-body", "text/x-put")

    def test_echo_empty_body(self):
        c = self.http()
        c.request("POST", "/echo", body=b"", headers={"Content-Type": "text/plain",
                                                        "Content-Length": "0"})
        self.check(c.getresponse(), b"", "text/plain")

    def test_query_string_ignored_for_routing(self):
        c = self.http()
        c.request("GET", "/plaintext?a=1&b=2")
        self.check(c.getresponse(), HELLO, "text/plain")

    def curl(self, *args):
        with tempfile.TemporaryDirectory() as d:
            hdr, out = os.path.join(d, "h"), os.path.join(d, "b")
            p = subprocess.run(["curl", "-sS", "--max-time", "10", "--noproxy", "*",
                                "-D", hdr, "-o", out] + list(args),
                               capture_output=True, timeout=20)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(hdr, "rb") as f:
                head = f.read().decode("latin-1")
            with open(out, "rb") as f:
                body = f.read()
        lines = head.split("\r\n")
        status = lines[0]
        headers = {}
        for line in lines[1:]:
            if line:
                k, v = line.split(":", 1)
                headers.setdefault(k.strip().lower(), []).append(v.strip())
        return status, headers, body

    def check_curl(self, status, headers, body, expect, ctype):
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertEqual(body, expect)
        self.assertEqual(headers.get("content-type"), [ctype])
        self.assertEqual(headers.get("content-length"), [str(len(expect))])
        self.assertEqual(headers.get("server"), ["zerohttp"])
        self.assertEqual(len(headers.get("date", [])), 1)
        self.check_date(headers["date"][0])

    def test_plaintext_curl(self):
        self.check_curl(*self.curl("http://%s:%d/plaintext" % (HOST, self.port)),
                        expect=HELLO, ctype="text/plain")

    def test_json_curl(self):
        self.check_curl(*self.curl("http://%s:%d/json" % (HOST, self.port)),
                        expect=JSON, ctype="application/json")

    def test_echo_curl(self):
        self.check_curl(*self.curl("-X", "POST", "--data-binary", "curl says hi",
                                   "-H", "Content-Type: text/x-curl",
                                   "http://%s:%d/echo" % (HOST, self.port)),
                        expect=b"curl says hi", ctype="text/x-curl")
