"""ARP (RFC 826), cross-checked with scapy."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.l2 import ARP, Ether

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.arp import ARP_LEN, ARP_OP_REPLY, ARP_OP_REQUEST, ArpPacket, write_arp
from pytcp_green.stack.wire.ethernet import ETH_HEADER_LEN, ETHERTYPE_ARP, EthernetFrame, write_ethernet

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
IP_A = socket.inet_aton("192.0.2.1")
IP_B = socket.inet_aton("192.0.2.2")


@pytest.mark.parametrize(
    ("oper", "tha"),
    [(ARP_OP_REQUEST, bytes(6)), (ARP_OP_REPLY, MAC_B)],
)
def test_write_parsed_by_scapy(oper: int, tha: bytes) -> None:
    buf = bytearray(ETH_HEADER_LEN + ARP_LEN)
    write_ethernet(buf, 0, MAC_B, MAC_A, ETHERTYPE_ARP)
    write_arp(buf, ETH_HEADER_LEN, oper, MAC_A, IP_A, tha, IP_B)
    pkt = Ether(bytes(buf))
    arp = pkt[ARP]
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen) == (1, 0x0800, 6, 4)
    assert arp.op == oper
    assert arp.hwsrc == MAC_A.hex(":")
    assert arp.psrc == "192.0.2.1"
    assert arp.hwdst == tha.hex(":")
    assert arp.pdst == "192.0.2.2"
    # Byte-identical to scapy's own encoding of the same fields.
    assert bytes(buf[ETH_HEADER_LEN:]) == bytes(
        ARP(op=oper, hwsrc=MAC_A.hex(":"), psrc="192.0.2.1", hwdst=tha.hex(":"), pdst="192.0.2.2")
    )


@pytest.mark.parametrize("op", ["who-has", "is-at"])
def test_parse_scapy(op: str) -> None:
    arp = ARP(op=op, hwsrc="02:aa:bb:cc:dd:ee", psrc="10.1.2.3", hwdst="02:11:22:33:44:55", pdst="10.9.8.7")
    raw = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:aa:bb:cc:dd:ee") / arp).ljust(60, b"\x00")
    frame = EthernetFrame.parse(memoryview(raw))
    pkt = ArpPacket.parse(frame.payload)  # the 18 padding bytes are ignored
    assert pkt.oper == (ARP_OP_REQUEST if op == "who-has" else ARP_OP_REPLY)
    assert pkt.sha == bytes.fromhex("02aabbccddee")
    assert pkt.spa == socket.inet_aton("10.1.2.3")
    assert pkt.tha == bytes.fromhex("021122334455")
    assert pkt.tpa == socket.inet_aton("10.9.8.7")
    assert all(type(getattr(pkt, f)) is bytes for f in ("sha", "spa", "tha", "tpa"))


def test_probe_flag() -> None:
    # RFC 5227 probe: sender IP 0.0.0.0.
    raw = bytes(ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="0.0.0.0", pdst="192.0.2.9"))
    assert ArpPacket.parse(memoryview(raw)).is_probe
    raw = bytes(ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="192.0.2.9", pdst="192.0.2.9"))
    assert not ArpPacket.parse(memoryview(raw)).is_probe


def _arp(htype: int = 1, ptype: int = 0x0800, hlen: int = 6, plen: int = 4, oper: int = 1) -> bytes:
    return (
        htype.to_bytes(2, "big")
        + ptype.to_bytes(2, "big")
        + bytes([hlen, plen])
        + oper.to_bytes(2, "big")
        + MAC_A
        + IP_A
        + bytes(6)
        + IP_B
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"", "too_short", id="too_short-empty"),
        pytest.param(_arp()[:27], "too_short", id="too_short-27_bytes"),
        pytest.param(_arp(htype=6), "unsupported_format", id="unsupported_format-ieee_802_networks"),
        pytest.param(_arp(htype=0x0101), "unsupported_format", id="unsupported_format-htype_0x0101"),
        pytest.param(_arp(ptype=0x86DD), "unsupported_format", id="unsupported_format-ptype_ip6"),
        pytest.param(_arp(ptype=0x0000), "unsupported_format", id="unsupported_format-ptype_0"),
        pytest.param(_arp(hlen=8), "unsupported_format", id="unsupported_format-hlen_8"),
        pytest.param(_arp(plen=16), "unsupported_format", id="unsupported_format-plen_16"),
        pytest.param(_arp(hlen=4, plen=6), "unsupported_format", id="unsupported_format-hlen_plen_swapped"),
        pytest.param(_arp(oper=0), "bad_oper", id="bad_oper-0"),
        pytest.param(_arp(oper=3), "bad_oper", id="bad_oper-rarp_request_rfc_903"),
        pytest.param(_arp(oper=4), "bad_oper", id="bad_oper-rarp_reply"),
        pytest.param(_arp(oper=0x0101), "bad_oper", id="bad_oper-0x0101"),
        pytest.param(_arp(htype=6, oper=9), "unsupported_format", id="unsupported_format-format_is_checked_first"),
    ],
)
def test_malformed(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as exc:
        ArpPacket.parse(memoryview(raw))
    assert exc.value.reason == reason
