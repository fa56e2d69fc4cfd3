"""Lifetimes that a peer refreshes often: a timer that moves later without a new heap entry.

:class:`~pytcp_green.stack.timers.Timers` deletes lazily: a cancelled timer stays in the heap until
its deadline comes.  A router advertisement re-arms a router's, a prefix's and an address's lifetime
(RFC 4861 §6.3.4, RFC 4862 §5.5.3 e, RFC 8981 §3.4), so a flood of RAs carrying hours-long lifetimes
would leave one cancelled entry per RA and per lifetime in the heap for hours (2,000 RAs left 6,005
heap entries for 7 live timers).  A :class:`Deadline` keeps one heap entry at the earliest time it
was armed for; when that fires and the deadline has moved on, it re-schedules itself there.  Moving
a deadline later is then O(1) and leaves nothing behind; only moving it earlier costs a new entry.
"""

from __future__ import annotations

from collections.abc import Callable

from pytcp_green.stack.timers import Timer, Timers


class Deadline(Timer):
    """A :class:`Timer` whose ``when`` may move; it fires its callback once, at the latest ``when``."""

    __slots__ = ("_entry", "_timers")

    def __init__(self, timers: Timers, when: float, callback: Callable[[float], None]) -> None:
        super().__init__(when, callback)
        self._timers = timers
        self._entry = timers.schedule(when, self._fire)  # the heap entry, due no later than ``when``

    def _fire(self, now: float) -> None:
        if self.cancelled:
            return
        if now < self.when:
            self._entry = self._timers.schedule(self.when, self._fire)  # moved on since it was armed
            return
        self.cancelled = True  # one-shot, as a Timer
        self.callback(now)

    def cancel(self) -> None:
        super().cancel()
        self._entry.cancel()

    def can_move_to(self, when: float) -> bool:
        return not self.cancelled and self._entry.when <= when


def rearm(timers: Timers, old: Timer | None, when: float, callback: Callable[[float], None]) -> Deadline:
    """``callback`` at ``when``: ``old`` itself when it is a live Deadline whose heap entry is not due
    after ``when``, otherwise a new Deadline (``old`` cancelled)."""
    if isinstance(old, Deadline) and old.can_move_to(when):
        old.when = when
        old.callback = callback
        return old
    if old is not None:
        old.cancel()
    return Deadline(timers, when, callback)
