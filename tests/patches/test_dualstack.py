"""Dual-stack TCP (RFC 3493 §5.3 IPV6_V6ONLY, RFC 4291 §2.5.5.2 v4-mapped): ``has_dualstack_ipv6()`` and
``socket.create_server(dualstack_ipv6=True)`` over the stack answer as over the kernel; a [::] listener
with IPV6_V6ONLY 0 accepts IPv4 clients as ::ffff:a.b.c.d and with 1 refuses them.  Against kernel
clients in the lab: tests/kernel/test_dualstack.py."""

from __future__ import annotations

from .helpers import run_patched

PROGRAM = """
import socket
res = {"dualstack": socket.has_dualstack_ipv6()}
srv = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
port = srv.getsockname()[1]
res["v6only"] = srv.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
for host in ("127.0.0.1", "::1"):
    c = socket.create_connection((host, port), timeout=10)
    conn, peer = srv.accept()
    c.sendall(b"hi"); res[host] = [peer[0], conn.recv(2).decode(), conn.getsockname()[0]]
    conn.close(); c.close()
srv.close()
only = socket.create_server(("::", 0), family=socket.AF_INET6)  # dualstack_ipv6=False sets IPV6_V6ONLY 1
res["only"] = only.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
res["v4_to_v6only"] = attempt(lambda: socket.create_connection(("127.0.0.1", only.getsockname()[1]), timeout=10))
only.close()
report(res)
"""


def test_dualstack_server_answers_as_the_kernel() -> None:
    stack = run_patched(PROGRAM)
    kernel = run_patched(PROGRAM, patch="")
    assert stack == kernel
    assert stack["dualstack"] is True and stack["127.0.0.1"][0] == "::ffff:127.0.0.1"
    assert stack["v4_to_v6only"] == "errno 111"
