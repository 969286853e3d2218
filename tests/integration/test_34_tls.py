"""34. TLS listeners (libzerohttp-tls, OpenSSL 3): zerohttpd --listen-tls.

Certificates are self-signed ECDSA P-256, made here with the openssl CLI in a temporary
directory: "localhost" (also IP 127.0.0.1), the default pair, and "other.test", chosen by
SNI. Every server gets the harness's plain listener (--address/--port: its readiness check
and /metrics) plus one TLS listener on another free port. Clients: Python's ssl module,
curl --cacert and openssl s_client.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

from harness import (HELLO, HOST, JSON, Closed, RawConn, ServerTestCase, free_port,
                     malloc_calls, metrics, request)

SHIM = os.environ.get("ZH_SHIM", "")
D = None            # the temporary directory: certificates and the document root
FILES = {}          # name -> sha256 of the files under D/root


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30)


def make_cert(name, cn, sans):
    key, cert = os.path.join(D, name + ".key"), os.path.join(D, name + ".pem")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
             "-addext", "subjectAltName=" + sans)
    return cert, key


def setUpModule():
    global D
    D = tempfile.mkdtemp(prefix="zh-tls-")
    make_cert("localhost", "localhost", "DNS:localhost,IP:127.0.0.1")
    make_cert("other", "other.test", "DNS:other.test")
    root = os.path.join(D, "root")
    os.mkdir(root)
    mib = os.urandom(1 << 20)
    for name, data in (("empty.bin", b""), ("4k.bin", mib[:4096]), ("1m.bin", mib)):
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        FILES[name] = hashlib.sha256(data).hexdigest()
    h = hashlib.sha256()
    with open(os.path.join(root, "100m.bin"), "wb") as f:
        for i in range(100):
            block = mib[i:] + mib[:i]  # no two MiB alike: a misplaced record shows
            f.write(block)
            h.update(block)
    FILES["100m.bin"] = h.hexdigest()


def tearDownModule():
    if D:
        shutil.rmtree(D, ignore_errors=True)


def cert(name):
    return os.path.join(D, name + ".pem")


def client_ctx(cafile="localhost", minv=None, maxv=None, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert(cafile))
    ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


class TLSConn(RawConn):
    """RawConn over TLS: same reading helpers, bytes through Python's ssl module."""

    def __init__(self, port, ctx=None, server_hostname="localhost", session=None,
                 timeout=10.0):
        super().__init__(port, timeout=timeout)
        self.sock = (ctx or client_ctx()).wrap_socket(self.sock, server_hostname=server_hostname,
                                                      session=session)

    def _fill(self, n=65536):
        try:
            return super()._fill(n)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            self.eof = True
            return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class TLSCase(ServerTestCase):
    AUTO_START = False
    EXTRA = ()

    def setUp(self):
        super().setUp()
        self.tls_port = free_port()
        self.server = self.start_server(self.tls_args() + list(self.EXTRA))
        self.port = self.server.port
        self.wait_tls()

    def tls_args(self, port=None):
        return ["--root", os.path.join(D, "root"),
                "--listen-tls", "%s:%d" % (HOST, port or self.tls_port),
                "--tls-cert", cert("localhost"), "--tls-key", os.path.join(D, "localhost.key"),
                "--tls-cert", cert("other"), "--tls-key", os.path.join(D, "other.key")]

    def wait_tls(self):
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection((HOST, self.tls_port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def tconn(self, **kw):
        return self.track(TLSConn(self.tls_port, **kw))

    def get(self, c, path, method="GET"):
        c.send(request(method, path))
        return c.read_response(method)

    def m(self):
        return metrics(self.port)

    def openssl(self, *args, stdin=b"", timeout=15):
        # -ign_eof: wait for the server's close after stdin's request (Connection: close)
        p = subprocess.run(["openssl", "s_client", "-ign_eof", "-connect",
                            "%s:%d" % (HOST, self.tls_port)] + list(args), input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        return p.returncode, p.stdout.decode("latin-1")


class Serving(TLSCase):
    def test_curl_cacert(self):
        p = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", cert("localhost"),
                            "--resolve", "localhost:%d:127.0.0.1" % self.tls_port,
                            "-w", "\n%{http_code} %{ssl_verify_result}",
                            "https://localhost:%d/plaintext" % self.tls_port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, HELLO + b"\n200 0")

    def test_python_ssl_each_version(self):
        for v, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            with self.subTest(version=name):
                c = self.tconn(ctx=client_ctx(minv=v, maxv=v))
                self.assertEqual(c.sock.version(), name)
                r = self.get(c, "/json")
                self.assertResponse(r, 200, JSON)

    def test_openssl_versions_10_11_refused(self):
        for flag, ok in (("-tls1", False), ("-tls1_1", False), ("-tls1_2", True),
                         ("-tls1_3", True)):
            with self.subTest(flag=flag):
                # SECLEVEL=0: the client itself would otherwise not offer 1.0/1.1, and the
                # refusal must be the server's
                rc, out = self.openssl(flag, "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile",
                                       cert("localhost"), "-servername", "localhost",
                                       stdin=b"GET /plaintext HTTP/1.1\r\nHost: x\r\n"
                                             b"Connection: close\r\n\r\n")
                if ok:
                    self.assertIn("Verify return code: 0 (ok)", out)
                    self.assertIn("Hello, World!", out)
                else:
                    self.assertNotEqual(rc, 0, out)
                    self.assertIn("alert protocol version", out)

    def test_server_cipher_order(self):
        # the client lists AES-256 first: the server's order picks AES-128-GCM
        ctx = client_ctx(maxv=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertEqual(self.tconn(ctx=ctx).sock.cipher()[0], "ECDHE-ECDSA-AES128-GCM-SHA256")
        # a client that puts ChaCha20 first (no AES hardware) gets it
        ctx = client_ctx(maxv=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertEqual(self.tconn(ctx=ctx).sock.cipher()[0], "ECDHE-ECDSA-CHACHA20-POLY1305")

    def test_close_notify_both_ways(self):
        # the server closes (Connection: close): its close_notify comes before the FIN
        raw = socket.create_connection((HOST, self.tls_port), timeout=10)
        ctx = client_ctx()
        ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        s = self.track(ctx.wrap_socket(raw, server_hostname="localhost",
                                       suppress_ragged_eofs=False))
        s.sendall(request("GET", "/plaintext", [("Connection", "close")]))
        got = b""
        while True:
            chunk = s.recv(65536)  # SSLEOFError on a close without close_notify
            if not chunk:
                break
            got += chunk
        self.assertTrue(got.endswith(HELLO), got)
        # the client closes first: the server answers its close_notify with its own
        # (RFC 8446 §6.1) before closing the socket
        raw = socket.create_connection((HOST, self.tls_port), timeout=10)
        s = self.track(ctx.wrap_socket(raw, server_hostname="localhost",
                                       suppress_ragged_eofs=False))
        s.sendall(request("GET", "/plaintext"))
        self.assertIn(HELLO, s.recv(65536))
        s.unwrap()  # sends ours, waits for the server's: SSLEOFError without it

    def test_renegotiation_refused(self):
        # s_client's "R" command asks for a TLS 1.2 renegotiation (no -ign_eof: it would
        # turn the commands off); the server answers no_renegotiation (RFC 5246 §7.2.2)
        p = subprocess.Popen(["openssl", "s_client", "-connect", "%s:%d" % (HOST, self.tls_port),
                              "-tls1_2", "-CAfile", cert("localhost")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        time.sleep(0.5)
        p.stdin.write(b"R\n")
        p.stdin.flush()
        time.sleep(1.0)
        p.stdin.close()
        p.wait(timeout=10)
        out = p.stdout.read().decode("latin-1")
        p.stdout.close()
        self.assertIn("RENEGOTIATING", out)
        self.assertIn("no renegotiation", out)

    def test_alpn(self):
        # zerohttpd serves HTTP/2 unless --no-http2: "h2" is preferred (test_35 has the
        # h2 side); a client offering only http/1.1 gets it
        c = self.tconn(ctx=client_ctx(alpn=["h2", "http/1.1"]))
        self.assertEqual(c.sock.selected_alpn_protocol(), "h2")
        c = self.tconn(ctx=client_ctx(alpn=["http/1.1"]))
        self.assertEqual(c.sock.selected_alpn_protocol(), "http/1.1")
        self.assertResponse(self.get(c, "/plaintext"), 200, HELLO)
        c = self.tconn()
        self.assertIsNone(c.sock.selected_alpn_protocol())  # none offered: none chosen
        # RFC 7301 §3.2: no protocol in common is a no_application_protocol alert
        with self.assertRaises(ssl.SSLError) as e:
            self.tconn(ctx=client_ctx(alpn=["spdy/3.1"]))
        self.assertIn("NO APPLICATION PROTOCOL", str(e.exception).upper().replace("_", " "))

    def test_sni_selects_the_certificate(self):
        other = self.tconn(ctx=client_ctx("other"), server_hostname="other.test")
        self.assertIn(("DNS", "other.test"), other.sock.getpeercert()["subjectAltName"])
        self.assertResponse(self.get(other, "/plaintext"), 200, HELLO)
        dflt = self.tconn()
        self.assertIn(("DNS", "localhost"), dflt.sock.getpeercert()["subjectAltName"])
        # a name no certificate covers: the default pair (which then fails verification)
        ctx = client_ctx()
        ctx.check_hostname = False
        unknown = self.tconn(ctx=ctx, server_hostname="nope.test")
        self.assertIn(("DNS", "localhost"), unknown.sock.getpeercert()["subjectAltName"])

    def test_bodies_byte_exact_keepalive(self):
        c = self.tconn(timeout=30)
        for name in ("empty.bin", "4k.bin", "1m.bin", "100m.bin", "4k.bin"):
            with self.subTest(name=name):
                t0 = time.monotonic()
                r = self.get(c, "/" + name)
                self.assertEqual(r.status, 200)
                self.assertEqual(hashlib.sha256(r.body).hexdigest(), FILES[name])
                if name == "100m.bin":
                    sys.stdout.write("      100 MiB over TLS in %.2fs\n"
                                     % (time.monotonic() - t0))
        m = self.m()
        self.assertEqual(m['zerohttp_tls_handshakes_total{result="ok"}'], 1)  # keep-alive

    def test_head_and_generated_bodies(self):
        c = self.tconn()
        r = self.get(c, "/1m.bin", "HEAD")
        self.assertEqual((r.status, r.header("Content-Length"), r.body), (200, "1048576", b""))
        body = os.urandom(300000)
        c.send(request("POST", "/echo", [("Content-Type", "application/x-za")], body))
        self.assertResponse(c.read_response(), 200, body)

    def test_pipelining(self):
        c = self.tconn()
        paths = ["/plaintext", "/json", "/4k.bin"] * 10
        c.send(b"".join(request("GET", p) for p in paths))
        for p in paths:
            r = c.read_response()
            self.assertEqual(r.status, 200, p)
            if p == "/4k.bin":
                self.assertEqual(hashlib.sha256(r.body).hexdigest(), FILES["4k.bin"])
            else:
                self.assertEqual(r.body, HELLO if p == "/plaintext" else JSON)
        self.assertTrue(c.no_data_for(0.1))

    def test_plain_http_on_the_tls_port_is_400(self):
        c = self.track(RawConn(self.tls_port))
        c.send(request("GET", "/plaintext"))
        r = c.read_response()
        self.assertEqual(r.status, 400)
        self.assertIn(b"HTTPS", r.body)
        self.assertEqual(r.header("Connection"), "close")
        self.assertClosed(c)
        m = self.m()
        self.assertEqual(m['zerohttp_tls_handshakes_total{result="failed",reason="plain_http"}'],
                         1)
        # the plain listener is not affected
        self.assertResponse(self.get(self.conn(), "/plaintext"), 200, HELLO)

    def test_metrics_and_resumption(self):
        ctx = client_ctx(maxv=ssl.TLSVersion.TLSv1_2)
        a = self.tconn(ctx=ctx)
        self.assertResponse(self.get(a, "/plaintext"), 200, HELLO)
        b = self.tconn(ctx=ctx, session=a.sock.session)
        self.assertTrue(b.sock.session_reused)
        self.assertResponse(self.get(b, "/plaintext"), 200, HELLO)
        ctx13 = client_ctx(minv=ssl.TLSVersion.TLSv1_3)
        a = self.tconn(ctx=ctx13)
        self.assertResponse(self.get(a, "/plaintext"), 200, HELLO)  # the ticket came too
        b = self.tconn(ctx=ctx13, session=a.sock.session)
        self.assertTrue(b.sock.session_reused)  # TLS 1.3 PSK from the ticket
        self.assertResponse(self.get(b, "/plaintext"), 200, HELLO)
        m = self.m()
        self.assertEqual(m['zerohttp_tls_handshakes_total{result="ok"}'], 4)
        self.assertEqual(m["zerohttp_tls_resumed_total"], 2)
        self.assertEqual(m['zerohttp_tls_version_total{version="TLSv1.2"}'], 2)
        self.assertEqual(m['zerohttp_tls_version_total{version="TLSv1.3"}'], 2)
        self.assertEqual(m["zerohttp_tls_handshake_seconds_count"], 4)
        self.assertEqual(sum(v for k, v in m.items() if k.startswith("zerohttp_tls_cipher_total")),
                         4)

    def test_openssl_sess_out_sess_in(self):
        sess = os.path.join(D, "sess-%s.pem" % uuid.uuid4().hex)
        for flag in ("-tls1_2", "-tls1_3"):
            with self.subTest(flag=flag):
                rc, out = self.openssl(flag, "-CAfile", cert("localhost"), "-sess_out", sess,
                                       stdin=b"GET /plaintext HTTP/1.1\r\nHost: x\r\n"
                                             b"Connection: close\r\n\r\n")
                self.assertIn("Hello, World!", out)
                self.assertIn("New, ", out)
                rc, out = self.openssl(flag, "-CAfile", cert("localhost"), "-sess_in", sess,
                                       stdin=b"GET /plaintext HTTP/1.1\r\nHost: x\r\n"
                                             b"Connection: close\r\n\r\n")
                self.assertIn("Reused, ", out)
                self.assertIn("Hello, World!", out)


class AccessLog(TLSCase):
    def setUp(self):
        self.log = os.path.join(tempfile.gettempdir(), "zh-tls-log-%s" % uuid.uuid4().hex)
        self.EXTRA = ("--access-log", self.log, "--access-log-format", "json")
        super().setUp()
        self.addCleanup(lambda: os.path.exists(self.log) and os.unlink(self.log))

    def test_json_lines_name_protocol_and_cipher(self):
        import json
        c = self.tconn(ctx=client_ctx(maxv=ssl.TLSVersion.TLSv1_2))
        self.assertResponse(self.get(c, "/plaintext"), 200, HELLO)
        self.assertResponse(self.get(self.conn(), "/json"), 200, JSON)
        self.server.expected_exit = True
        self.server.signal(signal.SIGTERM)  # the log's lines are written at exit
        self.assertEqual(self.server.wait_exit(15), 0)
        with open(self.log) as f:
            lines = [json.loads(x) for x in f]
        tls = [x for x in lines if x["target"] == "/plaintext"]
        plain = [x for x in lines if x["target"] == "/json"]
        self.assertEqual(len(tls), 1)
        self.assertEqual(tls[0]["tls"], "TLSv1.2")
        self.assertEqual(tls[0]["cipher"], c.sock.cipher()[0])
        self.assertNotIn("tls", plain[0])


class Listeners(TLSCase):
    """--listen adds plain listeners beside the --address/--port one and the TLS one."""

    def setUp(self):
        self.extra_port = free_port()
        self.EXTRA = ("--listen", "%s:%d" % (HOST, self.extra_port))
        super().setUp()

    def test_every_listener_serves(self):
        self.assertResponse(self.get(self.conn(), "/plaintext"), 200, HELLO)
        self.assertResponse(self.get(self.conn(self.extra_port), "/plaintext"), 200, HELLO)
        self.assertResponse(self.get(self.tconn(), "/plaintext"), 200, HELLO)
        text = self.server.stderr_text()
        self.assertIn("listening on http://127.0.0.1:%d/ https://127.0.0.1:%d/ "
                      "http://127.0.0.1:%d/ " % (self.port, self.tls_port, self.extra_port),
                      text)


class Resumption(TLSCase):
    """Ticket keys are shared by the workers and rotate (here every second, from the
    server's start): a ticket of the previous key still resumes, an older one does not.
    Each test has a server of its own, so the key's age is known: the first ticket comes
    well within the first second, the next ticket operation after it rotates."""
    EXTRA = ("--workers", "2", "--tls-ticket-rotate", "1")

    def resume(self, ctx, session):
        c = self.tconn(ctx=ctx, session=session)
        self.assertResponse(self.get(c, "/plaintext"), 200, HELLO)
        reused = c.sock.session_reused
        c.close()
        return reused

    def rotation(self, v):
        ctx = client_ctx(minv=v, maxv=v)
        t0 = time.monotonic()
        first = self.tconn(ctx=ctx)
        self.assertResponse(self.get(first, "/plaintext"), 200, HELLO)
        sess = first.sock.session
        # connections land on either worker (SO_REUSEPORT): all resume
        self.assertEqual([self.resume(ctx, sess) for _ in range(8)], [True] * 8)
        if time.monotonic() - t0 > 0.5:
            self.skipTest("too slow to stay within the first key's second")
        time.sleep(t0 + 1.3 - time.monotonic())  # this resumption rotates: key 2 issues
        self.assertTrue(self.resume(ctx, sess), "the previous key's ticket")
        time.sleep(t0 + 2.6 - time.monotonic())  # rotated again: the first key is gone
        self.assertFalse(self.resume(ctx, sess), "a ticket two keys old")

    def test_rotation_tls12(self):
        self.rotation(ssl.TLSVersion.TLSv1_2)

    def test_rotation_tls13(self):
        self.rotation(ssl.TLSVersion.TLSv1_3)


class MinVersion13(TLSCase):
    EXTRA = ("--tls-min", "1.3")

    def test_tls12_refused(self):
        with self.assertRaises(ssl.SSLError):
            self.tconn(ctx=client_ctx(maxv=ssl.TLSVersion.TLSv1_2))
        c = self.tconn()
        self.assertEqual(c.sock.version(), "TLSv1.3")
        m = self.m()
        self.assertEqual(m['zerohttp_tls_handshakes_total{result="failed",reason="protocol"}'],
                         1)


class CertificateChain(TLSCase):
    """A certificate file holding the leaf and its intermediate: both are sent, so a client
    that trusts only the root verifies the leaf. The leaf alone, the same client fails:
    the intermediate can come only from the server's file."""

    def tls_args(self, port=None):
        d = os.path.join(D, "chain")
        if not os.path.isdir(d):
            os.mkdir(d)
            ext = os.path.join(d, "ext")
            ca_ext = ("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n"
                      "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
            leaf_ext = ("basicConstraints=critical,CA:FALSE\nsubjectKeyIdentifier=hash\n"
                        "authorityKeyIdentifier=keyid\nextendedKeyUsage=serverAuth\n"
                        "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
            f = lambda n: os.path.join(d, n)  # noqa: E731
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", f("root.key"), "-out", f("root.pem"), "-days", "2",
                     "-subj", "/CN=zerohttp test root", "-addext",
                     "basicConstraints=critical,CA:TRUE", "-addext",
                     "keyUsage=critical,keyCertSign")
            for name, cn, issuer, extension in (("int", "zerohttp test intermediate", "root",
                                                 ca_ext),
                                                ("leaf", "localhost", "int", leaf_ext)):
                with open(ext, "w") as e:
                    e.write(extension)
                _openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-nodes", "-keyout", f(name + ".key"),
                         "-out", f(name + ".csr"), "-subj", "/CN=" + cn)
                _openssl("x509", "-req", "-in", f(name + ".csr"), "-CA", f(issuer + ".pem"),
                         "-CAkey", f(issuer + ".key"), "-CAcreateserial", "-days", "2",
                         "-extfile", ext, "-out", f(name + ".pem"))
            with open(f("chain.pem"), "wb") as out:
                for name in ("leaf", "int"):
                    with open(f(name + ".pem"), "rb") as part:
                        out.write(part.read())
        self.chain_dir = d
        return ["--root", os.path.join(D, "root"),
                "--listen-tls", "%s:%d" % (HOST, port or self.tls_port),
                "--tls-cert", os.path.join(d, "chain.pem"),
                "--tls-key", os.path.join(d, "leaf.key")]

    def root_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(self.chain_dir, "root.pem"))
        return ctx

    def test_intermediate_sent_from_the_file(self):
        c = self.tconn(ctx=self.root_ctx())
        self.assertResponse(self.get(c, "/plaintext"), 200, HELLO)
        rc, out = self.openssl("-showcerts", "-servername", "localhost",
                               stdin=request("GET", "/plaintext",
                                             headers=[("Connection", "close")]))
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.count("-----BEGIN CERTIFICATE-----"), 2, out)
        self.assertIn("zerohttp test intermediate", out)

    def test_leaf_alone_does_not_verify(self):
        port = free_port()
        args = self.tls_args(port)
        args[args.index(os.path.join(self.chain_dir, "chain.pem"))] = \
            os.path.join(self.chain_dir, "leaf.pem")
        self.start_server(args)
        self.tls_port = port
        self.wait_tls()
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.tconn(ctx=self.root_ctx())


class Faults(TLSCase):
    EXTRA = ("--tls-handshake-timeout", "400", "--workers", "1")

    def failed(self, m=None):
        return sum(v for k, v in (m or self.m()).items()
                   if k.startswith('zerohttp_tls_handshakes_total{result="failed"'))

    def baseline(self):
        """The descriptor count once only the /metrics scrape's own connection is open and
        the count holds for 0.3 s (the harness's readiness probes may still be closing, or
        not even accepted yet: under ASan on io_uring a probe was accepted after the
        scrape, and the baseline counted it)."""
        fds, m = self.settle(None)
        for _ in range(20):
            time.sleep(0.3)
            again, m = self.settle(None)
            if again == fds:
                break
            fds = again
        return fds

    def settle(self, want_fds, within=5.0):
        deadline = time.monotonic() + within
        while True:
            m = self.m()
            fds = fd_count(self.server.pid)
            # the scrape's own connection is open, and holds a context, while it is served
            if ((want_fds is None or fds == want_fds) and
                    m["zerohttp_io_contexts_in_use"] == 1 and
                    m["zerohttp_large_buffers_in_use"] == 0 and
                    m["zerohttp_connections_open"] == 1) or time.monotonic() > deadline:
                return fds, m
            time.sleep(0.05)

    def test_handshake_timeout(self):
        base = self.baseline()
        silent = self.track(RawConn(self.tls_port))
        partial = self.track(RawConn(self.tls_port))
        partial.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
        t0 = time.monotonic()
        self.assertClosed(silent, within=3)
        self.assertClosed(partial, within=3)
        self.assertLess(time.monotonic() - t0, 2.5)
        fds, m = self.settle(base)
        self.assertEqual(fds, base)
        self.assertEqual(m['zerohttp_tls_handshakes_total{result="failed",reason="timeout"}'], 2)
        c = self.tconn()  # a real client is still served
        self.assertResponse(self.get(c, "/plaintext"), 200, HELLO)

    def test_reset_mid_handshake_and_mid_body(self):
        # the file is opened (and its descriptor cached by the static handler) before the
        # baseline is taken
        c = self.conn()
        self.assertEqual(self.get(c, "/100m.bin", "HEAD").status, 200)
        c.close()
        base = self.baseline()
        failed0 = self.failed()  # wait_tls()'s probe was one
        for i in range(20):
            s = socket.create_connection((HOST, self.tls_port))
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(i * 7))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # RST
        # a reset after the ServerHello flight: the client read part of it
        for _ in range(5):
            raw = socket.create_connection((HOST, self.tls_port))
            o = ssl.MemoryBIO()
            i = ssl.MemoryBIO()
            obj = client_ctx().wrap_bio(i, o, server_hostname="localhost")
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            raw.sendall(o.read())
            raw.recv(100)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
        # mid-body: 100 MiB asked for, a few records read, then RST
        c = TLSConn(self.tls_port)
        c.send(request("GET", "/100m.bin"))
        c.read_exact(200000)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()
        fds, m = self.settle(base)
        self.assertEqual(fds, base, "descriptors not back to the baseline")
        self.assertEqual(m["zerohttp_io_contexts_in_use"], 1)  # the scrape's
        self.assertEqual(m["zerohttp_connections_open"], 1)
        self.assertEqual(self.failed(m) - failed0, 25,
                         {k: v for k, v in m.items() if "tls_handshakes" in k})
        c = self.tconn()
        self.assertResponse(self.get(c, "/plaintext"), 200, HELLO)

    def test_handshake_flood(self):
        base = self.baseline()
        socks = []
        for _ in range(300):
            s = socket.create_connection((HOST, self.tls_port))
            s.sendall(b"\x16\x03\x01")
            socks.append(s)
        try:
            t0 = time.monotonic()
            c = self.tconn()  # served while 300 handshakes stall
            self.assertResponse(self.get(c, "/plaintext"), 200, HELLO)
            self.assertLess(time.monotonic() - t0, 2.0)
            c.close()
        finally:
            for s in socks:
                s.close()
        fds, m = self.settle(base)
        self.assertEqual(fds, base)


class RecordsAfterAFullSocket(TLSCase):
    """Two requests in two TLS records of one TCP write, the first answered with more than
    the socket takes: the second is answered from the record OpenSSL had read ahead, and a
    third request sent later must still be read. It was not: the "drained" hint of an
    earlier socket read was taken for the read-ahead record's, and the connection waited
    for an edge that had come already (a hang until the client sent more)."""
    EXTRA = ("--loopback-sndbuf", "16384", "--workers", "1")

    def test_third_request_after_a_read_ahead_record(self):
        raw = self.track(socket.create_connection((HOST, self.tls_port)))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        raw.settimeout(5)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_ctx().wrap_bio(inc, out, server_hostname="localhost")

        def flush():
            data = out.read()
            if data:
                raw.sendall(data)
        while True:
            try:
                tls.do_handshake()
                flush()
                break
            except ssl.SSLWantReadError:
                flush()
                inc.write(raw.recv(65536))
        tls.write(request("GET", "/stream?bytes=%d" % (1 << 18)))  # one record each,
        tls.write(request("GET", "/healthz"))                     # one TCP write
        flush()
        time.sleep(0.3)  # the first response now waits for the client to read
        tls.write(request("GET", "/healthz", [("Connection", "close")]))
        flush()
        time.sleep(0.3)
        got = b""
        deadline = time.monotonic() + 10
        while got.count(b"HTTP/1.1 200 ") < 3 and time.monotonic() < deadline:
            data = raw.recv(65536)
            if not data:
                break
            inc.write(data)
            try:
                while True:
                    plain = tls.read(1 << 20)
                    if not plain:
                        break
                    got += plain
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
        self.assertEqual(got.count(b"HTTP/1.1 200 "), 3, got[-200:])


class Reload(TLSCase):
    def swap_in(self, src):
        for ext in (".pem", ".key"):
            shutil.copyfile(os.path.join(D, src + ext), os.path.join(D, "live" + ext))

    def tls_args(self, port=None):
        self.swap_in("localhost")
        return ["--root", os.path.join(D, "root"),
                "--listen-tls", "%s:%d" % (HOST, port or self.tls_port),
                "--tls-cert", os.path.join(D, "live.pem"),
                "--tls-key", os.path.join(D, "live.key")]

    def peer_der(self, c):
        return c.sock.getpeercert(binary_form=True)

    def test_sighup_reloads_and_a_bad_file_keeps_the_old(self):
        before = self.tconn()
        der0 = self.peer_der(before)
        make_cert("fresh", "localhost", "DNS:localhost,IP:127.0.0.1")
        self.swap_in("fresh")
        self.server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "TLS certificates reloaded" not in self.server.stderr_text() and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        after = self.tconn(ctx=client_ctx("fresh"))
        der1 = self.peer_der(after)
        self.assertNotEqual(der0, der1)
        with open(cert("fresh"), "rb") as f:
            self.assertEqual(ssl.PEM_cert_to_DER_cert(f.read().decode()), der1)
        # the connection from before goes on with its session
        self.assertResponse(self.get(before, "/plaintext"), 200, HELLO)
        # a broken file: the old pair stays, the log says why
        with open(os.path.join(D, "live.pem"), "w") as f:
            f.write("not a certificate\n")
        self.server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "not reloaded" not in self.server.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn("not reloaded, the old ones stay", self.server.stderr_text())
        again = self.tconn(ctx=client_ctx("fresh"))
        self.assertEqual(self.peer_der(again), der1)
        self.assertResponse(self.get(again, "/plaintext"), 200, HELLO)
        m = self.m()
        self.assertEqual(m['zerohttp_tls_reloads_total{result="ok"}'], 1)
        self.assertEqual(m['zerohttp_tls_reloads_total{result="failed"}'], 1)


class Startup(unittest.TestCase):
    def run_bad(self, args):
        p = subprocess.run([os.environ.get("ZH_BIN", "build/zerohttpd"), "--port", "0"] + args,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        return p.returncode, p.stderr.decode()

    def test_missing_or_bad_certificate(self):
        port = "127.0.0.1:%d" % free_port()
        rc, err = self.run_bad(["--listen-tls", port])
        self.assertEqual(rc, 1)
        self.assertIn("needs --tls-cert and --tls-key", err)
        rc, err = self.run_bad(["--listen-tls", port, "--tls-cert", os.path.join(D, "nope.pem"),
                                "--tls-key", os.path.join(D, "localhost.key")])
        self.assertEqual(rc, 1)
        self.assertIn("cannot read", err)
        rc, err = self.run_bad(["--listen-tls", port, "--tls-cert", cert("other"),
                                "--tls-key", os.path.join(D, "localhost.key")])
        self.assertEqual(rc, 1)
        self.assertIn("the key does not match its certificate", err)
        rc, err = self.run_bad(["--tls-cert", cert("other")])
        self.assertEqual(rc, 1)
        self.assertIn("need a --listen-tls", err)


@unittest.skipUnless(SHIM, "ZH_SHIM not set (no malloc-counting shim)")
class ZeroAllocTLS(TLSCase):
    """0 malloc-family calls per request on keep-alive TLS connections in steady state
    (OpenSSL's allocations go to the pools of tls_alloc.c), and the handshake's cost."""
    CONNS = 8
    BATCH = 50
    WARMUP = 2000
    MEASURED = 100000

    def setUp(self):
        self.count_file = os.path.join(tempfile.gettempdir(),
                                       "zh-malloc-%d-%s" % (os.getpid(), uuid.uuid4().hex))
        ServerTestCase.setUp(self)
        self.addCleanup(lambda: os.path.exists(self.count_file) and os.unlink(self.count_file))
        self.tls_port = free_port()
        self.server = self.start_server(self.tls_args() + ["--workers", "1"],
                                        {"LD_PRELOAD": os.path.abspath(SHIM),
                                         "ZH_MALLOC_COUNT_FILE": self.count_file})
        self.port = self.server.port
        self.wait_tls()

    def drive(self, conns, total):
        reqs = [(request("GET", "/plaintext"), HELLO), (request("GET", "/json"), JSON),
                (request("GET", "/4k.bin"), None)]
        done = i = 0
        while done < total:
            batches = []
            for c in conns:
                n = min(self.BATCH, total - done)
                if n <= 0:
                    break
                picked = [reqs[(i + k) % 3] for k in range(n)]
                i += n
                c.send(b"".join(r for r, _ in picked))
                batches.append((c, picked))
                done += n
            for c, picked in batches:
                for _, body in picked:
                    r = c.read_response()
                    if r.status != 200 or (body is not None and r.body != body) or \
                            (body is None and len(r.body) != 4096):
                        self.fail("bad response %r" % r)
        return done

    def test_zero_allocations_per_tls_request(self):
        conns = [self.tconn(timeout=20) for _ in range(self.CONNS)]
        self.drive(conns, self.WARMUP)
        m0 = self.m()
        a = malloc_calls(self.server.pid, self.count_file)
        t0 = time.monotonic()
        n = self.drive(conns, self.MEASURED)
        dt = time.monotonic() - t0
        b = malloc_calls(self.server.pid, self.count_file)
        m1 = self.m()
        pool_growth = m1["zerohttp_tls_pool_bytes"] - m0["zerohttp_tls_pool_bytes"]
        data = m1["zerohttp_tls_data_allocations_total"] - m0["zerohttp_tls_data_allocations_total"]
        hs = m1['zerohttp_tls_handshakes_total{result="ok"}']
        sys.stdout.write("      zero-alloc TLS: %d requests on %d connections in %.1fs, "
                         "malloc-family calls delta=%d; pool blocks %.2f per request, pool "
                         "growth %d bytes; %.0f pool allocations per handshake (%d "
                         "handshakes)\n" % (n, len(conns), dt, b - a, data / n, pool_growth,
                                            m1["zerohttp_tls_handshake_allocations_total"] / hs,
                                            hs))
        sys.stdout.flush()
        self.assertEqual(n, self.MEASURED)
        self.assertEqual(b - a, 0, "%d malloc-family calls during %d TLS requests" % (b - a, n))
        self.assertEqual(pool_growth, 0, "the pools grew in steady state")


class TLSProxy(ServerTestCase):
    """The reverse proxy behind a TLS listener: the upstream learns the client's scheme, and
    request bodies stream through TLS (no splice there: read into the upstream buffer)."""
    AUTO_START = False
    SERVER_DEMO = False

    def test_proxied_request_says_https_and_its_body_streams(self):
        from test_50_proxy import Upstream
        up = Upstream(self, "a")
        port = free_port()
        self.server = self.start_server([
            "--workers", "1", "--listen-tls", "%s:%d" % (HOST, port),
            "--tls-cert", cert("localhost"), "--tls-key", os.path.join(D, "localhost.key"),
            "--proxy", "/=" + up.url, "--max-body", str(8 << 20)])
        body = os.urandom(3 << 20)
        c = self.track(TLSConn(port))
        c.send(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body)
               + body)
        doc = json.loads(c.read_response(method="POST").body)
        self.assertEqual((doc["body_len"], doc["body_sha"]),
                         (len(body), hashlib.sha256(body).hexdigest()))
        self.assertIn("X-Forwarded-Proto: https\r\n", doc["head"])
        self.assertIn("for=127.0.0.1;proto=https", doc["head"])


if __name__ == "__main__":
    unittest.main()

