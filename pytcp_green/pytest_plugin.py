"""A pytest plugin: run a project's tests with their sockets on the stack, or over both and compare.

Inactive unless asked for (it is registered through the ``pytest11`` entry point):

* ``pytest --pytcp-green`` (or ``=loopback``) patches the test process onto a stack with only its
  loopback interface, so tests that talk to servers on 127.0.0.1 go through our TCP;
  ``--pytcp-green=lab`` attaches the stack to a lab namespace whose kernel is 198.18.0.1;
  ``--pytcp-green-impair SPEC`` impairs the lab link.
* ``pytest --pytcp-green-compare [...]`` runs the suite twice in child processes, over the kernel
  and over the stack (``--pytcp-green`` chooses loopback or lab), and lists the tests whose
  outcome differs; the stack run's capture of each of them is kept.
* Fixtures: ``pytcp_stack`` (the running :class:`~pytcp_green.host.Host`: counters, sockets,
  sysctls), ``pytcp_faults`` (``host.faults``, cleared after the test), ``pytcp_lab`` (the lab),
  ``pytcp_pcap`` (where the test's capture is kept if it fails).

Under pytest-xdist each worker patches itself onto a stack (and a lab) of its own; the
controller does not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

MODES = ("loopback", "lab")
_HOST = pytest.StashKey[Any]()
_PCAP = pytest.StashKey[Path]()
_KEEP = pytest.StashKey[Path]()
_STARTED = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pytcp-green", "run the tests' sockets on the pytcp_green stack")
    group.addoption("--pytcp-green", nargs="?", const="loopback", default=None, choices=MODES,
                    metavar="loopback|lab", help="patch the tests onto a stack: its loopback only (default) "
                                                 "or a lab namespace whose kernel is 198.18.0.1 (needs root)")
    group.addoption("--pytcp-green-impair", metavar="SPEC", default=None,
                    help="impair the lab link, e.g. loss=2%%,seed=1 (implies --pytcp-green=lab)")
    group.addoption("--pytcp-green-compare", action="store_true", default=False,
                    help="run the suite over the kernel and over the stack; list the tests whose outcome differs")
    group.addoption("--pytcp-green-keep", metavar="DIR", default=None,
                    help="where failing tests' captures (and compare's results) go (default: pytcp-green-results)")
    # Internal, between --pytcp-green-compare and its child runs: where each test's times go.
    group.addoption("--pytcp-green-times", metavar="FILE", default=None, help=argparse.SUPPRESS)


def _mode(config: pytest.Config) -> str | None:
    if config.getoption("pytcp_green_impair"):
        return "lab"
    mode: str | None = config.getoption("pytcp_green")
    return mode


def _is_xdist_controller(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def _keep_dir(config: pytest.Config) -> Path:
    return Path(config.getoption("pytcp_green_keep") or "pytcp-green-results").resolve()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    mode = _mode(config)
    if mode is None or config.getoption("pytcp_green_compare") or _is_xdist_controller(config):
        return
    import pytcp_green

    keep = _keep_dir(config)
    keep.mkdir(parents=True, exist_ok=True)
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    pcap = keep / f"session-{worker}-{os.getpid()}.pcap"
    options: dict[str, Any] = {"pcap": str(pcap)}
    if mode == "lab":
        options["lab"] = True
        if config.getoption("pytcp_green_impair"):
            options["impair"] = config.getoption("pytcp_green_impair")
    config.stash[_HOST] = pytcp_green.patch_all(**options)
    config.stash[_PCAP] = pcap
    config.stash[_KEEP] = keep


def pytest_unconfigure(config: pytest.Config) -> None:
    host = config.stash.get(_HOST, None)
    if host is None:
        return
    host.close()
    del config.stash[_HOST]
    if not config.getoption("pytcp_green_times"):
        config.stash[_PCAP].unlink(missing_ok=True)  # the failing tests' parts were cut out of it already


def pytest_report_header(config: pytest.Config) -> str | None:
    host = config.stash.get(_HOST, None)
    if host is None:
        return None
    where = f"lab {host.lab.netns}" if host.lab else "loopback only"
    return f"pytcp-green: sockets on the stack ({where}); failing tests' captures in {config.stash[_KEEP]}"


# -- per-test capture ---------------------------------------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    item.stash[_STARTED] = time.time()
    yield
    times = item.config.getoption("pytcp_green_times")
    if times:
        pcap = item.config.stash.get(_PCAP, None)
        line = {"test": junit_name(item.nodeid), "start": item.stash[_STARTED], "end": time.time(),
                "pcap": str(pcap) if pcap is not None else None}
        with open(times, "a", encoding="utf-8") as f:  # one short append per test: xdist workers share it
            f.write(json.dumps(line) + "\n")


def junit_name(nodeid: str) -> str:
    """``tests/test_a.py::Class::test_b`` as the JUnit report names it: ``tests.test_a.Class::test_b``."""
    path, *rest = nodeid.split("::")
    parts = [path.removesuffix(".py").replace("/", "."), *rest[:-1]]
    return ".".join(parts) + "::" + (rest[-1] if rest else "")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    host = item.config.stash.get(_HOST, None)
    if (host is None or report.when != "call" or not report.failed or _STARTED not in item.stash
            or item.config.getoption("pytcp_green_times")):  # compare cuts both runs' captures itself
        return
    path = _test_pcap(item)
    if _cut_capture(host, item.config.stash[_PCAP], item.stash[_STARTED], time.time(), path):
        report.sections.append(("pytcp-green", f"capture of this test: {path}"))


def _test_pcap(item: pytest.Item) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in item.nodeid)
    return item.config.stash[_KEEP] / f"{safe}.pcap"


def _cut_capture(host: Any, session: Path, start: float, end: float, out: Path) -> bool:
    """The frames the stack captured between ``start`` and ``end``, into ``out``."""
    if host.pcap is None:
        return False
    host.pcap.flush()
    return _cut(session, start, end, out)


def _cut(source: Path, start: float, end: float, out: Path) -> bool:
    """Copy the frames of ``source`` between ``start`` and ``end`` to ``out`` (editcap, from Wireshark)."""
    if shutil.which("editcap") is None:
        return False

    def stamp(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1e6):06d}"

    done = subprocess.run(["editcap", "-A", stamp(start - 0.001), "-B", stamp(end + 0.001), str(source), str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    return done.returncode == 0


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture
def pytcp_stack(request: pytest.FixtureRequest) -> Any:
    """The stack the tests run on (a :class:`~pytcp_green.host.Host`); skips without --pytcp-green."""
    host = request.config.stash.get(_HOST, None)
    if host is None:
        pytest.skip("runs on the pytcp_green stack: pytest --pytcp-green[=lab]")
    return host


@pytest.fixture
def pytcp_lab(pytcp_stack: Any) -> Any:
    """The lab namespace the stack is attached to (kernel side 198.18.0.1); skips unless --pytcp-green=lab."""
    if pytcp_stack.lab is None:
        pytest.skip("needs the lab: pytest --pytcp-green=lab")
    return pytcp_stack.lab


@pytest.fixture
def pytcp_faults(pytcp_lab: Any, pytcp_stack: Any) -> Iterator[Any]:
    """``host.faults`` on the lab link; every fault the test added is removed after it."""
    faults = pytcp_stack.faults
    yield faults
    faults.clear()


@pytest.fixture
def pytcp_pcap(request: pytest.FixtureRequest, pytcp_stack: Any) -> Path:
    """Where this test's capture is written if it fails."""
    return _test_pcap(request.node)


