"""Receive buffer auto-tuning: Linux's dynamic right-sizing (``net.ipv4.tcp_moderate_rcvbuf``).

A fixed receive buffer is a fixed window: tcp_rmem's default 128 KB holds a sender to 26 Mbit/s
over a 40 ms path, and on a fast link a reader that is a little slower than its sender sees the
window close and reopen in small steps, each one a window update.  Linux grows the buffer while
the application keeps up (``tcp_rcv_space_adjust``, after Fisk and Feng's "Dynamic right-sizing in
TCP"); this does the same, once per receiver round trip:

* it measures what the application read during the last round trip (``copied``) against what it
  read in the one it last grew for (``space``, at first ten segments: TCP_INIT_CWND x MSS);
* when the application read more, the buffer becomes twice that plus sixteen segments, raised
  further by the relative growth (a reader that accelerates gets room ahead of it), up to
  ``tcp_rmem[2]``; it never shrinks;
* ``SO_RCVBUF`` set by the application turns it off for the socket (Linux's SOCK_RCVBUF_LOCK), and
  an accepted socket inherits the listener's buffer and lock.

The round trip is the connection's smoothed RTT (its handshake gives one sample at least): Linux
keeps a receiver-side estimate instead, from timestamps or a window's worth of data, which for a
connection that also sends is much the same.  Counted under ``tcp.rcvbuf_grow``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

INIT_SEGMENTS = 10  # TCP_INIT_CWND: Linux's first rcvq_space.space, in segments


class RcvSpace:
    """The measurement in progress: where it started (bytes read so far, time) and the last space."""

    __slots__ = ("space", "start", "time")

    def __init__(self, space: int) -> None:
        self.space = space
        self.start: int | None = None  # the first read starts the first measurement
        self.time = 0.0


def read_done(tcb: Tcb, now: float) -> None:
    """The application read from ``tcb``: once a round trip has passed, grow the buffer if it read
    more in that round trip than in the one the buffer last grew for."""
    sock = tcb.sock
    if sock.rcvbuf_locked:
        return
    measure = tcb.rcv_space
    copied_seq = tcb.rcv_nxt - tcb.rbuf.size  # everything the application has read
    if measure.start is None:
        measure.start, measure.time = copied_seq, now
        return
    srtt = tcb.rto.srtt
    if srtt is None or now - measure.time < srtt:
        return
    copied = copied_seq - measure.start
    sysctl = tcb.stack.sysctl
    if copied > measure.space and sysctl.int("net.ipv4.tcp_moderate_rcvbuf"):
        window = 2 * copied + 16 * tcb.adv_mss
        window += 2 * (window * (copied - measure.space) // measure.space)
        target = min(window, sysctl.ints("net.ipv4.tcp_rmem")[2])
        if target > sock.rcvbuf:
            sock.autotune_rcvbuf(target)
            tcb.stats["tcp.rcvbuf_grow"] += 1
        measure.space = copied
    measure.start = copied_seq
    measure.time = now
