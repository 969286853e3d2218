"""44. The JSON reader (zh_jdoc_*, zh_req_json) on a server's request path, checked against
python3's json module and for allocations.

- Cross-check: a few thousand generated documents (random values written with random
  whitespace and escape styles; byte mutations of them; hand-made edge cases) are POSTed to
  tests/json_server.c's /jr/dump, which parses each with zh_req_json and writes it back
  through the accessors in a canonical form. Python's json module, made strict (the body
  decoded as strict UTF-8; NaN and Infinity refused; a string with a lone surrogate, which
  Python accepts but UTF-8 cannot hold, refused; duplicate keys kept in order), must accept
  exactly the documents the reader accepts and read the same values: strings equal, integers
  equal (those beyond int64 as their text), other numbers bit-identical doubles.
- Errors: the answers of zh_jdoc_reply_error (400/413/500 with reason and byte offset).
- Zero allocation, under the malloc-counting shim: 100,000 POST /jr/field requests (parse,
  member lookups, i64, double, string unescape, answer through the writer): 0 mallocs; and
  issue 13's combined run, 100,000 POST /jr/orders/{user} requests whose handler reads a
  percent-decoded path parameter (zh_req_param), query lookups (zh_form_get, an integer, a
  repeated name), two cookies (zh_req_cookie, one quoted) and a JSON body (every typed
  accessor and iteration), sets a cookie (zh_resp_set_cookie) and answers in JSON: 0 mallocs.

The server is tests/json_server.c (ZH_JSON_SERVER, as for test_19).
"""
import json
import os
import random
import struct
import sys
import tempfile
import time
import unittest
import uuid

from harness import ServerTestCase, malloc_calls, request
from test_19_json import JsonServer

SHIM = os.environ.get("ZH_SHIM", "")
INT64 = (-(1 << 63), (1 << 63) - 1)


class Refused(Exception):
    pass


def _refuse_constant(name):
    raise Refused(name)


def canon(v):
    """Python's reading of a document in the canonical form /jr/dump writes."""
    if isinstance(v, tuple):  # ("i", text) or ("f", text): parse_int / parse_float
        kind, text = v
        if kind == "i":
            n = int(text)
            return n if INT64[0] <= n <= INT64[1] else {"big": text}
        x = float(text)
        if x in (float("inf"), float("-inf")):
            return {"inf": 1 if x > 0 else -1}
        return {"f": struct.pack(">d", x).hex()}
    if isinstance(v, str):
        try:
            v.encode("utf-8")  # a lone surrogate (from "\ud800") has no UTF-8 form
        except UnicodeEncodeError:
            raise Refused("lone surrogate")
        return v
    if isinstance(v, list):
        return [canon(e) for e in v]
    if isinstance(v, dict):  # from object_pairs_hook below
        return {"o": [[canon(k), canon(x)] for k, x in v["o"]]}
    return v  # True, False, None


def python_reading(doc):
    """The canonical value of doc (bytes) by python3's json, or None if it refuses it."""
    try:
        text = doc.decode("utf-8")  # strict: no overlongs, no encoded surrogates
        v = json.loads(text, object_pairs_hook=lambda pairs: {"o": pairs},
                       parse_int=lambda s: ("i", s), parse_float=lambda s: ("f", s),
                       parse_constant=_refuse_constant)
        return ("ok", canon(v))
    except (UnicodeDecodeError, ValueError, Refused, RecursionError):
        return None


# ---- documents ------------------------------------------------------------------------------

WS = [" ", "\t", "\r", "\n"]
SHORT_ESC = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
             "\t": "\\t"}
CHARS = (["a", "Z", "0", " ", "/", '"', "\\", "\x00", "\x01", "\x1f", "\x7f", "\b", "\n",
          "\u00e9", "\u0800", "\u20ac", "\u2028", "\ud7ff", "\ue000", "\ufeff", "\uffff",
          "\U00010000", "\U0001f600", "\U0010ffff"] + list("abcdefghij"))


