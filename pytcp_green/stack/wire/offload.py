"""In software, what an offloading device does to TCP: segmentation (TSO) and checksum completion.

A TSO device takes one *super-segment* (one TCP header, up to 64 KB of payload, its checksum field
holding only the pseudo-header sum, as Linux's CHECKSUM_PARTIAL) and puts MSS-sized segments on
the wire.  :func:`segment_tcp` makes the same segments, for whoever must see the frames as the
wire will carry them: the impairment, so that losing or reordering a frame means one segment, and
the capture, so that a pcap holds what the peer receives; :func:`wire_payload` finds the segment
size of a super-segment the kernel handed us (GRO), which comes without one.  It follows RFC 9293 §3.1 and the rules
of the Linux GSO code (net/ipv4/tcp_offload.c): every segment carries a copy of the headers with
its own sequence number, IPv4 identification (incremented per segment), lengths and checksums;
FIN and PSH stay on the last segment only, CWR on the first (RFC 3168 §6.1.2).

:func:`complete_tcp_checksum` finishes a segment whose checksum field holds the pseudo-header sum
only (a partial checksum from the kernel, or a super-segment's), so that a capture verifies.
"""

from __future__ import annotations

import struct

from pytcp_green.stack.wire.checksum import Buffer, checksum, pseudo_sum

_PROTO_TCP = 6
_FIN, _PSH, _CWR = 0x01, 0x08, 0x80
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_LEN_ID = struct.Struct(">HH")  # IPv4 total length and identification, side by side


def _l4(frame: Buffer, l3: int) -> tuple[int, int, bytes, bytes] | None:
    """(TCP offset, IP packet end, src, dst) of a TCP packet at ``l3``, or None if it is not one we
    can segment (IPv6 with extension headers never leaves this stack as a super-segment)."""
    version = frame[l3] >> 4
    if version == 4:
        if frame[l3 + 9] != _PROTO_TCP:
            return None
        end = l3 + int.from_bytes(frame[l3 + 2:l3 + 4], "big")
        return l3 + (frame[l3] & 0x0F) * 4, end, bytes(frame[l3 + 12:l3 + 16]), bytes(frame[l3 + 16:l3 + 20])
    if version == 6:
        if frame[l3 + 6] != _PROTO_TCP:
            return None
        end = l3 + 40 + int.from_bytes(frame[l3 + 4:l3 + 6], "big")
        return l3 + 40, end, bytes(frame[l3 + 8:l3 + 24]), bytes(frame[l3 + 24:l3 + 40])
    return None


def complete_tcp_checksum(frame: Buffer, l3: int) -> bytearray:
    """A copy of ``frame`` (IP header at ``l3``) whose TCP checksum is computed afresh."""
    out = bytearray(frame)
    where = _l4(out, l3)
    if where is None:
        return out
    l4, end, src, dst = where
    out[l4 + 16:l4 + 18] = b"\x00\x00"
    value = checksum(memoryview(out)[l4:end], pseudo_sum(src, dst, _PROTO_TCP, end - l4))
    out[l4 + 16:l4 + 18] = value.to_bytes(2, "big")
    return out


def wire_payload(frame: bytes | bytearray, l3: int, mtu: int) -> int:
    """The payload per segment of a TCP packet at ``l3`` cut to fill ``mtu`` with its own headers
    (how the kernel's super-segments were cut when their MSS came from this link); 0 if not TCP."""
    where = _l4(frame, l3)
    if where is None:
        return 0
    l4 = where[0]
    return mtu - (l4 - l3) - (frame[l4 + 12] >> 4) * 4


def segment_tcp(frame: bytes | bytearray, l3: int, gso_size: int) -> list[bytearray]:
    """The wire segments of the super-segment in ``frame`` (link header before ``l3`` copied into
    each), ``gso_size`` payload bytes each but the last; ``[copy]`` for a packet that is not TCP."""
    where = _l4(frame, l3)
    if where is None or gso_size <= 0:
        return [bytearray(frame)]
    l4, end, src, dst = where
    hdr_end = l4 + (frame[l4 + 12] >> 4) * 4
    view = memoryview(frame)
    seq = int.from_bytes(frame[l4 + 4:l4 + 8], "big")
    flags = frame[l4 + 13]
    v4 = frame[l3] >> 4 == 4
    ident = int.from_bytes(frame[l3 + 4:l3 + 6], "big") if v4 else 0
    # One header template with both checksum fields zeroed; each segment patches its own fields.
    template = bytearray(view[:hdr_end])
    template[l4 + 16:l4 + 18] = b"\x00\x00"
    if v4:
        template[l3 + 10:l3 + 12] = b"\x00\x00"
    pseudo = pseudo_sum(src, dst, _PROTO_TCP, 0)  # each segment adds its own TCP length
    middle_flags = flags & ~(_FIN | _PSH | _CWR)
    out: list[bytearray] = []
    starts = range(hdr_end, end, gso_size)
    last = len(starts) - 1
    for i, start in enumerate(starts):
        stop = min(start + gso_size, end)
        n = hdr_end + stop - start
        seg = bytearray(n)
        seg[:hdr_end] = template
        seg[hdr_end:] = view[start:stop]
        if v4:
            _LEN_ID.pack_into(seg, l3 + 2, n - l3, (ident + i) & 0xFFFF)
            _U16.pack_into(seg, l3 + 10, checksum(seg[l3:l4]))
        else:
            _U16.pack_into(seg, l3 + 4, n - l3 - 40)
        _U32.pack_into(seg, l4 + 4, (seq + start - hdr_end) & 0xFFFFFFFF)
        if i == 0:
            seg[l4 + 13] = flags if i == last else flags & ~(_FIN | _PSH)
        else:
            seg[l4 + 13] = middle_flags | (flags & (_FIN | _PSH)) if i == last else middle_flags
        _U16.pack_into(seg, l4 + 16, checksum(memoryview(seg)[l4:], pseudo + n - l4))
        out.append(seg)
    return out
