"""DHCPv4 messages (RFC 2131 §2 "Protocol Summary", options RFC 2132, RFC 3396 long options).

Layout (236 fixed bytes, then the magic cookie 99.130.83.99 and the options)::

    op (1) | htype (1) | hlen (1) | hops (1) | xid (4) | secs (2) | flags (2) |
    ciaddr (4) | yiaddr (4) | siaddr (4) | giaddr (4) | chaddr (16) | sname (64) | file (128) |
    magic cookie (4) | options ...

Options are type-length-value, except Pad (0) and End (255) which are one byte (RFC 2132 §3).
An option may appear several times: the values are concatenated (RFC 3396 §7).  When option
52 "overload" says so, the ``file`` and ``sname`` fields hold more options (RFC 2132 §9.3),
read in the order RFC 2131 §4.1 gives: options, then file, then sname.

Parsing validates once and raises :class:`Malformed` (``too_short``, ``bad_cookie``,
``bad_option``, ``no_message_type``); building writes into a ``bytearray`` padded to the 300
bytes a BOOTP relay may expect (RFC 1542 §3.1).
"""

from __future__ import annotations

import struct

from pytcp_green.stack.wire import Malformed

BOOTREQUEST = 1
BOOTREPLY = 2
HTYPE_ETHERNET = 1
FLAG_BROADCAST = 0x8000  # RFC 2131 §2 figure 2: the B flag
MAGIC_COOKIE = b"\x63\x82\x53\x63"
FIXED_LEN = 236
MIN_LEN = 300
SERVER_PORT = 67
CLIENT_PORT = 68

# Message types, option 53 (RFC 2132 §9.6).
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
TYPE_NAMES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}

# Option codes (RFC 2132).
OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_DOMAIN_NAME = 15
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAM_REQUEST = 55
OPT_MESSAGE = 56
OPT_MAX_SIZE = 57
OPT_T1 = 58
OPT_T2 = 59
OPT_CLIENT_ID = 61
OPT_END = 255

_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")


def _read_options(area: memoryview, into: dict[int, bytes]) -> None:
    i, n = 0, len(area)
    while i < n:
        code = area[i]
        if code == OPT_END:
            return
        if code == OPT_PAD:
            i += 1
            continue
        if i + 1 >= n or i + 2 + area[i + 1] > n:
            raise Malformed("bad_option")
        length = area[i + 1]
        into[code] = into.get(code, b"") + bytes(area[i + 2 : i + 2 + length])
        i += 2 + length
    # RFC 2131 requires an End option, but a missing one harms nothing once lengths are checked.


class Dhcp4Message:
    """A parsed DHCP message; addresses are 4-byte ``bytes``, ``options`` maps code -> value."""

    __slots__ = ("chaddr", "ciaddr", "flags", "giaddr", "hlen", "htype", "op", "options", "secs", "siaddr", "xid",
                 "yiaddr")

    op: int
    htype: int
    hlen: int
    xid: int
    secs: int
    flags: int
    ciaddr: bytes
    yiaddr: bytes
    siaddr: bytes
    giaddr: bytes
    chaddr: bytes
    options: dict[int, bytes]

    @classmethod
    def parse(cls, buf: memoryview) -> Dhcp4Message:
        if len(buf) < FIXED_LEN + 4:
            raise Malformed("too_short")
        (op, htype, hlen, _hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, _sname,
         _file) = _FIXED.unpack_from(buf)
        if bytes(buf[FIXED_LEN : FIXED_LEN + 4]) != MAGIC_COOKIE:
            raise Malformed("bad_cookie")
        if hlen > 16:
            raise Malformed("bad_hlen")
        options: dict[int, bytes] = {}
        _read_options(buf[FIXED_LEN + 4 :], options)
        overload = options.pop(OPT_OVERLOAD, b"")
        if overload:
            if overload[0] & 1:
                _read_options(buf[108:236], options)
            if overload[0] & 2:
                _read_options(buf[44:108], options)
        kind = options.get(OPT_MESSAGE_TYPE, b"")
        if len(kind) != 1 or not 1 <= kind[0] <= 8:
            raise Malformed("no_message_type")
        self = cls.__new__(cls)
        self.op, self.htype, self.hlen, self.xid, self.secs, self.flags = op, htype, hlen, xid, secs, flags
        self.ciaddr, self.yiaddr, self.siaddr, self.giaddr = ciaddr, yiaddr, siaddr, giaddr
        self.chaddr = chaddr[:hlen]
        self.options = options
        return self

    @property
    def type(self) -> int:
        return self.options[OPT_MESSAGE_TYPE][0]

    def addresses(self, code: int) -> list[bytes]:
        """A list-of-addresses option (router, DNS...); malformed lengths yield the whole addresses only."""
        value = self.options.get(code, b"")
        return [value[i : i + 4] for i in range(0, len(value) - 3, 4)]

    def address(self, code: int) -> bytes | None:
        value = self.options.get(code, b"")
        return value[:4] if len(value) >= 4 else None

    def seconds(self, code: int) -> int | None:
        value = self.options.get(code, b"")
        return int.from_bytes(value[:4], "big") if len(value) >= 4 else None

    def __repr__(self) -> str:
        return (f"Dhcp4Message({TYPE_NAMES.get(self.type, self.type)}, xid=0x{self.xid:08x}, "
                f"yiaddr={'.'.join(map(str, self.yiaddr))}, options={sorted(self.options)})")


def encode_option(code: int, value: bytes) -> bytes:
    """One option; a value over 255 bytes is split into several instances (RFC 3396 §5)."""
    if not value:
        return bytes((code, 0))
    return b"".join(bytes((code, len(value[i : i + 255]))) + value[i : i + 255] for i in range(0, len(value), 255))


def build_dhcp4(*, op: int, xid: int, chaddr: bytes, msg_type: int, options: list[tuple[int, bytes]],
                secs: int = 0, flags: int = 0, ciaddr: bytes = bytes(4), yiaddr: bytes = bytes(4),
                siaddr: bytes = bytes(4), giaddr: bytes = bytes(4)) -> bytearray:
    """A whole message: fixed part, cookie, message type first (RFC 2131 §4.1 leaves order free), End, padding."""
    body = encode_option(OPT_MESSAGE_TYPE, bytes((msg_type,))) + b"".join(encode_option(c, v) for c, v in options)
    size = max(MIN_LEN, FIXED_LEN + 4 + len(body) + 1)
    buf = bytearray(size)
    _FIXED.pack_into(buf, 0, op, HTYPE_ETHERNET, len(chaddr), 0, xid, secs & 0xFFFF, flags, ciaddr, yiaddr, siaddr,
                     giaddr, chaddr, b"", b"")
    buf[FIXED_LEN : FIXED_LEN + 4] = MAGIC_COOKIE
    end = FIXED_LEN + 4 + len(body)
    buf[FIXED_LEN + 4 : end] = body
    buf[end] = OPT_END
    return buf


def client_id(mac: bytes, iaid: int = 0) -> bytes:
    """RFC 4361 §6.1 client identifier: type 255, a 4-byte IAID, then a DUID-LL (RFC 8415 §11.4) of ``mac``."""
    return b"\xff" + iaid.to_bytes(4, "big") + b"\x00\x03\x00\x01" + mac
