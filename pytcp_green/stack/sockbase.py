"""What every core socket shares: readiness bits, the runtime's wake-up hook, errno helpers, addresses.

Core sockets never block.  A call that cannot proceed raises ``BlockingIOError(EAGAIN)``; the
runtime then waits until the socket's :attr:`CoreSocket.waker` is called and retries.  Protocol
code calls :meth:`CoreSocket.wake` whenever readability, writability or the pending error may
have changed; spurious wake-ups are allowed, missed ones are bugs.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import socket as _socket_constants  # constants only (AF_INET...); no socket is ever created here
from collections.abc import Callable

AF_INET = int(_socket_constants.AF_INET)
AF_INET6 = int(_socket_constants.AF_INET6)

# poll(2) bits, Linux values, so the runtime can hand them to select/poll emulation unchanged.
POLLIN = 0x001
POLLPRI = 0x002
POLLOUT = 0x004
POLLERR = 0x008
POLLHUP = 0x010
POLLRDHUP = 0x2000

Address = tuple[str, int] | tuple[str, int, int, int]


def oserror(code: int, detail: str | None = None) -> OSError:
    """An OSError whose errno is ``code`` and whose subclass matches it (ConnectionRefusedError...)."""
    message = os.strerror(code) if detail is None else f"{os.strerror(code)}: {detail}"
    return OSError(code, message)


def would_block() -> BlockingIOError:
    return BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))


@functools.lru_cache(maxsize=4096)
def pack_host(family: int, host: str) -> bytes:
    """Numeric host string -> packed address (4 or 16 bytes); '' means the wildcard (all zeros).

    For AF_INET6 an IPv4 literal is accepted as its v4-mapped form (::ffff:a.b.c.d).
    Raises OSError(EINVAL) for anything that is not a numeric address of the family (not cached).
    Cached: a sendto() names its peer as a string every time, and parsing it was a tenth of a
    datagram's round trip.
    """
    if host in ("", "0.0.0.0", "::"):
        return bytes(4 if family == AF_INET else 16)
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise oserror(errno.EINVAL, f"not a numeric address: {host!r}") from None
    if family == AF_INET:
        if ip.version != 4:
            raise oserror(errno.EAFNOSUPPORT, f"{host!r} is not IPv4")
        return ip.packed
    if ip.version == 4:
        return b"\0" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


@functools.lru_cache(maxsize=4096)
def unpack_host(addr: bytes) -> str:
    """Packed address -> its canonical string (cached: peers repeat, and every datagram needs one).

    A v4-mapped address reads ::ffff:a.b.c.d, as CPython's socket module shows it.
    """
    if len(addr) == 16 and addr[:12] == b"\0" * 10 + b"\xff\xff":
        return "::ffff:" + str(ipaddress.IPv4Address(addr[12:]))
    return str(ipaddress.ip_address(addr))


def sockaddr(family: int, addr: bytes, port: int) -> Address:
    """The tuple Python's socket module returns for this family."""
    if family == AF_INET:
        return (unpack_host(addr), port)
    return (unpack_host(addr), port, 0, 0)


class CoreSocket:
    """Base of the core's socket objects: the wake-up hook and the pending error (SO_ERROR)."""

    __slots__ = ("_error", "family", "waker")

    family: int
    waker: Callable[[], None] | None
    _error: int

    def __init__(self, family: int) -> None:
        self.family = family
        self.waker = None
        self._error = 0

    def wake(self) -> None:
        """Tell the runtime that readiness may have changed."""
        waker = self.waker
        if waker is not None:
            waker()

    def take_error(self) -> int:
        """Read and clear the pending error, like getsockopt(SO_ERROR)."""
        code, self._error = self._error, 0
        return code

    def poll_mask(self) -> int:
        """The poll(2) bits that hold now; subclasses override."""
        raise NotImplementedError
