"""Spurious timeouts and retransmissions undone: F-RTO (RFC 5682 §3.1), the timestamp test (RFC 3522
§3.2) and D-SACK undo (RFC 3708 §3), segment by segment against a peer the test plays, and between two
stacks in the simulator with a live fault holding the ACKs; all in virtual time.

Each case is shown with its switch off too (``net.ipv4.tcp_frto=0``) or with a real loss, where
nothing may be undone and the conventional recovery (go-back-N after a timeout) must go on.
"""

from __future__ import annotations

import contextlib

import pytest

from pytcp_green.faults.engine import FaultEngine
from pytcp_green.faults.kinds import make
from pytcp_green.faults.stage import FaultStage
from pytcp_green.link.impaired import ImpairedDevice
from pytcp_green.sim.network import Simulation
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM
from pytcp_green.stack.tcp import TcpSocket
from pytcp_green.stack.tcp.cc.base import INITIAL_SSTHRESH
from pytcp_green.stack.wire.tcp import ACK, TcpSegment, sack_option

from .host import Peer
from .scenario import IP_A, IP_B, PORT, make_host, payload
from .test_behaviour import data_segments, establish

M32 = 0xFFFFFFFF
MSS = 1460


def _flight(frto: int = 2, sack: bool = True, ts: bool = False) -> tuple[Peer, int, int]:
    """A connection with 10 segments in flight and 20 more queued; no tail loss probe (RACK off), so the
    retransmission timer is the one to fire.  Returns the peer, the first segment's sequence number and
    the TSval the flight carried (0 without timestamps)."""
    peer = Peer({"net.ipv4.tcp_sack": int(sack), "net.ipv4.tcp_timestamps": int(ts), "net.ipv4.tcp_frto": frto,
                 "net.ipv4.tcp_recovery": 0})
    establish(peer, sack=sack, ts=ts)
    assert peer.sock is not None
    peer.sock.send(b"f" * (MSS * 30), peer.now)
    segs = data_segments(peer.out())
    assert len(segs) == 10
    return peer, segs[0].seq, segs[0].ts_val or 0


def _timeout(peer: Peer, base: int) -> int:
    """Let the retransmission timer fire; RFC 5682 step 1 is its usual retransmission of segment 0.
    Returns cwnd before the timeout."""
    tcb = peer.tcb
    assert tcb is not None
    prior = tcb.cc.cwnd
    peer.advance(tcb.rto.rto + 0.001)
    sent = data_segments(peer.out())
    assert [s.seq for s in sent] == [base] and peer.host.stats["tcp.rto"] == 1
    assert tcb.cc.cwnd == MSS  # the loss window
    return prior


