"""Receive coalescing (tcp/gro.py): in-order segments of one receive batch reach the connection as one,
and nothing a sender relies on (its ACKs, SACK, duplicate ACKs) changes."""

from __future__ import annotations

import hashlib

from pytcp_green.stack.tcp.receive import QUICKACKS
from pytcp_green.stack.wire.tcp import ACK, PSH

from .host import Peer
from .test_behaviour import establish


def _batch(peer: Peer, segments: list[tuple[int, bytes, int, tuple[int, int] | None]]) -> None:
    """Deliver (seq offset from the peer's next sequence, data, flags, timestamps) as one device read."""
    start = peer.seq
    peer.host.tcp.begin_batch()
    for offset, data, flags, ts in segments:
        peer.send(flags, seq=start + offset, data=data, ts=ts)
    peer.host.tcp.end_batch(peer.now)


def _read_all(peer: Peer) -> bytes:
    assert peer.sock is not None
    return peer.sock.recv(1 << 20, peer.now)


def test_a_batch_of_in_order_segments_is_one_arrival_and_one_ack() -> None:
    peer = Peer()
    establish(peer)
    chunks = [bytes([n]) * 1000 for n in range(10)]
    _batch(peer, [(n * 1000, c, ACK | (PSH if n == 9 else 0), None) for n, c in enumerate(chunks)])
    assert peer.host.stats["tcp.gro_merged"] == 9 and peer.host.stats["tcp.rx"] >= 10
    (ack,) = peer.out()
    assert ack.ack == (peer.seq + 10_000) & 0xFFFFFFFF and not ack.payload
    assert hashlib.sha256(_read_all(peer)).digest() == hashlib.sha256(b"".join(chunks)).digest()


def test_each_run_of_a_batch_is_acknowledged_like_a_gro_packet() -> None:
    """Linux ACKs every GRO packet of more than one full segment (RFC 5681 §4.2); a kernel sender ends
    its bursts with PSH, which ends a run.  A batch holding a small window's whole flight under one
    ACK would stall that sender (until its probe timeout and our delayed ACK) whenever the ACK is lost."""
    peer = Peer()
    establish(peer)
    for n in range(QUICKACKS):  # the quick ACKs of the connection's start, one segment each
        peer.send(ACK | PSH, seq=peer.seq + n * 1000, data=bytes([n]) * 1000)
    peer.seq += QUICKACKS * 1000
    peer.out()
    _read_all(peer)
    bursts = [(n * 1000, bytes([n]) * 1000, ACK | (PSH if n % 3 == 2 else 0), None) for n in range(6)]
    _batch(peer, bursts)
    assert peer.host.stats["tcp.gro_merged"] == 4  # two runs of three
    assert [(s.ack - peer.seq) & 0xFFFFFFFF for s in peer.out()] == [3000, 6000]
    assert _read_all(peer) == b"".join(data for _, data, _, _ in bursts)


def test_two_timestamped_segments_after_a_run_draw_an_ack() -> None:
    """A run longer than the MSS raises the segment-size estimate to the MSS; two full segments of
    MSS less the timestamps option (the size a Linux sender sends) must still be acknowledged at
    once, as Linux does (more than one full segment since the last ACK), not after the delayed-ACK
    timeout: a sender whose last ACK of a flight was lost probes with such segments."""
    peer = Peer({"net.ipv4.tcp_timestamps": 1})
    establish(peer, ts=True)
    size = 1460 - 12
    for n in range(QUICKACKS):
        peer.send(ACK, seq=peer.seq + n * size, data=bytes([n]) * size, ts=(7000, 0))
    peer.seq += QUICKACKS * size
    _batch(peer, [(n * size, bytes([n]) * size, ACK | (PSH if n == 3 else 0), (7001, 0)) for n in range(4)])
    peer.seq += 4 * size
    peer.out()
    for n in range(2):
        peer.send(ACK, seq=peer.seq + n * size, data=bytes([n]) * size, ts=(7002, 0))
    assert [(s.ack - peer.seq) & 0xFFFFFFFF for s in peer.out()] == [2 * size]


def _acks_for_a_hole(batched: bool) -> list[tuple[int, list[tuple[int, int]] | None]]:
    peer = Peer({"net.ipv4.tcp_sack": 1})
    establish(peer, sack=True)
    segments = [(n * 1000, bytes([n]) * 1000, ACK, None) for n in (0, 2, 3, 4, 5)]  # the second is lost
    if batched:
        _batch(peer, segments)
    else:
        start = peer.seq
        for offset, data, flags, _ in segments:
            peer.send(flags, seq=start + offset, data=data)
    return [((s.ack - peer.seq) & 0xFFFFFFFF, s.sack) for s in peer.out()]


def test_segments_beyond_a_hole_each_draw_their_own_duplicate_ack() -> None:
    batched = _acks_for_a_hole(batched=True)
    assert batched == _acks_for_a_hole(batched=False)
    # A quick ACK for the first segment, then one per out-of-order segment, each with its SACK block.
    assert len(batched) == 5 and all(ack == 1000 for ack, _ in batched)
    assert [len(sack or ()) for _, sack in batched] == [0, 1, 1, 1, 1]


def test_a_short_segment_psh_or_new_timestamps_end_a_run() -> None:
    peer = Peer({"net.ipv4.tcp_timestamps": 1})
    establish(peer, ts=True)
    ts1, ts2 = (7000, 0), (7001, 0)
    sizes = [(1000, ts1), (1000, ts1), (500, ts1),  # a run of three: the short one ends it
             (1000, ts1), (1000, ts2), (1000, ts2),  # the TSval changes: a new run of two
             (1000, ts2)]
    segments, offset = [], 0
    for n, (size, ts) in enumerate(sizes):
        segments.append((offset, bytes([n]) * size, ACK | (PSH if n == 5 else 0), ts))
        offset += size
    _batch(peer, segments)
    # Runs: [0, 1, 2] (2 merged), [3] alone, [4, 5] (PSH ends it: 1 merged), [6] alone.
    assert peer.host.stats["tcp.gro_merged"] == 3
    assert _read_all(peer) == b"".join(data for _, data, _, _ in segments)
