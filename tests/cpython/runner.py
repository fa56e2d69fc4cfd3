"""Run CPython's own networking test modules unpatched and under ``pytcp_green.patch_all()``.

    .venv/bin/python -m tests.cpython.runner [-j 2] [--out DIR] [MODULE ...]

Each module runs in a subprocess (:mod:`tests.cpython.worker`) twice: as the baseline, over the
kernel, and with ``pytcp_green.patch_all()`` applied first, where the stack has only its loopback
interface.  What counts is the tests that pass in the baseline: how many of them still pass
patched.  A test that passes unpatched and not patched is a *regression*; each must be listed in
``known_failures.txt`` with the reason, or :mod:`tests.cpython.test_cpython` fails.

The test modules come from the interpreter's own ``test`` package (never copied here); when a
build ships without it, everything is skipped with that reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KNOWN_FAILURES = HERE / "known_failures.txt"
WORKER = HERE / "worker.py"

MODULES = ("test_socket", "test_httplib", "test_httpservers", "test_urllib2_localnet", "test_socketserver",
           "test_selectors", "test_select", "test_poll", "test_epoll", "test_timeout", "test_ftplib",
           "test_smtplib", "test_poplib", "test_imaplib", "test_wsgiref", "test_urllib2", "test_xmlrpc",
           "test_docxmlrpc", "test_ssl",
           # asyncio's socket-facing modules (its selector event loop over our sockets)
           "test_asyncio.test_sock_lowlevel", "test_asyncio.test_streams", "test_asyncio.test_events",
           "test_asyncio.test_sendfile", "test_asyncio.test_server", "test_asyncio.test_ssl",
           "test_asyncio.test_sslproto")
# gone from 3.12's test package (3.13 for telnetlib)
OPTIONAL_MODULES = ("test_asyncore", "test_asynchat", "test_smtpd", "test_telnetlib")

# test_socketserver and test_timeout declare the 'network' resource at import; test_socketserver only
# ever talks to localhost, test_timeout's internet-bound class is in NOT_RUN.
RESOURCES = {"test_socketserver": ("network",), "test_timeout": ("network",)}

# Run in neither mode: they reach hosts on the internet (the lab's rule: traffic stays in namespaces).
NOT_RUN = {"test_timeout": ("test_timeout.TCPTimeoutTestCase",)}  # www.python.org, pythontest.net

TEST_TIMEOUT = 10.0  # one test, patched: gevent.Timeout (faulthandler ends the process 20 s later)
MODULE_BUDGET = 150.0  # one module run, all restarts included
MAX_RESTARTS = 8

PASSING = ("pass", "xfail")  # xfail: the test's own expectedFailure held


def test_package_missing() -> str | None:
    """Why CPython's test modules cannot run with this interpreter, or None if they can."""
    try:
        spec = importlib.util.find_spec("test.support")
    except ImportError:
        spec = None
    if spec is None:
        return (f"this Python ({sys.executable}, {sys.version.split()[0]}) ships without the stdlib 'test' "
                "package (Debian: install libpython3-testsuite / python3.x-testsuite; pyenv/python.org builds "
                "include it)")
    return None


def available_modules(names: Iterable[str] = MODULES + OPTIONAL_MODULES) -> list[str]:
    return [name for name in names if importlib.util.find_spec(f"test.{name}") is not None]


# -- known failures -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class KnownFailure:
    pattern: str  # a test id, or a class / module prefix
    reason: str
    skip: bool  # "[skip]": not run patched at all (hangs or too slow); counted as failing


_LINE = re.compile(r"^(?P<skip>\[skip\]\s+)?(?P<pattern>[\w.]+)\s+#\s*(?P<reason>\S.*)$")


def load_known_failures(path: Path = KNOWN_FAILURES) -> list[KnownFailure]:
    entries = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{path.name}:{number}: expected 'module.Class.test  # reason', got {raw!r}")
        entries.append(KnownFailure(match["pattern"], match["reason"].strip(), bool(match["skip"])))
    return entries


def matches(ident: str, pattern: str) -> bool:
    return ident == pattern or ident.startswith(pattern + ".")


def known_reason(ident: str, known: Sequence[KnownFailure]) -> KnownFailure | None:
    for entry in known:
        if matches(ident, entry.pattern):
            return entry
    return None


# -- running one module -------------------------------------------------------------------------------
@dataclasses.dataclass
class ModuleRun:
    module: str
    patched: bool
    outcomes: dict[str, str] = dataclasses.field(default_factory=dict)
    details: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)  # import errors, crashes, fixture errors
    seconds: float = 0.0
    restarts: int = 0

    def passed(self) -> set[str]:
        return {ident for ident, outcome in self.outcomes.items() if outcome in PASSING}


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTCP_GREEN_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONWARNINGS", None)
    return env


