"""22. CORS and authentication middleware in zerohttpd (--cors-origin, --basic-auth,
--bearer-tokens, --auth-prefix): preflights and actual requests from allowed, disallowed and
wildcard origins, Vary; 401/200 with good and bad Basic credentials (bcrypt, sha512crypt,
sha256crypt, md5crypt) and Bearer tokens; prefix scoping; /healthz and /readyz exempt;
SIGHUP reloads; no credential in any log; and zero allocations with auth and CORS on."""
import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

from harness import HELLO, JSON, ServerTestCase, malloc_calls, request

SHIM = os.environ.get("ZH_SHIM", "")
DIR = None
HTPASSWD = TOKENS = None

# Fallbacks when openssl / htpasswd are missing (Python's crypt module is gone in 3.13).
# "s3cret-pw" as sha512crypt, salt "zh22salt" (openssl passwd -6 -salt zh22salt s3cret-pw),
# and "bcrypt-pw" as bcrypt cost 4 (htpasswd -nbB -C 4).
SHA512_FALLBACK = ("$6$zh22salt$mLvEOVMMeqfI0cuHqLbe8CL54YFl6vb2AyfqO2pYhdBGOygd.ABm8fF6Jl"
                   "gy8WzsE2F0Zn.9lYzNWWGg5HWid1")
BCRYPT_FALLBACK = "$2y$04$bd5X7Cd0iMVJYYvW3SjTb.rXj484m.LwXiAKFLowhDFNNSU7dJF3e"
# and "sha256-pw", "md5-pw" as sha256crypt and md5crypt, salt "zh22" (openssl passwd -5 / -1):
# without them a machine with no openssl (a fresh Debian 12) silently skipped users cat and dan
CRYPT_FALLBACK = {"-5": "$5$zh22$MzvvvK/Qr0kKhNmdxWrlpDW8GtqxvU9nz3/M.5DQ6P.",
                  "-1": "$1$zh22$QWjsHhdKW57XkAm1B9i3a/"}

TOKEN = "tok-" + "A1b2C3d4" * 4
TOKEN2 = "second.token_~+/=="
TOKEN3 = "named-" + "Zz9" * 8          # listed as "reports-bot:<TOKEN3>": a named token
SECRETS = ["s3cret-pw", "bcrypt-pw", "sha256-pw", "md5-pw", TOKEN, TOKEN2, TOKEN3, "wrong-pw",
           "tok-wrong-guess"]


def tool_hash(cmd, fallback):
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=30, text=True)
    except OSError:
        return fallback
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else fallback


def sha512(pw, salt="zh22salt"):
    return tool_hash(["openssl", "passwd", "-6", "-salt", salt, pw],
                     SHA512_FALLBACK if pw == "s3cret-pw" else None)


def bcrypt(pw):
    line = tool_hash(["htpasswd", "-nbB", "-C", "4", "u", pw], None)
    return line.split(":", 1)[1] if line else (BCRYPT_FALLBACK if pw == "bcrypt-pw" else None)


def setUpModule():
    global DIR, HTPASSWD, TOKENS
    DIR = tempfile.mkdtemp(prefix="zh-auth-")
    HTPASSWD = os.path.join(DIR, "htpasswd")
    TOKENS = os.path.join(DIR, "tokens")
    lines = ["# users", "ann:" + sha512("s3cret-pw"), "bob:" + bcrypt("bcrypt-pw")]
    for user, flag, pw in (("cat", "-5", "sha256-pw"), ("dan", "-1", "md5-pw")):
        h = tool_hash(["openssl", "passwd", flag, "-salt", "zh22", pw], CRYPT_FALLBACK[flag])
        lines.append("%s:%s" % (user, h))
    write(HTPASSWD, "\n".join(lines) + "\n")
    write(TOKENS, "# tokens\n%s\n\n   %s  \r\nreports-bot:%s\n" % (TOKEN, TOKEN2, TOKEN3))


def tearDownModule():
    shutil.rmtree(DIR, ignore_errors=True)


