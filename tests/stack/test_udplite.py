"""UDP-Lite (RFC 3828) in the core: the codec against checksums scapy computes over the §3.2 pseudo
header, malformed datagrams, demultiplexing apart from UDP, ICMP both ways; frames built by scapy."""

from __future__ import annotations

import errno
import struct

import pytest
from scapy.layers.inet import ICMP, IP, IPerror
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import checksum as scapy_checksum

from pytcp_green.stack.datagram.udplite import UdpLiteSocket, clamp_coverage
from pytcp_green.stack.sockbase import AF_INET, AF_INET6
from pytcp_green.stack.stack import SOCK_DGRAM, Stack
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.udplite import PROTO_UDPLITE, UdpLiteDatagram, write_udplite

from .helpers import PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, learned_stack, sent

SRC4, DST4 = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
SRC6, DST6 = bytes.fromhex("fd00007700000000000000000000000a"), bytes.fromhex("fd00007700000000000000000000000b")


def reference(sport: int, dport: int, field: int, payload: bytes, src: bytes, dst: bytes) -> bytes:
    """A UDP-Lite datagram made by hand: RFC 3828 §3.2's pseudo header (length: the whole datagram's)
    then the covered octets, summed by scapy's checksum."""
    length = 8 + len(payload)
    covered = field or length
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, PROTO_UDPLITE, length)
    else:
        pseudo = src + dst + struct.pack("!I3xB", length, PROTO_UDPLITE)
    header = struct.pack("!HHHH", sport, dport, field, 0)
    csum = scapy_checksum(pseudo + (header + payload)[:covered]) or 0xFFFF
    return struct.pack("!HHHH", sport, dport, field, csum) + payload


@pytest.mark.parametrize(("src", "dst"), [(SRC4, DST4), (SRC6, DST6)], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize(("cscov", "field"), [(None, 8 + 21), (0, 0), (8, 8), (20, 20), (29, 29), (500, 29)])
def test_written_datagram_is_the_reference_and_parses_back(src: bytes, dst: bytes, cscov: int | None,
                                                           field: int) -> None:
    payload = bytes(range(100, 121))
    buf = bytearray(8 + len(payload))
    buf[8:] = payload
    write_udplite(buf, 0, 4000, 5000, len(payload), src, dst, cscov)
    assert bytes(buf) == reference(4000, 5000, field, payload, src, dst)
    dgram = UdpLiteDatagram.parse(memoryview(buf), src, dst)
    assert (dgram.sport, dgram.dport, bytes(dgram.payload)) == (4000, 5000, payload)
    assert dgram.coverage == (field or len(buf)) and dgram.partial == (0 < field < len(buf))


def test_only_the_covered_octets_are_checked() -> None:
    data = bytearray(reference(1, 2, 12, b"ABCDEFGH", SRC4, DST4))
    data[14] ^= 0xFF  # past the 12 covered octets
    assert bytes(UdpLiteDatagram.parse(memoryview(data), SRC4, DST4).payload) == bytes(data[8:])
    data[10] ^= 0xFF  # covered
    with pytest.raises(Malformed, match="bad_checksum"):
        UdpLiteDatagram.parse(memoryview(data), SRC4, DST4)


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\x00\x01\x00\x02\x00", "too_short"),
    (struct.pack("!HHHH", 1, 2, 7, 0x1234) + b"data", "bad_coverage"),  # §3.1: 1-7 are illegal
    (struct.pack("!HHHH", 1, 2, 13, 0x1234) + b"data", "bad_coverage"),  # past the datagram
    (struct.pack("!HHHH", 1, 2, 0, 0) + b"data", "zero_checksum"),  # mandatory, even over IPv4
])
def test_malformed_datagrams(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        UdpLiteDatagram.parse(memoryview(raw), SRC4, DST4)


def test_coverage_is_clamped_as_linux_stores_it() -> None:
    assert [clamp_coverage(v) for v in (0, 1, 7, 8, 9, 65535, 65536, -1)] == [0, 8, 8, 8, 9, 65535, 65535, 8]


def udplite_frame(dport: int, field: int, payload: bytes, *, sport: int = 4000) -> bytes:
    body = reference(sport, dport, field, payload, bytes(map(int, PEER_IP.split("."))),
                     bytes(map(int, STACK_IP.split("."))))
    return bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP, proto=PROTO_UDPLITE) / body)


