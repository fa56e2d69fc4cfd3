"""Blocking, non-blocking and timeout semantics over the core's non-blocking sockets.

A core socket raises ``BlockingIOError`` when it cannot proceed and calls its ``waker`` when
that may have changed.  :class:`GreenSocket` retries the call each time the waker fires, with
the socket's timeout as the deadline (``None`` blocks, ``0`` raises at once, a float raises
``TimeoutError('timed out')`` like the stdlib).  Only the waiting greenlet sleeps; the hub and
every other greenlet go on.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any, TypeVar

from gevent.event import Event

from pytcp_green.green.runtime import Runtime
from pytcp_green.stack.sockbase import POLLERR, POLLIN, POLLOUT, Address, CoreSocket, oserror

T = TypeVar("T")


class GreenSocket:
    """A gevent-blocking facade over one core socket (UDP or TCP)."""

    def __init__(self, runtime: Runtime, core: Any, timeout: float | None = None) -> None:
        self.runtime = runtime
        self.core = core
        self.timeout = timeout
        self._ready = Event()
        self._waiting = 0
        core.waker = self._wake

    def _wake(self) -> None:
        if self._waiting:
            self._ready.set()

    # -- the one waiting loop ------------------------------------------------------------------------
    def _call(self, op: Callable[[float], T], timeout: float | object | None = None) -> T:
        limit = self.timeout if timeout is None else timeout
        runtime = self.runtime
        deadline: float | None = None
        while True:
            self._ready.clear()
            now = runtime.now()
            try:
                result = op(now)
            except BlockingIOError:
                runtime.kick(now)
                if limit == 0:
                    raise
                if limit is not None:
                    assert isinstance(limit, (int, float))
                    if deadline is None:
                        deadline = now + limit
                    remaining = deadline - runtime.now()
                    if remaining <= 0:
                        raise TimeoutError("timed out") from None
                    self._wait(remaining)
                else:
                    self._wait(None)
                continue
            runtime.kick(now)
            return result

    def _wait(self, timeout: float | None) -> None:
        self._waiting += 1
        try:
            self._ready.wait(timeout)
        finally:
            self._waiting -= 1

    def wait_for(self, mask: int, timeout: float | None) -> int:
        """Block until ``poll_mask() & (mask|POLLERR)`` or the timeout; returns the mask that held."""

        def check(now: float) -> int:
            got = int(self.core.poll_mask()) & (mask | POLLERR)
            if not got:
                raise BlockingIOError(errno.EAGAIN, "not ready")
            return got

        return self._call(check, timeout if timeout is not None else None)

    # -- socket calls --------------------------------------------------------------------------------
    def bind(self, addr: Address) -> None:
        self.core.bind(addr)

    def listen(self, backlog: int = 128) -> None:
        self.core.listen(backlog)
        self.runtime.kick()

    def connect(self, addr: Address) -> None:
        now = self.runtime.now()
        try:
            self.core.connect(addr, now)
        except BlockingIOError as exc:
            if exc.errno != errno.EINPROGRESS:
                raise
            self.runtime.kick(now)
            if self.timeout == 0:
                raise
            self.wait_for(POLLOUT, self.timeout)
            code = self.core.take_error()
            if code:
                raise oserror(code) from None
            return
        self.runtime.kick(now)

    def accept(self) -> tuple[GreenSocket, Address]:
        core, addr = self._call(self.core.accept)
        return GreenSocket(self.runtime, core, self.timeout), addr

    def send(self, data: bytes | bytearray | memoryview) -> int:
        return self._call(lambda now: int(self.core.send(data, now)))

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            sent += self.send(view[sent:])

    def recv(self, bufsize: int) -> bytes:
        return self._call(lambda now: bytes(self.core.recv(bufsize, now)))

    def sendto(self, data: bytes | bytearray | memoryview, addr: Address | None = None) -> int:
        return self._call(lambda now: int(self.core.sendto(data, addr, now)))

    def recvfrom(self, bufsize: int) -> tuple[bytes, Address]:
        result: tuple[bytes, Address] = self._call(lambda now: self.core.recvfrom(bufsize, now))
        return result

    def shutdown(self, how: int) -> None:
        self.core.shutdown(how, self.runtime.now())
        self.runtime.kick()

    def close(self) -> None:
        self.core.close(self.runtime.now())
        self.runtime.kick()

    def getsockname(self) -> Address:
        result: Address = self.core.getsockname()
        return result

    def readable(self) -> bool:
        return bool(self.core.poll_mask() & POLLIN)

    @property
    def raw(self) -> CoreSocket:
        core: CoreSocket = self.core
        return core
