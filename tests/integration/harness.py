"""Shared infrastructure for the zerohttpd integration tests.

Standard library only. Every server is started on 127.0.0.1 on a port picked here, is
tracked by PID, and is stopped with SIGTERM (SIGKILL after a timeout); a test fails if its
server died unexpectedly or did not exit 0 on SIGTERM. Every socket has a timeout.
"""
import errno
import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import time
import unittest

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# ZH_WRAP runs every server under a command, e.g. valgrind (make memcheck): a server that
# runs 20-50x slower gets longer to start and stop, and tests that measure memory, CPU, fds
# or tight timings skip themselves (`timing_sensitive`).
WRAP = shlex.split(os.environ.get("ZH_WRAP", ""))
SLOW = 8.0 if WRAP else 1.0

# for a test whose measure (seconds, RSS, fds) means nothing under such a wrapper
timing_sensitive = unittest.skipIf(WRAP, "measures time, memory or fds: not under ZH_WRAP")
# ASan's shadow memory and quarantine change RSS, and its checks throughput (make asan)
asan_skip = unittest.skipIf("address" in os.environ.get("ZH_SANITIZE", ""),
                            "measures RSS and throughput: not under ASan")

DEFAULT_TIMEOUT = 5.0 * SLOW      # every socket operation
READY_TIMEOUT = 5.0 * SLOW        # server must accept connections within this
STOP_TIMEOUT = 12.0 + 30.0 * (SLOW > 1)  # SIGTERM -> exit (drain timeout 10 s, leak check)

HELLO = b"Hello, World!"
JSON = b'{"message":"Hello, World!"}'

IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) "
    r"(\d{2}):(\d{2}):(\d{2}) GMT$")


def server_bin():
    path = os.environ.get("ZH_BIN") or os.path.join(REPO, "build", "zerohttpd")
    if not os.path.isabs(path):
        path = os.path.join(REPO, path) if not os.path.exists(path) else os.path.abspath(path)
    return path


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class ServerError(AssertionError):
    pass


