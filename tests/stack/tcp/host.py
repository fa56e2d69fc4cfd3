"""A minimal host for one TcpLayer, where the test itself plays the remote TCP segment by segment.

:class:`FakeHost` implements exactly the contract TcpLayer needs (timers, stats, sysctl, rng,
ip_output, path_mtu, egress_for, select_source, is_local) and records every segment sent.  :class:`Peer` drives one
connection: it injects segments described by flags and sequence numbers and parses what comes back.
"""

from __future__ import annotations

import contextlib
import random

from pytcp_green.stack.interface import Egress
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stats import Stats
from pytcp_green.stack.sysctl import Sysctl
from pytcp_green.stack.tcp import TcpLayer, TcpSocket
from pytcp_green.stack.tcp.tcb import Tcb
from pytcp_green.stack.timers import Timers
from pytcp_green.stack.wire.checksum import Buffer, ones_sum, pseudo_sum
from pytcp_green.stack.wire.tcp import ACK, FIN, PROTO_TCP, RST, SYN, TcpSegment, build_tcp, verify_checksum

LOCAL = bytes((198, 18, 0, 1))
REMOTE = bytes((198, 18, 0, 2))
LOCAL_S, REMOTE_S = "198.18.0.1", "198.18.0.2"
PEER_ISS = 0xFFFFFF00  # close to the wrap, so sequence arithmetic crosses 2**32 in every test
PEER_PORT = 40000
PORT = 80
ROOM = 34  # an Ethernet and an IPv4 header in front of each segment, as over a TAP
NO_OPTIONS = {"net.ipv4.tcp_timestamps": 0, "net.ipv4.tcp_sack": 0, "net.ipv4.tcp_window_scaling": 0}


class FakeHost:
    def __init__(self, sysctl: dict[str, int | float | str] | None = None, mtu: int = 1500, seed: int = 7,
                 tso: int = 0) -> None:
        self.timers = Timers()
        self.stats = Stats()
        self.sysctl = Sysctl(sysctl)
        self.rng = random.Random(seed)
        self.mtu = mtu
        self.tso = tso
        self.sent: list[tuple[bytes, bytes, bytes]] = []
        self.gso_sizes: list[int] = []  # gso_size of each segment sent (0: an ordinary one)
        self.tcp = TcpLayer(self)

    def ip_output(self, src: bytes, dst: bytes, proto: int, payload: Buffer, now: float, *, tos: int = 0,
                  gso_size: int = 0, room: int = 0) -> int:
        assert proto == PROTO_TCP
        self.sent.append((src, dst, bytes(memoryview(payload)[room:])))
        self.gso_sizes.append(gso_size)
        return 0

    def egress_for(self, dst: bytes) -> Egress:
        return Egress(self.tso, False, ROOM)

    def path_mtu(self, dst: bytes) -> int | None:
        return self.mtu

    def select_source(self, dst: bytes) -> bytes | None:
        return LOCAL

    def is_local(self, addr: bytes) -> bool:
        return addr == LOCAL


