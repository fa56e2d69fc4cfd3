"""A re-armable per-connection timer on top of the core's deadline heap.

TCP moves its retransmission deadline on nearly every ACK (RFC 6298 §5.3).  Pushing a new heap entry
each time would fill the heap with cancelled entries; instead the wanted deadline lives in ``when`` and a
heap entry exists only for the earliest moment the timer could fire.  Moving the deadline later costs
one assignment; when the heap entry surfaces early it simply re-schedules itself for the real deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytcp_green.stack.timers import Timer, Timers


class LazyTimer:
    """Calls ``callback(owner, now)`` once the deadline passes.  The owner is kept beside the function
    rather than bound into a partial: a connection holds four of these, and 10,000 idle connections
    pay for every object each one makes."""

    __slots__ = ("_callback", "_handle", "_owner", "_timers", "when")

    def __init__(self, timers: Timers, callback: Callable[[Any, float], None], owner: object) -> None:
        self._timers = timers
        self._callback = callback
        self._owner = owner
        self._handle: Timer | None = None
        self.when: float | None = None

    def arm(self, when: float) -> None:
        """Fire at ``when`` (replacing any earlier or later deadline)."""
        self.when = when
        handle = self._handle
        if handle is None or handle.cancelled or handle.when > when:
            if handle is not None:
                handle.cancel()
            self._handle = self._timers.schedule(when, self._fire)

    def cancel(self) -> None:
        """Disarm.  The heap entry stays and fires as a no-op, so cancel-then-re-arm (the delayed-ACK
        pattern) reuses it instead of pushing a new one."""
        self.when = None

    def stop(self) -> None:
        """Disarm for good and drop the heap entry's hold on the connection (the connection is gone)."""
        self.when = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    @property
    def armed(self) -> bool:
        return self.when is not None

    def _fire(self, now: float) -> None:
        self._handle = None
        when = self.when
        if when is None:
            return
        if now < when:
            self._handle = self._timers.schedule(when, self._fire)
            return
        self.when = None
        self._callback(self._owner, now)
