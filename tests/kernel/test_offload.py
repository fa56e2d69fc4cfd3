"""Issue 12 against the Linux kernel: the TAP with offloads (TSO, GRO, checksum) and without them moves
100 MB each way intact; through the impairment (100 MB each way too) the super-segments are cut
before loss and reordering act; and the capture of an offloaded run holds frames whose checksums
tshark verifies."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from lab.helpers import KernelPeer, lab_skip_reason, shim

from kernel.test_tcp import MB, bulk, options_check
from pytcp_green.host import Host, StackOptions
from pytcp_green.link.tap import TapDevice

pytestmark = pytest.mark.lab


def _tap(host: Host) -> TapDevice:
    device = host.devices[-1]  # the lab's TAP, under the link's middleware
    assert isinstance(device, TapDevice)
    return device


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
def test_100_mb_each_way_with_and_without_offloads(offload: bool) -> None:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    with Host(StackOptions(lab=True, offload=offload)) as host:
        kernel = KernelPeer(host, Path(os.devnull))
        bulk(kernel, 100 * MB, stack_connects=True, check=options_check(ts=True, sack=True))
        tap, stats = _tap(host), host.stack.stats
        if offload:
            assert tap.vnet_hdr and tap.tso_max == 65535
            assert stats["tcp.tx_gso"] > 0 and tap.gso_sent > 0  # we handed the kernel super-segments
            assert tap.gso_frames > 0 and tap.csum_trusted > 0  # it handed us coalesced ones, on trust
        else:
            assert not tap.vnet_hdr and tap.tso_max == 0
            assert tap.gso_sent == tap.gso_frames == tap.csum_trusted == 0  # the device sees wire frames only
            # TCP still built super-segments (software GSO): the port cut each before the write.
            assert stats["tcp.tx_gso"] == stats["link.gso_soft"] > 0


def _checksum_statuses(pcap: Path) -> list[tuple[str, str]]:
    """(ip.checksum.status, tcp.checksum.status) of every TCP frame, with tshark checking both."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
                          "-Y", "tcp", "-T", "fields", "-e", "ip.checksum.status", "-e", "tcp.checksum.status"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [(ip, tcp) for ip, tcp in (line.split("\t") for line in out.stdout.splitlines())]


def _impaired_bulk(nbytes: int, pcap: Path | None) -> Host:
    """``nbytes`` each way through loss and reordering with offloads on; checks the shim really cut,
    lost and reordered, and returns the (closed) host for its counters."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    opts = StackOptions(lab=True, pcap=str(pcap) if pcap else None, impair="loss=2%,reorder=2%,seed=5")
    with Host(opts) as host:
        bulk(KernelPeer(host, pcap or Path(os.devnull)), nbytes, stack_connects=True,
             check=options_check(ts=True, sack=True))
        impaired = shim(host).stats
        assert impaired["lost"] > 0 and impaired["reordered"] > 0
        assert host.stack.stats["tcp.tx_gso"] > 0 and host.stack.stats["tcp.retransmit"] > 0
        assert _tap(host).gso_frames > 0
    return host


def test_100_mb_each_way_with_offloads_through_loss_and_reordering() -> None:
    _impaired_bulk(100 * MB, None)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark checks the capture's checksums")
def test_the_capture_of_an_offloaded_run_has_only_frames_tshark_verifies(tmp_path: Path) -> None:
    pcap = tmp_path / "offload.pcap"
    _impaired_bulk(10 * MB, pcap)
    statuses = _checksum_statuses(pcap)
    # Every frame in the capture is whole: the stack's super-segments appear as the segments the
    # kernel receives, and the kernel's partial checksums completed (1 = good, 0 = bad in Wireshark).
    assert len(statuses) > 10 * MB // 1448
    bad = [s for s in statuses if s != ("1", "1")]
    assert not bad, f"{len(bad)} of {len(statuses)} frames without good checksums: {bad[:5]}"
