"""A seeded fuzzer that plays a hostile neighbour on one Ethernet link of a stack (issue 11).

:func:`build_target` makes the stack under test: one Ethernet interface with a static IPv4 and
IPv6 address and SLAAC on, TCP listeners and UDP sockets of both families, a ping socket, and
one ESTABLISHED TCP connection per family whose peer is the fuzzer itself (it sent the SYN,
read the SYN-ACK off ``iface.tx`` and ACKed).  :class:`Fuzzer` then feeds it frames in virtual
time: the valid frames of :mod:`pytcp_green.sim.fuzzcorpus` (built by scapy) and segments for
its connections, mutated on bytes (byte flips, truncation, extension, random source MACs and
addresses, ports, lengths, TTLs, TCP flags and sequence numbers), with the IPv4 header
checksum and the TCP/UDP/ICMP/ICMPv6 checksums (RFC 1071, with the RFC 768/9293/8200 §8.1
pseudo-header) fixed up after mutation so that most frames pass the checksum and reach the
deep layers.

Router advertisements are the one message whose fields the fixup bounds: lifetimes modulo
1801 s, ReachableTime modulo 60 s and RetransTimer modulo 10 s.  A fuzz that taught the stack an
infinite-lifetime prefix would rightly keep it forever, and one that set a day-long RetransTimer
would rightly keep an INCOMPLETE neighbour for days; the check after the fuzz (nothing left an
hour later that a fresh stack does not hold) is about leaks.  Absurd RA timers are the RA clamp
tests' business (tests/stack/ipv6).

:func:`tables` reads the size of every table a peer can grow, for the limits the test and the
bench hold the stack to.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import struct
from dataclasses import dataclass, field

from pytcp_green.sim.fuzzcorpus import LAB, Corpus, corpus
from pytcp_green.stack.datagram.ping import PingSocket
from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.interface import Interface, LinkKind
from pytcp_green.stack.sockbase import AF_INET, AF_INET6
from pytcp_green.stack.stack import SOCK_DGRAM, SOCK_STREAM, Stack
from pytcp_green.stack.tcp.socket import TcpSocket
from pytcp_green.stack.wire.checksum import checksum, pseudo_sum

ETH = 14
PROTO_TCP, PROTO_UDP, PROTO_ICMP4, PROTO_ICMP6 = 6, 17, 1, 58
IP6_EXT = (0, 43, 60)  # hop-by-hop, routing, destination options: walked to find the upper layer
CSUM_AT = {PROTO_TCP: 16, PROTO_UDP: 6, PROTO_ICMP4: 2, PROTO_ICMP6: 2}  # checksum offset in the L4 header
RA_LIFETIME_MAX = 1800  # seconds
RA_REACHABLE_MAX_MS = 60_000  # twice the default ReachableTime
RA_RETRANS_MAX_MS = 10_000
TCP_FLAGS = (0x02, 0x10, 0x18, 0x11, 0x04, 0x14, 0x12, 0x01, 0x29, 0x3F, 0x00, 0xC2)


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


@dataclass
class Conn:
    """One connection the fuzzer is the peer of: its own next sequence number and the stack's."""

    family: int
    port: int
    seq: int = 0  # the fuzzer's next sequence number
    ack: int = 0  # the stack's next sequence number, as the fuzzer acknowledges it
    sock: TcpSocket | None = None


@dataclass
class Target:
    """The stack under fuzz with its sockets."""

    stack: Stack
    iface: Interface
    listeners: list[TcpSocket]
    udp: list[UdpSocket]
    ping: PingSocket
    conns: list[Conn] = field(default_factory=list)

    def close(self, now: float) -> None:
        """Close every socket the target opened (the listeners' pending children with them)."""
        for sock in (*self.listeners, *(c.sock for c in self.conns if c.sock is not None)):
            sock.close(now)
        for dgram in self.udp:
            dgram.close(now)
        self.ping.close(now)


def run_timers(stack: Stack, until: float, now: float = 0.0) -> float:
    """Fire every timer due up to ``until`` (virtual time); returns ``until``."""
    while (deadline := stack.next_deadline()) is not None and deadline <= until:
        now = max(now, deadline)
        stack.poll(now)
    return until


