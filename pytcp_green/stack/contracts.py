"""The contracts between the network layers and the transports, both ways.

Up: both families hand segments to the transports, and both ICMPs hand them errors, through
:class:`DatagramTransport` and :class:`StreamTransport`, which
:class:`~pytcp_green.stack.datagram.udp.UdpLayer` and :class:`~pytcp_green.stack.tcp.TcpLayer`
satisfy.  Down: a transport sends through :class:`Network`, both families behind one address
(4 bytes IPv4, 16 bytes IPv6, a v4-mapped ``::ffff:a.b.c.d`` going out as IPv4, RFC 4291
§2.5.5.2), which :class:`~pytcp_green.stack.stack.Stack` provides.  The Stack wires all of it,
so no network layer imports a transport and no transport imports the Stack.
:class:`ErrorDelivery` is the one piece of wiring both ICMP layers share.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class RxMeta(NamedTuple):
    """What IP input knew of a datagram besides its addresses, for a socket's ancillary data (ip(7)
    IP_PKTINFO/IP_RECVTTL/IP_RECVTOS, RFC 3542 §6): the interface it came in on (its index), the
    header's destination, its TTL or hop limit and its TOS octet or traffic class."""

    ifindex: int
    dst: bytes
    hops: int
    tclass: int


SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3


class IcmpOrigin(NamedTuple):
    """Who reported an ICMP error and how, for IP_RECVERR's struct sock_extended_err (ip(7)): the origin
    (SO_EE_ORIGIN_ICMP 2 or SO_EE_ORIGIN_ICMP6 3), the message's type, code and info (the MTU of a
    fragmentation-needed / packet-too-big, else 0) and the offender (the error's packed source)."""

    origin: int
    type: int
    code: int
    info: int
    offender: bytes


class Network(Protocol):
    """IP as a transport sees it: addresses are packed bytes of either family."""

    def ip_output(self, src: bytes, dst: bytes, proto: int, payload: bytes | bytearray | memoryview,
                  now: float, *, tos: int = 0, hops: int | None = None) -> int:
        """Send one datagram (``hops``: its TTL or hop limit, None the default); 0 or an errno."""
        ...

    def ip_output_packet(self, packet: bytes | bytearray | memoryview, dst: bytes, now: float) -> int:
        """Send a packet whose IP header the caller wrote (raw sockets' IP_HDRINCL) toward ``dst``."""
        ...

    def path_mtu(self, dst: bytes) -> int | None: ...

    def select_source(self, dst: bytes) -> bytes | None: ...

    def is_local(self, addr: bytes) -> bool: ...


class DatagramTransport(Protocol):
    """UDP (RFC 768): demultiplexing by port, ICMP errors for connected sockets (RFC 1122 §4.1.3.3)."""

    def receive(self, src: bytes, dst: bytes, segment: memoryview, now: float, *, bcast: bool,
                meta: RxMeta | None = None) -> bool:
        """Deliver one datagram; False when no socket takes its port (the caller may answer ICMP)."""
        ...

    def icmp_error(self, src: bytes, dst: bytes, quoted: memoryview, err: int, now: float,
                   origin: IcmpOrigin | None = None) -> None: ...


class StreamTransport(Protocol):
    """TCP (RFC 9293): segments in, ICMP errors with the path MTU they taught (RFC 5927, RFC 1191)."""

    def receive(self, src: bytes, dst: bytes, segment: memoryview, now: float, *, csum_ok: bool = False,
                ecn: int = 0) -> None: ...

    def icmp_error(self, src: bytes, dst: bytes, quoted: memoryview, err: int, mtu: int | None,
                   now: float) -> None: ...


class ErrorDelivery:
    """What both ICMP layers share: the transports that own the flows an error quotes.

    An ICMP layer is built before the transports (it comes with its family), so the Stack hands
    them over with :meth:`connect` once they exist.
    """

    udp: DatagramTransport
    tcp: StreamTransport
    udplite: DatagramTransport  # UDP-Lite (RFC 3828), UDP's machinery under protocol 136

    def connect(self, udp: DatagramTransport, tcp: StreamTransport, udplite: DatagramTransport) -> None:
        self.udp = udp
        self.tcp = tcp
        self.udplite = udplite
