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
  withdrawn like a tentative one if DAD fails; :mod:`pytcp_green.stack.nd` keeps it from speaking
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
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
from typing import TYPE_CHECKING

from pytcp_green.link.device import LinkKind
from pytcp_green.stack.ip6 import INFINITE, Addr6, AddrState, If6
from pytcp_green.stack.wire.icmp6 import OPT_SLLA, TYPE_ROUTER_SOLICIT, RouterAdvert, nd_opt_lla
from pytcp_green.stack.wire.ip6 import ALL_ROUTERS, IP6_MIN_MTU, UNSPECIFIED, is_link_local6, solicited_node

if TYPE_CHECKING:
    from pytcp_green.stack.stack import Stack

log = logging.getLogger(__name__)

TWO_HOURS = 7200  # RFC 4862 §5.5.3 e


def eui64_iid(mac: bytes) -> bytes:
    """Modified EUI-64 (RFC 4291 Appendix A): ff:fe in the middle, universal/local bit flipped."""
    return bytes((mac[0] ^ 0x02,)) + mac[1:3] + b"\xff\xfe" + mac[3:6]


def stable_iid(prefix: bytes, ifname: str, dad_counter: int, secret: bytes) -> bytes:
    """RFC 7217 §5: F(Prefix, Net_Iface, Network_ID, DAD_Counter, secret_key), SHA-256, 64 bits."""
    digest = hashlib.sha256(prefix[:8] + ifname.encode() + dad_counter.to_bytes(4, "big") + secret).digest()
    return digest[:8]


