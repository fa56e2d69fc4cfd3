"""The stack backend of the patched socket class: a core socket of the current host's stack.

One :class:`Handle` per core socket, shared by the socket objects ``dup()``/``fromfd()``/
``socket(fileno=...)`` open on it; :class:`StackBackend` is one socket object's view of it (its
descriptor, remembered options, shut-down read side) and implements every socket operation the
way Linux answers it (socket(7), tcp(7), udp(7)).

File descriptors.  A stack socket's descriptor is a real, unique one: an eventfd, created on
first use, that a real poller sees **readable exactly while the socket is readable** and
**always writable**.  :func:`handle_for_fd` maps descriptors back to the stack socket they stand
for, which is how ``dup``/``fromfd``/``detach`` and ``select``/``poll`` over plain integers work.
"""

from __future__ import annotations

import _socket
import errno
import os
from collections.abc import Iterable
from typing import Any

from pytcp_green.green.sockets import USE_TIMEOUT, GreenSocket, Timeout, close_fd
from pytcp_green.patches import _ancillary, _state, _urgent
from pytcp_green.patches._common import (
    AF_INET,
    AF_INET6,
    IPPROTO_ICMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPPROTO_UDPLITE,
    SOCK_CLOEXEC,
    SOCK_DGRAM,
    SOCK_NONBLOCK,
    SOCK_RAW,
    SOCK_STREAM,
    has_ipv6,
)
from pytcp_green.patches._sockargs import as_bytes_like, c_int, recvmsg_checks, sockaddr_arg
from pytcp_green.patches._sockopts import Options, get_option, set_option
from pytcp_green.stack.datagram.base import DatagramSocket
from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.sockbase import POLLERR, POLLHUP, POLLOUT, sockaddr
from pytcp_green.stack.tcp.socket import TcpSocket
from pytcp_green.stack.wire.ip6 import V4MAPPED_PREFIX

MSG_OOB = _socket.MSG_OOB
MSG_PEEK = _socket.MSG_PEEK
MSG_DONTWAIT = getattr(_socket, "MSG_DONTWAIT", 0x40)
MSG_WAITALL = _socket.MSG_WAITALL
MSG_TRUNC = getattr(_socket, "MSG_TRUNC", 0x20)
MSG_FASTOPEN = getattr(_socket, "MSG_FASTOPEN", 0x20000000)
_MAX_DATAGRAM = 65535  # no UDP payload is longer (IPv4's limit; the stack has no jumbograms)
_EBADF_MESSAGE = os.strerror(errno.EBADF)


def _ebadf() -> OSError:
    return OSError(errno.EBADF, _EBADF_MESSAGE)


# fork().  The user-space stack is memory: a forked child gets a copy of it, frozen (the parent goes
# on driving the devices and owns every connection; the child's copy stops: see patches/__init__'s
# fork handler).  So the stack sockets a child inherited refuse every operation with EBADF and this
# message, closing them there closes only the child's descriptors (no FIN, no RST on the wire), and
# the child cannot open stack sockets (ENETDOWN).  Each handle is tagged with the fork generation
# it was opened in; every fork makes the child's one more.
FORK_ADVICE = ("pytcp_green: the user-space stack stays with the process that started it; a forked child has "
               "a frozen copy. Open sockets after exec (subprocess) or in a new process "
               "(multiprocessing's 'spawn' start method: multiprocessing.set_start_method('spawn'))")
_generation = 0


def forked_in_child() -> None:
    """Called in the child after fork(): what the parent opened belongs to the parent."""
    global _generation
    _generation += 1


def _forked_ebadf() -> OSError:
    return OSError(errno.EBADF, f"{_EBADF_MESSAGE}: a stack socket inherited across fork(). {FORK_ADVICE}")


