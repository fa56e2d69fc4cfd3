"""TCP segments inside link frames, as the fault engine sees them: where the fields are, and new
frames made from old ones (a segment cut short or sliced, a RST in either direction).

A fault sits on the wire between the stack and its device, so it reads frames, not sockets:
Ethernet II (or bare IP on a TUN) carrying IPv4 (RFC 791) or IPv6 without extension headers
(RFC 8200) carrying TCP (RFC 9293 §3.1).  Anything else, fragments included, is not a TCP
segment to it and passes untouched.  Fields and checksums are written with the stack's own
codecs (:mod:`pytcp_green.stack.wire`); nothing here checks a checksum: a corrupted frame is
the receiver's business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pytcp_green.stack.wire.checksum import checksum
from pytcp_green.stack.wire.ethernet import ETHERTYPE_IP4, ETHERTYPE_IP6, write_ethernet
from pytcp_green.stack.wire.ip4 import IP4_HEADER_LEN, write_ip4
from pytcp_green.stack.wire.ip6 import IP6_HEADER_LEN, write_ip6
from pytcp_green.stack.wire.tcp import ACK, PROTO_TCP, RST, fill_checksum, write_tcp

_TCP_FIXED = struct.Struct("!HHII")  # ports, seq, ack
TCP_MIN_HEADER = 20


@dataclass(slots=True)
class Segment:
    """One TCP segment in a frame: offsets into ``frame`` and the header fields faults use."""

    frame: bytes
    link_len: int  # 14 for Ethernet, 0 for a TUN's bare IP
    version: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    tcp_at: int  # offset of the TCP header
    payload_at: int  # offset of the payload
    end: int  # end of the IP packet (Ethernet padding excluded)

    @property
    def payload(self) -> bytes:
        return self.frame[self.payload_at:self.end]

    @property
    def payload_len(self) -> int:
        return self.end - self.payload_at


def parse(frame: bytes, link_len: int) -> Segment | None:
    """The TCP segment in ``frame``, or None when the frame carries none (ARP, UDP, a fragment...)."""
    n = len(frame)
    if link_len:
        if n < link_len + IP4_HEADER_LEN:
            return None
        ethertype = int.from_bytes(frame[12:14], "big")
        if ethertype not in (ETHERTYPE_IP4, ETHERTYPE_IP6):
            return None
    ip = link_len
    if n < ip + IP4_HEADER_LEN:
        return None
    version = frame[ip] >> 4
    if version == 4:
        header_len = (frame[ip] & 0x0F) * 4
        total = int.from_bytes(frame[ip + 2:ip + 4], "big")
        frag = int.from_bytes(frame[ip + 6:ip + 8], "big") & 0x3FFF  # MF and the offset
        if frame[ip + 9] != PROTO_TCP or frag or header_len < IP4_HEADER_LEN:
            return None
        src, dst, tcp_at, end = frame[ip + 12:ip + 16], frame[ip + 16:ip + 20], ip + header_len, ip + total
    elif version == 6:
        if n < ip + IP6_HEADER_LEN or frame[ip + 6] != PROTO_TCP:
            return None
        src, dst = frame[ip + 8:ip + 24], frame[ip + 24:ip + 40]
        tcp_at, end = ip + IP6_HEADER_LEN, ip + IP6_HEADER_LEN + int.from_bytes(frame[ip + 4:ip + 6], "big")
    else:
        return None
    if end > n or end < tcp_at + TCP_MIN_HEADER:
        return None
    payload_at = tcp_at + (frame[tcp_at + 12] >> 4) * 4
    if payload_at > end or payload_at < tcp_at + TCP_MIN_HEADER:
        return None
    sport, dport, seq, ack = _TCP_FIXED.unpack_from(frame, tcp_at)
    return Segment(frame, link_len, version, bytes(src), bytes(dst), sport, dport, seq, ack, frame[tcp_at + 13],
                   tcp_at, payload_at, end)


def rebuild(seg: Segment, seq: int, payload: bytes, flags: int | None = None) -> bytes:
    """``seg``'s frame with the same headers and options but ``payload`` at ``seq`` (and ``flags``)."""
    head = seg.frame[:seg.payload_at]
    buf = bytearray(head) + payload
    ip, size = seg.link_len, len(head) + len(payload)
    if seg.version == 4:
        struct.pack_into("!H", buf, ip + 2, size - ip)
        struct.pack_into("!H", buf, ip + 10, 0)
        _ip4_header_checksum(buf, ip, seg.tcp_at - ip)
    else:
        struct.pack_into("!H", buf, ip + 4, size - seg.tcp_at)
    struct.pack_into("!I", buf, seg.tcp_at + 4, seq & 0xFFFFFFFF)
    if flags is not None:
        buf[seg.tcp_at + 13] = flags
    buf[seg.tcp_at + 16:seg.tcp_at + 18] = b"\0\0"
    fill_checksum(buf, seg.tcp_at, size - seg.tcp_at, seg.src, seg.dst)
    return bytes(buf)


def _ip4_header_checksum(buf: bytearray, offset: int, header_len: int) -> None:
    """Store the RFC 791 header checksum of the IPv4 header at ``offset`` (its field zeroed first)."""
    with memoryview(buf) as mv:
        struct.pack_into("!H", buf, offset + 10, checksum(mv[offset:offset + header_len]))


def reset(seg: Segment, *, toward_sender: bool, seq: int, ack: int | None = None) -> bytes:
    """A RST (RFC 9293 §3.5.2) on ``seg``'s connection with sequence number ``seq`` (and ACK ``ack``
    when given): in the segment's own direction, or back toward its sender, addresses swapped."""
    src, dst, sport, dport = seg.src, seg.dst, seg.sport, seg.dport
    if toward_sender:
        src, dst, sport, dport = dst, src, dport, sport
    link = seg.link_len
    ip_len = IP4_HEADER_LEN if seg.version == 4 else IP6_HEADER_LEN
    buf = bytearray(link + ip_len + TCP_MIN_HEADER)
    if link:
        mac_dst, mac_src = seg.frame[0:6], seg.frame[6:12]
        if toward_sender:
            mac_dst, mac_src = mac_src, mac_dst
        write_ethernet(buf, 0, bytes(mac_dst), bytes(mac_src), ETHERTYPE_IP4 if seg.version == 4 else ETHERTYPE_IP6)
    if seg.version == 4:
        write_ip4(buf, link, src=src, dst=dst, proto=PROTO_TCP, total_len=ip_len + TCP_MIN_HEADER, ident=0, df=True)
    else:
        write_ip6(buf, link, src=src, dst=dst, next_header=PROTO_TCP, payload_len=TCP_MIN_HEADER)
    flags, ack_value = (RST, 0) if ack is None else (RST | ACK, ack)
    write_tcp(buf, link + ip_len, sport, dport, seq, ack_value, flags, 0, b"", None)
    fill_checksum(buf, link + ip_len, TCP_MIN_HEADER, src, dst)
    return bytes(buf)

