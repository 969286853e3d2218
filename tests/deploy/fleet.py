"""Three zerohttpd instances behind HAProxy on loopback, for tests/deploy/test_fleet.py.

HAProxy runs deploy/haproxy/haproxy.cfg itself with only its addresses changed (the
instances' ports, the front and stats ports, the admin socket path): haproxy_config() makes
that copy and checks that no other line differs. Every process is started here with
PR_SET_PDEATHSIG (it dies with the test runner) and stopped by PID in stop_all(), which the
tests register with addCleanup before starting anything.
"""
import csv
import datetime
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import harness  # noqa: E402  (Server, free_port, _die_with_parent: the suites' own)

HOST = harness.HOST
SHIPPED_CFG = os.path.join(REPO, "deploy", "haproxy", "haproxy.cfg")
LUA = os.path.join(HERE, "check.lua")

# what the instances need beyond the shipped config: the drain delay the shipped config's
# comments ask for (ms), and one worker each (two cores for everything in this test)
DRAIN_DELAY_MS = 2000
INSTANCE_ARGS = ["--workers", "1", "--drain-delay", str(DRAIN_DELAY_MS)]


def haproxy_bin():
    return shutil.which("haproxy") or "/usr/sbin/haproxy"


def check_param(cfg_text, name):
    """A default-server health-check parameter of the shipped config, in seconds."""
    m = re.search(r"^\s*default-server\b.*\b%s (\d+)(ms|s)\b" % name, cfg_text, re.M)
    if m is None:
        raise AssertionError("deploy/haproxy/haproxy.cfg: default-server has no %s" % name)
    return int(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)


def check_count(cfg_text, name):
    m = re.search(r"^\s*default-server\b.*\b%s (\d+)\b" % name, cfg_text, re.M)
    if m is None:
        raise AssertionError("deploy/haproxy/haproxy.cfg: default-server has no %s" % name)
    return int(m.group(1))


def haproxy_config(shipped, backend_ports, front_port, stats_port, admin_sock):
    """The shipped config with test addresses. Raises if a line other than the bind, server
    and stats socket lines would change, or if the shipped file has not exactly one of
    each kind the test replaces."""
    out, servers = [], 0
    binds = {"bind :80": "bind %s:%d" % (HOST, front_port),
             "bind 127.0.0.1:8404": "bind %s:%d" % (HOST, stats_port)}
    seen = set()
    for line in shipped.splitlines():
        stripped = line.strip()
        if stripped in binds:
            seen.add(stripped)
            line = line.replace(stripped, binds[stripped])
        elif stripped.startswith("server "):
            name, addr = stripped.split()[1:3]
            if servers >= len(backend_ports) or not addr.startswith("127.0.0.1:"):
                raise AssertionError("unexpected server line %r" % stripped)
            line = line.replace(addr, "%s:%d" % (HOST, backend_ports[servers]))
            servers += 1
        elif stripped.startswith("stats socket "):
            seen.add("stats socket")
            line = line.replace(stripped.split()[2], admin_sock)
        out.append(line)
    if servers != len(backend_ports) or len(seen) != 3:
        raise AssertionError("shipped haproxy.cfg: %d servers, replaced %s" % (servers, seen))
    return "\n".join(out) + "\n"


