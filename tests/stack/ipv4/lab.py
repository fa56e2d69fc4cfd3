"""Lab helpers for the IPv4 tests: a Host in its own lab, kernel commands run off the hub, tshark checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent

from pytcp_green.cli import in_thread
from pytcp_green.host import Host


def run(host: Host, argv: list[str], timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command in the host's lab namespace in a worker thread, so the stack keeps answering."""
    assert host.lab is not None
    result: subprocess.CompletedProcess[str] = in_thread(host.lab.run, argv, timeout=timeout, **kwargs)
    return result


def python(host: Host, code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run(host, [sys.executable, "-c", code, *args], timeout=timeout)


def poll_external(predicate: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
    """Re-check ``predicate()`` every ``poll`` seconds while the hub runs; False after ``timeout``.

    Only for state outside this process that nothing signals (a daemon's lease file): whatever the
    stack itself changes is waited for with Runtime.wait_until, which wakes on every core entry.
    """
    with gevent.Timeout(timeout, False):
        while not predicate():
            gevent.sleep(poll)
        return True
    return False


def tshark_problems(pcap: Path | str) -> str:
    """Frames tshark calls malformed or flags as errors (checksums verified); '' when clean."""
    if shutil.which("tshark") is None:
        return ""
    prefs = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"]
    bad = subprocess.run(
        ["tshark", "-r", str(pcap), *prefs, "-Y", "_ws.malformed || _ws.expert.severity >= error"],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 0, bad.stderr
    return bad.stdout.strip()