def build_target(seed: int, *, start: float = 10.0) -> Target:
    """The stack of the module docstring at virtual time ``start`` (its addresses past DAD)."""
    stack = Stack(seed=seed)
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=_mac(LAB.stack_mac))
    stack.add_ip4(iface, f"{LAB.stack_ip}/24")
    stack.enable_ip6(iface, slaac=True)
    stack.add_ip6(iface, f"{LAB.stack_ip6}/64")
    run_timers(stack, start)
    iface.tx.clear()
    listeners = []
    for family, port in ((AF_INET, LAB.tcp_port4), (AF_INET6, LAB.tcp_port6)):
        sock = stack.socket(family, SOCK_STREAM)
        assert isinstance(sock, TcpSocket)
        sock.bind(("0.0.0.0" if family == AF_INET else "::", port))
        sock.listen(128)
        listeners.append(sock)
    udp = []
    for family, port in ((AF_INET, LAB.udp_port4), (AF_INET6, LAB.udp_port6)):
        dgram = stack.socket(family, SOCK_DGRAM)
        assert isinstance(dgram, UdpSocket)
        dgram.bind(("0.0.0.0" if family == AF_INET else "::", port))
        udp.append(dgram)
    ping = stack.icmp4.ping.socket()
    ping.bind(("0.0.0.0", 7))
    return Target(stack, iface, listeners, udp, ping)


def tables(stack: Stack) -> dict[str, int]:
    """The size of every table a peer on the link can make the stack grow."""
    sizes = {"arp": 0, "nd": 0, "addresses6": 0, "routers6": 0, "prefixes6": 0}
    for iface in stack.interfaces.values():
        if iface.arp is not None:
            sizes["arp"] += len(iface.arp.entries)
    for if6 in stack.ip6.ifs.values():
        if if6.nd is not None:
            sizes["nd"] = max(sizes["nd"], len(if6.nd.entries))  # type: ignore[attr-defined]
        sizes["addresses6"] = max(sizes["addresses6"], len(if6.addrs))
        sizes["routers6"] = max(sizes["routers6"], len(if6.routers))
        sizes["prefixes6"] = max(sizes["prefixes6"], len(if6.onlink))
    listeners = [s for socks in stack.tcp.listeners.values() for s in socks]
    sizes.update({
        "redirects6": len(stack.ip6.redirects),
        "reasm4_bytes": stack.ip4.reassembler.memory,
        "reasm6_bytes": stack.ip6.reassembler.memory,
        "reasm4": len(stack.ip4.reassembler.queues),
        "reasm6": len(stack.ip6.reassembler.queues),
        "tcp_conns": len(stack.tcp.conns),
        "syn_queue": max((s.half_open for s in listeners), default=0),
        "accept_queue": max((len(s.accept_queue) for s in listeners), default=0),
        "timers": len(stack.timers),
    })
    return sizes


def fix_checksums(frame: bytearray) -> None:
    """Recompute the IPv4 header checksum and the checksum of an unfragmented TCP/UDP/ICMP/ICMPv6
    message inside ``frame`` where its headers are long enough to hold them; clamp RA lifetimes."""
    if len(frame) < ETH + 20:
        return
    ethertype = frame[12] << 8 | frame[13]
    if ethertype == 0x0800:
        _fix4(frame, ETH)
    elif ethertype == 0x86DD and len(frame) >= ETH + 40:
        _fix6(frame, ETH)


def _fix4(frame: bytearray, ip: int) -> None:
    ihl = (frame[ip] & 0x0F) * 4
    if ihl < 20 or len(frame) < ip + ihl:
        return
    frame[ip + 10:ip + 12] = b"\0\0"
    frame[ip + 10:ip + 12] = checksum(memoryview(frame)[ip:ip + ihl]).to_bytes(2, "big")
    total = frame[ip + 2] << 8 | frame[ip + 3]
    fragmented = (frame[ip + 6] & 0x3F) or frame[ip + 7]
    if fragmented or total < ihl or ip + total > len(frame):
        return
    proto = frame[ip + 9]
    initial = 0 if proto == PROTO_ICMP4 else pseudo_sum(bytes(frame[ip + 12:ip + 16]), bytes(frame[ip + 16:ip + 20]),
                                                       proto, total - ihl)
    _fix_l4(frame, ip + ihl, ip + total, proto, initial)