# -- the stack side: one handle per core socket, shared by dup()s ------------------------------------
class Handle:
    """One stack socket as the descriptor table sees it: the green socket, its identity, its fds.

    ``refs`` counts the socket objects open on it plus descriptors handed out by ``detach()``
    that no socket object has taken back yet; the core socket closes when it drops to zero.
    """

    __slots__ = ("closed", "family", "fds", "generation", "green", "proto", "refs", "type")

    def __init__(self, green: GreenSocket, family: int, type: int, proto: int) -> None:
        self.green = green
        self.generation = _generation
        self.family = family
        self.type = type
        self.proto = proto
        self.refs = 0
        self.fds: set[int] = set()
        self.closed = False

    def new_fd(self) -> int:
        """A descriptor for one more socket object on this handle."""
        green = self.green
        # A second object gets another fd on the same eventfd file: same readiness, distinct number.
        fd = os.dup(green.fileno()) if green.has_fd() else green.fileno()
        self.fds.add(fd)
        _by_fd[fd] = self
        return fd

    def drop_fd(self, fd: int) -> None:
        """Close one descriptor of this handle (never the last ref's core socket: see :meth:`release`)."""
        if fd not in self.fds:
            return
        self.fds.discard(fd)
        if _by_fd.get(fd) is self:
            del _by_fd[fd]
        green = self.green
        if green.has_fd() and green.fileno() == fd:
            green.release_fd()
            if self.fds:
                green.adopt_fd(next(iter(self.fds)))
        close_fd(fd)

    def release(self) -> None:
        self.refs -= 1
        if self.refs <= 0 and not self.closed:
            self.closed = True
            for fd in list(self.fds):
                self.drop_fd(fd)
            if self.generation == _generation:  # in a forked child the connection is the parent's
                self.green.close()

    def poll_mask(self) -> int:
        if self.closed:
            return 0
        if self.generation != _generation:
            return POLLERR | POLLHUP  # a waiter in the forked child wakes, and its call gets the EBADF
        return self.green.poll_mask()


_by_fd: dict[int, Handle] = {}


def handle_for_fd(fd: int) -> Handle | None:
    """The stack socket a descriptor stands for, or None for a kernel fd."""
    return _by_fd.get(fd)


def _stack_supports(family: int) -> bool:
    return family == AF_INET or (family == AF_INET6 and has_ipv6())


def _new_green(family: int, type: int, proto: int = 0) -> GreenSocket:
    if _generation:
        raise OSError(errno.ENETDOWN, f"{os.strerror(errno.ENETDOWN)}: a stack socket in a forked child. {FORK_ADVICE}")
    host = _state.current_host()
    if proto == IPPROTO_ICMP and type == SOCK_DGRAM:
        # An ICMP echo ("ping") socket, as Linux gives socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP).
        return GreenSocket(host.runtime, host.stack.icmp4.ping.socket())
    core = host.stack.socket(family, type, proto)
    return GreenSocket(host.runtime, core)


def _fastopen_deferred(green: GreenSocket) -> bool:
    """The next send makes the SYN (TCP_FASTOPEN_CONNECT's deferred connect, RFC 7413)."""
    core = green.core
    return isinstance(core, TcpSocket) and core.tcb is not None and core.tcb.tfo_deferred


def _await_handshake(green: GreenSocket, timeout: Timeout) -> None:
    """A blocking send that connected returns once the handshake is done, as Linux's
    tcp_sendmsg_fastopen waits in __inet_stream_connect (a shutdown right after it then finds the
    connection open, not still connecting)."""
    limit = green.timeout if timeout is USE_TIMEOUT else timeout
    if limit != 0:
        green.wait_for(POLLOUT, limit)


def _flag_timeout(flags: int, sock_type: int) -> Timeout:
    if sock_type != SOCK_STREAM:
        _urgent.refuse_on_datagrams(flags)  # MSG_OOB is TCP's (patches._urgent)
    return 0.0 if flags & MSG_DONTWAIT else USE_TIMEOUT


# Descriptors handed out by detach() that no socket object has taken back yet.
_parked: set[int] = set()


def park_duplicate(handle: Handle, fd: int) -> int:
    """A new descriptor for ``handle`` (a dup of its ``fd``) holding one ref until a socket object takes it:
    ``fromfd()``'s, which then wraps it with ``socket(fileno=...)``."""
    new = os.dup(fd)
    handle.fds.add(new)
    _by_fd[new] = handle
    handle.refs += 1
    _parked.add(new)
    return new


def close_descriptor(handle: Handle, fd: int) -> None:
    """close(2) of one of ``handle``'s descriptors (the module's ``socket.close(fd)``): an object using it
    then fails with EBADF, and a descriptor that detach() handed out gives up its ref."""
    handle.drop_fd(fd)
    if fd in _parked:
        _parked.discard(fd)
        handle.release()


