#!/usr/bin/python3
"""Frame-level HTTP/2 client cases for tests/integration/test_35_http2.py.

Run with /usr/bin/python3 (Debian's python3-h2; the test runner's python3 may lack it):
    [H2PEER_CAFILE=cert.pem] h2peer.py PORT CASE
prints one JSON object with what it saw (GOAWAY error code, responses, counts) and exits 0,
or exits 2 with the reason on stderr. Every socket has a timeout, so a case ends within
seconds whatever the server does. Talks only to 127.0.0.1.
"""
import json
import os
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

HOST = "127.0.0.1"
# H2PEER_CAFILE=cert.pem: the cases that use connect() run over TLS (server name localhost)
CAFILE = os.environ.get("H2PEER_CAFILE")


def connect(port, settings=None):
    s = socket.create_connection((HOST, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if CAFILE:      # h2 over TLS: ALPN must choose "h2" (RFC 9113 §3.2)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(CAFILE)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        s = ctx.wrap_socket(s, server_hostname="localhost")
        if s.selected_alpn_protocol() != "h2":
            raise RuntimeError("ALPN chose %r" % s.selected_alpn_protocol())
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                             header_encoding=None))
    c.initiate_connection()
    if settings:
        c.update_settings(settings)
    s.sendall(c.data_to_send())
    return s, c


def hdrs(path, method="GET", extra=()):
    return [(":method", method), (":path", path), (":scheme", "http"),
            (":authority", "localhost")] + list(extra)


class Peer:
    """Collects events until a condition holds, the server closes, or time runs out."""

    def __init__(self, port, settings=None, auto_ack=True):
        self.s, self.c = connect(port, settings)
        self.auto_ack = auto_ack
        self.goaway = None
        self.closed = False
        self.resets = {}
        self.bodies = {}
        self.status = {}
        self.headers = {}
        self.trailers = {}
        self.ended = set()
        self.ping_acks = 0

    def send(self):
        data = self.c.data_to_send()
        if data:
            try:
                self.s.sendall(data)
            except OSError:
                self.closed = True

    def raw(self, data):
        try:
            self.s.sendall(data)
        except OSError:
            self.closed = True

    def pump(self, until, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not until() and not self.closed and time.monotonic() < deadline:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.s.recv(1 << 20)
            except socket.timeout:
                break
            except OSError:
                self.closed = True
                break
            if not d:
                self.closed = True
                break
            try:
                events = self.c.receive_data(d)
            except h2.exceptions.ProtocolError:
                self.closed = True
                break
            for e in events:
                self.on(e)
            self.send()
        return until()

    def on(self, e):
        if isinstance(e, h2.events.ResponseReceived):
            h = dict((k.decode(), v.decode()) for k, v in e.headers)
            self.headers[e.stream_id] = h
            self.status[e.stream_id] = int(h[":status"])
        elif isinstance(e, h2.events.TrailersReceived):
            self.trailers[e.stream_id] = dict((k.decode(), v.decode()) for k, v in e.headers)
        elif isinstance(e, h2.events.DataReceived):
            self.bodies.setdefault(e.stream_id, bytearray()).extend(e.data)
            if self.auto_ack and e.flow_controlled_length:
                self.c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.StreamEnded):
            self.ended.add(e.stream_id)
        elif isinstance(e, h2.events.StreamReset):
            self.resets[e.stream_id] = int(e.error_code)
        elif isinstance(e, h2.events.ConnectionTerminated):
            self.goaway = int(e.error_code)
        elif isinstance(e, h2.events.PingAckReceived):
            self.ping_acks += 1

    def get(self, path, sid=None, method="GET", body=None, extra=()):
        sid = sid or self.c.get_next_available_stream_id()
        self.c.send_headers(sid, hdrs(path, method, extra), end_stream=body is None)
        if body is not None:
            self.c.send_data(sid, body, end_stream=True)
        self.send()
        return sid

    def result(self, **kw):
        out = {"goaway": self.goaway, "closed": self.closed, "resets": self.resets,
               "status": self.status, "ended": sorted(self.ended),
               "lens": dict((k, len(v)) for k, v in self.bodies.items()),
               "trailers": self.trailers}
        out.update(kw)
        return out


def frame(ftype, flags, sid, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([ftype, flags]) +
            (sid & 0x7fffffff).to_bytes(4, "big") + payload)


