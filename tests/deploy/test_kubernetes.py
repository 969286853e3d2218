"""deploy/kubernetes/ against what zerohttpd does. No cluster here: the manifests are parsed
(python3-yaml) and every value that must agree with zerohttpd is checked against zerohttpd
itself: the ConfigMap's file passes `zerohttpd -t -c`, then a zerohttpd started from it (on
loopback ports) answers the probes' paths on the probes' ports, and drains on the image's
stop signal within the time the grace period leaves it.
"""
import glob
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fleet  # noqa: E402  (harness, REPO)

harness = fleet.harness
REPO = fleet.REPO
K8S = os.path.join(REPO, "deploy", "kubernetes")
CONTAINERFILE = os.path.join(REPO, "deploy", "container", "Containerfile")
CONF_KEY = "zerohttpd.conf"


def load_manifests():
    docs = {}
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.setdefault(doc["kind"], []).append((os.path.basename(path), doc))
    return docs


def parse_conf(text):
    """zerohttpd's config format: `key value` or `key`, # comments. {key: [values]}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        out.setdefault(key, []).append(value.strip())
    return out


def containerfile():
    """{instruction: [arguments]} of the Containerfile (no continuation lines in it)."""
    out = {}
    with open(CONTAINERFILE) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                word, _, rest = line.partition(" ")
                out.setdefault(word.upper(), []).append(rest.strip())
    return out


def http_get(port, path):
    c = harness.RawConn(port)
    try:
        c.send(harness.request("GET", path))
        return c.read_response()
    finally:
        c.close()


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = load_manifests()
        for kind in ("ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
                     "HorizontalPodAutoscaler"):
            assert len(cls.docs.get(kind, [])) == 1, "%s: %r" % (kind, cls.docs.get(kind))
        cls.cm = cls.docs["ConfigMap"][0][1]
        cls.dep = cls.docs["Deployment"][0][1]
        cls.pod = cls.dep["spec"]["template"]["spec"]
        cls.ctr = cls.pod["containers"][0]
        cls.conf_text = cls.cm["data"][CONF_KEY]
        cls.conf = parse_conf(cls.conf_text)
        cls.ports = {p["name"]: p["containerPort"] for p in cls.ctr["ports"]}

    def conf1(self, key, default=None):
        v = self.conf.get(key)
        return v[-1] if v else default

    def probe_port(self, probe):
        port = probe["httpGet"]["port"]
        return self.ports[port] if isinstance(port, str) else port

    def main_port(self):
        return int(self.conf1("port", "8080"))

    def metrics_port(self):
        return int(self.conf1("metrics-listen").rsplit(":", 1)[1])

    def test_kustomization_lists_every_manifest(self):
        with open(os.path.join(K8S, "kustomization.yaml")) as f:
            k = yaml.safe_load(f)
        files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.yaml"))
                       if not p.endswith("kustomization.yaml"))
        self.assertEqual(sorted(k["resources"]), files)

    def test_config_passes_zerohttpd_check(self):
        # -t checks every key and value; the root is the image's /srv/www, absent here, so
        # the flag (which overrides the file) points it at the repo's www/ copied there
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, CONF_KEY)
            with open(path, "w") as f:
                f.write(self.conf_text)
            r = subprocess.run([harness.server_bin(), "-t", "-c", path, "--root",
                                os.path.join(REPO, "www")], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            bad = path + ".bad"
            with open(bad, "w") as f:
                f.write(self.conf_text + "no-such-key 1\n")
            r = subprocess.run([harness.server_bin(), "-t", "-c", bad], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(r.returncode, 1, "the check cannot fail: " + r.stderr)

    def test_args_read_the_mounted_config(self):
        mounts = {m["name"]: m["mountPath"] for m in self.ctr["volumeMounts"]}
        vols = {v["name"]: v for v in self.pod["volumes"]}
        cm_vol = [n for n, v in vols.items()
                  if v.get("configMap", {}).get("name") == self.cm["metadata"]["name"]]
        self.assertEqual(len(cm_vol), 1)
        path = os.path.join(mounts[cm_vol[0]], CONF_KEY)
        self.assertEqual(self.ctr["args"], ["-c", path])
        # the image's own CMD reads the same path (so the mount replaces the baked-in file)
        cmd = containerfile()["CMD"][-1]
        self.assertIn('"%s"' % path, cmd)

    def test_ports_and_addresses(self):
        self.assertIn(self.conf1("address"), ("0.0.0.0", "::"),
                      "the probes and the Service reach the pod from outside it")
        self.assertEqual(self.ports["http"], self.main_port())
        self.assertTrue(self.conf1("metrics-listen").startswith(("0.0.0.0:", "[::]:")))
        self.assertEqual(self.ports["metrics"], self.metrics_port())
        ann = self.dep["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(int(ann["prometheus.io/port"]), self.metrics_port())
        self.assertEqual(ann["prometheus.io/path"], "/metrics")
        expose = containerfile()["EXPOSE"]
        self.assertEqual(expose, [str(self.main_port())])

    def test_probes(self):
        rp, lp = self.ctr["readinessProbe"], self.ctr["livenessProbe"]
        self.assertEqual(rp["httpGet"]["path"], "/readyz")
        self.assertEqual(lp["httpGet"]["path"], "/healthz")
        # on the main server: its /readyz is the one that follows the drain of what the
        # Service sends traffic to
        self.assertEqual(self.probe_port(rp), self.main_port())
        self.assertEqual(self.probe_port(lp), self.main_port())
        # the readiness probe must notice faster than liveness would restart the pod
        self.assertLess(rp["periodSeconds"] * rp.get("failureThreshold", 3),
                        lp["periodSeconds"] * lp.get("failureThreshold", 3))

    def test_grace_period_outlasts_prestop_and_drain(self):
        pre = self.ctr["lifecycle"]["preStop"]
        if "sleep" in pre:
            pre_s = pre["sleep"]["seconds"]
        else:
            cmd = pre["exec"]["command"]
            self.assertEqual(os.path.basename(cmd[0]), "sleep")
            pre_s = float(cmd[1])
        self.assertGreaterEqual(pre_s, 2, "endpoint propagation takes seconds")
        delay_s = int(self.conf1("drain-delay", "0")) / 1000.0
        drain_s = int(self.conf1("drain-timeout", "10000")) / 1000.0
        grace = self.pod["terminationGracePeriodSeconds"]
        self.assertGreater(grace, pre_s + delay_s + drain_s,
                           "grace %ss <= preStop %ss + drain-delay %ss + drain-timeout %ss"
                           % (grace, pre_s, delay_s, drain_s))

    def test_stop_signal_is_one_zerohttpd_drains_on(self):
        # Kubernetes sends the image's STOPSIGNAL (SIGTERM if none); nothing in the pod
        # overrides it (the alpha lifecycle.stopSignal field is not used)
        self.assertEqual(containerfile()["STOPSIGNAL"], ["SIGTERM"])
        self.assertNotIn("stopSignal", self.ctr.get("lifecycle", {}))

    def test_security_context(self):
        psc, csc = self.pod["securityContext"], self.ctr["securityContext"]
        self.assertTrue(psc["runAsNonRoot"])
        self.assertEqual(psc["seccompProfile"]["type"], "RuntimeDefault")
        self.assertTrue(csc["runAsNonRoot"])
        self.assertTrue(csc["readOnlyRootFilesystem"])
        self.assertFalse(csc["allowPrivilegeEscalation"])
        self.assertEqual(csc["capabilities"]["drop"], ["ALL"])
        self.assertNotIn("add", csc["capabilities"])
        self.assertEqual(csc["seccompProfile"]["type"], "RuntimeDefault")
        # the numeric user is the image's (it has no /etc/passwd), and not root; the ports
        # are above 1024, so no capability is needed to bind them
        uid = containerfile()["USER"][-1].split(":")[0]
        self.assertEqual(psc["runAsUser"], int(uid))
        self.assertNotEqual(psc["runAsUser"], 0)
        self.assertGreater(self.main_port(), 1024)
        self.assertGreater(self.metrics_port(), 1024)
        self.assertIsNone(self.conf1("user"), "--user needs root and /etc/passwd")

    def test_resources_and_workers(self):
        res = self.ctr["resources"]
        for k in ("cpu", "memory"):
            self.assertIn(k, res["requests"])
            self.assertIn(k, res["limits"])
        cpu = res["limits"]["cpu"]
        cpus = int(cpu[:-1]) / 1000.0 if str(cpu).endswith("m") else float(cpu)
        self.assertEqual(int(self.conf1("workers")), math.ceil(cpus),
                         "one worker per CPU of the limit")

    def test_service_pdb_hpa_select_the_pods(self):
        labels = self.dep["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(self.dep["spec"]["selector"]["matchLabels"].items() - labels.items(),
                         set())
        svc = self.docs["Service"][0][1]
        self.assertEqual(svc["spec"]["selector"].items() - labels.items(), set())
        for p in svc["spec"]["ports"]:
            self.assertIn(p["targetPort"], self.ports)
        self.assertEqual(self.ports[svc["spec"]["ports"][0]["targetPort"]], self.main_port())
        pdb = self.docs["PodDisruptionBudget"][0][1]
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"].items() - labels.items(), set())
        hpa = self.docs["HorizontalPodAutoscaler"][0][1]
        ref = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((ref["kind"], ref["name"]), ("Deployment", self.dep["metadata"]["name"]))
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
        self.assertLess(pdb["spec"]["maxUnavailable"], hpa["spec"]["minReplicas"])
        self.assertEqual(self.dep["spec"]["replicas"], hpa["spec"]["minReplicas"])
        self.assertEqual(self.dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)

    def test_zerohttpd_from_the_configmap_answers_probes_and_drains(self):
        """The ConfigMap's zerohttpd (addresses moved to loopback, root to www/): the probe
        paths on the probe ports, /metrics where the annotations point, then the image's
        stop signal: /readyz 503 through the drain, exit 0 within the drain budget."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, CONF_KEY)
            with open(path, "w") as f:
                f.write(self.conf_text)
            mport = harness.free_port()
            srv = harness.Server(["-c", path, "--metrics-listen", "%s:%d" % (fleet.HOST, mport)],
                                 demo=False)
            self.addCleanup(lambda: srv._kill())
            srv.start()
            ports = {self.main_port(): srv.port, self.metrics_port(): mport}
            rp, lp = self.ctr["readinessProbe"], self.ctr["livenessProbe"]
            r = http_get(ports[self.probe_port(rp)], rp["httpGet"]["path"])
            self.assertEqual((r.status, r.body), (200, b"ready\n"))
            r = http_get(ports[self.probe_port(lp)], lp["httpGet"]["path"])
            self.assertEqual((r.status, r.body), (200, b"ok\n"))
            r = http_get(mport, "/metrics")
            self.assertEqual(r.status, 200)
            self.assertIn(b"zerohttp_http_requests_total", r.body)
            self.assertEqual(http_get(srv.port, "/").status, 200)
            slow = harness.RawConn(srv.port)     # a response in flight at the signal
            self.addCleanup(slow.close)
            slow.send(harness.request("GET", "/healthz")[:-2])
            sig = signal.Signals[containerfile()["STOPSIGNAL"][-1]]
            srv.expected_exit = True
            t0 = time.monotonic()
            srv.signal(sig)
            deadline = t0 + 2
            while True:
                r = http_get(mport, "/readyz")
                if r.status == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            self.assertEqual(r.status, 503, "/readyz during the drain")
            slow.send(b"\r\n")
            self.assertEqual(slow.read_response().status, 200)
            budget = int(self.conf1("drain-delay", "0")) / 1000.0 + \
                int(self.conf1("drain-timeout", "10000")) / 1000.0
            rc = srv.wait_exit(budget + 2)
            self.assertEqual(rc, 0, srv.stderr_text())
            self.assertLess(time.monotonic() - t0, budget)
            self.assertIn("stopped on %s" % sig.name, srv.stderr_text())
            with self.assertRaises(OSError):
                socket.create_connection((fleet.HOST, srv.port), timeout=1).close()
            srv.stop()


if __name__ == "__main__":
    unittest.main()
