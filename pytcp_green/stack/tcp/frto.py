"""After a retransmission timeout: was it spurious?  F-RTO (RFC 5682 §3) and the timestamp test (RFC 3522).

A timeout that fired because ACKs were late, not because data was lost, costs a whole window of
needless retransmissions and the loss window.  The tests below catch it and undo the reduction
(:func:`~.undo.restore`: cwnd and ssthresh as before the episode, the recovery point too); the
timeout's recovery is then left: go-back-N stops (SND.NXT returns to SND.MAX) and the count of
timeouts restarts (Linux's tcp_try_undo_loss).

* RFC 5682 §3.1, the SACK-enhanced F-RTO, as Linux applies it to every connection
  (``net.ipv4.tcp_frto``, 0 off, Linux's default 2), not on the first timeout of a fast recovery:
  step 1 is the timeout's usual retransmission of the first unacknowledged segment (cwnd is one
  segment).  Step 2: when an ACK first advances SND.UNA, below "recover" (SND.MAX at the timeout), up
  to two new segments are sent instead of more retransmissions (step 2b; with no new data to send,
  or no window for it, the conventional recovery goes on).  Step 3: if the next ACK advances SND.UNA
  over data below "recover" that was never retransmitted, the originals got through: the timeout was
  spurious (step 3b, ``tcp.frto_spurious``, and ``tcp.frto_undo`` when the window was restored);
  any other ACK (a duplicate, a SACK of the new data, an advance over resent data only, even a
  window update) ends the wait (step 3a): the loss is taken as real and go-back-N resumes.  The
  resending is held for that one ACK only, as Linux holds it (its lost segments wait for room in
  cwnd, which the two new segments fill), never until a timer.
  Only step 3's ACKs are evidence, as the RFC has it (Linux also takes step 2's): the ACK of the
  retransmission may cover originals because that retransmission filled the one hole the receiver
  held them behind, and SACK blocks after a timeout may be old news the timeout made us forget (a
  receiver reports three or four of its ranges, not all), so neither proves them delayed.  Data the
  peer had SACKed before the timeout (RFC 2018 §8) is not counted as delivered by the ACK.
* RFC 3522 §3.2 (Eifel detection, as Linux's tcp_packet_delayed): with timestamps, an ACK advancing
  SND.UNA that echoes a TSval older than the first retransmission acknowledges an original
  (``tcp.eifel_undo``).
* RFC 3708 §3: every retransmission of the episode D-SACKed (``tcp.dsack_undo``, :mod:`.undo`).

None of these needs timestamps but the second.  The state is one :class:`Frto` per connection,
``tcb.frto``; hooks: :func:`timeout` where the timer fires, :func:`ack` after an ACK's processing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.output import window_output
from pytcp_green.stack.tcp.sack import Scoreboard
from pytcp_green.stack.tcp.send import ts_now
from pytcp_green.stack.tcp.seq import ts_before
from pytcp_green.stack.tcp.undo import after_ack, all_dsacked, episode_begins, episode_over, restore
from pytcp_green.stack.wire.tcp import TcpSegment

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

# F-RTO's steps (RFC 5682 §3.1): not running, waiting for the first ACK of new data, new data sent.
OFF, STEP2, STEP3 = 0, 2, 3


class Frto:
    """A timeout's recovery (Linux's TCP_CA_Loss) and where F-RTO is in it."""

    __slots__ = ("before", "enabled", "high", "loss", "step")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled  # net.ipv4.tcp_frto
        self.loss = False  # a timeout's recovery is under way
        self.step = OFF
        self.high = 0  # RFC 5682 "recover": SND.MAX at the timeout, then before step 2b's new data
        self.before = Scoreboard()  # what the peer had SACKed when the timeout made us forget it


def timeout(tcb: Tcb, now: float) -> None:
    """RFC 5682 §3.1 step 1, called as the timer fires, before the window is cut and the SACK
    information forgotten."""
    st = tcb.frto
    rec = tcb.recovery
    # Linux: no F-RTO on the first timeout of a fast recovery (the loss there is already known).
    st.step = STEP2 if st.enabled and (not rec.active or tcb.retries > 0) else OFF
    episode_begins(tcb, ts_now(tcb, now) if tcb.ts_ok else None)
    if not st.loss:
        st.before.clear()
    for first, last in rec.sb.ranges:
        st.before.add(first, last)
    st.loss = True
    st.high = tcb.snd_max


def ack(tcb: Tcb, seg: TcpSegment, prior_una: int, now: float) -> None:
    """After an ACK's SACK blocks and cumulative acknowledgment were processed, before sending."""
    st = tcb.frto
    if not st.loss:
        after_ack(tcb)
        return
    undo = tcb.undo
    una = tcb.snd_una
    advanced = una > prior_una
    if undo.open:
        if advanced and undo.tsval is not None and seg.ts_ecr and ts_before(seg.ts_ecr, undo.tsval):
            _undo(tcb, "tcp.eifel_undo")  # RFC 3522 §3.2: the echo is of a segment sent before
            return
        if all_dsacked(undo):
            _undo(tcb, "tcp.dsack_undo")
            return
        if st.step == STEP3 and _fresh(tcb, prior_una, una if una < st.high else st.high):
            tcb.stats["tcp.frto_spurious"] += 1  # RFC 5682 §3.1 step 3b
            _undo(tcb, "tcp.frto_undo")
            return
    if st.step == STEP3:
        # Step 3a: any other ACK (a duplicate, a SACK of the new data, an advance over data resent or
        # SACKed before): the loss was real, and go-back-N, held for this one ACK, resumes.
        st.step = OFF
        tcb.snd_nxt = una
    elif st.step == STEP2 and advanced and una < st.high:
        st.high = tcb.snd_max
        if _send_new_data(tcb, now):
            st.step = STEP3  # step 2b
            return
        st.step = OFF
    if una >= st.high:
        # Everything outstanding at the timeout is acknowledged: its recovery is over.
        st.loss = False
        st.step = OFF
        episode_over(tcb)


def _undo(tcb: Tcb, counter: str) -> None:
    """The timeout was spurious: give the window back and leave the timeout's recovery."""
    st = tcb.frto
    st.loss = False
    st.step = OFF
    tcb.snd_nxt = tcb.snd_max  # nothing more is resent
    tcb.retries = 0
    if restore(tcb):
        tcb.stats[counter] += 1


def _fresh(tcb: Tcb, lo: int, hi: int) -> bool:
    """Some byte of ``[lo, hi)`` was neither retransmitted in this episode nor SACKed before it."""
    rtx = tcb.undo.rtx
    before = tcb.frto.before
    seq = lo
    while seq < hi:
        hole = rtx.hole_at_or_after(seq, hi)
        if hole is None:
            return False
        if before.hole_at_or_after(hole[0], hole[1]) is not None:
            return True
        seq = hole[1]
    return False


def _send_new_data(tcb: Tcb, now: float) -> bool:
    """RFC 5682 §3.1 step 2b: up to two new segments, whatever cwnd (one or two segments now) says of
    the flight the timeout presumed lost; the peer's window, Nagle and SWS avoidance still apply.
    False if none could leave (SND.NXT is then back where the go-back-N resending had it)."""
    resend_at = tcb.snd_nxt
    snd_max = tcb.snd_max
    cc = tcb.cc
    cwnd = cc.cwnd
    tcb.snd_nxt = snd_max
    cc.cwnd = snd_max - tcb.snd_una + 2 * tcb.eff_mss
    window_output(tcb, now)
    cc.cwnd = cwnd
    if tcb.snd_max == snd_max:
        tcb.snd_nxt = resend_at
        return False
    return True
