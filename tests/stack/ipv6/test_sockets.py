"""UDP and TCP over IPv6: AF_INET6 sockets, v4-mapped addresses, IPV6_V6ONLY, stacks talking IPv6 in the simulator."""

from __future__ import annotations

import contextlib
import errno
import hashlib

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from pytcp_green.link.impair import ImpairSpec
from pytcp_green.sim.network import Simulation
from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.interface import LinkKind
from pytcp_green.stack.sockbase import AF_INET, AF_INET6
from pytcp_green.stack.stack import SOCK_DGRAM, SOCK_STREAM, Stack
from pytcp_green.stack.tcp import TcpSocket

from ..helpers import PEER_IP as PEER4
from ..helpers import PEER_MAC, STACK_MAC, sent
from ..helpers import STACK_IP as STACK4
from .helpers import PEER_IP6, learn_peer, make_stack6, to_stack


def dual_stack() -> tuple[Stack, object]:
    stack, iface = make_stack6()
    stack.add_ip4(iface, f"{STACK4}/24")
    arp = Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER4, pdst=STACK4)
    stack.receive(iface, bytes(arp), 10.0)
    iface.tx.clear()
    return stack, iface


def udp6(stack: Stack, port: int, *, v6only: bool = False) -> UdpSocket:
    sock = stack.socket(AF_INET6, SOCK_DGRAM)
    assert isinstance(sock, UdpSocket)
    sock.v6only = v6only
    sock.bind(("::", port))
    return sock


def ipv4_datagram(dport: int) -> bytes:
    return bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER4, dst=STACK4) / UDP(sport=5555, dport=dport) / b"v4")


def test_ipv6_socket_talks_ipv4_through_v4_mapped_addresses() -> None:
    stack, iface = dual_stack()
    sock = udp6(stack, 4000)
    stack.receive(iface, ipv4_datagram(4000), 11.0)  # type: ignore[arg-type]
    data, source = sock.recvfrom(100, 11.0)
    assert data == b"v4" and source == ("::ffff:198.18.0.1", 5555, 0, 0)
    sock.sendto(b"back", source, 11.0)
    (out,) = sent(iface)  # type: ignore[arg-type]
    assert out[IP].src == STACK4 and out[IP].dst == PEER4 and bytes(out[UDP].payload) == b"back"
    again = IP(bytes(out[IP]))
    want = again[UDP].chksum
    del again[UDP].chksum
    assert IP(bytes(again))[UDP].chksum == want  # the IPv4 pseudo-header, not the mapped addresses
    assert stack.select_source(b"\0" * 10 + b"\xff\xff" + bytes((198, 18, 0, 1))) == b"\0" * 10 + b"\xff\xff" + \
        bytes((198, 18, 0, 2))


def test_v6only_socket_ignores_ipv4_and_refuses_mapped_destinations() -> None:
    stack, iface = dual_stack()
    sock = udp6(stack, 4000, v6only=True)
    stack.receive(iface, ipv4_datagram(4000), 11.0)  # type: ignore[arg-type]
    assert sock.poll_mask() & 1 == 0
    (unreach,) = sent(iface)  # type: ignore[arg-type]
    assert unreach[ICMP].type == 3 and unreach[ICMP].code == 3
    with pytest.raises(OSError) as exc:
        sock.sendto(b"x", ("::ffff:198.18.0.1", 9), 11.0)
    assert exc.value.errno == errno.ENETUNREACH


def test_ipv4_socket_never_sees_ipv6_datagrams() -> None:
    from scapy.layers.inet6 import IPv6

    stack, iface = dual_stack()
    learn_peer(stack, iface)  # type: ignore[arg-type]
    sock4 = stack.socket(AF_INET, SOCK_DGRAM)
    sock4.bind(("", 4000))
    stack.receive(iface, to_stack(IPv6(src=PEER_IP6, dst="fd00:77::2") / UDP(sport=1, dport=4000) / b"6"), 11.0)  # type: ignore[arg-type]
    assert sock4.poll_mask() & 1 == 0
    assert stack.stats["icmp6.tx.error.1.4"] == 1  # port unreachable from the IPv6 side


def test_udp_payload_limits() -> None:
    stack, _ = make_stack6()
    sock = udp6(stack, 4001)
    with pytest.raises(OSError) as exc:
        sock.sendto(bytes(65528), (PEER_IP6, 9), 11.0)
    assert exc.value.errno == errno.EMSGSIZE


# -- two stacks, IPv6 only, in the simulator --------------------------------------------------------------


def v6_host(sim: Simulation, name: str, mac: str, ip6: str) -> tuple[Stack, object]:
    stack = Stack(seed=sim.derive_seed(name))
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(mac))
    stack.enable_ip6(iface, slaac=False, now=sim.now)
    stack.add_ip6(iface, f"{ip6}/64", now=sim.now)
    return stack, iface


@pytest.mark.parametrize("seed", range(4))
def test_tcp_over_ipv6_between_two_stacks_through_loss(seed: int) -> None:
    sim = Simulation(seed)
    a, ia = v6_host(sim, "a", "020000000a01", "fd00:77::a")
    b, ib = v6_host(sim, "b", "020000000b01", "fd00:77::b")
    lossy = ImpairSpec.parse("loss=3%,reorder=2%")
    sim.connect(a, ia, b, ib, lossy, lossy)  # type: ignore[arg-type]
    assert sim.run_until(lambda: a.is_local(bytes.fromhex("fd000077" + "0" * 23 + "a"))
                         and b.is_local(bytes.fromhex("fd000077" + "0" * 23 + "b")), 10)  # DAD done
    listener = b.socket(AF_INET6, SOCK_STREAM)
    assert isinstance(listener, TcpSocket)
    listener.bind(("::", 80))
    listener.listen(4)
    client = a.socket(AF_INET6, SOCK_STREAM)
    assert isinstance(client, TcpSocket)
    with contextlib.suppress(BlockingIOError):
        client.connect(("fd00:77::b", 80), sim.now)
    data = hashlib.sha256(str(seed).encode()).digest() * 10000  # 320 KB
    state = {"sent": 0, "got": bytearray(), "server": None}

    def step() -> bool:
        now = sim.now
        if state["server"] is None:
            with contextlib.suppress(BlockingIOError):
                state["server"] = listener.accept(now)[0]
        if client.state == "ESTABLISHED" and state["sent"] < len(data):  # type: ignore[operator]
            with contextlib.suppress(BlockingIOError):
                state["sent"] += client.send(memoryview(data)[state["sent"]:], now)  # type: ignore[index,operator]
        server = state["server"]
        if server is not None:
            while True:
                try:
                    chunk = server.recv(65536, now)  # type: ignore[attr-defined]
                except BlockingIOError:
                    break
                if not chunk:
                    break
                state["got"] += chunk  # type: ignore[operator]
        return len(state["got"]) == len(data)  # type: ignore[arg-type]

    assert sim.run_until(step, 600)
    assert bytes(state["got"]) == data  # type: ignore[arg-type]
    server = state["server"]
    assert server is not None and server.getpeername()[0] == "fd00:77::a"  # type: ignore[attr-defined]
    assert a.stats["ip6.tx"] > 200 and b.stats["nd.rx.ns"] + b.stats["nd.rx.na"] >= 1
