"""Arguments of stack socket calls, converted and checked as CPython's socket module does.

Address tuples (``(host, port)`` for ``AF_INET``, ``(host, port[, flowinfo[, scope_id]])`` for
``AF_INET6``, socket(7)/ip(7)/ipv6(7)) are validated with CPython's messages and their host names
resolved through :mod:`pytcp_green.patches.dns` into the numeric tuple the core takes; integers a
C ``int`` parameter takes and bytes-like buffers get CPython's TypeError/OverflowError.
"""

from __future__ import annotations

from typing import Any

from pytcp_green.patches import dns
from pytcp_green.patches._common import AF_INET, AF_INET6


def c_int(value: Any) -> int:
    """An argument CPython parses as a C ``int``: TypeError for non-integers, OverflowError out of range."""
    if isinstance(value, float) or not hasattr(type(value), "__index__"):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    number = int(value.__index__())
    if number > 0x7FFFFFFF:
        raise OverflowError("signed integer is greater than maximum")
    if number < -0x80000000:
        raise OverflowError("signed integer is less than minimum")
    return number


def as_bytes_like(data: Any) -> memoryview:
    """``data`` as a flat byte view, or CPython's TypeError for what is not bytes-like."""
    try:
        return memoryview(data).cast("B")
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'") from None


def recvmsg_checks(ancbufsize: Any, flags: Any) -> None:
    """The checks CPython's recvmsg()/recvmsg_into() make of their last two arguments."""
    if c_int(ancbufsize) < 0:
        raise ValueError("negative buffer size in recvmsg()")
    c_int(flags)


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
