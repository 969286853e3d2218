#!/usr/bin/env python3
"""A scriptable HTTP/1.1 upstream for the reverse-proxy tests (test_50_proxy.py).

    upstream.py PORT NAME LOGFILE [DOWNFILE]

Listens on 127.0.0.1:PORT, one thread per connection, keep-alive. Appends one JSON line
per event to LOGFILE: {"ev": "conn"} per accepted connection, {"ev": "req", "conn": n,
"head": "...", "body_len": n, "body_sha": "..."} per request. Responses are chosen by the
request path:

  /echo...          200, X-Upstream: NAME, body = JSON of what arrived (head, body length
                    and digest); status from ?status=NNN
  /slow?ms=N        as /echo after N ms
  /chunked          200 chunked (several chunks, an extension, a trailer)
  /eof              200 without a length: the body ends when the connection closes
  /big?n=N          200, Content-Length N, bytes of pattern(N)
  /bigchunked?n=N   the same bytes, chunked in 32 KiB chunks
  /hop              200 with hop-by-hop fields that must not reach the client
  /interim          a 100 Continue and a 103, then 200
  /head             200 with Content-Length 1234 and no body (for HEAD)
  /s204 /s304       204 / 304
  /close            200 with Connection: close, then close
  /health           200, or 503 while DOWNFILE exists
  /bad/<kind>       a malformed or ambiguous response (see BAD)
  /stall-head       read the request, never answer
  /stall-body       head with Content-Length 100 and 10 bytes, then nothing
  /die-mid?n=N      head with Content-Length N (1000), N/10 bytes of pattern(N), then close
  /ws[?greet=1]     WebSocket (RFC 6455): 101 with Sec-WebSocket-Accept (426 to a request
                    that does not ask), then every data frame echoed unmasked, a close
                    answered with a close; greet=1 sends a "hi" frame with the 101
  /rawecho[?burst=N] 101 to the first protocol offered (with N bytes of pattern(N) in the
                    same write), then every byte echoed; at the client's half-close,
                    "bye" and close (the tunnel passes half-closes on)
  /bad101?proto=P   101 with Upgrade: P (websocket) whatever was asked
  /early...         413 with Connection: close as soon as the head is in, the body unread
  /first200         200 chunked: the head as soon as the request head is in, then (once the
                    body has been read) {"body_len", "body_sha"} as its body
  /split100         a 100 Continue in two writes 50 ms apart, then as /echo

Request bodies are read by Content-Length or chunked.
"""
import base64
import hashlib
import json
import os
import socket
import sys
import threading
import time
import urllib.parse


HEALTH_DOWN_FILE = None  # /health answers 503 while this file exists (argv[4])


def pattern(n):
    base = bytes(range(256)) * 256          # 64 KiB
    reps = n // len(base) + 1
    return (base * reps)[:n]


BAD = {
    "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"0\r\n\r\n",
    "dup-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "cl-list": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
    "fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 5\r\n\r\nhello",
    "space-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
    "te-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    "te-twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te-10": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "status": b"HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello",
    "nul": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "switch": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    # a response with more bytes than it declares: the extra bytes look like a second
    # response; a proxy that reuses the connection would deliver them to the next request
    "extra": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
             b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Injected: 1\r\n\r\nsmuggled",
}


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()
        self.nconn = 0

    def write(self, **kw):
        with self.lock:
            self.f.write(json.dumps(kw) + "\n")

    def conn(self):
        with self.lock:
            self.nconn += 1
            n = self.nconn
        self.write(ev="conn", conn=n)
        return n


def read_chunked(sock, buf):
    """A chunked body (RFC 9112 §7.1) from buf and then sock: (body, rest) or None at EOF."""
    body = bytearray()
    buf = bytearray(buf)

    def need(k):
        while len(buf) < k:
            d = sock.recv(1 << 20)
            if not d:
                return False
            buf.extend(d)
        return True

    while True:
        while b"\r\n" not in buf:
            if not need(len(buf) + 1):
                return None
        i = buf.index(b"\r\n")
        size = int(bytes(buf[:i]).split(b";")[0], 16)
        if not need(i + 2 + size + 2):
            return None
        body += buf[i + 2:i + 2 + size]
        if buf[i + 2 + size:i + 4 + size] != b"\r\n":
            raise ValueError("bad chunk framing")
        del buf[:i + 4 + size]
        if size == 0:  # no trailer fields: the proxy sends none
            return bytes(body), bytes(buf)


