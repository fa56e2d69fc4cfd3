"""Ancillary data of stack UDP sockets against the Linux kernel's, IPv4 and IPv6 (ip(7), RFC 3542).

Kernel to stack: the kernel sends the same datagram (TTL or hop limit 77, TOS or traffic class
0x28) to the stack and to a socket of its own that asked for every item; the stack's items are
the kernel's, byte for byte, but for the packet-info addresses and interface index, which are each
receiver's own: checked by what they mean (the destination, the interface holding it).
Stack to kernel: the stack sends with IP_TTL/IP_TOS/IP_PKTINFO (IPV6_HOPLIMIT/IPV6_TCLASS/
IPV6_PKTINFO) items, and the kernel's recvmsg reads back those values.
"""

from __future__ import annotations

import array
import json
import struct
import subprocess

import pytest
from lab.helpers import KernelPeer
from patches.helpers import run_patched

from kernel.test_tcp import finish, kernel_program, read_line
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.patches import _ancillary as anc
from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.sockbase import AF_INET, AF_INET6, pack_host
from pytcp_green.stack.stack import SOCK_DGRAM

FAMILIES = pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])

# A kernel socket bound to argv[1] asking for every item; prints its port, then (after a line on stdin,
# or at once with argv[3] == "send") sends the datagram to argv[2]:argv[4] and to itself, hop limit 77,
# TOS 0x28; prints what it received: its items as [level, type, hex], the name of the ifindex, and the name
# of the namespace's one link (which holds its address).
KERNEL = r"""
import json, socket, struct, sys
me, stack = sys.argv[1], sys.argv[2]
v6 = ":" in me
fam = socket.AF_INET6 if v6 else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
if v6:
    for opt in (49, 51, 66):  # IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS
        s.setsockopt(socket.IPPROTO_IPV6, opt, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 77)
    s.setsockopt(socket.IPPROTO_IPV6, 67, 0x28)  # IPV6_TCLASS
else:
    for opt in (8, 12, 13):  # IP_PKTINFO, IP_RECVTTL, IP_RECVTOS
        s.setsockopt(socket.IPPROTO_IP, opt, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 77)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x28)
s.bind((me, 0))
s.settimeout(20)
print(s.getsockname()[1], flush=True)
port = int(sys.stdin.readline())
if port:
    s.sendto(b"same datagram", (stack, port))
    s.sendto(b"same datagram", s.getsockname())
data, items, flags, peer = s.recvmsg(100, 1024)
index = struct.unpack_from("i", next(d for l, t, d in items if t in (8, 50)), 16 if v6 else 0)[0]
lab_if = next(name for _, name in socket.if_nameindex() if name != "lo")
print(json.dumps({"data": data.hex(), "items": [[l, t, d.hex()] for l, t, d in items], "flags": flags,
                  "ifname": socket.if_indextoname(index), "lab_if": lab_if, "peer": peer[0]}))
"""

ALL_ON = {key: 1 for key in anc.RECV_OPTIONS}


def receiving_port(prog: subprocess.Popen[str]) -> int:
    """KERNEL's port, once it is told to send nothing and only receive (a 0 on its stdin)."""
    port = int(read_line(prog))
    assert prog.stdin is not None
    prog.stdin.write("0\n")
    prog.stdin.flush()
    return port


def _stack_udp(peer: KernelPeer, family: int) -> GreenSocket:
    sock = GreenSocket(peer.host.runtime, peer.host.stack.socket(family, SOCK_DGRAM), timeout=20)
    sock.bind((peer.stack_ip, 0))
    return sock


def _peer(kernel: KernelPeer, family: int) -> KernelPeer:
    return kernel if family == kernel.family else KernelPeer(kernel.host, kernel.pcap, family)


def _pktinfo(family: int, data: bytes) -> tuple[int, bytes]:
    """(ifindex, destination address) of an in_pktinfo / in6_pktinfo."""
    if family == AF_INET:
        return struct.unpack_from("i", data)[0], data[8:12]
    return struct.unpack_from("i", data, 16)[0], data[:16]


@pytest.mark.lab
@FAMILIES
def test_stack_items_for_a_kernel_datagram_are_the_kernels(kernel: KernelPeer, family: int) -> None:
    peer = _peer(kernel, family)
    sock = _stack_udp(peer, family)
    try:
        with kernel_program(peer, KERNEL, peer.kernel_ip, peer.stack_ip) as prog:
            read_line(prog)
            assert prog.stdin is not None
            prog.stdin.write(f"{sock.getsockname()[1]}\n")
            prog.stdin.flush()
            out = json.loads(finish(prog).splitlines()[-1])
        core = sock.core
        assert isinstance(core, UdpSocket)
        data, _, meta = sock.call(lambda now: core.recvmsg(100, now))
        items, flags = anc.received(family, ALL_ON, meta, 1024)
    finally:
        sock.close()
    assert data.hex() == out["data"] and flags == out["flags"] == 0
    kernel_items = [(level, kind, bytes.fromhex(raw)) for level, kind, raw in out["items"]]
    assert [(level, kind) for level, kind, _ in items] == [(level, kind) for level, kind, _ in kernel_items]
    # TTL/hop limit and TOS/traffic class: the same bytes.
    assert items[1:] == kernel_items[1:]
    # Packet info: each receiver's own address, and the interface holding it (for the kernel's datagram to
    # itself Linux names that one, not the loopback it went through).
    stack_index, stack_dst = _pktinfo(family, items[0][2])
    _, kernel_dst = _pktinfo(family, kernel_items[0][2])
    stack_ifaces = list(peer.host.stack.interfaces.values())
    assert stack_ifaces[stack_index - 1] is peer.host.iface and out["ifname"] == out["lab_if"]
    assert stack_dst == pack_host(family, peer.stack_ip) and kernel_dst == pack_host(family, peer.kernel_ip)
    if family == AF_INET:  # spec_dst: the local address, as the kernel's
        assert items[0][2][4:8] == stack_dst and kernel_items[0][2][4:8] == kernel_dst


