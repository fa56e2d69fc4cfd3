"""The path MTU cache of one IP layer (RFC 1191 for IPv4, RFC 8201 for IPv6).

Each family decides from an ICMP message whether a destination's path MTU goes down (and to
what); this cache keeps the lowered values, one per destination, each forgotten
``net.ipv4.route.mtu_expires`` / ``net.ipv6.route.mtu_expires`` seconds after it was learned
(RFC 1191 §6.3, RFC 8201 §4: "attempt to detect an increase"), and at most
:data:`PMTU_CACHE_SIZE` of them, the oldest evicted first so a flood of forged messages cannot
grow it without bound.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytcp_green.stack.services import Services
    from pytcp_green.stack.timers import Timer

PMTU_CACHE_SIZE = 1024


class PmtuEntry:
    __slots__ = ("mtu", "timer")

    def __init__(self, mtu: int, timer: Timer) -> None:
        self.mtu = mtu
        self.timer = timer


class PmtuCache:
    """Learned path MTUs by destination; ``stats`` is the counter prefix (``"ip4.pmtu."``)."""

    def __init__(self, svc: Services, stats: str, expires_sysctl: str) -> None:
        self.svc = svc
        self.entries: dict[bytes, PmtuEntry] = {}  # insertion order: oldest first
        self._stats = stats
        self._expires_sysctl = expires_sysctl

    def clamp(self, dst: bytes, mtu: int) -> int:
        """``mtu`` (the link's), or the path MTU learned for ``dst`` when that is lower."""
        entry = self.entries.get(dst) if self.entries else None
        return mtu if entry is None or entry.mtu >= mtu else entry.mtu

    def lower(self, dst: bytes, mtu: int, now: float) -> None:
        """Remember ``mtu`` for ``dst``, which the family found lower than the current path MTU."""
        old = self.entries.pop(dst, None)
        if old is not None:
            old.timer.cancel()
        elif len(self.entries) >= PMTU_CACHE_SIZE:
            self.entries.pop(next(iter(self.entries))).timer.cancel()
        expires = now + self.svc.sysctl.float(self._expires_sysctl)
        self.entries[dst] = PmtuEntry(mtu, self.svc.timers.schedule(expires, functools.partial(self._expire, dst)))
        self.svc.stats[self._stats + "lowered"] += 1

    def _expire(self, dst: bytes, now: float) -> None:
        if self.entries.pop(dst, None) is not None:
            self.svc.stats[self._stats + "expired"] += 1
