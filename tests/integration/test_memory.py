"""Idle keep-alive connections hold no I/O buffer: 5,000 of them (one GET each, then silent)
grow zerohttpd's RSS by at most 256 bytes per connection (nginx publishes ~256 B).
A one-worker zerohttpd that has served a mixed burst (plaintext, json, 16 concurrent static
files up to 1 MiB) holds at most ANON_BUDGET of anonymous memory: pools and the static cache
touch only what was used (no huge page for the sparse buffer pools, no cache entry written
before it holds a file)."""
import os
import resource
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import asan_skip, spawn, timing_sensitive

BIN = os.environ.get("ZH_BIN", "build/zerohttpd")
CONNS = 5000
BUDGET = 256  # bytes per idle connection
REQ = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def rss_anon_bytes(pid):
    """Private anonymous memory (heap, stacks, pools): what the process itself made resident,
    without the shared pages of libc and the binary."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon")


def get_body(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path)
        got = b""
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 200 "), got[:80]
    return got.split(b"\r\n\r\n", 1)[1]


def get_once(port, keep):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(REQ)
    got = b""
    while not got.endswith(b"Hello, World!"):
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError("closed early: %r" % got)
        got += chunk
    assert got.startswith(b"HTTP/1.1 200 "), got
    if keep:
        return s
    s.close()
    return None


class IdleConnectionMemory(unittest.TestCase):
    def test_idle_keepalive_rss_per_connection(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < CONNS + 100:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, CONNS + 1000), hard))
        port = free_port()
        # spawn: killed by PID when the test ends, even if the SIGTERM below is not obeyed
        proc = spawn(self, [BIN, "--port", str(port), "--workers", "2", "--demo"],
                     stderr=subprocess.DEVNULL)
        socks = []
        try:
            deadline = time.time() + 5
            while True:
                try:
                    get_once(port, False)
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            # warm both workers: first-touch of their buffers and stacks is not per-connection
            for _ in range(200):
                get_once(port, False)
            time.sleep(0.2)
            base = rss_bytes(proc.pid)
            for _ in range(CONNS):
                socks.append(get_once(port, True))
            time.sleep(0.3)
            grown = rss_bytes(proc.pid) - base
            per_conn = grown / CONNS
            print(f"\n  {CONNS} idle keep-alive connections: RSS +{grown} B "
                  f"= {per_conn:.1f} B/connection (budget {BUDGET})")
            self.assertIsNone(proc.poll(), "server died")
            self.assertLessEqual(per_conn, BUDGET)
            # still serving, and the idle ones still work
            self.assertIsNone(get_once(port, False))
            socks[0].sendall(REQ)
            self.assertTrue(socks[0].recv(4096).startswith(b"HTTP/1.1 200 "))
        finally:
            for s in socks:
                s.close()
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=15), 0)


ANON_BUDGET = 1024 * 1024  # bytes; 3 MiB before the pools dropped MADV_HUGEPAGE and the
# static cache stopped writing all its entries at start-up


@asan_skip
@timing_sensitive
class BurstMemory(unittest.TestCase):
    def test_anon_rss_after_mixed_burst(self):
        root = tempfile.TemporaryDirectory()
        self.addCleanup(root.cleanup)
        sizes = {b"/1m.bin": 1 << 20}
        for i in range(8):
            sizes[b"/f%d.bin" % i] = 4096 << i
        for path, n in sizes.items():
            with open(os.path.join(root.name, path[1:].decode()), "wb") as f:
                f.write(os.urandom(n))
        port = free_port()
        proc = spawn(self, [BIN, "--port", str(port), "--workers", "1", "--root", root.name,
                             "--demo"],
                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 5
        while True:
            try:
                get_once(port, False)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        errors = []

        def client(k):
            try:
                for j in range(8):
                    for path, n in sizes.items():
                        if len(get_body(port, path)) != n:
                            errors.append("%s: short body" % path)
                    get_body(port, b"/json")
                    get_once(port, False)
            except (OSError, AssertionError) as e:
                errors.append("client %d: %s" % (k, e))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running")
        self.assertEqual(errors, [])
        time.sleep(0.2)
        anon = rss_anon_bytes(proc.pid)
        print(f"\n  after the burst: RssAnon {anon // 1024} KiB (budget {ANON_BUDGET // 1024})")
        self.assertIsNone(proc.poll(), "server died")
        self.assertLessEqual(anon, ANON_BUDGET)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=15), 0)


if __name__ == "__main__":
    unittest.main()
