"""41. zerohttpd as a service: the sd_notify(3) protocol on $NOTIFY_SOCKET (READY=1 once
the port accepts, RELOADING=1 with MONOTONIC_USEC then READY=1 on SIGHUP, STOPPING=1 on
SIGTERM), read by a test that plays systemd's part; --user/--group drop root's rights
after binding."""
import os
import grp
import pwd
import re
import signal
import subprocess
import socket
import tempfile
import time
import unittest
import uuid

from harness import ServerTestCase, request, server_bin, SLOW


class NotifyTest(ServerTestCase):
    AUTO_START = False

    def listen(self, address):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.bind(address)
        s.settimeout(5 * SLOW)
        return s

    def messages(self, s, n):
        return [s.recv(4096).decode() for _ in range(n)]

    def run_cycle(self, env_value, s):
        srv = self.start_server(env={"NOTIFY_SOCKET": env_value})
        ready, = self.messages(s, 1)
        self.assertEqual(ready, "READY=1\nSTATUS=serving")
        c = self.conn(srv.port)
        c.send(request("GET", "/plaintext"))
        self.assertEqual(c.read_response().status, 200)

        before = time.monotonic()
        srv.signal(signal.SIGHUP)
        reloading, ready = self.messages(s, 2)
        after = time.monotonic()
        lines = dict(l.split("=", 1) for l in reloading.split("\n"))
        self.assertEqual(set(lines), {"RELOADING", "MONOTONIC_USEC"}, reloading)
        self.assertEqual(lines["RELOADING"], "1")
        usec = int(lines["MONOTONIC_USEC"])
        self.assertTrue(before * 1e6 - 1000 <= usec <= after * 1e6 + 1000,
                        "MONOTONIC_USEC %d not in [%f, %f]" % (usec, before, after))
        self.assertEqual(ready, "READY=1")

        srv.signal(signal.SIGTERM)
        stopping, = self.messages(s, 1)
        self.assertEqual(stopping, "STOPPING=1")
        self.assertEqual(srv.wait_exit(10), 0)
        srv.expected_exit = True

    def test_abstract_socket(self):
        name = "zh-notify-%s" % uuid.uuid4().hex
        self.run_cycle("@" + name, self.listen("\0" + name))

    def test_socket_path(self):
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        path = os.path.join(d.name, "notify")
        self.run_cycle(path, self.listen(path))

    def collect(self, s, seconds):
        """Every message within seconds."""
        out, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                out.append(s.recv(4096).decode())
            except socket.timeout:
                break
        return out

    def test_watchdog_pings_every_half_interval(self):
        name = "zh-notify-%s" % uuid.uuid4().hex
        s = self.listen("\0" + name)
        self.start_server(env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "200000"})
        got = self.collect(s, 1.0 * SLOW)
        self.assertEqual(got[0], "READY=1\nSTATUS=serving")
        pings = [m for m in got if m == "WATCHDOG=1"]
        # every 100 ms: 10 in a second (SLOW seconds under valgrind), give or take a slow
        # start or a busy machine
        self.assertGreaterEqual(len(pings), 5, got)
        self.assertLessEqual(len(pings), 11 * SLOW, got)

    def test_watchdog_meant_for_another_process_is_ignored(self):
        name = "zh-notify-%s" % uuid.uuid4().hex
        s = self.listen("\0" + name)
        self.start_server(env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "100000",
                               "WATCHDOG_PID": "1"})
        self.assertEqual(self.collect(s, 0.5), ["READY=1\nSTATUS=serving"])

    def test_no_socket_no_messages_and_a_bad_one_is_only_a_warning(self):
        srv = self.start_server(env={"NOTIFY_SOCKET": "relative/path"})
        c = self.conn(srv.port)
        c.send(request("GET", "/plaintext"))
        self.assertEqual(c.read_response().status, 200)
        self.assertIn("NOTIFY_SOCKET relative/path: not a unix socket path",
                      srv.stderr_text())