# ---- cases ---------------------------------------------------------------------------------

def case_many_streams(port):
    """100 streams at once on one connection, each a different /stream size."""
    p = Peer(port)
    sids = {}
    for i in range(100):
        sids[p.get("/stream?bytes=%d" % (i * 997))] = i * 997
    p.pump(lambda: len(p.ended) == len(sids), timeout=20)
    bad = [sid for sid, n in sids.items()
           if p.status.get(sid) != 200 or bytes(p.bodies.get(sid, b"")) !=
           bytes(k % 251 for k in range(n))]
    return p.result(bad=bad, n=len(sids))


def case_rapid_reset(port):
    """CVE-2023-44487: HEADERS then RST_STREAM(CANCEL), 1000 times as fast as possible."""
    p = Peer(port)
    for _ in range(1000):
        sid = p.c.get_next_available_stream_id()
        p.c.send_headers(sid, hdrs("/delay?ms=1000"), end_stream=True)
        p.c.reset_stream(sid, 8)
        if p.closed:
            break
        p.send()
    p.pump(lambda: p.goaway is not None, timeout=5)
    return p.result()


def case_continuation_flood(port):
    """HEADERS without END_HEADERS, then CONTINUATION frames that never end the block."""
    p = Peer(port)
    p.pump(lambda: False, timeout=0.2)
    enc = p.c.encoder.encode(hdrs("/plaintext"))
    p.raw(frame(0x1, 0x1, 1, enc))       # HEADERS, END_STREAM, no END_HEADERS
    for i in range(2000):
        p.raw(frame(0x9, 0x0, 1, b"\x40\x01a\x01b"))  # literal a: b, again and again
        if p.closed:
            break
    p.pump(lambda: p.goaway is not None, timeout=5)
    return p.result()


def case_header_bomb(port):
    """An HPACK bomb: one 4 KiB field put in the dynamic table, then referenced by index
    (one byte each) a thousand times: a small block that decodes to megabytes."""
    p = Peer(port)
    p.pump(lambda: False, timeout=0.2)
    big = b"x" * 4000
    block = p.c.encoder.encode(hdrs("/plaintext"))
    # literal with incremental indexing, new name "bomb": goes to dynamic index 62
    block += b"\x40" + bytes([4]) + b"bomb" + b"\x7f" + encode_int(len(big) - 127) + big
    block += b"\xbe" * 1000                      # indexed field 62, a thousand times
    p.raw(frame(0x1, 0x5, 1, block))
    p.pump(lambda: p.goaway is not None, timeout=5)
    return p.result()


def encode_int(v):
    """HPACK integer continuation bytes (after a full prefix)."""
    out = bytearray()
    while v >= 128:
        out.append((v % 128) + 128)
        v //= 128
    out.append(v)
    return bytes(out)


def case_ping_flood(port):
    p = Peer(port)
    for i in range(5000):
        p.raw(frame(0x6, 0x0, 0, i.to_bytes(8, "big")))
        if p.closed:
            break
    p.pump(lambda: p.goaway is not None, timeout=5)
    return p.result()


def case_settings_flood(port):
    p = Peer(port)
    for i in range(5000):
        p.raw(frame(0x4, 0x0, 0, (3).to_bytes(2, "big") + (100).to_bytes(4, "big")))
        if p.closed:
            break
    p.pump(lambda: p.goaway is not None, timeout=5)
    return p.result()


