"""A classic libpcap file writer, so every frame in and out can be opened in Wireshark or tshark.

The format is the original one (magic 0xa1b2c3d4, microsecond timestamps), which every tool
reads.  Writes go through a large buffer and are flushed only on :meth:`PcapWriter.flush` or
:meth:`PcapWriter.close`: a capture must not cost a syscall per frame on the hot path.
Timestamps are whatever clock the caller uses (wall or virtual); nothing here reads a clock.

:class:`PcapDevice` is the capture as middleware (as smoltcp's PcapWriter): it wraps a device and
records each frame that crosses it, as the wire carries it (super-segments as their segments,
partial checksums completed), so tshark reads the file without malformed frames or bad checksums.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from types import TracebackType
from typing import BinaryIO

from pytcp_green.link.device import Device, Frame, Middleware, PlainFrame
from pytcp_green.stack.interface import GsoFrame, LinkKind, TrustedFrame
from pytcp_green.stack.wire.offload import complete_tcp_checksum, segment_tcp

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # bare IPv4 or IPv6, told apart by the version nibble
DEFAULT_SNAPLEN = 262144  # what tcpdump and Wireshark use by default

_MAGIC_USEC = 0xA1B2C3D4
# Little-endian explicitly: readers detect the byte order from the magic, and a fixed order keeps
# files byte-identical across machines.
_FILE_HEADER = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
_RECORD_HEADER = struct.Struct("<IIII")  # ts_sec, ts_usec, incl_len, orig_len
_BUFFER_SIZE = 1 << 20


def linktype_for(kind: LinkKind) -> int:
    """The pcap link type for frames of a device of this kind."""
    return LINKTYPE_ETHERNET if kind is LinkKind.ETHERNET else LINKTYPE_RAW


class PcapWriter:
    """Write frames to ``path`` (truncated) as a libpcap capture of link type ``linktype``.

    Frames longer than ``snaplen`` are cut to it; the record keeps their original length.
    Usable as a context manager; :meth:`close` is idempotent.
    """

    def __init__(
        self, path: str | os.PathLike[str], linktype: int = LINKTYPE_ETHERNET, snaplen: int = DEFAULT_SNAPLEN
    ) -> None:
        if snaplen < 1:
            raise ValueError(f"snaplen must be positive, got {snaplen}")
        self.path = os.fspath(path)
        self.linktype = linktype
        self.snaplen = snaplen
        self.frames = 0
        self._file: BinaryIO | None = open(self.path, "wb", buffering=_BUFFER_SIZE)  # noqa: SIM115
        self._file.write(_FILE_HEADER.pack(_MAGIC_USEC, 2, 4, 0, 0, snaplen, linktype))

    @property
    def closed(self) -> bool:
        return self._file is None

    def write(self, frame: Frame, timestamp: float) -> None:
        """Append one frame captured at ``timestamp`` (seconds since the epoch, or any clock)."""
        f = self._file
        if f is None:
            raise ValueError(f"pcap {self.path}: write after close")
        view = memoryview(frame)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")  # a view of another item type: write its raw bytes
        length = len(view)
        captured = min(length, self.snaplen)
        # Round to the nearest microsecond once, in integers, so the carry into seconds is exact.
        usec = round(timestamp * 1_000_000)
        sec, usec = divmod(usec, 1_000_000)
        f.write(_RECORD_HEADER.pack(sec, usec, captured, length))
        f.write(view[:captured] if captured < length else view)
        self.frames += 1

    def write_as_wire(self, frame: Frame, timestamp: float, *, partial: bool = False) -> None:
        """Append ``frame`` as the wire carries it: a TSO super-segment as its segments, and a frame
        whose TCP checksum was left partial (received as a TrustedFrame, or sent with ``partial``
        over an interface where nobody checks it) with that checksum completed, so that a reader
        checking checksums (tshark) sees valid frames."""
        if type(frame) is GsoFrame:
            for piece in segment_tcp(frame, frame.l3, frame.gso_size):
                self.write(piece, timestamp)
        elif partial or type(frame) is TrustedFrame:
            self.write(complete_tcp_checksum(frame, 14 if self.linktype == LINKTYPE_ETHERNET else 0), timestamp)
        else:
            self.write(frame, timestamp)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PcapWriter {self.path} linktype={self.linktype} frames={self.frames}>"


class PcapDevice(Middleware):
    """``inner``, with every frame written to it and (with ``reads``) every frame read from it appended
    to ``writer`` at ``clock()``: each crossing once.  A device that hands back what is written to it
    (a loopback), or one end of a cable whose other end is captured too, is captured without ``reads``.
    Frames written to a device with checksum offload may hold the pseudo-header sum only: the capture
    completes them, but not a PlainFrame, whose checksum is whatever the frame carries (a corruption)."""

    def __init__(self, inner: Device, writer: PcapWriter, clock: Callable[[], float], *, reads: bool = True) -> None:
        super().__init__(inner)
        self.writer = writer
        self.clock = clock
        self.reads = reads

    def write(self, frame: Frame) -> None:
        partial = self.csum_offload and type(frame) is not PlainFrame
        self.writer.write_as_wire(frame, self.clock(), partial=partial)
        self.inner.write(frame)

    def read_batch(self, limit: int = 256) -> list[bytes]:
        frames = self.inner.read_batch(limit)
        if self.reads and frames:
            stamp = self.clock()
            for frame in frames:
                self.writer.write_as_wire(frame, stamp)
        return frames

    def __repr__(self) -> str:
        return f"<PcapDevice {self.writer.path} over {self.inner!r}>"
