"""The end of a connection, and the limits Linux puts on connections that outlive their socket.

* TIME-WAIT (RFC 9293 §3.10.7.4 eighth): entering it and (re)starting its 2 MSL wait,
  ``net.ipv4.tcp_tw_timeout``.  ``net.ipv4.tcp_max_tw_buckets`` bounds how many connections wait
  there at once: beyond it a closing connection skips TIME-WAIT and is freed at once, as Linux's
  tcp_time_wait does ("time wait bucket table overflow", counter ``tcp.time_wait_overflow``,
  Linux's TCPTimeWaitOverflow).
* Orphans: a connection whose socket the application has closed (Linux's SOCK_DEAD) finishing its
  work (RFC 9293 §3.10.4).  ``net.ipv4.tcp_max_orphans`` bounds them: a close() that would make one
  more than the limit resets the connection at once, as Linux's tcp_close does through
  tcp_check_oom ("too many orphaned sockets", counter ``tcp.abort_on_memory``, Linux's
  TCPAbortOnMemory).  An orphan in FIN-WAIT-2 waits ``net.ipv4.tcp_fin_timeout`` for the peer's FIN;
  an orphan's retransmissions and window probes give up after ``net.ipv4.tcp_orphan_retries``
  (:func:`orphan_retries`, Linux's tcp_orphan_retries(): 0 reads as 8 while the connection is
  alive).  Unlike Linux, a FIN-WAIT-2 orphan stays a full connection (counted as an orphan) rather
  than becoming a TIME-WAIT bucket.
* Deleting the TCB (entering CLOSED) for every path that ends a connection (RFC 9293 §3.10.5 ABORT,
  §3.10.7.4's RST, timeouts), with or without a RST to the peer and an error to the application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.send import send_ack, send_rst
from pytcp_green.stack.tcp.state import CLOSED, TIME_WAIT

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

# What Linux's tcp_orphan_retries() reads a 0 as while the connection is alive: "8 corresponds to
# >100 seconds with minimal RTO of 200msec" (net/ipv4/tcp_timer.c).
ORPHAN_RETRIES_ALIVE = 8


def enter_time_wait(tcb: Tcb, now: float, *, ack_fin: bool = False) -> None:
    """Enter TIME-WAIT, or, with ``tcp_max_tw_buckets`` connections already there, skip it and free the
    connection at once (Linux's tcp_time_wait).  ``ack_fin``: the peer's FIN just arrived and our ACK
    of it has not gone out yet; a skipped TIME-WAIT sends it first, as Linux's tcp_fin does."""
    layer = tcb.layer
    if layer.time_wait >= tcb.stack.sysctl.int("net.ipv4.tcp_max_tw_buckets"):
        layer.limit_hit("tcp.time_wait_overflow", "time wait bucket table overflow")
        if ack_fin:
            send_ack(tcb, now)
        destroy(tcb)
        return
    leave_orphans(tcb)  # a TIME-WAIT connection is no orphan, as in Linux
    layer.time_wait += 1
    tcb.state = TIME_WAIT
    tcb.rtx_timer.cancel()
    restart_time_wait(tcb, now)
    tcb.sock.wake()


def restart_time_wait(tcb: Tcb, now: float) -> None:
    """(Re)start the 2 MSL wait of TIME-WAIT (RFC 9293 §3.10.7.4 eighth; ``tcp_tw_timeout``)."""
    tcb.misc_timer.arm(now + tcb.stack.sysctl.float("net.ipv4.tcp_tw_timeout"))


def become_orphan(tcb: Tcb, now: float) -> None:
    """The application closed the socket of a connection that goes on: count it against
    ``tcp_max_orphans``, and reset it at once if it is one too many (Linux's tcp_close)."""
    if tcb.dead or tcb.orphan or tcb.state == TIME_WAIT:
        return
    layer = tcb.layer
    tcb.orphan = True
    layer.orphans += 1
    if layer.orphans > tcb.stack.sysctl.int("net.ipv4.tcp_max_orphans"):
        layer.limit_hit("tcp.abort_on_memory", "too many orphaned sockets")
        drop(tcb, now, 0, rst=True)


def leave_orphans(tcb: Tcb) -> None:
    if tcb.orphan:
        tcb.orphan = False
        tcb.layer.orphans -= 1


def arm_orphan_timeout(tcb: Tcb, now: float) -> None:
    """A closed socket's connection in FIN-WAIT-2 waits ``tcp_fin_timeout`` for the peer's FIN, as Linux."""
    tcb.misc_timer.arm(now + tcb.stack.sysctl.float("net.ipv4.tcp_fin_timeout"))


def orphan_retries(tcb: Tcb, alive: bool) -> int:
    """How many unanswered retransmissions or window probes an orphan gets (Linux's tcp_orphan_retries()):
    ``tcp_orphan_retries``, none at all once an ICMP error said something is wrong and the timer has
    backed off to its maximum, and 8 for a 0 while the connection is ``alive`` (its backed-off timeout
    still below ``tcp_rto_max``)."""
    retries = tcb.stack.sysctl.int("net.ipv4.tcp_orphan_retries")
    if tcb.soft_error and not alive:
        retries = 0
    if retries == 0 and alive:
        retries = ORPHAN_RETRIES_ALIVE
    return retries


def drop(tcb: Tcb, now: float, code: int, *, rst: bool) -> None:
    """End the connection: a RST to the peer if ``rst``, the error ``code`` (if any) to the user."""
    if rst:
        send_rst(tcb, now)
    if code:
        tcb.sock.set_error(code)
    destroy(tcb)


def destroy(tcb: Tcb) -> None:
    """Enter CLOSED and leave the demultiplexing table (and the orphan and TIME-WAIT counts)."""
    if tcb.dead:
        return
    tcb.dead = True
    tcb.rtx_timer.stop()
    tcb.dack_timer.stop()
    tcb.misc_timer.stop()
    tcb.tlp_timer.stop()
    leave_orphans(tcb)
    if tcb.state == TIME_WAIT:
        tcb.layer.time_wait -= 1
    tcb.state = CLOSED
    tcb.layer.forget(tcb)
    listener = tcb.listener
    if listener is not None:
        tcb.listener = None
        listener.child_gone(tcb)
    tcb.sock.tcb_closed()