def read_request(sock, buf):
    """(head bytes, body bytes, rest) or None at EOF. Bodies by Content-Length or chunked
    (the proxy streams a body of unknown length chunked). /early* paths: the body is left
    unread (the answer comes first)."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            return None
        buf += d
    i = buf.index(b"\r\n\r\n") + 4
    head, buf = buf[:i], buf[i:]
    n, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":", 1)[1])
        if line.lower().startswith(b"transfer-encoding:"):
            if line.split(b":", 1)[1].strip().lower() != b"chunked":
                raise ValueError("the proxy sent a coding other than chunked")
            chunked = True
    if n and chunked:
        raise ValueError("the proxy sent both Content-Length and chunked")
    target = head.split(b" ", 2)[1]
    if target.startswith(b"/early"):
        return head, b"", b""
    if target.startswith(b"/first200"):  # the head goes before the body is read
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    if target.startswith(b"/split100"):  # a 100 Continue in two segments, then the body
        sock.sendall(b"HTTP/1.1 100 Con")
        time.sleep(0.05)
        sock.sendall(b"tinue\r\n\r\n")
    if chunked:
        got = read_chunked(sock, buf)
        return None if got is None else (head, got[0], got[1])
    buf = bytearray(buf)
    while len(buf) < n:
        d = sock.recv(1 << 20)
        if not d:
            return None
        buf.extend(d)
    return head, bytes(buf[:n]), bytes(buf[n:])


def respond(sock, name, head, body):
    """Sends the answer; returns False when the connection must close."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    method, target = line.split(" ")[0], line.split(" ")[1]
    u = urllib.parse.urlsplit(target)
    q = dict(urllib.parse.parse_qsl(u.query))
    path = u.path
    if path.startswith("/first200"):  # its head left before the body was read
        doc = b'{"body_len": %d, "body_sha": "%s"}' % (len(body), hashlib.sha256(body).hexdigest().encode())
        sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(doc), doc))
        return True
    if path.startswith("/split100"):
        path = "/echo"
    if path.startswith("/early"):  # answers before reading the body, then closes
        sock.sendall(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 5\r\n"
                     b"Connection: close\r\n\r\nearly")
        return False
    if path.startswith("/slow"):
        time.sleep(int(q.get("ms", "500")) / 1000)
    if path.startswith("/echo") or path.startswith("/slow"):
        status = int(q.get("status", "200"))
        doc = json.dumps({"upstream": name, "head": head.decode("latin-1"),
                          "body_len": len(body),
                          "body_sha": hashlib.sha256(body).hexdigest()}).encode()
        if method == "HEAD":
            doc_len, doc = len(doc), b""
        else:
            doc_len = len(doc)
        sock.sendall(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nX-Upstream: %s\r\n"
                     b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: %d\r\n\r\n"
                     % (status, name.encode(), doc_len) + doc)
        return True
    if path == "/chunked":
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
                     b"5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-T: 1\r\n\r\n")
        return True
    if path == "/eof":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        return False
    if path == "/big" or path == "/bigchunked":
        n = int(q["n"])
        data = pattern(n)
        if path == "/big":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
            mv = memoryview(data)
            for i in range(0, n, 1 << 20):
                sock.sendall(mv[i:i + (1 << 20)])
        else:
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, n, 32768):
                c = data[i:i + 32768]
                sock.sendall(b"%x\r\n" % len(c) + c + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        return True
    if path == "/hop":
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: X-Up-Secret, keep-alive\r\n"
                     b"X-Up-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Agent: up\r\n"
                     b"Upgrade: h2c\r\nX-End: 1\r\nContent-Length: 2\r\n\r\nok")
        return True
    if path == "/interim":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                     b"Link: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
        return True
    if path == "/head":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1234, 1234\r\n\r\n")
        return True
    if path == "/s204":
        sock.sendall(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
        return True
    if path == "/s304":
        sock.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
        return True
    if path == "/health":
        ok = not os.path.exists(HEALTH_DOWN_FILE) if HEALTH_DOWN_FILE else True
        sock.sendall(b"HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                     % (b"200 OK" if ok else b"503 Down"))
        return False
    if path == "/close":
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye")
        return False
    if path.startswith("/bad/"):
        sock.sendall(BAD[path[5:]])
        return False if path[5:] != "extra" else True
    if path == "/stall-head":
        time.sleep(30)
        return False
    if path == "/stall-body":
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        time.sleep(30)
        return False
    if path == "/die-mid":
        n = int(q.get("n", "1000"))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + pattern(n // 10))
        return False
    if path == "/ws":
        return websocket(sock, head, q.get("greet") == "1")
    if path == "/rawecho":
        return rawecho(sock, head, int(q.get("burst", "0")))
    if path == "/bad101":
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                     b"Upgrade: %s\r\n\r\n" % q.get("proto", "websocket").encode())
        time.sleep(1)
        return False
    sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    return True


def field(head, name):
    for line in head.split(b"\r\n")[1:]:
        if b":" in line and line.split(b":", 1)[0].strip().lower() == name:
            return line.split(b":", 1)[1].strip().decode("latin-1")
    return None


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        d = sock.recv(n - len(out))
        if not d:
            raise EOFError
        out += d
    return out


def ws_frame(opcode, payload):
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


def websocket(sock, head, greet):
    key = field(head, b"sec-websocket-key")
    if (field(head, b"upgrade") or "").lower() != "websocket" or not key:
        sock.sendall(b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
                     b"Content-Length: 0\r\n\r\n")
        return True
    accept = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept
                 + (ws_frame(1, b"hi") if greet else b""))
    try:
        while True:
            b0, b1 = recv_exact(sock, 2)
            n = b1 & 0x7f
            if n == 126:
                n = int.from_bytes(recv_exact(sock, 2), "big")
            elif n == 127:
                n = int.from_bytes(recv_exact(sock, 8), "big")
            mask = recv_exact(sock, 4) if b1 & 0x80 else b"\0\0\0\0"
            data = bytearray(recv_exact(sock, n))
            for i in range(n):
                data[i] ^= mask[i % 4]
            opcode = b0 & 0x0f
            sock.sendall(ws_frame(opcode, bytes(data)))
            if opcode == 8:
                return False
    except EOFError:
        return False


def rawecho(sock, head, burst):
    offered = (field(head, b"upgrade") or "x").split(",")[0].strip()
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                 b"Upgrade: %s\r\n\r\n" % offered.encode() + pattern(burst))
    while True:
        d = sock.recv(65536)
        if not d:
            break
        sock.sendall(d)
    sock.sendall(b"bye")
    return False


def serve_conn(sock, name, log):
    n = log.conn()
    buf = b""
    try:
        while True:
            r = read_request(sock, buf)
            if r is None:
                return
            head, body, buf = r
            log.write(ev="req", conn=n, head=head.decode("latin-1"), body_len=len(body),
                      body_sha=hashlib.sha256(body).hexdigest())
            if not respond(sock, name, head, body):
                return
    except (OSError, ValueError) as e:
        log.write(ev="error", conn=n, error=repr(e))
    finally:
        sock.close()


def main():
    global HEALTH_DOWN_FILE
    port, name, logpath = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    HEALTH_DOWN_FILE = sys.argv[4] if len(sys.argv) > 4 else None
    log = Log(logpath)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(128)
    log.write(ev="ready")
    while True:
        s, _ = ls.accept()
        threading.Thread(target=serve_conn, args=(s, name, log), daemon=True).start()


if __name__ == "__main__":
    main()
