"""SEGMENT ARRIVES for a connection (RFC 9293 §3.10.7), one function per step, in the RFC's order.

* §3.10.7.3 SYN-SENT is :func:`~.opening.syn_sent_input`; LISTEN (§3.10.7.2) is the listener's
  (:mod:`.socket`, then :func:`~.opening.passive_open`).
* The synchronized states (§3.10.7.4): a repeated SYN before the checks (a lost SYN-ACK, the
  simultaneous open, RFC 6191's reuse of a TIME-WAIT pair), RFC 7323 §5.3 PAWS, then
  first: sequence-number acceptability (the four cases) and trimming to the window;
  RFC 7323 §4.3 TS.Recent; second: RST, accepted only at exactly RCV.NXT (RFC 5961 §3.2), and
  ignored in TIME-WAIT with ``net.ipv4.tcp_rfc1337`` (RFC 1337 §3);
  fourth: SYN (RFC 5961 §4 challenge ACK); fifth: ACK, with RFC 5961 §5.2's acceptable range (a
  passive open's final ACK dropped while the listener's accept queue is full, as Linux) and
  the SND.WL1/SND.WL2 window update (§3.10.7.4, RFC 9293 §3.8.6); sixth: URG (:mod:`.urgent`);
  seventh: text and eighth: FIN
  (:mod:`.receive`); last, the ACK policy of RFC 5681 §4.2 and RFC 1122 §4.2.3.2 (at once,
  every second full segment, or delayed).

The third step (security) does not apply: no IPsec/compartment labels (RFC 9293 §3.10.7.4).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.closing import arm_orphan_timeout, destroy, drop, enter_time_wait, restart_time_wait
from pytcp_green.stack.tcp.dsack import note_duplicate
from pytcp_green.stack.tcp.ecn import ece_received
from pytcp_green.stack.tcp.frto import ack as frto_ack
from pytcp_green.stack.tcp.opening import established, syn_sent_input
from pytcp_green.stack.tcp.output import output
from pytcp_green.stack.tcp.receive import data_input, duplicate_received, fin_input
from pytcp_green.stack.tcp.recovery import detect_lost_retransmissions, dupack, new_ack, sack_input
from pytcp_green.stack.tcp.send import challenge_ack, send_ack, send_syn
from pytcp_green.stack.tcp.seq import ts_before, unwrap
from pytcp_green.stack.tcp.state import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    RECEIVING,
    SENDING,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
)
from pytcp_green.stack.tcp.urgent import NOTYET, urgent_input
from pytcp_green.stack.wire.tcp import ACK, ECE, FIN, RST, SYN, URG, TcpSegment

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

# States in which a FIN is processed (RFC 9293 §3.10.7.4 eighth).
_FIN_STATES = frozenset((SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK,
                         TIME_WAIT))


def segment_arrives(tcb: Tcb, seg: TcpSegment, now: float) -> None:
    """RFC 9293 §3.10.7: one segment for this connection, already checksummed and demultiplexed."""
    state = tcb.state
    if state == SYN_SENT:
        syn_sent_input(tcb, seg, now)
        return
    flags = seg.flags
    tcb.last_rx = now
    seq = unwrap(seg.seq, tcb.rcv_nxt)
    if flags & SYN:
        flags = _syn_before_checks(tcb, seg, state, seq, now)
        if flags < 0:
            return
        if not flags & SYN:
            seq += 1  # simultaneous open: what matters in the repeated SYN-ACK is its ACK
    if _paws_rejects(tcb, seg, flags, now):
        return

    # first: sequence number acceptability
    payload = seg.payload
    plen = len(payload)
    fin = flags & FIN
    rcv_nxt = tcb.rcv_nxt
    wnd = tcb.rcv_adv - rcv_nxt
    if wnd < 0:
        wnd = 0
    if not _acceptable(seq, plen + (1 if flags & SYN else 0) + (1 if fin else 0), rcv_nxt, wnd):
        if wnd == 0 and seq == rcv_nxt and not flags & SYN:
            # Zero window: still take the ACK (and RST) of a segment whose text we must refuse.
            payload = payload[:0]
            plen = 0
            fin = 0
            tcb.ack_now = True
        else:
            if plen and seq + plen <= rcv_nxt and not flags & RST:
                note_duplicate(tcb, seq, seq + plen)  # RFC 2883 §4: text we already have
                duplicate_received(tcb)
            _unacceptable(tcb, state, flags, now)
            return
    elif seq < rcv_nxt or seq + plen > rcv_nxt + wnd:
        seq, payload, fin = _trim(tcb, seq, payload, fin, rcv_nxt, wnd)
        plen = len(payload)

    # RFC 7323 §4.3: remember the peer's timestamp to echo.
    if (tcb.ts_ok and seg.ts_val is not None and seq <= tcb.last_ack_sent
            and not ts_before(seg.ts_val, tcb.ts_recent)):
        tcb.ts_recent = seg.ts_val

    if flags & RST:  # second
        _rst_step(tcb, seg, rcv_nxt, now)
        return
    if flags & SYN:  # fourth
        _syn_step(tcb, state, now)
        return
    if not flags & ACK or not _ack_step(tcb, seg, state, seq, plen, now):  # fifth
        return
    state = tcb.state
    if (flags & URG or tcb.urg.state == NOTYET) and state in RECEIVING:  # sixth
        urgent_input(tcb, seg, seq, payload)
    if plen and not _text_step(tcb, state, seq, payload, now):  # seventh
        return
    if fin and state in _FIN_STATES:  # eighth
        fin_input(tcb, seq + plen, now)
    _respond(tcb, now)


def _syn_before_checks(tcb: Tcb, seg: TcpSegment, state: int, seq: int, now: float) -> int:
    """A SYN met before the sequence checks: the flags to go on with, or -1 if it was dealt with."""
    flags = seg.flags
    if state == SYN_RECEIVED and seq == tcb.irs:
        if not flags & ACK:
            send_syn(tcb, now)  # our SYN-ACK was lost: the peer repeats its SYN
            return -1
        # Simultaneous open: the peer's SYN-ACK repeats its SYN; what matters is its ACK.
        return flags & ~SYN
    if state == TIME_WAIT and not flags & (ACK | RST) and (
            seq > tcb.rcv_nxt if not tcb.ts_ok or seg.ts_val is None
            else ts_before(tcb.ts_recent, seg.ts_val)):
        # RFC 9293 §3.10.7.4 / RFC 6191: a new incarnation may reuse the pair of a TIME-WAIT.
        destroy(tcb)
        tcb.layer.unmatched(tcb.remote_addr, tcb.local_addr, seg, now)
        return -1
    return flags


def _paws_rejects(tcb: Tcb, seg: TcpSegment, flags: int, now: float) -> bool:
    """RFC 7323 §5.3 R1: PAWS, before the sequence check."""
    if (tcb.ts_ok and seg.ts_val is not None and not flags & RST
            and ts_before(seg.ts_val, tcb.ts_recent)):
        tcb.stats["tcp.drop.paws"] += 1
        send_ack(tcb, now)
        return True
    return False


def _acceptable(seq: int, seg_len: int, rcv_nxt: int, wnd: int) -> bool:
    """RFC 9293 §3.10.7.4 first, the four cases."""
    if seg_len == 0:
        # Like Linux, a bare ACK exactly at the right window edge is taken (RFC 9293 says "<"):
        # a peer whose window we filled sends its ACKs with exactly that sequence number.
        return seq == rcv_nxt if wnd == 0 else rcv_nxt <= seq <= rcv_nxt + wnd
    if wnd == 0:
        return False
    last = seq + seg_len - 1
    return rcv_nxt <= seq < rcv_nxt + wnd or rcv_nxt <= last < rcv_nxt + wnd or (
        seq < rcv_nxt and last >= rcv_nxt + wnd)


def _unacceptable(tcb: Tcb, state: int, flags: int, now: float) -> None:
    """An unacceptable segment is answered with an ACK, unless it is a RST (RFC 9293 §3.10.7.4 first)."""
    if not flags & RST:
        if state == TIME_WAIT and flags & FIN:
            restart_time_wait(tcb, now)
        tcb.stats["tcp.rx_out_of_window"] += 1
        send_ack(tcb, now)


def _trim(tcb: Tcb, seq: int, payload: memoryview, fin: int, rcv_nxt: int,
          wnd: int) -> tuple[int, memoryview, int]:
    """Trim an acceptable segment to the window: drop what we already have and what does not fit."""
    plen = len(payload)
    if seq < rcv_nxt:
        cut = rcv_nxt - seq
        if cut > plen:
            cut = plen  # only the SYN or FIN bit was old
        note_duplicate(tcb, seq, seq + cut)  # RFC 2883 §4: the part we already have
        if plen:
            duplicate_received(tcb)
        payload = payload[cut:]
        seq += cut
        plen -= cut
    right = rcv_nxt + wnd
    if seq + plen > right:
        keep = right - seq if right > seq else 0
        payload = payload[:keep]
        fin = 0
        tcb.ack_now = True
    return seq, payload, fin


def _rst_step(tcb: Tcb, seg: TcpSegment, rcv_nxt: int, now: float) -> None:
    """RFC 9293 §3.10.7.4 second, as RFC 5961 §3.2 narrows it: a RST is acceptable only at exactly
    RCV.NXT; any other in the window draws a challenge ACK."""
    if unwrap(seg.seq, tcb.rcv_nxt) == rcv_nxt:
        reset_received(tcb, now)
    else:
        challenge_ack(tcb, now)


def _syn_step(tcb: Tcb, state: int, now: float) -> None:
    """RFC 9293 §3.10.7.4 fourth: a SYN in a synchronized state gets RFC 5961 §4's challenge ACK; a
    passive open's SYN-RECEIVED returns to LISTEN instead (the child is dropped)."""
    if state == SYN_RECEIVED and tcb.passive:
        destroy(tcb)
    else:
        challenge_ack(tcb, now)


