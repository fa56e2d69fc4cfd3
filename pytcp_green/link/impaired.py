"""The impairment as middleware: a device that wraps a device and passes its frames through stages.

:class:`ImpairedDevice` holds, per direction, a :class:`Stage` — a seeded
:class:`~pytcp_green.link.impair.Impairment`, the live faults in front of one
(:class:`~pytcp_green.faults.stage.FaultStage`) or the simulator's bottleneck — between the stack
and the device it wraps, as smoltcp's FaultInjector does.  It is :class:`~pytcp_green.link.device.Timed`:
the drive loop sets its clock before each move and releases the frames that fall due, the same in
the runtime and in the simulator.

Stages act on wire frames: a super-segment written for a TSO device (stack.interface.GsoFrame) is
cut into its MSS-sized segments first, and one read from the kernel (GRO, or a segment it never
cut) into MTU-sized ones, so that losing or reordering a frame means one segment, as on the far
side of an offloading NIC (the software GSO of stack/wire/offload.py).  Checksum marks
(TrustedFrame) cross a stage unless it changes the frame (link/device.py).
"""

from __future__ import annotations

import math
from typing import Protocol

from pytcp_green.link.device import Device, Frame, Middleware
from pytcp_green.link.drive import earliest
from pytcp_green.stack.interface import GsoFrame, LinkKind
from pytcp_green.stack.wire.offload import segment_tcp, wire_payload


class Stage(Protocol):
    """One direction of middleware that holds frames for a while.  ``push`` keeps the frame (an
    immutable one as it is, a mutable one as a copy: the caller may reuse its buffer)."""

    @property
    def stats(self) -> dict[str, int]: ...

    def push(self, frame: Frame, now: float) -> None: ...

    def pop_due(self, now: float) -> list[bytes]: ...

    def next_deadline(self) -> float | None: ...


class ImpairedDevice(Middleware):
    """``inner`` with ``outbound`` (stack to device) and ``inbound`` (device to stack) stages, either
    None for a direction that passes frames at once.  The stages may be replaced while it runs (live
    faults are installed so).  Frames ``inner`` refuses on a release are counted in ``tx_errors``."""

    def __init__(self, inner: Device, outbound: Stage | None = None, inbound: Stage | None = None) -> None:
        super().__init__(inner)  # with inner's tso_max: super-segments are cut here, before the stages
        self.outbound = outbound
        self.inbound = inbound
        self.now = -math.inf
        self.tx_errors = 0
        self._l3 = 14 if inner.kind is LinkKind.ETHERNET else 0

    @property
    def stats(self) -> dict[str, int]:
        """Both directions' counters added up (lost, reordered, ...)."""
        total: dict[str, int] = {}
        for stage in (self.outbound, self.inbound):
            if stage is not None:
                for name, value in stage.stats.items():
                    total[name] = total.get(name, 0) + value
        return total

    def write(self, frame: Frame) -> None:
        stage = self.outbound
        if stage is None:
            self.inner.write(frame)
        elif type(frame) is GsoFrame:
            for piece in segment_tcp(frame, frame.l3, frame.gso_size):
                stage.push(piece, self.now)
        else:
            stage.push(frame, self.now)

    def read_batch(self, limit: int = 256) -> list[bytes]:
        """What the inbound stage has due after taking up to ``limit`` frames from ``inner``: held
        frames falling due together may make it more than ``limit``."""
        frames = self.inner.read_batch(limit)
        stage = self.inbound
        if stage is None:
            return frames
        now, l3 = self.now, self._l3
        wire = self.mtu + l3
        for frame in frames:
            if len(frame) > wire:
                for piece in segment_tcp(frame, l3, wire_payload(frame, l3, self.mtu)):
                    stage.push(piece, now)
            else:
                stage.push(frame, now)
        return stage.pop_due(now)

    def release(self, now: float) -> bool:
        self.now = now
        if self.outbound is None:
            return False
        due = self.outbound.pop_due(now)
        write = self.inner.write
        for frame in due:
            try:
                write(frame)
            except OSError:  # the frame is lost, as a full queue loses one; TCP recovers it
                self.tx_errors += 1
        return bool(due)

    def next_deadline(self) -> float | None:
        return earliest(stage.next_deadline() for stage in (self.outbound, self.inbound) if stage is not None)

    def __repr__(self) -> str:
        return f"<ImpairedDevice {self.name} out={self.outbound!r} in={self.inbound!r} over {self.inner!r}>"
