"""Blocking, non-blocking and timeout semantics over the core's non-blocking sockets.

A core socket raises ``BlockingIOError`` when it cannot proceed and calls its ``waker`` when
that may have changed.  :class:`GreenSocket` retries the call each time the waker fires, with
a deadline taken from the socket's timeout (``None`` blocks, ``0`` raises at once, a float
raises ``TimeoutError('timed out')`` like the stdlib).  Only the waiting greenlet sleeps; the hub
and every other greenlet go on.

Three things may listen to a socket's readiness, all fed by the one waker:

* greenlets blocked in a call on this socket (one gevent ``Event`` per wait round, replaced on
  every wake, so a wake can never be lost to another waiter clearing a shared flag);
* *observers*: callables that ``select``/``poll`` emulation registers while it waits on many
  sockets at once;
* an optional *readiness fd* (:meth:`GreenSocket.fileno`): an eventfd that polls readable
  exactly while the socket is readable (data, a pending connection, EOF or an error) and is
  always writable.  It exists so code that hands ``fileno()`` to a real poller, or only wants a
  unique descriptor number, works; it is created on first use, because keeping it in step costs
  a syscall per readable/unreadable transition.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from typing import Any, TypeVar

from gevent.event import Event
from gevent.monkey import get_original

from pytcp_green.green.runtime import Runtime
from pytcp_green.stack.sockbase import POLLERR, POLLHUP, POLLIN, POLLOUT, Address, CoreSocket

T = TypeVar("T")

# After gevent patches ``os``, os.close defers the close to a later loop turn (for fds its watchers
# use).  Our readiness fds are ours alone and must be gone when close() returns, so use the real one.
_os_close: Callable[[int], None] = get_original("os", "close")

# What makes the readiness fd readable: what select(2) reports as readable on a kernel socket.
_READABLE_BITS = POLLIN | POLLERR | POLLHUP


def close_fd(fd: int) -> None:
    """Close a readiness fd now, even when gevent has patched ``os.close``."""
    _os_close(fd)


class _UseTimeout:
    """Sentinel type: 'use the socket's own timeout'."""


USE_TIMEOUT = _UseTimeout()
Timeout = float | None | _UseTimeout


