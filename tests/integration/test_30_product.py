"""30. zerohttpd as a product (issue 11), from outside with the built binary: the demo
routes only with --demo, the current directory as the default root, a busy port refused
unless --reuse-port, the command line (-h, --version, one-line usage errors, exit 2), the
timestamped log lines at start and stop, and --metrics-listen / --metrics-allow."""
import calendar
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import (HELLO, HOST, JSON, REPO, RawConn, Server, ServerTestCase, free_port,
                     metrics, request, server_bin)

LOG_LINE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z "
                      r"(info|warn|error) zerohttpd: (.*)$")


def version():
    with open(os.path.join(REPO, "include", "zerohttp.h")) as f:
        return re.search(r'#define ZH_VERSION "([^"]+)"', f.read()).group(1)


def run_bin(*args, timeout=10):
    return subprocess.run([server_bin()] + list(args), capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ask(port, method, path, body=b"", headers=None):
    c = RawConn(port)
    try:
        c.send(request(method, path, list(headers or []) + [("Connection", "close")], body))
        return c.read_response(method)
    finally:
        c.close()


def log_lines(text):
    """The parsed daemon lines: (epoch seconds, level, message); fails on any other line."""
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            raise AssertionError("not a timestamped log line: %r" % line)
        t = calendar.timegm(tuple(int(x) for x in m.groups()[:6])) + int(m.group(7)) / 1000
        out.append((t, m.group(8), m.group(9)))
    return out


class ProductCase(ServerTestCase):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(prefix="zh-product-")
        self.addCleanup(shutil.rmtree, self.root, True)
        with open(os.path.join(self.root, "json"), "wb") as f:
            f.write(b"the site's own file named json\n")
        with open(os.path.join(self.root, "index.html"), "wb") as f:
            f.write(b"<p>home</p>\n")

    def serve(self, args=(), demo=False, **kw):
        """A zerohttpd, once it logged its start line: the main port accepts (in the kernel)
        from zh_server_new on, before the rest is set up (the --metrics-listen server)."""
        srv = Server(list(args), demo=demo, **kw).start()
        self._servers.append(srv)
        deadline = time.monotonic() + 5
        while "listening on" not in srv.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        return srv


class DemoRoutes(ProductCase):
    """The demo routes shadowed the user's files and answered /echo on a real site."""

    def test_without_demo_only_files_and_monitoring(self):
        srv = self.serve(["--root", self.root])
        r = ask(srv.port, "GET", "/json")
        self.assertResponse(r, 200, b"the site's own file named json\n")
        self.assertResponse(ask(srv.port, "GET", "/plaintext"), 404)
        r = ask(srv.port, "POST", "/echo", b"echo me")
        self.assertIn(r.status, (404, 405), repr(r))
        self.assertNotEqual(r.body, b"echo me")
        r = ask(srv.port, "GET", "/stream?bytes=5000")
        self.assertEqual(r.status, 404, repr(r))
        self.assertNotEqual(len(r.body), 5000)
        for path in ("/json/list", "/json/list64k", "/proto", "/delay?ms=1"):
            self.assertEqual(ask(srv.port, "GET", path).status, 404, path)
        self.assertIn(ask(srv.port, "POST", "/upload", b"x").status, (404, 405))
        for path in ("/healthz", "/readyz", "/metrics"):
            self.assertEqual(ask(srv.port, "GET", path).status, 200, path)

    def test_with_demo_the_routes_answer(self):
        srv = self.serve(["--root", self.root], demo=True)
        self.assertResponse(ask(srv.port, "GET", "/plaintext"), 200, HELLO)
        self.assertResponse(ask(srv.port, "GET", "/json"), 200, JSON)
        self.assertResponse(ask(srv.port, "POST", "/echo", b"echo me"), 200, b"echo me")
        r = ask(srv.port, "GET", "/stream?bytes=5000")
        self.assertEqual(len(r.body), 5000)
        self.assertEqual(r.body[:3], bytes([0, 1, 2]))
        self.assertResponse(ask(srv.port, "GET", "/index.html"), 200, b"<p>home</p>\n")

    def test_default_root_is_the_current_directory(self):
        srv = self.serve(cwd=self.root, base_args=False)
        self.assertResponse(ask(srv.port, "GET", "/index.html"), 200, b"<p>home</p>\n")
        start = [m for _, _, m in log_lines(srv.stderr_text()) if "listening on" in m]
        self.assertIn("root=%s " % os.path.realpath(self.root), start[0])

    def test_usage_documents_the_defaults(self):
        out = run_bin("--help").stdout.decode()
        self.assertRegex(out, r"--root DIR +document root \(default: the current directory\)")
        self.assertIn("--demo", out)


class Listening(ProductCase):
    """A second server on a busy port started silently and took half the requests."""

    def assertRefused(self, port, *extra):
        p = subprocess.Popen([server_bin(), "--address", HOST, "--port", str(port)] +
                             list(extra), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.fail("zerohttpd started on port %d, which another socket holds" % port)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("address already in use", err.decode().lower())
        lines = log_lines(err.decode())
        self.assertEqual(lines[-1][1], "error")

    def test_second_zerohttpd_on_the_port_exits_non_zero(self):
        first = self.serve(["--root", self.root])
        self.assertRefused(first.port, "--root", self.root)
        # the first one still gets every request
        for _ in range(20):
            self.assertResponse(ask(first.port, "GET", "/json"), 200,
                                b"the site's own file named json\n")

    def listener(self, reuseport):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        if reuseport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((HOST, 0))
        s.listen(8)
        return s.getsockname()[1]

    def test_plain_python_listener_makes_zerohttpd_fail(self):
        self.assertRefused(self.listener(False))

    def test_python_listener_with_so_reuseport_makes_zerohttpd_fail(self):
        self.assertRefused(self.listener(True))

    def test_reuse_port_on_both_shares(self):
        first = self.serve(["--root", self.root, "--reuse-port", "--workers", "1"])
        second = self.serve(["--root", self.root, "--reuse-port", "--workers", "1"],
                            port=first.port)
        self.assertTrue(first.alive() and second.alive())
        self.assertRegex(second.stderr_text(), r"features=\S*reuse-port")

    def test_port_zero_picks_a_free_port(self):
        p = subprocess.Popen([server_bin(), "--address", HOST, "--port", "0", "--root",
                              self.root], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        try:
            line = p.stderr.readline().decode()
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
            self.assertIsNotNone(m, line)
            self.assertNotEqual(int(m.group(1)), 0)
            self.assertEqual(ask(int(m.group(1)), "GET", "/healthz").status, 200)
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=10), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()


class CommandLine(unittest.TestCase):
    def test_help(self):
        for flag in ("-h", "--help"):
            r = run_bin(flag)
            self.assertEqual(r.returncode, 0)
            self.assertTrue(r.stdout.startswith(b"usage: zerohttpd"), r.stdout[:80])
            self.assertEqual(r.stderr, b"")
            for opt in (b"--reuse-port", b"--metrics-listen", b"--metrics-allow",
                        b"--version", b"--demo"):
                self.assertIn(opt, r.stdout)

    def test_version(self):
        r = run_bin("--version")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout.decode(), "zerohttpd %s\n" % version())
        self.assertEqual(r.stderr, b"")

    def assertUsageError(self, args, first_line):
        r = run_bin(*args)
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stdout, b"")
        self.assertEqual(r.stderr.decode().splitlines(),
                         [first_line, "Try 'zerohttpd --help'."])

    def test_unknown_option_is_one_line_and_a_hint(self):
        self.assertUsageError(["--foo"], "zerohttpd: unknown option '--foo'")
        self.assertUsageError(["--foo=1"], "zerohttpd: unknown option '--foo'")
        self.assertUsageError(["-x"], "zerohttpd: unknown option '-x'")

    def test_missing_value(self):
        self.assertUsageError(["--port"], "zerohttpd: option '--port' needs a value (N)")

    def test_bad_value_and_stray_argument(self):
        self.assertUsageError(["--port", "70000"],
                              "zerohttpd: bad value '70000' for --port: a port is 0 to 65535")
        self.assertUsageError(["--workers=x"], "zerohttpd: bad value 'x' for --workers: "
                              "not a number in range")
        self.assertUsageError(["www"], "zerohttpd: unexpected argument 'www'")
        self.assertUsageError(["--demo=1"], "zerohttpd: option '--demo' takes no value")
        self.assertUsageError(["--metrics-allow", "10.0.0.1/8"], "zerohttpd: bad value "
                              "'10.0.0.1/8' for --metrics-allow: host bits set past the "
                              "prefix length")
        self.assertUsageError(["--metrics-listen", "localhost:9100"], "zerohttpd: bad value "
                              "'localhost:9100' for --metrics-listen: ADDR:PORT, with an IPv4 "
                              "address or [IPv6]")


