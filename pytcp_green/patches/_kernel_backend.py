"""The kernel backend of the patched socket class: a gevent socket, for what the stack does not carry.

``AF_UNIX``, ``AF_NETLINK``, a socket made from an inherited kernel descriptor…: local IPC and
kernel interfaces, not networking, so they stay the kernel's; every call goes to gevent's
cooperative socket, which does the stdlib's argument checking itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gevent import socket as _gsocket

_GeventSocket: Any = _gsocket.socket


def kernel_socketpair(family: int, type: int, proto: int) -> tuple[KernelBackend, KernelBackend]:
    """``socketpair()`` of a family the kernel keeps (AF_UNIX): gevent's."""
    a, b = _gsocket.socketpair(family, type, proto)
    return KernelBackend(a), KernelBackend(b)


class KernelBackend:
    """The same operations as :class:`~pytcp_green.patches._stack_backend.StackBackend`, on a kernel socket."""

    __slots__ = ("sock",)

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    @classmethod
    def open(cls, family: int, type: int, proto: int, fileno: int | None = None) -> KernelBackend:
        return cls(_GeventSocket(family, type, proto, fileno))

    @property
    def family(self) -> int:
        return int(self.sock.family)

    @property
    def type(self) -> int:
        return int(self.sock.type)

    @property
    def proto(self) -> int:
        return int(self.sock.proto)

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()  # type: ignore[no-any-return]

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def getblocking(self) -> bool:
        return bool(self.sock.getblocking())

    def bind(self, address: Any) -> None:
        self.sock.bind(address)

    def listen(self, backlog: int) -> None:
        self.sock.listen(backlog)

    def connect(self, address: Any) -> None:
        self.sock.connect(address)

    def connect_ex(self, address: Any) -> int:
        return int(self.sock.connect_ex(address))

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def getpeername(self) -> Any:
        return self.sock.getpeername()

    def accept(self) -> tuple[KernelBackend, Any]:
        conn, addr = self.sock.accept()
        return KernelBackend(conn), addr

    def accept_fd(self) -> tuple[int, Any]:
        return self.sock._accept()  # type: ignore[no-any-return]

    def recv(self, bufsize: int, flags: int) -> bytes:
        return self.sock.recv(bufsize, flags)  # type: ignore[no-any-return]

    def recv_into(self, buffer: Any, nbytes: int, flags: int) -> int:
        return int(self.sock.recv_into(buffer, nbytes, flags))

    def recvfrom(self, bufsize: int, flags: int) -> tuple[bytes, Any]:
        return self.sock.recvfrom(bufsize, flags)  # type: ignore[no-any-return]

    def recvfrom_into(self, buffer: Any, nbytes: int, flags: int) -> tuple[int, Any]:
        return self.sock.recvfrom_into(buffer, nbytes, flags)  # type: ignore[no-any-return]

    def recvmsg(self, bufsize: int, ancbufsize: int, flags: int) -> tuple[bytes, list[Any], int, Any]:
        return self.sock.recvmsg(bufsize, ancbufsize, flags)  # type: ignore[no-any-return]

    def recvmsg_into(self, buffers: Iterable[Any], ancbufsize: int, flags: int) -> tuple[int, list[Any], int, Any]:
        return self.sock.recvmsg_into(buffers, ancbufsize, flags)  # type: ignore[no-any-return]

    def send(self, data: Any, flags: int) -> int:
        return int(self.sock.send(data, flags))

    def sendall(self, data: Any, flags: int) -> None:
        self.sock.sendall(data, flags)

    def sendto(self, data: Any, *args: Any) -> int:
        return int(self.sock.sendto(data, *args))

    def sendmsg(self, buffers: Iterable[Any], ancdata: Iterable[Any], flags: int, address: Any) -> int:
        return int(self.sock.sendmsg(buffers, ancdata, flags, address))

    def sendmsg_afalg(self, *args: Any, **kwargs: Any) -> int:
        return int(self.sock.sendmsg_afalg(*args, **kwargs))

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None) -> None:
        if optlen is None:
            self.sock.setsockopt(level, optname, value)
        else:
            self.sock.setsockopt(level, optname, value, optlen)

    def getsockopt(self, level: int, optname: int, buflen: int | None) -> Any:
        if buflen is None:
            return self.sock.getsockopt(level, optname)
        return self.sock.getsockopt(level, optname, buflen)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()

    def detach(self, closed: bool) -> int:
        return int(self.sock.detach())

    def dup(self) -> KernelBackend:
        return KernelBackend(self.sock.dup())

    def get_inheritable(self) -> bool:
        return bool(self.sock.get_inheritable())

    def set_inheritable(self, inheritable: bool) -> None:
        self.sock.set_inheritable(inheritable)
