"""Fuzzed IPv4 frames (IGMP queries and reports, options, ping replies, martian sources) never escape receive,
and the IGMP parser only ever raises Malformed."""

from __future__ import annotations

import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.igmp import IGMP, IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group
from scapy.layers.inet import ICMP, IP, UDP, IPOption_Router_Alert

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.checksum import checksum
from pytcp_green.stack.wire.igmp import IgmpMessage

from ..helpers import PEER_IP, STACK_IP, learned_stack, udp_socket

RA = [IPOption_Router_Alert()]
SEEDS = [
    bytes(IP(src=PEER_IP, dst="224.0.0.1", ttl=1, proto=2, options=RA) / IGMPv3_MQ(mrcode=10)),
    bytes(IP(src=PEER_IP, dst="239.1.2.3", ttl=1, proto=2, options=RA) / IGMPv3_MQ(gaddr="239.1.2.3",
                                                                                  srcaddrs=["10.0.0.1"])),
    bytes(IP(src=PEER_IP, dst="224.0.0.1", ttl=1, proto=2) / IGMP(type=0x11, mrcode=100)),
    bytes(IP(src=PEER_IP, dst="239.1.2.3", ttl=1, proto=2) / IGMP(type=0x16, gaddr="239.1.2.3")),
    bytes(IP(src=PEER_IP, dst="224.0.0.22", ttl=1, proto=2) / IGMPv3_MR(records=[IGMPv3_MR_Group(maddr="239.1.2.3")])),
    bytes(IP(src=PEER_IP, dst=STACK_IP, options=RA) / ICMP(type=0, id=4242) / b"reply"),
    bytes(IP(src=PEER_IP, dst="239.1.2.3") / UDP(sport=7, dport=5000) / b"group"),
    bytes(IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) / b"dhcp"),
]

STACK, IFACE = learned_stack()
SOCK = udp_socket(STACK, 5000)
SOCK.add_membership(socket.inet_aton("239.1.2.3"), bytes(4), 0.0)
PING = STACK.icmp4.ping.socket()
PING.bind(("", 4242))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=6),
       st.integers(0, 16), st.floats(1.0, 500.0))
def test_fuzzed_ipv4_never_escapes_receive(seed: bytes, flips: list[tuple[int, int]], cut: int, now: float) -> None:
    pkt = bytearray(seed)
    for pos, value in flips:
        if pos < len(pkt):
            pkt[pos] = value
    pkt = pkt[: max(len(pkt) - cut, 0)]
    frame = bytes.fromhex("01005e000001" "020000000001" "0800") + bytes(pkt)
    STACK.receive(IFACE, frame, now)
    STACK.poll(now + 20.0)
    IFACE.tx.clear()
    SOCK.queue.clear()
    SOCK.queued_bytes = 0
    PING.queue.clear()
    PING.queued_bytes = 0
    assert STACK.stats["stack.drop.internal_error"] == 0
    assert STACK.stats["stack.timer_error"] == 0


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from([0x11, 0x12, 0x16, 0x17, 0x22, 0x99]), st.binary(max_size=64))
def test_igmp_parser_raises_only_malformed(kind: int, tail: bytes) -> None:
    raw = bytearray(bytes((kind,)) + tail)
    if len(raw) >= 4:  # a valid checksum, so the parser goes past it into the lengths and counts
        raw[2:4] = b"\0\0"
        raw[2:4] = checksum(raw).to_bytes(2, "big")
    try:
        msg = IgmpMessage.parse(memoryview(bytes(raw)))
    except Malformed:
        return
    assert msg.type == kind


def test_the_fuzz_reached_igmp() -> None:
    assert STACK.stats["igmp.rx.query_v3"] + STACK.stats["igmp.rx.query_v2"] > 0
