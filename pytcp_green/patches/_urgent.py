"""MSG_OOB on stack TCP sockets: the flag's calls into the core's urgent data (stack/tcp/urgent.py).

``send(data, MSG_OOB)`` makes the last byte of ``data`` urgent and blocks like any send;
``recv(n, MSG_OOB)`` returns the one urgent byte and never waits (tcp(7): EAGAIN while it is on its
way, EINVAL when there is none or SO_OOBINLINE keeps it in the stream).  Datagram sockets refuse
the flag (EOPNOTSUPP), as Linux's UDP does.
"""

from __future__ import annotations

import _socket
import errno
import os

from pytcp_green.green.sockets import GreenSocket, Timeout

MSG_OOB = _socket.MSG_OOB
MSG_PEEK = _socket.MSG_PEEK


def refuse_on_datagrams(flags: int) -> None:
    if flags & MSG_OOB:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))


def send(green: GreenSocket, view: memoryview, timeout: Timeout, flags: int) -> int:
    """One stream send, urgent with MSG_OOB."""
    if not flags & MSG_OOB:
        return green.send(view, timeout)
    core = green.core
    return green.call(lambda now: int(core.send(view, now, oob=True)), timeout)


def sendall(green: GreenSocket, view: memoryview, timeout: Timeout, flags: int) -> None:
    """sendall() as CPython's: send() with the same flags until everything went (each MSG_OOB send
    moves the urgent mark to its own end, as the kernel's do)."""
    if not flags & MSG_OOB:
        green.sendall(view, timeout)
        return
    sent = 0
    while sent < len(view):
        sent += send(green, view[sent:], timeout, flags)


def recv(green: GreenSocket, bufsize: int, flags: int) -> bytes:
    """recv(MSG_OOB): at once, whatever the socket's timeout."""
    core = green.core
    peek = bool(flags & MSG_PEEK)
    return green.call(lambda now: bytes(core.recv_oob(bufsize, now, peek=peek)), 0.0)
