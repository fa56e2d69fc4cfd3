"""Middleware devices (issue 12): the impairment and the capture wrap a device.

The impairment cuts super-segments into wire segments before it loses or reorders any (one lost frame is
one lost segment), both ways; the capture records each frame that crossed its device once, as the wire
carries it, and tshark reads it without complaint; checksum marks cross a stage that does not change a
frame, and one it corrupts leaves with whole checksums, unmarked.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab.helpers import tshark_problems
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from pytcp_green.link.device import PlainFrame
from pytcp_green.link.impair import Impairment, ImpairSpec
from pytcp_green.link.impaired import ImpairedDevice
from pytcp_green.link.pair import PairEnd, make_pair
from pytcp_green.link.pcap import PcapDevice, PcapWriter
from pytcp_green.sim.network import Simulation
from pytcp_green.stack.interface import GsoFrame, Interface, LinkKind, TrustedFrame
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM, Stack
from pytcp_green.stack.tcp import TcpSocket

MSS = 1448
IP_A, IP_B = "198.18.0.10", "198.18.0.11"


@pytest.fixture
def cable() -> Iterator[tuple[PairEnd, PairEnd]]:
    a, b = make_pair()
    yield a, b
    a.close()
    b.close()


def super_segment(segments: int) -> GsoFrame:
    """A TCP super-segment as the stack hands a TSO device: ``segments`` MSS of payload, one header."""
    payload = bytes(range(256)) * (segments * MSS // 256 + 1)
    pkt = Ether(src="02:00:00:00:0a:01", dst="02:00:00:00:0b:01") / IP(src=IP_A, dst=IP_B, flags="DF") / TCP(
        sport=40000, dport=80, seq=1000, ack=1, flags="PA") / payload[:segments * MSS]
    frame = GsoFrame(bytes(pkt))
    frame.gso_size, frame.l3, frame.l4 = MSS, 14, 34
    return frame


def checksums_hold(frame: bytes) -> bool:
    pkt = Ether(frame)
    fresh = pkt.copy()
    del fresh[IP].chksum
    del fresh[TCP].chksum
    return bytes(Ether(bytes(fresh))) == bytes(pkt)


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


def test_a_corrupted_frame_gets_whole_checksums_first_and_leaves_unmarked() -> None:
    whole = bytes(super_segment(1))
    partial = bytearray(whole)
    partial[50:52] = b"\x12\x34"  # as a stack on a checksum-offloading device leaves it: not the sum
    imp = Impairment(ImpairSpec(corrupt=1.0), seed=5, corrupt_offset=14)
    for sent in (TrustedFrame(partial), bytes(partial)):
        imp.push(sent, 0.0)
    for out in imp.pop_due(0.0):
        assert type(out) is PlainFrame
        # It is the frame with its checksums completed (scapy agrees with them) and then one byte changed.
        assert checksums_hold(whole)
        assert sum(x != y for x, y in zip(out, whole, strict=True)) == 1
        assert not checksums_hold(out)


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


def host(sim: Simulation, name: str, mac: str, ip: str) -> tuple[Stack, Interface]:
    stack = Stack(seed=sim.derive_seed(name))
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(mac))
    stack.add_ip4(iface, f"{ip}/24")
    return stack, iface


def transfer(sim: Simulation, a: Stack, b: Stack, data: bytes) -> bytes:
    """``data`` from a to b over TCP in the simulation; what b read."""
    listener = b.socket(AF_INET, SOCK_STREAM)
    assert isinstance(listener, TcpSocket)
    listener.bind(("", 80))
    listener.listen(1)
    client = a.socket(AF_INET, SOCK_STREAM)
    assert isinstance(client, TcpSocket)
    with pytest.raises(BlockingIOError):
        client.connect((IP_B, 80), sim.now)
    assert sim.run_until(lambda: bool(listener.accept_queue), 10)
    server, _ = listener.accept(sim.now)
    assert isinstance(server, TcpSocket)
    sent, got = 0, bytearray()

    def pump() -> bool:
        nonlocal sent
        while sent < len(data):
            try:
                sent += client.send(memoryview(data)[sent:], sim.now)
            except BlockingIOError:
                break
        while True:
            try:
                got.extend(server.recv(1 << 20, sim.now))
            except BlockingIOError:
                break
        return len(got) == len(data)

    assert sim.run_until(pump, 600), f"{len(got)} of {len(data)} bytes"
    return bytes(got)


def test_a_pair_carries_tcp_without_checksums_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = Simulation(seed=12)
    a, ia = host(sim, "a", "020000000a01", IP_A)
    b, ib = host(sim, "b", "020000000b01", IP_B)
    link = sim.connect(a, ia, b, ib)
    assert ia.csum_free and ib.csum_free  # the cable's offload, applied when the ports were bound
    end_a = link.ab.impaired.inner
    written: list[bytes] = []
    write = end_a.write
    monkeypatch.setattr(end_a, "write", lambda frame: (written.append(bytes(frame)), write(frame)))
    end_b = link.ba.impaired.inner
    read: list[type] = []
    read_batch = end_b.read_batch
    monkeypatch.setattr(end_b, "read_batch", lambda limit=256: [read.append(type(f)) or f for f in read_batch(limit)])
    data = hashlib.sha256(b"pair").digest() * 10_000
    assert transfer(sim, a, b, data) == data
    segments = [Ether(f) for f in written if TCP in Ether(f) and len(Ether(f)[TCP].payload)]
    assert len(segments) > len(data) // 1500
    # The sender wrote the pseudo-header sum only (scapy's whole sum differs), and the receiver took the
    # frames on trust: no checksum failed, none was checked.
    assert not any(checksums_hold(bytes(s)) for s in segments)
    assert set(read) == {TrustedFrame}
    assert a.stats["tcp.drop.bad_checksum"] == b.stats["tcp.drop.bad_checksum"] == 0


def test_corruption_on_a_pair_is_caught_and_counted() -> None:
    sim = Simulation(seed=13)
    a, ia = host(sim, "a", "020000000a01", IP_A)
    b, ib = host(sim, "b", "020000000b01", IP_B)
    link = sim.connect(a, ia, b, ib, ImpairSpec(corrupt=0.05))
    data = hashlib.sha256(b"corrupt").digest() * 10_000
    assert transfer(sim, a, b, data) == data
    corrupted = link.ab.impairment.stats["corrupted"]
    assert corrupted > 10
    # A changed byte lands in the IP header (its checksum), in TCP's header or payload (its checksum):
    # each corrupted frame is dropped and counted, never taken on trust.
    drops = b.stats["tcp.drop.bad_checksum"] + b.stats["ip4.drop.bad_checksum"]
    assert 0 < drops <= corrupted and b.stats["tcp.drop.bad_checksum"] > 0


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark checks the capture")
def test_a_captured_pair_holds_each_delivered_frame_once_with_whole_checksums(tmp_path: Path) -> None:
    sim = Simulation(seed=14)
    a, ia = host(sim, "a", "020000000a01", IP_A)
    b, ib = host(sim, "b", "020000000b01", IP_B)
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
