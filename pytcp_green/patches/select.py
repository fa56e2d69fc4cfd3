"""``select.select``, ``select.poll`` and ``selectors`` over stack sockets and real fds together.

A stack socket is recognised either as a socket object or by its descriptor
(:func:`pytcp_green.patches._stack_backend.handle_for_fd`), so code that registers plain integers
(asyncio, selectors) works too.  Its readiness comes from the core's poll mask; a real fd's
from the kernel (the original ``select``/``poll`` with a zero timeout).  To wait, the calling
greenlet sleeps on one gevent Event that both the stack sockets' readiness observers and
gevent io watchers on the real fds set; then everything is checked again.  Nothing spins.

``select.epoll`` (epoll(7)), which gevent removes, is kept: the real fds go into a real kernel epoll
(so their edge-triggered and one-shot behaviour is the kernel's, and ``fileno()`` is a real epoll
fd), the stack sockets stay in the Python object, with EPOLLONESHOT as Linux has it and EPOLLET on
the core's wake-ups: a stack socket reports again when it becomes ready again (read to EAGAIN, then
more data), not, as Linux's do, for more data onto unread data - which no correct ET reader waits for.
``kqueue``, ``kevent`` and ``devpoll`` are removed, as gevent does; ``selectors.DefaultSelector`` is
the poll-based selector on this ``poll``.

Two kinds of kernel fd need care.  gevent's ``os.close`` defers the close(2) to the hub's next loop
turn (so that watchers on the fd see it go); until then the fd is still open, a pipe's other end
sees no EOF, and with nothing else to wake the hub the turn never comes.  Every call here first lets
such closes finish, so that, as on Linux, a descriptor ``os.close`` returned for is closed: poll()
reports POLLNVAL, select() raises EBADF, the pipe's reader sees EOF.  A regular file or directory
has no poll method in Linux (poll(2) answers POLLIN|POLLOUT at once, epoll_ctl refuses it with EPERM):
libev fakes endless events for it, so no watcher is put on one; nothing about it can change.

A zero timeout that finds nothing ready first lets the hub turn once and checks again: the kernel
takes in packets beside the caller (its loopback even inside the sender's send), the stack only when
the hub runs its device readers, so a program polling with a zero timeout while it has other work
(asyncio's loop with callbacks ready) would otherwise never see the handshake's last ACK reach a
listener, nor data arrive.
"""

from __future__ import annotations

import errno
import math
import operator
import os
import stat
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.os
from gevent.event import Event
from gevent.hub import get_hub
from gevent.select import select as _gevent_select  # imported now, while select.select is the original

from pytcp_green.patches import _state
from pytcp_green.patches._stack_backend import Handle, handle_for_fd
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


def _finish_deferred_closes() -> None:
    """Let the hub run the close(2)s gevent's ``os.close`` deferred (gevent waits the same way when a
    number is closed twice), so that readiness is asked of the descriptors the caller believes open."""
    pending = getattr(gevent.os, "_closing_fd_to_event", None)  # gevent >= 25.8; absent before
    if not pending:
        return
    for _turn in range(_CLOSE_TURNS):
        if not _hub_turn() or not pending:
            return


_CLOSE_TURNS = 3  # the check watcher doing the close runs in the first turn; a bound, not a retry policy


def _hub_turn() -> bool:
    """Let the hub run its loop once without blocking (device readers, due timers, gevent's deferred
    closes), then come back; False where the caller is the hub itself, which cannot wait on itself."""
    hub = get_hub()
    if gevent.getcurrent() is hub:
        return False
    with hub.loop.idle() as watcher:  # idle: it fires once nothing else is pending, and no turn blocks
        hub.wait(watcher)
    return True


