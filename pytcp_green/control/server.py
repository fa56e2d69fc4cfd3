"""The control socket: a Unix stream socket in the stack's own process, served by gevent.

Each line a client sends is one JSON request, ``{"words": ["faults", "add", "latency", ...]}``;
each answer is one JSON line, ``{"ok": value}`` or ``{"error": message, "errno": code}``.  The
socket is the stack's process's and nobody else's: created mode 0600 (root runs the lab anyway),
removed when the host closes.  ``path="auto"`` picks ``/run/pytcp-green/<pid>.sock`` (or the
temporary directory when /run is not writable), which is where ``pytcp-green ctl`` looks.

Requests run in the hub like any socket call, so they see and change the stack between frames,
never in the middle of one.  The server uses gevent's own socket module, not the patched stdlib
one: in ``pytcp-green run`` the program's ``socket`` is ours, and this socket belongs to the
kernel.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from typing import TYPE_CHECKING, Any

import gevent
from gevent import socket as gsocket

from pytcp_green.control.commands import RequestError, handle
from pytcp_green.control.paths import auto_path

if TYPE_CHECKING:
    from pytcp_green.host import Host

log = logging.getLogger("pytcp_green.control")
MAX_REQUEST = 65536


class ControlServer:
    """Serve ``host``'s control requests on the Unix socket at ``path`` until :meth:`close`."""

    def __init__(self, host: Host, path: str) -> None:
        self.host = host
        self.path = auto_path() if path == "auto" else path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a socket file left by a process that died
        self._listener = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            self._listener.bind(self.path)
        finally:
            os.umask(old_umask)
        self._listener.listen(8)
        self._clients: set[gevent.Greenlet] = set()
        self._acceptor = gevent.spawn(self._accept)
        log.info("control socket %s", self.path)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            greenlet = gevent.spawn(self._serve, conn)
            self._clients.add(greenlet)
            greenlet.link(self._clients.discard)

    def _serve(self, conn: Any) -> None:
        with conn, conn.makefile("rwb") as stream:
            while line := stream.readline(MAX_REQUEST + 1):
                stream.write(json.dumps(self.answer(line)).encode() + b"\n")
                stream.flush()

    def answer(self, line: bytes) -> dict[str, object]:
        """The answer to one request line."""
        try:
            request = json.loads(line)
            words = request["words"]
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return {"error": 'a request is one JSON line: {"words": ["stats"]}', "errno": errno.EINVAL}
        try:
            return {"ok": handle(self.host, words)}
        except RequestError as exc:
            return {"error": str(exc), "errno": exc.errno}

    def abandon(self) -> None:
        """In a forked child: stop accepting and serving, without closing or unlinking the socket (the
        parent's); called inside fork(), so the greenlets are killed from the hub later, not here."""
        for greenlet in (self._acceptor, *self._clients):
            greenlet.kill(block=False)

    def close(self) -> None:
        gevent.killall([self._acceptor, *self._clients], block=True, timeout=2)
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
