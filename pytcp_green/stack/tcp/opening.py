"""Opening a connection: the three-way handshake from both ends.

* RFC 9293 §3.10.7.2 LISTEN: a SYN reaching a listener (third check) creates the child in
  SYN-RECEIVED and answers SYN-ACK (the listener side of the demultiplexing is :mod:`.socket`).
* RFC 9293 §3.10.7.3 SYN-SENT, including data and FIN on a SYN-ACK and the simultaneous open of
  §3.5 figure 8.
* Option negotiation on the SYN / SYN-ACK: RFC 7323 §1.3 and §2.3 (window scale, at most 14),
  RFC 7323 timestamps, RFC 2018 §2 SACK-permitted, RFC 9293 §3.7.1 MSS (RFC 8200 §8.3 for IPv6),
  RFC 3168 §6.1.1 ECN (:mod:`.ecn`).
* A connection made from a SYN cookie's final ACK (:mod:`.syncookies`): the options the cookie
  restored, then the ACK processed as SYN-RECEIVED's (no handshake RTT sample: the SYN-ACK's send
  time was not kept).
* TCP Fast Open (RFC 7413 §4.2, :mod:`.fastopen`): a listener's child made from a valid cookie takes
  the SYN's data and is accepted at once; a SYN-ACK for our Fast Open SYN brings a cookie to cache and
  may leave the SYN's data to send again.
* Entering ESTABLISHED: the handshake's RTT sample under Karn's rule and RFC 6298 §5.7's 3 s floor
  after a retransmitted SYN.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pytcp_green.stack.tcp import fastopen
from pytcp_green.stack.tcp.cc import create as create_cc
from pytcp_green.stack.tcp.closing import drop
from pytcp_green.stack.tcp.ecn import negotiate as negotiate_ecn
from pytcp_green.stack.tcp.output import output
from pytcp_green.stack.tcp.receive import data_input, fin_input
from pytcp_green.stack.tcp.send import send_ack, send_syn
from pytcp_green.stack.tcp.seq import MASK, unwrap
from pytcp_green.stack.tcp.state import (
    DEFAULT_MSS4,
    DEFAULT_MSS6,
    ESTABLISHED,
    FIN_WAIT_1,
    MIN_MSS,
    SYN_RECEIVED,
    TS_OPT_LEN,
)
from pytcp_green.stack.tcp.timeouts import arm_keepalive
from pytcp_green.stack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb


def negotiate(tcb: Tcb, seg: TcpSegment) -> None:
    """Settle the options a SYN or SYN-ACK carried against ours (RFC 7323 §1.3, RFC 2018 §2)."""
    if tcb.ws_enabled and seg.wscale is not None:
        tcb.snd_wscale = min(seg.wscale, 14)  # RFC 7323 §2.3: larger values are treated as 14
        tcb.rcv_wscale = tcb.our_wscale
    tcb.sack_ok = tcb.sack_enabled and seg.sack_perm
    if tcb.ts_enabled and seg.ts_val is not None:
        tcb.ts_ok = True
        tcb.ts_recent = seg.ts_val
    peer_mss = seg.mss if seg.mss is not None else (DEFAULT_MSS4 if len(tcb.remote_addr) == 4 else DEFAULT_MSS6)
    tcb.snd_mss = max(min(peer_mss, tcb.adv_mss), MIN_MSS)
    tcb.eff_mss = tcb.snd_mss - (TS_OPT_LEN if tcb.ts_ok else 0)
    tcb.cc = create_cc(tcb.cc.name, tcb.eff_mss)  # IW10 in segments of the negotiated size
    negotiate_ecn(tcb, seg.flags)  # RFC 3168 §6.1.1


def passive_open(tcb: Tcb, seg: TcpSegment, now: float) -> None:
    """A SYN reached a listener (RFC 9293 §3.10.7.2 third): answer SYN-ACK from SYN-RECEIVED."""
    tcb.irs = seg.seq
    tcb.rcv_nxt = seg.seq + 1
    tcb.last_ack_sent = tcb.rcv_nxt
    tcb.snd_wnd = seg.window  # unscaled in a SYN
    tcb.snd_wl1 = seg.seq
    tcb.snd_wl2 = tcb.iss
    negotiate(tcb, seg)
    tcb.state = SYN_RECEIVED
    tcb.snd_nxt = tcb.snd_max = tcb.iss + 1
    tcb.syn_sent_at = now
    tcb.stats["tcp.passive_open"] += 1
    listener = tcb.listener
    fast = listener is not None and fastopen.passive(listener, tcb, seg)
    if fast and seg.payload:
        data_input(tcb, tcb.rcv_nxt, seg.payload, now)  # acknowledged by the SYN-ACK (RFC 7413 §4.2.2)
    send_syn(tcb, now)
    if fast and listener is not None:
        tcb.listener = None  # accepted now, before the handshake completes
        listener.child_established(tcb.sock)


def cookie_open(tcb: Tcb, seg: TcpSegment, mss: int, wscale: int | None, sack: bool, ts_offset: int,
                now: float) -> None:
    """The final ACK of a handshake answered with a SYN cookie: SYN-RECEIVED rebuilt from the cookie
    (our ISN is ``tcb.iss``, the peer's is ``SEG.SEQ - 1``), then the ACK processed normally."""
    tcb.irs = (seg.seq - 1) & MASK
    tcb.rcv_nxt = tcb.irs + 1
    tcb.last_ack_sent = tcb.rcv_nxt
    tcb.rcv_adv = tcb.rcv_nxt + min(tcb.sock.rcvbuf, 0xFFFF)  # the window the cookie's SYN-ACK offered
    tcb.snd_wl1 = tcb.irs
    tcb.snd_wl2 = tcb.iss
    if tcb.ws_enabled and wscale is not None:
        tcb.snd_wscale = wscale
        tcb.rcv_wscale = tcb.our_wscale
    tcb.sack_ok = tcb.sack_enabled and sack
    if tcb.ts_enabled and seg.ts_val is not None:
        tcb.ts_ok = True
        tcb.ts_recent = seg.ts_val
        tcb.ts_offset = ts_offset
    tcb.snd_mss = max(min(mss, tcb.adv_mss), MIN_MSS)
    tcb.eff_mss = tcb.snd_mss - (TS_OPT_LEN if tcb.ts_ok else 0)
    tcb.cc = create_cc(tcb.cc.name, tcb.eff_mss)  # IW10 in segments of the negotiated size
    tcb.state = SYN_RECEIVED
    tcb.snd_nxt = tcb.snd_max = tcb.iss + 1
    tcb.syn_sent_at = None
    tcb.stats["tcp.passive_open"] += 1
    tcb.segment_arrives(seg, now)


def established(tcb: Tcb, now: float) -> None:
    tcb.state = FIN_WAIT_1 if tcb.fin_queued else ESTABLISHED
    tcb.progress_at = now
    tcb.max_sndwnd = max(tcb.max_sndwnd, tcb.snd_wnd)
    sent_at = tcb.syn_sent_at
    if tcb.retries == 0 and sent_at is not None:
        tcb.rto.sample(now - sent_at)  # Karn: only if the SYN was sent once
    elif tcb.retries and tcb.rto.srtt is None:
        tcb.rto.base = max(tcb.rto.base, 3.0)  # RFC 6298 §5.7
    tcb.retries = 0
    tcb.rto.backoff = 0
    tcb.rtx_timer.cancel()
    tcb.stats["tcp.established"] += 1
    listener = tcb.listener
    if listener is not None:
        tcb.listener = None
        listener.child_established(tcb.sock)
    arm_keepalive(tcb, now)
    tcb.sock.wake()


def syn_sent_input(tcb: Tcb, seg: TcpSegment, now: float) -> None:
    """RFC 9293 §3.10.7.3."""
    flags = seg.flags
    ack_ok = False
    if flags & ACK:
        ack = unwrap(seg.ack, tcb.iss)
        if ack <= tcb.iss or ack > tcb.snd_max:
            if not flags & RST:
                tcb.layer.send_reset(tcb.local_addr, tcb.remote_addr, tcb.local_port, tcb.remote_port,
                                     ack, 0, RST, now)
            return
        ack_ok = True
    if flags & RST:
        if ack_ok:
            drop(tcb, now, errno.ECONNREFUSED, rst=False)
        return
    if not flags & SYN:
        return
    tcb.last_rx = now
    tcb.irs = seg.seq
    tcb.rcv_nxt = seg.seq + 1
    tcb.last_ack_sent = tcb.rcv_nxt
    negotiate(tcb, seg)
    tcb.snd_wnd = seg.window  # unscaled in a SYN
    tcb.snd_wl1 = seg.seq
    if ack_ok:
        ack = unwrap(seg.ack, tcb.iss)
        tcb.snd_una = ack
        tcb.snd_wl2 = ack
        tcb.sbuf.acknowledge(ack)
        fastopen.synack_in(tcb, seg, ack)  # RFC 7413 §4.2.1: the cookie, and SYN data not acknowledged
        established(tcb, now)
        if seg.payload:  # data on a SYN-ACK: RFC 9293 continues at the sixth step
            data_input(tcb, tcb.rcv_nxt, seg.payload, now)
        if flags & FIN:
            fin_input(tcb, tcb.rcv_nxt, now)
        output(tcb, now)
        send_ack(tcb, now)
    else:
        tcb.state = SYN_RECEIVED  # simultaneous open (RFC 9293 §3.5, figure 8)
        tcb.retries = 0
        send_syn(tcb, now)
