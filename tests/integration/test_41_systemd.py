"""41. zerohttpd under a service manager: the sd_notify(3) protocol on $NOTIFY_SOCKET
(READY=1 once the port accepts, RELOADING=1 with MONOTONIC_USEC then READY=1 on SIGHUP,
STOPPING=1 on SIGTERM), read by a test that plays systemd's part."""
import os
import signal
import socket
import tempfile
import time
import unittest
import uuid

from harness import ServerTestCase, request, SLOW


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

    def test_no_socket_no_messages_and_a_bad_one_is_only_a_warning(self):
        srv = self.start_server(env={"NOTIFY_SOCKET": "relative/path"})
        c = self.conn(srv.port)
        c.send(request("GET", "/plaintext"))
        self.assertEqual(c.read_response().status, 200)
        self.assertIn("NOTIFY_SOCKET relative/path: not a unix socket path",
                      srv.stderr_text())


if __name__ == "__main__":
    unittest.main()
