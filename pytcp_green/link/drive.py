"""The drive loop between devices and a sans-I/O stack, shared by the runtime and the simulator.

Whoever owns the clock, a stack is driven by three moves, all at a time ``now`` the caller passes:

* :meth:`Port.transmit`: drain an interface's transmit queue into its device, through the
  outbound :class:`Stage` (an impairment, live faults) when there is one (frames it holds leave
  once they are due); super-segments are cut into wire segments for a device without TSO
  (software GSO, :data:`SOFTWARE_GSO_MAX`) and before any stage;
* :meth:`Port.receive`: hand the frames of one device read to the stack between
  ``begin_batch`` and ``end_batch``, through the inbound stage when there is one, so TCP
  sends one cumulative ACK per connection per read (RFC 5681 §4.2; see ``TcpLayer.begin_batch``);
* :func:`run_timers`: fire the stack's timers that are due.

:class:`pytcp_green.green.runtime.Runtime` makes these moves from gevent callbacks with the
monotonic clock; :class:`pytcp_green.sim.Simulation` makes them in a loop under its virtual
clock.  Nothing here reads a clock, sleeps or waits, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import errno
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from pytcp_green.link.device import Device, Frame
from pytcp_green.stack.interface import GsoFrame, LinkKind, TrustedFrame
from pytcp_green.stack.wire.offload import complete_tcp_checksum, segment_tcp, wire_payload


class DrivenInterface(Protocol):
    """What the loop uses of an interface: a name and the queue of frames to send."""

    @property
    def name(self) -> str: ...

    @property
    def tx(self) -> deque[bytes | bytearray]: ...


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


class Stage(Protocol):
    """One direction of a link between the stack and a device that holds frames for a while: an
    :class:`~pytcp_green.link.impair.Impairment`, or the live faults in front of one.  ``push``
    keeps its own copy of the frame: the caller may reuse the buffer."""

    @property
    def stats(self) -> dict[str, int]: ...

    def push(self, frame: Frame, now: float) -> None: ...

    def pop_due(self, now: float) -> list[bytes]: ...

    def next_deadline(self) -> float | None: ...


Tap = Callable[[Frame], None]

# The super-segment size TCP may build for a device that cannot segment (``tso_max`` 0): the port
# cuts it before the write, as Linux's GSO does in software for every device without TSO.  One pass
# through TCP and IP for up to 45 segments instead of one each is most of the cost of a segment.
SOFTWARE_GSO_MAX = 65535


@dataclasses.dataclass(eq=False)
class Port(Generic[IfaceT]):
    """A device bound to an interface of ``stack``, with an optional stage in each direction.

    The stages are read at every move, so one installed while the port runs (live faults) takes
    effect at once.  ``tap`` sees every frame written to the device and every frame handed to the
    stack (after the stages: what the stack really sent and received), e.g. to write a capture;
    with ``tap_received`` False only the frames written (a loopback hands each frame back, and a
    capture of one shows it once, as Linux's ``lo`` does).
    """

    stack: DrivenStack[IfaceT]
    iface: IfaceT
    device: Device
    impair_out: Stage | None = None
    impair_in: Stage | None = None
    tap: Tap | None = None
    tap_received: bool = True
    tx_errors: int = 0

    def transmit(self, now: float) -> bool:
        """Move the interface's queued frames towards the device; True when any frame moved."""
        tx = self.iface.tx
        impair = self.impair_out
        moved = bool(tx)
        if impair is None:
            while tx:
                self._write(tx.popleft())
            return moved
        while tx:
            frame = tx.popleft()
            if type(frame) is GsoFrame:
                # Loss and reordering act on wire segments, as on the far side of a TSO NIC.
                for piece in segment_tcp(frame, frame.l3, frame.gso_size):
                    impair.push(piece, now)
            else:
                impair.push(frame, now)
        due = impair.pop_due(now)
        for frame in due:
            self._write(frame)
        return moved or bool(due)

    def _write(self, frame: Frame) -> None:
        if type(frame) is GsoFrame and not self.device.tso_max:
            # Software GSO: the device takes one frame per write, so the super-segment is cut here.
            self.stack.stats["link.gso_soft"] += 1
            for piece in segment_tcp(frame, frame.l3, frame.gso_size):
                self._write(piece)
            return
        if self.tap is not None:
            self.tap(frame)
        try:
            self.device.write(frame)
        except OSError as exc:
            # A full device queue loses the frame as a congested wire would; TCP recovers it.
            self.tx_errors += 1
            self.stack.stats["link.tx_error." + errno.errorcode.get(exc.errno or 0, "unknown")] += 1

    def receive(self, frames: list[bytes], now: float) -> None:
        """Feed the frames of one device read to the stack (those the inbound stage lets through)."""
        impair = self.impair_in
        if impair is None:
            self._deliver(frames, now)
            return
        device = self.device
        l3 = 14 if device.kind is LinkKind.ETHERNET else 0
        wire = device.mtu + l3
        for frame in frames:
            if len(frame) > wire:
                # A super-segment the kernel coalesced (GRO) or never cut (TSO): the inbound stage
                # must lose and reorder the segments the wire would have carried, MTU-sized ones.
                for piece in segment_tcp(frame, l3, wire_payload(frame, l3, device.mtu)):
                    impair.push(piece, now)
            elif type(frame) is TrustedFrame:
                # The stage copies (and may rewrite) what it holds, which loses the device's mark:
                # the checksum the kernel left partial must be whole before it goes in.
                impair.push(complete_tcp_checksum(frame, l3), now)
            else:
                impair.push(frame, now)
        self.deliver_due(now)

    def deliver_due(self, now: float) -> None:
        """Feed the stack the frames the inbound stage has made due by ``now``."""
        if self.impair_in is not None:
            self._deliver(self.impair_in.pop_due(now), now)

    def _deliver(self, frames: list[bytes], now: float) -> None:
        if not frames:
            return  # an empty batch would change nothing
        stack, iface = self.stack, self.iface
        tap = self.tap if self.tap_received else None
        stack.begin_batch()
        for frame in frames:
            if tap is not None:
                tap(frame)
            stack.receive(iface, frame, now)
        stack.end_batch(now)

    def next_deadline(self) -> float | None:
        """When a stage of this port next has a frame due, or None."""
        out, inbound = self.impair_out, self.impair_in
        # The runtime asks after every core entry: the usual port, with no stage, costs no call.
        if out is None:
            return None if inbound is None else inbound.next_deadline()
        if inbound is None:
            return out.next_deadline()
        return earliest((out.next_deadline(), inbound.next_deadline()))


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