def gen_string(rng):
    out = ['"']
    for _ in range(rng.choice([0, 1, 3, 8, 20, 40])):
        c = rng.choice(CHARS)
        style = rng.random()
        if c in SHORT_ESC and style < 0.6:
            out.append(SHORT_ESC[c])
        elif c == "/" and style < 0.3:
            out.append("\\/")
        elif ord(c) < 0x20 or c in '"\\' or style < 0.3:
            if ord(c) > 0xffff:  # a surrogate pair, either hex case
                u = ord(c) - 0x10000
                esc = "\\u%04x\\u%04x" % (0xd800 + (u >> 10), 0xdc00 + (u & 0x3ff))
            else:
                esc = "\\u%04x" % ord(c)
            out.append(esc.upper().replace("\\U", "\\u") if rng.random() < 0.5 else esc)
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def gen_number(rng):
    k = rng.random()
    if k < 0.25:
        return str(rng.randint(-1000, 1000))
    if k < 0.4:
        return str(rng.choice([INT64[0], INT64[1], INT64[0] - 1, INT64[1] + 1, 0, -0])
                   + rng.randint(-2, 2))
    if k < 0.45:
        return ("-" if rng.random() < 0.5 else "") + str(rng.randint(1, 9)) + "".join(
            rng.choice("0123456789") for _ in range(rng.randint(19, 60)))
    if k < 0.7:
        return repr(rng.uniform(-1e6, 1e6))
    if k < 0.8:
        return rng.choice(["0.0", "-0.0", "-0", "1e400", "-1e400", "4.9e-324", "2e-324",
                           "1.7976931348623157e308", "1.7976931348623159e308",
                           "2.2250738585072011e-308", "0.1", "1E+2", "1e-7", "5e-1",
                           "9007199254740993", "123456789012345678901234567890.5e-10"])
    mant = str(rng.randint(0, 10 ** rng.randint(1, 30)))
    frac = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 25)))
    text = ("-" if rng.random() < 0.5 else "") + mant + ("." + frac if frac else "")
    if rng.random() < 0.6:
        text += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 400))
    return text


def ws(rng):
    return "".join(rng.choice(WS) for _ in range(rng.choice([0, 0, 0, 1, 2])))


