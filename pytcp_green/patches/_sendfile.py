"""``socket.sendfile()`` and the stdlib socket class's private helpers behind it, over stack sockets.

CPython's ``socket.sendfile`` tries ``_sendfile_use_sendfile`` (``os.sendfile(2)``, which gives up with
``_GiveupOnSendfile`` when the file is not a regular file) and falls back to ``_sendfile_use_send``
(``file.read()`` and ``send()``).  A stack socket's descriptor is a stand-in, so ``os.sendfile`` cannot
reach the connection; the "sendfile" path here does what the kernel's does short of zero copy: it
reads the descriptor with ``os.pread`` at an explicit offset (the file position is left alone until
the end, as sendfile(2) leaves it) one block at a time, so a file of any size costs one block of
memory, and hands each block to the socket's private sendall hook (TLS encrypts it there).

``os.sendfile(out_fd, in_fd, offset, count)`` with a stack socket's descriptor as ``out_fd``
(asyncio's ``loop.sendfile`` calls it on the transport's socket) is :func:`to_stack_socket`: the same
pread(2) blocks, sent as sendfile(2) sends to a socket - what the send buffer takes now (a
non-blocking socket with a full buffer: EAGAIN; a blocking one waits for the first block), the count
of bytes sent returned, the file position moved only when ``offset`` is None.
"""

from __future__ import annotations

import errno
import io
import os
import socket as _stdsocket
from collections.abc import Callable
from typing import Any

from pytcp_green.patches._common import SOCK_STREAM
from pytcp_green.patches._stack_backend import Handle

GiveupOnSendfile: type[Exception] = _stdsocket._GiveupOnSendfile  # type: ignore[attr-defined]

BLOCK = 65536  # bytes read from the file and handed to the socket at a time
READ_BLOCK = 8192  # the stdlib's block for the read()/send() path


def check_params(file: Any, type: int, count: Any) -> None:
    """The stdlib's ``_check_sendfile_params``, with its messages."""
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if not type & SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")


def by_descriptor(file: Any, offset: int, count: int | None, timeout: float | None,
                  sendall: Callable[[Any], None]) -> int:
    """``_sendfile_use_sendfile``: pread(2) from ``file.fileno()`` block by block into ``sendall``.

    Gives up (``_GiveupOnSendfile``) where the stdlib's does: no descriptor, no fstat, or the first
    read failing (not a regular file); ``TypeError``/``OverflowError`` of a bad descriptor pass."""
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation) as err:
        raise GiveupOnSendfile(err) from None
    try:
        fsize = os.fstat(fileno).st_size
    except OSError as err:
        raise GiveupOnSendfile(err) from None
    if not fsize:
        return 0
    if timeout == 0:
        raise ValueError("non-blocking sockets are not supported")
    total = 0
    try:
        while count is None or total < count:
            want = BLOCK if count is None else min(BLOCK, count - total)
            try:
                block = os.pread(fileno, want, offset + total)
            except OSError as err:
                if total == 0:
                    raise GiveupOnSendfile(err) from None
                raise
            if not block:
                break  # end of file
            sendall(block)
            total += len(block)
        return total
    finally:
        if total > 0 and hasattr(file, "seek"):
            file.seek(offset + total)


def by_reading(file: Any, offset: int, count: int | None, timeout: float | None,
               send: Callable[[Any], int]) -> int:
    """``_sendfile_use_send``: ``file.read()`` and the socket's private send hook, as the stdlib's."""
    if timeout == 0:
        raise ValueError("non-blocking sockets are not supported")
    if offset:
        file.seek(offset)
    total = 0
    try:
        while True:
            want = READ_BLOCK if count is None else min(count - total, READ_BLOCK)
            if want <= 0:
                break
            data = memoryview(file.read(want))
            if not data:
                break  # end of file
            while data:
                try:
                    sent = send(data)
                except BlockingIOError:
                    continue
                total += sent
                data = data[sent:]
        return total
    finally:
        if total > 0 and hasattr(file, "seek"):
            file.seek(offset + total)


def to_stack_socket(handle: Handle, in_fd: int, offset: int | None, count: int) -> int:
    """``os.sendfile`` into the stack socket ``handle`` (see the module's docstring)."""
    if handle.closed:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    if handle.type != SOCK_STREAM:  # the kernel would send datagrams; no caller of ours wants that
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    start = os.lseek(in_fd, 0, os.SEEK_CUR) if offset is None else offset
    green = handle.green
    total = 0
    try:
        while total < count:
            block = os.pread(in_fd, min(BLOCK, count - total), start + total)
            if not block:
                break  # end of file
            try:
                # The first block waits as the socket's mode says; after it, only what fits now.
                sent = green.send(block) if total == 0 else green.send(block, 0.0)
            except BlockingIOError:
                if total == 0:
                    raise
                break
            total += sent
            if sent < len(block):
                break
        return total
    finally:
        if offset is None and total:
            os.lseek(in_fd, start + total, os.SEEK_SET)
