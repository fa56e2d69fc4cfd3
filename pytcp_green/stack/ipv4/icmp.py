"""ICMPv4 for a host (RFC 792, RFC 1122 §3.2.2): echo replies, error generation, error delivery.

Echo replies carry back the request's Record Route and Timestamp options, updated
(RFC 1122 §3.2.2.6, :mod:`.echo_options`).

Errors are generated under the rules of RFC 1122 §3.2.2 — never about an ICMP error, a
datagram sent to a broadcast or multicast address, a non-initial fragment, or a source that
does not name a single host — and through a token bucket (``net.ipv4.icmp_msgs_per_sec`` and
``icmp_msgs_burst``, as Linux) so a flood cannot turn us into an amplifier.  An error quotes
the offending IP header and as much payload as keeps the reply within 576 bytes (RFC 1812
§4.3.2.3).  Errors received are mapped to errno values (RFC 1122 §4.1.3.3 for UDP,
RFC 9293 §3.9 for TCP) and handed to the transport that owns the quoted flow.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pytcp_green.stack.contracts import SO_EE_ORIGIN_ICMP, ErrorDelivery, IcmpOrigin
from pytcp_green.stack.datagram.ping import PingLayer
from pytcp_green.stack.icmp_ratelimit import IcmpRateLimit
from pytcp_green.stack.interface import Interface
from pytcp_green.stack.ipv4.echo_options import reply_options
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.icmp4 import (
    CODE_FRAG_NEEDED,
    CODE_PORT_UNREACH,
    ICMP4_HEADER_LEN,
    TYPE_DEST_UNREACH,
    TYPE_ECHO_REPLY,
    TYPE_ECHO_REQUEST,
    TYPE_PARAM_PROBLEM,
    TYPE_TIME_EXCEEDED,
    Icmp4Message,
    write_icmp4,
)
from pytcp_green.stack.wire.ip4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, Ip4Packet
from pytcp_green.stack.wire.udplite import PROTO_UDPLITE

if TYPE_CHECKING:
    from pytcp_green.stack.ipv4.ip import Ip4Layer
    from pytcp_green.stack.services import Services

ERROR_TYPES = frozenset((TYPE_DEST_UNREACH, 4, 5, TYPE_TIME_EXCEEDED, TYPE_PARAM_PROBLEM))
MAX_ERROR_LEN = 576

# Destination-unreachable codes -> errno, as Linux's icmp_err_convert table.
UNREACH_ERRNO = {
    0: errno.ENETUNREACH,
    1: errno.EHOSTUNREACH,
    2: errno.ENOPROTOOPT,
    3: errno.ECONNREFUSED,
    4: errno.EMSGSIZE,
    5: errno.EOPNOTSUPP,
    6: errno.ENETUNREACH,
    7: errno.EHOSTDOWN,
    8: errno.ENONET,
    9: errno.ENETUNREACH,
    10: errno.EHOSTUNREACH,
    11: errno.ENETUNREACH,
    12: errno.EHOSTUNREACH,
    13: errno.EHOSTUNREACH,
    14: errno.EHOSTUNREACH,
    15: errno.EHOSTUNREACH,
}


class Icmp4Layer(ErrorDelivery):
    """ICMPv4 over ``ip4``; the transports errors are delivered to are wired in by :meth:`connect`."""

    def __init__(self, svc: Services, ip4: Ip4Layer) -> None:
        self.svc = svc
        self.ip4 = ip4
        self.ratelimit = IcmpRateLimit(svc.sysctl)  # paces the errors sent
        self.ping = PingLayer(svc, ip4)  # ICMP echo sockets (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP))

    # -- input ---------------------------------------------------------------------------------------
    def receive(self, iface: Interface, pkt: Ip4Packet, now: float, bcast: bool) -> None:
        stats = self.svc.stats
        try:
            msg = Icmp4Message.parse(pkt.payload)
        except Malformed as exc:
            stats["icmp4.drop." + exc.reason] += 1
            return
        kind = msg.type
        if kind == TYPE_ECHO_REQUEST:
            stats["icmp4.rx.echo_request"] += 1
            sysctl = self.svc.sysctl
            if sysctl.int("net.ipv4.icmp_echo_ignore_all") or (
                bcast and sysctl.int("net.ipv4.icmp_echo_ignore_broadcasts")
            ):
                stats["icmp4.drop.echo_ignored"] += 1
                return
            src = pkt.dst if not bcast else iface.ip4_source_for(pkt.src)
            if src is None:
                return
            options = reply_options(pkt, src, now)
            self.send(src, pkt.src, TYPE_ECHO_REPLY, 0, msg.rest, msg.body, now, options=options)
            stats["icmp4.tx.echo_reply"] += 1
        elif kind == TYPE_ECHO_REPLY:
            stats["icmp4.rx.echo_reply"] += 1
            if not self.ping.receive_reply(pkt.src, pkt.dst, msg, pkt.payload):
                stats["icmp4.drop.echo_reply_no_socket"] += 1
        elif kind in ERROR_TYPES:
            stats[f"icmp4.rx.error.{kind}.{msg.code}"] += 1
            self._deliver_error(msg, pkt.src, now)
        else:
            stats["icmp4.rx.other"] += 1

    def _deliver_error(self, msg: Icmp4Message, sender: bytes, now: float) -> None:
        """Hand an error to the transport that sent the quoted datagram (RFC 1122 §3.2.2.1)."""
        quoted = msg.body
        if len(quoted) < 28 or quoted[0] >> 4 != 4:
            self.svc.stats["icmp4.drop.short_quote"] += 1
            return
        ihl = (quoted[0] & 0x0F) * 4
        if ihl < 20 or len(quoted) < ihl + 8:
            self.svc.stats["icmp4.drop.short_quote"] += 1
            return
        proto = quoted[9]
        src, dst = bytes(quoted[12:16]), bytes(quoted[16:20])
        transport = quoted[ihl:]
        mtu: int | None = None
        if msg.type == TYPE_DEST_UNREACH:
            err = UNREACH_ERRNO.get(msg.code, errno.EHOSTUNREACH)
            if msg.code == CODE_FRAG_NEEDED:
                if src not in self.ip4.local:
                    # RFC 5927 §4.1: a quote of a datagram we did not send is forged; ignore it.
                    self.svc.stats["icmp4.drop.frag_needed_not_ours"] += 1
                    return
                quoted_len = int.from_bytes(quoted[2:4], "big")
                learned = self.ip4.frag_needed(dst, msg.next_hop_mtu, quoted_len, now)
                mtu = learned or self.ip4.path_mtu(dst)
        elif msg.type == TYPE_PARAM_PROBLEM:
            err = errno.EPROTO
        else:
            err = errno.EHOSTUNREACH
        frag_needed = msg.type == TYPE_DEST_UNREACH and msg.code == CODE_FRAG_NEEDED
        origin = IcmpOrigin(SO_EE_ORIGIN_ICMP, msg.type, msg.code, msg.next_hop_mtu if frag_needed else 0, sender)
        if proto == PROTO_UDP:
            self.udp.icmp_error(src, dst, transport, err, now, origin)
        elif proto == PROTO_UDPLITE:
            self.udplite.icmp_error(src, dst, transport, err, now, origin)
        elif proto == PROTO_ICMP:
            self.ping.icmp_error(src, dst, transport, err, origin)
        elif proto == PROTO_TCP:
            self.tcp.icmp_error(src, dst, transport, err, mtu, now)

    def local_unreachable(self, packet: memoryview, now: float) -> None:
        """A datagram we sent could not leave (its next hop never answered ARP): its UDP or ping socket
        learns EHOSTUNREACH as if a host unreachable had come back, with no message on the wire."""
        try:
            pkt = Ip4Packet.parse(packet)
        except Malformed:
            return
        if pkt.frag_offset or len(pkt.payload) < 8 or pkt.src not in self.ip4.local:
            return
        self.svc.stats["icmp4.local_error.host_unreachable"] += 1
        transport = pkt.payload
        if pkt.proto == PROTO_UDP:
            self.udp.icmp_error(pkt.src, pkt.dst, transport, errno.EHOSTUNREACH, now)
        elif pkt.proto == PROTO_ICMP:
            self.ping.icmp_error(pkt.src, pkt.dst, transport, errno.EHOSTUNREACH)
        # TCP is left to its own retransmissions: Linux would abort a SYN-SENT connection here, but a
        # lossy link that loses three ARP requests in a row must not kill a connection that can recover.

    # -- output --------------------------------------------------------------------------------------
    def send(self, src: bytes, dst: bytes, kind: int, code: int, rest: int,
             body: bytes | memoryview, now: float, *, options: bytes = b"") -> int:
        buf = bytearray(ICMP4_HEADER_LEN + len(body))
        buf[ICMP4_HEADER_LEN:] = body
        write_icmp4(buf, 0, kind, code, rest, len(body))
        return self.ip4.output(src, dst, PROTO_ICMP, buf, now, options=options)

    def port_unreachable(self, pkt: Ip4Packet, now: float) -> None:
        self.send_error(pkt, TYPE_DEST_UNREACH, CODE_PORT_UNREACH, 0, now)

    def send_error(self, pkt: Ip4Packet, kind: int, code: int, rest: int, now: float) -> None:
        """Answer ``pkt`` with an ICMP error, unless RFC 1122 §3.2.2 forbids it or the rate limit bites."""
        stats = self.svc.stats
        ip4 = self.ip4
        src = pkt.src
        if pkt.frag_offset:
            stats["icmp4.error_suppressed.fragment"] += 1
            return
        if pkt.dst not in ip4.local:
            stats["icmp4.error_suppressed.broadcast"] += 1
            return
        if src == bytes(4) or src[0] >= 224 or src in ip4.broadcast or src == b"\xff\xff\xff\xff":
            stats["icmp4.error_suppressed.source"] += 1
            return
        if pkt.proto == PROTO_ICMP:
            payload = pkt.payload
            if len(payload) < 1 or payload[0] in ERROR_TYPES or payload[0] not in (0, 8, 13, 14, 15, 16, 17, 18):
                stats["icmp4.error_suppressed.about_error"] += 1
                return
        if not self.ratelimit.take(now):
            stats["icmp4.error_suppressed.ratelimit"] += 1
            return
        quote_len = min(len(pkt.header) + len(pkt.payload), MAX_ERROR_LEN - 20 - ICMP4_HEADER_LEN)
        quote = bytes(pkt.header) + bytes(pkt.payload[: quote_len - len(pkt.header)])
        if self.send(pkt.dst, src, kind, code, rest, quote, now) == 0:
            stats[f"icmp4.tx.error.{kind}.{code}"] += 1
