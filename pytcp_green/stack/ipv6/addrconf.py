"""Stateless address autoconfiguration (RFC 4862) and router discovery (RFC 4861 §6.3, RFC 7559).

* Interface identifiers: modified EUI-64 from the MAC (RFC 4291 Appendix A, the default, as
  Linux's ``addr_gen_mode`` 0), or RFC 7217 stable opaque identifiers (``addr_gen_mode`` 2
  with ``stable_secret``, 3 with a random secret): SHA-256 over prefix, interface name,
  DAD counter and secret, truncated to 64 bits (RFC 7217 §5), retried with the next DAD
  counter when DAD fails (§6, at most ``idgen_retries`` times).
* DAD (RFC 4862 §5.4): the address stays tentative while ``dad_transmits`` Neighbor
  Solicitations from ``::`` to its solicited-node group go out one ``retrans_time`` apart
  (the group is joined first, with an MLD report, §5.4.2); an NS from ``::`` or an NA for the
  address during that time means someone holds it: the address becomes DUPLICATE and is not
  used (§5.4.5).  The first message after the interface comes up waits a random delay up to
  MAX_RTR_SOLICITATION_DELAY (§5.4.2).
* Optimistic DAD (RFC 4429), with ``optimistic_dad``: an autoconfigured address is usable at once
  (§2.1) while the same probes run, without the random delay (§3, as Linux), and it is
  withdrawn like a tentative one if DAD fails; :mod:`pytcp_green.stack.ipv6.nd` keeps it from speaking
  for itself in ND meanwhile (§2.2: NAs without Override, no NS or RS with an SLLAO from it),
  source selection avoids it like a deprecated address (§3), and the router solicitation goes
  out from ``::`` without an SLLAO while the link-local is still optimistic (§2.4).
* Router solicitation (RFC 4861 §6.3.7) once the link-local address is usable, after a
  random delay, then retransmitted with RFC 7559's exponential backoff (§2: RT = 2·RTprev +
  RAND·RTprev with RAND in ±0.1, capped at ``router_solicitation_max_interval``; unlimited when
  ``router_solicitations`` is -1) until a router advertisement arrives.
* Router advertisements (RFC 4861 §6.1.2 validation, §6.3.4 processing): Cur Hop Limit,
  ReachableTime, RetransTimer, MTU (within 1280..link MTU), the default router list with its
  lifetime, on-link prefixes (L) with their valid lifetime, and autonomous prefixes (A, /64)
  that make addresses with valid/preferred lifetimes (RFC 4862 §5.5.3, the two-hour rule of e).
* Temporary addresses (RFC 8981), with ``use_tempaddr`` 1 or 2: for each autonomous prefix, an
  address with a random interface identifier (§3.3.1, never a reserved one of RFC 5453 nor one
  in use) whose lifetimes are those of the prefix's public address capped at ``temp_valid_lft``
  and ``temp_prefered_lft`` minus a per-address DESYNC_FACTOR (random in 0..0.4 of the preferred
  lifetime, §3.8), counted from its creation (§3.4), so an RA never extends it past them.  It
  runs DAD (optimistic like other autoconfigured addresses); a duplicate is replaced by a new
  random identifier up to ``regen_max_retry`` times (§3.4).  REGEN_ADVANCE seconds before its
  preferred lifetime ends a successor is made from the public address's remaining lifetimes
  (§3.5), so a preferred temporary address always exists while the prefix is preferred; the old
  one deprecates then expires.  None is made when its preferred lifetime would not exceed
  REGEN_ADVANCE (§3.4).  Source selection takes them first at ``use_tempaddr`` 2 (RFC 6724
  rule 7, :meth:`Ip6Layer.select_source`).
* Limits against a hostile link (issue 11): ``max_addresses`` (Linux's, 16) refuses a new SLAAC or
  temporary address once the interface holds that many (every address counts, as Linux's
  ipv6_count_addresses); ``ra_max_routers`` and ``ra_max_prefixes`` (ours, RFC 4861 §6.3.4) refuse
  a new default router or on-link prefix when full; ``accept_ra_min_lft`` (Linux) ignores short
  lifetimes; the link parameters are bounded in :mod:`.ralimits`.  A refreshed router, prefix or
  address moves its own timer (:mod:`.deadline`), and a duplicate autoconfigured address is
  forgotten when its valid lifetime ends (two hours at most), so nothing a peer sends piles up.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.interface import LinkKind
from pytcp_green.stack.ipv6.addr import Addr6, AddrState, If6, LinkSender
from pytcp_green.stack.ipv6.deadline import rearm
from pytcp_green.stack.ipv6.ralimits import accept_link_params
from pytcp_green.stack.wire.icmp6 import OPT_SLLA, TYPE_ROUTER_SOLICIT, RouterAdvert, nd_opt_lla
from pytcp_green.stack.wire.ip6 import ALL_ROUTERS, IP6_MIN_MTU, UNSPECIFIED, is_link_local6, solicited_node

if TYPE_CHECKING:
    from pytcp_green.stack.interface import Interface
    from pytcp_green.stack.ipv6.mld import Mld
    from pytcp_green.stack.services import Services
    from pytcp_green.stack.timers import Timer

INFINITE = 0xFFFFFFFF  # an RA lifetime that never runs out (RFC 4861 §4.6.2)

log = logging.getLogger(__name__)

TWO_HOURS = 7200  # RFC 4862 §5.5.3 e
MAX_DESYNC_SHARE = 0.4  # RFC 8981 §3.8: MAX_DESYNC_FACTOR = 0.4 * TEMP_PREFERRED_LIFETIME


def reserved_iid(iid: int) -> bool:
    """RFC 5453 reserved interface identifiers: subnet-router anycast (0), the reserved subnet
    anycast range (fdff:ffff:ffff:ff80 up), and the proxy-mobile range 0200:5eff:fe00:0000-ffff."""
    return iid == 0 or iid >= 0xFDFFFFFFFFFFFF80 or iid >> 16 == 0x02005EFFFE00


class _Temporary:
    """What RFC 8981 keeps per temporary address besides its lifetimes."""

    __slots__ = ("created", "desync", "regen_timer", "regenerated")

    def __init__(self, created: float, desync: float) -> None:
        self.created = created  # lifetimes are capped relative to this (§3.4)
        self.desync = desync  # DESYNC_FACTOR of this address (§3.8)
        self.regen_timer: Timer | None = None
        self.regenerated = False  # its successor exists already


def _cancel(timer: Timer | None) -> None:
    if timer is not None:
        timer.cancel()


def _earliest(a: float | None, b: float | None) -> float | None:
    """The earlier of two deadlines, None meaning never."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def eui64_iid(mac: bytes) -> bytes:
    """Modified EUI-64 (RFC 4291 Appendix A): ff:fe in the middle, universal/local bit flipped."""
    return bytes((mac[0] ^ 0x02,)) + mac[1:3] + b"\xff\xfe" + mac[3:6]


