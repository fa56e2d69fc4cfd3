"""The patched ``socket`` module's socket class and module functions, backed by pytcp_green.

:class:`socket` is a plain Python class (as gevent's is) so that ``isinstance`` and subclassing
work the way programs expect after patching; ``ssl.SSLSocket`` subclasses it.  An instance has
one of two backends:

* a **stack** backend for ``AF_INET`` (and ``AF_INET6`` once the core has IPv6) with
  ``SOCK_STREAM``/``SOCK_DGRAM``: a :class:`~pytcp_green.green.sockets.GreenSocket` over a core
  socket of the current host's stack;
* a **kernel** backend for everything else (``AF_UNIX``, ``AF_NETLINK``, a socket made from an
  inherited kernel fd…): a gevent socket to which every call is delegated.

File descriptors.  ``fileno()`` of a stack socket returns a real, unique descriptor: an eventfd,
created on first use, that a real poller (epoll, a C library, gevent's hub) sees **readable
exactly while the socket is readable** (data, a pending connection, end of stream or an error)
and **always writable**.  Closing the socket closes it.  ``dup()``/``fromfd()``/``detach()`` keep
working by mapping descriptors back to the stack socket they stand for (:func:`handle_for_fd`),
which is also how ``select``/``poll``/``selectors`` over plain integers find stack sockets.
Writing to or reading from that descriptor directly does not touch the connection.

Everything here runs in the gevent hub's thread (threads are greenlets after ``patch_all``).
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import io
import os
import socket as _stdsocket
import struct
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from gevent import socket as _gsocket

from pytcp_green.green.sockets import USE_TIMEOUT, GreenSocket, Timeout, close_fd
from pytcp_green.patches import _state, dns
from pytcp_green.patches._common import family_enum, has_ipv6, kind_enum

# What this module replaces in ``socket`` (see :func:`pytcp_green.patches._state.patch_module`); the
# resolver functions are :mod:`pytcp_green.patches.dns`'s.
__implements__ = ["socket", "SocketType", "create_connection", "create_server", "has_dualstack_ipv6",
                  "socketpair", "fromfd"]

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOCK_NONBLOCK = getattr(_socket, "SOCK_NONBLOCK", 0)
SOCK_CLOEXEC = getattr(_socket, "SOCK_CLOEXEC", 0)
IPPROTO_TCP = _socket.IPPROTO_TCP
IPPROTO_UDP = _socket.IPPROTO_UDP
SOL_SOCKET = _socket.SOL_SOCKET
IPPROTO_IP = _socket.IPPROTO_IP
IPPROTO_ICMP = _socket.IPPROTO_ICMP
IPPROTO_IPV6 = _socket.IPPROTO_IPV6

MSG_OOB = _socket.MSG_OOB
MSG_PEEK = _socket.MSG_PEEK
MSG_DONTWAIT = getattr(_socket, "MSG_DONTWAIT", 0x40)
MSG_WAITALL = _socket.MSG_WAITALL
MSG_TRUNC = getattr(_socket, "MSG_TRUNC", 0x20)
_MAX_DATAGRAM = 65535  # no UDP payload is longer (IPv4's limit; the stack has no jumbograms)

_GLOBAL_DEFAULT_TIMEOUT: object = _stdsocket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]
_GeventSocket: Any = _gsocket.socket
_SocketIO: Any = _stdsocket.SocketIO
_EBADF_MESSAGE = os.strerror(errno.EBADF)

# Linux charges SO_RCVBUF/SO_SNDBUF twice what is asked (bookkeeping overhead) and enforces minimums.
_MIN_RCVBUF = 2304
_MIN_SNDBUF = 4608


def _ebadf() -> OSError:
    return OSError(errno.EBADF, _EBADF_MESSAGE)


# -- the stack side: one handle per core socket, shared by dup()s ------------------------------------
class Handle:
    """One stack socket as the descriptor table sees it: the green socket, its identity, its fds.

    ``refs`` counts the socket objects open on it plus descriptors handed out by ``detach()``
    that no socket object has taken back yet; the core socket closes when it drops to zero.
    """

    __slots__ = ("closed", "family", "fds", "green", "proto", "refs", "type")

    def __init__(self, green: GreenSocket, family: int, type: int, proto: int) -> None:
        self.green = green
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
            self.green.close()

    def poll_mask(self) -> int:
        if self.closed:
            return 0
        return self.green.poll_mask()


_by_fd: dict[int, Handle] = {}


def handle_for_fd(fd: int) -> Handle | None:
    """The stack socket a descriptor stands for, or None for a kernel fd."""
    return _by_fd.get(fd)


def _stack_supports(family: int) -> bool:
    return family == AF_INET or (family == AF_INET6 and has_ipv6())


def _new_green(family: int, type: int, proto: int = 0) -> GreenSocket:
    host = _state.current_host()
    if proto == IPPROTO_ICMP:
        # An ICMP echo ("ping") socket, as Linux gives socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP).
        return GreenSocket(host.runtime, host.stack.icmp4.ping.socket())
    core = host.stack.socket(family, type)
    return GreenSocket(host.runtime, core)


# -- address arguments --------------------------------------------------------------------------------
def _check_port(port: Any, what: str) -> int:
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{what}(): port must be 0-65535.")
    return port


def _host_arg(host: Any) -> str:
    if isinstance(host, (bytes, bytearray)):
        return bytes(host).decode("idna")
    if not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    return host


def sockaddr_arg(family: int, address: Any, what: str) -> tuple[Any, ...]:
    """Validate and resolve a user's address tuple into the numeric tuple the core takes."""
    if family == AF_INET:
        if not isinstance(address, tuple):
            raise TypeError(f"AF_INET address must be tuple, not {type(address).__name__}")
        if len(address) != 2:
            raise TypeError("AF_INET address must be a pair (host, port)")
        host = _host_arg(address[0])
        port = _check_port(address[1], what)
        if host == "<broadcast>":
            host = "255.255.255.255"
        elif host not in ("",):
            host = dns.resolve_for_socket(host, AF_INET)
        return (host, port)
    if not isinstance(address, tuple):
        raise TypeError(f"AF_INET6 address must be tuple, not {type(address).__name__}")
    if not 2 <= len(address) <= 4:
        raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
    host = _host_arg(address[0])
    port = _check_port(address[1], what)
    flowinfo = int(address[2]) if len(address) > 2 else 0
    scope = int(address[3]) if len(address) > 3 else 0
    if not 0 <= flowinfo <= 0xFFFFF:
        raise OverflowError(f"{what}(): flowinfo must be 0-1048575.")
    if host:
        host = dns.resolve_for_socket(host, AF_INET6)
    return (host, port, flowinfo, scope)


