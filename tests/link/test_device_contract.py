"""The device contract's offload part (issue 12): a device that offloads nothing gets frames whose every
checksum scapy verifies (TCP, UDP, ICMPv4, ICMPv6, IPv4 header), and a device that segments TCP (TSO)
gets super-segments no larger than its limit, whose wire segments are whole.  A device that offloads
checksums (the pair) gets TCP frames with the pseudo-header sum only and hands them on marked; an
impairment that corrupts one completes its checksums first, so the receiver catches and counts it."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from stack.helpers import PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, learned_stack
from stack.ipv6.helpers import PEER_IP6, STACK_IP6, learn_peer, run_until

from link.helpers import checksums_hold, sim_hosts, super_segment, transfer
from pytcp_green.link.device import PlainFrame
from pytcp_green.link.impair import Impairment, ImpairSpec
from pytcp_green.sim.network import Simulation
from pytcp_green.stack.interface import GsoFrame, Interface, TrustedFrame
from pytcp_green.stack.sockbase import AF_INET, AF_INET6
from pytcp_green.stack.stack import SOCK_DGRAM, SOCK_STREAM, Stack
from pytcp_green.stack.wire.offload import segment_tcp

CHECKED = (TCP, UDP, ICMP, ICMPv6EchoReply)


def _dual_stack() -> tuple[Stack, Interface]:
    stack, iface = learned_stack()
    stack.enable_ip6(iface, slaac=False)
    stack.add_ip6(iface, f"{STACK_IP6}/64")
    run_until(stack, 5.0)
    learn_peer(stack, iface)
    iface.tx.clear()
    return stack, iface


def _peer(family: int) -> tuple[str, type[Packet]]:
    return (PEER_IP, IP) if family == AF_INET else (PEER_IP6, IPv6)


def _tcp_flight(stack: Stack, iface: Interface, family: int, nbytes: int) -> list[bytes | bytearray]:
    """Connect to the peer, answer the SYN as the peer would, send ``nbytes``; the frames that left, as
    the stack queued them for the device."""
    peer, ip = _peer(family)
    me = STACK_IP if family == AF_INET else STACK_IP6
    sock = stack.socket(family, SOCK_STREAM)
    with contextlib.suppress(BlockingIOError):
        sock.connect((peer, 80), 6.0)
    (syn,) = [Ether(bytes(f)) for f in iface.tx]
    iface.tx.clear()
    synack = Ether(src=PEER_MAC, dst=STACK_MAC) / ip(src=peer, dst=me) / TCP(
        sport=80, dport=syn[TCP].sport, seq=1000, ack=syn[TCP].seq + 1, flags="SA", window=65535,
        options=[("MSS", 1460)])
    stack.receive(iface, bytes(synack), 6.1)
    iface.tx.clear()
    assert sock.send(b"z" * nbytes, 6.2) == nbytes
    frames = list(iface.tx)
    iface.tx.clear()
    return frames


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
def test_without_offloads_every_protocol_sends_whole_checksums(family: int) -> None:
    stack, iface = _dual_stack()
    peer, ip = _peer(family)
    me = STACK_IP if family == AF_INET else STACK_IP6
    udp = stack.socket(family, SOCK_DGRAM)
    udp.sendto(b"datagram", (peer, 9), 6.0)
    echo = ICMP(type=8, id=7, seq=1) if family == AF_INET else ICMPv6EchoRequest(id=7, seq=1)
    stack.receive(iface, bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / ip(src=peer, dst=me) / echo / b"ping"), 6.0)
    frames = [bytes(f) for f in iface.tx]
    iface.tx.clear()
    frames += [bytes(f) for f in _tcp_flight(stack, iface, family, 20_000)]
    layers = [next(layer.__name__ for layer in CHECKED if layer in Ether(f)) for f in frames]
    assert {"UDP", "TCP"} <= set(layers) and ("ICMP" in layers or "ICMPv6EchoReply" in layers)
    assert all(checksums_hold(f) for f in frames)
    assert all(len(f) <= 14 + iface.mtu for f in frames)


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
def test_a_tso_device_gets_super_segments_within_its_limit(family: int) -> None:
    stack, iface = _dual_stack()
    iface.tso_max = 8000  # as a device with a small TSO limit would promise
    supers = [f for f in _tcp_flight(stack, iface, family, 20_000) if type(f) is GsoFrame]
    assert supers and all(len(f) - 14 <= 8000 for f in supers)
    wire = [bytes(piece) for f in supers for piece in segment_tcp(f, f.l3, f.gso_size)]
    assert all(len(f) <= 14 + iface.mtu and checksums_hold(f) for f in wire)


def test_a_pair_carries_tcp_without_checksums_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = Simulation(seed=12)
    a, ia, b, ib = sim_hosts(sim)
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


def test_corruption_on_a_pair_is_caught_and_counted() -> None:
    sim = Simulation(seed=13)
    a, ia, b, ib = sim_hosts(sim)
    link = sim.connect(a, ia, b, ib, ImpairSpec(corrupt=0.05))
    data = hashlib.sha256(b"corrupt").digest() * 10_000
    assert transfer(sim, a, b, data) == data
    corrupted = link.ab.impairment.stats["corrupted"]
    assert corrupted > 10
    # A changed byte lands in the IP header (its checksum), in TCP's header or payload (its checksum):
    # each corrupted frame is dropped and counted, never taken on trust.
    drops = b.stats["tcp.drop.bad_checksum"] + b.stats["ip4.drop.bad_checksum"]
    assert 0 < drops <= corrupted and b.stats["tcp.drop.bad_checksum"] > 0
