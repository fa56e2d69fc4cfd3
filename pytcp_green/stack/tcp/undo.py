"""Undoing a window reduction that proved unnecessary (RFC 2883 §5, RFC 3708; Linux's undo).

A loss episode (a fast recovery, or a retransmission timeout and what it resends) lowers cwnd and
ssthresh.  If the peer later shows that nothing it retransmitted was needed, the reduction was a
mistake and the window it took away is given back, as Linux's tcp_undo_cwnd_reduction does:
cwnd = max(cwnd, the cwnd before the episode), ssthresh = max(ssthresh, the ssthresh before it, taken
as Linux's tcp_current_ssthresh: at least three quarters of that cwnd outside recovery).

* RFC 2883 §5 / RFC 3708 §3 (Linux's tcp_try_undo_dsack): every byte the episode retransmitted came
  back as a D-SACK (:mod:`.dsack` hands over each one received), so every retransmission was a
  duplicate: the episode is undone and fast recovery left (``tcp.dsack_undo``).  D-SACKs for the last
  retransmissions arrive after recovery ends, so the episode stays open one more round trip.
* An ECN reduction (RFC 3168) during the episode was no mistake: then nothing is given back.
* A retransmission timeout is an episode too; its own undo (F-RTO, RFC 5682; timestamps, RFC 3522) is
  in :mod:`.frto`, which calls :func:`restore`.

The episode's state is one :class:`Undo` per connection, ``tcb.undo``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.sack import Scoreboard

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb


class Undo:
    """One loss episode's undo information (Linux's undo_marker, undo_retrans, prior_cwnd,
    prior_ssthresh)."""

    __slots__ = ("close_at", "dsacked", "ecn_high", "open", "prior_cwnd", "prior_recover", "prior_ssthresh",
                 "resent", "rtx", "tsval")

    def __init__(self) -> None:
        self.open = False  # an episode whose reduction may still be undone
        self.prior_cwnd = 0
        self.prior_ssthresh = 0
        self.prior_recover = 0  # the recovery point (RFC 6582 "recover") before the episode
        self.ecn_high = -1  # tcb.ecn.high when the episode began: a later value is an ECN reduction
        self.tsval: int | None = None  # TSval of the episode's first retransmission (RFC 3522 RetransmitTS)
        self.rtx = Scoreboard()  # bytes retransmitted in the episode, or before it and not yet acknowledged
        # Bytes retransmitted, counted once per copy (a range sent twice needs two D-SACKs: one copy
        # may have been the one that repaired a loss), and D-SACKed bytes of those ranges (Linux's
        # undo_retrans is the difference, in segments).
        self.resent = 0
        self.dsacked = 0
        self.close_at: int | None = None  # recovery is over: late D-SACKs count until SND.UNA passes this


def episode_begins(tcb: Tcb, tsval: int | None) -> None:
    """A loss episode starts (fast recovery, or a timeout): remember the window before its reduction
    (Linux's tcp_init_undo).  A timeout during an open recovery, or a repeated timeout, continues the
    episode: what is restored is the window before its first reduction.  ``tsval``: the TSval the
    first retransmission carries (None without timestamps)."""
    undo = tcb.undo
    rec = tcb.recovery
    if undo.open and undo.close_at is None:
        return
    cc = tcb.cc
    undo.open = True
    undo.close_at = None
    undo.prior_cwnd = cc.cwnd
    undo.prior_ssthresh = cc.ssthresh if rec.active else max(cc.ssthresh, cc.cwnd * 3 // 4)
    undo.prior_recover = rec.recover
    undo.ecn_high = tcb.ecn.high
    undo.tsval = tsval
    # Retransmissions still unacknowledged from before count as the episode's (Linux starts undo_retrans
    # at retrans_out): a D-SACK may be of one of them, and must not pass for the episode's own.
    rtx = undo.rtx
    rtx.advance(tcb.snd_una)
    undo.resent = rtx.sacked
    undo.dsacked = 0


def episode_over(tcb: Tcb) -> None:
    """The episode's recovery ended: wait one more round trip for the D-SACKs of its last
    retransmissions, then forget it."""
    undo = tcb.undo
    if undo.open and undo.close_at is None:
        undo.close_at = tcb.snd_max


def retransmitted(tcb: Tcb, seq: int, length: int) -> None:
    """``length`` sequence numbers from ``seq`` were sent again (FIN included); recorded outside an
    episode too, for the next one to know what is in flight a second time."""
    if length > 0:
        undo = tcb.undo
        undo.rtx.add(seq, seq + length)
        undo.resent += length


def dsack_received(tcb: Tcb, start: int, end: int) -> None:
    """A D-SACK for ``[start, end)`` (RFC 2883 §4: one per duplicate arrival): the part of it the episode
    retransmitted was one copy too many."""
    undo = tcb.undo
    if not undo.open:
        return
    for first, last in undo.rtx.ranges:
        if first >= end:
            break
        lo = first if first > start else start
        hi = last if last < end else end
        if hi > lo:
            undo.dsacked += hi - lo


def all_dsacked(undo: Undo) -> bool:
    """RFC 3708 §3: every retransmission of the episode was D-SACKed (Linux: undo_retrans reached 0)."""
    return undo.resent > 0 and undo.dsacked >= undo.resent


def after_ack(tcb: Tcb) -> None:
    """Once an ACK was processed, outside a timeout's recovery (:mod:`.frto` handles that): undo a fast
    recovery whose retransmissions were all D-SACKed; close an episode a round trip after its end."""
    undo = tcb.undo
    if not undo.open:
        undo.rtx.advance(tcb.snd_una)
        return
    if undo.close_at is not None and tcb.snd_una > undo.close_at:
        undo.open = False
    elif all_dsacked(undo) and restore(tcb):
        tcb.stats["tcp.dsack_undo"] += 1
    elif not tcb.recovery.active:
        episode_over(tcb)


def restore(tcb: Tcb) -> bool:
    """Give back the episode's reduction and leave fast recovery (Linux's tcp_undo_cwnd_reduction, then
    TCP_CA_Open); False if an ECN reduction since its start keeps the window where it is."""
    undo = tcb.undo
    undo.open = False
    rec = tcb.recovery
    if rec.active:
        rec.active = False
        rec.rtx_log.clear()
        rec.relost.clear()
    rec.recover = undo.prior_recover  # the reduction that set the recovery point did not happen
    if tcb.ecn.high != undo.ecn_high:
        return False
    cc = tcb.cc
    if undo.prior_cwnd > cc.cwnd:
        cc.cwnd = undo.prior_cwnd
    if undo.prior_ssthresh > cc.ssthresh:
        cc.ssthresh = undo.prior_ssthresh
    return True
