"""The device contract's offload part (issue 12): a device that offloads nothing gets frames whose every
checksum scapy verifies (TCP, UDP, ICMPv4, ICMPv6, IPv4 header), and a device that segments TCP (TSO)
gets super-segments no larger than its limit, whose wire segments are whole."""

from __future__ import annotations

import contextlib

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from stack.helpers import PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, learned_stack
from stack.ipv6.helpers import PEER_IP6, STACK_IP6, learn_peer, run_until

from pytcp_green.stack.interface import GsoFrame, Interface
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


def _checksums_hold(frame: bytes) -> bool:
    """scapy, as an independent codec, rebuilds the checksums it finds; they must equal ours."""
    pkt = Ether(frame)
    fresh = pkt.copy()
    for layer, field in ((TCP, "chksum"), (UDP, "chksum"), (ICMP, "chksum"), (IP, "chksum"),
                         (ICMPv6EchoReply, "cksum")):
        if layer in fresh:
            delattr(fresh[layer], field)
    rebuilt = Ether(bytes(fresh))
    return bytes(rebuilt) == bytes(pkt)


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
    assert all(_checksums_hold(f) for f in frames)
    assert all(len(f) <= 14 + iface.mtu for f in frames)


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
def test_a_tso_device_gets_super_segments_within_its_limit(family: int) -> None:
    stack, iface = _dual_stack()
    iface.tso_max = 8000  # as a device with a small TSO limit would promise
    supers = [f for f in _tcp_flight(stack, iface, family, 20_000) if type(f) is GsoFrame]
    assert supers and all(len(f) - 14 <= 8000 for f in supers)
    wire = [bytes(piece) for f in supers for piece in segment_tcp(f, f.l3, f.gso_size)]
    assert all(len(f) <= 14 + iface.mtu and _checksums_hold(f) for f in wire)
