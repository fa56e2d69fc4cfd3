"""The TCP layer of a stack: demultiplexing, segments for no connection, ISNs, ICMP errors.

* Demultiplexing (RFC 9293 §3.10.7): an exact 4-tuple match first, then the most specific listener on
  the destination port (a listener bound to the address beats a wildcard one).
* A segment for no connection gets the RST of RFC 9293 §3.10.7.1: ``<SEQ=SEG.ACK><CTL=RST>`` if it
  carried an ACK, else ``<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>``; a RST is never answered.
* Initial sequence numbers per RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport,
  secretkey), M a 4-microsecond clock taken from ``now`` and F a keyed BLAKE2b of the 4-tuple.
* SYN cookies (:mod:`.syncookies`): the layer owns their secret; the listener uses them.
* Challenge ACKs are rate-limited stack-wide (RFC 5961 §7), ``net.ipv4.tcp_challenge_ack_limit``/s.
* ICMP errors are matched to a connection by the quoted ports and checked against its sequence space
  (RFC 5927 §4.1) before they touch it.
* Limits (``tcp_max_orphans``, ``tcp_max_tw_buckets``, the accept queue) count under a named counter
  and log once at warning level (:meth:`TcpLayer.limit_hit`); the layer keeps the orphan and
  TIME-WAIT counts that :mod:`.closing` checks.
"""

from __future__ import annotations

import hashlib
import logging
import random
from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.interface import Egress
from pytcp_green.stack.ports import Binding, PortTable
from pytcp_green.stack.sockbase import AF_INET, AF_INET6
from pytcp_green.stack.stats import Stats
from pytcp_green.stack.sysctl import Sysctl
from pytcp_green.stack.tcp.ecn import arrives as ecn_arrives
from pytcp_green.stack.tcp.fastopen import FastOpen
from pytcp_green.stack.tcp.gro import Coalescer
from pytcp_green.stack.tcp.info import count_in
from pytcp_green.stack.tcp.listen import segment_for_listener
from pytcp_green.stack.tcp.seq import MASK
from pytcp_green.stack.tcp.socket import TcpSocket
from pytcp_green.stack.tcp.syncookies import SynCookies
from pytcp_green.stack.timers import Timers
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.checksum import Buffer
from pytcp_green.stack.wire.tcp import ACK, FIN, PROTO_TCP, RST, SYN, TcpSegment, build_tcp, verify_checksum

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

log = logging.getLogger(__name__)


class TcpHost(Protocol):
    """What TCP needs from the stack that hosts it."""

    timers: Timers
    stats: Stats
    sysctl: Sysctl
    rng: random.Random

    def ip_output(self, src: bytes, dst: bytes, proto: int, payload: Buffer, now: float, *,
                  tos: int = 0, gso_size: int = 0, room: int = 0) -> int: ...

    def egress_for(self, dst: bytes) -> Egress: ...

    def path_mtu(self, dst: bytes) -> int | None: ...

    def select_source(self, dst: bytes) -> bytes | None: ...

    def is_local(self, addr: bytes) -> bool: ...


