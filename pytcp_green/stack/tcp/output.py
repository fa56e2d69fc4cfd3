"""Sending data: fill whatever the congestion and receive windows allow.

* RFC 9293 §3.8.6 the send window (SND.UNA + min(SND.WND, cwnd)); RFC 5681 §3.1 cwnd, RFC 3042
  limited transmit on the first duplicate ACKs.
* RFC 1122 §4.2.3.4 Nagle, in Linux's Minshall form: a partial segment waits only while an earlier
  partial segment is unacknowledged; a full segment is the effective MSS, *after* option bytes.
* RFC 1122 §4.2.3.4 sender-side silly-window avoidance (overridden by a persist expiry, §3.8.6.1).
* Segmentation offload: toward a TSO device new data leaves in super-segments of whole segments
  (:class:`~pytcp_green.stack.interface.GsoFrame`), and so do go-back-N resending after a timeout and
  SACK recovery's retransmissions of holes deemed lost (:mod:`.recovery`).
* Go-back-N resending after a retransmission timeout (RFC 6298 §5.4), skipping what the peer SACKed;
  during SACK recovery sending is RFC 6675's NextSeg loop in :mod:`.recovery` instead.

Sending is driven by events only: every ACK, every write and every window update runs :func:`output`.
Timers exist for retransmission, probing and the slow ones, never to pace data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.recovery import emit_again, sack_recovery_output, schedule_tlp
from pytcp_green.stack.tcp.sack import DUP_THRESH
from pytcp_green.stack.tcp.send import emit, sack_option_for, tso_burst
from pytcp_green.stack.tcp.state import SENDING
from pytcp_green.stack.wire.tcp import ACK, FIN, PSH

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

def output(tcb: Tcb, now: float) -> None:
    """Send everything the windows allow (RFC 5681, RFC 1122 §4.2.3.4), then make sure a timer covers
    what is outstanding or blocked."""
    if tcb.state not in SENDING:
        return
    snd_max = tcb.snd_max
    if tcb.recovery.active and tcb.sack_ok:
        sack_recovery_output(tcb, now)
    else:
        window_output(tcb, now)
    # Outstanding data needs the retransmission timer; data blocked by the peer's window needs
    # the persist timer.  One timer serves both: its handler tells which case holds when it fires.
    if tcb.rtx_timer.when is None and (
            tcb.snd_max > tcb.snd_una or tcb.sbuf.end > tcb.snd_nxt
            or (tcb.fin_queued and tcb.snd_max <= tcb.sbuf.end)):
        tcb.rtx_timer.arm(now + tcb.rto.rto)
    if tcb.snd_max != snd_max:
        schedule_tlp(tcb, now)  # RFC 8985 §7.2: (re)start after sending new data


def window_output(tcb: Tcb, now: float) -> None:
    """Send from SND.NXT while SND.UNA + min(SND.WND, cwnd) allows, Nagle and SWS avoidance permitting."""
    end = tcb.sbuf.end
    fin = tcb.fin_queued
    nxt = tcb.snd_nxt
    # Most calls come from an arriving segment with nothing queued behind it (a request's answer, a
    # bare ACK): nothing to resend, no new data, no FIN to send, so the windows need no working out.
    if nxt >= tcb.snd_max and end <= nxt and not (fin and nxt == end):
        return
    mss = tcb.eff_mss
    una = tcb.snd_una
    cwnd = tcb.cc.cwnd
    dupacks = tcb.recovery.dupacks
    if 0 < dupacks < DUP_THRESH:
        cwnd += dupacks * mss  # RFC 3042 limited transmit
    snd_wnd = tcb.snd_wnd
    limit = una + (snd_wnd if snd_wnd < cwnd else cwnd)
    nodelay = tcb.sock.nodelay
    options = sack_option_for(tcb)
    room = mss - len(options)
    # With a TSO device new data leaves in super-segments of whole segments (RFC 9293 leaves the
    # segment size to the sender; the device cuts them at ``room``), under the same windows.
    burst = tso_burst(tcb, room)
    if tcb.snd_max == una:
        tcb.progress_at = now  # the line was idle: the user-timeout clock starts now
        tcb.cc.on_tx_start(now)
    while True:
        seq = tcb.snd_nxt
        if seq < tcb.snd_max:
            if not _resend(tcb, seq, limit, room, burst, options, now):
                break
            continue
        avail = end - seq
        if avail > 0:
            usable = limit - seq
            if usable <= 0:
                break
            length = avail if avail < burst else burst
            if usable < length:
                length = usable
            if length > room and length < avail:
                length -= length % room  # only the end of the data may leave a short last segment
            if length < room:
                if length < avail:
                    # Window-limited: sender SWS avoidance waits for a worthwhile window.
                    if length < (tcb.max_sndwnd >> 1) and not tcb.sws_override:
                        break
                elif not nodelay and not fin and tcb.snd_sml > una and tcb.snd_up <= una:
                    break  # Nagle: a partial segment is already in flight (urgent data never waits)
            flags = ACK
            if seq + length == end:
                flags = ACK | PSH | FIN if fin else ACK | PSH
            if length > room:
                emit(tcb, seq, flags, length, now, options, gso=room)
                if length % room:
                    tcb.snd_sml = seq + length
            else:
                emit(tcb, seq, flags, length, now, options)
                if length < mss:
                    tcb.snd_sml = seq + length
            nxt = seq + length + (1 if flags & FIN else 0)
            tcb.snd_nxt = tcb.snd_max = nxt
            if tcb.rtt_seq is None and not tcb.ts_ok:
                tcb.rtt_seq = seq
                tcb.rtt_time = now
            continue
        if fin and seq == end:
            emit(tcb, seq, ACK | FIN, 0, now, options)
            tcb.snd_nxt = tcb.snd_max = end + 1
        break


def _resend(tcb: Tcb, seq: int, limit: int, room: int, burst: int, options: bytes, now: float) -> bool:
    """Resend at ``seq`` < SND.MAX after a timeout (go-back-N), skipping what the peer has SACKed since,
    up to ``burst`` bytes at once toward a TSO device; False when the window allows nothing more."""
    snd_max = tcb.snd_max
    sb = tcb.recovery.sb
    if sb:
        skip = sb.sacked_end_at(seq)
        if skip != seq:
            tcb.snd_nxt = skip if skip < snd_max else snd_max
            return True
    end = tcb.sbuf.end
    data_end = snd_max if snd_max < end else end
    if seq < data_end:
        length = min(burst, data_end - seq, limit - seq)
        if sb:
            nxt = sb.next_start_after(seq)
            if nxt is not None and nxt - seq < length:
                length = nxt - seq
        if length <= 0:
            return False
        flags = ACK
        if seq + length == end:
            flags |= PSH
            if tcb.fin_queued and snd_max > end:
                flags |= FIN
    else:  # only our FIN remains to resend
        length = 0
        flags = ACK | FIN
    emit_again(tcb, seq, flags, length, room, options, now)
    tcb.snd_nxt = seq + length + (1 if flags & FIN else 0)
    return True