def stable_iid(prefix: bytes, ifname: str, dad_counter: int, secret: bytes) -> bytes:
    """RFC 7217 §5: F(Prefix, Net_Iface, Network_ID, DAD_Counter, secret_key), SHA-256, 64 bits."""
    digest = hashlib.sha256(prefix[:8] + ifname.encode() + dad_counter.to_bytes(4, "big") + secret).digest()
    return digest[:8]


class AddrconfHost(LinkSender, Protocol):
    """What SLAAC and DAD need from the IPv6 layer (:class:`~pytcp_green.stack.ipv6.ip.Ip6Layer`),
    which calls them back when it adds an address or starts an interface."""

    local: dict[bytes, Addr6]

    def add_address(self, iface: Interface, address: ipaddress.IPv6Interface, *, origin: str = "static",
                    now: float = 0.0, dad: bool | None = None, optimistic: bool | None = None) -> Addr6: ...

    def remove_address(self, addr: Addr6, now: float) -> None: ...

    def dad_ended(self, addr: Addr6, now: float) -> None: ...

    def add_onlink(self, if6: If6, net: ipaddress.IPv6Network, timer: Timer | None) -> None: ...

    def remove_onlink(self, if6: If6, net: ipaddress.IPv6Network) -> None: ...

    def router_gone(self, if6: If6, router: bytes) -> None: ...


