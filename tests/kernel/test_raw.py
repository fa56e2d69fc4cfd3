"""Raw ICMP sockets of the stack against the Linux kernel peer in the lab, IPv4 and IPv6 (raw(7)).

An echo request built by hand goes out of a stack SOCK_RAW socket; the kernel answers it, and the
socket reads the reply as Linux's raw sockets give it: with the IPv4 header (the kernel's TTL 64, its
address as the source) or, for IPv6, the ICMPv6 message alone, whose checksum the stack filled in
on the way out (the kernel answered it, so it held).
"""

from __future__ import annotations

import struct

import pytest
from lab.helpers import KernelPeer

from kernel.test_ancillary import _peer
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.stack.sockbase import AF_INET, AF_INET6, pack_host
from pytcp_green.stack.stack import SOCK_RAW
from pytcp_green.stack.wire.checksum import checksum, pseudo_sum

FAMILIES = pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
DATA = b"raw ping from the stack"


@pytest.mark.lab
@FAMILIES
def test_raw_echo_request_is_answered_by_the_kernel(kernel: KernelPeer, family: int) -> None:
    peer = _peer(kernel, family)
    v6 = family == AF_INET6
    request, reply = (128, 129) if v6 else (8, 0)
    sock = GreenSocket(peer.host.runtime, peer.host.stack.socket(family, SOCK_RAW, 58 if v6 else 1), timeout=20)
    core = sock.core
    msg = bytearray(struct.pack("!BBHHH", request, 0, 0, 0x4242, 3) + DATA)
    if not v6:
        msg[2:4] = checksum(msg).to_bytes(2, "big")
    try:
        sock.sendto(bytes(msg), (peer.kernel_ip, 0))
        while True:
            data, source = sock.call(lambda now: core.recvfrom(2048, now))
            icmp = data if v6 else data[(data[0] & 15) * 4:]
            if icmp[0] == reply:
                break
    finally:
        sock.close()
    assert source[:2] == (peer.kernel_ip, 0)
    assert struct.unpack("!HH", icmp[4:8]) == (0x4242, 3) and icmp[8:] == DATA
    if v6:
        stack, them = pack_host(family, peer.stack_ip), pack_host(family, peer.kernel_ip)
        assert checksum(icmp, pseudo_sum(them, stack, 58, len(icmp))) == 0
    else:
        assert data[0] == 0x45 and data[8] == 64 and data[9] == 1 and data[12:16] == pack_host(family, peer.kernel_ip)
        assert checksum(icmp) == 0
