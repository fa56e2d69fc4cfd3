"""The drop-in: ``patch_all()`` makes every AF_INET socket of this process a pytcp_green socket.

Order of events in :func:`patch_all`:

1. ``gevent.monkey.patch_all()`` (unless ``gevent=False``): threads, time, subprocess… become
   cooperative, which the stack needs because it runs in the hub's thread;
2. a :class:`~pytcp_green.host.Host` is built from the keyword stack options, or from the
   ``PYTCP_GREEN_*`` environment when none are given (no options at all: only the loopback
   interface, 127.0.0.0/8, no TAP, no privileges);
3. our ``socket``, DNS, ``select``/``selectors`` (and ``ssl``) replacements are installed by
   :func:`patch_socket`, :func:`patch_dns`, :func:`patch_select` and :func:`patch_ssl` (each usable
   alone, as gevent's), from what each module of ours declares it implements; every original is
   recorded in gevent's own table so ``gevent.monkey.get_original()`` and
   ``gevent.monkey.is_module_patched()`` stay truthful.

Patching twice is harmless (the first host stays).  Modules that imported ``socket.socket``
(or ``create_connection``) *before* patching keep the object they hold: a warning names them.
C extensions that open their own sockets (psycopg2/libpq, grpc) cannot be captured at all;
importing one into a patched process warns.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import os as _os  # not "os": the package's attribute of that name is our patches/os.py once imported
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from pytcp_green.patches._state import (
    current_host,
    get_original,
    is_module_patched,
    is_object_patched,
)

__all__ = [
    "PatchWarning",
    "current_host",
    "get_original",
    "is_module_patched",
    "is_object_patched",
    "patch_all",
    "patch_dns",
    "patch_os",
    "patch_select",
    "patch_socket",
    "patch_ssl",
]


def stack_option_names() -> tuple[str, ...]:
    """The keyword stack options patch_all() takes: exactly StackOptions' fields (they grow over time)."""
    import dataclasses

    from pytcp_green.host import StackOptions

    return tuple(f.name for f in dataclasses.fields(StackOptions))


# Extensions that talk to the network from C, below Python's socket module.
BYPASSING_MODULES = {
    "psycopg2": "psycopg2 connects through libpq's own C sockets",
    "grpc": "grpc uses its own C-core sockets",
}


class PatchWarning(UserWarning):
    """Something pytcp_green's patching cannot do or cannot undo."""


def _warn(message: str) -> None:
    warnings.warn(message, PatchWarning, stacklevel=3)


# -- the stack ----------------------------------------------------------------------------------------
def _options_from(kwargs: dict[str, Any]) -> Any:
    from pytcp_green.host import StackOptions

    if not kwargs:
        return StackOptions.from_env()
    unknown = set(kwargs) - set(stack_option_names())
    if unknown:
        raise TypeError(f"patch_all() got unknown stack options: {', '.join(sorted(unknown))}")
    opts = dict(kwargs)
    for name in ("ip4", "ip6"):
        if isinstance(opts.get(name), str):
            opts[name] = [opts[name]]
    return StackOptions(**opts)


def _start_host(options: Any, seed: int | None) -> Any:
    from pytcp_green.host import Host
    from pytcp_green.patches import _common, _state

    host = Host(options, seed=seed)
    _state.set_host(host)
    _common.reset_probe()
    atexit.register(_close_host_at_exit, host, _os.getpid())
    _watch_forks()
    return host


def _close_host_at_exit(host: Any, pid: int) -> None:
    from pytcp_green.patches import _state

    if _os.getpid() != pid:  # a forked child: the devices, the lab and DHCP's lease are the parent's
        return
    try:
        host.close()
    finally:
        if _state.has_host() and _state.current_host() is host:
            _state.set_host(None)


_forks_watched = False


