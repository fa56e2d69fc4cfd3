"""What the ICMPv4, ICMPv6 and IGMP codecs share.

ICMPv4 (RFC 792) and ICMPv6 (RFC 4443 §2.1) messages start with the same 8 bytes::

    type (1) | code (1) | checksum (2) | rest of header (4)

and IGMP's first four have the same place for the checksum.  All three checksums are the
Internet checksum over the whole message; ICMPv6's adds the IPv6 pseudo-header (RFC 4443
§2.3), passed here as its partial sum ``initial`` (0 for ICMPv4 and IGMP).

IGMPv3 (RFC 3376 §4.1.1, §4.1.7) and MLDv2 (RFC 3810 §5.1.3, §5.1.9) encode large times with
one floating-point format, ``1 | exp (3) | mant (m)``, meaning ``(mant | 1 << m) << (exp + 3)``;
codes below ``1 << (m + 3)`` are the value itself.
"""

from __future__ import annotations

import struct
from typing import Self

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.checksum import checksum, is_valid

ICMP_HEADER_LEN = 8

_HEADER = struct.Struct("!BBHI")
_CHECKSUM = struct.Struct("!H")


def check_message(buf: memoryview, min_len: int, initial: int | None = 0) -> None:
    """Refuse a message shorter than ``min_len`` or whose checksum (with ``initial``; None: unchecked) is wrong."""
    if len(buf) < min_len:
        raise Malformed("too_short")
    if initial is not None and not is_valid(buf, initial):
        raise Malformed("bad_checksum")


def put_checksum(buf: bytearray, offset: int, length: int, initial: int = 0) -> None:
    """Store the checksum of the ``length``-byte message at ``offset`` (its checksum field zero) in that field."""
    with memoryview(buf) as mv:
        csum = checksum(mv[offset : offset + length], initial)
    _CHECKSUM.pack_into(buf, offset + 2, csum)


def write_header(buf: bytearray, offset: int, type: int, code: int, rest: int, body_len: int,
                 initial: int = 0) -> None:
    """Write the 8-byte ICMP header at ``offset`` and the checksum over it and the body already in ``buf``."""
    _HEADER.pack_into(buf, offset, type, code, 0, rest)
    put_checksum(buf, offset, ICMP_HEADER_LEN + body_len, initial)


def echo_rest(ident: int, seq: int) -> int:
    """The rest-of-header word of an echo request/reply (RFC 792, RFC 4443 §4.1)."""
    return ((ident & 0xFFFF) << 16) | (seq & 0xFFFF)


def decode_float(code: int, mant_bits: int) -> int:
    """An IGMPv3/MLDv2 floating-point code with a ``mant_bits``-bit mantissa -> its value."""
    if code < 1 << (mant_bits + 3):
        return code
    return ((code & ((1 << mant_bits) - 1)) | 1 << mant_bits) << (((code >> mant_bits) & 0x7) + 3)


class IcmpMessage:
    """A parsed ICMP message; ``body`` is a view of everything after the 8-byte header.

    The families' subclasses name what ``rest`` means for their types.
    """

    __slots__ = ("body", "checksum", "code", "rest", "type")

    type: int
    code: int
    checksum: int
    rest: int
    body: memoryview

    def __init__(self, type: int, code: int, checksum: int, rest: int, body: memoryview) -> None:
        self.type = type
        self.code = code
        self.checksum = checksum
        self.rest = rest
        self.body = body

    @classmethod
    def _parse(cls, buf: memoryview, initial: int | None) -> Self:
        """The message filling ``buf``; its checksum is verified with ``initial`` unless that is None."""
        check_message(buf, ICMP_HEADER_LEN, initial)
        type_, code, csum, rest = _HEADER.unpack_from(buf)
        return cls(type_, code, csum, rest, buf[ICMP_HEADER_LEN:])

    @property
    def ident(self) -> int:
        """Echo identifier (high 16 bits of rest)."""
        return self.rest >> 16

    @property
    def seq(self) -> int:
        """Echo sequence number (low 16 bits of rest)."""
        return self.rest & 0xFFFF

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(type={self.type}, code={self.code}, rest=0x{self.rest:08x}, "
                f"body_len={len(self.body)})")
