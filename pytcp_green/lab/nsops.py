"""Network namespaces and the processes in them, with plain system calls.

Teardown runs from signal handlers, atexit and under gevent's monkey-patching, where spawning
``ip`` is not an option, so what it needs is done here directly: whether a PID still runs,
which processes are inside a namespace (what ``ip netns pids`` reports, by comparing
``/proc/<pid>/ns/net`` with the namespace handle), killing them through pidfds so a recycled PID
is never signalled, and deleting a namespace as ``ip netns del`` does (detach-unmount and unlink
its handle in ``/run/netns``).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal

NETNS_DIR = "/run/netns"  # where `ip netns` keeps its namespace handles
_MNT_DETACH = 2  # <sys/mount.h>
_libc: ctypes.CDLL | None = None


def pid_alive(pid: int) -> bool:
    """True while ``pid`` names a process that has not exited (zombies count as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # The state letter follows the command name, which is in parentheses and may itself
            # contain spaces or parentheses: split after the last ')'.
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def ns_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids_in_netns(identity: tuple[int, int]) -> list[int]:
    """PIDs whose network namespace is ``identity`` (what ``ip netns pids`` reports)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and ns_identity(f"/proc/{entry}/ns/net") == identity:
            pids.append(int(entry))
    return pids


def kill_netns_processes(path: str) -> int:
    """SIGKILL every process inside the namespace at ``path``; return how many were signalled.

    Each PID is pinned with a pidfd and its namespace checked again through it, so a PID that
    was recycled between the scan and the kill is never signalled.
    """
    identity = ns_identity(path)
    if identity is None:
        return 0
    killed = 0
    for pid in pids_in_netns(identity):
        if pid == os.getpid():
            continue  # cannot happen (we never enter a lab namespace), but never kill ourselves
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue  # already gone
        try:
            if ns_identity(f"/proc/{pid}/ns/net") == identity:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                killed += 1
        except OSError:
            pass
        finally:
            os.close(pidfd)
    return killed


def delete_netns(name: str) -> None:
    """Remove ``/run/netns/<name>`` the way ``ip netns del`` does: detach its bind mount, unlink it.

    The namespace itself dies once nothing (no process, no open handle) refers to it any more.
    """
    global _libc  # loaded once, on first use
    path = os.path.join(NETNS_DIR, name)
    if not os.path.lexists(path):
        return
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not mounted (half-made namespace)
            raise OSError(err, f"lab namespace {name}: cannot unmount {path}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
