"""The size of the reduction when loss shows (RFC 5681 §3.2 eq. 4, RFC 9438 §4.6): the FlightSize is
what was outstanding when the ACK revealing the loss arrived, not what that ACK left outstanding.

A receiver that acknowledges a whole flight with one ACK (a GRO receiver, Linux's stretch ACKs, the
batching of our own end_batch) moves SND.UNA almost to SND.MAX in the very ACK whose SACK block shows
the hole; measured after it, the flight is a segment or two and ssthresh falls to its floor on every
loss, which at 10% loss kept the window at two segments and turned each lost ACK into a timeout.
"""

from __future__ import annotations

from pytcp_green.stack.tcp.cc.cubic import BETA
from pytcp_green.stack.wire.tcp import ACK, sack_option

from .host import Peer
from .scenario import Scenario, run
from .test_behaviour import data_segments, establish

M32 = 0xFFFFFFFF


def test_ssthresh_comes_from_the_flight_before_the_revealing_ack() -> None:
    peer = Peer({"net.ipv4.tcp_sack": 1})
    establish(peer, sack=True)
    assert peer.sock is not None and peer.tcb is not None
    tcb = peer.tcb
    mss = tcb.eff_mss
    peer.sock.send(b"f" * (mss * 10), peer.now)
    segs = data_segments(peer.out())
    assert len(segs) == 10
    base = segs[0].seq
    # Segment 6 is lost; one ACK acknowledges 0-5 and SACKs 7-9: six segments leave the flight at once.
    ack = (base + 6 * mss) & M32
    peer.send(ACK, ack=ack, options=sack_option([((base + 7 * mss) & M32, (base + 10 * mss) & M32)]))
    peer.advance(0.05)  # RACK's reordering window
    assert peer.host.stats["tcp.fast_retransmit"] == 1
    assert tcb.cc.ssthresh == int(10 * mss * BETA)  # not int(4 * mss * BETA)


def test_a_flight_acknowledged_at_once_keeps_its_window_through_heavy_loss() -> None:
    """10% loss each way over a 0.2 ms round trip between two stacks whose receivers acknowledge each
    batch once: with ssthresh from the flight left after the ACK this took 9 timeouts (3 now)."""
    outcome = run(Scenario(seed=1, spec_ab="loss=10%,seed=1", spec_ba="loss=10%,seed=101", latency=0.0001,
                           a_sends=2_000_000, rcvbuf_a=1 << 20, rcvbuf_b=1 << 21, shutdown_a=True))
    assert outcome.completed and outcome.intact, outcome.describe()
    stats = outcome.stats_a
    assert stats["tcp.rto"] <= 4, outcome.describe()
    # Each timeout waited at least tcp_rto_min (200 ms), and the wait is counted.
    assert stats["tcp.rto_wait_ms"] >= 200 * stats["tcp.rto"], outcome.describe()
