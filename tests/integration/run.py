#!/usr/bin/env python3
"""Runs every tests/integration/test_*.py and prints one line per test, then
`N passed, M failed` (`, K skipped` when any were skipped). Exit status 1 on any failure.

    ZH_BIN=build/zerohttpd ZH_SHIM=build/tests/malloc_count.so python3 tests/integration/run.py [-k PATTERN]...
"""
import os
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class Result(unittest.TestResult):
    def __init__(self, stream):
        super().__init__()
        self.out = stream
        self.n_pass = self.n_fail = self.n_skip = 0
        self._failed_ids = set()
        self._t0 = 0.0
        self.reports = []

    def _line(self, test, word, extra=""):
        dt = time.monotonic() - self._t0
        name = test.id() if hasattr(test, "id") else str(test)
        self.out.write("%-5s %-80s %6.2fs%s\n" % (word, name, dt, extra))
        self.out.flush()

    def startTest(self, test):
        super().startTest(test)
        self._t0 = time.monotonic()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.n_pass += 1
        self._line(test, "PASS")

    def _bad(self, test, err, word):
        # one failed test counts once, however many failures (body, subtests, tearDown)
        key = getattr(test, "test_case", test)
        key = key.id() if hasattr(key, "id") else str(key)
        if key not in self._failed_ids:
            self._failed_ids.add(key)
            self.n_fail += 1
        self._line(test, word)
        text = "".join(traceback.format_exception(*err))
        self.reports.append((word, str(test), text))
        self.out.write("      " + text.strip().splitlines()[-1][:300] + "\n")
        self.out.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._bad(test, err, "FAIL")

    def addError(self, test, err):
        super().addError(test, err)
        self._bad(test, err, "ERROR")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.n_skip += 1
        self._line(test, "SKIP", "  (%s)" % reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.n_pass += 1
        self._line(test, "XFAIL")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._failed_ids.add(test.id())
        self.n_fail += 1
        self._line(test, "UPASS")
        self.reports.append(("UPASS", str(test), "unexpected success"))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            # counted once per subtest failure; the parent test is then not a success
            word = "FAIL" if issubclass(err[0], test.failureException) else "ERROR"
            self._bad(subtest, err, word)


# zerohttpd refuses to serve as root without --user unless told: the suites run as root in
# CI and start zerohttpd in many ways, so they tell it here once
os.environ.setdefault("ZEROHTTPD_ALLOW_ROOT", "1")


def main(argv):
    # -k PATTERN, repeatable: only the tests whose module.Class.method holds one of them
    patterns = [argv[i + 1] for i in range(1, len(argv) - 1) if argv[i] == "-k"]
    os.chdir(os.path.dirname(os.path.dirname(HERE)))   # repo root: ZH_BIN is relative to it
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = ["*%s*" % p for p in patterns]
    suite = loader.discover(start_dir=HERE, pattern="test_*.py", top_level_dir=HERE)
    result = Result(sys.stdout)
    t0 = time.monotonic()
    suite.run(result)
    elapsed = time.monotonic() - t0
    if result.reports:
        sys.stdout.write("\n" + "=" * 78 + "\n")
        for word, name, text in result.reports:
            sys.stdout.write("%s: %s\n%s\n%s\n" % (word, name, text.rstrip(), "-" * 78))
    sys.stdout.write("\n(%d tests in %.1fs)\n" % (result.testsRun, elapsed))
    summary = "%d passed, %d failed" % (result.n_pass, result.n_fail)
    if result.n_skip:
        summary += ", %d skipped" % result.n_skip
    sys.stdout.write(summary + "\n")
    sys.stdout.flush()
    return 1 if result.n_fail or (result.testsRun == 0) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
