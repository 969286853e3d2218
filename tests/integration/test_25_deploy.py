"""25. Deploy assets: deploy/prometheus/alerts.yml (+ alerts_test.yml, prometheus.yml) and
deploy/grafana/zerohttp.json, checked against a live zerohttpd and a real Prometheus.

* promtool: `check rules`, `test rules` (each alert fires on synthetic series), `check config`,
  and `check metrics` on a live scrape taken after 2xx, 404 and parse-error traffic.
* Every metric name in every alert expression and every dashboard query exists in a live
  scrape (names ending _bucket/_sum/_count only for a histogram family).
* A real Prometheus (Debian's `prometheus`) on 127.0.0.1, on a free port, with its own
  storage in a temporary directory, scrapes zerohttpd every second and loads alerts.yml:
  zerohttp_http_requests_total read back through its HTTP API grows by the requests made;
  every rule evaluates healthy; every alert expression and every dashboard query runs against
  the scraped data. The process is stopped by PID.

Skipped only when promtool / prometheus are not installed (scripts/deps.sh and .ci/run
install Debian's `prometheus` package, so CI runs them all).
"""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from harness import HELLO, HOST, REPO, ServerTestCase, _die_with_parent, free_port, request

PROM_DIR = os.path.join(REPO, "deploy", "prometheus")
ALERTS = os.path.join(PROM_DIR, "alerts.yml")
ALERTS_TEST = os.path.join(PROM_DIR, "alerts_test.yml")
PROM_CONFIG = os.path.join(PROM_DIR, "prometheus.yml")
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "zerohttp.json")

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
TOOL_TIMEOUT = 30          # one promtool run
PROM_READY_TIMEOUT = 15.0  # prometheus serving /-/ready
PROM_DATA_TIMEOUT = 20.0   # a scrape reflecting the requests made
PROM_STOP_TIMEOUT = 10.0

METRIC_NAME = re.compile(r"\bzerohttp_[a-zA-Z0-9_]*")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
HIST_SUFFIX = re.compile(r"_(bucket|sum|count)$")
# the trailing threshold of an alert expression: "<query> > 0.25", "up{...} == 0"
THRESHOLD = re.compile(r"\s*(>|<|>=|<=|==|!=)\s*[0-9.e+-]+\s*$")


# ------------------------------------------------------------------------------------------
# the assets

def read_text(path):
    with open(path) as f:
        return f.read()


def alert_rules():
    """[(alert name, expr)] from alerts.yml, read without a YAML library: the file keeps
    to `- alert: NAME` followed by `expr: QUERY` or a `expr: |` block."""
    rules, name, lines = [], None, read_text(ALERTS).splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*- alert:\s*(\S+)\s*$", line)
        if m:
            name = m.group(1)
        m = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if m:
            indent, rest = len(m.group(1)), m.group(2).strip()
            if rest in ("|", "|-", ">", ">-"):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip()
                                          or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                rest = " ".join(x for x in block if x)
                i -= 1
            assert name, "expr before any alert: " + line
            rules.append((name, rest.strip("'\"")))
            name = None
        i += 1
    return rules


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_queries(dash):
    """(panel queries, template-variable queries) of the dashboard: every `expr` anywhere,
    and the `query` of each query variable."""
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(dash.get("panels", []))
    variables = []
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            variables.append(q.get("query") if isinstance(q, dict) else q)
    return exprs, variables


def grafana_to_promql(expr):
    """A dashboard query as Prometheus would receive it from Grafana, all instances selected."""
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
            .replace("$job", ".*").replace("$instance", ".*"))


# ------------------------------------------------------------------------------------------
# scraping zerohttpd

def parse_exposition(text):
    """(family name -> type, set of sample names) of a text-format 0.0.4 exposition."""
    families, samples = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            families[name] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, "bad sample line %r" % line
            samples.add(m.group(1))
    return families, samples


def run_tool(args, stdin=None):
    p = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=TOOL_TIMEOUT, cwd=REPO)
    return p.returncode, p.stdout.decode("utf-8", "replace")


