"""A bottleneck link for the simulator: a rate-limited FIFO with a drop-tail buffer in front of a path.

The impairment's own ``rate``/``limit`` model netem, whose limit counts every frame it holds,
including those still propagating, so its buffer shrinks as the delay grows.  A router's
bottleneck is different and is what congestion control is about (RFC 9438 §5, RFC 5681 §3):
frames wait in a queue of ``buffer`` frames while the link serializes them one at a time at
``rate`` bits per second; a frame arriving to a full queue is dropped (drop-tail), and the
frames that leave the queue then cross the path (``inner``, the link's seeded impairment:
propagation delay, random loss) independently of the queue.

:func:`throttle` puts one in front of one direction of a :class:`~pytcp_green.sim.network.Link`.
"""

from __future__ import annotations

from collections import deque

from pytcp_green.link.device import Frame
from pytcp_green.link.drive import earliest
from pytcp_green.link.impair import Impairment
from pytcp_green.sim.network import Direction


class Bottleneck:
    """A :class:`~pytcp_green.link.impaired.Stage`: ``buffer`` frames of queue served at ``rate`` bit/s,
    then ``inner``.  ``stats`` are the inner impairment's, plus ``overflow`` (tail drops here) and
    ``queue_max`` (the deepest the queue got)."""

    def __init__(self, rate: float, buffer: int, inner: Impairment) -> None:
        if rate <= 0 or buffer < 1:
            raise ValueError(f"bottleneck needs rate > 0 and buffer >= 1, got {rate}, {buffer}")
        self.rate = rate
        self.buffer = buffer
        self.inner = inner
        # (time the last bit leaves the link, frame), in FIFO order; the head is being serialized.
        self._queue: deque[tuple[float, bytes]] = deque()
        self._free_at = 0.0
        self._stats = {"overflow": 0, "queue_max": 0}

    @property
    def stats(self) -> dict[str, int]:
        return {**self.inner.stats, **self._stats}

    def push(self, frame: Frame, now: float) -> None:
        self._leave(now)
        queue = self._queue
        if len(queue) >= self.buffer:
            self._stats["overflow"] += 1
            return
        self._free_at = max(now, self._free_at) + len(frame) * 8 / self.rate
        queue.append((self._free_at, frame if isinstance(frame, bytes) else bytes(frame)))  # a mark stays
        self._stats["queue_max"] = max(self._stats["queue_max"], len(queue))

    def _leave(self, now: float) -> None:
        """Hand the frames serialized by ``now`` to the path, each at the instant it left."""
        queue = self._queue
        while queue and queue[0][0] <= now:
            done, frame = queue.popleft()
            self.inner.push(frame, done)

    def pop_due(self, now: float) -> list[bytes]:
        self._leave(now)
        return self.inner.pop_due(now)

    def next_deadline(self) -> float | None:
        return earliest((self._queue[0][0] if self._queue else None, self.inner.next_deadline()))


def throttle(direction: Direction, rate: float, buffer: int) -> Bottleneck:
    """Make ``direction`` a bottleneck of ``rate`` bit/s with a ``buffer``-frame drop-tail queue in
    front of its impairment (which keeps its delay and loss)."""
    stage = Bottleneck(rate, buffer, direction.impairment)
    direction.impaired.outbound = stage
    return stage
