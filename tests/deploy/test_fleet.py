"""Many instances: three zerohttpd behind HAProxy (deploy/haproxy/haproxy.cfg) under wrk load.

test_rolling_restart: each instance in turn gets SIGTERM, leaves HAProxy's rotation while it
still serves (its /readyz answers 503 for --drain-delay), drains, exits 0 and is started
again on its port; the next one goes once HAProxy has it UP again. Every response wrk got
is checked (tests/deploy/check.lua): 0 socket errors, 0 non-2xx, 0 wrong bodies.

test_sigkill: one instance is SIGKILLed under wrk and tests/deploy/timed_load.py (which keeps
the time of each failure: wrk cannot, and HAProxy does not log a request lost on a reused
keep-alive connection, it closes the client's connection as a keep-alive close). The
requests the instance was answering fail; new requests to it fail to connect and are retried
on another instance until the checks take it out. The test reports how many failed and over
how long, and asserts both stay within what the check settings imply (see BOUND below).
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402

# wrk: connections through HAProxy and the pause on each between a response and the next
# request: at most CONNS * 1000 / PACE_MS = 3,000 requests/s, a steady load that leaves
# the shared machine some room
CONNS, PACE_MS = 12, 4
# timed_load.py beside it in test_sigkill
TIMED_CONNS, TIMED_PACE_MS = 8, 4


class ShippedConfig(unittest.TestCase):
    """deploy/haproxy/haproxy.cfg parses, and says what the fleet tests rely on."""

    def setUp(self):
        with open(fleet.SHIPPED_CFG) as f:
            self.cfg = f.read()
        self.lines = [l.split("#")[0].strip() for l in self.cfg.splitlines()]

    def test_haproxy_accepts_it_and_the_test_copy(self):
        for text in (self.cfg, fleet.haproxy_config(self.cfg, [8081, 8082, 8083], 18080, 18404,
                                                    "/tmp/zh-fleet-check.sock")):
            with tempfile.NamedTemporaryFile("w", suffix=".cfg") as f:
                f.write(text)
                f.flush()
                r = subprocess.run([fleet.haproxy_bin(), "-c", "-f", f.name],
                                   capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_checks_retries_and_reuse(self):
        self.assertIn("http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host zerohttpd",
                      self.lines)
        self.assertIn("http-check expect status 200", self.lines)
        # only connection failures are retried: a request that reached a server is never
        # sent again
        retry_on = [l.split()[1:] for l in self.lines if l.startswith("retry-on ")]
        self.assertEqual(retry_on, [["conn-failure"]])
        self.assertIn("option redispatch 1", self.lines)
        reuse = [l for l in self.lines if l.startswith("http-reuse ")]
        self.assertEqual(reuse, ["http-reuse safe"])
        self.assertNotIn("option http-server-close", self.lines)
        self.assertNotIn("option httpclose", self.lines)

    def test_drain_delay_outlasts_detection(self):
        m = re.search(r"drain-delay (\d+)", self.cfg)
        self.assertIsNotNone(m, "haproxy.cfg must say which --drain-delay to use")
        self.assertEqual(int(m.group(1)), fleet.DRAIN_DELAY_MS)
        out_bound = fleet.check_param(self.cfg, "inter") + \
            (fleet.check_count(self.cfg, "fall") - 1) * fleet.check_param(self.cfg, "fastinter")
        # a draining zerohttpd answers 503 at once, so a check's round trip is microseconds;
        # half a second of margin for a loaded machine
        self.assertGreaterEqual(fleet.DRAIN_DELAY_MS / 1000.0, out_bound + 0.5)


class FleetTestCase(unittest.TestCase):
    def setUp(self):
        self.fleet = fleet.Fleet(3)
        self.addCleanup(self._stop_all)
        for i in range(3):
            self.fleet.start_instance(i)
        self.fleet.start_haproxy()
        with open(fleet.SHIPPED_CFG) as f:
            cfg = f.read()
        self.inter = fleet.check_param(cfg, "inter")
        self.fastinter = fleet.check_param(cfg, "fastinter")
        self.downinter = fleet.check_param(cfg, "downinter")
        self.fall = fleet.check_count(cfg, "fall")
        self.rise = fleet.check_count(cfg, "rise")
        # out of rotation at most this long after /readyz turns 503 or the instance dies
        self.out_bound = self.inter + (self.fall - 1) * self.fastinter
        self.up_bound = self.downinter + (self.rise - 1) * self.fastinter
        for i in range(3):
            self.fleet.wait_state(self.fleet.server_name(i), "UP", 10)

    def _stop_all(self):
        problems = self.fleet.stop_all()
        if problems:
            raise AssertionError("; ".join(problems))

    def failed_lines(self, since):
        """HAProxy's log lines of requests that did not end in a 2xx after `since`."""
        return [r for r in fleet.parse_log(self.fleet.log_text())
                if r["end"] >= since and r["failed"]]

    def test_rolling_restart(self):
        self.assertGreater(fleet.DRAIN_DELAY_MS / 1000.0, self.out_bound,
                           "the drain delay must outlast HAProxy's detection")
        wrk = self.fleet.start_wrk(CONNS, PACE_MS)
        time.sleep(1.0)
        figures = []
        for i in range(3):
            name = self.fleet.server_name(i)
            old = self.fleet.instances[i]
            t0 = time.monotonic()
            old.signal(signal.SIGTERM)
            t_down = self.fleet.wait_state(name, "DOWN", self.out_bound + 2)
            rc = old.wait_exit(15)
            t_exit = time.monotonic()
            old.expected_exit = True
            self.fleet.old.append(old)
            self.assertEqual(rc, 0, "%s: exit status %r: %s" % (name, rc, old.stderr_text()))
            self.fleet.start_instance(i)
            t_up = self.fleet.wait_state(name, "UP", self.up_bound + 5)
            figures.append("%s: out of rotation %.2fs after SIGTERM, exited 0 after %.2fs, "
                           "UP %.2fs after its restart" % (name, t_down - t0, t_exit - t0,
                                                           t_up - t_exit))
            self.assertLess(t_down - t0, fleet.DRAIN_DELAY_MS / 1000.0,
                            "%s left the rotation after its listener closed" % name)
        time.sleep(1.0)
        summary, text = self.fleet.stop_wrk(wrk)
        log = fleet.parse_log(self.fleet.log_text())
        failed = [r for r in log if r["failed"]]
        retried = [r for r in log if r["retries"] > 0 and 200 <= r["status"] <= 299]
        served = {n: int(r["stot"]) for n, r in self.fleet.stats().items()}
        sys.stderr.write("\n  rolling restart: %d requests, %d responses, %d non-2xx, socket "
                         "errors connect %d read %d write %d timeout %d; HAProxy: %d failed, "
                         "%d retried on a connection failure and served; per server %s\n  %s\n"
                         % (summary["requests"], summary["responses"], summary["non2xx"],
                            summary["connect"], summary["read"], summary["write"],
                            summary["timeout"], len(failed), len(retried), served,
                            "\n  ".join(figures)))
        self.assertGreater(summary["responses"], 1000, text)
        for key in ("non2xx", "badbody", "connect", "read", "write", "timeout", "status"):
            self.assertEqual(summary[key], 0, "%s: %s\n%s" % (key, text,
                             "\n".join(r["line"] for r in failed[:20])))
        self.assertEqual(summary["requests"], summary["responses"], text)
        self.assertEqual(failed, [], "HAProxy logged failed requests")

    def test_sigkill(self):
        victim = 1
        name = self.fleet.server_name(victim)
        wrk = self.fleet.start_wrk(CONNS, PACE_MS)
        load = self.fleet.start_timed_load(TIMED_CONNS, TIMED_PACE_MS)
        time.sleep(2.0)
        srv = self.fleet.instances[victim]
        t_kill_wall, t_kill = time.time(), time.monotonic()
        srv.signal(signal.SIGKILL)
        self.fleet.killed.append(srv)
        self.fleet.instances[victim] = None
        t_down = self.fleet.wait_state(name, "DOWN", self.out_bound + 2)
        time.sleep(2.0)
        summary, text = self.fleet.stop_timed_load(load)
        wsum, wtext = self.fleet.stop_wrk(wrk)
        wlost = sum(wsum[k] for k in ("non2xx", "badbody", "connect", "read", "write",
                                      "timeout"))
        log = fleet.parse_log(self.fleet.log_text())
        retried = [r for r in log if r["retries"] > 0 and not r["failed"]]
        fails = summary["failures"]
        first = min(f[1] for f in fails) - t_kill_wall if fails else 0.0
        last = max(f[1] for f in fails) - t_kill_wall if fails else 0.0
        # BOUND: a request fails only if it had reached the killed instance (the kernel
        # resets its connections at the kill) or was sent on an idle connection to it before
        # HAProxy saw that connection close. A new connection to it is refused and retried
        # elsewhere (retry-on conn-failure, redispatch). So failures end once HAProxy marks
        # it DOWN, at most inter + (fall - 1) * fastinter after the kill (plus a check's
        # round trip; 0.5 s of slack for a loaded machine), and each client connection,
        # with one request in flight at a time, loses at most one request to the kill.
        bound_s = self.out_bound + 0.5
        sys.stderr.write("\n  SIGKILL of %s: wrk: %d of %d requests failed (%d non-2xx, %d "
                         "socket errors); timed_load: %d of %d failed (%s), from %.3fs to "
                         "%.3fs after the kill; HAProxy marked it DOWN after %.2fs; %d "
                         "requests retried on a connection failure and served; bound: %.2fs "
                         "and one request per connection (%d, %d)\n"
                         % (name, wlost, wsum["requests"], wsum["non2xx"],
                            wlost - wsum["non2xx"], len(fails), summary["requests"],
                            ", ".join(sorted(set(f[2] for f in fails))) or "-", first, last,
                            t_down - t_kill, len(retried), bound_s, CONNS, TIMED_CONNS))
        self.assertGreater(wsum["responses"], 1000, wtext)
        self.assertLessEqual(wlost, CONNS, wtext)
        self.assertEqual(wsum["requests"], wsum["responses"], wtext)
        self.assertGreater(summary["ok"], 1000, text)
        self.assertLessEqual(t_down - t_kill, bound_s, "HAProxy took too long to mark it DOWN")
        self.assertLessEqual(len(fails), TIMED_CONNS, text)
        for f in fails:
            self.assertGreaterEqual(f[1], t_kill_wall, "a request failed before the kill: %s"
                                    % text)
            self.assertLessEqual(f[1] - t_kill_wall, bound_s,
                                 "a request failed after the check bound: %s" % text)
        self.assertEqual(summary["requests"], summary["ok"] + len(fails), text)


if __name__ == "__main__":
    unittest.main()
