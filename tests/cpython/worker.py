"""Child process: run one of CPython's own test modules, optionally under ``pytcp_green.patch_all()``.

    python tests/cpython/worker.py MODULE --events FILE [--patched] [--exclude FILE] [--test-timeout S]

``MODULE`` is a module of the interpreter's ``test`` package (``test_socket``…).  One JSON object
per line goes to ``--events`` as the run proceeds (``start`` before a test, ``result`` after it), so
the parent still knows what finished, and which test was running, if this process has to be killed.
Tests whose ids (``test_socket.Class.test_x``, or a ``test_socket.Class`` prefix) are listed in the
``--exclude`` JSON file are not run.

Time bounds: with ``--patched`` a ``gevent.Timeout`` fires in the test after ``--test-timeout``
seconds (the test then fails as an error and the run goes on); in both modes faulthandler ends the
process if a test, or the fixtures between tests, take much longer, and the parent resumes after it.
Network resources (``support.requires('network')``, 'urlfetch', 'cpu'…) are disabled, as regrtest
does without ``-u``: only loopback traffic.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import json
import sys
import time
import traceback
import unittest
from collections.abc import Iterator
from typing import Any, TextIO

BACKSTOP_EXTRA = 20.0  # faulthandler's exit comes this long after the per-test timeout


def _flatten(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for item in suite:
            yield from _flatten(item)
    else:
        yield suite


def short_id(test: Any) -> str:
    """``test.test_socket.Class.test_x`` -> ``test_socket.Class.test_x``."""
    ident = str(test.id())
    return ident[len("test."):] if ident.startswith("test.") else ident


def excluded(ident: str, patterns: set[str]) -> bool:
    parts = ident.split(".")
    return any(".".join(parts[:n]) in patterns for n in range(1, len(parts) + 1))


class JsonResult(unittest.TestResult):
    """Writes each test's outcome as a JSON line; arms the per-test time bounds."""

    def __init__(self, out: TextIO, test_timeout: float, patched: bool) -> None:
        super().__init__()
        self.out = out
        self.test_timeout = test_timeout
        self.patched = patched
        self.timer: Any = None
        self.outcome: dict[str, tuple[str, str]] = {}
        self.started = 0.0

    def _emit(self, **event: Any) -> None:
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()

    def _arm_backstop(self) -> None:
        faulthandler.dump_traceback_later(self.test_timeout + BACKSTOP_EXTRA, exit=True)

    def startTest(self, test: Any) -> None:
        super().startTest(test)
        ident = short_id(test)
        self.outcome[ident] = ("pass", "")
        self.started = time.monotonic()
        self._emit(event="start", id=ident)
        self._arm_backstop()
        if self.patched:
            import gevent

            self.timer = gevent.Timeout(self.test_timeout)
            self.timer.start()

    def stopTest(self, test: Any) -> None:
        if self.timer is not None:
            self.timer.close()
            self.timer = None
        ident = short_id(test)
        outcome, detail = self.outcome.pop(ident, ("pass", ""))
        self._emit(event="result", id=ident, outcome=outcome, detail=detail[-3000:],
                   seconds=round(time.monotonic() - self.started, 3))
        self._arm_backstop()  # the next class's fixtures are bounded too
        super().stopTest(test)

    def _set(self, test: Any, outcome: str, detail: str) -> None:
        ident = short_id(test)
        if self.outcome.get(ident, ("pass", ""))[0] in ("pass", "skip", "xfail"):
            self.outcome[ident] = (outcome, detail)

    def _describe(self, err: Any) -> tuple[str, str]:
        exc_type, exc, tb = err
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        timer = self.timer
        if timer is not None and exc is timer:
            return "timeout", f"no result after {self.test_timeout:g} s (gevent.Timeout)\n{text}"
        return "", text

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        kind, text = self._describe(err)
        if isinstance(test, unittest.TestCase):
            self._set(test, kind or "error", text)
        else:  # a fixture (setUpClass / setUpModule) failed: _ErrorHolder
            self._emit(event="fixture_error", id=str(test.description), detail=text[-3000:])

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        kind, text = self._describe(err)
        self._set(test, kind or "fail", text)

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind, text = self._describe(err)
            failed = issubclass(err[0], test.failureException)
            self._set(test, kind or ("fail" if failed else "error"), f"{subtest.id()}\n{text}")

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        if isinstance(test, unittest.TestCase):
            self._set(test, "skip", reason)
        else:
            self._emit(event="fixture_skip", id=str(getattr(test, "description", test)), detail=reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._set(test, "xfail", "")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._set(test, "upass", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("module")
    parser.add_argument("--events", required=True)
    parser.add_argument("--patched", action="store_true")
    parser.add_argument("--exclude")
    parser.add_argument("--test-timeout", type=float, default=30.0)
    parser.add_argument("--use", action="append", default=[], help="a test.support resource to enable")
    args = parser.parse_args(argv)

    if args.patched:
        import pytcp_green

        pytcp_green.patch_all()

    from test import support

    support.use_resources = list(args.use)  # as regrtest without -u: no 'network', 'urlfetch', 'cpu'…
    support.verbose = False

    patterns: set[str] = set()
    if args.exclude:
        with open(args.exclude) as f:
            patterns = set(json.load(f))

    with open(args.events, "a", buffering=1) as out:
        result = JsonResult(out, args.test_timeout, args.patched)
        faulthandler.enable(file=sys.stderr)
        try:
            module = importlib.import_module(f"test.{args.module}")
            loaded = unittest.defaultTestLoader.loadTestsFromModule(module)
        except BaseException:
            result._emit(event="import_error", id=args.module, detail=traceback.format_exc()[-3000:])
            return 2
        tests = [t for t in _flatten(loaded) if not excluded(short_id(t), patterns)]
        result._emit(event="loaded", count=len(tests))
        unittest.TestSuite(tests).run(result)
        faulthandler.cancel_dump_traceback_later()
        result._emit(event="done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
