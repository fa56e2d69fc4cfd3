"""The requests the control socket answers, on a running :class:`~pytcp_green.host.Host`.

A request is a list of words, as typed after ``pytcp-green ctl``:

* ``faults add KIND [key=value ...]`` / ``faults remove ID`` / ``faults clear`` / ``faults list``
* ``address NEW/LEN [OLD/LEN]`` — renumber the link (a link event; see :mod:`pytcp_green.faults`)
* ``ss`` — TCP connections and listeners, as ``ss -tan`` lists them
* ``tcpinfo`` — each TCP connection's ``TCP_INFO`` (Linux's struct tcp_info fields, as ``ss -ti`` shows them)
* ``stats [PREFIX]`` — the stack's counters
* ``sysctl [NAME[=VALUE]]`` — read all, read one, or set one tunable
"""

from __future__ import annotations

import errno
import ipaddress
from typing import TYPE_CHECKING

from pytcp_green.faults.kinds import FaultSpec
from pytcp_green.stack.tcp.info import fields as tcp_info_fields
from pytcp_green.stack.tcp.tcb import STATE_NAMES

if TYPE_CHECKING:
    from pytcp_green.host import Host

Answer = dict[str, object] | list[dict[str, object]] | list[str]
USAGE = ("faults add KIND [key=value ...] | faults remove ID | faults clear | faults list | "
         "address NEW/LEN [OLD/LEN] | ss | tcpinfo | stats [PREFIX] | sysctl [NAME[=VALUE]]")


class RequestError(Exception):
    """A request that cannot be done: ``errno`` says why, as the CLI's exit status reports it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code


def handle(host: Host, words: list[str]) -> Answer:
    """Do what ``words`` ask of ``host``; RequestError for a bad request."""
    if not words:
        raise RequestError(errno.EINVAL, f"empty request; one of: {USAGE}")
    command, *args = words
    try:
        if command == "faults":
            return _faults(host, args)
        if command == "address" and 1 <= len(args) <= 2:
            host.faults.change_address(args[0], args[1] if len(args) == 2 else None)
            return {"address": args[0]}
        if command == "ss" and not args:
            return _ss(host)
        if command == "tcpinfo" and not args:
            return _tcpinfo(host)
        if command == "stats" and len(args) <= 1:
            stats = host.stack.stats
            return dict(sorted((stats.matching(args[0]) if args else dict(stats)).items()))
        if command == "sysctl" and len(args) <= 1:
            return _sysctl(host, args[0] if args else None)
    except (ValueError, KeyError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise RequestError(errno.EINVAL, str(text)) from None
    except RuntimeError as exc:
        raise RequestError(errno.ENODEV, str(exc)) from None
    raise RequestError(errno.EINVAL, f"unknown request {' '.join(words)!r}; one of: {USAGE}")


def _faults(host: Host, args: list[str]) -> Answer:
    action, *rest = args or [""]
    faults = host.faults
    if action == "add" and rest:
        fault = faults.add(FaultSpec.parse(rest))
        return {"id": fault.id, "fault": str(fault.spec)}
    if action == "remove" and len(rest) == 1 and rest[0].isdigit():
        faults.remove(int(rest[0]))
        return {"removed": int(rest[0])}
    if action == "clear" and not rest:
        return {"cleared": faults.clear()}
    if action == "list" and not rest:
        return faults.list()
    raise ValueError("faults add KIND [key=value ...] | faults remove ID | faults clear | faults list")


def _endpoint(addr: bytes, port: int) -> str:
    ip = ipaddress.ip_address(addr)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _ss(host: Host) -> list[dict[str, object]]:
    tcp = host.stack.tcp
    rows: list[dict[str, object]] = []
    for port, sockets in sorted(tcp.listeners.items()):
        for _ in sockets:
            rows.append({"state": "LISTEN", "local": f"*:{port}", "peer": "*:*"})
    for (laddr, lport, raddr, rport), tcb in tcp.conns.items():
        rows.append({"state": STATE_NAMES[tcb.state], "local": _endpoint(laddr, lport),
                     "peer": _endpoint(raddr, rport), "unacked": (tcb.snd_nxt - tcb.snd_una) & 0xFFFFFFFF})
    return rows


def _tcpinfo(host: Host) -> list[dict[str, object]]:
    now = host.runtime.now()
    return [{"local": _endpoint(laddr, lport), "peer": _endpoint(raddr, rport), **tcp_info_fields(tcb, now)}
            for (laddr, lport, raddr, rport), tcb in host.stack.tcp.conns.items()]


def _sysctl(host: Host, item: str | None) -> dict[str, object]:
    sysctl = host.stack.sysctl
    if item is None:
        return {name: sysctl[name] for name in sorted(sysctl)}
    name, sep, value = item.partition("=")
    if sep:
        sysctl[name] = value
        host.runtime.kick()
    return {name: sysctl[name]}
