"""The IPv6 layer of a host (RFC 8200, RFC 4861 §5-6 host model, RFC 8201 PMTU; RFC 6724 §5 in :mod:`.source`).

Per interface (:class:`~pytcp_green.stack.ipv6.addr.If6`): addresses with their DAD state
(tentative, or optimistic and usable at once per RFC 4429, then preferred/deprecated, or
duplicate), the multicast groups joined (all-nodes always, the solicited-node group of every
address, RFC 4291 §2.8), the neighbour cache (:mod:`pytcp_green.stack.ipv6.nd`), default
routers and on-link prefixes learned from router advertisements
(:mod:`pytcp_green.stack.ipv6.addrconf`), the link MTU (an RA may lower it).

Input (RFC 8200 §4): a packet is taken when its destination is one of our usable unicast
addresses (weak host model, as Linux) or a group joined on the receiving interface; a
multicast source, or ``::1`` from a wire, is dropped.  The extension-header chain is then
walked by :mod:`pytcp_green.stack.ipv6.exthdr` (§4.2-§4.7), which hands the upper layer its
payload.

Output routes by longest prefix match over on-link prefixes and gateways, then the default
routers (RFC 4861 §6.3.6), resolves the next hop through Neighbor Discovery, and fragments
at the source when the path MTU is smaller than the packet (RFC 8200 §4.5, identifiers drawn
at random per RFC 7739 §5.1).  Packet Too Big lowers a per-destination path MTU, never under
1280 (RFC 8201 §4), and the entry expires after ``net.ipv6.route.mtu_expires`` (§4: "attempt
to detect an increase").
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from pytcp_green.stack import sysctl as _sysctl
from pytcp_green.stack.interface import GsoFrame, Interface, LinkKind, frame_for
from pytcp_green.stack.ipv6 import source
from pytcp_green.stack.ipv6.addr import Addr6, AddrState, If6
from pytcp_green.stack.ipv6.addrconf import Addrconf
from pytcp_green.stack.ipv6.exthdr import ExtWalk, Icmp6Input
from pytcp_green.stack.ipv6.mld import Mld
from pytcp_green.stack.ipv6.nd import NdCache
from pytcp_green.stack.ipv6.reassembly import MAX_PAYLOAD, Reassembler6
from pytcp_green.stack.pmtu import PmtuCache
from pytcp_green.stack.timers import Timer
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.ethernet import ETHERTYPE_IP6, write_ethernet
from pytcp_green.stack.wire.icmp6 import (
    OPT_SLLA,
    TYPE_NEIGHBOR_SOLICIT,
    build_icmp6,
    nd_opt_lla,
)
from pytcp_green.stack.wire.ip6 import (
    FRAGMENT_HEADER_LEN,
    IP6_HEADER_LEN,
    IP6_MIN_MTU,
    LOOPBACK6,
    NH_FRAGMENT,
    NH_HOP_BY_HOP,
    NH_ICMP6,
    UNSPECIFIED,
    Ip6Packet,
    is_link_local6,
    multicast_mac6,
    solicited_node,
    write_fragment_header,
    write_ip6,
)

if TYPE_CHECKING:
    from pytcp_green.stack.contracts import DatagramTransport, StreamTransport
    from pytcp_green.stack.services import Services

log = logging.getLogger(__name__)

# Tunables, Linux names (Documentation/networking/ip-sysctl.rst); seconds where Linux has ms.
# Registered in the registry's defaults at import, so --sysctl can set them at start.
SYSCTLS: dict[str, _sysctl.Value] = {
    "net.ipv6.conf.default.hop_limit": 64,
    "net.ipv6.conf.default.dad_transmits": 1,  # RFC 4862 DupAddrDetectTransmits
    "net.ipv6.conf.default.accept_dad": 1,
    # RFC 4429 optimistic DAD for autoconfigured (link-local, SLAAC) addresses; Linux's default is 0,
    # the Host turns it on so that a program can start without waiting for DAD.
    "net.ipv6.conf.default.optimistic_dad": 0,
    "net.ipv6.conf.default.use_optimistic": 0,  # 1: optimistic addresses not avoided like deprecated ones
    "net.ipv6.conf.default.router_solicitations": -1,  # -1: keep soliciting, backing off (RFC 7559)
    "net.ipv6.conf.default.router_solicitation_interval": 4.0,  # RFC 7559 SOL_MAX_RT starts here
    "net.ipv6.conf.default.router_solicitation_max_interval": 3600.0,
    "net.ipv6.conf.default.router_solicitation_delay": 1.0,  # MAX_RTR_SOLICITATION_DELAY
    "net.ipv6.conf.default.addr_gen_mode": 0,  # 0 EUI-64, 2/3 RFC 7217 stable (secret given/random)
    "net.ipv6.conf.default.stable_secret": "",
    "net.ipv6.conf.default.idgen_retries": 3,  # RFC 7217 §6 IDGEN_RETRIES
    # RFC 8981 temporary addresses: 0 off, 1 made but public ones preferred, 2 made and preferred
    # (RFC 6724 rule 7), as Linux; lifetimes are TEMP_VALID_LIFETIME / TEMP_PREFERRED_LIFETIME
    # (RFC 8981 §3.8 defaults: two days, one day), regen_max_retry is TEMP_IDGEN_RETRIES.
    "net.ipv6.conf.default.use_tempaddr": 0,
    "net.ipv6.conf.default.temp_valid_lft": 172800.0,
    "net.ipv6.conf.default.temp_prefered_lft": 86400.0,
    "net.ipv6.conf.default.regen_max_retry": 3,
    # What a router advertisement may make (issue 11: a hostile link must not grow the tables).
    # max_addresses is Linux's (IPV6_MAX_ADDRESSES, 16; every address of the interface counts, as
    # ipv6_count_addresses; 0 = unlimited) and refuses new SLAAC and temporary addresses.
    # accept_ra_min_hop_limit and accept_ra_min_lft are Linux's too (ndisc_router_discovery,
    # addrconf_prefix_rcv): a Cur Hop Limit below the first is ignored, a non-zero router or prefix
    # lifetime below the second is ignored.  ra_max_routers / ra_max_prefixes are ours: Linux bounds
    # RA-learnt default routers and on-link prefixes only through its routing table; RFC 4861 §6.3.4
    # lets a host limit them (SHOULD keep at least two routers).  8 routers and 16 prefixes are far
    # above what a real link announces, and 16 prefixes match max_addresses; 0 = unlimited.
    "net.ipv6.conf.default.max_addresses": 16,
    "net.ipv6.conf.default.accept_ra_min_hop_limit": 1,
    "net.ipv6.conf.default.accept_ra_min_lft": 0,
    "net.ipv6.conf.default.accept_ra_from_local": 0,  # Linux: an RA from our own address makes no router
    "net.ipv6.conf.default.ra_max_routers": 8,
    "net.ipv6.conf.default.ra_max_prefixes": 16,
    "net.ipv6.conf.default.mldv2_unsolicited_report_interval": 1.0,  # RFC 3810 §9.11
    "net.ipv6.conf.default.mld_robustness": 2,  # RFC 3810 §9.1
    "net.ipv6.conf.default.mldv1_unsolicited_report_interval": 10.0,  # RFC 2710 §7.10
    "net.ipv6.conf.default.force_mld_version": 0,  # 0: MLDv2 unless an MLDv1 querier is heard (RFC 3810 §8.2.1)
    "net.ipv6.neigh.default.retrans_time": 1.0,
    "net.ipv6.neigh.default.base_reachable_time": 30.0,
    "net.ipv6.neigh.default.delay_first_probe_time": 5.0,
    "net.ipv6.neigh.default.gc_stale_time": 60.0,
    "net.ipv6.neigh.default.mcast_solicit": 3,
    "net.ipv6.neigh.default.ucast_solicit": 3,
    "net.ipv6.neigh.default.unres_qlen": 101,
    "net.ipv6.icmp.echo_ignore_all": 0,
    "net.ipv6.icmp.echo_ignore_multicast": 0,
    "net.ipv6.ip6frag_high_thresh": 4194304,
    "net.ipv6.ip6frag_low_thresh": 3145728,
    "net.ipv6.ip6frag_time": 60.0,
    "net.ipv6.ip6frag_max_frags": 512,
    "net.ipv6.route.mtu_expires": 600.0,
    # Redirects (RFC 4861 §8.3): Linux ages an unused redirect exception after gc_timeout (60 s) and
    # bounds them per route through its exception hash; ours live gc_timeout seconds from the last
    # redirect received, and max_redirects (ours) caps them, the oldest giving way.
    "net.ipv6.route.gc_timeout": 60.0,
    "net.ipv6.route.max_redirects": 1024,
}
for _name, _value in SYSCTLS.items():
    _sysctl.DEFAULTS.setdefault(_name, _value)

class Ip6Layer:
    """IPv6 of one stack, with the ND, SLAAC and MLD of its interfaces.

    The protocols above are wired in by :meth:`connect`, once they exist: they need this layer first.
    """

    def __init__(self, svc: Services, loopback: Interface) -> None:
        self.svc = svc
        self.loopback = loopback
        self.ifs: dict[Interface, If6] = {}
        self.local: dict[bytes, Addr6] = {}  # every address, tentative ones included
        # Static routes: (network, interface, gateway or None), longest prefix first.
        self.routes: list[tuple[ipaddress.IPv6Network, Interface, bytes | None]] = []
        # destination -> (interface, better first hop, expiry) (RFC 4861 §8), oldest first
        self.redirects: dict[bytes, tuple[If6, bytes, float]] = {}
        self._redirect_sweep: Timer | None = None
        self.pmtu = PmtuCache(svc, "ip6.pmtu.", "net.ipv6.route.mtu_expires")
        self.is_router = False
        # Called with an address whose DAD just ended (PREFERRED or DUPLICATE): lets a runtime wait for it.
        self.dad_listeners: list[Callable[[Addr6], None]] = []
        self.reassembler = Reassembler6(svc)
        self.walk = ExtWalk(svc, self.reassembler)  # input past the address checks (RFC 8200 §4)
        self.mld = Mld(svc, self)
        self.addrconf = Addrconf(svc, self, self.mld)

    def connect(self, icmp: Icmp6Input, udp: DatagramTransport, tcp: StreamTransport,
                udplite: DatagramTransport) -> None:
        """The layers input hands packets to (and asks for ICMPv6 errors), by next header."""
        self.reassembler.icmp = icmp
        self.walk.connect(icmp, udp, tcp, udplite)

    # -- configuration -------------------------------------------------------------------------------------
    def enable(self, iface: Interface, *, slaac: bool = False, now: float = 0.0) -> If6:
        """Start IPv6 on ``iface``: neighbour cache, link-local address with DAD, router solicitation."""
        if6 = self.ifs.get(iface)
        if if6 is not None:
            return if6
        if6 = If6(iface)
        self.ifs[iface] = if6
        if iface.kind is LinkKind.ETHERNET:
            if6.nd = NdCache(self.svc, iface, if6, self, self.addrconf)
            if6.slaac = slaac
            self.add_onlink(if6, ipaddress.IPv6Network("fe80::/64"), None)
            self.addrconf.start(if6, now)
        return if6

    def add_address(self, iface: Interface, address: ipaddress.IPv6Interface, *, origin: str = "static",
                    now: float = 0.0, dad: bool | None = None, optimistic: bool | None = None) -> Addr6:
        """Assign ``address``; on Ethernet it stays tentative until DAD says it is ours (RFC 4862 §5.4).

        ``optimistic``: usable at once while DAD runs (RFC 4429).  By default only autoconfigured
        addresses are, when ``optimistic_dad`` is set: RFC 4429 §3 advises against optimistic DAD
        for manually entered addresses, so a static one is optimistic only when asked.
        """
        packed = address.ip.packed
        if packed in self.local:
            raise ValueError(f"{address.ip} is already assigned")
        if6 = self.enable(iface, now=now)
        addr = Addr6(if6, packed, address.network.prefixlen, origin)
        if6.addrs.append(addr)
        self.local[packed] = addr
        if origin not in ("slaac", "temporary") and address.network.prefixlen < 128:
            if6.ra_prefixes.discard(address.network)  # now this address's: no RA may remove it
            self.add_onlink(if6, address.network, None)
        if dad is None:
            dad = iface.kind is LinkKind.ETHERNET and self.svc.sysctl.int("net.ipv6.conf.default.accept_dad") > 0
        if dad:
            if optimistic is None:
                optimistic = origin in ("link", "slaac", "temporary") and self.svc.sysctl.int(
                    "net.ipv6.conf.default.optimistic_dad") > 0
            self.addrconf.start_dad(addr, now, optimistic=optimistic)
        else:
            addr.state = AddrState.PREFERRED
            if iface.kind is LinkKind.ETHERNET:
                self.mld.join(if6, solicited_node(packed), now)
        return addr

    def remove_address(self, addr: Addr6, now: float) -> None:
        if6 = addr.if6
        if addr in if6.addrs:
            if6.addrs.remove(addr)
        if self.local.get(addr.ip) is addr:
            del self.local[addr.ip]
        for timer in (addr.valid_timer, addr.preferred_timer):
            if timer is not None:
                timer.cancel()
        if if6.iface.kind is LinkKind.ETHERNET:
            self.mld.leave(if6, solicited_node(addr.ip), now)

    def set_gateway(self, gateway: ipaddress.IPv6Address, iface: Interface | None = None) -> None:
        """A static default router; a link-local gateway needs ``iface`` (or the first Ethernet interface)."""
        gw = gateway.packed
        if iface is None:
            found = self._onlink_iface(gw)
            if found is None:
                raise ValueError(f"gateway {gateway} is not on a connected prefix")
            iface = found
        self.routes = [r for r in self.routes if r[0].prefixlen != 0]
        self.routes.append((ipaddress.IPv6Network("::/0"), iface, gw))
        self.routes.sort(key=lambda r: -r[0].prefixlen)

    def add_onlink(self, if6: If6, net: ipaddress.IPv6Network, timer: Timer | None) -> None:
        old = if6.onlink.get(net)
        if old is not None and old is not timer:
            old.cancel()
        if6.onlink[net] = timer

    def remove_onlink(self, if6: If6, net: ipaddress.IPv6Network) -> None:
        timer = if6.onlink.pop(net, None)
        if timer is not None:
            timer.cancel()

    def _onlink_iface(self, dst: bytes) -> Interface | None:
        if is_link_local6(dst) or dst[0] == 0xFF:
            return self._first_link()
        target = ipaddress.IPv6Address(dst)
        best: tuple[int, Interface] | None = None
        for if6 in self.ifs.values():
            for net in if6.onlink:
                if target in net and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, if6.iface)
        return best[1] if best else None

    def _first_link(self) -> Interface | None:
        for iface in self.ifs:
            if iface.kind is LinkKind.ETHERNET:
                return iface
        return None

    def router_gone(self, if6: If6, router: bytes) -> None:
        timer = if6.routers.pop(router, None)
        if timer is not None:
            timer.cancel()
        for dst in [d for d, (i, hop, _) in self.redirects.items() if i is if6 and hop == router]:
            del self.redirects[dst]

    def add_redirect(self, if6: If6, dst: bytes, hop: bytes, now: float) -> None:
        """A better first hop for ``dst`` (RFC 4861 §8.3), for ``gc_timeout`` seconds; at most
        ``max_redirects`` are kept, the oldest evicted (``nd.redirect_evicted``)."""
        redirects = self.redirects
        redirects.pop(dst, None)
        limit = self.svc.sysctl.int("net.ipv6.route.max_redirects")
        if 0 < limit <= len(redirects):
            del redirects[next(iter(redirects))]
            self.svc.stats["nd.redirect_evicted"] += 1
        until = now + self.svc.sysctl.float("net.ipv6.route.gc_timeout")
        redirects[dst] = (if6, hop, until)
        if self._redirect_sweep is None:
            self._redirect_sweep = self.svc.timers.schedule(until, self._sweep_redirects)

    def _sweep_redirects(self, now: float) -> None:
        """Forget the redirects whose time is up (the oldest come first); one timer while any is left."""
        self._redirect_sweep = None
        redirects = self.redirects
        while redirects:
            dst, (_, _, until) = next(iter(redirects.items()))
            if until > now:
                self._redirect_sweep = self.svc.timers.schedule(until, self._sweep_redirects)
                return
            del redirects[dst]
            self.svc.stats["nd.redirect_expired"] += 1

    # -- addresses -----------------------------------------------------------------------------------------
    def dad_ended(self, addr: Addr6, now: float) -> None:
        nd = addr.if6.nd
        if nd is not None:
            nd.dad_ended(now)  # packets held while only optimistic sources existed (RFC 4429 §2.3)
        for listener in list(self.dad_listeners):
            listener(addr)

    def tentative(self, iface: Interface) -> list[Addr6]:
        if6 = self.ifs.get(iface)
        return [a for a in if6.addrs if a.tentative] if if6 is not None else []

    def usable(self, addr: bytes) -> bool:
        a = self.local.get(addr)
        return a is not None and a.usable

    def select_source(self, dst: bytes) -> bytes | None:
        """RFC 6724 §5, the rules that matter for a host: 1 same address, 2 scope, 3 avoid deprecated
        (and optimistic, RFC 4429 §3, unless ``use_optimistic`` as Linux), 5 the outgoing interface,
        7 temporary addresses (RFC 8981) first when ``use_tempaddr`` is 2, public ones otherwise
        (as Linux), 8 longest matching prefix."""
        if self.usable(dst):
            return dst
        found = self.route(dst)
        if found is None:
            return None
        return source.select_source(
            self.local.values(), dst, found[0],
            avoid_optimistic=self.svc.sysctl.int("net.ipv6.conf.default.use_optimistic") == 0,
            prefer_temporary=self.svc.sysctl.int("net.ipv6.conf.default.use_tempaddr") >= 2)

    def source_on(self, if6: If6, dst: bytes) -> bytes | None:
        """A source on ``if6`` for link traffic (ND): the link-local, else any address past DAD.

        Never an optimistic address: its SLLAO could override a neighbour's cache entry for the
        address's rightful owner (RFC 4429 §2.2)."""
        ll = if6.link_local
        if ll is not None:
            return ll
        for a in if6.addrs:
            if a.confirmed:
                return a.ip
        return None

    def ns_source(self, if6: If6, prompt: bytes | None) -> bytes | None:
        """The source of a Neighbor Solicitation: that of the prompting packet when it is ours and past
        DAD (RFC 4861 §7.2.2), else another of the interface's; None when only optimistic ones exist."""
        if prompt is not None:
            addr = self.local.get(prompt)
            if addr is not None and addr.confirmed:
                return prompt
        return self.source_on(if6, prompt or UNSPECIFIED)

    # -- routing -----------------------------------------------------------------------------------------
    def route(self, dst: bytes) -> tuple[Interface, bytes] | None:
        """(interface, next hop) toward ``dst``; our own addresses go through loopback."""
        if self.usable(dst):
            return self.loopback, dst
        if dst[0] == 0xFF or is_link_local6(dst):
            iface = self._first_link()
            return (iface, dst) if iface is not None else None
        redirect = self.redirects.get(dst)
        if redirect is not None:
            return redirect[0].iface, redirect[1]
        target = ipaddress.IPv6Address(dst)
        best: tuple[int, Interface, bytes] | None = None
        for if6 in self.ifs.values():
            for net in if6.onlink:
                if target in net and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, if6.iface, dst)
        for net, iface, gw in self.routes:
            if target in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, iface, gw or dst)
                break
        if best is not None:
            return best[1], best[2]
        # RFC 4861 §6.3.6: a default router, preferring one known to be reachable.
        fallback: tuple[Interface, bytes] | None = None
        for if6 in self.ifs.values():
            for router in if6.routers:
                if if6.nd is not None and if6.nd.is_reachable(router):
                    return if6.iface, router
                if fallback is None:
                    fallback = (if6.iface, router)
        return fallback

    # -- path MTU (RFC 8201) ---------------------------------------------------------------------------
    def path_mtu(self, dst: bytes) -> int | None:
        found = self.route(dst)
        if found is None:
            return None
        if6 = self.ifs.get(found[0])
        return self.pmtu.clamp(dst, if6.mtu if if6 is not None else found[0].mtu)

    def packet_too_big(self, dst: bytes, mtu: int, now: float) -> int | None:
        """A Packet Too Big about ``dst``: the lowered PMTU, or None when nothing changes."""
        current = self.path_mtu(dst)
        if current is None:
            return None
        mtu = max(mtu, IP6_MIN_MTU)  # RFC 8201 §4: never below the IPv6 minimum link MTU
        if mtu >= current:
            self.svc.stats["ip6.pmtu.ignored"] += 1
            return None
        self.pmtu.lower(dst, mtu, now)
        return mtu

    # -- input ---------------------------------------------------------------------------------------
    def receive(self, iface: Interface, buf: memoryview, now: float, *, link_multicast: bool = False,
                csum_ok: bool = False) -> None:
        """One packet from ``iface``; ``link_multicast``: it came in a link-layer multicast/broadcast frame;
        ``csum_ok``: its device vouches for the transport checksum (a reassembled packet never keeps it)."""
        stats = self.svc.stats
        try:
            pkt = Ip6Packet.parse(buf)
        except Malformed as exc:
            stats["ip6.drop." + exc.reason] += 1
            return
        pkt.link_multicast = link_multicast
        pkt.csum_ok = csum_ok
        stats["ip6.rx"] += 1
        if6 = self.ifs.get(iface)
        if if6 is None:
            stats["ip6.drop.disabled"] += 1
            return
        dst, src = pkt.dst, pkt.src
        mcast = dst[0] == 0xFF
        if mcast:
            if dst not in if6.groups:
                stats["ip6.drop.not_for_us"] += 1
                return
        else:
            addr = self.local.get(dst)
            if addr is None:
                stats["ip6.drop.not_for_us"] += 1
                return
            if not addr.usable:
                stats["ip6.drop.tentative_dst"] += 1  # RFC 4862 §5.4: not ours until DAD says so
                return
        if src[0] == 0xFF:
            stats["ip6.drop.bad_source"] += 1  # RFC 4291 §2.7: never a source
            return
        if src == LOOPBACK6 and iface.kind is not LinkKind.IP:
            stats["ip6.drop.martian_source"] += 1
            return
        self.walk.process(if6, pkt, pkt.next_header, IP6_HEADER_LEN, 6, mcast, now)

    # -- output ---------------------------------------------------------------------------------------
    def output(
        self,
        src: bytes,
        dst: bytes,
        proto: int,
        payload: bytes | bytearray | memoryview,
        now: float,
        *,
        tc: int = 0,
        hop_limit: int | None = None,
        hbh: bytes = b"",
        iface: Interface | None = None,
        gso_size: int = 0,
        room: int = 0,
    ) -> int:
        """Send one packet; 0 or an errno.  ``hbh`` is a hop-by-hop header whose next-header octet is ``proto``.

        ``iface`` forces the link (ND and MLD traffic, whose next hop is the destination itself).
        ``gso_size``: ``payload`` is a TCP super-segment for the route's TSO device (see
        :class:`~pytcp_green.stack.interface.GsoFrame`), that many payload bytes per wire segment.
        ``room``: the packet's payload is ``payload[room:]``, the bytes in front free for the headers
        (see :meth:`pytcp_green.stack.ipv4.ip.Ip4.output`).
        """
        stats = self.svc.stats
        if iface is not None:
            nexthop = dst
        else:
            found = self.route(dst)
            if found is None:
                stats["ip6.tx.no_route"] += 1
                return errno.ENETUNREACH
            iface, nexthop = found
        if6 = self.ifs.get(iface)
        size = len(hbh) + len(payload) - room
        if size > MAX_PAYLOAD:
            return errno.EMSGSIZE
        if hop_limit is None:
            hop_limit = (if6.hop_limit if if6 is not None and if6.hop_limit else None) or self.svc.sysctl.int(
                "net.ipv6.conf.default.hop_limit")
        mtu = self.pmtu.clamp(dst, if6.mtu if if6 is not None else iface.mtu)
        lh = iface.link_header_len
        first_nh = NH_HOP_BY_HOP if hbh else proto
        if gso_size and not hbh and IP6_HEADER_LEN + size <= iface.tso_max:
            gso = frame_for(payload, room, lh + IP6_HEADER_LEN, GsoFrame)
            gso.gso_size, gso.l3, gso.l4 = gso_size, lh, lh + IP6_HEADER_LEN
            write_ip6(gso, lh, src=src, dst=dst, next_header=proto, payload_len=size, hop_limit=hop_limit,
                      traffic_class=tc)
            self._link_output(iface, nexthop, gso, now)
            stats["ip6.tx"] += 1
            stats["ip6.tx.gso"] += 1
            return 0
        if IP6_HEADER_LEN + size <= mtu:
            start = lh + IP6_HEADER_LEN
            # With a hop-by-hop header the transport's room is one header short: frame_for copies.
            frame = frame_for(payload, room, start + len(hbh), bytearray)
            frame[start : start + len(hbh)] = hbh
            write_ip6(frame, lh, src=src, dst=dst, next_header=first_nh, payload_len=size, hop_limit=hop_limit,
                      traffic_class=tc)
            self._link_output(iface, nexthop, frame, now)
            stats["ip6.tx"] += 1
            return 0
        # RFC 8200 §4.5: the hop-by-hop header is per-fragment, the rest is fragmented in
        # multiples of 8 octets; the identifier is random (RFC 7739 §5.1).
        unfrag = bytes((NH_FRAGMENT,)) + hbh[1:] if hbh else b""
        chunk = (mtu - IP6_HEADER_LEN - len(unfrag) - FRAGMENT_HEADER_LEN) & ~7
        ident = self.svc.rng.getrandbits(32)
        view = memoryview(payload)[room:]
        total = len(view)
        for offset in range(0, total, chunk):
            piece = view[offset : offset + chunk]
            plen = len(unfrag) + FRAGMENT_HEADER_LEN + len(piece)
            frame = bytearray(lh + IP6_HEADER_LEN + plen)
            pos = lh + IP6_HEADER_LEN
            frame[pos : pos + len(unfrag)] = unfrag
            pos += len(unfrag)
            write_fragment_header(frame, pos, proto, offset, offset + chunk < total, ident)
            frame[pos + FRAGMENT_HEADER_LEN :] = piece
            write_ip6(frame, lh, src=src, dst=dst, next_header=NH_HOP_BY_HOP if hbh else NH_FRAGMENT,
                      payload_len=plen, hop_limit=hop_limit, traffic_class=tc)
            self._link_output(iface, nexthop, frame, now)
            stats["ip6.tx.fragment"] += 1
        stats["ip6.tx"] += 1
        return 0

    def output_packet(self, packet: bytes | bytearray | memoryview, dst: bytes, now: float) -> int:
        """Send a packet whose IPv6 header the caller wrote (an ``IPPROTO_RAW`` socket, or
        ``IPV6_HDRINCL``), routed toward ``dst``; 0 or an errno.  As Linux's rawv6_send_hdrinc it goes
        out unchanged; larger than the interface MTU is EMSGSIZE (never fragmented), shorter than an
        IPv6 header EINVAL."""
        if len(packet) < IP6_HEADER_LEN:
            return errno.EINVAL
        found = self.route(dst)
        if found is None:
            self.svc.stats["ip6.tx.no_route"] += 1
            return errno.ENETUNREACH
        iface, nexthop = found
        if len(packet) > iface.mtu:
            return errno.EMSGSIZE
        self._link_output(iface, nexthop, frame_for(packet, 0, iface.link_header_len, bytearray), now)
        self.svc.stats["ip6.tx"] += 1
        self.svc.stats["ip6.tx.hdrincl"] += 1
        return 0

    def _link_output(self, iface: Interface, nexthop: bytes, frame: bytearray, now: float) -> None:
        if iface.kind is LinkKind.IP:
            iface.tx.append(frame)
            return
        assert iface.mac is not None
        if nexthop[0] == 0xFF:
            write_ethernet(frame, 0, multicast_mac6(nexthop), iface.mac, ETHERTYPE_IP6)
            iface.tx.append(frame)
            return
        if6 = self.ifs.get(iface)
        if if6 is None or if6.nd is None:
            self.svc.stats["ip6.tx.no_neighbour_cache"] += 1
            return
        if6.nd.output(nexthop, frame, now)

    # -- helpers for ND, MLD and addrconf ---------------------------------------------------------------
    def send_icmp(self, if6: If6, src: bytes, dst: bytes, kind: int, code: int, rest: int, body: bytes, now: float,
                  *, hop_limit: int = 255, hbh: bytes = b"") -> int:
        """An ICMPv6 message on ``if6``'s link (ND, MLD): next hop = destination, on that interface."""
        msg = build_icmp6(kind, code, rest, body, src, dst)
        return self.output(src, dst, NH_ICMP6, msg, now, hop_limit=hop_limit, hbh=hbh, iface=if6.iface)

    def send_ns(self, if6: If6, target: bytes, unicast_mac: bytes | None, now: float, *, dad: bool = False,
                src: bytes | None = None) -> None:
        """A Neighbor Solicitation (RFC 4861 §7.2.2); ``dad``: from ::, bare (RFC 4862 §5.4.2)."""
        assert if6.iface.mac is not None
        if dad:
            src = UNSPECIFIED
        else:
            src = self.ns_source(if6, src)
            if src is None:
                # An NS from :: is a DAD probe (RFC 4862 §5.4.2), and one from an optimistic address is
                # forbidden (RFC 4429 §2.2): with no other source, no solicitation (as Linux's ndisc).
                self.svc.stats["nd.tx.ns_no_source"] += 1
                return
        body = target if src == UNSPECIFIED else target + nd_opt_lla(OPT_SLLA, if6.iface.mac)
        dst = target if unicast_mac is not None else solicited_node(target)
        self.send_icmp(if6, src, dst, TYPE_NEIGHBOR_SOLICIT, 0, 0, body, now)
        self.svc.stats["nd.tx.ns_dad" if dad else "nd.tx.ns"] += 1

    def table(self) -> list[str]:
        """Addresses, one "if addr/len origin state" line each, for tools and tests."""
        return [f"{a.if6.iface.name} {a.interface} {a.origin} {a.state.value}" for a in self.local.values()]


def link_name(addr: bytes) -> str:
    return str(ipaddress.IPv6Address(addr))
