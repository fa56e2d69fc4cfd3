"""Raw IP sockets: ``socket(AF_INET or AF_INET6, SOCK_RAW, protocol)`` as Linux's (raw(7), ipv6 raw(7)).

* Input: IP input hands every packet for us to :meth:`RawLayer.receive` before its protocol sees
  it, and each raw socket of that protocol (bound to the packet's destination or to none, connected
  to its source or to none) gets its own copy, as Linux's raw_v4_input does.  An IPv4 socket reads
  the IP header too; an IPv6 one reads the payload only.  The source comes as ``(address, 0)``.
* Output: ``sendto(payload, (host, _))`` sends ``payload`` as the protocol's through IP output; for
  ICMPv6 the stack computes the checksum (RFC 3542 §3.1, Linux's default), for everything else
  it is the caller's (an ICMPv4 message carries its own, as on Linux).
* The caller's own IP header (``hdrincl``): set by ``IP_HDRINCL`` / ``IPV6_HDRINCL``, and implied by
  ``IPPROTO_RAW``, which sends any protocol (the one in the header) and receives nothing, as raw(7)
  says.  The packet goes to IP as it is, routed by the sendto() address; IPv4 fills in what Linux
  fills in (see :meth:`pytcp_green.stack.ipv4.ip.Ip4.output_packet`).

Not emulated: ICMP6_FILTER.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pytcp_green.stack.datagram.base import DatagramSocket
from pytcp_green.stack.sockbase import AF_INET, Address, oserror, pack_host, sockaddr
from pytcp_green.stack.wire.checksum import checksum, pseudo_sum

if TYPE_CHECKING:
    from pytcp_green.stack.contracts import Network
    from pytcp_green.stack.services import Services

PROTO_ICMP6 = 58
IPPROTO_RAW = 255
MAX_PAYLOAD = 65535


class RawSocket(DatagramSocket):
    """One raw endpoint of ``family`` for IP protocol ``protocol``.  Non-blocking, like every core socket."""

    def __init__(self, layer: RawLayer, family: int, protocol: int) -> None:
        super().__init__(family, layer.svc, "raw.drop.rcvbuf_full")
        self.layer = layer
        self.protocol = protocol
        self.hdrincl = protocol == IPPROTO_RAW
        layer.sockets.append(self)

    def bind(self, addr: Address) -> None:
        self._check_open()
        self.local_addr = pack_host(self.family, addr[0])

    def connect(self, addr: Address, now: float) -> None:
        self._check_open()
        self.remote_addr = pack_host(self.family, addr[0])
        self.wake()

    def getsockname(self) -> Address:
        return sockaddr(self.family, self.local_addr, 0)

    def getpeername(self) -> Address:
        if self.remote_addr is None:
            raise oserror(errno.ENOTCONN)
        return sockaddr(self.family, self.remote_addr, 0)

    def sendto(self, data: bytes | bytearray | memoryview, addr: Address | None, now: float) -> int:
        self._check_open()
        self._raise_pending()
        dst = self._destination(addr)
        if len(data) > MAX_PAYLOAD:
            raise oserror(errno.EMSGSIZE)
        net = self.layer.net
        err = net.ip_output_packet(data, dst, now) if self.hdrincl else self._send_payload(data, dst, now)
        if err:
            raise oserror(err)
        self.layer.svc.stats["raw.tx"] += 1
        return len(data)

    def _send_payload(self, data: bytes | bytearray | memoryview, dst: bytes, now: float) -> int:
        """Send ``data`` behind an IP header of the stack's (no IP_HDRINCL); 0 or an errno."""
        net = self.layer.net
        src = self.local_addr
        if src == self.wildcard:
            chosen = net.select_source(dst)
            if chosen is None:
                return errno.ENETUNREACH
            src = chosen
        buf = bytearray(data)
        if self.family != AF_INET and self.protocol == PROTO_ICMP6 and len(buf) >= 4:
            buf[2:4] = b"\0\0"
            buf[2:4] = checksum(buf, pseudo_sum(src, dst, PROTO_ICMP6, len(buf))).to_bytes(2, "big")
        return net.ip_output(src, dst, self.protocol, buf, now, tos=self.tos, hops=self.ttl)

    def close(self, now: float | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        self.layer.sockets.remove(self)
        self.queue.clear()
        self.wake()


class RawLayer:
    """The raw sockets of a stack, both families; fed by IP input, sending through ``net``."""

    def __init__(self, svc: Services, net: Network) -> None:
        self.svc = svc
        self.net = net
        self.sockets: list[RawSocket] = []

    def socket(self, family: int, protocol: int) -> RawSocket:
        if not 0 < protocol <= IPPROTO_RAW:
            raise oserror(errno.EPROTONOSUPPORT)  # Linux: protocol 0 (IPPROTO_IP) is not a raw protocol
        return RawSocket(self, family, protocol)

    def receive(self, family: int, protocol: int, src: bytes, dst: bytes, *parts: memoryview) -> bool:
        """A packet for us of ``protocol``, in ``parts`` (IPv4: header and payload; IPv6: the payload);
        True if a socket took a copy.  Nothing is copied unless a socket matches."""
        packet: bytes | None = None
        for sock in self.sockets:
            if sock.family != family or sock.protocol != protocol or protocol == IPPROTO_RAW:
                continue
            if sock.local_addr not in (sock.wildcard, dst) or sock.remote_addr not in (None, src):
                continue
            if packet is None:
                packet = b"".join(parts)
            sock.deliver(packet, sockaddr(family, src, 0))
            self.svc.stats["raw.rx"] += 1
        return packet is not None
