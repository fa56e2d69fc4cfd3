"""Duplicate SACK (RFC 2883): the receiver reports data it got twice; the sender learns from it.

* §4 (receiver): a segment, or the part of one, at or below RCV.NXT, or wholly inside an
  out-of-order block already held, is reported once, as the first block of the next ACK's SACK
  option (§4.1.1-4.1.3: the usual blocks follow); ``net.ipv4.tcp_dsack`` (1, as Linux) with SACK
  negotiated.
* §4 (sender): the first block of an ACK is a D-SACK when it lies at or below the cumulative ACK,
  or inside the second block.  RFC 8985 §6.2 step 4: each round trip that brings one widens RACK's
  reordering window by a quarter of min_RTT (``mult``, bounded by SRTT where it is used), and
  16 loss recoveries without a D-SACK bring it back to one quarter.

A D-SACK says a retransmission was not needed, or the network duplicated a segment; :mod:`.undo`
gives a reduction back once every retransmission of its episode was D-SACKed (RFC 3708, Linux's
tcp_try_undo_dsack).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.seq import unwrap
from pytcp_green.stack.tcp.undo import dsack_received

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

# RFC 8985 §6.2 step 4: recoveries without a D-SACK before reo_wnd_mult goes back to 1.
_PERSIST = 16


class Dsack:
    """One connection's D-SACK state: the duplicate to report (receiver) and RACK's multiplier (sender)."""

    __slots__ = ("enabled", "mult", "pending", "persist", "round_end")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled  # net.ipv4.tcp_dsack; applies once SACK is negotiated
        self.pending: tuple[int, int] | None = None  # the duplicate range to report, unwrapped
        self.mult = 1  # RACK.reo_wnd_mult
        self.round_end: int | None = None  # SND.MAX when the multiplier last grew
        self.persist = 0  # recoveries left before mult resets

    def recovery_started(self) -> None:
        """RFC 8985 §6.2 step 4: the multiplier outlives 16 recoveries without a D-SACK, no more."""
        if self.persist:
            self.persist -= 1
            if not self.persist:
                self.mult = 1


def note_duplicate(tcb: Tcb, start: int, end: int) -> None:
    """The receiver got ``[start, end)`` a second time (RFC 2883 §4): report it with the next ACK, now."""
    if end > start and tcb.sack_ok and tcb.dsack.enabled:
        tcb.dsack.pending = (start, end)
        tcb.ack_now = True


def reported(tcb: Tcb) -> None:
    """A segment carried the pending D-SACK block: it is reported once (RFC 2883 §4)."""
    tcb.dsack.pending = None
    tcb.stats["tcp.dsack_sent"] += 1


def received(tcb: Tcb, blocks: list[tuple[int, int]], ack: int) -> None:
    """Look for a D-SACK in an ACK's blocks (RFC 2883 §4, 32-bit edges) and let RACK learn from it."""
    if not blocks:
        return
    left, right = blocks[0]
    start, end = unwrap(left, ack), unwrap(right, ack)
    if end > ack and not (len(blocks) > 1 and _inside(start, end, blocks[1], ack)):
        return
    tcb.stats["tcp.dsack_recv"] += 1
    dsack_received(tcb, start, end)  # a retransmission that was not needed (:mod:`.undo`)
    state = tcb.dsack
    state.persist = _PERSIST
    if state.round_end is None or tcb.snd_una >= state.round_end:
        state.mult += 1  # at most once per round trip
        state.round_end = tcb.snd_max
        tcb.stats["tcp.dsack_reo_wnd_grown"] += 1


def _inside(start: int, end: int, block: tuple[int, int], ack: int) -> bool:
    outer_start, outer_end = unwrap(block[0], ack), unwrap(block[1], ack)
    return outer_start <= start and end <= outer_end
