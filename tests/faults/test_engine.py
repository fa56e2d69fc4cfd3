"""The fault engine frame by frame, with scapy as the independent codec that builds what goes in
and checks what comes out (checksums, sequence numbers, flags, addresses)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from stack.helpers import PEER_IP as PEER
from stack.helpers import PEER_MAC, STACK_MAC
from stack.helpers import STACK_IP as STACK

from pytcp_green.faults.engine import FaultEngine
from pytcp_green.faults.kinds import FaultSpec, make


def inbound(payload: bytes, seq: int = 1000, ack: int = 5000, flags: str = "PA", v6: bool = False) -> bytes:
    """A frame from the peer (port 80) to the stack (port 40000)."""
    ip = IPv6(src="fd00::1", dst="fd00::2") if v6 else IP(src=PEER, dst=STACK)
    return bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / ip / TCP(sport=80, dport=40000, seq=seq, ack=ack,
                                                               flags=flags) / payload)


def outbound(payload: bytes, seq: int = 5000, ack: int = 1000, flags: str = "PA") -> bytes:
    return bytes(Ether(src=STACK_MAC, dst=PEER_MAC) / IP(src=STACK, dst=PEER) / TCP(sport=40000, dport=80, seq=seq,
                                                                                  ack=ack, flags=flags) / payload)


def checked(frame: bytes) -> Ether:
    """The frame parsed by scapy, after checking that its IP and TCP checksums are right."""
    pkt = Ether(frame)
    l3 = pkt[IP] if IP in pkt else pkt[IPv6]
    rebuilt = Ether(bytes(pkt))
    for layer in (IP, TCP):
        if layer in pkt:
            del rebuilt[layer].chksum
    again = Ether(bytes(rebuilt))
    assert pkt[TCP].chksum == again[TCP].chksum, "bad TCP checksum"
    if IP in pkt:
        assert pkt[IP].chksum == again[IP].chksum, "bad IP checksum"
        assert pkt[IP].len == len(bytes(l3))
    return pkt


def engine_with(*specs: FaultSpec) -> FaultEngine:
    engine = FaultEngine(14, seed=1)
    for spec in specs:
        engine.add(spec, 0.0)
    return engine


def timed(engine: FaultEngine, direction: str) -> list[tuple[float, bytes]]:
    """Everything the engine holds for ``direction``, with its delivery time."""
    out = []
    while (deadline := engine.next_deadline(direction)) is not None:
        out += [(deadline, frame) for frame in engine.pop_due(direction, deadline)]
    return out


@pytest.mark.parametrize("v6", [False, True])
def test_slicer_recuts_a_segment_into_valid_segments_of_the_same_stream(v6: bool) -> None:
    payload = bytes(range(256)) * 4
    engine = engine_with(make("slicer", size=300, delay="1ms"))
    engine.push("in", inbound(payload, v6=v6), 10.0)
    pieces = timed(engine, "in")
    assert [round(t - 10.0, 6) for t, _ in pieces] == [0.0, 0.001, 0.002, 0.003]
    tcps = [checked(frame)[TCP] for _, frame in pieces]
    assert [t.seq for t in tcps] == [1000, 1300, 1600, 1900]
    assert b"".join(bytes(t.payload) for t in tcps) == payload
    assert [str(t.flags) for t in tcps] == ["A", "A", "A", "PA"]  # PSH only where the segment ended
    assert all(t.ack == 5000 for t in tcps)


def test_limit_data_ends_the_stream_at_the_byte_and_resets_the_sender() -> None:
    engine = engine_with(make("limit_data", bytes=1000))
    engine.push("in", inbound(b"a" * 600, seq=1000), 0.0)
    engine.push("in", inbound(b"b" * 600, seq=1600), 0.0)
    engine.push("in", inbound(b"c" * 600, seq=2200), 0.0)  # after the cut: dropped
    to_stack = [checked(f)[TCP] for _, f in timed(engine, "in")]
    assert [(t.seq, len(t.payload), str(t.flags)) for t in to_stack] == [(1000, 600, "PA"), (1600, 400, "FPA")]
    (rst_frame,) = [f for _, f in timed(engine, "out")]
    rst = checked(rst_frame)
    assert (rst[Ether].src, rst[Ether].dst, rst[IP].src, rst[IP].dst) == (STACK_MAC, PEER_MAC, STACK, PEER)
    assert (rst[TCP].sport, rst[TCP].dport, rst[TCP].seq, str(rst[TCP].flags)) == (40000, 80, 5000, "R")
    # The stack's ACK of the FIN goes nowhere; its own FIN (the application closed) is answered by a RST.
    engine.push("out", outbound(b"", seq=5000, ack=2001, flags="A"), 1.0)
    assert timed(engine, "out") == []
    engine.push("out", outbound(b"", seq=5000, ack=2001, flags="FA"), 2.0)
    assert timed(engine, "out") == []
    (answer,) = [checked(f)[TCP] for _, f in timed(engine, "in")]
    assert (answer.sport, answer.dport, answer.seq, str(answer.flags)) == (80, 40000, 2001, "R")


def test_reset_peer_resets_both_ends_and_refuses_a_syn() -> None:
    engine = engine_with(make("reset_peer", port=80))
    engine.push("out", outbound(b"GET /", seq=5000, ack=1000), 0.0)
    (to_peer,) = [checked(f)[TCP] for _, f in timed(engine, "out")]
    (to_stack,) = [checked(f)[TCP] for _, f in timed(engine, "in")]
    assert (to_peer.dport, to_peer.seq, str(to_peer.flags), len(to_peer.payload)) == (80, 5000, "R", 0)
    assert (to_stack.dport, to_stack.seq, str(to_stack.flags)) == (40000, 1000, "R")
    engine.push("in", inbound(b"late", seq=1000), 1.0)  # the flow is cut: nothing more of it passes
    assert timed(engine, "in") == []
    engine.push("out", outbound(b"", seq=7000, ack=0, flags="S"), 2.0)
    assert timed(engine, "out") == []
    (refusal,) = [checked(f)[TCP] for _, f in timed(engine, "in")]
    assert (str(refusal.flags), refusal.ack) == ("RA", 7001)


def test_packet_faults_without_a_match_take_every_frame_and_with_one_only_the_flow() -> None:
    arp = bytes(Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=PEER, pdst=STACK))
    engine = engine_with(make("down"))
    engine.push("in", arp, 0.0)
    engine.push("out", outbound(b"x"), 0.0)
    assert timed(engine, "in") == timed(engine, "out") == []
    other = engine_with(make("timeout", direction="in", port=443))
    other.push("in", arp, 0.0)
    other.push("in", inbound(b"x"), 0.0)  # port 80: not the flow
    assert [f for _, f in timed(other, "in")] == [arp, inbound(b"x")]


def test_latency_with_jitter_replays_from_the_seed_and_never_reorders() -> None:
    def times(seed: int) -> list[float]:
        engine = FaultEngine(14, seed)
        engine.add(make("latency", delay="50ms", jitter="40ms"), 0.0)
        for i in range(50):
            engine.push("in", inbound(b"%d" % i, seq=1000 + i), i * 0.001)
        out = timed(engine, "in")
        assert [checked(f)[TCP].seq for _, f in out] == [1000 + i for i in range(50)]  # in order
        return [t for t, _ in out]

    first = times(3)
    assert first == times(3) and first != times(4)
    assert all(t >= 0.010 for t in first)  # delay - jitter at least


def test_removed_fault_stops_applying() -> None:
    engine = FaultEngine(14, 1)
    fault = engine.add(make("timeout"), 0.0)
    engine.push("in", inbound(b"x"), 0.0)
    assert engine.remove(fault) and not engine.remove(fault)
    engine.push("in", inbound(b"y"), 1.0)
    assert [bytes(checked(f)[TCP].payload) for _, f in timed(engine, "in")] == [b"y"]
    assert fault.stats["dropped"] == 1


@pytest.mark.parametrize(("words", "canonical"), [
    ("latency delay=100ms jitter=10ms direction=in port=8000",
     "latency delay=0.1s jitter=0.01s direction=in port=8000"),
    ("bandwidth rate=1mbit direction=out host=198.18.0.1", "bandwidth rate=1000000.0bit direction=out host=198.18.0.1"),
    ("reset_peer", "reset_peer direction=both"),
    ("limit_data bytes=10", "limit_data bytes=10 direction=in"),
])
def test_fault_words_read_and_write_back(words: str, canonical: str) -> None:
    spec = FaultSpec.parse(words)
    assert str(spec) == canonical
    assert FaultSpec.parse(str(spec)) == spec


@pytest.mark.parametrize(("words", "error"), [
    ("", "starts with its kind"),
    ("jam", "unknown fault 'jam'"),
    ("latency delay=100", "give a time unit"),
    ("latency wait=1s", "latency has no parameter wait"),
    ("bandwidth", "rate > 0"),
    ("slicer size=0", "size >= 1"),
    ("latency delay=1s direction=sideways", "direction 'sideways'"),
    ("timeout port=70000", "not in 1..65535"),
    ("timeout host=nowhere", "does not appear to be an IPv4 or IPv6 address"),
    ("latency delay", "not key=value"),
])
def test_bad_fault_words_are_refused_with_the_reason(words: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        FaultSpec.parse(words)
