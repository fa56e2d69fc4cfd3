"""An in-process loopback device: every frame written is read back from the same device.

The stack uses it for 127.0.0.0/8 and ::1, so a client and a server in one process talk over
pytcp_green with no TAP and no privileges.  Frames are bare IP packets (:attr:`LinkKind.IP`).

Like every device it is readable through a real file descriptor, here an eventfd, so the
runtime waits on it with the gevent hub exactly as it waits on a TAP.  The queue and the eventfd
live in :class:`SignalledQueue`, which :mod:`pytcp_green.link.pair` reuses.

Not thread-safe: the runtime touches devices only from the hub's thread (see DESIGN.md).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections import deque

from pytcp_green.link.device import Frame, PlainFrame
from pytcp_green.stack.interface import LinkKind, TrustedFrame

DEFAULT_QUEUE_LIMIT = 1000


class SignalledQueue:
    """A bounded FIFO of frames with an eventfd that polls readable exactly while frames wait.

    The eventfd is written only when the queue goes from empty to non-empty and read (which
    resets its counter) when a read empties the queue.  That keeps the invariant
    "fd readable <=> queue non-empty" with one syscall per burst instead of one per frame.
    """

    __slots__ = ("_fd", "_frames", "limit")

    def __init__(self, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"queue limit must be at least 1, got {limit}")
        self.limit = limit
        self._frames: deque[bytes] = deque()
        # Non-blocking so draining the counter never blocks; CLOEXEC so children don't inherit it.
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        if self._fd < 0:
            raise OSError(errno.EBADF, "device is closed")
        return self._fd

    def put(self, frame: Frame) -> bool:
        """Queue ``frame`` as a device with checksum offload delivers it (link/device.py): marked
        TrustedFrame, unless it is a PlainFrame; False when the queue is full or closed (the caller
        counts the drop)."""
        frames = self._frames
        if self._fd < 0 or len(frames) >= self.limit:
            return False
        # Anything else is copied into the mark: the writer may reuse its buffer once write() returns.
        kind = type(frame)
        frames.append(frame if kind is TrustedFrame or kind is PlainFrame else TrustedFrame(frame))  # type: ignore[arg-type]
        if len(frames) == 1:
            os.eventfd_write(self._fd, 1)
        return True

    def get_batch(self, limit: int) -> list[bytes]:
        """Up to ``limit`` frames in FIFO order; clears the eventfd once the queue is empty."""
        frames = self._frames
        if not frames:
            return []
        if limit >= len(frames):
            batch = list(frames)
            frames.clear()
        else:
            popleft = frames.popleft
            batch = [popleft() for _ in range(max(limit, 0))]
        if not frames and self._fd >= 0:
            # Reset the counter; it is already zero only if someone else read our fd.
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(self._fd)
        return batch

    def __len__(self) -> int:
        return len(self._frames)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            self._frames.clear()
            os.close(fd)


class LoopbackDevice:
    """A :class:`~pytcp_green.link.device.Device` whose writes come back as reads, in order.

    Beyond ``queue_limit`` waiting frames a write is dropped and counted in :attr:`dropped`,
    as a kernel's backlog would.
    """

    kind = LinkKind.IP
    mac: bytes | None = None
    tso_max = 0  # its MTU (64 KB) already takes any TCP segment whole
    csum_offload = True  # its frames come back marked: see write()

    def __init__(self, name: str = "lo", mtu: int = 65536, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.name = name
        self.mtu = mtu
        self._queue = SignalledQueue(queue_limit)
        self.dropped = 0  # frames discarded because the queue was full

    @property
    def pending(self) -> int:
        """Frames waiting to be read."""
        return len(self._queue)

    def fileno(self) -> int:
        return self._queue.fileno()

    def read_batch(self, limit: int = 256) -> list[bytes]:
        return self._queue.get_batch(limit)

    def write(self, frame: Frame) -> None:
        if self._queue.closed:
            raise OSError(errno.EBADF, f"{self.name}: device is closed")
        # The stack's own frame: TCP takes it back on trust, as Linux's lo does (its checksum is only
        # the pseudo-header sum, see Interface.csum_free); one an impairment changed is checked.
        if not self._queue.put(frame):
            self.dropped += 1

    def close(self) -> None:
        self._queue.close()

    def __repr__(self) -> str:
        return f"<LoopbackDevice {self.name} mtu={self.mtu} pending={self.pending} dropped={self.dropped}>"