class StackBackend:
    """One socket object's view of a :class:`Handle`; the caller counts it in ``handle.refs``."""

    __slots__ = ("borrowed", "fd", "handle", "options", "released", "shut_rd")

    def __init__(self, handle: Handle) -> None:
        self.handle = handle
        self.fd = -1
        self.options: Options = {}
        self.shut_rd = False
        self.released = False
        self.borrowed = False  # another object owns this descriptor (socket(fileno=...) on a live one)

    @classmethod
    def open(cls, family: int, type: int, proto: int) -> StackBackend:
        """A new stack socket, as ``socket(family, type, proto)`` (``type`` may carry SOCK_NONBLOCK)."""
        base_type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
        expected = IPPROTO_TCP if base_type == SOCK_STREAM else IPPROTO_UDP
        if base_type == SOCK_RAW:
            expected = proto  # any protocol and IPPROTO_RAW (stack/datagram/raw.py); 0 is refused there
        elif base_type == SOCK_DGRAM and family == AF_INET and proto == IPPROTO_ICMP:
            expected = IPPROTO_ICMP
        elif base_type == SOCK_DGRAM and proto == IPPROTO_UDPLITE:
            expected = IPPROTO_UDPLITE  # RFC 3828, over both families as on Linux
        elif proto not in (0, expected):
            raise OSError(errno.EPROTONOSUPPORT, os.strerror(errno.EPROTONOSUPPORT))
        if not _stack_supports(family):
            raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
        green = _new_green(family, base_type, expected)
        handle = Handle(green, family, base_type, proto)  # .proto shows what was asked (0), as CPython
        handle.refs = 1
        green.timeout = 0.0 if type & SOCK_NONBLOCK else _socket.getdefaulttimeout()
        return cls(handle)

    @classmethod
    def adopt(cls, handle: Handle, fd: int) -> StackBackend:
        """A socket object for ``fd`` of ``handle`` (after detach/fromfd/dup)."""
        backend = cls(handle)
        backend.fd = fd
        # A detached descriptor already holds a ref; a live one being wrapped a second time gets one.
        if fd in _parked:
            _parked.discard(fd)
        else:
            handle.refs += 1
            backend.borrowed = True
        # As CPython's socket(fileno=...): the new object starts with the default timeout.
        handle.green.timeout = _socket.getdefaulttimeout()
        return backend

    def hand_over(self) -> StackBackend:
        """Give this object's ref and descriptor to a new view (ssl's wrap_socket takes a socket over)."""
        backend = StackBackend(self.handle)
        backend.fd, self.fd = self.fd, -1
        self.released = True
        return backend

    # -- identity ------------------------------------------------------------------------------------
    @property
    def family(self) -> int:
        return self.handle.family

    @property
    def type(self) -> int:
        return self.handle.type

    @property
    def proto(self) -> int:
        return self.handle.proto

    def green(self) -> GreenSocket:
        """The green socket, or OSError(EBADF) once closed."""
        # Not the object's ``_closed``: a socket closed while makefile() files are open still works
        # for them, as in CPython, until the last one closes (``released``).
        handle = self.handle
        if self.released or handle.closed or self._fd_closed():
            raise _ebadf()
        if handle.generation != _generation:
            raise _forked_ebadf()
        return handle.green

    def _fd_closed(self) -> bool:
        """This view's descriptor was closed under it (by another object on the same number, or the
        module's close(fd)): as on Linux, the object now fails with EBADF."""
        return self.fd >= 0 and self.fd not in self.handle.fds

    def fileno(self) -> int:
        if self.released or self.handle.closed:
            return -1
        if self.fd < 0:
            self.fd = self.handle.new_fd()
        return self.fd

    def _check_fd(self) -> int:
        fd = self.fileno()
        if fd < 0:
            raise _ebadf()
        return fd

    # -- timeouts ------------------------------------------------------------------------------------
    def settimeout(self, value: float | None) -> None:
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise TypeError("Timeout value must be int, float or None") from None
            if value != value or value < 0:  # NaN or negative
                raise ValueError("Timeout value out of range")
        self.green().timeout = value

    def gettimeout(self) -> float | None:
        return self.handle.green.timeout

    def setblocking(self, flag: bool) -> None:
        self.green().timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self.green().timeout != 0.0

    # -- addressing ----------------------------------------------------------------------------------
    def bind(self, address: Any) -> None:
        green = self.green()
        green.bind(sockaddr_arg(self.handle.family, address, "bind"))

    def listen(self, backlog: int) -> None:
        green = self.green()
        backlog = c_int(backlog)
        if self.handle.type != SOCK_STREAM:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        green.listen(max(0, min(backlog, 4096)))

    def connect(self, address: Any) -> None:
        green = self.green()
        green.connect(sockaddr_arg(self.handle.family, address, "connect"))

    def connect_ex(self, address: Any) -> int:
        try:
            self.connect(address)
        except TimeoutError:
            return errno.EAGAIN  # what CPython's connect_ex returns when its timeout expires
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno
        return 0

    def getsockname(self) -> Any:
        return self.green().getsockname()

    def getpeername(self) -> Any:
        return self.green().getpeername()

    # -- connections ---------------------------------------------------------------------------------
    def accept(self) -> tuple[StackBackend, Any]:
        green = self.green()
        if self.handle.type != SOCK_STREAM:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        conn_green, addr = green.accept()
        # Like CPython, the new socket is of the base class and takes the default timeout.
        conn_green.timeout = _socket.getdefaulttimeout()
        handle = Handle(conn_green, self.handle.family, SOCK_STREAM, self.handle.proto)
        handle.refs = 1
        return StackBackend(handle), addr

    def accept_fd(self) -> tuple[int, Any]:
        """The stdlib's private ``_accept``: a new connection's descriptor and the peer address."""
        conn, addr = self.accept()
        return conn.detach(False), addr

    # -- data ----------------------------------------------------------------------------------------
    def recv(self, bufsize: int, flags: int) -> bytes:
        green = self.green()
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        timeout = _flag_timeout(flags, self.handle.type)
        if self.handle.type != SOCK_STREAM:
            if self.shut_rd:
                return b""
            return green.recvfrom(bufsize, timeout, peek=bool(flags & MSG_PEEK))[0]
        if flags & MSG_OOB:
            return _urgent.recv(green, bufsize, flags)
        if flags & MSG_WAITALL and not flags & MSG_PEEK:
            return _recv_waitall(green, bufsize, timeout)
        return green.recv(bufsize, timeout, peek=bool(flags & MSG_PEEK))

    def recv_into(self, buffer: Any, nbytes: int, flags: int) -> int:
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes == 0 or nbytes > len(view):
            if nbytes > len(view):
                raise ValueError("buffer too small for requested bytes")
            nbytes = len(view)
        if self.handle.type == SOCK_STREAM and not flags & (MSG_PEEK | MSG_WAITALL | MSG_OOB):
            # Straight from the receive buffer into the caller's: no bytes object in between.
            return self.green().recv_into(view, nbytes, _flag_timeout(flags, SOCK_STREAM))
        data = self.recv(nbytes, flags)
        view[: len(data)] = data
        return len(data)

    def recvfrom(self, bufsize: int, flags: int) -> tuple[bytes, Any]:
        green = self.green()
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        timeout = _flag_timeout(flags, self.handle.type)
        if self.handle.type != SOCK_STREAM:
            return green.recvfrom(bufsize, timeout, peek=bool(flags & MSG_PEEK))
        # A stream socket reports no source address, as Linux does.
        return self.recv(bufsize, flags), None

    def recvfrom_into(self, buffer: Any, nbytes: int, flags: int) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recvfrom_into")
        if nbytes > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        data, addr = self.recvfrom(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data), addr

    def recvmsg(self, bufsize: int, ancbufsize: int, flags: int) -> tuple[bytes, list[Any], int, Any]:
        bufsize = c_int(bufsize)
        if bufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        recvmsg_checks(ancbufsize, flags)
        data, addr, msg_flags, ancillary = self._recv_datagram_or_bytes(bufsize, ancbufsize, flags)
        return data, ancillary, msg_flags, addr

    def recvmsg_into(self, buffers: Iterable[Any], ancbufsize: int, flags: int) -> tuple[int, list[Any], int, Any]:
        try:
            items = list(buffers)
        except TypeError:
            raise TypeError("recvmsg_into() argument 1 must be an iterable") from None
        views = []
        for item in items:
            try:
                view = memoryview(item)
            except TypeError:
                raise TypeError(f"a bytes-like object is required, not '{type(item).__name__}'") from None
            if view.readonly:
                raise TypeError(f"recvmsg_into() argument 1 must be an iterable of single-segment read-write "
                                f"buffers, not {type(item).__name__}")
            views.append(view.cast("B"))
        recvmsg_checks(ancbufsize, flags)
        data, addr, msg_flags, ancillary = self._recv_datagram_or_bytes(sum(len(v) for v in views), ancbufsize,
                                                                        flags)
        offset = 0
        for view in views:
            piece = data[offset: offset + len(view)]
            view[: len(piece)] = piece
            offset += len(piece)
        return len(data), ancillary, msg_flags, addr

    def _recv_datagram_or_bytes(self, bufsize: int, ancbufsize: int, flags: int) -> tuple[bytes, Any, int, list[Any]]:
        """recvfrom() for recvmsg: a datagram is taken whole, so a cut one is flagged MSG_TRUNC (the rest
        is discarded either way, as recv(2) does), with its ancillary data (patches._ancillary)."""
        if flags & _ancillary.MSG_ERRQUEUE:
            return self._recv_error(bufsize, ancbufsize)
        if self.handle.type != SOCK_STREAM:
            green = self.green()
            timeout = _flag_timeout(flags, self.handle.type)
            peek = bool(flags & MSG_PEEK)
            core = green.core
            data, addr, meta = green.call(lambda now: core.recvmsg(_MAX_DATAGRAM, now, peek=peek), timeout)
            ancillary, msg_flags = _ancillary.received(self.handle.family, self.options, meta, ancbufsize)
            if len(data) > bufsize:
                data, msg_flags = data[:bufsize], msg_flags | MSG_TRUNC
            return data, addr, msg_flags, ancillary
        data, addr = self.recvfrom(bufsize, flags)
        return data, addr, flags & MSG_OOB, []  # recvmsg(MSG_OOB) flags its answer MSG_OOB, as Linux

    def _recv_error(self, bufsize: int, ancbufsize: int) -> tuple[bytes, Any, int, list[Any]]:
        """recvmsg(MSG_ERRQUEUE): the oldest queued ICMP error, at once (EAGAIN when none, as Linux)."""
        core = self.green().core
        if not isinstance(core, DatagramSocket):
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))  # TCP's error queue is always empty here
        item = core.recv_error()
        ancillary, msg_flags = _ancillary.error_item(self.handle.family, item, ancbufsize)
        data = item.payload
        if len(data) > bufsize:
            data, msg_flags = data[:bufsize], msg_flags | MSG_TRUNC
        dst = item.dst if self.handle.family == AF_INET or len(item.dst) == 16 else V4MAPPED_PREFIX + item.dst
        return data, sockaddr(self.handle.family, dst, item.dport), msg_flags | _ancillary.MSG_ERRQUEUE, ancillary

    # The byte views are released on the way out, an exception too: its traceback keeps this frame,
    # and a view alive there would pin the caller's bytearray (asyncio clears its write buffer while
    # handling the error: "BufferError: Existing exports of data").
    def send(self, data: Any, flags: int) -> int:
        green = self.green()
        timeout = _flag_timeout(flags, self.handle.type)
        with as_bytes_like(data) as view:
            if self.handle.type != SOCK_STREAM:
                return green.sendto(view, None, timeout)
            connecting = _fastopen_deferred(green)
            sent = _urgent.send(green, view, timeout, flags)
            if connecting:
                _await_handshake(green, timeout)
            return sent

    def sendall(self, data: Any, flags: int) -> None:
        green = self.green()
        timeout = _flag_timeout(flags, self.handle.type)
        with as_bytes_like(data) as view:
            if self.handle.type != SOCK_STREAM:
                green.sendto(view, None, timeout)
                return
            connecting = _fastopen_deferred(green)
            _urgent.sendall(green, view, timeout, flags)
            if connecting:
                _await_handshake(green, timeout)

    def sendto(self, data: Any, *args: Any) -> int:
        if len(args) == 1:
            flags, address = 0, args[0]
        elif len(args) == 2:
            flags, address = c_int(args[0]), args[1]
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args) + 1} given)")
        green = self.green()
        timeout = _flag_timeout(flags, self.handle.type)
        with as_bytes_like(data) as view:
            if self.handle.type == SOCK_STREAM:
                core = green.core
                if flags & MSG_FASTOPEN and isinstance(core, TcpSocket):  # RFC 7413: connect, data in the SYN
                    target = sockaddr_arg(self.handle.family, address, "sendto")
                    sent = green.call(lambda now: core.sendto_fastopen(view, target, now), timeout)
                    _await_handshake(green, timeout)
                    return sent
                return _urgent.send(green, view, timeout, flags)  # Linux ignores the address on a connected TCP socket
            return green.sendto(view, sockaddr_arg(self.handle.family, address, "sendto"), timeout)

    def sendmsg(self, buffers: Iterable[Any], ancdata: Iterable[Any], flags: int, address: Any) -> int:
        # Every argument is checked before anything is sent, as CPython does.
        try:
            items = list(buffers)
        except TypeError:
            raise TypeError("sendmsg() argument 1 must be an iterable") from None
        data = b"".join(bytes(as_bytes_like(b)) for b in items)
        try:
            cmsgs = list(ancdata)
        except TypeError:
            raise TypeError("sendmsg() argument 2 must be an iterable") from None
        for cmsg in cmsgs:
            if not isinstance(cmsg, tuple) or len(cmsg) != 3:
                raise TypeError("sendmsg() ancillary data items must be (level, type, data) tuples")
            c_int(cmsg[0])
            c_int(cmsg[1])
            as_bytes_like(cmsg[2])
        flags = c_int(flags)
        target = None if address is None else sockaddr_arg(self.handle.family, address, "sendmsg")
        if cmsgs:
            green = self.green()
            core = green.core
            if not isinstance(core, UdpSocket):
                raise OSError(errno.EOPNOTSUPP, "pytcp_green: ancillary data is only sent on UDP sockets")
            extra = _ancillary.to_send(self.handle.family, [(c[0], c[1], bytes(as_bytes_like(c[2]))) for c in cmsgs])
            timeout = _flag_timeout(flags, self.handle.type)
            return green.call(lambda now: core.sendto(data, target, now, **extra), timeout)
        if address is not None:
            return self.sendto(data, flags, address)
        return self.send(data, flags)

    def sendmsg_afalg(self, *args: Any, **kwargs: Any) -> int:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    # -- options -------------------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None) -> None:
        set_option(self.green(), self.handle.type, self.options, level, optname, value)

    def getsockopt(self, level: int, optname: int, buflen: int | None) -> Any:
        green = self.green()
        return get_option(green, self.handle.family, self.handle.type, self.options, level, optname, buflen)

    # -- ending --------------------------------------------------------------------------------------
    def shutdown(self, how: int) -> None:
        green = self.green()
        how = c_int(how)
        if how not in (_socket.SHUT_RD, _socket.SHUT_WR, _socket.SHUT_RDWR):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if self.handle.type != SOCK_STREAM:
            green.getpeername()  # ENOTCONN when not connected, as Linux
            if how in (_socket.SHUT_RD, _socket.SHUT_RDWR):
                self.shut_rd = True
            return
        green.shutdown(how)

    def close(self) -> None:
        closed_under = self._fd_closed()
        fd, self.fd = self.fd, -1
        if fd >= 0:
            self.handle.drop_fd(fd)
        if not self.released:
            self.released = True
            self.handle.release()
        if closed_under:
            raise _ebadf()  # close(2) of a descriptor already closed

    def detach(self, closed: bool) -> int:
        """Give up this view without closing the stack socket; returns its descriptor (-1 if the object
        was ``closed`` already, even with makefile() files still open on it)."""
        if closed or self.released or self.handle.closed:
            return -1
        fd = self.fileno()
        self.fd = -1
        self.released = True
        if self.borrowed:
            # socket(fileno=fd) over a descriptor another object owns, then detach(): as in CPython,
            # only this object goes away (http.client's response.fileno() users do this).
            self.handle.release()
            return fd
        # The descriptor keeps this view's ref until a socket(fileno=fd) takes it back.
        _parked.add(fd)
        return fd

    def dup(self) -> StackBackend:
        self.green()
        self.handle.refs += 1
        clone = StackBackend(self.handle)
        clone.fd = self.handle.new_fd()
        return clone

    def get_inheritable(self) -> bool:
        return os.get_inheritable(self._check_fd())

    def set_inheritable(self, inheritable: bool) -> None:
        os.set_inheritable(self._check_fd(), inheritable)


def _recv_waitall(green: GreenSocket, bufsize: int, timeout: Timeout) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < bufsize:
        try:
            data = green.recv(bufsize - got, timeout)
        except (BlockingIOError, TimeoutError):
            if parts:
                break
            raise
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)
