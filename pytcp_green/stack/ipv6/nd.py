"""IPv6 Neighbor Discovery: the neighbour cache, solicitations and advertisements (RFC 4861 §7).

The cache is :class:`pytcp_green.stack.ipv4.arp.ArpCache`'s state machine (RFC 4861 §7.3.2 NUD:
INCOMPLETE, REACHABLE, STALE, DELAY, PROBE, with queued packets while unresolved) — the same
logic for both families, so it is shared by subclassing; what differs is how a neighbour is
asked (a Neighbor Solicitation to the solicited-node group, or unicast while PROBE, §7.2.2)
and how answers are merged (§7.2.5 with the Override and Solicited flags).

Receive-side validation follows §7.1.1 (NS) and §7.1.2 (NA): hop limit 255 (so the message
cannot come from off-link), code 0, target not multicast, and for an NS from the unspecified
address a solicited-node destination and no source link-layer option.  An NS or NA about an
address we hold as *tentative* is Duplicate Address Detection's business (RFC 4862 §5.4.3-4)
and is handed to :mod:`pytcp_green.stack.ipv6.addrconf`.

Optimistic addresses (RFC 4429 §2.2) must not disturb the caches of neighbours that may know
the address's rightful owner: an NS for one from ``::`` means it is a duplicate, one from a
unicast source is answered with the Override flag clear, and no NS ever comes from it.  A packet
from an optimistic address to a neighbour not yet resolved is therefore resolved with another,
confirmed source when the interface has one; otherwise it goes through a default router whose
link-layer address is known (§2.3), or waits until a DAD ends (the RFC's other choice).

An address past DAD (static, link-local, SLAAC, temporary alike) is never given up because someone
else claims it (RFC 4862 §5.4.5, as Linux): a DAD probe for it is answered with an NA to all nodes
(§5.4.3 via RFC 4861 §7.2.4), an NA for it is ignored; both are counted
(``nd.rx.dad_probe_for_our_address``, ``nd.rx.na_for_our_address``) and logged at warning level at
most once per WARN_INTERVAL, so a flood of forged frames cannot flood the log either.  The IsRouter
flag lives with a neighbour entry and goes with it, so forged routers cannot grow ``routers``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.ipv4.arp import ArpCache, Neighbour, NeighState
from pytcp_green.stack.ipv6.addr import LinkSender
from pytcp_green.stack.wire.ethernet import ETHERTYPE_IP6
from pytcp_green.stack.wire.icmp6 import (
    OPT_TLLA,
    TYPE_NEIGHBOR_ADVERT,
    NeighborAdvert,
    NeighborSolicit,
    na_rest,
    nd_opt_lla,
)
from pytcp_green.stack.wire.ip6 import ALL_NODES, UNSPECIFIED, is_multicast6, solicited_node

if TYPE_CHECKING:
    from pytcp_green.stack.interface import Interface
    from pytcp_green.stack.ipv6.addr import Addr6, If6
    from pytcp_green.stack.services import Services

log = logging.getLogger(__name__)

WARN_INTERVAL = 10.0  # seconds between two warnings about our addresses claimed (RFC 5227's DEFEND_INTERVAL)


class NdHost(LinkSender, Protocol):
    """What Neighbor Discovery needs from the IPv6 layer (:class:`~pytcp_green.stack.ipv6.ip.Ip6Layer`)."""

    local: dict[bytes, Addr6]
    is_router: bool

    def usable(self, addr: bytes) -> bool: ...

    def ns_source(self, if6: If6, prompt: bytes | None) -> bytes | None: ...

    def router_gone(self, if6: If6, router: bytes) -> None: ...


class DadConflicts(Protocol):
    """Who decides what an NS or NA about one of our DAD-pending addresses means (:mod:`.addrconf`)."""

    def dad_conflict(self, addr: Addr6, how: str, now: float) -> None: ...


class NdCache(ArpCache):
    """The IPv6 neighbour cache of one Ethernet interface."""

    ETHERTYPE = ETHERTYPE_IP6
    STATS = "nd"
    SYSCTL = "net.ipv6.neigh.default"

    def __init__(self, svc: Services, iface: Interface, if6: If6, ip6: NdHost, dad: DadConflicts) -> None:
        super().__init__(svc, iface, None)
        self.if6 = if6
        self.ip6 = ip6
        self.dad = dad
        self.routers: set[bytes] = set()  # neighbours whose IsRouter flag is set (§7.2.5)
        # (next hop, frame) waiting for a DAD to end: only optimistic sources could resolve them.
        self.held: deque[tuple[bytes, bytearray]] = deque()
        self._warned_at: float | None = None  # when a claim on one of our addresses was last logged

    def output(self, nexthop: bytes, frame: bytearray, now: float) -> None:
        if nexthop not in self.entries and self._optimistic_only(frame):
            router = self._router_with_mac(nexthop)
            if router is None:
                # RFC 4429 §2.3: no resolution from an optimistic address; keep it until a DAD ends.
                if len(self.held) >= int(self.knob("unres_qlen")):
                    self.held.popleft()
                    self.svc.stats["nd.drop.optimistic_held_full"] += 1
                self.held.append((nexthop, frame))
                self.svc.stats["nd.optimistic_held"] += 1
                return
            self.svc.stats["nd.tx.optimistic_via_router"] += 1  # §2.3: the router forwards or redirects
            nexthop = router
        self._prompt: bytearray | None = frame  # the packet prompting a solicitation, if one is needed
        try:
            super().output(nexthop, frame, now)
        finally:
            self._prompt = None

    def _optimistic_only(self, frame: bytearray) -> bool:
        """True when resolving for ``frame`` would need an NS from an optimistic address (RFC 4429 §2.2)."""
        ip6 = self.ip6
        return self.if6.has_optimistic and ip6.ns_source(self.if6, bytes(frame[22:38])) is None

    def _router_with_mac(self, nexthop: bytes) -> bytes | None:
        for router in self.if6.routers:
            entry = self.entries.get(router)
            if router != nexthop and entry is not None and entry.mac is not None:
                return router
        return None

    def dad_ended(self, now: float) -> None:
        """A DAD ended on the interface: what was held may be resolvable now (or must be dropped)."""
        held, self.held = self.held, deque()
        for nexthop, frame in held:
            if not self.ip6.usable(bytes(frame[22:38])):
                self.svc.stats["nd.drop.optimistic_source_gone"] += 1  # withdrawn after DAD failed
                continue
            self.output(nexthop, frame, now)

    def knob(self, name: str) -> float:
        # A router may announce ReachableTime and RetransTimer (RFC 4861 §6.3.4); they override.
        override = self.if6.nd_overrides.get(name)
        return override if override is not None else super().knob(name)

    # -- asking -----------------------------------------------------------------------------------------
    def _solicit(self, entry: Neighbour, now: float) -> None:
        """One NS: multicast to the solicited-node group while INCOMPLETE, unicast while PROBE (§7.2.2)."""
        entry.probes += 1
        unicast = entry.state is NeighState.PROBE and entry.mac is not None
        # §7.2.2: from the source of the packet that prompted the solicitation, when it is ours.
        prompt = getattr(self, "_prompt", None) or (entry.queue[-1] if entry.queue else None)
        src = bytes(prompt[22:38]) if prompt is not None else None
        self.ip6.send_ns(self.if6, entry.ip, entry.mac if unicast else None, now, src=src)
        self._arm(entry, now + self.knob("retrans_time"))

    # -- receiving ----------------------------------------------------------------------------------------
    def receive_ns(self, src: bytes, dst: bytes, hop_limit: int, ns: NeighborSolicit, now: float) -> None:
        stats = self.svc.stats
        target = ns.target
        if hop_limit != 255 or is_multicast6(target):
            stats["nd.drop.invalid_ns"] += 1
            return
        unspecified = src == UNSPECIFIED
        if unspecified and (dst != solicited_node(target) or ns.options.slla is not None):
            stats["nd.drop.invalid_ns"] += 1  # §7.1.1: a DAD probe goes to the solicited-node group, bare
            return
        ip6 = self.ip6
        addr = ip6.local.get(target)
        if addr is None or addr.if6 is not self.if6:
            stats["nd.rx.ns_not_for_us"] += 1
            return
        if addr.tentative:
            if unspecified:
                self.dad.dad_conflict(addr, "ns", now)  # RFC 4862 §5.4.3: someone else probes it too
            else:
                stats["nd.rx.ns_for_tentative"] += 1  # §5.4.3: ignore, we cannot answer yet
            return
        if addr.optimistic and unspecified:
            self.dad.dad_conflict(addr, "ns", now)  # RFC 4429 §2.2: never answered, a duplicate
            return
        stats["nd.rx.ns"] += 1
        if unspecified:
            stats["nd.rx.dad_probe_for_our_address"] += 1  # defended by the NA below, kept
            self._claimed(addr, "probes for", now)
        if not unspecified and ns.options.slla is not None:
            self.learn(src, ns.options.slla, False, now)  # §7.2.3: create or update as STALE
        # §7.2.4: answer to the solicitor, or to all nodes when it has no address yet (S clear then).
        # For an optimistic address the Override flag stays clear (RFC 4429 §2.2), so a cache that
        # holds the rightful owner's link-layer address keeps it.
        reply_to = ALL_NODES if unspecified else src
        body = target + nd_opt_lla(OPT_TLLA, self.mac)
        ip6.send_icmp(self.if6, target, reply_to, TYPE_NEIGHBOR_ADVERT, 0,
                      na_rest(ip6.is_router, not unspecified, not addr.optimistic), body, now, hop_limit=255)
        stats["nd.tx.na"] += 1
        if addr.optimistic:
            stats["nd.tx.na_optimistic"] += 1

    def receive_na(self, dst: bytes, hop_limit: int, na: NeighborAdvert, now: float) -> None:
        stats = self.svc.stats
        target = na.target
        if hop_limit != 255 or is_multicast6(target) or (is_multicast6(dst) and na.solicited):
            stats["nd.drop.invalid_na"] += 1  # §7.1.2
            return
        ip6 = self.ip6
        addr = ip6.local.get(target)
        if addr is not None and addr.if6 is self.if6:
            if addr.dad_pending:
                # RFC 4862 §5.4.4 (and RFC 4429 §2.2 for an optimistic one): the address is taken.
                self.dad.dad_conflict(addr, "na", now)
            else:
                stats["nd.rx.na_for_our_address"] += 1  # someone else claims it; logged, not acted on
                self._claimed(addr, "advertises", now)
            return
        entry = self.entries.get(target)
        if entry is None:
            stats["nd.rx.na_unsolicited_unknown"] += 1  # §7.2.5: no entry, nothing to update
            return
        stats["nd.rx.na"] += 1
        tlla = na.options.tlla
        if entry.state is NeighState.INCOMPLETE:
            if tlla is None:
                stats["nd.drop.na_without_tlla"] += 1
                return
            self.learn(target, tlla, na.solicited, now)
        elif not na.override and tlla is not None and tlla != entry.mac:
            # §7.2.5: a different address without Override does not replace ours; a REACHABLE entry
            # becomes STALE so that NUD checks which one is right.
            if entry.state is NeighState.REACHABLE:
                self._enter(entry, NeighState.STALE, now, self.knob("gc_stale_time"))
            return
        else:
            self.learn(target, tlla if tlla is not None else entry.mac or b"", na.solicited, now)
        if na.router:
            self.routers.add(target)
        elif target in self.routers or target in self.if6.routers:
            # §7.2.5: IsRouter went from true to false: stop using it as a default router.
            self.routers.discard(target)
            ip6.router_gone(self.if6, target)

    def learn_router(self, ip: bytes, mac: bytes | None, now: float) -> None:
        """An RA's source link-layer option (RFC 4861 §6.3.4): update or create a STALE entry, IsRouter set."""
        if mac is not None:
            self.learn(ip, mac, False, now)
        if ip in self.entries:  # a full table may have refused it
            self.routers.add(ip)

    def _forget(self, entry: Neighbour, counter: str) -> None:
        super()._forget(entry, counter)
        self.routers.discard(entry.ip)

    def _claimed(self, addr: Addr6, how: str, now: float) -> None:
        """Someone else wants an address that passed DAD: RFC 4862 §5.4.5 says log it; it stays ours."""
        if self._warned_at is not None and now - self._warned_at < WARN_INTERVAL:
            return
        self._warned_at = now
        log.warning("%s: another node %s our address %s (%s); keeping it", self.iface.name, how,
                    ipaddress.IPv6Address(addr.ip), addr.origin)

    def is_reachable(self, ip: bytes) -> bool:
        entry = self.entries.get(ip)
        return entry is not None and entry.state is not NeighState.INCOMPLETE
