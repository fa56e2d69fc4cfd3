"""LISTEN's segment arrival (RFC 9293 §3.10.7.2): a segment no connection claims, at a listener.

A SYN opens a half-open connection in the listener's SYN queue, or, when the queue is full (or
``tcp_syncookies`` is 2), is answered with a SYN cookie's SYN-ACK and nothing kept (:mod:`.syncookies`);
an ACK completes a cookie's handshake or is answered with a RST; a full accept queue drops the SYN,
as Linux does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.seq import MASK
from pytcp_green.stack.tcp.state import DEFAULT_MSS4, DEFAULT_MSS6, window_scale_for
from pytcp_green.stack.tcp.syncookies import COOKIE_VALID, decode_ts, encode_ts, minute, mss_index, mss_of
from pytcp_green.stack.wire.tcp import ACK, FIN, PROTO_TCP, RST, SYN, TcpSegment, build_tcp, syn_options

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.socket import TcpSocket


def segment_for_listener(listener: TcpSocket, seg: TcpSegment, src: bytes, dst: bytes, now: float) -> None:
    """A segment for no connection reached this listener (RFC 9293 §3.10.7.2)."""
    layer = listener.layer
    flags = seg.flags
    if flags & RST:  # nothing to reset
        return
    if flags & ACK:  # no connection to acknowledge into, unless it completes a SYN cookie's handshake
        sent_at = listener.cookie_sent_at
        if not flags & SYN and sent_at is not None and now - sent_at <= COOKIE_VALID and \
                layer.stack.sysctl.int("net.ipv4.tcp_syncookies"):
            _cookie_ack(listener, seg, src, dst, now)
            return
        layer.send_reset(dst, src, seg.dport, seg.sport, seg.ack, 0, RST, now)
        return
    if not flags & SYN or flags & FIN:  # not a SYN (or a SYN+FIN): drop
        layer.stack.stats["tcp.drop.listen_not_syn"] += 1
        return
    stats = layer.stack.stats
    if listener.accept_queue_full():  # Linux drops the SYN, cookies or not
        listener.listen_overflow("tcp.drop.listen_overflow")
        return
    sysctl = layer.stack.sysctl
    cookies = sysctl.int("net.ipv4.tcp_syncookies")
    if len(listener.syn_queue) >= sysctl.int("net.ipv4.tcp_max_syn_backlog"):
        if cookies:
            stats["tcp.req_q_full_do_cookies"] += 1
            _send_cookie(listener, seg, src, dst, now)
            return
        stats["tcp.req_q_full_drop"] += 1  # no cookies: the oldest half-open connection goes
        next(iter(listener.syn_queue)).destroy()
    elif cookies == 2:
        _send_cookie(listener, seg, src, dst, now)
        return
    tcb = listener.child_tcb(seg, src, dst, now)
    listener.syn_queue[tcb] = None
    tcb.passive_open(seg, now)


def _send_cookie(listener: TcpSocket, seg: TcpSegment, src: bytes, dst: bytes, now: float) -> None:
    """Answer a SYN with a SYN cookie's SYN-ACK and keep nothing (:mod:`.syncookies`)."""
    layer = listener.layer
    stack = layer.stack
    sysctl = stack.sysctl
    v6 = len(src) == 16
    index = mss_index(seg.mss if seg.mss is not None else (DEFAULT_MSS6 if v6 else DEFAULT_MSS4), v6)
    cookie = layer.cookies.make(dst, seg.dport, src, seg.sport, seg.seq, minute(now), index)
    ts = ws = None
    sack = False
    if seg.ts_val is not None and sysctl.int("net.ipv4.tcp_timestamps"):  # else options are lost
        peer_ws = min(seg.wscale, 14) if seg.wscale is not None and sysctl.int(
            "net.ipv4.tcp_window_scaling") else None
        sack = seg.sack_perm and bool(sysctl.int("net.ipv4.tcp_sack"))
        ts_now = (int(now * 1000) + layer.cookies.ts_offset(dst, src)) & MASK
        ts = (encode_ts(ts_now, peer_ws, sack, False), seg.ts_val)
        if peer_ws is not None:
            ws = window_scale_for(max(sysctl.ints("net.ipv4.tcp_rmem")[2], listener.rcvbuf))
    adv_mss = min(stack.path_mtu(src) or 576, 65535) - (60 if v6 else 40)
    segment = build_tcp(dst, src, seg.dport, seg.sport, cookie, seg.seq + 1, SYN | ACK,
                        min(listener.rcvbuf, 0xFFFF), options=syn_options(adv_mss, ws, sack, ts))
    listener.cookie_sent_at = now
    stack.stats["tcp.syncookies_sent"] += 1
    stack.stats["tcp.tx"] += 1
    stack.ip_output(dst, src, PROTO_TCP, segment, now, tos=listener.tos)


def _cookie_ack(listener: TcpSocket, seg: TcpSegment, src: bytes, dst: bytes, now: float) -> None:
    """An ACK for no connection while cookies are in use: a valid cookie makes the connection."""
    layer = listener.layer
    stats = layer.stack.stats
    cookie = (seg.ack - 1) & MASK
    index = layer.cookies.check(dst, seg.dport, src, seg.sport, (seg.seq - 1) & MASK, minute(now), cookie)
    options = (None, False, False) if seg.ts_val is None else decode_ts(seg.ts_ecr)
    if index is None:
        stats["tcp.syncookies_failed"] += 1  # not our cookie, or too old: dropped, as Linux
        return
    if listener.accept_queue_full():
        listener.listen_overflow("tcp.drop.listen_overflow")
        return
    stats["tcp.syncookies_recv"] += 1
    tcb = listener.child_tcb(seg, src, dst, now, iss=cookie)
    wscale, sack, _ecn = options  # no ECN here: our SYN-ACK never offers it
    tcb.cookie_open(seg, mss_of(index, len(src) == 16), wscale, sack, layer.cookies.ts_offset(dst, src), now)
