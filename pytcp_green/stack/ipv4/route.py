"""The IPv4 routing table: connected routes and gateways, longest-prefix match (RFC 1812 §5.2.4.3).

A host's table is small, so lookups scan routes sorted by prefix length; the answer for each
destination is cached (a dict hit per packet) and the cache is cleared on every change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from pytcp_green.stack.interface import Interface


@dataclass(frozen=True)
class Route4:
    network: ipaddress.IPv4Network
    iface: Interface
    gateway: bytes | None = None  # None: the destination is on-link
    metric: int = 0

    def __str__(self) -> str:
        via = f" via {ipaddress.IPv4Address(self.gateway)}" if self.gateway else ""
        return f"{self.network}{via} dev {self.iface.name} metric {self.metric}"


class RouteTable4:
    def __init__(self) -> None:
        self._routes: list[Route4] = []
        self._cache: dict[bytes, Route4 | None] = {}

    def add(self, route: Route4) -> None:
        self._routes.append(route)
        self._routes.sort(key=lambda r: (-r.network.prefixlen, r.metric))
        self._cache.clear()

    def remove_where(self, iface: Interface, network: ipaddress.IPv4Network | None = None) -> None:
        """Drop the routes through ``iface`` (only those for ``network`` when given)."""
        self._routes = [
            r for r in self._routes if not (r.iface is iface and (network is None or r.network == network))
        ]
        self._cache.clear()

    def lookup(self, dst: bytes) -> Route4 | None:
        """The most specific route to ``dst`` (4 bytes), or None."""
        cache = self._cache
        if dst in cache:
            return cache[dst]
        target = int.from_bytes(dst, "big")
        found = None
        for route in self._routes:
            net = route.network
            if target & int(net.netmask) == int(net.network_address):
                found = route
                break
        if len(cache) > 4096:  # bound the cache against scans of many destinations
            cache.clear()
        cache[dst] = found
        return found

    def __iter__(self) -> Iterator[Route4]:
        return iter(list(self._routes))

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self._routes)
