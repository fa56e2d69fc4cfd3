"""Socket options of stack sockets: which the core implements, which are only remembered.

``setsockopt``/``getsockopt`` as Linux answers them (socket(7), ip(7), tcp(7)): options the core
implements map to a core attribute or method; the rest of what Linux accepts is remembered per
socket object and read back unchanged, with no effect on the stack.
"""

from __future__ import annotations

import _socket
import errno
import os
import struct
from typing import Any

from pytcp_green.green.sockets import GreenSocket
from pytcp_green.patches._ancillary import RECV_OPTIONS
from pytcp_green.patches._common import (
    IPPROTO_IP,
    IPPROTO_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPPROTO_UDPLITE,
    SOCK_STREAM,
    SOL_SOCKET,
)
from pytcp_green.stack.datagram.udplite import clamp_coverage
from pytcp_green.stack.tcp.info import LAYOUT, tcp_info

# Linux charges SO_RCVBUF/SO_SNDBUF twice what is asked (bookkeeping overhead) and enforces minimums.
_MIN_RCVBUF = 2304
_MIN_SNDBUF = 4608

Options = dict[tuple[int, int], int | bytes]

# TCP_CONGESTION takes and returns a module name, NUL-padded to TCP_CA_NAME_MAX bytes as Linux does.
_TCP_CONGESTION = (IPPROTO_TCP, getattr(_socket, "TCP_CONGESTION", 13))
_CA_NAME_MAX = 16
# TCP_INFO answers Linux's struct tcp_info, cut to the caller's buffer (stack/tcp/info.py).
_TCP_INFO = (IPPROTO_TCP, getattr(_socket, "TCP_INFO", 11))
_LINUX_LISTEN, _LINUX_CLOSE = 10, 7
_SO_LINGER = (SOL_SOCKET, _socket.SO_LINGER)
_LINGER = struct.Struct("ii")  # struct linger: l_onoff, l_linger (seconds)

_CORE_OPTIONS: dict[tuple[int, int], str] = {
    (SOL_SOCKET, _socket.SO_REUSEADDR): "reuseaddr",
    (SOL_SOCKET, _socket.SO_KEEPALIVE): "keepalive",
    (SOL_SOCKET, _socket.SO_RCVBUF): "rcvbuf",
    (SOL_SOCKET, _socket.SO_SNDBUF): "sndbuf",
    (SOL_SOCKET, _socket.SO_BROADCAST): "broadcast",
    (SOL_SOCKET, _socket.SO_OOBINLINE): "oobinline",  # TCP's (stack/tcp/urgent.py); remembered on UDP
    (IPPROTO_TCP, _socket.TCP_NODELAY): "nodelay",
    (IPPROTO_IP, _socket.IP_TOS): "tos",
    (IPPROTO_IP, _socket.IP_TTL): "ttl",
    (IPPROTO_IP, _socket.IP_MULTICAST_TTL): "multicast_ttl",
    (IPPROTO_IP, _socket.IP_MULTICAST_LOOP): "multicast_loop",
    (IPPROTO_IPV6, _socket.IPV6_V6ONLY): "v6only",
    (IPPROTO_IP, getattr(_socket, "IP_RECVERR", 11)): "recverr",
    (IPPROTO_IPV6, getattr(_socket, "IPV6_RECVERR", 25)): "recverr",
}
# A raw socket's own IP header (raw(7)); Linux refuses both on any other socket type.
_HDRINCL = {(IPPROTO_IP, getattr(_socket, "IP_HDRINCL", 3)), (IPPROTO_IPV6, getattr(_socket, "IPV6_HDRINCL", 36))}
for _key in _HDRINCL:
    _CORE_OPTIONS[_key] = "hdrincl"
# IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP take a struct ip_mreq (group, interface address) or ip_mreqn
# (the same plus an ifindex, which the core does not use); core method per option.
_MEMBERSHIP_OPTIONS = {
    (IPPROTO_IP, _socket.IP_ADD_MEMBERSHIP): "add_membership",
    (IPPROTO_IP, _socket.IP_DROP_MEMBERSHIP): "drop_membership",
}
# UDP-Lite's checksum coverage (udplite(7)), at level IPPROTO_UDPLITE or IPPROTO_UDP as Linux takes both: set
# only on a UDP-Lite socket (ENOPROTOOPT on UDP), read as 0 (full coverage) on a UDP one.
_CSCOV_OPTIONS = {getattr(_socket, "UDPLITE_SEND_CSCOV", 10): "send_cscov",
                  getattr(_socket, "UDPLITE_RECV_CSCOV", 11): "recv_cscov"}
