"""47. The io_uring backend (--io uring, src/loop_uring.c) on its own terms.

The whole suite runs on it with ZH_IO=uring (make test-uring); these tests ask for it
explicitly, whatever ZH_IO says: the start line and the fallback, the shared receive buffers
running out, connections closed with operations in flight, a drain with sends in flight,
and no allocation over 100,000 requests."""
import ctypes
import http.client
import os
import platform
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from harness import HOST, HELLO, SLOW, ServerTestCase, free_port, request, server_bin
import test_12_zero_alloc as t12
from test_28_faults import fd_count, raw, rst_close, stream_pattern

URING = ("--io", "uring")


def start_line(srv):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [ln for ln in srv.stderr_text().splitlines() if "listening on" in ln]
        if lines:
            return lines[0]
        time.sleep(0.02)
    raise AssertionError("no start line: %r" % srv.stderr_text())


def read_response_bytes(sock, want, within=20.0):
    """Reads until `want` bytes came (or EOF / the deadline): the bytes read."""
    got = bytearray()
    sock.settimeout(within)
    deadline = time.monotonic() + within
    while len(got) < want and time.monotonic() < deadline:
        chunk = sock.recv(1 << 18)
        if not chunk:
            break
        got += chunk
    return bytes(got)


def fds_now(pid):
    return sorted(os.readlink("/proc/%d/fd/%s" % (pid, f)) for f in os.listdir("/proc/%d/fd" % pid)
                  if os.path.exists("/proc/%d/fd/%s" % (pid, f)))


def fd_baseline(test):
    """The server's descriptor count after one request (what a first request opens lazily,
    under ASan say, is then counted) and once it stays put."""
    c = test.conn()
    c.send(request("GET", "/plaintext", [("Connection", "close")]))
    test.assertResponse(c.read_response(), 200, HELLO)
    c.close()
    return settle_fds(test.server.pid, None)


def settle_fds(pid, want, within=10.0 * SLOW):
    """Waits until the count is want (None: the same for 0.3 s); the count then."""
    deadline = time.monotonic() + within
    last, since = fd_count(pid), time.monotonic()
    while time.monotonic() < deadline:
        n = fd_count(pid)
        if n == want or (want is None and n == last and time.monotonic() - since >= 0.3):
            return n
        if n != last:
            last, since = n, time.monotonic()
        time.sleep(0.05)
    return fd_count(pid)