def _has_no_poll(fd: int) -> bool:
    """True for a regular file or directory (always ready to the kernel's poll, refused by epoll)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


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
            if events and not _has_no_poll(fd):
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


def _poll_until(seconds: float | None, check: Callable[[], list[tuple[int, int]]],
                wait: Callable[[float | None], None]) -> list[tuple[int, int]]:
    """poll()'s and epoll.poll()'s loop: ``check`` until it finds something or ``seconds`` (None: no
    limit) pass, calling ``wait(remaining)`` between rounds."""
    deadline = None if seconds is None else _now() + seconds
    waited = False
    while True:
        ready = check()
        if ready:
            _yield_once(waited)
            return ready
        remaining = None if deadline is None else deadline - _now()
        if remaining is not None and remaining <= 0:
            if waited or not _hub_turn():  # a zero timeout gets one hub turn first: see the module docstring
                return []
            waited = True
            continue
        wait(remaining)
        waited = True


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
    _finish_deferred_closes()
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
        # Exceptional: urgent data (POLLPRI), as Linux's select(2) reports it.
        out_x = [o for o, fd, h in classified[2]
                 if (not h.closed and h.poll_mask() & POLLPRI if h is not None else fd in ready_x)]
        if out_r or out_w or out_x:
            _yield_once(waited)
            return out_r, out_w, out_x
        remaining = None if deadline is None else deadline - _now()
        if remaining is not None and remaining <= 0:
            if waited or not _hub_turn():  # as _poll_until
                return [], [], []
            waited = True
            continue
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
    _running: bool

    def __init__(self) -> None:
        raise TypeError(f"cannot create '{type(self).__module__}.{type(self).__name__}' instances")

    @classmethod
    def _new(cls) -> PollObject:
        self = cls.__new__(cls)
        self._fds = {}
        self._running = False
        return self

    def register(self, fd: Any, eventmask: int = POLLIN | POLLPRI | POLLOUT) -> None:
        self._fds[_fileno_of(fd)] = _event_mask(eventmask)

    def modify(self, fd: Any, eventmask: int) -> None:
        number = _fileno_of(fd)
        mask = _event_mask(eventmask)
        if number not in self._fds:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        self._fds[number] = mask

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
            except OverflowError:
                raise OverflowError("timeout is too large") from None
            if timeout_ms > _INT_MAX:  # C's poll(2) takes an int of milliseconds
                raise OverflowError("timeout is too large")
            seconds: float | None = None if timeout_ms < 0 else math.ceil(timeout_ms) / 1000.0
        else:
            seconds = None
        if self._running:  # as CPython's: one poll() per object at a time (another greenlet's)
            raise RuntimeError("concurrent poll() invocation")
        original_poll = _original("poll")
        self._running = True
        try:
            _finish_deferred_closes()
            return _poll_until(seconds, lambda: self._check(original_poll), self._wait_round)
        finally:
            self._running = False

    def _wait_round(self, remaining: float | None) -> None:
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


_INT_MAX = 2**31 - 1


def _event_mask(eventmask: Any) -> int:
    """An event mask as CPython's poll takes it: an unsigned short (ValueError below 0, OverflowError above)."""
    mask = operator.index(eventmask)
    if mask < 0:
        raise ValueError("value must be positive")
    if mask > 0xFFFF:
        raise OverflowError("Python int too large for C unsigned short")
    return mask


def poll() -> PollObject:
    """Like ``select.poll``: a function (as in the stdlib) returning a new polling object."""
    return PollObject._new()


# -- epoll --------------------------------------------------------------------------------------------
EPOLLIN, EPOLLPRI, EPOLLOUT, EPOLLERR, EPOLLHUP = POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP
EPOLLRDNORM, EPOLLWRNORM = POLLRDNORM, POLLWRNORM
EPOLLONESHOT = 1 << 30
EPOLLET = 1 << 31
_FD_SETSIZE = 1024


class _Watched:
    """One stack socket in an epoll set.  ``pending`` is Linux's "on the ready list": set when the
    item is added or modified and on every wake-up of the socket, cleared when an edge-triggered
    item is reported; a one-shot item is ``disarmed`` once reported, until ``modify``."""

    __slots__ = ("disarmed", "events", "handle", "pending")

    def __init__(self, handle: Handle, events: int) -> None:
        self.handle = handle
        self.events = events
        self.pending = True
        self.disarmed = False

    def wake(self) -> None:
        self.pending = True

    def revents(self) -> int:
        """The events to report now (0: none), updating the edge/one-shot state as ep_send_events does."""
        if self.disarmed or (self.events & EPOLLET and not self.pending):
            return 0
        mask = self.handle.poll_mask()
        if mask & POLLIN:
            mask |= POLLRDNORM
        if mask & POLLOUT:
            mask |= POLLWRNORM
        revents = mask & (self.events | POLLERR | POLLHUP)
        if revents:
            self.pending = False
            self.disarmed = bool(self.events & EPOLLONESHOT)
        return revents


class _StackSet(dict[int, _Watched]):
    """The stack sockets of one epoll set, shared by the objects on its kernel epoll fd (``fromfd``)."""


# kernel epoll fd -> the stack part of its set, while an object of ours holds it
_stack_sets: weakref.WeakValueDictionary[int, _StackSet] = weakref.WeakValueDictionary()


