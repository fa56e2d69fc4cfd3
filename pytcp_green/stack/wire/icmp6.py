"""ICMPv6 (RFC 4443), Neighbor Discovery (RFC 4861 §4) and MLDv2 (RFC 3810 §5) messages.

Every message starts with the same 8 bytes (RFC 4443 §2.1)::

    type (1) | code (1) | checksum (2) | rest of header (4)

and the checksum covers the IPv6 pseudo-header (RFC 8200 §8.1, next header 58) plus the
whole message (RFC 4443 §2.3).  What "rest" means depends on the type:

* echo request/reply (128/129, RFC 4443 §4.1): identifier | sequence;
* packet too big (2, §3.2): the MTU; parameter problem (4, §3.4): the pointer;
  destination unreachable (1) and time exceeded (3): unused.  Errors quote the invoking
  packet in the body, "as much as possible without the ICMPv6 packet exceeding the minimum
  IPv6 MTU" (§2.4 c);
* router solicitation (133, RFC 4861 §4.1): reserved; then options;
* router advertisement (134, §4.2): cur hop limit | M | O | reserved | router lifetime;
  then reachable time (4) | retrans timer (4) | options;
* neighbor solicitation (135, §4.3): reserved; then target (16) | options;
* neighbor advertisement (136, §4.4): R | S | O | reserved; then target (16) | options;
* redirect (137, §4.5): reserved; then target (16) | destination (16) | options;
* MLD query (130, RFC 3810 §5.1): maximum response code | reserved; then multicast address
  (16) and, for MLDv2 (message of 28 octets or more), S | QRV | QQIC | number of sources |
  sources.  A 24-octet query is MLDv1 (RFC 2710 §3);
* MLDv2 report (143, RFC 3810 §5.2): reserved | number of records; then records
  (type | aux len | number of sources | address | sources | aux data).

ND options (RFC 4861 §4.6) are ``type | length (8-octet units) | data``; a zero length makes the
whole message invalid (§4.6: "Nodes MUST silently discard an ND packet that contains an option
with length zero").
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.checksum import pseudo_sum
from pytcp_green.stack.wire.icmp import ICMP_HEADER_LEN, IcmpMessage, decode_float, write_header
from pytcp_green.stack.wire.icmp import echo_rest as echo_rest  # the echo word is ICMPv4's too

ICMP6_HEADER_LEN = ICMP_HEADER_LEN
PROTO_ICMP6 = 58

# Error messages (RFC 4443 §3) and informational messages (§4).
TYPE_DEST_UNREACH = 1
TYPE_PACKET_TOO_BIG = 2
TYPE_TIME_EXCEEDED = 3
TYPE_PARAM_PROBLEM = 4
TYPE_ECHO_REQUEST = 128
TYPE_ECHO_REPLY = 129
# MLD (RFC 2710, RFC 3810).
TYPE_MLD_QUERY = 130
TYPE_MLD_V1_REPORT = 131
TYPE_MLD_V1_DONE = 132
TYPE_MLD_V2_REPORT = 143
# Neighbor Discovery (RFC 4861 §4).
TYPE_ROUTER_SOLICIT = 133
TYPE_ROUTER_ADVERT = 134
TYPE_NEIGHBOR_SOLICIT = 135
TYPE_NEIGHBOR_ADVERT = 136
TYPE_REDIRECT = 137

# Destination unreachable codes (RFC 4443 §3.1).
CODE_NO_ROUTE = 0
CODE_ADMIN_PROHIBITED = 1
CODE_BEYOND_SCOPE = 2
CODE_ADDR_UNREACH = 3
CODE_PORT_UNREACH = 4
CODE_POLICY_FAILED = 5
CODE_REJECT_ROUTE = 6
# Time exceeded codes (§3.3).
CODE_HOP_LIMIT = 0
CODE_REASSEMBLY_TIME = 1
# Parameter problem codes (§3.4; code 3 RFC 7112 §5).
CODE_BAD_HEADER = 0
CODE_UNKNOWN_NEXT_HEADER = 1
CODE_UNKNOWN_OPTION = 2
CODE_INCOMPLETE_CHAIN = 3

ERROR_TYPES = frozenset({TYPE_DEST_UNREACH, TYPE_PACKET_TOO_BIG, TYPE_TIME_EXCEEDED, TYPE_PARAM_PROBLEM})

# ND option types (RFC 4861 §4.6).
OPT_SLLA = 1
OPT_TLLA = 2
OPT_PREFIX_INFO = 3
OPT_REDIRECTED_HEADER = 4
OPT_MTU = 5

# MLDv2 record types (RFC 3810 §5.2.12).
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE = 3
CHANGE_TO_EXCLUDE = 4
ALLOW_NEW_SOURCES = 5
BLOCK_OLD_SOURCES = 6

_RA_BODY = struct.Struct("!II")
_PREFIX = struct.Struct("!BBBBIII16s")  # type, len, prefix len, flags, valid, preferred, reserved2, prefix
_MTU = struct.Struct("!BBHI")
_MLD_V2_QUERY = struct.Struct("!16sBBH")
_MLD_RECORD = struct.Struct("!BBH16s")


class Icmp6Message(IcmpMessage):
    """A parsed ICMPv6 message; ``body`` is a view of everything after the 8-byte header."""

    __slots__ = ()

    @classmethod
    def parse(cls, buf: memoryview, src: bytes, dst: bytes, verify: bool = True) -> Icmp6Message:
        """Parse the ICMPv6 message filling ``buf`` (the upper-layer part of the packet from ``src`` to ``dst``)."""
        return cls._parse(buf, pseudo_sum(src, dst, PROTO_ICMP6, len(buf)) if verify else None)

    @property
    def mtu(self) -> int:
        """Packet too big: the next-hop MTU (RFC 4443 §3.2)."""
        return self.rest

    @property
    def pointer(self) -> int:
        """Parameter problem: the offset in the quoted packet (RFC 4443 §3.4)."""
        return self.rest

    @property
    def is_error(self) -> bool:
        """RFC 4443 §2.1: types 0-127 are errors."""
        return self.type < 128


def write_icmp6(buf: bytearray, offset: int, type: int, code: int, rest: int, body_len: int,
                src: bytes, dst: bytes) -> None:
    """Write the header at ``offset`` and the checksum over pseudo-header, header and body (in place)."""
    write_header(buf, offset, type, code, rest, body_len,
                 pseudo_sum(src, dst, PROTO_ICMP6, ICMP6_HEADER_LEN + body_len))


def build_icmp6(type: int, code: int, rest: int, body: bytes | bytearray | memoryview,
                src: bytes, dst: bytes) -> bytearray:
    """A whole message, checksum included."""
    buf = bytearray(ICMP6_HEADER_LEN + len(body))
    buf[ICMP6_HEADER_LEN:] = body
    write_icmp6(buf, 0, type, code, rest, len(body), src, dst)
    return buf


# -- Neighbor Discovery options (RFC 4861 §4.6) ----------------------------------------------------------


class PrefixInfo:
    """RFC 4861 §4.6.2 prefix information."""

    __slots__ = ("autonomous", "on_link", "preferred", "prefix", "prefix_len", "valid")

    def __init__(self, prefix: bytes, prefix_len: int, on_link: bool, autonomous: bool, valid: int,
                 preferred: int) -> None:
        self.prefix = prefix
        self.prefix_len = prefix_len
        self.on_link = on_link
        self.autonomous = autonomous
        self.valid = valid  # seconds, 0xFFFFFFFF = infinity
        self.preferred = preferred

    def __repr__(self) -> str:
        return (f"PrefixInfo({self.prefix.hex()}/{self.prefix_len}, L={self.on_link}, A={self.autonomous}, "
                f"valid={self.valid}, preferred={self.preferred})")


class NdOptions:
    """The options of one ND message, validated (§4.6) and sorted by kind."""

    __slots__ = ("mtu", "prefixes", "redirected", "slla", "tlla", "unknown")

    def __init__(self) -> None:
        self.slla: bytes | None = None
        self.tlla: bytes | None = None
        self.prefixes: list[PrefixInfo] = []
        self.mtu: int | None = None
        self.redirected: memoryview | None = None
        self.unknown = 0  # options we skip (§4.6: "silently ignore ... unrecognized")

    @classmethod
    def parse(cls, buf: memoryview) -> NdOptions:
        self = cls()
        n = len(buf)
        i = 0
        while i < n:
            if i + 2 > n:
                raise Malformed("bad_nd_option")
            kind, units = buf[i], buf[i + 1]
            length = units * 8
            if length == 0 or i + length > n:
                raise Malformed("bad_nd_option")
            opt = buf[i : i + length]
            if kind in (OPT_SLLA, OPT_TLLA):
                # Ethernet: 6 octets after the 2-octet header (RFC 2464 §6).
                mac = bytes(opt[2:8])
                if kind == OPT_SLLA:
                    self.slla = mac
                else:
                    self.tlla = mac
            elif kind == OPT_PREFIX_INFO:
                if length != 32:
                    raise Malformed("bad_nd_option")
                _, _, plen, flags, valid, preferred, _, prefix = _PREFIX.unpack_from(opt)
                if plen > 128:
                    raise Malformed("bad_nd_option")
                self.prefixes.append(PrefixInfo(prefix, plen, bool(flags & 0x80), bool(flags & 0x40), valid,
                                                preferred))
            elif kind == OPT_MTU:
                if length != 8:
                    raise Malformed("bad_nd_option")
                self.mtu = _MTU.unpack_from(opt)[3]
            elif kind == OPT_REDIRECTED_HEADER:
                self.redirected = opt[8:]
            else:
                self.unknown += 1
            i += length
        return self


def nd_opt_lla(kind: int, mac: bytes) -> bytes:
    """Source/target link-layer address option for Ethernet (RFC 4861 §4.6.1, RFC 2464 §6)."""
    return bytes((kind, 1)) + mac


def nd_opt_prefix(prefix: bytes, prefix_len: int, *, on_link: bool = True, autonomous: bool = True,
                  valid: int = 2592000, preferred: int = 604800) -> bytes:
    flags = (0x80 if on_link else 0) | (0x40 if autonomous else 0)
    return _PREFIX.pack(OPT_PREFIX_INFO, 4, prefix_len, flags, valid, preferred, 0, prefix)


def nd_opt_mtu(mtu: int) -> bytes:
    return _MTU.pack(OPT_MTU, 1, 0, mtu)


class RouterSolicit:
    __slots__ = ("options",)

    def __init__(self, options: NdOptions) -> None:
        self.options = options

    @classmethod
    def parse(cls, msg: Icmp6Message) -> RouterSolicit:
        return cls(NdOptions.parse(msg.body))


class RouterAdvert:
    """RFC 4861 §4.2."""

    __slots__ = ("cur_hop_limit", "managed", "options", "other", "reachable_time", "retrans_timer",
                 "router_lifetime")

    def __init__(self, cur_hop_limit: int, managed: bool, other: bool, router_lifetime: int,
                 reachable_time: int, retrans_timer: int, options: NdOptions) -> None:
        self.cur_hop_limit = cur_hop_limit
        self.managed = managed
        self.other = other
        self.router_lifetime = router_lifetime  # seconds
        self.reachable_time = reachable_time  # milliseconds, 0 = unspecified
        self.retrans_timer = retrans_timer  # milliseconds, 0 = unspecified
        self.options = options

    @classmethod
    def parse(cls, msg: Icmp6Message) -> RouterAdvert:
        body = msg.body
        if len(body) < 8:
            raise Malformed("too_short")
        reachable, retrans = _RA_BODY.unpack_from(body)
        rest = msg.rest
        return cls(rest >> 24, bool(rest & 0x800000), bool(rest & 0x400000), rest & 0xFFFF, reachable, retrans,
                   NdOptions.parse(body[8:]))


def ra_rest(cur_hop_limit: int, router_lifetime: int, managed: bool = False, other: bool = False) -> int:
    return (cur_hop_limit << 24) | (0x800000 if managed else 0) | (0x400000 if other else 0) | router_lifetime


def ra_body(reachable_time: int = 0, retrans_timer: int = 0, options: bytes = b"") -> bytes:
    return _RA_BODY.pack(reachable_time, retrans_timer) + options


class NeighborSolicit:
    """RFC 4861 §4.3."""

    __slots__ = ("options", "target")

    def __init__(self, target: bytes, options: NdOptions) -> None:
        self.target = target
        self.options = options

    @classmethod
    def parse(cls, msg: Icmp6Message) -> NeighborSolicit:
        body = msg.body
        if len(body) < 16:
            raise Malformed("too_short")
        return cls(bytes(body[:16]), NdOptions.parse(body[16:]))


class NeighborAdvert:
    """RFC 4861 §4.4."""

    __slots__ = ("options", "override", "router", "solicited", "target")

    def __init__(self, router: bool, solicited: bool, override: bool, target: bytes, options: NdOptions) -> None:
        self.router = router
        self.solicited = solicited
        self.override = override
        self.target = target
        self.options = options

    @classmethod
    def parse(cls, msg: Icmp6Message) -> NeighborAdvert:
        body = msg.body
        if len(body) < 16:
            raise Malformed("too_short")
        rest = msg.rest
        return cls(bool(rest & 0x80000000), bool(rest & 0x40000000), bool(rest & 0x20000000), bytes(body[:16]),
                   NdOptions.parse(body[16:]))


def na_rest(router: bool, solicited: bool, override: bool) -> int:
    return (0x80000000 if router else 0) | (0x40000000 if solicited else 0) | (0x20000000 if override else 0)


class Redirect:
    """RFC 4861 §4.5."""

    __slots__ = ("dest", "options", "target")

    def __init__(self, target: bytes, dest: bytes, options: NdOptions) -> None:
        self.target = target
        self.dest = dest
        self.options = options

    @classmethod
    def parse(cls, msg: Icmp6Message) -> Redirect:
        body = msg.body
        if len(body) < 32:
            raise Malformed("too_short")
        return cls(bytes(body[:16]), bytes(body[16:32]), NdOptions.parse(body[32:]))


# -- MLD (RFC 3810 §5) -------------------------------------------------------------------------------------


def decode_max_resp(code: int) -> int:
    """RFC 3810 §5.1.3: Maximum Response Code -> milliseconds."""
    return decode_float(code, 12)


def decode_qqic(code: int) -> int:
    """RFC 3810 §5.1.9: QQIC -> seconds."""
    return decode_float(code, 4)


class MldQuery:
    """An MLD query: MLDv1 (24 octets, RFC 2710 §3) or MLDv2 (28+ octets, RFC 3810 §5.1)."""

    __slots__ = ("group", "max_resp_ms", "qqi", "qrv", "s_flag", "sources", "version")

    def __init__(self, version: int, max_resp_ms: int, group: bytes, s_flag: bool = False, qrv: int = 0,
                 qqi: int = 0, sources: tuple[bytes, ...] = ()) -> None:
        self.version = version
        self.max_resp_ms = max_resp_ms
        self.group = group
        self.s_flag = s_flag
        self.qrv = qrv
        self.qqi = qqi
        self.sources = sources

    @classmethod
    def parse(cls, msg: Icmp6Message) -> MldQuery:
        body = msg.body
        code = msg.rest >> 16
        if len(body) < 16:
            raise Malformed("too_short")
        if len(body) < 20:
            # RFC 3810 §8.1: 24 octets is MLDv1; lengths between 24 and 28 are invalid, ignored.
            if len(body) != 16:
                raise Malformed("bad_length")
            return cls(1, code, bytes(body[:16]))
        group, flags, qqic, nsrc = _MLD_V2_QUERY.unpack_from(body)
        if len(body) < 20 + 16 * nsrc:
            raise Malformed("bad_length")
        sources = tuple(bytes(body[20 + 16 * i : 36 + 16 * i]) for i in range(nsrc))
        return cls(2, decode_max_resp(code), group, bool(flags & 0x08), flags & 0x07, decode_qqic(qqic), sources)


def mld_query(group: bytes = bytes(16), max_resp_code: int = 10000, *, s_flag: bool = False, qrv: int = 2,
              qqic: int = 125, sources: Iterable[bytes] = ()) -> tuple[int, bytes]:
    """(rest, body) of an MLDv2 query; general when ``group`` is ::."""
    srcs = list(sources)
    body = _MLD_V2_QUERY.pack(group, (0x08 if s_flag else 0) | (qrv & 7), qqic, len(srcs)) + b"".join(srcs)
    return max_resp_code << 16, body


class MldRecord:
    __slots__ = ("group", "sources", "type")

    def __init__(self, type: int, group: bytes, sources: tuple[bytes, ...] = ()) -> None:
        self.type = type
        self.group = group
        self.sources = sources

    def __repr__(self) -> str:
        return f"MldRecord(type={self.type}, group={self.group.hex()}, sources={len(self.sources)})"


class MldReport:
    """An MLDv2 report (RFC 3810 §5.2)."""

    __slots__ = ("records",)

    def __init__(self, records: list[MldRecord]) -> None:
        self.records = records

    @classmethod
    def parse(cls, msg: Icmp6Message) -> MldReport:
        body = msg.body
        count = msg.rest & 0xFFFF
        records: list[MldRecord] = []
        i = 0
        for _ in range(count):
            if i + 20 > len(body):
                raise Malformed("bad_length")
            kind, aux, nsrc, group = _MLD_RECORD.unpack_from(body, i)
            end = i + 20 + 16 * nsrc + 4 * aux
            if end > len(body):
                raise Malformed("bad_length")
            sources = tuple(bytes(body[i + 20 + 16 * k : i + 36 + 16 * k]) for k in range(nsrc))
            records.append(MldRecord(kind, group, sources))
            i = end
        return cls(records)


def mld_report(records: Iterable[MldRecord]) -> tuple[int, bytes]:
    """(rest, body) of an MLDv2 report holding ``records`` (no auxiliary data)."""
    recs = list(records)
    body = b"".join(_MLD_RECORD.pack(r.type, 0, len(r.sources), r.group) + b"".join(r.sources) for r in recs)
    return len(recs), body
