"""Shared pieces of the benchmarks: a kernel<->kernel baseline over veth, run in the same session.

Every figure the benchmarks print is a ratio against the Linux kernel measured in the same run
on the same machine, because absolute numbers on a shared 2-core box mean little.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

VETH_A, VETH_B = "198.19.0.1", "198.19.0.2"

# The opening of every kernel-side TCP server program: ``srv`` listens on (argv[1], argv[2]).
LISTENER = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(4096)
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextmanager
def veth_namespaces(mtu: int = 1500) -> Iterator[tuple[str, str]]:
    """Two namespaces joined by a veth pair (198.19.0.1 <-> 198.19.0.2); removed on exit."""
    tag = f"pgb-{os.getpid()}"
    ns_a, ns_b = f"{tag}-a", f"{tag}-b"
    try:
        ip("netns", "add", ns_a)
        ip("netns", "add", ns_b)
        ip("link", "add", "pgbv0", "netns", ns_a, "type", "veth", "peer", "name", "pgbv1", "netns", ns_b)
        for ns, dev, addr in ((ns_a, "pgbv0", VETH_A), (ns_b, "pgbv1", VETH_B)):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "mtu", str(mtu), "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def in_netns(ns: str, code: str, *args: str, **kw: object) -> subprocess.Popen[str]:
    """Start ``python -c code args`` inside namespace ``ns``."""
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                            stdout=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]


def ratio(ours: float, kernel: float) -> str:
    return f"{ours / kernel:.2f}x" if kernel else "n/a"


@dataclasses.dataclass
class Row:
    """One line of the benchmark table: our figure beside the kernel's from the same run.
    ``higher`` says which way is better (False for times and memory), so the ratio reads
    "how many times the kernel's figure" either way; ``error`` is why a row has no figures."""

    name: str
    unit: str
    ours: float = 0.0
    kernel: float = 0.0
    baseline: str = ""
    higher: bool = True
    error: str = ""

    def figures(self) -> tuple[str, str]:
        """(ours, kernel) as the table shows them: thousands grouped, small values to 3 digits."""
        def one(value: float) -> str:
            return f"{value:,.0f} {self.unit}" if value >= 100 else f"{value:.3g} {self.unit}"
        return one(self.ours), one(self.kernel)

    @property
    def ratio(self) -> str:
        if self.error:
            return ""
        return ratio(self.ours, self.kernel) if self.higher else ratio(self.kernel, self.ours)
