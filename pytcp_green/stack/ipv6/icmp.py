"""ICMPv6 for a host (RFC 4443): echo, error generation under §2.4, error delivery, ND/MLD dispatch.

Errors are never sent (RFC 4443 §2.4 e) about an ICMPv6 error or a redirect, about a packet
sent to a multicast address or in a link-layer multicast or broadcast frame (except Packet Too
Big and a Parameter Problem code 2 for an option whose action bits are 10, §2.4 e.3-e.5), or to
a source that does not name one node (unspecified or multicast).  They go through a token
bucket (§2.4 f; the rate and burst are Linux's global ICMP limits
``net.ipv4.icmp_msgs_per_sec``/``icmp_msgs_burst``, which Linux applies to ICMPv6 too) and
quote as much of the invoking packet as keeps the error within the minimum MTU (§2.4 c).

Errors received are mapped to errno values as Linux's ``icmpv6_err_convert`` does and handed
to the transport owning the quoted flow; Packet Too Big feeds path MTU discovery (RFC 8201)
first.  ND (RFC 4861) and MLD (RFC 3810) messages go to their modules.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pytcp_green.stack.contracts import SO_EE_ORIGIN_ICMP6, ErrorDelivery, IcmpOrigin
from pytcp_green.stack.icmp_ratelimit import IcmpRateLimit
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.icmp6 import (
    CODE_UNKNOWN_NEXT_HEADER,
    ICMP6_HEADER_LEN,
    TYPE_DEST_UNREACH,
    TYPE_ECHO_REPLY,
    TYPE_ECHO_REQUEST,
    TYPE_MLD_QUERY,
    TYPE_MLD_V1_DONE,
    TYPE_MLD_V1_REPORT,
    TYPE_MLD_V2_REPORT,
    TYPE_NEIGHBOR_ADVERT,
    TYPE_NEIGHBOR_SOLICIT,
    TYPE_PACKET_TOO_BIG,
    TYPE_PARAM_PROBLEM,
    TYPE_REDIRECT,
    TYPE_ROUTER_ADVERT,
    TYPE_ROUTER_SOLICIT,
    TYPE_TIME_EXCEEDED,
    Icmp6Message,
    MldQuery,
    NeighborAdvert,
    NeighborSolicit,
    Redirect,
    RouterAdvert,
    build_icmp6,
)
from pytcp_green.stack.wire.ip6 import (
    IP6_HEADER_LEN,
    IP6_MIN_MTU,
    NH_ICMP6,
    NH_TCP,
    NH_UDP,
    UNSPECIFIED,
    Ip6Packet,
    is_link_local6,
    walk_extensions,
)
from pytcp_green.stack.wire.udplite import PROTO_UDPLITE as NH_UDPLITE

if TYPE_CHECKING:
    from pytcp_green.stack.ipv6.addr import If6
    from pytcp_green.stack.ipv6.ip import Ip6Layer
    from pytcp_green.stack.services import Services

MAX_QUOTE = IP6_MIN_MTU - IP6_HEADER_LEN - ICMP6_HEADER_LEN

# Destination unreachable codes -> errno (Linux icmpv6_err_convert, tab_unreach).
UNREACH_ERRNO = {
    0: errno.ENETUNREACH,
    1: errno.EACCES,
    2: errno.EHOSTUNREACH,
    3: errno.EHOSTUNREACH,
    4: errno.ECONNREFUSED,
    5: errno.EACCES,
    6: errno.ECONNREFUSED,
}


class Icmp6Layer(ErrorDelivery):
    """ICMPv6 over ``ip6``; the transports errors are delivered to are wired in by :meth:`connect`."""

    def __init__(self, svc: Services, ip6: Ip6Layer) -> None:
        self.svc = svc
        self.ip6 = ip6
        self.ratelimit = IcmpRateLimit(svc.sysctl)  # paces the errors sent

    # -- input ---------------------------------------------------------------------------------------
    def receive(self, if6: If6, pkt: Ip6Packet, payload: memoryview, now: float) -> None:
        stats = self.svc.stats
        src, dst = pkt.src, pkt.dst
        try:
            msg = Icmp6Message.parse(payload, src, dst)
        except Malformed as exc:
            stats["icmp6.drop." + exc.reason] += 1
            return
        kind = msg.type
        try:
            if kind == TYPE_ECHO_REQUEST:
                self._echo(pkt, msg, now)
            elif kind == TYPE_ECHO_REPLY:
                stats["icmp6.rx.echo_reply"] += 1
            elif msg.is_error:
                stats[f"icmp6.rx.error.{kind}.{msg.code}"] += 1
                self._deliver_error(msg, pkt.src, now)
            elif kind in (TYPE_NEIGHBOR_SOLICIT, TYPE_NEIGHBOR_ADVERT, TYPE_ROUTER_ADVERT, TYPE_REDIRECT,
                          TYPE_ROUTER_SOLICIT):
                self._nd(if6, pkt, msg, now)
            elif kind == TYPE_MLD_QUERY:
                self.ip6.mld.receive_query(if6, pkt, MldQuery.parse(msg), now)
            elif kind in (TYPE_MLD_V1_REPORT, TYPE_MLD_V1_DONE, TYPE_MLD_V2_REPORT):
                stats["icmp6.rx.mld_report"] += 1  # RFC 3810 §6: a host ignores other hosts' MLDv2 reports
                if kind == TYPE_MLD_V1_REPORT and len(msg.body) >= 16:
                    # but an MLDv1 Report can suppress ours (RFC 2710 §4)
                    self.ip6.mld.receive_v1_report(if6, bytes(msg.body[:16]))
            else:
                stats["icmp6.rx.other"] += 1  # RFC 4443 §2.4 b: unknown informational, discarded
        except Malformed as exc:
            stats["icmp6.drop." + exc.reason] += 1

    def _nd(self, if6: If6, pkt: Ip6Packet, msg: Icmp6Message, now: float) -> None:
        stats = self.svc.stats
        if msg.code != 0:
            stats["nd.drop.bad_code"] += 1  # RFC 4861 §6.1, §7.1: code must be 0
            return
        kind = msg.type
        nd = if6.nd
        if nd is None:
            stats["nd.drop.no_link_layer"] += 1
            return
        if kind == TYPE_NEIGHBOR_SOLICIT:
            nd.receive_ns(pkt.src, pkt.dst, pkt.hop_limit, NeighborSolicit.parse(msg), now)
        elif kind == TYPE_NEIGHBOR_ADVERT:
            nd.receive_na(pkt.dst, pkt.hop_limit, NeighborAdvert.parse(msg), now)
        elif kind == TYPE_ROUTER_ADVERT:
            self.ip6.addrconf.receive_ra(if6, pkt.src, pkt.hop_limit, RouterAdvert.parse(msg), now)
        elif kind == TYPE_REDIRECT:
            self._redirect(if6, pkt, Redirect.parse(msg), now)
        else:
            stats["nd.rx.rs_ignored"] += 1  # RFC 4861 §6.2.6: only routers answer solicitations

    def _redirect(self, if6: If6, pkt: Ip6Packet, rd: Redirect, now: float) -> None:
        """RFC 4861 §8.1 validation, §8.3 processing: a better first hop for one destination."""
        stats = self.svc.stats
        ip6 = self.ip6
        found = ip6.route(rd.dest)
        current = found[1] if found is not None else None
        if (not is_link_local6(pkt.src) or pkt.hop_limit != 255 or rd.dest[0] == 0xFF
                or not (is_link_local6(rd.target) or rd.target == rd.dest) or current != pkt.src):
            stats["nd.drop.invalid_redirect"] += 1
            return
        stats["nd.rx.redirect"] += 1
        assert if6.nd is not None
        if rd.target == rd.dest:
            if rd.options.tlla is not None:
                if6.nd.learn(rd.target, rd.options.tlla, False, now)
            ip6.add_redirect(if6, rd.dest, rd.dest, now)  # the destination is on-link
        else:
            if6.nd.learn_router(rd.target, rd.options.tlla, now)
            ip6.add_redirect(if6, rd.dest, rd.target, now)

    def _echo(self, pkt: Ip6Packet, msg: Icmp6Message, now: float) -> None:
        stats = self.svc.stats
        stats["icmp6.rx.echo_request"] += 1
        sysctl = self.svc.sysctl
        mcast = pkt.dst[0] == 0xFF
        if sysctl.int("net.ipv6.icmp.echo_ignore_all") or (mcast and sysctl.int("net.ipv6.icmp.echo_ignore_multicast")):
            stats["icmp6.drop.echo_ignored"] += 1
            return
        # RFC 4443 §4.2: reply from the address the request went to; for a group, one of ours.
        src = self.ip6.select_source(pkt.src) if mcast else pkt.dst
        if src is None:
            return
        reply = build_icmp6(TYPE_ECHO_REPLY, 0, msg.rest, msg.body, src, pkt.src)
        if self.ip6.output(src, pkt.src, NH_ICMP6, reply, now) == 0:
            stats["icmp6.tx.echo_reply"] += 1

    def _deliver_error(self, msg: Icmp6Message, sender: bytes, now: float) -> None:
        """Hand an error to the transport that sent the quoted packet (RFC 4443 §2.4 d, §3)."""
        stats = self.svc.stats
        quoted = msg.body
        if len(quoted) < IP6_HEADER_LEN or quoted[0] >> 4 != 6:
            stats["icmp6.drop.short_quote"] += 1
            return
        src, dst = bytes(quoted[8:24]), bytes(quoted[24:40])
        try:
            _, upper, off = walk_extensions(quoted, quoted[6])
        except Malformed:
            stats["icmp6.drop.short_quote"] += 1
            return
        if off + 4 > len(quoted):
            stats["icmp6.drop.short_quote"] += 1
            return
        if not self.ip6.usable(src):
            stats["icmp6.drop.error_not_ours"] += 1  # RFC 5927 §4.1: a quote of something we never sent
            return
        mtu: int | None = None
        kind = msg.type
        if kind == TYPE_DEST_UNREACH:
            err = UNREACH_ERRNO.get(msg.code, errno.EHOSTUNREACH)
        elif kind == TYPE_PACKET_TOO_BIG:
            err = errno.EMSGSIZE
            learned = self.ip6.packet_too_big(dst, msg.mtu, now)
            mtu = learned or self.ip6.path_mtu(dst)
        elif kind == TYPE_PARAM_PROBLEM:
            err = errno.ECONNREFUSED if msg.code == CODE_UNKNOWN_NEXT_HEADER else errno.EPROTO
        elif kind == TYPE_TIME_EXCEEDED:
            err = errno.EHOSTUNREACH
        else:
            stats["icmp6.rx.error_unknown_type"] += 1
            return
        transport = quoted[off:]
        if upper in (NH_UDP, NH_UDPLITE):
            if kind != TYPE_PACKET_TOO_BIG:  # UDP has nothing to do with a smaller PMTU but fragment
                origin = IcmpOrigin(SO_EE_ORIGIN_ICMP6, kind, msg.code, 0, sender)
                (self.udp if upper == NH_UDP else self.udplite).icmp_error(src, dst, transport, err, now, origin)
        elif upper == NH_TCP:
            self.tcp.icmp_error(src, dst, transport, err, mtu, now)

    # -- output --------------------------------------------------------------------------------------
    def send_error(self, pkt: Ip6Packet, kind: int, code: int, rest: int, now: float, *,
                   allow_multicast: bool = False) -> None:
        """Answer ``pkt`` with an ICMPv6 error unless RFC 4443 §2.4 (e) forbids it or the rate limit bites."""
        stats = self.svc.stats
        src, dst = pkt.src, pkt.dst
        if dst[0] == 0xFF and not (allow_multicast or kind == TYPE_PACKET_TOO_BIG):
            stats["icmp6.error_suppressed.multicast"] += 1
            return
        if pkt.link_multicast and not (allow_multicast or kind == TYPE_PACKET_TOO_BIG):
            # e.4/e.5: sent as a link-layer multicast or broadcast, with e.3's exceptions
            stats["icmp6.error_suppressed.link_multicast"] += 1
            return
        if src == UNSPECIFIED or src[0] == 0xFF:
            stats["icmp6.error_suppressed.source"] += 1
            return
        if self._about_error(pkt):
            stats["icmp6.error_suppressed.about_error"] += 1
            return
        if not self.ratelimit.take(now):
            stats["icmp6.error_suppressed.ratelimit"] += 1
            return
        ip6 = self.ip6
        source = dst if ip6.usable(dst) else ip6.select_source(src)
        if source is None:
            return
        quote = pkt.packet[:MAX_QUOTE]
        msg = build_icmp6(kind, code, rest, quote, source, src)
        if ip6.output(source, src, NH_ICMP6, msg, now) == 0:
            stats[f"icmp6.tx.error.{kind}.{code}"] += 1

    @staticmethod
    def _about_error(pkt: Ip6Packet) -> bool:
        """True when ``pkt`` is itself an ICMPv6 error or a redirect (RFC 4443 §2.4 e.1, e.2)."""
        try:
            _, upper, off = walk_extensions(pkt.packet, pkt.next_header)
        except Malformed:
            return False
        if upper != NH_ICMP6 or off >= len(pkt.packet):
            return False
        kind = pkt.packet[off]
        return kind < 128 or kind == TYPE_REDIRECT