def ids(pid):
    """{'Uid': [...], 'Gid': [...], 'Groups': [...]} of every thread of pid."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            st = dict(l.split(":", 1) for l in f if ":" in l)
        out.append({k: st[k].split() for k in ("Uid", "Gid", "Groups")})
    return out


@unittest.skipUnless(os.geteuid() == 0, "dropping privileges needs root")
class PrivilegesTest(ServerTestCase):
    AUTO_START = False

    def start_server(self, args=(), env=None, demo=None):
        """The port accepts (into the backlog) from the bind on; the drop comes after it,
        before the start line: wait for that line."""
        srv = super().start_server(args, env, demo)
        deadline = time.monotonic() + 5 * SLOW
        while "listening on" not in srv.stderr_text():
            self.assertLess(time.monotonic(), deadline, "no start line within 5 s")
            time.sleep(0.01)
        return srv

    def setUp(self):
        super().setUp()
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        os.chmod(d.name, 0o755)
        self.root = d.name
        for name, mode in (("public.txt", 0o644), ("secret.txt", 0o600)):
            with open(os.path.join(self.root, name), "w") as f:
                f.write(name)
            os.chmod(os.path.join(self.root, name), mode)

    def test_drops_to_nobody_after_binding(self):
        nobody = pwd.getpwnam("nobody")
        srv = self.start_server(["--root", self.root, "--user", "nobody"])
        for t in ids(srv.pid):      # every thread: real, effective, saved, fs
            self.assertEqual(set(t["Uid"]), {str(nobody.pw_uid)}, t)
            self.assertEqual(set(t["Gid"]), {str(nobody.pw_gid)}, t)
            self.assertEqual(t["Groups"], [str(nobody.pw_gid)], t)
        c = self.conn(srv.port)
        c.send(request("GET", "/public.txt"))
        self.assertEqual(c.read_response().body, b"public.txt")
        c.send(request("GET", "/secret.txt"))
        self.assertIn(c.read_response().status, (403, 404), "root's 0600 file is not served")

    def test_group_instead_of_the_users(self):
        group = grp.getgrnam("nogroup")
        srv = self.start_server(["--root", self.root, "--user", "nobody", "--group", "nogroup"])
        for t in ids(srv.pid):
            self.assertEqual(set(t["Gid"]), {str(group.gr_gid)}, t)

    def test_bad_names_stop_the_start(self):
        for args, why in ((["--user", "no-such-user-zh"], "--user no-such-user-zh: no such user"),
                          (["--user", "nobody", "--group", "no-such-group-zh"],
                           "--group no-such-group-zh: no such group"),
                          (["--group", "nogroup"], "--group needs --user")):
            p = subprocess.run([server_bin(), "--port", "0", "--root", self.root] + args,
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(why, p.stderr)

    def run_briefly(self, args, env_value=None):
        """zerohttpd with args as root; ZEROHTTPD_ALLOW_ROOT as given (None: unset). Its
        exit status (None if it was still serving after a moment) and its log."""
        env = dict(os.environ)
        env.pop("ZEROHTTPD_ALLOW_ROOT", None)
        if env_value is not None:
            env["ZEROHTTPD_ALLOW_ROOT"] = env_value
        p = subprocess.Popen([server_bin(), "--port", "0", "--root", self.root] + args,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env)
        try:
            rc = p.wait(1.0 * SLOW)
        except subprocess.TimeoutExpired:
            rc = None
            p.terminate()
            p.wait(10)
        return rc, p.stdout.read()

    def test_root_without_user_is_refused_unless_told(self):
        for args, env in (([], None), ([], "0"), ([], "yes")):
            rc, log = self.run_briefly(args, env)
            self.assertEqual(rc, 1, log)
            self.assertIn("refusing to serve as root: --user NAME", log)
        for args, env in ((["--allow-root"], None), ([], "1"), (["--user", "nobody"], None)):
            rc, log = self.run_briefly(args, env)
            self.assertIsNone(rc, "%s %s: %s" % (args, env, log))
            self.assertIn("listening on", log)
        conf = os.path.join(self.root, "zerohttpd.conf")
        with open(conf, "w") as f:
            f.write("allow-root\n")
        rc, log = self.run_briefly(["-c", conf])
        self.assertIsNone(rc, log)



UNITS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "deploy", "systemd")


class UnitsTest(unittest.TestCase):
    """deploy/systemd: systemd-analyze verifies the units (with ExecStart pointing at this
    build), rates the service's exposure 2.0 or lower ("OK"), and the settings agree with
    what zerohttpd does."""

    def setUp(self):
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        self.dir = d.name
        for name in os.listdir(UNITS):
            with open(os.path.join(UNITS, name)) as f:
                text = f.read().replace("/usr/local/bin/zerohttpd", server_bin())
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)

    def analyze(self, *args):
        return subprocess.run(["systemd-analyze"] + list(args), capture_output=True,
                              text=True, timeout=60, cwd=self.dir)

    def test_verify(self):
        units = sorted(n for n in os.listdir(self.dir) if n.endswith((".service", ".socket")))
        self.assertIn("zerohttpd.service", units)
        self.assertIn("zerohttpd.socket", units)
        p = self.analyze("verify", "--man=no", *["./" + u for u in units])
        self.assertEqual((p.returncode, p.stderr), (0, ""))

    def test_security_exposure_is_ok(self):
        p = self.analyze("security", "--offline=yes", "./zerohttpd.service")
        m = re.search(r"Overall exposure level for zerohttpd.service: ([0-9.]+) (\w+)",
                      p.stdout)
        self.assertIsNotNone(m, p.stdout[-500:] + p.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, m.group(0))
        self.assertEqual(m.group(2), "OK")

    def test_settings_match_zerohttpd(self):
        with open(os.path.join(UNITS, "zerohttpd.service")) as f:
            svc = dict(l.strip().split("=", 1) for l in f
                       if "=" in l and not l.startswith("#"))
        self.assertEqual(svc["Type"], "notify")
        self.assertEqual(svc["KillSignal"], "SIGTERM")
        self.assertEqual(svc["ExecReload"], "/bin/kill -HUP $MAINPID")
        self.assertTrue(svc["ExecStartPre"].endswith("-t -c /etc/zerohttpd/zerohttpd.conf"))
        self.assertTrue(svc["ExecStart"].endswith(" -c /etc/zerohttpd/zerohttpd.conf"))
        # longer than the default --drain-timeout (10 s), so a drain is never SIGKILLed
        self.assertGreater(int(svc["TimeoutStopSec"].rstrip("s")), 10)
        self.assertIn("WatchdogSec", svc)
        self.assertEqual(svc["Sockets"].split(), ["zerohttpd.socket", "zerohttpd-tls.socket"])

    def test_socket_names_are_the_ones_zerohttpd_knows(self):
        # LISTEN_FDNAMES: "https" is served with TLS, "http" plain (tests/integration/
        # test_46_handover.py serves through both)
        names = {}
        for unit in ("zerohttpd.socket", "zerohttpd-tls.socket"):
            with open(os.path.join(UNITS, unit)) as f:
                kv = dict(l.strip().split("=", 1) for l in f
                          if "=" in l and not l.startswith("#"))
            names[unit] = kv["FileDescriptorName"]
        self.assertEqual(names, {"zerohttpd.socket": "http", "zerohttpd-tls.socket": "https"})


if __name__ == "__main__":
    unittest.main()
