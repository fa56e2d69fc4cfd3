"""D-SACK (RFC 2883): duplicates reported first in the SACK option, and what the sender does with one."""

from __future__ import annotations

import pytest

from pytcp_green.stack.tcp.recovery import reorder_window
from pytcp_green.stack.wire.tcp import ACK, sack_option

from .host import Peer
from .test_behaviour import establish

M32 = 0xFFFFFFFF


def _peer(dsack: int = 1) -> Peer:
    peer = Peer({"net.ipv4.tcp_sack": 1, "net.ipv4.tcp_dsack": dsack})
    establish(peer, sack=True)
    return peer


@pytest.mark.parametrize("dsack", [1, 0])
def test_a_segment_received_twice_is_reported_as_the_first_block(dsack: int) -> None:
    peer = _peer(dsack)
    start = peer.seq
    peer.send(ACK, data=b"a" * 500)
    peer.seq += 500
    peer.out()
    peer.send(ACK, seq=start, data=b"a" * 500)  # the same text again (a spurious retransmission)
    (ack,) = peer.out()
    assert ack.ack == peer.seq & M32
    if dsack:
        assert ack.sack == [(start & M32, (start + 500) & M32)] and peer.host.stats["tcp.dsack_sent"] == 1
    else:
        assert ack.sack is None and peer.host.stats["tcp.dsack_sent"] == 0
    peer.send(ACK, data=b"b" * 10)  # reported once: the next ACK carries no D-SACK
    peer.seq += 10
    peer.advance(1.0)
    assert all(seg.sack is None for seg in peer.out())


def test_a_partly_old_segment_reports_its_old_part() -> None:
    peer = _peer()
    start = peer.seq
    peer.send(ACK, data=b"a" * 500)
    peer.seq += 500
    peer.out()
    peer.send(ACK, seq=start + 300, data=b"a" * 200 + b"c" * 100)  # 200 old bytes, 100 new
    peer.seq += 100
    (ack,) = peer.out()
    assert ack.ack == peer.seq & M32 and ack.sack == [((start + 300) & M32, (start + 500) & M32)]


def test_a_duplicate_out_of_order_segment_comes_before_its_block() -> None:
    peer = _peer()
    base = peer.seq
    peer.send(ACK, seq=base + 1000, data=b"x" * 1000)
    peer.send(ACK, seq=base + 2000, data=b"y" * 500)
    peer.out()
    peer.send(ACK, seq=base + 2000, data=b"y" * 500)  # held already, beyond the gap
    (ack,) = peer.out()
    assert ack.ack == base & M32
    assert ack.sack == [((base + 2000) & M32, (base + 2500) & M32), ((base + 1000) & M32, (base + 2500) & M32)]


def test_a_dsack_received_widens_racks_reordering_window_once_per_round_trip() -> None:
    peer = _peer()
    sock = peer.sock
    assert sock is not None and peer.tcb is not None
    tcb = peer.tcb
    tcb.rto.sample(0.010)  # min_RTT and SRTT of 10 ms
    before = reorder_window(tcb)
    sock.send(b"d" * 2000, peer.now)
    peer.out()
    una = peer.snd_una()
    # The peer acknowledges half and reports the first 1000 bytes as received twice.
    peer.send(ACK, ack=(una + 1000) & M32, options=sack_option([(una, (una + 1000) & M32)]))
    assert peer.host.stats["tcp.dsack_recv"] == 1 and tcb.dsack.mult == 2
    assert reorder_window(tcb) == pytest.approx(min(2 * before, tcb.rto.srtt or 0))
    # Another D-SACK before what was in flight then is acknowledged: the same round trip, no growth.
    peer.send(ACK, ack=(una + 1500) & M32, options=sack_option([(una, (una + 1000) & M32)]))
    assert peer.host.stats["tcp.dsack_recv"] == 2 and tcb.dsack.mult == 2
    for _ in range(16):
        tcb.dsack.recovery_started()
    assert tcb.dsack.mult == 1  # RFC 8985 §6.2: back after 16 recoveries without a D-SACK
