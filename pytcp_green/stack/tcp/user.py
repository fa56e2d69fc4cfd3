"""The user calls of RFC 9293 §3.10.1-3.10.6 as the socket makes them, and the end of a connection.

* §3.10.1 active OPEN (the passive one starts in :mod:`.opening` when a SYN reaches a listener).
* §3.10.2 SEND into the send buffer (with the urgent flag: §3.8.5, :mod:`.urgent`); §3.10.3
  RECEIVE's window update after a read (RFC 1122 §4.2.3.3 with Linux's "at least doubled" test).
* §3.10.4 CLOSE: the half-close (our FIN after the queued data), and the full close that leaves an
  orphan finishing its work (within ``tcp_max_orphans``, :mod:`.closing`), or resets when unread
  data would be lost (RFC 2525 §2.17, as Linux).
* §3.10.5 ABORT (deleting the TCB is :mod:`.closing`'s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.closing import arm_orphan_timeout, become_orphan, destroy, drop
from pytcp_green.stack.tcp.output import output
from pytcp_green.stack.tcp.rcvbuf import read_done
from pytcp_green.stack.tcp.send import send_ack, send_syn
from pytcp_green.stack.tcp.state import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
)
from pytcp_green.stack.tcp.urgent import mark_sent

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb


def connect(tcb: Tcb, now: float) -> None:
    """Active OPEN (RFC 9293 §3.10.1): send the SYN."""
    tcb.state = SYN_SENT
    tcb.snd_nxt = tcb.snd_max = tcb.iss + 1
    tcb.syn_sent_at = now
    tcb.stats["tcp.active_open"] += 1
    send_syn(tcb, now)


def user_send(tcb: Tcb, data: bytes | bytearray | memoryview, now: float, oob: bool = False) -> int:
    """Queue as much of ``data`` as the send buffer holds and push it out; 0 means full.  With ``oob``
    (MSG_OOB) its last byte queued is urgent (:mod:`.urgent`)."""
    space = tcb.sock.send_limit(tcb) - len(tcb.sbuf.data)
    if space <= 0:
        tcb.write_blocked = True
        return 0
    size = len(data)
    if size > space:
        with memoryview(data) as view:
            tcb.sbuf.append(view[:space])
        size = space
    else:
        tcb.sbuf.append(data)
    if oob:
        mark_sent(tcb)
    output(tcb, now)
    if not tcb.sock.writable():
        tcb.write_blocked = True
    return size


def after_read(tcb: Tcb, now: float) -> None:
    """The application consumed data: tell the peer if the window grew enough to matter (a closed
    or small window reopened; RFC 1122 §4.2.3.3 with Linux's 'at least doubled' test)."""
    if tcb.state not in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2):
        return
    read_done(tcb, now)  # the buffer may grow first (Linux's tcp_rcv_space_adjust), then the window
    current = tcb.rcv_adv - tcb.rcv_nxt
    possible = tcb.sock.rcvbuf - tcb.rbuf.size
    if possible - current >= min(tcb.sock.rcvbuf >> 1, tcb.adv_mss) and possible >= 2 * current:
        tcb.stats["tcp.window_update"] += 1
        send_ack(tcb, now)


def shutdown_write(tcb: Tcb, now: float) -> None:
    """CLOSE of the sending side (RFC 9293 §3.10.4): FIN after everything already queued."""
    if tcb.fin_queued:
        return
    state = tcb.state
    tcb.fin_queued = True
    if state == ESTABLISHED:
        tcb.state = FIN_WAIT_1
    elif state == CLOSE_WAIT:
        tcb.state = LAST_ACK
    else:
        return  # SYN-RECEIVED: the FIN goes out once established
    output(tcb, now)


def close(tcb: Tcb, now: float) -> None:
    """The application is done with the socket.  Unread data means the peer's data was lost:
    reset, as Linux and RFC 2525 §2.17 do.  Otherwise finish gracefully as an orphan, if
    ``tcp_max_orphans`` allows (:func:`~.closing.become_orphan`)."""
    tcb.user_closed = True
    state = tcb.state
    if state in (CLOSED, TIME_WAIT):
        return
    if state == SYN_SENT:
        destroy(tcb)
        return
    if tcb.rbuf.size:
        tcb.stats["tcp.abort_on_close"] += 1
        drop(tcb, now, 0, rst=True)
        return
    if state == FIN_WAIT_2:
        arm_orphan_timeout(tcb, now)
    elif state not in (LAST_ACK, CLOSING):
        shutdown_write(tcb, now)
    become_orphan(tcb, now)


def abort(tcb: Tcb, now: float) -> None:
    """Drop the connection with a RST (listener closing with children queued, SO_LINGER 0)."""
    if tcb.state in (SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
        drop(tcb, now, 0, rst=True)
    else:
        destroy(tcb)