def _watch_forks() -> None:
    """fork() copies the stack; the child's copy must stay silent (see _stack_backend.FORK_ADVICE).

    An at-fork hook, not a patched ``os.fork``, so that every fork is seen (``os.fork``, ``pty.fork``,
    multiprocessing); ``subprocess`` forks in C and execs at once, so it runs none of this."""
    global _forks_watched
    if not _forks_watched:
        _forks_watched = True
        _os.register_at_fork(before=_before_fork, after_in_child=_forked_in_child)


def _before_fork() -> None:
    # A capture's buffered frames would be written twice: by the parent, and by the child's copy of
    # the buffer when the child's interpreter exits.
    from pytcp_green.patches import _state

    pcap = _state.current_host().runtime.pcap if _state.has_host() else None
    if pcap is not None:
        pcap.flush()


def _forked_in_child() -> None:
    # Runs inside fork() in the child, before gevent reinitialises the hub: nothing here may switch.
    from pytcp_green.patches import _stack_backend, _state

    _stack_backend.forked_in_child()
    if _state.has_host():
        host = _state.current_host()
        host.runtime.abandon()
        if host.control is not None:  # else the child's copy would answer `pytcp-green ctl` too
            host.control.abandon()


# -- warnings about what patching cannot reach --------------------------------------------------------
def _stale_references(originals: Sequence[Any], skip_prefixes: tuple[str, ...]) -> list[str]:
    """Modules whose globals hold one of ``originals`` (imported before patching)."""
    found = []
    for name, module in list(sys.modules.items()):
        if module is None or name.startswith(skip_prefixes):
            continue
        try:
            values = vars(module).items()
        except TypeError:
            continue
        for attr, value in list(values):
            if any(value is o for o in originals):
                found.append(f"{name}.{attr}")
    return sorted(found)


class _BypassWarner(importlib.abc.MetaPathFinder):
    """Warns once when a known socket-bypassing extension is imported into a patched process."""

    def __init__(self) -> None:
        self.warned: set[str] = set()

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname in BYPASSING_MODULES and fullname not in self.warned:
            self.warned.add(fullname)
            warnings.warn(f"{fullname} imported into a pytcp_green-patched process: "
                          f"{BYPASSING_MODULES[fullname]}, so its traffic goes through the kernel, "
                          f"not the stack", PatchWarning, stacklevel=2)
        return None  # let the real finders import it


_bypass_warner: _BypassWarner | None = None


def _install_bypass_warner() -> None:
    global _bypass_warner
    if _bypass_warner is not None:
        return
    _bypass_warner = _BypassWarner()
    sys.meta_path.insert(0, _bypass_warner)
    for name in BYPASSING_MODULES:
        if name in sys.modules:
            _bypass_warner.warned.add(name)
            _warn(f"{name} was imported before patching; {BYPASSING_MODULES[name]}, so its traffic goes "
                  f"through the kernel, not the stack")


# -- the module patches -------------------------------------------------------------------------------
# Each patch installs one module of ours from its declarations (``__implements__``…, see
# :func:`pytcp_green.patches._state.patch_module`), as gevent's patch_socket/patch_dns/… do.
def _ensure_host() -> None:
    """A patch used alone (without :func:`patch_all`) starts the host from the environment."""
    from pytcp_green.patches import _state, dns

    if not _state.has_host():
        _start_host(_options_from({}), None)
        if not dns.name_servers():
            dns.configure(None)


def patch_socket(dns: bool = True) -> None:
    """Replace ``socket.socket`` and the socket module's connection helpers (and, with ``dns``, its
    resolver functions: :func:`patch_dns`) with the stack's."""
    import socket as stdsocket

    from pytcp_green.patches import _state
    from pytcp_green.patches import socket as ours

    _ensure_host()
    if not _state.is_object_patched("socket", "socket"):
        originals = [stdsocket.socket, stdsocket.create_connection, _state.get_original("socket", "socket"),
                     _state.get_original("socket", "create_connection")]
        stale = _stale_references(originals, ("socket", "_socket", "gevent", "pytcp_green", "ssl", "_ssl"))
        if stale:
            _warn("patching socket after these modules imported socket objects directly; they keep the "
                  f"originals and bypass the stack: {', '.join(stale)}. Patch earlier "
                  "(python -m pytcp_green, or patch_all() before other imports).")
    _state.patch_module(stdsocket, ours)
    if dns:
        patch_dns()


