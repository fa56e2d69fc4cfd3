"""Loss recovery against the Linux kernel through the seeded impairment: RACK-TLP (RFC 8985) and PRR
(RFC 6937) at work on the stack's sending side, shown by their counters, and absent when
``net.ipv4.tcp_recovery`` switches RACK-TLP off.

The same spec and seed meet both runs, and every transfer is hash-checked both ways by ``bulk``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.test_tcp import MB, bulk, fresh_host, nstat

LOSSY = "loss=5%,seed=1"


@pytest.mark.parametrize("rack", [1, 0], ids=["rack", "no-rack"])
def test_stack_recovers_from_kernel_path_losses_with_rack_tlp_and_prr(tmp_path: Path, rack: int) -> None:
    with fresh_host(tmp_path, impair=LOSSY) as kernel:
        kernel.host.stack.sysctl["net.ipv4.tcp_recovery"] = rack
        bulk(kernel, 4 * MB, stack_connects=True)
        stats = kernel.host.stack.stats
        report = f"stack {stats.matching('tcp.')}\nkernel { {n: v for n, v in nstat(kernel).items() if v} }"
        # Every recovery is paced by PRR, whether RACK started it or RFC 6675's DupThresh did.
        assert stats["tcp.fast_retransmit"] > 0 and stats["tcp.prr_sent"] > 0, report
        assert stats["tcp.rst_in"] == stats["tcp.rst_out"] == 0, report
        if rack:
            # Holes below fewer than DupThresh SACKs declared lost after the reordering window,
            # and tail loss probes sent when the ACKs stopped.
            assert stats["tcp.rack_lost"] > 0 and stats["tcp.tlp"] > 0, report
        else:
            assert stats["tcp.rack_lost"] == stats["tcp.tlp"] == 0, report
