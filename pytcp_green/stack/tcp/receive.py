"""The peer's data and FIN: RFC 9293 §3.10.7.4 seventh (segment text) and eighth (FIN) steps.

* In-order text is appended at once (the fast path); out-of-order text goes to the reassembly
  queue of :mod:`.buffers` and is acknowledged immediately (RFC 5681 §4.2), as is the text of
  the first segments (quick-ACK, so the peer's slow start is not held back).
* Text received again below RCV.NXT means the peer resent what we had acknowledged, so our ACK
  was lost or late: the next segments are acknowledged at once again (:func:`duplicate_received`,
  Linux's quickack mode on DelayedACKLost), so a sender recovering with a small window is not
  held back by delayed ACKs.
* Text received twice is reported with a D-SACK block (RFC 2883, :mod:`.dsack`).
* A FIN beyond a gap waits until the gap fills; the FIN moves the state on (CLOSE-WAIT, CLOSING,
  TIME-WAIT) and (re)starts TIME-WAIT's timer (RFC 9293 §3.10.7.4 eighth; TIME-WAIT itself and its
  limit are :mod:`.closing`'s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.closing import enter_time_wait, restart_time_wait
from pytcp_green.stack.tcp.dsack import note_duplicate
from pytcp_green.stack.tcp.state import (
    CLOSE_WAIT,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    SYN_RECEIVED,
    TIME_WAIT,
)

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

QUICKACKS = 16  # segments acknowledged at once (Linux's TCP_MAX_QUICKACKS): at the start, after a duplicate


def duplicate_received(tcb: Tcb) -> None:
    """The peer sent again text we already hold (RFC 5681 §4.2 lets the receiver ACK at once; Linux
    enters quickack mode for TCP_MAX_QUICKACKS segments): it did not see our ACK in time, and while
    it recovers, each ACK we delay stalls it for the delayed-ACK timeout."""
    tcb.stats["tcp.delayed_ack_lost"] += 1  # Linux's DelayedACKLost
    tcb.ack_now = True
    if tcb.quickacks < QUICKACKS:
        tcb.quickacks = QUICKACKS


def data_input(tcb: Tcb, seq: int, payload: memoryview, now: float) -> None:
    rbuf = tcb.rbuf
    size = len(payload)
    was_empty = not rbuf.size
    if size > tcb.rcv_mss:
        tcb.rcv_mss = size if size <= tcb.adv_mss else tcb.adv_mss
    if seq == tcb.rcv_nxt and not rbuf.blocks:
        rbuf.append(payload)
        tcb.rcv_nxt = seq + size
        tcb.ack_due += size
        if tcb.quickacks:
            tcb.quickacks -= 1
            tcb.ack_now = True
    else:
        # Out of order, or filling a gap: acknowledge at once (RFC 5681 §4.2) so the sender learns.
        if rbuf.holds(seq, seq + size):
            note_duplicate(tcb, seq, seq + size)  # RFC 2883 §4: out-of-order text we already hold
        tcb.rcv_nxt = rbuf.add(seq, payload, tcb.rcv_nxt)
        tcb.ack_now = True
        tcb.stats["tcp.rx_out_of_order"] += 1
        if tcb.peer_fin is not None and tcb.peer_fin == tcb.rcv_nxt:
            fin_input(tcb, tcb.rcv_nxt, now)
    if was_empty and rbuf.size:
        tcb.sock.wake()


def fin_input(tcb: Tcb, fin_seq: int, now: float) -> None:
    if tcb.fin_received:
        tcb.ack_now = True
        if tcb.state == TIME_WAIT:
            restart_time_wait(tcb, now)
        return
    if fin_seq != tcb.rcv_nxt:
        tcb.peer_fin = fin_seq  # beyond a gap: consumed once the gap fills
        tcb.ack_now = True
        return
    tcb.rcv_nxt += 1
    tcb.fin_received = True
    tcb.peer_fin = None
    tcb.ack_now = True
    state = tcb.state
    if state in (SYN_RECEIVED, ESTABLISHED):
        tcb.state = CLOSE_WAIT
    elif state == FIN_WAIT_1:
        tcb.state = CLOSING
    elif state == FIN_WAIT_2:
        enter_time_wait(tcb, now, ack_fin=True)
    tcb.sock.wake()