def gen_value(rng, depth=0):
    k = rng.random()
    if depth >= 6 or k < 0.45:
        s = rng.random()
        if s < 0.4:
            return gen_string(rng)
        if s < 0.8:
            return gen_number(rng)
        return rng.choice(["true", "false", "null"])
    if k < 0.72:
        items = [gen_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
        return "[" + ws(rng) + ("," + ws(rng)).join(i + ws(rng) for i in items) + "]"
    members = []
    keys = []
    for _ in range(rng.randint(0, 5)):
        key = rng.choice(keys) if keys and rng.random() < 0.15 else gen_string(rng)
        keys.append(key)
        members.append(key + ws(rng) + ":" + ws(rng) + gen_value(rng, depth + 1) + ws(rng))
    return "{" + ws(rng) + ("," + ws(rng)).join(members) + "}"


MUTANT_BYTES = b'"\\{}[],:0123456789eE+-.tfnu \t\r\n\x00\x1f\x7f\x80\xbf\xc0\xc3\xe0\xed\xf0\xf4\xf5\xff'


def mutate(rng, doc):
    b = bytearray(doc)
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        pos = rng.randint(0, len(b))
        if op < 0.35 and pos < len(b):
            b[pos] = rng.choice(MUTANT_BYTES)
        elif op < 0.7:
            b[pos:pos] = bytes([rng.choice(MUTANT_BYTES)])
        elif op < 0.9 and pos < len(b):
            del b[pos]
        else:
            del b[pos:]
    return bytes(b)


EDGE_CASES = [
    b"", b" ", b"0", b"-0", b"[]", b"{}", b'""', b"[1,]", b"[,]", b'{"a":1,}', b"[01]",
    b"[1.]", b"[.5]", b"[1e]", b"[+1]", b"[-]", b"NaN", b"[NaN]", b"[Infinity]",
    b"[-Infinity]", b"\xef\xbb\xbf[]", b"[1] x", b"[1]\x00", b"[\"\\ud800\"]",
    b"[\"\\udc00\"]", b"[\"\\ud83d\\ude00\"]", b"[\"\\ud83d\\u0041\"]", b"[\"\xed\xa0\x80\"]",
    b"[\"\xc0\xaf\"]", b"[\"\xe0\x80\xaf\"]", b"[\"\xf0\x80\x80\xaf\"]", b"[\"\xf4\x90\x80\x80\"]",
    b"[\"\xf4\x8f\xbf\xbf\"]", b"[\"\x7f\"]", b"[\"\t\"]", b"[\"\\t\"]", b"[\"\\a\"]",
    b"[\"\\u00G0\"]", b"[\"\\u0000\"]", b"{\"a\":1,\"a\":2}", b"[true, false, null]",
    b"[tru]", b"[True]", b"{'a':1}", b"[1 2]", b"\x0b[]", b"[\x0c]", b"[1e400, -1e400]",
    b"[123456789012345678901234567890]", b"[9223372036854775808, -9223372036854775809]",
    b"[" * 50 + b"]" * 50, b"[" * 50 + b"]" * 49,
]


def documents(seed=40, n_valid=1500, n_mutants=1500):
    rng = random.Random(seed)
    valid = [(ws(rng) + gen_value(rng) + ws(rng)).encode("utf-8", "surrogatepass")
             for _ in range(n_valid)]
    mutants = [mutate(rng, rng.choice(valid)) for _ in range(n_mutants)]
    return EDGE_CASES + valid + mutants


class JsonServerCase(ServerTestCase):
    """Runs tests/json_server instead of zerohttpd."""
    AUTO_START = False

    def start_server(self, args=(), env=None):
        srv = JsonServer(args, env).start()
        self._servers.append(srv)
        return srv


class JsonReaderServer(JsonServerCase):
    def setUp(self):
        super().setUp()
        self.server = self.start_server()
        self.port = self.server.port

    def post(self, c, path, body):
        c.send(request("POST", path, [("Content-Length", str(len(body)))], body))
        return c.read_response()

    def test_cross_check_with_python(self):
        docs = documents()
        c = self.conn(timeout=20)
        accepted = refused = 0
        batch = 50
        for at in range(0, len(docs), batch):
            chunk = docs[at:at + batch]
            c.send(b"".join(request("POST", "/jr/dump", [("Content-Length", str(len(d)))], d)
                            for d in chunk))
            for doc in chunk:
                r = c.read_response()
                want = python_reading(doc)
                if want is None:
                    refused += 1
                    self.assertIn(r.status, (400,), "Python refuses %r; the reader answered %d %r"
                                  % (doc[:200], r.status, r.body[:200]))
                    err = json.loads(r.body)
                    self.assertEqual(err["error"], "invalid JSON")
                    self.assertLessEqual(err["offset"], len(doc))
                    continue
                accepted += 1
                self.assertEqual(r.status, 200, "Python accepts %r; the reader answered %d %r"
                                 % (doc[:200], r.status, r.body[:200]))
                self.assertEqual(json.loads(r.body), want[1], "values of %r" % doc[:200])
        sys.stdout.write("      json reader vs python: %d documents, %d accepted, %d refused "
                         "by both\n" % (len(docs), accepted, refused))
        sys.stdout.flush()
        self.assertGreater(accepted, 1000)
        self.assertGreater(refused, 800)

    def test_errors_are_answered_in_json(self):
        c = self.conn()
        cases = [
            # (path, body, status, reason, offset)
            ("/jr/dump", b'{"a": [1, 2', 400, "unexpected end of text", 11),
            ("/jr/dump", b'{"a": "\xc3\xa9\xc3"}', 400, "invalid UTF-8 in a string", 9),
            ("/jr/dump", b'["\\uDE00"]', 400, "unpaired surrogate escape in a string", 2),
            ("/jr/dump", b'[1, 02]', 400, "malformed number", 4),
            ("/jr/dump", b'[1] [2]', 400, "text after the value", 4),
            ("/jr/dump", b'', 400, "no value", 0),
            ("/jr/dump?cap=3", b'[1, 2, 3]', 413, "too many values", 7),
            ("/jr/dump?depth=2", b'[[[]]]', 400, "nested too deeply", 2),
            ("/jr/dump?depth=0", b'[' * 65 + b']' * 65, 400, "nested too deeply", 64),
            ("/jr/field", b'{"id": 1, "name": "a\x01"}', 400,
             "unescaped control character in a string", 20),
            ("/jr/stream", b'[1]', 500, "request body not available", 0),
        ]
        for path, body, status, reason, offset in cases:
            r = self.post(c, path, body)
            self.assertEqual(r.status, status, "%s %r: %r" % (path, body, r))
            self.assertEqual(r.header("Content-Type"), "application/json")
            self.assertEqual(json.loads(r.body), {"error": "invalid JSON", "reason": reason,
                                                  "offset": offset}, "%s %r" % (path, body))
            if status == 500:
                c = self.conn()  # the streaming route's unread body: take a fresh connection
        # the default depth, 64, is accepted
        r = self.post(c, "/jr/dump?depth=0", b"[" * 64 + b"]" * 64)
        self.assertEqual(r.status, 200, r)
        # and the field route reads what a handler wants
        r = self.post(c, "/jr/field",
                      b'{"tags": ["a", "b", "c"], "id": -7, "price": 8.75, "x": {"id": 1},'
                      b' "name": "\\u00e9t\\u00e9 \\ud83d\\ude00 \\"q\\""}')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body),
                         {"id": -7, "name": "\u00e9t\u00e9 \U0001f600 \"q\"", "price": 8.75,
                          "tags": 3})

    def test_orders_reads_params_query_cookies_and_body(self):
        """/jr/orders/{user}: the combined handler answers what python reads from the same
        request (the zero-allocation run compares bytes; this checks those bytes' meaning)."""
        c = self.conn()
        for i in (0, 1, 2, 3, 5, 6, 15):
            req, answer, cookie = order_doc(i)
            c.send(req)
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, answer)
            self.assertEqual(r.header("Set-Cookie"), cookie)
            body = json.loads(req.split(b"\r\n\r\n", 1)[1])
            got = json.loads(r.body)
            self.assertEqual((got["id"], got["name"], got["price"], got["coupon"]),
                             (body["id"], body["name"], body["price"], body["coupon"] is not None))
            self.assertEqual((got["items"], got["units"], got["gifts"]),
                             (len(body["items"]), sum(x["n"] for x in body["items"]),
                              sum(1 for x in body["items"] if x["gift"])))
            self.assertEqual(got["user"], "u%d" % i if i % 2 else "u \u00e9-%d" % i)
        # a missing cookie, a qty that is not an integer, and a refused body
        for path, headers, body, status in [
                ("/jr/orders/u?currency=E&qty=1", [("Cookie", "session=s")], b"{}", 400),
                ("/jr/orders/u?currency=E&qty=1x", [("Cookie", "session=s; theme=t")], b"{}",
                 400),
                ("/jr/orders/u?currency=E&qty=1", [("Cookie", "session=s; theme=t")], b"[1,",
                 400)]:
            c.send(request("POST", path, headers + [("Content-Length", str(len(body)))], body))
            r = c.read_response()
            self.assertEqual(r.status, status, r)
        self.assertEqual(json.loads(r.body)["reason"], "unexpected end of text")


