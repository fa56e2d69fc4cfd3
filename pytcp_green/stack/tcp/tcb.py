"""The transmission control block: one connection's state machine, sender and receiver.

Implements, by section:

* RFC 9293 §3.3.2 states and §3.10.7 "SEGMENT ARRIVES" (acceptability, RST, SYN, ACK, data, FIN
  steps, in that order), §3.10.4 CLOSE and the half-close, §3.8.6.1 zero-window probing.
* RFC 5961: RST accepted only at exactly RCV.NXT (§3.2), SYN in a synchronized state (§4) and ACKs
  outside [SND.UNA - MAX.SND.WND, SND.NXT] (§5.2) answered with a rate-limited challenge ACK.
* RFC 7323: window scale (§2), timestamps, RTT measurement from TSecr (§4) and PAWS (§5).
* RFC 2018 SACK (receiver block choice §4 in :mod:`.buffers`, sender scoreboard in :mod:`.sack`) and
  RFC 6675 loss recovery (IsLost/SetPipe/NextSeg rules 1-3); NewReno (RFC 6582) when SACK is off.
* RFC 8985 in part (SACK connections, ``net.ipv4.tcp_recovery``): lost retransmissions detected by
  transmission order (§6's idea, without the reordering window) and the tail loss probe (§7).
* RFC 5681 fast retransmit, immediate ACKs for out-of-order data, delayed ACKs (every second full
  segment, quick-ACK at start); RFC 3042 limited transmit; RFC 6298 RTO with Karn (:mod:`.rto`).
* RFC 1122 §4.2.3.4 Nagle (in Linux's Minshall form: a partial segment waits only while an earlier
  partial segment is unacknowledged; a full segment is the effective MSS, *after* option bytes) and
  sender/receiver silly-window avoidance (§4.2.3.3-4); §4.2.3.6 keep-alives; RFC 5482-style user timeout.

Sequence numbers are unwrapped ints (:mod:`.seq`).  Sending is driven by events only: every ACK, every
write and every window update runs :meth:`Tcb.output`, which fills whatever the congestion and receive
windows allow at once.  Timers exist for retransmission, delayed ACK and the slow ones (keep-alive,
FIN-WAIT-2, TIME-WAIT), never to pace data.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.buffers import ReceiveBuffer, SendBuffer
from pytcp_green.stack.tcp.cc import NewReno
from pytcp_green.stack.tcp.rto import RtoEstimator
from pytcp_green.stack.tcp.sack import DUP_THRESH, Scoreboard
from pytcp_green.stack.tcp.seq import HALF, MASK, ts_before, unwrap
from pytcp_green.stack.tcp.timer import LazyTimer
from pytcp_green.stack.wire.tcp import (
    ACK,
    FIN,
    PROTO_TCP,
    PSH,
    RST,
    SYN,
    TcpSegment,
    fill_checksum,
    sack_option,
    syn_options,
    write_tcp,
)

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.layer import TcpLayer
    from pytcp_green.stack.tcp.socket import TcpSocket

CLOSED = 0
LISTEN = 1
SYN_SENT = 2
SYN_RECEIVED = 3
ESTABLISHED = 4
FIN_WAIT_1 = 5
FIN_WAIT_2 = 6
CLOSE_WAIT = 7
CLOSING = 8
LAST_ACK = 9
TIME_WAIT = 10
STATE_NAMES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1",
               "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT")

# States in which data may still flow out (ours not yet fully acknowledged).
_SENDING = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK))
# States in which the peer's data is accepted (RFC 9293 §3.10.7.4 seventh).
_RECEIVING = frozenset((ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2))
# States a keep-alive watches.
_KEEPALIVE = frozenset((ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, FIN_WAIT_2))

DEFAULT_MSS4 = 536  # RFC 9293 §3.7.1 when the peer sends no MSS option
DEFAULT_MSS6 = 1220  # RFC 8200 §8.3
MIN_MSS = 64  # floor against absurd MSS options and ICMP-driven shrinking (Linux uses 48 + options)
QUICKACKS = 16  # segments acknowledged at once at the start, so the peer's slow start is not held back
TLP_MIN_PTO = 0.01  # RFC 8985 §7.2: the probe timeout's floor
TLP_DELACK = 0.2  # RFC 8985 §7.2 WCDelAckT: worst-case delayed ACK, added when one segment is in flight
TS_OPT_LEN = 12


class Tcb:
    """One connection.  Created by :class:`~pytcp_green.stack.tcp.socket.TcpSocket` (active open) or by a
    listener (passive open); registered in the layer's demultiplexing table until :meth:`destroy`."""

    def __init__(self, layer: TcpLayer, sock: TcpSocket, local_addr: bytes, local_port: int,
                 remote_addr: bytes, remote_port: int, now: float, listener: TcpSocket | None = None) -> None:
        stack = layer.stack
        sysctl = stack.sysctl
        self.layer = layer
        self.stack = stack
        self.stats = stack.stats
        self.sock = sock
        self.listener = listener  # the listening socket until the child is established and queued
        self.passive = listener is not None
        self.local_addr = local_addr
        self.local_port = local_port
        self.remote_addr = remote_addr
        self.remote_port = remote_port
        self.key = (local_addr, local_port, remote_addr, remote_port)
        self.state = CLOSED

        # -- send sequence space (RFC 9293 §3.3.1) --
        self.iss = layer.isn(local_addr, local_port, remote_addr, remote_port, now)
        self.snd_una = self.iss
        self.snd_nxt = self.iss
        self.snd_max = self.iss  # highest sequence number sent (SND.NXT before a timeout rewinds it)
        self.snd_wnd = 0
        self.max_sndwnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.sbuf = SendBuffer(self.iss + 1)
        self.fin_queued = False  # the user closed the sending side; our FIN follows the queued data
        self.snd_sml = self.iss  # end of the last partial segment sent (Nagle, Minshall variant)

        # -- receive sequence space --
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0  # right edge of the window we advertised; never moves left (RFC 9293 §3.8.6.2.2)
        self.rbuf = ReceiveBuffer()
        self.fin_received = False
        self.peer_fin: int | None = None  # a FIN that arrived beyond a gap

        # -- options --
        self.ts_enabled = bool(sysctl.int("net.ipv4.tcp_timestamps"))
        self.sack_enabled = bool(sysctl.int("net.ipv4.tcp_sack"))
        self.ws_enabled = bool(sysctl.int("net.ipv4.tcp_window_scaling"))
        self.ts_ok = False
        self.sack_ok = False
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.ts_recent = 0
        self.last_ack_sent = 0
        self.ts_offset = layer.rng.getrandbits(32)  # RFC 7323 §5.4: a random per-connection offset

        self.ip_overhead = 20 if len(remote_addr) == 4 else 40
        # An IPv4 datagram holds at most 65535 bytes, whatever the MTU (loopback's is 65536).
        mtu = min(stack.path_mtu(remote_addr) or 576, 65535)
        self.adv_mss = mtu - self.ip_overhead - 20
        self.snd_mss = min(DEFAULT_MSS4 if len(remote_addr) == 4 else DEFAULT_MSS6, self.adv_mss)
        self.eff_mss = self.snd_mss  # what one full segment carries: MSS minus per-segment options
        self.rcv_mss = min(self.adv_mss, DEFAULT_MSS4)  # estimate of the peer's segment size (delayed ACK)

        # -- congestion control and loss recovery --
        self.cc = NewReno(self.eff_mss)
        self.dupacks = 0
        self.in_recovery = False
        self.recover = self.iss  # RFC 6582 "recover"
        self.high_rxt = 0  # RFC 6675 HighRxt
        self.partial_acked = False
        self.sb = Scoreboard()
        # RFC 8985 (SACK only): retransmissions of this recovery as (start, end, SND.MAX when sent), in
        # sending order; ranges found lost again, to resend first; the open tail-loss-probe episode.
        self.rack = bool(sysctl.int("net.ipv4.tcp_recovery"))
        self.rtx_log: list[tuple[int, int, int]] = []
        self.relost: list[tuple[int, int]] = []
        self.tlp_end: int | None = None  # SND.MAX after the probe; no other probe until it is acked
        self.tlp_rxt = False  # the probe was a retransmission (the episode's end is then a loss)
        self.rto = RtoEstimator(sysctl.float("net.ipv4.tcp_rto_initial"), sysctl.float("net.ipv4.tcp_rto_min"),
                                sysctl.float("net.ipv4.tcp_rto_max"))
        self.retries = 0  # consecutive timeouts of the same data
        self.progress_at = now  # last forward progress (user timeout clock)
        self.rtt_seq: int | None = None  # timed segment when timestamps are off (Karn)
        self.rtx_tsval: int | None = None  # TSval of our latest retransmission (see _new_ack)
        self.last_advance = 0  # bytes the previous cumulative ACK advanced (RFC 6582 §4.2 heuristic)
        self.rtt_time = 0.0
        self.syn_sent_at = now
        self.sws_override = False
        self.persist_backoff = 0  # probes sent since the window last opened (RFC 1122 §4.2.2.17)
        self.write_blocked = False  # the application saw a full buffer: wake it when space frees

        # -- acknowledgment policy --
        self.ack_due = 0  # bytes received and not yet acknowledged
        self.ack_now = False
        self.quickacks = QUICKACKS
        self.delack = sysctl.float("net.ipv4.tcp_delack_min")

        # -- keep-alive / user timeout / errors --
        self.last_rx = now
        self.ka_probes = 0
        self.soft_error = 0
        self.user_closed = False  # close() was called: the connection is an orphan finishing its work
        self.dead = False  # destroyed: out of the demultiplexing table, timers stopped

        timers = stack.timers
        self.rtx_timer = LazyTimer(timers, self._on_rtx_timer)
        self.dack_timer = LazyTimer(timers, self._on_dack_timer)
        self.misc_timer = LazyTimer(timers, self._on_misc_timer)
        self.tlp_timer = LazyTimer(timers, self._on_tlp_timer)

        rmem_max = sysctl.ints("net.ipv4.tcp_rmem")[2]
        scale = 0
        while scale < 14 and (65535 << scale) < max(rmem_max, sock.rcvbuf):
            scale += 1
        self.our_wscale = scale

    # ------------------------------------------------------------------------------------------------
    # helpers

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    def _ts_now(self, now: float) -> int:
        return (int(now * 1000) + self.ts_offset) & MASK

    def _window_field(self) -> int:
        """The window to advertise, with receiver-side SWS avoidance (RFC 1122 §4.2.3.3): the right edge
        moves only by at least min(half the buffer, one MSS), and never moves left."""
        rcv_nxt = self.rcv_nxt
        adv = self.rcv_adv
        rcvbuf = self.sock.rcvbuf
        right = rcv_nxt + rcvbuf - len(self.rbuf.data)
        if right > adv and right - adv >= min(rcvbuf >> 1, self.adv_mss):
            adv = right
        if adv < rcv_nxt:
            # Data accepted past the advertised edge (a window probe's byte, say) moved RCV.NXT
            # beyond it: the window is then zero, never negative.
            adv = rcv_nxt
        scale = self.rcv_wscale
        field = (adv - rcv_nxt + (1 << scale) - 1) >> scale
        if field > 0xFFFF:
            field = 0xFFFF
        edge = rcv_nxt + (field << scale)
        self.rcv_adv = edge if edge > adv else adv
        return field

    def _sack_option(self) -> bytes:
        if not self.sack_ok or not self.rbuf.blocks:
            return b""
        return sack_option(self.rbuf.sack_blocks(3 if self.ts_ok else 4))

    def _emit(self, seq: int, flags: int, length: int, now: float, options: bytes = b"") -> None:
        """Build one segment (data taken from the send buffer at ``seq``) and hand it to IP."""
        if flags & SYN:
            window = min(self.sock.rcvbuf, 0xFFFF)  # never scaled in a SYN (RFC 7323 §2.2)
            self.rcv_adv = self.rcv_nxt + window
            ts = None
        else:
            window = self._window_field()
            ts = (self._ts_now(now), self.ts_recent) if self.ts_ok else None
        ack = self.rcv_nxt if flags & ACK else 0
        hlen = 20 + len(options) + (TS_OPT_LEN if ts is not None else 0)
        total = hlen + length
        buf = bytearray(total)
        write_tcp(buf, 0, self.local_port, self.remote_port, seq, ack, flags, window, options, ts)
        if length:
            self.sbuf.copy_out(buf, hlen, seq, length)
        fill_checksum(buf, 0, total, self.local_addr, self.remote_addr)
        err = self.stack.ip_output(self.local_addr, self.remote_addr, PROTO_TCP, buf, now, tos=self.sock.tos)
        stats = self.stats
        stats["tcp.tx"] += 1
        if err:
            stats["tcp.tx_error"] += 1
            self.soft_error = err
        if flags & ACK:
            self.last_ack_sent = self.rcv_nxt
            self.ack_due = 0
            self.ack_now = False
            if self.dack_timer.when is not None:
                self.dack_timer.cancel()

    def _control_seq(self) -> int:
        """Sequence number for a segment without data: the highest sent (RFC 9293's SND.NXT, which never
        moves back), unless the peer's window has shrunk below it.  Using our rewound retransmission
        point instead would make the peer discard our ACKs as old while it waits for them, and two
        stacks retransmitting at each other would deadlock."""
        edge = self.snd_una + self.snd_wnd
        return self.snd_max if self.snd_max <= edge else max(edge, self.snd_una)

    def send_ack(self, now: float) -> None:
        self._emit(self._control_seq(), ACK, 0, now, self._sack_option())

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4/§5.2 challenge ACK, within the layer's rate limit (§7)."""
        if self.layer.challenge_allowed(now):
            self.stats["tcp.challenge_ack"] += 1
            self.send_ack(now)

    def _send_rst(self, now: float) -> None:
        self._emit(self._control_seq(), RST | ACK, 0, now)
        self.stats["tcp.rst_out"] += 1

    def _send_syn(self, now: float) -> None:
        passive = self.state == SYN_RECEIVED
        if passive:
            ws = self.our_wscale if self.snd_wscale or self.rcv_wscale else None
            opts = syn_options(self.adv_mss, ws, self.sack_ok,
                               (self._ts_now(now), self.ts_recent) if self.ts_ok else None)
        else:
            opts = syn_options(self.adv_mss, self.our_wscale if self.ws_enabled else None, self.sack_enabled,
                               (self._ts_now(now), 0) if self.ts_enabled else None)
        self._emit(self.iss, SYN | ACK if passive else SYN, 0, now, opts)
        self.rtx_timer.arm(now + self.rto.rto)

    def _negotiate(self, seg: TcpSegment) -> None:
        """Settle the options a SYN or SYN-ACK carried against ours (RFC 7323 §1.3, RFC 2018 §2)."""
        if self.ws_enabled and seg.wscale is not None:
            self.snd_wscale = min(seg.wscale, 14)  # RFC 7323 §2.3: larger values are treated as 14
            self.rcv_wscale = self.our_wscale
        self.sack_ok = self.sack_enabled and seg.sack_perm
        if self.ts_enabled and seg.ts_val is not None:
            self.ts_ok = True
            self.ts_recent = seg.ts_val
        peer_mss = seg.mss if seg.mss is not None else (DEFAULT_MSS4 if len(self.remote_addr) == 4 else DEFAULT_MSS6)
        self.snd_mss = max(min(peer_mss, self.adv_mss), MIN_MSS)
        self.eff_mss = self.snd_mss - (TS_OPT_LEN if self.ts_ok else 0)
        self.cc = NewReno(self.eff_mss)

    # ------------------------------------------------------------------------------------------------
    # opening

    def connect(self, now: float) -> None:
        """Active OPEN (RFC 9293 §3.10.1): send the SYN."""
        self.state = SYN_SENT
        self.snd_nxt = self.snd_max = self.iss + 1
        self.syn_sent_at = now
        self.stats["tcp.active_open"] += 1
        self._send_syn(now)

    def passive_open(self, seg: TcpSegment, now: float) -> None:
        """A SYN reached a listener (RFC 9293 §3.10.7.2 third): answer SYN-ACK from SYN-RECEIVED."""
        self.irs = seg.seq
        self.rcv_nxt = seg.seq + 1
        self.last_ack_sent = self.rcv_nxt
        self.snd_wnd = seg.window  # unscaled in a SYN
        self.snd_wl1 = seg.seq
        self.snd_wl2 = self.iss
        self._negotiate(seg)
        self.state = SYN_RECEIVED
        self.snd_nxt = self.snd_max = self.iss + 1
        self.syn_sent_at = now
        self.stats["tcp.passive_open"] += 1
        self._send_syn(now)

    def _established(self, now: float) -> None:
        self.state = FIN_WAIT_1 if self.fin_queued else ESTABLISHED
        self.progress_at = now
        self.max_sndwnd = max(self.max_sndwnd, self.snd_wnd)
        if self.retries == 0:
            self.rto.sample(now - self.syn_sent_at)  # Karn: only if the SYN was sent once
        elif self.retries and self.rto.srtt is None:
            self.rto.base = max(self.rto.base, 3.0)  # RFC 6298 §5.7
        self.retries = 0
        self.rto.backoff = 0
        self.rtx_timer.cancel()
        self.stats["tcp.established"] += 1
        listener = self.listener
        if listener is not None:
            self.listener = None
            listener.child_established(self.sock)
        self.arm_keepalive(now)
        self.sock.wake()

    # ------------------------------------------------------------------------------------------------
    # SEGMENT ARRIVES (RFC 9293 §3.10.7)

    def segment_arrives(self, seg: TcpSegment, now: float) -> None:
        state = self.state
        if state == SYN_SENT:
            self._syn_sent_input(seg, now)
            return
        flags = seg.flags
        self.last_rx = now
        seq = unwrap(seg.seq, self.rcv_nxt)
        payload = seg.payload
        plen = len(payload)

        if flags & SYN:
            if state == SYN_RECEIVED and seq == self.irs:
                if not flags & ACK:
                    self._send_syn(now)  # our SYN-ACK was lost: the peer repeats its SYN
                    return
                # Simultaneous open: the peer's SYN-ACK repeats its SYN; what matters is its ACK.
                flags &= ~SYN
                seq += 1
            elif state == TIME_WAIT and not flags & (ACK | RST) and (
                    seq > self.rcv_nxt if not self.ts_ok or seg.ts_val is None
                    else ts_before(self.ts_recent, seg.ts_val)):
                # RFC 9293 §3.10.7.4 / RFC 6191: a new incarnation may reuse the pair of a TIME-WAIT.
                self.destroy()
                self.layer.unmatched(self.remote_addr, self.local_addr, seg, now)
                return
        seg_len = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)

        # RFC 7323 §5.3 R1: PAWS before the sequence check.
        if (self.ts_ok and seg.ts_val is not None and not flags & RST
                and ts_before(seg.ts_val, self.ts_recent)):
            self.stats["tcp.drop.paws"] += 1
            self.send_ack(now)
            return

        # first: sequence number acceptability (RFC 9293 §3.10.7.4, the four cases)
        rcv_nxt = self.rcv_nxt
        wnd = self.rcv_adv - rcv_nxt
        if wnd < 0:
            wnd = 0
        fin = flags & FIN
        if seg_len == 0:
            # Like Linux, a bare ACK exactly at the right window edge is taken (RFC 9293 says "<"):
            # a peer whose window we filled sends its ACKs with exactly that sequence number.
            ok = seq == rcv_nxt if wnd == 0 else rcv_nxt <= seq <= rcv_nxt + wnd
        elif wnd == 0:
            ok = False
        else:
            last = seq + seg_len - 1
            ok = rcv_nxt <= seq < rcv_nxt + wnd or rcv_nxt <= last < rcv_nxt + wnd or (
                seq < rcv_nxt and last >= rcv_nxt + wnd)
        if not ok:
            if wnd == 0 and seq == rcv_nxt and not flags & SYN:
                # Zero window: still take the ACK (and RST) of a segment whose text we must refuse.
                payload = payload[:0]
                plen = 0
                fin = 0
                self.ack_now = True
            else:
                if not flags & RST:
                    if state == TIME_WAIT and fin:
                        self.misc_timer.arm(now + self.stack.sysctl.float("net.ipv4.tcp_tw_timeout"))
                    self.stats["tcp.rx_out_of_window"] += 1
                    self.send_ack(now)
                return
        elif seq < rcv_nxt or seq + plen > rcv_nxt + wnd:
            # Trim to the window: drop what we already have and what does not fit.
            if seq < rcv_nxt:
                cut = rcv_nxt - seq
                if cut > plen:
                    cut = plen  # only the SYN or FIN bit was old
                payload = payload[cut:]
                seq += cut
                plen -= cut
            right = rcv_nxt + wnd
            if seq + plen > right:
                keep = right - seq if right > seq else 0
                payload = payload[:keep]
                plen = keep
                fin = 0
                self.ack_now = True

        # RFC 7323 §4.3: remember the peer's timestamp to echo.
        if (self.ts_ok and seg.ts_val is not None and seq <= self.last_ack_sent
                and not ts_before(seg.ts_val, self.ts_recent)):
            self.ts_recent = seg.ts_val

        # second: RST (RFC 5961 §3.2)
        if flags & RST:
            if unwrap(seg.seq, self.rcv_nxt) == rcv_nxt:
                self._reset_received(now)
            else:
                self._challenge_ack(now)
            return

        # fourth: SYN in a synchronized state (RFC 5961 §4; RFC 9293 for passive SYN-RECEIVED)
        if flags & SYN:
            if state == SYN_RECEIVED and self.passive:
                self.destroy()
            else:
                self._challenge_ack(now)
            return

        # fifth: ACK
        if not flags & ACK:
            return
        ack = unwrap(seg.ack, self.snd_una)
        if state == SYN_RECEIVED:
            if not self.snd_una < ack <= self.snd_max:
                self.layer.send_reset(self.local_addr, self.remote_addr, self.local_port, self.remote_port,
                                      ack, 0, RST, now)
                return
            self.snd_wnd = seg.window << self.snd_wscale
            self.snd_wl1 = seq
            self.snd_wl2 = ack
            self._established(now)
        if ack > self.snd_max:
            self.stats["tcp.drop.ack_unsent"] += 1
            self._challenge_ack(now)
            return
        if ack < self.snd_una - self.max_sndwnd:
            self.stats["tcp.drop.ack_too_old"] += 1
            self._challenge_ack(now)
            return
        if not self._ack_input(seg, seq, ack, plen, now):
            return

        # seventh: segment text
        state = self.state
        if plen:
            if state in _RECEIVING:
                if self.user_closed:
                    # Linux: new data for a closed socket cannot be read by anyone: reset.
                    self.stats["tcp.abort_on_data"] += 1
                    self._abort(now, 0, rst=True)
                    return
                self._data_input(seq, payload, now)
            else:
                self.ack_now = True
        # eighth: FIN
        if fin and state in (SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING,
                             LAST_ACK, TIME_WAIT):
            self._fin_input(seq + plen, now)

        if self.state in _SENDING:
            self.output(now)
        if self.state == CLOSED:
            return
        if self.ack_now:
            self.send_ack(now)
        elif self.ack_due >= 2 * self.rcv_mss:
            # RFC 5681 §4.2: at least every second full-sized segment; within a receive batch, once
            # at its end (TcpLayer.begin_batch).
            batch = self.layer.batch
            if batch is None:
                self.send_ack(now)
            elif not batch or batch[-1] is not self:
                batch.append(self)
        elif self.ack_due and self.dack_timer.when is None:
            self.dack_timer.arm(now + self.delack)

    def _syn_sent_input(self, seg: TcpSegment, now: float) -> None:
        """RFC 9293 §3.10.7.3."""
        flags = seg.flags
        ack_ok = False
        if flags & ACK:
            ack = unwrap(seg.ack, self.iss)
            if ack <= self.iss or ack > self.snd_max:
                if not flags & RST:
                    self.layer.send_reset(self.local_addr, self.remote_addr, self.local_port, self.remote_port,
                                          ack, 0, RST, now)
                return
            ack_ok = True
        if flags & RST:
            if ack_ok:
                self._abort(now, errno.ECONNREFUSED, rst=False)
            return
        if not flags & SYN:
            return
        self.last_rx = now
        self.irs = seg.seq
        self.rcv_nxt = seg.seq + 1
        self.last_ack_sent = self.rcv_nxt
        self._negotiate(seg)
        self.snd_wnd = seg.window  # unscaled in a SYN
        self.snd_wl1 = seg.seq
        if ack_ok:
            ack = unwrap(seg.ack, self.iss)
            self.snd_una = ack
            self.snd_wl2 = ack
            self.sbuf.acknowledge(ack)
            self._established(now)
            if seg.payload:  # data on a SYN-ACK: RFC 9293 continues at the sixth step
                self._data_input(self.rcv_nxt, seg.payload, now)
            if flags & FIN:
                self._fin_input(self.rcv_nxt, now)
            self.output(now)
            self.send_ack(now)
        else:
            self.state = SYN_RECEIVED  # simultaneous open (RFC 9293 §3.5, figure 8)
            self.retries = 0
            self._send_syn(now)

    def _reset_received(self, now: float) -> None:
        """An acceptable RST (RFC 9293 §3.10.7.4 second), with Linux's errno choices."""
        state = self.state
        # A reset that ends TIME-WAIT early (Linux's default, tcp_rfc1337=0) costs no data: count it apart.
        self.stats["tcp.rst_in.time_wait" if state == TIME_WAIT else "tcp.rst_in"] += 1
        if state == SYN_RECEIVED:
            if self.passive:
                self.destroy()  # back to LISTEN: the listener never saw this child
                return
            code = errno.ECONNREFUSED
        elif state == CLOSE_WAIT:
            code = errno.EPIPE
        elif state in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2):
            code = errno.ECONNRESET
        else:
            code = 0
        self._abort(now, code, rst=False)

    # -- ACK processing ---------------------------------------------------------------------------------

    def _ack_input(self, seg: TcpSegment, seq: int, ack: int, plen: int, now: float) -> bool:
        """RFC 9293 §3.10.7.4 fifth for synchronized states; False if the connection ended."""
        snd_una = self.snd_una
        new_sack = False
        if seg.sack is not None and self.sack_ok:
            new_sack = self._sack_input(seg.sack, ack)
        wnd = seg.window << self.snd_wscale
        if ack > snd_una:
            self._new_ack(ack, seg, now)
        elif ack == snd_una and self.snd_max > snd_una and self.state in _SENDING and (
                new_sack if self.sack_ok else plen == 0 and not seg.flags & FIN and wnd == self.snd_wnd):
            # RFC 5681 §2 duplicate ACK; with SACK, RFC 6675 §2: one that SACKs new data.
            self._dupack(now)
        if self.rtx_log and self.in_recovery and self.sb:
            self._detect_lost_retransmissions()
        # window update (SND.WL1/SND.WL2 rule)
        if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
            if wnd != self.snd_wnd:
                if wnd > self.snd_wnd:
                    self.progress_at = now
                    self.persist_backoff = 0
                    if self.snd_wnd == 0 and self.snd_max > self.snd_una:
                        # The window reopened under data in flight: that data is again the RTO's
                        # business, not the (possibly far off) next window probe's.
                        self.rtx_timer.arm(now + self.rto.rto)
                self.snd_wnd = wnd
                if wnd > self.max_sndwnd:
                    self.max_sndwnd = wnd
            self.snd_wl1 = seq
            self.snd_wl2 = ack
        if self.fin_queued and self.snd_una > self.sbuf.end:
            return self._our_fin_acked(now)
        return True

    def _sack_input(self, blocks: list[tuple[int, int]], ack: int) -> bool:
        una = max(ack, self.snd_una)
        snd_max = self.snd_max
        sb = self.sb
        new = False
        for left, right in blocks:
            start = unwrap(left, una)
            end = unwrap(right, una)
            if end <= una or end > snd_max or start >= end:
                continue  # D-SACK (RFC 2883) or bogus: ignored
            if sb.add(start if start > una else una, end):
                new = True
        return new

    def _new_ack(self, ack: int, seg: TcpSegment, now: float) -> None:
        snd_una = self.snd_una
        flight_before = self.snd_max - snd_una
        acked = ack - snd_una
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        released = self.sbuf.acknowledge(ack)
        # RTT: from the echoed timestamp (RFC 7323 §4), else the one timed segment (RFC 6298 §3, Karn).
        # An echo older than our latest retransmission is ambiguous in Karn's sense: the peer is
        # repeating the timestamp of an earlier copy whose ACK was lost, and the "RTT" would include
        # whole timeouts.  Such samples once drove the RTO to tens of seconds under heavy loss.
        if self.ts_ok and seg.ts_ecr:
            delta = (self._ts_now(now) - seg.ts_ecr) & MASK
            if delta < HALF and (self.rtx_tsval is None or not ts_before(seg.ts_ecr, self.rtx_tsval)):
                self.rto.sample(delta / 1000)
        elif self.rtt_seq is not None and ack > self.rtt_seq:
            self.rto.sample(now - self.rtt_time)
            self.rtt_seq = None
        self.retries = 0
        self.persist_backoff = 0
        self.progress_at = now
        self.last_advance = acked
        if self.sb:
            self.sb.advance(ack)
        mss = self.eff_mss
        rearm = True
        if self.in_recovery:
            if ack >= self.recover:
                # Full acknowledgment: leave recovery (RFC 6582 §3.2 step 3, option 1; RFC 6675 §5).
                self.in_recovery = False
                self.rtx_log.clear()
                self.relost.clear()
                cc = self.cc
                cc.cwnd = min(cc.ssthresh, max(self.snd_max - ack, mss) + mss)
            elif not self.sack_ok:
                # NewReno partial ACK (RFC 6582 §3.2 step 5): the next hole is lost too.
                self._retransmit(ack, now)
                cwnd = self.cc.cwnd - acked
                if acked >= mss:
                    cwnd += mss
                self.cc.cwnd = max(cwnd, mss)
                rearm = not self.partial_acked  # "impatient" variant, RFC 6582 §4.1
                self.partial_acked = True
        else:
            self.cc.on_ack(acked, mss, flight_before)
        if self.tlp_end is not None and ack >= self.tlp_end:
            # RFC 8985 §7.4: the probe's episode is over.  A retransmitted probe that got this far
            # repaired a loss (we keep no D-SACK to prove it spurious): respond as fast recovery
            # would, unless a recovery of the episode already did.
            if self.tlp_rxt and not self.in_recovery:
                self.stats["tcp.tlp_recovery"] += 1
                self.cc.on_loss(flight_before, mss)
                self.cc.cwnd = self.cc.ssthresh
            self.tlp_end = None
            self.tlp_rxt = False
        self.dupacks = 0
        if ack >= self.snd_max:
            self.rtx_timer.cancel()
            self.tlp_timer.cancel()
        else:
            if rearm:
                self.rtx_timer.arm(now + self.rto.rto)
            self._schedule_tlp(now)  # RFC 8985 §7.2: restart on an ACK of new data
        if released and self.write_blocked and self.sock.writable():
            self.write_blocked = False
            self.sock.wake()

    def _dupack(self, now: float) -> None:
        self.dupacks += 1
        mss = self.eff_mss
        if self.in_recovery:
            if not self.sack_ok:
                self.cc.cwnd += mss  # RFC 6582 §3.2 step 4: inflate by the segment that left
            return
        if self.sack_ok:
            # RFC 6675 §5.1: no new recovery until HighACK reaches the RecoveryPoint of a timeout.
            if self.snd_una < self.recover:
                return
            if (self.dupacks >= DUP_THRESH or self.sb.lost_boundary(self.snd_una, mss) > self.snd_una
                    or (self.tlp_end is not None and self.sb.high >= self.tlp_end)):
                # The last clause is RFC 8985's ordering applied to a tail loss probe: the probe, sent
                # after everything below it, was SACKed, so the holes below it were lost (§7.4).
                self._enter_recovery(now)
        elif self.dupacks == DUP_THRESH and (self.snd_una > self.recover or (
                self.cc.cwnd > mss and self.last_advance <= 4 * mss)):
            # RFC 6582 §3.2 step 2, with the §4.2 ACK heuristic for duplicates at exactly "recover".
            self._enter_recovery(now)

    def _enter_recovery(self, now: float) -> None:
        """Fast retransmit and the start of fast recovery (RFC 5681 §3.2, RFC 6582, RFC 6675 §5)."""
        mss = self.eff_mss
        cc = self.cc
        cc.on_loss(self.snd_max - self.snd_una, mss)
        self.recover = self.snd_max
        self.in_recovery = True
        self.partial_acked = False
        self.rtt_seq = None
        self.stats["tcp.fast_retransmit"] += 1
        self.tlp_timer.cancel()  # RFC 8985 §7.2: no probe during recovery
        self.tlp_rxt = False  # this recovery is the episode's loss response
        self.rtx_log.clear()
        self.relost.clear()
        sent = self._retransmit(self.snd_una, now)
        if self.sack_ok:
            cc.cwnd = cc.ssthresh
            self.high_rxt = self.snd_una + sent
            self._log_retransmission(self.snd_una, sent)
        else:
            cc.cwnd = cc.ssthresh + DUP_THRESH * mss
        self.rtx_timer.arm(now + self.rto.rto)

    def _retransmit(self, seq: int, now: float) -> int:
        """Send one segment again starting at ``seq`` (capped at the next SACKed range); returns its
        sequence length."""
        end = self.sbuf.end
        options = self._sack_option()
        length = min(self.eff_mss - len(options), end - seq, self.snd_max - seq)
        if self.sb:
            nxt = self.sb.next_start_after(seq)
            if nxt is not None and nxt - seq < length:
                length = nxt - seq
        flags = ACK
        if seq + length == end:
            flags |= PSH
            if self.fin_queued and self.snd_max > end:
                flags |= FIN
        if length <= 0 and not flags & FIN:
            return 0
        self._emit(seq, flags, length, now, options)
        self._count_retransmission(now)
        return length + (1 if flags & FIN else 0)

    def _count_retransmission(self, now: float) -> None:
        """Karn's rule (RFC 6298 §3): once anything is sent twice, no timing in flight is trustworthy."""
        self.stats["tcp.retransmit"] += 1
        self.rtt_seq = None
        if self.ts_ok:
            self.rtx_tsval = self._ts_now(now)

    def _our_fin_acked(self, now: float) -> bool:
        state = self.state
        if state == FIN_WAIT_1:
            self.state = FIN_WAIT_2
            self.rtx_timer.cancel()
            if self.user_closed:
                self.misc_timer.arm(now + self.stack.sysctl.float("net.ipv4.tcp_fin_timeout"))
            self.sock.wake()
        elif state == CLOSING:
            self._enter_time_wait(now)
        elif state == LAST_ACK:
            self.destroy()
            return False
        return True

    # -- data and FIN ---------------------------------------------------------------------------------

    def _data_input(self, seq: int, payload: memoryview, now: float) -> None:
        rbuf = self.rbuf
        size = len(payload)
        was_empty = not rbuf.data
        if size > self.rcv_mss:
            self.rcv_mss = size if size <= self.adv_mss else self.adv_mss
        if seq == self.rcv_nxt and not rbuf.blocks:
            rbuf.data += payload
            self.rcv_nxt = seq + size
            self.ack_due += size
            if self.quickacks:
                self.quickacks -= 1
                self.ack_now = True
        else:
            # Out of order, or filling a gap: acknowledge at once (RFC 5681 §4.2) so the sender learns.
            self.rcv_nxt = rbuf.add(seq, payload, self.rcv_nxt)
            self.ack_now = True
            self.stats["tcp.rx_out_of_order"] += 1
            if self.peer_fin is not None and self.peer_fin == self.rcv_nxt:
                self._fin_input(self.rcv_nxt, now)
        if was_empty and rbuf.data:
            self.sock.wake()

    def _fin_input(self, fin_seq: int, now: float) -> None:
        if self.fin_received:
            self.ack_now = True
            if self.state == TIME_WAIT:
                self.misc_timer.arm(now + self.stack.sysctl.float("net.ipv4.tcp_tw_timeout"))
            return
        if fin_seq != self.rcv_nxt:
            self.peer_fin = fin_seq  # beyond a gap: consumed once the gap fills
            self.ack_now = True
            return
        self.rcv_nxt += 1
        self.fin_received = True
        self.peer_fin = None
        self.ack_now = True
        state = self.state
        if state in (SYN_RECEIVED, ESTABLISHED):
            self.state = CLOSE_WAIT
        elif state == FIN_WAIT_1:
            self.state = CLOSING
        elif state == FIN_WAIT_2:
            self._enter_time_wait(now)
        self.sock.wake()

    def _enter_time_wait(self, now: float) -> None:
        self.state = TIME_WAIT
        self.rtx_timer.cancel()
        self.misc_timer.arm(now + self.stack.sysctl.float("net.ipv4.tcp_tw_timeout"))
        self.sock.wake()

    # ------------------------------------------------------------------------------------------------
    # sending

    def output(self, now: float) -> None:
        """Send everything the windows allow (RFC 5681, RFC 1122 §4.2.3.4), then make sure a timer covers
        what is outstanding or blocked."""
        if self.state not in _SENDING:
            return
        snd_max = self.snd_max
        if self.in_recovery and self.sack_ok:
            self._sack_recovery_output(now)
        else:
            self._window_output(now)
        # Outstanding data needs the retransmission timer; data blocked by the peer's window needs
        # the persist timer.  One timer serves both: its handler tells which case holds when it fires.
        if self.rtx_timer.when is None and (
                self.snd_max > self.snd_una or self.sbuf.end > self.snd_nxt
                or (self.fin_queued and self.snd_max <= self.sbuf.end)):
            self.rtx_timer.arm(now + self.rto.rto)
        if self.snd_max != snd_max:
            self._schedule_tlp(now)  # RFC 8985 §7.2: (re)start after sending new data

    def _window_output(self, now: float) -> None:
        mss = self.eff_mss
        sbuf = self.sbuf
        end = sbuf.end
        fin = self.fin_queued
        una = self.snd_una
        cwnd = self.cc.cwnd
        if 0 < self.dupacks < DUP_THRESH:
            cwnd += self.dupacks * mss  # RFC 3042 limited transmit
        snd_wnd = self.snd_wnd
        limit = una + (snd_wnd if snd_wnd < cwnd else cwnd)
        nodelay = self.sock.nodelay
        options = self._sack_option()
        room = mss - len(options)
        sb = self.sb
        if self.snd_max == una:
            self.progress_at = now  # the line was idle: the user-timeout clock starts now
        while True:
            seq = self.snd_nxt
            snd_max = self.snd_max
            if seq < snd_max:
                # Resending after a timeout (go-back-N), skipping what the peer has SACKed since.
                if sb:
                    skip = sb.sacked_end_at(seq)
                    if skip != seq:
                        self.snd_nxt = skip if skip < snd_max else snd_max
                        continue
                data_end = snd_max if snd_max < end else end
                if seq < data_end:
                    length = min(room, data_end - seq, limit - seq)
                    if sb:
                        nxt = sb.next_start_after(seq)
                        if nxt is not None and nxt - seq < length:
                            length = nxt - seq
                    if length <= 0:
                        break
                    flags = ACK
                    if seq + length == end:
                        flags |= PSH
                        if fin and snd_max > end:
                            flags |= FIN
                else:  # only our FIN remains to resend
                    length = 0
                    flags = ACK | FIN
                self._emit(seq, flags, length, now, options)
                self._count_retransmission(now)
                self.snd_nxt = seq + length + (1 if flags & FIN else 0)
                continue
            avail = end - seq
            if avail > 0:
                usable = limit - seq
                if usable <= 0:
                    break
                length = avail if avail < room else room
                if usable < length:
                    length = usable
                if length < room:
                    if length < avail:
                        # Window-limited: sender SWS avoidance waits for a worthwhile window.
                        if length < (self.max_sndwnd >> 1) and not self.sws_override:
                            break
                    elif not nodelay and not fin and self.snd_sml > una:
                        break  # Nagle: a partial segment is already in flight
                flags = ACK
                if seq + length == end:
                    flags = ACK | PSH | FIN if fin else ACK | PSH
                self._emit(seq, flags, length, now, options)
                if length < mss:
                    self.snd_sml = seq + length
                nxt = seq + length + (1 if flags & FIN else 0)
                self.snd_nxt = self.snd_max = nxt
                if self.rtt_seq is None and not self.ts_ok:
                    self.rtt_seq = seq
                    self.rtt_time = now
                continue
            if fin and seq == end:
                self._emit(seq, ACK | FIN, 0, now, options)
                self.snd_nxt = self.snd_max = end + 1
            break

    def _sack_recovery_output(self, now: float) -> None:
        """RFC 6675 §5 step (C): while cwnd - pipe >= 1 SMSS, send NextSeg()."""
        mss = self.eff_mss
        sb = self.sb
        una = self.snd_una
        lost_to = sb.lost_boundary(una, mss) if sb else una
        pipe = self._pipe(lost_to)
        cwnd = self.cc.cwnd
        end = self.sbuf.end
        relost = self.relost
        while relost and cwnd - pipe >= mss:
            # Retransmissions found lost again (RFC 8985 §6) go before anything NextSeg would pick.
            first, last = relost[0]
            hole = sb.hole_at_or_after(first if first > una else una, last)
            if hole is None:
                del relost[0]  # acknowledged or SACKed since
                continue
            sent = self._retransmit(hole[0], now)
            if sent == 0:
                break
            if hole[0] + sent >= last:
                del relost[0]
            else:
                relost[0] = (hole[0] + sent, last)
            self._log_retransmission(hole[0], sent)
            pipe += sent
        while cwnd - pipe >= mss:
            start = self.high_rxt if self.high_rxt > una else una
            # rule 1: the first lost hole above HighRxt
            hole = sb.hole_at_or_after(start, lost_to) if sb else None
            if hole is None:
                # rule 2: new data the receiver's window allows
                seq = self.snd_max
                if seq < end and seq < una + self.snd_wnd:
                    options = self._sack_option()
                    length = min(mss - len(options), end - seq, una + self.snd_wnd - seq)
                    flags = ACK
                    if seq + length == end:
                        flags = ACK | PSH | FIN if self.fin_queued else ACK | PSH
                    self._emit(seq, flags, length, now, options)
                    self.snd_nxt = self.snd_max = seq + length + (1 if flags & FIN else 0)
                    pipe += length
                    continue
                if self.fin_queued and seq == end:
                    self._emit(seq, ACK | FIN, 0, now, self._sack_option())
                    self.snd_nxt = self.snd_max = end + 1
                    pipe += 1
                    continue
                # rule 3: a hole not yet deemed lost, below the highest SACKed byte
                hole = sb.hole_at_or_after(start, sb.high) if sb else None
                if hole is None:
                    break
            sent = self._retransmit(hole[0], now)
            if sent == 0:
                break
            self.high_rxt = hole[0] + sent
            self._log_retransmission(hole[0], sent)
            pipe += sent

    def _pipe(self, lost_to: int) -> int:
        """RFC 6675 SetPipe: un-SACKed bytes not deemed lost, plus retransmitted bytes (below HighRxt)."""
        una = self.snd_una
        sb = self.sb
        high = self.high_rxt if self.high_rxt > una else una
        if not sb:
            return (self.snd_max - una) + (high - una)
        above_lost = (self.snd_max - lost_to) - (sb.sacked - sb.sacked_below(lost_to))
        retransmitted = (high - una) - sb.sacked_below(high)
        for first, last in self.relost:
            # A retransmission found lost (RFC 8985 §6) has left the network: no longer in flight.
            if first < una:
                first = una
            if last > first:
                retransmitted -= (last - first) - (sb.sacked_below(last) - sb.sacked_below(first))
        return above_lost + retransmitted

    def _log_retransmission(self, seq: int, sent: int) -> None:
        if self.rack and sent:
            self.rtx_log.append((seq, seq + sent, self.snd_max))

    def _detect_lost_retransmissions(self) -> None:
        """RFC 8985 §6.2's ordering idea in its simplest form: once the peer SACKs data first sent after
        a retransmission, that retransmission, if still neither acknowledged nor SACKed, was lost too
        (the path does not reorder that far back) and becomes eligible again in this recovery, where
        RFC 6675 alone would wait for the RTO.  No reordering window: one extra retransmission is the
        price of being wrong.  The log is in sending order, so the SND.MAX values never decrease."""
        sb = self.sb
        high = sb.high
        una = self.snd_una
        log = self.rtx_log
        done = 0
        for first, last, snd_max in log:
            if snd_max >= high:
                break  # this and later retransmissions are younger than anything SACKed
            done += 1
            if first < una:
                first = una
            if last > first and sb.sacked_below(last) - sb.sacked_below(first) < last - first:
                self.relost.append((first, last))
                self.stats["tcp.lost_retransmit"] += 1
        if done:
            del log[:done]

    # ------------------------------------------------------------------------------------------------
    # timers

    def _on_rtx_timer(self, now: float) -> None:
        state = self.state
        if state in (SYN_SENT, SYN_RECEIVED):
            limit = self.stack.sysctl.int("net.ipv4.tcp_syn_retries" if state == SYN_SENT
                                          else "net.ipv4.tcp_synack_retries")
            if self.retries >= limit or self._user_timed_out(now):
                if self.passive:
                    self.destroy()
                else:
                    self._abort(now, self.soft_error or errno.ETIMEDOUT, rst=False)
                return
            self.retries += 1
            self.rto.timed_out()
            self.stats["tcp.syn_retransmit"] += 1
            self._send_syn(now)
            return
        if state not in _SENDING:
            return
        outstanding = self.snd_max > self.snd_una
        if outstanding and self.snd_wnd:
            self._retransmit_timeout(now)
        elif outstanding or self.sbuf.end > self.snd_nxt or (self.fin_queued and self.snd_max <= self.sbuf.end):
            # A zero window, with or without data in flight: go-back-N could send nothing, so the
            # expiry is a window probe (RFC 9293 §3.8.6.1), which a live peer always answers, not a
            # retransmission counted towards giving up.
            self._persist(now)

    def _user_timed_out(self, now: float) -> bool:
        timeout = self.sock.user_timeout
        return bool(timeout) and now - self.progress_at >= timeout

    def _retransmit_timeout(self, now: float) -> None:
        """RFC 6298 §5.4-5.6 and RFC 5681 §3.1 on expiry; RFC 2018 §8: forget SACK information."""
        if self._user_timed_out(now) or (
                not self.sock.user_timeout and self.retries >= self.stack.sysctl.int("net.ipv4.tcp_retries2")):
            self._abort(now, self.soft_error or errno.ETIMEDOUT, rst=True)
            return
        self.stats["tcp.rto"] += 1
        mss = self.eff_mss
        self.cc.on_timeout(self.snd_max - self.snd_una, mss, first=self.retries == 0)
        self.retries += 1
        self.rto.timed_out()
        self.in_recovery = False
        self.recover = self.snd_max
        self.dupacks = 0
        self.sb.clear()
        self.rtx_log.clear()
        self.relost.clear()
        self.tlp_end = None
        self.tlp_rxt = False
        self.rtt_seq = None
        self.snd_nxt = self.snd_una
        self._window_output(now)
        self.rtx_timer.arm(now + self.rto.rto)

    def _schedule_tlp(self, now: float) -> None:
        """RFC 8985 §7.2: with data in flight on a SACK connection outside loss recovery, and no probe
        episode open, arm the probe timeout PTO = max(2 * SRTT, 10 ms), plus WCDelAckT when a single
        segment is in flight (its ACK may be delayed); 1 s without an RTT sample.  A PTO that would
        expire no earlier than the RTO is left to the RTO."""
        if not self._tlp_allowed():
            self.tlp_timer.cancel()
            return
        srtt = self.rto.srtt
        if srtt is None:
            pto = 1.0
        else:
            pto = max(2 * srtt, TLP_MIN_PTO)
            if self.snd_max - self.snd_una <= self.eff_mss:
                pto += TLP_DELACK
        rto_at = self.rtx_timer.when
        if rto_at is not None and now + pto >= rto_at:
            self.tlp_timer.cancel()
        else:
            self.tlp_timer.arm(now + pto)

    def _tlp_allowed(self) -> bool:
        return (self.rack and self.sack_ok and self.state in _SENDING and not self.in_recovery
                and self.tlp_end is None and self.snd_una < self.snd_max == self.snd_nxt and self.snd_wnd > 0)

    def _on_tlp_timer(self, now: float) -> None:
        """RFC 8985 §7.3: nothing was acknowledged for a PTO.  Send one probe, new data if the peer's
        window allows (whatever cwnd says), else the highest-sequence segment again, so the ACK it
        draws carries the SACK information that starts fast recovery instead of a timeout."""
        if not self._tlp_allowed():
            return
        self.stats["tcp.tlp"] += 1
        una = self.snd_una
        end = self.sbuf.end
        seq = self.snd_max
        right = una + self.snd_wnd
        if seq < end and seq < right:
            options = self._sack_option()
            length = min(self.eff_mss - len(options), end - seq, right - seq)
            flags = ACK
            if seq + length == end:
                flags = ACK | PSH | FIN if self.fin_queued else ACK | PSH
            self._emit(seq, flags, length, now, options)
            if length < self.eff_mss:
                self.snd_sml = seq + length
            self.snd_nxt = self.snd_max = seq + length + (1 if flags & FIN else 0)
            self.tlp_rxt = False
        else:
            room = self.eff_mss - len(self._sack_option())
            last = seq if seq < end else end
            self._retransmit(max(una, last - room), now)
            self.tlp_rxt = True
        self.tlp_end = self.snd_max
        self.rtx_timer.arm(now + self.rto.rto)  # §7.3: the RTO restarts after the probe

    def _persist(self, now: float) -> None:
        """The peer's window stopped us (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17).  A zero window gets a
        probe (an already-acknowledged sequence number, so any receiver must answer with its window);
        a small one is used despite SWS avoidance.  Probing goes on while the peer answers."""
        if self._user_timed_out(now):
            self._abort(now, errno.ETIMEDOUT, rst=True)
            return
        if self.snd_wnd == 0:
            self.stats["tcp.window_probe"] += 1
            self._emit(self.snd_una - 1, ACK, 0, now)
        else:
            self.sws_override = True
            self._window_output(now)
            self.sws_override = False
        # Probes back off on their own count: the peer answering them says nothing about the RTT.
        self.persist_backoff += 1
        self.rtx_timer.arm(now + min(self.rto.rto * (1 << min(self.persist_backoff, 16)), self.rto.rto_max))

    def _on_dack_timer(self, now: float) -> None:
        if self.ack_due and self.state not in (CLOSED, SYN_SENT):
            self.stats["tcp.delayed_ack"] += 1
            self.send_ack(now)

    def arm_keepalive(self, now: float) -> None:
        if self.sock.keepalive and self.state in _KEEPALIVE:
            self.misc_timer.arm(self.last_rx + self.sock.keepidle)

    def _on_misc_timer(self, now: float) -> None:
        state = self.state
        if state == TIME_WAIT:
            self.destroy()
        elif state == FIN_WAIT_2 and self.user_closed:
            self._abort(now, 0, rst=True)  # tcp_fin_timeout for an orphan, as Linux
        elif state in _KEEPALIVE and self.sock.keepalive:
            self._keepalive(now)

    def _keepalive(self, now: float) -> None:
        """RFC 1122 §4.2.3.6: probe an idle connection; give up after keepcnt unanswered probes."""
        sock = self.sock
        idle = now - self.last_rx
        if idle < sock.keepidle:
            self.ka_probes = 0
            self.misc_timer.arm(self.last_rx + sock.keepidle)
            return
        if self.snd_max > self.snd_una or self.sbuf.end > self.snd_nxt:
            self.misc_timer.arm(now + sock.keepidle)  # data outstanding: the retransmission timer rules
            return
        if self.ka_probes >= sock.keepcnt or self._user_timed_out(now):
            self._abort(now, self.soft_error or errno.ETIMEDOUT, rst=True)
            return
        self.ka_probes += 1
        self.stats["tcp.keepalive_probe"] += 1
        self._emit(self.snd_una - 1, ACK, 0, now)
        self.misc_timer.arm(now + sock.keepintvl)

    # ------------------------------------------------------------------------------------------------
    # user calls

    def user_send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        """Queue as much of ``data`` as the send buffer holds and push it out; 0 means full."""
        space = self.sock.send_limit(self) - len(self.sbuf.data)
        if space <= 0:
            self.write_blocked = True
            return 0
        size = len(data)
        if size > space:
            with memoryview(data) as view:
                self.sbuf.append(view[:space])
            size = space
        else:
            self.sbuf.append(data)
        self.output(now)
        if not self.sock.writable():
            self.write_blocked = True
        return size

    def after_read(self, now: float) -> None:
        """The application consumed data: tell the peer if the window grew enough to matter (a closed
        or small window reopened; RFC 1122 §4.2.3.3 with Linux's 'at least doubled' test)."""
        if self.state not in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2):
            return
        current = self.rcv_adv - self.rcv_nxt
        possible = self.sock.rcvbuf - len(self.rbuf.data)
        if possible - current >= min(self.sock.rcvbuf >> 1, self.adv_mss) and possible >= 2 * current:
            self.stats["tcp.window_update"] += 1
            self.send_ack(now)

    def shutdown_write(self, now: float) -> None:
        """CLOSE of the sending side (RFC 9293 §3.10.4): FIN after everything already queued."""
        if self.fin_queued:
            return
        state = self.state
        self.fin_queued = True
        if state == ESTABLISHED:
            self.state = FIN_WAIT_1
        elif state == CLOSE_WAIT:
            self.state = LAST_ACK
        else:
            return  # SYN-RECEIVED: the FIN goes out once established
        self.output(now)

    def close(self, now: float) -> None:
        """The application is done with the socket.  Unread data means the peer's data was lost:
        reset, as Linux and RFC 2525 §2.17 do.  Otherwise finish gracefully as an orphan."""
        self.user_closed = True
        state = self.state
        if state in (CLOSED, TIME_WAIT, LAST_ACK, CLOSING):
            return
        if state == SYN_SENT:
            self.destroy()
            return
        if self.rbuf.data:
            self.stats["tcp.abort_on_close"] += 1
            self._abort(now, 0, rst=True)
            return
        if state == FIN_WAIT_2:
            self.misc_timer.arm(now + self.stack.sysctl.float("net.ipv4.tcp_fin_timeout"))
            return
        self.shutdown_write(now)

    def abort(self, now: float) -> None:
        """Drop the connection with a RST (listener closing with children queued, SO_LINGER 0)."""
        if self.state in (SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._abort(now, 0, rst=True)
        else:
            self.destroy()

    def icmp_error(self, seq32: int, err: int, mtu: int | None, now: float) -> None:
        """RFC 1122 §4.2.3.9 / RFC 5927: validated by sequence number; hard errors end a connection
        attempt, soft ones are remembered and reported if the connection later times out."""
        seq = unwrap(seq32, self.snd_una)
        if not self.snd_una <= seq < max(self.snd_max, self.snd_una + 1):
            self.stats["tcp.drop.icmp_out_of_window"] += 1
            return
        if mtu is not None:
            mss = max(mtu - self.ip_overhead - 20, MIN_MSS)
            if mss < self.snd_mss:
                self.stats["tcp.pmtu_update"] += 1
                self.snd_mss = mss
                self.eff_mss = mss - (TS_OPT_LEN if self.ts_ok else 0)
                if self.state in _SENDING and self.snd_max > self.snd_una:
                    self.snd_nxt = self.snd_una  # resend at the new size; not a congestion signal
                    self.rtt_seq = None
                    self.output(now)
            return
        if self.state == SYN_SENT:
            self._abort(now, err, rst=False)
        else:
            self.soft_error = err

    # ------------------------------------------------------------------------------------------------
    # ending

    def _abort(self, now: float, code: int, *, rst: bool) -> None:
        if rst:
            self._send_rst(now)
        if code:
            self.sock.set_error(code)
        self.destroy()

    def destroy(self) -> None:
        """Enter CLOSED and leave the demultiplexing table."""
        if self.dead:
            return
        self.dead = True
        self.state = CLOSED
        self.rtx_timer.stop()
        self.dack_timer.stop()
        self.misc_timer.stop()
        self.tlp_timer.stop()
        self.layer.forget(self)
        listener = self.listener
        if listener is not None:
            self.listener = None
            listener.child_gone()
        self.sock.tcb_closed()
