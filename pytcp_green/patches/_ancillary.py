"""Ancillary data of stack datagram sockets, as Linux gives and takes it (cmsg(3), ip(7), ipv6(7), RFC 3542).

Received (recvmsg), each only while its option is set on the socket, in Linux's order:

* IPv4: ``IP_PKTINFO`` (struct in_pktinfo: ifindex, spec_dst, addr), ``IP_RECVTTL`` -> ``IP_TTL`` (int),
  ``IP_RECVTOS`` -> ``IP_TOS`` (one octet);
* IPv6: ``IPV6_RECVPKTINFO`` -> ``IPV6_PKTINFO`` (struct in6_pktinfo: addr, ifindex),
  ``IPV6_RECVHOPLIMIT`` -> ``IPV6_HOPLIMIT`` (int), ``IPV6_RECVTCLASS`` -> ``IPV6_TCLASS`` (int).

The control buffer is filled as Linux's put_cmsg does: an item that does not fit is cut to what is
left (its data shortened) and MSG_CTRUNC is set; nothing goes in once less than a header is left.

With ``IP_RECVERR``/``IPV6_RECVERR`` on, ``recvmsg(..., MSG_ERRQUEUE)`` returns a queued ICMP error: the
quoted datagram's payload as data, its destination as the address, and one ``IP_RECVERR`` (level
IPPROTO_IP) or ``IPV6_RECVERR`` (level IPPROTO_IPV6) item: struct sock_extended_err (ee_errno, ee_origin,
ee_type, ee_code, ee_pad, ee_info, ee_data) followed by the offender's sockaddr (SO_EE_OFFENDER).

Sent (sendmsg): ``IP_TTL``/``IPV6_HOPLIMIT`` (int), ``IP_TOS`` (int or octet)/``IPV6_TCLASS`` (int), and
``IP_PKTINFO``/``IPV6_PKTINFO`` whose address chooses the source (it must be one of ours), for one call.
"""

from __future__ import annotations

import _socket
import errno
import os
import struct
from typing import Any

from pytcp_green.patches._common import AF_INET, IPPROTO_IP, IPPROTO_IPV6
from pytcp_green.stack.contracts import RxMeta
from pytcp_green.stack.datagram.base import QueuedError
from pytcp_green.stack.wire.ip6 import V4MAPPED_PREFIX

