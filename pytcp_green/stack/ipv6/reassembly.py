"""IPv6 reassembly (RFC 8200 §4.5) hardened per RFC 5722 (overlaps), RFC 6946 (atomic fragments).

A packet is identified by (source, destination, identification) (RFC 8200 §4.5).  The
per-fragment headers (fixed header plus the extension headers before the fragment header)
are taken from the fragment with offset 0, with the octet that named the fragment header
replaced by the fragment header's next header; the payload length is recomputed.

Rules, each with its own counter under ``ip6.reasm.``:

* overlap (RFC 5722 §3, with errata 3089): a fragment overlapping held data discards the
  whole packet *and* every fragment of it still to come, silently; the key is remembered as
  dead until the reassembly timeout, so later fragments cannot rebuild a different packet.
  An exact duplicate (same offset, same bytes) is only counted, as the erratum allows;
* inconsistent: a second last fragment with a different end, or data beyond a known end;
* too big: more than 65535 octets of payload in all (RFC 8200 §4.5 also checks per fragment);
* too many fragments: at most ``net.ipv6.ip6frag_max_frags`` per packet;
* memory: fragments are charged their length plus :data:`FRAGMENT_OVERHEAD`; above
  ``net.ipv6.ip6frag_high_thresh`` the oldest packets go until ``ip6frag_low_thresh``;
* timeout: ``net.ipv6.ip6frag_time`` seconds (RFC 8200 §4.5: 60) after the first fragment
  arrived; if the offset-0 fragment was received a Time Exceeded code 1 is sent quoting it.

Atomic fragments never get here: the IP layer processes them on their own (RFC 6946 §4).
The bookkeeping, memory caps and timeout are :mod:`pytcp_green.stack.reassembly`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.reassembly import Reassembly
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.icmp6 import CODE_REASSEMBLY_TIME, TYPE_TIME_EXCEEDED
from pytcp_green.stack.wire.ip6 import IP6_HEADER_LEN, FragmentHeader, Ip6Packet

if TYPE_CHECKING:
    from pytcp_green.stack.reassembly import Fragments
    from pytcp_green.stack.services import Services

MAX_PAYLOAD = 65535

Key = tuple[bytes, bytes, int]


class Icmp6Errors(Protocol):
    """The ICMPv6 error generator (:class:`~pytcp_green.stack.ipv6.icmp.Icmp6Layer`), RFC 4443 §2.4 rules inside."""

    def send_error(self, pkt: Ip6Packet, kind: int, code: int, rest: int, now: float, *,
                   allow_multicast: bool = False) -> None: ...


class Reassembler6(Reassembly[Key]):
    icmp: Icmp6Errors  # sends the Time Exceeded; wired by Ip6Layer.connect

    def __init__(self, svc: Services) -> None:
        super().__init__(svc, "ip6.reasm.", "net.ipv6.ip6frag_")

    def add(self, pkt: Ip6Packet, fh: FragmentHeader, frag_off: int, nh_off: int, data: memoryview,
            now: float) -> bytearray | None:
        """Take one fragment (its header at ``frag_off``); the whole packet's bytes when complete."""
        self.svc.stats["ip6.reasm.fragments"] += 1
        start = fh.offset
        q = self.admit((pkt.src, pkt.dst, fh.ident), start, data, fh.more, now)
        if q is None:
            return None
        if start == 0:
            # The per-fragment headers, with the octet naming the fragment header given its next header.
            unfrag = bytearray(pkt.packet[:frag_off])
            unfrag[nh_off] = fh.next_header
            q.head = bytes(unfrag)
            q.first = bytes(pkt.packet)  # for a Time Exceeded quote
            self.charge(q, frag_off + len(pkt.packet))
        if self.take_if_whole(q):
            return self._complete(q)
        return None

    def _complete(self, q: Fragments[Key]) -> bytearray | None:
        assert q.head is not None and q.end is not None
        head = len(q.head)
        payload_len = head - IP6_HEADER_LEN + q.end
        if payload_len > MAX_PAYLOAD:
            self.svc.stats["ip6.reasm.drop.too_big"] += 1
            return None
        buf = bytearray(head + q.end)
        buf[:head] = q.head
        buf[4:6] = payload_len.to_bytes(2, "big")
        q.payload_into(buf, head)
        self.svc.stats["ip6.reasm.ok"] += 1
        return buf

    def reject(self, key: Key) -> None:
        """Discard what is held but remember the key until its timeout (RFC 5722 §4)."""
        q = self.queues[key]
        self.memory -= q.charged
        q.charged = 0
        q.pieces.clear()
        q.offsets.clear()
        q.first = None
        q.dead = True

    def time_exceeded(self, first: bytes, now: float) -> None:
        """RFC 8200 §4.5: Time Exceeded code 1, only when the first fragment arrived."""
        try:
            pkt = Ip6Packet.parse(memoryview(first))
        except Malformed:
            return
        self.icmp.send_error(pkt, TYPE_TIME_EXCEEDED, CODE_REASSEMBLY_TIME, 0, now)
