"""Ethernet II and 802.3 LLC/SNAP framing, cross-checked with scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, LLC, SNAP, Dot3, Ether
from scapy.packet import Packet, Raw

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.ethernet import (
    BROADCAST_MAC,
    ETH_HEADER_LEN,
    ETHERTYPE_ARP,
    ETHERTYPE_IP4,
    ETHERTYPE_IP6,
    EthernetFrame,
    is_multicast_mac,
    write_ethernet,
)

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def _mac(b: bytes) -> str:
    return b.hex(":")


@pytest.mark.parametrize("ethertype", [ETHERTYPE_IP4, ETHERTYPE_ARP, ETHERTYPE_IP6, 0x0600, 0xFFFF])
def test_write_parsed_by_scapy(ethertype: int) -> None:
    buf = bytearray(ETH_HEADER_LEN + 46)
    buf[ETH_HEADER_LEN:] = bytes(range(46))
    write_ethernet(buf, 0, BROADCAST_MAC, MAC_A, ethertype)
    pkt = Ether(bytes(buf))
    assert pkt.dst == "ff:ff:ff:ff:ff:ff"
    assert pkt.src == _mac(MAC_A)
    assert pkt.type == ethertype


def test_write_at_offset_leaves_neighbours_alone() -> None:
    buf = bytearray(b"\xee" * 30)
    write_ethernet(buf, 10, MAC_B, MAC_A, ETHERTYPE_IP4)
    assert buf[:10] == b"\xee" * 10
    assert buf[10:24] == MAC_B + MAC_A + b"\x08\x00"
    assert buf[24:] == b"\xee" * 6


def test_parse_scapy_ethernet_ii() -> None:
    inner = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2) / Raw(b"x")
    raw = bytes(Ether(dst=_mac(MAC_B), src=_mac(MAC_A)) / inner)
    frame = EthernetFrame.parse(memoryview(raw))
    assert frame.dst == MAC_B
    assert frame.src == MAC_A
    assert frame.ethertype == ETHERTYPE_IP4
    assert isinstance(frame.payload, memoryview)
    assert bytes(frame.payload) == bytes(inner)


def test_parse_keeps_ethernet_ii_padding_for_upper_layer() -> None:
    # 60-byte minimum frame around a 28-byte ARP: Ethernet II has no length, so the padding
    # stays in the payload and ARP ignores it.
    arp = ARP(op=1, hwsrc=_mac(MAC_A), psrc="192.0.2.1", pdst="192.0.2.2")
    raw = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=_mac(MAC_A)) / arp).ljust(60, b"\x00")
    frame = EthernetFrame.parse(memoryview(raw))
    assert frame.ethertype == ETHERTYPE_ARP
    assert len(frame.payload) == 46
    assert bytes(frame.payload[:28]) == bytes(arp)


@pytest.mark.parametrize(
    ("inner", "ethertype"),
    [
        (
            ARP(op=2, hwsrc="02:00:00:00:00:01", psrc="192.0.2.1", hwdst="02:00:00:00:00:02", pdst="192.0.2.2"),
            ETHERTYPE_ARP,
        ),
        (IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=7, dport=9) / Raw(b"hello, 802.3"), ETHERTYPE_IP4),
    ],
)
def test_parse_scapy_llc_snap(inner: Packet, ethertype: int) -> None:
    # RFC 1042 framing, padded to the 60-byte minimum: the 802.3 length must trim the padding.
    pkt = Dot3(dst=_mac(MAC_B), src=_mac(MAC_A)) / LLC() / SNAP() / inner
    raw = bytes(pkt).ljust(60, b"\x00")
    parsed_by_scapy = Dot3(raw)
    assert parsed_by_scapy[SNAP].code == ethertype  # scapy agrees on the framing
    frame = EthernetFrame.parse(memoryview(raw))
    assert frame.dst == MAC_B
    assert frame.src == MAC_A
    assert frame.ethertype == ethertype
    assert bytes(frame.payload) == bytes(inner)


def test_parse_802_3_max_length() -> None:
    body = b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + bytes(1492)
    raw = MAC_B + MAC_A + (1500).to_bytes(2, "big") + body
    frame = EthernetFrame.parse(memoryview(raw))
    assert frame.ethertype == ETHERTYPE_IP4
    assert len(frame.payload) == 1492


@pytest.mark.parametrize(
    ("mac", "multicast"),
    [
        (BROADCAST_MAC, True),
        (bytes.fromhex("01005e000001"), True),  # IPv4 multicast (RFC 1112 §6.4)
        (bytes.fromhex("333300000001"), True),  # IPv6 multicast (RFC 2464 §7)
        (bytes.fromhex("0180c2000000"), True),  # STP group address
        (bytes.fromhex("020000000001"), False),  # locally administered unicast
        (bytes.fromhex("00005e000101"), False),
        (bytes.fromhex("fe0000000000"), False),
    ],
)
def test_is_multicast_mac(mac: bytes, multicast: bool) -> None:
    assert is_multicast_mac(mac) is multicast


def _dot3(length: int, body: bytes) -> bytes:
    return MAC_B + MAC_A + length.to_bytes(2, "big") + body


SNAP_IP4 = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"", "too_short", id="too_short-empty"),
        pytest.param(bytes(13), "too_short", id="too_short-13_bytes"),
        pytest.param(MAC_B + MAC_A + b"\x05\xdd" + bytes(46), "bad_ethertype", id="bad_ethertype-1501"),
        pytest.param(MAC_B + MAC_A + b"\x05\xff" + bytes(46), "bad_ethertype", id="bad_ethertype-1535"),
        pytest.param(_dot3(100, SNAP_IP4 + bytes(20)), "bad_length", id="bad_length-length_beyond_the_frame"),
        pytest.param(_dot3(1500, SNAP_IP4 + bytes(46)), "bad_length", id="bad_length-1500_in_short_frame"),
        pytest.param(_dot3(0, bytes(46)), "bad_length", id="bad_length-no_room_for_an_llc_header"),
        pytest.param(_dot3(2, bytes(46)), "bad_length", id="bad_length-2"),
        pytest.param(_dot3(5, b"\xaa\xaa\x03\x00\x00" + bytes(41)), "bad_length", id="bad_length-snap_cut_by_length"),
        pytest.param(_dot3(38, b"\x42\x42\x03" + bytes(43)), "llc_unsupported", id="llc_unsupported-stp_bpdu"),
        pytest.param(_dot3(38, b"\xe0\xe0\x03" + bytes(43)), "llc_unsupported", id="llc_unsupported-ipx_over_802_2"),
        pytest.param(
            _dot3(38, b"\xaa\xaa\x03\x00\x00\x0c\x20\x00" + bytes(38)),
            "llc_unsupported",
            id="llc_unsupported-cisco_oui_cdp",
        ),
        pytest.param(
            _dot3(38, b"\xaa\xaa\x13\x00\x00\x00\x08\x00" + bytes(38)), "llc_unsupported", id="llc_unsupported-not_ui"
        ),
    ],
)
def test_malformed(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as exc:
        EthernetFrame.parse(memoryview(raw))
    assert exc.value.reason == reason
