"""deploy/container/Containerfile: the static binary it copies serves, and podman builds the
image (FROM scratch: no registry) and runs it as the Deployment does (read-only, no
capabilities, no new privileges, a numeric user): /healthz, the files, the ConfigMap's config
checked inside the image, and a drain with exit status 0 on `podman stop` (SIGTERM).

podman on this kind of machine (Debian 12, cgroup v1 + an empty v2 hierarchy, no
CAP_SYS_RESOURCE): crun refuses the hybrid cgroup layout ("cgroups in hybrid mode not
supported"), so the test runs podman with runc; and podman's default rlimits (nofile and
nproc above the hard limits here) cannot be set without CAP_SYS_RESOURCE, so the test
passes lower ones. The network is the host's, and zerohttpd binds 127.0.0.1 only.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fleet  # noqa: E402
import test_kubernetes  # noqa: E402  (the ConfigMap's config, the Containerfile's fields)

harness = fleet.harness
REPO = fleet.REPO
CONTAINERFILE = test_kubernetes.CONTAINERFILE
STATIC_BIN = os.environ.get("ZH_STATIC_BIN") or os.path.join(REPO, "build", "static",
                                                               "zerohttpd")


def static_bin():
    return STATIC_BIN if os.path.isabs(STATIC_BIN) else os.path.join(REPO, STATIC_BIN)


def wait_healthy(port, within):
    deadline = time.monotonic() + within
    while True:
        try:
            r = test_kubernetes.http_get(port, "/healthz")
            if r.status == 200:
                return r
        except (OSError, AssertionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("no /healthz on port %d within %.0fs" % (port, within))
        time.sleep(0.05)


class StaticBinary(unittest.TestCase):
    """What the image holds, without a container runtime: it must run alone."""

    def test_static_binary_is_static_and_serves_the_image_config(self):
        path = static_bin()
        self.assertTrue(os.path.exists(path), "%s: run `make static`" % path)
        r = subprocess.run(["ldd", path], capture_output=True, text=True)
        self.assertIn("not a dynamic executable", r.stdout + r.stderr)
        conf = os.path.join(REPO, "deploy", "container", "zerohttpd.conf")
        port = harness.free_port()
        p = subprocess.Popen([path, "-c", conf, "--address", fleet.HOST, "--port", str(port),
                              "--root", os.path.join(REPO, "www")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             preexec_fn=harness._die_with_parent)
        try:
            r = wait_healthy(port, 5)
            self.assertEqual(r.body, b"ok\n")
            self.assertEqual(test_kubernetes.http_get(port, "/").status, 200)
            p.terminate()
            self.assertEqual(p.wait(10), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(5)
            p.stderr.close()


@unittest.skipUnless(shutil.which("podman"), "podman is not installed (scripts/deps.sh)")
class Image(unittest.TestCase):
    def podman(self, *args, check=True, timeout=120):
        cmd = ["podman"] + (["--runtime", "runc"] if shutil.which("runc") else []) + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                                      r.stderr.strip()))
        return r

    RUN = ["--network", "host", "--read-only", "--cap-drop", "ALL", "--security-opt",
           "no-new-privileges", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]

    def setUp(self):
        self.assertTrue(os.path.exists(static_bin()), "run `make static` first")
        self.tag = "localhost/zerohttpd-test:%d" % os.getpid()
        r = self.podman("build", "-q", "-f", CONTAINERFILE, "-t", self.tag, REPO, timeout=300)
        self.image = r.stdout.strip().splitlines()[-1]
        self.addCleanup(self.podman, "rmi", "-f", self.image, check=False)

    def test_image_runs_as_the_deployment_does(self):
        fmt = "{{.Config.User}}|{{.Config.StopSignal}}|{{.Size}}"
        user, stop, size = self.podman("image", "inspect", "--format", fmt,
                                       self.image).stdout.strip().split("|")
        cf = test_kubernetes.containerfile()
        self.assertEqual(user, cf["USER"][-1])
        self.assertEqual(stop, "SIGTERM")
        self.assertLess(int(size), 8 << 20, "a minimal image: the binary, a config, www/")

        # the ConfigMap's config is good inside the image (its root, /srv/www, is there)
        with tempfile.TemporaryDirectory() as d:
            os.chmod(d, 0o755)
            conf = os.path.join(d, test_kubernetes.CONF_KEY)
            with open(conf, "w") as f:
                f.write(test_kubernetes.load_manifests()["ConfigMap"][0][1]["data"]
                        [test_kubernetes.CONF_KEY])
            os.chmod(conf, 0o644)
            r = self.podman("run", "--rm", *self.RUN, "-v",
                            "%s:/etc/zerohttpd/zerohttpd.conf:ro" % conf, self.image, "-t",
                            "-c", "/etc/zerohttpd/zerohttpd.conf", check=False)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        port = harness.free_port()
        r = self.podman("run", "-d", *self.RUN, self.image, "-c",
                        "/etc/zerohttpd/zerohttpd.conf", "--address", fleet.HOST, "--port",
                        str(port))
        cid = r.stdout.strip()
        self.addCleanup(self.podman, "rm", "-f", cid, check=False)
        self.assertEqual(wait_healthy(port, 20).body, b"ok\n")
        r = test_kubernetes.http_get(port, "/")
        self.assertEqual(r.status, 200)
        with open(os.path.join(REPO, "www", "index.html"), "rb") as f:
            self.assertEqual(r.body, f.read())
        # the container's process, seen from the host (the image has no ps for podman top)
        pid = self.podman("inspect", "--format", "{{.State.Pid}}", cid).stdout.strip()
        with open("/proc/%s/status" % pid) as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        uid = cf["USER"][-1].split(":")[0]
        self.assertEqual(status["Uid"].split(), [uid] * 4, "runs as the image's user")
        self.assertEqual(status["NoNewPrivs"].strip(), "1")
        self.assertEqual(int(status["CapEff"], 16), 0, "no capabilities")
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            self.assertEqual(f.read().split(b"\0")[0], b"/usr/bin/zerohttpd")
        self.podman("stop", "-t", "15", cid)
        code = self.podman("inspect", "--format", "{{.State.ExitCode}}", cid).stdout.strip()
        logs = self.podman("logs", cid).stdout + self.podman("logs", cid).stderr
        self.assertEqual(code, "0", logs)
        self.assertIn("stopped on SIGTERM", logs)


if __name__ == "__main__":
    unittest.main()
