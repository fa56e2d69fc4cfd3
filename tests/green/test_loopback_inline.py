"""The loopback delivers within the sending call, as Linux's does: when a socket call that sent to
127.0.0.1 returns, the peer socket on this host already has what was sent and what that set off (a
handshake completed into the accept queue, the data, a reset).  CPython's test_ssl (preauth data) and
asyncio's test_streams depend on it; so do blocking calls, which must not lose the wake-up that a
delivery inside their own call makes."""

from __future__ import annotations

import errno

import pytest

from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.sockbase import AF_INET, POLLERR, POLLIN
from pytcp_green.stack.stack import SOCK_STREAM


def test_a_peer_on_this_host_has_the_handshake_the_data_and_the_reset_when_each_call_returns() -> None:
    with Host(StackOptions()) as host:
        def tcp() -> GreenSocket:
            return GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=10)

        listener = tcp()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = tcp()
        client.connect(listener.getsockname())
        assert listener.poll_mask() & POLLIN  # the handshake's last ACK is in: accept() will not wait
        conn, _ = listener.accept()
        client.sendall(b"before the reset")
        assert conn.poll_mask() & POLLIN
        client.core.linger_abort = True  # SO_LINGER (1, 0): close() resets
        client.close()
        assert conn.poll_mask() & POLLERR  # the reset is in too
        with pytest.raises(OSError) as info:
            conn.getpeername()
        assert info.value.errno == errno.ENOTCONN
        assert conn.recv(100) == b"before the reset"
        conn.close()
        listener.close()