def patch_dns() -> None:
    """Replace the socket module's resolver functions (getaddrinfo, gethostbyname…) with ours."""
    import socket as stdsocket

    from pytcp_green.patches import _state
    from pytcp_green.patches import dns as ours

    _ensure_host()
    _state.patch_module(stdsocket, ours)


def patch_select() -> None:
    """Replace ``select.select``/``select.poll`` and ``selectors.DefaultSelector`` with ours."""
    import select as stdselect
    import selectors as stdselectors

    from pytcp_green.patches import _state
    from pytcp_green.patches import select as ours
    from pytcp_green.patches import selectors as ours_selectors

    _state.patch_module(stdselect, ours)
    _state.patch_module(stdselectors, ours_selectors)
    patch_os()


def patch_os() -> None:
    """Make gevent's deferred ``os.close`` finish without waiting for other hub activity (see
    :mod:`pytcp_green.patches.os`); part of :func:`patch_select`, whose readiness it concerns."""
    import os as stdos

    from pytcp_green.patches import _state
    from pytcp_green.patches import os as ours

    _state.patch_module(stdos, ours)


def patch_ssl() -> None:
    """Replace ``ssl.SSLContext``/``ssl.SSLSocket`` (and the module functions that build them) with ours."""
    import ssl as stdssl

    from pytcp_green.patches import _state
    from pytcp_green.patches import ssl as ours

    if not _state.is_object_patched("ssl", "SSLContext"):
        originals = [stdssl.SSLContext, stdssl.SSLSocket, _state.get_original("ssl", "SSLContext"),
                     _state.get_original("ssl", "SSLSocket")]
        stale = _stale_references(originals, ("ssl", "_ssl", "gevent", "pytcp_green"))
        if stale:
            _warn("patching ssl after these modules imported ssl classes directly; they keep the originals, "
                  f"which cannot wrap stack sockets: {', '.join(stale)}. Patch earlier.")
    _state.patch_module(stdssl, ours)


def patch_all(*, socket: bool = True, dns: bool | str | Sequence[str] = True, select: bool = True,
              ssl: bool = True, gevent: bool = True, seed: int | None = None, **stack_options: Any) -> Any:
    """Patch this process onto a pytcp_green stack; returns the running :class:`~pytcp_green.host.Host`.

    ``stack_options`` are :class:`~pytcp_green.host.StackOptions` fields (``lab``, ``tap``, ``tun``,
    ``ip4``, ``gateway4``, ``mtu``, ``pcap``, ``impair``, ``log``, ``sysctl``, ``dhcp``…); without any,
    they come from ``PYTCP_GREEN_*`` variables.  ``dns`` is True/False (replace the resolver functions) or the
    name servers, e.g. ``dns=["198.18.0.1"]`` (else ``PYTCP_GREEN_DNS``, else the servers DHCP taught the
    stack: ``patch_all(dhcp=True, tap="tap0")`` waits, bounded, for a lease before returning).
    ``gevent=False`` skips ``gevent.monkey.patch_all()``: only for programs that already called it.
    """
    from pytcp_green.patches import _state
    from pytcp_green.patches import dns as dns_module

    if gevent:
        from gevent import monkey

        monkey.patch_all()
    if _state.has_host():
        host = _state.current_host()
        if stack_options:
            wanted = _options_from(stack_options)
            if wanted != host.options:
                _warn("patch_all() called again with different stack options; the first stack stays")
    else:
        host = _start_host(_options_from(stack_options), seed)
    servers = None if isinstance(dns, bool) else ([dns] if isinstance(dns, str) else list(dns))
    if servers is not None or not dns_module.name_servers():
        dns_module.configure(servers)
    if socket:
        patch_socket(dns=bool(dns))
    if select:
        patch_select()
    if ssl:
        patch_ssl()
    _install_bypass_warner()
    return host
