"""The patched ``socket`` module's socket class and module functions, backed by pytcp_green.

:class:`socket` is a plain Python class (as gevent's is) so that ``isinstance`` and subclassing
work the way programs expect after patching; ``ssl.SSLSocket`` subclasses it.  An instance holds
one of two backends in ``_impl``, both with the same operations:

* :class:`~pytcp_green.patches._stack_backend.StackBackend` for ``AF_INET`` (and ``AF_INET6``
  once the core has IPv6) with ``SOCK_STREAM``/``SOCK_DGRAM``: a core socket of the current
  host's stack, with a real descriptor that polls readable while the socket is (see there);
* :class:`~pytcp_green.patches._kernel_backend.KernelBackend` for everything else (``AF_UNIX``,
  ``AF_NETLINK``, a socket made from an inherited kernel fd…): a gevent socket.

Subclasses.  As CPython's C methods, no public method here calls another public method through
``self``: each goes to the backend, or to a private hook (``_recv``, ``_send``, ``_sendall``…)
that :class:`~pytcp_green.patches.ssl.SSLSocket` overrides to carry TLS.  Libraries that subclass
``socket.socket`` and override ``recv()`` to call ``recvfrom()`` (PySocks) so never recurse.

Everything here runs in the gevent hub's thread (threads are greenlets after ``patch_all``).
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import io
import operator
import os
import socket as _stdsocket
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from pytcp_green.patches import _sendfile, _state, dns
from pytcp_green.patches._common import (
    AF_INET,
    AF_INET6,
    IPPROTO_IPV6,
    SOCK_CLOEXEC,
    SOCK_DGRAM,
    SOCK_NONBLOCK,
    SOCK_RAW,
    SOCK_STREAM,
    SOL_SOCKET,
    family_enum,
    has_ipv6,
    kind_enum,
)
from pytcp_green.patches._kernel_backend import KernelBackend, kernel_socketpair
from pytcp_green.patches._stack_backend import Handle, StackBackend, close_descriptor, handle_for_fd, park_duplicate

# What this module replaces in ``socket`` (see :func:`pytcp_green.patches._state.patch_module`); the
# resolver functions are :mod:`pytcp_green.patches.dns`'s.
__implements__ = ["socket", "SocketType", "create_connection", "create_server", "has_dualstack_ipv6",
                  "socketpair", "fromfd", "close"]
__all__ = ["Handle", "SocketType", "close", "create_connection", "create_server", "fromfd", "handle_for_fd",
           "has_dualstack_ipv6", "socket", "socketpair", "stack_readiness"]

_GLOBAL_DEFAULT_TIMEOUT: object = _stdsocket._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]
_BLOCKING_ERRNOS = {errno.EAGAIN, errno.EWOULDBLOCK}
Backend = StackBackend | KernelBackend


class _SocketIO(_stdsocket.SocketIO):
    """``makefile()``'s raw file: the stdlib's, reading and writing through the socket's private hooks
    (not its public ``recv_into``/``send``, which a subclass may have pointed back at the file)."""

    _sock: socket
    _timeout_occurred: bool

    def readinto(self, b: Any) -> int | None:
        self._checkClosed()
        self._checkReadable()  # type: ignore[attr-defined]
        if self._timeout_occurred:
            raise OSError("cannot read from timed out object")
        try:
            return self._sock._recv_into(b, 0, 0)
        except TimeoutError:
            self._timeout_occurred = True
            raise
        except OSError as exc:
            if exc.errno in _BLOCKING_ERRNOS:
                return None
            raise

    def write(self, b: Any) -> int | None:
        self._checkClosed()
        self._checkWritable()  # type: ignore[attr-defined]
        try:
            return self._sock._send(b, 0)
        except OSError as exc:
            if exc.errno in _BLOCKING_ERRNOS:
                return None
            raise


class socket:  # the stdlib's name
    """``socket.socket`` after :func:`pytcp_green.patch_all`; see the module docstring."""

    _impl: Backend
    # family, type, proto that socket(..., fileno=) was given (-1: not given): CPython reports those as
    # they are, without checking them against the descriptor, and asks the socket only for the others.
    _given: tuple[int, int, int] = (-1, -1, -1)

    # ``timeout`` is a read-only property, as on the stdlib class.
    def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> None:
        self._io_refs = 0
        self._closed = False
        if fileno is not None:
            handle = handle_for_fd(fileno)
            if handle is not None and not handle.closed:
                self._impl = StackBackend.adopt(handle, fileno)
                if (family, type, proto) != (-1, -1, -1):
                    self._given = (family, type if type == -1 else type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), proto)
            else:
                self._impl = KernelBackend.open(family, type, proto, fileno)
            return
        if family == -1:
            family = AF_INET
        if type == -1:
            type = SOCK_STREAM
        if proto == -1:
            proto = 0
        base_type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
        if family in (AF_INET, AF_INET6) and base_type in (SOCK_STREAM, SOCK_DGRAM, SOCK_RAW):
            self._impl = StackBackend.open(family, type, proto)
        elif family in (AF_INET, AF_INET6):
            # Any other type would reach the kernel's network: refuse rather than leak.
            raise OSError(errno.ESOCKTNOSUPPORT, f"{os.strerror(errno.ESOCKTNOSUPPORT)} (pytcp_green: only "
                                                 f"SOCK_STREAM, SOCK_DGRAM and SOCK_RAW are implemented)")
        else:
            self._impl = KernelBackend.open(family, type, proto)

    def _init(self, impl: Backend) -> None:
        """Set up an object made with ``__new__`` (accept(), dup(), ssl's wrap_socket) around ``impl``."""
        self._io_refs = 0
        self._closed = False
        self._impl = impl

    # -- identity ------------------------------------------------------------------------------------
    @property
    def family(self) -> Any:
        given = self._given[0]
        return family_enum(self._impl.family if given == -1 else given)

    @property
    def type(self) -> Any:
        given = self._given[1]
        return kind_enum(self._impl.type if given == -1 else given)

    @property
    def proto(self) -> int:
        given = self._given[2]
        return self._impl.proto if given == -1 else given

    @property
    def timeout(self) -> float | None:
        return self._impl.gettimeout()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class does not define: methods of exotic kernel sockets.
        impl = self.__dict__.get("_impl")
        if isinstance(impl, KernelBackend):
            return getattr(impl.sock, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def fileno(self) -> int:
        return self._impl.fileno()

    def __repr__(self) -> str:
        closed = self._closed
        impl = self._impl
        fd = impl.fileno() if not closed else -1
        text = (f"<{type(self).__module__}.{type(self).__qualname__}{' [closed]' if closed else ''} fd={fd}, "
                f"family={family_enum(impl.family)}, type={kind_enum(impl.type)}, proto={impl.proto}")
        if not closed:
            with contextlib.suppress(OSError):
                laddr = impl.getsockname()
                if laddr:
                    text += f", laddr={laddr}"
            with contextlib.suppress(OSError):
                raddr = impl.getpeername()
                if raddr:
                    text += f", raddr={raddr}"
        return text + ">"

    def __getstate__(self) -> Any:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __enter__(self) -> socket:
        return self

    def __exit__(self, *args: object) -> None:
        # As CPython's: the object's own close(), so a subclass's override runs (PySocks' closes its relay).
        if not self._closed:
            self.close()

    def __del__(self) -> None:
        # Like the stdlib: a socket garbage-collected while open warns and is closed.
        if isinstance(getattr(self, "_impl", None), StackBackend) and not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)
            with contextlib.suppress(Exception):
                self._real_close()

    # -- timeouts ------------------------------------------------------------------------------------
    def settimeout(self, value: float | None) -> None:
        self._impl.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._impl.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self._impl.setblocking(flag)

    def getblocking(self) -> bool:
        return self._impl.getblocking()

    # -- addressing ----------------------------------------------------------------------------------
    def bind(self, address: Any) -> None:
        self._impl.bind(address)

    def listen(self, backlog: int = 128) -> None:
        self._impl.listen(backlog)

    def connect(self, address: Any) -> None:
        self._impl.connect(address)

    def connect_ex(self, address: Any) -> int:
        return self._impl.connect_ex(address)

    def getsockname(self) -> Any:
        return self._impl.getsockname()

    def getpeername(self) -> Any:
        return self._impl.getpeername()

    # -- connections ---------------------------------------------------------------------------------
    def _accept(self) -> tuple[int, Any]:
        """The stdlib's private hook (some subclasses call it): a new fd and the peer address."""
        return self._impl.accept_fd()

    def accept(self) -> tuple[socket, Any]:
        # Like CPython, the new socket is of the base class (and takes the default timeout).
        impl, addr = self._impl.accept()
        return _wrap(impl), addr

    # -- data: each public method goes to a private hook, which SSLSocket overrides ------------------
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self._recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return self._recv_into(buffer, nbytes, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return self._recvfrom(bufsize, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        return self._recvfrom_into(buffer, nbytes, flags)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> tuple[bytes, list[Any], int, Any]:
        return self._impl.recvmsg(bufsize, ancbufsize, flags)

    def recvmsg_into(self, buffers: Iterable[Any], ancbufsize: int = 0,
                     flags: int = 0) -> tuple[int, list[Any], int, Any]:
        return self._impl.recvmsg_into(buffers, ancbufsize, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        return self._send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._sendall(data, flags)

    def sendto(self, data: Any, *args: Any) -> int:
        """``sendto(data, address)`` or ``sendto(data, flags, address)``; an address of None is an error."""
        return self._sendto(data, *args)

    def sendmsg(self, buffers: Iterable[Any], ancdata: Iterable[Any] = (), flags: int = 0, address: Any = None) -> int:
        return self._impl.sendmsg(buffers, ancdata, flags, address)

    def sendmsg_afalg(self, *args: Any, **kwargs: Any) -> int:
        return self._impl.sendmsg_afalg(*args, **kwargs)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """As the stdlib's: the descriptor path, or read()/send() where that gives up (see _sendfile)."""
        try:
            return self._sendfile_use_sendfile(file, offset, count)
        except _sendfile.GiveupOnSendfile:
            return self._sendfile_use_send(file, offset, count)

    def _check_sendfile_params(self, file: Any, offset: int, count: int | None) -> None:
        _sendfile.check_params(file, self._impl.type, count)

    def _sendfile_use_sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self._check_sendfile_params(file, offset, count)
        impl = self._impl
        if isinstance(impl, KernelBackend) and getattr(self, "_sslobj", None) is None:
            return int(impl.sock._sendfile_use_sendfile(file, offset, count))  # the kernel's zero copy
        return _sendfile.by_descriptor(file, offset, count, impl.gettimeout(), lambda block: self._sendall(block, 0))

    def _sendfile_use_send(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self._check_sendfile_params(file, offset, count)
        return _sendfile.by_reading(file, offset, count, self._impl.gettimeout(), lambda data: self._send(data, 0))

    def _recv(self, bufsize: int, flags: int) -> bytes:
        return self._impl.recv(bufsize, flags)

    def _recv_into(self, buffer: Any, nbytes: int, flags: int) -> int:
        return self._impl.recv_into(buffer, nbytes, flags)

    def _recvfrom(self, bufsize: int, flags: int) -> tuple[bytes, Any]:
        return self._impl.recvfrom(bufsize, flags)

    def _recvfrom_into(self, buffer: Any, nbytes: int, flags: int) -> tuple[int, Any]:
        return self._impl.recvfrom_into(buffer, nbytes, flags)

    def _send(self, data: Any, flags: int) -> int:
        return self._impl.send(data, flags)

    def _sendall(self, data: Any, flags: int) -> None:
        self._impl.sendall(data, flags)

    def _sendto(self, data: Any, *args: Any) -> int:
        return self._impl.sendto(data, *args)

    # -- options -------------------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        self._impl.setsockopt(level, optname, value, optlen)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        return self._impl.getsockopt(level, optname, buflen)

    # -- ending --------------------------------------------------------------------------------------
    def shutdown(self, how: int) -> None:
        self._impl.shutdown(how)

    def close(self) -> None:
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _real_close(self) -> None:
        self._impl.close()

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed and self._io_refs <= 0:
            self._real_close()  # the object was closed while files were open on it: the last one went

    def detach(self) -> int:
        """Give up the socket object without closing the stack socket; returns its descriptor."""
        fd = self._impl.detach(self._closed)
        self._closed = True
        return fd

    def _hand_over(self) -> StackBackend:
        """Give this stack socket (its ref and descriptor) to a new object and close this one, as
        ``detach()`` does for the stdlib's ssl: its wrap_socket takes a socket over this way, also
        through an object that only delegates to the socket (asyncio's tests wrap theirs so)."""
        impl = self._impl
        assert isinstance(impl, StackBackend)  # ssl checks it first (patches.ssl._is_stack_socket)
        self._closed = True
        return impl.hand_over()

    def dup(self) -> socket:
        return _wrap(self._impl.dup())

    def get_inheritable(self) -> bool:
        return self._impl.get_inheritable()

    def set_inheritable(self, inheritable: bool) -> None:
        self._impl.set_inheritable(inheritable)

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
        raw = _SocketIO(self, raw_mode)  # type: ignore[arg-type]
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


SocketType = socket


# -- module functions ---------------------------------------------------------------------------------
def _wrap(impl: Backend) -> socket:
    wrapped = socket.__new__(socket)
    wrapped._init(impl)
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
    ka, kb = kernel_socketpair(family, type, proto)
    return _wrap(ka), _wrap(kb)


def close(fd: int) -> None:
    """``socket.close(fd)``: a stack socket's descriptor is closed as Linux closes a socket's, so the
    object that used it fails with EBADF afterwards (and a detached one's stack socket closes)."""
    number = operator.index(fd)
    handle = handle_for_fd(number)
    if handle is None:
        _socket.close(number)
        return
    close_descriptor(handle, number)


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> socket:
    """A new socket object on a duplicate of ``fd`` (a stack socket's fd yields the same stack socket)."""
    handle = handle_for_fd(fd)
    if handle is not None and not handle.closed:
        return socket(family, type, proto, fileno=park_duplicate(handle, fd))
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
        impl = obj._impl
        return impl.handle if isinstance(impl, StackBackend) else None
    if isinstance(obj, int):
        return handle_for_fd(obj)
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        return None
    try:
        fd = fileno()
    except (OSError, ValueError):
        return None
    return handle_for_fd(fd) if isinstance(fd, int) else None


def _did_patch(target: ModuleType) -> None:
    _state.patch_item(target, "has_ipv6", has_ipv6())
    # gevent's servers (StreamServer, pywsgi) build listeners and accepted sockets from gevent's own
    # socket class, bound at their import: point that name at ours.  They then watch the listener's
    # fileno() with the hub (our readiness fd polls readable while a connection waits) and call
    # _accept(), which our class provides.
    import gevent.server as gserver

    _state.patch_item(gserver, "GeventSocket", socket)
