"""A stack on one Ethernet interface, fed frames built by scapy (an oracle we did not write)."""

from __future__ import annotations

from scapy.layers.l2 import Ether

from pytcp_green.stack.interface import Interface, LinkKind
from pytcp_green.stack.stack import Stack

STACK_MAC = "02:00:00:00:00:02"
PEER_MAC = "02:00:00:00:00:01"
STACK_IP = "198.18.0.2"
PEER_IP = "198.18.0.1"


def make_stack(seed: int = 1) -> tuple[Stack, Interface]:
    stack = Stack(seed=seed)
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(STACK_MAC.replace(":", "")))
    stack.add_ip4(iface, f"{STACK_IP}/24")
    return stack, iface


def sent(iface: Interface) -> list[Ether]:
    """Everything the interface queued for transmission, parsed by scapy, queue emptied."""
    frames = [Ether(bytes(f)) for f in iface.tx]
    iface.tx.clear()
    return frames