class GreenSocket:
    """A gevent-blocking facade over one core socket (UDP or TCP)."""

    def __init__(self, runtime: Runtime, core: Any, timeout: float | None = None) -> None:
        self.runtime = runtime
        self.core = core
        self.timeout = timeout
        self._event: Event | None = None
        self._observers: list[Callable[[], None]] = []
        self._efd = -1
        self._efd_readable = False
        core.waker = self._wake

    # -- readiness -----------------------------------------------------------------------------------
    def _wake(self) -> None:
        event = self._event
        if event is not None:
            # Waiters hold this Event; the next wait round gets a fresh one, so set() is never undone.
            self._event = None
            event.set()
        if self._observers:
            for callback in tuple(self._observers):
                callback()
        if self._efd >= 0:
            self._sync_fd()

    def add_observer(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever readiness may have changed (until :meth:`remove_observer`)."""
        self._observers.append(callback)

    def remove_observer(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._observers.remove(callback)

    def poll_mask(self) -> int:
        return int(self.core.poll_mask())

    def _sync_fd(self) -> None:
        readable = bool(self.core.poll_mask() & _READABLE_BITS)
        if readable == self._efd_readable:
            return
        self._efd_readable = readable
        if readable:
            os.eventfd_write(self._efd, 1)
        else:
            with contextlib.suppress(BlockingIOError):  # someone else read it: already clear
                os.eventfd_read(self._efd)

    def fileno(self) -> int:
        """The readiness fd (an eventfd), created on first call; see the module docstring."""
        if self._efd < 0:
            self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._efd_readable = False
            self._sync_fd()
        return self._efd

    def has_fd(self) -> bool:
        return self._efd >= 0

    def release_fd(self) -> int:
        """Hand the readiness fd to the caller (``detach``): it is no longer ours to sync or close."""
        fd, self._efd = self._efd, -1
        return fd

    def adopt_fd(self, fd: int) -> None:
        """Take over a readiness fd released by :meth:`release_fd` (a socket re-made from ``fileno``)."""
        if self._efd >= 0 and self._efd != fd:
            close_fd(self._efd)
        self._efd = fd
        # Unknown state: drain it, then set it from the core's actual state.
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(fd)
        self._efd_readable = False
        self._sync_fd()

    def _close_fd(self) -> None:
        if self._efd >= 0:
            fd, self._efd = self._efd, -1
            close_fd(fd)

    # -- the one waiting loop ------------------------------------------------------------------------
    def deadline(self, timeout: Timeout = USE_TIMEOUT) -> float | None:
        """The absolute deadline for ``timeout`` (``None``: none; 0 means 'now', i.e. non-blocking)."""
        limit = self.timeout if isinstance(timeout, _UseTimeout) else timeout
        if limit is None:
            return None
        return self.runtime.now() + limit

    def call(self, op: Callable[[float], T], timeout: Timeout = USE_TIMEOUT) -> T:
        """Run ``op(now)`` until it does not raise BlockingIOError, within ``timeout``."""
        limit = self.timeout if isinstance(timeout, _UseTimeout) else timeout
        if limit == 0:
            return self.call_until(op, None, nonblocking=True)
        return self.call_until(op, None if limit is None else self.runtime.now() + limit)

    def call_until(self, op: Callable[[float], T], deadline: float | None, *, nonblocking: bool = False) -> T:
        """Run ``op(now)`` until it succeeds; BlockingIOError if ``nonblocking``, TimeoutError past ``deadline``."""
        runtime = self.runtime
        while True:
            now = runtime.now()
            try:
                result = op(now)
            except BlockingIOError:
                if nonblocking:
                    runtime.kick(now)
                    raise
                # The Event exists before kick(), which can change readiness (the loopback delivers
                # within it) and so wake this socket; no greenlet switch happens in between.
                event = self._event
                if event is None:
                    event = self._event = Event()
                runtime.kick(now)
                if deadline is None:
                    event.wait()
                else:
                    remaining = deadline - runtime.now()
                    if remaining <= 0:
                        raise TimeoutError("timed out") from None
                    event.wait(remaining)
                continue
            except BaseException:
                runtime.kick(now)
                raise
            runtime.kick(now)
            if self._efd >= 0:
                self._sync_fd()  # a recv/accept may have made the socket unreadable without a wake
            return result

    # Backwards-compatible name for callers of the first version.
    _call = call

    def wait_for(self, mask: int, timeout: Timeout = USE_TIMEOUT) -> int:
        """Block until ``poll_mask() & (mask|POLLERR)`` or the timeout; returns the bits that held."""

        def check(now: float) -> int:
            got = int(self.core.poll_mask()) & (mask | POLLERR | POLLHUP)
            if not got:
                raise BlockingIOError(errno.EAGAIN, "not ready")
            return got

        return self.call(check, timeout)

    # -- socket calls --------------------------------------------------------------------------------
    def bind(self, addr: Address) -> None:
        self.core.bind(addr)

    def listen(self, backlog: int = 128) -> None:
        self.core.listen(backlog)
        self.runtime.kick()

    def connect(self, addr: Address, timeout: Timeout = USE_TIMEOUT) -> None:
        """Connect; for TCP wait for the handshake (EINPROGRESS only when non-blocking)."""
        limit = self.timeout if isinstance(timeout, _UseTimeout) else timeout
        now = self.runtime.now()
        try:
            self.core.connect(addr, now)
        except BlockingIOError as exc:
            self.runtime.kick(now)
            if exc.errno != errno.EINPROGRESS or limit == 0:
                raise
            try:
                self.wait_for(POLLOUT, limit)
            except TimeoutError:
                raise TimeoutError("timed out") from None
            # As Linux's connect after its wait: 0 once connected, else the error (and the socket is
            # disconnected, ready for another connect).
            self.core.connect(addr, self.runtime.now())
            return
        finally:
            if self._efd >= 0:
                self._sync_fd()
        self.runtime.kick(now)

    def accept(self, timeout: Timeout = USE_TIMEOUT) -> tuple[GreenSocket, Address]:
        core, addr = self.call(self.core.accept, timeout)
        return GreenSocket(self.runtime, core, self.timeout), addr

    def send(self, data: bytes | bytearray | memoryview, timeout: Timeout = USE_TIMEOUT) -> int:
        return self.call(lambda now: int(self.core.send(data, now)), timeout)

    def sendall(self, data: bytes | bytearray | memoryview, timeout: Timeout = USE_TIMEOUT) -> None:
        """Send everything; the timeout covers the whole call, not each partial send (as CPython)."""
        limit = self.timeout if isinstance(timeout, _UseTimeout) else timeout
        view = memoryview(data).cast("B")
        deadline = None if limit is None else self.runtime.now() + limit
        sent = 0
        total = len(view)
        core = self.core

        def send_rest(now: float) -> int:
            return int(core.send(view[sent:], now))

        while sent < total:
            sent += self.call_until(send_rest, deadline, nonblocking=limit == 0)

    def recv(self, bufsize: int, timeout: Timeout = USE_TIMEOUT, *, peek: bool = False) -> bytes:
        if peek:
            return self.call(lambda now: bytes(self.core.recv(bufsize, now, peek=True)), timeout)
        return self.call(lambda now: bytes(self.core.recv(bufsize, now)), timeout)

    def recv_into(self, buf: bytearray | memoryview, nbytes: int, timeout: Timeout = USE_TIMEOUT) -> int:
        """A stream socket's read straight into ``buf`` (no intermediate bytes object)."""
        return self.call(lambda now: int(self.core.recv_into(buf, nbytes, now)), timeout)

    def sendto(self, data: bytes | bytearray | memoryview, addr: Address | None = None,
               timeout: Timeout = USE_TIMEOUT) -> int:
        return self.call(lambda now: int(self.core.sendto(data, addr, now)), timeout)

    def recvfrom(self, bufsize: int, timeout: Timeout = USE_TIMEOUT, *, peek: bool = False) -> tuple[bytes, Address]:
        if peek:
            return self.call(lambda now: self.core.recvfrom(bufsize, now, peek=True), timeout)  # type: ignore[no-any-return]
        return self.call(lambda now: self.core.recvfrom(bufsize, now), timeout)  # type: ignore[no-any-return]

    def shutdown(self, how: int) -> None:
        try:
            self.core.shutdown(how, self.runtime.now())
        finally:
            self.runtime.kick()
            if self._efd >= 0:
                self._sync_fd()

    def close(self) -> None:
        try:
            self.core.close(self.runtime.now())
        finally:
            self.runtime.kick()
            self._close_fd()
            self._wake()  # blocked greenlets retry and meet EBADF; select observers re-check

    def getsockname(self) -> Address:
        result: Address = self.core.getsockname()
        return result

    def getpeername(self) -> Address:
        result: Address = self.core.getpeername()
        return result

    def take_error(self) -> int:
        return int(self.core.take_error())

    def readable(self) -> bool:
        return bool(self.core.poll_mask() & POLLIN)

    @property
    def raw(self) -> CoreSocket:
        core: CoreSocket = self.core
        return core
