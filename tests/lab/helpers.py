"""The helpers of every test that runs against a lab (the Linux kernel in a network namespace).

Why such tests skip here (:func:`lab_skip_reason`), kernel-side commands run off the hub
(:func:`run`, :func:`python`, a UDP peer, :class:`KernelPeer`), a wait for state nothing
signals, and tshark's verdict on a capture.  Frames built by hand for the device tests are
in :mod:`.frames`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent

from pytcp_green.cli import in_thread
from pytcp_green.host import Host
from pytcp_green.link.impaired import ImpairedDevice
from pytcp_green.stack.sockbase import AF_INET, AF_INET6

if TYPE_CHECKING:
    from pytcp_green.lab import Lab

def lab_skip_reason() -> str | None:
    """Why lab tests cannot run here, or None."""
    from pytcp_green.lab import lab_unavailable_reason

    return lab_unavailable_reason()


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
    prefs = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
             # RTCP's heuristic guesses at random UDP payloads (the lab's test datagrams) and then calls
             # them malformed: a guess about our payload, not a fault in our frames.
             "--disable-heuristic", "rtcp_udp",
             # No TCP reassembly for the dissectors above it: a retransmission cut at other boundaries
             # than the original (legal, and what SACK recovery does) reads as an "overlap" error there.
             "-o", "tcp.desegment_tcp_streams:FALSE"]
    bad = subprocess.run(
        ["tshark", "-r", str(pcap), *prefs, "-Y", "_ws.malformed || _ws.expert.severity >= error"],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 0, bad.stderr
    return bad.stdout.strip()


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
        return run(self.host, argv, timeout)

    def python(self, code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return python(self.host, code, *args, timeout=timeout)


def shim(host: Host) -> ImpairedDevice:
    """The impairment (``--impair``) wrapping the host's link device; its ``stats`` add both ways up."""
    assert host.link is not None
    device = host.link.device
    assert isinstance(device, ImpairedDevice)
    return device
