"""Session-wide guards: skip ``lab`` tests with the reason when no lab is possible, and fail the
session if it leaves network namespaces, TUN/TAP devices or child processes behind.

Kept generic on purpose; fixtures for one area belong in that area's own conftest.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

_NETNS_DIR = "/run/netns"  # what `ip netns list` reads
_SYS_NET = "/sys/class/net"  # what `ip tuntap show` reads (a TUN/TAP has a tun_flags file)
_LAB_NAME = re.compile(r"^(?:pg-|pgt)(\d+)-\d+$")  # lab namespaces pg-<pid>-<n>, lab devices pgt<pid>-<n>
_GRACE_SECONDS = 2.0  # leftovers that are already on their way out get this long to go


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lab") is not None:
        from pytcp_green.lab import lab_unavailable_reason

        reason = lab_unavailable_reason()
        if reason is not None:
            pytest.skip(reason)


def _namespaces() -> set[str]:
    try:
        return set(os.listdir(_NETNS_DIR))
    except OSError:
        return set()


def _tun_devices() -> set[str]:
    try:
        names = os.listdir(_SYS_NET)
    except OSError:
        return set()
    return {name for name in names if os.path.exists(os.path.join(_SYS_NET, name, "tun_flags"))}


def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, start time, command name) for every process we can see."""
    table: dict[int, tuple[int, str, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                raw = stat.read()
        except OSError:
            continue
        comm = raw[raw.find("(") + 1 : raw.rfind(")")]
        fields = raw[raw.rfind(")") + 2 :].split()
        # fields[0] is the state, [1] the ppid, [19] the start time (field 22 of proc(5)).
        table[int(entry)] = (int(fields[1]), fields[19], comm)
    return table


def _descendants() -> set[tuple[int, str, str]]:
    """(pid, start time, name) of every process below this one, zombies included (unreaped is leaked)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[tuple[int, str, str]] = set()
    todo = list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        _, start, comm = table[pid]
        found.add((pid, start, comm))
        todo.extend(children.get(pid, []))
    return found


def _belongs_to_another_live_process(name: str) -> bool:
    """A lab resource named after a live process other than this one: a concurrent test session's."""
    match = _LAB_NAME.match(name)
    if match is None:
        return False
    pid = int(match.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return pid not in {p for p, _, _ in _descendants()}


def _leftovers(before: tuple[set[str], set[str], set[tuple[int, str, str]]]) -> list[str]:
    netns_before, tun_before, procs_before = before
    problems = [
        f"network namespace {name}"
        for name in sorted(_namespaces() - netns_before)
        if not _belongs_to_another_live_process(name)
    ]
    problems += [
        f"TUN/TAP device {name}"
        for name in sorted(_tun_devices() - tun_before)
        if not _belongs_to_another_live_process(name)
    ]
    problems += [f"process {pid} ({comm})" for pid, _, comm in sorted(_descendants() - procs_before)]
    return problems


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_namespaces_devices_or_processes() -> Iterator[None]:
    before = (_namespaces(), _tun_devices(), _descendants())
    yield
    deadline = time.monotonic() + _GRACE_SECONDS
    problems = _leftovers(before)
    while problems and time.monotonic() < deadline:
        time.sleep(0.05)  # a bounded grace for asynchronous teardown, not synchronisation
        problems = _leftovers(before)
    if problems:
        pytest.fail("the test session left behind: " + ", ".join(problems), pytrace=False)