def _as_bytes_like(data: Any) -> memoryview:
    try:
        return memoryview(data).cast("B")
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'") from None


# -- socket options -----------------------------------------------------------------------------------
# (level, option) -> core attribute, for options the core implements.
_CORE_OPTIONS: dict[tuple[int, int], str] = {
    (SOL_SOCKET, _socket.SO_REUSEADDR): "reuseaddr",
    (SOL_SOCKET, _socket.SO_KEEPALIVE): "keepalive",
    (SOL_SOCKET, _socket.SO_RCVBUF): "rcvbuf",
    (SOL_SOCKET, _socket.SO_SNDBUF): "sndbuf",
    (SOL_SOCKET, _socket.SO_BROADCAST): "broadcast",
    (IPPROTO_TCP, _socket.TCP_NODELAY): "nodelay",
    (IPPROTO_IP, _socket.IP_TOS): "tos",
    (IPPROTO_IP, _socket.IP_TTL): "ttl",
    (IPPROTO_IP, _socket.IP_MULTICAST_TTL): "multicast_ttl",
    (IPPROTO_IP, _socket.IP_MULTICAST_LOOP): "multicast_loop",
    (IPPROTO_IPV6, _socket.IPV6_V6ONLY): "v6only",
}
# IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP take a struct ip_mreq (group, interface address) or ip_mreqn
# (the same plus an ifindex, which the core does not use); core method per option.
_MEMBERSHIP_OPTIONS = {
    (IPPROTO_IP, _socket.IP_ADD_MEMBERSHIP): "add_membership",
    (IPPROTO_IP, _socket.IP_DROP_MEMBERSHIP): "drop_membership",
}
if hasattr(_socket, "SO_REUSEPORT"):
    _CORE_OPTIONS[(SOL_SOCKET, _socket.SO_REUSEPORT)] = "reuseport"
for _name, _attr in (("TCP_KEEPIDLE", "keepidle"), ("TCP_KEEPINTVL", "keepintvl"), ("TCP_KEEPCNT", "keepcnt"),
                     ("TCP_USER_TIMEOUT", "user_timeout")):
    if hasattr(_socket, _name):
        _CORE_OPTIONS[(IPPROTO_TCP, getattr(_socket, _name))] = _attr

# Options accepted and remembered (getsockopt returns what was set) but with no effect on the stack.
_REMEMBERED: dict[tuple[int, int], int | bytes] = {
    (SOL_SOCKET, _socket.SO_LINGER): struct.pack("ii", 0, 0),
    (SOL_SOCKET, _socket.SO_OOBINLINE): 0,
    (SOL_SOCKET, _socket.SO_RCVLOWAT): 1,
    (SOL_SOCKET, _socket.SO_SNDLOWAT): 1,
    (SOL_SOCKET, _socket.SO_RCVTIMEO): struct.pack("ll", 0, 0),
    (SOL_SOCKET, _socket.SO_SNDTIMEO): struct.pack("ll", 0, 0),
    (SOL_SOCKET, _socket.SO_DONTROUTE): 0,
    (SOL_SOCKET, _socket.SO_PRIORITY): 0,
    (IPPROTO_IPV6, _socket.IPV6_V6ONLY): 0,
    (IPPROTO_IP, _socket.IP_MULTICAST_TTL): 1,
    (IPPROTO_IP, _socket.IP_MULTICAST_LOOP): 1,
}
for _name in ("TCP_MAXSEG", "TCP_QUICKACK", "TCP_CORK", "TCP_FASTOPEN", "TCP_DEFER_ACCEPT", "TCP_NOTSENT_LOWAT",
              "TCP_WINDOW_CLAMP", "TCP_SYNCNT", "TCP_LINGER2"):
    if hasattr(_socket, _name):
        _REMEMBERED[(IPPROTO_TCP, getattr(_socket, _name))] = 0
