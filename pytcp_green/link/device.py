"""The contract every device fulfils, so the runtime treats a TAP, a loopback and an in-memory cable alike.

A device is readable through a real file descriptor: the TAP's own fd, or an eventfd that an
in-memory device signals when it queues frames.  The runtime waits on that fd once with the
gevent hub and then drains frames with :meth:`Device.read_batch` until it returns nothing.
"""

from __future__ import annotations

from typing import Protocol

from pytcp_green.stack.interface import LinkKind

Frame = bytes | bytearray | memoryview


class Device(Protocol):
    name: str
    kind: LinkKind
    mtu: int
    mac: bytes | None  # 6 bytes for ETHERNET devices, None for IP devices
    # The largest IP packet of a TCP super-segment (stack.interface.GsoFrame) the device segments
    # itself (TSO); 0 when it takes only MTU-sized frames.
    tso_max: int

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