def _fix6(frame: bytearray, ip: int) -> None:
    end = ip + 40 + (frame[ip + 4] << 8 | frame[ip + 5])
    if end > len(frame):
        return
    nh, at = frame[ip + 6], ip + 40
    dst = bytes(frame[ip + 24:ip + 40])
    while nh in IP6_EXT and at + 8 <= end:
        size = (frame[at + 1] + 1) * 8
        if nh == 43 and frame[at + 3] and frame[at + 2] in (0, 2) and size >= 24 and at + size <= end:
            dst = bytes(frame[at + size - 16:at + size])  # RFC 8200 §8.1: the final destination
        nh, at = frame[at], at + size
    if nh == PROTO_ICMP6 and frame[at:at + 1] == b"\x86":
        _clamp_ra(frame, at, end)
    initial = pseudo_sum(bytes(frame[ip + 8:ip + 24]), dst, nh, end - at)
    _fix_l4(frame, at, end, nh, initial)


def _fix_l4(frame: bytearray, start: int, end: int, proto: int, initial: int) -> None:
    at = CSUM_AT.get(proto)
    if at is None or start + at + 2 > end:
        return
    frame[start + at:start + at + 2] = b"\0\0"
    value = checksum(memoryview(frame)[start:end], initial)
    if proto == PROTO_UDP and value == 0:
        value = 0xFFFF  # RFC 768: a computed 0 is sent as all ones
    frame[start + at:start + at + 2] = value.to_bytes(2, "big")


def _clamp_ra(frame: bytearray, ra: int, end: int) -> None:
    """Bound the router lifetime, ReachableTime, RetransTimer and the lifetimes of the prefix, route,
    RDNSS and DNSSL options."""
    if ra + 16 > end:
        return
    for at, width, bound in ((6, 2, RA_LIFETIME_MAX), (8, 4, RA_REACHABLE_MAX_MS), (12, 4, RA_RETRANS_MAX_MS)):
        value = int.from_bytes(frame[ra + at:ra + at + width], "big") % (bound + 1)
        frame[ra + at:ra + at + width] = value.to_bytes(width, "big")
    opt = ra + 16
    while opt + 8 <= end and frame[opt + 1]:
        kind, size = frame[opt], frame[opt + 1] * 8
        fields = (4, 8) if kind == 3 else (4,) if kind in (24, 25, 31) else ()
        for off in fields:
            if opt + off + 4 <= end:
                value = int.from_bytes(frame[opt + off:opt + off + 4], "big") % (RA_LIFETIME_MAX + 1)
                frame[opt + off:opt + off + 4] = value.to_bytes(4, "big")
        opt += size


