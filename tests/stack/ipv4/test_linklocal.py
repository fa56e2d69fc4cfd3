"""RFC 3927 link-local autoconfiguration in the core: MAC-seeded candidates, ARP probing, conflicts, rate limit,
losing the address to a conflict, stop; frames read by scapy."""

from __future__ import annotations

import ipaddress

from scapy.layers.l2 import ARP, Ether

from pytcp_green.stack.interface import Interface
from pytcp_green.stack.ipv4.linklocal import LinkLocal
from pytcp_green.stack.stack import Stack

from ..helpers import PEER_MAC, STACK_MAC, make_stack, sent
from .test_acd import FAST, run_until_idle

LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")


def started(**sysctl: float) -> tuple[Stack, Interface, LinkLocal, list[object]]:
    stack, iface = make_stack(address=False, **{**FAST, **sysctl})
    changes: list[object] = []
    ll = LinkLocal(stack, iface, changes.append)
    ll.start(0.0)
    return stack, iface, ll, changes


def claim(ip: str) -> bytes:
    """Someone else answers for ``ip`` (an ARP reply from it)."""
    return bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / ARP(op=2, hwsrc=PEER_MAC, psrc=ip, hwdst=STACK_MAC,
                                                          pdst="0.0.0.0"))


def test_claims_a_probed_address_in_range_seeded_by_the_mac() -> None:
    stack, iface, ll, changes = started()
    frames = run_until_idle(stack, iface, 0.0, 100.0)
    assert ll.address is not None and changes == [ll.address]
    ip = ll.address.ip
    assert ip in LINK_LOCAL and ipaddress.IPv4Address("169.254.1.0") <= ip <= ipaddress.IPv4Address("169.254.254.255")
    assert ll.address.network == LINK_LOCAL and ll.address in iface.ip4
    probes = [f for _, f in frames if f[ARP].psrc == "0.0.0.0"]
    assert len(probes) == 3 and all(f[ARP].pdst == str(ip) for f in probes)
    assert stack.ip4.select_source(ipaddress.IPv4Address("169.254.9.9").packed) == ip.packed
    # The same MAC gives the same first candidate next time (§2.1).
    again, iface2, ll2, _ = started()
    run_until_idle(again, iface2, 0.0, 100.0)
    assert ll2.address == ll.address


def test_conflict_while_probing_moves_on_and_rate_limits_after_max_conflicts() -> None:
    stack, iface, ll, _ = started(**{"net.ipv4.linklocal.max_conflicts": 2,
                                     "net.ipv4.linklocal.rate_limit_interval": 60.0})
    tried = []
    for _ in range(2):
        assert ll.candidate is not None
        tried.append(ll.candidate)
        stack.receive(iface, claim(str(ll.candidate.ip)), 0.1)
        sent(iface)
    assert len(set(tried)) == 2 and ll.conflicts == 2
    assert ll.candidate is None  # rate-limited: the next try waits RATE_LIMIT_INTERVAL
    assert stack.next_deadline() is not None and stack.next_deadline() >= 60.0  # type: ignore[operator]
    frames = run_until_idle(stack, iface, 0.1, 200.0)
    assert ll.address is not None and ll.address not in tried
    assert min(t for t, _ in frames) >= 60.0


def test_address_lost_to_a_conflict_is_replaced_and_stop_removes_it() -> None:
    stack, iface, ll, changes = started()
    run_until_idle(stack, iface, 0.0, 100.0)
    first = ll.address
    assert first is not None
    # Two conflicting announcements within the defend interval: defend once, then give up (RFC 5227 §2.4 (b)).
    stack.receive(iface, claim(str(first.ip)), 20.0)
    stack.receive(iface, claim(str(first.ip)), 21.0)
    assert first not in iface.ip4 and changes[-1] is None
    run_until_idle(stack, iface, 21.0, 200.0)
    assert ll.address is not None and ll.address != first and changes[-1] == ll.address
    ll.stop()
    assert not iface.ip4 and ll.address is None and stack.stats["linklocal.removed"] == 1


def test_stop_while_probing_adds_nothing() -> None:
    stack, iface, ll, changes = started()
    ll.stop()
    run_until_idle(stack, iface, 0.0, 100.0)
    assert not iface.ip4 and changes == []
