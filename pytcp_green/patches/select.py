"""``select.select``, ``select.poll`` and ``selectors`` over stack sockets and real fds together.

A stack socket is recognised either as a socket object or by its descriptor
(:func:`pytcp_green.patches._stack_backend.handle_for_fd`), so code that registers plain integers
(asyncio, selectors) works too.  Its readiness comes from the core's poll mask; a real fd's
from the kernel (the original ``select``/``poll`` with a zero timeout).  To wait, the calling
greenlet sleeps on one gevent Event that both the stack sockets' readiness observers and
gevent io watchers on the real fds set; then everything is checked again.  Nothing spins.

As gevent does, ``epoll``, ``kqueue``, ``kevent`` and ``devpoll`` are removed rather than
half-emulated, and ``selectors.DefaultSelector`` becomes a poll-based selector on this ``poll``.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Iterable
from typing import Any

import gevent
from gevent.event import Event
from gevent.hub import get_hub
from gevent.select import select as _gevent_select  # imported now, while select.select is the original

from pytcp_green.patches import _state
from pytcp_green.patches._stack_backend import Handle
from pytcp_green.patches.socket import stack_readiness
from pytcp_green.stack.sockbase import POLLERR, POLLHUP, POLLIN, POLLOUT, POLLPRI

POLLNVAL = 0x020
POLLRDNORM = 0x040
POLLWRNORM = 0x100
_EV_READ = 1
_EV_WRITE = 2

error = OSError


def _original(name: str) -> Any:
    return _state.get_original("select", name)


def _fileno_of(obj: Any) -> int:
    if isinstance(obj, int) and not isinstance(obj, bool):
        fd = obj
    else:
        method = getattr(obj, "fileno", None)
        if method is None:
            raise TypeError("argument must be an int, or have a fileno() method.")
        fd = method()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def _wait(handles: Iterable[Handle], kernel: dict[int, int], timeout: float | None) -> None:
    """Sleep until a stack socket's readiness may have changed, a kernel fd polls ready, or timeout."""
    event = Event()
    wake = event.set
    observed: list[Handle] = []
    watchers: list[Any] = []
    loop = get_hub().loop
    try:
        for handle in handles:
            if not handle.closed:
                handle.green.add_observer(wake)
                observed.append(handle)
        for fd, events in kernel.items():
            if events:
                watcher = loop.io(fd, events)
                watcher.start(wake)
                watchers.append(watcher)
        event.wait(timeout)
    finally:
        for handle in observed:
            handle.green.remove_observer(wake)
        for watcher in watchers:
            watcher.stop()
            watcher.close()


def _yield_once(waited: bool) -> None:
    """Let other greenlets (and the stack) run before answering, if this call has not waited yet.

    A loop that selects on an always-writable socket would otherwise never leave the current
    greenlet, starving its peer in the same process; gevent's own select does the same.
    """
    if not waited:
        gevent.sleep(0)


def _now() -> float:
    return float(get_hub().loop.now()) if not _state.has_host() else _state.current_host().runtime.now()


# -- select -------------------------------------------------------------------------------------------
def _live(items: Iterable[Any]) -> Iterable[Any]:
    """The objects of a select() argument; a list is read live, as CPython does, so a fileno() that
    shortens it ends the walk early instead of raising IndexError."""
    if isinstance(items, list):
        index = 0
        while index < len(items):
            yield items[index]
            index += 1
        return
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise TypeError("arguments 1-3 must be sequences")
    yield from list(items)


