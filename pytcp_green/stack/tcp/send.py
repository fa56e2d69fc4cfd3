"""One segment out: building it, the fields every segment carries, and the control segments.

* RFC 9293 §3.1 header, §3.8.6.2.2 and RFC 1122 §4.2.3.3 receiver-side silly-window avoidance (the
  advertised right edge moves only by a worthwhile amount and never moves left), RFC 7323 §2.3 the
  scaled window field, §3 the timestamps option (with the per-connection offset of §5.4).
* RFC 2018 §4 the SACK option (which blocks: :mod:`.buffers`), a D-SACK block first (RFC 2883, :mod:`.dsack`).
* RFC 5961 §3.2/§4/§5.2 challenge ACKs within the layer's rate limit (§7); RST for an aborted
  connection (RFC 9293 §3.10.5).
* The SYN and SYN-ACK with the options of RFC 9293 §3.7.1 (MSS), RFC 7323 §1.3 and RFC 2018 §2,
  RFC 7413's Fast Open cookie and SYN data (:mod:`.fastopen`), and RFC 3168 §6.1.1's ECN-setup flags;
  every segment's ECN marks come from :mod:`.ecn`, its urgent pointer (RFC 9293 §3.8.5) from :mod:`.urgent`.

Every function takes the :class:`~pytcp_green.stack.tcp.tcb.Tcb` it works on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.interface import GsoFrame
from pytcp_green.stack.tcp import fastopen
from pytcp_green.stack.tcp.dsack import reported
from pytcp_green.stack.tcp.ecn import marks, syn_flags, synack_flags
from pytcp_green.stack.tcp.info import count_out
from pytcp_green.stack.tcp.seq import MASK
from pytcp_green.stack.tcp.state import SYN_RECEIVED, TS_OPT_LEN
from pytcp_green.stack.tcp.urgent import pointer, urgent_mode
from pytcp_green.stack.wire.tcp import (
    ACK,
    PROTO_TCP,
    RST,
    SYN,
    URG,
    fill_checksum,
    fill_partial_checksum,
    sack_option,
    syn_options,
    write_tcp,
)

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb


# Room kept in a TSO super-segment's IP packet for the IP and TCP headers (IPv6 40 + TCP 60).
_TSO_HEADROOM = 100


def ts_now(tcb: Tcb, now: float) -> int:
    return (int(now * 1000) + tcb.ts_offset) & MASK


def tso_burst(tcb: Tcb, room: int) -> int:
    """The most payload one super-segment of whole ``room``-byte segments carries toward the device
    (TSO), keeping room in its IP packet for the headers; ``room`` itself when the device has no TSO,
    or in urgent mode (each segment's urgent pointer is its own: :mod:`.urgent`)."""
    if not tcb.tso_max or urgent_mode(tcb):
        return room
    return room * max(1, (tcb.tso_max - _TSO_HEADROOM) // room)


def window_field(tcb: Tcb) -> int:
    """The window to advertise, with receiver-side SWS avoidance (RFC 1122 §4.2.3.3): the right edge
    moves only by at least min(half the buffer, one MSS), and never moves left."""
    rcv_nxt = tcb.rcv_nxt
    adv = tcb.rcv_adv
    rcvbuf = tcb.sock.rcvbuf
    right = rcv_nxt + rcvbuf - tcb.rbuf.size
    if right > adv and right - adv >= min(rcvbuf >> 1, tcb.adv_mss):
        adv = right
    if adv < rcv_nxt:
        # Data accepted past the advertised edge (a window probe's byte, say) moved RCV.NXT
        # beyond it: the window is then zero, never negative.
        adv = rcv_nxt
    scale = tcb.rcv_wscale
    field = (adv - rcv_nxt + (1 << scale) - 1) >> scale
    if field > 0xFFFF:
        field = 0xFFFF
    edge = rcv_nxt + (field << scale)
    tcb.rcv_adv = edge if edge > adv else adv
    return field


def sack_option_for(tcb: Tcb) -> bytes:
    if not tcb.sack_ok:
        return b""
    limit = 3 if tcb.ts_ok else 4
    dsack = tcb.dsack.pending  # forgotten once a segment carries it (emit)
    if dsack is not None:
        return sack_option([dsack, *tcb.rbuf.sack_blocks(limit - 1)])  # RFC 2883 §4: the D-SACK first
    if not tcb.rbuf.blocks:
        return b""
    return sack_option(tcb.rbuf.sack_blocks(limit))


def emit(tcb: Tcb, seq: int, flags: int, length: int, now: float, options: bytes = b"", gso: int = 0) -> None:
    """Build one segment (data taken from the send buffer at ``seq``) and hand it to IP.  With ``gso``
    it is a super-segment the device cuts into segments of ``gso`` payload bytes (TSO), so only the
    pseudo-header part of the checksum is ours to write; the same toward an interface where nobody
    checks it (``tcb.csum_free``)."""
    if flags & SYN:
        window = min(tcb.sock.rcvbuf, 0xFFFF)  # never scaled in a SYN (RFC 7323 §2.2)
        tcb.rcv_adv = tcb.rcv_nxt + window
        ts = None
    else:
        window = window_field(tcb)
        ts = (ts_now(tcb, now), tcb.ts_recent) if tcb.ts_ok else None
    ack = tcb.rcv_nxt if flags & ACK else 0
    flags, tos = marks(tcb, seq, flags, length)  # RFC 3168 §6.1: ECE, CWR and ECT(0)
    urg = pointer(tcb, seq) if tcb.snd_up > seq else 0  # RFC 9293 §3.8.5 (:mod:`.urgent`)
    if urg:
        flags |= URG
    hlen = 20 + len(options) + (TS_OPT_LEN if ts is not None else 0)
    total = hlen + length
    room = tcb.room  # the frame is built here once: IP and the link write their headers in front
    buf = GsoFrame(room + total) if gso else bytearray(room + total)
    write_tcp(buf, room, tcb.local_port, tcb.remote_port, seq, ack, flags, window, options, ts, urg)
    if length:
        tcb.sbuf.copy_out(buf, room + hlen, seq + 1 if flags & SYN else seq, length)  # a SYN's data follows it
    stats = tcb.stats
    if gso or tcb.csum_free:
        fill_partial_checksum(buf, room, total, tcb.local_addr, tcb.remote_addr)
        if gso:
            stats["tcp.tx_gso"] += 1
    else:
        fill_checksum(buf, room, total, tcb.local_addr, tcb.remote_addr)
    err = tcb.stack.ip_output(tcb.local_addr, tcb.remote_addr, PROTO_TCP, buf, now, tos=tos, gso_size=gso,
                              room=room)
    stats["tcp.tx"] += 1
    count_out(tcb, seq, length, gso, now)
    if err:
        stats["tcp.tx_error"] += 1
        tcb.soft_error = err
    if flags & ACK:
        if options and tcb.dsack.pending is not None:
            reported(tcb)  # the option came from sack_option_for, the D-SACK block first
        tcb.last_ack_sent = tcb.rcv_nxt
        tcb.ack_due = 0
        tcb.ack_now = False
        if tcb.dack_timer.when is not None:
            tcb.dack_timer.cancel()


def control_seq(tcb: Tcb) -> int:
    """Sequence number for a segment without data: the highest sent (RFC 9293's SND.NXT, which never
    moves back), unless the peer's window has shrunk below it.  Using our rewound retransmission
    point instead would make the peer discard our ACKs as old while it waits for them, and two
    stacks retransmitting at each other would deadlock."""
    edge = tcb.snd_una + tcb.snd_wnd
    return tcb.snd_max if tcb.snd_max <= edge else max(edge, tcb.snd_una)


def send_ack(tcb: Tcb, now: float) -> None:
    emit(tcb, control_seq(tcb), ACK, 0, now, sack_option_for(tcb))


def challenge_ack(tcb: Tcb, now: float) -> None:
    """RFC 5961 §3.2/§4/§5.2 challenge ACK, within the layer's rate limit (§7)."""
    if tcb.layer.challenge_allowed(now):
        tcb.stats["tcp.challenge_ack"] += 1
        send_ack(tcb, now)


def send_rst(tcb: Tcb, now: float) -> None:
    emit(tcb, control_seq(tcb), RST | ACK, 0, now)
    tcb.stats["tcp.rst_out"] += 1


def send_syn(tcb: Tcb, now: float) -> None:
    passive = tcb.state == SYN_RECEIVED
    if passive:
        ws = tcb.our_wscale if tcb.snd_wscale or tcb.rcv_wscale else None
        opts = syn_options(tcb.adv_mss, ws, tcb.sack_ok,
                           (ts_now(tcb, now), tcb.ts_recent) if tcb.ts_ok else None) + tcb.tfo_option
        length = 0
    else:
        opts = syn_options(tcb.adv_mss, tcb.our_wscale if tcb.ws_enabled else None, tcb.sack_enabled,
                           (ts_now(tcb, now), 0) if tcb.ts_enabled else None)
        tfo_option, length = fastopen.syn_out(tcb)  # RFC 7413: a cookie (request), data in the SYN
        opts += tfo_option
    flags = SYN | ACK | synack_flags(tcb) if passive else SYN | syn_flags(tcb)  # RFC 3168 §6.1.1
    emit(tcb, tcb.iss, flags, length, now, opts)
    tcb.rtx_timer.arm(now + tcb.rto.rto)
