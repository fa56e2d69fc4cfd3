"""IPv4 reassembly in the core (RFC 791 §3.2, RFC 815): fragments built by scapy, answers read by scapy."""

from __future__ import annotations

import random

from scapy.layers.inet import ICMP, IP, UDP, IPerror, fragment
from scapy.layers.l2 import Ether

from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.reassembly import FRAGMENT_OVERHEAD
from pytcp_green.stack.stack import Stack

from ..helpers import PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, learned_stack, sent, udp_socket


def frags(payload: bytes, size: int = 1480, ident: int = 77, **ip: object) -> list[bytes]:
    pkt = IP(src=PEER_IP, dst=STACK_IP, id=ident, **ip) / UDP(sport=4000, dport=6000) / payload
    return [bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / f) for f in fragment(pkt, fragsize=size)]


def bound(stack: Stack) -> UdpSocket:
    return udp_socket(stack, 6000)


def test_fragments_in_any_order_make_the_datagram() -> None:
    stack, iface = learned_stack()
    sock = bound(stack)
    payload = random.Random(1).randbytes(60000)
    pieces = frags(payload)
    assert len(pieces) > 40
    random.Random(2).shuffle(pieces)
    for frame in pieces:
        stack.receive(iface, frame, 1.0)
    data, source = sock.recvfrom(65535, 1.0)
    assert data == payload and source == (PEER_IP, 4000)
    assert stack.stats["ip4.reasm.ok"] == 1
    assert len(stack.ip4.reassembler) == 0 and stack.ip4.reassembler.memory == 0


def test_echo_request_of_4000_bytes_is_reassembled_and_answered_in_fragments() -> None:
    stack, iface = learned_stack()
    req = IP(src=PEER_IP, dst=STACK_IP, id=9) / ICMP(id=5, seq=1) / (b"x" * 4000)
    for f in reversed(fragment(req, fragsize=1480)):
        stack.receive(iface, bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / f), 1.0)
    out = sent(iface)
    assert len(out) == 3 and all(f[IP].flags.MF for f in out[:-1])
    # scapy's own defragmenter reassembles our reply: the oracle checks offsets and lengths.
    from scapy.layers.inet import defragment

    (reply,) = defragment([f[IP] for f in out])
    assert reply[ICMP].type == 0 and bytes(reply[ICMP].payload) == b"x" * 4000


def test_duplicate_fragment_is_counted_not_fatal() -> None:
    stack, iface = learned_stack()
    sock = bound(stack)
    pieces = frags(b"d" * 3000)
    for frame in [pieces[0], pieces[0], *pieces[1:]]:
        stack.receive(iface, frame, 1.0)
    assert sock.recvfrom(65535, 1.0)[0] == b"d" * 3000
    assert stack.stats["ip4.reasm.duplicate"] == 1


def test_overlapping_fragment_drops_the_whole_datagram() -> None:
    stack, iface = learned_stack()
    sock = bound(stack)
    pieces = frags(b"o" * 3000)
    overlap = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP, id=77, proto=17, flags="MF",
                                                     frag=100) / (b"z" * 800)
    stack.receive(iface, pieces[0], 1.0)
    stack.receive(iface, bytes(overlap), 1.0)
    for frame in pieces[1:]:
        stack.receive(iface, frame, 1.0)
    assert stack.stats["ip4.reasm.drop.overlap"] == 1
    assert not sock.queue and stack.stats["ip4.reasm.ok"] == 0


def test_inconsistent_last_fragments_drop_the_datagram() -> None:
    stack, iface = learned_stack()
    pieces = frags(b"i" * 3000)
    last_elsewhere = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP, id=77, proto=17,
                                                            frag=500) / (b"z" * 16)
    stack.receive(iface, pieces[-1], 1.0)
    stack.receive(iface, bytes(last_elsewhere), 1.0)
    assert stack.stats["ip4.reasm.drop.inconsistent"] == 1
    odd = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP, id=78, proto=17, flags="MF") / (b"z" * 13)
    stack.receive(iface, bytes(odd), 1.0)
    assert stack.stats["ip4.reasm.drop.bad_length"] == 1
    huge = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP, id=79, proto=17,
                                                  frag=8189) / (b"z" * 100)
    stack.receive(iface, bytes(huge), 1.0)
    assert stack.stats["ip4.reasm.drop.too_big"] == 1
    assert len(stack.ip4.reassembler) == 0


def test_timeout_sends_time_exceeded_only_when_the_first_fragment_came() -> None:
    stack, iface = learned_stack(**{"net.ipv4.ipfrag_time": 5.0})
    with_first = frags(b"t" * 3000, ident=1)
    without_first = frags(b"t" * 3000, ident=2)
    stack.receive(iface, with_first[0], 1.0)
    stack.receive(iface, without_first[1], 2.0)
    stack.poll(5.9)
    assert len(stack.ip4.reassembler) == 2
    stack.poll(6.0)
    (err,) = sent(iface)
    assert err[ICMP].type == 11 and err[ICMP].code == 1 and err[IPerror].id == 1
    assert len(stack.ip4.reassembler) == 1
    stack.poll(7.0)
    assert sent(iface) == []
    assert stack.stats["ip4.reasm.drop.timeout"] == 2
    assert len(stack.ip4.reassembler) == 0 and stack.ip4.reassembler.memory == 0
    assert stack.next_deadline() is None or stack.next_deadline() > 7.0  # type: ignore[operator]


def test_fragment_flood_with_missing_pieces_keeps_memory_bounded() -> None:
    high, low = 200_000, 150_000
    stack, iface = learned_stack(**{"net.ipv4.ipfrag_high_thresh": high, "net.ipv4.ipfrag_low_thresh": low})
    reasm = stack.ip4.reassembler
    peak = 0
    rng = random.Random(3)
    for ident in range(1000):
        # Every datagram lacks its last fragment: none can ever complete.
        for frame in frags(rng.randbytes(4000), ident=ident)[:-1]:
            stack.receive(iface, frame, 1.0)
            peak = max(peak, reasm.memory)
    assert peak <= high + 1480 + FRAGMENT_OVERHEAD + 20
    assert reasm.memory <= high
    assert stack.stats["ip4.reasm.drop.memory"] > 900
    assert len(reasm) * 2 * (1480 + FRAGMENT_OVERHEAD) <= high + 3000


def test_tiny_fragments_hit_the_per_datagram_cap() -> None:
    stack, iface = learned_stack(**{"net.ipv4.ipfrag_max_frags": 16})
    for i in range(20):
        f = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP, id=5, proto=17, flags="MF",
                                                   frag=i) / (b"s" * 8)
        stack.receive(iface, bytes(f), 1.0)
    assert stack.stats["ip4.reasm.drop.too_many_frags"] == 1
    assert reasm_size(stack) <= 4 * (8 + FRAGMENT_OVERHEAD)


def reasm_size(stack: Stack) -> int:
    return stack.ip4.reassembler.memory
