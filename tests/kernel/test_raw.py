"""Raw ICMP sockets of the stack against the Linux kernel peer in the lab, IPv4 and IPv6 (raw(7)).

An echo request built by hand goes out of a stack SOCK_RAW socket; the kernel answers it, and the
socket reads the reply as Linux's raw sockets give it: with the IPv4 header (the kernel's TTL 64, its
address as the source) or, for IPv6, the ICMPv6 message alone, whose checksum the stack filled in
on the way out (the kernel answered it, so it held).  A socket of protocol IPPROTO_RAW sends a UDP
datagram behind an IP header of its own, and the kernel's UDP socket reads it with that header's values.
"""

from __future__ import annotations

import json
import struct

import pytest
from lab.helpers import KernelPeer

from kernel.test_ancillary import KERNEL, _peer, receiving_port
from kernel.test_tcp import finish, kernel_program
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.patches import _ancillary as anc
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


def _own_packet(family: int, src: bytes, dst: bytes, dport: int, body: bytes) -> bytes:
    """A UDP datagram behind an IP header of our own: TTL/hop limit 33, TOS/traffic class 0x48; IPv4's
    total length, identification, checksum and source left zero for the stack to fill in (raw(7))."""
    udp = bytearray(struct.pack("!HHHH", 4343, dport, 8 + len(body), 0) + body)
    if family == AF_INET:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0x48, 0, 0, 0, 33, 17, 0, bytes(4), dst)
        return ip + udp  # IPv4 UDP checksum 0: none (RFC 768)
    udp[6:8] = checksum(udp, pseudo_sum(src, dst, 17, len(udp))).to_bytes(2, "big")  # mandatory (RFC 8200 §8.1)
    ip = struct.pack("!IHBB16s16s", (6 << 28) | (0x48 << 20), len(udp), 17, 33, src, dst)
    return ip + udp


@pytest.mark.lab
@FAMILIES
def test_ipproto_raw_datagram_reaches_a_kernel_socket(kernel: KernelPeer, family: int) -> None:
    """IPPROTO_RAW (IP_HDRINCL implied): the kernel's UDP socket reads the datagram whose header we
    wrote, with our TTL/hop limit and TOS/traffic class, from our address."""
    peer = _peer(kernel, family)
    sock = GreenSocket(peer.host.runtime, peer.host.stack.socket(family, SOCK_RAW, 255), timeout=20)
    body = b"a header of our own"
    try:
        with kernel_program(peer, KERNEL, peer.kernel_ip, peer.stack_ip) as prog:
            port = receiving_port(prog)
            packet = _own_packet(family, pack_host(family, peer.stack_ip), pack_host(family, peer.kernel_ip),
                                 port, body)
            assert sock.sendto(packet, (peer.kernel_ip, 0)) == len(packet)
            out = json.loads(finish(prog).splitlines()[-1])
    finally:
        sock.close()
    assert bytes.fromhex(out["data"]) == body and out["peer"] == peer.stack_ip
    items = {kind: bytes.fromhex(raw) for _, kind, raw in out["items"]}
    if family == AF_INET:
        assert struct.unpack("i", items[anc.IP_TTL])[0] == 33 and items[anc.IP_TOS] == b"\x48"
    else:
        assert struct.unpack("i", items[anc.IPV6_HOPLIMIT])[0] == 33
        assert struct.unpack("i", items[anc.IPV6_TCLASS])[0] == 0x48
    assert peer.host.stack.stats["ip4.tx.hdrincl" if family == AF_INET else "ip6.tx.hdrincl"] == 1
