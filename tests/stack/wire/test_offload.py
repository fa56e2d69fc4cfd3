"""Software TSO and checksum completion (stack/wire/offload.py), checked by scapy as an independent codec."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from pytcp_green.stack.wire.offload import complete_tcp_checksum, segment_tcp, wire_payload

PAYLOAD = bytes(range(256)) * 20  # 5,120 bytes: three 1,448-byte segments and a short one


def _checksums_valid(pkt: Packet) -> bool:
    """scapy recomputes the checksums of a copy with them cleared; they must equal what we wrote."""
    fresh = pkt.copy()
    del fresh[TCP].chksum
    if IP in fresh:
        del fresh[IP].chksum
    rebuilt = Ether(bytes(fresh))
    return bool(rebuilt[TCP].chksum == pkt[TCP].chksum and (IP not in pkt or rebuilt[IP].chksum == pkt[IP].chksum))


@pytest.mark.parametrize("ip", [IP(src="198.18.0.2", dst="198.18.0.1", id=700, flags="DF"),
                                IPv6(src="fd00:77::2", dst="fd00:77::1")], ids=["ipv4", "ipv6"])
def test_a_super_segment_is_cut_into_valid_segments(ip: Packet) -> None:
    sup = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / ip / TCP(
        sport=4000, dport=80, seq=0xFFFFF000, ack=77, flags="FPA", window=500,
        options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]) / PAYLOAD
    pieces = [Ether(bytes(p)) for p in segment_tcp(bytes(sup), 14, 1448)]
    assert [len(p[TCP].payload) for p in pieces] == [1448, 1448, 1448, 776]
    assert b"".join(bytes(p[TCP].payload) for p in pieces) == PAYLOAD
    assert [p[TCP].seq for p in pieces] == [(0xFFFFF000 + i * 1448) & 0xFFFFFFFF for i in range(4)]
    assert [str(p[TCP].flags) for p in pieces] == ["A", "A", "A", "FPA"]
    assert all(p[TCP].options == sup[TCP].options and p[TCP].ack == 77 for p in pieces)
    assert all(_checksums_valid(p) for p in pieces)
    if IP in sup:
        assert [p[IP].id for p in pieces] == [700, 701, 702, 703]
        assert [p[IP].len for p in pieces] == [20 + 32 + len(p[TCP].payload) for p in pieces]
    else:
        assert [p[IPv6].plen for p in pieces] == [32 + len(p[TCP].payload) for p in pieces]
    # The segment size of a super-segment the kernel coalesced follows from the link's MTU.
    assert wire_payload(bytes(sup), 14, 1500) == 1500 - len(ip) - 32


def test_a_partial_checksum_is_completed_and_anything_else_left_alone() -> None:
    pkt = Ether() / IP(src="198.18.0.1", dst="198.18.0.2") / TCP(sport=1, dport=2, chksum=0x1234) / b"data"
    done = Ether(bytes(complete_tcp_checksum(bytes(pkt), 14)))
    assert _checksums_valid(done) and done[TCP].chksum != 0x1234
    udp_like = bytes(Ether() / IP(src="198.18.0.1", dst="198.18.0.2", proto=17) / b"12345678")
    assert segment_tcp(udp_like, 14, 1000) == [bytearray(udp_like)]
    assert complete_tcp_checksum(udp_like, 14) == bytearray(udp_like)