# -- compare ------------------------------------------------------------------------------------------
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("pytcp_green_compare"):
        return None
    keep = _keep_dir(config)
    keep.mkdir(parents=True, exist_ok=True)
    args = [a for a in config.invocation_params.args if a != "--pytcp-green-compare"]
    mode = _mode(config) or "loopback"
    outcomes, times = {}, {}
    for over, extra in (("kernel", []), ("stack", [f"--pytcp-green={mode}", f"--pytcp-green-keep={keep / 'stack'}"])):
        junit, times_file = keep / f"{over}.xml", keep / f"{over}-times.jsonl"
        times_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "pytest", *args, *extra, f"--junitxml={junit}",
                f"--pytcp-green-times={times_file}", "-p", "no:cacheprovider"]
        print(f"pytcp-green compare: the suite over the {over}: {' '.join(argv[3:])}", flush=True)
        with _kernel_capture(keep / "kernel-session.pcap", over == "kernel" and mode == "loopback") as prefix:
            done = subprocess.run([*prefix, *argv], cwd=config.invocation_params.dir, check=False)
        if not junit.exists():
            print(f"pytcp-green compare: the {over} run wrote no results (exit {done.returncode})", file=sys.stderr)
            return 2
        outcomes[over], times[over] = read_junit(junit), read_times(times_file)
    differing = report_differences(outcomes["kernel"], outcomes["stack"])
    kept = keep_captures(differing, times, keep / "kernel-session.pcap", keep)
    if kept:
        print(f"captures of the differing tests (kernel and stack): {len(kept)} files in {keep}")
    return 1 if differing else 0


