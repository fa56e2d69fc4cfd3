"""What the patched ``socket`` class and the resolver functions share, so neither imports the other.

* the stdlib's enum conversions (``AddressFamily``/``SocketKind``, falling back to the integer for
  values the enums do not name, as CPython's socket module does);
* whether the running host's core has IPv6 sockets, probed once per host;
* the ``_socket`` constants they use, under the stdlib's names.
"""

from __future__ import annotations

import _socket
import socket as _stdsocket
from typing import Any

from pytcp_green.patches import _state

AF_UNSPEC = _socket.AF_UNSPEC
AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOCK_RAW = _socket.SOCK_RAW
SOCK_NONBLOCK = getattr(_socket, "SOCK_NONBLOCK", 0)
SOCK_CLOEXEC = getattr(_socket, "SOCK_CLOEXEC", 0)
SOL_SOCKET = _socket.SOL_SOCKET
IPPROTO_IP = _socket.IPPROTO_IP
IPPROTO_IPV6 = _socket.IPPROTO_IPV6
IPPROTO_TCP = _socket.IPPROTO_TCP
IPPROTO_UDP = _socket.IPPROTO_UDP
IPPROTO_ICMP = _socket.IPPROTO_ICMP
IPPROTO_UDPLITE = getattr(_socket, "IPPROTO_UDPLITE", 136)


def family_enum(value: int) -> Any:
    try:
        return _stdsocket.AddressFamily(value)
    except ValueError:
        return value


def kind_enum(value: int) -> Any:
    try:
        return _stdsocket.SocketKind(value)
    except ValueError:
        return value


_ipv6: bool | None = None


def has_ipv6() -> bool:
    """Whether the stack's core has IPv6 sockets (probed once per host)."""
    global _ipv6
    if _ipv6 is None:
        if not _state.has_host():
            return False
        try:
            probe = _state.current_host().stack.socket(_socket.AF_INET6, _socket.SOCK_DGRAM)
        except OSError:
            _ipv6 = False
        else:
            probe.close(0.0)
            _ipv6 = True
    return _ipv6


def reset_probe() -> None:
    """Forget the IPv6 probe (a new host was started)."""
    global _ipv6
    _ipv6 = None
