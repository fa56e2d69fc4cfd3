"""Where control sockets live, so that the server and ``pytcp-green ctl`` agree without talking."""

from __future__ import annotations

import os
import tempfile

RUN_DIR = "/run/pytcp-green"
ENV_SOCKET = "PYTCP_GREEN_CTL"  # what a program or peer under a stack sees: that stack's socket


def socket_dir() -> str:
    """/run/pytcp-green when it can be written (root), else pytcp-green/ in the temporary directory."""
    try:
        os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
        if os.access(RUN_DIR, os.W_OK):
            return RUN_DIR
    except OSError:
        pass
    return os.path.join(tempfile.gettempdir(), "pytcp-green")


def auto_path() -> str:
    """The socket path of this process: ``<socket_dir>/<pid>.sock``."""
    directory = socket_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    return os.path.join(directory, f"{os.getpid()}.sock")


def running_sockets() -> list[str]:
    """The sockets in :func:`socket_dir` whose process is still alive."""
    directory = socket_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    alive = []
    for name in sorted(names):
        pid, _, ext = name.partition(".")
        if ext != "sock" or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass  # alive, someone else's
        alive.append(os.path.join(directory, name))
    return alive
