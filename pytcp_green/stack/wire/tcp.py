"""TCP segment codec: header (RFC 9293 §3.1), options MSS (RFC 9293 §3.2, RFC 6691), window scale and
timestamps (RFC 7323 §2-3), SACK-permitted and SACK blocks (RFC 2018 §2-3), the TCP Fast Open cookie
(RFC 7413 §4.1.1: kind 34, an empty one being a cookie request), NOP/EOL.

Parsing reads the fixed header with one ``struct`` call; the overwhelmingly common option layout of an
established connection with timestamps (NOP NOP TS) is recognised by its first word and read with the
same call, so a bulk-data segment costs one unpack.  Other layouts go through the general option loop.
Unknown options are skipped (RFC 9293 MUST-5); an option whose length runs past the header or is shorter
than 2, or a known option with a wrong length, makes the segment Malformed("bad_option") (MUST-7 leaves
the handling to us; dropping is the safe choice).

Building writes into a caller-provided ``bytearray`` at an offset, again with one ``pack_into`` for the
header plus timestamps; the checksum is filled last over the pseudo-header (RFC 9293 §3.1).
"""

from __future__ import annotations

import struct

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.checksum import Buffer, checksum, ones_sum, pseudo_sum

PROTO_TCP = 6
TCP_HEADER_LEN = 20

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WSCALE = 3
OPT_SACK_PERM = 4
OPT_SACK = 5
OPT_TIMESTAMP = 8
OPT_FASTOPEN = 34

# NOP NOP kind=8 len=10: the 32-bit prefix of the aligned timestamp option (RFC 7323 Appendix A).
TS_PREFIX = 0x0101080A
TS_OPTION_LEN = 12
# NOP NOP kind=5: the aligned prefix of a SACK option; the length byte follows.
SACK_PREFIX = b"\x01\x01\x05"

_HDR = struct.Struct("!HHIIBBHHH")
_HDR_TS = struct.Struct("!HHIIBBHHHIII")
_TS = struct.Struct("!II")
_U16 = struct.Struct("!H")
_SACK_BLOCK = struct.Struct("!II")


def _flag_names(flags: int) -> str:
    return "".join(name for bit, name in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."),
                                          (URG, "U"), (ECE, "E"), (CWR, "C")) if flags & bit) or "-"


class TcpSegment:
    """A parsed segment: header fields, options, and ``payload`` as a view into the received buffer.

    Option fields are None (or False / empty) when the option is absent.  ``sack`` holds raw 32-bit
    (left, right) edges; interpreting them against the send sequence space is the connection's job.
    """

    __slots__ = ("ack", "dport", "fastopen", "flags", "mss", "payload", "sack", "sack_perm", "seq", "sport",
                 "ts_ecr", "ts_val", "urg", "window", "wscale")

    def __init__(self) -> None:
        self.sport = 0
        self.dport = 0
        self.seq = 0
        self.ack = 0
        self.flags = 0
        self.window = 0
        self.urg = 0
        self.mss: int | None = None
        self.wscale: int | None = None
        self.sack_perm = False
        self.sack: list[tuple[int, int]] | None = None
        self.ts_val: int | None = None
        self.ts_ecr = 0
        self.payload: memoryview = memoryview(b"")
        self.fastopen: bytes | None = None  # RFC 7413 cookie; b"" for a cookie request

    def __repr__(self) -> str:
        return (f"<TCP {self.sport}>{self.dport} [{_flag_names(self.flags)}] seq={self.seq} ack={self.ack} "
                f"win={self.window} len={len(self.payload)} mss={self.mss} ws={self.wscale} "
                f"sackok={self.sack_perm} sack={self.sack} ts={self.ts_val}/{self.ts_ecr}>")

    @property
    def seg_len(self) -> int:
        """Sequence space the segment occupies: payload plus one each for SYN and FIN."""
        flags = self.flags
        return len(self.payload) + (flags & SYN and 1) + (flags & FIN and 1)

    @classmethod
    def parse(cls, buf: memoryview) -> TcpSegment:
        """Parse ``buf`` (exactly the TCP segment); raises Malformed.  The checksum is checked separately."""
        size = len(buf)
        if size < TCP_HEADER_LEN:
            raise Malformed("short")
        seg = cls()
        if size >= 32 and buf[12] >> 4 == 8:
            (seg.sport, seg.dport, seg.seq, seg.ack, _, seg.flags, seg.window, _, seg.urg,
             prefix, ts_val, ts_ecr) = _HDR_TS.unpack_from(buf)
            if prefix == TS_PREFIX:
                seg.ts_val = ts_val
                seg.ts_ecr = ts_ecr
                seg.payload = buf[32:]
                return seg
        else:
            seg.sport, seg.dport, seg.seq, seg.ack, _, seg.flags, seg.window, _, seg.urg = _HDR.unpack_from(buf)
        hlen = (buf[12] >> 4) * 4
        if hlen < TCP_HEADER_LEN or hlen > size:
            raise Malformed("bad_data_offset")
        if hlen > TCP_HEADER_LEN:
            _parse_options(seg, buf, hlen)
        seg.payload = buf[hlen:]
        return seg


