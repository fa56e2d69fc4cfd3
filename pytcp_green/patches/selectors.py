"""The patched ``selectors`` module: the poll and epoll selectors over :mod:`pytcp_green.patches.select`.

``EpollSelector`` stays (gevent removes it) on our ``select.epoll``; as gevent does, the kqueue and
devpoll selectors are removed, and ``DefaultSelector`` becomes :class:`selectors.PollSelector`,
whose ``poll`` is ours.
"""

from __future__ import annotations

import selectors as _stdselectors
from types import ModuleType
from typing import Any

from pytcp_green.patches import _state
from pytcp_green.patches.select import epoll, poll, select

# What this module replaces in ``selectors`` (see :func:`pytcp_green.patches._state.patch_module`).
__implements__ = ["DefaultSelector"]
__removes__ = ["KqueueSelector", "DevpollSelector"]

DefaultSelector = _stdselectors.PollSelector


def _selector_select(self: Any, r: Any, w: Any, x: Any, timeout: float | None = None) -> Any:
    return select(r, w, x, timeout)


def _did_patch(target: ModuleType) -> None:
    # The selector classes captured select.poll/select.select at import time: point them at ours.
    target.PollSelector._selector_cls = staticmethod(poll)
    target.SelectSelector._select = _selector_select
    # gevent removed EpollSelector: put the stdlib's class back, on our epoll.
    epoll_selector = _state.get_original("selectors", "EpollSelector")
    epoll_selector._selector_cls = epoll
    if not hasattr(target, "EpollSelector"):
        _state.patch_item(target, "EpollSelector", epoll_selector)