def _offsets(segs: list[TcpSegment], base: int) -> list[int]:
    return [((s.seq - base) & M32) // MSS for s in segs]


def test_late_acks_after_a_timeout_are_found_spurious_and_the_window_restored() -> None:
    """The flight was only delayed: the ACK of segment 0 brings two new segments (step 2b), the ACK of
    segment 1 (never retransmitted) proves the timeout spurious (step 3b): cwnd and ssthresh come back
    and nothing is sent again."""
    peer, base, _ = _flight()
    tcb = peer.tcb
    assert tcb is not None
    prior = _timeout(peer, base)
    stats = peer.host.stats
    peer.send(ACK, ack=base + MSS)
    assert _offsets(data_segments(peer.out()), base) == [10, 11]  # new data, not segment 1 again
    peer.send(ACK, ack=base + 2 * MSS)
    assert stats["tcp.frto_spurious"] == 1 and stats["tcp.frto_undo"] == 1
    assert tcb.cc.cwnd == prior and tcb.cc.ssthresh > prior
    assert tcb.snd_nxt == tcb.snd_max and tcb.retries == 0
    # The rest of the original flight is acknowledged: only new data follows, never a resend.
    sent: list[TcpSegment] = []
    for n in range(3, 13):
        peer.send(ACK, ack=base + n * MSS)
        sent += data_segments(peer.out())
    assert sent and min(_offsets(sent, base)) >= 12
    assert stats["tcp.retransmit"] == 1


def test_the_ack_of_the_retransmission_is_no_evidence_even_when_it_covers_originals() -> None:
    """Segment 0 alone was lost and the receiver held 1-4 behind it: the retransmission fills the hole
    and the ACK covers all five.  That says nothing about delay (RFC 5682 §3.1 step 2): new data goes
    out, and only the next ACK decides."""
    peer, base, _ = _flight()
    tcb = peer.tcb
    assert tcb is not None
    _timeout(peer, base)
    peer.send(ACK, ack=base + 5 * MSS)
    assert not peer.host.stats["tcp.frto_undo"]
    assert _offsets(data_segments(peer.out()), base) == [10, 11]
    peer.send(ACK, ack=base + 5 * MSS)  # the new data arrived above a second hole: the loss was real
    assert _offsets(data_segments(peer.out()), base)[:1] == [5]
    assert not peer.host.stats["tcp.frto_undo"] and tcb.cc.cwnd <= 3 * MSS


def test_without_frto_the_same_late_acks_drive_go_back_n() -> None:
    peer, base, _ = _flight(frto=0)
    tcb = peer.tcb
    assert tcb is not None
    _timeout(peer, base)
    peer.send(ACK, ack=base + MSS)
    assert _offsets(data_segments(peer.out()), base) == [1, 2]  # slow start resends what was in flight
    peer.send(ACK, ack=base + 2 * MSS)
    assert not peer.host.stats["tcp.frto_undo"] and tcb.cc.cwnd <= 3 * MSS


@pytest.mark.parametrize("sack", [True, False], ids=["sack", "no-sack"])
def test_a_real_loss_after_step_2b_resumes_the_conventional_recovery(sack: bool) -> None:
    """The whole flight was lost: after segment 0's retransmission is acknowledged, the two new segments
    draw a duplicate ACK (with SACK: a SACK of new data only), step 3a: segment 1 onwards go again."""
    peer, base, _ = _flight(sack=sack)
    tcb = peer.tcb
    assert tcb is not None
    _timeout(peer, base)
    peer.send(ACK, ack=base + MSS)
    new = data_segments(peer.out())
    assert _offsets(new, base) == [10, 11]
    blocks = sack_option([(base + 10 * MSS, base + 11 * MSS)]) if sack else b""
    peer.send(ACK, ack=base + MSS, options=blocks)
    assert _offsets(data_segments(peer.out()), base)[:1] == [1]
    stats = peer.host.stats
    assert not stats["tcp.frto_spurious"] and not stats["tcp.frto_undo"] and tcb.cc.cwnd <= 3 * MSS


def test_sacks_known_before_the_timeout_prove_nothing() -> None:
    """RFC 2018 §8 made the timeout forget the peer's SACKs; when it repeats them they are not news of
    originals arriving."""
    peer, base, _ = _flight()
    tcb = peer.tcb
    assert tcb is not None
    peer.send(ACK, ack=base, options=sack_option([(base + 5 * MSS, base + 6 * MSS)]))  # one SACK: no recovery
    peer.out()
    _timeout(peer, base)
    peer.send(ACK, ack=base, options=sack_option([(base + 5 * MSS, base + 6 * MSS)]))
    assert not peer.host.stats["tcp.frto_undo"] and tcb.cc.cwnd == MSS


def test_an_advance_over_data_sacked_before_the_timeout_resumes_go_back_n_at_once() -> None:
    """In step 3 an ACK that covers only what the peer had SACKed before the timeout proves nothing
    delayed: the loss was real and resending goes on with that ACK, not a timer later."""
    peer, base, _ = _flight()
    tcb = peer.tcb
    assert tcb is not None
    # Segments 3-4 reported received above the holes at 0-2 and 5 (too few SACKs for recovery).
    peer.send(ACK, ack=base, options=sack_option([(base + 3 * MSS, base + 5 * MSS)]))
    peer.out()
    _timeout(peer, base)
    peer.send(ACK, ack=base + 3 * MSS)  # 0-2 arrive (the retransmission of 0 filled the first hole)
    new = _offsets(data_segments(peer.out()), base)
    assert len(new) == 2 and min(new) >= 10  # step 2b (limited transmit sent segment 10 already)
    peer.send(ACK, ack=base + 5 * MSS)  # 3-4, known before: the hole at 5 is real
    assert _offsets(data_segments(peer.out()), base)[:1] == [5]
    assert not peer.host.stats["tcp.frto_undo"]


def test_timestamps_echoing_an_original_undo_the_timeout() -> None:
    """RFC 3522 §3.2: the ACK echoes the TSval of segment 0's first transmission, older than the
    retransmission's: the original arrived (F-RTO off, so this test alone decides)."""
    peer, base, original_ts = _flight(frto=0, ts=True)
    tcb = peer.tcb
    assert tcb is not None
    prior = tcb.cc.cwnd
    peer.advance(tcb.rto.rto + 0.001)
    (again,) = data_segments(peer.out())
    assert again.ts_val is not None and again.ts_val != original_ts
    peer.send(ACK, ack=base + MSS, ts=(6000, original_ts))
    assert peer.host.stats["tcp.eifel_undo"] == 1 and tcb.cc.cwnd == prior
    assert tcb.snd_nxt == tcb.snd_max


def test_timestamps_echoing_the_retransmission_undo_nothing() -> None:
    peer, base, _ = _flight(frto=0, ts=True)
    tcb = peer.tcb
    assert tcb is not None
    peer.advance(tcb.rto.rto + 0.001)
    (again,) = data_segments(peer.out())
    assert again.ts_val is not None
    peer.send(ACK, ack=base + MSS, ts=(6000, again.ts_val))
    assert not peer.host.stats["tcp.eifel_undo"] and tcb.cc.cwnd <= 3 * MSS


def _fast_recovery(peer: Peer, base: int) -> tuple[int, int]:
    """Segment 0 goes missing: three SACKs start fast recovery with its retransmission.  Returns cwnd
    before the recovery and its recovery point (what limited transmit sent included)."""
    tcb = peer.tcb
    assert tcb is not None
    prior = tcb.cc.cwnd
    for n in (2, 3, 4):
        peer.send(ACK, ack=base, options=sack_option([(base + MSS, base + n * MSS)]))
    assert base in [s.seq for s in data_segments(peer.out())]
    assert peer.host.stats["tcp.fast_retransmit"] == 1 and tcb.cc.cwnd < prior
    return prior, tcb.recovery.recover


def test_a_fast_retransmission_dsacked_is_undone() -> None:
    """Segment 0 was only reordered: it arrives, the whole flight is acknowledged, then the
    retransmission arrives too and comes back as a D-SACK (RFC 3708 §3): the reduction was a mistake."""
    peer, base, _ = _flight()
    tcb = peer.tcb
    assert tcb is not None
    prior, recover = _fast_recovery(peer, base)
    peer.send(ACK, ack=recover)
    assert not tcb.recovery.active and tcb.cc.cwnd < prior
    peer.send(ACK, ack=recover, options=sack_option([(base, base + MSS)]))
    assert peer.host.stats["tcp.dsack_undo"] == 1 and tcb.cc.cwnd >= prior
    assert tcb.cc.ssthresh >= prior * 3 // 4


def test_a_needed_retransmission_is_not_undone() -> None:
    """Segment 0 was lost: its retransmission fills the hole, no D-SACK comes; a D-SACK of something the
    episode never resent (a duplicate made by the network), or one after the episode closed, undoes
    nothing."""
    peer, base, _ = _flight()
    tcb = peer.tcb
    assert tcb is not None
    _, recover = _fast_recovery(peer, base)
    peer.send(ACK, ack=recover)
    reduced = tcb.cc.ssthresh
    peer.send(ACK, ack=recover, options=sack_option([(base + 5 * MSS, base + 6 * MSS)]))
    assert peer.host.stats["tcp.dsack_recv"] == 1 and not peer.host.stats["tcp.dsack_undo"]
    end = tcb.snd_max
    peer.send(ACK, ack=end)  # a round trip after the recovery: the episode is closed
    peer.send(ACK, ack=end, options=sack_option([(base, base + MSS)]))
    assert not peer.host.stats["tcp.dsack_undo"] and tcb.cc.ssthresh == reduced


def test_a_timeout_whose_retransmission_is_dsacked_is_undone_without_frto() -> None:
    peer, base, _ = _flight(frto=0)
    tcb = peer.tcb
    assert tcb is not None
    prior = _timeout(peer, base)
    # The whole flight was there already: the one retransmission comes back as a D-SACK.
    peer.send(ACK, ack=base + 10 * MSS, options=sack_option([(base, base + MSS)]))
    assert peer.host.stats["tcp.dsack_undo"] == 1 and tcb.cc.cwnd == prior and tcb.snd_nxt == tcb.snd_max


# -- two stacks in the simulator -------------------------------------------------------------------

@pytest.mark.parametrize("frto", [2, 0], ids=["frto", "no-frto"])
def test_a_stalled_ack_path_in_the_simulator_is_undone_by_frto(frto: int) -> None:
    """Two stacks on a simulated cable; a live ``latency`` fault holds B's ACKs 0.4 s (twice the RTO:
    the timer fires once, its backed-off successor would come after them) while A sends twice its
    window.  A's timeout is spurious: F-RTO undoes it; without F-RTO ssthresh stays cut.  Timestamps
    and D-SACK are off, so F-RTO is the only test at work."""
    options = {"net.ipv4.tcp_sack": 1, "net.ipv4.tcp_timestamps": 0, "net.ipv4.tcp_dsack": 0,
               "net.ipv4.tcp_frto": frto}
    sim = Simulation(seed=40_001)
    a, ia = make_host(sim, "a", "02000000000a", IP_A, options)
    b, ib = make_host(sim, "b", "02000000000b", IP_B, options)
    link = sim.connect(a, ia, b, ib, None, None, latency=0.005)
    engine = FaultEngine(14, seed=1)
    b_port = link.ba.src
    device = b_port.device
    if not isinstance(device, ImpairedDevice):
        device = ImpairedDevice(device)
        device.now = sim.now
        b_port.device = device
    device.outbound = FaultStage(engine, "out", device.outbound)  # B's frames, ACKs included
    listener = b.socket(AF_INET, SOCK_STREAM)
    client = a.socket(AF_INET, SOCK_STREAM)
    assert isinstance(listener, TcpSocket) and isinstance(client, TcpSocket)
    listener.bind(("", PORT))
    listener.listen(1)
    with contextlib.suppress(BlockingIOError):
        client.connect((IP_B, PORT), sim.now)
    assert sim.run_until(lambda: client.state == "ESTABLISHED" and bool(listener.accept_queue), 10)
    server = listener.accept(sim.now)[0]
    tcb = client.tcb
    assert tcb is not None
    sent = bytearray()
    got = bytearray()

    def write(data: bytes) -> None:
        sent.extend(data)
        view = memoryview(data)
        while view:
            with contextlib.suppress(BlockingIOError):
                view = view[client.send(view, sim.now):]
            if view:
                sim.run_for(0.001)
                drain()

    def drain() -> bool:
        with contextlib.suppress(BlockingIOError):
            while chunk := server.recv(1 << 16, sim.now):
                got.extend(chunk)
        return tcb.snd_una == tcb.snd_max and len(got) == len(sent)

    write(payload("warm-up", 100_000))
    assert sim.run_until(drain, 10)
    cwnd = tcb.cc.cwnd
    fault = engine.add(make("latency", delay=0.4, direction="out"), sim.now)
    write(payload("burst", 2 * cwnd))
    assert sim.run_until(lambda: a.stats["tcp.rto"] >= 1, 10)
    assert sim.run_until(lambda: not tcb.frto.loss, 10)
    engine.remove(fault)
    assert sim.run_until(drain, 30) and got == sent
    assert a.stats["tcp.rto"] == 1
    if frto:
        assert a.stats["tcp.frto_spurious"] == a.stats["tcp.frto_undo"] == 1
        assert tcb.cc.cwnd >= cwnd and tcb.cc.ssthresh == INITIAL_SSTHRESH
    else:
        assert not a.stats["tcp.frto_undo"] and tcb.cc.ssthresh < INITIAL_SSTHRESH


def test_an_ecn_reduction_during_the_episode_is_not_given_back() -> None:
    """RFC 3168's reduction is no mistake: an episode with one in it ends without restoring the window."""
    peer, base, _ = _flight()
    tcb = peer.tcb
    assert tcb is not None
    prior = _fast_recovery(peer, base)[0]
    tcb.ecn.high = tcb.snd_max  # what ecn.ece_received records when it reduces
    peer.send(ACK, ack=tcb.recovery.recover)
    peer.send(ACK, ack=tcb.recovery.recover, options=sack_option([(base, base + MSS)]))
    assert not tcb.undo.open and not peer.host.stats["tcp.dsack_undo"]
    assert tcb.cc.cwnd < prior and tcb.cc.ssthresh < prior


def test_no_frto_on_the_first_timeout_of_a_fast_recovery() -> None:
    """As Linux: that loss is already known, so the timeout's recovery is the conventional one."""
    peer, base, _ = _flight()
    tcb = peer.tcb
    assert tcb is not None
    _fast_recovery(peer, base)
    peer.advance(tcb.rto.rto + 0.001)
    assert peer.host.stats["tcp.rto"] == 1 and tcb.frto.loss and tcb.frto.step == 0
