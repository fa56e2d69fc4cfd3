"""ARP for IPv4 over Ethernet (RFC 826 "Packet format"; RFC 5227 for probes/announcements).

Layout (28 bytes for Ethernet/IPv4)::

    htype (2) | ptype (2) | hlen (1) | plen (1) | oper (2) |
    sha (6) | spa (4) | tha (6) | tpa (4)

Only hardware type 1 (Ethernet), protocol type 0x0800 (IPv4) with 6/4-byte addresses is
handled; RFC 826 lets a receiver ignore any pair it does not speak.  Bytes after the 28 (the
Ethernet minimum-size padding) are ignored.
"""

from __future__ import annotations

import struct

from pytcp_green.stack.wire import Malformed

ARP_LEN = 28
ARP_OP_REQUEST = 1
ARP_OP_REPLY = 2

ARP_HTYPE_ETHERNET = 1
ARP_PTYPE_IP4 = 0x0800

_PACKET = struct.Struct("!HHBBH6s4s6s4s")
# For parsing, htype+ptype and hlen+plen are read as one 32-bit and one 16-bit word: two
# comparisons instead of four on every received packet, same single unpack.
_PARSE = struct.Struct("!IHH6s4s6s4s")
_HTYPE_PTYPE = (ARP_HTYPE_ETHERNET << 16) | ARP_PTYPE_IP4
_HLEN_PLEN = (6 << 8) | 4


class ArpPacket:
    """A parsed Ethernet/IPv4 ARP packet; the addresses are short ``bytes`` copies."""

    __slots__ = ("oper", "sha", "spa", "tha", "tpa")

    oper: int
    sha: bytes
    spa: bytes
    tha: bytes
    tpa: bytes

    def __init__(self, oper: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> None:
        self.oper = oper
        self.sha = sha
        self.spa = spa
        self.tha = tha
        self.tpa = tpa

    @classmethod
    def parse(cls, buf: memoryview) -> ArpPacket:
        """Parse an ARP packet at the start of ``buf``; raise :class:`Malformed` when invalid."""
        if len(buf) < ARP_LEN:
            raise Malformed("too_short")
        types, lens, oper, sha, spa, tha, tpa = _PARSE.unpack_from(buf)
        if types != _HTYPE_PTYPE or lens != _HLEN_PLEN:
            raise Malformed("unsupported_format")
        if oper != ARP_OP_REQUEST and oper != ARP_OP_REPLY:
            raise Malformed("bad_oper")
        return cls(oper, sha, spa, tha, tpa)

    @property
    def is_probe(self) -> bool:
        """RFC 5227 §2.1.1 probe: a request whose sender protocol address is 0.0.0.0."""
        return self.oper == ARP_OP_REQUEST and self.spa == b"\x00\x00\x00\x00"

    def __repr__(self) -> str:
        return (
            f"ArpPacket(oper={self.oper}, sha={self.sha.hex(':')}, spa={'.'.join(map(str, self.spa))}, "
            f"tha={self.tha.hex(':')}, tpa={'.'.join(map(str, self.tpa))})"
        )


def write_arp(buf: bytearray, offset: int, oper: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> None:
    """Write a 28-byte Ethernet/IPv4 ARP packet at ``offset``."""
    _PACKET.pack_into(buf, offset, ARP_HTYPE_ETHERNET, ARP_PTYPE_IP4, 6, 4, oper, sha, spa, tha, tpa)