IP_TOS = _socket.IP_TOS
IP_TTL = _socket.IP_TTL
IP_PKTINFO = getattr(_socket, "IP_PKTINFO", 8)
IP_RECVTTL = getattr(_socket, "IP_RECVTTL", 12)
IP_RECVTOS = getattr(_socket, "IP_RECVTOS", 13)
IPV6_RECVPKTINFO = getattr(_socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(_socket, "IPV6_PKTINFO", 50)
IPV6_RECVHOPLIMIT = getattr(_socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(_socket, "IPV6_HOPLIMIT", 52)
IPV6_RECVTCLASS = getattr(_socket, "IPV6_RECVTCLASS", 66)
IPV6_TCLASS = getattr(_socket, "IPV6_TCLASS", 67)
MSG_CTRUNC = getattr(_socket, "MSG_CTRUNC", 8)
MSG_ERRQUEUE = getattr(_socket, "MSG_ERRQUEUE", 0x2000)
IP_RECVERR = getattr(_socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(_socket, "IPV6_RECVERR", 25)

# The options that ask for ancillary data (remembered per socket object, 0 until set).
RECV_OPTIONS = ((IPPROTO_IP, IP_PKTINFO), (IPPROTO_IP, IP_RECVTTL), (IPPROTO_IP, IP_RECVTOS),
                (IPPROTO_IPV6, IPV6_RECVPKTINFO), (IPPROTO_IPV6, IPV6_RECVHOPLIMIT), (IPPROTO_IPV6, IPV6_RECVTCLASS))

_HEADER = _socket.CMSG_LEN(0)
_INT = struct.Struct("i")


def _ipv4_items(meta: RxMeta, on: Any) -> list[tuple[int, int, bytes]]:
    dst = meta.dst[12:] if len(meta.dst) == 16 else meta.dst
    items = []
    if on(IPPROTO_IP, IP_PKTINFO):
        # spec_dst: the local address a reply would come from; for a datagram to one of our
        # addresses that is the address itself (Linux's fib_compute_spec_dst), else the interface's.
        items.append((IPPROTO_IP, IP_PKTINFO, _INT.pack(meta.ifindex) + dst + dst))
    if on(IPPROTO_IP, IP_RECVTTL):
        items.append((IPPROTO_IP, IP_TTL, _INT.pack(meta.hops)))
    if on(IPPROTO_IP, IP_RECVTOS):
        items.append((IPPROTO_IP, IP_TOS, bytes((meta.tclass,))))
    return items


def received(family: int, options: dict[tuple[int, int], Any], meta: RxMeta | None,
             ancbufsize: int) -> tuple[list[tuple[int, int, bytes]], int]:
    """The (level, type, data) items recvmsg returns for a datagram, and MSG_CTRUNC when cut."""
    if meta is None:
        return [], 0

    def on(level: int, name: int) -> bool:
        return bool(options.get((level, name)))

    if family == AF_INET:
        items = _ipv4_items(meta, on)
    else:
        items = []
        v4 = len(meta.dst) == 4
        if on(IPPROTO_IPV6, IPV6_RECVPKTINFO):
            addr = V4MAPPED_PREFIX + meta.dst if v4 else meta.dst
            items.append((IPPROTO_IPV6, IPV6_PKTINFO, addr + _INT.pack(meta.ifindex)))
        if on(IPPROTO_IPV6, IPV6_RECVHOPLIMIT):
            items.append((IPPROTO_IPV6, IPV6_HOPLIMIT, _INT.pack(meta.hops)))
        if on(IPPROTO_IPV6, IPV6_RECVTCLASS):
            items.append((IPPROTO_IPV6, IPV6_TCLASS, _INT.pack(meta.tclass)))
        if v4:  # an IPv4 datagram on an AF_INET6 socket also carries the IPv4 options' items
            items += _ipv4_items(meta, on)
    return _fit(items, ancbufsize)


_EXTENDED_ERR = struct.Struct("=IBBBBII")


def error_item(family: int, item: QueuedError, ancbufsize: int) -> tuple[list[tuple[int, int, bytes]], int]:
    """The IP_RECVERR / IPV6_RECVERR item of a queued error (ip_recv_error, ipv6_recv_error), and MSG_CTRUNC."""
    origin = item.origin
    err = _EXTENDED_ERR.pack(item.err, origin.origin, origin.type, origin.code, 0, origin.info, 0)
    if family == AF_INET:
        offender = struct.pack("=H", _socket.AF_INET) + bytes(2) + origin.offender + bytes(8)
        cmsg = (IPPROTO_IP, IP_RECVERR, err + offender)
    else:
        addr = origin.offender if len(origin.offender) == 16 else V4MAPPED_PREFIX + origin.offender
        offender = struct.pack("=H", _socket.AF_INET6) + bytes(6) + addr + bytes(4)
        cmsg = (IPPROTO_IPV6, IPV6_RECVERR, err + offender)
    return _fit([cmsg], ancbufsize)


def _fit(items: list[tuple[int, int, bytes]], space: int) -> tuple[list[tuple[int, int, bytes]], int]:
    """What of ``items`` a control buffer of ``space`` bytes holds (put_cmsg), and MSG_CTRUNC."""
    out = []
    flags = 0
    for level, kind, data in items:
        if space < _HEADER:
            flags |= MSG_CTRUNC
            break
        length = _socket.CMSG_LEN(len(data))
        if space < length:
            flags |= MSG_CTRUNC
            length = space
        out.append((level, kind, data[: length - _HEADER]))
        space -= min(_socket.CMSG_SPACE(len(data)), space)
    return out, flags


def _int_data(data: bytes, *, octet_ok: bool = False) -> int:
    if len(data) == _INT.size:
        return int(_INT.unpack(data)[0])
    if octet_ok and len(data) == 1:
        return data[0]
    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))


def to_send(family: int, cmsgs: list[tuple[int, int, bytes]]) -> dict[str, Any]:
    """The per-call overrides of sendmsg's ancillary items: the core's ``sendto`` keywords."""
    out: dict[str, Any] = {}
    for level, kind, data in cmsgs:
        if level == IPPROTO_IP and kind == IP_TTL:
            value = _int_data(data)
            if not 1 <= value <= 255:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            out["hops"] = value
        elif level == IPPROTO_IP and kind == IP_TOS:
            value = _int_data(data, octet_ok=True)
            if not 0 <= value <= 255:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            out["tos"] = value
        elif level == IPPROTO_IP and kind == IP_PKTINFO:
            if len(data) != 12:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            out["source"] = data[4:8] if family == AF_INET else V4MAPPED_PREFIX + data[4:8]
        elif level == IPPROTO_IPV6 and kind == IPV6_HOPLIMIT:
            value = _int_data(data)
            if not -1 <= value <= 255:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            if value >= 0:  # -1: the default (RFC 3542 §6.3)
                out["hops"] = value
        elif level == IPPROTO_IPV6 and kind == IPV6_TCLASS:
            value = _int_data(data)
            if not -1 <= value <= 255:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            if value >= 0:
                out["tos"] = value
        elif level == IPPROTO_IPV6 and kind == IPV6_PKTINFO and family != AF_INET:
            if len(data) != 20:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            out["source"] = data[:16]
        else:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    return out
