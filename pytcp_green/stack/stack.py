"""The Stack: interfaces, protocol layers, timers and counters, driven entirely by its callers.

Entry points for a runtime (all take ``now``, monotonic seconds):

* :meth:`Stack.receive` — one frame arrived on an interface;
* :meth:`Stack.poll` — fire the timers that are due; :meth:`Stack.next_deadline` says when;
* socket calls on the objects :meth:`Stack.socket` returns.

The Stack is the composition root: it makes the shared :class:`~.services.Services` and every
layer, each given only what it uses, and wires the calls between them (IP input to the
transports and to ICMP, ICMP to the transports' error handlers) once all of them exist.  No
layer holds the Stack, except the transports that need the family-dispatching contract of
:class:`~.contracts.Network` below.

Frames to send accumulate in each :attr:`Interface.tx`; the runtime drains them.  Nothing in
here reads a clock, sleeps, or touches a file descriptor, and no exception escapes
:meth:`receive`: malformed input is counted under ``<proto>.drop.<reason>``.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import logging
import random
from collections.abc import Mapping

from pytcp_green.stack.datagram.raw import RawLayer, RawSocket
from pytcp_green.stack.datagram.udp import UdpLayer, UdpSocket
from pytcp_green.stack.datagram.udplite import UdpLiteLayer
from pytcp_green.stack.interface import Egress, Interface, LinkKind, TrustedFrame
from pytcp_green.stack.ipv4.arp import ArpCache
from pytcp_green.stack.ipv4.icmp import Icmp4Layer
from pytcp_green.stack.ipv4.ip import Ip4Layer
from pytcp_green.stack.ipv6.icmp import Icmp6Layer
from pytcp_green.stack.ipv6.ip import Ip6Layer
from pytcp_green.stack.services import Services
from pytcp_green.stack.sockbase import AF_INET, AF_INET6, oserror
from pytcp_green.stack.stats import Stats
from pytcp_green.stack.sysctl import Sysctl, Value
from pytcp_green.stack.tcp import TcpLayer, TcpSocket
from pytcp_green.stack.timers import Timers
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.arp import ArpPacket
from pytcp_green.stack.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IP4, ETHERTYPE_IP6, EthernetFrame, is_multicast_mac
from pytcp_green.stack.wire.ip4 import IP4_HEADER_LEN
from pytcp_green.stack.wire.ip6 import IP6_HEADER_LEN, V4MAPPED_PREFIX
from pytcp_green.stack.wire.udplite import PROTO_UDPLITE

log = logging.getLogger(__name__)

SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3


class Stack:
    """One host: its interfaces and protocol state.  Not thread-safe: one runtime drives it."""

    def __init__(self, *, sysctl: Mapping[str, Value] | None = None, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.timers = Timers()
        self.stats = Stats()
        self.sysctl = Sysctl(sysctl)
        self.services = svc = Services(self.timers, self.stats, self.sysctl, self.rng)
        self.interfaces: dict[str, Interface] = {}
        # Name servers (numeric strings) for the stub resolver; set by options or learned by DHCP.
        self.dns_servers: list[str] = []
        self.loopback = self.add_interface("lo", LinkKind.IP, mtu=65536, csum_free=True)
        # Built in this order, the order they draw from ``rng`` (a seeded stack must stay reproducible).
        self.ip4 = Ip4Layer(svc, self.interfaces, self.loopback)
        self.icmp4 = Icmp4Layer(svc, self.ip4)
        self.udp = UdpLayer(svc, self, self.ip4)
        self.ip6 = Ip6Layer(svc, self.loopback)
        self.icmp6 = Icmp6Layer(svc, self.ip6)
        self.tcp = TcpLayer(self)
        # Keyed from UDP's secret rather than a draw of its own, so that adding UDP-Lite left every
        # later draw (and so every seeded simulation) as it was.
        self.udplite = UdpLiteLayer(svc, self, self.ip4,
                                    port_secret=hashlib.blake2b(self.udp.port_secret, person=b"udplite").digest()[:16])
        self.ip4.connect(self.icmp4, self.udp, self.tcp, self.udplite)
        self.icmp4.connect(self.udp, self.tcp, self.udplite)
        self.ip6.connect(self.icmp6, self.udp, self.tcp, self.udplite)
        self.icmp6.connect(self.udp, self.tcp, self.udplite)
        self.raw = self.ip4.raw = self.ip6.walk.raw = RawLayer(svc, self)
        self.add_ip4("lo", "127.0.0.1/8")
        self.ip6.add_address(self.loopback, ipaddress.IPv6Interface("::1/128"), dad=False)

    # -- configuration -------------------------------------------------------------------------------
    def add_interface(self, name: str, kind: LinkKind, mtu: int = 1500, mac: bytes | None = None, *,
                      tso_max: int = 0, csum_free: bool = False) -> Interface:
        """A new interface; ``tso_max``: its device segments TCP super-segments up to that IP packet
        size; ``csum_free``: no TCP checksum sent through it is ever checked."""
        if name in self.interfaces:
            raise ValueError(f"interface {name!r} exists")
        iface = Interface(name, kind, mtu, mac, tso_max=tso_max, csum_free=csum_free)
        iface.index = len(self.interfaces) + 1  # lo is 1, as on Linux; what IP_PKTINFO reports
        if kind is LinkKind.ETHERNET:
            iface.arp = ArpCache(self.services, iface, self.icmp4)
        self.interfaces[name] = iface
        return iface

    def add_ip4(self, iface: str | Interface, address: str | ipaddress.IPv4Interface,
                now: float | None = None) -> None:
        """Assign ``address`` ("198.18.0.2/24") to an interface, with its connected route.

        With ``now`` the address is announced (gratuitous ARP) on an Ethernet interface.
        """
        if isinstance(iface, str):
            iface = self.interfaces[iface]
        self.ip4.add_address(iface, ipaddress.IPv4Interface(address), now)

    def set_gateway4(self, gateway: str | ipaddress.IPv4Address) -> None:
        self.ip4.set_gateway(ipaddress.IPv4Address(gateway))

    def enable_ip6(self, iface: str | Interface, *, slaac: bool = True, now: float = 0.0) -> None:
        """Start IPv6 on an interface: link-local address with DAD, MLD, and with ``slaac`` router
        solicitation and SLAAC from router advertisements (RFC 4862)."""
        if isinstance(iface, str):
            iface = self.interfaces[iface]
        self.ip6.enable(iface, slaac=slaac, now=now)

    def add_ip6(self, iface: str | Interface, address: str | ipaddress.IPv6Interface, now: float = 0.0, *,
                optimistic: bool = False) -> None:
        """Assign ``address`` ("fd00:77::2/64"), with its on-link prefix; DAD runs first on Ethernet,
        with the address usable meanwhile when ``optimistic`` (RFC 4429)."""
        if isinstance(iface, str):
            iface = self.interfaces[iface]
        self.ip6.add_address(iface, ipaddress.IPv6Interface(address), now=now, optimistic=optimistic)

    def set_gateway6(self, gateway: str | ipaddress.IPv6Address) -> None:
        self.ip6.set_gateway(ipaddress.IPv6Address(gateway))

    # -- runtime entry points ------------------------------------------------------------------------
    def receive(self, iface: Interface, frame: bytes | bytearray | memoryview, now: float) -> None:
        """Process one received frame.  Never raises."""
        try:
            buf = memoryview(frame)
            csum_ok = type(frame) is TrustedFrame
            if iface.kind is LinkKind.ETHERNET:
                self._receive_ethernet(iface, buf, now, csum_ok)
            elif buf and buf[0] >> 4 == 4:
                self.ip4.receive(iface, buf, now, csum_ok=csum_ok)
            elif buf and buf[0] >> 4 == 6:
                self.ip6.receive(iface, buf, now, csum_ok=csum_ok)
            else:
                self.stats["ip.drop.unknown_version"] += 1
        except Exception:  # a bug must cost one frame, not the stack
            self.stats["stack.drop.internal_error"] += 1
            log.exception("internal error while receiving a frame on %s", iface.name)

    def _receive_ethernet(self, iface: Interface, buf: memoryview, now: float, csum_ok: bool) -> None:
        stats = self.stats
        try:
            eth = EthernetFrame.parse(buf)
        except Malformed as exc:
            stats["eth.drop." + exc.reason] += 1
            return
        if eth.dst != iface.mac and not is_multicast_mac(eth.dst):
            stats["eth.drop.not_for_us"] += 1
            return
        if eth.ethertype == ETHERTYPE_IP4:
            self.ip4.receive(iface, eth.payload, now, csum_ok=csum_ok)
        elif eth.ethertype == ETHERTYPE_IP6:
            # The group bit of the Ethernet destination (broadcast included): RFC 4443 §2.4 (e.4, e.5)
            # forbids most ICMPv6 errors about such a frame even when its IPv6 destination is unicast.
            self.ip6.receive(iface, eth.payload, now, link_multicast=is_multicast_mac(eth.dst), csum_ok=csum_ok)
        elif eth.ethertype == ETHERTYPE_ARP:
            try:
                pkt = ArpPacket.parse(eth.payload)
            except Malformed as exc:
                stats["arp.drop." + exc.reason] += 1
                return
            assert iface.arp is not None
            iface.arp.receive(pkt, now)
        else:
            stats["eth.drop.unknown_ethertype"] += 1

    def begin_batch(self) -> None:
        """Frames read together follow until :meth:`end_batch`: TCP coalesces each connection's
        in-order segments among them and acknowledges each run (see TcpLayer.begin_batch)."""
        self.tcp.begin_batch()

    def end_batch(self, now: float) -> None:
        try:
            self.tcp.end_batch(now)
        except Exception:  # as in receive(): a bug costs an ACK, not the stack
            self.stats["stack.drop.internal_error"] += 1
            log.exception("internal error while ending a receive batch")

    def poll(self, now: float) -> None:
        """Fire every timer that is due."""
        try:
            self.timers.run_due(now)
        except Exception:
            self.stats["stack.timer_error"] += 1
            log.exception("internal error in a timer")

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    # -- sockets -------------------------------------------------------------------------------------
    def socket(self, family: int = AF_INET, type: int = SOCK_STREAM,
               proto: int = 0) -> UdpSocket | TcpSocket | RawSocket:
        """A core socket of family AF_INET or AF_INET6; ``proto`` IPPROTO_UDPLITE (136) with SOCK_DGRAM
        makes a UDP-Lite one (RFC 3828); SOCK_RAW a raw one of protocol ``proto`` (stack/datagram/raw.py)."""
        if family not in (AF_INET, AF_INET6):
            raise oserror(errno.EAFNOSUPPORT)
        if type == SOCK_DGRAM:
            if proto == PROTO_UDPLITE:
                return self.udplite.socket(family)
            return self.udp.socket(family)
        if type == SOCK_STREAM:
            return self.tcp.socket(family)
        if type == SOCK_RAW:
            return self.raw.socket(family, proto)
        raise oserror(errno.ESOCKTNOSUPPORT)

    # -- the contract transports use (addresses are packed bytes) ------------------------------------
    # 4 bytes: IPv4; 16 bytes: IPv6, except that a v4-mapped ::ffff:a.b.c.d (an AF_INET6 socket
    # talking to an IPv4 peer, RFC 4291 §2.5.5.2) goes out as IPv4.
    def ip_output(self, src: bytes, dst: bytes, proto: int, payload: bytes | bytearray | memoryview,
                  now: float, *, tos: int = 0, hops: int | None = None, gso_size: int = 0, room: int = 0) -> int:
        if len(dst) == 4:
            return self.ip4.output(src, dst, proto, payload, now, tos=tos, ttl=hops, gso_size=gso_size, room=room)
        if dst[:12] == V4MAPPED_PREFIX:
            return self.ip4.output(src[12:], dst[12:], proto, payload, now, tos=tos, ttl=hops, gso_size=gso_size,
                                   room=room)
        return self.ip6.output(src, dst, proto, payload, now, tc=tos, hop_limit=hops, gso_size=gso_size, room=room)

    def ip_output_packet(self, packet: bytes | bytearray | memoryview, dst: bytes, now: float) -> int:
        if len(dst) == 4:
            return self.ip4.output_packet(packet, dst, now)
        if dst[:12] == V4MAPPED_PREFIX:
            return self.ip4.output_packet(packet, dst[12:], now)
        return self.ip6.output_packet(packet, dst, now)

    def egress_for(self, dst: bytes) -> Egress:
        """What the interface toward ``dst`` offers a transport (see :class:`Egress`)."""
        v4 = len(dst) == 4 or dst[:12] == V4MAPPED_PREFIX
        found = self.ip4.route(dst[-4:]) if v4 else self.ip6.route(dst)
        if found is None:
            return Egress(0, False, 0)
        iface = found[0]
        ip_header = IP4_HEADER_LEN if v4 else IP6_HEADER_LEN
        return Egress(iface.tso_max, iface.csum_free, iface.link_header_len + ip_header)

    def path_mtu(self, dst: bytes) -> int | None:
        if len(dst) == 4:
            return self.ip4.path_mtu(dst)
        if dst[:12] == V4MAPPED_PREFIX:
            return self.ip4.path_mtu(dst[12:])
        return self.ip6.path_mtu(dst)

    def select_source(self, dst: bytes) -> bytes | None:
        if len(dst) == 4:
            return self.ip4.select_source(dst)
        if dst[:12] == V4MAPPED_PREFIX:
            src = self.ip4.select_source(dst[12:])
            return None if src is None else V4MAPPED_PREFIX + src
        return self.ip6.select_source(dst)

    def is_local(self, addr: bytes) -> bool:
        if len(addr) == 4:
            return addr in self.ip4.local
        if addr[:12] == V4MAPPED_PREFIX:
            return addr[12:] in self.ip4.local
        return self.ip6.usable(addr)
