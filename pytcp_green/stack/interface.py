"""A network interface as the core sees it: link kind, MAC, MTU, IPv4 addresses and a transmit queue.

The core never writes to a device: frames to send are appended to :attr:`Interface.tx` and the
runtime (or the simulator) drains them.  That is the whole coupling between core and link, with
what a device can do: :attr:`Interface.tso_max` (it segments TCP itself),
:attr:`Interface.csum_free` (no TCP checksum is checked behind it), :class:`GsoFrame` (a
super-segment for such a device) and :class:`TrustedFrame` (the mark a device puts on a received
frame whose checksum it vouches for).
"""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from typing import TYPE_CHECKING, NamedTuple, TypeVar

if TYPE_CHECKING:
    from pytcp_green.stack.ipv4.arp import ArpCache


class LinkKind(enum.Enum):
    """What a frame on the interface starts with: part of the stack's contract with devices (link/device.py)."""

    ETHERNET = "ethernet"  # Ethernet II header (TAP, pair)
    IP = "ip"  # a bare IPv4/IPv6 packet (TUN, loopback)


class TrustedFrame(bytes):
    """A received frame whose transport checksum its device vouches for, so the stack skips verifying it.

    A TAP opened with offloads marks what the kernel flags ``VIRTIO_NET_HDR_F_NEEDS_CSUM`` (its own
    packet, the checksum field holding only the pseudo-header sum) or ``DATA_VALID`` (checked), as a
    NIC's CHECKSUM_UNNECESSARY does; the loopback marks the stack's own frames.  The mark lives on the
    frame object, so anything that copies or changes a frame on the way (an impairment that corrupts
    it) hands up plain bytes, which are checked as usual.  Only unfragmented TCP uses the mark.
    """

    __slots__ = ()


class Egress(NamedTuple):
    """What the interface toward a destination offers a transport, looked up once per connection
    (as Linux caches a socket's route and its GSO limits)."""

    tso_max: int  # the largest IP packet its device segments itself (TSO); 0 when it does not
    csum_free: bool  # nobody checks a checksum sent through it (the loopback)
    room: int  # the link and IP headers in front of a transport header: a frame built with this much
    # room in front of the segment leaves without a copy (``room`` of ``Stack.ip_output``)


class GsoFrame(bytearray):
    """A frame carrying one TCP super-segment for a device that segments it (TSO), longer than the MTU.

    ``gso_size`` is the payload of each wire segment (the MSS less options), ``l3`` where the IP
    header starts and ``l4`` where TCP's does; the TCP checksum field holds only the pseudo-header
    sum (Linux's CHECKSUM_PARTIAL), which the device completes per segment.  The stack makes one
    only for an interface whose :attr:`Interface.tso_max` allows it; anything between the stack and
    the device that must see wire frames (impairment, capture) splits it with
    :func:`pytcp_green.stack.wire.offload.segment_tcp`.
    """

    __slots__ = ("gso_size", "l3", "l4")

    gso_size: int
    l3: int
    l4: int


_SOURCES_CACHED = 256  # destinations whose IPv4 source an interface remembers (ip4_source_for)


class Interface:
    """One interface of the stack; created by :meth:`pytcp_green.stack.stack.Stack.add_interface`."""

    def __init__(self, name: str, kind: LinkKind, mtu: int, mac: bytes | None, *, tso_max: int = 0,
                 csum_free: bool = False) -> None:
        if kind is LinkKind.ETHERNET and (mac is None or len(mac) != 6):
            raise ValueError(f"interface {name}: an Ethernet interface needs a 6-byte MAC")
        self.name = name
        self.kind = kind
        self.mtu = mtu
        self.mac = mac
        self.link_header_len = 14 if kind is LinkKind.ETHERNET else 0
        # The device's contract (link/device.py): the largest IP packet of a TCP super-segment it
        # segments itself (TSO), 0 when it takes only MTU-sized frames.
        self.tso_max = tso_max
        # Nobody checks a TCP checksum sent here (the loopback: the stack takes its own frames on
        # trust), so TCP writes only the pseudo-header sum, as Linux's lo does with CHECKSUM_PARTIAL.
        self.csum_free = csum_free
        self.tx: deque[bytes | bytearray] = deque()
        self.ip4: list[ipaddress.IPv4Interface] = []
        # ip4_source_for's answers, valid while ``ip4`` equals the snapshot they were made from.
        self._sources4: dict[bytes, bytes] = {}
        self._sources4_of: list[ipaddress.IPv4Interface] = []
        self.arp: ArpCache | None = None  # set by the Stack for Ethernet interfaces
        self.index = 0  # the interface index (if_nametoindex), set by the Stack

    @property
    def is_loopback(self) -> bool:
        return self.kind is LinkKind.IP and any(a.ip.is_loopback for a in self.ip4)

    def ip4_source_for(self, dst: bytes) -> bytes | None:
        """The address of this interface on ``dst``'s subnet, else the primary address (RFC 1122 §3.3.4.3)."""
        ip4 = self.ip4
        if not ip4:
            return None
        # An unconnected UDP socket asks on every send.  The list compares item by item, identity
        # first, so an unchanged address list costs one comparison per address.
        if self._sources4_of != ip4:
            self._sources4_of = list(ip4)
            self._sources4.clear()
        source = self._sources4.get(dst)
        if source is None:
            target = ipaddress.IPv4Address(dst)
            source = next((a.ip.packed for a in ip4 if target in a.network), ip4[0].ip.packed)
            if len(self._sources4) < _SOURCES_CACHED:
                self._sources4[dst] = source
        return source

    def __repr__(self) -> str:
        addrs = ",".join(str(a) for a in self.ip4)
        return f"<Interface {self.name} {self.kind.value} mtu={self.mtu} {addrs}>"


FrameT = TypeVar("FrameT", bytearray, GsoFrame)


def frame_for(payload: bytes | bytearray | memoryview, room: int, l4: int, kind: type[FrameT]) -> FrameT:
    """The frame carrying ``payload[room:]`` behind ``l4`` bytes of headers: ``payload`` itself when a
    transport built it of this kind with exactly that room in front (the headers are then written in
    place, see :class:`Egress`), else a copy."""
    if room == l4 and type(payload) is kind:
        return payload
    frame = kind(l4 + len(payload) - room)
    frame[l4:] = memoryview(payload)[room:]
    return frame
