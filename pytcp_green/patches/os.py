"""The patched ``os``: gevent's deferred ``close`` made to finish without help.

gevent's ``os.close`` (gevent >= 25.8, POSIX) does not close at once: it tells libev the fd is going
(so that its watchers see it) and closes it from a check watcher, which runs after the hub's next
blocking wait.  A hub with nothing else to do never comes out of that wait, so the close(2) never
happens: a pipe's reader waits for the EOF of a writer that ``os.close`` returned for (asyncio's
``connect_read_pipe`` over ``os.pipe()``, a subprocess's pipes).  Our ``close`` calls gevent's and,
when gevent deferred the close, starts an idle watcher, which keeps the next turn of the loop from
blocking, so the close happens within one turn, whatever else the hub is doing.  Linux's close(2)
(close(2): the descriptor is free once the call returns) is what callers of ``os.close`` expect.

``sendfile`` to a stack socket's descriptor (a stand-in eventfd, which the kernel's sendfile(2)
refuses) sends through the stack (:func:`pytcp_green.patches._sendfile.to_stack_socket`); any other
descriptor goes to the kernel's.
"""

from __future__ import annotations

import os as _stdos
from types import ModuleType
from typing import Any

import gevent.os
from gevent.hub import get_hub

from pytcp_green.patches import _sendfile, _state
from pytcp_green.patches._stack_backend import handle_for_fd

__implements__ = ["close", "sendfile"]

_closer: Any = None  # the idle watcher of the hub's loop that wakes it, made on first use


def _pending() -> dict[int, Any]:
    pending: dict[int, Any] = getattr(gevent.os, "_closing_fd_to_event", {})
    return pending


def close(fd: int) -> None:
    """Like ``os.close``; a close gevent deferred is done within the hub's next turn."""
    _gevent_close(fd)  # installed only where gevent has one (see _will_patch)
    if fd in _pending():
        _wake_hub()


def _wake_hub() -> None:
    global _closer
    loop = get_hub().loop
    if _closer is None or _closer.loop is not loop:
        _closer = loop.idle()
    if not _closer.active:
        _closer.start(_closer.stop)  # one turn is enough: the check watcher runs after its wait


_gevent_close: Any = getattr(gevent.os, "close", _stdos.close)


def sendfile(out_fd: int, in_fd: int, offset: int | None, count: int, *args: Any, **kwargs: Any) -> int:
    """Like ``os.sendfile``; into a stack socket when ``out_fd`` is one (headers/trailers/flags: the kernel's only)."""
    handle = handle_for_fd(out_fd)
    if handle is None or args or kwargs:
        return int(_state.get_original("os", "sendfile")(out_fd, in_fd, offset, count, *args, **kwargs))
    return _sendfile.to_stack_socket(handle, in_fd, offset, count)


def _will_patch(target: ModuleType, items: list[str]) -> list[str]:
    # close only over gevent's deferring one (gevent.monkey.patch_all() ran): the stdlib's closes at once.
    gevent_close = getattr(target, "close", None) is getattr(gevent.os, "close", None)
    return [name for name in items if hasattr(target, name) and (name != "close" or gevent_close)]
