"""Deliberately simple reference code the codecs are checked against.

Nothing here is fast or clever: word-by-word sums with an explicit end-around carry, the
way RFC 1071 §1 describes them, and headers assembled byte by byte.
"""

from __future__ import annotations


def naive_ones_sum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 one's-complement sum of 16-bit big-endian words (odd data padded with zero)."""
    if len(data) % 2:
        data = data + b"\x00"
    total = initial
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def naive_checksum(data: bytes, initial: int = 0) -> int:
    return ~naive_ones_sum(data, initial) & 0xFFFF


def naive_pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """The pseudo-header bytes themselves: RFC 768 for IPv4, RFC 8200 §8.1 for IPv6."""
    if len(src) == 4:
        return src + dst + bytes([0, proto]) + length.to_bytes(2, "big")
    return src + dst + length.to_bytes(4, "big") + bytes(3) + bytes([proto])


def ip4_header(
    *,
    version: int = 4,
    ihl: int | None = None,
    tos: int = 0,
    total_len: int | None = None,
    ident: int = 0x1234,
    flags_frag: int = 0,
    ttl: int = 64,
    proto: int = 17,
    src: bytes = b"\x0a\x00\x00\x01",
    dst: bytes = b"\x0a\x00\x00\x02",
    options: bytes = b"",
    payload: bytes = b"",
    good_checksum: bool = True,
) -> bytes:
    """An IPv4 packet assembled by hand, with any field as wrong as a test needs it to be."""
    if ihl is None:
        ihl = (20 + len(options)) // 4
    if total_len is None:
        total_len = 20 + len(options) + len(payload)
    hdr = bytearray(
        bytes([(version << 4) | (ihl & 0x0F), tos])
        + total_len.to_bytes(2, "big")
        + ident.to_bytes(2, "big")
        + flags_frag.to_bytes(2, "big")
        + bytes([ttl, proto, 0, 0])
        + src
        + dst
        + options
    )
    csum = naive_checksum(bytes(hdr))
    if not good_checksum:
        csum ^= 0x0101
    hdr[10:12] = csum.to_bytes(2, "big")
    return bytes(hdr) + payload