if hasattr(_socket, "SO_REUSEPORT"):
    _CORE_OPTIONS[(SOL_SOCKET, _socket.SO_REUSEPORT)] = "reuseport"
for _name, _attr in (("TCP_KEEPIDLE", "keepidle"), ("TCP_KEEPINTVL", "keepintvl"), ("TCP_KEEPCNT", "keepcnt"),
                     ("TCP_USER_TIMEOUT", "user_timeout"), ("TCP_FASTOPEN", "fastopen_qlen")):
    if hasattr(_socket, _name):
        _CORE_OPTIONS[(IPPROTO_TCP, getattr(_socket, _name))] = _attr

# TCP Fast Open's client switch (RFC 7413; Linux 4.11), which CPython may not name.
_CORE_OPTIONS[(IPPROTO_TCP, getattr(_socket, "TCP_FASTOPEN_CONNECT", 30))] = "fastopen_connect"

# Options accepted and remembered (getsockopt returns what was set) but with no effect on the stack
# (SO_LINGER's zero-time case aside: _set_linger).
_REMEMBERED: dict[tuple[int, int], int | bytes] = {
    _SO_LINGER: _LINGER.pack(0, 0),
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
for _key in RECV_OPTIONS:  # what recvmsg's ancillary data carries (patches._ancillary)
    _REMEMBERED[_key] = 0
for _name in ("TCP_MAXSEG", "TCP_QUICKACK", "TCP_CORK", "TCP_FASTOPEN", "TCP_DEFER_ACCEPT", "TCP_NOTSENT_LOWAT",
              "TCP_WINDOW_CLAMP", "TCP_SYNCNT", "TCP_LINGER2"):
    if hasattr(_socket, _name):
        _REMEMBERED[(IPPROTO_TCP, getattr(_socket, _name))] = 0
_REMEMBERED[(IPPROTO_TCP, getattr(_socket, "TCP_MAXSEG", 2))] = 536
if hasattr(_socket, "TCP_QUICKACK"):
    _REMEMBERED[(IPPROTO_TCP, _socket.TCP_QUICKACK)] = 1
if hasattr(_socket, "TCP_SYNCNT"):
    _REMEMBERED[(IPPROTO_TCP, _socket.TCP_SYNCNT)] = 6


def _int_value(value: Any) -> int:
    if isinstance(value, int):
        return value
    raw = bytes(memoryview(value))
    if len(raw) >= 4:
        return int(struct.unpack_from("i", raw)[0])
    if len(raw) == 1:
        return raw[0]
    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))


def _set_linger(core: Any, options: Options, value: Any) -> None:
    """SO_LINGER takes a struct linger (on/off, seconds); on with zero seconds makes close() reset the
    connection (the core's ``linger_abort``). A non-zero time is kept but close() does not wait on it.
    As Linux, turning it off keeps the time, and getsockopt answers on/off as 0 or 1."""
    if isinstance(value, int):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    raw = bytes(memoryview(value))
    if len(raw) < _LINGER.size:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    onoff, seconds = _LINGER.unpack_from(raw)
    if not onoff:
        previous = options.get(_SO_LINGER)
        seconds = _LINGER.unpack(previous)[1] if isinstance(previous, bytes) else 0
    options[_SO_LINGER] = _LINGER.pack(int(bool(onoff)), seconds)
    if hasattr(core, "linger_abort"):
        core.linger_abort = bool(onoff) and seconds == 0


