#!/usr/bin/python3
"""h2_idle_rss.py — resident memory per idle HTTP/2 connection (h2c with prior knowledge),
zerohttpd beside h2o and nginx, measured the same way: one worker each (nginx:
master_process off; h2o: num-threads 1), N clients that each send the connection preface,
SETTINGS and one GET /plaintext, read the whole answer, acknowledge the server's SETTINGS,
then stay connected and silent; the server's VmRSS and RssAnon before the clients connect
and once all N are idle, the difference divided by N.

    bench/h2_idle_rss.py [--conns 5000] [--zerohttpd build/zerohttpd] [--servers zerohttpd,h2o,nginx]

Loopback only; every process started here is stopped by PID at the end. Raises
RLIMIT_NOFILE to its hard limit (it needs more than 2 x conns when all run here).
"""
import argparse
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def lit(name, value):  # RFC 7541 §6.2.2, literal without indexing, new name
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


HELLO = (PREFACE + frame(4, 0, 0) +
         frame(1, 0x5, 1, lit(b":method", b"GET") + lit(b":path", b"/plaintext") +
               lit(b":scheme", b"http") + lit(b":authority", b"localhost")))
SETTINGS_ACK = frame(4, 1, 0)


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon"):
                out[k] = int(v.split()[0])
    return out


def wait_port(port, within=10):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("server did not listen on %d" % port)


def one(port):
    """A connection whose stream 1 has been answered (END_STREAM seen), left idle."""
    s = socket.create_connection((HOST, port), timeout=10)
    s.sendall(HELLO)
    buf, acked, done = b"", False, False
    while not done:
        d = s.recv(65536)
        if not d:
            raise SystemExit("the server closed a connection")
        buf += d
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            ftype, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff
            buf = buf[9 + n:]
            if ftype == 4 and not flags & 1 and not acked:
                s.sendall(SETTINGS_ACK)
                acked = True
            elif ftype == 7:
                raise SystemExit("GOAWAY from the server")
            elif ftype in (0, 1) and sid == 1 and flags & 1:
                done = True
    return s


def measure(name, cmd, port, n):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conns = []
    try:
        wait_port(port)
        time.sleep(0.3)
        before = status(proc.pid)
        t0 = time.monotonic()
        conns = [one(port) for _ in range(n)]
        dt = time.monotonic() - t0
        time.sleep(1.0)
        after = status(proc.pid)
        per = {k: (after[k] - before[k]) * 1024.0 / n for k in after}
        print("%-9s %5d idle h2c connections (%.1fs to open): VmRSS %6d -> %6d KiB, "
              "%6.0f B/conn; RssAnon %6d -> %6d KiB, %6.0f B/conn"
              % (name, n, dt, before["VmRSS"], after["VmRSS"], per["VmRSS"],
                 before["RssAnon"], after["RssAnon"], per["RssAnon"]), flush=True)
        return per
    finally:
        for s in conns:
            s.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--zerohttpd", default="build/zerohttpd")
    ap.add_argument("--servers", default="zerohttpd,h2o,nginx")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = tempfile.mkdtemp(prefix="zh-h2-rss-")
    root = os.path.join(d, "root")
    os.mkdir(root)
    with open(os.path.join(root, "plaintext"), "w") as f:
        f.write("Hello, World!")   # h2o serves it as a file (side.sh does the same)
    os.chmod(d, 0o755)
    res = {}
    try:
        for name in a.servers.split(","):
            port = free_port()
            if name == "zerohttpd":
                cmd = [os.path.abspath(a.zerohttpd), "--root", root, "--workers", "1",
                       "--demo", "--address", HOST, "--port", str(port),
                       "--idle-timeout", "600000",
                       "--max-connections", str(2 * a.conns + 100)]
                if os.getuid() == 0:
                    cmd.append("--allow-root")      # zerohttpd refuses root otherwise
            elif name == "h2o":
                conf = os.path.join(d, "h2o.conf")
                with open(conf, "w") as f:
                    f.write("%slisten:\n  host: %s\n  port: %d\nnum-threads: 1\n"
                            "max-connections: %d\nhttp2-idle-timeout: 600\n"
                            "hosts:\n  default:\n    paths:\n      /:\n        file.dir: %s\n"
                            % ("user: nobody\n" if os.getuid() == 0 else "", HOST, port,
                               2 * a.conns + 100, root))
                cmd = [shutil.which("h2o") or "/usr/bin/h2o", "-c", conf]
            elif name == "nginx":
                conf = os.path.join(d, "nginx.conf")
                with open(conf, "w") as f:
                    f.write("""daemon off; master_process off; worker_processes 1;
error_log %s/error.log; pid %s/nginx.pid;
worker_rlimit_nofile %d;
events { worker_connections %d; }
http {
    access_log off;
    client_body_temp_path %s/tmp;
    keepalive_timeout 600s; keepalive_requests 100000;
    server {
        listen %s:%d http2;
        location = /plaintext { default_type text/plain; return 200 "Hello, World!"; }
    }
}
""" % (d, d, 2 * a.conns + 100, 2 * a.conns + 100, d, HOST, port))
                cmd = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", d, "-c", conf]
            else:
                raise SystemExit("unknown server " + name)
            res[name] = measure(name, cmd, port, a.conns)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if "zerohttpd" in res and len(res) > 1:
        low = min(v["VmRSS"] for k, v in res.items() if k != "zerohttpd")
        print("zerohttpd / the lower of the others (VmRSS per connection): %.2f"
              % (res["zerohttpd"]["VmRSS"] / low))
    return 0


if __name__ == "__main__":
    sys.exit(main())
