"""The frame-level helpers of the core tests: a stack with IPv4 on one Ethernet interface, fed frames
built by scapy (an oracle we did not write), and what it queued to send, parsed back by scapy.

Every test of the core uses these; a family folder keeps only what is its own (tests/stack/ipv6/helpers.py).
"""

from __future__ import annotations

from scapy.layers.l2 import ARP, Ether

from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.interface import Interface, LinkKind
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM, Stack
from pytcp_green.stack.sysctl import Value

STACK_MAC = "02:00:00:00:00:02"
PEER_MAC = "02:00:00:00:00:01"
STACK_IP = "198.18.0.2"
PEER_IP = "198.18.0.1"


def make_stack(seed: int = 1, *, address: bool = True, **sysctl: Value) -> tuple[Stack, Interface]:
    """A stack with ``eth0`` at STACK_MAC and (unless ``address`` is False) STACK_IP/24."""
    stack = Stack(seed=seed, sysctl=sysctl)
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(STACK_MAC.replace(":", "")))
    if address:
        stack.add_ip4(iface, f"{STACK_IP}/24")
    return stack, iface


def learned_stack(**sysctl: Value) -> tuple[Stack, Interface]:
    """A stack that has already learned the peer's MAC (from an ARP request), with nothing left to send."""
    stack, iface = make_stack(**sysctl)
    arp = Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=STACK_IP)
    stack.receive(iface, bytes(arp), 0.0)
    sent(iface)
    return stack, iface


def sent(iface: Interface) -> list[Ether]:
    """Everything the interface queued for transmission, parsed by scapy, queue emptied."""
    frames = [Ether(bytes(f)) for f in iface.tx]
    iface.tx.clear()
    return frames


def udp_socket(stack: Stack, port: int) -> UdpSocket:
    """A UDP socket bound to ``port`` on every address, with a receive buffer no test fills."""
    sock = stack.socket(AF_INET, SOCK_DGRAM)
    assert isinstance(sock, UdpSocket)
    sock.bind(("", port))
    sock.rcvbuf = 1 << 20
    return sock