def set_option(green: GreenSocket, sock_type: int, options: Options, level: int, optname: int,
               value: Any) -> None:
    """``setsockopt(level, optname, value)`` on a stack socket of ``sock_type``; ``options`` remembers."""
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
    if level in (IPPROTO_UDP, IPPROTO_UDPLITE) and optname in _CSCOV_OPTIONS and sock_type != SOCK_STREAM:
        if not hasattr(core, "send_cscov"):
            raise OSError(errno.ENOPROTOOPT, os.strerror(errno.ENOPROTOOPT))
        setattr(core, _CSCOV_OPTIONS[optname], clamp_coverage(_int_value(value)))
        return
    if key == (IPPROTO_IP, _socket.IP_MULTICAST_IF) and hasattr(core, "set_multicast_if"):
        # struct in_addr, or struct ip_mreqn whose second field is the interface's address.
        raw = struct.pack("i", value) if isinstance(value, int) else bytes(memoryview(value))
        if len(raw) < 4:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        core.set_multicast_if(raw[4:8] if len(raw) >= 8 else raw[:4])
        return
    if key == _TCP_CONGESTION and hasattr(core, "set_congestion"):
        raw = b"" if isinstance(value, int) else bytes(memoryview(value))
        core.set_congestion(raw[:_CA_NAME_MAX - 1].split(b"\0", 1)[0].decode("latin-1"))
        return
    if key == _SO_LINGER:
        _set_linger(core, options, value)
        return
    attr = _CORE_OPTIONS.get(key)
    if key in _HDRINCL and not hasattr(core, "hdrincl"):
        raise OSError(errno.ENOPROTOOPT, os.strerror(errno.ENOPROTOOPT))
    if attr is not None and hasattr(core, attr):
        number = _int_value(value)
        if attr in ("rcvbuf", "sndbuf"):
            # Linux stores double the request (bookkeeping overhead) and enforces a minimum.
            number = max(number * 2, _MIN_RCVBUF if attr == "rcvbuf" else _MIN_SNDBUF)
            setattr(core, attr, number)
        elif attr in ("ttl", "tos", "keepidle", "keepintvl", "keepcnt", "user_timeout", "multicast_ttl",
                      "fastopen_qlen"):
            if attr == "multicast_ttl" and number == -1:
                number = 1  # Linux: -1 restores the default
            elif attr == "tos":
                # Linux keeps one byte; on TCP the ECN bits stay TCP's own (RFC 3168 §6.1.1).
                number &= 0xFC if sock_type == SOCK_STREAM else 0xFF
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
            options[key] = bytes(memoryview(value))
        else:
            options[key] = _int_value(value)
        return
    raise OSError(errno.ENOPROTOOPT, os.strerror(errno.ENOPROTOOPT))


def _tcp_info(green: GreenSocket) -> bytes:
    """A connection's tcp_info; a socket without one (listening, never connected, closed) answers only
    its state, as Linux does."""
    tcb = getattr(green.core, "tcb", None)
    if tcb is not None and not tcb.dead:
        return tcp_info(tcb, green.runtime.now(), LAYOUT.size)
    state = _LINUX_LISTEN if getattr(green.core, "listening", False) else _LINUX_CLOSE
    return bytes((state,)).ljust(LAYOUT.size, b"\0")


def get_option(green: GreenSocket, family: int, sock_type: int, options: Options, level: int, optname: int,
               buflen: int | None) -> Any:
    """``getsockopt(level, optname[, buflen])`` on a stack socket."""
    key = (level, optname)
    value: int | bytes
    if key == (SOL_SOCKET, _socket.SO_ERROR):
        value = green.take_error()
    elif key == (SOL_SOCKET, _socket.SO_TYPE):
        value = sock_type
    elif key == (SOL_SOCKET, getattr(_socket, "SO_DOMAIN", 39)):
        value = family
    elif key == (SOL_SOCKET, getattr(_socket, "SO_PROTOCOL", 38)):
        value = IPPROTO_TCP if sock_type == SOCK_STREAM else IPPROTO_UDP  # the kernel's answer
        if hasattr(green.core, "send_cscov"):
            value = IPPROTO_UDPLITE
        elif hasattr(green.core, "hdrincl"):
            value = green.core.protocol  # a raw socket's
    elif level in (IPPROTO_UDP, IPPROTO_UDPLITE) and optname in _CSCOV_OPTIONS and sock_type != SOCK_STREAM:
        value = getattr(green.core, _CSCOV_OPTIONS[optname], None) or 0
    elif key == (SOL_SOCKET, getattr(_socket, "SO_ACCEPTCONN", 30)):
        value = int(bool(getattr(green.core, "listening", False)))
    elif key == (IPPROTO_IP, _socket.IP_MULTICAST_IF) and hasattr(green.core, "multicast_if"):
        value = struct.unpack("i", green.core.multicast_if)[0]
    elif key == _TCP_INFO and sock_type == SOCK_STREAM:
        value = _tcp_info(green)
    elif key == _TCP_CONGESTION and hasattr(green.core, "congestion"):
        value = green.core.congestion.encode().ljust(_CA_NAME_MAX, b"\0")
    elif key in _CORE_OPTIONS and hasattr(green.core, _CORE_OPTIONS[key]):
        attr = _CORE_OPTIONS[key]
        raw = getattr(green.core, attr)
        if raw is None and attr == "ttl":
            value = 64  # Linux's default TTL, which the core uses when none is set
        elif attr == "user_timeout":
            value = round(float(raw) * 1000)
        else:
            value = int(raw or 0)
    elif key in options:
        value = options[key]
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