_REMEMBERED[(IPPROTO_TCP, getattr(_socket, "TCP_MAXSEG", 2))] = 536
if hasattr(_socket, "TCP_QUICKACK"):
    _REMEMBERED[(IPPROTO_TCP, _socket.TCP_QUICKACK)] = 1
if hasattr(_socket, "TCP_SYNCNT"):
    _REMEMBERED[(IPPROTO_TCP, _socket.TCP_SYNCNT)] = 6


def _c_int(value: Any) -> int:
    """An argument CPython parses as a C ``int``: TypeError for non-integers, OverflowError out of range."""
    if isinstance(value, float) or not hasattr(type(value), "__index__"):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    number = int(value.__index__())
    if number > 0x7FFFFFFF:
        raise OverflowError("signed integer is greater than maximum")
    if number < -0x80000000:
        raise OverflowError("signed integer is less than minimum")
    return number


def _int_value(value: Any) -> int:
    if isinstance(value, int):
        return value
    raw = bytes(memoryview(value))
    if len(raw) >= 4:
        return int(struct.unpack_from("i", raw)[0])
    if len(raw) == 1:
        return raw[0]
    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))


class socket:  # the stdlib's name
    """``socket.socket`` after :func:`pytcp_green.patch_all`; see the module docstring."""

    # ``timeout`` is a read-only property, as on the stdlib class.
    def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> None:
        self._io_refs = 0
        self._closed = False
        self._kernel: Any = None
        self._handle: Handle | None = None
        self._fd = -1
        self._options: dict[tuple[int, int], int | bytes] = {}
        self._shut_rd = False
        self._released = False
        self._borrowed = False
        if fileno is not None:
            handle = _by_fd.get(fileno)
            if handle is not None and not handle.closed:
                self._adopt(handle, fileno)
                return
            self._kernel = _GeventSocket(family, type, proto, fileno)
            return
        if family == -1:
            family = AF_INET
        if type == -1:
            type = SOCK_STREAM
        if proto == -1:
            proto = 0
        base_type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
        if family in (AF_INET, AF_INET6) and base_type in (SOCK_STREAM, SOCK_DGRAM):
            expected = IPPROTO_TCP if base_type == SOCK_STREAM else IPPROTO_UDP
            if base_type == SOCK_DGRAM and family == AF_INET and proto == IPPROTO_ICMP:
                expected = IPPROTO_ICMP
            elif proto not in (0, expected):
                raise OSError(errno.EPROTONOSUPPORT, os.strerror(errno.EPROTONOSUPPORT))
            if not _stack_supports(family):
                raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
            green = _new_green(family, base_type, expected)
            handle = Handle(green, family, base_type, proto)  # .proto shows what was asked (0), as CPython
            handle.refs = 1
            self._handle = handle
            green.timeout = 0.0 if type & SOCK_NONBLOCK else _socket.getdefaulttimeout()
            return
        if family in (AF_INET, AF_INET6):
            # Raw IP and the like would reach the kernel's network: refuse rather than leak.
            raise OSError(errno.ESOCKTNOSUPPORT, f"{os.strerror(errno.ESOCKTNOSUPPORT)} (pytcp_green: only "
                                                 f"SOCK_STREAM and SOCK_DGRAM are implemented)")
        self._kernel = _GeventSocket(family, type, proto)

    def _adopt(self, handle: Handle, fd: int) -> None:
        """Become a socket object for ``fd`` of ``handle`` (after detach/fromfd/dup)."""
        self._handle = handle
        self._fd = fd
        # A detached descriptor already holds a ref; a live one being wrapped a second time gets one.
        if fd in _parked:
            _parked.discard(fd)
        else:
            handle.refs += 1
            self._borrowed = True  # another object owns this descriptor
        # As CPython's socket(fileno=...): the new object starts with the default timeout.
        handle.green.timeout = _socket.getdefaulttimeout()

    # -- identity ------------------------------------------------------------------------------------
    @property
    def family(self) -> Any:
        if self._kernel is not None:
            return family_enum(self._kernel.family)
        assert self._handle is not None
        return family_enum(self._handle.family)

    @property
    def type(self) -> Any:
        if self._kernel is not None:
            return kind_enum(self._kernel.type)
        assert self._handle is not None
        return kind_enum(self._handle.type)

    @property
    def proto(self) -> int:
        if self._kernel is not None:
            return int(self._kernel.proto)
        assert self._handle is not None
        return self._handle.proto

    @property
    def timeout(self) -> float | None:
        return self.gettimeout()

    def _green(self) -> GreenSocket:
        """The green socket, or OSError(EBADF) once closed."""
        # Not ``_closed``: a socket closed while makefile() files are open still works for them, as
        # in CPython, until the last one closes (``_released``).
        handle = self._handle
        if self._released or handle is None or handle.closed:
            raise _ebadf()
        return handle.green

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class does not define: methods of exotic kernel sockets.
        kernel = self.__dict__.get("_kernel")
        if kernel is not None:
            return getattr(kernel, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def fileno(self) -> int:
        if self._kernel is not None:
            return int(self._kernel.fileno())
        if self._released or self._handle is None or self._handle.closed:
            return -1
        if self._fd < 0:
            self._fd = self._handle.new_fd()
        return self._fd

    def __repr__(self) -> str:
        closed = self._closed
        fd = self.fileno() if not closed else -1
        text = (f"<{type(self).__module__}.{type(self).__qualname__}{' [closed]' if closed else ''} fd={fd}, "
                f"family={self.family}, type={self.type}, proto={self.proto}")
        if not closed:
            with contextlib.suppress(OSError):
                laddr = self.getsockname()
                if laddr:
                    text += f", laddr={laddr}"
            with contextlib.suppress(OSError):
                raddr = self.getpeername()
                if raddr:
                    text += f", raddr={raddr}"
        return text + ">"

    def __getstate__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __enter__(self) -> socket:
        return self

    def __exit__(self, *args: object) -> None:
        if not self._closed:
            self.close()

    def __del__(self) -> None:
        # Like the stdlib: a socket garbage-collected while open warns and is closed.
        if getattr(self, "_handle", None) is not None and not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)
            with contextlib.suppress(Exception):
                self._real_close()

    # -- timeouts ------------------------------------------------------------------------------------
    def settimeout(self, value: float | None) -> None:
        if self._kernel is not None:
            self._kernel.settimeout(value)
            return
        if value is not None:
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise TypeError("Timeout value must be int, float or None") from None
            if value != value or value < 0:  # NaN or negative
                raise ValueError("Timeout value out of range")
        self._green().timeout = value

    def gettimeout(self) -> float | None:
        if self._kernel is not None:
            return self._kernel.gettimeout()  # type: ignore[no-any-return]
        assert self._handle is not None
        return self._handle.green.timeout

    def setblocking(self, flag: bool) -> None:
        if self._kernel is not None:
            self._kernel.setblocking(flag)
            return
        self._green().timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        if self._kernel is not None:
            return bool(self._kernel.getblocking())
        return self._green().timeout != 0.0

    # -- addressing ----------------------------------------------------------------------------------
    def bind(self, address: Any) -> None:
        if self._kernel is not None:
            self._kernel.bind(address)
            return
        green = self._green()
        assert self._handle is not None
        green.bind(sockaddr_arg(self._handle.family, address, "bind"))

    def listen(self, backlog: int = 128) -> None:
        if self._kernel is not None:
            self._kernel.listen(backlog)
            return
        green = self._green()
        assert self._handle is not None
        backlog = _c_int(backlog)
        if self._handle.type != SOCK_STREAM:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        green.listen(max(0, min(backlog, 4096)))

    def connect(self, address: Any) -> None:
        if self._kernel is not None:
            self._kernel.connect(address)
            return
        green = self._green()
        assert self._handle is not None
        green.connect(sockaddr_arg(self._handle.family, address, "connect"))

    def connect_ex(self, address: Any) -> int:
        if self._kernel is not None:
            return int(self._kernel.connect_ex(address))
        try:
            socket.connect(self, address)  # not a subclass's connect (SSLSocket's would re-enter)
        except TimeoutError:
            return errno.EAGAIN  # what CPython's connect_ex returns when its timeout expires
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno
        return 0

    def getsockname(self) -> Any:
        if self._kernel is not None:
            return self._kernel.getsockname()
        return self._green().getsockname()

    def getpeername(self) -> Any:
        if self._kernel is not None:
            return self._kernel.getpeername()
        return self._green().getpeername()

    # -- connections ---------------------------------------------------------------------------------
    def _accept(self) -> tuple[int, Any]:
        """The stdlib's private hook (some subclasses call it): a new fd and the peer address."""
        if self._kernel is not None:
            return self._kernel._accept()  # type: ignore[no-any-return]
        conn, addr = self.accept()
        fd = conn.detach()
        return fd, addr

    def accept(self) -> tuple[socket, Any]:
        if self._kernel is not None:
            ksock, addr = self._kernel.accept()
            wrapped = socket.__new__(socket)
            wrapped._init_kernel(ksock)
            return wrapped, addr
        green = self._green()
        assert self._handle is not None
        if self._handle.type != SOCK_STREAM:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        conn_green, addr = green.accept()
        # Like CPython, the new socket is of the base class and takes the default timeout.
        conn_green.timeout = _socket.getdefaulttimeout()
        conn = socket.__new__(socket)
        conn._init_stack(Handle(conn_green, self._handle.family, SOCK_STREAM, self._handle.proto))
        return conn, addr

    def _init_stack(self, handle: Handle) -> None:
        self._io_refs = 0
        self._closed = False
        self._kernel = None
        self._handle = handle
        self._fd = -1
        self._options = {}
        self._shut_rd = False
        self._released = False
        self._borrowed = False
        handle.refs += 1

    def _init_kernel(self, ksock: Any) -> None:
        self._io_refs = 0
        self._closed = False
        self._kernel = ksock
        self._handle = None
        self._fd = -1
        self._options = {}
        self._shut_rd = False
        self._released = False
        self._borrowed = False

    # -- data ----------------------------------------------------------------------------------------
    @staticmethod
    def _flag_timeout(flags: int) -> Timeout:
        if flags & MSG_OOB:
            raise OSError(errno.EOPNOTSUPP, "pytcp_green: out-of-band data is not supported")
        return 0.0 if flags & MSG_DONTWAIT else USE_TIMEOUT

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._kernel is not None:
            return self._kernel.recv(bufsize, flags)  # type: ignore[no-any-return]
        green = self._green()
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        timeout = self._flag_timeout(flags)
        assert self._handle is not None
        if self._handle.type == SOCK_DGRAM:
            if self._shut_rd:
                return b""
            return green.recvfrom(bufsize, timeout, peek=bool(flags & MSG_PEEK))[0]
        if flags & MSG_WAITALL and not flags & MSG_PEEK:
            return self._recv_waitall(green, bufsize, timeout)
        return green.recv(bufsize, timeout, peek=bool(flags & MSG_PEEK))

    def _recv_waitall(self, green: GreenSocket, bufsize: int, timeout: Timeout) -> bytes:
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

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if self._kernel is not None:
            return int(self._kernel.recv_into(buffer, nbytes, flags))
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes == 0 or nbytes > len(view):
            if nbytes > len(view):
                raise ValueError("buffer too small for requested bytes")
            nbytes = len(view)
        data = self.recv(nbytes, flags)
        view[: len(data)] = data
        return len(data)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        if self._kernel is not None:
            return self._kernel.recvfrom(bufsize, flags)  # type: ignore[no-any-return]
        green = self._green()
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        assert self._handle is not None
        timeout = self._flag_timeout(flags)
        if self._handle.type == SOCK_DGRAM:
            return green.recvfrom(bufsize, timeout, peek=bool(flags & MSG_PEEK))
        # A stream socket reports no source address, as Linux does.
        return self.recv(bufsize, flags), None

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        if self._kernel is not None:
            return self._kernel.recvfrom_into(buffer, nbytes, flags)  # type: ignore[no-any-return]
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recvfrom_into")
        if nbytes > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        data, addr = self.recvfrom(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data), addr

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> tuple[bytes, list[Any], int, Any]:
        if self._kernel is not None:
            return self._kernel.recvmsg(bufsize, ancbufsize, flags)  # type: ignore[no-any-return]
        bufsize = _c_int(bufsize)
        if bufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        _recvmsg_checks(ancbufsize, flags)
        data, addr, msg_flags = self._recv_datagram_or_bytes(bufsize, flags)
        return data, [], msg_flags, addr

    def recvmsg_into(self, buffers: Iterable[Any], ancbufsize: int = 0,
                     flags: int = 0) -> tuple[int, list[Any], int, Any]:
        if self._kernel is not None:
            return self._kernel.recvmsg_into(buffers, ancbufsize, flags)  # type: ignore[no-any-return]
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
        _recvmsg_checks(ancbufsize, flags)
        data, addr, msg_flags = self._recv_datagram_or_bytes(sum(len(v) for v in views), flags)
        offset = 0
        for view in views:
            piece = data[offset: offset + len(view)]
            view[: len(piece)] = piece
            offset += len(piece)
        return len(data), [], msg_flags, addr

    def _recv_datagram_or_bytes(self, bufsize: int, flags: int) -> tuple[bytes, Any, int]:
        """recvfrom() for recvmsg: a datagram is taken whole, so a cut one is flagged MSG_TRUNC (the rest
        is discarded either way, as recv(2) does)."""
        assert self._handle is not None
        if self._handle.type == SOCK_DGRAM and bufsize < _MAX_DATAGRAM:
            data, addr = self.recvfrom(_MAX_DATAGRAM, flags)
            return data[:bufsize], addr, MSG_TRUNC if len(data) > bufsize else 0
        data, addr = self.recvfrom(bufsize, flags)
        return data, addr, 0

    def send(self, data: Any, flags: int = 0) -> int:
        if self._kernel is not None:
            return int(self._kernel.send(data, flags))
        green = self._green()
        view = _as_bytes_like(data)
        timeout = self._flag_timeout(flags)
        assert self._handle is not None
        if self._handle.type == SOCK_DGRAM:
            return green.sendto(view, None, timeout)
        return green.send(view, timeout)

    def sendall(self, data: Any, flags: int = 0) -> None:
        if self._kernel is not None:
            self._kernel.sendall(data, flags)
            return
        green = self._green()
        view = _as_bytes_like(data)
        timeout = self._flag_timeout(flags)
        assert self._handle is not None
        if self._handle.type == SOCK_DGRAM:
            green.sendto(view, None, timeout)
            return
        green.sendall(view, timeout)

    def sendto(self, data: Any, *args: Any) -> int:
        """``sendto(data, address)`` or ``sendto(data, flags, address)``; an address of None is an error."""
        if self._kernel is not None:
            return int(self._kernel.sendto(data, *args))
        if len(args) == 1:
            flags, address = 0, args[0]
        elif len(args) == 2:
            flags, address = _c_int(args[0]), args[1]
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args) + 1} given)")
        green = self._green()
        view = _as_bytes_like(data)
        timeout = self._flag_timeout(flags)
        assert self._handle is not None
        if self._handle.type == SOCK_STREAM:
            return green.send(view, timeout)  # Linux ignores the address on a connected TCP socket
        return green.sendto(view, sockaddr_arg(self._handle.family, address, "sendto"), timeout)

    def sendmsg(self, buffers: Iterable[Any], ancdata: Iterable[Any] = (), flags: int = 0, address: Any = None) -> int:
        if self._kernel is not None:
            return int(self._kernel.sendmsg(buffers, ancdata, flags, address))
        # Every argument is checked before anything is sent, as CPython does.
        try:
            items = list(buffers)
        except TypeError:
            raise TypeError("sendmsg() argument 1 must be an iterable") from None
        data = b"".join(bytes(_as_bytes_like(b)) for b in items)
        try:
            cmsgs = list(ancdata)
        except TypeError:
            raise TypeError("sendmsg() argument 2 must be an iterable") from None
        for cmsg in cmsgs:
            if not isinstance(cmsg, tuple) or len(cmsg) != 3:
                raise TypeError("sendmsg() ancillary data items must be (level, type, data) tuples")
            _c_int(cmsg[0])
            _c_int(cmsg[1])
            _as_bytes_like(cmsg[2])
        flags = _c_int(flags)
        if address is not None:
            assert self._handle is not None
            sockaddr_arg(self._handle.family, address, "sendmsg")
        if cmsgs:
            raise OSError(errno.EOPNOTSUPP, "pytcp_green: ancillary data is not supported")
        if address is not None:
            return self.sendto(data, flags, address)
        return self.send(data, flags)

    def sendmsg_afalg(self, *args: Any, **kwargs: Any) -> int:
        if self._kernel is not None:
            return int(self._kernel.sendmsg_afalg(*args, **kwargs))
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send a file's bytes with send() (no zero-copy path exists into a user-space stack)."""
        if self._kernel is not None:
            return int(self._kernel.sendfile(file, offset, count))
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        assert self._handle is not None
        if self._handle.type != SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if count is not None and (not isinstance(count, int) or count <= 0):
            raise ValueError(f"count must be a positive integer (got {count!r})")
        if offset:
            file.seek(offset)
        total = 0
        try:
            while count is None or total < count:
                want = 65536 if count is None else min(65536, count - total)
                chunk = file.read(want)
                if not chunk:
                    break
                self.sendall(chunk)
                total += len(chunk)
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)
        return total

    # -- options -------------------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        if self._kernel is not None:
            if optlen is None:
                self._kernel.setsockopt(level, optname, value)
            else:
                self._kernel.setsockopt(level, optname, value, optlen)
            return
        green = self._green()
        core = green.core
        key = (level, optname)
        method = _MEMBERSHIP_OPTIONS.get(key)
        if method is not None and hasattr(core, method):
            raw = b"" if isinstance(value, int) else bytes(memoryview(value))
            if len(raw) < 8:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            group, iface_addr, op = raw[:4], raw[4:8], getattr(core, method)
            green.call(lambda now: op(group, iface_addr, now), 0.0)  # sends IGMP: let the runtime flush it
            return
        if key == (IPPROTO_IP, _socket.IP_MULTICAST_IF) and hasattr(core, "set_multicast_if"):
            # struct in_addr, or struct ip_mreqn whose second field is the interface's address.
            raw = struct.pack("i", value) if isinstance(value, int) else bytes(memoryview(value))
            if len(raw) < 4:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            core.set_multicast_if(raw[4:8] if len(raw) >= 8 else raw[:4])
            return
        attr = _CORE_OPTIONS.get(key)
        if attr is not None and hasattr(core, attr):
            number = _int_value(value)
            if attr in ("rcvbuf", "sndbuf"):
                # Linux stores double the request (bookkeeping overhead) and enforces a minimum.
                number = max(number * 2, _MIN_RCVBUF if attr == "rcvbuf" else _MIN_SNDBUF)
                setattr(core, attr, number)
            elif attr in ("ttl", "tos", "keepidle", "keepintvl", "keepcnt", "user_timeout", "multicast_ttl"):
                if attr == "multicast_ttl" and number == -1:
                    number = 1  # Linux: -1 restores the default
                elif attr == "tos":
                    # Linux keeps one byte; on TCP the ECN bits stay TCP's own (RFC 3168 §6.1.1).
                    number &= 0xFC if self._handle is not None and self._handle.type == SOCK_STREAM else 0xFF
                if number < 0 or (attr in ("ttl", "multicast_ttl") and number > 255) or (
                        attr in ("keepidle", "keepintvl", "keepcnt") and number < 1):
                    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
                # TCP_USER_TIMEOUT is in milliseconds; the core keeps seconds.
                setattr(core, attr, number / 1000.0 if attr == "user_timeout" else number)
            else:
                setattr(core, attr, bool(number))
            return
        if attr is not None or key in _REMEMBERED:
            default = _REMEMBERED.get(key, 0)
            if isinstance(default, bytes):
                if isinstance(value, int):
                    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
                self._options[key] = bytes(memoryview(value))
            else:
                self._options[key] = _int_value(value)
            return
        raise OSError(errno.ENOPROTOOPT, os.strerror(errno.ENOPROTOOPT))

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        if self._kernel is not None:
            if buflen is None:
                return self._kernel.getsockopt(level, optname)
            return self._kernel.getsockopt(level, optname, buflen)
        green = self._green()
        handle = self._handle
        assert handle is not None
        key = (level, optname)
        value: int | bytes
        if key == (SOL_SOCKET, _socket.SO_ERROR):
            value = green.take_error()
        elif key == (SOL_SOCKET, _socket.SO_TYPE):
            value = handle.type
        elif key == (SOL_SOCKET, getattr(_socket, "SO_DOMAIN", 39)):
            value = handle.family
        elif key == (SOL_SOCKET, getattr(_socket, "SO_PROTOCOL", 38)):
            value = IPPROTO_TCP if handle.type == SOCK_STREAM else IPPROTO_UDP  # the kernel's answer
        elif key == (SOL_SOCKET, getattr(_socket, "SO_ACCEPTCONN", 30)):
            value = int(bool(getattr(green.core, "listening", False)))
        elif key == (IPPROTO_IP, _socket.IP_MULTICAST_IF) and hasattr(green.core, "multicast_if"):
            value = struct.unpack("i", green.core.multicast_if)[0]
        elif key in _CORE_OPTIONS and hasattr(green.core, _CORE_OPTIONS[key]):
            attr = _CORE_OPTIONS[key]
            raw = getattr(green.core, attr)
            if raw is None and attr == "ttl":
                value = 64  # Linux's default TTL, which the core uses when none is set
            elif attr == "user_timeout":
                value = round(float(raw) * 1000)
            else:
                value = int(raw or 0)
        elif key in self._options:
            value = self._options[key]
        elif key in _REMEMBERED or key in _CORE_OPTIONS:
            value = _REMEMBERED.get(key, 0)
        else:
            raise OSError(errno.ENOPROTOOPT, os.strerror(errno.ENOPROTOOPT))
        if buflen is None:
            return value if isinstance(value, int) else _int_value(value)
        raw_bytes = value if isinstance(value, bytes) else struct.pack("i", value)
        if not 0 < buflen <= 1024:
            raise OSError(errno.EINVAL, "getsockopt buflen out of range")
        return raw_bytes[:buflen].ljust(min(buflen, len(raw_bytes)), b"\0")

    # -- ending --------------------------------------------------------------------------------------
    def shutdown(self, how: int) -> None:
        if self._kernel is not None:
            self._kernel.shutdown(how)
            return
        green = self._green()
        how = _c_int(how)
        if how not in (_socket.SHUT_RD, _socket.SHUT_WR, _socket.SHUT_RDWR):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        assert self._handle is not None
        if self._handle.type == SOCK_DGRAM:
            green.getpeername()  # ENOTCONN when not connected, as Linux
            if how in (_socket.SHUT_RD, _socket.SHUT_RDWR):
                self._shut_rd = True
            return
        green.shutdown(how)

    def close(self) -> None:
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _real_close(self) -> None:
        if self._kernel is not None:
            self._kernel.close()
            return
        handle = self._handle
        if handle is None:
            return
        fd, self._fd = self._fd, -1
        if fd >= 0:
            handle.drop_fd(fd)
        if not self._released:
            self._released = True
            handle.release()

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def detach(self) -> int:
        """Give up the socket object without closing the stack socket; returns its descriptor."""
        if self._kernel is not None:
            self._closed = True
            return int(self._kernel.detach())
        if self._closed or self._handle is None or self._handle.closed:
            self._closed = True
            return -1
        fd = self.fileno()
        if self._borrowed:
            # socket(fileno=fd) over a descriptor another object owns, then detach(): as in CPython,
            # only this object goes away (http.client's response.fileno() users do this).
            self._fd = -1
            self._released = True
            self._closed = True
            self._handle.release()
            return fd
        # The descriptor keeps this object's ref until a socket(fileno=fd) takes it back.
        _parked.add(fd)
        self._fd = -1
        self._released = True
        self._closed = True
        return fd

    def dup(self) -> socket:
        if self._kernel is not None:
            wrapped = socket.__new__(socket)
            wrapped._init_kernel(self._kernel.dup())
            return wrapped
        self._green()
        assert self._handle is not None
        clone = socket.__new__(socket)
        clone._init_stack(self._handle)
        clone._fd = self._handle.new_fd()
        return clone

    def get_inheritable(self) -> bool:
        if self._kernel is not None:
            return bool(self._kernel.get_inheritable())
        return os.get_inheritable(self._check_fd())

    def set_inheritable(self, inheritable: bool) -> None:
        if self._kernel is not None:
            self._kernel.set_inheritable(inheritable)
            return
        os.set_inheritable(self._check_fd(), inheritable)

    def _check_fd(self) -> int:
        fd = self.fileno()
        if fd < 0:
            raise _ebadf()
        return fd

    # -- files ---------------------------------------------------------------------------------------
    def makefile(self, mode: str = "r", buffering: int | None = None, *, encoding: str | None = None,
                 errors: str | None = None, newline: str | None = None) -> Any:
        """A file object over the socket; the socket stays open until it and all its files are closed."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        writing = "w" in mode
        reading = "r" in mode or not writing
        binary = "b" in mode
        raw_mode = ("r" if reading else "") + ("w" if writing else "")
        raw = _SocketIO(self, raw_mode)
        self._io_refs += 1
        size = io.DEFAULT_BUFFER_SIZE if buffering is None or buffering < 0 else buffering
        if size == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        buffer: Any
        if reading and writing:
            buffer = io.BufferedRWPair(raw, raw, size)
        elif reading:
            buffer = io.BufferedReader(raw, size)
        else:
            buffer = io.BufferedWriter(raw, size)
        if binary:
            return buffer
        text = io.TextIOWrapper(buffer, io.text_encoding(encoding), errors, newline)
        text.mode = mode  # type: ignore[misc]
        return text


def _recvmsg_checks(ancbufsize: Any, flags: Any) -> None:
    if _c_int(ancbufsize) < 0:
        raise ValueError("negative buffer size in recvmsg()")
    _c_int(flags)


# Descriptors handed out by detach() that no socket object has taken back yet.
_parked: set[int] = set()

SocketType = socket


# -- module functions ---------------------------------------------------------------------------------
def _wrap_kernel(ksock: Any) -> socket:
    wrapped = socket.__new__(socket)
    wrapped._init_kernel(ksock)
    return wrapped


def socketpair(family: int | None = None, type: int = SOCK_STREAM, proto: int = 0) -> tuple[socket, socket]:
    """A connected pair; AF_UNIX by default, which is the kernel's (local IPC, not networking)."""
    if family is None:
        family = getattr(_socket, "AF_UNIX", AF_INET)
    if family in (AF_INET, AF_INET6):
        # An in-stack pair over loopback, so no kernel TCP socket appears.
        with create_server(("127.0.0.1" if family == AF_INET else "::1", 0), family=family) as listener:
            a = socket(family, type, proto)
            try:
                a.connect(listener.getsockname())
                b, _ = listener.accept()
            except BaseException:
                a.close()
                raise
        return a, b
    ka, kb = _gsocket.socketpair(family, type, proto)
    return _wrap_kernel(ka), _wrap_kernel(kb)


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> socket:
    """A new socket object on a duplicate of ``fd`` (a stack socket's fd yields the same stack socket)."""
    handle = _by_fd.get(fd)
    if handle is not None and not handle.closed:
        new = os.dup(fd)
        handle.fds.add(new)
        _by_fd[new] = handle
        handle.refs += 1
        _parked.add(new)
        return socket(family, type, proto, fileno=new)
    return socket(family, type, proto, fileno=os.dup(fd))