def reset_received(tcb: Tcb, now: float) -> None:
    """An acceptable RST (RFC 9293 §3.10.7.4 second), with Linux's errno choices."""
    state = tcb.state
    if state == TIME_WAIT and tcb.stack.sysctl.int("net.ipv4.tcp_rfc1337"):
        tcb.stats["tcp.rst_in.time_wait_ignored"] += 1  # RFC 1337 §3 remedy H1: no TIME-WAIT assassination
        return
    # A reset that ends TIME-WAIT early (Linux's default, tcp_rfc1337=0) costs no data: count it apart.
    tcb.stats["tcp.rst_in.time_wait" if state == TIME_WAIT else "tcp.rst_in"] += 1
    if state == SYN_RECEIVED:
        if tcb.passive:
            destroy(tcb)  # back to LISTEN: the listener never saw this child
            return
        code = errno.ECONNREFUSED
    elif state == CLOSE_WAIT:
        code = errno.EPIPE
    elif state in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2):
        code = errno.ECONNRESET
    else:
        code = 0
    drop(tcb, now, code, rst=False)


def _ack_step(tcb: Tcb, seg: TcpSegment, state: int, seq: int, plen: int, now: float) -> bool:
    """RFC 9293 §3.10.7.4 fifth: SYN-RECEIVED's ACK, RFC 5961 §5.2's range; False to stop here."""
    ack = unwrap(seg.ack, tcb.snd_una)
    if state == SYN_RECEIVED:
        if not tcb.snd_una < ack <= tcb.snd_max:
            tcb.layer.send_reset(tcb.local_addr, tcb.remote_addr, tcb.local_port, tcb.remote_port,
                                 ack, 0, RST, now)
            return False
        listener = tcb.listener
        if listener is not None and listener.accept_queue_full():
            # Linux (tcp_check_req, tcp_abort_on_overflow=0): the handshake's ACK is dropped and
            # the child stays half-open; a later ACK or our SYN-ACK's retransmission completes it
            # once the application has accepted.
            listener.listen_overflow("tcp.drop.listen_overflow_ack")
            return False
        tcb.snd_wnd = seg.window << tcb.snd_wscale
        tcb.snd_wl1 = seq
        tcb.snd_wl2 = ack
        established(tcb, now)
    if ack > tcb.snd_max:
        tcb.stats["tcp.drop.ack_unsent"] += 1
        challenge_ack(tcb, now)
        return False
    if ack < tcb.snd_una - tcb.max_sndwnd:
        tcb.stats["tcp.drop.ack_too_old"] += 1
        challenge_ack(tcb, now)
        return False
    return ack_input(tcb, seg, seq, ack, plen, now)


