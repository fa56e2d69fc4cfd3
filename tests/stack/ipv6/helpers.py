"""What only the IPv6 tests need: a stack with IPv6 on one Ethernet interface (its addresses past DAD),
frames to it, its timers run up to a virtual time.  The MACs and ``sent`` are tests/stack/helpers.py's."""

from __future__ import annotations

import ipaddress

from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from pytcp_green.stack.interface import Interface, LinkKind
from pytcp_green.stack.stack import Stack

from ..helpers import PEER_MAC, STACK_MAC

STACK_LL = "fe80::ff:fe00:2"  # modified EUI-64 of STACK_MAC
PEER_LL = "fe80::1"
STACK_IP6 = "fd00:77::2"
PEER_IP6 = "fd00:77::1"


def packed(addr: str) -> bytes:
    return ipaddress.IPv6Address(addr).packed


def make_stack6(seed: int = 1, *, slaac: bool = False, static: str | None = f"{STACK_IP6}/64",
                settle: bool = True) -> tuple[Stack, Interface]:
    """A stack whose link-local (and ``static``) address passed DAD; transmit queue emptied."""
    stack = Stack(seed=seed)
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(STACK_MAC.replace(":", "")))
    stack.enable_ip6(iface, slaac=slaac)
    if static:
        stack.add_ip6(iface, static)
    if settle:
        run_until(stack, 5.0)
        iface.tx.clear()
    return stack, iface


def run_until(stack: Stack, until: float) -> float:
    """Fire every timer due up to ``until`` (virtual time); returns the time of the last one fired."""
    now = 0.0
    while (deadline := stack.next_deadline()) is not None and deadline <= until:
        now = deadline
        stack.poll(now)
    return now


def to_stack(pkt: IPv6, dst_mac: str = STACK_MAC) -> bytes:
    return bytes(Ether(src=PEER_MAC, dst=dst_mac) / pkt)


def learn_peer(stack: Stack, iface: Interface, now: float = 10.0, peer: str = PEER_IP6) -> None:
    """Make the peer's MAC known (an NS from it), so replies leave without resolution."""
    from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr

    ns = IPv6(src=peer, dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=STACK_IP6) / ICMPv6NDOptSrcLLAddr(
        lladdr=PEER_MAC)
    stack.receive(iface, to_stack(ns, "33:33:ff:00:00:02"), now)
    iface.tx.clear()
