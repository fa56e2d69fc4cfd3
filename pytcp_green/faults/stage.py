"""One direction of a link with faults: the engine's view the runtime drives like an Impairment.

The runtime treats each direction of an attachment as a stage it pushes frames into and pops due
frames from (:class:`~pytcp_green.link.impair.Impairment` is one).  A :class:`FaultStage` puts the
faults in front of the attachment's impairment, if any: a frame is faulted first and then crosses
the impaired wire, so ``--impair`` and live faults add up as a middlebox behind a lossy link would.
"""

from __future__ import annotations

from pytcp_green.faults.engine import FaultEngine
from pytcp_green.link.device import Frame
from pytcp_green.link.impair import Impairment


class FaultStage:
    """``direction`` of ``engine`` ("in": device to stack, "out": stack to device), then ``wire``."""

    def __init__(self, engine: FaultEngine, direction: str, wire: Impairment | None) -> None:
        self.engine = engine
        self.direction = direction
        self.wire = wire

    @property
    def stats(self) -> dict[str, int]:
        """The wire's counters (what the runtime's users read off an impairment), empty without one."""
        return self.wire.stats if self.wire is not None else {}

    @property
    def pending(self) -> int:
        return self.engine.pending(self.direction) + (self.wire.pending if self.wire is not None else 0)

    def push(self, frame: Frame, now: float) -> None:
        self.engine.push(self.direction, frame, now)

    def pop_due(self, now: float) -> list[bytes]:
        due = self.engine.pop_due(self.direction, now)
        if self.wire is None:
            return due
        for frame in due:
            self.wire.push(frame, now)
        return self.wire.pop_due(now)

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.engine.next_deadline(self.direction),
                                 self.wire.next_deadline() if self.wire is not None else None) if d is not None]
        return min(deadlines) if deadlines else None