def field_doc(i):
    """Request body i of the zero-allocation run and the answer it must get."""
    name = "item-%d \u00e9\\u00e9 \\ud83d\\ude00 \\\"%d\\\"" % (i, i % 7)
    body = ('{"id":%d,"name":"%s","price":%s,"tags":[%s],"active":%s,"extra":{"n":[1,2,{"m":null}]}}'
            % (i, name, repr(i * 1.25), ",".join('"t%d"' % k for k in range(i % 5)),
               "true" if i % 2 == 0 else "false"))
    price = i * 1.25
    price_text = "%d" % price if price == int(price) else repr(price)
    answer = ('{"id":%d,"name":"item-%d \u00e9\u00e9 \U0001f600 \\"%d\\"","price":%s,"tags":%d}'
              % (i, i, i % 7, price_text, i % 5))
    return body.encode(), answer.encode()


def order_doc(i):
    """Request i of the combined run (POST /jr/orders/{user}) and the answer and Set-Cookie
    it must get: see jr_order in tests/json_server.c."""
    if i % 2:
        user_raw, user = "u%d" % i, "u%d" % i
    else:  # decoded into the request's scratch area
        user_raw, user = "u%%20%%C3%%A9-%d" % i, "u \u00e9-%d" % i
    currency_raw, currency = ("E%55R", "EUR") if i % 3 else ("US+D", "US D")
    ntags = i % 4
    query = ("currency=%s&qty=%d" % (currency_raw, i % 50)
             + "".join("&tag=t%d+x" % k for k in range(ntags))
             + ("&note=a%26b" if i % 5 == 0 else ""))
    theme_raw, theme = ('"light"', "light") if i % 2 else ("dark", "dark")
    cookie = ("theme=%s; session=s%d" % (theme_raw, i) if i % 3
              else "session=s%d;theme=%s; other=1" % (i, theme_raw))
    items = [(k + i % 3, k % 2 == 0) for k in range(i % 4 + 1)]
    name = "order \\u00e9 \\\"%d\\\"" % (i % 9)  # JSON text: order \u00e9 \"N\"
    body = ('{"id":%d,"name":"%s","price":%s,"coupon":%s,"items":[%s],"extra":[1,{"a":null}]}'
            % (i, name, repr(i * 0.75), "null" if i % 2 else '"C\\u0031"',
               ",".join('{"sku":"k\\u00%02x","n":%d,"gift":%s}'
                        % (0x41 + k, n, "true" if g else "false")
                        for k, (n, g) in enumerate(items))))
    price = i * 0.75
    price_text = "%d" % price if price == int(price) else repr(price)
    answer = ('{"user":"%s","currency":"%s","qty":%d,"tags":%d,"session":"s%d","theme":"%s",'
              '"id":%d,"name":"order \u00e9 \\"%d\\"","price":%s,"coupon":%s,"items":%d,'
              '"units":%d,"gifts":%d}'
              % (user, currency, i % 50, ntags, i, theme, i, i % 9, price_text,
                 "false" if i % 2 else "true", len(items), sum(n for n, _ in items),
                 sum(1 for _, g in items if g)))
    body = body.encode()
    req = request("POST", "/jr/orders/%s?%s" % (user_raw, query),
                  [("Cookie", cookie), ("Content-Length", str(len(body)))], body)
    return req, answer.encode(), "last=%d; Path=/jr; HttpOnly; SameSite=Lax" % i


