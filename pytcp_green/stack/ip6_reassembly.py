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
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from typing import TYPE_CHECKING

from pytcp_green.stack.timers import Timer
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.icmp6 import CODE_REASSEMBLY_TIME, TYPE_TIME_EXCEEDED
from pytcp_green.stack.wire.ip6 import IP6_HEADER_LEN, FragmentHeader, Ip6Packet

if TYPE_CHECKING:
    from pytcp_green.stack.stack import Stack

MAX_PAYLOAD = 65535
FRAGMENT_OVERHEAD = 128

Key = tuple[bytes, bytes, int]


class _Packet:
    __slots__ = ("arrived", "charged", "dead", "end", "first", "held", "key", "nh_off", "offsets", "pieces",
                 "unfrag")

    def __init__(self, key: Key, arrived: float) -> None:
        self.key = key
        self.arrived = arrived
        self.offsets: list[int] = []
        self.pieces: dict[int, bytes] = {}
        self.held = 0
        self.charged = 0
        self.end: int | None = None
        self.unfrag: bytes | None = None  # per-fragment headers of the offset-0 fragment, next header fixed
        self.first: bytes | None = None  # the whole offset-0 fragment, for a Time Exceeded quote
        self.nh_off = 0
        self.dead = False  # RFC 5722: an overlap was seen; swallow the rest until the timeout

    def overlaps(self, start: int, stop: int) -> bool:
        i = bisect.bisect_right(self.offsets, start)
        if i > 0:
            prev = self.offsets[i - 1]
            if prev + len(self.pieces[prev]) > start:
                return True
        return i < len(self.offsets) and self.offsets[i] < stop


class Reassembler6:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.queues: OrderedDict[Key, _Packet] = OrderedDict()  # oldest first; same timeout for all
        self.memory = 0
        self._timer: Timer | None = None

    def __len__(self) -> int:
        return sum(1 for q in self.queues.values() if not q.dead)

    def add(self, pkt: Ip6Packet, fh: FragmentHeader, frag_off: int, nh_off: int, data: memoryview,
            now: float) -> bytearray | None:
        """Take one fragment (its header at ``frag_off``); the whole packet's bytes when complete."""
        stats = self.stack.stats
        sysctl = self.stack.sysctl
        stats["ip6.reasm.fragments"] += 1
        key: Key = (pkt.src, pkt.dst, fh.ident)
        start = fh.offset
        stop = start + len(data)
        q = self.queues.get(key)
        if q is None:
            q = _Packet(key, now)
            self.queues[key] = q
            if self._timer is None:
                self._arm(now + sysctl.float("net.ipv6.ip6frag_time"))
        if q.dead:
            stats["ip6.reasm.drop.after_overlap"] += 1
            return None
        end = q.end
        if (not fh.more and end is not None and stop != end) or (end is not None and stop > end) or (
            not fh.more and q.offsets and stop < q.offsets[-1] + len(q.pieces[q.offsets[-1]])
        ):
            stats["ip6.reasm.drop.inconsistent"] += 1
            self._kill(q)
            return None
        held = q.pieces.get(start)
        if held is not None and held == data:
            stats["ip6.reasm.duplicate"] += 1
            return None
        if q.overlaps(start, stop):
            stats["ip6.reasm.drop.overlap"] += 1
            self._kill(q)
            return None
        if len(q.offsets) >= sysctl.int("net.ipv6.ip6frag_max_frags"):
            stats["ip6.reasm.drop.too_many_frags"] += 1
            self._kill(q)
            return None
        bisect.insort(q.offsets, start)
        q.pieces[start] = bytes(data)
        q.held += len(data)
        cost = len(data) + FRAGMENT_OVERHEAD
        if start == 0:
            unfrag = bytearray(pkt.packet[:frag_off])
            unfrag[nh_off] = fh.next_header
            q.unfrag = bytes(unfrag)
            q.first = bytes(pkt.packet)
            q.nh_off = nh_off
            cost += frag_off + len(pkt.packet)
        q.charged += cost
        self.memory += cost
        if not fh.more:
            q.end = stop
        if q.end is not None and q.held == q.end and q.unfrag is not None:
            return self._complete(q)
        if self.memory > sysctl.int("net.ipv6.ip6frag_high_thresh"):
            self._evict(sysctl.int("net.ipv6.ip6frag_low_thresh"))
        return None

    def _complete(self, q: _Packet) -> bytearray | None:
        self._discard(q.key)
        assert q.unfrag is not None and q.end is not None
        head = len(q.unfrag)
        payload_len = head - IP6_HEADER_LEN + q.end
        if payload_len > MAX_PAYLOAD:
            self.stack.stats["ip6.reasm.drop.too_big"] += 1
            return None
        buf = bytearray(head + q.end)
        buf[:head] = q.unfrag
        buf[4:6] = payload_len.to_bytes(2, "big")
        for offset in q.offsets:
            piece = q.pieces[offset]
            buf[head + offset : head + offset + len(piece)] = piece
        self.stack.stats["ip6.reasm.ok"] += 1
        return buf

    def _kill(self, q: _Packet) -> None:
        """Discard what is held but remember the key until its timeout (RFC 5722 §4)."""
        self.memory -= q.charged
        q.charged = 0
        q.pieces.clear()
        q.offsets.clear()
        q.first = None
        q.dead = True

    def _discard(self, key: Key) -> None:
        q = self.queues.pop(key, None)
        if q is not None:
            self.memory -= q.charged

    def _evict(self, low: int) -> None:
        while self.queues and self.memory > low:
            self._discard(next(iter(self.queues)))
            self.stack.stats["ip6.reasm.drop.memory"] += 1

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.stack.timers.schedule(when, self._expire)

    def _expire(self, now: float) -> None:
        self._timer = None
        timeout = self.stack.sysctl.float("net.ipv6.ip6frag_time")
        while self.queues:
            key, q = next(iter(self.queues.items()))
            if q.arrived + timeout > now:
                self._arm(q.arrived + timeout)
                return
            self._discard(key)
            if q.dead:
                continue
            self.stack.stats["ip6.reasm.drop.timeout"] += 1
            if q.first is not None:
                # RFC 8200 §4.5: Time Exceeded code 1, only when the first fragment arrived.
                try:
                    first = Ip6Packet.parse(memoryview(q.first))
                except Malformed:
                    continue
                self.stack.icmp6.send_error(first, TYPE_TIME_EXCEEDED, CODE_REASSEMBLY_TIME, 0, now)
