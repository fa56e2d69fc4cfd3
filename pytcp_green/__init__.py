"""pytcp_green: a TCP/IP stack in Python on a TAP device, driven by gevent greenlets.

The protocol core (``pytcp_green.stack``) is sans-I/O; ``pytcp_green.green`` runs it on gevent;
``pytcp_green.link`` moves frames; ``pytcp_green.lab`` builds Linux-side peers in namespaces;
``pytcp_green.patches`` is the drop-in.

Public API (imported lazily, so ``import pytcp_green.stack`` does not pull in gevent):

* :func:`patch_all` — put this process's sockets on a pytcp_green stack;
* :func:`patch_socket`, :func:`patch_dns`, :func:`patch_select`, :func:`patch_ssl` — one module each;
* :func:`get_original`, :func:`is_module_patched`, :func:`is_object_patched` — gevent's conventions;
* :func:`current_host` — the running :class:`~pytcp_green.host.Host` (``.stack``, ``.runtime``);
* :class:`Stack` — the sans-I/O core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pytcp_green.patches import (
        current_host,
        get_original,
        is_module_patched,
        is_object_patched,
        patch_all,
        patch_dns,
        patch_select,
        patch_socket,
        patch_ssl,
    )
    from pytcp_green.stack.stack import Stack

__all__ = [
    "Stack",
    "__version__",
    "current_host",
    "get_original",
    "is_module_patched",
    "is_object_patched",
    "patch_all",
    "patch_dns",
    "patch_select",
    "patch_socket",
    "patch_ssl",
]

_PATCH_API = ("patch_all", "patch_socket", "patch_dns", "patch_select", "patch_ssl", "get_original",
              "is_module_patched", "is_object_patched", "current_host")


def __getattr__(name: str) -> Any:
    if name in _PATCH_API:
        from pytcp_green import patches

        return getattr(patches, name)
    if name == "Stack":
        from pytcp_green.stack.stack import Stack

        return Stack
    raise AttributeError(f"module 'pytcp_green' has no attribute {name!r}")