def ack_input(tcb: Tcb, seg: TcpSegment, seq: int, ack: int, plen: int, now: float) -> bool:
    """RFC 9293 §3.10.7.4 fifth for synchronized states; False if the connection ended."""
    snd_una = tcb.snd_una
    # Linux's tcp_ack: any ACK that is not old says the peer is there, whatever its window, so the
    # count of unanswered window probes restarts (RFC 1122 §4.2.2.17: probe while it answers).
    tcb.probes_out = 0
    new_sack = False
    if seg.sack is not None and tcb.sack_ok:
        new_sack = sack_input(tcb, seg.sack, ack)
    wnd = seg.window << tcb.snd_wscale
    if ack > snd_una:
        tcb.probe_start = None  # progress: the TCP_USER_TIMEOUT clock of probing restarts
        new_ack(tcb, ack, seg, now)
    elif ack == snd_una and tcb.snd_max > snd_una and tcb.state in SENDING and (
            new_sack if tcb.sack_ok else plen == 0 and not seg.flags & FIN and wnd == tcb.snd_wnd):
        # RFC 5681 §2 duplicate ACK; with SACK, RFC 6675 §2: one that SACKs new data.
        dupack(tcb, now)
    frto_ack(tcb, seg, snd_una, now)  # a spurious timeout or retransmission undone (:mod:`.frto`)
    if seg.flags & ECE and tcb.ecn.ok:
        ece_received(tcb, now)  # RFC 3168 §6.1.2
    rec = tcb.recovery
    if rec.rtx_log and rec.active and rec.sb:
        detect_lost_retransmissions(tcb)
    # window update (SND.WL1/SND.WL2 rule)
    if tcb.snd_wl1 < seq or (tcb.snd_wl1 == seq and tcb.snd_wl2 <= ack):
        if wnd != tcb.snd_wnd:
            if wnd > tcb.snd_wnd:
                tcb.progress_at = now
                tcb.persist_backoff = 0
                tcb.probe_start = None
                if tcb.snd_wnd == 0 and tcb.snd_max > tcb.snd_una:
                    # The window reopened under data in flight: that data is again the RTO's
                    # business, not the (possibly far off) next window probe's.
                    tcb.rtx_timer.arm(now + tcb.rto.rto)
            tcb.snd_wnd = wnd
            if wnd > tcb.max_sndwnd:
                tcb.max_sndwnd = wnd
        tcb.snd_wl1 = seq
        tcb.snd_wl2 = ack
    if tcb.fin_queued and tcb.snd_una > tcb.sbuf.end:
        return _our_fin_acked(tcb, now)
    return True