def run_module(module: str, *, patched: bool, skip: Iterable[str] = (), test_timeout: float = TEST_TIMEOUT,
               budget: float = MODULE_BUDGET) -> ModuleRun:
    """Run ``module`` in a subprocess; a crashed or killed run resumes after the test it was in."""
    run = ModuleRun(module, patched)
    skip = set(skip)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"cpython-{module}-") as tmp:
        events_path = Path(tmp) / "events.jsonl"
        exclude_path = Path(tmp) / "exclude.json"
        while True:
            exclude_path.write_text(json.dumps(sorted(skip | set(NOT_RUN.get(module, ())) | set(run.outcomes))))
            events_path.write_text("")
            remaining = budget - (time.monotonic() - started)
            cmd = [sys.executable, str(WORKER), module, "--events", str(events_path), "--exclude", str(exclude_path),
                   "--test-timeout", str(test_timeout)] + (["--patched"] if patched else [])
            cmd += [f"--use={name}" for name in RESOURCES.get(module, ())]
            with open(Path(tmp) / "stderr.txt", "w+") as stderr:
                try:
                    proc = subprocess.run(cmd, cwd=tmp, env=_child_env(), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=stderr, timeout=max(remaining, 1.0))
                    killed = False
                    code = proc.returncode
                except subprocess.TimeoutExpired:
                    killed = True
                    code = None
                stderr.seek(0)
                stderr_tail = stderr.read()[-2000:]
            current, done, new = _read_events(events_path, run)
            if done:
                break
            if current is not None:
                why = "killed at the module's time budget" if killed else f"process ended (exit {code})"
                run.outcomes[current] = "crash"
                run.details[current] = f"{why} during this test\n{stderr_tail}"
                new += 1
            else:
                run.notes.append(f"run ended outside any test (exit {code}): {stderr_tail[-500:]}")
            if killed or new == 0 or run.restarts >= MAX_RESTARTS:
                run.notes.append(f"gave up after {run.restarts} restarts; tests not run are missing")
                break
            run.restarts += 1
    run.seconds = time.monotonic() - started
    return run


def _read_events(path: Path, run: ModuleRun) -> tuple[str | None, bool, int]:
    """Fold one attempt's events into ``run``: (test running when it stopped, finished?, results added)."""
    current = None
    done = False
    added = 0
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        kind = event["event"]
        if kind == "start":
            current = event["id"]
        elif kind == "result":
            run.outcomes[event["id"]] = event["outcome"]
            if event["detail"]:
                run.details[event["id"]] = event["detail"]
            current = None
            added += 1
        elif kind == "done":
            done = True
        elif kind in ("import_error", "fixture_error"):
            run.notes.append(f"{kind} {event['id']}: {event['detail'][-1500:]}")
            if kind == "import_error":
                done = True
    return current, done, added


# -- comparing ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Comparison:
    module: str
    baseline: ModuleRun
    patched: ModuleRun
    known: list[KnownFailure]

    @property
    def baseline_passes(self) -> set[str]:
        return self.baseline.passed()

    @property
    def still_passing(self) -> set[str]:
        return self.baseline_passes & self.patched.passed()

    @property
    def regressions(self) -> dict[str, str]:
        """Passes unpatched, does not pass patched: test id -> patched outcome ('skip' if not run)."""
        return {ident: self.patched.outcomes.get(ident, "not run")
                for ident in sorted(self.baseline_passes - self.patched.passed())}

    def unexpected(self) -> dict[str, str]:
        return {ident: outcome for ident, outcome in self.regressions.items()
                if known_reason(ident, self.known) is None}

    def stale_known(self) -> list[str]:
        """Known-failure entries of this module whose tests now pass patched (or do not pass unpatched)."""
        stale = []
        regressions = self.regressions
        for entry in self.known:
            if not matches(entry.pattern, self.module) and not entry.pattern.startswith(self.module + "."):
                continue
            if not any(matches(ident, entry.pattern) for ident in regressions):
                stale.append(entry.pattern)
        return stale

    @property
    def ratio(self) -> float:
        base = len(self.baseline_passes)
        return len(self.still_passing) / base if base else 1.0


