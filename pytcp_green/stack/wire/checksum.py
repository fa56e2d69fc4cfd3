"""The Internet checksum (RFC 1071) and the pseudo-header sums of RFC 768/9293 (IPv4) and RFC 8200 §8.1.

The one's-complement sum of 16-bit words equals the big integer of the data modulo 0xFFFF
(because 2**16 == 1 mod 0xFFFF), except that a non-zero sum which is a multiple of 0xFFFF is
0xFFFF rather than 0.  ``int.from_bytes`` runs in C, so this is some 20x faster than summing
words in Python.  Partial sums of even-length pieces add up, which lets the pseudo-header be
summed separately from the segment without concatenating them.
"""

from __future__ import annotations

from typing import TypeAlias

Buffer: TypeAlias = bytes | bytearray | memoryview

_from_bytes = int.from_bytes


def ones_sum(data: Buffer, initial: int = 0) -> int:
    """One's-complement sum of ``data`` (padded with a zero byte if odd) plus ``initial``, folded to 16 bits.

    Returns a value in 1..0xFFFF unless everything summed was zero, in which case 0.
    """
    mv = memoryview(data)
    n = mv.nbytes
    value = _from_bytes(mv, "big")
    if n & 1:
        value <<= 8
    total = value + initial
    if total == 0:
        return 0
    folded = total % 0xFFFF
    return folded or 0xFFFF


def checksum(data: Buffer, initial: int = 0) -> int:
    """The value to store in a checksum field: the complement of :func:`ones_sum`."""
    return ~ones_sum(data, initial) & 0xFFFF


def is_valid(data: Buffer, initial: int = 0) -> bool:
    """True when ``data`` (checksum field included) plus ``initial`` sums to all ones."""
    return ones_sum(data, initial) == 0xFFFF


def pseudo_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Partial sum of the IPv4 (4-byte addresses) or IPv6 (16-byte) pseudo-header, unfolded.

    IPv4: src, dst, zero, protocol, 16-bit length (RFC 9293 §3.1).  IPv6: src, dst, 32-bit
    length, 3 zero bytes, next header (RFC 8200 §8.1).  Both reduce to the same word sum.
    """
    return _from_bytes(src, "big") % 0xFFFF + _from_bytes(dst, "big") % 0xFFFF + proto + length
