"""Explicit Congestion Notification for TCP (RFC 3168 §6.1), with RFC 8511's gentler backoff.

* §6.1.1 negotiation, as ``net.ipv4.tcp_ecn`` chooses on Linux: 0 never, 1 request on active opens
  and accept on passive ones, 2 (Linux's default) accept only.  An ECN-setup SYN carries ECE and CWR;
  the ECN-setup SYN-ACK carries ECE alone; anything else leaves the connection without ECN.  A SYN
  cookie's connection goes without (our cookies do not keep the bit).
* §6.1.2 the sender reacts to ECE at most once per window of data: one reduction through the
  congestion control module (:meth:`~.cc.base.CongestionControl.on_ecn`), none while loss recovery
  has already reduced the window, then CWR on the next new data segment (§6.1.2, last paragraph).
* §6.1.3 the receiver answers a CE-marked segment with ECE on every ACK until a segment with CWR
  arrives; the first CE of a series is acknowledged at once (Linux's quick ACK: the sender's window
  may be small).
* §6.1.4 / §6.1.5 ECT(0) only on new data: never on pure ACKs, SYNs, RSTs, window probes or
  retransmissions (a retransmission's mark would be ambiguous, and lost again under congestion).

The connection keeps one :class:`EcnState`; IP hands TCP each segment's two ECN bits (the IPv4 TOS /
IPv6 traffic class of RFC 3168 §5).  Every function takes the :class:`~.tcb.Tcb` it works on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.wire.tcp import ACK, CWR, ECE, SYN

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

# RFC 3168 §5 codepoints of the IP header's two ECN bits.
NOT_ECT = 0
ECT1 = 1
ECT0 = 2
CE = 3
ECN_MASK = 3

REQUEST = 1  # net.ipv4.tcp_ecn: request on active opens (and accept)
ACCEPT = 2  # accept only: Linux's default


class EcnState:
    """One connection's ECN: the sysctl's mode, what was negotiated, and both directions' flags."""

    __slots__ = ("demand_cwr", "high", "mode", "ok", "queue_cwr")

    def __init__(self, mode: int) -> None:
        self.mode = mode  # net.ipv4.tcp_ecn when the connection was made
        self.ok = False  # negotiated (RFC 3168 §6.1.1)
        self.demand_cwr = False  # receiver: CE seen, ECE on every ACK until CWR arrives (§6.1.3)
        self.queue_cwr = False  # sender: the window was reduced, CWR goes on the next new data (§6.1.2)
        self.high = -1  # sender: the reduction's window ends when SND.UNA passes this (SND.MAX then)


def syn_flags(tcb: Tcb) -> int:
    """The flags our SYN adds: ECE|CWR when this end requests ECN (§6.1.1)."""
    return ECE | CWR if tcb.ecn.mode == REQUEST else 0


def synack_flags(tcb: Tcb) -> int:
    """The flag our SYN-ACK adds: ECE when the peer's SYN was an ECN-setup SYN we accepted."""
    return ECE if tcb.ecn.ok else 0


def negotiate(tcb: Tcb, flags: int) -> None:
    """A SYN or SYN-ACK arrived with ``flags`` (§6.1.1): settle whether the connection uses ECN."""
    st = tcb.ecn
    if flags & ACK:  # our SYN asked; an ECN-setup SYN-ACK has ECE without CWR
        st.ok = st.mode == REQUEST and flags & (ECE | CWR) == ECE
    else:  # a peer's SYN: an ECN-setup SYN has both, and any non-zero mode accepts
        st.ok = st.mode in (REQUEST, ACCEPT) and flags & (ECE | CWR) == ECE | CWR
    if st.ok:
        tcb.stats["tcp.ecn_negotiated"] += 1


def arrives(tcb: Tcb, flags: int, ecn: int) -> None:
    """A segment for an ECN connection arrived with IP ECN bits ``ecn`` (§6.1.3).  CWR is taken before
    CE, so a segment that carries both leaves the demand for CWR standing, as in Linux."""
    st = tcb.ecn
    if flags & CWR and st.demand_cwr:
        st.demand_cwr = False
        tcb.stats["tcp.ecn_cwr_recv"] += 1
    if ecn == CE:
        tcb.stats["tcp.ecn_ce_recv"] += 1
        if not st.demand_cwr:
            st.demand_cwr = True
            tcb.ack_now = True  # the first mark of a series is acknowledged at once


def marks(tcb: Tcb, seq: int, flags: int, length: int) -> tuple[int, int]:
    """The TCP flags and IP TOS / traffic class for one outgoing non-SYN segment (§6.1.2-§6.1.5)."""
    tos = tcb.sock.tos
    st = tcb.ecn
    if not st.ok or flags & SYN:
        return flags, tos
    if flags & ACK and st.demand_cwr:
        flags |= ECE
        tcb.stats["tcp.ecn_ece_sent"] += 1
    if length and seq >= tcb.snd_max:  # new data only: no ECT on retransmissions or probes
        tos |= ECT0
        if st.queue_cwr:
            st.queue_cwr = False
            flags |= CWR
            tcb.stats["tcp.ecn_cwr_sent"] += 1
    return flags, tos


def ece_received(tcb: Tcb, now: float) -> None:
    """An ACK with ECE (§6.1.2): reduce once per window, unless loss recovery already did."""
    st = tcb.ecn
    tcb.stats["tcp.ecn_ece_recv"] += 1
    if tcb.snd_una < st.high or tcb.recovery.active:
        return
    tcb.cc.on_ecn(tcb.snd_max - tcb.snd_una, tcb.eff_mss, now)
    st.high = tcb.snd_max
    st.queue_cwr = True
    tcb.stats["tcp.ecn_cwnd_reduced"] += 1
