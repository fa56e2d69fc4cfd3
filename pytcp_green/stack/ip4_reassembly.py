"""IPv4 reassembly (RFC 791 §3.2 "Reassembly", RFC 815, RFC 1122 §3.3.2), with bounded memory.

A datagram is identified by (source, destination, protocol, identification) (RFC 791 §3.2).
Fragments may arrive in any order.  Instead of RFC 815's hole list we keep the fragments sorted
by offset and count the bytes held: since overlaps are refused (below), the datagram is complete
exactly when the last fragment (MF clear) has fixed its length and the bytes held equal it.

Safety rules, each with its own drop counter (``ip4.reasm.drop.<reason>``):

* overlap: a fragment overlapping data already held drops the *whole* datagram, as Linux does
  since 2018 and RFC 5722 requires for IPv6 — overlapping fragments are an evasion technique
  (RFC 1858, RFC 3128), never produced by a correct sender.  An exact duplicate (same offset,
  same bytes) is only counted (``ip4.reasm.duplicate``): retransmitting links produce those;
* inconsistent: a second last fragment with a different end, data beyond a known end, or a
  non-last fragment whose length is not a multiple of 8 (RFC 791: "the fragment must ...
  begin on an 8 octet boundary") drops the whole datagram;
* too big: more than 65535 bytes in all (RFC 791 total length field);
* too many fragments: at most ``net.ipv4.ipfrag_max_frags`` per datagram, so tiny fragments
  cannot cost a datagram far more memory than its payload;
* memory: every fragment is charged its length plus :data:`FRAGMENT_OVERHEAD` (what Linux
  calls truesize).  When the total exceeds ``net.ipv4.ipfrag_high_thresh`` the oldest
  datagrams are evicted until it is below ``net.ipv4.ipfrag_low_thresh`` (Linux's knobs);
* timeout: a datagram not complete ``net.ipv4.ipfrag_time`` seconds after its first fragment
  arrived is dropped, and if its first fragment (offset 0) was received an ICMP time exceeded,
  code 1 "fragment reassembly time exceeded", is sent (RFC 792, RFC 1122 §3.3.2).

The timeout is the same for every datagram, so datagrams expire in arrival order: one ordered
dict and one stack timer for the oldest suffice, whatever the number of datagrams held.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from typing import TYPE_CHECKING

from pytcp_green.stack.timers import Timer
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.icmp4 import CODE_REASSEMBLY_EXCEEDED, TYPE_TIME_EXCEEDED
from pytcp_green.stack.wire.ip4 import Ip4Packet, write_ip4

if TYPE_CHECKING:
    from pytcp_green.stack.stack import Stack

MAX_DATAGRAM = 65535
# What a held fragment costs besides its payload: bookkeeping, header copy (Linux charges skb truesize).
FRAGMENT_OVERHEAD = 128

Key = tuple[bytes, bytes, int, int]


class _Datagram:
    """The fragments of one datagram being reassembled."""

    __slots__ = ("arrived", "charged", "end", "first", "held", "key", "offsets", "pieces")

    def __init__(self, key: Key, arrived: float) -> None:
        self.key = key
        self.arrived = arrived
        self.offsets: list[int] = []  # sorted fragment start offsets
        self.pieces: dict[int, bytes] = {}  # start offset -> payload bytes
        self.held = 0  # payload bytes held
        self.charged = 0  # bytes charged against the memory limits
        self.end: int | None = None  # payload length, known once the last fragment arrived
        self.first: bytes | None = None  # the whole first fragment (offset 0), header included

    def overlaps(self, start: int, stop: int) -> bool:
        """True when [start, stop) intersects a fragment already held."""
        i = bisect.bisect_right(self.offsets, start)
        if i > 0:
            prev = self.offsets[i - 1]
            if prev + len(self.pieces[prev]) > start:
                return True
        return i < len(self.offsets) and self.offsets[i] < stop


class Reassembler:
    """Reassembly queues of one host; :meth:`add` returns the whole datagram once the last piece is in."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.queues: OrderedDict[Key, _Datagram] = OrderedDict()  # oldest first
        self.memory = 0  # bytes charged by every queue together
        self._timer: Timer | None = None

    def __len__(self) -> int:
        return len(self.queues)

    def add(self, pkt: Ip4Packet, now: float) -> Ip4Packet | None:
        """Take one fragment; the reassembled datagram when it completes one, else None."""
        stats = self.stack.stats
        sysctl = self.stack.sysctl
        stats["ip4.reasm.fragments"] += 1
        start = pkt.frag_offset
        data = pkt.payload
        stop = start + len(data)
        key: Key = (pkt.src, pkt.dst, pkt.proto, pkt.ident)
        if pkt.mf and (len(data) & 7 or not data):
            stats["ip4.reasm.drop.bad_length"] += 1
            self._discard(key)
            return None
        if pkt.header_len + stop > MAX_DATAGRAM:
            stats["ip4.reasm.drop.too_big"] += 1
            self._discard(key)
            return None
        dgram = self.queues.get(key)
        if dgram is None:
            dgram = _Datagram(key, now)
            self.queues[key] = dgram
            if self._timer is None:
                self._arm(now + sysctl.float("net.ipv4.ipfrag_time"))
        end = dgram.end
        if (not pkt.mf and end is not None and stop != end) or (end is not None and stop > end) or (
            not pkt.mf and dgram.offsets and stop < dgram.offsets[-1] + len(dgram.pieces[dgram.offsets[-1]])
        ):
            stats["ip4.reasm.drop.inconsistent"] += 1
            self._discard(key)
            return None
        held = dgram.pieces.get(start)
        if held is not None and len(held) == len(data) and held == data:
            stats["ip4.reasm.duplicate"] += 1
            return None
        if dgram.overlaps(start, stop):
            stats["ip4.reasm.drop.overlap"] += 1
            self._discard(key)
            return None
        if len(dgram.offsets) >= sysctl.int("net.ipv4.ipfrag_max_frags"):
            stats["ip4.reasm.drop.too_many_frags"] += 1
            self._discard(key)
            return None
        bisect.insort(dgram.offsets, start)
        dgram.pieces[start] = bytes(data)
        dgram.held += len(data)
        cost = len(data) + FRAGMENT_OVERHEAD
        if start == 0:
            dgram.first = bytes(pkt.header) + bytes(data)
            cost += len(pkt.header)
        dgram.charged += cost
        self.memory += cost
        if not pkt.mf:
            dgram.end = stop
        if dgram.end is not None and dgram.held == dgram.end:
            return self._complete(dgram)
        if self.memory > sysctl.int("net.ipv4.ipfrag_high_thresh"):
            self._evict(sysctl.int("net.ipv4.ipfrag_low_thresh"))
        return None

    def _complete(self, dgram: _Datagram) -> Ip4Packet | None:
        stats = self.stack.stats
        self._discard(dgram.key)
        first = dgram.first
        assert first is not None and dgram.end is not None  # held == end with no overlap: offset 0 is held
        head = Ip4Packet.parse(memoryview(first))
        header_len = head.header_len
        total = header_len + dgram.end
        buf = bytearray(total)
        for offset in dgram.offsets:
            piece = dgram.pieces[offset]
            buf[header_len + offset : header_len + offset + len(piece)] = piece
        # The first fragment's header, options included, becomes the datagram's (RFC 791 §3.2:
        # options not copied into later fragments live only in the first one).
        write_ip4(buf, 0, src=head.src, dst=head.dst, proto=head.proto, total_len=total, ident=head.ident,
                  ttl=head.ttl, tos=head.tos, df=head.df, options=bytes(head.options))
        try:
            whole = Ip4Packet.parse(memoryview(buf))
        except Malformed as exc:  # cannot happen with a header we just wrote; never raise on receive
            stats["ip4.reasm.drop." + exc.reason] += 1
            return None
        stats["ip4.reasm.ok"] += 1
        return whole

    def _discard(self, key: Key) -> _Datagram | None:
        dgram = self.queues.pop(key, None)
        if dgram is not None:
            self.memory -= dgram.charged
        return dgram

    def _evict(self, low: int) -> None:
        """Drop the oldest datagrams until the memory held is at most ``low`` (Linux ip_evictor)."""
        while self.queues and self.memory > low:
            key = next(iter(self.queues))
            self._discard(key)
            self.stack.stats["ip4.reasm.drop.memory"] += 1

    # -- the timeout ----------------------------------------------------------------------------------
    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.stack.timers.schedule(when, self._expire)

    def _expire(self, now: float) -> None:
        self._timer = None
        timeout = self.stack.sysctl.float("net.ipv4.ipfrag_time")
        while self.queues:
            key, dgram = next(iter(self.queues.items()))
            if dgram.arrived + timeout > now:
                self._arm(dgram.arrived + timeout)
                return
            self._discard(key)
            self.stack.stats["ip4.reasm.drop.timeout"] += 1
            if dgram.first is not None:
                # RFC 1122 §3.3.2: time exceeded only if fragment zero is available to quote.
                try:
                    first = Ip4Packet.parse(memoryview(dgram.first))
                except Malformed:
                    continue
                self.stack.icmp4.send_error(first, TYPE_TIME_EXCEEDED, CODE_REASSEMBLY_EXCEEDED, 0, now)
