"""The small services ``pytcp-green serve`` offers: echo (RFC 862), discard (RFC 863), daytime (RFC 867).

Each runs in its own greenlet over a :class:`GreenSocket`, so they exercise the same blocking
path an application does.  UDP now; TCP variants are added next to them when TCP lands.
"""

from __future__ import annotations

import logging
import time

import gevent

from pytcp_green.green.runtime import Runtime
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM

log = logging.getLogger(__name__)

ECHO_PORT, DISCARD_PORT, DAYTIME_PORT = 7, 9, 13


def daytime() -> bytes:
    """RFC 867 leaves the format open; this is the common 'Weekday, Month DD, YYYY HH:MM:SS-TZ'."""
    return time.strftime("%A, %B %d, %Y %H:%M:%S-%Z\r\n").encode()


def _udp_service(runtime: Runtime, port: int, answer: str) -> None:
    sock = GreenSocket(runtime, runtime.stack.socket(AF_INET, SOCK_DGRAM))
    sock.bind(("", port))
    try:
        while True:
            data, peer = sock.recvfrom(65535)
            runtime.stack.stats[f"service.udp.{port}"] += 1
            reply = data if answer == "echo" else daytime() if answer == "daytime" else None
            if reply is not None:
                try:
                    sock.sendto(reply, peer)
                except OSError as exc:  # e.g. no route back: the datagram is lost, the service is not
                    log.info("udp/%d: reply to %s failed: %s", port, peer, exc)
    finally:
        sock.close()


def start_services(runtime: Runtime) -> list[gevent.Greenlet]:
    """Spawn every service; kill the returned greenlets to stop them (their sockets close)."""
    return [
        gevent.spawn(_udp_service, runtime, ECHO_PORT, "echo"),
        gevent.spawn(_udp_service, runtime, DISCARD_PORT, "discard"),
        gevent.spawn(_udp_service, runtime, DAYTIME_PORT, "daytime"),
    ]