@pytest.mark.lab
@FAMILIES
def test_kernel_reads_the_items_the_stack_sent(kernel: KernelPeer, family: int) -> None:
    peer = _peer(kernel, family)
    sock = _stack_udp(peer, family)
    src = pack_host(family, peer.stack_ip)
    if family == AF_INET:
        cmsgs = [(0, anc.IP_TTL, array.array("i", [33]).tobytes()), (0, anc.IP_TOS, b"\x48"),
                 (0, anc.IP_PKTINFO, struct.pack("i", 0) + src + bytes(4))]
    else:
        cmsgs = [(41, anc.IPV6_HOPLIMIT, array.array("i", [33]).tobytes()),
                 (41, anc.IPV6_TCLASS, array.array("i", [0x48]).tobytes()),
                 (41, anc.IPV6_PKTINFO, src + struct.pack("i", 0))]
    try:
        with kernel_program(peer, KERNEL, peer.kernel_ip, peer.stack_ip) as prog:
            port = receiving_port(prog)
            extra = anc.to_send(family, cmsgs)
            core = sock.core
            assert isinstance(core, UdpSocket)
            sock.call(lambda now: core.sendto(b"from the stack", (peer.kernel_ip, port), now, **extra))
            out = json.loads(finish(prog).splitlines()[-1])
    finally:
        sock.close()
    items = {kind: bytes.fromhex(raw) for _, kind, raw in out["items"]}
    assert bytes.fromhex(out["data"]) == b"from the stack" and out["peer"] == peer.stack_ip
    if family == AF_INET:
        assert struct.unpack("i", items[anc.IP_TTL]) == (33,) and items[anc.IP_TOS] == b"\x48"
    else:
        assert struct.unpack("i", items[anc.IPV6_HOPLIMIT]) == (33,)
        assert struct.unpack("i", items[anc.IPV6_TCLASS]) == (0x48,)


# Over loopback (where the kernel's lo and the stack's are both ifindex 1): sendmsg with good and bad
# items, then recvmsg with every item asked for and control buffers of several sizes; JSON of it all.
LOOPBACK = """
import array, socket, struct
def i(v):
    return array.array("i", [v]).tobytes()
rows = []
for fam, host, level, asks, sends in (
        (socket.AF_INET, "127.0.0.1", 0, (8, 12, 13),
         [[(0, 2, i(9))], [(0, 1, b"\\x10")], [(0, 1, i(0x20)), (0, 2, i(200))], [(0, 2, i(0))], [(0, 2, i(256))],
          [(0, 1, i(300))], [(0, 1, b"ab")], [(0, 99, i(1))],
          [(0, 8, struct.pack("i", 0) + socket.inet_aton("127.0.0.1") + bytes(4))],
          [(0, 8, struct.pack("i", 0) + socket.inet_aton("198.18.9.9") + bytes(4))]]),
        (socket.AF_INET6, "::1", 41, (49, 51, 66),
         [[(41, 52, i(9))], [(41, 67, i(0x20)), (41, 52, i(-1))], [(41, 52, i(256))], [(41, 67, i(-2))],
          [(41, 52, b"x")], [(41, 50, socket.inet_pton(socket.AF_INET6, "::1") + i(0))],
          [(41, 50, socket.inet_pton(socket.AF_INET6, "fd00:99::9") + i(0))]])):
    rx = socket.socket(fam, socket.SOCK_DGRAM)
    rx.bind((host, 0))
    rx.settimeout(10)
    for ask in asks:
        rx.setsockopt(level, ask, 1)
    tx = socket.socket(fam, socket.SOCK_DGRAM)
    tx.bind((host, 0))
    for items in sends:
        sent = attempt(lambda: tx.sendmsg([b"data"], items, 0, rx.getsockname()))
        rows.append(["send", sent])
        if sent == 4:
            data, anc, flags, _ = rx.recvmsg(10, 200)
            rows.append([data.hex(), [[l, t, d.hex()] for l, t, d in anc], flags])
    for size in (0, 1, socket.CMSG_LEN(0), socket.CMSG_LEN(0) + 3, socket.CMSG_SPACE(4) + socket.CMSG_LEN(2),
                 socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4) + 1):
        tx.sendto(b"data", rx.getsockname())
        data, anc, flags, _ = rx.recvmsg(10, size)
        rows.append([size, [[l, t, d.hex()] for l, t, d in anc], flags])
report(rows)
"""


def test_loopback_items_sendmsg_checks_and_truncation_are_the_kernels() -> None:
    # The same program over the kernel (no patch) and over the stack.
    assert run_patched(LOOPBACK) == run_patched(LOOPBACK, patch="")