class Addrconf:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._secret: bytes | None = None

    def _conf(self, name: str) -> float:
        return self.stack.sysctl.float(f"net.ipv6.conf.default.{name}")

    # -- identifiers ----------------------------------------------------------------------------------
    def _secret_key(self) -> bytes:
        if self._secret is None:
            given = str(self.stack.sysctl["net.ipv6.conf.default.stable_secret"])
            if given:
                self._secret = ipaddress.IPv6Address(given).packed  # Linux takes it as an IPv6 literal
            else:
                self._secret = self.stack.rng.randbytes(16)
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
        self.stack.ip6.add_address(if6.iface, ipaddress.IPv6Interface((ip, 64)), origin="link", now=now)
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
        self.stack.ip6.mld.join(if6, solicited_node(addr.ip), now)
        delay = 0.0 if optimistic else self.stack.rng.uniform(0.0, self._conf("router_solicitation_delay"))
        if addr.dad_left == 0:
            self.stack.timers.schedule(now, functools.partial(self._dad_done, addr))
            return
        addr.valid_timer = self.stack.timers.schedule(now + delay, functools.partial(self._dad_probe, addr))

    def _dad_probe(self, addr: Addr6, now: float) -> None:
        if not addr.dad_pending or self.stack.ip6.local.get(addr.ip) is not addr:
            return
        if addr.dad_left <= 0:
            self._dad_done(addr, now)
            return
        addr.dad_left -= 1
        self.stack.ip6.send_ns(addr.if6, addr.ip, None, now, dad=True)
        retrans = addr.if6.nd._knob("retrans_time") if addr.if6.nd is not None else 1.0
        addr.valid_timer = self.stack.timers.schedule(now + retrans, functools.partial(self._dad_probe, addr))

    def _dad_done(self, addr: Addr6, now: float) -> None:
        if not addr.dad_pending or self.stack.ip6.local.get(addr.ip) is not addr:
            return
        addr.valid_timer = None
        addr.state = AddrState.PREFERRED
        self.stack.stats["ip6.dad.ok"] += 1
        log.info("%s: %s is ours (DAD done)", addr.if6.iface.name, addr.interface)
        self._apply_lifetimes(addr, now)
        if addr.origin == "link":
            self._link_local_ready(addr.if6, now)
        self.stack.ip6.dad_ended(addr, now)

    def dad_conflict(self, addr: Addr6, how: str, now: float) -> None:
        """RFC 4862 §5.4.5: the tentative address belongs to someone else; never use it.  An optimistic
        one is withdrawn the same way (RFC 4429 §3), though it may have been in use already."""
        stats = self.stack.stats
        stats["ip6.dad.duplicate"] += 1
        stats["ip6.dad.duplicate_" + how] += 1
        if addr.optimistic:
            stats["ip6.dad.optimistic_withdrawn"] += 1
        log.warning("%s: duplicate address %s detected (%s); not using it", addr.if6.iface.name, addr.interface,
                    how)
        if addr.valid_timer is not None:
            addr.valid_timer.cancel()
        ip6 = self.stack.ip6
        ip6.remove_address(addr, now)
        addr.state = AddrState.DUPLICATE
        if6 = addr.if6
        if6.addrs.append(addr)  # kept, marked DUPLICATE, for tools and tests (not in ip6.local)
        ip6.dad_ended(addr, now)
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

    # -- router solicitation (RFC 4861 §6.3.7, RFC 7559) -------------------------------------------------
    def _link_local_ready(self, if6: If6, now: float) -> None:
        if if6.link_local_done:
            return
        if6.link_local_done = True
        if if6.slaac and if6.iface.kind is LinkKind.ETHERNET:
            delay = self.stack.rng.uniform(0.0, self._conf("router_solicitation_delay"))
            if6.rs_interval = 0.0
            if6.rs_timer = self.stack.timers.schedule(now + delay, functools.partial(self._solicit, if6))

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
        self.stack.ip6.send_icmp(if6, src, ALL_ROUTERS, TYPE_ROUTER_SOLICIT, 0, 0, body, now)
        self.stack.stats["nd.tx.rs"] += 1
        if6.rs_sent += 1
        # RFC 7559 §2: exponential backoff with ±10% randomisation, capped.
        irt = self._conf("router_solicitation_interval")
        mrt = self._conf("router_solicitation_max_interval")
        rand = self.stack.rng.uniform(-0.1, 0.1)
        prev = if6.rs_interval
        rt = irt + rand * irt if prev == 0.0 else 2 * prev + rand * prev
        if rt > mrt:
            rt = mrt + rand * mrt
        if6.rs_interval = rt
        if6.rs_timer = self.stack.timers.schedule(now + rt, functools.partial(self._solicit, if6))

    # -- router advertisements (RFC 4861 §6.1.2, §6.3.4) -------------------------------------------------
    def receive_ra(self, if6: If6, src: bytes, hop_limit: int, ra: RouterAdvert, now: float) -> None:
        stats = self.stack.stats
        if not is_link_local6(src) or hop_limit != 255:
            stats["nd.drop.invalid_ra"] += 1  # §6.1.2: only from a link-local source, never forwarded
            return
        if not if6.slaac:
            stats["nd.rx.ra_ignored"] += 1
            return
        stats["nd.rx.ra"] += 1
        ip6 = self.stack.ip6
        if6.ra_seen = True
        if if6.rs_timer is not None:
            if6.rs_timer.cancel()
            if6.rs_timer = None
        if ra.cur_hop_limit:
            if6.hop_limit = ra.cur_hop_limit
        if ra.reachable_time:
            if6.nd_overrides["base_reachable_time"] = ra.reachable_time / 1000.0
        if ra.retrans_timer:
            if6.nd_overrides["retrans_time"] = ra.retrans_timer / 1000.0
        opts = ra.options
        if if6.nd is not None:
            if6.nd.learn_router(src, opts.slla, now)
        if opts.mtu is not None:
            if IP6_MIN_MTU <= opts.mtu <= if6.iface.mtu:
                if6.mtu = opts.mtu
            else:
                stats["nd.rx.ra_bad_mtu"] += 1  # §6.3.4: outside what the link can do; ignored
        # Default router list (§6.3.4): lifetime 0 removes, otherwise (re)arms the expiry.
        old = if6.routers.pop(src, None)
        if old is not None:
            old.cancel()
        if ra.router_lifetime:
            if6.routers[src] = self.stack.timers.schedule(now + ra.router_lifetime,
                                                          functools.partial(self._router_expired, if6, src))
        else:
            ip6.router_gone(if6, src)
        for info in opts.prefixes:
            if is_link_local6(info.prefix):
                stats["nd.rx.ra_prefix_link_local"] += 1  # §6.3.4 and RFC 4862 §5.5.3 b: ignored
                continue
            net = ipaddress.IPv6Network((info.prefix, info.prefix_len), strict=False)
            if info.on_link:
                if info.valid == 0:
                    ip6.remove_onlink(if6, net)
                else:
                    timer = None if info.valid == INFINITE else self.stack.timers.schedule(
                        now + info.valid, functools.partial(self._onlink_expired, if6, net))
                    ip6._add_onlink(if6, net, timer)
            if info.autonomous:
                self._slaac(if6, net, info.valid, info.preferred, now)

    def _router_expired(self, if6: If6, router: bytes, now: float) -> None:
        if6.routers.pop(router, None)
        self.stack.ip6.router_gone(if6, router)
        self.stack.stats["nd.router_expired"] += 1

    def _onlink_expired(self, if6: If6, net: ipaddress.IPv6Network, now: float) -> None:
        if6.onlink.pop(net, None)

    def _slaac(self, if6: If6, net: ipaddress.IPv6Network, valid: int, preferred: int, now: float) -> None:
        """RFC 4862 §5.5.3: form or refresh the address for an autonomous prefix."""
        stats = self.stack.stats
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
            return
        if valid == 0:
            return
        if any(a.ip[:8] == prefix[:8] and a.state is AddrState.DUPLICATE for a in if6.addrs) and int(
                self._conf("addr_gen_mode")) not in (2, 3):
            return  # DAD already failed for the EUI-64 address on this prefix
        ip = prefix[:8] + self.iid(if6, prefix)
        if ip in self.stack.ip6.local:
            return  # configured statically already
        addr = self.stack.ip6.add_address(if6.iface, ipaddress.IPv6Interface((ip, 64)), origin="slaac", now=now)
        addr.valid_until = None if valid == INFINITE else now + valid
        addr.preferred_until = None if preferred == INFINITE else now + preferred
        stats["ip6.slaac.address"] += 1

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
        """(Re)arm the preferred and valid lifetime timers of a non-tentative address."""
        timers = self.stack.timers
        for timer in (addr.preferred_timer, addr.valid_timer):
            if timer is not None:
                timer.cancel()
        addr.preferred_timer = addr.valid_timer = None
        preferred_until = addr.preferred_until
        if preferred_until is not None:
            if preferred_until <= now:
                addr.state = AddrState.DEPRECATED
            else:
                addr.preferred_timer = timers.schedule(preferred_until, functools.partial(self._deprecate, addr))
        if addr.valid_until is not None:
            addr.valid_timer = timers.schedule(addr.valid_until, functools.partial(self._invalidate, addr))

    def _deprecate(self, addr: Addr6, now: float) -> None:
        if addr.state is AddrState.PREFERRED:
            addr.state = AddrState.DEPRECATED
            self.stack.stats["ip6.slaac.deprecated"] += 1

    def _invalidate(self, addr: Addr6, now: float) -> None:
        self.stack.ip6.remove_address(addr, now)
        self.stack.stats["ip6.slaac.expired"] += 1
