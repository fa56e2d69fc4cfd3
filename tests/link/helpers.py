"""Frames and a simulated TCP transfer for the link tests (middleware and the device contract)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply
from scapy.layers.l2 import Ether

from pytcp_green.sim.network import Simulation
from pytcp_green.stack.interface import GsoFrame, Interface, LinkKind
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM, Stack
from pytcp_green.stack.tcp import TcpSocket

MSS = 1448
IP_A, IP_B = "198.18.0.10", "198.18.0.11"
MAC_A, MAC_B = "020000000a01", "020000000b01"


def super_segment(segments: int) -> GsoFrame:
    """A TCP super-segment as the stack hands a TSO device: ``segments`` MSS of payload, one header."""
    payload = bytes(range(256)) * (segments * MSS // 256 + 1)
    pkt = Ether(src="02:00:00:00:0a:01", dst="02:00:00:00:0b:01") / IP(src=IP_A, dst=IP_B, flags="DF") / TCP(
        sport=40000, dport=80, seq=1000, ack=1, flags="PA") / payload[:segments * MSS]
    frame = GsoFrame(bytes(pkt))
    frame.gso_size, frame.l3, frame.l4 = MSS, 14, 34
    return frame


def checksums_hold(frame: bytes) -> bool:
    """scapy, as an independent codec, rebuilds the checksums it finds; they must equal ours."""
    pkt = Ether(frame)
    fresh = pkt.copy()
    for layer, field in ((TCP, "chksum"), (UDP, "chksum"), (ICMP, "chksum"), (IP, "chksum"),
                         (ICMPv6EchoReply, "cksum")):
        if layer in fresh:
            delattr(fresh[layer], field)
    rebuilt = Ether(bytes(fresh))
    return bytes(rebuilt) == bytes(pkt)


def sim_hosts(sim: Simulation) -> tuple[Stack, Interface, Stack, Interface]:
    """Two stacks for ``sim``, a at IP_A and b at IP_B, not yet cabled."""
    return (*host(sim, "a", MAC_A, IP_A), *host(sim, "b", MAC_B, IP_B))


def host(sim: Simulation, name: str, mac: str, ip: str) -> tuple[Stack, Interface]:
    stack = Stack(seed=sim.derive_seed(name))
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(mac))
    stack.add_ip4(iface, f"{ip}/24")
    return stack, iface


def transfer(sim: Simulation, a: Stack, b: Stack, data: bytes) -> bytes:
    """``data`` from a to b over TCP in the simulation; what b read."""
    listener = b.socket(AF_INET, SOCK_STREAM)
    assert isinstance(listener, TcpSocket)
    listener.bind(("", 80))
    listener.listen(1)
    client = a.socket(AF_INET, SOCK_STREAM)
    assert isinstance(client, TcpSocket)
    with pytest.raises(BlockingIOError):
        client.connect((IP_B, 80), sim.now)
    assert sim.run_until(lambda: bool(listener.accept_queue), 10)
    server, _ = listener.accept(sim.now)
    assert isinstance(server, TcpSocket)
    sent, got = 0, bytearray()

    def pump() -> bool:
        nonlocal sent
        while sent < len(data):
            try:
                sent += client.send(memoryview(data)[sent:], sim.now)
            except BlockingIOError:
                break
        while True:
            try:
                got.extend(server.recv(1 << 20, sim.now))
            except BlockingIOError:
                break
        return len(got) == len(data)

    assert sim.run_until(pump, 600), f"{len(got)} of {len(data)} bytes"
    return bytes(got)
