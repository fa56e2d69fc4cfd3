"""IGMP messages (RFC 1112 appendix I, RFC 2236 §2, RFC 3376 §4).

Every IGMP message starts with::

    type (1) | max resp code (1) | checksum (2) | ...

and its checksum covers the whole IGMP message (RFC 3376 §4.1.2).

* Version 1/2 messages are 8 bytes: the group address follows the checksum.  Types: 0x11
  Membership Query (v1 queries carry max resp 0, RFC 2236 §2.2), 0x12 v1 report, 0x16 v2 report,
  0x17 v2 leave group.
* A version 3 query (RFC 3376 §4.1) is a 0x11 message of at least 12 bytes: group, then
  Resv/S/QRV (1), QQIC (1), number of sources (2) and the sources.  The Max Resp Code and QQIC
  use the floating-point encoding of §4.1.1/§4.1.7 when >= 128.
* A version 3 report (RFC 3376 §4.2) is type 0x22: reserved (2 after the checksum), number of
  group records (2), then records: type (1), aux data len in 32-bit words (1), number of
  sources (2), multicast address (4), sources, aux data.

The query version is told apart as §7.1 says: 8 bytes with max resp 0 is IGMPv1, 8 bytes with
max resp non-zero is IGMPv2, 12 bytes or more is IGMPv3; other lengths are ignored (here:
Malformed ``bad_query_length``).  Receivers must accept a v3 report whose records carry
auxiliary data (§4.2.6), and a message longer than its contents (§4.1.1 "longer than 12").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.icmp import check_message, decode_float, put_checksum

TYPE_QUERY = 0x11
TYPE_V1_REPORT = 0x12
TYPE_V2_REPORT = 0x16
TYPE_V2_LEAVE = 0x17
TYPE_V3_REPORT = 0x22

# Group record types (RFC 3376 §4.2.12).
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE = 3
CHANGE_TO_EXCLUDE = 4
ALLOW_NEW_SOURCES = 5
BLOCK_OLD_SOURCES = 6

ALL_SYSTEMS = bytes((224, 0, 0, 1))
ALL_ROUTERS = bytes((224, 0, 0, 2))
ALL_V3_ROUTERS = bytes((224, 0, 0, 22))

IGMP_V2_LEN = 8
IGMP_V3_QUERY_MIN = 12

_V2 = struct.Struct("!BBH4s")
_V3_QUERY_TAIL = struct.Struct("!BBH")
_V3_REPORT_HEAD = struct.Struct("!BBHHH")
_RECORD_HEAD = struct.Struct("!BBH4s")


def decode_code(code: int) -> int:
    """Max Resp Code / QQIC -> value (RFC 3376 §4.1.1, §4.1.7): as is below 128, else (mant|0x10) << (exp+3)."""
    return decode_float(code, 4)


def encode_code(value: int) -> int:
    """The inverse of :func:`decode_code`: exact below 128, else the largest encodable value <= ``value``."""
    if value < 128:
        return max(value, 0)
    if value >= decode_code(0xFF):
        return 0xFF
    exp = 0
    while value >> (exp + 3) > 0x1F:  # the mantissa with its implied top bit is 16..31
        exp += 1
    return 0x80 | (exp << 4) | ((value >> (exp + 3)) & 0x0F)


@dataclass
class IgmpQuery:
    """A Membership Query of any version; ``max_resp`` in tenths of a second (decoded)."""

    version: int
    max_resp: int
    group: bytes
    suppress: bool = False  # S flag (v3): routers suppress their timer updates; hosts ignore it
    qrv: int = 0
    qqic: int = 0
    sources: list[bytes] = field(default_factory=list)


@dataclass
class IgmpRecord:
    """A v3 group record."""

    type: int
    group: bytes
    sources: list[bytes] = field(default_factory=list)


@dataclass
class IgmpMessage:
    """A parsed IGMP message: ``query`` for queries, ``group`` for v1/v2 reports and leaves,
    ``records`` for v3 reports."""

    type: int
    query: IgmpQuery | None = None
    group: bytes = b"\0\0\0\0"
    records: list[IgmpRecord] = field(default_factory=list)

    @classmethod
    def parse(cls, buf: memoryview) -> IgmpMessage:
        """Parse the IGMP message filling ``buf`` (the IPv4 payload)."""
        n = len(buf)
        check_message(buf, IGMP_V2_LEN)
        kind, code, _, group = _V2.unpack_from(buf)
        if kind == TYPE_QUERY:
            if n == IGMP_V2_LEN:
                return cls(kind, query=IgmpQuery(1 if code == 0 else 2, code, group))
            if n < IGMP_V3_QUERY_MIN:
                raise Malformed("bad_query_length")
            flags, qqic, count = _V3_QUERY_TAIL.unpack_from(buf, 8)
            if IGMP_V3_QUERY_MIN + 4 * count > n:
                raise Malformed("bad_source_count")
            sources = [bytes(buf[12 + 4 * i : 16 + 4 * i]) for i in range(count)]
            return cls(kind, query=IgmpQuery(3, decode_code(code), group, bool(flags & 0x08), flags & 0x07,
                                             decode_code(qqic), sources))
        if kind in (TYPE_V1_REPORT, TYPE_V2_REPORT, TYPE_V2_LEAVE):
            return cls(kind, group=group)
        if kind == TYPE_V3_REPORT:
            _, _, _, _, count = _V3_REPORT_HEAD.unpack_from(buf)
            records: list[IgmpRecord] = []
            offset = 8
            for _ in range(count):
                if offset + 8 > n:
                    raise Malformed("bad_record")
                rtype, aux, nsrc, maddr = _RECORD_HEAD.unpack_from(buf, offset)
                end = offset + 8 + 4 * nsrc + 4 * aux
                if end > n:
                    raise Malformed("bad_record")
                sources = [bytes(buf[offset + 8 + 4 * i : offset + 12 + 4 * i]) for i in range(nsrc)]
                records.append(IgmpRecord(rtype, maddr, sources))
                offset = end
            return cls(kind, records=records)
        return cls(kind)


def _finish(buf: bytearray) -> bytes:
    put_checksum(buf, 0, len(buf))
    return bytes(buf)


def igmp_v2(kind: int, group: bytes, max_resp: int = 0) -> bytes:
    """An 8-byte v1/v2 message: a report, a leave, or a v1/v2 query (``max_resp`` in tenths of a second)."""
    buf = bytearray(IGMP_V2_LEN)
    _V2.pack_into(buf, 0, kind, max_resp, 0, group)
    return _finish(buf)


def igmp_v3_report(records: list[IgmpRecord]) -> bytes:
    """A version 3 Membership Report (RFC 3376 §4.2) carrying ``records`` (no auxiliary data)."""
    size = 8 + sum(8 + 4 * len(r.sources) for r in records)
    buf = bytearray(size)
    _V3_REPORT_HEAD.pack_into(buf, 0, TYPE_V3_REPORT, 0, 0, 0, len(records))
    offset = 8
    for record in records:
        _RECORD_HEAD.pack_into(buf, offset, record.type, 0, len(record.sources), record.group)
        for i, source in enumerate(record.sources):
            buf[offset + 8 + 4 * i : offset + 12 + 4 * i] = source
        offset += 8 + 4 * len(record.sources)
    return _finish(buf)


def igmp_v3_query(group: bytes, max_resp: int, sources: list[bytes] | None = None, *, qrv: int = 2,
                  qqic: int = 125, suppress: bool = False) -> bytes:
    """A version 3 Membership Query (RFC 3376 §4.1); what a querier sends (tests use it)."""
    srcs = sources or []
    buf = bytearray(IGMP_V3_QUERY_MIN + 4 * len(srcs))
    _V2.pack_into(buf, 0, TYPE_QUERY, encode_code(max_resp), 0, group)
    _V3_QUERY_TAIL.pack_into(buf, 8, (0x08 if suppress else 0) | (qrv & 0x07), encode_code(qqic), len(srcs))
    for i, source in enumerate(srcs):
        buf[12 + 4 * i : 16 + 4 * i] = source
    return _finish(buf)


# The IPv4 Router Alert option (RFC 2113 §2.1): type 148 (copied, control class, number 20),
# length 4, value 0 "router shall examine packet".  IGMP messages carry it (RFC 2236 §2, RFC 3376 §4).
ROUTER_ALERT = bytes((148, 4, 0, 0))


def is_multicast4(addr: bytes) -> bool:
    return 224 <= addr[0] < 240
