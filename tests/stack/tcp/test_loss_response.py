"""The size of the reduction when loss shows (RFC 5681 §3.2 eq. 4, RFC 9438 §4.6): the FlightSize is
what was outstanding when the ACK revealing the loss arrived, not what that ACK left outstanding.

A receiver that acknowledges a whole flight with one ACK (a GRO receiver, Linux's stretch ACKs, the
batching of our own end_batch) moves SND.UNA almost to SND.MAX in the very ACK whose SACK block shows
the hole; measured after it, the flight is a segment or two and ssthresh falls to its floor on every
loss, which at 10% loss kept the window at two segments and turned each lost ACK into a timeout.
And the receiver's side of the same (RFC 5681 §4.2, Linux's quickack mode): text received again
restarts the immediate ACKs.
"""

from __future__ import annotations

import pytest

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


def test_heavy_loss_over_a_short_path_costs_few_timeouts() -> None:
    """10% loss each way over a 0.2 ms round trip between two stacks, 2 MB, eight seeds: timeouts
    summed over the seeds were 76 with ssthresh from the flight left after the revealing ACK, 61
    with it from the flight before, 41 once a duplicate also restarts the quick ACKs."""
    rtos = 0
    for seed in range(1, 9):
        outcome = run(Scenario(seed=seed, spec_ab=f"loss=10%,seed={seed}", spec_ba=f"loss=10%,seed={seed + 100}",
                               latency=0.0001, a_sends=2_000_000, rcvbuf_a=1 << 20, rcvbuf_b=1 << 21,
                               shutdown_a=True))
        assert outcome.completed and outcome.intact, outcome.describe()
        stats = outcome.stats_a
        # Each timeout waited at least tcp_rto_min (200 ms), and the wait is counted.
        assert stats["tcp.rto_wait_ms"] >= 200 * stats["tcp.rto"], outcome.describe()
        rtos += stats["tcp.rto"]
    assert rtos <= 50


@pytest.mark.parametrize("whole", [True, False], ids=["whole-duplicate", "partial-duplicate"])
def test_text_received_again_makes_the_next_segments_acknowledged_at_once(whole: bool) -> None:
    """RFC 5681 §4.2, as Linux (quickack mode on DelayedACKLost): a retransmission of text we had
    acknowledged says our ACK did not arrive; the following in-order segments are acknowledged at
    once instead of after the delayed-ACK timeout."""
    peer = Peer({"net.ipv4.tcp_sack": 1})
    establish(peer, sack=True)
    assert peer.tcb is not None
    for _ in range(20):  # past the quick ACKs of the connection's start: ACKs are delayed now
        peer.send(ACK, data=b"q" * 1000)
        peer.seq += 1000
    peer.advance(1.0)
    peer.out()
    peer.send(ACK, data=b"q" * 1000)
    peer.seq += 1000
    assert peer.out() == []  # one segment: its ACK waits for the timer
    peer.advance(1.0)
    assert len(peer.out()) == 1
    if whole:
        peer.send(ACK, seq=peer.seq - 1000, data=b"q" * 1000)  # all of it again
    else:
        peer.send(ACK, seq=peer.seq - 500, data=b"q" * 1000)  # half again, half new
        peer.seq += 500
    assert len(peer.out()) == 1 and peer.host.stats["tcp.delayed_ack_lost"] == 1
    peer.send(ACK, data=b"q" * 1000)
    peer.seq += 1000
    (ack,) = peer.out()  # at once, no timer
    assert ack.ack == peer.seq & M32
