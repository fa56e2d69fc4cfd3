"""The IPv6 state of a host's interfaces, shared by every IPv6 module: addresses and their DAD life.

* :class:`Addr6` — one address: its DAD state (RFC 4862 §5.4 tentative, RFC 4429 optimistic,
  then preferred/deprecated per RFC 4862 §5.5.4, or duplicate), lifetimes and origin;
* :class:`If6` — one interface: addresses, the groups joined (all-nodes always, RFC 4291 §2.8),
  the neighbour cache, default routers and on-link prefixes (RFC 4861 §5-6), link MTU.

The layer that owns them is :mod:`pytcp_green.stack.ipv6.ip`; Neighbor Discovery, SLAAC, MLD and
ICMPv6 read and update them, which is why they live apart from all of those.
"""

from __future__ import annotations

import enum
import ipaddress
from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.wire.ip6 import ALL_NODES

if TYPE_CHECKING:
    from pytcp_green.stack.interface import Interface
    from pytcp_green.stack.timers import Timer
    from pytcp_green.stack.wire.icmp6 import NeighborAdvert, NeighborSolicit


class LinkSender(Protocol):
    """How ND, MLD and SLAAC speak on one interface's link (:class:`~pytcp_green.stack.ipv6.ip.Ip6Layer`)."""

    def send_icmp(self, if6: If6, src: bytes, dst: bytes, kind: int, code: int, rest: int, body: bytes, now: float,
                  *, hop_limit: int = 255, hbh: bytes = b"") -> int: ...

    def send_ns(self, if6: If6, target: bytes, unicast_mac: bytes | None, now: float, *, dad: bool = False,
                src: bytes | None = None) -> None: ...


class Neighbours6(Protocol):
    """The neighbour cache of an Ethernet interface (:class:`~pytcp_green.stack.ipv6.nd.NdCache`), as
    IPv6 output, ICMPv6 and SLAAC use it."""

    routers: set[bytes]  # neighbours with IsRouter set (RFC 4861 §7.2.5)

    def output(self, nexthop: bytes, frame: bytearray, now: float) -> None: ...

    def is_reachable(self, ip: bytes) -> bool: ...

    def dad_ended(self, now: float) -> None: ...

    def knob(self, name: str) -> float:
        """A ``net.ipv6.neigh.default`` tunable, or what a router advertised instead (RFC 4861 §6.3.4)."""
        ...

    def learn(self, ip: bytes, mac: bytes, solicited: bool, now: float) -> None: ...

    def learn_router(self, ip: bytes, mac: bytes | None, now: float) -> None: ...

    def receive_ns(self, src: bytes, dst: bytes, hop_limit: int, ns: NeighborSolicit, now: float) -> None: ...

    def receive_na(self, dst: bytes, hop_limit: int, na: NeighborAdvert, now: float) -> None: ...


class AddrState(enum.Enum):
    TENTATIVE = "tentative"  # DAD running (RFC 4862 §5.4), not usable
    OPTIMISTIC = "optimistic"  # DAD running, usable under RFC 4429's restrictions
    PREFERRED = "preferred"
    DEPRECATED = "deprecated"  # preferred lifetime over: existing flows only (RFC 4862 §5.5.4)
    DUPLICATE = "duplicate"  # DAD failed: never used


_USABLE = frozenset((AddrState.PREFERRED, AddrState.DEPRECATED, AddrState.OPTIMISTIC))


class Addr6:
    """One address of an interface and its life: DAD state, lifetimes, where it came from."""

    __slots__ = ("dad_counter", "dad_left", "if6", "ip", "origin", "preferred_timer", "preferred_until", "prefixlen",
                 "state", "valid_timer", "valid_until")

    def __init__(self, if6: If6, ip: bytes, prefixlen: int, origin: str) -> None:
        self.if6 = if6
        self.ip = ip
        self.prefixlen = prefixlen
        self.origin = origin  # "static", "link" (link-local), "slaac", "temporary" (RFC 8981)
        self.state = AddrState.TENTATIVE
        self.dad_left = 0
        self.dad_counter = 0  # RFC 7217 DAD_Counter
        self.valid_timer: Timer | None = None
        self.preferred_timer: Timer | None = None
        self.valid_until: float | None = None  # None: forever
        self.preferred_until: float | None = None

    @property
    def tentative(self) -> bool:
        """DAD running and the address not usable yet (classic DAD)."""
        return self.state is AddrState.TENTATIVE

    @property
    def optimistic(self) -> bool:
        return self.state is AddrState.OPTIMISTIC

    @property
    def dad_pending(self) -> bool:
        """DAD has not ended: an NS from ``::`` or an NA for the address means it is someone else's."""
        return self.state is AddrState.TENTATIVE or self.state is AddrState.OPTIMISTIC

    @property
    def usable(self) -> bool:
        """May be a source or destination: preferred, deprecated or optimistic (RFC 4429 §2.1)."""
        return self.state in _USABLE

    @property
    def confirmed(self) -> bool:
        """Usable and past DAD: may also speak for itself in ND (RFC 4429 §2.2: an optimistic one may not)."""
        return self.state is AddrState.PREFERRED or self.state is AddrState.DEPRECATED

    @property
    def interface(self) -> ipaddress.IPv6Interface:
        return ipaddress.IPv6Interface((self.ip, self.prefixlen))

    def __repr__(self) -> str:
        return f"<Addr6 {self.interface} {self.origin} {self.state.value}>"


class If6:
    """IPv6 state of one interface."""

    def __init__(self, iface: Interface) -> None:
        self.iface = iface
        self.addrs: list[Addr6] = []
        self.groups: dict[bytes, int] = {ALL_NODES: 1}  # group -> how many users joined it
        self.nd: Neighbours6 | None = None
        self.mtu = iface.mtu
        self.hop_limit: int | None = None  # an RA's Cur Hop Limit overrides the sysctl
        self.nd_overrides: dict[str, float] = {}  # RA ReachableTime / RetransTimer
        self.routers: dict[bytes, Timer | None] = {}  # default router -> its lifetime timer (None: static)
        self.onlink: dict[ipaddress.IPv6Network, Timer | None] = {}  # prefix -> valid lifetime timer
        self.ra_prefixes: set[ipaddress.IPv6Network] = set()  # the entries of onlink an RA made (capped)
        self.slaac = False
        self.rs_timer: Timer | None = None
        self.rs_sent = 0
        self.rs_interval = 0.0
        self.ra_seen = False
        self.link_local_done = False

    @property
    def link_local(self) -> bytes | None:
        """The link-local address once DAD confirmed it; an optimistic one does not source ND or MLD."""
        for a in self.addrs:
            if a.origin == "link" and a.confirmed:
                return a.ip
        return None

    @property
    def has_optimistic(self) -> bool:
        return any(a.optimistic for a in self.addrs)

    def __repr__(self) -> str:
        return f"<If6 {self.iface.name} {self.addrs}>"
