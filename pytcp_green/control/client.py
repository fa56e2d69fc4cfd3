"""``pytcp-green ctl``: one request to a running stack's control socket, its answer printed.

The socket is ``--socket PATH``, else ``$PYTCP_GREEN_CTL`` (set for programs and peer commands run
under a stack), else the only running stack's.  Exit status: 0 done, 1 the stack refused the
request (the message and its errno are printed), 2 no stack to talk to or a usage error.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys

from pytcp_green.control.paths import ENV_SOCKET, running_sockets

TIMEOUT = 30.0


class CtlError(Exception):
    """The request failed: ``errno`` is the stack's (or the socket's) reason."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code


def find_socket(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    if os.environ.get(ENV_SOCKET):
        return os.environ[ENV_SOCKET]
    found = running_sockets()
    if len(found) == 1:
        return found[0]
    if not found:
        raise CtlError(errno.ENOENT, "no running stack has a control socket: start `pytcp-green serve` or "
                                     "`pytcp-green run`, or give --socket PATH")
    raise CtlError(errno.EEXIST, "several stacks are running; choose one with --socket: " + ", ".join(found))


def request(path: str, words: list[str], timeout: float = TIMEOUT) -> object:
    """Send ``words`` to the socket at ``path``; the answer's value, or CtlError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            reason = f"cannot reach the stack at {path}: {exc.strerror}"
            raise CtlError(exc.errno or errno.ECONNREFUSED, reason) from None
        with sock.makefile("rwb") as stream:
            stream.write(json.dumps({"words": words}).encode() + b"\n")
            stream.flush()
            line = stream.readline()
    if not line:
        raise CtlError(errno.ECONNRESET, f"the stack at {path} closed the connection without answering")
    answer = json.loads(line)
    if "error" in answer:
        raise CtlError(int(answer.get("errno") or errno.EINVAL), str(answer["error"]))
    return answer["ok"]


def render(words: list[str], value: object) -> str:
    """The answer as a person reads it."""
    if isinstance(value, list) and words[:1] == ["ss"]:
        lines = [f"{'State':<13}{'Local':<28}{'Peer':<28}Unacked"]
        lines += [f"{r['state']:<13}{r['local']:<28}{r['peer']:<28}{r.get('unacked', '')}" for r in value]
        return "\n".join(lines)
    if isinstance(value, list) and words[:1] == ["tcpinfo"]:  # one block per connection, non-zero fields
        blocks = [f"{r['local']} -> {r['peer']}\n" + " ".join(f"{k}:{v}" for k, v in r.items()
                                                              if k not in ("local", "peer") and v)
                  for r in value]
        return "\n".join(blocks) if blocks else "no connections"
    if isinstance(value, list):  # faults list
        if not value:
            return "no faults"
        return "\n".join(f"{f['id']:>3}  {f['fault']}  {json.dumps(f['stats'])}" for f in value)
    if isinstance(value, dict):
        sep = " = " if words[:1] == ["sysctl"] else " "
        return "\n".join(f"{k}{sep}{v}" for k, v in value.items())
    return str(value)


def main(words: list[str], socket_path: str | None = None, as_json: bool = False) -> int:
    try:
        path = find_socket(socket_path)
    except CtlError as exc:
        print(f"pytcp-green ctl: {exc}", file=sys.stderr)
        return 2
    try:
        value = request(path, words)
    except CtlError as exc:
        print(f"pytcp-green ctl: {exc} [{errno.errorcode.get(exc.errno, exc.errno)}]", file=sys.stderr)
        return 1
    print(json.dumps(value, indent=2) if as_json else render(words, value))
    return 0
