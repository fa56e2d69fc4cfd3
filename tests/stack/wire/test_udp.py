"""UDP (RFC 768, RFC 8200 §8.1), cross-checked with scapy over IPv4 and IPv6."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.checksum import pseudo_sum
from pytcp_green.stack.wire.ip4 import Ip4Packet
from pytcp_green.stack.wire.udp import UDP_HEADER_LEN, UdpDatagram, write_udp

from .naive import naive_checksum, naive_ones_sum, naive_pseudo_header

SRC4, DST4 = "192.0.2.1", "198.51.100.7"
SRC6, DST6 = "2001:db8::1", "2001:db8:ffff::2"
S4, D4 = socket.inet_aton(SRC4), socket.inet_aton(DST4)
S6, D6 = socket.inet_pton(socket.AF_INET6, SRC6), socket.inet_pton(socket.AF_INET6, DST6)


def _write(payload: bytes, src: bytes, dst: bytes, sport: int = 5353, dport: int = 53) -> bytes:
    buf = bytearray(b"\xee" * UDP_HEADER_LEN + payload)
    write_udp(buf, 0, sport, dport, len(payload), src, dst)
    return bytes(buf)


@pytest.mark.parametrize("payload", [b"", b"x", b"hello", b"even", bytes(range(256)) * 5 + b"odd"])
def test_write_ip4_matches_scapy(payload: bytes) -> None:
    raw = _write(payload, S4, D4)
    ref = IP(src=SRC4, dst=DST4) / UDP(sport=5353, dport=53) / Raw(payload)
    assert raw == bytes(ref)[20:]  # scapy computed the same header and checksum
    pkt = IP(bytes(ref)[:20] + raw)
    assert (pkt[UDP].sport, pkt[UDP].dport, pkt[UDP].len) == (5353, 53, 8 + len(payload))
    assert bytes(pkt[UDP].payload) == payload


@pytest.mark.parametrize("payload", [b"", b"x", b"hello6", bytes(range(255))])
def test_write_ip6_matches_scapy(payload: bytes) -> None:
    raw = _write(payload, S6, D6, sport=546, dport=547)
    ref = IPv6(src=SRC6, dst=DST6) / UDP(sport=546, dport=547) / Raw(payload)
    assert raw == bytes(ref)[40:]


def _payload_summing_to_zero(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    """A 2-byte payload that makes the computed checksum 0, so it must go out as 0xFFFF."""
    length = UDP_HEADER_LEN + 2
    head = sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + length.to_bytes(2, "big") + bytes(2)
    s = naive_ones_sum(naive_pseudo_header(src, dst, 17, length) + head)
    word = 0xFFFF - s
    assert naive_checksum(naive_pseudo_header(src, dst, 17, length) + head + word.to_bytes(2, "big")) == 0
    return word.to_bytes(2, "big")


@pytest.mark.parametrize(("src", "dst"), [(S4, D4), (S6, D6)])
def test_computed_zero_goes_out_as_ffff(src: bytes, dst: bytes) -> None:
    payload = _payload_summing_to_zero(src, dst, 1000, 2000)
    raw = _write(payload, src, dst, sport=1000, dport=2000)
    assert raw[6:8] == b"\xff\xff"
    assert UdpDatagram.parse(memoryview(raw), src, dst).checksum == 0xFFFF
    ip_layer = IP(src=SRC4, dst=DST4) if len(src) == 4 else IPv6(src=SRC6, dst=DST6)
    assert bytes(ip_layer / UDP(sport=1000, dport=2000) / Raw(payload)).endswith(raw)  # scapy does the same


def test_parse_scapy_ip4() -> None:
    pkt = IP(src=SRC4, dst=DST4) / UDP(sport=12345, dport=7) / Raw(b"echo me")
    ip = Ip4Packet.parse(memoryview(bytes(pkt)))
    d = UdpDatagram.parse(ip.payload, ip.src, ip.dst)
    assert (d.sport, d.dport, d.length) == (12345, 7, 15)
    assert d.checksum == IP(bytes(pkt))[UDP].chksum
    assert isinstance(d.payload, memoryview)
    assert bytes(d.payload) == b"echo me"


def test_parse_scapy_ip6() -> None:
    pkt = IPv6(src=SRC6, dst=DST6) / UDP(sport=546, dport=547) / Raw(b"dhcp6?")
    d = UdpDatagram.parse(memoryview(bytes(pkt))[40:], S6, D6)
    assert (d.sport, d.dport, d.length) == (546, 547, 14)
    assert bytes(d.payload) == b"dhcp6?"


def test_parse_ip4_zero_checksum_means_none() -> None:
    raw = bytes(UDP(sport=1, dport=2, chksum=0) / Raw(b"no checksum"))
    d = UdpDatagram.parse(memoryview(raw), S4, D4)
    assert d.checksum == 0
    assert bytes(d.payload) == b"no checksum"


def test_parse_trims_to_length() -> None:
    # The IP payload may run past the UDP length (e.g. a sender's padding): it is ignored, and
    # the checksum covers only ``length`` bytes.
    raw = _write(b"abc", S4, D4) + b"\x00\x00junk"
    d = UdpDatagram.parse(memoryview(raw), S4, D4)
    assert d.length == 11
    assert bytes(d.payload) == b"abc"


def test_verify_false_skips_checksums() -> None:
    raw = bytearray(_write(b"abc", S4, D4))
    raw[6] ^= 0xFF
    d = UdpDatagram.parse(memoryview(raw), S4, D4, verify=False)
    assert bytes(d.payload) == b"abc"
    # Lengths are still checked.
    with pytest.raises(Malformed, match="bad_length"):
        UdpDatagram.parse(memoryview(raw)[:10], S4, D4, verify=False)


def test_checksum_binds_the_addresses() -> None:
    raw = memoryview(_write(b"payload", S4, D4))
    with pytest.raises(Malformed, match="bad_checksum"):
        UdpDatagram.parse(raw, S4, socket.inet_aton("198.51.100.8"))


def test_write_at_offset() -> None:
    buf = bytearray(b"\x11" * 20 + bytes(8) + b"data" + b"\x22" * 3)
    write_udp(buf, 20, 1, 2, 4, S4, D4)
    assert buf[:20] == b"\x11" * 20 and buf[32:] == b"\x22" * 3
    assert naive_ones_sum(bytes(buf[20:32]), pseudo_sum(S4, D4, 17, 12)) == 0xFFFF


def _hdr(sport: int = 1, dport: int = 2, length: int = 8, csum: int = 0) -> bytes:
    return sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + length.to_bytes(2, "big") + csum.to_bytes(2, "big")


def _corrupt(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 0x40])


@pytest.mark.parametrize(
    ("raw", "src", "dst", "reason"),
    [
        pytest.param(b"", S4, D4, "too_short", id="too_short-empty"),
        pytest.param(_hdr()[:7], S4, D4, "too_short", id="too_short-7_bytes"),
        pytest.param(_hdr(length=7), S4, D4, "bad_length", id="bad_length-below_header"),
        pytest.param(_hdr(length=0), S4, D4, "bad_length", id="bad_length-zero_jumbo_not_supported"),
        pytest.param(_hdr(length=9), S4, D4, "bad_length", id="bad_length-beyond_buffer"),
        pytest.param(_hdr(length=0xFFFF) + bytes(100), S6, D6, "bad_length", id="bad_length-beyond_buffer_ip6"),
        pytest.param(_corrupt(_write(b"x", S4, D4)), S4, D4, "bad_checksum", id="bad_checksum-ip4"),
        pytest.param(_corrupt(_write(b"xy", S6, D6)), S6, D6, "bad_checksum", id="bad_checksum-ip6"),
        pytest.param(_write(b"xyz", S4, D4), S6, D6, "bad_checksum", id="bad_checksum-wrong_pseudo_header"),
        pytest.param(_hdr(length=10) + b"ok", S6, D6, "zero_checksum", id="zero_checksum-ip6"),
    ],
)
def test_malformed(raw: bytes, src: bytes, dst: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as exc:
        UdpDatagram.parse(memoryview(raw), src, dst)
    assert exc.value.reason == reason