class Fuzzer:
    """Feeds a :class:`Target` mutated frames in virtual time; one seed, one run."""

    def __init__(self, target: Target, seed: int, frames: Corpus | None = None, *, now: float = 10.0,
                 step: float = 0.01) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self.corpus = frames or corpus()
        self.now = now
        self.step = step  # mean virtual seconds between two frames
        self.sent = 0
        self.next_port = 41000
        for family in (AF_INET, AF_INET6):
            self.connect(family)

    # -- the fuzzer's own connections ------------------------------------------------------------------
    def connect(self, family: int) -> Conn | None:
        """Open one connection to the target's listener of ``family`` (as a client would); None if refused."""
        t = self.target
        port, self.next_port = self.next_port, self.next_port + 1
        conn = Conn(family, port, seq=self.rng.getrandbits(32))
        self._learn_peer()
        t.iface.tx.clear()
        self._send(self._segment(conn, 0x02, b"", syn_options=True))
        synack = next((s for s in self._replies(conn) if s[1] & 0x12 == 0x12), None)
        if synack is None:
            return None
        conn.seq, conn.ack = (conn.seq + 1) & 0xFFFFFFFF, (synack[0] + 1) & 0xFFFFFFFF
        self._send(self._segment(conn, 0x10, b""))
        listener = t.listeners[0 if family == AF_INET else 1]
        if not listener.accept_queue:
            return None
        conn.sock = listener.accept(self.now)[0]
        t.conns.append(conn)
        return conn

    def _learn_peer(self) -> None:
        """Tell the target the peer's MAC (an ARP request, and a neighbour solicitation from the peer's
        global address), so that it answers at once."""
        frames = self.corpus.frames
        self._send(bytearray(frames[0]))
        ns = bytearray(next(f for f in frames if f[12:14] == b"\x86\xdd" and f[ETH + 40] == 135))
        ns[ETH + 8:ETH + 24] = ipaddress.IPv6Address(LAB.peer_ip6).packed
        self._send(ns)

    def _replies(self, conn: Conn) -> list[tuple[int, int]]:
        """(seq, flags) of the TCP segments the target sent to ``conn``, transmit queue emptied."""
        out = []
        for frame in self.target.iface.tx:
            l4 = self._l4_of(frame, conn.family)
            if l4 is not None and frame[l4 + 2] << 8 | frame[l4 + 3] == conn.port:
                out.append((int.from_bytes(frame[l4 + 4:l4 + 8], "big"), frame[l4 + 13]))
        self.target.iface.tx.clear()
        return out

    @staticmethod
    def _l4_of(frame: bytes | bytearray, family: int) -> int | None:
        if family == AF_INET and frame[12:14] == b"\x08\x00" and frame[ETH + 9] == PROTO_TCP:
            return ETH + (frame[ETH] & 0x0F) * 4
        if family == AF_INET6 and frame[12:14] == b"\x86\xdd" and frame[ETH + 6] == PROTO_TCP:
            return ETH + 40
        return None

    def _segment(self, conn: Conn, flags: int, payload: bytes, *, seq: int | None = None,
                 syn_options: bool = False) -> bytearray:
        """A segment of ``conn`` from the template, lengths set (checksums are fixed when sent)."""
        template = self.corpus.conn4 if conn.family == AF_INET else self.corpus.conn6
        l4 = self._l4_of(template, conn.family)
        assert l4 is not None
        frame = bytearray(template[:l4 + 20])
        if syn_options:  # MSS 1460, SACK permitted, window scale 7 (RFC 9293 3.1, 2018, 7323)
            frame += b"\x02\x04\x05\xb4\x04\x02\x01\x03\x03\x07\x01\x01"
            frame[l4 + 12] = 0x80
        else:
            frame[l4 + 12] = 0x50
        frame += payload
        struct.pack_into("!HHII", frame, l4, conn.port, template[l4 + 2] << 8 | template[l4 + 3],
                         conn.seq if seq is None else seq, conn.ack)
        frame[l4 + 13] = flags
        if conn.family == AF_INET:
            struct.pack_into("!H", frame, ETH + 2, len(frame) - ETH)
        else:
            struct.pack_into("!H", frame, ETH + 4, len(frame) - ETH - 40)
        return frame

    def _conn_frame(self) -> bytearray | None:
        """A segment for one of the fuzzer's connections: in window, at its edges, or anywhere."""
        live = [c for c in self.target.conns if c.sock is not None and c.sock.state == "ESTABLISHED"]
        if len(live) < 2 and self.rng.random() < 0.01:
            self.connect(self.rng.choice((AF_INET, AF_INET6)))
        if not live:
            self.connect(self.rng.choice((AF_INET, AF_INET6)))
            return None
        rng = self.rng
        conn = rng.choice(live)
        payload = rng.randbytes(rng.choice((0, 1, 100, 1400)))
        where = rng.random()
        if where < 0.6:
            seq = conn.seq
        elif where < 0.9:
            seq = (conn.seq + rng.randint(-70000, 70000)) & 0xFFFFFFFF
        else:
            seq = rng.getrandbits(32)
        flags = 0x18 if rng.random() < 0.7 else rng.choice(TCP_FLAGS)
        frame = self._segment(conn, flags, payload, seq=seq)
        if seq == conn.seq and flags & 0x10 and not flags & 0x07:
            conn.seq = (conn.seq + len(payload)) & 0xFFFFFFFF
        return frame

    # -- mutation -------------------------------------------------------------------------------------------
    def mutate(self, frame: bytearray) -> bytearray:
        """One mutation of a copy of ``frame``, chosen at random (a quarter are left valid)."""
        rng = self.rng
        kind = rng.randrange(10)
        size = len(frame)
        if kind == 0:
            for _ in range(rng.randint(1, 4)):
                frame[rng.randrange(size)] ^= 1 << rng.randrange(8)
        elif kind == 1:
            for _ in range(rng.randint(1, 8)):
                frame[rng.randrange(size)] = rng.randrange(256)
        elif kind == 2:
            del frame[rng.randrange(ETH, size):]
        elif kind == 3:
            frame += rng.randbytes(rng.randint(1, 64))
        elif kind == 4:
            frame[6:12] = bytes((2,)) + rng.randbytes(5)  # a new neighbour MAC
            self._random_source(frame)
        elif kind == 5:
            self._random_source(frame)
        elif kind == 6:
            self._random_field(frame)
        return frame

    def _random_source(self, frame: bytearray) -> None:
        """A new source address on the lab's subnets (or anywhere): fills neighbour caches and SYN queues."""
        rng = self.rng
        if frame[12:14] == b"\x08\x00" and len(frame) >= ETH + 20:
            frame[ETH + 12:ETH + 16] = bytes((198, 18, 0, rng.randrange(256))) if rng.random() < 0.8 \
                else rng.randbytes(4)
        elif frame[12:14] == b"\x86\xdd" and len(frame) >= ETH + 40:
            prefix = rng.choice((b"\xfd\x00\x00\x77" + bytes(4), b"\xfe\x80" + bytes(6), rng.randbytes(8)))
            frame[ETH + 8:ETH + 24] = prefix + rng.randbytes(8)
        elif frame[12:14] == b"\x08\x06" and len(frame) >= ETH + 28:  # ARP sender IP
            frame[ETH + 14:ETH + 18] = bytes((198, 18, 0, rng.randrange(256)))

    def _random_field(self, frame: bytearray) -> None:
        """A plausible-but-wrong value in a length, TTL, port, flag or sequence field."""
        rng = self.rng
        if frame[12:14] == b"\x08\x00" and len(frame) >= ETH + 20:
            ip, l4 = ETH, ETH + (frame[ETH] & 0x0F) * 4
            choices = [(ip + 2, 2), (ip + 8, 1), (ip + 6, 2), (ip, 1)]
        elif frame[12:14] == b"\x86\xdd" and len(frame) >= ETH + 40:
            ip, l4 = ETH, ETH + 40
            choices = [(ip + 4, 2), (ip + 7, 1), (ip + 6, 1)]
        else:
            return
        if len(frame) >= l4 + 20:
            choices += [(l4, 2), (l4 + 2, 2), (l4 + 4, 4), (l4 + 8, 4), (l4 + 13, 1), (l4 + 14, 2), (l4 + 12, 1)]
        at, width = rng.choice(choices)
        if at + width <= len(frame):
            frame[at:at + width] = rng.randbytes(width)

    # -- the run ----------------------------------------------------------------------------------------------
    def _send(self, frame: bytearray) -> None:
        fix_checksums(frame)
        self.target.stack.receive(self.target.iface, frame, self.now)
        self.sent += 1

    def run(self, frames: int) -> None:
        """Feed ``frames`` frames, virtual time advancing by random steps, timers firing as they fall due."""
        t, rng, pool = self.target, self.rng, self.corpus.frames
        stack = t.stack
        for _ in range(frames):
            self.now += rng.expovariate(1.0 / self.step)
            run_timers(stack, self.now, self.now)
            frame = self._conn_frame() if rng.random() < 0.25 else bytearray(rng.choice(pool))
            if frame is None:
                continue
            if rng.random() < 0.75:
                frame = self.mutate(frame)
            self._send(frame)
            if len(t.iface.tx) > 64:
                self._drain()
        self._drain()

    def _drain(self) -> None:
        """Read what the target sent: ACKs move the fuzzer's connections on; sockets are read and accepted."""
        t = self.target
        for conn in list(t.conns):
            sock = conn.sock
            assert sock is not None
            if sock.state != "ESTABLISHED":  # the fuzz reset or closed it: let it go, open another later
                sock.close(self.now)
                t.conns.remove(conn)
                continue
            for frame in t.iface.tx:
                l4 = self._l4_of(frame, conn.family)
                if l4 is not None and frame[l4 + 2] << 8 | frame[l4 + 3] == conn.port and frame[l4 + 13] & 0x10:
                    conn.seq = int.from_bytes(frame[l4 + 8:l4 + 12], "big")  # what it took of ours
            with contextlib.suppress(OSError):  # nothing to read, or the fuzz reset it meanwhile
                sock.recv(1 << 20, self.now)
        t.iface.tx.clear()
        for dgram in (*t.udp, t.ping):
            while dgram.queue:
                dgram.recvfrom(65536, self.now)
        for listener in t.listeners:
            while listener.accept_queue:
                listener.accept(self.now)[0].close(self.now)
