"""40. zerohttpd -c FILE: every flag as a key, one per line; -t checks a config and exits 0
or 1 with the offending line; flags override the file (a repeatable flag replaces the file's
list); SIGHUP re-reads the file, applies the limits and names what needs a restart."""
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from harness import HELLO, HOST, ServerTestCase, free_port, request, server_bin, spawn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check(path, *args):
    """zerohttpd -t -c path: (exit status, stdout + stderr)."""
    p = subprocess.run([server_bin(), "-t", "-c", path] + list(args), capture_output=True,
                       text=True, timeout=10, cwd=REPO)
    return p.returncode, p.stdout + p.stderr


class ConfigCase(ServerTestCase):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        self.dir = d.name
        self.path = os.path.join(self.dir, "zerohttpd.conf")

    def write(self, text, path=None):
        with open(path or self.path, "w") as f:
            f.write(text)


class CheckTest(ConfigCase):
    def test_a_good_file_passes(self):
        self.write("# every kind of line\n\n   # an indented comment\nport 8080\n"
                   "  gzip   \nroot %s\ncors-origin https://a.example\n"
                   "cors-origin https://b.example\nrate-limit 100:200\n" % self.dir)
        rc, out = check(self.path)
        self.assertEqual(rc, 0, out)
        self.assertIn("the configuration in %s is good" % self.path, out)

    def test_each_bad_line_is_named_with_exit_status_1(self):
        cases = [
            ("port 99999\n", "%s:1: bad value '99999' for port: a port is 0 to 65535"),
            ("# ok\ngzip 1\n", "%s:2: 'gzip' is a switch: it takes no value"),
            ("workers\n", "%s:1: 'workers' needs a value (N)"),
            ("port 80\nbogus 1\n", "%s:2: unknown key 'bogus'"),
            ("config other.conf\n", "%s:1: unknown key 'config' (a command-line flag only)"),
            ("help\n", "%s:1: unknown key 'help' (a command-line flag only)"),
            ("rate-limit fast\n", "%s:1: bad value 'fast' for rate-limit"),
            ("--port 80\n", "%s:1: unknown key '--port'"),
        ]
        for text, want in cases:
            with self.subTest(text=text):
                self.write(text)
                rc, out = check(self.path)
                self.assertEqual(rc, 1, out)
                self.assertIn("zerohttpd: " + want % self.path, out)

    def test_missing_file_root_or_referenced_file(self):
        rc, out = check(os.path.join(self.dir, "nope.conf"))
        self.assertEqual(rc, 1, out)
        self.assertIn("cannot read the config file", out)
        self.write("root %s/missing\n" % self.dir)
        rc, out = check(self.path)
        self.assertEqual(rc, 1, out)
        self.assertIn("root %s/missing: No such file or directory" % self.dir, out)
        self.write("root %s\nbasic-auth %s/htpasswd\n" % (self.dir, self.dir))
        rc, out = check(self.path)
        self.assertEqual(rc, 1, out)
        self.assertIn("basic-auth %s/htpasswd: No such file" % self.dir, out)
        self.write("root %s\nuser no-such-user-zh\n" % self.dir)
        rc, out = check(self.path)
        self.assertEqual((rc, out), (1, "zerohttpd: no such user 'no-such-user-zh'\n"))
        limits = os.path.join(self.dir, "limits")
        self.write("max-inflight x\n", limits)
        self.write("root %s\nlimits-file %s\n" % (self.dir, limits))
        rc, out = check(self.path)
        self.assertEqual(rc, 1, out)
        self.assertIn("%s:1: expected" % limits, out)

    def test_the_flags_are_checked_too(self):
        self.write("root %s\n" % self.dir)
        rc, out = check(self.path, "--port", "x")
        self.assertEqual(rc, 2, out)
        self.assertIn("bad value 'x' for --port", out)
        rc, out = check(self.path, "--auth-prefix", "/a")
        self.assertEqual(rc, 2, out)
        self.assertIn("--auth-prefix needs --basic-auth", out)
        p = subprocess.run([server_bin(), "-t", "--root", self.dir], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("the configuration is good", p.stdout)


class ExampleFileTest(ConfigCase):
    """deploy/zerohttpd.conf lists every key of --help (but the command-line-only ones),
    commented out, and each of its example lines is a valid config on its own."""
    CLI_ONLY = {"config", "check-config", "help", "version"}
    NAMES_FILES = {"basic-auth", "bearer-tokens", "limits-file", "access-log"}

    def test_every_key_is_there_and_valid(self):
        helptext = subprocess.run([server_bin(), "--help"], capture_output=True, text=True,
                                  timeout=10).stdout
        keys = set(re.findall(r"^  --([a-z0-9-]+)", helptext, re.M)) - self.CLI_ONLY
        with open(os.path.join(REPO, "deploy", "zerohttpd.conf")) as f:
            lines = [l[1:].rstrip("\n") for l in f if re.match(r"#[a-z]", l)]
        self.assertEqual({l.split()[0] for l in lines}, keys)
        rc, out = check(os.path.join(REPO, "deploy", "zerohttpd.conf"), "--root", self.dir)
        self.assertEqual(rc, 0, out)
        for line in lines:
            key = line.split()[0]
            if key in self.NAMES_FILES:     # a path on a real host; here: a file of ours
                line = "%s %s" % (key, os.path.join(self.dir, "f"))
                self.write("rate-limit 1\n" if key == "limits-file" else "u:x\n",
                           os.path.join(self.dir, "f"))
            if key == "auth-prefix":         # needs credentials
                self.write("u:x\n", os.path.join(self.dir, "f"))
                line += "\nbearer-tokens %s" % os.path.join(self.dir, "f")
            self.write(line.replace("/srv/www", self.dir) + "\n")
            with self.subTest(line=line):
                rc, out = check(self.path, *(() if key == "root" else ("--root", self.dir)))
                self.assertEqual(rc, 0, out)


class ManPageTest(unittest.TestCase):
    """docs/zerohttpd.8 (installed by make install) documents exactly the flags of --help,
    and groff formats it without a warning."""

    def test_the_man_page_lists_every_flag(self):
        helptext = subprocess.run([server_bin(), "--help"], capture_output=True, text=True,
                                  timeout=10).stdout
        flags = re.findall(r"^  (--[a-z0-9-]+)", helptext, re.M)
        with open(os.path.join(REPO, "docs", "zerohttpd.8")) as f:
            page = f.read()
        documented = re.findall(r"^\.TP\n\.(?:B|BR|BI) \"?(\\-\\-[a-z0-9\\-]+)", page, re.M)
        self.assertEqual([d.replace("\\-", "-") for d in documented], flags)

    def test_groff_formats_it_cleanly(self):
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z",
                            os.path.join(REPO, "docs", "zerohttpd.8")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((p.returncode, p.stderr), (0, ""))


class ServeTest(ConfigCase):
    def test_the_file_configures_the_server(self):
        port = free_port()
        self.write("address %s\nport %d\nroot %s\ndemo\nmax-body 10\n" % (HOST, port, self.dir))
        proc = spawn(self, [server_bin(), "-c", self.path], stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT)
        c = self._connect(port, proc)
        c.send(request("GET", "/plaintext"))
        self.assertEqual(c.read_response().body, HELLO, "demo: on")
        c.send(request("POST", "/echo", body=b"x" * 11))
        self.assertEqual(c.read_response().status, 413, "max-body 10")
        c.close()
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(10), 0)

    def _connect(self, port, proc):
        from harness import RawConn
        deadline = time.monotonic() + 5
        while True:
            try:
                return self.track(RawConn(port))
            except OSError:
                self.assertIsNone(proc.poll(), "zerohttpd exited")
                self.assertLess(time.monotonic(), deadline, "not listening within 5 s")
                time.sleep(0.02)

    def test_flags_override_and_replace_lists(self):
        # the harness passes --port: it wins over the file's; the file's origin list is
        # replaced by the command line's
        self.write("port 1\ncors-origin https://file.example\ndemo\n")
        srv = self.start_server(["-c", self.path, "--cors-origin", "https://flag.example"])
        c = self.conn(srv.port)
        for origin, allowed in (("https://flag.example", True),
                                ("https://file.example", False)):
            c.send(request("GET", "/plaintext", headers=[("Origin", origin)]))
            r = c.read_response()
            self.assertEqual(r.body, HELLO)
            self.assertEqual(r.header("Access-Control-Allow-Origin") == origin, allowed,
                             "%s: %r" % (origin, r))

    def test_a_bad_file_stops_the_start(self):
        self.write("workers many\n")
        p = subprocess.run([server_bin(), "-c", self.path, "--port", "0"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertIn("%s:1: bad value 'many' for workers" % self.path, p.stderr)


class ReloadTest(ConfigCase):
    def log_count(self, srv, text):
        return srv.stderr_text(20000).count(text)

    def sighup(self, srv, until):
        n = self.log_count(srv, until)
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while self.log_count(srv, until) == n:
            self.assertLess(time.monotonic(), deadline, "no %r within 5 s" % until)
            time.sleep(0.01)

    def statuses(self, c, n):
        c.send(request("GET", "/plaintext") * n)
        return [c.read_response().status for _ in range(n)]

    def test_sighup_applies_new_limits_and_names_what_needs_a_restart(self):
        self.write("rate-limit 1000\nidle-timeout 60000\n")
        srv = self.start_server(["-c", self.path])
        c = self.conn(srv.port)
        self.assertEqual(self.statuses(c, 5), [200] * 5)
        self.write("rate-limit 1:2\nidle-timeout 30000\n")
        # the limits' line comes last, once they apply (after the config's "reloaded")
        self.sighup(srv, "limits: rate-limit 1:2 per client")
        log = srv.stderr_text(20000)
        self.assertIn("reloaded", log)
        self.assertIn("'idle-timeout' changed; it takes effect after a restart", log)
        self.assertNotIn("'rate-limit' changed", log)
        self.assertIn("limits: rate-limit 1:2 per client", log)
        self.assertEqual(self.statuses(c, 4), [200, 200, 429, 429])

    def test_a_bad_file_on_sighup_changes_nothing(self):
        self.write("rate-limit 1:3\n")
        srv = self.start_server(["-c", self.path])
        c = self.conn(srv.port)
        self.write("rate-limit 1000\nport nope\n")
        self.sighup(srv, "not reloaded; the settings in force stay")
        self.assertIn("%s:2: bad value 'nope' for port" % self.path, srv.stderr_text(20000))
        self.assertEqual(self.statuses(c, 5), [200] * 3 + [429] * 2, "still 1:3")

    def test_limits_added_by_a_reload_need_a_restart(self):
        self.write("# none\n")
        srv = self.start_server(["-c", self.path])
        self.write("rate-limit 1:1\n")
        self.sighup(srv, "reloaded")
        self.assertIn("new ones take effect after a restart", srv.stderr_text(20000))
        c = self.conn(srv.port)
        self.assertEqual(self.statuses(c, 3), [200] * 3)


if __name__ == "__main__":
    unittest.main()
