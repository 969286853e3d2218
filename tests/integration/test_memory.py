"""Idle keep-alive connections hold no I/O buffer: 5,000 of them (one GET each, then silent)
grow zerohttpd's RSS by at most 256 bytes per connection (nginx publishes ~256 B)."""
import os
import resource
import signal
import socket
import subprocess
import time
import unittest

from harness import spawn

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


if __name__ == "__main__":
    unittest.main()