class Logs(ProductCase):
    def test_start_line(self):
        log = os.path.join(self.root, "access.log")
        srv = self.serve(["--root", self.root, "--workers", "2", "--gzip", "--access-log", log,
                          "--cors-origin", "*", "--rate-limit", "100"], demo=True)
        lines = log_lines(srv.stderr_text())
        start = [(t, lvl, m) for t, lvl, m in lines if "listening on" in m]
        self.assertEqual(len(start), 1, lines)
        t, level, msg = start[0]
        self.assertEqual(level, "info")
        self.assertLess(abs(t - time.time()), 60)
        self.assertTrue(msg.startswith("listening on http://127.0.0.1:%d/ version=%s "
                                       % (srv.port, version())), msg)
        self.assertIn("workers=2", msg)
        self.assertIn("root=%s " % os.path.realpath(self.root), msg)
        feats = re.search(r"features=(\S+)", msg).group(1).split(",")
        self.assertEqual(sorted(feats), sorted(["demo", "gzip", "metrics", "access-log",
                                                "cors", "limits", "http2"]))

    def stop(self, srv):
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(15), 0)
        srv.expected_exit = True
        return log_lines(srv.stderr_text())

    def test_stop_line_counts_drained_connections(self):
        srv = self.serve(["--root", self.root, "--workers", "1"], demo=True)
        c = RawConn(srv.port)
        self.addCleanup(c.close)
        c.send(request("GET", "/delay?ms=600"))
        time.sleep(0.2)
        lines = self.stop(srv)
        self.assertEqual(c.read_response().status, 200)
        t, level, msg = lines[-1]
        self.assertEqual(level, "info")
        self.assertEqual(msg, "stopped on SIGTERM: 1 connections open at the drain, 1 drained, "
                              "0 force-closed at --drain-timeout; exit status 0")

    def test_stop_line_counts_force_closed_connections(self):
        srv = self.serve(["--root", self.root, "--workers", "1", "--drain-timeout", "300"],
                         demo=True)
        c = RawConn(srv.port)
        self.addCleanup(c.close)
        c.send(request("GET", "/delay?ms=5000"))
        time.sleep(0.2)
        lines = self.stop(srv)
        self.assertIn("1 connections open at the drain, 0 drained, 1 force-closed",
                      lines[-1][2])

    def test_error_lines_have_the_format(self):
        r = run_bin("--root", "/nonexistent-zh-root", "--port", "0")
        self.assertEqual(r.returncode, 1)
        lines = log_lines(r.stderr.decode())
        self.assertEqual(lines[0][1], "error")
        self.assertIn("cannot serve --root /nonexistent-zh-root", lines[0][2])
        self.assertEqual(lines[-1][1:], ("error", "not started; exit status 1"))