def select(rlist: Iterable[Any], wlist: Iterable[Any], xlist: Iterable[Any],
           timeout: float | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    """Like ``select.select``; stack sockets count as readable/writable from their poll mask."""
    if timeout is not None:
        try:
            timeout = float(timeout)
        except (TypeError, ValueError):
            raise TypeError("timeout must be a float or None") from None
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
    classified: list[list[tuple[Any, int, Handle | None]]] = []
    any_stack = False
    for items in (rlist, wlist, xlist):
        row = []
        for obj in _live(items):
            fd = _fileno_of(obj)  # each object's fileno() is called once, as CPython does
            handle = stack_readiness(fd)
            any_stack = any_stack or handle is not None
            row.append((obj, fd, handle))
        classified.append(row)
    if not any_stack:
        # Only kernel fds: gevent's select already does this cooperatively (given the numbers, so
        # that it does not call fileno() again); the objects come back in their lists' order.
        ready = [set(fds) for fds in _gevent_select(*([fd for _o, fd, _h in row] for row in classified), timeout)]
        return ([o for o, fd, _h in classified[0] if fd in ready[0]],
                [o for o, fd, _h in classified[1] if fd in ready[1]],
                [o for o, fd, _h in classified[2] if fd in ready[2]])
    original_select = _original("select")
    kernel_r = sorted({fd for _o, fd, h in classified[0] if h is None})
    kernel_w = sorted({fd for _o, fd, h in classified[1] if h is None})
    kernel_x = sorted({fd for _o, fd, h in classified[2] if h is None})
    handles = {id(h): h for row in classified for _o, _fd, h in row if h is not None}
    deadline = None if timeout is None else _now() + timeout
    waited = False
    while True:
        ready_r, ready_w, ready_x = (set(x) for x in original_select(kernel_r, kernel_w, kernel_x, 0)) \
            if (kernel_r or kernel_w or kernel_x) else (set(), set(), set())
        out_r = [o for o, fd, h in classified[0]
                 if (h.closed or h.poll_mask() & (POLLIN | POLLERR | POLLHUP) if h is not None else fd in ready_r)]
        out_w = [o for o, fd, h in classified[1]
                 if (h.closed or h.poll_mask() & (POLLOUT | POLLERR | POLLHUP) if h is not None else fd in ready_w)]
        out_x = [o for o, fd, h in classified[2] if h is None and fd in ready_x]
        if out_r or out_w or out_x:
            _yield_once(waited)
            return out_r, out_w, out_x
        remaining = None if deadline is None else deadline - _now()
        if remaining is not None and remaining <= 0:
            return [], [], []
        kernel: dict[int, int] = {}
        for fd in kernel_r:
            kernel[fd] = kernel.get(fd, 0) | _EV_READ
        for fd in kernel_x:
            kernel[fd] = kernel.get(fd, 0) | _EV_READ
        for fd in kernel_w:
            kernel[fd] = kernel.get(fd, 0) | _EV_WRITE
        _wait(handles.values(), kernel, remaining)
        waited = True


# -- poll ---------------------------------------------------------------------------------------------
class PollObject:
    """Like the object ``select.poll()`` returns; ``poll(timeout)`` takes milliseconds (None/negative: forever).

    As the stdlib's, the type cannot be instantiated directly: :func:`poll` makes them.
    """

    _fds: dict[int, int]

    def __init__(self) -> None:
        raise TypeError(f"cannot create '{type(self).__module__}.{type(self).__name__}' instances")

    @classmethod
    def _new(cls) -> PollObject:
        self = cls.__new__(cls)
        self._fds = {}
        return self

    def register(self, fd: Any, eventmask: int = POLLIN | POLLPRI | POLLOUT) -> None:
        self._fds[_fileno_of(fd)] = int(eventmask) & 0xFFFF

    def modify(self, fd: Any, eventmask: int) -> None:
        number = _fileno_of(fd)
        if number not in self._fds:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        self._fds[number] = int(eventmask) & 0xFFFF

    def unregister(self, fd: Any) -> None:
        del self._fds[_fileno_of(fd)]

    def _check(self, original_poll: Any) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        kernel: dict[int, int] = {}
        for fd, events in self._fds.items():
            handle = stack_readiness(fd)
            if handle is None:
                kernel[fd] = events
                continue
            if handle.closed:
                out.append((fd, POLLNVAL))
                continue
            mask = handle.poll_mask()
            if mask & POLLIN:
                mask |= POLLRDNORM
            if mask & POLLOUT:
                mask |= POLLWRNORM
            revents = mask & (events | POLLERR | POLLHUP)
            if revents:
                out.append((fd, revents))
        if kernel:
            kp = original_poll()
            for fd, events in kernel.items():
                kp.register(fd, events)
            out.extend(kp.poll(0))
        return out

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        if timeout is not None:
            try:
                timeout_ms = float(timeout)
            except (TypeError, ValueError):
                raise TypeError("timeout must be an integer or None") from None
            seconds: float | None = None if timeout_ms < 0 else math.ceil(timeout_ms) / 1000.0
        else:
            seconds = None
        original_poll = _original("poll")
        deadline = None if seconds is None else _now() + seconds
        waited = False
        while True:
            ready = self._check(original_poll)
            if ready:
                _yield_once(waited)
                return ready
            remaining = None if deadline is None else deadline - _now()
            if remaining is not None and remaining <= 0:
                return []
            handles = []
            kernel: dict[int, int] = {}
            for fd, events in self._fds.items():
                handle = stack_readiness(fd)
                if handle is not None:
                    handles.append(handle)
                    continue
                ev = (_EV_READ if events & (POLLIN | POLLPRI | POLLRDNORM) else 0) | \
                     (_EV_WRITE if events & (POLLOUT | POLLWRNORM) else 0)
                kernel[fd] = ev or _EV_READ  # errors/hang-ups still wake a read watcher
            _wait(handles, kernel, remaining)
            waited = True


def poll() -> PollObject:
    """Like ``select.poll``: a function (as in the stdlib) returning a new polling object."""
    return PollObject._new()


# What this module replaces in ``select`` (see :func:`pytcp_green.patches._state.patch_module`).
__implements__ = ["select", "poll"]
__removes__ = ["epoll", "kqueue", "kevent", "devpoll"]


def _will_patch(target: Any, items: list[str]) -> list[str]:
    # poll only where the platform has one (or had, before gevent removed it).
    if hasattr(target, "poll") or "poll" in _state._gevent_saved().get("select", {}):
        return items
    return [name for name in items if name != "poll"]
