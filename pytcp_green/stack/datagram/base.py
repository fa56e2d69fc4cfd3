"""What the stack's datagram sockets (UDP, ICMP echo "ping") share.

A socket holds whole datagrams in a queue charged against SO_RCVBUF (each at its length plus
:data:`DATAGRAM_OVERHEAD`, Linux's skb truesize); one that does not fit is dropped and counted,
never partly kept, unless the queue is empty.  A read takes the oldest datagram, truncated to
the buffer (recv(2): the rest is discarded); with nothing queued, the pending error (an ICMP
error learned while connected) is raised first, else EAGAIN.  The layers find their sockets
by local port (the echo identifier for ping) through a :class:`SocketTable`.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

from pytcp_green.stack.sockbase import (
    AF_INET,
    POLLERR,
    POLLIN,
    POLLOUT,
    Address,
    CoreSocket,
    oserror,
    pack_host,
    would_block,
)

if TYPE_CHECKING:
    from pytcp_green.stack.contracts import IcmpOrigin, RxMeta
    from pytcp_green.stack.ports import Binding
    from pytcp_green.stack.services import Services

# What a queued datagram costs against SO_RCVBUF besides its payload (Linux charges skb truesize).
DATAGRAM_OVERHEAD = 256


class QueuedError(NamedTuple):
    """One ICMP error on a socket's error queue: the errno, who sent it, the quoted datagram's payload
    and where that datagram was going (address and port)."""

    err: int
    origin: IcmpOrigin
    payload: bytes
    dst: bytes
    dport: int


class DatagramSocket(CoreSocket):
    """The receive queue, the socket options and the addressing state of a datagram socket.

    ``drop_stat`` counts the datagrams a full receive buffer refused (``"udp.drop.rcvbuf_full"``).
    """

    def __init__(self, family: int, svc: Services, drop_stat: str) -> None:
        super().__init__(family)
        self.wildcard = bytes(4 if family == AF_INET else 16)
        self.local_addr = self.wildcard
        self.local_port = 0
        self.remote_addr: bytes | None = None
        self.binding: Binding | None = None
        # Each datagram with its source and what IP input knew of it (None for ping's echo replies).
        self.queue: deque[tuple[bytes, Address, RxMeta | None]] = deque()
        self.queued_bytes = 0
        self.errqueue: deque[QueuedError] = deque()
        self._recverr = False
        self.closed = False
        sysctl = svc.sysctl
        self.rcvbuf = sysctl.int("net.core.rmem_default")
        self.sndbuf = sysctl.int("net.core.wmem_default")
        self.broadcast = False
        self.reuseaddr = False
        self.tos = 0
        self.ttl: int | None = None
        self._stats = svc.stats
        self._drop_stat = drop_stat

    def _check_open(self) -> None:
        if self.closed:
            raise oserror(errno.EBADF)

    def _raise_pending(self) -> None:
        code = self.take_error()
        if code:
            raise oserror(code)

    def _destination(self, addr: Address | None) -> bytes:
        """Where sendto() sends: ``addr``'s host, or the connected peer (EDESTADDRREQ when there is none)."""
        if addr is not None:
            return pack_host(self.family, addr[0])
        if self.remote_addr is None:
            raise oserror(errno.EDESTADDRREQ)
        return self.remote_addr

    def shutdown(self, how: int, now: float) -> None:
        # Only a connected socket can be shut down (the read side's effect is the drop-in's, patches/).
        if self.remote_addr is None:
            raise oserror(errno.ENOTCONN)

    def recvfrom(self, bufsize: int, now: float, *, peek: bool = False) -> tuple[bytes, Address]:
        data, source, _ = self.recvmsg(bufsize, now, peek=peek)
        return data, source

    def recvmsg(self, bufsize: int, now: float, *, peek: bool = False) -> tuple[bytes, Address, RxMeta | None]:
        """recvfrom() with what the ancillary data of recvmsg(2) is made from."""
        self._check_open()
        if not self.queue:
            self._raise_pending()
            raise would_block()
        data, source, meta = self.queue[0] if peek else self.queue.popleft()
        if not peek:
            self.queued_bytes -= len(data) + DATAGRAM_OVERHEAD
        # A datagram longer than the buffer is truncated and the rest discarded (recv(2)).
        return (data[:bufsize] if bufsize < len(data) else data), source, meta

    def deliver(self, data: bytes, source: Address, meta: RxMeta | None = None) -> bool:
        """Queue one datagram from ``source``; False when the receive buffer had no room for it."""
        cost = len(data) + DATAGRAM_OVERHEAD
        if self.queued_bytes + cost > self.rcvbuf and self.queue:
            self._stats[self._drop_stat] += 1
            return False
        self.queue.append((data, source, meta))
        self.queued_bytes += cost
        self.wake()
        return True

    def set_error(self, code: int) -> None:
        self._error = code
        self.wake()

    # -- IP_RECVERR / IPV6_RECVERR (ip(7)): ICMP errors queued, read with MSG_ERRQUEUE -----------------
    @property
    def recverr(self) -> bool:
        return self._recverr

    @recverr.setter
    def recverr(self, on: bool) -> None:
        self._recverr = bool(on)
        if not on:  # Linux purges the queue when the option goes off
            while self.errqueue:
                self.queued_bytes -= len(self.errqueue.popleft().payload) + DATAGRAM_OVERHEAD

    def queue_error(self, item: QueuedError) -> None:
        """Queue an ICMP error (charged against SO_RCVBUF with the datagrams, as Linux does) and set it pending."""
        cost = len(item.payload) + DATAGRAM_OVERHEAD
        if self.queued_bytes + cost <= self.rcvbuf:
            self.errqueue.append(item)
            self.queued_bytes += cost
        self.set_error(item.err)

    def recv_error(self) -> QueuedError:
        """The oldest queued error (recvmsg with MSG_ERRQUEUE: never blocks, EAGAIN when none)."""
        self._check_open()
        if not self.errqueue:
            raise would_block()
        item = self.errqueue.popleft()
        self.queued_bytes -= len(item.payload) + DATAGRAM_OVERHEAD
        # The pending error becomes the next queued one's, or none (Linux's sock_dequeue_err_skb).
        self._error = self.errqueue[0].err if self.errqueue else 0
        return item

    def poll_mask(self) -> int:
        if self.closed:
            return 0
        mask = POLLOUT
        if self.queue:
            mask |= POLLIN
        if self._error or self.errqueue:
            mask |= POLLERR
        return mask


S = TypeVar("S", bound=DatagramSocket)


class SocketTable(Generic[S]):
    """A layer's bound sockets by local port, in binding order."""

    def __init__(self) -> None:
        self._by_port: dict[int, list[S]] = {}

    def register(self, sock: S) -> None:
        self._by_port.setdefault(sock.local_port, []).append(sock)

    def unregister(self, sock: S) -> None:
        holders = self._by_port.get(sock.local_port)
        if holders and sock in holders:
            holders.remove(sock)
            if not holders:
                del self._by_port[sock.local_port]

    def on_port(self, port: int) -> Sequence[S]:
        """The sockets bound to ``port`` (empty when none)."""
        return self._by_port.get(port, ())