def _die_with_parent():
    """Runs in the child before exec: SIGKILL the server if the test runner dies, so an
    interrupted run never leaves a zerohttpd behind."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)      # PR_SET_PDEATHSIG
    except Exception:
        pass


# What every Server passes before its own arguments (which win: a later flag overrides):
# the repo's www/ as the root (zerohttpd's default root is the current directory); --demo
# follows unless demo=False.
BASE_ARGS = ["--root", os.path.join(REPO, "www")]

# The I/O backend every server of the suite runs: ZH_IO=uring (make test-uring) runs the
# whole suite on io_uring. zerohttpd gets --io before the test's own arguments (a test may
# still choose); json_server and reading_server read ZH_IO themselves.
IO = os.environ.get("ZH_IO", "epoll")
IO_ARGS = ["--io", IO] if IO != "epoll" else []
uring_skip = unittest.skipIf(IO == "uring", "counts epoll-path syscalls: the epoll backend only")


class Server:
    """One zerohttpd process, tracked by PID. demo=True (the default) passes --demo, which
    the suites that exercise /plaintext, /json, /echo... need; demo=False starts the
    product as installed: files, /healthz, /readyz and /metrics only."""

    def __init__(self, args=(), env=None, demo=True, port=None, cwd=None, base_args=True):
        self.args = list(args)
        self.demo = demo
        self.env = env
        self.fixed_port = port          # None: a free port picked here
        self.cwd = cwd or REPO
        self.with_base_args = base_args  # False: no --root (zerohttpd's default root)
        self.port = None
        self.proc = None
        self.stderr_file = None
        self.returncode = None
        self.expected_exit = False

    def start(self):
        last_err = None
        for _attempt in range(1 if self.fixed_port else 3):  # a picked port can be raced
            self.port = self.fixed_port or free_port()
            env = dict(os.environ)
            if self.env:
                env.update(self.env)
            self.stderr_file = tempfile.TemporaryFile()
            cmd = WRAP + [server_bin(), "--address", HOST, "--port", str(self.port)] + \
                IO_ARGS + self.base_args() + self.args
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=self.stderr_file, stderr=self.stderr_file,
                                         env=env, cwd=self.cwd, preexec_fn=_die_with_parent)
            try:
                self._wait_ready()
                return self
            except ServerError as e:
                last_err = e
                self._kill()
        raise last_err

    def base_args(self):
        return (BASE_ARGS if self.with_base_args else []) + (["--demo"] if self.demo else [])

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("zerohttpd exited during startup with %r: %s"
                                  % (self.proc.returncode, self.stderr_text()))
            try:
                s = socket.create_connection((HOST, self.port), timeout=0.5)
                s.close()
                return
            except OSError:
                time.sleep(0.005)
        raise ServerError("zerohttpd did not accept connections within %.1fs: %s"
                          % (READY_TIMEOUT, self.stderr_text()))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stderr_text(self, limit=4000):
        if self.stderr_file is None:
            return ""
        try:
            self.stderr_file.seek(0)
            data = self.stderr_file.read()
        except (OSError, ValueError):
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def thread_states(self):
        """'tid:state:wchan' of every thread, for diagnosing a hang."""
        out = []
        try:
            for tid in sorted(os.listdir("/proc/%d/task" % self.proc.pid)):
                base = "/proc/%d/task/%s/" % (self.proc.pid, tid)
                with open(base + "stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                with open(base + "wchan") as f:
                    wchan = f.read().strip()
                out.append("%s:%s:%s" % (tid, state, wchan))
        except OSError:
            pass
        return " ".join(out)

    def wait_exit(self, timeout):
        """Waits for the process to exit; returns its exit code or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT. Returns a list of problems (empty = ok)."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is not None:
            if not self.expected_exit:
                problems.append("zerohttpd (pid %d) died unexpectedly with status %r: %s"
                                % (self.proc.pid, self.proc.returncode, self.stderr_text()))
            elif self.proc.returncode != 0:
                problems.append("zerohttpd exited with status %r: %s"
                                % (self.proc.returncode, self.stderr_text()))
        else:
            os.kill(self.proc.pid, signal.SIGTERM)
            rc = self.wait_exit(STOP_TIMEOUT)
            if rc is None:
                threads = self.thread_states()
                self._kill()
                problems.append("zerohttpd did not exit within %.0fs of SIGTERM (SIGKILLed; "
                                "threads: %s)" % (STOP_TIMEOUT, threads))
            elif rc != 0:
                problems.append("zerohttpd exited with status %r on SIGTERM: %s"
                                % (rc, self.stderr_text()))
        if self.stderr_file is not None:
            self.stderr_file.close()
            self.stderr_file = None
        return problems


# ------------------------------------------------------------------------------------------
# Raw HTTP over sockets.

class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value) in order
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    def __repr__(self):
        return "<Response %s %s %r headers=%r body[%d]=%r>" % (
            self.version, self.status, self.reason, self.headers, len(self.body),
            self.body[:80])


class ProtocolError(AssertionError):
    pass


class Closed(AssertionError):
    """The peer closed (or reset) before a complete response arrived."""