def field_request(i):
    body, answer = field_doc(i)
    return (request("POST", "/jr/field", [("Content-Length", str(len(body)))], body), answer,
            None)


@unittest.skipUnless(SHIM, "ZH_SHIM not set (no malloc-counting shim)")
class JsonReaderZeroAlloc(JsonServerCase):
    CONNS = 8
    BATCH = 50
    WARMUP = 2000
    MEASURED = 100000

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.isfile(SHIM), "ZH_SHIM=%r does not exist" % SHIM)
        self.count_file = os.path.join(tempfile.gettempdir(),
                                       "zh-malloc-%d-%s" % (os.getpid(), uuid.uuid4().hex))
        self.addCleanup(lambda: os.path.exists(self.count_file) and os.unlink(self.count_file))
        self.server = self.start_server((), {"LD_PRELOAD": os.path.abspath(SHIM),
                                             "ZH_MALLOC_COUNT_FILE": self.count_file})
        self.port = self.server.port

    def drive(self, conns, docs, total):
        """Sends total requests from docs [(request, answer, Set-Cookie or None)], in
        pipelined batches on every connection, and checks every answer byte for byte."""
        done = i = 0
        while done < total:
            pending = []
            for c in conns:
                n = min(self.BATCH, total - done)
                if n <= 0:
                    break
                batch = [docs[(i + k) % len(docs)] for k in range(n)]
                i += n
                c.send(b"".join(req for req, _, _ in batch))
                pending.append((c, batch))
                done += n
            for c, batch in pending:
                for _, answer, cookie in batch:
                    r = c.read_response()
                    if r.status != 200 or r.body != answer or (
                            cookie is not None and r.header("Set-Cookie") != cookie):
                        self.fail("got %r, expected %r (Set-Cookie %r)" % (r, answer, cookie))
        return done

    def measure(self, what, docs):
        conns = [self.conn(timeout=20) for _ in range(self.CONNS)]
        self.drive(conns, docs, self.WARMUP)
        a = malloc_calls(self.server.pid, self.count_file)
        t0 = time.monotonic()
        n = self.drive(conns, docs, self.MEASURED)
        dt = time.monotonic() - t0
        b = malloc_calls(self.server.pid, self.count_file)
        sys.stdout.write("      %s zero-alloc: %d requests on %d connections in %.1fs, "
                         "malloc-family calls before=%d after=%d delta=%d\n"
                         % (what, n, len(conns), dt, a, b, b - a))
        sys.stdout.flush()
        self.assertEqual(n, self.MEASURED)
        self.assertEqual(b - a, 0, "%d malloc-family calls during %d requests" % (b - a, n))

    def test_zero_allocations_per_request(self):
        self.measure("json reader", [field_request(i) for i in range(997)])

    def test_combined_zero_allocations(self):
        """Issue 13's "Done means": path parameters, query lookups, cookies and the JSON
        reader in the same 100,000 requests, 0 mallocs."""
        self.measure("params+query+cookies+json", [order_doc(i) for i in range(997)])