class TcpLayer:
    def __init__(self, stack: TcpHost) -> None:
        self.stack = stack
        self.rng = stack.rng
        low, high = stack.sysctl.ints("net.ipv4.ip_local_port_range")
        self.ports = PortTable(low, high, secret=stack.rng.randbytes(16))
        self.conns: dict[tuple[bytes, int, bytes, int], Tcb] = {}
        self.listeners: dict[int, list[TcpSocket]] = {}
        self._isn_key = stack.rng.randbytes(32)
        # SYN cookies' secret, derived from the ISN key so no further rng draw shifts a replay.
        self.cookies = SynCookies(hashlib.blake2b(b"syncookies", key=self._isn_key).digest())
        self.fastopen = FastOpen(hashlib.blake2b(b"fastopen", key=self._isn_key).digest())  # RFC 7413
        self._challenge_second = -1
        self._challenge_count = 0
        # Whether the runtime is feeding a batch of frames, and the run of in-order segments being
        # coalesced in it (tcp/gro.py).
        self.batching = False
        self.gro = Coalescer(stack.stats)
        # Connections whose socket is closed (tcp_max_orphans) and in TIME-WAIT (tcp_max_tw_buckets);
        # tcp/closing.py keeps both counts.
        self.orphans = 0
        self.time_wait = 0
        self._limits_logged: set[str] = set()

    def socket(self, family: int) -> TcpSocket:
        return TcpSocket(self, family)

    # -- receive batches -----------------------------------------------------------------------------------
    def begin_batch(self) -> None:
        """The runtime is about to feed every frame one read returned.

        Until :meth:`end_batch`, in-order data segments of a connection are coalesced (tcp/gro.py):
        the connection sees each run as one segment and acknowledges it as Linux acknowledges a GRO
        packet, at once when it holds more than one full segment (RFC 5681 §4.2).  One ACK per run,
        not one per batch: a kernel sender ends its bursts with PSH, which ends a run, and a batch
        holding a small window's whole flight under one ACK stalls that sender when the ACK is lost.
        """
        self.batching = True

    def end_batch(self, now: float) -> None:
        self.gro.flush(now)
        self.batching = False

    # -- bookkeeping used by sockets and connections ---------------------------------------------------
    def isn(self, laddr: bytes, lport: int, raddr: bytes, rport: int, now: float) -> int:
        digest = hashlib.blake2b(laddr + lport.to_bytes(2, "big") + raddr + rport.to_bytes(2, "big"),
                                 key=self._isn_key, digest_size=4).digest()
        return (int(now * 250_000) + int.from_bytes(digest, "big")) & MASK

    def ephemeral_for(self, binding: Binding, src: bytes, dst: bytes, dport: int) -> Binding:
        """An RFC 6056 port whose 4-tuple is free (the port table alone cannot see connections)."""
        ports = self.ports
        for _ in range(16):
            claimed = ports.bind_ephemeral(binding, dst, dport)
            if (src, claimed.port, dst, dport) not in self.conns:
                return claimed
            ports.release(claimed)
        return ports.bind_ephemeral(binding, dst, dport)

    def add_listener(self, sock: TcpSocket) -> None:
        self.listeners.setdefault(sock.local_port, []).append(sock)

    def remove_listener(self, sock: TcpSocket) -> None:
        holders = self.listeners.get(sock.local_port)
        if holders and sock in holders:
            holders.remove(sock)
            if not holders:
                del self.listeners[sock.local_port]

    def abort_children(self, listener: TcpSocket, now: float) -> None:
        for tcb in [t for t in self.conns.values() if t.listener is listener]:
            tcb.abort(now)

    def forget(self, tcb: Tcb) -> None:
        if self.conns.get(tcb.key) is tcb:
            del self.conns[tcb.key]

    def limit_hit(self, counter: str, message: str, *args: object) -> None:
        """A limit dropped or reset something: count it under ``counter``; the first time, say so at
        warning level (later hits are only counted, so a flood cannot flood the log too)."""
        self.stack.stats[counter] += 1
        if counter not in self._limits_logged:
            self._limits_logged.add(counter)
            log.warning("TCP: " + message + " (counted as %s, logged once)", *args, counter)

    def challenge_allowed(self, now: float) -> bool:
        second = int(now)
        if second != self._challenge_second:
            self._challenge_second = second
            self._challenge_count = 0
        self._challenge_count += 1
        return self._challenge_count <= self.stack.sysctl.int("net.ipv4.tcp_challenge_ack_limit")

    # -- input ---------------------------------------------------------------------------------------
    def receive(self, src: bytes, dst: bytes, segment: memoryview, now: float, *, csum_ok: bool = False,
                ecn: int = 0) -> None:
        stats = self.stack.stats
        try:
            seg = TcpSegment.parse(segment)
        except Malformed as exc:
            stats["tcp.drop." + exc.reason] += 1
            return
        if not csum_ok and not verify_checksum(segment, src, dst):
            stats["tcp.drop.bad_checksum"] += 1
            return
        stats["tcp.rx"] += 1
        tcb = self.conns.get((dst, seg.dport, src, seg.sport))
        if tcb is not None:
            count_in(tcb, len(seg.payload), now)
            if tcb.ecn.ok:
                ecn_arrives(tcb, seg.flags, ecn)  # RFC 3168 §6.1.3, with the IP header's ECN bits
            if self.batching and self.gro.offer(tcb, seg, ecn, now):
                return
            tcb.segment_arrives(seg, now)
            return
        self.gro.flush(now)  # what was held arrived first
        self.unmatched(src, dst, seg, now)

    def unmatched(self, src: bytes, dst: bytes, seg: TcpSegment, now: float) -> None:
        """A segment no connection claims: a listener's, or answered with a RST (RFC 9293 §3.10.7.1)."""
        if seg.sport == 0 or seg.dport == 0:
            self.stack.stats["tcp.drop.bad_port"] += 1
            return
        listener = self._listener(dst, seg.dport)
        if listener is not None:
            segment_for_listener(listener, seg, src, dst, now)
            return
        self.stack.stats["tcp.drop.no_socket"] += 1
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK:
            self.send_reset(dst, src, seg.dport, seg.sport, seg.ack, 0, RST, now)
        else:
            seg_len = len(seg.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            self.send_reset(dst, src, seg.dport, seg.sport, 0, seg.seq + seg_len, RST | ACK, now)

    def _listener(self, dst: bytes, port: int) -> TcpSocket | None:
        best = None
        for sock in self.listeners.get(port, ()):
            if sock.local_addr == dst:
                return sock
            if not sock.local_addr and ((sock.family == AF_INET6 and not (sock.v6only and len(dst) == 4))
                                        or (sock.family == AF_INET and len(dst) == 4)):
                best = sock
        return best

    def send_reset(self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
                   now: float) -> None:
        """A bare control segment outside any connection (RSTs for strays).

        Counted apart from a connection's own resets: a late duplicate reaching a port whose
        connection has just closed is answered this way by any host, Linux included.
        """
        self.stack.stats["tcp.rst_out.no_connection"] += 1
        self.stack.ip_output(src, dst, PROTO_TCP, build_tcp(src, dst, sport, dport, seq, ack, flags, 0), now)

    def icmp_error(self, src: bytes, dst: bytes, quoted: memoryview, err: int, mtu: int | None, now: float) -> None:
        """An ICMP error about a segment we sent from ``src`` to ``dst`` (RFC 1122 §4.2.3.9, RFC 5927)."""
        self.gro.flush(now)  # the connection sees what arrived before the error first
        if len(quoted) < 8:
            return
        sport = int.from_bytes(quoted[0:2], "big")
        dport = int.from_bytes(quoted[2:4], "big")
        tcb = self.conns.get((src, sport, dst, dport))
        if tcb is None:
            self.stack.stats["tcp.drop.icmp_no_connection"] += 1
            return
        tcb.icmp_error(int.from_bytes(quoted[4:8], "big"), err, mtu, now)
