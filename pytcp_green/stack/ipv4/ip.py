"""The IPv4 layer of a host (RFC 791, RFC 1122 §3.2-3.3): addresses, routing, input filtering, output.

Input accepts datagrams for any of our addresses on any interface (the weak host model of
RFC 1122 §3.3.4.2, as Linux does), for limited and directed broadcast, and for joined multicast
groups; everything else is counted and dropped (a host never forwards).  Output routes by
longest prefix match, hands datagrams for our own addresses to the loopback interface, and
fragments datagrams larger than the path MTU (RFC 791 §3.2, "want PMTU discovery" semantics:
DF is set on every datagram that fits, as Linux does).  Received fragments are reassembled by
:mod:`pytcp_green.stack.ipv4.reassembly`.

Path MTU discovery (RFC 1191): "fragmentation needed" messages lower a per-destination path
MTU (never raise it, §6.1; never below ``net.ipv4.route.min_pmtu``, as Linux), which output
and :meth:`Ip4Layer.path_mtu` (TCP's MSS) use.  An entry expires after
``net.ipv4.route.mtu_expires`` seconds (§6.3: the path may have grown), and the cache is
bounded.  A message from a router that predates RFC 1191 (MTU field 0) is answered with the
next plateau below the quoted datagram's length (§5, §7 table).
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.contracts import RxMeta
from pytcp_green.stack.interface import GsoFrame, Interface, LinkKind, frame_for
from pytcp_green.stack.ipv4.igmp import Igmp
from pytcp_green.stack.ipv4.reassembly import Icmp4Errors, Reassembler
from pytcp_green.stack.ipv4.route import Route4, RouteTable4
from pytcp_green.stack.pmtu import PmtuCache
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.ethernet import BROADCAST_MAC, ETHERTYPE_IP4, write_ethernet
from pytcp_green.stack.wire.icmp4 import CODE_PROTO_UNREACH, TYPE_DEST_UNREACH
from pytcp_green.stack.wire.ip4 import (
    IP4_HEADER_LEN,
    PROTO_ICMP,
    PROTO_IGMP,
    PROTO_TCP,
    PROTO_UDP,
    Ip4Packet,
    reseal_ip4,
    write_ip4,
)
from pytcp_green.stack.wire.udplite import PROTO_UDPLITE

if TYPE_CHECKING:
    from pytcp_green.stack.contracts import DatagramTransport, StreamTransport
    from pytcp_green.stack.datagram.raw import RawLayer
    from pytcp_green.stack.services import Services

LIMITED_BROADCAST = b"\xff\xff\xff\xff"
MAX_DATAGRAM = 65535
# RFC 1191 §7 "plateau" MTUs, for routers that do not say the next-hop MTU.
MTU_PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68)


def multicast_mac(group: bytes) -> bytes:
    """RFC 1112 §6.4: 01-00-5E followed by the low 23 bits of the group address."""
    return b"\x01\x00\x5e" + bytes((group[1] & 0x7F, group[2], group[3]))


class Icmp4Input(Icmp4Errors, Protocol):
    """ICMPv4 as IPv4 input sees it (:class:`~pytcp_green.stack.ipv4.icmp.Icmp4Layer`)."""

    def receive(self, iface: Interface, pkt: Ip4Packet, now: float, bcast: bool) -> None: ...

    def port_unreachable(self, pkt: Ip4Packet, now: float) -> None: ...


class Ip4Layer:
    """IPv4 of one stack.  ``interfaces`` is the stack's table (read, never changed here).

    The protocols above are wired in by :meth:`connect`, once they exist: they need this layer first.
    """

    icmp: Icmp4Input
    datagram: dict[int, DatagramTransport]  # UDP and UDP-Lite, by protocol number
    tcp: StreamTransport

    def __init__(self, svc: Services, interfaces: Mapping[str, Interface], loopback: Interface) -> None:
        self.svc = svc
        self.interfaces = interfaces
        self.loopback = loopback
        self.raw: RawLayer | None = None  # the raw sockets (Stack.__init__ wires them)
        self.routes = RouteTable4()
        self.local: dict[bytes, Interface] = {}  # our unicast addresses
        self.broadcast: dict[bytes, Interface] = {}  # directed broadcasts of our subnets
        self.groups: set[bytes] = {bytes((224, 0, 0, 1))}  # all-hosts is always joined (RFC 1112 §7.2)
        self._ident = svc.rng.randrange(0x10000)
        self.reassembler = Reassembler(svc)
        # Called with (interface, address) when a conflict took an address away (the DHCP client listens).
        self.on_address_lost: list[Callable[[Interface, ipaddress.IPv4Interface], None]] = []
        # Addresses a protocol configured (DHCP, link-local), which a conflict may take away; the
        # others were set by hand and are defended indefinitely (RFC 5227 §2.4 (c)).
        self.dynamic: set[bytes] = set()
        self.pmtu = PmtuCache(svc, "ip4.pmtu.", "net.ipv4.route.mtu_expires")
        self.igmp = Igmp(svc, self)

    def connect(self, icmp: Icmp4Input, udp: DatagramTransport, tcp: StreamTransport,
                udplite: DatagramTransport) -> None:
        """The layers input hands datagrams to (and asks for ICMP errors), by protocol number."""
        self.icmp = self.reassembler.icmp = icmp
        self.datagram = {PROTO_UDP: udp, PROTO_UDPLITE: udplite}
        self.tcp = tcp

    # -- configuration -------------------------------------------------------------------------------
    def add_address(self, iface: Interface, address: ipaddress.IPv4Interface, now: float | None = None, *,
                    dynamic: bool = False) -> None:
        """Assign ``address``; with ``now``, announce it on Ethernet (gratuitous ARP, RFC 5227 §2.3).

        ``dynamic``: a protocol's address (DHCP, link-local) that a conflict may take away; a static
        one is defended and kept whatever the link says."""
        if address.ip.packed in self.local:
            raise ValueError(f"{address.ip} is already assigned")
        if dynamic:
            self.dynamic.add(address.ip.packed)
        iface.ip4.append(address)
        self.local[address.ip.packed] = iface
        net = address.network
        if net.prefixlen < 31:
            self.broadcast[net.broadcast_address.packed] = iface
        self.routes.add(Route4(net, iface))
        arp = iface.arp
        if arp is not None:
            if self._address_lost not in arp.on_conflict:
                arp.on_conflict.append(self._address_lost)
                arp.may_give_up = self.dynamic.__contains__
            if now is not None:
                arp.announce(address.ip.packed, now)

    def probe_address(self, iface: Interface, address: ipaddress.IPv4Interface, now: float,
                      on_done: Callable[[bool, float], None], *, dynamic: bool = False) -> None:
        """Add ``address`` once RFC 5227 probing finds nobody using it; ``on_done(ok, now)`` tells the outcome.

        On a link without ARP the address is added at once.
        """
        arp = iface.arp
        if arp is None:
            self.add_address(iface, address, now, dynamic=dynamic)
            on_done(True, now)
            return

        def done(ok: bool, when: float) -> None:
            if ok:
                try:
                    self.add_address(iface, address, when, dynamic=dynamic)
                except ValueError:
                    ok = False
            else:
                self.svc.stats["ip4.address_conflict"] += 1
            on_done(ok, when)

        arp.probe(address.ip.packed, now, done)

    def _address_lost(self, ip: bytes) -> None:
        """ARP gave ``ip`` up after a conflict (RFC 5227 §2.4): stop using it, tell its owner."""
        iface = self.local.get(ip)
        if iface is None:
            return
        for address in [a for a in iface.ip4 if a.ip.packed == ip]:
            self.remove_address(iface, address)
            for callback in list(self.on_address_lost):
                callback(iface, address)

    def remove_address(self, iface: Interface, address: ipaddress.IPv4Interface) -> None:
        iface.ip4.remove(address)
        self.dynamic.discard(address.ip.packed)
        self.local.pop(address.ip.packed, None)
        if not any(a.network == address.network for a in iface.ip4):
            self.broadcast.pop(address.network.broadcast_address.packed, None)
            self.routes.remove_where(iface, address.network)

    def set_gateway(self, gateway: ipaddress.IPv4Address) -> None:
        """Install the default route via ``gateway``, on the interface whose subnet holds it."""
        route = self.routes.lookup(gateway.packed)
        if route is None or route.gateway is not None:
            raise ValueError(f"gateway {gateway} is not on a connected subnet")
        default = ipaddress.IPv4Network("0.0.0.0/0")
        for iface in self.interfaces.values():
            self.routes.remove_where(iface, default)
        self.routes.add(Route4(default, route.iface, gateway.packed))

    # -- input ---------------------------------------------------------------------------------------
    def receive(self, iface: Interface, buf: memoryview, now: float, *, csum_ok: bool = False) -> None:
        """One packet from ``iface``; ``csum_ok``: its device vouches for the transport checksum
        (:class:`~pytcp_green.stack.interface.TrustedFrame`), which holds for a whole packet only."""
        stats = self.svc.stats
        try:
            pkt = Ip4Packet.parse(buf)
        except Malformed as exc:
            stats["ip4.drop." + exc.reason] += 1
            return
        stats["ip4.rx"] += 1
        dst, src = pkt.dst, pkt.src
        bcast = False
        if dst not in self.local:
            if dst == LIMITED_BROADCAST or dst in self.broadcast or dst in self.groups:
                bcast = True
            else:
                stats["ip4.drop.not_for_us"] += 1
                return
        martian = self._martian(iface, pkt)
        if martian:
            stats["ip4.drop.martian." + martian] += 1
            return
        if pkt.is_fragment:
            whole = self.reassembler.add(pkt, now)
            if whole is None:
                return
            pkt = whole
            csum_ok = False
        proto = pkt.proto
        # Every raw socket of the protocol gets a copy, header included (raw(7)); the protocol still runs.
        raw = self.raw is not None and self.raw.receive(AF_INET, proto, src, dst, pkt.header, pkt.payload)
        if proto == PROTO_TCP:
            if bcast:
                stats["ip4.drop.tcp_broadcast"] += 1
                return
            self.tcp.receive(src, dst, pkt.payload, now, csum_ok=csum_ok, ecn=pkt.tos & 3)  # RFC 3168 §5
        elif proto in self.datagram:
            meta = RxMeta(iface.index, dst, pkt.ttl, pkt.tos)
            if not self.datagram[proto].receive(src, dst, pkt.payload, now, bcast=bcast, meta=meta) and not bcast:
                self.icmp.port_unreachable(pkt, now)
        elif proto == PROTO_ICMP:
            self.icmp.receive(iface, pkt, now, bcast)
        elif proto == PROTO_IGMP:
            self.igmp.receive(iface, pkt, now)
        elif not raw:
            stats["ip4.drop.unknown_protocol"] += 1
            if not bcast:
                self.icmp.send_error(pkt, TYPE_DEST_UNREACH, CODE_PROTO_UNREACH, 0, now)

    def _martian(self, iface: Interface, pkt: Ip4Packet) -> str:
        """Why ``pkt`` must not be processed (RFC 6890 special-purpose addresses, RFC 1122 §3.2.1.3), or ''.

        Nothing is ever answered to such a source either: the datagram is dropped before any
        protocol sees it.
        """
        src, dst = pkt.src, pkt.dst
        first = src[0]
        if first == 0:
            # "This host on this network" (RFC 6890 §2.2.2 0.0.0.0/8, RFC 1122 §3.2.1.3 (a)): only
            # 0.0.0.0 itself, only while a host learns its address - DHCP (RFC 2131 §4.1) and IGMP
            # reports (RFC 3376 §4.2.13).  A datagram from 0.0.0.0 is never answered.
            if src != b"\0\0\0\0":
                return "this_network_source"
            if pkt.proto == PROTO_IGMP:
                return ""
            payload = pkt.payload
            if pkt.proto != PROTO_UDP or pkt.frag_offset or len(payload) < 4 or bytes(payload[2:4]) not in (
                    b"\0\x43", b"\0\x44"):
                return "unspecified_source"
            return ""
        if src == LIMITED_BROADCAST:
            return "broadcast_source"  # RFC 1122 §3.2.1.3 (c)
        if 224 <= first < 240:
            return "multicast_source"  # RFC 1112 §4, RFC 1122 §3.2.1.3: a source is never a group
        if first >= 240:
            return "reserved_source"  # RFC 6890 §2.2.2 240.0.0.0/4, "Reserved", never a source
        if src in self.broadcast:
            return "broadcast_source"  # one of our subnets' directed broadcasts
        if (first == 127 or dst[0] == 127) and iface is not self.loopback:
            return "loopback_off_link"  # RFC 1122 §3.2.1.3 (g): 127/8 never appears on a wire
        return ""

    # -- output --------------------------------------------------------------------------------------
    def route(self, dst: bytes) -> tuple[Interface, bytes | None] | None:
        """(interface, gateway) toward ``dst``; our own addresses go through loopback."""
        if dst in self.local:
            return self.loopback, None
        route = self.routes.lookup(dst)
        if route is None:
            if dst == LIMITED_BROADCAST or 224 <= dst[0] < 240:
                # No route for broadcast/multicast: use the first interface with an address.
                for iface in self.interfaces.values():
                    if iface.ip4 and iface.kind is LinkKind.ETHERNET:
                        return iface, None
            return None
        return route.iface, route.gateway

    def select_source(self, dst: bytes) -> bytes | None:
        found = self.route(dst)
        if found is None:
            return None
        iface, gateway = found
        if dst in self.local:
            return dst
        return iface.ip4_source_for(gateway or dst)

    def path_mtu(self, dst: bytes) -> int | None:
        """The MTU toward ``dst``: the link's, or less when PMTU discovery learned less (RFC 1191).

        Never more than 65535: however large the link's MTU (the loopback's is 65536, as Linux's),
        an IPv4 datagram cannot be larger, so neither can a TCP segment's MSS + 40.
        """
        found = self.route(dst)
        if found is None:
            return None
        return self.pmtu.clamp(dst, min(found[0].mtu, MAX_DATAGRAM))

    def frag_needed(self, dst: bytes, mtu: int, quoted_len: int, now: float) -> int | None:
        """A "fragmentation needed" (RFC 1191 §4) about a datagram we sent to ``dst``; the new PMTU.

        Returns None when the message changes nothing (it would raise the PMTU, or no route).
        """
        current = self.path_mtu(dst)
        if current is None:
            return None
        if mtu == 0 or mtu >= quoted_len:
            # RFC 1191 §5: an old router; guess the next plateau below what we sent.  A value not
            # below what was sent is as useless, and is treated the same way (Linux does too).
            mtu = next((p for p in MTU_PLATEAUS if p < quoted_len), 68)
        mtu = max(mtu, self.svc.sysctl.int("net.ipv4.route.min_pmtu"))
        if mtu >= current:
            self.svc.stats["ip4.pmtu.ignored"] += 1
            return None
        self.pmtu.lower(dst, mtu, now)
        return mtu

    def output(
        self,
        src: bytes,
        dst: bytes,
        proto: int,
        payload: bytes | bytearray | memoryview,
        now: float,
        *,
        tos: int = 0,
        ttl: int | None = None,
        iface: Interface | None = None,
        options: bytes = b"",
        mc_loop: bool = False,
        gso_size: int = 0,
        room: int = 0,
    ) -> int:
        """Send one datagram; returns 0 or an errno.  Fragments it when it exceeds the path MTU.

        ``iface`` (a socket's SO_BINDTODEVICE, or the interface of a multicast membership) sends
        limited broadcasts, multicasts, and anything with no route, out of that interface: how a
        DHCP client talks before it has an address.  ``options`` (IPv4 options, e.g. Router Alert)
        are only for datagrams that need no fragmenting.  ``mc_loop`` (IP_MULTICAST_LOOP) also
        delivers a datagram for a group this host joined to the host itself (RFC 1112 §6.1).
        ``gso_size``: ``payload`` is a TCP super-segment for the route's TSO device (see
        :class:`~pytcp_green.stack.interface.GsoFrame`), that many payload bytes per wire segment.
        ``room``: the datagram's payload is ``payload[room:]`` and the bytes in front are free; when
        they are exactly the link and IP headers this packet needs (``Egress.room``), the headers
        are written there and the buffer itself becomes the frame, without copying the payload.
        """
        stats = self.svc.stats
        multicast = 224 <= dst[0] < 240
        found = self.route(dst)
        if iface is not None and (found is None or dst == LIMITED_BROADCAST or multicast):
            found = (iface, None)
        if found is None:
            stats["ip4.tx.no_route"] += 1
            return errno.ENETUNREACH
        iface, gateway = found
        if multicast:
            gateway = None  # RFC 1112 §6.4: to the group's own MAC, never through a router
        size = len(payload) - room
        if IP4_HEADER_LEN + size > MAX_DATAGRAM:
            return errno.EMSGSIZE
        hlen = IP4_HEADER_LEN + ((len(options) + 3) & ~3)
        if options and hlen + size > min(iface.mtu, MAX_DATAGRAM):
            return errno.EMSGSIZE
        if ttl is None:
            ttl = self.svc.sysctl.int("net.ipv4.ip_default_ttl")
        self._ident = ident = (self._ident + 1) & 0xFFFF
        lh = iface.link_header_len
        mtu = self.pmtu.clamp(dst, iface.mtu)
        if gso_size and hlen + size <= iface.tso_max:
            gso = frame_for(payload, room, lh + hlen, GsoFrame)
            gso.gso_size, gso.l3, gso.l4 = gso_size, lh, lh + hlen
            write_ip4(gso, lh, src=src, dst=dst, proto=proto, total_len=hlen + size, ident=ident, ttl=ttl,
                      tos=tos, df=True, options=options)
            # The device numbers its segments ident, ident+1, ...: keep the next datagram's clear of them.
            self._ident = (ident + (size - 1) // gso_size) & 0xFFFF
            self._link_output(iface, gateway or dst, gso, now)
            stats["ip4.tx"] += 1
            stats["ip4.tx.gso"] += 1
            return 0
        if hlen + size <= mtu:
            frame = frame_for(payload, room, lh + hlen, bytearray)  # a GsoFrame here would be cut again
            write_ip4(frame, lh, src=src, dst=dst, proto=proto, total_len=hlen + size,
                      ident=ident, ttl=ttl, tos=tos, df=True, options=options)
            if mc_loop and multicast and dst in self.groups and iface is not self.loopback:
                self._loop_copy(frame[lh:])
            self._link_output(iface, gateway or dst, frame, now)
            stats["ip4.tx"] += 1
            return 0
        # RFC 791 §3.2 fragmentation: every fragment but the last carries a multiple of 8 bytes.
        chunk = (mtu - IP4_HEADER_LEN) & ~7
        view = memoryview(payload)[room:]
        for offset in range(0, size, chunk):
            piece = view[offset : offset + chunk]
            frame = bytearray(lh + IP4_HEADER_LEN + len(piece))
            frame[lh + IP4_HEADER_LEN :] = piece
            write_ip4(frame, lh, src=src, dst=dst, proto=proto, total_len=IP4_HEADER_LEN + len(piece),
                      ident=ident, ttl=ttl, tos=tos, mf=offset + chunk < size, frag_offset=offset)
            if mc_loop and multicast and dst in self.groups and iface is not self.loopback:
                self._loop_copy(frame[lh:])
            self._link_output(iface, gateway or dst, frame, now)
            stats["ip4.tx.fragment"] += 1
        stats["ip4.tx"] += 1
        return 0

    def output_packet(self, packet: bytes | bytearray | memoryview, dst: bytes, now: float) -> int:
        """Send a datagram whose IPv4 header the caller wrote (raw(7) ``IP_HDRINCL``), routed toward
        ``dst`` (the sendto() address: Linux routes by it, not by the header); 0 or an errno.

        As Linux's raw_send_hdrinc: the total length and the header checksum are always filled in,
        the identification and the source address when they are zero; a datagram larger than the
        interface MTU is EMSGSIZE (a caller's header is never fragmented); one shorter than an IPv4
        header, or shorter than its own header length, is EINVAL.
        """
        stats = self.svc.stats
        size = len(packet)
        if size < IP4_HEADER_LEN or (packet[0] & 0x0F) * 4 > size:
            return errno.EINVAL
        found = self.route(dst)
        if found is None:
            stats["ip4.tx.no_route"] += 1
            return errno.ENETUNREACH
        iface, gateway = found
        if 224 <= dst[0] < 240:
            gateway = None  # RFC 1112 §6.4, as in output()
        if size > min(iface.mtu, MAX_DATAGRAM):
            return errno.EMSGSIZE
        lh = iface.link_header_len
        frame = frame_for(packet, 0, lh, bytearray)
        if frame[lh] & 0x0F >= 5:  # Linux leaves a header shorter than 20 bytes as it is
            if frame[lh + 12 : lh + 16] == b"\0\0\0\0":
                src = self.select_source(dst)
                if src is not None:
                    frame[lh + 12 : lh + 16] = src
            if frame[lh + 4 : lh + 6] == b"\0\0":
                self._ident = (self._ident + 1) & 0xFFFF
                frame[lh + 4 : lh + 6] = self._ident.to_bytes(2, "big")
            frame[lh + 2 : lh + 4] = size.to_bytes(2, "big")
            reseal_ip4(frame, lh)
        self._link_output(iface, gateway or dst, frame, now)
        stats["ip4.tx"] += 1
        stats["ip4.tx.hdrincl"] += 1
        return 0

    def _loop_copy(self, packet: bytearray) -> None:
        """A copy of an outgoing multicast for our own members, through the loopback interface."""
        self.loopback.tx.append(bytes(packet))
        self.svc.stats["ip4.tx.multicast_loop"] += 1

    def _link_output(self, iface: Interface, nexthop: bytes, frame: bytearray, now: float) -> None:
        if iface.kind is LinkKind.IP:
            iface.tx.append(frame)
            return
        assert iface.mac is not None and iface.arp is not None
        if nexthop == LIMITED_BROADCAST or self.broadcast.get(nexthop) is iface:
            write_ethernet(frame, 0, BROADCAST_MAC, iface.mac, ETHERTYPE_IP4)
            iface.tx.append(frame)
        elif 224 <= nexthop[0] < 240:
            write_ethernet(frame, 0, multicast_mac(nexthop), iface.mac, ETHERTYPE_IP4)
            iface.tx.append(frame)
        else:
            iface.arp.output(nexthop, frame, now)
