"""The transmission control block: where one connection's state lives (RFC 9293 §3.3.1-3.3.2).

:class:`Tcb` holds the send and receive sequence spaces, the negotiated options, the buffers, the
congestion control module (:mod:`.cc`), the RTO estimator (:mod:`.rto`), the loss-recovery state (one
:class:`~.recovery.Recovery`) and the four timers; the behaviour is in the modules of functions named
in :mod:`pytcp_green.stack.tcp`'s map, which take the Tcb as their first argument.  The calls the
socket and the layer make are bound here as methods, so ``tcb.segment_arrives(seg, now)`` is one plain
function call.

Sequence numbers are unwrapped ints (:mod:`.seq`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp import arrive, closing, icmp, opening, send, timeouts, user
from pytcp_green.stack.tcp.buffers import ReceiveBuffer, SendBuffer
from pytcp_green.stack.tcp.cc import create as create_cc
from pytcp_green.stack.tcp.dsack import Dsack
from pytcp_green.stack.tcp.ecn import EcnState
from pytcp_green.stack.tcp.frto import Frto
from pytcp_green.stack.tcp.info import InfoCounters
from pytcp_green.stack.tcp.rcvbuf import INIT_SEGMENTS, RcvSpace
from pytcp_green.stack.tcp.receive import QUICKACKS
from pytcp_green.stack.tcp.recovery import Recovery
from pytcp_green.stack.tcp.rto import RtoEstimator
from pytcp_green.stack.tcp.state import (
    CLOSED,
    DEFAULT_MSS4,
    DEFAULT_MSS6,
    STATE_NAMES,
    TIME_WAIT,
    window_scale_for,
)
from pytcp_green.stack.tcp.timer import LazyTimer
from pytcp_green.stack.tcp.undo import Undo
from pytcp_green.stack.tcp.urgent import UrgentMark

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.layer import TcpLayer
    from pytcp_green.stack.tcp.socket import TcpSocket

# STATE_NAMES and TIME_WAIT are re-exported for the tests that inspect states through this module.
__all__ = ["STATE_NAMES", "TIME_WAIT", "Tcb"]


class Tcb:
    """One connection.  Created by :class:`~pytcp_green.stack.tcp.socket.TcpSocket` (active open) or by a
    listener (passive open); registered in the layer's demultiplexing table until :meth:`destroy`."""

    # Slots, not an instance dict: a Tcb has more attributes than CPython's shared-key dicts hold, so
    # each one carried its own 3 KB dict (10,000 idle connections cost 32 MB for it).
    __slots__ = ("ack_due", "ack_now", "adv_mss", "cc", "csum_free", "dack_timer", "dead", "delack", "dsack", "ecn",
                 "eff_mss", "fin_queued", "fin_received", "frto", "info", "ip_overhead", "irs", "iss",
                 "ka_probes", "key", "last_ack_sent", "last_rx", "layer", "listener", "local_addr",
                 "local_port", "max_sndwnd", "misc_timer", "orphan", "our_wscale", "passive", "peer_fin",
                 "persist_backoff", "probe_start", "probes_out", "progress_at", "quickacks", "rbuf", "rcv_adv",
                 "rcv_mss", "rcv_nxt", "rcv_space", "rcv_wscale", "recovery", "remote_addr", "remote_port",
                 "retries", "room", "rto", "rtt_seq", "rtt_time", "rtx_timer", "rtx_tsval", "sack_enabled",
                 "sack_ok", "sbuf", "snd_max", "snd_mss", "snd_nxt", "snd_sml", "snd_una", "snd_up", "snd_wl1",
                 "snd_wl2", "snd_wnd", "snd_wscale", "sock", "soft_error", "stack", "state", "stats",
                 "sws_override", "syn_data", "syn_sent_at", "tfo", "tfo_deferred", "tfo_option", "tlp_timer",
                 "ts_enabled", "ts_offset", "ts_ok", "ts_recent", "tso_max", "undo", "urg", "user_closed",
                 "write_blocked", "ws_enabled")

    def __init__(self, layer: TcpLayer, sock: TcpSocket, local_addr: bytes, local_port: int,
                 remote_addr: bytes, remote_port: int, now: float, listener: TcpSocket | None = None,
                 iss: int | None = None) -> None:
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
        # ``iss`` is given for a connection made from a SYN cookie (the cookie was our ISN).
        self.iss = layer.isn(local_addr, local_port, remote_addr, remote_port, now) if iss is None else iss
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
        self.snd_up = self.iss  # SND.UP: the end of the last MSG_OOB send; urgent mode while above SND.UNA

        # -- receive sequence space --
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0  # right edge of the window we advertised; never moves left (RFC 9293 §3.8.6.2.2)
        self.rbuf = ReceiveBuffer()
        self.fin_received = False
        self.peer_fin: int | None = None  # a FIN that arrived beyond a gap
        self.urg = UrgentMark()  # the peer's urgent mark and byte (RFC 9293 §3.8.5, :mod:`.urgent`)

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
        self.ecn = EcnState(sysctl.int("net.ipv4.tcp_ecn"))  # RFC 3168 (:mod:`.ecn`)
        self.dsack = Dsack(bool(sysctl.int("net.ipv4.tcp_dsack")))  # RFC 2883 (:mod:`.dsack`)

        self.ip_overhead = 20 if len(remote_addr) == 4 else 40
        # An IPv4 datagram holds at most 65535 bytes, whatever the MTU (loopback's is 65536).
        mtu = min(stack.path_mtu(remote_addr) or 576, 65535)
        self.adv_mss = mtu - self.ip_overhead - 20
        self.snd_mss = min(DEFAULT_MSS4 if len(remote_addr) == 4 else DEFAULT_MSS6, self.adv_mss)
        self.eff_mss = self.snd_mss  # what one full segment carries: MSS minus per-segment options
        self.rcv_mss = min(self.adv_mss, DEFAULT_MSS4)  # estimate of the peer's segment size (delayed ACK)
        self.rcv_space = RcvSpace(INIT_SEGMENTS * self.adv_mss)  # receive buffer auto-tuning (:mod:`.rcvbuf`)
        # Looked up once with the route (Stack.egress_for): the largest IP packet the device toward
        # the peer segments itself (TSO, 0 when it does not), whether anyone checks our checksums there
        # (not over the loopback), and the room to leave in front of a segment for the headers below.
        self.tso_max, self.csum_free, self.room = stack.egress_for(remote_addr)

        # -- congestion control and loss recovery --
        self.cc = create_cc(sock.congestion, self.eff_mss)  # TCP_CONGESTION or the sysctl default
        self.recovery = Recovery(self.iss, bool(sysctl.int("net.ipv4.tcp_recovery")))
        self.undo = Undo()  # a reduction given back when it proves unnecessary (:mod:`.undo`)
        self.frto = Frto(bool(sysctl.int("net.ipv4.tcp_frto")))  # spurious timeouts (RFC 5682, :mod:`.frto`)
        self.rto = RtoEstimator(sysctl.float("net.ipv4.tcp_rto_initial"), sysctl.float("net.ipv4.tcp_rto_min"),
                                sysctl.float("net.ipv4.tcp_rto_max"))
        self.retries = 0  # consecutive timeouts of the same data
        self.progress_at = now  # last forward progress (user timeout clock)
        self.rtt_seq: int | None = None  # timed segment when timestamps are off (Karn)
        self.rtx_tsval: int | None = None  # TSval at our latest retransmission timeout (see recovery.new_ack)
        self.rtt_time = 0.0
        self.syn_sent_at: float | None = now  # None: no handshake RTT sample (a SYN-cookie connection)
        self.sws_override = False
        self.persist_backoff = 0  # probes sent since the window last opened (RFC 1122 §4.2.2.17)
        self.probes_out = 0  # window probes sent since the peer's last ACK (Linux's icsk_probes_out)
        self.probe_start: float | None = None  # first probe since progress (TCP_USER_TIMEOUT's clock)
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
        self.orphan = False  # counted in the layer's orphans (tcp_max_orphans; not in TIME-WAIT)
        self.dead = False  # destroyed: out of the demultiplexing table, timers stopped
        self.info = InfoCounters(now)  # TCP_INFO's per-connection counts (:mod:`.info`)

        timers = stack.timers
        self.rtx_timer = LazyTimer(timers, timeouts.on_rtx_timer, self)
        self.dack_timer = LazyTimer(timers, timeouts.on_dack_timer, self)
        self.misc_timer = LazyTimer(timers, timeouts.on_misc_timer, self)
        self.tlp_timer = LazyTimer(timers, timeouts.on_tlp_timer, self)

        # -- TCP Fast Open (RFC 7413, :mod:`.fastopen`) --
        self.tfo = False  # a Fast Open SYN was sent (client) or a valid cookie made this child (server)
        self.tfo_option = b""  # the Fast Open option our SYN or SYN-ACK carries
        self.syn_data = 0  # bytes of data our SYN carries
        self.tfo_deferred = False  # TCP_FASTOPEN_CONNECT with a cookie: the SYN waits for the first send

        self.our_wscale = window_scale_for(max(sysctl.ints("net.ipv4.tcp_rmem")[2], sock.rcvbuf))

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    # The calls made from outside the connection (socket, layer, runtime).
    segment_arrives = arrive.segment_arrives  # RFC 9293 §3.10.7
    passive_open = opening.passive_open  # §3.10.7.2
    cookie_open = opening.cookie_open  # SYN cookies (Linux tcp_syncookies)
    connect = user.connect  # §3.10.1
    user_send = user.user_send  # §3.10.2
    after_read = user.after_read  # §3.10.3
    shutdown_write = user.shutdown_write  # §3.10.4
    close = user.close  # §3.10.4
    abort = user.abort  # §3.10.5
    destroy = closing.destroy
    icmp_error = icmp.icmp_error  # RFC 5927
    send_ack = send.send_ack
    arm_keepalive = timeouts.arm_keepalive  # RFC 1122 §4.2.3.6
