"""The extension-header walk of IPv6 input (RFC 8200 §4), handing the upper layer its payload.

:class:`ExtWalk` processes a received packet's chain in order: hop-by-hop only right after the
fixed header (§4.3, else Parameter Problem code 1), TLV options by their action bits (§4.2; a
router alert, RFC 2711, is accepted), a routing header with segments left is refused with
Parameter Problem code 0 (§4.4: we are a host, and RFC 5095 deprecated type 0), fragments are
reassembled (§4.5, :mod:`pytcp_green.stack.ipv6.reassembly`, after the RFC 7112 §5 check that the
first fragment holds the whole chain; an atomic fragment is processed on its own, RFC 6946), no
next header ends the packet (§4.7), and an unknown next header draws Parameter Problem code 1
pointing at the octet that named it (§4, "unrecognized Next Header").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.contracts import RxMeta
from pytcp_green.stack.ipv6.reassembly import MAX_PAYLOAD, Icmp6Errors, Reassembler6
from pytcp_green.stack.sockbase import AF_INET6
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.icmp6 import (
    CODE_BAD_HEADER,
    CODE_INCOMPLETE_CHAIN,
    CODE_PORT_UNREACH,
    CODE_UNKNOWN_NEXT_HEADER,
    CODE_UNKNOWN_OPTION,
    TYPE_DEST_UNREACH,
    TYPE_PARAM_PROBLEM,
)
from pytcp_green.stack.wire.ip6 import (
    ACTION_DISCARD,
    ACTION_DISCARD_ICMP,
    ACTION_SKIP,
    FRAGMENT_HEADER_LEN,
    IP6_HEADER_LEN,
    NH_DEST_OPTS,
    NH_FRAGMENT,
    NH_HOP_BY_HOP,
    NH_ICMP6,
    NH_NONE,
    NH_ROUTING,
    NH_TCP,
    NH_UDP,
    OPT_ROUTER_ALERT,
    ExtHeader,
    FragmentHeader,
    Ip6Packet,
    RoutingHeader,
    option_action,
    parse_ext_header,
    parse_options,
    walk_extensions,
)
from pytcp_green.stack.wire.udplite import PROTO_UDPLITE as NH_UDPLITE

if TYPE_CHECKING:
    from pytcp_green.stack.contracts import DatagramTransport, StreamTransport
    from pytcp_green.stack.datagram.raw import RawLayer
    from pytcp_green.stack.ipv6.addr import If6
    from pytcp_green.stack.services import Services


class Icmp6Input(Icmp6Errors, Protocol):
    """ICMPv6 as IPv6 input sees it (:class:`~pytcp_green.stack.ipv6.icmp.Icmp6Layer`)."""

    def receive(self, if6: If6, pkt: Ip6Packet, payload: memoryview, now: float) -> None: ...


_EXTENSIONS = (NH_HOP_BY_HOP, NH_DEST_OPTS, NH_ROUTING, NH_FRAGMENT, NH_NONE)


class ExtWalk:
    """The input half of :class:`~pytcp_green.stack.ipv6.ip.Ip6Layer` past the address checks."""

    icmp: Icmp6Input
    datagram: dict[int, DatagramTransport]  # UDP and UDP-Lite, by next header
    tcp: StreamTransport

    def __init__(self, svc: Services, reassembler: Reassembler6) -> None:
        self.svc = svc
        self.reassembler = reassembler
        self.raw: RawLayer | None = None  # the raw sockets (Stack.__init__ wires them)

    def connect(self, icmp: Icmp6Input, udp: DatagramTransport, tcp: StreamTransport,
                udplite: DatagramTransport) -> None:
        self.icmp = icmp
        self.datagram = {NH_UDP: udp, NH_UDPLITE: udplite}
        self.tcp = tcp

    def process(self, if6: If6, pkt: Ip6Packet, nh: int, off: int, nh_off: int, mcast: bool, now: float) -> None:
        """Walk the extension headers from ``off`` (``nh_off``: where the octet naming ``nh`` is)."""
        stats = self.svc.stats
        packet = pkt.packet
        while True:
            # Every raw socket of an upper protocol gets a copy of its payload (ipv6 raw(7)); it still runs.
            raw = nh not in _EXTENSIONS and self.raw is not None and \
                self.raw.receive(AF_INET6, nh, pkt.src, pkt.dst, packet[off:])
            if nh in self.datagram:
                payload = packet[off:]
                meta = RxMeta(if6.iface.index, pkt.dst, pkt.hop_limit, pkt.traffic_class)
                if not self.datagram[nh].receive(pkt.src, pkt.dst, payload, now, bcast=mcast, meta=meta) and not mcast:
                    self.icmp.send_error(pkt, TYPE_DEST_UNREACH, CODE_PORT_UNREACH, 0, now)
                return
            if nh == NH_TCP:
                if mcast:
                    stats["ip6.drop.tcp_multicast"] += 1
                    return
                self.tcp.receive(pkt.src, pkt.dst, packet[off:], now, csum_ok=pkt.csum_ok,
                                 ecn=pkt.traffic_class & 3)  # RFC 3168 §5
                return
            if nh == NH_ICMP6:
                self.icmp.receive(if6, pkt, packet[off:], now)
                return
            if nh == NH_NONE:
                stats["ip6.rx.no_next_header"] += 1  # RFC 8200 §4.7: ignore what follows
                return
            if nh not in _EXTENSIONS:
                if not raw:
                    stats["ip6.drop.unknown_next_header"] += 1
                    self.icmp.send_error(pkt, TYPE_PARAM_PROBLEM, CODE_UNKNOWN_NEXT_HEADER, nh_off, now)
                return
            try:
                hdr = parse_ext_header(nh, packet, off)
            except Malformed as exc:
                stats["ip6.drop." + exc.reason] += 1
                return
            if nh == NH_HOP_BY_HOP:
                if off != IP6_HEADER_LEN:
                    # RFC 8200 §4.1: hop-by-hop only right after the IPv6 header.
                    stats["ip6.drop.misplaced_hop_by_hop"] += 1
                    self.icmp.send_error(pkt, TYPE_PARAM_PROBLEM, CODE_UNKNOWN_NEXT_HEADER, nh_off, now)
                    return
                if not self._options(pkt, hdr, mcast, now, hop_by_hop=True):
                    return
            elif nh == NH_DEST_OPTS:
                if not self._options(pkt, hdr, mcast, now, hop_by_hop=False):
                    return
            elif nh == NH_ROUTING:
                rh = RoutingHeader.parse(hdr.data)
                if rh.segments_left:
                    # RFC 8200 §4.4: segments left and a type we do not implement (all of them: a host
                    # does not forward, and type 0 is deprecated by RFC 5095) -> code 0 at the type octet.
                    stats["ip6.drop.routing_header"] += 1
                    self.icmp.send_error(pkt, TYPE_PARAM_PROBLEM, CODE_BAD_HEADER, off + 2, now)
                    return
            else:
                self._fragment(if6, pkt, hdr, nh_off, mcast, now)
                return
            nh_off = off
            off += len(hdr.data)
            nh = hdr.next_header

    def _options(self, pkt: Ip6Packet, hdr: ExtHeader, mcast: bool, now: float, *, hop_by_hop: bool) -> bool:
        """RFC 8200 §4.2 TLV options; False when the packet must be discarded."""
        stats = self.svc.stats
        try:
            options = parse_options(hdr.data)
        except Malformed as exc:
            stats["ip6.drop." + exc.reason] += 1
            return False
        for opt in options:
            if hop_by_hop and opt.type == OPT_ROUTER_ALERT:
                continue  # RFC 2711: meaningful to routers; a host just accepts it
            action = option_action(opt.type)
            if action == ACTION_SKIP:
                stats["ip6.rx.option_skipped"] += 1
                continue
            stats["ip6.drop.unknown_option"] += 1
            if action == ACTION_DISCARD:
                return False
            if action == ACTION_DISCARD_ICMP or not mcast:
                self.icmp.send_error(pkt, TYPE_PARAM_PROBLEM, CODE_UNKNOWN_OPTION, hdr.offset + opt.offset,
                                     now, allow_multicast=action == ACTION_DISCARD_ICMP)
            return False
        return True

    def _fragment(self, if6: If6, pkt: Ip6Packet, hdr: ExtHeader, nh_off: int, mcast: bool, now: float) -> None:
        stats = self.svc.stats
        fh = FragmentHeader.parse(hdr.data)
        off = hdr.offset
        data_start = off + FRAGMENT_HEADER_LEN
        if fh.is_atomic:
            # RFC 6946 §4: an atomic fragment is a whole packet; never mixed with a reassembly.
            stats["ip6.rx.atomic_fragment"] += 1
            self.process(if6, pkt, fh.next_header, data_start, off, mcast, now)
            return
        data = pkt.packet[data_start:]
        if fh.more and len(data) % 8:
            stats["ip6.drop.fragment_not_multiple_of_8"] += 1  # RFC 8200 §4.5: pointer to Payload Length
            self.icmp.send_error(pkt, TYPE_PARAM_PROBLEM, CODE_BAD_HEADER, 4, now)
            return
        if fh.offset + len(data) > MAX_PAYLOAD:
            stats["ip6.drop.fragment_too_big"] += 1  # RFC 8200 §4.5: pointer to the Fragment Offset field
            self.icmp.send_error(pkt, TYPE_PARAM_PROBLEM, CODE_BAD_HEADER, off + 2, now)
            return
        if fh.offset == 0:
            # RFC 7112 §5 (RFC 8200 §4.5): the first fragment must hold the whole header chain.
            try:
                _, upper, upper_off = walk_extensions(pkt.packet, fh.next_header, data_start)
            except Malformed:
                upper, upper_off = -1, len(pkt.packet) + 1
            if upper_off > len(pkt.packet) or (upper in (NH_TCP, NH_UDP, NH_UDPLITE, NH_ICMP6)
                                               and upper_off + (8 if upper != NH_TCP else 20) > len(pkt.packet)):
                stats["ip6.drop.incomplete_chain"] += 1
                self.icmp.send_error(pkt, TYPE_PARAM_PROBLEM, CODE_INCOMPLETE_CHAIN, 0, now)
                return
        whole = self.reassembler.add(pkt, fh, off, nh_off, data, now)
        if whole is None:
            return
        try:
            full = Ip6Packet.parse(memoryview(whole))
        except Malformed as exc:
            stats["ip6.drop.reassembled_" + exc.reason] += 1
            return
        stats["ip6.rx.reassembled"] += 1
        full.link_multicast = pkt.link_multicast  # that of the fragment completing it
        self.process(if6, full, fh.next_header, off, nh_off, mcast, now)
