"""IPv4 link-local address autoconfiguration (RFC 3927) for an interface that has no other address.

* Candidates (§2.1) are drawn from 169.254.1.0-169.254.254.255 (the first and last 256 addresses
  are reserved) by a generator seeded with the interface's MAC, so a host tries the same sequence,
  and usually gets the same address, every time it starts.
* Each candidate is probed with ARP (§2.2.1, the RFC 5227 machinery of :meth:`Ip4Layer.probe_address`
  and its ``net.ipv4.acd.*`` timings, which are RFC 3927's own constants) and announced once no one
  answers; a conflict picks the next candidate.  After ``net.ipv4.linklocal.max_conflicts``
  conflicts (MAX_CONFLICTS, 10), a new candidate is tried at most once per
  ``net.ipv4.linklocal.rate_limit_interval`` seconds (RATE_LIMIT_INTERVAL, 60).
* The address is defended as any other (RFC 5227 §2.4 (b), RFC 3927 §2.5 (b)); when a conflict takes
  it away, selection starts over (§2.5).
* The prefix is 169.254.0.0/16, on-link: nothing to or from it goes through a router (§2.6.2).
* :meth:`LinkLocal.stop` removes the address: a host that gets a routable address from DHCP
  drops it (§1.9 allows either; dropping keeps source selection from ever picking it for a
  routable destination, §2.6.1).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.timers import Timer

if TYPE_CHECKING:
    from pytcp_green.stack.interface import Interface
    from pytcp_green.stack.ipv4.ip import Ip4Layer
    from pytcp_green.stack.services import Services

FIRST = int(ipaddress.IPv4Address("169.254.1.0"))
COUNT = 254 * 256  # 169.254.1.0 .. 169.254.254.255
PREFIX_LEN = 16


def candidates(mac: bytes) -> random.Random:
    """The per-host generator of §2.1 ("seeded from the interface's hardware address")."""
    return random.Random(int.from_bytes(mac, "big"))


class LinkLocalHost(Protocol):
    """What link-local configuration needs of the stack (:class:`~pytcp_green.stack.stack.Stack`)."""

    @property
    def services(self) -> Services: ...

    @property
    def ip4(self) -> Ip4Layer: ...


class LinkLocal:
    """Claims and keeps one 169.254/16 address on ``iface``; ``on_change(address or None)`` reports it."""

    def __init__(self, stack: LinkLocalHost, iface: Interface,
                 on_change: Callable[[ipaddress.IPv4Interface | None], None] | None = None) -> None:
        self.svc = stack.services
        self.ip4 = stack.ip4
        self.iface = iface
        self.on_change = on_change
        self.address: ipaddress.IPv4Interface | None = None  # once claimed
        self.candidate: ipaddress.IPv4Interface | None = None  # being probed
        self.conflicts = 0
        self.running = False
        self._rng = candidates(iface.mac or bytes(6))
        self._timer: Timer | None = None
        self.ip4.on_address_lost.append(self._lost)

    def _next_candidate(self) -> ipaddress.IPv4Interface:
        while True:
            ip = ipaddress.IPv4Address(FIRST + self._rng.randrange(COUNT))
            if ip.packed not in self.ip4.local:
                return ipaddress.IPv4Interface(f"{ip}/{PREFIX_LEN}")

    def start(self, now: float) -> None:
        if self.running:
            return
        self.running = True
        self.svc.stats["linklocal.start"] += 1
        self._try(now)

    def _try(self, now: float) -> None:
        self._timer = None
        if not self.running:
            return
        self.candidate = candidate = self._next_candidate()
        self.svc.stats["linklocal.probe"] += 1
        self.ip4.probe_address(self.iface, candidate, now, lambda ok, when: self._probed(candidate, ok, when),
                                dynamic=True)

    def _probed(self, candidate: ipaddress.IPv4Interface, ok: bool, now: float) -> None:
        if not self.running or candidate != self.candidate:
            if ok:  # stopped while probing: the address was just added, take it back
                self.ip4.remove_address(self.iface, candidate)
            return
        self.candidate = None
        if ok:
            self.address = candidate
            self.svc.stats["linklocal.claimed"] += 1
            if self.on_change is not None:
                self.on_change(candidate)
            return
        self._conflict(now)

    def _conflict(self, now: float) -> None:
        self.conflicts += 1
        self.svc.stats["linklocal.conflict"] += 1
        sysctl = self.svc.sysctl
        if self.conflicts >= sysctl.int("net.ipv4.linklocal.max_conflicts"):
            # §2.2.1: past MAX_CONFLICTS, at most one new candidate per RATE_LIMIT_INTERVAL.
            when = now + sysctl.float("net.ipv4.linklocal.rate_limit_interval")
            self._timer = self.svc.timers.schedule(when, self._try)
        else:
            self._try(now)

    def _lost(self, iface: Interface, address: ipaddress.IPv4Interface) -> None:
        """ARP gave our address up after a conflict it could not defend (§2.5): choose another."""
        if iface is not self.iface or address != self.address:
            return
        self.address = None
        if self.on_change is not None:
            self.on_change(None)
        if self.running:
            self._timer = self.svc.timers.schedule(0.0, self._conflict)

    def stop(self) -> None:
        """Stop, and remove the address if one was claimed."""
        self.running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.address is not None and self.address in self.iface.ip4:
            self.ip4.remove_address(self.iface, self.address)
            self.svc.stats["linklocal.removed"] += 1
        self.address = None
        if self._lost in self.ip4.on_address_lost:
            self.ip4.on_address_lost.remove(self._lost)
