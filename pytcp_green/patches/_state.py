"""Bookkeeping shared by the patches: the running host, and what was patched with which original.

Originals are recorded in gevent's own table (``gevent.monkey.saved``, first value wins), so
``gevent.monkey.get_original("socket", "socket")`` and ``gevent.monkey.is_module_patched("socket")``
keep answering truthfully in a process patched by us, whether or not gevent patched first.
Our own record (:data:`patched`) tells what *pytcp_green* replaced.

Each module of ours that replaces a stdlib module declares it, as gevent's do (gevent/monkey.py,
``patch_module``), and :func:`patch_module` installs it from the declarations:

* ``__implements__``: the names of the stdlib module it replaces;
* ``__removes__``: names deleted from the stdlib module because they are not emulated (as gevent
  removes ``select.epoll``);
* ``_will_patch(target, items)`` (optional): the names to install after all, decided at patch time;
* ``_did_patch(target)`` (optional): fix-ups once the names are in place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from gevent import monkey as _gmonkey

if TYPE_CHECKING:
    from pytcp_green.host import Host

_MISSING = object()

# module name -> names pytcp_green replaced or removed there
patched: dict[str, set[str]] = {}

_host: Host | None = None
_host_lock = threading.Lock()


def _gevent_saved() -> dict[str, dict[str, Any]]:
    saved: dict[str, dict[str, Any]] = _gmonkey.saved
    return saved


def save_original(module: ModuleType, name: str, value: Any) -> None:
    """Remember ``value`` as the original of ``module.name`` unless an earlier original is known."""
    _gevent_saved().setdefault(module.__name__, {}).setdefault(name, value)


def patch_item(module: ModuleType, name: str, new: Any) -> None:
    old = getattr(module, name, _MISSING)
    if old is not _MISSING:
        save_original(module, name, old)
    else:
        # Still mark the module as patched for gevent's is_module_patched().
        _gevent_saved().setdefault(module.__name__, {})
    setattr(module, name, new)
    patched.setdefault(module.__name__, set()).add(name)


def remove_item(module: ModuleType, name: str) -> None:
    old = getattr(module, name, _MISSING)
    if old is _MISSING:
        return
    save_original(module, name, old)
    delattr(module, name)
    patched.setdefault(module.__name__, set()).add(name)


def patch_module(target: ModuleType, source: ModuleType) -> None:
    """Install what ``source`` declares it implements into ``target``, recording every original."""
    items: Sequence[str] = source.__implements__
    will: Callable[[ModuleType, Sequence[str]], Sequence[str]] | None = getattr(source, "_will_patch", None)
    if will is not None:
        items = will(target, items)
    for name in items:
        patch_item(target, name, getattr(source, name))
    for name in getattr(source, "__removes__", ()):
        remove_item(target, name)
    did: Callable[[ModuleType], None] | None = getattr(source, "_did_patch", None)
    if did is not None:
        did(target)


def get_original(module: str, name: str) -> Any:
    """The object ``module.name`` held before any patching (gevent's or ours)."""
    return _gmonkey.get_original(module, name)


def is_module_patched(module: str) -> bool:
    """True if pytcp_green replaced something in the stdlib module ``module``."""
    return module in patched


def is_object_patched(module: str, name: str) -> bool:
    return name in patched.get(module, ())


def current_host() -> Host:
    """The host (stack + runtime) the patched modules use; RuntimeError before :func:`patch_all`."""
    host = _host
    if host is None:
        raise RuntimeError("pytcp_green is not patched in: call pytcp_green.patch_all() first")
    return host


def set_host(host: Host | None) -> None:
    global _host
    _host = host


def has_host() -> bool:
    return _host is not None
