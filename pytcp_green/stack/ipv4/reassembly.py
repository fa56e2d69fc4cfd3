"""IPv4 reassembly (RFC 791 §3.2 "Reassembly", RFC 815, RFC 1122 §3.3.2), with bounded memory.

A datagram is identified by (source, destination, protocol, identification) (RFC 791 §3.2).
Fragments may arrive in any order; the bookkeeping, memory caps and timeout are
:mod:`pytcp_green.stack.reassembly`'s, with the ``net.ipv4.ipfrag_*`` knobs and the
``ip4.reasm.drop.<reason>`` counters.  IPv4's policy:

* overlap: a fragment overlapping data already held drops the *whole* datagram, as Linux does
  since 2018 and RFC 5722 requires for IPv6 — overlapping fragments are an evasion technique
  (RFC 1858, RFC 3128), never produced by a correct sender.  An exact duplicate (same offset,
  same bytes) is only counted (``ip4.reasm.duplicate``): retransmitting links produce those;
* inconsistent: a second last fragment with a different end, data beyond a known end, or a
  non-last fragment whose length is not a multiple of 8 (RFC 791: "the fragment must ...
  begin on an 8 octet boundary") drops the whole datagram;
* too big: more than 65535 bytes in all (RFC 791 total length field);
* too many fragments: at most ``net.ipv4.ipfrag_max_frags`` per datagram;
* memory: the first fragment's header is charged besides the payloads; above
  ``net.ipv4.ipfrag_high_thresh`` the oldest datagrams are evicted down to ``ipfrag_low_thresh``;
* timeout: a datagram not complete ``net.ipv4.ipfrag_time`` seconds after its first fragment
  arrived is dropped, and if its first fragment (offset 0) was received an ICMP time exceeded,
  code 1 "fragment reassembly time exceeded", is sent (RFC 792, RFC 1122 §3.3.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.reassembly import Reassembly
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.icmp4 import CODE_REASSEMBLY_EXCEEDED, TYPE_TIME_EXCEEDED
from pytcp_green.stack.wire.ip4 import Ip4Packet, write_ip4

if TYPE_CHECKING:
    from pytcp_green.stack.reassembly import Fragments
    from pytcp_green.stack.services import Services

MAX_DATAGRAM = 65535

Key = tuple[bytes, bytes, int, int]


class Icmp4Errors(Protocol):
    """The ICMPv4 error generator (:class:`~pytcp_green.stack.ipv4.icmp.Icmp4Layer`), RFC 1122 §3.2.2 rules inside."""

    def send_error(self, pkt: Ip4Packet, kind: int, code: int, rest: int, now: float) -> None: ...


class Reassembler(Reassembly[Key]):
    """Reassembly queues of one host; :meth:`add` returns the whole datagram once the last piece is in."""

    icmp: Icmp4Errors  # sends the Time Exceeded; wired by Ip4Layer.connect

    def __init__(self, svc: Services) -> None:
        super().__init__(svc, "ip4.reasm.", "net.ipv4.ipfrag_")

    def add(self, pkt: Ip4Packet, now: float) -> Ip4Packet | None:
        """Take one fragment; the reassembled datagram when it completes one, else None."""
        stats = self.svc.stats
        stats["ip4.reasm.fragments"] += 1
        start = pkt.frag_offset
        data = pkt.payload
        key: Key = (pkt.src, pkt.dst, pkt.proto, pkt.ident)
        if pkt.mf and (len(data) & 7 or not data):
            stats["ip4.reasm.drop.bad_length"] += 1
            self.reject(key)
            return None
        if pkt.header_len + start + len(data) > MAX_DATAGRAM:
            stats["ip4.reasm.drop.too_big"] += 1
            self.reject(key)
            return None
        dgram = self.admit(key, start, data, pkt.mf, now)
        if dgram is None:
            return None
        if start == 0:
            dgram.head = bytes(pkt.header)
            dgram.first = dgram.head + bytes(data)
            self.charge(dgram, len(pkt.header))
        if self.take_if_whole(dgram):
            return self._complete(dgram)
        return None

    def _complete(self, dgram: Fragments[Key]) -> Ip4Packet | None:
        first = dgram.first
        assert first is not None and dgram.end is not None  # held == end with no overlap: offset 0 is held
        head = Ip4Packet.parse(memoryview(first))
        header_len = head.header_len
        total = header_len + dgram.end
        buf = bytearray(total)
        dgram.payload_into(buf, header_len)
        # The first fragment's header, options included, becomes the datagram's (RFC 791 §3.2:
        # options not copied into later fragments live only in the first one).
        write_ip4(buf, 0, src=head.src, dst=head.dst, proto=head.proto, total_len=total, ident=head.ident,
                  ttl=head.ttl, tos=head.tos, df=head.df, options=bytes(head.options))
        try:
            whole = Ip4Packet.parse(memoryview(buf))
        except Malformed as exc:  # cannot happen with a header we just wrote; never raise on receive
            self.svc.stats["ip4.reasm.drop." + exc.reason] += 1
            return None
        self.svc.stats["ip4.reasm.ok"] += 1
        return whole

    def time_exceeded(self, first: bytes, now: float) -> None:
        """ICMP time exceeded, code 1 "fragment reassembly time exceeded" (RFC 792, RFC 1122 §3.3.2)."""
        try:
            pkt = Ip4Packet.parse(memoryview(first))
        except Malformed:
            return
        self.icmp.send_error(pkt, TYPE_TIME_EXCEEDED, CODE_REASSEMBLY_EXCEEDED, 0, now)