class MetricsListener(ProductCase):
    """/metrics was open to anyone who reached the port."""

    def test_listener_on_the_main_port_is_refused_even_with_reuse_port(self):
        # with --reuse-port both servers would bind it and requests would split between them
        port = free_port()
        for main, metrics in (("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"),
                              ("127.0.0.1", "0.0.0.0")):
            r = run_bin("--root", self.root, "--address", main, "--port", str(port),
                        "--reuse-port", "--metrics-listen", "%s:%d" % (metrics, port))
            self.assertEqual(r.returncode, 1, (main, metrics, r.stderr))
            self.assertIn(b"is the main listener's address and port", r.stderr)

    def test_separate_listener_serves_monitoring_only(self):
        mport = free_port()
        srv = self.serve(["--root", self.root, "--metrics-listen", "127.0.0.1:%d" % mport],
                         demo=True)
        r = ask(srv.port, "GET", "/metrics")
        self.assertEqual(r.status, 404, "the main port still serves /metrics: %r" % r)
        self.assertEqual(ask(srv.port, "GET", "/healthz").status, 200)
        self.assertEqual(ask(srv.port, "GET", "/readyz").status, 200)
        ask(srv.port, "GET", "/plaintext")
        m = metrics(mport)
        self.assertEqual(m['zerohttp_build_info{version="%s"}' % version()], 1)
        # the main server's counters (the /plaintext above), not the listener's own
        self.assertGreaterEqual(m["zerohttp_connections_accepted_total"], 4)
        self.assertEqual(ask(mport, "GET", "/healthz").status, 200)
        self.assertEqual(ask(mport, "GET", "/readyz").status, 200)
        for path in ("/plaintext", "/index.html", "/json"):
            self.assertEqual(ask(mport, "GET", path).status, 404, path)
        self.assertIn("metrics-listen=127.0.0.1:%d" % mport, srv.stderr_text())

    def test_readyz_on_the_listener_follows_the_main_drain(self):
        mport = free_port()
        srv = self.serve(["--root", self.root, "--workers", "1", "--metrics-listen",
                          "127.0.0.1:%d" % mport], demo=True)
        c = RawConn(srv.port)
        self.addCleanup(c.close)
        c.send(request("GET", "/delay?ms=1500"))
        time.sleep(0.2)
        srv.signal(signal.SIGTERM)
        time.sleep(0.2)
        r = ask(mport, "GET", "/readyz")
        self.assertEqual(r.status, 503, repr(r))
        self.assertEqual(c.read_response().status, 200)
        self.assertEqual(srv.wait_exit(15), 0)
        srv.expected_exit = True

    def test_busy_metrics_port_is_refused(self):
        holder = self.serve(["--root", self.root])
        r = run_bin("--port", "0", "--root", self.root, "--metrics-listen",
                    "127.0.0.1:%d" % holder.port)
        self.assertEqual(r.returncode, 1)
        self.assertIn("address already in use", r.stderr.decode().lower())

    def test_allow_list_on_the_main_port(self):
        srv = self.serve(["--root", self.root, "--metrics-allow", "10.0.0.0/8",
                          "--metrics-allow", "::1/128"])
        r = ask(srv.port, "GET", "/metrics")
        self.assertEqual(r.status, 403, repr(r))
        self.assertNotIn(b"zerohttp_", r.body)
        self.assertEqual(ask(srv.port, "GET", "/healthz").status, 200)
        srv2 = self.serve(["--root", self.root, "--metrics-allow", "10.0.0.0/8",
                           "--metrics-allow", "127.0.0.0/8"])
        self.assertEqual(ask(srv2.port, "GET", "/metrics").status, 200)

    def test_allow_list_on_the_metrics_listener(self):
        mport = free_port()
        self.serve(["--root", self.root, "--metrics-listen", "127.0.0.1:%d" % mport,
                    "--metrics-allow", "192.0.2.0/24"])
        self.assertEqual(ask(mport, "GET", "/metrics").status, 403)
        self.assertEqual(ask(mport, "GET", "/readyz").status, 200)
        mport2 = free_port()
        self.serve(["--root", self.root, "--metrics-listen", "127.0.0.1:%d" % mport2,
                    "--metrics-allow", "127.0.0.1"])
        self.assertEqual(ask(mport2, "GET", "/metrics").status, 200)


if __name__ == "__main__":
    unittest.main()
