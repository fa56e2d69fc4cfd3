"""IPv6 header and extension headers (RFC 8200 §3, §4).

Fixed header (RFC 8200 §3)::

    version (4) | traffic class (8) | flow label (20) |
    payload length (2) | next header (1) | hop limit (1) | source (16) | destination (16)

``payload length`` counts everything after the 40-byte header, extension headers included;
what follows it in the buffer is link padding and is ignored.  A zero payload length with a
hop-by-hop header announces a jumbogram (RFC 2675), which no link of ours can carry: refused.

Extension headers (RFC 8200 §4) form a chain through their "next header" octets.  This module
only checks their *structure* (each header's length stays inside the packet) and names where
each one starts; what to do with them (RFC 8200 §4.1 order, unknown options, routing types,
fragments) is the IP layer's decision, because the answers are ICMPv6 errors that point at
offsets counted from the start of the IPv6 header — which is why every offset here is.

* Hop-by-hop (0) and destination options (60), RFC 8200 §4.3/§4.6: ``next header | hdr ext
  len (8-octet units, not counting the first 8) | TLV options``.  Options are
  ``type | data length | data``, Pad1 (type 0) being the one-octet exception; the two high
  bits of the type say what a node that does not know the option must do (RFC 8200 §4.2).
* Routing (43), RFC 8200 §4.4: ``next header | hdr ext len | routing type | segments left | ...``.
* Fragment (44), RFC 8200 §4.5: always 8 octets: ``next header | reserved | offset (13 bits,
  8-octet units) | res (2) | M | identification (32)``.
* Authentication header (51, RFC 4302 §2.2) is walked (its length counts 4-octet units minus 2)
  so that a quoted packet can be followed to its transport header; ESP (50) ends the walk.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

from pytcp_green.stack.wire import Malformed

IP6_HEADER_LEN = 40
IP6_MIN_MTU = 1280  # RFC 8200 §5

NH_HOP_BY_HOP = 0
NH_TCP = 6
NH_UDP = 17
NH_ROUTING = 43
NH_FRAGMENT = 44
NH_ESP = 50
NH_AH = 51
NH_ICMP6 = 58
NH_NONE = 59
NH_DEST_OPTS = 60
# The headers this module can walk over (RFC 8200 §4.1 plus AH, RFC 4302).
EXTENSION_HEADERS = frozenset({NH_HOP_BY_HOP, NH_ROUTING, NH_FRAGMENT, NH_DEST_OPTS, NH_AH})

# TLV option types (RFC 8200 §4.2; Router Alert RFC 2711; Jumbo Payload RFC 2675).
OPT_PAD1 = 0
OPT_PADN = 1
OPT_ROUTER_ALERT = 0x05
OPT_JUMBO = 0xC2

# RFC 8200 §4.2: the action an unrecognised option asks for, from its two high-order bits.
ACTION_SKIP = 0  # 00: skip over the option
ACTION_DISCARD = 1  # 01: discard the packet silently
ACTION_DISCARD_ICMP = 2  # 10: discard, send Parameter Problem code 2 even to a multicast destination
ACTION_DISCARD_ICMP_UNICAST = 3  # 11: discard, Parameter Problem code 2 only if the destination is unicast

FRAGMENT_HEADER_LEN = 8
FRAG_OFFSET_MAX = 0x1FFF << 3

_HEADER = struct.Struct("!IHBB16s16s")
_FRAGMENT = struct.Struct("!BBHI")
_NH_LEN = struct.Struct("!BB")


def option_action(opt_type: int) -> int:
    """RFC 8200 §4.2: what to do with an unrecognised option of this type (ACTION_*)."""
    return opt_type >> 6


class Ip6Packet:
    """A parsed IPv6 packet; ``header`` and ``payload`` are views into the received buffer.

    ``packet`` is the header plus exactly ``payload_len`` octets (link padding cut off): the
    extension-header offsets of :func:`walk_extensions` index into it.  ``link_multicast``: it
    arrived in a link-layer multicast or broadcast frame (set by the receiver; RFC 4443 §2.4 e.4/e.5).
    ``csum_ok``: the device vouched for the transport checksum (set by the receiver; never on a
    reassembled packet).
    """

    __slots__ = (
        "csum_ok",
        "dst",
        "flow_label",
        "header",
        "hop_limit",
        "link_multicast",
        "next_header",
        "packet",
        "payload",
        "payload_len",
        "src",
        "traffic_class",
    )

    traffic_class: int
    flow_label: int
    payload_len: int
    next_header: int
    hop_limit: int
    link_multicast: bool
    csum_ok: bool
    src: bytes
    dst: bytes
    header: memoryview
    payload: memoryview
    packet: memoryview

    @classmethod
    def parse(cls, buf: memoryview) -> Ip6Packet:
        """Parse and validate the IPv6 header at the start of ``buf`` (RFC 8200 §3)."""
        n = len(buf)
        if n < IP6_HEADER_LEN:
            raise Malformed("too_short")
        vtf, payload_len, next_header, hop_limit, src, dst = _HEADER.unpack_from(buf)
        if vtf >> 28 != 6:
            raise Malformed("bad_version")
        if IP6_HEADER_LEN + payload_len > n:
            raise Malformed("bad_payload_len")
        if payload_len == 0 and next_header == NH_HOP_BY_HOP:
            raise Malformed("jumbogram")  # RFC 2675: links of ours never carry one
        self = cls.__new__(cls)
        self.traffic_class = (vtf >> 20) & 0xFF
        self.flow_label = vtf & 0xFFFFF
        self.payload_len = payload_len
        self.next_header = next_header
        self.hop_limit = hop_limit
        self.link_multicast = False
        self.csum_ok = False
        self.src = src
        self.dst = dst
        end = IP6_HEADER_LEN + payload_len
        self.packet = buf[:end]
        self.header = buf[:IP6_HEADER_LEN]
        self.payload = buf[IP6_HEADER_LEN:end]
        return self

    def __repr__(self) -> str:
        return (
            f"Ip6Packet(src={ipaddress.IPv6Address(self.src)}, dst={ipaddress.IPv6Address(self.dst)}, "
            f"nh={self.next_header}, hlim={self.hop_limit}, plen={self.payload_len})"
        )


class ExtHeader:
    """One extension header: its type, where it starts, where its next-header octet is, its bytes."""

    __slots__ = ("data", "kind", "next_header", "offset")

    def __init__(self, kind: int, offset: int, next_header: int, data: memoryview) -> None:
        self.kind = kind
        self.offset = offset  # from the start of the IPv6 header
        self.next_header = next_header
        self.data = data  # the whole header, its first two octets included

    def __repr__(self) -> str:
        return f"ExtHeader(kind={self.kind}, offset={self.offset}, nh={self.next_header}, len={len(self.data)})"


def parse_ext_header(kind: int, packet: memoryview, offset: int) -> ExtHeader:
    """The extension header of type ``kind`` at ``offset`` of ``packet``; Malformed when it does not fit."""
    if offset + 2 > len(packet):
        raise Malformed("truncated_ext_header")
    next_header, hdr_len = _NH_LEN.unpack_from(packet, offset)
    if kind == NH_FRAGMENT:
        length = FRAGMENT_HEADER_LEN  # RFC 8200 §4.5: the length octet is "reserved" here
    elif kind == NH_AH:
        length = (hdr_len + 2) * 4  # RFC 4302 §2.2
    else:
        length = (hdr_len + 1) * 8
    if offset + length > len(packet):
        raise Malformed("truncated_ext_header")
    return ExtHeader(kind, offset, next_header, packet[offset : offset + length])


def walk_extensions(packet: memoryview, first: int, offset: int = IP6_HEADER_LEN) -> tuple[list[ExtHeader], int, int]:
    """Follow the chain from next-header value ``first`` at ``offset``.

    Returns (headers, upper-layer protocol, its offset).  The walk stops at the first value
    that is not an extension header it knows (the upper layer, ESP, No Next Header, or
    something unknown: the caller decides).
    """
    headers: list[ExtHeader] = []
    nh = first
    while nh in EXTENSION_HEADERS:
        hdr = parse_ext_header(nh, packet, offset)
        headers.append(hdr)
        offset += len(hdr.data)
        nh = hdr.next_header
        if len(headers) > 64:
            raise Malformed("too_many_ext_headers")
    return headers, nh, offset


class Ip6Option:
    """One TLV option: its type, its offset inside the extension header, its data."""

    __slots__ = ("data", "offset", "type")

    def __init__(self, type: int, offset: int, data: memoryview) -> None:
        self.type = type
        self.offset = offset
        self.data = data

    def __repr__(self) -> str:
        return f"Ip6Option(type=0x{self.type:02x}, offset={self.offset}, data={bytes(self.data).hex()})"


def parse_options(header: memoryview) -> list[Ip6Option]:
    """The TLV options of a hop-by-hop or destination options header (RFC 8200 §4.2).

    ``header`` is the whole extension header; Pad1 and PadN are padding and not listed.
    Malformed("bad_option") when an option's length runs past the header.
    """
    out: list[Ip6Option] = []
    n = len(header)
    i = 2
    while i < n:
        kind = header[i]
        if kind == OPT_PAD1:
            i += 1
            continue
        if i + 2 > n:
            raise Malformed("bad_option")
        length = header[i + 1]
        if i + 2 + length > n:
            raise Malformed("bad_option")
        if kind != OPT_PADN:
            out.append(Ip6Option(kind, i, header[i + 2 : i + 2 + length]))
        i += 2 + length
    return out


class FragmentHeader:
    """RFC 8200 §4.5 fragment header, parsed from an :class:`ExtHeader`."""

    __slots__ = ("ident", "more", "next_header", "offset")

    def __init__(self, next_header: int, offset: int, more: bool, ident: int) -> None:
        self.next_header = next_header
        self.offset = offset  # in bytes
        self.more = more
        self.ident = ident

    @classmethod
    def parse(cls, data: memoryview) -> FragmentHeader:
        if len(data) < FRAGMENT_HEADER_LEN:
            raise Malformed("truncated_ext_header")
        nh, _, off_m, ident = _FRAGMENT.unpack_from(data)
        return cls(nh, off_m & 0xFFF8, bool(off_m & 1), ident)

    @property
    def is_atomic(self) -> bool:
        """RFC 6946: offset 0 and M clear — a whole packet that merely carries a fragment header."""
        return self.offset == 0 and not self.more

    def __repr__(self) -> str:
        return f"FragmentHeader(nh={self.next_header}, offset={self.offset}, more={self.more}, ident={self.ident})"


class RoutingHeader:
    """The fixed part of a routing header (RFC 8200 §4.4)."""

    __slots__ = ("next_header", "routing_type", "segments_left")

    def __init__(self, next_header: int, routing_type: int, segments_left: int) -> None:
        self.next_header = next_header
        self.routing_type = routing_type
        self.segments_left = segments_left

    @classmethod
    def parse(cls, data: memoryview) -> RoutingHeader:
        if len(data) < 4:
            raise Malformed("truncated_ext_header")
        return cls(data[0], data[2], data[3])


def write_ip6(
    buf: bytearray,
    offset: int,
    *,
    src: bytes,
    dst: bytes,
    next_header: int,
    payload_len: int,
    hop_limit: int = 64,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> None:
    """Write the 40-byte fixed header at ``offset`` (IPv6 has no header checksum, RFC 8200 §3)."""
    vtf = (6 << 28) | ((traffic_class & 0xFF) << 20) | (flow_label & 0xFFFFF)
    _HEADER.pack_into(buf, offset, vtf, payload_len, next_header, hop_limit, src, dst)


def write_fragment_header(buf: bytearray, offset: int, next_header: int, frag_offset: int, more: bool,
                          ident: int) -> None:
    """Write an 8-byte fragment header; ``frag_offset`` in bytes, a multiple of 8."""
    if frag_offset & 7 or not 0 <= frag_offset <= FRAG_OFFSET_MAX:
        raise ValueError(f"fragment offset {frag_offset} is not a multiple of 8 in 0..{FRAG_OFFSET_MAX}")
    _FRAGMENT.pack_into(buf, offset, next_header, 0, frag_offset | int(more), ident & 0xFFFFFFFF)


def build_options_header(next_header: int, options: Iterable[tuple[int, bytes]]) -> bytes:
    """A hop-by-hop or destination options header holding ``options`` (type, data), padded (RFC 8200 §4.2).

    Padding to the 8-octet multiple uses Pad1 for one octet and PadN otherwise, as the RFC asks.
    """
    body = bytearray()
    for kind, data in options:
        if kind == OPT_PAD1:
            body.append(0)
        else:
            body += bytes((kind, len(data))) + data
    total = (2 + len(body) + 7) & ~7
    pad = total - 2 - len(body)
    if pad == 1:
        body.append(OPT_PAD1)
    elif pad:
        body += bytes((OPT_PADN, pad - 2)) + bytes(pad - 2)
    return bytes((next_header, total // 8 - 1)) + bytes(body)


def router_alert_hbh(next_header: int, value: int = 0) -> bytes:
    """The hop-by-hop header MLD needs (RFC 3810 §5, RFC 2711: Router Alert, value 0 = MLD)."""
    return build_options_header(next_header, [(OPT_ROUTER_ALERT, value.to_bytes(2, "big"))])


# -- addresses -----------------------------------------------------------------------------------------

ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
ALL_MLDV2_ROUTERS = bytes.fromhex("ff020000000000000000000000000016")
UNSPECIFIED = bytes(16)
LOOPBACK6 = bytes(15) + b"\x01"
V4MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_SOLICITED_PREFIX = bytes.fromhex("ff0200000000000000000001ff")


def solicited_node(addr: bytes) -> bytes:
    """RFC 4291 §2.7.1: ff02::1:ffXX:XXXX from the low 24 bits of ``addr``."""
    return _SOLICITED_PREFIX + addr[13:]


def multicast_mac6(group: bytes) -> bytes:
    """RFC 2464 §7: 33:33 followed by the last four octets of the group."""
    return b"\x33\x33" + group[12:]


def is_multicast6(addr: bytes) -> bool:
    return addr[0] == 0xFF


def is_link_local6(addr: bytes) -> bool:
    """fe80::/10 (RFC 4291 §2.5.6)."""
    return addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def multicast_scope(addr: bytes) -> int:
    """RFC 4291 §2.7: the scope nibble of a multicast address."""
    return addr[1] & 0x0F
