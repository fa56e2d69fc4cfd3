"""RFC 6890 special-purpose addresses (nothing answered from or to martian sources), directed-broadcast echo per
sysctl, IPv4 options on input (Router Alert RFC 6398 and others never break processing), IP_TOS on UDP and TCP."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption, IPOption_NOP, IPOption_Router_Alert, IPOption_RR
from scapy.layers.l2 import Ether

from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM

from ..helpers import PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, learned_stack, sent, udp_socket


def frame(src: str, dst: str = STACK_IP, mac: str = STACK_MAC, **ip: Any) -> Ether:
    return Ether(src=PEER_MAC, dst=mac) / IP(src=src, dst=dst, **ip)


@pytest.mark.parametrize(("src", "reason"), [
    ("0.1.2.3", "this_network_source"),
    ("0.0.0.0", "unspecified_source"),
    ("127.0.0.1", "loopback_off_link"),
    ("224.0.0.5", "multicast_source"),
    ("239.1.1.1", "multicast_source"),
    ("240.0.0.1", "reserved_source"),
    ("255.255.255.255", "broadcast_source"),
    ("198.18.0.255", "broadcast_source"),
])
def test_martian_sources_are_dropped_and_never_answered(src: str, reason: str) -> None:
    stack, iface = learned_stack()
    stack.receive(iface, bytes(frame(src) / ICMP(type=8) / b"ping"), 1.0)
    stack.receive(iface, bytes(frame(src) / UDP(sport=1, dport=9999) / b"closed port"), 1.0)
    assert stack.stats[f"ip4.drop.martian.{reason}"] == 2
    assert sent(iface) == []  # no echo reply, no port unreachable, not even ARP for the source


def test_loopback_destination_from_the_wire_is_martian() -> None:
    stack, iface = learned_stack()
    stack.receive(iface, bytes(frame(PEER_IP, dst="127.0.0.1") / ICMP(type=8)), 1.0)
    assert stack.stats["ip4.drop.martian.loopback_off_link"] == 1 and sent(iface) == []


def test_dhcp_from_zero_source_still_reaches_its_socket() -> None:
    stack, iface = learned_stack()
    sock = udp_socket(stack, 67)
    stack.receive(iface, bytes(frame("0.0.0.0", dst="255.255.255.255", mac="ff:ff:ff:ff:ff:ff")
                               / UDP(sport=68, dport=67) / b"discover"), 1.0)
    assert sock.recvfrom(100, 1.0) == (b"discover", ("0.0.0.0", 68))
    assert sent(iface) == []


def test_directed_broadcast_echo_follows_the_sysctl() -> None:
    stack, iface = learned_stack()
    request = bytes(frame(PEER_IP, dst="198.18.0.255", mac="ff:ff:ff:ff:ff:ff") / ICMP(type=8, id=1) / b"x")
    stack.receive(iface, request, 1.0)
    assert sent(iface) == [] and stack.stats["icmp4.drop.echo_ignored"] == 1
    stack.sysctl["net.ipv4.icmp_echo_ignore_broadcasts"] = 0
    stack.receive(iface, request, 2.0)
    [reply] = sent(iface)
    assert reply[IP].src == STACK_IP and reply[IP].dst == PEER_IP and reply[ICMP].type == 0


@pytest.mark.parametrize("options", [
    [IPOption_Router_Alert()],
    [IPOption_NOP(), IPOption_Router_Alert(), IPOption_NOP()],
    [IPOption_RR(routers=["10.0.0.1"])],
    [IPOption(b"\x44\x0c\x05\x00" + bytes(8))],  # timestamp, room for two
    [IPOption(b"\x82\x0b" + bytes(9))],  # security (RFC 1108)
    [IPOption(b"\x9e\x04\x00\x00")],  # an unknown option: skipped by its length
])
def test_options_on_input_never_break_processing(options: list[IPOption]) -> None:
    stack, iface = learned_stack()
    sock = udp_socket(stack, 5000)
    stack.receive(iface, bytes(frame(PEER_IP, options=options) / UDP(sport=7, dport=5000) / b"with options"), 1.0)
    assert sock.recvfrom(100, 1.0) == (b"with options", (PEER_IP, 7))
    stack.receive(iface, bytes(frame(PEER_IP, options=options) / ICMP(type=8, id=3, seq=4) / b"echo"), 1.0)
    [reply] = sent(iface)
    assert reply[ICMP].type == 0 and bytes(reply[ICMP].payload) == b"echo"
    # Record Route and Timestamp come back (RFC 1122 §3.2.2.6, tests/stack/ipv4/test_echo_options.py);
    # no other option is reflected.
    echoed = {o.option for o in options} & {7, 4}  # option numbers: RR 7, timestamp 68 = class 2, number 4
    assert {o.option for o in reply[IP].options if o.option not in (0, 1)} == echoed
    assert (reply[IP].ihl == 5) == (not echoed)


def test_router_alert_datagram_for_a_group_we_did_not_join_is_dropped_quietly() -> None:
    stack, iface = learned_stack()
    pkt = frame(PEER_IP, dst="239.5.5.5", mac="01:00:5e:05:05:05", ttl=1, options=[IPOption_Router_Alert()])
    stack.receive(iface, bytes(pkt / UDP(sport=1, dport=2) / b"x"), 1.0)
    assert stack.stats["ip4.drop.not_for_us"] == 1 and sent(iface) == []


@pytest.mark.parametrize("truncated", [b"\x94", b"\x94\x05\x00\x00", b"\x07\x01\x00\x00"])
def test_malformed_options_are_counted(truncated: bytes) -> None:
    stack, iface = learned_stack()
    pkt = IP(src=PEER_IP, dst=STACK_IP, options=[IPOption(truncated.ljust(4, b"\0"))]) / UDP(sport=1, dport=2)
    raw = bytearray(bytes(pkt))
    raw[20:24] = truncated.ljust(4, b"\0")
    raw[10:12] = b"\0\0"
    from pytcp_green.stack.wire.checksum import checksum

    raw[10:12] = checksum(raw[:24]).to_bytes(2, "big")
    stack.receive(iface, bytes(Ether(src=PEER_MAC, dst=STACK_MAC, type=0x0800) / bytes(raw)), 1.0)
    assert stack.stats["ip4.drop.bad_option"] == 1 and sent(iface) == []


def test_ip_tos_on_udp_and_tcp() -> None:
    stack, iface = learned_stack()
    sock = udp_socket(stack, 5000)
    sock.tos = 0xB9  # DSCP EF (46) with ECT(1): a datagram's ECN bits are the application's
    sock.sendto(b"x", (PEER_IP, 7), 1.0)
    [dgram] = sent(iface)
    assert dgram[IP].tos == 0xB9
    tcp = stack.socket(AF_INET, SOCK_STREAM)
    tcp.tos = 0x28  # DSCP AF11
    with pytest.raises(BlockingIOError):
        tcp.connect((PEER_IP, 80), 2.0)
    [syn] = sent(iface)
    assert syn[IP].tos == 0x28 and syn[TCP].flags == "S"
