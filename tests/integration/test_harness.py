"""The harness stops what a test started even when the test fails (issue 11: on a fresh Debian
12 without procps, stop_traced's pgrep raised, and the strace-traced zerohttpd processes of
test_16 and test_24 outlived the run).

Each case runs a small inner test that starts processes and then fails, and checks from
outside, by PID in /proc (its own scan, not the harness's), that none of them is left.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
from unittest import mock

from harness import HOST, ServerTestCase, free_port, server_bin, stop_traced

GONE_WITHIN = 5.0     # SIGKILL, then reparenting and reaping


def stat(pid):
    """(state, ppid, starttime) of pid, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), int(fields[19])


def child_pids(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = stat(int(name))
            if st is not None and st[1] == pid:
                out.append(int(name))
    return out


def identity(pid):
    """(pid, starttime): a process that a later one reusing its PID is not taken for."""
    st = stat(pid)
    return (pid, st[2]) if st else None


def running(ident):
    st = stat(ident[0])
    return st is not None and st[2] == ident[1] and st[0] != "Z"


def wait_port(port, within=10.0):
    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def traced_server(port):
    """argv of a zerohttpd under strace -f, as SyscallAudit runs it."""
    return ["strace", "-f", "-o", os.devnull, server_bin(), "--address", HOST,
            "--port", str(port), "--workers", "1"]


class StopsWhatItStarted(unittest.TestCase):
    def setUp(self):
        self.started = []           # identities of every process an inner test started
        self.popens = []
        self.addCleanup(self._reap)

    def _reap(self):
        # whatever the harness under test left: killed here by PID, so this test never leaks
        for ident in self.started:
            if running(ident):
                os.kill(ident[0], 9)
        for p in self.popens:
            if p.poll() is None:
                p.kill()
            p.wait(5)

    def record(self, pid):
        ident = identity(pid)
        self.assertIsNotNone(ident, "pid %d gone before it could be recorded" % pid)
        self.started.append(ident)

    def record_children(self, pid, within=5.0):
        """Records pid's children, waiting for strace to have forked its tracee."""
        deadline = time.monotonic() + within
        while not child_pids(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        kids = child_pids(pid)
        self.assertTrue(kids, "pid %d has no child" % pid)
        for k in kids:
            self.record(k)

    def run_inner(self, case):
        result = unittest.TestResult()
        case.run(result)
        return result

    def assertNoneLeft(self):
        self.assertTrue(self.started, "the inner test started nothing")
        deadline = time.monotonic() + GONE_WITHIN
        while any(running(i) for i in self.started) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = [i[0] for i in self.started if running(i)]
        self.assertEqual(left, [], "still running after the failed test: %s" % [
            (p, open("/proc/%d/cmdline" % p, "rb").read().replace(b"\0", b" ")[:120])
            for p in left])

    def assertFailedOnlyWith(self, result, message):
        """The inner test failed with its own assertion, and the clean-up added no error."""
        self.assertEqual(result.testsRun, 1)
        self.assertEqual(result.errors, [], "the clean-up raised")
        self.assertEqual(len(result.failures), 1)
        self.assertIn(message, result.failures[0][1])

    @unittest.skipUnless(shutil.which("strace"), "strace not installed")
    def test_stop_traced_after_a_failure_without_procps(self):
        # a fresh Debian 12: PATH holds strace (deps.sh installs it) but no pgrep or ps
        bare = tempfile.mkdtemp(prefix="zh-bare-path-")
        self.addCleanup(shutil.rmtree, bare, True)
        os.symlink(shutil.which("strace"), os.path.join(bare, "strace"))
        outer = self

        class Inner(ServerTestCase):
            AUTO_START = False

            def test_traced(self):
                port = free_port()
                proc = subprocess.Popen(traced_server(port), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                outer.popens.append(proc)
                outer.record(proc.pid)
                try:
                    wait_port(port)
                    outer.record_children(proc.pid)
                    self.assertEqual(1, 2, "the inner test's own failure")
                finally:
                    stop_traced(proc, 10)

        with mock.patch.dict(os.environ, {"PATH": bare}):
            result = self.run_inner(Inner("test_traced"))
        self.assertEqual(len(self.started), 2, "strace and the server it traces")
        self.assertFailedOnlyWith(result, "the inner test's own failure")
        self.assertNoneLeft()

    @unittest.skipUnless(shutil.which("strace"), "strace not installed")
    def test_spawned_tracer_and_tracee_killed_after_a_failure(self):
        # no try/finally in the test: spawn's clean-up alone must stop strace AND the server
        # it traces (killing strace alone detaches the server, which then runs on)
        outer = self

        class Inner(ServerTestCase):
            AUTO_START = False

            def test_traced(self):
                port = free_port()
                proc = self.spawn(traced_server(port), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
                outer.popens.append(proc)
                outer.record(proc.pid)
                wait_port(port)
                outer.record_children(proc.pid)
                self.assertEqual(1, 2, "the inner test's own failure")

        result = self.run_inner(Inner("test_traced"))
        self.assertEqual(len(self.started), 2, "strace and the server it traces")
        self.assertFailedOnlyWith(result, "the inner test's own failure")
        self.assertNoneLeft()

    def test_server_killed_when_setup_fails_after_starting_it(self):
        # setUp raised, so unittest skips tearDown: only a registered clean-up stops the server
        outer = self

        class Inner(ServerTestCase):
            def setUp(self):
                super().setUp()
                outer.record(self.server.pid)
                self.fail("setUp's own failure")

            def test_nothing(self):
                pass

        result = self.run_inner(Inner("test_nothing"))
        self.assertFailedOnlyWith(result, "setUp's own failure")
        self.assertNoneLeft()

    def test_every_server_stopped_when_closing_a_connection_raises(self):
        # one broken close in tearDown must not keep the servers after it running
        outer = self

        class Broken:
            def close(self):
                raise OSError("close failed")

        class Inner(ServerTestCase):
            def test_broken_close(self):
                outer.record(self.server.pid)
                outer.record(self.start_server().pid)
                self.track(Broken())

        result = self.run_inner(Inner("test_broken_close"))
        self.assertFailedOnlyWith(result, "close failed")
        self.assertNoneLeft()


if __name__ == "__main__":
    unittest.main()