def udplite_socket(stack: Stack, family: int = AF_INET) -> UdpLiteSocket:
    sock = stack.socket(family, SOCK_DGRAM, PROTO_UDPLITE)
    assert isinstance(sock, UdpLiteSocket)
    return sock


def test_udp_and_udplite_have_separate_ports_and_a_closed_one_gets_port_unreachable() -> None:
    stack, iface = learned_stack()
    udp = stack.socket(AF_INET, SOCK_DGRAM)
    udp.bind(("", 5000))
    lite = udplite_socket(stack)
    lite.bind(("", 5000))  # the same number: another protocol's port
    stack.receive(iface, udplite_frame(5000, 0, b"lite"), 0.0)
    assert lite.recvfrom(100, 0.0) == (b"lite", (PEER_IP, 4000))
    assert not udp.queue
    stack.receive(iface, udplite_frame(5001, 0, b"nobody"), 0.0)
    (err,) = sent(iface)
    assert err[ICMP].type == 3 and err[ICMP].code == 3 and err[IPerror].proto == PROTO_UDPLITE
    assert stack.stats["udplite.drop.no_socket"] == 1 and stack.stats["udplite.rx"] == 2


def test_recv_cscov_turns_away_partial_coverage_below_it() -> None:
    stack, iface = learned_stack()
    sock = udplite_socket(stack)
    sock.bind(("", 5000))
    sock.recv_cscov = 0  # set to 0: full coverage only
    stack.receive(iface, udplite_frame(5000, 8, b"partial"), 0.0)
    stack.receive(iface, udplite_frame(5000, 0, b"full"), 0.0)
    sock.recv_cscov = 12
    stack.receive(iface, udplite_frame(5000, 11, b"eleven"), 0.0)
    stack.receive(iface, udplite_frame(5000, 12, b"twelve"), 0.0)
    assert [sock.recvfrom(100, 0.0)[0] for _ in range(2)] == [b"full", b"twelve"] and not sock.queue
    assert stack.stats["udplite.drop.coverage_below_minimum"] == 2
    assert sent(iface) == []  # dropped by the socket's choice: no ICMP error


def test_a_connected_socket_learns_port_unreachable() -> None:
    stack, iface = learned_stack()
    sock = udplite_socket(stack)
    sock.connect((PEER_IP, 7000), 0.0)
    sock.send_cscov = 8
    sock.sendto(b"hello", None, 0.0)
    (out,) = sent(iface)
    assert out[IP].proto == PROTO_UDPLITE and bytes(out[IP].payload)[4:6] == b"\x00\x08"
    quoted = bytes(out[IP])[:28]
    err = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP) / ICMP(type=3, code=3) / quoted
    stack.receive(iface, bytes(err), 0.0)
    with pytest.raises(OSError) as info:
        sock.recvfrom(100, 0.0)
    assert info.value.errno == errno.ECONNREFUSED


def test_ipv6_datagram_over_loopback_keeps_its_coverage() -> None:
    stack = Stack(seed=3)
    rx, tx = udplite_socket(stack, AF_INET6), udplite_socket(stack, AF_INET6)
    rx.bind(("::1", 6000))
    tx.send_cscov = 16
    tx.sendto(b"x" * 40, ("::1", 6000), 0.0)
    (frame,) = stack.loopback.tx
    stack.loopback.tx.clear()
    pkt = IPv6(bytes(frame))
    assert pkt.nh == PROTO_UDPLITE and bytes(pkt.payload)[4:6] == b"\x00\x10"
    stack.receive(stack.loopback, frame, 0.0)
    assert rx.recvfrom(100, 0.0)[0] == b"x" * 40
