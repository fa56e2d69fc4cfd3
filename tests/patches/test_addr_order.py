"""getaddrinfo in RFC 6724 §6 order and create_connection trying each address in turn, on the
stack's loopback: a hosts-file name with ::1 and 127.0.0.1."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .helpers import run_patched

# The hosts file lists 127.0.0.1 first, so ::1 coming first is the sort's doing, not the file's.
HOSTS = "127.0.0.1 dual.test\n::1 dual.test\n"

# connect() wrapped to record every address create_connection tries, in order.
RECORD = """
import socket
tried = []
_connect = socket.socket.connect
def connect(self, address):
    tried.append(list(address[:2]))
    return _connect(self, address)
socket.socket.connect = connect
"""


@pytest.fixture
def hosts(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    return {"PYTCP_GREEN_HOSTS_FILE": str(path)}


def test_getaddrinfo_orders_and_create_connection_falls_through_to_the_second(hosts: dict[str, str]) -> None:
    # Only 127.0.0.1 listens: the first-ordered ::1 refuses (RST), the second accepts.
    out = run_patched(RECORD + textwrap.dedent("""
        order = [[int(f), s[0]] for f, _t, _p, _c, s in socket.getaddrinfo("dual.test", 80, type=socket.SOCK_STREAM)]
        srv = socket.create_server(("127.0.0.1", 0))
        port = srv.getsockname()[1]
        cl = socket.create_connection(("dual.test", port), timeout=10)
        conn, _ = srv.accept()
        cl.sendall(b"hello")
        res = {"order": order, "tried": tried, "peer": list(cl.getpeername()), "family": int(cl.family),
               "timeout": cl.gettimeout(), "data": conn.recv(5).decode(), "port": port}
        report(res)
    """), env=hosts)
    port = out.pop("port")
    assert out == {
        "order": [[10, "::1"], [2, "127.0.0.1"]],  # precedence 50 before 35 (RFC 6724 §2.1, §6 rule 6)
        "tried": [["::1", port], ["127.0.0.1", port]],
        "peer": ["127.0.0.1", port],
        "family": 2,
        "timeout": 10.0,  # every attempt gets the whole timeout, as CPython's create_connection
        "data": "hello",
    }


def test_create_connection_stops_at_the_first_that_accepts(hosts: dict[str, str]) -> None:
    out = run_patched(RECORD + textwrap.dedent("""
        srv = socket.create_server(("::1", 0), family=socket.AF_INET6)
        port = srv.getsockname()[1]
        cl = socket.create_connection(("dual.test", port))
        report({"tried": tried, "peer": list(cl.getpeername()[:2]), "port": port})
    """), env=hosts)
    assert out["tried"] == [["::1", out["port"]]] and out["peer"] == ["::1", out["port"]]


def test_create_connection_raises_the_last_error_or_all_of_them(hosts: dict[str, str]) -> None:
    out = run_patched(RECORD + textwrap.dedent("""
        import errno
        probe = socket.create_server(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens on this port at either address
        try:
            socket.create_connection(("dual.test", port), timeout=5)
        except OSError as exc:
            last = [type(exc).__name__, exc.errno]
        try:
            socket.create_connection(("dual.test", port), all_errors=True)
        except ExceptionGroup as group:
            every = [[type(e).__name__, e.errno] for e in group.exceptions]
        report({"last": last, "every": every, "tried": tried, "port": port})
    """), env=hosts)
    port = out["port"]
    refused = ["ConnectionRefusedError", 111]
    assert out["last"] == refused and out["every"] == [refused, refused]
    assert out["tried"] == [["::1", port], ["127.0.0.1", port]] * 2
