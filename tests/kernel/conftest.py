"""A stack attached to a lab namespace whose far side is the Linux kernel, shared by a test module."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import gevent
import pytest

from pytcp_green.cli import in_thread
from pytcp_green.green.services import start_services
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.sockbase import AF_INET, AF_INET6

if TYPE_CHECKING:
    from pytcp_green.lab import Lab


# A kernel-side UDP peer bound to argv[1] (IPv4 or IPv6) that answers argv[2] datagrams, each with its
# SHA-256 and its bytes reversed, giving up after argv[3] seconds without one; it prints its port first.
KERNEL_UDP_PEER = """
import hashlib, socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
s.settimeout(float(sys.argv[3]))
print(s.getsockname()[1], flush=True)
for _ in range(int(sys.argv[2])):
    data, peer = s.recvfrom(65535)
    s.sendto(hashlib.sha256(data).digest() + data[::-1], peer)
"""


def start_kernel_udp_peer(lab: Lab, address: str, rounds: int, timeout: float) -> tuple[subprocess.Popen[str], int]:
    """Start :data:`KERNEL_UDP_PEER` in ``lab`` on ``address``; the process and the port it listens on."""
    proc: subprocess.Popen[str] = lab.popen([sys.executable, "-c", KERNEL_UDP_PEER, address, str(rounds),
                                             f"{timeout:g}"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(in_thread(proc.stdout.readline))
    return proc, port


def lab_skip_reason() -> str | None:
    from pytcp_green.lab import lab_unavailable_reason

    return lab_unavailable_reason()


class KernelPeer:
    """The running stack plus helpers that run commands on the kernel side without blocking the hub."""

    def __init__(self, host: Host, pcap: Path, family: int = AF_INET) -> None:
        self.host = host
        self.pcap = pcap
        self.family = family  # which addresses stack_ip/kernel_ip are: the same helpers serve IPv4 and IPv6
        assert host.lab is not None
        self.lab = host.lab
        if family == AF_INET6:
            assert host.stack_ip6 is not None and host.lab.kernel_ip6 is not None
            self.stack_ip = str(host.stack_ip6)
            self.kernel_ip = str(host.lab.kernel_ip6.ip)
        else:
            assert host.stack_ip4 is not None
            self.stack_ip = str(host.stack_ip4.ip)
            self.kernel_ip = str(host.lab.kernel_ip4.ip)

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a kernel-side command to completion in a worker thread, so the stack keeps answering."""
        result: subprocess.CompletedProcess[str] = in_thread(self.lab.run, argv, timeout=timeout)
        return result

    def python(self, code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-c", code, *args], timeout=timeout)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelPeer]:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    pcap = tmp_path_factory.mktemp("pcap") / "stack.pcap"
    with Host(StackOptions(lab=True, pcap=str(pcap))) as host:
        services = start_services(host.runtime)
        gevent.sleep(0)  # let the services bind before the first test talks to them
        try:
            yield KernelPeer(host, pcap)
        finally:
            gevent.killall(services)