@contextlib.contextmanager
def _kernel_capture(pcap: Path, wanted: bool) -> Iterator[list[str]]:
    """With ``wanted`` (and root, ip, tshark), a network namespace of its own whose loopback tshark
    captures, and the command prefix that runs the kernel run in it; else no capture, no prefix.
    The namespace is removed whatever happens."""
    if not (wanted and os.geteuid() == 0 and shutil.which("ip") and shutil.which("tshark")):
        yield []
        return
    pcap.unlink(missing_ok=True)
    ns = f"pgc-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    tshark: subprocess.Popen[str] | None = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True)
        tshark = subprocess.Popen(["ip", "netns", "exec", ns, "tshark", "-q", "-i", "lo", "-w", str(pcap)],
                                  stderr=subprocess.PIPE, text=True)
        assert tshark.stderr is not None
        for line in tshark.stderr:  # it says so once it captures
            if "Capturing on" in line:
                break
        yield ["ip", "netns", "exec", ns]
    finally:
        if tshark is not None:
            tshark.terminate()
            tshark.wait(timeout=30)
            if tshark.stderr is not None:
                tshark.stderr.close()
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def read_times(path: Path) -> dict[str, dict[str, Any]]:
    """test -> {start, end, pcap} as a child run wrote them (nothing when it wrote none)."""
    if not path.exists():
        return {}
    entries = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {entry["test"]: entry for entry in entries}


def keep_captures(differing: list[str], times: dict[str, dict[str, dict[str, Any]]], kernel_pcap: Path,
                  keep: Path) -> list[Path]:
    """Cut each differing test's part of both runs' captures into ``keep``; the sessions' go."""
    kept = []
    for name in differing:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        for over, session in (("kernel", str(kernel_pcap)), ("stack", None)):
            entry = times[over].get(name)
            source = Path(session or (entry or {}).get("pcap") or "")
            out = keep / f"{safe}.{over}.pcap"
            if entry is not None and source.is_file() and _cut(source, entry["start"], entry["end"], out):
                kept.append(out)
    for over in ("kernel", "stack"):
        for entry in times[over].values():
            if entry.get("pcap"):
                Path(entry["pcap"]).unlink(missing_ok=True)
    kernel_pcap.unlink(missing_ok=True)
    return kept


def read_junit(path: Path) -> dict[str, str]:
    """test id -> passed/failed/error/skipped, from a JUnit XML report."""
    results = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        results[name] = next((word for tag, word in (("failure", "failed"), ("error", "error"),
                                                     ("skipped", "skipped")) if tag in tags), "passed")
    return results


def report_differences(kernel: dict[str, str], stack: dict[str, str]) -> list[str]:
    differing = sorted(name for name in kernel.keys() | stack.keys() if kernel.get(name) != stack.get(name))
    same = len(kernel.keys() & stack.keys()) - len([n for n in differing if n in kernel and n in stack])
    print(f"\npytcp-green compare: {same} tests with the same outcome, {len(differing)} differ")
    for name in differing:
        print(f"  {name}: kernel {kernel.get(name, 'not run')}, stack {stack.get(name, 'not run')}")
    return differing
