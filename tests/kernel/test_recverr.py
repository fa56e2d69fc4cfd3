"""IP_RECVERR / IPV6_RECVERR against the Linux kernel in the lab, IPv4 and IPv6 (ip(7), ipv6(7)).

A stack UDP socket and a kernel UDP socket send the same datagram to the same closed port of the
kernel peer; the kernel answers both with a port unreachable from its address.  What each reads
with MSG_ERRQUEUE - the quoted payload, the destination, and the struct sock_extended_err item with
its offender sockaddr - is byte for byte the same.
"""

from __future__ import annotations

import json

import pytest
from lab.helpers import KernelPeer

from kernel.test_ancillary import _peer, _stack_udp
from kernel.test_tcp import finish, kernel_program, read_line
from pytcp_green.patches import _ancillary as anc
from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.sockbase import AF_INET, AF_INET6, POLLERR

FAMILIES = pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
PAYLOAD = b"are you there?"

# Prints a closed port of argv[1]; sends PAYLOAD to it from a socket with IP_RECVERR (IPV6_RECVERR) on,
# waits for POLLERR and prints what recvmsg(MSG_ERRQUEUE) returned.
KERNEL = r"""
import json, select, socket, sys
me = sys.argv[1]
v6 = ":" in me
fam = socket.AF_INET6 if v6 else socket.AF_INET
closed = socket.socket(fam, socket.SOCK_DGRAM); closed.bind((me, 0))
port = closed.getsockname()[1]; closed.close()
print(port, flush=True)
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, 25 if v6 else 11, 1)
s.sendto(b"are you there?", (me, port))
p = select.poll(); p.register(s, 0)
events = p.poll(20000)
data, items, flags, addr = s.recvmsg(100, 1024, 0x2000)
print(json.dumps({"events": [e for _, e in events], "data": data.hex(), "flags": flags, "addr": list(addr[:2]),
                  "items": [[l, t, d.hex()] for l, t, d in items]}))
"""


@pytest.mark.lab
@FAMILIES
def test_stack_error_queue_holds_what_the_kernels_holds(kernel: KernelPeer, family: int) -> None:
    peer = _peer(kernel, family)
    sock = _stack_udp(peer, family)
    core = sock.core
    assert isinstance(core, UdpSocket)
    core.recverr = True
    try:
        with kernel_program(peer, KERNEL, peer.kernel_ip) as prog:
            port = int(read_line(prog))
            out = json.loads(finish(prog).splitlines()[-1])
        sock.sendto(PAYLOAD, (peer.kernel_ip, port))
        item = sock.call(lambda now: core.recv_error())  # waits until the error is queued
        mask = core.poll_mask()
        items, flags = anc.error_item(family, item, 1024)
    finally:
        sock.close()
    assert out["events"] == [POLLERR] and not mask & POLLERR  # read: nothing left pending, as in Linux
    assert item.payload.hex() == out["data"] == PAYLOAD.hex() and out["flags"] == anc.MSG_ERRQUEUE and flags == 0
    assert out["addr"] == [peer.kernel_ip, port] and item.dport == port
    assert [[level, kind, data.hex()] for level, kind, data in items] == out["items"]
