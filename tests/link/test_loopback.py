"""LoopbackDevice: frames come back intact and in order, the eventfd tracks the queue, overflow is counted."""

from __future__ import annotations

import errno
import select
from collections.abc import Iterator

import pytest

from pytcp_green.link.loopback import LoopbackDevice
from pytcp_green.stack.interface import LinkKind, TrustedFrame


def readable(fd: int) -> bool:
    r, _, _ = select.select([fd], [], [], 0)
    return bool(r)


@pytest.fixture
def lo() -> Iterator[LoopbackDevice]:
    dev = LoopbackDevice()
    yield dev
    dev.close()


def test_defaults(lo: LoopbackDevice) -> None:
    assert lo.name == "lo"
    assert lo.mtu == 65536
    assert lo.kind is LinkKind.IP
    assert lo.mac is None
    assert lo.dropped == 0


def test_frames_come_back_intact_and_in_order(lo: LoopbackDevice) -> None:
    frames = [bytes([i]) * (i + 1) for i in range(50)]
    for f in frames:
        lo.write(f)
    assert lo.read_batch() == frames
    assert lo.read_batch() == []


def test_accepts_bytearray_and_memoryview_and_copies_them(lo: LoopbackDevice) -> None:
    buf = bytearray(b"abcdef")
    lo.write(buf)
    lo.write(memoryview(buf)[1:3])
    buf[:] = b"XXXXXX"  # the writer reuses its buffer at once
    got = lo.read_batch()
    assert got == [b"abcdef", b"bc"]
    # Copies, marked as the stack's own frames whose checksums TCP need not verify again.
    assert all(type(f) is TrustedFrame for f in got)


def test_eventfd_readable_exactly_while_frames_wait(lo: LoopbackDevice) -> None:
    fd = lo.fileno()
    assert not readable(fd)
    lo.write(b"one")
    assert readable(fd)
    lo.write(b"two")
    lo.write(b"three")
    assert readable(fd)
    assert lo.read_batch(limit=2) == [b"one", b"two"]
    assert readable(fd)  # one frame still waits
    assert lo.read_batch(limit=2) == [b"three"]
    assert not readable(fd)
    lo.write(b"four")
    assert readable(fd)
    assert lo.read_batch() == [b"four"]
    assert not readable(fd)


def test_queue_cap_drops_and_counts() -> None:
    dev = LoopbackDevice(queue_limit=3)
    try:
        for i in range(5):
            dev.write(bytes([i]))
        assert dev.dropped == 2
        assert dev.pending == 3
        assert dev.read_batch() == [b"\x00", b"\x01", b"\x02"]  # the oldest are kept
        dev.write(b"\x09")  # room again
        assert dev.read_batch() == [b"\x09"]
        assert dev.dropped == 2
    finally:
        dev.close()


def test_default_cap_is_1000() -> None:
    dev = LoopbackDevice()
    try:
        for _ in range(1005):
            dev.write(b"x")
        assert dev.dropped == 5
        assert len(dev.read_batch(limit=5000)) == 1000
    finally:
        dev.close()


def test_close_is_idempotent_and_final() -> None:
    dev = LoopbackDevice()
    dev.write(b"pending")
    dev.close()
    dev.close()
    assert dev.read_batch() == []
    with pytest.raises(OSError) as exc:
        dev.write(b"x")
    assert exc.value.errno == errno.EBADF
    with pytest.raises(OSError):
        dev.fileno()


def test_invalid_queue_limit() -> None:
    with pytest.raises(ValueError, match="queue limit"):
        LoopbackDevice(queue_limit=0)
