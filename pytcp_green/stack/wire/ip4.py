"""IPv4 header (RFC 791 §3.1; receive checks per RFC 1122 §3.2.1; ident per RFC 6864).

Layout::

    ver/ihl (1) | tos (1) | total length (2) | ident (2) | flags/fragment offset (2) |
    ttl (1) | protocol (1) | header checksum (2) | source (4) | destination (4) | options ...

Receive checks, in order (RFC 1122 §3.2.1.1-§3.2.1.2 "MUST silently discard"):
version 4, IHL >= 5 and inside the buffer, total length covering the header and not beyond
the buffer (what follows it is link padding and is ignored), header checksum, reserved flag
clear (RFC 791 "Bit 0: reserved, must be zero"; we drop rather than forward nonsense), and
well-formed options (RFC 791 §3.1 "Options": EOL ends the list, NOP is one byte, every other
option carries a length octet >= 2 that stays within the header).

The TOS byte is kept whole: ``tos = dscp << 2 | ecn`` (RFC 2474 §3, RFC 3168 §5).
The fragment offset is exposed in bytes (the wire carries 8-byte units).
"""

from __future__ import annotations

import struct

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.checksum import checksum, is_valid

IP4_HEADER_LEN = 20
IP4_MAX_HEADER_LEN = 60
PROTO_ICMP = 1
PROTO_IGMP = 2
PROTO_TCP = 6
PROTO_UDP = 17

# Option types (RFC 791 §3.1; Router Alert RFC 2113).
OPT_EOL = 0
OPT_NOP = 1
OPT_RR = 7
OPT_TS = 68
OPT_LSRR = 131
OPT_SSRR = 137
OPT_ROUTER_ALERT = 148

_FLAG_RESERVED = 0x8000
_FLAG_DF = 0x4000
_FLAG_MF = 0x2000
_OFFSET_MASK = 0x1FFF

# Everything up to and including the addresses, checksum included (it is verified over the
# whole header, not compared).
_HEADER = struct.Struct("!BBHHHBBH4s4s")
_CHECKSUM = struct.Struct("!H")


def _check_options(opts: memoryview) -> None:
    """Walk the option list once so that later consumers can trust every length octet."""
    n = len(opts)
    i = 0
    while i < n:
        kind = opts[i]
        if kind == OPT_EOL:
            return  # the rest is padding (RFC 791: "may not coincide with the end of the header")
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise Malformed("bad_option")
        length = opts[i + 1]
        if length < 2 or i + length > n:
            raise Malformed("bad_option")
        i += length