class Fleet:
    """The instances, HAProxy and wrk of one test; stop_all() ends them all by PID."""

    def __init__(self, n=3):
        self.dir = tempfile.mkdtemp(prefix="zh-fleet-")
        self.ports = []
        while len(self.ports) < n + 2:      # instances, front, stats: all distinct
            p = harness.free_port()
            if p not in self.ports:
                self.ports.append(p)
        self.backend_ports = self.ports[:n]
        self.front_port, self.stats_port = self.ports[n], self.ports[n + 1]
        self.admin_sock = os.path.join(self.dir, "admin.sock")
        self.instances = [None] * n
        self.old = []                       # stopped instances, checked in stop_all
        self.killed = []                    # SIGKILLed by the test: only made sure dead
        self.haproxy = None
        self.haproxy_log = None
        self.wrks = []
        with open(SHIPPED_CFG) as f:
            self.shipped = f.read()
        self.cfg_path = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg_path, "w") as f:
            f.write(haproxy_config(self.shipped, self.backend_ports, self.front_port,
                                   self.stats_port, self.admin_sock))

    # ---- the instances ------------------------------------------------------------------

    def start_instance(self, i):
        srv = harness.Server(INSTANCE_ARGS, port=self.backend_ports[i]).start()
        self.instances[i] = srv
        return srv

    def server_name(self, i):
        return "zh%d" % (i + 1)

    # ---- HAProxy -------------------------------------------------------------------------

    def start_haproxy(self):
        self.haproxy_log = open(os.path.join(self.dir, "haproxy.log"), "w+b")
        self.haproxy = subprocess.Popen([haproxy_bin(), "-db", "-f", self.cfg_path],
                                        stdin=subprocess.DEVNULL, stdout=self.haproxy_log,
                                        stderr=self.haproxy_log,
                                        preexec_fn=harness._die_with_parent)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.admin_sock):
            if self.haproxy.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("haproxy did not start: %s" % self.log_text())
            time.sleep(0.02)

    def log_text(self):
        if self.haproxy_log is None:
            return ""
        self.haproxy_log.flush()
        with open(self.haproxy_log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def admin(self, command):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.admin_sock)
            s.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks).decode()
        finally:
            s.close()

    def stats(self):
        """{server name: its 'show stat' row} of the zerohttpd backend."""
        text = self.admin("show stat").lstrip("# ")
        rows = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("pxname") == "zerohttpd" and row.get("svname", "").startswith("zh"):
                rows[row["svname"]] = row
        return rows

    def wait_state(self, name, want, timeout):
        """Waits until HAProxy says server `name` is `want` (UP or DOWN); returns when it
        first saw it (time.monotonic())."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.stats()[name]["status"]
            if status.split()[0] == want:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError("%s is %r, not %s, after %.1fs" % (name, status, want,
                                                                        timeout))
            time.sleep(0.01)

    # ---- load ----------------------------------------------------------------------------

    def start_wrk(self, conns, delay_ms, path="/plaintext", body="Hello, World!"):
        out = tempfile.TemporaryFile(dir=self.dir)
        cmd = ["wrk", "-t", "1", "-c", str(conns), "-d", "120s", "--timeout", "10s", "-s", LUA,
               "http://%s:%d%s" % (HOST, self.front_port, path), "--", body, str(delay_ms)]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, preexec_fn=harness._die_with_parent)
        self.wrks.append((p, out))
        return p, out

    @staticmethod
    def stop_wrk(wrk):
        """SIGINT ends wrk's run early; it then prints its summary and our JSON line."""
        p, out = wrk
        p.send_signal(signal.SIGINT)
        p.wait(15)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith('{"event":"wrk"'):
                return json.loads(line), text
        raise AssertionError("wrk printed no summary: %s" % text)

    def start_timed_load(self, conns, pace_ms, path="/plaintext", body="Hello, World!"):
        """tests/deploy/timed_load.py: like wrk, but it keeps the time of each failure."""
        out = tempfile.TemporaryFile(dir=self.dir)
        cmd = [sys.executable, os.path.join(HERE, "timed_load.py"), str(self.front_port), path,
               body, "--conns", str(conns), "--pace-ms", str(pace_ms), "--max-seconds", "120"]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, preexec_fn=harness._die_with_parent)
        self.wrks.append((p, out))
        deadline = time.monotonic() + 10
        while b'"event": "started"' not in self._read(out):
            if p.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("timed_load.py did not start: %r" % self._read(out))
            time.sleep(0.02)
        return p, out

    @staticmethod
    def _read(out):
        out.seek(0)
        return out.read()

    def stop_timed_load(self, load):
        p, out = load
        p.send_signal(signal.SIGINT)
        p.wait(15)
        text = self._read(out).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith('{"event": "summary"'):
                return json.loads(line), text
        raise AssertionError("timed_load.py printed no summary: %s" % text)

    # ---- teardown ------------------------------------------------------------------------

    def stop_all(self):
        """Every process still running, by PID: wrk and HAProxy killed, the instances
        SIGTERMed (Server.stop: SIGKILL after its timeout). Returns the problems found."""
        problems = []
        for p, out in self.wrks:
            if p.poll() is None:
                p.kill()
                p.wait(5)
            out.close()
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.kill()
            self.haproxy.wait(5)
        for srv in self.killed:
            if srv.alive():
                srv.proc.kill()
                srv.proc.wait(5)
            if srv.stderr_file is not None:
                srv.stderr_file.close()
                srv.stderr_file = None
        for srv in self.old + [s for s in self.instances if s is not None]:
            try:
                problems += srv.stop()
            except Exception as e:
                problems.append("stopping zerohttpd pid %s: %r" % (srv.pid, e))
        if self.haproxy_log is not None:
            self.haproxy_log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems


# HAProxy's httplog line: client [request date] frontend backend/server
# TR/Tw/Tc/Tr/Ta status bytes cookies termination-state actconn/feconn/beconn/srv_conn/retries
LOG_LINE = re.compile(
    r"\[(?P<date>\d+/\w+/\d+:\d+:\d+:\d+\.\d+)\] \S+ (?P<backend>[^/ ]+)/(?P<server>\S+) "
    r"(?P<timers>\S+) (?P<status>-?\d+) \S+ \S+ \S+ (?P<term>\S{4}) "
    r"\d+/\d+/\d+/\d+/(?P<retries>\+?\d+) ")


def parse_log(text):
    """The request lines of HAProxy's log: dicts with end (epoch seconds, when the request
    ended: its date plus Ta), status, server, term (termination state), retries and
    redispatched."""
    out = []
    for line in text.splitlines():
        m = LOG_LINE.search(line)
        if m is None:
            continue
        start = datetime.datetime.strptime(m.group("date"), "%d/%b/%Y:%H:%M:%S.%f").timestamp()
        ta = int(m.group("timers").split("/")[-1])
        status = int(m.group("status"))
        # a connection wrk opened and closed without a request (it does at its start and
        # stop): HAProxy logs a 400 <BADREQ> with C (client) as the termination's cause
        idle_client = m.group("server") == "<NOSRV>" and m.group("term")[0] == "C" and \
            '"<BADREQ>"' in line
        out.append({"end": start + max(ta, 0) / 1000.0, "status": status,
                    "failed": not 200 <= status <= 299 and not idle_client,
                    "server": m.group("server"), "term": m.group("term"),
                    "retries": int(m.group("retries").lstrip("+")),
                    "redispatched": m.group("retries").startswith("+"), "line": line})
    return out
