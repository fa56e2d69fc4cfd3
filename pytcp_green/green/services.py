"""The small services ``pytcp-green serve`` offers: echo (RFC 862), discard (RFC 863), daytime (RFC 867).

Each runs over UDP and, when the stack has TCP, over TCP too, in greenlets over
:class:`GreenSocket`, so they exercise the same blocking path an application does.
"""

from __future__ import annotations

import logging
import time

import gevent

from pytcp_green.green.runtime import Runtime
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM, SOCK_STREAM

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


def _tcp_connection(conn: GreenSocket, answer: str) -> None:
    try:
        if answer == "daytime":
            conn.sendall(daytime())
            return
        while data := conn.recv(65536):
            if answer == "echo":
                conn.sendall(data)
    except OSError as exc:  # a peer's reset ends its connection, not the service
        log.info("tcp service: connection ended: %s", exc)
    finally:
        conn.close()


def _tcp_service(runtime: Runtime, port: int, answer: str) -> None:
    listener = GreenSocket(runtime, runtime.stack.socket(AF_INET, SOCK_STREAM))
    listener.bind(("", port))
    listener.listen(128)
    connections: list[gevent.Greenlet] = []
    try:
        while True:
            conn, _ = listener.accept()
            runtime.stack.stats[f"service.tcp.{port}"] += 1
            connections = [g for g in connections if not g.dead]
            connections.append(gevent.spawn(_tcp_connection, conn, answer))
    finally:
        gevent.killall(connections)
        listener.close()


SERVICES = ((ECHO_PORT, "echo"), (DISCARD_PORT, "discard"), (DAYTIME_PORT, "daytime"))


def start_services(runtime: Runtime) -> list[gevent.Greenlet]:
    """Spawn every service; kill the returned greenlets to stop them (their sockets close)."""
    greenlets = [gevent.spawn(_udp_service, runtime, port, answer) for port, answer in SERVICES]
    greenlets += [gevent.spawn(_tcp_service, runtime, port, answer) for port, answer in SERVICES]
    return greenlets