class Addrconf:
    """SLAAC, DAD and router discovery of every interface; addresses are made through ``ip6``,
    solicited-node groups joined through ``mld``."""

    def __init__(self, svc: Services, ip6: AddrconfHost, mld: Mld) -> None:
        self.svc = svc
        self.ip6 = ip6
        self.mld = mld
        self._secret: bytes | None = None
        self.temporary: dict[Addr6, _Temporary] = {}  # RFC 8981 addresses alive (DAD running or done)

    def _conf(self, name: str) -> float:
        return self.svc.sysctl.float(f"net.ipv6.conf.default.{name}")

    # -- identifiers ----------------------------------------------------------------------------------
    def _secret_key(self) -> bytes:
        if self._secret is None:
            given = str(self.svc.sysctl["net.ipv6.conf.default.stable_secret"])
            if given:
                self._secret = ipaddress.IPv6Address(given).packed  # Linux takes it as an IPv6 literal
            else:
                self._secret = self.svc.rng.randbytes(16)
        return self._secret

    def iid(self, if6: If6, prefix: bytes, dad_counter: int = 0) -> bytes:
        mode = int(self._conf("addr_gen_mode"))
        if mode in (2, 3):
            return stable_iid(prefix, if6.iface.name, dad_counter, self._secret_key())
        assert if6.iface.mac is not None
        return eui64_iid(if6.iface.mac)

    # -- interface start -------------------------------------------------------------------------------
    def start(self, if6: If6, now: float) -> None:
        """Link-local address (RFC 4862 §5.3) with DAD; router solicitation follows once it is usable."""
        prefix = bytes.fromhex("fe80000000000000")
        ip = prefix + self.iid(if6, prefix)
        self.ip6.add_address(if6.iface, ipaddress.IPv6Interface((ip, 64)), origin="link", now=now)
        if not any(a.origin == "link" and a.tentative for a in if6.addrs):
            # No DAD on this interface, or an optimistic link-local (RFC 4429 §2.4): solicit at once.
            self._link_local_ready(if6, now)

    # -- DAD (RFC 4862 §5.4) ---------------------------------------------------------------------------
    def start_dad(self, addr: Addr6, now: float, *, optimistic: bool = False) -> None:
        if6 = addr.if6
        addr.state = AddrState.OPTIMISTIC if optimistic else AddrState.TENTATIVE
        addr.dad_left = max(int(self._conf("dad_transmits")), 0)
        # §5.4.2: join the solicited-node group first (the MLD report goes out now), and delay the
        # first probe after the link came up by a random time so that hosts rebooting together do
        # not collide.  An optimistic address is in use already: no delay (RFC 4429 §3), so that
        # the window in which it could be someone else's stays short.
        self.mld.join(if6, solicited_node(addr.ip), now)
        delay = 0.0 if optimistic else self.svc.rng.uniform(0.0, self._conf("router_solicitation_delay"))
        if addr.dad_left == 0:
            self.svc.timers.schedule(now, functools.partial(self._dad_done, addr))
            return
        addr.valid_timer = self.svc.timers.schedule(now + delay, functools.partial(self._dad_probe, addr))

    def _dad_probe(self, addr: Addr6, now: float) -> None:
        if not addr.dad_pending or self.ip6.local.get(addr.ip) is not addr:
            return
        if addr.dad_left <= 0:
            self._dad_done(addr, now)
            return
        addr.dad_left -= 1
        self.ip6.send_ns(addr.if6, addr.ip, None, now, dad=True)
        retrans = addr.if6.nd.knob("retrans_time") if addr.if6.nd is not None else 1.0
        addr.valid_timer = self.svc.timers.schedule(now + retrans, functools.partial(self._dad_probe, addr))

    def _dad_done(self, addr: Addr6, now: float) -> None:
        if not addr.dad_pending or self.ip6.local.get(addr.ip) is not addr:
            return
        addr.valid_timer = None
        addr.state = AddrState.PREFERRED
        self.svc.stats["ip6.dad.ok"] += 1
        log.info("%s: %s is ours (DAD done)", addr.if6.iface.name, addr.interface)
        self._apply_lifetimes(addr, now)
        if addr.origin == "link":
            self._link_local_ready(addr.if6, now)
        self.ip6.dad_ended(addr, now)

    def dad_conflict(self, addr: Addr6, how: str, now: float) -> None:
        """RFC 4862 §5.4.5: the tentative address belongs to someone else; never use it.  An optimistic
        one is withdrawn the same way (RFC 4429 §3), though it may have been in use already."""
        stats = self.svc.stats
        stats["ip6.dad.duplicate"] += 1
        stats["ip6.dad.duplicate_" + how] += 1
        if addr.optimistic:
            stats["ip6.dad.optimistic_withdrawn"] += 1
        log.warning("%s: duplicate address %s detected (%s); not using it", addr.if6.iface.name, addr.interface,
                    how)
        if addr.valid_timer is not None:
            addr.valid_timer.cancel()
        ip6 = self.ip6
        ip6.remove_address(addr, now)
        addr.state = AddrState.DUPLICATE
        if6 = addr.if6
        if6.addrs.append(addr)  # kept, marked DUPLICATE, for tools and tests (not in ip6.local)
        if addr.origin in ("slaac", "temporary"):
            # ... until its valid lifetime ends, two hours at most (then SLAAC may try again): forged
            # claims must not fill max_addresses with duplicates for ever (an infinite lifetime).
            until = now + TWO_HOURS if addr.valid_until is None else min(max(addr.valid_until, now), now + TWO_HOURS)
            addr.valid_timer = self.svc.timers.schedule(until, functools.partial(self._drop_duplicate, addr))
        ip6.dad_ended(addr, now)
        if addr.origin == "temporary":
            self._temporary_duplicate(addr, now)
            return
        # RFC 7217 §6: with stable identifiers, try the next DAD counter.
        if int(self._conf("addr_gen_mode")) in (2, 3) and addr.origin in ("slaac", "link") and (
            addr.dad_counter < int(self._conf("idgen_retries"))
        ):
            prefix = addr.ip[:8]
            ip = prefix + self.iid(if6, prefix, addr.dad_counter + 1)
            if ip not in ip6.local:
                fresh = ip6.add_address(if6.iface, ipaddress.IPv6Interface((ip, 64)), origin=addr.origin, now=now)
                fresh.dad_counter = addr.dad_counter + 1
                fresh.valid_until = addr.valid_until
                stats["ip6.dad.retry_stable"] += 1

    def _drop_duplicate(self, addr: Addr6, now: float) -> None:
        if addr in addr.if6.addrs:
            addr.if6.addrs.remove(addr)
        self.svc.stats["ip6.dad.duplicate_expired"] += 1

    # -- router solicitation (RFC 4861 §6.3.7, RFC 7559) -------------------------------------------------
    def _link_local_ready(self, if6: If6, now: float) -> None:
        if if6.link_local_done:
            return
        if6.link_local_done = True
        if if6.slaac and if6.iface.kind is LinkKind.ETHERNET:
            delay = self.svc.rng.uniform(0.0, self._conf("router_solicitation_delay"))
            if6.rs_interval = 0.0
            if6.rs_timer = self.svc.timers.schedule(now + delay, functools.partial(self._solicit, if6))

    def _solicit(self, if6: If6, now: float) -> None:
        if6.rs_timer = None
        if if6.ra_seen:
            return
        limit = int(self._conf("router_solicitations"))
        if 0 <= limit <= if6.rs_sent:
            return
        assert if6.iface.mac is not None
        src = if6.link_local or UNSPECIFIED
        # §4.1: the source link-layer option only when the source is not the unspecified address.
        body = b"" if src == UNSPECIFIED else nd_opt_lla(OPT_SLLA, if6.iface.mac)
        self.ip6.send_icmp(if6, src, ALL_ROUTERS, TYPE_ROUTER_SOLICIT, 0, 0, body, now)
        self.svc.stats["nd.tx.rs"] += 1
        if6.rs_sent += 1
        # RFC 7559 §2: exponential backoff with ±10% randomisation, capped.
        irt = self._conf("router_solicitation_interval")
        mrt = self._conf("router_solicitation_max_interval")
        rand = self.svc.rng.uniform(-0.1, 0.1)
        prev = if6.rs_interval
        rt = irt + rand * irt if prev == 0.0 else 2 * prev + rand * prev
        if rt > mrt:
            rt = mrt + rand * mrt
        if6.rs_interval = rt
        if6.rs_timer = self.svc.timers.schedule(now + rt, functools.partial(self._solicit, if6))

    # -- router advertisements (RFC 4861 §6.1.2, §6.3.4) -------------------------------------------------
    def receive_ra(self, if6: If6, src: bytes, hop_limit: int, ra: RouterAdvert, now: float) -> None:
        stats = self.svc.stats
        if not is_link_local6(src) or hop_limit != 255:
            stats["nd.drop.invalid_ra"] += 1  # §6.1.2: only from a link-local source, never forwarded
            return
        if not if6.slaac:
            stats["nd.rx.ra_ignored"] += 1
            return
        stats["nd.rx.ra"] += 1
        if6.ra_seen = True
        if if6.rs_timer is not None:
            if6.rs_timer.cancel()
            if6.rs_timer = None
        accept_link_params(if6, ra, self.svc)
        opts = ra.options
        if if6.nd is not None:
            if6.nd.learn_router(src, opts.slla, now)
        if opts.mtu is not None:
            if IP6_MIN_MTU <= opts.mtu <= if6.iface.mtu:
                if6.mtu = opts.mtu
            else:
                stats["nd.rx.ra_bad_mtu"] += 1  # §6.3.4: outside what the link can do; ignored
        self._default_router(if6, src, ra.router_lifetime, now)
        min_lft = self._conf("accept_ra_min_lft")
        for info in opts.prefixes:
            if is_link_local6(info.prefix):
                stats["nd.rx.ra_prefix_link_local"] += 1  # §6.3.4 and RFC 4862 §5.5.3 b: ignored
                continue
            if info.valid and info.valid < min_lft:
                stats["nd.rx.ra_prefix_lifetime_too_short"] += 1  # Linux's addrconf_prefix_rcv
                continue
            net = ipaddress.IPv6Network((info.prefix, info.prefix_len), strict=False)
            if info.on_link:
                self._onlink_prefix(if6, net, info.valid, now)
            if info.autonomous:
                self._slaac(if6, net, info.valid, info.preferred, now)

    def _room(self, used: int, knob: str) -> bool:
        """Whether a table holding ``used`` entries may take one more under ``knob`` (0: unlimited)."""
        limit = int(self._conf(knob))
        return limit <= 0 or used < limit

    def _default_router(self, if6: If6, src: bytes, lifetime: int, now: float) -> None:
        """Default router list (§6.3.4): lifetime 0 removes the router, otherwise its expiry moves.  A new
        router is taken only while the list has room (``ra_max_routers``: a full list refuses it, so
        routers already known keep serving) and, as in Linux, not with a lifetime under
        ``accept_ra_min_lft`` nor from one of our own addresses."""
        stats = self.svc.stats
        if lifetime == 0:
            self.ip6.router_gone(if6, src)
            return
        if lifetime < self._conf("accept_ra_min_lft"):
            stats["nd.rx.ra_router_lifetime_too_short"] += 1
            return
        if src in self.ip6.local and not self._conf("accept_ra_from_local"):
            stats["nd.rx.ra_from_local"] += 1  # Linux: a loop, or a forgery; never our own router
            return
        if src not in if6.routers and not self._room(len(if6.routers), "ra_max_routers"):
            stats["nd.drop.ra_router_list_full"] += 1
            return
        if6.routers[src] = rearm(self.svc.timers, if6.routers.get(src), now + lifetime,
                                 functools.partial(self._router_expired, if6, src))

    def _router_expired(self, if6: If6, router: bytes, now: float) -> None:
        if6.routers.pop(router, None)
        self.ip6.router_gone(if6, router)
        self.svc.stats["nd.router_expired"] += 1

    def _onlink_prefix(self, if6: If6, net: ipaddress.IPv6Network, valid: int, now: float) -> None:
        """An on-link prefix (§6.3.4): valid lifetime 0 removes it, otherwise its expiry is re-armed.  The
        prefix of an address set by hand is not the RA's to change (Linux keeps that prefix route apart
        from RA-learnt ones); a new prefix is taken while ``ra_max_prefixes`` allows."""
        stats = self.svc.stats
        ip6 = self.ip6
        if net in if6.onlink and net not in if6.ra_prefixes:
            stats["nd.rx.ra_prefix_static"] += 1
            return
        if valid == 0:
            if net in if6.ra_prefixes:
                if6.ra_prefixes.discard(net)
                ip6.remove_onlink(if6, net)
            return
        if net not in if6.ra_prefixes:
            if not self._room(len(if6.ra_prefixes), "ra_max_prefixes"):
                stats["nd.drop.ra_prefix_list_full"] += 1
                return
            if6.ra_prefixes.add(net)
        timer = None if valid == INFINITE else rearm(self.svc.timers, if6.onlink.get(net), now + valid,
                                                     functools.partial(self._onlink_expired, if6, net))
        ip6.add_onlink(if6, net, timer)  # cancels the timer it replaces, unless that one was moved

    def _onlink_expired(self, if6: If6, net: ipaddress.IPv6Network, now: float) -> None:
        if6.onlink.pop(net, None)
        if6.ra_prefixes.discard(net)

    def _slaac(self, if6: If6, net: ipaddress.IPv6Network, valid: int, preferred: int, now: float) -> None:
        """RFC 4862 §5.5.3: form or refresh the address for an autonomous prefix."""
        stats = self.svc.stats
        if preferred > valid:
            stats["nd.rx.ra_prefix_bad_lifetimes"] += 1  # §5.5.3 c
            return
        if net.prefixlen != 64:
            stats["nd.rx.ra_prefix_bad_length"] += 1  # §5.5.3 d: prefix + 64-bit IID must be 128 bits
            return
        prefix = net.network_address.packed
        existing = [a for a in if6.addrs if a.origin == "slaac" and a.ip[:8] == prefix[:8]
                    and a.state is not AddrState.DUPLICATE]
        if existing:
            for addr in existing:
                self._refresh(addr, valid, preferred, now)
            self._temporaries(if6, prefix, existing[0], valid, preferred, now)
            return
        if valid == 0:
            return
        if any(a.ip[:8] == prefix[:8] and a.state is AddrState.DUPLICATE for a in if6.addrs) and int(
                self._conf("addr_gen_mode")) not in (2, 3):
            return  # DAD already failed for the EUI-64 address on this prefix
        ip = prefix[:8] + self.iid(if6, prefix)
        if ip in self.ip6.local:
            return  # configured statically already
        if not self._room(len(if6.addrs), "max_addresses"):
            stats["ip6.slaac.max_addresses"] += 1  # Linux's addrconf_prefix_rcv_add_addr
            return
        addr = self.ip6.add_address(if6.iface, ipaddress.IPv6Interface((ip, 64)), origin="slaac", now=now)
        addr.valid_until = None if valid == INFINITE else now + valid
        addr.preferred_until = None if preferred == INFINITE else now + preferred
        stats["ip6.slaac.address"] += 1
        self._temporaries(if6, prefix, addr, valid, preferred, now)

    def _refresh(self, addr: Addr6, valid: int, preferred: int, now: float) -> None:
        # §5.5.3 e: the preferred lifetime is reset; the valid lifetime only under the two-hour rule,
        # so that a forged RA cannot kill an address quickly.
        remaining = None if addr.valid_until is None else addr.valid_until - now
        if valid == INFINITE or valid > TWO_HOURS or (remaining is not None and valid > remaining):
            addr.valid_until = None if valid == INFINITE else now + valid
        elif remaining is None or remaining > TWO_HOURS:
            addr.valid_until = now + TWO_HOURS
        addr.preferred_until = None if preferred == INFINITE else now + preferred
        if not addr.dad_pending:
            if preferred and addr.state is AddrState.DEPRECATED:
                addr.state = AddrState.PREFERRED
            self._apply_lifetimes(addr, now)

    def _apply_lifetimes(self, addr: Addr6, now: float) -> None:
        """(Re)arm the preferred and valid lifetime timers of a non-tentative address (moved, not
        multiplied, when an RA refreshes them: :mod:`.deadline`)."""
        timers = self.svc.timers
        preferred_until = addr.preferred_until
        if preferred_until is not None and preferred_until > now:
            addr.preferred_timer = rearm(timers, addr.preferred_timer, preferred_until,
                                         functools.partial(self._deprecate, addr))
        else:
            if preferred_until is not None:
                addr.state = AddrState.DEPRECATED
            _cancel(addr.preferred_timer)
            addr.preferred_timer = None
        if addr.valid_until is not None:
            addr.valid_timer = rearm(timers, addr.valid_timer, addr.valid_until,
                                     functools.partial(self._invalidate, addr))
        else:
            _cancel(addr.valid_timer)
            addr.valid_timer = None

    def _deprecate(self, addr: Addr6, now: float) -> None:
        if addr.state is AddrState.PREFERRED:
            addr.state = AddrState.DEPRECATED
            self.svc.stats["ip6.slaac.deprecated"] += 1

    def _invalidate(self, addr: Addr6, now: float) -> None:
        self.ip6.remove_address(addr, now)
        self.svc.stats["ip6.slaac.expired"] += 1
        self._forget_temporary(addr)

    # -- temporary addresses (RFC 8981) --------------------------------------------------------------------
    def _regen_advance(self, if6: If6) -> float:
        """§3.8 REGEN_ADVANCE = 2 + TEMP_IDGEN_RETRIES * DupAddrDetectTransmits * RetransTimer."""
        retrans = if6.nd.knob("retrans_time") if if6.nd is not None else 1.0
        return 2.0 + self._conf("regen_max_retry") * max(self._conf("dad_transmits"), 0.0) * retrans

    def _temporaries(self, if6: If6, prefix: bytes, public: Addr6, valid: int, preferred: int,
                     now: float) -> None:
        """An RA's Prefix Information for ``prefix``: cap and refresh the lifetimes of its temporary
        addresses (§3.4), and make one if none is usable and preferred (nor on its way, DAD running)."""
        if int(self._conf("use_tempaddr")) <= 0:
            return
        current = False
        for addr, temp in list(self.temporary.items()):
            if addr.if6 is not if6 or addr.ip[:8] != prefix[:8]:
                continue
            self._temporary_lifetimes(addr, temp, public, now)
            if not temp.regenerated and (addr.dad_pending or addr.state is AddrState.PREFERRED):
                current = True
        if not current and valid and preferred:
            self._make_temporary(if6, prefix, public, now)

    def _temporary_lifetimes(self, addr: Addr6, temp: _Temporary, public: Addr6, now: float) -> None:
        """§3.4: the public address's lifetimes (RA values under RFC 4862's two-hour rule), capped at
        TEMP_VALID_LIFETIME and TEMP_PREFERRED_LIFETIME - DESYNC_FACTOR from the creation time."""
        addr.valid_until = _earliest(public.valid_until, temp.created + self._conf("temp_valid_lft"))
        addr.preferred_until = _earliest(public.preferred_until,
                                         temp.created + self._conf("temp_prefered_lft") - temp.desync)
        if not addr.dad_pending:
            if addr.state is AddrState.DEPRECATED and addr.preferred_until is not None and addr.preferred_until > now:
                addr.state = AddrState.PREFERRED
            self._apply_lifetimes(addr, now)
        self._arm_regeneration(addr, temp)

    def _arm_regeneration(self, addr: Addr6, temp: _Temporary) -> None:
        if temp.regenerated or addr.preferred_until is None:
            _cancel(temp.regen_timer)
            temp.regen_timer = None
            return
        when = addr.preferred_until - self._regen_advance(addr.if6)
        temp.regen_timer = rearm(self.svc.timers, temp.regen_timer, when, functools.partial(self._regenerate, addr))

    def _make_temporary(self, if6: If6, prefix: bytes, public: Addr6, now: float, *, attempt: int = 0,
                        created: float | None = None, desync: float | None = None) -> Addr6 | None:
        """§3.3.1 random identifier, §3.4 lifetimes and DAD; None when the preferred lifetime it would
        get does not exceed REGEN_ADVANCE (it would have to be replaced at once)."""
        stats = self.svc.stats
        rng = self.svc.rng
        temp_preferred = self._conf("temp_prefered_lft")
        regen_advance = self._regen_advance(if6)
        if desync is None:
            # §3.8: DESYNC_FACTOR < TEMP_PREFERRED_LIFETIME - REGEN_ADVANCE, or nothing would be left
            desync = rng.uniform(0.0, max(0.0, min(MAX_DESYNC_SHARE * temp_preferred, temp_preferred - regen_advance)))
        temp = _Temporary(now if created is None else created, desync)
        preferred_until = _earliest(public.preferred_until, temp.created + temp_preferred - desync)
        if preferred_until is not None and preferred_until - now <= regen_advance:
            stats["ip6.temporary.too_short"] += 1
            return None
        if not self._room(len(if6.addrs), "max_addresses"):
            stats["ip6.temporary.max_addresses"] += 1  # Linux's ipv6_create_tempaddr
            return None
        while True:
            iid = rng.getrandbits(64)
            ip = prefix[:8] + iid.to_bytes(8, "big")
            if not reserved_iid(iid) and ip not in self.ip6.local:
                break
        addr = self.ip6.add_address(if6.iface, ipaddress.IPv6Interface((ip, 64)), origin="temporary", now=now)
        addr.dad_counter = attempt
        self.temporary[addr] = temp
        self._temporary_lifetimes(addr, temp, public, now)
        stats["ip6.temporary.address"] += 1
        log.info("%s: temporary address %s", if6.iface.name, addr.interface)
        return addr

    def _public_for(self, if6: If6, prefix: bytes) -> Addr6 | None:
        """The prefix's public SLAAC address (its DAD may still run: its lifetimes are known)."""
        for a in if6.addrs:
            if a.origin == "slaac" and a.ip[:8] == prefix[:8] and a.state is not AddrState.DUPLICATE:
                return a
        return None

    def _regenerate(self, addr: Addr6, now: float) -> None:
        """§3.5: REGEN_ADVANCE before ``addr`` deprecates, its successor, with the lifetimes the public
        address has left; none when temporary addresses were turned off or the prefix is not preferred."""
        temp = self.temporary.get(addr)
        if temp is None or temp.regenerated:
            return
        temp.regen_timer = None
        if int(self._conf("use_tempaddr")) <= 0:
            return
        public = self._public_for(addr.if6, addr.ip)
        if public is None or public.state is not AddrState.PREFERRED:
            return
        temp.regenerated = True
        self.svc.stats["ip6.temporary.regenerated"] += 1
        self._make_temporary(addr.if6, addr.ip, public, now)

    def _temporary_duplicate(self, addr: Addr6, now: float) -> None:
        """§3.4 (RFC 8981 step 7): DAD failed: a new random identifier, at most TEMP_IDGEN_RETRIES times."""
        temp = self.temporary.pop(addr, None)
        if temp is None:
            return
        if temp.regen_timer is not None:
            temp.regen_timer.cancel()
        if addr.dad_counter >= int(self._conf("regen_max_retry")):
            self.svc.stats["ip6.temporary.gave_up"] += 1
            return
        public = self._public_for(addr.if6, addr.ip)
        if public is None:
            return
        self.svc.stats["ip6.temporary.retry"] += 1
        self._make_temporary(addr.if6, addr.ip, public, now, attempt=addr.dad_counter + 1, created=temp.created,
                             desync=temp.desync)

    def _forget_temporary(self, addr: Addr6) -> None:
        temp = self.temporary.pop(addr, None)
        if temp is not None and temp.regen_timer is not None:
            temp.regen_timer.cancel()
