"""The contract every device fulfils, so the runtime treats a TAP, a loopback and an in-memory cable alike.

A device is readable through a real file descriptor: the TAP's own fd, or an eventfd that an
in-memory device signals when it queues frames.  The runtime waits on that fd once with the
gevent hub and then drains frames with :meth:`Device.read_batch` until it returns nothing.

Middleware is a device too: :class:`~pytcp_green.link.impaired.ImpairedDevice` and
:class:`~pytcp_green.link.pcap.PcapDevice` wrap another device (as smoltcp's FaultInjector and
PcapWriter do).  One that holds frames for a while is also :class:`Timed`: the drive loop tells it
the time before each move and releases what falls due (:mod:`pytcp_green.link.drive`).

Checksum offload (issue 12, as Linux's veth and lo): a device with :attr:`Device.csum_offload`
carries TCP frames whose checksum field holds only the pseudo-header sum and hands each on marked
:class:`~pytcp_green.stack.interface.TrustedFrame` (the loopback's and the pair's queue,
:class:`~pytcp_green.link.loopback.SignalledQueue`, marks them), so neither end computes or checks
a TCP checksum.  Middleware that rewrites a frame first completes its checksums (Linux's
``skb_checksum_help``) and hands it on as a :class:`PlainFrame`, which such a device passes on
unmarked: the receiver checks it, so the rewrite (corruption) is caught and counted.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pytcp_green.stack.interface import LinkKind

Frame = bytes | bytearray | memoryview


class PlainFrame(bytes):
    """A frame whose checksums are complete and are the receiver's to check (Linux's ``CHECKSUM_NONE``
    after ``skb_checksum_help``): what middleware that changed a frame's bytes hands on.  A device with
    checksum offload delivers it as it is instead of marking it trusted."""

    __slots__ = ()


class Device(Protocol):
    name: str
    kind: LinkKind
    mtu: int
    mac: bytes | None  # 6 bytes for ETHERNET devices, None for IP devices
    # The largest IP packet of a TCP super-segment (stack.interface.GsoFrame) the device segments
    # itself (TSO); 0 when it takes only MTU-sized frames.
    tso_max: int
    # It carries TCP frames with partial checksums and delivers them marked (see the module
    # docstring); the port makes its interface skip TCP checksums (Interface.csum_free).
    csum_offload: bool

    def fileno(self) -> int:
        """A file descriptor that polls readable while frames are waiting."""
        ...

    def read_batch(self, limit: int = 256) -> list[bytes]:
        """Up to ``limit`` received frames without blocking; an empty list when none is waiting."""
        ...

    def write(self, frame: Frame) -> None:
        """Send one frame.  Raises OSError only for a broken device; a full queue drops and counts."""
        ...

    def close(self) -> None:
        """Release the fd; idempotent."""
        ...


class Middleware:
    """What every middleware device shares: it offers what ``inner`` offers, polls its fd, closes it."""

    def __init__(self, inner: Device) -> None:
        self.inner = inner
        self.name = inner.name
        self.kind = inner.kind
        self.mtu = inner.mtu
        self.mac = inner.mac
        self.tso_max = inner.tso_max
        self.csum_offload = inner.csum_offload

    def fileno(self) -> int:
        return self.inner.fileno()

    def close(self) -> None:
        self.inner.close()


@runtime_checkable
class Timed(Protocol):
    """Middleware that holds frames until a time: the loop sets :attr:`now` before it writes to or reads
    from the device (what they push is scheduled from then), and calls :meth:`release` to move on what
    is due.  Frames held inbound come out of the next ``read_batch``."""

    now: float

    def release(self, now: float) -> bool:
        """Set :attr:`now` and write the outbound frames due by then to the inner device; True when any moved."""
        ...

    def next_deadline(self) -> float | None:
        """When a held frame is next due (the loop then calls release and read_batch), or None."""
        ...
