"""IPv4 input filtering, UDP demultiplexing and ICMP error rules of the core; peer frames built by scapy."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether

from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM

from .helpers import PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, learned_stack, make_stack, sent


def udp_frame(dport: int, payload: bytes = b"data", dst: str = STACK_IP, sport: int = 4000,
              eth_dst: str = STACK_MAC) -> bytes:
    return bytes(Ether(src=PEER_MAC, dst=eth_dst) / IP(src=PEER_IP, dst=dst) / UDP(sport=sport, dport=dport) / payload)


def udp(stack, port: int, host: str = "") -> UdpSocket:  # type: ignore[no-untyped-def]
    sock = stack.socket(AF_INET, SOCK_DGRAM)
    assert isinstance(sock, UdpSocket)
    sock.bind((host, port))
    return sock


def test_closed_port_gets_port_unreachable_quoting_the_datagram() -> None:
    stack, iface = learned_stack()
    stack.receive(iface, udp_frame(5555, b"knock"), 0.0)
    (err,) = sent(iface)
    assert err[ICMP].type == 3 and err[ICMP].code == 3
    assert err[IPerror].src == PEER_IP and err[UDPerror].dport == 5555
    assert stack.stats["udp.drop.no_socket"] == 1


def test_no_icmp_error_about_broadcast_datagram() -> None:
    stack, iface = learned_stack()
    stack.receive(iface, udp_frame(5555, dst="198.18.0.255", eth_dst="ff:ff:ff:ff:ff:ff"), 0.0)
    stack.receive(iface, udp_frame(5555, dst="255.255.255.255", eth_dst="ff:ff:ff:ff:ff:ff"), 0.0)
    assert sent(iface) == []


def test_no_icmp_error_about_an_icmp_error() -> None:
    stack, iface = learned_stack()
    bad = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP, proto=253) / b"x"
    stack.receive(iface, bytes(bad), 0.0)
    (proto_unreach,) = sent(iface)
    assert proto_unreach[ICMP].type == 3 and proto_unreach[ICMP].code == 2
    err = (Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP)
           / ICMP(type=3, code=3) / IPerror(src=STACK_IP, dst=PEER_IP) / UDPerror(sport=1, dport=2))
    stack.receive(iface, bytes(err), 0.0)
    assert sent(iface) == []


def test_icmp_errors_are_rate_limited() -> None:
    stack, iface = learned_stack()
    for _ in range(80):
        stack.receive(iface, udp_frame(5555), 5.0)
    assert len(sent(iface)) == 50  # net.ipv4.icmp_msgs_burst
    assert stack.stats["icmp4.error_suppressed.ratelimit"] == 30


def test_most_specific_socket_wins() -> None:
    stack, iface = learned_stack()
    wildcard = udp(stack, 7000)
    wildcard.reuseaddr = True
    connected = stack.socket(AF_INET, SOCK_DGRAM)
    assert isinstance(connected, UdpSocket)
    connected.reuseaddr = True
    connected.bind(("", 7001))
    connected.connect((PEER_IP, 4000), 0.0)
    stack.receive(iface, udp_frame(7000, b"to-wildcard"), 0.0)
    stack.receive(iface, udp_frame(7001, b"to-connected", sport=4000), 0.0)
    stack.receive(iface, udp_frame(7001, b"wrong-peer", sport=4001), 0.0)
    assert wildcard.recvfrom(100, 0.0) == (b"to-wildcard", (PEER_IP, 4000))
    assert connected.recvfrom(100, 0.0)[0] == b"to-connected"
    with pytest.raises(BlockingIOError):
        connected.recvfrom(100, 0.0)


def test_bind_conflicts_and_errors() -> None:
    stack, _ = make_stack()
    udp(stack, 8000)
    with pytest.raises(OSError) as exc:
        udp(stack, 8000)
    assert exc.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as exc:
        udp(stack, 8001, "198.18.0.77")
    assert exc.value.errno == errno.EADDRNOTAVAIL
    sock = udp(stack, 0)
    low, high = 32768, 60999
    assert low <= sock.getsockname()[1] <= high


def test_broadcast_needs_so_broadcast() -> None:
    stack, _ = make_stack()
    sock = udp(stack, 0)
    with pytest.raises(OSError) as exc:
        sock.sendto(b"x", ("198.18.0.255", 9), 0.0)
    assert exc.value.errno == errno.EACCES
    sock.broadcast = True
    assert sock.sendto(b"x", ("255.255.255.255", 9), 0.0) == 1


def test_truncation_and_rcvbuf_limit() -> None:
    stack, iface = learned_stack()
    sock = udp(stack, 7000)
    sock.rcvbuf = 3000
    for i in range(10):
        stack.receive(iface, udp_frame(7000, bytes([65 + i]) * 1000), 0.0)
    got = []
    while True:
        try:
            got.append(sock.recvfrom(10, 0.0)[0])
        except BlockingIOError:
            break
    assert got == [b"A" * 10, b"B" * 10]  # two 1000-byte datagrams fit in 3000 bytes (with overhead)
    assert stack.stats["udp.drop.rcvbuf_full"] == 8


def test_no_route_is_enetunreach() -> None:
    stack, _ = make_stack()
    sock = udp(stack, 0)
    with pytest.raises(OSError) as exc:
        sock.sendto(b"x", ("203.0.113.1", 9), 0.0)
    assert exc.value.errno == errno.ENETUNREACH
    stack.set_gateway4(PEER_IP)
    assert sock.sendto(b"x", ("203.0.113.1", 9), 0.0) == 1


def test_large_datagram_is_fragmented_and_scapy_reassembles_it() -> None:
    from scapy.layers.inet import defragment

    stack, iface = learned_stack()
    sock = udp(stack, 0)
    payload = bytes(range(256)) * 16
    sock.sendto(payload, (PEER_IP, 9), 0.0)
    frames = sent(iface)
    assert len(frames) == 3 and all(len(f) <= 1514 for f in frames)
    (whole,) = defragment([f[IP] for f in frames])
    assert bytes(IP(bytes(whole))[UDP].payload) == payload


def test_frames_not_for_us_are_counted() -> None:
    stack, iface = learned_stack()
    stack.receive(iface, udp_frame(7, eth_dst="02:00:00:00:00:99"), 0.0)
    stack.receive(iface, udp_frame(7, dst="198.18.0.50"), 0.0)
    stack.receive(iface, bytes(Ether(src=PEER_MAC, dst=STACK_MAC, type=0x88B5) / (b"x" * 50)), 0.0)
    assert stack.stats["eth.drop.not_for_us"] == 1
    assert stack.stats["ip4.drop.not_for_us"] == 1
    assert stack.stats["eth.drop.unknown_ethertype"] == 1
    assert sent(iface) == []


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_receive(data: bytes) -> None:
    stack, iface = make_stack()
    stack.receive(iface, data, 0.0)
    stack.receive(iface, bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP)) [:34] + data, 0.0)
    stack.receive(stack.loopback, data, 0.0)
    assert stack.stats["stack.drop.internal_error"] == 0
