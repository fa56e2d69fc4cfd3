"""Urgent data (RFC 9293 §3.8.5 and §3.10.7.4 sixth step, RFC 6093) as Linux handles it.

RFC 9293 §3.8.5 lets a sender mark a point in its stream as the end of urgent data; RFC 6093 §3-4
records what every stack does with it instead of what RFC 793 hoped for, and Linux (its
``tcp_stdurg=0`` default) is the reference followed here:

* The urgent pointer of a segment points to the byte *after* the urgent data (the BSD reading, which
  RFC 9293 §3.8.5 / RFC 6093 §4 made the standard one): the urgent byte is SEG.SEQ + SEG.UP - 1.
* ``send(data, MSG_OOB)`` sets SND.UP to the end of what is queued (Linux's ``tcp_mark_urg``): only
  the last byte of that send is "the" out-of-band byte.  Every segment that starts before SND.UP
  carries URG and the pointer SND.UP - SEG.SEQ, or 0xFFFF while SND.UP is further than a pointer
  reaches and beyond what was sent (``tcp_transmit_skb``), until the peer acknowledges SND.UP.
  Meanwhile neither Nagle holds data back nor is a super-segment built (the device would copy one
  pointer onto every segment it cuts; Linux's ``tcp_send_mss`` builds no large segment for MSG_OOB).
* On receipt (``tcp_check_urg``, ``tcp_urg``) a pointer for data not yet received becomes the urgent
  mark; the byte before it is the one out-of-band byte once it arrives.  A pointer for data already
  received, or not newer than the mark, is ignored; a newer one replaces the mark (the older byte is
  then ordinary data, or dropped when it is the next byte to read, as Linux).  A zero pointer marks
  SEG.SEQ itself, as Linux takes it; a pointer far beyond the window only waits for its data.
* The byte stays in the receive buffer, and reads go around it (``tcp_recvmsg``): a read stops at
  the mark, and one that starts there skips the byte unless SO_OOBINLINE is set; once a read has
  passed the mark it is forgotten.  ``recv(MSG_OOB)`` returns the byte once, then EINVAL (EINVAL too
  with SO_OOBINLINE or without urgent data); it never blocks: EAGAIN while the byte is on its way
  (``tcp_recv_urg``).  The socket polls POLLPRI while the byte is there and unread.

Counted in ``stack.stats``: ``tcp.urg_sent`` (MSG_OOB sends), ``tcp.urg_recv`` (marks taken),
``tcp.urg_replaced`` (a newer mark over an older one), ``tcp.urg_old`` (pointers for data already
received, ignored).  SIGURG is not sent (no process owns a stack socket).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pytcp_green.stack.sockbase import POLLIN, POLLPRI, oserror, would_block
from pytcp_green.stack.tcp.seq import unwrap
from pytcp_green.stack.tcp.state import CLOSED
from pytcp_green.stack.wire.tcp import URG, TcpSegment

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

# The receive side's urgent state (Linux's tp->urg_data): no mark, a mark whose byte has not
# arrived, the byte arrived and unread, the byte read by recv(MSG_OOB) (the stream still skips it).
NONE, NOTYET, VALID, READ = 0, 1, 2, 3

_MAX_POINTER = 0xFFFF


class UrgentMark:
    """The receive side of one connection: the mark (``seq``: the urgent byte's sequence number),
    its ``state`` and, once arrived, the ``byte``."""

    __slots__ = ("byte", "seq", "state")

    def __init__(self) -> None:
        self.state = NONE
        self.seq = 0
        self.byte = 0


# -- sending --------------------------------------------------------------------------------------------
def mark_sent(tcb: Tcb) -> None:
    """send(MSG_OOB) queued its data: SND.UP moves to the end of the send buffer."""
    tcb.snd_up = tcb.sbuf.end
    tcb.stats["tcp.urg_sent"] += 1


def pointer(tcb: Tcb, seq: int) -> int:
    """The urgent pointer of a segment starting at ``seq`` < SND.UP (0: the segment carries no URG)."""
    distance = tcb.snd_up - seq
    if distance <= _MAX_POINTER:
        return distance
    # Too far for the field: point as far as it reaches, but only past everything sent, so the peer
    # cannot take data already in flight for the urgent byte.
    return _MAX_POINTER if seq + _MAX_POINTER > tcb.snd_nxt else 0


def urgent_mode(tcb: Tcb) -> bool:
    """SND.UP is not yet acknowledged (Linux's tcp_urg_mode)."""
    return tcb.snd_up > tcb.snd_una


# -- receiving --------------------------------------------------------------------------------------------
def copied_seq(tcb: Tcb) -> int:
    """The sequence number of the next byte the application reads (Linux's copied_seq)."""
    return tcb.rcv_nxt - tcb.rbuf.size - (1 if tcb.fin_received else 0)


def urgent_input(tcb: Tcb, seg: TcpSegment, seq: int, payload: memoryview) -> None:
    """RFC 9293 §3.10.7.4 sixth step for a segment whose acceptable text (``payload`` at ``seq``) is
    about to be processed: a new urgent pointer, and the urgent byte if this text holds it."""
    mark = tcb.urg
    if seg.flags & URG:
        _new_pointer(tcb, mark, unwrap(seg.seq, tcb.rcv_nxt) + seg.urg - (1 if seg.urg else 0))
    if mark.state == NOTYET:
        offset = mark.seq - seq
        if 0 <= offset < len(payload):
            mark.byte = payload[offset]
            mark.state = VALID
            tcb.sock.wake()  # POLLPRI


def _new_pointer(tcb: Tcb, mark: UrgentMark, ptr: int) -> None:
    if ptr < tcb.rcv_nxt:
        tcb.stats["tcp.urg_old"] += 1  # for data already received (a retransmission): ignored
        return
    if mark.state != NONE and ptr <= mark.seq:
        return  # the same mark again, as every segment before it carries it
    tcb.stats["tcp.urg_recv"] += 1
    if mark.state != NONE:
        tcb.stats["tcp.urg_replaced"] += 1
        if mark.seq == copied_seq(tcb) and not tcb.sock.oobinline and tcb.rbuf.size:
            tcb.rbuf.read(1)  # the old byte is next to read, and a read would skip it: drop it now
    mark.state = NOTYET
    mark.seq = ptr


def read(tcb: Tcb, count: int, now: float, *, peek: bool, inline: bool) -> bytes:
    """An ordinary read of up to ``count`` bytes while a mark is set: up to the mark, or from the mark
    on, skipping the urgent byte unless ``inline`` (SO_OOBINLINE).  b"" when only that byte waits."""
    mark = tcb.urg
    rbuf = tcb.rbuf
    offset = mark.seq - copied_seq(tcb)
    skip = 1 if offset == 0 and not inline else 0
    if offset > 0:
        count = min(count, offset)
    if peek:
        return rbuf.peek(skip + count)[skip:]
    if skip:
        rbuf.read(1)
    out = rbuf.read(count)
    if copied_seq(tcb) > mark.seq:
        mark.state = NONE  # the reader passed the mark: a later recv(MSG_OOB) is EINVAL
    tcb.after_read(now)
    return out


def recv_oob(tcb: Tcb, bufsize: int, *, peek: bool, inline: bool) -> bytes:
    """recv(MSG_OOB): the urgent byte once; EINVAL when there is none to give (or SO_OOBINLINE keeps
    it in the stream); EAGAIN, never a wait, while it is on its way; b"" once it cannot come (the
    peer's FIN, a reset, SHUT_RD), as Linux's tcp_recv_urg."""
    mark = tcb.urg
    if inline or mark.state in (NONE, READ):
        raise oserror(errno.EINVAL)
    if mark.state == VALID:
        if not peek:
            mark.state = READ
        return bytes((mark.byte,)) if bufsize > 0 else b""
    if tcb.fin_received or tcb.sock.rd_shut or tcb.state == CLOSED:
        return b""
    raise would_block()


def poll_bits(tcb: Tcb, inline: bool) -> int:
    """POLLPRI while the urgent byte is there unread; POLLIN unless the urgent byte alone is waiting
    (Linux's tcp_poll counts it out of the readable bytes)."""
    mark = tcb.urg
    readable = tcb.rbuf.size - (1 if mark.seq == copied_seq(tcb) and not inline else 0)
    return (POLLPRI if mark.state == VALID else 0) | (POLLIN if readable > 0 else 0)