class Peer:
    """The remote end of one connection, played by the test.  Times are virtual: ``now`` only moves
    when the test calls :meth:`advance`."""

    def __init__(self, sysctl: dict[str, int | float | str] | None = None, mtu: int = 1500, tso: int = 0) -> None:
        self.host = FakeHost({**NO_OPTIONS, **(sysctl or {})}, mtu, tso=tso)
        self.now = 100.0
        self.sock: TcpSocket | None = None
        self.listener: TcpSocket | None = None
        self.seq = PEER_ISS  # the peer's next sequence number (32-bit)
        self.window = 65535

    # -- driving --------------------------------------------------------------------------------------
    def send(self, flags: int, seq: int | None = None, ack: int | None = None, data: bytes = b"",
             window: int | None = None, options: bytes = b"", ts: tuple[int, int] | None = None,
             urg: int = 0) -> None:
        """Deliver one segment from the peer; ``seq`` defaults to the peer's next sequence number,
        ``ack`` to our SND.NXT (the highest sequence we sent); ``urg`` is the urgent pointer field."""
        if seq is None:
            seq = self.seq
        if ack is None:
            ack = self.snd_nxt() if self.tcb is not None else 0
        segment = build_tcp(REMOTE, LOCAL, PEER_PORT, PORT, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags,
                            self.window if window is None else window, options=options, ts=ts, payload=data,
                            urg=urg)
        self.host.tcp.receive(REMOTE, LOCAL, memoryview(segment), self.now)

    def advance(self, seconds: float) -> None:
        """Let virtual time pass, firing timers on the way."""
        end = self.now + seconds
        timers = self.host.timers
        while True:
            deadline = timers.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            timers.run_due(self.now)
        self.now = end

    def out(self) -> list[TcpSegment]:
        """Segments we sent since the last call, parsed (and checksum-verified; a TSO super-segment's
        field must hold the pseudo-header sum the device completes)."""
        segments = []
        for (src, dst, raw), gso in zip(self.host.sent, self.host.gso_sizes, strict=True):
            if gso:
                field = int.from_bytes(raw[16:18], "big")
                assert field == ones_sum(b"", pseudo_sum(src, dst, PROTO_TCP, len(raw))), "bad partial checksum"
            else:
                assert verify_checksum(raw, src, dst), "bad checksum on a segment we sent"
            segments.append(TcpSegment.parse(memoryview(raw)))
        self.host.sent.clear()
        self.host.gso_sizes.clear()
        return segments

    # -- views ----------------------------------------------------------------------------------------
    @property
    def tcb(self) -> Tcb | None:
        conns = self.host.tcp.conns
        return conns.get((LOCAL, PORT, REMOTE, PEER_PORT))

    @property
    def state(self) -> str:
        tcb = self.tcb
        return tcb.state_name if tcb is not None else "CLOSED"

    def snd_nxt(self) -> int:
        tcb = self.tcb
        assert tcb is not None
        return tcb.snd_max & 0xFFFFFFFF

    def snd_una(self) -> int:
        tcb = self.tcb
        assert tcb is not None
        return tcb.snd_una & 0xFFFFFFFF

    def rcv_nxt(self) -> int:
        tcb = self.tcb
        assert tcb is not None
        return tcb.rcv_nxt & 0xFFFFFFFF

    def iss(self) -> int:
        tcb = self.tcb
        assert tcb is not None
        return tcb.iss & 0xFFFFFFFF

    # -- getting to a state ---------------------------------------------------------------------------
    def listen(self) -> TcpSocket:
        sock = self.host.tcp.socket(AF_INET)
        sock.bind(("", PORT))
        sock.listen(4)
        self.listener = sock
        return sock

    def accept(self) -> TcpSocket:
        assert self.listener is not None
        self.sock = self.listener.accept(self.now)[0]
        return self.sock

    def active_open(self) -> TcpSocket:
        """Our socket connects from port PORT to the peer: SYN-SENT."""
        sock = self.host.tcp.socket(AF_INET)
        sock.bind(("", PORT))
        with contextlib.suppress(BlockingIOError):
            sock.connect((REMOTE_S, PEER_PORT), self.now)
        self.sock = sock
        return sock

    def to_state(self, state: str) -> None:
        """Bring a fresh connection into ``state`` (RFC 9293 names, underscores), output cleared."""
        if state == "LISTEN":
            self.listen()
        elif state == "SYN_SENT":
            self.active_open()
        elif state == "SYN_RECEIVED":
            self.listen()
            self.send(SYN, ack=0)
            self.seq += 1
        else:
            self.active_open()
            self.send(SYN | ACK, ack=self.iss() + 1)
            self.seq += 1
            sock = self.sock
            assert sock is not None
            if state in ("FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "TIME_WAIT"):
                sock.shutdown(1, self.now)  # our FIN
                if state in ("FIN_WAIT_2", "TIME_WAIT"):
                    self.send(ACK)
                if state in ("CLOSING", "TIME_WAIT"):
                    self.send(FIN | ACK, ack=self.snd_nxt() - (1 if state == "CLOSING" else 0))
                    self.seq += 1
            elif state in ("CLOSE_WAIT", "LAST_ACK"):
                self.send(FIN | ACK)
                self.seq += 1
                if state == "LAST_ACK":
                    sock.shutdown(1, self.now)
        self.out()
        assert self.state == state or (state == "LISTEN" and self.listener is not None), self.state


def flags_of(seg: TcpSegment) -> int:
    return seg.flags & (SYN | ACK | FIN | RST)