def compare_all(modules: Sequence[str], *, jobs: int = 2, known: list[KnownFailure] | None = None,
                log: bool = False) -> list[Comparison]:
    known = load_known_failures() if known is None else known
    patched_skips = [entry.pattern for entry in known if entry.skip]
    # Longest first, so the two workers end together.
    order = sorted(((m, p) for m in modules for p in (True, False)),
                   key=lambda mp: (-_COST.get(mp[0], 5), not mp[1]))

    def one(item: tuple[str, bool]) -> ModuleRun:
        module, patched = item
        run = run_module(module, patched=patched, skip=patched_skips if patched else ())
        if log:
            print(f"  {module:24} {'patched' if patched else 'baseline':8} {run.seconds:6.1f} s, "
                  f"{len(run.passed())} passing, {run.restarts} restarts", file=sys.stderr, flush=True)
        return run

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        runs = dict(zip(order, pool.map(one, order), strict=True))
    return [Comparison(m, runs[(m, False)], runs[(m, True)], known) for m in modules]


# Rough seconds per module (baseline + patched) on a small CI machine, for scheduling only.
_COST = {"test_socket": 60, "test_ssl": 40, "test_httpservers": 20, "test_selectors": 15, "test_xmlrpc": 15,
         "test_urllib2_localnet": 10, "test_socketserver": 10, "test_ftplib": 10, "test_smtplib": 10,
         "test_httplib": 10, "test_asyncore": 8}


# -- reporting ----------------------------------------------------------------------------------------
def summary_table(comparisons: Sequence[Comparison]) -> str:
    lines = ["| module | baseline passes | still passing patched | ratio | known failures |",
             "|---|---:|---:|---:|---:|"]
    total_base = total_kept = total_known = 0
    for c in comparisons:
        base, kept = len(c.baseline_passes), len(c.still_passing)
        known = len(c.regressions) - len(c.unexpected())
        total_base, total_kept, total_known = total_base + base, total_kept + kept, total_known + known
        lines.append(f"| {c.module} | {base} | {kept} | {c.ratio:.1%} | {known} |")
    ratio = total_kept / total_base if total_base else 1.0
    lines.append(f"| **total** | {total_base} | {total_kept} | {ratio:.1%} | {total_known} |")
    return "\n".join(lines)


def readme_paragraph(comparisons: Sequence[Comparison]) -> str:
    base = sum(len(c.baseline_passes) for c in comparisons)
    kept = sum(len(c.still_passing) for c in comparisons)
    names = ", ".join(c.module for c in comparisons)
    ratio = kept / base if base else 1.0
    return (f"CPython's own networking tests run over the stack: `tests/cpython/` runs {names} from "
            f"Python {sys.version.split()[0]}'s `test` package twice, once over the kernel and once under "
            f"`pytcp_green.patch_all()` with only the stack's loopback interface. Of the {base} tests that pass "
            f"over the kernel, {kept} ({ratio:.1%}) still pass over pytcp_green (gevent's own patching is said to "
            f"keep about 97%). Every other one is listed in `tests/cpython/known_failures.txt` with the reason, "
            f"and CI fails on any failure not on that list.")


def write_report(comparisons: Sequence[Comparison], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(summary_table(comparisons) + "\n\n" + readme_paragraph(comparisons) + "\n")
    detail = {}
    for c in comparisons:
        detail[c.module] = {
            "baseline_seconds": round(c.baseline.seconds, 1), "patched_seconds": round(c.patched.seconds, 1),
            "baseline_passes": len(c.baseline_passes), "still_passing": len(c.still_passing),
            "regressions": {i: {"outcome": o, "known": (k.reason if (k := known_reason(i, c.known)) else None),
                                "detail": c.patched.details.get(i, "")}
                            for i, o in c.regressions.items()},
            "notes": {"baseline": c.baseline.notes, "patched": c.patched.notes},
            "ended_in": {"baseline": sorted(i for i, o in c.baseline.outcomes.items() if o == "crash"),
                         "patched": sorted(i for i, o in c.patched.outcomes.items() if o == "crash")},
            "stale_known": c.stale_known(),
        }
    (out / "results.json").write_text(json.dumps(detail, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("build/cpython-tests"))
    args = parser.parse_args(argv)
    missing = test_package_missing()
    if missing:
        print(f"skipped: {missing}")
        return 0
    modules = available_modules(args.modules or (MODULES + OPTIONAL_MODULES))
    started = time.monotonic()
    comparisons = compare_all(modules, jobs=args.jobs, log=True)
    write_report(comparisons, args.out)
    print(summary_table(comparisons))
    print()
    print(readme_paragraph(comparisons))
    unexpected = {c.module: c.unexpected() for c in comparisons if c.unexpected()}
    for items in unexpected.values():
        for ident, outcome in items.items():
            print(f"UNEXPECTED {outcome}: {ident}")
    print(f"\n{time.monotonic() - started:.0f} s; details in {args.out / 'results.json'}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