def create_connection(address: tuple[Any, Any], timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
                      source_address: tuple[Any, Any] | None = None, *, all_errors: bool = False) -> socket:
    """Connect to ``(host, port)`` trying each address getaddrinfo gives, like the stdlib's."""
    host, port = address
    # As the stdlib's, look the class up in the socket module at call time (tests mock it), as long as
    # it is ours or a subclass, so this never opens a kernel socket.
    current = getattr(_stdsocket, "socket", socket)
    factory = current if isinstance(current, type) and issubclass(current, socket) else socket
    failures: list[OSError] = []
    for family, socktype, proto, _canon, sockaddr in dns.getaddrinfo(host, port, 0, SOCK_STREAM):
        sock = None
        try:
            sock = factory(family, socktype, proto)
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            failures.clear()
            return sock
        except OSError as exc:
            failures.append(exc)
            if sock is not None:
                sock.close()
    if failures:
        if all_errors:
            raise ExceptionGroup("create_connection failed", failures)
        raise failures[-1]
    raise OSError("getaddrinfo returns an empty list")


def has_dualstack_ipv6() -> bool:
    """True once the core's IPv6 sockets implement IPV6_V6ONLY (a ``v6only`` attribute)."""
    if not has_ipv6():
        return False
    host = _state.current_host()
    probe = host.stack.socket(AF_INET6, SOCK_STREAM)
    try:
        return hasattr(probe, "v6only")
    finally:
        probe.close(host.runtime.now())


