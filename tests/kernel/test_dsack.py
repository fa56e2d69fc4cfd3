"""D-SACK (RFC 2883) against the Linux kernel, through the impairment shim's ``dup=P%`` duplicates.

2 MB each way through ``dup=5%`` (both directions): every duplicate the kernel receives comes back
as a D-SACK, which our sender counts (``tcp.dsack_recv``); every duplicate we receive is reported
with a D-SACK block first in our ACK, which the kernel counts as valid (its ``TCPDSACKRecv``) and
tshark shows (``tcp.options.sack.dsack_le``).  With ``net.ipv4.tcp_dsack=0`` here our ACKs carry
none, and the kernel counts none from us.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lab.helpers import KernelPeer, shim

from kernel.test_ecn import tshark_count
from kernel.test_tcp import bulk, fresh_host

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark reads the capture")]

NBYTES = 2_000_000
IMPAIR = "dup=5%,seed=1"


def kernel_tcpext(kernel: KernelPeer, name: str) -> int:
    """One TcpExt counter of the kernel peer's namespace (/proc/net/netstat is per namespace)."""
    out = kernel.run(["cat", "/proc/net/netstat"]).stdout
    lines = [line.split() for line in out.splitlines() if line.startswith("TcpExt:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:]), strict=True))[name]


@pytest.mark.parametrize("dsack", [1, 0])
def test_duplicates_are_reported_and_understood_both_ways(tmp_path: Path, dsack: int) -> None:
    with fresh_host(tmp_path, impair=IMPAIR) as kernel:
        stack = kernel.host.stack
        stack.sysctl["net.ipv4.tcp_dsack"] = dsack
        before = kernel_tcpext(kernel, "TCPDSACKRecv")
        bulk(kernel, NBYTES, stack_connects=True)
        impaired = shim(kernel.host)
        assert impaired.outbound is not None and impaired.inbound is not None
        assert impaired.outbound.stats["duplicated"] > 0 and impaired.inbound.stats["duplicated"] > 0
        # The kernel's D-SACKs about what we sent twice reach our sender either way.
        assert stack.stats["tcp.dsack_recv"] > 0
        ours = f"ip.src == {kernel.stack_ip} && tcp.options.sack.dsack_le"
        if dsack:
            assert stack.stats["tcp.dsack_sent"] > 0
            assert kernel_tcpext(kernel, "TCPDSACKRecv") > before  # the kernel took them as D-SACKs
            assert tshark_count(kernel, ours) > 0
        else:
            assert stack.stats["tcp.dsack_sent"] == 0
            assert kernel_tcpext(kernel, "TCPDSACKRecv") == before
            assert tshark_count(kernel, ours) == 0
