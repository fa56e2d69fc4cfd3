"""The reassembly core shared by IPv4 and IPv6: fragment bookkeeping, memory caps, timeout, eviction.

Instead of RFC 815's hole list the fragments of a datagram are kept sorted by offset with the
bytes held counted: since overlaps are refused, a datagram is complete exactly when its last
fragment (more-fragments clear) has fixed its length and the bytes held equal it.

What the families share, each rule with its own counter under ``<family>.reasm.``:

* duplicate: an exact duplicate (same offset, same bytes) is only counted, retransmitting
  links produce those;
* inconsistent: a second last fragment with a different end, data beyond a known end, or a
  last fragment ending before data already held;
* overlap: a fragment overlapping held data is never merged (RFC 1858, RFC 3128, RFC 5722);
* too many fragments: at most ``<sysctl>max_frags`` per datagram, so tiny fragments cannot
  cost a datagram far more memory than its payload;
* memory: every fragment is charged its length plus :data:`FRAGMENT_OVERHEAD` (what Linux
  calls truesize); above ``<sysctl>high_thresh`` the oldest datagrams are evicted until the
  total is at most ``<sysctl>low_thresh`` (Linux's knobs);
* timeout: a datagram not complete ``<sysctl>time`` seconds after its first fragment arrived
  is dropped, with a Time Exceeded quoting its offset-0 fragment if that one was received.

The timeout is the same for every datagram, so datagrams expire in arrival order: one ordered
dict and one stack timer for the oldest suffice, whatever the number of datagrams held.

What differs is the family's policy: what a refused fragment does to its datagram
(:meth:`Reassembly.reject`), which headers the whole datagram gets, and the ICMP error sent on
timeout (:meth:`Reassembly.time_exceeded`).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from typing import TYPE_CHECKING, Generic, TypeVar

from pytcp_green.stack.timers import Timer

if TYPE_CHECKING:
    from pytcp_green.stack.services import Services

# What a held fragment costs besides its payload: bookkeeping, header copy (Linux charges skb truesize).
FRAGMENT_OVERHEAD = 128

K = TypeVar("K", bound=tuple[object, ...])


class Fragments(Generic[K]):
    """The fragments of one datagram being reassembled."""

    __slots__ = ("arrived", "charged", "dead", "end", "first", "head", "held", "key", "offsets", "pieces")

    def __init__(self, key: K, arrived: float) -> None:
        self.key = key
        self.arrived = arrived
        self.offsets: list[int] = []  # sorted fragment start offsets
        self.pieces: dict[int, bytes] = {}  # start offset -> payload bytes
        self.held = 0  # payload bytes held
        self.charged = 0  # bytes charged against the memory limits
        self.end: int | None = None  # payload length, known once the last fragment arrived
        self.first: bytes | None = None  # the whole offset-0 fragment, headers included
        self.head: bytes | None = None  # the family's headers for the whole datagram, from the offset-0 fragment
        self.dead = False  # the family's reject() keeps the key to swallow the rest until the timeout

    def overlaps(self, start: int, stop: int) -> bool:
        """True when [start, stop) intersects a fragment already held."""
        i = bisect.bisect_right(self.offsets, start)
        if i > 0:
            prev = self.offsets[i - 1]
            if prev + len(self.pieces[prev]) > start:
                return True
        return i < len(self.offsets) and self.offsets[i] < stop

    def payload_into(self, buf: bytearray, at: int) -> None:
        """Copy every piece into ``buf``, the payload starting at offset ``at``."""
        for offset in self.offsets:
            piece = self.pieces[offset]
            buf[at + offset : at + offset + len(piece)] = piece


class Reassembly(Generic[K]):
    """Reassembly queues of one host for one family; the family's layer subclasses it.

    ``stats`` is the counter prefix (``"ip4.reasm."``), ``sysctl`` the knob prefix
    (``"net.ipv4.ipfrag_"``), completed by ``time``, ``max_frags``, ``high_thresh``, ``low_thresh``.
    """

    def __init__(self, svc: Services, stats: str, sysctl: str) -> None:
        self.svc = svc
        self.queues: OrderedDict[K, Fragments[K]] = OrderedDict()  # oldest first
        self.memory = 0  # bytes charged by every queue together
        self._timer: Timer | None = None
        self._stats = stats
        self._sysctl = sysctl

    def __len__(self) -> int:
        """The datagrams being reassembled (not the keys kept dead by :meth:`reject`)."""
        return sum(1 for q in self.queues.values() if not q.dead)

    # -- the family's policy --------------------------------------------------------------------------
    def reject(self, key: K) -> None:
        """A fragment of ``key`` was refused: drop the whole datagram (Linux, for IPv4)."""
        self._discard(key)

    def time_exceeded(self, first: bytes, now: float) -> None:
        """Send the Time Exceeded (code 1) quoting ``first``, the offset-0 fragment of a timed-out datagram."""
        raise NotImplementedError

    # -- the shared rules -----------------------------------------------------------------------------
    def admit(self, key: K, start: int, data: bytes | memoryview, more: bool, now: float) -> Fragments[K] | None:
        """Hold one fragment's payload after the shared checks.

        Returns its datagram, for the family to record the offset-0 fragment's headers and call
        :meth:`take_if_whole`; None when the fragment was refused or was a duplicate.
        """
        stats = self.svc.stats
        q = self.queues.get(key)
        if q is None:
            q = Fragments(key, now)
            self.queues[key] = q
            if self._timer is None:
                self._arm(now + self.svc.sysctl.float(self._sysctl + "time"))
        if q.dead:
            stats[self._stats + "drop.after_overlap"] += 1
            return None
        stop = start + len(data)
        end = q.end
        if (not more and end is not None and stop != end) or (end is not None and stop > end) or (
            not more and q.offsets and stop < q.offsets[-1] + len(q.pieces[q.offsets[-1]])
        ):
            stats[self._stats + "drop.inconsistent"] += 1
            self.reject(key)
            return None
        held = q.pieces.get(start)
        if held is not None and held == data:
            stats[self._stats + "duplicate"] += 1
            return None
        if q.overlaps(start, stop):
            stats[self._stats + "drop.overlap"] += 1
            self.reject(key)
            return None
        if len(q.offsets) >= self.svc.sysctl.int(self._sysctl + "max_frags"):
            stats[self._stats + "drop.too_many_frags"] += 1
            self.reject(key)
            return None
        bisect.insort(q.offsets, start)
        q.pieces[start] = bytes(data)
        q.held += len(data)
        self.charge(q, len(data) + FRAGMENT_OVERHEAD)
        if not more:
            q.end = stop
        return q

    def charge(self, q: Fragments[K], cost: int) -> None:
        """Count ``cost`` bytes against the memory limits, for ``q``."""
        q.charged += cost
        self.memory += cost

    def take_if_whole(self, q: Fragments[K]) -> bool:
        """True when ``q`` is complete, then no longer queued; else the memory cap is enforced."""
        if q.end is not None and q.held == q.end and q.head is not None:
            self._discard(q.key)
            return True
        sysctl = self.svc.sysctl
        if self.memory > sysctl.int(self._sysctl + "high_thresh"):
            self._evict(sysctl.int(self._sysctl + "low_thresh"))
        return False

    def _discard(self, key: K) -> None:
        q = self.queues.pop(key, None)
        if q is not None:
            self.memory -= q.charged

    def _evict(self, low: int) -> None:
        """Drop the oldest datagrams until the memory held is at most ``low`` (Linux ip_evictor)."""
        while self.queues and self.memory > low:
            self._discard(next(iter(self.queues)))
            self.svc.stats[self._stats + "drop.memory"] += 1

    # -- the timeout ----------------------------------------------------------------------------------
    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.svc.timers.schedule(when, self._expire)

    def _expire(self, now: float) -> None:
        self._timer = None
        timeout = self.svc.sysctl.float(self._sysctl + "time")
        while self.queues:
            key, q = next(iter(self.queues.items()))
            if q.arrived + timeout > now:
                self._arm(q.arrived + timeout)
                return
            self._discard(key)
            if q.dead:
                continue
            self.svc.stats[self._stats + "drop.timeout"] += 1
            if q.first is not None:
                # RFC 1122 §3.3.2, RFC 8200 §4.5: time exceeded only if fragment zero is there to quote.
                self.time_exceeded(q.first, now)
