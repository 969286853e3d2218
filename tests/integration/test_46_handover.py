"""46. Listening sockets handed over: systemd's socket activation (LISTEN_FDS and
LISTEN_FDNAMES, played here by systemd-socket-activate: "http" plain, "https" TLS,
"metrics" --metrics-listen's) and the SIGUSR2 upgrade, where zerohttpd starts the binary
now at its path with its sockets, waits until it serves, then drains: the port never
closes, a request already sent on an idle keep-alive connection is answered, and a new
binary that fails to start leaves the old one serving.

Every process here runs in a session of its own, so that cleanup can SIGKILL the old
process and whatever it started (an upgraded zerohttpd is its child), by process group."""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import HOST, RawConn, free_port, request, server_bin, SLOW

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WWW = os.path.join(REPO, "www")


class Proc:
    """A process group led by a zerohttpd (or systemd-socket-activate), with its log."""

    def __init__(self, test, cmd, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="zh-handover-", suffix=".log")
        test.addCleanup(self.log.close)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=full_env, start_new_session=True)
        test.addCleanup(self.kill_group)

    def kill_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def text(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=10.0, count=1):
        """The count-th match of pattern in the log, waiting for it."""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            found = list(re.finditer(pattern, self.text()))
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.02)
        raise AssertionError("no %r (x%d) in the log within %.0fs:\n%s"
                             % (pattern, count, timeout, self.text()[-3000:]))


def get(port, path="/index.html"):
    c = RawConn(port)
    try:
        c.send(request("GET", path, headers=[("Connection", "close")]))
        return c.read_response()
    finally:
        c.close()


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def make_cert(d):
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=30)
    return cert, key


class HandoverTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zh-handover-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        with open(os.path.join(WWW, "index.html"), "rb") as f:
            self.hello = f.read()

    # ---- socket activation ---------------------------------------------------------------

    def test_socket_activation_plain_tls_and_metrics(self):
        if shutil.which("systemd-socket-activate") is None:
            self.skipTest("systemd-socket-activate is not installed")
        cert, key = make_cert(self.dir)
        p_http, p_https, p_metrics, p_flag = free_port(), free_port(), free_port(), free_port()
        act = Proc(self, ["systemd-socket-activate",
                          "-l", "%s:%d" % (HOST, p_http), "-l", "%s:%d" % (HOST, p_https),
                          "-l", "%s:%d" % (HOST, p_metrics), "--fdname=http:https:metrics",
                          server_bin(), "--root", WWW, "--workers", "2", "--allow-root",
                          "--port", str(p_flag), "--metrics-listen", "%s:0" % HOST,
                          "--tls-cert", cert, "--tls-key", key])
        act.wait_log(r"Listening on .*:%d" % p_metrics)
        # the first connection makes systemd-socket-activate exec zerohttpd, which then
        # finds it waiting in the queue of the socket it was given
        self.assertEqual(get(p_http).body, self.hello)
        line = act.wait_log(r"listening on http\S+ .*").group(0)
        self.assertIn("http://127.0.0.1:%d/" % p_http, line)
        self.assertIn("https://127.0.0.1:%d/" % p_https, line)
        self.assertIn("do not apply", act.text())   # --port was not bound
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection((HOST, p_flag), timeout=2).close()

        ctx = ssl.create_default_context(cafile=cert)
        with socket.create_connection((HOST, p_https), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(request("GET", "/index.html", headers=[("Connection", "close")]))
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])
        self.assertTrue(data.endswith(self.hello))

        # "metrics": the monitoring server's socket, not a third HTTP listener
        self.assertEqual(get(p_metrics, "/healthz").status, 200)
        self.assertEqual(get(p_http, "/metrics").status, 404)
        os.kill(act.proc.pid, signal.SIGTERM)     # it is zerohttpd now (exec)
        self.assertEqual(act.proc.wait(10 * SLOW), 0)

    def test_listen_pid_of_another_process_is_ignored(self):
        port = free_port()
        # LISTEN_PID names someone else: descriptor 3 is not ours (the sd_listen_fds rule);
        # taken, it would fail the start (no socket there)
        z = Proc(self, [server_bin(), "--root", WWW, "--port", str(port)],
                 env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
        z.wait_log(r"listening on http://127.0.0.1:%d/" % port)
        self.assertEqual(get(port).body, self.hello)

    # ---- SIGUSR2 upgrade ------------------------------------------------------------------

    def install(self, src=None):
        """Puts a binary at dir/zerohttpd by rename (as a package upgrade does): a new
        inode at the same path. Returns that inode."""
        tmp = os.path.join(self.dir, "zerohttpd.new")
        shutil.copy2(src or server_bin(), tmp)
        os.rename(tmp, os.path.join(self.dir, "zerohttpd"))
        return os.stat(os.path.join(self.dir, "zerohttpd")).st_ino

    def start_upgradable(self, *extra):
        lib = os.path.join(os.path.dirname(server_bin()), "libzerohttp-tls.so.0")
        if os.path.exists(lib):   # found next to the binary (tls.c's lib_open)
            shutil.copy2(lib, self.dir)
        self.install()
        port = free_port()
        z = Proc(self, [os.path.join(self.dir, "zerohttpd"), "--root", WWW, "--workers", "2",
                        "--port", str(port)] + list(extra))
        z.wait_log(r"listening on http://127.0.0.1:%d/" % port)
        return z, port

    def test_upgrade_to_a_new_binary_twice(self):
        metrics = free_port()
        z, port = self.start_upgradable("--metrics-listen", "%s:%d" % (HOST, metrics))
        first = z.proc.pid
        ino = self.install()
        # an idle keep-alive connection, whose next request is sent once the drain began
        idle = RawConn(port)
        self.addCleanup(idle.close)
        idle.send(request("GET", "/index.html"))
        self.assertEqual(idle.read_response().status, 200)

        os.kill(first, signal.SIGUSR2)
        second = int(z.wait_log(r"the new process (\d+) serves").group(1))
        self.assertEqual(os.stat("/proc/%d/exe" % second).st_ino, ino, "the new binary runs")
        idle.send(request("GET", "/index.html"))
        r = idle.read_response()
        self.assertEqual((r.status, r.body), (200, self.hello))
        self.assertEqual(r.header("Connection"), "close")
        self.assertEqual(z.proc.wait(10 * SLOW), 0, "the old process drains and exits 0")
        for _ in range(20):
            self.assertEqual(get(port).body, self.hello)
        self.assertEqual(get(metrics, "/healthz").status, 200)

        # the new process hands over in turn, the sockets it inherited included
        ino = self.install()
        os.kill(second, signal.SIGUSR2)
        third = int(z.wait_log(r"the new process (\d+) serves", count=2).group(1))
        self.assertTrue(wait_gone(second, 10), "the second process did not exit")
        self.assertEqual(os.stat("/proc/%d/exe" % third).st_ino, ino)
        for _ in range(20):
            self.assertEqual(get(port).body, self.hello)
        self.assertEqual(get(metrics, "/healthz").status, 200)
        os.kill(third, signal.SIGTERM)
        self.assertTrue(wait_gone(third, 10))

    def test_upgrade_tells_systemd_the_new_main_pid(self):
        # Type=notify: the old process names its successor (MAINPID=) before it drains, and
        # the successor reports READY=1 itself
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(notify.close)
        path = os.path.join(self.dir, "notify")
        notify.bind(path)
        notify.settimeout(10 * SLOW)
        os.environ["NOTIFY_SOCKET"] = path
        try:
            z, port = self.start_upgradable()
        finally:
            del os.environ["NOTIFY_SOCKET"]
        self.assertEqual(notify.recv(4096), b"READY=1\nSTATUS=serving")
        os.kill(z.proc.pid, signal.SIGUSR2)
        new = int(z.wait_log(r"the new process (\d+) serves").group(1))
        got = [notify.recv(4096) for _ in range(2)]
        self.assertIn(b"MAINPID=%d" % new, got)
        self.assertIn(b"READY=1\nSTATUS=serving", got)
        self.assertEqual(z.proc.wait(10 * SLOW), 0)
        self.assertEqual(get(port).body, self.hello)
        os.kill(new, signal.SIGTERM)
        self.assertTrue(wait_gone(new, 10))

    def test_failed_upgrade_keeps_the_old_process_serving(self):
        z, port = self.start_upgradable()
        broken = os.path.join(self.dir, "broken")
        with open(broken, "w") as f:
            f.write("#!/bin/sh\nexit 3\n")
        os.chmod(broken, 0o755)
        self.install(broken)
        os.kill(z.proc.pid, signal.SIGUSR2)
        z.wait_log(r"exited \(status 3\) before serving; still serving")
        self.assertIsNone(z.proc.poll())
        for _ in range(10):
            self.assertEqual(get(port).body, self.hello)
        os.kill(z.proc.pid, signal.SIGTERM)
        self.assertEqual(z.proc.wait(10 * SLOW), 0)


if __name__ == "__main__":
    unittest.main()