class Backend(ServerTestCase):
    SERVER_ARGS = URING + ("--workers", "1")

    def test_start_line_names_the_backend(self):
        self.assertIn(" io=uring", start_line(self.server))
        c = self.conn()
        for _ in range(3):
            c.send(request("GET", "/plaintext"))
            self.assertResponse(c.read_response(), 200, HELLO)

    def test_epoll_is_the_default(self):
        srv = self.start_server(("--io", "epoll", "--workers", "1"))
        self.assertIn(" io=epoll", start_line(srv))

    def test_unknown_backend_is_a_usage_error(self):
        p = subprocess.run([server_bin(), "--io", "kqueue"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"the I/O backends are epoll and uring", p.stderr)


# seccomp: io_uring_setup (425 on x86_64) fails with EPERM, as a container's profile does
SYS_IO_URING_SETUP = 425


def _forbid_io_uring():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    prog = [(0x20, 0, 0, 0),                          # ld [nr]
            (0x15, 0, 1, SYS_IO_URING_SETUP),         # jeq io_uring_setup
            (0x06, 0, 0, 0x00050000 | 1),             # ret ERRNO(EPERM)
            (0x06, 0, 0, 0x7fff0000)]                 # ret ALLOW
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = struct.pack("HxxxxxxP", len(prog), ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog)
    if libc.prctl(38, 1, 0, 0, 0) != 0:               # PR_SET_NO_NEW_PRIVS
        os._exit(97)
    if libc.prctl(22, 2, ctypes.addressof(fbuf), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        os._exit(98)


@unittest.skipUnless(platform.machine() == "x86_64", "the filter names x86_64's syscall")
class Fallback(ServerTestCase):
    AUTO_START = False

    def test_forbidden_io_uring_falls_back_to_epoll_with_the_reason(self):
        port = free_port()
        proc = subprocess.Popen([server_bin(), "--address", HOST, "--port", str(port),
                                 "--workers", "1", "--io", "uring", "--demo"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, preexec_fn=_forbid_io_uring)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        out = b""
        deadline = time.monotonic() + 5
        while b"listening on" not in out and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.2)[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
        text = out.decode()
        self.assertIn("warn zerohttpd: --io uring: io_uring is forbidden here "
                      "(kernel.io_uring_disabled or seccomp); serving with epoll", text)
        self.assertRegex(text, r"listening on .* io=epoll\n")
        s = socket.create_connection((HOST, port), timeout=5)
        s.sendall(request("GET", "/plaintext", [("Connection", "close")]))
        self.assertTrue(read_response_bytes(s, 1 << 20, 5).endswith(HELLO))
        s.close()
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(15), 0)


class BufferRingExhaustion(ServerTestCase):
    """8 receive buffers of 2 KiB for 1000 connections that all send at once: most receives
    find the ring empty (ENOBUFS), wait on the starved list and are re-armed as buffers come
    back. Every request is answered and no buffer or descriptor is lost."""

    CONNS = 1000
    SERVER_ARGS = URING + ("--workers", "1", "--io-buffers", "8", "--max-connections", "2000")

    def test_every_connection_is_served_when_buffers_run_out(self):
        pid = self.server.pid
        base_fds = fd_baseline(self)
        body = bytes(range(256)) * 24               # 6 KiB: three buffers per request
        for rnd in range(2):
            socks = [raw(self.port) for _ in range(self.CONNS)]
            req = request("POST", "/echo", body=body)
            for s in socks:
                s.sendall(req)
            for i, s in enumerate(socks):
                got = read_response_bytes(s, 1)
                while b"\r\n\r\n" not in got:
                    more = read_response_bytes(s, 1)
                    self.assertTrue(more, "round %d conn %d: closed" % (rnd, i))
                    got += more
                head, rest = got.split(b"\r\n\r\n", 1)
                self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head[:40])
                n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                if len(rest) < n:
                    rest += read_response_bytes(s, n - len(rest))
                self.assertEqual(rest, body, "round %d conn %d" % (rnd, i))
            for s in socks:
                s.close()
            self.assertEqual(settle_fds(pid, base_fds), base_fds,
                             "round %d: %s" % (rnd, fds_now(pid)))
        c = self.conn()
        c.send(request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, HELLO)


class CloseInFlight(ServerTestCase):
    """Peers that reset while their responses are being sent (a send in flight in the ring,
    the receive armed): the slot comes back only once its operations have ended. With 64
    slots, three rounds of 50 such peers would be refused (503) if one leaked."""

    SERVER_ARGS = URING + ("--workers", "1", "--max-connections", "64",
                           "--loopback-sndbuf", "32768")

    def test_reset_with_sends_in_flight_leaks_nothing(self):
        pid = self.server.pid
        base_fds = fd_baseline(self)
        n = 8 << 20
        for rnd in range(3):
            socks = [raw(self.port, rcvbuf=8192) for _ in range(50)]
            for s in socks:
                s.sendall(request("GET", "/stream?bytes=%d" % n))
            for s in socks:
                got = read_response_bytes(s, 4096, 5)
                self.assertTrue(got.startswith(b"HTTP/1.1 200 "), "round %d: %r" % (rnd, got[:60]))
            for s in socks:
                rst_close(s)
            self.assertEqual(settle_fds(pid, base_fds), base_fds,
                             "round %d: %s" % (rnd, fds_now(pid)))
        c = self.conn()
        c.send(request("GET", "/plaintext"))
        self.assertResponse(c.read_response(), 200, HELLO)


class DrainWithSendsInFlight(ServerTestCase):
    """SIGTERM while 16 large responses are being sent: each is completed, then the process
    exits 0."""

    SERVER_ARGS = URING + ("--workers", "1", "--loopback-sndbuf", "32768")

    def test_sigterm_completes_responses_in_flight(self):
        n = 4 << 20
        socks = [raw(self.port, rcvbuf=16384) for _ in range(16)]
        for s in socks:
            s.sendall(request("GET", "/stream?bytes=%d" % n))
        firsts = [read_response_bytes(s, 2048, 5) for s in socks]
        self.server.signal(signal.SIGTERM)
        results = [None] * len(socks)

        def reader(i):
            results[i] = firsts[i] + read_response_bytes(socks[i], 1 << 30, 20)
        threads = [threading.Thread(target=reader, args=(i,)) for i in range(len(socks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        want = stream_pattern(n)
        for i, got in enumerate(results):
            self.assertIsNotNone(got, "reader %d still running" % i)
            head, _, body = got.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head[:60])
            if b"chunked" in head.lower():
                out, pos = bytearray(), 0
                while True:
                    j = body.index(b"\r\n", pos)
                    size = int(body[pos:j], 16)
                    out += body[j + 2:j + 2 + size]
                    pos = j + 2 + size + 2
                    if size == 0:
                        break
                body = bytes(out)
            self.assertEqual(body, want, "response %d: %d bytes" % (i, len(body)))
        self.assertEqual(self.server.wait_exit(15), 0)
        self.server.expected_exit = True
        for s in socks:
            s.close()


def tls_pair(d):
    """A self-signed EC certificate for localhost in d: (cert, key)."""
    key, pem = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", pem,
                    "-days", "2", "-subj", "/CN=localhost"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return pem, key


class TlsOnUring(ServerTestCase):
    """TLS on io_uring: OpenSSL's records come from the ring's receive queue and leave by
    synchronous sends (src/transport_tls.c over the byte transport's read_raw/write_raw). A
    32 KiB send buffer makes every large response meet a full socket, which only the poll
    armed by write_raw gets out of. (ZH_IO=uring runs test_34 and test_35 on it too.)"""
    AUTO_START = False

    def setUp(self):
        super().setUp()
        d = tempfile.mkdtemp(prefix="zh-uring-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        self.pem, key = tls_pair(d)
        self.tls_port = free_port()
        self.server = self.start_server(URING + (
            "--workers", "1", "--loopback-sndbuf", "32768", "--max-connections", "64",
            "--io-buffers", "256", "--listen-tls", "%s:%d" % (HOST, self.tls_port), "--tls-cert", self.pem,
            "--tls-key", key))
        self.port = self.server.port

    def tls(self, rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10 * SLOW)
        s.connect((HOST, self.tls_port))
        ctx = ssl.create_default_context(cafile=self.pem)
        return ctx.wrap_socket(s, server_hostname="localhost")

    def test_large_bodies_through_a_full_socket(self):
        self.assertIn(" io=uring", start_line(self.server))
        n = 8 << 20
        s = self.tls(rcvbuf=8192)
        self.addCleanup(s.close)
        h = http.client.HTTPConnection(HOST, self.tls_port)
        h.sock = s  # the TLS socket: http.client removes the chunked framing
        for _ in range(2):  # keep-alive: the second response on the same session
            h.request("GET", "/stream?bytes=%d" % n)
            r = h.getresponse()
            self.assertEqual(r.status, 200)
            body = r.read()
            self.assertEqual(len(body), n)
            self.assertTrue(body == stream_pattern(n), "the body differs")
        self.assertEqual(s.version(), "TLSv1.3")

    def test_plain_http_on_the_tls_port_is_400(self):
        c = self.conn(port=self.tls_port)
        c.send(request("GET", "/plaintext"))
        self.assertEqual(c.read_response().status, 400)
        self.assertTrue(c.closed_by_peer(2.0))

    def test_resets_mid_body_leak_nothing(self):
        """Peers reset while a poll for room is armed and a pipelined request waits unread
        in ring buffers: their slots come back (64 slots: three rounds of 30 would be
        refused if one leaked), their descriptors, and their buffers (256: about 4 per
        peer, so the third round would starve if they leaked)."""
        base_fds = fd_baseline(self)
        pipelined = request("POST", "/echo", [("Content-Length", "6000")]) + b"x" * 6000
        for rnd in range(3):
            socks = [self.tls(rcvbuf=8192) for _ in range(30)]
            for s in socks:
                s.sendall(request("GET", "/stream?bytes=%d" % (8 << 20)))
            for s in socks:
                self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200 "), "round %d" % rnd)
            for s in socks:  # not read: the server's output is blocked
                s.sendall(pipelined)
            time.sleep(0.2)
            for s in socks:
                rst_close(s)
            self.assertEqual(settle_fds(self.server.pid, base_fds), base_fds,
                             "round %d: %s" % (rnd, fds_now(self.server.pid)))
        s = self.tls()
        self.addCleanup(s.close)
        s.sendall(request("GET", "/plaintext", [("Connection", "close")]))
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        self.assertTrue(got.startswith(b"HTTP/1.1 200 ") and got.endswith(HELLO), got)


class ZeroAllocUring(t12.ZeroAlloc):
    """test_12's 100,000 mixed requests with the malloc-counting shim, on io_uring."""
    SERVER_ARGS = URING


if __name__ == "__main__":
    unittest.main()