class Ip4Packet:
    """A parsed IPv4 packet; ``header``, ``options`` and ``payload`` are views into the buffer."""

    __slots__ = (
        "df",
        "dst",
        "frag_offset",
        "header",
        "header_len",
        "ident",
        "mf",
        "options",
        "payload",
        "proto",
        "src",
        "tos",
        "total_len",
        "ttl",
    )

    header_len: int
    tos: int
    total_len: int
    ident: int
    df: bool
    mf: bool
    frag_offset: int
    ttl: int
    proto: int
    src: bytes
    dst: bytes
    options: memoryview
    payload: memoryview
    header: memoryview

    @classmethod
    def parse(cls, buf: memoryview) -> Ip4Packet:
        """Parse and validate the IPv4 packet at the start of ``buf``."""
        n = len(buf)
        if n < IP4_HEADER_LEN:
            raise Malformed("too_short")
        ver_ihl, tos, total_len, ident, flags_frag, ttl, proto, _, src, dst = _HEADER.unpack_from(buf)
        if ver_ihl >> 4 != 4:
            raise Malformed("bad_version")
        header_len = (ver_ihl & 0x0F) << 2
        if header_len < IP4_HEADER_LEN or header_len > n:
            raise Malformed("bad_header_len")
        if total_len < header_len or total_len > n:
            raise Malformed("bad_total_len")
        header = buf[:header_len]
        if not is_valid(header):
            raise Malformed("bad_checksum")
        if flags_frag & _FLAG_RESERVED:
            raise Malformed("reserved_flag")
        options = buf[IP4_HEADER_LEN:header_len]
        if header_len > IP4_HEADER_LEN:
            _check_options(options)
        # __init__ is skipped on purpose: fourteen keyword arguments per packet cost more than
        # filling the slots directly, and the class is only ever built here.
        self = cls.__new__(cls)
        self.header_len = header_len
        self.tos = tos
        self.total_len = total_len
        self.ident = ident
        self.df = bool(flags_frag & _FLAG_DF)
        self.mf = bool(flags_frag & _FLAG_MF)
        self.frag_offset = (flags_frag & _OFFSET_MASK) << 3
        self.ttl = ttl
        self.proto = proto
        self.src = src
        self.dst = dst
        self.options = options
        self.payload = buf[header_len:total_len]
        self.header = header
        return self

    def iter_options(self) -> list[tuple[int, memoryview]]:
        """The options as ``(type, view of the whole option incl. type and length bytes)``.

        EOL and NOP are padding, not options, so they are not listed.  Lengths were
        validated by :meth:`parse`.
        """
        opts = self.options
        n = len(opts)
        out: list[tuple[int, memoryview]] = []
        i = 0
        while i < n:
            kind = opts[i]
            if kind == OPT_EOL:
                break
            if kind == OPT_NOP:
                i += 1
                continue
            length = opts[i + 1]
            out.append((kind, opts[i : i + length]))
            i += length
        return out

    @property
    def is_fragment(self) -> bool:
        """True for any fragment, first (MF set, offset 0) or later (offset > 0)."""
        return self.mf or self.frag_offset != 0

    @property
    def dscp(self) -> int:
        return self.tos >> 2

    @property
    def ecn(self) -> int:
        return self.tos & 0x03

    def __repr__(self) -> str:
        return (
            f"Ip4Packet(src={'.'.join(map(str, self.src))}, dst={'.'.join(map(str, self.dst))}, "
            f"proto={self.proto}, ttl={self.ttl}, total_len={self.total_len}, ident={self.ident}, "
            f"df={self.df}, mf={self.mf}, frag_offset={self.frag_offset}, header_len={self.header_len})"
        )


def write_ip4(
    buf: bytearray,
    offset: int,
    *,
    src: bytes,
    dst: bytes,
    proto: int,
    total_len: int,
    ident: int,
    ttl: int = 64,
    tos: int = 0,
    df: bool = False,
    mf: bool = False,
    frag_offset: int = 0,
    options: bytes = b"",
) -> int:
    """Write an IPv4 header (with checksum) at ``offset`` and return its length.

    ``options`` is padded with zero bytes (EOL, RFC 791 "End of Option list") to a multiple of
    four.  ``frag_offset`` is in bytes and must be a multiple of 8.  ``total_len`` counts the
    header too.
    """
    if frag_offset & 7 or not 0 <= frag_offset <= _OFFSET_MASK << 3:
        raise ValueError(f"fragment offset {frag_offset} is not a multiple of 8 in 0..65528")
    header_len = IP4_HEADER_LEN
    if options:
        opt_len = len(options)
        padded = (opt_len + 3) & ~3
        header_len += padded
        if header_len > IP4_MAX_HEADER_LEN:
            raise ValueError(f"{opt_len} bytes of IPv4 options do not fit in a 60-byte header")
        start = offset + IP4_HEADER_LEN
        buf[start : start + opt_len] = options
        # Zero the padding explicitly: the buffer may be reused and hold stale bytes.
        buf[start + opt_len : offset + header_len] = bytes(padded - opt_len)
    flags_frag = (frag_offset >> 3) | (_FLAG_DF if df else 0) | (_FLAG_MF if mf else 0)
    _HEADER.pack_into(buf, offset, 0x40 | (header_len >> 2), tos, total_len, ident, flags_frag, ttl, proto, 0, src, dst)
    with memoryview(buf) as mv:
        csum = checksum(mv[offset : offset + header_len])
    _CHECKSUM.pack_into(buf, offset + 10, csum)
    return header_len


def reseal_ip4(buf: bytearray, offset: int) -> None:
    """Recompute, in place, the checksum of the IPv4 header at ``offset`` (after its fields changed)."""
    header_len = (buf[offset] & 0x0F) * 4
    _CHECKSUM.pack_into(buf, offset + 10, 0)
    with memoryview(buf) as mv:
        csum = checksum(mv[offset : offset + header_len])
    _CHECKSUM.pack_into(buf, offset + 10, csum)