def _parse_options(seg: TcpSegment, buf: memoryview, end: int) -> None:
    i = TCP_HEADER_LEN
    while i < end:
        kind = buf[i]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            raise Malformed("bad_option")
        olen = buf[i + 1]
        if olen < 2 or i + olen > end:
            raise Malformed("bad_option")
        if kind == OPT_MSS:
            if olen != 4:
                raise Malformed("bad_option")
            seg.mss = _U16.unpack_from(buf, i + 2)[0]
        elif kind == OPT_WSCALE:
            if olen != 3:
                raise Malformed("bad_option")
            seg.wscale = buf[i + 2]
        elif kind == OPT_SACK_PERM:
            if olen != 2:
                raise Malformed("bad_option")
            seg.sack_perm = True
        elif kind == OPT_TIMESTAMP:
            if olen != 10:
                raise Malformed("bad_option")
            seg.ts_val, seg.ts_ecr = _TS.unpack_from(buf, i + 2)
        elif kind == OPT_SACK:
            if olen < 10 or (olen - 2) % 8:
                raise Malformed("bad_option")
            seg.sack = [_SACK_BLOCK.unpack_from(buf, j) for j in range(i + 2, i + olen, 8)]
        elif kind == OPT_FASTOPEN:
            if (olen != 2 and not 6 <= olen <= 18) or olen % 2:  # RFC 7413 §4.1.1: 4-16 bytes, even
                raise Malformed("bad_option")
            seg.fastopen = bytes(buf[i + 2:i + olen])
        i += olen


def verify_checksum(buf: Buffer, src: bytes, dst: bytes) -> bool:
    """True when the segment's checksum is right for the pseudo-header of ``src``/``dst``."""
    return ones_sum(buf, pseudo_sum(src, dst, PROTO_TCP, len(buf))) == 0xFFFF


def syn_options(mss: int, wscale: int | None, sack_perm: bool, ts: tuple[int, int] | None) -> bytes:
    """Options for a SYN or SYN-ACK, laid out as common stacks do so middleboxes see a familiar shape:
    MSS, then SACK-permitted folded into the timestamp's alignment padding, then window scale."""
    out = bytearray(b"\x02\x04" + mss.to_bytes(2, "big"))
    if ts is not None:
        out += (b"\x04\x02" if sack_perm else b"\x01\x01") + b"\x08\x0a" + _TS.pack(*ts)
    elif sack_perm:
        out += b"\x01\x01\x04\x02"
    if wscale is not None:
        out += b"\x01\x03\x03" + bytes((wscale,))
    return bytes(out)


def fastopen_option(cookie: bytes) -> bytes:
    """The Fast Open option (RFC 7413 §4.1.1) with ``cookie`` (b"": a cookie request), NOP-padded in
    front to a 32-bit boundary."""
    body = bytes((OPT_FASTOPEN, 2 + len(cookie))) + cookie
    return b"\x01" * (-len(body) % 4) + body


def sack_option(blocks: list[tuple[int, int]]) -> bytes:
    """NOP NOP SACK with the given 32-bit edges (RFC 2018 §3); at most 4 blocks fit, 3 beside timestamps."""
    out = bytearray(SACK_PREFIX)
    out.append(2 + 8 * len(blocks))
    for left, right in blocks:
        out += _SACK_BLOCK.pack(left & 0xFFFFFFFF, right & 0xFFFFFFFF)
    return bytes(out)


def write_tcp(buf: bytearray, offset: int, sport: int, dport: int, seq: int, ack: int, flags: int,
              window: int, options: bytes, ts: tuple[int, int] | None, urg: int = 0) -> int:
    """Write a header (+ aligned timestamps when ``ts`` is given, then ``options``) at ``offset``;
    ``urg`` is the urgent pointer field (meaningful with URG in ``flags``).

    Returns the header length.  The checksum field is left zero: call :func:`fill_checksum` once the
    payload is in place after the header.
    """
    if ts is not None:
        hlen = 32 + len(options)
        _HDR_TS.pack_into(buf, offset, sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (hlen >> 2) << 4,
                          flags, window, 0, urg, TS_PREFIX, ts[0] & 0xFFFFFFFF, ts[1] & 0xFFFFFFFF)
        if options:
            buf[offset + 32:offset + hlen] = options
    else:
        hlen = 20 + len(options)
        _HDR.pack_into(buf, offset, sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (hlen >> 2) << 4,
                       flags, window, 0, urg)
        if options:
            buf[offset + 20:offset + hlen] = options
    return hlen


def fill_checksum(buf: bytearray, offset: int, length: int, src: bytes, dst: bytes) -> None:
    """Compute and store the checksum of the segment at ``buf[offset:offset+length]``."""
    with memoryview(buf) as mv:
        value = checksum(mv[offset:offset + length], pseudo_sum(src, dst, PROTO_TCP, length))
    buf[offset + 16] = value >> 8
    buf[offset + 17] = value & 0xFF


def fill_partial_checksum(buf: bytearray, offset: int, length: int, src: bytes, dst: bytes) -> None:
    """Store only the pseudo-header sum (folded, not complemented) for a device that completes the
    checksum over the segment itself (a TSO super-segment; Linux's CHECKSUM_PARTIAL)."""
    value = ones_sum(b"", pseudo_sum(src, dst, PROTO_TCP, length))
    buf[offset + 16] = value >> 8
    buf[offset + 17] = value & 0xFF


def build_tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
              *, options: bytes = b"", ts: tuple[int, int] | None = None, payload: Buffer = b"",
              urg: int = 0) -> bytearray:
    """A complete segment with checksum, for control segments and tests (the data path builds in place)."""
    hlen = (32 if ts is not None else 20) + len(options)
    if hlen > 60 or len(options) % 4:
        raise ValueError("options must be padded to 4 bytes and fit in 40")
    total = hlen + len(payload)
    buf = bytearray(total)
    write_tcp(buf, 0, sport, dport, seq, ack, flags, window, options, ts, urg)
    buf[hlen:] = payload
    fill_checksum(buf, 0, total, src, dst)
    return buf
