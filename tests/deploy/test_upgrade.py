"""Zero-downtime upgrade: wrk runs for 30 s at a steady rate against one zerohttpd, which is
upgraded twice on the way (SIGUSR2 at 10 s and 20 s, a new binary installed at its path by
rename before each): the listening sockets pass to the new process, the old one drains.
Every response wrk got is checked (tests/deploy/check.lua): 0 socket errors, 0 non-2xx,
0 wrong bodies, and responses all along.

The zerohttpd runs in a session of its own: cleanup SIGKILLs its whole process group (the
upgraded processes are its descendants), whatever happened."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import harness  # noqa: E402

LUA = os.path.join(HERE, "check.lua")
CONNS, PACE_MS, SECONDS = 16, 10, 30


class UpgradeUnderLoad(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zh-upgrade-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.bin = os.path.join(self.dir, "zerohttpd")
        self.install()
        self.port = harness.free_port()
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.addCleanup(self.log.close)
        self.proc = subprocess.Popen(
            [self.bin, "--workers", "2", "--demo", "--port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)
        self.addCleanup(self.kill_group)
        self.wait_log(r"listening on http://", 1)

    def kill_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def install(self):
        tmp = self.bin + ".new"
        shutil.copy2(harness.server_bin(), tmp)
        os.rename(tmp, self.bin)

    def text(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, count, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.findall(pattern, self.text())
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.05)
        raise AssertionError("no %r (x%d) in the log:\n%s" % (pattern, count, self.text()))

    def test_two_upgrades_under_load(self):
        out = tempfile.TemporaryFile(dir=self.dir)
        wrk = subprocess.Popen(
            ["wrk", "-t", "1", "-c", str(CONNS), "-d", "%ds" % SECONDS, "--timeout", "10s",
             "-s", LUA, "http://127.0.0.1:%d/plaintext" % self.port, "--", "Hello, World!",
             str(PACE_MS)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=harness._die_with_parent)
        self.addCleanup(lambda: wrk.poll() is None and wrk.kill())
        pid, pids = self.proc.pid, [self.proc.pid]
        for n in (1, 2):
            time.sleep(SECONDS / 3)
            self.install()
            os.kill(pid, signal.SIGUSR2)
            pid = int(self.wait_log(r"the new process (\d+) serves", n))
            pids.append(pid)
        self.assertEqual(wrk.wait(SECONDS + 30), 0)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        summary = next(json.loads(l) for l in text.splitlines()
                       if l.startswith('{"event":"wrk"'))
        sys.stderr.write("\n  upgrade under load: %d responses in %.1f s, processes %s; "
                         "errors connect %d read %d write %d timeout %d, non-2xx %d, "
                         "bad bodies %d\n"
                         % (summary["responses"], summary["duration_us"] / 1e6, pids,
                            summary["connect"], summary["read"], summary["write"],
                            summary["timeout"], summary["non2xx"], summary["badbody"]))
        for key in ("connect", "read", "write", "timeout", "status", "non2xx", "badbody"):
            self.assertEqual(summary[key], 0, "%s: %s\n%s" % (key, text, self.text()))
        self.assertEqual(summary["responses"], summary["requests"])
        # a steady rate: at least half of CONNS * 1000 / PACE_MS per second, all along
        self.assertGreater(summary["responses"], CONNS * (1000 // PACE_MS) * SECONDS // 2)
        self.assertEqual(self.proc.wait(15), 0, "the first process drained and exited")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.05)
        self.assertEqual(len(re.findall(r"stopped", self.text())), 3, self.text())


if __name__ == "__main__":
    unittest.main()
