"""Two stacks on an impaired in-memory link under the virtual clock: ARP retries, UDP loss and duplication."""

from __future__ import annotations

from collections import Counter

from scapy.layers.l2 import ARP, Ether

from pytcp_green.link.impair import ImpairSpec
from pytcp_green.sim.network import Simulation
from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.interface import Interface, LinkKind
from pytcp_green.stack.ipv4.arp import ArpCache, NeighState
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM, Stack

MAC_A, MAC_B = "02:00:00:00:0a:01", "02:00:00:00:0b:01"
IP_A, IP_B = "198.18.0.10", "198.18.0.11"


def host(sim: Simulation, name: str, mac: str, ip: str, **sysctl: int) -> tuple[Stack, Interface]:
    stack = Stack(seed=sim.derive_seed(name), sysctl={k.replace("__", "."): v for k, v in sysctl.items()})
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(mac.replace(":", "")))
    stack.add_ip4(iface, f"{ip}/24")
    return stack, iface


def reachable(arp: ArpCache, peer: bytes) -> bool:
    entry = arp.entries.get(peer)
    return entry is not None and entry.state is NeighState.REACHABLE


def udp_socket(stack: Stack, port: int) -> UdpSocket:
    sock = stack.socket(AF_INET, SOCK_DGRAM)
    assert isinstance(sock, UdpSocket)
    sock.bind(("", port))
    return sock


def test_arp_resolution_retries_and_succeeds_at_fifty_percent_loss() -> None:
    retried = 0
    for seed in range(20):
        sim = Simulation(seed)
        knob = {"net__ipv4__neigh__default__mcast_solicit": 12}
        a, ia = host(sim, "a", MAC_A, IP_A, **knob)
        b, ib = host(sim, "b", MAC_B, IP_B, **knob)
        lossy = ImpairSpec.parse("loss=50%")
        sim.connect(a, ia, b, ib, lossy, lossy)
        udp_socket(a, 5000).sendto(b"hello", (IP_B, 5000), sim.now)
        arp = ia.arp
        assert arp is not None
        peer = bytes(map(int, IP_B.split(".")))
        resolved = sim.run_until(lambda arp=arp, peer=peer: reachable(arp, peer), timeout=30)
        assert resolved, f"seed {seed}: ARP did not resolve through 50% loss"
        retried += a.stats["arp.tx.request"] - 1
    assert retried >= 20  # at 50% loss each way, resolution needs about three requests on average


def test_udp_datagrams_are_lost_and_duplicated_exactly_as_the_impairment_says() -> None:
    sim = Simulation(seed=4242)
    a, ia = host(sim, "a", MAC_A, IP_A)
    b, ib = host(sim, "b", MAC_B, IP_B)
    link = sim.connect(a, ia, b, ib, ImpairSpec.parse("loss=10%,dup=5%"), None)
    # Prime both neighbour caches with ARP replies (built by scapy) so every frame on the link is UDP.
    for stack, iface, src_mac, src_ip, dst_mac, dst_ip in ((a, ia, MAC_B, IP_B, MAC_A, IP_A),
                                                          (b, ib, MAC_A, IP_A, MAC_B, IP_B)):
        reply = Ether(src=src_mac, dst=dst_mac) / ARP(op=2, hwsrc=src_mac, psrc=src_ip, hwdst=dst_mac, pdst=dst_ip)
        stack.receive(iface, bytes(reply), sim.now)
    sender, receiver = udp_socket(a, 6000), udp_socket(b, 6000)
    receiver.rcvbuf = 10_000_000
    count = 1000
    for i in range(count):
        sender.sendto(i.to_bytes(4, "big"), (IP_B, 6000), sim.now)
        sim.run_for(0.0005)
    sim.run_for(1.0)
    got: Counter[int] = Counter()
    while receiver.queue:
        got[int.from_bytes(receiver.recvfrom(100, sim.now)[0], "big")] += 1
    stats = link.ab.stats
    assert stats["lost"] > 50 and stats["duplicated"] > 20  # the impairment really acted
    assert count - len(got) == stats["lost"]
    assert sum(got.values()) == count - stats["lost"] + stats["duplicated"]
    assert b.stats["udp.rx"] == sum(got.values())
    assert set(got) <= set(range(count)) and max(got.values()) <= 2
