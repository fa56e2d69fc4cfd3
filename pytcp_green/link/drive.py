"""The drive loop between devices and a sans-I/O stack, shared by the runtime and the simulator.

Whoever owns the clock, a stack is driven by three moves, all at a time ``now`` the caller passes:

* :meth:`Port.transmit`: drain an interface's transmit queue into its device; super-segments are
  cut into wire segments for a device without TSO (software GSO, :data:`SOFTWARE_GSO_MAX`);
* :meth:`Port.read`: hand the frames of one device read to the stack between ``begin_batch``
  and ``end_batch``, so TCP coalesces the in-order segments among them and sends one ACK per
  run (RFC 5681 §4.2; see ``TcpLayer.begin_batch``);
* :func:`run_timers`: fire the stack's timers that are due.

A port has one path, to its device and back.  Middleware (an impairment, live faults, a capture)
is a device wrapping the device (link/impaired.py, link/pcap.py); one that holds frames is
:class:`~pytcp_green.link.device.Timed`, and the port sets its clock before each move and releases
what falls due, so frames held for a delay leave at their time in the runtime and the simulator alike.

:class:`pytcp_green.green.runtime.Runtime` makes these moves from gevent callbacks with the
monotonic clock; :class:`pytcp_green.sim.Simulation` makes them in a loop under its virtual
clock.  Nothing here reads a clock, sleeps or waits, so the two cannot drift apart.
"""

from __future__ import annotations

import errno
from collections import Counter, deque
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from pytcp_green.link.device import Device, Frame, Timed
from pytcp_green.stack.interface import GsoFrame
from pytcp_green.stack.wire.offload import segment_tcp


class DrivenInterface(Protocol):
    """What the loop uses of an interface: a name and the queue of frames to send."""

    @property
    def name(self) -> str: ...

    @property
    def tx(self) -> deque[bytes | bytearray]: ...

    csum_free: bool  # set from the device's checksum offload when the port binds them


IfaceT = TypeVar("IfaceT", bound=DrivenInterface)
IfaceT_contra = TypeVar("IfaceT_contra", bound=DrivenInterface, contravariant=True)


class DrivenStack(Protocol[IfaceT_contra]):
    """What the loop uses of a stack: the runtime contract of :mod:`pytcp_green.stack`."""

    @property
    def stats(self) -> Counter[str]: ...

    def receive(self, iface: IfaceT_contra, frame: bytes, now: float, /) -> None: ...

    def begin_batch(self) -> None: ...

    def end_batch(self, now: float, /) -> None: ...

    def poll(self, now: float, /) -> None: ...

    def next_deadline(self) -> float | None: ...


# The super-segment size TCP may build for a device that cannot segment (``tso_max`` 0): the port
# cuts it before the write, as Linux's GSO does in software for every device without TSO.  One pass
# through TCP and IP for up to 45 segments instead of one each is most of the cost of a segment.
SOFTWARE_GSO_MAX = 65535


class Port(Generic[IfaceT]):
    """``device`` bound to the interface ``iface`` of ``stack``.

    Binding applies the device's checksum offload to the interface (``Interface.csum_free``: TCP
    skips the checksums the device vouches for).  :attr:`device` may be replaced while the port runs
    (live faults wrap it); :attr:`timed` is it when it holds frames (link/device.py), else None.
    """

    def __init__(self, stack: DrivenStack[IfaceT], iface: IfaceT, device: Device) -> None:
        self.stack = stack
        self.iface = iface
        self.timed: Timed | None = None
        self.device = device
        self.tx_errors = 0
        iface.csum_free = device.csum_offload

    @property
    def device(self) -> Device:
        return self._device

    @device.setter
    def device(self, device: Device) -> None:
        self._device = device
        self.timed = device if isinstance(device, Timed) else None

    def transmit(self, now: float) -> bool:
        """Move the interface's queued frames towards the device; True when any frame moved."""
        tx = self.iface.tx
        timed = self.timed
        moved = bool(tx)
        if timed is not None:
            timed.now = now
        while tx:
            self._write(tx.popleft())
        if timed is not None:
            moved = timed.release(now) or moved
        return moved

    def _write(self, frame: Frame) -> None:
        device = self._device
        if type(frame) is GsoFrame and not device.tso_max:
            # Software GSO: the device takes one frame per write, so the super-segment is cut here.
            self.stack.stats["link.gso_soft"] += 1
            for piece in segment_tcp(frame, frame.l3, frame.gso_size):
                self._write(piece)
            return
        try:
            device.write(frame)
        except OSError as exc:
            # A full device queue loses the frame as a congested wire would; TCP recovers it.
            self.tx_errors += 1
            self.stack.stats["link.tx_error." + errno.errorcode.get(exc.errno or 0, "unknown")] += 1

    def read(self, now: float, limit: int = 256) -> int:
        """Feed the stack one read of the device (up to ``limit`` frames, or what a timed device has
        due); returns how many frames it got.  Raises OSError if the device is broken."""
        timed = self.timed
        if timed is not None:
            timed.now = now
        frames = self._device.read_batch(limit)
        if frames:  # an empty batch would change nothing
            stack, iface = self.stack, self.iface
            stack.begin_batch()
            for frame in frames:
                stack.receive(iface, frame, now)
            stack.end_batch(now)
        return len(frames)

    def next_deadline(self) -> float | None:
        """When a frame held by the device is next due, or None."""
        return None if self.timed is None else self.timed.next_deadline()


def run_timers(stack: DrivenStack[IfaceT], now: float) -> bool:
    """Fire ``stack``'s due timers; True when any was due."""
    deadline = stack.next_deadline()
    if deadline is None or deadline > now:
        return False
    stack.poll(now)
    return True


def earliest(deadlines: Iterable[float | None]) -> float | None:
    """The smallest of ``deadlines`` that is not None, or None."""
    best: float | None = None
    for deadline in deadlines:
        if deadline is not None and (best is None or deadline < best):
            best = deadline
    return best
