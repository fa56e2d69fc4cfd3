"""The patched ``selectors`` module: the poll-based selector over :mod:`pytcp_green.patches.select`.

As gevent does, the epoll/kqueue/devpoll selectors are removed rather than half-emulated, and
``DefaultSelector`` becomes :class:`selectors.PollSelector`, whose ``poll`` is ours.
"""

from __future__ import annotations

import selectors as _stdselectors
from types import ModuleType
from typing import Any

from pytcp_green.patches.select import poll, select

# What this module replaces in ``selectors`` (see :func:`pytcp_green.patches._state.patch_module`).
__implements__ = ["DefaultSelector"]
__removes__ = ["EpollSelector", "KqueueSelector", "DevpollSelector"]

DefaultSelector = _stdselectors.PollSelector


def _selector_select(self: Any, r: Any, w: Any, x: Any, timeout: float | None = None) -> Any:
    return select(r, w, x, timeout)


def _did_patch(target: ModuleType) -> None:
    # The selector classes captured select.poll/select.select at import time: point them at ours.
    target.PollSelector._selector_cls = staticmethod(poll)
    target.SelectSelector._select = _selector_select
