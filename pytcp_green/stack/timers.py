"""The core's deadline heap: protocol code schedules callbacks at absolute times; the runtime asks
:meth:`Timers.next_deadline` and calls :meth:`Timers.run_due` with its clock.  Nothing here reads a clock.

Cancelled timers stay in the heap (lazy deletion) and are skipped when they surface, which keeps
re-arming a retransmission timer on every ACK O(log n) with no search.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class Timer:
    """A handle for one scheduled callback; :meth:`cancel` makes it a no-op."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[float], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """Min-heap of :class:`Timer` ordered by deadline, then by insertion (so equal deadlines run FIFO)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()

    def schedule(self, when: float, callback: Callable[[float], None]) -> Timer:
        """Run ``callback(now)`` once ``now >= when``."""
        timer = Timer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        return timer

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None when nothing is scheduled."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def run_due(self, now: float) -> int:
        """Fire every live timer whose deadline has passed; returns how many fired."""
        heap = self._heap
        fired = 0
        while heap and heap[0][0] <= now:
            _, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            timer.cancelled = True  # one-shot: a handle kept by its owner is now inert
            timer.callback(now)
            fired += 1
        return fired

    def __len__(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)
