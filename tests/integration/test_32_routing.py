"""32. Routing from outside: path parameters (the demo's /users/{id}...), 405 with Allow
on a pattern, the most specific pattern winning over the static root, methods choosing
among the patterns that match a path (Go 1.22: the static root takes a GET of /echo,
which is POST|PUT; 405 lists every matching pattern's methods), virtual hosts
(zerohttpd --vhost HOST=DIR), and an application's error handler answering the library's
own errors in JSON (tests/json_server.c: 404, 405, 413, 431, 400), the connection closing
whenever the framing is in doubt."""
import json
import os
import shutil
import subprocess
import tempfile

from harness import ServerTestCase, request
from test_19_json import JsonServer


def curl(port, path, *args):
    """(status, headers text, body bytes) of curl against 127.0.0.1:port."""
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "--noproxy", "*", "-D", "-",
                        "-o", "-", "--path-as-is"] + list(args) +
                       ["http://127.0.0.1:%d%s" % (port, path)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20, check=True)
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin-1"), body


class DemoRoutes(ServerTestCase):
    def test_path_params_decoded_with_curl(self):
        status, _, body = curl(self.port, "/users/42")
        self.assertEqual((status, body), (200, b"route=/users/{id} id=42 path=-\n"))
        status, _, body = curl(self.port, "/users/J%C3%BCrgen%20K/files/docs%2Fa/b%3Fc.txt")
        self.assertEqual(status, 200, body)
        self.assertEqual(body, "route=/users/{id}/files/{path...} id=J\u00fcrgen K "
                               "path=docs/a/b?c.txt\n".encode())
        # {id} takes no empty segment and {path...} needs the slash: the static root answers
        for path in ("/users/", "/users/1/files"):
            status, _, body = curl(self.port, path)
            self.assertEqual(status, 404, path)

    def test_method_mismatch_is_405_with_the_patterns_allow(self):
        c = self.conn()
        c.send(request("DELETE", "/users/9/files/x"))
        r = c.read_response()
        self.assertEqual(r.status, 405, repr(r))
        self.assertEqual(r.header_all("Allow"), ["GET, HEAD, OPTIONS"])
        c.send(request("HEAD", "/users/9"))
        r = c.read_response(method="HEAD")
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.header("Content-Length"), str(len(b"route=/users/{id} id=9 path=-\n")))
        c.send(request("OPTIONS", "/users/9"))
        r = c.read_response()
        self.assertEqual((r.status, r.header("Allow")), (200, "GET, HEAD, OPTIONS"))

    def test_pipelined_params_each_get_their_own_value(self):
        c = self.conn()
        n = 64
        c.send(b"".join(request("GET", "/users/a%%20%d/files/p%%2F%d" % (i, i))
                        for i in range(n)))
        for i in range(n):
            r = c.read_response()
            self.assertEqual(r.body, b"route=/users/{id}/files/{path...} id=a %d path=p/%d\n"
                             % (i, i))


class MethodsAcrossPatterns(ServerTestCase):
    """Go 1.22's rule from outside: zerohttpd's static root is GET|HEAD "/" (a prefix) and
    the demo's /echo is POST|PUT. A GET of /echo goes to the static root (the most specific
    pattern with GET), not to a 405; a method no pattern of the path has is a 405 whose
    Allow lists the methods of both."""
    AUTO_START = False

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(prefix="zh-methods-")
        self.addCleanup(shutil.rmtree, self.root, True)
        with open(os.path.join(self.root, "echo"), "wb") as f:
            f.write(b"static echo\n")
        self.server = self.start_server(["--root", self.root])
        self.port = self.server.port

    def test_get_goes_to_the_less_specific_pattern_that_has_it(self):
        status, _, body = curl(self.port, "/echo")
        self.assertEqual((status, body), (200, b"static echo\n"))
        c = self.conn()
        c.send(request("HEAD", "/echo") + request("POST", "/echo", body=b"posted") +
               request("PUT", "/echo", body=b"put"))
        r = c.read_response(method="HEAD")
        self.assertEqual((r.status, r.header("Content-Length")), (200, "12"), repr(r))
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"posted"), repr(r))
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"put"), repr(r))

    def test_405_allow_lists_every_matching_pattern(self):
        c = self.conn()
        c.send(request("DELETE", "/echo") + request("OPTIONS", "/echo") +
               request("PATCH", "/users/9"))
        r = c.read_response()
        self.assertEqual(r.status, 405, repr(r))
        self.assertEqual(r.header_all("Allow"), ["GET, HEAD, POST, PUT, OPTIONS"])
        r = c.read_response()
        self.assertEqual((r.status, r.header("Allow")), (200, "GET, HEAD, POST, PUT, OPTIONS"))
        r = c.read_response()   # /users/{id} and the root: both GET|HEAD
        self.assertEqual((r.status, r.header("Allow")), (405, "GET, HEAD, OPTIONS"), repr(r))