def create_server(address: tuple[Any, Any], *, family: int = AF_INET, backlog: int | None = None,
                  reuse_port: bool = False, dualstack_ipv6: bool = False) -> socket:
    """A listening TCP socket bound to ``address``, like the stdlib's (SO_REUSEADDR set, as on POSIX)."""
    if reuse_port and not hasattr(_socket, "SO_REUSEPORT"):
        raise ValueError("SO_REUSEPORT not supported on this platform")
    if dualstack_ipv6:
        if not has_dualstack_ipv6():
            raise ValueError("dualstack_ipv6 not supported on this platform")
        if family != AF_INET6:
            raise ValueError("dualstack_ipv6 requires AF_INET6 family")
    sock = socket(family, SOCK_STREAM)
    try:
        sock.setsockopt(SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        if family == AF_INET6 and has_dualstack_ipv6():
            sock.setsockopt(IPPROTO_IPV6, _socket.IPV6_V6ONLY, 0 if dualstack_ipv6 else 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise OSError(exc.errno, f"{exc.strerror} (while attempting to bind on address {address!r})") from None
        if backlog is None:
            sock.listen()
        else:
            sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise


def stack_readiness(obj: Any) -> Handle | None:
    """The stack handle behind ``obj`` (a socket object or an int fd), or None if it is a kernel fd."""
    if isinstance(obj, socket):
        if obj._kernel is not None:
            return None
        return obj._handle
    if isinstance(obj, int):
        return _by_fd.get(obj)
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        return None
    try:
        fd = fileno()
    except (OSError, ValueError):
        return None
    return _by_fd.get(fd) if isinstance(fd, int) else None


def _did_patch(target: ModuleType) -> None:
    _state.patch_item(target, "has_ipv6", has_ipv6())
    # gevent's servers (StreamServer, pywsgi) build listeners and accepted sockets from gevent's own
    # socket class, bound at their import: point that name at ours.  They then watch the listener's
    # fileno() with the hub (our readiness fd polls readable while a connection waits) and call
    # _accept(), which our class provides.
    import gevent.server as gserver

    _state.patch_item(gserver, "GeventSocket", socket)
