#!/usr/bin/python3
"""tls_idle_rss.py — resident memory per idle keep-alive TLS connection, zerohttpd beside
nginx, measured the same way: one worker (nginx: master_process off), an ECDSA P-256
certificate made here, N clients that each complete a full TLS 1.3 handshake and one
GET /plaintext, then stay connected and silent; the server's VmRSS (and RssAnon) before the
clients connect and once all N are idle, divided by N.

    bench/tls_idle_rss.py [--conns 5000] [--zerohttpd build/zerohttpd] [--nginx /usr/sbin/nginx]

Loopback only; every process started here is stopped by PID at the end. Needs
RLIMIT_NOFILE above 2 x conns (raised here to the hard limit).
"""
import argparse
import os
import resource
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


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


def open_idle(port, n, cafile):
    """n TLS 1.3 connections, each after one GET /plaintext answered, left idle."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    conns = []
    req = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n"
    for i in range(n):
        s = ctx.wrap_socket(socket.create_connection((HOST, port)), server_hostname="localhost")
        s.sendall(req)
        got = b""
        while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"!"):
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("connection %d closed" % i)
            got += chunk
        conns.append(s)
    return conns


def measure(name, cmd, port, pid_of, n, cafile):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(0.3)
        pid = pid_of(proc)
        before = status(pid)
        t0 = time.monotonic()
        conns = open_idle(port, n, cafile)
        dt = time.monotonic() - t0
        time.sleep(1.0)
        after = status(pid)
        per = {k: (after[k] - before[k]) * 1024.0 / n for k in after}
        print("%-9s %5d idle TLS connections (%.1fs to open): VmRSS %6d -> %6d KiB, "
              "%7.0f B/conn; RssAnon %6d -> %6d KiB, %7.0f B/conn"
              % (name, n, dt, before["VmRSS"], after["VmRSS"], per["VmRSS"],
                 before["RssAnon"], after["RssAnon"], per["RssAnon"]))
        for s in conns:
            s.close()
        return per
    finally:
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
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = tempfile.mkdtemp(prefix="zh-tls-rss-")
    try:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        root = os.path.join(d, "root")
        os.mkdir(root)
        res = {}
        port = free_port()
        res["zerohttpd"] = measure(
            "zerohttpd", [os.path.abspath(a.zerohttpd), "--root", root, "--workers", "1",
                          "--allow-root",
                          "--demo", "--port", "0", "--idle-timeout", "600000",
                          "--max-connections", str(2 * a.conns + 100),
                          "--listen-tls", "%s:%d" % (HOST, port), "--tls-cert", cert,
                          "--tls-key", key], port, lambda p: p.pid, a.conns, cert)
        port = free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off; master_process off; worker_processes 1;
error_log %s/error.log; pid %s/nginx.pid;
worker_rlimit_nofile %d;
events { worker_connections %d; }
http {
    access_log off;
    keepalive_timeout 600s; keepalive_requests 100000;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    server {
        listen %s:%d ssl;
        ssl_certificate %s; ssl_certificate_key %s;
        location = /plaintext { default_type text/plain; return 200 "Hello, World!"; }
    }
}
""" % (d, d, 2 * a.conns + 100, 2 * a.conns + 100, HOST, port, cert, key))
        res["nginx"] = measure("nginx", [a.nginx, "-c", conf, "-p", d], port,
                               lambda p: p.pid, a.conns, cert)
        print("zerohttpd / nginx, bytes per idle TLS connection: VmRSS %.2f, RssAnon %.2f"
              % (res["zerohttpd"]["VmRSS"] / res["nginx"]["VmRSS"],
                 res["zerohttpd"]["RssAnon"] / res["nginx"]["RssAnon"]))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