class RawConn:
    """A client socket with a read buffer. Only ever talks to 127.0.0.1."""

    def __init__(self, port, timeout=DEFAULT_TIMEOUT, rcvbuf=None, nodelay=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect((HOST, port))
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def send_slowly(self, data, step=1, delay=0.001):
        if isinstance(data, str):
            data = data.encode("latin-1")
        for i in range(0, len(data), step):
            self.sock.sendall(data[i:i + step])
            if delay:
                time.sleep(delay)

    def _fill(self, n=65536):
        """One recv into the buffer. Returns the number of bytes read (0 at EOF/reset)."""
        if self.eof:
            return 0
        try:
            chunk = self.sock.recv(n)
        except ConnectionResetError:
            self.eof = True
            self.reset = True
            return 0
        if not chunk:
            self.eof = True
            return 0
        self.buf += chunk
        return len(chunk)

    def read_exact(self, n):
        while len(self.buf) < n:
            if self._fill() == 0:
                raise Closed("connection closed after %d of %d bytes" % (len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, delim, limit=1 << 20):
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            start = max(0, len(self.buf) - len(delim) + 1)
            if len(self.buf) > limit:
                raise ProtocolError("no %r within %d bytes" % (delim, limit))
            if self._fill() == 0:
                raise Closed("connection closed before %r; have %r"
                             % (delim, bytes(self.buf[:200])))

    def read_head(self):
        raw = self.read_until(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
        if not m:
            raise ProtocolError("bad status line %r" % lines[0])
        headers = []
        for line in lines[1:]:
            if b":" not in line:
                raise ProtocolError("bad header line %r" % line)
            k, v = line.split(b":", 1)
            if k != k.strip() or not k:
                raise ProtocolError("bad header name %r" % line)
            headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        return m.group(1).decode(), int(m.group(2)), m.group(3).decode("latin-1"), headers, raw

    def read_response(self, method="GET", allow_1xx=False):
        """Reads one complete response (skipping 1xx unless allow_1xx)."""
        while True:
            version, status, reason, headers, raw = self.read_head()
            if 100 <= status < 200 and not allow_1xx:
                continue
            break
        resp = Response(version, status, reason, headers, b"", raw)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        te = resp.header("Transfer-Encoding")
        cl = resp.header_all("Content-Length")
        if te is not None:
            if te.lower() != "chunked":
                raise ProtocolError("unexpected response Transfer-Encoding %r" % te)
            resp.body = self._read_chunked()
        elif cl:
            if len(cl) != 1 or not cl[0].isdigit():
                raise ProtocolError("bad response Content-Length %r" % cl)
            resp.body = self.read_exact(int(cl[0]))
        else:
            resp.body = self.read_until_close()
        return resp

    def _read_chunked(self):
        body = bytearray()
        while True:
            line = self.read_until(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.read_until(b"\r\n") != b"\r\n":
                    pass
                return bytes(body)
            body += self.read_exact(size)
            if self.read_exact(2) != b"\r\n":
                raise ProtocolError("bad chunk terminator")

    def read_until_close(self):
        """Everything until EOF or reset."""
        while self._fill() > 0:
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def closed_by_peer(self, within=2.0):
        """True if the peer closes (EOF or RST) within `within` seconds with no further
        bytes; raises if extra bytes arrive; False on timeout."""
        old = self.sock.gettimeout()
        deadline = time.monotonic() + within
        try:
            while True:
                if self.buf:
                    raise ProtocolError("unexpected extra bytes %r" % bytes(self.buf[:200]))
                if self.eof:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    self._fill()
                except socket.timeout:
                    return False
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass

    def no_data_for(self, seconds):
        """True if nothing (no bytes, no EOF) arrives within `seconds`."""
        if self.buf or self.eof:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(seconds)
        try:
            self._fill()
            return False
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(old)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def request(method, path, headers=None, body=b"", version="HTTP/1.1", host="localhost"):
    """Builds request bytes. headers: list of (name, value); Host is added for 1.1 unless
    host is None or a Host header is given."""
    if isinstance(body, str):
        body = body.encode()
    lines = ["%s %s %s" % (method, path, version)]
    hdrs = list(headers or [])
    names = [k.lower() for k, _ in hdrs]
    if host is not None and "host" not in names:
        lines.append("Host: %s" % host)
    for k, v in hdrs:
        lines.append("%s: %s" % (k, v))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body, sizes, ext_first=True, trailer=True, upper=False):
    """Encodes body with the given chunk sizes (cycled), a chunk extension on the first
    chunk and a trailer field."""
    out = bytearray()
    i = k = 0
    while i < len(body):
        n = min(sizes[k % len(sizes)], len(body) - i)
        k += 1
        size = ("%X" if (upper and k % 2) else "%x") % n
        ext = ";name=value;flag" if (ext_first and k == 1) else ""
        out += ("%s%s\r\n" % (size, ext)).encode() + body[i:i + n] + b"\r\n"
        i += n
    out += b"0\r\n"
    if trailer:
        out += b"X-Trailer: done\r\n"
    out += b"\r\n"
    return bytes(out)


# ------------------------------------------------------------------------------------------

class ServerTestCase(unittest.TestCase):
    """Starts a fresh zerohttpd for every test (SERVER_ARGS / SERVER_ENV), closes the test's
    sockets, then stops the server and fails the test if it died or exited non-zero."""

    SERVER_ARGS = ()
    SERVER_ENV = None
    SERVER_DEMO = True      # False: zerohttpd without --demo (the product as installed)
    AUTO_START = True

    def setUp(self):
        self._conns = []
        self._servers = []
        # registered first, so it runs even when setUp fails after starting a server (then
        # tearDown is not called) or tearDown fails half-way: SIGKILL, by PID, to every
        # server in _servers still running, however it got there
        self.addCleanup(self._kill_servers)
        self.server = self.start_server(self.SERVER_ARGS, self.SERVER_ENV) \
            if self.AUTO_START else None
        self.port = self.server.port if self.server else None

    def start_server(self, args=(), env=None, demo=None):
        srv = Server(args, env, self.SERVER_DEMO if demo is None else demo).start()
        self._servers.append(srv)
        return srv

    def spawn(self, cmd, **kw):
        """A helper process of this test (a client, strace, a second server): see spawn()."""
        return spawn(self, cmd, **kw)

    def tearDown(self):
        problems = []
        for c in self._conns:
            try:
                c.close()
            except Exception as e:      # every server below is still stopped
                problems.append("closing %r: %r" % (c, e))
        for srv in self._servers:
            try:
                problems += srv.stop()
            except Exception as e:
                problems.append("stopping zerohttpd (pid %s): %r"
                                % (srv.proc.pid if srv.proc else None, e))
        if problems:
            self.fail("; ".join(problems))

    def _kill_servers(self):
        left = {}
        for srv in self._servers:
            if srv.proc is not None:
                left.update(kill_tree(srv.proc))
        if left:
            raise AssertionError("zerohttpd processes %s survived SIGKILL" % sorted(left))

    def conn(self, port=None, **kw):
        c = RawConn(port or self.port, **kw)
        self._conns.append(c)
        return c

    def track(self, closeable):
        self._conns.append(closeable)
        return closeable

    # assertions
    def assertResponse(self, resp, status, body=None, content_type=None):
        self.assertEqual(resp.status, status, repr(resp))
        if body is not None:
            self.assertEqual(resp.body, body, repr(resp))
        if content_type is not None:
            self.assertEqual(resp.header("Content-Type"), content_type, repr(resp))
        if resp.status not in (204, 304) and not (100 <= resp.status < 200):
            cl = resp.header_all("Content-Length")
            if resp.header("Transfer-Encoding") is None:
                self.assertEqual(len(cl), 1, repr(resp))

    def assertClosed(self, c, within=2.0):
        self.assertTrue(c.closed_by_peer(within),
                        "server did not close the connection within %.1fs" % within)

    def assertHeaderToken(self, resp, name, token):
        v = resp.header(name)
        self.assertIsNotNone(v, "no %s header in %r" % (name, resp))
        toks = [t.strip().lower() for t in v.split(",")]
        self.assertIn(token.lower(), toks, "%s: %r" % (name, v))


def metrics(port):
    """GET /metrics on a connection of its own: every sample, keyed by name and labels
    ('zerohttp_shed_total{code="503"}'), as a float."""
    c = RawConn(port, timeout=DEFAULT_TIMEOUT)
    try:
        c.send(request("GET", "/metrics", [("Connection", "close")]))
        r = c.read_response()
    finally:
        c.close()
    if r.status != 200:
        raise AssertionError("GET /metrics: %r" % r)
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def rss_kib(pid):
    """Resident set size of a process, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def malloc_calls(pid, count_file, within=5.0):
    """The malloc-count shim's running total for process pid: tests/malloc_count.c writes it
    to count_file on SIGRTMIN+3. A sentinel goes in first, and the number counts only once two
    reads agree, so a half-written file is never taken for the total."""
    with open(count_file, "w") as f:
        f.write("-")
    os.kill(pid, signal.SIGRTMIN + 3)
    deadline, prev = time.monotonic() + within, None
    while time.monotonic() < deadline:
        with open(count_file) as f:
            txt = f.read()
        if re.fullmatch(r"\d+\s*", txt):
            if txt == prev:
                return int(txt)
            prev = txt
        time.sleep(0.02)
    raise AssertionError("shim did not write %s within %gs (content %r)"
                         % (count_file, within, prev))


# ------------------------------------------------------------------------------------------
# Processes, found and stopped by PID through /proc alone: a fresh Debian 12 has no procps
# (pgrep, ps, pkill), and /proc/PID/task/*/children needs CONFIG_PROC_CHILDREN, which not
# every kernel has; /proc/PID/stat is always there.

def proc_stat(pid):
    """(state, ppid, starttime) of pid from /proc/PID/stat, or None once it is gone. The
    starttime (clock ticks after boot) tells a process from a later one given its PID."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()    # the command name may hold ')' and spaces
    return fields[0], int(fields[1]), int(fields[19])


def children(pid):
    """PIDs of pid's child processes."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None and st[1] == pid:
                out.append(int(name))
    return out


def descendants(pid):
    """{pid: starttime} of every process below pid (children, their children, ...)."""
    found, todo = {}, [pid]
    while todo:
        for c in children(todo.pop()):
            st = proc_stat(c)
            if st is not None and c not in found:
                found[c] = st[2]
                todo.append(c)
    return found


def _running(pid, starttime):
    """True while the process pid that started at starttime exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[2] == starttime and st[0] != "Z"


def _signal(pids, sig):
    """Sends sig to each {pid: starttime} still running as that same process."""
    for pid, start in pids.items():
        if _running(pid, start):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def kill_tree(proc, also=None, within=5.0):
    """SIGKILLs proc (a Popen), every process below it and the {pid: starttime} of `also`
    (processes seen below it earlier, which its death reparented), by PID; reaps proc.
    Returns the {pid: starttime} still running after `within` seconds (empty = all gone).
    A cleanup: safe to call on a process that already exited."""
    pids = dict(also or {})
    if proc.poll() is None:     # not yet reaped, so its PID cannot have been reused
        pids.update(descendants(proc.pid))
        proc.kill()
    _signal(pids, signal.SIGKILL)
    try:
        proc.wait(within)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = {p: t for p, t in pids.items() if _running(p, t)}
        if not left:
            break
        time.sleep(0.01)
    left = {p: t for p, t in pids.items() if _running(p, t)}
    if proc.poll() is None:
        left[proc.pid] = None
    return left


def spawn(testcase, cmd, **kw):
    """Popen(cmd), SIGKILLed with everything below it (strace's tracee included) when
    testcase ends, whether it passed, failed or errored (addCleanup, so after tearDown), and
    alone when the runner dies (PR_SET_PDEATHSIG). stdin is /dev/null unless given."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("preexec_fn", _die_with_parent)
    proc = subprocess.Popen(cmd, **kw)

    def cleanup():
        left = kill_tree(proc)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                f.close()
        if left:
            raise AssertionError("%s: processes %s survived SIGKILL" % (cmd[0], sorted(left)))
    testcase.addCleanup(cleanup)
    return proc


def stop_traced(proc, timeout):
    """Stops a server running under strace -f: SIGTERM goes to the traced child itself
    (strace would only detach on it), SIGKILL to both if it does not exit in time; raises
    TimeoutExpired then. Whatever happens (a timeout, an error), neither process is left."""
    traced = {}
    try:
        direct = children(proc.pid)
        traced = descendants(proc.pid)
        _signal({p: traced[p] for p in direct if p in traced}, signal.SIGTERM)
        proc.wait(timeout=timeout)
    finally:
        kill_tree(proc, traced)
