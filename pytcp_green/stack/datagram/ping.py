"""ICMP echo sockets: ``socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`` as Linux's ping sockets behave.

What a program sees is what Linux gives an unprivileged ``ping`` (net/ipv4/ping.c semantics, ICMP
itself per RFC 792 "Echo or Echo Reply Message"):

* The socket's "port" is the echo identifier: ``bind((addr, ident))``, or one chosen when the
  first datagram leaves (any non-zero free one).  ``getsockname()`` shows it.
* ``sendto(message, (host, port))`` takes a whole ICMP message, header included.  It must be an
  echo request (type 8, code 0, at least 8 bytes, else EINVAL); the stack overwrites the
  identifier with the socket's and computes the checksum; the sequence number and data are the
  caller's.  The port of the address is ignored.  A broadcast needs SO_BROADCAST (EACCES).
* ``recvfrom`` returns echo replies whose identifier is the socket's, ICMP header included and
  IP header stripped, from ``(source, 0)``; a socket bound to an address only gets replies sent
  to that address.
* ICMP errors quoting one of the socket's requests (destination unreachable, time exceeded…)
  become the socket's pending error (ECONNREFUSED, EHOSTUNREACH, … as for UDP, RFC 1122
  §4.1.3.3) when it is connected, which is when Linux reports them without IP_RECVERR.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pytcp_green.stack.datagram.base import DatagramSocket, QueuedError, SocketTable
from pytcp_green.stack.ports import Binding, PortTable
from pytcp_green.stack.sockbase import (
    AF_INET,
    Address,
    oserror,
    pack_host,
    sockaddr,
)
from pytcp_green.stack.wire.icmp4 import ICMP4_HEADER_LEN, TYPE_ECHO_REQUEST, Icmp4Message, write_icmp4
from pytcp_green.stack.wire.ip4 import IP4_HEADER_LEN, PROTO_ICMP

if TYPE_CHECKING:
    from pytcp_green.stack.contracts import IcmpOrigin
    from pytcp_green.stack.ipv4.ip import Ip4Layer
    from pytcp_green.stack.services import Services

MAX_MESSAGE = 65535 - IP4_HEADER_LEN


class PingSocket(DatagramSocket):
    """One ICMP echo endpoint (IPv4); ``local_port`` is the echo identifier.  Non-blocking, like every core socket."""

    def __init__(self, layer: PingLayer) -> None:
        super().__init__(AF_INET, layer.svc, "ping.drop.rcvbuf_full")
        self.layer = layer

    # -- addressing ----------------------------------------------------------------------------------
    def bind(self, addr: Address) -> None:
        self._check_open()
        if self.binding is not None:
            raise oserror(errno.EINVAL, "already bound")
        local = pack_host(AF_INET, addr[0])
        if local != bytes(4) and local not in self.layer.ip4.local:
            raise oserror(errno.EADDRNOTAVAIL, addr[0])
        self._claim(local, int(addr[1]))

    def _claim(self, local: bytes, ident: int) -> None:
        binding = Binding(b"" if local == bytes(4) else local, ident, self.reuseaddr)
        ports = self.layer.idents
        self.binding = ports.bind_ephemeral(binding) if ident == 0 else ports.bind(binding)
        self.local_addr = local
        self.local_port = self.binding.port
        self.layer.sockets.register(self)

    def connect(self, addr: Address, now: float) -> None:
        self._check_open()
        remote = pack_host(AF_INET, addr[0])
        if self.binding is None:
            self._claim(bytes(4), 0)
        self.remote_addr = remote
        if self.local_addr == bytes(4):
            source = self.layer.ip4.select_source(remote)
            if source is None:
                raise oserror(errno.ENETUNREACH)
            self.local_addr = source
        self.wake()

    def getsockname(self) -> Address:
        return sockaddr(AF_INET, self.local_addr, self.local_port)

    def getpeername(self) -> Address:
        if self.remote_addr is None:
            raise oserror(errno.ENOTCONN)
        return sockaddr(AF_INET, self.remote_addr, 0)

    # -- data ----------------------------------------------------------------------------------------
    def sendto(self, data: bytes | bytearray | memoryview, addr: Address | None, now: float) -> int:
        self._check_open()
        self._raise_pending()
        dst = self._destination(addr)
        size = len(data)
        if size > MAX_MESSAGE:
            raise oserror(errno.EMSGSIZE)
        view = memoryview(data)
        if size < ICMP4_HEADER_LEN or view[0] != TYPE_ECHO_REQUEST or view[1] != 0:
            raise oserror(errno.EINVAL, "a ping socket sends ICMP echo requests only")
        ip4 = self.layer.ip4
        if (dst == b"\xff\xff\xff\xff" or dst in ip4.broadcast) and not self.broadcast:
            raise oserror(errno.EACCES, "sending to a broadcast address needs SO_BROADCAST")
        if self.binding is None:
            self._claim(bytes(4), 0)
        src = self.local_addr
        if src == bytes(4):
            chosen = ip4.select_source(dst)
            if chosen is None:
                raise oserror(errno.ENETUNREACH)
            src = chosen
        buf = bytearray(data)
        seq = int.from_bytes(buf[6:8], "big")
        write_icmp4(buf, 0, TYPE_ECHO_REQUEST, 0, (self.local_port << 16) | seq, size - ICMP4_HEADER_LEN)
        err = ip4.output(src, dst, PROTO_ICMP, buf, now, tos=self.tos, ttl=self.ttl)
        if err:
            raise oserror(err)
        self.layer.svc.stats["ping.tx"] += 1
        return size

    def close(self, now: float | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.binding is not None:
            self.layer.idents.release(self.binding)
            self.layer.sockets.unregister(self)
        self.queue.clear()
        self.wake()


class PingLayer:
    """The ping sockets of a stack, by identifier; fed by ICMP input, sending through ``ip4``."""

    def __init__(self, svc: Services, ip4: Ip4Layer) -> None:
        self.svc = svc
        self.ip4 = ip4
        # Identifiers are the sockets' "ports": any non-zero 16-bit value (0 would mean "choose").
        self.idents = PortTable(1, 65535, secret=svc.rng.randbytes(16))
        self.sockets: SocketTable[PingSocket] = SocketTable()  # by identifier

    def socket(self) -> PingSocket:
        return PingSocket(self)

    def _lookup(self, ident: int, local: bytes) -> PingSocket | None:
        for sock in self.sockets.on_port(ident):
            # As Linux's ping_lookup: the identifier, and the bound address if one was bound.
            if sock.binding is not None and sock.binding.addr in (b"", local):
                return sock
        return None

    def receive_reply(self, src: bytes, dst: bytes, msg: Icmp4Message, raw: memoryview) -> bool:
        """An echo reply arrived; True when a ping socket took it."""
        sock = self._lookup(msg.ident, dst)
        if sock is None:
            return False
        self.svc.stats["ping.rx"] += 1
        sock.deliver(bytes(raw), sockaddr(AF_INET, src, 0))
        return True

    def icmp_error(self, src: bytes, dst: bytes, quoted: memoryview, err: int,
                   origin: IcmpOrigin | None = None) -> None:
        """An ICMP error quoting an echo request we sent from ``src`` to ``dst``: pending on a connected
        socket; with IP_RECVERR, queued (the quoted request as data, port 0) connected or not (ping_err)."""
        if len(quoted) < ICMP4_HEADER_LEN or quoted[0] != TYPE_ECHO_REQUEST:
            return
        sock = self._lookup(int.from_bytes(quoted[4:6], "big"), src)
        if sock is None:
            return
        if origin is not None and sock.recverr:
            sock.queue_error(QueuedError(err, origin, bytes(quoted), dst, 0))
        elif sock.remote_addr == dst:
            sock.set_error(err)
        else:
            return
        self.svc.stats["ping.icmp_error_delivered"] += 1

