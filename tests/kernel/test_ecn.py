"""ECN (RFC 3168) against the Linux kernel, through the impairment shim's ``ecn=P%`` CE marks.

Both roles: the stack connecting (``net.ipv4.tcp_ecn=1`` here) to a kernel that accepts (its default
2, and 1), and a kernel connecting with ``tcp_ecn=1`` to the stack's default (2, accept).  The shim
marks CE on ECN-capable packets both ways; each receiver must answer with ECE and each sender with CWR,
seen in the capture (tshark's ``tcp.flags.ece``/``tcp.flags.cwr``/``ip.dsfield.ecn``) and in the
counters, with the data hashed intact.  With ``tcp_ecn=0`` on the stack nothing is negotiated, nothing
sent is ECT and the shim marks nothing: the same checks would fail.

Accurate ECN (RFC 9768) cannot be tried here: this kernel (6.18.44-fc) has ``net.ipv4.tcp_ecn_option``
(2) but refuses ``tcp_ecn=3`` (and 4, 5) with EINVAL.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from lab.helpers import KernelPeer, lab_skip_reason, shim

from kernel.test_tcp import bulk, fresh_host
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")]

NBYTES = 2_000_000
IMPAIR = "ecn=5%,seed=1"


def tshark_count(kernel: KernelPeer, display_filter: str) -> int:
    assert kernel.host.pcap is not None
    kernel.host.pcap.flush()
    out = subprocess.run(["tshark", "-r", str(kernel.pcap), "-Y", display_filter, "-T", "fields", "-e",
                          "frame.number"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return len(out.stdout.split())


def negotiated(expected: bool) -> Callable[[GreenSocket], None]:
    def check(sock: GreenSocket) -> None:
        assert sock.core.tcb.ecn.ok is expected

    return check


def assert_ecn_worked(kernel: KernelPeer) -> None:
    stats = kernel.host.stack.stats
    marked = shim(kernel.host).stats["ce_marked"]
    report = f"shim marked {marked}; stack {stats.matching('tcp.ecn')}"
    assert marked > 0, report
    # Our receiver saw CE and echoed it; the kernel reacted with CWR.
    assert stats["tcp.ecn_ce_recv"] > 0 and stats["tcp.ecn_ece_sent"] > 0, report
    assert stats["tcp.ecn_cwr_recv"] > 0, report
    # The kernel's receiver echoed the CE we got marked; our sender reduced and sent CWR.
    assert stats["tcp.ecn_ece_recv"] > 0 and stats["tcp.ecn_cwnd_reduced"] > 0, report
    assert stats["tcp.ecn_cwr_sent"] > 0, report
    # On the wire: the ECN-setup handshake, ECT(0) data, CE marks, ECE and CWR from both sides.
    assert tshark_count(kernel, "tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.flags.ece == 1 "
                                "&& tcp.flags.cwr == 1") == 1
    assert tshark_count(kernel, "tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.flags.ece == 1 "
                                "&& tcp.flags.cwr == 0") == 1
    ip, ecn = ("ipv6", "ipv6.tclass.ecn") if kernel.family == socket.AF_INET6 else ("ip", "ip.dsfield.ecn")
    assert tshark_count(kernel, f"{ecn} == 2 && tcp.len > 0") > 0
    assert tshark_count(kernel, f"{ecn} == 3") > 0
    for src in (kernel.stack_ip, kernel.kernel_ip):
        assert tshark_count(kernel, f"{ip}.src == {src} && tcp.flags.syn == 0 && tcp.flags.ece == 1") > 0, src
        assert tshark_count(kernel, f"{ip}.src == {src} && tcp.flags.syn == 0 && tcp.flags.cwr == 1") > 0, src


@pytest.mark.parametrize("kernel_ecn", [1, 2])
def test_stack_client_negotiates_ecn_and_answers_ce_marks(tmp_path: Path, kernel_ecn: int) -> None:
    with fresh_host(tmp_path, impair=IMPAIR) as kernel:
        kernel.lab.sysctl("net.ipv4.tcp_ecn", kernel_ecn)
        kernel.host.stack.sysctl["net.ipv4.tcp_ecn"] = 1
        bulk(kernel, NBYTES, stack_connects=True, check=negotiated(True))
        assert_ecn_worked(kernel)


def test_kernel_client_with_tcp_ecn_1_gets_ecn_from_the_stack_server(tmp_path: Path) -> None:
    with fresh_host(tmp_path, impair=IMPAIR) as kernel:
        kernel.lab.sysctl("net.ipv4.tcp_ecn", 1)
        assert kernel.host.stack.sysctl.int("net.ipv4.tcp_ecn") == 2  # the default: accept only
        bulk(kernel, NBYTES, stack_connects=False, check=negotiated(True))
        assert_ecn_worked(kernel)


def test_with_tcp_ecn_0_nothing_is_negotiated_or_marked(tmp_path: Path) -> None:
    with fresh_host(tmp_path, impair=IMPAIR) as kernel:
        kernel.lab.sysctl("net.ipv4.tcp_ecn", 1)
        stack = kernel.host.stack
        stack.sysctl["net.ipv4.tcp_ecn"] = 0
        bulk(kernel, NBYTES, stack_connects=False, check=negotiated(False))
        assert shim(kernel.host).stats["ce_marked"] == 0
        assert not any(stack.stats.matching("tcp.ecn").values())
        assert tshark_count(kernel, "ip.dsfield.ecn != 0") == 0
        assert tshark_count(kernel, "tcp.flags.syn == 0 && (tcp.flags.ece == 1 || tcp.flags.cwr == 1)") == 0


def test_ecn_over_ipv6_uses_the_traffic_class(tmp_path: Path) -> None:
    """The same over IPv6: ECT(0) and CE in the traffic class (RFC 3168 §5 / RFC 8200 §7)."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    pcap = tmp_path / "stack.pcap"
    with Host(StackOptions(lab=True, pcap=str(pcap), impair=IMPAIR)) as host:
        kernel = KernelPeer(host, pcap, socket.AF_INET6)
        kernel.lab.sysctl("net.ipv4.tcp_ecn", 2)  # Linux's one knob covers IPv6 too
        host.stack.sysctl["net.ipv4.tcp_ecn"] = 1
        bulk(kernel, NBYTES, stack_connects=True, check=negotiated(True))
        assert_ecn_worked(kernel)
