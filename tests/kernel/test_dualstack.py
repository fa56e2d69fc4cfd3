"""Dual-stack TCP against kernel clients in the lab (RFC 3493 §5.3 IPV6_V6ONLY, RFC 4291 §2.5.5.2).

A stack AF_INET6 listener on [::] takes a kernel client over IPv4 (seen as ::ffff:198.18.0.1) and
one over IPv6 when IPV6_V6ONLY is 0; with 1 the IPv4 client is refused (RST: ECONNREFUSED) and the
IPv6 one still gets in.
"""

from __future__ import annotations

import json

import pytest
from lab.helpers import KernelPeer

from kernel.test_ancillary import _peer
from kernel.test_tcp import finish, kernel_program
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.stack.sockbase import AF_INET, AF_INET6
from pytcp_green.stack.stack import SOCK_STREAM
from pytcp_green.stack.tcp import TcpSocket

# Connects to argv[1] then argv[2] at port argv[3], sends its own address; prints each outcome.
CLIENT = r"""
import json, socket, sys
out = []
for host in sys.argv[1:3]:
    try:
        c = socket.create_connection((host, int(sys.argv[3])), timeout=20)
        c.sendall(c.getsockname()[0].encode())
        c.shutdown(socket.SHUT_WR)
        c.recv(1)
        c.close()
        out.append("ok")
    except OSError as e:
        out.append(e.errno)
print(json.dumps(out))
"""


@pytest.mark.lab
@pytest.mark.parametrize("v6only", [0, 1])
def test_a_v6_listener_on_any_takes_v4_clients_unless_v6only(kernel: KernelPeer, v6only: int) -> None:
    v4, v6 = _peer(kernel, AF_INET), _peer(kernel, AF_INET6)
    srv = GreenSocket(kernel.host.runtime, kernel.host.stack.socket(AF_INET6, SOCK_STREAM), timeout=30)
    core = srv.core
    assert isinstance(core, TcpSocket)
    core.v6only = bool(v6only)
    peers = []
    try:
        srv.bind(("::", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        with kernel_program(kernel, CLIENT, v4.stack_ip, v6.stack_ip, str(port)) as prog:
            for _ in range(2 - v6only):
                conn, peer = srv.accept()
                said = b""
                while chunk := conn.recv(100):
                    said += chunk
                peers.append((peer[0], said.decode()))
                conn.close()
            out = json.loads(finish(prog).splitlines()[-1])
    finally:
        srv.close()
    if v6only:
        assert out == [111, "ok"] and peers == [(v6.kernel_ip, v6.kernel_ip)]
    else:
        assert out == ["ok", "ok"]
        assert peers == [("::ffff:" + v4.kernel_ip, v4.kernel_ip), (v6.kernel_ip, v6.kernel_ip)]
