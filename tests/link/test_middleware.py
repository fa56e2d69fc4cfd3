"""Middleware devices (issue 12): the impairment and the capture wrap a device.

The impairment cuts super-segments into wire segments before it loses or reorders any (one lost frame is
one lost segment), both ways; the capture records each frame that crossed its device once, as the wire
carries it, and tshark reads it without complaint; checksum marks cross a stage that does not change a
frame (a corrupted one: tests/link/test_device_contract.py).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab.helpers import tshark_problems
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from link.helpers import MSS, checksums_hold, sim_hosts, super_segment, transfer
from pytcp_green.link.impair import Impairment, ImpairSpec
from pytcp_green.link.impaired import ImpairedDevice
from pytcp_green.link.pair import PairEnd, make_pair
from pytcp_green.link.pcap import PcapDevice, PcapWriter
from pytcp_green.sim.network import Simulation
from pytcp_green.stack.interface import TrustedFrame


@pytest.fixture
def cable() -> Iterator[tuple[PairEnd, PairEnd]]:
    a, b = make_pair()
    yield a, b
    a.close()
    b.close()


def test_the_impairment_cuts_a_super_segment_before_it_loses_any(cable: tuple[PairEnd, PairEnd]) -> None:
    a, b = cable
    a.tso_max = 65535  # as a TSO device: the wrapper takes super-segments and must cut them itself
    lossy = ImpairedDevice(a, Impairment(ImpairSpec(loss=0.3), seed=7))
    assert lossy.tso_max == 65535
    lossy.now = 1.0
    for _ in range(10):
        lossy.write(super_segment(40))
    lossy.release(1.0)
    got = b.read_batch(10_000)
    stats = lossy.stats
    # Loss counted 400 wire segments, not 10 frames: each either arrived whole or was lost.
    assert stats["lost"] + len(got) == 400 and 60 < stats["lost"] < 180
    assert all(len(f) == 14 + 20 + 20 + MSS and checksums_hold(f) for f in got)
    assert {Ether(f)[TCP].seq for f in got} <= {1000 + i * MSS for i in range(40)}


def test_the_impairment_cuts_a_coalesced_frame_read_from_its_device(cable: tuple[PairEnd, PairEnd]) -> None:
    a, b = cable
    a.write(bytes(super_segment(5)))  # longer than the MTU: as the kernel hands a GRO super-frame
    inbound = ImpairedDevice(b, None, Impairment(ImpairSpec(), seed=1))
    inbound.now = 2.0
    got = inbound.read_batch()
    # Cut to fill the MTU, as the kernel cut it for an MSS learnt on this link (5 * 1448 = 4 * 1460 + 1400).
    assert [len(f) for f in got] == [1514] * 4 + [14 + 40 + 1400]
    assert all(checksums_hold(f) for f in got)


def test_a_mark_crosses_a_stage_that_changes_nothing() -> None:
    frame = TrustedFrame(bytes(super_segment(1)))
    imp = Impairment(ImpairSpec(delay=0.01, duplicate=1.0), seed=3)
    imp.push(frame, 0.0)
    out = imp.pop_due(1.0)
    assert len(out) == 2 and all(type(f) is TrustedFrame and f == frame for f in out)


def test_a_capture_records_each_crossing_once_and_tshark_reads_it(tmp_path: Path,
                                                                  cable: tuple[PairEnd, PairEnd]) -> None:
    a, b = cable
    path = tmp_path / "cable.pcap"
    with PcapWriter(path) as writer:
        now = [5.0]
        dev = PcapDevice(a, writer, lambda: now[0])
        dev.write(super_segment(3))  # three wire segments
        b.write(bytes(super_segment(1)))  # read back below: one frame
        now[0] = 6.0
        assert len(dev.read_batch()) == 1
    packets = rdpcap(str(path))
    assert len(packets) == 4 and [float(p.time) for p in packets] == [5.0, 5.0, 5.0, 6.0]
    assert all(checksums_hold(bytes(p)) for p in packets)
    if shutil.which("tshark") is not None:
        assert tshark_problems(path) == ""


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark checks the capture")
def test_a_captured_pair_holds_each_delivered_frame_once_with_whole_checksums(tmp_path: Path) -> None:
    sim = Simulation(seed=14)
    a, ia, b, ib = sim_hosts(sim)
    path = tmp_path / "link.pcap"
    link = sim.connect(a, ia, b, ib, ImpairSpec(loss=0.02, reorder=0.02), pcap=path)
    data = hashlib.sha256(b"capture").digest() * 5_000
    assert transfer(sim, a, b, data) == data
    sim.close()
    packets = rdpcap(str(path))
    # What the impairment let through, both ways, each once; the stacks sent the pseudo-header sum
    # only, and the capture holds the checksums completed, as the wire would carry them.
    assert len(packets) == link.ab.delivered + link.ba.delivered
    assert link.ab.impairment.stats["lost"] > 0
    assert tshark_problems(path) == ""