def _our_fin_acked(tcb: Tcb, now: float) -> bool:
    state = tcb.state
    if state == FIN_WAIT_1:
        tcb.state = FIN_WAIT_2
        tcb.rtx_timer.cancel()
        if tcb.user_closed:
            arm_orphan_timeout(tcb, now)
        tcb.sock.wake()
    elif state == CLOSING:
        enter_time_wait(tcb, now)
        return not tcb.dead  # tcp_max_tw_buckets may have freed it at once
    elif state == LAST_ACK:
        destroy(tcb)
        return False
    return True


def _text_step(tcb: Tcb, state: int, seq: int, payload: memoryview, now: float) -> bool:
    """RFC 9293 §3.10.7.4 seventh; False if the connection ended."""
    if state in RECEIVING:
        if tcb.user_closed:
            # Linux: new data for a closed socket cannot be read by anyone: reset.
            tcb.stats["tcp.abort_on_data"] += 1
            drop(tcb, now, 0, rst=True)
            return False
        data_input(tcb, seq, payload, now)
    else:
        tcb.ack_now = True
    return True


def _respond(tcb: Tcb, now: float) -> None:
    """After the steps: send what the ACK or window allows, then acknowledge now, later or never."""
    if tcb.state in SENDING:
        output(tcb, now)
    if tcb.state == CLOSED:
        return
    if tcb.ack_now:
        send_ack(tcb, now)
    elif tcb.ack_due > tcb.rcv_mss:
        # RFC 5681 §4.2: at least every second full-sized segment, or a coalesced run of them
        # (TcpLayer.begin_batch).  "More than one full segment" as Linux counts it (rcv_nxt -
        # rcv_wup > rcv_mss): a run longer than the MSS makes rcv_mss the MSS itself, which two
        # segments of MSS less the timestamps option no longer reach twice.
        send_ack(tcb, now)
    elif tcb.ack_due and tcb.dack_timer.when is None:
        tcb.dack_timer.arm(now + tcb.delack)