def write(path, text):
    """Replaces a file whole (write, then rename), as an operator's tooling should."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def basic(user, pw):
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


def has_user(name):
    with open(HTPASSWD) as f:
        return any(line.startswith(name + ":") for line in f)


class CorsAuthBase(ServerTestCase):
    def ask(self, method, path, headers=(), body=b""):
        c = self.conn()
        c.send(request(method, path, list(headers) + [("Connection", "close")], body))
        resp = c.read_response(method)
        c.close()
        return resp

    def preflight(self, path, origin, method="PUT", req_headers=None):
        hdrs = [("Origin", origin), ("Access-Control-Request-Method", method)]
        if req_headers:
            hdrs.append(("Access-Control-Request-Headers", req_headers))
        return self.ask("OPTIONS", path, hdrs)

    def assertNoCors(self, resp):
        names = [n for n in resp.header_names() if n.startswith("access-control-")]
        self.assertEqual(names, [], repr(resp))

    def assertVaryOrigin(self, resp):
        """Origin in the Vary list, which may span several Vary fields (RFC 9110 §5.3)."""
        toks = [t.strip().lower() for v in resp.header_all("Vary") for t in v.split(",")]
        self.assertIn("origin", toks, repr(resp))


class Cors(CorsAuthBase):
    SERVER_ARGS = ("--cors-origin", "https://a.example", "--cors-origin", "https://*.example.com")

    def test_preflight_from_an_exact_origin(self):
        r = self.preflight("/plaintext", "https://a.example", "PUT", "content-type, x-custom")
        self.assertEqual(r.status, 204, repr(r))
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://a.example")
        self.assertEqual(r.header("Access-Control-Allow-Methods"),
                         "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS")
        self.assertEqual(r.header("Access-Control-Allow-Headers"), "Content-Type, Authorization")
        self.assertEqual(r.header("Access-Control-Max-Age"), "600")
        self.assertIsNone(r.header("Access-Control-Allow-Credentials"))
        for tok in ("Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"):
            self.assertHeaderToken(r, "Vary", tok)
        self.assertIsNone(r.header("Allow"), "answered by CORS, not the server's OPTIONS")

    def test_preflight_anywhere_even_without_a_route(self):
        r = self.preflight("/no/such/thing", "https://deep.sub.example.com", "DELETE")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://deep.sub.example.com")

    def test_wildcard_matches_subdomains_only(self):
        for origin, ok in (("https://x.example.com", True), ("https://X.Example.COM", True),
                           ("https://a.b.example.com", True), ("https://example.com", False),
                           ("http://x.example.com", False), ("https://x.example.com:8443", False),
                           ("https://x.example.com.evil.net", False),
                           ("https://evil.net/.example.com", False),
                           ("https://x-example.com", False), ("https://.example.com", False)):
            with self.subTest(origin=origin):
                r = self.ask("GET", "/plaintext", [("Origin", origin)])
                self.assertResponse(r, 200, HELLO)
                if ok:
                    self.assertEqual(r.header("Access-Control-Allow-Origin"), origin)
                else:
                    self.assertNoCors(r)
                self.assertVaryOrigin(r)

    def test_actual_request_gets_allow_origin_and_vary(self):
        r = self.ask("GET", "/json", [("Origin", "https://a.example")])
        self.assertResponse(r, 200, JSON)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://a.example")
        self.assertEqual(r.header_all("Access-Control-Allow-Origin"), ["https://a.example"])
        self.assertVaryOrigin(r)
        self.assertIsNone(r.header("Access-Control-Allow-Methods"), "preflight-only header")
        r = self.ask("POST", "/echo", [("Origin", "https://a.example"),
                                       ("Content-Type", "text/plain")], b"abc")
        self.assertResponse(r, 200, b"abc")
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://a.example")
        r = self.ask("GET", "/missing-file.txt", [("Origin", "https://a.example")])
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://a.example",
                         "library answers carry CORS headers too")

    def test_disallowed_origin_gets_no_cors_headers(self):
        r = self.ask("GET", "/plaintext", [("Origin", "https://evil.example")])
        self.assertResponse(r, 200, HELLO)
        self.assertNoCors(r)
        self.assertVaryOrigin(r)
        # its preflight goes on as a plain OPTIONS: the server's own 200 with Allow
        r = self.preflight("/plaintext", "https://evil.example")
        self.assertEqual(r.status, 200)
        self.assertNoCors(r)
        self.assertIsNotNone(r.header("Allow"), repr(r))
        r = self.preflight("/plaintext", "null")
        self.assertNoCors(r)

    def test_no_origin_still_varies(self):
        r = self.ask("GET", "/plaintext")
        self.assertResponse(r, 200, HELLO)
        self.assertNoCors(r)
        self.assertEqual(r.header_all("Vary"), ["Origin"])

    def test_static_files_keep_their_own_vary(self):
        r = self.ask("GET", "/", [("Origin", "https://a.example"), ("Accept-Encoding", "gzip")])
        self.assertEqual(r.status, 200)
        self.assertVaryOrigin(r)
        self.assertIn("Accept-Encoding", r.header_all("Vary"))
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://a.example")

    def test_options_without_request_method_is_not_a_preflight(self):
        r = self.ask("OPTIONS", "/plaintext", [("Origin", "https://a.example")])
        self.assertEqual(r.status, 200)
        self.assertIsNotNone(r.header("Allow"), "the server's OPTIONS answer")
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://a.example")
        self.assertIsNone(r.header("Access-Control-Allow-Methods"))


class CorsAnyOrigin(CorsAuthBase):
    SERVER_ARGS = ("--cors-origin", "*")

    def test_star_answers_star_except_for_null(self):
        r = self.ask("GET", "/plaintext", [("Origin", "https://whoever.test")])
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "*")
        self.assertIsNone(r.header("Access-Control-Allow-Credentials"))
        r = self.preflight("/json", "http://localhost:3000", "PATCH")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "*")
        r = self.ask("GET", "/plaintext", [("Origin", "null")])
        self.assertNoCors(r)

    def test_bad_origin_flag_is_refused(self):
        for bad in ("https://a.example/", "a.example", "https://*", "https://a.*.com"):
            with self.subTest(origin=bad):
                out = subprocess.run([os.environ.get("ZH_BIN") or "build/zerohttpd",
                                      "--port", "0", "--cors-origin", bad],
                                     capture_output=True, timeout=10)
                self.assertNotEqual(out.returncode, 0)
                self.assertIn(b"--cors-origin", out.stderr)


class Auth(CorsAuthBase):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        self.server = self.start_server(("--cors-origin", "https://a.example",
                                         "--basic-auth", HTPASSWD, "--bearer-tokens", TOKENS))
        self.port = self.server.port

    def assert401(self, r, invalid_token=False):
        self.assertResponse(r, 401, b"401 Unauthorized\n")
        challenges = r.header_all("WWW-Authenticate")
        self.assertIn('Basic realm="zerohttp", charset="UTF-8"', challenges)
        bearer = 'Bearer realm="zerohttp"' + (', error="invalid_token"' if invalid_token else "")
        self.assertIn(bearer, challenges)
        for s in SECRETS:
            self.assertNotIn(s.encode(), r.raw_head + r.body)

    def test_missing_credentials(self):
        self.assert401(self.ask("GET", "/plaintext"))
        self.assert401(self.ask("POST", "/echo", [], b"x" * 100))
        self.assert401(self.ask("GET", "/does-not-exist"))
        r = self.ask("HEAD", "/plaintext")
        self.assertEqual(r.status, 401)

    def test_good_basic_credentials(self):
        for user, pw in (("ann", "s3cret-pw"), ("bob", "bcrypt-pw"), ("cat", "sha256-pw"),
                         ("dan", "md5-pw")):
            if not has_user(user):
                continue
            with self.subTest(user=user):
                r = self.ask("GET", "/plaintext", [("Authorization", basic(user, pw))])
                self.assertResponse(r, 200, HELLO)

    def test_bad_basic_credentials(self):
        for authz in (basic("ann", "wrong-pw"), basic("ann", "s3cret-pw "), basic("ann", ""),
                      basic("nobody", "s3cret-pw"), basic("", "s3cret-pw"),
                      basic("ANN", "s3cret-pw"), basic("bob", "s3cret-pw"),
                      "Basic " + base64.b64encode(b"anns3cret-pw").decode(),     # no colon
                      "Basic !!notbase64!!", "Basic YW5u=OnMz", "Basic", "Basic ",
                      "Basic " + base64.b64encode(b"ann:s3cret-pw\0x").decode(),  # NUL
                      "Basic " + "QUFB" * 400):                                   # too long
            with self.subTest(authz=authz[:40]):
                self.assert401(self.ask("GET", "/plaintext", [("Authorization", authz)]))

    def test_scheme_is_case_insensitive_and_unknown_schemes_fail(self):
        r = self.ask("GET", "/plaintext", [("Authorization", basic("ann", "s3cret-pw")
                                            .replace("Basic", "bAsIc"))])
        self.assertResponse(r, 200, HELLO)
        for authz in ("Digest " + TOKEN, "Token " + TOKEN, TOKEN, "Bearer" + TOKEN,
                      "Basic\t" + basic("ann", "s3cret-pw")[6:]):
            with self.subTest(authz=authz[:20]):
                self.assert401(self.ask("GET", "/plaintext", [("Authorization", authz)]))

    def test_bearer_tokens(self):
        for tok in (TOKEN, TOKEN2):
            r = self.ask("GET", "/json", [("Authorization", "Bearer " + tok)])
            self.assertResponse(r, 200, JSON)
        for tok in ("tok-wrong-guess", TOKEN[:-1], TOKEN + "x", TOKEN.lower(), "x" * 300):
            with self.subTest(tok=tok[:20]):
                r = self.ask("GET", "/json", [("Authorization", "Bearer " + tok)])
                self.assert401(r, invalid_token=True)

    def test_health_endpoints_are_exempt(self):
        for path in ("/healthz", "/readyz"):
            r = self.ask("GET", path)
            self.assertEqual(r.status, 200, path)
        self.assert401(self.ask("GET", "/metrics"))
        self.assert401(self.ask("GET", "/healthz/x"))
        self.assert401(self.ask("GET", "/%68ealthz"))

    def test_preflight_needs_no_credentials_and_401_is_readable_cross_origin(self):
        r = self.preflight("/json", "https://a.example", "GET", "authorization")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://a.example")
        r = self.ask("GET", "/json", [("Origin", "https://a.example")])
        self.assert401(r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://a.example")
        r = self.ask("GET", "/json", [("Origin", "https://a.example"),
                                      ("Authorization", "Bearer " + TOKEN)])
        self.assertResponse(r, 200, JSON)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://a.example")
        # a disallowed origin's preflight is a plain OPTIONS: it needs credentials
        self.assert401(self.preflight("/json", "https://evil.example"))

    def test_keepalive_and_pipelining_across_401s(self):
        c = self.conn()
        good = [("Authorization", "Bearer " + TOKEN)]
        c.send(request("GET", "/plaintext") + request("POST", "/echo", [], b"hello") +
               request("GET", "/plaintext", good) + request("POST", "/echo", good, b"hi"))
        self.assertEqual(c.read_response().status, 401)
        self.assertEqual(c.read_response().status, 401)
        self.assertResponse(c.read_response(), 200, HELLO)
        self.assertResponse(c.read_response(), 200, b"hi")

    def test_sighup_reloads_the_files(self):
        original = open(HTPASSWD).read(), open(TOKENS).read()
        try:
            erin = basic("erin", "erin-pw")
            self.assert401(self.ask("GET", "/plaintext", [("Authorization", erin)]))
            write(HTPASSWD, original[0] + "erin:%s\n" % (sha512("erin-pw", "erinsalt")
                                                        or SHA512_FALLBACK))
            write(TOKENS, "fresh-token\n")
            self.server.signal(signal.SIGHUP)
            self.wait_for(lambda: self.ask("GET", "/plaintext",
                                           [("Authorization", "Bearer fresh-token")]).status == 200)
            if sha512("erin-pw", "erinsalt"):
                r = self.ask("GET", "/plaintext", [("Authorization", erin)])
                self.assertResponse(r, 200, HELLO)
            self.assert401(self.ask("GET", "/plaintext", [("Authorization", "Bearer " + TOKEN)]),
                           invalid_token=True)
            # a broken file is not loaded: the previous credentials stay
            write(TOKENS, "fresh-token\nnot a token SECRETLINE\n")
            self.server.signal(signal.SIGHUP)
            self.wait_for(lambda: "not reloaded" in self.server.stderr_text())
            self.assertResponse(self.ask("GET", "/plaintext", [("Authorization",
                                                                "Bearer fresh-token")]), 200)
            err = self.server.stderr_text()
            self.assertIn("line 2", err)
            self.assertNotIn("SECRETLINE", err)
            self.assertTrue(self.server.alive(), "SIGHUP must not end the server")
        finally:
            write(HTPASSWD, original[0])
            write(TOKENS, original[1])

    def wait_for(self, cond, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.02)
        self.fail("condition not met within %.1fs" % timeout)

    def test_credentials_never_logged(self):
        for authz in (basic("ann", "wrong-pw"), basic("ann", "s3cret-pw"), "Bearer " + TOKEN,
                      "Bearer tok-wrong-guess"):
            self.ask("GET", "/plaintext", [("Authorization", authz)])
        text = self.server.stderr_text(1 << 20)
        for s in SECRETS + [base64.b64encode(b"ann:s3cret-pw").decode()]:
            self.assertNotIn(s, text)

    def test_credentials_never_in_the_access_log(self):
        help_text = subprocess.run([os.environ.get("ZH_BIN") or "build/zerohttpd", "--help"],
                                   capture_output=True, timeout=10).stdout
        if b"--access-log" not in help_text:
            self.skipTest("zerohttpd has no --access-log")
        log = os.path.join(DIR, "access-%s.log" % uuid.uuid4().hex)
        srv = self.start_server(("--basic-auth", HTPASSWD, "--bearer-tokens", TOKENS,
                                 "--access-log", log, "--access-log-format", "json"))
        for authz in (basic("ann", "wrong-pw"), basic("ann", "s3cret-pw"), "Bearer " + TOKEN,
                      "Bearer tok-wrong-guess"):
            c = self.conn(srv.port)
            c.send(request("GET", "/plaintext", [("Authorization", authz), ("Connection", "close")]))
            c.read_response()
        self.assertEqual(srv.stop(), [])      # the log is complete once the server exited
        srv.expected_exit = True
        with open(log) as f:
            text = f.read()
        self.assertEqual(text.count("/plaintext"), 4, text)
        for s in SECRETS + [base64.b64encode(b"ann:s3cret-pw").decode()]:
            self.assertNotIn(s, text)

    def access_log_users(self, fmt, asks):
        """The user field of each line, one request per connection, in order."""
        log = os.path.join(DIR, "access-%s.log" % uuid.uuid4().hex)
        srv = self.start_server(("--basic-auth", HTPASSWD, "--bearer-tokens", TOKENS,
                                 "--auth-prefix", "/plaintext", "--workers", "1",
                                 "--access-log", log, "--access-log-format", fmt))
        statuses = []
        for path, authz in asks:
            c = self.conn(srv.port)
            hdrs = [("Connection", "close")] + ([("Authorization", authz)] if authz else [])
            c.send(request("GET", path, hdrs))
            statuses.append(c.read_response().status)
        self.assertEqual(srv.stop(), [])
        srv.expected_exit = True
        with open(log) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), len(asks), lines)
        if fmt == "json":
            import json
            return statuses, [json.loads(l)["user"] for l in lines]
        return statuses, [re.match(r"\S+ - (\S+) \[", l).group(1) for l in lines]

    IDENTITY_ASKS = [("/plaintext", basic("ann", "s3cret-pw")),     # Basic: the user name
                     ("/plaintext", "Bearer " + TOKEN3),              # a named token
                     ("/plaintext", "Bearer " + TOKEN),               # an unnamed token
                     ("/plaintext", basic("ann", "wrong-pw")),        # 401: nobody
                     ("/json", basic("ann", "s3cret-pw"))]            # outside the prefix

    def test_identity_in_the_json_access_log(self):
        statuses, users = self.access_log_users("json", self.IDENTITY_ASKS)
        self.assertEqual(statuses, [200, 200, 200, 401, 200])
        self.assertEqual(users, ["ann", "reports-bot", None, None, None])

    def test_identity_in_the_common_and_combined_access_logs(self):
        for fmt in ("common", "combined"):
            with self.subTest(fmt=fmt):
                statuses, users = self.access_log_users(fmt, self.IDENTITY_ASKS)
                self.assertEqual(statuses, [200, 200, 200, 401, 200])
                self.assertEqual(users, ["ann", "reports-bot", "-", "-", "-"])


class AuthPrefix(CorsAuthBase):
    AUTO_START = False

    def setUp(self):
        super().setUp()
        self.server = self.start_server(("--bearer-tokens", TOKENS, "--auth-prefix", "/json"))
        self.port = self.server.port

    def test_only_paths_under_the_prefix(self):
        # a string prefix, as prefix routes match: "/jsonx" is covered too (fails closed)
        good = [("Authorization", "Bearer " + TOKEN)]
        for path, protected in (("/json", True), ("/json/list?n=1", True), ("/json/", True),
                                ("//json", True), ("/%6Ason", True), ("/j%73on/list", True),
                                ("/x/../json", True), ("/plaintext", False), ("/jsonx", True),
                                ("/js", False), ("/", False), ("/healthz", False)):
            with self.subTest(path=path):
                r = self.ask("GET", path)
                if protected:
                    self.assertEqual(r.status, 401, repr(r))
                    self.assertEqual(r.header_all("WWW-Authenticate"), ['Bearer realm="zerohttp"'])
                else:
                    self.assertNotEqual(r.status, 401, repr(r))
        self.assertResponse(self.ask("GET", "/json", good), 200, JSON)

    def test_bad_flags_are_refused(self):
        binary = os.environ.get("ZH_BIN") or "build/zerohttpd"
        for args in (["--auth-prefix", "/x"], ["--basic-auth", "/nonexistent/htpasswd"],
                     ["--bearer-tokens", TOKENS, "--auth-prefix", "relative"],
                     ["--bearer-tokens", TOKENS, "--auth-prefix", "/a//b"],
                     ["--bearer-tokens", TOKENS, "--auth-prefix", "/%61pi"]):
            with self.subTest(args=args):
                out = subprocess.run([binary, "--port", "0"] + args, capture_output=True,
                                     timeout=10)
                self.assertNotEqual(out.returncode, 0, out.stderr)


@unittest.skipUnless(SHIM, "ZH_SHIM not set (no malloc-counting shim)")
class ZeroAllocCorsAuth(CorsAuthBase):
    """2,000 authorized CORS requests (Bearer, Basic sha512crypt and bcrypt), preflights and
    401s after a warm-up: no malloc-family call."""
    AUTO_START = False
    CONNS = 8

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.isfile(SHIM), "ZH_SHIM=%r does not exist" % SHIM)
        self.count_file = os.path.join(tempfile.gettempdir(),
                                       "zh-malloc-%d-%s" % (os.getpid(), uuid.uuid4().hex))
        self.addCleanup(lambda: os.path.exists(self.count_file) and os.unlink(self.count_file))
        self.server = self.start_server(
            ("--workers", "2", "--cors-origin", "https://a.example",
             "--cors-origin", "https://*.example.com", "--basic-auth", HTPASSWD,
             "--bearer-tokens", TOKENS),
            {"LD_PRELOAD": os.path.abspath(SHIM), "ZH_MALLOC_COUNT_FILE": self.count_file})
        self.port = self.server.port

    def snapshot(self):
        return malloc_calls(self.server.pid, self.count_file)

    def make(self, i):
        """Request i and the status it must get."""
        origin = ("Origin", "https://a.example" if i % 2 else "https://w%d.example.com" % i)
        if i % 7 == 3:
            return request("OPTIONS", "/json", [origin, ("Access-Control-Request-Method",
                                                         "POST")]), 204, "OPTIONS"
        if i % 13 == 5:
            return request("GET", "/plaintext", [origin]), 401, "GET"
        if i % 10 == 0:
            authz = basic("ann", "s3cret-pw")
        elif i % 50 == 25:
            authz = basic("bob", "bcrypt-pw")
        else:
            authz = "Bearer " + (TOKEN if i % 3 else TOKEN2)
        if i % 4 == 1:
            return request("POST", "/echo", [origin, ("Authorization", authz)],
                           b"body-%d" % i), 200, "POST"
        return request("GET", "/plaintext", [origin, ("Authorization", authz)]), 200, "GET"

    def drive(self, conns, start, total):
        i = start
        while i < start + total:
            batch = []
            for c in conns:
                reqs = []
                for _ in range(10):
                    if i >= start + total:
                        break
                    reqs.append(self.make(i))
                    i += 1
                if reqs:
                    c.send(b"".join(r for r, _, _ in reqs))
                    batch.append((c, reqs))
            for c, reqs in batch:
                for _, status, method in reqs:
                    r = c.read_response(method)
                    self.assertEqual(r.status, status, repr(r))
                    self.assertIsNotNone(r.header("Access-Control-Allow-Origin"), repr(r))
        return i - start

    def test_zero_allocations_with_cors_and_auth(self):
        conns = [self.conn(timeout=30) for _ in range(self.CONNS)]
        self.drive(conns, 0, 400)              # every worker: crypt scratch, each path once
        a = self.snapshot()
        t0 = time.monotonic()
        n = self.drive(conns, 400, 2000)
        dt = time.monotonic() - t0
        b = self.snapshot()
        sys.stdout.write("      zero-alloc cors+auth: %d requests in %.1fs, malloc-family "
                         "calls before=%d after=%d delta=%d\n" % (n, dt, a, b, b - a))
        sys.stdout.flush()
        self.assertEqual(n, 2000)
        self.assertEqual(b - a, 0, "%d malloc-family calls during %d requests" % (b - a, n))
