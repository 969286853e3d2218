"""15. Graceful drain under load: SIGTERM while 8 keep-alive clients post echo bodies. No
response is cut: each one arrives whole, and a client whose connection ends sees either a
`Connection: close` response or a close before any byte of the next response (the usual
keep-alive race, which clients answer by retrying). The process exits 0 well within the drain
timeout, and new connections are refused."""
import os
import signal
import socket
import threading
import time

from harness import ServerTestCase

CLIENTS = 8


def run_client(port, stop_at, out):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    served = cut = 0
    ending = "running"
    buf = b""
    try:
        while time.time() < stop_at:
            body = os.urandom(1 + served % 3000)
            req = (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: a/b\r\nContent-Length: %d\r\n"
                   b"\r\n" % len(body)) + body
            try:
                s.sendall(req)
            except OSError:
                ending = "closed before sending"
                break
            # read exactly one response: head, then Content-Length bytes
            while b"\r\n\r\n" not in buf:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
            if b"\r\n\r\n" not in buf:
                if buf:
                    cut += 1  # some bytes of a head, then nothing: a cut response
                ending = "closed before a response"
                break
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            assert lines[0] == b"HTTP/1.1 200 OK", lines[0]
            fields = {k.strip().lower(): v.strip() for k, v in
                      (l.split(b":", 1) for l in lines[1:])}
            length = int(fields[b"content-length"])
            while len(buf) < length:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            if len(buf) < length:
                cut += 1
                ending = "body cut"
                break
            got, buf = buf[:length], buf[length:]
            assert got == body, "echo mismatch"
            served += 1
            if fields.get(b"connection") == b"close":
                ending = "connection: close"
                break
    finally:
        s.close()
        out.append((served, cut, ending))


class DrainUnderLoad(ServerTestCase):
    SERVER_ARGS = ("--workers", "2", "--drain-timeout", "5000")

    def test_sigterm_under_load_cuts_nothing(self):
        results = []
        stop_at = time.time() + 10
        threads = [threading.Thread(target=run_client, args=(self.port, stop_at, results))
                   for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(0.7)
        sent_at = time.time()
        self.server.expected_exit = True
        self.server.signal(signal.SIGTERM)
        rc = self.server.wait_exit(6.0)
        exited_after = time.time() - sent_at
        for t in threads:
            t.join(12)
        print("\n  served per client: %s; endings: %s; exit after %.2f s" %
              ([r[0] for r in results], sorted(r[2] for r in results), exited_after))
        self.assertEqual(rc, 0, "zerohttpd must exit 0 after a drain")
        self.assertLess(exited_after, 5.0)
        self.assertEqual(len(results), CLIENTS)
        for served, cut, ending in results:
            self.assertEqual(cut, 0, "a response was cut: %s" % ending)
            self.assertGreater(served, 0)
            self.assertIn(ending, ("connection: close", "closed before a response",
                                   "closed before sending"))
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
