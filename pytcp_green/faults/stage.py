"""One direction of a link with faults: the engine's view, a stage of the link's ImpairedDevice.

Each direction of an :class:`~pytcp_green.link.impaired.ImpairedDevice` is a stage it pushes frames
into and pops due frames from (:class:`~pytcp_green.link.impair.Impairment` is one).  A
:class:`FaultStage` puts the faults in front of the attachment's impairment, if any: a frame is
faulted first and then crosses the impaired wire, so ``--impair`` and live faults add up as a
middlebox behind a lossy link would.

The engine copies frames and rewrites some (slicer, limit_data), which a device's checksum mark
(TrustedFrame) cannot survive: a marked frame's TCP checksum, which may be partial, is completed
before it goes in, as Linux's ``skb_checksum_help`` does for a device that cannot finish it.
"""

from __future__ import annotations

from pytcp_green.faults.engine import FaultEngine
from pytcp_green.link.device import Frame
from pytcp_green.link.impaired import Stage
from pytcp_green.stack.interface import TrustedFrame
from pytcp_green.stack.wire.offload import complete_tcp_checksum


class FaultStage:
    """``direction`` of ``engine`` ("in": device to stack, "out": stack to device), then ``wire``."""

    def __init__(self, engine: FaultEngine, direction: str, wire: Stage | None) -> None:
        self.engine = engine
        self.direction = direction
        self.wire = wire

    @property
    def stats(self) -> dict[str, int]:
        """The wire's counters (what the runtime's users read off an impairment), empty without one."""
        return self.wire.stats if self.wire is not None else {}

    def push(self, frame: Frame, now: float) -> None:
        if type(frame) is TrustedFrame:
            frame = complete_tcp_checksum(frame, self.engine.link_len)
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
