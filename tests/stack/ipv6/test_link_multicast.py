"""RFC 4443 §2.4 (e.4, e.5): no ICMPv6 error about a packet that arrived in a link-layer multicast
or broadcast frame, even to a unicast IPv6 destination, except e.3's (Parameter Problem code 2
for an option whose action bits are 10)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ParamProblem,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    fragment6,
)
from scapy.layers.l2 import Ether

from ..helpers import STACK_MAC, sent
from .helpers import PEER_IP6, STACK_IP6, learn_peer, make_stack6, to_stack

MACS = [
    (STACK_MAC, True),  # unicast frame: errors as usual
    ("33:33:00:00:00:01", False),  # e.4: link-layer multicast
    ("ff:ff:ff:ff:ff:ff", False),  # e.5: link-layer broadcast
]


def _errors(frames: list[Ether]) -> list[Ether]:
    return [f for f in frames if f.haslayer(ICMPv6DestUnreach) or f.haslayer(ICMPv6ParamProblem)]


@pytest.mark.parametrize(("mac", "want"), MACS)
def test_port_unreachable_only_for_a_unicast_frame(mac: str, want: bool) -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    pkt = IPv6(src=PEER_IP6, dst=STACK_IP6) / UDP(sport=5000, dport=4444) / b"nobody listens"
    stack.receive(iface, to_stack(pkt, mac), 11.0)
    errors = _errors(sent(iface))
    assert bool(errors) == want
    if want:
        assert errors[0][ICMPv6DestUnreach].code == 4
    else:
        assert stack.stats["icmp6.error_suppressed.link_multicast"] == 1


@pytest.mark.parametrize(("mac", "want"), MACS)
def test_unknown_next_header_and_option_11_only_for_a_unicast_frame(mac: str, want: bool) -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    stack.receive(iface, to_stack(IPv6(src=PEER_IP6, dst=STACK_IP6, nh=253) / b"12345678", mac), 11.0)
    opt11 = IPv6(src=PEER_IP6, dst=STACK_IP6) / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0xDE, optdata=b"z")]) \
        / UDP(sport=5000, dport=4000)
    stack.receive(iface, to_stack(opt11, mac), 11.0)
    assert len(_errors(sent(iface))) == (2 if want else 0)


@pytest.mark.parametrize(("mac", "_want"), MACS)
def test_option_10_is_answered_even_in_a_multicast_frame(mac: str, _want: bool) -> None:
    # e.3's exception carries over to e.4/e.5 ("the exceptions from e.3 apply to this case, too").
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    pkt = IPv6(src=PEER_IP6, dst=STACK_IP6) / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x9E, optdata=b"z")]) \
        / UDP(sport=5000, dport=4000)
    stack.receive(iface, to_stack(pkt, mac), 11.0)
    (pp,) = _errors(sent(iface))
    assert pp[ICMPv6ParamProblem].code == 2


def test_reassembled_packet_keeps_the_flag_and_echo_is_still_answered() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    whole = IPv6(src=PEER_IP6, dst=STACK_IP6) / IPv6ExtHdrFragment(id=7) / UDP(sport=5000, dport=4444) / (b"x" * 2000)
    for frag in fragment6(whole, 1000):  # type: ignore[no-untyped-call]
        stack.receive(iface, to_stack(frag, "33:33:00:00:00:01"), 11.0)
    assert _errors(sent(iface)) == [] and stack.stats["ip6.rx.reassembled"] == 1
    # Not an error: an echo request in a multicast frame is answered (§2.4 e concerns errors only).
    stack.receive(iface, to_stack(IPv6(src=PEER_IP6, dst=STACK_IP6) / ICMPv6EchoRequest(id=1, seq=1),
                                  "33:33:00:00:00:01"), 12.0)
    assert any(f.haslayer(ICMPv6EchoReply) for f in sent(iface))