class epoll:  # the stdlib's name, lower case
    """Like ``select.epoll``: stack sockets and real fds in one set; ``poll(timeout)`` takes seconds.

    A stack socket closed while registered leaves the set, as a closed file leaves Linux's.
    ``fromfd(fd)`` wraps the same kernel epoll, as CPython's does, and shares the stack sockets
    registered through any object of ours on that fd (they are the set's, not one object's).
    """

    def __init__(self, sizehint: int = -1, flags: int = 0) -> None:
        # The kernel's epoll checks the arguments as CPython does and holds the real fds.
        self._adopt(_original("epoll")(sizehint, flags), _StackSet())

    def _adopt(self, kernel: Any, stack: _StackSet) -> None:
        self._kernel = kernel
        self._stack = stack
        _stack_sets[int(kernel.fileno())] = stack

    @classmethod
    def fromfd(cls, fd: int) -> epoll:
        kernel = _original("epoll").fromfd(fd)
        self = cls.__new__(cls)
        shared = _stack_sets.get(fd)
        self._adopt(kernel, _StackSet() if shared is None else shared)
        return self

    @property
    def closed(self) -> bool:
        return bool(self._kernel.closed)

    def close(self) -> None:
        if not self.closed and _stack_sets.get(self.fileno()) is self._stack:
            del _stack_sets[self.fileno()]  # the number may be reused by another epoll
        for fd in list(self._stack):
            self._forget(fd)
        self._kernel.close()

    def fileno(self) -> int:
        return int(self._kernel.fileno())

    def __enter__(self) -> epoll:
        self._open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed epoll object")

    def _live_entry(self, fd: int) -> _Watched | None:
        """The stack entry of ``fd``, dropping it first if its socket was closed (the number may be reused)."""
        entry = self._stack.get(fd)
        if entry is not None and (entry.handle.closed or handle_for_fd(fd) is not entry.handle):
            self._forget(fd)
            return None
        return entry

    def _forget(self, fd: int) -> None:
        entry = self._stack.pop(fd)
        entry.handle.green.remove_observer(entry.wake)

    def register(self, fd: Any, eventmask: int = EPOLLIN | EPOLLPRI | EPOLLOUT) -> None:
        self._open()
        number = _fileno_of(fd)
        handle = stack_readiness(number)
        if handle is None:
            _finish_deferred_closes()  # a number os.close() returned for is EBADF, as in Linux
            self._kernel.register(number, eventmask)
            return
        if self._live_entry(number) is not None:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
        entry = _Watched(handle, int(eventmask) & 0xFFFFFFFF)
        handle.green.add_observer(entry.wake)
        self._stack[number] = entry

    def modify(self, fd: Any, eventmask: int) -> None:
        self._open()
        number = _fileno_of(fd)
        if stack_readiness(number) is None:
            self._kernel.modify(number, eventmask)
            return
        entry = self._live_entry(number)
        if entry is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        entry.events = int(eventmask) & 0xFFFFFFFF
        entry.pending, entry.disarmed = True, False  # re-armed and checked again, as EPOLL_CTL_MOD does

    def unregister(self, fd: Any) -> None:
        self._open()
        number = _fileno_of(fd)
        if stack_readiness(number) is None:
            self._kernel.unregister(number)
            return
        if self._live_entry(number) is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        self._forget(number)

    def _ready(self, maxevents: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for fd in list(self._stack):
            entry = self._live_entry(fd)
            if entry is None:
                continue
            revents = entry.revents()
            if revents:
                out.append((fd, revents))
                if len(out) == maxevents:
                    return out
        # At most the room left: the kernel consumes edge-triggered and one-shot events it reports.
        out.extend(self._kernel.poll(0, maxevents - len(out)))
        return out

    def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
        self._open()
        seconds: float | None = None
        if timeout is not None:
            try:
                seconds = float(timeout)
            except (TypeError, ValueError):
                raise TypeError("timeout must be an integer or None") from None
            seconds = None if seconds < 0 else math.ceil(seconds * 1000) / 1000.0
        if maxevents == -1:
            maxevents = _FD_SETSIZE - 1
        elif maxevents < 1:
            raise ValueError(f"maxevents must be greater than 0, got {maxevents}")
        _finish_deferred_closes()
        return _poll_until(seconds, lambda: self._ready(maxevents), self._wait_round)

    def _wait_round(self, remaining: float | None) -> None:
        # The kernel's epoll fd polls readable while one of its fds has an event to report.
        _wait([e.handle for e in self._stack.values() if not e.disarmed], {self.fileno(): _EV_READ}, remaining)
        self._open()  # another greenlet may have closed it meanwhile


# What this module replaces in ``select`` (see :func:`pytcp_green.patches._state.patch_module`).
__implements__ = ["select", "poll", "epoll"]
__removes__ = ["kqueue", "kevent", "devpoll"]


def _will_patch(target: Any, items: list[str]) -> list[str]:
    # poll and epoll only where the platform has them (or had, before gevent removed them).
    saved = _state._gevent_saved().get("select", {})
    return [name for name in items if name == "select" or hasattr(target, name) or name in saved]