class Traffic(ServerTestCase):
    SERVER_ARGS = ("--workers", "2")

    def traffic(self, n=20):
        """n GETs of /plaintext, one 404 and one parse error (400); returns the number of
        requests zerohttpd counts in zerohttp_http_requests_total (the 400's head never
        parsed)."""
        c = self.conn()
        for _ in range(n):
            c.send(request("GET", "/plaintext"))
            self.assertEqual(c.read_response().body, HELLO)
        c.send(request("GET", "/no-such-file"))
        self.assertEqual(c.read_response().status, 404)
        bad = self.conn()
        bad.send(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(bad.read_response().status, 400)
        return n + 1

    def scrape(self):
        c = self.conn()
        c.send(request("GET", "/metrics"))
        r = c.read_response()
        self.assertEqual(r.status, 200)
        return r.body.decode()


# ------------------------------------------------------------------------------------------

@unittest.skipUnless(PROMTOOL, "promtool not installed (Debian package prometheus)")
class Promtool(Traffic):
    def test_check_rules_test_rules_check_config(self):
        for args in (["check", "rules", ALERTS], ["test", "rules", ALERTS_TEST],
                     ["check", "config", PROM_CONFIG]):
            rc, out = run_tool([PROMTOOL] + args)
            self.assertEqual(rc, 0, "promtool %s:\n%s" % (" ".join(args), out))
            self.assertIn("SUCCESS", out)

    def test_check_metrics_on_a_live_scrape(self):
        self.traffic()
        text = self.scrape()
        self.assertIn('zerohttp_parse_rejections_total{reason="400"} 1\n', text)
        self.assertIn('zerohttp_http_responses_total{method="GET",code="4xx"} 1\n', text)
        rc, out = run_tool([PROMTOOL, "check", "metrics"], stdin=text.encode())
        self.assertEqual(rc, 0, "promtool check metrics:\n" + out)
        self.assertEqual(out.strip(), "", "lint findings:\n" + out)


class MetricNames(Traffic):
    """Needs no tool: every name the assets use is in a live scrape."""

    def assertMetricsExist(self, what, query, families, samples):
        names = METRIC_NAME.findall(query)
        for name in names:
            with self.subTest(what=what, metric=name):
                base = HIST_SUFFIX.sub("", name)
                if name in families:
                    self.assertNotEqual(families[name], "histogram",
                                        "%s: a histogram is queried by its series" % name)
                    self.assertIn(name, samples)
                else:
                    self.assertEqual(families.get(base), "histogram",
                                     "%s (in %s) is not in a live scrape: %s"
                                     % (name, what, query))
                    self.assertIn(name, samples)
        return set(names)

    def test_every_referenced_metric_exists(self):
        self.traffic()
        families, samples = parse_exposition(self.scrape())
        used = set()
        rules = alert_rules()
        self.assertEqual([n for n, _ in rules],
                         re.findall(r"^\s*- alert:\s*(\S+)", read_text(ALERTS), re.M))
        self.assertGreaterEqual(len(rules), 4)
        for name, expr in rules:
            used |= self.assertMetricsExist("alert " + name, expr, families, samples)
        # annotations name metrics too: they must exist as well
        used |= self.assertMetricsExist("alerts.yml", read_text(ALERTS), families, samples)
        dash = dashboard()
        exprs, variables = dashboard_queries(dash)
        self.assertGreaterEqual(len(exprs), 20)
        for e in exprs + variables:
            used |= self.assertMetricsExist("dashboard", e, families, samples)
        for must in ("zerohttp_http_responses_total",
                     "zerohttp_http_request_duration_seconds_bucket",
                     "zerohttp_pool_exhausted_total", "zerohttp_shed_total",
                     "zerohttp_connections_open", "zerohttp_http_requests_in_flight",
                     "zerohttp_syscalls_total", "zerohttp_body_bytes_copied_total"):
            self.assertIn(must, used)

    def test_dashboard_shape(self):
        dash = dashboard()
        self.assertGreaterEqual(dash["schemaVersion"], 36)
        self.assertEqual(dash["uid"], "zerohttp")
        ds = [v for v in dash["templating"]["list"] if v["name"] == "DS_PROMETHEUS"]
        self.assertEqual(len(ds), 1)
        self.assertEqual((ds[0]["type"], ds[0]["query"]), ("datasource", "prometheus"))
        ids, titles = set(), []
        for p in dash["panels"]:
            self.assertNotIn(p["id"], ids, "duplicate panel id")
            ids.add(p["id"])
            titles.append(p["title"])
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            if p["type"] == "row":
                continue
            self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${DS_PROMETHEUS}"})
            self.assertTrue(p["targets"], p["title"])
            refs = [t["refId"] for t in p["targets"]]
            self.assertEqual(len(refs), len(set(refs)), p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"], p["datasource"])
        for want in ("Requests / s by status class", "Latency", "Connections",
                     "Requests in flight", "Sheds (429 / 503)", "Pool usage", "Pool exhaustion",
                     "Syscalls per request", "Body bytes copied per request"):
            self.assertIn(want, titles)


# ------------------------------------------------------------------------------------------

class Prometheus:
    """One prometheus process on 127.0.0.1, tracked by PID, storage in a temporary dir."""

    def __init__(self, target_port, tmpdir):
        self.target_port = target_port
        self.tmpdir = tmpdir
        self.proc = None
        self.port = None
        self.log = None
        # never through a proxy from the environment: loopback only
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self):
        config = os.path.join(self.tmpdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: zerohttp\n    static_configs:\n"
                    "      - targets: ['%s:%d']\n" % (json.dumps(ALERTS), HOST, self.target_port))
        last = None
        for _attempt in range(3):          # the picked port can be raced by someone else
            self.port = free_port()
            self.log = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(
                [PROMETHEUS, "--config.file=" + config,
                 "--storage.tsdb.path=" + os.path.join(self.tmpdir, "data"),
                 "--web.listen-address=%s:%d" % (HOST, self.port),
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, cwd=self.tmpdir,
                preexec_fn=_die_with_parent)
            deadline = time.monotonic() + PROM_READY_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with self.opener.open("http://%s:%d/-/ready" % (HOST, self.port),
                                          timeout=1) as r:
                        if r.status == 200:
                            return self
                except (OSError, urllib.error.URLError):
                    pass
                time.sleep(0.1)
            exited = self.proc.poll() is not None
            last = "prometheus not ready within %.0fs (exit %r): %s" % (
                PROM_READY_TIMEOUT, self.proc.poll(), self.log_text())
            self.stop()
            if not (exited and "address already in use" in last):
                break                          # only a lost port race is worth a retry
        raise AssertionError(last)

    def log_text(self, limit=3000):
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read()[-limit:].decode("utf-8", "replace")

    def api(self, path, **params):
        url = "http://%s:%d/api/v1/%s" % (HOST, self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with self.opener.open(url, timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:      # 400 for a bad query: the body says why
            return json.loads(e.read())

    def query(self, promql):
        return self.api("query", query=promql)

    def stop(self):
        """SIGTERM by PID, SIGKILL after PROM_STOP_TIMEOUT; returns the exit status."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    rc = self.proc.wait(PROM_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    rc = self.proc.wait(5)
            else:
                rc = self.proc.returncode
        if self.log is not None:
            self.log.close()
            self.log = None
        return rc


def values(resp):
    """{labels as a sorted tuple: float} of an instant-vector query answer."""
    assert resp.get("status") == "success", resp
    assert resp["data"]["resultType"] == "vector", resp
    return {tuple(sorted(r["metric"].items())): float(r["value"][1])
            for r in resp["data"]["result"]}


@unittest.skipUnless(PROMETHEUS, "prometheus not installed (Debian package prometheus)")
class RealPrometheus(Traffic):
    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory(prefix="zh-prometheus-")
        self.addCleanup(tmp.cleanup)
        self.prom = Prometheus(self.port, tmp.name)
        self.addCleanup(self.prom.stop)           # runs before tmp.cleanup (LIFO)
        self.prom.start()

    def wait_for(self, what, fn, timeout=PROM_DATA_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = fn()
            if last is not None:
                return last
            time.sleep(0.2)
        self.fail("prometheus: no %s within %.0fs; log: %s" % (what, timeout, self.prom.log_text()))

    def requests_total(self):
        v = values(self.prom.query('zerohttp_http_requests_total{job="zerohttp"}'))
        return next(iter(v.values())) if len(v) == 1 else None

    def test_scrape_query_and_evaluate_the_rules(self):
        p = self.prom
        # scraping works before the traffic: up == 1 and a first value
        self.wait_for("up == 1", lambda: 1 if list(values(p.query(
            'up{job="zerohttp"}')).values()) == [1.0] else None)
        before = self.wait_for("first value", self.requests_total)
        made = self.traffic(40)
        after = self.wait_for("requests_total >= %d + %d" % (before, made),
                              lambda: (lambda v: v if v is not None and v >= before + made
                                       else None)(self.requests_total()))
        self.assertGreaterEqual(after - before, made)
        # the 404 and the parser's 400 arrived as 4xx responses, the 400 as a rejection
        self.wait_for("the 4xx responses", lambda: 1 if sum(values(p.query(
            'sum(zerohttp_http_responses_total{code="4xx"})')).values()) >= 2 else None)
        self.assertEqual(list(values(p.query(
            'zerohttp_parse_rejections_total{reason="400"}')).values()), [1.0])

        # alerts.yml as Prometheus loaded it: every rule evaluated, healthy
        def rules_evaluated():
            groups = p.api("rules")["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            if rules and all(r.get("health") == "ok" for r in rules):
                return rules
            return None
        rules = self.wait_for("healthy rule evaluations", rules_evaluated)
        self.assertEqual(sorted(r["name"] for r in rules), sorted(n for n, _ in alert_rules()))
        for r in rules:
            self.assertEqual(r.get("lastError", ""), "", r)

        # each alert expression runs; a healthy server fires none of them, and the query
        # under each threshold yields real, finite values
        for name, expr in alert_rules():
            with self.subTest(alert=name):
                self.assertEqual(values(p.query(expr)), {}, "%s fires on a healthy server" % name)
                bare = THRESHOLD.sub("", expr)
                self.assertNotEqual(bare, expr, "no threshold found in %s" % expr)
                got = values(p.query(bare))
                self.assertTrue(got, "%s: no data for %s" % (name, bare))
                for v in got.values():
                    self.assertFalse(math.isnan(v) or math.isinf(v), "%s: %r" % (name, got))
        p99 = values(p.query(THRESHOLD.sub("", dict(alert_rules())["ZerohttpHighP99Latency"])))
        self.assertTrue(all(0 < v < 0.25 for v in p99.values()), p99)
        ratio = values(p.query(THRESHOLD.sub("", dict(alert_rules())["ZerohttpHigh5xxRatio"])))
        self.assertEqual(list(ratio.values()), [0.0])

        # every dashboard query runs and has data, as Grafana would send it
        exprs, variables = dashboard_queries(dashboard())
        for e in exprs:
            with self.subTest(panel_query=e):
                r = p.query(grafana_to_promql(e))
                self.assertEqual(r.get("status"), "success", r)
                self.assertTrue(values(r), "no data for %s" % e)
        for q in variables:
            with self.subTest(variable=q):
                m = re.match(r"^label_values\((.+),\s*(\w+)\)$", q)
                self.assertTrue(m, q)
                r = p.api("label/%s/values" % m.group(2),
                          **{"match[]": grafana_to_promql(m.group(1))})
                self.assertEqual(r.get("status"), "success", r)
                self.assertTrue(r["data"], q)

        self.assertEqual(p.stop(), 0, "prometheus exit status")
