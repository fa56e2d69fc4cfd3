"""UDP (RFC 768), with the receive rules of RFC 1122 §4.1.3.4 and RFC 8200 §8.1.

Layout::

    source port (2) | destination port (2) | length (2) | checksum (2) | data ...

``length`` counts the header; the IP payload may be longer (link or IP padding beyond it is
ignored) but never shorter.  The checksum covers a pseudo-header (addresses, protocol,
UDP length) plus the datagram.  Over IPv4 a zero checksum means "the sender computed none"
(RFC 768) and is accepted; over IPv6 it is forbidden (RFC 8200 §8.1: "IPv6 receivers must
discard UDP packets containing a zero checksum").  A computed checksum of zero is sent as
0xFFFF, its one's-complement twin (RFC 768).
"""

from __future__ import annotations

import struct

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.checksum import checksum, is_valid, pseudo_sum

UDP_HEADER_LEN = 8
PROTO_UDP = 17

_HEADER = struct.Struct("!HHHH")
_CHECKSUM = struct.Struct("!H")


class UdpDatagram:
    """A parsed UDP datagram; ``payload`` is a view trimmed to ``length - 8`` bytes."""

    __slots__ = ("checksum", "dport", "length", "payload", "sport")

    sport: int
    dport: int
    length: int
    checksum: int
    payload: memoryview

    def __init__(self, sport: int, dport: int, length: int, checksum: int, payload: memoryview) -> None:
        self.sport = sport
        self.dport = dport
        self.length = length
        self.checksum = checksum
        self.payload = payload

    @classmethod
    def parse(cls, buf: memoryview, src: bytes, dst: bytes, verify: bool = True) -> UdpDatagram:
        """Parse the datagram in ``buf`` (the IP payload) sent from ``src`` to ``dst``.

        ``src``/``dst`` are 4-byte (IPv4) or 16-byte (IPv6) addresses; they select the
        pseudo-header and the zero-checksum rule.  ``verify=False`` skips every checksum check,
        for frames whose checksum the device has already validated (virtio DATA_VALID).
        """
        if len(buf) < UDP_HEADER_LEN:
            raise Malformed("too_short")
        sport, dport, length, csum = _HEADER.unpack_from(buf)
        if length < UDP_HEADER_LEN or length > len(buf):
            raise Malformed("bad_length")
        if verify:
            if csum == 0:
                if len(src) == 16:
                    raise Malformed("zero_checksum")
            elif not is_valid(buf[:length], pseudo_sum(src, dst, PROTO_UDP, length)):
                raise Malformed("bad_checksum")
        return cls(sport, dport, length, csum, buf[UDP_HEADER_LEN:length])

    def __repr__(self) -> str:
        return (
            f"UdpDatagram(sport={self.sport}, dport={self.dport}, length={self.length}, checksum=0x{self.checksum:04x})"
        )


def write_udp(buf: bytearray, offset: int, sport: int, dport: int, payload_len: int, src: bytes, dst: bytes) -> None:
    """Write the UDP header at ``offset`` and its checksum over pseudo-header, header and payload.

    The payload must already be in ``buf[offset + 8 : offset + 8 + payload_len]``.  The
    checksum is always computed (RFC 1122 §4.1.3.4: "MUST be enabled by default"), with
    4- or 16-byte ``src``/``dst`` choosing the IPv4 or IPv6 pseudo-header.
    """
    length = UDP_HEADER_LEN + payload_len
    _HEADER.pack_into(buf, offset, sport, dport, length, 0)
    with memoryview(buf) as mv:
        csum = checksum(mv[offset : offset + length], pseudo_sum(src, dst, PROTO_UDP, length))
    _CHECKSUM.pack_into(buf, offset + 6, csum or 0xFFFF)
