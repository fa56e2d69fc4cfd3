"""UDP-Lite (RFC 3828): UDP's sockets and demultiplexing with partial checksum coverage.

The layer is :class:`~.udp.UdpLayer` with protocol 136, its own port space and sockets (as
Linux's udplite table), the :mod:`~pytcp_green.stack.wire.udplite` codec and counters under
``udplite.``.  A socket has Linux's two options (udp(7), udplite(7)):

* ``UDPLITE_SEND_CSCOV``: how many octets the checksum of what it sends covers (§3.1); 0 the whole
  datagram; a value 1-7 is raised to 8, the header, and one above 65535 lowered to it, as Linux;
* ``UDPLITE_RECV_CSCOV``: once set, the least coverage it takes (§3.3, "let the receiving
  application block delivery of packets with coverage values less than a value provided by the
  application"); 0 then means only fully covered datagrams.  A partially covered datagram below
  it is dropped and counted (``udplite.drop.coverage_below_minimum``), with no ICMP error.
"""

from __future__ import annotations

from pytcp_green.stack.datagram.udp import UdpLayer, UdpSocket
from pytcp_green.stack.wire.udp import UDP_HEADER_LEN, UdpDatagram
from pytcp_green.stack.wire.udplite import PROTO_UDPLITE, UdpLiteDatagram, write_udplite


def clamp_coverage(value: int) -> int:
    """A coverage as Linux stores it: 0 kept, below 8 raised to 8, above 65535 lowered to it."""
    if value != 0 and value < UDP_HEADER_LEN:
        return UDP_HEADER_LEN
    return min(value, 0xFFFF)


class UdpLiteSocket(UdpSocket):
    """A UDP socket with checksum coverage; None is "never set" (full coverage, any accepted)."""

    def __init__(self, layer: UdpLiteLayer, family: int) -> None:
        super().__init__(layer, family)
        self.send_cscov: int | None = None
        self.recv_cscov: int | None = None


class UdpLiteLayer(UdpLayer):
    proto = PROTO_UDPLITE
    name = "udplite"

    def socket(self, family: int) -> UdpLiteSocket:
        return UdpLiteSocket(self, family)

    def parse(self, segment: memoryview, src: bytes, dst: bytes) -> UdpLiteDatagram:
        return UdpLiteDatagram.parse(segment, src, dst)

    def write_header(self, buf: bytearray, sock: UdpSocket, dport: int, size: int, src: bytes, dst: bytes) -> None:
        assert isinstance(sock, UdpLiteSocket)
        write_udplite(buf, 0, sock.local_port, dport, size, src, dst, sock.send_cscov)

    def accepts(self, sock: UdpSocket, dgram: UdpDatagram) -> bool:
        assert isinstance(sock, UdpLiteSocket) and isinstance(dgram, UdpLiteDatagram)
        minimum = sock.recv_cscov
        # As Linux: only a set option and a partially covered datagram are judged; 0 asks for full coverage.
        if minimum is None or not dgram.partial or (minimum and dgram.coverage >= minimum):
            return True
        self.svc.stats["udplite.drop.coverage_below_minimum"] += 1
        return False