class VirtualHosts(ServerTestCase):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        self.dirs = tempfile.mkdtemp(prefix="zh-vhost-")
        self.addCleanup(shutil.rmtree, self.dirs, True)
        for name, text in (("a", b"site a\n"), ("b", b"site b\n"), ("root", b"root\n")):
            os.mkdir(os.path.join(self.dirs, name))
            with open(os.path.join(self.dirs, name, "index.txt"), "wb") as f:
                f.write(text)
        self.server = self.start_server(["--root", os.path.join(self.dirs, "root"),
                                         "--vhost", "a.example=" + os.path.join(self.dirs, "a"),
                                         "--vhost", "B.Example=" + os.path.join(self.dirs, "b")])
        self.port = self.server.port

    def test_each_host_gets_its_root(self):
        for host, want in (("a.example", b"site a\n"), ("A.EXAMPLE:8080", b"site a\n"),
                           ("b.example.", b"site b\n"), ("c.example", b"root\n"),
                           ("127.0.0.1", b"root\n")):
            status, _, body = curl(self.port, "/index.txt", "-H", "Host: " + host)
            self.assertEqual((status, body), (200, want), host)
        # host-less routes answer other hosts only: a.example's files claim every path
        status, _, body = curl(self.port, "/users/1", "-H", "Host: a.example")
        self.assertEqual(status, 404)
        status, _, body = curl(self.port, "/users/1", "-H", "Host: c.example")
        self.assertEqual((status, body), (200, b"route=/users/{id} id=1 path=-\n"))

    def test_a_bad_vhost_is_refused_at_start(self):
        p = subprocess.run([self.server_path(), "--port", "0", "--vhost", "a b=/tmp"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn(b"--vhost a b=/tmp: not a host name", p.stdout)
        p = subprocess.run([self.server_path(), "--port", "0", "--vhost", "nodir"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        self.assertEqual(p.returncode, 2, p.stdout)

    def server_path(self):
        from harness import server_bin
        return server_bin()


class JsonErrors(ServerTestCase):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        srv = JsonServer().start()
        self._servers.append(srv)
        self.port = srv.port

    def json_error(self, r, status, route=None, parsed=True):
        self.assertEqual(r.status, status, repr(r))
        self.assertEqual(r.header("Content-Type"), "application/json", repr(r))
        self.assertEqual(json.loads(r.body), {"error": status, "route": route,
                                              "parsed": parsed})

    def test_params_and_not_found_in_json(self):
        status, head, body = curl(self.port, "/items/a%2Fb%20c")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"id": "a/b c", "route": "/items/{id}"})
        c = self.conn()
        c.send(request("GET", "/nope") + request("POST", "/items/1", body=b"x") +
               request("GET", "/items/2"))
        self.json_error(c.read_response(), 404)
        r = c.read_response()
        self.json_error(r, 405)
        self.assertEqual(r.header("Allow"), "GET, HEAD, OPTIONS")
        r = c.read_response()      # 404 and 405 keep the connection
        self.assertEqual(json.loads(r.body), {"id": "2", "route": "/items/{id}"})

    def test_too_large_body_in_json_and_closed(self):
        c = self.conn()
        c.send(request("GET", "/items/3", [("Content-Length", "100000000")]))
        r = c.read_response()
        self.json_error(r, 413, route="/items/{id}")
        self.assertEqual(r.header("Connection"), "close")
        self.assertClosed(c)

    def test_header_errors_in_json_and_closed(self):
        c = self.conn()
        c.send(request("GET", "/items/4", [("X-H%d" % i, "v") for i in range(120)]))
        r = c.read_response()
        self.json_error(r, 431, parsed=False)
        self.assertEqual(r.header("Connection"), "close")
        self.assertClosed(c)
        # a refused head: what follows it is never read as a request
        c = self.conn()
        c.send(b"GET /items/5 HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n" +
               request("GET", "/items/6"))
        r = c.read_response()
        self.json_error(r, 400, parsed=False)
        self.assertClosed(c)
