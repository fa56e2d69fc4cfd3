"""Echo replies carry back the request's Record Route and Timestamp options (RFC 1122 §3.2.2.6),
built by scapy, answered by a Stack, read back by scapy (the kernel's `ping -R` against the
stack is in tests/kernel/test_foundation.py)."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, IPOption, IPOption_RR, IPOption_Timestamp
from scapy.layers.l2 import Ether

from stack.helpers import PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, learned_stack, sent


def reply_to(*options: object) -> IP:
    stack, iface = learned_stack()
    request = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP, options=list(options)) / \
        ICMP(type=8, id=7, seq=1) / b"ping"
    stack.receive(iface, bytes(request), 12.5)
    (frame,) = sent(iface)
    reply = frame[IP]
    assert reply[ICMP].type == 0 and bytes(reply[ICMP].payload) == b"ping"
    again = IP(bytes(reply))
    del again.chksum
    assert IP(bytes(again)).chksum == reply.chksum  # the header checksum covers the options
    return reply


def options_of(reply: IP) -> list[object]:
    """The reply's options without the EOL/NOP padding."""
    return [o for o in reply.options if o.option not in (0, 1)]


def test_record_route_gets_our_address_in_the_next_slot() -> None:
    reply = reply_to(IPOption_RR(routers=["198.18.0.1", "0.0.0.0", "0.0.0.0"], pointer=8))
    (rr,) = options_of(reply)
    assert rr.option == 7 and rr.routers == ["198.18.0.1", STACK_IP, "0.0.0.0"] and rr.pointer == 12


def test_full_record_route_goes_back_as_it_came() -> None:
    reply = reply_to(IPOption_RR(routers=["198.18.0.1"], pointer=8))
    (rr,) = options_of(reply)
    assert rr.routers == ["198.18.0.1"] and rr.pointer == 8


def test_timestamp_only_gets_a_flagged_time() -> None:
    reply = reply_to(IPOption(b"\x44\x0c\x05\x00" + bytes(8)))  # timestamps only, two free slots
    (ts,) = options_of(reply)
    raw = bytes(ts)
    assert raw[2] == 9  # pointer moved by one 4-byte slot
    stamp = int.from_bytes(raw[4:8], "big")
    assert stamp == 0x80000000 | 12500  # 12.5 s in ms, high bit: not ms since midnight UT (RFC 791)


def test_timestamp_without_room_counts_the_overflow() -> None:
    reply = reply_to(IPOption_Timestamp(flg=1, pointer=13, length=12, oflw=2))  # address+time, full
    raw = bytes(options_of(reply)[0])
    assert raw[2] == 13 and raw[3] >> 4 == 3 and raw[3] & 0x0F == 1


def test_without_options_the_reply_has_none() -> None:
    assert reply_to().ihl == 5

