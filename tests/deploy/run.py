#!/usr/bin/python3
"""make test-deploy: every tests/deploy/test_*.py, with each test's figures on stderr and a
closing 'N passed, N failed' line. Exit status 1 if any failed or none ran.

    /usr/bin/python3 tests/deploy/run.py [-k PATTERN]

/usr/bin/python3: test_kubernetes.py needs Debian's python3-yaml.
"""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


# zerohttpd refuses to serve as root without --user unless told: the suites run as root in
# CI and start zerohttpd in many ways, so they tell it here once
os.environ.setdefault("ZEROHTTPD_ALLOW_ROOT", "1")


def main(argv):
    os.chdir(os.path.dirname(os.path.dirname(HERE)))   # repo root: ZH_BIN is relative to it
    loader = unittest.TestLoader()
    if len(argv) > 2 and argv[1] == "-k":
        loader.testNamePatterns = ["*%s*" % argv[2]]
    suite = loader.discover(start_dir=HERE, pattern="test_*.py", top_level_dir=HERE)
    t0 = time.monotonic()
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    sys.stdout.write("\n(%d tests in %.1fs)\n%s\n" % (result.testsRun, time.monotonic() - t0,
                                                       line))
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