def case_idle_conns(port):
    """20 connections, one request each, then left open: what /metrics says meanwhile."""
    peers = []
    for i in range(20):
        p = Peer(port)
        sid = p.get("/plaintext")
        p.pump(lambda: sid in p.ended, timeout=5)
        peers.append(p)
    time.sleep(0.2)
    s = socket.create_connection((HOST, port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    raw = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        raw += d
    m = dict(l.rsplit(" ", 1) for l in raw.decode().split("\r\n\r\n", 1)[1].splitlines()
             if l and not l.startswith("#"))
    return {"open": sum(1 for p in peers if not p.closed),
            "contexts": float(m["zerohttp_io_contexts_in_use"]),
            "connections": float(m["zerohttp_connections_open"]),
            "pool_in_use": float(m['zerohttp_http2_pool_bytes{state="in_use"}'])}


def case_window_update_flood(port):
    p = Peer(port)
    for i in range(5000):
        p.raw(frame(0x8, 0x0, 0, (1).to_bytes(4, "big")))
        if p.closed:
            break
    p.pump(lambda: p.goaway is not None, timeout=5)
    return p.result()


def case_priority_flood(port):
    p = Peer(port)
    for i in range(5000):
        p.raw(frame(0x2, 0x0, 1 + 2 * (i % 50), (0).to_bytes(4, "big") + b"\x10"))
        if p.closed:
            break
    p.pump(lambda: p.goaway is not None, timeout=5)
    return p.result()


def case_bad_headers(port):
    """RFC 9113 §8.2-8.3: an uppercase field name, a connection-specific field, a missing
    :path, a pseudo-header after a regular field: each such stream is reset with
    PROTOCOL_ERROR, and a good request on the same connection is answered."""
    p = Peer(port)
    p.pump(lambda: False, timeout=0.2)
    bad = [hdrs("/plaintext") + [("X-Upper", "1")],
           hdrs("/plaintext") + [("connection", "keep-alive")],
           [(":method", "GET"), (":scheme", "http"), (":authority", "a")],
           [("x-first", "1")] + hdrs("/plaintext"),
           hdrs("/plaintext") + [("te", "gzip")]]
    sids = []
    for i, h in enumerate(bad):
        sid = 1 + 2 * i
        block = p.c.encoder.encode(h)
        p.raw(frame(0x1, 0x5, sid, block))
        sids.append(sid)
    good = 1 + 2 * len(bad)
    p.raw(frame(0x1, 0x5, good, p.c.encoder.encode(hdrs("/plaintext"))))
    raw = bytearray()
    deadline = time.monotonic() + 3
    resets, status = {}, {}
    # parsed by hand: python-h2 would refuse to build or accept some of these
    while time.monotonic() < deadline and good not in status:
        p.s.settimeout(0.2)
        try:
            d = p.s.recv(65536)
        except socket.timeout:
            continue
        if not d:
            break
        raw += d
        while len(raw) >= 9:
            n = int.from_bytes(raw[:3], "big")
            if len(raw) < 9 + n:
                break
            t, sid, pl = raw[3], int.from_bytes(raw[5:9], "big") & 0x7fffffff, raw[9:9 + n]
            del raw[:9 + n]
            if t == 0x3:
                resets[sid] = int.from_bytes(pl, "big")
            elif t == 0x1 and sid == good:
                status[sid] = True
            elif t == 0x7:
                p.goaway = int.from_bytes(pl[4:8], "big")
    return p.result(bad_resets=dict((str(k), resets.get(k)) for k in sids),
                    good_answered=good in status)


def case_too_many_streams(port):
    """More streams open at once than SETTINGS_MAX_CONCURRENT_STREAMS (100) allows."""
    p = Peer(port)
    p.pump(lambda: False, timeout=0.2)
    for i in range(150):
        sid = 1 + 2 * i
        p.raw(frame(0x1, 0x4, sid, p.c.encoder.encode(hdrs("/delay?ms=2000"))))
    p.pump(lambda: p.goaway is not None, timeout=5)
    return p.result()


def case_slow_headers(port):
    """A header block begun and never finished: the connection's header timeout."""
    p = Peer(port)
    p.pump(lambda: False, timeout=0.2)
    p.raw(frame(0x1, 0x1, 1, p.c.encoder.encode(hdrs("/plaintext"))))
    t0 = time.monotonic()
    p.pump(lambda: p.goaway is not None, timeout=8)
    return p.result(seconds=time.monotonic() - t0)


def case_zero_window(port):
    """A reader that never opens its window: SETTINGS_INITIAL_WINDOW_SIZE 0, a large
    response asked for, nothing acknowledged."""
    p = Peer(port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}, auto_ack=False)
    p.pump(lambda: False, timeout=0.3)
    for _ in range(10):
        p.get("/stream?bytes=50000000")
    t0 = time.monotonic()
    p.pump(lambda: p.goaway is not None, timeout=10)
    return p.result(seconds=time.monotonic() - t0)


def case_trailers(port):
    """/trailers whole and through a producer: the body, then the trailer HEADERS."""
    p = Peer(port)
    whole = p.get("/trailers", extra=[("te", "trailers")])
    parts = p.get("/trailers?parts=5", extra=[("te", "trailers")])
    p.pump(lambda: whole in p.ended and parts in p.ended, timeout=5)
    return p.result(whole=whole, parts=parts,
                    bodies=dict((k, bytes(v).decode()) for k, v in p.bodies.items()))


def case_expect_100(port):
    """Expect: 100-continue: a 100 HEADERS, then the body, then the final response."""
    p = Peer(port)
    sid = p.c.get_next_available_stream_id()
    p.c.send_headers(sid, hdrs("/echo", "POST", [("expect", "100-continue"),
                                                 ("content-length", "5")]))
    p.send()
    informational = []
    orig = p.on

    def on(e):
        if isinstance(e, h2.events.InformationalResponseReceived):
            informational.append(dict((k.decode(), v.decode()) for k, v in e.headers))
        orig(e)
    p.on = on
    p.pump(lambda: informational, timeout=3)
    p.c.send_data(sid, b"hello", end_stream=True)
    p.send()
    p.pump(lambda: sid in p.ended, timeout=5)
    return p.result(sid=sid, informational=informational,
                    body=bytes(p.bodies.get(sid, b"")).decode())


def rst_close(p):
    """The client vanishes: an RST instead of a FIN (SO_LINGER 0), nothing more read."""
    try:
        p.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    p.s.close()


def case_faults(port):
    """One round of faults (test_35 Http2Faults): connections reset mid-download (a file
    by sendfile, a producer), mid-upload (streaming and buffered routes), with streams of
    every kind in flight, with a header block left open; a stream cancelled mid-file on a
    connection that goes on; a FIN with streams in flight. Only the last two read answers."""
    got = {}
    # mid-download: a 24 MiB file and a producer, a few hundred KiB read
    for path in ("/big.bin", "/stream?bytes=50000000"):
        p = Peer(port, auto_ack=True)
        sid = p.get(path)
        p.pump(lambda: len(p.bodies.get(sid, b"")) >= 300000, timeout=5)
        got[path] = len(p.bodies.get(sid, b""))
        rst_close(p)
    # mid-upload: 2 of 8 MiB to the streaming route, 100 of 500 KB to the buffered one
    for path, total, sent in (("/upload", 8 << 20, 2 << 20), ("/echo", 500000, 100000)):
        p = Peer(port)
        sid = p.c.get_next_available_stream_id()
        p.c.send_headers(sid, hdrs(path, "POST", [("content-length", str(total)),
                                                 ("content-type", "application/x-b")]))
        p.send()
        left, chunk = sent, b"u" * 16384
        deadline = time.monotonic() + 5
        while left > 0 and time.monotonic() < deadline and not p.closed:
            n = min(left, len(chunk), p.c.local_flow_control_window(sid),
                    p.c.max_outbound_frame_size)
            if n <= 0:
                p.pump(lambda: p.c.local_flow_control_window(sid) > 0, timeout=1)
                continue
            p.c.send_data(sid, chunk[:n])
            p.send()
            left -= n
        got[path] = sent - left
        rst_close(p)
    # many streams of every kind in flight
    p = Peer(port)
    sids = []
    for i in range(10):
        sids.append(p.get("/delay?ms=400"))
        sids.append(p.get("/stream?bytes=5000000"))
        sids.append(p.get("/big.bin"))
    p.pump(lambda: sum(len(b) for b in p.bodies.values()) >= 500000, timeout=5)
    got["inflight"] = sum(len(b) for b in p.bodies.values())
    rst_close(p)
    # a header block left open (no END_HEADERS, no CONTINUATION)
    p = Peer(port)
    block = b"\x82\x84\x86\x41\x09localhost"       # GET / http, :authority
    p.raw(frame(1, 0, 1, block))
    time.sleep(0.05)
    rst_close(p)
    # a stream cancelled mid-file; the connection then serves another request whole
    p = Peer(port)
    sid = p.get("/big.bin")
    p.pump(lambda: len(p.bodies.get(sid, b"")) >= 100000, timeout=5)
    p.c.reset_stream(sid, error_code=8)             # CANCEL
    p.send()
    ok = p.get("/plaintext")
    p.pump(lambda: ok in p.ended, timeout=5)
    got["after_cancel"] = bytes(p.bodies.get(ok, b"")).decode()
    p.c.close_connection()
    p.send()
    p.s.close()
    # a FIN with streams in flight: the server finishes or drops them, then closes
    p = Peer(port)
    for i in range(5):
        p.get("/delay?ms=100")
    p.get("/stream?bytes=2000000")
    p.s.shutdown(socket.SHUT_WR)
    p.pump(lambda: False, timeout=5)
    got["fin_closed"] = p.closed
    p.s.close()
    return got


def case_ping_burst(port):
    """100 PINGs sent back to back, each in a write of its own (over TLS: a record of its
    own, which the server's SSL_read returns one at a time), then silence: every one must
    be acknowledged although no further byte arrives to wake the server."""
    p = Peer(port)
    p.pump(lambda: False, timeout=0.3)         # SETTINGS both ways, then quiet
    for i in range(100):
        p.c.ping(b"%08d" % i)
        p.send()
    p.pump(lambda: p.ping_acks == 100, timeout=3)
    return p.result(acks=p.ping_acks)


def case_wait_goaway(port):
    """For --drain-delay (test_35 Http2Drain): one request answered, then a line
    {"ready": ...} on stdout; the test sends SIGTERM and, once /readyz says 503, a line on
    stdin; then another request on this connection (still served during the delay), then
    wait for the GOAWAY: when it came (time.monotonic, the test's clock too) and its code."""
    p = Peer(port)
    sid = p.get("/plaintext")
    p.pump(lambda: sid in p.ended, timeout=5)
    print(json.dumps({"ready": p.status.get(sid)}), flush=True)
    sys.stdin.readline()
    sid2 = p.get("/plaintext")
    p.pump(lambda: sid2 in p.ended, timeout=5)
    t_second = time.monotonic()
    p.pump(lambda: p.goaway is not None, timeout=10)
    return p.result(t_goaway=time.monotonic(), t_second=t_second, second=sid2,
                    body=bytes(p.bodies.get(sid2, b"")).decode())


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def lit(name, value):
    """RFC 7541 §6.2.2: a literal field without indexing, new name (raw, no Huffman)."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


GET_BLOCK = (lit(b":method", b"GET") + lit(b":path", b"/plaintext") + lit(b":scheme", b"http")
             + lit(b":authority", b"localhost"))


def raw_exchange(port, data, settings=True, within=2.0):
    """Preface, our SETTINGS (unless settings is False), then data; the server's frames
    until GOAWAY, the close, or `within` seconds: what came (parsed by hand: python-h2
    refuses to send most of these)."""
    s = socket.create_connection((HOST, port), timeout=5)
    seen = {"goaway": None, "rst": {}, "headers": [], "settings_ack": False, "ping_ack": None,
            "closed": False}
    try:
        s.sendall(PREFACE + (frame(0x4, 0, 0) if settings else b"") + data)
    except OSError:
        pass
    raw = bytearray()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and seen["goaway"] is None:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            d = b""
        if not d:
            seen["closed"] = True
            break
        raw += d
        while len(raw) >= 9:
            n = int.from_bytes(raw[:3], "big")
            if len(raw) < 9 + n:
                break
            t, fl = raw[3], raw[4]
            sid, pl = int.from_bytes(raw[5:9], "big") & 0x7fffffff, bytes(raw[9:9 + n])
            del raw[:9 + n]
            if t == 0x7:
                seen["goaway"] = int.from_bytes(pl[4:8], "big")
            elif t == 0x3:
                seen["rst"][str(sid)] = int.from_bytes(pl, "big")
            elif t == 0x1:
                seen["headers"].append(sid)
            elif t == 0x4 and fl & 1:
                seen["settings_ack"] = True
            elif t == 0x6 and fl & 1:
                seen["ping_ack"] = pl.decode("latin-1")
    s.close()
    return seen


def case_conformance(port):
    """RFC 9113 and RFC 7541 error cases, each on a connection of its own: what the server
    answered (GOAWAY code, RST_STREAM codes, acks). test_35 holds the expected codes."""
    H = lambda sid, block=GET_BLOCK, fl=0x5: frame(0x1, fl, sid, block)
    settings = lambda *kv: frame(0x4, 0, 0, b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big")
                                                      for k, v in kv))
    wu = lambda sid, inc: frame(0x8, 0, sid, inc.to_bytes(4, "big"))
    cases = {
        # §3.4: the preface's SETTINGS is acknowledged; a PING is answered with its payload
        "settings_ack_and_ping": (frame(0x6, 0, 0, b"zerohttp") + H(1), True),
        # §3.4: the client's preface must go on with SETTINGS
        "ping_before_settings": (frame(0x6, 0, 0, b"12345678"), False),
        # §6.5: a SETTINGS payload not a multiple of 6
        "settings_length": (frame(0x4, 0, 0, b"\0" * 5), True),
        # §6.5.2: ENABLE_PUSH 2, INITIAL_WINDOW_SIZE 2^31, MAX_FRAME_SIZE 16383
        "settings_enable_push_2": (settings((2, 2)), True),
        "settings_window_too_big": (settings((4, 1 << 31)), True),
        "settings_frame_size_too_small": (settings((5, 16383)), True),
        # §6.7: a PING of 7 bytes; §6.1: DATA on stream 0; §6.4: RST_STREAM on an idle stream
        "ping_length": (frame(0x6, 0, 0, b"1234567"), True),
        "data_on_stream_0": (frame(0x0, 0, 0, b"x"), True),
        "rst_on_idle_stream": (frame(0x3, 0, 5, (8).to_bytes(4, "big")), True),
        # §5.1.1: an even (server) stream id, a stream id lower than one already used
        "even_stream_id": (H(2), True),
        "decreasing_stream_id": (H(5) + H(3), True),
        # §5.1: DATA on an idle stream; DATA after END_STREAM (half-closed remote)
        "data_on_idle_stream": (frame(0x0, 0x1, 7, b"x"), True),
        "data_after_end_stream": (H(1, lit(b":method", b"GET") + lit(b":path", b"/delay?ms=300")
                                      + lit(b":scheme", b"http") + lit(b":authority", b"a"))
                                  + frame(0x0, 0x1, 1, b"x"), True),
        # §6.9: a WINDOW_UPDATE of 0 on the connection; §6.9.1: one past 2^31 - 1
        "window_update_zero": (wu(0, 0), True),
        "window_update_overflow": (wu(0, 0x7fffffff), True),
        # §4.2: a frame over SETTINGS_MAX_FRAME_SIZE (16,384)
        "frame_too_large": (H(1, lit(b":method", b"POST") + lit(b":path", b"/echo")
                               + lit(b":scheme", b"http") + lit(b":authority", b"a"), 0x4)
                            + frame(0x0, 0x1, 1, b"x" * 16385), True),
        # §6.10: CONTINUATION without a HEADERS before it; a frame of another stream while
        # a header block is open
        "continuation_alone": (frame(0x9, 0x4, 1, GET_BLOCK), True),
        "interleaved_header_block": (H(1, GET_BLOCK[:10], 0x1) + frame(0x6, 0, 0, b"12345678"),
                                     True),
        # RFC 7541 §6.1: index 0, an index past both tables; §4.2/§6.3: a table size update
        # above SETTINGS_HEADER_TABLE_SIZE (4,096); §5.2: Huffman padding that is not EOS
        "hpack_index_0": (H(1, b"\x80"), True),
        "hpack_index_too_big": (H(1, b"\xff\x80\x01"), True),
        "hpack_table_size_too_big": (H(1, b"\x3f\xe1\x3f" + GET_BLOCK), True),
        "hpack_bad_huffman": (H(1, b"\x82\x84\x86\x01\x81\x00"), True),
        # §4.1, §5.5: a frame of an unknown type is ignored; the request after it is served
        "unknown_frame_type": (frame(0xfa, 0, 0, b"abc") + H(1), True),
    }
    out = {}
    for name, (data, with_settings) in cases.items():
        out[name] = raw_exchange(port, data, settings=with_settings,
                                 within=0.6 if name in ("settings_ack_and_ping",
                                                        "unknown_frame_type") else 2.0)
    return out


CASES = dict((k[5:], v) for k, v in list(globals().items()) if k.startswith("case_"))

if __name__ == "__main__":
    port, name = int(sys.argv[1]), sys.argv[2]
    try:
        res = CASES[name](port)
    except Exception as e:          # reported, not raised: the test shows it
        sys.stderr.write("%s: %r\n" % (name, e))
        sys.exit(2)
    print(json.dumps(res), flush=True)
