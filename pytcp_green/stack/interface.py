"""A network interface as the core sees it: link kind, MAC, MTU, IPv4 addresses and a transmit queue.

The core never writes to a device: frames to send are appended to :attr:`Interface.tx` and the
runtime (or the simulator) drains them.  That is the whole coupling between core and link.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytcp_green.stack.ipv4.arp import ArpCache


class LinkKind(enum.Enum):
    """What a frame on the interface starts with: part of the stack's contract with devices (link/device.py)."""

    ETHERNET = "ethernet"  # Ethernet II header (TAP, pair)
    IP = "ip"  # a bare IPv4/IPv6 packet (TUN, loopback)


class Interface:
    """One interface of the stack; created by :meth:`pytcp_green.stack.stack.Stack.add_interface`."""

    def __init__(self, name: str, kind: LinkKind, mtu: int, mac: bytes | None) -> None:
        if kind is LinkKind.ETHERNET and (mac is None or len(mac) != 6):
            raise ValueError(f"interface {name}: an Ethernet interface needs a 6-byte MAC")
        self.name = name
        self.kind = kind
        self.mtu = mtu
        self.mac = mac
        self.link_header_len = 14 if kind is LinkKind.ETHERNET else 0
        self.tx: deque[bytes | bytearray] = deque()
        self.ip4: list[ipaddress.IPv4Interface] = []
        self.arp: ArpCache | None = None  # set by the Stack for Ethernet interfaces
        self.index = 0  # the interface index (if_nametoindex), set by the Stack

    @property
    def is_loopback(self) -> bool:
        return self.kind is LinkKind.IP and any(a.ip.is_loopback for a in self.ip4)

    def ip4_source_for(self, dst: bytes) -> bytes | None:
        """The address of this interface on ``dst``'s subnet, else the primary address (RFC 1122 §3.3.4.3)."""
        if not self.ip4:
            return None
        target = ipaddress.IPv4Address(dst)
        for addr in self.ip4:
            if target in addr.network:
                return addr.ip.packed
        return self.ip4[0].ip.packed

    def __repr__(self) -> str:
        addrs = ",".join(str(a) for a in self.ip4)
        return f"<Interface {self.name} {self.kind.value} mtu={self.mtu} {addrs}>"
