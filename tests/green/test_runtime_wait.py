"""Runtime.wait_until: woken by the core entries that change stack state, bounded by its timeout."""

from __future__ import annotations

import gevent

from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM


def test_wakes_when_a_datagram_arrives_and_gives_up_at_its_bound() -> None:
    with Host(StackOptions()) as host:
        receiver = host.stack.socket(AF_INET, SOCK_DGRAM)
        sender = host.stack.socket(AF_INET, SOCK_DGRAM)
        assert isinstance(receiver, UdpSocket) and isinstance(sender, UdpSocket)
        receiver.bind(("127.0.0.1", 7100))

        def send() -> None:
            sender.sendto(b"wake up", ("127.0.0.1", 7100), host.runtime.now())
            host.runtime.kick()

        gevent.spawn(send)
        assert host.runtime.wait_until(lambda: bool(receiver.queue), 10)
        assert receiver.recvfrom(100, host.runtime.now())[0] == b"wake up"
        assert not host.runtime.wait_until(lambda: bool(receiver.queue), 0.05)
        assert host.runtime._watchers == 0  # nobody is left registered for wake-ups
        receiver.close()
        sender.close()
