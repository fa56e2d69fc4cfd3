"""UDP-Lite (RFC 3828): UDP's header with the length field turned into a checksum coverage.

Layout (§3.1)::

    source port (2) | destination port (2) | checksum coverage (2) | checksum (2) | data ...

The datagram's length is the IP payload's (there is no length field).  The coverage counts the
octets from the start of the header that the checksum covers: 0 means the whole datagram, else
it is at least 8 (the header is always covered) and at most the datagram's length; any other
value is malformed (§3.1, "MUST be discarded").  The checksum covers the pseudo-header of
RFC 768 / RFC 8200 §8.1 with protocol 136 and, as its length, the IP payload length (§3.2), then
the covered octets; it is mandatory, so zero is malformed over both families (§3.1), and a
computed zero goes out as 0xFFFF as in UDP.
"""

from __future__ import annotations

import struct

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.checksum import checksum, is_valid, pseudo_sum
from pytcp_green.stack.wire.udp import UDP_HEADER_LEN, UdpDatagram

PROTO_UDPLITE = 136

_HEADER = struct.Struct("!HHHH")
_CHECKSUM = struct.Struct("!H")


class UdpLiteDatagram(UdpDatagram):
    """A parsed UDP-Lite datagram: ``length`` is the whole datagram's, ``coverage`` how many of its
    octets the checksum covered (``length`` when the field said 0), ``payload`` all the data."""

    __slots__ = ("coverage",)

    coverage: int

    @property
    def partial(self) -> bool:
        """Whether some of the data was not covered (what a socket's UDPLITE_RECV_CSCOV judges)."""
        return self.coverage < self.length

    @classmethod
    def parse(cls, buf: memoryview, src: bytes, dst: bytes, verify: bool = True) -> UdpLiteDatagram:
        """Parse the datagram in ``buf`` (the whole IP payload) sent from ``src`` to ``dst``."""
        length = len(buf)
        if length < UDP_HEADER_LEN:
            raise Malformed("too_short")
        sport, dport, coverage, csum = _HEADER.unpack_from(buf)
        if coverage == 0:
            coverage = length
        elif coverage < UDP_HEADER_LEN or coverage > length:
            raise Malformed("bad_coverage")
        if csum == 0:
            raise Malformed("zero_checksum")
        if verify and not is_valid(buf[:coverage], pseudo_sum(src, dst, PROTO_UDPLITE, length)):
            raise Malformed("bad_checksum")
        dgram = cls(sport, dport, length, csum, buf[UDP_HEADER_LEN:])
        dgram.coverage = coverage
        return dgram

    def __repr__(self) -> str:
        return (f"UdpLiteDatagram(sport={self.sport}, dport={self.dport}, length={self.length}, "
                f"coverage={self.coverage}, checksum=0x{self.checksum:04x})")


def write_udplite(buf: bytearray, offset: int, sport: int, dport: int, payload_len: int, src: bytes, dst: bytes,
                  cscov: int | None) -> None:
    """Write the UDP-Lite header at ``offset`` and its checksum; the payload must already follow it.

    ``cscov`` is the sender's UDPLITE_SEND_CSCOV (None: never set).  As Linux (udplite_csum), a
    coverage below the datagram's length is sent as is (0 included: the field then says "whole
    datagram"); none, or one not below the length, sends the length itself, which means the same
    as 0 (§3.1).
    """
    length = UDP_HEADER_LEN + payload_len
    field = cscov if cscov is not None and cscov < length else length
    covered = field or length
    _HEADER.pack_into(buf, offset, sport, dport, field, 0)
    with memoryview(buf) as mv:
        csum = checksum(mv[offset : offset + covered], pseudo_sum(src, dst, PROTO_UDPLITE, length))
    _CHECKSUM.pack_into(buf, offset + 6, csum or 0xFFFF)
